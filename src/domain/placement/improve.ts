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

/** The best move found so far by one findBestMove call. */
class BestMove {
  score = 0;
  kind = -1;
  hs = -1;
  x = -1;
  d = -1;
  ds = -1;
  y = -1;
  cost = 0;

  reset(minScore: number): void {
    this.score = minScore;
    this.kind = -1;
  }

  set(score: number, kind: number, hs: number, x: number, d: number, ds: number, y: number, cost: number): void {
    this.score = score;
    this.kind = kind;
    this.hs = hs;
    this.x = x;
    this.d = d;
    this.ds = ds;
    this.y = y;
    this.cost = cost;
  }
}

/** What one findBestMove call scans: the hottest GPU h, and the replica x of it being tried. */
class ScanState {
  h = -1;
  Lh = 0;
  budget = 0;
  eps = 0;
  invMean = 0;
  hRow = 0;
  /** Swap partners found (buf.partners). */
  pc = 0;
  /** Replace candidates found (buf.candD / candS), -1 before the first use. */
  rc = -1;
  swapReady = false;
  canGrow = false;
  hasFreeSlot = false;
  /** Evict refill: -2 not computed yet, -1 none. */
  filler = -2;
  fillerLoad = 0;
  hs = -1;
  x = -1;
  rx = 0;
  wx = 0;
  /** Load per replica of x now and with one more replica, and their difference. */
  lx = 0;
  lxNew = 0;
  dx = 0;
  /** Highest load of x's holders once x has one more replica. */
  xHoldMax = 0;
  /** Replica loads of removing x from h: -1 when h held x before this plan (refund), else 0. */
  removeX = 0;
  canAddX = false;
  /** Best free-slot relocate / replicate target and score for x. */
  relSc = 0;
  relD = -1;
  repSc = 0;
  repD = -1;
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
  private readonly c = new ScanState();
  private readonly b = new BestMove();

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
   * (key, GPU, slot), whose key is below Lh (or tied with it, within eps). Merges `spare` (each expert's first candidate) with
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
        if (
          bi < 0 ||
          buf.streamKey[i]! < buf.streamKey[bi]! ||
          (buf.streamKey[i] === buf.streamKey[bi] && buf.streamTie[i]! < buf.streamTie[bi]!)
        )
          bi = i;
      }
      let key: number;
      let tie: number;
      let y: number;
      let fromStream: boolean;
      if (
        bi >= 0 &&
        (wy < 0 ||
          buf.streamKey[bi]! < spare.key[wy]! ||
          (buf.streamKey[bi] === spare.key[wy] && buf.streamTie[bi]! < spare.tie[wy]!))
      ) {
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
      // Keys tied with Lh (within eps) stay candidates: when y's worst holder also holds x it drops
      // with x's new replica, which scanReplaces checks exactly (a zero-heat y held by h was missed).
      if (!(key < Lh + this.c.eps)) break;
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
   * eviction. Hot path (every step of every plan): the scan state lives in `this.c` and the best
   * move so far in `this.b`, reused across calls, so a step allocates only the returned Move.
   */
  findBestMove(budget: number, minScore: number): Move | null {
    this.sync();
    if (!this.beginScan(budget, minScore)) return null;
    const c = this.c;
    const b = this.b;
    const hn = this.sortHotReplicas();
    const hOrder = this.buf.hOrder;
    for (let hi = 0; hi < hn; hi++) {
      this.beginReplica(hOrder[hi]!);
      // No move of x lowers h by more than lx (and scores divide by max(cost, 1)); slots are in
      // descending lx, so nothing further can win.
      if (!(c.lx * c.invMean > b.score)) break;
      if (c.hasFreeSlot) this.scanFreeSlots();
      // A swap with d lowers h by at most (Lh - Ld) / 2.
      if (c.pc > 0 && (c.Lh - this.st.load[this.buf.partners[0]!]!) * 0.5 * c.invMean > b.score) this.scanSwaps();
      if (c.canAddX && c.dx * c.invMean > b.score) this.scanReplaces();
      if (c.rx >= 2) this.scanEvict();
    }
    if (b.kind < 0) return null;
    return { kind: b.kind, h: c.h, hSlot: b.hs, x: b.x, d: b.d, dSlot: b.ds, y: b.y, score: b.score, cost: b.cost };
  }

  /** Set up the scan of the hottest GPU; false when the layer has no load to balance. */
  private beginScan(budget: number, minScore: number): boolean {
    const st = this.st;
    const c = this.c;
    const mean = st.meanLoad;
    if (!(mean > 0)) return false;
    const h = this.hot.top();
    if (h < 0) return false;
    const Lh = st.load[h]!;
    if (Lh <= 0) return false;
    c.h = h;
    c.Lh = Lh;
    c.budget = budget;
    c.eps = mean * 1e-9;
    c.invMean = 1 / mean;
    c.hRow = h * st.expertCount;
    // The coolest GPUs (excluding h), ascending by (load, index): swap partners.
    c.pc = this.cool.smallest(PARTNER_GPUS, h, this.buf.partners, this.buf.stack);
    c.rc = -1; // replace candidates, found on first use
    c.swapReady = false;
    c.canGrow = st.replicas < st.cap;
    c.hasFreeSlot = st.replicas < st.topo.totalSlots && this.free.min[1]! < Infinity;
    c.filler = -2; // -2: not computed yet; -1: none
    c.fillerLoad = 0;
    this.b.reset(minScore);
    return true;
  }

  /** h's slots by descending load per replica (stable: slot order among equals), into buf.hOrder. */
  private sortHotReplicas(): number {
    const { grid } = this.st;
    const S = this.st.topo.maxSlots;
    const hBase = this.c.h * S;
    const hOrder = this.buf.hOrder;
    const lr = this.lr;
    let hn = 0;
    for (let hs = 0; hs < this.st.topo.slotCount[this.c.h]!; hs++) {
      const x = grid[hBase + hs]!;
      if (x === EMPTY_SLOT) continue;
      let pos = hn++;
      while (pos > 0 && lr[grid[hBase + hOrder[pos - 1]!]!]! < lr[x]!) {
        hOrder[pos] = hOrder[pos - 1]!;
        pos -= 1;
      }
      hOrder[pos] = hs;
    }
    return hn;
  }

  /** Scan state for the replica x in slot hs of h. */
  private beginReplica(hs: number): void {
    const st = this.st;
    const c = this.c;
    const S = st.topo.maxSlots;
    const x = st.grid[c.h * S + hs]!;
    c.hs = hs;
    c.x = x;
    c.rx = st.r[x]!;
    c.wx = st.w[x]!;
    c.lx = this.lr[x]!;
    c.canAddX = c.rx < st.topo.activeGpuCount;
    c.lxNew = c.wx / (c.rx + 1);
    c.dx = c.lx - c.lxNew;
    let xHoldMax = -Infinity;
    for (let k = st.head[x]!; k >= 0; k = st.nextCell[k]!) {
      const v = st.load[Math.floor(k / S)]! - c.dx;
      if (v > xHoldMax) xHoldMax = v;
    }
    c.xHoldMax = xHoldMax;
    c.removeX = st.orig !== null && bitAt(st.orig, c.hRow + x) ? 0 : -1;
  }

  /** Replica loads of putting x on d: 0 when d held x before this plan. */
  private addCost(d: number, e: number): number {
    const orig = this.st.orig;
    return orig !== null && bitAt(orig, d * this.st.expertCount + e) ? 0 : 1;
  }

  /**
   * Relocate / replicate x into a free slot. Both scores fall with the target's load, so per kind
   * the best target is the least-loaded eligible GPU, and among equal scores the lowest index. GPUs
   * that held x before this plan (cost one load less) are checked one by one; the rest come from
   * the free-slot tree with h and x's holders blocked.
   */
  private scanFreeSlots(): void {
    const c = this.c;
    const relOk = c.removeX + 1 <= c.budget; // a GPU without x before
    const relOkOrig = c.removeX <= c.budget; // a GPU that held x before
    const repAllowed = c.canGrow && c.canAddX;
    const repOk = repAllowed && 1 <= c.budget;
    const repOkOrig = repAllowed && 0 <= c.budget;
    c.relSc = -Infinity;
    c.relD = -1;
    c.repSc = -Infinity;
    c.repD = -1;
    if (relOkOrig || repOkOrig) this.freeSlotsHeldBefore(relOkOrig, repOkOrig);
    if (relOk || repOk) this.freeSlotsFromTree(relOk, repOk);
    // Scan order: relocate to d, replicate to d, then the next d.
    const b = this.b;
    const relFirst = c.relD >= 0 && (c.repD < 0 || c.relD <= c.repD);
    for (let pass = 0; pass < 2; pass++) {
      if ((pass === 0) === relFirst) {
        if (c.relD >= 0 && c.relSc > b.score)
          b.set(c.relSc, MOVE_RELOCATE, c.hs, c.x, c.relD, -1, -1, this.addCost(c.relD, c.x) + c.removeX);
      } else if (c.repD >= 0 && c.repSc > b.score) {
        b.set(c.repSc, MOVE_REPLICATE, c.hs, c.x, c.repD, -1, -1, this.addCost(c.repD, c.x));
      }
    }
  }

  /** Free-slot targets among the GPUs that held x before this plan. */
  private freeSlotsHeldBefore(relOk: boolean, repOk: boolean): void {
    const st = this.st;
    const c = this.c;
    const { origStart, origList } = st;
    if (origStart === null || origList === null) return;
    const E = st.expertCount;
    const relFloor = c.Lh - c.lx;
    for (let k = origStart[c.x]!; k < origStart[c.x + 1]!; k++) {
      const d = origList[k]!;
      if (d === c.h || st.used[d]! >= st.topo.slotCount[d]! || bitAt(st.has, d * E + c.x)) continue;
      const Ld = st.load[d]!;
      if (relOk) {
        const gain = c.Lh - Math.max(relFloor, Ld + c.lx);
        const sc = gain * c.invMean;
        if (gain > c.eps && (sc > c.relSc || (sc === c.relSc && d < c.relD))) {
          c.relSc = sc;
          c.relD = d;
        }
      }
      if (repOk) {
        const gain = c.Lh - Math.max(c.xHoldMax, Ld + c.lxNew);
        const sc = gain * c.invMean;
        if (gain > c.eps && (sc > c.repSc || (sc === c.repSc && d < c.repD))) {
          c.repSc = sc;
          c.repD = d;
        }
      }
    }
  }

  /** Mark (1) or clear (0) h, x's holders and x's holders before this plan as blocked targets. */
  private blockHolders(v: number): void {
    const st = this.st;
    const c = this.c;
    const blocked = this.buf.blocked;
    const S = st.topo.maxSlots;
    blocked[c.h] = v;
    for (let k = st.head[c.x]!; k >= 0; k = st.nextCell[k]!) blocked[Math.floor(k / S)] = v;
    const { origStart, origList } = st;
    if (origStart !== null && origList !== null)
      for (let k = origStart[c.x]!; k < origStart[c.x + 1]!; k++) blocked[origList[k]!] = v;
  }

  /** Free-slot targets that did not hold x before: the least-loaded unblocked GPU, lowest index among equal scores. */
  private freeSlotsFromTree(relOk: boolean, repOk: boolean): void {
    const c = this.c;
    const blocked = this.buf.blocked;
    this.blockHolders(1);
    const Lmin = this.free.minUnblocked(blocked);
    if (Lmin < Infinity) {
      if (relOk) {
        const relFloor = c.Lh - c.lx;
        const gain = c.Lh - Math.max(relFloor, Lmin + c.lx);
        const sc = gain * c.invMean;
        if (gain > c.eps && sc >= c.relSc) {
          const d = this.free.leftmostScoring(c.Lh, relFloor, c.lx, c.invMean, c.eps, sc, blocked);
          if (d >= 0 && (sc > c.relSc || d < c.relD)) {
            c.relSc = sc;
            c.relD = d;
          }
        }
      }
      if (repOk) {
        const gain = c.Lh - Math.max(c.xHoldMax, Lmin + c.lxNew);
        const sc = gain * c.invMean;
        if (gain > c.eps && sc >= c.repSc) {
          const d = this.free.leftmostScoring(c.Lh, c.xHoldMax, c.lxNew, c.invMean, c.eps, sc, blocked);
          if (d >= 0 && (sc > c.repSc || d < c.repD)) {
            c.repSc = sc;
            c.repD = d;
          }
        }
      }
    }
    this.blockHolders(0);
  }

  /** Per swap partner: its replicas that h does not hold (slot, load per replica, x-independent cost). */
  private prepareSwaps(): void {
    const st = this.st;
    const c = this.c;
    const buf = this.buf;
    const { grid, has, orig } = st;
    const S = st.topo.maxSlots;
    const E = st.expertCount;
    c.swapReady = true;
    for (let p = 0; p < c.pc; p++) {
      const d = buf.partners[p]!;
      const dBase = d * S;
      const dRow = d * E;
      let n = p * S;
      let minCost = 2;
      for (let ds = 0; ds < st.topo.slotCount[d]!; ds++) {
        const y = grid[dBase + ds]!;
        if (y === EMPTY_SLOT || bitAt(has, c.hRow + y)) continue;
        buf.swapSlot[n] = ds;
        buf.swapLoad[n] = this.lr[y]!;
        const cy =
          (orig !== null && bitAt(orig, c.hRow + y) ? 0 : 1) + (orig !== null && bitAt(orig, dRow + y) ? 0 : -1);
        buf.swapCost[n] = cy;
        if (cy < minCost) minCost = cy;
        n += 1;
      }
      buf.swapCount[p] = n - p * S;
      buf.swapMinCost[p] = minCost;
    }
  }

  /** Swap x with a lighter replica on one of the coolest GPUs (at most 2 loads). */
  private scanSwaps(): void {
    const st = this.st;
    const c = this.c;
    const b = this.b;
    const buf = this.buf;
    if (!c.swapReady) this.prepareSwaps();
    const S = st.topo.maxSlots;
    const { Lh, lx, invMean, eps } = c;
    for (let p = 0; p < c.pc; p++) {
      const d = buf.partners[p]!;
      const Ld = st.load[d]!;
      if (!((Lh - Ld) * 0.5 * invMean > b.score)) break;
      if (st.holds(d, c.x)) continue;
      const costX = this.addCost(d, c.x) + c.removeX;
      // When every swap with d costs two loads, its score is at most (Lh - Ld) / 4 relative to
      // the mean (kept a hair above that so rounding can never make a skipped swap win).
      if (
        costX + buf.swapMinCost[p]! >= 2 &&
        !((Lh - Ld) * 0.25 * invMean * (1 + 1e-9) + Lh * 1e-12 * invMean > b.score)
      )
        continue;
      const from = p * S;
      const to = from + buf.swapCount[p]!;
      for (let k = from; k < to; k++) {
        const ly = buf.swapLoad[k]!;
        if (!(ly < lx)) continue;
        const cost = costX + buf.swapCost[k]!;
        if (cost > c.budget) continue;
        const gain = Lh - Math.max(Lh - lx + ly, Ld - ly + lx);
        if (!(gain > eps)) continue;
        const sc = (gain * invMean) / (cost > 1 ? cost : 1);
        if (sc > b.score) {
          const ds = buf.swapSlot[k]!;
          b.set(sc, MOVE_SWAP, c.hs, c.x, d, ds, st.grid[d * S + ds]!, cost);
        }
      }
    }
  }

  /** Replace one of the least useful redundant replicas elsewhere with a new replica of x. */
  private scanReplaces(): void {
    const st = this.st;
    const c = this.c;
    const b = this.b;
    if (c.rc < 0) c.rc = this.replaceCandidates(c.h, c.Lh);
    const S = st.topo.maxSlots;
    const { load, head, nextCell, orig } = st;
    for (let i = 0; i < c.rc; i++) {
      const d = this.buf.candD[i]!;
      if (st.holds(d, c.x)) continue;
      const ds = this.buf.candS[i]!;
      const y = st.grid[d * S + ds]!;
      const ly = this.lr[y]!;
      const cost = this.addCost(d, c.x) + (orig !== null && bitAt(orig, d * st.expertCount + y) ? 0 : -1);
      if (cost > c.budget) continue;
      let m = Math.max(c.xHoldMax, load[d]! - ly + c.lxNew);
      if (!(c.Lh - m > c.eps)) continue;
      const dy = st.w[y]! / (st.r[y]! - 1) - ly;
      for (let k = head[y]!; k >= 0; k = nextCell[k]!) {
        const g2 = Math.floor(k / S);
        if (g2 === d) continue;
        const v = load[g2]! + dy - (st.holds(g2, c.x) ? c.dx : 0);
        if (v > m) m = v;
      }
      const gain = c.Lh - m;
      if (!(gain > c.eps)) continue;
      const sc = (gain * c.invMean) / (cost > 1 ? cost : 1);
      if (sc > b.score) b.set(sc, MOVE_REPLACE, c.hs, c.x, d, ds, y, cost);
    }
  }

  /** The expert that adds least to h when refilling an evicted slot (lowest load per replica after the add). */
  private findFiller(): void {
    const c = this.c;
    const walker = this.buf.walker;
    c.filler = -1;
    c.fillerLoad = Infinity;
    walker.start(this.fill);
    for (let e = walker.next(); e >= 0; e = walker.next()) {
      if (bitAt(this.st.has, c.hRow + e)) continue;
      c.filler = e;
      c.fillerLoad = this.fill.key[e]!;
      return;
    }
  }

  /**
   * Drop a redundant replica of x from h. When the layer must stay full (no room under the replica
   * cap), refill the slot with the expert that adds least to h -- one replica load -- so plans that
   * fill every slot stay full.
   */
  private scanEvict(): void {
    const st = this.st;
    const c = this.c;
    let z = -1;
    let lzNew = 0;
    if (!c.canGrow) {
      if (c.filler === -2) this.findFiller();
      z = c.filler;
      lzNew = c.fillerLoad;
    }
    const cost = c.removeX + (z >= 0 ? this.addCost(c.h, z) : 0);
    if (!(c.canGrow || z >= 0) || cost > c.budget) return;
    const S = st.topo.maxSlots;
    const dxUp = c.wx / (c.rx - 1) - c.lx;
    let m = c.Lh - c.lx + lzNew;
    for (let k = st.head[c.x]!; k >= 0; k = st.nextCell[k]!) {
      const g2 = Math.floor(k / S);
      if (g2 === c.h) continue;
      const v = st.load[g2]! + dxUp;
      if (v > m) m = v;
    }
    const gain = c.Lh - m;
    if (!(gain > c.eps)) return;
    const sc = (gain * c.invMean) / (cost > 1 ? cost : 1);
    if (sc > this.b.score) this.b.set(sc, MOVE_EVICT, c.hs, c.x, -1, -1, z, cost);
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
export function improveLayer(
  search: LayerSearch,
  st: LayerState,
  budget: number,
  minScore: number,
  maxIterations: number,
): number {
  let spent = 0;
  for (let i = 0; i < maxIterations; i++) {
    const mv = search.findBestMove(budget - spent, minScore);
    if (mv === null) break;
    applyMove(st, mv);
    spent += mv.cost;
  }
  return spent;
}
