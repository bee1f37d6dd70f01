import { describe, expect, it } from "vitest";
import { createRng } from "../../src/domain/rng.ts";
import { buildWorkSeries, gammaRenewalTimes, synthesizeRateLoad, syntheticRateTrace } from "../../src/sim/index.ts";
import type { RateTrace } from "../../src/sim/index.ts";

function cvOf(xs: ArrayLike<number>): { mean: number; cv: number } {
  let s = 0;
  for (let i = 0; i < xs.length; i++) s += xs[i] as number;
  const mean = s / xs.length;
  let v = 0;
  for (let i = 0; i < xs.length; i++) v += ((xs[i] as number) - mean) ** 2;
  return { mean, cv: Math.sqrt(v / xs.length) / mean };
}

function flatRate(ratePerS: number, seconds: number): RateTrace {
  return {
    kind: "rate",
    name: "flat",
    format: "rate",
    startEpochMs: 0,
    skippedLines: 0,
    skipped: [],
    windowStartS: new Float64Array([0]),
    windowS: new Float64Array([seconds]),
    ratePerS: new Float64Array([ratePerS]),
    meanInputTokens: 1000,
    meanOutputTokens: 100,
  };
}

describe("sim Gamma arrivals", () => {
  for (const cv of [0.5, 1, 2, 3]) {
    it(`inter-arrival CV ${cv} and rate are reproduced`, () => {
      const times = gammaRenewalTimes(5, cv, 40_000, createRng(42));
      const gaps = new Float64Array(times.length - 1);
      for (let i = 1; i < times.length; i++) gaps[i - 1] = (times[i] as number) - (times[i - 1] as number);
      const { mean, cv: got } = cvOf(gaps);
      expect(mean).toBeCloseTo(0.2, 1);
      expect(got).toBeGreaterThan(cv * 0.9);
      expect(got).toBeLessThan(cv * 1.1);
    });
  }

  it("per-second counts: exact renewal (low rate) and large-count limit (high rate) keep mean and dispersion cv^2", () => {
    for (const rate of [20, 400]) {
      const load = synthesizeRateLoad(flatRate(rate, 20_000), { seed: 3, cv: 2, scale: 1 });
      const { mean, cv } = cvOf(load.requests);
      expect(mean / rate).toBeGreaterThan(0.97);
      expect(mean / rate).toBeLessThan(1.03);
      const dispersion = (cv * mean) ** 2 / mean; // variance / mean
      // Gamma renewal counts: variance/mean -> cv^2 = 4 for long windows; a 1 s window at rate 20
      // sits a little below the limit.
      expect(dispersion).toBeGreaterThan(rate > 64 ? 3.6 : 2.5);
      expect(dispersion).toBeLessThan(4.4);
    }
  });

  it("the scale multiplies the rate and the same seed gives the same arrivals", () => {
    const trace = syntheticRateTrace({ seed: 1, durationS: 7200, meanRatePerS: 10 });
    const a = synthesizeRateLoad(trace, { seed: 9, cv: 1.5, scale: 3 });
    const b = synthesizeRateLoad(trace, { seed: 9, cv: 1.5, scale: 3 });
    expect(Buffer.from(a.requests.buffer).equals(Buffer.from(b.requests.buffer))).toBe(true);
    const base = synthesizeRateLoad(trace, { seed: 9, cv: 1.5, scale: 1 });
    const sum = (x: Float64Array): number => x.reduce((s, v) => s + v, 0);
    expect(sum(a.requests) / sum(base.requests)).toBeGreaterThan(2.8);
    expect(sum(a.requests) / sum(base.requests)).toBeLessThan(3.2);
  });

  it("decode work spreads output tokens over their generation span and conserves them", () => {
    const load = synthesizeRateLoad(flatRate(5, 600), { seed: 5, cv: 1, scale: 1 });
    const work = buildWorkSeries(load, "perTokenLatency");
    const out = load.outputTokens.reduce((s, v) => s + v, 0);
    expect(work.tokensPrefix[work.seconds]).toBeLessThanOrEqual(out + 1e-6);
    expect(work.tokensPrefix[work.seconds]).toBeGreaterThan(out * 0.98);
    const ttft = buildWorkSeries(load, "ttft");
    expect(ttft.tokensPrefix[ttft.seconds]).toBeCloseTo(
      load.inputTokens.reduce((s, v) => s + v, 0),
      3,
    );
    expect(work.meanOutputTokens).toBeGreaterThan(80);
  });
});
