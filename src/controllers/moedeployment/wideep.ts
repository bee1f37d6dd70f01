// Topology WideEP (docs/adr/0021-wide-ep-groups.md): the reconcile's middle for EP groups on a
// LeaderWorkerSet. The reconciler admits, reads the sources and writes the status as for every
// topology; this module decides the groups (domain/wideep), renders the LeaderWorkerSet and the
// status, and (Auto) applies the LeaderWorkerSet by server-side apply.
import type { V1ConfigMap } from "@kubernetes/client-node";
import type { CachedPod } from "./cached.ts";
import type { Logger } from "pino";
import { ConditionReason, ConditionType } from "../../api/constants.ts";
import type { MoEDeployment, MoEDeploymentStatus } from "../../api/schema.ts";
import type { KubeClient, KubeWriter } from "../../adapters/kube.ts";
import { KubeApiError } from "../../adapters/kube-errors.ts";
import type { CapacityState } from "../../domain/capacity/index.ts";
import type { DeploymentPolicy, NodeView } from "../../domain/decide.ts";
import { decideWideEP, type WideEPDecision } from "../../domain/wideep/decide.ts";
import {
  gpusPerGroup,
  groupStates,
  type GroupPod,
  type GroupShape,
  type GroupState,
} from "../../domain/wideep/groups.ts";
import { groupPlacement } from "../../domain/wideep/placement.ts";
import { groupsMovedSince, planGroupMoves, type GroupMovesPlan, type StalledGroup } from "../../domain/wideep/moves.ts";
import {
  LWS_API_VERSION,
  LWS_KIND,
  groupTargetPatch,
  lwsHandEdit,
  lwsToApply,
  readGroupLeaders,
  readGroupPod,
  renderLeaderWorkerSet,
  type LeaderWorkerSet,
} from "./codecs/leaderworkerset.ts";
import { readPlacementConfigMap, renderPlacementConfigMap } from "./codecs/placement-configmap.ts";
import { childNames, expertSetHash, shardExperts } from "./children.ts";
import { configMapDrifted, nextPlacementVersion } from "./recover.ts";
import { reportedIn } from "./inplace.ts";
import { mergeConditions, type ConditionInput } from "./conditions.ts";
import { ChildApplyError } from "./errors.ts";
import { planGroupDrain, type GroupDrain } from "./group-drain.ts";
import { ShardAnnotation } from "./codecs/shard-pod.ts";
import { conditionEvents, scaledEvent, type EventSpec } from "./events.ts";
import {
  budgetCondition,
  costStatus,
  groupsMissingGpus,
  groupsUnplaceable,
  lastScale,
  latencyStatus,
  metricsCondition,
  recommendation,
  sloCondition,
  type CountVerdict,
} from "./status.ts";
import type { HeatReading, LatencyReading } from "./sources.ts";

export interface WideEPInput {
  deployment: MoEDeployment;
  /** The operator's pods in the deployment's namespace (group pods carry its labels). */
  pods: readonly CachedPod[];
  heat: HeatReading;
  latency: LatencyReading;
  policy: DeploymentPolicy;
  capacityState?: CapacityState;
  trackingSinceMs: number;
  /** The published placement ConfigMap (cache), and the last heat good enough to plan with. */
  placementConfigMap?: V1ConfigMap;
  lastGoodHeat?: number[][];
  /** GPU nodes matching spec.serving.gpu with their free GPUs and prices (observe.ts nodeViews): the groups' cost. */
  nodes?: readonly NodeView[];
  /** Auto: the LeaderWorkerSet is applied and status reports the live groups. */
  managesWorkloads: boolean;
  /** How long a Ready group is marked draining before a scale-down removes it (group-drain.ts); default 0. */
  drainMs?: number;
  nowMs: number;
}

