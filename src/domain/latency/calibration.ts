// Per-deployment online calibration of the latency model.
//
// Two numbers correct the defaults: latencyScale (the deployment is uniformly slower or faster
// than the model, e.g. longer prompts, another GPU) and capacityScale (the GPU saturates at a
// different token rate). They are fitted by weighted least squares in log-latency space over the
// observed (load, p99) points (Huber loss, so time-outs and transients have bounded influence), with a weak prior pulling both towards 1 so the fit is defined from
// the first observation and the model's error shrinks as observations arrive.
//
// To keep the state small, serialisable and representative of the whole load range (not only
// the last hour at night-time load), observations are pooled into bins by nominal utilisation
// (rho at the uncorrected model). Each bin keeps an exponentially weighted mean whose weight is
// capped (so recent points dominate inside a bin) and decays with a half-life (so drift is tracked).

import {
  hottestGpuUtilization,
  IDENTITY_CORRECTION,
  predictP99LatencyMs,
  queueingMultiplier,
  unloadedLatencyMs,
} from "./model.ts";
import type { LatencyConditions, LatencyCorrection, LatencyModelParams } from "./model.ts";

export interface LatencyObservation extends LatencyConditions {
  /** When the observation window ended (epoch ms). */
  readonly atMs: number;
  /** Observed p99 of the SLO's metric over the window, in ms. */
  readonly observedP99Ms: number;
}

export interface CalibrationBin {
  readonly index: number;
  /** Weighted means of the pooled observations. */
  readonly rho: number;
  readonly logBaseMs: number;
  readonly logObservedMs: number;
  /** Weight at updatedAtMs (decays afterwards). */
  readonly weight: number;
  readonly updatedAtMs: number;
}

export interface LatencyCalibrationState {
  readonly version: 1;
  readonly bins: readonly CalibrationBin[];
  readonly correction: LatencyCorrection;
  readonly observationCount: number;
  readonly lastObservedAtMs: number | undefined;
}

export interface CalibrationOptions {
  /** Width of a utilisation bin (nominal rho). */
  readonly binWidth: number;
  /** Nominal utilisations above this share the last bin. */
  readonly maxRho: number;
  /** Cap on a bin's weight: a bin is an EWMA with factor 1/maxBinWeight once full. */
  readonly maxBinWeight: number;
  /** Observations lose half their weight after this long. */
  readonly halfLifeMs: number;
  /** Strength of the prior towards the uncorrected model, in observation-equivalents. */
  readonly priorWeight: number;
  /** Search range of capacityScale. */
  readonly minCapacityScale: number;
  readonly maxCapacityScale: number;
  /** Observations whose hottest-GPU utilisation (under the current correction) is at or above this
   * are skipped: near saturation p99 measures queue backlog dynamics (and time-outs), not the
   * steady-state curve, and learning from it would cascade into over-scaling. */
  readonly maxUtilization: number;
}

export const DEFAULT_CALIBRATION_OPTIONS: CalibrationOptions = {
  binWidth: 0.05,
  maxRho: 2,
  maxBinWeight: 10,
  halfLifeMs: 24 * 3_600_000,
  priorWeight: 1,
  minCapacityScale: 0.2,
  maxCapacityScale: 5,
  maxUtilization: 0.9,
};

export function createLatencyCalibration(): LatencyCalibrationState {
  return { version: 1, bins: [], correction: IDENTITY_CORRECTION, observationCount: 0, lastObservedAtMs: undefined };
}

function decayedWeight(bin: CalibrationBin, nowMs: number, halfLifeMs: number): number {
  const ageMs = Math.max(0, nowMs - bin.updatedAtMs);
  return bin.weight * Math.pow(0.5, ageMs / halfLifeMs);
}

/** True when an observation carries information the fit can use. */
export function isUsableObservation(o: LatencyObservation): boolean {
  return (
    Number.isFinite(o.observedP99Ms) &&
    o.observedP99Ms > 0 &&
    Number.isFinite(o.tokensPerSecond) &&
    o.tokensPerSecond >= 0 &&
    Number.isFinite(o.gpuCount) &&
    o.gpuCount > 0 &&
    Number.isFinite(o.atMs)
  );
}

/** Fold one observation in and refit. Unusable observations return the state unchanged. */
export function observeLatency(
  state: LatencyCalibrationState,
  params: LatencyModelParams,
  observation: LatencyObservation,
  options: CalibrationOptions = DEFAULT_CALIBRATION_OPTIONS,
): LatencyCalibrationState {
  if (!isUsableObservation(observation)) return state;
  const rho = hottestGpuUtilization(params, observation);
  if (!Number.isFinite(rho)) return state;
  if (!(hottestGpuUtilization(params, observation, state.correction) < options.maxUtilization)) return state;
  const binCount = Math.max(1, Math.ceil(options.maxRho / options.binWidth));
  const index = Math.min(binCount - 1, Math.floor(rho / options.binWidth));
  const logBaseMs = Math.log(unloadedLatencyMs(params, observation.crossNodeShare));
  const logObservedMs = Math.log(observation.observedP99Ms);
  const existing = state.bins.find((b) => b.index === index);
  let bin: CalibrationBin;
  if (existing === undefined) {
    bin = { index, rho, logBaseMs, logObservedMs, weight: 1, updatedAtMs: observation.atMs };
  } else {
    const w0 = decayedWeight(existing, observation.atMs, options.halfLifeMs);
    const w = Math.min(w0 + 1, options.maxBinWeight);
    const k = 1 / w;
    bin = {
      index,
      rho: existing.rho + k * (rho - existing.rho),
      logBaseMs: existing.logBaseMs + k * (logBaseMs - existing.logBaseMs),
      logObservedMs: existing.logObservedMs + k * (logObservedMs - existing.logObservedMs),
      weight: w,
      updatedAtMs: Math.max(existing.updatedAtMs, observation.atMs),
    };
  }
  const bins = [...state.bins.filter((b) => b.index !== index), bin].sort((a, b) => a.index - b.index);
  const correction = fitCorrection(bins, params.queueingFactor, observation.atMs, options);
  return {
    version: 1,
    bins,
    correction,
    observationCount: state.observationCount + 1,
    lastObservedAtMs: Math.max(state.lastObservedAtMs ?? -Infinity, observation.atMs),
  };
}

