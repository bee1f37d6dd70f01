// Invalid MoEDeployments, each one mistake away from a valid sample, and the
// field a platform engineer must see named in the rejection. Used twice:
// tests/integration/api-validation.test.ts applies them to a real API server,
// tests/unit/api-invalid-cases.test.ts runs them through the zod parser.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { parse } from "yaml";
import { maxShardsForConfigMap } from "../../src/api/sizes.ts";

export type Manifest = Record<string, unknown>;

export interface InvalidCase {
  name: string;
  /** Changes a deep copy of the base sample (deploy/samples/mixtral-8x7b.yaml). */
  mutate: (m: Manifest) => void;
  /** Field path that must appear in the rejection, Kubernetes style (`spec.a.b[0].c`). */
  expectField: string;
  /**
   * Whether parseMoEDeployment also rejects it naming the field. False only for
   * what the API server rejects by design and the operator never sees (unknown
   * fields are rejected by kubectl's strict field validation and pruned by the
   * server; zod strips them).
   */
  localRejects?: boolean;
  /** Text that must also appear in the rejection (e.g. the limit that was exceeded). */
  expectText?: string;
}

export const BASE_SAMPLE = "deploy/samples/mixtral-8x7b.yaml";

export function loadBaseSample(root: string): Manifest {
  return parse(readFileSync(join(root, BASE_SAMPLE), "utf8")) as Manifest;
}

type Segment = string | number;

function segments(path: string): Segment[] {
  const out: Segment[] = [];
  for (const part of path.split(".")) {
    const m = /^([^[\]]+)((\[\d+\])*)$/.exec(part);
    if (!m) throw new Error(`bad path segment ${part} in ${path}`);
    out.push(m[1]!);
    for (const idx of (m[2] ?? "").matchAll(/\[(\d+)\]/g)) out.push(Number(idx[1]));
  }
  return out;
}

function parentOf(obj: Manifest, path: string, create: boolean): { parent: Record<Segment, unknown>; key: Segment } {
  const segs = segments(path);
  let cur: Record<Segment, unknown> = obj;
  for (const [i, seg] of segs.slice(0, -1).entries()) {
    let next = cur[seg];
    if (next === undefined || next === null) {
      if (!create) throw new Error(`path ${path} does not exist`);
      next = typeof segs[i + 1] === "number" ? [] : {};
      cur[seg] = next;
    }
    cur = next as Record<Segment, unknown>;
  }
  return { parent: cur, key: segs[segs.length - 1]! };
}

/** Sets a value at a path like `spec.prewarm.schedules[0].start`, creating parents. */
export function setPath(obj: Manifest, path: string, value: unknown): void {
  const { parent, key } = parentOf(obj, path, true);
  parent[key] = value;
}

/** Removes the value at a path. */
export function unsetPath(obj: Manifest, path: string): void {
  const { parent, key } = parentOf(obj, path, false);
  if (Array.isArray(parent) && typeof key === "number") parent.splice(key, 1);
  else delete parent[key];
}

const set = (path: string, value: unknown) => (m: Manifest) => setPath(m, path, value);
const unset = (path: string) => (m: Manifest) => unsetPath(m, path);
const all =
  (...fs: ((m: Manifest) => void)[]) =>
  (m: Manifest) =>
    fs.forEach((f) => f(m));

const schedule = (over: Record<string, unknown> = {}) => ({
  name: "peak",
  start: "0 9 * * MON-FRI",
  durationMinutes: 480,
  timeZone: "Europe/Berlin",
  minShards: 4,
  ...over,
});

const promHeat = {
  url: "http://prometheus.monitoring:9090",
  query: "sum by (layer, expert) (rate(moe_expert_routed_tokens_total[{{window}}]))",
};

const gitops = {
  repository: "acme/inference-config",
  path: "clusters/prod/mixtral.yaml",
  credentials: { tokenSecretRef: { name: "github-token" } },
};

/** DeepSeek-V3's shape (deploy/samples/deepseek-v3.yaml). */
const deepSeekV3 = {
  layers: 61,
  denseLayers: 3,
  routedExperts: 256,
  topK: 8,
  sharedExperts: 1,
  expertParameters: 44040192,
  weightDtype: "FP8",
  expertSlotsPerGpu: 9,
};

