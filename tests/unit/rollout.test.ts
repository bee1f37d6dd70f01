import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { countUncovered, planRollout, type DesiredShard, type ShardPodView } from "../../src/domain/rollout/index.ts";

type Sets = number[][][]; // [shard][layer][experts]

/** A random placement: every expert of every layer on some shard, slots filled with distinct experts. */
function placementArb(shards: number, slots: number, layers: number, experts: number) {
  return fc
    .array(fc.array(fc.nat(), { minLength: experts + shards * slots, maxLength: experts + shards * slots }), {
      minLength: layers,
      maxLength: layers,
    })
    .map((noise) => {
      const sets: Sets = Array.from({ length: shards }, () => Array.from({ length: layers }, () => [] as number[]));
      for (let l = 0; l < layers; l++) {
        const perm = Array.from({ length: experts }, (_, i) => i).sort(
          (a, b) => (noise[l]![a]! % 97) - (noise[l]![b]! % 97) || a - b,
        );
        perm.forEach((e, i) => sets[i % shards]![l]!.push(e));
        for (let s = 0; s < shards; s++) {
          let n = 0;
          while (sets[s]![l]!.length < slots && n < experts * 2) {
            const e = noise[l]![(s * slots + n) % noise[l]!.length]! % experts;
            if (!sets[s]![l]!.includes(e)) sets[s]![l]!.push(e);
            n++;
          }
        }
      }
      return sets;
    });
}

const hashOf = (s: number[][]) => s.map((l) => [...l].sort((a, b) => a - b).join(",")).join("|");
const desiredOf = (sets: Sets): DesiredShard[] =>
  sets.map((experts, shardIndex) => ({ shardIndex, setHash: hashOf(experts), experts }));

interface SimPod extends ShardPodView {
  bornStep: number;
}

/** Runs the rollout loop against a toy cluster where pods become Ready after a random delay. */
function simulate(from: Sets, to: Sets, layers: number, experts: number, readyDelays: number[], maxSurge: number) {
  let nowMs = 0;
  let seq = 0;
  let pods: SimPod[] = desiredOf(from).map((d) => ({
    name: `p${seq++}`,
    shardIndex: d.shardIndex,
    setHash: d.setHash,
    experts: d.experts,
    ready: true,
    terminating: false,
    bornStep: -1,
  }));
  const desired = desiredOf(to);
  let worstUncovered = 0;
  for (let step = 0; step < 400; step++) {
    const plan = planRollout({
      pods,
      desired,
      layerCount: layers,
      expertCount: experts,
      nowMs,
      drainSeconds: 5,
      maxSurge,
    });
    if (plan.complete) return { steps: step, worstUncovered, pods };
    for (const d of plan.create)
      pods.push({
        name: `p${seq++}`,
        shardIndex: d.shardIndex,
        setHash: d.setHash,
        experts: d.experts,
        ready: false,
        terminating: false,
        bornStep: step,
      });
    pods = pods.map((p) => (plan.startDrain.includes(p.name) ? { ...p, drainStartedMs: nowMs } : p));
    pods = pods.filter((p) => !plan.delete.includes(p.name));
    nowMs += 1_000;
    pods = pods.map((p) =>
      !p.ready && step - p.bornStep >= readyDelays[p.bornStep % readyDelays.length]! ? { ...p, ready: true } : p,
    );
    worstUncovered = Math.max(
      worstUncovered,
      countUncovered(
        pods.filter((p) => p.ready),
        layers,
        experts,
      ),
    );
  }
  return { steps: Infinity, worstUncovered, pods };
}

