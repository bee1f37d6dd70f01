// Rendering children: the operator's own labels and annotations always win over
// a template's (issue 20), and the worst-case sizes the API admits bound what
// the operator really writes.
import { describe, expect, it } from "vitest";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parse } from "yaml";
import { parseMoEDeployment, type MoEDeployment } from "../../src/api/index.ts";
import {
  CONFIGMAP_LIMIT_BYTES,
  EXPERTS_ANNOTATION_MAX_BYTES,
  configMapBytes,
  expertsAnnotationBytes,
  maxShardsForConfigMap,
} from "../../src/api/sizes.ts";
import { shardExperts } from "../../src/controllers/moedeployment/children.ts";
import { renderShardPod, ShardAnnotation } from "../../src/controllers/moedeployment/codecs/shard-pod.ts";
import { renderRouter } from "../../src/controllers/moedeployment/codecs/router.ts";
import {
  addMoveCost,
  moveCostDocument,
  renderPlacementConfigMap,
} from "../../src/controllers/moedeployment/codecs/placement-configmap.ts";
import type { MoveCost, Placement } from "../../src/domain/placement/index.ts";

const root = fileURLToPath(new URL("../..", import.meta.url));

function sample(name: string): MoEDeployment {
  const r = parseMoEDeployment(parse(readFileSync(join(root, "deploy/samples", `${name}.yaml`), "utf8")));
  if (!r.ok) throw new Error(`sample ${name} does not parse`, { cause: r.issues });
  return { ...r.value, metadata: { ...r.value.metadata, namespace: "ns", uid: "u-1" } };
}

/** An object stored before the schema refused operator keys (or with validation off). */
function withHostileTemplates(d: MoEDeployment): MoEDeployment {
  const hostile = {
    labels: {
      "moe.dev/component": "router",
      "moe.dev/draining": "true",
      "app.kubernetes.io/managed-by": "someone",
      team: "search",
    },
    annotations: {
      "moe.dev/draining-since": "2020-01-01T00:00:00Z",
      "moe.dev/experts": "[[0]]",
      "example.com/owner": "search",
    },
  };
  const out = structuredClone(d);
  out.spec.serving.expertShards!.template.metadata = hostile;
  out.spec.serving.router!.template.metadata = structuredClone(hostile);
  return out;
}

describe("operator keys win over template keys", () => {
  const d = withHostileTemplates(sample("mixtral-8x7b"));

  it("shard pods drop moe.dev/* and the operator's labels from the template, keep the rest", () => {
    const pod = renderShardPod(d, {
      shardIndex: 3,
      experts: [[1, 2]],
      setHash: "0123456789abcdef",
      placementVersion: 7,
      placementHash: "h",
    });
    const labels = pod.metadata!.labels!;
    const annotations = pod.metadata!.annotations!;
    expect(labels["moe.dev/component"]).toBe("expert-shard");
    expect(labels["app.kubernetes.io/managed-by"]).toBe("moe-operator");
    expect(labels["moe.dev/draining"]).toBeUndefined();
    expect(labels.team).toBe("search");
    expect(annotations[ShardAnnotation.drainingSince]).toBeUndefined();
    expect(annotations[ShardAnnotation.experts]).toBe("[[1,2]]");
    expect(annotations["example.com/owner"]).toBe("search");
  });

  it("the router's pod template drops them too", () => {
    const t = renderRouter(d).spec!.template.metadata!;
    expect(t.labels!["moe.dev/component"]).toBe("router");
    expect(t.labels!["moe.dev/draining"]).toBeUndefined();
    expect(t.labels!["app.kubernetes.io/managed-by"]).toBe("moe-operator");
    expect(t.annotations).toEqual({ "example.com/owner": "search" });
  });
});

/** A full placement: every slot of every GPU holds the widest expert id. */
function fullPlacement(moeLayers: number, experts: number, slots: number, shards: number, nodeName: string): Placement {
  const gpus = Array.from({ length: shards }, (_, i) => ({
    gpuId: `shard-${i}`,
    nodeName,
    domain: nodeName,
    slotCount: slots,
  }));
  const ids = Array.from({ length: slots }, (_, s) => experts - 1 - s);
  return {
    version: 1,
    layerCount: moeLayers,
    expertCount: experts,
    gpus,
    layers: Array.from({ length: moeLayers }, () => gpus.map(() => ids.slice())),
  };
}

/** move-cost.json at its largest: every MoE layer a chunk of its own over the bound, with huge numbers. */
function worstMoveCost(moeLayers: number, shards: number): MoveCost {
  const huge = 1e18; // JSON: 19 digits
  const stall = 9_999_999_999.9;
  return {
    moves: huge,
    bytes: huge,
    byPath: {
      nvlink: { moves: huge, bytes: huge },
      network: { moves: huge, bytes: huge },
      storage: { moves: huge, bytes: huge },
    },
    chunks: Array.from({ length: moeLayers }, (_, l) => ({
      firstLayer: l,
      lastLayer: l,
      moves: huge,
      bytes: huge,
      stallSeconds: stall,
      stalledGpuId: `shard-${shards - 1}`,
      overBound: true,
    })),
    estimatedSeconds: stall * moeLayers,
    maxStallSeconds: stall,
    maxStallGpuId: `shard-${shards - 1}`,
    overBoundLayers: Array.from({ length: moeLayers }, (_, l) => l),
  };
}

