import { describe, expect, it } from "vitest";
import fc from "fast-check";
import {
  computePlacementMetrics,
  countMovedReplicas,
  EMPTY_SLOT,
  gpuLoads,
  parsePlacement,
  placementHash,
  planPlacement,
  serializePlacement,
} from "../../src/domain/placement/index.ts";
import type {
  GpuSlotInfo,
  Placement,
  PlacementInput,
  PlacementOutcome,
  PlacementPolicy,
} from "../../src/domain/placement/index.ts";
import { generateHeat, driftHeat } from "../../src/domain/synthetic/heat.ts";
import { eplbGlobal } from "../../bench/placement/eplb.ts";
import { placementFromSglang } from "../../src/domain/placement/index.ts";

const POLICY: PlacementPolicy = { maxMoveFraction: 0.1, minBalancednessGain: 0.005 };

function gpuList(nodes: number, perNode: number, slots: number): GpuSlotInfo[] {
  const out: GpuSlotInfo[] = [];
  for (let n = 0; n < nodes; n++)
    for (let g = 0; g < perNode; g++)
      out.push({ gpuId: `n${n}-g${g}`, nodeName: `n${n}`, domain: `d${n >> 1}`, slotCount: slots });
  return out;
}

function expectPlanned(o: PlacementOutcome): Extract<PlacementOutcome, { kind: "planned" }> {
  if (o.kind !== "planned") throw new Error(`expected planned, got ${o.kind}: ${"reason" in o ? o.reason : ""}`);
  return o;
}

/** Invariants checked from the output only; returns a list of violations. */
function violations(input: PlacementInput, p: Placement): string[] {
  const out: string[] = [];
  const L = input.heat.length;
  const E = input.heat[0]!.length;
  if (p.layerCount !== L || p.expertCount !== E || p.layers.length !== L) out.push("shape");
  if (p.gpus.map((g) => g.gpuId).join() !== input.gpus.map((g) => g.gpuId).join())
    out.push("gpu list differs from input");
  const bytes = input.policy.bytesPerExpertReplica;
  p.gpus.forEach((gpu, g) => {
    const given = input.gpus[g]!;
    if (gpu.slotCount > given.slotCount) out.push(`gpu ${gpu.gpuId} has more slots than given`);
    if (bytes && given.memoryBytes !== undefined && gpu.slotCount * L * bytes > given.memoryBytes)
      out.push(`gpu ${gpu.gpuId} over memory`);
  });
  for (let l = 0; l < L; l++) {
    const count = new Array<number>(E).fill(0);
    let replicas = 0;
    p.layers[l]!.forEach((slots, g) => {
      if (slots.length !== p.gpus[g]!.slotCount)
        out.push(`layer ${l} gpu ${g}: ${slots.length} slots, expected ${p.gpus[g]!.slotCount}`);
      const seen = new Set<number>();
      for (const e of slots) {
        if (e === EMPTY_SLOT) continue;
        if (!Number.isInteger(e) || e < 0 || e >= E) out.push(`layer ${l} gpu ${g}: bad expert ${e}`);
        if (seen.has(e)) out.push(`layer ${l} gpu ${g}: expert ${e} twice`);
        seen.add(e);
        count[e]! += 1;
        replicas += 1;
      }
    });
    count.forEach((c, e) => {
      if (c === 0) out.push(`layer ${l}: expert ${e} has no replica`);
    });
    const redundant = input.policy.redundantSlots;
    if (redundant !== undefined && replicas > E + redundant)
      out.push(`layer ${l}: ${replicas} replicas > ${E} + ${redundant}`);
  }
  return out;
}

