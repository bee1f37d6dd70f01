// Recoverable state (issue 21, ADR 0012), as pure functions: the placement
// rebuilt from what the shard pods say they hold (their moe.dev/experts
// annotation) when the placement ConfigMap is deleted or corrupted, the
// version that never goes back, and what a hand edit changed in the router
// Deployment or the placement ConfigMap.
import type { V1ConfigMap, V1Deployment } from "@kubernetes/client-node";
import { Annotation } from "../../api/constants.ts";
import { moeLayerCount, type MoEDeployment } from "../../api/schema.ts";
import { shardGpuId } from "../../domain/decide.ts";
import { EMPTY_SLOT, parsePlacement, placementHash, type Placement } from "../../domain/placement/index.ts";
import { PlacementKey, type PublishedPlacement } from "./codecs/placement-configmap.ts";
import { readPlacementSet, type ShardPod } from "./codecs/shard-pod.ts";

export interface RecoverablePod {
  readonly shardIndex: number;
  readonly experts: ReadonlyArray<ReadonlyArray<number>>;
  readonly ready: boolean;
  readonly terminating: boolean;
  readonly drainStartedMs?: number;
  readonly nodeName?: string;
  /** Placement version the pod was created at (its moe.dev/placement-version annotation). */
  readonly placementVersion: number;
}

const rank = (p: RecoverablePod) => (p.ready ? 1e12 : 0) + p.placementVersion;

/**
 * Shard i of the rebuilt placement is the live, non-draining pod of index i (the Ready one first,
 * then the one of the newest placement version). Undefined when the indices are not 0..n-1, or a
 * pod's experts do not fit slotsPerGpu or the model's shape.
 */
export function placementFromPods(
  pods: readonly RecoverablePod[],
  layerCount: number,
  expertCount: number,
  slotsPerGpu: number,
): { placement: Placement; hash: string } | undefined {
  const byIndex = new Map<number, RecoverablePod>();
  for (const p of pods) {
    if (p.terminating || p.drainStartedMs !== undefined) continue;
    const prev = byIndex.get(p.shardIndex);
    if (!prev || rank(p) > rank(prev)) byIndex.set(p.shardIndex, p);
  }
  const n = byIndex.size;
  if (n === 0) return undefined;
  const shards: RecoverablePod[] = [];
  for (let i = 0; i < n; i++) {
    const p = byIndex.get(i);
    if (!p || p.experts.length !== layerCount || p.experts.some((l) => l.length > slotsPerGpu)) return undefined;
    shards.push(p);
  }
  const gpus = shards.map((p, i) => {
    const nodeName = p.nodeName ?? `unscheduled-${i}`;
    return { gpuId: shardGpuId(i), nodeName, domain: nodeName, slotCount: slotsPerGpu };
  });
  const layers = Array.from({ length: layerCount }, (_, l) =>
    shards.map((p) => [
      ...p.experts[l]!,
      ...Array.from({ length: slotsPerGpu - p.experts[l]!.length }, () => EMPTY_SLOT),
    ]),
  );
  const parsed = parsePlacement({ version: 1, layerCount, expertCount, gpus, layers });
  if (!parsed.ok) return undefined;
  return { placement: parsed.value, hash: placementHash(parsed.value) };
}

/**
 * The placement the shard pods hold (in place: the set each moves to), as a published one (at version 0: the plan gives it a new
 * version), or undefined when the pods do not make a whole placement. The heat it was made with is
 * unknown; "observed" keeps it (no first-heat re-plan, which would replace every pod).
 */
export function recoverPlacement(
  pods: readonly ShardPod[],
  spec: MoEDeployment["spec"],
): PublishedPlacement | undefined {
  const views = pods.map((p) => ({
    ...p,
    // In place, mid-move: the set of the placement being moved to, not the load phase's union.
    experts: readPlacementSet(p.pod) ?? p.experts,
    nodeName: p.pod.spec?.nodeName,
    placementVersion: Number(p.pod.metadata?.annotations?.[Annotation.placementVersion]) || 0,
  }));
  const r = placementFromPods(views, moeLayerCount(spec.model), spec.model.routedExperts, spec.model.expertSlotsPerGpu);
  return r ? { ...r, version: 0, heatBasis: "observed" } : undefined;
}

