// Synthetic diurnal + burst rate traces for tests, the benchmark and machines without
// ../shared/data. Calibrated loosely to ServeGen m-large: hour-of-day peak/trough ~1.45, daily
// means varying by tens of percent, plus a daily scheduled window (a predictable burst, e.g. a
// batch job at 09:00) and random unpredictable bursts.

import { createRng } from "../domain/rng.ts";
import { DEFAULT_START_EPOCH_MS } from "./traces.ts";
import type { RateTrace } from "./traces.ts";

export interface DailyWindow {
  /** Hour of day (UTC, fractional allowed) the window opens. */
  readonly startHour: number;
  readonly durationMin: number;
  /** Load multiplier inside the window. */
  readonly factor: number;
  /** Minutes the load takes to ramp to the factor. */
  readonly rampMin: number;
}

export interface SyntheticTraceOptions {
  readonly seed: number;
  readonly durationS: number;
  readonly meanRatePerS: number;
  /** Hour-of-day peak / trough ratio. */
  readonly peakToTrough?: number;
  /** Hour of day (UTC) of the diurnal peak. */
  readonly peakHour?: number;
  /** Sigma of the log of each day's level (day-to-day variation). */
  readonly dayLevelSigma?: number;
  readonly dailyWindows?: readonly DailyWindow[];
  /** Unpredictable bursts per day (Poisson), each `burstFactor` x for `burstMinutes`. */
  readonly burstsPerDay?: number;
  readonly burstFactor?: readonly [number, number];
  readonly burstMinutes?: readonly [number, number];
  /** Rate series window (s). */
  readonly windowS?: number;
  readonly meanInputTokens?: number;
  readonly meanOutputTokens?: number;
  readonly name?: string;
}

export const DEFAULT_DAILY_WINDOWS: readonly DailyWindow[] = [
  { startHour: 9, durationMin: 60, factor: 1.5, rampMin: 2 },
];

export function syntheticRateTrace(o: SyntheticTraceOptions): RateTrace {
  const rng = createRng(o.seed);
  const windowS = o.windowS ?? 60;
  const n = Math.max(1, Math.ceil(o.durationS / windowS));
  const p = o.peakToTrough ?? 1.45;
  const amp = (p - 1) / (p + 1);
  const peakHour = o.peakHour ?? 15;
  const days = Math.ceil(o.durationS / 86_400) + 1;
  const dayLevel = Array.from({ length: days }, () => Math.exp((o.dayLevelSigma ?? 0.15) * rng.normal()));
  const windows = o.dailyWindows ?? DEFAULT_DAILY_WINDOWS;
  const bursts: { startS: number; endS: number; factor: number }[] = [];
  const perDay = o.burstsPerDay ?? 2;
  const [f0, f1] = o.burstFactor ?? [1.3, 2.0];
  const [m0, m1] = o.burstMinutes ?? [3, 12];
  for (let d = 0; d < days; d++) {
    const k = rng.poisson(perDay);
    for (let i = 0; i < k; i++) {
      const startS = d * 86_400 + rng.uniform(0, 86_400);
      bursts.push({ startS, endS: startS + rng.uniform(m0, m1) * 60, factor: rng.uniform(f0, f1) });
    }
  }
  const windowStartS = new Float64Array(n);
  const windowLen = new Float64Array(n).fill(windowS);
  const ratePerS = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const t = i * windowS + windowS / 2;
    const dayIdx = Math.floor(t / 86_400);
    const hour = (t % 86_400) / 3600;
    // Smooth day level: interpolate between consecutive days' levels around midnight.
    const frac = (t % 86_400) / 86_400;
    const level =
      (dayLevel[dayIdx] as number) * (1 - frac) + (dayLevel[dayIdx + 1] ?? (dayLevel[dayIdx] as number)) * frac;
    let r = o.meanRatePerS * level * (1 + amp * Math.cos((2 * Math.PI * (hour - peakHour)) / 24));
    for (const w of windows) {
      const sinceOpenMin = ((((hour - w.startHour) % 24) + 24) % 24) * 60;
      if (sinceOpenMin < w.durationMin) {
        const ramp = w.rampMin > 0 ? Math.min(1, sinceOpenMin / w.rampMin) : 1;
        r *= 1 + (w.factor - 1) * ramp;
      }
    }
    for (const b of bursts) if (t >= b.startS && t < b.endS) r *= b.factor;
    windowStartS[i] = i * windowS;
    ratePerS[i] = r;
  }
  return {
    kind: "rate",
    name: o.name ?? `synthetic-diurnal-${Math.round(o.durationS / 3600)}h`,
    format: "synthetic",
    startEpochMs: DEFAULT_START_EPOCH_MS,
    windowStartS,
    windowS: windowLen,
    ratePerS,
    meanInputTokens: o.meanInputTokens ?? 914,
    meanOutputTokens: o.meanOutputTokens ?? 155,
    skippedLines: 0,
    skipped: [],
  };
}
