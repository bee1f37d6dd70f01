// planPlacement: heat + GPUs + current placement -> new placement (or unchanged / infeasible).
// Algorithm and rationale: docs/adr/0002-placement-algorithm.md.

import { placementHash } from "./hash.ts";
import { applyMove, LayerSearch, SearchBuffers } from "./improve.ts";
import type { Move } from "./improve.ts";
import { FreshScratch } from "./fresh.ts";
import { applyReplan, FRESH_MIN_SCORE, planLayerFromScratch, planLayerReplan } from "./replan.ts";
import type { LayerReplan } from "./replan.ts";
import { IndexedHeap } from "./heap.ts";
import { computePlacementMetrics, countMovedReplicas, countReplicas } from "./metrics.ts";
import { estimateMoveCost } from "./move-cost.ts";
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

/**
 * Default PlacementPolicy.minGainPerMove: 0.01% of the layer's mean GPU load per replica loaded, the
 * same stop as the fresh plan's search, so that repeated rebalances on one heat reach the fresh plan's
 * balance (ADR 0002). Churn is bounded by the move budget and the balancedness-gain hysteresis.
 */
export const DEFAULT_MIN_GAIN_PER_MOVE = FRESH_MIN_SCORE;

type Infeasible = Extract<PlacementOutcome, { kind: "infeasible" }>;

function infeasible(constraint: Infeasible["constraint"], reason: string): Infeasible {
  return { kind: "infeasible", constraint, reason };
}

function validateInput(input: PlacementInput): Infeasible | null {
  const { heat, gpus, policy } = input;
  return validateHeat(heat) ?? validateGpus(gpus) ?? validatePolicy(policy);
}

function validateHeat(heat: PlacementInput["heat"]): Infeasible | null {
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
  return null;
}

function validateGpus(gpus: PlacementInput["gpus"]): Infeasible | null {
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
  return null;
}

