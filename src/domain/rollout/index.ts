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
}

export interface RolloutPlan {
  readonly create: readonly DesiredShard[];
  readonly startDrain: readonly string[];
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

export function planRollout(input: RolloutInput): RolloutPlan {
  const { pods, desired, layerCount, expertCount } = input;
  const live = pods.filter((p) => !p.terminating);
  const desiredKeys = new Set(desired.map((d) => key(d.shardIndex, d.setHash)));
  const liveByKey = new Map<string, ShardPodView>();
  for (const p of live)
    if (!p.drainStartedMs && !liveByKey.has(key(p.shardIndex, p.setHash)))
      liveByKey.set(key(p.shardIndex, p.setHash), p);

  const { create, pendingDesired } = planCreates(input, live, liveByKey);
  const obsolete = live.filter((p) => !desiredKeys.has(key(p.shardIndex, p.setHash)) || p.drainStartedMs !== undefined);
  const drains = planDrains(input, live, liveByKey, obsolete);
  const { del, requeueAfterMs } = planDeletes(input, live, drains.startDrain.length, drains.del);

  const uncoveredNow = countUncovered(
    live.filter((p) => p.ready),
    layerCount,
    expertCount,
  );
  const complete =
    create.length === 0 &&
    pendingDesired === 0 &&
    obsolete.length === 0 &&
    del.length === 0 &&
    live.length === desired.length;
  return {
    create,
    startDrain: drains.startDrain,
    delete: del,
    blocked: drains.blocked,
    requeueAfterMs,
    uncoveredNow,
    complete,
    pendingDesired,
  };
}

/** Step 1: create missing desired pods (replacements limited by maxSurge). */
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
  const create: DesiredShard[] = [];
  let pendingDesired = 0;
  for (const d of [...desired].sort((a, b) => a.shardIndex - b.shardIndex)) {
    const existing = liveByKey.get(key(d.shardIndex, d.setHash));
    if (existing) {
      if (!existing.ready) pendingDesired++;
      continue;
    }
    pendingDesired++;
    const isReplacement = indicesWithPods.has(d.shardIndex);
    if (isReplacement) {
      if (inFlight >= Math.max(1, input.maxSurge)) continue;
      inFlight++;
    }
    create.push(d);
  }
  return { create, pendingDesired };
}

interface DrainPlan {
  readonly startDrain: string[];
  readonly blocked: { pod: string; reason: string }[];
  /** Obsolete pods that are not Ready: deleted at once. */
  readonly del: string[];
}

/** Step 2: drain obsolete pods whose replicas are all held by other Ready pods that stay. */
function planDrains(
  input: RolloutInput,
  live: readonly ShardPodView[],
  liveByKey: ReadonlyMap<string, ShardPodView>,
  obsolete: readonly ShardPodView[],
): DrainPlan {
  const { desired, layerCount, expertCount } = input;
  const desiredIndices = new Set(desired.map((d) => d.shardIndex));
  // Holder counts per (layer, expert) over pods that stay.
  const holders = new Uint16Array(layerCount * expertCount);
  for (const p of live) {
    if (p.ready && p.drainStartedMs === undefined)
      forEachReplica(p, layerCount, expertCount, (i) => addAt(holders, i, 1));
  }
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
  // Old pods already draining to make room for an unschedulable replacement.
  let capacityDrains = live.filter((p) => {
    if (p.drainStartedMs === undefined) return false;
    const d = desired.find((x) => x.shardIndex === p.shardIndex);
    if (d === undefined || d.setHash === p.setHash) return false;
    const r = liveByKey.get(key(d.shardIndex, d.setHash));
    return !r || !r.ready;
  }).length;
  for (const p of candidates) {
    if (!p.ready) {
      // Not serving: nothing to drain, nothing to cover. Free its GPU now.
      plan.del.push(p.name);
      continue;
    }
    const kept = replacementOf(p);
    if (kept !== undefined && !kept.replacement?.ready) {
      // No spare GPU for the replacement: the old pod may make room (break before make)
      // if every replica it holds stays covered, a few at a time.
      const r = kept.replacement;
      if (!(r?.unschedulable && capacityDrains < Math.max(1, input.maxSurge))) {
        plan.blocked.push({
          pod: p.name,
          reason: r?.unschedulable
            ? `replacement for shard ${p.shardIndex} waits for a free GPU`
            : `replacement for shard ${p.shardIndex} is not Ready yet`,
        });
        continue;
      }
      capacityDrains++;
    }
    // Would removing p leave some replica without a holder?
    let soleHeld = 0;
    forEachReplica(p, layerCount, expertCount, (i) => {
      if ((holders[i] ?? 0) <= 1) soleHeld++;
    });
    if (soleHeld > 0) {
      plan.blocked.push({
        pod: p.name,
        reason: `holds the only Ready replica of ${soleHeld} expert(s); waiting for new shards`,
      });
      continue;
    }
    forEachReplica(p, layerCount, expertCount, (i) => addAt(holders, i, -1));
    plan.startDrain.push(p.name);
  }
  return plan;
}

/** Step 3: delete pods whose drain period is over; when to be called again. */
function planDeletes(
  input: RolloutInput,
  live: readonly ShardPodView[],
  drainsStarted: number,
  notReady: readonly string[],
): { del: string[]; requeueAfterMs: number | undefined } {
  const drainMs = Math.max(0, input.drainSeconds) * 1000;
  const del = [...notReady];
  let requeueAfterMs: number | undefined;
  for (const p of live) {
    if (p.drainStartedMs === undefined) continue;
    const left = p.drainStartedMs + drainMs - input.nowMs;
    if (left <= 0) del.push(p.name);
    else requeueAfterMs = Math.min(requeueAfterMs ?? Infinity, left);
  }
  if (drainsStarted > 0 && drainMs > 0) requeueAfterMs = Math.min(requeueAfterMs ?? Infinity, drainMs);
  if (drainsStarted > 0 && drainMs === 0) requeueAfterMs = 0;
  return { del, requeueAfterMs };
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
