import { describe, expect, it } from "vitest";
import {
  createForecastState,
  DEFAULT_FORECAST_OPTIONS,
  forecastLoad,
  observeLoadSample,
  observeLoadSeries,
} from "../../src/domain/prewarm/index.ts";
import type { ForecastState } from "../../src/domain/prewarm/index.ts";

function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
function gaussian(next: () => number): number {
  const u = Math.max(next(), 1e-12);
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * next());
}

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
  const next = rng(seed);
  const out: { atMs: number; tokensPerSecond: number }[] = [];
  for (let t = fromMs; t < toMs; t += BUCKET) out.push({ atMs: t, tokensPerSecond: truth(t) * Math.exp(0.06 * gaussian(next)) });
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
        if (target.tokensPerSecond >= f.lowerTokensPerSecond && target.tokensPerSecond <= f.upperTokensPerSecond) covered++;
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
