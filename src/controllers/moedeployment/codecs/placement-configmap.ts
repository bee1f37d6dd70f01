// The placement ConfigMap codec: the published placement (versioned, with the
// SGLang physical_to_logical_map) and how the operator reads it back.
import type { V1ConfigMap } from "@kubernetes/client-node";
import { Annotation } from "../../../api/constants.ts";
import type { MoEDeployment } from "../../../api/schema.ts";
import {
  parsePlacement,
  placementHash,
  placementToSglang,
  serializePlacement,
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
} as const;

export interface PlacementConfigMapInput {
  placement: Placement;
  hash: string;
  version: number;
  denseLayers: number;
  shards: { shardIndex: number; setHash: string }[];
  /** What the plan was made with ("none": before any heat, experts spread evenly). */
  heatBasis?: HeatBasis;
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
