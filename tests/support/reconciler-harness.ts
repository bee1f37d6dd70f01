// The MoEDeployment reconciler in-process with in-memory caches and an
// in-memory object store standing in for the API server's write side. For
// unit tests of what the reconciler decides and writes (status, children);
// integration tests run it against the real control plane instead.
import {
  ApiException,
  type KubernetesObject,
  type V1ConfigMap,
  type V1Deployment,
  type V1Node,
  type V1Pod,
} from "@kubernetes/client-node";
import pino from "pino";
import { KubeApiError } from "../../src/adapters/kube-errors.ts";
import type { KubeClient, ObjectRef } from "../../src/adapters/kube.ts";
import {
  MoEDeploymentReconciler,
  type Cache,
  type MoEDeploymentObject,
  type ReconcilerConfig,
  type ReconcilerDeps,
} from "../../src/controllers/moedeployment/reconciler.ts";
import { projectPodGpus, type PodGpuView } from "../../src/controllers/moedeployment/pod-gpus.ts";
import { projectNode, projectPod } from "../../src/controllers/moedeployment/cached.ts";
import type { SourceDeps } from "../../src/controllers/moedeployment/sources.ts";
import { createMetrics, type OperatorMetrics } from "../../src/observability/metrics.ts";
import { FakeClock } from "../../src/runtime/clock.ts";

type Obj = KubernetesObject & { status?: unknown; data?: Record<string, string> };

/** A Kubernetes error as the client library raises it, wrapped the way KubeClient wraps it. */
export function apiError(operation: string, code: number, message = `HTTP ${code}`, reason?: string): KubeApiError {
  return new KubeApiError(
    operation,
    new ApiException(code, message, JSON.stringify({ kind: "Status", code, message, reason }), {}),
  );
}

export class MemoryStore {
  readonly objects = new Map<string, Obj>();
  /** Returns an error to throw for a write, or undefined to let it through. */
  failWrite: ((verb: string, obj: { kind?: string; name?: string }) => Error | undefined) | undefined;
  /** Events recorded through the client, oldest first. */
  readonly events: { type: string; reason: string; message: string }[] = [];
  #rv = 1;

  static key(kind: string | undefined, namespace: string | undefined, name: string | undefined): string {
    return `${kind}/${namespace ?? ""}/${name}`;
  }

  list<T>(kind: string, namespace?: string): T[] {
    return [...this.objects.values()].filter(
      (o) => o.kind === kind && (namespace === undefined || o.metadata?.namespace === namespace),
    ) as T[];
  }

  cache<T>(kind: string): Cache<T> {
    return {
      list: (namespace) => this.list<T>(kind, namespace),
      get: (name, namespace) => this.objects.get(MemoryStore.key(kind, namespace, name)) as T | undefined,
    };
  }

  put(obj: Obj): Obj {
    const stored = structuredClone(obj);
    stored.metadata = {
      ...stored.metadata,
      resourceVersion: String(this.#rv++),
      uid: stored.metadata?.uid ?? `uid-${this.#rv}`,
    };
    this.objects.set(MemoryStore.key(obj.kind, obj.metadata?.namespace, obj.metadata?.name), stored);
    return stored;
  }

  #check(verb: string, kind: string | undefined, name: string | undefined): void {
    const e = this.failWrite?.(verb, { kind, name });
    if (e) throw e;
  }

  /** The write side of KubeClient over this store. */
  client(): KubeClient {
    const writer = {
      apply: async <T extends KubernetesObject>(obj: T): Promise<T> => {
        this.#check("apply", obj.kind, obj.metadata?.name);
        const old = this.objects.get(MemoryStore.key(obj.kind, obj.metadata?.namespace, obj.metadata?.name));
        return this.put({ ...old, ...obj, metadata: { ...old?.metadata, ...obj.metadata } } as Obj) as T;
      },
      create: async <T extends KubernetesObject>(obj: T): Promise<T> => {
        this.#check("create", obj.kind, obj.metadata?.name);
        if (this.objects.has(MemoryStore.key(obj.kind, obj.metadata?.namespace, obj.metadata?.name))) {
          // As the API server answers a create of a name in use (a pod still terminating, say).
          throw apiError(`create ${obj.kind}/${obj.metadata?.name}`, 409, "already exists", "AlreadyExists");
        }
        return this.put(obj as Obj) as T;
      },
      mergePatch: async (
        ref: ObjectRef,
        patch: {
          metadata?: {
            labels?: Record<string, string | null>;
            annotations?: Record<string, string | null>;
            resourceVersion?: string;
          };
        },
      ) => {
        this.#check("patch", ref.kind, ref.name);
        const old = this.objects.get(MemoryStore.key(ref.kind, ref.namespace, ref.name));
        if (!old) throw apiError(`patch ${ref.kind}/${ref.name}`, 404, "not found");
        // A merge patch that names a resourceVersion applies only over that version.
        const rv = patch.metadata?.resourceVersion;
        if (rv !== undefined && old.metadata?.resourceVersion !== rv)
          throw apiError(`patch ${ref.kind}/${ref.name}`, 409, "conflict");
        const m = old.metadata ?? {};
        // JSON merge patch: a null value removes the key.
        const merged = (a: Record<string, string> | undefined, b: Record<string, string | null> | undefined) =>
          Object.fromEntries(Object.entries({ ...a, ...b }).filter(([, v]) => v !== null)) as Record<string, string>;
        this.put({
          ...old,
          metadata: {
            ...m,
            labels: merged(m.labels, patch.metadata?.labels),
            annotations: merged(m.annotations, patch.metadata?.annotations),
          },
        });
      },
      delete: async (ref: ObjectRef) => {
        this.#check("delete", ref.kind, ref.name);
        if (!this.objects.delete(MemoryStore.key(ref.kind, ref.namespace, ref.name)))
          throw apiError(`delete ${ref.kind}/${ref.name}`, 404, "not found");
      },
      replaceStatus: async (_g: string, _v: string, _p: string, obj: Obj) => {
        this.#check("update-status", obj.kind, obj.metadata?.name);
        const old = this.objects.get(MemoryStore.key(obj.kind, obj.metadata?.namespace, obj.metadata?.name));
        if (!old) throw apiError(`update-status ${obj.kind}/${obj.metadata?.name}`, 404, "not found");
        if (old.metadata?.resourceVersion !== obj.metadata?.resourceVersion)
          throw apiError(`update-status ${obj.kind}/${obj.metadata?.name}`, 409, "conflict");
        this.put({ ...old, status: obj.status });
      },
      event: async (_ref: ObjectRef, type: string, reason: string, message: string) => {
        this.events.push({ type, reason, message });
      },
    };
    return writer as unknown as KubeClient;
  }
}

