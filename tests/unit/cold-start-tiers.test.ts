// Issue 19: load-tier choice, cold-start learning per tier, staging accounting in the simulator's
// tiered fleet, and determinism of tiered replays.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  chooseLoadTier,
  createCapacityState,
  createLeadTimeState,
  createTierLeadTimeState,
  decideCapacity,
  DEFAULT_LEAD_TIME_OPTIONS,
  estimateLeadTime,
  estimateTierLeadTime,
  learnLeadTime,
  LOAD_TIERS,
  makeCapacityPolicy,
  MAX_TIER_NODE_TYPES,
  parseTierNodeKey,
  tierNodeKey,
  observeColdStarts,
  observeTierColdStarts,
  shardExpertBytes,
  tierColdStartS,
} from "../../src/domain/capacity/index.ts";
import type { LoadTier, TierColdStart } from "../../src/domain/capacity/index.ts";
import {
  DEFAULT_TIER_BANDWIDTH,
  loadTierPreset,
  MODEL_PRESETS,
  prepareScenario,
  runScenario,
  syntheticRateTrace,
  TieredFleet,
} from "../../src/sim/index.ts";
import type { LoadTierConfig } from "../../src/sim/index.ts";

const OPT = DEFAULT_LEAD_TIME_OPTIONS;

describe("load tier choice", () => {
  it("peer when on and peers hold the experts, else node disk when staged, else remote (all 8 cases)", () => {
    const table: [boolean, boolean, boolean, LoadTier][] = [
      [true, true, true, "peer"],
      [true, true, false, "peer"],
      [true, false, true, "node-disk"],
      [true, false, false, "remote"],
      [false, true, true, "node-disk"],
      [false, true, false, "remote"],
      [false, false, true, "node-disk"],
      [false, false, false, "remote"],
    ];
    for (const [peerLoading, peersHoldExperts, nodeStaged, tier] of table)
      expect(
        chooseLoadTier({ peerLoading, peersHoldExperts, nodeStaged }),
        `${peerLoading} ${peersHoldExperts} ${nodeStaged}`,
      ).toBe(tier);
  });

  it("the cold start is the engine start plus the bytes over the tier's bandwidth; faster tiers never load slower", () => {
    const bytes = shardExpertBytes(2, 58, 3 * 7168 * 2048);
    expect(bytes).toBe(2 * 58 * 44_040_192);
    expect(tierColdStartS(DEFAULT_TIER_BANDWIDTH, "remote", bytes, 60)).toBeCloseTo(
      60 + bytes / DEFAULT_TIER_BANDWIDTH.remoteBytesPerSecond,
      6,
    );
    fc.assert(
      fc.property(
        fc.double({ min: 0, max: 1e12, noNaN: true }),
        fc.double({ min: 0, max: 600, noNaN: true }),
        (b, e) => {
          const peer = tierColdStartS(DEFAULT_TIER_BANDWIDTH, "peer", b, e);
          const disk = tierColdStartS(DEFAULT_TIER_BANDWIDTH, "node-disk", b, e);
          const remote = tierColdStartS(DEFAULT_TIER_BANDWIDTH, "remote", b, e);
          return peer <= disk && disk <= remote && peer >= e;
        },
      ),
    );
  });
});

