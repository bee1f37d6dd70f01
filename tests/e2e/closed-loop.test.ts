// Closed loop end to end: fleet emulator -> real Prometheus -> operator -> real
// control plane -> pods the emulator routes tokens to. Heat and latency reach the
// operator only through Prometheus, as in production.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  cronForMinuteAfter,
  EMULATOR_HEAT_QUERY,
  EMULATOR_LATENCY_QUERY,
  startStack,
  type Stack,
} from "../../src/testing/stack.ts";
import { waitFor } from "../../src/testing/http-probe.ts";
import {
  applyJson,
  condition,
  moedStatus,
  shardPods,
  waitForStatus,
  type MoedStatus,
} from "../support/kube-helpers.ts";
import { watchCoverage } from "../support/coverage-watch.ts";

const NAME = "loop";
const MODEL = { layers: 5, denseLayers: 1, routedExperts: 16, topK: 2 };
const TARGET_MS = 50;
let stack: Stack;
let windowAtMs = 0;
let windowCron = "";

function spec(over: { minShards?: number; maxShards?: number; maxUsdPerHour?: number; schedules?: boolean } = {}) {
  return {
    apiVersion: "moe.dev/v1alpha1",
    kind: "MoEDeployment",
    metadata: { name: NAME, namespace: "default" },
    spec: {
      model: { name: "test/loop-moe", ...MODEL, expertWeightBytes: 1_000_000, expertSlotsPerGpu: 5 },
      serving: {
        router: {
          replicas: 1,
          gpusPerReplica: 1,
          template: {
            spec: {
              terminationGracePeriodSeconds: 1,
              containers: [{ name: "router", image: "example.invalid/router:1" }],
            },
          },
        },
        expertShards: {
          template: {
            // kwok: a shard pod takes 10 s to become Ready (a compressed cold start).
            metadata: { annotations: { "pod-ready.stage.kwok.x-k8s.io/delay": "10s" } },
            spec: {
              terminationGracePeriodSeconds: 1,
              containers: [{ name: "expert", image: "example.invalid/expert:1" }],
            },
          },
        },
      },
      placement: { rebalanceIntervalSeconds: 30, minBalancednessGainPercent: 1, maxMovedPercent: 30 },
      slo: { metric: "InterTokenLatency", targetLatencyMs: TARGET_MS, evaluationWindowSeconds: 15 },
      scaling: {
        minShards: over.minShards ?? 4,
        maxShards: over.maxShards ?? 12,
        scaleUp: { stabilizationWindowSeconds: 0, maxShardsPerStep: 8 },
        scaleDown: { stabilizationWindowSeconds: 20, maxShardsPerStep: 1 },
      },
      heatSource: {
        type: "Prometheus",
        refreshIntervalSeconds: 5,
        prometheus: { url: stack.prometheus.url, query: EMULATOR_HEAT_QUERY, rateWindowSeconds: 15, timeoutSeconds: 3 },
      },
      latencySource: {
        type: "Prometheus",
        prometheus: { url: stack.prometheus.url, query: EMULATOR_LATENCY_QUERY, timeoutSeconds: 3 },
      },
      prewarm: {
        coldStartSeconds: 10,
        ...(over.schedules === false
          ? {}
          : {
              schedules: [{ name: "daily-peak", start: windowCron, durationMinutes: 2, timeZone: "UTC", minShards: 8 }],
            }),
      },
      cost: {
        priceLabelKey: "moe.dev/price-usd-per-gpu-hour",
        defaultUsdPerGpuHour: 2,
        ...(over.maxUsdPerHour !== undefined ? { maxUsdPerHour: over.maxUsdPerHour } : {}),
      },
    },
  };
}

async function readyShards(): Promise<number> {
  return (await shardPods(stack.cluster, NAME)).filter((p) => p.ready && !p.draining && !p.terminating).length;
}

