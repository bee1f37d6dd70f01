// Capacity pending past the timeout (CapacityPending) is not coming capacity: the SLO feedback does
// not wait for it (it would never come) and keeps asking for it rather than adding more that would
// wait too. Before, a WideEP group pending past the timeout counted as warming: the feedback waited,
// the model's lower count removed the pending group, the feedback asked for it again (the wide-EP
// demo's 4 -> 3 -> 4 flip and its CapacityPending going False and True again).
import { describe, expect, it } from "vitest";
import { applyOperatorGuards, createCapacityState, makeCapacityPolicy } from "../../src/domain/capacity/index.ts";
import { decideGroupCount, groupStates, pendingGroups, type GroupPod } from "../../src/domain/wideep/groups.ts";

const T0 = Date.UTC(2026, 11, 6, 12, 0, 0);
const policy = makeCapacityPolicy({ slo: { metric: "itl", targetP99Ms: 50 }, minGpus: 16, maxGpus: 64 });
const later = T0 + 3_600_000;

const over = {
  desired: 48,
  reason: "WithinTarget",
  message: "model",
  provisioned: 64,
  ready: 48,
  observedP99Ms: 80,
  metricsUsable: true,
  trackingSinceMs: T0,
  lastScaleUpMs: T0,
  readySinceMs: T0,
  minCount: 16,
  maxCount: 64,
  budgetCap: Number.POSITIVE_INFINITY,
  unit: { one: "GPU", many: "GPUs" },
} as const;

describe("pending capacity and the SLO feedback", () => {
  it("keeps the pending GPUs while the p99 is over the target with everything that has a node Ready", () => {
    const g = applyOperatorGuards({ ...over, pending: 16 }, policy, later);
    expect(g.desired).toBe(64);
    expect(g.reason).toBe("SLOFeedback");
    expect(g.message).toMatch(/keeping the 16 GPUs waiting for a node \(CapacityPending\)/);
  });

  it("without the pending count the same tick drops the pending group (the flip this fixes)", () => {
    expect(applyOperatorGuards(over, policy, later).desired).toBe(48);
  });

  it("never adds beyond the pending ones, and lets them go once the p99 is within the target", () => {
    const g = applyOperatorGuards({ ...over, desired: 40, pending: 16 }, policy, later);
    expect(g.desired).toBe(64);
    const met = applyOperatorGuards({ ...over, observedP99Ms: 40, pending: 16 }, policy, later);
    expect(met.desired).toBe(48);
    // Warming GPUs that are not pending still make the feedback wait (they are coming).
    expect(applyOperatorGuards({ ...over, pending: 8 }, policy, later).desired).toBe(48);
  });

  it("a WideEP group pending past the timeout is not warming capacity in the decision", () => {
    const shape = { nodesPerGroup: 2, gpusPerNode: 8 };
    const pod = (group: number, i: number, ready: boolean, scheduled: boolean): GroupPod => ({
      name: `g${group}-${i}`,
      group,
      ready,
      scheduled,
      ...(scheduled ? { nodeName: `n${group}-${i}` } : {}),
      terminating: false,
      createdMs: T0 - 60_000,
    });
    const pods = [0, 1, 2].flatMap((g) => [pod(g, 0, true, true), pod(g, 1, true, true)]);
    pods.push(pod(3, 0, false, true), pod(3, 1, false, false));
    const states = groupStates(pods, 4, shape, T0);
    expect(pendingGroups(states, 30_000).map((s) => s.index)).toEqual([3]);
    const input = (pendingGpus: number | undefined) => ({
      capacity: {
        tokensPerSecond: 20_000,
        metricsAtMs: T0,
        observedP99Ms: 80,
        provisionedGpus: 64,
        readyGpus: 48,
        ...(pendingGpus === undefined ? {} : { pendingGpus }),
        balancedness: 1,
        crossNodeShare: 0,
        usdPerGpuHour: 2,
      },
      state: createCapacityState(policy),
      trackingSinceMs: T0 - 3_600_000,
      lastScaleUpMs: T0 - 600_000,
      readySinceMs: T0 - 600_000,
    });
    const run = (pendingGpus?: number) => decideGroupCount(input(pendingGpus), { capacity: policy }, shape, T0);
    const withPending = run(16);
    expect(withPending.groups).toBe(4);
    expect(withPending.count.capacity.signals.warmingGpus).toBe(0);
    expect(withPending.count.message).not.toMatch(/still warming/);
    const before = run(undefined);
    expect(before.count.capacity.signals.warmingGpus).toBe(16);
  });
});
