// planPlacement: heat + GPUs + current placement -> new placement (or unchanged / infeasible).
// Algorithm and rationale: docs/adr/0002-placement-algorithm.md.

import { placementHash } from "./hash.ts";
import { applyMove, createScratch, findBestMove, improveLayer } from "./improve.ts";
import type { Move } from "./improve.ts";
import { fillFreeSlots, planLayerFresh } from "./fresh.ts";
import { computePlacementMetrics, countMovedReplicas, countReplicas } from "./metrics.ts";
import { LayerState } from "./state.ts";
import type { Topology } from "./state.ts";
import type {
  GpuSlotInfo,
  Placement,
  PlacementGpu,
  PlacementInput,
  PlacementOutcome,
  PlacementPolicy,
} from "./types.ts";

/** Default PlacementPolicy.minGainPerMove: 0.5% of the layer's mean GPU load per replica loaded. */
export const DEFAULT_MIN_GAIN_PER_MOVE = 0.005;
/** Local-search threshold after a from-scratch pack (moves are free there). */
const FRESH_MIN_SCORE = 1e-4;

type Infeasible = Extract<PlacementOutcome, { kind: "infeasible" }>;

function infeasible(constraint: Infeasible["constraint"], reason: string): Infeasible {
  return { kind: "infeasible", constraint, reason };
}

function validateInput(input: PlacementInput): Infeasible | null {
  const { heat, gpus, policy } = input;
  if (!Array.isArray(heat) || heat.length === 0) return infeasible("input", "heat must have at least one MoE layer");
  const E = heat[0]?.length ?? 0;
  if (E === 0) return infeasible("input", "heat must have at least one expert per layer");
  for (let l = 0; l < heat.length; l++) {
    const row = heat[l]!;
    if (row.length !== E) {
      return infeasible("input", `heat rows must all have ${E} experts (layer 0) but layer ${l} has ${row.length}`);
    }
    for (let e = 0; e < E; e++) {
      const v = row[e]!;
      if (typeof v !== "number" || !Number.isFinite(v) || v < 0) {
        return infeasible("input", `heat[${l}][${e}] is ${String(v)}: heat must be finite and >= 0`);
      }
    }
  }
  const seen = new Set<string>();
  for (let g = 0; g < gpus.length; g++) {
    const gpu = gpus[g]!;
    if (seen.has(gpu.gpuId)) return infeasible("input", `gpus[${g}].gpuId "${gpu.gpuId}" appears twice`);
    seen.add(gpu.gpuId);
    if (!Number.isInteger(gpu.slotCount) || gpu.slotCount < 0) {
      return infeasible("input", `gpus[${g}] ("${gpu.gpuId}") slotCount must be an integer >= 0, got ${gpu.slotCount}`);
    }
    if (gpu.memoryBytes !== undefined && !(gpu.memoryBytes >= 0)) {
      return infeasible("input", `gpus[${g}] ("${gpu.gpuId}") memoryBytes must be >= 0`);
    }
  }
  const checks: Array<[keyof PlacementPolicy, number | undefined, boolean]> = [
    ["maxMoveFraction", policy.maxMoveFraction, true],
    ["minBalancednessGain", policy.minBalancednessGain, true],
    ["minGainPerMove", policy.minGainPerMove, false],
    ["redundantSlots", policy.redundantSlots, false],
    ["bytesPerExpertReplica", policy.bytesPerExpertReplica, false],
  ];
  for (const [name, value, required] of checks) {
    if (value === undefined && !required) continue;
    if (typeof value !== "number" || Number.isNaN(value) || value < 0) {
      return infeasible("input", `policy.${name} must be a number >= 0, got ${String(value)}`);
    }
  }
  if (policy.redundantSlots !== undefined && Number.isFinite(policy.redundantSlots) && !Number.isInteger(policy.redundantSlots)) {
    return infeasible("input", `policy.redundantSlots must be an integer, got ${policy.redundantSlots}`);
  }
  return null;
}

