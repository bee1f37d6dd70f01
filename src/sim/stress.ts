// The stress suite (issue 14): seeded rate series, each a smooth diurnal base with one kind of
// trouble a production trace has, plus faults of the observation (what the policy sees) that leave
// the load alone. Used by `make bench` (bench/sim/run.ts) and `moe-sim --stress NAME`.
//
// - gaps: collection gaps of 10 min, 1 h and 3 h (rate 0, then the full rate again in one minute);
// - flash-crowd: 10x within a minute, for 5 minutes;
// - step: a permanent 2x step;
// - ramp: a slow ramp, 1x to 3x over 8 hours, then held;
// - weekly: weekdays at full level, weekends at 55 % (starts on a Friday);
// - outlier: one absurd scrape (1000x the load) the policy sees, the load itself unchanged;
// - outage: metrics outages of 15 min and 1 h: the policy's newest sample stays the one from before
//   the outage (stale) while the load continues.

import { createRng, seedFrom } from "../domain/rng.ts";
import { syntheticRateTrace } from "./synthetic.ts";
import type { RateTrace } from "./traces.ts";

/** What the policies observe differently from the truth; the load is unchanged. */
export interface ObservationFaults {
  /** Metrics outages [startS, endS): no new scrape; the newest sample is the last one before startS. */
  readonly outages?: readonly { readonly startS: number; readonly endS: number }[];
  /** Single scrapes whose load rates read `factor` times the truth (the scrape ending at atS). */
  readonly outliers?: readonly { readonly atS: number; readonly factor: number }[];
}

/** The scrape end a policy sees at a wanted scrape end (frozen inside an outage). */
export function visibleScrapeEndS(
  faults: ObservationFaults | undefined,
  endS: number,
  scrapeIntervalS: number,
): number {
  for (const o of faults?.outages ?? []) {
    if (endS >= o.startS && endS < o.endS) return Math.floor((o.startS - 1) / scrapeIntervalS) * scrapeIntervalS;
  }
  return endS;
}

/** The multiplier on the load rates of the scrape ending at endS (1 unless an outlier is there). */
export function observedLoadFactor(
  faults: ObservationFaults | undefined,
  endS: number,
  scrapeIntervalS: number,
): number {
  for (const o of faults?.outliers ?? []) if (endS >= o.atS && endS < o.atS + scrapeIntervalS) return o.factor;
  return 1;
}

export const STRESS_CASES = ["gaps", "flash-crowd", "step", "ramp", "weekly", "outlier", "outage"] as const;
export type StressCaseName = (typeof STRESS_CASES)[number];

export interface StressCase {
  readonly name: StressCaseName;
  readonly description: string;
  readonly trace: RateTrace;
  readonly faults?: ObservationFaults;
}

export interface StressOptions {
  readonly seed: number;
  /** Length of each case (days); the weekly case is at least 2 days so it crosses a weekend. */
  readonly days: number;
  /** Mean request rate of the base (req/s). */
  readonly meanRatePerS?: number;
}

const DAY_S = 86_400;
/** 2024-01-05T00:00:00Z, a Friday: the weekly case crosses into the weekend on its second day. */
const FRIDAY_EPOCH_MS = Date.UTC(2024, 0, 5);

function base(o: StressOptions, name: string, days: number): RateTrace {
  return syntheticRateTrace({
    seed: (o.seed ^ seedFrom(`stress:${name}`)) >>> 0,
    durationS: Math.round(days * DAY_S),
    meanRatePerS: o.meanRatePerS ?? 200,
    burstsPerDay: 0,
    dailyWindows: [],
    windowS: 60,
    name: `stress-${name}`,
  });
}

function withRates(
  t: RateTrace,
  f: (minute: number, rate: number) => number,
  extra: Partial<RateTrace> = {},
): RateTrace {
  const ratePerS = Float64Array.from(t.ratePerS, (r, i) => Math.max(0, f(i, r)));
  return { ...t, ...extra, ratePerS };
}

/** A minute in [fromFraction, toFraction) of the series, drawn from the case's own stream. */
function minuteIn(
  n: number,
  rng: { uniform(a: number, b: number): number },
  fromFraction: number,
  toFraction: number,
): number {
  return Math.floor(rng.uniform(fromFraction * n, toFraction * n));
}

