// The heat window after a heat shift (ADR 0018, "Heat read since the shift").
//
// Heat is a rate over a window (spec.heatSource.prometheus.rateWindowSeconds): right after the
// traffic's expert mix changes, that window mixes the old heat with the new one for a whole
// window length. The early rebalance (earlyRebalanceDropPercent) fires on the mixed heat, so its
// plan is only part of the way to the new heat, and the rest waited for the window to turn over
// plus a refresh. Once a shift is detected, everything after the detecting read is the shifted
// heat: reading the rate over the time since then (growing to the full window) gives the next
// plan the new heat one refresh later, and never reads pre-shift data again.
//
// Pure: the caller passes times and readings.

/** A shorter window than this holds too few scrapes for a rate (2 at a 2 s scrape interval). */
export const MIN_SHIFT_WINDOW_SECONDS = 4;

/**
 * A since-shift reading is used only when the average (layer, expert) saw at least this many
 * routed tokens in it: counts are Poisson-like, so this keeps the relative noise of an average
 * expert near 10% (1/sqrt(100)); a quieter deployment waits for the full window instead.
 */
export const MIN_SHIFT_WINDOW_TOKENS_PER_EXPERT = 100;

/**
 * Until a rebalance was evaluated on a since-shift reading, heat is read at least this often (the
 * source's refreshIntervalSeconds, 30 s by default, would make the follow-up wait that long).
 */
export const SHIFT_FOLLOW_UP_READ_SECONDS = 5;

/** What the caller keeps while a shift is followed. */
export interface HeatShiftState {
  /** Start of the read whose heat detected the shift (data after it is post-shift). */
  readonly fromMs: number;
  /** A rebalance was evaluated on a since-shift reading: no further rebalance is due from it. */
  readonly followedUp: boolean;
}

/**
 * The window (whole seconds) to read heat over at nowMs while a shift is followed, or undefined
 * for a plain read of the configured window: before MIN_SHIFT_WINDOW_SECONDS have passed, and once
 * the shift is over. Past the configured window it is that window (all of it after the shift),
 * until a rebalance was evaluated on a since-shift reading: a rollout still running from the
 * detecting rebalance can outlast the window, and the follow-up is still due after it.
 */
export function shiftWindowSeconds(
  shift: HeatShiftState | undefined,
  nowMs: number,
  rateWindowSeconds: number,
): number | undefined {
  if (shift === undefined || shiftWindowEnded(shift, nowMs, rateWindowSeconds)) return undefined;
  const since = Math.floor((nowMs - shift.fromMs) / 1000);
  if (since < MIN_SHIFT_WINDOW_SECONDS) return undefined;
  return Math.min(since, rateWindowSeconds);
}

/** The shift is over once it was followed up and the configured window at nowMs starts after the detecting read. */
export function shiftWindowEnded(shift: HeatShiftState, nowMs: number, rateWindowSeconds: number): boolean {
  return shift.followedUp && nowMs - shift.fromMs >= rateWindowSeconds * 1000;
}

/** Whether a heat reading (tokens/s per [layer][expert]) over windowSeconds holds enough tokens to plan on. */
export function enoughShiftTokens(heat: ReadonlyArray<ReadonlyArray<number>>, windowSeconds: number): boolean {
  let total = 0;
  let cells = 0;
  for (const layer of heat)
    for (const v of layer) {
      cells++;
      if (Number.isFinite(v) && v > 0) total += v;
    }
  return cells > 0 && (total * windowSeconds) / cells >= MIN_SHIFT_WINDOW_TOKENS_PER_EXPERT;
}

/**
 * The state after a tick: a detected shift starts (or restarts) it at the detecting read's start;
 * a rebalance evaluated on a since-shift reading marks it followed up; once followed up, it ends when
 * the configured window no longer reaches before the shift.
 */
export function nextShiftState(
  shift: HeatShiftState | undefined,
  tick: {
    readonly readAtMs: number;
    readonly nowMs: number;
    readonly rateWindowSeconds: number;
    readonly shiftDetected: boolean;
    /** This tick's heat was read since the shift, and a heat rebalance was evaluated or planned on it. */
    readonly followedUp: boolean;
  },
): HeatShiftState | undefined {
  if (tick.shiftDetected) return { fromMs: tick.readAtMs, followedUp: false };
  if (shift === undefined) return undefined;
  const next = tick.followedUp && !shift.followedUp ? { ...shift, followedUp: true } : shift;
  return shiftWindowEnded(next, tick.nowMs, tick.rateWindowSeconds) ? undefined : next;
}

/** The heat refresh interval while a shift is followed: SHIFT_FOLLOW_UP_READ_SECONDS at most until followed up. */
export function shiftRefreshMs(refreshMs: number, shift: HeatShiftState | undefined): number {
  return shift !== undefined && !shift.followedUp
    ? Math.min(refreshMs, SHIFT_FOLLOW_UP_READ_SECONDS * 1000)
    : refreshMs;
}