/**
 * The placement version to publish: never below the published one or the one status last
 * reported. A new placement, or one published again after its ConfigMap was lost (recovered), gets
 * the next version; the same placement keeps its version (also when the ConfigMap cache or a hand
 * edit lags behind what was published).
 */
export function nextPlacementVersion(o: {
  targetHash: string | undefined;
  published: PublishedPlacement | undefined;
  recovered: boolean;
  status: { version?: number; hash?: string } | undefined;
}): number {
  const base = Math.max(o.published?.version ?? 0, o.status?.version ?? 0);
  if (o.targetHash === undefined) return base;
  if (o.recovered) return base + 1;
  if (o.targetHash === o.published?.hash || o.targetHash === o.status?.hash) return base;
  return base + 1;
}

/**
 * The live placement ConfigMap differs from what the operator would write: a data key it writes, or
 * the version and hash annotations. Keys someone else added are left alone (server-side apply does
 * not remove fields another manager owns, so seeing them as drift would re-apply forever).
 */
export function configMapDrifted(live: V1ConfigMap | undefined, want: V1ConfigMap): boolean {
  if (!live) return true;
  const a = live.metadata?.annotations ?? {};
  const w = want.metadata?.annotations ?? {};
  if (
    a[Annotation.placementVersion] !== w[Annotation.placementVersion] ||
    a[Annotation.placementHash] !== w[Annotation.placementHash]
  )
    return true;
  const liveData = live.data ?? {};
  const wantData = want.data ?? {};
  return Object.keys(wantData).some((k) => {
    // The move cost describes the change that made the version; it is not state to restore.
    if (k === PlacementKey.moveCost) return false;
    if (k === PlacementKey.placement) return layoutOf(liveData[k]) !== layoutOf(wantData[k]);
    return liveData[k] !== wantData[k];
  });
}

/**
 * The expert layout of a placement.json text (its content hash), or the text itself when it does not
 * parse. Node names are left out: they follow where the pods landed, not what they hold.
 */
function layoutOf(text: string | undefined): string | undefined {
  if (text === undefined) return undefined;
  try {
    const parsed = parsePlacement(JSON.parse(text));
    return parsed.ok ? placementHash(parsed.value) : text;
  } catch {
    return text;
  }
}

/** What a hand change altered in the router Deployment (replicas, containers' images), if anything. */
export function deploymentDrift(want: V1Deployment, live: V1Deployment): string | undefined {
  const changes: string[] = [];
  const replicas = (d: V1Deployment) => d.spec?.replicas ?? 1;
  if (replicas(live) !== replicas(want)) changes.push(`replicas ${replicas(live)}, want ${replicas(want)}`);
  const images = (d: V1Deployment) =>
    (d.spec?.template.spec?.containers ?? []).map((c) => `${c.name}=${c.image}`).join(",");
  if (images(live) !== images(want)) changes.push(`containers ${images(live)}, want ${images(want)}`);
  return changes.length > 0 ? changes.join("; ") : undefined;
}

/**
 * How long the ConfigMap cache may lag behind this operator's own write before the cache is
 * believed again (a hand deletion or edit is then seen and repaired at the next reconcile).
 */
export const PLACEMENT_CACHE_LAG_MS = 10_000;

/**
 * The placement ConfigMap in force: the cached one, unless this operator wrote a newer version within
 * PLACEMENT_CACHE_LAG_MS and the cache does not show it yet. Without this, a reconcile that runs before
 * the watch delivers the write plans from the previous layout and the drift check writes that layout
 * back under the new version (the demo's heat-shift rebalances were undone so).
 */
export function placementInForce(
  cached: V1ConfigMap | undefined,
  written: { cm: V1ConfigMap; version: number; atMs: number } | undefined,
  nowMs: number,
): V1ConfigMap | undefined {
  if (!written || nowMs - written.atMs > PLACEMENT_CACHE_LAG_MS) return cached;
  const cachedVersion = publishedVersion(cached);
  if (cachedVersion !== undefined && cachedVersion >= written.version) return cached;
  return written.cm;
}

/** The version a placement ConfigMap says it is (data key, else annotation), if it says. */
function publishedVersion(cm: V1ConfigMap | undefined): number | undefined {
  const text = cm?.data?.[PlacementKey.version] ?? cm?.metadata?.annotations?.[Annotation.placementVersion];
  const v = Number(text);
  return text !== undefined && Number.isFinite(v) ? v : undefined;
}
