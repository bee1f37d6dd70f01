// Group mode of the simulator (issue 18, ADR 0021): capacity in whole WideEP groups for every
// policy and the oracle, by the operator's rounding; a group is Ready when its slowest pod is.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { createRng } from "../../src/domain/rng.ts";
import {
  buildSummary,
  ColdStartFleet,
  coldStartMeanS,
  DEFAULT_COLD_START,
  groupQuantiser,
  prepareScenario,
  runScenario,
  slowestOfColdStartMeanS,
  summaryJson,
  syntheticRateTrace,
} from "../../src/sim/index.ts";
import type { GroupShape, ScenarioOptions } from "../../src/sim/index.ts";

const shapeArb = fc.record({
  nodesPerGroup: fc.integer({ min: 1, max: 8 }),
  gpusPerNode: fc.integer({ min: 1, max: 8 }),
});

describe("group quantiser", () => {
  it("rounds up to the fewest whole groups within the bounds", () => {
    fc.assert(
      fc.property(
        shapeArb,
        fc.integer({ min: 0, max: 200 }),
        fc.integer({ min: 1, max: 400 }),
        fc.integer({ min: 0, max: 500 }),
        (shape, minAsked, extra, gpus) => {
          const g = shape.nodesPerGroup * shape.gpusPerNode;
          const q = groupQuantiser(minAsked, minAsked + extra, shape);
          expect(q.unit).toBe(g);
          expect(q.minGpus % g).toBe(0);
          expect(q.maxGpus % g).toBe(0);
          expect(q.minGpus).toBeGreaterThanOrEqual(Math.max(1, minAsked));
          const out = q.quantise(gpus);
          expect(out % g).toBe(0);
          expect(out).toBeGreaterThanOrEqual(q.minGpus);
          expect(out).toBeLessThanOrEqual(q.maxGpus);
          // Rounded up (when the bound allows) and never by a whole group more than needed.
          if (gpus <= q.maxGpus) expect(out).toBeGreaterThanOrEqual(gpus);
          if (out > q.minGpus) expect(out - g).toBeLessThan(gpus);
        },
      ),
    );
  });

  it("is the identity without groups", () => {
    const q = groupQuantiser(3, 40, undefined);
    expect([q.minGpus, q.maxGpus, q.unit, q.quantise(17)]).toEqual([3, 40, 1, 17]);
  });
});

describe("group cold-start fleet", () => {
  it("moves in whole groups, each Ready with all its GPUs when the slowest of its pods' draws is", () => {
    fc.assert(
      fc.property(
        shapeArb,
        fc.array(fc.integer({ min: 1, max: 600 }), { minLength: 64, maxLength: 64 }),
        fc.array(fc.integer({ min: 0, max: 6 }), { minLength: 1, maxLength: 12 }),
        (shape, draws, asks) => {
          const g = shape.nodesPerGroup * shape.gpusPerNode;
          let i = 0;
          const delays = (): number => draws[i++ % draws.length] as number;
          const fleet = new ColdStartFleet(g, delays, { gpus: g, draws: shape.nodesPerGroup });
          let t = 0;
          let starts = 0;
          for (const groups of asks) {
            const before = fleet.provisioned;
            const drawnBefore = i;
            fleet.setDesired(groups * g, t);
            if (groups * g > before) {
              const added = (groups * g - before) / g;
              starts += added;
              expect(i - drawnBefore).toBe(added * shape.nodesPerGroup);
            }
            for (let s = t; s <= t + 700; s += 50) {
              fleet.advance(s);
              expect(fleet.provisioned % g).toBe(0);
              expect(fleet.ready % g).toBe(0);
              expect(fleet.ready).toBeLessThanOrEqual(fleet.provisioned);
            }
            t += 700;
          }
          expect(fleet.coldStarts).toBe(starts);
        },
      ),
    );
  });

  it("each new group is Ready when the slowest of its own pods' draws is", () => {
    fc.assert(
      fc.property(
        shapeArb,
        fc.array(fc.integer({ min: 1, max: 600 }), { minLength: 1, maxLength: 40 }),
        fc.integer({ min: 1, max: 5 }),
        (shape, draws, add) => {
          const g = shape.nodesPerGroup * shape.gpusPerNode;
          let i = 0;
          const drawn: number[] = [];
          const delays = (): number => {
            const d = draws[i++ % draws.length] as number;
            drawn.push(d);
            return d;
          };
          const fleet = new ColdStartFleet(g, delays, { gpus: g, draws: shape.nodesPerGroup });
          fleet.setDesired((1 + add) * g, 0);
          const readyAt = Array.from({ length: add }, (_, k) =>
            Math.max(...drawn.slice(k * shape.nodesPerGroup, (k + 1) * shape.nodesPerGroup)),
          );
          expect(drawn.length).toBe(add * shape.nodesPerGroup);
          for (let t = 0; t <= 600; t++) {
            fleet.advance(t);
            expect(fleet.ready).toBe(g * (1 + readyAt.filter((r) => r <= t).length));
          }
          expect([...fleet.completedDurationsMs].sort((a, b) => a - b)).toEqual(
            readyAt.map((r) => r * 1000).sort((a, b) => a - b),
          );
        },
      ),
    );
  });

  it("a group of two pods drawing 100 s and 300 s is Ready at 300 s, not before, with one duration", () => {
    const seq = [100, 300];
    let i = 0;
    const fleet = new ColdStartFleet(16, () => seq[i++] as number, { gpus: 16, draws: 2 });
    fleet.setDesired(32, 0);
    fleet.advance(299);
    expect([fleet.provisioned, fleet.ready]).toEqual([32, 16]);
    fleet.advance(300);
    expect(fleet.ready).toBe(32);
    expect(fleet.completedDurationsMs).toEqual([300_000]);
    expect(fleet.coldStarts).toBe(1);
    // Scale-down cancels or releases a whole group.
    fleet.setDesired(16, 301);
    expect([fleet.provisioned, fleet.ready]).toEqual([16, 16]);
  });
});

