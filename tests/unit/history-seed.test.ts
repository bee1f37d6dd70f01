// Issue 14, Build 3 (round 5): a restarted operator seeds its forecast from the load history.
import { describe, expect, it } from "vitest";
import pino from "pino";
import { moeLayerCount, parseMoEDeployment, type MoEDeployment } from "../../src/api/index.ts";
import type { RangeQueryOptions, RangeSeries } from "../../src/adapters/prometheus.ts";
import {
  createCapacityState,
  decideCapacity,
  learnedDays,
  makeCapacityPolicy,
  predictP99LatencyMs,
  seedCalibrationFromSeries,
  seedForecastFromSeries,
} from "../../src/domain/capacity/index.ts";
import type { CapacityState, LatencySeedPoint, TimedValue } from "../../src/domain/capacity/index.ts";
import {
  HistorySeeder,
  MAX_SEED_POINTS,
  readLatencyHistory,
  readLoadHistory,
} from "../../src/controllers/moedeployment/history-seed.ts";
import type { SourceDeps } from "../../src/controllers/moedeployment/sources.ts";
import { policyFromSpec } from "../../src/controllers/moedeployment/policy.ts";
import { testMoEDeployment } from "../support/moe-fixtures.ts";

const T0 = Date.UTC(2026, 2, 2);
const MIN = 60_000;
const policy = makeCapacityPolicy({ slo: { metric: "itl", targetP99Ms: 50 }, minGpus: 2, maxGpus: 512 });

/** Three days of a diurnal load (1-min samples) with a 2-h collection gap (zeros) each day. */
function history(): TimedValue[] {
  return Array.from({ length: 3 * 1440 }, (_, i) => {
    const minuteOfDay = i % 1440;
    const value = minuteOfDay >= 600 && minuteOfDay < 720 ? 0 : 40_000 + 20_000 * Math.sin((2 * Math.PI * i) / 1440);
    return { atMs: T0 + i * MIN, value };
  });
}

/** What a running operator's forecaster learned from the same samples, one decision per sample. */
function learnedLive(points: readonly TimedValue[]): CapacityState {
  let state = createCapacityState(policy);
  let gpus = 8;
  for (const p of points) {
    const d = decideCapacity(
      {
        tokensPerSecond: p.value,
        metricsAtMs: p.atMs,
        provisionedGpus: gpus,
        readyGpus: gpus,
        balancedness: 0.85,
        crossNodeShare: 0.2,
        usdPerGpuHour: 2,
      },
      state,
      policy,
      p.atMs,
    );
    state = d.nextState;
    gpus = d.desiredGpus;
  }
  return state;
}

describe("seeding the forecast from a stored load series", () => {
  it("learns what a running operator learned from the same samples, gaps excluded", () => {
    const points = history();
    const seeded = seedForecastFromSeries(createCapacityState(policy), points, policy, policy.maxGpus);
    expect(seeded.state.forecast).toEqual(learnedLive(points).forecast);
    expect(learnedDays(seeded.state.forecast)).toBeGreaterThanOrEqual(2);
    // The gap's zeros (2 h a day, after the first sample of each) are not learned.
    expect(seeded.skipped).toBeGreaterThanOrEqual(3 * 119);
    // Order does not matter; duplicates count once.
    const shuffled = [...points].reverse().concat(points.slice(0, 10));
    expect(
      seedForecastFromSeries(createCapacityState(policy), shuffled, policy, policy.maxGpus).state.forecast,
    ).toEqual(seeded.state.forecast);
  });
});

function deployment(uid: string): MoEDeployment {
  const raw = testMoEDeployment("tiny", "default");
  const r = parseMoEDeployment({
    ...raw,
    spec: {
      ...raw.spec,
      heatSource: {
        type: "Prometheus",
        refreshIntervalSeconds: 5,
        prometheus: { url: "http://prom.test:9090", query: 'rate(tokens_total{deployment="{{name}}"}[{{window}}])' },
      },
    },
  });
  if (!r.ok) throw new Error("fixture does not parse", { cause: r.issues });
  return { ...r.value, metadata: { ...r.value.metadata, uid } };
}