export interface WideEPPlan {
  decision: WideEPDecision;
  /** The decision in GPUs, as the shared condition/status/event builders read it. */
  verdict: CountVerdict;
  /** The LeaderWorkerSet to apply (Auto only). */
  lws?: LeaderWorkerSet;
  /** Auto: the groups draining before a scale-down, and the leader pods to mark or unmark. */
  drain?: GroupDrain;
  /** The shared placement's ConfigMap to apply before it (Auto only; undefined when the published one is current). */
  placementConfigMap?: V1ConfigMap;
  /** The shared placement's decision (the reconciler remembers its heat and evaluation). */
  placement: ReturnType<typeof groupPlacement>;
  /** InPlace (Auto): the running groups' moves to the published placement, and its hash (the targets written). */
  moves?: GroupMovesPlan & { hash: string; atIso: string };
  status: MoEDeploymentStatus;
}

export function shapeOf(d: MoEDeployment): GroupShape {
  const w = d.spec.serving.wideEP;
  if (!w) throw new Error(`spec.serving.wideEP is required for topology ${d.spec.serving.topology}`);
  return { nodesPerGroup: w.nodesPerGroup, gpusPerNode: w.gpusPerNode };
}

/** Decide the groups and render what to apply and the status. No I/O. */
export function planWideEP(x: WideEPInput): WideEPPlan {
  const d = x.deployment;
  const shape = shapeOf(d);
  const g = gpusPerGroup(shape);
  const pods = x.managesWorkloads ? x.pods.map((p) => readGroupPod(d, p)).filter((p) => p !== undefined) : [];
  const provisionedGroups = provisionedGroupsOf(d, pods, x.managesWorkloads);
  const published = readPlacementConfigMap(x.placementConfigMap);
  const decision = decideWideEP(
    {
      currentPlacement: published?.placement,
      heat: x.heat.heat,
      observedP99Ms: x.latency.p99Ms,
      observedP99AtMs: x.latency.atMs,
      movedSinceMs: movedSince(x, pods, provisionedGroups, shape),
      provisionedGroups,
      decidedGroups: decidedGroups(d, g, x.managesWorkloads),
      pods,
      capacityState: x.capacityState,
      trackingSinceMs: x.trackingSinceMs,
      lastScaleUpMs: lastScaleUpMs(d),
      nodes: x.nodes,
    },
    x.policy,
    shape,
    d.spec.scaling.pendingTimeoutSeconds * 1000,
    x.nowMs,
  );
  const nowIso = new Date(x.nowMs).toISOString();
  const drain = drainOf(x, decision, provisionedGroups);
  const moves = groupMoves(x, decision, drain, published, nowIso);
  const placement = groupPlacement(
    {
      heat: x.heat.heat,
      lastGoodHeat: x.lastGoodHeat,
      current: published,
      lastRebalanceMs: d.status?.placement?.lastRebalanceTime
        ? Date.parse(d.status.placement.lastRebalanceTime)
        : undefined,
      trackingSinceMs: x.trackingSinceMs,
      movesInFlight: moves?.inFlight ?? false,
    },
    x.policy,
    shape,
    x.nowMs,
  );
  const cm = placementToPublish(d, placement, published, x.placementConfigMap);
  const verdict = verdictOf(decision, g);
  const conditions = [
    ...wideEPConditions(d, decision, x.managesWorkloads, provisionedGroups),
    ...(moves ? [groupsStalledCondition(moves, published?.version)] : []),
    ...sharedConditions(x, verdict, provisionedGroups - decision.readyGroups, decision.pending, {
      decidedGroups: decision.groups,
      pods,
      nodes: x.nodes,
    }),
  ];
  // What only Disaggregated deployments write (weight staging, shard pods' cold starts) is not
  // carried over from a status written before a topology switch.
  const { staging: _staging, coldStart: _coldStart, ...kept } = d.status ?? {};
  const status: MoEDeploymentStatus = {
    ...kept,
    observedGeneration: d.metadata.generation,
    conditions: mergeConditions(d.status?.conditions, conditions, d.metadata.generation, nowIso),
    desiredShards: decision.groups * g,
    desiredGpus: decision.groups * g,
    currentShards: x.managesWorkloads ? provisionedGroups * g : 0,
    currentGpus: x.managesWorkloads ? provisionedGroups * g : 0,
    groups: groupsStatus(decision, drain, g, moves),
    ...(cm.status ? { placement: placementStatus(d, cm.status, placement, nowIso) } : {}),
    latency: latencyStatus({ deployment: d, latency: x.latency }),
    cost: costStatus({ managesWorkloads: x.managesWorkloads, decision: verdict }),
    lastScale: lastScale({ deployment: d, managesWorkloads: x.managesWorkloads, decision: verdict }, nowIso),
    recommendation: recommendation(
      {
        deployment: d,
        decision: { ...verdict, placement, message: `${decision.groups} EP group(s) of ${g} GPUs: ${verdict.message}` },
        groups: decision.groups,
      },
      nowIso,
    ),
  };
  return {
    decision,
    verdict,
    lws: drain ? renderLeaderWorkerSet(d, drain.replicas) : undefined,
    drain,
    placementConfigMap: x.managesWorkloads ? cm.apply : undefined,
    placement,
    ...(moves ? { moves } : {}),
    status,
  };
}

