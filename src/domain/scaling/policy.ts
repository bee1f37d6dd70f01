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

export interface DataQualityPolicy {
  /** Metrics older than this are stale: hold. */
  readonly maxMetricsAgeMs: number;
  /** Metrics with confidence below this (0..1) are not acted on: hold. */
  readonly minConfidence: number;
}

export interface ForecastPolicy {
  readonly enabled: boolean;
  /** Band width in standard deviations; capacity is sized for the upper band. */
  readonly z: number;
  readonly options: ForecastOptions;
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
  /** Load used for burst detection and burst sizing. */
  readonly shortWindowMs: number;
  readonly burst: BurstPolicy;
  readonly scaleUp: StepPolicy;
  readonly scaleDown: StepPolicy;
  readonly dataQuality: DataQualityPolicy;
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
  readonly shortWindowMs?: number;
  readonly burst?: Partial<BurstPolicy>;
  readonly scaleUp?: Partial<StepPolicy>;
  readonly scaleDown?: Partial<StepPolicy>;
  readonly dataQuality?: Partial<DataQualityPolicy>;
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
    shortWindowMs: input.shortWindowMs ?? 30_000,
    burst: { ...DEFAULT_BURST_POLICY, ...input.burst },
    scaleUp: { ...DEFAULT_SCALE_UP, ...input.scaleUp },
    scaleDown: { ...DEFAULT_SCALE_DOWN, ...input.scaleDown },
    dataQuality: { ...DEFAULT_DATA_QUALITY, ...input.dataQuality },
    schedules: input.schedules ?? [],
    forecast: {
      enabled: input.forecast?.enabled ?? true,
      z: input.forecast?.z ?? 1.28,
      options: { ...DEFAULT_FORECAST_OPTIONS, ...input.forecast?.options },
    },
    leadTime: { ...DEFAULT_LEAD_TIME_OPTIONS, ...input.leadTime },
  };
}
