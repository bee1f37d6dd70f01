// Bounds on what the policy may ask for, from evidence (issue 14, items 2 and 4):
// - the model cap: SLO sizing (trend, headroom) and burst responses never size for more than
//   `maxSizingRatio` x the load observed now (the larger of the stable and short windows), so every
//   count asked for is the calibrated model's estimate at the observed load times a bounded margin;
// - the learned ceiling: the highest count the evidence required (the calibrated model at the
//   observed load, `evidenceGpus`; a running maximum that halves every `peakHalfLifeMs`) times
//   `ceilingMargin`. The forecast and the operator's latency feedback (once the model is calibrated)
//   never ask for more. Issue 14 saw a climb to 417 GPUs held to the end of a 1-h chat trace
//   (static peak 313) and a forecast after collection gaps asking for 565 GPUs where the trace's
//   highest requirement was 217. The evidence now is part of the peak, so what the load observed
//   now requires always passes.

import type { TimedValue } from "./decide.ts";

export interface CeilingPolicy {
  readonly enabled: boolean;
  /** Sizing load at most this multiple of the observed load (trend x headroom x burst together). */
  readonly maxSizingRatio: number;
  /** Ceiling for asks from history and latency feedback = peak evidence x this. */
  readonly ceilingMargin: number;
  /** The peak evidence halves over this long (longer than the daily and weekly recurrence the forecast pre-warms). */
  readonly peakHalfLifeMs: number;
  /** The latency feedback is bounded by the ceiling once the calibration has this many observations. */
  readonly minCalibrationObservations: number;
}

export const DEFAULT_CEILING_POLICY: CeilingPolicy = {
  enabled: true,
  maxSizingRatio: 1.3,
  ceilingMargin: 1.25,
  peakHalfLifeMs: 7 * 86_400_000,
  minCalibrationObservations: 10,
};

/** The sizing load after the model cap. */
export function capSizingLoad(
  sizingTokensPerSecond: number,
  observedTokensPerSecond: number,
  p: CeilingPolicy,
): number {
  if (!p.enabled) return sizingTokensPerSecond;
  return Math.min(sizingTokensPerSecond, Math.max(1, p.maxSizingRatio) * Math.max(0, observedTokensPerSecond));
}

/** The running peak of the evidence (GPUs), decayed to now, including now. */
export function nextPeakEvidence(previous: TimedValue | undefined, now: TimedValue, p: CeilingPolicy): TimedValue {
  if (previous === undefined || !(now.atMs >= previous.atMs)) return now;
  const decayed = previous.value * Math.pow(0.5, (now.atMs - previous.atMs) / Math.max(1, p.peakHalfLifeMs));
  return { atMs: now.atMs, value: Math.max(decayed, now.value) };
}

/** A ceiling on the GPU step from the peak evidence; Infinity when disabled. */
export function learnedCeilingGpus(peakEvidenceGpus: number, step: number, p: CeilingPolicy): number {
  if (!p.enabled) return Number.POSITIVE_INFINITY;
  const s = Math.max(1, step);
  return Math.ceil((peakEvidenceGpus * Math.max(1, p.ceilingMargin)) / s - 1e-9) * s;
}
