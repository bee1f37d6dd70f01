// The operator under stress: zero writes in steady state (counted in the API
// server's audit log), only the leader writes when two replicas run, and a
// SIGKILL in the middle of a rebalance leaves no orphaned or duplicate shards.
import { readFileSync, statSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startCluster, type LocalCluster } from "../../src/testing/cluster.ts";
import type { ManagedProcess } from "../../src/testing/process.ts";
import { waitFor } from "../../src/testing/http-probe.ts";
import { startOperatorProcess } from "../support/operator-process.ts";
import {
  heatConfigMap,
  skewedHeat,
  testMoEDeployment,
  TEST_EXPERTS,
  TEST_MOE_LAYERS,
} from "../support/moe-fixtures.ts";
import { applyJson, condition, getJson, moedStatus, shardPods, waitForStatus } from "../support/kube-helpers.ts";
import { watchCoverage } from "../support/coverage-watch.ts";

let cluster: LocalCluster;
const running: ManagedProcess[] = [];

interface AuditEvent {
  verb: string;
  user: { username: string };
  objectRef?: { resource?: string; subresource?: string; name?: string; namespace?: string };
  stage: string;
  responseStatus?: { code?: number };
}

function auditOffset(): number {
  return statSync(cluster.auditLogPath!).size;
}

/** Write requests (ResponseComplete) by `user` since `offset`, leases excluded unless asked. */
function writesBy(user: string, offset: number, opts: { includeLeases?: boolean } = {}): AuditEvent[] {
  const text = readFileSync(cluster.auditLogPath!, "utf8").slice(offset);
  return text
    .split("\n")
    .filter(Boolean)
    .map((l) => JSON.parse(l) as AuditEvent)
    .filter(
      (e) =>
        e.stage === "ResponseComplete" &&
        e.user.username === user &&
        ["create", "update", "patch", "delete", "deletecollection"].includes(e.verb),
    )
    .filter((e) => opts.includeLeases || e.objectRef?.resource !== "leases");
}

function operator(identity: string, opts: { leaderElect?: boolean; drainSeconds?: number } = {}): ManagedProcess {
  const p = startOperatorProcess({
    kubeconfigPath: cluster.kubeconfigFor(`moe-operator-${identity}`),
    dir: cluster.dir,
    identity,
    leaderElect: opts.leaderElect,
    drainSeconds: opts.drainSeconds,
  });
  running.push(p);
  return p;
}

async function leaseHolder(): Promise<string | undefined> {
  const r = await cluster.kubectl([
    "get",
    "lease",
    "moe-operator-leader",
    "-n",
    "default",
    "-o",
    "jsonpath={.spec.holderIdentity}",
  ]);
  return r.code === 0 ? r.stdout.trim() || undefined : undefined;
}

beforeAll(async () => {
  cluster = await startCluster({
    name: "resilience",
    audit: true,
    gpuNodes: [
      {
        pool: "h100",
        count: 3,
        gpusPerNode: 8,
        gpuProduct: "NVIDIA-H100-80GB-HBM3",
        gpuMemoryMiB: 81559,
        priceUsdPerGpuHour: 2,
        nodesPerDomain: 1,
      },
    ],
  });
  expect((await cluster.kubectl(["apply", "--server-side", "-f", "crds/"])).code).toBe(0);
  await cluster.kubectl(["wait", "--for=condition=Established", "crd/moedeployments.moe.dev", "--timeout=30s"]);
});

afterAll(async () => {
  for (const p of running) await p.stop();
  await cluster?.stop();
});

