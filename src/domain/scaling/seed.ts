// Seeding the capacity history from a stored load series (issue 14, Build 3; round 5).
//
// The forecaster's table (a week of 10-minute buckets) lives in CapacityState, in memory: an
// operator restart lost it, and with it every pre-warm for the next two days (a recurring rise
// needs two days with data). The operator now replays the deployment's load from Prometheus
// (src/controllers/moedeployment/history-seed.ts) through this function once after it starts.
// Every point goes through the same per-sample screen as a live sample (quality.ts): collection
// gaps, uncorroborated outliers and out-of-range values are never learned, so a restart learns
// what a running operator would have learned from the same samples.
//
// The latency calibration (round 6) is seeded the same way from stored (load, observed p99, Ready
// GPUs) points: the operator exports its Ready count (moe_operator_gpus_ready), so a Prometheus
// that scrapes the operator and the latency source holds all three. Each point is screened as a
// live sample is (a screened-out load teaches nothing), and learned only under the live loop's
// guards: a Ready count unchanged for calibrationSettleMs (the observed p99 covers a window that
// a changing count does not explain) and the calibration's own (utilisation < 0.9).

import { observeLatency } from "../latency/calibration.ts";
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

/** Screens points as live samples are: sorted, de-duplicated, each with its verdict (learn = load the forecaster may learn). */
function screened<P extends TimedValue>(
  points: readonly P[],
  policy: CapacityPolicy,
  maxGpus: number,
): { readonly point: P; readonly ok: boolean; readonly learn: boolean }[] {
  const limit = outOfRangeLimit(maxGpus, policy.latencyModel.tokensPerSecondPerGpu, policy.loadQuality);
  const sorted = points
    .filter((p) => Number.isFinite(p.atMs) && Number.isFinite(p.value) && p.value >= 0)
    .sort((a, b) => a.atMs - b.atMs);
  let quality: LoadQualityState = {};
  const accepted: TimedValue[] = [];
  const out: { point: P; ok: boolean; learn: boolean }[] = [];
  let lastAtMs = Number.NEGATIVE_INFINITY;
  for (const p of sorted) {
    if (!(p.atMs > lastAtMs)) continue;
    lastAtMs = p.atMs;
    while (accepted.length > 0 && (accepted[0] as TimedValue).atMs <= p.atMs - policy.loadQuality.windowMs)
      accepted.shift();
    const a = assessLoadSample(p, accepted, quality, limit, policy.loadQuality);
    quality = a.nextState;
    const ok = a.verdict.kind === "ok";
    if (ok) accepted.push(p);
    out.push({ point: p, ok, learn: ok && a.verdict.learn });
  }
  return out;
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
  let forecast = state.forecast;
  let learned = 0;
  for (const x of screened(points, policy, maxGpus)) {
    if (!x.learn) continue;
    forecast = observeLoadSample(forecast, x.point.atMs, x.point.value, policy.forecast.options);
    learned++;
  }
  return { state: { ...state, forecast }, learned, skipped: points.length - learned };
}

/** One stored latency point: the load (value, tokens/s), the observed p99 and the Ready GPUs behind it. */
export interface LatencySeedPoint extends TimedValue {
  readonly observedP99Ms: number;
  readonly readyGpus: number;
}

/** Placement conditions the stored points are learned under (the series do not carry them). */
export interface SeedConditions {
  readonly balancedness: number;
  readonly crossNodeShare: number;
  readonly redundantExpertsPerGpu?: number;
}

/**
 * The calibration of `state` after learning `points` (any order) as the live decision loop would:
 * screened loads only, a Ready count unchanged for `policy.calibrationSettleMs`, a finite p99.
 */
export function seedCalibrationFromSeries(
  state: CapacityState,
  points: readonly LatencySeedPoint[],
  policy: CapacityPolicy,
  maxGpus: number,
  conditions: SeedConditions,
): SeedResult {
  let calibration = state.calibration;
  let learned = 0;
  let ready: number | undefined;
  let readyChangedAtMs = Number.NEGATIVE_INFINITY;
  for (const { point: p, ok } of screened(points, policy, maxGpus)) {
    // A held sample (gap, outlier, out of range) is no decision: the live loop neither learns from
    // it nor sees the Ready count behind it.
    if (!ok) continue;
    const gpus = Number.isFinite(p.readyGpus) ? Math.max(0, Math.floor(p.readyGpus)) : 0;
    // As the live loop: the first count seen starts the settle time (its history is unknown).
    if (gpus !== ready) readyChangedAtMs = p.atMs;
    ready = gpus;
    const settled = p.atMs - readyChangedAtMs >= policy.calibrationSettleMs;
    if (!settled || !(gpus > 0) || !Number.isFinite(p.observedP99Ms) || !(p.observedP99Ms > 0)) continue;
    const next = observeLatency(
      calibration,
      policy.latencyModel,
      { atMs: p.atMs, observedP99Ms: p.observedP99Ms, tokensPerSecond: p.value, gpuCount: gpus, ...conditions },
      policy.calibration,
    );
    if (next !== calibration) learned++;
    calibration = next;
  }
  return { state: { ...state, calibration }, learned, skipped: points.length - learned };
}
