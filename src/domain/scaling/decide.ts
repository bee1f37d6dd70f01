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
import type { BurstDetection } from "../prewarm/burst.ts";
import { createForecastState, forecastLoad } from "../prewarm/forecast.ts";
import type { ForecastState } from "../prewarm/forecast.ts";
import { createLeadTimeState } from "../prewarm/leadtime.ts";
import type { LeadTimeState } from "../prewarm/leadtime.ts";
import { learnLeadTime } from "../prewarm/tiers.ts";
import type { LoadTier, TierColdStart, TierLeadTimeState } from "../prewarm/tiers.ts";
import { maxGpusWithinBudget } from "../cost/cost.ts";
import { quantileSorted } from "../quantile.ts";
import type { CapacityPolicy, HeadroomPolicy, StepPolicy } from "./policy.ts";
import { capSizingLoad, learnedCeilingGpus, nextPeakEvidence } from "./ceiling.ts";
import { gapHoldGpus, profileRiseBetween } from "./gap-hold.ts";
import { contiguousHistoryFromMs } from "./history.ts";
import { nextProvenRecords, provenGpus } from "./proven.ts";
import type { ProvenRecord } from "./proven.ts";
import { screenLoadSample } from "./screen.ts";
import { crowdReleaseAbove, nextBurstHistory } from "./crowd.ts";
import type { BurstHistory } from "./crowd.ts";
import { nextUpCounts, settledUpCount } from "./settle.ts";
import { leadScaledMs, leadWindowFactor } from "./lead-scale.ts";
import type { LoadQualityState } from "./quality.ts";
import { DEFAULT_CAPACITY_SIGNALS, evaluateFloors, evaluateSignals, winningSignal } from "./signals.ts";
import type { CapacitySignalEntry, FloorAsk, FloorSignal, SignalContext } from "./signals.ts";

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
  /**
   * Provisioned GPUs whose pods have waited for a node past the pending timeout (CapacityPending):
   * neither serving nor counted as coming capacity. Absent = 0.
   */
  readonly pendingGpus?: number;
  /** Placement balancedness (mean/max GPU load) from the placement core, (0, 1]. */
  readonly balancedness: number;
  /** Share of expert traffic crossing nodes from the placement core, 0..1. */
  readonly crossNodeShare: number;
  readonly redundantExpertsPerGpu?: number;
  /** Pod start-to-Ready durations observed since the previous decision. */
  readonly coldStartDurationsMs?: readonly number[];
  /** The same durations tagged with the tier each pod loaded from (issue 19); absent = untiered. */
  readonly coldStartsByTier?: readonly TierColdStart[];
  /** The tier the next new pod will load from: the lead time is that tier's learned cold start. */
  readonly nextLoadTier?: LoadTier;
  /** The type of the node the next new pod is expected on: that (tier, node type)'s once learned. */
  readonly nextNodeType?: string;
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
  /** When bursts were seen and whether the latest episode was isolated (src/domain/scaling/crowd.ts). */
  readonly burstHistory?: BurstHistory;
  readonly calibration: LatencyCalibrationState;
  /** Ready GPUs at the previous decision and when that count last changed (calibration settles after). */
  readonly lastReadyGpus?: number;
  readonly readyChangedAtMs?: number;
  readonly forecast: ForecastState;
  readonly leadTime: LeadTimeState;
  /** Cold starts learned per load tier (src/domain/prewarm/tiers.ts); absent until tiered input is seen. */
  readonly tierLeadTime?: TierLeadTimeState;
  /** Anticipated loads (value) for a future sample time (atMs), waiting to be compared with the sample. */
  readonly pendingPredictions?: readonly TimedValue[];
  /** log(observed / anticipated) of resolved predictions (atMs = sample time), oldest first. */
  readonly predictionErrors?: readonly TimedValue[];
  /** Open collection gap and last uncorroborated outlier (src/domain/scaling/quality.ts). */
  readonly loadQuality?: LoadQualityState;
  /** Highest GPU count the evidence (calibrated model at the observed load) required, decaying (src/domain/scaling/ceiling.ts). */
  readonly peakEvidence?: TimedValue;
  /** Counts measured within the plan and the load they served, over the last hour (src/domain/scaling/proven.ts). */
  readonly provenRecords?: readonly ProvenRecord[];
  /** The SLO's up count per sample over the settle window (src/domain/scaling/settle.ts). */
  readonly upCounts?: readonly TimedValue[];
  /** Each registered signal's own state by signal id (CapacitySignal.learnOwn), for signals added to the registry. */
  readonly signalStates?: Readonly<Record<string, unknown>>;
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
  /** The factor (<= 1) the lead-time windows were scaled by at this lead (src/domain/scaling/lead-scale.ts). */
  readonly leadWindowFactor?: number;
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
  /**
   * Fewest GPUs measured within the plan target (at least proven.minRecords times in the last
   * proven.windowMs) at a load at least the observed load now (src/domain/scaling/proven.ts); the
   * operator's latency feedback does not add when the provisioned count is at least this. Undefined = none.
   */
  readonly provenGpus?: number;
}

export interface CapacityDecision<R extends string = CapacityReason> {
  readonly desiredGpus: number;
  readonly previousGpus: number;
  readonly action: "ScaleUp" | "ScaleDown" | "Hold";
  /** A CapacityReason, or the reason of a signal added to the registry. */
  readonly reason: R;
  readonly message: string;
  readonly conflicts: readonly CapacityConflict[];
  readonly signals: CapacitySignals;
  readonly nextState: CapacityState;
}

const MAX_SAMPLES = 2_000;

