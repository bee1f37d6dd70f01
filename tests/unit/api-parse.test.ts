// parseMoEDeployment: samples round-trip with defaults; the semantic validator
// catches what the schema cannot; bad input is a value, never a throw.
import { describe, expect, it } from "vitest";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import fc from "fast-check";
import { parse } from "yaml";
import {
  checkCron,
  checkTimeZone,
  expertReplicaBytes,
  formatFieldPath,
  formatIssues,
  moeLayerCount,
  parseMoEDeployment,
  parseMoEDeploymentSpec,
  routerGpuCount,
  validateMoEDeploymentSpec,
  type ApiIssue,
  type MoEDeployment,
} from "../../src/api/index.ts";
import { setPath, unsetPath, type Manifest } from "../integration/api-invalid-cases.ts";

const root = fileURLToPath(new URL("../..", import.meta.url));
const load = (name: string) => parse(readFileSync(join(root, "deploy/samples", `${name}.yaml`), "utf8")) as Manifest;
const SAMPLES = ["deepseek-v3", "qwen3-235b-a22b", "mixtral-8x7b"];

function mustParse(obj: unknown): MoEDeployment {
  const r = parseMoEDeployment(obj);
  if (!r.ok) throw new Error(`unexpected issues: ${formatIssues(r.issues)}`);
  return r.value;
}

describe("samples", () => {
  it.each(SAMPLES)("%s parses without issues or warnings and round-trips", (name) => {
    const r = parseMoEDeployment(load(name));
    expect(r.ok ? r.warnings : r.issues).toEqual([]);
    const once = mustParse(load(name));
    // Parsing the parsed (defaulted) object changes nothing: defaults are stable.
    expect(mustParse(structuredClone(once))).toEqual(once);
    // Every field the user wrote survives, including unknown pod template fields.
    expect(once.spec).toMatchObject(load(name).spec as object);
  });

  it("DeepSeek-V3 has the published shape", () => {
    const spec = mustParse(load("deepseek-v3")).spec;
    expect(moeLayerCount(spec.model)).toBe(58);
    expect(expertReplicaBytes(spec.model)).toBe(44_040_192);
    expect(spec.scaling.minShards * spec.model.expertSlotsPerGpu - spec.model.routedExperts).toBe(32);
    expect(routerGpuCount(spec)).toBe(32);
  });

  it("Qwen3 and Mixtral have the published shapes", () => {
    const qwen = mustParse(load("qwen3-235b-a22b")).spec.model;
    expect([qwen.layers, moeLayerCount(qwen), qwen.routedExperts, qwen.topK, qwen.sharedExperts]).toEqual([
      94, 94, 128, 8, 0,
    ]);
    const mixtral = mustParse(load("mixtral-8x7b")).spec.model;
    expect([mixtral.layers, mixtral.routedExperts, mixtral.topK, expertReplicaBytes(mixtral)]).toEqual([
      32, 8, 2, 352_321_536,
    ]);
  });
});

interface SemanticCase {
  name: string;
  mutate: (m: Manifest) => void;
  path: string;
  severity: ApiIssue["severity"];
  message?: RegExp;
}

const sched = (over: Record<string, unknown>) => [
  { name: "peak", start: "0 9 * * *", durationMinutes: 60, minShards: 4, ...over },
];

