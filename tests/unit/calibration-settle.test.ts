// The latency calibration learns a p99 by the SLO feedback's rule (ADR 0003, "When the operator's SLO
// feedback trusts the p99"): judged at the p99's own sample time, from the later of the policy's last
// Ready count change and the units' last Ready or in-place move (CapacityInput.readySinceMs).
import { describe, expect, it } from "vitest";
import { createCapacityState, decideCapacity, makeCapacityPolicy } from "../../src/domain/capacity/index.ts";
import type { CapacityInput, CapacityState } from "../../src/domain/capacity/index.ts";
import { policyFromSpec } from "../../src/controllers/moedeployment/policy.ts";
import { parseMoEDeployment } from "../../src/api/index.ts";
import { testMoEDeployment } from "../support/moe-fixtures.ts";

const T0 = Date.UTC(2026, 11, 7, 12);
const S = 1000;
const policy = makeCapacityPolicy({
  slo: { metric: "itl", targetP99Ms: 50 },
  minGpus: 2,
  maxGpus: 256,
  stableWindowMs: 15 * S,
  calibrationSettleMs: 21 * S,
});

function input(nowMs: number, over: Partial<CapacityInput> = {}): CapacityInput {
  return {
    tokensPerSecond: 20_000,
    metricsAtMs: nowMs,
    // Far above the model's prediction: a learned observation moves the calibration.
    observedP99Ms: 45,
    provisionedGpus: 24,
    readyGpus: 24,
    balancedness: 0.85,
    crossNodeShare: 0.2,
    usdPerGpuHour: 2,
    ...over,
  };
}

/** The state after 60 s at 24 Ready GPUs without a p99 (the count is long settled). */
function settledState(): CapacityState {
  let state = createCapacityState(policy);
  for (let t = T0 - 60 * S; t < T0; t += 5 * S)
    state = decideCapacity(input(t, { observedP99Ms: undefined }), state, policy, t).nextState;
  return state;
}

const learns = (over: Partial<CapacityInput>): boolean => {
  const before = settledState();
  const after = decideCapacity(input(T0, over), before, policy, T0).nextState;
  return after.calibration !== before.calibration;
};

describe("calibration settle", () => {
  it("learns once the Ready count has been stable for calibrationSettleMs and nothing moved", () => {
    expect(learns({})).toBe(true);
    expect(learns({ readySinceMs: T0 - 30 * S })).toBe(true);
  });

  it("does not learn a p99 sampled within calibrationSettleMs of the units' last Ready or in-place move", () => {
    // The Ready count did not change (a move, or a replacement in the same tick), but the p99 window
    // still holds the move's stalls.
    expect(learns({ readySinceMs: T0 - 10 * S })).toBe(false);
  });

  it("judges a kept reading by its own sample time", () => {
    // 30 s since the move at decision time, but the reading was sampled 15 s after it.
    expect(learns({ readySinceMs: T0 - 30 * S, observedP99AtMs: T0 - 15 * S })).toBe(false);
    expect(learns({ readySinceMs: T0 - 30 * S, observedP99AtMs: T0 - 5 * S })).toBe(true);
  });
});

describe("the operator's calibration settle", () => {
  it("is one stable window plus the feedback's warm-up (the feedback's wait), not the simulator's 2 minutes", () => {
    const r = parseMoEDeployment(testMoEDeployment("d", "default", {}));
    if (!r.ok) throw new Error("fixture");
    const p = policyFromSpec(r.value.spec, { reconcileIntervalMs: 5000 }).capacity;
    expect(p.calibrationSettleMs).toBe(p.stableWindowMs + p.feedbackWarmupMs);
    expect(p.feedbackWarmupMs).toBe(6000);
    expect(
      makeCapacityPolicy({ slo: { metric: "itl", targetP99Ms: 50 }, minGpus: 1, maxGpus: 8 }).calibrationSettleMs,
    ).toBe(120_000);
  });
});
