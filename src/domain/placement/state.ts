// Mutable per-layer working state of the planner, on typed arrays. Internal to the placement core.

import { EMPTY_SLOT } from "./types.ts";

/** Bit i of a bitset kept in 32-bit words (0 or 1). */
export function bitAt(bits: Int32Array, i: number): number {
  return (bits[i >>> 5]! >>> (i & 31)) & 1;
}

function setBit(bits: Int32Array, i: number): void {
  bits[i >>> 5]! |= 1 << (i & 31);
}

function clearBit(bits: Int32Array, i: number): void {
  bits[i >>> 5]! &= ~(1 << (i & 31));
}

/** GPU topology shared by all layers of one plan. */
export interface Topology {
  /** GPUs in rank order. */
  readonly gpuCount: number;
  /** GPUs with at least one slot. */
  readonly activeGpuCount: number;
  /** Effective slots per GPU (after memory limits). */
  readonly slotCount: Int32Array;
  /** Sum of effective slots over GPUs. */
  readonly totalSlots: number;
  /** Max slots over GPUs: the stride of `grid`. */
  readonly maxSlots: number;
  readonly nodeOf: Int32Array;
  readonly domainOf: Int32Array;
  readonly nodeCount: number;
  readonly domainCount: number;
  readonly spread: boolean;
}

/**
 * One layer's working placement. Memory is O(slots + experts) plus two GPU x expert bitsets, so
 * large clusters (many GPUs, few slots each) cost about as much per replica as small ones.
 */
export class LayerState {
  readonly topo: Topology;
  readonly expertCount: number;
  /** Heat per expert. */
  readonly w: Float64Array;
  /** Replicas per expert. */
  readonly r: Int32Array;
  /** Load per GPU (w / r summed over the GPU's replicas). */
  readonly load: Float64Array;
  /** grid[g * maxSlots + slot] = expert or EMPTY_SLOT. */
  readonly grid: Int32Array;
  /** Non-empty slots per GPU. */
  readonly used: Int32Array;
  /** Bitset: bit g * E + e is set when GPU g holds expert e (see `bitAt`). */
  readonly has: Int32Array;
  /** Bitset of the membership in the current (already loaded) placement; null when planning from scratch. */
  orig: Int32Array | null = null;
  /** Original holders of expert e: origList[origStart[e] .. origStart[e + 1]) (set with `orig`). */
  origStart: Int32Array | null = null;
  origList: Int32Array | null = null;
  replicas = 0;
  /** Max replicas in this layer (E + redundant slots, bounded by slots). */
  cap = 0;
  /** Sum of heat / active GPUs: the mean GPU load once every expert is placed. */
  meanLoad = 0;
  /**
   * Holder lists: the cells (g * maxSlots + slot) holding expert e form a doubly linked list from
   * head[e] through nextCell / prevCell (-1 ends it), so an expert's holders cost O(replicas).
   */
  readonly head: Int32Array;
  readonly nextCell: Int32Array;
  readonly prevCell: Int32Array;
  /**
   * Change log for an attached search index (see improve.ts): GPUs whose load or used slots
   * changed and experts whose replica count changed since the last `clearChanges`. Off by default.
   */
  tracking = false;
  readonly gpuChanged: Uint8Array;
  readonly changedGpus: Int32Array;
  changedGpuCount = 0;
  readonly expertChanged: Uint8Array;
  readonly changedExperts: Int32Array;
  changedExpertCount = 0;

  constructor(topo: Topology, heatRow: ReadonlyArray<number>, cap: number) {
    this.topo = topo;
    const E = heatRow.length;
    const G = topo.gpuCount;
    const cells = G * Math.max(1, topo.maxSlots);
    this.expertCount = E;
    this.w = new Float64Array(E);
    this.r = new Int32Array(E);
    this.load = new Float64Array(G);
    this.grid = new Int32Array(cells);
    this.used = new Int32Array(G);
    this.has = new Int32Array(((G * E) >>> 5) + 1);
    this.head = new Int32Array(E);
    this.nextCell = new Int32Array(cells);
    this.prevCell = new Int32Array(cells);
    this.gpuChanged = new Uint8Array(G);
    this.changedGpus = new Int32Array(G);
    this.expertChanged = new Uint8Array(E);
    this.changedExperts = new Int32Array(E);
    this.reset(heatRow, cap);
  }

