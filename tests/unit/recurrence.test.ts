import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { createCapacityState, decideCapacity, makeCapacityPolicy } from "../../src/domain/capacity/index.ts";
import {
  createForecastState,
  dayShapeError,
  DEFAULT_FORECAST_OPTIONS,
  MAX_ONE_DAY_SHAPE_ERROR,
  observeLoadSeries,
  SHAPE_TRACK_WINDOW_MS,
} from "../../src/domain/prewarm/index.ts";
import { createRng } from "../../src/domain/rng.ts";

const BUCKET = DEFAULT_FORECAST_OPTIONS.bucketMs;
const DAY = 86_400_000;
const HOUR = 3_600_000;
const T0 = Date.UTC(2026, 0, 5);
const policy = makeCapacityPolicy({ slo: { metric: "itl", targetP99Ms: 50 }, minGpus: 2, maxGpus: 256 });

/** Flat 10k tok/s days (times `shape(day, bucket)`), with a 3x hour at 15:00 on the listed days. */
function history(
  days: number,
  riseOnDays: readonly number[],
  shape: (day: number, bucket: number) => number = () => 1,
): { atMs: number; tokensPerSecond: number }[] {
  const points: { atMs: number; tokensPerSecond: number }[] = [];
  for (let t = T0; t < T0 + days * DAY + 15 * HOUR; t += BUCKET) {
    const day = Math.floor((t - T0) / DAY);
    const h = ((t - T0) % DAY) / HOUR;
    const rise = riseOnDays.includes(day) && h >= 15 && h < 16 ? 3 : 1;
    points.push({ atMs: t, tokensPerSecond: 10_000 * rise * shape(day, Math.round((t - T0) / BUCKET)) });
  }
  return points;
}

const NOW = (days: number) => T0 + days * DAY + 14 * HOUR + 55 * 60_000;

/** The forecast's decision at 14:55 on day `days` after `days` learned days. */
function decisionAt1455(days: number, riseOnDays: readonly number[], shape?: (day: number, bucket: number) => number) {
  const now = NOW(days);
  const learned = observeLoadSeries(
    createForecastState(policy.forecast.options),
    history(days, riseOnDays, shape).filter((p) => p.atMs < now - BUCKET),
  );
  // The learned ceiling a running deployment would have from the day with the rise (3x the load).
  const state = {
    ...createCapacityState(policy),
    forecast: learned,
    peakEvidence: { atMs: now - 4 * HOUR, value: 40 },
  };
  return decideCapacity(
    {
      tokensPerSecond: 10_000,
      metricsAtMs: now,
      provisionedGpus: 9,
      readyGpus: 9,
      balancedness: 0.85,
      crossNodeShare: 0.2,
      usdPerGpuHour: 2,
    },
    state,
    policy,
    now,
  );
}

/** Bucket-by-bucket noise of relative size `sd`, different on every day (seeded). */
function noisyDays(sd: number): (day: number, bucket: number) => number {
  const cache = new Map<number, number>();
  const rng = createRng(42);
  return (_day, bucket) => {
    let v = cache.get(bucket);
    if (v === undefined) {
      v = Math.max(0.2, 1 + sd * rng.normal());
      cache.set(bucket, v);
    }
    return v;
  };
}

describe("forecast: a rise seen on one day is no recurrence unless the days repeat", () => {
  it("asks nothing on the second day for a rise only the first day had, when the days' profiles differ", () => {
    // 25 % bucket noise: the first day's profile does not track the second's (ServeGen's first two
    // days differ by 14 % and more at the 80th percentile).
    expect(decisionAt1455(1, [0], noisyDays(0.25)).signals.forecastGpus).toBe(0);
  });

  it("pre-warms a one-day rise when that day's profile tracked today's, capped at 2x, and says why", () => {
    const d = decisionAt1455(1, [0]);
    expect(d.signals.forecastGpus).toBeGreaterThan(0);
    // The rise is 3x, the one-day cap 2x: the forecast load is 2 x 10k (times the headroom).
    expect(d.signals.forecastTokensPerSecond).toBeCloseTo(20_000, 0);
    expect(d.reason).toBe("ForecastPrewarm");
    expect(d.message).toMatch(
      /came at this time on the last day with data, whose profile matched today's within 0.0 % over the last 6 h/,
    );
  });

  it("a rise that recurred on two days is not capped, and its reason names the days", () => {
    const d = decisionAt1455(2, [0, 1], noisyDays(0.25));
    expect(d.signals.forecastGpus).toBeGreaterThan(0);
    expect(d.signals.forecastTokensPerSecond ?? 0).toBeGreaterThan(25_000);
    expect(d.reason).toBe("ForecastPrewarm");
    expect(d.message).toMatch(/recurred at this time on each of the last 2 day\(s\) with data/);
  });
});

