// What a pull request proposes: bound and budget changes with their evidence,
// decided from a BoundTrack. Pure: time comes in as nowMs.
import type { BoundTrack, Bounds } from "./track.ts";
import type { ScheduleChange } from "./schedules.ts";
import type { PlacementCandidate, PlacementComparison } from "./placement-file.ts";

export interface ProposalSettings {
  readonly minChangePercent: number;
  readonly learningWindowMs: number;
  readonly raiseAfterMs: number;
  readonly lowerAfterMs: number;
}

export type BoundField = "minShards" | "maxShards" | "maxUsdPerHour";

/** Where each field lives in the MoEDeployment manifest. */
export const FIELD_PATH: Readonly<Record<BoundField, readonly string[]>> = {
  minShards: ["spec", "scaling", "minShards"],
  maxShards: ["spec", "scaling", "maxShards"],
  maxUsdPerHour: ["spec", "cost", "maxUsdPerHour"],
};

export interface ProposedChange {
  readonly field: BoundField;
  readonly from: number;
  readonly to: number;
  /** Why, in words, with the numbers. */
  readonly why: string;
}

export interface Evidence {
  readonly atMs: number;
  readonly observedP99Ms?: number;
  readonly targetMs: number;
  readonly gpus: number;
  readonly usdPerHour: number;
  /** How long SLOMet has been False at the bound (raises), or the bound was not approached (lowers). */
  readonly timeAtBoundMs?: number;
  readonly decisionReason: string;
  readonly decisionMessage: string;
}

/** The placement file proposed, with how it compares with the reference it was weighed against. */
export interface PlacementFileProposal {
  readonly path: string;
  readonly candidate: PlacementCandidate;
  readonly comparison: PlacementComparison;
}

export interface Proposal {
  /** Bound and budget changes (may be empty when only schedules or the placement file are proposed). */
  readonly changes: readonly ProposedChange[];
  readonly evidence: Evidence;
  /** spec.prewarm.schedules entries learned from recurring peaks. */
  readonly schedules?: readonly ScheduleChange[];
  readonly placement?: PlacementFileProposal;
  /** The bounds part as proposeBounds returned it (its identity tells combineProposal nothing changed). */
  readonly boundsPart?: Proposal;
}

/** Bound raise after SLOMet=False at maxShards for raiseAfterMs; lowers after lowerAfterMs without approaching the bound. */
export const MAX_HEADROOM = 1.25;

function currentValue(bounds: Bounds, field: BoundField): number | undefined {
  return field === "maxUsdPerHour" ? bounds.maxUsdPerHour : bounds[field];
}

/** A pending change still stands while the cluster's bound is not yet where it proposes (not merged and applied). */
function stillPending(bounds: Bounds, c: ProposedChange): boolean {
  const now = currentValue(bounds, c.field);
  if (now === undefined) return false;
  return c.to > c.from ? now < c.to : now > c.to;
}

function bigEnough(field: BoundField, reference: number, to: number, minChangePercent: number): boolean {
  const delta = Math.abs(to - reference);
  const floor = field === "maxUsdPerHour" ? 0.01 : 1;
  return delta >= floor && delta >= (Math.abs(reference) * minChangePercent) / 100;
}

const minutes = (ms: number) => (ms < 120_000 ? `${Math.round(ms / 1000)} s` : `${Math.round(ms / 60_000)} min`);

function candidates(
  bounds: Bounds,
  t: BoundTrack,
  s: ProposalSettings,
  nowMs: number,
): { change: ProposedChange; timeAtBoundMs: number }[] {
  const out: { change: ProposedChange; timeAtBoundMs: number }[] = [];
  if (
    t.atMaxSinceMs !== undefined &&
    nowMs - t.atMaxSinceMs >= s.raiseAfterMs &&
    t.atMaxRequiredShards > bounds.maxShards
  ) {
    const at = nowMs - t.atMaxSinceMs;
    out.push({
      timeAtBoundMs: at,
      change: {
        field: "maxShards",
        from: bounds.maxShards,
        to: t.atMaxRequiredShards,
        why: `SLOMet was False at maxShards=${bounds.maxShards} for ${minutes(at)}; the SLO needed up to ${t.atMaxRequiredShards} shards`,
      },
    });
  }
  if (
    bounds.maxUsdPerHour !== undefined &&
    t.atBudgetSinceMs !== undefined &&
    nowMs - t.atBudgetSinceMs >= s.raiseAfterMs &&
    t.budgetRequiredUsdPerHour > bounds.maxUsdPerHour
  ) {
    const at = nowMs - t.atBudgetSinceMs;
    const to = Math.ceil(t.budgetRequiredUsdPerHour * 100) / 100;
    out.push({
      timeAtBoundMs: at,
      change: {
        field: "maxUsdPerHour",
        from: bounds.maxUsdPerHour,
        to,
        why: `SLOMet was False at the budget of ${bounds.maxUsdPerHour} USD/h for ${minutes(at)}; the shards the SLO needed cost about ${to} USD/h`,
      },
    });
  }
  const quietMs = nowMs - t.lowWindowStartMs;
  if (quietMs >= s.lowerAfterMs && t.peakDesiredShards > 0) {
    const to = Math.max(bounds.minShards, Math.ceil(t.peakDesiredShards * MAX_HEADROOM));
    if (to < bounds.maxShards)
      out.push({
        timeAtBoundMs: quietMs,
        change: {
          field: "maxShards",
          from: bounds.maxShards,
          to,
          why: `maxShards=${bounds.maxShards} was not approached for ${minutes(quietMs)}: at most ${t.peakDesiredShards} shards were wanted (proposed: ${Math.round((MAX_HEADROOM - 1) * 100)}% above that)`,
        },
      });
    const minTo = Math.max(bounds.coverageShards, t.peakSloShards);
    if (t.peakSloShards > 0 && minTo < bounds.minShards)
      out.push({
        timeAtBoundMs: quietMs,
        change: {
          field: "minShards",
          from: bounds.minShards,
          to: minTo,
          why: `for ${minutes(quietMs)} the SLO needed at most ${t.peakSloShards} shards, below minShards=${bounds.minShards} (every expert keeps a slot with ${bounds.coverageShards})`,
        },
      });
  }
  return out;
}

