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

/** Pairs ("layer/expert") with no replica among the pods. */
function uncoveredPairs(pods: readonly Pick<ShardPodView, "experts">[], layers: number, experts: number): Set<string> {
  const out = new Set<string>();
  for (let l = 0; l < layers; l++)
    for (let e = 0; e < experts; e++) if (!pods.some((p) => p.experts[l]?.includes(e))) out.add(`${l}/${e}`);
  return out;
}

describe("planRollout with Ready pods crashing at random steps", () => {
  it("never uncovers a pair a different order would have kept covered, and cancels drains that lost their cover (property)", () => {
    fc.assert(
      fc.property(
        fc
          .record({
            shards: fc.integer({ min: 2, max: 5 }),
            slots: fc.integer({ min: 2, max: 4 }),
            layers: fc.integer({ min: 1, max: 2 }),
          })
          .chain((c) => {
            const experts = c.shards * c.slots - 1;
            return fc.tuple(
              fc.constant({ ...c, experts }),
              placementArb(c.shards, c.slots, c.layers, experts),
              placementArb(c.shards, c.slots, c.layers, experts),
              // crashes[step] = which Ready pod (modulo their number) goes not Ready, for how many steps; < 0: none
              fc.array(fc.tuple(fc.integer({ min: -3, max: 20 }), fc.integer({ min: 1, max: 6 })), {
                minLength: 60,
                maxLength: 60,
              }),
            );
          }),
        ([c, from, to, crashes]) => {
          let seq = 0;
          type P = SimPod & { downUntil?: number };
          let pods: P[] = desiredOf(from).map((d) => ({
            name: `p${seq++}`,
            ...d,
            ready: true,
            terminating: false,
            bornStep: -1,
          }));
          const desired = desiredOf(to);
          for (let step = 0; step < 60; step++) {
            const [which, down] = crashes[step]!;
            const ready = pods.filter((p) => p.ready);
            if (which >= 0 && ready.length > 0) {
              const victim = ready[which % ready.length]!.name;
              // A crashed pod was Ready before: it may come back (readiness flap, restart).
              pods = pods.map((p) =>
                p.name === victim ? { ...p, ready: false, readyBefore: true, downUntil: step + down } : p,
              );
            }
            const readyNow = pods.filter((p) => p.ready);
            const before = uncoveredPairs(readyNow, c.layers, c.experts);
            const plan = planRollout({
              pods,
              desired,
              layerCount: c.layers,
              expertCount: c.experts,
              nowMs: step * 1000,
              drainSeconds: 3,
              maxSurge: 2,
            });
            // A crashed pod holding a pair no Ready pod holds is kept: it may come back, and deleting
            // it loses the replica where keeping it would not.
            for (const name of plan.delete) {
              const p = pods.find((x) => x.name === name)!;
              if (p.readyBefore && !p.ready) {
                const sole = [...before].filter((k) => {
                  const [l, e] = k.split("/").map(Number);
                  return p.experts[l!]!.includes(e!);
                });
                expect(sole, `deleted crashed sole holder ${name} at step ${step}`).toEqual([]);
              }
            }
            for (const d of plan.create)
              pods.push({ name: `p${seq++}`, ...d, ready: false, terminating: false, bornStep: step });
            pods = pods.filter((p) => !plan.delete.includes(p.name));
            pods = pods.map((p) =>
              plan.startDrain.includes(p.name)
                ? { ...p, drainStartedMs: step * 1000 }
                : plan.cancelDrain.includes(p.name)
                  ? { ...p, drainStartedMs: undefined }
                  : p,
            );
            // The plan's deletions uncover nothing that was covered before it.
            const after = uncoveredPairs(
              pods.filter((p) => p.ready),
              c.layers,
              c.experts,
            );
            expect([...after].filter((x) => !before.has(x))).toEqual([]);
            // Every Ready draining pod's replicas are held by a Ready pod that stays (else the drain is cancelled).
            const stays = pods.filter((p) => p.ready && p.drainStartedMs === undefined);
            for (const p of pods.filter((x) => x.ready && x.drainStartedMs !== undefined)) {
              const lost = [...uncoveredPairs(stays, c.layers, c.experts)].filter((k) => {
                const [l, e] = k.split("/").map(Number);
                return p.experts[l!]!.includes(e!);
              });
              expect(lost, `draining ${p.name} at step ${step}`).toEqual([]);
            }
            // Time passes: new pods come up after 2 steps, crashed ones recover.
            pods = pods.map((p) =>
              !p.ready && (p.downUntil !== undefined ? step >= p.downUntil : step - p.bornStep >= 2)
                ? { ...p, ready: true, readyBefore: undefined, downUntil: undefined }
                : p,
            );
          }
        },
      ),
      { numRuns: 300 },
    );
  });

  it("keeps an obsolete pod that was Ready and is briefly not Ready while it holds the only replica of an expert", () => {
    const desired = desiredOf([[[0, 1]], [[1, 2]]]);
    const pods: ShardPodView[] = [
      { name: "new0", ...desired[0]!, ready: true, terminating: false },
      { name: "new1", ...desired[1]!, ready: false, terminating: false },
      {
        name: "old",
        shardIndex: 2,
        setHash: "x",
        experts: [[2, 3]],
        ready: false,
        terminating: false,
        readyBefore: true,
      },
    ];
    const input = { desired, layerCount: 1, expertCount: 4, nowMs: 0, drainSeconds: 5, maxSurge: 1 };
    const plan = planRollout({ ...input, pods });
    expect(plan.delete).toEqual([]);
    expect(plan.blocked[0]?.reason).toMatch(/not Ready and holds the only replica of 2 expert/);
    // A pod still loading (never Ready) is replaced at once; so is one whose experts another Ready pod holds.
    expect(
      planRollout({ ...input, pods: [...pods.slice(0, 2), { ...pods[2]!, readyBefore: undefined }] }).delete,
    ).toEqual(["old"]);
    expect(planRollout({ ...input, pods: [...pods.slice(0, 2), { ...pods[2]!, experts: [[1]] }] }).delete).toEqual([
      "old",
    ]);
  });

  it("cancels a drain whose cover crashed, and deletes nothing", () => {
    const desired = desiredOf([[[0, 1]]]);
    const pods: ShardPodView[] = [
      { name: "cover", ...desired[0]!, ready: false, terminating: false },
      { name: "old", shardIndex: 1, setHash: "x", experts: [[0]], ready: true, terminating: false, drainStartedMs: 0 },
    ];
    const plan = planRollout({
      pods,
      desired,
      layerCount: 1,
      expertCount: 2,
      nowMs: 60_000,
      drainSeconds: 5,
      maxSurge: 1,
    });
    expect(plan.cancelDrain).toEqual(["old"]);
    expect(plan.delete).toEqual([]);
    expect(plan.requeueAfterMs).toBe(0);
  });

  it("creates at most maxCreates pods per call, and none while that many are unschedulable", () => {
    const desired = desiredOf(Array.from({ length: 10 }, (_, i) => [[i]]));
    const input = { layerCount: 1, expertCount: 10, nowMs: 0, drainSeconds: 5, maxSurge: 1, maxCreates: 3, desired };
    const first = planRollout({ ...input, pods: [] });
    expect(first.create.map((d) => d.shardIndex)).toEqual([0, 1, 2]);
    const stuck: ShardPodView[] = first.create.map((d) => ({
      name: `s${d.shardIndex}`,
      ...d,
      ready: false,
      terminating: false,
      unschedulable: true,
    }));
    expect(planRollout({ ...input, pods: stuck }).create).toEqual([]);
  });
});