export function gpuNode(name: string, gpus: number, priceUsdPerGpuHour: number): V1Node {
  return {
    apiVersion: "v1",
    kind: "Node",
    metadata: {
      name,
      labels: { "kubernetes.io/hostname": name, "moe.dev/price-usd-per-gpu-hour": String(priceUsdPerGpuHour) },
    },
    status: {
      allocatable: { "nvidia.com/gpu": String(gpus) },
      capacity: { "nvidia.com/gpu": String(gpus) },
      conditions: [{ type: "Ready", status: "True" }],
    },
  } as V1Node;
}

/** The Prometheus URL the harness's source policy allows (answered by startHarness's `prometheus`). */
export const PROMETHEUS_TEST_URL = "http://prometheus.test:9090";

export interface Harness {
  store: MemoryStore;
  clock: FakeClock;
  metrics: OperatorMetrics;
  reconciler: MoEDeploymentReconciler;
  /** Reconciles `namespace/name` once. */
  reconcile(key: string): ReturnType<MoEDeploymentReconciler["reconcile"]>;
  moed(namespace: string, name: string): MoEDeploymentObject;
  pods(): V1Pod[];
}

export function startHarness(
  o: {
    heatJson?: string;
    nowMs?: number;
    config?: Partial<ReconcilerConfig>;
    gitops?: ReconcilerDeps["gitops"];
    /** A Prometheus for spec sources at PROMETHEUS_TEST_URL (the default throws). */
    prometheus?: SourceDeps["prometheus"];
  } = {},
): Harness {
  const store = new MemoryStore();
  const clock = new FakeClock(o.nowMs ?? Date.parse("2026-06-01T12:00:00Z"));
  const metrics = createMetrics({ defaultMetrics: false });
  const core = {
    readNamespacedConfigMap: async ({ name, namespace }: { name: string; namespace: string }) => {
      const cm = store.cache<V1ConfigMap>("ConfigMap").get(name, namespace);
      if (!cm) throw new ApiException(404, "not found", JSON.stringify({ code: 404, message: "not found" }), {});
      return cm;
    },
  };
  const sources = {
    prometheus:
      o.prometheus ??
      (() => {
        throw new Error("no Prometheus in the harness");
      }),
    core,
    nowMs: () => clock.nowMs(),
    policy: { prometheusAllowedUrls: [PROMETHEUS_TEST_URL], fileHeatSourceDirs: [], fileHeatSourceMaxBytes: 0 },
    maxSourceTimeoutMs: 5000,
  } as unknown as SourceDeps;
  const podGpus: Cache<PodGpuView> = {
    list: (ns) => store.list<V1Pod>("Pod", ns).map(projectPodGpus),
    get: () => undefined,
  };
  // Pods and nodes reach the reconciler through the operator's projections, as from its informers.
  const projected = <T, R>(kind: string, project: (o: R) => T): Cache<T> => {
    const c = store.cache<R>(kind);
    return {
      list: (ns) => c.list(ns).map(project),
      get: (name, ns) => {
        const o = c.get(name, ns);
        return o === undefined ? undefined : project(o);
      },
    };
  };
  const reconciler = new MoEDeploymentReconciler({
    kube: store.client(),
    moeds: store.cache<MoEDeploymentObject>("MoEDeployment"),
    pods: projected("Pod", projectPod),
    podGpus,
    deployments: store.cache<V1Deployment>("Deployment"),
    configMaps: store.cache<V1ConfigMap>("ConfigMap"),
    nodes: projected("Node", projectNode),
    sources,
    clock,
    logger: pino({ level: "silent" }),
    metrics,
    gitops: o.gitops,
    config: {
      reconcileIntervalMs: 10_000,
      drainSeconds: 5,
      maxSurge: 8,
      sourceWaitMs: 5_000,
      component: "moe-operator-test",
      ...o.config,
    },
  });
  return {
    store,
    clock,
    metrics,
    reconciler,
    reconcile: (key) => reconciler.reconcile(key),
    moed: (namespace, name) => store.cache<MoEDeploymentObject>("MoEDeployment").get(name, namespace)!,
    pods: () => store.list<V1Pod>("Pod"),
  };
}
