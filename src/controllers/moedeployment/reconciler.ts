// reconcile(key): snapshot from caches and metric sources -> decide -> apply
// children (server-side apply, make-before-break shard rollout) -> write status
// once, only when it changed. Level-based: it never looks at which event woke it.
import type { V1ConfigMap, V1Deployment, V1Node, V1Pod } from "@kubernetes/client-node";
import type { Logger } from "pino";
import {
  API_GROUP, API_GROUP_VERSION, API_VERSION, KIND, PLURAL, Label, LabelValue, Annotation, ConditionType, ConditionReason,
  type ConditionReasonName,
} from "../../api/constants.ts";
import { formatIssues, parseMoEDeployment } from "../../api/parse.ts";
import { moeLayerCount, routerGpuCount, type MoEDeployment, type MoEDeploymentStatus, type Condition } from "../../api/schema.ts";
import { decide, type Decision, type DecisionSnapshot, type HeatBasis, type NodeView, type ShardView } from "../../domain/decide.ts";
import { isMetricsHold } from "../../domain/scaling/index.ts";
import { scheduleWindowAt, type CapacityState } from "../../domain/capacity/index.ts";
import { parsePlacement, placementHash, type Placement } from "../../domain/placement/index.ts";
import { planRollout, type DesiredShard, type ShardPodView, type RolloutPlan } from "../../domain/rollout/index.ts";
import type { KubeClient } from "../../adapters/kube.ts";
import { isKind, KubeApiError } from "../../adapters/kube-errors.ts";
import type { Clock } from "../../runtime/clock.ts";
import type { OperatorMetrics } from "../../observability/metrics.ts";
import { policyFromSpec } from "./policy.ts";
import { checkPodTemplatePolicies, DEFAULT_POD_POLICY, type PodTemplatePolicy } from "./pod-policy.ts";
import { readHeat, readLatency, type HeatReading, type LatencyReading, type SourceDeps } from "./sources.ts";
import { SourcePoller } from "./poller.ts";
import {
  ShardAnnotation, ShardLabel, childNames, expertSetHash, renderPlacementConfigMap, renderRouter, renderShardPod, shardExperts, shardSelector,
} from "./children.ts";
import { mergeConditions, readyCondition, type ConditionInput } from "./conditions.ts";
import { gpusRequestedByNode, type PodGpuView } from "./pod-gpus.ts";
import type { PullRequestSync } from "../../gitops/sync.ts";
import { boundObservation } from "../../gitops/observe.ts";

export interface Cache<T> {
  list(namespace?: string): readonly T[];
  get(name: string, namespace?: string): T | undefined;
}

export interface ReconcilerConfig {
  /** Decision cadence when nothing else wakes the reconciler. */
  reconcileIntervalMs: number;
  /** Seconds between a shard's drain mark and its deletion. */
  drainSeconds: number;
  /** Replacement shard pods not yet Ready at once. */
  maxSurge: number;
  /** Longest a reconcile waits for its deployment's source read; the read goes on in the background. */
  sourceWaitMs: number;
  component: string;
  /** What pod templates may ask for; default DEFAULT_POD_POLICY (restricted). */
  podPolicy?: PodTemplatePolicy;
}

export interface ReconcilerDeps {
  kube: KubeClient;
  moeds: Cache<MoEDeploymentObject>;
  /** The operator's own pods (managed-by label), full objects. */
  pods: Cache<V1Pod>;
  /** Every pod in the cluster, projected to what GPU accounting needs. */
  podGpus: Cache<PodGpuView>;
  deployments: Cache<V1Deployment>;
  configMaps: Cache<V1ConfigMap>;
  nodes: Cache<V1Node>;
  sources: SourceDeps;
  clock: Clock;
  logger: Logger;
  metrics: OperatorMetrics;
  config: ReconcilerConfig;
  /** Asks for key to be reconciled again (a background source read finished). */
  requeue?: (key: string) => void;
  /** Mode PullRequest (src/gitops): proposals to Git, off the reconcile worker. */
  gitops?: PullRequestSync;
}

/** A MoEDeployment as it comes from the API server (not yet validated). */
export interface MoEDeploymentObject {
  apiVersion?: string;
  kind?: string;
  metadata?: { name?: string; namespace?: string; uid?: string; generation?: number; resourceVersion?: string; deletionTimestamp?: Date | string; creationTimestamp?: Date | string };
  spec?: unknown;
  status?: MoEDeploymentStatus;
}

export interface ReconcileResult {
  requeueAfterMs?: number;
}

interface Memory {
  uid: string;
  trackingSinceMs: number;
  capacityState?: CapacityState;
  lastGoodHeat?: number[][];
  /** When a due heat rebalance was last evaluated and kept (in memory: re-evaluated after a restart). */
  rebalanceEvaluatedMs?: number;
  coldStartsSeen: Set<string>;
  lastDecision?: Decision;
}

const round = (x: number | undefined, digits: number) => (x === undefined || !Number.isFinite(x) ? undefined : Number(x.toFixed(digits)));

export class MoEDeploymentReconciler {
  readonly #d: ReconcilerDeps;
  readonly #memory = new Map<string, Memory>();
  readonly #poller: SourcePoller;

  constructor(deps: ReconcilerDeps) {
    this.#d = deps;
    this.#poller = new SourcePoller({ clock: deps.clock, waitMs: deps.config.sourceWaitMs, onRefreshed: (key) => deps.requeue?.(key) });
  }

  /** Decision inputs kept between reconciles (for tests and the status endpoint). */
  memoryOf(namespace: string, name: string): Readonly<Memory> | undefined {
    return this.#memory.get(`${namespace}/${name}`);
  }

