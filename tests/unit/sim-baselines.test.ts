// Fair baselines (issue 14, item 5): hindsight-tuned grids, slo-keda that scales down, --peak-gpus
// that sizes bursty request traces, and the overshoot figure.
import { describe, expect, it } from "vitest";
import { createRng } from "../../src/domain/rng.ts";
import {
  buildSummary,
  OVERSHOOT_FACTOR,
  pickTunedPoint,
  prepareScenario,
  runScenario,
  syntheticRateTrace,
  TUNING_GRIDS,
} from "../../src/sim/index.ts";
import type { PolicyResult, RequestTrace } from "../../src/sim/index.ts";

/** 40 minutes of a bursty request trace: ~2 req/s, and every ~3 minutes 60 requests in one second. */
function burstyRequestTrace(): RequestTrace {
  const rng = createRng(11);
  const times: number[] = [];
  for (let s = 0; s < 40 * 60; s++) {
    const n = rng.poisson(s % 180 === 90 ? 60 : 2);
    for (let k = 0; k < n; k++) times.push(s * 1000 + rng.uniform(0, 1000));
  }
  times.sort((a, b) => a - b);
  const n = times.length;
  return {
    kind: "requests",
    name: "bursty",
    format: "azure",
    startEpochMs: Date.UTC(2024, 0, 1),
    skippedLines: 0,
    skipped: [],
    timesMs: Float64Array.from(times),
    inputTokens: new Float64Array(n).fill(1000),
    outputTokens: Float64Array.from({ length: n }, () => 20 + Math.floor(rng.uniform(0, 400))),
  };
}

describe("sim baselines tuned in hindsight", () => {
  it("--peak-gpus sizes a bursty request trace: static peak within 5 % of the value asked", () => {
    for (const peakGpus of [100, 200]) {
      const scenario = prepareScenario(burstyRequestTrace(), { seed: 1, peakGpus, policies: ["static"] });
      const result = runScenario(scenario);
      expect(Math.abs(result.staticGpus - peakGpus)).toBeLessThanOrEqual(0.05 * peakGpus);
    }
  });

  it("slo-keda scales down on its grid, hpa/kpa/slo-keda rows are the cheapest point reaching 99.5 % (or the best)", () => {
    const trace = syntheticRateTrace({ seed: 5, durationS: 4 * 3600, meanRatePerS: 120 });
    const scenario = prepareScenario(trace, {
      seed: 2,
      peakGpus: 48,
      maxGpus: 150,
      policies: ["ours", "hpa", "slo-keda", "oracle"],
    });
    const result = runScenario(scenario);
    const keda = result.results.find((r) => r.name === "slo-keda") as PolicyResult;
    // The recipe's thresholds sat above the latency floor and held max GPUs all the time.
    expect(keda.meanGpus).toBeLessThan(0.6 * result.maxGpus);
    expect(result.tuned.map((t) => t.name)).toEqual(["hpa", "slo-keda"]);
    for (const t of result.tuned) {
      expect(t.points.map((p) => p.knob)).toEqual(TUNING_GRIDS[t.name]);
      const row = result.results.find((r) => r.name === t.name) as PolicyResult;
      const picked = pickTunedPoint(t.points, 0.995);
      expect(row).toEqual(picked?.point.result);
    }
    const summary = buildSummary(scenario, result);
    expect(summary.tunedBaselines.map((t) => t.name)).toEqual(["hpa", "slo-keda"]);
    const ours = summary.policies.find((p) => p.name === "ours");
    for (const t of summary.tunedBaselines) {
      const at = t.atOursAttainment;
      if (at?.reached === true) expect(at.sloAttainment).toBeGreaterThanOrEqual(ours?.sloAttainment ?? 1);
    }
  });

  it("picks the cheapest grid point reaching the attainment, else the highest attainment", () => {
    const r = (gpuHours: number, sloAttainment: number): PolicyResult => ({ gpuHours, sloAttainment }) as PolicyResult;
    const points = [
      { knob: 0.3, result: r(10, 0.999) },
      { knob: 0.5, result: r(8, 0.996) },
      { knob: 0.7, result: r(6, 0.9) },
    ];
    expect(pickTunedPoint(points, 0.995)).toEqual({ point: points[1], reached: true });
    expect(pickTunedPoint(points, 0.9999)).toEqual({ point: points[0], reached: false });
  });

  it("reports overshoot: GPU-minutes above 1.5 x the per-minute requirement over the scored minutes", () => {
    const trace = syntheticRateTrace({
      seed: 3,
      durationS: 2 * 3600,
      meanRatePerS: 120,
      dailyWindows: [{ startHour: 1, durationMin: 20, factor: 3, rampMin: 2 }],
    });
    const scenario = prepareScenario(trace, { seed: 1, peakGpus: 48, maxGpus: 150, policies: ["static", "oracle"] });
    const result = runScenario(scenario);
    const warm = Math.floor((scenario.config.warmupS ?? 0) / 60);
    const timeline = result.timelines.find((t) => t.name === "static");
    let expected = 0;
    for (let m = warm; m < result.minutes; m++)
      expected += Math.max(0, (timeline?.gpus[m] ?? 0) - OVERSHOOT_FACTOR * (result.requirement[m] as number));
    const stat = buildSummary(scenario, result).policies.find((p) => p.name === "static");
    expect(expected).toBeGreaterThan(0);
    expect(stat?.overshootGpuMinutes).toBeCloseTo(expected, 0);
  });
});
