// The capacity decision's use of the per-sample data-quality verdict (src/domain/scaling/quality.ts):
// a hold with a reason and a message that names the numbers, or the sample as load.

import type { CapacityReason, CapacityState, TimedValue } from "./decide.ts";
import type { CapacityPolicy } from "./policy.ts";
import { assessLoadSample, outOfRangeLimit } from "./quality.ts";
import { isMetricsHold, REASON_TABLE } from "./reasons.ts";
import type { LoadQualityState } from "./quality.ts";

export interface ScreenedSample {
  /** Set when the sample is missing data: the decision holds. */
  readonly hold: { readonly reason: CapacityReason; readonly message: string } | undefined;
  /** The forecaster may learn the sample. */
  readonly learn: boolean;
  readonly quality: LoadQualityState | undefined;
}

/** Reasons that mean "held on bad data" (the controller reports them as a metrics problem): the reason table's metricsHold rows. */
export const METRICS_HOLD_REASONS: readonly CapacityReason[] = (Object.keys(REASON_TABLE) as CapacityReason[]).filter(
  isMetricsHold,
);

function fmt(n: number, digits = 0): string {
  return Number.isFinite(n) ? n.toFixed(digits) : String(n);
}

export function screenLoadSample(
  sample: TimedValue,
  state: CapacityState,
  policy: CapacityPolicy,
  maxGpus: number,
  previous: number,
): ScreenedSample {
  const limit = outOfRangeLimit(maxGpus, policy.latencyModel.tokensPerSecondPerGpu, policy.loadQuality);
  const a = assessLoadSample(sample, state.loadSamples, state.loadQuality ?? {}, limit, policy.loadQuality);
  const v = a.verdict;
  switch (v.kind) {
    case "ok":
      return { hold: undefined, learn: v.learn, quality: a.nextState };
    case "outOfRange":
      return {
        hold: {
          reason: "OutOfRangeMetrics",
          message: `holding at ${previous} GPUs: load ${fmt(sample.value)} tok/s is out of range (more than ${fmt(v.limitTokensPerSecond)} tok/s, ${policy.loadQuality.outOfRangeFactor}x what maxGpus could serve)`,
        },
        learn: false,
        quality: a.nextState,
      };
    case "outlier":
      return {
        hold: {
          reason: "OutlierMetrics",
          message: `holding at ${previous} GPUs: load ${fmt(sample.value)} tok/s is above the recent band ${fmt(v.bandTokensPerSecond)} tok/s (median ${fmt(v.medianTokensPerSecond)} tok/s) and not corroborated by the sample before`,
        },
        learn: false,
        quality: a.nextState,
      };
    case "gap":
      return {
        hold: {
          reason: "MetricsGap",
          message: `holding at ${previous} GPUs: load ${fmt(sample.value)} tok/s after ${fmt(v.refTokensPerSecond)} tok/s is a collection gap (for ${fmt((sample.atMs - v.sinceMs) / 60_000, 1)} min; held up to ${fmt(policy.loadQuality.maxGapHoldMs / 60_000)} min)`,
        },
        learn: false,
        quality: a.nextState,
      };
  }
}