  async reconcile(key: string): Promise<ReconcileResult> {
    const [namespace, name] = key.split("/") as [string, string];
    const { logger: rootLogger, clock } = this.#d;
    const log = rootLogger.child({ moedeployment: key });
    const obj = this.#d.moeds.get(name, namespace);
    if (!obj || obj.metadata?.deletionTimestamp) {
      // Owned children are garbage-collected through their owner references.
      this.#memory.delete(key);
      this.#poller.forget(key);
      this.#d.gitops?.forget(key);
      this.#d.metrics.forgetDeployment(namespace, name);
      return {};
    }
    const nowMs = clock.nowMs();
    const nowIso = new Date(nowMs).toISOString();
    let mem = this.#memory.get(key);
    if (!mem || mem.uid !== obj.metadata?.uid) {
      mem = { uid: obj.metadata?.uid ?? "", trackingSinceMs: nowMs, coldStartsSeen: new Set() };
      this.#memory.set(key, mem);
    }

    const parsed = parseMoEDeployment({ ...obj, apiVersion: obj.apiVersion ?? API_GROUP_VERSION, kind: obj.kind ?? KIND });
    if (!parsed.ok) {
      log.warn({ issues: parsed.issues }, "invalid MoEDeployment spec");
      await this.#refuse(obj, ConditionReason.InvalidSpec, formatIssues(parsed.issues), nowMs);
      return {}; // terminal until the spec changes
    }
    const rejected = checkPodTemplatePolicies(parsed.value.spec, this.#d.config.podPolicy ?? DEFAULT_POD_POLICY);
    if (rejected.length > 0) {
      log.warn({ violations: rejected }, "pod template rejected by the pod policy");
      await this.#refuse(obj, ConditionReason.PodTemplateRejected, formatIssues(rejected.map((v) => ({ ...v, severity: "error" as const }))), nowMs);
      return {}; // terminal until the spec (or the operator's policy) changes
    }
    const d = parsed.value;
    const spec = d.spec;
    const cfg = this.#d.config;
    const names = childNames(name);

    // --- Snapshot -------------------------------------------------------------------------
    const ownedBy = (o: { metadata?: { ownerReferences?: { uid?: string }[] } }) => o.metadata?.ownerReferences?.some((r) => r.uid === d.metadata.uid) ?? false;
    const shardPods = this.#d.pods.list(namespace).filter((p) => p.metadata?.labels?.[Label.deployment] === name && p.metadata?.labels?.[Label.component] === LabelValue.componentExpertShard && ownedBy(p));
    const router = this.#d.deployments.get(names.router, namespace);
    const placementCm = this.#d.configMaps.get(names.placement, namespace);
    const current = readPublishedPlacement(placementCm);

    const refreshMs = spec.heatSource.refreshIntervalSeconds * 1000;
    const { heat: heatReading, latency: latencyReading } = await this.#readings(key, d, Math.min(refreshMs, cfg.reconcileIntervalMs));

    const nodes = this.#nodeViews(spec, d);
    const podViews = shardPods.map(shardPodView).filter((v): v is ShardPodView & { pod: V1Pod } => v !== undefined);
    const shardViews = this.#shardViews(podViews, nodes);
    const coldStarts = this.#newColdStarts(shardPods, mem);
    const policy = policyFromSpec(spec, { reconcileIntervalMs: cfg.reconcileIntervalMs, routerUsdPerGpuHour: undefined, maxSurge: cfg.maxSurge });
    const provisionedShards = spec.mode === "Auto"
      ? (d.status?.desiredShards ?? new Set(podViews.filter((p) => !p.terminating).map((p) => p.shardIndex)).size)
      : (d.status?.recommendation?.shards ?? 0);
    const liveIndices = new Set(podViews.filter((p) => !p.terminating && p.drainStartedMs === undefined).map((p) => p.shardIndex));
    const rolloutInProgress = current !== undefined && podViews.some((p) => p.drainStartedMs !== undefined || !p.ready);

    const snapshot: DecisionSnapshot = {
      heat: heatReading.heat,
      lastGoodHeat: mem.lastGoodHeat,
      observedP99Ms: latencyReading.p99Ms,
      shards: spec.mode === "Auto" ? shardViews : [],
      provisionedShards,
      currentPlacement: current?.placement,
      currentPlacementHeatBasis: current?.heatBasis,
      lastRebalanceMs: latest(d.status?.placement?.lastRebalanceTime ? Date.parse(d.status.placement.lastRebalanceTime) : undefined, mem.rebalanceEvaluatedMs),
      rolloutInProgress,
      coldStartDurationsMs: coldStarts,
      capacityState: mem.capacityState,
      trackingSinceMs: mem.trackingSinceMs,
      nodes,
      readySinceMs: readySince(shardPods),
      lastScaleUpMs: d.status?.lastScale && d.status.lastScale.toShards > d.status.lastScale.fromShards ? Date.parse(d.status.lastScale.time) : undefined,
    };

    // --- Decide ---------------------------------------------------------------------------
    const decision = decide(snapshot, policy, nowMs);
    mem.capacityState = decision.nextCapacityState;
    if (decision.heatUsable && heatReading.heat) mem.lastGoodHeat = heatReading.heat.heat.map((l) => [...l]);
    mem.lastDecision = decision;
    if (decision.placement.rebalanceEvaluated) mem.rebalanceEvaluatedMs = nowMs;

    const gitops = spec.mode === "PullRequest" ? this.#d.gitops?.observe(d, boundObservation(d, decision, latencyReading.p99Ms, nowMs)) : this.#d.gitops?.retire(d);

    const targetPlacement = decision.placement.placement;
    const targetHash = decision.placement.hash;
    const changedPlacement = targetPlacement !== undefined && targetHash !== current?.hash;
    const version = changedPlacement ? (current?.version ?? 0) + 1 : current?.version ?? 0;
    const rebalanced = decision.placement.action === "replan" || decision.placement.action === "initial";
    const desired: DesiredShard[] = [];
    if (targetPlacement) {
      for (let g = 0; g < targetPlacement.gpus.length; g++) {
        const experts = shardExperts(targetPlacement, g);
        desired.push({ shardIndex: g, experts, setHash: expertSetHash(experts), nodeName: decision.shardNodes[g] });
      }
    }
    const layerCount = moeLayerCount(spec.model);
    let rollout: RolloutPlan | undefined;
    const applyErrors: string[] = [];

    // --- Act (Auto mode only) -------------------------------------------------------------
    if (spec.mode === "Auto") {
      try {
        await this.#applyIfChanged(renderRouter(d), router);
      } catch (err) {
        applyErrors.push((err as Error).message);
      }
      if (targetPlacement && targetHash && changedPlacement) {
        try {
          await this.#d.kube.apply(renderPlacementConfigMap(d, {
            placement: targetPlacement, hash: targetHash, version, denseLayers: spec.model.denseLayers, heatBasis: decision.placement.heatBasis,
            shards: desired.map((s) => ({ shardIndex: s.shardIndex, setHash: s.setHash })),
          }));
        } catch (err) {
          applyErrors.push((err as Error).message);
        }
      }
      if (targetPlacement && targetHash && applyErrors.length === 0) {
        rollout = planRollout({
          pods: podViews, desired, layerCount, expertCount: spec.model.routedExperts, nowMs,
          drainSeconds: cfg.drainSeconds, maxSurge: cfg.maxSurge,
        });
        await this.#executeRollout(d, rollout, podViews, { version, hash: targetHash }, applyErrors, log);
      }
    }

    // --- Status ---------------------------------------------------------------------------
    const status = this.#status(d, decision, {
      heat: heatReading, latency: latencyReading, router, podViews, rollout, desired, version, rebalanced, changedPlacement,
      applyErrors, nowMs, nowIso, liveIndices, gitops,
    });
    const previousDesired = d.status?.desiredShards;
    await this.#writeStatus(obj, status);
    this.#observe(d, decision, status);

    // Events for what changed (only on change, so steady state writes nothing).
    if (spec.mode === "Auto" && previousDesired !== undefined && previousDesired !== decision.desiredShards) {
      const up = decision.desiredShards > previousDesired;
      await this.#event(obj, "Normal", up ? "ScaledUp" : "ScaledDown", `${previousDesired} -> ${decision.desiredShards} shards (${decision.reason}): ${decision.message}`, nowMs);
    }
    if (spec.mode === "Auto" && rebalanced && decision.placement.action === "replan" && changedPlacement) {
      await this.#event(obj, "Normal", "Rebalanced", `placement v${version}: ${decision.placement.reason}; moved ${((decision.placement.movedFraction ?? 0) * 100).toFixed(1)}% of expert weights`, nowMs);
    }
    const wasMetrics = d.status?.conditions?.find((c) => c.type === ConditionType.MetricsAvailable)?.status;
    const isMetrics = status.conditions?.find((c) => c.type === ConditionType.MetricsAvailable);
    if (isMetrics?.status === "False" && wasMetrics !== "False") await this.#event(obj, "Warning", isMetrics.reason, isMetrics.message, nowMs);
    const wasSlo = d.status?.conditions?.find((c) => c.type === ConditionType.SLOMet)?.status;
    const isSlo = status.conditions?.find((c) => c.type === ConditionType.SLOMet);
    if (isSlo?.status === "False" && wasSlo !== "False") await this.#event(obj, "Warning", "SLOAtRisk", isSlo.message, nowMs);
    if (applyErrors.length > 0) throw new Error(`applying children of ${key} failed: ${applyErrors.join("; ")}`);

    const waits = [cfg.reconcileIntervalMs, refreshMs];
    if (rollout?.requeueAfterMs !== undefined) waits.push(Math.max(rollout.requeueAfterMs, 200));
    return { requeueAfterMs: Math.min(...waits) };
  }

  // ---------------------------------------------------------------------------------------

  /** Heat and latency read concurrently in the background; this reconcile waits at most config.sourceWaitMs. */
  async #readings(key: string, d: MoEDeployment, dueMs: number): Promise<{ heat: HeatReading; latency: LatencyReading }> {
    const spec = d.spec;
    const target = { namespace: d.metadata.namespace!, name: d.metadata.name! };
    const fingerprint = JSON.stringify([d.metadata.uid, spec.heatSource, spec.latencySource, spec.model, spec.slo]);
    const sources = this.#d.sources;
    const metrics = this.#d.metrics;
    const r = await this.#poller.readings(key, fingerprint, dueMs, async () => {
      const [heat, latency] = await Promise.all([
        readHeat(spec.heatSource, spec.model, target, sources),
        readLatency(spec.latencySource, spec.slo, target, sources),
      ]);
      if (heat.problem) metrics.metricsQueryErrors.inc({ source: "heat" });
      if (latency.problem) metrics.metricsQueryErrors.inc({ source: "latency" });
      return { heat, latency };
    });
    if (r) return r;
    const pending = { reason: "NoData" as const, message: `sources have not answered yet (this reconcile waited ${this.#d.config.sourceWaitMs} ms; the read goes on in the background)` };
    return { heat: { problem: pending }, latency: { problem: pending } };
  }

  #nodeViews(spec: MoEDeployment["spec"], d: MoEDeployment): NodeView[] {
    const resource = spec.serving.gpu.resourceName;
    const selector = spec.serving.gpu.nodeSelector ?? {};
    const requested = gpusRequestedByNode(this.#d.podGpus.list(), resource);
    // Pending pods of ours will take GPUs too: count them against their preferred node.
    for (const p of this.#d.pods.list(d.metadata.namespace)) {
      if (p.spec?.nodeName || p.metadata?.labels?.[Label.deployment] !== d.metadata.name) continue;
      const pref = p.spec?.affinity?.nodeAffinity?.preferredDuringSchedulingIgnoredDuringExecution?.[0]?.preference.matchExpressions?.[0]?.values?.[0];
      if (pref) requested.set(pref, (requested.get(pref) ?? 0) + 1);
    }
    const out: NodeView[] = [];
    for (const n of this.#d.nodes.list()) {
      const labels = n.metadata?.labels ?? {};
      if (n.spec?.unschedulable) continue;
      if (!n.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True")) continue;
      if (Object.entries(selector).some(([k, v]) => labels[k] !== v)) continue;
      const allocatable = Number(n.status?.allocatable?.[resource] ?? 0);
      if (!(allocatable > 0)) continue;
      out.push({
        name: n.metadata!.name!,
        domain: labels[spec.placement.topologyKey] ?? n.metadata!.name!,
        freeGpus: Math.max(0, allocatable - (requested.get(n.metadata!.name!) ?? 0)),
        usdPerGpuHour: nodePrice(labels, spec.cost),
      });
    }
    return out.sort((a, b) => a.name.localeCompare(b.name));
  }

  #shardViews(pods: (ShardPodView & { pod: V1Pod })[], nodes: NodeView[]): ShardView[] {
    const byIndex = new Map<number, ShardPodView & { pod: V1Pod }>();
    for (const p of pods) {
      if (p.terminating || p.drainStartedMs !== undefined) continue;
      const prev = byIndex.get(p.shardIndex);
      // Prefer a Ready pod for the index (the one serving).
      if (!prev || (!prev.ready && p.ready)) byIndex.set(p.shardIndex, p);
    }
    return [...byIndex.values()].sort((a, b) => a.shardIndex - b.shardIndex).map((p) => {
      const nodeName = p.pod.spec?.nodeName;
      const node = nodes.find((n) => n.name === nodeName);
      return { shardIndex: p.shardIndex, nodeName, domain: node?.domain, ready: p.ready, usdPerGpuHour: node?.usdPerGpuHour };
    });
  }

  #newColdStarts(pods: V1Pod[], mem: Memory): number[] {
    const out: number[] = [];
    for (const p of pods) {
      const uid = p.metadata?.uid;
      if (!uid || mem.coldStartsSeen.has(uid)) continue;
      const ready = p.status?.conditions?.find((c) => c.type === "Ready" && c.status === "True");
      if (!ready?.lastTransitionTime || !p.metadata?.creationTimestamp) continue;
      mem.coldStartsSeen.add(uid);
      const ms = new Date(ready.lastTransitionTime).getTime() - new Date(p.metadata.creationTimestamp).getTime();
      if (Number.isFinite(ms) && ms >= 0) out.push(ms);
    }
    return out;
  }

  async #applyIfChanged(obj: V1Deployment, live: V1Deployment | undefined): Promise<void> {
    const hash = fnvOfObject(obj);
    if (live?.metadata?.annotations?.["moe.dev/applied-hash"] === hash) return;
    obj.metadata = { ...obj.metadata, annotations: { ...obj.metadata?.annotations, "moe.dev/applied-hash": hash } };
    await this.#d.kube.apply(obj);
  }

  async #executeRollout(d: MoEDeployment, plan: RolloutPlan, pods: (ShardPodView & { pod: V1Pod })[], placement: { version: number; hash: string }, errors: string[], log: Logger): Promise<void> {
    const kube = this.#d.kube;
    for (const s of plan.create) {
      try {
        await kube.create(renderShardPod(d, {
          shardIndex: s.shardIndex, experts: s.experts.map((l) => [...l]), setHash: s.setHash,
          placementVersion: placement.version, placementHash: placement.hash, preferredNode: s.nodeName,
        }));
        log.info({ shard: s.shardIndex, setHash: s.setHash, node: s.nodeName }, "created shard pod");
      } catch (err) {
        if (!isKind(err, "AlreadyExists")) errors.push((err as Error).message);
      }
    }
    const nowIso = new Date(this.#d.clock.nowMs()).toISOString();
    for (const name of plan.startDrain) {
      try {
        await kube.mergePatch({ apiVersion: "v1", kind: "Pod", namespace: d.metadata.namespace, name }, {
          metadata: { annotations: { [ShardAnnotation.drainingSince]: nowIso }, labels: { [ShardLabel.draining]: "true" } },
        });
        log.info({ pod: name }, "draining shard pod");
      } catch (err) {
        if (!isKind(err, "NotFound")) errors.push((err as Error).message);
      }
    }
    for (const name of plan.delete) {
      const pod = pods.find((p) => p.name === name)?.pod;
      try {
        await kube.delete({ apiVersion: "v1", kind: "Pod", namespace: d.metadata.namespace, name }, { uid: pod?.metadata?.uid });
        log.info({ pod: name }, "deleted drained shard pod");
      } catch (err) {
        if (!isKind(err, "NotFound") && !isKind(err, "Conflict")) errors.push((err as Error).message);
      }
    }
  }

  #status(d: MoEDeployment, decision: Decision, x: {
    heat: HeatReading; latency: LatencyReading; router: V1Deployment | undefined; podViews: (ShardPodView & { pod: V1Pod })[];
    rollout: RolloutPlan | undefined; desired: DesiredShard[]; version: number; rebalanced: boolean; changedPlacement: boolean;
    applyErrors: string[]; nowMs: number; nowIso: string; liveIndices: Set<number>; gitops?: ConditionInput;
  }): MoEDeploymentStatus {
    const spec = d.spec;
    const prev = d.status;
    const auto = spec.mode === "Auto";
    const routerGpus = routerGpuCount(spec);
    const conds: ConditionInput[] = [];

    // MetricsAvailable
    const problem = x.heat.problem ?? x.latency.problem ?? (decision.heatProblem ? { reason: ConditionReason.StaleData, message: decision.heatProblem } : undefined);
    const capReason = decision.capacity?.reason;
    const holding = capReason !== undefined && isMetricsHold(capReason);
    // A sample the policy screened out (outlier, out of range, collection gap) holds capacity
    // like a source problem does, and says so with the policy's own numbers.
    const suspect = !problem && holding && decision.capacity ? { reason: ConditionReason.SuspectData, message: decision.capacity.message } : undefined;
    const metricsProblem = problem ?? suspect;
    conds.push(metricsProblem
      ? { type: ConditionType.MetricsAvailable, status: "False", reason: metricsProblem.reason, message: `${metricsProblem.message}; holding capacity (no scale-down while metrics are unavailable)` }
      : { type: ConditionType.MetricsAvailable, status: "True", reason: ConditionReason.MetricsFresh, message: "heat and latency sources answered with fresh data" });

    // SLOMet
    const target = spec.slo.targetLatencyMs;
    const observed = x.latency.p99Ms;
    const conflicts = decision.capacity?.conflicts ?? [];
    const atMax = conflicts.find((c) => c.type === "MaxGpusVsSlo");
    const budget = conflicts.find((c) => c.type === "BudgetVsSlo" || c.type === "BudgetBelowMinGpus");
    const why: string[] = [];
    if (atMax) why.push(`at spec.scaling.maxShards=${spec.scaling.maxShards}: the SLO needs ${atMax.requiredGpus} shards`);
    if (budget) why.push(`capped by spec.cost.maxUsdPerHour=${spec.cost.maxUsdPerHour}: ${budget.message}`);
    if (holding) why.push("metrics unavailable, holding capacity");
    if (decision.unschedulableShards > 0) why.push(`${decision.unschedulableShards} shard(s) have no free ${spec.serving.gpu.resourceName} on any matching node`);
    const warming = x.podViews.filter((p) => !p.ready && !p.terminating).length;
    if (warming > 0) why.push(`${warming} shard pod(s) still warming`);
    if (observed === undefined) {
      conds.push({ type: ConditionType.SLOMet, status: "Unknown", reason: ConditionReason.MetricsUnavailable, message: `no observed ${spec.slo.metric} p${spec.slo.percentile}${x.latency.problem ? `: ${x.latency.problem.message}` : ""}` });
    } else if (observed <= target) {
      const risk = why.length > 0 ? ` (at risk: ${why.join("; ")})` : "";
      conds.push({ type: ConditionType.SLOMet, status: "True", reason: ConditionReason.WithinTarget, message: `p${spec.slo.percentile} ${spec.slo.metric} ${observed.toFixed(1)} ms <= target ${target} ms${risk}` });
    } else {
      conds.push({ type: ConditionType.SLOMet, status: "False", reason: ConditionReason.AboveTarget, message: `p${spec.slo.percentile} ${spec.slo.metric} ${observed.toFixed(1)} ms > target ${target} ms${why.length ? `: ${why.join("; ")}` : "; scaling toward the target"}` });
    }

    // BudgetExceeded
    if (spec.cost.maxUsdPerHour === undefined) {
      conds.push({ type: ConditionType.BudgetExceeded, status: "False", reason: ConditionReason.NoBudget, message: "no budget set (spec.cost.maxUsdPerHour)" });
    } else if (conflicts.some((c) => c.type === "BudgetBelowMinGpus")) {
      conds.push({ type: ConditionType.BudgetExceeded, status: "True", reason: ConditionReason.MinimumOverBudget, message: conflicts.find((c) => c.type === "BudgetBelowMinGpus")!.message });
    } else if (conflicts.some((c) => c.type === "BudgetVsSlo") || capReason === "BudgetCapped") {
      const c = conflicts.find((c) => c.type === "BudgetVsSlo");
      conds.push({ type: ConditionType.BudgetExceeded, status: "True", reason: ConditionReason.CappedByBudget, message: c?.message ?? decision.message });
    } else {
      conds.push({ type: ConditionType.BudgetExceeded, status: "False", reason: ConditionReason.WithinBudget, message: `desired capacity costs ${decision.usdPerHourDesired.toFixed(2)} USD/h of ${spec.cost.maxUsdPerHour} USD/h` });
    }

    // Prewarming
    const pre = capReason === "ScheduledPrewarm" ? ConditionReason.ScheduledWindow : capReason === "ForecastPrewarm" ? ConditionReason.ForecastPeak : capReason === "Burst" ? ConditionReason.BurstDetected : undefined;
    conds.push(pre
      ? { type: ConditionType.Prewarming, status: "True", reason: pre, message: decision.message }
      : { type: ConditionType.Prewarming, status: "False", reason: ConditionReason.NotPrewarming, message: "capacity follows the SLO" });

    // Progressing and Degraded
    const liveShards = x.liveIndices.size;
    const rollout = x.rollout;
    let progressing: ConditionInput;
    if (!auto) progressing = { type: ConditionType.Progressing, status: "False", reason: ConditionReason.Stable, message: `mode ${spec.mode}: nothing is changed in the cluster` };
    else if (decision.desiredShards > liveShards) progressing = { type: ConditionType.Progressing, status: "True", reason: ConditionReason.ScalingUp, message: `${liveShards} -> ${decision.desiredShards} shards: ${decision.message}` };
    else if (decision.desiredShards < liveShards) progressing = { type: ConditionType.Progressing, status: "True", reason: ConditionReason.ScalingDown, message: `${liveShards} -> ${decision.desiredShards} shards: ${decision.message}` };
    else if (rollout && !rollout.complete) progressing = { type: ConditionType.Progressing, status: "True", reason: x.changedPlacement || x.rebalanced ? ConditionReason.Rebalancing : ConditionReason.RollingOut, message: `placement v${x.version}: ${rollout.pendingDesired} new shard pod(s) pending, ${rollout.blocked.length} old pod(s) waiting for coverage` };
    else progressing = { type: ConditionType.Progressing, status: "False", reason: ConditionReason.Stable, message: `${liveShards} shards hold placement v${x.version}` };
    conds.push(progressing);

    let degraded: ConditionInput = { type: ConditionType.Degraded, status: "False", reason: ConditionReason.AsExpected, message: "no problems" };
    if (x.applyErrors.length > 0) degraded = { type: ConditionType.Degraded, status: "True", reason: ConditionReason.ApplyFailed, message: x.applyErrors.join("; ") };
    else if (decision.placement.action === "infeasible" && !decision.placement.placement) degraded = { type: ConditionType.Degraded, status: "True", reason: ConditionReason.PlacementInfeasible, message: decision.placement.reason };
    else if (auto && decision.unschedulableShards > 0) degraded = { type: ConditionType.Degraded, status: "True", reason: ConditionReason.InsufficientGpuCapacity, message: `${decision.unschedulableShards} of ${decision.desiredShards} shards have no free ${spec.serving.gpu.resourceName} on nodes matching spec.serving.gpu.nodeSelector` };
    else if (auto && rollout && rollout.uncoveredNow > 0 && x.podViews.some((p) => p.ready)) degraded = { type: ConditionType.Degraded, status: "True", reason: ConditionReason.PodsNotReady, message: `${rollout.uncoveredNow} (layer, expert) pairs have no Ready replica` };
    conds.push(degraded);
    if (x.gitops) conds.push(x.gitops);

    const routerReady = !auto || ((x.router?.status?.readyReplicas ?? 0) >= spec.serving.router.replicas && (x.router?.status?.observedGeneration ?? 0) >= (x.router?.metadata?.generation ?? 1));
    // Ready means serving: a scale-up or a heat rebalance in flight keeps Ready=True (Progressing
    // reports it) as long as every (layer, expert) has a Ready replica and at least minShards
    // shards serve, so on-call does not see Ready flap at every rebalance.
    const servingShards = x.podViews.filter((p) => p.ready && !p.terminating && p.drainStartedMs === undefined).length;
    const serving = rollout !== undefined && rollout.uncoveredNow === 0 && servingShards >= spec.scaling.minShards;
    const shardsReady = !auto || (rollout?.complete ?? false) || serving;
    const componentsMessage = !routerReady
      ? `router ${childNames(d.metadata.name!).router}: ${x.router?.status?.readyReplicas ?? 0}/${spec.serving.router.replicas} replicas ready`
      : !shardsReady
        ? `expert shards: ${servingShards}/${decision.desiredShards} ready at placement v${x.version}`
        : rollout?.complete ?? true
          ? `router and ${decision.desiredShards} expert shards ready at placement v${x.version}`
          : `serving with ${servingShards} Ready expert shards and every expert covered; rolling out placement v${x.version} to ${decision.desiredShards} shards (see Progressing)`;
    conds.unshift(readyCondition({ recommendOnly: !auto, degraded, componentsReady: routerReady && shardsReady, componentsMessage, progressing }));

    // Numbers.
    const metrics = decision.placement.metrics;
    const tokens = decision.loadTokensPerSecond;
    const usdPerHour = round(auto ? decision.usdPerHourNow : 0, 2) ?? 0;
    const lastScale = auto && prev?.desiredShards !== undefined && prev.desiredShards !== decision.desiredShards
      ? { time: x.nowIso, fromShards: prev.desiredShards, toShards: decision.desiredShards, reason: scaleReason(decision.reason), message: decision.message.slice(0, 4000) }
      : prev?.lastScale;
    const placementStatus = decision.placement.hash !== undefined ? {
      version: x.version,
      hash: decision.placement.hash,
      configMapName: childNames(d.metadata.name!).placement,
      balancedness: round(metrics?.balancedness, 3) ?? prev?.placement?.balancedness,
      movedFraction: x.rebalanced && x.changedPlacement ? round(decision.placement.movedFraction ?? 0, 4) : prev?.placement?.movedFraction,
      redundantSlotsPerLayer: decision.placement.placement ? Math.max(0, decision.placement.placement.gpus.reduce((s, g) => s + g.slotCount, 0) - spec.model.routedExperts) : undefined,
      lastRebalanceTime: decision.placement.heatRebalance && x.changedPlacement ? x.nowIso : prev?.placement?.lastRebalanceTime,
    } : prev?.placement;
    const recommendationCore = {
      shards: decision.desiredShards,
      gpus: decision.desiredShards + routerGpus,
      usdPerHour: round(decision.usdPerHourDesired, 2),
      placementHash: decision.placement.hash,
      movedFraction: round(decision.placement.movedFraction, 4),
      balancedness: round(metrics?.balancedness, 3),
      reason: scaleReason(decision.reason),
      message: decision.message.slice(0, 4000),
    };
    const prevRec = prev?.recommendation;
    const sameRec = prevRec && JSON.stringify({ ...prevRec, time: undefined }) === JSON.stringify({ ...recommendationCore, time: undefined });
    const status: MoEDeploymentStatus = {
      observedGeneration: d.metadata.generation,
      conditions: mergeConditions(prev?.conditions as Condition[] | undefined, conds, d.metadata.generation, x.nowIso),
      selector: shardSelector(d.metadata.name!),
      currentShards: auto ? liveShards : 0,
      desiredShards: auto ? decision.desiredShards : undefined,
      currentGpus: auto ? liveShards + routerGpus : 0,
      desiredGpus: decision.desiredShards + routerGpus,
      placement: auto ? placementStatus : prev?.placement,
      latency: {
        metric: spec.slo.metric,
        percentile: spec.slo.percentile,
        observedMs: round(observed, 1),
        targetMs: target,
        // When the value was measured. A reading equal to the one in status keeps its time: steady
        // state makes no status writes (the time would otherwise change on every refresh).
        sampleTime: observed === undefined || x.latency.atMs === undefined || !Number.isFinite(x.latency.atMs) ? undefined
          : prev?.latency?.sampleTime !== undefined && prev.latency.observedMs === round(observed, 1) ? prev.latency.sampleTime
          : new Date(x.latency.atMs).toISOString(),
      },
      cost: {
        usdPerHour,
        usdPerMillionTokens: tokens && tokens > 0 && usdPerHour > 0 ? round((usdPerHour / (tokens * 3600)) * 1e6, 4) : undefined,
      },
      lastScale,
      nextPrewarm: nextPrewarm(spec, x.nowMs, prev?.nextPrewarm),
      recommendation: sameRec ? prevRec : { time: x.nowIso, ...recommendationCore },
    };
    return dropUndefined(status);
  }

  /** Ready=False and Degraded=True with `reason`; one event per new message. Nothing is applied. */
  async #refuse(obj: MoEDeploymentObject, reason: ConditionReasonName, message: string, nowMs: number): Promise<void> {
    const nowIso = new Date(nowMs).toISOString();
    const already = obj.status?.conditions?.some((c) => c.type === ConditionType.Ready && c.reason === reason && c.message === message);
    const status: MoEDeploymentStatus = {
      ...obj.status,
      observedGeneration: obj.metadata?.generation,
      conditions: mergeConditions(obj.status?.conditions, [
        { type: ConditionType.Ready, status: "False", reason, message },
        { type: ConditionType.Degraded, status: "True", reason, message },
      ], obj.metadata?.generation, nowIso),
    };
    await this.#writeStatus(obj, status);
    if (!already) await this.#event(obj, "Warning", reason, message, nowMs);
  }

  async #writeStatus(obj: MoEDeploymentObject, status: MoEDeploymentStatus): Promise<void> {
    const clean = dropUndefined(status);
    if (JSON.stringify(canonical(obj.status ?? {})) === JSON.stringify(canonical(clean))) return;
    try {
      await this.#d.kube.replaceStatus(API_GROUP, API_VERSION, PLURAL, { ...obj, apiVersion: API_GROUP_VERSION, kind: KIND, status: clean } as never);
    } catch (err) {
      if (err instanceof KubeApiError && (err.kubeError.kind === "Conflict" || err.kubeError.kind === "NotFound")) {
        throw new ConflictRequeue(err.message);
      }
      throw err;
    }
  }

  async #event(obj: MoEDeploymentObject, type: "Normal" | "Warning", reason: string, message: string, nowMs: number): Promise<void> {
    try {
      await this.#d.kube.event({ apiVersion: API_GROUP_VERSION, kind: KIND, namespace: obj.metadata!.namespace, name: obj.metadata!.name!, uid: obj.metadata!.uid }, type, reason, message, this.#d.config.component, nowMs);
    } catch (err) {
      this.#d.logger.warn({ err: (err as Error).message }, "could not record event");
    }
  }

  #observe(d: MoEDeployment, decision: Decision, status: MoEDeploymentStatus): void {
    const m = this.#d.metrics;
    const l = { namespace: d.metadata.namespace!, name: d.metadata.name! };
    m.decisions.inc({ ...l, reason: decision.reason });
    m.gpusDesired.set(l, status.desiredGpus ?? 0);
    m.gpusCurrent.set(l, status.currentGpus ?? 0);
    m.sloTargetMs.set(l, d.spec.slo.targetLatencyMs);
    if (status.latency?.observedMs !== undefined) m.p99ObservedMs.set(l, status.latency.observedMs);
    const predicted = decision.capacity?.signals.predictedP99Ms;
    if (predicted !== undefined && Number.isFinite(predicted)) m.p99PredictedMs.set(l, predicted);
    m.costUsdPerHour.set(l, status.cost?.usdPerHour ?? 0);
    if (status.placement?.balancedness !== undefined) m.balancedness.set(l, status.placement.balancedness);
    if (status.placement?.movedFraction !== undefined) m.movedFraction.set(l, status.placement.movedFraction);
  }
}

