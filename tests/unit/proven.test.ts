import { describe, expect, it } from "vitest";
import {
  applyOperatorGuards,
  createCapacityState,
  DEFAULT_PROVEN_POLICY,
  decideCapacity,
  makeCapacityPolicy,
  nextProvenRecords,
  provenGpus,
} from "../../src/domain/capacity/index.ts";
import type { CapacityDecision, CapacityPolicy, ProvenRecord } from "../../src/domain/capacity/index.ts";

const T0 = Date.UTC(2026, 2, 2, 12, 0, 0);
const TICK = 15_000;
const MIN = 60_000;
const P = DEFAULT_PROVEN_POLICY;

describe("measured sufficiency (proven counts)", () => {
  it("is the minRecords-th fewest GPUs measured within the plan at a load at least this high, within the window", () => {
    let r: ProvenRecord[] = [];
    r = nextProvenRecords(r, { atMs: T0, gpus: 100, tokensPerSecond: 50_000 }, T0, P);
    // One record proves nothing yet (a lucky minute).
    expect(provenGpus(r, 40_000, T0, P)).toBeUndefined();
    r = nextProvenRecords(r, { atMs: T0 + MIN, gpus: 96, tokensPerSecond: 45_000 }, T0 + MIN, P);
    r = nextProvenRecords(r, { atMs: T0 + 2 * MIN, gpus: 90, tokensPerSecond: 30_000 }, T0 + 2 * MIN, P);
    expect(provenGpus(r, 40_000, T0 + 2 * MIN, P)).toBe(100);
    expect(provenGpus(r, 30_000, T0 + 2 * MIN, P)).toBe(96);
    // Above every measured load: nothing is proven.
    expect(provenGpus(r, 50_001, T0 + 2 * MIN, P)).toBeUndefined();
    // Monotone: a higher load never has a smaller proven count.
    let last = 0;
    for (const load of [10_000, 30_000, 40_000, 45_000]) {
      const g = provenGpus(r, load, T0 + 2 * MIN, P)!;
      expect(g).toBeGreaterThanOrEqual(last);
      last = g;
    }
    // Measurements expire (placement and heat drift).
    expect(provenGpus(r, 30_000, T0 + 2 * MIN + P.windowMs, P)).toBeUndefined();
    expect(nextProvenRecords(r, undefined, T0 + MIN + P.windowMs, P)).toHaveLength(1);
    expect(nextProvenRecords(r, undefined, T0, { ...P, enabled: false })).toEqual([]);
  });

  it("the latency feedback does not add where this count met the plan at this load or more", () => {
    const policy = makeCapacityPolicy({ slo: { metric: "itl", targetP99Ms: 50 }, minGpus: 2, maxGpus: 256 });
    const later = T0 + 3_600_000;
    const over = {
      desired: 50,
      reason: "WithinTarget",
      message: "m",
      provisioned: 50,
      ready: 50,
      observedP99Ms: 55,
      metricsUsable: true,
      trackingSinceMs: T0,
      lastScaleUpMs: undefined,
      readySinceMs: undefined,
      minCount: 2,
      maxCount: 256,
      budgetCap: Number.POSITIVE_INFINITY,
      unit: { one: "GPU", many: "GPUs" },
    } as const;
    // No measurement: the safety net adds 10 %.
    expect(applyOperatorGuards(over, policy, later).desired).toBe(55);
    // Measured within the plan at 50 GPUs (or 48) at this load or more: one minute over is the minute's scatter.
    const held = applyOperatorGuards({ ...over, provenCount: 48 }, policy, later);
    expect(held.desired).toBe(50);
    expect(held.message).toMatch(/48 GPUs met the plan at this load or more/);
    // Proven only with more GPUs than provisioned: the feedback still adds.
    expect(applyOperatorGuards({ ...over, provenCount: 52 }, policy, later).desired).toBe(55);
  });

  it("a steady fleet within the plan proves its count; a load above what it served proves nothing", () => {
    const policy: CapacityPolicy = makeCapacityPolicy({
      slo: { metric: "itl", targetP99Ms: 50 },
      minGpus: 2,
      maxGpus: 256,
      forecast: { enabled: false },
    });
    let state = createCapacityState(policy);
    let last: CapacityDecision | undefined;
    const gpus = 60;
    const decide = (i: number, load: number, p99: number): CapacityDecision => {
      const now = T0 + i * TICK;
      const d = decideCapacity(
        {
          tokensPerSecond: load,
          metricsAtMs: now,
          provisionedGpus: gpus,
          readyGpus: gpus,
          balancedness: 0.85,
          crossNodeShare: 0.2,
          usdPerGpuHour: 2,
          observedP99Ms: p99,
        },
        state,
        policy,
        now,
      );
      state = d.nextState;
      return d;
    };
    for (let i = 0; i < 80; i++) last = decide(i, 30_000, 35);
    expect(last!.signals.provenGpus).toBe(gpus);
    // Over the target: not recorded. Twice the load served so far: nothing is proven at it.
    expect(decide(80, 30_000, 70).signals.provenGpus).toBe(gpus);
    expect(decide(81, 60_000, 35).signals.provenGpus).toBeUndefined();
  });
});

