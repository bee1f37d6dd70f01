import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { maxGpusWithinBudget, nodeUsdPerGpuHour } from "../../src/domain/cost/index.ts";

describe("cost", () => {
  it("prices a node by priceLabelKey, then table, then the default, and reports an unknown price as undefined", () => {
    const pricing = {
      priceLabelKey: "example.com/usd-per-gpu-hour",
      table: { labelKey: "node.kubernetes.io/instance-type", prices: [{ labelValue: "h800-8x", usdPerGpuHour: 2 }] },
      defaultUsdPerGpuHour: 1.5,
    };
    expect(
      nodeUsdPerGpuHour(
        { "example.com/usd-per-gpu-hour": "2.49", "node.kubernetes.io/instance-type": "h800-8x" },
        pricing,
      ),
    ).toBe(2.49);
    expect(
      nodeUsdPerGpuHour(
        { "example.com/usd-per-gpu-hour": "cheap", "node.kubernetes.io/instance-type": "h800-8x" },
        pricing,
      ),
    ).toBe(2);
    expect(nodeUsdPerGpuHour({ "node.kubernetes.io/instance-type": "a100" }, pricing)).toBe(1.5);
    expect(nodeUsdPerGpuHour({}, { ...pricing, defaultUsdPerGpuHour: 0 })).toBeUndefined();
    // No prototype lookups: a label key named like an Object member is just absent.
    expect(nodeUsdPerGpuHour({}, { priceLabelKey: "constructor", defaultUsdPerGpuHour: 0 })).toBeUndefined();
  });

  it("turns a budget into a GPU count on the step, without float truncation", () => {
    expect(maxGpusWithinBudget(10, 2.5)).toBe(4);
    expect(maxGpusWithinBudget(100, 2, 8)).toBe(48);
    expect(maxGpusWithinBudget(undefined, 2)).toBeUndefined();
    expect(maxGpusWithinBudget(5, 0)).toBe(Infinity);
    fc.assert(
      fc.property(
        fc.double({ min: 0, max: 1e5, noNaN: true }),
        fc.double({ min: 0.01, max: 100, noNaN: true }),
        fc.integer({ min: 1, max: 16 }),
        (budget, price, step) => {
          const n = maxGpusWithinBudget(budget, price, step) as number;
          expect(n % step).toBe(0);
          expect(n * price).toBeLessThanOrEqual(budget * (1 + 1e-9));
          expect((n + step) * price).toBeGreaterThan(budget);
        },
      ),
    );
  });
});
