// A recurring rise that pre-warms capacity must be corroborated (issue 14, item 1):
// - only days that have data at that time of day count (a collection gap yesterday is no evidence,
//   neither for nor against a rise): the most recent `days` days with data in both spans are used,
//   looking back at most 6 days (the forecaster's table holds one week);
// - the rise must show on each of them (the smallest rise is taken, as before);
// - the level it predicts must have been observed: it is capped at the highest bucket seen in the
//   peak spans of those days times `observedLevelMargin`;
// - with a single day of data at that time (the second day of a deployment, or after a long gap), the
//   rise counts only when that day's profile has tracked today's: over the hours before now, the
//   bucket-by-bucket ratio today / that day, divided by its median (the day level, which the anchored
//   forecast takes from today's measurements anyway), stays within 10 % and within a third of the
//   rise predicted for 80 % of the buckets (`dayShapeError`), and the rise is capped at 2x. Traffic
//   whose days repeat (a daily window, a market open) qualifies after one day; traffic whose days
//   differ waits for the second day, as before.

import { learnedBucketAt } from "./forecast.ts";
import type { ForecastOptions, ForecastState } from "./forecast.ts";

const DAY_MS = 86_400_000;
const MAX_LOOKBACK_DAYS = 6;

export interface CorroboratedRise {
  /** Smallest peak / base ratio over the days used. */
  readonly ratio: number;
  /** Highest bucket mean (tokens/s) seen in the peak spans of the days used. */
  readonly observedPeakTokensPerSecond: number;
  readonly daysUsed: number;
  /** How many days back the oldest day used lies (1 = the day before). */
  readonly oldestDayBack: number;
}

export interface RiseSpans {
  readonly baseFromMs: number;
  readonly baseToMs: number;
  readonly peakFromMs: number;
  readonly peakToMs: number;
}

function extremeOnDay(
  state: ForecastState,
  fromMs: number,
  toMs: number,
  pick: (a: number, b: number) => number,
  o: ForecastOptions,
): number | undefined {
  let out: number | undefined;
  const start = Math.floor(fromMs / state.bucketMs) * state.bucketMs;
  for (let t = start; t <= toMs; t += state.bucketMs) {
    const v = learnedBucketAt(state, t, o);
    if (v !== undefined) out = out === undefined ? v : pick(out, v);
  }
  return out;
}

/** The rise over the most recent `days` days with data at this time of day; undefined when fewer have data. */
export function corroboratedRise(
  state: ForecastState,
  spans: RiseSpans,
  days: number,
  options: ForecastOptions,
): CorroboratedRise | undefined {
  const need = Math.floor(days);
  if (!(need >= 1) || !(spans.peakToMs >= spans.peakFromMs) || !(spans.baseToMs >= spans.baseFromMs)) return undefined;
  let ratio = Infinity;
  let observedPeak = 0;
  let used = 0;
  let oldest = 0;
  for (let k = 1; k <= MAX_LOOKBACK_DAYS && used < need; k++) {
    const shift = k * DAY_MS;
    const base = extremeOnDay(state, spans.baseFromMs - shift, spans.baseToMs - shift, Math.min, options);
    const peak = extremeOnDay(state, spans.peakFromMs - shift, spans.peakToMs - shift, Math.max, options);
    if (base === undefined || peak === undefined || !(base > 0)) continue;
    ratio = Math.min(ratio, peak / base);
    observedPeak = Math.max(observedPeak, peak);
    used += 1;
    oldest = k;
  }
  if (used < need) return undefined;
  return { ratio, observedPeakTokensPerSecond: observedPeak, daysUsed: used, oldestDayBack: oldest };
}

/** The forecast load from a corroborated rise: stable x ratio, capped at the observed peak x margin. */
export function corroboratedForecastLoad(
  stableTokensPerSecond: number,
  rise: CorroboratedRise,
  observedLevelMargin: number,
): number {
  return Math.min(
    stableTokensPerSecond * rise.ratio,
    rise.observedPeakTokensPerSecond * Math.max(1, observedLevelMargin),
  );
}

