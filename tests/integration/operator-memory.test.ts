// The operator's memory with many unrelated pods in the cluster (issue 20, item 5):
// 5,000 pods that are not the operator's, of a realistic size (about 10 KiB of JSON
// each: env vars, a last-applied-configuration-sized annotation, managedFields), stay
// Pending (no scheduler serves their schedulerName). The real operator binary starts
// after they exist, so its first list holds all of them; its peak RSS (VmHWM) after the
// caches have synced must stay well under the chart's 512Mi memory limit.
// A memory bound, not a timing assertion. The same cluster checks the GPU-accounting
// informer itself: it lists all pods in pages and keeps only the projection, for listed
// and for watched (added, modified, deleted) pods.
import { readFileSync } from "node:fs";
import { CoreV1Api, type V1Pod } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startCluster, type LocalCluster } from "../../src/testing/cluster.ts";
import type { ManagedProcess } from "../../src/testing/process.ts";
import { waitFor } from "../../src/testing/http-probe.ts";
import { startOperatorProcess } from "../support/operator-process.ts";
import { pino } from "pino";
import { realClock } from "../../src/runtime/clock.ts";
import { createPodGpuInformer, type PodGpuView } from "../../src/controllers/moedeployment/pod-gpus.ts";

const PODS = 5_000;
const NS = "crowd";
const CHART_LIMIT_MIB = 512;
/**
 * Generous: three quarters of the chart limit, on a machine without a cgroup memory
 * limit (V8 collects less eagerly than under the container's 512Mi). Measured here:
 * 177 MiB with no unrelated pods, 276 MiB with 5,000 (lean projection, pages of 100),
 * 528 MiB peak when every pod was cached whole.
 */
const BOUND_MIB = (CHART_LIMIT_MIB * 3) / 4;

let cluster: LocalCluster;
let operator: ManagedProcess | undefined;

function unrelatedPod(i: number): V1Pod {
  const filler = "x".repeat(6_000);
  return {
    metadata: {
      name: `crowd-${i}`,
      labels: { app: "crowd", shard: String(i % 97) },
      annotations: { "kubectl.kubernetes.io/last-applied-configuration": `{"note":"${filler}"}` },
    },
    spec: {
      schedulerName: "nobody-schedules-these",
      containers: [
        {
          name: "app",
          image: "registry.example/app:1",
          env: Array.from({ length: 40 }, (_, k) => ({ name: `SETTING_${k}`, value: `value-${k}-${i}` })),
          resources: { requests: { cpu: "10m", memory: "16Mi" } },
        },
      ],
    },
  };
}

async function createPods(core: CoreV1Api, count: number, concurrency: number): Promise<void> {
  let next = 0;
  const worker = async () => {
    for (let i = next++; i < count; i = next++)
      await core.createNamespacedPod({ namespace: NS, body: unrelatedPod(i) });
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
}

function statusKiB(pid: number, field: "VmRSS" | "VmHWM"): number {
  const line = readFileSync(`/proc/${pid}/status`, "utf8")
    .split("\n")
    .find((l) => l.startsWith(`${field}:`));
  return Number(line?.match(/(\d+)/)?.[1] ?? NaN);
}

beforeAll(async () => {
  cluster = await startCluster({ name: "memory" });
  const crd = await cluster.kubectl(["apply", "--server-side", "-f", "crds/"]);
  expect(crd.code, crd.stderr).toBe(0);
  await cluster.kubectl(["wait", "--for=condition=Established", "crd/moedeployments.moe.dev", "--timeout=30s"]);
  expect((await cluster.kubectl(["create", "namespace", NS])).code).toBe(0);
  await createPods(cluster.kubeConfig.makeApiClient(CoreV1Api), PODS, 16);
}, 600_000);

afterAll(async () => {
  await operator?.stop();
  await cluster?.stop();
});

describe("operator memory with many unrelated pods", () => {
  it(`peaks under ${BOUND_MIB} MiB RSS with ${PODS} unrelated pods cached (chart limit ${CHART_LIMIT_MIB}Mi)`, async () => {
    const listed = await cluster.kubectl(["get", "pods", "-n", NS, "--no-headers", "-o", "name"]);
    expect(listed.stdout.trim().split("\n")).toHaveLength(PODS);
    const op = startOperatorProcess({
      kubeconfigPath: cluster.kubeconfigPath,
      dir: cluster.dir,
      identity: "mem",
      leaderElect: false,
    });
    operator = op;
    await waitFor(
      "caches synced",
      async () => (readFileSync(op.logFile, "utf8").includes("caches synced") ? true : undefined),
      {
        timeoutMs: 120_000,
        intervalMs: 250,
        onTimeout: () => op.logTail(20),
      },
    );
    const pid = op.pid!;
    const rssMiB = statusKiB(pid, "VmRSS") / 1024;
    const peakMiB = statusKiB(pid, "VmHWM") / 1024;
    console.log(`operator with ${PODS} unrelated pods: RSS ${rssMiB.toFixed(0)} MiB, peak ${peakMiB.toFixed(0)} MiB`);
    expect(op.exitCode).toBeUndefined();
    expect(peakMiB).toBeLessThan(BOUND_MIB);
  }, 180_000);

  it("the GPU-accounting informer lists every pod in pages and keeps only the projection, also for watched changes", async () => {
    const informer = createPodGpuInformer({
      kubeConfig: cluster.kubeConfig,
      clock: realClock,
      logger: pino({ level: "silent" }),
    });
    try {
      await informer.start();
      await informer.synced;
      expect(informer.list(NS).length).toBe(PODS);
      expect(Object.keys(informer.get("crowd-7", NS)!).sort()).toEqual(["metadata", "phase"]);
      const core = cluster.kubeConfig.makeApiClient(CoreV1Api);
      const gpuPod = unrelatedPod(PODS + 1);
      gpuPod.metadata!.name = "gpu-user";
      gpuPod.spec!.nodeName = "some-node";
      gpuPod.spec!.containers[0]!.resources = { limits: { "nvidia.com/gpu": "2" } };
      await core.createNamespacedPod({ namespace: NS, body: gpuPod });
      const seen = await waitFor("the watched pod in the cache", async () => informer.get("gpu-user", NS), {
        timeoutMs: 30_000,
      });
      expect(seen).toEqual({
        metadata: { namespace: NS, name: "gpu-user", uid: expect.any(String), resourceVersion: expect.any(String) },
        nodeName: "some-node",
        phase: "Pending",
        gpuRequests: { "nvidia.com/gpu": 2 },
      } satisfies PodGpuView);
      expect((await cluster.kubectl(["label", "pod", "gpu-user", "-n", NS, "touched=yes"])).code).toBe(0);
      await waitFor(
        "the modified pod",
        async () =>
          informer.get("gpu-user", NS)?.metadata.resourceVersion !== seen.metadata.resourceVersion ? true : undefined,
        { timeoutMs: 30_000 },
      );
      expect(Object.keys(informer.get("gpu-user", NS)!).sort()).toEqual([
        "gpuRequests",
        "metadata",
        "nodeName",
        "phase",
      ]);
      await core.deleteNamespacedPod({ namespace: NS, name: "gpu-user", gracePeriodSeconds: 0 });
      await waitFor("the deleted pod gone", async () => (informer.get("gpu-user", NS) ? undefined : true), {
        timeoutMs: 30_000,
      });
    } finally {
      await informer.stop();
    }
  });
});
