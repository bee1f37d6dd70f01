// The replay: one shared world (work per second, latency jitter, drifting heat, cold-start delays)
// and, per policy, a fleet with cold starts driven by that policy on its own cadence from delayed,
// noisy observations. Ground truth runs in 1 s steps; SLO attainment is judged per minute.

import { createRng, seedFrom, type Rng } from "../domain/rng.ts";
import { defaultLatencyModelParams } from "../domain/latency/model.ts";
import type { LatencyMetric } from "../domain/latency/model.ts";
import type { CapacityPolicyInput } from "../domain/capacity/index.ts";
import { TieredFleet } from "./coldstart.ts";
import type { LoadTierConfig, LoadTierStats, SimFleet } from "./coldstart.ts";
import { ExpertFleetModel, minGpusForShape } from "./experts.ts";
import type { ModelShape } from "./experts.ts";
import { computeRequirement, planOracle } from "./oracle.ts";
import {
  createHpaPolicy,
  createKpaPolicy,
  createOursPolicy,
  createSchedulePolicy,
  createSloKedaPolicy,
  createBaselineAt,
  createStaticPolicy,
  scheduleInitialGpus,
  staticPeakGpus,
  TUNED_BASELINES,
  TUNING_GRIDS,
} from "./policies.ts";
import type { OursDecisionObserver, PolicyContext, TunedBaselineName } from "./policies.ts";
import { observedLoadFactor, visibleScrapeEndS } from "./stress.ts";
import type { ObservationFaults } from "./stress.ts";
import { groupQuantiser, slowestOfColdStartMeanS } from "./groups.ts";
import type { GroupQuantiser, GroupShape } from "./groups.ts";
import { latencyMultiplier, MinuteAggregator, resolveWaitWeight, stepSecond } from "./truth.ts";
import type { GroundTruthParams, QueueState } from "./truth.ts";
import type { LoadSeries, Observation, PolicyName, ScalingPolicy, WorkSeries } from "./types.ts";

export interface ColdStartDistribution {
  /** Median start-to-Ready (s). */
  readonly medianS: number;
  /** Sigma of the log-normal. */
  readonly sigma: number;
  readonly minS: number;
  readonly maxS: number;
}

/** Public reports: large-model pods take 2-8+ minutes to Ready. Median 4 min, p99 ~8 min. */
export const DEFAULT_COLD_START: ColdStartDistribution = { medianS: 240, sigma: 0.3, minS: 90, maxS: 900 };

export function coldStartMeanS(c: ColdStartDistribution): number {
  return Math.min(c.maxS, Math.max(c.minS, c.medianS * Math.exp((c.sigma * c.sigma) / 2)));
}

export function coldStartQuantileS(c: ColdStartDistribution, z: number): number {
  return Math.min(c.maxS, Math.max(c.minS, c.medianS * Math.exp(c.sigma * z)));
}

export interface SimConfig {
  readonly metric: LatencyMetric;
  readonly sloMs: number;
  readonly usdPerGpuHour: number;
  readonly seed: number;
  readonly shape: ModelShape;
  readonly truth: GroundTruthParams;
  readonly minGpus?: number;
  /** Upper bound of every policy and of the oracle's search. */
  readonly maxGpus: number;
  readonly coldStart: ColdStartDistribution;
  readonly scrapeIntervalS: number;
  readonly scrapeDelayS: number;
  /** Relative sd of the scraped load rates. */
  readonly loadNoise: number;
  /** Relative sd of the scraped latency quantiles (histogram buckets). */
  readonly latencyNoise: number;
  readonly policies: readonly PolicyName[];
  /**
   * Leading seconds replayed but not scored (cost and SLO), for every policy alike: the policies'
   * learned state (calibration, windows) starts empty, a running cluster's would not. Whole minutes.
   */
  readonly warmupS?: number;
  /**
   * Seconds of history every adaptive policy has seen before t = 0: it is fed the load of the
   * trace's first initialHistoryS seconds, time-shifted to end at t = 0, with its fleet held at the
   * starting size (what it asks for then is ignored). 0 (default): no history, the realistic case
   * for a new deployment or the first minutes of a replay. Whole scrape intervals.
   */
  readonly initialHistoryS?: number;
  /** Overrides of the operator's capacity policy (e.g. schedules, forecast). */
  readonly ours?: Partial<CapacityPolicyInput>;
  readonly oursIntervalS?: number;
  /** Called with every decision of "ours" (diagnostics; does not change the replay). */
  readonly onOursDecision?: OursDecisionObserver;
  /**
   * Replay hpa, kpa and slo-keda at every point of their tuning grid (TUNING_GRIDS) and report the
   * cheapest point reaching 99.5 % as their row (default true); false runs each once at its
   * defaults (hpa / kpa at the hindsight utilisation target).
   */
  readonly tuneBaselines?: boolean;
  /** Metrics outages and outlier scrapes the policies see (the stress suite); the load is unchanged. */
  readonly observationFaults?: ObservationFaults;
  /**
   * Cold-start load tiers and staging (src/sim/coldstart.ts, ADR 0019): a new GPU's cold start is the
   * engine start plus its shard's bytes over its tier's bandwidth, times the shared noise (sigma and
   * clamps of coldStart). Undefined (default): the log-normal of coldStart, no tiers.
   */
  readonly loadTiers?: LoadTierConfig;
  /** The oracle's cold start (s); default the mean of coldStart (in group mode, of a group's slowest pod). */
  readonly oracleColdStartS?: number;
  /**
   * Group mode (WideEP, ADR 0021): every policy's count, the bounds, the requirement and the oracle
   * move in whole groups of nodesPerGroup x gpusPerNode GPUs, rounded up by the operator's rounding
   * (src/domain/wideep/groups.ts); "ours" runs the operator's WideEP count (decideGroupCount). A
   * group starts nodesPerGroup pods, each drawing the next cold start of the shared sequence, and is
   * Ready (all its GPUs at once) when its slowest pod is. Not combinable with loadTiers.
   */
  readonly group?: GroupShape;
}

