// The generated CRD: committed file is current, schema is structural, and the
// defaults the API server applies are the defaults zod applies.
import { describe, expect, it } from "vitest";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { spawnSync } from "node:child_process";
import { parse } from "yaml";
import {
  CRD_FILE,
  PRINTER_COLUMNS,
  buildMoEDeploymentCrd,
  renderCrdYaml,
  structuralSchemaOf,
  StructuralSchemaError,
  type JsonSchema,
} from "../../src/api/crd-gen.ts";
import { z } from "zod";
import { API_GROUP, API_VERSION, KIND, MoEDeploymentSpecSchema, parseMoEDeploymentSpec } from "../../src/api/index.ts";

const root = fileURLToPath(new URL("../..", import.meta.url));

type Crd = {
  spec: {
    versions: {
      schema: { openAPIV3Schema: JsonSchema };
      subresources: Record<string, unknown>;
      additionalPrinterColumns: unknown[];
    }[];
    names: Record<string, unknown>;
    group: string;
  };
};
const crd = buildMoEDeploymentCrd() as unknown as Crd;
const version = crd.spec.versions[0]!;
const schema = version.schema.openAPIV3Schema;

/** Every schema node with its path. */
function* walk(node: JsonSchema, path: string): Generator<[string, JsonSchema]> {
  yield [path, node];
  for (const [name, child] of Object.entries((node.properties ?? {}) as Record<string, JsonSchema>))
    yield* walk(child, `${path}.${name}`);
  if (node.items) yield* walk(node.items as JsonSchema, `${path}[*]`);
  if (typeof node.additionalProperties === "object") yield* walk(node.additionalProperties as JsonSchema, `${path}{*}`);
}
const nodes = [...walk(schema, "")];

describe("committed CRD", () => {
  it(`${CRD_FILE} is what make manifests generates (run make manifests if this fails)`, () => {
    expect(readFileSync(join(root, CRD_FILE), "utf8")).toBe(renderCrdYaml());
  });

  it("gen-crds --check passes on the committed file", () => {
    const r = spawnSync(process.execPath, [join(root, "src/cli/gen-crds.ts"), "--check"], {
      cwd: root,
      encoding: "utf8",
    });
    expect(r.status, r.stderr).toBe(0);
  });

  it("the YAML parses back to the generated object", () => {
    expect(parse(readFileSync(join(root, CRD_FILE), "utf8"))).toEqual(buildMoEDeploymentCrd());
  });

  it("names the API as designed", () => {
    expect(crd.spec.group).toBe(API_GROUP);
    expect(version).toMatchObject({ name: API_VERSION, served: true, storage: true });
    expect(crd.spec.names).toEqual({
      kind: KIND,
      listKind: "MoEDeploymentList",
      plural: "moedeployments",
      singular: "moedeployment",
      shortNames: ["moed"],
      categories: ["moe"],
    });
    expect(version.subresources).toEqual({
      status: {},
      scale: {
        specReplicasPath: ".spec.scaling.shards",
        statusReplicasPath: ".status.currentShards",
        labelSelectorPath: ".status.selector",
      },
    });
    expect(PRINTER_COLUMNS.filter((c) => !("priority" in c)).map((c) => c.name)).toEqual([
      "Mode",
      "Ready",
      "GPUs",
      "Desired",
      "Latency(ms)",
      "SLO(ms)",
      "$/h",
      "Age",
    ]);
  });
});

