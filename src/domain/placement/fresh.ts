// From-scratch placement of one layer: replicate by highest load per replica, then pack replicas
// heaviest first onto the least-loaded GPU that has a free slot and does not hold that expert yet.

import type { LayerState } from "./state.ts";

/** Binary min-heap of indices ordered by (key[i], i). */
class IndexMinHeap {
  private readonly items: Int32Array;
  private size = 0;
  private readonly key: Float64Array;

  constructor(capacity: number, key: Float64Array) {
    this.items = new Int32Array(Math.max(1, capacity));
    this.key = key;
  }

  get length(): number {
    return this.size;
  }

  private less(a: number, b: number): boolean {
    const ka = this.key[a]!;
    const kb = this.key[b]!;
    return ka < kb || (ka === kb && a < b);
  }

  push(i: number): void {
    let pos = this.size++;
    this.items[pos] = i;
    while (pos > 0) {
      const parent = (pos - 1) >> 1;
      const p = this.items[parent]!;
      if (!this.less(i, p)) break;
      this.items[pos] = p;
      pos = parent;
    }
    this.items[pos] = i;
  }

  pop(): number {
    const top = this.items[0]!;
    const last = this.items[--this.size]!;
    let pos = 0;
    const n = this.size;
    for (;;) {
      let child = 2 * pos + 1;
      if (child >= n) break;
      const right = child + 1;
      if (right < n && this.less(this.items[right]!, this.items[child]!)) child = right;
      if (!this.less(this.items[child]!, last)) break;
      this.items[pos] = this.items[child]!;
      pos = child;
    }
    if (n > 0) this.items[pos] = last;
    return top;
  }
}

/**
 * Replica count per expert: one each, then `total - E` more, each to the expert with the highest
 * load per replica (ties: fewer replicas, then lower id), never more than `maxPerExpert`.
 */
export function replicaCounts(w: ArrayLike<number>, total: number, maxPerExpert: number): Int32Array {
  const E = w.length;
  const r = new Int32Array(E).fill(1);
  let extra = total - E;
  if (extra <= 0 || maxPerExpert <= 1) return r;
  // Max-heap by (w/r desc, r asc, id asc), stored as an array of expert ids.
  const heap: number[] = [];
  const better = (a: number, b: number): boolean => {
    const pa = (w[a] as number) / r[a]!;
    const pb = (w[b] as number) / r[b]!;
    if (pa !== pb) return pa > pb;
    if (r[a] !== r[b]) return r[a]! < r[b]!;
    return a < b;
  };
  const push = (e: number): void => {
    let pos = heap.length;
    heap.push(e);
    while (pos > 0) {
      const parent = (pos - 1) >> 1;
      if (!better(e, heap[parent]!)) break;
      heap[pos] = heap[parent]!;
      pos = parent;
    }
    heap[pos] = e;
  };
  const pop = (): number => {
    const top = heap[0]!;
    const last = heap.pop()!;
    if (heap.length > 0) {
      let pos = 0;
      for (;;) {
        let child = 2 * pos + 1;
        if (child >= heap.length) break;
        if (child + 1 < heap.length && better(heap[child + 1]!, heap[child]!)) child += 1;
        if (!better(heap[child]!, last)) break;
        heap[pos] = heap[child]!;
        pos = child;
      }
      heap[pos] = last;
    }
    return top;
  };
  for (let e = 0; e < E; e++) push(e);
  while (extra > 0 && heap.length > 0) {
    const e = pop();
    r[e]! += 1;
    extra -= 1;
    if (r[e]! < maxPerExpert) push(e);
  }
  return r;
}

/**
 * Fill an empty layer state from scratch. Replicas are packed heaviest first (ties: lower expert id)
 * onto the least-loaded GPU with a free slot that does not hold the expert; with topology "spread",
 * among GPUs tied at that load one on a node without the expert wins. Slots that stay free (the
 * rare case where every GPU with room already holds the expert) are then filled with the expert
 * whose load per replica drops most.
 */
export function planLayerFresh(st: LayerState): void {
  const { gpuCount: G, maxSlots: S, slotCount, activeGpuCount, nodeOf, spread } = st.topo;
  const E = st.expertCount;
  const target = replicaCounts(st.w, Math.min(st.cap, totalSlots(slotCount)), activeGpuCount);

  // Replica list sorted by load per replica, descending.
  let n = 0;
  for (let e = 0; e < E; e++) n += target[e]!;
  const replicaExpert = new Int32Array(n);
  const replicaLoad = new Float64Array(n);
  let k = 0;
  for (let e = 0; e < E; e++) {
    const per = st.w[e]! / target[e]!;
    for (let j = 0; j < target[e]!; j++) {
      replicaExpert[k] = e;
      replicaLoad[k] = per;
      k += 1;
    }
  }
  const order = Array.from({ length: n }, (_, i) => i);
  order.sort((a, b) => replicaLoad[b]! - replicaLoad[a]! || replicaExpert[a]! - replicaExpert[b]! || a - b);

  const packLoad = new Float64Array(G);
  const used = new Int32Array(G);
  const heap = new IndexMinHeap(G, packLoad);
  for (let g = 0; g < G; g++) if (slotCount[g]! > 0) heap.push(g);
  const nodeHas = new Int32Array(st.topo.nodeCount * E);
  const held = new Uint8Array(G * E);
  const aside: number[] = [];
  const slack = st.meanLoad * 1e-9;

  for (const i of order) {
    const x = replicaExpert[i]!;
    let chosen = -1;
    let bound = Infinity;
    aside.length = 0;
    while (heap.length > 0) {
      const g = heap.pop();
      if (held[g * E + x]) {
        aside.push(g);
        continue;
      }
      if (chosen < 0) {
        chosen = g;
        if (!spread || nodeHas[nodeOf[g]! * E + x] === 0) break;
        bound = packLoad[g]! + slack;
        continue;
      }
      if (packLoad[g]! > bound) {
        aside.push(g);
        break;
      }
      if (nodeHas[nodeOf[g]! * E + x] === 0) {
        aside.push(chosen);
        chosen = g;
        break;
      }
      aside.push(g);
    }
    for (const g of aside) heap.push(g);
    if (chosen < 0) continue; // every GPU with room holds x: leave this replica out
    st.grid[chosen * S + used[chosen]!] = x;
    used[chosen]! += 1;
    held[chosen * E + x] = 1;
    nodeHas[nodeOf[chosen]! * E + x]! += 1;
    packLoad[chosen]! += replicaLoad[i]!;
    if (used[chosen]! < slotCount[chosen]!) heap.push(chosen);
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
        if (st.has[g * E + e] || st.r[e]! >= activeGpuCount) continue;
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
