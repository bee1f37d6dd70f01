// computeStatus without a cluster: one test group per condition, and the status
// numbers in Auto (the actuator manages workloads) and Recommend (it does not).
import { canonical } from "../../src/controllers/moedeployment/canonical.ts";
import { describe, expect, it } from "vitest";
import { parseMoEDeployment, type MoEDeployment } from "../../src/api/index.ts";
import type { Decision } from "../../src/domain/decide.ts";
import type { MoveCost } from "../../src/domain/placement/index.ts";
import type { RolloutPlan } from "../../src/domain/rollout/index.ts";
import {
  budgetCondition,
  capacityPendingCondition,
  computeStatus,
  degradedCondition,
  metricsCondition,
  prewarmingCondition,
  progressingCondition,
  sloCondition,
  type StatusInput,
} from "../../src/controllers/moedeployment/status.ts";
import type { ShardPod } from "../../src/controllers/moedeployment/codecs/shard-pod.ts";
import { ChildApplyError } from "../../src/controllers/moedeployment/errors.ts";
import { apiError } from "../support/reconciler-harness.ts";
import { testMoEDeployment } from "../support/moe-fixtures.ts";
import { eventsFor } from "../../src/controllers/moedeployment/events.ts";

const NOW = Date.parse("2026-06-01T12:00:00Z");

function deployment(over: Parameters<typeof testMoEDeployment>[2] = {}): MoEDeployment {
  const r = parseMoEDeployment(testMoEDeployment("tiny", "default", over));
  if (!r.ok) throw new Error("fixture does not parse", { cause: r.issues });
  return { ...r.value, metadata: { ...r.value.metadata, uid: "u-1", generation: 3 } };
}

function decision(over: Partial<Decision> = {}): Decision {
  return {
    desiredShards: 4,
    capacity: undefined,
    reason: "SLOFeedback",
    message: "p99 within target",
    shardNodes: [],
    unschedulableShards: 0,
    placement: { action: "keep", reason: "balanced", hash: "h1" },
    loadTokensPerSecond: 3000,
    heatUsable: true,
    usdPerHourNow: 10,
    usdPerHourDesired: 10,
    nextCapacityState: {} as Decision["nextCapacityState"],
    heatShiftDetected: false,
    ...over,
  };
}

const pod = (shardIndex: number, ready = true, extra: Partial<ShardPod> = {}): ShardPod => ({
  name: `tiny-shard-${shardIndex}`,
  shardIndex,
  setHash: `s${shardIndex}`,
  experts: [],
  ready,
  terminating: false,
  pod: {},
  ...extra,
});

const rollout = (over: Partial<RolloutPlan> = {}): RolloutPlan => ({
  create: [],
  startDrain: [],
  cancelDrain: [],
  delete: [],
  blocked: [],
  uncoveredNow: 0,
  complete: true,
  pendingDesired: 0,
  ...over,
});

function input(over: Partial<StatusInput> = {}): StatusInput {
  return {
    deployment: deployment(),
    decision: decision(),
    heat: {},
    latency: { p99Ms: 40, atMs: NOW - 1000 },
    router: {
      metadata: { generation: 1 },
      status: { readyReplicas: 1, observedGeneration: 1 },
    },
    shardPods: [0, 1, 2, 3].map((i) => pod(i)),
    managesWorkloads: true,
    rollout: rollout(),
    placement: { version: 2, hash: "h1", changed: false, rebalanced: false },
    applyErrors: [],
    nowMs: NOW,
    ...over,
  };
}

describe("MetricsAvailable", () => {
  it("is True with fresh readings and False naming the source problem, holding capacity", () => {
    expect(metricsCondition(input())).toMatchObject({ status: "True", reason: "MetricsFresh" });
    const c = metricsCondition(
      input({ heat: { problem: { reason: "NoData", message: "heat ConfigMap tiny-heat: NotFound" } } }),
    );
    expect(c).toMatchObject({ status: "False", reason: "NoData" });
    expect(c.message).toBe(
      "heat ConfigMap tiny-heat: NotFound; holding capacity (no scale-down while metrics are unavailable)",
    );
  });
});

