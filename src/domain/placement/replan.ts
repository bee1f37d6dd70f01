// Layer re-plans: the escape from a plateau of the single-move search. With few slots per GPU
// (2-5, e.g. DeepSeek-V3 decode's 2 routed experts per GPU), no single relocate / swap / replace /
// evict lowers a layer's hottest GPU once replica counts must change (taking a redundant replica
// from an expert doubles the load on its other holder), although a fresh plan is far better
// balanced. A re-plan offers the fresh plan of that layer, its GPUs matched to the current ones for
// the most replicas already loaded, as one move whose cost is the replicas it loads.
// See docs/adr/0002-placement-algorithm.md.

import { fillFreeSlots, planLayerFresh } from "./fresh.ts";
import type { FreshScratch } from "./fresh.ts";
import { improveLayer, LayerSearch } from "./improve.ts";
import { bitAt, LayerState } from "./state.ts";
import { EMPTY_SLOT } from "./types.ts";

/** Local-search threshold after a from-scratch pack (moves are free there). */
export const FRESH_MIN_SCORE = 1e-4;

/**
 * A layer is worth a re-plan only when its hottest GPU is at least this share of the mean load above
 * the mean: a re-plan loads many replicas, so small imbalances never pay for it (and skipping the
 * fresh pack there keeps converged plans as fast as before).
 */
export const REPLAN_MIN_IMBALANCE = 0.01;

/** Fresh pack, then the local search with free moves, fill the free slots, search again. */
export function planLayerFromScratch(st: LayerState, scratch: FreshScratch, search: LayerSearch | null): LayerSearch {
  planLayerFresh(st, scratch);
  const s = search ?? new LayerSearch(st);
  if (search !== null) s.attach(st);
  improveLayer(s, st, Infinity, FRESH_MIN_SCORE, 2 * st.cap);
  s.detach();
  if (fillFreeSlots(st) > 0) {
    // The added replicas open moves; search again so that the plan is a fixpoint of the
    // incremental search (same stop), and replanning the same heat from it changes nothing.
    s.attach(st);
    improveLayer(s, st, Infinity, FRESH_MIN_SCORE, 2 * st.cap);
    s.detach();
  }
  return s;
}

/** A re-plan of one layer: the new grid (g * maxSlots + slot), the replicas it loads and its score. */
export interface LayerReplan {
  readonly grid: Int32Array;
  readonly cost: number;
  readonly score: number;
}

function maxActiveLoad(st: LayerState): number {
  let max = 0;
  for (let g = 0; g < st.topo.gpuCount; g++) if (st.topo.slotCount[g]! > 0 && st.load[g]! > max) max = st.load[g]!;
  return max;
}

/**
 * Match the fresh plan's GPUs to the current GPUs (same slot count) for the most replicas already
 * loaded (`orig`): greedy by overlap (ties: lower fresh GPU, then lower current GPU), the rest in
 * index order. Returns match[current GPU] = fresh GPU, or null when slot counts cannot be matched.
 */
function matchGpus(st: LayerState, fresh: LayerState): Int32Array | null {
  const { gpuCount: G, maxSlots: S, slotCount } = st.topo;
  const E = st.expertCount;
  const orig = st.orig!;
  const { origStart, origList } = st;
  const count = new Int32Array(G);
  const pairs: number[][] = [];
  for (let fg = 0; fg < G; fg++) {
    const touched: number[] = [];
    for (let s = 0; s < slotCount[fg]!; s++) {
      const e = fresh.grid[fg * S + s]!;
      if (e === EMPTY_SLOT) continue;
      for (let k = origStart![e]!; k < origStart![e + 1]!; k++) {
        const cg = origList![k]!;
        if (slotCount[cg] !== slotCount[fg] || !bitAt(orig, cg * E + e)) continue;
        const seen = count[cg] ?? 0;
        count[cg] = seen + 1;
        if (seen === 0) touched.push(cg);
      }
    }
    for (const cg of touched) {
      pairs.push([count[cg]!, fg, cg]);
      count[cg] = 0;
    }
  }
  pairs.sort((a, b) => b[0]! - a[0]! || a[1]! - b[1]! || a[2]! - b[2]!);
  const match = new Int32Array(G).fill(-1);
  const taken = new Uint8Array(G);
  for (const [, fg, cg] of pairs) {
    if (match[cg!]! >= 0 || taken[fg!]) continue;
    match[cg!] = fg!;
    taken[fg!] = 1;
  }
  let next = 0;
  for (let cg = 0; cg < G; cg++) {
    if (match[cg]! >= 0) continue;
    while (next < G && (taken[next] || slotCount[next] !== slotCount[cg])) next += 1;
    if (next >= G) return null;
    match[cg] = next;
    taken[next] = 1;
    next = 0;
  }
  return match;
}

