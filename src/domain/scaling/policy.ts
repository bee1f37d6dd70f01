// Capacity policy: SLO, bounds, budget, stabilisation, pre-warm and data-quality knobs, with
// defaults. Plain data; `makeCapacityPolicy` fills defaults from a partial description.

import { DEFAULT_CALIBRATION_OPTIONS } from "../latency/calibration.ts";
import type { CalibrationOptions } from "../latency/calibration.ts";
import { defaultLatencyModelParams } from "../latency/model.ts";
import type { LatencyMetric, LatencyModelParams } from "../latency/model.ts";
import { DEFAULT_BURST_POLICY } from "../prewarm/burst.ts";
import type { BurstPolicy } from "../prewarm/burst.ts";
import { DEFAULT_FORECAST_OPTIONS } from "../prewarm/forecast.ts";
import type { ForecastOptions } from "../prewarm/forecast.ts";
import { DEFAULT_LEAD_TIME_OPTIONS } from "../prewarm/leadtime.ts";
import type { LeadTimeOptions } from "../prewarm/leadtime.ts";
import type { PrewarmSchedule } from "../prewarm/schedule.ts";
import { DEFAULT_CEILING_POLICY } from "./ceiling.ts";
import type { CeilingPolicy } from "./ceiling.ts";
import { DEFAULT_LOAD_QUALITY } from "./quality.ts";
import type { LoadQualityPolicy } from "./quality.ts";
import { DEFAULT_PROVEN_POLICY } from "./proven.ts";
import type { ProvenPolicy } from "./proven.ts";
import { DEFAULT_SETTLE_POLICY } from "./settle.ts";
import type { SettlePolicy } from "./settle.ts";
import { DEFAULT_CROWD_RELEASE_POLICY } from "./crowd.ts";
import type { CrowdReleasePolicy } from "./crowd.ts";
import { DEFAULT_LEAD_SCALING_POLICY } from "./lead-scale.ts";
import type { LeadScalingPolicy } from "./lead-scale.ts";

export interface SloTarget {
  readonly metric: LatencyMetric;
  readonly targetP99Ms: number;
}

/** Rate limit for one direction: at most max(maxStepGpus, ceil(current * maxStepPercent / 100))
 * GPUs per change, and changes at least periodMs apart. */
export interface StepPolicy {
  /** Recommendations over this window are combined (up: min, down: max) before acting. */
  readonly stabilizationWindowMs: number;
  readonly maxStepGpus: number;
  readonly maxStepPercent: number;
  readonly periodMs: number;
}

/**
 * Headroom from the policy's own anticipation errors: each new load sample is compared with what was
 * anticipated for its time one lead time earlier; capacity is sized for the anticipated load times an
 * upper quantile of observed / anticipated over the last `windowMs` (an empirical prediction
 * interval, so volatile traffic gets more spare capacity than smooth traffic).
 */
export interface HeadroomPolicy {
  readonly enabled: boolean;
  /** Quantile of observed / anticipated (0..1). */
  readonly quantile: number;
  readonly windowMs: number;
  /** Fewer scored predictions than this in the window: no headroom. */
  readonly minSamples: number;
  /** Upper bound of the factor. */
  readonly max: number;
  /**
   * Factor while fewer than minSamples predictions are scored (no history: a new deployment, a
   * restart): capacity starts from the observed load with this headroom and moves on evidence.
   */
  readonly startFactor: number;
  /** A prediction is scored against a sample at most this long after its time (else dropped). */
  readonly maxScoreLagMs: number;
}

export interface DataQualityPolicy {
  /** Metrics older than this are stale: hold. */
  readonly maxMetricsAgeMs: number;
  /** Metrics with confidence below this (0..1) are not acted on: hold. */
  readonly minConfidence: number;
}

export interface ForecastPolicy {
  readonly enabled: boolean;
  /** Band width in standard deviations; capacity is sized for the upper band ("absolute" mode). */
  readonly z: number;
  /**
   * How the forecast sizes capacity one lead time ahead:
   * - "anchored" (default): the seasonal profile's expected change from now to one lead time ahead,
   *   applied to the observed load (a daily ramp or a recurring window is pre-warmed; the day's
   *   level, which the profile gets wrong by tens of percent, comes from the measurements);
   * - "absolute": the forecast's upper band itself (z standard deviations over the expected load).
   */
  readonly mode: "anchored" | "absolute";
  /**
   * Anchored mode: a rise must have recurred on each of the last this many days with data (at least
   * 2). While fewer are known, a single day counts only if its profile tracked today's within 10 %
   * (prewarm/corroborate.ts: oneDayRiseTracked), its rise capped at 2x.
   */
  readonly recurrenceDays: number;
  /** Anchored mode: the forecast load is at most the highest level observed in those days' peak spans times this. */
  readonly observedLevelMargin: number;
  readonly options: ForecastOptions;
}