describe("planRollout (make-before-break)", () => {
  it("never leaves an expert without a Ready replica and converges (property)", () => {
    fc.assert(
      fc.property(
        fc
          .record({
            shardsFrom: fc.integer({ min: 2, max: 6 }),
            shardsTo: fc.integer({ min: 2, max: 6 }),
            slots: fc.integer({ min: 2, max: 4 }),
            layers: fc.integer({ min: 1, max: 3 }),
          })
          .chain((c) => {
            const experts = Math.min(c.shardsFrom, c.shardsTo) * c.slots - 1;
            return fc.tuple(
              fc.constant({ ...c, experts }),
              placementArb(c.shardsFrom, c.slots, c.layers, experts),
              placementArb(c.shardsTo, c.slots, c.layers, experts),
              fc.array(fc.integer({ min: 0, max: 6 }), { minLength: 1, maxLength: 8 }),
              fc.integer({ min: 1, max: 3 }),
            );
          }),
        ([c, from, to, delays, surge]) => {
          const r = simulate(from, to, c.layers, c.experts, delays, surge);
          expect(r.worstUncovered).toBe(0);
          expect(r.steps).toBeLessThan(400);
          expect(r.pods.map((p) => `${p.shardIndex}/${p.setHash}`).sort()).toEqual(
            desiredOf(to)
              .map((d) => `${d.shardIndex}/${d.setHash}`)
              .sort(),
          );
        },
      ),
      { numRuns: 200 },
    );
  });

  it("swaps two experts between shards without a gap: both new pods come up before either old one drains", () => {
    const from: Sets = [[[0, 2]], [[1, 3]]];
    const to: Sets = [[[1, 2]], [[0, 3]]];
    const pods: ShardPodView[] = desiredOf(from).map((d, i) => ({
      name: `old${i}`,
      ...d,
      ready: true,
      terminating: false,
    }));
    const desired = desiredOf(to);
    const p1 = planRollout({ pods, desired, layerCount: 1, expertCount: 4, nowMs: 0, drainSeconds: 10, maxSurge: 2 });
    expect(p1.create.map((d) => d.shardIndex)).toEqual([0, 1]);
    expect(p1.startDrain).toEqual([]);
    // Only shard 0's replacement is Ready: old0 holds the only replica of expert 0 -> kept.
    const withNew0 = [
      ...pods,
      { name: "new0", ...desired[0]!, ready: true, terminating: false },
      { name: "new1", ...desired[1]!, ready: false, terminating: false },
    ];
    const p2 = planRollout({
      pods: withNew0,
      desired,
      layerCount: 1,
      expertCount: 4,
      nowMs: 1,
      drainSeconds: 10,
      maxSurge: 2,
    });
    expect(p2.startDrain).toEqual([]);
    expect(p2.blocked.map((b) => b.pod)).toEqual(["old0", "old1"]);
    const allReady = withNew0.map((p) => ({ ...p, ready: true }));
    const p3 = planRollout({
      pods: allReady,
      desired,
      layerCount: 1,
      expertCount: 4,
      nowMs: 2,
      drainSeconds: 10,
      maxSurge: 2,
    });
    expect([...p3.startDrain].sort()).toEqual(["old0", "old1"]);
    expect(p3.requeueAfterMs).toBe(10_000);
  });

  it("deletes drained pods only after the drain period, and asks to be woken then", () => {
    const desired = desiredOf([[[0, 1]]]);
    const pods: ShardPodView[] = [
      { name: "keep", ...desired[0]!, ready: true, terminating: false },
      {
        name: "old",
        shardIndex: 1,
        setHash: "x",
        experts: [[0]],
        ready: true,
        terminating: false,
        drainStartedMs: 1_000,
      },
    ];
    const early = planRollout({
      pods,
      desired,
      layerCount: 1,
      expertCount: 2,
      nowMs: 5_000,
      drainSeconds: 30,
      maxSurge: 1,
    });
    expect(early.delete).toEqual([]);
    expect(early.requeueAfterMs).toBe(26_000);
    const late = planRollout({
      pods,
      desired,
      layerCount: 1,
      expertCount: 2,
      nowMs: 31_000,
      drainSeconds: 30,
      maxSurge: 1,
    });
    expect(late.delete).toEqual(["old"]);
  });

  it("limits replacements in flight to maxSurge but not brand-new shards", () => {
    const from = desiredOf([[[0]], [[1]], [[2]]]);
    const pods: ShardPodView[] = from.map((d, i) => ({ name: `o${i}`, ...d, ready: true, terminating: false }));
    const to = desiredOf([[[0, 1]], [[1, 2]], [[2, 0]], [[0]], [[1]]]);
    const plan = planRollout({
      pods,
      desired: to,
      layerCount: 1,
      expertCount: 3,
      nowMs: 0,
      drainSeconds: 1,
      maxSurge: 1,
    });
    expect(plan.create.map((d) => d.shardIndex)).toEqual([0, 3, 4]);
  });

  it("is complete in steady state and reports nothing to do", () => {
    const desired = desiredOf([[[0, 1]], [[1, 0]]]);
    const pods: ShardPodView[] = desired.map((d, i) => ({ name: `p${i}`, ...d, ready: true, terminating: false }));
    const plan = planRollout({ pods, desired, layerCount: 1, expertCount: 2, nowMs: 0, drainSeconds: 1, maxSurge: 1 });
    expect(plan).toMatchObject({ create: [], startDrain: [], delete: [], complete: true, uncoveredNow: 0 });
  });
});

describe("planRollout when the cluster has no spare GPU", () => {
  it("lets an old pod make room for its unschedulable replacement only while its replicas stay covered", () => {
    const from = desiredOf([[[0, 1]], [[1, 2]], [[2, 0]]]);
    const to = desiredOf([[[0, 2]], [[1, 2]], [[2, 0]]]);
    const pods: ShardPodView[] = [
      ...from.map((d, i) => ({ name: `old${i}`, ...d, ready: true, terminating: false })),
      { name: "new0", ...to[0]!, ready: false, terminating: false, unschedulable: true },
    ];
    const plan = planRollout({
      pods,
      desired: to,
      layerCount: 1,
      expertCount: 3,
      nowMs: 0,
      drainSeconds: 1,
      maxSurge: 1,
    });
    // old0 holds {0,1}: 0 is on old2, 1 on old1 -> covered, so it drains to free its GPU.
    expect(plan.startDrain).toEqual(["old0"]);
    // A replacement that is merely starting (schedulable) still blocks the old pod.
    const starting = pods.map((p) => (p.name === "new0" ? { ...p, unschedulable: false } : p));
    expect(
      planRollout({
        pods: starting,
        desired: to,
        layerCount: 1,
        expertCount: 3,
        nowMs: 0,
        drainSeconds: 1,
        maxSurge: 1,
      }).startDrain,
    ).toEqual([]);
  });

  it("never drains a sole holder to make room", () => {
    const from = desiredOf([[[0, 1]], [[2, 3]]]);
    const to = desiredOf([[[0, 2]], [[1, 3]]]);
    const pods: ShardPodView[] = [
      ...from.map((d, i) => ({ name: `old${i}`, ...d, ready: true, terminating: false })),
      { name: "new0", ...to[0]!, ready: false, terminating: false, unschedulable: true },
      { name: "new1", ...to[1]!, ready: false, terminating: false, unschedulable: true },
    ];
    const plan = planRollout({
      pods,
      desired: to,
      layerCount: 1,
      expertCount: 4,
      nowMs: 0,
      drainSeconds: 1,
      maxSurge: 2,
    });
    expect(plan.startDrain).toEqual([]);
    expect(plan.blocked).toHaveLength(2);
  });
});
