// Capacity signals (docs/adr/0011-decide-pipeline.md). Each signal evaluates one tick into a GPU
// floor, a typed reason and a message, and may own a slice of the capacity state it learns into.
// Two kinds, in one ordered registry:
// - "recommend" signals (burst, forecast) compete with the SLO recommendation before
//   stabilisation, on usable load only: the first whose floor sets the count (above the
//   provisioned count, and above the SLO recommendation unless it wins ties) names the reason;
// - "floor" signals (the pre-warm schedule) need no load and apply after stabilisation, also while
//   holding on bad data, next to minGpus: the first with the highest floor names the reason.
//
// A new signal is one file exporting a CapacitySignal plus one entry in the list passed to
// decideCapacity / decideShardCount (DEFAULT_CAPACITY_SIGNALS for the operator and the simulator).

import type { BurstDetection } from "../prewarm/burst.ts";
import {
  corroboratedForecastLoad,
  corroboratedRise,
  oneDayRiseTracked,
  SHAPE_TRACK_WINDOW_MS,
} from "../prewarm/corroborate.ts";
import type { CorroboratedRise } from "../prewarm/corroborate.ts";
import { learnedDays, observeLoadSample, peakUpperForecast } from "../prewarm/forecast.ts";
import { scheduleFloorAt } from "../prewarm/schedule.ts";
import type { CapacityConflict, CapacityInput, CapacitySignals, CapacityState } from "./decide.ts";
import type { CapacityPolicy } from "./policy.ts";

/** What a signal sees of one tick: usable load (the data-quality holds already passed) and the SLO stage's result. */
export interface SignalContext {
  readonly input: CapacityInput;
  readonly state: CapacityState;
  readonly policy: CapacityPolicy;
  readonly nowMs: number;
  /** When the load sample was measured. */
  readonly metricsAtMs: number;
  readonly isNewSample: boolean;
  /** The per-sample screening let the forecaster learn this sample. */
  readonly learnSample: boolean;
  /** The offered load of this sample (tokens/s). */
  readonly loadTokensPerSecond: number;
  /** Stable-window and short-window load (tokens/s). */
  readonly stableTokensPerSecond: number;
  readonly shortTokensPerSecond: number;
  readonly burst: BurstDetection;
  /** GPUs the short-window load needs during a burst (0 without one). */
  readonly burstGpus: number;
  readonly previousGpus: number;
  readonly leadTimeMs: number;
  /** Predicted-p99 target the counts are planned for (ms). */
  readonly targetMs: number;
  /**
   * The anticipation headroom the SLO count is sized with (an upper quantile of observed /
   * anticipated load one lead time later; the start factor before enough are scored).
   */
  readonly headroom: number;
  /** The learned ceiling (GPUs; Infinity while none). */
  readonly ceilingGpus: number;
  /** The SLO's recommendation this tick (band and settle applied, before stabilisation). */
  readonly sloRecommendationGpus: number;
  /** Fewest GPUs meeting targetMs at a load, or the best-effort count when none does. */
  readonly requiredOrBestEffort: (tokensPerSecond: number, targetMs: number) => number;
}

/** A signal's ask for one tick. */
export interface SignalAsk {
  /** GPUs this signal wants at least (0 = no ask). */
  readonly floorGpus: number;
  /** Why, when this signal sets the count. */
  readonly message: string;
  /** The signal's figures for CapacityDecision.signals. */
  readonly figures?: Partial<CapacitySignals>;
}

