// One table for the capacity and shard-count reasons: what each maps to in the API (status
// lastScale.reason and condition reasons) and what kind of reason it is. Typed so that a reason
// added to CapacityReasons without a row here fails the type check.

import type { CapacityReason } from "./decide.ts";
import { DEFAULT_CAPACITY_SIGNALS, type CapacitySignalEntry } from "./signals.ts";

/** Why the shard count is what it is: a capacity reason, or the manual override. */
export type ShardCountReason = CapacityReason | "ManualOverride";

export type ReasonKind = "slo" | "prewarm" | "bounds" | "budget" | "stabilizing" | "metricsHold" | "override";

export interface ReasonInfo {
  /** The reason string the API reports. */
  readonly api: string;
  readonly kind: ReasonKind;
}

export const REASON_TABLE = {
  SLOFeedback: { api: "SLOTarget", kind: "slo" },
  WithinTarget: { api: "WithinTarget", kind: "slo" },
  ScheduledPrewarm: { api: "ScheduledWindow", kind: "prewarm" },
  ForecastPrewarm: { api: "ForecastPeak", kind: "prewarm" },
  Burst: { api: "BurstDetected", kind: "prewarm" },
  AtMinGpus: { api: "BoundsChanged", kind: "bounds" },
  AtMaxGpus: { api: "BoundsChanged", kind: "bounds" },
  BudgetCapped: { api: "CappedByBudget", kind: "budget" },
  StabilizingScaleDown: { api: "StabilizingScaleDown", kind: "stabilizing" },
  StaleMetrics: { api: "StaleMetrics", kind: "metricsHold" },
  MissingMetrics: { api: "MissingMetrics", kind: "metricsHold" },
  LowConfidenceMetrics: { api: "LowConfidenceMetrics", kind: "metricsHold" },
  OutOfRangeMetrics: { api: "OutOfRangeMetrics", kind: "metricsHold" },
  OutlierMetrics: { api: "OutlierMetrics", kind: "metricsHold" },
  MetricsGap: { api: "MetricsGap", kind: "metricsHold" },
  ManualOverride: { api: "ManualOverride", kind: "override" },
} as const satisfies Record<ShardCountReason, ReasonInfo>;

/** The table's row for a reason string (undefined for a reason it does not know, e.g. an added signal's). */
export function reasonInfo(reason: string): ReasonInfo | undefined {
  return Object.hasOwn(REASON_TABLE, reason) ? REASON_TABLE[reason as ShardCountReason] : undefined;
}

/** "Held on bad data" (the controller reports it as a metrics problem). */
export function isMetricsHold(reason: string): boolean {
  return reasonInfo(reason)?.kind === "metricsHold";
}

/** The API reason for a decision's reason: the table, then the registered signals; unknown reasons pass through. */
export function apiReasonOf(
  reason: string,
  signals: readonly CapacitySignalEntry[] = DEFAULT_CAPACITY_SIGNALS,
): string {
  return reasonInfo(reason)?.api ?? signals.find((s) => s.reason === reason)?.apiReason ?? reason;
}

/** The API reason of a pre-warm (schedule, forecast, burst), undefined for any other reason. */
export function prewarmApiReasonOf(reason: string): string | undefined {
  const info = reasonInfo(reason);
  return info?.kind === "prewarm" ? info.api : undefined;
}
