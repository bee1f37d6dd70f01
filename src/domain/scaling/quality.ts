// Data quality of one load sample before the capacity decision uses it (issue 14, item 1; issue 20,
// item 4). A sample is one of:
// - "ok": load, used by the decision and learned by the forecaster;
// - "outOfRange": more than any fleet within maxGpus could serve by a wide factor (a broken counter,
//   an overflowing sum): missing data, hold;
// - "outlier": far above the recent samples' robust band (median + k MAD, at least a multiple of the
//   median) and not corroborated by the sample before: missing data, hold (a second sample above the
//   band corroborates it and is load: a flash crowd costs one tick, a single absurd scrape nothing);
// - "gap": a sudden near-zero after sustained traffic (a collection gap, not quiet traffic): missing
//   data, hold, for at most maxGapHoldMs; after that the samples count as load for the decision (the
//   traffic really stopped) but are still never learned by the forecaster.
// Pure: the little memory it needs (open gap, last outlier) lives in LoadQualityState.

import type { TimedValue } from "./decide.ts";
import { median } from "../quantile.ts";

export interface LoadQualityPolicy {
  readonly enabled: boolean;
  /** Recent accepted samples the robust band is computed from. */
  readonly windowMs: number;
  /** Fewer accepted samples than this in the window: no outlier or gap test. */
  readonly minSamples: number;
  /** Band upper edge: median + this many scaled MADs (1.4826 MAD = sd for normal noise)... */
  readonly outlierMads: number;
  /** ...and at least this multiple of the median (ordinary bursts below it are load at once). */
  readonly outlierMinRatio: number;
  /** A sample above the band is corroborated by an earlier one above the band at most this long before. */
  readonly corroborateWithinMs: number;
  /** A sample below this fraction of the recent median is a gap... */
  readonly gapRatio: number;
  /** ...when that median is at least this (tokens/s)... */
  readonly gapMinTokensPerSecond: number;
  /**
   * ...and every accepted sample in the window is at least this fraction of the median: sustained
   * traffic. Where near-zero samples are ordinary (bursty traffic, 73 % empty seconds on the Azure
   * code trace), a zero is load, not a gap.
   */
  readonly sustainedMinRatio: number;
  /** A gap is held at most this long; then its samples count as load (never learned by the forecast). */
  readonly maxGapHoldMs: number;
  /** Out of range: above maxGpus x nominal tokens/s per GPU x this factor. */
  readonly outOfRangeFactor: number;
  /**
   * A gap holds the count the pre-gap load needs (gap-hold.ts), coming down to it through the usual
   * scale-down stabilisation; false: it holds the provisioned count.
   */
  readonly gapHoldAtNeededLevel: boolean;
}

export const DEFAULT_LOAD_QUALITY: LoadQualityPolicy = {
  enabled: true,
  windowMs: 10 * 60_000,
  minSamples: 6,
  outlierMads: 10,
  outlierMinRatio: 4,
  corroborateWithinMs: 2 * 60_000,
  gapRatio: 0.02,
  gapMinTokensPerSecond: 100,
  sustainedMinRatio: 0.2,
  maxGapHoldMs: 3 * 3_600_000,
  outOfRangeFactor: 20,
  gapHoldAtNeededLevel: true,
};

export interface LoadQualityState {
  /** First sample of the open gap, and the median before it. */
  readonly gapSinceMs?: number;
  readonly gapRefTokensPerSecond?: number;
  /** Time of the last sample that was above the band (uncorroborated). */
  readonly outlierAtMs?: number;
}

export type LoadVerdict =
  | { readonly kind: "ok"; readonly learn: boolean }
  | { readonly kind: "outOfRange"; readonly limitTokensPerSecond: number }
  | { readonly kind: "outlier"; readonly medianTokensPerSecond: number; readonly bandTokensPerSecond: number }
  | { readonly kind: "gap"; readonly refTokensPerSecond: number; readonly sinceMs: number };

export interface LoadAssessment {
  readonly verdict: LoadVerdict;
  readonly nextState: LoadQualityState;
}

