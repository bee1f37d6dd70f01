// Churn-aware local search: repeatedly unload the hottest GPU of a layer with the single replica
// change that lowers it most per replica loaded. See docs/adr/0002-placement-algorithm.md.

import { EMPTY_SLOT } from "./types.ts";
import type { LayerState } from "./state.ts";

export const MOVE_RELOCATE = 0; // x: h -> d (free slot on d)
export const MOVE_SWAP = 1; // x on h <-> y on d
export const MOVE_REPLICATE = 2; // new replica of x (from h) in a free slot of d
export const MOVE_REPLACE = 3; // y on d replaced by a new replica of x (from h)
export const MOVE_EVICT = 4; // redundant replica x on h dropped (y >= 0: slot refilled with y)

export interface Move {
  kind: number;
  /** Hottest GPU and the slot of x on it. */
  h: number;
  hSlot: number;
  x: number;
  /** Other GPU and slot (of y for swap/replace), -1 if unused. */
  d: number;
  dSlot: number;
  y: number;
  /** Reduction of the hottest GPU's load relative to the layer mean, per replica loaded. */
  score: number;
  /** Replica loads this move costs (may be <= 0 when it undoes an earlier change of this plan). */
  cost: number;
}

/** How many of the coolest GPUs swap/replace partners are drawn from. */
const PARTNER_GPUS = 8;
/** How many redundant replicas (the least useful ones) replace moves consider. */
const REPLACE_CANDIDATES = 12;

export interface SearchScratch {
  /** Holder lists per expert: GPUs holding e are list[start[e] .. start[e+1]). */
  start: Int32Array;
  fill: Int32Array;
  list: Int32Array;
  partners: Int32Array;
  /** Load per replica of each expert. */
  perReplica: Float64Array;
  /** h's slots ordered by replica load, descending. */
  hOrder: Int32Array;
  candD: Int32Array;
  candS: Int32Array;
  candKey: Float64Array;
}

export function createScratch(): SearchScratch {
  return { start: new Int32Array(0), fill: new Int32Array(0), list: new Int32Array(0), partners: new Int32Array(PARTNER_GPUS), perReplica: new Float64Array(0), hOrder: new Int32Array(0),
    candD: new Int32Array(REPLACE_CANDIDATES), candS: new Int32Array(REPLACE_CANDIDATES), candKey: new Float64Array(REPLACE_CANDIDATES),
  };
}

function buildHolders(st: LayerState, scratch: SearchScratch): void {
  const E = st.expertCount;
  const { gpuCount, maxSlots } = st.topo;
  if (scratch.start.length !== E + 1) {
    scratch.start = new Int32Array(E + 1);
    scratch.fill = new Int32Array(E);
  }
  if (scratch.list.length < st.replicas) scratch.list = new Int32Array(Math.max(st.replicas, 16));
  const { start, fill, list } = scratch;
  const r = st.r;
  start[0] = 0;
  for (let e = 0; e < E; e++) {
    start[e + 1] = start[e]! + r[e]!;
    fill[e] = start[e]!;
  }
  const grid = st.grid;
  for (let g = 0; g < gpuCount; g++) {
    const base = g * maxSlots;
    for (let s = 0; s < maxSlots; s++) {
      const e = grid[base + s]!;
      if (e !== EMPTY_SLOT) list[fill[e]!++] = g;
    }
  }
}

/**
 * Best single move for the layer's hottest GPU, or null when none lowers it by at least
 * `minScore` (share of mean GPU load per replica loaded) within `budget` replica loads.
 * A move is valid only if every GPU it touches ends below the hottest GPU's current load.
 */
