// The wide-EP demo's pure parts: the scenario schedule, the group emulator's reading of LWS pods and
// of the published placement, its latency samples, and the timeline's spans and score.
import { describe, expect, it } from "vitest";
import type { V1Pod } from "@kubernetes/client-node";
import { loadAt } from "../../src/emulator/server.ts";
import {
  drainingGroups,
  emulatedGroupPod,
  groupCount,
  groupPlacementOf,
  latencySamples,
  NO_SERVICE_LATENCY_MS,
  routedTokens,
  spreadPlacement,
} from "../../src/emulator/group-server.ts";
import { GroupFleetEmulator } from "../../src/emulator/groups.ts";
import { createRng } from "../../src/domain/rng.ts";
import {
  DEMO_LOAD,
  DEMO_MAX_GROUPS,
  DEMO_NODES,
  DEMO_GROUP,
  phaseAt,
  planWideEPScenario,
  wideEPDemoSpec,
} from "../../src/cli/demo-wideep-scenario.ts";
import {
  parseWideEPSamplesFile,
  phaseRuns,
  renderWideEPTimeline,
  scoreWideEP,
  spansWhere,
  type WideEPSample,
} from "../../src/cli/demo-wideep-report.ts";
import { MoEDeploymentSchema } from "../../src/api/schema.ts";

function pod(
  name: string,
  group: number,
  o: { ready?: boolean; node?: string; worker?: number; draining?: boolean; deleting?: boolean } = {},
): V1Pod {
  return {
    metadata: {
      name,
      labels: {
        "leaderworkerset.sigs.k8s.io/name": "d-ep",
        "leaderworkerset.sigs.k8s.io/group-index": String(group),
        "leaderworkerset.sigs.k8s.io/worker-index": String(o.worker ?? 0),
      },
      ...(o.draining ? { annotations: { "moe.dev/draining-since": "2026-12-06T00:00:00Z" } } : {}),
      ...(o.deleting ? { deletionTimestamp: new Date(0) } : {}),
    },
    spec: { containers: [], ...(o.node ? { nodeName: o.node } : {}) },
    status: o.ready
      ? { phase: "Running", conditions: [{ type: "Ready", status: "True" }] }
      : { phase: o.node ? "Running" : "Pending", conditions: [] },
  };
}

describe("the wide-EP demo scenario", () => {
  const sc = planWideEPScenario();
  it("tells the story in order: one group, three, a fourth the fleet cannot hold, back to one", () => {
    expect(sc.phases.map((p) => [p.name, p.groupsNeeded])).toEqual([
      ["steady", 1],
      ["ramp", 3],
      ["peak", 3],
      ["burst", 4],
      ["falling", 1],
      ["quiet", 1],
    ]);
    // The fleet holds three whole groups and half of a fourth.
    expect(Math.floor(DEMO_NODES / DEMO_GROUP.nodesPerGroup)).toBe(3);
    expect(DEMO_NODES % DEMO_GROUP.nodesPerGroup).toBe(1);
    expect(DEMO_MAX_GROUPS).toBe(4);
    for (let i = 1; i < sc.phases.length; i++) expect(sc.phases[i]!.fromS).toBeGreaterThan(sc.phases[i - 1]!.fromS);
    expect(sc.endS).toBeGreaterThan(sc.phases.at(-1)!.fromS);
  });

  it("the load the emulator replays matches the phases", () => {
    const at = (tS: number) => loadAt({ startMs: 0, points: sc.points, heatShifts: [], heatSeed: 1 }, tS * 1000);
    expect(at(10)).toMatchObject({ tokensPerSecond: DEMO_LOAD.steady, phase: "steady" });
    expect(at(95).tokensPerSecond).toBeGreaterThan(DEMO_LOAD.steady);
    expect(at(95).tokensPerSecond).toBeLessThan(DEMO_LOAD.peak);
    expect(at(150)).toMatchObject({ tokensPerSecond: DEMO_LOAD.peak, phase: "peak" });
    expect(at(220)).toMatchObject({ tokensPerSecond: DEMO_LOAD.burst, phase: "burst" });
    expect(at(300)).toMatchObject({ tokensPerSecond: DEMO_LOAD.quiet, phase: "quiet" });
    expect(phaseAt(sc, 220).name).toBe("burst");
  });

  it("a quick run shortens every phase after the steady one; a bad scale is refused", () => {
    const q = planWideEPScenario(0.5);
    expect(q.phases[1]!.fromS).toBe(sc.phases[1]!.fromS);
    expect(q.endS - q.phases[1]!.fromS).toBe(Math.round((sc.endS - sc.phases[1]!.fromS) * 0.5));
    expect(() => planWideEPScenario(0)).toThrow(/scale/);
    expect(() => planWideEPScenario(1, 0)).toThrow(/ramp/);
  });

  it("the ramp can start at the scheduled window: every phase and the heat drift move with it", () => {
    const later = planWideEPScenario(1, 100);
    expect(later.phases.map((p) => p.fromS)).toEqual(sc.phases.map((p) => (p.fromS === 0 ? 0 : p.fromS + 45)));
    expect(later.heatShifts[0]!.tS).toBe(sc.heatShifts[0]!.tS + 45);
    expect(later.endS).toBe(sc.endS + 45);
  });

  it("the schedule window holds the ramp's groups", () => {
    const d = MoEDeploymentSchema.parse(
      wideEPDemoSpec({
        prometheusUrl: "http://p:9090",
        heatQuery: "h",
        latencyQuery: "l",
        window: { cron: "7 12 * * *", minutes: 2 },
      }),
    );
    expect(d.spec.prewarm.schedules).toEqual([
      expect.objectContaining({ name: "daily-peak", start: "7 12 * * *", durationMinutes: 2, minShards: 3 * 16 }),
    ]);
    expect(
      MoEDeploymentSchema.parse(wideEPDemoSpec({ prometheusUrl: "http://p:9090", heatQuery: "h", latencyQuery: "l" }))
        .spec.prewarm.schedules ?? [],
    ).toEqual([]);
  });

  it("the MoEDeployment is valid: a group's slots cover every expert, bounds are whole groups", () => {
    const d = MoEDeploymentSchema.parse(
      wideEPDemoSpec({ prometheusUrl: "http://p:9090", heatQuery: "h", latencyQuery: "l" }),
    );
    const w = d.spec.serving.wideEP!;
    expect(w.nodesPerGroup * w.gpusPerNode * d.spec.model.expertSlotsPerGpu).toBeGreaterThanOrEqual(
      d.spec.model.routedExperts,
    );
    expect(d.spec.scaling.maxShards).toBe(DEMO_MAX_GROUPS * w.nodesPerGroup * w.gpusPerNode);
  });
});

