// Baseline: an EPLB-style planner written from the published description of DeepSeek's Expert
// Parallelism Load Balancer (deepseek-ai/EPLB README), not from its code.
//
// Global policy: give each logical expert one replica, then hand every remaining physical slot to
// the expert with the highest load per replica; then pack the replicas onto GPUs with equal slot
// counts, heaviest first, each onto the GPU with the lowest load that still has a free slot.
// Hierarchical policy: first pack whole expert groups onto nodes (same balanced packing, equal
// groups per node), then replicate and pack within each node.
// Like the description, it does not forbid two replicas of one expert on one GPU, and it plans
// every layer from scratch (it has no notion of the current placement).

/** Balanced packing of `weights` into `packs` packs of equal item count: [pack, rank in pack] per item. */
export function balancedPacking(weights: readonly number[], packs: number): { pack: number[]; rank: number[] } {
  const n = weights.length;
  if (n % packs !== 0) throw new Error(`balancedPacking: ${n} items do not split into ${packs} equal packs`);
  const perPack = n / packs;
  const pack = new Array<number>(n).fill(-1);
  const rank = new Array<number>(n).fill(-1);
  if (perPack === 1) {
    for (let i = 0; i < n; i++) {
      pack[i] = i;
      rank[i] = 0;
    }
    return { pack, rank };
  }
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => weights[b]! - weights[a]! || a - b);
  const packWeight = new Array<number>(packs).fill(0);
  const packCount = new Array<number>(packs).fill(0);
  for (const i of order) {
    let best = -1;
    for (let p = 0; p < packs; p++) {
      if (packCount[p]! >= perPack) continue;
      if (best < 0 || packWeight[p]! < packWeight[best]!) best = p;
    }
    pack[i] = best;
    rank[i] = packCount[best]!;
    packWeight[best]! += weights[i]!;
    packCount[best]! += 1;
  }
  return { pack, rank };
}

/** Replicate `weights` (logical experts) into `physical` replicas: phy -> logical, and replicas per logical. */
export function replicateExperts(
  weights: readonly number[],
  physical: number,
): { phyToLog: number[]; count: number[] } {
  const n = weights.length;
  if (physical < n) throw new Error(`replicateExperts: ${physical} replicas cannot cover ${n} experts`);
  const phyToLog = Array.from({ length: n }, (_, i) => i);
  const count = new Array<number>(n).fill(1);
  for (let p = n; p < physical; p++) {
    let best = 0;
    for (let e = 1; e < n; e++) if (weights[e]! / count[e]! > weights[best]! / count[best]!) best = e;
    phyToLog.push(best);
    count[best]! += 1;
  }
  return { phyToLog, count };
}

/**
 * One layer, hierarchical policy. Returns physical slot -> logical expert, GPU by GPU
 * (numReplicas / numGpus slots each). With groups = nodes = 1 it is the global policy.
 */
export function eplbLayer(
  weights: readonly number[],
  numReplicas: number,
  numGroups: number,
  numNodes: number,
  numGpus: number,
): number[] {
  const E = weights.length;
  if (E % numGroups !== 0) throw new Error(`EPLB: ${E} experts do not split into ${numGroups} groups`);
  if (numGroups % numNodes !== 0) throw new Error(`EPLB: ${numGroups} groups do not split over ${numNodes} nodes`);
  if (numGpus % numNodes !== 0 || numReplicas % numGpus !== 0)
    throw new Error("EPLB: GPUs per node and slots per GPU must be whole");
  const groupSize = E / numGroups;
  const groupsPerNode = numGroups / numNodes;
  const expertsPerNode = E / numNodes;
  const replicasPerNode = numReplicas / numNodes;
  const gpusPerNode = numGpus / numNodes;
  const slotsPerGpu = numReplicas / numGpus;

  // 1. Expert groups onto nodes.
  const groupLoad = Array.from({ length: numGroups }, (_, g) => {
    let s = 0;
    for (let i = 0; i < groupSize; i++) s += weights[g * groupSize + i]!;
    return s;
  });
  const groups = balancedPacking(groupLoad, numNodes);
  // Node-local ("meta-logical") order: node by node, group by rank in node, expert within group.
  const mlogToLog = new Array<number>(E);
  for (let e = 0; e < E; e++) {
    const g = Math.floor(e / groupSize);
    const mlog = (groups.pack[g]! * groupsPerNode + groups.rank[g]!) * groupSize + (e % groupSize);
    mlogToLog[mlog] = e;
  }

  const out: number[] = [];
  for (let node = 0; node < numNodes; node++) {
    const local = mlogToLog.slice(node * expertsPerNode, (node + 1) * expertsPerNode);
    const localWeights = local.map((e) => weights[e]!);
    // 2. Replicate within the node.
    const rep = replicateExperts(localWeights, replicasPerNode);
    const perReplica = rep.phyToLog.map((m) => localWeights[m]! / rep.count[m]!);
    // 3. Pack the node's replicas onto its GPUs.
    const packed = balancedPacking(perReplica, gpusPerNode);
    const slots = new Array<number>(replicasPerNode);
    for (let p = 0; p < replicasPerNode; p++)
      slots[packed.pack[p]! * slotsPerGpu + packed.rank[p]!] = local[rep.phyToLog[p]!]!;
    out.push(...slots);
  }
  return out;
}

/** All layers: [layer][physical slot] -> logical expert (SGLang physical_to_logical_map). */
export function eplbRebalance(
  weights: ReadonlyArray<readonly number[]>,
  numReplicas: number,
  numGroups: number,
  numNodes: number,
  numGpus: number,
): number[][] {
  return weights.map((row) => eplbLayer(row, numReplicas, numGroups, numNodes, numGpus));
}

/** EPLB's global policy (no node hierarchy). */
export function eplbGlobal(
  weights: ReadonlyArray<readonly number[]>,
  numReplicas: number,
  numGpus: number,
): number[][] {
  return eplbRebalance(weights, numReplicas, 1, 1, numGpus);
}

/** Balancedness of a physical_to_logical map (mean / max GPU load, averaged over layers). */
export function mapBalancedness(
  weights: ReadonlyArray<readonly number[]>,
  phyToLog: readonly number[][],
  numGpus: number,
): number {
  let total = 0;
  for (let l = 0; l < phyToLog.length; l++) {
    const row = phyToLog[l]!;
    const w = weights[l]!;
    const count = new Array<number>(w.length).fill(0);
    for (const e of row) count[e]! += 1;
    const perGpu = row.length / numGpus;
    let max = 0;
    let sum = 0;
    for (let g = 0; g < numGpus; g++) {
      let load = 0;
      for (let s = 0; s < perGpu; s++) {
        const e = row[g * perGpu + s]!;
        load += w[e]! / count[e]!;
      }
      sum += load;
      max = Math.max(max, load);
    }
    total += max > 0 ? sum / numGpus / max : 1;
  }
  return phyToLog.length > 0 ? total / phyToLog.length : 1;
}
