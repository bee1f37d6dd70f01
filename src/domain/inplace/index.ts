// In-place expert moves, acknowledged by the shard (spec.placement.moves.mode InPlace; ADR 0018), as
// a pure function.
//
// The operator writes a target expert set on a running shard pod; the shard loads what it lacks,
// releases what the target no longer has, and acknowledges the target's generation. One target is
// outstanding per pod at a time. Make-before-break at expert granularity: a shard that must change
// first loads (target = what it serves ∪ its new set), and only then releases (target = its new set),
// and a release is written only when every (layer, expert) stays held by a Ready shard's committed
// set. A pod's committed set is what it serves ∩ its target: what it keeps serving whatever it does
// with an outstanding target. Coverage counts only committed sets, so an acknowledgement never takes
// away a replica the operator counted on.
//
// A shard that refuses its target, or does not acknowledge it within the deadline, is failed: it is
// no longer patched, and the make-before-break rollout (src/domain/rollout) replaces it as in mode
// Replace (a new pod with the target set; the failed one drains once its committed set is held
// elsewhere).
import type { DesiredShard, ShardPodView } from "../rollout/index.ts";
import { containsSets, intersectSets, sameSets, unionSets, type ExpertSets } from "./sets.ts";

export { containsSets, intersectSets, sameSets, unionSets, setSize, type ExpertSets } from "./sets.ts";

/** What a pod says about its in-place moves (annotations the operator wrote, the condition the shard wrote). */
export interface InPlaceState {
  /** The target set written on the pod (moe.dev/experts). */
  readonly target: ExpertSets;
  /** Generation of the target (moe.dev/target-generation); a new pod's first set is generation 1. */
  readonly generation: number;
  /** The set the pod served when the target was written (moe.dev/served-experts; empty on a new pod). */
  readonly servedBefore: ExpertSets;
  /** The generation the shard acknowledged serving (0: none yet). */
  readonly appliedGeneration: number;
  /** A generation the shard refused, if it did. */
  readonly refusedGeneration?: number;
  /** When the target was written (ms), for the acknowledgement deadline. */
  readonly targetSinceMs?: number;
  /**
   * Expert replicas the shard said, with its last acknowledgement, it can load beyond what it serves
   * (its free expert memory). Undefined: not said, and a load is bounded only by the move budget.
   */
  readonly freeSlots?: number;
}

export interface InPlacePod extends ShardPodView {
  /** Absent: a pod the in-place protocol does not know (created in mode Replace): it serves `experts`. */
  readonly inPlace?: InPlaceState;
}

export interface InPlaceInput {
  readonly pods: readonly InPlacePod[];
  readonly desired: readonly DesiredShard[];
  readonly layerCount: number;
  readonly expertCount: number;
  readonly nowMs: number;
  /** An outstanding target (generation >= 2) older than this fails the pod. */
  readonly ackTimeoutMs: number;
  /** Content hash of an expert set (the rollout keys pods by it). */
  readonly setHash: (experts: ExpertSets) => string;
}

export interface InPlacePatch {
  readonly pod: string;
  readonly shardIndex: number;
  readonly phase: "Load" | "Release";
  readonly target: number[][];
  readonly generation: number;
  /** What the pod serves now (written beside the target). */
  readonly served: number[][];
  /** The pod's set in the placement being moved to (the target once the release is done). */
  readonly wanted: number[][];
}

export interface StalledShard {
  readonly pod: string;
  readonly shardIndex: number;
  /** NoRoom: the shard lacks free slots for its next load and holds nothing it can release yet, and no other shard can move. */
  readonly reason: "Refused" | "Timeout" | "NoRoom";
  readonly generation: number;
  readonly message: string;
}

export interface InPlacePlan {
  readonly patches: readonly InPlacePatch[];
  /** Pods that refused or missed the deadline and are not yet draining: replaced by the rollout. */
  readonly stalled: readonly StalledShard[];
  /** The pods as the make-before-break rollout sees them: committed sets, and the incumbent of each index keyed as desired. */
  readonly views: readonly ShardPodView[];
  /** Pods with an outstanding target (loading or releasing). */
  readonly moving: number;
  /** Desired indices whose incumbent serves exactly its desired set. */
  readonly applied: number;
  /** Nothing left to move: every desired index's incumbent serves its set and no target is outstanding. */
  readonly settled: boolean;
  /** When the next outstanding target's deadline passes (ms from now), if any. */
  readonly requeueAfterMs?: number;
}

