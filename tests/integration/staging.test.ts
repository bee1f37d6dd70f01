// Weight staging (issue 19 item 1, ADR 0022) on the real control plane: staging Jobs land on the
// nodes a schedule window needs before it opens, the node gets the staged-digest label when its Job
// completes (kwok completes Job pods), new shards prefer staged nodes over cheaper unstaged ones,
// and an operator killed with SIGKILL while a Job runs converges: no duplicate Job, the mark right.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startCluster, type LocalCluster } from "../../src/testing/cluster.ts";
import type { ManagedProcess } from "../../src/testing/process.ts";
import { waitFor } from "../../src/testing/http-probe.ts";
import { startOperatorProcess } from "../support/operator-process.ts";
import { heatConfigMap, skewedHeat, testMoEDeployment } from "../support/moe-fixtures.ts";
import { applyJson, getJson, shardPods, waitForStatus, type MoedStatus } from "../support/kube-helpers.ts";
import { parseMoEDeployment } from "../../src/api/parse.ts";
import { stagedLabelKey, stagingDigest } from "../../src/controllers/moedeployment/staging.ts";

let cluster: LocalCluster;
let operator: ManagedProcess;
const NAME = "staged";
const KEY = stagedLabelKey("default", NAME);
const HOST_DIR = "/var/lib/moe-operator";
let identity = 0;

type StagingStatus = {
  digest: string;
  label: string;
  targetNodes: number;
  bytesPerNode: number;
  stagedBytes: number;
  nodes?: { name: string; phase: string; lastNeededTime?: string }[];
};
type Status = MoedStatus & { staging?: StagingStatus };

/** A window opening 30 minutes from now (UTC), holding `windowShards`: inside the staging lead (1 h), outside the pre-warm lead. */
function deployment(o: { minShards: number; windowShards: number; source: string }) {
  const d = testMoEDeployment(NAME, "default", { minShards: o.minShards, maxShards: 12 });
  const at = new Date(Date.now() + 30 * 60_000);
  const spec = d.spec as Record<string, unknown> & typeof d.spec;
  spec.serving.router.gpusPerReplica = 0; // every GPU is a shard's: where shards go is the operator's choice
  spec.prewarm = {
    ...d.spec.prewarm,
    schedules: [
      {
        name: "peak",
        start: `${at.getUTCMinutes()} ${at.getUTCHours()} * * *`,
        durationMinutes: 60,
        minShards: o.windowShards,
      },
    ],
    staging: {
      enabled: true,
      image: "example.invalid/stager:1",
      source: o.source,
      hostPath: `${HOST_DIR}/weights`,
      maxNodes: 3,
      leadSeconds: 3_600,
      evictAfterSeconds: 86_400,
    },
  } as never;
  return d;
}

function digestOf(d: ReturnType<typeof deployment>): string {
  const parsed = parseMoEDeployment({ ...d, metadata: { ...d.metadata, uid: "x" } });
  if (!parsed.ok) throw new Error("fixture does not parse", { cause: parsed.issues });
  return stagingDigest(parsed.value.spec);
}

const startOperator = () =>
  startOperatorProcess({
    kubeconfigPath: cluster.kubeconfigPath,
    dir: cluster.dir,
    identity: `staging-${++identity}`,
    leaderElect: false,
    extraArgs: [`--pod-allowed-host-paths=${HOST_DIR}`],
  });

interface JobItem {
  metadata: { name: string; uid: string; labels: Record<string, string>; annotations?: Record<string, string> };
  spec: { template: { spec: { nodeName?: string; volumes?: { hostPath?: { path: string } }[] } } };
  status?: { conditions?: { type: string; status: string }[] };
}
const stagingJobs = async () =>
  (
    await getJson<{ items: JobItem[] }>(cluster, [
      "get",
      "jobs",
      "-l",
      `moe.dev/deployment=${NAME},moe.dev/component=weight-stager`,
    ])
  ).items;
const nodeMarks = async () =>
  Object.fromEntries(
    (
      await getJson<{ items: { metadata: { name: string; labels: Record<string, string> } }[] }>(cluster, [
        "get",
        "nodes",
      ])
    ).items
      .map((n) => [n.metadata.name, n.metadata.labels[KEY]] as const)
      .filter(([, v]) => v !== undefined),
  );
