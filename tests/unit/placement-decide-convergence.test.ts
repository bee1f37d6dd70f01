// The controller's decision path (decide) carries a budget-limited convergence across rebalances:
// the placement it publishes records pendingMoves, and the next decision continues it although the
// gain of that step is below the hysteresis (issue 15 item 6, ADR 0002).
import { describe, expect, it } from "vitest";
import {
  decide,
  tokensPerSecondFromHeat,
  type DecisionSnapshot,
  type DeploymentPolicy,
} from "../../src/domain/decide.ts";
import {
  computePlacementMetrics,
  parsePlacement,
  planPlacement,
  serializePlacement,
  type Placement,
} from "../../src/domain/placement/index.ts";
import { makeCapacityPolicy } from "../../src/domain/capacity/index.ts";
import { driftHeat, generateHeat } from "../../src/domain/synthetic/heat.ts";

const LAYERS = 6;
const EXPERTS = 64;
const SHARDS = 8;
const SLOTS = 9;
const gpus = Array.from({ length: SHARDS }, (_, i) => ({
  gpuId: `shard-${i}`,
  nodeName: `node-${Math.floor(i / 4)}`,
  slotCount: SLOTS,
}));
const nodes = [0, 1].map((i) => ({ name: `node-${i}`, domain: `node-${i}`, freeGpus: 8, usdPerGpuHour: 2 }));

function policy(): DeploymentPolicy {
  return {
    layerCount: LAYERS,
    expertCount: EXPERTS,
    topK: 8,
    slotsPerGpu: SLOTS,
    minShards: SHARDS,
    maxShards: SHARDS,
    routerGpus: 1,
    capacity: makeCapacityPolicy({ slo: { metric: "itl", targetP99Ms: 50 }, minGpus: SHARDS, maxGpus: SHARDS }),
    placement: { maxMoveFraction: 0.1, minBalancednessGain: 0.01, rebalanceIntervalMs: 300_000, topology: "spread" },
    defaultUsdPerGpuHour: 2,
  };
}

function fresh(heat: number[][]): { placement: Placement; balancedness: number } {
  const o = planPlacement({ heat, gpus, policy: { maxMoveFraction: 1, minBalancednessGain: 0 } });
  if (o.kind !== "planned") throw new Error(o.kind);
  return { placement: o.placement, balancedness: o.metrics.balancedness };
}

describe("decide carries a placement convergence across rebalances", () => {
  it.each([1, 2, 3, 4])("three heat rebalances on a stable heat end within 0.002 of a fresh plan (seed %i)", (seed) => {
    const before = generateHeat({ layerCount: LAYERS, expertCount: EXPERTS, seed });
    const raw = driftHeat(before, { correlation: 0.98, seed: seed + 100 });
    const k = 2_000 / tokensPerSecondFromHeat(raw, 8);
    const heat = raw.map((row) => row.map((v) => v * k));
    let current = fresh(before.map((row) => row.map((v) => v * k))).placement;
    let nowMs = 1_000_000;
    const actions: string[] = [];
    for (let i = 0; i < 3; i++) {
      const snapshot: DecisionSnapshot = {
        heat: { heat, atMs: nowMs - 1_000, confidence: 1 },
        shards: Array.from({ length: SHARDS }, (_, s) => ({
          shardIndex: s,
          nodeName: `node-${Math.floor(s / 4)}`,
          ready: true,
          usdPerGpuHour: 2,
        })),
        provisionedShards: SHARDS,
        currentPlacement: current,
        lastRebalanceMs: nowMs - 600_000,
        rolloutInProgress: false,
        trackingSinceMs: 0,
        nodes,
      };
      const d = decide(snapshot, policy(), nowMs);
      expect(d.desiredShards).toBe(SHARDS);
      actions.push(d.placement.action);
      if (d.placement.action === "replan" && d.placement.placement) {
        // What the reconciler publishes and reads back: the ConfigMap's placement.json.
        const parsed = parsePlacement(JSON.parse(serializePlacement(d.placement.placement)));
        if (!parsed.ok) throw new Error(parsed.reason);
        current = parsed.value;
      }
      nowMs += 600_000;
    }
    expect(actions[0]).toBe("replan");
    expect(fresh(heat).balancedness - computePlacementMetrics(current, heat).balancedness).toBeLessThanOrEqual(0.002);
  });
});
