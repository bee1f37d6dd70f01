// Scale-down after sustained measured over-provisioning (issue 14, round 2).
//
// The deadband (hysteresis) only comes down past the stricter latency target, so on steady load the
// fleet parks anywhere inside the band: flat traffic sat ~12 % above static peak. Here the band
// collapses on evidence: every new sample records the count the SLO asks for now (the up count:
// the calibrated model at the sizing load, with trend and headroom, and any burst count). When the
// records cover `windowMs` and even their highest is below the provisioned count, that highest is
// what the SLO needed over the whole window, and the recommendation comes down to it. It never
// goes below the up count now (that joins the records first), the usual scale-down stabilisation
// window and step limits still apply, and a single scale-up need restarts nothing: the next record
// above the provisioned count simply scales up.

import type { TimedValue } from "./decide.ts";

/** Bound on the records kept (a 20-min window at a 5-s scrape needs 240). */
const MAX_RECORDS = 1024;

export interface SettlePolicy {
  readonly enabled: boolean;
  /** Over-provisioning must be measured for this long (records of the up count covering it). */
  readonly windowMs: number;
}

export const DEFAULT_SETTLE_POLICY: SettlePolicy = {
  enabled: true,
  windowMs: 20 * 60_000,
};

/** Records of the up count within the window (plus the new one); at most one per sample. */
export function nextUpCounts(
  previous: readonly TimedValue[] | undefined,
  now: TimedValue,
  p: SettlePolicy,
): TimedValue[] {
  if (!p.enabled) return [];
  const kept = (previous ?? []).filter((v) => v.atMs >= now.atMs - p.windowMs && v.atMs < now.atMs);
  return [...kept, now].slice(-MAX_RECORDS);
}

/**
 * The highest up count over the window when the records cover it (90 % of it), else undefined.
 * `windowMs` (at most `p.windowMs`, the records kept) is the window in force: the settle window
 * scaled to the learned lead (lead-scale.ts).
 */
export function settledUpCount(
  records: readonly TimedValue[],
  nowMs: number,
  p: SettlePolicy,
  windowMs: number = p.windowMs,
): number | undefined {
  if (!p.enabled || records.length === 0) return undefined;
  const w = Math.min(windowMs, p.windowMs);
  const first = records[0] as TimedValue;
  if (first.atMs > nowMs - 0.9 * w) return undefined;
  return Math.max(...records.filter((r) => r.atMs >= nowMs - w).map((r) => r.value));
}
