// Evidence for GitOps proposals, accumulated over reconciles as a pure fold:
// how long SLOMet has been False at maxShards (or at the budget), and how close
// the deployment came to its bounds since the bounds last changed.

/** What one decision says about the bounds (built by the caller from a Decision). */
export interface BoundObservation {
  readonly nowMs: number;
  readonly desiredShards: number;
  /** Fewest shards meeting the SLO with margin, unconstrained by bounds and budget (undefined: unknown). */
  readonly sloShards?: number;
  /** Observed latency at the SLO percentile; undefined when no sample. */
  readonly observedP99Ms?: number;
  readonly targetMs: number;
  /** Shards the SLO needs when maxShards holds it back (the MaxGpusVsSlo conflict). */
  readonly maxBoundRequiredShards?: number;
  /** Budget the SLO needs when spec.cost.maxUsdPerHour holds it back (estimate, USD/h). */
  readonly budgetRequiredUsdPerHour?: number;
  /** The policy held capacity because metrics were missing or suspect: nothing is learned. */
  readonly metricsHeld: boolean;
  readonly gpus: number;
  readonly usdPerHour: number;
  /** Decision reason (CamelCase) and message, for the evidence. */
  readonly reason: string;
  readonly message: string;
}

/** The bounds as the cluster has them (Argo CD / Flux applied them from Git). */
export interface Bounds {
  readonly minShards: number;
  readonly maxShards: number;
  readonly maxUsdPerHour?: number;
  /** Fewest shards that give every routed expert a slot (ceil(routedExperts / expertSlotsPerGpu)). */
  readonly coverageShards: number;
}

export interface BoundTrack {
  /** Bounds the windows below refer to; a change of bounds restarts them. */
  readonly boundsKey: string;
  readonly trackingSinceMs: number;
  /** Start of the current unbroken run of SLOMet=False at maxShards. */
  readonly atMaxSinceMs?: number;
  readonly atMaxRequiredShards: number;
  /** Start of the current unbroken run of SLOMet=False held back by the budget. */
  readonly atBudgetSinceMs?: number;
  readonly budgetRequiredUsdPerHour: number;
  /** Start of the window in which maxShards was not approached. */
  readonly lowWindowStartMs: number;
  readonly peakDesiredShards: number;
  /** Most shards the SLO needed in the low window (0: unknown). */
  readonly peakSloShards: number;
  /** The last observation approached maxShards (the low window is not running). */
  readonly approached?: boolean;
  /** The last observation, for the evidence table. */
  readonly last?: BoundObservation;
}

/** maxShards counts as approached when the desired count reaches this fraction of it. */
export const APPROACH_FRACTION = 0.8;

export function boundsKey(b: Bounds): string {
  return `${b.minShards}/${b.maxShards}/${b.maxUsdPerHour ?? "-"}`;
}

export function startTrack(bounds: Bounds, nowMs: number): BoundTrack {
  return {
    boundsKey: boundsKey(bounds),
    trackingSinceMs: nowMs,
    atMaxRequiredShards: 0,
    budgetRequiredUsdPerHour: 0,
    lowWindowStartMs: nowMs,
    peakDesiredShards: 0,
    peakSloShards: 0,
  };
}

