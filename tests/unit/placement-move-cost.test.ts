// Move cost (src/domain/placement/move-cost.ts): bytes per move, path, layer chunks under a stall
// bound. Property tests on random placement pairs, and worked examples at the DeepSeek-V3 shape.
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import {
  countMovedReplicas,
  DEFAULT_MAX_STALL_SECONDS,
  DEFAULT_MOVE_BANDWIDTH,
  estimateMoveCost,
  expertMoves,
  planPlacement,
  shardStalls,
} from "../../src/domain/placement/index.ts";
import type {
  ExpertMove,
  GpuSlotInfo,
  MoveCostPolicy,
  Placement,
  PlacementOutcome,
} from "../../src/domain/placement/index.ts";
import { driftHeat, generateHeat } from "../../src/domain/synthetic/heat.ts";
import { PlacementSchema } from "../../src/api/schema.ts";

/** DeepSeek-V3: 3 x 7168 x 2048 parameters per routed expert, FP8 (1 byte each). */
const DSV3_EXPERT_BYTES = 3 * 7168 * 2048;

const policyOf = (over: Partial<MoveCostPolicy> = {}): MoveCostPolicy => ({
  ...DEFAULT_MOVE_BANDWIDTH,
  bytesPerExpertReplica: DSV3_EXPERT_BYTES,
  maxStallSeconds: DEFAULT_MAX_STALL_SECONDS,
  ...over,
});

/** A random pair of placements of one shape: some GPUs kept (possibly re-ordered), some gone, some new. */
const pairArb = fc
  .record({
    layers: fc.integer({ min: 1, max: 5 }),
    experts: fc.integer({ min: 2, max: 10 }),
    slots: fc.integer({ min: 1, max: 4 }),
    nodes: fc.integer({ min: 1, max: 3 }),
    prevGpus: fc.integer({ min: 1, max: 6 }),
    nextGpus: fc.integer({ min: 1, max: 6 }),
    idOffset: fc.integer({ min: 0, max: 3 }),
    seed: fc.integer({ min: 1, max: 1_000_000 }),
  })
  .chain((s) =>
    fc
      .tuple(
        fc.array(
          fc.array(fc.array(fc.integer({ min: -1, max: s.experts - 1 }), { minLength: s.slots, maxLength: s.slots }), {
            minLength: s.prevGpus,
            maxLength: s.prevGpus,
          }),
          { minLength: s.layers, maxLength: s.layers },
        ),
        fc.array(
          fc.array(fc.array(fc.integer({ min: -1, max: s.experts - 1 }), { minLength: s.slots, maxLength: s.slots }), {
            minLength: s.nextGpus,
            maxLength: s.nextGpus,
          }),
          { minLength: s.layers, maxLength: s.layers },
        ),
        fc.double({ min: 1e-5, max: 0.05, noNaN: true }),
      )
      .map(([prevLayers, nextLayers, stall]) => {
        const gpu = (i: number) => ({
          gpuId: `gpu-${i}`,
          nodeName: `node-${i % s.nodes}`,
          domain: `node-${i % s.nodes}`,
          slotCount: s.slots,
        });
        const previous: Placement = {
          version: 1,
          layerCount: s.layers,
          expertCount: s.experts,
          gpus: Array.from({ length: s.prevGpus }, (_, i) => gpu(i)),
          layers: prevLayers,
        };
        // The next placement's GPU i is GPU i + idOffset of the previous one (ids beyond it are new).
        const next: Placement = {
          version: 1,
          layerCount: s.layers,
          expertCount: s.experts,
          gpus: Array.from({ length: s.nextGpus }, (_, i) => gpu(i + s.idOffset)),
          layers: nextLayers,
        };
        return { previous, next, stall };
      }),
  );

/** max over GPUs of max(receive seconds, send seconds) of `moves`. */
function stallOf(moves: readonly ExpertMove[], gpuCount: number): number {
  const recv = new Array<number>(gpuCount).fill(0);
  const send = new Array<number>(gpuCount).fill(0);
  for (const m of moves) {
    recv[m.toGpu]! += m.seconds;
    if (m.fromGpu !== null) send[m.fromGpu]! += m.seconds;
  }
  return Math.max(0, ...recv.map((r, g) => Math.max(r, send[g]!)));
}

