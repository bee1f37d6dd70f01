// Seeding the capacity history from a stored load series (issue 14, Build 3; round 5).
//
// The forecaster's table (a week of 10-minute buckets) lives in CapacityState, in memory: an
// operator restart lost it, and with it every pre-warm for the next two days (a recurring rise
// needs two days with data). The operator now replays the deployment's load from Prometheus
// (src/controllers/moedeployment/history-seed.ts) through this function once after it starts.
// Every point goes through the same per-sample screen as a live sample (quality.ts): collection
// gaps, uncorroborated outliers and out-of-range values are never learned, so a restart learns
// what a running operator would have learned from the same samples. Only the forecast is seeded:
// the calibration needs the Ready GPU count behind each latency sample, which the stored series
// does not carry.

import { observeLoadSample } from "../prewarm/forecast.ts";
import type { CapacityState, TimedValue } from "./decide.ts";
import type { CapacityPolicy } from "./policy.ts";
import { assessLoadSample, outOfRangeLimit } from "./quality.ts";
import type { LoadQualityState } from "./quality.ts";

export interface SeedResult {
  readonly state: CapacityState;
  /** Points the forecaster learned. */
  readonly learned: number;
  /** Points screened out (gap, outlier, out of range) or not finite, negative, out of order. */
  readonly skipped: number;
}

/**
 * The forecast of `state` after learning `points` (tokens/s, any order; duplicates and points not
 * after the forecaster's open bucket are skipped), screened as live samples are.
 */
export function seedForecastFromSeries(
  state: CapacityState,
  points: readonly TimedValue[],
  policy: CapacityPolicy,
  maxGpus: number,
): SeedResult {
  const limit = outOfRangeLimit(maxGpus, policy.latencyModel.tokensPerSecondPerGpu, policy.loadQuality);
  const sorted = points
    .filter((p) => Number.isFinite(p.atMs) && Number.isFinite(p.value) && p.value >= 0)
    .sort((a, b) => a.atMs - b.atMs);
  let forecast = state.forecast;
  let quality: LoadQualityState = {};
  const accepted: TimedValue[] = [];
  let learned = 0;
  let lastAtMs = Number.NEGATIVE_INFINITY;
  for (const p of sorted) {
    if (!(p.atMs > lastAtMs)) continue;
    lastAtMs = p.atMs;
    while (accepted.length > 0 && (accepted[0] as TimedValue).atMs <= p.atMs - policy.loadQuality.windowMs)
      accepted.shift();
    const a = assessLoadSample(p, accepted, quality, limit, policy.loadQuality);
    quality = a.nextState;
    if (a.verdict.kind !== "ok") continue;
    accepted.push(p);
    if (!a.verdict.learn) continue;
    forecast = observeLoadSample(forecast, p.atMs, p.value, policy.forecast.options);
    learned++;
  }
  return { state: { ...state, forecast }, learned, skipped: points.length - learned };
}
