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

/** The stalls not counted before (by pod and generation); `seen` is pruned to the current ones and extended. */
export function newStalls(plan: InPlacePlan | undefined, seen: Set<string>): StalledShard[] {
  const current = new Set((plan?.stalled ?? []).map((s) => `${s.pod}/${s.generation}`));
  const fresh = (plan?.stalled ?? []).filter((s) => !seen.has(`${s.pod}/${s.generation}`));
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