/** The kept changes with the candidates that move a field far enough merged in (after the learning window). */
function mergeCandidates(
  bounds: Bounds,
  track: BoundTrack,
  s: ProposalSettings,
  nowMs: number,
  kept: ProposedChange[],
): { changes: ProposedChange[]; timeAtBoundMs: number | undefined } {
  let changes = [...kept];
  let timeAtBoundMs: number | undefined;
  if (nowMs - track.trackingSinceMs >= s.learningWindowMs) {
    for (const { change, timeAtBoundMs: at } of candidates(bounds, track, s, nowMs)) {
      const prior = changes.find((c) => c.field === change.field);
      const reference = prior?.to ?? change.from;
      if (!bigEnough(change.field, change.from, change.to, s.minChangePercent)) continue;
      if (prior && !bigEnough(change.field, reference, change.to, s.minChangePercent)) continue;
      changes = [...changes.filter((c) => c.field !== change.field), change];
      timeAtBoundMs = Math.max(timeAtBoundMs ?? 0, at);
    }
  }
  return { changes, timeAtBoundMs };
}

/**
 * The proposal to hold in the pull request now. Pending changes that the cluster has not
 * taken yet are kept; a new candidate replaces a pending change of the same field only
 * when it moves it by at least minChangePercent. Returns `pending` itself when nothing
 * changed (the caller then writes nothing), undefined when there is nothing to propose.
 */
export function proposeBounds(
  bounds: Bounds,
  track: BoundTrack,
  s: ProposalSettings,
  nowMs: number,
  pending: Proposal | undefined,
): Proposal | undefined {
  const kept = (pending?.changes ?? []).filter((c) => stillPending(bounds, c));
  const { changes, timeAtBoundMs } = mergeCandidates(bounds, track, s, nowMs, kept);
  if (changes.length === 0) return undefined;
  const same =
    pending !== undefined &&
    changes.length === pending.changes.length &&
    changes.every((c) => pending.changes.includes(c));
  if (same) return pending;
  return {
    changes: [...changes].sort((a, b) => a.field.localeCompare(b.field)),
    evidence: evidenceOf(track, nowMs, timeAtBoundMs),
  };
}

/** The evidence table's row from the last observation. */
export function evidenceOf(track: BoundTrack | undefined, nowMs: number, timeAtBoundMs?: number): Evidence {
  const o = track?.last;
  return {
    atMs: nowMs,
    observedP99Ms: o?.observedP99Ms,
    targetMs: o?.targetMs ?? 0,
    gpus: o?.gpus ?? 0,
    usdPerHour: o?.usdPerHour ?? 0,
    timeAtBoundMs,
    decisionReason: o?.reason ?? "Unknown",
    decisionMessage: o?.message ?? "",
  };
}

/**
 * The whole proposal: bounds (from proposeBounds), learned schedules and the placement file.
 * Returns `prev` itself when no part changed (the caller then writes nothing), undefined when
 * there is nothing to propose.
 */
export function combineProposal(
  prev: Proposal | undefined,
  parts: { bounds?: Proposal; schedules?: readonly ScheduleChange[]; placement?: PlacementFileProposal },
  track: BoundTrack | undefined,
  nowMs: number,
): Proposal | undefined {
  const schedules = parts.schedules && parts.schedules.length > 0 ? parts.schedules : undefined;
  if (!parts.bounds && !schedules && !parts.placement) return undefined;
  if (prev && prev.boundsPart === parts.bounds && prev.schedules === schedules && prev.placement === parts.placement)
    return prev;
  return {
    changes: parts.bounds?.changes ?? [],
    evidence: parts.bounds?.evidence ?? evidenceOf(track, nowMs),
    schedules,
    placement: parts.placement,
    boundsPart: parts.bounds,
  };
}

/**
 * After a restart: the values the pull request's branch already holds win over a candidate that
 * differs from them by less than the minimum change, so a restarted operator does not commit
 * again for a small drift of its evidence (the branch is the proposal it made before).
 */
export function adoptProposed(
  p: Proposal,
  inGit: Partial<Record<BoundField, number>>,
  minChangePercent: number,
): Proposal {
  let adopted = false;
  const changes = p.changes.map((c) => {
    const v = inGit[c.field];
    if (v === undefined || v === c.to || v === c.from) return c;
    if (Math.sign(v - c.from) !== Math.sign(c.to - c.from)) return c;
    if (bigEnough(c.field, v, c.to, minChangePercent)) return c;
    adopted = true;
    return { ...c, to: v };
  });
  return adopted ? { ...p, changes, boundsPart: p.boundsPart && { ...p.boundsPart, changes } } : p;
}