/** What the pod serves now: its target once acknowledged, else what it served before. */
export function servedSet(p: InPlacePod): ExpertSets {
  const s = p.inPlace;
  if (!s) return p.experts;
  return s.appliedGeneration >= s.generation ? s.target : s.servedBefore;
}

/** A target is outstanding (written, neither acknowledged nor refused... a refusal still counts as outstanding). */
export function outstanding(p: InPlacePod): boolean {
  return p.inPlace !== undefined && p.inPlace.appliedGeneration < p.inPlace.generation;
}

/** What the pod keeps serving whatever happens to its outstanding target. */
export function committedSet(p: InPlacePod): ExpertSets {
  return p.inPlace && outstanding(p) ? intersectSets(servedSet(p), p.inPlace.target) : servedSet(p);
}

function failure(p: InPlacePod, nowMs: number, ackTimeoutMs: number): StalledShard | undefined {
  const s = p.inPlace;
  if (!s || !outstanding(p)) return undefined;
  const base = { pod: p.name, shardIndex: p.shardIndex, generation: s.generation };
  if (s.refusedGeneration === s.generation)
    return { ...base, reason: "Refused", message: `${p.name} refused target generation ${s.generation}` };
  // A new pod's first load is bounded by its cold start, not by the move deadline.
  if (s.generation >= 2 && s.targetSinceMs !== undefined && nowMs - s.targetSinceMs >= ackTimeoutMs)
    return {
      ...base,
      reason: "Timeout",
      message: `${p.name} did not acknowledge target generation ${s.generation} within ${Math.round(ackTimeoutMs / 1000)} s`,
    };
  return undefined;
}

/** Per desired index, the pod that follows it in place: Ready first, then serving the set, then the newest generation. */
function pickIncumbents(input: InPlaceInput, candidates: readonly InPlacePod[]): Map<number, InPlacePod> {
  const want = new Map(input.desired.map((d) => [d.shardIndex, d]));
  const out = new Map<number, InPlacePod>();
  const rank = (p: InPlacePod): [number, number, number] => [
    Number(p.ready),
    Number(sameSets(servedSet(p), want.get(p.shardIndex)?.experts ?? [])),
    p.inPlace?.generation ?? 0,
  ];
  for (const p of candidates) {
    if (!want.has(p.shardIndex)) continue;
    const prev = out.get(p.shardIndex);
    if (!prev) {
      out.set(p.shardIndex, p);
      continue;
    }
    const [a, b] = [rank(p), rank(prev)];
    const better = a[0] - b[0] || a[1] - b[1] || a[2] - b[2] || prev.name.localeCompare(p.name);
    if (better > 0) out.set(p.shardIndex, p);
  }
  return out;
}

/**
 * A pod without in-place state (created in mode Replace) serves its annotated set as generation 1:
 * it is moved in place like the others, and replaced if its engine does not answer in time.
 */
function withState(p: InPlacePod): InPlacePod & { inPlace: InPlaceState } {
  return p.inPlace
    ? (p as InPlacePod & { inPlace: InPlaceState })
    : { ...p, inPlace: { target: p.experts, generation: 1, servedBefore: [], appliedGeneration: 1 } };
}

export function planInPlace(input: InPlaceInput): InPlacePlan {
  const first = planPass(input, new Set());
  if (first.noRoom.length === 0 || first.patches.length > 0 || first.outstanding > 0) return first.plan;
  // Every shard that still has to move waits for room that no move can free: they are replaced
  // (make-before-break, as after a refusal), each reported once.
  return planPass(input, new Set(first.noRoom)).plan;
}

interface Pass {
  plan: InPlacePlan;
  patches: readonly InPlacePatch[];
  /** Pods waiting for free slots with nothing they can release. */
  noRoom: readonly string[];
  /** Pods with an outstanding target that are not failed. */
  outstanding: number;
}