const learn = (shape: (day: number, bucket: number) => number) =>
  observeLoadSeries(
    createForecastState(policy.forecast.options),
    history(1, [], shape).filter((p) => p.atMs < NOW(1) - BUCKET),
  );

describe("dayShapeError", () => {
  it("is 0 for a day that is a uniformly busier copy of the day before (the level does not count)", () => {
    const e = dayShapeError(
      learn((day) => (day === 1 ? 1.7 : 1)),
      NOW(1),
      SHAPE_TRACK_WINDOW_MS,
      policy.forecast.options,
    );
    expect(e).toBeDefined();
    expect(e!.error).toBeCloseTo(0, 9);
    expect(e!.buckets).toBeGreaterThanOrEqual(0.7 * (SHAPE_TRACK_WINDOW_MS / BUCKET));
  });

  it("ignores a one-off burst in a fifth of the buckets, not more", () => {
    const burst = (share: number) => (day: number, bucket: number) =>
      day === 1 && bucket % 36 < Math.round(share * 36) ? 2 : 1;
    const few = dayShapeError(learn(burst(0.15)), NOW(1), SHAPE_TRACK_WINDOW_MS, policy.forecast.options);
    const many = dayShapeError(learn(burst(0.3)), NOW(1), SHAPE_TRACK_WINDOW_MS, policy.forecast.options);
    expect(few!.error).toBeLessThanOrEqual(MAX_ONE_DAY_SHAPE_ERROR);
    expect(many!.error).toBeGreaterThan(MAX_ONE_DAY_SHAPE_ERROR);
  });

  it("is undefined when the day before has no data for most of the window (a collection gap)", () => {
    const state = observeLoadSeries(
      createForecastState(policy.forecast.options),
      history(1, []).filter(
        (p) => p.atMs < NOW(1) - BUCKET && !(p.atMs >= NOW(0) - 5 * HOUR && p.atMs < NOW(0) + HOUR),
      ),
    );
    expect(dayShapeError(state, NOW(1), SHAPE_TRACK_WINDOW_MS, policy.forecast.options)).toBeUndefined();
  });
});

describe("properties of the one-day rule", () => {
  it("the shape error does not depend on either day's level", () => {
    fc.assert(
      fc.property(
        fc.double({ min: 0.2, max: 5, noNaN: true }),
        fc.double({ min: 0.2, max: 5, noNaN: true }),
        (before, today) => {
          const noise = noisyDays(0.1);
          const shaped = (c0: number, c1: number) => (day: number, bucket: number) =>
            (day === 1 ? c1 : c0) * noise(day, bucket);
          const e1 = dayShapeError(learn(shaped(1, 1)), NOW(1), SHAPE_TRACK_WINDOW_MS, policy.forecast.options);
          const e2 = dayShapeError(
            learn(shaped(before, today)),
            NOW(1),
            SHAPE_TRACK_WINDOW_MS,
            policy.forecast.options,
          );
          expect(e2!.error).toBeCloseTo(e1!.error, 9);
        },
      ),
      { numRuns: 30 },
    );
  });

  it("with one day known, the forecast never asks for more than 2x the load now, whatever the rise", () => {
    fc.assert(
      fc.property(fc.double({ min: 1.2, max: 20, noNaN: true }), (rise) => {
        const d = decisionAt1455(1, [0], (day, bucket) => {
          const h = ((bucket * BUCKET) % DAY) / HOUR;
          return day === 0 && h >= 15 && h < 16 ? rise / 3 : 1;
        });
        expect(d.signals.forecastTokensPerSecond ?? 0).toBeLessThanOrEqual(2 * 10_000 * (1 + 1e-9));
      }),
      { numRuns: 25 },
    );
  });
});
