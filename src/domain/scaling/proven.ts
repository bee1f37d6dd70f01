// Measured sufficiency: the count that measured latency showed sufficient at a load at least this
// high (issue 14 item 4, round 4).
//
// The operator's latency feedback (guards.ts) adds 10 % when one observed p99 is over the target
// with every GPU Ready: a safety net while the model calibrates. But a minute's p99 scatters
// (its worst seconds set it: +13 % at p99.5 around the median on constant load), so on steady
// traffic a single noisy minute added 10 % and the scale-down window, the band and the settle
// window then held it for half an hour (stress step and outlier cases: 211 -> 233 and 203 -> 224
// GPUs at a load the fleet had served within the plan all along). A count measured within the plan
// at a load at least as high as now, recently and more than once, is evidence that more GPUs are
// not what this minute needed: the feedback then does not add.
//
// Records: every new load sample whose observed p99 (on the Ready GPUs, once their count has been
// stable for the calibration settle time) is within the plan target ((1 - margin) x target) records
// (Ready GPUs, the lower of the stable and short load windows) — the lower load, so a record never
// claims more than was served. `provenGpus(load)` is the `minRecords`-th smallest count among the
// records of the last `windowMs` at a load at least `load` (placement and heat drift, so old
// measurements expire); it rises with the load, so the decision stays monotone in the load.
//
// Measured release (round 6): the scale-down step and rate limits (20 % per change, one change per
// 2 min) guard against a model that is wrong about fewer GPUs. Down to the proven count at the
// observed load they guard nothing the measurement has not settled, so a fall larger than one step
// goes at once to the proven count (or to the SLO's count or the scale-down window's highest, if
// more; `releaseDown`), without waiting for the rate limit. Falls within one step keep both
// limits, and the scale-down window, the burst hold and the over-target hold always apply. After a
// flash crowd the fleet stepped down from 234 GPUs to the 24 its load needed in 20 % steps over 22
// minutes.

export interface ProvenRecord {
  readonly atMs: number;
  readonly gpus: number;
  readonly tokensPerSecond: number;
}

export interface ProvenPolicy {
  readonly enabled: boolean;
  /** Measurements older than this are forgotten (placement and expert heat drift). */
  readonly windowMs: number;
  /** A count is proven at a load by at least this many records at that count or fewer GPUs and at least that load. */
  readonly minRecords: number;
  /** A fall larger than one scale-down step goes at once to the proven count, rate limit or not (stabiliseDown in decide.ts). */
  readonly releaseDown: boolean;
}

export const DEFAULT_PROVEN_POLICY: ProvenPolicy = {
  enabled: true,
  windowMs: 60 * 60_000,
  minRecords: 2,
  releaseDown: true,
};

/** Bound on the records kept (a 1-h window at a 5-s scrape needs 720). */
const MAX_RECORDS = 1024;

/** The records of the window, plus `now` when given. */
export function nextProvenRecords(
  previous: readonly ProvenRecord[] | undefined,
  now: ProvenRecord | undefined,
  nowMs: number,
  p: ProvenPolicy,
): ProvenRecord[] {
  if (!p.enabled) return [];
  const kept = (previous ?? []).filter((r) => r.atMs > nowMs - p.windowMs && r.atMs <= nowMs);
  return (now === undefined ? kept : [...kept, now]).slice(-MAX_RECORDS);
}

/** The fewest GPUs measured within the plan at least minRecords times at `tokensPerSecond` or more; undefined = none. */
export function provenGpus(
  records: readonly ProvenRecord[] | undefined,
  tokensPerSecond: number,
  nowMs: number,
  p: ProvenPolicy,
): number | undefined {
  if (!p.enabled || records === undefined) return undefined;
  const counts = records
    .filter((r) => r.atMs > nowMs - p.windowMs && r.atMs <= nowMs && r.tokensPerSecond >= tokensPerSecond)
    .map((r) => r.gpus)
    .sort((a, b) => a - b);
  return counts[Math.max(1, Math.floor(p.minRecords)) - 1];
}
