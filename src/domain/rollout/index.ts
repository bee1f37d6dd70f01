// Make-before-break rollout of expert shards, as a pure function.
//
// A shard pod holds a fixed set of expert replicas (for every MoE layer). To
// change what a shard holds, or how many shards there are, the controller
// creates pods for the new sets first and retires old pods only when every
// (layer, expert) they hold is also held by another Ready pod that stays.
// Retiring is a drain (the pod is marked so routers stop sending it new work)
// followed, after a grace period, by deletion. So at every instant every expert
// of every layer keeps at least one Ready replica, including expert swaps
// between shards (both new pods come up before either old one goes).
// A drain is re-checked at every call: when a pod that covered a draining
// pod's replicas crashes, the drain is cancelled and the draining pod kept
// (routers send it work again) until another Ready replica stays.

export interface ShardPodView {
  readonly name: string;
  readonly shardIndex: number;
  /** Content hash of the expert set the pod holds. */
  readonly setHash: string;
  /** experts[moeLayer] = logical expert ids the pod holds in that layer. */
  readonly experts: ReadonlyArray<ReadonlyArray<number>>;
  readonly ready: boolean;
  /** deletionTimestamp set: going away, no longer counted. */
  readonly terminating: boolean;
  /** When the drain started (ms), if it did. */
  readonly drainStartedMs?: number;
  /** The scheduler found no node for it (e.g. no free GPU). */
  readonly unschedulable?: boolean;
}

export interface DesiredShard {
  readonly shardIndex: number;
  readonly setHash: string;
  readonly experts: ReadonlyArray<ReadonlyArray<number>>;
  readonly nodeName?: string;
}

export interface RolloutInput {
  readonly pods: readonly ShardPodView[];
  readonly desired: readonly DesiredShard[];
  readonly layerCount: number;
  readonly expertCount: number;
  readonly nowMs: number;
  /** Seconds between the drain mark and deletion. */
  readonly drainSeconds: number;
  /**
   * Most replacement pods (for shard indices that already have a pod) not yet Ready at once.
   * Brand-new indices (scale-up, first rollout) are not limited: the scaling policy paces those.
   */
  readonly maxSurge: number;
  /**
   * Most pods created per call, and no new pod while this many of the pods are unschedulable
   * (a GPU shortage leaves a bounded number of Pending pods). Default: unbounded.
   */
  readonly maxCreates?: number;
}

export interface RolloutPlan {
  readonly create: readonly DesiredShard[];
  readonly startDrain: readonly string[];
  /** Draining pods whose replicas lost their other Ready holder: drain cancelled, pod kept. */
  readonly cancelDrain: readonly string[];
  readonly delete: readonly string[];
  /** Obsolete pods kept for now, with why. */
  readonly blocked: ReadonlyArray<{ readonly pod: string; readonly reason: string }>;
  /** Ask to be called again after this long (drain timers), if anything waits on time. */
  readonly requeueAfterMs?: number;
  /** (layer, expert) pairs with no Ready replica right now (0 in steady state). */
  readonly uncoveredNow: number;
  /** Every desired pod exists and is Ready, and no obsolete pod is left. */
  readonly complete: boolean;
  readonly pendingDesired: number;
}

const key = (shardIndex: number, setHash: string) => `${shardIndex}/${setHash}`;

/** Number of (layer, expert) pairs without a replica among the given pods. */
export function countUncovered(pods: readonly Pick<ShardPodView, "experts">[], layerCount: number, expertCount: number): number {
  const covered = new Uint8Array(layerCount * expertCount);
  for (const p of pods) {
    for (let l = 0; l < Math.min(layerCount, p.experts.length); l++) {
      for (const e of p.experts[l]!) if (e >= 0 && e < expertCount) covered[l * expertCount + e] = 1;
    }
  }
  let missing = 0;
  for (const c of covered) if (c === 0) missing++;
  return missing;
}