const events = async (reason: string) =>
  (
    await getJson<{ items: { message: string; count?: number }[] }>(cluster, [
      "get",
      "events",
      "--field-selector",
      `involvedObject.name=${NAME},reason=${reason}`,
    ])
  ).items;

/** Waits until nothing staged is left: no mark, no Job, no status.staging, no staging finalizer. */
const stagingGone = () =>
  waitFor(
    "no mark, no Job, no status.staging, no staging finalizer",
    async () => {
      const o = await getJson<{ metadata: { finalizers?: string[] }; status?: Status }>(cluster, [
        "get",
        "moedeployment",
        NAME,
      ]);
      const clean =
        Object.keys(await nodeMarks()).length === 0 &&
        (await stagingJobs()).length === 0 &&
        o.status?.staging === undefined &&
        !(o.metadata.finalizers ?? []).includes("moe.dev/weight-staging");
      return clean ? true : undefined;
    },
    { timeoutMs: 90_000, intervalMs: 500 },
  );
beforeAll(async () => {
  const pool = (name: string, price: number) => ({
    pool: name,
    count: 1,
    gpusPerNode: 4,
    gpuProduct: "NVIDIA-H100-80GB-HBM3",
    gpuMemoryMiB: 81559,
    priceUsdPerGpuHour: price,
    nodesPerDomain: 1,
  });
  cluster = await startCluster({ name: "staging", gpuNodes: [pool("cheap", 1), pool("mid", 2), pool("dear", 3)] });
  const crd = await cluster.kubectl(["apply", "--server-side", "-f", "crds/"]);
  expect(crd.code, crd.stderr).toBe(0);
  await cluster.kubectl(["wait", "--for=condition=Established", "crd/moedeployments.moe.dev", "--timeout=30s"]);
  operator = startOperator();
  await applyJson(cluster, heatConfigMap(`${NAME}-heat`, "default", skewedHeat(3_000, [1, 2])));
}, 240_000);

afterAll(async () => {
  await operator?.stop();
  if (operator && process.env.MOE_TEST_VERBOSE) console.log(operator.logTail(200));
  await cluster?.stop();
});

