// The shard pod codec: how one expert shard is written as a Pod and read back.
// Render and read share the key constants below, so what the operator reads
// from a pod (index, expert set, drain mark, the node it asked for) is what it
// wrote.
import type { V1Affinity, V1Pod, V1PodSpec, V1PreferredSchedulingTerm } from "@kubernetes/client-node";
import type { CachedPod } from "../cached.ts";
import { Annotation, Label, LabelValue } from "../../../api/constants.ts";
import { disaggregated, type MoEDeployment } from "../../../api/schema.ts";
import type { InPlacePod, InPlaceState } from "../../../domain/inplace/index.ts";
import type { ExpertPeers } from "../../../domain/inplace/peers.ts";
import { childNames, commonLabels, ownerReference, podSpecFrom, withoutOperatorKeys } from "../children.ts";
import { stagedLabelKey, stagingDigest } from "../staging.ts";
import { GPU_FALLBACK_ANNOTATION, GPU_RETURN_ANNOTATION, withFallbackScheduling } from "../gpu-fallback.ts";

/** Annotations on shard pods beyond the API's shared constants. */
export const ShardAnnotation = {
  /** JSON [moeLayer][experts]: the logical experts this shard holds. */
  experts: "moe.dev/experts",
  /** Content hash of the expert set (also a label). */
  expertSetHash: "moe.dev/expert-set-hash",
  /** RFC 3339 time the drain started; routers stop sending new work. */
  drainingSince: "moe.dev/draining-since",
  /** The node the operator asked the scheduler to prefer (also a weight-100 hostname affinity term). */
  preferredNode: "moe.dev/preferred-node",
  /** InPlace: generation of the target set in moe.dev/experts (1 for a new pod's first set). */
  targetGeneration: "moe.dev/target-generation",
  /** InPlace: RFC 3339 time the target was written (the acknowledgement deadline counts from it). */
  targetSince: "moe.dev/target-since",
  /** InPlace: JSON [moeLayer][experts] the shard served when the target was written. */
  servedExperts: "moe.dev/served-experts",
  /** InPlace: Initial (a new pod's first load), Load (served ∪ new) or Release (the new set). */
  placementPhase: "moe.dev/placement-phase",
  /** InPlace: JSON [moeLayer][experts], the shard's set in the placement version it moves to (what routers send it once served). */
  placementExperts: "moe.dev/placement-experts",
  /**
   * Written by the engine or its agent when the pod's first load is done: where its weights came from,
   * "peer" (Ready replicas), "node-disk" (a node cache) or "remote" (the weight store). The operator
   * learns the cold start per tier from it (ADR 0019).
   */
  loadTier: "moe.dev/load-tier",
  /**
   * Written by the operator on a new shard pod and on an in-place load: JSON {"pods": [{name, node,
   * ip}], "layers": [[[expert, podIndex], ...], ...], "fromStore": n}, the Ready peer each expert to
   * load can be fetched from (same node first); experts not listed come from the node's disk or the
   * store (ADR 0019 "Peers in the placement").
   */
  expertPeers: "moe.dev/expert-peers",
} as const;

/** Largest moe.dev/expert-peers value written (a pod's annotations are limited to 256 KiB in all). */
export const MAX_EXPERT_PEERS_BYTES = 64 * 1024;

/** The moe.dev/expert-peers value, or undefined when no peer is named or it would be too large. */
export function expertPeersAnnotation(p: ExpertPeers): string | undefined {
  if (p.pods.length === 0) return undefined;
  const v = JSON.stringify(p);
  return v.length <= MAX_EXPERT_PEERS_BYTES ? v : undefined;
}
/**
 * InPlace: the pod condition the shard writes (pods/status). Status True while it serves a generation,
 * reason Applied with message "serving generation G", or reason Refused with message "refused
 * generation G: <why>; serving generation H" (status False when it serves none yet). Either message
 * may end with "; room for N more expert replicas": what its free expert memory holds beyond what it
 * serves, which bounds its next load (ADR 0018). New pods carry it as a readiness gate.
 */
export const PLACEMENT_APPLIED_CONDITION = "moe.dev/placement-applied";
export const ShardLabel = {
  expertSetHash: "moe.dev/expert-set-hash",
  draining: "moe.dev/draining",
} as const;

const HOSTNAME_KEY = "kubernetes.io/hostname";
const PREFERRED_NODE_WEIGHT = 100;
const STAGED_NODE_WEIGHT = 50;

