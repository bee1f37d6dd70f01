// computeStatus: the MoEDeployment status from the decision, the readings and
// what exists, as a pure function (one function per condition), so every
// condition can be unit-tested without a cluster.
import { sameJson } from "./canonical.ts";
import type { V1Deployment } from "@kubernetes/client-node";
import { ConditionType, ConditionReason } from "../../api/constants.ts";
import { routerGpuCount, type MoEDeployment, type MoEDeploymentStatus, type Condition } from "../../api/schema.ts";
import type { Decision, NodeView } from "../../domain/decide.ts";
import { apiReasonOf, isMetricsHold, prewarmApiReasonOf } from "../../domain/scaling/index.ts";
import { scheduleOf } from "./policy.ts";
import { scheduleWindowAt } from "../../domain/capacity/index.ts";
import type { RolloutPlan } from "../../domain/rollout/index.ts";
import { LOAD_TIERS, parseTierNodeKey } from "../../domain/prewarm/tiers.ts";
import { median } from "../../domain/quantile.ts";
import type { HeatReading, LatencyReading } from "./sources.ts";
import { childNames, shardSelector } from "./children.ts";
import { readRouterReady } from "./codecs/router.ts";
import type { ShardPod } from "./codecs/shard-pod.ts";
import { mergeConditions, readyCondition, type ConditionInput } from "./conditions.ts";
import type { ChildApplyError } from "./errors.ts";
import type { PlannedPlacement } from "./plan.ts";
import type { InPlacePlan } from "../../domain/inplace/index.ts";
import type { GroupPod, GroupState } from "../../domain/wideep/groups.ts";
import { rebalanceStalledCondition } from "./inplace.ts";

export interface StatusInput {
  /** The validated deployment; its status is the previous status. */
  deployment: MoEDeployment;
  decision: Decision;
  heat: HeatReading;
  latency: LatencyReading;
  router: V1Deployment | undefined;
  shardPods: readonly ShardPod[];
  /** The actuator makes the workloads (Auto); false: status reports the recommendation only. */
  managesWorkloads: boolean;
  /** The shard rollout the actuator carried out (undefined when none was). */
  rollout: RolloutPlan | undefined;
  placement: PlannedPlacement;
  applyErrors: readonly ChildApplyError[];
  nowMs: number;
  /** Conditions the actuator reported (PullRequest: GitOpsSynced). */
  actuatorConditions?: readonly ConditionInput[];
  /** GPUs on nodes matching spec.serving.gpu: free, and held by this deployment's bound shard pods. */
  gpus?: GpuSupply;
  /** Status fields the actuator keeps (PullRequest: gitops). */
  actuatorStatus?: Pick<MoEDeploymentStatus, "gitops">;
  /** InPlace: the in-place moves planned at this reconcile. */
  inPlace?: InPlacePlan;
}

export interface GpuSupply {
  /** Free GPUs on matching nodes (allocatable minus what bound pods hold). */
  readonly free: number;
  /** GPUs held by this deployment's shard pods bound to a node (one each), draining and old ones included. */
  readonly held: number;
}

/**
 * What the shared condition, status and event builders read of a decision: decide()'s Decision,
 * or a WideEP decision in GPUs (wideep.ts), so both topologies report through the same functions.
 */
export type CountVerdict = Pick<
  Decision,
  | "desiredShards"
  | "capacity"
  | "reason"
  | "message"
  | "heatProblem"
  | "usdPerHourNow"
  | "usdPerHourDesired"
  | "loadTokensPerSecond"
>;

/** A StatusInput pick whose decision may be any CountVerdict. */
type WithVerdict<K extends keyof StatusInput> = Pick<StatusInput, K> & { decision: CountVerdict };

export interface MissingGpus {
  readonly count: number;
  readonly message: string;
}

/**
 * "nvidia.com/gpu", and " on nodes with k=v,..." when spec.serving.gpu has a node selector; with
 * withAlternatives, each alternative follows as " or name (k=v,...)".
 */