describe("SLOMet", () => {
  it("is not True while GPUs the decision wants are missing, even within target", () => {
    const c = sloCondition(input({ decision: decision({ desiredShards: 6 }), gpus: { free: 0, held: 4 } }));
    expect(c).toMatchObject({ status: "False", reason: "InsufficientGpuCapacity" });
    expect(c.message).toMatch(
      /^p99 InterTokenLatency 40\.0 ms <= target \d+ ms, but the capacity decided for the SLO is missing: 2 nvidia.com\/gpu missing/,
    );
  });

  it("is Unknown without a reading, True within target, False above it with the bound that blocks", () => {
    expect(sloCondition(input({ latency: {} }))).toMatchObject({ status: "Unknown", reason: "MetricsUnavailable" });
    expect(sloCondition(input())).toMatchObject({
      status: "True",
      reason: "WithinTarget",
      message: "p99 InterTokenLatency 40.0 ms <= target 100 ms",
    });
    const capacity = {
      conflicts: [{ type: "MaxGpusVsSlo", requiredGpus: 14, message: "" }],
    } as unknown as Decision["capacity"];
    const c = sloCondition(input({ latency: { p99Ms: 130 }, decision: decision({ capacity }) }));
    expect(c).toMatchObject({ status: "False", reason: "AboveTarget" });
    expect(c.message).toBe(
      "p99 InterTokenLatency 130.0 ms > target 100 ms: at spec.scaling.maxShards=12: the SLO needs 14 shards",
    );
  });
});

describe("BudgetExceeded", () => {
  it("says NoBudget without spec.cost.maxUsdPerHour, MinimumOverBudget when even minShards costs too much", () => {
    expect(budgetCondition(input())).toMatchObject({ status: "False", reason: "NoBudget" });
    const capacity = {
      conflicts: [{ type: "BudgetBelowMinGpus", message: "minShards costs 12 USD/h > 5 USD/h" }],
    } as unknown as Decision["capacity"];
    expect(
      budgetCondition(input({ deployment: deployment({ maxUsdPerHour: 5 }), decision: decision({ capacity }) })),
    ).toEqual({
      type: "BudgetExceeded",
      status: "True",
      reason: "MinimumOverBudget",
      message: "minShards costs 12 USD/h > 5 USD/h",
    });
    expect(budgetCondition(input({ deployment: deployment({ maxUsdPerHour: 50 }) }))).toMatchObject({
      status: "False",
      reason: "WithinBudget",
      message: "desired capacity costs 10.00 USD/h of 50 USD/h",
    });
  });
});

describe("Prewarming", () => {
  it("maps the capacity reason to the condition reason", () => {
    const capacity = { reason: "ForecastPrewarm", conflicts: [] } as unknown as Decision["capacity"];
    expect(prewarmingCondition(decision({ capacity, message: "peak at 14:00" }))).toMatchObject({
      status: "True",
      reason: "ForecastPeak",
      message: "peak at 14:00",
    });
    expect(prewarmingCondition(decision())).toMatchObject({ status: "False", reason: "NotPrewarming" });
  });
});

describe("Progressing", () => {
  it("is Stable in Recommend, ScalingUp when shards are missing, Rebalancing while a new placement rolls out", () => {
    expect(progressingCondition(input({ managesWorkloads: false }))).toMatchObject({
      status: "False",
      reason: "Stable",
      message: expect.stringMatching(/^mode \w+: nothing is changed in the cluster$/),
    });
    expect(progressingCondition(input({ decision: decision({ desiredShards: 5 }) }))).toMatchObject({
      status: "True",
      reason: "ScalingUp",
      message: "4 -> 5 shards: p99 within target",
    });
    const c = progressingCondition(
      input({
        rollout: rollout({ complete: false, pendingDesired: 2, blocked: [{ pod: "p", reason: "coverage" }] }),
        placement: { version: 3, hash: "h2", changed: true, rebalanced: true },
      }),
    );
    expect(c).toEqual({
      type: "Progressing",
      status: "True",
      reason: "Rebalancing",
      message: "placement v3: 2 new shard pod(s) pending, 1 old pod(s) waiting for coverage",
    });
    expect(progressingCondition(input())).toMatchObject({
      status: "False",
      reason: "Stable",
      message: "4 shards hold placement v2",
    });
  });
});