export interface CapacitySignal<R extends string = string> {
  readonly kind: "recommend";
  readonly id: string;
  /** The decision's reason when this signal sets the count. */
  readonly reason: R;
  /** The API (status / condition) reason for `reason`. */
  readonly apiReason: string;
  /** Named on a tie with the SLO recommendation (a burst explains the count better than the SLO). */
  readonly winsTies: boolean;
  evaluate(ctx: SignalContext): SignalAsk;
  /** The signal's slice of the next state's own fields, learned from this tick after the decision. */
  learn?(ctx: SignalContext): Partial<CapacityState>;
  /**
   * For a signal whose state has no field of its own in CapacityState: its next state from this tick
   * (`previous` = ctx.state.signalStates?.[id]), kept in CapacityState.signalStates under its id.
   */
  learnOwn?(ctx: SignalContext, previous: unknown): unknown;
}

/** What a floor signal sees: no load (floors apply also while holding on bad data). */
export interface FloorContext {
  readonly policy: CapacityPolicy;
  readonly state: CapacityState;
  readonly nowMs: number;
  readonly leadTimeMs: number;
  /** GPU granularity (policy.gpuStep, at least 1). */
  readonly step: number;
}

export interface FloorAsk {
  /** GPUs this signal wants at least (0 = no ask). */
  readonly floorGpus: number;
  /** Why, put before the decision's message when this floor binds. */
  readonly message: string;
  /** Problems found in the signal's configuration (reported, the signal goes on without them). */
  readonly conflicts?: readonly CapacityConflict[];
  readonly figures?: Partial<CapacitySignals>;
}

export interface FloorSignal<R extends string = string> {
  readonly kind: "floor";
  readonly id: string;
  readonly reason: R;
  readonly apiReason: string;
  evaluate(ctx: FloorContext): FloorAsk;
}

/** One entry of the registry. */
export type CapacitySignalEntry<R extends string = string> = CapacitySignal<R> | FloorSignal<R>;

/** The reason type of a registry. */
export type SignalReason<S extends readonly CapacitySignalEntry[]> = S[number]["reason"];

function fmt(n: number | undefined, digits = 0): string {
  if (n === undefined || !Number.isFinite(n)) return String(n);
  return n.toFixed(digits);
}

export function roundUpToStep(n: number, step: number): number {
  return Math.ceil(n / step - 1e-9) * step;
}

/** Scheduled pre-warm: the largest minGpus of the windows open (or opening within one lead time); invalid schedules are reported and skipped. */
export const scheduleSignal: FloorSignal<"ScheduledPrewarm"> = {
  kind: "floor",
  id: "schedule",
  reason: "ScheduledPrewarm",
  apiReason: "ScheduledWindow",
  evaluate({ policy, nowMs, leadTimeMs, step }) {
    const schedule = scheduleFloorAt(policy.schedules, nowMs, leadTimeMs);
    const conflicts = schedule.invalid.map((bad): CapacityConflict => ({
      type: "InvalidSchedule",
      message: `schedule ${bad.name}: ${bad.field}: ${bad.message}`,
    }));
    const floorGpus = Math.min(roundUpToStep(schedule.gpuCount, step), Number.MAX_SAFE_INTEGER);
    const message =
      schedule.schedule === undefined
        ? ""
        : schedule.prewarming
          ? `schedule ${schedule.schedule.name} opens in ${fmt(((schedule.schedule.opensAtMs ?? nowMs) - nowMs) / 60_000, 1)} min (lead time ${fmt(leadTimeMs / 60_000, 1)} min) and needs ${floorGpus} GPUs`
          : `schedule ${schedule.schedule.name} is open and needs ${floorGpus} GPUs`;
    return {
      floorGpus,
      message,
      conflicts,
      figures: { scheduleGpus: floorGpus, scheduleName: schedule.schedule?.name },
    };
  },
};

/** Burst: the short-window load far above the stable-window load asks for what it needs now. */
export const burstSignal: CapacitySignal<"Burst"> = {
  kind: "recommend",
  id: "burst",
  reason: "Burst",
  apiReason: "BurstDetected",
  winsTies: true,
  evaluate(ctx) {
    const p = ctx.policy;
    return {
      floorGpus: ctx.burstGpus,
      message: `burst: ${fmt(ctx.shortTokensPerSecond)} tok/s over ${fmt(p.shortWindowMs / 1000)} s is ${fmt(ctx.burst.ratio, 1)}x the ${fmt(p.stableWindowMs / 1000)} s load ${fmt(ctx.stableTokensPerSecond)} tok/s; needs ${ctx.burstGpus} GPUs`,
      figures: { burstGpus: ctx.burstGpus },
    };
  },
};

