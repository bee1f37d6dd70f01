// Churn-aware local search: repeatedly unload the hottest GPU of a layer with the single replica
// change that lowers it most per replica loaded. See docs/adr/0002-placement-algorithm.md.
//
// A LayerSearch keeps the candidates of every search step in incrementally maintained structures
// (heaps of GPUs by load, a segment tree of GPUs with a free slot, heaps of experts by their
// cheapest addition and least useful redundant replica, holder lists in LayerState), updated only
// for the GPUs and experts a move touched. A step then costs about O(slots x log n) instead of a
// scan of every replica of the layer, and picks exactly the move a full scan would pick (same
// scores, same tie order: the scan order of GPUs and slots).

import { EMPTY_SLOT } from "./types.ts";
import { HeapWalker, IndexedHeap, MinSegmentTree } from "./heap.ts";
import { bitAt } from "./state.ts";
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
export const PARTNER_GPUS = 8;
/** How many redundant replicas (the least useful ones) replace moves consider. */
export const REPLACE_CANDIDATES = 12;

/**
 * Working buffers of a search step, shared by the LayerSearch objects of one plan (one step runs at
 * a time), so that keeping a search per layer costs only its persistent structures.
 */
export class SearchBuffers {
  /** GPUs excluded as free-slot targets for the current x (all zero between uses). */
  blocked = new Uint8Array(0);
  /** Work stack for IndexedHeap.smallest and id lists for IndexedHeap.build. */
  stack = new Int32Array(0);
  /** Experts to refresh during sync (mark all zero between syncs). */
  mark = new Uint8Array(0);
  marked = new Int32Array(0);
  readonly walker = new HeapWalker();
  readonly partners = new Int32Array(PARTNER_GPUS);
  /** Per partner p: its replicas that h does not hold, in slot order (slot, load per replica, and
   * the replica loads of moving that replica to h, which do not depend on x). */
  readonly swapCount = new Int32Array(PARTNER_GPUS);
  /** Per partner: the least x-independent part of a swap's cost. */
  readonly swapMinCost = new Int32Array(PARTNER_GPUS);
  swapSlot = new Int32Array(0);
  swapLoad = new Float64Array(0);
  swapCost = new Int32Array(0);
  readonly candD = new Int32Array(REPLACE_CANDIDATES);
  readonly candS = new Int32Array(REPLACE_CANDIDATES);
  hOrder = new Int32Array(0);
  /** The next candidate of each expert already taken from `spare`: (key, tie, expert). */
  streamKey = new Float64Array(16);
  streamTie = new Int32Array(16);
  streamY = new Int32Array(16);

  /** Grow to fit a layer of G GPUs, E experts and S slots per GPU. */
  fit(G: number, E: number, S: number): void {
    if (this.blocked.length < G) this.blocked = new Uint8Array(G);
    if (this.stack.length < Math.max(G, E) + 2) this.stack = new Int32Array(Math.max(G, E) + 2);
    if (this.mark.length < E) {
      this.mark = new Uint8Array(E);
      this.marked = new Int32Array(E);
    }
    if (this.hOrder.length < S) this.hOrder = new Int32Array(S);
    if (this.swapSlot.length < PARTNER_GPUS * S) {
      this.swapSlot = new Int32Array(PARTNER_GPUS * S);
      this.swapLoad = new Float64Array(PARTNER_GPUS * S);
      this.swapCost = new Int32Array(PARTNER_GPUS * S);
    }
  }

  growStreams(): void {
    const n = this.streamKey.length * 2;
    const key = new Float64Array(n);
    key.set(this.streamKey);
    const tie = new Int32Array(n);
    tie.set(this.streamTie);
    const ys = new Int32Array(n);
    ys.set(this.streamY);
    this.streamKey = key;
    this.streamTie = tie;
    this.streamY = ys;
  }
}

/**
 * Search state of one layer. Attaching turns on the LayerState's change log; every query first
 * catches up with the changes since the previous one, so the state may be changed freely (by
 * applyMove or otherwise) between queries.
 */
