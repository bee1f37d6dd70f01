// The GitOps proposals added for issue 17's remaining parts, as pure functions: learned
// pre-warm schedules, the placement file, restart-safe tracking and the combined proposal.
import { describe, expect, it } from "vitest";
import {
  adoptProposed,
  combineProposal,
  comparePlacement,
  editManifest,
  movedSlotPercent,
  observeBounds,
  parsePlacementFile,
  persistTrack,
  placementWorthProposing,
  proposeBounds,
  proposeSchedules,
  pullRequestBody,
  pullRequestTitle,
  recurringDailyPeaks,
  renderPlacementFile,
  restoreTrack,
  stableSchedules,
  type BoundObservation,
  type BoundTrack,
  type Bounds,
  type PlacementCandidate,
  type ScheduleContext,
} from "../../src/domain/gitops/index.ts";
import {
  createForecastState,
  DEFAULT_FORECAST_OPTIONS,
  observeLoadSeries,
  type ForecastState,
} from "../../src/domain/prewarm/forecast.ts";
import { planPlacement } from "../../src/domain/placement/plan.ts";
import { placementToSglang } from "../../src/domain/placement/sglang.ts";
import type { GpuSlotInfo } from "../../src/domain/placement/types.ts";
import type { Decision } from "../../src/domain/decide.ts";
import type { MoEDeployment } from "../../src/api/schema.ts";
import { proposalInputs } from "../../src/gitops/observe.ts";

const DAY = 86_400_000;
const MIN = 60_000;
/** Midnight UTC of some day. */
const T0 = Date.UTC(2026, 10, 2);

/** `days` days of 10-minute buckets: `base` tok/s, `peak` from 09:00 to 10:00 UTC on the days in `peakDays`. */
function history(
  days: number,
  base: number,
  peak: number,
  peakDays: (d: number) => boolean = () => true,
): ForecastState {
  const points: { atMs: number; tokensPerSecond: number }[] = [];
  for (let d = 0; d < days; d++)
    for (let m = 0; m < 1440; m += 10) {
      const inPeak = m >= 540 && m < 600 && peakDays(d);
      points.push({ atMs: T0 + d * DAY + m * MIN, tokensPerSecond: inPeak ? peak : base });
    }
  // One more sample so the last bucket is learned.
  points.push({ atMs: T0 + days * DAY, tokensPerSecond: base });
  return observeLoadSeries(createForecastState(), points);
}

const ctx: ScheduleContext = {
  existing: [],
  tokensPerShard: 1_000,
  minShards: 4,
  maxShards: 20,
  minChangePercent: 10,
  leadSeconds: 300,
};
const learning = { minDays: 3, minRisePercent: 50 };