function buildTopology(gpus: readonly GpuSlotInfo[], slotCount: Int32Array, spread: boolean): Topology {
  const nodeIds = new Map<string, number>();
  const domainIds = new Map<string, number>();
  const nodeOf = new Int32Array(gpus.length);
  const domainOf = new Int32Array(gpus.length);
  let maxSlots = 0;
  let active = 0;
  let totalSlots = 0;
  gpus.forEach((gpu, g) => {
    let n = nodeIds.get(gpu.nodeName);
    if (n === undefined) nodeIds.set(gpu.nodeName, (n = nodeIds.size));
    const domain = gpu.domain ?? "";
    let d = domainIds.get(domain);
    if (d === undefined) domainIds.set(domain, (d = domainIds.size));
    nodeOf[g] = n;
    domainOf[g] = d;
    maxSlots = Math.max(maxSlots, slotCount[g]!);
    if (slotCount[g]! > 0) active += 1;
    totalSlots += slotCount[g]!;
  });
  return {
    gpuCount: gpus.length,
    activeGpuCount: active,
    slotCount,
    totalSlots,
    maxSlots,
    nodeOf,
    domainOf,
    nodeCount: nodeIds.size,
    domainCount: domainIds.size,
    spread,
  };
}

function toPlacement(gpus: readonly PlacementGpu[], E: number, layers: number[][][]): Placement {
  return { version: 1, layerCount: layers.length, expertCount: E, gpus, layers };
}

/** Drop the redundant replica whose loss hurts least (lowest load per replica afterwards), from its hottest holder. */
function evictLeastUseful(st: LayerState): boolean {
  const E = st.expertCount;
  let y = -1;
  let yValue = Infinity;
  for (let e = 0; e < E; e++) {
    if (st.r[e]! < 2) continue;
    const v = st.w[e]! / (st.r[e]! - 1);
    if (v < yValue) {
      yValue = v;
      y = e;
    }
  }
  if (y < 0) return false;
  let holder = -1;
  for (let g = 0; g < st.topo.gpuCount; g++) {
    if (st.has[g * E + y] && (holder < 0 || st.load[g]! > st.load[holder]!)) holder = g;
  }
  st.removeAt(holder, st.slotOf(holder, y));
  return true;
}

/** Give a missing expert a replica: a free slot on the least-loaded GPU, else replace the least useful redundant replica. */
function placeMissing(st: LayerState, e: number): boolean {
  const { gpuCount: G, slotCount } = st.topo;
  if (st.replicas < st.cap) {
    let best = -1;
    for (let g = 0; g < G; g++) {
      if (st.used[g]! >= slotCount[g]!) continue;
      if (best < 0 || st.load[g]! < st.load[best]!) best = g;
    }
    if (best >= 0) {
      st.add(best, e);
      return true;
    }
  }
  if (!evictLeastUseful(st)) return false;
  return placeMissing(st, e);
}

interface HeapItem {
  score: number;
  layer: number;
  move: Move;
}

function heapBetter(a: HeapItem, b: HeapItem): boolean {
  return a.score > b.score || (a.score === b.score && a.layer < b.layer);
}

function heapPush(heap: HeapItem[], item: HeapItem): void {
  let pos = heap.length;
  heap.push(item);
  while (pos > 0) {
    const parent = (pos - 1) >> 1;
    if (!heapBetter(item, heap[parent]!)) break;
    heap[pos] = heap[parent]!;
    pos = parent;
  }
  heap[pos] = item;
}

function heapPop(heap: HeapItem[]): HeapItem {
  const top = heap[0]!;
  const last = heap.pop()!;
  if (heap.length > 0) {
    let pos = 0;
    for (;;) {
      let child = 2 * pos + 1;
      if (child >= heap.length) break;
      if (child + 1 < heap.length && heapBetter(heap[child + 1]!, heap[child]!)) child += 1;
      if (!heapBetter(heap[child]!, last)) break;
      heap[pos] = heap[child]!;
      pos = child;
    }
    heap[pos] = last;
  }
  return top;
}

/**
 * Plan where every expert replica of every MoE layer lives.
 *
 * Without a (shape-compatible) current placement: a from-scratch balanced plan. With one: start from
 * it, repair what no longer fits (GPUs gone, fewer slots, missing experts), then improve balance with
 * the fewest replica loads, within `policy.maxMoveFraction`; keep the current placement when the gain
 * is below `policy.minBalancednessGain` and nothing needed repair. Pure and deterministic.
 */
