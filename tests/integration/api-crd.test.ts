// The MoEDeployment CRD against a real kube-apiserver: invalid specs are
// rejected naming the field, samples round-trip with the same defaults zod
// applies, printer columns, `kubectl explain`, status and scale subresources.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parse } from "yaml";
import { startCluster, type LocalCluster } from "../../src/testing/cluster.ts";
import { CRD_FILE } from "../../src/api/crd-gen.ts";
import { ConditionReason, ConditionType, parseMoEDeployment, type MoEDeploymentStatus } from "../../src/api/index.ts";
import { BOUNDARY_CASES, INVALID_CASES, loadBaseSample } from "./api-invalid-cases.ts";

const root = fileURLToPath(new URL("../..", import.meta.url));
const SAMPLES_DIR = join(root, "deploy", "samples");
const NS = "default";

let cluster: LocalCluster;

async function kubectl(args: string[], input?: string) {
  return cluster.kubectl(args, input === undefined ? {} : { input });
}

beforeAll(async () => {
  cluster = await startCluster({ name: "api", gpuNodes: [] });
  const r = await kubectl(["apply", "-f", join(root, "crds")]);
  expect(r.code, r.stderr).toBe(0);
  const est = await kubectl(["wait", "--for=condition=Established", "--timeout=60s", "crd/moedeployments.moe.dev"]);
  expect(est.code, est.stderr).toBe(0);
});

afterAll(async () => {
  await cluster?.stop();
});

describe("CRD installation", () => {
  it("is the committed file and is accepted as structural", async () => {
    const r = await kubectl(["get", "crd", "moedeployments.moe.dev", "-o", "json"]);
    expect(r.code, r.stderr).toBe(0);
    const crd = JSON.parse(r.stdout) as { status: { conditions: { type: string; status: string; message: string }[] } };
    const cond = (t: string) => crd.status.conditions.find((c) => c.type === t);
    expect(cond("Established")?.status).toBe("True");
    expect(cond("NonStructuralSchema")).toBeUndefined();
    expect(readFileSync(join(root, CRD_FILE), "utf8")).toContain("name: moedeployments.moe.dev");
  });
});

describe("invalid MoEDeployments are rejected naming the field", () => {
  it.each(INVALID_CASES.map((c, i) => [c.name, c, i] as const))("%s", async (_name, c, i) => {
    const base = loadBaseSample(root);
    const m = structuredClone(base);
    c.mutate(m);
    const meta = m.metadata as Record<string, unknown>;
    // Cases about the name keep theirs.
    if (meta.name === (base.metadata as Record<string, unknown>).name) meta.name = `invalid-${i}`;
    // JSON, not YAML: kubectl reads YAML 1.1, where an unquoted `yes` is a boolean.
    const r = await kubectl(["apply", "-n", NS, "-f", "-"], JSON.stringify(m));
    expect(r.code, `accepted:\n${r.stdout}`).not.toBe(0);
    expect(r.stderr, `rejection does not name ${c.expectField}`).toContain(c.expectField);
    if (c.expectText) expect(r.stderr, `rejection does not say ${c.expectText}`).toContain(c.expectText);
    const gone = await kubectl(["get", "moed", "-n", NS, String(meta.name), "--ignore-not-found", "-o", "name"]);
    expect(gone.stdout.trim()).toBe("");
  });
});

describe("size bounds: the API server draws the line where the operator does", () => {
  it.each(BOUNDARY_CASES.map((c, i) => [c.name, c, i] as const))("%s", async (_name, c, i) => {
    const m = structuredClone(loadBaseSample(root));
    c.mutate(m);
    (m.metadata as Record<string, unknown>).name = `boundary-${i}`;
    const r = await kubectl(["apply", "--dry-run=server", "-n", NS, "-f", "-"], JSON.stringify(m));
    if (c.accepted) expect(r.code, r.stderr).toBe(0);
    else {
      expect(r.code, `accepted:\n${r.stdout}`).not.toBe(0);
      expect(r.stderr).toContain(c.field);
    }
  });
});