export interface ShardPodInput {
  shardIndex: number;
  experts: number[][];
  setHash: string;
  placementVersion: number;
  placementHash: string;
  preferredNode?: string;
  /** Overrides the template's priorityClassName (pods restoring a replica no Ready pod holds). */
  priorityClassName?: string;
  /** Least termination grace period: a pod deleted at the drain deadline gets this long again to finish. */
  minTerminationGraceSeconds?: number;
  /** InPlace: generation-1 annotations and the moe.dev/placement-applied readiness gate. */
  inPlace?: { nowIso: string };
  /** Hash in the pod name instead of setHash (InPlace: the set and the placement version, so a replacement never takes a live pod's name). */
  nameHash?: string;
  /** moe.dev/expert-peers (expertPeersAnnotation). */
  peers?: string;
  /** spec.serving.gpu.alternatives: the fallback scheduling (gpu-fallback.ts) and moe.dev/gpu-fallback. */
  gpuFallback?: boolean;
  /** Takes over this fallback pod's shard on the primary nodes (moe.dev/gpu-return-for, gpu-fallback.ts). */
  returnFor?: string;
}

/** A shard pod as read back: the rollout's view plus the pod and the node the operator asked for. */
export interface ShardPod extends InPlacePod {
  /** The pod as cached (the projection of cached.ts). */
  pod: CachedPod;
  /** The operator's preferred node, whatever preferences the user's template adds. */
  preferredNode?: string;
  /** Created with the fallback scheduling of spec.serving.gpu.alternatives (moe.dev/gpu-fallback). */
  gpuFallback?: boolean;
  /** Created to take over this fallback pod's shard on the primary nodes (moe.dev/gpu-return-for). */
  returnFor?: string;
}

function preferNode(affinity: V1Affinity | undefined, node: string): V1Affinity {
  const a: V1Affinity = affinity ?? {};
  a.nodeAffinity ??= {};
  const term: V1PreferredSchedulingTerm = {
    weight: PREFERRED_NODE_WEIGHT,
    preference: { matchExpressions: [{ key: HOSTNAME_KEY, operator: "In", values: [node] }] },
  };
  a.nodeAffinity.preferredDuringSchedulingIgnoredDuringExecution = [
    ...(a.nodeAffinity.preferredDuringSchedulingIgnoredDuringExecution ?? []),
    term,
  ];
  return a;
}

/** spec.prewarm.staging: a weaker preference (below the preferred node's) for nodes marked with the staged digest. */
function preferStaged(affinity: V1Affinity | undefined, d: MoEDeployment): V1Affinity {
  const a: V1Affinity = affinity ?? {};
  a.nodeAffinity ??= {};
  const key = stagedLabelKey(d.metadata.namespace!, d.metadata.name!);
  const term: V1PreferredSchedulingTerm = {
    weight: STAGED_NODE_WEIGHT,
    preference: { matchExpressions: [{ key, operator: "In", values: [stagingDigest(d.spec)] }] },
  };
  a.nodeAffinity.preferredDuringSchedulingIgnoredDuringExecution = [
    ...(a.nodeAffinity.preferredDuringSchedulingIgnoredDuringExecution ?? []),
    term,
  ];
  return a;
}

export function renderShardPod(d: MoEDeployment, s: ShardPodInput): V1Pod {
  const name = d.metadata.name!;
  const names = childNames(name);
  const t = disaggregated(d.spec.serving).expertShards.template;
  const primary = podSpecFrom(d, t, 1, [
    { name: "MOE_DEPLOYMENT", value: name },
    { name: "MOE_SHARD_INDEX", value: String(s.shardIndex) },
    { name: "MOE_EXPERT_SET_HASH", value: s.setHash },
    { name: "MOE_PLACEMENT_CONFIGMAP", value: names.placement },
  ]);
  const fallback = s.gpuFallback === true && (d.spec.serving.gpu.alternatives ?? []).length > 0;
  const spec = fallback
    ? withFallbackScheduling(primary, d.spec.serving.gpu, (t.spec as V1PodSpec).nodeSelector)
    : primary;
  if (s.preferredNode) spec.affinity = preferNode(spec.affinity, s.preferredNode);
  if (d.spec.prewarm.staging.enabled) spec.affinity = preferStaged(spec.affinity, d);
  if (s.priorityClassName) {
    spec.priorityClassName = s.priorityClassName;
    delete spec.priority; // the admission controller sets it from the class
  }
  if (s.inPlace)
    spec.readinessGates = [
      ...(spec.readinessGates ?? []).filter((g) => g.conditionType !== PLACEMENT_APPLIED_CONDITION),
      { conditionType: PLACEMENT_APPLIED_CONDITION },
    ];
  if (s.minTerminationGraceSeconds !== undefined)
    spec.terminationGracePeriodSeconds = Math.max(
      spec.terminationGracePeriodSeconds ?? 30,
      s.minTerminationGraceSeconds,
    );
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: {
      name: names.shardPod(s.shardIndex, s.nameHash ?? s.setHash),
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
        ...(s.preferredNode ? { [ShardAnnotation.preferredNode]: s.preferredNode } : {}),
        ...(s.peers ? { [ShardAnnotation.expertPeers]: s.peers } : {}),
        ...(fallback ? { [GPU_FALLBACK_ANNOTATION]: "true" } : {}),
        ...(s.returnFor ? { [GPU_RETURN_ANNOTATION]: s.returnFor } : {}),
        ...(s.inPlace
          ? {
              [ShardAnnotation.targetGeneration]: "1",
              [ShardAnnotation.targetSince]: s.inPlace.nowIso,
              [ShardAnnotation.placementPhase]: "Initial",
            }
          : {}),
      },
      ownerReferences: [ownerReference(d)],
    },
    spec,
  };
}