/** A status write lost a race (someone changed the object): requeue quietly. */
export class ConflictRequeue extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ConflictRequeue";
  }
}

function latest(a: number | undefined, b: number | undefined): number | undefined {
  return a === undefined ? b : b === undefined ? a : Math.max(a, b);
}

/** When the most recent of the Ready, live shard pods became Ready (Ready condition transition). */
function readySince(pods: readonly V1Pod[]): number | undefined {
  let latest: number | undefined;
  for (const p of pods) {
    if (p.metadata?.deletionTimestamp) continue;
    const c = p.status?.conditions?.find((x) => x.type === "Ready" && x.status === "True");
    const t = c?.lastTransitionTime ? new Date(c.lastTransitionTime).getTime() : NaN;
    if (Number.isFinite(t)) latest = Math.max(latest ?? t, t);
  }
  return latest;
}

function readPublishedPlacement(cm: V1ConfigMap | undefined): { placement: Placement; hash: string; version: number; heatBasis?: HeatBasis } | undefined {
  const text = cm?.data?.["placement.json"];
  if (!text) return undefined;
  try {
    const parsed = parsePlacement(JSON.parse(text));
    if (!parsed.ok) return undefined;
    const basis = cm?.data?.["heat-basis"];
    return {
      placement: parsed.value,
      hash: placementHash(parsed.value),
      version: Number(cm?.data?.version ?? cm?.metadata?.annotations?.[Annotation.placementVersion] ?? 0) || 0,
      heatBasis: basis === "observed" || basis === "remembered" || basis === "none" ? basis : undefined,
    };
  } catch {
    return undefined;
  }
}

