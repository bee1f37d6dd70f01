import { describe, expect, it } from "vitest";
import {
  apiReasonOf,
  createCapacityState,
  decideCapacity,
  decideShardCount,
  DEFAULT_CAPACITY_SIGNALS,
  isMetricsHold,
  makeCapacityPolicy,
  prewarmApiReasonOf,
  REASON_TABLE,
} from "../../src/domain/capacity/index.ts";
import type { CapacityInput, CapacityState } from "../../src/domain/capacity/index.ts";
import { fixedFloorSignal, fixedMinimumSignal } from "../support/fixed-floor-signal.ts";

const T0 = Date.UTC(2026, 2, 2, 12, 0, 0);
const policy = makeCapacityPolicy({
  slo: { metric: "itl", targetP99Ms: 50 },
  minGpus: 2,
  maxGpus: 64,
  forecast: { enabled: false },
  scaleUp: { maxStepGpus: 64 },
});
const input = (nowMs: number, gpus: number): CapacityInput => ({
  tokensPerSecond: 5_000,
  metricsAtMs: nowMs,
  provisionedGpus: gpus,
  readyGpus: gpus,
  balancedness: 0.9,
  crossNodeShare: 0.1,
  usdPerGpuHour: 2,
});

describe("capacity-signal registry", () => {
  it("a signal added in one file with one registration line sets the count and names its reason", () => {
    const signals = [...DEFAULT_CAPACITY_SIGNALS, fixedFloorSignal(40, 3)];
    let state: CapacityState = createCapacityState(policy);
    let gpus = 4;
    const reasons: string[] = [];
    for (let i = 0; i < 4; i++) {
      const now = T0 + i * 15_000;
      const d = decideCapacity(input(now, gpus), state, policy, now, signals);
      reasons.push(d.reason);
      state = d.nextState;
      gpus = d.desiredGpus;
    }
    // Three samples counted in the signal's own state, then its floor wins with its reason.
    expect(state.signalStates?.["fixed-floor"]).toBe(4);
    expect(reasons.slice(0, 3)).not.toContain("FixedFloor");
    expect(reasons[3]).toBe("FixedFloor");
    expect(gpus).toBe(40);
    expect(apiReasonOf("FixedFloor", signals)).toBe("FixedFloorReached");
    // The registry is the only change: without the signal the last tick keeps the SLO's count.
    const last = T0 + 3 * 15_000;
    const without = decideCapacity(input(last, 4), createCapacityState(policy), policy, last, DEFAULT_CAPACITY_SIGNALS);
    expect(without.reason).not.toBe("FixedFloor");
    expect(without.desiredGpus).toBeLessThan(40);
    expect(without.nextState.signalStates).toBeUndefined();
  });

  it("wins through decideShardCount (the operator's and the simulator's count) too", () => {
    const signals = [...DEFAULT_CAPACITY_SIGNALS, fixedFloorSignal(30, 0)];
    const now = T0;
    const count = decideShardCount(
      {
        capacity: input(now, 4),
        state: createCapacityState(policy),
        trackingSinceMs: now,
        lastScaleUpMs: undefined,
        readySinceMs: undefined,
      },
      { capacity: policy, minCount: 2, maxCount: 64, unit: { one: "GPU", many: "GPUs" }, signals },
      now,
    );
    expect(count.reason).toBe("FixedFloor");
    expect(count.desired).toBe(30);
    expect(count.message).toContain("fixed floor of 30 GPUs");
  });
});

describe("floor signals", () => {
  it("a floor signal added with one registration line binds after stabilisation, also while holding on missing metrics", () => {
    const signals = [...DEFAULT_CAPACITY_SIGNALS, fixedMinimumSignal(24)];
    const held = decideCapacity(
      { ...input(T0, 4), tokensPerSecond: undefined },
      createCapacityState(policy),
      policy,
      T0,
      signals,
    );
    expect(held.desiredGpus).toBe(24);
    expect(held.reason).toBe("FixedMinimum");
    expect(held.message).toMatch(/^fixed minimum of 24 GPUs; holding at 4 GPUs: load metrics are missing/);
    expect(apiReasonOf("FixedMinimum", signals)).toBe("FixedMinimumHeld");
  });
});

describe("reason table", () => {
  it("maps the capacity reasons to the API reasons the status reports", () => {
    expect(apiReasonOf("SLOFeedback")).toBe("SLOTarget");
    expect(apiReasonOf("Burst")).toBe("BurstDetected");
    expect(apiReasonOf("BudgetCapped")).toBe("CappedByBudget");
    expect(apiReasonOf("AtMinGpus")).toBe("BoundsChanged");
    expect(apiReasonOf("StabilizingScaleDown")).toBe("StabilizingScaleDown");
    expect(prewarmApiReasonOf("ScheduledPrewarm")).toBe("ScheduledWindow");
    expect(prewarmApiReasonOf("SLOFeedback")).toBeUndefined();
  });

  it("knows which reasons are holds on bad data, and nothing else is", () => {
    const holds = Object.keys(REASON_TABLE).filter(isMetricsHold).sort();
    expect(holds).toEqual([
      "LowConfidenceMetrics",
      "MetricsGap",
      "MissingMetrics",
      "OutOfRangeMetrics",
      "OutlierMetrics",
      "StaleMetrics",
    ]);
    expect(isMetricsHold("toString")).toBe(false);
  });
});