/**
 * Anticipation of the load when capacity ordered now becomes Ready: a least-squares line through
 * the load samples of the last `windowMs`, extrapolated (rises only) by the metrics' age plus the
 * lead time, capped at `maxGrowth` x the fitted current level.
 */
export interface TrendPolicy {
  readonly enabled: boolean;
  readonly windowMs: number;
  readonly maxGrowth: number;
  /** Fewer samples than this in the window: no trend. */
  readonly minSamples: number;
  /** A trend counts when the fitted slope is more than z standard errors above 0 (noise alone must not look like a ramp). */
  readonly z: number;
  /** A trend that counts is extrapolated with the fitted slope minus this many standard errors (<= z). */
  readonly extrapolateZ: number;
  /** While the load falls (slope + z standard errors < 0), the scale-down stabilisation window is at most this. */
  readonly fallingScaleDownWindowMs: number;
}

export interface CapacityPolicy {
  readonly slo: SloTarget;
  /** Plan for predicted p99 <= (1 - safetyMargin) * target. */
  readonly safetyMargin: number;
  /** Scale down only to a count still meeting (1 - safetyMargin - hysteresis) * target. */
  readonly hysteresis: number;
  readonly minGpus: number;
  readonly maxGpus: number;
  /** GPU granularity (e.g. GPUs per shard pod); counts are multiples of it where bounds allow. */
  readonly gpuStep: number;
  /** Budget cap in USD/hour; undefined = none. The budget wins over the SLO. */
  readonly budgetUsdPerHour: number | undefined;
  readonly latencyModel: LatencyModelParams;
  readonly calibration: CalibrationOptions;
  /** Latency observations are ignored for this long after the Ready GPU count changes. */
  readonly calibrationSettleMs: number;
  /** Load used to size for the SLO: time-weighted mean over this window. */
  readonly stableWindowMs: number;
  /**
   * The SLO feedback (guards.ts) trusts an observed p99 only when its window started this long
   * after the most recent Ready (or in-place move): a unit's first seconds after Ready are not yet
   * served at full pace (the router picks it up, Ready times are whole seconds). Default 0.
   */
  readonly feedbackWarmupMs: number;
  /** Load used for burst detection and burst sizing. */
  readonly shortWindowMs: number;
  /**
   * Statistic of the stable window's samples used as the current load: undefined = time-weighted
   * mean; a number in (0, 1] = that quantile of the samples (an upper percentile sizes bursty
   * traffic for its peaks rather than its mean).
   */
  readonly stableQuantile: number | undefined;
  readonly trend: TrendPolicy;
  readonly headroom: HeadroomPolicy;
  readonly burst: BurstPolicy;
  readonly scaleUp: StepPolicy;
  readonly scaleDown: StepPolicy;
  readonly dataQuality: DataQualityPolicy;
  /** Per-sample checks: out of range, outliers, collection gaps (src/domain/scaling/quality.ts). */
  readonly loadQuality: LoadQualityPolicy;
  /** Model cap on sizing and the learned ceiling (src/domain/scaling/ceiling.ts). */
  readonly ceiling: CeilingPolicy;
  /** Scale-down after sustained measured over-provisioning (src/domain/scaling/settle.ts). */
  readonly settle: SettlePolicy;
  /** Counts measured within the plan at a load (src/domain/scaling/proven.ts): the latency feedback does not add above them. */
  readonly proven: ProvenPolicy;
  /** An isolated crowd's recommendations stop holding the scale-down window one lead time on (src/domain/scaling/crowd.ts). */
  readonly crowd: CrowdReleasePolicy;
  /** The windows that guard against releasing capacity shrink with a learned lead shorter than the reference (src/domain/scaling/lead-scale.ts). */
  readonly leadScaling: LeadScalingPolicy;
  readonly schedules: readonly PrewarmSchedule[];
  readonly forecast: ForecastPolicy;
  readonly leadTime: LeadTimeOptions;
}

export interface CapacityPolicyInput {
  readonly slo: SloTarget;
  readonly minGpus: number;
  readonly maxGpus: number;
  readonly gpuStep?: number;
  readonly budgetUsdPerHour?: number;
  readonly safetyMargin?: number;
  readonly hysteresis?: number;
  readonly latencyModel?: Partial<LatencyModelParams>;
  readonly calibration?: Partial<CalibrationOptions>;
  readonly calibrationSettleMs?: number;
  readonly stableWindowMs?: number;
  readonly feedbackWarmupMs?: number;
  readonly shortWindowMs?: number;
  /** A number in (0, 1], or null for the time-weighted mean. */
  readonly stableQuantile?: number | null;
  readonly trend?: Partial<TrendPolicy>;
  readonly headroom?: Partial<HeadroomPolicy>;
  readonly burst?: Partial<BurstPolicy>;
  readonly scaleUp?: Partial<StepPolicy>;
  readonly scaleDown?: Partial<StepPolicy>;
  readonly dataQuality?: Partial<DataQualityPolicy>;
  readonly loadQuality?: Partial<LoadQualityPolicy>;
  readonly ceiling?: Partial<CeilingPolicy>;
  readonly settle?: Partial<SettlePolicy>;
  readonly proven?: Partial<ProvenPolicy>;
  readonly crowd?: Partial<CrowdReleasePolicy>;
  readonly leadScaling?: Partial<LeadScalingPolicy>;
  readonly schedules?: readonly PrewarmSchedule[];
  readonly forecast?: Partial<Omit<ForecastPolicy, "options">> & { readonly options?: Partial<ForecastOptions> };
  readonly leadTime?: Partial<LeadTimeOptions>;
}

