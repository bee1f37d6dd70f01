// Load forecaster: a deseasonalised level with a damped trend, times daily and weekly seasonal
// profiles, with a decaying correction from recent errors and error bands.
//
//   forecast(t+h) = (level + trend * (lag + sum_{i=1..h} phi^i)) * S(t+h) * (1 + E * lambda^h)
//   S(t) = c * W[slot of week] + (1 - c) * D[slot of day],  c = min(1, weeks seen at that slot / 2)
//
// The state keeps the latest bucket mean for every time-of-week slot (a one-week table). The level
// is the mean over time of day of the per-time-of-day means in that table, so it carries no daily
// seasonality from the first day on and no weekly seasonality once a week is known; as a trailing
// mean it lags by half the covered span (`lag`), which the trend corrects. D is the table's
// time-of-day profile over the days it holds (ratio to the level); W, the time-of-week profile,
// is exponentially smoothed across weeks and takes over from D as weeks are seen (weekday vs
// weekend). E, a smoothed recent relative error, fades over the horizon: when today runs hotter
// than the profile says, the next minutes are forecast hotter too (day-to-day swings such as
// ServeGen's 105 to 279 req/s daily means). The band is expected * (1 +- z * sigma_h), sigma_h the
// RMS of the relative one-step error widened with the horizon.
//
// Samples arrive at any cadence and are averaged into buckets; a bucket is learned when a later one
// starts. Until a full day of buckets is learned the forecast is not seasonal and the band is wide.
// All state is plain data (JSON-serialisable: unseen slots are null); no clocks.

export interface ForecastOptions {
  /** Bucket length; must divide a day. */
  readonly bucketMs: number;
  /** Offset of the local day the seasonality follows, minutes east of UTC. */
  readonly utcOffsetMinutes: number;
  /** Trend smoothing per bucket. */
  readonly beta: number;
  /** Time-of-week profile smoothing (one update per slot per week). */
  readonly omega: number;
  /** Trend damping per bucket. */
  readonly phi: number;
  /** Smoothing of the recent relative error E. */
  readonly errorSmoothing: number;
  /** Decay of E per bucket of horizon. */
  readonly errorDecay: number;
  /** Smoothing of the squared relative error (band). */
  readonly varianceSmoothing: number;
  /** Loads below this are treated as this (keeps ratios finite on empty buckets). */
  readonly minLoad: number;
}

export const DEFAULT_FORECAST_OPTIONS: ForecastOptions = {
  bucketMs: 10 * 60_000,
  utcOffsetMinutes: 0,
  beta: 0.01,
  omega: 0.5,
  phi: 0.99,
  errorSmoothing: 0.3,
  errorDecay: 0.97,
  varianceSmoothing: 0.03,
  minLoad: 1e-3,
};

const DAY_MS = 86_400_000;
const INITIAL_RELATIVE_VARIANCE = 0.04; // 20 % relative error until learned
const WARMUP_RELATIVE_VARIANCE = 0.25; // 50 % while no full day is known

export interface ForecastState {
  readonly version: 2;
  readonly bucketMs: number;
  /** Bucket being filled: start, sum of samples, count. */
  readonly openBucketStartMs: number | undefined;
  readonly openBucketSum: number;
  readonly openBucketCount: number;
  /** Start of the last learned bucket. */
  readonly lastBucketStartMs: number | undefined;
  /** Deseasonalised trailing mean of the week table. */
  readonly level: number;
  /** Level change per bucket (smoothed); 0 until a week is known. */
  readonly trend: number;
  /** Latest bucket mean per time-of-week slot; null = never seen. */
  readonly history: readonly (number | null)[];
  /** Start (epoch ms) of the bucket each history slot holds; absent in states from before issue 14. */
  readonly historyAtMs?: readonly (number | null)[];
  /** Time-of-week profile (ratio to level); null = slot never seen. */
  readonly weekly: readonly (number | null)[];
  /** Weeks seen per time-of-week slot (capped at 2: enough to trust W fully). */
  readonly weeklySeen: readonly number[];
  readonly recentError: number;
  readonly relativeVariance: number;
  readonly learnedBuckets: number;
}

