import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { countUncovered, planRollout, type DesiredShard } from "../../src/domain/rollout/index.ts";
import { planInPlace, servedSet, setSize, type InPlacePod, type InPlaceState } from "../../src/domain/inplace/index.ts";

type Sets = number[][][]; // [shard][layer][experts]
const LAYERS = 2;
const EXPERTS = 6;
const ACK_TIMEOUT_MS = 5_000;

/** A random placement of `shards` shards: every expert of every layer on some shard, plus random extras. */
function placementArb(shards: number) {
  return fc
    .array(fc.array(fc.nat({ max: 1000 }), { minLength: EXPERTS * 2, maxLength: EXPERTS * 2 }), {
      minLength: LAYERS,
      maxLength: LAYERS,
    })
    .map((noise) => {
      const sets: Sets = Array.from({ length: shards }, () => Array.from({ length: LAYERS }, () => [] as number[]));
      for (let l = 0; l < LAYERS; l++) {
        for (let e = 0; e < EXPERTS; e++) sets[noise[l]![e]! % shards]![l]!.push(e);
        for (let e = 0; e < EXPERTS; e++) {
          const s = noise[l]![EXPERTS + e]! % (shards * 2);
          if (s < shards && !sets[s]![l]!.includes(e)) sets[s]![l]!.push(e);
        }
        for (const row of sets) row[l]!.sort((a, b) => a - b);
      }
      return sets;
    });
}

const hashOf = (s: ReadonlyArray<ReadonlyArray<number>>) =>
  s.map((l) => [...l].sort((a, b) => a - b).join(",")).join("|");
const desiredOf = (sets: Sets): DesiredShard[] =>
  sets.map((experts, shardIndex) => ({ shardIndex, setHash: hashOf(experts), experts }));

type Event =
  | { kind: "reconcile" }
  | { kind: "ack"; pick: number }
  | { kind: "refuse"; pick: number }
  | { kind: "tick"; ms: number }
  | { kind: "replan"; placement: number };

const eventArb: fc.Arbitrary<Event> = fc.oneof(
  { weight: 4, arbitrary: fc.constant({ kind: "reconcile" as const }) },
  { weight: 5, arbitrary: fc.nat({ max: 50 }).map((pick) => ({ kind: "ack" as const, pick })) },
  { weight: 1, arbitrary: fc.nat({ max: 50 }).map((pick) => ({ kind: "refuse" as const, pick })) },
  { weight: 2, arbitrary: fc.integer({ min: 100, max: 6_000 }).map((ms) => ({ kind: "tick" as const, ms })) },
  { weight: 1, arbitrary: fc.nat({ max: 2 }).map((placement) => ({ kind: "replan" as const, placement })) },
);

interface Pod extends InPlacePod {
  inPlace: InPlaceState;
}

/**
 * A toy cluster driven by the operator's pure planners (in place, then make-before-break) and by
 * shards that acknowledge, refuse or ignore their targets in a random order. The operator keeps no
 * memory between reconciles (every reconcile is a restart).
 */
class ToyCluster {
  pods: Pod[] = [];
  nowMs = 0;
  seq = 0;
  desired: DesiredShard[];
  worstUncovered = 0;
  created = 0;
  /** Largest target a shard held while loading (its free-slot statements must keep it within capacity). */
  worstHeld = 0;

  /** Replicas a shard can hold at once; its acknowledgements report the room left (freeSlots). */
  readonly capacity?: number;

  constructor(initial: Sets, capacity?: number) {
    this.capacity = capacity;
    this.desired = desiredOf(initial);
    for (const d of this.desired) {
      this.pods.push(this.newPod(d));
      this.ackPod(this.pods[this.pods.length - 1]!);
    }
    this.created = 0;
  }

  newPod(d: DesiredShard): Pod {
    this.created++;
    return {
      name: `p${this.seq++}`,
      shardIndex: d.shardIndex,
      setHash: d.setHash,
      experts: d.experts,
      ready: false,
      terminating: false,
      inPlace: { target: d.experts, generation: 1, servedBefore: [], appliedGeneration: 0, targetSinceMs: this.nowMs },
    };
  }

  ackPod(p: Pod): void {
    const i = this.pods.indexOf(p);
    const free = this.capacity === undefined ? {} : { freeSlots: this.capacity - setSize(p.inPlace.target) };
    this.pods[i] = { ...p, ready: true, inPlace: { ...p.inPlace, appliedGeneration: p.inPlace.generation, ...free } };
  }