export const DEFAULT_SCALE_UP: StepPolicy = {
  stabilizationWindowMs: 0,
  maxStepGpus: 8,
  maxStepPercent: 100,
  periodMs: 0,
};

export const DEFAULT_SCALE_DOWN: StepPolicy = {
  stabilizationWindowMs: 10 * 60_000,
  maxStepGpus: 1,
  maxStepPercent: 20,
  periodMs: 2 * 60_000,
};

export const DEFAULT_TREND_POLICY: TrendPolicy = {
  enabled: true,
  windowMs: 6 * 60_000,
  maxGrowth: 1.5,
  minSamples: 4,
  z: 3,
  extrapolateZ: 1,
  fallingScaleDownWindowMs: 3 * 60_000,
};

export const DEFAULT_HEADROOM_POLICY: HeadroomPolicy = {
  enabled: true,
  quantile: 0.9,
  windowMs: 3 * 3_600_000,
  minSamples: 20,
  max: 1.5,
  startFactor: 1.25,
  maxScoreLagMs: 2 * 60_000,
};

export const DEFAULT_DATA_QUALITY: DataQualityPolicy = {
  maxMetricsAgeMs: 2 * 60_000,
  minConfidence: 0.5,
};

/** A complete policy from the required fields plus any overrides. */
export function makeCapacityPolicy(input: CapacityPolicyInput): CapacityPolicy {
  return {
    slo: input.slo,
    safetyMargin: input.safetyMargin ?? 0.1,
    hysteresis: input.hysteresis ?? 0.15,
    minGpus: input.minGpus,
    maxGpus: input.maxGpus,
    gpuStep: input.gpuStep ?? 1,
    budgetUsdPerHour: input.budgetUsdPerHour,
    latencyModel: { ...defaultLatencyModelParams(input.slo.metric), ...input.latencyModel },
    calibration: { ...DEFAULT_CALIBRATION_OPTIONS, ...input.calibration },
    calibrationSettleMs: input.calibrationSettleMs ?? 2 * 60_000,
    stableWindowMs: input.stableWindowMs ?? 3 * 60_000,
    feedbackWarmupMs: input.feedbackWarmupMs ?? 0,
    shortWindowMs: input.shortWindowMs ?? 30_000,
    stableQuantile: input.stableQuantile === null ? undefined : (input.stableQuantile ?? undefined),
    trend: { ...DEFAULT_TREND_POLICY, ...input.trend },
    headroom: { ...DEFAULT_HEADROOM_POLICY, ...input.headroom },
    burst: { ...DEFAULT_BURST_POLICY, ...input.burst },
    scaleUp: { ...DEFAULT_SCALE_UP, ...input.scaleUp },
    scaleDown: { ...DEFAULT_SCALE_DOWN, ...input.scaleDown },
    dataQuality: { ...DEFAULT_DATA_QUALITY, ...input.dataQuality },
    loadQuality: { ...DEFAULT_LOAD_QUALITY, ...input.loadQuality },
    ceiling: { ...DEFAULT_CEILING_POLICY, ...input.ceiling },
    settle: { ...DEFAULT_SETTLE_POLICY, ...input.settle },
    proven: { ...DEFAULT_PROVEN_POLICY, ...input.proven },
    crowd: { ...DEFAULT_CROWD_RELEASE_POLICY, ...input.crowd },
    leadScaling: { ...DEFAULT_LEAD_SCALING_POLICY, ...input.leadScaling },
    schedules: input.schedules ?? [],
    forecast: {
      enabled: input.forecast?.enabled ?? true,
      z: input.forecast?.z ?? 1.28,
      mode: input.forecast?.mode ?? "anchored",
      recurrenceDays: input.forecast?.recurrenceDays ?? 2,
      observedLevelMargin: input.forecast?.observedLevelMargin ?? 1.2,
      options: { ...DEFAULT_FORECAST_OPTIONS, ...input.forecast?.options },
    },
    leadTime: { ...DEFAULT_LEAD_TIME_OPTIONS, ...input.leadTime },
  };
}
