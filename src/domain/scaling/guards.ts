// Guards the operator applies to the capacity decision, with facts the capacity policy's own state
// does not hold (when this process started tracking the deployment, when the count last went up,
// when the Ready shards became Ready). Shared by `decide()` and the simulator's "ours" so the
// benchmark replays exactly what the operator runs.

import type { CapacityPolicy } from "./policy.ts";

export interface GuardInput<R extends string = string> {
  /** The capacity policy's decision (count, reason, message). */
  readonly desired: number;
  readonly reason: R;
  readonly message: string;
  /** Count the cluster is realising (Ready + warming + pending). */
  readonly provisioned: number;
  readonly ready: number;
  /**
   * Of provisioned, the units waiting for a node past the pending timeout: they will not come, so
   * the SLO feedback does not wait for them, and it keeps them (asking for them) rather than adding
   * more that would wait too. Absent = 0.
   */
  readonly pending?: number;
  readonly observedP99Ms: number | undefined;
  /**
   * When observedP99Ms was measured (the end of its window); absent = now. A reading kept between
   * refreshes is older than the decision, and its window starts that much earlier.
   */
  readonly observedP99AtMs?: number;
  /** The load metrics were usable this tick (the SLO feedback acts only then). */
  readonly metricsUsable: boolean;
  /** When this process started tracking the deployment (restart safety). */
  readonly trackingSinceMs: number;
  /** When the count last went up. */
  readonly lastScaleUpMs: number | undefined;
  /** When the most recent of the Ready units became Ready. */
  readonly readySinceMs: number | undefined;
  readonly minCount: number;
  readonly maxCount: number;
  /** Largest count the budget allows (Infinity without a budget). */
  readonly budgetCap: number;
  /**
   * The capacity policy's learned ceiling (signals.ceilingGpus): the latency feedback never adds
   * above it (the model at the observed load bounds every ask). Absent = no ceiling.
   */
  readonly ceilingCount?: number;
  /**
   * The capacity policy's measured sufficiency (signals.provenGpus): the fewest GPUs measured within
   * the plan, more than once in the last hour, at a load at least the load now. The latency feedback
   * does not add while the provisioned count is at least this. Absent = no such measurement.
   */
  readonly provenCount?: number;
  /**
   * The capacity decision's signals.leadWindowFactor (lead-scale.ts): the scale-down window and the
   * cold start in the feedback's cool-down are scaled by it. Absent = 1 (the configured windows).
   */
  readonly leadWindowFactor?: number;
  /** The unit in messages, singular and plural ("shard"/"shards", "GPU"/"GPUs"). */
  readonly unit: { readonly one: string; readonly many: string };
}

/** Reasons the guards set. */
export type GuardReason = "StabilizingScaleDown" | "SLOFeedback";

export interface GuardResult<R extends string = string> {
  readonly desired: number;
  readonly reason: R | GuardReason;
  readonly message: string;
}

/**
 * Restart safety, no undoing of a recent scale-up, the SLO feedback safety net, and the bounds.
 * - A process that just started has no recommendation history: no scale-down for one stabilisation window.
 * - Both windows here, and the cold start in the feedback's cool-down, follow the learned lead
 *   (`leadWindowFactor`, lead-scale.ts) as the policy's own scale-down window does.
 * - A scale-up (by the capacity policy or by the feedback below, which the policy's recommendation
 *   history does not see) is not undone within one scale-down stabilisation window: without this,
 *   feedback up and model down alternate (48 -> 52 -> 48 shards within a second in the demo).
 * - The model may be off while calibration learns: when the observed p99 is over the target with
 *   every unit Ready (units pending past the timeout aside: they will not come), nothing scaled up
 *   for a stable window plus a cold start, and the latency window covers the units now Ready, add
 *   10 % (at least 1); with units pending past the timeout, keep them instead (sloFeedback).
 */
export function applyOperatorGuards<R extends string>(
  input: GuardInput<R>,
  policy: CapacityPolicy,
  nowMs: number,
): GuardResult<R> {
  let { desired, message } = input;
  let reason: R | GuardReason = input.reason;
  const window = scaledWindowMs(policy.scaleDown.stabilizationWindowMs, input.leadWindowFactor);
  if (desired < input.provisioned && nowMs - input.trackingSinceMs < window) {
    desired = input.provisioned;
    reason = "StabilizingScaleDown";
    message = `${message}; holding ${input.provisioned} ${input.unit.many} until ${(window / 60_000).toFixed(1)} min of history exist after an operator restart`;
  } else if (
    desired < input.provisioned &&
    reason !== "BudgetCapped" &&
    input.lastScaleUpMs !== undefined &&
    nowMs - input.lastScaleUpMs < window
  ) {
    desired = input.provisioned;
    reason = "StabilizingScaleDown";
    message = `${message}; holding ${input.provisioned} ${input.unit.many}: the last scale-up was ${((nowMs - input.lastScaleUpMs) / 1000).toFixed(0)} s ago, within the ${(window / 1000).toFixed(0)} s scale-down stabilisation window`;
  }
  ({ desired, reason, message } = sloFeedback(input, policy, nowMs, { desired, reason, message }));
  desired = Math.max(input.minCount, Math.min(input.maxCount, desired));
  if (input.provisioned === 0 && desired < input.minCount) desired = input.minCount;
  return { desired, reason, message };
}

