import { describe, expect, it } from "vitest";
import {
  buildSummary,
  markdownReport,
  prepareScenario,
  runScenario,
  summaryJson,
  syntheticRateTrace,
  timelineSvg,
} from "../../src/sim/index.ts";

function summaryFor(seed: number): { json: string; svg: string; md: string } {
  const trace = syntheticRateTrace({ seed: 5, durationS: 3 * 3600, meanRatePerS: 120 });
  const scenario = prepareScenario(trace, { seed, peakGpus: 48, maxGpus: 150 });
  const result = runScenario(scenario);
  const summary = buildSummary(scenario, result);
  return { json: summaryJson(summary), svg: timelineSvg(scenario, result), md: markdownReport(summary) };
}

describe("sim determinism and reports", () => {
  it("the same seed gives a byte-identical summary.json; another seed does not", () => {
    const a = summaryFor(7);
    const b = summaryFor(7);
    expect(a.json).toBe(b.json);
    expect(a.svg).toBe(b.svg);
    expect(summaryFor(8).json).not.toBe(a.json);
  });

  it("reports every policy with ratios against oracle and static", () => {
    const { json, md, svg } = summaryFor(3);
    const s = JSON.parse(json) as {
      policies: { name: string; gpuHoursVsOracle: number; savingVsStatic: number }[];
      targets: unknown[];
    };
    expect(s.policies.map((p) => p.name)).toEqual(["ours", "static", "schedule", "hpa", "kpa", "slo-keda", "oracle"]);
    expect(s.policies.find((p) => p.name === "oracle")?.gpuHoursVsOracle).toBe(1);
    expect(s.policies.find((p) => p.name === "static")?.savingVsStatic).toBe(0);
    expect(s.targets.length).toBe(4);
    expect(md).toContain("| ours |");
    expect(svg.startsWith("<svg")).toBe(true);
    expect(svg).toContain("SLO");
  });
});