/** The base sample turned into a WideEP spec: one group of nodesPerGroup x 8 GPUs, the router's template. */
const toWideEP =
  (nodesPerGroup = 1) =>
  (m: Manifest) => {
    const serving = (m.spec as Manifest).serving as Manifest;
    const template = (serving.router as Manifest).template;
    delete serving.router;
    delete serving.expertShards;
    serving.topology = "WideEP";
    serving.wideEP = { nodesPerGroup, gpusPerNode: 8, template };
  };

export const INVALID_CASES: InvalidCase[] = [
  // --- wrong types
  { name: "layers is a string", mutate: set("spec.model.layers", "thirty-two"), expectField: "spec.model.layers" },
  {
    name: "target latency with a unit suffix",
    mutate: set("spec.slo.targetLatencyMs", "40ms"),
    expectField: "spec.slo.targetLatencyMs",
  },
  {
    name: "fractional byte count",
    mutate: all(
      unset("spec.model.expertParameters"),
      unset("spec.model.weightDtype"),
      set("spec.model.expertWeightBytes", 1.5),
    ),
    expectField: "spec.model.expertWeightBytes",
  },
  {
    name: "schedules is an object, not a list",
    mutate: set("spec.prewarm.schedules", { peak: schedule() }),
    expectField: "spec.prewarm.schedules",
  },
  {
    name: "predictive.enabled is a string",
    mutate: set("spec.prewarm.predictive.enabled", "yes"),
    expectField: "spec.prewarm.predictive.enabled",
  },
  // --- negative or zero counts and out-of-range numbers
  {
    name: "negative routed experts",
    mutate: set("spec.model.routedExperts", -8),
    expectField: "spec.model.routedExperts",
  },
  { name: "zero layers", mutate: set("spec.model.layers", 0), expectField: "spec.model.layers" },
  {
    name: "negative shared experts",
    mutate: set("spec.model.sharedExperts", -1),
    expectField: "spec.model.sharedExperts",
  },
  {
    name: "negative scale-down stabilization window",
    mutate: set("spec.scaling.scaleDown.stabilizationWindowSeconds", -60),
    expectField: "spec.scaling.scaleDown.stabilizationWindowSeconds",
  },
  {
    name: "zero max step",
    mutate: set("spec.scaling.scaleUp.maxShardsPerStep", 0),
    expectField: "spec.scaling.scaleUp.maxShardsPerStep",
  },
  { name: "percentile 100", mutate: set("spec.slo.percentile", 100), expectField: "spec.slo.percentile" },
  {
    name: "negative GPU price",
    mutate: set("spec.cost.defaultUsdPerGpuHour", -1.89),
    expectField: "spec.cost.defaultUsdPerGpuHour",
  },
  { name: "negative budget", mutate: set("spec.cost.maxUsdPerHour", -20), expectField: "spec.cost.maxUsdPerHour" },
  {
    name: "moving more than 100% of weights",
    mutate: set("spec.placement.maxMovedPercent", 150),
    expectField: "spec.placement.maxMovedPercent",
  },
  {
    name: "rebalancing every 5 seconds",
    mutate: set("spec.placement.rebalanceIntervalSeconds", 5),
    expectField: "spec.placement.rebalanceIntervalSeconds",
  },
  {
    name: "burst threshold below capacity",
    mutate: set("spec.prewarm.burst.panicThresholdPercent", 50),
    expectField: "spec.prewarm.burst.panicThresholdPercent",
  },
  // --- mode PullRequest (spec.gitops)
  {
    name: "PullRequest mode without spec.gitops",
    mutate: set("spec.mode", "PullRequest"),
    expectField: "spec.gitops",
    expectText: "spec.gitops is required when spec.mode is PullRequest",
  },
  {
    name: "gitops repository without an owner",
    mutate: all(set("spec.mode", "PullRequest"), set("spec.gitops", { ...gitops, repository: "deployments" })),
    expectField: "spec.gitops.repository",
    expectText: "owner/name",
  },
  {
    name: "gitops path escaping the repository",
    mutate: all(set("spec.mode", "PullRequest"), set("spec.gitops", { ...gitops, path: "../secrets.yaml" })),
    expectField: "spec.gitops.path",
    expectText: "relative path inside the repository",
  },
  {
    name: "gitops with a token and a GitHub App",
    mutate: all(
      set("spec.mode", "PullRequest"),
      set("spec.gitops", {
        ...gitops,
        credentials: {
          tokenSecretRef: { name: "gh" },
          githubApp: { appId: 1, installationId: 2, privateKeySecretRef: { name: "k" } },
        },
      }),
    ),
    expectField: "spec.gitops.credentials.tokenSecretRef",
    expectText: "exactly one of",
  },
  {
    name: "gitops without credentials",
    mutate: all(set("spec.mode", "PullRequest"), set("spec.gitops", { ...gitops, credentials: {} })),
    expectField: "spec.gitops.credentials.tokenSecretRef",
  },
  {
    name: "gitops hourly limit of zero",
    mutate: all(set("spec.mode", "PullRequest"), set("spec.gitops", { ...gitops, pullRequests: { hourlyLimit: 0 } })),
    expectField: "spec.gitops.pullRequests.hourlyLimit",
  },
  {
    name: "gitops API URL without a scheme",
    mutate: all(set("spec.mode", "PullRequest"), set("spec.gitops", { ...gitops, apiUrl: "ghe.example.com/api/v3" })),
    expectField: "spec.gitops.apiUrl",
  },
  {
    name: "gitops placement file that SGLang would not read as a file",
    mutate: all(
      set("spec.mode", "PullRequest"),
      set("spec.gitops", { ...gitops, placementFile: { path: "engine/expert-location.yaml" } }),
    ),
    expectField: "spec.gitops.placementFile.path",
    expectText: "must end with .json",
  },
  // --- cross-field rules (CEL on the server, the same rules in zod)
  { name: "topK above routed experts", mutate: set("spec.model.topK", 9), expectField: "spec.model.topK" },
  { name: "all layers dense", mutate: set("spec.model.denseLayers", 32), expectField: "spec.model.denseLayers" },
  {
    name: "more slots per GPU than experts",
    mutate: all(set("spec.model.expertSlotsPerGpu", 9)),
    expectField: "spec.model.expertSlotsPerGpu",
  },
  {
    name: "both expert bytes and parameters",
    mutate: set("spec.model.expertWeightBytes", 352321536),
    expectField: "spec.model.expertWeightBytes",
  },
  {
    name: "neither expert bytes nor parameters",
    mutate: all(unset("spec.model.expertParameters"), unset("spec.model.weightDtype")),
    expectField: "spec.model.expertWeightBytes",
  },
  { name: "parameters without dtype", mutate: unset("spec.model.weightDtype"), expectField: "spec.model.weightDtype" },
  {
    name: "minShards above maxShards",
    mutate: set("spec.scaling.minShards", 10),
    expectField: "spec.scaling.minShards",
  },
  {
    name: "drain minSeconds above maxSeconds",
    mutate: set("spec.serving.expertShards.drain", { maxOutputTokens: 4096, minSeconds: 900, maxSeconds: 60 }),
    expectField: "spec.serving.expertShards.drain.minSeconds",
  },
  {
    name: "drain without maxOutputTokens",
    mutate: set("spec.serving.expertShards.drain", { maxSeconds: 60 }),
    expectField: "spec.serving.expertShards.drain.maxOutputTokens",
  },
  {
    name: "manual shard override above maxShards",
    mutate: set("spec.scaling.shards", 12),
    expectField: "spec.scaling.shards",
  },
  {
    name: "minimum capacity leaves experts without a slot",
    mutate: set("spec.scaling.minShards", 1),
    expectField: "spec.scaling.minShards",
  },
  {
    name: "schedule floor above maxShards",
    mutate: set("spec.prewarm.schedules", [schedule({ minShards: 9 })]),
    expectField: "spec.prewarm.schedules",
  },
  {
    name: "forecast lead shorter than cold start",
    mutate: set("spec.prewarm.predictive", { enabled: true, leadSeconds: 60 }),
    expectField: "spec.prewarm.predictive.leadSeconds",
  },
  {
    name: "staging enabled without an image",
    mutate: set("spec.prewarm.staging", { enabled: true, source: "s3://weights/mixtral" }),
    expectField: "spec.prewarm.staging.image",
  },
  {
    name: "staging enabled without a source",
    mutate: set("spec.prewarm.staging", { enabled: true, image: "stager:1" }),
    expectField: "spec.prewarm.staging.source",
  },
  {
    name: "staging hostPath not absolute",
    mutate: set("spec.prewarm.staging.hostPath", "weights"),
    expectField: "spec.prewarm.staging.hostPath",
  },
  {
    name: "staging maxNodes zero",
    mutate: set("spec.prewarm.staging.maxNodes", 0),
    expectField: "spec.prewarm.staging.maxNodes",
  },
  {
    name: "staging evictAfterSeconds negative",
    mutate: set("spec.prewarm.staging.evictAfterSeconds", -1),
    expectField: "spec.prewarm.staging.evictAfterSeconds",
  },
  {
    name: "Prometheus heat without its settings",
    mutate: all(set("spec.heatSource.type", "Prometheus"), unset("spec.heatSource.configMap")),
    expectField: "spec.heatSource.prometheus",
  },
  {
    name: "ConfigMap heat with Prometheus settings too",
    mutate: set("spec.heatSource.prometheus", promHeat),
    expectField: "spec.heatSource.prometheus",
  },
  {
    name: "Static latency without its value",
    mutate: all(set("spec.latencySource.type", "Static"), unset("spec.latencySource.prometheus")),
    expectField: "spec.latencySource.static",
  },
  // --- enums
  { name: "unknown mode", mutate: set("spec.mode", "Automatic"), expectField: "spec.mode" },
  { name: "unknown SLO metric", mutate: set("spec.slo.metric", "P99"), expectField: "spec.slo.metric" },
  { name: "unknown weight dtype", mutate: set("spec.model.weightDtype", "FP6"), expectField: "spec.model.weightDtype" },
  {
    name: "unknown heat source type",
    mutate: set("spec.heatSource.type", "Kafka"),
    expectField: "spec.heatSource.type",
  },
  {
    name: "unknown toleration effect",
    mutate: set("spec.serving.gpu.tolerations", [{ key: "nvidia.com/gpu", operator: "Exists", effect: "NoRun" }]),
    expectField: "spec.serving.gpu.tolerations[0].effect",
  },
  {
    name: "unknown toleration operator on a GPU alternative",
    mutate: (m) => {
      set("spec.serving.gpu.nodeSelector", { "moe.dev/pool": "h100" })(m);
      set("spec.serving.gpu.alternatives", [
        {
          name: "h200",
          nodeSelector: { "moe.dev/pool": "h200" },
          tolerations: [{ key: "pool", operator: "Sometimes" }],
        },
      ])(m);
    },
    expectField: "spec.serving.gpu.alternatives[0].tolerations[0].operator",
  },
  // --- missing pieces
  { name: "missing spec", mutate: unset("spec"), expectField: "spec" },
  { name: "missing topK", mutate: unset("spec.model.topK"), expectField: "spec.model.topK" },
  { name: "missing SLO target", mutate: unset("spec.slo.targetLatencyMs"), expectField: "spec.slo.targetLatencyMs" },
  {
    name: "missing router template",
    mutate: unset("spec.serving.router.template"),
    expectField: "spec.serving.router.template",
  },
  {
    name: "missing expert-shard template",
    mutate: unset("spec.serving.expertShards.template"),
    expectField: "spec.serving.expertShards.template",
  },
  {
    name: "template without containers",
    mutate: set("spec.serving.expertShards.template.spec.containers", []),
    expectField: "spec.serving.expertShards.template.spec.containers",
  },
  {
    name: "container without image",
    mutate: unset("spec.serving.router.template.spec.containers[0].image"),
    expectField: "spec.serving.router.template.spec.containers[0].image",
  },
  {
    name: "duplicate container names",
    mutate: set("spec.serving.router.template.spec.containers[1]", { name: "engine", image: "busybox:1.36" }),
    expectField: "spec.serving.router.template.spec.containers[1]",
  },
  // --- malformed strings
  {
    name: "bad Prometheus URL (no scheme)",
    mutate: set("spec.latencySource.prometheus.url", "prometheus.monitoring:9090"),
    expectField: "spec.latencySource.prometheus.url",
  },
  {
    name: "bad Prometheus URL (ftp)",
    mutate: all(
      set("spec.heatSource", { type: "Prometheus", prometheus: { ...promHeat, url: "ftp://prometheus:9090" } }),
    ),
    expectField: "spec.heatSource.prometheus.url",
  },
  {
    name: "empty heat query",
    mutate: set("spec.heatSource", { type: "Prometheus", prometheus: { ...promHeat, query: "" } }),
    expectField: "spec.heatSource.prometheus.query",
  },
  {
    name: "cron in words",
    mutate: set("spec.prewarm.schedules", [schedule({ start: "every day at 8am" })]),
    expectField: "spec.prewarm.schedules[0].start",
  },
  {
    name: "cron hour 25",
    mutate: set("spec.prewarm.schedules", [schedule({ start: "0 25 * * *" })]),
    expectField: "spec.prewarm.schedules[0].start",
  },
  {
    name: "cron with four fields",
    mutate: set("spec.prewarm.schedules", [schedule({ start: "0 9 * *" })]),
    expectField: "spec.prewarm.schedules[0].start",
  },
  {
    name: "zero-length window",
    mutate: set("spec.prewarm.schedules", [schedule({ durationMinutes: 0 })]),
    expectField: "spec.prewarm.schedules[0].durationMinutes",
  },
  {
    name: "time zone with a space",
    mutate: set("spec.prewarm.schedules", [schedule({ timeZone: "Europe Berlin" })]),
    expectField: "spec.prewarm.schedules[0].timeZone",
  },
  {
    name: "duplicate schedule names",
    mutate: set("spec.prewarm.schedules", [schedule(), schedule({ start: "0 20 * * *" })]),
    expectField: "spec.prewarm.schedules[1]",
  },
  {
    name: "GPU resource without a domain",
    mutate: set("spec.serving.gpu.resourceName", "gpu"),
    expectField: "spec.serving.gpu.resourceName",
  },
  {
    name: "topology key with spaces",
    mutate: set("spec.placement.topologyKey", "rack id"),
    expectField: "spec.placement.topologyKey",
  },
  {
    name: "ConfigMap name with capitals",
    mutate: set("spec.heatSource.configMap.name", "Mixtral_Load"),
    expectField: "spec.heatSource.configMap.name",
  },
  // --- sizes Kubernetes would refuse later, on the children (issue 20)
  {
    name: "name longer than a label value",
    mutate: set("metadata.name", `m${"x".repeat(63)}`),
    expectField: "metadata.name",
    expectText: "at most 63 characters",
  },
  {
    name: "80 KB of shard template annotations",
    mutate: set("spec.serving.expertShards.template.metadata.annotations", {
      "example.com/a": "a".repeat(40_000),
      "example.com/b": "b".repeat(40_000),
    }),
    expectField: "spec.serving.expertShards.template.metadata.annotations",
    expectText: "65536 bytes",
  },
  {
    name: "65 router template labels",
    mutate: set(
      "spec.serving.router.template.metadata.labels",
      Object.fromEntries(Array.from({ length: 65 }, (_, i) => [`example.com/l${i}`, "x"])),
    ),
    expectField: "spec.serving.router.template.metadata.labels",
    expectText: "64",
  },
  {
    name: "operator annotation in the shard template",
    mutate: set("spec.serving.expertShards.template.metadata.annotations", {
      "moe.dev/draining-since": "2020-01-01T00:00:00Z",
    }),
    expectField: "spec.serving.expertShards.template.metadata.annotations",
    expectText: "moe.dev/*",
  },
  {
    name: "operator label in the router template",
    mutate: set("spec.serving.router.template.metadata.labels", { "app.kubernetes.io/managed-by": "someone-else" }),
    expectField: "spec.serving.router.template.metadata.labels",
    expectText: "app.kubernetes.io/managed-by",
  },
  {
    name: "DeepSeek-V3 with 300 shards",
    mutate: all(set("spec.model", deepSeekV3), set("spec.scaling.minShards", 32), set("spec.scaling.maxShards", 300)),
    expectField: "spec.scaling.maxShards",
    expectText: "1048576 bytes",
  },
  {
    name: "largest shape the types allow",
    mutate: all(
      set("spec.model", { ...deepSeekV3, layers: 1024, denseLayers: 0, routedExperts: 4096, expertSlotsPerGpu: 4096 }),
    ),
    expectField: "spec.model.expertSlotsPerGpu",
    expectText: "195584 bytes",
  },
  // --- topology
  {
    name: "WideEP without spec.serving.wideEP",
    mutate: all(toWideEP(), unset("spec.serving.wideEP")),
    expectField: "spec.serving.wideEP",
  },
  {
    name: "WideEP with expert shards left in",
    mutate: all(toWideEP(), set("spec.serving.expertShards", { template: { spec: { containers: [] } } })),
    expectField: "spec.serving.expertShards",
  },
  {
    name: "wideEP with topology Disaggregated",
    mutate: set("spec.serving.wideEP", {
      nodesPerGroup: 2,
      template: { spec: { containers: [{ name: "e", image: "e" }] } },
    }),
    expectField: "spec.serving.wideEP",
  },
  {
    name: "Disaggregated without expert shards",
    mutate: unset("spec.serving.expertShards"),
    expectField: "spec.serving.router",
  },
  {
    name: "WideEP group too small to hold every routed expert",
    mutate: all(toWideEP(), set("spec.serving.wideEP.gpusPerNode", 1), set("spec.model.expertSlotsPerGpu", 1)),
    expectField: "spec.serving.wideEP.nodesPerGroup",
  },
  {
    name: "WideEP in mode PullRequest",
    mutate: all(toWideEP(), set("spec.mode", "PullRequest")),
    expectField: "spec.mode",
  },
  {
    name: "WideEP group larger than maxShards GPUs",
    mutate: toWideEP(2),
    expectField: "spec.scaling.maxShards",
  },
  // --- typos
  {
    name: "unknown field (typo beside the real one)",
    mutate: set("spec.slo.targetLatency", 40),
    expectField: "spec.slo.targetLatency",
    localRejects: false,
  },
];