/** One stress case, seeded; the same seed and days give the same series. */
export function stressCase(name: StressCaseName, o: StressOptions): StressCase {
  const rng = createRng((o.seed ^ seedFrom(`stress-events:${name}`)) >>> 0);
  const t = base(o, name, name === "weekly" ? Math.max(2, o.days) : o.days);
  const n = t.ratePerS.length;
  switch (name) {
    case "gaps": {
      const gaps = [10, 60, 180].map((len, k) => ({ start: minuteIn(n, rng, 0.15 + 0.27 * k, 0.3 + 0.27 * k), len }));
      return {
        name,
        description: "collection gaps of 10 min, 1 h and 3 h (rate 0), then the full rate within a minute",
        trace: withRates(t, (m, r) => (gaps.some((g) => m >= g.start && m < g.start + g.len) ? 0 : r)),
      };
    }
    case "flash-crowd": {
      const at = minuteIn(n, rng, 0.4, 0.8);
      return {
        name,
        description: "flash crowd: 10x within a minute, for 5 minutes",
        trace: withRates(t, (m, r) => (m >= at && m < at + 5 ? 10 * r : r)),
      };
    }
    case "step": {
      const at = minuteIn(n, rng, 0.3, 0.6);
      return { name, description: "a permanent 2x step", trace: withRates(t, (m, r) => (m >= at ? 2 * r : r)) };
    }
    case "ramp": {
      const at = minuteIn(n, rng, 0.2, 0.4);
      const lenMin = 8 * 60;
      return {
        name,
        description: "a slow ramp from 1x to 3x over 8 hours, then held",
        trace: withRates(t, (m, r) => r * (1 + 2 * Math.min(1, Math.max(0, (m - at) / lenMin)))),
      };
    }
    case "weekly": {
      const weekend = (m: number): boolean => {
        const day = new Date(FRIDAY_EPOCH_MS + m * 60_000).getUTCDay();
        return day === 0 || day === 6;
      };
      return {
        name,
        description: "weekly pattern: weekdays at full level, weekends at 55 % (from a Friday)",
        trace: withRates(t, (m, r) => (weekend(m) ? 0.55 * r : r), { startEpochMs: FRIDAY_EPOCH_MS }),
      };
    }
    case "outlier": {
      const atS = minuteIn(n, rng, 0.3, 0.7) * 60;
      return {
        name,
        description: "one absurd scrape: the policy sees 1000x the load once, the load is unchanged",
        trace: t,
        faults: { outliers: [{ atS, factor: 1000 }] },
      };
    }
    case "outage": {
      const a = minuteIn(n, rng, 0.2, 0.4) * 60;
      const b = minuteIn(n, rng, 0.55, 0.75) * 60;
      return {
        name,
        description:
          "metrics outages of 15 min and 1 h: the newest sample stays the one from before, the load continues",
        trace: t,
        faults: {
          outages: [
            { startS: a, endS: a + 900 },
            { startS: b, endS: b + 3600 },
          ],
        },
      };
    }
  }
}

/** Issue 14's flat-load case: a constant rate with one collection gap (rate 0), 1-min windows. */
export interface ConstantGapOptions {
  /** Length (h; default 8). */
  readonly hours?: number;
  /** The constant request rate (req/s; default 200). */
  readonly ratePerS?: number;
  /** The gap's start and end (h from the start; default 3 and 5). */
  readonly gapFromH?: number;
  readonly gapToH?: number;
}

/**
 * Constant load with a collection gap (issue 14: "never dominated"; ADR 0003 rounds 2-7). Static
 * peak sized in hindsight is at its best on flat load, so this is where ours is compared with it.
 */
export function constantGapTrace(o: ConstantGapOptions = {}): RateTrace {
  const hours = o.hours ?? 8;
  const fromMin = Math.round((o.gapFromH ?? 3) * 60);
  const toMin = Math.round((o.gapToH ?? 5) * 60);
  const t = syntheticRateTrace({
    seed: 0,
    durationS: Math.round(hours * 3600),
    meanRatePerS: o.ratePerS ?? 200,
    peakToTrough: 1,
    dayLevelSigma: 0,
    burstsPerDay: 0,
    dailyWindows: [],
    windowS: 60,
    name: `constant-gap-${hours}h`,
  });
  return withRates(t, (m, r) => (m >= fromMin && m < toMin ? 0 : r));
}

export function stressSuite(o: StressOptions): StressCase[] {
  return STRESS_CASES.map((name) => stressCase(name, o));
}
