// One prom-client Registry for the operator. Runtime metrics use the
// controller-runtime names so existing dashboards and alerts apply; domain
// metrics are prefixed moe_operator_ with bounded labels.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";

export interface OperatorMetrics {
  registry: Registry;
  reconcileTotal: Counter<"controller" | "result">;
  reconcileErrors: Counter<"controller">;
  reconcileTime: Histogram<"controller">;
  workqueueDepth: Gauge<"name">;
  workqueueRetries: Counter<"name">;
  leaderElectionStatus: Gauge<"name">;
  activeWorkers: Gauge<"controller">;
  watchRestarts: Counter<"resource">;
  decisions: Counter<"namespace" | "name" | "reason">;
  gpusDesired: Gauge<"namespace" | "name">;
  gpusCurrent: Gauge<"namespace" | "name">;
  gpusReady: Gauge<"namespace" | "name">;
  capacityPendingShards: Gauge<"namespace" | "name">;
  p99PredictedMs: Gauge<"namespace" | "name">;
  p99ObservedMs: Gauge<"namespace" | "name">;
  sloTargetMs: Gauge<"namespace" | "name">;
  costUsdPerHour: Gauge<"namespace" | "name">;
  balancedness: Gauge<"namespace" | "name">;
  movedFraction: Gauge<"namespace" | "name">;
  /** InPlace: shards that refused an in-place move or missed its deadline (each stall once). */
  rebalanceStalled: Counter<"namespace" | "name" | "reason">;
  apiWrites: Counter<"verb" | "resource">;
  metricsQueryErrors: Counter<"source">;
  /** Drops every series of a deleted MoEDeployment. */
  forgetDeployment(namespace: string, name: string): void;
}

type Registers = Registry[];
const DEPLOYMENT_LABELS = ["namespace", "name"] as const;

/** Controller machinery: reconciles, work queue, leadership, workers, watches (controller-runtime names where one exists). */
function registerRuntimeMetrics(
  r: Registers,
): Pick<
  OperatorMetrics,
  | "reconcileTotal"
  | "reconcileErrors"
  | "reconcileTime"
  | "workqueueDepth"
  | "workqueueRetries"
  | "leaderElectionStatus"
  | "activeWorkers"
  | "watchRestarts"
> {
  return {
    reconcileTotal: new Counter({
      name: "controller_runtime_reconcile_total",
      help: "Reconciliations per controller and result (success, error, requeue, requeue_after).",
      labelNames: ["controller", "result"],
      registers: r,
    }),
    reconcileErrors: new Counter({
      name: "controller_runtime_reconcile_errors_total",
      help: "Reconciliations that returned an error.",
      labelNames: ["controller"],
      registers: r,
    }),
    reconcileTime: new Histogram({
      name: "controller_runtime_reconcile_time_seconds",
      help: "Time per reconciliation.",
      labelNames: ["controller"],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: r,
    }),
    workqueueDepth: new Gauge({
      name: "workqueue_depth",
      help: "Current depth of the work queue.",
      labelNames: ["name"],
      registers: r,
    }),
    workqueueRetries: new Counter({
      name: "workqueue_retries_total",
      help: "Retries (rate-limited re-adds) handled by the work queue.",
      labelNames: ["name"],
      registers: r,
    }),
    leaderElectionStatus: new Gauge({
      name: "leader_election_master_status",
      help: "1 while this replica holds the leader lease.",
      labelNames: ["name"],
      registers: r,
    }),
    activeWorkers: new Gauge({
      name: "controller_runtime_active_workers",
      help: "Worker loops running per controller (waiting for leadership or reconciling).",
      labelNames: ["controller"],
      registers: r,
    }),
    watchRestarts: new Counter({
      name: "moe_operator_watch_restarts_total",
      help: "Watch restarts after errors, per resource.",
      labelNames: ["resource"],
      registers: r,
    }),
  };
}

/** Per-MoEDeployment decision and capacity series (removed by forgetDeployment). */
function registerDeploymentMetrics(
  r: Registers,
): Pick<
  OperatorMetrics,
  | "decisions"
  | "gpusDesired"
  | "gpusCurrent"
  | "gpusReady"
  | "capacityPendingShards"
  | "p99PredictedMs"
  | "p99ObservedMs"
  | "sloTargetMs"
  | "costUsdPerHour"
  | "balancedness"
  | "movedFraction"
  | "rebalanceStalled"