/** One grid point of a tuned baseline. */
export interface TunedPoint {
  readonly knob: number;
  readonly result: PolicyResult;
}

export interface TunedBaseline {
  readonly name: TunedBaselineName;
  readonly points: readonly TunedPoint[];
  /** The knob of the point reported as the policy's row. */
  readonly chosenKnob: number;
}

/** Share of minutes the baselines' rows are tuned to reach. */
export const TUNING_TARGET_ATTAINMENT = 0.995;

/** The cheapest point reaching the attainment, or (none does) the highest attainment, cheapest on ties. */
export function pickTunedPoint(
  points: readonly TunedPoint[],
  attainment: number,
): { readonly point: TunedPoint; readonly reached: boolean } | undefined {
  let best: TunedPoint | undefined;
  for (const p of points)
    if (
      p.result.sloAttainment >= attainment - 1e-12 &&
      (best === undefined || p.result.gpuHours < best.result.gpuHours)
    )
      best = p;
  if (best !== undefined) return { point: best, reached: true };
  for (const p of points) {
    if (
      best === undefined ||
      p.result.sloAttainment > best.result.sloAttainment ||
      (p.result.sloAttainment === best.result.sloAttainment && p.result.gpuHours < best.result.gpuHours)
    )
      best = p;
  }
  return best === undefined ? undefined : { point: best, reached: false };
}

export const DEFAULT_SIM_SETTINGS = {
  scrapeIntervalS: 15,
  scrapeDelayS: 30,
  loadNoise: 0.03,
  latencyNoise: 0.05,
} as const;

export interface PolicyResult {
  readonly name: PolicyName;
  readonly gpuHours: number;
  readonly costUsd: number;
  readonly minutes: number;
  readonly minutesMet: number;
  /** minutesMet / minutes (minutes without traffic count as met). */
  readonly sloAttainment: number;
  readonly violatedMinutes: number;
  /** Violated minutes while ordered capacity would have sufficed but was still warming. */
  readonly coldStartViolationMinutes: number;
  /** Violated minutes inside predictable ramps (daily-recurring rises of the requirement). */
  readonly predictableBurstViolationMinutes: number;
  readonly worstP99Ms: number;
  /** 99th percentile over minutes of the per-minute p99. */
  readonly p99OfMinuteP99Ms: number;
  readonly meanGpus: number;
  readonly peakGpus: number;
  readonly scaleUps: number;
  readonly scaleDowns: number;
  readonly coldStarts: number;
  /** GPU-minutes provisioned above 1.5 x the per-minute requirement (scored minutes). */
  readonly overshootGpuMinutes: number;
  /** Cold starts per load tier and staging cost (whole replay), with SimConfig.loadTiers only. */
  readonly loadTiers?: LoadTierStats;
}

/** Provisioning above this multiple of the per-minute requirement counts as overshoot. */
export const OVERSHOOT_FACTOR = 1.5;

export interface PolicyTimeline {
  readonly name: PolicyName;
  /** Mean provisioned GPUs per minute. */
  readonly gpus: Float32Array;
  readonly p99Ms: Float32Array;
}

export interface SimResult {
  readonly seconds: number;
  readonly minutes: number;
  readonly requirement: Int32Array;
  readonly unattainableMinutes: number;
  /** 1 for each minute no count up to maxGpus meets the SLO in. */
  readonly unattainable: Uint8Array;
  readonly predictableMinutes: number;
  readonly staticGpus: number;
  readonly minGpus: number;
  readonly maxGpus: number;
  readonly oracleColdStartS: number;
  /** Utilisation target given to hpa and kpa (see tunedUtilizationTarget). */
  readonly tunedUtilization: number;
  readonly results: readonly PolicyResult[];
  readonly timelines: readonly PolicyTimeline[];
  /** Mean work tokens/s per minute. */
  readonly loadPerMinute: Float32Array;
  /** Every grid point of hpa, kpa and slo-keda (empty unless config.tuneBaselines). */
  readonly tuned: readonly TunedBaseline[];
}