describe("structural schema", () => {
  it("has no refs, unions or unsupported keywords", () => {
    const text = JSON.stringify(schema);
    for (const bad of ['"$ref"', '"$defs"', '"anyOf"', '"oneOf"', '"allOf"', '"not"', '"const"', '"$schema"'])
      expect(text).not.toContain(bad);
  });

  it("has a type on every node, or preserves unknown fields", () => {
    const untyped = nodes
      .filter(([, n]) => n.type === undefined && n["x-kubernetes-preserve-unknown-fields"] !== true)
      .map(([p]) => p);
    expect(untyped).toEqual([]);
  });

  it("has a description on every property (kubectl explain), except metadata", () => {
    const missing = nodes
      .filter(([p, n]) => p !== "" && p !== ".metadata" && !p.endsWith("[*]") && !p.endsWith("{*}") && !n.description)
      .map(([p]) => p);
    expect(missing).toEqual([]);
    expect(nodes.length).toBeGreaterThan(150);
  });

  it("never combines properties with additionalProperties", () => {
    expect(nodes.filter(([, n]) => n.properties && n.additionalProperties !== undefined).map(([p]) => p)).toEqual([]);
  });

  it("preserves unknown fields exactly where core/v1 objects are embedded", () => {
    const preserved = nodes
      .filter(([, n]) => n["x-kubernetes-preserve-unknown-fields"] === true)
      .map(([p]) => p)
      .sort();
    expect(preserved).toEqual([
      ".spec.serving.expertShards.template.metadata",
      ".spec.serving.expertShards.template.spec",
      ".spec.serving.expertShards.template.spec.containers[*]",
      ".spec.serving.gpu.affinity",
      ".spec.serving.router.template.metadata",
      ".spec.serving.router.template.spec",
      ".spec.serving.router.template.spec.containers[*]",
      ".spec.serving.wideEP.template.metadata",
      ".spec.serving.wideEP.template.spec",
      ".spec.serving.wideEP.template.spec.containers[*]",
    ]);
  });

  it("gives every integer a format and no JavaScript safe-integer bounds", () => {
    for (const [p, n] of nodes.filter(([, n]) => n.type === "integer")) {
      expect(["int32", "int64"], p).toContain(n.format);
      expect(Math.abs(Number(n.maximum ?? 0)), p).toBeLessThan(2 ** 31);
    }
  });

  it("bounds every string and list (CEL cost) in spec", () => {
    const unbounded = nodes
      .filter(
        ([p, n]) =>
          p.startsWith(".spec") &&
          ((n.type === "string" && n.maxLength === undefined && n.enum === undefined) ||
            (n.type === "array" && n.maxItems === undefined)),
      )
      .map(([p]) => p)
      .filter((p) => !p.includes("{*}"));
    expect(unbounded).toEqual([]);
  });

  it("keys list-maps on required fields", () => {
    for (const [p, n] of nodes.filter(([, n]) => n["x-kubernetes-list-type"] === "map")) {
      const keys = n["x-kubernetes-list-map-keys"] as string[];
      const items = n.items as JsonSchema;
      for (const k of keys) expect(items.required as string[], `${p} key ${k}`).toContain(k);
    }
  });

  it("attaches each CEL rule with a message, and a fieldPath that exists", () => {
    const rules = nodes.flatMap(([p, n]) =>
      ((n["x-kubernetes-validations"] ?? []) as { rule: string; message: string; fieldPath?: string }[]).map((r) => ({
        p,
        n,
        r,
      })),
    );
    expect(rules.length).toBeGreaterThanOrEqual(15);
    for (const { p, n, r } of rules) {
      expect(r.message.length, `${p}: ${r.rule}`).toBeGreaterThan(10);
      if (r.fieldPath) {
        let cur: JsonSchema | undefined = n;
        for (const seg of r.fieldPath.split(".").slice(1))
          cur = (cur?.properties as Record<string, JsonSchema> | undefined)?.[seg];
        expect(cur, `${p}: fieldPath ${r.fieldPath}`).toBeDefined();
      }
    }
  });

  it("rejects zod schemas that are not structural", () => {
    expect(() => structuralSchemaOf(z.object({ a: z.union([z.string(), z.number()]).describe("a") }), "x")).toThrow(
      StructuralSchemaError,
    );
    expect(() => structuralSchemaOf(z.object({ a: z.string() }), "x")).toThrow(/x\.a: missing description/);
  });
});

/** The API server's defaulting (structural defaulting, top-down), for comparison with zod. */
function applyCrdDefaults(node: JsonSchema, value: unknown): unknown {
  if (Array.isArray(value)) return value.map((v) => applyCrdDefaults(node.items as JsonSchema, v));
  if (typeof value !== "object" || value === null) return value;
  const out: Record<string, unknown> = { ...(value as Record<string, unknown>) };
  for (const [k, child] of Object.entries((node.properties ?? {}) as Record<string, JsonSchema>)) {
    if (out[k] === undefined && child.default !== undefined) out[k] = structuredClone(child.default);
    if (out[k] !== undefined) out[k] = applyCrdDefaults(child, out[k]);
  }
  return out;
}

describe("defaults", () => {
  const specSchema = (schema.properties as Record<string, JsonSchema>).spec!;
  const samples = ["deepseek-v3", "qwen3-235b-a22b", "mixtral-8x7b"].map(
    (n) =>
      [n, (parse(readFileSync(join(root, "deploy/samples", `${n}.yaml`), "utf8")) as { spec: unknown }).spec] as const,
  );
  const minimal = {
    model: { layers: 4, routedExperts: 4, topK: 1, expertWeightBytes: 1024, expertSlotsPerGpu: 4 },
    serving: {
      router: { template: { spec: { containers: [{ name: "r", image: "r:1" }] } } },
      expertShards: { template: { spec: { containers: [{ name: "e", image: "e:1" }] } } },
    },
    slo: { targetLatencyMs: 100 },
    scaling: { minShards: 1, maxShards: 2 },
    heatSource: { type: "File", file: { path: "/heat.json" } },
    latencySource: { type: "Static", static: { latencyMs: 50 } },
  };

  it.each([...samples, ["minimal", minimal] as const])("CRD defaults equal zod defaults: %s", (_n, spec) => {
    const zodOut = MoEDeploymentSpecSchema.parse(spec);
    expect(applyCrdDefaults(specSchema, spec)).toEqual(zodOut);
  });

  it("a minimal spec gets every default", () => {
    const r = parseMoEDeploymentSpec(minimal);
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.value).toMatchObject({
      mode: "Auto",
      model: { denseLayers: 0, sharedExperts: 0 },
      serving: { gpu: { resourceName: "nvidia.com/gpu" }, router: { replicas: 1, gpusPerReplica: 1 } },
      placement: {
        rebalanceIntervalSeconds: 300,
        minBalancednessGainPercent: 1,
        maxMovedPercent: 10,
        topologyKey: "kubernetes.io/hostname",
      },
      slo: { metric: "InterTokenLatency", percentile: 99, evaluationWindowSeconds: 60 },
      scaling: {
        scaleUp: { stabilizationWindowSeconds: 0, maxShardsPerStep: 16 },
        scaleDown: { stabilizationWindowSeconds: 600, maxShardsPerStep: 4 },
      },
      heatSource: { refreshIntervalSeconds: 30 },
      prewarm: {
        coldStartSeconds: 300,
        predictive: { enabled: false, leadSeconds: 900 },
        burst: { enabled: true, panicThresholdPercent: 200, panicWindowSeconds: 30 },
      },
      cost: { defaultUsdPerGpuHour: 0 },
    });
  });
});
