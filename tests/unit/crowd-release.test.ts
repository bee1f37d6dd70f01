// An isolated crowd's capacity is released one lead time after it; recurring bursts keep the
// 10-minute scale-down window (issue 14, round 7; src/domain/scaling/crowd.ts).
import { describe, expect, it } from "vitest";
import {
  createCapacityState,
  decideCapacity,
  makeCapacityPolicy,
  predictP99LatencyMs,
} from "../../src/domain/capacity/index.ts";
import type { CapacityPolicy } from "../../src/domain/capacity/index.ts";
import { nextBurstHistory } from "../../src/domain/scaling/crowd.ts";
import { DEFAULT_CROWD_RELEASE_POLICY } from "../../src/domain/scaling/crowd.ts";

const T0 = Date.UTC(2026, 2, 2, 12, 0, 0);
const TICK = 30_000;
const MIN = 60_000;
const policyOf = (enabled: boolean): CapacityPolicy =>
  makeCapacityPolicy({
    slo: { metric: "itl", targetP99Ms: 50 },
    minGpus: 2,
    maxGpus: 512,
    forecast: { enabled: false },
    crowd: { enabled },
  });

/**
 * Minutes from the crowd's end until the count is back under twice the pre-crowd count, on instant
 * capacity with the latency the model predicts for the Ready count. Steady 20k tok/s, a 10x crowd
 * for 5 minutes at `crowdAtMin`, optional 3x bursts of 1 minute at `burstsAtMin`.
 */
function minutesHeld(
  p: CapacityPolicy,
  crowdAtMin: number,
  burstsAtMin: readonly number[] = [],
  messages: string[] = [],
): number {
  const loadAt = (min: number): number => {
    if (min >= crowdAtMin && min < crowdAtMin + 5) return 200_000;
    if (burstsAtMin.some((b) => min >= b && min < b + 1)) return 60_000;
    return 20_000;
  };
  let state = createCapacityState(p);
  let gpus = 8;
  let before = 0;
  const startMs = T0 + crowdAtMin * MIN;
  const endMs = T0 + (crowdAtMin + 5) * MIN;
  for (let now = T0; now < endMs + 30 * MIN; now += TICK) {
    const load = loadAt((now - T0) / MIN);
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
      },
      state,
      p,
      now,
    );
    state = d.nextState;
    if (d.desiredGpus < gpus) messages.push(d.message);
    gpus = d.desiredGpus;
    if (now < startMs) before = gpus;
    else if (now >= endMs && gpus < 2 * before) return (now - endMs) / MIN;
  }
  return Infinity;
}

describe("isolated crowd release", () => {
  it("tells an isolated burst episode from a recurring one", () => {
    const p = DEFAULT_CROWD_RELEASE_POLICY;
    let h = nextBurstHistory(undefined, false, T0, 5 * MIN, p);
    // A burst before an hour was watched is not isolated (no evidence of quiet).
    expect(nextBurstHistory(h, true, T0 + 30 * MIN, 5 * MIN, p).isolated).toBe(false);
    h = nextBurstHistory(h, true, T0 + 70 * MIN, 5 * MIN, p);
    expect(h.isolated).toBe(true);
    // The same episode (ticks within the burst hold) stays isolated.
    h = nextBurstHistory(h, true, T0 + 73 * MIN, 5 * MIN, p);
    expect(h.isolated).toBe(true);
    // A new episode 20 minutes later is a recurrence.
    expect(nextBurstHistory(h, true, T0 + 93 * MIN, 5 * MIN, p).isolated).toBe(false);
  });

  it("an isolated 10x crowd's count comes down one lead time after it, not after the 10-min window", () => {
    const messages: string[] = [];
    const released = minutesHeld(policyOf(true), 80, [], messages);
    const held = minutesHeld(policyOf(false), 80);
    expect(held).toBeGreaterThanOrEqual(9);
    expect(released).toBeLessThan(held);
    // Not at once either: the burst hold (5 min) and the lead time still apply.
    expect(released).toBeGreaterThanOrEqual(5);
    expect(messages.some((m) => m.includes("after an isolated burst"))).toBe(true);
  });

  it("with bursts recurring in the hour before, the crowd's count is held as before", () => {
    const bursts = [50, 62, 70];
    expect(minutesHeld(policyOf(true), 80, bursts)).toBe(minutesHeld(policyOf(false), 80, bursts));
  });
});
