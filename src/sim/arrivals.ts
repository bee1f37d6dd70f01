// From traces to per-second load, and from load to the work of the SLO's phase.
//
// Rate series: the rate is interpolated linearly between window centres (or replayed as steps);
// arrivals are a Gamma renewal process (inter-arrival CV configurable, ServeGen fits CV ~1-3) run
// in operational time, so the rate may change from second to second. Above
// `exactMaxRatePerS` requests/s the per-second count is drawn from the renewal process's
// large-count limit instead (Gamma with mean lambda and variance cv^2 * lambda), which keeps a
// 14-day replay at hundreds of requests/s to a few seconds of work.
// Request traces: each request lands in its second; the scale multiplies requests and tokens
// (each request stands for `scale` requests arriving together), preserving the real burst shape.

import { createRng } from "../domain/rng.ts";
import type { Rng } from "../domain/rng.ts";
import type { LatencyMetric } from "../domain/latency/model.ts";
import type { RateTrace, RequestTrace, Trace } from "./traces.ts";
import type { LoadSeries, WorkSeries } from "./types.ts";

/** One inter-arrival gap of a unit-rate Gamma renewal process with the given CV (mean 1). */
export function unitGammaGap(rng: Rng, cv: number): number {
  if (!(cv > 0)) return 1;
  const shape = 1 / (cv * cv);
  return rng.gamma(shape, cv * cv);
}

/** Arrival times (s) of a Gamma renewal process with constant rate over [0, durationS). */
export function gammaRenewalTimes(ratePerS: number, cv: number, durationS: number, rng: Rng): Float64Array {
  const out: number[] = [];
  if (!(ratePerS > 0)) return new Float64Array(0);
  let t = unitGammaGap(rng, cv) / ratePerS;
  while (t < durationS) {
    out.push(t);
    t += unitGammaGap(rng, cv) / ratePerS;
  }
  return new Float64Array(out);
}

export interface SynthesisOptions {
  readonly seed: number;
  /** Inter-arrival coefficient of variation (1 = Poisson). */
  readonly cv: number;
  /** Multiplies the trace's rate (more clients). */
  readonly scale: number;
  /** Per-request token-count CV used to add noise to per-second token sums. Default 1. */
  readonly tokenCv?: number;
  /** Above this rate (req/s) per-second counts use the large-count limit. Default 64. */
  readonly exactMaxRatePerS?: number;
  /** Replay a rate series as steps instead of interpolating between window centres. */
  readonly rateSteps?: boolean;
}

function tokenSum(count: number, mean: number, cv: number, rng: Rng): number {
  if (count <= 0) return 0;
  const sd = Math.sqrt(count) * cv * mean;
  return Math.max(0, count * mean + sd * rng.normal());
}

/**
 * Per-second rate of a rate series: piecewise linear between window centres (the published rates
 * are averages of a continuous process; replaying them as steps would add an artificial jump at
 * every window edge), or a step function with `steps`.
 */
export function perSecondRate(trace: RateTrace, scale: number, steps = false): Float64Array {
  const n = trace.windowStartS.length;
  const endS = n === 0 ? 0 : (trace.windowStartS[n - 1] as number) + (trace.windowS[n - 1] as number);
  const seconds = Math.max(0, Math.ceil(endS));
  const out = new Float64Array(seconds);
  let w = 0;
  for (let s = 0; s < seconds; s++) {
    const t = s + 0.5;
    while (w + 1 < n && t >= (trace.windowStartS[w + 1] as number)) w++;
    const rate = trace.ratePerS[w] as number;
    if (steps || n === 1) {
      out[s] = rate * scale;
      continue;
    }
    const centre = (trace.windowStartS[w] as number) + (trace.windowS[w] as number) / 2;
    const other = t < centre ? w - 1 : w + 1;
    if (other < 0 || other >= n) {
      out[s] = rate * scale;
      continue;
    }
    const otherCentre = (trace.windowStartS[other] as number) + (trace.windowS[other] as number) / 2;
    const f = (t - centre) / (otherCentre - centre);
    out[s] = Math.max(0, rate + f * ((trace.ratePerS[other] as number) - rate)) * scale;
  }
  return out;
}

