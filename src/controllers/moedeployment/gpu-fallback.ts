// spec.serving.gpu.alternatives: expert shards fall back to other GPU node types (issue 19 item 4,
// ADR 0023).
//
// A shard pod that the scheduler cannot place on spec.serving.gpu.nodeSelector's nodes for longer
// than spec.scaling.pendingTimeoutSeconds ("stuck") serves nothing and holds no GPU, so it is
// replaced at once, with no make-before-break: the replacement has the same shard index and expert
// set, a pod name of its own, moe.dev/gpu-fallback, and the fallback scheduling below. Only such
// replacements get it, and a rollout's new pod for a shard whose live pod has it (so a rebalance does
// not leave that shard waiting for the primary): every other new shard pod keeps the primary
// scheduling, so the fallback ends when a scale-down removes those shards or when they return to the
// primary nodes (gpuReturn below), and a shard that needs it again waits for the timeout again. A
// pending pod whose shard index also has a bound pod is a rollout's replacement waiting for that
// pod's GPU, not a shortage: it is not stuck.
//
// The fallback scheduling: the pod's nodeSelector becomes node-affinity terms, one per option (the
// template's nodeSelector with spec.serving.gpu.nodeSelector over it, then with each alternative's
// over it), OR-ed, and AND-ed with every required term the template or spec.serving.gpu.affinity
// already has (by distributing over them), with a preference for the primary labels that outweighs
// a staged node's and any alternative's together, then for each alternative in order. The pod
// tolerates spec.serving.gpu.tolerations plus every alternative's tolerations.
//
// Pure: no I/O.
import type {
  V1NodeSelectorRequirement,
  V1NodeSelectorTerm,
  V1PodSpec,
  V1PreferredSchedulingTerm,
  V1Toleration,
} from "@kubernetes/client-node";
import type { MoEDeployment } from "../../api/schema.ts";
import { fnv1a64 } from "../../domain/placement/index.ts";
import type { ShardPod } from "./codecs/shard-pod.ts";
import { pendingPastTimeout } from "./status.ts";

/** On a shard pod created with the fallback scheduling: "true". */
export const GPU_FALLBACK_ANNOTATION = "moe.dev/gpu-fallback";

/**
 * Preference weights (1-100): the primary nodes above a staged node's 50 plus any alternative's, then
 * each alternative in order. A replacement has no preferred node (its shard index exists).
 */
const PRIMARY_WEIGHT = 80;
const ALTERNATIVE_WEIGHTS = [20, 10, 5, 2] as const;

export interface GpuFallback {
  /** Shard pods with the primary scheduling unschedulable past the pending timeout: replaced now. */
  readonly stuck: readonly ShardPod[];
  /** The alternatives' nodes are in the node views (a stuck pod or a live fallback pod exists). */
  readonly inView: boolean;
}

const NONE: GpuFallback = { stuck: [], inView: false };

export function gpuFallback(spec: MoEDeployment["spec"], pods: readonly ShardPod[], nowMs: number): GpuFallback {
  const alternatives = spec.serving.gpu.alternatives ?? [];
  if (alternatives.length === 0 || spec.serving.topology !== "Disaggregated") return NONE;
  const bound = new Set(pods.filter((p) => p.pod.spec?.nodeName && !p.terminating).map((p) => p.shardIndex));
  const stuck = pendingPastTimeout(
    pods.filter((p) => !p.gpuFallback && p.drainStartedMs === undefined && !bound.has(p.shardIndex)),
    nowMs,
    spec.scaling.pendingTimeoutSeconds * 1000,
  ).map((x) => x.pod);
  return { stuck, inView: stuck.length > 0 || pods.some((p) => p.gpuFallback && !p.terminating) };
}

/** The name hash of a stuck pod's replacement: its own, so the two never share a name. */
export function fallbackNameHash(stuckNameHash: string): string {
  return fnv1a64(`${stuckNameHash}/gpu-fallback`);
}

const requirements = (labels: Record<string, string>): V1NodeSelectorRequirement[] =>
  Object.entries(labels)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([key, value]) => ({ key, operator: "In", values: [value] }));

const sameToleration = (a: V1Toleration, b: V1Toleration): boolean =>
  a.key === b.key &&
  (a.operator ?? "Equal") === (b.operator ?? "Equal") &&
  a.value === b.value &&
  a.effect === b.effect &&
  a.tolerationSeconds === b.tolerationSeconds;

/**
 * A shard pod spec built with the primary scheduling (podSpecFrom), turned into the fallback one.
 * `templateNodeSelector` is the template's own nodeSelector: each option is it with the primary's or
 * an alternative's labels over it, and the pod's nodeSelector goes (it is in the terms).
 */
