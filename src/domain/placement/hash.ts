// Canonical JSON and a content hash for placements (FNV-1a 64-bit over the UTF-8 bytes of the
// canonical JSON), so the operator can version the ConfigMap it publishes.

import { fnv1a64 } from "../fnv.ts";
import { EMPTY_SLOT } from "./types.ts";
import type { Placement, PlacementGpu } from "./types.ts";

/** Canonical JSON: fixed key order, no whitespace. Same placement -> byte-identical string. */
export function serializePlacement(placement: Placement): string {
  const canonical = {
    version: 1,
    layerCount: placement.layerCount,
    expertCount: placement.expertCount,
    gpus: placement.gpus.map((gpu) => ({
      gpuId: gpu.gpuId,
      nodeName: gpu.nodeName,
      domain: gpu.domain,
      slotCount: gpu.slotCount,
    })),
    layers: placement.layers,
    ...(placement.pendingMoves !== undefined && placement.pendingMoves > 0
      ? { pendingMoves: placement.pendingMoves }
      : {}),
  };
  return JSON.stringify(canonical);
}

export { fnv1a64 };

/**
 * Content hash of a placement's expert layout: which expert every slot of every GPU (by gpuId)
 * holds. Node names and topology domains are left out on purpose: they record where a shard
 * happens to run (a pod landing on another node relabels the placement), and a new version must
 * mean new expert weights to load, not a scheduler's choice.
 */
export function placementHash(placement: Placement): string {
  return fnv1a64(
    JSON.stringify({
      version: 1,
      layerCount: placement.layerCount,
      expertCount: placement.expertCount,
      gpus: placement.gpus.map((gpu) => ({ gpuId: gpu.gpuId, slotCount: gpu.slotCount })),
      layers: placement.layers,
    }),
  );
}

export type ParseResult<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly reason: string };

/** Validate JSON (e.g. read back from a ConfigMap) as a Placement. */
export function parsePlacement(json: unknown): ParseResult<Placement> {
  if (typeof json !== "object" || json === null) return { ok: false, reason: "placement must be an object" };
  const o = json as Record<string, unknown>;
  if (o["version"] !== 1) return { ok: false, reason: `placement.version must be 1, got ${String(o["version"])}` };
  const layerCount = o["layerCount"];
  const expertCount = o["expertCount"];
  if (!Number.isInteger(layerCount) || (layerCount as number) < 0)
    return { ok: false, reason: "placement.layerCount must be an integer >= 0" };
  if (!Number.isInteger(expertCount) || (expertCount as number) < 1)
    return { ok: false, reason: "placement.expertCount must be an integer >= 1" };
  if (!Array.isArray(o["gpus"])) return { ok: false, reason: "placement.gpus must be an array" };
  const gpus = parseGpus(o["gpus"] as unknown[]);
  if (typeof gpus === "string") return { ok: false, reason: gpus };
  const layers = o["layers"];
  if (!Array.isArray(layers) || layers.length !== layerCount)
    return { ok: false, reason: `placement.layers must be an array of ${String(layerCount)} layers` };
  const layerError = checkLayers(layers, gpus, expertCount as number);
  if (layerError !== undefined) return { ok: false, reason: layerError };
  const pendingMoves = o["pendingMoves"];
  if (pendingMoves !== undefined && (!Number.isInteger(pendingMoves) || (pendingMoves as number) < 0)) {
    return {
      ok: false,
      reason: `placement.pendingMoves must be an integer >= 0 when present, got ${JSON.stringify(pendingMoves)}`,
    };
  }
  const value: Placement = {
    version: 1,
    layerCount: layerCount as number,
    expertCount: expertCount as number,
    gpus,
    layers: layers as number[][][],
  };
  return { ok: true, value: typeof pendingMoves === "number" && pendingMoves > 0 ? { ...value, pendingMoves } : value };
}

/** The GPUs of a placement, or the reason they are invalid. */
function parseGpus(raw: unknown[]): PlacementGpu[] | string {
  const gpus: PlacementGpu[] = [];
  for (const [i, g] of raw.entries()) {
    const gpu = g as Record<string, unknown> | null;
    if (
      typeof gpu !== "object" ||
      gpu === null ||
      typeof gpu["gpuId"] !== "string" ||
      typeof gpu["nodeName"] !== "string" ||
      typeof gpu["domain"] !== "string" ||
      !Number.isInteger(gpu["slotCount"]) ||
      (gpu["slotCount"] as number) < 0
    ) {
      return `placement.gpus[${i}] must have string gpuId, nodeName, domain and integer slotCount >= 0`;
    }
    gpus.push({
      gpuId: gpu["gpuId"],
      nodeName: gpu["nodeName"],
      domain: gpu["domain"],
      slotCount: gpu["slotCount"] as number,
    });
  }
  return gpus;
}

/** Why the layers do not fit the GPUs and expert count, or undefined when they do. */
function checkLayers(layers: unknown[], gpus: readonly PlacementGpu[], expertCount: number): string | undefined {
  for (let l = 0; l < layers.length; l++) {
    const layer: unknown = layers[l];
    if (!Array.isArray(layer) || layer.length !== gpus.length)
      return `placement.layers[${l}] must have one entry per GPU (${gpus.length})`;
    for (let g = 0; g < layer.length; g++) {
      const slots: unknown = layer[g];
      if (!Array.isArray(slots) || slots.length !== gpus[g]!.slotCount) {
        return `placement.layers[${l}][${g}] must have ${gpus[g]!.slotCount} slots`;
      }
      for (const e of slots as unknown[]) {
        if (
          !Number.isInteger(e) ||
          ((e as number) !== EMPTY_SLOT && ((e as number) < 0 || (e as number) >= expertCount))
        ) {
          return `placement.layers[${l}][${g}] holds ${String(e)}, not an expert id or ${EMPTY_SLOT}`;
        }
      }
    }
  }
  return undefined;
}
