// The wide-EP demo's scenario and MoEDeployment (`make demo-wideep`, src/cli/demo-wideep.ts): pure
// data, so the load schedule and the story's phases can be checked without a cluster.
import type { ScenarioPoint } from "../emulator/server.ts";

/** The demo's EP group: 2 nodes x 8 GPUs (one engine pod per node). */
export const DEMO_GROUP = { nodesPerGroup: 2, gpusPerNode: 8 } as const;
export const DEMO_GPUS_PER_GROUP = DEMO_GROUP.nodesPerGroup * DEMO_GROUP.gpusPerNode;
/** 8-GPU nodes in the demo's fleet: room for three whole groups and half of a fourth. */
export const DEMO_NODES = 7;
export const DEMO_MAX_GROUPS = 4;
export const DEMO_SLO_MS = 50;
export const DEMO_SLO_WINDOW_S = 15;
/** How long a group's pod may stay unscheduled before CapacityPending names the group. */
export const DEMO_PENDING_TIMEOUT_S = 20;
/** The operator's --drain-seconds: how long a Ready group is marked draining before it is removed. */
export const DEMO_DRAIN_S = 15;
/** kwok's delay from a group pod's start to Ready: the compressed cold start of an engine pod. */
export const DEMO_POD_READY_DELAY_S = 20;

/** Offered load (tok/s) of each phase: what one, three and four groups of 16 GPUs serve within the SLO. */
export const DEMO_LOAD = { steady: 12_000, peak: 50_000, burst: 78_000, quiet: 8_000 } as const;

export interface DemoPhase {
  readonly name: string;
  readonly fromS: number;
  /** The groups the phase's load needs (the story; the operator decides on its own). */
  readonly groupsNeeded: number;
  readonly tokensPerSecond: number;
}

export interface WideEPScenario {
  readonly phases: readonly DemoPhase[];
  readonly points: readonly ScenarioPoint[];
  /** The routing heat drifts once in the peak (the groups then take the rebalance in place). */
  readonly heatShifts: readonly { tS: number; seed: number; correlation: number }[];
  readonly endS: number;
}

/** Groups the schedule window ("daily-peak") holds: the ramp's and the peak's. */
export const DEMO_WINDOW_GROUPS = 3;
/** The ramp's start (s from the scenario's start) when no schedule window is given. */
export const DEFAULT_RAMP_AT_S = 55;
/** The schedule window opens this long after the ramp starts (the ramp is 75 s at scale 1). */
export const WINDOW_AFTER_RAMP_S = 5;

/**
 * Steady load on one group; a ramp that needs three groups; a burst that needs a fourth, which the
 * fleet has only half the nodes for; the load falls back to one group's worth (drain).
 * `scale` (0 < scale <= 1) shortens every phase after the steady one for a quicker run; `rampAtS` is
 * when the ramp starts (the demo puts it just before the scheduled window, which opens at a whole
 * UTC minute).
 */
export function planWideEPScenario(scale = 1, rampAtS = DEFAULT_RAMP_AT_S): WideEPScenario {
  if (!(scale > 0 && scale <= 1)) throw new Error(`scenario scale must be in (0, 1], got ${scale}`);
  if (!(rampAtS > 0)) throw new Error(`the ramp must start after t = 0, got ${rampAtS}`);
  const r = Math.round(rampAtS);
  const s = (t: number) => r + Math.round((t - DEFAULT_RAMP_AT_S) * scale);
  const L = DEMO_LOAD;
  const phases: DemoPhase[] = [
    { name: "steady", fromS: 0, groupsNeeded: 1, tokensPerSecond: L.steady },
    { name: "ramp", fromS: s(55), groupsNeeded: 3, tokensPerSecond: L.peak },
    { name: "peak", fromS: s(130), groupsNeeded: 3, tokensPerSecond: L.peak },
    { name: "burst", fromS: s(180), groupsNeeded: 4, tokensPerSecond: L.burst },
    { name: "falling", fromS: s(250), groupsNeeded: 1, tokensPerSecond: L.quiet },
    { name: "quiet", fromS: s(258), groupsNeeded: 1, tokensPerSecond: L.quiet },
  ];
  // Load holds within a phase; the ramp and the fall are linear, the burst a 5-second step.
  const points: ScenarioPoint[] = [
    { tS: 0, tokensPerSecond: L.steady, phase: "steady" },
    { tS: s(55), tokensPerSecond: L.steady, phase: "ramp" },
    { tS: s(130), tokensPerSecond: L.peak, phase: "peak" },
    { tS: s(180), tokensPerSecond: L.peak, phase: "burst" },
    { tS: s(185), tokensPerSecond: L.burst, phase: "burst" },
    { tS: s(250), tokensPerSecond: L.burst, phase: "falling" },
    { tS: s(258), tokensPerSecond: L.quiet, phase: "quiet" },
  ];
  // Correlation 0.66 with the heat before, as make demo's shift.
  return { phases, points, heatShifts: [{ tS: s(140), seed: 2026, correlation: 0.66 }], endS: s(370) };
}

