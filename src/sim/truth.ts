// Ground truth: a 1-second discrete-time queueing model of continuous batching on the hottest GPU.
//
// Written independently of src/domain/latency (which the policy uses): the only thing the two share
// is the idea that the hottest GPU sets the pace. Here, each second the hottest GPU (share
// 1 / (N * balancedness) of the fleet's tokens) must process its backlog plus the new arrivals. A
// batching step of B tokens takes stepBase + B / capacity seconds (Vidur/Sarathi-style linear step
// time), so finishing x tokens within the second needs B = x * stepBase / (1 - x / capacity); when
// that exceeds the batch cap (KV-cache memory) the GPU runs full batches and the rest waits in a
// backlog carried to the next second. A token's latency is the step time, plus the cross-node hop,
// plus the queue wait (all of it for TTFT, amortised over the output length for per-token latency,
// none for ITL), times the request-mix tail (p99 of a per-request log-normal) and a small
// per-second log-normal jitter (system noise). The per-minute p99 and p90 are
// token-weighted quantiles over the minute's seconds. Parameters are perturbed from the policy
// model's defaults (capacity ~9 % lower, different base latency and hop cost, a batch cap).

import type { LatencyMetric } from "../domain/latency/model.ts";

export interface GroundTruthParams {
  /** Fixed cost of one batching step (ms). */
  readonly stepBaseMs: number;
  /** Tokens/s one GPU reaches with unbounded batches (1 / marginal cost per token). */
  readonly tokensPerSecondPerGpu: number;
  /** Largest batch per step per GPU (tokens), from KV-cache memory. */
  readonly maxBatchTokensPerGpu: number;
  /** Latency added when all expert traffic crosses nodes (ms, scaled by the cross-node share). */
  readonly crossNodeHopMs: number;
  /** Capacity lost when all expert traffic crosses nodes (scaled by the cross-node share). */
  readonly crossNodeCapacityPenalty: number;
  /** Sigma of the per-second log-normal latency jitter (system noise: stalls, preemption). */
  readonly jitterSigma: number;
  /** Sigma of the per-request log-normal spread (request mix); the tail multiplier exp(2.326 sigma) applies to every second. */
  readonly requestSigma: number;
  /** How much of the queue wait the metric sees: 1 = all (TTFT), "perOutputToken" = wait / mean output tokens, 0 = none (ITL). */
  readonly waitWeight: number | "perOutputToken";
}

/** DeepSeek-calibrated defaults, perturbed from the policy model (see docs/adr/0004-simulator.md). */
export function defaultGroundTruthParams(metric: LatencyMetric): GroundTruthParams {
  switch (metric) {
    case "ttft":
      return {
        stepBaseMs: 180,
        tokensPerSecondPerGpu: 10_400,
        maxBatchTokensPerGpu: 16_384,
        crossNodeHopMs: 30,
        crossNodeCapacityPenalty: 0.1,
        jitterSigma: 0.05,
        requestSigma: 0.2,
        waitWeight: 1,
      };
    case "itl":
      return {
        stepBaseMs: 13,
        tokensPerSecondPerGpu: 2_100,
        maxBatchTokensPerGpu: 256,
        crossNodeHopMs: 3,
        crossNodeCapacityPenalty: 0.1,
        jitterSigma: 0.03,
        requestSigma: 0.1,
        waitWeight: 0,
      };
    case "perTokenLatency":
      return {
        stepBaseMs: 13,
        tokensPerSecondPerGpu: 2_100,
        maxBatchTokensPerGpu: 256,
        crossNodeHopMs: 3,
        crossNodeCapacityPenalty: 0.1,
        jitterSigma: 0.03,
        requestSigma: 0.1,
        waitWeight: "perOutputToken",
      };
  }
}

/** Default p99 SLO per metric (ms). */
export function defaultSloMs(metric: LatencyMetric): number {
  switch (metric) {
    case "ttft":
      return 2_000;
    case "itl":
      return 50;
    case "perTokenLatency":
      return 60;
  }
}

/** Mutable per-fleet queue state. */
export interface QueueState {
  /** Fleet tokens waiting (not yet processed). */
  backlogTokens: number;
}

export interface SecondConditions {
  readonly readyGpus: number;
  readonly balancedness: number;
  readonly crossNodeShare: number;
}