function finiteNonNegative(x: number | undefined): x is number {
  return x !== undefined && Number.isFinite(x) && x >= 0;
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
export function windowQuantileValue(
  samples: readonly TimedValue[],
  nowMs: number,
  windowMs: number,
  q: number,
): number | undefined {
  const from = nowMs - windowMs;
  const values = samples
    .filter((s) => s.atMs > from && s.atMs <= nowMs)
    .map((s) => s.value)
    .sort((a, b) => a - b);
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
export function fitLoadTrend(
  samples: readonly TimedValue[],
  nowMs: number,
  windowMs: number,
  minSamples: number,
): LoadTrend | undefined {
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
  return {
    atMs: last,
    level: my + slopePerMs * (last - t0 - mt),
    slopePerMs,
    slopeStdErrPerMs: noise / Math.sqrt(stt),
    samples: n,
  };
}

/**
 * Headroom factor from the policy's own anticipation errors: exp of the q-quantile of
 * log(observed / anticipated) over the errors of the last windowMs, never below 1 nor above max.
 * 1 with fewer than minSamples errors. Depends on state only, not on this tick's load.
 */
export function anticipationHeadroom(errors: readonly TimedValue[], nowMs: number, p: HeadroomPolicy): number {
  if (!p.enabled) return 1;
  const from = nowMs - p.windowMs;
  const values = errors
    .filter((e) => e.atMs > from)
    .map((e) => e.value)
    .sort((a, b) => a - b);
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
function holdRecommendation(
  state: CapacityState,
  previous: number,
  nowMs: number,
  policy: CapacityPolicy,
): TimedValue[] {
  return trimTimed(
    [...state.recommendations, { atMs: nowMs, value: previous }],
    nowMs - Math.max(policy.scaleUp.stabilizationWindowMs, policy.scaleDown.stabilizationWindowMs),
  );
}

function fmt(n: number | undefined, digits = 0): string {
  if (n === undefined || !Number.isFinite(n)) return String(n);
  return n.toFixed(digits);
}

// ---------------------------------------------------------------------------------------------
// The decision as a pipeline of stages (docs/adr/0011-decide-pipeline.md):
//   frame (bounds, lead time, budget, floor signals) -> metrics check -> sample screen -> load
//   windows -> sizing model -> anticipation (trend, headroom, model cap) -> SLO recommendation
//   (band, settle, learned ceiling) -> recommend signals (burst, forecast, ...) -> reason ->
//   stabilisation -> learning (next state) -> floors (minGpus, floor signals: the schedule) and caps.

/** What every path of the decision applies: bounds, counts, lead time, budget and the floor signals. */
interface Frame {
  readonly input: CapacityInput;
  readonly state: CapacityState;
  readonly policy: CapacityPolicy;
  readonly nowMs: number;
  /** Conflicts found so far (the stages append; the decision reports them in this order). */
  readonly conflicts: CapacityConflict[];
  readonly step: number;
  readonly minGpus: number;
  readonly maxGpus: number;
  readonly previous: number;
  readonly ready: number;
  readonly warmingGpus: number;
  readonly leadTime: LeadTimeState;
  readonly tierLeadTime: TierLeadTimeState | undefined;
  readonly leadTimeMs: number;
  /** The lead-time windows at this lead (lead-scale.ts). */
  readonly windows: LeadWindows;
  readonly budgetGpus: number | undefined;
  /** The floor signals' asks (registry order) and the highest of them (0 without any). */
  readonly floors: readonly { readonly signal: FloorSignal; readonly ask: FloorAsk }[];
  readonly floorGpus: number;
}

/** The windows that are "time to get capacity back" quantities, scaled to the learned lead (lead-scale.ts). */
export interface LeadWindows {
  readonly factor: number;
  readonly scaleDownMs: number;
  readonly fallingScaleDownMs: number;
  readonly burstHoldMs: number;
  readonly settleMs: number;
}

export function leadWindowsOf(policy: CapacityPolicy, leadTimeMs: number): LeadWindows {
  // Capacity released wrongly comes back after the stable mean shows the need (half its window:
  // the mean's lag, as in the trend) plus one lead time.
  const factor = leadWindowFactor(leadTimeMs, policy.leadScaling, policy.stableWindowMs / 2);
  return {
    factor,
    scaleDownMs: leadScaledMs(policy.scaleDown.stabilizationWindowMs, factor),
    fallingScaleDownMs: leadScaledMs(policy.trend.fallingScaleDownWindowMs, factor),
    burstHoldMs: leadScaledMs(policy.burst.holdMs, factor),
    settleMs: leadScaledMs(policy.settle.windowMs, factor),
  };
}

function budgetGpusOf(
  input: CapacityInput,
  policy: CapacityPolicy,
  step: number,
  minGpus: number,
  conflicts: CapacityConflict[],
): number | undefined {
  if (policy.budgetUsdPerHour === undefined) return undefined;
  if (input.usdPerGpuHour === undefined || !Number.isFinite(input.usdPerGpuHour)) {
    conflicts.push({
      type: "MissingPrice",
      message: `budget ${policy.budgetUsdPerHour} USD/h cannot be enforced: GPU price unknown`,
    });
    return undefined;
  }
  const budgetGpus = maxGpusWithinBudget(policy.budgetUsdPerHour, input.usdPerGpuHour, step);
  if (budgetGpus !== undefined && budgetGpus < minGpus) {
    conflicts.push({
      type: "BudgetBelowMinGpus",
      message: `minGpus ${minGpus} costs ${fmt(minGpus * input.usdPerGpuHour, 2)} USD/h, above the budget of ${policy.budgetUsdPerHour} USD/h; keeping minGpus`,
      requiredGpus: minGpus,
      limitGpus: budgetGpus,
    });
  }
  return budgetGpus;
}

function frameOf(
  input: CapacityInput,
  state: CapacityState,
  policy: CapacityPolicy,
  nowMs: number,
  signals: readonly CapacitySignalEntry[],
): Frame {
  const conflicts: CapacityConflict[] = [];
  const step = Math.max(1, Math.floor(policy.gpuStep));
  const minGpus = Math.max(0, Math.floor(policy.minGpus));
  let maxGpus = Math.max(0, Math.floor(policy.maxGpus));
  if (minGpus > maxGpus) {
    conflicts.push({
      type: "InvalidBounds",
      message: `minGpus ${minGpus} > maxGpus ${maxGpus}; using minGpus`,
      requiredGpus: minGpus,
      limitGpus: maxGpus,
    });
    maxGpus = minGpus;
  }
  const previous = finiteNonNegative(input.provisionedGpus) ? Math.floor(input.provisionedGpus) : minGpus;
  const ready = finiteNonNegative(input.readyGpus) ? Math.min(Math.floor(input.readyGpus), previous) : 0;
  // Lead time learns from pod start-to-Ready durations regardless of load metrics (per load tier
  // when the input names the tier the next pod gets).
  const { leadTime, tierLeadTime, leadTimeMs } = learnLeadTime(state, input, policy.leadTime);
  const budgetGpus = budgetGpusOf(input, policy, step, minGpus, conflicts);
  // Floor signals (the schedule) need no metrics.
  const floors = evaluateFloors(signals, { policy, state, nowMs, leadTimeMs, step });
  for (const x of floors) conflicts.push(...(x.ask.conflicts ?? []));
  const floorGpus = Math.max(0, ...floors.map((x) => x.ask.floorGpus));
  return {
    input,
    state,
    policy,
    nowMs,
    conflicts,
    step,
    minGpus,
    maxGpus,
    previous,
    ready,
    warmingGpus: Math.max(0, previous - ready - pendingOf(input, previous - ready)),
    leadTime,
    tierLeadTime,
    leadTimeMs,
    windows: leadWindowsOf(policy, leadTimeMs),
    budgetGpus,
    floors,
    floorGpus,
  };
}

interface Verdict<R extends string> {
  readonly desired: number;
  readonly reason: R;
  readonly message: string;
}

/** Floors (minGpus, the floor signals) then caps (maxGpus, the budget), each naming itself when it binds. */
function applyFloorsAndCaps<R extends string>(f: Frame, v: Verdict<R>): Verdict<R | CapacityReason> {
  let { desired, message } = v;
  let reason: R | CapacityReason = v.reason;
  const floor = Math.max(f.minGpus, f.floorGpus);
  if (floor > desired) {
    desired = floor;
    const binding =
      f.floorGpus >= f.minGpus && f.floorGpus > 0 ? f.floors.find((x) => x.ask.floorGpus === f.floorGpus) : undefined;
    reason = binding === undefined ? "AtMinGpus" : (binding.signal.reason as R);
    message = binding === undefined ? `at minGpus ${f.minGpus}; ${message}` : `${binding.ask.message}; ${message}`;
  }
  if (desired > f.maxGpus) {
    desired = f.maxGpus;
    reason = "AtMaxGpus";
    message = `capped at maxGpus ${f.maxGpus}; ${message}`;
  }
  if (f.budgetGpus !== undefined && desired > f.budgetGpus) {
    const capped = Math.max(f.budgetGpus, f.minGpus);
    if (capped < desired) {
      desired = capped;
      reason = "BudgetCapped";
      message = `capped at ${capped} GPUs by the budget of ${f.policy.budgetUsdPerHour} USD/h; ${message}`;
    }
  }
  return { desired, reason, message };
}

function noteBudgetConflict(f: Frame, wantedGpus: number): void {
  const wanted = Math.min(Math.max(wantedGpus, f.floorGpus), Number.MAX_SAFE_INTEGER);
  const limit = f.budgetGpus === undefined ? undefined : Math.max(f.budgetGpus, f.minGpus);
  if (f.budgetGpus !== undefined && limit !== undefined && wanted > limit && limit < f.maxGpus) {
    f.conflicts.push({
      type: "BudgetVsSlo",
      message: `the SLO and pre-warm need ${wanted} GPUs but the budget of ${f.policy.budgetUsdPerHour} USD/h pays for ${f.budgetGpus}; the budget wins`,
      requiredGpus: wanted,
      limitGpus: f.budgetGpus,
    });
  }
}

/** The last stage of every path: floors and caps, the budget conflict, the action and the state's change times. */
function finishDecision<R extends string>(
  f: Frame,
  v: Verdict<R>,
  wantedGpus: number,
  figures: Partial<CapacitySignals>,
  nextState: CapacityState,
): CapacityDecision<R | CapacityReason> {
  const bound = applyFloorsAndCaps(f, v);
  noteBudgetConflict(f, wantedGpus);
  const message =
    f.warmingGpus > 0
      ? `${bound.message} (${f.warmingGpus} GPUs still warming count as coming capacity)`
      : bound.message;
  const action = bound.desired > f.previous ? "ScaleUp" : bound.desired < f.previous ? "ScaleDown" : "Hold";
  const correction = f.state.calibration.correction;
  return {
    desiredGpus: bound.desired,
    previousGpus: f.previous,
    action,
    reason: bound.reason,
    message,
    conflicts: f.conflicts,
    signals: {
      stableTokensPerSecond: undefined,
      shortTokensPerSecond: undefined,
      burstRatio: undefined,
      sloGpus: undefined,
      burstGpus: 0,
      forecastGpus: 0,
      forecastTokensPerSecond: undefined,
      scheduleGpus: 0,
      scheduleName: undefined,
      leadTimeMs: f.leadTimeMs,
      leadWindowFactor: f.windows.factor,
      budgetGpus: f.budgetGpus,
      warmingGpus: f.warmingGpus,
      predictedP99Ms: undefined,
      latencyScale: correction.latencyScale,
      capacityScale: correction.capacityScale,
      ...(Object.assign({}, ...f.floors.map((x) => x.ask.figures)) as Partial<CapacitySignals>),
      ...figures,
    },
    nextState: {
      ...nextState,
      leadTime: f.leadTime,
      ...(f.tierLeadTime === undefined ? {} : { tierLeadTime: f.tierLeadTime }),
      lastScaleUpAtMs: action === "ScaleUp" ? f.nowMs : nextState.lastScaleUpAtMs,
      lastScaleDownAtMs: action === "ScaleDown" ? f.nowMs : nextState.lastScaleDownAtMs,
    },
  };
}

type Hold = Verdict<CapacityReason>;

/** Hold on bad data: the count stays, floors, bounds and budget still apply. */
function holdDecision(
  f: Frame,
  hold: { readonly reason: CapacityReason; readonly message: string },
  state: Partial<CapacityState>,
): CapacityDecision {
  const recommendations = holdRecommendation(f.state, f.previous, f.nowMs, f.policy);
  return finishDecision(
    f,
    { desired: f.previous, ...hold },
    0,
    {},
    { ...f.state, leadTime: f.leadTime, ...state, recommendations },
  );
}

/**
 * A collection gap holds the count the pre-gap load needs (gap-hold.ts): the provisioned count
 * when that is no more, else it comes down to it through the scale-down stabilisation (window of
 * recommendations, burst hold, rate and step limits). Learns nothing.
 */
function gapHoldDecision(f: Frame, hold: Hold, quality: LoadQualityState | undefined): CapacityDecision {
  const { policy, nowMs, previous } = f;
  const ref = quality?.gapRefTokensPerSecond;
  if (!policy.loadQuality.gapHoldAtNeededLevel || ref === undefined)
    return holdDecision(f, hold, { loadQuality: quality });
  const m = sizingModelOf(f);
  const headroom = anticipationHeadroom(f.state.predictionErrors ?? [], nowMs, policy.headroom);
  const since = quality?.gapSinceMs ?? nowMs;
  const o = policy.forecast.options;
  const rise = profileRiseBetween(
    forecastLoad(f.state.forecast, since, 0, o),
    forecastLoad(f.state.forecast, nowMs + f.leadTimeMs, 0, o),
  );
  const needed = gapHoldGpus(ref, headroom, rise, policy.ceiling.maxSizingRatio, (load) =>
    m.requiredOrBestEffort(load, m.target),
  );
  if (needed > previous && rise > 1) {
    // The daily profile rose since the gap began: come up to it (under the learned ceiling) as the
    // forecast would have pre-warmed it, the count traffic coming back now is expected to need.
    const ceiling = learnedCeilingGpus(f.state.peakEvidence?.value ?? needed, f.step, policy.ceiling);
    const up = Math.min(needed, ceiling);
    if (up > previous)
      return finishDecision(
        f,
        {
          desired: up,
          reason: hold.reason,
          message: `${hold.message.replace(`holding at ${previous} GPUs: `, "")}; rising to ${up}: ${up} GPUs meet the plan (${fmt(m.target, 1)} ms) at the pre-gap ${fmt(ref)} tok/s x headroom ${fmt(headroom, 2)} x the daily profile's rise since the gap ${fmt(rise, 2)}`,
        },
        0,
        {},
        {
          ...f.state,
          leadTime: f.leadTime,
          loadQuality: quality,
          recommendations: holdRecommendation(f.state, up, nowMs, policy),
        },
      );
  }
  if (needed >= previous) return holdDecision(f, hold, { loadQuality: quality });
  const recommendations = trimTimed(
    [...f.state.recommendations, { atMs: nowMs, value: needed }],
    nowMs - Math.max(policy.scaleUp.stabilizationWindowMs, policy.scaleDown.stabilizationWindowMs),
  );
  const riseText = rise > 1 ? ` x the daily profile's rise since the gap ${fmt(rise, 2)}` : "";
  const neededText = `${needed} GPUs meet the plan (${fmt(m.target, 1)} ms) at the pre-gap ${fmt(ref)} tok/s x headroom ${fmt(headroom, 2)}${riseText}`;
  const down = stabiliseDown(
    f,
    { desired: needed, reason: hold.reason, message: `${hold.message}; ${neededText}` },
    false,
    recommendations,
    f.state.burstUntilMs,
  );
  const message =
    down.desired < previous
      ? `${hold.message.replace(`holding at ${previous} GPUs: `, "")}; coming down to ${down.desired}: ${neededText}`
      : down.message;
  return finishDecision(
    f,
    { desired: down.desired, reason: hold.reason, message },
    0,
    {},
    { ...f.state, leadTime: f.leadTime, loadQuality: quality, recommendations },
  );
}

/** Data quality: never act on stale or missing data. */
function readMetrics(
  f: Frame,
): { readonly hold: Hold } | { readonly hold?: undefined; readonly load: number; readonly metricsAtMs: number } {
  const { input, previous, nowMs } = f;
  const dq = f.policy.dataQuality;
  const holding = (reason: CapacityReason, message: string) => ({ hold: { desired: previous, reason, message } });
  if (
    !finiteNonNegative(input.tokensPerSecond) ||
    input.metricsAtMs === undefined ||
    !Number.isFinite(input.metricsAtMs)
  ) {
    return holding("MissingMetrics", `holding at ${previous} GPUs: load metrics are missing`);
  }
  if (nowMs - input.metricsAtMs > dq.maxMetricsAgeMs) {
    return holding(
      "StaleMetrics",
      `holding at ${previous} GPUs: load metrics are ${fmt((nowMs - input.metricsAtMs) / 1000)} s old (limit ${fmt(dq.maxMetricsAgeMs / 1000)} s)`,
    );
  }
  if (input.metricsConfidence !== undefined && !(input.metricsConfidence >= dq.minConfidence)) {
    return holding(
      "LowConfidenceMetrics",
      `holding at ${previous} GPUs: metrics confidence ${fmt(input.metricsConfidence, 2)} is below ${dq.minConfidence}`,
    );
  }
  return { load: input.tokensPerSecond, metricsAtMs: input.metricsAtMs };
}

/** This tick's load over the windows (the sample included: the decision reacts to it). */
interface LoadView {
  readonly load: number;
  readonly metricsAtMs: number;
  readonly isNewSample: boolean;
  /** The forecaster may learn the sample. */
  readonly learn: boolean;
  readonly quality: LoadQualityState | undefined;
  readonly samples: readonly TimedValue[];
  readonly stableMean: number;
  readonly stable: number;
  readonly short: number;
  readonly burst: BurstDetection;
  /**
   * The first sample of the latest run without a hole longer than the metrics' staleness limit
   * (history.ts); history not covering a window is no basis for a trend or a prediction.
   */
  readonly historyFromMs: number;
}

/** Per-sample data quality (out of range, uncorroborated outliers, collection gaps are a hold, never load), then the windows. */
function measureLoad(
  f: Frame,
  load: number,
  metricsAtMs: number,
): LoadView | { readonly hold: Hold; readonly quality: LoadQualityState | undefined } {
  const { state, policy, nowMs } = f;
  const lastSample = state.loadSamples[state.loadSamples.length - 1];
  const isNewSample = lastSample === undefined || metricsAtMs > lastSample.atMs;
  const screened = isNewSample
    ? screenLoadSample({ atMs: metricsAtMs, value: load }, state, policy, f.maxGpus, f.previous)
    : { hold: undefined, learn: true, quality: state.loadQuality };
  if (screened.hold !== undefined)
    return { hold: { desired: f.previous, ...screened.hold }, quality: screened.quality };
  const samples = isNewSample ? [...state.loadSamples, { atMs: metricsAtMs, value: load }] : [...state.loadSamples];
  const stableMean = windowMeanValue(samples, nowMs, policy.stableWindowMs) ?? load;
  const stable =
    policy.stableQuantile === undefined
      ? stableMean
      : Math.max(stableMean, windowQuantileValue(samples, nowMs, policy.stableWindowMs, policy.stableQuantile) ?? load);
  const short = windowMeanValue(samples, nowMs, policy.shortWindowMs) ?? load;
  const burst = detectBurst(short, stable, policy.burst);
  return {
    load,
    metricsAtMs,
    isNewSample,
    learn: screened.learn,
    quality: screened.quality,
    samples,
    stableMean,
    stable,
    short,
    burst,
    // Samples further apart than the staleness limit (a gap, an outage: holds add none) are not one history.
    historyFromMs:
      contiguousHistoryFromMs(samples, policy.dataQuality.maxMetricsAgeMs) ?? (samples[0] as TimedValue).atMs,
  };
}

/** The calibrated latency model as GPU counts for a load and a target. */
interface SizingModel {
  readonly correction: LatencyCalibrationState["correction"];
  readonly conditions: Omit<LatencyConditions, "gpuCount">;
  /** Plan target, scale-down (hysteresis) target, middle of the band (ms). */
  readonly target: number;
  readonly targetDown: number;
  readonly targetMid: number;
  readonly searchLimitGpus: number;
  readonly required: (tokensPerSecond: number, targetMs: number) => number | undefined;
  /** When no count meets the target, aim for within 25 % of the best achievable latency instead. */
  readonly requiredOrBestEffort: (tokensPerSecond: number, targetMs: number) => number;
}

function sizingModelOf(f: Frame): SizingModel {
  const { input, policy } = f;
  const correction = f.state.calibration.correction;
  const conditions: Omit<LatencyConditions, "gpuCount"> = {
    tokensPerSecond: 0,
    balancedness: input.balancedness,
    crossNodeShare: input.crossNodeShare,
    redundantExpertsPerGpu: input.redundantExpertsPerGpu,
  };
  const bandTarget = (share: number) =>
    policy.slo.targetP99Ms * Math.max(0.05, 1 - policy.safetyMargin - share * policy.hysteresis);
  const searchLimitGpus = Math.max(f.maxGpus, f.step) * 8;
  const required = (tokensPerSecond: number, targetMs: number): number | undefined =>
    requiredGpusForTarget(policy.latencyModel, { ...conditions, tokensPerSecond }, targetMs, {
      gpuStep: f.step,
      searchLimitGpus,
      correction,
    }).gpuCount;
  const bestEffortTarget =
    1.25 * correction.latencyScale * unloadedLatencyMs(policy.latencyModel, input.crossNodeShare);
  const requiredOrBestEffort = (tokensPerSecond: number, targetMs: number): number =>
    required(tokensPerSecond, targetMs) ??
    required(tokensPerSecond, Math.max(targetMs, bestEffortTarget)) ??
    searchLimitGpus;
  return {
    correction,
    conditions,
    target: bandTarget(0),
    targetDown: bandTarget(1),
    targetMid: bandTarget(0.5),
    searchLimitGpus,
    required,
    requiredOrBestEffort,
  };
}

/**
 * The recent trend one lead time (plus the metrics' age) ahead, and whether the load falls
 * significantly. Capacity ordered now serves from one lead time on, so it is sized for the load
 * expected then; the trend only ever raises the sizing load.
 */
function trendAhead(
  f: Frame,
  lv: LoadView,
): { readonly trendTokensPerSecond: number | undefined; readonly falling: boolean } {
  const { policy, nowMs } = f;
  const none = { trendTokensPerSecond: undefined, falling: false };
  if (!policy.trend.enabled || lv.historyFromMs > nowMs - policy.trend.windowMs) return none;
  const horizonMs = Math.max(0, nowMs - lv.metricsAtMs) + f.leadTimeMs;
  const t = fitLoadTrend(lv.samples, nowMs, policy.trend.windowMs, policy.trend.minSamples);
  // A rise must also show in the recent half of the window: a step (burst onset) earlier in the
  // window tilts the line but is no ramp to extrapolate.
  const recent = fitLoadTrend(
    lv.samples,
    nowMs,
    policy.trend.windowMs / 2,
    Math.max(3, Math.ceil(policy.trend.minSamples / 2)),
  );
  // Significance gate at z standard errors; the extrapolated slope is the milder lower bound at
  // extrapolateZ (the z bound itself underestimates a real ramp by z standard errors).
  const significant = t !== undefined && t.slopePerMs - policy.trend.z * t.slopeStdErrPerMs > 0;
  const lower =
    t === undefined || !significant
      ? 0
      : t.slopePerMs - Math.min(policy.trend.z, policy.trend.extrapolateZ) * t.slopeStdErrPerMs;
  const slope = recent === undefined ? lower : Math.min(lower, recent.slopePerMs);
  const falling =
    t !== undefined &&
    t.slopePerMs + policy.trend.z * t.slopeStdErrPerMs < 0 &&
    (recent === undefined || recent.slopePerMs < 0);
  if (t === undefined || !(slope > 0) || !(lv.stable > 0)) return { trendTokensPerSecond: undefined, falling };
  // Extrapolate from the stable-window mean (less noisy than the line's end point): it stands for
  // the middle of its window, so the rise until then counts too.
  const ahead = lv.stable + slope * (nowMs - t.atMs + policy.stableWindowMs / 2 + horizonMs);
  return { trendTokensPerSecond: Math.min(ahead, Math.max(policy.trend.maxGrowth, 1) * lv.stable), falling };
}

/** The load the SLO count is sized for: the anticipated load with headroom (and a burst's), under the model cap. */
interface Sizing {
  readonly trendTokensPerSecond: number | undefined;
  readonly falling: boolean;
  readonly headroom: number;
  readonly anticipatedRaw: number;
  readonly observedLoad: number;
  readonly uncappedSizing: number;
  readonly sizingLoad: number;
}

function anticipate(f: Frame, lv: LoadView): Sizing {
  const trend = trendAhead(f, lv);
  // Headroom: how far the load has outrun this anticipation lately (an upper quantile of the
  // observed / anticipated ratio one lead time later), so volatile traffic gets more spare capacity
  // than smooth traffic.
  const headroom = anticipationHeadroom(f.state.predictionErrors ?? [], lv.metricsAtMs, f.policy.headroom);
  const anticipatedRaw = Math.max(lv.stable, trend.trendTokensPerSecond ?? 0);
  const anticipated = anticipatedRaw * headroom;
  // Model cap: never size for more than a bounded multiple of the load observed now.
  const observedLoad = Math.max(lv.stable, lv.short);
  const uncappedSizing = lv.burst.burst ? Math.max(anticipated, lv.short) : anticipated;
  const sizingLoad = capSizingLoad(uncappedSizing, observedLoad, f.policy.ceiling);
  return { ...trend, headroom, anticipatedRaw, observedLoad, uncappedSizing, sizingLoad };
}

/** Learned ceiling: the evidence now (the model at the observed load) joins the highest recently seen. */
function learnCeiling(
  f: Frame,
  lv: LoadView,
  m: SizingModel,
  s: Sizing,
): { readonly evidenceGpus: number; readonly peakEvidence: TimedValue; readonly ceilingGpus: number } {
  const evidenceGpus = m.requiredOrBestEffort(lv.burst.burst ? s.observedLoad : lv.stable, m.target);
  const peakEvidence = nextPeakEvidence(f.state.peakEvidence, { atMs: f.nowMs, value: evidenceGpus }, f.policy.ceiling);
  return { evidenceGpus, peakEvidence, ceilingGpus: learnedCeilingGpus(peakEvidence.value, f.step, f.policy.ceiling) };
}

/** The SLO's recommendation: up to the SLO count, down only past the hysteresis count or a settled window. */
interface SloStage {
  readonly sloUp: number | undefined;
  readonly sloUpGpus: number;
  readonly sloDownGpus: number;
  readonly burstGpus: number;
  readonly upCounts: TimedValue[];
  readonly settledGpus: number | undefined;
  readonly banded: number;
  readonly recommendation: number;
}

function recommendSlo(f: Frame, lv: LoadView, m: SizingModel, s: Sizing): SloStage {
  const { policy, previous, nowMs } = f;
  const sloUp = m.required(s.sizingLoad, m.target);
  if (sloUp === undefined) {
    f.conflicts.push({
      type: "SloUnattainable",
      message: `no GPU count up to ${m.searchLimitGpus} meets p99 ${policy.slo.metric} <= ${fmt(m.target, 1)} ms at ${fmt(s.sizingLoad)} tok/s; aiming for the best achievable latency`,
    });
  } else if (sloUp > f.maxGpus) {
    f.conflicts.push({
      type: "MaxGpusVsSlo",
      message: `the SLO needs ${sloUp} GPUs but maxGpus is ${f.maxGpus}`,
      requiredGpus: sloUp,
      limitGpus: f.maxGpus,
    });
  }
  const sloUpGpus = sloUp ?? m.requiredOrBestEffort(s.sizingLoad, m.target);
  const sloDownGpus = m.required(s.sizingLoad, m.targetDown) ?? sloUpGpus;
  const burstGpus = lv.burst.burst ? m.requiredOrBestEffort(lv.short, m.target) : 0;
  // Sustained measured over-provisioning: when even the highest up count over the settle window is
  // below the provisioned count, the band collapses to it (never below the up count now).
  // Recorded at the middle of the band (half the hysteresis, in predicted latency): after settling,
  // a scale-up again needs a real rise, not the next noisy sample above the window's highest.
  // Over-provisioning must also be measured: a sample whose observed p99 was over the plan counts
  // as needing all the provisioned GPUs (bursty traffic whose mean hides its peaks).
  const measuredOver = f.input.observedP99Ms !== undefined && !(f.input.observedP99Ms <= m.target);
  const upNow = {
    atMs: nowMs,
    value: Math.max(
      sloUpGpus,
      burstGpus,
      m.required(s.sizingLoad, m.targetMid) ?? sloUpGpus,
      measuredOver ? previous : 0,
    ),
  };
  const upCounts = nextUpCounts(f.state.upCounts, upNow, policy.settle);
  const settledGpus = settledUpCount(upCounts, nowMs, policy.settle, f.windows.settleMs);
  // Deadband: go up to the SLO count; come down only past the stricter (hysteresis) count.
  const banded = sloDownGpus < previous ? sloDownGpus : previous;
  const recommendation = sloUpGpus > previous ? sloUpGpus : Math.min(banded, settledGpus ?? banded);
  return { sloUp, sloUpGpus, sloDownGpus, burstGpus, upCounts, settledGpus, banded, recommendation };
}

/** The SLO's own reason (SLOFeedback or WithinTarget) and message for a count no signal set. */
function sloVerdict(f: Frame, m: SizingModel, s: Sizing, slo: SloStage, metricRaw: number): Verdict<CapacityReason> {
  const { policy, previous } = f;
  const capText =
    s.sizingLoad < s.uncappedSizing
      ? ` (capped at ${fmt(policy.ceiling.maxSizingRatio, 1)}x the observed ${fmt(s.observedLoad)} tok/s; trend and headroom asked ${fmt(s.uncappedSizing)})`
      : "";
  const sloText = `p99 ${policy.slo.metric} target ${policy.slo.targetP99Ms} ms (plan ${fmt(m.target, 1)} ms) at ${fmt(s.sizingLoad)} tok/s${capText} needs ${slo.sloUp ?? "more than " + m.searchLimitGpus} GPUs`;
  if (metricRaw === previous)
    return {
      desired: metricRaw,
      reason: "WithinTarget",
      message: `${sloText}; ${previous} GPUs are within the hysteresis band`,
    };
  const settledText =
    slo.settledGpus !== undefined && slo.settledGpus < slo.banded
      ? `; over the last ${fmt(f.windows.settleMs / 60_000, 1)} min the middle of the band (p99 ${fmt(m.targetMid, 1)} ms) needed at most ${slo.settledGpus} GPUs (sustained over-provisioning)`
      : "";
  const message =
    metricRaw > previous
      ? sloText
      : `${sloText}; ${slo.sloDownGpus} GPUs keep p99 within ${fmt(m.targetDown, 1)} ms${settledText}`;
  return { desired: metricRaw, reason: "SLOFeedback", message };
}

/** Stabilisation up: the lowest recommendation of the up window, the rate limit, the step limit. */
function stabiliseUp<R extends string>(
  f: Frame,
  v: Verdict<R>,
  burst: boolean,
  recommendations: readonly TimedValue[],
): Verdict<R> {
  const { policy, previous, nowMs, state } = f;
  let { desired, message } = v;
  if (!burst && policy.scaleUp.stabilizationWindowMs > 0) {
    const upFrom = nowMs - policy.scaleUp.stabilizationWindowMs;
    const lowest = Math.min(...recommendations.filter((r) => r.atMs >= upFrom).map((r) => r.value));
    desired = Math.max(previous, Math.min(desired, lowest));
  }
  if (!burst && state.lastScaleUpAtMs !== undefined && nowMs - state.lastScaleUpAtMs < policy.scaleUp.periodMs) {
    desired = previous;
    message = `${message}; scale-up rate limit (one change per ${fmt(policy.scaleUp.periodMs / 1000)} s)`;
  }
  const limit = previous + stepAllowance(previous, policy.scaleUp);
  if (desired > limit) {
    desired = Math.max(previous, Math.floor(limit / f.step) * f.step);
    message = `${message}; step-limited to ${desired}`;
  }
  return { desired, reason: v.reason, message };
}

/**
 * Stabilisation down: the highest recommendation of the down window (shorter while the load falls),
 * the burst hold, no scale-down while the observed p99 is over the target, the rate and step limits
 * (not down to `provenNow`, a count measured within the plan at the observed load: proven.ts).
 */
function stabiliseDown<R extends string>(
  f: Frame,
  v: Verdict<R>,
  falling: boolean,
  recommendations: readonly TimedValue[],
  burstUntilMs: number | undefined,
  provenNow?: number,
  releaseAbove?: number,
): Verdict<R | CapacityReason> {
  const { policy, previous, nowMs, input } = f;
  const hold = (why: string): Verdict<CapacityReason> => ({
    desired: previous,
    reason: "StabilizingScaleDown",
    message: `${v.message}; ${why}`,
  });
  // While the load falls significantly, recommendations older than the falling-trend window no
  // longer say what the next lead time needs.
  // Both windows follow the learned lead (lead-scale.ts).
  const downWindowMs = falling ? Math.min(f.windows.scaleDownMs, f.windows.fallingScaleDownMs) : f.windows.scaleDownMs;
  // After an isolated crowd (crowd.ts), recommendations for a load that is gone stop holding the
  // window one lead time after they were made.
  const holds = (r: TimedValue): boolean =>
    r.atMs >= nowMs - downWindowMs &&
    (releaseAbove === undefined || r.value <= releaseAbove || r.atMs >= nowMs - f.leadTimeMs);
  const highest = Math.max(...recommendations.filter(holds).map((r) => r.value));
  const windowHighest = Math.max(...recommendations.filter((r) => r.atMs >= nowMs - downWindowMs).map((r) => r.value));
  const crowdText =
    releaseAbove !== undefined && highest < windowHighest
      ? `; after an isolated burst, recommendations up to ${windowHighest} GPUs (above the ${releaseAbove} GPUs for ${fmt(policy.burst.ratio)}x the load now) no longer hold after one lead time (${fmt(f.leadTimeMs / 60_000, 1)} min)`
      : "";
  if (highest >= previous)
    return hold(
      `holding ${previous} GPUs: recommendations in the last ${fmt(downWindowMs / 60_000, 1)} min reached ${highest}`,
    );
  if (burstUntilMs !== undefined && nowMs < burstUntilMs)
    return hold(`holding ${previous} GPUs for ${fmt((burstUntilMs - nowMs) / 1000)} s after a burst`);
  // No scale-down while the latency measured on the Ready GPUs is over the target: whatever the
  // model says, fewer GPUs cannot help (the model is wrong or the load is not what it looks like).
  if (
    input.observedP99Ms !== undefined &&
    Number.isFinite(input.observedP99Ms) &&
    input.observedP99Ms > policy.slo.targetP99Ms
  ) {
    return hold(
      `holding ${previous} GPUs: observed p99 ${fmt(input.observedP99Ms)} ms is over the ${fmt(policy.slo.targetP99Ms)} ms target`,
    );
  }
  const desired = Math.max(v.desired, highest);
  // Measured release (proven.ts): the rate and step limits guard against a model that is wrong
  // about fewer GPUs; a fall larger than one step down to a count this fleet measured within the
  // plan at this load or more, recently and more than once, trusts no model, so they do not apply.
  // (Releasing falls within one step too, every tick, cost ServeGen 5 violated minutes in 2 days.)
  const stepFloor = previous - stepAllowance(previous, policy.scaleDown);
  const release =
    policy.proven.releaseDown && provenNow !== undefined && Math.max(desired, provenNow) < stepFloor
      ? Math.max(desired, provenNow)
      : previous;
  if (
    release >= previous &&
    f.state.lastScaleDownAtMs !== undefined &&
    nowMs - f.state.lastScaleDownAtMs < policy.scaleDown.periodMs
  ) {
    return hold(`scale-down rate limit (one change per ${fmt(policy.scaleDown.periodMs / 1000)} s)`);
  }
  const limit = Math.min(stepFloor, release);
  if (desired < limit) {
    const stepped = Math.min(previous, Math.ceil(limit / f.step) * f.step);
    const why =
      release < previous
        ? `; ${provenNow} GPUs met the plan at this load or more within the last ${fmt(policy.proven.windowMs / 60_000)} min: released to ${stepped}`
        : `; step-limited to ${stepped}`;
    return { desired: stepped, reason: v.reason, message: `${v.message}${crowdText}${why}` };
  }
  const released =
    release < previous
      ? `; ${provenNow} GPUs met the plan at this load or more within the last ${fmt(policy.proven.windowMs / 60_000)} min: no step limit`
      : "";
  return { desired, reason: v.reason, message: `${v.message}${crowdText}${released}` };
}

/** Stabilisation and step limits around the metric-driven count; the recommendation history and the burst hold for the next state. */
function stabilise<R extends string>(
  f: Frame,
  lv: LoadView,
  v: Verdict<R>,
  falling: boolean,
  provenNow: number | undefined,
  countAt: (tokensPerSecond: number) => number,
): {
  readonly verdict: Verdict<R | CapacityReason>;
  readonly recommendations: TimedValue[];
  readonly burstUntilMs: number | undefined;
  readonly burstHistory: BurstHistory;
} {
  const { policy, nowMs, state, previous } = f;
  const recommendations = trimTimed(
    [...state.recommendations, { atMs: nowMs, value: v.desired }],
    nowMs - Math.max(policy.scaleUp.stabilizationWindowMs, policy.scaleDown.stabilizationWindowMs),
  );
  // Any burst holds scale-down, also one the provisioned GPUs already cover: traffic that just
  // jumped to 2x its stable level says nothing about the capacity it needs next (Azure code trace:
  // scaled 311 -> 248 GPUs in the very tick a 5x burst was seen, then 7 minutes over the SLO).
  const burstUntilMs = lv.burst.burst
    ? Math.max(state.burstUntilMs ?? 0, nowMs + f.windows.burstHoldMs)
    : state.burstUntilMs;
  const burstHistory = nextBurstHistory(state.burstHistory, lv.burst.burst, nowMs, policy.burst.holdMs, policy.crowd);
  const releaseAbove = crowdReleaseAbove(burstHistory, policy.crowd, () =>
    countAt(policy.burst.ratio * Math.max(lv.stable, lv.short)),
  );
  const verdict =
    v.desired > previous
      ? stabiliseUp(f, v, lv.burst.burst, recommendations)
      : v.desired < previous
        ? stabiliseDown(f, v, falling, recommendations, burstUntilMs, provenNow, releaseAbove)
        : v;
  return { verdict, recommendations, burstUntilMs, burstHistory };
}

function signalContext(
  f: Frame,
  lv: LoadView,
  m: SizingModel,
  s: Sizing,
  slo: SloStage,
  ceilingGpus: number,
): SignalContext {
  return {
    input: f.input,
    state: f.state,
    policy: f.policy,
    nowMs: f.nowMs,
    metricsAtMs: lv.metricsAtMs,
    isNewSample: lv.isNewSample,
    learnSample: lv.learn,
    loadTokensPerSecond: lv.load,
    stableTokensPerSecond: lv.stable,
    shortTokensPerSecond: lv.short,
    burst: lv.burst,
    burstGpus: slo.burstGpus,
    previousGpus: f.previous,
    leadTimeMs: f.leadTimeMs,
    targetMs: m.target,
    headroom: s.headroom,
    ceilingGpus,
    sloRecommendationGpus: slo.recommendation,
    requiredOrBestEffort: m.requiredOrBestEffort,
  };
}

/**
 * Calibration learns the observed p99 once per metrics sample (the operator decides on every event:
 * pod Ready, status update; the same observation learned five times would weigh five times in its
 * utilisation bin), and only once the Ready count has been stable for a while (observed p99 covers a window).
 */
function learnCalibration(
  f: Frame,
  lv: LoadView,
): {
  readonly calibration: LatencyCalibrationState;
  readonly readyChangedAtMs: number | undefined;
  /** The observed p99 is of a settled Ready count and a new sample (what the calibration learns from). */
  readonly learnable: boolean;
} {
  const { state, policy, nowMs, input, ready } = f;
  const readyChangedAtMs = state.lastReadyGpus === ready ? state.readyChangedAtMs : nowMs;
  const settled = readyChangedAtMs === undefined || nowMs - readyChangedAtMs >= policy.calibrationSettleMs;
  if (input.observedP99Ms === undefined || !(ready > 0) || !settled || !lv.isNewSample)
    return { calibration: state.calibration, readyChangedAtMs, learnable: false };
  const calibration = observeLatency(
    state.calibration,
    policy.latencyModel,
    {
      atMs: lv.metricsAtMs,
      observedP99Ms: input.observedP99Ms,
      tokensPerSecond: lv.load,
      gpuCount: ready,
      balancedness: input.balancedness,
      crossNodeShare: input.crossNodeShare,
      redundantExpertsPerGpu: input.redundantExpertsPerGpu,
    },
    policy.calibration,
  );
  return { calibration, readyChangedAtMs, learnable: true };
}

/** A settled observation within the plan target records the Ready count and the lower of the stable and short loads. */
function learnProven(f: Frame, lv: LoadView, m: SizingModel, learnable: boolean): ProvenRecord[] {
  const p99 = f.input.observedP99Ms;
  const within = learnable && p99 !== undefined && Number.isFinite(p99) && p99 <= m.target;
  const record = within
    ? { atMs: f.nowMs, gpus: f.ready, tokensPerSecond: Math.min(lv.stableMean, lv.short) }
    : undefined;
  return nextProvenRecords(f.state.provenRecords, record, f.nowMs, f.policy.proven);
}

/**
 * Anticipation errors for the headroom, scored against the stable-window level, not the single
 * sample: the anticipation is of the level (per-sample noise would otherwise read as anticipation
 * error and inflate the headroom). The level stands for the middle of its window, so predictions
 * are scored half a window later.
 */
function learnPredictions(
  f: Frame,
  lv: LoadView,
  anticipatedRaw: number,
): Pick<CapacityState, "pendingPredictions" | "predictionErrors"> {
  const { state, policy, nowMs } = f;
  if (!(lv.isNewSample && policy.headroom.enabled && lv.historyFromMs <= nowMs - policy.stableWindowMs)) {
    return { pendingPredictions: state.pendingPredictions, predictionErrors: state.predictionErrors };
  }
  const scored = scorePredictions(
    state.pendingPredictions ?? [],
    state.predictionErrors ?? [],
    { atMs: lv.metricsAtMs, value: lv.stableMean },
    policy.headroom,
  );
  return {
    pendingPredictions: [
      ...scored.pending,
      { atMs: nowMs + f.leadTimeMs + policy.stableWindowMs / 2, value: anticipatedRaw },
    ],
    predictionErrors: scored.errors,
  };
}

/** Each signal's slices of the next state: its own fields (learn) and its own entry in signalStates (learnOwn). */
function learnSignals(entries: readonly CapacitySignalEntry[], ctx: SignalContext): Partial<CapacityState>[] {
  const signals = entries.filter((x) => x.kind === "recommend");
  const slices = signals.map((x) => x.learn?.(ctx) ?? {});
  const own = signals.filter((x) => x.learnOwn !== undefined);
  if (own.length === 0) return slices;
  const signalStates = {
    ...ctx.state.signalStates,
    ...Object.fromEntries(own.map((x) => [x.id, x.learnOwn!(ctx, ctx.state.signalStates?.[x.id])])),
  };
  return [...slices, { signalStates }];
}

/** Learning from this tick lands in the next state (used from the next decision on); each signal learns its own slice. */
function learnedState(
  f: Frame,
  lv: LoadView,
  m: SizingModel,
  s: Sizing,
  slo: SloStage,
  peakEvidence: TimedValue,
  st: {
    readonly recommendations: TimedValue[];
    readonly burstUntilMs: number | undefined;
    readonly burstHistory: BurstHistory;
  },
  slices: readonly Partial<CapacityState>[],
): CapacityState {
  const { state, policy, nowMs } = f;
  const cal = learnCalibration(f, lv);
  return Object.assign(
    {
      ...state,
      loadSamples: trimTimed(
        lv.samples,
        nowMs -
          Math.max(
            policy.stableWindowMs,
            policy.shortWindowMs,
            policy.trend.enabled ? policy.trend.windowMs : 0,
            policy.loadQuality.enabled ? policy.loadQuality.windowMs : 0,
          ),
      ),
      recommendations: st.recommendations,
      burstUntilMs: st.burstUntilMs,
      burstHistory: st.burstHistory,
      calibration: cal.calibration,
      lastReadyGpus: f.ready,
      readyChangedAtMs: cal.readyChangedAtMs,
      ...learnPredictions(f, lv, s.anticipatedRaw),
      provenRecords: learnProven(f, lv, m, cal.learnable),
      loadQuality: lv.quality,
      peakEvidence,
      // One record per metrics sample (the operator decides on every event).
      upCounts: lv.isNewSample ? slo.upCounts : state.upCounts,
    },
    ...slices,
  );
}

/**
 * Decide the GPU count. One entry point for SLO sizing, pre-warm (schedule, forecast), burst,
 * stabilisation, bounds and budget; see the ADRs docs/adr/0003-capacity-policy.md and
 * docs/adr/0011-decide-pipeline.md. `signals` is the registry of capacity signals
 * (src/domain/scaling/signals.ts), in priority order.
 */
export function decideCapacity<R extends string = never>(
  input: CapacityInput,
  state: CapacityState,
  policy: CapacityPolicy,
  nowMs: number,
  signals: readonly CapacitySignalEntry<CapacityReason | R>[] = DEFAULT_CAPACITY_SIGNALS,
): CapacityDecision<CapacityReason | R> {
  const f = frameOf(input, state, policy, nowMs, signals);
  const metrics = readMetrics(f);
  if (metrics.hold !== undefined) return holdDecision(f, metrics.hold, {});
  const lv = measureLoad(f, metrics.load, metrics.metricsAtMs);
  if ("hold" in lv)
    return lv.hold.reason === "MetricsGap"
      ? gapHoldDecision(f, lv.hold, lv.quality)
      : holdDecision(f, lv.hold, { loadQuality: lv.quality });
  const m = sizingModelOf(f);
  const s = anticipate(f, lv);
  const slo = recommendSlo(f, lv, m, s);
  const ceiling = learnCeiling(f, lv, m, s);
  const ctx = signalContext(f, lv, m, s, slo, ceiling.ceilingGpus);
  const asks = evaluateSignals(signals, ctx);
  const metricRaw = Math.max(slo.recommendation, ...asks.map((a) => a.ask.floorGpus));
  const winner = winningSignal(asks, metricRaw, ctx);
  const verdict: Verdict<CapacityReason | R> =
    winner === undefined
      ? sloVerdict(f, m, s, slo, metricRaw)
      : { desired: metricRaw, reason: winner.signal.reason as CapacityReason | R, message: winner.ask.message };
  const provenNow = provenGpus(state.provenRecords, s.observedLoad, nowMs, policy.proven);
  const stabilised = stabilise(f, lv, verdict, s.falling, provenNow, (load) => m.requiredOrBestEffort(load, m.target));
  const nextState = learnedState(f, lv, m, s, slo, ceiling.peakEvidence, stabilised, learnSignals(signals, ctx));
  const finite = Number.isFinite(ceiling.ceilingGpus) ? ceiling.ceilingGpus : undefined;
  const decision = finishDecision(
    f,
    stabilised.verdict,
    Math.max(slo.sloUpGpus, ...asks.map((a) => a.ask.floorGpus)),
    {
      stableTokensPerSecond: lv.stable,
      shortTokensPerSecond: lv.short,
      burstRatio: lv.burst.ratio,
      sloGpus: slo.sloUp,
      burstGpus: slo.burstGpus,
      ...(Object.assign({}, ...asks.map((a) => a.ask.figures)) as Partial<CapacitySignals>),
      sizingTokensPerSecond: s.sizingLoad,
      trendTokensPerSecond: s.trendTokensPerSecond,
      headroom: s.headroom,
      evidenceGpus: ceiling.evidenceGpus,
      ceilingGpus: finite,
      feedbackCeilingGpus:
        finite !== undefined && state.calibration.observationCount >= policy.ceiling.minCalibrationObservations
          ? finite
          : undefined,
      provenGpus: provenNow,
    },
    nextState,
  );
  const predictedP99Ms =
    decision.desiredGpus > 0
      ? predictP99LatencyMs(
          policy.latencyModel,
          { ...m.conditions, tokensPerSecond: s.sizingLoad, gpuCount: decision.desiredGpus },
          m.correction,
        )
      : undefined;
  return { ...decision, signals: { ...decision.signals, predictedP99Ms } };
}

/** Provisioned GPUs pending past the timeout, at most those not Ready (`notReady`); invalid input = 0. */
export function pendingOf(input: Pick<CapacityInput, "pendingGpus">, notReady: number): number {
  const p = input.pendingGpus;
  return p !== undefined && Number.isFinite(p) && p > 0 ? Math.min(Math.floor(p), Math.max(0, notReady)) : 0;
}
