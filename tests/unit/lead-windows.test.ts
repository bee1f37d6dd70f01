// Windows that follow the learned lead time (issue 19, issue 14 round 8;
// src/domain/scaling/lead-scale.ts): with a learned lead shorter than the 6-min reference, the
// scale-down window, the burst hold, the settle window and the operator's no-undo window shrink by
// (half the stable window + lead) / (half the stable window + reference); at or above the
// reference (or with nothing learned) they are the configured ones.
import { describe, expect, it } from "vitest";
import {
  applyOperatorGuards,
  createCapacityState,
  decideCapacity,
  leadWindowFactor,
  leadWindowsOf,
  makeCapacityPolicy,
  predictP99LatencyMs,
  settledUpCount,
  DEFAULT_LEAD_SCALING_POLICY,
  DEFAULT_SETTLE_POLICY,
} from "../../src/domain/capacity/index.ts";
import type { CapacityPolicy, TierColdStart } from "../../src/domain/capacity/index.ts";

const T0 = Date.UTC(2026, 2, 2, 12, 0, 0);
const TICK = 30_000;
const MIN = 60_000;
const policyOf = (enabled = true): CapacityPolicy =>
  makeCapacityPolicy({
    slo: { metric: "itl", targetP99Ms: 50 },
    minGpus: 2,
    maxGpus: 512,
    forecast: { enabled: false },
    leadScaling: { enabled },
  });

describe("leadWindowFactor", () => {
  const p = { ...DEFAULT_LEAD_SCALING_POLICY, enabled: true };
  const see = 1.5 * MIN;
  it.each([
    // lead (min), factor
    [6, 1],
    [7, 1],
    [30, 1],
    [4.5, (1.5 + 4.5) / 7.5],
    [2.5, (1.5 + 2.5) / 7.5],
    [1, (1.5 + 1) / 7.5],
    [0, p.minFactor > 1.5 / 7.5 ? p.minFactor : 1.5 / 7.5],
  ])("lead %f min -> factor %f", (leadMin, factor) => {
    expect(leadWindowFactor(leadMin * MIN, p, see)).toBeCloseTo(factor, 9);
  });
  it("is 1 when disabled or the lead is not finite, and never below minFactor", () => {
    expect(leadWindowFactor(MIN, { ...p, enabled: false }, see)).toBe(1);
    expect(leadWindowFactor(Number.NaN, p, see)).toBe(1);
    expect(leadWindowFactor(0, { ...p, minFactor: 0.5 }, 0)).toBe(0.5);
  });
  it("is monotone in the lead", () => {
    let last = 0;
    for (let lead = 0; lead <= 10 * MIN; lead += 5_000) {
      const f = leadWindowFactor(lead, p, see);
      expect(f).toBeGreaterThanOrEqual(last);
      last = f;
    }
  });
  it("scales the four policy windows together (the default lead leaves them as configured)", () => {
    const pol = policyOf();
    const d = leadWindowsOf(pol, 6 * MIN);
    expect(d).toEqual({
      factor: 1,
      scaleDownMs: pol.scaleDown.stabilizationWindowMs,
      fallingScaleDownMs: pol.trend.fallingScaleDownWindowMs,
      burstHoldMs: pol.burst.holdMs,
      settleMs: pol.settle.windowMs,
    });
    const s = leadWindowsOf(pol, 2.5 * MIN);
    expect(s.factor).toBeCloseTo(4 / 7.5, 9);
    expect(s.scaleDownMs).toBe(Math.round(10 * MIN * s.factor));
    expect(s.settleMs).toBe(Math.round(20 * MIN * s.factor));
    expect(s.burstHoldMs).toBe(Math.round(5 * MIN * s.factor));
  });
});

describe("settledUpCount with the window in force", () => {
  it("needs the shorter window covered and takes the highest record within it", () => {
    const recs = [
      { atMs: T0, value: 50 },
      { atMs: T0 + 5 * MIN, value: 40 },
      { atMs: T0 + 12 * MIN, value: 30 },
    ];
    const now = T0 + 15 * MIN;
    // The configured 20-min window is not covered yet.
    expect(settledUpCount(recs, now, DEFAULT_SETTLE_POLICY)).toBeUndefined();
    // A 10-min window is covered (by the record at 5 min) and its highest is 40, not the older 50.
    expect(settledUpCount(recs, now, DEFAULT_SETTLE_POLICY, 10 * MIN)).toBe(40);
  });
});

