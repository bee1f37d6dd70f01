// decide() at the largest shapes the API admits (issue 20, docs/adr/0008-admission-limits.md).
//   node --expose-gc bench/admission/decide-largest.ts
// For each model shape, maxShards is the most the placement-ConfigMap bound admits
// (src/api/sizes.ts), and the spec goes through the operator's own parser. Three decisions are timed: the first
// placement with heat, a scale-up to maxShards, and a heat rebalance at maxShards.
// Prints wall time per decide() and the heap growth; no assertion (numbers vary by machine).
import { performance } from "node:perf_hooks";
import { parseMoEDeployment } from "../../src/api/index.ts";
import {
  EXPERTS_ANNOTATION_MAX_BYTES,
  configMapBytes,
  expertsAnnotationBytes,
  maxShardsForConfigMap,
} from "../../src/api/sizes.ts";
import { policyFromSpec } from "../../src/controllers/moedeployment/policy.ts";
import { decide, tokensPerSecondFromHeat, type DecisionSnapshot, type NodeView } from "../../src/domain/decide.ts";
import { generateHeat } from "../../src/domain/synthetic/heat.ts";

interface Shape {
  name: string;
  layers: number;
  denseLayers: number;
  routedExperts: number;
  topK: number;
  expertSlotsPerGpu: number;
}

// Few slots per GPU admit the most shards (the per-shard overhead dominates); many slots
// admit the most slots per layer. Both ends, for the shapes of the samples and extremes.
const SHAPES: Shape[] = [
  { name: "DeepSeek-V3, sample slots", layers: 61, denseLayers: 3, routedExperts: 256, topK: 8, expertSlotsPerGpu: 9 },
  { name: "DeepSeek-V3, 1 slot", layers: 61, denseLayers: 3, routedExperts: 256, topK: 8, expertSlotsPerGpu: 1 },
  { name: "DeepSeek-V3, 64 slots", layers: 61, denseLayers: 3, routedExperts: 256, topK: 8, expertSlotsPerGpu: 64 },
  { name: "Qwen3-235B, sample slots", layers: 94, denseLayers: 0, routedExperts: 128, topK: 8, expertSlotsPerGpu: 16 },
  { name: "Mixtral-8x7B, 1 slot", layers: 32, denseLayers: 0, routedExperts: 8, topK: 2, expertSlotsPerGpu: 1 },
  { name: "1 layer x 2 experts, 1 slot", layers: 1, denseLayers: 0, routedExperts: 2, topK: 1, expertSlotsPerGpu: 1 },
  {
    name: "24 layers x 4096 experts, 1452 slots",
    layers: 24,
    denseLayers: 0,
    routedExperts: 4096,
    topK: 8,
    expertSlotsPerGpu: 1452,
  },
  {
    name: "1024 layers x 8 experts, 8 slots",
    layers: 1024,
    denseLayers: 0,
    routedExperts: 8,
    topK: 2,
    expertSlotsPerGpu: 8,
  },
];

/** The most shards the API admits for this shape, or undefined if it is refused outright. */
function largestAdmitted(s: Shape): { slots: number; maxShards: number } | undefined {
  if (expertsAnnotationBytes(s) > EXPERTS_ANNOTATION_MAX_BYTES) return undefined;
  const maxShards = Math.min(100_000, maxShardsForConfigMap(s));
  return maxShards * s.expertSlotsPerGpu >= s.routedExperts ? { slots: s.expertSlotsPerGpu, maxShards } : undefined;
}

function specFor(s: Shape, slots: number, maxShards: number) {
  const manifest = {
    apiVersion: "moe.dev/v1alpha1",
    kind: "MoEDeployment",
    metadata: { name: "bench", namespace: "bench" },
    spec: {
      model: {
        layers: s.layers,
        denseLayers: s.denseLayers,
        routedExperts: s.routedExperts,
        topK: s.topK,
        expertWeightBytes: 1,
        expertSlotsPerGpu: slots,
      },
      serving: {
        router: { template: { spec: { containers: [{ name: "r", image: "r:1" }] } } },
        expertShards: { template: { spec: { containers: [{ name: "e", image: "e:1" }] } } },
      },
      slo: { targetLatencyMs: 50 },
      scaling: { minShards: Math.ceil(s.routedExperts / slots), maxShards, scaleUp: { maxShardsPerStep: maxShards } },
      heatSource: { type: "ConfigMap", configMap: { name: "heat" } },
      latencySource: { type: "Static", static: { latencyMs: 500 } },
      cost: { defaultUsdPerGpuHour: 2 },
    },
  };
  const r = parseMoEDeployment(manifest);
  if (!r.ok) throw new Error(`${s.name}: spec refused`, { cause: r.issues });
  return r.value.spec;
}

