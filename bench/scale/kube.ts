// The scale benchmark's own API access (as the cluster admin, not the operator's user):
// creating objects, listing MoEDeployments and the operator's pods, patching a spec with
// one raw request (so the time taken is the request's, not a client process's), reading
// kube-apiserver's /metrics, and a watch that records when each generation's status is seen.
import { request } from "node:https";
import { readFileSync } from "node:fs";
import {
  CoreV1Api,
  CustomObjectsApi,
  KubernetesObjectApi,
  Watch,
  type KubernetesObject,
} from "@kubernetes/client-node";
import type { LocalCluster } from "../../src/testing/cluster.ts";
import { httpGet } from "../../src/testing/http-probe.ts";
import { API_GROUP, API_VERSION, PLURAL, Label, LabelValue } from "../../src/api/constants.ts";

export interface Moed {
  metadata: { name: string; generation?: number };
  status?: { observedGeneration?: number; currentShards?: number; conditions?: { type: string; status: string }[] };
}

export interface ManagedPod {
  uid: string;
  deployment: string;
  owner: string | undefined;
}

export class KubeApi {
  readonly #cluster: LocalCluster;
  readonly #tls: { ca: Buffer; cert: Buffer; key: Buffer };

  constructor(cluster: LocalCluster) {
    this.#cluster = cluster;
    this.#tls = {
      ca: readFileSync(cluster.pki.caCert),
      cert: readFileSync(cluster.pki.adminCert),
      key: readFileSync(cluster.pki.adminKey),
    };
  }

  async createAll(objects: KubernetesObject[], concurrency: number): Promise<void> {
    const client = KubernetesObjectApi.makeApiClient(this.#cluster.kubeConfig);
    let next = 0;
    const worker = async () => {
      for (let i = next++; i < objects.length; i = next++) await client.create(objects[i]!);
    };
    await Promise.all(Array.from({ length: concurrency }, worker));
  }

  async listMoeds(namespace: string): Promise<Moed[]> {
    const api = this.#cluster.kubeConfig.makeApiClient(CustomObjectsApi);
    const list = (await api.listNamespacedCustomObject({
      group: API_GROUP,
      version: API_VERSION,
      namespace,
      plural: PLURAL,
    })) as { items: Moed[] };
    return list.items;
  }

  async listManagedPods(namespace: string): Promise<ManagedPod[]> {
    const api = this.#cluster.kubeConfig.makeApiClient(CoreV1Api);
    const list = await api.listNamespacedPod({
      namespace,
      labelSelector: `${Label.managedBy}=${LabelValue.managedBy}`,
    });
    return list.items.map((p) => ({
      uid: p.metadata!.uid!,
      deployment: p.metadata!.labels?.[Label.deployment] ?? "",
      owner: p.metadata!.ownerReferences?.find((r) => r.controller)?.name,
    }));
  }

  /** Merge-patches a MoEDeployment's spec; resolves with the generation the API server gave it. */
  patchMoedSpec(namespace: string, name: string, spec: Record<string, unknown>): Promise<number> {
    const url = new URL(
      `${this.#cluster.server}/apis/${API_GROUP}/${API_VERSION}/namespaces/${namespace}/${PLURAL}/${name}`,
    );
    const body = JSON.stringify({ spec });
    return new Promise((resolve, reject) => {
      const req = request(
        url,
        {
          method: "PATCH",
          ...this.#tls,
          headers: { "content-type": "application/merge-patch+json", "content-length": Buffer.byteLength(body) },
          timeout: 30_000,
        },
        (res) => {
          let text = "";
          res.setEncoding("utf8").on("data", (c: string) => (text += c));
          res.on("end", () => {
            if (res.statusCode !== 200)
              return reject(
                new Error(`patching ${namespace}/${name} answered ${String(res.statusCode)}: ${text.slice(0, 300)}`),
              );
            resolve((JSON.parse(text) as Moed).metadata.generation ?? 0);
          });
        },
      );
      req.on("timeout", () => req.destroy(new Error("patch timed out after 30 s")));
      req.on("error", (err) => reject(new Error(`patching ${namespace}/${name} failed`, { cause: err })));
      req.end(body);
    });
  }

  async apiserverMetrics(): Promise<string> {
    const r = await httpGet(`${this.#cluster.server}/metrics`, this.#tls, 30_000);
    if (r.status !== 200) throw new Error(`kube-apiserver /metrics answered ${r.status}`);
    return r.body;
  }
}

/** Watches MoEDeployments and remembers, per name, when each observedGeneration was first seen. */
export class MoedWatch {
  readonly #seen = new Map<string, { generation: number; atMs: number }>();
  readonly #waiters = new Set<() => void>();
  #abort: AbortController | undefined;

  static async start(cluster: LocalCluster, namespace: string): Promise<MoedWatch> {
    const w = new MoedWatch();
    w.#abort = await new Watch(cluster.kubeConfig).watch(
      `/apis/${API_GROUP}/${API_VERSION}/namespaces/${namespace}/${PLURAL}`,
      {},
      (_type, obj: Moed) => {
        const g = obj.status?.observedGeneration ?? 0;
        const prev = w.#seen.get(obj.metadata.name);
        if (!prev || g > prev.generation) w.#seen.set(obj.metadata.name, { generation: g, atMs: performance.now() });
        for (const wake of w.#waiters) wake();
      },
      () => {},
    );
    return w;
  }

  /** performance.now() when status.observedGeneration >= generation was first seen for `name`. */
  async whenObserved(name: string, generation: number, timeoutMs: number): Promise<number> {
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      const s = this.#seen.get(name);
      if (s && s.generation >= generation) return s.atMs;
      if (performance.now() > deadline)
        throw new Error(`no status for ${name} generation ${generation} within ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        const wake = () => {
          this.#waiters.delete(wake);
          clearTimeout(t);
          resolve();
        };
        const t = setTimeout(wake, 1_000);
        this.#waiters.add(wake);
      });
    }
  }

  stop(): void {
    this.#abort?.abort();
  }
}
