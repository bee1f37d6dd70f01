// Latency model for an expert-sharded MoE deployment.
//
// The hottest GPU sets the pace: with offered load `tokensPerSecond` spread over
// `gpuCount` GPUs whose placement has balancedness b = mean GPU load / max GPU load,
// the hottest GPU carries tokensPerSecond / (gpuCount * b). Its utilisation rho is that
// load over the GPU's effective token capacity. p99 latency then follows a queueing
// curve that explodes as rho -> 1:
//
//   p99 = latencyScale * (baseMs + crossNodeShare * crossNodeHopMs)
//         * (1 + queueingFactor * rho / (1 - rho))            (rho < 1, else Infinity)
//
// With queueingFactor = 1 this is the shape of the M/M/1 p99 sojourn time, S*ln(100)/(1-rho).
// Effective capacity per GPU = tokensPerSecondPerGpu * capacityScale * memoryFactor
// / (1 + crossNodeShare * crossNodeCapacityPenalty), where memoryFactor is the share of
// KV-cache memory left after redundant experts (each costs redundantExpertMemoryGb).
// latencyScale and capacityScale are the per-deployment calibration (see calibration.ts).
//
// Pure: no clocks, no I/O.

/** Which latency the SLO names. */
export type LatencyMetric = "perTokenLatency" | "ttft" | "itl";

export const LATENCY_METRICS: readonly LatencyMetric[] = ["perTokenLatency", "ttft", "itl"];

export interface LatencyModelParams {
  /** Token throughput one GPU sustains at saturation (rho = 1), perfectly balanced, no cross-node traffic. */
  readonly tokensPerSecondPerGpu: number;
  /** p99 of the metric at (near) zero load, in ms. */
  readonly baseLatencyMs: number;
  /** Multiplier of the rho/(1-rho) queueing term (1 = M/M/1-shaped p99). */
  readonly queueingFactor: number;
  /** Latency added per token when all expert traffic crosses nodes (scaled by crossNodeShare), in ms. */
  readonly crossNodeHopMs: number;
  /** Fractional capacity lost when all expert traffic crosses nodes (scaled by crossNodeShare). */
  readonly crossNodeCapacityPenalty: number;
  /** HBM per GPU left for KV cache before redundant experts, in GB. */
  readonly kvCacheMemoryGb: number;
  /** HBM one redundant expert costs per GPU (all MoE layers), in GB. */
  readonly redundantExpertMemoryGb: number;
}

/** The deployment state the latency is predicted for. */
export interface LatencyConditions {
  /** Offered load in tokens/s (output tokens for ITL/per-token latency, input tokens for TTFT). */
  readonly tokensPerSecond: number;
  readonly gpuCount: number;
  /** Placement balancedness, mean GPU load / max GPU load, in (0, 1]. */
  readonly balancedness: number;
  /** Share of routed expert traffic that crosses nodes, 0..1. */
  readonly crossNodeShare: number;
  /** Redundant expert replicas per GPU (average); 0 when unknown. */
  readonly redundantExpertsPerGpu?: number;
}

/** Online correction applied on top of the model's defaults. Identity = { 1, 1 }. */
export interface LatencyCorrection {
  readonly latencyScale: number;
  readonly capacityScale: number;
}

export const IDENTITY_CORRECTION: LatencyCorrection = { latencyScale: 1, capacityScale: 1 };

/**
 * Defaults calibrated from public DeepSeek-V3/R1 production numbers (open-infra-index, day 6):
 * one H800 node (8 GPUs) serves ~14.8k output tok/s in decode and ~73.7k input tok/s in prefill,
 * and users see 20-22 output tok/s (~45-50 ms per token). We assume production ran at rho ~ 0.8,
 * so saturation is 14.8k/8/0.8 ~ 2,300 output tok/s per GPU (decode) and 73.7k/8/0.8 ~ 11,500
 * input tok/s per GPU (prefill). With queueingFactor 0.5, p99 at rho 0.8 is 3x base, so a 16 ms
 * base ITL gives ~48 ms p99 there. A redundant expert costs ~2.4 GB per rank (vLLM docs).
 * These are starting points only: the per-deployment calibration corrects them online.
 */
export function defaultLatencyModelParams(metric: LatencyMetric): LatencyModelParams {
  const shared = {
    queueingFactor: 0.5,
    crossNodeCapacityPenalty: 0.15,
    kvCacheMemoryGb: 40,
    redundantExpertMemoryGb: 2.4,
  };
  switch (metric) {
    case "ttft":
      return { ...shared, tokensPerSecondPerGpu: 11_500, baseLatencyMs: 250, crossNodeHopMs: 20 };
    case "itl":
      return { ...shared, tokensPerSecondPerGpu: 2_300, baseLatencyMs: 16, crossNodeHopMs: 2 };
    case "perTokenLatency":
      // End-to-end time per output token: ITL plus amortised prefill; slightly above ITL.
      return { ...shared, tokensPerSecondPerGpu: 2_300, baseLatencyMs: 20, crossNodeHopMs: 2 };
  }
}

/** Combine per-layer balancedness into one: per-token time is the sum over layers of each layer's
 * hottest GPU, so the effective balancedness is the harmonic mean of the layers'. */
