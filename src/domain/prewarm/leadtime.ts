// Cold-start lead time learned from observed pod start-to-Ready durations: a high quantile of
// the recent durations plus a margin for the decision interval and scheduling.
import { quantile } from "../quantile.ts";

export interface LeadTimeOptions {
  /** Assumed start-to-Ready before enough observations (public reports: 2-8+ minutes). */
  readonly defaultColdStartMs: number;
  /** Quantile of recent durations used as the cold start (0..1). */
  readonly quantile: number;
  /** Added on top: decision interval, scheduling, readiness probe period. */
  readonly marginMs: number;
  /** Observations kept (most recent). */
  readonly maxSamples: number;
  /** Below this many observations the default still bounds the estimate from below. */
  readonly minSamples: number;
}

export const DEFAULT_LEAD_TIME_OPTIONS: LeadTimeOptions = {
  defaultColdStartMs: 5 * 60_000,
  quantile: 0.9,
  marginMs: 60_000,
  maxSamples: 50,
  minSamples: 3,
};

export interface LeadTimeState {
  readonly version: 1;
  /** Recent start-to-Ready durations, oldest first. */
  readonly samplesMs: readonly number[];
}

export function createLeadTimeState(): LeadTimeState {
  return { version: 1, samplesMs: [] };
}

/** Fold observed start-to-Ready durations in (non-finite or negative ones are ignored). */
export function observeColdStarts(
  state: LeadTimeState,
  durationsMs: readonly number[],
  options: LeadTimeOptions = DEFAULT_LEAD_TIME_OPTIONS,
): LeadTimeState {
  const valid = durationsMs.filter((d) => Number.isFinite(d) && d >= 0);
  if (valid.length === 0) return state;
  const samplesMs = [...state.samplesMs, ...valid].slice(-Math.max(1, options.maxSamples));
  return { version: 1, samplesMs };
}

export interface LeadTimeEstimate {
  /** Time to order capacity ahead of need: cold start estimate + margin. */
  readonly leadTimeMs: number;
  readonly coldStartMs: number;
  readonly source: "default" | "learned";
  readonly sampleCount: number;
}

export function estimateLeadTime(
  state: LeadTimeState,
  options: LeadTimeOptions = DEFAULT_LEAD_TIME_OPTIONS,
): LeadTimeEstimate {
  const n = state.samplesMs.length;
  if (n === 0) {
    return {
      leadTimeMs: options.defaultColdStartMs + options.marginMs,
      coldStartMs: options.defaultColdStartMs,
      source: "default",
      sampleCount: 0,
    };
  }
  const q = quantile(state.samplesMs, options.quantile);
  // With few samples, never go below the default (one fast start proves little) nor the worst seen.
  const coldStartMs = n < options.minSamples ? Math.max(options.defaultColdStartMs, ...state.samplesMs) : q;
  return {
    leadTimeMs: coldStartMs + options.marginMs,
    coldStartMs,
    source: n < options.minSamples ? "default" : "learned",
    sampleCount: n,
  };
}
