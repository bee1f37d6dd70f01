// Metric sanity on the parsing side, through readHeat/readLatency with a
// Prometheus that answers what each case needs: bad data comes back as a
// reading with a problem (so the decision holds), never as a number.
import { describe, expect, it } from "vitest";
import type { VectorSample } from "../../src/adapters/prometheus.ts";
import type { HeatSource, LatencySource, ModelSpec, SloSpec } from "../../src/api/schema.ts";
import {
  readHeat,
  readHeatSinceShift,
  readLatency,
  type SourceDeps,
} from "../../src/controllers/moedeployment/sources.ts";

const NOW = 1_780_000_000_000;
/** Five minutes: the staleness bound the operator applies to instant-query samples. */
const MAX_SAMPLE_AGE_MS = 5 * 60_000;
const model = { layers: 3, denseLayers: 1, routedExperts: 4, topK: 2 } as unknown as ModelSpec;
const s = (layer: number, expert: number, value: number, timestampMs = NOW): VectorSample => ({
  labels: { layer: String(layer), expert: String(expert) },
  value,
  timestampMs,
});
const full = (v = 10, t = NOW) => [1, 2].flatMap((l) => [0, 1, 2, 3].map((e) => s(l, e, v, t)));

const URL_OK = "http://prometheus.monitoring.svc:9090";
const heatSource = {
  type: "Prometheus",
  refreshIntervalSeconds: 5,
  prometheus: {
    url: URL_OK,
    query: "q",
    rateWindowSeconds: 60,
    timeoutSeconds: 5,
    layerLabel: "layer",
    expertLabel: "expert",
  },
} as unknown as HeatSource;
const latencySource = {
  type: "Prometheus",
  prometheus: { url: URL_OK, query: "q", resultUnit: "Seconds", timeoutSeconds: 5 },
} as unknown as LatencySource;
const slo = {
  metric: "InterTokenLatency",
  targetLatencyMs: 100,
  percentile: 99,
  evaluationWindowSeconds: 60,
} as unknown as SloSpec;
const target = { namespace: "n", name: "m" };

/** Source deps whose Prometheus answers `samples` to every query. */
function answering(samples: VectorSample[]): SourceDeps {
  return {
    prometheus: () => ({ queryVector: () => Promise.resolve(samples), queryRange: () => Promise.resolve([]) }),
    core: undefined as never,
    nowMs: () => NOW,
    maxSourceTimeoutMs: 5_000,
    policy: { prometheusAllowedUrls: [URL_OK], fileHeatSourceDirs: [], fileHeatSourceMaxBytes: 1024 },
  };
}
const heatOf = (samples: VectorSample[]) => readHeat(heatSource, model, target, answering(samples));
const latencyOf = (samples: VectorSample[]) => readLatency(latencySource, slo, target, answering(samples));
const one = (value: number, timestampMs = NOW, labels: Record<string, string> = {}): VectorSample => ({
  labels,
  value,
  timestampMs,
});

describe("heat samples", () => {
  it("adds duplicate series and reads a full grid", async () => {
    const r = await heatOf([...full(), s(1, 0, 5)]);
    expect(r.problem).toBeUndefined();
    expect(r.heat!.heat[0]![0]).toBe(15);
    expect(r.heat!.confidence).toBe(1);
  });

  it("duplicate series whose sum overflows to Infinity are BadData, not load 0", async () => {
    const r = await heatOf([...full(), s(1, 0, 1e308), s(1, 0, 1e308)]);
    expect(r.heat).toBeUndefined();
    expect(r.problem?.reason).toBe("BadData");
  });

  it("absurd values (1e300, negative, NaN, +Inf) are BadData", async () => {
    for (const v of [1e300, -1, Number.NaN, Number.POSITIVE_INFINITY]) {
      const r = await heatOf([...full().slice(1), s(1, 0, v)]);
      expect(r.problem?.reason, String(v)).toBe("BadData");
      expect(r.heat).toBeUndefined();
    }
  });

  it("a sample timestamp of 0 or older than the staleness bound is StaleData; far in the future is BadData", async () => {
    expect((await heatOf([...full().slice(1), s(1, 0, 1, 0)])).problem?.reason).toBe("StaleData");
    expect((await heatOf(full(10, NOW - MAX_SAMPLE_AGE_MS - 1000))).problem?.reason).toBe("StaleData");
    expect((await heatOf(full(10, NOW + 3_600_000))).problem?.reason).toBe("BadData");
  });

  it("series of other layers or experts are ignored; none in range is NoData", async () => {
    expect((await heatOf([s(0, 0, 1), s(9, 0, 1)])).problem?.reason).toBe("NoData");
    expect((await heatOf([])).problem?.reason).toBe("NoData");
  });
});