describe("group cold-start mean (the oracle's lead)", () => {
  it("matches a seeded sample of the slowest of 4 clamped log-normal draws within 0.5 %", () => {
    const c = DEFAULT_COLD_START;
    const rng = createRng(42);
    const n = 100_000;
    let sum = 0;
    for (let k = 0; k < n; k++) {
      let slowest = 0;
      for (let p = 0; p < 4; p++)
        slowest = Math.max(slowest, Math.min(c.maxS, Math.max(c.minS, c.medianS * Math.exp(c.sigma * rng.normal()))));
      sum += slowest;
    }
    expect(Math.abs(slowestOfColdStartMeanS(c, 4) / (sum / n) - 1)).toBeLessThan(0.005);
  });

  it("is the distribution's mean for one pod and grows with the pods of a group, within the clamps", () => {
    const c = DEFAULT_COLD_START;
    expect(slowestOfColdStartMeanS(c, 1)).toBeCloseTo(coldStartMeanS(c), 0);
    let prev = slowestOfColdStartMeanS(c, 1);
    for (const pods of [2, 4, 8, 18]) {
      const m = slowestOfColdStartMeanS(c, pods);
      expect(m).toBeGreaterThan(prev);
      expect(m).toBeLessThanOrEqual(c.maxS);
      prev = m;
    }
  });
});

const trace = syntheticRateTrace({ seed: 5, durationS: 3 * 3600, meanRatePerS: 120 });
const base: ScenarioOptions = { seed: 3, peakGpus: 160, maxGpus: 480 };

function replay(group?: GroupShape) {
  const scenario = prepareScenario(trace, { ...base, ...(group === undefined ? {} : { group }) });
  const desired: number[] = [];
  const s = {
    ...scenario,
    config: { ...scenario.config, onOursDecision: (_o: unknown, _d: unknown, gpus: number) => desired.push(gpus) },
  };
  const result = runScenario(s);
  return { scenario: s, result, desired };
}

describe("moe-sim in group mode", () => {
  it("a group of one GPU gives exactly today's results", () => {
    const a = replay();
    const b = replay({ nodesPerGroup: 1, gpusPerNode: 1 });
    const json = (r: ReturnType<typeof replay>) => {
      const s = JSON.parse(summaryJson(buildSummary(r.scenario, r.result))) as { config: Record<string, unknown> };
      delete s.config.group;
      return JSON.stringify(s);
    };
    expect(json(b)).toBe(json(a));
    expect(b.desired).toEqual(a.desired);
  });

  it("every policy, the requirement and the oracle move in whole groups of 16 GPUs", () => {
    const { result, desired } = replay({ nodesPerGroup: 2, gpusPerNode: 8 });
    expect(result.minGpus % 16).toBe(0);
    expect(result.maxGpus % 16).toBe(0);
    expect(result.maxGpus).toBeLessThanOrEqual(480);
    expect(new Set(result.requirement).size).toBeGreaterThan(1); // the requirement moves
    for (const r of result.requirement) expect(r % 16).toBe(0);
    expect(new Set(desired).size).toBeGreaterThan(1); // ours moves
    for (const d of desired) expect(d % 16).toBe(0);
    for (const p of result.results) expect(p.peakGpus % 16).toBe(0);
    expect(result.results.map((p) => p.name)).toEqual([
      "ours",
      "static",
      "schedule",
      "hpa",
      "kpa",
      "slo-keda",
      "oracle",
    ]);
    // The oracle serves the (group) requirement: it meets the SLO in every attainable minute.
    const oracle = result.results.find((p) => p.name === "oracle");
    expect(oracle?.violatedMinutes).toBe(0);
  });

  it("refuses a bound below one group, naming it", () => {
    expect(() => prepareScenario(trace, { ...base, maxGpus: 30, group: { nodesPerGroup: 4, gpusPerNode: 8 } })).toThrow(
      /maxGpus \(30\) must be at least one group \(32 GPUs\)/,
    );
  });
});