/** Folds one observation into the track. A change of bounds restarts the windows (tracking time is kept). */
export function observeBounds(prev: BoundTrack | undefined, bounds: Bounds, o: BoundObservation): BoundTrack {
  const base =
    prev === undefined
      ? startTrack(bounds, o.nowMs)
      : prev.boundsKey !== boundsKey(bounds)
        ? { ...startTrack(bounds, o.nowMs), trackingSinceMs: prev.trackingSinceMs }
        : prev;
  if (o.metricsHeld) return { ...base, last: o };
  const sloMissed = o.observedP99Ms !== undefined && o.observedP99Ms > o.targetMs;
  const atMax = sloMissed && o.maxBoundRequiredShards !== undefined;
  const atBudget = sloMissed && o.budgetRequiredUsdPerHour !== undefined;
  const approached = o.desiredShards >= Math.ceil(bounds.maxShards * APPROACH_FRACTION) || atMax;
  return {
    ...base,
    atMaxSinceMs: atMax ? (base.atMaxSinceMs ?? o.nowMs) : undefined,
    atMaxRequiredShards: atMax
      ? Math.max(base.atMaxSinceMs === undefined ? 0 : base.atMaxRequiredShards, o.maxBoundRequiredShards ?? 0)
      : 0,
    atBudgetSinceMs: atBudget ? (base.atBudgetSinceMs ?? o.nowMs) : undefined,
    budgetRequiredUsdPerHour: atBudget
      ? Math.max(
          base.atBudgetSinceMs === undefined ? 0 : base.budgetRequiredUsdPerHour,
          o.budgetRequiredUsdPerHour ?? 0,
        )
      : 0,
    lowWindowStartMs: approached ? o.nowMs : base.lowWindowStartMs,
    approached,
    peakDesiredShards: approached ? 0 : Math.max(base.peakDesiredShards, o.desiredShards),
    peakSloShards: approached ? 0 : Math.max(base.peakSloShards, o.sloShards ?? o.desiredShards),
    last: o,
  };
}

/**
 * The part of a BoundTrack kept across operator restarts (status.gitops). It changes only when a
 * window starts or ends or a peak grows, never at every observation: while maxShards is being
 * approached the low window's start is not recorded (it would move with every observation).
 */
export interface PersistedTrack {
  readonly boundsKey: string;
  readonly trackingSinceMs: number;
  readonly atMaxSinceMs?: number;
  readonly atMaxRequiredShards?: number;
  readonly atBudgetSinceMs?: number;
  readonly budgetRequiredUsdPerHour?: number;
  /** Start of the low window; undefined while maxShards is being approached. */
  readonly quietSinceMs?: number;
  readonly peakDesiredShards?: number;
  readonly peakSloShards?: number;
}

const positive = (v: number) => (v > 0 ? v : undefined);

export function persistTrack(t: BoundTrack): PersistedTrack {
  return {
    boundsKey: t.boundsKey,
    trackingSinceMs: t.trackingSinceMs,
    atMaxSinceMs: t.atMaxSinceMs,
    atMaxRequiredShards: t.atMaxSinceMs === undefined ? undefined : t.atMaxRequiredShards,
    atBudgetSinceMs: t.atBudgetSinceMs,
    budgetRequiredUsdPerHour: t.atBudgetSinceMs === undefined ? undefined : t.budgetRequiredUsdPerHour,
    quietSinceMs: t.approached ? undefined : t.lowWindowStartMs,
    peakDesiredShards: t.approached ? undefined : positive(t.peakDesiredShards),
    peakSloShards: t.approached ? undefined : positive(t.peakSloShards),
  };
}

/**
 * The track a restarted operator continues from. A low window that was not running (maxShards
 * was being approached) starts at nowMs, as if approached at the restart.
 */
export function restoreTrack(p: PersistedTrack, nowMs: number): BoundTrack {
  return {
    boundsKey: p.boundsKey,
    trackingSinceMs: Math.min(p.trackingSinceMs, nowMs),
    atMaxSinceMs: p.atMaxSinceMs,
    atMaxRequiredShards: p.atMaxSinceMs === undefined ? 0 : (p.atMaxRequiredShards ?? 0),
    atBudgetSinceMs: p.atBudgetSinceMs,
    budgetRequiredUsdPerHour: p.atBudgetSinceMs === undefined ? 0 : (p.budgetRequiredUsdPerHour ?? 0),
    lowWindowStartMs: p.quietSinceMs ?? nowMs,
    peakDesiredShards: p.quietSinceMs === undefined ? 0 : (p.peakDesiredShards ?? 0),
    peakSloShards: p.quietSinceMs === undefined ? 0 : (p.peakSloShards ?? 0),
    approached: p.quietSinceMs === undefined,
  };
}
