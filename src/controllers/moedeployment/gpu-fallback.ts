// spec.serving.gpu.alternatives: expert shards fall back to other GPU node types (issue 19 item 4,
// ADR 0022).
//
// A shard pod that the scheduler cannot place on spec.serving.gpu.nodeSelector's nodes for longer
// than spec.scaling.pendingTimeoutSeconds ("stuck") serves nothing and holds no GPU, so it is
// replaced at once, with no make-before-break: the replacement has the same shard index and expert
// set and a pod name of its own, and its scheduling is the fallback one below. While any pod with the
// fallback scheduling lives (or a stuck one exists), every new shard pod gets it too; it prefers
// the primary nodes, so a pod created while the fallback is in force still lands there when they
// have room. The fallback ends by itself when its last pod is gone (a scale-down or a rollout).
//
// The fallback scheduling: spec.serving.gpu.nodeSelector's labels leave the pod's nodeSelector and
// become node-affinity terms, OR-ed with one term per alternative (AND-ed with every required term
// the template or spec.serving.gpu.affinity already has, by distributing over them), with a
// preference for the primary labels, then each alternative in order.
//
// Pure: no I/O.
import type {
  V1NodeSelectorRequirement,
  V1NodeSelectorTerm,
  V1PodSpec,
  V1PreferredSchedulingTerm,
} from "@kubernetes/client-node";
import type { MoEDeployment } from "../../api/schema.ts";
import { fnv1a64 } from "../../domain/placement/index.ts";
import type { ShardPod } from "./codecs/shard-pod.ts";
import { pendingPastTimeout } from "./status.ts";

/** On a shard pod created with the fallback scheduling: "true". */
export const GPU_FALLBACK_ANNOTATION = "moe.dev/gpu-fallback";

/** Preference weights: the primary nodes, then each alternative in order (1-100; below the preferred node's 100). */
const PRIMARY_WEIGHT = 40;
const ALTERNATIVE_WEIGHTS = [30, 20, 10, 5] as const;

export interface GpuFallback {
  /** Shard pods with the primary scheduling unschedulable past the pending timeout: replaced now. */
  readonly stuck: readonly ShardPod[];
  /** New shard pods get the fallback scheduling. */
  readonly inForce: boolean;
}

const NONE: GpuFallback = { stuck: [], inForce: false };

export function gpuFallback(spec: MoEDeployment["spec"], pods: readonly ShardPod[], nowMs: number): GpuFallback {
  const alternatives = spec.serving.gpu.alternatives ?? [];
  if (alternatives.length === 0 || spec.serving.topology !== "Disaggregated") return NONE;
  const stuck = pendingPastTimeout(
    pods.filter((p) => !p.gpuFallback && p.drainStartedMs === undefined),
    nowMs,
    spec.scaling.pendingTimeoutSeconds * 1000,
  ).map((x) => x.pod);
  return { stuck, inForce: stuck.length > 0 || pods.some((p) => p.gpuFallback && !p.terminating) };
}

/** The name hash of a stuck pod's replacement: its own, so the two never share a name. */
export function fallbackNameHash(stuckNameHash: string): string {
  return fnv1a64(`${stuckNameHash}/gpu-fallback`);
}

const requirements = (labels: Record<string, string>): V1NodeSelectorRequirement[] =>
  Object.entries(labels)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([key, value]) => ({ key, operator: "In", values: [value] }));

/**
 * A shard pod spec built with the primary scheduling (podSpecFrom), turned into the fallback one.
 * `templateNodeSelector` is the template's own nodeSelector (the keys spec.serving.gpu and the
 * alternatives set are taken out of it: they are in the terms).
 */
export function withFallbackScheduling(
  spec: V1PodSpec,
  gpu: MoEDeployment["spec"]["serving"]["gpu"],
  templateNodeSelector: Record<string, string> | undefined,
): V1PodSpec {
  const alternatives = gpu.alternatives ?? [];
  const primary = gpu.nodeSelector ?? {};
  const switched = new Set([...Object.keys(primary), ...alternatives.flatMap((a) => Object.keys(a.nodeSelector))]);
  const kept = Object.fromEntries(Object.entries(templateNodeSelector ?? {}).filter(([k]) => !switched.has(k)));
  const options = [primary, ...alternatives.map((a) => a.nodeSelector)].map(requirements);
  const affinity = structuredClone(spec.affinity ?? {});
  const nodeAffinity = (affinity.nodeAffinity ??= {});
  const existing = nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution?.nodeSelectorTerms ?? [];
  const terms: V1NodeSelectorTerm[] =
    existing.length === 0
      ? options.map((o) => ({ matchExpressions: o }))
      : existing.flatMap((t) =>
          options.map((o) => ({
            ...(t.matchFields ? { matchFields: t.matchFields } : {}),
            matchExpressions: [...(t.matchExpressions ?? []), ...o],
          })),
        );
  nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution = { nodeSelectorTerms: terms };
  const preferences: V1PreferredSchedulingTerm[] = options.map((o, i) => ({
    weight: i === 0 ? PRIMARY_WEIGHT : (ALTERNATIVE_WEIGHTS[i - 1] ?? 1),
    preference: { matchExpressions: o },
  }));
  nodeAffinity.preferredDuringSchedulingIgnoredDuringExecution = [
    ...(nodeAffinity.preferredDuringSchedulingIgnoredDuringExecution ?? []),
    ...preferences,
  ];
  const out: V1PodSpec = { ...spec, affinity };
  if (Object.keys(kept).length > 0) out.nodeSelector = kept;
  else delete out.nodeSelector;
  return out;
}

/** Whether a node's labels match the primary selector or one alternative's (the fallback's reach). */
export function matchesAlternative(
  labels: Record<string, string>,
  gpu: MoEDeployment["spec"]["serving"]["gpu"],
): string | undefined {
  return (gpu.alternatives ?? []).find((a) => Object.entries(a.nodeSelector).every(([k, v]) => labels[k] === v))?.name;
}
