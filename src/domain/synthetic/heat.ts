// Synthetic routing heat calibrated to real DeepSeek-V3 expert-load statistics (SGLang's published
// logical_count files, see ../shared/data/README.md): per layer, max/mean expert load ~5-8
// (median), min/mean ~0.07-0.18, coefficient of variation ~0.72-1.02, top 8 of 256 experts carry
// 12-17% of the tokens and the top 32 carry 31-40%.
//
// Model: per layer, log load = sigma * z + skew * (z^2 - 1) / 2 with z ~ N(0, 1) per expert, sigma
// and skew drawn per layer (the skew term fattens the hot tail, as in the real data). Windows
// evolve by `driftHeat` (multiplicative log-normal change tuned to an exact target correlation with
// the previous window) and `sampleHeat` (pure sampling noise: Poisson counts of a fixed number of
// routed tokens). Pure and seeded: same options -> same numbers.

import { median } from "../quantile.ts";
import { createRng } from "../rng.ts";
import type { Rng } from "../rng.ts";

export interface SyntheticHeatOptions {
  readonly layerCount: number;
  readonly expertCount: number;
  readonly seed: number;
  /** Tokens per layer per window; each token is routed to topK experts. Default 1,000,000. */
  readonly tokensPerLayer?: number;
  /** Experts per token. Default 8 (DeepSeek-V3). */
  readonly topK?: number;
  /** Range of the per-layer log-normal sigma. Default [0.56, 0.78]. */
  readonly sigmaRange?: readonly [number, number];
  /** Range of the per-layer skew (hot-tail) coefficient. Default [0.03, 0.1]. */
  readonly skewRange?: readonly [number, number];
}

/** Expected routed tokens per expert, [layer][expert]; each layer sums to tokensPerLayer * topK. */
export function generateHeat(options: SyntheticHeatOptions): number[][] {
  const rng = createRng(options.seed);
  const tokens = (options.tokensPerLayer ?? 1_000_000) * (options.topK ?? 8);
  const [s0, s1] = options.sigmaRange ?? [0.56, 0.78];
  const [k0, k1] = options.skewRange ?? [0.03, 0.1];
  const heat: number[][] = [];
  for (let l = 0; l < options.layerCount; l++) {
    const sigma = rng.uniform(s0, s1);
    const skew = rng.uniform(k0, k1);
    const row: number[] = [];
    for (let e = 0; e < options.expertCount; e++) {
      const z = rng.normal();
      row.push(Math.exp(sigma * z + (skew * (z * z - 1)) / 2));
    }
    heat.push(scaleTo(row, tokens));
  }
  return heat;
}

function scaleTo(row: number[], total: number): number[] {
  let sum = 0;
  for (const v of row) sum += v;
  return sum > 0 ? row.map((v) => (v * total) / sum) : row.map(() => total / row.length);
}

/** Pearson correlation of two equal-length vectors (1 when either is constant and they are equal). */
export function correlation(a: ArrayLike<number>, b: ArrayLike<number>): number {
  const n = a.length;
  let ma = 0;
  let mb = 0;
  for (let i = 0; i < n; i++) {
    ma += a[i] as number;
    mb += b[i] as number;
  }
  ma /= n;
  mb /= n;
  let sab = 0;
  let saa = 0;
  let sbb = 0;
  for (let i = 0; i < n; i++) {
    const da = (a[i] as number) - ma;
    const db = (b[i] as number) - mb;
    sab += da * db;
    saa += da * da;
    sbb += db * db;
  }
  if (saa === 0 || sbb === 0) return saa === sbb ? 1 : 0;
  return sab / Math.sqrt(saa * sbb);
}

export interface DriftOptions {
  /** Target Pearson correlation of each layer's loads with the previous window's (e.g. 0.98). */
  readonly correlation: number;
  readonly seed: number;
}

/**
 * The next window under drift: each expert's load is multiplied by exp(tau * n - tau^2 / 2),
 * n ~ N(0, 1), with tau chosen per layer (bisection on the same draws) so the new loads correlate
 * with the old ones at exactly `correlation` (to 1e-4). Layer totals are kept.
 */
export function driftHeat(heat: ReadonlyArray<ReadonlyArray<number>>, options: DriftOptions): number[][] {
  const rng = createRng(options.seed);
  const target = Math.min(1, Math.max(-1, options.correlation));
  return heat.map((row) => {
    const noise = row.map(() => rng.normal());
    let total = 0;
    for (const v of row) total += v;
    const apply = (tau: number): number[] =>
      scaleTo(
        row.map((v, e) => v * Math.exp(tau * noise[e]! - (tau * tau) / 2)),
        total,
      );
    if (target >= 1) return row.slice();
    let lo = 0;
    let hi = 4;
    for (let i = 0; i < 60; i++) {
      const mid = (lo + hi) / 2;
      if (correlation(row, apply(mid)) > target) lo = mid;
      else hi = mid;
    }
    return apply((lo + hi) / 2);
  });
}

export interface SampleOptions {
  /** Tokens in the window (each routed to topK experts). */
  readonly tokensPerLayer: number;
  readonly topK?: number;
  readonly seed: number;
}

/**
 * Pure sampling noise: Poisson counts of the routed tokens of one window whose routing probabilities
 * are the given heat (normalised per layer). The underlying distribution does not change.
 */
export function sampleHeat(heat: ReadonlyArray<ReadonlyArray<number>>, options: SampleOptions): number[][] {
  const rng: Rng = createRng(options.seed);
  const routed = options.tokensPerLayer * (options.topK ?? 8);
  return heat.map((row) => {
    let sum = 0;
    for (const v of row) sum += v;
    return row.map((v) => (sum > 0 ? rng.poisson((routed * v) / sum) : 0));
  });
}

export interface HeatStatistics {
  readonly maxOverMean: number;
  readonly minOverMean: number;
  readonly coefficientOfVariation: number;
  /** Share of tokens carried by the 8 / 32 hottest experts. */
  readonly top8Share: number;
  readonly top32Share: number;
}

/** Skew statistics of one layer's loads (the quantities the data README reports). */
export function heatStatistics(row: ReadonlyArray<number>): HeatStatistics {
  const n = row.length;
  let sum = 0;
  for (const v of row) sum += v;
  const mean = sum / n;
  let sq = 0;
  for (const v of row) sq += (v - mean) * (v - mean);
  const sorted = row.slice().sort((a, b) => b - a);
  const top = (k: number): number => sorted.slice(0, k).reduce((a, b) => a + b, 0) / (sum || 1);
  return {
    maxOverMean: mean > 0 ? sorted[0]! / mean : 0,
    minOverMean: mean > 0 ? sorted[n - 1]! / mean : 0,
    coefficientOfVariation: mean > 0 ? Math.sqrt(sq / n) / mean : 0,
    top8Share: top(8),
    top32Share: top(32),
  };
}

/** Median of each statistic over layers. */
export function medianHeatStatistics(heat: ReadonlyArray<ReadonlyArray<number>>): HeatStatistics {
  const stats = heat.map(heatStatistics);
  const med = (pick: (s: HeatStatistics) => number): number => (stats.length === 0 ? 0 : median(stats.map(pick)));
  return {
    maxOverMean: med((s) => s.maxOverMean),
    minOverMean: med((s) => s.minOverMean),
    coefficientOfVariation: med((s) => s.coefficientOfVariation),
    top8Share: med((s) => s.top8Share),
    top32Share: med((s) => s.top32Share),
  };
}