/** The groups provisioned: status.groups.desired, else (Auto) the highest group index seen plus one. */
function provisionedGroupsOf(d: MoEDeployment, pods: readonly { group: number }[], auto: boolean): number {
  const seen = pods.length > 0 ? Math.max(...pods.map((p) => p.group)) + 1 : 0;
  return d.status?.groups?.desired ?? (auto ? seen : 0);
}

/** Auto: which groups run, which drain, and the LeaderWorkerSet's replicas. */
function drainOf(x: WideEPInput, decision: ReturnType<typeof decideWideEP>, provisioned: number) {
  return x.managesWorkloads
    ? planGroupDrain(x.deployment, x.pods, {
        target: decision.groups,
        provisioned,
        states: decision.states,
        drainMs: x.drainMs ?? 0,
        nowMs: x.nowMs,
      })
    : undefined;
}

/**
 * Auto: the groups last decided (status.desiredShards, GPUs), which the running groups exceed while
 * some drain; unknown after a change of the group's shape (its GPUs were counted in other groups).
 */
function decidedGroups(d: MoEDeployment, g: number, auto: boolean): number | undefined {
  const gpus = d.status?.desiredShards;
  const sameShape = d.status?.groups?.gpusPerGroup === g;
  return auto && gpus !== undefined && sameShape ? Math.ceil(gpus / g) : undefined;
}

/** status.groups: desired is the LeaderWorkerSet's replicas (above the decision while groups drain). */
function groupsStatus(
  decision: WideEPDecision,
  drain: GroupDrain | undefined,
  g: number,
  moves: GroupMovesPlan | undefined,
): NonNullable<MoEDeploymentStatus["groups"]> {
  return {
    ...(moves ? { placementApplied: moves.applied.length, placementMoving: moves.moving.length } : {}),
    desired: drain?.replicas ?? decision.groups,
    ready: drain ? decision.readyGroups : 0,
    gpusPerGroup: g,
    ...(decision.pending.length > 0 ? { pending: decision.pending.map((p) => p.index) } : {}),
    ...(drain && drain.draining.length > 0 ? { draining: [...drain.draining] } : {}),
  };
}

/** The serving groups' in-place moves: the last acknowledgement, or now while one is outstanding (until its deadline). */
function movedSince(x: WideEPInput, pods: readonly GroupPod[], groups: number, shape: GroupShape): number | undefined {
  if (!x.managesWorkloads || x.deployment.spec.placement.moves.mode !== "InPlace") return undefined;
  const serving = new Set(
    groupStates(pods, groups, shape, x.nowMs)
      .filter((s) => s.ready)
      .map((s) => s.index),
  );
  return groupsMovedSince(
    readGroupLeaders(x.deployment, x.pods, (g) => serving.has(g)),
    x.nowMs,
    x.deployment.spec.placement.moves.ackTimeoutSeconds * 1000,
  );
}

