// The ChildPlan: what children an MoEDeployment should have, computed purely
// from the decision and what exists. Applying it is an Actuator's job.
import { drainDeadlineSeconds, drainGraceSeconds } from "../../domain/rollout/drain.ts";
import type { V1ConfigMap, V1Deployment, V1Pod } from "@kubernetes/client-node";
import { moeLayerCount, type MoEDeployment } from "../../api/schema.ts";
import type { Decision } from "../../domain/decide.ts";
import { planRollout, restoresCoverage, type DesiredShard, type RolloutPlan } from "../../domain/rollout/index.ts";
import { expertSetHash, shardExperts } from "./children.ts";
import { PlacementKey, renderPlacementConfigMap, type PublishedPlacement } from "./codecs/placement-configmap.ts";
import { routerDrift, routerToApply } from "./codecs/router.ts";
import { configMapDrifted, nextPlacementVersion } from "./recover.ts";
import type { EventSpec } from "./events.ts";
import { expertPeersAnnotation, renderShardPod, type ShardPod } from "./codecs/shard-pod.ts";
import { servedSet, type InPlacePatch, type InPlacePlan } from "../../domain/inplace/index.ts";
import { expertPeers, type PeerHolder } from "../../domain/inplace/peers.ts";
import { inPlacePodNameHash, planShardMoves } from "./inplace.ts";
import { fallbackNameHash, gpuFallback, gpuReturn, returnNameHash, type PrimaryRoom } from "./gpu-fallback.ts";
import { gpuWhere } from "./status.ts";

/** The placement the plan publishes. */
export interface PlannedPlacement {
  /**
   * Version in the ConfigMap: never below the published one or status's; plus one when the placement
   * changes or is published again after its ConfigMap was lost.
   */
  version: number;
  hash?: string;
  /** The target differs from the published placement. */
  changed: boolean;
  /** The decision made a new plan (first placement or a replan). */
  rebalanced: boolean;
}

export interface ChildPlan {
  /** The router Deployment to apply; undefined when the live one carries the same content hash. */
  router?: V1Deployment;
  /** The placement ConfigMap to apply; undefined when the published one is current (or there is no placement yet). */
  placementConfigMap?: V1ConfigMap;
  /** Make-before-break rollout of shard pods toward the target placement; undefined before any placement. */
  rollout?: RolloutPlan;
  /** Shard pods to create, rendered from rollout.create. */
  createPods: V1Pod[];
  /** Shard pods to mark draining (names). */
  drainPods: string[];
  /** Draining shard pods whose drain is cancelled (another Ready holder of their experts is gone). */
  undrainPods: string[];
  /** Drained shard pods to delete (uid: delete only that incarnation). */
  deletePods: { name: string; uid?: string }[];
  /**
   * InPlace: new target sets to write on running shard pods, each only over the pod version it was
   * planned from; a load names the Ready peers to fetch from (moe.dev/expert-peers).
   */
  targetPods: (InPlacePatch & { resourceVersion?: string; peers?: string })[];
  /** InPlace: the in-place plan (moving, stalled and applied shards); undefined in mode Replace. */
  inPlace?: InPlacePlan;
  placement: PlannedPlacement;
  /** One per shard index of the target placement. */
  desired: DesiredShard[];
  /** Events for hand changes this plan undoes (recorded once the writes succeed). */
  events: EventSpec[];
}

/** What exists now, as far as the plan cares. */
export interface LiveChildren {
  router: V1Deployment | undefined;
  published: PublishedPlacement | undefined;
  /** The placement ConfigMap as it is (to see hand edits). */
  placementConfigMap?: V1ConfigMap;
  /** The placement rebuilt from the shard pods, when the ConfigMap is missing or corrupted. */
  recovered?: PublishedPlacement;
  shardPods: readonly ShardPod[];
}

export interface PlanOptions {
  nowMs: number;
  drainSeconds: number;
  maxSurge: number;
  /** Most shard pods created per reconcile, and none while this many are unschedulable. */
  maxCreates?: number;
  /** Observed latency at the SLO's percentile (ms): sets the drain deadline of spec.serving.expertShards.drain. */
  observedP99Ms?: number;
  /** PriorityClass of shard pods that would hold a (layer, expert) no Ready pod holds. */
  soleReplicaPriorityClass?: string;
  /** Room on the primary GPU type while fallback pods exist (gpu-fallback.ts gpuReturn); undefined: no returns. */
  primaryRoom?: PrimaryRoom;
}