function sourceDeps(answer: (q: string, o: RangeQueryOptions) => RangeSeries[], nowMs: number): SourceDeps {
  return {
    prometheus: () => ({
      queryVector: () => Promise.resolve([]),
      queryRange: (q, o) => Promise.resolve(answer(q, o)),
    }),
    core: undefined as never,
    nowMs: () => nowMs,
    maxSourceTimeoutMs: 5_000,
    policy: { prometheusAllowedUrls: ["http://prom.test:9090"], fileHeatSourceDirs: [], fileHeatSourceMaxBytes: 1 },
  };
}

describe("the operator's history seed", () => {
  const points = history();
  const end = points[points.length - 1]!.atMs;
  const d = deployment("u-1");
  const divisor = d.spec.model.topK * moeLayerCount(d.spec.model);

  it("asks one bounded range query of the summed heat query and converts it to tokens/s", async () => {
    const asked: { q: string; o: RangeQueryOptions }[] = [];
    const deps = sourceDeps((q, o) => {
      asked.push({ q, o });
      return [{ labels: {}, points: points.map((p) => ({ timestampMs: p.atMs, value: p.value * divisor })) }];
    }, end);
    const h = await readLoadHistory(
      d.spec.heatSource,
      d.spec.model,
      { namespace: "default", name: "tiny" },
      7 * 86_400_000,
      deps,
    );
    expect(asked).toHaveLength(1);
    const windowS = d.spec.heatSource.prometheus!.rateWindowSeconds;
    expect(asked[0]!.q).toBe(`sum(rate(tokens_total{deployment="tiny"}[${windowS}s]))`);
    expect(asked[0]!.o).toMatchObject({
      maxSeries: 1,
      maxPoints: MAX_SEED_POINTS,
      endMs: end,
      startMs: end - 7 * 86_400_000,
    });
    expect((asked[0]!.o.endMs - asked[0]!.o.startMs) / asked[0]!.o.stepMs + 1).toBeLessThanOrEqual(MAX_SEED_POINTS);
    expect(h.problem).toBeUndefined();
    expect(h.problem === undefined && h.points[5]).toEqual(points[5]);
  });

  it("refuses a URL outside the allowlist without querying", async () => {
    let calls = 0;
    const deps = sourceDeps(() => {
      calls++;
      return [];
    }, end);
    const other = {
      ...d.spec.heatSource,
      prometheus: { ...d.spec.heatSource.prometheus!, url: "http://evil.test:9090" },
    };
    const h = await readLoadHistory(other, d.spec.model, { namespace: "default", name: "tiny" }, 86_400_000, deps);
    expect(h.problem?.reason).toBe("SourceNotAllowed");
    expect(calls).toBe(0);
  });

  it("hands the seeded forecast to the next decision once, for the deployment's uid only", async () => {
    const deps = sourceDeps(
      () => [{ labels: {}, points: points.map((p) => ({ timestampMs: p.atMs, value: p.value * divisor })) }],
      end,
    );
    const requeued: string[] = [];
    const seeder = new HistorySeeder({
      sources: deps,
      policyOf: (x) => policyFromSpec(x.spec, { reconcileIntervalMs: 5_000 }),
      requeue: (k) => requeued.push(k),
    });
    seeder.start("default/tiny", d, pino({ level: "silent" }));
    seeder.start("default/tiny", d, pino({ level: "silent" })); // once per uid
    await new Promise((r) => setTimeout(r, 10));
    expect(requeued).toEqual(["default/tiny"]);
    expect(seeder.take("default/tiny", deployment("u-2"), undefined)).toBeUndefined();
    const taken = seeder.take("default/tiny", d, undefined);
    expect(learnedDays(taken!.forecast)).toBeGreaterThanOrEqual(2);
    const live = createCapacityState(policyFromSpec(d.spec, { reconcileIntervalMs: 5_000 }).capacity);
    expect(seeder.take("default/tiny", d, live)).toBe(live);
  });
});