describe("Degraded", () => {
  it("names the child whose write failed, with the Kubernetes error and status code", () => {
    const err = new ChildApplyError(
      "create",
      { kind: "Pod", name: "tiny-shard-0-abc" },
      apiError("create Pod/tiny-shard-0-abc", 403, "pods is forbidden"),
    );
    const c = degradedCondition(input({ applyErrors: [err] }));
    expect(c).toEqual({
      type: "Degraded",
      status: "True",
      reason: "ApplyFailed",
      message: "create Pod/tiny-shard-0-abc: Forbidden (HTTP 403): pods is forbidden",
    });
  });

  it("reports missing GPUs only when the operator manages the workloads", () => {
    const d = decision({ unschedulableShards: 1, desiredShards: 5 });
    const pending = pod(4, false, { unschedulable: true });
    const shardPods = [...[0, 1, 2, 3].map((i) => pod(i)), pending];
    const gpus = { free: 0, held: 4 };
    expect(degradedCondition(input({ decision: d, shardPods, gpus }))).toEqual({
      type: "Degraded",
      status: "True",
      reason: "InsufficientGpuCapacity",
      message:
        "1 nvidia.com/gpu missing: 5 shards decided, 4 GPUs held by shard pods, 0 free; 1 shard pod(s) Pending (unschedulable)",
    });
    expect(degradedCondition(input({ decision: d, shardPods, gpus, managesWorkloads: false }))).toMatchObject({
      status: "False",
      reason: "AsExpected",
    });
  });

  it("does not count a replacement waiting for its old pod's GPU as missing capacity", () => {
    // At the GPU bound: shard 1's replacement is Pending until the old pod's GPU is freed.
    const shardPods = [
      ...[0, 1, 2, 3].map((i) => pod(i)),
      pod(1, false, { name: "tiny-shard-1-new", setHash: "n1", unschedulable: true }),
    ];
    const c = degradedCondition(
      input({ decision: decision({ desiredShards: 4 }), shardPods, gpus: { free: 0, held: 4 } }),
    );
    expect(c).toMatchObject({ status: "False", reason: "AsExpected" });
  });
});

describe("computeStatus", () => {
  it("keeps Ready=True while a rebalance rolls out with every expert covered and minShards serving", () => {
    const s = computeStatus(
      input({
        rollout: rollout({ complete: false, pendingDesired: 1 }),
        shardPods: [...[0, 1, 2, 3].map((i) => pod(i)), pod(1, false, { name: "tiny-shard-1-new", setHash: "n1" })],
      }),
    );
    const ready = s.conditions?.find((c) => c.type === "Ready");
    expect(ready).toMatchObject({ status: "True", reason: "AllComponentsReady" });
    expect(ready?.message).toMatch(
      /^serving with 4 Ready expert shards and every expert covered; rolling out placement v2/,
    );
  });

  it("turns Ready False with Degraded's reason, and keeps lastTransitionTime while a condition does not flip", () => {
    const err = new ChildApplyError(
      "apply",
      { kind: "ConfigMap", name: "tiny-placement" },
      apiError("apply ConfigMap/tiny-placement", 500),
    );
    const first = computeStatus(input({ applyErrors: [err] }));
    expect(first.conditions?.find((c) => c.type === "Ready")).toMatchObject({ status: "False", reason: "ApplyFailed" });
    const d = { ...deployment(), status: first };
    const later = computeStatus(input({ deployment: d, applyErrors: [err], nowMs: NOW + 60_000 }));
    expect(later.conditions?.find((c) => c.type === "Ready")?.lastTransitionTime).toBe(new Date(NOW).toISOString());
    expect(later.conditions?.[0]?.observedGeneration).toBe(3);
  });

  it("publishes the last rebalance's bytes, estimated duration, chunks and longest stall, and keeps them until the next", () => {
    const cost: MoveCost = {
      moves: 10,
      bytes: 440_401_920,
      byPath: {
        nvlink: { moves: 6, bytes: 264_241_152 },
        network: { moves: 4, bytes: 176_160_768 },
        storage: { moves: 0, bytes: 0 },
      },
      chunks: [
        {
          firstLayer: 0,
          lastLayer: 2,
          moves: 10,
          bytes: 440_401_920,
          stallSeconds: 0.0041,
          stalledGpuId: "shard-1",
          overBound: false,
        },
      ],
      estimatedSeconds: 0.0041,
      maxStallSeconds: 0.0041,
      maxStallGpuId: "shard-1",
      overBoundLayers: [],
    };
    const replan = decision({
      placement: { action: "replan", reason: "rebalanced by heat", hash: "h2", movedFraction: 0.1, moveCost: cost },
    });
    const s = computeStatus(
      input({ decision: replan, placement: { version: 3, hash: "h2", changed: true, rebalanced: true } }),
    );
    expect(s.placement).toMatchObject({
      movedBytes: 440_401_920,
      estimatedMoveSeconds: 0.0041,
      moveChunks: 1,
      maxMoveStallSeconds: 0.0041,
    });
    // A later reconcile that keeps the placement keeps the numbers.
    const kept = computeStatus(input({ deployment: { ...deployment(), status: s } }));
    expect(kept.placement).toMatchObject({ movedBytes: 440_401_920, moveChunks: 1 });
  });

  it("reports live shards, GPUs and cost in Auto, only the recommendation in Recommend", () => {
    const auto = computeStatus(input());
    expect(auto).toMatchObject({
      currentShards: 4,
      desiredShards: 4,
      currentGpus: 5,
      desiredGpus: 5,
      cost: { usdPerHour: 10 },
    });
    expect(auto.placement).toMatchObject({ version: 2, hash: "h1", configMapName: "tiny-placement" });
    const rec = computeStatus(input({ managesWorkloads: false, rollout: undefined }));
    expect(rec).toMatchObject({
      currentShards: 0,
      currentGpus: 0,
      desiredGpus: 5,
      cost: { usdPerHour: 0 },
      recommendation: { shards: 4, gpus: 5, usdPerHour: 10, reason: "SLOTarget" },
    });
    expect(rec.desiredShards).toBeUndefined();
    expect(rec.conditions?.find((c) => c.type === "Ready")).toMatchObject({ status: "True", reason: "RecommendOnly" });
  });

  it("keeps the recommendation's time while it holds, read back as the API server returns it (keys sorted)", () => {
    const first = computeStatus(input({ managesWorkloads: false, rollout: undefined })).recommendation!;
    const stored = JSON.parse(JSON.stringify(canonical(first))) as typeof first;
    expect(Object.keys(stored)).not.toEqual(Object.keys(first)); // the order differs, the content does not
    const d = deployment();
    d.status = { recommendation: stored };
    const later = computeStatus(
      input({ deployment: d, managesWorkloads: false, rollout: undefined, nowMs: NOW + 60_000 }),
    );
    expect(later.recommendation).toEqual(stored); // same time: no status write in a constant world
  });
});