function desiredShards(decision: Decision): DesiredShard[] {
  const target = decision.placement.placement;
  if (!target) return [];
  return target.gpus.map((_, g) => {
    const experts = shardExperts(target, g);
    return { shardIndex: g, experts, setHash: expertSetHash(experts), nodeName: decision.shardNodes[g] };
  });
}

function plannedPlacement(d: MoEDeployment, decision: Decision, live: LiveChildren): PlannedPlacement {
  const hash = decision.placement.hash;
  const status = d.status?.placement;
  const changed =
    decision.placement.placement !== undefined &&
    hash !== live.published?.hash &&
    hash !== (live.recovered?.hash ?? status?.hash);
  const version = nextPlacementVersion({
    targetHash: decision.placement.placement ? hash : undefined,
    published: live.published,
    recovered: live.recovered !== undefined,
    status,
  });
  return {
    version,
    hash,
    changed,
    rebalanced: decision.placement.action === "replan" || decision.placement.action === "initial",
  };
}

export function planChildren(d: MoEDeployment, decision: Decision, live: LiveChildren, o: PlanOptions): ChildPlan {
  const desired = desiredShards(decision);
  const placement = plannedPlacement(d, decision, live);
  const target = decision.placement.placement;
  const plan: ChildPlan = {
    router: routerToApply(d, live.router),
    createPods: [],
    drainPods: [],
    undrainPods: [],
    deletePods: [],
    targetPods: [],
    placement,
    desired,
    events: [],
  };
  const drift = routerDrift(d, live.router);
  if (drift)
    plan.events.push({
      type: "Normal",
      reason: "DriftCorrected",
      message: `router Deployment ${live.router?.metadata?.name} was changed by hand (${drift}); restored`,
    });
  const hash = placement.hash;
  if (!target || hash === undefined) return plan;
  const cm = renderPlacementConfigMap(d, {
    placement: target,
    hash,
    version: placement.version,
    denseLayers: d.spec.model.denseLayers,
    heatBasis: decision.placement.heatBasis,
    moveCost: decision.placement.moveCost
      ? { cost: decision.placement.moveCost, maxStallSeconds: d.spec.placement.maxStallMilliseconds / 1000 }
      : undefined,
    shards: desired.map((s) => ({ shardIndex: s.shardIndex, setHash: s.setHash })),
  });
  // The move cost describes the change that made the published placement: an unchanged placement keeps it.
  const liveMoveCost = live.placementConfigMap?.data?.[PlacementKey.moveCost];
  if (!placement.changed && liveMoveCost !== undefined && cm.data?.[PlacementKey.moveCost] === undefined)
    cm.data = { ...cm.data, [PlacementKey.moveCost]: liveMoveCost };
  if (placement.changed || live.recovered || configMapDrifted(live.placementConfigMap, cm)) {
    plan.placementConfigMap = cm;
    const name = cm.metadata!.name!;
    if (live.recovered)
      plan.events.push({
        type: "Warning",
        reason: "PlacementRecovered",
        message: `placement ConfigMap ${name} was ${live.placementConfigMap ? "unreadable" : "missing"}; rebuilt from the ${desired.length} shard pods' moe.dev/experts annotations as v${placement.version}`,
      });
    else if (!placement.changed && live.placementConfigMap)
      plan.events.push({
        type: "Normal",
        reason: "DriftCorrected",
        message: `placement ConfigMap ${name} was changed by hand; restored v${placement.version}`,
      });
  }
  const layerCount = moeLayerCount(d.spec.model);
  const moves = planShardMoves(d, desired, live.shardPods, { layerCount, nowMs: o.nowMs });
  const rollout = planRollout({
    pods: moves.views,
    desired,
    layerCount,
    expertCount: d.spec.model.routedExperts,
    nowMs: o.nowMs,
    drainSeconds: drainDeadlineSeconds({
      drain: d.spec.serving.expertShards?.drain,
      fallbackSeconds: o.drainSeconds,
      sloMetric: d.spec.slo.metric,
      sloTargetMs: d.spec.slo.targetLatencyMs,
      observedMs: o.observedP99Ms,
    }),
    maxSurge: o.maxSurge,
    maxCreates: o.maxCreates,
  });
  plan.rollout = moves.inPlace
    ? {
        ...rollout,
        complete: rollout.complete && moves.inPlace.settled,
        requeueAfterMs: minDefined(rollout.requeueAfterMs, moves.inPlace.requeueAfterMs),
      }
    : rollout;
  plan.inPlace = moves.inPlace;
  const holders = peerHolders(live.shardPods);
  plan.targetPods = targetPatches(moves.inPlace?.patches ?? [], live.shardPods, holders);
  const render = (create: readonly DesiredShard[], fallback?: { nameHash?: string; returnFor?: string }) =>
    renderCreates(d, create, moves, placement, layerCount, { ...o, holders, fallback });
  plan.createPods = rolloutCreates(rollout.create, live.shardPods, render);
  plan.drainPods = [...rollout.startDrain];
  plan.undrainPods = [...rollout.cancelDrain];
  plan.deletePods = rollout.delete.map((name) => ({
    name,
    uid: live.shardPods.find((p) => p.name === name)?.pod.metadata?.uid,
  }));
  fallbackSteps(d, plan, rollout, live, { placementChanged: placement.changed, desired, o }, render);
  return plan;
}

