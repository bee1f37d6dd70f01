// Weight staging, the controller side (src/controllers/moedeployment/staging.ts): the node label key,
// the digest, the Job as rendered and read back, the staged flag on node views, and the shard pod's
// preference for staged nodes.
import { describe, expect, it } from "vitest";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parse } from "yaml";
import type { V1Job } from "@kubernetes/client-node";
import { parseMoEDeployment, type MoEDeployment } from "../../src/api/index.ts";
import {
  readStagingJob,
  renderStagingJob,
  stagedBytesPerNode,
  stagedLabelKey,
  stagingDigest,
  stagingJobName,
  retiringStaging,
  stagingRuns,
  syncStaging,
  stagingJobsByNode,
  stagingShardsNeeded,
  StagingLabel,
  withStagedNodes,
} from "../../src/controllers/moedeployment/staging.ts";
import {
  finalizeStaging,
  RETIRE_DEADLINE_MS,
  wantsStagingFinalizer,
} from "../../src/controllers/moedeployment/staging-finalizer.ts";
import type { CachedNode } from "../../src/controllers/moedeployment/cached.ts";
import { renderShardPod } from "../../src/controllers/moedeployment/codecs/shard-pod.ts";
import type { Decision } from "../../src/domain/decide.ts";

const root = fileURLToPath(new URL("../..", import.meta.url));

function sample(staging: Record<string, unknown> | undefined, schedules?: unknown[]): MoEDeployment {
  const m = parse(readFileSync(join(root, "deploy/samples/deepseek-v3.yaml"), "utf8")) as {
    metadata: Record<string, unknown>;
    spec: { prewarm?: Record<string, unknown> };
  };
  m.metadata = { ...m.metadata, name: "ds", namespace: "serving", uid: "uid-1" };
  m.spec.prewarm = { ...m.spec.prewarm, ...(staging ? { staging } : {}), ...(schedules ? { schedules } : {}) };
  const r = parseMoEDeployment(m);
  if (!r.ok) throw new Error("sample does not parse", { cause: r.issues });
  return r.value;
}
const ON = { enabled: true, image: "stager:1", source: "s3://w/ds-v3", hostPath: "/mnt/cache" };

describe("staging marks and digests", () => {
  it("labels nodes staged.moe.dev/<namespace>.<name>, cut with a hash past 63 characters", () => {
    expect(stagedLabelKey("serving", "ds")).toBe("staged.moe.dev/serving.ds");
    const long = stagedLabelKey("serving", "x".repeat(80));
    expect(long.slice("staged.moe.dev/".length).length).toBeLessThanOrEqual(63);
    expect(long).toMatch(/^staged\.moe\.dev\/serving\.x+-[0-9a-f]{10}$/);
    expect(stagedLabelKey("serving", "x".repeat(80))).not.toBe(stagedLabelKey("serving", `${"x".repeat(79)}y`));
  });

  it("changes the digest with the source and the model, and not with anything else", () => {
    const a = sample(ON);
    expect(stagingDigest(a.spec)).toMatch(/^[0-9a-f]{16}$/);
    expect(stagingDigest(sample({ ...ON, maxNodes: 2 }).spec)).toBe(stagingDigest(a.spec));
    expect(stagingDigest(sample({ ...ON, source: "s3://w/ds-v4" }).spec)).not.toBe(stagingDigest(a.spec));
  });

  it("counts every routed expert of every MoE layer once per node", () => {
    const d = sample(ON);
    const m = d.spec.model;
    const perExpert = stagedBytesPerNode(m) / (m.routedExperts * (m.layers - m.denseLayers));
    expect(perExpert).toBeGreaterThan(0);
    expect(Number.isInteger(perExpert)).toBe(true);
  });
});

