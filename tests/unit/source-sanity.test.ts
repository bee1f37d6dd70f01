// Metric sanity on the parsing side, the Prometheus URL allowlist and the File
// heat source policy: bad data and refused sources come back as readings with
// a problem (so the decision holds), with fixed messages.
import { mkdtemp, mkdir, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { VectorSample } from "../../src/adapters/prometheus.ts";
import type { ModelSpec } from "../../src/api/schema.ts";
import {
  heatFromSamples, latencyFromSamples, MAX_SAMPLE_AGE_MS, readHeat, type SourceDeps,
} from "../../src/controllers/moedeployment/sources.ts";
import { allowlistEntryProblem, prometheusUrlRefusal, readAllowedFile } from "../../src/controllers/moedeployment/source-policy.ts";

const NOW = 1_780_000_000_000;
const model = { layers: 3, denseLayers: 1, routedExperts: 4, topK: 2 } as unknown as ModelSpec;
const labels = { layerLabel: "layer", expertLabel: "expert" };
const s = (layer: number, expert: number, value: number, timestampMs = NOW): VectorSample => ({ labels: { layer: String(layer), expert: String(expert) }, value, timestampMs });
const full = (v = 10, t = NOW) => [1, 2].flatMap((l) => [0, 1, 2, 3].map((e) => s(l, e, v, t)));

describe("heat samples", () => {
  it("adds duplicate series and reads a full grid", () => {
    const r = heatFromSamples([...full(), s(1, 0, 5)], model, labels, NOW);
    expect(r.problem).toBeUndefined();
    expect(r.heat!.heat[0]![0]).toBe(15);
    expect(r.heat!.confidence).toBe(1);
  });

  it("duplicate series whose sum overflows to Infinity are BadData, not load 0", () => {
    const r = heatFromSamples([...full(), s(1, 0, 1e308), s(1, 0, 1e308)], model, labels, NOW);
    expect(r.heat).toBeUndefined();
    expect(r.problem?.reason).toBe("BadData");
  });

  it("absurd values (1e300, negative, NaN, +Inf) are BadData", () => {
    for (const v of [1e300, -1, Number.NaN, Number.POSITIVE_INFINITY]) {
      const r = heatFromSamples([...full().slice(1), s(1, 0, v)], model, labels, NOW);
      expect(r.problem?.reason, String(v)).toBe("BadData");
      expect(r.heat).toBeUndefined();
    }
  });

  it("a sample timestamp of 0 or older than the staleness bound is StaleData", () => {
    expect(heatFromSamples([...full().slice(1), s(1, 0, 1, 0)], model, labels, NOW).problem?.reason).toBe("StaleData");
    expect(heatFromSamples(full(10, NOW - MAX_SAMPLE_AGE_MS - 1000), model, labels, NOW).problem?.reason).toBe("StaleData");
    expect(heatFromSamples(full(10, NOW + 3_600_000), model, labels, NOW).problem?.reason).toBe("BadData");
  });

  it("series of other layers or experts are ignored; none in range is NoData", () => {
    expect(heatFromSamples([s(0, 0, 1), s(9, 0, 1)], model, labels, NOW).problem?.reason).toBe("NoData");
    expect(heatFromSamples([], model, labels, NOW).problem?.reason).toBe("NoData");
  });
});

describe("latency samples", () => {
  it("one series is the latency, in the unit asked", () => {
    expect(latencyFromSamples([{ labels: {}, value: 0.05, timestampMs: NOW }], 1000, NOW)).toEqual({ p99Ms: 50, atMs: NOW });
  });

  it("several series are refused as ambiguous (the first is not picked)", () => {
    const r = latencyFromSamples([{ labels: { pod: "a" }, value: 0.01, timestampMs: NOW }, { labels: { pod: "b" }, value: 9, timestampMs: NOW }], 1000, NOW);
    expect(r.p99Ms).toBeUndefined();
    expect(r.problem?.reason).toBe("BadData");
    expect(r.problem?.message).toMatch(/2 series; it must return exactly one/);
  });

  it("absurd, stale and zero-time samples are problems; NaN is no data", () => {
    expect(latencyFromSamples([{ labels: {}, value: 1e300, timestampMs: NOW }], 1, NOW).problem?.reason).toBe("BadData");
    expect(latencyFromSamples([{ labels: {}, value: -1, timestampMs: NOW }], 1, NOW).problem?.reason).toBe("BadData");
    expect(latencyFromSamples([{ labels: {}, value: 20, timestampMs: 0 }], 1, NOW).problem?.reason).toBe("StaleData");
    expect(latencyFromSamples([{ labels: {}, value: 20, timestampMs: NOW - MAX_SAMPLE_AGE_MS - 1 }], 1, NOW).problem?.reason).toBe("StaleData");
    expect(latencyFromSamples([{ labels: {}, value: Number.NaN, timestampMs: NOW }], 1, NOW).problem?.reason).toBe("NoData");
  });
});

describe("Prometheus URL allowlist", () => {
  const field = "spec.heatSource.prometheus.url";
  const allow = (url: string, list: string[]) => prometheusUrlRefusal(url, field, { prometheusAllowedUrls: list }) === undefined;

  it("an empty list allows nothing, and says which flag to set", () => {
    expect(prometheusUrlRefusal("http://prometheus.monitoring.svc:9090", field, { prometheusAllowedUrls: [] })).toMatch(/^spec\.heatSource\.prometheus\.url: .*--prometheus-allowed-urls is empty/);
  });

  it("base URL entries match scheme, host, port and a path prefix on a segment boundary", () => {
    const list = ["http://prometheus.monitoring.svc:9090/prom"];
    expect(allow("http://prometheus.monitoring.svc:9090/prom", list)).toBe(true);
    expect(allow("http://prometheus.monitoring.svc:9090/prom/", list)).toBe(true);
    expect(allow("http://prometheus.monitoring.svc:9090/prom/x", list)).toBe(true);
    expect(allow("http://prometheus.monitoring.svc:9090/promx", list)).toBe(false);
    expect(allow("https://prometheus.monitoring.svc:9090/prom", list)).toBe(false);
    expect(allow("http://prometheus.monitoring.svc:9091/prom", list)).toBe(false);
    expect(allow("http://prometheus.monitoring.svc.evil.com:9090/prom", list)).toBe(false);
    expect(allow("http://user:pw@prometheus.monitoring.svc:9090/prom", list)).toBe(false);
    expect(allow("http://prometheus.monitoring.svc:9090/prom?x=1", list)).toBe(false);
  });

  it("host patterns match the host (a leading *. for subdomains) and the port when given", () => {
    expect(allow("http://prometheus.monitoring.svc:9090", ["prometheus.monitoring.svc:9090"])).toBe(true);
    expect(allow("http://prometheus.monitoring.svc:9091", ["prometheus.monitoring.svc:9090"])).toBe(false);
    expect(allow("http://prometheus.monitoring.svc:1234", ["prometheus.monitoring.svc"])).toBe(true);
    expect(allow("http://a.monitoring.svc", ["*.monitoring.svc"])).toBe(true);
    expect(allow("http://monitoring.svc", ["*.monitoring.svc"])).toBe(false);
    expect(allow("http://xmonitoring.svc", ["*.monitoring.svc"])).toBe(false);
    // Numeric spellings of an address are normalised before matching.
    expect(allow("http://2130706433:9090", ["prometheus.monitoring.svc:9090"])).toBe(false);
    expect(allow("http://2130706433:9090", ["127.0.0.1:9090"])).toBe(true);
  });

  it("malformed entries are named", () => {
    expect(allowlistEntryProblem("http://p:9090")).toBeUndefined();
    expect(allowlistEntryProblem("p.monitoring:9090")).toBeUndefined();
    expect(allowlistEntryProblem("http://u:p@p:9090")).toMatch(/credentials/);
    expect(allowlistEntryProblem("ftp://p")).toMatch(/host\[:port\]/);
    expect(allowlistEntryProblem("a b")).toMatch(/host\[:port\]/);
  });

  it("a refused URL is a SourceNotAllowed reading and no request is made", async () => {
    let calls = 0;
    const deps = {
      prometheus: () => { calls++; return { queryVector: () => Promise.resolve([]) }; },
      core: undefined as never, nowMs: () => NOW, maxSourceTimeoutMs: 5_000,
      policy: { prometheusAllowedUrls: ["prometheus.monitoring.svc:9090"], fileHeatSourceDirs: [], fileHeatSourceMaxBytes: 1024 },
    } satisfies SourceDeps;
    const r = await readHeat({ type: "Prometheus", refreshIntervalSeconds: 5, prometheus: { url: "http://10.0.0.1:8080", query: "x", rateWindowSeconds: 60, timeoutSeconds: 5, layerLabel: "layer", expertLabel: "expert" } } as never, model, { namespace: "n", name: "m" }, deps);
    expect(r.problem?.reason).toBe("SourceNotAllowed");
    expect(calls).toBe(0);
  });
});

describe("File heat source policy", () => {
  let root: string;
  let allowed: string;
  const policy = () => ({ fileHeatSourceDirs: [allowed], fileHeatSourceMaxBytes: 1024 });

  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), "heat-file-"));
    allowed = join(root, "allowed");
    await mkdir(allowed);
    await writeFile(join(allowed, "heat.json"), JSON.stringify({ logical_count: [[0, 0], [1, 2]] }));
    await writeFile(join(allowed, "big.json"), "x".repeat(4096));
    await writeFile(join(root, "token"), "TOPSECRET-token");
    await symlink(join(root, "token"), join(allowed, "escape.json"));
    await symlink("/dev/zero", join(allowed, "zero.json"));
  });
  afterAll(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it("is disabled with no allowed directory, naming the field and the flag", async () => {
    const r = await readAllowedFile("/dev/zero", { fileHeatSourceDirs: [], fileHeatSourceMaxBytes: 1024 });
    expect(r).toEqual({ ok: false, message: "spec.heatSource.file.path: File heat sources are disabled on this operator (--file-heat-source-dirs is empty); nothing was read" });
  });

  it("reads an allowed regular file", async () => {
    const r = await readAllowedFile(join(allowed, "heat.json"), policy());
    expect(r.ok).toBe(true);
  });

  it("refuses paths outside, .. escapes, symlink escapes, devices and files over the cap, never with their bytes", async () => {
    const outcomes = await Promise.all([
      join(root, "token"), `${allowed}/../token`, join(allowed, "escape.json"), join(allowed, "zero.json"), "/dev/zero",
      join(allowed, "missing.json"), "relative/heat.json", join(allowed, "big.json"),
    ].map((p) => readAllowedFile(p, policy())));
    for (const o of outcomes) {
      expect(o.ok).toBe(false);
      if (!o.ok) {
        expect(o.message).toMatch(/^spec\.heatSource\.file\.path: /);
        expect(o.message).not.toContain("TOPSECRET");
      }
    }
    const big = outcomes.at(-1)!;
    expect(!big.ok && big.message).toMatch(/larger than 1024 bytes/);
  });
});