export interface Progress {
  readonly phase: "requirement" | "policy";
  readonly policy?: PolicyName;
  /** 0..1 within the phase (or policy). */
  readonly fraction: number;
}

/** Half-width (minutes) of the centred median that smooths the requirement before ramp detection. */
export const RAMP_SMOOTHING_HALF_WIDTH_MIN = 5;

/**
 * Per-minute flag of predictable ramps: the requirement, smoothed by a centred 11-minute median, is
 * >= 15 % above its low over the previous 30 minutes, and was so (smoothed) within 15 minutes of the
 * same time the day before. The median keeps single-minute spikes of the requirement (a minute whose
 * worst seconds were unlucky, which no policy can see coming) from counting as ramps: on ServeGen
 * such spikes alone exceed 15 % of the 30-minute low in about 1 % of minutes, and they recur "the day
 * before" by chance, so without smoothing most flagged minutes were noise, not daily ramps.
 */
export function predictableRampMinutes(req: Int32Array): Uint8Array {
  const n = req.length;
  const h = RAMP_SMOOTHING_HALF_WIDTH_MIN;
  const smooth = new Float64Array(n);
  const window: number[] = [];
  for (let m = 0; m < n; m++) {
    window.length = 0;
    for (let k = Math.max(0, m - h); k <= Math.min(n - 1, m + h); k++) window.push(req[k] as number);
    window.sort((a, b) => a - b);
    smooth[m] = window[(window.length - 1) >> 1] as number;
  }
  const ramp = new Uint8Array(n);
  for (let m = 0; m < n; m++) {
    let low = Infinity;
    for (let k = Math.max(0, m - 30); k <= m; k++) low = Math.min(low, smooth[k] as number);
    if ((smooth[m] as number) >= 1.15 * low && (smooth[m] as number) > low) ramp[m] = 1;
  }
  const out = new Uint8Array(n);
  for (let m = 1440; m < n; m++) {
    if (ramp[m] !== 1) continue;
    for (let k = m - 1440 - 15; k <= m - 1440 + 15; k++) {
      if (k >= 0 && ramp[k] === 1) {
        out[m] = 1;
        break;
      }
    }
  }
  return out;
}

/**
 * The utilisation target a careful user would tune a utilisation autoscaler to, in hindsight: the
 * 5th percentile, over minutes whose requirement is above the floor, of the utilisation (of the
 * nominal per-GPU saturation) at which the minute just meets the SLO. At that target ~95 % of
 * minutes would meet the SLO in steady state.
 */
export function tunedUtilizationTarget(
  loadPerMinute: Float32Array,
  requirement: Int32Array,
  minGpus: number,
  nominalTokensPerSecondPerGpu: number,
): number {
  const u: number[] = [];
  for (let m = 0; m < requirement.length; m++) {
    const r = requirement[m] as number;
    const l = loadPerMinute[m] as number;
    if (r > minGpus && l > 0) u.push(l / (r * nominalTokensPerSecondPerGpu));
  }
  if (u.length === 0) return 0.5;
  u.sort((a, b) => a - b);
  return Math.max(0.05, u[Math.floor(0.05 * (u.length - 1))] as number);
}

/** How a fleet starts capacity: units of `gpus` GPUs, each Ready after the slowest of `draws` cold starts. */
export interface StartUnit {
  readonly gpus: number;
  readonly draws: number;
}

/**
 * A fleet whose new GPUs become Ready after a cold start drawn from a shared sequence. With a start
 * unit (group mode) capacity moves in whole units: a unit draws `draws` delays (one per pod), becomes
 * Ready with all its GPUs when the slowest is, and counts as one cold start with one duration.
 * Desired counts are whole units (the runner rounds them).
 */
export class ColdStartFleet implements SimFleet {
  provisioned: number;
  ready: number;
  private pendingReadyAt: number[] = [];
  private pendingStart: number[] = [];
  private readonly delays: () => number;
  private readonly unit: StartUnit;
  completedDurationsMs: number[] = [];
  coldStarts = 0;
  constructor(initial: number, delays: () => number, unit: StartUnit = { gpus: 1, draws: 1 }) {
    this.provisioned = initial;
    this.ready = initial;
    this.delays = delays;
    this.unit = unit;
  }
  private unitDelay(): number {
    let d = this.delays();
    for (let i = 1; i < this.unit.draws; i++) d = Math.max(d, this.delays());
    return d;
  }
  setDesired(desired: number, nowS: number): void {
    const u = this.unit.gpus;
    if (desired > this.provisioned) {
      for (let k = this.provisioned; k < desired; k += u) {
        const readyAt = nowS + this.unitDelay();
        // Keep pending sorted by ready time.
        let i = this.pendingReadyAt.length;
        while (i > 0 && (this.pendingReadyAt[i - 1] as number) > readyAt) i--;
        this.pendingReadyAt.splice(i, 0, readyAt);
        this.pendingStart.splice(i, 0, nowS);
        this.coldStarts++;
      }
      this.provisioned = desired;
    } else if (desired < this.provisioned) {
      let remove = Math.ceil((this.provisioned - desired) / u);
      // Cancel the units furthest from Ready first, then release Ready ones.
      while (remove > 0 && this.pendingReadyAt.length > 0) {
        this.pendingReadyAt.pop();
        this.pendingStart.pop();
        remove--;
      }
      this.ready -= remove * u;
      this.provisioned = desired;
    }
  }
  advance(nowS: number): void {
    while (this.pendingReadyAt.length > 0 && (this.pendingReadyAt[0] as number) <= nowS) {
      const at = this.pendingReadyAt.shift() as number;
      const start = this.pendingStart.shift() as number;
      this.ready += this.unit.gpus;
      this.completedDurationsMs.push((at - start) * 1000);
    }
  }
}

