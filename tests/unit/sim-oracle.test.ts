import { describe, expect, it } from "vitest";
import {
  planOracle,
  predictableRampMinutes,
  prepareScenario,
  runScenario,
  syntheticRateTrace,
} from "../../src/sim/index.ts";

describe("sim oracle", () => {
  it("plans the cheapest cover of the requirement: bridges short gaps, restarts after long ones", () => {
    // Level 2 is needed in minutes 0-1 and 3-4 (gap 60 s <= cold start 120 s: bridged) and
    // minutes 9 (gap 240 s > 120 s: released and restarted 120 s ahead).
    const req = new Int32Array([2, 2, 1, 2, 2, 1, 1, 1, 1, 2]);
    const plan = planOracle(req, 600, 120);
    expect(plan.provisioned[150]).toBe(2); // bridged
    expect(plan.ready[150]).toBe(1); // standing by, not serving
    expect(plan.provisioned[400]).toBe(1); // released
    expect(plan.provisioned[430]).toBe(2); // warming for minute 9
    expect(plan.ready[430]).toBe(1);
    expect(plan.ready[545]).toBe(2);
    // Level 1 all 600 s; level 2: 0-300 s (with bridge) + 120 s warming + 60 s.
    expect(plan.gpuSeconds).toBe(600 + 300 + 120 + 60);
  });

  it("is a lower bound on GPU-hours among policies that meet the SLO", () => {
    const trace = syntheticRateTrace({ seed: 11, durationS: 6 * 3600, meanRatePerS: 150, burstsPerDay: 6 });
    const scenario = prepareScenario(trace, { seed: 2, peakGpus: 60, maxGpus: 200 });
    const result = runScenario(scenario);
    const oracle = result.results.find((r) => r.name === "oracle");
    expect(oracle).toBeDefined();
    if (oracle === undefined) return;
    expect(oracle.sloAttainment).toBe(1);
    const meeting = result.results.filter((r) => r.name !== "oracle" && r.sloAttainment === 1);
    expect(meeting.map((r) => r.name)).toContain("static");
    for (const r of result.results) {
      if (r.name === "oracle") continue;
      if (r.sloAttainment === 1) expect(r.gpuHours).toBeGreaterThanOrEqual(oracle.gpuHours);
    }
    const stat = result.results.find((r) => r.name === "static");
    expect(stat?.peakGpus).toBe(result.staticGpus);
  });

  it("a longer cold start costs reactive policies more violated minutes", () => {
    const trace = syntheticRateTrace({
      seed: 4,
      durationS: 4 * 3600,
      meanRatePerS: 150,
      burstsPerDay: 12,
      burstFactor: [1.8, 2.2],
      burstMinutes: [10, 15],
    });
    const run = (medianS: number) =>
      runScenario(
        prepareScenario(trace, {
          seed: 1,
          peakGpus: 60,
          maxGpus: 200,
          policies: ["hpa"],
          tuneBaselines: false,
          coldStart: { medianS, sigma: 0.01, minS: 10, maxS: 2000 },
        }),
      ).results[0];
    const fast = run(15);
    const slow = run(600);
    expect(slow?.violatedMinutes ?? 0).toBeGreaterThan(fast?.violatedMinutes ?? 0);
    expect(slow?.coldStartViolationMinutes ?? 0).toBeGreaterThan(0);
  });
});

describe("predictable ramps (violation classifier)", () => {
  const days = 3;
  const n = days * 1440;
  it("flags daily-recurring ramps from the second day on, and not one-minute spikes of the requirement", () => {
    const req = new Int32Array(n).fill(100);
    for (let d = 0; d < days; d++) {
      // A daily ramp at 09:00 to 150 GPUs over 10 minutes, held for an hour.
      for (let m = 0; m < 70; m++) req[d * 1440 + 540 + m] = m < 10 ? 100 + 5 * m : 150;
      // A one-minute spike (a minute whose worst seconds were unlucky) at 15:00 every day.
      req[d * 1440 + 900] = 130;
    }
    const flags = predictableRampMinutes(req);
    let first = 0;
    for (let m = 0; m < 1440; m++) first += flags[m] as number;
    expect(first).toBe(0); // no day before to recur from
    for (let d = 1; d < days; d++) {
      expect(flags[d * 1440 + 552]).toBe(1); // inside the ramp
      expect(flags[d * 1440 + 900]).toBe(0); // the spike is not a ramp
      expect(flags[d * 1440 + 700]).toBe(0); // long after the ramp, at the new level
    }
  });
});