function planPass(input: InPlaceInput, noRoom: ReadonlySet<string>): Pass {
  const { nowMs, ackTimeoutMs, layerCount, expertCount } = input;
  const all = input.pods.map(withState);
  const live = all.filter((p) => !p.terminating);
  const stalled: StalledShard[] = [];
  const failed = new Set<string>();
  let requeueAfterMs: number | undefined;
  for (const p of live) {
    const f =
      failure(p, nowMs, ackTimeoutMs) ??
      (noRoom.has(p.name)
        ? {
            pod: p.name,
            shardIndex: p.shardIndex,
            generation: p.inPlace.generation,
            reason: "NoRoom" as const,
            message: `${p.name} has no free expert slots for its next load and nothing it can release yet`,
          }
        : undefined);
    if (f) {
      failed.add(p.name);
      if (p.drainStartedMs === undefined) stalled.push(f);
    } else if (outstanding(p) && p.inPlace!.generation >= 2 && p.inPlace!.targetSinceMs !== undefined) {
      const left = p.inPlace!.targetSinceMs + ackTimeoutMs - nowMs;
      requeueAfterMs = Math.min(requeueAfterMs ?? Infinity, Math.max(0, left));
    }
  }
  const incumbents = pickIncumbents(
    input,
    live.filter((p) => p.drainStartedMs === undefined && !failed.has(p.name)),
  );
  const desiredOf = new Map(input.desired.map((d) => [d.shardIndex, d]));
  const counts = holderCounts(live, layerCount, expertCount);
  const wanted = wantedReplicas(input.desired, layerCount, expertCount);
  const patches: InPlacePatch[] = [];
  const waiting: string[] = [];
  let settled = true;
  let applied = 0;
  for (const [index, p] of [...incumbents].sort((a, b) => a[0] - b[0])) {
    const want = desiredOf.get(index)!.experts;
    const served = servedSet(p);
    if (outstanding(p)) {
      settled = false;
      continue;
    }
    if (sameSets(served, want)) {
      applied++;
      continue;
    }
    settled = false;
    if (!p.ready) continue; // crashed or restarting: moved once it is Ready again
    const patch = nextPatch(p, served, want, { counts, wanted }, layerCount, expertCount);
    if (patch) patches.push(patch);
    else if (!containsSets(served, want) && (p.inPlace?.freeSlots ?? Infinity) <= 0) waiting.push(p.name);
  }
  const views = rolloutViews(input, all, incumbents, failed, patches);
  const moving = live.filter((p) => outstanding(p) && !failed.has(p.name)).length;
  return {
    plan: {
      patches,
      stalled,
      views,
      moving: moving + patches.length,
      applied,
      settled: settled && patches.length === 0,
      requeueAfterMs,
    },
    patches,
    noRoom: waiting,
    outstanding: moving,
  };
}

/**
 * Load (target = served ∪ wanted) when the pod lacks experts; else release (target = wanted) when
 * every expert it drops keeps as many Ready committed holders as the placement gives it replicas
 * (at least one): make-before-break per replica, so a replica moved to a shard that is still
 * loading or starting keeps serving where it was, and the expert's capacity never dips during the
 * move (counts are updated on success).
 */
function nextPatch(
  p: InPlacePod,
  served: ExpertSets,
  want: ExpertSets,
  holders: { counts: Uint16Array; wanted: Uint16Array },
  layerCount: number,
  expertCount: number,
): InPlacePatch | undefined {
  const { counts, wanted } = holders;
  const base = {
    pod: p.name,
    shardIndex: p.shardIndex,
    generation: p.inPlace!.generation + 1,
    served: copy(served),
    wanted: copy(want),
  };
  const dropped: number[] = [];
  served.forEach((row, l) => {
    if (l >= layerCount) return;
    const keep = new Set(want[l] ?? []);
    for (const e of row) if (!keep.has(e) && e >= 0 && e < expertCount) dropped.push(l * expertCount + e);
  });
  const safe = (i: number) => (counts[i] ?? 0) - 1 >= Math.max(1, wanted[i] ?? 0);
  if (!containsSets(served, want)) {
    const room = p.inPlace!.freeSlots;
    const missing = missingReplicas(served, want);
    if (room === undefined || missing.length <= room)
      return { ...base, phase: "Load", target: unionSets(served, want) };
    // Within the shard's free slots: load what fits, else release what is held elsewhere to make room.
    if (room > 0) return { ...base, phase: "Load", target: withAdded(served, missing.slice(0, room)) };
    const releasable = dropped.filter(safe);
    if (releasable.length === 0) return undefined;
    for (const i of releasable) counts[i] = counts[i]! - 1;
    return { ...base, phase: "Release", target: withRemoved(served, releasable, expertCount) };
  }
  if (!dropped.every(safe)) return undefined;
  for (const i of dropped) counts[i] = counts[i]! - 1;
  return { ...base, phase: "Release", target: copy(want) };
}