  /** Start over, empty, for another layer's heat (same topology and expert count). */
  reset(heatRow: ReadonlyArray<number>, cap: number): void {
    const E = this.expertCount;
    if (heatRow.length !== E) throw new Error(`placement state: heat row has ${heatRow.length} experts, expected ${E}`);
    let sum = 0;
    for (let e = 0; e < E; e++) {
      const v = heatRow[e]!;
      this.w[e] = v;
      sum += v;
    }
    this.cap = cap;
    this.meanLoad = this.topo.activeGpuCount > 0 ? sum / this.topo.activeGpuCount : 0;
    this.r.fill(0);
    this.load.fill(0);
    this.grid.fill(EMPTY_SLOT);
    this.used.fill(0);
    this.has.fill(0);
    this.head.fill(-1);
    this.replicas = 0;
    this.orig = null;
    this.origStart = null;
    this.origList = null;
    this.tracking = false;
    this.clearChanges();
  }

  /** Whether GPU g holds expert e. */
  holds(g: number, e: number): boolean {
    return bitAt(this.has, g * this.expertCount + e) !== 0;
  }

  /** Recompute r, has, used, holder lists, load and replicas from `grid` (dropping duplicates on a GPU). */
  rebuild(): void {
    const { gpuCount, maxSlots, slotCount } = this.topo;
    const E = this.expertCount;
    this.r.fill(0);
    this.has.fill(0);
    this.used.fill(0);
    this.head.fill(-1);
    this.replicas = 0;
    for (let g = 0; g < gpuCount; g++) {
      const base = g * maxSlots;
      for (let s = 0; s < maxSlots; s++) {
        const e = this.grid[base + s]!;
        if (e === EMPTY_SLOT) continue;
        if (s >= slotCount[g]! || e < 0 || e >= E || bitAt(this.has, g * E + e)) {
          this.grid[base + s] = EMPTY_SLOT;
          continue;
        }
        setBit(this.has, g * E + e);
        this.r[e]! += 1;
        this.used[g]! += 1;
        this.replicas += 1;
        this.link(base + s, e);
      }
    }
    this.recomputeLoads();
    if (this.tracking) {
      for (let g = 0; g < gpuCount; g++) this.gpuChangedAt(g);
      for (let e = 0; e < E; e++) this.expertChangedAt(e);
    }
  }

  private link(cell: number, e: number): void {
    const first = this.head[e]!;
    this.prevCell[cell] = -1;
    this.nextCell[cell] = first;
    if (first >= 0) this.prevCell[first] = cell;
    this.head[e] = cell;
  }

  private unlink(cell: number, e: number): void {
    const prev = this.prevCell[cell]!;
    const next = this.nextCell[cell]!;
    if (prev >= 0) this.nextCell[prev] = next;
    else this.head[e] = next;
    if (next >= 0) this.prevCell[next] = prev;
  }

  private gpuChangedAt(g: number): void {
    if (this.gpuChanged[g]) return;
    this.gpuChanged[g] = 1;
    this.changedGpus[this.changedGpuCount++] = g;
  }

  private expertChangedAt(e: number): void {
    if (this.expertChanged[e]) return;
    this.expertChanged[e] = 1;
    this.changedExperts[this.changedExpertCount++] = e;
  }

  /** Forget the change log (after an attached index has caught up). */
  clearChanges(): void {
    for (let i = 0; i < this.changedGpuCount; i++) this.gpuChanged[this.changedGpus[i]!] = 0;
    for (let i = 0; i < this.changedExpertCount; i++) this.expertChanged[this.changedExperts[i]!] = 0;
    this.changedGpuCount = 0;
    this.changedExpertCount = 0;
  }

  recomputeLoads(): void {
    const { gpuCount, maxSlots } = this.topo;
    for (let g = 0; g < gpuCount; g++) {
      let sum = 0;
      const base = g * maxSlots;
      for (let s = 0; s < maxSlots; s++) {
        const e = this.grid[base + s]!;
        if (e !== EMPTY_SLOT) sum += this.w[e]! / this.r[e]!;
      }
      this.load[g] = sum;
    }
  }