/** spec.serving.gpu.alternatives: stuck pods to the fallback scheduling, fallback pods back to the primary (gpu-fallback.ts). */
function fallbackSteps(
  d: MoEDeployment,
  plan: ChildPlan,
  rollout: RolloutPlan,
  live: LiveChildren,
  x: { placementChanged: boolean; desired: readonly DesiredShard[]; o: PlanOptions },
  render: (create: readonly DesiredShard[], fallback?: { nameHash?: string; returnFor?: string }) => V1Pod[],
): void {
  const { stuck } = gpuFallback(d.spec, live.shardPods, x.o.nowMs);
  replaceStuck(d, plan, rollout, stuck, x.desired, (s, nameHash) => render([s], { nameHash }));
  // Idle: nothing planned now, no drain under way, every desired shard has a pod, and every pod but
  // the return pods is Ready (so the pace of returns does not depend on which pod of a shard sorts first).
  const pods = live.shardPods.filter((p) => !p.terminating);
  const keys = new Set(pods.filter((p) => p.drainStartedMs === undefined).map((p) => `${p.shardIndex}/${p.setHash}`));
  const idle =
    stuck.length === 0 &&
    plan.createPods.length === 0 &&
    plan.drainPods.length === 0 &&
    plan.undrainPods.length === 0 &&
    plan.deletePods.length === 0 &&
    !x.placementChanged &&
    !pods.some((p) => p.drainStartedMs !== undefined) &&
    !pods.some((p) => !p.ready && p.returnFor === undefined) &&
    x.desired.every((s) => keys.has(`${s.shardIndex}/${s.setHash}`));
  const steps = gpuReturn(d.spec, live.shardPods, x.o.primaryRoom, x.o.nowMs, { idle, maxInFlight: x.o.maxSurge });
  // A return pod that the rollout drains now (its shard scaled away or re-planned) finishes nothing:
  // its fallback pod is the rollout's to drain, once another Ready pod holds what it alone holds.
  const finish = steps.finish.filter(
    (f) =>
      !plan.drainPods.includes(f.by.name) &&
      x.desired.some((s) => s.shardIndex === f.by.shardIndex && s.setHash === f.by.setHash),
  );
  returnToPrimary(d, plan, { ...steps, finish }, x.desired, (s, nameHash, returnFor) =>
    render([s], { nameHash, returnFor }),
  );
}

/**
 * Fallback pods back to the primary nodes, make-before-break (gpu-fallback.ts gpuReturn): return pods
 * to create (the shard's desired set, the primary scheduling), fallback pods to drain once their return
 * pod is Ready (the rollout then deletes them), and return pods to delete when they found no node.
 */