describe("learned pre-warm schedules", () => {
  it("proposes at most 50 entries (status.gitops.pendingSchedules keeps 50 across a restart)", () => {
    const peaks = Array.from({ length: 70 }, (_, i) => ({
      startMinute: i * 20,
      durationMinutes: 10,
      peakTokensPerSecond: 12_000,
      baseTokensPerSecond: 4_000,
      daysSeen: 3,
    }));
    const out = proposeSchedules(peaks, ctx);
    expect(out).toHaveLength(50);
    expect(out[49]!.entry.name).toBe("learned-1620");
  });

  it("finds a daily peak that recurred on each of the last minDays days, with its level", () => {
    const s = history(3, 4_000, 12_000);
    const now = T0 + 3 * DAY + 60 * MIN;
    expect(recurringDailyPeaks(s, now, learning, DEFAULT_FORECAST_OPTIONS)).toEqual([
      { startMinute: 540, durationMinutes: 60, peakTokensPerSecond: 12_000, baseTokensPerSecond: 4_000, daysSeen: 3 },
    ]);
    const [c] = proposeSchedules(recurringDailyPeaks(s, now, learning, DEFAULT_FORECAST_OPTIONS), ctx);
    expect(c).toMatchObject({
      replaces: undefined,
      entry: { name: "learned-0900", start: "0 9 * * *", durationMinutes: 60, minShards: 12, timeZone: "UTC" },
      evidence: { daysSeen: 3, peakTokensPerSecond: 12_000, baseTokensPerSecond: 4_000, leadSeconds: 300 },
    });
    expect(c!.why).toContain("on each of the last 3 days");
  });

  it("proposes nothing with fewer days, a peak missing on one day, or a rise below minRisePercent", () => {
    const now = T0 + 3 * DAY + 60 * MIN;
    expect(
      recurringDailyPeaks(history(2, 4_000, 12_000), T0 + 2 * DAY + MIN, learning, DEFAULT_FORECAST_OPTIONS),
    ).toEqual([]);
    const oneOff = history(3, 4_000, 12_000, (d) => d !== 1);
    expect(recurringDailyPeaks(oneOff, now, learning, DEFAULT_FORECAST_OPTIONS)).toEqual([]);
    expect(recurringDailyPeaks(history(3, 4_000, 5_000), now, learning, DEFAULT_FORECAST_OPTIONS)).toEqual([]);
  });

  it("changes a learned entry only by the minimum change, keeps hand-written entries, caps at maxShards", () => {
    const peaks = recurringDailyPeaks(
      history(3, 4_000, 12_000),
      T0 + 3 * DAY + MIN,
      learning,
      DEFAULT_FORECAST_OPTIONS,
    );
    const existing = { name: "learned-0900", start: "0 9 * * *", durationMinutes: 60, minShards: 12, timeZone: "UTC" };
    expect(proposeSchedules(peaks, { ...ctx, existing: [existing] })).toEqual([]);
    expect(proposeSchedules(peaks, { ...ctx, existing: [{ ...existing, minShards: 11 }] })).toEqual([]); // < 10%
    const changed = proposeSchedules(peaks, { ...ctx, existing: [{ ...existing, minShards: 8 }] });
    expect(changed).toEqual([expect.objectContaining({ replaces: "learned-0900", entry: existing })]);
    // A start 20 minutes off is within the minimum shift: no change; 40 minutes off: moved, same entry.
    expect(proposeSchedules(peaks, { ...ctx, existing: [{ ...existing, start: "20 9 * * *" }] })).toEqual([]);
    const moved = proposeSchedules(peaks, {
      ...ctx,
      existing: [{ ...existing, name: "learned-0820", start: "20 8 * * *" }],
    });
    expect(moved).toEqual([
      expect.objectContaining({ replaces: "learned-0820", entry: { ...existing, name: "learned-0820" } }),
    ]);
    const manual = { name: "morning", start: "30 8 * * *", durationMinutes: 120, minShards: 14, timeZone: "UTC" };
    expect(proposeSchedules(peaks, { ...ctx, existing: [manual] })).toEqual([]);
    expect(proposeSchedules(peaks, { ...ctx, maxShards: 9 })[0]!.entry.minShards).toBe(9);
    expect(proposeSchedules(peaks, { ...ctx, minShards: 12 })).toEqual([]);
    expect(proposeSchedules(peaks, { ...ctx, tokensPerShard: 0 })).toEqual([]);
  });

  it("keeps the pending entries (same array) while candidates move less than the minimum change", () => {
    const peaks = recurringDailyPeaks(
      history(3, 4_000, 12_000),
      T0 + 3 * DAY + MIN,
      learning,
      DEFAULT_FORECAST_OPTIONS,
    );
    const first = stableSchedules(undefined, proposeSchedules(peaks, ctx), 10)!;
    expect(stableSchedules(first, proposeSchedules(peaks, { ...ctx, tokensPerShard: 1_050 }), 10)).toBe(first);
    const next = stableSchedules(first, proposeSchedules(peaks, { ...ctx, tokensPerShard: 600 }), 10)!;
    expect(next).not.toBe(first);
    expect(next[0]!.entry.minShards).toBe(20);
    expect(stableSchedules(first, [], 10)).toBeUndefined();
  });

  it("adds entries to the manifest as text: a new block list, a new key, or an entry changed in place", () => {
    const peaks = recurringDailyPeaks(
      history(3, 4_000, 12_000),
      T0 + 3 * DAY + MIN,
      learning,
      DEFAULT_FORECAST_OPTIONS,
    );
    const [c] = proposeSchedules(peaks, ctx);
    const target = { name: "tiny", namespace: "default" };
    const bare = `kind: MoEDeployment
metadata:
  name: tiny
spec:
  scaling:
    minShards: 4 # coverage
    maxShards: 20
`;
    const added = editManifest(bare, "p.yaml", target, {}, [c!]);
    expect(added).toEqual({
      ok: true,
      changed: true,
      text: `${bare}  prewarm:
    schedules:
      - name: learned-0900
        start: "0 9 * * *"
        durationMinutes: 60
        minShards: 12
        timeZone: UTC
`,
    });
    const withList = `kind: MoEDeployment
metadata:
  name: tiny
spec:
  prewarm:
    schedules:
    # reviewed windows
    - name: evening # hand-written
      start: '0 18 * * *'
      durationMinutes: 60
      minShards: 6
  scaling:
    maxShards: 20
`;
    const appended = editManifest(withList, "p.yaml", target, { maxShards: 24 }, [c!]);
    expect(appended.ok && appended.text).toBe(
      withList
        .replace("maxShards: 20", "maxShards: 24")
        .replace(
          "      minShards: 6\n",
          '      minShards: 6\n    - name: learned-0900\n      start: "0 9 * * *"\n      durationMinutes: 60\n      minShards: 12\n      timeZone: UTC\n',
        ),
    );
    const replaced = editManifest(withList, "p.yaml", target, {}, [
      { ...c!, replaces: "evening", entry: { ...c!.entry, name: "evening", start: "30 17 * * *" } },
    ]);
    expect(replaced.ok && replaced.text).toBe(
      withList.replace("'0 18 * * *'", "'30 17 * * *'").replace("minShards: 6", "minShards: 12"),
    );
    // A new entry whose name the file already holds (merged meanwhile) changes that entry, never a duplicate.
    const merged = editManifest(appended.ok ? appended.text : "", "p.yaml", target, {}, [
      { ...c!, entry: { ...c!.entry, minShards: 14 } },
    ]);
    expect(merged.ok && merged.text).toBe(
      appended.ok && appended.text.replace("minShards: 12\n      timeZone", "minShards: 14\n      timeZone"),
    );
    const flow = editManifest(
      withList.replace(/schedules:[\s\S]*minShards: 6\n/, "schedules: [{name: x}]\n"),
      "p.yaml",
      target,
      {},
      [c!],
    );
    expect(flow).toMatchObject({
      ok: false,
      problem: expect.stringContaining("spec.prewarm.schedules is a flow sequence"),
    });
  });
});

