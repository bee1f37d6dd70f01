// Mutable per-layer working state of the planner, on typed arrays. Internal to the placement core.

import { EMPTY_SLOT } from "./types.ts";

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
  /** has[g * E + e] = 1 when GPU g holds expert e. */
  readonly has: Uint8Array;
  /** Membership in the current (already loaded) placement; null when planning from scratch. */
  orig: Uint8Array | null = null;
  /** Replicas of expert e on node n: nodeHas[n * E + e]. */
  readonly nodeHas: Int32Array;
  replicas = 0;
  /** Max replicas in this layer (E + redundant slots, bounded by slots). */
  readonly cap: number;
  /** Sum of heat / active GPUs: the mean GPU load once every expert is placed. */
  readonly meanLoad: number;

  constructor(topo: Topology, heatRow: ReadonlyArray<number>, cap: number) {
    this.topo = topo;
    const E = heatRow.length;
    this.expertCount = E;
    this.w = Float64Array.from(heatRow);
    this.r = new Int32Array(E);
    this.load = new Float64Array(topo.gpuCount);
    this.grid = new Int32Array(topo.gpuCount * Math.max(1, topo.maxSlots)).fill(EMPTY_SLOT);
    this.used = new Int32Array(topo.gpuCount);
    this.has = new Uint8Array(topo.gpuCount * E);
    this.nodeHas = new Int32Array(topo.nodeCount * E);
    this.cap = cap;
    let sum = 0;
    for (let e = 0; e < E; e++) sum += this.w[e]!;
    this.meanLoad = topo.activeGpuCount > 0 ? sum / topo.activeGpuCount : 0;
  }

  /** Recompute r, has, used, nodeHas, load and replicas from `grid` (dropping duplicates on a GPU). */
  rebuild(): void {
    const { gpuCount, maxSlots, slotCount, nodeOf } = this.topo;
    const E = this.expertCount;
    this.r.fill(0);
    this.has.fill(0);
    this.used.fill(0);
    this.nodeHas.fill(0);
    this.replicas = 0;
    for (let g = 0; g < gpuCount; g++) {
      const base = g * maxSlots;
      for (let s = 0; s < maxSlots; s++) {
        const e = this.grid[base + s]!;
        if (e === EMPTY_SLOT) continue;
        if (s >= slotCount[g]! || e < 0 || e >= E || this.has[g * E + e]) {
          this.grid[base + s] = EMPTY_SLOT;
          continue;
        }
        this.has[g * E + e] = 1;
        this.r[e]! += 1;
        this.used[g]! += 1;
        this.nodeHas[nodeOf[g]! * E + e]! += 1;
        this.replicas += 1;
      }
    }
    this.recomputeLoads();
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
    const E = this.expertCount;
    const G = this.topo.gpuCount;
    for (let g = 0, idx = e; g < G; g++, idx += E) {
      if (g !== skip && this.has[idx]) this.load[g]! += delta;
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
    if (s < 0 || this.grid[base + s] !== EMPTY_SLOT || this.has[g * E + e]) {
      throw new Error(`placement state: cannot add expert ${e} to GPU ${g} slot ${s}`);
    }
    const oldR = this.r[e]!;
    this.shiftHolders(e, oldR, oldR + 1, -1);
    this.grid[base + s] = e;
    this.has[g * E + e] = 1;
    this.r[e] = oldR + 1;
    this.used[g]! += 1;
    this.nodeHas[this.topo.nodeOf[g]! * E + e]! += 1;
    this.replicas += 1;
    this.load[g]! += this.w[e]! / (oldR + 1);
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
    this.has[g * E + e] = 0;
    this.r[e] = oldR - 1;
    this.used[g]! -= 1;
    this.nodeHas[this.topo.nodeOf[g]! * E + e]! -= 1;
    this.replicas -= 1;
    this.shiftHolders(e, oldR, oldR - 1, g);
    return e;
  }

  slotOf(g: number, e: number): number {
    const base = g * this.topo.maxSlots;
    for (let s = 0; s < this.topo.slotCount[g]!; s++) if (this.grid[base + s] === e) return s;
    return -1;
  }

  /** Replica loads that adding e to g costs (0 when it was there before this plan). */
  addCost(g: number, e: number): number {
    return this.orig !== null && this.orig[g * this.expertCount + e] ? 0 : 1;
  }

  /** Replica loads that removing e from g saves (-1 when it was added by this plan). */
  removeCost(g: number, e: number): number {
    return this.orig !== null && this.orig[g * this.expertCount + e] ? 0 : -1;
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
