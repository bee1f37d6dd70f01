// LayerSearch (incrementally maintained candidates) against a naive full scan: the search as it
// was before the candidate index, rescanning every replica of the layer each step. On random
// layers, moves and external changes both must return exactly the same move.
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import {
  applyMove,
  LayerSearch,
  MOVE_EVICT,
  MOVE_RELOCATE,
  MOVE_REPLACE,
  MOVE_REPLICATE,
  MOVE_SWAP,
  PARTNER_GPUS,
  REPLACE_CANDIDATES,
} from "../../src/domain/placement/improve.ts";
import type { Move } from "../../src/domain/placement/improve.ts";
import { fillFreeSlots, FreshScratch, planLayerFresh, replicaCounts } from "../../src/domain/placement/fresh.ts";
import { bitAt, LayerState } from "../../src/domain/placement/state.ts";
import type { Topology } from "../../src/domain/placement/state.ts";
import { EMPTY_SLOT } from "../../src/domain/placement/types.ts";
import { createRng } from "../../src/domain/rng.ts";
import type { Rng } from "../../src/domain/rng.ts";

// ---------------------------------------------------------------------------------------------
// Naive reference: O(replicas) per step.

interface SearchScratch {
  start: Int32Array;
  fill: Int32Array;
  list: Int32Array;
  partners: Int32Array;
  perReplica: Float64Array;
  hOrder: Int32Array;
  candD: Int32Array;
  candS: Int32Array;
  candKey: Float64Array;
}