describe("weight staging", () => {
  const first = deployment({ minShards: 4, windowShards: 8, source: "s3://weights/tiny-v1" });

  it("stages the node the window needs before it opens: a pinned Job, then the node's mark, then the Job is gone", async () => {
    await applyJson(cluster, first);
    const digest = digestOf(first);
    // 4 shards fill the cheapest node; the window wants 4 more: the cheapest node with free GPUs is staged.
    const s = await waitForStatus(
      cluster,
      NAME,
      "mid-0 staged",
      (st: Status) => st.staging?.nodes?.some((n) => n.name === "mid-0" && n.phase === "Staged") === true,
      120_000,
    );
    const staging = (s as Status).staging!;
    expect(staging.digest).toBe(digest);
    expect(staging.label).toBe(KEY);
    expect(staging.targetNodes).toBe(1);
    // Every routed expert once, in every MoE layer, at 1 MB each.
    expect(staging.bytesPerNode).toBeGreaterThan(0);
    expect(staging.stagedBytes).toBe(staging.bytesPerNode);
    expect(staging.nodes!.map((n) => n.name)).toEqual(["mid-0"]);
    // Before the window: the shard count is still the floor.
    expect(s.desiredShards).toBe(4);
    expect(await nodeMarks()).toEqual({ "mid-0": digest });
    const started = await events("StagingStarted");
    expect(started.map((e) => e.message)).toEqual([expect.stringMatching(/on node mid-0$/)]);
    expect((await events("NodeStaged")).length).toBe(1);
    await waitFor("the finished Job is deleted", async () => ((await stagingJobs()).length === 0 ? true : undefined), {
      timeoutMs: 30_000,
      intervalMs: 500,
    });
    const pods = await shardPods(cluster, NAME);
    expect(new Set(pods.map((p) => p.node))).toEqual(new Set(["cheap-0"]));
  }, 180_000);

  it("puts new shards on the staged node even when an unstaged node is cheaper", async () => {
    // mid-0 (staged) becomes dearer than dear-0 (not staged): without the preference the new shards go to dear-0.
    const r = await cluster.kubectl(["label", "node", "mid-0", "--overwrite", "moe.dev/price-usd-per-gpu-hour=5.00"]);
    expect(r.code, r.stderr).toBe(0);
    await applyJson(cluster, deployment({ minShards: 8, windowShards: 8, source: "s3://weights/tiny-v1" }));
    const pods = await waitFor(
      "8 shards scheduled",
      async () => {
        const p = (await shardPods(cluster, NAME)).filter((x) => !x.terminating);
        return p.length === 8 && p.every((x) => x.node) ? p : undefined;
      },
      { timeoutMs: 90_000, intervalMs: 500 },
    );
    const byIndex = new Map(pods.map((p) => [p.shardIndex, p.node]));
    for (const i of [4, 5, 6, 7]) expect(byIndex.get(i), `shard ${i}`).toBe("mid-0");
    // The shard pod template also prefers the mark (for the scheduler, below the preferred node).
    const pod = await getJson<{
      spec: { affinity?: { nodeAffinity?: { preferredDuringSchedulingIgnoredDuringExecution?: unknown[] } } };
    }>(cluster, ["get", "pod", pods.find((p) => p.shardIndex === 4)!.name]);
    expect(pod.spec.affinity?.nodeAffinity?.preferredDuringSchedulingIgnoredDuringExecution).toContainEqual({
      weight: 50,
      preference: { matchExpressions: [{ key: KEY, operator: "In", values: [digestOf(first)] }] },
    });
  }, 150_000);

  it("converges after a SIGKILL while a staging Job runs: one Job per node, marks with the new digest", async () => {
    // A new source is a new digest: the staged node is staged again, and the window (12) needs dear-0 too.
    const next = deployment({ minShards: 8, windowShards: 12, source: "s3://weights/tiny-v2" });
    const digest = digestOf(next);
    await applyJson(cluster, next);
    const running = await waitFor(
      "a staging Job for the new digest",
      async () => {
        const jobs = (await stagingJobs()).filter((j) => j.metadata.labels["moe.dev/staging-digest"] === digest);
        return jobs.length > 0 ? jobs : undefined;
      },
      { timeoutMs: 60_000, intervalMs: 100 },
    );
    operator.killNow();
    const killedWhileRunning = running.some((j) => !j.status?.conditions?.some((c) => c.status === "True"));
    // Every Job seen for the new digest, by node: a duplicate would be a second uid for a node.
    const uids = new Map<string, Set<string>>();
    const seeJobs = async () => {
      for (const j of await stagingJobs())
        if (j.metadata.labels["moe.dev/staging-digest"] === digest) {
          const node = j.spec.template.spec.nodeName!;
          uids.set(node, (uids.get(node) ?? new Set()).add(j.metadata.uid));
        }
    };
    for (const j of running) {
      expect(j.spec.template.spec.nodeName).toBe(j.metadata.annotations?.["moe.dev/staging-node"]);
      expect(j.spec.template.spec.volumes?.[0]?.hostPath?.path).toBe(`${HOST_DIR}/weights`);
    }
    await seeJobs();
    await new Promise((r) => setTimeout(r, 3_000)); // the Jobs go on while no operator runs
    await seeJobs();
    operator = startOperator();
    const s = await waitFor(
      "mid-0 and dear-0 staged with the new digest",
      async () => {
        await seeJobs();
        const st = (await getJson<{ status?: Status }>(cluster, ["get", "moedeployment", NAME])).status;
        const done =
          st?.staging?.digest === digest &&
          ["dear-0", "mid-0"].every((n) => st.staging?.nodes?.some((x) => x.name === n && x.phase === "Staged"));
        return done ? st : undefined;
      },
      { timeoutMs: 120_000, intervalMs: 100 },
    );
    expect(killedWhileRunning, "the operator was killed while a staging Job ran").toBe(true);
    expect([...uids.keys()].sort()).toEqual(["dear-0", "mid-0"]);
    for (const [node, set] of uids) expect(set.size, `Jobs on ${node}`).toBe(1);
    expect((s as Status).staging!.stagedBytes).toBe(2 * (s as Status).staging!.bytesPerNode);
    expect(await nodeMarks()).toEqual({ "dear-0": digest, "mid-0": digest });
    await waitFor("no staging Job is left", async () => ((await stagingJobs()).length === 0 ? true : undefined), {
      timeoutMs: 30_000,
      intervalMs: 500,
    });
    // Each node was marked once for the new digest (by the restarted operator).
    const staged = (await events("NodeStaged")).filter((e) => e.message.includes(digest));
    expect(staged.map((e) => e.message.split(":")[0]).sort()).toEqual([
      "node dear-0 holds the weights",
      "node mid-0 holds the weights",
    ]);
  }, 240_000);

  it("turning staging off evicts every staged node: evict Jobs run, then the marks and status.staging go", async () => {
    const off = deployment({ minShards: 8, windowShards: 12, source: "s3://weights/tiny-v2" });
    (off.spec as unknown as { prewarm: { staging: { enabled: boolean } } }).prewarm.staging.enabled = false;
    await applyJson(cluster, off);
    await stagingGone();
    const evicted = (await events("StagingEvicted")).map((e) => e.message).sort();
    expect(evicted).toEqual(["node dear-0 no longer holds the weights", "node mid-0 no longer holds the weights"]);
  }, 120_000);

  it("deleting the deployment (foreground) evicts its staged nodes before it goes", async () => {
    const on = deployment({ minShards: 8, windowShards: 12, source: "s3://weights/tiny-v3" });
    const digest = digestOf(on);
    await applyJson(cluster, on);
    // The window's 4 extra shards fit on dear-0 (mid-0 was evicted above and is full of shards).
    const staged = await waitFor(
      "a node staged, the staging finalizer on",
      async () => {
        const o = await getJson<{ metadata: { finalizers?: string[] } }>(cluster, ["get", "moedeployment", NAME]);
        const marked = Object.entries(await nodeMarks()).filter(([, v]) => v === digest);
        const ready = marked.length > 0 && (o.metadata.finalizers ?? []).includes("moe.dev/weight-staging");
        return ready ? marked.map(([n]) => n) : undefined;
      },
      { timeoutMs: 120_000, intervalMs: 500 },
    );
    const evictions = async () => (await events("StagingEvicting")).reduce((n, e) => n + (e.count ?? 1), 0);
    const evictingBefore = await evictions();
    const del = await cluster.kubectl(["delete", "moedeployment", NAME, "--cascade=foreground", "--wait=false"]);
    expect(del.code, del.stderr).toBe(0);
    await waitFor(
      "the deployment is gone",
      async () => {
        const r = await cluster.kubectl(["get", "moedeployment", NAME, "--ignore-not-found", "-o", "name"]);
        return r.stdout.trim() === "" ? true : undefined;
      },
      { timeoutMs: 120_000, intervalMs: 500 },
    );
    // It went only after the evict Jobs ran: no mark and no Job is left, and the staged node was evicted.
    expect(await nodeMarks()).toEqual({});
    expect(await stagingJobs()).toEqual([]);
    expect(staged).toEqual(["dear-0"]);
    expect((await evictions()) - evictingBefore).toBeGreaterThanOrEqual(staged.length);
  }, 240_000);

  it("switching to mode Recommend evicts what was staged: staging runs only where the operator writes workloads", async () => {
    const on = deployment({ minShards: 8, windowShards: 12, source: "s3://weights/tiny-r" });
    const digest = digestOf(on);
    await applyJson(cluster, on);
    const staged = await waitFor(
      "a node staged",
      async () => {
        const marked = Object.entries(await nodeMarks()).filter(([, v]) => v === digest);
        return marked.length > 0 ? marked.map(([n]) => n).sort() : undefined;
      },
      { timeoutMs: 120_000, intervalMs: 500 },
    );
    const recommend = deployment({ minShards: 8, windowShards: 12, source: "s3://weights/tiny-r" });
    (recommend.spec as unknown as { mode: string }).mode = "Recommend";
    await applyJson(cluster, recommend);
    await stagingGone();
    const evicted = (await events("StagingEvicted")).map((e) => e.message);
    for (const n of staged) expect(evicted).toContain(`node ${n} no longer holds the weights`);
  }, 240_000);
});