describe("staging Jobs", () => {
  it("pins the Job to its node, owns it by the deployment, mounts the hostPath and reads back", () => {
    const d = sample(ON);
    const job = renderStagingJob(d, "gpu-7", "stage", "abc");
    expect(job.metadata?.name).toBe(stagingJobName("ds", "stage", "gpu-7"));
    expect(job.metadata?.ownerReferences?.[0]).toMatchObject({ uid: "uid-1", controller: true });
    const pod = job.spec!.template.spec!;
    expect(pod.nodeName).toBe("gpu-7");
    expect(pod.volumes?.[0]?.hostPath?.path).toBe("/mnt/cache");
    expect(pod.containers[0]!.env).toContainEqual({ name: "MOE_STAGING_SOURCE", value: "s3://w/ds-v3" });
    expect(readStagingJob(job)).toEqual({
      name: job.metadata!.name,
      node: "gpu-7",
      action: "stage",
      digest: "abc",
      state: "running",
    });
    const failed: V1Job = {
      ...job,
      status: { conditions: [{ type: "Failed", status: "True", reason: "BackoffLimitExceeded", message: "x" }] },
    };
    expect(readStagingJob(failed)).toMatchObject({ state: "failed", message: "BackoffLimitExceeded: x" });
    const done: V1Job = { ...job, status: { conditions: [{ type: "Complete", status: "True" }] } };
    expect(readStagingJob(done)?.state).toBe("succeeded");
  });

  it("names Jobs apart for deployments whose names share the first 40 characters, and bounds their run", () => {
    const long = "a".repeat(40);
    expect(stagingJobName(`${long}-one`, "stage", "gpu-7")).not.toBe(stagingJobName(`${long}-two`, "stage", "gpu-7"));
    expect(stagingJobName(`${long}-one`, "stage", "gpu-7").length).toBeLessThanOrEqual(63);
    expect(renderStagingJob(sample(ON), "gpu-7", "stage", "abc").spec?.activeDeadlineSeconds).toBeGreaterThan(0);
  });

  it("deletes a Job whose node is gone (the Job controller would retry it forever)", async () => {
    const d = sample(ON);
    const deleted: string[] = [];
    const kube = {
      delete: (ref: { name: string }) => {
        deleted.push(ref.name);
        return Promise.resolve();
      },
      create: () => Promise.resolve(),
      mergePatch: () => Promise.resolve(),
    } as unknown as Parameters<typeof syncStaging>[0];
    const job = renderStagingJob(d, "gone-node", "stage", stagingDigest(d.spec));
    const decision = { desiredShards: 0, shardNodes: [], capacity: undefined } as unknown as Decision;
    await syncStaging(kube, d, { nodes: [], views: [], shardPods: [], jobs: [job], decision, nowMs: 0 });
    expect(deleted).toEqual([job.metadata!.name]);
  });

  it("finds only this deployment's Jobs", () => {
    const d = sample(ON);
    const other = { ...renderStagingJob(d, "gpu-1", "stage", "abc") };
    other.metadata = {
      ...other.metadata,
      labels: { ...other.metadata!.labels, [StagingLabel.ownerUid]: "u2" },
      ownerReferences: [{ ...other.metadata!.ownerReferences![0]!, uid: "u2" }],
    };
    const jobs = stagingJobsByNode(d, [renderStagingJob(d, "gpu-7", "stage", "abc"), other]);
    expect([...jobs.keys()]).toEqual(["gpu-7"]);
  });
});

