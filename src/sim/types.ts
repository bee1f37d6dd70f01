// Shared types of the fleet simulator (moe-sim). See docs/adr/0004-simulator.md.

import type { LatencyMetric } from "../domain/latency/model.ts";
import type { LoadTier, TierColdStart } from "../domain/prewarm/tiers.ts";

/**
 * What a scaling policy sees at a decision tick: only signals the operator (or an HPA, KPA, KEDA)
 * would see in a cluster. Load and latency come from scrapes that are `scrapeDelayS` old and carry
 * multiplicative noise; nothing here is ground truth of the current second.
 */
export interface Observation {
  /** Decision time (epoch ms). */
  readonly nowMs: number;
  /** End of the metrics window (epoch ms); nowMs minus the scrape delay, aligned to the scrape interval. */
  readonly metricsAtMs: number;
  /** Length of the window the rates below are averaged over (the policy's own window). */
  readonly windowMs: number;
  /** Offered tokens/s of the SLO's phase (output tokens for per-token latency / ITL, input for TTFT). */
  readonly tokensPerSecond: number;
  readonly requestsPerSecond: number;
  /** p99 and p90 of the SLO metric over the last complete minute before metricsAtMs; undefined without traffic. */
  readonly observedP99Ms: number | undefined;
  readonly observedP90Ms: number | undefined;
  /** GPUs asked for and not released (ready + warming). */
  readonly provisionedGpus: number;
  readonly readyGpus: number;
  readonly warmingGpus: number;
  /** Balancedness (mean GPU load / max GPU load) of the current placement, as measured from expert counters. */
  readonly balancedness: number;
  /** Share of routed expert traffic that crosses nodes in the current placement. */
  readonly crossNodeShare: number;
  /** Redundant expert replicas per GPU in the current placement. */
  readonly redundantExpertsPerGpu: number;
  /** Start-to-Ready durations of GPUs that became Ready since this policy's previous tick. */
  readonly coldStartDurationsMs: readonly number[];
  readonly usdPerGpuHour: number;
  /** The same durations tagged with the tier each GPU loaded from (SimConfig.loadTiers only). */
  readonly coldStartsByTier?: readonly TierColdStart[];
  /** The tier the next new GPU would load from (SimConfig.loadTiers only). */
  readonly nextLoadTier?: LoadTier;
}

export interface PolicyStep {
  readonly desiredGpus: number;
  /** Short CamelCase reason, e.g. "SLOFeedback", "Panic", "ScheduledStep". */
  readonly reason: string;
  /** GPUs to keep weights staged for (forecast, schedules); the fleet stages max(this, desired) when staging is on. */
  readonly stageGpus?: number;
}

/**
 * The seam between the simulator and a scaling policy: the operator's own decision ("ours") and
 * every baseline implement it. A policy keeps its own state between ticks; it is created fresh per run.
 */
export interface ScalingPolicy {
  readonly name: string;
  /** Seconds between ticks (the cadence the real controller runs at). */
  readonly intervalS: number;
  /** Seconds the load rates in the observation are averaged over. */
  readonly observationWindowS: number;
  step(observation: Observation, nowMs: number): PolicyStep;
}

export type PolicyName = "ours" | "static" | "schedule" | "hpa" | "kpa" | "slo-keda" | "oracle";
export const POLICY_NAMES: readonly PolicyName[] = ["ours", "static", "schedule", "hpa", "kpa", "slo-keda", "oracle"];

/** Per-second load of a replay, ready for the fleet model. */
export interface LoadSeries {
  /** Length in seconds. */
  readonly seconds: number;
  /** Epoch ms of second 0 (for time-of-day features of the policies). */
  readonly startEpochMs: number;
  /** Requests arriving in each second. */
  readonly requests: Float64Array;
  /** Input (prompt) tokens arriving in each second. */
  readonly inputTokens: Float64Array;
  /** Output tokens of the requests arriving in each second (decode work, before spreading). */
  readonly outputTokens: Float64Array;
}

/** Work the SLO's phase must do, per second, in tokens, and how waiting shows up in the metric. */
export interface WorkSeries {
  readonly metric: LatencyMetric;
  readonly seconds: number;
  /** Tokens of work arriving in each second (decode tokens are spread over their generation span). */
  readonly tokens: Float64Array;
  /** Prefix sums of tokens (length seconds + 1) for O(1) window means. */
  readonly tokensPrefix: Float64Array;
  readonly requestsPrefix: Float64Array;
  /** Mean output tokens per request (per-token latency amortises the queue wait over them). */
  readonly meanOutputTokens: number;
}