/** The merge patch that starts a shard pod's drain. */
export function drainPatch(nowIso: string): {
  metadata: { annotations: Record<string, string>; labels: Record<string, string> };
} {
  return {
    metadata: { annotations: { [ShardAnnotation.drainingSince]: nowIso }, labels: { [ShardLabel.draining]: "true" } },
  };
}

/** InPlace: the merge patch that writes a new target set on a running shard pod. */
export function targetPatch(t: {
  target: number[][];
  served: number[][];
  wanted: number[][];
  generation: number;
  phase: "Load" | "Release";
  placementVersion: number;
  placementHash: string;
  setHash: string;
  nowIso: string;
  /** The pod version the target was planned from: a pod changed since (its shard acknowledged) conflicts. */
  resourceVersion?: string;
  /** moe.dev/expert-peers for a load (removed when absent: a release loads nothing). */
  peers?: string;
}): {
  metadata: { annotations: Record<string, string | null>; labels: Record<string, string>; resourceVersion?: string };
} {
  return {
    metadata: {
      ...(t.resourceVersion ? { resourceVersion: t.resourceVersion } : {}),
      annotations: {
        [ShardAnnotation.experts]: JSON.stringify(t.target),
        [ShardAnnotation.servedExperts]: JSON.stringify(t.served),
        [ShardAnnotation.placementExperts]: JSON.stringify(t.wanted),
        [ShardAnnotation.targetGeneration]: String(t.generation),
        [ShardAnnotation.targetSince]: t.nowIso,
        [ShardAnnotation.placementPhase]: t.phase,
        [ShardAnnotation.expertSetHash]: t.setHash,
        [Annotation.placementVersion]: String(t.placementVersion),
        [Annotation.placementHash]: t.placementHash,
        [ShardAnnotation.expertPeers]: t.peers ?? null,
      },
      labels: { [ShardLabel.expertSetHash]: t.setHash },
    },
  };
}

/** The merge patch that cancels a shard pod's drain (removes the mark; routers use the pod again). */
export function undrainPatch(): {
  metadata: { annotations: Record<string, null>; labels: Record<string, null> };
} {
  return {
    metadata: { annotations: { [ShardAnnotation.drainingSince]: null }, labels: { [ShardLabel.draining]: null } },
  };
}

/**
 * The node the operator asked for: its annotation, or (pods written before the annotation) the
 * last weight-100 hostname term, which the operator appends after the template's own terms.
 */
export function readPreferredNode(p: CachedPod): string | undefined {
  const annotated = p.metadata?.annotations?.[ShardAnnotation.preferredNode];
  if (annotated) return annotated;
  const terms = p.spec?.affinity?.nodeAffinity?.preferredDuringSchedulingIgnoredDuringExecution ?? [];
  const ours = terms.findLast(
    (t) =>
      t.weight === PREFERRED_NODE_WEIGHT &&
      t.preference.matchExpressions?.length === 1 &&
      t.preference.matchExpressions[0]?.key === HOSTNAME_KEY,
  );
  return ours?.preference.matchExpressions?.[0]?.values?.[0];
}

function readExperts(p: CachedPod, key: string = ShardAnnotation.experts): number[][] {
  try {
    const parsed: unknown = JSON.parse(p.metadata?.annotations?.[key] ?? "[]");
    if (!Array.isArray(parsed)) return [];
    return parsed.map((l) => (Array.isArray(l) ? l.filter((e): e is number => Number.isInteger(e)) : []));
  } catch {
    return [];
  }
}

