// Capacity decision: the fewest GPUs whose predicted p99 meets the SLO with a safety margin at the
// load anticipated one lead time ahead (trend, headroom learned from past anticipation errors),
// combined with pre-warm floors (schedules, recurring rises in the forecaster's history) and burst
// detection, stabilised (fast up, slow down, hysteresis, step limits), clamped by bounds and budget,
// and holding on bad data.
//
// Pure: all memory (load windows, recommendation history, calibration, forecaster, lead-time
// samples, last change times) lives in a serialisable CapacityState passed in and returned.
// Learning from this tick's observations (calibration, forecast) happens after the decision and
// lands in nextState, so for a given state the decision is monotone in the offered load.

import { createLatencyCalibration, observeLatency } from "../latency/calibration.ts";
import type { LatencyCalibrationState } from "../latency/calibration.ts";
import { predictP99LatencyMs, requiredGpusForTarget, unloadedLatencyMs } from "../latency/model.ts";
import type { LatencyConditions } from "../latency/model.ts";
import { detectBurst } from "../prewarm/burst.ts";
import { corroboratedForecastLoad, corroboratedRise } from "../prewarm/corroborate.ts";
import { createForecastState, learnedDays, observeLoadSample, peakUpperForecast } from "../prewarm/forecast.ts";
import type { ForecastState } from "../prewarm/forecast.ts";
import { createLeadTimeState, estimateLeadTime, observeColdStarts } from "../prewarm/leadtime.ts";
import type { LeadTimeState } from "../prewarm/leadtime.ts";
import { scheduleFloorAt } from "../prewarm/schedule.ts";
import { maxGpusWithinBudget } from "../cost/cost.ts";
import { quantileSorted } from "../quantile.ts";
import type { CapacityPolicy, HeadroomPolicy, StepPolicy } from "./policy.ts";
import { capSizingLoad, learnedCeilingGpus, nextPeakEvidence } from "./ceiling.ts";
import { screenLoadSample } from "./screen.ts";
import { nextUpCounts, settledUpCount } from "./settle.ts";
import type { LoadQualityState } from "./quality.ts";

/** Reasons are CamelCase constants (used in conditions and events). */
export const CapacityReasons = {
  /** Sized by the latency model against the SLO (up or down). */
  SLOFeedback: "SLOFeedback",
  /** The SLO is met at the current capacity and no pre-warm applies. */
  WithinTarget: "WithinTarget",
  ScheduledPrewarm: "ScheduledPrewarm",
  ForecastPrewarm: "ForecastPrewarm",
  Burst: "Burst",
  AtMinGpus: "AtMinGpus",
  AtMaxGpus: "AtMaxGpus",
  BudgetCapped: "BudgetCapped",
  /** A scale-down is being held back (stabilisation window, burst hold, rate limit). */
  StabilizingScaleDown: "StabilizingScaleDown",
  StaleMetrics: "StaleMetrics",
  MissingMetrics: "MissingMetrics",
  LowConfidenceMetrics: "LowConfidenceMetrics",
  /** The load sample is beyond what any fleet within maxGpus could serve (a broken counter): held. */
  OutOfRangeMetrics: "OutOfRangeMetrics",
  /** The load sample is far above the recent robust band and not corroborated yet: held. */
  OutlierMetrics: "OutlierMetrics",
  /** The load dropped to ~0 after sustained traffic (a collection gap): held. */
  MetricsGap: "MetricsGap",
} as const;
export type CapacityReason = (typeof CapacityReasons)[keyof typeof CapacityReasons];

export const CapacityConflictTypes = {
  /** The SLO (or a pre-warm) needs more GPUs than the budget pays for; the budget wins. */
  BudgetVsSlo: "BudgetVsSlo",
  /** The SLO needs more GPUs than maxGpus. */
  MaxGpusVsSlo: "MaxGpusVsSlo",
  /** No GPU count meets the SLO (e.g. the unloaded latency is above the target). */
  SloUnattainable: "SloUnattainable",
  /** minGpus already costs more than the budget; minGpus wins. */
  BudgetBelowMinGpus: "BudgetBelowMinGpus",
  /** A budget is set but the GPU price is unknown, so it cannot be enforced. */
  MissingPrice: "MissingPrice",
  /** A schedule could not be evaluated; it is ignored. */
  InvalidSchedule: "InvalidSchedule",
  /** minGpus > maxGpus; minGpus wins. */
  InvalidBounds: "InvalidBounds",
} as const;
export type CapacityConflictType = (typeof CapacityConflictTypes)[keyof typeof CapacityConflictTypes];

export interface CapacityConflict {
  readonly type: CapacityConflictType;
  readonly message: string;
  /** GPUs wanted (undefined when no count suffices). */
  readonly requiredGpus?: number;
  /** The limit that won. */
  readonly limitGpus?: number;
}

export interface CapacityInput {
  /** Offered load in tokens/s over the metrics interval ending at metricsAtMs; undefined = missing. */
  readonly tokensPerSecond: number | undefined;
  /** When the metrics were measured (epoch ms); undefined = missing. */
  readonly metricsAtMs: number | undefined;
  /** 0..1, e.g. share of expected scrape targets that answered; absent = 1. */
  readonly metricsConfidence?: number;
  /** Observed p99 of the SLO metric over the same interval, served by readyGpus. */
  readonly observedP99Ms?: number;
  /** GPUs provisioned now: Ready plus still warming (the last desired count the cluster is realising). */
  readonly provisionedGpus: number;
  /** GPUs Ready and serving. */
  readonly readyGpus: number;
  /** Placement balancedness (mean/max GPU load) from the placement core, (0, 1]. */
  readonly balancedness: number;
  /** Share of expert traffic crossing nodes from the placement core, 0..1. */
  readonly crossNodeShare: number;
  readonly redundantExpertsPerGpu?: number;
  /** Pod start-to-Ready durations observed since the previous decision. */
  readonly coldStartDurationsMs?: readonly number[];
  /** Price of one more GPU-hour (see cost); undefined = unknown. */
  readonly usdPerGpuHour: number | undefined;
}

