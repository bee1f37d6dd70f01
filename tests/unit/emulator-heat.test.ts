import { describe, expect, it } from "vitest";
import { HeatPatterns, loadAt } from "../../src/emulator/server.ts";
import { correlation } from "../../src/domain/synthetic/heat.ts";

describe("fleet emulator scenario heat", () => {
  const shape = { layerCount: 4, expertCount: 64, topK: 8 };

  it("keeps the base pattern before a shift and drifts to the requested correlation after it", () => {
    const heats = new HeatPatterns(shape);
    const scenario = { heatSeed: 3, heatShifts: [{ tS: 100, seed: 9, correlation: 0.66 }] };
    const before = heats.at(scenario, 99);
    const after = heats.at(scenario, 100);
    expect(before).toBe(heats.generated(3));
    for (let l = 0; l < shape.layerCount; l++) {
      expect(correlation(before[l]!, after[l]!)).toBeCloseTo(0.66, 3);
      const sum = (r: number[]) => r.reduce((a, b) => a + b, 0);
      expect(sum(after[l]!)).toBeCloseTo(sum(before[l]!), 3); // same traffic, other experts
    }
    expect(heats.at(scenario, 500)).toBe(after); // computed once
  });

  it("switches to an unrelated pattern when a shift gives no correlation, and applies shifts in time order", () => {
    const heats = new HeatPatterns(shape);
    const scenario = {
      heatSeed: 3,
      heatShifts: [
        { tS: 200, seed: 11, correlation: 0.9 },
        { tS: 100, seed: 5 },
      ],
    };
    expect(heats.at(scenario, 150)).toBe(heats.generated(5));
    const last = heats.at(scenario, 250);
    expect(correlation(heats.generated(5)[0]!, last[0]!)).toBeCloseTo(0.9, 3);
  });

  it("interpolates the load between scenario points", () => {
    const s = {
      startMs: 0,
      points: [
        { tS: 0, tokensPerSecond: 10 },
        { tS: 10, tokensPerSecond: 30, phase: "peak" },
      ],
      heatShifts: [],
      heatSeed: 1,
    };
    expect(loadAt(s, 5_000).tokensPerSecond).toBe(20);
    expect(loadAt(s, 20_000).tokensPerSecond).toBe(30);
    expect(loadAt(s, 20_000).phase).toBe("peak");
  });
});
