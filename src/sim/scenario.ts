// A scenario: a trace scaled to a fleet size, turned into per-second work, plus the simulator
// configuration. Shared by the CLI, the benchmark and tests.

import type { LatencyMetric } from "../domain/latency/model.ts";
import type { CapacityPolicyInput } from "../domain/capacity/index.ts";
import { buildWorkSeries, traceLoad } from "./arrivals.ts";
import { MODEL_PRESETS } from "./experts.ts";
import { DEFAULT_COLD_START, DEFAULT_SIM_SETTINGS, runSimulation } from "./runner.ts";
import type { ColdStartDistribution, Progress, SimConfig, SimResult } from "./runner.ts";
import type { Trace } from "./traces.ts";
import { defaultGroundTruthParams, defaultSloMs } from "./truth.ts";
import type { GroundTruthParams } from "./truth.ts";
import type { LoadSeries, PolicyName, WorkSeries } from "./types.ts";
import { POLICY_NAMES } from "./types.ts";

export interface ScenarioOptions {
  readonly metric?: LatencyMetric;
  readonly sloMs?: number;
  readonly preset?: string;
  readonly usdPerGpuHour?: number;
  readonly seed?: number;
  /** Scale the trace so its peak minute needs about this many GPUs (ignored when scale is given). */
  readonly peakGpus?: number;
  /** Explicit multiplier of the trace's rate / token volume. */
  readonly scale?: number;
  /** Inter-arrival CV for rate series. */
  readonly arrivalCv?: number;
  /** Replay rate series as steps (default: linear between window centres). */
  readonly rateSteps?: boolean;
  readonly policies?: readonly PolicyName[];
  readonly maxGpus?: number;
  readonly minGpus?: number;
  readonly coldStart?: Partial<ColdStartDistribution>;
  readonly truth?: Partial<GroundTruthParams>;
  readonly ours?: Partial<CapacityPolicyInput>;
  /** Leading seconds not scored (default: 10 % of the replay, at most 30 min). */
  readonly warmupS?: number;
  /** Seconds of trace history the adaptive policies see before t = 0 (SimConfig.initialHistoryS); default 0. */
  readonly initialHistoryS?: number;
  /** Only replay the first this many seconds. */
  readonly maxSeconds?: number;
}

export interface Scenario {
  readonly trace: Trace;
  readonly scale: number;
  readonly arrivalCv: number;
  readonly load: LoadSeries;
  readonly work: WorkSeries;
  readonly config: SimConfig;
}

/** Utilisation of a GPU at the "needs N GPUs" sizing point (balancedness ~0.8 x utilisation ~0.7). */
const SIZING_UTILISATION = 0.55;

function workTokensPerRequest(trace: Trace, metric: LatencyMetric): number {
  if (trace.kind === "rate") return metric === "ttft" ? trace.meanInputTokens : trace.meanOutputTokens;
  return 0;
}

/** Scale so that the peak minute's work needs about peakGpus GPUs. */
export function scaleForPeakGpus(trace: Trace, metric: LatencyMetric, truth: GroundTruthParams, peakGpus: number): number {
  let peakTokensPerSecond = 0;
  if (trace.kind === "rate") {
    const perReq = workTokensPerRequest(trace, metric);
    for (const r of trace.ratePerS) peakTokensPerSecond = Math.max(peakTokensPerSecond, r * perReq);
  } else {
    const work = buildWorkSeries(traceLoad(trace, { seed: 0, cv: 1, scale: 1 }), metric);
    for (let a = 0; a < work.seconds; a += 60) {
      const b = Math.min(work.seconds, a + 60);
      peakTokensPerSecond = Math.max(peakTokensPerSecond, ((work.tokensPrefix[b] as number) - (work.tokensPrefix[a] as number)) / (b - a));
    }
  }
  if (!(peakTokensPerSecond > 0)) return 1;
  return (peakGpus * truth.tokensPerSecondPerGpu * SIZING_UTILISATION) / peakTokensPerSecond;
}

function truncate(load: LoadSeries, maxSeconds: number | undefined): LoadSeries {
  if (maxSeconds === undefined || maxSeconds >= load.seconds) return load;
  const n = Math.max(0, Math.floor(maxSeconds));
  return {
    seconds: n,
    startEpochMs: load.startEpochMs,
    requests: load.requests.slice(0, n),
    inputTokens: load.inputTokens.slice(0, n),
    outputTokens: load.outputTokens.slice(0, n),
  };
}

export function prepareScenario(trace: Trace, options: ScenarioOptions = {}): Scenario {
  const metric = options.metric ?? "perTokenLatency";
  const truth: GroundTruthParams = { ...defaultGroundTruthParams(metric), ...options.truth };
  const presetName = options.preset ?? "deepseek-v3";
  const shape = MODEL_PRESETS[presetName];
  if (shape === undefined) {
    throw new Error(`unknown model preset "${presetName}" (known: ${Object.keys(MODEL_PRESETS).join(", ")})`, { cause: new Error("preset") });
  }
  const seed = options.seed ?? 1;
  const arrivalCv = options.arrivalCv ?? 2;
  const scale = options.scale ?? scaleForPeakGpus(trace, metric, truth, options.peakGpus ?? 200);
  const load = truncate(traceLoad(trace, { seed, cv: arrivalCv, scale, rateSteps: options.rateSteps }), options.maxSeconds);
  const work = buildWorkSeries(load, metric);
  const peak = options.peakGpus ?? 200;
  const config: SimConfig = {
    metric,
    sloMs: options.sloMs ?? defaultSloMs(metric),
    usdPerGpuHour: options.usdPerGpuHour ?? 2,
    seed,
    shape,
    truth,
    minGpus: options.minGpus,
    maxGpus: options.maxGpus ?? Math.max(64, Math.ceil(peak * 3)),
    coldStart: { ...DEFAULT_COLD_START, ...options.coldStart },
    ...DEFAULT_SIM_SETTINGS,
    policies: options.policies ?? POLICY_NAMES,
    warmupS: options.warmupS ?? Math.min(1800, Math.floor(load.seconds / 600) * 60),
    ours: options.ours,
    initialHistoryS: options.initialHistoryS,
  };
  return { trace, scale, arrivalCv, load, work, config };
}

export function runScenario(s: Scenario, onProgress?: (p: Progress) => void): SimResult {
  return runSimulation(s.work, s.load, s.config, onProgress);
}