function gpus(n: number): GpuSlotInfo[] {
  return Array.from({ length: n }, (_, i) => ({ gpuId: `shard-${i}`, nodeName: `n${i % 2}`, slotCount: 3 }));
}

function candidate(heat: number[][], n = 4): PlacementCandidate {
  const out = planPlacement({ heat, gpus: gpus(n), policy: { maxMoveFraction: 1, minBalancednessGain: 0 } });
  if (out.kind !== "planned") throw new Error(out.kind);
  const map = placementToSglang(out.placement, { denseLayerCount: 1 });
  if (!map.ok) throw new Error(map.reason);
  return {
    map: map.value.physical_to_logical_map,
    placement: out.placement,
    heat,
    balancedness: out.metrics.balancedness,
    denseLayers: 1,
  };
}

const skewed = [
  [40, 10, 10, 5, 5, 5, 5, 5, 5, 5],
  [5, 5, 40, 10, 10, 5, 5, 5, 5, 5],
];

describe("the placement file", () => {
  it("is deterministic text that parses back, one layer per line", () => {
    const c = candidate(skewed);
    const text = renderPlacementFile(c.map);
    expect(text).toBe(renderPlacementFile(JSON.parse(JSON.stringify(c.map)) as number[][]));
    expect(text.split("\n")).toHaveLength(c.map.length + 5);
    expect(text.startsWith('{\n  "physical_to_logical_map": [\n    [')).toBe(true);
    expect(Object.keys(JSON.parse(text) as object)).toEqual(["physical_to_logical_map"]);
    expect(parsePlacementFile(text)).toEqual(c.map);
    expect(parsePlacementFile(JSON.stringify({ physical_to_logical_map: c.map }))).toEqual(c.map);
    expect(parsePlacementFile("{}")).toBeUndefined();
    expect(parsePlacementFile("not json")).toBeUndefined();
  });

  it("is worth proposing for another shape or a balancedness gain of at least the threshold, never when identical", () => {
    const c = candidate(skewed);
    expect(movedSlotPercent(c.map, c.map)).toBe(0);
    expect(placementWorthProposing(comparePlacement(c, c.map), c, 0.05)).toBe(false);
    expect(comparePlacement(c, undefined)).toEqual({ shapeChanged: true, movedPercent: 100 });
    expect(comparePlacement(c, candidate(skewed, 5).map).shapeChanged).toBe(true);
    // A naive layout (experts in order) is worse under skewed heat than the plan.
    const naive = c.map.map((row) => row.map((_, i) => i % 10));
    const cmp = comparePlacement(c, naive);
    expect(cmp.shapeChanged).toBe(false);
    expect(cmp.referenceBalancedness!).toBeLessThan(c.balancedness);
    expect(cmp.movedPercent).toBeGreaterThan(0);
    expect(placementWorthProposing(cmp, c, 0.001)).toBe(true);
    expect(placementWorthProposing(cmp, c, c.balancedness - cmp.referenceBalancedness! + 0.01)).toBe(false);
  });

  it("compares shapes directly: a map of the same shape with every slot moved is weighed by balancedness", () => {
    const c = candidate(skewed);
    // Every expert renamed to the next one: every slot differs, the GPU and layer counts do not.
    const renamed = c.map.map((row) => row.map((e) => (e + 1) % 10));
    const cmp = comparePlacement(c, renamed);
    expect(cmp.movedPercent).toBe(100);
    expect(cmp.shapeChanged).toBe(false);
    expect(cmp.referenceBalancedness).toBeDefined();
    const gain = c.balancedness - cmp.referenceBalancedness!;
    expect(placementWorthProposing(cmp, c, Math.max(gain, 0) + 0.01)).toBe(false);
  });
});