/**
 * InPlace: the shard's set in the placement version it moves to (moe.dev/placement-experts), or
 * undefined on a pod without it. During a load phase moe.dev/experts is served ∪ new, which may not
 * fit the slots; this is the set the placement gives the shard.
 */
export function readPlacementSet(p: CachedPod): number[][] | undefined {
  if (p.metadata?.annotations?.[ShardAnnotation.placementExperts] === undefined) return undefined;
  const set = readExperts(p, ShardAnnotation.placementExperts);
  return set.length > 0 ? set : undefined;
}

function readDrainStartedMs(p: CachedPod): number | undefined {
  const drain = p.metadata?.annotations?.[ShardAnnotation.drainingSince];
  const ms = drain ? Date.parse(drain) : undefined;
  return ms !== undefined && Number.isFinite(ms) ? ms : undefined;
}

/** Running with Ready=True. */
export function readPodReady(p: CachedPod): boolean {
  return (
    p.status?.phase === "Running" &&
    (p.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True") ?? false)
  );
}

/** The acknowledgement message of a shard serving `generation` (freeSlots: the room it reports, if it does). */
export function appliedMessage(generation: number, freeSlots?: number): string {
  return `serving generation ${generation}${freeSlots === undefined ? "" : roomSuffix(freeSlots)}`;
}

/** "; room for N more expert replicas", the suffix a shard's condition message may end with. */
export function roomSuffix(freeSlots: number): string {
  return `; room for ${Math.max(0, Math.floor(freeSlots))} more expert replicas`;
}

/** The generations the shard's moe.dev/placement-applied condition names (0: none), and the room it reports. */
export function readPlacementApplied(p: CachedPod): { applied: number; refused?: number; freeSlots?: number } {
  const c = p.status?.conditions?.find((x) => x.type === PLACEMENT_APPLIED_CONDITION);
  const num = (re: RegExp) => {
    const m = re.exec(c?.message ?? "");
    return m ? Number(m[1]) : undefined;
  };
  const freeSlots = num(/room for (\d{1,6}) more expert replicas/);
  return {
    applied: num(/serving generation (\d+)/) ?? 0,
    refused: num(/refused generation (\d+)/),
    ...(freeSlots !== undefined ? { freeSlots } : {}),
  };
}

/**
 * InPlace state of a pod that carries moe.dev/target-generation (undefined otherwise: a pod of mode
 * Replace serves its annotated set).
 */
export function readInPlace(p: CachedPod): InPlaceState | undefined {
  const a = p.metadata?.annotations ?? {};
  const generation = Number(a[ShardAnnotation.targetGeneration]);
  if (!Number.isInteger(generation) || generation < 1) return undefined;
  const since = Date.parse(a[ShardAnnotation.targetSince] ?? "");
  const { applied, refused, freeSlots } = readPlacementApplied(p);
  return {
    target: readExperts(p),
    generation,
    servedBefore: readExperts(p, ShardAnnotation.servedExperts),
    appliedGeneration: Math.min(applied, generation),
    refusedGeneration: refused,
    targetSinceMs: Number.isFinite(since) ? since : undefined,
    ...(freeSlots !== undefined ? { freeSlots } : {}),
  };
}

/** A shard pod read back, or undefined when it lacks the index or expert-set label. */
export function readShardPod(p: CachedPod): ShardPod | undefined {
  const index = Number(p.metadata?.labels?.[Label.shardIndex]);
  const setHash = p.metadata?.labels?.[ShardLabel.expertSetHash];
  if (!Number.isInteger(index) || index < 0 || !setHash) return undefined;
  return {
    name: p.metadata!.name!,
    unschedulable:
      p.status?.conditions?.some(
        (c) => c.type === "PodScheduled" && c.status === "False" && c.reason === "Unschedulable",
      ) ?? false,
    shardIndex: index,
    setHash,
    experts: readExperts(p),
    inPlace: readInPlace(p),
    ready: readPodReady(p),
    terminating: p.metadata?.deletionTimestamp !== undefined && p.metadata?.deletionTimestamp !== null,
    drainStartedMs: readDrainStartedMs(p),
    preferredNode: readPreferredNode(p),
    ...(p.metadata?.annotations?.[GPU_FALLBACK_ANNOTATION] === "true" ? { gpuFallback: true } : {}),
    ...(p.metadata?.annotations?.[GPU_RETURN_ANNOTATION]
      ? { returnFor: p.metadata.annotations[GPU_RETURN_ANNOTATION] }
      : {}),
    pod: p,
  };
}