interface World {
  readonly work: WorkSeries;
  readonly load: LoadSeries;
  readonly jitter: Float32Array;
  readonly experts: ExpertFleetModel;
  readonly waitWeight: number;
}

function makePolicy(name: Exclude<PolicyName, "oracle">, ctx: PolicyContext, config: SimConfig): ScalingPolicy {
  switch (name) {
    case "ours":
      return createOursPolicy(ctx, config.ours ?? {}, config.oursIntervalS ?? 30, config.onOursDecision, config.group);
    case "static":
      return createStaticPolicy(ctx);
    case "schedule":
      return createSchedulePolicy(ctx);
    case "hpa":
      return createHpaPolicy(ctx);
    case "kpa":
      return createKpaPolicy(ctx);
    case "slo-keda":
      return createSloKedaPolicy(ctx);
  }
}

interface Accumulated {
  result: PolicyResult;
  timeline: PolicyTimeline;
}

function finishResult(
  name: PolicyName,
  config: SimConfig,
  gpuSeconds: number,
  minuteP99: Float64Array,
  minuteGpus: Float32Array,
  violatedFlags: Uint8Array,
  coldStartFlags: Uint8Array,
  predictable: Uint8Array,
  counts: { scaleUps: number; scaleDowns: number; coldStarts: number; peakGpus: number },
  warmupMinutes: number,
  requirement: Int32Array,
): Accumulated {
  const allMinutes = minuteP99.length;
  let overshoot = 0;
  for (let m = warmupMinutes; m < allMinutes; m++)
    overshoot += Math.max(0, (minuteGpus[m] as number) - OVERSHOOT_FACTOR * (requirement[m] as number));
  const minutes = Math.max(0, allMinutes - warmupMinutes);
  let violated = 0;
  let coldViol = 0;
  let predViol = 0;
  let worst = 0;
  const p99s: number[] = [];
  for (let m = warmupMinutes; m < allMinutes; m++) {
    const v = minuteP99[m] as number;
    if (Number.isFinite(v) || v === Infinity) {
      worst = Math.max(worst, v);
      p99s.push(v);
    }
    if (violatedFlags[m] === 1) {
      violated++;
      if (coldStartFlags[m] === 1) coldViol++;
      if (predictable[m] === 1) predViol++;
    }
  }
  p99s.sort((a, b) => a - b);
  const p99OfP99 =
    p99s.length === 0 ? 0 : (p99s[Math.min(p99s.length - 1, Math.floor(0.99 * (p99s.length - 1) + 0.5))] as number);
  const gpuHours = gpuSeconds / 3600;
  const p99f = new Float32Array(allMinutes);
  for (let m = 0; m < allMinutes; m++) p99f[m] = minuteP99[m] as number;
  return {
    result: {
      name,
      gpuHours,
      costUsd: gpuHours * config.usdPerGpuHour,
      minutes,
      minutesMet: minutes - violated,
      sloAttainment: minutes > 0 ? (minutes - violated) / minutes : 1,
      violatedMinutes: violated,
      coldStartViolationMinutes: coldViol,
      predictableBurstViolationMinutes: predViol,
      worstP99Ms: worst,
      p99OfMinuteP99Ms: p99OfP99,
      meanGpus: minutes > 0 ? gpuSeconds / (minutes * 60) : 0,
      peakGpus: counts.peakGpus,
      scaleUps: counts.scaleUps,
      scaleDowns: counts.scaleDowns,
      coldStarts: counts.coldStarts,
      overshootGpuMinutes: overshoot,
    },
    timeline: { name, gpus: minuteGpus, p99Ms: p99f },
  };
}

interface FleetDriver {
  readonly name: PolicyName;
  provisioned(s: number): number;
  ready(s: number): number;
  /** Called once per second before the ground truth step. */
  tick(s: number): void;
  readonly counts: { scaleUps: number; scaleDowns: number; coldStarts: number; peakGpus: number };
}