describe("move cost properties", () => {
  it("bytes are the sum over moves; moves are countMovedReplicas; paths follow the source", () => {
    fc.assert(
      fc.property(pairArb, ({ previous, next, stall }) => {
        const policy = policyOf({ maxStallSeconds: stall });
        const moves = expertMoves(previous, next, policy);
        const cost = estimateMoveCost(previous, next, policy);
        expect(moves.length).toBe(countMovedReplicas(previous, next));
        expect(cost.moves).toBe(moves.length);
        expect(cost.bytes).toBe(moves.reduce((s, m) => s + m.bytes, 0));
        expect(cost.bytes).toBe(moves.length * DSV3_EXPERT_BYTES);
        expect(cost.byPath.nvlink.bytes + cost.byPath.network.bytes + cost.byPath.storage.bytes).toBe(cost.bytes);
        const prevIndex = new Map(previous.gpus.map((g, i) => [g.gpuId, i]));
        for (const m of moves) {
          if (m.fromGpu === null) {
            expect(m.path).toBe("storage");
            // No GPU present in both placements held the expert for that layer.
            for (let g = 0; g < next.gpus.length; g++) {
              const pg = prevIndex.get(next.gpus[g]!.gpuId);
              if (pg !== undefined && g !== m.toGpu) expect(previous.layers[m.layer]![pg]).not.toContain(m.expert);
            }
          } else {
            const pg = prevIndex.get(next.gpus[m.fromGpu]!.gpuId);
            expect(pg).toBeDefined();
            expect(previous.layers[m.layer]![pg!]).toContain(m.expert);
            const sameNode = next.gpus[m.fromGpu]!.nodeName === next.gpus[m.toGpu]!.nodeName;
            expect(m.path).toBe(sameNode ? "nvlink" : "network");
          }
        }
      }),
      { numRuns: 300 },
    );
  });

  it("chunks cover every move exactly once, in layer order, within the stall bound unless one layer alone exceeds it", () => {
    fc.assert(
      fc.property(pairArb, ({ previous, next, stall }) => {
        const policy = policyOf({ maxStallSeconds: stall });
        const moves = expertMoves(previous, next, policy);
        const cost = estimateMoveCost(previous, next, policy);
        // Disjoint, increasing layer ranges; each move's layer in exactly one chunk.
        for (let i = 1; i < cost.chunks.length; i++)
          expect(cost.chunks[i]!.firstLayer).toBeGreaterThan(cost.chunks[i - 1]!.lastLayer);
        for (const m of moves) {
          const holding = cost.chunks.filter((c) => c.firstLayer <= m.layer && m.layer <= c.lastLayer);
          expect(holding).toHaveLength(1);
        }
        expect(cost.chunks.reduce((s, c) => s + c.moves, 0)).toBe(moves.length);
        expect(cost.chunks.reduce((s, c) => s + c.bytes, 0)).toBe(cost.bytes);
        let total = 0;
        for (const c of cost.chunks) {
          const inChunk = moves.filter((m) => c.firstLayer <= m.layer && m.layer <= c.lastLayer);
          expect(c.moves).toBe(inChunk.length);
          expect(c.moves).toBeGreaterThan(0);
          expect(c.stallSeconds).toBeCloseTo(stallOf(inChunk, next.gpus.length), 9);
          // The stalled shard named is one with that stall.
          const stalls = shardStalls(inChunk, next);
          expect(stalls.find((x) => x.gpuId === c.stalledGpuId)!.stallSeconds).toBeCloseTo(c.stallSeconds, 9);
          expect(Math.max(...stalls.map((x) => x.stallSeconds))).toBeCloseTo(c.stallSeconds, 9);
          if (c.overBound) {
            // Reported: a single layer whose own stall exceeds the bound.
            expect(c.firstLayer).toBe(c.lastLayer);
            expect(c.stallSeconds).toBeGreaterThan(stall);
            expect(cost.overBoundLayers).toContain(c.firstLayer);
          } else expect(c.stallSeconds).toBeLessThanOrEqual(stall + 1e-12);
          total += c.stallSeconds;
        }
        expect(cost.overBoundLayers).toHaveLength(cost.chunks.filter((c) => c.overBound).length);
        expect(cost.estimatedSeconds).toBeCloseTo(total, 9);
        expect(cost.maxStallSeconds).toBeCloseTo(Math.max(0, ...cost.chunks.map((c) => c.stallSeconds)), 12);
        // Fewest chunks: no two neighbouring chunks fit the bound together.
        for (let i = 1; i < cost.chunks.length; i++) {
          const [a, b] = [cost.chunks[i - 1]!, cost.chunks[i]!];
          const both = moves.filter((m) => a.firstLayer <= m.layer && m.layer <= b.lastLayer);
          expect(stallOf(both, next.gpus.length)).toBeGreaterThan(stall);
        }
      }),
      { numRuns: 300 },
    );
  });
});

describe("move cost defaults", () => {
  it("spec.placement's defaults are the domain's (H800 bandwidths, 2 s stall bound)", () => {
    const spec = PlacementSchema.parse({});
    expect(spec.moveBandwidth.nvlinkMegabytesPerSecond * 1e6).toBe(DEFAULT_MOVE_BANDWIDTH.nvlinkBytesPerSecond);
    expect(spec.moveBandwidth.networkMegabytesPerSecond * 1e6).toBe(DEFAULT_MOVE_BANDWIDTH.networkBytesPerSecond);
    expect(spec.moveBandwidth.storageMegabytesPerSecond * 1e6).toBe(DEFAULT_MOVE_BANDWIDTH.storageBytesPerSecond);
    expect(spec.maxStallMilliseconds / 1000).toBe(DEFAULT_MAX_STALL_SECONDS);
  });
});

