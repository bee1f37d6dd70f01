import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { reactiveLeadMinutes, reactiveReference } from "../../src/sim/index.ts";
import type { ReactiveReferenceInput } from "../../src/sim/index.ts";

function input(req: number[], extra: Partial<ReactiveReferenceInput> = {}): ReactiveReferenceInput {
  return { requirement: Int32Array.from(req), warmupMinutes: 0, leadMinutes: 3, minGpus: 1, maxGpus: 1000, ...extra };
}

describe("reactive reference", () => {
  it("costs exactly the requirement on constant load", () => {
    const r = reactiveReference(input(new Array<number>(120).fill(40)), 1);
    expect(r).toBeDefined();
    expect(r?.attainment).toBe(1);
    expect(r?.gpuHours).toBeCloseTo((40 * 120) / 60, 9);
  });

  it("sees a step one lead time late: meeting it costs a multiplier, missing the lead minutes does not", () => {
    // 20 GPUs for 60 minutes, then 40 for 60. Scored from minute 10.
    const req = [...new Array<number>(60).fill(20), ...new Array<number>(60).fill(40)];
    const base = input(req, { warmupMinutes: 10, leadMinutes: 3 });
    const scored = 110;
    const followed = (53 * 20 + 57 * 40) / 60; // the requirement, 3 minutes late
    // Every minute met: the estimate lags the step by 3 minutes, so the rule must double everything.
    const all = reactiveReference(base, 1);
    expect(all?.multiplier).toBeGreaterThan(1.9);
    expect(all?.gpuHours).toBeGreaterThan(1.8 * followed);
    // Missing exactly the 3 lead minutes: the rule follows the requirement 3 minutes late.
    const late = reactiveReference(base, (scored - 3) / scored);
    expect(late?.attainment).toBeCloseTo((scored - 3) / scored, 9);
    expect(late?.gpuHours).toBeCloseTo(followed, 9);
    // Missing only 2 is not enough.
    const two = reactiveReference(base, (scored - 2) / scored);
    expect(two?.gpuHours).toBeGreaterThan(1.8 * followed);
  });

  it("never counts an unattainable minute as met", () => {
    const req = new Array<number>(10).fill(5);
    const unattainable = new Uint8Array(10);
    unattainable[3] = 1;
    unattainable[7] = 1;
    expect(reactiveReference(input(req, { unattainable, leadMinutes: 1 }), 0.9)).toBeUndefined();
    const r = reactiveReference(input(req, { unattainable, leadMinutes: 1 }), 0.8);
    expect(r?.attainment).toBeCloseTo(0.8, 9);
  });

  it("meets what it reports, and costs more for a higher attainment", () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 1, max: 60 }), { minLength: 30, maxLength: 90 }),
        fc.integer({ min: 1, max: 6 }),
        fc.double({ min: 0.5, max: 0.95, noNaN: true }),
        fc.double({ min: 0, max: 0.05, noNaN: true }),
        (req, lead, lowTarget, step) => {
          const inp = input(req, { leadMinutes: lead, warmupMinutes: 5 });
          const low = reactiveReference(inp, lowTarget);
          const high = reactiveReference(inp, lowTarget + step);
          expect(low).toBeDefined();
          expect(high).toBeDefined();
          if (low === undefined || high === undefined) return;
          expect(low.attainment).toBeGreaterThanOrEqual(lowTarget - 1e-9);
          expect(high.attainment).toBeGreaterThanOrEqual(lowTarget + step - 1e-9);
          expect(high.gpuHours).toBeGreaterThanOrEqual(low.gpuHours - 1e-9);
        },
      ),
      { numRuns: 100, seed: 42 },
    );
  });

  it("rounds the lead time up to whole minutes", () => {
    expect(reactiveLeadMinutes(240, 30)).toBe(5);
    expect(reactiveLeadMinutes(240, 0)).toBe(4);
    expect(reactiveLeadMinutes(0, 0)).toBe(1);
  });
});