interface Point {
  readonly w: number;
  readonly rho: number;
  readonly logBase: number;
  readonly y: number;
}

/** Utilisation cap inside the fit: an observation the model calls saturated is compared with the
 * model at this utilisation (about 50x the base latency with queueingFactor 1) rather than with
 * Infinity, so one time-out-sized p99 cannot force the capacity scale above it. */
const FIT_RHO_CAP = 0.98;
/** Huber threshold on the log-latency residual (about 30 %): larger residuals count linearly. */
const HUBER_DELTA = 0.3;
const MAX_LOG_LATENCY_SCALE = Math.log(5);

function huber(r: number): number {
  const a = Math.abs(r);
  return a <= HUBER_DELTA ? 0.5 * r * r : HUBER_DELTA * (a - 0.5 * HUBER_DELTA);
}

/** Robust loss at a capacity scale, with the latency scale solved by iteratively reweighted least squares. */
function lossAt(
  points: readonly Point[],
  queueingFactor: number,
  logBeta: number,
  prior: number,
): { loss: number; logAlpha: number } {
  const beta = Math.exp(logBeta);
  const partial = points.map(
    (p) => p.y - p.logBase - Math.log(queueingMultiplier(queueingFactor, Math.min(p.rho / beta, FIT_RHO_CAP))),
  );
  let logAlpha = 0;
  for (let iteration = 0; iteration < 6; iteration++) {
    let sw = 0;
    let swr = 0;
    for (let i = 0; i < points.length; i++) {
      const r = (partial[i] as number) - logAlpha;
      const h = (points[i] as Point).w * (Math.abs(r) <= HUBER_DELTA ? 1 : HUBER_DELTA / Math.abs(r));
      sw += h;
      swr += h * (partial[i] as number);
    }
    logAlpha = Math.max(-MAX_LOG_LATENCY_SCALE, Math.min(MAX_LOG_LATENCY_SCALE, swr / (sw + prior)));
  }
  let loss = prior * 0.5 * (logAlpha * logAlpha + logBeta * logBeta);
  for (let i = 0; i < points.length; i++) loss += (points[i] as Point).w * huber((partial[i] as number) - logAlpha);
  return { loss, logAlpha };
}

/** Robust (Huber) weighted least-squares fit of (latencyScale, capacityScale) over the bins. */
export function fitCorrection(
  bins: readonly CalibrationBin[],
  queueingFactor: number,
  nowMs: number,
  options: CalibrationOptions = DEFAULT_CALIBRATION_OPTIONS,
): LatencyCorrection {
  const points: Point[] = bins
    .map((b) => ({
      w: decayedWeight(b, nowMs, options.halfLifeMs),
      rho: b.rho,
      logBase: b.logBaseMs,
      y: b.logObservedMs,
    }))
    .filter((p) => p.w > 1e-6);
  if (points.length === 0) return IDENTITY_CORRECTION;
  const lo = Math.log(options.minCapacityScale);
  const hi = Math.log(options.maxCapacityScale);
  const gridSteps = 120;
  let bestI = -1;
  let best = Infinity;
  for (let i = 0; i <= gridSteps; i++) {
    const { loss } = lossAt(points, queueingFactor, lo + ((hi - lo) * i) / gridSteps, options.priorWeight);
    if (loss < best) {
      best = loss;
      bestI = i;
    }
  }
  if (bestI < 0) return IDENTITY_CORRECTION; // every capacityScale in range saturates some observation
  // Golden-section refinement inside the neighbouring grid cells.
  let a = lo + ((hi - lo) * Math.max(0, bestI - 1)) / gridSteps;
  let b = lo + ((hi - lo) * Math.min(gridSteps, bestI + 1)) / gridSteps;
  const g = (Math.sqrt(5) - 1) / 2;
  let c = b - g * (b - a);
  let d = a + g * (b - a);
  let fc = lossAt(points, queueingFactor, c, options.priorWeight).loss;
  let fd = lossAt(points, queueingFactor, d, options.priorWeight).loss;
  for (let i = 0; i < 40; i++) {
    if (fc <= fd) {
      b = d;
      d = c;
      fd = fc;
      c = b - g * (b - a);
      fc = lossAt(points, queueingFactor, c, options.priorWeight).loss;
    } else {
      a = c;
      c = d;
      fc = fd;
      d = a + g * (b - a);
      fd = lossAt(points, queueingFactor, d, options.priorWeight).loss;
    }
  }
  const gridBest = lo + ((hi - lo) * bestI) / gridSteps;
  const refined = fc <= fd ? c : d;
  const logBeta = Math.min(fc, fd) <= best ? refined : gridBest;
  const { logAlpha } = lossAt(points, queueingFactor, logBeta, options.priorWeight);
  return { latencyScale: Math.exp(logAlpha), capacityScale: Math.exp(logBeta) };
}

/** Predicted p99 with the deployment's current calibration applied. */
export function predictCalibratedP99LatencyMs(
  params: LatencyModelParams,
  calibration: LatencyCalibrationState,
  conditions: LatencyConditions,
): number {
  return predictP99LatencyMs(params, conditions, calibration.correction);
}
