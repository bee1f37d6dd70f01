// What the decision sees of the cluster: GPU nodes with their free GPUs and
// prices, the shards that exist, cold starts. Pure functions over cache lists.
import type { MoEDeployment } from "../../api/schema.ts";
import type { NodeView, ShardView } from "../../domain/decide.ts";
import {
  PLACEMENT_APPLIED_CONDITION,
  readInPlace,
  readPlacementApplied,
  ShardAnnotation,
  type ShardPod,
} from "./codecs/shard-pod.ts";
import { countUncovered } from "../../domain/rollout/index.ts";
import { chooseLoadTier, LOAD_TIERS, type LoadTier, type TierColdStart } from "../../domain/prewarm/tiers.ts";
import type { CachedNode, CachedPod } from "./cached.ts";
import { gpusRequestedByNode, type PodGpuView } from "./pod-gpus.ts";
import { nodeUsdPerGpuHour } from "../../domain/cost/index.ts";

function isSchedulableGpuNode(n: CachedNode, selector: Record<string, string>, resource: string): boolean {
  const labels = n.metadata?.labels ?? {};
  if (n.spec?.unschedulable) return false;
  if (!n.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True")) return false;
  if (Object.entries(selector).some(([k, v]) => labels[k] !== v)) return false;
  return Number(n.status?.allocatable?.[resource] ?? 0) > 0;
}

/**
 * GPU nodes matching spec.serving.gpu with their free GPUs: allocatable minus what bound pods
 * hold, minus the shard pods of ours not yet bound (one GPU per shard), each counted against the
 * node the operator asked for or, without one, the node it would most likely get (holdLikelyNode).
 * `withAlternatives` (a shard waits for spec.serving.gpu.alternatives or runs there,
 * gpu-fallback.ts): the alternatives' nodes too; they, and any node a fallback pod runs on, are
 * flagged fallbackOnly.
 */
export function nodeViews(
  spec: MoEDeployment["spec"],
  nodes: readonly CachedNode[],
  podGpus: readonly PodGpuView[],
  shardPods: readonly ShardPod[],
  withAlternatives = false,
): NodeView[] {
  const resource = spec.serving.gpu.resourceName;
  const primary = spec.serving.gpu.nodeSelector ?? {};
  const alternatives = withAlternatives ? (spec.serving.gpu.alternatives ?? []).map((a) => a.nodeSelector) : [];
  // Nodes our fallback pods run on stay in view (priced) even if spec.serving.gpu.alternatives changed since.
  const hostingFallback = new Set(
    shardPods.filter((p) => p.gpuFallback && !p.terminating && p.pod.spec?.nodeName).map((p) => p.pod.spec!.nodeName!),
  );
  const requested = gpusRequestedByNode(podGpus, resource);
  const floating = unboundShardPods(shardPods, requested);
  const out: NodeView[] = [];
  // Which selectors each node satisfies: 0 the primary, i + 1 alternative i (fallback pods' order of preference).
  const tierOf = new Map<string, number>();
  for (const n of nodes) {
    const name = n.metadata!.name!;
    const tier = selectorTier(n, primary, alternatives, resource);
    const isAlternative = tier !== 0 && (tier !== undefined || hostingFallback.has(name));
    if (tier === undefined && !isAlternative) continue;
    if (tier !== undefined) tierOf.set(name, tier);
    const labels = n.metadata?.labels ?? {};
    const nodeType = nodeTypeOf(n);
    out.push({
      name,
      domain: labels[spec.placement.topologyKey] ?? name,
      freeGpus: Math.max(0, Number(n.status?.allocatable?.[resource] ?? 0) - (requested.get(name) ?? 0)),
      usdPerGpuHour: nodeUsdPerGpuHour(labels, spec.cost),
      ...(nodeType ? { nodeType } : {}),
      ...(isAlternative ? { fallbackOnly: true } : {}),
    });
  }
  // Pods with the primary scheduling only first: they have fewer nodes to go to.
  for (const fallback of [false, true]) {
    for (const p of floating) if ((p.gpuFallback === true) === fallback) holdLikelyNode(out, tierOf, fallback);
  }
  return out.sort((a, b) => a.name.localeCompare(b.name));
}

/**
 * Our shard pods not bound yet: one GPU each added to `requested` at the node the operator asked for;
 * those without one are returned (holdLikelyNode places them).
 */
function unboundShardPods(shardPods: readonly ShardPod[], requested: Map<string, number>): ShardPod[] {
  const floating: ShardPod[] = [];
  for (const p of shardPods) {
    if (p.pod.spec?.nodeName || p.terminating) continue;
    if (!p.preferredNode) floating.push(p);
    else requested.set(p.preferredNode, (requested.get(p.preferredNode) ?? 0) + 1);
  }
  return floating;
}

/** 0 for a schedulable primary GPU node, i + 1 for alternative i's, undefined for neither. */
function selectorTier(
  n: CachedNode,
  primary: Record<string, string>,
  alternatives: readonly Record<string, string>[],
  resource: string,
): number | undefined {
  if (isSchedulableGpuNode(n, primary, resource)) return 0;
  const at = alternatives.findIndex((selector) => isSchedulableGpuNode(n, selector, resource));
  return at >= 0 ? at + 1 : undefined;
}

/**
 * A shard pod not bound yet and without a node the operator asked for (a fallback replacement, whose
 * shard index already exists) will take a GPU wherever the scheduler finds one; until it binds, that
 * GPU is counted against the node it would most likely get, so free GPUs are not overcounted while it
 * waits. Its scheduling prefers the primary type, then each alternative in order (gpu-fallback.ts's
 * weights), so the first of those tiers with a free GPU is taken; within it the node with the most
 * free GPUs (the default scheduler's least-allocated scoring), ties by name. A pod with the primary
 * scheduling only looks at primary nodes. Where no node it can use has a free GPU nothing is counted:
 * it waits for capacity that does not exist yet (CapacityPending reports it).
 */
function holdLikelyNode(views: NodeView[], tierOf: ReadonlyMap<string, number>, fallback: boolean): void {
  let best: NodeView | undefined;
  let bestTier = Infinity;
  for (const v of views) {
    const tier = tierOf.get(v.name);
    if (tier === undefined || v.freeGpus < 1 || (!fallback && tier > 0)) continue;
    if (
      !best ||
      tier < bestTier ||
      (tier === bestTier && (v.freeGpus > best.freeGpus || (v.freeGpus === best.freeGpus && v.name < best.name)))
    ) {
      best = v;
      bestTier = tier;
    }
  }
  // The views were built by nodeViews just now: adjusting one in place changes no caller's object.
  if (best) (best as { freeGpus: number }).freeGpus -= 1;
}

/**
 * GPUs on nodes matching spec.serving.gpu: free ones (allocatable minus what bound pods hold), and
 * those this deployment's bound shard pods hold (one each).
 */
export function gpuSupply(
  spec: MoEDeployment["spec"],
  nodes: readonly CachedNode[],
  podGpus: readonly PodGpuView[],
  shardPods: readonly ShardPod[],
  withAlternatives = false,
): { free: number; held: number } {
  const free = nodeViews(spec, nodes, podGpus, [], withAlternatives).reduce((sum, n) => sum + n.freeGpus, 0);
  return { free, held: shardPods.filter((p) => p.pod.spec?.nodeName).length };
}

/** One view per live shard index (the Ready pod preferred), with the node it runs on. */
export function shardViews(pods: readonly ShardPod[], nodes: readonly NodeView[]): ShardView[] {
  const byIndex = new Map<number, ShardPod>();
  for (const p of pods) {
    if (p.terminating || p.drainStartedMs !== undefined) continue;
    const prev = byIndex.get(p.shardIndex);
    if (!prev || (!prev.ready && p.ready)) byIndex.set(p.shardIndex, p);
  }
  return [...byIndex.values()]
    .sort((a, b) => a.shardIndex - b.shardIndex)
    .map((p) => {
      const nodeName = p.pod.spec?.nodeName;
      const node = nodes.find((n) => n.name === nodeName);
      return {
        shardIndex: p.shardIndex,
        nodeName,
        domain: node?.domain,
        ready: p.ready,
        usdPerGpuHour: node?.usdPerGpuHour,
      };
    });
}

/**
 * Marks the pods that are not Ready now but were Ready at an earlier reconcile (`seen`: uids seen
 * Ready, in the reconciler's memory), so the rollout tells a readiness flap or crash from a pod
 * still loading. Returns the views and the uids to remember (pruned to the live pods).
 */
export function withReadyBefore(
  pods: readonly ShardPod[],
  seen: ReadonlySet<string>,
): { pods: ShardPod[]; seen: Set<string> } {
  const next = new Set<string>();
  const out = pods.map((p) => {
    const uid = p.pod.metadata?.uid ?? p.name;
    const before = seen.has(uid);
    if (p.ready || before) next.add(uid);
    return p.ready || !before ? p : { ...p, readyBefore: true };
  });
  return { pods: out, seen: next };
}

/**
 * Cold-start durations of pods not seen before; adds them to `seen`. A cold start runs from the
 * pod's creation to Ready, and for a pod of mode InPlace to its first acknowledgement too (the
 * moe.dev/placement-applied condition naming a generation, ADR 0018): a Ready pod that has not yet
 * acknowledged is left for a later pass. Ready can come first where the readiness gate is not
 * waited for (kwok sets the gate's condition True, without our message, when it starts the pod),
 * and the engine writes moe.dev/load-tier just before it acknowledges, so the tier is only known
 * then. The acknowledgement's time is read when the pod is first seen acknowledging (a later move
 * rewrites it): a pass every few seconds bounds the error.
 */
export function newColdStarts(
  pods: readonly CachedPod[],
  seen: Set<string>,
  nodeTypeOfNode: (node: string) => string | undefined = () => undefined,
): ColdStart[] {
  const out: ColdStart[] = [];
  for (const p of pods) {
    const uid = p.metadata?.uid;
    if (!uid || seen.has(uid)) continue;
    const ready = p.status?.conditions?.find((c) => c.type === "Ready" && c.status === "True");
    if (!ready?.lastTransitionTime || !p.metadata?.creationTimestamp) continue;
    let endMs = new Date(ready.lastTransitionTime).getTime();
    if (readInPlace(p)) {
      const ack = p.status?.conditions?.find((c) => c.type === PLACEMENT_APPLIED_CONDITION && c.status === "True");
      if (!ack?.lastTransitionTime || readPlacementApplied(p).applied < 1) continue;
      endMs = Math.max(endMs, new Date(ack.lastTransitionTime).getTime());
    }
    seen.add(uid);
    const ms = endMs - new Date(p.metadata.creationTimestamp).getTime();
    const tier = loadTierOf(p);
    const nodeType = p.spec?.nodeName ? nodeTypeOfNode(p.spec.nodeName) : undefined;
    if (Number.isFinite(ms) && ms >= 0)
      out.push({ durationMs: ms, ...(tier ? { tier } : {}), ...(nodeType ? { nodeType } : {}) });
  }
  return out;
}

/** A measured cold start: its duration, and the tier and node type when known. */
export interface ColdStart {
  durationMs: number;
  tier?: LoadTier;
  nodeType?: string;
}

/** The well-known label of a node's instance type, and the GPU product label used when it is absent. */
export const NODE_TYPE_LABELS = ["node.kubernetes.io/instance-type", "nvidia.com/gpu.product"] as const;

/** A node's type for cold-start learning: its instance type, else its GPU product (undefined: neither label). */
export function nodeTypeOf(n: Pick<CachedNode, "metadata">): string | undefined {
  const labels = n.metadata?.labels ?? {};
  for (const key of NODE_TYPE_LABELS) if (labels[key]) return labels[key];
  return undefined;
}

/**
 * The node type the next new shard is expected on: among the nodes with a free GPU (only the staged
 * ones when it will load from the node's disk, as new shards prefer them), the type with the most
 * free GPUs (ties: the first name). Undefined when no such node has a type.
 */
export function nextNodeType(
  nodes: readonly Pick<NodeView, "staged" | "freeGpus" | "nodeType" | "fallbackOnly">[],
  tier: LoadTier | undefined,
): string | undefined {
  const free = new Map<string, number>();
  for (const n of nodes) {
    if (n.freeGpus <= 0 || !n.nodeType || n.fallbackOnly || (tier === "node-disk" && n.staged !== true)) continue;
    free.set(n.nodeType, (free.get(n.nodeType) ?? 0) + n.freeGpus);
  }
  let best: string | undefined;
  for (const [t, gpus] of [...free].sort(([a], [b]) => a.localeCompare(b)))
    if (best === undefined || gpus > free.get(best)!) best = t;
  return best;
}

/** The tier a pod reported loading its weights from (moe.dev/load-tier), if a known one. */
export function loadTierOf(p: CachedPod): LoadTier | undefined {
  const v = p.metadata?.annotations?.[ShardAnnotation.loadTier];
  return (LOAD_TIERS as readonly string[]).includes(v ?? "") ? (v as LoadTier) : undefined;
}

/** The cold starts as the decision takes them: all durations, and those whose pod reported a tier. */
export function coldStartInputs(starts: readonly ColdStart[]): {
  coldStartDurationsMs: number[];
  coldStartsByTier: TierColdStart[];
} {
  return {
    coldStartDurationsMs: starts.map((s) => s.durationMs),
    coldStartsByTier: starts.flatMap((s) =>
      s.tier ? [{ tier: s.tier, durationMs: s.durationMs, ...(s.nodeType ? { nodeType: s.nodeType } : {}) }] : [],
    ),
  };
}

/**
 * The tier the next new shard will load from: peers when some pod loaded from peers (the engine
 * does) and every MoE (layer, expert) has a Ready holder to send it; else the node's disk when a
 * node staged with this deployment's weights has a free GPU (new shards prefer staged nodes,
 * staging.ts); else remote. Undefined when no pod reported a tier and no staged node has room: the
 * lead stays one pooled estimate.
 */
export function nextLoadTier(
  pods: readonly ShardPod[],
  moeLayers: number,
  experts: number,
  nodes: readonly Pick<NodeView, "staged" | "freeGpus">[] = [],
): LoadTier | undefined {
  const reported = pods.map((p) => loadTierOf(p.pod)).filter((t) => t !== undefined);
  const nodeStaged = nodes.some((n) => n.staged === true && n.freeGpus > 0);
  if (reported.length === 0 && !nodeStaged) return undefined;
  const ready = pods.filter((p) => p.ready && !p.terminating);
  const peersHoldExperts = countUncovered(ready, moeLayers, experts) === 0;
  return chooseLoadTier({ peerLoading: reported.includes("peer"), peersHoldExperts, nodeStaged });
}

/**
 * When the serving capacity last changed: the most recent Ready transition of a live shard pod,
 * or of an in-place move's acknowledgement (moe.dev/placement-applied: the engine stalls its
 * layers while it moves experts, ADR 0018). A move outstanding (a target generation not yet
 * acknowledged nor refused) counts as now, until its acknowledgement deadline (past it the shard is
 * replaced): the latency it adds is the move's, not a count too small. The SLO feedback trusts a
 * p99 only when its window starts after this.
 */
export function readySince(pods: readonly CachedPod[], nowMs: number, ackTimeoutMs: number): number | undefined {
  let latest: number | undefined;
  const note = (t: number) => {
    if (Number.isFinite(t)) latest = Math.max(latest ?? t, t);
  };
  for (const p of pods) {
    if (p.metadata?.deletionTimestamp) continue;
    const c = p.status?.conditions?.find((x) => x.type === "Ready" && x.status === "True");
    if (!c) continue;
    note(c.lastTransitionTime ? new Date(c.lastTransitionTime).getTime() : NaN);
    const move = readInPlace(p);
    if (!move || move.generation < 2) continue;
    if (move.appliedGeneration < move.generation && move.refusedGeneration !== move.generation)
      note(Math.min(nowMs, (move.targetSinceMs ?? nowMs) + ackTimeoutMs));
    else {
      const ack = p.status?.conditions?.find((x) => x.type === PLACEMENT_APPLIED_CONDITION);
      note(ack?.lastTransitionTime ? new Date(ack.lastTransitionTime).getTime() : NaN);
    }
  }
  return latest;
}
