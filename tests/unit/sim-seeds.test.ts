// Seeds (issue 14, item 7): figures of a replay shorter than a day are reported as mean and min-max.
import { describe, expect, it } from "vitest";
import { markdownSeedSpread, seedSpread } from "../../src/sim/index.ts";
import type { Summary } from "../../src/sim/index.ts";

function summary(seed: number, xOracle: number, attainment: number): Summary {
  return {
    config: { seed },
    policies: [{ name: "ours", gpuHoursVsOracle: xOracle, sloAttainment: attainment, overshootGpuMinutes: 10 * seed }],
    reference: { reactive: { atOursAttainment: { gpuHoursVsOracle: 1 + seed / 100 } } },
  } as unknown as Summary;
}

describe("sim seed spread", () => {
  it("reports mean and min-max per policy over the seeds", () => {
    const s = seedSpread([summary(1, 1.1, 0.9), summary(2, 1.3, 1), summary(3, 1.2, 0.95)]);
    expect(s.seeds).toEqual([1, 2, 3]);
    expect(s.policies[0]).toEqual({
      name: "ours",
      gpuHoursVsOracle: { mean: 1.2, min: 1.1, max: 1.3 },
      sloAttainment: { mean: 0.95, min: 0.9, max: 1 },
      overshootGpuMinutes: { mean: 20, min: 10, max: 30 },
    });
    expect(s.reactiveAtOursVsOracle).toEqual({ mean: 1.02, min: 1.01, max: 1.03 });
    expect(markdownSeedSpread(s)).toContain("| ours | 1.200 (1.100-1.300) | 95.00% (90.00%-100.00%) | 20 (10-30) |");
  });
});