/** The anchored forecast never multiplies the observed load by more than this. */
const MAX_FORECAST_RATIO = 10;

interface ForecastAhead {
  readonly tokensPerSecond: number | undefined;
  readonly ratio: number | undefined;
  readonly days: number;
  /** A single day's rise: how closely that day's profile tracked today's (corroborate.ts). */
  readonly shapeError?: number;
}

/** The forecast's load one lead time ahead (absolute: upper band; anchored: corroborated recurring rise). */
function forecastAhead(ctx: SignalContext): ForecastAhead {
  const { policy, state, nowMs, leadTimeMs } = ctx;
  const none: ForecastAhead = { tokensPerSecond: undefined, ratio: undefined, days: 0 };
  if (!policy.forecast.enabled) return none;
  if (policy.forecast.mode === "absolute") {
    const f = peakUpperForecast(
      state.forecast,
      nowMs + leadTimeMs,
      nowMs + leadTimeMs + state.forecast.bucketMs,
      policy.forecast.z,
      policy.forecast.options,
    );
    return f !== undefined && f.seasonal ? { ...none, tokensPerSecond: f.upperTokensPerSecond } : none;
  }
  // A rise seen on one day is no recurrence: it needs `recurrenceDays` days with data (at least
  // 2; ServeGen's second day: one day's 101-140 % rises asked for 2.2-2.5x the realised
  // requirement), unless that one day's profile tracked today's (below).
  const days = Math.max(2, Math.floor(policy.forecast.recurrenceDays));
  // Base: the buckets the stable window measures; peak: from now until new capacity is Ready
  // (a bucket beyond, as the rise may come anywhere inside it). Only days with data count, and
  // the level predicted must have been observed on them (src/domain/prewarm/corroborate.ts).
  const spans = {
    baseFromMs: ctx.metricsAtMs - policy.stableWindowMs,
    baseToMs: nowMs,
    peakFromMs: nowMs,
    peakToMs: nowMs + leadTimeMs + state.forecast.bucketMs,
  };
  // With a single day of data at this time, that day counts only if its profile tracked today's
  // over the last hours (corroborate.ts: oneDayRiseTracked).
  const rise: (CorroboratedRise & { readonly shapeError?: number }) | undefined =
    learnedDays(state.forecast) < 1
      ? undefined
      : (corroboratedRise(state.forecast, spans, days, policy.forecast.options) ??
        oneDayRiseTracked(state.forecast, spans, nowMs, policy.forecast.options));
  if (rise === undefined) return none;
  const ratio = Math.min(MAX_FORECAST_RATIO, rise.ratio);
  const level = corroboratedForecastLoad(
    ctx.stableTokensPerSecond,
    { ...rise, ratio },
    policy.forecast.observedLevelMargin,
  );
  return {
    tokensPerSecond: level > ctx.stableTokensPerSecond ? level : undefined,
    ratio,
    days: rise.daysUsed,
    ...(rise.shapeError === undefined ? {} : { shapeError: rise.shapeError }),
  };
}

/**
 * Forecast pre-warm: the load expected one lead time ahead (anchored mode: times the SLO's
 * anticipation headroom; both anticipate the load one lead time ahead, and the anchored forecast is
 * a point estimate as the trend is), never above the learned ceiling; learns every sample with data.
 */
