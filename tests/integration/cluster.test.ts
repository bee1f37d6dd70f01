// The local control plane is real: scheduler places GPU pods on kwok nodes,
// controller-manager runs ReplicaSets and garbage collection, and teardown
// leaves no processes.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AppsV1Api, CoreV1Api, type V1Pod } from "@kubernetes/client-node";
import { startCluster, type LocalCluster } from "../../src/testing/cluster.ts";
import { waitFor } from "../../src/testing/http-probe.ts";
import { NodeLabels } from "../../src/testing/gpu-nodes.ts";

let cluster: LocalCluster;
let core: CoreV1Api;
let apps: AppsV1Api;
const ns = "default";

beforeAll(async () => {
  cluster = await startCluster({
    name: "foundation",
    gpuNodes: [
      {
        pool: "h100",
        count: 2,
        gpusPerNode: 8,
        gpuProduct: "NVIDIA-H100-80GB-HBM3",
        gpuMemoryMiB: 81559,
        priceUsdPerGpuHour: 2,
        nodesPerDomain: 1,
      },
      {
        pool: "h200",
        count: 1,
        gpusPerNode: 8,
        gpuProduct: "NVIDIA-H200-141GB-HBM3e",
        gpuMemoryMiB: 143771,
        priceUsdPerGpuHour: 3.5,
      },
    ],
  });
  core = cluster.kubeConfig.makeApiClient(CoreV1Api);
  apps = cluster.kubeConfig.makeApiClient(AppsV1Api);
  console.log(`control plane ready in ${cluster.startupMs} ms`);
});

afterAll(async () => {
  await cluster?.stop();
});

function gpuPod(name: string, gpus: number): V1Pod {
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: { name, namespace: ns },
    spec: {
      containers: [
        {
          name: "worker",
          image: "example.invalid/worker:1",
          resources: { limits: { "nvidia.com/gpu": String(gpus) } },
        },
      ],
    },
  };
}

describe("local control plane", () => {
  it("registers the fake GPU nodes with capacity and labels", async () => {
    const nodes = (await core.listNode({ labelSelector: "type=kwok" })).items;
    expect(nodes.map((n) => n.metadata!.name).sort()).toEqual(["h100-0", "h100-1", "h200-0"]);
    for (const n of nodes) {
      expect(n.status?.allocatable?.["nvidia.com/gpu"]).toBe("8");
      expect(n.status?.conditions?.find((c) => c.type === "Ready")?.status).toBe("True");
    }
    const h100 = nodes.find((n) => n.metadata!.name === "h100-1")!;
    expect(h100.metadata!.labels![NodeLabels.priceUsdPerGpuHour]).toBe("2.00");
    expect(h100.metadata!.labels![NodeLabels.topologyDomain]).toBe("h100-d1");
  });

  it("schedules a pod requesting one GPU onto a GPU node and it becomes Running", async () => {
    await core.createNamespacedPod({ namespace: ns, body: gpuPod("one-gpu", 1) });
    const pod = await waitFor(
      "pod one-gpu Running",
      async () => {
        const p = await core.readNamespacedPod({ name: "one-gpu", namespace: ns });
        return p.status?.phase === "Running" ? p : undefined;
      },
      { timeoutMs: 60_000, intervalMs: 250 },
    );
    expect(pod.spec?.nodeName).toMatch(/^h(100|200)-\d$/);
  });

  it("keeps a pod that asks for more GPUs than any node has Pending with FailedScheduling", async () => {
    await core.createNamespacedPod({ namespace: ns, body: gpuPod("too-many-gpus", 9) });
    const event = await waitFor(
      "FailedScheduling event",
      async () => {
        const evs = await core.listNamespacedEvent({
          namespace: ns,
          fieldSelector: "involvedObject.name=too-many-gpus",
        });
        return evs.items.find((e) => e.reason === "FailedScheduling");
      },
      { timeoutMs: 60_000, intervalMs: 250 },
    );
    expect(event.message).toMatch(/Insufficient nvidia\.com\/gpu/);
    const p = await core.readNamespacedPod({ name: "too-many-gpus", namespace: ns });
    expect(p.status?.phase).toBe("Pending");
    expect(p.spec?.nodeName).toBeUndefined();
  });

  it("runs Deployments through ReplicaSets and garbage-collects them with their owner", async () => {
    await apps.createNamespacedDeployment({
      namespace: ns,
      body: {
        apiVersion: "apps/v1",
        kind: "Deployment",
        metadata: { name: "shards", namespace: ns },
        spec: {
          replicas: 3,
          selector: { matchLabels: { app: "shards" } },
          template: {
            metadata: { labels: { app: "shards" } },
            spec: {
              containers: [
                { name: "w", image: "example.invalid/w:1", resources: { limits: { "nvidia.com/gpu": "2" } } },
              ],
            },
          },
        },
      },
    });
    const running = await waitFor(
      "3 running deployment pods",
      async () => {
        const pods = (await core.listNamespacedPod({ namespace: ns, labelSelector: "app=shards" })).items;
        return pods.length === 3 && pods.every((p) => p.status?.phase === "Running") ? pods : undefined;
      },
      { timeoutMs: 90_000, intervalMs: 250 },
    );
    const rsOwner = running[0]!.metadata!.ownerReferences?.[0];
    expect(rsOwner?.kind).toBe("ReplicaSet");
    expect(rsOwner?.controller).toBe(true);

    await apps.deleteNamespacedDeployment({ name: "shards", namespace: ns, propagationPolicy: "Background" });
    await waitFor(
      "ReplicaSet and pods garbage-collected",
      async () => {
        const rs = (await apps.listNamespacedReplicaSet({ namespace: ns, labelSelector: "app=shards" })).items;
        const pods = (await core.listNamespacedPod({ namespace: ns, labelSelector: "app=shards" })).items;
        return rs.length === 0 && pods.length === 0 ? true : undefined;
      },
      { timeoutMs: 90_000, intervalMs: 500 },
    );
  });

  it("answers kubectl with the version-matched client", async () => {
    const r = await cluster.kubectl(["get", "nodes", "-l", "type=kwok", "-o", "name"]);
    expect(r.code).toBe(0);
    expect(r.stdout.trim().split("\n").sort()).toEqual(["node/h100-0", "node/h100-1", "node/h200-0"]);
    const v = await cluster.kubectl(["version", "-o", "json"]);
    expect(JSON.parse(v.stdout).serverVersion.gitVersion).toMatch(/^v1\.36\./);
  });
});

describe("teardown", () => {
  it("stops every process it started", async () => {
    const c = await startCluster({ name: "teardown" });
    const pids = c.processes.map((p) => p.pid!);
    expect(pids.length).toBe(5);
    await c.stop();
    for (const pid of pids) expect(() => process.kill(pid, 0)).toThrow();
  });
});