> {
  const dep = DEPLOYMENT_LABELS;
  return {
    rebalanceStalled: new Counter({
      name: "moe_operator_rebalance_stalled_total",
      help: "Expert shards that refused an in-place move (reason Refused), did not acknowledge it in time (Timeout), or had no free expert slots for their next load with nothing they could release while no other shard could move (NoRoom), and were replaced. The RebalanceStalled condition and event name the pod.",
      labelNames: ["namespace", "name", "reason"],
      registers: r,
    }),
    decisions: new Counter({
      name: "moe_operator_decisions_total",
      help: "Capacity decisions by reason.",
      labelNames: ["namespace", "name", "reason"],
      registers: r,
    }),
    gpusDesired: new Gauge({
      name: "moe_operator_gpus_desired",
      help: "GPUs the policy wants.",
      labelNames: dep,
      registers: r,
    }),
    gpusCurrent: new Gauge({
      name: "moe_operator_gpus_current",
      help: "GPUs held by existing expert shards.",
      labelNames: dep,
      registers: r,
    }),
    gpusReady: new Gauge({
      name: "moe_operator_gpus_ready",
      help: "GPUs held by Ready expert shards.",
      labelNames: dep,
      registers: r,
    }),
    capacityPendingShards: new Gauge({
      name: "moe_operator_capacity_pending_shards",
      help: "Shard pods the scheduler could not place for longer than spec.scaling.pendingTimeoutSeconds (the CapacityPending condition names the GPU resource); topology WideEP: the GPUs missing in groups pending that long. Not counted as capacity.",
      labelNames: dep,
      registers: r,
    }),
    p99PredictedMs: new Gauge({
      name: "moe_operator_latency_p99_predicted_ms",
      help: "Predicted p99 of the SLO metric at the desired capacity.",
      labelNames: dep,
      registers: r,
    }),
    p99ObservedMs: new Gauge({
      name: "moe_operator_latency_p99_observed_ms",
      help: "Observed p99 of the SLO metric.",
      labelNames: dep,
      registers: r,
    }),
    sloTargetMs: new Gauge({
      name: "moe_operator_slo_target_ms",
      help: "SLO target of the latency metric.",
      labelNames: dep,
      registers: r,
    }),
    costUsdPerHour: new Gauge({
      name: "moe_operator_cost_usd_per_hour",
      help: "Cost of the GPUs held now.",
      labelNames: dep,
      registers: r,
    }),
    balancedness: new Gauge({
      name: "moe_operator_placement_balancedness",
      help: "Mean GPU load / max GPU load of the current placement, averaged over layers.",
      labelNames: dep,
      registers: r,
    }),
    movedFraction: new Gauge({
      name: "moe_operator_placement_moved_fraction",
      help: "Fraction of expert weights moved at the last rebalance.",
      labelNames: dep,
      registers: r,
    }),
  };
}

/** Traffic to the API server and the metrics sources. */
function registerClientMetrics(r: Registers): Pick<OperatorMetrics, "apiWrites" | "metricsQueryErrors"> {
  return {
    apiWrites: new Counter({
      name: "moe_operator_api_writes_total",
      help: "Writes the operator sent to the API server.",
      labelNames: ["verb", "resource"],
      registers: r,
    }),
    metricsQueryErrors: new Counter({
      name: "moe_operator_metrics_query_errors_total",
      help: "Failed heat/latency queries.",
      labelNames: ["source"],
      registers: r,
    }),
  };
}

export function createMetrics(opts: { defaultMetrics?: boolean } = {}): OperatorMetrics {
  const registry = new Registry();
  if (opts.defaultMetrics ?? true) collectDefaultMetrics({ register: registry, prefix: "moe_operator_process_" });
  const r = [registry];
  const m = {
    registry,
    ...registerRuntimeMetrics(r),
    ...registerDeploymentMetrics(r),
    ...registerClientMetrics(r),
  };
  const perDeployment = [
    m.gpusDesired,
    m.gpusCurrent,
    m.gpusReady,
    m.capacityPendingShards,
    m.p99PredictedMs,
    m.p99ObservedMs,
    m.sloTargetMs,
    m.costUsdPerHour,
    m.balancedness,
    m.movedFraction,
  ];
  return {
    ...m,
    forgetDeployment(namespace, name) {
      for (const g of perDeployment) g.remove({ namespace, name });
    },
  };
}
