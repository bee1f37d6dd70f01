// The count half of the decision, shared by the operator's decide() and the simulator's "ours"
// (docs/adr/0011-decide-pipeline.md): the capacity policy, the operator's guards, the manual
// override and the bounds. The simulator calls this very function, so the benchmark replays the
// operator's capacity path, not a copy of it.

import {
  decideCapacity,
  type CapacityDecision,
  type CapacityInput,
  type CapacityReason,
  type CapacityState,
} from "./decide.ts";
import { applyOperatorGuards } from "./guards.ts";
import type { CapacityPolicy } from "./policy.ts";
import { isMetricsHold, type ShardCountReason } from "./reasons.ts";
import { DEFAULT_CAPACITY_SIGNALS, type CapacitySignalEntry } from "./signals.ts";

export interface ShardCountInput {
  /** The capacity policy's input; tokensPerSecond undefined = no usable load this tick. */
  readonly capacity: CapacityInput;
  readonly state: CapacityState;
  /** When this process started tracking the deployment (restart safety). */
  readonly trackingSinceMs: number;
  /** When the count last went up (status). */
  readonly lastScaleUpMs: number | undefined;
  /** When the most recent of the Ready units became Ready. */
  readonly readySinceMs: number | undefined;
  /** When capacity.observedP99Ms was measured (absent: now). */
  readonly observedP99AtMs?: number;
}

export interface ShardCountPolicy<R extends string = never> {
  readonly capacity: CapacityPolicy;
  readonly minCount: number;
  readonly maxCount: number;
  /** Manual override (scale subresource): hold exactly this many (within the bounds); autoscaling suspended. */
  readonly manualCount?: number;
  /** The unit in messages ("shard"/"shards", "GPU"/"GPUs"). */
  readonly unit: { readonly one: string; readonly many: string };
  /** Capacity signals in priority order (default: DEFAULT_CAPACITY_SIGNALS). */
  readonly signals?: readonly CapacitySignalEntry<CapacityReason | R>[];
}

export interface ShardCount<R extends string = never> {
  readonly desired: number;
  readonly reason: ShardCountReason | R;
  readonly message: string;
  /** The capacity policy's decision (computed also under the manual override: its state keeps learning). */
  readonly capacity: CapacityDecision<CapacityReason | R>;
  readonly nextState: CapacityState;
}

/** The count: capacity policy, then the manual override or the operator's guards, then the bounds. */
export function decideShardCount<R extends string = never>(
  input: ShardCountInput,
  policy: ShardCountPolicy<R>,
  nowMs: number,
): ShardCount<R> {
  const capacity = decideCapacity<R>(
    input.capacity,
    input.state,
    policy.capacity,
    nowMs,
    policy.signals ?? DEFAULT_CAPACITY_SIGNALS,
  );
  const counted =
    policy.manualCount === undefined ? guarded(input, policy, capacity, nowMs) : manual(policy, policy.manualCount);
  let desired = Math.max(policy.minCount, Math.min(policy.maxCount, counted.desired));
  if (input.capacity.provisionedGpus === 0 && desired < policy.minCount) desired = policy.minCount;
  return { desired, reason: counted.reason, message: counted.message, capacity, nextState: capacity.nextState };
}

function manual<R extends string>(
  policy: ShardCountPolicy<R>,
  manualCount: number,
): { desired: number; reason: ShardCountReason | R; message: string } {
  const desired = Math.min(policy.maxCount, Math.max(policy.minCount, manualCount));
  return {
    desired,
    reason: "ManualOverride",
    message: `holding ${desired} ${policy.unit.many} set through spec.scaling.shards (autoscaling suspended)`,
  };
}

function guarded<R extends string>(
  input: ShardCountInput,
  policy: ShardCountPolicy<R>,
  capacity: CapacityDecision<CapacityReason | R>,
  nowMs: number,
): { desired: number; reason: ShardCountReason | R; message: string } {
  const c = input.capacity;
  const g = applyOperatorGuards(
    {
      desired: capacity.desiredGpus,
      reason: capacity.reason,
      message: capacity.message,
      provisioned: c.provisionedGpus,
      ready: c.readyGpus,
      pending: c.pendingGpus ?? 0,
      observedP99Ms: c.observedP99Ms,
      observedP99AtMs: input.observedP99AtMs,
      // The SLO feedback acts only on usable load metrics (not on a hold on bad data).
      metricsUsable: c.tokensPerSecond !== undefined && !isMetricsHold(capacity.reason),
      ceilingCount: capacity.signals.feedbackCeilingGpus,
      provenCount: capacity.signals.provenGpus,
      leadWindowFactor: capacity.signals.leadWindowFactor,
      trackingSinceMs: input.trackingSinceMs,
      lastScaleUpMs: input.lastScaleUpMs,
      readySinceMs: input.readySinceMs,
      minCount: policy.minCount,
      maxCount: policy.maxCount,
      budgetCap: capacity.signals.budgetGpus ?? Number.POSITIVE_INFINITY,
      unit: policy.unit,
    },
    policy.capacity,
    nowMs,
  );
  return g;
}
