import { describe, expect, it } from "vitest";
import { createCapacityState, decideCapacity, makeCapacityPolicy } from "../../src/domain/capacity/index.ts";
import type { CapacityDecision } from "../../src/domain/capacity/index.ts";
import { createForecastState, DEFAULT_FORECAST_OPTIONS, observeLoadSeries } from "../../src/domain/prewarm/index.ts";

const BUCKET = DEFAULT_FORECAST_OPTIONS.bucketMs;
const DAY = 86_400_000;
const HOUR = 3_600_000;
const T0 = Date.UTC(2026, 0, 5);
const policy = makeCapacityPolicy({ slo: { metric: "itl", targetP99Ms: 50 }, minGpus: 2, maxGpus: 512 });

/** The decision at 14:55 on the third day, a 2x hour at 15:00 on both days before, with anticipation errors of `error` x. */
function at1455(error: number): CapacityDecision {
  const points: { atMs: number; tokensPerSecond: number }[] = [];
  for (let t = T0; t < T0 + 2 * DAY + 15 * HOUR; t += BUCKET) {
    const h = ((t - T0) % DAY) / HOUR;
    points.push({ atMs: t, tokensPerSecond: 20_000 * (h >= 15 && h < 16 ? 2 : 1) });
  }
  const now = T0 + 2 * DAY + 14 * HOUR + 55 * 60_000;
  const forecast = observeLoadSeries(
    createForecastState(policy.forecast.options),
    points.filter((p) => p.atMs < now - BUCKET),
  );
  // Forty scored anticipations, each `error` x under the load one lead time later.
  const predictionErrors = Array.from({ length: 40 }, (_, i) => ({ atMs: now - i * 15_000, value: Math.log(error) }));
  return decideCapacity(
    {
      tokensPerSecond: 20_000,
      metricsAtMs: now,
      provisionedGpus: 40,
      readyGpus: 40,
      balancedness: 0.85,
      crossNodeShare: 0.2,
      usdPerGpuHour: 2,
    },
    // A peak evidence well above (yesterday's 2x hour needed more than now): the learned ceiling does not bind.
    { ...createCapacityState(policy), forecast, predictionErrors, peakEvidence: { atMs: now - HOUR, value: 100 } },
    policy,
    now,
  );
}

describe("forecast pre-warm carries the anticipation headroom", () => {
  it("sizes the recurring rise's load with the same headroom as the SLO count", () => {
    const exact = at1455(1);
    const under = at1455(1.15);
    expect(exact.signals.headroom).toBe(1);
    expect(under.signals.headroom).toBeCloseTo(1.15, 6);
    // The same forecast load, a larger pre-warm: the forecast is a point estimate, as the trend is.
    expect(under.signals.forecastTokensPerSecond).toBe(exact.signals.forecastTokensPerSecond);
    expect(exact.signals.forecastGpus).toBeGreaterThan(0);
    expect(under.signals.forecastGpus).toBeGreaterThan(exact.signals.forecastGpus);
  });
});