const heatValue = fc.oneof(
  fc.constant(0),
  fc.integer({ min: 0, max: 1000 }),
  fc.double({ min: 0, max: 1e6, noNaN: true }),
);
const scenario = fc
  .record({ layers: fc.integer({ min: 1, max: 3 }), experts: fc.integer({ min: 1, max: 20 }) })
  .chain(({ layers, experts }) =>
    fc.record({
      heat: fc.array(fc.array(heatValue, { minLength: experts, maxLength: experts }), {
        minLength: layers,
        maxLength: layers,
      }),
      heat2: fc.array(fc.array(heatValue, { minLength: experts, maxLength: experts }), {
        minLength: layers,
        maxLength: layers,
      }),
      gpus: fc.array(fc.record({ node: fc.integer({ min: 0, max: 3 }), slots: fc.integer({ min: 0, max: 7 }) }), {
        minLength: 1,
        maxLength: 10,
      }),
      keep: fc.array(fc.boolean(), { minLength: 10, maxLength: 10 }),
      extra: fc.array(fc.record({ node: fc.integer({ min: 0, max: 4 }), slots: fc.integer({ min: 0, max: 7 }) }), {
        maxLength: 3,
      }),
      redundant: fc.option(fc.integer({ min: 0, max: 20 }), { nil: undefined }),
      maxMoveFraction: fc.double({ min: 0, max: 1, noNaN: true }),
      topology: fc.constantFrom("spread" as const, "ignore" as const),
    }),
  );

describe("planPlacement properties", () => {
  it("fresh plans satisfy every invariant, or say which constraint is infeasible", () => {
    fc.assert(
      fc.property(scenario, (s) => {
        const gpus: GpuSlotInfo[] = s.gpus.map((g, i) => ({
          gpuId: `g${i}`,
          nodeName: `n${g.node}`,
          slotCount: g.slots,
        }));
        const input: PlacementInput = {
          heat: s.heat,
          gpus,
          policy: { ...POLICY, redundantSlots: s.redundant, topology: s.topology },
        };
        const o = planPlacement(input);
        const total = gpus.reduce((a, g) => a + g.slotCount, 0);
        const E = s.heat[0]!.length;
        if (total < E) {
          expect(o.kind).toBe("infeasible");
          if (o.kind === "infeasible") expect(o.constraint).toBe("slots");
          return;
        }
        const p = expectPlanned(o);
        expect(violations(input, p.placement)).toEqual([]);
        // Fill-all policy: a slot stays empty only where no expert could be added to that GPU
        // without lifting it above the layer's hottest GPU.
        if (s.redundant === undefined) {
          const loads = gpuLoads(p.placement, s.heat);
          p.placement.layers.forEach((layer, l) => {
            const count = new Array<number>(E).fill(0);
            for (const slots of layer) for (const e of slots) if (e >= 0) count[e]! += 1;
            const max = Math.max(...loads[l]!);
            const active = gpus.filter((g) => g.slotCount > 0).length;
            layer.forEach((slots, g) => {
              if (!slots.includes(EMPTY_SLOT)) return;
              for (let e = 0; e < E; e++) {
                if (slots.includes(e) || count[e]! >= active) continue;
                expect(loads[l]![g]! + s.heat[l]![e]! / (count[e]! + 1)).toBeGreaterThan(max * (1 - 1e-9));
              }
            });
          });
        }
        // Determinism: byte-identical JSON for the same input.
        expect(serializePlacement(expectPlanned(planPlacement(input)).placement)).toBe(serializePlacement(p.placement));
        expect(p.placementHash).toBe(placementHash(p.placement));
        // Metrics agree with a recomputation from the output.
        expect(p.metrics.balancedness).toBeCloseTo(computePlacementMetrics(p.placement, s.heat).balancedness, 12);
        expect(p.metrics.balancedness).toBeGreaterThan(0);
        expect(p.metrics.balancedness).toBeLessThanOrEqual(1 + 1e-12);
      }),
      { numRuns: 300 },
    );
  });

  it("incremental plans keep invariants, respect the move budget and only report real moves", () => {
    fc.assert(
      fc.property(scenario, (s) => {
        const gpus1: GpuSlotInfo[] = s.gpus.map((g, i) => ({
          gpuId: `g${i}`,
          nodeName: `n${g.node}`,
          slotCount: g.slots,
        }));
        const E = s.heat[0]!.length;
        const policy: PlacementPolicy = {
          ...POLICY,
          maxMoveFraction: s.maxMoveFraction,
          redundantSlots: s.redundant,
          topology: s.topology,
        };
        const first = planPlacement({ heat: s.heat, gpus: gpus1, policy });
        if (first.kind !== "planned") return;
        // GPUs removed (keep flags) and added (extra).
        const gpus2 = [
          ...gpus1.filter((_, i) => s.keep[i]),
          ...s.extra.map((g, i) => ({ gpuId: `x${i}`, nodeName: `n${g.node}`, slotCount: g.slots })),
        ];
        const input: PlacementInput = { heat: s.heat2, gpus: gpus2, policy, current: first.placement };
        const o = planPlacement(input);
        if (gpus2.reduce((a, g) => a + g.slotCount, 0) < E) {
          expect(o.kind).toBe("infeasible");
          return;
        }
        if (o.kind === "unchanged") {
          expect(o.placement).toBe(first.placement);
          expect(violations(input, o.placement)).toEqual([]);
          return;
        }
        const p = expectPlanned(o);
        expect(violations(input, p.placement)).toEqual([]);
        expect(p.movedReplicas).toBe(countMovedReplicas(first.placement, p.placement));
        const L = s.heat.length;
        const slots = gpus2.reduce((a, g) => a + g.slotCount, 0);
        expect(p.movedReplicas).toBeLessThanOrEqual(p.repairMoves + Math.floor(s.maxMoveFraction * L * slots + 1e-9));
      }),
      { numRuns: 300 },
    );
  });

  it("replanning the same heat from its own plan changes nothing", () => {
    fc.assert(
      fc.property(scenario, (s) => {
        const gpus: GpuSlotInfo[] = s.gpus.map((g, i) => ({
          gpuId: `g${i}`,
          nodeName: `n${g.node}`,
          slotCount: g.slots,
        }));
        const first = planPlacement({ heat: s.heat, gpus, policy: POLICY });
        if (first.kind !== "planned") return;
        const again = planPlacement({ heat: s.heat, gpus, policy: POLICY, current: first.placement });
        expect(again.kind).toBe("unchanged");
      }),
      { numRuns: 200 },
    );
  });
});