export function planRollout(input: RolloutInput): RolloutPlan {
  const { pods, desired, layerCount, expertCount, nowMs } = input;
  const drainMs = Math.max(0, input.drainSeconds) * 1000;
  const live = pods.filter((p) => !p.terminating);
  const desiredKeys = new Map(desired.map((d) => [key(d.shardIndex, d.setHash), d]));
  const liveByKey = new Map<string, ShardPodView>();
  for (const p of live) if (!p.drainStartedMs && !liveByKey.has(key(p.shardIndex, p.setHash))) liveByKey.set(key(p.shardIndex, p.setHash), p);

  const { create, pendingDesired } = planCreates(input, live, liveByKey);

  // Holder counts per (layer, expert) over Ready pods that stay (not draining).
  const holders = new Uint16Array(layerCount * expertCount);
  for (const p of live) if (p.ready && p.drainStartedMs === undefined) forEachReplica(p, layerCount, expertCount, (i) => holders[i]++);
  // Re-check every drain first: a draining pod whose replicas lost their other Ready holder is kept
  // (if it went not Ready because it drained, it serves again once the drain mark is gone).
  const cancelDrain: string[] = [];
  for (const p of live) {
    if (p.drainStartedMs === undefined || heldElsewhere(p, holders, layerCount, expertCount, 0)) continue;
    cancelDrain.push(p.name);
    if (p.ready) forEachReplica(p, layerCount, expertCount, (i) => holders[i]++);
  }
  const cancelled = new Set(cancelDrain);
  const obsolete = live.filter((p) => !cancelled.has(p.name) && (!desiredKeys.has(key(p.shardIndex, p.setHash)) || p.drainStartedMs !== undefined));
  const { startDrain, del, blocked } = planDrains(input, live, liveByKey, obsolete, holders);

  // Delete draining pods that are no longer Ready (the pod reports its in-flight requests done by
  // turning not Ready, or it crashed: either way it serves nothing) and those whose drain period is
  // over (the deadline). Their replicas are held elsewhere: checked above.
  let requeueAfterMs: number | undefined;
  for (const p of live) {
    if (p.drainStartedMs === undefined || cancelled.has(p.name)) continue;
    const left = p.drainStartedMs + drainMs - nowMs;
    if (left <= 0 || !p.ready) del.push(p.name);
    else requeueAfterMs = Math.min(requeueAfterMs ?? Infinity, left);
  }
  if (startDrain.length > 0 && drainMs > 0) requeueAfterMs = Math.min(requeueAfterMs ?? Infinity, drainMs);
  if ((startDrain.length > 0 && drainMs === 0) || cancelDrain.length > 0) requeueAfterMs = 0;

  const uncoveredNow = countUncovered(live.filter((p) => p.ready), layerCount, expertCount);
  const complete = create.length === 0 && pendingDesired === 0 && obsolete.length === 0 && cancelDrain.length === 0 && del.length === 0 && live.length === desired.length;
  return { create, startDrain, cancelDrain, delete: del, blocked, requeueAfterMs, uncoveredNow, complete, pendingDesired };
}

/** Missing desired pods to create: replacements limited by maxSurge, all creates by maxCreates. */
function planCreates(input: RolloutInput, live: readonly ShardPodView[], liveByKey: ReadonlyMap<string, ShardPodView>): { create: DesiredShard[]; pendingDesired: number } {
  const { desired } = input;
  const indicesWithPods = new Set(live.map((p) => p.shardIndex));
  let inFlight = desired.filter((d) => {
    const p = liveByKey.get(key(d.shardIndex, d.setHash));
    return p !== undefined && !p.ready && indicesWithPods.has(d.shardIndex) && live.some((o) => o.shardIndex === d.shardIndex && o.setHash !== d.setHash);
  }).length;
  const maxCreates = input.maxCreates ?? Number.POSITIVE_INFINITY;
  const unschedulable = live.filter((p) => p.unschedulable).length;
  const create: DesiredShard[] = [];
  let pendingDesired = 0;
  for (const d of [...desired].sort((a, b) => a.shardIndex - b.shardIndex)) {
    const existing = liveByKey.get(key(d.shardIndex, d.setHash));
    if (existing) {
      if (!existing.ready) pendingDesired++;
      continue;
    }
    pendingDesired++;
    if (create.length >= maxCreates || unschedulable >= maxCreates) continue;
    const isReplacement = indicesWithPods.has(d.shardIndex);
    if (isReplacement) {
      if (inFlight >= Math.max(1, input.maxSurge)) continue;
      inFlight++;
    }
    create.push(d);
  }
  return { create, pendingDesired };
}