describe("operator resilience", () => {
  it("makes zero writes over a minute when nothing changes", async () => {
    const op = operator("steady", { leaderElect: false });
    await applyJson(cluster, heatConfigMap("steady-heat", "default", skewedHeat(3_000, [3, 4])));
    await applyJson(cluster, testMoEDeployment("steady", "default"));
    await waitForStatus(
      cluster,
      "steady",
      "Ready and stable",
      (s) => condition(s, "Ready")?.status === "True" && condition(s, "Progressing")?.status === "False",
    );
    // Let the first rebalance interval pass (it must decide "unchanged" without writing).
    await new Promise((r) => setTimeout(r, 35_000));
    const offset = auditOffset();
    const before = await moedStatus(cluster, "steady");
    await new Promise((r) => setTimeout(r, 60_000));
    const writes = writesBy("moe-operator-steady", offset, { includeLeases: true });
    expect(
      writes.map((w) => `${w.verb} ${w.objectRef?.resource}/${w.objectRef?.subresource ?? ""} ${w.objectRef?.name}`),
    ).toEqual([]);
    // It was alive and reconciling all along (its reads keep going), and the world is unchanged.
    expect(op.exitCode).toBeUndefined();
    const after = await moedStatus(cluster, "steady");
    expect(after).toEqual(before);
    await op.stop();
    await cluster.kubectl(["delete", "moed", "steady", "--wait=true"]);
  }, 240_000);

  it("lets only the leader write when two replicas run, and fails over when the leader dies", async () => {
    const a = operator("a");
    const b = operator("b");
    await applyJson(cluster, heatConfigMap("duo-heat", "default", skewedHeat(3_000, [1, 2])));
    const offset = auditOffset();
    await applyJson(cluster, testMoEDeployment("duo", "default"));
    await waitForStatus(cluster, "duo", "Ready", (s) => condition(s, "Ready")?.status === "True");
    const holder = await leaseHolder();
    expect(["a", "b"]).toContain(holder);
    const [leader, standby] = holder === "a" ? [a, b] : [b, a];
    const standbyName = holder === "a" ? "b" : "a";
    const leaderName = holder!;
    expect(writesBy(`moe-operator-${leaderName}`, offset).length).toBeGreaterThan(4);
    expect(writesBy(`moe-operator-${standbyName}`, offset)).toEqual([]);

    // The leader dies without a goodbye; the standby takes the lease and carries on.
    leader.child.kill("SIGKILL");
    await leader.exited;
    await waitFor("standby holds the lease", async () => ((await leaseHolder()) === standbyName ? true : undefined), {
      timeoutMs: 30_000,
      intervalMs: 500,
    });
    const offset2 = auditOffset();
    await applyJson(cluster, testMoEDeployment("duo", "default", { minShards: 5 }));
    await waitForStatus(
      cluster,
      "duo",
      "5 shards Ready under the new leader",
      (s) => s.desiredShards === 5 && s.currentShards === 5 && condition(s, "Ready")?.status === "True",
    );
    expect(writesBy(`moe-operator-${standbyName}`, offset2).length).toBeGreaterThan(0);
    await standby.stop();
    await cluster.kubectl(["delete", "moed", "duo", "--wait=true"]);
  }, 240_000);

  it("converges with no orphaned or duplicate shards after a SIGKILL in the middle of a rebalance", async () => {
    const slow = testMoEDeployment("kill", "default", {
      rebalanceIntervalSeconds: 30,
      maxMovedPercent: 40,
    }) as ReturnType<typeof testMoEDeployment> & {
      spec: { serving: { expertShards: { template: { metadata?: unknown } } } };
    };
    // Shard pods take 6 s to become Ready, so the rollout is slow enough to interrupt.
    slow.spec.serving.expertShards.template.metadata = { annotations: { "pod-ready.stage.kwok.x-k8s.io/delay": "6s" } };
    await applyJson(cluster, heatConfigMap("kill-heat", "default", skewedHeat(3_000, [0, 1])));
    await applyJson(cluster, slow);
    let op = operator("killme", { drainSeconds: 3 });
    await waitForStatus(
      cluster,
      "kill",
      "Ready",
      (s) => condition(s, "Ready")?.status === "True" && condition(s, "Progressing")?.status === "False",
      120_000,
    );
    const coverage = await watchCoverage(cluster.kubeConfig, "default", "kill", TEST_MOE_LAYERS, TEST_EXPERTS);
    const v1 = (await moedStatus(cluster, "kill")).placement!.version;

    await applyJson(cluster, heatConfigMap("kill-heat", "default", skewedHeat(3_000, [10, 13, 15], 10)));
    await waitFor(
      "rebalance in flight",
      async () => {
        const pods = await shardPods(cluster, "kill");
        return pods.length > 4 ? pods : undefined;
      },
      { timeoutMs: 90_000, intervalMs: 200 },
    );
    op.child.kill("SIGKILL");
    await op.exited;
    const midway = await shardPods(cluster, "kill");
    expect(midway.length).toBeGreaterThan(4); // new and old pods side by side

    op = operator("restarted", { drainSeconds: 3 });
    const final = await waitForStatus(
      cluster,
      "kill",
      "converged after restart",
      (s) =>
        condition(s, "Ready")?.status === "True" &&
        condition(s, "Progressing")?.status === "False" &&
        (s.placement?.version ?? 0) > v1,
      180_000,
    );
    await waitFor(
      "drained pods deleted",
      async () => {
        const pods = await shardPods(cluster, "kill");
        return pods.length === final.desiredShards && pods.every((p) => !p.terminating) ? pods : undefined;
      },
      { timeoutMs: 60_000, intervalMs: 500 },
    );

    const pods = await shardPods(cluster, "kill");
    const cm = await getJson<{ data: Record<string, string> }>(cluster, ["get", "configmap", "kill-placement"]);
    const wanted = (JSON.parse(cm.data["shards.json"]!) as { shardIndex: number; setHash: string }[])
      .map((s) => `${s.shardIndex}/${s.setHash}`)
      .sort();
    expect(pods.map((p) => `${p.shardIndex}/${p.setHash}`).sort()).toEqual(wanted); // no orphans, no duplicates
    expect(new Set(pods.map((p) => p.shardIndex)).size).toBe(pods.length);
    expect(pods.every((p) => p.owner === "kill" && p.ready && !p.draining)).toBe(true);
    expect(coverage.violations).toEqual([]);
    coverage.stop();
    expect(op.exitCode).toBeUndefined();
  }, 360_000);
});
