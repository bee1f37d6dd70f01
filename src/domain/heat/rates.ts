// Routing heat from per-(layer, expert) token counters: cumulative counters sampled over time
// (e.g. scraped by Prometheus from each shard pod) -> smoothed tokens/s per expert, plus a
// confidence / staleness verdict the controller uses to refuse to act on bad data.
//
// Per series: samples sorted by time; NaN, infinite, negative values and samples in the future are
// dropped; for each pair of consecutive samples within the window, the increase is the difference,
// or the new value itself when the counter went down (a reset: the process restarted from 0, as
// in Prometheus' rate()); pairs further apart than maxGapMs are not bridged (a gap, no rate). The
// smoothed rate is an exponentially time-weighted ratio sum(increase * k) / sum(duration * k), with
// k = 2^(-(nowMs - intervalEnd) / halfLifeMs), so recent intervals dominate.
// Several series for one (layer, expert) -- one per replica / pod -- add up.
// Experts with no usable interval get their layer's mean observed rate (a neutral guess that keeps
// them placed) and lower the coverage.

export interface CounterSample {
  readonly timeMs: number;
  /** Cumulative tokens routed to the expert (a counter). */
  readonly value: number;
}

export interface ExpertCounterSeries {
  readonly layer: number;
  readonly expert: number;
  readonly samples: readonly CounterSample[];
}

export interface HeatEstimateOptions {
  readonly layerCount: number;
  readonly expertCount: number;
  readonly nowMs: number;
  /** Only intervals ending within this window count. Default 10 min. */
  readonly windowMs?: number;
  /** Half-life of the exponential time weighting. Default 2 min. */
  readonly halfLifeMs?: number;
  /** Consecutive samples further apart are a gap, not an interval. Default 5 min. */
  readonly maxGapMs?: number;
  /** Data whose newest sample is older than this is stale. Default 2 min. */
  readonly staleAfterMs?: number;
  /** Minimum share of (layer, expert) pairs with data for the estimate to be usable. Default 0.9. */
  readonly minCoverage?: number;
  /** Minimum mean tokens observed per expert in the window (sampling noise). Default 100. */
  readonly minTokensPerExpert?: number;
  /** Minimum confidence for the estimate to be usable. Default 0.5. */
  readonly minConfidence?: number;
}

export interface HeatEstimate {
  /** Smoothed tokens/s, [layer][expert]; filled for experts without data (see `observed`). */
  readonly ratesPerSecond: number[][];
  /** Whether each (layer, expert) had at least one usable interval. */
  readonly observed: boolean[][];
  /** Share of (layer, expert) pairs observed. */
  readonly coverage: number;
  readonly layerCoverage: number[];
  /** nowMs - newest usable sample; null when there is none. */
  readonly newestSampleAgeMs: number | null;
  /** Mean tokens observed per (layer, expert) in the window. */
  readonly tokensPerExpert: number;
  /** 0..1: coverage x freshness x volume. */
  readonly confidence: number;
  /** True when the controller may act on it; otherwise `reasons` says why not. */
  readonly usable: boolean;
  readonly reasons: string[];
  readonly counterResets: number;
  readonly gaps: number;
  /** Samples dropped as NaN / negative / infinite / in the future / out of range. */
  readonly droppedSamples: number;
}

const DEFAULTS = {
  windowMs: 10 * 60_000,
  halfLifeMs: 2 * 60_000,
  maxGapMs: 5 * 60_000,
  staleAfterMs: 2 * 60_000,
  minCoverage: 0.9,
  minTokensPerExpert: 100,
  minConfidence: 0.5,
};

