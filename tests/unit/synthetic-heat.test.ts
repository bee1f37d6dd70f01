import { describe, expect, it } from "vitest";
import {
  correlation,
  driftHeat,
  generateHeat,
  heatStatistics,
  medianHeatStatistics,
  sampleHeat,
} from "../../src/domain/synthetic/heat.ts";
import { createRng } from "../../src/domain/rng.ts";

describe("synthetic heat", () => {
  it("is calibrated to the published DeepSeek-V3 statistics", () => {
    for (const seed of [1, 2, 3]) {
      const s = medianHeatStatistics(generateHeat({ layerCount: 58, expertCount: 256, seed }));
      expect(s.maxOverMean).toBeGreaterThanOrEqual(5.2);
      expect(s.maxOverMean).toBeLessThanOrEqual(8.2);
      expect(s.minOverMean).toBeGreaterThanOrEqual(0.07);
      expect(s.minOverMean).toBeLessThanOrEqual(0.18);
      expect(s.coefficientOfVariation).toBeGreaterThanOrEqual(0.72);
      expect(s.coefficientOfVariation).toBeLessThanOrEqual(1.02);
      expect(s.top8Share).toBeGreaterThanOrEqual(0.12);
      expect(s.top8Share).toBeLessThanOrEqual(0.17);
      expect(s.top32Share).toBeGreaterThanOrEqual(0.31);
      expect(s.top32Share).toBeLessThanOrEqual(0.4);
    }
  });

  it("layers sum to tokens x topK and the generator is deterministic", () => {
    const a = generateHeat({ layerCount: 3, expertCount: 16, seed: 9, tokensPerLayer: 1000, topK: 4 });
    expect(a).toEqual(generateHeat({ layerCount: 3, expertCount: 16, seed: 9, tokensPerLayer: 1000, topK: 4 }));
    for (const row of a) expect(row.reduce((x, y) => x + y, 0)).toBeCloseTo(4000, 6);
    expect(generateHeat({ layerCount: 3, expertCount: 16, seed: 10 })).not.toEqual(a);
  });

  it("drift hits the requested correlation and keeps layer totals", () => {
    const h = generateHeat({ layerCount: 4, expertCount: 256, seed: 1 });
    const d = driftHeat(h, { correlation: 0.98, seed: 2 });
    h.forEach((row, l) => {
      expect(correlation(row, d[l]!)).toBeCloseTo(0.98, 3);
      expect(d[l]!.reduce((a, b) => a + b, 0)).toBeCloseTo(
        row.reduce((a, b) => a + b, 0),
        3,
      );
    });
  });

  it("sampling noise shrinks with the number of tokens", () => {
    const h = generateHeat({ layerCount: 2, expertCount: 256, seed: 1 });
    const small = sampleHeat(h, { tokensPerLayer: 10_000, seed: 3 });
    const large = sampleHeat(h, { tokensPerLayer: 10_000_000, seed: 3 });
    expect(correlation(h[0]!, large[0]!)).toBeGreaterThan(correlation(h[0]!, small[0]!));
    expect(correlation(h[0]!, large[0]!)).toBeGreaterThan(0.999);
    for (const v of small[0]!) expect(Number.isInteger(v)).toBe(true);
  });

  it("heatStatistics on a known row", () => {
    const s = heatStatistics([4, 2, 1, 1]);
    expect(s.maxOverMean).toBe(2);
    expect(s.minOverMean).toBe(0.5);
    expect(s.top8Share).toBe(1);
  });
});

describe("rng", () => {
  it("is reproducible and roughly uniform / normal", () => {
    const a = createRng(42);
    const b = createRng(42);
    const xs = Array.from({ length: 20_000 }, () => a.next());
    expect(xs.slice(0, 5)).toEqual(Array.from({ length: 5 }, () => b.next()));
    const m = xs.reduce((p, q) => p + q, 0) / xs.length;
    expect(m).toBeGreaterThan(0.48);
    expect(m).toBeLessThan(0.52);
    const r = createRng(7);
    const ns = Array.from({ length: 20_000 }, () => r.normal());
    const nm = ns.reduce((p, q) => p + q, 0) / ns.length;
    const nv = ns.reduce((p, q) => p + (q - nm) ** 2, 0) / ns.length;
    expect(Math.abs(nm)).toBeLessThan(0.03);
    expect(nv).toBeGreaterThan(0.95);
    expect(nv).toBeLessThan(1.05);
    const g = Array.from({ length: 20_000 }, () => r.gamma(2, 3));
    expect(g.reduce((p, q) => p + q, 0) / g.length).toBeGreaterThan(5.8);
    const p = Array.from({ length: 20_000 }, () => r.poisson(3.5));
    expect(p.reduce((s, q) => s + q, 0) / p.length).toBeCloseTo(3.5, 1);
  });
});