/**
 * Advance one second; returns the latency (ms) the second's tokens see, before jitter.
 * Infinity when no GPU can serve (no ready GPU, or the placement cannot hold the experts).
 */
export function stepSecond(
  p: GroundTruthParams,
  waitWeight: number,
  state: QueueState,
  arrivingTokens: number,
  c: SecondConditions,
): number {
  const total = state.backlogTokens + arrivingTokens;
  if (!(c.readyGpus > 0) || !(c.balancedness > 0)) {
    state.backlogTokens = total;
    return total > 0 ? Infinity : 0;
  }
  const share = 1 / (c.readyGpus * Math.min(1, c.balancedness));
  const capacity = p.tokensPerSecondPerGpu / (1 + p.crossNodeCapacityPenalty * c.crossNodeShare);
  const kappa = 1 / capacity; // s per token
  const tau0 = p.stepBaseMs / 1000;
  const x = total * share; // tokens the hottest GPU must process this second
  const bMax = p.maxBatchTokensPerGpu;
  const fullThroughput = bMax / (tau0 + kappa * bMax); // tokens/s at full batches
  let stepS: number;
  let waitS = 0;
  const needed = x * kappa < 1 ? (x * tau0) / (1 - x * kappa) : Infinity;
  if (needed <= bMax) {
    stepS = tau0 + kappa * needed;
    state.backlogTokens = 0;
  } else {
    stepS = tau0 + kappa * bMax;
    const leftHot = x - fullThroughput;
    state.backlogTokens = leftHot / share;
    waitS = leftHot / fullThroughput;
  }
  return stepS * 1000 + p.crossNodeHopMs * c.crossNodeShare + waitWeight * waitS * 1000;
}

/** Latency multiplier of one second: request-mix tail times that second's system jitter (z ~ N(0, 1)). */
export function latencyMultiplier(p: GroundTruthParams, z: number): number {
  return Math.exp(2.326 * p.requestSigma + p.jitterSigma * z);
}

/** Resolve the wait weight for a trace (per-token latency amortises the wait over the mean output). */
export function resolveWaitWeight(p: GroundTruthParams, meanOutputTokens: number): number {
  if (p.waitWeight === "perOutputToken") return 1 / Math.max(1, meanOutputTokens);
  return p.waitWeight;
}

/**
 * Token-weighted quantile q of values (weights >= 0). NaN when the total weight is 0. Sorts a copy
 * of the first n entries of the scratch arrays.
 */
export function weightedQuantile(
  values: Float64Array,
  weights: Float64Array,
  n: number,
  q: number,
  order: Int32Array,
): number {
  let total = 0;
  for (let i = 0; i < n; i++) total += weights[i] as number;
  if (!(total > 0)) return NaN;
  for (let i = 0; i < n; i++) order[i] = i;
  // Insertion sort: n is 60.
  for (let i = 1; i < n; i++) {
    const k = order[i] as number;
    const v = values[k] as number;
    let j = i - 1;
    while (j >= 0 && (values[order[j] as number] as number) > v) {
      order[j + 1] = order[j] as number;
      j--;
    }
    order[j + 1] = k;
  }
  const target = q * total;
  let acc = 0;
  for (let i = 0; i < n; i++) {
    const k = order[i] as number;
    acc += weights[k] as number;
    if (acc >= target - 1e-9 * total) return values[k] as number;
  }
  return values[order[n - 1] as number] as number;
}

/** Collects one minute of per-second latencies and yields its p99 / p90. */
export class MinuteAggregator {
  private readonly values = new Float64Array(60);
  private readonly weights = new Float64Array(60);
  private readonly order = new Int32Array(60);
  private n = 0;

  add(latencyMs: number, tokens: number): void {
    this.values[this.n] = latencyMs;
    this.weights[this.n] = tokens;
    this.n++;
  }

  /** [p99, p90] of the minute so far and reset. NaN without traffic. */
  flush(): [number, number] {
    const p99 = weightedQuantile(this.values, this.weights, this.n, 0.99, this.order);
    const p90 = weightedQuantile(this.values, this.weights, this.n, 0.9, this.order);
    this.n = 0;
    return [p99, p90];
  }
}