function bucketsPerDay(o: ForecastOptions): number {
  return Math.round(DAY_MS / o.bucketMs);
}

function validBucketMs(o: ForecastOptions): ForecastOptions {
  const ok = o.bucketMs >= 60_000 && Number.isInteger(DAY_MS / o.bucketMs);
  return ok ? o : { ...o, bucketMs: DEFAULT_FORECAST_OPTIONS.bucketMs };
}

export function createForecastState(options: ForecastOptions = DEFAULT_FORECAST_OPTIONS): ForecastState {
  const o = validBucketMs(options);
  const m = bucketsPerDay(o);
  return {
    version: 2,
    bucketMs: o.bucketMs,
    openBucketStartMs: undefined,
    openBucketSum: 0,
    openBucketCount: 0,
    lastBucketStartMs: undefined,
    level: 0,
    trend: 0,
    history: new Array<number | null>(7 * m).fill(null),
    historyAtMs: new Array<number | null>(7 * m).fill(null),
    weekly: new Array<number | null>(7 * m).fill(null),
    weeklySeen: new Array<number>(7 * m).fill(0),
    recentError: 0,
    relativeVariance: INITIAL_RELATIVE_VARIANCE,
    learnedBuckets: 0,
  };
}

function bucketStartOf(atMs: number, bucketMs: number): number {
  return Math.floor(atMs / bucketMs) * bucketMs;
}

function localBucketIndex(bucketStartMs: number, o: ForecastOptions): number {
  return Math.floor((bucketStartMs + o.utcOffsetMinutes * 60_000) / o.bucketMs);
}

function mod(a: number, n: number): number {
  return ((a % n) + n) % n;
}

function weekSlot(bucketStartMs: number, o: ForecastOptions): number {
  return mod(localBucketIndex(bucketStartMs, o), 7 * bucketsPerDay(o));
}

/** Time-of-day profile at a slot: mean of the week table at that time of day, over the level. */
function dailyFactor(state: ForecastState, bucketStartMs: number, o: ForecastOptions): number | null {
  const m = bucketsPerDay(o);
  const ws0 = mod(weekSlot(bucketStartMs, o), m);
  let sum = 0;
  let n = 0;
  for (let k = 0; k < 7; k++) {
    const v = state.history[ws0 + k * m] ?? null;
    if (v !== null) {
      sum += v;
      n += 1;
    }
  }
  return n === 0 || !(state.level > 0) ? null : sum / n / state.level;
}

/** Seasonal factor at a bucket: the weekly profile blended in as weeks are seen, else daily, else 1. */
function seasonalFactor(state: ForecastState, bucketStartMs: number, o: ForecastOptions): number {
  const d = dailyFactor(state, bucketStartMs, o);
  const ws = weekSlot(bucketStartMs, o);
  const w = state.weekly[ws] ?? null;
  const seen = state.weeklySeen[ws] ?? 0;
  if (w === null) return d ?? 1;
  const c = Math.min(1, seen / 2);
  return c * w + (1 - c) * (d ?? w);
}

function dampedSum(phi: number, h: number): number {
  return phi === 1 ? h : (phi * (1 - Math.pow(phi, h))) / (1 - phi);
}

/** Mean over time of day of the per-time-of-day means of the table, and the days it spans. */
function tableLevel(history: readonly (number | null)[], m: number): { level: number; days: number } {
  let total = 0;
  let slots = 0;
  let cells = 0;
  for (let ds = 0; ds < m; ds++) {
    let sum = 0;
    let n = 0;
    for (let k = 0; k < 7; k++) {
      const v = history[ds + k * m] ?? null;
      if (v !== null) {
        sum += v;
        n += 1;
      }
    }
    if (n > 0) {
      total += sum / n;
      slots += 1;
      cells += n;
    }
  }
  return { level: slots === 0 ? 0 : total / slots, days: cells / m };
}

