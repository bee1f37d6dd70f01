// Shard-granular rebalancing. A shard is a pod: changing anything it holds means a new pod that
// loads its whole expert set, so the cost of a heat rebalance is the number of shards rewritten,
// not the number of replicas moved. Given at most k shards to rewrite, what they hold is free to
// choose; every other shard keeps exactly its experts.
//
// Per layer: the experts left without a replica on the kept shards must go to the rewritten ones;
// the other slots get redundant replicas: of the heaviest expert of the hottest kept shard while
// kept shards run hotter than the rewritten ones will on average, then of the heaviest expert per
// replica that only rewritten shards hold (EPLB's greedy step, restricted so no more load moves onto
// them; a slot nothing helps stays empty); then those replicas are packed onto the rewritten shards heaviest first, each onto the least loaded
// shard with a free slot that does not hold that expert yet. An expert's load splits evenly over
// all its replicas, kept and new, so replicating a hot expert also relieves the kept shards that
// hold it. A layer whose packing cannot finish keeps its current slots.
//
// Pure and deterministic.
import { EMPTY_SLOT, gpuLoads, type GpuSlotInfo, type Placement } from "../placement/index.ts";

/** Shards (GPU indices) by how hot they run, summed over layers relative to each layer's mean: hottest first. */
export function hottestShards(current: Placement, heat: ReadonlyArray<ReadonlyArray<number>>): number[] {
  const loads = gpuLoads(current, heat);
  const G = current.gpus.length;
  const score = new Float64Array(G);
  for (const row of loads) {
    let sum = 0;
    for (let g = 0; g < G; g++) sum += row[g]!;
    const mean = sum / Math.max(1, G);
    if (!(mean > 0)) continue;
    for (let g = 0; g < G; g++) score[g]! += row[g]! / mean;
  }
  return Array.from({ length: G }, (_, g) => g).sort((a, b) => score[b]! - score[a]! || a - b);
}

/** The placement with the given shards' expert sets rewritten for the heat; other shards untouched. */
export function rewriteShards(
  current: Placement,
  heat: ReadonlyArray<ReadonlyArray<number>>,
  rewrite: readonly number[],
): Placement {
  const R = [...new Set(rewrite)].filter((g) => g >= 0 && g < current.gpus.length).sort((a, b) => a - b);
  if (R.length === 0) return current;
  const inR = new Set(R);
  const E = current.expertCount;
  const layers = current.layers.map((layer, l) => {
    const next = rewriteLayer(
      layer,
      heat[l] ?? [],
      E,
      R,
      inR,
      current.gpus.map((g) => g.slotCount),
    );
    return next ?? layer.map((slots) => [...slots]);
  });
  return { ...current, layers };
}

/** Pack the rewritten shards' replicas, heaviest first, onto the least loaded shard that can take each. */
function packRewritten(
  onR: Int32Array,
  count: Int32Array,
  load: (e: number) => number,
  R: readonly number[],
  slotCounts: readonly number[],
): Map<number, number[]> | undefined {
  const items: number[] = [];
  for (let e = 0; e < onR.length; e++) for (let i = 0; i < onR[e]!; i++) items.push(e);
  items.sort((a, b) => load(b) / count[b]! - load(a) / count[a]! || a - b);
  const sets = new Map<number, number[]>(R.map((g) => [g, []]));
  const binLoad = new Map<number, number>(R.map((g) => [g, 0]));
  for (const e of items) {
    let pick = -1;
    for (const g of R) {
      const set = sets.get(g)!;
      if (set.length >= (slotCounts[g] ?? 0) || set.includes(e)) continue;
      if (pick < 0 || binLoad.get(g)! < binLoad.get(pick)!) pick = g;
    }
    if (pick < 0) return undefined;
    sets.get(pick)!.push(e);
    binLoad.set(pick, binLoad.get(pick)! + load(e) / count[e]!);
  }
  return sets;
}

/** The kept shard with the highest load (the first on a tie), or -1 when none is kept. */
function hottestKept(keptLoad: ReadonlyMap<number, number>): number {
  let hottest = -1;
  for (const [g, v] of keptLoad) if (hottest < 0 || v > keptLoad.get(hottest)!) hottest = g;
  return hottest;
}

/** The expert of `slots` with the highest load per replica that can take another replica on the rewritten shards, or -1. */
function heaviestOnShard(
  slots: ReadonlyArray<number>,
  E: number,
  onR: Int32Array,
  shardCount: number,
  per: (e: number) => number,
): number {
  let best = -1;
  for (const e of slots) {
    if (e === EMPTY_SLOT || e < 0 || e >= E || onR[e]! >= shardCount) continue;
    if (best < 0 || per(e) > per(best)) best = e;
  }
  return best;
}

/** The expert held only by the rewritten shards with the highest load per replica that can be split further, or -1. */
function heaviestSplittable(
  E: number,
  onR: Int32Array,
  shardCount: number,
  keptHolders: readonly (readonly number[])[],
  per: (e: number) => number,
): number {
  let best = -1;
  for (let e = 0; e < E; e++) {
    if (onR[e]! === 0 || onR[e]! >= shardCount || keptHolders[e]!.length > 0) continue;
    if (best < 0 || per(e) > per(best)) best = e;
  }
  return best;
}