describe("the operator's no-undo window follows the lead", () => {
  it("holds a scale-up for one scaled window", () => {
    const policy = policyOf();
    const base = {
      desired: 40,
      reason: "SLOFeedback",
      message: "m",
      provisioned: 50,
      ready: 50,
      observedP99Ms: 30,
      metricsUsable: true,
      trackingSinceMs: T0 - 3_600_000,
      lastScaleUpMs: T0,
      readySinceMs: T0 - 3_600_000,
      minCount: 1,
      maxCount: 500,
      budgetCap: Number.POSITIVE_INFINITY,
      unit: { one: "GPU", many: "GPUs" },
    } as const;
    const at = T0 + 6 * MIN;
    expect(applyOperatorGuards(base, policy, at).desired).toBe(50);
    expect(applyOperatorGuards({ ...base, leadWindowFactor: 1 }, policy, at).desired).toBe(50);
    expect(applyOperatorGuards({ ...base, leadWindowFactor: 0.5 }, policy, at).desired).toBe(40);
    expect(applyOperatorGuards({ ...base, leadWindowFactor: 0.5 }, policy, T0 + 4 * MIN).desired).toBe(50);
  });
});

/**
 * Minutes from a 3x step down in load until the first scale-down, on instant capacity with the
 * latency the model predicts for the Ready count. `coldStartMs` (with tier "peer") is learned on
 * the first tick; undefined = nothing learned (the default lead).
 */
function minutesToRelease(p: CapacityPolicy, coldStartMs: number | undefined): number {
  let state = createCapacityState(p);
  let gpus = 8;
  const stepAt = T0 + 60 * MIN;
  const starts: TierColdStart[] =
    coldStartMs === undefined
      ? []
      : Array.from({ length: 5 }, () => ({ tier: "peer" as const, durationMs: coldStartMs }));
  for (let now = T0; now < stepAt + 60 * MIN; now += TICK) {
    const load = now < stepAt ? 60_000 : 20_000;
    const p99 = predictP99LatencyMs(p.latencyModel, {
      tokensPerSecond: load,
      gpuCount: gpus,
      balancedness: 0.85,
      crossNodeShare: 0.2,
    });
    const d = decideCapacity(
      {
        tokensPerSecond: load,
        metricsAtMs: now,
        observedP99Ms: Number.isFinite(p99) ? p99 : 5_000,
        provisionedGpus: gpus,
        readyGpus: gpus,
        balancedness: 0.85,
        crossNodeShare: 0.2,
        usdPerGpuHour: 2,
        ...(coldStartMs === undefined ? {} : { nextLoadTier: "peer" as const }),
        ...(now === T0 ? { coldStartsByTier: starts } : {}),
      },
      state,
      p,
      now,
    );
    state = d.nextState;
    if (now >= stepAt && d.desiredGpus < gpus) return (now - stepAt) / MIN;
    gpus = d.desiredGpus;
  }
  return Infinity;
}

describe("decideCapacity: the scale-down window follows the learned lead", () => {
  it("releases sooner after a fall with a 90-s learned cold start, as before with a 5-min one or none", () => {
    const on = policyOf(true);
    const off = policyOf(false);
    const none = minutesToRelease(on, undefined);
    const slow = minutesToRelease(on, 5 * MIN);
    const fast = minutesToRelease(on, 90_000);
    const fastOff = minutesToRelease(off, 90_000);
    // Nothing learned (default lead) and a lead at or above the reference: the configured windows.
    expect(slow).toBe(none);
    expect(Number.isFinite(none)).toBe(true);
    // The old code (leadScaling off) does not depend on the lead.
    expect(fastOff).toBe(none);
    // A 2.5-min lead (90 s p90 + 1 min margin): factor 4 / 7.5.
    expect(fast).toBeLessThan(none);
  });
});
