// The objects an MoEDeployment owns, rendered deterministically from the spec
// and the decision: the router Deployment, one Pod per expert shard (and per
// expert set, for make-before-break), and the placement ConfigMap.
import type { V1ConfigMap, V1Deployment, V1OwnerReference, V1Pod, V1PodSpec, V1Container, V1Affinity } from "@kubernetes/client-node";
import { API_GROUP_VERSION, KIND, Label, LabelValue, Annotation, OPERATOR_KEY_PREFIX } from "../../api/constants.ts";
import type { MoEDeployment, PodTemplate } from "../../api/schema.ts";
import { fnv1a64, serializePlacement, placementToSglang, EMPTY_SLOT, type Placement } from "../../domain/placement/index.ts";
import type { HeatBasis } from "../../domain/decide.ts";

/** Annotations and labels on shard pods beyond the API's shared constants. */
export const ShardAnnotation = {
  /** JSON [moeLayer][experts]: the logical experts this shard holds. */
  experts: "moe.dev/experts",
  /** Content hash of the expert set (also a label). */
  expertSetHash: "moe.dev/expert-set-hash",
  /** RFC 3339 time the drain started; routers stop sending new work. */
  drainingSince: "moe.dev/draining-since",
} as const;
export const ShardLabel = {
  expertSetHash: "moe.dev/expert-set-hash",
  draining: "moe.dev/draining",
} as const;

export const childNames = (name: string) => ({
  router: `${name}-router`,
  placement: `${name}-placement`,
  shardPod: (index: number, setHash: string) => `${name}-shard-${index}-${setHash.slice(0, 10)}`,
});

export function ownerReference(d: MoEDeployment): V1OwnerReference {
  return {
    apiVersion: API_GROUP_VERSION,
    kind: KIND,
    name: d.metadata.name!,
    uid: d.metadata.uid!,
    controller: true,
    blockOwnerDeletion: true,
  };
}

export function commonLabels(d: MoEDeployment, component: string): Record<string, string> {
  return {
    [Label.name]: "moe-inference",
    [Label.instance]: d.metadata.name!,
    [Label.managedBy]: LabelValue.managedBy,
    [Label.partOf]: LabelValue.partOf,
    [Label.deployment]: d.metadata.name!,
    [Label.component]: component,
  };
}

export function shardSelector(name: string): string {
  return `${Label.deployment}=${name},${Label.component}=${LabelValue.componentExpertShard}`;
}

const OPERATOR_LABEL_KEYS: ReadonlySet<string> = new Set(Object.values(Label));

/**
 * A template's labels or annotations without the operator's own keys (moe.dev/*
 * and the app.kubernetes.io/* labels it sets). The schema refuses them; this is
 * defence in depth for objects stored before that rule or with validation off.
 */
export function withoutOperatorKeys(map: Record<string, string> | undefined): Record<string, string> {
  return Object.fromEntries(Object.entries(map ?? {}).filter(([k]) => !k.startsWith(OPERATOR_KEY_PREFIX) && !OPERATOR_LABEL_KEYS.has(k)));
}

/** experts[moeLayer] of GPU g of a placement (EMPTY_SLOT dropped, sorted). */
export function shardExperts(p: Placement, gpuIndex: number): number[][] {
  return p.layers.map((layer) => [...layer[gpuIndex]!].filter((e) => e !== EMPTY_SLOT).sort((a, b) => a - b));
}

export function expertSetHash(experts: ReadonlyArray<ReadonlyArray<number>>): string {
  return fnv1a64(JSON.stringify(experts));
}

function mergeAffinity(base: V1Affinity | undefined, extra: Record<string, unknown> | undefined, preferredNode: string | undefined): V1Affinity | undefined {
  const a: V1Affinity = structuredClone(base ?? {});
  if (extra) Object.assign(a, structuredClone(extra));
  if (preferredNode) {
    a.nodeAffinity ??= {};
    a.nodeAffinity.preferredDuringSchedulingIgnoredDuringExecution = [
      ...(a.nodeAffinity.preferredDuringSchedulingIgnoredDuringExecution ?? []),
      { weight: 100, preference: { matchExpressions: [{ key: "kubernetes.io/hostname", operator: "In", values: [preferredNode] }] } },
    ];
  }
  return Object.keys(a).length > 0 ? a : undefined;
}