describe("move cost examples", () => {
  const gpus = (nodes: number, perNode: number, slots: number): GpuSlotInfo[] =>
    Array.from({ length: nodes * perNode }, (_, g) => ({
      gpuId: `shard-${g}`,
      nodeName: `node-${Math.floor(g / perNode)}`,
      slotCount: slots,
    }));
  const planned = (o: PlacementOutcome) => {
    if (o.kind !== "planned") throw new Error(o.kind);
    return o;
  };

  it("DeepSeek-V3 rebalance at the shipped budget: bytes, paths and chunks from the planner's outcome", () => {
    const g = gpus(4, 8, 9);
    const heat = generateHeat({ layerCount: 58, expertCount: 256, seed: 3 });
    const moveCost = policyOf();
    const first = planned(planPlacement({ heat, gpus: g, policy: { maxMoveFraction: 0.1, minBalancednessGain: 0 } }));
    const o = planned(
      planPlacement({
        heat: driftHeat(heat, { correlation: 0.98, seed: 4 }),
        gpus: g,
        current: first.placement,
        policy: { maxMoveFraction: 0.1, minBalancednessGain: 0, moveCost },
      }),
    );
    const cost = o.moveCost!;
    expect(cost.moves).toBe(o.movedReplicas);
    expect(cost.bytes).toBe(o.movedReplicas * 44_040_192);
    // Every moved expert was held by some other GPU: nothing comes from storage.
    expect(cost.byPath.storage.moves).toBe(0);
    // ~0.28 ms per replica over NVLink, ~0.88 ms over the network: well under 2 s, one chunk.
    expect(cost.chunks).toHaveLength(1);
    expect(cost.estimatedSeconds).toBeGreaterThan(0);
    expect(cost.estimatedSeconds).toBeLessThan(DEFAULT_MAX_STALL_SECONDS);
  });

  it("experts whose only holders are gone load from storage; a tight bound splits by layer and reports over-bound layers", () => {
    const before = gpus(1, 2, 2);
    const previous: Placement = {
      version: 1,
      layerCount: 3,
      expertCount: 4,
      gpus: before.map((x) => ({ ...x, domain: x.nodeName })),
      layers: [
        [
          [0, 1],
          [2, 3],
        ],
        [
          [0, 1],
          [2, 3],
        ],
        [
          [0, 1],
          [2, 3],
        ],
      ],
    };
    // shard-1 is gone; shard-2 is new on another node and takes experts 2 and 3 of every layer.
    const next: Placement = {
      ...previous,
      gpus: [previous.gpus[0]!, { gpuId: "shard-2", nodeName: "node-1", domain: "node-1", slotCount: 2 }],
      layers: previous.layers.map(() => [
        [0, 1],
        [2, 3],
      ]),
    };
    const storageSeconds = DSV3_EXPERT_BYTES / DEFAULT_MOVE_BANDWIDTH.storageBytesPerSecond; // ~8.8 ms
    const loose = estimateMoveCost(previous, next, policyOf());
    expect(loose.byPath.storage.moves).toBe(6);
    expect(loose.chunks).toHaveLength(1);
    expect(loose.estimatedSeconds).toBeCloseTo(6 * storageSeconds, 9);
    // Bound between one and two storage loads: every layer (2 loads on shard-2) is over it.
    const tight = estimateMoveCost(previous, next, policyOf({ maxStallSeconds: 1.5 * storageSeconds }));
    expect(tight.chunks.map((c) => [c.firstLayer, c.lastLayer, c.overBound])).toEqual([
      [0, 0, true],
      [1, 1, true],
      [2, 2, true],
    ]);
    expect(tight.overBoundLayers).toEqual([0, 1, 2]);
    expect(tight.maxStallGpuId).toBe("shard-2");
    // Bound of 4 loads: two layers per chunk.
    const mid = estimateMoveCost(previous, next, policyOf({ maxStallSeconds: 4.5 * storageSeconds }));
    expect(mid.chunks.map((c) => [c.firstLayer, c.lastLayer])).toEqual([
      [0, 1],
      [2, 2],
    ]);
    expect(mid.overBoundLayers).toEqual([]);
  });

  it("no previous placement: every replica loads from storage", () => {
    const g = gpus(1, 2, 2);
    const next: Placement = {
      version: 1,
      layerCount: 1,
      expertCount: 4,
      gpus: g.map((x) => ({ ...x, domain: x.nodeName })),
      layers: [
        [
          [0, 1],
          [2, 3],
        ],
      ],
    };
    const cost = estimateMoveCost(undefined, next, policyOf());
    expect(cost.byPath.storage.moves).toBe(4);
    expect(cost.bytes).toBe(4 * DSV3_EXPERT_BYTES);
  });
});
