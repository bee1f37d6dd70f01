import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { createRng } from "../../src/domain/rng.ts";
import {
  combineLayerBalancedness,
  createLatencyCalibration,
  defaultLatencyModelParams,
  effectiveGpuCapacity,
  observeLatency,
  predictCalibratedP99LatencyMs,
  predictP99LatencyMs,
  requiredGpusForTarget,
} from "../../src/domain/latency/index.ts";
import type { LatencyCalibrationState, LatencyConditions, LatencyModelParams } from "../../src/domain/latency/index.ts";

const itl = defaultLatencyModelParams("itl");
const base: LatencyConditions = { tokensPerSecond: 10_000, gpuCount: 8, balancedness: 0.9, crossNodeShare: 0.2 };

describe("latency model", () => {
  it("reproduces the public DeepSeek decode operating point (~48 ms p99 ITL at 14.8k tok/s per 8-GPU node)", () => {
    const p99 = predictP99LatencyMs(itl, { tokensPerSecond: 14_800, gpuCount: 8, balancedness: 1, crossNodeShare: 0 });
    expect(p99).toBeGreaterThan(40);
    expect(p99).toBeLessThan(60);
  });

  it("lets the hottest GPU set the pace: worse balance means higher latency", () => {
    const balanced = predictP99LatencyMs(itl, { ...base, balancedness: 1 });
    const skewed = predictP99LatencyMs(itl, { ...base, balancedness: 0.5 });
    expect(skewed).toBeGreaterThan(balanced);
    // Balance 0.5 halves the load the fleet can take: 8 GPUs at 0.5 behave like 4 at 1.
    expect(predictP99LatencyMs(itl, { ...base, balancedness: 0.5 })).toBeCloseTo(
      predictP99LatencyMs(itl, { ...base, gpuCount: 4, balancedness: 1 }),
      6,
    );
  });

  it("explodes as utilisation nears 1 and is infinite past saturation", () => {
    const cap = effectiveGpuCapacity(itl, { crossNodeShare: 0 }) * 8;
    const at = (rho: number) =>
      predictP99LatencyMs(itl, { tokensPerSecond: rho * cap, gpuCount: 8, balancedness: 1, crossNodeShare: 0 });
    expect(at(0.5)).toBeLessThan(at(0.9));
    expect(at(0.99)).toBeGreaterThan(10 * at(0.5));
    expect(at(1)).toBe(Infinity);
    expect(at(1.5)).toBe(Infinity);
  });

  it("charges a cross-node hop and capacity penalty", () => {
    expect(predictP99LatencyMs(itl, { ...base, crossNodeShare: 1 })).toBeGreaterThan(
      predictP99LatencyMs(itl, { ...base, crossNodeShare: 0 }),
    );
  });

  it("charges redundant expert memory as lost KV-cache capacity (2.4 GB each)", () => {
    expect(effectiveGpuCapacity(itl, { crossNodeShare: 0, redundantExpertsPerGpu: 4 })).toBeCloseTo(
      effectiveGpuCapacity(itl, { crossNodeShare: 0 }) * (1 - (4 * 2.4) / 40),
      6,
    );
  });

  it("combines per-layer balancedness as a harmonic mean", () => {
    expect(combineLayerBalancedness([1, 0.5])).toBeCloseTo(2 / 3, 9);
    expect(combineLayerBalancedness([])).toBe(1);
  });

  it("finds the fewest GPUs meeting a target, in multiples of the step", () => {
    const target = 40;
    const r = requiredGpusForTarget(itl, base, target, { searchLimitGpus: 512 });
    expect(r.gpuCount).toBeDefined();
    const n = r.gpuCount as number;
    expect(predictP99LatencyMs(itl, { ...base, gpuCount: n })).toBeLessThanOrEqual(target);
    expect(predictP99LatencyMs(itl, { ...base, gpuCount: n - 1 })).toBeGreaterThan(target);
    const stepped = requiredGpusForTarget(itl, base, target, { searchLimitGpus: 512, gpuStep: 8 });
    expect((stepped.gpuCount as number) % 8).toBe(0);
    expect(stepped.gpuCount as number).toBeGreaterThanOrEqual(n);
    expect(stepped.gpuCount as number).toBeLessThan(n + 8);
  });

  it("reports an unattainable target as a value", () => {
    const r = requiredGpusForTarget(itl, base, itl.baseLatencyMs / 2, { searchLimitGpus: 1024 });
    expect(r.gpuCount).toBeUndefined();
  });

  it("is monotone: more load never lowers, more GPUs never raise predicted latency (property)", () => {
    fc.assert(
      fc.property(
        fc.double({ min: 0, max: 1e6, noNaN: true }),
        fc.double({ min: 0, max: 1e6, noNaN: true }),
        fc.integer({ min: 1, max: 512 }),
        fc.integer({ min: 0, max: 64 }),
        fc.double({ min: 0.05, max: 1, noNaN: true }),
        fc.double({ min: 0, max: 1, noNaN: true }),
        (l1, l2, n, extra, b, x) => {
          const lo = Math.min(l1, l2);
          const hi = Math.max(l1, l2);
          const c = { gpuCount: n, balancedness: b, crossNodeShare: x };
          expect(predictP99LatencyMs(itl, { ...c, tokensPerSecond: hi })).toBeGreaterThanOrEqual(
            predictP99LatencyMs(itl, { ...c, tokensPerSecond: lo }),
          );
          expect(predictP99LatencyMs(itl, { ...c, tokensPerSecond: hi, gpuCount: n + extra })).toBeLessThanOrEqual(
            predictP99LatencyMs(itl, { ...c, tokensPerSecond: hi }),
          );
        },
      ),
    );
  });
});

