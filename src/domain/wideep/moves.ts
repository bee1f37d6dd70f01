// In-place placement for running EP groups (spec.placement.moves.mode InPlace under topology
// WideEP; docs/adr/0021-wide-ep-groups.md "Running groups move in place"). A group is one engine
// instance over nodesPerGroup x gpusPerNode GPUs, and its engine rearranges experts across its own
// ranks (SGLang's expert-location update runs over all ranks of the instance at once), so the
// protocol is per group, on its leader pod: the operator writes the placement version the group
// should serve; the group answers with the version it serves. Every published placement covers
// every routed expert in every group (the CEL rule on a group's slots), so a group that refuses or
// misses the deadline keeps serving a complete placement: it is reported, not replaced, and takes a
// later version in place or the current one when it restarts (the ConfigMap at start). Pure.

export interface GroupLeader {
  readonly group: number;
  /** The leader pod's name (worker 0 of the group). */
  readonly pod: string;
  /** Every pod of the group is Ready and the group is not draining: it serves and can move. */
  readonly serving: boolean;
  /** The version written on the leader (moe.dev/placement-version); undefined before the first. */
  readonly targetVersion?: number;
  /** When that target was written (moe.dev/target-since). */
  readonly targetSinceMs?: number;
  /** The version the group acknowledged serving (moe.dev/placement-applied). */
  readonly servedVersion?: number;
  /** When that condition last changed (its lastTransitionTime), if known. */
  readonly appliedAtMs?: number;
  /** The version the group refused, and why. */
  readonly refusedVersion?: number;
  readonly refusal?: string;
}

export interface GroupMovesInput {
  readonly leaders: readonly GroupLeader[];
  /** The published placement's version (the ConfigMap); undefined before the first. */
  readonly publishedVersion?: number;
  readonly ackTimeoutMs: number;
  readonly nowMs: number;
}

export interface StalledGroup {
  readonly group: number;
  readonly pod: string;
  readonly version: number;
  readonly reason: "Refused" | "Timeout";
  readonly message: string;
}

export interface GroupMovesPlan {
  /** Leader pods to target at the published version now. */
  readonly write: readonly { readonly pod: string; readonly group: number; readonly version: number }[];
  /** Serving groups that acknowledged the published version. */
  readonly applied: readonly number[];
  /** Serving groups with a target outstanding and within the deadline (those written now included). */
  readonly moving: readonly number[];
  /** Serving groups whose outstanding target was refused or is past the deadline. */
  readonly stalled: readonly StalledGroup[];
  /** A move is outstanding or written now: the next heat rebalance waits for it (as for a rollout). */
  readonly inFlight: boolean;
}

/**
 * When the groups' serving last changed by a move: a serving leader's outstanding target (neither
 * acknowledged nor refused) counts as now until its acknowledgement deadline (then as the deadline:
 * a group that never answers must not hold the feedback off for good), else the latest
 * acknowledgement. The engine stalls its decode while it moves experts, so the SLO feedback waits
 * for this as for a Ready transition. Undefined: no move seen.
 */
export function groupsMovedSince(
  leaders: readonly GroupLeader[],
  nowMs: number,
  ackTimeoutMs: number,
): number | undefined {
  let latest: number | undefined;
  for (const l of leaders) {
    if (!l.serving || l.targetVersion === undefined) continue;
    const t =
      (l.servedVersion ?? 0) < l.targetVersion && l.refusedVersion !== l.targetVersion
        ? Math.min(nowMs, (l.targetSinceMs ?? nowMs) + ackTimeoutMs)
        : l.appliedAtMs;
    if (t !== undefined && Number.isFinite(t)) latest = Math.max(latest ?? t, t);
  }
  return latest;
}

const EMPTY: GroupMovesPlan = { write: [], applied: [], moving: [], stalled: [], inFlight: false };

/**
 * One outstanding target per group: a group is written the published version when it serves
 * another one and has no target outstanding (or its outstanding one stalled and an newer version
 * is published). A group that is starting or draining is left alone: a starting engine reads the
 * ConfigMap at start, and a draining one is about to go.
 */
export function planGroupMoves(x: GroupMovesInput): GroupMovesPlan {
  const v = x.publishedVersion;
  if (v === undefined) return EMPTY;
  const write: { pod: string; group: number; version: number }[] = [];
  const applied: number[] = [];
  const moving: number[] = [];
  const stalled: StalledGroup[] = [];
  for (const l of [...x.leaders].sort((a, b) => a.group - b.group)) {
    if (!l.serving) continue;
    if (l.servedVersion === v) {
      applied.push(l.group);
      continue;
    }
    const t = l.targetVersion;
    // A target counts only when the operator stamped it (target-since) and it is not above the
    // published version (a version above it comes from before a reset, or from a hand edit):
    // anything else is rewritten at the published version, which stamps it.
    const valid = t !== undefined && t <= v && l.targetSinceMs !== undefined;
    const outstanding = valid && l.servedVersion !== t;
    const stall = outstanding ? stallOf(l, t!, x) : undefined;
    if (stall) stalled.push(stall);
    if (outstanding && !stall) {
      moving.push(l.group);
      continue;
    }
    if (valid && t === v) continue; // the published version itself stalled: it stays reported until a newer one
    write.push({ pod: l.pod, group: l.group, version: v });
    moving.push(l.group);
  }
  return { write, applied, moving, stalled, inFlight: moving.length > 0 };
}

function stallOf(l: GroupLeader, t: number, x: GroupMovesInput): StalledGroup | undefined {
  const served =
    l.servedVersion === undefined
      ? "the placement it started with and has not reported its version (is an agent answering moe.dev/placement-applied on the leader?)"
      : `placement version ${l.servedVersion}`;
  if (l.refusedVersion === t)
    return {
      group: l.group,
      pod: l.pod,
      version: t,
      reason: "Refused",
      message: `EP group ${l.group} (${l.pod}) refused placement version ${t}${l.refusal ? `: ${l.refusal}` : ""}; it serves ${served}`,
    };
  if (l.targetSinceMs !== undefined && x.nowMs - l.targetSinceMs >= x.ackTimeoutMs)
    return {
      group: l.group,
      pod: l.pod,
      version: t,
      reason: "Timeout",
      message: `EP group ${l.group} (${l.pod}) did not acknowledge placement version ${t} within ${Math.round(x.ackTimeoutMs / 1000)} s; it serves ${served}`,
    };
  return undefined;
}
