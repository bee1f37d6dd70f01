// The fleet emulator's group model (issue 18, item 3): a group serves only when all its pods are
// Ready, and the slowest GPU of a group sets its pace.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { GroupFleetEmulator, groupPace, type EmulatedGroupPod } from "../../src/emulator/groups.ts";
import { defaultGroundTruthParams, resolveWaitWeight, stepSecond } from "../../src/sim/truth.ts";

const shape = { nodesPerGroup: 2, gpusPerNode: 2 }; // 4 GPUs a group
const dims = { layerCount: 2, expertCount: 8, topK: 2 };
// GPU i holds experts 2i and 2i+1 in both layers: a balanced placement under uniform heat.
const placement = [0, 1, 2, 3].map((i) => [
  [2 * i, 2 * i + 1],
  [2 * i, 2 * i + 1],
]);
const uniform = [new Array<number>(8).fill(1), new Array<number>(8).fill(1)];
const pod = (group: number, k: number, ready = true, extra: Partial<EmulatedGroupPod> = {}): EmulatedGroupPod => ({
  name: `ep-${group}-${k}`,
  group,
  ready,
  nodeName: `n${group}${k}`,
  ...extra,
});
const emulator = () => new GroupFleetEmulator({ shape, ...dims });
/** Per-group tokens/s near a group's capacity, so pace shows in latency. */
const LOAD = 4 * defaultGroundTruthParams("itl").tokensPerSecondPerGpu * 0.6;

function groundTruth(tokens: number, balancedness: number): number {
  const p = defaultGroundTruthParams("itl");
  return stepSecond(p, resolveWaitWeight(p, 200), { backlogTokens: 0 }, tokens, {
    readyGpus: 4,
    balancedness,
    crossNodeShare: 0.5 * 0.3,
  });
}

describe("group fleet emulator: a group serves only when all its pods are Ready", () => {
  it("gives a group with a pod not Ready, missing or terminating no tokens; the Ready group takes them all", () => {
    const cases: EmulatedGroupPod[][] = [
      [pod(1, 0), pod(1, 1, false)], // a worker not Ready
      [pod(1, 0)], // a worker missing (Pending pods not created yet)
      [pod(1, 0), pod(1, 1, true, { terminating: true })], // a worker going away
      [pod(1, 0), { name: "ep-1-1", group: 1, ready: false }], // a worker unscheduled
    ];
    for (const group1 of cases) {
      const r = emulator().step(2, [pod(0, 0), pod(0, 1), ...group1], placement, uniform, LOAD);
      expect(r.servingGroups).toBe(1);
      expect(r.readyGpus).toBe(4);
      expect(r.groups[1]).toMatchObject({ serving: false, tokensPerSecond: 0 });
      expect(r.groups[1]?.latencyMs).toBeNaN();
      expect(r.groups[0]).toMatchObject({ serving: true, tokensPerSecond: LOAD });
      expect(r.latencyMs).toBe(r.groups[0]?.latencyMs);
    }
  });

  it("spreads the load evenly over the groups that serve, and counts their GPUs in whole groups", () => {
    const pods = [0, 1, 2].flatMap((g) => [pod(g, 0), pod(g, 1)]);
    const r = emulator().step(3, pods, placement, uniform, 3 * LOAD);
    expect(r.servingGroups).toBe(3);
    expect(r.readyGpus).toBe(12);
    for (const g of r.groups) expect(g.tokensPerSecond).toBeCloseTo(LOAD, 9);
  });

  it("serves nothing, at infinite latency, while no group has all its pods Ready", () => {
    const r = emulator().step(1, [pod(0, 0), pod(0, 1, false)], placement, uniform, LOAD);
    expect([r.servingGroups, r.readyGpus, r.latencyMs]).toEqual([0, 0, Infinity]);
  });
});

describe("group fleet emulator: the slowest GPU sets the pace", () => {
  it("one GPU at half speed halves the group's pace and raises its latency to the ground truth at that pace", () => {
    const pods = [pod(0, 0), pod(0, 1)];
    const fast = emulator().step(1, pods, placement, uniform, LOAD);
    const slow = emulator().step(1, pods, placement, uniform, LOAD, new Map([[0, [1, 1, 0.5, 1]]]));
    expect(fast.groups[0]?.pace).toBeCloseTo(1, 12);
    expect(slow.groups[0]?.pace).toBeCloseTo(0.5, 12);
    expect(slow.groups[0]?.slowestGpu).toBe(2);
    expect(fast.latencyMs).toBeCloseTo(groundTruth(LOAD, 1), 9);
    expect(slow.latencyMs).toBeCloseTo(groundTruth(LOAD, 0.5), 9);
    expect(slow.latencyMs).toBeGreaterThan(fast.latencyMs);
  });

  it("under a balanced placement the pace is the slowest GPU's speed, wherever it sits", () => {
    fc.assert(
      fc.property(fc.array(fc.double({ min: 0.2, max: 1, noNaN: true }), { minLength: 4, maxLength: 4 }), (speeds) => {
        const p = groupPace(dims, 4, placement, uniform, LOAD, speeds);
        expect(p.pace).toBeCloseTo(Math.min(...speeds), 9);
        expect(speeds[p.slowestGpu as number]).toBe(Math.min(...speeds));
        const r = emulator().step(1, [pod(0, 0), pod(0, 1)], placement, uniform, LOAD, new Map([[0, speeds]]));
        expect(r.latencyMs).toBeCloseTo(groundTruth(LOAD, Math.min(...speeds)), 9);
      }),
    );
  });

  it("the GPU holding the hottest expert sets the pace under skewed heat", () => {
    const hot = [
      [8, 1, 1, 1, 1, 1, 1, 1],
      [8, 1, 1, 1, 1, 1, 1, 1],
    ];
    const p = groupPace(dims, 4, placement, hot, LOAD, undefined);
    // GPU 0 carries 9 of 15 shares: pace = mean (15 / 4) / max (9).
    expect(p.pace).toBeCloseTo(15 / 4 / 9, 9);
    expect(p.slowestGpu).toBe(0);
  });

  it("an expert with heat that no GPU of the group holds makes the group's latency infinite", () => {
    const partial = placement.map((rows, i) => (i === 3 ? [[6], [6]] : rows)); // expert 7 held nowhere
    const r = emulator().step(1, [pod(0, 0), pod(0, 1)], partial, uniform, LOAD);
    expect(r.latencyMs).toBe(Infinity);
  });

  it("slowing any GPU never makes a group faster", () => {
    fc.assert(
      fc.property(
        fc.array(fc.double({ min: 0.2, max: 1, noNaN: true }), { minLength: 4, maxLength: 4 }),
        fc.integer({ min: 0, max: 3 }),
        fc.double({ min: 0.1, max: 1, noNaN: true }),
        fc.array(fc.array(fc.double({ min: 0, max: 10, noNaN: true }), { minLength: 8, maxLength: 8 }), {
          minLength: 2,
          maxLength: 2,
        }),
        (speeds, gpu, factor, heat) => {
          const slower = speeds.map((s, i) => (i === gpu ? s * factor : s));
          const a = groupPace(dims, 4, placement, heat, LOAD, speeds);
          const b = groupPace(dims, 4, placement, heat, LOAD, slower);
          expect(b.pace).toBeLessThanOrEqual(a.pace + 1e-12);
        },
      ),
    );
  });
});
