// The placement ConfigMap codec: the published placement (versioned, with the
// SGLang physical_to_logical_map) and how the operator reads it back.
import type { V1ConfigMap } from "@kubernetes/client-node";
import { Annotation } from "../../../api/constants.ts";
import type { MoEDeployment } from "../../../api/schema.ts";
import { CONFIGMAP_LIMIT_BYTES } from "../../../api/sizes.ts";
import {
  parsePlacement,
  placementHash,
  placementToSglang,
  serializePlacement,
  type MoveCost,
  type Placement,
} from "../../../domain/placement/index.ts";
import type { HeatBasis } from "../../../domain/decide.ts";
import { childNames, commonLabels, ownerReference } from "../children.ts";

/** Keys of the ConfigMap's data. */
export const PlacementKey = {
  version: "version",
  hash: "hash",
  placement: "placement.json",
  shards: "shards.json",
  heatBasis: "heat-basis",
  sglangMap: "physical_to_logical_map.json",
  moveCost: "move-cost.json",
} as const;

/**
 * move-cost.json: what the change from the previous placement loads. Chunks are
 * [firstMoeLayer, lastMoeLayer, longest shard stall in ms (rounded up)], in the order they run.
 * `detail: false` leaves out the per-layer lists (chunks, overBoundMoeLayers) and says so.
 */
export function moveCostDocument(c: MoveCost, maxStallSeconds: number, detail = true): string {
  const summary = {
    movedReplicas: c.moves,
    movedBytes: c.bytes,
    bytesByPath: { nvlink: c.byPath.nvlink.bytes, network: c.byPath.network.bytes, storage: c.byPath.storage.bytes },
    estimatedSeconds: Math.round(c.estimatedSeconds * 1e6) / 1e6,
    maxStallSeconds: Math.round(c.maxStallSeconds * 1e6) / 1e6,
    maxStallShard: c.maxStallGpuId,
    stallBoundSeconds: maxStallSeconds,
    chunkCount: c.chunks.length,
    overBoundLayerCount: c.overBoundLayers.length,
  };
  if (!detail) return JSON.stringify({ ...summary, detailOmitted: "the placement ConfigMap limit" });
  return JSON.stringify({
    ...summary,
    chunks: c.chunks.map((k) => [k.firstLayer, k.lastLayer, Math.ceil(k.stallSeconds * 1000)]),
    overBoundMoeLayers: c.overBoundLayers,
  });
}

const dataBytes = (data: Record<string, string>): number =>
  Object.entries(data).reduce((n, [k, v]) => n + Buffer.byteLength(k) + Buffer.byteLength(v), 0);

/**
 * Adds move-cost.json only while the ConfigMap stays within Kubernetes' limit: in full, else its
 * summary, else not at all. The admission bound (src/api/sizes.ts) covers everything else, so a
 * placement the API admits is always published.
 */
export function addMoveCost(data: Record<string, string>, m: NonNullable<PlacementConfigMapInput["moveCost"]>): void {
  const room = CONFIGMAP_LIMIT_BYTES - dataBytes(data) - Buffer.byteLength(PlacementKey.moveCost);
  for (const detail of [true, false]) {
    const doc = moveCostDocument(m.cost, m.maxStallSeconds, detail);
    if (Buffer.byteLength(doc) <= room) {
      data[PlacementKey.moveCost] = doc;
      return;
    }
  }
}

export interface PlacementConfigMapInput {
  placement: Placement;
  hash: string;
  version: number;
  denseLayers: number;
  shards: { shardIndex: number; setHash: string }[];
  /** What the plan was made with ("none": before any heat, experts spread evenly). */
  heatBasis?: HeatBasis;
  /** What the change from the previous placement loads, and the stall bound it was chunked for. */
  moveCost?: { cost: MoveCost; maxStallSeconds: number };
}

export interface PublishedPlacement {
  placement: Placement;
  hash: string;
  version: number;
  heatBasis?: HeatBasis;
}

export function renderPlacementConfigMap(d: MoEDeployment, p: PlacementConfigMapInput): V1ConfigMap {
  const sglang = placementToSglang(p.placement, { denseLayerCount: p.denseLayers });
  const data: Record<string, string> = {
    [PlacementKey.version]: String(p.version),
    [PlacementKey.hash]: p.hash,
    [PlacementKey.placement]: serializePlacement(p.placement),
    [PlacementKey.shards]: JSON.stringify(p.shards),
  };
  if (p.heatBasis) data[PlacementKey.heatBasis] = p.heatBasis;
  if (sglang.ok) data[PlacementKey.sglangMap] = JSON.stringify(sglang.value);
  if (p.moveCost) addMoveCost(data, p.moveCost); // last: it takes only the room the rest leaves
  return {
    apiVersion: "v1",
    kind: "ConfigMap",
    metadata: {
      name: childNames(d.metadata.name!).placement,
      namespace: d.metadata.namespace,
      labels: commonLabels(d, "placement"),
      annotations: { [Annotation.placementVersion]: String(p.version), [Annotation.placementHash]: p.hash },
      ownerReferences: [ownerReference(d)],
    },
    data,
  };
}

function readHeatBasis(value: string | undefined): HeatBasis | undefined {
  return value === "observed" || value === "remembered" || value === "none" ? value : undefined;
}

/**
 * The published placement, or undefined when the ConfigMap is missing, does not parse, or its
 * placement does not match its hash (edited or corrupted).
 */
export function readPlacementConfigMap(cm: V1ConfigMap | undefined): PublishedPlacement | undefined {
  const text = cm?.data?.[PlacementKey.placement];
  if (!text) return undefined;
  try {
    const parsed = parsePlacement(JSON.parse(text));
    if (!parsed.ok) return undefined;
    const hash = placementHash(parsed.value);
    const written = cm?.data?.[PlacementKey.hash];
    if (written !== undefined && written !== hash) return undefined;
    return {
      placement: parsed.value,
      hash,
      version:
        Number(cm?.data?.[PlacementKey.version] ?? cm?.metadata?.annotations?.[Annotation.placementVersion] ?? 0) || 0,
      heatBasis: readHeatBasis(cm?.data?.[PlacementKey.heatBasis]),
    };
  } catch {
    return undefined;
  }
}
