// reconcile(key): snapshot from caches and metric sources -> decide -> plan the
// children (a ChildPlan) -> an Actuator applies it (Auto: the cluster;
// Recommend: nothing) -> compute the status (pure) and write it once, only when
// it changed. Level-based: it never looks at which event woke it.
import type { V1ConfigMap, V1Deployment, V1Job } from "@kubernetes/client-node";
import type { CachedNode, CachedPod } from "./cached.ts";
import type { Logger } from "pino";
import {
  API_GROUP,
  API_GROUP_VERSION,
  API_VERSION,
  KIND,
  PLURAL,
  Label,
  LabelValue,
  ConditionType,
  ConditionReason,
  Finalizer,
  type ConditionReasonName,
} from "../../api/constants.ts";
import { branchName } from "../../domain/gitops/index.ts";
import { formatIssues, parseMoEDeployment } from "../../api/parse.ts";
import { moeLayerCount, type MoEDeployment, type MoEDeploymentStatus } from "../../api/schema.ts";
import { decide, type Decision, type DecisionSnapshot } from "../../domain/decide.ts";
import type { CapacityState } from "../../domain/capacity/index.ts";
import { nextShiftState, shiftRefreshMs, type HeatShiftState } from "../../domain/placement/shift-window.ts";
import type { KubeWriter } from "../../adapters/kube.ts";
import { KubeApiError } from "../../adapters/kube-errors.ts";
import type { Clock } from "../../runtime/clock.ts";
import type { OperatorMetrics } from "../../observability/metrics.ts";
import { policyFromSpec } from "./policy.ts";
import { checkPodTemplatePolicies, DEFAULT_POD_POLICY, type PodTemplatePolicy } from "./pod-policy.ts";
import { readHeatSinceShift, readLatency, type HeatReading, type LatencyReading, type SourceDeps } from "./sources.ts";
import { SourcePoller } from "./poller.ts";
import { HistorySeeder } from "./history-seed.ts";
import { childNames } from "./children.ts";
import { readPlacementConfigMap } from "./codecs/placement-configmap.ts";
import { canonical } from "./canonical.ts";
import { placementInForce, recoverPlacement } from "./recover.ts";
import { readShardPod, type ShardPod } from "./codecs/shard-pod.ts";
import { mergeConditions } from "./conditions.ts";
import type { PodGpuView } from "./pod-gpus.ts";
import { ACTUATORS, type Actuator } from "./actuator.ts";
import type { PullRequestSync } from "../../gitops/sync.ts";
import { planChildren, type ChildPlan, type LiveChildren } from "./plan.ts";
import { inPlaceUnsettled, newStalls, reportedStalls } from "./inplace.ts";
import { computeStatus, dropUndefined, pendingPastTimeout, servingShardCount } from "./status.ts";
import { eventsFor, type EventSpec } from "./events.ts";
import {
  coldStartInputs,
  gpuSupply,
  newColdStarts,
  nextLoadTier,
  nextNodeType,
  nodeTypeOf,
  nodeViews,
  readySince,
  shardViews,
  withReadyBefore,
} from "./observe.ts";
import { ApplyFailed, ConflictRequeue } from "./errors.ts";
import { stagingHasState, syncStaging, withStagedNodes } from "./staging.ts";
import {
  finalizeStaging,
  RETIRE_POLL_MS,
  wantsStagingFinalizer,
  type StagingStateReader,
} from "./staging-finalizer.ts";
import { oldTopology, readyToRetire, retireOldTopology } from "./topology-switch.ts";
import { gpuFallback, type PrimaryRoom } from "./gpu-fallback.ts";
import { applyWideEP, newGroupStalls, pendingGpus, planWideEP, wideEPEvents, type LwsReader } from "./wideep.ts";

export { ConflictRequeue } from "./errors.ts";

export interface Cache<T> {
  list(namespace?: string): readonly T[];
  get(name: string, namespace?: string): T | undefined;
}

export interface ReconcilerConfig {
  /** Decision cadence when nothing else wakes the reconciler. */
  reconcileIntervalMs: number;
  /** Longest drain: seconds from a shard's drain mark to its deletion while it stays Ready. */
  drainSeconds: number;
  /** Replacement shard pods not yet Ready at once. */
  maxSurge: number;
  /** Most shard pods created per reconcile, and none while this many are unschedulable; default unbounded. */
  maxPendingShardPods?: number;
  /** PriorityClass of shard pods created to hold a (layer, expert) no Ready pod holds; default none. */
  soleReplicaPriorityClass?: string;
  /** Longest a reconcile waits for its deployment's source read; the read goes on in the background. */
  sourceWaitMs: number;
  component: string;
  /** What pod templates may ask for; default DEFAULT_POD_POLICY (restricted). */
  podPolicy?: PodTemplatePolicy;
}

export interface ReconcilerDeps {
  kube: KubeWriter;
  moeds: Cache<MoEDeploymentObject>;
  /** The operator's own pods (managed-by label), projected to what the reconciler reads (cached.ts). */
  pods: Cache<CachedPod>;
  /** Every pod in the cluster, projected to what GPU accounting needs. */
  podGpus: Cache<PodGpuView>;
  deployments: Cache<V1Deployment>;
  configMaps: Cache<V1ConfigMap>;
  /** Nodes, projected to what the reconciler reads (cached.ts). */
  nodes: Cache<CachedNode>;
  /** The operator's Jobs (managed-by label): weight staging (staging.ts); none when absent. */
  jobs?: Cache<V1Job>;
  sources: SourceDeps;
  clock: Clock;
  logger: Logger;
  metrics: OperatorMetrics;
  config: ReconcilerConfig;
  /** Asks for key to be reconciled again (a background source read finished). */
  requeue?: (key: string) => void;
  /** Mode PullRequest (src/gitops): proposals to Git, off the reconcile worker. */
  gitops?: PullRequestSync;
  /** Topology WideEP: reads the live LeaderWorkerSet; without it the LeaderWorkerSet is applied at every reconcile. */
  readLeaderWorkerSet?: LwsReader;
  /** A deletion's staging rounds read the deployment, its nodes and Jobs live (staging-finalizer.ts); without it, the caches. */
  readStagingState?: StagingStateReader;
}