const bounds: Bounds = { minShards: 4, maxShards: 8, coverageShards: 2 };
const obs = (nowMs: number, over: Partial<BoundObservation> = {}): BoundObservation => ({
  nowMs,
  desiredShards: 8,
  observedP99Ms: 150,
  targetMs: 100,
  maxBoundRequiredShards: 11,
  metricsHeld: false,
  gpus: 9,
  usdPerHour: 18,
  reason: "AtMaxGpus",
  message: "m",
  ...over,
});
const settings = { minChangePercent: 10, learningWindowMs: 0, raiseAfterMs: 60_000, lowerAfterMs: 600_000 };

describe("restart-safe tracking", () => {
  it("persists the windows and restores them: a restart neither restarts nor shortens them", () => {
    let t: BoundTrack | undefined;
    for (let ms = 0; ms <= 30_000; ms += 10_000) t = observeBounds(t, bounds, obs(ms));
    const p = persistTrack(t!);
    expect(p).toMatchObject({ trackingSinceMs: 0, atMaxSinceMs: 0, atMaxRequiredShards: 11, quietSinceMs: undefined });
    let r = restoreTrack(JSON.parse(JSON.stringify(p)) as typeof p, 45_000);
    expect(proposeBounds(bounds, r, settings, 50_000, undefined)).toBeUndefined();
    r = observeBounds(r, bounds, obs(60_000));
    expect(proposeBounds(bounds, r, settings, 60_000, undefined)!.changes[0]).toMatchObject({ to: 11 });
  });

  it("records the low window only while it runs, so approaching maxShards at every decision writes nothing new", () => {
    const quiet = { observedP99Ms: 60, maxBoundRequiredShards: undefined, desiredShards: 4, sloShards: 3 };
    let t: BoundTrack | undefined;
    for (let ms = 0; ms <= 300_000; ms += 10_000) t = observeBounds(t, bounds, obs(ms, quiet));
    expect(persistTrack(t!)).toMatchObject({ quietSinceMs: 0, peakDesiredShards: 4, peakSloShards: 3 });
    const restored = restoreTrack(persistTrack(t!), 500_000);
    let r = restored;
    for (let ms = 500_000; ms <= 600_000; ms += 10_000) r = observeBounds(r, bounds, obs(ms, quiet));
    expect(proposeBounds(bounds, r, settings, 600_000, undefined)!.changes.map((c) => c.field)).toEqual([
      "maxShards",
      "minShards",
    ]);
    const near = { ...quiet, desiredShards: 7 }; // 80% of maxShards: approached, SLO met
    const b1 = observeBounds(t, bounds, obs(310_000, near));
    const busy = [b1, observeBounds(b1, bounds, obs(320_000, near))];
    expect(persistTrack(busy[0]!)).toEqual(persistTrack(busy[1]!));
    expect(restoreTrack(persistTrack(busy[1]!), 400_000).lowWindowStartMs).toBe(400_000);
  });

  it("adopts the branch's value when the candidate is within the minimum change of it", () => {
    let t: BoundTrack | undefined;
    for (let ms = 0; ms <= 60_000; ms += 10_000) t = observeBounds(t, bounds, obs(ms, { maxBoundRequiredShards: 12 }));
    const p = proposeBounds(bounds, t!, settings, 60_000, undefined)!;
    const withBounds = combineProposal(undefined, { bounds: p }, t, 60_000)!;
    const adopted = adoptProposed(withBounds, { maxShards: 11 }, 10);
    expect(adopted.changes[0]).toMatchObject({ from: 8, to: 11 });
    expect(adopted.boundsPart!.changes).toBe(adopted.changes);
    expect(adoptProposed(withBounds, { maxShards: 9 }, 10)).toBe(withBounds); // 12 vs 9: a real change
    expect(adoptProposed(withBounds, { maxShards: 8 }, 10)).toBe(withBounds); // the base value
  });
});

