// Issue 14, Build 3 (round 5): a restarted operator keeps its forecast. The real Prometheus the
// suite runs holds three days of a deployment's routed-token counter (backfilled with promtool, as
// a long-running Prometheus would have scraped it); the operator's history seed (the component the
// reconciler runs once per deployment after start) reads it with one bounded range query through
// the real adapter and hands a forecast to the next decision that matches the forecast of an
// operator that learned the same load live, where a restart without the seed has none. The same
// Prometheus holds the latency source's series and the operator's Ready gauge (round 6): the seed
// also hands over the latency calibration they teach.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import pino from "pino";
import { createPrometheusReader } from "../../src/adapters/prometheus.ts";
import { moeLayerCount, parseMoEDeployment, type MoEDeployment } from "../../src/api/index.ts";
import {
  createCapacityState,
  forecastLoad,
  learnedDays,
  predictP99LatencyMs,
  seedForecastFromSeries,
} from "../../src/domain/capacity/index.ts";
import { HistorySeeder } from "../../src/controllers/moedeployment/history-seed.ts";
import { policyFromSpec } from "../../src/controllers/moedeployment/policy.ts";
import type { SourceDeps } from "../../src/controllers/moedeployment/sources.ts";
import { startPrometheus, type LocalPrometheus } from "../../src/testing/prometheus.ts";
import { waitFor } from "../../src/testing/http-probe.ts";
import { testMoEDeployment } from "../support/moe-fixtures.ts";

const MIN = 60_000;
const DAY = 86_400_000;
/** The series ends a few minutes before the test runs (the operator was down since then). */
const END_MS = Math.floor((Date.now() - 5 * MIN) / MIN) * MIN;
const START_MS = END_MS - 3 * DAY;

/** Routed tokens/s summed over the MoE layers' experts: a daily cycle, peak at 14:00 UTC. */
function routedRate(atMs: number): number {
  const hours = (atMs % DAY) / 3_600_000;
  return 40_000 + 25_000 * Math.cos((2 * Math.PI * (hours - 14)) / 24);
}

/** The deployment is 40 % slower than the latency model's defaults (what its calibration learns). */
const TRUE_LATENCY_SCALE = 1.4;

/** Ready GPUs the operator exported: changed every 3 h, at about half utilisation of the mean load. */
function readyAt(atMs: number, perGpu: number, divisor: number): number {
  const block = Math.floor(atMs / (3 * 3_600_000)) * 3 * 3_600_000;
  return Math.max(2, Math.ceil(routedRate(block) / divisor / (0.5 * perGpu)));
}

/** Routed tokens (counter), the observed p99 (ms) and the operator's Ready gauge, one sample a minute. */
function openMetrics(p99At: (atMs: number) => number, ready: (atMs: number) => number): string {
  const counter = ["# TYPE moe_seed_routed_tokens counter"];
  const latency = ["# TYPE moe_seed_p99_ms gauge"];
  const gpus = ["# TYPE moe_operator_gpus_ready gauge"];
  let total = 0;
  for (let t = START_MS; t <= END_MS; t += MIN) {
    total += routedRate(t) * 60;
    counter.push(`moe_seed_routed_tokens_total{layer="1",expert="0"} ${total.toFixed(0)} ${t / 1000}`);
    latency.push(`moe_seed_p99_ms ${p99At(t).toFixed(3)} ${t / 1000}`);
    gpus.push(`moe_operator_gpus_ready{namespace="default",name="seeded"} ${ready(t)} ${t / 1000}`);
  }
  return `${[...counter, ...latency, ...gpus].join("\n")}\n# EOF\n`;
}

let prom: LocalPrometheus;
let d: MoEDeployment;

