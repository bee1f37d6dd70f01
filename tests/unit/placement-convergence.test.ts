// Placement quality when moves are cheap (issue 15 item 6): repeated rebalances on a stable heat reach
// the fresh plan's balance within the budget whatever its split; scale-down keeps the balance; the
// shipped defaults correct mild drift; moves are reported in bytes. ADR 0002.
import { describe, expect, it } from "vitest";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import fc from "fast-check";
import { parse } from "yaml";
import {
  computePlacementMetrics,
  parsePlacement,
  planPlacement,
  serializePlacement,
} from "../../src/domain/placement/index.ts";
import type { GpuSlotInfo, Placement, PlacementOutcome, PlacementPolicy } from "../../src/domain/placement/index.ts";
import { driftHeat, generateHeat, sampleHeat } from "../../src/domain/synthetic/heat.ts";
import { PlacementSchema } from "../../src/api/schema.ts";

type Planned = Extract<PlacementOutcome, { kind: "planned" }>;

function gpuList(count: number, slots: number, perNode = 8): GpuSlotInfo[] {
  return Array.from({ length: count }, (_, g) => ({
    gpuId: `g${g}`,
    nodeName: `n${Math.floor(g / perNode)}`,
    slotCount: slots,
  }));
}

function expectPlanned(o: PlacementOutcome): Planned {
  if (o.kind !== "planned") throw new Error(`expected planned, got ${o.kind}: ${"reason" in o ? o.reason : ""}`);
  return o;
}

/** Balancedness of a from-scratch plan. */
function freshBalancedness(heat: number[][], gpus: GpuSlotInfo[]): number {
  return expectPlanned(planPlacement({ heat, gpus, policy: { maxMoveFraction: 1, minBalancednessGain: 0 } })).metrics
    .balancedness;
}

/** Rebalance once per budget on the same heat (no hysteresis); each step's replica loads and the final balancedness. */
function rebalanceRepeatedly(
  heat: number[][],
  gpus: GpuSlotInfo[],
  start: Placement,
  budgets: number[],
): { moved: number[]; replicas: number; balancedness: number } {
  let current = start;
  let balancedness = NaN;
  const moved: number[] = [];
  let replicas = 0;
  for (const maxMoveFraction of budgets) {
    const o = planPlacement({ heat, gpus, current, policy: { maxMoveFraction, minBalancednessGain: 0 } });
    if (o.kind === "infeasible") throw new Error(o.reason);
    balancedness = o.metrics.balancedness;
    if (o.kind === "planned") {
      current = o.placement;
      moved.push(o.movedReplicas);
      replicas = o.metrics.replicaCount;
    } else moved.push(0);
  }
  return { moved, replicas, balancedness };
}

/** A DeepSeek-like shape, scaled down: 9 slots per GPU, 8 experts per GPU (1 redundant slot in 9). */
const shape = fc.record({
  seed: fc.integer({ min: 1, max: 1_000_000 }),
  driftSeed: fc.integer({ min: 1, max: 1_000_000 }),
  gpuCount: fc.constantFrom(8, 16),
  layerCount: fc.integer({ min: 2, max: 4 }),
  correlation: fc.double({ min: 0.98, max: 0.999, noNaN: true }),
});

function scenario(s: { seed: number; driftSeed: number; gpuCount: number; layerCount: number; correlation: number }) {
  const gpus = gpuList(s.gpuCount, 9);
  const before = generateHeat({ layerCount: s.layerCount, expertCount: s.gpuCount * 8, seed: s.seed });
  const heat = driftHeat(before, { correlation: s.correlation, seed: s.driftSeed });
  const start = expectPlanned(
    planPlacement({ heat: before, gpus, policy: { maxMoveFraction: 1, minBalancednessGain: 0 } }),
  ).placement;
  return { gpus, heat, start };
}

