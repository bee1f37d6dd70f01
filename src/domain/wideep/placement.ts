// One placement shared by every WideEP group (docs/adr/0021-wide-ep-groups.md): decide()'s
// placement path run over one group's GPUs, as if the group were nodesPerGroup x gpusPerNode
// shards on nodesPerGroup nodes. The count is held at one group (manual override), so only the
// placement half of the decision matters. Pure.

import {
  decide,
  type Decision,
  type DeploymentPolicy,
  type HeatBasis,
  type HeatObservation,
  type ShardView,
} from "../decide.ts";
import type { Placement } from "../placement/index.ts";
import { gpusPerGroup, type GroupShape } from "./groups.ts";

export interface GroupPlacementInput {
  readonly heat?: HeatObservation;
  readonly lastGoodHeat?: ReadonlyArray<ReadonlyArray<number>>;
  readonly current?: { readonly placement: Placement; readonly heatBasis?: HeatBasis };
  readonly lastRebalanceMs?: number;
  readonly trackingSinceMs: number;
  /** InPlace: a running group has not acknowledged the published version yet; a heat rebalance waits (as for a rollout). */
  readonly movesInFlight?: boolean;
}

/** Node k of a group, as the planner sees it (GPUs of one node share NVLink). */
export const groupNodeName = (k: number) => `group-node-${k}`;

/** The shared placement's decision: decide() over one group of GPUs, the count held at one group. */
export function groupPlacement(
  x: GroupPlacementInput,
  policy: DeploymentPolicy,
  shape: GroupShape,
  nowMs: number,
): Decision["placement"] {
  const g = gpusPerGroup(shape);
  const shards: ShardView[] = Array.from({ length: g }, (_, i) => {
    const node = groupNodeName(Math.floor(i / shape.gpusPerNode));
    return { shardIndex: i, nodeName: node, domain: node, ready: true };
  });
  const one: DeploymentPolicy = {
    ...policy,
    minShards: g,
    maxShards: g,
    manualShards: g,
    capacity: { ...policy.capacity, minGpus: g, maxGpus: g },
  };
  return decide(
    {
      heat: x.heat,
      lastGoodHeat: x.lastGoodHeat,
      shards,
      provisionedShards: g,
      currentPlacement: x.current?.placement,
      currentPlacementHeatBasis: x.current?.heatBasis,
      lastRebalanceMs: x.lastRebalanceMs,
      rolloutInProgress: x.movesInFlight ?? false,
      trackingSinceMs: x.trackingSinceMs,
      nodes: [],
    },
    one,
    nowMs,
  ).placement;
}