export function gpuWhere(d: MoEDeployment, withAlternatives = false): string {
  const gpu = d.spec.serving.gpu;
  const labels = (s: Record<string, string> | undefined) =>
    Object.entries(s ?? {})
      .map(([k, v]) => `${k}=${v}`)
      .join(",");
  const selector = labels(gpu.nodeSelector);
  const alternatives = withAlternatives
    ? (gpu.alternatives ?? []).map((a) => ` or ${a.name} (${labels(a.nodeSelector)})`).join("")
    : "";
  return `${gpu.resourceName}${selector ? ` on nodes with ${selector}${alternatives}` : ""}`;
}

/**
 * GPUs the decided shards need that the cluster does not have: desired shards minus the GPUs this
 * deployment's shard pods hold and the free ones. Pods Pending during a rollout at the GPU bound
 * (a replacement waiting for its old pod's GPU) are not missing capacity: the GPUs they wait for
 * are held and come back when the old pods go. Undefined when nothing is missing.
 */
export function missingGpus(
  x: WithVerdict<"deployment" | "shardPods" | "managesWorkloads" | "gpus">,
): MissingGpus | undefined {
  if (!x.managesWorkloads || !x.gpus) return undefined;
  const count = x.decision.desiredShards - x.gpus.held - x.gpus.free;
  if (count <= 0) return undefined;
  const pending = x.shardPods.filter((p) => p.unschedulable && !p.ready && !p.terminating).length;
  return {
    count,
    message:
      `${count} ${gpuWhere(x.deployment)} missing: ` +
      `${x.decision.desiredShards} shards decided, ${x.gpus.held} GPUs held by shard pods, ${x.gpus.free} free; ` +
      `${pending} shard pod(s) Pending (unschedulable)`,
  };
}

/**
 * WideEP: the GPUs missing in groups with a pod unschedulable past spec.scaling.pendingTimeoutSeconds
 * (the groups CapacityPending names), in missingGpus' words. Undefined when no group is pending.
 */
export function groupsMissingGpus(d: MoEDeployment, pending: readonly GroupState[]): MissingGpus | undefined {
  const count = pending.reduce((sum, p) => sum + p.missingGpus, 0);
  if (pending.length === 0 || count <= 0) return undefined;
  const timeoutS = d.spec.scaling.pendingTimeoutSeconds;
  const groups = pending.map((p) => `group ${p.index}: ${p.missingGpus}`).join(", ");
  return {
    count,
    message: `${count} ${gpuWhere(d)} missing: ${pending.length} EP group(s) not fully scheduled after ${timeoutS} s (${groups})`,
  };
}

/**
 * WideEP: the GPUs the decided groups still need that no GPU node has room for, known before any
 * pending timeout (as missingGpus for shards): each group pod takes gpusPerNode GPUs on one node, so
 * the room is, per node, its free GPUs divided by gpusPerNode, rounded down. Pods of the decided
 * groups already bound to a node need none. Undefined when the room suffices or no node is known.
 */
export function groupsUnplaceable(
  d: MoEDeployment,
  x: {
    readonly decidedGroups: number;
    readonly pods: readonly GroupPod[];
    readonly nodes: readonly NodeView[] | undefined;
  },
): MissingGpus | undefined {
  const w = d.spec.serving.wideEP;
  if (!w || x.nodes === undefined) return undefined;
  const bound = x.pods.filter((p) => p.group < x.decidedGroups && p.scheduled && !p.terminating).length;
  const room = x.nodes.reduce((sum, n) => sum + Math.floor(Math.max(0, n.freeGpus) / w.gpusPerNode), 0);
  const missingPods = x.decidedGroups * w.nodesPerGroup - bound - room;
  if (missingPods <= 0) return undefined;
  const count = missingPods * w.gpusPerNode;
  return {
    count,
    message:
      `${count} ${gpuWhere(d)} missing: ${x.decidedGroups} EP group(s) of ${w.nodesPerGroup} pod(s) x ${w.gpusPerNode} GPUs decided, ` +
      `${bound} group pod(s) bound, room for ${room} more (a node with ${w.gpusPerNode} free GPUs each)`,
  };
}

