// The stress suite generator (issue 14, item 6) and the observation faults it drives.
import { describe, expect, it } from "vitest";
import {
  constantGapTrace,
  observedLoadFactor,
  prepareScenario,
  runScenario,
  STRESS_CASES,
  stressCase,
  stressSuite,
  syntheticRateTrace,
  visibleScrapeEndS,
} from "../../src/sim/index.ts";

function zeroRuns(rates: Float64Array): number[] {
  const runs: number[] = [];
  let run = 0;
  for (const r of rates) {
    if (r === 0) run++;
    else if (run > 0) {
      runs.push(run);
      run = 0;
    }
  }
  if (run > 0) runs.push(run);
  return runs;
}

describe("sim stress suite", () => {
  it("is seeded: the same seed gives the same series, another seed another", () => {
    const a = stressSuite({ seed: 3, days: 1 });
    const b = stressSuite({ seed: 3, days: 1 });
    expect(a.map((c) => c.name)).toEqual([...STRESS_CASES]);
    for (let i = 0; i < a.length; i++) {
      expect(Array.from(a[i]?.trace.ratePerS ?? [])).toEqual(Array.from(b[i]?.trace.ratePerS ?? []));
      expect(a[i]?.faults).toEqual(b[i]?.faults);
    }
    expect(Array.from(stressCase("gaps", { seed: 4, days: 1 }).trace.ratePerS)).not.toEqual(
      Array.from(a[0]?.trace.ratePerS ?? []),
    );
  });

  it("has collection gaps of 10 min, 1 h and 3 h, a 10x flash crowd for 5 min and a permanent 2x step", () => {
    expect(zeroRuns(stressCase("gaps", { seed: 1, days: 1 }).trace.ratePerS)).toEqual([10, 60, 180]);
    const base = stressCase("outage", { seed: 1, days: 1 }).trace.ratePerS.length;
    expect(base).toBe(1440);
    const flash = stressCase("flash-crowd", { seed: 1, days: 1 }).trace.ratePerS;
    let jumps = 0;
    for (let m = 1; m < flash.length; m++) if ((flash[m] as number) > 5 * (flash[m - 1] as number)) jumps++;
    expect(jumps).toBe(1);
    const step = stressCase("step", { seed: 1, days: 1 }).trace.ratePerS;
    const at = step.findIndex((r, m) => m > 0 && r > 1.8 * (step[m - 1] as number));
    expect(at).toBeGreaterThan(0);
    expect(step[step.length - 1] as number).toBeGreaterThan(1.5 * (step[at - 1] as number));
    const weekly = stressCase("weekly", { seed: 1, days: 1 });
    expect(weekly.trace.ratePerS.length).toBe(2 * 1440);
    expect(new Date(weekly.trace.startEpochMs).getUTCDay()).toBe(5);
  });

  it("faults change what policies see, never the load", () => {
    const faults = { outages: [{ startS: 3600, endS: 4500 }], outliers: [{ atS: 1800, factor: 1000 }] };
    expect(visibleScrapeEndS(faults, 4200, 15)).toBe(3585);
    expect(visibleScrapeEndS(faults, 4500, 15)).toBe(4500);
    expect(observedLoadFactor(faults, 1800, 15)).toBe(1000);
    expect(observedLoadFactor(faults, 1815, 15)).toBe(1);
    const trace = syntheticRateTrace({ seed: 2, durationS: 2 * 3600, meanRatePerS: 120 });
    const opts = { seed: 1, peakGpus: 48, maxGpus: 150, policies: ["hpa", "oracle"] as const, tuneBaselines: false };
    const clean = runScenario(prepareScenario(trace, opts));
    const faulty = runScenario(prepareScenario(trace, { ...opts, observationFaults: faults }));
    expect(Array.from(faulty.requirement)).toEqual(Array.from(clean.requirement));
    expect(faulty.results.find((r) => r.name === "oracle")).toEqual(clean.results.find((r) => r.name === "oracle"));
    expect(faulty.results.find((r) => r.name === "hpa")?.peakGpus).toBeGreaterThan(
      clean.results.find((r) => r.name === "hpa")?.peakGpus ?? Infinity,
    );
  });

  it("the constant-load case is flat at its rate with one gap of rate 0 where asked", () => {
    const t = constantGapTrace();
    expect(t.ratePerS.length).toBe(8 * 60);
    expect(zeroRuns(t.ratePerS)).toEqual([120]);
    expect(t.ratePerS[179]).toBe(200);
    expect(t.ratePerS[180]).toBe(0);
    expect(t.ratePerS[299]).toBe(0);
    expect(t.ratePerS[300]).toBe(200);
    expect(new Set(Array.from(t.ratePerS))).toEqual(new Set([0, 200]));
    const u = constantGapTrace({ hours: 4, ratePerS: 50, gapFromH: 1, gapToH: 1.5 });
    expect(u.ratePerS.length).toBe(240);
    expect(zeroRuns(u.ratePerS)).toEqual([30]);
    expect(Math.max(...u.ratePerS)).toBe(50);
  });
});
