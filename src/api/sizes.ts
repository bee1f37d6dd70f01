// Worst-case sizes of what the operator writes for a MoEDeployment, against the
// limits Kubernetes enforces on it (see docs/adr/0008-admission-limits.md).
// Each bound is written twice from the same constants: as a TypeScript function
// (zod refinements, unit tests, the decide() benchmark) and as a CEL expression
// (the CRD's x-kubernetes-validations), so the API server and the operator agree.
//
// The encodings bounded here are those of src/controllers/moedeployment/codecs/:
// - pod annotation moe.dev/experts: JSON [moeLayer][expert ids] of one shard;
// - placement ConfigMap: placement.json (gpus + [moeLayer][gpu][slot]),
//   physical_to_logical_map.json ([layer][gpu x slot], dense layers included),
//   shards.json, version, hash, heat-basis. move-cost.json is not bounded here: it is written only
//   while it fits under the limit (placement-configmap.ts), so it never changes what is admitted.

/** Kubernetes: total bytes of a ConfigMap's data and binaryData (keys and values). */
export const CONFIGMAP_LIMIT_BYTES = 1024 * 1024;
/** Kubernetes: total bytes of an object's annotations (keys and values). */
export const ANNOTATIONS_LIMIT_BYTES = 256 * 1024;
/** Kubernetes: longest label value; the MoEDeployment name is one (moe.dev/deployment). */
export const LABEL_VALUE_MAX_LENGTH = 63;
/** Cap on the annotations of a pod template (keys and values); the rest is the operator's. */
export const TEMPLATE_ANNOTATIONS_MAX_BYTES = 64 * 1024;
/** Cap on the number of annotations of a pod template. */
export const TEMPLATE_ANNOTATIONS_MAX_ENTRIES = 128;
/** Cap on the number of labels of a pod template. */
export const TEMPLATE_LABELS_MAX_ENTRIES = 64;
/** Reserved for the operator's small shard-pod annotations (placement version and hash, set hash, draining-since). */
export const OPERATOR_ANNOTATIONS_RESERVE_BYTES = 1024;
/** What is left for the moe.dev/experts annotation of a shard pod (key and value). */
export const EXPERTS_ANNOTATION_MAX_BYTES =
  ANNOTATIONS_LIMIT_BYTES - TEMPLATE_ANNOTATIONS_MAX_BYTES - OPERATOR_ANNOTATIONS_RESERVE_BYTES;
/**
 * Worst case of one entry of placement.json's gpus list:
 * {"gpuId":"shard-99999","nodeName":<253>,"domain":<253>,"slotCount":4096}, plus slack.
 */
export const GPU_ENTRY_MAX_BYTES = 600;
/** Worst case of one entry of shards.json: {"shardIndex":99999,"setHash":<16 hex>}, plus slack. */
export const SHARD_ENTRY_MAX_BYTES = 64;
/** Keys, version, hash, heat-basis and JSON framing of the placement ConfigMap, plus slack. */
export const CONFIGMAP_FIXED_BYTES = 512;

/** The shape fields the bounds depend on. */
export interface ShapeInput {
  layers: number;
  denseLayers: number;
  routedExperts: number;
  expertSlotsPerGpu: number;
}

/** Bytes of one slot entry in JSON, comma included: the widest expert id, or -1 for an empty slot. */
export function slotEntryBytes(routedExperts: number): number {
  return routedExperts <= 100 ? 3 : routedExperts <= 1000 ? 4 : 5;
}

/** Worst-case bytes of the moe.dev/experts annotation (key and value) of one shard pod. */
export function expertsAnnotationBytes(m: ShapeInput): number {
  const moeLayers = m.layers - m.denseLayers;
  return moeLayers * (m.expertSlotsPerGpu * slotEntryBytes(m.routedExperts) + 2) + 17;
}

/** configMapBytesPerShard in words, for messages. */
export const CONFIGMAP_PER_SHARD_FORMULA =
  `MoE layers x (expertSlotsPerGpu x B + 2) + layers x expertSlotsPerGpu x B + ${GPU_ENTRY_MAX_BYTES + SHARD_ENTRY_MAX_BYTES} bytes ` +
  "(B = 3, 4 or 5 bytes per expert id for up to 100, 1000 or more routedExperts)";

/** Worst-case bytes one shard adds to the placement ConfigMap. */
export function configMapBytesPerShard(m: ShapeInput): number {
  const e = slotEntryBytes(m.routedExperts);
  const moeLayers = m.layers - m.denseLayers;
  return (
    moeLayers * (m.expertSlotsPerGpu * e + 2) +
    m.layers * m.expertSlotsPerGpu * e +
    GPU_ENTRY_MAX_BYTES +
    SHARD_ENTRY_MAX_BYTES
  );
}

/** Worst-case bytes of the placement ConfigMap at `shards` shards. */
export function configMapBytes(m: ShapeInput, shards: number): number {
  return shards * configMapBytesPerShard(m) + 4 * m.layers + CONFIGMAP_FIXED_BYTES;
}

/** The most shards whose placement ConfigMap fits Kubernetes' limit (0 when not even one fits). */
export function maxShardsForConfigMap(m: ShapeInput): number {
  return Math.max(
    0,
    Math.floor((CONFIGMAP_LIMIT_BYTES - 4 * m.layers - CONFIGMAP_FIXED_BYTES) / configMapBytesPerShard(m)),
  );
}

// ---------------------------------------------------------------------------
// The same bounds in CEL, over a model object reached by `model` (e.g. "self" or "self.model").

const celSlotEntryBytes = (model: string) =>
  `(${model}.routedExperts <= 100 ? 3 : ${model}.routedExperts <= 1000 ? 4 : 5)`;
const celMoeLayers = (model: string) => `(${model}.layers - ${model}.denseLayers)`;

export function celExpertsAnnotationBytes(model: string): string {
  return `${celMoeLayers(model)} * (${model}.expertSlotsPerGpu * ${celSlotEntryBytes(model)} + 2) + 17`;
}

export function celConfigMapBytesPerShard(model: string): string {
  const e = celSlotEntryBytes(model);
  return `(${celMoeLayers(model)} * (${model}.expertSlotsPerGpu * ${e} + 2) + ${model}.layers * ${model}.expertSlotsPerGpu * ${e} + ${GPU_ENTRY_MAX_BYTES + SHARD_ENTRY_MAX_BYTES})`;
}

export function celMaxShardsForConfigMap(model: string): string {
  return `((${CONFIGMAP_LIMIT_BYTES} - 4 * ${model}.layers - ${CONFIGMAP_FIXED_BYTES}) / ${celConfigMapBytesPerShard(model)})`;
}