/** Shard pods the scheduler could not place, waiting longer than the timeout since they were created, oldest first. */
export function pendingPastTimeout(
  pods: readonly ShardPod[],
  nowMs: number,
  timeoutMs: number,
): { pod: ShardPod; waitedMs: number }[] {
  return pods
    .filter((p) => p.unschedulable && !p.ready && !p.terminating)
    .map((pod) => ({ pod, waitedMs: nowMs - Date.parse(String(pod.pod.metadata?.creationTimestamp ?? "")) }))
    .filter((x) => Number.isFinite(x.waitedMs) && x.waitedMs >= timeoutMs)
    .sort((a, b) => b.waitedMs - a.waitedMs);
}

/** A return pod (gpu-fallback.ts gpuReturn) beside the live fallback pod it names: that pod serves the shard. */
function isPairedReturn(p: ShardPod, pods: readonly ShardPod[]): boolean {
  return p.returnFor !== undefined && pods.some((q) => q.name === p.returnFor && !q.terminating);
}

/**
 * CapacityPending: True naming the GPU resource, node selector and count of shard pods
 * unschedulable past the timeout; for pods already on the fallback scheduling, the alternatives too.
 */
export function capacityPendingCondition(x: Pick<StatusInput, "deployment" | "shardPods" | "nowMs">): ConditionInput {
  const type = ConditionType.CapacityPending;
  const timeoutS = x.deployment.spec.scaling.pendingTimeoutSeconds;
  // A return pod (gpu-fallback.ts gpuReturn) waiting beside the fallback pod that serves its shard: not a shortage.
  const late = pendingPastTimeout(
    x.shardPods.filter((p) => !isPairedReturn(p, x.shardPods)),
    x.nowMs,
    timeoutS * 1000,
  );
  if (late.length === 0)
    return {
      type,
      status: "False",
      reason: ConditionReason.NoPendingShards,
      message: `no shard pod has waited for a node longer than ${timeoutS} s`,
    };
  const oldest = late[0]!;
  const why = oldest.pod.pod.status?.conditions?.find((c) => c.type === "PodScheduled")?.message;
  // Fallback pods (gpu-fallback.ts) wait for the primary or any alternative: name them all.
  const fallback = late.filter((l) => l.pod.gpuFallback === true).length;
  const where =
    fallback === 0
      ? gpuWhere(x.deployment)
      : fallback === late.length
        ? gpuWhere(x.deployment, true)
        : `${gpuWhere(x.deployment)} (${fallback} of them ${gpuWhere(x.deployment, true)})`;
  return {
    type,
    status: "True",
    reason: ConditionReason.ShardsUnschedulable,
    message:
      `${late.length} ${where} pending: ` +
      `${late.length} shard pod(s) unschedulable for more than ${timeoutS} s ` +
      `(oldest ${oldest.pod.name}, ${Math.floor(oldest.waitedMs / 1000)} s${why ? `: ${why}` : ""}); not counted as capacity`,
  };
}

const round = (x: number | undefined, digits: number) =>
  x === undefined || !Number.isFinite(x) ? undefined : Number(x.toFixed(digits));

/** Shard indices with a live pod that is not draining. */
export function liveShardCount(pods: readonly ShardPod[]): number {
  return new Set(pods.filter((p) => !p.terminating && p.drainStartedMs === undefined).map((p) => p.shardIndex)).size;
}

/** Ready, live, not draining shard pods: the shards serving now (one GPU each). */
export function servingShardCount(pods: readonly ShardPod[]): number {
  return pods.filter((p) => p.ready && !p.terminating && p.drainStartedMs === undefined).length;
}

function isHolding(decision: CountVerdict): boolean {
  const r = decision.capacity?.reason;
  return r !== undefined && isMetricsHold(r);
}