/**
 * spec.placement.moves.mode InPlace (Auto): the serving groups (every pod Ready, not draining) are
 * moved to the published placement version through their leader pods (domain/wideep/moves.ts).
 */
function groupMoves(
  x: WideEPInput,
  decision: WideEPDecision,
  drain: GroupDrain | undefined,
  published: ReturnType<typeof readPlacementConfigMap>,
  nowIso: string,
): WideEPPlan["moves"] {
  const d = x.deployment;
  if (!x.managesWorkloads || d.spec.placement.moves.mode !== "InPlace") return undefined;
  const draining = new Set(drain?.draining ?? []);
  const ready = new Set(decision.states.filter((s) => s.ready).map((s) => s.index));
  // Groups at or above the replicas to apply are going (the drain's last round lists none as draining).
  const kept = drain?.replicas ?? decision.groups;
  const leaders = readGroupLeaders(d, x.pods, (g) => ready.has(g) && !draining.has(g) && g < kept);
  const plan = planGroupMoves({
    leaders,
    publishedVersion: published?.version,
    ackTimeoutMs: d.spec.placement.moves.ackTimeoutSeconds * 1000,
    nowMs: x.nowMs,
  });
  return { ...plan, hash: published?.hash ?? "", atIso: nowIso };
}

/** RebalanceStalled under WideEP InPlace: True naming each group that refused or missed the deadline. */
export function groupsStalledCondition(moves: GroupMovesPlan, version: number | undefined): ConditionInput {
  const type = ConditionType.RebalanceStalled;
  if (moves.stalled.length > 0)
    return {
      type,
      status: "True",
      reason: ConditionReason.GroupMoveFailed,
      message: `${moves.stalled.map((s) => s.message).join("; ")} (a group takes the current placement in place at a later version, or from the ConfigMap when it restarts)`,
    };
  return {
    type,
    status: "False",
    reason: ConditionReason.MovesAcknowledged,
    message:
      moves.moving.length > 0
        ? `${moves.moving.length} EP group(s) moving to placement version ${version} in place, none past the deadline`
        : version === undefined
          ? "no placement published yet"
          : `every serving EP group acknowledged placement version ${version}`,
  };
}

/** The stalls not counted before (by leader pod and version) nor named in `reported` (see newStalls); `seen` is pruned and extended. */
export function newGroupStalls(moves: GroupMovesPlan | undefined, seen: Set<string>, reported = ""): StalledGroup[] {
  const key = (s: StalledGroup) => `${s.pod}/v${s.version}`;
  const current = new Set((moves?.stalled ?? []).map(key));
  const fresh = (moves?.stalled ?? []).filter((s) => !seen.has(key(s)) && !reportedIn(reported, s.message));
  for (const k of [...seen]) if (k.includes("/v") && !current.has(k)) seen.delete(k);
  for (const k of current) seen.add(k);
  return fresh;
}

const lastScaleUpMs = (d: MoEDeployment): number | undefined => {
  const l = d.status?.lastScale;
  return l && l.toShards > l.fromShards ? Date.parse(l.time) : undefined;
};

/** The group decision in GPUs (one shard is one GPU under WideEP). */
export function verdictOf(decision: WideEPDecision, gpusPerGroup: number): CountVerdict {
  return {
    desiredShards: decision.groups * gpusPerGroup,
    capacity: decision.count.capacity,
    reason: decision.count.reason,
    message: decision.count.message,
    heatProblem: decision.heatProblem,
    usdPerHourNow: decision.usdPerHourNow,
    usdPerHourDesired: decision.usdPerHourDesired,
    loadTokensPerSecond: decision.loadTokensPerSecond,
  };
}