/** Median and scaled MAD of the sample values in (nowMs - windowMs, nowMs]; undefined below minSamples. */
export function robustLevel(
  samples: readonly TimedValue[],
  nowMs: number,
  windowMs: number,
  minSamples: number,
): { median: number; mad: number; min: number } | undefined {
  const from = nowMs - windowMs;
  const values = samples
    .filter((s) => s.atMs > from && s.atMs <= nowMs && Number.isFinite(s.value))
    .map((s) => s.value);
  if (values.length < Math.max(1, minSamples)) return undefined;
  const level = median(values);
  const mad = 1.4826 * median(values.map((v) => Math.abs(v - level)));
  return { median: level, mad, min: Math.min(...values) };
}

/** Highest load (tokens/s) a sample may show before it is out of range. */
export function outOfRangeLimit(maxGpus: number, tokensPerSecondPerGpu: number, p: LoadQualityPolicy): number {
  return Math.max(1, maxGpus) * Math.max(1, tokensPerSecondPerGpu) * Math.max(1, p.outOfRangeFactor);
}

/**
 * Classify one new load sample against the accepted samples so far (see the file comment).
 * `limitTokensPerSecond` comes from outOfRangeLimit.
 */
export function assessLoadSample(
  sample: TimedValue,
  accepted: readonly TimedValue[],
  state: LoadQualityState,
  limitTokensPerSecond: number,
  p: LoadQualityPolicy,
): LoadAssessment {
  if (!p.enabled) return { verdict: { kind: "ok", learn: true }, nextState: {} };
  if (!(sample.value <= limitTokensPerSecond)) {
    return { verdict: { kind: "outOfRange", limitTokensPerSecond }, nextState: state };
  }
  if (state.gapSinceMs !== undefined && state.gapRefTokensPerSecond !== undefined) {
    return assessInGap(sample, state, p);
  }
  const level = robustLevel(accepted, sample.atMs, p.windowMs, p.minSamples);
  if (level === undefined)
    return { verdict: { kind: "ok", learn: true }, nextState: { outlierAtMs: state.outlierAtMs } };
  const sustained = level.median >= p.gapMinTokensPerSecond && level.min >= p.sustainedMinRatio * level.median;
  if (sustained && sample.value < p.gapRatio * level.median) {
    const next: LoadQualityState = { gapSinceMs: sample.atMs, gapRefTokensPerSecond: level.median };
    return { verdict: { kind: "gap", refTokensPerSecond: level.median, sinceMs: sample.atMs }, nextState: next };
  }
  const band = Math.max(level.median + p.outlierMads * level.mad, p.outlierMinRatio * level.median);
  if (sample.value > band && level.median > 0) {
    const corroborated =
      state.outlierAtMs !== undefined &&
      sample.atMs > state.outlierAtMs &&
      sample.atMs - state.outlierAtMs <= p.corroborateWithinMs;
    if (!corroborated) {
      return {
        verdict: { kind: "outlier", medianTokensPerSecond: level.median, bandTokensPerSecond: band },
        nextState: { outlierAtMs: sample.atMs },
      };
    }
    return { verdict: { kind: "ok", learn: true }, nextState: { outlierAtMs: sample.atMs } };
  }
  return { verdict: { kind: "ok", learn: true }, nextState: {} };
}

/** Inside an open gap: traffic back (above the gap ratio of the level before) closes it. */
function assessInGap(sample: TimedValue, state: LoadQualityState, p: LoadQualityPolicy): LoadAssessment {
  const ref = state.gapRefTokensPerSecond as number;
  const since = state.gapSinceMs as number;
  if (sample.value >= p.gapRatio * ref) return { verdict: { kind: "ok", learn: true }, nextState: {} };
  if (sample.atMs - since >= p.maxGapHoldMs) return { verdict: { kind: "ok", learn: false }, nextState: state };
  return { verdict: { kind: "gap", refTokensPerSecond: ref, sinceMs: since }, nextState: state };
}