export class LayerSearch {
  private st!: LayerState;
  /** Active GPUs by (-load, g): the hottest on top. */
  private hot!: IndexedHeap;
  /** Active GPUs by (load, g): swap / replace partners. */
  private cool!: IndexedHeap;
  /** Load of each active GPU with a free slot (+Infinity otherwise), by GPU index. */
  private free!: MinSegmentTree;
  /** Experts that may get another replica, by (load per replica after it, e): the evict refill. */
  private fill!: IndexedHeap;
  /**
   * Experts with a redundant replica, by their first replace candidate (key, d * maxSlots + slot).
   * The candidates of expert y are its holders d with key(d) = the highest load left on any GPU
   * involved once y leaves d: max(load[d] - ly, max over other holders of load + dy). For the
   * hottest holder d* (lowest index among equals) that is k1 = max(load[d*] - ly, second + dy);
   * for every other holder k2 = load[d*] + dy >= k1.
   */
  private spare!: IndexedHeap;
  private spareK2!: Float64Array;
  private spareTop!: Int32Array;
  /** 1 when k1 < k2 (the hottest holder comes first, alone). */
  private spareSplit!: Uint8Array;
  /** Load per replica of each expert. */
  private lr!: Float64Array;
  private readonly buf: SearchBuffers;

  constructor(st: LayerState, buffers: SearchBuffers = new SearchBuffers()) {
    this.buf = buffers;
    this.attach(st);
  }

  /** (Re)build every structure from `st` (reusing buffers when the shape allows) and track it. */
  attach(st: LayerState): void {
    const { gpuCount: G, slotCount, activeGpuCount } = st.topo;
    const E = st.expertCount;
    if (this.st !== undefined && this.st !== st) this.st.tracking = false;
    this.st = st;
    if (this.hot === undefined || this.hot.capacity !== Math.max(1, G) || this.fill.capacity !== Math.max(1, E)) {
      this.hot = new IndexedHeap(G);
      this.cool = new IndexedHeap(G);
      this.free = new MinSegmentTree(G);
      this.fill = new IndexedHeap(E);
      this.spare = new IndexedHeap(E);
      this.spareK2 = new Float64Array(E);
      this.spareTop = new Int32Array(E);
      this.spareSplit = new Uint8Array(E);
      this.lr = new Float64Array(E);
    } else {
      this.hot.clear();
      this.cool.clear();
      this.free.clear();
      this.fill.clear();
      this.spare.clear();
    }
    this.buf.fit(G, E, st.topo.maxSlots);
    const { load, used, r, w } = st;
    const ids = this.buf.stack;
    let n = 0;
    for (let g = 0; g < G; g++) {
      if (slotCount[g]! <= 0) continue;
      ids[n++] = g;
      this.hot.key[g] = -load[g]!;
      this.hot.tie[g] = g;
      this.cool.key[g] = load[g]!;
      this.cool.tie[g] = g;
      if (used[g]! < slotCount[g]!) this.free.set(g, load[g]!);
    }
    this.hot.build(n, ids);
    this.cool.build(n, ids);
    n = 0;
    for (let e = 0; e < E; e++) {
      this.lr[e] = r[e]! > 0 ? w[e]! / r[e]! : 0;
      if (r[e]! < activeGpuCount) {
        ids[n++] = e;
        this.fill.key[e] = w[e]! / (r[e]! + 1);
        this.fill.tie[e] = e;
      }
    }
    this.fill.build(n, ids);
    for (let e = 0; e < E; e++) this.refreshSpare(e);
    st.clearChanges();
    st.tracking = true;
  }

  /** Stop tracking the attached state. */
  detach(): void {
    this.st.tracking = false;
    this.st.clearChanges();
  }

  /** Catch up with the GPUs and experts changed since the last query. */
  private sync(): void {
    const st = this.st;
    if (st.changedGpuCount === 0 && st.changedExpertCount === 0) return;
    const { slotCount, maxSlots: S, activeGpuCount } = st.topo;
    const { load, used, grid, r, w } = st;
    const mark = this.buf.mark;
    const marked = this.buf.marked;
    let mc = 0;
    for (let i = 0; i < st.changedGpuCount; i++) {
      const g = st.changedGpus[i]!;
      const slots = slotCount[g]!;
      if (slots <= 0) continue;
      const lg = load[g]!;
      this.hot.set(g, -lg, g);
      this.cool.set(g, lg, g);
      this.free.set(g, used[g]! < slots ? lg : Infinity);
      // Every expert on g has g as a holder whose load changed.
      const base = g * S;
      for (let s = 0; s < slots; s++) {
        const y = grid[base + s]!;
        if (y !== EMPTY_SLOT && !mark[y]) {
          mark[y] = 1;
          marked[mc++] = y;
        }
      }
    }
    // Load per replica and the refill order depend only on the replica count.
    for (let i = 0; i < st.changedExpertCount; i++) {
      const e = st.changedExperts[i]!;
      const re = r[e]!;
      this.lr[e] = re > 0 ? w[e]! / re : 0;
      if (re < activeGpuCount) this.fill.set(e, w[e]! / (re + 1), e);
      else this.fill.remove(e);
      if (!mark[e]) {
        mark[e] = 1;
        marked[mc++] = e;
      }
    }
    for (let i = 0; i < mc; i++) {
      const e = marked[i]!;
      mark[e] = 0;
      this.refreshSpare(e);
    }
    st.clearChanges();
  }