describe("latency samples", () => {
  it("one series is the latency, in the unit asked", async () => {
    expect(await latencyOf([one(0.05)])).toEqual({ p99Ms: 50, atMs: NOW });
  });

  it("several series are refused as ambiguous (the first is not picked)", async () => {
    const r = await latencyOf([one(0.01, NOW, { pod: "a" }), one(9, NOW, { pod: "b" })]);
    expect(r.p99Ms).toBeUndefined();
    expect(r.problem?.reason).toBe("BadData");
    expect(r.problem?.message).toMatch(/2 series; it must return exactly one/);
  });

  it("absurd, stale and zero-time samples are problems; NaN is no data", async () => {
    expect((await latencyOf([one(1e300)])).problem?.reason).toBe("BadData");
    expect((await latencyOf([one(-1)])).problem?.reason).toBe("BadData");
    expect((await latencyOf([one(0.02, 0)])).problem?.reason).toBe("StaleData");
    expect((await latencyOf([one(0.02, NOW - MAX_SAMPLE_AGE_MS - 1)])).problem?.reason).toBe("StaleData");
    expect((await latencyOf([one(Number.NaN)])).problem?.reason).toBe("NoData");
  });
});

describe("sources outside the allowlist", () => {
  it("a refused URL is a SourceNotAllowed reading and no request is made", async () => {
    let calls = 0;
    const deps = {
      prometheus: () => {
        calls++;
        return { queryVector: () => Promise.resolve([]), queryRange: () => Promise.resolve([]) };
      },
      core: undefined as never,
      nowMs: () => NOW,
      maxSourceTimeoutMs: 5_000,
      policy: {
        prometheusAllowedUrls: ["prometheus.monitoring.svc:9090"],
        fileHeatSourceDirs: [],
        fileHeatSourceMaxBytes: 1024,
      },
    } satisfies SourceDeps;
    const r = await readHeat(
      {
        type: "Prometheus",
        refreshIntervalSeconds: 5,
        prometheus: {
          url: "http://10.0.0.1:8080",
          query: "x",
          rateWindowSeconds: 60,
          timeoutSeconds: 5,
          layerLabel: "layer",
          expertLabel: "expert",
        },
      } as never,
      model,
      { namespace: "n", name: "m" },
      deps,
    );
    expect(r.problem?.reason).toBe("SourceNotAllowed");
    expect(calls).toBe(0);
  });
});

describe("heat read since a heat shift", () => {
  const windowed = {
    ...heatSource,
    prometheus: { ...heatSource.prometheus!, query: "rate(x[{{ window }}])", rateWindowSeconds: 10 },
  } as HeatSource;
  /** Deps that answer `perWindow(window)` and record the queries sent. */
  function recording(perWindow: (w: string) => VectorSample[]): { deps: SourceDeps; queries: string[] } {
    const queries: string[] = [];
    const deps = answering([]);
    deps.prometheus = () => ({
      queryVector: (q: string) => {
        queries.push(q);
        return Promise.resolve(perWindow(/\[(\w+)\]/.exec(q)![1]!));
      },
      queryRange: () => Promise.resolve([]),
    });
    return { deps, queries };
  }
  const shift = { fromMs: NOW - 6_200, followedUp: false };

  it("reads over the whole seconds since the detecting read when that holds enough tokens", async () => {
    const { deps, queries } = recording(() => full(40)); // 40 tok/s x 6 s = 240 per cell
    const r = await readHeatSinceShift(windowed, model, target, deps, shift);
    expect(queries).toEqual(["rate(x[6s])"]);
    expect(r.sinceShiftSeconds).toBe(6);
    expect(r.heat?.heat[0]).toEqual([40, 40, 40, 40]);
  });

  it("falls back to the configured window on too few tokens, no data, or no shift", async () => {
    for (const [perWindow, s] of [
      [(w: string) => (w === "6s" ? full(10) : full(12)), shift], // 60 per cell
      [(w: string) => (w === "6s" ? [] : full(12)), shift],
      [() => full(12), undefined],
      [() => full(12), { fromMs: NOW - 2_000, followedUp: false }], // too soon for a rate
    ] as const) {
      const { deps, queries } = recording(perWindow);
      const r = await readHeatSinceShift(windowed, model, target, deps, s);
      expect(queries.at(-1)).toBe("rate(x[10s])");
      expect(r.sinceShiftSeconds).toBeUndefined();
      expect(r.heat?.heat[0]).toEqual([12, 12, 12, 12]);
    }
    // Past the configured window, not followed up yet: the configured window, marked since the shift.
    const past = recording(() => full(12));
    const r = await readHeatSinceShift(windowed, model, target, past.deps, { fromMs: NOW - 30_000, followedUp: false });
    expect(past.queries).toEqual(["rate(x[10s])"]);
    expect(r.sinceShiftSeconds).toBe(10);
    // A query without {{window}} is read once, as configured.
    const { deps, queries } = recording(() => full(40));
    await readHeatSinceShift(heatSource, model, target, deps, shift);
    expect(queries).toEqual(["q"]);
  });
});