export function metricsCondition(x: WithVerdict<"heat" | "latency">): ConditionInput {
  const { decision } = x;
  const problem =
    x.heat.problem ??
    x.latency.problem ??
    (decision.heatProblem ? { reason: ConditionReason.StaleData, message: decision.heatProblem } : undefined);
  // A sample the policy screened out (outlier, out of range, collection gap) holds capacity
  // like a source problem does, and says so with the policy's own numbers.
  const suspect =
    !problem && isHolding(decision) && decision.capacity
      ? { reason: ConditionReason.SuspectData, message: decision.capacity.message }
      : undefined;
  const p = problem ?? suspect;
  return p
    ? {
        type: ConditionType.MetricsAvailable,
        status: "False",
        reason: p.reason,
        message: `${p.message}; holding capacity (no scale-down while metrics are unavailable)`,
      }
    : {
        type: ConditionType.MetricsAvailable,
        status: "True",
        reason: ConditionReason.MetricsFresh,
        message: "heat and latency sources answered with fresh data",
      };
}

/** Why the SLO is (or may soon be) missed, in the spec's terms. */
function sloRisks(x: SloInput): string[] {
  const { spec } = x.deployment;
  const conflicts = x.decision.capacity?.conflicts ?? [];
  const atMax = conflicts.find((c) => c.type === "MaxGpusVsSlo");
  const budget = conflicts.find((c) => c.type === "BudgetVsSlo" || c.type === "BudgetBelowMinGpus");
  const why: string[] = [];
  if (atMax)
    why.push(`at spec.scaling.maxShards=${spec.scaling.maxShards}: the SLO needs ${atMax.requiredGpus} shards`);
  if (budget) why.push(`capped by spec.cost.maxUsdPerHour=${spec.cost.maxUsdPerHour}: ${budget.message}`);
  if (isHolding(x.decision)) why.push("metrics unavailable, holding capacity");
  const missing = x.missing ?? missingGpus(x);
  if (missing) why.push(missing.message);
  const warming = x.shardPods.filter((p) => !p.ready && !p.terminating).length;
  if (warming > 0) why.push(`${warming} shard pod(s) still warming`);
  if (x.warming) why.push(x.warming);
  return why;
}

type SloInput = WithVerdict<"deployment" | "shardPods" | "managesWorkloads" | "gpus"> & {
  /** Units still warming that are not shard pods (WideEP: groups not yet Ready). */
  warming?: string;
  /** GPUs missing, when not read from the GPU supply (WideEP: groupsMissingGpus). */
  missing?: MissingGpus;
};

export function sloCondition(x: SloInput & Pick<StatusInput, "latency">): ConditionInput {
  const { slo } = x.deployment.spec;
  const target = slo.targetLatencyMs;
  const observed = x.latency.p99Ms;
  if (observed === undefined) {
    return {
      type: ConditionType.SLOMet,
      status: "Unknown",
      reason: ConditionReason.MetricsUnavailable,
      message: `no observed ${slo.metric} p${slo.percentile}${x.latency.problem ? `: ${x.latency.problem.message}` : ""}`,
    };
  }
  const why = sloRisks(x);
  const measured = `p${slo.percentile} ${slo.metric} ${observed.toFixed(1)} ms`;
  const missing = x.missing ?? missingGpus(x);
  if (observed <= target && missing) {
    // Met now, but not with the capacity decided for it: not True while GPUs are missing.
    return {
      type: ConditionType.SLOMet,
      status: "False",
      reason: ConditionReason.InsufficientGpuCapacity,
      message: `${measured} <= target ${target} ms, but the capacity decided for the SLO is missing: ${why.join("; ")}`,
    };
  }
  if (observed <= target) {
    const risk = why.length > 0 ? ` (at risk: ${why.join("; ")})` : "";
    return {
      type: ConditionType.SLOMet,
      status: "True",
      reason: ConditionReason.WithinTarget,
      message: `${measured} <= target ${target} ms${risk}`,
    };
  }
  return {
    type: ConditionType.SLOMet,
    status: "False",
    reason: ConditionReason.AboveTarget,
    message: `${measured} > target ${target} ms${why.length ? `: ${why.join("; ")}` : "; scaling toward the target"}`,
  };
}