export interface TimedValue {
  readonly atMs: number;
  readonly value: number;
}

export interface CapacityState {
  readonly version: 1;
  /** Recent offered-load samples (tokens/s), oldest first. */
  readonly loadSamples: readonly TimedValue[];
  /** Recent metric-driven recommendations (GPUs), oldest first, for stabilisation. */
  readonly recommendations: readonly TimedValue[];
  readonly lastScaleUpAtMs?: number;
  readonly lastScaleDownAtMs?: number;
  /** Scale-down is blocked until then after a burst. */
  readonly burstUntilMs?: number;
  readonly calibration: LatencyCalibrationState;
  /** Ready GPUs at the previous decision and when that count last changed (calibration settles after). */
  readonly lastReadyGpus?: number;
  readonly readyChangedAtMs?: number;
  readonly forecast: ForecastState;
  readonly leadTime: LeadTimeState;
  /** Anticipated loads (value) for a future sample time (atMs), waiting to be compared with the sample. */
  readonly pendingPredictions?: readonly TimedValue[];
  /** log(observed / anticipated) of resolved predictions (atMs = sample time), oldest first. */
  readonly predictionErrors?: readonly TimedValue[];
  /** Open collection gap and last uncorroborated outlier (src/domain/scaling/quality.ts). */
  readonly loadQuality?: LoadQualityState;
  /** Highest GPU count the evidence (calibrated model at the observed load) required, decaying (src/domain/scaling/ceiling.ts). */
  readonly peakEvidence?: TimedValue;
  /** The SLO's up count per sample over the settle window (src/domain/scaling/settle.ts). */
  readonly upCounts?: readonly TimedValue[];
}

export function createCapacityState(policy: CapacityPolicy): CapacityState {
  return {
    version: 1,
    loadSamples: [],
    recommendations: [],
    calibration: createLatencyCalibration(),
    forecast: createForecastState(policy.forecast.options),
    leadTime: createLeadTimeState(),
  };
}

export interface CapacitySignals {
  readonly stableTokensPerSecond: number | undefined;
  readonly shortTokensPerSecond: number | undefined;
  readonly burstRatio: number | undefined;
  /** Fewest GPUs meeting the SLO with margin at the sizing load (undefined: none does). */
  readonly sloGpus: number | undefined;
  readonly burstGpus: number;
  readonly forecastGpus: number;
  /** Forecast load one lead time ahead (anchored: observed load x forecast ratio; absolute: upper band). */
  readonly forecastTokensPerSecond: number | undefined;
  /** Load the SLO count is sized for (stable window, trend, burst). */
  readonly sizingTokensPerSecond?: number;
  /** Trend-extrapolated load one lead time (plus the metrics' age) ahead; undefined without a rising trend. */
  readonly trendTokensPerSecond?: number;
  /** Factor on the anticipated load from recent anticipation errors (1 = none). */
  readonly headroom?: number;
  /** Anchored forecast: expected load one lead time ahead over the expected load now. */
  readonly forecastRatio?: number;
  readonly scheduleGpus: number;
  readonly scheduleName: string | undefined;
  readonly leadTimeMs: number;
  readonly budgetGpus: number | undefined;
  readonly warmingGpus: number;
  /** Predicted p99 at the desired count once Ready, at the sizing load. */
  readonly predictedP99Ms: number | undefined;
  readonly latencyScale: number;
  readonly capacityScale: number;
  /** Fewest GPUs meeting the plan target at the observed load (no anticipation): the evidence. */
  readonly evidenceGpus?: number;
  /** Learned ceiling: the highest evidence count so far x the ceiling margin. */
  readonly ceilingGpus?: number;
  /**
   * The ceiling the operator's latency feedback may add up to: ceilingGpus once the calibration has
   * ceiling.minCalibrationObservations observations (before, the model may be far off and the
   * feedback is the safety net); undefined = unbounded.
   */
  readonly feedbackCeilingGpus?: number;
}

export interface CapacityDecision {
  readonly desiredGpus: number;
  readonly previousGpus: number;
  readonly action: "ScaleUp" | "ScaleDown" | "Hold";
  readonly reason: CapacityReason;
  readonly message: string;
  readonly conflicts: readonly CapacityConflict[];
  readonly signals: CapacitySignals;
  readonly nextState: CapacityState;
}

const MAX_SAMPLES = 2_000;
/** The anchored forecast never multiplies the observed load by more than this. */
const MAX_FORECAST_RATIO = 10;

function finiteNonNegative(x: number | undefined): x is number {
  return x !== undefined && Number.isFinite(x) && x >= 0;
}

function roundUpToStep(n: number, step: number): number {
  return Math.ceil(n / step - 1e-9) * step;
}

function stepAllowance(current: number, p: StepPolicy): number {
  return Math.max(p.maxStepGpus, Math.ceil((current * p.maxStepPercent) / 100));
}

/**
 * Time-weighted mean of the samples in (nowMs - windowMs, nowMs]: each sample stands for the interval
 * since its predecessor. Falls back to the latest sample when none lies in the window.
 */
export function windowMeanValue(samples: readonly TimedValue[], nowMs: number, windowMs: number): number | undefined {
  if (samples.length === 0) return undefined;
  const from = nowMs - windowMs;
  let weighted = 0;
  let weights = 0;
  for (let i = 0; i < samples.length; i++) {
    const s = samples[i] as TimedValue;
    if (s.atMs <= from || s.atMs > nowMs) continue;
    const prevAt = i > 0 ? (samples[i - 1] as TimedValue).atMs : s.atMs - windowMs;
    const w = Math.max(1, Math.min(s.atMs, nowMs) - Math.max(prevAt, from));
    weighted += w * s.value;
    weights += w;
  }
  if (weights > 0) return weighted / weights;
  const latest = [...samples].reverse().find((s) => s.atMs <= nowMs);
  return latest?.value;
}

