// One WideEP decision (docs/adr/0021-wide-ep-groups.md): load from heat as decide() reads it,
// the capacity policy's GPU count quantised to whole groups, and the groups that count. Pure.

import { assessHeat, type DeploymentPolicy, type HeatObservation } from "../decide.ts";
import { createCapacityState, type CapacityState } from "../capacity/index.ts";
import {
  decideGroupCount,
  gpusPerGroup,
  groupStates,
  pendingGroups,
  type GroupPod,
  type GroupShape,
  type GroupState,
} from "./groups.ts";
import type { ShardCount } from "../scaling/shard-count.ts";

export interface WideEPSnapshot {
  readonly heat?: HeatObservation;
  readonly observedP99Ms?: number;
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
  readonly usdPerGpuHour?: number;
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
  /** Cost of the provisioned and of the decided groups at the policy's GPU price (0 without one). */
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
  const { groups, count } = decideGroupCount(
    {
      capacity: {
        tokensPerSecond: heat.load,
        metricsAtMs: heat.atMs,
        metricsConfidence: s.heat?.confidence,
        observedP99Ms: s.observedP99Ms,
        provisionedGpus: (s.decidedGroups ?? s.provisionedGroups) * g,
        readyGpus: readyGroups * g,
        // One placement shared by the groups is not measured per group yet: neutral values.
        balancedness: 1,
        crossNodeShare: 0,
        usdPerGpuHour: s.usdPerGpuHour ?? policy.defaultUsdPerGpuHour,
      },
      state: s.capacityState ?? createCapacityState(policy.capacity),
      trackingSinceMs: s.trackingSinceMs,
      lastScaleUpMs: s.lastScaleUpMs,
      readySinceMs: undefined,
    },
    { capacity: policy.capacity, manualGpus: policy.manualShards },
    shape,
    nowMs,
  );
  const pending = pendingGroups(states, pendingTimeoutMs).filter((p) => p.index < groups);
  const price = s.usdPerGpuHour ?? policy.defaultUsdPerGpuHour ?? 0;
  return {
    groups,
    count,
    states,
    readyGroups,
    pending,
    heatProblem: heat.problem,
    loadTokensPerSecond: heat.load,
    usdPerHourNow: s.provisionedGroups * g * price,
    usdPerHourDesired: groups * g * price,
  };
}