/**
 * MetricsAvailable, SLOMet and BudgetExceeded from the functions Disaggregated deployments use.
 * SLOMet names the GPUs missing in groups pending past the timeout (CapacityPending) as it names
 * the GPUs missing for shards; before that, the GPUs the decided groups need that no node has room
 * for (groupsUnplaceable).
 */
function sharedConditions(
  x: WideEPInput,
  verdict: CountVerdict,
  groupsNotReady: number,
  pending: readonly GroupState[],
  supply: Parameters<typeof groupsUnplaceable>[1],
): ConditionInput[] {
  const common = {
    deployment: x.deployment,
    decision: verdict,
    heat: x.heat,
    latency: x.latency,
    shardPods: [],
    managesWorkloads: x.managesWorkloads,
  };
  const warming = x.managesWorkloads && groupsNotReady > 0 ? `${groupsNotReady} EP group(s) not yet Ready` : undefined;
  const missing = x.managesWorkloads
    ? (groupsMissingGpus(x.deployment, pending) ?? groupsUnplaceable(x.deployment, supply))
    : undefined;
  return [metricsCondition(common), sloCondition({ ...common, warming, missing }), budgetCondition(common)];
}

/** ScaledUp/ScaledDown (Auto) and the Warnings for conditions that turned bad, as for Disaggregated. */
export function wideEPEvents(previous: MoEDeploymentStatus | undefined, plan: WideEPPlan, auto: boolean): EventSpec[] {
  const out = [
    auto ? scaledEvent(previous?.desiredShards, plan.verdict) : undefined,
    auto ? drainEvent(plan) : undefined,
    ...conditionEvents(previous, plan.status),
  ];
  return out.filter((e): e is EventSpec => e !== undefined);
}

/** GroupDraining when leader pods are marked at this reconcile. */
function drainEvent(plan: WideEPPlan): EventSpec | undefined {
  const dr = plan.drain;
  if (!dr || dr.mark.length === 0) return undefined;
  return {
    type: "Normal",
    reason: "GroupDraining",
    message: `EP group(s) ${dr.draining.join(", ")} marked draining (${ShardAnnotation.drainingSince} on the leader pod); the LeaderWorkerSet goes from ${dr.replicas} to ${plan.decision.groups} group(s) within ${Math.ceil((dr.remainingMs ?? 0) / 1000)} s`,
  };
}

/** The shared placement's ConfigMap: `apply` when it changed or drifted; `status` of what is published after it. */
function placementToPublish(
  d: MoEDeployment,
  placement: ReturnType<typeof groupPlacement>,
  published: ReturnType<typeof readPlacementConfigMap>,
  live: V1ConfigMap | undefined,
): { apply?: V1ConfigMap; status?: { version: number; hash: string } } {
  const target = placement.placement;
  const hash = placement.hash;
  if (!target || hash === undefined) return published ? { status: published } : {};
  const version = nextPlacementVersion({ targetHash: hash, published, recovered: false, status: d.status?.placement });
  const cm = renderPlacementConfigMap(d, {
    placement: target,
    hash,
    version,
    denseLayers: d.spec.model.denseLayers,
    heatBasis: placement.heatBasis,
    shards: Array.from({ length: target.gpus.length }, (_, i) => ({
      shardIndex: i,
      setHash: expertSetHash(shardExperts(target, i)),
    })),
  });
  const changed = hash !== published?.hash;
  return { apply: changed || configMapDrifted(live, cm) ? cm : undefined, status: { version, hash } };
}

function placementStatus(
  d: MoEDeployment,
  published: { version: number; hash: string },
  placement: ReturnType<typeof groupPlacement>,
  nowIso: string,
): NonNullable<MoEDeploymentStatus["placement"]> {
  const prev = d.status?.placement;
  const rebalanced = published.hash !== prev?.hash;
  const balancedness = placement.metrics?.balancedness;
  return {
    ...prev,
    version: published.version,
    hash: published.hash,
    configMapName: childNames(d.metadata.name!).placement,
    ...(balancedness !== undefined ? { balancedness: Number(balancedness.toFixed(4)) } : {}),
    ...(rebalanced ? { lastRebalanceTime: nowIso } : {}),
  };
}