describe("CapacityPending", () => {
  const unschedulable = (i: number, ageS: number, extra: Partial<ShardPod> = {}) =>
    pod(i, false, {
      unschedulable: true,
      pod: {
        metadata: { creationTimestamp: new Date(NOW - ageS * 1000) },
        status: {
          conditions: [
            {
              type: "PodScheduled",
              status: "False",
              reason: "Unschedulable",
              message: "0/2 nodes are available: 2 Insufficient nvidia.com/gpu.",
            },
          ],
        },
      },
      ...extra,
    });

  it("is True only for pods unschedulable past spec.scaling.pendingTimeoutSeconds, naming the GPU and the count", () => {
    const d = deployment();
    const timeout = d.spec.scaling.pendingTimeoutSeconds;
    const young = [0, 1, 2, 3].map((i) => pod(i)).concat(unschedulable(4, timeout - 1));
    expect(capacityPendingCondition(input({ deployment: d, shardPods: young }))).toMatchObject({
      status: "False",
      reason: "NoPendingShards",
    });
    const late = [...young, unschedulable(5, timeout + 30), unschedulable(6, timeout + 5)];
    const c = capacityPendingCondition(input({ deployment: d, shardPods: late }));
    expect(c.status).toBe("True");
    expect(c.reason).toBe("ShardsUnschedulable");
    expect(c.message).toBe(
      `2 nvidia.com/gpu pending: 2 shard pod(s) unschedulable for more than ${timeout} s (oldest tiny-shard-5, ${timeout + 30} s: 0/2 nodes are available: 2 Insufficient nvidia.com/gpu.); not counted as capacity`,
    );
    // A pod being deleted (cancelled) is not pending.
    const cancelled = [...young, unschedulable(5, timeout + 30, { terminating: true })];
    expect(capacityPendingCondition(input({ deployment: d, shardPods: cancelled })).status).toBe("False");
  });

  it("is part of the status only when the operator manages the workloads, with a Warning event when it turns True", () => {
    const d = deployment();
    const shardPods = [unschedulable(4, d.spec.scaling.pendingTimeoutSeconds + 1)];
    const managed = computeStatus(input({ deployment: d, shardPods }));
    expect(managed.conditions?.find((c) => c.type === "CapacityPending")?.status).toBe("True");
    const recommend = computeStatus(input({ deployment: d, shardPods, managesWorkloads: false }));
    expect(recommend.conditions?.find((c) => c.type === "CapacityPending")).toBeUndefined();
    const before = computeStatus(input({ deployment: d, shardPods: [] }));
    const ev = (prev: typeof before, next: typeof before) =>
      eventsFor({
        previous: prev,
        next,
        decision: decision(),
        placement: { version: 2, hash: "h1", changed: false, rebalanced: false },
        managesWorkloads: true,
      }).filter((e) => e.reason === "CapacityPending");
    expect(ev(before, managed)).toEqual([
      {
        type: "Warning",
        reason: "CapacityPending",
        message: managed.conditions!.find((c) => c.type === "CapacityPending")!.message,
      },
    ]);
    expect(ev(managed, managed)).toEqual([]);
  });
});