const gc = (globalThis as { gc?: () => void }).gc;

/** Wall time of f, and the heap it leaves behind (after a GC when run with --expose-gc). */
function timed<T>(f: () => T): { value: T; ms: number; heapMiB: number } {
  gc?.();
  const heap0 = process.memoryUsage().heapUsed;
  const t0 = performance.now();
  const value = f();
  const ms = performance.now() - t0;
  gc?.();
  return { value, ms, heapMiB: (process.memoryUsage().heapUsed - heap0) / 2 ** 20 };
}

const rows: string[] = [];
let worstMs = 0;
for (const s of SHAPES) {
  const admitted = largestAdmitted(s);
  if (!admitted) {
    rows.push(`${s.name}: no admitted shape covers every expert`);
    continue;
  }
  const { slots, maxShards } = admitted;
  const spec = specFor(s, slots, maxShards);
  const policy = policyFromSpec(spec, { reconcileIntervalMs: 30_000, maxSurge: 2 });
  const moeLayers = s.layers - s.denseLayers;
  const nodes: NodeView[] = Array.from({ length: Math.ceil(maxShards / 8) + 1 }, (_, i) => ({
    name: `node-${i}`,
    domain: `rack-${i % 4}`,
    freeGpus: 8,
    usdPerGpuHour: 2,
  }));
  const heat = generateHeat({ layerCount: moeLayers, expertCount: s.routedExperts, seed: 7, topK: s.topK });
  const hot = heat.map((row) => row.map((v) => (v * 1e9) / Math.max(1, tokensPerSecondFromHeat(heat, s.topK))));
  const base = { rolloutInProgress: false, trackingSinceMs: 0, nodes, observedP99Ms: 500 };
  // 1. First placement with heat, at minShards.
  const first = timed(() =>
    decide({ ...base, heat: { heat, atMs: 1_000, confidence: 1 }, shards: [], provisionedShards: 0 }, policy, 1_000),
  );
  const current = first.value.placement.placement;
  const shardsOf = (n: number) =>
    Array.from({ length: n }, (_, i) => ({
      shardIndex: i,
      nodeName: `node-${Math.floor(i / 8)}`,
      ready: true,
      usdPerGpuHour: 2,
    }));
  // 2. Heavy load: scale up toward maxShards (one step may go all the way).
  const upSnapshot: DecisionSnapshot = {
    ...base,
    heat: { heat: hot, atMs: 600_000, confidence: 1 },
    shards: shardsOf(spec.scaling.minShards),
    provisionedShards: spec.scaling.minShards,
    currentPlacement: current,
    lastRebalanceMs: 0,
  };
  const up = timed(() => decide(upSnapshot, policy, 600_000));
  // 3. At maxShards, heat drifts: a rebalance.
  const drifted = generateHeat({ layerCount: moeLayers, expertCount: s.routedExperts, seed: 8, topK: s.topK });
  const atMax = up.value.placement.placement;
  const rebalance =
    atMax && atMax.gpus.length === maxShards
      ? timed(() =>
          decide(
            {
              ...base,
              heat: { heat: drifted, atMs: 1_800_000, confidence: 1 },
              shards: shardsOf(maxShards),
              provisionedShards: maxShards,
              currentPlacement: atMax,
              lastRebalanceMs: 0,
            },
            policy,
            1_800_000,
          ),
        )
      : undefined;
  worstMs = Math.max(worstMs, first.ms, up.ms, rebalance?.ms ?? 0);
  const fmt = (t: { ms: number; heapMiB: number } | undefined) =>
    t ? `${t.ms.toFixed(0)} ms (+${t.heapMiB.toFixed(0)} MiB heap)` : "n/a";
  rows.push(
    `${s.name}: ${moeLayers} MoE layers x ${s.routedExperts} experts, ${slots} slots/GPU, maxShards ${maxShards} ` +
      `(ConfigMap bound ${(configMapBytes({ ...s, expertSlotsPerGpu: slots }, maxShards) / 2 ** 20).toFixed(2)} MiB)\n` +
      `  first placement: ${fmt(first)} | scale-up to ${up.value.desiredShards}: ${fmt(up)} | rebalance at max: ${fmt(rebalance)} (${rebalance?.value.placement.action ?? "-"})`,
  );
}
console.log(rows.join("\n"));
console.log(
  `worst decide(): ${worstMs.toFixed(0)} ms; peak RSS ${(process.resourceUsage().maxRSS / 1024).toFixed(0)} MiB`,
);
