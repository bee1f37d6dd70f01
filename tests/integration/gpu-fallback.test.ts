// spec.serving.gpu.alternatives (issue 19 item 4, ADR 0023) on the real control plane: shard pods
// that cannot be placed on the primary GPU nodes past spec.scaling.pendingTimeoutSeconds are
// replaced by pods that may also run on an alternative node type; they run there, are priced at that
// node's price, CapacityPending clears, and a scale-down leaves no pod on the alternative. The
// alternative's nodes are tainted and only its own toleration (spec.serving.gpu.alternatives[].
// tolerations) lets the fallback pods on. When the primary type has room again (a node is added), the
// fallback pods move back make-before-break (moe.dev/gpu-return-for, GPUReturn events).
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startCluster, type LocalCluster } from "../../src/testing/cluster.ts";
import type { ManagedProcess } from "../../src/testing/process.ts";
import { waitFor } from "../../src/testing/http-probe.ts";
import { startOperatorProcess } from "../support/operator-process.ts";
import { heatConfigMap, skewedHeat, testMoEDeployment } from "../support/moe-fixtures.ts";
import { applyJson, condition, getJson, shardPods, waitForStatus } from "../support/kube-helpers.ts";

let cluster: LocalCluster;
let operator: ManagedProcess;
const NAME = "fallback";
const TIMEOUT_S = 3;
const POOL = "moe.dev/node-pool";

/**
 * Primary h100 (one node, 6 GPUs, $2/GPU-hour: the router takes 1, so 5 shards fit); alternative h200
 * (8 GPUs, $3), tainted: only the alternative's own toleration lets the fallback pods on.
 */
/** One 6-GPU h100 node at $2/GPU-hour (the pool name is the node name's prefix). */
const h100Node = (pool: string) => ({
  pool,
  count: 1,
  gpusPerNode: 6,
  gpuProduct: "NVIDIA-H100-80GB-HBM3",
  gpuMemoryMiB: 81559,
  priceUsdPerGpuHour: 2,
  nodesPerDomain: 1,
});
const H200_TAINT = { key: "moe.dev/reserved", value: "h200", effect: "NoSchedule" };
function deployment(minShards: number) {
  const d = testMoEDeployment(NAME, "default", { minShards, maxShards: 12, scaleDownWindowSeconds: 4 }) as ReturnType<
    typeof testMoEDeployment
  > & {
    spec: {
      scaling: { pendingTimeoutSeconds?: number };
      serving: { gpu?: unknown };
    };
  };
  d.spec.scaling.pendingTimeoutSeconds = TIMEOUT_S;
  d.spec.serving.gpu = {
    nodeSelector: { [POOL]: "h100" },
    alternatives: [
      {
        name: "h200",
        nodeSelector: { [POOL]: "h200" },
        tolerations: [{ key: H200_TAINT.key, operator: "Equal", value: H200_TAINT.value, effect: H200_TAINT.effect }],
      },
    ],
  };
  return d;
}

/** The pool by node name: h100-0 and the node added later, h100x-0, are both h100. */
const poolOf = (node: string | undefined) =>
  node === undefined ? undefined : node.startsWith("h200") ? "h200" : node.startsWith("h100") ? "h100" : node;

beforeAll(async () => {
  cluster = await startCluster({
    name: "fallback",
    gpuNodes: [
      h100Node("h100"),
      {
        pool: "h200",
        count: 1,
        gpusPerNode: 8,
        gpuProduct: "NVIDIA-H200",
        gpuMemoryMiB: 143771,
        priceUsdPerGpuHour: 3,
        nodesPerDomain: 1,
        taints: [H200_TAINT],
      },
    ],
  });
  const crd = await cluster.kubectl(["apply", "--server-side", "-f", "crds/"]);
  expect(crd.code, crd.stderr).toBe(0);
  await cluster.kubectl(["wait", "--for=condition=Established", "crd/moedeployments.moe.dev", "--timeout=30s"]);
  operator = startOperatorProcess({ kubeconfigPath: cluster.kubeconfigPath, dir: cluster.dir, identity: "fallback" });
  await applyJson(cluster, heatConfigMap(`${NAME}-heat`, "default", skewedHeat(3_000, [1, 2])));
  await applyJson(cluster, deployment(4));
  await waitForStatus(
    cluster,
    NAME,
    "Ready and stable",
    (s) => condition(s, "Ready")?.status === "True" && condition(s, "Progressing")?.status === "False",
    120_000,
  );
}, 240_000);

afterAll(async () => {
  await operator?.stop();
  if (operator && process.env.MOE_TEST_VERBOSE) console.log(operator.logTail(120));
  await cluster?.stop();
});

