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
  /**
   * Not Ready now but seen Ready before (a readiness flap or a crash), as opposed to a pod still
   * loading its weights. Only such a pod is kept while it holds the only replica of an expert.
   */
  readonly readyBefore?: boolean;
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
  /**
   * Longest drain: seconds from the drain mark to deletion while the pod stays Ready. A draining pod
   * that turns not Ready (its in-flight requests are done) is deleted at once.
   */
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
export function countUncovered(
  pods: readonly Pick<ShardPodView, "experts">[],
  layerCount: number,
  expertCount: number,
): number {
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

/** The shard would hold a (layer, expert) that none of the Ready pods holds now. */
export function restoresCoverage(
  shard: Pick<DesiredShard, "experts">,
  readyPods: readonly Pick<ShardPodView, "experts">[],
  layerCount: number,
  expertCount: number,
): boolean {
  return (
    countUncovered([...readyPods, shard], layerCount, expertCount) < countUncovered(readyPods, layerCount, expertCount)
  );
}

export function planRollout(input: RolloutInput): RolloutPlan {
  const { pods, desired, layerCount, expertCount } = input;
  const live = pods.filter((p) => !p.terminating);
  const desiredKeys = new Set(desired.map((d) => key(d.shardIndex, d.setHash)));
  const liveByKey = new Map<string, ShardPodView>();
  for (const p of live)
    if (!p.drainStartedMs && !liveByKey.has(key(p.shardIndex, p.setHash)))
      liveByKey.set(key(p.shardIndex, p.setHash), p);

  const { create, pendingDesired } = planCreates(input, live, liveByKey);
  // Holder counts per (layer, expert) over Ready pods that stay (not draining).
  const holders = new Uint16Array(layerCount * expertCount);
  for (const p of live) {
    if (p.ready && p.drainStartedMs === undefined)
      forEachReplica(p, layerCount, expertCount, (i) => addAt(holders, i, 1));
  }
  const cancelDrain = recheckDrains(input, live, holders);
  const cancelled = new Set(cancelDrain);
  const obsolete = live.filter(
    (p) => !cancelled.has(p.name) && (!desiredKeys.has(key(p.shardIndex, p.setHash)) || p.drainStartedMs !== undefined),
  );
  const drains = planDrains(input, live, liveByKey, obsolete, holders);
  const { del, requeueAfterMs } = planDeletes(input, live, cancelled, drains.startDrain.length, drains.del);

  const uncoveredNow = countUncovered(
    live.filter((p) => p.ready),
    layerCount,
    expertCount,
  );
  const complete =
    create.length === 0 &&
    pendingDesired === 0 &&
    obsolete.length === 0 &&
    cancelDrain.length === 0 &&
    del.length === 0 &&
    live.length === desired.length;
  return {
    create,
    startDrain: drains.startDrain,
    cancelDrain,
    delete: del,
    blocked: drains.blocked,
    requeueAfterMs: cancelDrain.length > 0 ? 0 : requeueAfterMs,
    uncoveredNow,
    complete,
    pendingDesired,
  };
}

/** Step 1: create missing desired pods (replacements limited by maxSurge, all creates by maxCreates). */
function planCreates(
  input: RolloutInput,
  live: readonly ShardPodView[],
  liveByKey: ReadonlyMap<string, ShardPodView>,
): { create: DesiredShard[]; pendingDesired: number } {
  const { desired } = input;
  const indicesWithPods = new Set(live.map((p) => p.shardIndex));
  let inFlight = desired.filter((d) => {
    const p = liveByKey.get(key(d.shardIndex, d.setHash));
    return (
      p !== undefined &&
      !p.ready &&
      indicesWithPods.has(d.shardIndex) &&
      live.some((o) => o.shardIndex === d.shardIndex && o.setHash !== d.setHash)
    );
  }).length;
  const maxCreates = input.maxCreates ?? Number.POSITIVE_INFINITY;
  const unschedulable = live.filter((p) => p.unschedulable).length;
  const missing = [...desired]
    .sort((a, b) => a.shardIndex - b.shardIndex)
    .filter((d) => !liveByKey.has(key(d.shardIndex, d.setHash)));
  const pendingDesired =
    missing.length + desired.filter((d) => liveByKey.get(key(d.shardIndex, d.setHash))?.ready === false).length;
  const fresh = missing.filter((d) => !indicesWithPods.has(d.shardIndex));
  const replacements = orderReplacements(
    input,
    live,
    liveByKey,
    missing.filter((d) => indicesWithPods.has(d.shardIndex)),
    Math.max(0, Math.max(1, input.maxSurge) - inFlight),
  );
  const create: DesiredShard[] = [];
  for (const d of [...replacements, ...fresh]) {
    if (create.length >= maxCreates || unschedulable >= maxCreates) break;
    if (indicesWithPods.has(d.shardIndex)) {
      if (inFlight >= Math.max(1, input.maxSurge)) continue;
      inFlight++;
    }
    create.push(d);
  }
  return { create, pendingDesired };
}

/**
 * Replacements in the order they should get the spare GPUs. At the GPU bound an old pod leaves only
 * when every replica it alone holds is held by a Ready pod again; a replacement that comes up while
 * the pods its old pod waits for cannot get a GPU holds a spare GPU for nothing, and with every
 * spare GPU held that way the rollout deadlocks. So replacements go first that let old pods go:
 * each pick is the one that completes the most old pods' missing replicas (then covers the most of
 * them, then the lowest index), counting the picks before it and the replacements already in
 * flight as coming. Only the first `picks` (what maxSurge lets start now) are ordered; the rest
 * follow by index.
 */
function orderReplacements(
  input: RolloutInput,
  live: readonly ShardPodView[],
  liveByKey: ReadonlyMap<string, ShardPodView>,
  candidates: readonly DesiredShard[],
  picks: number,
): DesiredShard[] {
  if (candidates.length <= 1 || picks === 0) return [...candidates];
  const { layerCount, expertCount, desired } = input;
  const desiredKeys = new Set(desired.map((d) => key(d.shardIndex, d.setHash)));
  const holders = new Uint16Array(layerCount * expertCount);
  const stays = live.filter((p) => p.ready && p.drainStartedMs === undefined);
  for (const p of stays) forEachReplica(p, layerCount, expertCount, (i) => addAt(holders, i, 1));
  const coming = new Uint8Array(layerCount * expertCount);
  for (const d of desired) {
    const p = liveByKey.get(key(d.shardIndex, d.setHash));
    if (p !== undefined && !p.ready) forEachReplica(d, layerCount, expertCount, (i) => (coming[i] = 1));
  }
  // Replicas only an obsolete Ready pod holds, by owner; how many each owner still waits for.
  const owner = new Int32Array(layerCount * expertCount).fill(-1);
  const waits: number[] = [];
  for (const p of stays.filter((x) => !desiredKeys.has(key(x.shardIndex, x.setHash)))) {
    const o = waits.length;
    let n = 0;
    forEachReplica(p, layerCount, expertCount, (i) => {
      if (holders[i] !== 1 || coming[i] === 1) return;
      owner[i] = o;
      n++;
    });
    waits.push(n);
  }
  const left = [...candidates];
  const out: DesiredShard[] = [];
  while (left.length > 0 && out.length < picks) {
    let best = 0;
    let bestScore: [number, number] = [-1, -1];
    left.forEach((c, k) => {
      const covered = new Map<number, number>();
      forEachReplica(c, layerCount, expertCount, (i) => {
        const o = owner[i]!;
        if (o >= 0 && coming[i] === 0) covered.set(o, (covered.get(o) ?? 0) + 1);
      });
      let completes = 0;
      let total = 0;
      for (const [o, n] of covered) {
        total += n;
        if (waits[o] === n) completes++;
      }
      if (completes > bestScore[0] || (completes === bestScore[0] && total > bestScore[1])) {
        best = k;
        bestScore = [completes, total];
      }
    });
    const pick = left.splice(best, 1)[0]!;
    forEachReplica(pick, layerCount, expertCount, (i) => {
      const o = owner[i]!;
      if (o >= 0 && coming[i] === 0) waits[o] = waits[o]! - 1;
      coming[i] = 1;
    });
    out.push(pick);
  }
  return [...out, ...left];
}

/**
 * Step 2: re-check every drain. A draining pod whose replicas lost their other Ready holder (that
 * holder crashed or was deleted) has its drain cancelled and is kept; if it is Ready it counts as a
 * holder again (holders is updated). A pod that went not Ready because it drained serves again once
 * the drain mark is gone.
 */
function recheckDrains(input: RolloutInput, live: readonly ShardPodView[], holders: Uint16Array): string[] {
  const { layerCount, expertCount } = input;
  const cancelDrain: string[] = [];
  for (const p of live) {
    if (p.drainStartedMs === undefined || soleCount(p, holders, layerCount, expertCount, 0) === 0) continue;
    cancelDrain.push(p.name);
    if (p.ready) forEachReplica(p, layerCount, expertCount, (i) => addAt(holders, i, 1));
  }
  return cancelDrain;
}

interface DrainPlan {
  readonly startDrain: string[];
  readonly blocked: { pod: string; reason: string }[];
  /** Obsolete pods that are not Ready and may go: deleted at once. */
  readonly del: string[];
}

/** Step 3: drain obsolete pods whose replicas are all held by other Ready pods that stay (holders is updated). */
function planDrains(
  input: RolloutInput,
  live: readonly ShardPodView[],
  liveByKey: ReadonlyMap<string, ShardPodView>,
  obsolete: readonly ShardPodView[],
  holders: Uint16Array,
): DrainPlan {
  const { desired, layerCount, expertCount } = input;
  const desiredIndices = new Set(desired.map((d) => d.shardIndex));
  const plan: DrainPlan = { startDrain: [], blocked: [], del: [] };
  const candidates = obsolete
    .filter((p) => p.drainStartedMs === undefined)
    // Old versions of kept indices first (their replacement carries the load), then scale-down, by index.
    .sort(
      (a, b) =>
        Number(desiredIndices.has(b.shardIndex)) - Number(desiredIndices.has(a.shardIndex)) ||
        a.shardIndex - b.shardIndex ||
        a.name.localeCompare(b.name),
    );
  const replacementOf = (p: ShardPodView): { replacement: ShardPodView | undefined } | undefined => {
    const d = desired.find((x) => x.shardIndex === p.shardIndex);
    return d === undefined ? undefined : { replacement: liveByKey.get(key(d.shardIndex, d.setHash)) };
  };
  // New pods waiting for a GPU, and old pods already draining to make room for them.
  const waitingForGpu = live.filter(
    (p) => p.unschedulable && !p.ready && p.drainStartedMs === undefined && desiredIndices.has(p.shardIndex),
  ).length;
  let capacityDrains = live.filter((p) => {
    if (p.drainStartedMs === undefined) return false;
    const d = desired.find((x) => x.shardIndex === p.shardIndex);
    if (d === undefined || d.setHash === p.setHash) return false;
    const r = liveByKey.get(key(d.shardIndex, d.setHash));
    return !r || !r.ready;
  }).length;
  for (const p of candidates) {
    const kept = replacementOf(p);
    if (!p.ready) {
      // Not serving now, nothing to drain. Its GPU is freed at once if it never served (still
      // loading: a pod of the current plan serves as soon), if it has no GPU, if every replica it
      // holds has another Ready holder, or if its replacement waits for that GPU; otherwise it was
      // Ready before and may be again soon (a readiness flap), so it is kept.
      const sole = soleCount(p, holders, layerCount, expertCount, 0);
      if (!p.readyBefore || p.unschedulable || kept?.replacement?.unschedulable || sole === 0) plan.del.push(p.name);
      else
        plan.blocked.push({
          pod: p.name,
          reason: `not Ready and holds the only replica of ${sole} expert(s); kept until it is Ready again or they are covered`,
        });
      continue;
    }
    // No spare GPU for new pods: an old pod whose replacement is not Ready may make room (break
    // before make) if every replica it holds stays covered, one per new pod waiting for a GPU and
    // at most maxSurge at a time. Any waiting new pod counts, not only its own replacement: its
    // replacement may wait behind maxSurge for pods that wait for this very GPU.
    const makesRoom = kept !== undefined && !kept.replacement?.ready;
    if (makesRoom && capacityDrains >= Math.min(waitingForGpu, Math.max(1, input.maxSurge))) {
      plan.blocked.push({
        pod: p.name,
        reason: kept.replacement?.unschedulable
          ? `replacement for shard ${p.shardIndex} waits for a free GPU`
          : `replacement for shard ${p.shardIndex} is not Ready yet`,
      });
      continue;
    }
    // Would removing p leave some replica without a holder?
    const soleHeld = soleCount(p, holders, layerCount, expertCount, 1);
    if (soleHeld > 0) {
      plan.blocked.push({
        pod: p.name,
        reason: `holds the only Ready replica of ${soleHeld} expert(s); waiting for new shards`,
      });
      continue;
    }
    if (makesRoom) capacityDrains++;
    forEachReplica(p, layerCount, expertCount, (i) => addAt(holders, i, -1));
    plan.startDrain.push(p.name);
  }
  return plan;
}

/**
 * Step 4: delete draining pods that are no longer Ready (the pod reports its in-flight requests done
 * by turning not Ready, or it crashed: either way it serves nothing) and those whose drain deadline
 * passed; their replicas are held elsewhere (re-checked in step 2). When to be called again.
 */
function planDeletes(
  input: RolloutInput,
  live: readonly ShardPodView[],
  cancelled: ReadonlySet<string>,
  drainsStarted: number,
  notReady: readonly string[],
): { del: string[]; requeueAfterMs: number | undefined } {
  const drainMs = Math.max(0, input.drainSeconds) * 1000;
  const del = [...notReady];
  let requeueAfterMs: number | undefined;
  for (const p of live) {
    if (p.drainStartedMs === undefined || cancelled.has(p.name)) continue;
    const left = p.drainStartedMs + drainMs - input.nowMs;
    if (left <= 0 || !p.ready) del.push(p.name);
    else requeueAfterMs = Math.min(requeueAfterMs ?? Infinity, left);
  }
  if (drainsStarted > 0 && drainMs > 0) requeueAfterMs = Math.min(requeueAfterMs ?? Infinity, drainMs);
  if (drainsStarted > 0 && drainMs === 0) requeueAfterMs = 0;
  return { del, requeueAfterMs };
}

/** Replicas of p with at most `own` holders (own = 1 when p itself is counted in holders). */
function soleCount(
  p: Pick<ShardPodView, "experts">,
  holders: Uint16Array,
  layerCount: number,
  expertCount: number,
  own: number,
): number {
  let n = 0;
  forEachReplica(p, layerCount, expertCount, (i) => {
    if ((holders[i] ?? 0) <= own) n++;
  });
  return n;
}

function addAt(counts: Uint16Array, index: number, delta: number): void {
  counts[index] = (counts[index] ?? 0) + delta;
}

function forEachReplica(
  p: Pick<ShardPodView, "experts">,
  layerCount: number,
  expertCount: number,
  fn: (index: number) => void,
): void {
  for (let l = 0; l < Math.min(layerCount, p.experts.length); l++) {
    for (const e of p.experts[l]!) if (e >= 0 && e < expertCount) fn(l * expertCount + e);
  }
}