/** Quantile q (0..1] of the sample values in (nowMs - windowMs, nowMs]; undefined when none lies there. */
export function windowQuantileValue(samples: readonly TimedValue[], nowMs: number, windowMs: number, q: number): number | undefined {
  const from = nowMs - windowMs;
  const values = samples.filter((s) => s.atMs > from && s.atMs <= nowMs).map((s) => s.value).sort((a, b) => a - b);
  if (values.length === 0) return undefined;
  return quantileSorted(values, q);
}

export interface LoadTrend {
  /** Time of the latest sample in the window (epoch ms). */
  readonly atMs: number;
  /** The fitted line at atMs (tokens/s). */
  readonly level: number;
  /** Slope of the fitted line (tokens/s per ms). */
  readonly slopePerMs: number;
  /** Standard error of the slope from the sample noise (tokens/s per ms). */
  readonly slopeStdErrPerMs: number;
  readonly samples: number;
}

/**
 * Least-squares line through the samples in (nowMs - windowMs, nowMs]. Undefined with fewer than
 * minSamples samples or when they span less than a third of the window. The slope's standard error
 * uses the noise of the samples before the latest (RMS of successive differences / sqrt 2, which a
 * trend does not inflate), so it does not depend on the latest value: the fitted value at or after
 * the latest sample, and the slope minus a multiple of its error, both rise with the latest value
 * (sizing on them keeps the decision monotone in the offered load).
 */
export function fitLoadTrend(samples: readonly TimedValue[], nowMs: number, windowMs: number, minSamples: number): LoadTrend | undefined {
  const from = nowMs - windowMs;
  const inWindow = samples.filter((s) => s.atMs > from && s.atMs <= nowMs && Number.isFinite(s.value));
  if (inWindow.length < Math.max(3, minSamples)) return undefined;
  const t0 = (inWindow[0] as TimedValue).atMs;
  const last = (inWindow[inWindow.length - 1] as TimedValue).atMs;
  if (last - t0 < windowMs / 3) return undefined;
  let st = 0;
  let sy = 0;
  for (const p of inWindow) {
    st += p.atMs - t0;
    sy += p.value;
  }
  const n = inWindow.length;
  const mt = st / n;
  const my = sy / n;
  let stt = 0;
  let sty = 0;
  for (const p of inWindow) {
    const dt = p.atMs - t0 - mt;
    stt += dt * dt;
    sty += dt * (p.value - my);
  }
  if (!(stt > 0)) return undefined;
  let sdd = 0;
  for (let i = 1; i < n - 1; i++) {
    const d = (inWindow[i] as TimedValue).value - (inWindow[i - 1] as TimedValue).value;
    sdd += d * d;
  }
  const noise = Math.sqrt(sdd / Math.max(1, n - 2) / 2);
  const slopePerMs = sty / stt;
  return { atMs: last, level: my + slopePerMs * (last - t0 - mt), slopePerMs, slopeStdErrPerMs: noise / Math.sqrt(stt), samples: n };
}

/**
 * Headroom factor from the policy's own anticipation errors: exp of the q-quantile of
 * log(observed / anticipated) over the errors of the last windowMs, never below 1 nor above max.
 * 1 with fewer than minSamples errors. Depends on state only, not on this tick's load.
 */
export function anticipationHeadroom(errors: readonly TimedValue[], nowMs: number, p: HeadroomPolicy): number {
  if (!p.enabled) return 1;
  const from = nowMs - p.windowMs;
  const values = errors.filter((e) => e.atMs > from).map((e) => e.value).sort((a, b) => a - b);
  // No evidence yet (a fresh start, or none for a window): start with headroom, move on evidence.
  if (values.length < Math.max(1, p.minSamples)) return Math.min(Math.max(1, p.max), Math.max(1, p.startFactor));
  const q = quantileSorted(values, p.quantile);
  return Math.min(Math.max(1, p.max), Math.max(1, Math.exp(q)));
}

/** Resolve the predictions whose sample time has come with this sample; drop those too old to score. */
function scorePredictions(
  pending: readonly TimedValue[],
  errors: readonly TimedValue[],
  sample: TimedValue,
  p: HeadroomPolicy,
): { pending: TimedValue[]; errors: TimedValue[] } {
  const keep: TimedValue[] = [];
  const scored = [...errors];
  for (const x of pending) {
    if (x.atMs > sample.atMs) {
      keep.push(x);
      continue;
    }
    if (sample.atMs - x.atMs <= p.maxScoreLagMs && x.value > 0 && sample.value > 0) {
      scored.push({ atMs: sample.atMs, value: Math.log(sample.value / x.value) });
    }
  }
  const from = sample.atMs - p.windowMs;
  return { pending: keep.slice(-MAX_SAMPLES), errors: scored.filter((e) => e.atMs > from).slice(-MAX_SAMPLES) };
}

function trimTimed(values: readonly TimedValue[], keepFromMs: number): TimedValue[] {
  // Keep one value before the cut-off so the first in-window sample has a predecessor.
  let first = values.findIndex((v) => v.atMs > keepFromMs);
  if (first === -1) first = values.length;
  return values.slice(Math.max(0, first - 1)).slice(-MAX_SAMPLES);
}

/**
 * A hold on bad data recommends the count it holds: after an outage or a collection gap the
 * scale-down window starts from it (a partial first sample after a gap would otherwise scale down
 * at once: constant load, 2-h gap, 253 -> 202 GPUs in the tick traffic came back).
 */
function holdRecommendation(state: CapacityState, previous: number, nowMs: number, policy: CapacityPolicy): TimedValue[] {
  return trimTimed([...state.recommendations, { atMs: nowMs, value: previous }], nowMs - Math.max(policy.scaleUp.stabilizationWindowMs, policy.scaleDown.stabilizationWindowMs));
}

