// From-scratch placement of one layer: replicate by highest load per replica, then pack replicas
// heaviest first onto the least-loaded GPU that has a free slot and does not hold that expert yet.

import { HeapWalker, IndexedHeap, sortIdsByKey } from "./heap.ts";
import type { LayerState, Topology } from "./state.ts";

/**
 * Replica count per expert: one each, then `total - E` more, each to the expert with the highest
 * load per replica (ties: fewer replicas, then lower id), never more than `maxPerExpert`.
 */
export function replicaCounts(
  w: ArrayLike<number>,
  total: number,
  maxPerExpert: number,
  heap: IndexedHeap = new IndexedHeap(w.length),
): Int32Array {
  const E = w.length;
  const r = new Int32Array(E).fill(1);
  let extra = total - E;
  if (extra <= 0 || maxPerExpert <= 1) return r;
  // Max-heap by (w/r desc, r asc, id asc): keys are negated loads per replica.
  for (let e = 0; e < E; e++) {
    heap.key[e] = -(w[e] as number);
    heap.tie[e] = 1;
  }
  heap.build(E);
  while (extra > 0 && heap.length > 0) {
    const e = heap.pop();
    r[e]! += 1;
    extra -= 1;
    if (r[e]! < maxPerExpert) heap.set(e, -((w[e] as number) / r[e]!), r[e]!);
  }
  return r;
}

/** Buffers for planLayerFresh, reusable across the layers of one topology and expert count. */
export class FreshScratch {
  readonly per: Float64Array;
  readonly order: Int32Array;
  readonly tmp: Int32Array;
  readonly packLoad: Float64Array;
  readonly used: Int32Array;
  readonly chosen: Int32Array;
  /** Replicas of expert e on node n: nodeHas[n * E + e] (all zero between layers). */
  readonly nodeHas: Int32Array;
  /** GPUs of node n: nodeList[nodeStart[n] .. nodeStart[n + 1]); localOf[g] = g's position there. */
  readonly nodeStart: Int32Array;
  readonly nodeList: Int32Array;
  readonly localOf: Int32Array;
  /** Per node, its GPUs with a free slot by (pack load, index), as local positions. */
  readonly gpuHeaps: IndexedHeap[];
  /** Nodes by their least-loaded GPU with a free slot (load, index): the global (load, index) order. */
  readonly nodeHeap: IndexedHeap;
  readonly walker = new HeapWalker();
  /** Experts by load per replica, for replicaCounts. */
  readonly experts: IndexedHeap;

  constructor(topo: Topology, expertCount: number) {
    this.experts = new IndexedHeap(expertCount);
    const G = topo.gpuCount;
    const N = topo.nodeCount;
    this.per = new Float64Array(expertCount);
    this.order = new Int32Array(expertCount);
    this.tmp = new Int32Array(expertCount);
    this.packLoad = new Float64Array(G);
    this.used = new Int32Array(G);
    this.chosen = new Int32Array(G);
    this.nodeHas = new Int32Array(N * expertCount);
    this.nodeStart = new Int32Array(N + 1);
    this.nodeList = new Int32Array(G);
    this.localOf = new Int32Array(G);
    for (let g = 0; g < G; g++) this.nodeStart[topo.nodeOf[g]! + 1]! += 1;
    for (let n = 0; n < N; n++) this.nodeStart[n + 1]! += this.nodeStart[n]!;
    const fill = this.nodeStart.slice(0, N);
    for (let g = 0; g < G; g++) {
      const n = topo.nodeOf[g]!;
      this.localOf[g] = fill[n]! - this.nodeStart[n]!;
      this.nodeList[fill[n]!++] = g;
    }
    this.gpuHeaps = [];
    for (let n = 0; n < N; n++) this.gpuHeaps.push(new IndexedHeap(this.nodeStart[n + 1]! - this.nodeStart[n]!));
    this.nodeHeap = new IndexedHeap(N);
  }

  /** The least-loaded GPU with a free slot on node n, or -1. */
  best(n: number): number {
    const local = this.gpuHeaps[n]!.top();
    return local < 0 ? -1 : this.nodeList[this.nodeStart[n]! + local]!;
  }

  /** Re-key node n after its GPU heap changed. */
  refresh(n: number): void {
    const g = this.best(n);
    if (g < 0) this.nodeHeap.remove(n);
    else this.nodeHeap.set(n, this.packLoad[g]!, g);
  }
}

/**
 * Fill an empty layer state from scratch. Replicas are packed heaviest first (ties: lower expert id)
 * onto the least-loaded GPU with a free slot that does not hold the expert; with topology "spread",
 * among GPUs tied at that load one on a node without the expert wins. Slots that stay free (the
 * rare case where every GPU with room already holds the expert) are then filled with the expert
 * whose load per replica drops most.
 */
