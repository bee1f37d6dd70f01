// Issue 14, Build 3 (round 5): a restarted operator keeps its forecast. The real Prometheus the
// suite runs holds three days of a deployment's routed-token counter (backfilled with promtool, as
// a long-running Prometheus would have scraped it); the operator's history seed (the component the
// reconciler runs once per deployment after start) reads it with one bounded range query through
// the real adapter and hands a forecast to the next decision that matches the forecast of an
// operator that learned the same load live, where a restart without the seed has none.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import pino from "pino";
import { createPrometheusReader } from "../../src/adapters/prometheus.ts";
import { moeLayerCount, parseMoEDeployment, type MoEDeployment } from "../../src/api/index.ts";
import {
  createCapacityState,
  forecastLoad,
  learnedDays,
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

function openMetrics(): string {
  const lines = ["# TYPE moe_seed_routed_tokens counter"];
  let total = 0;
  for (let t = START_MS; t <= END_MS; t += MIN) {
    total += routedRate(t) * 60;
    lines.push(`moe_seed_routed_tokens_total{layer="1",expert="0"} ${total.toFixed(0)} ${t / 1000}`);
  }
  return `${lines.join("\n")}\n# EOF\n`;
}

let prom: LocalPrometheus;
let d: MoEDeployment;

beforeAll(async () => {
  prom = await startPrometheus({
    scrapeConfigs: [],
    retentionTime: "30d",
    backfillOpenMetrics: openMetrics(),
  });
  const raw = testMoEDeployment("seeded", "default");
  const parsed = parseMoEDeployment({
    ...raw,
    spec: {
      ...raw.spec,
      prewarm: { ...raw.spec.prewarm, predictive: { enabled: true } },
      heatSource: {
        type: "Prometheus",
        refreshIntervalSeconds: 5,
        prometheus: { url: prom.url, query: "rate(moe_seed_routed_tokens_total[{{window}}])", rateWindowSeconds: 300 },
      },
    },
  });
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
  }, 120_000);
});
