// GPU accounting needs, of every pod in the cluster, only where it runs and how
// many GPUs (or other extended resources) it holds. The operator caches all pods
// through this projection, so unrelated pods cost a few hundred bytes each
// instead of their full spec, status and managedFields.
import {
  CoreV1Api,
  type KubeConfig,
  type KubernetesObject,
  type V1Container,
  type V1Pod,
} from "@kubernetes/client-node";
import type { Logger } from "pino";
import type { Clock } from "../../runtime/clock.ts";
import { Informer } from "../../runtime/informer.ts";

export interface PodGpuView extends KubernetesObject {
  metadata: { namespace?: string; name?: string; uid?: string; resourceVersion?: string; deletionTimestamp?: Date };
  nodeName?: string;
  phase?: string;
  /** Extended resources (names with a "/", e.g. nvidia.com/gpu) summed over the containers: limit, else request. */
  gpuRequests?: Record<string, number>;
}

/** The projection stored by the all-pods informer (metadata.resourceVersion is kept for the watch). */
export function projectPodGpus(pod: V1Pod): PodGpuView {
  const m = pod.metadata;
  // Absent fields stay absent (no own properties holding undefined).
  const view: PodGpuView = {
    metadata: { namespace: m?.namespace, name: m?.name, uid: m?.uid, resourceVersion: m?.resourceVersion },
  };
  if (m?.deletionTimestamp) view.metadata.deletionTimestamp = m.deletionTimestamp;
  if (pod.spec?.nodeName) view.nodeName = pod.spec.nodeName;
  if (pod.status?.phase) view.phase = pod.status.phase;
  const requests = sumExtendedRequests(pod.spec?.containers ?? []);
  if (requests) view.gpuRequests = requests;
  return view;
}

/** Extended resources summed over the containers (limit, else request); undefined when there are none. */
function sumExtendedRequests(containers: readonly V1Container[]): Record<string, number> | undefined {
  let requests: Record<string, number> | undefined;
  for (const c of containers) {
    const names = new Set([...Object.keys(c.resources?.limits ?? {}), ...Object.keys(c.resources?.requests ?? {})]);
    for (const r of names) {
      if (!r.includes("/")) continue;
      const n = Number(c.resources?.limits?.[r] ?? c.resources?.requests?.[r] ?? 0);
      if (!(n > 0)) continue;
      requests ??= {};
      requests[r] = (requests[r] ?? 0) + n;
    }
  }
  return requests;
}

/** GPUs of `resource` held per node by pods bound to a node and not finished. */
export function gpusRequestedByNode(pods: readonly PodGpuView[], resource: string): Map<string, number> {
  const requested = new Map<string, number>();
  for (const p of pods) {
    if (!p.nodeName || p.phase === "Succeeded" || p.phase === "Failed") continue;
    const n = p.gpuRequests?.[resource] ?? 0;
    if (n > 0) requested.set(p.nodeName, (requested.get(p.nodeName) ?? 0) + n);
  }
  return requested;
}

/** Pods per list page: each page is projected before the next is read. */
export const POD_LIST_PAGE_SIZE = 100;

/** The all-pods informer of GPU accounting: lists in pages and caches only the projection. */
export function createPodGpuInformer(o: {
  kubeConfig: KubeConfig;
  clock: Clock;
  logger: Logger;
  onRestart?: (err: unknown) => void;
}): Informer<PodGpuView, V1Pod> {
  const core = o.kubeConfig.makeApiClient(CoreV1Api);
  return new Informer<PodGpuView, V1Pod>({
    kubeConfig: o.kubeConfig,
    path: "/api/v1/pods",
    clock: o.clock,
    logger: o.logger,
    onRestart: o.onRestart,
    list: (page) => core.listPodForAllNamespaces({ limit: page?.limit, _continue: page?._continue }),
    pageSize: POD_LIST_PAGE_SIZE,
    transform: projectPodGpus,
  });
}
