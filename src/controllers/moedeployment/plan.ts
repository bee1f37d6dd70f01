// The ChildPlan: what children an MoEDeployment should have, computed purely
// from the decision and what exists. Applying it is an Actuator's job.
import type { V1ConfigMap, V1Deployment, V1Pod } from "@kubernetes/client-node";
import { moeLayerCount, type MoEDeployment } from "../../api/schema.ts";
import type { Decision } from "../../domain/decide.ts";
import { planRollout, type DesiredShard, type RolloutPlan } from "../../domain/rollout/index.ts";
import { expertSetHash, shardExperts } from "./children.ts";
import { renderPlacementConfigMap, type PublishedPlacement } from "./codecs/placement-configmap.ts";
import { routerToApply } from "./codecs/router.ts";
import { renderShardPod, type ShardPod } from "./codecs/shard-pod.ts";

/** The placement the plan publishes. */
export interface PlannedPlacement {
  /** Version in the ConfigMap: the published one, plus one when the placement changes. */
  version: number;
  hash?: string;
  /** The target differs from the published placement. */
  changed: boolean;
  /** The decision made a new plan (first placement or a replan). */
  rebalanced: boolean;
}

export interface ChildPlan {
  /** The router Deployment to apply; undefined when the live one carries the same content hash. */
  router?: V1Deployment;
  /** The placement ConfigMap to apply; undefined when the published one is current (or there is no placement yet). */
  placementConfigMap?: V1ConfigMap;
  /** Make-before-break rollout of shard pods toward the target placement; undefined before any placement. */
  rollout?: RolloutPlan;
  /** Shard pods to create, rendered from rollout.create. */
  createPods: V1Pod[];
  /** Shard pods to mark draining (names). */
  drainPods: string[];
  /** Drained shard pods to delete (uid: delete only that incarnation). */
  deletePods: { name: string; uid?: string }[];
  placement: PlannedPlacement;
  /** One per shard index of the target placement. */
  desired: DesiredShard[];
}

/** What exists now, as far as the plan cares. */
export interface LiveChildren {
  router: V1Deployment | undefined;
  published: PublishedPlacement | undefined;
  shardPods: readonly ShardPod[];
}

export interface PlanOptions {
  nowMs: number;
  drainSeconds: number;
  maxSurge: number;
}

function desiredShards(decision: Decision): DesiredShard[] {
  const target = decision.placement.placement;
  if (!target) return [];
  return target.gpus.map((_, g) => {
    const experts = shardExperts(target, g);
    return { shardIndex: g, experts, setHash: expertSetHash(experts), nodeName: decision.shardNodes[g] };
  });
}

function plannedPlacement(decision: Decision, published: PublishedPlacement | undefined): PlannedPlacement {
  const hash = decision.placement.hash;
  const changed = decision.placement.placement !== undefined && hash !== published?.hash;
  const version = (published?.version ?? 0) + (changed ? 1 : 0);
  return {
    version,
    hash,
    changed,
    rebalanced: decision.placement.action === "replan" || decision.placement.action === "initial",
  };
}

export function planChildren(d: MoEDeployment, decision: Decision, live: LiveChildren, o: PlanOptions): ChildPlan {
  const desired = desiredShards(decision);
  const placement = plannedPlacement(decision, live.published);
  const target = decision.placement.placement;
  const plan: ChildPlan = {
    router: routerToApply(d, live.router),
    createPods: [],
    drainPods: [],
    deletePods: [],
    placement,
    desired,
  };
  const hash = placement.hash;
  if (!target || hash === undefined) return plan;
  if (placement.changed) {
    plan.placementConfigMap = renderPlacementConfigMap(d, {
      placement: target,
      hash,
      version: placement.version,
      denseLayers: d.spec.model.denseLayers,
      heatBasis: decision.placement.heatBasis,
      moveCost: decision.placement.moveCost
        ? { cost: decision.placement.moveCost, maxStallSeconds: d.spec.placement.maxStallMilliseconds / 1000 }
        : undefined,
      shards: desired.map((s) => ({ shardIndex: s.shardIndex, setHash: s.setHash })),
    });
  }
  const rollout = planRollout({
    pods: live.shardPods,
    desired,
    layerCount: moeLayerCount(d.spec.model),
    expertCount: d.spec.model.routedExperts,
    nowMs: o.nowMs,
    drainSeconds: o.drainSeconds,
    maxSurge: o.maxSurge,
  });
  plan.rollout = rollout;
  plan.createPods = rollout.create.map((s) =>
    renderShardPod(d, {
      shardIndex: s.shardIndex,
      experts: s.experts.map((l) => [...l]),
      setHash: s.setHash,
      placementVersion: placement.version,
      placementHash: hash,
      preferredNode: s.nodeName,
    }),
  );
  plan.drainPods = [...rollout.startDrain];
  plan.deletePods = rollout.delete.map((name) => ({
    name,
    uid: live.shardPods.find((p) => p.name === name)?.pod.metadata?.uid,
  }));
  return plan;
}