export function findBestMove(st: LayerState, budget: number, minScore: number, scratch: SearchScratch): Move | null {
  const { gpuCount: G, maxSlots: S, slotCount, activeGpuCount } = st.topo;
  const E = st.expertCount;
  const { load, grid, has, r, w, used } = st;
  const orig = st.orig;
  const mean = st.meanLoad;
  if (!(mean > 0)) return null;

  let h = -1;
  let Lh = -Infinity;
  for (let g = 0; g < G; g++) {
    if (slotCount[g]! > 0 && load[g]! > Lh) {
      Lh = load[g]!;
      h = g;
    }
  }
  if (h < 0 || Lh <= 0) return null;
  const eps = mean * 1e-9;
  const invMean = 1 / mean;

  buildHolders(st, scratch);
  if (scratch.perReplica.length !== E) scratch.perReplica = new Float64Array(E);
  const lr = scratch.perReplica;
  for (let e = 0; e < E; e++) lr[e] = r[e]! > 0 ? w[e]! / r[e]! : 0;
  const hStart = scratch.start;
  const hList = scratch.list;

  // The coolest GPUs (excluding h), ascending by (load, index): swap / replace partners.
  const partners = scratch.partners;
  let pc = 0;
  for (let g = 0; g < G; g++) {
    if (g === h || slotCount[g]! <= 0) continue;
    const lg = load[g]!;
    if (pc === PARTNER_GPUS && lg >= load[partners[pc - 1]!]!) continue;
    let pos = pc < PARTNER_GPUS ? pc++ : PARTNER_GPUS - 1;
    while (pos > 0 && load[partners[pos - 1]!]! > lg) {
      partners[pos] = partners[pos - 1]!;
      pos -= 1;
    }
    partners[pos] = g;
  }

  let bestScore = minScore;
  let bKind = -1;
  let bHs = -1;
  let bX = -1;
  let bD = -1;
  let bDs = -1;
  let bY = -1;
  let bCost = 0;

  // Replace candidates: redundant replicas (r >= 2) off h whose removal hurts least, ranked by the
  // highest load it leaves on any GPU involved (other holders of y, and d without y).
  const candD = scratch.candD;
  const candS = scratch.candS;
  const candKey = scratch.candKey;
  let rc = 0;
  for (let d = 0; d < G; d++) {
    if (d === h) continue;
    const dBase = d * S;
    for (let ds = 0; ds < slotCount[d]!; ds++) {
      const y = grid[dBase + ds]!;
      if (y === EMPTY_SLOT || r[y]! < 2) continue;
      const ly = lr[y]!;
      const dy = w[y]! / (r[y]! - 1) - ly;
      let key = load[d]! - ly;
      for (let k = hStart[y]!; k < hStart[y + 1]!; k++) {
        const g2 = hList[k]!;
        if (g2 !== d && load[g2]! + dy > key) key = load[g2]! + dy;
      }
      if (key >= Lh) continue;
      if (rc === REPLACE_CANDIDATES && key >= candKey[rc - 1]!) continue;
      let pos = rc < REPLACE_CANDIDATES ? rc++ : REPLACE_CANDIDATES - 1;
      while (pos > 0 && candKey[pos - 1]! > key) {
        candKey[pos] = candKey[pos - 1]!;
        candD[pos] = candD[pos - 1]!;
        candS[pos] = candS[pos - 1]!;
        pos -= 1;
      }
      candKey[pos] = key;
      candD[pos] = d;
      candS[pos] = ds;
    }
  }

  const canGrow = st.replicas < st.cap;
  const hasFreeSlot = st.replicas < st.topo.totalSlots;
  let filler = -2; // -2: not computed yet; -1: none
  let fillerLoad = 0;
  const hBase = h * S;
  const hRow = h * E;
  if (scratch.hOrder.length < S) scratch.hOrder = new Int32Array(S);
  const hOrder = scratch.hOrder;
  let hn = 0;
  for (let hs = 0; hs < slotCount[h]!; hs++) {
    const x = grid[hBase + hs]!;
    if (x === EMPTY_SLOT) continue;
    let pos = hn++;
    while (pos > 0 && lr[grid[hBase + hOrder[pos - 1]!]!]! < lr[x]!) {
      hOrder[pos] = hOrder[pos - 1]!;
      pos -= 1;
    }
    hOrder[pos] = hs;
  }
  for (let hi = 0; hi < hn; hi++) {
    const hs = hOrder[hi]!;
    const x = grid[hBase + hs]!;
    const rx = r[x]!;
    const wx = w[x]!;
    const lx = lr[x]!;
    // No move of x lowers h by more than lx (and scores divide by max(cost, 1)); slots are in
    // descending lx, so nothing further can win.
    if (!(lx * invMean > bestScore)) break;
    const canAddX = rx < activeGpuCount;
    const lxNew = wx / (rx + 1);
    const dx = lx - lxNew;
    let xHoldMax = -Infinity;
    for (let k = hStart[x]!; k < hStart[x + 1]!; k++) {
      const v = load[hList[k]!]! - dx;
      if (v > xHoldMax) xHoldMax = v;
    }
    const removeX = orig !== null && orig[hRow + x] ? 0 : -1;

    // Relocate / replicate into a free slot (skipped when the layer has none).
    for (let d = 0; hasFreeSlot && d < G; d++) {
      if (d === h || used[d]! >= slotCount[d]! || has[d * E + x]) continue;
      const Ld = load[d]!;
      const addX = orig !== null && orig[d * E + x] ? 0 : 1;
      let cost = addX + removeX;
      if (cost <= budget) {
        const gain = Lh - Math.max(Lh - lx, Ld + lx);
        if (gain > eps) {
          const sc = (gain * invMean) / (cost > 1 ? cost : 1);
          if (sc > bestScore) {
            bestScore = sc; bKind = MOVE_RELOCATE; bHs = hs; bX = x; bD = d; bDs = -1; bY = -1; bCost = cost;
          }
        }
      }
      cost = addX;
      if (canGrow && canAddX && cost <= budget) {
        const gain = Lh - Math.max(xHoldMax, Ld + lxNew);
        if (gain > eps) {
          const sc = (gain * invMean) / (cost > 1 ? cost : 1);
          if (sc > bestScore) {
            bestScore = sc; bKind = MOVE_REPLICATE; bHs = hs; bX = x; bD = d; bDs = -1; bY = -1; bCost = cost;
          }
        }
      }
    }

    // Swap with a replica on one of the coolest GPUs; a swap with d lowers h by at most (Lh - Ld) / 2.
    for (let p = 0; p < pc; p++) {
      const d = partners[p]!;
      const Ld = load[d]!;
      if (!((Lh - Ld) * 0.5 * invMean > bestScore)) break;
      const dRow = d * E;
      if (has[dRow + x]) continue;
      const addX = orig !== null && orig[dRow + x] ? 0 : 1;
      const dBase = d * S;
      for (let ds = 0; ds < slotCount[d]!; ds++) {
        const y = grid[dBase + ds]!;
        if (y === EMPTY_SLOT) continue;
        const ly = lr[y]!;
        const removeY = orig !== null && orig[dRow + y] ? 0 : -1;
        if (ly < lx && !has[hRow + y]) {
          const cost = addX + (orig !== null && orig[hRow + y] ? 0 : 1) + removeX + removeY;
          if (cost <= budget) {
            const gain = Lh - Math.max(Lh - lx + ly, Ld - ly + lx);
            if (gain > eps) {
              const sc = (gain * invMean) / (cost > 1 ? cost : 1);
              if (sc > bestScore) {
                bestScore = sc; bKind = MOVE_SWAP; bHs = hs; bX = x; bD = d; bDs = ds; bY = y; bCost = cost;
              }
            }
          }
        }
      }
    }

    // Replace one of the least useful redundant replicas elsewhere with a new replica of x.
    if (canAddX && dx * invMean > bestScore) {
      for (let c = 0; c < rc; c++) {
        const d = candD[c]!;
        const dRow = d * E;
        if (has[dRow + x]) continue;
        const ds = candS[c]!;
        const y = grid[d * S + ds]!;
        const ry = r[y]!;
        const ly = lr[y]!;
        const cost = (orig !== null && orig[dRow + x] ? 0 : 1) + (orig !== null && orig[dRow + y] ? 0 : -1);
        if (cost > budget) continue;
        let m = Math.max(xHoldMax, load[d]! - ly + lxNew);
        if (!(Lh - m > eps)) continue;
        const dy = w[y]! / (ry - 1) - ly;
        for (let k = hStart[y]!; k < hStart[y + 1]!; k++) {
          const g2 = hList[k]!;
          if (g2 === d) continue;
          const v = load[g2]! + dy - (has[g2 * E + x] ? dx : 0);
          if (v > m) m = v;
        }
        const gain = Lh - m;
        if (gain > eps) {
          const sc = (gain * invMean) / (cost > 1 ? cost : 1);
          if (sc > bestScore) {
            bestScore = sc; bKind = MOVE_REPLACE; bHs = hs; bX = x; bD = d; bDs = ds; bY = y; bCost = cost;
          }
        }
      }
    }

    // Drop a redundant replica of x from h. When the layer must stay full (no room under the
    // replica cap), refill the slot with the expert that adds least to h (lowest load per replica
    // after the add) -- one replica load -- so plans that fill every slot stay full.
    if (rx >= 2) {
      let z = -1;
      let lzNew = 0;
      if (!canGrow) {
        if (filler === -2) {
          filler = -1;
          let best = Infinity;
          for (let e = 0; e < E; e++) {
            if (has[hRow + e] || r[e]! >= activeGpuCount) continue;
            const v = w[e]! / (r[e]! + 1);
            if (v < best) {
              best = v;
              filler = e;
            }
          }
          fillerLoad = best;
        }
        z = filler;
        lzNew = fillerLoad;
      }
      const cost = removeX + (z >= 0 ? (orig !== null && orig[hRow + z] ? 0 : 1) : 0);
      if ((canGrow || z >= 0) && cost <= budget) {
        const dxUp = wx / (rx - 1) - lx;
        let m = Lh - lx + lzNew;
        for (let k = hStart[x]!; k < hStart[x + 1]!; k++) {
          const g2 = hList[k]!;
          if (g2 === h) continue;
          const v = load[g2]! + dxUp;
          if (v > m) m = v;
        }
        const gain = Lh - m;
        if (gain > eps) {
          const sc = (gain * invMean) / (cost > 1 ? cost : 1);
          if (sc > bestScore) {
            bestScore = sc; bKind = MOVE_EVICT; bHs = hs; bX = x; bD = -1; bDs = -1; bY = z; bCost = cost;
          }
        }
      }
    }
  }
  if (bKind < 0) return null;
  return { kind: bKind, h, hSlot: bHs, x: bX, d: bD, dSlot: bDs, y: bY, score: bestScore, cost: bCost };
}