describe("online calibration", () => {
  // The "real" deployment is 40 % slower at low load and saturates at 70 % of the default capacity.
  const truth: LatencyModelParams = {
    ...itl,
    baseLatencyMs: itl.baseLatencyMs * 1.4,
    tokensPerSecondPerGpu: itl.tokensPerSecondPerGpu * 0.7,
  };
  const gpuCount = 16;
  const trueCap = effectiveGpuCapacity(truth, { crossNodeShare: 0.1 }) * gpuCount * 0.85;
  const cond = (tokensPerSecond: number): LatencyConditions => ({
    tokensPerSecond,
    gpuCount,
    balancedness: 0.85,
    crossNodeShare: 0.1,
  });
  // Held-out loads spanning 10-85 % true utilisation.
  const heldOut = Array.from({ length: 16 }, (_, i) => (0.1 + (0.75 * i) / 15) * trueCap);

  function meanAbsLogError(cal: LatencyCalibrationState): number {
    let s = 0;
    for (const l of heldOut) {
      const predicted = predictCalibratedP99LatencyMs(itl, cal, cond(l));
      const actual = predictP99LatencyMs(truth, cond(l));
      s += Number.isFinite(predicted) ? Math.abs(Math.log(predicted / actual)) : 5;
    }
    return s / heldOut.length;
  }

  it("shrinks the model's error as observations arrive", () => {
    const rng = createRng(42);
    let cal = createLatencyCalibration();
    const errors: Record<number, number> = { 0: meanAbsLogError(cal) };
    const t0 = Date.UTC(2026, 0, 1);
    for (let i = 1; i <= 200; i++) {
      const load = (0.05 + 0.8 * rng.next()) * trueCap;
      const observed = predictP99LatencyMs(truth, cond(load)) * Math.exp(0.05 * rng.normal());
      cal = observeLatency(cal, itl, { ...cond(load), atMs: t0 + i * 60_000, observedP99Ms: observed });
      if ([5, 20, 200].includes(i)) errors[i] = meanAbsLogError(cal);
    }
    expect(errors[0]).toBeGreaterThan(0.4); // uncalibrated defaults are far off
    expect(errors[5]).toBeLessThan(errors[0] as number);
    expect(errors[20]).toBeLessThan(errors[5] as number);
    expect(errors[200]).toBeLessThan(0.06); // ~6 % p99 error after calibration
    expect(cal.correction.latencyScale).toBeGreaterThan(1.25);
    expect(cal.correction.capacityScale).toBeLessThan(0.8);
  });

  it("tracks drift: old observations fade", () => {
    const t0 = Date.UTC(2026, 0, 1);
    let cal = createLatencyCalibration();
    const rng = createRng(7);
    for (let i = 0; i < 100; i++) {
      const load = (0.05 + 0.8 * rng.next()) * trueCap;
      cal = observeLatency(cal, itl, {
        ...cond(load),
        atMs: t0 + i * 60_000,
        observedP99Ms: predictP99LatencyMs(itl, cond(load)),
      });
    }
    const before = meanAbsLogError(cal);
    for (let i = 0; i < 300; i++) {
      const load = (0.05 + 0.8 * rng.next()) * trueCap;
      cal = observeLatency(cal, itl, {
        ...cond(load),
        atMs: t0 + 3 * 86_400_000 + i * 60_000,
        observedP99Ms: predictP99LatencyMs(truth, cond(load)),
      });
    }
    expect(meanAbsLogError(cal)).toBeLessThan(before / 3);
  });

  it("ignores unusable observations and survives a JSON round trip", () => {
    const cal = createLatencyCalibration();
    expect(observeLatency(cal, itl, { ...cond(1000), atMs: 1, observedP99Ms: NaN })).toBe(cal);
    expect(observeLatency(cal, itl, { ...cond(1000), gpuCount: 0, atMs: 1, observedP99Ms: 30 })).toBe(cal);
    const one = observeLatency(cal, itl, { ...cond(1000), atMs: 1, observedP99Ms: 30 });
    const two = observeLatency(JSON.parse(JSON.stringify(one)) as LatencyCalibrationState, itl, {
      ...cond(5000),
      atMs: 2,
      observedP99Ms: 40,
    });
    expect(two.observationCount).toBe(2);
    expect(Number.isFinite(two.correction.latencyScale)).toBe(true);
  });
});