/** The phase at tS (the last phase started at or before it). */
export function phaseAt(sc: WideEPScenario, tS: number): DemoPhase {
  let cur = sc.phases[0]!;
  for (const p of sc.phases) if (p.fromS <= tS) cur = p;
  return cur;
}

export const DEMO_NAME = "deepseek-r1-wideep";

/**
 * The WideEP MoEDeployment the demo applies: the shape of deploy/samples/deepseek-r1-wideep.yaml
 * (DeepSeek-R1, one engine per group, SGLang's wide-EP flags left out: no engine runs here) on
 * groups of 2 x 8 fake GPUs, with the emulator's Prometheus queries and compressed time.
 */
export function wideEPDemoSpec(o: {
  prometheusUrl: string;
  heatQuery: string;
  latencyQuery: string;
  /** spec.prewarm.schedules "daily-peak": from this cron (UTC) for `minutes`, at least DEMO_WINDOW_GROUPS groups. */
  window?: { cron: string; minutes: number };
}) {
  const g = DEMO_GPUS_PER_GROUP;
  return {
    apiVersion: "moe.dev/v1alpha1",
    kind: "MoEDeployment",
    metadata: { name: DEMO_NAME, namespace: "default" },
    spec: {
      mode: "Auto",
      model: {
        name: "deepseek-ai/DeepSeek-R1-0528",
        layers: 61,
        denseLayers: 3,
        routedExperts: 256,
        topK: 8,
        sharedExperts: 1,
        expertParameters: 44_040_192,
        weightDtype: "FP8",
        // 16 GPUs x 18 = 288 slots = 256 experts + 32 redundant, as the sample's 32 x 9.
        expertSlotsPerGpu: 18,
      },
      serving: {
        topology: "WideEP",
        gpu: { resourceName: "nvidia.com/gpu", memoryBytes: 151_397_597_184 },
        wideEP: {
          ...DEMO_GROUP,
          template: {
            metadata: {
              labels: { "app.kubernetes.io/component": "engine" },
              annotations: { "pod-ready.stage.kwok.x-k8s.io/delay": `${DEMO_POD_READY_DELAY_S}s` },
            },
            spec: {
              terminationGracePeriodSeconds: 1,
              containers: [{ name: "engine", image: "lmsysorg/sglang:latest" }],
            },
          },
        },
      },
      placement: {
        maxRedundantSlotsPerLayer: 32,
        rebalanceIntervalSeconds: 60,
        minBalancednessGainPercent: 1,
        maxMovedPercent: 10,
        // Running groups take each new version in place (the group emulator's agent acknowledges).
        moves: { mode: "InPlace", ackTimeoutSeconds: 30 },
      },
      slo: {
        metric: "InterTokenLatency",
        percentile: 99,
        targetLatencyMs: DEMO_SLO_MS,
        evaluationWindowSeconds: DEMO_SLO_WINDOW_S,
      },
      scaling: {
        minShards: g,
        maxShards: DEMO_MAX_GROUPS * g,
        pendingTimeoutSeconds: DEMO_PENDING_TIMEOUT_S,
        scaleUp: { stabilizationWindowSeconds: 0, maxShardsPerStep: 2 * g },
        scaleDown: { stabilizationWindowSeconds: 30, maxShardsPerStep: 3 * g },
      },
      heatSource: {
        type: "Prometheus",
        refreshIntervalSeconds: 5,
        prometheus: { url: o.prometheusUrl, query: o.heatQuery, rateWindowSeconds: 15, timeoutSeconds: 5 },
      },
      latencySource: {
        type: "Prometheus",
        prometheus: { url: o.prometheusUrl, query: o.latencyQuery, timeoutSeconds: 5 },
      },
      prewarm: {
        coldStartSeconds: DEMO_POD_READY_DELAY_S,
        burst: { enabled: false },
        ...(o.window
          ? {
              schedules: [
                {
                  name: "daily-peak",
                  start: o.window.cron,
                  durationMinutes: o.window.minutes,
                  timeZone: "UTC",
                  minShards: DEMO_WINDOW_GROUPS * g,
                },
              ],
            }
          : {}),
      },
      cost: { defaultUsdPerGpuHour: 2, priceLabelKey: "moe.dev/price-usd-per-gpu-hour" },
    },
  };
}