function podSpecFrom(d: MoEDeployment, template: PodTemplate, gpus: number, env: { name: string; value: string }[], preferredNode?: string): V1PodSpec {
  const spec = structuredClone(template.spec) as unknown as V1PodSpec;
  const gpu = d.spec.serving.gpu;
  const containers = spec.containers.map((c, i): V1Container => {
    if (i !== 0) return c;
    const limits = { ...c.resources?.limits };
    const requests = { ...c.resources?.requests };
    if (gpus > 0) {
      limits[gpu.resourceName] = String(gpus);
      requests[gpu.resourceName] = String(gpus);
    }
    return { ...c, resources: { ...c.resources, limits, requests }, env: [...(c.env ?? []).filter((e) => !env.some((x) => x.name === e.name)), ...env] };
  });
  const out: V1PodSpec = { ...spec, containers };
  if (gpu.nodeSelector) out.nodeSelector = { ...spec.nodeSelector, ...gpu.nodeSelector };
  if (gpu.tolerations?.length) out.tolerations = [...(spec.tolerations ?? []), ...gpu.tolerations];
  const affinity = mergeAffinity(spec.affinity, gpu.affinity, preferredNode);
  if (affinity) out.affinity = affinity;
  return out;
}

export interface ShardPodInput {
  shardIndex: number;
  experts: number[][];
  setHash: string;
  placementVersion: number;
  placementHash: string;
  preferredNode?: string;
}

export function renderShardPod(d: MoEDeployment, s: ShardPodInput): V1Pod {
  const name = d.metadata.name!;
  const names = childNames(name);
  const t = d.spec.serving.expertShards.template;
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: {
      name: names.shardPod(s.shardIndex, s.setHash),
      namespace: d.metadata.namespace,
      labels: {
        ...withoutOperatorKeys(t.metadata?.labels),
        ...commonLabels(d, LabelValue.componentExpertShard),
        [Label.shardIndex]: String(s.shardIndex),
        [ShardLabel.expertSetHash]: s.setHash,
      },
      annotations: {
        ...withoutOperatorKeys(t.metadata?.annotations),
        [Annotation.placementVersion]: String(s.placementVersion),
        [Annotation.placementHash]: s.placementHash,
        [ShardAnnotation.expertSetHash]: s.setHash,
        [ShardAnnotation.experts]: JSON.stringify(s.experts),
      },
      ownerReferences: [ownerReference(d)],
    },
    spec: podSpecFrom(d, t, 1, [
      { name: "MOE_DEPLOYMENT", value: name },
      { name: "MOE_SHARD_INDEX", value: String(s.shardIndex) },
      { name: "MOE_EXPERT_SET_HASH", value: s.setHash },
      { name: "MOE_PLACEMENT_CONFIGMAP", value: names.placement },
    ], s.preferredNode),
  };
}

export function renderRouter(d: MoEDeployment): V1Deployment {
  const name = d.metadata.name!;
  const r = d.spec.serving.router;
  const labels = commonLabels(d, LabelValue.componentRouter);
  const selector = { [Label.deployment]: name, [Label.component]: LabelValue.componentRouter };
  return {
    apiVersion: "apps/v1",
    kind: "Deployment",
    metadata: { name: childNames(name).router, namespace: d.metadata.namespace, labels, ownerReferences: [ownerReference(d)] },
    spec: {
      replicas: r.replicas,
      selector: { matchLabels: selector },
      strategy: { type: "RollingUpdate", rollingUpdate: { maxSurge: 1, maxUnavailable: 0 } },
      template: {
        metadata: { labels: { ...withoutOperatorKeys(r.template.metadata?.labels), ...labels }, annotations: r.template.metadata?.annotations && withoutOperatorKeys(r.template.metadata.annotations) },
        spec: podSpecFrom(d, r.template, r.gpusPerReplica, [
          { name: "MOE_DEPLOYMENT", value: name },
          { name: "MOE_PLACEMENT_CONFIGMAP", value: childNames(name).placement },
        ]),
      },
    },
  };
}

export interface PlacementConfigMapInput {
  placement: Placement;
  hash: string;
  version: number;
  denseLayers: number;
  shards: { shardIndex: number; setHash: string }[];
  /** What the plan was made with ("none": before any heat, experts spread evenly). */
  heatBasis?: HeatBasis;
}

export function renderPlacementConfigMap(d: MoEDeployment, p: PlacementConfigMapInput): V1ConfigMap {
  const sglang = placementToSglang(p.placement, { denseLayerCount: p.denseLayers });
  const data: Record<string, string> = {
    version: String(p.version),
    hash: p.hash,
    "placement.json": serializePlacement(p.placement),
    "shards.json": JSON.stringify(p.shards),
  };
  if (p.heatBasis) data["heat-basis"] = p.heatBasis;
  if (sglang.ok) data["physical_to_logical_map.json"] = JSON.stringify(sglang.value);
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
