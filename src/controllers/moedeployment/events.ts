// Events the reconciler records, as named builders (emitted only on change, so
// steady state writes nothing).
import { ConditionType } from "../../api/constants.ts";
import type { Condition, MoEDeploymentStatus } from "../../api/schema.ts";
import type { Decision } from "../../domain/decide.ts";
import type { PlannedPlacement } from "./plan.ts";

export interface EventSpec {
  type: "Normal" | "Warning";
  reason: string;
  message: string;
}

/** ScaledUp/ScaledDown when the managed shard count changed. */
export function scaledEvent(
  previousDesired: number | undefined,
  decision: Pick<Decision, "desiredShards" | "reason" | "message">,
): EventSpec | undefined {
  if (previousDesired === undefined || previousDesired === decision.desiredShards) return undefined;
  const up = decision.desiredShards > previousDesired;
  return {
    type: "Normal",
    reason: up ? "ScaledUp" : "ScaledDown",
    message: `${previousDesired} -> ${decision.desiredShards} shards (${decision.reason}): ${decision.message}`,
  };
}

/** Rebalanced when a replan published a new placement. */
export function rebalancedEvent(decision: Decision, placement: PlannedPlacement): EventSpec | undefined {
  if (decision.placement.action !== "replan" || !placement.changed) return undefined;
  const movedPercent = ((decision.placement.movedFraction ?? 0) * 100).toFixed(1);
  return {
    type: "Normal",
    reason: "Rebalanced",
    message: `placement v${placement.version}: ${decision.placement.reason}; moved ${movedPercent}% of expert weights`,
  };
}

/** A Warning when condition `type` turns False (named by `reason`, else the condition's reason). */
export function turnedFalseEvent(
  previous: readonly Condition[] | undefined,
  next: readonly Condition[] | undefined,
  type: string,
  reason?: string,
): EventSpec | undefined {
  const was = previous?.find((c) => c.type === type)?.status;
  const is = next?.find((c) => c.type === type);
  if (is?.status !== "False" || was === "False") return undefined;
  return { type: "Warning", reason: reason ?? is.reason, message: is.message };
}

/** A Warning when condition `type` turns True (named by the condition's type). */
export function turnedTrueEvent(
  previous: readonly Condition[] | undefined,
  next: readonly Condition[] | undefined,
  type: string,
): EventSpec | undefined {
  const was = previous?.find((c) => c.type === type)?.status;
  const is = next?.find((c) => c.type === type);
  if (is?.status !== "True" || was === "True") return undefined;
  return { type: "Warning", reason: type, message: is.message };
}

/** Warnings for conditions that turned bad at this reconcile (every topology). */
export function conditionEvents(
  previous: MoEDeploymentStatus | undefined,
  next: MoEDeploymentStatus,
): (EventSpec | undefined)[] {
  return [
    turnedFalseEvent(previous?.conditions, next.conditions, ConditionType.MetricsAvailable),
    turnedFalseEvent(previous?.conditions, next.conditions, ConditionType.SLOMet, "SLOAtRisk"),
    turnedTrueEvent(previous?.conditions, next.conditions, ConditionType.CapacityPending),
  ];
}

/** Every event for one reconcile, in order. */
export function eventsFor(o: {
  previous: MoEDeploymentStatus | undefined;
  next: MoEDeploymentStatus;
  decision: Decision;
  placement: PlannedPlacement;
  managesWorkloads: boolean;
}): EventSpec[] {
  const out = [
    o.managesWorkloads ? scaledEvent(o.previous?.desiredShards, o.decision) : undefined,
    o.managesWorkloads ? rebalancedEvent(o.decision, o.placement) : undefined,
    ...conditionEvents(o.previous, o.next),
  ];
  return out.filter((e): e is EventSpec => e !== undefined);
}
