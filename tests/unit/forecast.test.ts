import { describe, expect, it } from "vitest";
import { createRng } from "../../src/domain/rng.ts";
import {
  createForecastState,
  DEFAULT_FORECAST_OPTIONS,
  forecastLoad,
  observeLoadSample,
  observeLoadSeries,
  recurringRiseRatio,
} from "../../src/domain/prewarm/index.ts";
import type { ForecastState } from "../../src/domain/prewarm/index.ts";

const BUCKET = DEFAULT_FORECAST_OPTIONS.bucketMs;
const DAY = 86_400_000;
// Monday 2026-01-05 00:00 UTC.
const T0 = Date.UTC(2026, 0, 5);

/** Diurnal (peak/trough ~1.45 like ServeGen) x weekly (weekend at 65 %) x slow trend x 6 % noise. */
function truth(t: number): number {
  const hour = ((t - T0) % DAY) / 3_600_000;
  const day = Math.floor((t - T0) / DAY);
  const diurnal = 1 + 0.185 * Math.sin(((hour - 8) / 24) * 2 * Math.PI);
  const weekend = day % 7 >= 5 ? 0.65 : 1;
  const trend = 1 + 0.002 * day;
  return 20_000 * diurnal * weekend * trend;
}

function series(fromMs: number, toMs: number, seed: number): { atMs: number; tokensPerSecond: number }[] {
  const rng = createRng(seed);
  const out: { atMs: number; tokensPerSecond: number }[] = [];
  for (let t = fromMs; t < toMs; t += BUCKET)
    out.push({ atMs: t, tokensPerSecond: truth(t) * Math.exp(0.06 * rng.normal()) });
  return out;
}

describe("load forecaster (double-seasonal Holt-Winters)", () => {
  const train = series(T0, T0 + 21 * DAY, 1);
  const test = series(T0 + 21 * DAY, T0 + 28 * DAY, 2);
  const trained = observeLoadSeries(createForecastState(), train);

  it("forecasts a diurnal + weekly series one lead time ahead with calibrated error bands", () => {
    let s: ForecastState = trained;
    let absErr = 0;
    let covered = 0;
    let naiveAbsErr = 0;
    let widthSum = 0;
    let prev = train[train.length - 1]!.tokensPerSecond;
    // Replay week 4 and forecast each bucket 2 buckets (20 min) before it is observed.
    for (let i = 0; i < test.length; i++) {
      const p = test[i]!;
      const f = forecastLoad(s, p.atMs + BUCKET, 1.96);
      const target = test[i + 1];
      if (f !== undefined && target !== undefined) {
        expect(f.seasonal).toBe(true);
        expect(f.lowerTokensPerSecond).toBeLessThan(f.expectedTokensPerSecond);
        expect(f.upperTokensPerSecond).toBeGreaterThan(f.expectedTokensPerSecond);
        absErr += Math.abs(f.expectedTokensPerSecond - target.tokensPerSecond) / target.tokensPerSecond;
        naiveAbsErr += Math.abs(prev - target.tokensPerSecond) / target.tokensPerSecond;
        if (target.tokensPerSecond >= f.lowerTokensPerSecond && target.tokensPerSecond <= f.upperTokensPerSecond)
          covered++;
        widthSum += (f.upperTokensPerSecond - f.lowerTokensPerSecond) / f.expectedTokensPerSecond;
      }
      prev = p.tokensPerSecond;
      s = observeLoadSample(s, p.atMs, p.tokensPerSecond);
    }
    const n = test.length - 1;
    const mape = absErr / n;
    const coverage = covered / n;
    expect(mape).toBeLessThan(0.07); // noise alone is ~5 %
    expect(mape).toBeLessThan(naiveAbsErr / n); // beats "same as the last bucket"
    expect(coverage).toBeGreaterThan(0.85); // nominal 95 % band
    expect(widthSum / n).toBeLessThan(0.5); // and the band is not uselessly wide
  });

  it("learns weekly seasonality: Friday night forecasts Saturday noon at the weekend level", () => {
    // Train through Friday 23:50 of week 4.
    const fridayEnd = T0 + 26 * DAY;
    const s = observeLoadSeries(trained, series(T0 + 21 * DAY, fridayEnd, 3));
    const saturdayNoon = fridayEnd + 12 * 3_600_000;
    const f = forecastLoad(s, saturdayNoon, 1.96)!;
    const actual = truth(saturdayNoon);
    const fridayNoon = truth(saturdayNoon - DAY);
    expect(Math.abs(f.expectedTokensPerSecond - actual) / actual).toBeLessThan(0.12);
    // A model without weekly seasonality would predict Friday's level, 35 % too high.
    expect(Math.abs(fridayNoon - actual) / actual).toBeGreaterThan(0.4);
    expect(f.upperTokensPerSecond).toBeGreaterThan(actual);
  });

  it("falls back to a wide-band running mean during the first day and is undefined with no data", () => {
    expect(forecastLoad(createForecastState(), T0, 1.96)).toBeUndefined();
    const s = observeLoadSeries(createForecastState(), series(T0, T0 + 3 * 3_600_000, 4));
    const f = forecastLoad(s, T0 + 4 * 3_600_000, 1.96)!;
    expect(f.seasonal).toBe(false);
    expect(f.relativeStdDev).toBeGreaterThanOrEqual(0.5);
  });

  it("averages samples inside a bucket, tolerates gaps and survives a JSON round trip", () => {
    let s = createForecastState();
    for (let t = T0; t < T0 + 2 * DAY; t += 15_000) {
      if (t > T0 + DAY + 3_600_000 && t < T0 + DAY + 5 * 3_600_000) continue; // 4 h outage
      s = observeLoadSample(s, t, truth(t));
    }
    s = JSON.parse(JSON.stringify(s)) as ForecastState;
    const at = T0 + 2 * DAY + 6 * 3_600_000;
    const f = forecastLoad(s, at, 1.96)!;
    expect(f.seasonal).toBe(true);
    expect(Math.abs(f.expectedTokensPerSecond - truth(at)) / truth(at)).toBeLessThan(0.15);
  });
});

