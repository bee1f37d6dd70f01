// State and rollouts that survive people and faults (issue 21): the placement
// comes back from the pods when its ConfigMap is deleted or corrupted, a router
// scaled to 0 by hand is restored, a drain whose cover crashes is cancelled,
// Pending shards are reported as missing GPUs, and a pod restoring a replica no
// Ready pod holds wins a freed GPU over redundant shards (priority class).
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startCluster, type LocalCluster } from "../../src/testing/cluster.ts";
import type { ManagedProcess } from "../../src/testing/process.ts";
import { waitFor } from "../../src/testing/http-probe.ts";
import { readFileSync } from "node:fs";
import { startOperatorProcess } from "../support/operator-process.ts";
import {
  heatConfigMap,
  skewedHeat,
  testMoEDeployment,
  TEST_EXPERTS,
  TEST_MOE_LAYERS,
} from "../support/moe-fixtures.ts";
import { applyJson, condition, getJson, moedStatus, waitForStatus } from "../support/kube-helpers.ts";
import { watchCoverage } from "../support/coverage-watch.ts";

let cluster: LocalCluster;
let operator: ManagedProcess;
const NAME = "state";
const PRIORITY_CLASS = "moe-sole-replica";
/**
 * The drain deadline of `state`: its spec.serving.expertShards.drain asks for 500 tokens at the static
 * 40 ms p99 = 20 s. Long enough to act during a drain, and to tell a drain ended by the pod from one
 * ended by the deadline. The operator's own --drain-seconds (the fallback) and the drain's maxSeconds
 * (the termination grace period) are both 60 s, so a deletion near 20 s can only come from the spec.
 */
const DRAIN_SECONDS = 20;
const DRAIN = { maxOutputTokens: 500, minSeconds: 5, maxSeconds: 60 };
const FALLBACK_DRAIN_SECONDS = 60;

interface PodJson {
  metadata: {
    name: string;
    uid: string;
    labels: Record<string, string>;
    annotations?: Record<string, string>;
    deletionTimestamp?: string;
  };
  spec: { nodeName?: string; priorityClassName?: string; terminationGracePeriodSeconds?: number };
  status: { phase?: string; conditions?: { type: string; status: string }[] };
}

async function podsOf(name: string): Promise<PodJson[]> {
  return (
    await getJson<{ items: PodJson[] }>(cluster, [
      "get",
      "pods",
      "-l",
      `moe.dev/deployment=${name},moe.dev/component=expert-shard`,
    ])
  ).items;
}

const isReady = (p: PodJson) =>
  p.status.phase === "Running" && !!p.status.conditions?.some((c) => c.type === "Ready" && c.status === "True");
const expertsOf = (p: PodJson) => JSON.parse(p.metadata.annotations?.["moe.dev/experts"] ?? "[]") as number[][];

async function events(name: string, reason: string): Promise<string[]> {
  const list = await getJson<{ items: { reason: string; message: string }[] }>(cluster, [
    "get",
    "events",
    "--field-selector",
    `involvedObject.name=${name},reason=${reason}`,
  ]);
  return list.items.map((e) => e.message);
}

/** A deployment whose shard pods become Ready 15 s after they start (slow enough to act during a drain). */
function slowDeployment(name: string, over: Parameters<typeof testMoEDeployment>[2] = {}) {
  const d = testMoEDeployment(name, "default", over) as ReturnType<typeof testMoEDeployment> & {
    spec: { serving: { expertShards: { template: { metadata?: unknown }; drain?: typeof DRAIN } } };
  };
  d.spec.serving.expertShards.template.metadata = { annotations: { "pod-ready.stage.kwok.x-k8s.io/delay": "15s" } };
  d.spec.serving.expertShards.drain = DRAIN;
  return d;
}