/** Per-second load of a rate series with synthesised Gamma arrivals. */
export function synthesizeRateLoad(trace: RateTrace, options: SynthesisOptions): LoadSeries {
  const rates = perSecondRate(trace, options.scale, options.rateSteps ?? false);
  const seconds = rates.length;
  const requests = new Float64Array(seconds);
  const inputTokens = new Float64Array(seconds);
  const outputTokens = new Float64Array(seconds);
  const rng = createRng(options.seed);
  const cv = options.cv;
  const exactMax = options.exactMaxRatePerS ?? 64;
  let u = unitGammaGap(rng, cv); // operational time to the next arrival
  for (let s = 0; s < seconds; s++) {
    const rate = rates[s] as number;
    if (!(rate > 0)) continue;
    if (rate <= exactMax) {
      // Gamma renewal process in operational time (rate constant within the second).
      let count = 0;
      while (u <= rate) {
        count++;
        u += unitGammaGap(rng, cv);
      }
      u -= rate;
      requests[s] = count;
    } else {
      // Large-count limit of the renewal process: mean rate, variance cv^2 * rate per second.
      requests[s] = Math.round(rng.gamma(rate / (cv * cv), cv * cv));
      u = unitGammaGap(rng, cv);
    }
  }
  const tokenCv = options.tokenCv ?? 1;
  for (let s = 0; s < seconds; s++) {
    const c = requests[s] as number;
    inputTokens[s] = tokenSum(c, trace.meanInputTokens, tokenCv, rng);
    outputTokens[s] = tokenSum(c, trace.meanOutputTokens, tokenCv, rng);
  }
  return { seconds, startEpochMs: trace.startEpochMs, requests, inputTokens, outputTokens };
}

/** Per-second load of a request trace; `scale` multiplies requests and tokens. */
export function requestTraceLoad(trace: RequestTrace, scale: number): LoadSeries {
  const n = trace.timesMs.length;
  const seconds = n === 0 ? 0 : Math.floor((trace.timesMs[n - 1] as number) / 1000) + 1;
  const requests = new Float64Array(seconds);
  const inputTokens = new Float64Array(seconds);
  const outputTokens = new Float64Array(seconds);
  for (let i = 0; i < n; i++) {
    const s = Math.floor((trace.timesMs[i] as number) / 1000);
    requests[s] = (requests[s] as number) + scale;
    inputTokens[s] = (inputTokens[s] as number) + (trace.inputTokens[i] as number) * scale;
    outputTokens[s] = (outputTokens[s] as number) + (trace.outputTokens[i] as number) * scale;
  }
  return { seconds, startEpochMs: trace.startEpochMs, requests, inputTokens, outputTokens };
}

export function traceLoad(trace: Trace, options: SynthesisOptions): LoadSeries {
  return trace.kind === "rate" ? synthesizeRateLoad(trace, options) : requestTraceLoad(trace, options.scale);
}

/** Seconds a user waits per output token (DeepSeek users see 20-22 tok/s). */
export const DEFAULT_GENERATION_SECONDS_PER_TOKEN = 0.05;

function prefix(a: Float64Array): Float64Array {
  const p = new Float64Array(a.length + 1);
  let acc = 0;
  for (let i = 0; i < a.length; i++) {
    acc += a[i] as number;
    p[i + 1] = acc;
  }
  return p;
}

/**
 * The SLO phase's work per second. TTFT: prompt tokens at arrival. Per-token latency and ITL: a
 * request's output tokens are generated over its decode span (mean output length x seconds per
 * token), so they are spread uniformly over that many seconds.
 */
export function buildWorkSeries(
  load: LoadSeries,
  metric: LatencyMetric,
  generationSecondsPerToken = DEFAULT_GENERATION_SECONDS_PER_TOKEN,
): WorkSeries {
  const seconds = load.seconds;
  let totalReq = 0;
  let totalOut = 0;
  for (let s = 0; s < seconds; s++) {
    totalReq += load.requests[s] as number;
    totalOut += load.outputTokens[s] as number;
  }
  const meanOutputTokens = totalReq > 0 ? totalOut / totalReq : 0;
  let tokens: Float64Array;
  if (metric === "ttft") {
    tokens = Float64Array.from(load.inputTokens);
  } else {
    tokens = new Float64Array(seconds);
    const diff = new Float64Array(seconds + 1);
    for (let s = 0; s < seconds; s++) {
      const out = load.outputTokens[s] as number;
      if (!(out > 0)) continue;
      const req = Math.max(1e-9, load.requests[s] as number);
      const span = Math.min(600, Math.max(1, Math.round((out / req) * generationSecondsPerToken)));
      const end = Math.min(seconds, s + span);
      const perSecond = out / span;
      diff[s] = (diff[s] as number) + perSecond;
      diff[end] = (diff[end] as number) - perSecond;
    }
    let acc = 0;
    for (let s = 0; s < seconds; s++) {
      acc += diff[s] as number;
      tokens[s] = Math.max(0, acc);
    }
  }
  return {
    metric,
    seconds,
    tokens,
    tokensPrefix: prefix(tokens),
    requestsPrefix: prefix(load.requests),
    meanOutputTokens,
  };
}