describe("placement quality when moves are cheap", () => {
  it("three rebalances of 10% on a stable heat end within 0.002 of a fresh plan, each within the budget", () => {
    fc.assert(
      fc.property(shape, (s) => {
        const { gpus, heat, start } = scenario(s);
        const r = rebalanceRepeatedly(heat, gpus, start, [0.1, 0.1, 0.1]);
        for (const m of r.moved) expect(m).toBeLessThanOrEqual(Math.floor(0.1 * r.replicas + 1e-9));
        expect(freshBalancedness(heat, gpus) - r.balancedness).toBeLessThanOrEqual(0.002);
      }),
      { numRuns: 40 },
    );
  });

  it("the result does not depend on how the budget is split (3 x 20%, 6 x 10%, 12 x 5%)", () => {
    fc.assert(
      fc.property(shape, (s) => {
        const { gpus, heat, start } = scenario(s);
        const fresh = freshBalancedness(heat, gpus);
        const results = [
          [0.2, 3],
          [0.1, 6],
          [0.05, 12],
        ].map(([b, n]) => rebalanceRepeatedly(heat, gpus, start, Array<number>(n!).fill(b!)).balancedness);
        for (const bal of results) expect(fresh - bal).toBeLessThanOrEqual(0.002);
        expect(Math.max(...results) - Math.min(...results)).toBeLessThanOrEqual(0.002);
      }),
      { numRuns: 25 },
    );
  });

  it("a scale-down re-homes experts within 0.02 of a fresh plan at the new size (repairs plus a 10% budget)", () => {
    fc.assert(
      fc.property(shape, fc.integer({ min: 1, max: 4 }), (s, removed) => {
        const gpus = gpuList(s.gpuCount, 9);
        const heat = generateHeat({ layerCount: s.layerCount, expertCount: s.gpuCount * 7, seed: s.seed });
        const bigger = gpuList(s.gpuCount + removed, 9);
        const start = expectPlanned(
          planPlacement({ heat, gpus: bigger, policy: { maxMoveFraction: 1, minBalancednessGain: 0 } }),
        ).placement;
        const o = expectPlanned(
          planPlacement({ heat, gpus, current: start, policy: { maxMoveFraction: 0.1, minBalancednessGain: 0.01 } }),
        );
        expect(o.repairMoves).toBeGreaterThan(0);
        expect(o.movedReplicas).toBeLessThanOrEqual(o.repairMoves + Math.floor(0.1 * o.metrics.replicaCount + 1e-9));
        expect(freshBalancedness(heat, gpus) - o.metrics.balancedness).toBeLessThanOrEqual(0.02);
      }),
      { numRuns: 40 },
    );
  });

  it("the shipped spec.placement defaults correct a mild drift (correlation 0.999) at the DeepSeek-V3 shape", () => {
    const defaults = PlacementSchema.parse({});
    const policy: PlacementPolicy = {
      maxMoveFraction: defaults.maxMovedPercent / 100,
      minBalancednessGain: defaults.minBalancednessGainPercent / 100,
    };
    const gpus = gpuList(32, 9);
    const before = generateHeat({ layerCount: 58, expertCount: 256, seed: 11 });
    const heat = driftHeat(before, { correlation: 0.999, seed: 12 });
    const start = expectPlanned(planPlacement({ heat: before, gpus, policy })).placement;
    const o = expectPlanned(planPlacement({ heat, gpus, current: start, policy }));
    expect(o.previousMetrics!.balancedness).toBeLessThan(0.99);
    expect(freshBalancedness(heat, gpus) - o.metrics.balancedness).toBeLessThanOrEqual(0.002);
  });

  it("reports the bytes moved beside the replicas, and whether the budget cut the plan short", () => {
    const gpus = gpuList(16, 9);
    const before = generateHeat({ layerCount: 3, expertCount: 128, seed: 5 });
    const heat = driftHeat(before, { correlation: 0.98, seed: 6 });
    const bytes = 44_040_192;
    const start = expectPlanned(
      planPlacement({
        heat: before,
        gpus,
        policy: { maxMoveFraction: 1, minBalancednessGain: 0, bytesPerExpertReplica: bytes },
      }),
    );
    expect(start.movedBytes).toBe(start.movedReplicas * bytes);
    const cut = expectPlanned(
      planPlacement({
        heat,
        gpus,
        current: start.placement,
        policy: { maxMoveFraction: 0.02, minBalancednessGain: 0, bytesPerExpertReplica: bytes },
      }),
    );
    expect(cut.movedReplicas).toBeGreaterThan(0);
    expect(cut.movedBytes).toBe(cut.movedReplicas * bytes);
    expect(cut.budgetLimited).toBe(true);
    const full = expectPlanned(
      planPlacement({ heat, gpus, current: start.placement, policy: { maxMoveFraction: 1, minBalancednessGain: 0 } }),
    );
    expect(full.movedBytes).toBeNull();
    expect(full.budgetLimited).toBe(false);
  });

  it("repeated rebalances with the shipped defaults alone (no caller logic) converge within 0.002 of a fresh plan in 3, each within the budget", () => {
    const defaults = PlacementSchema.parse({});
    const policy: PlacementPolicy = {
      maxMoveFraction: defaults.maxMovedPercent / 100,
      minBalancednessGain: defaults.minBalancednessGainPercent / 100,
    };
    fc.assert(
      fc.property(shape, (s) => {
        const { gpus, heat, start } = scenario(s);
        let current = start;
        for (let i = 0; i < 3; i++) {
          const o = planPlacement({ heat, gpus, current, policy });
          if (o.kind === "infeasible") throw new Error(o.reason);
          if (o.kind === "planned") {
            expect(o.movedReplicas).toBeLessThanOrEqual(
              Math.floor(policy.maxMoveFraction * o.metrics.replicaCount + 1e-9),
            );
            // The convergence state travels in the published placement (the ConfigMap's JSON).
            const parsed = parsePlacement(JSON.parse(serializePlacement(o.placement)));
            if (!parsed.ok) throw new Error(parsed.reason);
            current = parsed.value;
          }
        }
        expect(freshBalancedness(heat, gpus) - computePlacementMetrics(current, heat).balancedness).toBeLessThanOrEqual(
          0.002,
        );
      }),
      { numRuns: 30, seed: 15 },
    );
  });

  it("converges through noisy windows (Poisson samples of the drifted heat) and then stops moving", () => {
    const defaults = PlacementSchema.parse({});
    const policy: PlacementPolicy = {
      maxMoveFraction: defaults.maxMovedPercent / 100,
      minBalancednessGain: defaults.minBalancednessGainPercent / 100,
    };
    const gpus = gpuList(32, 9);
    const before = generateHeat({ layerCount: 8, expertCount: 256, seed: 21 });
    const truth = driftHeat(before, { correlation: 0.98, seed: 22 });
    let current = expectPlanned(planPlacement({ heat: before, gpus, policy })).placement;
    const kinds: string[] = [];
    for (let i = 0; i < 8; i++) {
      const o = planPlacement({
        heat: sampleHeat(truth, { tokensPerLayer: 1_000_000, seed: 100 + i }),
        gpus,
        current,
        policy,
      });
      if (o.kind === "infeasible") throw new Error(o.reason);
      kinds.push(o.kind);
      current = o.placement;
    }
    expect(kinds.slice(-3)).toEqual(["unchanged", "unchanged", "unchanged"]);
    expect(freshBalancedness(truth, gpus) - computePlacementMetrics(current, truth).balancedness).toBeLessThanOrEqual(
      0.004,
    );
  });

  it("with 2 slots per GPU the planner does not stop on a plateau: it reaches a fresh plan's balance, whatever the budget split", () => {
    fc.assert(
      fc.property(
        fc.record({
          seed: fc.integer({ min: 1, max: 1_000_000 }),
          driftSeed: fc.integer({ min: 1, max: 1_000_000 }),
          gpuCount: fc.constantFrom(24, 32, 48),
        }),
        (s) => {
          const gpus = gpuList(s.gpuCount, 2);
          // Enough layers that a 10% budget covers one layer's re-plan (about half a layer's replicas).
          const before = generateHeat({ layerCount: 12, expertCount: Math.floor(s.gpuCount * 1.75), seed: s.seed });
          const heat = driftHeat(before, { correlation: 0.98, seed: s.driftSeed });
          const start = expectPlanned(
            planPlacement({ heat: before, gpus, policy: { maxMoveFraction: 1, minBalancednessGain: 0 } }),
          ).placement;
          const fresh = freshBalancedness(heat, gpus);
          const results = [
            [1, 1],
            [0.25, 8],
            [0.1, 20],
          ].map(([b, n]) => rebalanceRepeatedly(heat, gpus, start, Array<number>(n!).fill(b!)).balancedness);
          for (const bal of results) expect(fresh - bal).toBeLessThanOrEqual(0.002);
          expect(Math.max(...results) - Math.min(...results)).toBeLessThanOrEqual(0.002);
        },
      ),
      { numRuns: 20, seed: 16 },
    );
  });

  it("every sample's spec.placement corrects a mild drift (correlation 0.999) at the DeepSeek-V3 shape", () => {
    const root = fileURLToPath(new URL("../..", import.meta.url));
    const gpus = gpuList(32, 9);
    const before = generateHeat({ layerCount: 58, expertCount: 256, seed: 11 });
    const heat = driftHeat(before, { correlation: 0.999, seed: 12 });
    for (const name of ["deepseek-v3", "qwen3-235b-a22b", "mixtral-8x7b"]) {
      const manifest = parse(readFileSync(join(root, "deploy/samples", `${name}.yaml`), "utf8")) as {
        spec: { placement?: unknown };
      };
      const settings = PlacementSchema.parse(manifest.spec.placement ?? {});
      const policy: PlacementPolicy = {
        maxMoveFraction: settings.maxMovedPercent / 100,
        minBalancednessGain: settings.minBalancednessGainPercent / 100,
      };
      const start = expectPlanned(planPlacement({ heat: before, gpus, policy })).placement;
      const o = planPlacement({ heat, gpus, current: start, policy });
      expect(o.kind, name).toBe("planned");
      expect(
        freshBalancedness(heat, gpus) - (o.kind === "planned" ? o.metrics.balancedness : 0),
        name,
      ).toBeLessThanOrEqual(0.002);
    }
  });
});