describe("GPU node type fallback", () => {
  it("runs every shard on the primary nodes while they have room", async () => {
    const pods = await shardPods(cluster, NAME);
    expect(pods.length).toBe(4);
    expect(pods.every((p) => poolOf(p.node) === "h100")).toBe(true);
  });

  it("replaces shards stuck past the timeout by pods on the alternative, which run; CapacityPending clears", async () => {
    // 8 shards + the router on the primary's 6 GPUs: 3 shard pods cannot be placed there.
    await applyJson(cluster, deployment(8));
    const pods = await waitFor(
      "8 Ready shards: 5 on h100, 3 on h200",
      async () => {
        const p = (await shardPods(cluster, NAME)).filter((x) => !x.terminating);
        const on = (pool: string) => p.filter((x) => x.ready && poolOf(x.node) === pool).length;
        return p.length === 8 && on("h100") === 5 && on("h200") === 3 ? p : undefined;
      },
      { timeoutMs: 90_000, intervalMs: 500 },
    );
    const raw = await getJson<{ items: { metadata: { name: string; annotations?: Record<string, string> } }[] }>(
      cluster,
      ["get", "pods", "-l", `moe.dev/deployment=${NAME},moe.dev/component=expert-shard`],
    );
    const fallback = new Set(
      raw.items.filter((p) => p.metadata.annotations?.["moe.dev/gpu-fallback"] === "true").map((p) => p.metadata.name),
    );
    // The pods on h200 are the fallback ones; each shard index is served once.
    for (const p of pods) expect(fallback.has(p.name)).toBe(poolOf(p.node) === "h200");
    expect(new Set(pods.map((p) => p.shardIndex)).size).toBe(8);
    const s = await waitForStatus(
      cluster,
      NAME,
      "CapacityPending False with the fallback pods Ready",
      (st) => condition(st, "CapacityPending")?.status === "False" && st.currentShards === 8,
      60_000,
    );
    expect(condition(s, "CapacityPending")?.reason).toBe("NoPendingShards");
    // Priced at each node's price: the shards 5 x $2 + 3 x $3, the router's GPU at $2.
    expect(s.cost?.usdPerHour).toBe(5 * 2 + 3 * 3 + 2);
    const events = await getJson<{ items: { type: string; message: string }[] }>(cluster, [
      "get",
      "events",
      "--field-selector",
      `involvedObject.name=${NAME},reason=GPUFallback`,
    ]);
    expect(events.items.length).toBeGreaterThan(0);
    expect(events.items[0]!.message).toContain("spec.serving.gpu.alternatives h200");
  }, 150_000);

  it("moves the fallback pods back to the primary type once it has room, make-before-break", async () => {
    // A second h100 node (6 GPUs): room for the 3 shards on h200.
    await cluster.addGpuNodes([{ ...h100Node("h100x"), labels: { [POOL]: "h100" } }]);
    let minReady = 8;
    const pods = await waitFor(
      "8 Ready shards, all on h100, none on h200",
      async () => {
        const p = (await shardPods(cluster, NAME)).filter((x) => !x.terminating);
        // Each shard index keeps a Ready pod throughout: the return is make-before-break.
        minReady = Math.min(minReady, new Set(p.filter((x) => x.ready).map((x) => x.shardIndex)).size);
        return p.length === 8 && p.every((x) => x.ready && poolOf(x.node) === "h100") ? p : undefined;
      },
      { timeoutMs: 120_000, intervalMs: 250 },
    );
    expect(new Set(pods.map((p) => p.shardIndex)).size).toBe(8);
    expect(minReady).toBe(8);
    const raw = await getJson<{ items: { metadata: { annotations?: Record<string, string> } }[] }>(cluster, [
      "get",
      "pods",
      "-l",
      `moe.dev/deployment=${NAME},moe.dev/component=expert-shard`,
    ]);
    expect(raw.items.filter((p) => p.metadata.annotations?.["moe.dev/gpu-return-for"]).length).toBe(3);
    const events = await getJson<{ items: { message: string }[] }>(cluster, [
      "get",
      "events",
      "--field-selector",
      `involvedObject.name=${NAME},reason=GPUReturn`,
    ]);
    expect(events.items.some((e) => e.message.includes("moving back, make-before-break"))).toBe(true);
    expect(events.items.some((e) => e.message.includes("draining the fallback pod"))).toBe(true);
    const s = await waitForStatus(
      cluster,
      NAME,
      "priced on h100 only",
      (st) => st.cost?.usdPerHour === 8 * 2 + 2,
      60_000,
    );
    expect(condition(s, "CapacityPending")?.status).toBe("False");
  }, 180_000);

  it("leaves nothing on the alternative after a scale-down below the primary's room", async () => {
    await applyJson(cluster, deployment(4));
    const pods = await waitFor(
      "4 shards, all on h100",
      async () => {
        const p = await shardPods(cluster, NAME);
        return p.length === 4 && p.every((x) => x.ready && poolOf(x.node) === "h100" && !x.terminating) ? p : undefined;
      },
      { timeoutMs: 90_000, intervalMs: 500 },
    );
    expect(new Set(pods.map((p) => p.shardIndex))).toEqual(new Set([0, 1, 2, 3]));
    const all = await getJson<{ items: { spec: { nodeName?: string } }[] }>(cluster, [
      "get",
      "pods",
      "-l",
      `moe.dev/deployment=${NAME}`,
    ]);
    expect(all.items.every((p) => poolOf(p.spec.nodeName) === "h100")).toBe(true);
  }, 120_000);
});
