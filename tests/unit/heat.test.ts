import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { estimateHeat } from "../../src/domain/heat/index.ts";
import type { ExpertCounterSeries } from "../../src/domain/heat/index.ts";

const NOW = 1_000_000;

/** A counter growing at `rate` tokens/s, sampled every `stepMs` over the last `spanMs`. */
function series(layer: number, expert: number, rate: number, stepMs = 15_000, spanMs = 300_000, start = 0): ExpertCounterSeries {
  const samples = [];
  for (let t = NOW - spanMs; t <= NOW; t += stepMs) samples.push({ timeMs: t, value: start + (rate * (t - (NOW - spanMs))) / 1000 });
  return { layer, expert, samples };
}

describe("estimateHeat", () => {
  it("turns steady counters into their rates and is usable", () => {
    const s = [series(0, 0, 100), series(0, 1, 50), series(1, 0, 10), series(1, 1, 0.5)];
    const est = estimateHeat(s, { layerCount: 2, expertCount: 2, nowMs: NOW });
    expect(est.ratesPerSecond[0]![0]).toBeCloseTo(100, 6);
    expect(est.ratesPerSecond[0]![1]).toBeCloseTo(50, 6);
    expect(est.ratesPerSecond[1]![1]).toBeCloseTo(0.5, 6);
    expect(est.coverage).toBe(1);
    expect(est.usable).toBe(true);
    expect(est.confidence).toBe(1);
  });

  it("handles counter resets like Prometheus rate()", () => {
    const samples = [
      { timeMs: NOW - 60_000, value: 1000 },
      { timeMs: NOW - 45_000, value: 2500 },
      { timeMs: NOW - 30_000, value: 500 }, // restarted: 500 new tokens
      { timeMs: NOW - 15_000, value: 2000 },
      { timeMs: NOW, value: 3500 },
    ];
    const est = estimateHeat([{ layer: 0, expert: 0, samples }], { layerCount: 1, expertCount: 1, nowMs: NOW, minTokensPerExpert: 0 });
    expect(est.counterResets).toBe(1);
    expect(est.ratesPerSecond[0]![0]).toBeGreaterThan(30);
    expect(est.ratesPerSecond[0]![0]).toBeLessThan(100);
  });

  it("drops NaN, negative, infinite and future samples and does not bridge gaps", () => {
    const samples = [
      { timeMs: NOW - 900_000, value: 0 },
      { timeMs: NOW - 60_000, value: 1000 }, // 14 min gap: not an interval
      { timeMs: NOW - 45_000, value: Number.NaN },
      { timeMs: NOW - 30_000, value: 2500 },
      { timeMs: NOW - 20_000, value: -5 },
      { timeMs: NOW, value: 4000 },
      { timeMs: NOW + 60_000, value: 1e9 },
    ];
    const est = estimateHeat([{ layer: 0, expert: 0, samples }], { layerCount: 1, expertCount: 1, nowMs: NOW, windowMs: 3_600_000, minTokensPerExpert: 0 });
    expect(est.droppedSamples).toBe(3);
    expect(est.gaps).toBe(1);
    expect(est.ratesPerSecond[0]![0]).toBeCloseTo(50, 6);
  });

  it("fills experts without data with the layer mean and reports coverage", () => {
    const est = estimateHeat([series(0, 0, 100), series(0, 1, 300)], { layerCount: 1, expertCount: 4, nowMs: NOW });
    expect(est.ratesPerSecond[0]).toEqual([expect.closeTo(100, 6), expect.closeTo(300, 6), expect.closeTo(200, 6), expect.closeTo(200, 6)]);
    expect(est.observed[0]).toEqual([true, true, false, false]);
    expect(est.coverage).toBe(0.5);
    expect(est.usable).toBe(false);
    expect(est.reasons.join()).toMatch(/coverage 50.0%/);
  });

  it("sums several series of one expert (one per replica)", () => {
    const est = estimateHeat([series(0, 0, 100), series(0, 0, 60, 15_000, 300_000, 123)], { layerCount: 1, expertCount: 1, nowMs: NOW });
    expect(est.ratesPerSecond[0]![0]).toBeCloseTo(160, 6);
  });

  it("flags stale data", () => {
    const old = series(0, 0, 100);
    const est = estimateHeat([old], { layerCount: 1, expertCount: 1, nowMs: NOW + 600_000, windowMs: 3_600_000 });
    expect(est.usable).toBe(false);
    expect(est.newestSampleAgeMs).toBe(600_000);
    expect(est.reasons.join()).toMatch(/stale/);
    expect(est.confidence).toBe(0);
  });

  it("no data at all is not usable and rates are zero", () => {
    const est = estimateHeat([], { layerCount: 2, expertCount: 3, nowMs: NOW });
    expect(est.usable).toBe(false);
    expect(est.newestSampleAgeMs).toBeNull();
    expect(est.ratesPerSecond).toEqual([[0, 0, 0], [0, 0, 0]]);
  });

  it("flags too few tokens (sampling noise)", () => {
    const est = estimateHeat([series(0, 0, 0.001)], { layerCount: 1, expertCount: 1, nowMs: NOW });
    expect(est.usable).toBe(false);
    expect(est.reasons.join()).toMatch(/tokens per expert/);
  });

  it("smoothing favours recent intervals", () => {
    const samples = [];
    for (let t = NOW - 600_000; t <= NOW; t += 15_000) {
      const before = Math.min(t, NOW - 120_000) - (NOW - 600_000);
      const after = Math.max(0, t - (NOW - 120_000));
      samples.push({ timeMs: t, value: (10 * before) / 1000 + (100 * after) / 1000 });
    }
    const est = estimateHeat([{ layer: 0, expert: 0, samples }], { layerCount: 1, expertCount: 1, nowMs: NOW, halfLifeMs: 60_000 });
    expect(est.ratesPerSecond[0]![0]).toBeGreaterThan(55);
    expect(est.ratesPerSecond[0]![0]).toBeLessThan(100);
  });

  it("rates are finite and non-negative for arbitrary garbage input", () => {
    const sample = fc.record({
      timeMs: fc.oneof(fc.integer({ min: NOW - 2_000_000, max: NOW + 10_000 }), fc.constant(Number.NaN)),
      value: fc.oneof(fc.double({ min: -1e9, max: 1e12 }), fc.constant(Number.NaN), fc.constant(Number.POSITIVE_INFINITY)),
    });
    const anySeries = fc.record({ layer: fc.integer({ min: -1, max: 3 }), expert: fc.integer({ min: -1, max: 4 }), samples: fc.array(sample, { maxLength: 20 }) });
    fc.assert(
      fc.property(fc.array(anySeries, { maxLength: 12 }), (s) => {
        const est = estimateHeat(s, { layerCount: 3, expertCount: 4, nowMs: NOW });
        for (const row of est.ratesPerSecond) for (const v of row) expect(Number.isFinite(v) && v >= 0).toBe(true);
        expect(est.confidence).toBeGreaterThanOrEqual(0);
        expect(est.confidence).toBeLessThanOrEqual(1);
        expect(est.usable).toBe(est.reasons.length === 0);
      }),
      { numRuns: 300 },
    );
  });
});
