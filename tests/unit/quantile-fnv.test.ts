import { describe, expect, it } from "vitest";
import { median, quantile, quantileSorted } from "../../src/domain/quantile.ts";
import { fnv1a32, fnv1a64 } from "../../src/domain/fnv.ts";
import { seedFrom } from "../../src/domain/rng.ts";

describe("quantile (type 7, the one of the codebase)", () => {
  it("interpolates between the closest ranks and clamps q", () => {
    expect(quantile([4, 1, 3, 2], 0.5)).toBe(2.5);
    expect(quantile([10, 20], 0.25)).toBe(12.5);
    expect(quantile([5, 1, 9], 2)).toBe(9);
    expect(quantile([5, 1, 9], -1)).toBe(1);
    expect(quantileSorted(new Float64Array([1, 2, 3, 4, 5]), 0.9)).toBeCloseTo(4.6, 12);
    expect(Number.isNaN(quantile([], 0.5))).toBe(true);
  });

  it("leaves its input alone; median averages the two middle values", () => {
    const xs = [3, 1, 2];
    expect(quantile(xs, 1)).toBe(3);
    expect(xs).toEqual([3, 1, 2]);
    expect(median([7, 1, 3, 5])).toBe(4);
    expect(median([7, 1, 3])).toBe(3);
    expect(Number.isNaN(median([]))).toBe(true);
  });
});

describe("FNV-1a (the one string hash of the codebase)", () => {
  it("matches the reference vectors at 32 and 64 bits", () => {
    expect(fnv1a32("")).toBe(0x811c9dc5);
    expect(fnv1a32("a")).toBe(0xe40c292c);
    expect(fnv1a32("foobar")).toBe(0xbf9cf968);
    expect(fnv1a64("a")).toBe("af63dc4c8601ec8c");
    expect(fnv1a64("foobar")).toBe("85944171f73967e8");
  });

  it("is what seeds are derived from", () => {
    expect(seedFrom("foobar")).toBe(fnv1a32("foobar"));
    expect(seedFrom(42)).toBe(fnv1a32("42"));
  });
});