/**
 * Specs on either side of a size bound: the API server (CEL) and the operator
 * (zod) must draw the line at the same place. `field` is named when refused.
 */
export interface BoundaryCase {
  name: string;
  mutate: (m: Manifest) => void;
  accepted: boolean;
  field: string;
}

const dsMaxShards = maxShardsForConfigMap(deepSeekV3);
// 78 layers x (501 slots x 5 bytes + 2) + 17 = 195563 bytes of moe.dev/experts, 79 layers 198070: the limit is 195584.
// Tiny experts, so that the GPU-memory check (semantic, zod only) does not fire too.
const wideModel = (layers: number) => ({
  layers,
  denseLayers: 0,
  routedExperts: 1002,
  topK: 8,
  expertWeightBytes: 1000,
  expertSlotsPerGpu: 501,
});

export const BOUNDARY_CASES: BoundaryCase[] = [
  {
    name: `DeepSeek-V3 at ${dsMaxShards} shards (the most admitted)`,
    mutate: all(
      set("spec.model", deepSeekV3),
      set("spec.scaling.minShards", 32),
      set("spec.scaling.maxShards", dsMaxShards),
    ),
    accepted: true,
    field: "spec.scaling.maxShards",
  },
  {
    name: `DeepSeek-V3 at ${dsMaxShards + 1} shards`,
    mutate: all(
      set("spec.model", deepSeekV3),
      set("spec.scaling.minShards", 32),
      set("spec.scaling.maxShards", dsMaxShards + 1),
    ),
    accepted: false,
    field: "spec.scaling.maxShards",
  },
  {
    name: "moe.dev/experts annotation just under its limit",
    mutate: all(set("spec.model", wideModel(78)), set("spec.scaling.minShards", 2), set("spec.scaling.maxShards", 2)),
    accepted: true,
    field: "spec.model.expertSlotsPerGpu",
  },
  {
    name: "moe.dev/experts annotation just over its limit",
    mutate: all(set("spec.model", wideModel(79)), set("spec.scaling.minShards", 2), set("spec.scaling.maxShards", 2)),
    accepted: false,
    field: "spec.model.expertSlotsPerGpu",
  },
  {
    name: "WideEP group of exactly maxShards GPUs",
    mutate: toWideEP(1),
    accepted: true,
    field: "spec.scaling.maxShards",
  },
  {
    name: "WideEP group one node over maxShards GPUs",
    mutate: toWideEP(2),
    accepted: false,
    field: "spec.scaling.maxShards",
  },
];