describe("planRollout: a draining pod that turns not Ready has finished its requests", () => {
  const desired = desiredOf([[[0, 1]]]);
  const input = { desired, layerCount: 1, expertCount: 2, nowMs: 2_000, drainSeconds: 30, maxSurge: 1 };
  it("is deleted before the deadline when its replicas are held elsewhere", () => {
    const pods: ShardPodView[] = [
      { name: "keep", ...desired[0]!, ready: true, terminating: false },
      {
        name: "old",
        shardIndex: 1,
        setHash: "x",
        experts: [[0]],
        ready: false,
        terminating: false,
        drainStartedMs: 1_000,
      },
    ];
    expect(planRollout({ ...input, pods }).delete).toEqual(["old"]);
    // Still serving (requests in flight): kept until the deadline.
    const serving = pods.map((p) => ({ ...p, ready: true }));
    expect(planRollout({ ...input, pods: serving }).delete).toEqual([]);
    expect(planRollout({ ...input, pods: serving, nowMs: 31_000 }).delete).toEqual(["old"]);
  });
  it("has its drain cancelled (not deleted) when nothing else holds its replicas", () => {
    const pods: ShardPodView[] = [
      { name: "cover", ...desired[0]!, ready: false, terminating: false },
      {
        name: "old",
        shardIndex: 1,
        setHash: "x",
        experts: [[0]],
        ready: false,
        terminating: false,
        drainStartedMs: 1_000,
      },
    ];
    const plan = planRollout({ ...input, pods });
    expect(plan.delete).toEqual([]);
    expect(plan.cancelDrain).toEqual(["old"]);
  });
});

