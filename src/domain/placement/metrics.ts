// Metrics of a placement under a heat matrix. Definitions follow SGLang/vLLM/EPLB:
// an expert's load splits evenly over its replicas; a GPU's load in a layer is the sum of its
// replicas' loads; balancedness of a layer = mean GPU load / max GPU load, averaged over layers.

import { EMPTY_SLOT } from "./types.ts";
import type { Placement, PlacementMetrics } from "./types.ts";

/** Balancedness of one layer's GPU loads: mean / max (1 when nothing is loaded). */
export function loadBalancedness(loads: ArrayLike<number>): number {
  let max = 0;
  let sum = 0;
  for (let i = 0; i < loads.length; i++) {
    const v = loads[i] as number;
    sum += v;
    if (v > max) max = v;
  }
  if (loads.length === 0 || max <= 0) return 1;
  return sum / max / loads.length; // divide by max first: tiny loads must not underflow to 0
}

/**
 * Per-GPU loads of every layer, [layer][gpuIndex]. Replicas of an expert share its heat evenly,
 * including (for foreign placements) duplicates on one GPU. GPUs with zero slots are kept (load 0).
 */
export function gpuLoads(placement: Placement, heat: ReadonlyArray<ReadonlyArray<number>>): Float64Array[] {
  const out: Float64Array[] = [];
  const E = placement.expertCount;
  const counts = new Int32Array(E);
  for (let l = 0; l < placement.layerCount; l++) {
    const layer = placement.layers[l] ?? [];
    const row = heat[l] ?? [];
    counts.fill(0);
    for (const slots of layer) for (const e of slots) if (e >= 0 && e < E) counts[e]! += 1;
    const loads = new Float64Array(placement.gpus.length);
    for (let g = 0; g < layer.length; g++) {
      let sum = 0;
      for (const e of layer[g] ?? []) {
        if (e === EMPTY_SLOT || e < 0 || e >= E) continue;
        sum += (row[e] ?? 0) / (counts[e] as number);
      }
      loads[g] = sum;
    }
    out.push(loads);
  }
  return out;
}

/** Node and domain index of every GPU, with each node's / domain's share of the active GPUs (token origins). */
interface OriginIndex {
  readonly active: number[];
  readonly nodeIndex: Int32Array;
  readonly domainIndex: Int32Array;
  readonly nodeOrigin: Float64Array;
  readonly domainOrigin: Float64Array;
  readonly nodeActive: Uint8Array;
}

function indexOrigins(placement: Placement): OriginIndex {
  const gpus = placement.gpus;
  const active: number[] = [];
  for (let g = 0; g < gpus.length; g++) if ((gpus[g]?.slotCount ?? 0) > 0) active.push(g);
  const nodeIndex = new Int32Array(gpus.length);
  const domainIndex = new Int32Array(gpus.length);
  const nodeIds = new Map<string, number>();
  const domainIds = new Map<string, number>();
  const idOf = (ids: Map<string, number>, key: string): number => {
    let id = ids.get(key);
    if (id === undefined) ids.set(key, (id = ids.size));
    return id;
  };
  for (let g = 0; g < gpus.length; g++) {
    nodeIndex[g] = idOf(nodeIds, gpus[g]!.nodeName);
    domainIndex[g] = idOf(domainIds, gpus[g]!.domain);
  }
  const nodeOrigin = new Float64Array(nodeIds.size);
  const domainOrigin = new Float64Array(domainIds.size);
  const nodeActive = new Uint8Array(nodeIds.size);
  for (const g of active) {
    nodeOrigin[nodeIndex[g]!]! += 1 / active.length;
    domainOrigin[domainIndex[g]!]! += 1 / active.length;
    nodeActive[nodeIndex[g]!] = 1;
  }
  return { active, nodeIndex, domainIndex, nodeOrigin, domainOrigin, nodeActive };
}

/** Running sums of the locality metrics over layers (buffers reused across layers). */
class LocalityTally {
  crossNode = 0;
  crossDomain = 0;
  totalHeat = 0;
  replicaCount = 0;
  expertsPresent = 0;
  /** stamp[n * E + e] === l + 1 when node n already holds expert e in layer l. */
  private readonly nodeStamp: Int32Array;
  private readonly domainStamp: Int32Array;
  private readonly localNode: Float64Array;
  private readonly localDomain: Float64Array;
  private readonly present: Uint8Array;
  private readonly idx: OriginIndex;
  private readonly E: number;

  constructor(idx: OriginIndex, E: number) {
    this.idx = idx;
    this.E = E;
    this.nodeStamp = new Int32Array(idx.nodeOrigin.length * E);
    this.domainStamp = new Int32Array(idx.domainOrigin.length * E);
    this.localNode = new Float64Array(E);
    this.localDomain = new Float64Array(E);
    this.present = new Uint8Array(E);
  }