function rewriteLayer(
  layer: ReadonlyArray<ReadonlyArray<number>>,
  heatRow: ReadonlyArray<number>,
  E: number,
  R: readonly number[],
  inR: ReadonlySet<number>,
  slotCounts: readonly number[],
): number[][] | undefined {
  const count = new Int32Array(E);
  let slotsOnR = 0;
  layer.forEach((slots, g) => {
    for (const e of slots) {
      if (e === EMPTY_SLOT || e < 0 || e >= E) continue;
      if (!inR.has(g)) count[e]!++;
    }
    if (inR.has(g)) slotsOnR += slotCounts[g] ?? slots.length;
  });
  const onR = new Int32Array(E);
  const load = (e: number) => Math.max(0, Number.isFinite(heatRow[e]) ? heatRow[e]! : 0);
  for (let e = 0; e < E; e++) {
    if (count[e] === 0) {
      count[e] = 1;
      onR[e] = 1;
    }
  }
  let mandatory = 0;
  for (let e = 0; e < E; e++) mandatory += onR[e]!;
  // Up to every slot of a rewritten shard: the pod loads its set anyway, and a slot is memory the
  // shard was sized for.
  const total = slotsOnR;
  if (mandatory > slotsOnR) return undefined;
  // Replication. While a kept shard runs hotter than the rewritten ones will on average, the next
  // replica goes to the heaviest expert of the hottest kept shard (it relieves that shard and every
  // other holder); after that, to the expert with the highest load per replica (EPLB's greedy step).
  // At most one replica of an expert per rewritten shard.
  const keptHolders: number[][] = Array.from({ length: E }, () => []);
  const keptLoad = new Map<number, number>();
  layer.forEach((slots, g) => {
    if (inR.has(g)) return;
    keptLoad.set(g, 0);
    for (const e of slots) if (e !== EMPTY_SLOT && e >= 0 && e < E) keptHolders[e]!.push(g);
  });
  const per = (e: number) => load(e) / count[e]!;
  for (let e = 0; e < E; e++) for (const g of keptHolders[e]!) keptLoad.set(g, keptLoad.get(g)! + per(e));
  let loadOnR = 0;
  for (let e = 0; e < E; e++) loadOnR += onR[e]! * per(e);
  const addReplica = (e: number) => {
    const before = per(e);
    count[e]!++;
    onR[e]!++;
    const after = per(e);
    for (const g of keptHolders[e]!) keptLoad.set(g, keptLoad.get(g)! - before + after);
    loadOnR += (onR[e]! - 1) * (after - before) + after;
  };
  for (let added = mandatory; added < total; added++) {
    const hottest = hottestKept(keptLoad);
    let best = -1;
    if (hottest >= 0 && keptLoad.get(hottest)! > loadOnR / R.length)
      best = heaviestOnShard(layer[hottest]!, E, onR, R.length, per);
    // The rewritten shards are the heavier side now: only split experts they alone hold (no load
    // moves onto them); a slot nothing helps stays empty.
    if (best < 0) best = heaviestSplittable(E, onR, R.length, keptHolders, per);
    if (best < 0) break;
    addReplica(best);
  }
  const sets = packRewritten(onR, count, load, R, slotCounts);
  if (sets === undefined) return undefined;
  return layer.map((slots, g) => {
    if (!inR.has(g)) return [...slots];
    const set = sets.get(g)!.sort((a, b) => a - b);
    const n = slotCounts[g] ?? slots.length;
    return [...set, ...new Array<number>(Math.max(0, n - set.length)).fill(EMPTY_SLOT)];
  });
}

/**
 * Scale-up: the current placement plus new shards (`gpus` must start with the current GPUs, in
 * order), with the new shards and the given running shards (`rewriteRunning`, e.g. the hottest as
 * far as spare GPUs allow) written for the heat. Undefined when `gpus` does not extend the current
 * placement.
 */
export function growShards(
  current: Placement,
  heat: ReadonlyArray<ReadonlyArray<number>>,
  gpus: readonly GpuSlotInfo[],
  rewriteRunning: readonly number[] = [],
): Placement | undefined {
  const n0 = current.gpus.length;
  if (gpus.length <= n0 || current.gpus.some((g, i) => g.gpuId !== gpus[i]!.gpuId)) return undefined;
  const added = gpus.slice(n0);
  const padded: Placement = {
    ...current,
    gpus: [
      ...current.gpus,
      ...added.map((g) => ({
        gpuId: g.gpuId,
        nodeName: g.nodeName,
        domain: g.domain ?? g.nodeName,
        slotCount: g.slotCount,
      })),
    ],
    layers: current.layers.map((layer) => [
      ...layer,
      ...added.map((g) => new Array<number>(g.slotCount).fill(EMPTY_SLOT)),
    ]),
  };
  return rewriteShards(padded, heat, [...added.map((_, i) => n0 + i), ...rewriteRunning.filter((g) => g < n0)]);
}

/**
 * The best of a few rewrites of k shards: the hottest k, and hottest-first windows further down
 * (after a rewrite the rewritten shards are often the hottest, and rewriting them again changes
 * nothing, while the next ones down still run hot). Returns the current placement if none helps.
 */
export function bestRewrite(
  current: Placement,
  heat: ReadonlyArray<ReadonlyArray<number>>,
  k: number,
  balancedness: (p: Placement) => number,
): Placement {
  if (k <= 0) return current;
  const order = hottestShards(current, heat);
  const starts = [...new Set([0, Math.floor(k / 2), k, 2 * k, 3 * k].filter((s) => s < order.length))];
  let best = current;
  let bestBal = balancedness(current);
  for (const s of starts) {
    const next = rewriteShards(current, heat, order.slice(s, s + k));
    const bal = balancedness(next);
    if (bal > bestBal + 1e-12) {
      best = next;
      bestBal = bal;
    }
  }
  return best;
}
