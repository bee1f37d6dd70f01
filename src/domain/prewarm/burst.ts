// Burst (panic) detection: the short-window load far above the stable-window load.

export interface BurstPolicy {
  /** Short window / stable window ratio at or above which a burst is declared (Knative's panic threshold is 2). */
  readonly ratio: number;
  /** The stable load is floored at this before the ratio test, so a trickle after silence is no burst. */
  readonly minTokensPerSecond: number;
  /** After a burst, scale-down is blocked this long. */
  readonly holdMs: number;
}

export const DEFAULT_BURST_POLICY: BurstPolicy = {
  ratio: 2,
  minTokensPerSecond: 100,
  holdMs: 5 * 60_000,
};

export interface BurstDetection {
  readonly burst: boolean;
  /** shortTokensPerSecond / max(stable, floor). */
  readonly ratio: number;
}

export function detectBurst(
  shortTokensPerSecond: number,
  stableTokensPerSecond: number,
  policy: BurstPolicy = DEFAULT_BURST_POLICY,
): BurstDetection {
  const short = Number.isFinite(shortTokensPerSecond) ? Math.max(0, shortTokensPerSecond) : 0;
  const stable = Number.isFinite(stableTokensPerSecond) ? Math.max(0, stableTokensPerSecond) : 0;
  const denominator = Math.max(stable, policy.minTokensPerSecond, Number.MIN_VALUE);
  const ratio = short / denominator;
  return { burst: ratio >= policy.ratio && short > 0, ratio };
}
