// WideEP groups (docs/adr/0021-wide-ep-groups.md): an EP group is nodesPerGroup pods of
// gpusPerNode GPUs each, one LeaderWorkerSet replica. Capacity is decided in GPUs by the same
// count path as expert shards (decideShardCount) and quantised to whole groups; a group counts
// as capacity only when every one of its pods is Ready. Pure: no I/O, no clock.

import type { NodeView, ShardView } from "../decide.ts";
import type { CapacityPolicy, StepPolicy } from "../scaling/policy.ts";
import { decideShardCount, type ShardCount, type ShardCountInput } from "../scaling/shard-count.ts";

export interface GroupShape {
  readonly nodesPerGroup: number;
  readonly gpusPerNode: number;
}

export const gpusPerGroup = (s: GroupShape): number => s.nodesPerGroup * s.gpusPerNode;

export interface GroupBounds {
  readonly minGroups: number;
  readonly maxGroups: number;
}

/**
 * spec.scaling.minShards/maxShards are GPUs under WideEP (one shard = one GPU, as for expert
 * shards): at least ceil(minShards / G) groups (and at least one), at most floor(maxShards / G).
 * The schema requires maxShards >= G; should it not hold, maxGroups is still at least minGroups.
 */
export function groupBounds(minGpus: number, maxGpus: number, shape: GroupShape): GroupBounds {
  const g = gpusPerGroup(shape);
  const minGroups = Math.max(1, Math.ceil(minGpus / g));
  return { minGroups, maxGroups: Math.max(minGroups, Math.floor(maxGpus / g)) };
}

/**
 * A GPU count as whole groups: rounded up, within the bounds. The one rounding of WideEP: the
 * operator's count and the simulator's group mode both use it.
 */
export function groupsFor(gpus: number, bounds: GroupBounds, shape: GroupShape): number {
  return Math.max(bounds.minGroups, Math.min(bounds.maxGroups, Math.ceil(gpus / gpusPerGroup(shape))));
}

const stepOfGroups = (s: StepPolicy, g: number): StepPolicy => ({ ...s, maxStepGpus: Math.max(s.maxStepGpus, g) });

/**
 * The capacity policy in group units: bounds at whole groups, and each step at least one group
 * (a step smaller than a group would round back to the current count and never move).
 */
export function groupCapacityPolicy(policy: CapacityPolicy, shape: GroupShape): CapacityPolicy {
  const g = gpusPerGroup(shape);
  const b = groupBounds(policy.minGpus, policy.maxGpus, shape);
  return {
    ...policy,
    minGpus: b.minGroups * g,
    maxGpus: b.maxGroups * g,
    scaleUp: stepOfGroups(policy.scaleUp, g),
    scaleDown: stepOfGroups(policy.scaleDown, g),
  };
}

export interface GroupCount {
  readonly groups: number;
  /** The count in GPUs before quantising (reason, message, the capacity decision and its next state). */
  readonly count: ShardCount;
}

/** The capacity policy's GPU count, rounded up to whole groups within the group bounds. */
export function decideGroupCount(
  input: ShardCountInput,
  policy: { capacity: CapacityPolicy; manualGpus?: number },
  shape: GroupShape,
  nowMs: number,
): GroupCount {
  const capacity = groupCapacityPolicy(policy.capacity, shape);
  const count = decideShardCount(
    input,
    {
      capacity,
      minCount: capacity.minGpus,
      maxCount: capacity.maxGpus,
      manualCount: policy.manualGpus,
      unit: { one: "GPU", many: "GPUs" },
    },
    nowMs,
  );
  const groups = groupsFor(count.desired, groupBounds(policy.capacity.minGpus, policy.capacity.maxGpus, shape), shape);
  return { groups, count };
}

/** One pod of a group as GPU accounting needs it. */
export interface GroupPod {
  readonly name: string;
  readonly group: number;
  readonly ready: boolean;
  /** Bound to a node (spec.nodeName set). */
  readonly scheduled: boolean;
  /** The node it is bound to (prices its GPUs). */
  readonly nodeName?: string;
  readonly terminating: boolean;
  /** Creation time (ms since the epoch); NaN when unknown. */
  readonly createdMs: number;
  /** When it turned Ready (ms since the epoch), if it is Ready and that is known. */
  readonly readyAtMs?: number;
  /** The scheduler's PodScheduled=False message, if any. */
  readonly unschedulableMessage?: string;
}