describe("planRollout at the GPU bound (no spare GPU)", () => {
  it("lets a covered old pod make room for another shard's replacement that waits for a GPU", () => {
    // Shard 0's old pod holds the only replica of expert 0 (its replacement brings it back), so it
    // cannot make room; shard 1's old pod is covered by shard 2 but its replacement waits behind
    // maxSurge for shard 0's. Before, shard 1's old pod waited for its own replacement: a deadlock.
    const desired = desiredOf([[[0, 2]], [[1, 0]], [[1, 2]]]);
    const pods: ShardPodView[] = [
      { name: "o0", shardIndex: 0, setHash: "a", experts: [[0]], ready: true, terminating: false },
      { name: "o1", shardIndex: 1, setHash: "b", experts: [[1]], ready: true, terminating: false },
      { name: "n0", ...desired[0]!, ready: false, terminating: false, unschedulable: true },
      { name: "k2", ...desired[2]!, ready: true, terminating: false },
    ];
    const plan = planRollout({ pods, desired, layerCount: 1, expertCount: 3, nowMs: 0, drainSeconds: 5, maxSurge: 1 });
    expect(plan.create).toEqual([]);
    expect(plan.startDrain).toEqual(["o1"]);
    expect(plan.blocked.map((b) => b.pod)).toEqual(["o0"]);
  });

  it("gives the spare GPUs first to the replacements that let an old pod go", () => {
    // One replacement at a time. Old shard 0 holds expert 0 alone, which only shard 1's new set
    // holds; old shard 1 holds expert 1 alone, which its own new set holds. Shard 1's replacement
    // lets old shard 1 go once Ready; shard 0's would take the spare GPU and let nothing go.
    const desired = desiredOf([[[2, 3]], [[1, 0]], [[2, 3]]]);
    const pods: ShardPodView[] = [
      { name: "o0", shardIndex: 0, setHash: "a", experts: [[0, 2]], ready: true, terminating: false },
      { name: "o1", shardIndex: 1, setHash: "b", experts: [[1, 3]], ready: true, terminating: false },
      { name: "k2", ...desired[2]!, ready: true, terminating: false },
    ];
    const plan = planRollout({ pods, desired, layerCount: 1, expertCount: 4, nowMs: 0, drainSeconds: 5, maxSurge: 1 });
    expect(plan.create.map((d) => d.shardIndex)).toEqual([1]);
  });
});