  /** Recompute expert y's replace candidates (see `spare`). */
  private refreshSpare(y: number): void {
    const st = this.st;
    const ry = st.r[y]!;
    if (ry < 2) {
      this.spare.remove(y);
      return;
    }
    const S = st.topo.maxSlots;
    const load = st.load;
    let top = -1;
    let topLoad = -Infinity;
    let second = -Infinity;
    let first = -1;
    for (let c = st.head[y]!; c >= 0; c = st.nextCell[c]!) {
      const g = Math.floor(c / S);
      const lg = load[g]!;
      if (first < 0 || g < first) first = g;
      if (top < 0) {
        top = g;
        topLoad = lg;
      } else if (lg > topLoad) {
        second = topLoad;
        top = g;
        topLoad = lg;
      } else if (lg === topLoad) {
        second = lg;
        if (g < top) top = g;
      } else if (lg > second) {
        second = lg;
      }
    }
    const ly = this.lr[y]!;
    const dy = st.w[y]! / (ry - 1) - ly;
    const k1 = Math.max(topLoad - ly, second + dy);
    const k2 = topLoad + dy;
    this.spareK2[y] = k2;
    this.spareTop[y] = top;
    if (k1 < k2) {
      this.spareSplit[y] = 1;
      this.spare.set(y, k1, top * S + st.slotOf(top, y));
    } else {
      this.spareSplit[y] = 0;
      this.spare.set(y, k2, first * S + st.slotOf(first, y));
    }
  }

  /** Holder of y with the lowest index above `after`, other than `skip`; -1 if none. */
  private nextHolder(y: number, after: number, skip: number): number {
    const st = this.st;
    const S = st.topo.maxSlots;
    let best = -1;
    for (let c = st.head[y]!; c >= 0; c = st.nextCell[c]!) {
      const g = Math.floor(c / S);
      if (g > after && g !== skip && (best < 0 || g < best)) best = g;
    }
    return best;
  }

  /**
   * The replace candidates: the first REPLACE_CANDIDATES redundant replicas off h, ordered by
   * (key, GPU, slot), whose key is below Lh. Merges `spare` (each expert's first candidate) with
   * the later candidates of the experts taken so far. Returns how many were written to candD/candS.
   */
  private replaceCandidates(h: number, Lh: number): number {
    const st = this.st;
    const S = st.topo.maxSlots;
    const spare = this.spare;
    const buf = this.buf;
    const walker = buf.walker;
    walker.start(spare);
    let sc = 0; // pending stream entries
    let rc = 0;
    while (rc < REPLACE_CANDIDATES) {
      const wy = walker.peek();
      let bi = -1;
      for (let i = 0; i < sc; i++) {
        if (bi < 0 || buf.streamKey[i]! < buf.streamKey[bi]! || (buf.streamKey[i] === buf.streamKey[bi] && buf.streamTie[i]! < buf.streamTie[bi]!)) bi = i;
      }
      let key: number;
      let tie: number;
      let y: number;
      let fromStream: boolean;
      if (bi >= 0 && (wy < 0 || buf.streamKey[bi]! < spare.key[wy]! || (buf.streamKey[bi] === spare.key[wy] && buf.streamTie[bi]! < spare.tie[wy]!))) {
        key = buf.streamKey[bi]!;
        tie = buf.streamTie[bi]!;
        y = buf.streamY[bi]!;
        fromStream = true;
      } else if (wy >= 0) {
        key = spare.key[wy]!;
        tie = spare.tie[wy]!;
        y = wy;
        fromStream = false;
      } else {
        break;
      }
      if (!(key < Lh)) break;
      const d = Math.floor(tie / S);
      if (d !== h) {
        buf.candD[rc] = d;
        buf.candS[rc] = tie - d * S;
        rc += 1;
      }
      // The next candidate of y: its other holders in index order, all at key k2.
      const split = this.spareSplit[y] === 1;
      const top = this.spareTop[y]!;
      const after = !fromStream && split ? -1 : d;
      const nd = this.nextHolder(y, after, split ? top : -1);
      let at: number;
      if (fromStream) {
        at = bi;
        if (nd < 0) {
          sc -= 1;
          buf.streamKey[bi] = buf.streamKey[sc]!;
          buf.streamTie[bi] = buf.streamTie[sc]!;
          buf.streamY[bi] = buf.streamY[sc]!;
        }
      } else {
        walker.next();
        at = sc;
        if (nd >= 0) {
          if (sc === buf.streamKey.length) buf.growStreams();
          sc += 1;
        }
      }
      if (nd >= 0) {
        buf.streamKey[at] = this.spareK2[y]!;
        buf.streamTie[at] = nd * S + st.slotOf(nd, y);
        buf.streamY[at] = y;
      }
    }
    return rc;
  }