function validatePolicy(policy: PlacementPolicy): Infeasible | null {
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
  if (
    policy.redundantSlots !== undefined &&
    Number.isFinite(policy.redundantSlots) &&
    !Number.isInteger(policy.redundantSlots)
  ) {
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

/** Whether two placements hold the same experts in the same slots of the same GPUs (ids, slot counts). */
function sameLayout(a: Placement, b: Placement): boolean {
  if (a.layerCount !== b.layerCount || a.expertCount !== b.expertCount) return false;
  if (a.gpus.length !== b.gpus.length || a.layers.length !== b.layers.length) return false;
  for (let g = 0; g < a.gpus.length; g++) {
    if (a.gpus[g]!.gpuId !== b.gpus[g]!.gpuId || a.gpus[g]!.slotCount !== b.gpus[g]!.slotCount) return false;
  }
  for (let l = 0; l < a.layers.length; l++) {
    const la = a.layers[l]!;
    const lb = b.layers[l]!;
    if (la.length !== lb.length) return false;
    for (let g = 0; g < la.length; g++) {
      const sa = la[g]!;
      const sb = lb[g]!;
      if (sa.length !== sb.length) return false;
      for (let s = 0; s < sa.length; s++) if (sa[s] !== sb[s]) return false;
    }
  }
  return true;
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
  // Its hottest holder (ties: lowest index).
  let holder = -1;
  const S = st.topo.maxSlots;
  for (let c = st.head[y]!; c >= 0; c = st.nextCell[c]!) {
    const g = Math.floor(c / S);
    if (holder < 0 || st.load[g]! > st.load[holder]! || (st.load[g] === st.load[holder] && g < holder)) holder = g;
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

/** Bytes of `replicas` expert replicas, when the policy knows the size of one. */
function bytesOf(replicas: number, policy: PlacementPolicy): number | null {
  const bytes = policy.bytesPerExpertReplica;
  return bytes !== undefined && bytes > 0 ? replicas * bytes : null;
}

/** Effective slots per GPU (memory may allow fewer than slotCount), or why no plan fits. */
interface Slots {
  readonly slotCount: Int32Array;
  readonly totalSlots: number;
}

function effectiveSlots(
  gpus: readonly GpuSlotInfo[],
  policy: PlacementPolicy,
  L: number,
  E: number,
  notes: string[],
): Slots | Infeasible {
  const slotCount = new Int32Array(gpus.length);
  let rawSlots = 0;
  let totalSlots = 0;
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
    totalSlots += slots;
  });
  if (memoryLimited > 0) {
    notes.push(
      `memory limits ${memoryLimited} GPU(s) to fewer slots than slotCount (${bytes} bytes per replica x ${L} layers)`,
    );
  }
  if (totalSlots >= E) return { slotCount, totalSlots };
  if (rawSlots >= E && memoryLimited > 0) {
    return infeasible(
      "memory",
      `every layer needs ${E} expert slots (one per expert) but GPU memory allows only ${totalSlots} of the ` +
        `${rawSlots} slots on ${gpus.length} GPU(s) (${bytes} bytes per replica x ${L} layers)`,
    );
  }
  return infeasible(
    "slots",
    `every layer needs ${E} expert slots (one per expert) but the ${gpus.length} GPU(s) offer ${totalSlots}`,
  );
}

/** What every plan of one input shares: shape, slot cap, topology, the output GPUs and notes. */
interface PlanContext {
  readonly heat: ReadonlyArray<ReadonlyArray<number>>;
  readonly policy: PlacementPolicy;
  readonly L: number;
  readonly E: number;
  readonly cap: number;
  readonly topo: Topology;
  readonly placementGpus: PlacementGpu[];
  readonly notes: string[];
}

type Planned = Extract<PlacementOutcome, { kind: "planned" }>;

function plannedOutcome(
  ctx: PlanContext,
  current: Placement | undefined,
  placement: Placement,
  fields: Pick<Planned, "mode" | "metrics" | "previousMetrics" | "repairMoves" | "budgetLimited">,
): Planned {
  const moved = countMovedReplicas(current, placement);
  const replicas = countReplicas(placement);
  return {
    kind: "planned",
    placement,
    placementHash: placementHash(placement),
    movedReplicas: moved,
    movedFraction: replicas > 0 ? moved / replicas : 0,
    movedBytes: bytesOf(moved, ctx.policy),
    moveCost: ctx.policy.moveCost ? estimateMoveCost(current, placement, ctx.policy.moveCost) : null,
    notes: ctx.notes,
    ...fields,
  };
}

/** A from-scratch plan: pack every layer, then search with free moves until the fresh stop. */
function planFresh(ctx: PlanContext, current: Placement | undefined): Planned {
  const { heat, L, E, cap, topo } = ctx;
  // One state, search and scratch serve every layer in turn (each layer's slots are copied out).
  const st = new LayerState(topo, heat[0]!, cap);
  const freshScratch = new FreshScratch(topo, E);
  let search: LayerSearch | null = null;
  const layers: number[][][] = [];
  for (let l = 0; l < L; l++) {
    if (l > 0) st.reset(heat[l]!, cap);
    search = planLayerFromScratch(st, freshScratch, search);
    layers.push(st.toSlots());
  }
  const placement = toPlacement(ctx.placementGpus, E, layers);
  return plannedOutcome(ctx, current, placement, {
    mode: "fresh",
    metrics: computePlacementMetrics(placement, heat),
    previousMetrics: null,
    repairMoves: 0,
    budgetLimited: false,
  });
}

/** How the current placement maps onto today's GPUs. */
interface CurrentMapping {
  /** prevOf[g]: index of today's GPU g in the current placement (-1: new GPU). */
  readonly prevOf: Int32Array;
  /** The GPU list changed (ids, order, slots, nodes or domains). */
  readonly structural: boolean;
}

function mapCurrentGpus(ctx: PlanContext, current: Placement, gpus: readonly GpuSlotInfo[]): CurrentMapping {
  const prevIndex = new Map<string, number>();
  current.gpus.forEach((gpu, g) => prevIndex.set(gpu.gpuId, g));
  const structural =
    current.gpus.length !== gpus.length ||
    ctx.placementGpus.some((gpu, g) => {
      const before = current.gpus[g];
      return (
        before === undefined ||
        before.gpuId !== gpu.gpuId ||
        before.slotCount !== gpu.slotCount ||
        before.nodeName !== gpu.nodeName ||
        before.domain !== gpu.domain
      );
    });
  const gpuIds = new Set(gpus.map((gpu) => gpu.gpuId));
  const lostGpus = current.gpus.filter((gpu) => !gpuIds.has(gpu.gpuId)).length;
  if (lostGpus > 0) ctx.notes.push(`${lostGpus} GPU(s) of the current placement are gone`);
  const prevOf = new Int32Array(gpus.length);
  for (let g = 0; g < gpus.length; g++) prevOf[g] = prevIndex.get(gpus[g]!.gpuId) ?? -1;
  return { prevOf, structural };
}

/** Valid expert ids in a current layer (what it held before mapping). */
function countHeld(layer: ReadonlyArray<ReadonlyArray<number>>, E: number): number {
  let held = 0;
  for (const slots of layer) for (const e of slots ?? []) if (Number.isInteger(e) && e >= 0 && e < E) held += 1;
  return held;
}

/** Layer l of the current placement on today's GPUs, marked as already loaded. */
function loadCurrentLayer(ctx: PlanContext, current: Placement, mapping: CurrentMapping, l: number): LayerState {
  const { E, cap, topo } = ctx;
  const S = topo.maxSlots;
  const st = new LayerState(topo, ctx.heat[l]!, cap);
  const layer = current.layers[l] ?? [];
  for (let g = 0; g < topo.gpuCount; g++) {
    const pg = mapping.prevOf[g]!;
    if (pg < 0) continue;
    const slots = layer[pg] ?? [];
    const n = Math.min(slots.length, topo.slotCount[g]!);
    for (let s = 0; s < n; s++) {
      const e = slots[s]!;
      if (Number.isInteger(e) && e >= 0 && e < E) st.grid[g * S + s] = e;
    }
  }
  st.rebuild();
  st.markOriginal();
  return st;
}

/** Drop redundant replicas over the cap and give every expert a replica. Loads, trims, or an infeasible layer. */
function repairLayer(st: LayerState, l: number): { loads: number; trimmed: number } | Infeasible {
  let trimmed = 0;
  while (st.replicas > st.cap && evictLeastUseful(st)) trimmed += 1;
  const missing: number[] = [];
  for (let e = 0; e < st.expertCount; e++) if (st.r[e] === 0) missing.push(e);
  missing.sort((a, b) => st.w[b]! - st.w[a]! || a - b);
  for (const e of missing) {
    if (!placeMissing(st, e)) {
      return infeasible(
        "slots",
        `layer ${l}: no slot can take expert ${e} (every slot holds an expert's only replica)`,
      );
    }
  }
  return { loads: missing.length, trimmed };
}

/**
 * Global greedy improvement under the move budget: each layer offers its best move, a heap across
 * layers applies the best-scoring one (ties: lower layer) and asks that layer again. When no layer
 * has a move left, each stuck layer may offer a re-plan (replan.ts; at most one per layer and plan),
 * and the search goes on. Returns the replica loads spent and whether the budget stopped the search
 * while moves (or re-plans) scoring `minScore` remained.
 */
function improveAllLayers(
  states: LayerState[],
  budgetReplicas: number,
  minScore: number,
  scratch: FreshScratch,
): { spent: number; budgetLimited: boolean } {
  const L = states.length;
  let budget = budgetReplicas;
  let replanCut = false;
  const buffers = new SearchBuffers();
  const searches = states.map((st) => new LayerSearch(st, buffers));
  const offers: Array<Move | null> = new Array<Move | null>(L).fill(null);
  const replans: Array<LayerReplan | null> = new Array<LayerReplan | null>(L).fill(null);
  const replanTried = new Uint8Array(L);
  const heap = new IndexedHeap(L);
  const offer = (l: number): void => {
    const mv = searches[l]!.findBestMove(budget, minScore);
    offers[l] = mv;
    if (mv) heap.set(l, -mv.score, l);
  };
  const offerReplans = (): void => {
    for (let l = 0; l < L; l++) {
      if (replanTried[l] || offers[l] !== null) continue;
      replanTried[l] = 1;
      const rp = planLayerReplan(states[l]!, scratch, minScore);
      if (rp !== null && rp.cost > budget) replanCut = true;
      else if (rp !== null) {
        replans[l] = rp;
        heap.set(l, -rp.score, l);
      }
    }
  };
  for (let l = 0; l < L; l++) offer(l);
  let iterations = 0;
  const maxIterations = 4 * states.reduce((sum, st) => sum + st.cap, 0);
  while (iterations < maxIterations) {
    if (heap.length === 0) offerReplans();
    if (heap.length === 0) break;
    const l = heap.pop();
    const rp = replans[l];
    const cost = rp ? rp.cost : offers[l]!.cost;
    if (cost <= budget) {
      if (rp) applyReplan(states[l]!, rp);
      else applyMove(states[l]!, offers[l]!);
      budget -= cost;
      iterations += 1;
    } else if (rp) replanCut = true;
    replans[l] = null;
    offer(l);
  }
  let budgetLimited = replanCut;
  for (let l = 0; l < L && !budgetLimited; l++) budgetLimited = searches[l]!.findBestMove(Infinity, minScore) !== null;
  for (const search of searches) search.detach();
  return { spent: budgetReplicas - budget, budgetLimited };
}

/** Load and repair every layer of the current placement. */
function repairCurrent(
  ctx: PlanContext,
  current: Placement,
  mapping: CurrentMapping,
): { states: LayerState[]; repairMoves: number; structural: boolean } | Infeasible {
  const states: LayerState[] = [];
  let repairMoves = 0;
  let trimmed = 0;
  let structural = mapping.structural;
  for (let l = 0; l < ctx.L; l++) {
    const st = loadCurrentLayer(ctx, current, mapping, l);
    if (st.replicas !== countHeld(current.layers[l] ?? [], ctx.E)) structural = true;
    const repaired = repairLayer(st, l);
    if ("kind" in repaired) return repaired;
    if (repaired.trimmed > 0) structural = true;
    repairMoves += repaired.loads;
    trimmed += repaired.trimmed;
    states.push(st);
  }
  if (trimmed > 0) ctx.notes.push(`${trimmed} redundant replica(s) dropped to respect slot / redundancy limits`);
  if (repairMoves > 0) ctx.notes.push(`${repairMoves} replica load(s) needed to give every expert a replica`);
  return { states, repairMoves, structural };
}

/** Start from the current placement: repair, improve within the budget, then apply the hysteresis. */
function planIncremental(ctx: PlanContext, current: Placement, gpus: readonly GpuSlotInfo[]): PlacementOutcome {
  const { heat, policy } = ctx;
  const repaired = repairCurrent(ctx, current, mapCurrentGpus(ctx, current, gpus));
  if ("kind" in repaired) return repaired;
  const { states, repairMoves, structural } = repaired;
  // Repairs are forced and come on top of the budget (a scale-down must re-home the lost GPUs'
  // experts and then rebalance); moving a replica this plan already loads is free, so repairs can
  // be re-placed at no cost.
  const replicaTotal = states.reduce((sum, st) => sum + st.replicas, 0);
  const budget = Math.floor(policy.maxMoveFraction * replicaTotal + 1e-9);
  const minScore = policy.minGainPerMove ?? DEFAULT_MIN_GAIN_PER_MOVE;
  const scratch = new FreshScratch(ctx.topo, ctx.E);
  const { budgetLimited } = improveAllLayers(states, budget, minScore, scratch);
  const layout = toPlacement(
    ctx.placementGpus,
    ctx.E,
    states.map((st) => st.toSlots()),
  );
  const metrics = computePlacementMetrics(layout, heat);
  const previousMetrics = computePlacementMetrics(current, heat);
  // A budget-limited plan is the first step of a convergence: the hysteresis weighs what the whole
  // convergence gains (the search continued without a budget), not what fits in this step.
  // A plan that continues a convergence skips the hysteresis and only counts down (no search needed).
  const continuing = (current.pendingMoves ?? 0) > 0;
  const rest =
    budgetLimited && !continuing ? improveAllLayers(states, Number.MAX_SAFE_INTEGER, minScore, scratch).spent : 0;
  const reachable = budgetLimited && !continuing ? statesBalancedness(states) : metrics.balancedness;
  const pendingMoves = budgetLimited ? pendingAfter(current, layout, rest) : 0;
  const placement: Placement = pendingMoves > 0 ? { ...layout, pendingMoves } : layout;
  const kept = keepCurrent(
    current,
    placement,
    reachable - previousMetrics.balancedness,
    policy,
    structural || repairMoves > 0,
  );
  if (kept !== null) {
    return {
      kind: "unchanged",
      reason: kept,
      placement: current,
      placementHash: placementHash(current),
      metrics: previousMetrics,
      candidateBalancedness: metrics.balancedness,
    };
  }
  return plannedOutcome(ctx, current, placement, {
    mode: "incremental",
    metrics,
    previousMetrics,
    repairMoves,
    budgetLimited,
  });
}

/** Balancedness of the layers' working states (mean / max GPU load over active GPUs, averaged). */
function statesBalancedness(states: LayerState[]): number {
  let sum = 0;
  for (const st of states) {
    const { gpuCount, slotCount, activeGpuCount } = st.topo;
    let max = 0;
    let total = 0;
    for (let g = 0; g < gpuCount; g++) {
      if (slotCount[g]! <= 0) continue;
      total += st.load[g]!;
      if (st.load[g]! > max) max = st.load[g]!;
    }
    sum += max > 0 && activeGpuCount > 0 ? total / max / activeGpuCount : 1;
  }
  return states.length > 0 ? sum / states.length : 1;
}

/**
 * Replica loads a budget-limited plan leaves to the rest of its convergence: for the first step,
 * what the search would still spend without a budget (`remaining`); for a later step, what was left
 * of the convergence the current placement continues, minus this plan's loads, so that sampling
 * noise cannot extend a convergence (every step counts down).
 */
function pendingAfter(current: Placement, planned: Placement, remaining: number): number {
  const before = current.pendingMoves ?? 0;
  if (before <= 0) return Math.max(0, remaining);
  return Math.max(0, before - countMovedReplicas(current, planned));
}

/**
 * Why the current placement stays (null: publish the plan). Hysteresis: keep it when the gain (of
 * the whole convergence, for a budget-limited plan) is below `minBalancednessGain`, unless something needed repair or the current placement is a
 * budget-limited step of a convergence (`Placement.pendingMoves`), which the plan continues.
 */
function keepCurrent(
  current: Placement,
  planned: Placement,
  gain: number,
  policy: PlacementPolicy,
  repaired: boolean,
): string | null {
  if (repaired) return null;
  // Equal layouts (same experts in the same slots of the same GPUs) are what placementHash
  // versions; compare them directly instead of hashing both.
  if (sameLayout(current, planned)) return "the current placement is already the best found within the move budget";
  if ((current.pendingMoves ?? 0) > 0 || gain >= policy.minBalancednessGain) return null;
  return `balancedness gain ${gain.toFixed(4)} is below the threshold ${policy.minBalancednessGain}`;
}

/**
 * Plan where every expert replica of every MoE layer lives.
 *
 * Without a (shape-compatible) current placement: a from-scratch balanced plan. With one: start from
 * it, repair what no longer fits (GPUs gone, fewer slots, missing experts), then improve balance with
 * the fewest replica loads, within `policy.maxMoveFraction`; keep the current placement when the gain
 * is below `policy.minBalancednessGain` and nothing needed repair (unless the current placement is
 * an unfinished, budget-limited step, see `Placement.pendingMoves`). Pure and deterministic.
 */
export function planPlacement(input: PlacementInput): PlacementOutcome {
  const invalid = validateInput(input);
  if (invalid) return invalid;
  const { heat, gpus, policy, current } = input;
  const L = heat.length;
  const E = heat[0]!.length;
  const notes: string[] = [];
  const slots = effectiveSlots(gpus, policy, L, E, notes);
  if ("kind" in slots) return slots;
  const ctx: PlanContext = {
    heat,
    policy,
    L,
    E,
    notes,
    cap: Math.min(slots.totalSlots, E + (policy.redundantSlots ?? Infinity)),
    topo: buildTopology(gpus, slots.slotCount, policy.topology !== "ignore"),
    placementGpus: gpus.map((gpu, g) => ({
      gpuId: gpu.gpuId,
      nodeName: gpu.nodeName,
      domain: gpu.domain ?? "",
      slotCount: slots.slotCount[g]!,
    })),
  };
  const compatible =
    current !== undefined &&
    current.layerCount === L &&
    current.expertCount === E &&
    Array.isArray(current.layers) &&
    current.layers.length === L;
  if (current !== undefined && !compatible) {
    notes.push(
      `current placement has shape ${current.layerCount}x${current.expertCount}, heat has ${L}x${E}: planned from scratch`,
    );
  }
  return compatible ? planIncremental(ctx, current, gpus) : planFresh(ctx, current);
}