beforeAll(async () => {
  const raw = testMoEDeployment("seeded", "default");
  const spec = (url: string) => ({
    ...raw.spec,
    prewarm: { ...raw.spec.prewarm, predictive: { enabled: true } },
    heatSource: {
      type: "Prometheus",
      refreshIntervalSeconds: 5,
      prometheus: { url, query: "rate(moe_seed_routed_tokens_total[{{window}}])", rateWindowSeconds: 300 },
    },
    latencySource: {
      type: "Prometheus",
      prometheus: { url, query: "max(moe_seed_p99_ms)", resultUnit: "Milliseconds" },
    },
  });
  // The model the operator will use for this spec gives the stored latency (times the true scale).
  const draft = parseMoEDeployment({ ...raw, spec: spec("http://127.0.0.1:9") });
  if (!draft.ok) throw new Error("fixture does not parse", { cause: draft.issues });
  const model = policyFromSpec(draft.value.spec, { reconcileIntervalMs: 5_000 }).capacity.latencyModel;
  const divisor = moeLayerCount(draft.value.spec.model) * draft.value.spec.model.topK;
  const ready = (t: number) => readyAt(t, model.tokensPerSecondPerGpu, divisor);
  const p99At = (t: number) =>
    predictP99LatencyMs(
      model,
      { tokensPerSecond: routedRate(t) / divisor, gpuCount: ready(t), balancedness: 1, crossNodeShare: 0 },
      { latencyScale: TRUE_LATENCY_SCALE, capacityScale: 1 },
    );
  prom = await startPrometheus({
    scrapeConfigs: [],
    retentionTime: "30d",
    backfillOpenMetrics: openMetrics(p99At, ready),
  });
  const parsed = parseMoEDeployment({ ...raw, spec: spec(prom.url) });
  if (!parsed.ok) throw new Error("fixture does not parse", { cause: parsed.issues });
  d = { ...parsed.value, metadata: { ...parsed.value.metadata, uid: "u-seed" } };
}, 120_000);

afterAll(async () => {
  await prom?.stop();
});

describe("history seed against a real Prometheus", () => {
  it("gives a restarted operator the forecast a running one had", async () => {
    const sources: SourceDeps = {
      prometheus: (url, timeoutMs) => createPrometheusReader({ baseUrl: url, timeoutMs }),
      core: undefined as never,
      nowMs: () => Date.now(),
      maxSourceTimeoutMs: 10_000,
      policy: { prometheusAllowedUrls: [prom.url], fileHeatSourceDirs: [], fileHeatSourceMaxBytes: 1 },
    };
    const policy = policyFromSpec(d.spec, { reconcileIntervalMs: 5_000 });
    const requeued: string[] = [];
    const seeder = new HistorySeeder({ sources, policyOf: () => policy, requeue: (k) => requeued.push(k) });
    seeder.start("default/seeded", d, pino({ level: "silent" }));
    await waitFor("the seed to finish", () => Promise.resolve(requeued.length > 0 ? true : undefined), {
      timeoutMs: 30_000,
      intervalMs: 100,
    });
    const restarted = seeder.take("default/seeded", d, createCapacityState(policy.capacity));
    expect(learnedDays(restarted!.forecast)).toBeGreaterThanOrEqual(2);

    // The operator that never restarted learned the same load (tokens/s = routed / (MoE layers x topK)) live.
    const divisor = moeLayerCount(d.spec.model) * d.spec.model.topK;
    const live = [];
    for (let t = START_MS + 5 * MIN; t <= END_MS; t += MIN) live.push({ atMs: t, value: routedRate(t) / divisor });
    const running = seedForecastFromSeries(createCapacityState(policy.capacity), live, policy.capacity, 12).state;
    // A restart without the seed knows nothing.
    expect(forecastLoad(createCapacityState(policy.capacity).forecast, END_MS + 3_600_000, 1.28)).toBeUndefined();
    for (const aheadMs of [DAY / 4, DAY / 2, (3 * DAY) / 4]) {
      const at = END_MS + aheadMs;
      const a = forecastLoad(running.forecast, at, 1.28, policy.capacity.forecast.options)!;
      const b = forecastLoad(restarted!.forecast, at, 1.28, policy.capacity.forecast.options)!;
      expect(b.seasonal).toBe(true);
      expect(Math.abs(b.expectedTokensPerSecond / a.expectedTokensPerSecond - 1)).toBeLessThan(0.05);
    }
    // The calibration (round 6): learned from the stored latency and Ready series, where a restart
    // without the seed starts from the uncalibrated model.
    expect(createCapacityState(policy.capacity).calibration.correction.latencyScale).toBe(1);
    expect(restarted!.calibration.observationCount).toBeGreaterThan(1000);
    expect(Math.abs(restarted!.calibration.correction.latencyScale / TRUE_LATENCY_SCALE - 1)).toBeLessThan(0.05);
  }, 120_000);
});