describe("recurring rise (anchored pre-warm)", () => {
  // 3 days of 10-minute buckets at 10k tok/s, with a 2x window at 09:00-10:00 every day and a
  // one-off 3x burst at 15:00 on the last day only.
  const windowAt = (t: number) => ((t - T0) % DAY) / 3_600_000 >= 9 && ((t - T0) % DAY) / 3_600_000 < 10;
  const oneOff = (t: number) => t >= T0 + 2 * DAY + 15 * 3_600_000 && t < T0 + 2 * DAY + 16 * 3_600_000;
  const points: { atMs: number; tokensPerSecond: number }[] = [];
  for (let t = T0; t < T0 + 3 * DAY + BUCKET; t += BUCKET)
    points.push({ atMs: t, tokensPerSecond: 10_000 * (windowAt(t) ? 2 : 1) * (oneOff(t) ? 3 : 1) });
  const s = observeLoadSeries(createForecastState(), points);
  const day3 = T0 + 3 * DAY;
  const lead = 7 * 60_000;

  it("sees a rise that recurred on each of the last days, one lead time ahead", () => {
    const now = day3 + 8 * 3_600_000 + 55 * 60_000; // 08:55: the window opens within the lead time
    expect(recurringRiseRatio(s, now - 3 * 60_000, now, now, now + lead + BUCKET, 2)).toBeCloseTo(2, 6);
    // 09:02, with a measurement that still covers 08:59: the rise is not yet in the measurement.
    const open = day3 + 9 * 3_600_000 + 2 * 60_000;
    expect(recurringRiseRatio(s, open - 3 * 60_000, open, open, open + lead + BUCKET, 2)).toBeCloseTo(2, 6);
    // Far from the window: no rise.
    const noon = day3 + 12 * 3_600_000;
    expect(recurringRiseRatio(s, noon - 3 * 60_000, noon, noon, noon + lead + BUCKET, 2)).toBeCloseTo(1, 6);
  });

  it("ignores a one-off burst that only yesterday had, unless asked about yesterday alone", () => {
    const now = day3 + 14 * 3_600_000 + 55 * 60_000; // 14:55, yesterday's burst began at 15:00
    expect(recurringRiseRatio(s, now - 3 * 60_000, now, now, now + lead + BUCKET, 1)).toBeCloseTo(3, 6);
    expect(recurringRiseRatio(s, now - 3 * 60_000, now, now, now + lead + BUCKET, 2)).toBeCloseTo(1, 6);
  });

  it("is undefined without history for those days", () => {
    expect(
      recurringRiseRatio(createForecastState(), day3 - 60_000, day3, day3, day3 + lead + BUCKET, 1),
    ).toBeUndefined();
    expect(recurringRiseRatio(s, day3 - 60_000, day3, day3, day3 + lead + BUCKET, 0)).toBeUndefined();
  });
});
