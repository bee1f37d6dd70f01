// The placement rebuilt from what the shard pods say they hold (their
// moe.dev/experts annotation), for when the placement ConfigMap is deleted or
// corrupted: the same layout comes back under a higher version and no pod is
// replaced (every pod's expert-set hash is unchanged).
import { EMPTY_SLOT, parsePlacement, placementHash, type Placement } from "../../domain/placement/index.ts";
import { shardGpuId, type HeatBasis } from "../../domain/decide.ts";
import type { ShardPodView } from "../../domain/rollout/index.ts";
import type { V1ConfigMap, V1Deployment, V1Pod } from "@kubernetes/client-node";
import { Annotation } from "../../api/constants.ts";
import { moeLayerCount, type MoEDeployment } from "../../api/schema.ts";

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

/**
 * Shard i of the rebuilt placement is the live, non-draining pod of index i (the Ready one first,
 * then the one of the newest placement version). Undefined when the indices are not 0..n-1, or a
 * pod's experts do not fit slotsPerGpu or the model's shape.
 */
export function placementFromPods(pods: readonly RecoverablePod[], layerCount: number, expertCount: number, slotsPerGpu: number): { placement: Placement; hash: string } | undefined {
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
    shards.map((p) => [...p.experts[l]!, ...Array.from({ length: slotsPerGpu - p.experts[l]!.length }, () => EMPTY_SLOT)]));
  const parsed = parsePlacement({ version: 1, layerCount, expertCount, gpus, layers });
  if (!parsed.ok) return undefined;
  return { placement: parsed.value, hash: placementHash(parsed.value) };
}

const rank = (p: RecoverablePod) => (p.ready ? 1e12 : 0) + p.placementVersion;

/** The placement rebuilt from the pods as a published one (version: what status last said). */
export function recoverPlacement(pods: readonly (ShardPodView & { pod: V1Pod })[], spec: MoEDeployment["spec"], statusVersion: number): { placement: Placement; hash: string; version: number; heatBasis: HeatBasis } | undefined {
  const views = pods.map((p) => ({ ...p, nodeName: p.pod.spec?.nodeName, placementVersion: Number(p.pod.metadata?.annotations?.[Annotation.placementVersion]) || 0 }));
  const r = placementFromPods(views, moeLayerCount(spec.model), spec.model.routedExperts, spec.model.expertSlotsPerGpu);
  // The heat it was made with is unknown; "observed" keeps it (no first-heat replan).
  return r ? { ...r, version: statusVersion, heatBasis: "observed" } : undefined;
}

/** The live placement ConfigMap differs from what the operator would write (data or version annotations). */
export function configMapDrifted(live: V1ConfigMap | undefined, want: V1ConfigMap): boolean {
  if (!live) return true;
  const a = live.metadata?.annotations ?? {};
  const w = want.metadata?.annotations ?? {};
  if (a[Annotation.placementVersion] !== w[Annotation.placementVersion] || a[Annotation.placementHash] !== w[Annotation.placementHash]) return true;
  const liveData = live.data ?? {};
  const wantData = want.data ?? {};
  const keys = new Set([...Object.keys(liveData), ...Object.keys(wantData)]);
  return [...keys].some((k) => liveData[k] !== wantData[k]);
}

/** What a hand change altered in the router Deployment (replicas, containers' images), if anything. */
export function deploymentDrift(want: V1Deployment, live: V1Deployment): string | undefined {
  const changes: string[] = [];
  if ((live.spec?.replicas ?? 1) !== (want.spec?.replicas ?? 1)) changes.push(`replicas ${live.spec?.replicas ?? 1}, want ${want.spec?.replicas ?? 1}`);
  const liveImages = (live.spec?.template.spec?.containers ?? []).map((c) => `${c.name}=${c.image}`).join(",");
  const wantImages = (want.spec?.template.spec?.containers ?? []).map((c) => `${c.name}=${c.image}`).join(",");
  if (liveImages !== wantImages) changes.push(`containers ${liveImages}, want ${wantImages}`);
  return changes.length > 0 ? changes.join("; ") : undefined;
}
