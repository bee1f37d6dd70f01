// What a collection gap holds (issue 14, round 5).
//
// A sudden zero after sustained traffic is missing data, not load 0 (quality.ts): the decision
// holds and the forecaster learns nothing. Until round 5 it held the provisioned count, whatever
// that count carried besides the load: the start headroom, the hysteresis band's top, a burst's
// margin. With no evidence for hours, the count to hold is the one the load before the gap needs:
// the calibrated model at the pre-gap level (the median the gap was detected against) times the
// anticipation headroom measured before the gap (under the model cap), at the plan target. When the
// provisioned count is above it, the gap comes down to it through the usual scale-down
// stabilisation (the 10-min window of recommendations from before the gap, then the rate and step
// limits), so a short gap costs nothing and a scrape that returns at once finds the count it left.
// When traffic comes back at the pre-gap level, the count meets the plan target; a higher level
// scales up at once as on any sample. On constant load with a 2-h gap, ours held 205 GPUs through
// the gap where the pre-gap load needed ~185.

/**
 * The count a gap holds: the fewest GPUs meeting the plan target at the pre-gap load x headroom
 * (at most the model cap) x the daily profile's rise from the gap's start to one lead time from now
 * (1 without a seasonal forecast, never below 1: a long gap across a daily ramp comes back at the
 * ramp's level). The caller keeps a rise under the learned ceiling.
 */
export function gapHoldGpus(
  preGapTokensPerSecond: number,
  headroom: number,
  profileRise: number,
  maxSizingRatio: number,
  requiredAtPlan: (tokensPerSecond: number) => number,
): number {
  const factor = Math.min(Math.max(1, headroom), Math.max(1, maxSizingRatio)) * Math.max(1, profileRise);
  return requiredAtPlan(Math.max(0, preGapTokensPerSecond) * factor);
}

/** expected(later) / expected(earlier) of a seasonal forecast; 1 when either is missing or not seasonal. */
export function profileRiseBetween(
  earlier: { readonly seasonal: boolean; readonly expectedTokensPerSecond: number } | undefined,
  later: { readonly seasonal: boolean; readonly expectedTokensPerSecond: number } | undefined,
): number {
  if (!earlier?.seasonal || !later?.seasonal || !(earlier.expectedTokensPerSecond > 0)) return 1;
  const r = later.expectedTokensPerSecond / earlier.expectedTokensPerSecond;
  return Number.isFinite(r) ? r : 1;
}