  reconcile(): ReturnType<typeof planInPlace> {
    const plan = planInPlace({
      pods: this.pods,
      desired: this.desired,
      layerCount: LAYERS,
      expertCount: EXPERTS,
      nowMs: this.nowMs,
      ackTimeoutMs: ACK_TIMEOUT_MS,
      setHash: hashOf,
    });
    const roll = planRollout({
      pods: plan.views,
      desired: this.desired,
      layerCount: LAYERS,
      expertCount: EXPERTS,
      nowMs: this.nowMs,
      drainSeconds: 1,
      maxSurge: 2,
    });
    for (const x of plan.patches) {
      const i = this.pods.findIndex((p) => p.name === x.pod);
      const p = this.pods[i]!;
      this.pods[i] = {
        ...p,
        experts: x.target,
        inPlace: {
          ...p.inPlace,
          target: x.target,
          generation: x.generation,
          servedBefore: x.served,
          targetSinceMs: this.nowMs,
        },
      };
    }
    for (const d of roll.create) this.pods.push(this.newPod(d));
    this.pods = this.pods
      .filter((p) => !roll.delete.includes(p.name))
      .map((p) =>
        roll.startDrain.includes(p.name)
          ? { ...p, drainStartedMs: this.nowMs }
          : roll.cancelDrain.includes(p.name)
            ? { ...p, drainStartedMs: undefined }
            : p,
      );
    return plan;
  }

  outstanding(): Pod[] {
    return this.pods.filter(
      (p) => p.inPlace.appliedGeneration < p.inPlace.generation && p.inPlace.refusedGeneration !== p.inPlace.generation,
    );
  }

  apply(e: Event, placements: Sets[]): void {
    if (e.kind === "reconcile") this.reconcile();
    else if (e.kind === "tick") this.nowMs += e.ms;
    else if (e.kind === "replan") this.desired = desiredOf(placements[e.placement % placements.length]!);
    else {
      const open = this.outstanding();
      if (open.length === 0) return;
      const p = open[e.pick % open.length]!;
      if (e.kind === "ack") this.ackPod(p);
      else
        this.pods[this.pods.indexOf(p)] = { ...p, inPlace: { ...p.inPlace, refusedGeneration: p.inPlace.generation } };
    }
    this.check();
  }

  /** What routers see: Ready pods that acknowledged a generation, with what they serve. */
  check(): void {
    for (const p of this.pods) this.worstHeld = Math.max(this.worstHeld, setSize(p.inPlace.target));
    const serving = this.pods.filter((p) => p.ready && p.inPlace.appliedGeneration >= 1);
    const missing = countUncovered(
      serving.map((p) => ({ experts: servedSet(p) })),
      LAYERS,
      EXPERTS,
    );
    this.worstUncovered = Math.max(this.worstUncovered, missing);
  }

  /** Shards acknowledge everything and the operator reconciles until nothing changes. */
  settle(): ReturnType<typeof planInPlace> {
    let plan = this.reconcile();
    for (let i = 0; i < 200; i++) {
      for (const p of this.outstanding()) this.ackPod(p);
      this.check();
      this.nowMs += 1_000;
      plan = this.reconcile();
      this.check();
      if (plan.settled && this.pods.length === this.desired.length && this.outstanding().length === 0) break;
    }
    return plan;
  }
}