/** GPUs missing in groups pending past the timeout (moe_operator_capacity_pending_shards: one shard is one GPU). */
export function pendingGpus(plan: WideEPPlan): number {
  return plan.decision.pending.reduce((sum, g) => sum + g.missingGpus, 0);
}

/** CapacityPending naming each group and its missing GPUs. */
export function groupsPendingCondition(d: MoEDeployment, pending: readonly GroupState[]): ConditionInput {
  const timeoutS = d.spec.scaling.pendingTimeoutSeconds;
  const type = ConditionType.CapacityPending;
  if (pending.length === 0)
    return {
      type,
      status: "False",
      reason: ConditionReason.NoPendingShards,
      message: `no EP group has waited for nodes longer than ${timeoutS} s`,
    };
  const resource = d.spec.serving.gpu.resourceName;
  const named = pending
    .map(
      (p) =>
        `group ${p.index}: ${p.missingGpus} ${resource} missing for ${Math.floor((p.pendingMs ?? 0) / 1000)} s` +
        (p.pendingMessage ? ` (${p.pendingMessage})` : ""),
    )
    .join("; ");
  return {
    type,
    status: "True",
    reason: ConditionReason.GroupsUnschedulable,
    message: `${pending.length} EP group(s) not fully scheduled after ${timeoutS} s, not counted as capacity: ${named}`,
  };
}

function wideEPConditions(
  d: MoEDeployment,
  decision: WideEPDecision,
  managesWorkloads: boolean,
  provisionedGroups: number,
): ConditionInput[] {
  if (!managesWorkloads)
    return [
      {
        type: ConditionType.Ready,
        status: "True",
        reason: ConditionReason.RecommendOnly,
        message: `recommending ${decision.groups} EP group(s): ${decision.count.message}`,
      },
    ];
  const allReady = decision.readyGroups >= decision.groups && provisionedGroups >= decision.groups;
  const direction =
    decision.groups > provisionedGroups
      ? ConditionReason.ScalingUp
      : decision.groups < provisionedGroups
        ? ConditionReason.ScalingDown
        : ConditionReason.Stable;
  return [
    {
      type: ConditionType.Ready,
      status: allReady ? "True" : "False",
      reason: allReady ? ConditionReason.GroupsReady : ConditionReason.GroupsNotReady,
      message: `${decision.readyGroups}/${decision.groups} EP group(s) with every pod Ready`,
    },
    {
      type: ConditionType.Progressing,
      status: direction === ConditionReason.Stable && allReady ? "False" : "True",
      reason: direction,
      message: `${provisionedGroups} -> ${decision.groups} EP group(s): ${decision.count.message}`,
    },
    groupsPendingCondition(d, decision.pending),
  ];
}

/** The drain marks on leader pods (set, or removed with null); a pod already gone is skipped. */
async function writeDrainMarks(kube: KubeWriter, plan: WideEPPlan): Promise<ChildApplyError[]> {
  const ns = plan.lws?.metadata?.namespace;
  const patches = [
    ...(plan.drain?.mark ?? []).map((name) => ({ name, value: plan.drain!.atIso as string | null })),
    ...(plan.drain?.unmark ?? []).map((name) => ({ name, value: null })),
  ];
  for (const { name, value } of patches) {
    try {
      await kube.mergePatch(
        { apiVersion: "v1", kind: "Pod", namespace: ns, name },
        { metadata: { annotations: { [ShardAnnotation.drainingSince]: value } } },
      );
    } catch (err) {
      if (err instanceof KubeApiError && err.kubeError.kind === "NotFound") continue;
      return [new ChildApplyError("patch", { kind: "Pod", name }, err)];
    }
  }
  return [];
}