beforeAll(async () => {
  stack = await startStack({
    name: "e2e",
    gpuNodes: [
      {
        pool: "h100",
        count: 2,
        gpusPerNode: 8,
        gpuProduct: "NVIDIA-H100-80GB-HBM3",
        gpuMemoryMiB: 81559,
        priceUsdPerGpuHour: 2,
        nodesPerDomain: 1,
      },
    ],
    deployment: NAME,
    model: MODEL,
    scenario: {
      startMs: Date.now(),
      points: [{ tS: 0, tokensPerSecond: 3_000, phase: "steady" }],
      heatShifts: [],
      heatSeed: 7,
    },
  });
  const w = cronForMinuteAfter(Date.now(), 170_000);
  windowAtMs = w.atMs;
  windowCron = w.cron;
});

afterAll(async () => {
  if (process.env.MOE_TEST_VERBOSE) console.log(stack?.operator.logTail(60));
  await stack?.stop();
});

describe("closed loop", () => {
  it("serves the steady load within the SLO with heat and latency read from Prometheus", async () => {
    await applyJson(stack.cluster, spec());
    const s = await waitForStatus(
      stack.cluster,
      NAME,
      "Ready with fresh metrics and SLO met",
      (st) =>
        condition(st, "Ready")?.status === "True" &&
        condition(st, "MetricsAvailable")?.status === "True" &&
        condition(st, "SLOMet")?.status === "True",
      150_000,
    );
    expect(s.latency?.observedMs).toBeGreaterThan(0);
    expect(s.latency!.observedMs!).toBeLessThanOrEqual(TARGET_MS);
    // When Prometheus evaluated it: recent, not in the future.
    const sampledAt = Date.parse(s.latency!.sampleTime!);
    expect(sampledAt).toBeGreaterThan(Date.now() - 120_000);
    expect(sampledAt).toBeLessThanOrEqual(Date.now() + 5_000);
    expect(s.desiredShards).toBe(4);
    expect(s.placement?.balancedness).toBeGreaterThan(0.5);
  });

  it("has the scheduled window's capacity Ready before it opens, and the SLO holds across the ramp", async () => {
    expect(Date.now()).toBeLessThan(windowAtMs - 60_000); // the test itself must not be late
    const readyAt = await waitFor("8 shards Ready", async () => ((await readyShards()) >= 8 ? Date.now() : undefined), {
      timeoutMs: windowAtMs - Date.now() + 30_000,
      intervalMs: 1_000,
    });
    expect(readyAt).toBeLessThan(windowAtMs);
    const pre = await moedStatus(stack.cluster, NAME);
    expect(condition(pre, "Prewarming")?.reason).toBe("ScheduledWindow");
    // The window opens and the daily ramp arrives with it.
    await new Promise((r) => setTimeout(r, Math.max(0, windowAtMs - Date.now())));
    stack.emulator.override({ tokensPerSecond: 9_000, phase: "peak" });
    const samples: MoedStatus[] = [];
    const end = Date.now() + 60_000;
    while (Date.now() < end) {
      samples.push(await moedStatus(stack.cluster, NAME));
      await new Promise((r) => setTimeout(r, 3_000));
    }
    const violations = samples.filter((s) => condition(s, "SLOMet")?.status === "False");
    expect(violations.map((s) => condition(s, "SLOMet")!.message)).toEqual([]);
    expect(Math.min(...samples.map((s) => s.currentShards ?? 0))).toBeGreaterThanOrEqual(8);
  }, 400_000);

  it("rebalances when the heat shifts, never leaves an expert without a Ready replica, and the SLO recovers", async () => {
    const before = await moedStatus(stack.cluster, NAME);
    const coverage = await watchCoverage(
      stack.cluster.kubeConfig,
      "default",
      NAME,
      MODEL.layers - MODEL.denseLayers,
      MODEL.routedExperts,
    );
    stack.emulator.override({ heatSeed: 4242, phase: "heat-shift" });
    const after = await waitForStatus(
      stack.cluster,
      NAME,
      "a rebalance",
      (s) =>
        (s.placement?.version ?? 0) > (before.placement?.version ?? 0) &&
        s.placement?.lastRebalanceTime !== before.placement?.lastRebalanceTime,
      150_000,
    );
    expect(after.placement!.movedFraction).toBeLessThanOrEqual(0.3 + 1e-9);
    await waitForStatus(
      stack.cluster,
      NAME,
      "rolled out and within SLO",
      (s) => condition(s, "Progressing")?.status === "False" && condition(s, "SLOMet")?.status === "True",
      150_000,
    );
    expect(coverage.violations).toEqual([]);
    coverage.stop();
  }, 400_000);

  it("holds capacity while Prometheus is down, says MetricsUnavailable, and recovers when it returns", async () => {
    // Past the window: a drop in load would normally scale down after 20 s.
    await applyJson(stack.cluster, spec({ schedules: false }));
    stack.emulator.override({ tokensPerSecond: 9_000, phase: "peak" });
    const held = await waitForStatus(
      stack.cluster,
      NAME,
      "stable",
      (s) => condition(s, "Progressing")?.status === "False",
      120_000,
    );
    const shardsBefore = held.desiredShards!;
    stack.emulator.override({ tokensPerSecond: 1_000, phase: "blind" });
    await stack.prometheus.pause();
    const t0 = Date.now();
    await waitForStatus(
      stack.cluster,
      NAME,
      "MetricsAvailable=False",
      (s) => condition(s, "MetricsAvailable")?.status === "False",
      30_000,
    );
    expect(Date.now() - t0).toBeLessThanOrEqual(2 * 5_000 + 3_000); // two reconcile periods (+ query timeout)
    const blind = await moedStatus(stack.cluster, NAME);
    expect(condition(blind, "MetricsAvailable")!.reason).toBe("PrometheusUnreachable");
    const end = Date.now() + 40_000;
    while (Date.now() < end) {
      const s = await moedStatus(stack.cluster, NAME);
      expect(s.desiredShards).toBeGreaterThanOrEqual(shardsBefore);
      await new Promise((r) => setTimeout(r, 2_000));
    }
    await stack.prometheus.resume();
    await waitForStatus(
      stack.cluster,
      NAME,
      "MetricsAvailable=True again",
      (s) => condition(s, "MetricsAvailable")?.status === "True",
      60_000,
    );
    // With fresh data the low load is now acted on: scale-down resumes (slowly).
    await waitForStatus(
      stack.cluster,
      NAME,
      "scale-down after recovery",
      (s) => (s.desiredShards ?? 99) < shardsBefore,
      120_000,
    );
  }, 400_000);

  it("reports SLOMet=False naming the bound when maxShards is too low", async () => {
    stack.emulator.override({ tokensPerSecond: 12_000, phase: "overload" });
    await applyJson(stack.cluster, spec({ minShards: 4, maxShards: 4, schedules: false }));
    const s = await waitForStatus(
      stack.cluster,
      NAME,
      "SLOMet=False at maxShards",
      (st) =>
        condition(st, "SLOMet")?.status === "False" &&
        /spec\.scaling\.maxShards=4/.test(condition(st, "SLOMet")!.message),
      120_000,
    );
    expect(s.desiredShards).toBe(4);
  }, 200_000);

  it("caps capacity at the budget and reports BudgetExceeded", async () => {
    // 1 router GPU + 6 shards at 2 USD/GPU-hour = 14 USD/h.
    await applyJson(stack.cluster, spec({ maxShards: 12, maxUsdPerHour: 14, schedules: false }));
    const s = await waitForStatus(
      stack.cluster,
      NAME,
      "BudgetExceeded=True",
      (st) => condition(st, "BudgetExceeded")?.status === "True",
      120_000,
    );
    expect(condition(s, "BudgetExceeded")!.reason).toBe("CappedByBudget");
    expect(s.desiredShards).toBeLessThanOrEqual(6);
    const later = await waitForStatus(
      stack.cluster,
      NAME,
      "held at the budget",
      (st) => st.desiredShards === 6 && (st.currentShards ?? 0) <= 6,
      120_000,
    );
    expect(later.cost!.usdPerHour).toBeLessThanOrEqual(14);
  }, 300_000);
});
