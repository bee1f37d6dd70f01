import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  blendedUsdPerGpuHour,
  costRateUsdPerHour,
  maxGpusWithinBudget,
  REFERENCE_USD_PER_GPU_HOUR,
  summarizeCost,
  usdPerGpuHourFor,
} from "../../src/domain/cost/index.ts";

const prices = { "h800-8x": 2, "h100-8x": 3.5 };
const H = 3_600_000;

describe("cost", () => {
  it("prices GPUs by node type and reports unknown node types instead of guessing", () => {
    expect(usdPerGpuHourFor("h800-8x", prices)).toBe(2);
    expect(usdPerGpuHourFor("a100", prices)).toBeUndefined();
    expect(usdPerGpuHourFor("a100", prices, { defaultUsdPerGpuHour: 1.5 })).toBe(1.5);
    expect(usdPerGpuHourFor("toString", prices)).toBeUndefined(); // no prototype lookups
    const r = costRateUsdPerHour([{ nodeType: "h800-8x", gpuCount: 16 }, { nodeType: "h100-8x", gpuCount: 8 }, { nodeType: "a100", gpuCount: 4 }], prices);
    expect(r).toEqual({ usdPerHour: 16 * 2 + 8 * 3.5, gpuCount: 28, unpricedGpuCount: 4, unpricedNodeTypes: ["a100"] });
    expect(blendedUsdPerGpuHour([{ nodeType: "h800-8x", gpuCount: 8 }, { nodeType: "h100-8x", gpuCount: 8 }], prices)).toBeCloseTo(2.75, 9);
  });

  it("reproduces DeepSeek's published day: 226.75 nodes x 8 GPUs x 24 h at $2 = $87,072", () => {
    const day = summarizeCost([{ atMs: 0, allocations: [{ nodeType: "h800-8x", gpuCount: 226.75 * 8 }], tokensPerSecond: 0 }], 0, 24 * H, prices);
    expect(day.usd).toBeCloseTo(87_072, 6);
    expect(REFERENCE_USD_PER_GPU_HOUR).toBe(2);
  });

  it("integrates GPU-hours, USD and USD per 1M tokens over a window (step-wise)", () => {
    const s = summarizeCost([
      { atMs: 0, allocations: [{ nodeType: "h800-8x", gpuCount: 8 }], tokensPerSecond: 10_000 },
      { atMs: 2 * H, allocations: [{ nodeType: "h800-8x", gpuCount: 16 }], tokensPerSecond: 20_000 },
    ], H, 3 * H, prices);
    // 1 h at 8 GPUs + 1 h at 16 GPUs.
    expect(s.gpuHours).toBeCloseTo(24, 9);
    expect(s.usd).toBeCloseTo(48, 9);
    expect(s.tokens).toBeCloseTo(10_000 * 3600 + 20_000 * 3600, 3);
    expect(s.usdPerMillionTokens).toBeCloseTo(48 / 108, 9);
    expect(s.averageUsdPerHour).toBeCloseTo(24, 9);
    expect(summarizeCost([], 0, H, prices).usdPerMillionTokens).toBeUndefined();
  });

  it("turns a budget into a GPU count on the step, without float truncation", () => {
    expect(maxGpusWithinBudget(10, 2.5)).toBe(4);
    expect(maxGpusWithinBudget(100, 2, 8)).toBe(48);
    expect(maxGpusWithinBudget(undefined, 2)).toBeUndefined();
    expect(maxGpusWithinBudget(5, 0)).toBe(Infinity);
    fc.assert(fc.property(fc.double({ min: 0, max: 1e5, noNaN: true }), fc.double({ min: 0.01, max: 100, noNaN: true }), fc.integer({ min: 1, max: 16 }),
      (budget, price, step) => {
        const n = maxGpusWithinBudget(budget, price, step) as number;
        expect(n % step).toBe(0);
        expect(n * price).toBeLessThanOrEqual(budget * (1 + 1e-9));
        expect((n + step) * price).toBeGreaterThan(budget);
      }));
  });
});
