// metav1.Conditions: set with lastTransitionTime kept while the status does
// not flip, and the summary Ready computed from the others.
import { ConditionType, ConditionReason } from "../../api/constants.ts";
import type { Condition } from "../../api/schema.ts";

export type ConditionStatus = "True" | "False" | "Unknown";

export interface ConditionInput {
  type: string;
  status: ConditionStatus;
  reason: string;
  message: string;
}

/** Order in status.conditions (stable, so an unchanged status serialises identically). */
const ORDER = [
  ConditionType.Ready,
  ConditionType.Progressing,
  ConditionType.Degraded,
  ConditionType.SLOMet,
  ConditionType.BudgetExceeded,
  ConditionType.MetricsAvailable,
  ConditionType.Prewarming,
  ConditionType.RebalanceStalled,
  ConditionType.CapacityPending,
] as string[];

export function mergeConditions(
  previous: readonly Condition[] | undefined,
  next: readonly ConditionInput[],
  generation: number | undefined,
  nowIso: string,
): Condition[] {
  const prev = new Map((previous ?? []).map((c) => [c.type, c]));
  const out = next.map((c): Condition => {
    const old = prev.get(c.type);
    const message = c.message.length > 32_000 ? `${c.message.slice(0, 32_000)}...` : c.message;
    return {
      type: c.type,
      status: c.status,
      observedGeneration: generation,
      lastTransitionTime: old && old.status === c.status ? old.lastTransitionTime : nowIso,
      reason: c.reason,
      message,
    };
  });
  return out.sort((a, b) => orderOf(a.type) - orderOf(b.type) || a.type.localeCompare(b.type));
}

function orderOf(type: string): number {
  const i = ORDER.indexOf(type);
  return i === -1 ? ORDER.length : i;
}

/** Ready from the other conditions and component readiness. */
export function readyCondition(opts: {
  recommendOnly: boolean;
  degraded?: ConditionInput;
  componentsReady: boolean;
  componentsMessage: string;
  progressing?: ConditionInput;
}): ConditionInput {
  if (opts.degraded && opts.degraded.status === "True") {
    return { type: ConditionType.Ready, status: "False", reason: opts.degraded.reason, message: opts.degraded.message };
  }
  if (opts.recommendOnly) {
    return {
      type: ConditionType.Ready,
      status: "True",
      reason: ConditionReason.RecommendOnly,
      message: "mode Recommend or PullRequest: the recommendation in status is current; no workloads are managed",
    };
  }
  if (!opts.componentsReady) {
    return {
      type: ConditionType.Ready,
      status: "False",
      reason: ConditionReason.Reconciling,
      message: opts.componentsMessage,
    };
  }
  return {
    type: ConditionType.Ready,
    status: "True",
    reason: ConditionReason.AllComponentsReady,
    message: opts.componentsMessage,
  };
}
