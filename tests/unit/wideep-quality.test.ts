// The capacity input under WideEP reads the shared placement's quality under the current heat
// (docs/adr/0021-wide-ep-groups.md, "Groups share one placement"): a placement that leaves the hot
// expert on one GPU paces every group by that GPU, so the same load needs more groups.
import { describe, expect, it } from "vitest";
import { parseMoEDeployment } from "../../src/api/index.ts";
import { decideWideEP } from "../../src/domain/wideep/decide.ts";
import { policyFromSpec } from "../../src/controllers/moedeployment/policy.ts";
import type { Placement } from "../../src/domain/placement/types.ts";
import { computePlacementMetrics } from "../../src/domain/placement/metrics.ts";
import { TEST_DENSE, TEST_EXPERTS, TEST_LAYERS, TEST_TOPK, testWideEPDeployment } from "../support/moe-fixtures.ts";

const NOW = Date.parse("2026-12-06T12:00:00Z");
const LAYERS = TEST_LAYERS - TEST_DENSE;
const GPUS = 16;
const r = parseMoEDeployment(testWideEPDeployment("wide", "default", { minShards: 16, maxShards: 64, latencyMs: 40 }));
if (!r.ok) throw new Error("fixture");
const d = r.value;
const policy = policyFromSpec(d.spec, { reconcileIntervalMs: 5000, maxSurge: 1 });
const shape = { nodesPerGroup: 2, gpusPerNode: 8 };

/** Half of every layer's routed tokens go to expert 0. */
function heat(tokensPerSecond: number): number[][] {
  const routed = tokensPerSecond * TEST_TOPK;
  return Array.from({ length: LAYERS }, () =>
    Array.from({ length: TEST_EXPERTS }, (_, e) => (e === 0 ? routed / 2 : routed / 2 / (TEST_EXPERTS - 1))),
  );
}

function placement(slotsOf: (gpu: number) => number[]): Placement {
  const gpus = Array.from({ length: GPUS }, (_, g) => ({
    gpuId: `g${g}`,
    nodeName: `n${Math.floor(g / 8)}`,
    domain: `n${Math.floor(g / 8)}`,
    slotCount: 5,
  }));
  const layer = gpus.map((_, g) => slotsOf(g));
  return {
    version: 1,
    layerCount: LAYERS,
    expertCount: TEST_EXPERTS,
    gpus,
    layers: Array.from({ length: LAYERS }, () => layer),
  };
}
const others = (g: number, n: number) => Array.from({ length: n }, (_, i) => 1 + ((g * n + i) % (TEST_EXPERTS - 1)));
/** Expert 0 on two slots of every GPU. */
const balanced = placement((g) => [0, 0, ...others(g, 3)]);
/** Expert 0 on one slot of GPU 0 only. */
const skewed = placement((g) => (g === 0 ? [0, 1, 2, 3, 4] : others(g, 5)));

const groupsFor = (tokensPerSecond: number, currentPlacement?: Placement) =>
  decideWideEP(
    {
      heat: { heat: heat(tokensPerSecond), atMs: NOW, confidence: 1 },
      provisionedGroups: 1,
      pods: [],
      trackingSinceMs: NOW - 3_600_000,
      ...(currentPlacement ? { currentPlacement } : {}),
    },
    policy,
    shape,
    60_000,
    NOW,
  ).groups;

describe("decideWideEP: the shared placement's quality is the capacity input", () => {
  it("the fixtures are what they say", () => {
    expect(computePlacementMetrics(balanced, heat(1000)).balancedness).toBeGreaterThan(0.9);
    expect(computePlacementMetrics(skewed, heat(1000)).balancedness).toBeLessThan(0.2);
  });

  it("the same load needs more groups with the hot expert on one GPU than with it spread (neutral before a placement)", () => {
    // One group provisioned; a scale-up step adds one group at most (the fixture's maxShardsPerStep).
    const loads = [1000, 3000, 10000, 30000];
    for (const t of loads) expect(groupsFor(t, skewed)).toBeGreaterThanOrEqual(groupsFor(t, balanced));
    expect(groupsFor(10000)).toBe(1);
    expect(groupsFor(10000, balanced)).toBe(1);
    expect(groupsFor(10000, skewed)).toBe(2);
  });
});