/** Current deseasonalised level: the trailing table mean moved forward by half its span. */
function currentLevel(state: ForecastState, o: ForecastOptions): number {
  const m = bucketsPerDay(o);
  const { days } = tableLevel(state.history, m);
  return Math.max(o.minLoad, state.level + (state.trend * (days * m)) / 2);
}

/** Learn one finished bucket's mean load. */
function learnBucket(state: ForecastState, bucketStartMs: number, y: number, o: ForecastOptions): ForecastState {
  const yy = Math.max(y, o.minLoad);
  const m = bucketsPerDay(o);
  const ws = weekSlot(bucketStartMs, o);
  const gap =
    state.lastBucketStartMs === undefined
      ? 1
      : Math.max(1, Math.round((bucketStartMs - state.lastBucketStartMs) / o.bucketMs));
  const seasonalBefore = state.learnedBuckets >= m;
  // Error bookkeeping against what was forecast for this bucket.
  let recentError = state.recentError;
  let relativeVariance = state.relativeVariance;
  if (seasonalBefore) {
    const base = currentLevel(state, o) + state.trend * dampedSum(o.phi, gap);
    const seasonalForecast = Math.max(o.minLoad, base * seasonalFactor(state, bucketStartMs, o));
    const decayedError = state.recentError * Math.pow(o.errorDecay, gap);
    const forecast = seasonalForecast * (1 + decayedError);
    const relError = (yy - forecast) / forecast;
    relativeVariance =
      (1 - o.varianceSmoothing) * relativeVariance + o.varianceSmoothing * Math.min(relError * relError, 4);
    recentError = Math.max(
      -0.9,
      Math.min(5, o.errorSmoothing * (yy / seasonalForecast - 1) + (1 - o.errorSmoothing) * decayedError),
    );
  }
  const history = [...state.history];
  history[ws] = yy;
  const historyAtMs = state.historyAtMs === undefined ? undefined : [...state.historyAtMs];
  if (historyAtMs !== undefined) historyAtMs[ws] = bucketStartMs;
  const { level, days } = tableLevel(history, m);
  const weekKnown = days >= 7 - 1e-9 && state.learnedBuckets >= 7 * m;
  const trend = weekKnown
    ? o.beta * ((level - state.level) / gap) + (1 - o.beta) * state.trend * Math.pow(o.phi, gap)
    : 0;
  const next: ForecastState = {
    ...state,
    history,
    historyAtMs,
    level,
    trend,
    recentError,
    relativeVariance,
    lastBucketStartMs: bucketStartMs,
    learnedBuckets: state.learnedBuckets + 1,
  };
  if (next.learnedBuckets < m) return next;
  // Weekly profile: ratio of this bucket to the current level. At the end of the first day, seed it
  // from the whole day (the level is only right once the day is complete).
  const now = currentLevel(next, o);
  const weekly = [...state.weekly];
  const weeklySeen = [...state.weeklySeen];
  const learnSlot = (slot: number, value: number): void => {
    const ratio = value / now;
    const w = weekly[slot] ?? null;
    weekly[slot] = w === null ? ratio : w + o.omega * (ratio - w);
    weeklySeen[slot] = Math.min(2, (weeklySeen[slot] ?? 0) + 1);
  };
  if (next.learnedBuckets === m) {
    for (let slot = 0; slot < 7 * m; slot++) {
      const v = history[slot] ?? null;
      if (v !== null) learnSlot(slot, v);
    }
  } else {
    learnSlot(ws, yy);
  }
  return { ...next, weekly, weeklySeen };
}