describe("cold-start learning per tier", () => {
  const samples = (tier: LoadTier, s: number, n: number): TierColdStart[] =>
    Array.from({ length: n }, () => ({ tier, durationMs: s * 1000 }));

  it("the lead is the next pod's tier's learned cold start, not one pooled quantile", () => {
    const all = [...samples("peer", 60, 10), ...samples("remote", 300, 10)];
    const tiers = observeTierColdStarts(createTierLeadTimeState(), all, OPT);
    const pooled = observeColdStarts(
      createLeadTimeState(),
      all.map((x) => x.durationMs),
      OPT,
    );
    expect(estimateTierLeadTime(tiers, pooled, "peer", OPT)).toMatchObject({ tier: "peer", coldStartMs: 60_000 });
    expect(estimateTierLeadTime(tiers, pooled, "remote", OPT)).toMatchObject({ tier: "remote", coldStartMs: 300_000 });
    // No node-disk sample yet: the pooled estimate (the untiered behaviour).
    expect(estimateTierLeadTime(tiers, pooled, "node-disk", OPT)).toMatchObject({
      tier: undefined,
      coldStartMs: estimateLeadTime(pooled, OPT).coldStartMs,
    });
  });

  it("property: with minSamples of its own a tier's estimate is the quantile of its own samples only", () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.record({
            tier: fc.constantFrom(...LOAD_TIERS),
            durationMs: fc.integer({ min: 1_000, max: 900_000 }),
          }),
          { maxLength: 60 },
        ),
        fc.constantFrom(...LOAD_TIERS),
        (all, tier) => {
          const tiers = observeTierColdStarts(createTierLeadTimeState(), all, OPT);
          const pooled = observeColdStarts(
            createLeadTimeState(),
            all.map((x) => x.durationMs),
            OPT,
          );
          const own = all.filter((x) => x.tier === tier).map((x) => x.durationMs);
          const e = estimateTierLeadTime(tiers, pooled, tier, OPT);
          const expected =
            own.length >= OPT.minSamples
              ? estimateLeadTime(observeColdStarts(createLeadTimeState(), own, OPT), OPT)
              : estimateLeadTime(pooled, OPT);
          return e.leadTimeMs === expected.leadTimeMs && e.tier === (own.length >= OPT.minSamples ? tier : undefined);
        },
      ),
    );
  });

  it("decideCapacity's lead time follows the tier the next pod gets (and is untouched without tiers)", () => {
    const policy = makeCapacityPolicy({ slo: { metric: "itl", targetP99Ms: 50 }, minGpus: 4, maxGpus: 64 });
    const tagged = [...samples("peer", 70, 5), ...samples("remote", 400, 5)];
    const input = {
      tokensPerSecond: 10_000,
      metricsAtMs: 0,
      provisionedGpus: 8,
      readyGpus: 8,
      balancedness: 0.9,
      crossNodeShare: 0.1,
      usdPerGpuHour: 2,
      coldStartDurationsMs: tagged.map((x) => x.durationMs),
    };
    const state = createCapacityState(policy);
    const untiered = decideCapacity(input, state, policy, 0);
    const peer = decideCapacity({ ...input, coldStartsByTier: tagged, nextLoadTier: "peer" }, state, policy, 0);
    const remote = decideCapacity({ ...input, coldStartsByTier: tagged, nextLoadTier: "remote" }, state, policy, 0);
    expect(peer.signals.leadTimeMs).toBe(70_000 + OPT.marginMs);
    expect(remote.signals.leadTimeMs).toBe(400_000 + OPT.marginMs);
    expect(untiered.signals.leadTimeMs).toBe(estimateLeadTime(untiered.nextState.leadTime, OPT).leadTimeMs);
    expect(untiered.nextState.tierLeadTime).toBeUndefined();
    // The tiers' samples are carried to the next decision.
    const next = decideCapacity(
      { ...input, coldStartDurationsMs: [], nextLoadTier: "peer" },
      peer.nextState,
      policy,
      30_000,
    );
    expect(next.signals.leadTimeMs).toBe(70_000 + OPT.marginMs);
  });

  it("per node type: a (tier, node type) with minSamples sets the lead; else its tier across types; pairs are bounded", () => {
    const on = (tier: LoadTier, s: number, n: number, nodeType: string): TierColdStart[] =>
      Array.from({ length: n }, () => ({ tier, durationMs: s * 1000, nodeType }));
    const all = [...on("remote", 200, 10, "h100-slow-disk"), ...on("remote", 500, 10, "h200-fast-gpu")];
    const tiers = observeTierColdStarts(createTierLeadTimeState(), all, OPT);
    const pooled = observeColdStarts(
      createLeadTimeState(),
      all.map((x) => x.durationMs),
      OPT,
    );
    const tierOnly = estimateTierLeadTime(tiers, pooled, "remote", OPT);
    expect(tierOnly.nodeType).toBeUndefined();
    expect(estimateTierLeadTime(tiers, pooled, "remote", OPT, "h100-slow-disk")).toMatchObject({
      tier: "remote",
      nodeType: "h100-slow-disk",
      coldStartMs: 200_000,
    });
    expect(estimateTierLeadTime(tiers, pooled, "remote", OPT, "h200-fast-gpu")).toMatchObject({
      nodeType: "h200-fast-gpu",
      coldStartMs: 500_000,
    });
    // A type with no samples of its own: the tier's estimate over every type.
    expect(estimateTierLeadTime(tiers, pooled, "remote", OPT, "a100")).toEqual(tierOnly);
    // Bounded: more types than MAX_TIER_NODE_TYPES keep the first ones; all still count in the tier.
    const many = Array.from({ length: MAX_TIER_NODE_TYPES + 5 }, (_, i) =>
      on("peer", 30 + i, 1, `t${String(i).padStart(2, "0")}`),
    ).flat();
    const bounded = observeTierColdStarts(tiers, many, OPT);
    expect(Object.keys(bounded.byTierNode ?? {})).toHaveLength(MAX_TIER_NODE_TYPES);
    expect(bounded.byTier.peer?.samplesMs).toHaveLength(MAX_TIER_NODE_TYPES + 5);
    for (const key of Object.keys(bounded.byTierNode ?? {}))
      expect(parseTierNodeKey(key)?.tier === "remote" || parseTierNodeKey(key)?.tier === "peer").toBe(true);
    expect(parseTierNodeKey(tierNodeKey("node-disk", "a/b"))).toEqual({ tier: "node-disk", nodeType: "a/b" });
    expect(parseTierNodeKey("floppy/x")).toBeUndefined();
    // The decision's lead follows the next pod's node type through learnLeadTime.
    const learned = (nextNodeType?: string) =>
      learnLeadTime(
        { leadTime: createLeadTimeState() },
        {
          coldStartDurationsMs: all.map((x) => x.durationMs),
          coldStartsByTier: all,
          nextLoadTier: "remote",
          ...(nextNodeType ? { nextNodeType } : {}),
        },
        OPT,
      ).leadTimeMs;
    expect(learned("h100-slow-disk")).toBe(200_000 + OPT.marginMs);
    expect(learned("h200-fast-gpu")).toBe(500_000 + OPT.marginMs);
    expect(learned()).toBe(tierOnly.leadTimeMs);
  });
});