  /**
   * Best single move for the layer's hottest GPU, or null when none lowers it by at least
   * `minScore` (share of mean GPU load per replica loaded) within `budget` replica loads.
   * A move is valid only if every GPU it touches ends below the hottest GPU's current load.
   * Ties go to the move found first when scanning h's replicas by descending load per replica,
   * then free-slot GPUs by index (relocate before replicate), swap partners, replace candidates,
   * eviction.
   */
  findBestMove(budget: number, minScore: number): Move | null {
    this.sync();
    const st = this.st;
    const { maxSlots: S, slotCount, activeGpuCount } = st.topo;
    const E = st.expertCount;
    const { load, grid, has, r, w, head, nextCell } = st;
    const orig = st.orig;
    const origStart = st.origStart;
    const origList = st.origList;
    const mean = st.meanLoad;
    if (!(mean > 0)) return null;

    const h = this.hot.top();
    if (h < 0) return null;
    const Lh = load[h]!;
    if (Lh <= 0) return null;
    const eps = mean * 1e-9;
    const invMean = 1 / mean;
    const lr = this.lr;

    // The coolest GPUs (excluding h), ascending by (load, index): swap partners.
    const buf = this.buf;
    const partners = buf.partners;
    const pc = this.cool.smallest(PARTNER_GPUS, h, partners, buf.stack);

    let bestScore = minScore;
    let bKind = -1;
    let bHs = -1;
    let bX = -1;
    let bD = -1;
    let bDs = -1;
    let bY = -1;
    let bCost = 0;

    const candD = buf.candD;
    const candS = buf.candS;
    let rc = -1; // replace candidates, found on first use
    let swapReady = false;
    const swapSlot = buf.swapSlot;
    const swapLoad = buf.swapLoad;
    const swapCost = buf.swapCost;

    const canGrow = st.replicas < st.cap;
    const hasFreeSlot = st.replicas < st.topo.totalSlots && this.free.min[1]! < Infinity;
    const blocked = buf.blocked;
    let filler = -2; // -2: not computed yet; -1: none
    let fillerLoad = 0;
    const hBase = h * S;
    const hRow = h * E;
    const hOrder = buf.hOrder;
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
      for (let c = head[x]!; c >= 0; c = nextCell[c]!) {
        const v = load[Math.floor(c / S)]! - dx;
        if (v > xHoldMax) xHoldMax = v;
      }
      const removeX = orig !== null && bitAt(orig, hRow + x) ? 0 : -1;

      // Relocate / replicate into a free slot. Both scores fall with the target's load, so per
      // kind the best target is the least-loaded eligible GPU, and among equal scores the lowest
      // index. GPUs that held x before this plan (cost one load less) are checked one by one; the
      // rest come from the free-slot tree with h and x's holders blocked.
      if (hasFreeSlot) {
        const relOk = removeX + 1 <= budget; // a GPU without x before
        const relOkOrig = removeX <= budget; // a GPU that held x before
        const repAllowed = canGrow && canAddX;
        const repOk = repAllowed && 1 <= budget;
        const repOkOrig = repAllowed && 0 <= budget;
        const relFloor = Lh - lx;
        let relSc = -Infinity;
        let relD = -1;
        let repSc = -Infinity;
        let repD = -1;
        if (origStart !== null && origList !== null && (relOkOrig || repOkOrig)) {
          for (let k = origStart[x]!; k < origStart[x + 1]!; k++) {
            const d = origList[k]!;
            if (d === h || st.used[d]! >= slotCount[d]! || bitAt(has, d * E + x)) continue;
            const Ld = load[d]!;
            if (relOkOrig) {
              const gain = Lh - Math.max(relFloor, Ld + lx);
              if (gain > eps) {
                const sc = gain * invMean;
                if (sc > relSc || (sc === relSc && d < relD)) {
                  relSc = sc;
                  relD = d;
                }
              }
            }
            if (repOkOrig) {
              const gain = Lh - Math.max(xHoldMax, Ld + lxNew);
              if (gain > eps) {
                const sc = gain * invMean;
                if (sc > repSc || (sc === repSc && d < repD)) {
                  repSc = sc;
                  repD = d;
                }
              }
            }
          }
        }
        if (relOk || repOk) {
          blocked[h] = 1;
          for (let c = head[x]!; c >= 0; c = nextCell[c]!) blocked[Math.floor(c / S)] = 1;
          if (origStart !== null && origList !== null) for (let k = origStart[x]!; k < origStart[x + 1]!; k++) blocked[origList[k]!] = 1;
          const Lmin = this.free.minUnblocked(blocked);
          if (Lmin < Infinity) {
            if (relOk) {
              const gain = Lh - Math.max(relFloor, Lmin + lx);
              if (gain > eps) {
                const sc = gain * invMean;
                if (sc >= relSc) {
                  const d = this.free.leftmostScoring(Lh, relFloor, lx, invMean, eps, sc, blocked);
                  if (d >= 0 && (sc > relSc || d < relD)) {
                    relSc = sc;
                    relD = d;
                  }
                }
              }
            }
            if (repOk) {
              const gain = Lh - Math.max(xHoldMax, Lmin + lxNew);
              if (gain > eps) {
                const sc = gain * invMean;
                if (sc >= repSc) {
                  const d = this.free.leftmostScoring(Lh, xHoldMax, lxNew, invMean, eps, sc, blocked);
                  if (d >= 0 && (sc > repSc || d < repD)) {
                    repSc = sc;
                    repD = d;
                  }
                }
              }
            }
          }
          blocked[h] = 0;
          for (let c = head[x]!; c >= 0; c = nextCell[c]!) blocked[Math.floor(c / S)] = 0;
          if (origStart !== null && origList !== null) for (let k = origStart[x]!; k < origStart[x + 1]!; k++) blocked[origList[k]!] = 0;
        }
        // Scan order: relocate to d, replicate to d, then the next d.
        const relFirst = relD >= 0 && (repD < 0 || relD <= repD);
        for (let pass = 0; pass < 2; pass++) {
          if ((pass === 0) === relFirst) {
            if (relD >= 0 && relSc > bestScore) {
              const addX = orig !== null && bitAt(orig, relD * E + x) ? 0 : 1;
              bestScore = relSc; bKind = MOVE_RELOCATE; bHs = hs; bX = x; bD = relD; bDs = -1; bY = -1; bCost = addX + removeX;
            }
          } else if (repD >= 0 && repSc > bestScore) {
            const addX = orig !== null && bitAt(orig, repD * E + x) ? 0 : 1;
            bestScore = repSc; bKind = MOVE_REPLICATE; bHs = hs; bX = x; bD = repD; bDs = -1; bY = -1; bCost = addX;
          }
        }
      }

      // Swap with a replica on one of the coolest GPUs; a swap with d lowers h by at most (Lh - Ld) / 2.
      if (pc > 0 && (Lh - load[partners[0]!]!) * 0.5 * invMean > bestScore) {
        if (!swapReady) {
          swapReady = true;
          for (let p = 0; p < pc; p++) {
            const d = partners[p]!;
            const dBase = d * S;
            const dRow = d * E;
            let n = p * S;
            let minCost = 2;
            for (let ds = 0; ds < slotCount[d]!; ds++) {
              const y = grid[dBase + ds]!;
              if (y === EMPTY_SLOT || bitAt(has, hRow + y)) continue;
              swapSlot[n] = ds;
              swapLoad[n] = lr[y]!;
              const cy = (orig !== null && bitAt(orig, hRow + y) ? 0 : 1) + (orig !== null && bitAt(orig, dRow + y) ? 0 : -1);
              swapCost[n] = cy;
              if (cy < minCost) minCost = cy;
              n += 1;
            }
            buf.swapCount[p] = n - p * S;
            buf.swapMinCost[p] = minCost;
          }
        }
        for (let p = 0; p < pc; p++) {
          const d = partners[p]!;
          const Ld = load[d]!;
          if (!((Lh - Ld) * 0.5 * invMean > bestScore)) break;
          const dRow = d * E;
          if (bitAt(has, dRow + x)) continue;
          const costX = (orig !== null && bitAt(orig, dRow + x) ? 0 : 1) + removeX;
          // When every swap with d costs two loads, its score is at most (Lh - Ld) / 4 relative to
          // the mean (kept a hair above that so rounding can never make a skipped swap win).
          if (costX + buf.swapMinCost[p]! >= 2 && !((Lh - Ld) * 0.25 * invMean * (1 + 1e-9) + Lh * 1e-12 * invMean > bestScore)) continue;
          const from = p * S;
          const to = from + buf.swapCount[p]!;
          for (let k = from; k < to; k++) {
            const ly = swapLoad[k]!;
            if (!(ly < lx)) continue;
            const cost = costX + swapCost[k]!;
            if (cost > budget) continue;
            const gain = Lh - Math.max(Lh - lx + ly, Ld - ly + lx);
            if (gain > eps) {
              const sc = (gain * invMean) / (cost > 1 ? cost : 1);
              if (sc > bestScore) {
                const ds = swapSlot[k]!;
                bestScore = sc; bKind = MOVE_SWAP; bHs = hs; bX = x; bD = d; bDs = ds; bY = grid[d * S + ds]!; bCost = cost;
              }
            }
          }
        }
      }

      // Replace one of the least useful redundant replicas elsewhere with a new replica of x.
      if (canAddX && dx * invMean > bestScore) {
        if (rc < 0) rc = this.replaceCandidates(h, Lh);
        for (let c = 0; c < rc; c++) {
          const d = candD[c]!;
          const dRow = d * E;
          if (bitAt(has, dRow + x)) continue;
          const ds = candS[c]!;
          const y = grid[d * S + ds]!;
          const ry = r[y]!;
          const ly = lr[y]!;
          const cost = (orig !== null && bitAt(orig, dRow + x) ? 0 : 1) + (orig !== null && bitAt(orig, dRow + y) ? 0 : -1);
          if (cost > budget) continue;
          let m = Math.max(xHoldMax, load[d]! - ly + lxNew);
          if (!(Lh - m > eps)) continue;
          const dy = w[y]! / (ry - 1) - ly;
          for (let k = head[y]!; k >= 0; k = nextCell[k]!) {
            const g2 = Math.floor(k / S);
            if (g2 === d) continue;
            const v = load[g2]! + dy - (bitAt(has, g2 * E + x) ? dx : 0);
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
            fillerLoad = Infinity;
            buf.walker.start(this.fill);
            for (let e = buf.walker.next(); e >= 0; e = buf.walker.next()) {
              if (bitAt(has, hRow + e)) continue;
              filler = e;
              fillerLoad = this.fill.key[e]!;
              break;
            }
          }
          z = filler;
          lzNew = fillerLoad;
        }
        const cost = removeX + (z >= 0 ? (orig !== null && bitAt(orig, hRow + z) ? 0 : 1) : 0);
        if ((canGrow || z >= 0) && cost <= budget) {
          const dxUp = wx / (rx - 1) - lx;
          let m = Lh - lx + lzNew;
          for (let c = head[x]!; c >= 0; c = nextCell[c]!) {
            const g2 = Math.floor(c / S);
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
export function improveLayer(search: LayerSearch, st: LayerState, budget: number, minScore: number, maxIterations: number): number {
  let spent = 0;
  for (let i = 0; i < maxIterations; i++) {
    const mv = search.findBestMove(budget - spent, minScore);
    if (mv === null) break;
    applyMove(st, mv);
    spent += mv.cost;
  }
  return spent;
}