const SEMANTIC_CASES: SemanticCase[] = [
  {
    name: "cron that never fires (30 February)",
    mutate: (m) => setPath(m, "spec.prewarm.schedules", sched({ start: "0 0 30 2 *" })),
    path: "spec.prewarm.schedules[0].start",
    severity: "error",
    message: /never fires/,
  },
  {
    name: "cron on 31 April",
    mutate: (m) => setPath(m, "spec.prewarm.schedules", sched({ start: "0 0 31 4 *" })),
    path: "spec.prewarm.schedules[0].start",
    severity: "error",
  },
  {
    name: "unknown time zone",
    mutate: (m) => setPath(m, "spec.prewarm.schedules", sched({ timeZone: "Mars/Olympus_Mons" })),
    path: "spec.prewarm.schedules[0].timeZone",
    severity: "error",
    message: /unknown time zone/,
  },
  {
    name: "expert slots do not fit GPU memory",
    mutate: (m) => setPath(m, "spec.serving.gpu.memoryBytes", 40 * 1024 ** 3),
    path: "spec.model.expertSlotsPerGpu",
    severity: "error",
    message: /42\.0 GiB exceeds .*40\.0 GiB/,
  },
  {
    name: "misspelt query placeholder",
    mutate: (m) =>
      setPath(m, "spec.latencySource.prometheus.query", 'histogram_quantile({{quantile}}, x{ns="{{namespce}}"})'),
    path: "spec.latencySource.prometheus.query",
    severity: "error",
    message: /\{\{namespce\}\}/,
  },
  {
    name: "unbalanced braces in query",
    mutate: (m) => setPath(m, "spec.latencySource.prometheus.query", "x{{quantile}"),
    path: "spec.latencySource.prometheus.query",
    severity: "error",
    message: /unbalanced/,
  },
  {
    name: "URL that passes the pattern but does not parse",
    mutate: (m) => setPath(m, "spec.latencySource.prometheus.url", "http://[::1"),
    path: "spec.latencySource.prometheus.url",
    severity: "error",
  },
  {
    name: "duplicate container names",
    mutate: (m) =>
      setPath(m, "spec.serving.expertShards.template.spec.containers[1]", { name: "expert-worker", image: "x:1" }),
    path: "spec.serving.expertShards.template.spec.containers[1].name",
    severity: "error",
  },
  {
    name: "window floor below minShards",
    mutate: (m) => setPath(m, "spec.prewarm.schedules", sched({ minShards: 1 })),
    path: "spec.prewarm.schedules[0].minShards",
    severity: "warning",
  },
  {
    name: "budget below the minimum capacity",
    mutate: (m) => setPath(m, "spec.cost.maxUsdPerHour", 2),
    path: "spec.cost.maxUsdPerHour",
    severity: "warning",
    message: /3 GPUs/,
  },
  {
    name: "budget without prices",
    mutate: (m) => setPath(m, "spec.cost.defaultUsdPerGpuHour", 0),
    path: "spec.cost.maxUsdPerHour",
    severity: "warning",
  },
  {
    name: "template sets an operator label",
    mutate: (m) => setPath(m, "spec.serving.router.template.metadata", { labels: { "moe.dev/component": "mine" } }),
    path: "spec.serving.router.template.metadata.labels",
    severity: "error",
  },
  {
    name: "redundancy bound out of reach",
    mutate: (m) => setPath(m, "spec.placement.maxRedundantSlotsPerLayer", 100),
    path: "spec.placement.maxRedundantSlotsPerLayer",
    severity: "warning",
  },
];

describe("semantic validator", () => {
  it.each(SEMANTIC_CASES.map((c) => [c.name, c] as const))("%s", (_n, c) => {
    const m = load("mixtral-8x7b");
    c.mutate(m);
    const r = parseMoEDeployment(m);
    const issues = r.ok ? r.warnings : r.issues;
    expect(r.ok).toBe(c.severity === "warning");
    const hit = issues.find((i) => i.path === c.path);
    expect(hit, JSON.stringify(issues)).toBeDefined();
    expect(hit!.severity).toBe(c.severity);
    if (c.message) expect(hit!.message).toMatch(c.message);
  });

  it("checks cron and time zones directly", () => {
    expect(checkCron("0 12 * * *", "Asia/Shanghai")).toBeUndefined();
    expect(checkCron("@daily")).toBeUndefined();
    expect(checkCron("0 0 29 2 *")).toBeUndefined(); // leap years
    expect(checkCron("*/5 * * * * *")).toMatch(/invalid cron/); // six fields: seconds are not allowed
    expect(checkTimeZone("Europe/Berlin")).toBeUndefined();
    expect(checkTimeZone("Europe/Atlantis")).toMatch(/unknown time zone/);
  });

  it("reports every issue of a spec, with paths from basePath", () => {
    const spec = structuredClone(load("mixtral-8x7b").spec) as Manifest;
    setPath(spec, "prewarm.schedules", sched({ start: "0 0 30 2 *", timeZone: "UTC" }));
    setPath(spec, "serving.gpu.memoryBytes", 1);
    const r = parseMoEDeploymentSpec(spec, "spec");
    expect(r.ok ? [] : r.issues.map((i) => i.path).sort()).toEqual([
      "spec.model.expertSlotsPerGpu",
      "spec.prewarm.schedules[0].start",
    ]);
    const parsed = parseMoEDeploymentSpec(load("mixtral-8x7b").spec);
    expect(parsed.ok && validateMoEDeploymentSpec(parsed.value, "x")).toEqual([]);
  });
});