/**
 * The SLO feedback safety net: with every unit that can serve Ready (units pending past the timeout
 * excluded: they will not come) and the p99 over the target, add 10 % (at least 1), or keep the
 * pending units rather than adding more that would wait too; not where this count was measured
 * within the plan at this load (proven.ts).
 */
function sloFeedback<R extends string>(
  input: GuardInput<R>,
  policy: CapacityPolicy,
  nowMs: number,
  d: { desired: number; reason: R | GuardReason; message: string },
): { desired: number; reason: R | GuardReason; message: string } {
  let { desired, reason, message } = d;
  const pending = Math.max(0, Math.min(input.pending ?? 0, input.provisioned - input.ready));
  const coming = input.provisioned - pending;
  const readyAll = input.ready >= coming && coming > 0;
  const cooldownMs = policy.stableWindowMs + scaledWindowMs(policy.leadTime.defaultColdStartMs, input.leadWindowFactor);
  if (
    input.metricsUsable &&
    input.observedP99Ms !== undefined &&
    input.observedP99Ms > policy.slo.targetP99Ms &&
    desired <= input.provisioned &&
    readyAll &&
    // A deployment that was never scaled counts from when this process started tracking it, so
    // the latency window of its bring-up (units still loading) does not trigger the feedback.
    nowMs - (input.lastScaleUpMs ?? input.trackingSinceMs) > cooldownMs &&
    // The p99's window (stableWindowMs, ending when it was measured) starts after the last Ready
    // plus the warm-up: it then holds no request served before the current units all served.
    (input.readySinceMs === undefined ||
      Math.min(nowMs, input.observedP99AtMs ?? nowMs) - input.readySinceMs >
        policy.stableWindowMs + policy.feedbackWarmupMs)
  ) {
    // Measured sufficiency (proven.ts): this count (or fewer) served at least this load within the
    // plan, so one minute over the target is the minute's scatter, not a count too small for the load.
    if (input.provenCount !== undefined && input.provenCount <= input.provisioned) {
      message = `${message}; observed p99 ${input.observedP99Ms.toFixed(1)} ms > target ${policy.slo.targetP99Ms} ms, but ${input.provenCount} ${input.unit.many} met the plan at this load or more within the last ${(policy.proven.windowMs / 60_000).toFixed(0)} min: not adding`;
      return { desired: Math.max(input.minCount, Math.min(input.maxCount, desired)), reason, message };
    }
    const ceiling =
      input.ceilingCount === undefined ? Number.POSITIVE_INFINITY : Math.max(input.provisioned, input.ceilingCount);
    const bumped = Math.min(
      input.maxCount,
      input.budgetCap,
      ceiling,
      pending > 0 ? input.provisioned : input.provisioned + Math.max(1, Math.ceil(input.provisioned * 0.1)),
    );
    if (bumped > desired) {
      const capText = Number.isFinite(ceiling) ? `, at most the learned ceiling ${ceiling}` : "";
      message =
        pending > 0
          ? `observed p99 ${input.observedP99Ms.toFixed(1)} ms > target ${policy.slo.targetP99Ms} ms with every ${input.unit.one} that has a node Ready: keeping the ${pending} ${pending === 1 ? input.unit.one : input.unit.many} waiting for a node (CapacityPending) rather than adding more${capText}; ${message}`
          : `observed p99 ${input.observedP99Ms.toFixed(1)} ms > target ${policy.slo.targetP99Ms} ms with every ${input.unit.one} Ready: adding ${bumped - input.provisioned} ${input.unit.one}(s) (the latency model is still calibrating${capText}); ${message}`;
      desired = bumped;
      reason = "SLOFeedback";
    }
  }
  return { desired, reason, message };
}

/** A configured window times the lead factor (absent or invalid: the window itself; never longer). */
function scaledWindowMs(windowMs: number, factor: number | undefined): number {
  return factor !== undefined && Number.isFinite(factor) && factor > 0 && factor < 1
    ? Math.round(windowMs * factor)
    : windowMs;
}
