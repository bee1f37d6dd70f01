// A scheduler and kubelet for the in-memory reconciler harness: pods are bound
// to a node with a free GPU (the operator's preferred node first) or marked
// Unschedulable, become Ready a fixed time after they are bound, and a deleted
// pod frees its GPU at once. Enough to replay a rollout at the GPU bound
// (make-before-break needs spare GPUs) without a control plane.
import type { V1Deployment, V1Node, V1Pod } from "@kubernetes/client-node";
import { projectPodGpus } from "../../src/controllers/moedeployment/pod-gpus.ts";
import { readPreferredNode } from "../../src/controllers/moedeployment/codecs/shard-pod.ts";
import type { Harness } from "./reconciler-harness.ts";
import type { Rng } from "../../src/domain/rng.ts";

const GPU = "nvidia.com/gpu";
const BOUND_AT = "sim.test/bound-at";

export interface SimOptions {
  /** Seconds from binding to Ready. */
  readySeconds: number;
  /**
   * The order the scheduler tries Pending pods in: oldest first (default), or shuffled by this
   * generator (a real scheduler's queue is reordered by backoff and priority).
   */
  queue?: Rng;
}

function freeGpus(h: Harness): Map<string, number> {
  const free = new Map<string, number>();
  for (const n of h.store.list<V1Node>("Node")) free.set(n.metadata!.name!, Number(n.status?.allocatable?.[GPU] ?? 0));
  for (const p of h.store.list<V1Pod>("Pod")) {
    const node = p.spec?.nodeName;
    if (!node) continue;
    free.set(node, (free.get(node) ?? 0) - (projectPodGpus(p).gpuRequests?.[GPU] ?? 0));
  }
  return free;
}

/** Deployments (the router) report their replicas Ready at once. */
function tickDeployments(h: Harness): void {
  for (const d of h.store.list<V1Deployment>("Deployment")) {
    const replicas = d.spec?.replicas ?? 1;
    const generation = d.metadata?.generation ?? 1;
    if (d.status?.readyReplicas === replicas && d.status.observedGeneration === generation) continue;
    h.store.put({ ...d, status: { replicas, readyReplicas: replicas, observedGeneration: generation } } as never);
  }
}

/** One scheduler and kubelet pass at the harness clock's time. */
export function tickCluster(h: Harness, o: SimOptions): void {
  tickDeployments(h);
  const nowMs = h.clock.nowMs();
  const free = freeGpus(h);
  const byAge = h.store
    .list<V1Pod>("Pod")
    // Oldest first (the harness numbers uids in creation order).
    .sort((a, b) => Number(a.metadata!.uid!.slice(4)) - Number(b.metadata!.uid!.slice(4)));
  const pods = o.queue ? o.queue.shuffle(byAge) : byAge;
  for (const p of pods) {
    if (p.spec?.nodeName) continue;
    const want = projectPodGpus(p).gpuRequests?.[GPU] ?? 0;
    const preferred = readPreferredNode(p);
    const fits = (n: string) => (free.get(n) ?? 0) >= want;
    const node = preferred && fits(preferred) ? preferred : [...free.keys()].sort().find(fits);
    if (!node) {
      if (p.status?.conditions?.some((c) => c.reason === "Unschedulable")) continue;
      h.store.put({
        ...p,
        status: {
          phase: "Pending",
          conditions: [{ type: "PodScheduled", status: "False", reason: "Unschedulable" }],
        },
      } as never);
      continue;
    }
    free.set(node, (free.get(node) ?? 0) - want);
    h.store.put({
      ...p,
      metadata: { ...p.metadata, annotations: { ...p.metadata?.annotations, [BOUND_AT]: String(nowMs) } },
      spec: { ...p.spec!, nodeName: node },
      status: { phase: "Running", conditions: [{ type: "PodScheduled", status: "True" }] },
    } as never);
  }
  for (const p of h.store.list<V1Pod>("Pod")) {
    const bound = Number(p.metadata?.annotations?.[BOUND_AT]);
    const ready = p.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True");
    if (!p.spec?.nodeName || ready || !Number.isFinite(bound) || nowMs - bound < o.readySeconds * 1000) continue;
    h.store.put({
      ...p,
      status: {
        phase: "Running",
        conditions: [
          { type: "PodScheduled", status: "True" },
          { type: "Ready", status: "True", lastTransitionTime: new Date(nowMs) },
        ],
      },
    } as never);
  }
}

/** A pod that holds `gpus` GPUs on `node` and belongs to no MoEDeployment (the router, other tenants). */
export function otherPod(name: string, node: string, gpus: number): V1Pod {
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: { name, namespace: "default", labels: { app: "other" } },
    spec: {
      nodeName: node,
      containers: [{ name: "c", image: "x", resources: { limits: { [GPU]: String(gpus) } } }],
    },
    status: { phase: "Running" },
  } as V1Pod;
}