  /** Add layer l: the share of token origins whose node / domain holds each expert, weighted by heat. */
  addLayer(l: number, layer: ReadonlyArray<ReadonlyArray<number>>, row: ReadonlyArray<number>): void {
    const { E, idx } = this;
    const stamp = l + 1;
    this.localNode.fill(0);
    this.localDomain.fill(0);
    this.present.fill(0);
    for (let g = 0; g < layer.length; g++) {
      const n = idx.nodeIndex[g]!;
      const d = idx.domainIndex[g]!;
      for (const e of layer[g] ?? []) {
        if (e < 0 || e >= E) continue;
        this.replicaCount += 1;
        this.present[e] = 1;
        if (this.nodeStamp[n * E + e] !== stamp) {
          this.nodeStamp[n * E + e] = stamp;
          this.localNode[e]! += idx.nodeOrigin[n]!;
        }
        if (this.domainStamp[d * E + e] !== stamp) {
          this.domainStamp[d * E + e] = stamp;
          this.localDomain[e]! += idx.domainOrigin[d]!;
        }
      }
    }
    for (let e = 0; e < E; e++) {
      if (this.present[e]) this.expertsPresent += 1;
      const w = row[e] ?? 0;
      if (!(w > 0)) continue;
      this.totalHeat += w;
      this.crossNode += w * Math.max(0, 1 - this.localNode[e]!);
      this.crossDomain += w * Math.max(0, 1 - this.localDomain[e]!);
    }
  }
}

/** Mean / max of the active nodes' loads, and the max. */
function nodeBalance(
  nodeLoad: Float64Array,
  nodeActive: Uint8Array,
): { maxNodeLoad: number; nodeBalancedness: number } {
  let maxNodeLoad = 0;
  let sum = 0;
  let counted = 0;
  for (let n = 0; n < nodeLoad.length; n++) {
    if (!nodeActive[n]) continue;
    counted += 1;
    sum += nodeLoad[n]!;
    if (nodeLoad[n]! > maxNodeLoad) maxNodeLoad = nodeLoad[n]!;
  }
  return { maxNodeLoad, nodeBalancedness: maxNodeLoad > 0 && counted > 0 ? sum / maxNodeLoad / counted : 1 };
}

/** All metrics of `placement` under `heat` ([layer][expert]). */
export function computePlacementMetrics(
  placement: Placement,
  heat: ReadonlyArray<ReadonlyArray<number>>,
): PlacementMetrics {
  const idx = indexOrigins(placement);
  const { active } = idx;
  const loads = gpuLoads(placement, heat);
  const layerBalancedness: number[] = [];
  let maxSum = 0;
  const nodeLoad = new Float64Array(idx.nodeOrigin.length);
  const tally = new LocalityTally(idx, placement.expertCount);
  for (let l = 0; l < placement.layerCount; l++) {
    const layerLoads = loads[l]!;
    let layerMax = 0;
    let layerSum = 0;
    for (const g of active) {
      const v = layerLoads[g]!;
      layerSum += v;
      if (v > layerMax) layerMax = v;
    }
    layerBalancedness.push(layerMax > 0 && active.length > 0 ? layerSum / layerMax / active.length : 1);
    maxSum += layerMax;
    for (let g = 0; g < placement.gpus.length; g++) nodeLoad[idx.nodeIndex[g]!]! += layerLoads[g]!;
    tally.addLayer(l, placement.layers[l] ?? [], heat[l] ?? []);
  }
  const layers = placement.layerCount;
  return {
    balancedness: layers === 0 ? 1 : layerBalancedness.reduce((a, b) => a + b, 0) / layers,
    layerBalancedness,
    meanMaxGpuLoad: layers === 0 ? 0 : maxSum / layers,
    crossNodeShare: tally.totalHeat > 0 ? tally.crossNode / tally.totalHeat : 0,
    crossDomainShare: tally.totalHeat > 0 ? tally.crossDomain / tally.totalHeat : 0,
    ...nodeBalance(nodeLoad, idx.nodeActive),
    replicaCount: tally.replicaCount,
    redundantReplicaCount: tally.replicaCount - tally.expertsPresent,
  };
}

/**
 * Replicas in `next` whose weights are not already on that GPU (matched by gpuId) for that layer in
 * `previous`: the expert weights that must be loaded anew. Duplicates on one GPU count separately.
 */
export function countMovedReplicas(previous: Placement | null | undefined, next: Placement): number {
  let moved = 0;
  const prevIndex = new Map<string, number>();
  if (previous) previous.gpus.forEach((gpu, g) => prevIndex.set(gpu.gpuId, g));
  const comparable = previous !== null && previous !== undefined && previous.expertCount === next.expertCount;
  const E = next.expertCount;
  const have = new Int32Array(E);
  const stampOf = new Int32Array(E);
  // prevOf[g]: index in `previous` of next's GPU g (by gpuId), -1 when it is new; looked up once,
  // not once per layer.
  const prevOf = new Int32Array(next.gpus.length);
  for (let g = 0; g < next.gpus.length; g++) prevOf[g] = prevIndex.get(next.gpus[g]!.gpuId) ?? -1;
  let stamp = 0;
  for (let l = 0; l < next.layerCount; l++) {
    const layer = next.layers[l] ?? [];
    for (let g = 0; g < layer.length; g++) {
      stamp += 1;
      const pg = g < prevOf.length ? prevOf[g]! : -1;
      if (comparable && pg >= 0 && l < previous.layerCount) {
        for (const e of previous.layers[l]?.[pg] ?? []) {
          if (e < 0 || e >= E) continue;
          if (stampOf[e] !== stamp) {
            stampOf[e] = stamp;
            have[e] = 0;
          }
          have[e]! += 1;
        }
      }
      for (const e of layer[g] ?? []) {
        if (e < 0 || e >= E) continue;
        if (stampOf[e] === stamp && have[e]! > 0) have[e]! -= 1;
        else moved += 1;
      }
    }
  }
  return moved;
}

/** Replicas placed (non-empty slots), all layers. */
export function countReplicas(placement: Placement): number {
  let n = 0;
  for (const layer of placement.layers) for (const slots of layer) for (const e of slots) if (e >= 0) n += 1;
  return n;
}