export function withFallbackScheduling(
  spec: V1PodSpec,
  gpu: MoEDeployment["spec"]["serving"]["gpu"],
  templateNodeSelector: Record<string, string> | undefined,
): V1PodSpec {
  const base = templateNodeSelector ?? {};
  const options = [gpu.nodeSelector ?? {}, ...(gpu.alternatives ?? []).map((a) => a.nodeSelector)].map((labels) =>
    requirements({ ...base, ...labels }),
  );
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
  delete out.nodeSelector;
  // The alternatives' taints: tolerating one permits a node, the terms above still pick the type.
  const tolerations = [...(spec.tolerations ?? [])];
  for (const t of (gpu.alternatives ?? []).flatMap((a) => a.tolerations ?? [])) {
    if (!tolerations.some((x) => sameToleration(x, t))) tolerations.push({ ...t });
  }
  if (tolerations.length > 0) out.tolerations = tolerations;
  return out;
}

// ---------------------------------------------------------------------------------------------
// Return to the primary type (ADR 0023, "Return"). A fallback pod that serves on an alternative
// node goes back to the primary nodes once they have a free GPU again, make-before-break: a pod
// with the primary scheduling and the same shard index and expert set is created beside it
// (moe.dev/gpu-return-for names the fallback pod); once that pod is Ready the fallback pod is
// drained and deleted by the rollout as any obsolete pod. A return pod that the scheduler cannot
// place within the pending timeout is deleted (the fallback pod never stopped serving), and the
// shard is tried again when the node views show a free primary GPU.

/** On a shard pod created to take over a fallback pod's shard on the primary nodes: that pod's name. */
export const GPU_RETURN_ANNOTATION = "moe.dev/gpu-return-for";

/** What the node views say about room on the primary type. */
export interface PrimaryRoom {
  /** Free GPUs on the primary nodes (nodes not flagged fallbackOnly), after every shard pod's. */
  readonly freeGpus: number;
  /** Names of the alternatives' nodes (fallbackOnly in the node views). */
  readonly alternativeNodes: ReadonlySet<string>;
}

export interface GpuReturn {
  /** Fallback pods on an alternative node to be replaced on the primary nodes now. */
  readonly start: readonly ShardPod[];
  /** Fallback pods whose return pod is Ready: drain them now. */
  readonly finish: readonly { readonly fallback: ShardPod; readonly by: ShardPod }[];
  /** Return pods not placed within the pending timeout: delete them (their fallback pod serves on). */
  readonly abandon: readonly ShardPod[];
}

/**
 * The returns to start, finish and abandon. Return pods already under way are finished or abandoned
 * whatever the spec says now (alternatives removed, another moves mode), so none is stranded; new
 * returns start only with alternatives, topology Disaggregated, moves mode Replace, a room view and
 * `idle` (no rollout, scale or stuck-pod work in flight). `maxInFlight`: returns under way at once.
 */
export function gpuReturn(
  spec: MoEDeployment["spec"],
  pods: readonly ShardPod[],
  room: PrimaryRoom | undefined,
  nowMs: number,
  o: { readonly idle: boolean; readonly maxInFlight: number },
): GpuReturn {
  const live = pods.filter((p) => !p.terminating);
  // A return pod is paired with the live fallback pod it names (same shard and set); without one it
  // is just the shard's pod (the stuck-pod fallback and CapacityPending treat it as any other).
  const pairs = live
    .filter((p) => p.returnFor !== undefined && p.drainStartedMs === undefined)
    .map((r) => ({
      r,
      fallback: live.find((p) => p.name === r.returnFor && p.shardIndex === r.shardIndex && p.setHash === r.setHash),
    }))
    .filter((x): x is { r: ShardPod; fallback: ShardPod } => x.fallback !== undefined);
  const abandon = pendingPastTimeout(
    pairs.map((x) => x.r),
    nowMs,
    spec.scaling.pendingTimeoutSeconds * 1000,
  ).map((x) => x.pod);
  const finish: { fallback: ShardPod; by: ShardPod }[] = [];
  let inFlight = 0;
  for (const { r, fallback } of pairs) {
    if (abandon.includes(r) || fallback.drainStartedMs !== undefined) continue;
    if (r.ready) finish.push({ fallback, by: r });
    else inFlight++;
  }
  const applies =
    room !== undefined &&
    (spec.serving.gpu.alternatives ?? []).length > 0 &&
    spec.serving.topology === "Disaggregated" &&
    spec.placement.moves.mode === "Replace";
  if (!applies || !o.idle) return { start: [], finish, abandon };
  const onAlternative = (p: ShardPod) => {
    const node = p.pod.spec?.nodeName;
    return node !== undefined && node !== null && room.alternativeNodes.has(node);
  };
  const busy = new Set(pods.filter((p) => p.returnFor !== undefined || p.terminating).map((p) => p.shardIndex));
  const candidates = live
    .filter((p) => p.gpuFallback && p.ready && p.drainStartedMs === undefined && onAlternative(p))
    .filter((p) => !busy.has(p.shardIndex) && live.filter((q) => q.shardIndex === p.shardIndex).length === 1)
    .sort((a, b) => a.shardIndex - b.shardIndex);
  const n = Math.max(0, Math.min(Math.floor(room.freeGpus), Math.max(1, o.maxInFlight) - inFlight));
  return { start: candidates.slice(0, n), finish, abandon };
}

/** The name hash of a fallback pod's return pod. */
export function returnNameHash(fallbackNameHash: string): string {
  return fnv1a64(`${fallbackNameHash}/gpu-return`);
}
