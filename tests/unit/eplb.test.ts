import { describe, expect, it } from "vitest";
import {
  balancedPacking,
  eplbGlobal,
  eplbRebalance,
  mapBalancedness,
  replicateExperts,
} from "../../bench/placement/eplb.ts";

// The published example of the EPLB README: 2 layers x 12 experts, 16 replicas, 4 groups, 2 nodes, 8 GPUs.
const WEIGHTS = [
  [90, 132, 40, 61, 104, 165, 39, 4, 73, 56, 183, 86],
  [20, 107, 104, 64, 19, 197, 187, 157, 172, 86, 16, 27],
];

describe("EPLB-style baseline", () => {
  it("reproduces the README's hierarchical layer-0 placement and balancedness 0.816", () => {
    const map = eplbRebalance(WEIGHTS, 16, 4, 2, 8);
    expect(map[0]).toEqual([5, 6, 5, 7, 8, 4, 3, 4, 10, 9, 10, 2, 0, 1, 11, 1]);
    expect(mapBalancedness(WEIGHTS, map, 8)).toBeCloseTo(0.816, 3);
  });

  it("global policy reaches about 0.886 on the same example", () => {
    expect(mapBalancedness(WEIGHTS, eplbGlobal(WEIGHTS, 16, 8), 8)).toBeCloseTo(0.886, 3);
  });

  it("replicates the expert with the highest load per replica", () => {
    const { phyToLog, count } = replicateExperts([10, 4, 1], 5);
    expect(phyToLog).toEqual([0, 1, 2, 0, 0]);
    expect(count).toEqual([3, 1, 1]);
  });

  it("packs heaviest first onto the lightest pack with room", () => {
    const { pack, rank } = balancedPacking([5, 4, 3, 2], 2);
    expect(pack).toEqual([0, 1, 1, 0]);
    expect(rank).toEqual([0, 0, 1, 1]);
  });

  it("every expert keeps at least one replica", () => {
    const map = eplbRebalance(WEIGHTS, 16, 4, 2, 8);
    for (const row of map) for (let e = 0; e < 12; e++) expect(row).toContain(e);
  });
});