export function planLayerFresh(
  st: LayerState,
  scratch: FreshScratch = new FreshScratch(st.topo, st.expertCount),
): void {
  const { gpuCount: G, maxSlots: S, slotCount, activeGpuCount, nodeOf, nodeCount, spread } = st.topo;
  const E = st.expertCount;
  const target = replicaCounts(st.w, Math.min(st.cap, totalSlots(slotCount)), activeGpuCount, scratch.experts);

  // Replicas heaviest first (load per replica descending, ties: lower expert id); an expert's
  // replicas all weigh the same, so ordering the experts orders the replicas.
  const { per, order, packLoad, used, chosen, nodeHas, localOf, gpuHeaps, nodeHeap, walker } = scratch;
  for (let e = 0; e < E; e++) {
    per[e] = -(st.w[e]! / target[e]!);
    order[e] = e;
  }
  sortIdsByKey(order, E, per, scratch.tmp);

  packLoad.fill(0);
  used.fill(0);
  for (let n = 0; n < nodeCount; n++) gpuHeaps[n]!.clear();
  for (let g = 0; g < G; g++) if (slotCount[g]! > 0) gpuHeaps[nodeOf[g]!]!.set(localOf[g]!, 0, g);
  for (let n = 0; n < nodeCount; n++) scratch.refresh(n);
  const slack = st.meanLoad * 1e-9;

  // An expert's replicas are consecutive in the order and no GPU holds it before, so while placing
  // them the GPUs already chosen for it are simply kept out of the heaps (and put back after).
  for (let i = 0; i < E; i++) {
    const x = order[i]!;
    const load = -per[x]!;
    if (target[x] === 1) {
      // One replica (most experts): no node holds x yet, so it takes the least-loaded GPU, which
      // is re-keyed in place instead of being taken out and put back.
      const n = nodeHeap.top();
      if (n < 0) continue;
      const g = scratch.best(n);
      st.grid[g * S + used[g]!] = x;
      used[g]! += 1;
      nodeHas[n * E + x]! += 1;
      packLoad[g]! += load;
      if (used[g]! < slotCount[g]!) gpuHeaps[n]!.set(localOf[g]!, packLoad[g]!, g);
      else gpuHeaps[n]!.remove(localOf[g]!);
      scratch.refresh(n);
      continue;
    }
    let cn = 0;
    for (let j = 0; j < target[x]!; j++) {
      const n0 = nodeHeap.top();
      if (n0 < 0) break; // every GPU with room holds x: leave the rest out
      let g = scratch.best(n0);
      if (spread && nodeHas[n0 * E + x] !== 0) {
        // Among GPUs tied with the least-loaded one (within `slack`), the first in (load, index)
        // order on a node without x: the best GPU of the first such node.
        const bound = packLoad[g]! + slack;
        walker.start(nodeHeap);
        for (let n = walker.next(); n >= 0; n = walker.next()) {
          if (nodeHas[n * E + x] !== 0) continue;
          const other = scratch.best(n);
          if (packLoad[other]! <= bound) g = other;
          break;
        }
      }
      const n = nodeOf[g]!;
      gpuHeaps[n]!.remove(localOf[g]!);
      scratch.refresh(n);
      st.grid[g * S + used[g]!] = x;
      used[g]! += 1;
      nodeHas[n * E + x]! += 1;
      packLoad[g]! += load;
      chosen[cn++] = g;
    }
    for (let k = 0; k < cn; k++) {
      const g = chosen[k]!;
      if (used[g]! < slotCount[g]!) {
        gpuHeaps[nodeOf[g]!]!.set(localOf[g]!, packLoad[g]!, g);
        scratch.refresh(nodeOf[g]!);
      }
    }
  }
  finishLayer(st, scratch);
}

/** Reset the scratch's node counts, derive the state from the packed grid, fill what is left. */
function finishLayer(st: LayerState, scratch: FreshScratch): void {
  const { gpuCount: G, maxSlots: S, nodeOf } = st.topo;
  const E = st.expertCount;
  const { used, nodeHas } = scratch;
  // Leave nodeHas all zero for the next layer (touching only what this one set).
  for (let g = 0; g < G; g++) {
    for (let k = 0; k < used[g]!; k++) nodeHas[nodeOf[g]! * E + st.grid[g * S + k]!] = 0;
  }
  st.rebuild();
  fillFreeSlots(st);
}

function totalSlots(slotCount: Int32Array): number {
  let s = 0;
  for (let g = 0; g < slotCount.length; g++) s += slotCount[g]!;
  return s;
}

/**
 * Fill free slots (up to the layer's replica cap). Each slot takes the expert whose per-replica load
 * drops most without lifting this GPU above the layer's hottest GPU; a slot where every candidate
 * would do that stays empty (an empty slot costs nothing; a harmful replica costs balance).
 */
export function fillFreeSlots(st: LayerState): number {
  const { gpuCount: G, slotCount, activeGpuCount } = st.topo;
  const E = st.expertCount;
  let added = 0;
  for (let g = 0; g < G && st.replicas < st.cap; g++) {
    while (st.used[g]! < slotCount[g]! && st.replicas < st.cap) {
      let maxLoad = 0;
      for (let k = 0; k < G; k++) if (st.load[k]! > maxLoad) maxLoad = st.load[k]!;
      let bestE = -1;
      let bestGain = -1;
      for (let e = 0; e < E; e++) {
        if (st.holds(g, e) || st.r[e]! >= activeGpuCount) continue;
        const re = st.r[e]!;
        const add = st.w[e]! / (re + 1);
        if (st.load[g]! + add > maxLoad) continue;
        const gain = re > 0 ? st.w[e]! / re - add : Infinity;
        if (gain > bestGain) {
          bestGain = gain;
          bestE = e;
        }
      }
      if (bestE < 0) break;
      st.add(g, bestE);
      added += 1;
    }
  }
  return added;
}
