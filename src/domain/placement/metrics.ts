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

/** All metrics of `placement` under `heat` ([layer][expert]). */
export function computePlacementMetrics(
  placement: Placement,
  heat: ReadonlyArray<ReadonlyArray<number>>,
): PlacementMetrics {
  const E = placement.expertCount;
  const gpus = placement.gpus;
  const active: number[] = [];
  for (let g = 0; g < gpus.length; g++) if ((gpus[g]?.slotCount ?? 0) > 0) active.push(g);
  const activeCount = active.length;

  // Node and domain indices, with each one's share of the (active) GPUs as token origins.
  const nodeIndex = new Int32Array(gpus.length);
  const domainIndex = new Int32Array(gpus.length);
  const nodeIds = new Map<string, number>();
  const domainIds = new Map<string, number>();
  for (let g = 0; g < gpus.length; g++) {
    const gpu = gpus[g]!;
    let n = nodeIds.get(gpu.nodeName);
    if (n === undefined) {
      n = nodeIds.size;
      nodeIds.set(gpu.nodeName, n);
    }
    let d = domainIds.get(gpu.domain);
    if (d === undefined) {
      d = domainIds.size;
      domainIds.set(gpu.domain, d);
    }
    nodeIndex[g] = n;
    domainIndex[g] = d;
  }
  const nodeOrigin = new Float64Array(nodeIds.size);
  const domainOrigin = new Float64Array(domainIds.size);
  for (const g of active) {
    nodeOrigin[nodeIndex[g]!]! += 1 / activeCount;
    domainOrigin[domainIndex[g]!]! += 1 / activeCount;
  }
  const nodeActive = new Uint8Array(nodeIds.size);
  for (const g of active) nodeActive[nodeIndex[g]!] = 1;

  const loads = gpuLoads(placement, heat);
  const layerBalancedness: number[] = [];
  let maxSum = 0;
  const nodeLoad = new Float64Array(nodeIds.size);
  let crossNode = 0;
  let crossDomain = 0;
  let totalHeat = 0;
  let replicaCount = 0;
  let expertsPresent = 0;

  // stamp[n * E + e] === l + 1 when node n already holds expert e in layer l.
  const nodeStamp = new Int32Array(nodeIds.size * E);
  const domainStamp = new Int32Array(domainIds.size * E);
  const localNode = new Float64Array(E);
  const localDomain = new Float64Array(E);
  const present = new Uint8Array(E);

  for (let l = 0; l < placement.layerCount; l++) {
    const layerLoads = loads[l]!;
    let layerMax = 0;
    let layerSum = 0;
    for (let i = 0; i < activeCount; i++) {
      const v = layerLoads[active[i]!]!;
      layerSum += v;
      if (v > layerMax) layerMax = v;
    }
    layerBalancedness.push(layerMax > 0 && activeCount > 0 ? layerSum / layerMax / activeCount : 1);
    maxSum += layerMax;
    for (let g = 0; g < gpus.length; g++) nodeLoad[nodeIndex[g]!]! += layerLoads[g]!;

    // Locality: the share of token origins whose node / domain holds each expert.
    const stamp = l + 1;
    localNode.fill(0);
    localDomain.fill(0);
    present.fill(0);
    const layer = placement.layers[l] ?? [];
    for (let g = 0; g < layer.length; g++) {
      const nBase = nodeIndex[g]! * E;
      const dBase = domainIndex[g]! * E;
      for (const e of layer[g] ?? []) {
        if (e < 0 || e >= E) continue;
        replicaCount += 1;
        present[e] = 1;
        if (nodeStamp[nBase + e] !== stamp) {
          nodeStamp[nBase + e] = stamp;
          localNode[e]! += nodeOrigin[nodeIndex[g]!]!;
        }
        if (domainStamp[dBase + e] !== stamp) {
          domainStamp[dBase + e] = stamp;
          localDomain[e]! += domainOrigin[domainIndex[g]!]!;
        }
      }
    }
    const row = heat[l] ?? [];
    for (let e = 0; e < E; e++) {
      if (present[e]) expertsPresent += 1;
      const w = row[e] ?? 0;
      if (!(w > 0)) continue;
      totalHeat += w;
      crossNode += w * Math.max(0, 1 - localNode[e]!);
      crossDomain += w * Math.max(0, 1 - localDomain[e]!);
    }
  }

  let maxNodeLoad = 0;
  let nodeLoadSum = 0;
  let nodesCounted = 0;
  for (let n = 0; n < nodeLoad.length; n++) {
    if (!nodeActive[n]) continue;
    nodesCounted += 1;
    nodeLoadSum += nodeLoad[n]!;
    if (nodeLoad[n]! > maxNodeLoad) maxNodeLoad = nodeLoad[n]!;
  }
  const layers = placement.layerCount;
  const balancedness = layers === 0 ? 1 : layerBalancedness.reduce((a, b) => a + b, 0) / layers;
  return {
    balancedness,
    layerBalancedness,
    meanMaxGpuLoad: layers === 0 ? 0 : maxSum / layers,
    crossNodeShare: totalHeat > 0 ? crossNode / totalHeat : 0,
    crossDomainShare: totalHeat > 0 ? crossDomain / totalHeat : 0,
    maxNodeLoad,
    nodeBalancedness: maxNodeLoad > 0 && nodesCounted > 0 ? nodeLoadSum / maxNodeLoad / nodesCounted : 1,
    replicaCount,
    redundantReplicaCount: replicaCount - expertsPresent,
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