export function budgetCondition(x: WithVerdict<"deployment">): ConditionInput {
  const { cost } = x.deployment.spec;
  const conflicts = x.decision.capacity?.conflicts ?? [];
  const type = ConditionType.BudgetExceeded;
  if (cost.maxUsdPerHour === undefined)
    return {
      type,
      status: "False",
      reason: ConditionReason.NoBudget,
      message: "no budget set (spec.cost.maxUsdPerHour)",
    };
  const belowMin = conflicts.find((c) => c.type === "BudgetBelowMinGpus");
  if (belowMin) return { type, status: "True", reason: ConditionReason.MinimumOverBudget, message: belowMin.message };
  const vsSlo = conflicts.find((c) => c.type === "BudgetVsSlo");
  if (vsSlo || x.decision.capacity?.reason === "BudgetCapped") {
    return {
      type,
      status: "True",
      reason: ConditionReason.CappedByBudget,
      message: vsSlo?.message ?? x.decision.message,
    };
  }
  return {
    type,
    status: "False",
    reason: ConditionReason.WithinBudget,
    message: `desired capacity costs ${x.decision.usdPerHourDesired.toFixed(2)} USD/h of ${cost.maxUsdPerHour} USD/h`,
  };
}

export function prewarmingCondition(decision: Decision): ConditionInput {
  const capReason = decision.capacity?.reason;
  const reason = capReason !== undefined ? prewarmApiReasonOf(capReason) : undefined;
  return reason
    ? { type: ConditionType.Prewarming, status: "True", reason, message: decision.message }
    : {
        type: ConditionType.Prewarming,
        status: "False",
        reason: ConditionReason.NotPrewarming,
        message: "capacity follows the SLO",
      };
}

export function progressingCondition(
  x: Pick<
    StatusInput,
    "deployment" | "managesWorkloads" | "decision" | "shardPods" | "rollout" | "placement" | "inPlace"
  >,
): ConditionInput {
  const type = ConditionType.Progressing;
  if (!x.managesWorkloads)
    return {
      type,
      status: "False",
      reason: ConditionReason.Stable,
      message: `mode ${x.deployment.spec.mode}: nothing is changed in the cluster`,
    };
  const live = liveShardCount(x.shardPods);
  const want = x.decision.desiredShards;
  if (want > live)
    return {
      type,
      status: "True",
      reason: ConditionReason.ScalingUp,
      message: `${live} -> ${want} shards: ${x.decision.message}`,
    };
  if (want < live)
    return {
      type,
      status: "True",
      reason: ConditionReason.ScalingDown,
      message: `${live} -> ${want} shards: ${x.decision.message}`,
    };
  const { rollout, placement } = x;
  if (rollout && !rollout.complete) {
    return {
      type,
      status: "True",
      reason: placement.changed || placement.rebalanced ? ConditionReason.Rebalancing : ConditionReason.RollingOut,
      message: `placement v${placement.version}: ${x.inPlace ? `${x.inPlace.applied}/${x.decision.desiredShards} shards serve it, ${x.inPlace.moving} moving experts in place, ` : ""}${rollout.pendingDesired} new shard pod(s) pending, ${rollout.blocked.length} old pod(s) waiting for coverage`,
    };
  }
  return {
    type,
    status: "False",
    reason: ConditionReason.Stable,
    message: `${live} shards hold placement v${placement.version}`,
  };
}

/** Degraded: the first problem found, naming the child when a write failed. */
export function degradedCondition(
  x: Pick<
    StatusInput,
    "managesWorkloads" | "decision" | "shardPods" | "rollout" | "applyErrors" | "deployment" | "gpus"
  >,
): ConditionInput {
  const type = ConditionType.Degraded;
  const { decision } = x;
  if (x.applyErrors.length > 0)
    return {
      type,
      status: "True",
      reason: ConditionReason.ApplyFailed,
      message: x.applyErrors.map((e) => e.message).join("; "),
    };
  if (decision.placement.action === "infeasible" && !decision.placement.placement) {
    return { type, status: "True", reason: ConditionReason.PlacementInfeasible, message: decision.placement.reason };
  }
  const missing = missingGpus(x);
  if (missing) {
    return { type, status: "True", reason: ConditionReason.InsufficientGpuCapacity, message: missing.message };
  }
  if (x.managesWorkloads && x.rollout && x.rollout.uncoveredNow > 0 && x.shardPods.some((p) => p.ready)) {
    return {
      type,
      status: "True",
      reason: ConditionReason.PodsNotReady,
      message: `${x.rollout.uncoveredNow} (layer, expert) pairs have no Ready replica`,
    };
  }
  return { type, status: "False", reason: ConditionReason.AsExpected, message: "no problems" };
}

