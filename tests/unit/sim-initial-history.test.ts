// The simulator's configurable initial history (issue 14, item 3): the adaptive policies may see
// the first N minutes of the trace before t = 0; the default (0) is the realistic case.
import { describe, expect, it } from "vitest";
import { prepareScenario, runScenario, syntheticRateTrace } from "../../src/sim/index.ts";
import type { Scenario } from "../../src/sim/index.ts";

function scenario(initialHistoryS: number | undefined, seen: number[]): Scenario {
  const trace = syntheticRateTrace({ seed: 5, durationS: 3600, meanRatePerS: 120 });
  const s = prepareScenario(trace, {
    seed: 3,
    peakGpus: 48,
    maxGpus: 150,
    policies: ["ours", "static"],
    initialHistoryS,
  });
  return {
    ...s,
    config: {
      ...s.config,
      onOursDecision: (o) => {
        seen.push(o.nowMs - s.load.startEpochMs);
      },
    },
  };
}

describe("sim initial history", () => {
  it("feeds ours the first N minutes before t = 0, and changes nothing when N = 0", () => {
    const none: number[] = [];
    const zero: number[] = [];
    const tenMin: number[] = [];
    const a = runScenario(scenario(undefined, none));
    const b = runScenario(scenario(0, zero));
    runScenario(scenario(600, tenMin));
    expect(none.every((t) => t > 0)).toBe(true);
    expect(b.results).toEqual(a.results);
    const before = tenMin.filter((t) => t <= 0);
    // One decision per 30 s interval over the 10 minutes before t = 0.
    expect(before.length).toBe(20);
    expect(Math.min(...before)).toBe(-570_000);
  });
});