/** Hours of today compared with the day before by `dayShapeError`. */
export const SHAPE_TRACK_WINDOW_MS = 6 * 3_600_000;
/** The comparison needs this share of the window's buckets learned on both days. */
const SHAPE_TRACK_MIN_COVERAGE = 0.7;
/** Share of the buckets whose error must be within the bound (the rest may hold one-off bursts). */
const SHAPE_TRACK_QUANTILE = 0.8;
/**
 * A one-day rise counts when the day's shape error is at most this share of the rise (ratio - 1):
 * a rise no larger than the day-to-day shape error is indistinguishable from it.
 */
export const SHAPE_ERROR_SHARE_OF_RISE = 1 / 3;
/**
 * ... and at most this, whatever the rise: a day that matched today only within more than 10 % per
 * bucket is no evidence that a large rise it held will recur (ServeGen m-large's first two days
 * differ by 14-230 % at the 80th percentile over 6 hours, and 2.4-2.7x single-bucket rises on the
 * first evening did not recur on the second; a daily window on otherwise repeating days is
 * within a few percent).
 */
export const MAX_ONE_DAY_SHAPE_ERROR = 0.1;
/**
 * A one-day rise is capped at this ratio: if it does not recur after all, the forecast asks for at
 * most twice the load that stayed (issue 14: no forecast above 2x the realised requirement).
 */
export const MAX_ONE_DAY_RATIO = 2;

/** The single-day rise, when the day it comes from has tracked today's profile (see the header). */
export function oneDayRiseTracked(
  state: ForecastState,
  spans: RiseSpans,
  nowMs: number,
  options: ForecastOptions,
): (CorroboratedRise & { readonly shapeError: number }) | undefined {
  const rise = corroboratedRise(state, spans, 1, options);
  if (rise === undefined || !(rise.ratio > 1)) return undefined;
  const shape = dayShapeError(state, nowMs, SHAPE_TRACK_WINDOW_MS, options, rise.oldestDayBack);
  const bound = Math.min(MAX_ONE_DAY_SHAPE_ERROR, SHAPE_ERROR_SHARE_OF_RISE * (rise.ratio - 1));
  if (shape === undefined || !(shape.error <= bound)) return undefined;
  return { ...rise, ratio: Math.min(MAX_ONE_DAY_RATIO, rise.ratio), shapeError: shape.error };
}

export interface DayShapeError {
  /** The SHAPE_TRACK_QUANTILE quantile of |ratio / median ratio - 1| over the buckets compared. */
  readonly error: number;
  readonly buckets: number;
}

/**
 * How well the profile of the day `daysBack` days before matched today's over the `windowMs` before
 * `nowMs`: for each learned bucket with data on both days, ratio = today / the day before; the error is an upper
 * quantile of |ratio / median - 1| (the median is the day level, so a uniformly busier day matches).
 * Undefined when fewer than 70 % of the window's buckets have data on both days.
 */
export function dayShapeError(
  state: ForecastState,
  nowMs: number,
  windowMs: number,
  options: ForecastOptions,
  daysBack = 1,
): DayShapeError | undefined {
  const b = state.bucketMs;
  const last = Math.floor(nowMs / b) * b - b; // the open bucket is not learned yet
  const total = Math.max(1, Math.floor(windowMs / b));
  const ratios: number[] = [];
  for (let k = 0; k < total; k++) {
    const t = last - k * b;
    const today = learnedBucketAt(state, t, options);
    const before = learnedBucketAt(state, t - daysBack * DAY_MS, options);
    if (today === undefined || before === undefined || !(before > options.minLoad) || !(today > options.minLoad))
      continue;
    ratios.push(today / before);
  }
  if (ratios.length < SHAPE_TRACK_MIN_COVERAGE * total) return undefined;
  const sorted = [...ratios].sort((x, y) => x - y);
  const median = sorted[(sorted.length - 1) >> 1] as number;
  const errors = ratios.map((r) => Math.abs(r / median - 1)).sort((x, y) => x - y);
  return { error: errors[Math.floor(SHAPE_TRACK_QUANTILE * (errors.length - 1))] as number, buckets: ratios.length };
}
