// CapacityPending (issues 19 and 21): shard pods the scheduler cannot place for longer than
// spec.scaling.pendingTimeoutSeconds raise the condition (GPU resource and count), a Warning event
// and the moe_operator_capacity_pending_shards gauge; when demand falls the pending pods are
// deleted, nothing is left behind, and the condition clears.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readFileSync } from "node:fs";
import { startCluster, type LocalCluster } from "../../src/testing/cluster.ts";
import type { ManagedProcess } from "../../src/testing/process.ts";
import { waitFor } from "../../src/testing/http-probe.ts";
import { startOperatorProcess } from "../support/operator-process.ts";
import { heatConfigMap, skewedHeat, testMoEDeployment } from "../support/moe-fixtures.ts";
import { applyJson, condition, getJson, shardPods, waitForStatus } from "../support/kube-helpers.ts";

let cluster: LocalCluster;
let operator: ManagedProcess;
const NAME = "pending";
const TIMEOUT_S = 3;

/** 6 GPUs in all: the router takes 1, so at most 5 shards can run. Scale-down steps of 1 shard every 4 s. */
function deployment(minShards: number) {
  const d = testMoEDeployment(NAME, "default", { minShards, maxShards: 12, scaleDownWindowSeconds: 4 }) as ReturnType<
    typeof testMoEDeployment
  > & { spec: { scaling: { pendingTimeoutSeconds?: number } } };
  d.spec.scaling.pendingTimeoutSeconds = TIMEOUT_S;
  return d;
}

async function gauge(): Promise<number | undefined> {
  const started = readFileSync(operator.logFile, "utf8")
    .split("\n")
    .filter(Boolean)
    .map((l) => JSON.parse(l) as { msg?: string; metricsPort?: number })
    .find((l) => l.msg === "operator started");
  const text = await (await fetch(`http://127.0.0.1:${started!.metricsPort}/metrics`)).text();
  const line = text
    .split("\n")
    .find((l) => l.startsWith("moe_operator_capacity_pending_shards{") && l.includes(`name="${NAME}"`));
  return line === undefined ? undefined : Number(line.split(" ").at(-1));
}

beforeAll(async () => {
  cluster = await startCluster({
    name: "pending",
    gpuNodes: [
      {
        pool: "h100",
        count: 1,
        gpusPerNode: 6,
        gpuProduct: "NVIDIA-H100-80GB-HBM3",
        gpuMemoryMiB: 81559,
        priceUsdPerGpuHour: 2,
        nodesPerDomain: 1,
      },
    ],
  });
  const crd = await cluster.kubectl(["apply", "--server-side", "-f", "crds/"]);
  expect(crd.code, crd.stderr).toBe(0);
  await cluster.kubectl(["wait", "--for=condition=Established", "crd/moedeployments.moe.dev", "--timeout=30s"]);
  operator = startOperatorProcess({ kubeconfigPath: cluster.kubeconfigPath, dir: cluster.dir, identity: "pending" });
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

describe("CapacityPending", () => {
  it("is False with every shard scheduled", async () => {
    const s = await waitForStatus(cluster, NAME, "CapacityPending False", (st) => !!condition(st, "CapacityPending"));
    expect(condition(s, "CapacityPending")).toMatchObject({ status: "False", reason: "NoPendingShards" });
    expect(await gauge()).toBe(0);
  });

  it("appears when shards wait for GPUs past the timeout, naming the GPU and the count, with an event and the gauge", async () => {
    // 8 shards + the router on 6 GPUs: 3 shard pods cannot be placed.
    await applyJson(cluster, deployment(8));
    const s = await waitForStatus(
      cluster,
      NAME,
      "CapacityPending True for the 3 shards that cannot be placed",
      // The pods may be created over several reconciles: each turns pending-past-timeout on its own.
      (st) =>
        condition(st, "CapacityPending")?.status === "True" &&
        condition(st, "CapacityPending")!.message.startsWith("3 "),
      60_000,
    );
    const pending = (await shardPods(cluster, NAME)).filter((p) => !p.node && !p.terminating);
    expect(pending.length).toBe(3);
    const c = condition(s, "CapacityPending")!;
    expect(c.reason).toBe("ShardsUnschedulable");
    expect(c.message).toMatch(/^3 nvidia\.com\/gpu pending: 3 shard pod\(s\) unschedulable for more than 3 s/);
    expect(c.message).toMatch(/Insufficient nvidia\.com\/gpu/);
    expect(condition(s, "SLOMet")?.status).not.toBe("True");
    const events = await getJson<{ items: { type: string; message: string }[] }>(cluster, [
      "get",
      "events",
      "--field-selector",
      `involvedObject.name=${NAME},reason=CapacityPending`,
    ]);
    expect(events.items.length).toBeGreaterThan(0);
    expect(events.items[0]!.type).toBe("Warning");
    await waitFor("the gauge counts the pending shards", async () => ((await gauge()) === 3 ? true : undefined), {
      timeoutMs: 20_000,
      intervalMs: 500,
    });
  }, 120_000);

  it("cancels the pending shards when demand falls: they are deleted, nothing is left behind, and it clears", async () => {
    await applyJson(cluster, deployment(4));
    const s = await waitForStatus(
      cluster,
      NAME,
      "CapacityPending False",
      (st) => condition(st, "CapacityPending")?.status === "False",
      90_000,
    );
    expect(condition(s, "CapacityPending")?.reason).toBe("NoPendingShards");
    const pods = await waitFor(
      "only the 4 scheduled shards remain",
      async () => {
        const p = await shardPods(cluster, NAME);
        return p.length === 4 && p.every((x) => x.node && !x.terminating) ? p : undefined;
      },
      { timeoutMs: 60_000, intervalMs: 500 },
    );
    expect(new Set(pods.map((p) => p.shardIndex))).toEqual(new Set([0, 1, 2, 3]));
    // No pod of this deployment is left Pending anywhere.
    const all = await getJson<{ items: { spec: { nodeName?: string } }[] }>(cluster, [
      "get",
      "pods",
      "-l",
      `moe.dev/deployment=${NAME}`,
    ]);
    expect(all.items.every((p) => p.spec.nodeName)).toBe(true);
    await waitFor("the gauge is back to 0", async () => ((await gauge()) === 0 ? true : undefined), {
      timeoutMs: 20_000,
      intervalMs: 500,
    });
  }, 120_000);
});