/** The (layer, expert) replicas of want that served lacks, in layer then expert order. */
function missingReplicas(served: ExpertSets, want: ExpertSets): [number, number][] {
  const out: [number, number][] = [];
  want.forEach((row, l) => {
    const have = new Set(served[l] ?? []);
    for (const e of [...new Set(row)].sort((a, b) => a - b)) if (!have.has(e)) out.push([l, e]);
  });
  return out;
}

function withAdded(served: ExpertSets, add: readonly [number, number][]): number[][] {
  const out = copy(served);
  for (const [l, e] of add) {
    while (out.length <= l) out.push([]);
    out[l]!.push(e);
  }
  return out.map((row) => [...row].sort((a, b) => a - b));
}

function withRemoved(served: ExpertSets, flat: readonly number[], expertCount: number): number[][] {
  const drop = new Set(flat);
  return served.map((row, l) => row.filter((e) => !drop.has(l * expertCount + e)));
}

/** Replicas of each (layer, expert) in the placement being moved to. */
function wantedReplicas(desired: readonly DesiredShard[], layerCount: number, expertCount: number): Uint16Array {
  const out = new Uint16Array(layerCount * expertCount);
  for (const d of desired)
    d.experts.forEach((row, l) => {
      if (l >= layerCount) return;
      for (const e of new Set(row)) if (e >= 0 && e < expertCount) out[l * expertCount + e]! += 1;
    });
  return out;
}

/** Ready holders of each (layer, expert), counting committed sets of pods that are not draining. */
function holderCounts(pods: readonly InPlacePod[], layerCount: number, expertCount: number): Uint16Array {
  const counts = new Uint16Array(layerCount * expertCount);
  for (const p of pods) {
    if (!p.ready || p.drainStartedMs !== undefined || !acknowledgedOnce(p)) continue;
    committedSet(p).forEach((row, l) => {
      if (l >= layerCount) return;
      for (const e of new Set(row)) if (e >= 0 && e < expertCount) counts[l * expertCount + e]! += 1;
    });
  }
  return counts;
}

/** The pod serves something: created in mode Replace, or it acknowledged a generation. */
function acknowledgedOnce(p: InPlacePod): boolean {
  return !p.inPlace || p.inPlace.appliedGeneration >= 1;
}

/**
 * The rollout's view: experts = the committed set (after this plan's patches), Ready only once the
 * shard acknowledged a generation; the incumbent of a desired index carries the desired set's hash
 * (it follows it in place, so it is not replaced), every other pod the hash of what it holds (a
 * failed or duplicate pod is then obsolete and drained once covered).
 */
function rolloutViews(
  input: InPlaceInput,
  pods: readonly InPlacePod[],
  incumbents: ReadonlyMap<number, InPlacePod>,
  failed: ReadonlySet<string>,
  patches: readonly InPlacePatch[],
): ShardPodView[] {
  const patched = new Map(patches.map((x) => [x.pod, x]));
  const desiredOf = new Map(input.desired.map((d) => [d.shardIndex, d]));
  return pods.map((p) => {
    const x = patched.get(p.name);
    const committed = x ? intersectSets(x.served, x.target) : committedSet(p);
    const incumbent = incumbents.get(p.shardIndex) === p;
    const own = input.setHash(committed);
    const desiredHash = desiredOf.get(p.shardIndex)?.setHash;
    const setHash = incumbent ? desiredHash! : own === desiredHash || failed.has(p.name) ? `${own}~${p.name}` : own;
    const view: ShardPodView = {
      name: p.name,
      shardIndex: p.shardIndex,
      setHash,
      experts: committed,
      ready: p.ready && acknowledgedOnce(p),
      terminating: p.terminating,
      drainStartedMs: p.drainStartedMs,
      unschedulable: p.unschedulable,
      readyBefore: p.readyBefore,
    };
    return view;
  });
}

function copy(s: ExpertSets): number[][] {
  return s.map((row) => [...row]);
}
