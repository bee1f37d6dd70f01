import { describe, expect, it } from "vitest";
import {
  coldStartsByTier,
  type DemoColdStart,
  type DemoSample,
  P99_AXIS_MAX_SLO_MULTIPLE,
  parseDemoSamplesFile,
  renderDemoTimeline,
  scoreDemo,
  stagingMarks,
} from "../../src/cli/demo-report.ts";

const PHASES = ["steady", "daily ramp", "peak", "burst", "after burst", "heat shift", "quiet"];

/** A demo-shaped run: 20 s of bring-up at ~10 s p99, then p99 around 30 ms against a 50 ms SLO. */
function synthetic(): DemoSample[] {
  const out: DemoSample[] = [];
  for (let k = 0; k < 140; k++) {
    const tS = k * 3;
    out.push({
      tS,
      tokensPerSecond: 30_000 + (k > 50 ? 30_000 : 0),
      desiredShards: k < 3 ? 0 : 48,
      readyShards: k < 12 ? 0 : 48,
      p99Ms: k < 5 ? undefined : k < 20 ? 9_800 + k : 30 + (k % 7),
      sloMs: 50,
      usdPerHour: k < 3 ? 8 : 110,
      balancedness: k < 12 ? undefined : 0.68,
      phase: PHASES[Math.min(PHASES.length - 1, Math.floor(k / 20))]!,
    });
  }
  return out;
}

const yTickLabels = (svg: string, panelTitle: string) => {
  const at = svg.indexOf(panelTitle);
  const next = svg.indexOf('font-weight="bold"', at + panelTitle.length);
  return [...svg.slice(at, next < 0 ? undefined : next).matchAll(/text-anchor="end">([^<]+)</g)].map((m) => m[1]!);
};

describe("renderDemoTimeline", () => {
  const svg = renderDemoTimeline(synthetic(), { title: "demo", windowAtS: 150, heatShiftAtS: 300, maxShards: 52 });

  it("scales the p99 axis to the SLO, not to the bring-up values, and marks what it clips", () => {
    const ticks = yTickLabels(svg, "p99 inter-token latency").map(Number);
    const max = Math.max(...ticks);
    expect(max).toBeGreaterThanOrEqual(50);
    expect(max).toBeLessThanOrEqual(50 * P99_AXIS_MAX_SLO_MULTIPLE * 1.25);
    expect(svg).toContain('class="slo-band"');
    expect(svg.match(/class="clipped"/g)?.length).toBe(15);
    expect(svg).toMatch(/off scale: 15 samples up to 9\.8 s/);
  });

  it("labels every phase, has all five panels, the bound and both markers, and no NaN", () => {
    const phases = [...svg.matchAll(/class="phase"[^>]*>([^<]+)</g)].map((m) => m[1]);
    expect(phases).toEqual(PHASES);
    for (const t of ["Offered load", "Expert shards", "p99 inter-token latency", "balancedness", "Cost ($/h)"])
      expect(svg).toContain(t);
    expect(svg).toContain('class="bound"');
    expect(svg).toContain("maxShards 52");
    expect(svg).toContain("scheduled window opens");
    expect(svg).toContain("expert heat shift");
    expect(svg).not.toMatch(/NaN|Infinity|undefined/);
  });

  it("labels the time axis in scenario seconds when the first sample is late", () => {
    const late = synthetic().map((s) => ({ ...s, tS: s.tS + 8 }));
    const out = renderDemoTimeline(late, { title: "late", windowAtS: 100 });
    const ticks = [...out.matchAll(/class="time-tick" x="([\d.]+)"[^>]*>([\d.k]+) s</g)].map((m) => ({
      x: Number(m[1]),
      t: Number(m[2]),
    }));
    const windowX = Number(/<line x1="([\d.]+)"[^>]*stroke="#555" stroke-dasharray="4 3"/.exec(out)![1]);
    const at100 = ticks.find((k) => k.t === 100)!;
    expect(at100.x).toBeCloseTo(windowX, 0);
    expect(ticks[0]!.t).toBeGreaterThanOrEqual(8);
  });

  it("puts the title and the marker key on different lines", () => {
    const titleY = Number(/y="(\d+)" font-size="16"[^>]*>demo</.exec(svg)![1]);
    const keyY = Number(/y="(\d+)"[^>]*>scheduled window opens/.exec(svg)![1]);
    expect(keyY - titleY).toBeGreaterThanOrEqual(14);
  });

  it("renders without NaN when there are no samples or no latency at all", () => {
    expect(renderDemoTimeline([], { title: "empty" })).not.toMatch(/NaN|Infinity/);
    const noP99 = synthetic().map((s) => ({ ...s, p99Ms: undefined, balancedness: undefined }));
    expect(renderDemoTimeline(noP99, { title: "x" })).not.toMatch(/NaN|Infinity/);
  });
});

describe("parseDemoSamplesFile", () => {
  it("round-trips what the demo writes", () => {
    const file = { title: "t", windowAtS: 1, heatShiftAtS: 2, maxShards: 52, samples: synthetic() };
    const r = parseDemoSamplesFile(JSON.stringify(file));
    expect(r.ok && r.value.samples.length).toBe(140);
  });

  it("names the field that is wrong", () => {
    const samples = synthetic();
    (samples[3] as unknown as Record<string, unknown>).readyShards = "many";
    const r = parseDemoSamplesFile(JSON.stringify({ title: "t", samples }));
    expect(r).toEqual({ ok: false, error: 'samples[3].readyShards: want a finite number, got "many"' });
    expect(parseDemoSamplesFile("{").ok).toBe(false);
    expect(parseDemoSamplesFile(JSON.stringify({ title: "t", samples: [] }))).toEqual({
      ok: false,
      error: "samples: want a non-empty array",
    });
  });
});