function shardPodView(p: V1Pod): (ShardPodView & { pod: V1Pod }) | undefined {
  const index = Number(p.metadata?.labels?.[Label.shardIndex]);
  const setHash = p.metadata?.labels?.[ShardLabel.expertSetHash];
  if (!Number.isInteger(index) || index < 0 || !setHash) return undefined;
  let experts: number[][] = [];
  try {
    const parsed: unknown = JSON.parse(p.metadata?.annotations?.[ShardAnnotation.experts] ?? "[]");
    if (Array.isArray(parsed)) experts = parsed.map((l) => (Array.isArray(l) ? l.filter((e): e is number => Number.isInteger(e)) : []));
  } catch {
    experts = [];
  }
  const ready = p.status?.phase === "Running" && (p.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True") ?? false);
  const drain = p.metadata?.annotations?.[ShardAnnotation.drainingSince];
  const drainMs = drain ? Date.parse(drain) : undefined;
  const unschedulable = p.status?.conditions?.some((c) => c.type === "PodScheduled" && c.status === "False" && c.reason === "Unschedulable") ?? false;
  return {
    name: p.metadata!.name!,
    unschedulable,
    shardIndex: index,
    setHash,
    experts,
    ready,
    terminating: p.metadata?.deletionTimestamp !== undefined && p.metadata?.deletionTimestamp !== null,
    drainStartedMs: drainMs !== undefined && Number.isFinite(drainMs) ? drainMs : undefined,
    pod: p,
  };
}

function nodePrice(labels: Record<string, string>, cost: MoEDeployment["spec"]["cost"]): number | undefined {
  if (cost.priceLabelKey) {
    const v = Number(labels[cost.priceLabelKey]);
    if (Number.isFinite(v) && v >= 0 && labels[cost.priceLabelKey] !== undefined) return v;
  }
  if (cost.table) {
    const value = labels[cost.table.labelKey];
    const entry = cost.table.prices.find((p) => p.labelValue === value);
    if (entry) return entry.usdPerGpuHour;
  }
  return cost.defaultUsdPerGpuHour > 0 ? cost.defaultUsdPerGpuHour : undefined;
}

function scaleReason(reason: string): string {
  switch (reason) {
    case "SLOFeedback": return ConditionReason.SLOTarget;
    case "ScheduledPrewarm": return ConditionReason.ScheduledWindow;
    case "ForecastPrewarm": return ConditionReason.ForecastPeak;
    case "Burst": return ConditionReason.BurstDetected;
    case "BudgetCapped": return ConditionReason.CappedByBudget;
    case "AtMaxGpus":
    case "AtMinGpus": return ConditionReason.BoundsChanged;
    default: return reason;
  }
}

function nextPrewarm(spec: MoEDeployment["spec"], nowMs: number, prev: MoEDeploymentStatus["nextPrewarm"]): MoEDeploymentStatus["nextPrewarm"] {
  let best: { atMs: number; name: string; minShards: number } | undefined;
  for (const s of spec.prewarm.schedules ?? []) {
    try {
      const w = scheduleWindowAt({ name: s.name, start: s.start, durationMs: s.durationMinutes * 60_000, timezone: s.timeZone, minGpus: s.minShards }, nowMs);
      if (w.open || w.opensAtMs === undefined) continue;
      const atMs = w.opensAtMs - spec.prewarm.coldStartSeconds * 1000;
      if (!best || atMs < best.atMs) best = { atMs, name: s.name, minShards: s.minShards };
    } catch {
      /* invalid schedules are reported by the semantic validator */
    }
  }
  if (!best) return undefined;
  const next = { time: new Date(best.atMs).toISOString(), source: "Schedule" as const, scheduleName: best.name, minShards: best.minShards };
  return prev && JSON.stringify(prev) === JSON.stringify(next) ? prev : next;
}

function fnvOfObject(o: unknown): string {
  let h = 0x811c9dc5;
  const s = JSON.stringify(o);
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h.toString(16).padStart(8, "0");
}

function dropUndefined<T>(o: T): T {
  return JSON.parse(JSON.stringify(o)) as T;
}

/** Key-sorted JSON value, for order-insensitive comparison with what the API server returns. */
function canonical(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(canonical);
  if (v && typeof v === "object") {
    if (v instanceof Date) return v.toISOString();
    return Object.fromEntries(Object.entries(v as Record<string, unknown>).filter(([, x]) => x !== undefined).sort(([a], [b]) => a.localeCompare(b)).map(([k, x]) => [k, canonical(x)]));
  }
  return v;
}
