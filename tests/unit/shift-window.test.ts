import { describe, expect, it } from "vitest";
import fc from "fast-check";
import {
  MIN_SHIFT_WINDOW_SECONDS,
  enoughShiftTokens,
  nextShiftState,
  shiftRefreshMs,
  shiftWindowSeconds,
  type HeatShiftState,
} from "../../src/domain/placement/shift-window.ts";

const T0 = 1_000_000;

describe("heat read since a heat shift (ADR 0018)", () => {
  it.each([
    // [seconds since the detecting read, rate window, window read]
    [0, 10, undefined],
    [MIN_SHIFT_WINDOW_SECONDS - 0.5, 10, undefined],
    [MIN_SHIFT_WINDOW_SECONDS, 10, MIN_SHIFT_WINDOW_SECONDS],
    [5.9, 10, 5],
    [9.99, 10, 9],
    [60, 120, 60],
  ])("%s s after the shift with a %s s window reads %s s", (since, rate, want) => {
    for (const followedUp of [false, true])
      expect(shiftWindowSeconds({ fromMs: T0, followedUp }, T0 + since * 1000, rate)).toBe(want);
  });

  it("reads the configured window past it until followed up, then nothing special", () => {
    // A rollout from the detecting rebalance outlasted the window: the follow-up is still due.
    expect(shiftWindowSeconds({ fromMs: T0, followedUp: false }, T0 + 10_000, 10)).toBe(10);
    expect(shiftWindowSeconds({ fromMs: T0, followedUp: false }, T0 + 95_000, 10)).toBe(10);
    expect(shiftWindowSeconds({ fromMs: T0, followedUp: true }, T0 + 10_000, 10)).toBeUndefined();
  });

  it("never reads before the detecting read, and never longer than the configured window (property)", () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 600_000 }), fc.integer({ min: 10, max: 600 }), (dt, rate) => {
        const w = shiftWindowSeconds({ fromMs: T0, followedUp: true }, T0 + dt, rate);
        if (w === undefined) return;
        expect(Number.isInteger(w)).toBe(true);
        expect(w * 1000).toBeLessThanOrEqual(dt);
        expect(w).toBeGreaterThanOrEqual(MIN_SHIFT_WINDOW_SECONDS);
        expect(w).toBeLessThan(rate);
      }),
    );
    expect(shiftWindowSeconds(undefined, T0, 10)).toBeUndefined();
  });

  it("plans on a short reading only with about 100 tokens per (layer, expert)", () => {
    const heat = [
      [10, 30],
      [0, 40],
    ]; // 80 tokens/s over 4 cells: 20 per cell per second
    expect(enoughShiftTokens(heat, 5)).toBe(true); // 100 per cell
    expect(enoughShiftTokens(heat, 4)).toBe(false); // 80 per cell
    expect(enoughShiftTokens([], 5)).toBe(false);
    expect(enoughShiftTokens([[Number.NaN, 1e6]], 5)).toBe(true);
  });

  it("starts at the detecting read, is followed up once, and ends when the window turns over", () => {
    const tick = (over: Partial<Parameters<typeof nextShiftState>[1]>) => ({
      readAtMs: T0,
      nowMs: T0 + 200,
      rateWindowSeconds: 10,
      shiftDetected: false,
      followedUp: false,
      ...over,
    });
    expect(nextShiftState(undefined, tick({}))).toBeUndefined();
    const started = nextShiftState(undefined, tick({ shiftDetected: true }));
    expect(started).toEqual({ fromMs: T0, followedUp: false });
    const kept = nextShiftState(started, tick({ nowMs: T0 + 5_000 }));
    expect(kept).toBe(started);
    const followed = nextShiftState(started, tick({ nowMs: T0 + 5_000, followedUp: true }));
    expect(followed).toEqual({ fromMs: T0, followedUp: true });
    expect(nextShiftState(followed, tick({ nowMs: T0 + 9_999 }))).toEqual(followed);
    expect(nextShiftState(followed, tick({ nowMs: T0 + 10_000 }))).toBeUndefined();
    // Not followed up yet (a rollout ran): kept past the window, ends at the follow-up.
    const late = nextShiftState(started, tick({ nowMs: T0 + 30_000 }));
    expect(late).toBe(started);
    expect(nextShiftState(late, tick({ nowMs: T0 + 31_000, followedUp: true }))).toBeUndefined();
    // A new shift restarts it at its own read.
    const again = nextShiftState(followed, tick({ readAtMs: T0 + 7_000, nowMs: T0 + 7_100, shiftDetected: true }));
    expect(again).toEqual<HeatShiftState>({ fromMs: T0 + 7_000, followedUp: false });
  });

  it("reads heat every 5 s at most until the follow-up, then at the source's interval", () => {
    expect(shiftRefreshMs(30_000, undefined)).toBe(30_000);
    expect(shiftRefreshMs(30_000, { fromMs: T0, followedUp: false })).toBe(5_000);
    expect(shiftRefreshMs(2_000, { fromMs: T0, followedUp: false })).toBe(2_000);
    expect(shiftRefreshMs(30_000, { fromMs: T0, followedUp: true })).toBe(30_000);
  });
});