describe("in-place expert moves (planInPlace with the make-before-break rollout)", () => {
  it("never leaves a (layer, expert) without a serving replica, and converges without duplicates", () => {
    fc.assert(
      fc.property(
        fc
          .integer({ min: 2, max: 4 })
          .chain((n) =>
            fc.tuple(
              placementArb(n),
              fc.array(placementArb(n), { minLength: 3, maxLength: 3 }),
              fc.array(eventArb, { minLength: 10, maxLength: 120 }),
            ),
          ),
        ([initial, placements, events]) => {
          const c = new ToyCluster(initial);
          for (const e of events) c.apply(e, placements);
          const plan = c.settle();
          expect(c.worstUncovered).toBe(0);
          expect(plan.settled).toBe(true);
          // One pod per index, serving exactly its desired set.
          expect(c.pods.map((p) => p.shardIndex).sort()).toEqual(c.desired.map((d) => d.shardIndex).sort());
          for (const d of c.desired) {
            const p = c.pods.find((x) => x.shardIndex === d.shardIndex)!;
            expect(hashOf(servedSet(p))).toBe(d.setHash);
          }
        },
      ),
      { numRuns: 300 },
    );
  });

  it("loads within the free slots each shard reports, never uncovered, and converges (replacing only when stuck)", () => {
    fc.assert(
      fc.property(
        fc
          .integer({ min: 2, max: 4 })
          .chain((n) =>
            fc.tuple(
              placementArb(n),
              fc.array(placementArb(n), { minLength: 3, maxLength: 3 }),
              fc.array(eventArb, { minLength: 10, maxLength: 120 }),
              fc.integer({ min: 0, max: 2 }),
            ),
          ),
        ([initial, placements, events, headroom]) => {
          const largest = Math.max(...[initial, ...placements].flatMap((sets) => sets.map(setSize)));
          const capacity = largest + headroom;
          const c = new ToyCluster(initial, capacity);
          for (const e of events) c.apply(e, placements);
          const plan = c.settle();
          expect(c.worstUncovered).toBe(0);
          expect(c.worstHeld).toBeLessThanOrEqual(capacity);
          expect(plan.settled).toBe(true);
          for (const d of c.desired) {
            const p = c.pods.find((x) => x.shardIndex === d.shardIndex)!;
            expect(hashOf(servedSet(p))).toBe(d.setHash);
          }
        },
      ),
      { numRuns: 300 },
    );
  });

  // Layer 0: a holds 0,1,4 and wants 0,2,4; b holds 2,3,5 and wants 1,3,5 (1 and 2 swap, each held
  // once, so neither shard can release first). Layer 1 does not change. Each shard holds 6 replicas.
  const swapFrom: Sets = [
    [
      [0, 1, 4],
      [0, 1, 2],
    ],
    [
      [2, 3, 5],
      [3, 4, 5],
    ],
  ];
  const swapTo: Sets = [
    [
      [0, 2, 4],
      [0, 1, 2],
    ],
    [
      [1, 3, 5],
      [3, 4, 5],
    ],
  ];

  it("swaps sole-held experts between two full shards with one free slot each, in place", () => {
    const c = new ToyCluster(swapFrom, 7);
    const names = c.pods.map((p) => p.name);
    c.desired = desiredOf(swapTo);
    const first = c.reconcile();
    // Each loads the one replica it has room for.
    expect(first.patches.map((x) => [x.phase, setSize(x.target)])).toEqual([
      ["Load", 7],
      ["Load", 7],
    ]);
    const plan = c.settle();
    expect(plan.settled).toBe(true);
    expect(c.pods.map((p) => p.name)).toEqual(names);
    expect(c.worstHeld).toBeLessThanOrEqual(7);
    expect(c.worstUncovered).toBe(0);
  });

  it("replaces shards with no free slot and nothing they can release (NoRoom)", () => {
    const c = new ToyCluster(swapFrom, 6);
    const names = c.pods.map((p) => p.name);
    c.desired = desiredOf(swapTo);
    const first = c.reconcile();
    expect(first.patches).toEqual([]);
    expect(first.stalled.map((s) => s.reason)).toEqual(["NoRoom", "NoRoom"]);
    const plan = c.settle();
    expect(plan.settled).toBe(true);
    expect(c.pods.map((p) => p.name)).not.toEqual(names);
    expect(c.worstHeld).toBeLessThanOrEqual(6);
    expect(c.worstUncovered).toBe(0);
  });

  it("moves a heat shift in place: no pod created or deleted when every shard acknowledges", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 2, max: 4 }).chain((n) => fc.tuple(placementArb(n), placementArb(n))),
        ([from, to]) => {
          const c = new ToyCluster(from);
          const names = c.pods.map((p) => p.name);
          c.desired = desiredOf(to);
          c.settle();
          expect(c.created).toBe(0);
          expect(c.pods.map((p) => p.name)).toEqual(names);
          expect(c.worstUncovered).toBe(0);
        },
      ),
      { numRuns: 200 },
    );
  });

  it("loads before it releases: the first target of a changing shard is a superset of what it serves", () => {
    const c = new ToyCluster([
      [
        [0, 1],
        [0, 1],
      ],
      [
        [2, 3, 4, 5],
        [2, 3, 4, 5],
      ],
    ]);
    c.desired = desiredOf([
      [
        [0, 2],
        [0, 1],
      ],
      [
        [1, 3, 4, 5],
        [2, 3, 4, 5],
      ],
    ]);
    const plan = c.reconcile();
    expect(plan.patches.map((x) => [x.pod, x.phase, x.target])).toEqual([
      [
        "p0",
        "Load",
        [
          [0, 1, 2],
          [0, 1],
        ],
      ],
      [
        "p1",
        "Load",
        [
          [1, 2, 3, 4, 5],
          [2, 3, 4, 5],
        ],
      ],
    ]);
    // Only p0 acknowledges: p1 may not release 2 (p0 serves it now), p0 may not release 1 (p1 does not serve it yet).
    c.ackPod(c.pods[0]!);
    const next = c.reconcile();
    expect(next.patches.map((x) => [x.pod, x.phase])).toEqual([]);
    c.ackPod(c.pods[1]!);
    const release = c.reconcile();
    expect(release.patches.map((x) => [x.pod, x.phase, x.target])).toEqual([
      [
        "p0",
        "Release",
        [
          [0, 2],
          [0, 1],
        ],
      ],
      [
        "p1",
        "Release",
        [
          [1, 3, 4, 5],
          [2, 3, 4, 5],
        ],
      ],
    ]);
  });

  it("replaces a shard that refuses, and reports it stalled until it drains", () => {
    const c = new ToyCluster([
      [
        [0, 1],
        [0, 1],
      ],
      [
        [2, 3, 4, 5],
        [2, 3, 4, 5],
      ],
    ]);
    c.desired = desiredOf([
      [
        [0, 2],
        [0, 1],
      ],
      [
        [1, 3, 4, 5],
        [2, 3, 4, 5],
      ],
    ]);
    c.reconcile();
    const p1 = c.pods[1]!;
    c.pods[1] = { ...p1, inPlace: { ...p1.inPlace, refusedGeneration: p1.inPlace.generation } };
    const plan = c.reconcile();
    expect(plan.stalled).toEqual([
      { pod: "p1", shardIndex: 1, reason: "Refused", generation: 2, message: "p1 refused target generation 2" },
    ]);
    expect(c.pods.map((p) => p.name)).toEqual(["p0", "p1", "p2"]);
    const end = c.settle();
    expect(end.stalled).toEqual([]);
    expect(c.pods.map((p) => p.name)).toEqual(["p0", "p2"]);
    expect(c.worstUncovered).toBe(0);
  });

  it("replaces a shard that does not acknowledge within the deadline", () => {
    const c = new ToyCluster([
      [
        [0, 1],
        [0, 1],
      ],
      [
        [2, 3, 4, 5],
        [2, 3, 4, 5],
      ],
    ]);
    c.desired = desiredOf([
      [
        [0, 2],
        [0, 1],
      ],
      [
        [1, 3, 4, 5],
        [2, 3, 4, 5],
      ],
    ]);
    c.reconcile();
    c.nowMs += ACK_TIMEOUT_MS - 1;
    expect(c.reconcile().stalled).toEqual([]);
    c.nowMs += 1;
    const plan = c.reconcile();
    expect(plan.stalled.map((s) => [s.pod, s.reason])).toEqual([
      ["p0", "Timeout"],
      ["p1", "Timeout"],
    ]);
    expect(c.pods.map((p) => p.name)).toEqual(["p0", "p1", "p2", "p3"]);
  });
});

