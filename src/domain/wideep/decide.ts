// One WideEP decision (docs/adr/0021-wide-ep-groups.md): load from heat as decide() reads it,
// the capacity policy's GPU count quantised to whole groups, and the groups that count. Pure.

import {
  assessHeat,
  costOf,
  marginalPriceOf,
  type DeploymentPolicy,
  type HeatObservation,
  type NodeView,
} from "../decide.ts";
import { createCapacityState, type CapacityState } from "../capacity/index.ts";
import {
  decideGroupCount,
  gpusPerGroup,
  groupGpuViews,
  groupStates,
  groupsReadySince,
  pendingGroups,
  type GroupPod,
  type GroupShape,
  type GroupState,
} from "./groups.ts";
import type { ShardCount } from "../scaling/shard-count.ts";
import { computePlacementMetrics } from "../placement/metrics.ts";
import type { Placement } from "../placement/types.ts";

export interface WideEPSnapshot {
  readonly heat?: HeatObservation;
  readonly observedP99Ms?: number;
  /** When observedP99Ms was measured (absent: now). */
  readonly observedP99AtMs?: number;
  /** groupsMovedSince (moves.ts): the last in-place move's acknowledgement, or now while one is outstanding (until its deadline). */
  readonly movedSinceMs?: number;
  /** The LeaderWorkerSet's replicas as last decided (status), or the groups seen. */
  readonly provisionedGroups: number;
  /**
   * The groups last decided (status), when they differ from the groups running: while groups drain
   * before a scale-down the running count stays up, and the capacity policy must see the count it
   * decided (as Disaggregated passes status.desiredShards), or its rate limit holds the running one.
   */
  readonly decidedGroups?: number;
  readonly pods: readonly GroupPod[];
  readonly capacityState?: CapacityState;
  readonly trackingSinceMs: number;
  readonly lastScaleUpMs?: number;
  /** GPU nodes matching spec.serving.gpu with their free GPUs and prices (spec.cost), as Disaggregated reads them. */
  readonly nodes?: readonly NodeView[];
  /**
   * The published placement (one group's GPUs; every group runs it). Its balancedness and
   * cross-node share under the current heat are the capacity model's placement quality, as
   * decide() evaluates the current placement for expert shards; neutral (1, 0) before one exists.
   */
  readonly currentPlacement?: Placement;
}

export interface WideEPDecision {
  readonly groups: number;
  readonly count: ShardCount;
  /** States of the groups provisioned now (0..provisionedGroups-1). */
  readonly states: readonly GroupState[];
  readonly readyGroups: number;
  /** Groups still wanted with a pod unschedulable past the timeout: reported, never counted. */
  readonly pending: readonly GroupState[];
  readonly heatProblem?: string;
  /** Offered tokens/s from heat (undefined when heat is not usable this tick). */
  readonly loadTokensPerSecond: number | undefined;
  /**
   * Cost of the provisioned and of the decided groups (decide.ts costOf): a bound pod's GPUs at its
   * node's price (spec.cost.priceLabelKey, then table); other GPUs at the default price (0 without
   * one) in the provisioned cost, at the marginal price (marginalPriceOf) in the decided cost.
   */
  readonly usdPerHourNow: number;
  readonly usdPerHourDesired: number;
}

export function decideWideEP(
  s: WideEPSnapshot,
  policy: DeploymentPolicy,
  shape: GroupShape,
  pendingTimeoutMs: number,
  nowMs: number,
): WideEPDecision {
  const heat = assessHeat(s.heat, policy);
  const states = groupStates(s.pods, s.provisionedGroups, shape, nowMs);
  const readyGroups = states.filter((g) => g.ready).length;
  const g = gpusPerGroup(shape);
  // A group pending past the timeout will not come: the SLO feedback neither waits for it nor adds more.
  const pendingNow = pendingGroups(states, pendingTimeoutMs).length;
  const priced = { nodes: s.nodes ?? [], shards: groupGpuViews(s.pods, s.provisionedGroups, shape, s.nodes ?? []) };
  const marginalPrice = marginalPriceOf(priced, policy);
  // Every group serves 1/groups of the load with the same placement and the same heat, so the
  // shared placement's quality is each group's.
  const quality = s.currentPlacement && heat.heat ? computePlacementMetrics(s.currentPlacement, heat.heat) : undefined;
  const { groups, count } = decideGroupCount(
    {
      capacity: {
        tokensPerSecond: heat.load,
        metricsAtMs: heat.atMs,
        metricsConfidence: s.heat?.confidence,
        observedP99Ms: s.observedP99Ms,
        provisionedGpus: (s.decidedGroups ?? s.provisionedGroups) * g,
        readyGpus: readyGroups * g,
        pendingGpus: pendingNow * g,
        balancedness: quality?.balancedness ?? 1,
        crossNodeShare: quality?.crossNodeShare ?? 0,
        usdPerGpuHour: marginalPrice,
      },
      state: s.capacityState ?? createCapacityState(policy.capacity),
      trackingSinceMs: s.trackingSinceMs,
      lastScaleUpMs: s.lastScaleUpMs,
      readySinceMs: latestOf(groupsReadySince(s.pods, states), s.movedSinceMs),
      observedP99AtMs: s.observedP99AtMs,
    },
    { capacity: policy.capacity, manualGpus: policy.manualShards },
    shape,
    nowMs,
  );
  const pending = pendingGroups(states, pendingTimeoutMs).filter((p) => p.index < groups);
  // Groups keep their indices: the decided groups' GPUs are the first groups x G slots.
  const cost = costOf(
    priced,
    policy,
    groups * g,
    priced.shards.map((v) => v.nodeName),
    marginalPrice,
  );
  return {
    groups,
    count,
    states,
    readyGroups,
    pending,
    heatProblem: heat.problem,
    loadTokensPerSecond: heat.load,
    usdPerHourNow: cost.usdPerHourNow,
    usdPerHourDesired: cost.usdPerHourDesired,
  };
}

function latestOf(a: number | undefined, b: number | undefined): number | undefined {
  return a === undefined ? b : b === undefined ? a : Math.max(a, b);
}