/** Replicas in `grid` that the current placement (`orig`) did not hold on that GPU. */
function loadsOf(st: LayerState, grid: Int32Array): number {
  const { gpuCount: G, maxSlots: S, slotCount } = st.topo;
  let loads = 0;
  for (let g = 0; g < G; g++) {
    for (let s = 0; s < slotCount[g]!; s++) {
      const e = grid[g * S + s]!;
      if (e !== EMPTY_SLOT && !bitAt(st.orig!, g * st.expertCount + e)) loads += 1;
    }
  }
  return loads;
}

/**
 * The fresh layer on the current GPUs: experts a GPU keeps stay in their slots. Returns the grid and
 * the replica loads it adds to the plan's (negative when it undoes loads of earlier moves).
 */
function relabelFresh(st: LayerState, fresh: LayerState, match: Int32Array): { grid: Int32Array; cost: number } {
  const { gpuCount: G, maxSlots: S, slotCount } = st.topo;
  const grid = new Int32Array(G * S).fill(EMPTY_SLOT);
  for (let cg = 0; cg < G; cg++) {
    const fg = match[cg]!;
    const wanted = new Set<number>();
    for (let s = 0; s < slotCount[fg]!; s++)
      if (fresh.grid[fg * S + s] !== EMPTY_SLOT) wanted.add(fresh.grid[fg * S + s]!);
    for (let s = 0; s < slotCount[cg]!; s++) {
      const e = st.grid[cg * S + s]!;
      if (e !== EMPTY_SLOT && wanted.delete(e)) grid[cg * S + s] = e;
    }
    let s = 0;
    for (const e of wanted) {
      while (grid[cg * S + s] !== EMPTY_SLOT) s += 1;
      grid[cg * S + s] = e;
    }
  }
  return { grid, cost: loadsOf(st, grid) - loadsOf(st, st.grid) };
}

/**
 * The re-plan of a layer whose local search is stuck, or null when it would not lower the hottest
 * GPU, scores below `minScore` (reduction of the hottest GPU's load relative to the mean, per replica
 * loaded, as for single moves), or the layer is already within REPLAN_MIN_IMBALANCE of the mean.
 */
export function planLayerReplan(st: LayerState, scratch: FreshScratch, minScore: number): LayerReplan | null {
  const mean = st.meanLoad;
  const Lh = maxActiveLoad(st);
  if (!(mean > 0) || st.orig === null || Lh <= mean * (1 + REPLAN_MIN_IMBALANCE)) return null;
  const fresh = new LayerState(st.topo, Array.from(st.w), st.cap);
  planLayerFromScratch(fresh, scratch, null);
  const gain = Lh - maxActiveLoad(fresh);
  if (!(gain > mean * 1e-9)) return null;
  const match = matchGpus(st, fresh);
  if (match === null) return null;
  const { grid, cost } = relabelFresh(st, fresh, match);
  const score = gain / mean / Math.max(1, cost);
  return score >= minScore ? { grid, cost, score } : null;
}

/** Replace the layer's placement with a re-plan (the change log marks everything for an attached search). */
export function applyReplan(st: LayerState, replan: LayerReplan): void {
  st.grid.set(replan.grid);
  st.rebuild();
}