export interface GroupState {
  readonly index: number;
  readonly pods: number;
  readonly readyPods: number;
  /** Every one of nodesPerGroup pods exists, is not terminating and is Ready: the group serves. */
  readonly ready: boolean;
  /** GPUs of the group's pods not bound to a node (missing pods included). */
  readonly missingGpus: number;
  /** How long the oldest unscheduled pod has waited; undefined when every pod is bound. */
  readonly pendingMs?: number;
  readonly pendingMessage?: string;
}

/** The state of groups 0..replicas-1 from their pods (pods of higher indices are going away and ignored). */
export function groupStates(
  pods: readonly GroupPod[],
  replicas: number,
  shape: GroupShape,
  nowMs: number,
): GroupState[] {
  return Array.from({ length: replicas }, (_, index) => {
    const mine = pods.filter((p) => p.group === index && !p.terminating);
    const readyPods = mine.filter((p) => p.ready).length;
    const unscheduled = mine.filter((p) => !p.scheduled);
    const bound = mine.length - unscheduled.length;
    const waits = unscheduled.map((p) => nowMs - p.createdMs).filter((ms) => Number.isFinite(ms));
    const pendingMs = waits.length > 0 ? Math.max(...waits) : undefined;
    return {
      index,
      pods: mine.length,
      readyPods,
      ready: mine.length >= shape.nodesPerGroup && readyPods >= shape.nodesPerGroup,
      missingGpus: Math.max(0, shape.nodesPerGroup - bound) * shape.gpusPerNode,
      pendingMs,
      pendingMessage: unscheduled.find((p) => p.unschedulableMessage)?.unschedulableMessage,
    };
  });
}

/** Groups with a pod unscheduled for at least timeoutMs: reported, never counted. */
export function pendingGroups(states: readonly GroupState[], timeoutMs: number): GroupState[] {
  return states.filter((s) => !s.ready && s.pendingMs !== undefined && s.pendingMs >= timeoutMs);
}

/** GPUs that serve: whole Ready groups only. */
export function readyGpus(states: readonly GroupState[], shape: GroupShape): number {
  return states.filter((s) => s.ready).length * gpusPerGroup(shape);
}

/**
 * The provisioned groups' GPUs as the cost functions read running shards (decide.ts costOf):
 * group k holds slots k x G .. (k+1) x G - 1; each bound pod's gpusPerNode GPUs are on its node,
 * at that node's price; the GPUs of pods not bound (or not created yet) have no node.
 */
export function groupGpuViews(
  pods: readonly GroupPod[],
  provisionedGroups: number,
  shape: GroupShape,
  nodes: readonly NodeView[],
): ShardView[] {
  const g = gpusPerGroup(shape);
  const out: ShardView[] = [];
  for (let group = 0; group < provisionedGroups; group++) {
    const bound = pods
      .filter((p) => p.group === group && !p.terminating && p.nodeName !== undefined)
      .sort((a, b) => a.name.localeCompare(b.name))
      .slice(0, shape.nodesPerGroup);
    const onNodes = bound.flatMap((p) => Array.from({ length: shape.gpusPerNode }, () => p));
    for (let i = 0; i < g; i++) {
      const pod = onNodes[i];
      const node = pod ? nodes.find((n) => n.name === pod.nodeName) : undefined;
      out.push({
        shardIndex: group * g + i,
        ...(pod ? { nodeName: pod.nodeName, ready: pod.ready } : { ready: false }),
        ...(node ? { domain: node.domain, usdPerGpuHour: node.usdPerGpuHour } : {}),
      });
    }
  }
  return out;
}

/**
 * When the last of the serving groups became Ready: the latest Ready transition of a pod in a Ready
 * group (undefined when none is known). The SLO feedback waits until the latency window covers only
 * time when these groups served, so a group's bring-up backlog does not count as too few groups.
 */
export function groupsReadySince(pods: readonly GroupPod[], states: readonly GroupState[]): number | undefined {
  const ready = new Set(states.filter((s) => s.ready).map((s) => s.index));
  let latest: number | undefined;
  for (const p of pods)
    if (ready.has(p.group) && !p.terminating && p.readyAtMs !== undefined && Number.isFinite(p.readyAtMs))
      latest = Math.max(latest ?? p.readyAtMs, p.readyAtMs);
  return latest;
}
