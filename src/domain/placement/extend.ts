// Scale-up without touching running shards: keep every existing GPU's experts
// as they are and fill the new GPUs' slots with redundant replicas, each slot
// going to the expert with the highest load per replica that the GPU does not
// hold yet. An expert's tokens split evenly over its replicas, so this also
// unloads the existing GPUs that hold hot experts, and no running shard pod has
// to be replaced (a changed shard means a new pod and a weight reload).
import { EMPTY_SLOT } from "./types.ts";
import type { GpuSlotInfo, Placement } from "./types.ts";

/**
 * undefined when `gpus` does not start with exactly the current placement's GPUs
 * (same ids and slot counts, in order) followed by at least one new GPU.
 */
export function extendPlacement(
  current: Placement,
  heat: ReadonlyArray<ReadonlyArray<number>>,
  gpus: readonly GpuSlotInfo[],
): Placement | undefined {
  const old = current.gpus.length;
  if (gpus.length <= old || heat.length !== current.layerCount) return undefined;
  for (let g = 0; g < old; g++) {
    if (gpus[g]!.gpuId !== current.gpus[g]!.gpuId || gpus[g]!.slotCount !== current.gpus[g]!.slotCount)
      return undefined;
  }
  const E = current.expertCount;
  const layers: number[][][] = [];
  for (let l = 0; l < current.layerCount; l++) {
    const row = heat[l]!;
    const count = new Float64Array(E);
    const existing = current.layers[l]!.map((slots) => [...slots]);
    for (const slots of existing) for (const e of slots) if (e >= 0 && e < E) count[e]! += 1;
    const fresh: number[][] = [];
    for (let g = old; g < gpus.length; g++) fresh.push(new Array<number>(gpus[g]!.slotCount).fill(EMPTY_SLOT));
    // Round-robin over the new GPUs so the hottest experts' extra replicas land on different GPUs.
    const maxSlots = Math.max(...gpus.slice(old).map((g) => g.slotCount));
    for (let s = 0; s < maxSlots; s++) {
      for (let k = 0; k < fresh.length; k++) {
        if (s >= fresh[k]!.length) continue;
        const onGpu = new Set(fresh[k]!.filter((e) => e >= 0));
        let best = -1;
        let bestScore = -1;
        for (let e = 0; e < E; e++) {
          if (onGpu.has(e)) continue;
          const w = Math.max(0, Number.isFinite(row[e]!) ? row[e]! : 0);
          const score = w / Math.max(1, count[e]!);
          if (score > bestScore || (score === bestScore && count[e]! < count[best]!)) {
            best = e;
            bestScore = score;
          }
        }
        if (best < 0) continue;
        fresh[k]![s] = best;
        count[best]! += 1;
      }
    }
    layers.push([...existing, ...fresh]);
  }
  return {
    version: 1,
    layerCount: current.layerCount,
    expertCount: E,
    gpus: gpus.map((g) => ({
      gpuId: g.gpuId,
      nodeName: g.nodeName,
      domain: g.domain ?? g.nodeName,
      slotCount: g.slotCount,
    })),
    layers,
  };
}
