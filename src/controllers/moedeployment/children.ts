// What the children an MoEDeployment owns have in common: deterministic names,
// owner reference, labels, the pod spec built from a template. Each child has
// its own codec in codecs/ (router Deployment, one Pod per expert shard and
// expert set, the placement ConfigMap).
import type { V1OwnerReference, V1PodSpec, V1Container, V1Affinity } from "@kubernetes/client-node";
import { API_GROUP_VERSION, KIND, Label, LabelValue, OPERATOR_KEY_PREFIX } from "../../api/constants.ts";
import type { MoEDeployment, PodTemplate } from "../../api/schema.ts";
import { fnv1a64, EMPTY_SLOT, type Placement } from "../../domain/placement/index.ts";

export const childNames = (name: string) => ({
  router: `${name}-router`,
  placement: `${name}-placement`,
  /** The LeaderWorkerSet of a WideEP deployment (one role). */
  epGroups: `${name}-ep`,
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
  return Object.fromEntries(
    Object.entries(map ?? {}).filter(([k]) => !k.startsWith(OPERATOR_KEY_PREFIX) && !OPERATOR_LABEL_KEYS.has(k)),
  );
}

/** experts[moeLayer] of GPU g of a placement (EMPTY_SLOT dropped, sorted). */
export function shardExperts(p: Placement, gpuIndex: number): number[][] {
  return p.layers.map((layer) => [...layer[gpuIndex]!].filter((e) => e !== EMPTY_SLOT).sort((a, b) => a - b));
}

export function expertSetHash(experts: ReadonlyArray<ReadonlyArray<number>>): string {
  return fnv1a64(JSON.stringify(experts));
}

function mergeAffinity(
  base: V1Affinity | undefined,
  extra: Record<string, unknown> | undefined,
): V1Affinity | undefined {
  const a: V1Affinity = structuredClone(base ?? {});
  if (extra) Object.assign(a, structuredClone(extra));
  return Object.keys(a).length > 0 ? a : undefined;
}

/** The template's pod spec with the GPU request, the operator's env and spec.serving.gpu scheduling merged in. */
export function podSpecFrom(
  d: MoEDeployment,
  template: PodTemplate,
  gpus: number,
  env: { name: string; value: string }[],
): V1PodSpec {
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
    return {
      ...c,
      resources: { ...c.resources, limits, requests },
      env: [...(c.env ?? []).filter((e) => !env.some((x) => x.name === e.name)), ...env],
    };
  });
  const out: V1PodSpec = { ...spec, containers };
  if (gpu.nodeSelector) out.nodeSelector = { ...spec.nodeSelector, ...gpu.nodeSelector };
  if (gpu.tolerations?.length) out.tolerations = [...(spec.tolerations ?? []), ...gpu.tolerations];
  const affinity = mergeAffinity(spec.affinity, gpu.affinity);
  if (affinity) out.affinity = affinity;
  return out;
}