/**
 * Ready from the others. Ready means serving: a scale-up or a heat rebalance in flight keeps
 * Ready=True (Progressing reports it) as long as every (layer, expert) has a Ready replica and at
 * least minShards shards serve, so on-call does not see Ready flap at every rebalance.
 */
export function readinessCondition(
  x: StatusInput,
  degraded: ConditionInput,
  progressing: ConditionInput,
): ConditionInput {
  const { spec } = x.deployment;
  const auto = x.managesWorkloads;
  const { rollout, decision } = x;
  const version = x.placement.version;
  const routerReady = !auto || readRouterReady(x.router, spec.serving.router?.replicas ?? 0);
  const servingShards = servingShardCount(x.shardPods);
  const serving = rollout !== undefined && rollout.uncoveredNow === 0 && servingShards >= spec.scaling.minShards;
  const shardsReady = !auto || (rollout?.complete ?? false) || serving;
  const componentsMessage = !routerReady
    ? `router ${childNames(x.deployment.metadata.name!).router}: ${x.router?.status?.readyReplicas ?? 0}/${spec.serving.router?.replicas ?? 0} replicas ready`
    : !shardsReady
      ? `expert shards: ${servingShards}/${decision.desiredShards} ready at placement v${version}`
      : (rollout?.complete ?? true)
        ? `router and ${decision.desiredShards} expert shards ready at placement v${version}`
        : `serving with ${servingShards} Ready expert shards and every expert covered; rolling out placement v${version} to ${decision.desiredShards} shards (see Progressing)`;
  return readyCondition({
    recommendOnly: !auto,
    degraded,
    componentsReady: routerReady && shardsReady,
    componentsMessage,
    progressing,
  });
}

export function computeConditions(x: StatusInput): ConditionInput[] {
  const progressing = progressingCondition(x);
  const degraded = degradedCondition(x);
  return [
    readinessCondition(x, degraded, progressing),
    metricsCondition(x),
    sloCondition(x),
    budgetCondition(x),
    prewarmingCondition(x.decision),
    progressing,
    degraded,
    ...(x.managesWorkloads && x.inPlace ? [rebalanceStalledCondition(x.inPlace)] : []),
    ...(x.managesWorkloads ? [capacityPendingCondition(x)] : []),
    ...(x.actuatorConditions ?? []),
  ];
}

/** Bytes, estimated duration, chunks and longest stall of the last rebalance (kept until the next one). */
function moveCostStatus(
  x: StatusInput,
): Pick<
  NonNullable<MoEDeploymentStatus["placement"]>,
  "movedBytes" | "estimatedMoveSeconds" | "moveChunks" | "maxMoveStallSeconds"
> {
  const prev = x.deployment.status?.placement;
  const cost = x.decision.placement.moveCost;
  if (!(x.placement.rebalanced && x.placement.changed) || !cost)
    return {
      movedBytes: prev?.movedBytes,
      estimatedMoveSeconds: prev?.estimatedMoveSeconds,
      moveChunks: prev?.moveChunks,
      maxMoveStallSeconds: prev?.maxMoveStallSeconds,
    };
  return {
    movedBytes: cost.bytes,
    estimatedMoveSeconds: round(cost.estimatedSeconds, 6),
    moveChunks: cost.chunks.length,
    maxMoveStallSeconds: round(cost.maxStallSeconds, 6),
  };
}