describe("bad input is a value", () => {
  it("never throws, whatever the object", () => {
    fc.assert(
      fc.property(fc.jsonValue(), (v) => {
        const r = parseMoEDeployment(v);
        expect(r.ok).toBe(false);
      }),
      { numRuns: 300 },
    );
  });

  it("never throws on a sample with one field replaced by garbage", () => {
    const base = load("deepseek-v3");
    const paths = [
      "spec.model",
      "spec.model.topK",
      "spec.serving.router.template",
      "spec.prewarm.schedules",
      "spec.prewarm.schedules[0]",
      "spec.prewarm.schedules[0].start",
      "spec.cost",
      "spec.heatSource.prometheus.query",
      "spec.scaling",
      "metadata",
    ];
    fc.assert(
      fc.property(fc.constantFrom(...paths), fc.jsonValue(), (path, v) => {
        const m = structuredClone(base);
        setPath(m, path, v);
        const r = parseMoEDeployment(m);
        if (!r.ok) expect(r.issues.every((i) => i.path.length > 0 && i.message.length > 0)).toBe(true);
      }),
      { numRuns: 300 },
    );
  });

  it("names missing fields like the API server does", () => {
    const m = load("mixtral-8x7b");
    unsetPath(m, "spec.slo.targetLatencyMs");
    const r = parseMoEDeployment(m);
    expect(r.ok ? [] : r.issues).toEqual([
      { path: "spec.slo.targetLatencyMs", message: "Required value", severity: "error" },
    ]);
  });

  it("keeps a valid status and drops an unreadable one with a warning", () => {
    const good = {
      ...load("mixtral-8x7b"),
      status: {
        observedGeneration: 2,
        currentShards: 2,
        conditions: [
          {
            type: "Ready",
            status: "True",
            reason: "AllComponentsReady",
            message: "",
            lastTransitionTime: "2025-01-01T00:00:00Z",
          },
        ],
      },
    };
    expect(mustParse(good).status).toEqual(good.status);
    const bad = { ...load("mixtral-8x7b"), status: { currentShards: "two" } };
    const r = parseMoEDeployment(bad);
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.value.status).toBeUndefined();
    expect(r.warnings).toEqual([expect.objectContaining({ path: "status.currentShards", severity: "warning" })]);
  });
});

describe("formatting", () => {
  it("formats field paths Kubernetes style", () => {
    expect(formatFieldPath(["spec", "prewarm", "schedules", 0, "start"])).toBe("spec.prewarm.schedules[0].start");
    expect(formatFieldPath([])).toBe("");
  });

  it("formats issues sorted, de-duplicated and bounded", () => {
    const issues: ApiIssue[] = [
      { path: "spec.b", message: "second", severity: "error" },
      { path: "spec.a", message: "first", severity: "error" },
      { path: "spec.b", message: "second", severity: "error" },
    ];
    expect(formatIssues(issues)).toBe("spec.a: first; spec.b: second");
    const many = Array.from({ length: 2000 }, (_, i) => ({
      path: `spec.f${String(i).padStart(4, "0")}`,
      message: "x".repeat(40),
      severity: "error" as const,
    }));
    const text = formatIssues(many);
    expect(text.length).toBeLessThanOrEqual(32_768);
    expect(text).toMatch(/and \d+ more$/);
  });
});
