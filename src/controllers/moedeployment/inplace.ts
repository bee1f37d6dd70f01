// InPlace mode (spec.placement.moves.mode, ADR 0018): the shard pods' in-place moves are planned
// first (src/domain/inplace); the make-before-break rollout then sees each pod with what it is
// committed to serve, and replaces only the shards that refused or missed the deadline.
import type { MoEDeployment } from "../../api/schema.ts";
import { ConditionReason, ConditionType } from "../../api/constants.ts";
import {
  outstanding,
  planInPlace,
  sameSets,
  servedSet,
  type InPlacePlan,
  type StalledShard,
} from "../../domain/inplace/index.ts";
import type { ConditionInput } from "./conditions.ts";
import type { DesiredShard, ShardPodView } from "../../domain/rollout/index.ts";
import { fnv1a64, type Placement } from "../../domain/placement/index.ts";
import { expertSetHash, shardExperts } from "./children.ts";
import type { ShardPod } from "./codecs/shard-pod.ts";

export interface ShardMoves {
  /** The pods as the rollout sees them. */
  views: readonly ShardPodView[];
  /** The in-place plan (undefined in mode Replace). */
  inPlace?: InPlacePlan;
}

export function planShardMoves(
  d: MoEDeployment,
  desired: readonly DesiredShard[],
  pods: readonly ShardPod[],
  o: { layerCount: number; nowMs: number },
): ShardMoves {
  const moves = d.spec.placement.moves;
  if (moves.mode !== "InPlace") return { views: pods };
  const inPlace = planInPlace({
    pods,
    desired,
    layerCount: o.layerCount,
    expertCount: d.spec.model.routedExperts,
    nowMs: o.nowMs,
    ackTimeoutMs: moves.ackTimeoutSeconds * 1000,
    setHash: expertSetHash,
  });
  return { views: inPlace.views, inPlace };
}

/** InPlace: a new pod's name carries the set and the placement version (a failed pod may hold the set's name). */
export function inPlacePodNameHash(setHash: string, placementVersion: number): string {
  return fnv1a64(`${setHash}@v${placementVersion}`);
}

/** RebalanceStalled (InPlace only): True naming the shards that refused or missed the deadline. */
export function rebalanceStalledCondition(plan: InPlacePlan): ConditionInput {
  const type = ConditionType.RebalanceStalled;
  if (plan.stalled.length > 0)
    return {
      type,
      status: "True",
      reason: ConditionReason.ShardMoveFailed,
      message: `${plan.stalled.map((s) => s.message).join("; ")}; replaced make-before-break`,
    };
  return {
    type,
    status: "False",
    reason: ConditionReason.MovesAcknowledged,
    message:
      plan.moving > 0
        ? `${plan.moving} shard(s) moving experts in place, none past the deadline`
        : "every in-place move was acknowledged",
  };
}

/**
 * The stalls not counted before (by pod and generation); `seen` is pruned to the current ones and
 * extended. `reported`: the RebalanceStalled message in status while it is True; a stall it names
 * was announced already (by this process or one before a restart, whose `seen` is gone).
 */
export function newStalls(plan: InPlacePlan | undefined, seen: Set<string>, reported = ""): StalledShard[] {
  const current = new Set((plan?.stalled ?? []).map((s) => `${s.pod}/${s.generation}`));
  const fresh = (plan?.stalled ?? []).filter(
    (s) => !seen.has(`${s.pod}/${s.generation}`) && !reportedIn(reported, s.message),
  );
  for (const k of [...seen]) if (!current.has(k)) seen.delete(k);
  for (const k of current) seen.add(k);
  return fresh;
}

/**
 * InPlace pods still moving toward `placement`: a target outstanding, or a live pod serving another set
 * than its index holds there (a heat rebalance waits for them, as for a rollout).
 */
export function inPlaceUnsettled(pods: readonly ShardPod[], placement: Placement): boolean {
  return pods.some((p) => {
    if (!p.inPlace || p.terminating || p.drainStartedMs !== undefined) return false;
    if (outstanding(p)) return true;
    return p.shardIndex < placement.gpus.length && !sameSets(servedSet(p), shardExperts(placement, p.shardIndex));
  });
}

/** The RebalanceStalled condition's message while True ("" otherwise): the stalls status already names. */
export function reportedStalls(status: MoEDeployment["status"]): string {
  const c = status?.conditions?.find((x) => x.type === ConditionType.RebalanceStalled);
  return c?.status === "True" ? (c.message ?? "") : "";
}

/** A stall's message appears in the reported text as a whole ("; "-separated or at an end). */
export function reportedIn(reported: string, message: string): boolean {
  if (!reported || !message) return false;
  for (let i = reported.indexOf(message); i >= 0; i = reported.indexOf(message, i + 1)) {
    const before = i === 0 || reported.slice(i - 2, i) === "; ";
    const after = reported.slice(i + message.length);
    if (before && (after === "" || after.startsWith(";") || after.startsWith(" ("))) return true;
  }
  return false;
}