function runFleet(
  world: World,
  config: SimConfig,
  driver: FleetDriver,
  requirement: Int32Array,
  predictable: Uint8Array,
  minuteP99: Float64Array,
  minuteP90: Float64Array,
  onProgress?: (f: number) => void,
): Accumulated {
  const { work, jitter, experts, waitWeight } = world;
  const seconds = work.seconds;
  const minutes = Math.ceil(seconds / 60);
  const truth = config.truth;
  const state: QueueState = { backlogTokens: 0 };
  const agg = new MinuteAggregator();
  const minuteGpus = new Float32Array(minutes);
  const violated = new Uint8Array(minutes);
  const coldFlags = new Uint8Array(minutes);
  const warmupMinutes = Math.floor((config.warmupS ?? 0) / 60);
  let gpuSeconds = 0;
  let minuteProv = 0;
  let minuteWarming = 0;
  let secsInMinute = 0;
  for (let s = 0; s < seconds; s++) {
    driver.tick(s);
    const ready = driver.ready(s);
    const prov = driver.provisioned(s);
    const q = experts.quality(ready, Math.floor(s / experts.epochS));
    const base = stepSecond(truth, waitWeight, state, work.tokens[s] as number, {
      readyGpus: ready,
      balancedness: q.balancedness,
      crossNodeShare: q.crossNodeShare,
    });
    agg.add(base * latencyMultiplier(truth, jitter[s] as number), work.tokens[s] as number);
    if (s >= warmupMinutes * 60) gpuSeconds += prov;
    minuteProv += prov;
    minuteWarming += prov - ready;
    secsInMinute++;
    if (secsInMinute === 60 || s === seconds - 1) {
      const m = Math.floor(s / 60);
      const [p99, p90] = agg.flush();
      minuteP99[m] = p99;
      minuteP90[m] = p90;
      const meanProv = minuteProv / secsInMinute;
      minuteGpus[m] = meanProv;
      if (p99 > config.sloMs && m >= warmupMinutes) {
        violated[m] = 1;
        if (minuteWarming > 0 && meanProv >= (requirement[m] as number)) coldFlags[m] = 1;
      }
      minuteProv = 0;
      minuteWarming = 0;
      secsInMinute = 0;
      if (onProgress !== undefined && (m & 1023) === 0) onProgress(s / seconds);
    }
  }
  return finishResult(
    driver.name,
    config,
    gpuSeconds,
    minuteP99,
    minuteGpus,
    violated,
    coldFlags,
    predictable,
    driver.counts,
    warmupMinutes,
    requirement,
  );
}

/**
 * Feed a policy the load of the first `historyS` seconds of the trace as if they had happened just
 * before t = 0 (its fleet steady at `gpus`; its asks are ignored). Own rng stream: the replay that
 * follows draws the same numbers with or without history.
 */
function feedInitialHistory(
  policy: ScalingPolicy,
  world: World,
  config: SimConfig,
  gpus: number,
  historyS: number,
): void {
  const { work, load } = world;
  // The placement the starting fleet would have (the first epoch's), as the replay reports it.
  const q = world.experts.quality(gpus, 0);
  const interval = Math.max(1, Math.round(policy.intervalS));
  const windowS = Math.max(1, Math.round(policy.observationWindowS));
  const rng = createRng(((config.seed >>> 0) ^ seedFrom(`history:${policy.name}`)) >>> 0);
  const shiftMs = historyS * 1000;
  for (let s = interval; s <= Math.min(historyS, work.seconds); s += interval) {
    const startS = Math.max(0, s - windowS);
    const tps = ((work.tokensPrefix[s] as number) - (work.tokensPrefix[startS] as number)) / Math.max(1, s - startS);
    const rps =
      ((work.requestsPrefix[s] as number) - (work.requestsPrefix[startS] as number)) / Math.max(1, s - startS);
    const nowMs = load.startEpochMs - shiftMs + s * 1000;
    policy.step(
      {
        nowMs,
        metricsAtMs: nowMs,
        windowMs: (s - startS) * 1000,
        tokensPerSecond: Math.max(0, tps * (1 + config.loadNoise * rng.normal())),
        requestsPerSecond: Math.max(0, rps * (1 + config.loadNoise * rng.normal())),
        observedP99Ms: undefined,
        observedP90Ms: undefined,
        provisionedGpus: gpus,
        readyGpus: gpus,
        warmingGpus: 0,
        balancedness: q.balancedness,
        crossNodeShare: q.crossNodeShare,
        redundantExpertsPerGpu: q.redundantExpertsPerGpu,
        coldStartDurationsMs: [],
        usdPerGpuHour: config.usdPerGpuHour,
      },
      nowMs,
    );
  }
}

/** What every policy's replay shares: the world, the bounds, the true requirement and the baselines' context. */
interface Replay {
  readonly world: World;
  readonly config: SimConfig;
  readonly seconds: number;
  readonly minutes: number;
  readonly rootSeed: number;
  readonly minGpus: number;
  readonly maxGpus: number;
  readonly req: ReturnType<typeof computeRequirement>;
  readonly predictable: Uint8Array;
  readonly predictableMinutes: number;
  readonly loadPerMinute: Float32Array;
  readonly ctx: PolicyContext;
  readonly tunedUtilization: number;
  readonly staticGpus: number;
  readonly initialAdaptive: number;
  /** Rounds a GPU count to whole groups in group mode (identity otherwise). */
  readonly quantise: (gpus: number) => number;
}