export function planPlacement(input: PlacementInput): PlacementOutcome {
  const invalid = validateInput(input);
  if (invalid) return invalid;
  const { heat, gpus, policy, current } = input;
  const L = heat.length;
  const E = heat[0]!.length;
  const notes: string[] = [];

  // Effective slots per GPU: memory may allow fewer than slotCount.
  const slotCount = new Int32Array(gpus.length);
  let rawSlots = 0;
  let memoryLimited = 0;
  const bytes = policy.bytesPerExpertReplica;
  gpus.forEach((gpu, g) => {
    rawSlots += gpu.slotCount;
    let slots = gpu.slotCount;
    if (bytes !== undefined && bytes > 0 && gpu.memoryBytes !== undefined) {
      const bySize = Math.floor(gpu.memoryBytes / (bytes * L));
      if (bySize < slots) {
        slots = bySize;
        memoryLimited += 1;
      }
    }
    slotCount[g] = slots;
  });
  let totalSlots = 0;
  for (let g = 0; g < slotCount.length; g++) totalSlots += slotCount[g]!;
  if (memoryLimited > 0) {
    notes.push(`memory limits ${memoryLimited} GPU(s) to fewer slots than slotCount (${bytes} bytes per replica x ${L} layers)`);
  }
  if (totalSlots < E) {
    if (rawSlots >= E && memoryLimited > 0) {
      return infeasible("memory",
        `every layer needs ${E} expert slots (one per expert) but GPU memory allows only ${totalSlots} of the ` +
        `${rawSlots} slots on ${gpus.length} GPU(s) (${bytes} bytes per replica x ${L} layers)`);
    }
    return infeasible("slots",
      `every layer needs ${E} expert slots (one per expert) but the ${gpus.length} GPU(s) offer ${totalSlots}`);
  }
  const cap = Math.min(totalSlots, E + (policy.redundantSlots ?? Infinity));
  const topo = buildTopology(gpus, slotCount, policy.topology !== "ignore");
  const placementGpus: PlacementGpu[] = gpus.map((gpu, g) => ({
    gpuId: gpu.gpuId,
    nodeName: gpu.nodeName,
    domain: gpu.domain ?? "",
    slotCount: slotCount[g]!,
  }));

  const compatible = current !== undefined && current.layerCount === L && current.expertCount === E
    && Array.isArray(current.layers) && current.layers.length === L;
  if (current !== undefined && !compatible) {
    notes.push(`current placement has shape ${current.layerCount}x${current.expertCount}, heat has ${L}x${E}: planned from scratch`);
  }

  if (!compatible) {
    const scratch = createScratch();
    const layers: number[][][] = [];
    for (let l = 0; l < L; l++) {
      const st = new LayerState(topo, heat[l]!, cap);
      planLayerFresh(st);
      improveLayer(st, Infinity, FRESH_MIN_SCORE, 2 * cap, scratch);
      fillFreeSlots(st);
      layers.push(st.toSlots());
    }
    const placement = toPlacement(placementGpus, E, layers);
    const moved = countMovedReplicas(current, placement);
    const replicas = countReplicas(placement);
    return {
      kind: "planned",
      mode: "fresh",
      placement,
      placementHash: placementHash(placement),
      metrics: computePlacementMetrics(placement, heat),
      previousMetrics: null,
      movedReplicas: moved,
      movedFraction: replicas > 0 ? moved / replicas : 0,
      repairMoves: 0,
      notes,
    };
  }

  // Incremental: map the current placement onto today's GPUs, then repair.
  const prevIndex = new Map<string, number>();
  current.gpus.forEach((gpu, g) => prevIndex.set(gpu.gpuId, g));
  let structural = current.gpus.length !== gpus.length
    || placementGpus.some((gpu, g) => {
      const before = current.gpus[g];
      return before === undefined || before.gpuId !== gpu.gpuId || before.slotCount !== gpu.slotCount
        || before.nodeName !== gpu.nodeName || before.domain !== gpu.domain;
    });
  const lostGpus = current.gpus.filter((gpu) => !gpus.some((x) => x.gpuId === gpu.gpuId)).length;
  if (lostGpus > 0) notes.push(`${lostGpus} GPU(s) of the current placement are gone`);

  const states: LayerState[] = [];
  let repairMoves = 0;
  let trimmed = 0;
  const S = topo.maxSlots;
  for (let l = 0; l < L; l++) {
    const st = new LayerState(topo, heat[l]!, cap);
    const layer = current.layers[l] ?? [];
    let before = 0;
    for (const slots of layer) for (const e of slots ?? []) if (Number.isInteger(e) && e >= 0 && e < E) before += 1;
    for (let g = 0; g < gpus.length; g++) {
      const pg = prevIndex.get(gpus[g]!.gpuId);
      if (pg === undefined) continue;
      const slots = layer[pg] ?? [];
      const n = Math.min(slots.length, slotCount[g]!);
      for (let s = 0; s < n; s++) {
        const e = slots[s]!;
        if (Number.isInteger(e) && e >= 0 && e < E) st.grid[g * S + s] = e;
      }
    }
    st.rebuild();
    if (st.replicas !== before) structural = true;
    st.orig = st.has.slice();
    while (st.replicas > cap) {
      if (!evictLeastUseful(st)) break;
      trimmed += 1;
      structural = true;
    }
    const missing: number[] = [];
    for (let e = 0; e < E; e++) if (st.r[e] === 0) missing.push(e);
    missing.sort((a, b) => st.w[b]! - st.w[a]! || a - b);
    for (const e of missing) {
      if (!placeMissing(st, e)) {
        return infeasible("slots", `layer ${l}: no slot can take expert ${e} (every slot holds an expert's only replica)`);
      }
      repairMoves += 1;
    }
    states.push(st);
  }
  if (trimmed > 0) notes.push(`${trimmed} redundant replica(s) dropped to respect slot / redundancy limits`);
  if (repairMoves > 0) notes.push(`${repairMoves} replica load(s) needed to give every expert a replica`);

  // Global greedy improvement under the move budget: best move over all layers first.
  let replicaTotal = 0;
  for (const st of states) replicaTotal += st.replicas;
  let budget = Math.floor(policy.maxMoveFraction * replicaTotal + 1e-9) - repairMoves;
  const minScore = policy.minGainPerMove ?? DEFAULT_MIN_GAIN_PER_MOVE;
  const scratch = createScratch();
  const heap: HeapItem[] = [];
  for (let l = 0; l < L; l++) {
    const mv = findBestMove(states[l]!, budget, minScore, scratch);
    if (mv) heapPush(heap, { score: mv.score, layer: l, move: mv });
  }
  let iterations = 0;
  const maxIterations = 4 * L * cap;
  while (heap.length > 0 && iterations < maxIterations) {
    const item = heapPop(heap);
    const st = states[item.layer]!;
    if (item.move.cost <= budget) {
      applyMove(st, item.move);
      budget -= item.move.cost;
      iterations += 1;
    }
    const next = findBestMove(st, budget, minScore, scratch);
    if (next) heapPush(heap, { score: next.score, layer: item.layer, move: next });
  }
  const placement = toPlacement(placementGpus, E, states.map((st) => st.toSlots()));
  const metrics = computePlacementMetrics(placement, heat);
  const previousMetrics = computePlacementMetrics(current, heat);
  const hash = placementHash(placement);
  const currentHash = placementHash(current);
  const gain = metrics.balancedness - previousMetrics.balancedness;
  if (!structural && repairMoves === 0 && (hash === currentHash || gain < policy.minBalancednessGain)) {
    return {
      kind: "unchanged",
      reason: hash === currentHash
        ? "the current placement is already the best found within the move budget"
        : `balancedness gain ${gain.toFixed(4)} is below the threshold ${policy.minBalancednessGain}`,
      placement: current,
      placementHash: currentHash,
      metrics: previousMetrics,
      candidateBalancedness: metrics.balancedness,
    };
  }
  const moved = countMovedReplicas(current, placement);
  const replicas = countReplicas(placement);
  return {
    kind: "planned",
    mode: "incremental",
    placement,
    placementHash: hash,
    metrics,
    previousMetrics,
    movedReplicas: moved,
    movedFraction: replicas > 0 ? moved / replicas : 0,
    repairMoves,
    notes,
  };
}