beforeAll(async () => {
  cluster = await startCluster({
    name: "state",
    gpuNodes: [
      {
        pool: "h100",
        count: 2,
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
  await applyJson(cluster, {
    apiVersion: "scheduling.k8s.io/v1",
    kind: "PriorityClass",
    metadata: { name: PRIORITY_CLASS },
    value: 100_000,
    description: "shards restoring a replica no Ready pod holds",
  });
  operator = startOperatorProcess({
    kubeconfigPath: cluster.kubeconfigPath,
    dir: cluster.dir,
    identity: "state",
    drainSeconds: FALLBACK_DRAIN_SECONDS,
    extraArgs: [`--sole-replica-priority-class=${PRIORITY_CLASS}`],
  });
  await applyJson(cluster, heatConfigMap(`${NAME}-heat`, "default", skewedHeat(3_000, [1, 2])));
  await applyJson(cluster, slowDeployment(NAME));
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

describe("recoverable state", () => {
  it("rebuilds a deleted or corrupted placement ConfigMap from the pods: same layout, higher version, no pod replaced", async () => {
    const before = await moedStatus(cluster, NAME);
    const v0 = before.placement!.version;
    const uids = (await podsOf(NAME)).map((p) => `${p.metadata.name}/${p.metadata.uid}`).sort();
    const cm0 = await getJson<{ data: Record<string, string> }>(cluster, ["get", "configmap", `${NAME}-placement`]);
    const sets0 = JSON.parse(cm0.data["shards.json"]!) as unknown;

    expect((await cluster.kubectl(["delete", "configmap", `${NAME}-placement`])).code).toBe(0);
    const cm1 = await waitFor(
      "ConfigMap restored",
      async () => {
        const r = await cluster.kubectl(["get", "configmap", `${NAME}-placement`, "-o", "json"]);
        return r.code === 0 ? (JSON.parse(r.stdout) as { data: Record<string, string> }) : undefined;
      },
      { timeoutMs: 30_000, intervalMs: 300 },
    );
    expect(Number(cm1.data.version)).toBeGreaterThan(v0);
    expect(JSON.parse(cm1.data["shards.json"]!)).toEqual(sets0);
    const s1 = await waitForStatus(
      cluster,
      NAME,
      "status at the restored version",
      (s) => s.placement?.version === Number(cm1.data.version),
    );
    expect(s1.placement!.version).toBeGreaterThan(v0);

    // Corrupted: the placement no longer matches its hash.
    const bad = JSON.parse(cm1.data["placement.json"]!) as { layers: number[][][] };
    bad.layers[0]![0]![0] = (bad.layers[0]![0]![0]! + 1) % TEST_EXPERTS;
    expect(
      (
        await cluster.kubectl([
          "patch",
          "configmap",
          `${NAME}-placement`,
          "--type=merge",
          "-p",
          JSON.stringify({ data: { "placement.json": JSON.stringify(bad) } }),
        ])
      ).code,
    ).toBe(0);
    const cm2 = await waitFor(
      "ConfigMap repaired",
      async () => {
        const cm = await getJson<{ data: Record<string, string> }>(cluster, ["get", "configmap", `${NAME}-placement`]);
        return Number(cm.data.version) > Number(cm1.data.version) ? cm : undefined;
      },
      { timeoutMs: 30_000, intervalMs: 300 },
    );
    expect(JSON.parse(cm2.data["shards.json"]!)).toEqual(sets0);

    // A few reconcile intervals later: the same pods, and the version only went up.
    await new Promise((r) => setTimeout(r, 6_000));
    expect((await podsOf(NAME)).map((p) => `${p.metadata.name}/${p.metadata.uid}`).sort()).toEqual(uids);
    const s2 = await moedStatus(cluster, NAME);
    expect(s2.placement!.version).toBe(Number(cm2.data.version));
    expect(condition(s2, "Ready")?.status).toBe("True");
    expect((await events(NAME, "PlacementRecovered")).length).toBeGreaterThanOrEqual(2);
  }, 120_000);

  it("restores a router Deployment scaled to 0 by hand within a reconcile interval, with an event", async () => {
    expect((await cluster.kubectl(["scale", "deployment", `${NAME}-router`, "--replicas=0"])).code).toBe(0);
    await waitFor(
      "router replicas restored",
      async () => {
        const d = await getJson<{ spec: { replicas: number } }>(cluster, ["get", "deployment", `${NAME}-router`]);
        return d.spec.replicas === 1 ? d : undefined;
      },
      { timeoutMs: 10_000, intervalMs: 200 },
    );
    const msgs = await waitFor(
      "DriftCorrected event",
      async () => {
        const m = await events(NAME, "DriftCorrected");
        return m.length > 0 ? m : undefined;
      },
      { timeoutMs: 10_000, intervalMs: 300 },
    );
    expect(msgs.join("\n")).toMatch(/router Deployment state-router was changed by hand \(replicas 0, want 1\)/);
    await waitForStatus(cluster, NAME, "Ready again", (s) => condition(s, "Ready")?.status === "True", 60_000);
  }, 90_000);
});

/** What the cluster and the operator's log say about two pods, for a failure message. */
function diagnosis(...names: string[]): string {
  const log = readFileSync(operator.logFile, "utf8")
    .split("\n")
    .filter((l) => names.some((n) => l.includes(n)) || l.includes('"rollout"'))
    .slice(-40);
  return [`operator log lines naming ${names.join(", ")}:`, ...log].join("\n");
}

describe("drain and coverage", () => {
  it("cancels a drain when the pod covering its experts crashes, and never leaves a pair uncovered", async () => {
    const coverage = await watchCoverage(cluster.kubeConfig, "default", NAME, TEST_MOE_LAYERS, TEST_EXPERTS);
    expect(coverage.established).toBe(true);
    await applyJson(cluster, heatConfigMap(`${NAME}-heat`, "default", skewedHeat(3_000, [10, 13, 15], 10)));
    // A draining pod, and a Ready non-draining pod that is the only other pod holding one of its
    // experts. Only other pod, Ready or not, draining or not: a new pod that holds the expert and
    // turns Ready right after the crash is a cover again (the operator rightly drains again within
    // milliseconds, too fast to be seen here), and of two draining holders only one is kept.
    const { draining, cover } = await waitFor(
      "a drain with a single cover",
      async () => {
        const pods = (await podsOf(NAME)).filter((p) => !p.metadata.deletionTimestamp);
        // A drain that started in the last 6 s: its 20 s deadline cannot end it before the crash is seen
        // (an older drain may reach its deadline while the cover's deletion is still on its way).
        const recent = (p: PodJson) => {
          const since = p.metadata.annotations?.["moe.dev/draining-since"];
          return since !== undefined && Date.now() - Date.parse(since) < 6_000;
        };
        const stays = (p: PodJson) => isReady(p) && p.metadata.annotations?.["moe.dev/draining-since"] === undefined;
        for (const d of pods.filter((p) => isReady(p) && recent(p))) {
          const ex = expertsOf(d);
          for (let l = 0; l < ex.length; l++) {
            for (const e of ex[l]!) {
              const others = pods.filter((p) => p !== d && expertsOf(p)[l]?.includes(e));
              if (others.length === 1 && stays(others[0]!))
                return { draining: d.metadata.name, cover: others[0]!.metadata.name };
            }
          }
        }
        return undefined;
      },
      { timeoutMs: 120_000, intervalMs: 200 },
    );
    expect((await cluster.kubectl(["delete", "pod", cover, "--grace-period=0", "--force", "--wait=false"])).code).toBe(
      0,
    );
    // The drain is cancelled (the pod stays, routers may use it again) while the cover comes back (15 s).
    await waitFor(
      `drain of ${draining} cancelled`,
      async () => {
        const p = (await podsOf(NAME)).find((x) => x.metadata.name === draining);
        return p && p.metadata.annotations?.["moe.dev/draining-since"] === undefined ? p : undefined;
      },
      { timeoutMs: 10_000, intervalMs: 200, onTimeout: () => diagnosis(draining, cover) },
    );
    await waitForStatus(
      cluster,
      NAME,
      "rollout converged",
      (s) => condition(s, "Ready")?.status === "True" && condition(s, "Progressing")?.status === "False",
      180_000,
    );
    coverage.stop();
    expect(coverage.violations).toEqual([]);
  }, 300_000);

  it("deletes a draining shard when it reports its requests done (not Ready), and one still serving only at the deadline", async () => {
    // Shard pods get at least the longest drain as their termination grace period (the template says 1 s).
    expect((await podsOf(NAME)).every((p) => p.spec.terminationGracePeriodSeconds === DRAIN.maxSeconds)).toBe(true);
    await applyJson(cluster, heatConfigMap(`${NAME}-heat`, "default", skewedHeat(3_000, [4, 7, 11], 10)));
    const drainingNow = async () =>
      (await podsOf(NAME)).filter(
        (p) => isReady(p) && !p.metadata.deletionTimestamp && p.metadata.annotations?.["moe.dev/draining-since"],
      );
    const draining = await waitFor(
      "two Ready draining pods",
      async () => {
        const d = await drainingNow();
        return d.length >= 2 ? d : undefined;
      },
      { timeoutMs: 120_000, intervalMs: 200 },
    );
    const [done, serving] = draining as [PodJson, PodJson];
    const servingSinceMs = Date.parse(serving.metadata.annotations!["moe.dev/draining-since"]!);
    // The engine of `done` has no request left: it fails its readiness probe.
    const patch = { status: { conditions: [{ type: "Ready", status: "False" }] } };
    const r = await cluster.kubectl([
      "patch",
      "pod",
      done.metadata.name,
      "--subresource=status",
      "-p",
      JSON.stringify(patch),
    ]);
    expect(r.code, r.stderr).toBe(0);
    await waitFor(
      `${done.metadata.name} deleted before its ${DRAIN_SECONDS} s deadline`,
      async () => {
        const p = (await podsOf(NAME)).find((x) => x.metadata.name === done.metadata.name);
        return !p || p.metadata.deletionTimestamp ? true : undefined;
      },
      { timeoutMs: (DRAIN_SECONDS * 1000) / 2, intervalMs: 200 },
    );
    // `serving` stays Ready (requests in flight): it is there until its deadline, then goes.
    while (Date.now() < servingSinceMs + (DRAIN_SECONDS - 3) * 1000) {
      const p = (await podsOf(NAME)).find((x) => x.metadata.name === serving.metadata.name);
      expect(p, `${serving.metadata.name} still there before its deadline`).toBeDefined();
      expect(p!.metadata.deletionTimestamp).toBeUndefined();
      await new Promise((res) => setTimeout(res, 500));
    }
    await waitFor(
      `${serving.metadata.name} deleted at its deadline`,
      async () => {
        const p = (await podsOf(NAME)).find((x) => x.metadata.name === serving.metadata.name);
        return !p || p.metadata.deletionTimestamp ? true : undefined;
      },
      // Well before the 60 s fallback: the deadline is the spec's 20 s.
      { timeoutMs: (DRAIN_SECONDS / 2 + 5) * 1000, intervalMs: 300 },
    );
    await waitForStatus(
      cluster,
      NAME,
      "Ready and stable again",
      (s) => condition(s, "Ready")?.status === "True" && condition(s, "Progressing")?.status === "False",
      180_000,
    );
  }, 300_000);
});

describe("pending capacity", () => {
  it("reports Pending shards as missing GPUs (Degraded=InsufficientGpuCapacity with the count, SLOMet not True)", async () => {
    // 12 GPUs: `state` holds 5 (4 shards + router); `greedy` wants 9 shards + router.
    await applyJson(cluster, heatConfigMap("greedy-heat", "default", skewedHeat(3_000, [3, 4])));
    await applyJson(cluster, testMoEDeployment("greedy", "default", { minShards: 4 }));
    await waitForStatus(
      cluster,
      "greedy",
      "greedy Ready",
      (s) => condition(s, "Ready")?.status === "True" && condition(s, "Progressing")?.status === "False",
      120_000,
    );
    await applyJson(cluster, testMoEDeployment("greedy", "default", { minShards: 9 }));
    const s = await waitForStatus(
      cluster,
      "greedy",
      "InsufficientGpuCapacity",
      (st) => condition(st, "Degraded")?.reason === "InsufficientGpuCapacity",
      60_000,
    );
    const pending = (await podsOf("greedy")).filter((p) => !p.spec.nodeName).length;
    expect(pending).toBeGreaterThan(0);
    expect(condition(s, "Degraded")?.message).toMatch(/^\d+ nvidia\.com\/gpu/);
    expect(Number(/^(\d+)/.exec(condition(s, "Degraded")!.message)![1])).toBeGreaterThanOrEqual(pending);
    expect(condition(s, "SLOMet")?.status).not.toBe("True");
    // The scale-up shards hold redundant replicas: no priority class.
    expect(
      (await podsOf("greedy")).filter((p) => !p.spec.nodeName).every((p) => p.spec.priorityClassName === undefined),
    ).toBe(true);
  }, 240_000);

  it("gives a hand-deleted sole-replica pod its GPU back before redundant Pending shards", async () => {
    await waitForStatus(
      cluster,
      NAME,
      "state stable",
      (s) => condition(s, "Ready")?.status === "True" && condition(s, "Progressing")?.status === "False",
      180_000,
    );
    const statePods = (await podsOf(NAME)).filter((p) => isReady(p) && !p.metadata.deletionTimestamp);
    // A pod holding a (layer, expert) no other Ready pod holds.
    const victim = statePods.find((p) =>
      expertsOf(p).some((l, li) => l.some((e) => !statePods.some((o) => o !== p && expertsOf(o)[li]?.includes(e)))),
    );
    expect(victim).toBeDefined();
    expect(
      (await cluster.kubectl(["delete", "pod", victim!.metadata.name, "--grace-period=0", "--force", "--wait=true"]))
        .code,
    ).toBe(0);
    const back = await waitFor(
      "the sole-replica shard is back on a GPU",
      async () => {
        // The same shard index and expert set: the same name, a new pod.
        const p = (await podsOf(NAME)).find(
          (x) =>
            x.metadata.name === victim!.metadata.name &&
            x.metadata.uid !== victim!.metadata.uid &&
            !x.metadata.deletionTimestamp,
        );
        return p?.spec.nodeName ? p : undefined;
      },
      { timeoutMs: 60_000, intervalMs: 300 },
    );
    expect(back.spec.priorityClassName).toBe(PRIORITY_CLASS);
    await waitForStatus(cluster, NAME, "state Ready again", (s) => condition(s, "Ready")?.status === "True", 90_000);
  }, 180_000);
});
