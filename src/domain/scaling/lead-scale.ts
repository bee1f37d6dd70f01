// Windows that follow the learned lead time (issue 19, issue 14 round 8).
//
// Some of the policy's windows are "time to get capacity back" quantities: they hold capacity (or
// wait before releasing it) because a release that turns out wrong costs one lead time of short
// capacity. They were sized for the default lead (a ~5-min cold start plus the 1-min margin):
// - the scale-down stabilisation window (highest recommendation of the last 10 min), and with it
//   the operator's no-undo guard (no scale-down within one window of a scale-up, or of a restart);
// - the falling-load scale-down window (3 min);
// - the burst hold (no scale-down for 5 min after a burst);
// - the settle window (over-provisioning measured for 20 min before the band collapses);
// - the SLO feedback's cool-down (a stable window plus a cold start after the last scale-up).
// When the learned lead is shorter than the reference, each is scaled by the time to get released
// capacity back at this lead over the same at the reference: (seeNeed + lead) / (seeNeed +
// reference), seeNeed being half the stable load window (the mean's lag), at least `minFactor`:
// capacity that comes back in a minute needs no ten-minute guard against releasing it. The
// factor of a 2.5-min lead (peer loading: p90 ~90 s + 1 min) is 4 / 7.5 = 0.53. Never lengthened: at or above the reference lead the windows are the configured
// ones, so a deployment with the default cold start (or none learned yet) decides as before.
// Not scaled: windows that measure the traffic or the latency (stable and short load windows, the
// trend window, calibration settle, the scale-down rate limit, the proven records' hour, the crowd
// isolation hour, the headroom's 3 h), and the margins (safety margin, hysteresis, start headroom,
// model cap), which are about latency scatter and model error, not about waiting for capacity.
// The anticipation headroom already follows the lead: it scores anticipations one lead time later.

export interface LeadScalingPolicy {
  readonly enabled: boolean;
  /** The lead the windows were sized for; a shorter learned lead scales them down (leadWindowFactor). */
  readonly referenceLeadMs: number;
  /** The windows never shrink below this fraction of their configured length. */
  readonly minFactor: number;
}

export const DEFAULT_LEAD_SCALING_POLICY: LeadScalingPolicy = {
  // Off by default: measured as a move along the cost-vs-minutes frontier, not past it, and the
  // 14-day ServeGen replay with the default cold start changed too (ADR 0003, round 8).
  enabled: false,
  // The default lead: the 5-min default cold start plus the 1-min margin (DEFAULT_LEAD_TIME_OPTIONS).
  referenceLeadMs: 6 * 60_000,
  minFactor: 0.25,
};

/**
 * The factor (minFactor..1) the lead-time windows are scaled by for this learned lead: the time to
 * get released capacity back, `seeNeedMs` (the time the load window takes to show the need) plus
 * the lead, over the same at the reference lead.
 */
export function leadWindowFactor(leadTimeMs: number, p: LeadScalingPolicy, seeNeedMs = 0): number {
  if (!p.enabled || !Number.isFinite(leadTimeMs) || !(p.referenceLeadMs > 0)) return 1;
  const min = Math.min(1, Math.max(0, p.minFactor));
  const see = Number.isFinite(seeNeedMs) && seeNeedMs > 0 ? seeNeedMs : 0;
  return Math.min(1, Math.max(min, (leadTimeMs + see) / (p.referenceLeadMs + see)));
}

/** A configured window scaled by the factor (whole milliseconds). */
export function leadScaledMs(windowMs: number, factor: number): number {
  return Math.round(windowMs * factor);
}
