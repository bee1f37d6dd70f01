// What the operator caches of its own pods and of nodes: the fields the reconciler reads,
// nothing else. The informers apply these projections before caching (listed and watched
// objects alike), and the reconciler's caches are typed with the projected types, so reading
// a field that is not kept does not compile. A shard pod's spec (containers, volumes, env)
// and most of its status (container statuses, host IP) are not kept: nothing reads them back;
// nodes keep their labels, schedulability, allocatable resources and Ready condition.
import type {
  KubernetesObject,
  V1Node,
  V1NodeCondition,
  V1ObjectMeta,
  V1Pod,
  V1PodCondition,
  V1PreferredSchedulingTerm,
} from "@kubernetes/client-node";
import { ShardAnnotation } from "./codecs/shard-pod.ts";

/** One of the operator's own pods (managed-by label), as the reconciler reads it. */
export interface CachedPod extends KubernetesObject {
  metadata?: Pick<
    V1ObjectMeta,
    | "name"
    | "namespace"
    | "uid"
    | "resourceVersion"
    | "labels"
    | "annotations"
    | "ownerReferences"
    | "deletionTimestamp"
    | "creationTimestamp"
  >;
  spec?: {
    nodeName?: string;
    /** Only on pods without the moe.dev/preferred-node annotation (written before it): the preferred node's term. */
    affinity?: { nodeAffinity?: { preferredDuringSchedulingIgnoredDuringExecution?: V1PreferredSchedulingTerm[] } };
  };
  status?: {
    phase?: string;
    /** The address peers are named by (moe.dev/expert-peers on new and moving shards). */
    podIP?: string;
    conditions?: Pick<V1PodCondition, "type" | "status" | "reason" | "message" | "lastTransitionTime">[];
  };
}

/** A node as the reconciler reads it. */
export interface CachedNode extends KubernetesObject {
  metadata?: Pick<V1ObjectMeta, "name" | "resourceVersion" | "labels">;
  spec?: { unschedulable?: boolean };
  /** conditions: the Ready condition only (type and status). */
  status?: { allocatable?: Record<string, string>; conditions?: Pick<V1NodeCondition, "type" | "status">[] };
}

/** Sets o[k] = v unless v is undefined or null (absent fields stay absent: no own properties holding undefined). */
function put<O extends object, K extends keyof O>(o: O, k: K, v: O[K] | undefined): void {
  if (v !== undefined && v !== null) o[k] = v;
}

export function projectPod(pod: V1Pod): CachedPod {
  const m = pod.metadata;
  const out: CachedPod = { metadata: {} };
  put(out, "apiVersion", pod.apiVersion);
  put(out, "kind", pod.kind);
  const meta = out.metadata!;
  put(meta, "name", m?.name);
  put(meta, "namespace", m?.namespace);
  put(meta, "uid", m?.uid);
  put(meta, "resourceVersion", m?.resourceVersion);
  put(meta, "labels", m?.labels);
  put(meta, "annotations", m?.annotations);
  put(meta, "ownerReferences", m?.ownerReferences);
  put(meta, "deletionTimestamp", m?.deletionTimestamp);
  put(meta, "creationTimestamp", m?.creationTimestamp);
  const spec: NonNullable<CachedPod["spec"]> = {};
  put(spec, "nodeName", pod.spec?.nodeName);
  const preferred = pod.spec?.affinity?.nodeAffinity?.preferredDuringSchedulingIgnoredDuringExecution;
  if (preferred && m?.annotations?.[ShardAnnotation.preferredNode] === undefined) {
    spec.affinity = { nodeAffinity: { preferredDuringSchedulingIgnoredDuringExecution: preferred } };
  }
  if (Object.keys(spec).length > 0) out.spec = spec;
  const s = pod.status;
  if (s) {
    const status: NonNullable<CachedPod["status"]> = {};
    put(status, "phase", s.phase);
    put(status, "podIP", s.podIP);
    put(
      status,
      "conditions",
      s.conditions?.map((c) => {
        const kept: Pick<V1PodCondition, "type" | "status" | "reason" | "message" | "lastTransitionTime"> = {
          type: c.type,
          status: c.status,
        };
        put(kept, "reason", c.reason);
        put(kept, "message", c.message);
        put(kept, "lastTransitionTime", c.lastTransitionTime);
        return kept;
      }),
    );
    out.status = status;
  }
  return out;
}

export function projectNode(node: V1Node): CachedNode {
  const m = node.metadata;
  const out: CachedNode = { metadata: {} };
  put(out, "apiVersion", node.apiVersion);
  put(out, "kind", node.kind);
  put(out.metadata!, "name", m?.name);
  put(out.metadata!, "resourceVersion", m?.resourceVersion);
  put(out.metadata!, "labels", m?.labels);
  if (node.spec?.unschedulable !== undefined) out.spec = { unschedulable: node.spec.unschedulable };
  const ready = node.status?.conditions?.find((c) => c.type === "Ready");
  const allocatable = node.status?.allocatable;
  if (ready || allocatable) {
    out.status = {};
    put(out.status, "allocatable", allocatable);
    if (ready) out.status.conditions = [{ type: ready.type, status: ready.status }];
  }
  return out;
}