const dataBytes = (data: Record<string, string>) =>
  Object.entries(data).reduce((n, [k, v]) => n + Buffer.byteLength(k) + Buffer.byteLength(v), 0);

describe("worst-case sizes bound the rendered children", () => {
  it("DeepSeek-V3 at the most shards admitted: the placement ConfigMap fits 1 MiB with 253-character node names", () => {
    const d = sample("deepseek-v3");
    const m = d.spec.model;
    const shards = maxShardsForConfigMap(m);
    expect(shards).toBeGreaterThanOrEqual(d.spec.scaling.maxShards);
    const node = `n${"x".repeat(252)}`;
    const placement = fullPlacement(m.layers - m.denseLayers, m.routedExperts, m.expertSlotsPerGpu, shards, node);
    const cm = renderPlacementConfigMap(d, {
      placement,
      hash: "0123456789abcdef",
      version: 123456789,
      denseLayers: m.denseLayers,
      heatBasis: "none",
      shards: Array.from({ length: shards }, (_, i) => ({ shardIndex: i, setHash: "0123456789abcdef" })),
      moveCost: { cost: worstMoveCost(m.layers - m.denseLayers, shards), maxStallSeconds: 600 },
    });
    // move-cost.json takes only the room left: in full, as a summary, or not at all.
    const doc = cm.data!["move-cost.json"];
    if (doc !== undefined) expect(JSON.parse(doc).movedBytes).toBe(1e18);
    const bytes = dataBytes(cm.data!);
    const withoutMoveCost =
      bytes - (doc === undefined ? 0 : Buffer.byteLength("move-cost.json") + Buffer.byteLength(doc));
    expect(withoutMoveCost).toBeLessThanOrEqual(configMapBytes(m, shards));
    expect(bytes).toBeLessThanOrEqual(CONFIGMAP_LIMIT_BYTES);
    // The estimate is a bound, not a guess: within 10% of the real worst case.
    expect(withoutMoveCost).toBeGreaterThan(0.9 * configMapBytes(m, shards));
  });

  it("move-cost.json: in full when it fits, as a summary when only that fits, else left out", () => {
    const d = sample("deepseek-v3");
    const m = d.spec.model;
    const moeLayers = m.layers - m.denseLayers;
    const render = (shards: number, node: string) =>
      renderPlacementConfigMap(d, {
        placement: fullPlacement(moeLayers, m.routedExperts, m.expertSlotsPerGpu, shards, node),
        hash: "0123456789abcdef",
        version: 1,
        denseLayers: m.denseLayers,
        shards: Array.from({ length: shards }, (_, i) => ({ shardIndex: i, setHash: "0123456789abcdef" })),
        moveCost: { cost: worstMoveCost(moeLayers, shards), maxStallSeconds: 2 },
      }).data!;
    const full = JSON.parse(render(32, "node-0")["move-cost.json"]!);
    expect(full.chunks).toHaveLength(moeLayers);
    expect(full.chunks[0]).toEqual([0, 0, 9_999_999_999_900]);
    expect(full.overBoundMoeLayers).toHaveLength(moeLayers);
    expect(full.maxStallShard).toBe("shard-31");
    // Near the limit: the rest of the ConfigMap padded to leave exactly `room` bytes.
    const moveCost = { cost: worstMoveCost(moeLayers, 206), maxStallSeconds: 2 };
    const fullBytes = Buffer.byteLength(moveCostDocument(moveCost.cost, 2, true));
    const summaryBytes = Buffer.byteLength(moveCostDocument(moveCost.cost, 2, false));
    const key = Buffer.byteLength("move-cost.json");
    const kindAt = (room: number): string => {
      const data = { pad: "x".repeat(CONFIGMAP_LIMIT_BYTES - 3 - key - room) };
      addMoveCost(data, moveCost);
      expect(dataBytes(data)).toBeLessThanOrEqual(CONFIGMAP_LIMIT_BYTES);
      const doc = (data as Record<string, string>)["move-cost.json"];
      if (doc === undefined) return "none";
      const parsed = JSON.parse(doc);
      if ("chunks" in parsed) return "full";
      expect(parsed.detailOmitted).toMatch(/ConfigMap limit/);
      expect(parsed.chunkCount).toBe(moeLayers);
      return "summary";
    };
    expect(kindAt(fullBytes)).toBe("full");
    expect(kindAt(fullBytes - 1)).toBe("summary");
    expect(kindAt(summaryBytes)).toBe("summary");
    expect(kindAt(summaryBytes - 1)).toBe("none");
  });

  it("the experts annotation of a shard pod is within its estimate", () => {
    const d = sample("qwen3-235b-a22b");
    const m = d.spec.model;
    const placement = fullPlacement(m.layers - m.denseLayers, m.routedExperts, m.expertSlotsPerGpu, 1, "n");
    const pod = renderShardPod(d, {
      shardIndex: 0,
      experts: shardExperts(placement, 0),
      setHash: "0123456789abcdef",
      placementVersion: 1,
      placementHash: "h",
    });
    const value = pod.metadata!.annotations![ShardAnnotation.experts]!;
    expect(Buffer.byteLength(ShardAnnotation.experts) + Buffer.byteLength(value)).toBeLessThanOrEqual(
      expertsAnnotationBytes(m),
    );
    expect(expertsAnnotationBytes(m)).toBeLessThanOrEqual(EXPERTS_ANNOTATION_MAX_BYTES);
  });
});