/**
 * Fold one load sample (tokens/s at atMs) in. Samples in the open bucket are averaged; a sample in
 * a later bucket closes (learns) the open one. Samples older than the open bucket are ignored.
 */
export function observeLoadSample(
  state: ForecastState,
  atMs: number,
  tokensPerSecond: number,
  options: ForecastOptions = DEFAULT_FORECAST_OPTIONS,
): ForecastState {
  if (!Number.isFinite(atMs) || !Number.isFinite(tokensPerSecond) || tokensPerSecond < 0) return state;
  const o = { ...validBucketMs(options), bucketMs: state.bucketMs };
  const b = bucketStartOf(atMs, o.bucketMs);
  if (state.openBucketStartMs === undefined) {
    return { ...state, openBucketStartMs: b, openBucketSum: tokensPerSecond, openBucketCount: 1 };
  }
  if (b < state.openBucketStartMs) return state;
  if (b === state.openBucketStartMs) {
    return {
      ...state,
      openBucketSum: state.openBucketSum + tokensPerSecond,
      openBucketCount: state.openBucketCount + 1,
    };
  }
  const learned = learnBucket(state, state.openBucketStartMs, state.openBucketSum / state.openBucketCount, o);
  return { ...learned, openBucketStartMs: b, openBucketSum: tokensPerSecond, openBucketCount: 1 };
}

/** Learn a whole series of (bucket start, mean load) points, e.g. history replayed at start-up. */
export function observeLoadSeries(
  state: ForecastState,
  points: readonly { readonly atMs: number; readonly tokensPerSecond: number }[],
  options: ForecastOptions = DEFAULT_FORECAST_OPTIONS,
): ForecastState {
  let s = state;
  for (const p of points) s = observeLoadSample(s, p.atMs, p.tokensPerSecond, options);
  return s;
}

export interface LoadForecast {
  readonly atMs: number;
  /** false while fewer than one day of buckets is known (running mean, wide band). */
  readonly seasonal: boolean;
  readonly expectedTokensPerSecond: number;
  readonly lowerTokensPerSecond: number;
  readonly upperTokensPerSecond: number;
  /** Relative standard error at this horizon. */
  readonly relativeStdDev: number;
}

/**
 * Forecast the load at atMs with a band expected * (1 +- z * sigma). Undefined when nothing has
 * been learned yet. The horizon counts buckets after the last learned bucket.
 */
export function forecastLoad(
  state: ForecastState,
  atMs: number,
  z: number,
  options: ForecastOptions = DEFAULT_FORECAST_OPTIONS,
): LoadForecast | undefined {
  const o = { ...validBucketMs(options), bucketMs: state.bucketMs };
  if (state.lastBucketStartMs === undefined) {
    if (state.openBucketCount === 0) return undefined;
    return band(atMs, false, state.openBucketSum / state.openBucketCount, Math.sqrt(WARMUP_RELATIVE_VARIANCE), z);
  }
  const target = bucketStartOf(atMs, o.bucketMs);
  const h = Math.max(1, Math.round((target - state.lastBucketStartMs) / o.bucketMs));
  const seasonal = state.learnedBuckets >= bucketsPerDay(o);
  const base = seasonal
    ? Math.max(o.minLoad, currentLevel(state, o) + state.trend * dampedSum(o.phi, h))
    : tableLevel(state.history, bucketsPerDay(o)).level;
  const s = seasonal ? seasonalFactor(state, target, o) : 1;
  const expected = base * s * (1 + state.recentError * Math.pow(o.errorDecay, h));
  const sigma1 = Math.sqrt(seasonal ? state.relativeVariance : WARMUP_RELATIVE_VARIANCE);
  const sigma = sigma1 * Math.sqrt(1 + 0.05 * (Math.min(h, 144) - 1));
  return band(atMs, seasonal, expected, sigma, z);
}

