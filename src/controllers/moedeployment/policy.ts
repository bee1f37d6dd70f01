// MoEDeployment spec (API types) -> the domain's DeploymentPolicy (plain data).
import {
  expertReplicaBytes,
  moeLayerCount,
  routerGpuCount,
  type MoEDeploymentSpec,
  type LatencyMetric as ApiLatencyMetric,
} from "../../api/schema.ts";
import { makeCapacityPolicy, type LatencyMetric } from "../../domain/capacity/index.ts";
import type { DeploymentPolicy } from "../../domain/decide.ts";
import type { PrewarmSchedule } from "../../domain/prewarm/schedule.ts";

/** A spec.prewarm.schedules entry as the domain's schedule (minShards are GPUs: one shard, one GPU). */
export function scheduleOf(s: NonNullable<MoEDeploymentSpec["prewarm"]["schedules"]>[number]): PrewarmSchedule {
  return {
    name: s.name,
    start: s.start,
    durationMs: s.durationMinutes * 60_000,
    timezone: s.timeZone,
    minGpus: s.minShards,
  };
}

const METRIC: Record<ApiLatencyMetric, LatencyMetric> = {
  InterTokenLatency: "itl",
  TimeToFirstToken: "ttft",
  TokenLatency: "perTokenLatency",
};

export interface PolicyContext {
  /** Decision cadence: metric windows are at least a few of these. */
  reconcileIntervalMs: number;
  /** Replacement pods the rollout creates at once (--max-surge): a heat rebalance changes at most this many shards. */
  maxSurge?: number;
}

export function policyFromSpec(spec: MoEDeploymentSpec, ctx: PolicyContext): DeploymentPolicy {
  const routerGpus = routerGpuCount(spec);
  // The router's GPUs are priced at the default price (0 when unknown) and come out of the budget for shards.
  const budget =
    spec.cost.maxUsdPerHour === undefined
      ? undefined
      : Math.max(0, spec.cost.maxUsdPerHour - routerGpus * spec.cost.defaultUsdPerGpuHour);
  const coldStartMs = spec.prewarm.coldStartSeconds * 1000;
  const capacity = makeCapacityPolicy({
    slo: { metric: METRIC[spec.slo.metric], targetP99Ms: spec.slo.targetLatencyMs },
    minGpus: spec.scaling.minShards,
    maxGpus: spec.scaling.maxShards,
    budgetUsdPerHour: budget,
    stableWindowMs: Math.max(spec.slo.evaluationWindowSeconds * 1000, 3 * ctx.reconcileIntervalMs),
    // A new unit serves at full pace about one reconcile interval after Ready (the router and the
    // scrape pick it up), and Ready times are whole seconds: the feedback's p99 window starts after that.
    feedbackWarmupMs: ctx.reconcileIntervalMs + 1000,
    shortWindowMs: Math.max(spec.prewarm.burst.panicWindowSeconds * 1000, ctx.reconcileIntervalMs),
    // After a burst, scale-down waits one scale-down stabilisation window (at most 5 minutes).
    burst: {
      ratio: spec.prewarm.burst.enabled ? spec.prewarm.burst.panicThresholdPercent / 100 : Number.POSITIVE_INFINITY,
      holdMs: Math.min(5 * 60_000, spec.scaling.scaleDown.stabilizationWindowSeconds * 1000),
    },
    scaleUp: {
      stabilizationWindowMs: spec.scaling.scaleUp.stabilizationWindowSeconds * 1000,
      maxStepGpus: spec.scaling.scaleUp.maxShardsPerStep,
      maxStepPercent: 0,
      periodMs: 0,
    },
    scaleDown: {
      stabilizationWindowMs: spec.scaling.scaleDown.stabilizationWindowSeconds * 1000,
      maxStepGpus: spec.scaling.scaleDown.maxShardsPerStep,
      maxStepPercent: 0,
      // One scale-down step per stabilisation window, at most every 2 minutes.
      periodMs: Math.min(2 * 60_000, spec.scaling.scaleDown.stabilizationWindowSeconds * 1000),
    },
    // The user's scale-down window is honoured as written, also on a clearly falling load (the
    // policy's default would shorten it to 3 minutes there).
    trend: { fallingScaleDownWindowMs: spec.scaling.scaleDown.stabilizationWindowSeconds * 1000 },
    dataQuality: { maxMetricsAgeMs: Math.max(2 * 60_000, 4 * ctx.reconcileIntervalMs) },
    schedules: (spec.prewarm.schedules ?? []).map(scheduleOf),
    forecast: { enabled: spec.prewarm.predictive.enabled },
    leadTime: {
      defaultColdStartMs: Math.max(
        coldStartMs,
        spec.prewarm.predictive.enabled ? spec.prewarm.predictive.leadSeconds * 1000 - 60_000 : 0,
      ),
    },
  });
  const memory = spec.serving.gpu.memoryBytes;
  return {
    layerCount: moeLayerCount(spec.model),
    expertCount: spec.model.routedExperts,
    topK: spec.model.topK,
    slotsPerGpu: spec.model.expertSlotsPerGpu,
    bytesPerExpertReplica: memory !== undefined ? expertReplicaBytes(spec.model) : undefined,
    gpuMemoryBytes: memory,
    minShards: spec.scaling.minShards,
    maxShards: spec.scaling.maxShards,
    manualShards: spec.scaling.shards,
    routerGpus,
    capacity,
    placement: {
      maxMoveFraction: spec.placement.maxMovedPercent / 100,
      minBalancednessGain: spec.placement.minBalancednessGainPercent / 100,
      redundantSlots: spec.placement.maxRedundantSlotsPerLayer,
      rebalanceIntervalMs: spec.placement.rebalanceIntervalSeconds * 1000,
      earlyRebalanceDrop: spec.placement.earlyRebalanceDropPercent / 100,
      topology: "spread",
      maxChangedShards: ctx.maxSurge,
      inPlaceMoves: spec.placement.moves.mode === "InPlace",
      moveCost: {
        bytesPerExpertReplica: expertReplicaBytes(spec.model),
        nvlinkBytesPerSecond: spec.placement.moveBandwidth.nvlinkMegabytesPerSecond * 1e6,
        networkBytesPerSecond: spec.placement.moveBandwidth.networkMegabytesPerSecond * 1e6,
        storageBytesPerSecond: spec.placement.moveBandwidth.storageMegabytesPerSecond * 1e6,
        maxStallSeconds: spec.placement.maxStallMilliseconds / 1000,
      },
    },
    defaultUsdPerGpuHour: spec.cost.defaultUsdPerGpuHour > 0 ? spec.cost.defaultUsdPerGpuHour : undefined,
  };
}