/** Drains obsolete pods whose replicas are all held by other Ready pods that stay (holders is updated). */
function planDrains(input: RolloutInput, live: readonly ShardPodView[], liveByKey: ReadonlyMap<string, ShardPodView>, obsolete: readonly ShardPodView[], holders: Uint16Array) {
  const { desired, layerCount, expertCount } = input;
  const desiredIndices = new Set(desired.map((d) => d.shardIndex));
  const startDrain: string[] = [];
  const blocked: { pod: string; reason: string }[] = [];
  const del: string[] = [];
  const candidates = obsolete
    .filter((p) => p.drainStartedMs === undefined)
    // Old versions of kept indices first (their replacement carries the load), then scale-down, by index.
    .sort((a, b) => Number(desiredIndices.has(b.shardIndex)) - Number(desiredIndices.has(a.shardIndex)) || a.shardIndex - b.shardIndex || a.name.localeCompare(b.name));
  const replacementOf = (p: ShardPodView) => {
    const d = desired.find((x) => x.shardIndex === p.shardIndex);
    return d ? { desired: d, pod: liveByKey.get(key(d.shardIndex, d.setHash)) } : undefined;
  };
  // Old pods already draining to make room for an unschedulable replacement.
  let capacityDrains = live.filter((p) => {
    const r = p.drainStartedMs !== undefined ? replacementOf(p) : undefined;
    return r !== undefined && r.desired.setHash !== p.setHash && !r.pod?.ready;
  }).length;
  for (const p of candidates) {
    const r = replacementOf(p);
    if (!p.ready) {
      // Not serving now, nothing to drain. Its GPU is freed at once if it has none, if every replica it
      // holds has another Ready holder, or if its replacement waits for that GPU; otherwise it may be
      // Ready again soon (a readiness flap) and is kept.
      if (p.unschedulable || r?.pod?.unschedulable || heldElsewhere(p, holders, layerCount, expertCount, 0)) del.push(p.name);
      else blocked.push({ pod: p.name, reason: `not Ready and holds the only replica of ${soleCount(p, holders, layerCount, expertCount, 0)} expert(s); kept until it is Ready again or they are covered` });
      continue;
    }
    if (r && !r.pod?.ready) {
      // No spare GPU for the replacement: the old pod may make room (break before make)
      // if every replica it holds stays covered, a few at a time.
      if (!(r.pod?.unschedulable && capacityDrains < Math.max(1, input.maxSurge))) {
        blocked.push({ pod: p.name, reason: r.pod?.unschedulable ? `replacement for shard ${p.shardIndex} waits for a free GPU` : `replacement for shard ${p.shardIndex} is not Ready yet` });
        continue;
      }
      capacityDrains++;
    }
    // Would removing p leave some replica without a holder?
    const soleHeld = soleCount(p, holders, layerCount, expertCount, 1);
    if (soleHeld > 0) {
      blocked.push({ pod: p.name, reason: `holds the only Ready replica of ${soleHeld} expert(s); waiting for new shards` });
      continue;
    }
    forEachReplica(p, layerCount, expertCount, (i) => holders[i]--);
    startDrain.push(p.name);
  }
  return { startDrain, del, blocked };
}

/** Replicas of p with at most `own` holders (own = 1 when p itself is counted in holders). */
function soleCount(p: Pick<ShardPodView, "experts">, holders: Uint16Array, layerCount: number, expertCount: number, own: number): number {
  let n = 0;
  forEachReplica(p, layerCount, expertCount, (i) => {
    if (holders[i]! <= own) n++;
  });
  return n;
}

function heldElsewhere(p: Pick<ShardPodView, "experts">, holders: Uint16Array, layerCount: number, expertCount: number, own: number): boolean {
  return soleCount(p, holders, layerCount, expertCount, own) === 0;
}

function forEachReplica(p: Pick<ShardPodView, "experts">, layerCount: number, expertCount: number, fn: (index: number) => void): void {
  for (let l = 0; l < Math.min(layerCount, p.experts.length); l++) {
    for (const e of p.experts[l]!) if (e >= 0 && e < expertCount) fn(l * expertCount + e);
  }
}