function prepareReplay(
  work: WorkSeries,
  load: LoadSeries,
  config: SimConfig,
  onProgress?: (p: Progress) => void,
): Replay {
  const seconds = work.seconds;
  const minutes = Math.ceil(seconds / 60);
  const rootSeed = config.seed >>> 0;
  const jitterRng = createRng((rootSeed ^ seedFrom("jitter")) >>> 0);
  const jitter = new Float32Array(seconds);
  for (let s = 0; s < seconds; s++) jitter[s] = jitterRng.normal();
  const experts = new ExpertFleetModel(config.shape, { seed: (rootSeed ^ seedFrom("heat")) >>> 0 });
  const waitWeight = resolveWaitWeight(config.truth, work.meanOutputTokens);
  const world: World = { work, load, jitter, experts, waitWeight };
  if (config.group !== undefined && config.loadTiers !== undefined)
    throw new Error("group mode (group) and cold-start load tiers (loadTiers) cannot be combined");
  const minAsked = Math.max(config.minGpus ?? 0, minGpusForShape(config.shape));
  const groups: GroupQuantiser = groupQuantiser(minAsked, Math.max(minAsked, config.maxGpus), config.group);
  const { minGpus, maxGpus } = groups;

  const req = computeRequirement(
    {
      work,
      truth: config.truth,
      waitWeight,
      jitter,
      experts,
      sloMs: config.sloMs,
      minGpus,
      maxGpus,
      unit: groups.unit,
    },
    (m, total) => onProgress?.({ phase: "requirement", fraction: m / total }),
  );
  onProgress?.({ phase: "requirement", fraction: 1 });
  const requirement = req.gpus;
  const predictable = predictableRampMinutes(requirement);
  let predictableMinutes = 0;
  for (const p of predictable) predictableMinutes += p;

  const loadPerMinute = new Float32Array(minutes);
  for (let m = 0; m < minutes; m++) {
    const a = m * 60;
    const b = Math.min(seconds, a + 60);
    loadPerMinute[m] = ((work.tokensPrefix[b] as number) - (work.tokensPrefix[a] as number)) / Math.max(1, b - a);
  }
  const nominal = defaultLatencyModelParams(config.metric).tokensPerSecondPerGpu;
  const tunedUtilization = tunedUtilizationTarget(loadPerMinute, requirement, minGpus, nominal);
  const ctx: PolicyContext = {
    metric: config.metric,
    sloMs: config.sloMs,
    minGpus,
    maxGpus,
    usdPerGpuHour: config.usdPerGpuHour,
    nominalTokensPerSecondPerGpu: nominal,
    tunedUtilization,
    requirementPerMinute: requirement,
    unattainablePerMinute: req.unattainable,
    startEpochMs: load.startEpochMs,
    scheduleLeadS: coldStartQuantileS(config.coldStart, 2.326) + 60,
  };
  let initialAdaptive = minGpus;
  for (let m = 0; m < Math.min(minutes, 10); m++) initialAdaptive = Math.max(initialAdaptive, requirement[m] as number);
  return {
    world,
    config,
    seconds,
    minutes,
    rootSeed,
    minGpus,
    maxGpus,
    req,
    predictable,
    predictableMinutes,
    loadPerMinute,
    ctx,
    tunedUtilization,
    staticGpus: staticPeakGpus(ctx),
    initialAdaptive,
    quantise: groups.quantise,
  };
}

