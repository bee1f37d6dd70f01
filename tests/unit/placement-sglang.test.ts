import { describe, expect, it } from "vitest";
import { existsSync, readFileSync } from "node:fs";
import { resolve } from "node:path";
import {
  computePlacementMetrics,
  fnv1a64,
  heatFromSglangLogicalCount,
  placementFromSglang,
  placementToSglang,
  planPlacement,
} from "../../src/domain/placement/index.ts";
import type { GpuSlotInfo } from "../../src/domain/placement/index.ts";

const gpus: GpuSlotInfo[] = Array.from({ length: 4 }, (_, g) => ({
  gpuId: `g${g}`,
  nodeName: `n${g >> 1}`,
  slotCount: 3,
}));

describe("SGLang expert-location JSON", () => {
  it("exports physical_to_logical_map rank by rank, with dense layers, and imports it back", () => {
    const heat = [
      [9, 1, 1, 1, 1, 1, 1, 1, 1, 1],
      [1, 1, 1, 1, 1, 1, 1, 1, 1, 9],
    ];
    const o = planPlacement({ heat, gpus, policy: { maxMoveFraction: 0.1, minBalancednessGain: 0.01 } });
    if (o.kind !== "planned") throw new Error(o.kind);
    const out = placementToSglang(o.placement, { denseLayerCount: 3 });
    if (!out.ok) throw new Error(out.reason);
    const map = out.value.physical_to_logical_map;
    expect(map).toHaveLength(5);
    expect(map[3]).toEqual(o.placement.layers[0]!.flat());
    const back = placementFromSglang(JSON.parse(JSON.stringify(out.value)), gpus, 10, { denseLayerCount: 3 });
    if (!back.ok) throw new Error(back.reason);
    expect(back.value.layers).toEqual(o.placement.layers);
  });

  it("refuses uneven slot counts and empty slots with a reason", () => {
    const uneven = {
      version: 1 as const,
      layerCount: 1,
      expertCount: 2,
      gpus: [
        { gpuId: "a", nodeName: "n", domain: "", slotCount: 1 },
        { gpuId: "b", nodeName: "n", domain: "", slotCount: 2 },
      ],
      layers: [[[0], [1, 0]]],
    };
    expect(placementToSglang(uneven)).toMatchObject({ ok: false });
    const empty = { ...uneven, gpus: [uneven.gpus[0]!, { ...uneven.gpus[1]!, slotCount: 1 }], layers: [[[0], [-1]]] };
    const r = placementToSglang(empty);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.reason).toMatch(/empty slot/);
  });

  it("reads logical_count as heat, dropping leading dense layers", () => {
    const r = heatFromSglangLogicalCount({
      logical_count: [
        [0, 0],
        [0, 0],
        [3, 4],
        [0, 0],
      ],
    });
    expect(r).toEqual({
      ok: true,
      value: {
        heat: [
          [3, 4],
          [0, 0],
        ],
        denseLayerCount: 2,
      },
    });
    expect(heatFromSglangLogicalCount({ logical_count: [[1, -2]] }).ok).toBe(false);
    expect(heatFromSglangLogicalCount({}).ok).toBe(false);
  });

  it("FNV-1a 64 matches the reference vectors", () => {
    expect(fnv1a64("")).toBe("cbf29ce484222325");
    expect(fnv1a64("a")).toBe("af63dc4c8601ec8c");
    expect(fnv1a64("foobar")).toBe("85944171f73967e8");
  });

  const realFile = resolve(
    import.meta.dirname,
    "../../../shared/data/expert-load/deepseek-v3-sglang/prefill_in1024.json",
  );
  it.skipIf(!existsSync(realFile))(
    "plans the real DeepSeek-V3 prefill heat at >= 0.99 balancedness (skipped without ../shared/data)",
    () => {
      const parsed = heatFromSglangLogicalCount(JSON.parse(readFileSync(realFile, "utf8")));
      if (!parsed.ok) throw new Error(parsed.reason);
      expect(parsed.value.denseLayerCount).toBe(3);
      const gpus32: GpuSlotInfo[] = Array.from({ length: 32 }, (_, g) => ({
        gpuId: `g${g}`,
        nodeName: `n${g >> 3}`,
        slotCount: 9,
      }));
      const o = planPlacement({
        heat: parsed.value.heat,
        gpus: gpus32,
        policy: { maxMoveFraction: 0.1, minBalancednessGain: 0.01 },
      });
      if (o.kind !== "planned") throw new Error(o.kind);
      expect(computePlacementMetrics(o.placement, parsed.value.heat).balancedness).toBeGreaterThan(0.99);
    },
  );
});
