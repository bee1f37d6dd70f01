// An isolated crowd's capacity is released one lead time after it (issue 14, round 7).
//
// The scale-down window keeps the highest recommendation of the last 10 minutes, so the count a
// flash crowd needed (10x for 5 minutes) was held 10 minutes after the crowd ended (3-day stress
// flash crowd, seed 3: 248 GPUs held for a requirement of 17-21). On traffic whose bursts recur
// every few minutes (the Azure code trace) a burst's end is the next burst's start, and releasing
// there lost minutes (round 6). The evidence that tells them apart is the burst history: a burst
// episode that began after `isolationMs` without any burst (and with at least that much watched)
// is isolated. For an isolated episode, recommendations older than one lead time (the time it
// takes to get capacity back) that exceed the count for `burst.ratio` times the load observed now
// were made for a load that is gone, and leave the window. Everything else (the burst hold, the
// over-target hold, the operator's no-undo guard, the step limits) still applies.

export interface CrowdReleasePolicy {
  readonly enabled: boolean;
  /** A burst episode is isolated when no burst was seen (and the watch covered) this long before it. */
  readonly isolationMs: number;
}

export const DEFAULT_CROWD_RELEASE_POLICY: CrowdReleasePolicy = {
  enabled: true,
  isolationMs: 3_600_000,
};

export interface BurstHistory {
  /** First decision with this state: bursts are watched from then on. */
  readonly watchFromMs: number;
  /** Last decision that saw a burst. */
  readonly seenAtMs?: number;
  /** The latest burst episode began after isolationMs without a burst. */
  readonly isolated: boolean;
}

/**
 * The burst history after this decision. A burst more than `episodeGapMs` (the burst hold) after
 * the last one starts a new episode, isolated when the quiet time before it, and the watch, are
 * both longer than `isolationMs`.
 */
export function nextBurstHistory(
  previous: BurstHistory | undefined,
  burst: boolean,
  nowMs: number,
  episodeGapMs: number,
  p: CrowdReleasePolicy,
): BurstHistory {
  const h = previous ?? { watchFromMs: nowMs, isolated: false };
  if (!burst) return h;
  const quietFromMs = h.seenAtMs ?? h.watchFromMs;
  const newEpisode = h.seenAtMs === undefined || nowMs - h.seenAtMs > episodeGapMs;
  const isolated = newEpisode ? nowMs - quietFromMs > p.isolationMs : h.isolated;
  return { watchFromMs: h.watchFromMs, seenAtMs: nowMs, isolated };
}

/**
 * The count above which a recommendation older than one lead time no longer holds the scale-down
 * window: the count for burst.ratio x the observed load, after an isolated burst episode; undefined
 * otherwise (every recommendation in the window holds).
 */
export function crowdReleaseAbove(
  history: BurstHistory | undefined,
  p: CrowdReleasePolicy,
  countAtRatioLoad: () => number,
): number | undefined {
  if (!p.enabled || history?.seenAtMs === undefined || !history.isolated) return undefined;
  return countAtRatioLoad();
}