/** What an adaptive policy sees at second s: the last visible scrape window, with noise; undefined before the first scrape. */
function observeAt(
  r: Replay,
  fleet: SimFleet,
  obsRng: Rng,
  windowS: number,
  latency: { minuteP99: Float64Array; minuteP90: Float64Array },
  s: number,
): Observation | undefined {
  const {
    config,
    world: { work, load, experts },
  } = r;
  const endS = visibleScrapeEndS(
    config.observationFaults,
    Math.floor((s - config.scrapeDelayS) / config.scrapeIntervalS) * config.scrapeIntervalS,
    config.scrapeIntervalS,
  );
  if (endS <= 0) return undefined; // no scrape yet: the policy cannot act
  const seen = observedLoadFactor(config.observationFaults, endS, config.scrapeIntervalS);
  const startS = Math.max(0, endS - windowS);
  const span = endS - startS;
  const noisy = (x: number, sd: number): number => Math.max(0, x * (1 + sd * obsRng.normal()));
  const tps =
    noisy(((work.tokensPrefix[endS] as number) - (work.tokensPrefix[startS] as number)) / span, config.loadNoise) *
    seen;
  const rps =
    noisy(((work.requestsPrefix[endS] as number) - (work.requestsPrefix[startS] as number)) / span, config.loadNoise) *
    seen;
  const lastMinute = Math.floor(endS / 60) - 1;
  const p99 = lastMinute >= 0 ? (latency.minuteP99[lastMinute] as number) : NaN;
  const p90 = lastMinute >= 0 ? (latency.minuteP90[lastMinute] as number) : NaN;
  const q = experts.quality(fleet.ready, Math.floor(s / experts.epochS));
  const latNoise = config.latencyNoise;
  return {
    nowMs: load.startEpochMs + s * 1000,
    metricsAtMs: load.startEpochMs + endS * 1000,
    windowMs: span * 1000,
    tokensPerSecond: tps,
    requestsPerSecond: rps,
    observedP99Ms: Number.isNaN(p99) ? undefined : Number.isFinite(p99) ? noisy(p99, latNoise) : p99,
    observedP90Ms: Number.isNaN(p90) ? undefined : Number.isFinite(p90) ? noisy(p90, latNoise) : p90,
    provisionedGpus: fleet.provisioned,
    readyGpus: fleet.ready,
    warmingGpus: fleet.provisioned - fleet.ready,
    balancedness: Math.min(1, Math.max(0.01, q.balancedness * (1 + 0.01 * obsRng.normal()))),
    crossNodeShare: q.crossNodeShare,
    redundantExpertsPerGpu: q.redundantExpertsPerGpu,
    coldStartDurationsMs: fleet.completedDurationsMs,
    usdPerGpuHour: config.usdPerGpuHour,
    ...(fleet instanceof TieredFleet && config.loadTiers?.tieredLead !== false
      ? { coldStartsByTier: fleet.completedByTier, nextLoadTier: fleet.tierFor(fleet.provisioned, s) }
      : {}),
  };
}

/** The fleet of one adaptive replay: tiered (SimConfig.loadTiers) or the log-normal one; both draw the k-th start from the same sequence. */
function createFleet(r: Replay, initial: number): SimFleet {
  const delayRng = createRng((r.rootSeed ^ seedFrom("coldstart")) >>> 0);
  const cs = r.config.coldStart;
  const tiers = r.config.loadTiers;
  if (tiers !== undefined) {
    const lo = cs.minS / cs.medianS;
    const hi = cs.maxS / cs.medianS;
    return new TieredFleet(initial, tiers, r.config.shape, () =>
      Math.min(hi, Math.max(lo, Math.exp(cs.sigma * delayRng.normal()))),
    );
  }
  const delays = (): number =>
    Math.round(Math.min(cs.maxS, Math.max(cs.minS, cs.medianS * Math.exp(cs.sigma * delayRng.normal()))));
  const g = r.config.group;
  return new ColdStartFleet(
    initial,
    delays,
    g === undefined ? undefined : { gpus: g.nodesPerGroup * g.gpusPerNode, draws: g.nodesPerGroup },
  );
}

/** Replay one adaptive policy (or static/schedule) on a cold-start fleet. */
function runAdaptive(
  r: Replay,
  name: Exclude<PolicyName, "oracle">,
  policy: ScalingPolicy,
  latency: { minuteP99: Float64Array; minuteP90: Float64Array },
  progress: (f: number) => void,
): Accumulated {
  const { config, ctx, minGpus, maxGpus } = r;
  const initial = r.quantise(
    name === "static"
      ? r.staticGpus
      : name === "schedule"
        ? Math.max(minGpus, scheduleInitialGpus(ctx))
        : r.initialAdaptive,
  );
  const fleet = createFleet(r, initial);
  const historyS = Math.floor((config.initialHistoryS ?? 0) / config.scrapeIntervalS) * config.scrapeIntervalS;
  if (historyS > 0 && name !== "static" && name !== "schedule")
    feedInitialHistory(policy, r.world, config, initial, historyS);
  const obsRng = createRng((r.rootSeed ^ seedFrom(`observe:${name}`)) >>> 0);
  const counts = { scaleUps: 0, scaleDowns: 0, coldStarts: 0, peakGpus: initial };
  const windowS = Math.max(1, Math.round(policy.observationWindowS));
  const interval = Math.max(1, Math.round(policy.intervalS));
  const driver: FleetDriver = {
    name,
    provisioned: () => fleet.provisioned,
    ready: () => fleet.ready,
    counts,
    tick(s: number): void {
      fleet.advance(s);
      if (s % interval !== 0) return;
      const obs = observeAt(r, fleet, obsRng, windowS, latency, s);
      if (obs === undefined) return;
      fleet.completedDurationsMs = [];
      if (fleet instanceof TieredFleet) fleet.completedByTier = [];
      const step = policy.step(obs, obs.nowMs);
      const desired = r.quantise(
        Math.min(
          maxGpus,
          Math.max(minGpus, Math.round(Number.isFinite(step.desiredGpus) ? step.desiredGpus : maxGpus)),
        ),
      );
      const before = fleet.provisioned;
      fleet.setDesired(desired, s);
      if (fleet instanceof TieredFleet) fleet.stage(Math.max(desired, step.stageGpus ?? 0), s);
      if (desired > before) counts.scaleUps++;
      else if (desired < before) counts.scaleDowns++;
      counts.coldStarts = fleet.coldStarts;
      counts.peakGpus = Math.max(counts.peakGpus, fleet.provisioned);
    },
  };
  const acc = runFleet(
    r.world,
    config,
    driver,
    r.req.gpus,
    r.predictable,
    latency.minuteP99,
    latency.minuteP90,
    progress,
  );
  return fleet instanceof TieredFleet ? { ...acc, result: { ...acc.result, loadTiers: fleet.stats() } } : acc;
}