function placementStatus(x: StatusInput, nowIso: string): MoEDeploymentStatus["placement"] {
  const { decision, placement } = x;
  const prev = x.deployment.status?.placement;
  if (!x.managesWorkloads || decision.placement.hash === undefined) return prev;
  const target = decision.placement.placement;
  return {
    version: placement.version,
    hash: decision.placement.hash,
    configMapName: childNames(x.deployment.metadata.name!).placement,
    balancedness: round(decision.placement.metrics?.balancedness, 3) ?? prev?.balancedness,
    movedFraction:
      placement.rebalanced && placement.changed ? round(decision.placement.movedFraction ?? 0, 4) : prev?.movedFraction,
    ...moveCostStatus(x),
    redundantSlotsPerLayer: target
      ? Math.max(0, target.gpus.reduce((s, g) => s + g.slotCount, 0) - x.deployment.spec.model.routedExperts)
      : undefined,
    lastRebalanceTime: decision.placement.heatRebalance && placement.changed ? nowIso : prev?.lastRebalanceTime,
    appliedShards: x.inPlace?.applied,
    movingShards: x.inPlace?.moving,
  };
}

export function recommendation(
  x: Pick<StatusInput, "deployment"> & {
    decision: CountVerdict & Pick<Decision, "placement">;
    /** Topology WideEP: the EP groups (shards and gpus count their GPUs). */
    groups?: number;
  },
  nowIso: string,
): MoEDeploymentStatus["recommendation"] {
  const { decision } = x;
  const core = {
    shards: decision.desiredShards,
    ...(x.groups !== undefined ? { groups: x.groups } : {}),
    gpus: decision.desiredShards + routerGpuCount(x.deployment.spec),
    usdPerHour: round(decision.usdPerHourDesired, 2),
    placementHash: decision.placement.hash,
    movedFraction: round(decision.placement.movedFraction, 4),
    balancedness: round(decision.placement.metrics?.balancedness, 3),
    reason: apiReasonOf(decision.reason),
    message: decision.message.slice(0, 4000),
  };
  const prev = x.deployment.status?.recommendation;
  const same = prev && sameJson({ ...prev, time: undefined }, { ...core, time: undefined });
  return same ? prev : { time: nowIso, ...core };
}

/** The lead the decision used and the cold starts learned per reported tier (rounded: 0.1 s). */
export function coldStartStatus(x: Pick<StatusInput, "decision">): MoEDeploymentStatus["coldStart"] {
  const signals = x.decision.capacity?.signals;
  if (!signals) return undefined;
  const byTier = x.decision.nextCapacityState.tierLeadTime?.byTier ?? {};
  const tiers = LOAD_TIERS.flatMap((tier) => {
    const samples = byTier[tier]?.samplesMs ?? [];
    if (samples.length === 0) return [];
    return [{ tier, samples: samples.length, medianSeconds: round(median(samples) / 1000, 1)! }];
  });
  const byNodeType = Object.entries(x.decision.nextCapacityState.tierLeadTime?.byTierNode ?? {})
    .flatMap(([key, state]) => {
      const pair = parseTierNodeKey(key);
      if (!pair || state.samplesMs.length === 0) return [];
      return [{ ...pair, samples: state.samplesMs.length, medianSeconds: round(median(state.samplesMs) / 1000, 1)! }];
    })
    .sort((a, b) => LOAD_TIERS.indexOf(a.tier) - LOAD_TIERS.indexOf(b.tier) || a.nodeType.localeCompare(b.nodeType));
  return {
    leadSeconds: round(signals.leadTimeMs / 1000, 1)!,
    nextLoadTier: x.decision.nextLoadTier,
    tiers: tiers.length > 0 ? tiers : undefined,
    nextNodeType: x.decision.nextNodeType,
    byNodeType: byNodeType.length > 0 ? byNodeType : undefined,
  };
}