/** A MoEDeployment as it comes from the API server (not yet validated). */
export interface MoEDeploymentObject {
  apiVersion?: string;
  kind?: string;
  metadata?: {
    name?: string;
    namespace?: string;
    uid?: string;
    generation?: number;
    resourceVersion?: string;
    deletionTimestamp?: Date | string;
    finalizers?: string[];
    creationTimestamp?: Date | string;
  };
  spec?: unknown;
  status?: MoEDeploymentStatus;
}

export interface ReconcileResult {
  requeueAfterMs?: number;
}

/** Deletion never waits on GitHub longer than this many failed attempts to close the pull request... */
export const FINALIZE_ATTEMPTS = 4;
/** ...or this long after the deletion request (a restarted operator starts counting attempts again). */
export const FINALIZE_DEADLINE_MS = 300_000;
const FINALIZE_BACKOFF_MS = 2_000;
/** The longest one attempt to close may take (it is awaited on a reconcile worker). */
const FINALIZE_ATTEMPT_MS = 30_000;

interface Memory {
  uid: string;
  trackingSinceMs: number;
  capacityState?: CapacityState;
  lastGoodHeat?: number[][];
  /** When a due heat rebalance was last evaluated and kept (in memory: re-evaluated after a restart). */
  rebalanceEvaluatedMs?: number;
  /** Decision.nextBaselineBalancedness of the last tick (in memory: no early rebalance until the first plan after a restart). */
  baselineBalancedness?: number;
  /** A heat shift being followed: heat is read since it (shift-window.ts; in memory, like the baseline). */
  heatShift?: HeatShiftState;
  coldStartsSeen: Set<string>;
  /** Uids of shard pods seen Ready (pruned to the live pods): tells a readiness flap from a pod still loading. */
  seenReady: Set<string>;
  /** InPlace stalls already counted and reported (pod/generation). */
  stallsSeen: Set<string>;
  /** The placement ConfigMap this operator last wrote, and when: stands in for a cache that has not caught up yet. */
  placementWritten?: { cm: V1ConfigMap; version: number; atMs: number };
}

/** What one reconcile read: the deployment's children as they are, and the source readings. */
interface Observed {
  live: LiveChildren;
  heat: HeatReading;
  /** When the read behind heat and latency started (undefined: none finished yet). */
  readAtMs?: number;
  latency: LatencyReading;
  snapshot: DecisionSnapshot;
  refreshMs: number;
  gpus: { free: number; held: number };
}

export class MoEDeploymentReconciler {
  readonly #d: ReconcilerDeps;
  readonly #memory = new Map<string, Memory>();
  readonly #poller: SourcePoller;
  /** The forecast seeded from the load history once per deployment after start (history-seed.ts). */
  readonly #seeder: HistorySeeder;
  /** Failed attempts to close the pull request of a deleted MoEDeployment, by key (cleared when it is forgotten). */
  readonly #finalizeAttempts = new Map<string, { uid: string; attempts: number }>();