/** Replay the oracle's plan (known requirement, mean cold start ahead). */
function runOracle(
  r: Replay,
  oracleColdStartS: number,
  latency: { minuteP99: Float64Array; minuteP90: Float64Array },
  progress: (f: number) => void,
): Accumulated {
  const plan = planOracle(r.req.gpus, r.seconds, oracleColdStartS);
  let peak = 0;
  let ups = 0;
  let downs = 0;
  for (let s = 0; s < r.seconds; s++) {
    const p = plan.provisioned[s] as number;
    peak = Math.max(peak, p);
    if (s > 0) {
      const prev = plan.provisioned[s - 1] as number;
      if (p > prev) ups++;
      else if (p < prev) downs++;
    }
  }
  const driver: FleetDriver = {
    name: "oracle",
    provisioned: (s) => plan.provisioned[s] as number,
    ready: (s) => plan.ready[s] as number,
    tick: () => {},
    counts: { scaleUps: ups, scaleDowns: downs, coldStarts: ups, peakGpus: peak },
  };
  return runFleet(r.world, r.config, driver, r.req.gpus, r.predictable, latency.minuteP99, latency.minuteP90, progress);
}

/** Replay a baseline at every knob of its grid and keep the point tuned in hindsight. */
function runTuned(
  r: Replay,
  name: TunedBaselineName,
  progress: (f: number) => void,
): { acc: Accumulated; tuned: TunedBaseline } {
  const points: { knob: number; acc: Accumulated }[] = [];
  for (const knob of TUNING_GRIDS[name]) {
    const latency = {
      minuteP99: new Float64Array(r.minutes).fill(NaN),
      minuteP90: new Float64Array(r.minutes).fill(NaN),
    };
    points.push({ knob, acc: runAdaptive(r, name, createBaselineAt(name, r.ctx, knob), latency, progress) });
  }
  const tp = points.map((p) => ({ knob: p.knob, result: p.acc.result }));
  const chosen = pickTunedPoint(tp, TUNING_TARGET_ATTAINMENT)?.point.knob;
  const acc = (points.find((p) => p.knob === chosen) ?? points[0])?.acc as Accumulated;
  return { acc, tuned: { name, points: tp, chosenKnob: chosen ?? NaN } };
}

/** Replay a work series under every configured policy. */
export function runSimulation(
  work: WorkSeries,
  load: LoadSeries,
  config: SimConfig,
  onProgress?: (p: Progress) => void,
): SimResult {
  const r = prepareReplay(work, load, config, onProgress);
  const results: PolicyResult[] = [];
  const timelines: PolicyTimeline[] = [];
  const pods = config.group?.nodesPerGroup ?? 1;
  const oracleColdStartS =
    config.oracleColdStartS ??
    (pods > 1 ? slowestOfColdStartMeanS(config.coldStart, pods) : coldStartMeanS(config.coldStart));
  const tune = config.tuneBaselines ?? true;
  const tuned: TunedBaseline[] = [];
  for (const name of config.policies) {
    const latency = {
      minuteP99: new Float64Array(r.minutes).fill(NaN),
      minuteP90: new Float64Array(r.minutes).fill(NaN),
    };
    const progress = (f: number): void => onProgress?.({ phase: "policy", policy: name, fraction: f });
    let acc: Accumulated;
    if (name === "oracle") {
      acc = runOracle(r, oracleColdStartS, latency, progress);
    } else if (tune && (TUNED_BASELINES as readonly string[]).includes(name)) {
      const t = runTuned(r, name as TunedBaselineName, progress);
      tuned.push(t.tuned);
      acc = t.acc;
    } else {
      acc = runAdaptive(r, name, makePolicy(name, r.ctx, config), latency, progress);
    }
    progress(1);
    results.push(acc.result);
    timelines.push(acc.timeline);
  }
  return {
    seconds: r.seconds,
    minutes: r.minutes,
    requirement: r.req.gpus,
    unattainableMinutes: r.req.unattainableMinutes,
    unattainable: r.req.unattainable,
    predictableMinutes: r.predictableMinutes,
    staticGpus: r.staticGpus,
    minGpus: r.minGpus,
    maxGpus: r.maxGpus,
    oracleColdStartS,
    tunedUtilization: r.tunedUtilization,
    results,
    timelines,
    loadPerMinute: r.loadPerMinute,
    tuned,
  };
}