describe("staged nodes in the decision and the shard pods", () => {
  it("flags node views whose mark carries the current digest", () => {
    const d = sample(ON);
    const key = stagedLabelKey("serving", "ds");
    const node = (name: string, digest?: string) => ({ metadata: { name, labels: digest ? { [key]: digest } : {} } });
    const views = [
      { name: "a", domain: "a", freeGpus: 1 },
      { name: "b", domain: "b", freeGpus: 1 },
      { name: "c", domain: "c", freeGpus: 1 },
    ];
    const out = withStagedNodes(d, views, [node("a", stagingDigest(d.spec)), node("b", "stale"), node("c")]);
    expect(out.map((v) => v.staged ?? false)).toEqual([true, false, false]);
    expect(withStagedNodes(sample(undefined), views, [node("a", "x")])).toBe(views);
  });

  it("adds a weight-50 preference for the mark to shard pods only when staging is on", () => {
    const input = { shardIndex: 0, experts: [[0]], setHash: "h", placementVersion: 1, placementHash: "p" };
    const d = sample(ON);
    const terms = renderShardPod(d, input).spec?.affinity?.nodeAffinity
      ?.preferredDuringSchedulingIgnoredDuringExecution;
    expect(terms).toContainEqual({
      weight: 50,
      preference: {
        matchExpressions: [{ key: "staged.moe.dev/serving.ds", operator: "In", values: [stagingDigest(d.spec)] }],
      },
    });
    const off = renderShardPod(sample(undefined), input).spec?.affinity?.nodeAffinity;
    expect(JSON.stringify(off ?? {})).not.toContain("staged.moe.dev");
  });

  it("stages for the most of the decision, its forecast, and windows opening within leadSeconds", () => {
    const nowMs = Date.parse("2026-12-05T08:00:00Z");
    const decision = (desiredShards: number, forecastGpus = 0) =>
      ({ desiredShards, capacity: { signals: { forecastGpus, scheduleGpus: 0 } } }) as unknown as Decision;
    const window = (start: string) => [{ name: "peak", start, durationMinutes: 60, minShards: 40 }];
    expect(stagingShardsNeeded(sample(ON, window("30 8 * * *")), decision(32), nowMs)).toBe(40);
    // Opens in 2 h, past the default lead of 1 h.
    expect(stagingShardsNeeded(sample(ON, window("0 10 * * *")), decision(32), nowMs)).toBe(32);
    expect(stagingShardsNeeded(sample({ ...ON, leadSeconds: 7_200 }, window("0 10 * * *")), decision(32), nowMs)).toBe(
      40,
    );
    expect(stagingShardsNeeded(sample(ON, []), decision(32, 36), nowMs)).toBe(36);
  });
});

/** A KubeWriter that records what was written. */
function recorder() {
  const writes: string[] = [];
  const kube = {
    delete: (ref: { kind: string; name: string }) => {
      writes.push(`delete ${ref.kind} ${ref.name}`);
      return Promise.resolve();
    },
    create: (o: V1Job) => {
      writes.push(`create ${o.metadata!.labels![StagingLabel.action]} ${o.spec!.template.spec!.nodeName}`);
      return Promise.resolve();
    },
    mergePatch: (ref: { kind: string; name: string }, body: { metadata: { labels: Record<string, unknown> } }) => {
      writes.push(`patch ${ref.kind} ${ref.name} ${JSON.stringify(body.metadata.labels)}`);
      return Promise.resolve();
    },
  } as unknown as Parameters<typeof syncStaging>[0];
  return { kube, writes };
}
const markedNode = (d: MoEDeployment, name: string): CachedNode =>
  ({
    metadata: { name, labels: { [stagedLabelKey("serving", "ds")]: stagingDigest(d.spec) } },
  }) as unknown as CachedNode;
const deleting = (d: MoEDeployment): MoEDeployment => ({
  ...d,
  metadata: { ...d.metadata, deletionTimestamp: "2026-12-05T00:00:00Z" },
});

