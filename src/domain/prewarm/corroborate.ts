// A recurring rise that pre-warms capacity must be corroborated (issue 14, item 1):
// - only days that have data at that time of day count (a collection gap yesterday is no evidence,
//   neither for nor against a rise): the most recent `days` days with data in both spans are used,
//   looking back at most 6 days (the forecaster's table holds one week);
// - the rise must show on each of them (the smallest rise is taken, as before);
// - the level it predicts must have been observed: it is capped at the highest bucket seen in the
//   peak spans of those days times `observedLevelMargin`.

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
  for (let k = 1; k <= MAX_LOOKBACK_DAYS && used < need; k++) {
    const shift = k * DAY_MS;
    const base = extremeOnDay(state, spans.baseFromMs - shift, spans.baseToMs - shift, Math.min, options);
    const peak = extremeOnDay(state, spans.peakFromMs - shift, spans.peakToMs - shift, Math.max, options);
    if (base === undefined || peak === undefined || !(base > 0)) continue;
    ratio = Math.min(ratio, peak / base);
    observedPeak = Math.max(observedPeak, peak);
    used += 1;
  }
  if (used < need) return undefined;
  return { ratio, observedPeakTokensPerSecond: observedPeak, daysUsed: used };
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
