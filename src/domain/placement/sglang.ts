// SGLang expert-location JSON: `{"physical_to_logical_map": [layers][physical slots]}` out,
// `{"logical_count": [layers][experts]}` in (both accepted by `--init-expert-location`).
// SGLang numbers physical experts rank by rank: physical id = rank * slotsPerGpu + slot, so every
// GPU must have the same slot count and no slot may be empty. Its arrays cover all model layers,
// dense ones included (DeepSeek-V3: layers 0-2 are dense); `denseLayerCount` maps between the two.

import type { ParseResult } from "./hash.ts";
import { EMPTY_SLOT } from "./types.ts";
import type { GpuSlotInfo, Placement } from "./types.ts";

export interface SglangPhysicalToLogicalMap {
  readonly physical_to_logical_map: number[][];
}

export interface SglangLayerOptions {
  /** Dense layers before the first MoE layer in SGLang's arrays (DeepSeek-V3: 3). */
  readonly denseLayerCount?: number;
}

/** Export as SGLang `physical_to_logical_map`; dense layers repeat the first MoE layer's row (SGLang ignores them). */
export function placementToSglang(
  placement: Placement,
  options: SglangLayerOptions = {},
): ParseResult<SglangPhysicalToLogicalMap> {
  const dense = options.denseLayerCount ?? 0;
  const slots = placement.gpus[0]?.slotCount ?? 0;
  if (placement.gpus.length === 0 || slots === 0)
    return { ok: false, reason: "SGLang needs at least one GPU with slots" };
  const uneven = placement.gpus.find((gpu) => gpu.slotCount !== slots);
  if (uneven)
    return {
      ok: false,
      reason: `SGLang needs the same slot count on every GPU: ${uneven.gpuId} has ${uneven.slotCount}, the first has ${slots}`,
    };
  const rows: number[][] = [];
  for (let l = 0; l < placement.layerCount; l++) {
    const row: number[] = [];
    const layer = placement.layers[l]!;
    for (let g = 0; g < layer.length; g++) {
      for (const e of layer[g]!) {
        if (e === EMPTY_SLOT)
          return {
            ok: false,
            reason: `SGLang needs every slot filled: layer ${l}, GPU ${placement.gpus[g]!.gpuId} has an empty slot`,
          };
        row.push(e);
      }
    }
    rows.push(row);
  }
  const denseRows = rows.length > 0 ? Array.from({ length: dense }, () => rows[0]!.slice()) : [];
  return { ok: true, value: { physical_to_logical_map: [...denseRows, ...rows] } };
}

/**
 * Import an SGLang `physical_to_logical_map` as a Placement over `gpus` (rank order, all with the same
 * slotCount = physical slots / GPUs). The first `denseLayerCount` rows are skipped.
 */
export function placementFromSglang(
  json: unknown,
  gpus: readonly GpuSlotInfo[],
  expertCount: number,
  options: SglangLayerOptions = {},
): ParseResult<Placement> {
  const map = (json as { physical_to_logical_map?: unknown } | null)?.physical_to_logical_map;
  if (!Array.isArray(map)) return { ok: false, reason: "expected an object with a physical_to_logical_map array" };
  const dense = options.denseLayerCount ?? 0;
  const rows = map.slice(dense) as unknown[];
  if (gpus.length === 0) return { ok: false, reason: "no GPUs given" };
  const layers: number[][][] = [];
  for (let l = 0; l < rows.length; l++) {
    const row = rows[l];
    if (!Array.isArray(row) || row.length % gpus.length !== 0) {
      return {
        ok: false,
        reason: `physical_to_logical_map[${l + dense}] must have a multiple of ${gpus.length} entries`,
      };
    }
    const perGpu = row.length / gpus.length;
    const layer: number[][] = [];
    for (let g = 0; g < gpus.length; g++) {
      const slots = row.slice(g * perGpu, (g + 1) * perGpu) as unknown[];
      for (const e of slots) {
        if (!Number.isInteger(e) || (e as number) < 0 || (e as number) >= expertCount) {
          return {
            ok: false,
            reason: `physical_to_logical_map[${l + dense}] holds ${String(e)}, not an expert id below ${expertCount}`,
          };
        }
      }
      layer.push(slots as number[]);
    }
    layers.push(layer);
  }
  const perGpu = layers[0]?.[0]?.length ?? 0;
  return {
    ok: true,
    value: {
      version: 1,
      layerCount: layers.length,
      expertCount,
      gpus: gpus.map((gpu) => ({
        gpuId: gpu.gpuId,
        nodeName: gpu.nodeName,
        domain: gpu.domain ?? "",
        slotCount: perGpu,
      })),
      layers,
    },
  };
}

export interface SglangHeat {
  /** [moeLayer][expert] token counts (or rates) of the MoE layers only. */
  readonly heat: number[][];
  /** Leading all-zero (dense) layers that were dropped. */
  readonly denseLayerCount: number;
}

/**
 * Read SGLang's `{"logical_count": [layers][experts]}` as heat. Leading layers whose counts are all
 * zero are dense and dropped, unless `denseLayerCount` says how many to drop.
 */
export function heatFromSglangLogicalCount(json: unknown, options: SglangLayerOptions = {}): ParseResult<SglangHeat> {
  const counts = (json as { logical_count?: unknown } | null)?.logical_count;
  if (!Array.isArray(counts) || counts.length === 0)
    return { ok: false, reason: "expected an object with a non-empty logical_count array" };
  const rows: number[][] = [];
  let width = -1;
  for (let l = 0; l < counts.length; l++) {
    const row: unknown = counts[l];
    if (!Array.isArray(row)) return { ok: false, reason: `logical_count[${l}] must be an array` };
    if (width < 0) width = row.length;
    if (row.length !== width || width === 0)
      return { ok: false, reason: `logical_count[${l}] has ${row.length} experts, expected ${width}` };
    const out: number[] = [];
    for (let e = 0; e < row.length; e++) {
      const v: unknown = row[e];
      if (typeof v !== "number" || !Number.isFinite(v) || v < 0)
        return { ok: false, reason: `logical_count[${l}][${e}] is ${String(v)}, not a count >= 0` };
      out.push(v);
    }
    rows.push(out);
  }
  let dense = options.denseLayerCount;
  if (dense === undefined) {
    dense = 0;
    while (dense < rows.length - 1 && rows[dense]!.every((v) => v === 0)) dense += 1;
  }
  if (dense >= rows.length)
    return { ok: false, reason: `denseLayerCount ${dense} leaves no MoE layer of ${rows.length}` };
  return { ok: true, value: { heat: rows.slice(dense), denseLayerCount: dense } };
}