describe("measured release (a fall larger than one step goes at once to a proven count)", () => {
  const policyWith = (releaseDown: boolean): CapacityPolicy =>
    makeCapacityPolicy({
      slo: { metric: "itl", targetP99Ms: 50 },
      minGpus: 2,
      maxGpus: 512,
      forecast: { enabled: false },
      proven: { releaseDown },
    });
  /** 80 ticks at `gpus` within the plan, then (a crowd gone, the window's recommendations expired) 240 GPUs at the same load. */
  const afterCrowd = (policy: CapacityPolicy, provenFor: number): CapacityDecision[] => {
    let state = createCapacityState(policy);
    const input = (now: number, gpus: number, p99: number) => ({
      tokensPerSecond: 30_000,
      metricsAtMs: now,
      provisionedGpus: gpus,
      readyGpus: gpus,
      balancedness: 0.85,
      crossNodeShare: 0.2,
      usdPerGpuHour: 2,
      observedP99Ms: p99,
    });
    let i = 0;
    for (; i < provenFor; i++)
      state = decideCapacity(input(T0 + i * TICK, 60, 35), state, policy, T0 + i * TICK).nextState;
    // Eleven minutes later (the scale-down window has forgotten the 60-GPU recommendations) the
    // fleet holds 240 GPUs after a crowd that has gone, and measures 20 ms at the old load.
    const later = T0 + i * TICK + 11 * MIN;
    const out: CapacityDecision[] = [];
    let gpus = 240;
    for (let k = 0; k < 3; k++) {
      const now = later + k * TICK;
      const d = decideCapacity(input(now, gpus, 20), state, policy, now);
      state = d.nextState;
      gpus = d.desiredGpus;
      out.push(d);
    }
    return out;
  };

  it("comes down at once to a count measured within the plan at this load (never below it), else 20 % per step", () => {
    const [first, second] = afterCrowd(policyWith(true), 80);
    expect(first!.signals.provenGpus).toBe(60);
    // The step limit (20 %) would have allowed 192; the measured count is the floor instead.
    expect(first!.desiredGpus).toBeLessThan(192);
    expect(first!.desiredGpus).toBeGreaterThanOrEqual(60);
    expect(first!.message).toMatch(/60 GPUs met the plan at this load or more/);
    // Nothing more to release at the next tick.
    expect(second!.desiredGpus).toBe(first!.desiredGpus);
    // Without the release: the step limit.
    expect(afterCrowd(policyWith(false), 80)[0]!.desiredGpus).toBe(192);
    // Nothing measured at this load (one record is no proof): the step limit.
    const unproven = afterCrowd(policyWith(true), 1)[0]!;
    expect(unproven.signals.provenGpus).toBeUndefined();
    expect(unproven.desiredGpus).toBe(192);
  });
});