describe("seeding the latency calibration from stored (load, p99, Ready GPUs) points", () => {
  /** The deployment is 40 % slower and saturates 20 % earlier than the model's defaults. */
  const truth = { latencyScale: 1.4, capacityScale: 0.8 };
  const conditions = { balancedness: 0.85, crossNodeShare: 0.2 };

  /** A running operator's loop on a day of diurnal load with a 2-h gap; its (load, p99, Ready) points and final state. */
  function liveDay(): { points: LatencySeedPoint[]; state: CapacityState } {
    let state = createCapacityState(policy);
    let gpus = 8;
    const points: LatencySeedPoint[] = [];
    for (const p of history().slice(0, 1440)) {
      const observedP99Ms = predictP99LatencyMs(
        policy.latencyModel,
        { tokensPerSecond: p.value, gpuCount: gpus, ...conditions },
        truth,
      );
      const p99 = Number.isFinite(observedP99Ms) ? observedP99Ms : 10_000;
      points.push({ ...p, observedP99Ms: p99, readyGpus: gpus });
      const d = decideCapacity(
        {
          tokensPerSecond: p.value,
          metricsAtMs: p.atMs,
          provisionedGpus: gpus,
          readyGpus: gpus,
          usdPerGpuHour: 2,
          observedP99Ms: p99,
          ...conditions,
        },
        state,
        policy,
        p.atMs,
      );
      state = d.nextState;
      gpus = d.desiredGpus;
    }
    return { points, state };
  }

  it("learns the calibration a running operator learned from the same points", () => {
    const { points, state } = liveDay();
    const live = state.calibration;
    expect(live.correction.latencyScale).toBeGreaterThan(1.2);
    const seeded = seedCalibrationFromSeries(createCapacityState(policy), points, policy, policy.maxGpus, conditions);
    expect(seeded.state.calibration.observationCount).toBe(live.observationCount);
    expect(seeded.state.calibration.correction.latencyScale).toBeCloseTo(live.correction.latencyScale, 9);
    expect(seeded.state.calibration.correction.capacityScale).toBeCloseTo(live.correction.capacityScale, 9);
    // Order does not matter; the gap's zeros and the minutes after a Ready change teach nothing.
    const shuffled = [...points].reverse();
    expect(
      seedCalibrationFromSeries(createCapacityState(policy), shuffled, policy, policy.maxGpus, conditions).state
        .calibration.correction,
    ).toEqual(seeded.state.calibration.correction);
    expect(seeded.skipped).toBeGreaterThan(120);
    // A restart without the seed starts from the uncalibrated model.
    expect(createCapacityState(policy).calibration.correction).toEqual({ latencyScale: 1, capacityScale: 1 });
  });
});

describe("reading the latency history", () => {
  it("asks the latency source's query and the operator's Ready gauge on the load's grid and joins them", async () => {
    const raw = testMoEDeployment("tiny", "default");
    const parsed = parseMoEDeployment({
      ...raw,
      spec: {
        ...raw.spec,
        latencySource: {
          type: "Prometheus",
          prometheus: { url: "http://prom.test:9090", query: 'p99{d="{{name}}",q="{{quantile}}"}' },
        },
      },
    });
    if (!parsed.ok) throw new Error("fixture does not parse", { cause: parsed.issues });
    const d = parsed.value;
    const asked: string[] = [];
    const deps = sourceDeps(
      (q) => {
        asked.push(q);
        // Latency in seconds (the default unit) at minutes 0-2; Ready at minutes 1-3.
        if (q.startsWith("p99"))
          return [{ labels: {}, points: [0, 1, 2].map((k) => ({ timestampMs: T0 + k * MIN, value: 0.04 })) }];
        return [{ labels: {}, points: [1, 2, 3].map((k) => ({ timestampMs: T0 + k * MIN, value: 6 })) }];
      },
      T0 + 3 * MIN,
    );
    const load = {
      points: [0, 1, 2, 3].map((k) => ({ atMs: T0 + k * MIN, value: 1000 })),
      startMs: T0,
      endMs: T0 + 3 * MIN,
      stepMs: MIN,
    };
    const got = await readLatencyHistory(d, load, deps);
    expect([...asked].sort()).toEqual([
      'max(moe_operator_gpus_ready{namespace="default",name="tiny"})',
      `p99{d="tiny",q="${d.spec.slo.percentile / 100}"}`,
    ]);
    expect(got).toEqual([1, 2].map((k) => ({ atMs: T0 + k * MIN, value: 1000, observedP99Ms: 40, readyGpus: 6 })));
    // A static latency source stores nothing.
    expect(await readLatencyHistory(testDeployment(), load, deps)).toEqual([]);
  });
});

function testDeployment(): MoEDeployment {
  const r = parseMoEDeployment(testMoEDeployment("tiny", "default"));
  if (!r.ok) throw new Error("fixture does not parse", { cause: r.issues });
  return r.value;
}