function returnToPrimary(
  d: MoEDeployment,
  plan: ChildPlan,
  r: ReturnType<typeof gpuReturn>,
  desired: readonly DesiredShard[],
  render: (s: DesiredShard, nameHash: string, returnFor: string) => V1Pod[],
): void {
  const started: string[] = [];
  for (const p of r.start) {
    const want = desired.find((s) => s.shardIndex === p.shardIndex && s.setHash === p.setHash);
    if (!want) continue;
    const [pod] = render(
      { ...want, nodeName: undefined },
      returnNameHash(p.name.slice(p.name.lastIndexOf("-") + 1)),
      p.name,
    );
    if (!pod) continue;
    plan.createPods.push(pod);
    started.push(`${p.name} (on ${p.pod.spec?.nodeName}) -> ${pod.metadata!.name!}`);
  }
  for (const f of r.finish) if (!plan.drainPods.includes(f.fallback.name)) plan.drainPods.push(f.fallback.name);
  for (const p of r.abandon) plan.deletePods.push({ name: p.name, uid: p.pod.metadata?.uid });
  const list = (xs: readonly string[]) =>
    xs.slice(0, 5).join(", ") + (xs.length > 5 ? `, and ${xs.length - 5} more` : "");
  if (started.length > 0)
    plan.events.push({
      type: "Normal",
      reason: "GPUReturn",
      message: `${gpuWhere(d)} has room again: ${started.length} shard pod(s) on spec.serving.gpu.alternatives moving back, make-before-break: ${list(started)}`,
    });
  if (r.finish.length > 0)
    plan.events.push({
      type: "Normal",
      reason: "GPUReturn",
      message: `${r.finish.length} shard(s) Ready on ${gpuWhere(d)} again; draining the fallback pod(s): ${list(r.finish.map((f) => `${f.fallback.name} (replaced by ${f.by.name})`))}`,
    });
  if (r.abandon.length > 0)
    plan.events.push({
      type: "Normal",
      reason: "GPUReturn",
      message: `${r.abandon.length} return pod(s) found no node on ${gpuWhere(d)} within ${d.spec.scaling.pendingTimeoutSeconds} s; deleted, their fallback pods serve on: ${list(r.abandon.map((p) => p.name))}`,
    });
}

/** The rollout's new pods; a shard whose live pod has the fallback scheduling keeps it (gpu-fallback.ts). */
function rolloutCreates(
  create: readonly DesiredShard[],
  pods: readonly ShardPod[],
  render: (create: readonly DesiredShard[], fallback?: { nameHash?: string }) => V1Pod[],
): V1Pod[] {
  const onFallback = new Set(pods.filter((p) => p.gpuFallback && !p.terminating).map((p) => p.shardIndex));
  return [
    ...render(create.filter((s) => !onFallback.has(s.shardIndex))),
    ...render(
      create.filter((s) => onFallback.has(s.shardIndex)),
      {},
    ),
  ];
}

/** InPlace: the targets to write, each over the pod version it was planned from; a load names its peers. */
function targetPatches(
  patches: readonly InPlacePatch[],
  pods: readonly ShardPod[],
  holders: readonly PeerHolder[],
): ChildPlan["targetPods"] {
  return patches.map((x) => {
    const pod = pods.find((p) => p.name === x.pod)?.pod;
    const peers =
      x.phase === "Load"
        ? expertPeersAnnotation(expertPeers(x.target, x.served, holders, { name: x.pod, node: pod?.spec?.nodeName }))
        : undefined;
    return { ...x, resourceVersion: pod?.metadata?.resourceVersion, ...(peers ? { peers } : {}) };
  });
}

/**
 * spec.serving.gpu.alternatives: each stuck shard pod (gpu-fallback.ts) whose shard and set are
 * still desired, and that the rollout neither deletes nor replaces, is deleted and created again
 * with the fallback scheduling under a name of its own (it is unscheduled: it serves nothing and
 * holds no GPU, so there is nothing to keep until the replacement is Ready).
 */