describe("the combined proposal", () => {
  it("keeps its identity while no part changes, and names every part in the title and body", () => {
    const peaks = recurringDailyPeaks(
      history(3, 4_000, 12_000),
      T0 + 3 * DAY + MIN,
      learning,
      DEFAULT_FORECAST_OPTIONS,
    );
    const schedules = stableSchedules(undefined, proposeSchedules(peaks, ctx), 10);
    const c = candidate(skewed);
    const placement = { path: "engine/expert-location.json", candidate: c, comparison: comparePlacement(c, undefined) };
    const p = combineProposal(undefined, { schedules, placement }, undefined, 1_000)!;
    expect(p.changes).toEqual([]);
    expect(combineProposal(p, { schedules, placement }, undefined, 2_000)).toBe(p);
    expect(combineProposal(p, { schedules }, undefined, 2_000)).not.toBe(p);
    expect(combineProposal(p, {}, undefined, 2_000)).toBeUndefined();
    const d = { namespace: "default", name: "tiny" };
    expect(pullRequestTitle(d, p)).toBe(
      "moe-operator: default/tiny: prewarm learned-0900 09:00 UTC 60 min 12 shards, expert placement 100% of slots moved",
    );
    const body = pullRequestBody(d, p, "clusters/tiny.yaml");
    expect(body).toContain(
      "| `learned-0900` (new) | 09:00 | 60 min | 12 | 3 | 12000 tok/s (base 4000) | pods start 300 s before |",
    );
    expect(body).toContain("### Expert placement file `engine/expert-location.json` (`--init-expert-location`)");
    expect(body).toContain(`| 4 | - (another shape, or no file) | ${c.balancedness.toFixed(3)} | 100.0% |`);
  });
});

describe("proposalInputs (what one decision gives the pull request)", () => {
  const c = candidate(skewed);
  const decision = (over: Record<string, unknown> = {}) =>
    ({
      capacity: { signals: { sizingTokensPerSecond: 9_000, stableTokensPerSecond: 8_000, sloGpus: 6 } },
      nextCapacityState: { forecast: createForecastState() },
      heatUsable: true,
      placement: { placement: c.placement, heatBasis: "observed", metrics: { balancedness: c.balancedness } },
      ...over,
    }) as unknown as Decision;
  const spec = (placementFile?: object, denseLayers = 1) =>
    ({
      spec: { model: { denseLayers }, gitops: placementFile ? { placementFile } : {} },
    }) as unknown as MoEDeployment;

  it("gives the load one shard serves within the SLO, and the placement only from observed heat with a placementFile", () => {
    const withFile = spec({ path: "x.json", minBalancednessGain: 0.05 });
    const i = proposalInputs(withFile, decision(), skewed);
    expect(i.tokensPerShard).toBe(1_500);
    expect(i.placement).toMatchObject({ map: c.map, balancedness: c.balancedness, denseLayers: 1 });
    // The dense layers are the model's (spec.model.denseLayers): DeepSeek-V3's 3 give 3 leading rows.
    const deep = proposalInputs(spec({ path: "x.json", minBalancednessGain: 0.05 }, 3), decision(), skewed);
    expect(deep.placement?.denseLayers).toBe(3);
    expect(deep.placement?.map).toHaveLength(skewed.length + 3);
    expect(proposalInputs(spec(), decision(), skewed).placement).toBeUndefined();
    const remembered = decision({ placement: { placement: c.placement, heatBasis: "remembered", metrics: {} } });
    expect(proposalInputs(withFile, remembered, skewed).placement).toBeUndefined();
    expect(proposalInputs(withFile, decision({ heatUsable: false }), skewed).placement).toBeUndefined();
    expect(proposalInputs(withFile, decision({ capacity: undefined }), skewed).tokensPerShard).toBeUndefined();
  });
});