describe("retiring staging: turned off, or the deployment deleted", () => {
  it("evicts a staged node once staging is turned off, then removes the mark and the status", async () => {
    const on = sample(ON);
    const off = sample({ ...ON, enabled: false });
    const { kube, writes } = recorder();
    const r = await syncStaging(kube, off, {
      nodes: [markedNode(on, "gpu-1")],
      views: [],
      shardPods: [],
      jobs: [],
      nowMs: 0,
    });
    expect(writes).toEqual(["create evict gpu-1"]);
    expect(r?.status?.nodes).toEqual([{ name: "gpu-1", phase: "Evicting", lastNeededTime: new Date(0).toISOString() }]);
    expect(r?.retired).toBe(false);
    // The evict Job succeeded: the mark goes, the Job is deleted, status.staging goes.
    const evict = renderStagingJob(off, "gpu-1", "evict", stagingDigest(off.spec));
    evict.status = { conditions: [{ type: "Complete", status: "True" }] };
    const after = { ...off, status: { staging: r!.status } } as MoEDeployment;
    const r2 = await syncStaging(kube, after, {
      nodes: [markedNode(on, "gpu-1")],
      views: [],
      shardPods: [],
      jobs: [evict],
      nowMs: 0,
    });
    expect(writes.slice(1)).toEqual([
      `patch Node gpu-1 {"${stagedLabelKey("serving", "ds")}":null}`,
      `delete Job ${evict.metadata!.name}`,
    ]);
    expect(r2?.retired).toBe(true);
    expect(r2?.status).toBeUndefined();
    // Nothing left: staging off is a no-op again.
    expect(await syncStaging(kube, off, { nodes: [], views: [], shardPods: [], jobs: [], nowMs: 0 })).toBeUndefined();
  });

  it("evicts what was staged once staging no longer runs: mode Recommend or PullRequest, topology WideEP", async () => {
    const on = sample(ON);
    expect(stagingRuns(on)).toBe(true);
    const variants: [string, MoEDeployment][] = [
      ["Recommend", { ...on, spec: { ...on.spec, mode: "Recommend" } }],
      ["PullRequest", { ...on, spec: { ...on.spec, mode: "PullRequest" } }],
      ["WideEP", { ...on, spec: { ...on.spec, serving: { ...on.spec.serving, topology: "WideEP" } } }],
    ];
    for (const [what, d] of variants) {
      expect(stagingRuns(d), what).toBe(false);
      expect(retiringStaging(d), what).toBe(true);
      const { kube, writes } = recorder();
      const r = await syncStaging(kube, d, {
        nodes: [markedNode(on, "gpu-1")],
        views: [],
        shardPods: [],
        jobs: [],
        nowMs: 0,
      });
      expect(writes, what).toEqual(["create evict gpu-1"]);
      expect(r?.retired, what).toBe(false);
    }
  });

  it("without a stager image removes the marks at once and says where the files stay", async () => {
    const on = sample(ON);
    const bare = sample({ enabled: false });
    const { kube, writes } = recorder();
    const r = await syncStaging(kube, bare, {
      nodes: [markedNode(on, "gpu-1")],
      views: [],
      shardPods: [],
      jobs: [],
      nowMs: 0,
    });
    expect(writes).toEqual([`patch Node gpu-1 {"${stagedLabelKey("serving", "ds")}":null}`]);
    expect(r?.events.find((e) => e.reason === "StagingNotEvicted")?.message).toMatch(/gpu-1/);
    expect(r?.retired).toBe(true);
  });

  it("renders evict Jobs of a deployment being deleted without an owner, found by the uid label", () => {
    const d = deleting(sample(ON));
    const job = renderStagingJob(d, "gpu-1", "evict", "abc");
    expect(job.metadata?.ownerReferences).toBeUndefined();
    expect(job.metadata?.labels?.[StagingLabel.ownerUid]).toBe("uid-1");
    expect([...stagingJobsByNode(d, [job]).keys()]).toEqual(["gpu-1"]);
  });

  it("holds the finalizer while staging runs or left something, and gives up past the deadline", async () => {
    const on = sample(ON);
    expect(wantsStagingFinalizer(on, { nodes: [], jobs: [] })).toBe(true);
    const off = sample({ ...ON, enabled: false });
    expect(wantsStagingFinalizer(off, { nodes: [], jobs: [] })).toBe(false);
    expect(wantsStagingFinalizer(off, { nodes: [markedNode(on, "gpu-1")], jobs: [] })).toBe(true);

    const d = deleting(on);
    const { kube, writes } = recorder();
    const o = { nodes: [markedNode(on, "gpu-1")], jobs: [], shardPods: [], views: [] };
    const deletedAtMs = Date.parse("2026-12-05T00:00:00Z");
    const first = await finalizeStaging(kube, { d }, o, { nowMs: deletedAtMs + 1_000, deletedAtMs });
    expect(first.done).toBe(false);
    expect(writes).toEqual(["create evict gpu-1"]);
    const late = await finalizeStaging(kube, { d }, o, { nowMs: deletedAtMs + RETIRE_DEADLINE_MS, deletedAtMs });
    expect(late.done).toBe(true);
    expect(writes.slice(1)).toEqual([`patch Node gpu-1 {"${stagedLabelKey("serving", "ds")}":null}`]);
    expect(late.events[0]?.message).toMatch(/gave up evicting.*gpu-1/);
    const invalid = await finalizeStaging(kube, { problem: "the spec is invalid (spec.model: bad)" }, o, {
      nowMs: deletedAtMs,
      deletedAtMs,
    });
    expect(invalid).toMatchObject({ done: true, events: [{ reason: "StagingNotEvicted" }] });
  });
});
