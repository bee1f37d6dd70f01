import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { createCapacityState, makeCapacityPolicy } from "../../src/domain/capacity/index.ts";
import {
  decideGroupCount,
  groupBounds,
  groupGpuViews,
  groupStates,
  groupsReadySince,
  pendingGroups,
  readyGpus,
  type GroupPod,
} from "../../src/domain/wideep/groups.ts";

const T0 = Date.UTC(2026, 11, 5, 12, 0, 0);
const TICK = 15_000;
const shape = { nodesPerGroup: 2, gpusPerNode: 8 }; // 16 GPUs a group

const policy = (minGpus: number, maxGpus: number) =>
  makeCapacityPolicy({
    slo: { metric: "itl", targetP99Ms: 50 },
    minGpus,
    maxGpus,
    forecast: { enabled: false },
    scaleUp: { stabilizationWindowMs: 0, maxStepGpus: 1, maxStepPercent: 0, periodMs: 0 },
    scaleDown: { stabilizationWindowMs: 0, maxStepGpus: 1, maxStepPercent: 0, periodMs: 0 },
  });

function countInput(load: number, gpus: number, nowMs: number, state = createCapacityState(policy(16, 64))) {
  return {
    capacity: {
      tokensPerSecond: load,
      metricsAtMs: nowMs,
      provisionedGpus: gpus,
      readyGpus: gpus,
      balancedness: 0.9,
      crossNodeShare: 0.2,
      usdPerGpuHour: 2,
    },
    state,
    trackingSinceMs: T0 - 3_600_000,
    lastScaleUpMs: undefined,
    readySinceMs: undefined,
  };
}

describe("groupBounds", () => {
  it.each([
    // minGpus, maxGpus, minGroups, maxGroups
    [1, 16, 1, 1],
    [16, 16, 1, 1],
    [17, 64, 2, 4],
    [32, 63, 2, 3],
    [0, 100, 1, 6],
  ])("minShards %i, maxShards %i GPUs -> %i..%i groups of 16", (minGpus, maxGpus, lo, hi) => {
    expect(groupBounds(minGpus, maxGpus, shape)).toEqual({ minGroups: lo, maxGroups: hi });
  });
});

describe("decideGroupCount", () => {
  it("holds whole groups within the bounds and covers the GPU count it decided", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 64 }),
        fc.integer({ min: 0, max: 96 }),
        fc.integer({ min: 0, max: 2_000_000 }),
        fc.integer({ min: 0, max: 6 }),
        (minGpus, extra, load, groupsNow) => {
          const p = policy(minGpus, minGpus + extra);
          const r = decideGroupCount(
            countInput(load, groupsNow * 16, T0, createCapacityState(p)),
            { capacity: p },
            shape,
            T0,
          );
          const b = groupBounds(minGpus, minGpus + extra, shape);
          expect(r.groups).toBeGreaterThanOrEqual(b.minGroups);
          expect(r.groups).toBeLessThanOrEqual(b.maxGroups);
          if (r.count.desired <= b.maxGroups * 16) expect(r.groups * 16).toBeGreaterThanOrEqual(r.count.desired);
        },
      ),
    );
  });

  it("manual GPUs round up to a whole group", () => {
    const p = policy(16, 64);
    const r = decideGroupCount(countInput(1000, 16, T0), { capacity: p, manualGpus: 17 }, shape, T0);
    expect(r.groups).toBe(2);
  });

  it("moves by at least one group per step although the policy's step is one GPU", () => {
    const p = policy(16, 64);
    let gpus = 16;
    let state = createCapacityState(p);
    const seen: number[] = [];
    for (let i = 0; i < 80; i++) {
      const now = T0 + i * TICK;
      const r = decideGroupCount(
        countInput(i < 20 ? 2_000_000 : Math.max(10, 2_000_000 * 0.9 ** (i - 20)), gpus, now, state),
        { capacity: p },
        shape,
        now,
      );
      state = r.count.nextState;
      gpus = r.groups * 16;
      seen.push(r.groups);
    }
    expect(Math.max(...seen)).toBe(4); // up to the bound under heavy load
    expect(seen.at(-1)).toBe(1); // and back down to one group as the load falls away
  });
});

const pod = (group: number, over: Partial<GroupPod> = {}): GroupPod => ({
  name: `g-${group}`,
  group,
  ready: true,
  scheduled: true,
  terminating: false,
  createdMs: T0,
  ...over,
});