export const forecastSignal: CapacitySignal<"ForecastPrewarm"> = {
  kind: "recommend",
  id: "forecast",
  reason: "ForecastPrewarm",
  apiReason: "ForecastPeak",
  winsTies: false,
  evaluate(ctx) {
    const ahead = forecastAhead(ctx);
    // The absolute mode's upper band already is an interval; the anchored forecast is a point estimate.
    const headroom = ctx.policy.forecast.mode === "anchored" ? ctx.headroom : 1;
    const floorGpus =
      ahead.tokensPerSecond === undefined
        ? 0
        : Math.min(ctx.ceilingGpus, ctx.requiredOrBestEffort(ahead.tokensPerSecond * headroom, ctx.targetMs));
    const leadMin = fmt(ctx.leadTimeMs / 60_000, 1);
    const message =
      ctx.policy.forecast.mode === "absolute"
        ? `forecast upper band ${fmt(ahead.tokensPerSecond)} tok/s one lead time (${leadMin} min) ahead needs ${floorGpus} GPUs`
        : `a rise of ${fmt(((ahead.ratio ?? 1) - 1) * 100)} % ${
            ahead.shapeError === undefined
              ? `recurred at this time on each of the last ${ahead.days} day(s) with data`
              : `came at this time on the last day with data, whose profile matched today's within ${fmt(ahead.shapeError * 100, 1)} % over the last ${fmt(SHAPE_TRACK_WINDOW_MS / 3_600_000)} h`
          }; ${fmt(ahead.tokensPerSecond)} tok/s within one lead time (${leadMin} min) with headroom ${fmt(headroom, 2)} needs ${floorGpus} GPUs (learned ceiling ${fmt(ctx.ceilingGpus)})`;
    return {
      floorGpus,
      message,
      figures: { forecastGpus: floorGpus, forecastTokensPerSecond: ahead.tokensPerSecond, forecastRatio: ahead.ratio },
    };
  },
  // The forecaster learns only samples with data (a held-over collection gap counts as load for the
  // decision but never as a daily profile).
  learn(ctx) {
    if (!(ctx.isNewSample && ctx.learnSample)) return {};
    return {
      forecast: observeLoadSample(
        ctx.state.forecast,
        ctx.metricsAtMs,
        ctx.loadTokensPerSecond,
        ctx.policy.forecast.options,
      ),
    };
  },
};

/** The operator's and the simulator's signals, in priority order (within each kind). */
export const DEFAULT_CAPACITY_SIGNALS = [scheduleSignal, burstSignal, forecastSignal] as const;
export type DefaultSignalReason = SignalReason<typeof DEFAULT_CAPACITY_SIGNALS>;

/** Every recommend signal's ask this tick, in registry order. */
export function evaluateSignals(
  signals: readonly CapacitySignalEntry[],
  ctx: SignalContext,
): { readonly signal: CapacitySignal; readonly ask: SignalAsk }[] {
  return signals
    .filter((s): s is CapacitySignal => s.kind === "recommend")
    .map((signal) => ({ signal, ask: signal.evaluate(ctx) }));
}

/** Every floor signal's ask this tick, in registry order. */
export function evaluateFloors(
  signals: readonly CapacitySignalEntry[],
  ctx: FloorContext,
): { readonly signal: FloorSignal; readonly ask: FloorAsk }[] {
  return signals
    .filter((s): s is FloorSignal => s.kind === "floor")
    .map((signal) => ({ signal, ask: signal.evaluate(ctx) }));
}

/** The signal that sets the count, if any: its floor is the count, above the provisioned count, and above the SLO's unless it wins ties. */
export function winningSignal(
  asks: readonly { readonly signal: CapacitySignal; readonly ask: SignalAsk }[],
  countGpus: number,
  ctx: SignalContext,
): { readonly signal: CapacitySignal; readonly ask: SignalAsk } | undefined {
  return asks.find(
    ({ signal, ask }) =>
      ask.floorGpus === countGpus &&
      ask.floorGpus > ctx.previousGpus &&
      (signal.winsTies || ask.floorGpus > ctx.sloRecommendationGpus),
  );
}