function createScratch(): SearchScratch {
  return {
    start: new Int32Array(0),
    fill: new Int32Array(0),
    list: new Int32Array(0),
    partners: new Int32Array(PARTNER_GPUS),
    perReplica: new Float64Array(0),
    hOrder: new Int32Array(0),
    candD: new Int32Array(REPLACE_CANDIDATES),
    candS: new Int32Array(REPLACE_CANDIDATES),
    candKey: new Float64Array(REPLACE_CANDIDATES),
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

/** The best move so far of a naive scan, and what the scan of h shares (the spec of LayerSearch.findBestMove). */
interface NaiveScan {
  st: LayerState;
  budget: number;
  h: number;
  Lh: number;
  eps: number;
  invMean: number;
  lr: Float64Array;
  hStart: Int32Array;
  hList: Int32Array;
  pc: number;
  rc: number;
  filler: number;
  fillerLoad: number;
  best: Move;
}

/** Per replica x of h: its load per replica now and with one more replica, and what removing it refunds. */
interface NaiveX {
  hs: number;
  x: number;
  rx: number;
  wx: number;
  lx: number;
  lxNew: number;
  dx: number;
  xHoldMax: number;
  removeX: number;
  canAddX: boolean;
}

/** Keep a candidate move if it scores above the best so far (first found wins ties). */
function offerMove(
  n: NaiveScan,
  gain: number,
  cost: number,
  kind: number,
  x: NaiveX,
  d: number,
  ds: number,
  y: number,
): void {
  if (!(gain > n.eps)) return;
  const sc = (gain * n.invMean) / (cost > 1 ? cost : 1);
  if (sc > n.best.score) n.best = { kind, h: n.h, hSlot: x.hs, x: x.x, d, dSlot: ds, y, score: sc, cost };
}

const origHas = (st: LayerState, g: number, e: number): boolean =>
  st.orig !== null && bitAt(st.orig, g * st.expertCount + e) === 1;

/** The coolest GPUs (excluding h), ascending by (load, index): swap partners. */
function naivePartners(n: NaiveScan, scratch: SearchScratch): void {
  const { gpuCount: G, slotCount } = n.st.topo;
  const load = n.st.load;
  const partners = scratch.partners;
  let pc = 0;
  for (let g = 0; g < G; g++) {
    if (g === n.h || slotCount[g]! <= 0) continue;
    const lg = load[g]!;
    if (pc === PARTNER_GPUS && lg >= load[partners[pc - 1]!]!) continue;
    let pos = pc < PARTNER_GPUS ? pc++ : PARTNER_GPUS - 1;
    while (pos > 0 && load[partners[pos - 1]!]! > lg) {
      partners[pos] = partners[pos - 1]!;
      pos -= 1;
    }
    partners[pos] = g;
  }
  n.pc = pc;
}

/**
 * Replace candidates: redundant replicas (r >= 2) off h whose removal hurts least, ranked by the
 * highest load it leaves on any GPU involved (other holders of y, and d without y); keys tied with
 * Lh (within eps) stay candidates.
 */
function naiveReplaceCandidates(n: NaiveScan, scratch: SearchScratch): void {
  const { st, h, Lh, lr, hStart, hList } = n;
  const { gpuCount: G, maxSlots: S, slotCount } = st.topo;
  const { candD, candS, candKey } = scratch;
  let rc = 0;
  for (let d = 0; d < G; d++) {
    if (d === h) continue;
    for (let ds = 0; ds < slotCount[d]!; ds++) {
      const y = st.grid[d * S + ds]!;
      if (y === EMPTY_SLOT || st.r[y]! < 2) continue;
      const dy = st.w[y]! / (st.r[y]! - 1) - lr[y]!;
      let key = st.load[d]! - lr[y]!;
      for (let k = hStart[y]!; k < hStart[y + 1]!; k++) {
        const g2 = hList[k]!;
        if (g2 !== d && st.load[g2]! + dy > key) key = st.load[g2]! + dy;
      }
      if (key >= Lh + n.eps || (rc === REPLACE_CANDIDATES && key >= candKey[rc - 1]!)) continue;
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
  n.rc = rc;
}

/** h's slots by descending load per replica (stable), into scratch.hOrder. */
function naiveHotOrder(n: NaiveScan, scratch: SearchScratch): number {
  const { st, h, lr } = n;
  const S = st.topo.maxSlots;
  if (scratch.hOrder.length < S) scratch.hOrder = new Int32Array(S);
  const hOrder = scratch.hOrder;
  let hn = 0;
  for (let hs = 0; hs < st.topo.slotCount[h]!; hs++) {
    const x = st.grid[h * S + hs]!;
    if (x === EMPTY_SLOT) continue;
    let pos = hn++;
    while (pos > 0 && lr[st.grid[h * S + hOrder[pos - 1]!]!]! < lr[x]!) {
      hOrder[pos] = hOrder[pos - 1]!;
      pos -= 1;
    }
    hOrder[pos] = hs;
  }
  return hn;
}

function naiveReplica(n: NaiveScan, hs: number): NaiveX {
  const { st, h, lr, hStart, hList } = n;
  const x = st.grid[h * st.topo.maxSlots + hs]!;
  const rx = st.r[x]!;
  const wx = st.w[x]!;
  const lx = lr[x]!;
  const lxNew = wx / (rx + 1);
  const dx = lx - lxNew;
  let xHoldMax = -Infinity;
  for (let k = hStart[x]!; k < hStart[x + 1]!; k++) xHoldMax = Math.max(xHoldMax, st.load[hList[k]!]! - dx);
  return {
    hs,
    x,
    rx,
    wx,
    lx,
    lxNew,
    dx,
    xHoldMax,
    removeX: origHas(st, h, x) ? 0 : -1,
    canAddX: rx < st.topo.activeGpuCount,
  };
}

/** Relocate / replicate x into a free slot of any other GPU (skipped when the layer has none). */
function naiveFreeSlots(n: NaiveScan, xi: NaiveX): void {
  const { st, h, Lh } = n;
  const { gpuCount: G, slotCount } = st.topo;
  if (st.replicas >= st.topo.totalSlots) return;
  for (let d = 0; d < G; d++) {
    if (d === h || st.used[d]! >= slotCount[d]! || st.holds(d, xi.x)) continue;
    const Ld = st.load[d]!;
    const addX = origHas(st, d, xi.x) ? 0 : 1;
    if (addX + xi.removeX <= n.budget)
      offerMove(n, Lh - Math.max(Lh - xi.lx, Ld + xi.lx), addX + xi.removeX, MOVE_RELOCATE, xi, d, -1, -1);
    if (st.replicas < st.cap && xi.canAddX && addX <= n.budget)
      offerMove(n, Lh - Math.max(xi.xHoldMax, Ld + xi.lxNew), addX, MOVE_REPLICATE, xi, d, -1, -1);
  }
}

/** Swap x with a lighter replica on one of the coolest GPUs; a swap with d lowers h by at most (Lh - Ld) / 2. */
function naiveSwaps(n: NaiveScan, xi: NaiveX, scratch: SearchScratch): void {
  const { st, h, Lh, lr } = n;
  const S = st.topo.maxSlots;
  for (let p = 0; p < n.pc; p++) {
    const d = scratch.partners[p]!;
    const Ld = st.load[d]!;
    if (!((Lh - Ld) * 0.5 * n.invMean > n.best.score)) break;
    if (st.holds(d, xi.x)) continue;
    const addX = origHas(st, d, xi.x) ? 0 : 1;
    for (let ds = 0; ds < st.topo.slotCount[d]!; ds++) {
      const y = st.grid[d * S + ds]!;
      if (y === EMPTY_SLOT || !(lr[y]! < xi.lx) || st.holds(h, y)) continue;
      const cost = addX + (origHas(st, h, y) ? 0 : 1) + xi.removeX + (origHas(st, d, y) ? 0 : -1);
      if (cost <= n.budget)
        offerMove(n, Lh - Math.max(Lh - xi.lx + lr[y]!, Ld - lr[y]! + xi.lx), cost, MOVE_SWAP, xi, d, ds, y);
    }
  }
}

/** Replace one of the least useful redundant replicas elsewhere with a new replica of x. */
function naiveReplaces(n: NaiveScan, xi: NaiveX, scratch: SearchScratch): void {
  const { st, Lh, lr, hStart, hList } = n;
  if (!(xi.canAddX && xi.dx * n.invMean > n.best.score)) return;
  for (let c = 0; c < n.rc; c++) {
    const d = scratch.candD[c]!;
    if (st.holds(d, xi.x)) continue;
    const ds = scratch.candS[c]!;
    const y = st.grid[d * st.topo.maxSlots + ds]!;
    const ly = lr[y]!;
    const cost = (origHas(st, d, xi.x) ? 0 : 1) + (origHas(st, d, y) ? 0 : -1);
    if (cost > n.budget) continue;
    let m = Math.max(xi.xHoldMax, st.load[d]! - ly + xi.lxNew);
    if (!(Lh - m > n.eps)) continue;
    const dy = st.w[y]! / (st.r[y]! - 1) - ly;
    for (let k = hStart[y]!; k < hStart[y + 1]!; k++) {
      const g2 = hList[k]!;
      if (g2 !== d) m = Math.max(m, st.load[g2]! + dy - (st.holds(g2, xi.x) ? xi.dx : 0));
    }
    offerMove(n, Lh - m, cost, MOVE_REPLACE, xi, d, ds, y);
  }
}

/**
 * Drop a redundant replica of x from h. When the layer must stay full (no room under the replica
 * cap), refill the slot with the expert that adds least to h (lowest load per replica after the
 * add) -- one replica load -- so plans that fill every slot stay full.
 */
function naiveEvict(n: NaiveScan, xi: NaiveX): void {
  const { st, h, Lh, hStart, hList } = n;
  const E = st.expertCount;
  if (xi.rx < 2) return;
  const canGrow = st.replicas < st.cap;
  if (!canGrow && n.filler === -2) {
    n.filler = -1;
    n.fillerLoad = Infinity;
    for (let e = 0; e < E; e++) {
      if (st.holds(h, e) || st.r[e]! >= st.topo.activeGpuCount) continue;
      const v = st.w[e]! / (st.r[e]! + 1);
      if (v < n.fillerLoad) {
        n.fillerLoad = v;
        n.filler = e;
      }
    }
  }
  const z = canGrow ? -1 : n.filler;
  const cost = xi.removeX + (z >= 0 ? (origHas(st, h, z) ? 0 : 1) : 0);
  if (!(canGrow || z >= 0) || cost > n.budget) return;
  const dxUp = xi.wx / (xi.rx - 1) - xi.lx;
  let m = Lh - xi.lx + (canGrow ? 0 : n.fillerLoad);
  for (let k = hStart[xi.x]!; k < hStart[xi.x + 1]!; k++)
    if (hList[k] !== h) m = Math.max(m, st.load[hList[k]!]! + dxUp);
  offerMove(n, Lh - m, cost, MOVE_EVICT, xi, -1, -1, z);
}

/**
 * Best single move for the layer's hottest GPU, or null when none lowers it by at least
 * `minScore` (share of mean GPU load per replica loaded) within `budget` replica loads.
 * A move is valid only if every GPU it touches ends below the hottest GPU's current load.
 */
function naiveBestMove(st: LayerState, budget: number, minScore: number, scratch: SearchScratch): Move | null {
  const { gpuCount: G, slotCount } = st.topo;
  const mean = st.meanLoad;
  if (!(mean > 0)) return null;
  let h = -1;
  let Lh = -Infinity;
  for (let g = 0; g < G; g++) {
    if (slotCount[g]! > 0 && st.load[g]! > Lh) {
      Lh = st.load[g]!;
      h = g;
    }
  }
  if (h < 0 || Lh <= 0) return null;
  buildHolders(st, scratch);
  if (scratch.perReplica.length !== st.expertCount) scratch.perReplica = new Float64Array(st.expertCount);
  const lr = scratch.perReplica;
  for (let e = 0; e < st.expertCount; e++) lr[e] = st.r[e]! > 0 ? st.w[e]! / st.r[e]! : 0;
  const none: Move = { kind: -1, h, hSlot: -1, x: -1, d: -1, dSlot: -1, y: -1, score: minScore, cost: 0 };
  const n: NaiveScan = {
    st,
    budget,
    h,
    Lh,
    eps: mean * 1e-9,
    invMean: 1 / mean,
    lr,
    hStart: scratch.start,
    hList: scratch.list,
    pc: 0,
    rc: 0,
    filler: -2,
    fillerLoad: 0,
    best: none,
  };
  naivePartners(n, scratch);
  naiveReplaceCandidates(n, scratch);
  const hn = naiveHotOrder(n, scratch);
  for (let hi = 0; hi < hn; hi++) {
    const xi = naiveReplica(n, scratch.hOrder[hi]!);
    // No move of x lowers h by more than lx (and scores divide by max(cost, 1)); slots are in
    // descending lx, so nothing further can win.
    if (!(xi.lx * n.invMean > n.best.score)) break;
    naiveFreeSlots(n, xi);
    naiveSwaps(n, xi, scratch);
    naiveReplaces(n, xi, scratch);
    naiveEvict(n, xi);
  }
  return n.best.kind < 0 ? null : n.best;
}

// ---------------------------------------------------------------------------------------------
// Random layers.

function randomTopology(rand: Rng, maxGpus = 10): Topology {
  const G = 1 + Math.floor(rand.next() * maxGpus);
  const slotCount = new Int32Array(G);
  const nodeOf = new Int32Array(G);
  const nodes = 1 + Math.floor(rand.next() * Math.min(8, G));
  let maxSlots = 0;
  let active = 0;
  let totalSlots = 0;
  for (let g = 0; g < G; g++) {
    slotCount[g] = rand.next() < 0.1 ? 0 : 1 + Math.floor(rand.next() * 5);
    nodeOf[g] = Math.floor(rand.next() * nodes);
    maxSlots = Math.max(maxSlots, slotCount[g]!);
    if (slotCount[g]! > 0) active += 1;
    totalSlots += slotCount[g]!;
  }
  return {
    gpuCount: G,
    activeGpuCount: active,
    slotCount,
    totalSlots,
    maxSlots,
    nodeOf,
    domainOf: new Int32Array(G),
    nodeCount: nodes,
    domainCount: 1,
    spread: rand.next() < 0.5,
  };
}

function randomHeat(rand: Rng, E: number): number[] {
  const mode = Math.floor(rand.next() * 4);
  // Small integers make equal loads (ties) common, floats make them rare, all-zero heat ties everything.
  return Array.from({ length: E }, () =>
    mode === 0
      ? Math.floor(rand.next() * 4)
      : mode === 1
        ? rand.next() * 1000
        : mode === 2
          ? rand.next() < 0.3
            ? 0
            : Math.floor(rand.next() * 50)
          : 0,
  );
}

/** Remove a random replica or add a random expert where it fits (through LayerState, so it is logged). */
function randomChange(st: LayerState, rand: Rng): void {
  const { gpuCount: G, slotCount, maxSlots: S } = st.topo;
  const g = Math.floor(rand.next() * G);
  if (slotCount[g]! === 0) return;
  const s = Math.floor(rand.next() * slotCount[g]!);
  if (st.grid[g * S + s] !== EMPTY_SLOT && rand.next() < 0.5) {
    st.removeAt(g, s);
    return;
  }
  const e = Math.floor(rand.next() * st.expertCount);
  if (st.grid[g * S + s] === EMPTY_SLOT && !st.holds(g, e)) st.add(g, e, s);
}

function randomLayer(rand: Rng, maxGpus = 10, maxExperts = 12): LayerState {
  const topo = randomTopology(rand, maxGpus);
  const E = 1 + Math.floor(rand.next() * maxExperts);
  const heat = randomHeat(rand, E);
  const cap = rand.next() < 0.5 ? topo.totalSlots : Math.min(topo.totalSlots, E + Math.floor(rand.next() * 6));
  const st = new LayerState(topo, heat, cap);
  if (E <= topo.totalSlots && rand.next() < 0.5) {
    planLayerFresh(st);
  } else {
    for (let g = 0; g < topo.gpuCount; g++) {
      for (let s = 0; s < topo.slotCount[g]!; s++)
        st.grid[g * topo.maxSlots + s] = rand.next() < 0.25 ? EMPTY_SLOT : Math.floor(rand.next() * E);
    }
    st.rebuild();
  }
  if (rand.next() < 0.6) {
    st.markOriginal();
    const changes = Math.floor(rand.next() * 6);
    for (let i = 0; i < changes; i++) randomChange(st, rand);
  }
  return st;
}

/** Invariants of LayerState's derived data (bitset, holder lists, counts, loads) against the grid. */
function checkState(st: LayerState): void {
  const { gpuCount: G, maxSlots: S, slotCount } = st.topo;
  const E = st.expertCount;
  const r = new Array<number>(E).fill(0);
  const holders = Array.from({ length: E }, () => [] as number[]);
  let replicas = 0;
  for (let g = 0; g < G; g++) {
    let used = 0;
    for (let s = 0; s < S; s++) {
      const e = st.grid[g * S + s]!;
      if (e === EMPTY_SLOT) continue;
      expect(s).toBeLessThan(slotCount[g]!);
      r[e]! += 1;
      holders[e]!.push(g * S + s);
      used += 1;
      replicas += 1;
    }
    expect(st.used[g]).toBe(used);
  }
  for (let g = 0; g < G; g++) {
    let load = 0;
    for (let s = 0; s < S; s++) {
      const e = st.grid[g * S + s]!;
      if (e !== EMPTY_SLOT) load += st.w[e]! / r[e]!;
    }
    expect(st.load[g]!).toBeCloseTo(load, 6);
    for (let e = 0; e < E; e++) expect(st.holds(g, e)).toBe(holders[e]!.some((c) => Math.floor(c / S) === g));
  }
  expect(st.replicas).toBe(replicas);
  for (let e = 0; e < E; e++) {
    expect(st.r[e]).toBe(r[e]);
    const list: number[] = [];
    for (let c = st.head[e]!; c >= 0; c = st.nextCell[c]!) list.push(c);
    expect(list.sort((a, b) => a - b)).toEqual(holders[e]!.sort((a, b) => a - b));
  }
}

describe("LayerState", () => {
  it("keeps its bitset, holder lists, counts and loads consistent under random adds and removes", () => {
    fc.assert(
      fc.property(fc.integer(), (seed) => {
        const rand = createRng(seed);
        const st = randomLayer(rand);
        checkState(st);
        for (let i = 0; i < 30; i++) randomChange(st, rand);
        checkState(st);
        // reset() empties it for another layer.
        st.reset(randomHeat(rand, st.expertCount), st.cap);
        expect(st.replicas).toBe(0);
        checkState(st);
      }),
      { numRuns: 300 },
    );
  });
});

describe.each([
  ["small layers", 10, 12, 400],
  ["larger layers (more GPUs than swap partners, deeper heaps)", 80, 40, 60],
])("LayerSearch on %s", (_name, maxGpus, maxExperts, numRuns) => {
  it("finds exactly the move a full scan finds, step after step, also after outside changes", () => {
    const kinds = new Map<number, number>();
    fc.assert(
      fc.property(fc.integer(), (seed) => {
        const rand = createRng(seed);
        const st = randomLayer(rand, maxGpus, maxExperts);
        const search = new LayerSearch(st);
        const scratch = createScratch();
        for (let step = 0; step < 40; step++) {
          const budget = [Infinity, 0, -1, 1, 2, 3, 8][Math.floor(rand.next() * 7)]!;
          const minScore = [0, 1e-4, 0.005, 0.05][Math.floor(rand.next() * 4)]!;
          const expected = naiveBestMove(st, budget, minScore, scratch);
          const got = search.findBestMove(budget, minScore);
          expect(got).toEqual(expected);
          if (got !== null) {
            kinds.set(got.kind, (kinds.get(got.kind) ?? 0) + 1);
            applyMove(st, got);
          }
          if (got === null || rand.next() < 0.2) randomChange(st, rand);
        }
        search.detach();
        checkState(st);
      }),
      { numRuns },
    );
    // Every kind of move was exercised.
    for (const kind of [MOVE_RELOCATE, MOVE_SWAP, MOVE_REPLICATE, MOVE_REPLACE, MOVE_EVICT])
      expect(kinds.get(kind) ?? 0).toBeGreaterThan(0);
  });

  it("can be re-attached to a reset state (as the fresh planner does for every layer)", () => {
    fc.assert(
      fc.property(fc.integer(), (seed) => {
        const rand = createRng(seed);
        const st = randomLayer(rand, maxGpus, maxExperts);
        const search = new LayerSearch(st);
        const scratch = createScratch();
        for (let round = 0; round < 3; round++) {
          for (let step = 0; step < 10; step++) {
            const got = search.findBestMove(Infinity, 1e-4);
            expect(got).toEqual(naiveBestMove(st, Infinity, 1e-4, scratch));
            if (got === null) break;
            applyMove(st, got);
          }
          search.detach();
          st.reset(randomHeat(rand, st.expertCount), st.cap);
          if (st.expertCount <= st.topo.totalSlots) planLayerFresh(st);
          search.attach(st);
        }
      }),
      { numRuns: Math.ceil(numRuns / 3) },
    );
  });
});

// ---------------------------------------------------------------------------------------------
// Fresh packing against its specification, written naively: replicas heaviest first (ties: lower
// expert id), each onto the first GPU in (load, index) order that has room and lacks the expert;
// with "spread", the first such GPU on a node without the expert instead, if its load exceeds the
// first one's by at most 1e-9 of the layer's mean GPU load.

function naivePack(st: LayerState): void {
  const { gpuCount: G, maxSlots: S, slotCount, activeGpuCount, nodeOf, spread } = st.topo;
  const E = st.expertCount;
  const target = replicaCounts(st.w, Math.min(st.cap, st.topo.totalSlots), activeGpuCount);
  const experts = Array.from({ length: E }, (_, e) => e).sort(
    (a, b) => st.w[b]! / target[b]! - st.w[a]! / target[a]! || a - b,
  );
  const load = new Array<number>(G).fill(0);
  const used = new Array<number>(G).fill(0);
  const holds = (g: number, e: number): boolean => st.grid.subarray(g * S, g * S + used[g]!).includes(e);
  const nodeHolds = (n: number, e: number): boolean =>
    Array.from({ length: G }, (_, g) => g).some((g) => nodeOf[g] === n && holds(g, e));
  const slack = st.meanLoad * 1e-9;
  for (const x of experts) {
    for (let j = 0; j < target[x]!; j++) {
      const candidates = Array.from({ length: G }, (_, g) => g)
        .filter((g) => used[g]! < slotCount[g]! && !holds(g, x))
        .sort((a, b) => load[a]! - load[b]! || a - b);
      if (candidates.length === 0) continue;
      let g = candidates[0]!;
      if (spread && nodeHolds(nodeOf[g]!, x)) {
        const other = candidates.find((c) => load[c]! <= load[g]! + slack && !nodeHolds(nodeOf[c]!, x));
        if (other !== undefined) g = other;
      }
      st.grid[g * S + used[g]!] = x;
      used[g]! += 1;
      load[g]! += st.w[x]! / target[x]!;
    }
  }
  st.rebuild();
  fillFreeSlots(st);
}

describe("planLayerFresh", () => {
  it("packs like the naive specification", () => {
    fc.assert(
      fc.property(fc.integer(), (seed) => {
        const rand = createRng(seed);
        const large = rand.next() < 0.2;
        const topo = randomTopology(rand, large ? 80 : 10);
        const E = 1 + Math.floor(rand.next() * (large ? 40 : 12));
        if (E > topo.totalSlots) return;
        const heat = randomHeat(rand, E);
        const cap = rand.next() < 0.5 ? topo.totalSlots : Math.min(topo.totalSlots, E + Math.floor(rand.next() * 6));
        const reference = new LayerState(topo, heat, cap);
        naivePack(reference);
        const scratch = new FreshScratch(topo, E);
        const st = new LayerState(topo, heat, cap);
        // Twice with the same scratch: it must come back clean.
        for (let round = 0; round < 2; round++) {
          st.reset(heat, cap);
          planLayerFresh(st, scratch);
          expect([...st.grid]).toEqual([...reference.grid]);
        }
      }),
      { numRuns: 400 },
    );
  });
});