function replaceStuck(
  d: MoEDeployment,
  plan: ChildPlan,
  rollout: RolloutPlan,
  stuck: readonly ShardPod[],
  desired: readonly DesiredShard[],
  render: (s: DesiredShard, nameHash: string) => V1Pod[],
): void {
  const replaced: string[] = [];
  for (const p of stuck) {
    if (rollout.delete.includes(p.name) || rollout.startDrain.includes(p.name)) continue;
    const want = desired.find((s) => s.shardIndex === p.shardIndex && s.setHash === p.setHash);
    if (!want) continue;
    if (rollout.create.some((s) => s.shardIndex === p.shardIndex && s.setHash === p.setHash)) continue;
    const nameHash = fallbackNameHash(p.name.slice(p.name.lastIndexOf("-") + 1));
    const [pod] = render(want, nameHash);
    if (!pod) continue;
    plan.createPods.push(pod);
    plan.deletePods.push({ name: p.name, uid: p.pod.metadata?.uid });
    replaced.push(`${p.name} -> ${pod.metadata!.name!}`);
  }
  if (replaced.length === 0) return;
  const gpu = d.spec.serving.gpu;
  const shown = replaced.slice(0, 5).join(", ") + (replaced.length > 5 ? `, and ${replaced.length - 5} more` : "");
  plan.events.push({
    type: "Normal",
    reason: "GPUFallback",
    message: `${replaced.length} shard pod(s) waiting for ${gpuWhere(d)} for over ${d.spec.scaling.pendingTimeoutSeconds} s replaced by pods that may also run on spec.serving.gpu.alternatives ${(gpu.alternatives ?? []).map((a) => a.name).join(", ")}: ${shown}`,
  });
}

/** The shard pods to create, rendered (priority class for those restoring coverage; InPlace annotations). */
function renderCreates(
  d: MoEDeployment,
  create: readonly DesiredShard[],
  moves: ReturnType<typeof planShardMoves>,
  placement: PlannedPlacement,
  layerCount: number,
  o: PlanOptions & { holders: readonly PeerHolder[]; fallback?: { nameHash?: string; returnFor?: string } },
) {
  const hash = placement.hash!;
  const readyPods = moves.views.filter((p) => p.ready && !p.terminating);
  const restores = (s: DesiredShard) => restoresCoverage(s, readyPods, layerCount, d.spec.model.routedExperts);
  return create.map((s) =>
    renderShardPod(d, {
      shardIndex: s.shardIndex,
      experts: s.experts.map((l) => [...l]),
      setHash: s.setHash,
      placementVersion: placement.version,
      placementHash: hash,
      preferredNode: s.nodeName,
      priorityClassName: o.soleReplicaPriorityClass && restores(s) ? o.soleReplicaPriorityClass : undefined,
      minTerminationGraceSeconds: drainGraceSeconds(d.spec.serving.expertShards?.drain, o.drainSeconds),
      peers: expertPeersAnnotation(expertPeers(s.experts, [], o.holders, { node: s.nodeName })),
      gpuFallback: o.fallback !== undefined && o.fallback.returnFor === undefined,
      ...(o.fallback?.returnFor ? { returnFor: o.fallback.returnFor } : {}),
      ...(moves.inPlace
        ? {
            inPlace: { nowIso: new Date(o.nowMs).toISOString() },
            nameHash: inPlacePodNameHash(s.setHash, placement.version),
          }
        : {}),
      ...(o.fallback?.nameHash ? { nameHash: o.fallback.nameHash } : {}),
    }),
  );
}

/** The peers a loading shard may fetch from: Ready shard pods, not draining or terminating, with what they serve. */
function peerHolders(pods: readonly ShardPod[]): PeerHolder[] {
  return pods
    .filter((p) => p.ready && !p.terminating && p.drainStartedMs === undefined)
    .map((p) => ({
      name: p.name,
      served: servedSet(p),
      ...(p.pod.spec?.nodeName ? { node: p.pod.spec.nodeName } : {}),
      ...(p.pod.status?.podIP ? { ip: p.pod.status.podIP } : {}),
    }));
}

function minDefined(a: number | undefined, b: number | undefined): number | undefined {
  return a === undefined ? b : b === undefined ? a : Math.min(a, b);
}
