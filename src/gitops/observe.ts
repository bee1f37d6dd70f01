// What one Decision says about the bounds, for the GitOps evidence. The only
// place pull-request mode reads the Decision's shape.
import { routerGpuCount, type MoEDeployment } from "../api/schema.ts";
import type { Decision } from "../domain/decide.ts";
import type { BoundObservation } from "../domain/gitops/index.ts";
import { placementToSglang } from "../domain/placement/sglang.ts";
import type { ProposalInputs } from "./sync.ts";
import { isMetricsHold } from "../domain/scaling/index.ts";

export function boundObservation(
  d: MoEDeployment,
  decision: Decision,
  observedP99Ms: number | undefined,
  nowMs: number,
): BoundObservation {
  const spec = d.spec;
  const conflicts = decision.capacity?.conflicts ?? [];
  const atMax = conflicts.find((c) => c.type === "MaxGpusVsSlo");
  const budget = conflicts.find((c) => c.type === "BudgetVsSlo");
  const routerGpus = routerGpuCount(spec);
  const gpus = decision.desiredShards + routerGpus;
  const usdPerGpuHour = gpus > 0 ? decision.usdPerHourDesired / gpus : 0;
  // The budget the SLO's shard count needs: today's budget plus the missing shards at the mean GPU price.
  const budgetRequired =
    budget?.requiredGpus !== undefined && spec.cost.maxUsdPerHour !== undefined && usdPerGpuHour > 0
      ? spec.cost.maxUsdPerHour + Math.max(0, budget.requiredGpus - decision.desiredShards) * usdPerGpuHour
      : undefined;
  const capReason = decision.capacity?.reason;
  return {
    nowMs,
    desiredShards: decision.desiredShards,
    sloShards: decision.capacity?.signals.sloGpus,
    observedP99Ms,
    targetMs: spec.slo.targetLatencyMs,
    maxBoundRequiredShards: atMax?.requiredGpus,
    budgetRequiredUsdPerHour: budgetRequired,
    metricsHeld: (capReason !== undefined && isMetricsHold(capReason)) || decision.heatProblem !== undefined,
    gpus,
    usdPerHour: decision.usdPerHourDesired,
    reason: decision.reason,
    message: decision.message,
  };
}

/**
 * The forecaster's table and tokens per shard (for learned schedules), and the placement the
 * decision planned from observed heat (for the placement file).
 */
export function proposalInputs(
  d: MoEDeployment,
  decision: Decision,
  heat: ReadonlyArray<ReadonlyArray<number>> | undefined,
): ProposalInputs {
  const signals = decision.capacity?.signals;
  // The load the SLO count was sized for, over that count: what one shard serves within the SLO.
  const load = signals?.sizingTokensPerSecond ?? signals?.stableTokensPerSecond;
  const sloShards = signals?.sloGpus;
  const tokensPerShard =
    load !== undefined && sloShards !== undefined && sloShards > 0 && load > 0 ? load / sloShards : undefined;
  const f = d.spec.gitops?.placementFile;
  const p = decision.placement;
  let placement: ProposalInputs["placement"];
  if (f && heat && decision.heatUsable && p.placement && p.heatBasis === "observed" && p.metrics) {
    // Rows for the model's dense layers first (spec.model.denseLayers), as the placement ConfigMap has.
    const denseLayers = d.spec.model.denseLayers;
    const map = placementToSglang(p.placement, { denseLayerCount: denseLayers });
    if (map.ok)
      placement = {
        map: map.value.physical_to_logical_map,
        placement: p.placement,
        heat,
        balancedness: p.metrics.balancedness,
        denseLayers,
      };
  }
  return { forecast: decision.nextCapacityState.forecast, tokensPerShard, placement };
}