describe("samples", () => {
  const files = readdirSync(SAMPLES_DIR)
    .filter((f) => f.endsWith(".yaml"))
    .sort();

  it("kubectl apply -f deploy/samples/ works", async () => {
    expect(files.length).toBe(6);
    const r = await kubectl(["apply", "-n", NS, "-f", SAMPLES_DIR]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toBe("");
  });

  it.each(files)("%s round-trips: apiserver defaults equal zod defaults", async (file) => {
    const local = parse(readFileSync(join(SAMPLES_DIR, file), "utf8")) as { metadata: { name: string } };
    const localParsed = parseMoEDeployment(local);
    expect(localParsed.ok).toBe(true);
    const r = await kubectl(["get", "moed", "-n", NS, local.metadata.name, "-o", "json"]);
    expect(r.code, r.stderr).toBe(0);
    const fromServer = JSON.parse(r.stdout) as { spec: unknown };
    const serverParsed = parseMoEDeployment(fromServer);
    expect(serverParsed.ok ? serverParsed.warnings : serverParsed.issues).toEqual([]);
    if (!localParsed.ok || !serverParsed.ok) return;
    // The stored spec (server-side defaults applied, nothing pruned) is exactly
    // what zod produces from the file, and parsing it changes nothing.
    expect(fromServer.spec).toEqual(localParsed.value.spec);
    expect(serverParsed.value.spec).toEqual(localParsed.value.spec);
  });

  it("kubectl get moed shows the printer columns, filled from status", async () => {
    const status: MoEDeploymentStatus = {
      observedGeneration: 1,
      conditions: [
        {
          type: ConditionType.Ready,
          status: "True",
          reason: ConditionReason.AllComponentsReady,
          message: "2 shards serving within SLO",
          lastTransitionTime: "2025-01-01T00:00:00Z",
          observedGeneration: 1,
        },
        {
          type: ConditionType.SLOMet,
          status: "True",
          reason: ConditionReason.WithinTarget,
          message: "p99 36.5 ms <= 40 ms",
          lastTransitionTime: "2025-01-01T00:00:00Z",
          observedGeneration: 1,
        },
      ],
      selector: "moe.dev/deployment=mixtral-8x7b,moe.dev/component=expert-shard",
      currentShards: 2,
      desiredShards: 3,
      currentGpus: 3,
      desiredGpus: 4,
      latency: {
        metric: "TokenLatency",
        percentile: 99,
        observedMs: 36.5,
        targetMs: 40,
        sampleTime: "2025-01-01T00:00:00Z",
      },
      cost: { usdPerHour: 5.67, usdPerMillionTokens: 0.42 },
      placement: {
        version: 3,
        hash: "9f2c4e1a",
        balancedness: 0.93,
        movedFraction: 0.08,
        lastRebalanceTime: "2025-01-01T00:00:00Z",
      },
      lastScale: { time: "2025-01-01T00:00:00Z", fromShards: 2, toShards: 3, reason: ConditionReason.SLOTarget },
    };
    const p = await kubectl([
      "patch",
      "moed",
      "-n",
      NS,
      "mixtral-8x7b",
      "--subresource=status",
      "--type=merge",
      "-p",
      JSON.stringify({ status }),
    ]);
    expect(p.code, p.stderr).toBe(0);
    const back = await kubectl(["get", "moed", "-n", NS, "mixtral-8x7b", "-o", "json"]);
    const parsed = parseMoEDeployment(JSON.parse(back.stdout));
    expect(parsed.ok && parsed.value.status).toEqual(status);

    const r = await kubectl(["get", "moed", "-n", NS]);
    expect(r.code, r.stderr).toBe(0);
    const [header, ...rows] = r.stdout.trim().split("\n");
    expect(header!.split(/\s+/)).toEqual([
      "NAME",
      "MODE",
      "READY",
      "GPUS",
      "DESIRED",
      "LATENCY(MS)",
      "SLO(MS)",
      "$/H",
      "AGE",
    ]);
    const mixtral = rows.find((l) => l.startsWith("mixtral-8x7b"))!.split(/\s+/);
    expect(mixtral.slice(0, 8)).toEqual(["mixtral-8x7b", "Auto", "True", "3", "4", "36.5", "40", "5.67"]);
    const qwen = rows.find((l) => l.startsWith("qwen3-235b-a22b"))!.split(/\s+/);
    expect(qwen.slice(0, 2)).toEqual(["qwen3-235b-a22b", "Recommend"]);

    const wide = await kubectl(["get", "moed", "-n", NS, "-o", "wide"]);
    expect(wide.stdout.split("\n")[0]!.split(/\s+/)).toEqual(
      expect.arrayContaining(["REASON", "SHARDS", "METRIC", "BALANCE"]),
    );
    const byCategory = await kubectl(["get", "moe", "-n", NS, "-o", "name"]);
    expect(byCategory.stdout.trim().split("\n").sort()).toEqual([
      "moedeployment.moe.dev/deepseek-r1-decode",
      "moedeployment.moe.dev/deepseek-r1-prefill",
      "moedeployment.moe.dev/deepseek-r1-wideep",
      "moedeployment.moe.dev/deepseek-v3",
      "moedeployment.moe.dev/mixtral-8x7b",
      "moedeployment.moe.dev/qwen3-235b-a22b",
    ]);
    const selected = await kubectl(["get", "moed", "-n", NS, "--field-selector", "spec.mode=Recommend", "-o", "name"]);
    expect(selected.stdout.trim()).toBe("moedeployment.moe.dev/qwen3-235b-a22b");
  });

  it("the operator cannot write spec through the status subresource", async () => {
    const p = await kubectl([
      "patch",
      "moed",
      "-n",
      NS,
      "mixtral-8x7b",
      "--subresource=status",
      "--type=merge",
      "-p",
      JSON.stringify({ spec: { mode: "Recommend" } }),
    ]);
    expect(p.code, p.stderr).toBe(0);
    const r = await kubectl(["get", "moed", "-n", NS, "mixtral-8x7b", "-o", "jsonpath={.spec.mode}"]);
    expect(r.stdout).toBe("Auto");
  });

  it("kubectl scale sets the manual shard override, within bounds", async () => {
    const ok = await kubectl(["scale", "moed", "-n", NS, "mixtral-8x7b", "--replicas=4"]);
    expect(ok.code, ok.stderr).toBe(0);
    const r = await kubectl(["get", "moed", "-n", NS, "mixtral-8x7b", "-o", "jsonpath={.spec.scaling.shards}"]);
    expect(r.stdout).toBe("4");
    const scale = await kubectl([
      "get",
      "--raw",
      `/apis/moe.dev/v1alpha1/namespaces/${NS}/moedeployments/mixtral-8x7b/scale`,
    ]);
    const s = JSON.parse(scale.stdout) as {
      spec: { replicas: number };
      status: { replicas: number; selector: string };
    };
    expect(s.spec.replicas).toBe(4);
    expect(s.status).toEqual({
      replicas: 2,
      selector: "moe.dev/deployment=mixtral-8x7b,moe.dev/component=expert-shard",
    });
    const tooMany = await kubectl(["scale", "moed", "-n", NS, "mixtral-8x7b", "--replicas=20"]);
    expect(tooMany.code).not.toBe(0);
    expect(tooMany.stderr).toContain("spec.scaling.shards");
  });

  it("kubectl explain moedeployment.spec.slo explains the fields", async () => {
    const r = await kubectl(["explain", "moedeployment.spec.slo"]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain("The latency objective the operator scales toward.");
    for (const f of ["metric", "percentile", "targetLatencyMs", "evaluationWindowSeconds"])
      expect(r.stdout).toContain(f);
    expect(r.stdout).toMatch(/targetLatencyMs\s+<integer> -required-/);
    const leaf = await kubectl(["explain", "moed.spec.scaling.shards"]);
    expect(leaf.stdout).toContain("kubectl scale");
  });
});