export function combineLayerBalancedness(perLayer: readonly number[]): number {
  let sumInverse = 0;
  let n = 0;
  for (const b of perLayer) {
    if (!Number.isFinite(b) || b <= 0) continue;
    sumInverse += 1 / Math.min(1, b);
    n += 1;
  }
  return n === 0 ? 1 : n / sumInverse;
}

function clamp(x: number, lo: number, hi: number): number {
  return Math.min(hi, Math.max(lo, x));
}

/** Balancedness clamped to [0.05, 1]; a non-number (unknown) counts as 1, so callers that know
 * nothing about placement get the optimistic model and the calibration absorbs the difference. */
export function sanitizeBalancedness(b: number): number {
  return Number.isFinite(b) ? clamp(b, 0.05, 1) : 1;
}

/** Effective token capacity of one GPU, tokens/s at rho = 1. */
export function effectiveGpuCapacity(
  params: LatencyModelParams,
  conditions: Pick<LatencyConditions, "crossNodeShare" | "redundantExpertsPerGpu">,
  correction: LatencyCorrection = IDENTITY_CORRECTION,
): number {
  const cross = Number.isFinite(conditions.crossNodeShare) ? clamp(conditions.crossNodeShare, 0, 1) : 0;
  const redundant = Math.max(0, conditions.redundantExpertsPerGpu ?? 0);
  const memoryFactor =
    params.kvCacheMemoryGb > 0
      ? clamp(1 - (redundant * params.redundantExpertMemoryGb) / params.kvCacheMemoryGb, 0.1, 1)
      : 1;
  return (
    (params.tokensPerSecondPerGpu * correction.capacityScale * memoryFactor) /
    (1 + cross * params.crossNodeCapacityPenalty)
  );
}

/** Utilisation of the hottest GPU at model-nominal capacity (correction applied). */
export function hottestGpuUtilization(
  params: LatencyModelParams,
  c: LatencyConditions,
  correction: LatencyCorrection = IDENTITY_CORRECTION,
): number {
  if (c.gpuCount <= 0) return c.tokensPerSecond > 0 ? Infinity : 0;
  const hottestLoad = Math.max(0, c.tokensPerSecond) / (c.gpuCount * sanitizeBalancedness(c.balancedness));
  return hottestLoad / effectiveGpuCapacity(params, c, correction);
}

/** Zero-load latency including the cross-node hop, before the calibration's latencyScale. */
export function unloadedLatencyMs(params: LatencyModelParams, crossNodeShare: number): number {
  const cross = Number.isFinite(crossNodeShare) ? clamp(crossNodeShare, 0, 1) : 0;
  return params.baseLatencyMs + cross * params.crossNodeHopMs;
}

/** The queueing curve as a function of utilisation: 1 at rho = 0, Infinity at rho >= 1. */
export function queueingMultiplier(queueingFactor: number, rho: number): number {
  if (!(rho < 1)) return Infinity;
  const r = Math.max(0, rho);
  return 1 + queueingFactor * (r / (1 - r));
}

/** Predicted p99 latency in ms; Infinity when the hottest GPU is saturated. */
export function predictP99LatencyMs(
  params: LatencyModelParams,
  c: LatencyConditions,
  correction: LatencyCorrection = IDENTITY_CORRECTION,
): number {
  const rho = hottestGpuUtilization(params, c, correction);
  return (
    correction.latencyScale *
    unloadedLatencyMs(params, c.crossNodeShare) *
    queueingMultiplier(params.queueingFactor, rho)
  );
}

export interface RequiredGpusResult {
  /** Fewest GPUs (a multiple of gpuStep, at most searchLimitGpus) meeting the target; undefined when none does. */
  readonly gpuCount: number | undefined;
  /** Predicted p99 at gpuCount (or at searchLimitGpus when infeasible). */
  readonly predictedP99Ms: number;
}

/**
 * The fewest GPUs whose predicted p99 is <= targetP99Ms. Predicted latency is non-increasing in
 * gpuCount, so this is a binary search over multiples of gpuStep in [gpuStep, searchLimitGpus].
 * Zero load needs zero GPUs from the SLO's point of view (bounds apply elsewhere).
 */
export function requiredGpusForTarget(
  params: LatencyModelParams,
  conditions: Omit<LatencyConditions, "gpuCount">,
  targetP99Ms: number,
  options: { readonly gpuStep?: number; readonly searchLimitGpus: number; readonly correction?: LatencyCorrection },
): RequiredGpusResult {
  const step = Math.max(1, Math.floor(options.gpuStep ?? 1));
  const correction = options.correction ?? IDENTITY_CORRECTION;
  const predictAt = (gpuCount: number): number => predictP99LatencyMs(params, { ...conditions, gpuCount }, correction);
  if (!(conditions.tokensPerSecond > 0)) {
    return {
      gpuCount: 0,
      predictedP99Ms: correction.latencyScale * unloadedLatencyMs(params, conditions.crossNodeShare),
    };
  }
  const maxUnits = Math.max(1, Math.floor(options.searchLimitGpus / step));
  const worst = predictAt(maxUnits * step);
  if (!(worst <= targetP99Ms)) return { gpuCount: undefined, predictedP99Ms: worst };
  let lo = 1;
  let hi = maxUnits;
  while (lo < hi) {
    const mid = Math.floor((lo + hi) / 2);
    if (predictAt(mid * step) <= targetP99Ms) hi = mid;
    else lo = mid + 1;
  }
  return { gpuCount: lo * step, predictedP99Ms: predictAt(lo * step) };
}
