import { describe, expect, it } from "vitest";
import { createCapacityState, decideCapacity, makeCapacityPolicy } from "../../src/domain/capacity/index.ts";
import { createForecastState, DEFAULT_FORECAST_OPTIONS, observeLoadSeries } from "../../src/domain/prewarm/index.ts";

const BUCKET = DEFAULT_FORECAST_OPTIONS.bucketMs;
const DAY = 86_400_000;
const HOUR = 3_600_000;
const T0 = Date.UTC(2026, 0, 5);
const policy = makeCapacityPolicy({ slo: { metric: "itl", targetP99Ms: 50 }, minGpus: 2, maxGpus: 256 });

/** The forecast's ask at 14:55 on day `days` after `days` learned days with a 3x hour at 15:00 on the listed days. */
function forecastAskAt1455(days: number, riseOnDays: readonly number[]): number {
  const points: { atMs: number; tokensPerSecond: number }[] = [];
  for (let t = T0; t < T0 + days * DAY + 15 * HOUR; t += BUCKET) {
    const day = Math.floor((t - T0) / DAY);
    const h = ((t - T0) % DAY) / HOUR;
    points.push({ atMs: t, tokensPerSecond: 10_000 * (riseOnDays.includes(day) && h >= 15 && h < 16 ? 3 : 1) });
  }
  const now = T0 + days * DAY + 14 * HOUR + 55 * 60_000;
  const learned = observeLoadSeries(
    createForecastState(policy.forecast.options),
    points.filter((p) => p.atMs < now - BUCKET),
  );
  const state = { ...createCapacityState(policy), forecast: learned };
  const d = decideCapacity(
    {
      tokensPerSecond: 10_000,
      metricsAtMs: now,
      provisionedGpus: 20,
      readyGpus: 20,
      balancedness: 0.85,
      crossNodeShare: 0.2,
      usdPerGpuHour: 2,
    },
    state,
    policy,
    now,
  );
  return d.signals.forecastGpus;
}

describe("forecast: a rise seen on one day is no recurrence", () => {
  it("asks nothing on the second day for a rise only the first day had", () => {
    expect(forecastAskAt1455(1, [0])).toBe(0);
  });

  it("still pre-warms a rise that recurred on two days", () => {
    expect(forecastAskAt1455(2, [0, 1])).toBeGreaterThan(0);
  });
});