describe("planPlacement edge cases", () => {
  it("a fresh plan is a fixpoint when a zero-heat replica sits on the hottest GPU (found by the property test, seed -787691139)", () => {
    // One node, uneven slots: the pack leaves zero-heat experts 1 and 4 with two replicas each, one
    // of them on a GPU tied for the hottest. Replacing that replica with a hot expert's helps; the
    // search's replace candidates skipped keys tied with the hottest load, so only a re-plan found it.
    const heat = [[313, 0, 783, 643, 0, 0, 0, 0, 560, 0]];
    const gpus = [4, 3, 4, 6, 6, 5, 1, 5].map((slotCount, i) => ({ gpuId: `g${i}`, nodeName: "n0", slotCount }));
    const first = expectPlanned(planPlacement({ heat, gpus, policy: POLICY }));
    const again = planPlacement({ heat, gpus, policy: POLICY, current: first.placement });
    expect(again.kind).toBe("unchanged");
    expect(first.metrics.balancedness).toBeGreaterThan(0.85);
  });

  it("one GPU holds every expert once", () => {
    const p = expectPlanned(
      planPlacement({ heat: [[5, 1, 0, 3]], gpus: [{ gpuId: "a", nodeName: "n", slotCount: 4 }], policy: POLICY }),
    );
    expect([...p.placement.layers[0]![0]!].sort()).toEqual([0, 1, 2, 3]);
    expect(p.metrics.balancedness).toBe(1);
  });

  it("more experts than slots is infeasible and names the constraint", () => {
    const o = planPlacement({ heat: [[1, 2, 3, 4, 5]], gpus: gpuList(1, 2, 2), policy: POLICY });
    expect(o).toMatchObject({ kind: "infeasible", constraint: "slots" });
    if (o.kind === "infeasible") expect(o.reason).toMatch(/5 expert slots.*offer 4/);
  });

  it("memory can make a plan infeasible and says so", () => {
    const gpus = gpuList(1, 2, 4).map((g) => ({ ...g, memoryBytes: 2 * 10 * 3 }));
    const o = planPlacement({
      heat: [
        [1, 2, 3, 4, 5],
        [1, 2, 3, 4, 5],
        [1, 1, 1, 1, 1],
      ],
      gpus,
      policy: { ...POLICY, bytesPerExpertReplica: 10 },
    });
    expect(o).toMatchObject({ kind: "infeasible", constraint: "memory" });
  });

  it("memory limits slots per GPU", () => {
    const gpus = gpuList(1, 4, 4).map((g) => ({ ...g, memoryBytes: 2 * 100 }));
    const p = expectPlanned(
      planPlacement({ heat: [[9, 1, 1, 1, 1, 1]], gpus, policy: { ...POLICY, bytesPerExpertReplica: 100 } }),
    );
    for (const g of p.placement.gpus) expect(g.slotCount).toBe(2);
    expect(p.notes.join()).toMatch(/memory/);
  });

  it("tiny heat does not underflow balancedness to 0 (found by the property test: one expert at 5e-324 tok/s on 2 GPUs)", () => {
    const gpus: GpuSlotInfo[] = [
      { gpuId: "g0", nodeName: "n0", slotCount: 1 },
      { gpuId: "g1", nodeName: "n0", slotCount: 1 },
    ];
    const p = expectPlanned(planPlacement({ heat: [[5e-324]], gpus, policy: { ...POLICY, redundantSlots: 0 } }));
    expect(p.metrics.balancedness).toBeGreaterThan(0);
    expect(computePlacementMetrics(p.placement, [[5e-324]]).balancedness).toBe(p.metrics.balancedness);
  });

  it("zero heat still places every expert and spreads replicas", () => {
    const input = { heat: [[0, 0, 0, 0, 0, 0]], gpus: gpuList(2, 2, 2), policy: POLICY };
    const p = expectPlanned(planPlacement(input));
    expect(violations(input, p.placement)).toEqual([]);
    expect(p.metrics.balancedness).toBe(1);
  });

  it("a single hot expert gets a replica on every GPU and no more", () => {
    const heat = [[1000, 1, 1, 1, 1, 1]];
    const input = { heat, gpus: gpuList(1, 3, 4), policy: POLICY };
    const p = expectPlanned(planPlacement(input));
    expect(violations(input, p.placement)).toEqual([]);
    for (const slots of p.placement.layers[0]!) expect(slots).toContain(0);
  });

  it("hot experts get the redundant replicas", () => {
    const heat = [[100, 90, 5, 5, 5, 5, 5, 5]];
    const p = expectPlanned(planPlacement({ heat, gpus: gpuList(2, 2, 3), policy: { ...POLICY, redundantSlots: 2 } }));
    const count = new Array<number>(8).fill(0);
    for (const slots of p.placement.layers[0]!) for (const e of slots) if (e >= 0) count[e]! += 1;
    expect(count[0]).toBe(2);
    expect(count[1]).toBe(2);
    expect(count.reduce((a, b) => a + b, 0)).toBe(10);
  });

  it("a node removed mid-plan: its experts are re-placed elsewhere, the rest stays", () => {
    const heat = generateHeat({ layerCount: 4, expertCount: 64, seed: 3 });
    const gpus = gpuList(4, 4, 6);
    const first = expectPlanned(planPlacement({ heat, gpus, policy: POLICY }));
    const remaining = gpus.filter((g) => g.nodeName !== "n2");
    const input = { heat, gpus: remaining, policy: POLICY, current: first.placement };
    const p = expectPlanned(planPlacement(input));
    expect(p.mode).toBe("incremental");
    expect(violations(input, p.placement)).toEqual([]);
    expect(p.repairMoves).toBeGreaterThan(0);
    expect(p.notes.join()).toMatch(/4 GPU\(s\) of the current placement are gone/);
    // Replicas on surviving GPUs mostly stay.
    expect(p.movedFraction).toBeLessThan(0.4);
  });

  it("rejects bad input as a value", () => {
    expect(planPlacement({ heat: [[1, Number.NaN]], gpus: gpuList(1, 1, 2), policy: POLICY })).toMatchObject({
      kind: "infeasible",
      constraint: "input",
    });
    expect(planPlacement({ heat: [[1, -1]], gpus: gpuList(1, 1, 2), policy: POLICY })).toMatchObject({
      kind: "infeasible",
      constraint: "input",
    });
    expect(planPlacement({ heat: [[1, 2], [1]], gpus: gpuList(1, 1, 2), policy: POLICY })).toMatchObject({
      kind: "infeasible",
      constraint: "input",
    });
    const dup = [
      { gpuId: "a", nodeName: "n", slotCount: 2 },
      { gpuId: "a", nodeName: "n", slotCount: 2 },
    ];
    expect(planPlacement({ heat: [[1, 2]], gpus: dup, policy: POLICY })).toMatchObject({
      kind: "infeasible",
      constraint: "input",
    });
  });

  it("a current placement of another shape is replaced by a fresh plan", () => {
    const gpus = gpuList(1, 2, 3);
    const first = expectPlanned(planPlacement({ heat: [[1, 2, 3]], gpus, policy: POLICY }));
    const p = expectPlanned(planPlacement({ heat: [[1, 2, 3, 4]], gpus, policy: POLICY, current: first.placement }));
    expect(p.mode).toBe("fresh");
    expect(p.notes.join()).toMatch(/shape/);
  });

  it("placements round-trip through JSON and parsePlacement", () => {
    const p = expectPlanned(
      planPlacement({
        heat: generateHeat({ layerCount: 2, expertCount: 16, seed: 1 }),
        gpus: gpuList(2, 2, 5),
        policy: POLICY,
      }),
    );
    const parsed = parsePlacement(JSON.parse(serializePlacement(p.placement)));
    expect(parsed.ok).toBe(true);
    if (parsed.ok) expect(placementHash(parsed.value)).toBe(p.placementHash);
    expect(parsePlacement({ version: 2 }).ok).toBe(false);
  });
});