  constructor(deps: ReconcilerDeps) {
    this.#d = deps;
    this.#poller = new SourcePoller({
      clock: deps.clock,
      waitMs: deps.config.sourceWaitMs,
      onRefreshed: (key) => deps.requeue?.(key),
    });
    this.#seeder = new HistorySeeder({
      sources: deps.sources,
      policyOf: (d) =>
        policyFromSpec(d.spec, {
          reconcileIntervalMs: deps.config.reconcileIntervalMs,
          maxSurge: deps.config.maxSurge,
        }),
      requeue: deps.requeue,
    });
  }

  async reconcile(key: string): Promise<ReconcileResult> {
    const [namespace, name] = key.split("/") as [string, string];
    const log = this.#d.logger.child({ moedeployment: key });
    const obj = this.#d.moeds.get(name, namespace);
    if (!obj) return this.#forget(key, namespace, name);
    if (obj.metadata?.deletionTimestamp) return this.#finalize(key, obj, log);
    const nowMs = this.#d.clock.nowMs();
    const mem = this.#memoryFor(key, obj, nowMs);
    const d = await this.#admit(obj, log, nowMs);
    if (!d) return {}; // terminal until the spec (or the operator's pod policy) changes
    // The object changes with the finalizer: the informer's update reconciles it again.
    if (await this.#syncFinalizer(obj, d)) return { requeueAfterMs: 1_000 };
    this.#seeder.start(key, d, log);

    const actuator: Actuator = ACTUATORS[d.spec.mode]({
      kube: this.#d.kube,
      clock: this.#d.clock,
      gitops: this.#d.gitops,
    });
    // Leaving PullRequest mode closes the pull request and deletes its branch (ADR 0014).
    if (d.spec.mode !== "PullRequest") this.#d.gitops?.retire(d);
    if (d.spec.serving.topology === "WideEP") return this.#reconcileWideEP(key, obj, d, mem, actuator, log);
    const observed = await this.#observe(key, d, mem, actuator);
    const cfg = this.#d.config;
    const policy = policyFromSpec(d.spec, { reconcileIntervalMs: cfg.reconcileIntervalMs, maxSurge: cfg.maxSurge });
    const decision = decide(observed.snapshot, policy, nowMs);
    this.#remember(mem, decision, observed, d.spec, nowMs);

    const plan = planChildren(d, decision, observed.live, {
      nowMs,
      drainSeconds: cfg.drainSeconds,
      observedP99Ms: observed.latency.p99Ms,
      maxSurge: cfg.maxSurge,
      maxCreates: cfg.maxPendingShardPods,
      soleReplicaPriorityClass: cfg.soleReplicaPriorityClass,
      primaryRoom: this.#primaryRoom(observed),
    });
    const result = await actuator.apply(plan, {
      deployment: d,
      decision,
      log,
      nowMs,
      observedP99Ms: observed.latency.p99Ms,
      heat: observed.heat.heat?.heat,
    });
    const status = computeStatus({
      deployment: d,
      decision,
      heat: observed.heat,
      latency: observed.latency,
      router: observed.live.router,
      shardPods: observed.live.shardPods,
      managesWorkloads: actuator.managesWorkloads,
      rollout: result.rollout,
      placement: plan.placement,
      applyErrors: result.errors,
      nowMs,
      actuatorConditions: result.conditions,
      gpus: observed.gpus,
      actuatorStatus: result.status,
      inPlace: plan.inPlace,
    });
    const staged = actuator.managesWorkloads
      ? await this.#stage(d, decision, observed, log)
      : await this.#retireStaging(d, log);
    if (staged) status.staging = staged.status;
    await this.#writeStatus(obj, status);
    const pods = actuator.managesWorkloads ? observed.live.shardPods : [];
    this.#recordMetrics(d, decision, status, {
      gpusReady: servingShardCount(pods),
      pendingShards: pendingPastTimeout(pods, nowMs, d.spec.scaling.pendingTimeoutSeconds * 1000).length,
    });
    const events = eventsFor({
      previous: d.status,
      next: status,
      decision,
      placement: plan.placement,
      managesWorkloads: actuator.managesWorkloads,
    });
    // Hand changes undone: said once the writes went through (only an actuator that writes undoes them).
    if (actuator.managesWorkloads && result.errors.length === 0) events.push(...plan.events);
    if (actuator.managesWorkloads) events.push(...this.#stalls(d, plan.inPlace, mem));
    if (staged) events.push(...staged.events);
    for (const e of events) await this.#event(obj, e, nowMs);
    if (actuator.managesWorkloads) await this.#retireOldTopology(obj, d, status, nowMs);
    // Only an actuator that writes the ConfigMap wrote it (Recommend and PullRequest plan it too).
    if (
      actuator.managesWorkloads &&
      plan.placementConfigMap &&
      !result.errors.some((e) => e.child.kind === "ConfigMap")
    )
      mem.placementWritten = { cm: plan.placementConfigMap, version: plan.placement.version, atMs: nowMs };
    if (result.errors.length > 0) throw new ApplyFailed(key, result.errors);

    // A shift detected by this tick's decision shortens the refresh from now on (shift-window.ts).
    const refreshMs = shiftRefreshMs(d.spec.heatSource.refreshIntervalSeconds * 1000, mem.heatShift);
    return {
      requeueAfterMs: requeueAfterMs(
        { ...observed, refreshMs },
        cfg.reconcileIntervalMs,
        result.rollout?.requeueAfterMs,
        nowMs,
      ),
    };
  }

  // ---------------------------------------------------------------------------------------

  /** Topology WideEP: groups on a LeaderWorkerSet (wideep.ts, ADR 0021). */
  async #reconcileWideEP(
    key: string,
    obj: MoEDeploymentObject,
    d: MoEDeployment,
    mem: Memory,
    actuator: Actuator,
    log: Logger,
  ): Promise<ReconcileResult> {
    const cfg = this.#d.config;
    const nowMs = this.#d.clock.nowMs();
    const refreshMs = d.spec.heatSource.refreshIntervalSeconds * 1000;
    const { heat, latency } = await this.#readings(key, d, Math.min(refreshMs, cfg.reconcileIntervalMs));
    const plan = planWideEP({
      deployment: d,
      pods: this.#d.pods.list(d.metadata.namespace),
      heat,
      latency,
      policy: policyFromSpec(d.spec, { reconcileIntervalMs: cfg.reconcileIntervalMs, maxSurge: cfg.maxSurge }),
      capacityState: mem.capacityState,
      trackingSinceMs: mem.trackingSinceMs,
      placementConfigMap: this.#d.configMaps.get(childNames(d.metadata.name!).placement, d.metadata.namespace),
      lastGoodHeat: mem.lastGoodHeat,
      nodes: nodeViews(d.spec, this.#d.nodes.list(), this.#d.podGpus.list(), []),
      managesWorkloads: actuator.managesWorkloads,
      drainMs: cfg.drainSeconds * 1000,
      nowMs,
    });
    mem.capacityState = plan.decision.count.nextState;
    if (plan.placement.heatBasis === "observed" && heat.heat) mem.lastGoodHeat = heat.heat.heat.map((l) => [...l]);
    const drift: EventSpec[] = [];
    const errors = await applyWideEP(this.#d.kube, plan, log, this.#d.readLeaderWorkerSet, (message) =>
      drift.push({ type: "Normal", reason: "DriftCorrected", message }),
    );
    const staged = await this.#retireStaging(d, log);
    if (staged) plan.status.staging = staged.status;
    await this.#writeStatus(obj, plan.status);
    this.#recordMetrics(d, plan.verdict, plan.status, {
      gpusReady: (plan.status.groups?.ready ?? 0) * (plan.status.groups?.gpusPerGroup ?? 0),
      pendingShards: actuator.managesWorkloads ? pendingGpus(plan) : 0,
    });
    for (const e of [
      ...wideEPEvents(d.status, plan, actuator.managesWorkloads),
      ...drift,
      ...this.#groupStalls(d, plan, mem),
      ...(staged?.events ?? []),
    ])
      await this.#event(obj, e, nowMs);
    if (actuator.managesWorkloads) await this.#retireOldTopology(obj, d, plan.status, nowMs);
    if (errors.length > 0) throw new ApplyFailed(key, errors);
    const drainMs = plan.drain?.remainingMs;
    return { requeueAfterMs: Math.min(cfg.reconcileIntervalMs, refreshMs, Math.max(drainMs ?? Infinity, 200)) };
  }

  /** After a switch of spec.serving.topology: the old topology's children go once the new one serves (topology-switch.ts). */
  async #retireOldTopology(
    obj: MoEDeploymentObject,
    d: MoEDeployment,
    status: MoEDeploymentStatus,
    nowMs: number,
  ): Promise<void> {
    const ns = d.metadata.namespace;
    const old = oldTopology(d, this.#d.pods.list(ns), this.#d.deployments.get(childNames(d.metadata.name!).router, ns));
    if (!old || !readyToRetire(status)) return;
    const event = await retireOldTopology(this.#d.kube, d, old);
    if (event) await this.#event(obj, event, nowMs);
  }

  /** spec.prewarm.staging: Jobs and node marks toward the staging plan (staging.ts); failed writes are retried next time. */
  async #stage(d: MoEDeployment, decision: Decision, observed: Observed, log: Logger) {
    const staged = await syncStaging(this.#d.kube, d, {
      nodes: this.#d.nodes.list(),
      views: observed.snapshot.nodes.filter((n) => !n.fallbackOnly), // weights are staged on the primary nodes only
      shardPods: observed.live.shardPods,
      jobs: this.#d.jobs?.list(d.metadata.namespace) ?? [],
      decision,
      nowMs: this.#d.clock.nowMs(),
    });
    if (staged?.errors.length) log.warn({ errors: staged.errors }, "staging writes failed; retried next reconcile");
    return staged;
  }

  /**
   * Where staging does not run (mode Recommend or PullRequest, topology WideEP) but something it
   * staged earlier remains: evict it (staging.ts retiringStaging). Undefined when nothing remains.
   */
  async #retireStaging(d: MoEDeployment, log: Logger) {
    const o = { nodes: this.#d.nodes.list(), jobs: this.#d.jobs?.list(d.metadata.namespace) ?? [] };
    if (!stagingHasState(d, o)) return undefined;
    const staged = await syncStaging(this.#d.kube, d, { ...o, views: [], shardPods: [], nowMs: this.#d.clock.nowMs() });
    if (staged?.errors.length) log.warn({ errors: staged.errors }, "staging eviction writes failed; retried");
    return staged;
  }

  /** InPlace: a Warning event and a metric count per shard that newly refused or missed its deadline. */
  #stalls(d: MoEDeployment, plan: ChildPlan["inPlace"], mem: Memory): EventSpec[] {
    return newStalls(plan, mem.stallsSeen, reportedStalls(d.status)).map((s) => {
      this.#d.metrics.rebalanceStalled.inc({
        namespace: d.metadata.namespace!,
        name: d.metadata.name!,
        reason: s.reason,
      });
      return {
        type: "Warning" as const,
        reason: ConditionType.RebalanceStalled,
        message: `${s.message}: replacing shard ${s.shardIndex} with a new pod (make-before-break)`,
      };
    });
  }

  /** WideEP InPlace: a Warning event and a metric count per group that newly refused or missed its deadline. */
  #groupStalls(d: MoEDeployment, plan: ReturnType<typeof planWideEP>, mem: Memory): EventSpec[] {
    return newGroupStalls(plan.moves, mem.stallsSeen, reportedStalls(d.status)).map((s) => {
      this.#d.metrics.rebalanceStalled.inc({
        namespace: d.metadata.namespace!,
        name: d.metadata.name!,
        reason: s.reason,
      });
      return {
        type: "Warning" as const,
        reason: ConditionType.RebalanceStalled,
        message: s.message,
      };
    });
  }

  /** The deployment is gone: its children are garbage-collected through their owner references. */
  #forget(key: string, namespace: string, name: string): ReconcileResult {
    this.#memory.delete(key);
    this.#finalizeAttempts.delete(key);
    this.#poller.forget(key);
    this.#seeder.forget(key);
    this.#d.gitops?.forget(key);
    this.#d.metrics.forgetDeployment(namespace, name);
    return {};
  }

  /**
   * Mode PullRequest with closeOnDelete holds the gitops finalizer; staging that runs or left
   * something on the nodes holds the staging one (staging-finalizer.ts). True when they changed.
   */
  async #syncFinalizer(obj: MoEDeploymentObject, d: MoEDeployment): Promise<boolean> {
    const want = new Set<string>();
    if (this.#d.gitops !== undefined && d.spec.mode === "PullRequest" && d.spec.gitops?.pullRequests.closeOnDelete)
      want.add(Finalizer.gitopsPullRequest);
    const staging = { nodes: this.#d.nodes.list(), jobs: this.#d.jobs?.list(d.metadata.namespace) ?? [] };
    if (this.#d.jobs && wantsStagingFinalizer(d, staging)) want.add(Finalizer.weightStaging);
    const has = obj.metadata?.finalizers ?? [];
    const ours: string[] = Object.values(Finalizer);
    const next = [...has.filter((f) => !ours.includes(f) || want.has(f)), ...[...want].filter((f) => !has.includes(f))];
    if (next.length === has.length && next.every((f, i) => f === has[i])) return false;
    await this.#setFinalizers(obj, next);
    return true;
  }

  async #setFinalizers(obj: MoEDeploymentObject, finalizers: string[]): Promise<void> {
    try {
      await this.#d.kube.mergePatch(
        { apiVersion: API_GROUP_VERSION, kind: KIND, namespace: obj.metadata!.namespace, name: obj.metadata!.name! },
        // resourceVersion: the list replaces the whole field, so only over the version it was read from.
        { metadata: { finalizers, resourceVersion: obj.metadata?.resourceVersion } },
      );
    } catch (err) {
      if (err instanceof KubeApiError && (err.kubeError.kind === "Conflict" || err.kubeError.kind === "NotFound")) {
        throw new ConflictRequeue(err.message, { cause: err });
      }
      throw err;
    }
  }

  /** Removes one of the operator's finalizers. */
  async #dropFinalizer(obj: MoEDeploymentObject, finalizer: string): Promise<void> {
    await this.#setFinalizers(
      obj,
      (obj.metadata?.finalizers ?? []).filter((f) => f !== finalizer),
    );
  }

  /**
   * Deletion with the staging finalizer: evict the staged weights (a round per call), then remove
   * it. Undefined when it is gone (or was never there); else when to come back.
   */
  async #finalizeStaging(cached: MoEDeploymentObject, log: Logger): Promise<ReconcileResult | undefined> {
    if (!cached.metadata?.finalizers?.includes(Finalizer.weightStaging)) return undefined;
    const ns = cached.metadata.namespace;
    // Live reads where wired (staging-finalizer.ts says why the caches are not enough here).
    const live = this.#d.readStagingState
      ? await this.#d.readStagingState({ namespace: ns!, name: cached.metadata.name! })
      : { object: cached, nodes: this.#d.nodes.list(), jobs: this.#d.jobs?.list(ns) ?? [] };
    const obj = live.object;
    if (!obj?.metadata?.deletionTimestamp || !obj.metadata.finalizers?.includes(Finalizer.weightStaging))
      return undefined;
    const nowMs = this.#d.clock.nowMs();
    const parsed = parseMoEDeployment({
      ...obj,
      apiVersion: obj.apiVersion ?? API_GROUP_VERSION,
      kind: obj.kind ?? KIND,
    });
    const observed = { nodes: live.nodes, jobs: live.jobs };
    const r = await finalizeStaging(
      this.#d.kube,
      parsed.ok ? { d: parsed.value } : { problem: `the spec is invalid (${formatIssues(parsed.issues)})` },
      // Retiring wants no node: the shards and free GPUs do not matter.
      { ...observed, shardPods: [], views: [] },
      { nowMs, deletedAtMs: new Date(obj.metadata.deletionTimestamp!).getTime() },
    );
    for (const e of r.events) await this.#event(obj, e, nowMs);
    if (r.errors.length) log.warn({ errors: r.errors }, "staging eviction writes failed; retried");
    if (!r.done) {
      const { staging: _old, ...rest } = obj.status ?? {};
      await this.#writeStatus(obj, r.status ? { ...rest, staging: r.status } : rest);
      return { requeueAfterMs: RETIRE_POLL_MS };
    }
    await this.#dropFinalizer(obj, Finalizer.weightStaging);
    // The object changed: the next pass (the informer's update) sees the finalizers left.
    return { requeueAfterMs: 1_000 };
  }

  /**
   * Deletion with the finalizer: close the pull request and delete its branch, then remove the
   * finalizer. When GitHub cannot be reached the finalizer goes after FINALIZE_ATTEMPTS failed
   * attempts or FINALIZE_DEADLINE_MS after the deletion request, with a Warning event: deletion
   * is never blocked for long.
   */
  async #finalize(key: string, obj: MoEDeploymentObject, log: Logger): Promise<ReconcileResult> {
    const [namespace, name] = key.split("/") as [string, string];
    const staging = await this.#finalizeStaging(obj, log);
    if (staging) return staging;
    if (!obj.metadata?.finalizers?.includes(Finalizer.gitopsPullRequest)) return this.#forget(key, namespace, name);
    const nowMs = this.#d.clock.nowMs();
    const uid = obj.metadata.uid ?? "";
    const parsed = parseMoEDeployment({
      ...obj,
      apiVersion: obj.apiVersion ?? API_GROUP_VERSION,
      kind: obj.kind ?? KIND,
    });
    const d = parsed.ok ? parsed.value : undefined;
    const sinceMs = nowMs - new Date(obj.metadata.deletionTimestamp!).getTime();
    const giveUp = async (attempts: number, problem: string) =>
      this.#event(
        obj,
        {
          type: "Warning",
          reason: ConditionReason.PullRequestNotClosed,
          message: `could not close the pull request (${attempts} attempts, ${Math.round(sinceMs / 1000)} s since the deletion request): ${problem}. The finalizer ${Finalizer.gitopsPullRequest} is removed so that the deletion goes on; close the pull request of branch ${branchName({ namespace, name })} by hand`,
        },
        nowMs,
      );
    if (!d && this.#d.gitops) {
      // The spec no longer parses: where the pull request is (repository, credentials) is unknown.
      const issue = parsed.ok ? undefined : parsed.issues[0];
      await giveUp(0, `the spec is invalid${issue ? ` (${issue.path}: ${issue.message})` : ""}`);
    } else if (this.#d.gitops && d?.spec.gitops?.pullRequests.closeOnDelete && d.spec.mode === "PullRequest") {
      // One attempt never outlasts the deadline since the deletion request, nor FINALIZE_ATTEMPT_MS.
      const leftMs = FINALIZE_DEADLINE_MS - sinceMs;
      const closed =
        leftMs > 0
          ? await this.#d.gitops.close(
              d,
              "the MoEDeployment was deleted",
              AbortSignal.timeout(Math.min(leftMs, FINALIZE_ATTEMPT_MS)),
            )
          : {
              ok: false as const,
              problem: `${FINALIZE_DEADLINE_MS / 60_000} minutes passed since the deletion request`,
            };
      if (!closed.ok) {
        const prior = this.#finalizeAttempts.get(key);
        const attempts = (prior?.uid === uid ? prior.attempts : 0) + 1;
        this.#finalizeAttempts.set(key, { uid, attempts });
        if (attempts < FINALIZE_ATTEMPTS && leftMs > 0) {
          log.warn({ attempts, problem: closed.problem }, "could not close the pull request; retrying");
          return { requeueAfterMs: Math.min(FINALIZE_BACKOFF_MS * 2 ** (attempts - 1), leftMs) };
        }
        await giveUp(attempts, closed.problem);
      }
    }
    await this.#dropFinalizer(obj, Finalizer.gitopsPullRequest);
    return this.#forget(key, namespace, name);
  }

  #memoryFor(key: string, obj: MoEDeploymentObject, nowMs: number): Memory {
    let mem = this.#memory.get(key);
    if (!mem || mem.uid !== obj.metadata?.uid) {
      mem = {
        uid: obj.metadata?.uid ?? "",
        trackingSinceMs: nowMs,
        coldStartsSeen: new Set(),
        seenReady: new Set(),
        stallsSeen: new Set(),
      };
      this.#memory.set(key, mem);
    }
    return mem;
  }

  #remember(mem: Memory, decision: Decision, observed: Observed, spec: MoEDeployment["spec"], nowMs: number): void {
    const heat = observed.heat;
    mem.capacityState = decision.nextCapacityState;
    if (decision.heatUsable && heat.heat) mem.lastGoodHeat = heat.heat.heat.map((l) => [...l]);
    if (decision.placement.rebalanceEvaluated) mem.rebalanceEvaluatedMs = nowMs;
    mem.baselineBalancedness = decision.nextBaselineBalancedness;
    // Only a Prometheus heat source has a window to shorten.
    const prometheus = spec.heatSource.type === "Prometheus";
    mem.heatShift = !prometheus
      ? undefined
      : nextShiftState(mem.heatShift, {
          readAtMs: observed.readAtMs ?? nowMs,
          nowMs,
          rateWindowSeconds: spec.heatSource.prometheus?.rateWindowSeconds ?? 0,
          shiftDetected: decision.heatShiftDetected,
          followedUp:
            observed.snapshot.heatSinceShiftSeconds !== undefined &&
            (decision.placement.heatRebalance === true || decision.placement.rebalanceEvaluated === true),
        });
  }

  /** The validated deployment, or undefined after refusing it (invalid spec, pod template against policy). */
  async #admit(obj: MoEDeploymentObject, log: Logger, nowMs: number): Promise<MoEDeployment | undefined> {
    const parsed = parseMoEDeployment({
      ...obj,
      apiVersion: obj.apiVersion ?? API_GROUP_VERSION,
      kind: obj.kind ?? KIND,
    });
    if (!parsed.ok) {
      log.warn({ issues: parsed.issues }, "invalid MoEDeployment spec");
      await this.#refuse(obj, ConditionReason.InvalidSpec, formatIssues(parsed.issues), nowMs);
      return undefined;
    }
    const rejected = checkPodTemplatePolicies(parsed.value.spec, this.#d.config.podPolicy ?? DEFAULT_POD_POLICY);
    if (rejected.length > 0) {
      log.warn({ violations: rejected }, "pod template rejected by the pod policy");
      await this.#refuse(
        obj,
        ConditionReason.PodTemplateRejected,
        formatIssues(rejected.map((v) => ({ ...v, severity: "error" as const }))),
        nowMs,
      );
      return undefined;
    }
    return parsed.value;
  }

  /**
   * Room on the primary GPU nodes for fallback pods to return to (gpu-fallback.ts gpuReturn), while a
   * fallback pod lives: the free GPUs of the node views' primary nodes (views leave out cordoned and
   * NotReady nodes).
   */
  #primaryRoom(observed: Observed): PrimaryRoom | undefined {
    const nodes = observed.snapshot.nodes;
    const alternativeNodes = new Set(nodes.filter((n) => n.fallbackOnly).map((n) => n.name));
    if (alternativeNodes.size === 0 || !observed.live.shardPods.some((p) => p.gpuFallback && !p.terminating))
      return undefined;
    const freeGpus = nodes.filter((n) => !n.fallbackOnly).reduce((sum, n) => sum + n.freeGpus, 0);
    return { freeGpus, alternativeNodes };
  }

  /** The decision's inputs: children from the caches, readings from the sources, what the actuator manages. */
  async #observe(key: string, d: MoEDeployment, mem: Memory, actuator: Actuator): Promise<Observed> {
    const { spec, metadata } = d;
    const namespace = metadata.namespace!;
    const names = childNames(metadata.name!);
    const ownedBy = (o: CachedPod) => o.metadata?.ownerReferences?.some((r) => r.uid === metadata.uid) ?? false;
    const pods = this.#d.pods
      .list(namespace)
      .filter(
        (p) =>
          p.metadata?.labels?.[Label.deployment] === metadata.name &&
          p.metadata?.labels?.[Label.component] === LabelValue.componentExpertShard &&
          ownedBy(p),
      );
    const read = withReadyBefore(
      pods.map(readShardPod).filter((v): v is ShardPod => v !== undefined),
      mem.seenReady,
    );
    mem.seenReady = read.seen;
    const shardPods = read.pods;
    const placementConfigMap = placementInForce(
      this.#d.configMaps.get(names.placement, namespace),
      mem.placementWritten,
      this.#d.clock.nowMs(),
    );
    const published = readPlacementConfigMap(placementConfigMap);
    // The ConfigMap is missing or corrupted: the layout the pods hold is the current placement,
    // kept as it is for one rebalance interval (no pod is replaced for the loss).
    const recovered = !published && actuator.managesWorkloads ? recoverPlacement(shardPods, spec) : undefined;
    if (recovered) mem.rebalanceEvaluatedMs = this.#d.clock.nowMs();
    const live: LiveChildren = {
      router: this.#d.deployments.get(names.router, namespace),
      published,
      placementConfigMap,
      recovered,
      shardPods,
    };
    const current = published ?? recovered;
    const refreshMs = shiftRefreshMs(spec.heatSource.refreshIntervalSeconds * 1000, mem.heatShift);
    const { heat, latency, atMs } = await this.#readings(
      key,
      d,
      Math.min(refreshMs, this.#d.config.reconcileIntervalMs),
      mem.heatShift,
    );
    // spec.serving.gpu.alternatives: while a shard waits for them or runs there, their nodes are in view too.
    const alternatives = gpuFallback(spec, shardPods, this.#d.clock.nowMs()).inView;
    const nodes = withStagedNodes(
      d,
      nodeViews(spec, this.#d.nodes.list(), this.#d.podGpus.list(), shardPods, alternatives),
      this.#d.nodes.list(),
    );
    const managed = actuator.managesWorkloads;
    const lastScale = d.status?.lastScale;
    const tier = nextLoadTier(shardPods, moeLayerCount(spec.model), spec.model.routedExperts, nodes);
    const snapshot: DecisionSnapshot = {
      heat: heat.heat,
      lastGoodHeat: mem.lastGoodHeat,
      observedP99Ms: latency.p99Ms,
      observedP99AtMs: latency.atMs,
      shards: managed ? shardViews(shardPods, nodes) : [],
      provisionedShards: managed
        ? (d.status?.desiredShards ?? new Set(shardPods.filter((p) => !p.terminating).map((p) => p.shardIndex)).size)
        : (d.status?.recommendation?.shards ?? 0),
      currentPlacement: current?.placement,
      currentPlacementHeatBasis: current?.heatBasis,
      lastRebalanceMs: latest(
        d.status?.placement?.lastRebalanceTime ? Date.parse(d.status.placement.lastRebalanceTime) : undefined,
        mem.rebalanceEvaluatedMs,
      ),
      // Only where the operator publishes what it plans: elsewhere the current placement is not the planned one.
      baselineBalancedness: managed && !recovered ? mem.baselineBalancedness : undefined,
      heatSinceShiftSeconds: sinceShiftDue(heat, atMs, mem.heatShift, managed && !recovered),
      rolloutInProgress:
        current !== undefined &&
        (shardPods.some((p) => p.drainStartedMs !== undefined || !p.ready) ||
          inPlaceUnsettled(shardPods, current.placement)),
      ...coldStartInputs(
        newColdStarts(pods, mem.coldStartsSeen, (n) => {
          const node = this.#d.nodes.get(n);
          return node ? nodeTypeOf(node) : undefined;
        }),
      ),
      nextLoadTier: tier,
      nextNodeType: nextNodeType(nodes, tier),
      pendingShards: pendingShardCount(managed, shardPods, this.#d.clock.nowMs(), spec),
      capacityState: this.#seeder.take(key, d, mem.capacityState),
      trackingSinceMs: mem.trackingSinceMs,
      nodes,
      readySinceMs: readySince(pods, this.#d.clock.nowMs(), spec.placement.moves.ackTimeoutSeconds * 1000),
      lastScaleUpMs: lastScale && lastScale.toShards > lastScale.fromShards ? Date.parse(lastScale.time) : undefined,
    };
    const gpus = gpuSupply(spec, this.#d.nodes.list(), this.#d.podGpus.list(), shardPods, alternatives);
    return { live, heat, latency, readAtMs: atMs, snapshot, refreshMs, gpus };
  }

  /** Heat and latency read concurrently in the background; this reconcile waits at most config.sourceWaitMs. */
  async #readings(
    key: string,
    d: MoEDeployment,
    dueMs: number,
    shift?: HeatShiftState,
  ): Promise<{ heat: HeatReading; latency: LatencyReading; atMs?: number }> {
    const spec = d.spec;
    const target = { namespace: d.metadata.namespace!, name: d.metadata.name! };
    const fingerprint = JSON.stringify([d.metadata.uid, spec.heatSource, spec.latencySource, spec.model, spec.slo]);
    const sources = this.#d.sources;
    const metrics = this.#d.metrics;
    const r = await this.#poller.readings(key, fingerprint, dueMs, async () => {
      const [heat, latency] = await Promise.all([
        readHeatSinceShift(spec.heatSource, spec.model, target, sources, shift),
        readLatency(spec.latencySource, spec.slo, target, sources),
      ]);
      if (heat.problem) metrics.metricsQueryErrors.inc({ source: "heat" });
      if (latency.problem) metrics.metricsQueryErrors.inc({ source: "latency" });
      return { heat, latency };
    });
    if (r) return r;
    const pending = {
      reason: "NoData" as const,
      message: `sources have not answered yet (this reconcile waited ${this.#d.config.sourceWaitMs} ms; the read goes on in the background)`,
    };
    return { heat: { problem: pending }, latency: { problem: pending } };
  }

  /** Ready=False and Degraded=True with `reason`; one event per new message. Nothing is applied. */
  async #refuse(obj: MoEDeploymentObject, reason: ConditionReasonName, message: string, nowMs: number): Promise<void> {
    const nowIso = new Date(nowMs).toISOString();
    const already = obj.status?.conditions?.some(
      (c) => c.type === ConditionType.Ready && c.reason === reason && c.message === message,
    );
    const status: MoEDeploymentStatus = {
      ...obj.status,
      observedGeneration: obj.metadata?.generation,
      conditions: mergeConditions(
        obj.status?.conditions,
        [
          { type: ConditionType.Ready, status: "False", reason, message },
          { type: ConditionType.Degraded, status: "True", reason, message },
        ],
        obj.metadata?.generation,
        nowIso,
      ),
    };
    await this.#writeStatus(obj, status);
    if (!already) await this.#event(obj, { type: "Warning", reason, message }, nowMs);
  }

  async #writeStatus(obj: MoEDeploymentObject, status: MoEDeploymentStatus): Promise<void> {
    const clean = dropUndefined(status);
    if (JSON.stringify(canonical(obj.status ?? {})) === JSON.stringify(canonical(clean))) return;
    try {
      await this.#d.kube.replaceStatus(API_GROUP, API_VERSION, PLURAL, {
        ...obj,
        apiVersion: API_GROUP_VERSION,
        kind: KIND,
        status: clean,
      } as never);
    } catch (err) {
      if (err instanceof KubeApiError && (err.kubeError.kind === "Conflict" || err.kubeError.kind === "NotFound")) {
        throw new ConflictRequeue(err.message, { cause: err });
      }
      throw err;
    }
  }

  async #event(obj: MoEDeploymentObject, e: EventSpec, nowMs: number): Promise<void> {
    try {
      await this.#d.kube.event(
        {
          apiVersion: API_GROUP_VERSION,
          kind: KIND,
          namespace: obj.metadata!.namespace,
          name: obj.metadata!.name!,
          uid: obj.metadata!.uid,
        },
        e.type,
        e.reason,
        e.message,
        this.#d.config.component,
        nowMs,
      );
    } catch (err) {
      this.#d.logger.warn({ err: (err as Error).message }, "could not record event");
    }
  }

  #recordMetrics(
    d: MoEDeployment,
    decision: Pick<Decision, "reason" | "capacity">,
    status: MoEDeploymentStatus,
    shards: { gpusReady: number; pendingShards: number },
  ): void {
    const m = this.#d.metrics;
    const l = { namespace: d.metadata.namespace!, name: d.metadata.name! };
    m.decisions.inc({ ...l, reason: decision.reason });
    m.gpusDesired.set(l, status.desiredGpus ?? 0);
    m.gpusCurrent.set(l, status.currentGpus ?? 0);
    m.gpusReady.set(l, shards.gpusReady);
    m.capacityPendingShards.set(l, shards.pendingShards);
    m.sloTargetMs.set(l, d.spec.slo.targetLatencyMs);
    if (status.latency?.observedMs !== undefined) m.p99ObservedMs.set(l, status.latency.observedMs);
    const predicted = decision.capacity?.signals.predictedP99Ms;
    if (predicted !== undefined && Number.isFinite(predicted)) m.p99PredictedMs.set(l, predicted);
    m.costUsdPerHour.set(l, status.cost?.usdPerHour ?? 0);
    if (status.placement?.balancedness !== undefined) m.balancedness.set(l, status.placement.balancedness);
    if (status.placement?.movedFraction !== undefined) m.movedFraction.set(l, status.placement.movedFraction);
  }
}