describe("the group emulator's reading of the cluster", () => {
  it("a group pod: Ready only when Running with Ready=True; bound by nodeName; terminating when deleted", () => {
    expect(emulatedGroupPod(pod("a", 1, { ready: true, node: "n1" }))).toEqual({
      name: "a",
      group: 1,
      ready: true,
      terminating: false,
      nodeName: "n1",
    });
    expect(emulatedGroupPod(pod("b", 2))).toMatchObject({ ready: false, group: 2 });
    expect(emulatedGroupPod(pod("b", 2))?.nodeName).toBeUndefined();
    expect(emulatedGroupPod(pod("c", 0, { deleting: true }))?.terminating).toBe(true);
    expect(emulatedGroupPod({ metadata: { name: "x", labels: {} } })).toBeUndefined();
  });

  it("draining groups come from the leader's annotation only; the group count ignores terminating pods", () => {
    const pods = [
      pod("l1", 1, { draining: true }),
      pod("w1", 1, { worker: 1 }),
      pod("w2", 2, { worker: 1, draining: true }),
      pod("l3", 3, { deleting: true }),
    ];
    expect([...drainingGroups(pods)]).toEqual([1]);
    expect(groupCount(pods.map((p) => emulatedGroupPod(p)!))).toBe(3);
    expect(groupCount([])).toBe(0);
  });

  it("a partly scheduled group never serves: all its load goes to the whole groups", () => {
    const shape = { nodesPerGroup: 2, gpusPerNode: 2 };
    const em = new GroupFleetEmulator({ shape, layerCount: 1, expertCount: 4, topK: 1 });
    const pods = [
      pod("g0l", 0, { ready: true, node: "n0" }),
      pod("g0w", 0, { ready: true, node: "n1", worker: 1 }),
      pod("g1l", 1, { ready: true, node: "n2" }),
      pod("g1w", 1, { worker: 1 }),
    ].map((p) => emulatedGroupPod(p)!);
    const r = em.step(groupCount(pods), pods, spreadPlacement(4, 1, 4), [[1, 1, 1, 1]], 1000);
    expect(r.servingGroups).toBe(1);
    expect(r.groups.map((g) => [g.serving, g.tokensPerSecond])).toEqual([
      [true, 1000],
      [false, 0],
    ]);
  });

  it("the published placement is read per GPU, empty slots dropped; the fallback covers every expert", () => {
    const p = {
      version: 1 as const,
      layerCount: 2,
      expertCount: 3,
      gpus: [
        { gpuId: "g0", nodeName: "n0", domain: "d", slotCount: 2 },
        { gpuId: "g1", nodeName: "n1", domain: "d", slotCount: 2 },
      ],
      layers: [
        [
          [0, 1],
          [2, -1],
        ],
        [
          [2, 0],
          [1, 1],
        ],
      ],
    };
    expect(groupPlacementOf(p)).toEqual([
      [
        [0, 1],
        [2, 0],
      ],
      [[2], [1, 1]],
    ]);
    const spread = spreadPlacement(4, 2, 10);
    for (const layer of [0, 1])
      expect(spread.flatMap((gpu) => gpu[layer]).sort((a, b) => a! - b!)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  });

  it("routed tokens per (layer, expert) sum to tokens x topK per layer", () => {
    const rows = routedTokens(
      [
        [1, 3],
        [0, 0],
      ],
      100,
      2,
    );
    expect([...rows[0]!]).toEqual([50, 150]);
    expect([...rows[1]!]).toEqual([0, 0]);
  });

  it("latency samples: weighted by each serving group's tokens; no serving group under load is the no-service latency", () => {
    const rng = createRng(1);
    const s = latencySamples(
      [
        { serving: true, tokensPerSecond: 750, latencyMs: 20 },
        { serving: true, tokensPerSecond: 250, latencyMs: 80 },
        { serving: false, tokensPerSecond: 0, latencyMs: NaN },
      ],
      1000,
      rng,
      40,
    );
    expect(s).toHaveLength(40);
    expect(s.filter((v) => v > 50)).toHaveLength(10);
    expect(latencySamples([{ serving: false, tokensPerSecond: 0, latencyMs: NaN }], 500, rng, 5)).toEqual(
      Array(5).fill(NO_SERVICE_LATENCY_MS),
    );
    expect(latencySamples([], 0, rng)).toEqual([]);
  });
});

describe("the wide-EP timeline", () => {
  const sample = (tS: number, o: Partial<WideEPSample> = {}): WideEPSample => ({
    tS,
    phase: "steady",
    tokensPerSecond: 10_000,
    servingGroups: 1,
    readyGroups: 1,
    desiredGroups: 1,
    decidedGroups: 1,
    pendingGroups: [],
    drainingGroups: [],
    capacityPending: false,
    p99Ms: 30,
    sloMs: 50,
    ...o,
  });
  const samples = [
    sample(0, { servingGroups: 0, p99Ms: undefined }),
    sample(10),
    sample(20, { phase: "burst", capacityPending: true, decidedGroups: 2, desiredGroups: 2, p99Ms: 80 }),
    sample(30, { phase: "burst", capacityPending: true, decidedGroups: 2, desiredGroups: 2, p99Ms: 90 }),
    sample(40, { phase: "quiet", drainingGroups: [1], desiredGroups: 2 }),
    sample(50, { phase: "quiet" }),
  ];

  it("spans and phase runs", () => {
    expect(spansWhere(samples, (s) => s.capacityPending)).toEqual([{ fromS: 20, toS: 40 }]);
    expect(spansWhere(samples, (s) => s.drainingGroups.length > 0)).toEqual([{ fromS: 40, toS: 50 }]);
    expect(phaseRuns(samples).map((p) => [p.name, p.fromS, p.toS])).toEqual([
      ["steady", 0, 20],
      ["burst", 20, 40],
      ["quiet", 40, 50],
    ]);
  });

  it("the score starts one SLO window after the first group served and sets apart samples short of groups", () => {
    const score = scoreWideEP(samples, 10);
    expect(score).toMatchObject({ scored: 4, met: 2, worstP99Ms: 90, shortOfGroups: 2 });
    expect(score.metWhenAllServing).toBe(2);
  });

  it("renders an SVG with the phases and a samples file round-trips", () => {
    const file = { title: "t <&>", gpusPerGroup: 16, maxGroups: 4, samples };
    const svg = renderWideEPTimeline(file);
    expect(svg).toMatch(/^<svg /);
    expect(svg).toContain("t &lt;&amp;&gt;");
    for (const p of ["steady", "burst", "quiet", "SLO 50 ms"]) expect(svg).toContain(p);
    const parsed = parseWideEPSamplesFile(JSON.stringify(file));
    expect(parsed.ok && parsed.value.samples).toHaveLength(samples.length);
    expect(parseWideEPSamplesFile("{}")).toEqual({ ok: false, error: "samples: expected an array" });
  });

  it("marks each placement version published once, where it changes", () => {
    const versions = [undefined, 2, 2, 3, 3, 3];
    const svg = renderWideEPTimeline({
      title: "t",
      gpusPerGroup: 16,
      maxGroups: 4,
      samples: samples.map((s, i) => (versions[i] === undefined ? s : { ...s, placementVersion: versions[i] })),
    });
    expect(svg.match(/>v\d+<\/text>/g)).toEqual([">v2</text>", ">v3</text>"]);
    expect(svg).toContain("placement version published");
  });
});