  /** Spread every holder's load change when expert e goes from oldR to newR replicas (excluding GPU skip). */
  private shiftHolders(e: number, oldR: number, newR: number, skip: number): void {
    if (oldR <= 0 || newR <= 0) return;
    const delta = this.w[e]! / newR - this.w[e]! / oldR;
    if (delta === 0) return;
    const S = this.topo.maxSlots;
    for (let c = this.head[e]!; c >= 0; c = this.nextCell[c]!) {
      const g = Math.floor(c / S);
      if (g === skip) continue;
      this.load[g]! += delta;
      if (this.tracking) this.gpuChangedAt(g);
    }
  }

  /** Put expert e on GPU g (first empty slot unless given). Returns the slot. */
  add(g: number, e: number, slot = -1): number {
    const E = this.expertCount;
    const base = g * this.topo.maxSlots;
    let s = slot;
    if (s < 0) {
      for (let i = 0; i < this.topo.slotCount[g]!; i++) {
        if (this.grid[base + i] === EMPTY_SLOT) {
          s = i;
          break;
        }
      }
    }
    if (s < 0 || this.grid[base + s] !== EMPTY_SLOT || bitAt(this.has, g * E + e)) {
      throw new Error(`placement state: cannot add expert ${e} to GPU ${g} slot ${s}`);
    }
    const oldR = this.r[e]!;
    this.shiftHolders(e, oldR, oldR + 1, -1);
    this.grid[base + s] = e;
    setBit(this.has, g * E + e);
    this.link(base + s, e);
    this.r[e] = oldR + 1;
    this.used[g]! += 1;
    this.replicas += 1;
    this.load[g]! += this.w[e]! / (oldR + 1);
    if (this.tracking) {
      this.gpuChangedAt(g);
      this.expertChangedAt(e);
    }
    return s;
  }

  /** Empty slot `slot` of GPU g. Returns the expert that was there. */
  removeAt(g: number, slot: number): number {
    const E = this.expertCount;
    const idx = g * this.topo.maxSlots + slot;
    const e = this.grid[idx]!;
    if (e === EMPTY_SLOT) throw new Error(`placement state: GPU ${g} slot ${slot} is already empty`);
    const oldR = this.r[e]!;
    this.load[g]! -= this.w[e]! / oldR;
    this.grid[idx] = EMPTY_SLOT;
    clearBit(this.has, g * E + e);
    this.unlink(idx, e);
    this.r[e] = oldR - 1;
    this.used[g]! -= 1;
    this.replicas -= 1;
    this.shiftHolders(e, oldR, oldR - 1, g);
    if (this.tracking) {
      this.gpuChangedAt(g);
      this.expertChangedAt(e);
    }
    return e;
  }

  slotOf(g: number, e: number): number {
    const base = g * this.topo.maxSlots;
    for (let s = 0; s < this.topo.slotCount[g]!; s++) if (this.grid[base + s] === e) return s;
    return -1;
  }

  /** Record the current membership as "already loaded" (orig) with per-expert holder lists. */
  markOriginal(): void {
    const E = this.expertCount;
    this.orig = this.has.slice();
    const start = new Int32Array(E + 1);
    for (let e = 0; e < E; e++) start[e + 1] = start[e]! + this.r[e]!;
    const list = new Int32Array(start[E]!);
    const S = this.topo.maxSlots;
    for (let e = 0; e < E; e++) {
      let k = start[e]!;
      for (let c = this.head[e]!; c >= 0; c = this.nextCell[c]!) list[k++] = Math.floor(c / S);
    }
    this.origStart = start;
    this.origList = list;
  }

  /** The layer's slots as arrays per GPU, for the output placement. */
  toSlots(): number[][] {
    const { gpuCount, maxSlots, slotCount } = this.topo;
    const out: number[][] = [];
    for (let g = 0; g < gpuCount; g++) {
      const base = g * maxSlots;
      const n = slotCount[g]!;
      const slots = new Array<number>(n);
      for (let i = 0; i < n; i++) slots[i] = this.grid[base + i]!;
      out.push(slots);
    }
    return out;
  }
}
