import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { bestRewrite, growShards, hottestShards, rewriteShards } from "../../src/domain/rebalance/shards.ts";
import {
  computePlacementMetrics,
  EMPTY_SLOT,
  planPlacement,
  type Placement,
} from "../../src/domain/placement/index.ts";
import { driftHeat, generateHeat } from "../../src/domain/synthetic/heat.ts";

const gpus = (n: number, slots: number) =>
  Array.from({ length: n }, (_, i) => ({
    gpuId: `shard-${i}`,
    nodeName: `node-${Math.floor(i / 4)}`,
    slotCount: slots,
  }));

function plan(heat: number[][], n: number, slots: number): Placement {
  const r = planPlacement({ heat, gpus: gpus(n, slots), policy: { maxMoveFraction: 1, minBalancednessGain: 0 } });
  if (r.kind !== "planned") throw new Error(r.kind);
  return r.placement;
}

function checkInvariants(p: Placement, expertCount: number): void {
  for (const layer of p.layers) {
    const present = new Set<number>();
    layer.forEach((slots, g) => {
      expect(slots.length).toBe(p.gpus[g]!.slotCount);
      const held = slots.filter((e) => e !== EMPTY_SLOT);
      expect(new Set(held).size).toBe(held.length); // no expert twice on one shard
      held.forEach((e) => present.add(e));
    });
    expect(present.size).toBe(expertCount); // every expert keeps a replica
  }
}

describe("shard-granular rebalance", () => {
  it("rewrites only the chosen shards and keeps every expert placed (property)", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 10_000 }),
        fc.integer({ min: 6, max: 12 }),
        fc.integer({ min: 1, max: 4 }),
        (seed, n, k) => {
          const before = generateHeat({ layerCount: 3, expertCount: 24, seed, topK: 2 });
          const after = driftHeat(before, { correlation: 0.6, seed: seed + 1 });
          const current = plan(before, n, 4);
          const chosen = hottestShards(current, after).slice(0, k);
          const next = rewriteShards(current, after, chosen);
          checkInvariants(next, 24);
          next.layers.forEach((layer, l) =>
            layer.forEach((slots, g) => {
              if (!chosen.includes(g)) expect(slots).toEqual(current.layers[l]![g]);
            }),
          );
        },
      ),
      { numRuns: 60 },
    );
  });

  it("grows a placement: running shards untouched unless chosen, new shards filled, better balance than before", () => {
    const heat = generateHeat({ layerCount: 4, expertCount: 64, seed: 5, topK: 8 });
    const current = plan(heat, 8, 9);
    const grown = growShards(current, heat, gpus(12, 9))!;
    checkInvariants(grown, 64);
    for (let l = 0; l < 4; l++) for (let g = 0; g < 8; g++) expect(grown.layers[l]![g]).toEqual(current.layers[l]![g]);
    for (let g = 8; g < 12; g++)
      expect(grown.layers.some((layer) => layer[g]!.some((e) => e !== EMPTY_SLOT))).toBe(true); // the new shards take load
    // The hottest GPU carries less than before the new shards came.
    const maxLoad = (p: Placement) => {
      const m = computePlacementMetrics(p, heat);
      return m.balancedness > 0 ? 1 / (p.gpus.length * m.balancedness) : Infinity;
    };
    expect(maxLoad(grown)).toBeLessThan(maxLoad(current));
    expect(growShards(current, heat, gpus(8, 9))).toBeUndefined(); // not a growth
    expect(growShards(current, heat, gpus(12, 9).reverse())).toBeUndefined(); // not an extension of the current GPUs
  });

  it("bestRewrite never returns a worse placement, and after a large heat shift rounds keep improving", () => {
    const before = generateHeat({ layerCount: 6, expertCount: 64, seed: 8, topK: 8 });
    const after = driftHeat(before, { correlation: 0.66, seed: 9 });
    const bal = (p: Placement) => computePlacementMetrics(p, after).balancedness;
    let p = plan(before, 16, 6);
    const start = bal(p);
    for (let round = 0; round < 3; round++) {
      const next = bestRewrite(p, after, 3, bal);
      expect(bal(next)).toBeGreaterThanOrEqual(bal(p));
      checkInvariants(next, 64);
      p = next;
    }
    expect(bal(p)).toBeGreaterThan(start + 0.05);
  });

  it("is deterministic", () => {
    const heat = generateHeat({ layerCount: 2, expertCount: 32, seed: 9, topK: 4 });
    const current = plan(heat, 6, 8);
    const shifted = driftHeat(heat, { correlation: 0.5, seed: 3 });
    expect(rewriteShards(current, shifted, [0, 3])).toEqual(rewriteShards(current, shifted, [3, 0]));
  });
});