function fmt(n: number | undefined, digits = 0): string {
  if (n === undefined || !Number.isFinite(n)) return String(n);
  return n.toFixed(digits);
}

/**
 * Decide the GPU count. One entry point for SLO sizing, pre-warm (schedule, forecast), burst,
 * stabilisation, bounds and budget; see the ADR docs/adr/0003-capacity-policy.md.
 */
export function decideCapacity(
  input: CapacityInput,
  state: CapacityState,
  policy: CapacityPolicy,
  nowMs: number,
): CapacityDecision {
  const conflicts: CapacityConflict[] = [];
  const step = Math.max(1, Math.floor(policy.gpuStep));
  const minGpus = Math.max(0, Math.floor(policy.minGpus));
  let maxGpus = Math.max(0, Math.floor(policy.maxGpus));
  if (minGpus > maxGpus) {
    conflicts.push({ type: "InvalidBounds", message: `minGpus ${minGpus} > maxGpus ${maxGpus}; using minGpus`, requiredGpus: minGpus, limitGpus: maxGpus });
    maxGpus = minGpus;
  }
  const previous = finiteNonNegative(input.provisionedGpus) ? Math.floor(input.provisionedGpus) : minGpus;
  const ready = finiteNonNegative(input.readyGpus) ? Math.min(Math.floor(input.readyGpus), previous) : 0;
  const warmingGpus = Math.max(0, previous - ready);

  // Lead time learns from pod start-to-Ready durations regardless of load metrics.
  const leadTime = observeColdStarts(state.leadTime, input.coldStartDurationsMs ?? [], policy.leadTime);
  const lead = estimateLeadTime(leadTime, policy.leadTime);

  // Budget.
  let budgetGpus: number | undefined;
  if (policy.budgetUsdPerHour !== undefined) {
    if (input.usdPerGpuHour === undefined || !Number.isFinite(input.usdPerGpuHour)) {
      conflicts.push({ type: "MissingPrice", message: `budget ${policy.budgetUsdPerHour} USD/h cannot be enforced: GPU price unknown` });
    } else {
      budgetGpus = maxGpusWithinBudget(policy.budgetUsdPerHour, input.usdPerGpuHour, step);
      if (budgetGpus !== undefined && budgetGpus < minGpus) {
        conflicts.push({
          type: "BudgetBelowMinGpus",
          message: `minGpus ${minGpus} costs ${fmt(minGpus * input.usdPerGpuHour, 2)} USD/h, above the budget of ${policy.budgetUsdPerHour} USD/h; keeping minGpus`,
          requiredGpus: minGpus,
          limitGpus: budgetGpus,
        });
      }
    }
  }

  // Scheduled floor: needs no metrics.
  const schedule = scheduleFloorAt(policy.schedules, nowMs, lead.leadTimeMs);
  for (const bad of schedule.invalid) {
    conflicts.push({ type: "InvalidSchedule", message: `schedule ${bad.name}: ${bad.field}: ${bad.message}` });
  }
  const scheduleGpus = Math.min(roundUpToStep(schedule.gpuCount, step), Number.MAX_SAFE_INTEGER);
  const scheduleText = schedule.schedule === undefined
    ? ""
    : schedule.prewarming
      ? `schedule ${schedule.schedule.name} opens in ${fmt(((schedule.schedule.opensAtMs ?? nowMs) - nowMs) / 60_000, 1)} min (lead time ${fmt(lead.leadTimeMs / 60_000, 1)} min) and needs ${scheduleGpus} GPUs`
      : `schedule ${schedule.schedule.name} is open and needs ${scheduleGpus} GPUs`;

  const finish = (
    desiredIn: number,
    reasonIn: CapacityReason,
    messageIn: string,
    wantedGpus: number,
    extra: Partial<CapacitySignals>,
    nextState: CapacityState,
  ): CapacityDecision => {
    let desired = desiredIn;
    let reason = reasonIn;
    let message = messageIn;
    const floor = Math.max(minGpus, scheduleGpus);
    if (floor > desired) {
      desired = floor;
      reason = scheduleGpus >= minGpus && scheduleGpus > 0 ? "ScheduledPrewarm" : "AtMinGpus";
      message = reason === "ScheduledPrewarm" ? `${scheduleText}; ${message}` : `at minGpus ${minGpus}; ${message}`;
    }
    if (desired > maxGpus) {
      desired = maxGpus;
      reason = "AtMaxGpus";
      message = `capped at maxGpus ${maxGpus}; ${message}`;
    }
    if (budgetGpus !== undefined && desired > budgetGpus) {
      const capped = Math.max(budgetGpus, minGpus);
      if (capped < desired) {
        desired = capped;
        reason = "BudgetCapped";
        message = `capped at ${capped} GPUs by the budget of ${policy.budgetUsdPerHour} USD/h; ${message}`;
      }
    }
    const wanted = Math.min(Math.max(wantedGpus, scheduleGpus), Number.MAX_SAFE_INTEGER);
    if (budgetGpus !== undefined && wanted > Math.max(budgetGpus, minGpus) && Math.max(budgetGpus, minGpus) < maxGpus) {
      conflicts.push({
        type: "BudgetVsSlo",
        message: `the SLO and pre-warm need ${wanted} GPUs but the budget of ${policy.budgetUsdPerHour} USD/h pays for ${budgetGpus}; the budget wins`,
        requiredGpus: wanted,
        limitGpus: budgetGpus,
      });
    }
    if (warmingGpus > 0) message = `${message} (${warmingGpus} GPUs still warming count as coming capacity)`;
    const action = desired > previous ? "ScaleUp" : desired < previous ? "ScaleDown" : "Hold";
    const finalState: CapacityState = {
      ...nextState,
      leadTime,
      lastScaleUpAtMs: action === "ScaleUp" ? nowMs : nextState.lastScaleUpAtMs,
      lastScaleDownAtMs: action === "ScaleDown" ? nowMs : nextState.lastScaleDownAtMs,
    };
    return {
      desiredGpus: desired,
      previousGpus: previous,
      action,
      reason,
      message,
      conflicts,
      signals: {
        stableTokensPerSecond: undefined,
        shortTokensPerSecond: undefined,
        burstRatio: undefined,
        sloGpus: undefined,
        burstGpus: 0,
        forecastGpus: 0,
        forecastTokensPerSecond: undefined,
        scheduleGpus,
        scheduleName: schedule.schedule?.name,
        leadTimeMs: lead.leadTimeMs,
        budgetGpus,
        warmingGpus,
        predictedP99Ms: undefined,
        latencyScale: state.calibration.correction.latencyScale,
        capacityScale: state.calibration.correction.capacityScale,
        ...extra,
      },
      nextState: finalState,
    };
  };

  // Data quality: never act on stale or missing data. Hold (floors, bounds and budget still apply).
  const dq = policy.dataQuality;
  let hold: { reason: CapacityReason; message: string } | undefined;
  if (!finiteNonNegative(input.tokensPerSecond) || input.metricsAtMs === undefined || !Number.isFinite(input.metricsAtMs)) {
    hold = { reason: "MissingMetrics", message: `holding at ${previous} GPUs: load metrics are missing` };
  } else if (nowMs - input.metricsAtMs > dq.maxMetricsAgeMs) {
    hold = { reason: "StaleMetrics", message: `holding at ${previous} GPUs: load metrics are ${fmt((nowMs - input.metricsAtMs) / 1000)} s old (limit ${fmt(dq.maxMetricsAgeMs / 1000)} s)` };
  } else if (input.metricsConfidence !== undefined && !(input.metricsConfidence >= dq.minConfidence)) {
    hold = { reason: "LowConfidenceMetrics", message: `holding at ${previous} GPUs: metrics confidence ${fmt(input.metricsConfidence, 2)} is below ${dq.minConfidence}` };
  }
  if (hold !== undefined || !finiteNonNegative(input.tokensPerSecond) || input.metricsAtMs === undefined) {
    const h = hold ?? { reason: "MissingMetrics" as const, message: `holding at ${previous} GPUs: load metrics are missing` };
    return finish(previous, h.reason, h.message, 0, {}, { ...state, leadTime, recommendations: holdRecommendation(state, previous, nowMs, policy) });
  }
  const load = input.tokensPerSecond;
  const metricsAtMs = input.metricsAtMs;

  // Load windows (this tick's sample included: the decision reacts to it).
  const lastSample = state.loadSamples[state.loadSamples.length - 1];
  const isNewSample = lastSample === undefined || metricsAtMs > lastSample.atMs;
  // Per-sample data quality: out of range, uncorroborated outliers and collection gaps are missing
  // data (hold), never load.
  const screened = isNewSample
    ? screenLoadSample({ atMs: metricsAtMs, value: load }, state, policy, maxGpus, previous)
    : { hold: undefined, learn: true, quality: state.loadQuality };
  if (screened.hold !== undefined) {
    return finish(previous, screened.hold.reason, screened.hold.message, 0, {}, { ...state, leadTime, loadQuality: screened.quality, recommendations: holdRecommendation(state, previous, nowMs, policy) });
  }
  const samples = isNewSample ? [...state.loadSamples, { atMs: metricsAtMs, value: load }] : [...state.loadSamples];
  const stableMean = windowMeanValue(samples, nowMs, policy.stableWindowMs) ?? load;
  const stable = policy.stableQuantile === undefined
    ? stableMean
    : Math.max(stableMean, windowQuantileValue(samples, nowMs, policy.stableWindowMs, policy.stableQuantile) ?? load);
  const short = windowMeanValue(samples, nowMs, policy.shortWindowMs) ?? load;
  const burst = detectBurst(short, stable, policy.burst);

  const correction = state.calibration.correction;
  const conditions: Omit<LatencyConditions, "gpuCount"> = {
    tokensPerSecond: 0,
    balancedness: input.balancedness,
    crossNodeShare: input.crossNodeShare,
    redundantExpertsPerGpu: input.redundantExpertsPerGpu,
  };
  const target = policy.slo.targetP99Ms * Math.max(0.05, 1 - policy.safetyMargin);
  const targetDown = policy.slo.targetP99Ms * Math.max(0.05, 1 - policy.safetyMargin - policy.hysteresis);
  const searchLimitGpus = Math.max(maxGpus, step) * 8;
  const required = (tokensPerSecond: number, targetMs: number): number | undefined =>
    requiredGpusForTarget(policy.latencyModel, { ...conditions, tokensPerSecond }, targetMs, { gpuStep: step, searchLimitGpus, correction }).gpuCount;
  // When no count meets the target, aim for within 25 % of the best achievable latency instead.
  const bestEffortTarget = 1.25 * correction.latencyScale * unloadedLatencyMs(policy.latencyModel, input.crossNodeShare);
  const requiredOrBestEffort = (tokensPerSecond: number, targetMs: number): number =>
    required(tokensPerSecond, targetMs) ?? required(tokensPerSecond, Math.max(targetMs, bestEffortTarget)) ?? searchLimitGpus;

  // Anticipation: capacity ordered now serves from one lead time on, so size for the load expected
  // then. Two estimates of the change until then, each only ever raising the sizing load: the recent
  // trend (any rise) and the seasonal forecast's expected change (daily ramps, recurring windows).
  const horizonMs = Math.max(0, nowMs - metricsAtMs) + lead.leadTimeMs;
  let trendTokensPerSecond: number | undefined;
  let falling = false;
  // History that does not cover a window yet (a fresh start) is no basis for a trend or a prediction.
  const historyFromMs = (samples[0] as TimedValue).atMs;
  if (policy.trend.enabled && historyFromMs <= nowMs - policy.trend.windowMs) {
    const t = fitLoadTrend(samples, nowMs, policy.trend.windowMs, policy.trend.minSamples);
    // A rise must also show in the recent half of the window: a step (burst onset) earlier in the
    // window tilts the line but is no ramp to extrapolate.
    const recent = fitLoadTrend(samples, nowMs, policy.trend.windowMs / 2, Math.max(3, Math.ceil(policy.trend.minSamples / 2)));
    // Significance gate at z standard errors; the extrapolated slope is the milder lower bound at
    // extrapolateZ (the z bound itself underestimates a real ramp by z standard errors).
    const significant = t !== undefined && t.slopePerMs - policy.trend.z * t.slopeStdErrPerMs > 0;
    const lower = t === undefined || !significant ? 0 : t.slopePerMs - Math.min(policy.trend.z, policy.trend.extrapolateZ) * t.slopeStdErrPerMs;
    const slope = recent === undefined ? lower : Math.min(lower, recent.slopePerMs);
    falling = t !== undefined && t.slopePerMs + policy.trend.z * t.slopeStdErrPerMs < 0 && (recent === undefined || recent.slopePerMs < 0);
    if (t !== undefined && slope > 0 && stable > 0) {
      // Extrapolate from the stable-window mean (less noisy than the line's end point): it stands for
      // the middle of its window, so the rise until then counts too.
      const ahead = stable + slope * (nowMs - t.atMs + policy.stableWindowMs / 2 + horizonMs);
      trendTokensPerSecond = Math.min(ahead, Math.max(policy.trend.maxGrowth, 1) * stable);
    }
  }
  let forecastTokensPerSecond: number | undefined;
  let forecastRatio: number | undefined;
  let forecastDays = 0;
  if (policy.forecast.enabled) {
    if (policy.forecast.mode === "absolute") {
      const f = peakUpperForecast(state.forecast, nowMs + lead.leadTimeMs, nowMs + lead.leadTimeMs + state.forecast.bucketMs, policy.forecast.z, policy.forecast.options);
      if (f !== undefined && f.seasonal) {
        forecastTokensPerSecond = f.upperTokensPerSecond;
      }
    }
    if (policy.forecast.mode === "anchored") {
      // A rise seen on one day is no recurrence: it needs `recurrenceDays` days with data (at least
      // 2), never fewer while fewer are known (ServeGen's second day: one day's 101-140 % rises
      // asked for 2.2-2.5x the realised requirement).
      const days = Math.max(2, Math.floor(policy.forecast.recurrenceDays));
      // Base: the buckets the stable window measures; peak: from now until new capacity is Ready
      // (a bucket beyond, as the rise may come anywhere inside it). Only days with data count, and
      // the level predicted must have been observed on them (src/domain/prewarm/corroborate.ts).
      const spans = { baseFromMs: metricsAtMs - policy.stableWindowMs, baseToMs: nowMs, peakFromMs: nowMs, peakToMs: nowMs + lead.leadTimeMs + state.forecast.bucketMs };
      const rise = learnedDays(state.forecast) >= 1 ? corroboratedRise(state.forecast, spans, days, policy.forecast.options) : undefined;
      if (rise !== undefined) {
        forecastRatio = Math.min(MAX_FORECAST_RATIO, rise.ratio);
        forecastDays = rise.daysUsed;
        const level = corroboratedForecastLoad(stable, { ...rise, ratio: forecastRatio }, policy.forecast.observedLevelMargin);
        if (level > stable) forecastTokensPerSecond = level;
      }
    }
  }
  // Headroom: how far the load has outrun this anticipation lately (an upper quantile of the
  // observed / anticipated ratio one lead time later), so volatile traffic gets more spare capacity
  // than smooth traffic.
  const headroom = anticipationHeadroom(state.predictionErrors ?? [], metricsAtMs, policy.headroom);
  const anticipatedRaw = Math.max(stable, trendTokensPerSecond ?? 0);
  const anticipated = anticipatedRaw * headroom;
  // Model cap: never size for more than a bounded multiple of the load observed now.
  const observedLoad = Math.max(stable, short);
  const uncappedSizing = burst.burst ? Math.max(anticipated, short) : anticipated;
  const sizingLoad = capSizingLoad(uncappedSizing, observedLoad, policy.ceiling);
  const sloUp = required(sizingLoad, target);
  if (sloUp === undefined) {
    conflicts.push({
      type: "SloUnattainable",
      message: `no GPU count up to ${searchLimitGpus} meets p99 ${policy.slo.metric} <= ${fmt(target, 1)} ms at ${fmt(sizingLoad)} tok/s; aiming for the best achievable latency`,
    });
  } else if (sloUp > maxGpus) {
    conflicts.push({ type: "MaxGpusVsSlo", message: `the SLO needs ${sloUp} GPUs but maxGpus is ${maxGpus}`, requiredGpus: sloUp, limitGpus: maxGpus });
  }
  const sloUpGpus = sloUp ?? requiredOrBestEffort(sizingLoad, target);
  // Learned ceiling: the evidence now (the model at the observed load) joins the highest recently
  // seen; the forecast and the latency feedback never ask for more than the ceiling.
  const evidenceGpus = requiredOrBestEffort(burst.burst ? observedLoad : stable, target);
  const peakEvidence = nextPeakEvidence(state.peakEvidence, { atMs: nowMs, value: evidenceGpus }, policy.ceiling);
  const ceilingGpus = learnedCeilingGpus(peakEvidence.value, step, policy.ceiling);
  const sloDownGpus = required(sizingLoad, targetDown) ?? sloUpGpus;
  // Deadband: go up to the SLO count; come down only past the stricter (hysteresis) count.
  const burstGpus = burst.burst ? requiredOrBestEffort(short, target) : 0;
  // Sustained measured over-provisioning: when even the highest up count over the settle window is
  // below the provisioned count, the band collapses to it (never below the up count now).
  // Recorded at the middle of the band (half the hysteresis, in predicted latency): after settling,
  // a scale-up again needs a real rise, not the next noisy sample above the window's highest.
  const targetMid = policy.slo.targetP99Ms * Math.max(0.05, 1 - policy.safetyMargin - policy.hysteresis / 2);
  // Over-provisioning must also be measured: a sample whose observed p99 was over the plan counts
  // as needing all the provisioned GPUs (bursty traffic whose mean hides its peaks).
  const measuredOver = input.observedP99Ms !== undefined && !(input.observedP99Ms <= target);
  const upNow = { atMs: nowMs, value: Math.max(sloUpGpus, burstGpus, required(sizingLoad, targetMid) ?? sloUpGpus, measuredOver ? previous : 0) };
  const upCounts = nextUpCounts(state.upCounts, upNow, policy.settle);
  const settledGpus = settledUpCount(upCounts, nowMs, policy.settle);
  const banded = sloDownGpus < previous ? sloDownGpus : previous;
  const sloRecommendation = sloUpGpus > previous ? sloUpGpus : Math.min(banded, settledGpus ?? banded);

  const forecastGpus = forecastTokensPerSecond === undefined ? 0 : Math.min(ceilingGpus, requiredOrBestEffort(forecastTokensPerSecond, target));

  const metricRaw = Math.max(sloRecommendation, burstGpus, forecastGpus);
  let reason: CapacityReason;
  let message: string;
  const capText = sizingLoad < uncappedSizing ? ` (capped at ${fmt(policy.ceiling.maxSizingRatio, 1)}x the observed ${fmt(observedLoad)} tok/s; trend and headroom asked ${fmt(uncappedSizing)})` : "";
  const sloText = `p99 ${policy.slo.metric} target ${policy.slo.targetP99Ms} ms (plan ${fmt(target, 1)} ms) at ${fmt(sizingLoad)} tok/s${capText} needs ${sloUp ?? "more than " + searchLimitGpus} GPUs`;
  if (burst.burst && burstGpus === metricRaw && burstGpus > previous) {
    reason = "Burst";
    message = `burst: ${fmt(short)} tok/s over ${fmt(policy.shortWindowMs / 1000)} s is ${fmt(burst.ratio, 1)}x the ${fmt(policy.stableWindowMs / 1000)} s load ${fmt(stable)} tok/s; needs ${burstGpus} GPUs`;
  } else if (forecastGpus === metricRaw && forecastGpus > sloRecommendation && forecastGpus > previous) {
    reason = "ForecastPrewarm";
    message = policy.forecast.mode === "absolute"
      ? `forecast upper band ${fmt(forecastTokensPerSecond)} tok/s one lead time (${fmt(lead.leadTimeMs / 60_000, 1)} min) ahead needs ${forecastGpus} GPUs`
      : `a rise of ${fmt(((forecastRatio ?? 1) - 1) * 100)} % recurred at this time on each of the last ${forecastDays} day(s) with data; ${fmt(forecastTokensPerSecond)} tok/s within one lead time (${fmt(lead.leadTimeMs / 60_000, 1)} min) needs ${forecastGpus} GPUs (learned ceiling ${fmt(ceilingGpus)})`;
  } else if (metricRaw !== previous) {
    reason = "SLOFeedback";
    const settledText = settledGpus !== undefined && settledGpus < banded ? `; over the last ${fmt(policy.settle.windowMs / 60_000)} min the middle of the band (p99 ${fmt(targetMid, 1)} ms) needed at most ${settledGpus} GPUs (sustained over-provisioning)` : "";
    message = metricRaw > previous ? sloText : `${sloText}; ${sloDownGpus} GPUs keep p99 within ${fmt(targetDown, 1)} ms${settledText}`;
  } else {
    reason = "WithinTarget";
    message = `${sloText}; ${previous} GPUs are within the hysteresis band`;
  }

  // Stabilisation and step limits.
  const recommendations = trimTimed(
    [...state.recommendations, { atMs: nowMs, value: metricRaw }],
    nowMs - Math.max(policy.scaleUp.stabilizationWindowMs, policy.scaleDown.stabilizationWindowMs),
  );
  // Any burst holds scale-down, also one the provisioned GPUs already cover: traffic that just
  // jumped to 2x its stable level says nothing about the capacity it needs next (Azure code trace:
  // scaled 311 -> 248 GPUs in the very tick a 5x burst was seen, then 7 minutes over the SLO).
  let burstUntilMs = state.burstUntilMs;
  if (burst.burst) burstUntilMs = Math.max(burstUntilMs ?? 0, nowMs + policy.burst.holdMs);
  // No scale-down while the latency measured on the Ready GPUs is over the target: whatever the
  // model says, fewer GPUs cannot help (the model is wrong or the load is not what it looks like).
  const overTarget = input.observedP99Ms !== undefined && Number.isFinite(input.observedP99Ms) && input.observedP99Ms > policy.slo.targetP99Ms;

  let desired = metricRaw;
  if (metricRaw > previous) {
    if (!burst.burst && policy.scaleUp.stabilizationWindowMs > 0) {
      const upFrom = nowMs - policy.scaleUp.stabilizationWindowMs;
      const lowest = Math.min(...recommendations.filter((r) => r.atMs >= upFrom).map((r) => r.value));
      desired = Math.max(previous, Math.min(desired, lowest));
    }
    if (!burst.burst && state.lastScaleUpAtMs !== undefined && nowMs - state.lastScaleUpAtMs < policy.scaleUp.periodMs) {
      desired = previous;
      message = `${message}; scale-up rate limit (one change per ${fmt(policy.scaleUp.periodMs / 1000)} s)`;
    }
    const limit = previous + stepAllowance(previous, policy.scaleUp);
    if (desired > limit) {
      desired = Math.max(previous, Math.floor(limit / step) * step);
      message = `${message}; step-limited to ${desired}`;
    }
  } else if (metricRaw < previous) {
    // While the load falls significantly, recommendations older than the falling-trend window no
    // longer say what the next lead time needs.
    const downWindowMs = falling ? Math.min(policy.scaleDown.stabilizationWindowMs, policy.trend.fallingScaleDownWindowMs) : policy.scaleDown.stabilizationWindowMs;
    const downFrom = nowMs - downWindowMs;
    const highest = Math.max(...recommendations.filter((r) => r.atMs >= downFrom).map((r) => r.value));
    if (highest >= previous) {
      desired = previous;
      reason = "StabilizingScaleDown";
      message = `${message}; holding ${previous} GPUs: recommendations in the last ${fmt(policy.scaleDown.stabilizationWindowMs / 60_000, 1)} min reached ${highest}`;
    } else {
      desired = Math.max(metricRaw, highest);
      if (burstUntilMs !== undefined && nowMs < burstUntilMs) {
        desired = previous;
        reason = "StabilizingScaleDown";
        message = `${message}; holding ${previous} GPUs for ${fmt((burstUntilMs - nowMs) / 1000)} s after a burst`;
      } else if (overTarget) {
        desired = previous;
        reason = "StabilizingScaleDown";
        message = `${message}; holding ${previous} GPUs: observed p99 ${fmt(input.observedP99Ms ?? NaN)} ms is over the ${fmt(policy.slo.targetP99Ms)} ms target`;
      } else if (state.lastScaleDownAtMs !== undefined && nowMs - state.lastScaleDownAtMs < policy.scaleDown.periodMs) {
        desired = previous;
        reason = "StabilizingScaleDown";
        message = `${message}; scale-down rate limit (one change per ${fmt(policy.scaleDown.periodMs / 1000)} s)`;
      } else {
        const limit = previous - stepAllowance(previous, policy.scaleDown);
        if (desired < limit) {
          desired = Math.min(previous, Math.ceil(limit / step) * step);
          message = `${message}; step-limited to ${desired}`;
        }
      }
    }
  }

  // Learning from this tick lands in nextState (used from the next decision on).
  // Observed p99 covers a window: skip it until the Ready count has been stable for a while.
  const readyChangedAtMs = state.lastReadyGpus === ready ? state.readyChangedAtMs : nowMs;
  const settled = readyChangedAtMs === undefined || nowMs - readyChangedAtMs >= policy.calibrationSettleMs;
  let calibration = state.calibration;
  // Once per metrics sample: the operator decides on every event (pod Ready, status update), and
  // the same observation learned five times would weigh five times in its utilisation bin.
  if (input.observedP99Ms !== undefined && ready > 0 && settled && isNewSample) {
    calibration = observeLatency(calibration, policy.latencyModel, {
      atMs: metricsAtMs,
      observedP99Ms: input.observedP99Ms,
      tokensPerSecond: load,
      gpuCount: ready,
      balancedness: input.balancedness,
      crossNodeShare: input.crossNodeShare,
      redundantExpertsPerGpu: input.redundantExpertsPerGpu,
    }, policy.calibration);
  }
  // The forecaster learns only samples with data (a held-over collection gap counts as load for the
  // decision but never as a daily profile).
  const forecast = isNewSample && screened.learn ? observeLoadSample(state.forecast, metricsAtMs, load, policy.forecast.options) : state.forecast;
  let pendingPredictions = state.pendingPredictions;
  let predictionErrors = state.predictionErrors;
  if (isNewSample && policy.headroom.enabled && historyFromMs <= nowMs - policy.stableWindowMs) {
    // Scored against the stable-window level, not the single sample: the anticipation is of the level
    // (per-sample noise would otherwise read as anticipation error and inflate the headroom). The
    // level stands for the middle of its window, so predictions are scored half a window later.
    const scored = scorePredictions(state.pendingPredictions ?? [], state.predictionErrors ?? [], { atMs: metricsAtMs, value: stableMean }, policy.headroom);
    pendingPredictions = [...scored.pending, { atMs: nowMs + lead.leadTimeMs + policy.stableWindowMs / 2, value: anticipatedRaw }];
    predictionErrors = scored.errors;
  }
  const nextState: CapacityState = {
    ...state,
    loadSamples: trimTimed(samples, nowMs - Math.max(policy.stableWindowMs, policy.shortWindowMs, policy.trend.enabled ? policy.trend.windowMs : 0, policy.loadQuality.enabled ? policy.loadQuality.windowMs : 0)),
    recommendations,
    burstUntilMs,
    calibration,
    lastReadyGpus: ready,
    readyChangedAtMs,
    forecast,
    pendingPredictions,
    predictionErrors,
    loadQuality: screened.quality,
    peakEvidence,
    // One record per metrics sample (the operator decides on every event).
    upCounts: isNewSample ? upCounts : state.upCounts,
  };
  const decision = finish(desired, reason, message, Math.max(sloUpGpus, burstGpus, forecastGpus), {
    stableTokensPerSecond: stable,
    shortTokensPerSecond: short,
    burstRatio: burst.ratio,
    sloGpus: sloUp,
    burstGpus,
    forecastGpus,
    forecastTokensPerSecond,
    sizingTokensPerSecond: sizingLoad,
    trendTokensPerSecond,
    headroom,
    forecastRatio,
    evidenceGpus,
    ceilingGpus: Number.isFinite(ceilingGpus) ? ceilingGpus : undefined,
    feedbackCeilingGpus: Number.isFinite(ceilingGpus) && state.calibration.observationCount >= policy.ceiling.minCalibrationObservations ? ceilingGpus : undefined,
  }, nextState);
  const predictedP99Ms = decision.desiredGpus > 0
    ? predictP99LatencyMs(policy.latencyModel, { ...conditions, tokensPerSecond: sizingLoad, gpuCount: decision.desiredGpus }, correction)
    : undefined;
  return { ...decision, signals: { ...decision.signals, predictedP99Ms } };
}