export function latencyStatus(x: Pick<StatusInput, "deployment" | "latency">): MoEDeploymentStatus["latency"] {
  const { slo } = x.deployment.spec;
  const prev = x.deployment.status?.latency;
  const observedMs = round(x.latency.p99Ms, 1);
  const atMs = x.latency.atMs;
  // When the value was measured. A reading equal to the one in status keeps its time: steady
  // state makes no status writes (the time would otherwise change on every refresh).
  const sampleTime =
    x.latency.p99Ms === undefined || atMs === undefined || !Number.isFinite(atMs)
      ? undefined
      : prev?.sampleTime !== undefined && prev.observedMs === observedMs
        ? prev.sampleTime
        : new Date(atMs).toISOString();
  return { metric: slo.metric, percentile: slo.percentile, observedMs, targetMs: slo.targetLatencyMs, sampleTime };
}

export function costStatus(x: WithVerdict<"managesWorkloads">): MoEDeploymentStatus["cost"] {
  const usdPerHour = round(x.managesWorkloads ? x.decision.usdPerHourNow : 0, 2) ?? 0;
  const tokens = x.decision.loadTokensPerSecond;
  return {
    usdPerHour,
    usdPerMillionTokens:
      tokens && tokens > 0 && usdPerHour > 0 ? round((usdPerHour / (tokens * 3600)) * 1e6, 4) : undefined,
  };
}

export function lastScale(
  x: WithVerdict<"deployment" | "managesWorkloads">,
  nowIso: string,
): MoEDeploymentStatus["lastScale"] {
  const prev = x.deployment.status;
  const { decision } = x;
  if (!x.managesWorkloads || prev?.desiredShards === undefined || prev.desiredShards === decision.desiredShards)
    return prev?.lastScale;
  return {
    time: nowIso,
    fromShards: prev.desiredShards,
    toShards: decision.desiredShards,
    reason: apiReasonOf(decision.reason),
    message: decision.message.slice(0, 4000),
  };
}

export function nextPrewarm(
  spec: MoEDeployment["spec"],
  nowMs: number,
  prev: MoEDeploymentStatus["nextPrewarm"],
): MoEDeploymentStatus["nextPrewarm"] {
  let best: { atMs: number; name: string; minShards: number } | undefined;
  for (const s of spec.prewarm.schedules ?? []) {
    try {
      const w = scheduleWindowAt(scheduleOf(s), nowMs);
      if (w.open || w.opensAtMs === undefined) continue;
      const atMs = w.opensAtMs - spec.prewarm.coldStartSeconds * 1000;
      if (!best || atMs < best.atMs) best = { atMs, name: s.name, minShards: s.minShards };
    } catch {
      /* invalid schedules are reported by the semantic validator */
    }
  }
  if (!best) return undefined;
  const next = {
    time: new Date(best.atMs).toISOString(),
    source: "Schedule" as const,
    scheduleName: best.name,
    minShards: best.minShards,
  };
  return prev && sameJson(prev, next) ? prev : next;
}

/** The whole status. Pure: same input, same output (time comes in as nowMs). */
export function computeStatus(x: StatusInput): MoEDeploymentStatus {
  const d = x.deployment;
  const nowIso = new Date(x.nowMs).toISOString();
  const auto = x.managesWorkloads;
  const routerGpus = routerGpuCount(d.spec);
  const live = liveShardCount(x.shardPods);
  const status: MoEDeploymentStatus = {
    observedGeneration: d.metadata.generation,
    conditions: mergeConditions(
      d.status?.conditions as Condition[] | undefined,
      computeConditions(x),
      d.metadata.generation,
      nowIso,
    ),
    selector: shardSelector(d.metadata.name!),
    currentShards: auto ? live : 0,
    desiredShards: auto ? x.decision.desiredShards : undefined,
    currentGpus: auto ? live + routerGpus : 0,
    desiredGpus: x.decision.desiredShards + routerGpus,
    placement: placementStatus(x, nowIso),
    latency: latencyStatus(x),
    cost: costStatus(x),
    coldStart: coldStartStatus(x),
    lastScale: lastScale(x, nowIso),
    nextPrewarm: nextPrewarm(d.spec, x.nowMs, d.status?.nextPrewarm),
    recommendation: recommendation(x, nowIso),
    gitops: x.actuatorStatus?.gitops,
  };
  return dropUndefined(status);
}

export function dropUndefined<T>(o: T): T {
  return JSON.parse(JSON.stringify(o)) as T;
}