/** Apply a move found by findBestMove to the same state. */
export function applyMove(st: LayerState, mv: Move): void {
  switch (mv.kind) {
    case MOVE_RELOCATE:
      st.removeAt(mv.h, mv.hSlot);
      st.add(mv.d, mv.x);
      return;
    case MOVE_SWAP:
      st.removeAt(mv.h, mv.hSlot);
      st.removeAt(mv.d, mv.dSlot);
      st.add(mv.d, mv.x, mv.dSlot);
      st.add(mv.h, mv.y, mv.hSlot);
      return;
    case MOVE_REPLICATE:
      st.add(mv.d, mv.x);
      return;
    case MOVE_REPLACE:
      st.removeAt(mv.d, mv.dSlot);
      st.add(mv.d, mv.x, mv.dSlot);
      return;
    case MOVE_EVICT:
      st.removeAt(mv.h, mv.hSlot);
      if (mv.y >= 0) st.add(mv.h, mv.y, mv.hSlot);
      return;
    default:
      throw new Error(`unknown move kind ${mv.kind}`);
  }
}

/** Improve one layer until no move scores minScore or the iteration cap is hit. Returns loads spent. */
export function improveLayer(st: LayerState, budget: number, minScore: number, maxIterations: number, scratch: SearchScratch): number {
  let spent = 0;
  for (let i = 0; i < maxIterations; i++) {
    const mv = findBestMove(st, budget - spent, minScore, scratch);
    if (mv === null) break;
    applyMove(st, mv);
    spent += mv.cost;
  }
  return spent;
}
