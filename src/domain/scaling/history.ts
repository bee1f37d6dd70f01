// One history: load samples further apart than the metrics' staleness limit are not one series
// (issue 14, round 4).
//
// The trend needs samples covering its window, and the headroom scores anticipations only once the
// stable window is covered: "no trend on a fresh start". But a collection gap or a metrics outage is
// a hold with no samples, and the trimmed sample list keeps one sample from before the cut-off, so
// a sample from before a 2-h gap counted as history covering the window. When traffic came back,
// the trend fitted a line from the first, partial post-gap sample up to the full rate and
// extrapolated that jump over the lead time: on constant load with a 2-h gap the policy sized for
// 1.3x the returned load (205 -> 248 GPUs, static peak 197) and held most of it for half an hour.
// Here the history starts after the last hole between samples longer than the metrics' staleness
// limit (dataQuality.maxMetricsAgeMs: metrics that old are not acted on either), so after a gap
// or an outage the trend waits for a covered window of new samples, as on a fresh start.

import type { TimedValue } from "./decide.ts";

/** Time of the first sample of the latest run of samples no more than maxHoleMs apart; undefined without samples. */
export function contiguousHistoryFromMs(samples: readonly TimedValue[], maxHoleMs: number): number | undefined {
  if (samples.length === 0) return undefined;
  let i = samples.length - 1;
  while (i > 0 && (samples[i] as TimedValue).atMs - (samples[i - 1] as TimedValue).atMs <= maxHoleMs) i--;
  return (samples[i] as TimedValue).atMs;
}