describe("demo score", () => {
  const s = (p99Ms: number | undefined, desiredShards: number): DemoSample => ({
    tS: 0,
    tokensPerSecond: 1,
    desiredShards,
    readyShards: desiredShards,
    p99Ms,
    sloMs: 50,
    usdPerHour: 1,
    phase: "steady",
  });
  it("counts misses while the desired count sits at maxShards apart, and in the overall figure", () => {
    const score = scoreDemo([s(40, 30), s(60, 30), s(90, 52), s(45, 52), s(undefined, 30)], 52);
    expect(score).toEqual({
      scored: 4,
      met: 2,
      worstP99Ms: 90,
      atBound: 2,
      metAtBound: 1,
      outsideBound: { scored: 2, met: 1, worstP99Ms: 60 },
    });
    expect(scoreDemo([s(90, 52)], undefined).outsideBound).toEqual({ scored: 1, met: 0, worstP99Ms: 90 });
  });
});

describe("cold starts by tier and staged nodes", () => {
  const cs = (tier: string, seconds: number, createdAtS = 10): DemoColdStart => ({
    pod: `p-${tier}-${seconds}`,
    tier,
    createdAtS,
    seconds,
  });
  const starts = [
    cs("remote", 20),
    cs("remote", 22),
    cs("remote", 19),
    cs("node-disk", 5, 130),
    cs("node-disk", 4, 131),
  ];
  const stagings = [
    { node: "h200-2", atS: 12 },
    { node: "h200-1", atS: 9 },
    { node: "h100-3", atS: 200 },
  ];

  it("summarises each tier: count, median, min, max, in tier order", () => {
    expect(coldStartsByTier(starts)).toEqual([
      { tier: "node-disk", n: 2, medianS: 4.5, minS: 4, maxS: 5 },
      { tier: "remote", n: 3, medianS: 20, minS: 19, maxS: 22 },
    ]);
    expect(coldStartsByTier([])).toEqual([]);
  });

  it("groups stagings close in time into one mark", () => {
    expect(stagingMarks(stagings, 10)).toEqual([
      { atS: 9, nodes: ["h200-1", "h200-2"] },
      { atS: 200, nodes: ["h100-3"] },
    ]);
  });

  it("draws a sixth panel with a dot per cold start, the tiers' medians and the staged nodes", () => {
    const svg = renderDemoTimeline(synthetic(), { title: "demo", maxShards: 52, coldStarts: starts, stagings });
    expect(svg).toContain("Shard cold starts by tier");
    expect(svg.match(/class="cold-start"/g)?.length).toBe(5);
    expect(svg).toContain("remote p50 20.0 s (3)");
    expect(svg).toContain("node-disk p50 4.5 s (2)");
    expect(svg).toContain("h200-1, h200-2 staged");
    expect(svg.match(/class="staged-mark"/g)?.length).toBe(2);
    expect(svg).not.toMatch(/NaN|Infinity|undefined/);
    // Without them (an older samples.json), the five panels as before.
    expect(renderDemoTimeline(synthetic(), { title: "demo" })).not.toContain("Shard cold starts");
  });

  it("keeps the panel title clear of a three-tier legend", () => {
    const three = [...starts, cs("peer", 3, 140)];
    const svg = renderDemoTimeline(synthetic(), { title: "demo", coldStarts: three });
    const title = /<text x="([\d.]+)" y="([\d.]+)" font-size="13" font-weight="bold">(Shard cold starts[^<]*)</.exec(
      svg,
    )!;
    const legendXs = [
      ...svg.matchAll(
        /<line x1="([\d.]+)" x2="[\d.]+" y1="([\d.]+)"[^>]*\/>\s*<text[^>]*>(peer|node-disk|remote) p50/g,
      ),
    ]
      .filter((m) => Math.abs(Number(m[2]) - (Number(title[2]) - 4)) < 1)
      .map((m) => Number(m[1]));
    expect(legendXs).toHaveLength(3);
    // Bold 13 px sans-serif: at most ~8 px a character.
    expect(Math.min(...legendXs)).toBeGreaterThan(Number(title[1]) + title[3]!.length * 8);
  });

  it("round-trips them through samples.json and names a wrong field", () => {
    const file = { title: "t", samples: synthetic(), coldStarts: starts, stagings };
    const r = parseDemoSamplesFile(JSON.stringify(file));
    expect(r.ok && r.value.coldStarts?.length).toBe(5);
    expect(r.ok && r.value.stagings?.length).toBe(3);
    const bad = { ...file, coldStarts: [{ ...starts[0], seconds: "slow" }] };
    expect(parseDemoSamplesFile(JSON.stringify(bad))).toEqual({
      ok: false,
      error: 'coldStarts[0].seconds: want a finite number, got "slow"',
    });
    expect(parseDemoSamplesFile(JSON.stringify({ ...file, stagings: [{ atS: 1 }] }))).toEqual({
      ok: false,
      error: "stagings[0].node: want a string, got undefined",
    });
  });
});