describe("groupStates", () => {
  it("a group serves only when all its pods are Ready; unbound pods are missing GPUs", () => {
    const now = T0 + 200_000;
    const pods = [
      pod(0),
      pod(0),
      pod(1),
      pod(1, { ready: false }),
      pod(2),
      pod(2, { ready: false, scheduled: false, unschedulableMessage: "0/4 nodes are available" }),
      pod(3), // group 3 is beyond replicas: going away
    ];
    const s = groupStates(pods, 3, shape, now);
    expect(s.map((g) => g.ready)).toEqual([true, false, false]);
    expect(s.map((g) => g.missingGpus)).toEqual([0, 0, 8]);
    expect(readyGpus(s, shape)).toBe(16);
    expect(pendingGroups(s, 120_000).map((g) => g.index)).toEqual([2]);
    expect(pendingGroups(s, 300_000)).toEqual([]);
    expect(s[2]!.pendingMessage).toBe("0/4 nodes are available");
  });

  it("a group with a pod not created yet is not Ready and misses its GPUs", () => {
    const s = groupStates([pod(0)], 1, shape, T0);
    expect(s[0]).toMatchObject({ ready: false, pods: 1, missingGpus: 8 });
  });
});

describe("groupGpuViews: the groups' GPUs priced by the nodes their pods run on", () => {
  const nodes = [
    { name: "a", domain: "a", freeGpus: 0, usdPerGpuHour: 3 },
    { name: "b", domain: "b", freeGpus: 0, usdPerGpuHour: 1.5 },
    { name: "c", domain: "c", freeGpus: 8 }, // no price rule matches it
  ];

  it("group k holds slots k x G..; a bound pod's GPUs are on its node, at its price; the rest have no node", () => {
    const pods = [
      pod(0, { name: "g0-1", nodeName: "b" }),
      pod(0, { name: "g0-0", nodeName: "a" }),
      pod(1, { name: "g1-0", nodeName: "c", ready: false }),
      pod(1, { name: "g1-1", scheduled: false, ready: false }),
      pod(1, { name: "g1-old", nodeName: "a", terminating: true }),
      pod(2, { name: "g2-0", nodeName: "a" }), // beyond the provisioned groups
    ];
    const v = groupGpuViews(pods, 2, shape, nodes);
    expect(v.map((x) => x.shardIndex)).toEqual(Array.from({ length: 32 }, (_, i) => i));
    const nodeOf = (from: number, to: number) => [...new Set(v.slice(from, to).map((x) => x.nodeName))];
    expect([nodeOf(0, 8), nodeOf(8, 16), nodeOf(16, 24), nodeOf(24, 32)]).toEqual([["a"], ["b"], ["c"], [undefined]]);
    expect(v.slice(0, 16).reduce((sum, x) => sum + (x.usdPerGpuHour ?? 0), 0)).toBe(8 * 3 + 8 * 1.5);
    expect(v.slice(16).every((x) => x.usdPerGpuHour === undefined && !x.ready)).toBe(true);
  });

  it("always one view per provisioned GPU, whatever the pods", () => {
    const arbPod = fc.record({
      group: fc.integer({ min: 0, max: 4 }),
      node: fc.option(fc.constantFrom("a", "b", "c", "gone"), { nil: undefined }),
      terminating: fc.boolean(),
    });
    fc.assert(
      fc.property(fc.array(arbPod, { maxLength: 12 }), fc.integer({ min: 0, max: 4 }), (ps, groups) => {
        const pods = ps.map((p, i) =>
          pod(p.group, {
            name: `p${i}`,
            terminating: p.terminating,
            scheduled: p.node !== undefined,
            nodeName: p.node,
          }),
        );
        const v = groupGpuViews(pods, groups, shape, nodes);
        expect(v).toHaveLength(groups * 16);
        for (let g = 0; g < groups; g++) {
          const named = new Set(v.slice(g * 16, (g + 1) * 16).flatMap((x) => (x.nodeName ? [x.nodeName] : [])));
          expect(named.size).toBeLessThanOrEqual(shape.nodesPerGroup);
        }
      }),
    );
  });
});

describe("groupsReadySince", () => {
  it("is the latest Ready transition among the pods of Ready groups (a starting group's pods do not count)", () => {
    const pod = (group: number, i: number, readyAtMs?: number): GroupPod => ({
      name: `g${group}-${i}`,
      group,
      ready: readyAtMs !== undefined,
      scheduled: true,
      nodeName: `n${group}${i}`,
      terminating: false,
      createdMs: T0 - 120_000,
      ...(readyAtMs !== undefined ? { readyAtMs } : {}),
    });
    const pods = [pod(0, 0, T0 - 60_000), pod(0, 1, T0 - 20_000), pod(1, 0, T0 - 5_000), pod(1, 1)];
    const states = groupStates(pods, 2, shape, T0);
    expect(groupsReadySince(pods, states)).toBe(T0 - 20_000);
    expect(
      groupsReadySince([pod(1, 0, T0), pod(1, 1)], groupStates([pod(1, 0, T0), pod(1, 1)], 2, shape, T0)),
    ).toBeUndefined();
  });
});