describe("staging accounting in the tiered fleet", () => {
  const shape = MODEL_PRESETS["deepseek-v3"]!;
  const base = loadTierPreset("staging", shape);
  const staging = { ...base.staging!, evictAfterIdleS: 3600, bytesPerSecondPerNode: 1e9 };
  const config: LoadTierConfig = { ...base, staging };
  const checkpoint = 256 * 58 * 44_040_192;
  const downloadS = Math.ceil(checkpoint / 1e9);

  it("stages whole nodes for what the policy looks ahead to, and only they give node-disk starts once downloaded", () => {
    const fleet = new TieredFleet(16, config, shape, () => 1);
    fleet.stage(40, 0); // 40 GPUs -> 5 nodes of 8
    expect(fleet.stats().staging).toMatchObject({ nodesStaged: 5, peakNodes: 5, bytesTransferred: 5 * checkpoint });
    expect(fleet.stagedGpus(downloadS - 1)).toBe(0);
    expect(fleet.tierFor(16, downloadS - 1)).toBe("remote");
    expect(fleet.stagedGpus(downloadS)).toBe(40);
    expect(fleet.tierFor(39, downloadS)).toBe("node-disk");
    expect(fleet.tierFor(40, downloadS)).toBe("remote");
    fleet.setDesired(24, downloadS);
    for (let s = downloadS; s <= downloadS + 600; s++) fleet.advance(s);
    expect(fleet.stats().coldStarts["node-disk"].count).toBe(8);
    expect(fleet.stats().coldStarts.remote.count).toBe(0);
  });

  it("evicts nodes not needed for the idle time (newest first) and charges disk for the node-hours held", () => {
    const fleet = new TieredFleet(8, config, shape, () => 1);
    fleet.stage(32, 0); // 4 nodes
    for (let s = 0; s < 3600; s++) fleet.advance(s); // 4 nodes held for an hour
    fleet.stage(8, 1800); // need 1 node from t = 1800
    fleet.stage(8, 3599); // 3 idle for 1799 s < 3600: kept
    expect(fleet.stats().staging.nodesEvicted).toBe(0);
    fleet.stage(8, 5400); // idle for 3600 s: evicted
    const st = fleet.stats().staging;
    expect(st.nodesEvicted).toBe(3);
    expect(st.diskGbHours).toBeCloseTo((4 * checkpoint) / 1e9, 6);
    expect(st.costUsd).toBeCloseTo(
      ((4 * checkpoint) / 1e9) * staging.usdPerGbTransferred + ((4 * checkpoint) / 1e9 / 730) * staging.usdPerGbMonth,
      6,
    );
    fleet.stage(32, 6000); // staging again downloads again
    expect(fleet.stats().staging.bytesTransferred).toBe(7 * checkpoint);
  });

  it("new GPUs load from peers once the Ready fleet holds every expert, when peer loading is on", () => {
    const peers = new TieredFleet(16, loadTierPreset("staging+peers", shape), shape, () => 1);
    expect(peers.tierFor(16, 0)).toBe("peer");
    const few = new TieredFleet(8, loadTierPreset("staging+peers", shape), shape, () => 1);
    expect(few.tierFor(8, 0)).toBe("remote"); // 8 GPUs x 16 slots < 256 experts
  });
});

describe("tiered replays", () => {
  const run = (kind: "remote-only" | "staging+peers", seed: number) => {
    const trace = syntheticRateTrace({ seed: 5, durationS: 3 * 3600, meanRatePerS: 120 });
    const s = prepareScenario(trace, { seed, peakGpus: 48, maxGpus: 150, policies: ["ours", "oracle"] });
    return runScenario({
      ...s,
      config: { ...s.config, tuneBaselines: false, loadTiers: loadTierPreset(kind, s.config.shape) },
    }).results;
  };
  it("are deterministic per seed, and peers shorten the cold starts of the same policy and seed", () => {
    const a = JSON.stringify(run("staging+peers", 3));
    expect(JSON.stringify(run("staging+peers", 3))).toBe(a);
    const remote = run("remote-only", 3).find((r) => r.name === "ours")!;
    const peers = run("staging+peers", 3).find((r) => r.name === "ours")!;
    expect(remote.loadTiers?.coldStarts.remote.count).toBeGreaterThan(0);
    expect(remote.loadTiers?.coldStarts.peer.count).toBe(0);
    expect(peers.loadTiers?.coldStarts.peer.count).toBeGreaterThan(0);
    expect(peers.loadTiers!.coldStarts.peer.p50S!).toBeLessThan(remote.loadTiers!.coldStarts.remote.p50S!);
  });
});