/** Estimate smoothed per-expert rates from counter series. Pure; `nowMs` is the only clock. */
export function estimateHeat(series: readonly ExpertCounterSeries[], options: HeatEstimateOptions): HeatEstimate {
  const o = { ...DEFAULTS, ...stripUndefined(options), nowMs: options.nowMs };
  const L = Math.max(0, Math.floor(options.layerCount));
  const E = Math.max(0, Math.floor(options.expertCount));
  const rates = new Float64Array(L * E);
  const tokens = new Float64Array(L * E);
  const seen = new Uint8Array(L * E);
  let newest = -Infinity;
  let resets = 0;
  let gaps = 0;
  let dropped = 0;
  const windowStart = o.nowMs - o.windowMs;
  const ln2 = Math.LN2;

  for (const s of series) {
    if (!Number.isInteger(s.layer) || !Number.isInteger(s.expert) || s.layer < 0 || s.layer >= L || s.expert < 0 || s.expert >= E) {
      dropped += s.samples.length;
      continue;
    }
    const idx = s.layer * E + s.expert;
    const clean: CounterSample[] = [];
    for (const p of s.samples) {
      if (!Number.isFinite(p.timeMs) || !Number.isFinite(p.value) || p.value < 0 || p.timeMs > o.nowMs) {
        dropped += 1;
        continue;
      }
      clean.push(p);
    }
    clean.sort((a, b) => a.timeMs - b.timeMs);
    let weightedTokens = 0;
    let weightedMs = 0;
    for (let i = 1; i < clean.length; i++) {
      const a = clean[i - 1]!;
      const b = clean[i]!;
      const dt = b.timeMs - a.timeMs;
      if (dt <= 0) continue; // duplicate timestamp
      if (b.timeMs < windowStart) continue;
      if (dt > o.maxGapMs) {
        gaps += 1;
        continue;
      }
      let inc = b.value - a.value;
      if (inc < 0) {
        resets += 1;
        inc = b.value;
      }
      const k = Math.exp((-(o.nowMs - b.timeMs) * ln2) / o.halfLifeMs);
      weightedTokens += inc * k;
      weightedMs += dt * k;
      tokens[idx]! += inc;
      seen[idx] = 1;
      if (b.timeMs > newest) newest = b.timeMs;
    }
    // Series of one expert (one per replica / pod) add up.
    if (weightedMs > 0) rates[idx]! += (weightedTokens / weightedMs) * 1000;
  }

  const ratesPerSecond: number[][] = [];
  const observed: boolean[][] = [];
  const layerCoverage: number[] = [];
  let observedCount = 0;
  let tokenSum = 0;
  const rateOf = (i: number): number => rates[i]!;
  // Global mean observed rate for layers with no data at all.
  let globalSum = 0;
  let globalN = 0;
  for (let i = 0; i < L * E; i++) {
    if (seen[i]) {
      globalSum += rateOf(i);
      globalN += 1;
    }
  }
  const globalMean = globalN > 0 ? globalSum / globalN : 0;
  for (let l = 0; l < L; l++) {
    const row = new Array<number>(E).fill(0);
    const obs = new Array<boolean>(E).fill(false);
    let sum = 0;
    let n = 0;
    for (let e = 0; e < E; e++) {
      const i = l * E + e;
      if (!seen[i]) continue;
      row[e] = rateOf(i);
      obs[e] = true;
      sum += row[e]!;
      n += 1;
      tokenSum += tokens[i]!;
    }
    const fill = n > 0 ? sum / n : globalMean;
    for (let e = 0; e < E; e++) if (!obs[e]) row[e] = fill;
    observedCount += n;
    layerCoverage.push(E > 0 ? n / E : 0);
    ratesPerSecond.push(row);
    observed.push(obs);
  }

  const total = L * E;
  const coverage = total > 0 ? observedCount / total : 0;
  const newestSampleAgeMs = Number.isFinite(newest) ? o.nowMs - newest : null;
  const tokensPerExpert = total > 0 ? tokenSum / total : 0;
  const freshness = newestSampleAgeMs === null
    ? 0
    : clamp01(1 - Math.max(0, newestSampleAgeMs - o.staleAfterMs) / o.staleAfterMs);
  const volume = o.minTokensPerExpert > 0 ? clamp01(tokensPerExpert / o.minTokensPerExpert) : 1;
  const confidence = coverage * freshness * volume;

  const reasons: string[] = [];
  if (total === 0) reasons.push("no layers or experts to estimate");
  if (newestSampleAgeMs === null) reasons.push("no usable counter samples in the window");
  else if (newestSampleAgeMs > o.staleAfterMs) {
    reasons.push(`data is stale: newest sample is ${Math.round(newestSampleAgeMs / 1000)} s old (limit ${Math.round(o.staleAfterMs / 1000)} s)`);
  }
  if (coverage < o.minCoverage) reasons.push(`coverage ${(coverage * 100).toFixed(1)}% of experts is below ${(o.minCoverage * 100).toFixed(0)}%`);
  if (tokensPerExpert < o.minTokensPerExpert) {
    reasons.push(`only ${tokensPerExpert.toFixed(1)} tokens per expert observed (need ${o.minTokensPerExpert}): too noisy`);
  }
  if (confidence < o.minConfidence && reasons.length === 0) reasons.push(`confidence ${confidence.toFixed(2)} is below ${o.minConfidence}`);

  return {
    ratesPerSecond,
    observed,
    coverage,
    layerCoverage,
    newestSampleAgeMs,
    tokensPerExpert,
    confidence,
    usable: reasons.length === 0,
    reasons,
    counterResets: resets,
    gaps,
    droppedSamples: dropped,
  };
}

function clamp01(x: number): number {
  return x < 0 ? 0 : x > 1 ? 1 : x;
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  const out: Partial<T> = {};
  for (const [k, v] of Object.entries(o)) if (v !== undefined) (out as Record<string, unknown>)[k] = v;
  return out;
}