describe("in-place release waits for the replicas the placement moves elsewhere", () => {
  const pod = (name: string, shardIndex: number, experts: number[][], ready = true): InPlacePod => ({
    name,
    shardIndex,
    setHash: hashOf(experts),
    experts,
    ready,
    terminating: false,
  });
  const input = (c: InPlacePod) => ({
    pods: [pod("a", 0, [[0, 1]]), pod("b", 1, [[1, 2]]), c],
    // Expert 1 moves from a to c and keeps its replica on b: two replicas before and after.
    desired: desiredOf([[[0]], [[1, 2]], [[1]]]),
    layerCount: 1,
    expertCount: 3,
    nowMs: 0,
    ackTimeoutMs: ACK_TIMEOUT_MS,
    setHash: hashOf,
  });
  it("keeps a serving expert 1 while c is still starting (b alone would carry both replicas' load)", () => {
    const plan = planInPlace(input(pod("c", 2, [[1]], false)));
    expect(plan.patches.filter((p) => p.pod === "a")).toEqual([]);
  });
  it("releases it once c serves it", () => {
    const plan = planInPlace(input(pod("c", 2, [[1]])));
    expect(plan.patches.find((p) => p.pod === "a")).toMatchObject({ phase: "Release", target: [[0]] });
  });
});
