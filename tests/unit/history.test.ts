import { describe, expect, it } from "vitest";
import {
  contiguousHistoryFromMs,
  createCapacityState,
  decideCapacity,
  makeCapacityPolicy,
} from "../../src/domain/capacity/index.ts";
import type { CapacityDecision } from "../../src/domain/capacity/index.ts";

const T0 = Date.UTC(2026, 2, 2, 12, 0, 0);
const TICK = 15_000;
const MIN = 60_000;

describe("one history: samples further apart than the staleness limit are not one series", () => {
  it("starts the history after the last hole longer than the limit", () => {
    const s = [0, 1, 2, 3, 20, 21, 22].map((m) => ({ atMs: T0 + m * MIN, value: 1 }));
    expect(contiguousHistoryFromMs(s, 2 * MIN)).toBe(T0 + 20 * MIN);
    expect(contiguousHistoryFromMs(s, 17 * MIN)).toBe(T0);
    expect(contiguousHistoryFromMs([], 2 * MIN)).toBeUndefined();
  });

  it("after a collection gap, traffic coming back is not extrapolated as a ramp", () => {
    const policy = makeCapacityPolicy({
      slo: { metric: "itl", targetP99Ms: 50 },
      minGpus: 2,
      maxGpus: 512,
      forecast: { enabled: false },
    });
    let state = createCapacityState(policy);
    let gpus = 60;
    const decide = (atMs: number, load: number): CapacityDecision => {
      const d = decideCapacity(
        {
          tokensPerSecond: load,
          metricsAtMs: atMs,
          provisionedGpus: gpus,
          readyGpus: gpus,
          balancedness: 0.85,
          crossNodeShare: 0.2,
          usdPerGpuHour: 2,
          observedP99Ms: 35,
        },
        state,
        policy,
        atMs,
      );
      state = d.nextState;
      gpus = d.desiredGpus;
      return d;
    };
    // 40 minutes of steady traffic, then a 2-h collection gap (zeros: held as MetricsGap).
    let t = T0;
    for (; t < T0 + 40 * MIN; t += TICK) decide(t, 40_000);
    const settled = gpus;
    for (; t < T0 + 160 * MIN; t += TICK) expect(decide(t, 0).reason).toBe("MetricsGap");
    // Traffic back: partial first windows (the rate windows straddle the gap's end), then the full rate.
    const ret = [4_000, 20_000, 36_000];
    const back: CapacityDecision[] = [];
    for (let k = 0; k < 16; k++) back.push(decide(t + k * TICK, ret[k] ?? 40_000));
    // The jump from the partial window to the full rate is no trend to carry over the lead time.
    expect(back.every((d) => d.signals.trendTokensPerSecond === undefined)).toBe(true);
    expect(Math.max(...back.map((d) => d.desiredGpus))).toBeLessThanOrEqual(settled);
  });
});