describe("planPlacement quality (DeepSeek-V3 shape, synthetic heat)", () => {
  const heat = generateHeat({ layerCount: 58, expertCount: 256, seed: 11 });
  const gpus = gpuList(4, 8, 9);
  const fresh = expectPlanned(planPlacement({ heat, gpus, policy: POLICY }));

  it("is at least as balanced as the EPLB-style global baseline (-0.005)", () => {
    const baseline = placementFromSglang({ physical_to_logical_map: eplbGlobal(heat, 288, 32) }, gpus, 256);
    if (!baseline.ok) throw new Error(baseline.reason);
    expect(fresh.metrics.balancedness).toBeGreaterThanOrEqual(
      computePlacementMetrics(baseline.value, heat).balancedness - 0.005,
    );
  });

  it("under drift moves <= 10% and stays within 0.01 of a fresh plan", () => {
    const next = driftHeat(heat, { correlation: 0.98, seed: 5 });
    const inc = expectPlanned(planPlacement({ heat: next, gpus, policy: POLICY, current: fresh.placement }));
    const again = expectPlanned(planPlacement({ heat: next, gpus, policy: POLICY }));
    expect(inc.movedFraction).toBeLessThanOrEqual(0.1);
    expect(again.metrics.balancedness - inc.metrics.balancedness).toBeLessThanOrEqual(0.01);
  });
});