function band(atMs: number, seasonal: boolean, expected: number, sigma: number, z: number): LoadForecast {
  const e = Math.max(0, expected);
  return {
    atMs,
    seasonal,
    expectedTokensPerSecond: e,
    lowerTokensPerSecond: Math.max(0, e * (1 - z * sigma)),
    upperTokensPerSecond: e * (1 + z * sigma),
    relativeStdDev: sigma,
  };
}

/** Peak of the upper band over [fromMs, toMs], sampled per bucket (and at both ends). */
export function peakUpperForecast(
  state: ForecastState,
  fromMs: number,
  toMs: number,
  z: number,
  options: ForecastOptions = DEFAULT_FORECAST_OPTIONS,
): LoadForecast | undefined {
  let best: LoadForecast | undefined;
  const step = state.bucketMs;
  for (let t = fromMs; ; t = Math.min(toMs, t + step)) {
    const f = forecastLoad(state, t, z, options);
    if (f !== undefined && (best === undefined || f.upperTokensPerSecond > best.upperTokensPerSecond)) best = f;
    if (t >= toMs) break;
  }
  return best;
}

/**
 * The rise of the load as it recurred on each of the last `days` days: the smallest, over those days,
 * of (highest learned bucket in [peakFromMs, peakToMs] that day) / (lowest learned bucket in
 * [baseFromMs, baseToMs] that day). Callers take the base span as what the current measurement
 * reflects and the peak span as the time until new capacity is Ready. A rise counts only when every
 * one of the days shows it, so a one-off burst yesterday does not pre-warm today. Undefined when any
 * of those days has no learned bucket in a span (or `days` < 1).
 */
export function recurringRiseRatio(
  state: ForecastState,
  baseFromMs: number,
  baseToMs: number,
  peakFromMs: number,
  peakToMs: number,
  days: number,
  options: ForecastOptions = DEFAULT_FORECAST_OPTIONS,
): number | undefined {
  const o = { ...validBucketMs(options), bucketMs: state.bucketMs };
  const n = Math.floor(days);
  if (!(n >= 1) || n > 6 || !(peakToMs >= peakFromMs) || !(baseToMs >= baseFromMs)) return undefined;
  const extreme = (fromMs: number, toMs: number, pick: (a: number, b: number) => number): number | undefined => {
    let out: number | undefined;
    for (let t = bucketStartOf(fromMs, o.bucketMs); t <= toMs; t += o.bucketMs) {
      const v = state.history[weekSlot(t, o)] ?? null;
      if (v !== null) out = out === undefined ? v : pick(out, v);
    }
    return out;
  };
  let ratio = Infinity;
  for (let k = 1; k <= n; k++) {
    const shift = k * DAY_MS;
    const base = extreme(baseFromMs - shift, baseToMs - shift, Math.min);
    const peak = extreme(peakFromMs - shift, peakToMs - shift, Math.max);
    if (base === undefined || peak === undefined || !(base > 0)) return undefined;
    ratio = Math.min(ratio, peak / base);
  }
  return ratio;
}

/**
 * The learned mean of the bucket containing atMs, when the table holds that very bucket (not the
 * same time of week from an earlier week); undefined when it holds no data for it. States without
 * bucket times (from before issue 14) answer with whatever the slot holds.
 */
export function learnedBucketAt(
  state: ForecastState,
  atMs: number,
  options: ForecastOptions = DEFAULT_FORECAST_OPTIONS,
): number | undefined {
  const o = { ...validBucketMs(options), bucketMs: state.bucketMs };
  const start = bucketStartOf(atMs, o.bucketMs);
  const slot = weekSlot(start, o);
  const v = state.history[slot] ?? null;
  if (v === null) return undefined;
  const at = state.historyAtMs?.[slot];
  if (state.historyAtMs !== undefined && at !== start) return undefined;
  return v;
}

/** Whole days of buckets learned so far. */
export function learnedDays(state: ForecastState): number {
  return Math.floor((state.learnedBuckets * state.bucketMs) / DAY_MS);
}