function latest(a: number | undefined, b: number | undefined): number | undefined {
  return a === undefined ? b : b === undefined ? a : Math.max(a, b);
}

/** A since-shift reading makes a rebalance due once, and only where the current placement is the planned one. */
function sinceShiftDue(
  heat: HeatReading,
  readAtMs: number | undefined,
  shift: HeatShiftState | undefined,
  planned: boolean,
): number | undefined {
  // Only a read that started after the detecting one: the detecting read itself (reused within a
  // refresh) may carry a since-shift window of an earlier shift.
  const after = readAtMs !== undefined && shift !== undefined && readAtMs > shift.fromMs;
  return planned && after && !shift.followedUp ? heat.sinceShiftSeconds : undefined;
}

/** The next reconcile: when the readings are due (not a whole interval after one that reused them), or the rollout's wait. */
function requeueAfterMs(
  observed: Observed,
  reconcileIntervalMs: number,
  rolloutMs: number | undefined,
  nowMs: number,
): number {
  const readDueMs =
    observed.readAtMs === undefined
      ? observed.refreshMs
      : Math.max(1_000, observed.readAtMs + observed.refreshMs - nowMs);
  const waits = [reconcileIntervalMs, readDueMs];
  if (rolloutMs !== undefined) waits.push(Math.max(rolloutMs, 200));
  return Math.min(...waits);
}

/** Shards pending past the timeout where the operator manages the pods (0 elsewhere). */
function pendingShardCount(
  managed: boolean,
  shardPods: readonly ShardPod[],
  nowMs: number,
  spec: MoEDeployment["spec"],
): number {
  return managed ? pendingPastTimeout(shardPods, nowMs, spec.scaling.pendingTimeoutSeconds * 1000).length : 0;
}