/**
 * InPlace: the published placement version on the leader pods of the groups that move now (a pod
 * already gone is skipped). Every target is tried: one failed write does not hold back the others,
 * and the caller applies the LeaderWorkerSet anyway (a move and a scale are independent; a group
 * whose write failed still serves another version with no target, so the next reconcile writes it).
 */
async function writeGroupTargets(kube: KubeWriter, plan: WideEPPlan): Promise<ChildApplyError[]> {
  const m = plan.moves;
  const ns = plan.lws?.metadata?.namespace;
  if (!m || m.write.length === 0 || !ns) return [];
  const errors: ChildApplyError[] = [];
  for (const w of m.write) {
    try {
      await kube.mergePatch(
        { apiVersion: "v1", kind: "Pod", namespace: ns, name: w.pod },
        groupTargetPatch(w.version, m.hash, m.atIso),
      );
    } catch (err) {
      if (err instanceof KubeApiError && err.kubeError.kind === "NotFound") continue;
      errors.push(new ChildApplyError("patch", { kind: "Pod", name: w.pod }, err));
    }
  }
  return errors;
}

/** Reads the live LeaderWorkerSet (undefined when there is none). */
export type LwsReader = (namespace: string, name: string) => Promise<LeaderWorkerSet | undefined>;

/** An LwsReader on the API server (a GET; NotFound is undefined). */
export function lwsReader(kube: Pick<KubeClient, "objects">): LwsReader {
  return async (namespace, name) => {
    try {
      return (await kube.objects.read({
        apiVersion: LWS_API_VERSION,
        kind: LWS_KIND,
        metadata: { name, namespace },
      })) as LeaderWorkerSet;
    } catch (err) {
      const e = new KubeApiError(`get ${LWS_KIND}/${name}`, err);
      if (e.kubeError.kind === "NotFound") return undefined;
      throw e;
    }
  };
}

/**
 * Auto: the LeaderWorkerSet by server-side apply with the operator's field manager (it owns
 * spec.replicas), only when the live one (read first) differs from it (lwsToApply); a failed read
 * applies. A difference that is a hand edit (lwsHandEdit) is told to `onHandEdit` (the reconciler's
 * DriftCorrected event).
 */
export async function applyWideEP(
  kube: KubeWriter,
  plan: WideEPPlan,
  log: Logger,
  read?: LwsReader,
  onHandEdit?: (message: string) => void,
): Promise<ChildApplyError[]> {
  // The placement first: the group pods mount it and the engine reads it at start.
  const cm = plan.placementConfigMap;
  if (cm) {
    try {
      await kube.apply(cm);
    } catch (err) {
      return [new ChildApplyError("apply", { kind: "ConfigMap", name: cm.metadata!.name! }, err)];
    }
  }
  // A drain mark that failed holds the LeaderWorkerSet back: a scale-down must not remove a group
  // that was not told to drain. A failed move target does not (it is retried at the next reconcile).
  const marks = await writeDrainMarks(kube, plan);
  if (marks.length > 0) return marks;
  const targets = await writeGroupTargets(kube, plan);
  if (!plan.lws) return targets;
  const live = await read?.(plan.lws.metadata!.namespace!, plan.lws.metadata!.name!).catch((err: unknown) => {
    log.debug({ err: (err as Error).message }, "could not read the LeaderWorkerSet; applying it");
    return undefined;
  });
  const lws = read ? lwsToApply(plan.lws, live) : plan.lws;
  if (!lws) return targets;
  const edit = lwsHandEdit(plan.lws, live);
  try {
    await kube.apply(lws);
    log.debug({ lws: lws.metadata?.name, replicas: lws.spec.replicas }, "applied LeaderWorkerSet");
    if (edit) onHandEdit?.(`LeaderWorkerSet ${lws.metadata!.name!} was changed by hand (${edit}); restored`);
    return targets;
  } catch (err) {
    return [...targets, new ChildApplyError("apply", { kind: lws.kind!, name: lws.metadata!.name! }, err)];
  }
}
