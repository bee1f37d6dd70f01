// The reconciler in-process against a simulated scheduler and kubelet
// (tests/support/cluster-sim.ts) at the GPU bound, where make-before-break has
// only the spare GPUs to work with. A heat shift must be rebalanced and its
// rollouts must finish, with every (layer, expert) covered and Ready True
// throughout: with the first version of issue 21's work the demo's rollouts
// stalled here (ADR 0012 says why), and main before it deadlocked in the
// scaled-down demo below.
import { describe, expect, it } from "vitest";
import type { V1Pod } from "@kubernetes/client-node";
import { gpuNode, startHarness, type Harness } from "../support/reconciler-harness.ts";
import { otherPod, tickCluster } from "../support/cluster-sim.ts";
import {
  heatConfigMap,
  skewedHeat,
  testMoEDeployment,
  TEST_EXPERTS,
  TEST_MOE_LAYERS,
} from "../support/moe-fixtures.ts";
import { readShardPod } from "../../src/controllers/moedeployment/codecs/shard-pod.ts";
import { countUncovered } from "../../src/domain/rollout/index.ts";
import { createRng, type Rng } from "../../src/domain/rng.ts";

const NS = "default";
const NAME = "bound";
const KEY = `${NS}/${NAME}`;
const READY_SECONDS = 20;

interface Shape {
  layers: number;
  experts: number;
}

interface Run {
  done: boolean;
  /** Seconds with Ready=False. */
  readyFalseSeconds: number;
  /** Most (layer, expert) pairs without a Ready replica at any second (once any pod is Ready). */
  maxUncovered: number;
  /** Longest time one placement version stayed Progressing=True. */
  maxStuckSeconds: number;
}

const status = (h: Harness) => h.moed(NS, NAME).status;
const cond = (h: Harness, type: string) => status(h)?.conditions?.find((c) => c.type === type);
const podsKey = (h: Harness) =>
  h.store
    .list<V1Pod>("Pod")
    .map((p) => `${p.metadata!.name}/${p.metadata!.resourceVersion}`)
    .join(",");

/** Steps the cluster and the reconciler one simulated second at a time. */
async function run(
  h: Harness,
  shape: Shape,
  seconds: number,
  until?: (h: Harness) => boolean,
  queue?: Rng,
): Promise<Run> {
  const r: Run = { done: false, readyFalseSeconds: 0, maxUncovered: 0, maxStuckSeconds: 0 };
  let nextReconcileMs = h.clock.nowMs();
  let lastPods = "";
  let stuck = { version: -1, sinceMs: 0 };
  for (let s = 0; s < seconds; s++) {
    tickCluster(h, { readySeconds: READY_SECONDS, queue });
    // Level-based like the manager: a pod change or the requested requeue time wakes it.
    if (podsKey(h) !== lastPods || h.clock.nowMs() >= nextReconcileMs) {
      const res = await h.reconcile(KEY).catch(() => ({ requeueAfterMs: 1000 }));
      nextReconcileMs = h.clock.nowMs() + (res.requeueAfterMs ?? 10_000);
      lastPods = podsKey(h);
    }
    const ready = h.store
      .list<V1Pod>("Pod")
      .map(readShardPod)
      .filter((p): p is NonNullable<typeof p> => p !== undefined && p.ready && !p.terminating);
    if (ready.length > 0) r.maxUncovered = Math.max(r.maxUncovered, countUncovered(ready, shape.layers, shape.experts));
    if (cond(h, "Ready")?.status === "False") r.readyFalseSeconds++;
    const version = status(h)?.placement?.version ?? 0;
    if (cond(h, "Progressing")?.status !== "True" || version !== stuck.version)
      stuck = { version, sinceMs: h.clock.nowMs() };
    r.maxStuckSeconds = Math.max(r.maxStuckSeconds, (h.clock.nowMs() - stuck.sinceMs) / 1000);
    if (until?.(h)) {
      r.done = true;
      break;
    }
    h.clock.advance(1000);
  }
  return r;
}

const stable = (h: Harness) =>
  cond(h, "Ready")?.status === "True" &&
  cond(h, "Progressing")?.status === "False" &&
  status(h)?.currentShards === status(h)?.desiredShards;

const rebalancedSince = (h: Harness, ms: number, version: number) => {
  const p = status(h)?.placement;
  return p !== undefined && p.version > version && Date.parse(p.lastRebalanceTime ?? "") > ms;
};

describe("a heat shift at the GPU bound", () => {
  const shape = { layers: TEST_MOE_LAYERS, experts: TEST_EXPERTS };
  // [maxShards, GPUs per node]; 2 nodes, the router holds 1 GPU, the load needs more than maxShards.
  // 16 experts in 5 slots per shard: 4 shards hold only 4 redundant replicas per layer.
  for (const [shards, gpusPerNode] of [
    [9, 6],
    [10, 6],
    [4, 3],
    [4, 4],
  ] as const) {
    const spare = 2 * gpusPerNode - 1 - shards;
    it(`is rebalanced and rolled out on ${shards} shards with ${spare} spare GPU(s), every pair covered, Ready True`, async () => {
      const h = startHarness({ config: { reconcileIntervalMs: 5_000, drainSeconds: 5, maxSurge: 8 } });
      for (const n of ["node-a", "node-b"]) h.store.put(gpuNode(n, gpusPerNode, 2));
      h.store.put(otherPod("bound-router-0", "node-a", 1));
      h.store.put(heatConfigMap(`${NAME}-heat`, NS, skewedHeat(30_000, [1, 2])));
      h.store.put(testMoEDeployment(NAME, NS, { minShards: 4, maxShards: shards, rebalanceIntervalSeconds: 30 }));
      expect((await run(h, shape, 300, stable)).done, "first rollout converged").toBe(true);
      const v0 = status(h)!.placement!.version;
      const shiftMs = h.clock.nowMs();
      h.store.put(heatConfigMap(`${NAME}-heat`, NS, skewedHeat(30_000, [10, 13, 15], 10)));
      const shifted = await run(h, shape, 600, (x) => rebalancedSince(x, shiftMs, v0) && stable(x));
      expect(shifted.done, `rebalanced and converged: ${JSON.stringify(status(h)?.conditions)}`).toBe(true);
      expect(shifted.maxUncovered).toBe(0);
      expect(shifted.readyFalseSeconds).toBe(0);
    }, 60_000);
  }
});

// The demo's story at a quarter of its size: 64 experts in 9 slots per shard (8 shards hold 8
// redundant replicas per layer, like DeepSeek-V3's 256 in 32 x 9), 2 nodes x 8 GPUs with the
// router on one and maxShards 13 (2 spare GPUs at maxShards), heat that arrives after the first
// plan, a ramp to maxShards, a heat shift, then a quiet period that scales down to minShards.
const DEMO = { experts: 64, layers: 5, dense: 1, topK: 4 };

function demoHeat(tokens: number, hot: number[], skew = 6): string {
  const w = Array.from({ length: DEMO.experts }, (_, e) => (hot.includes(e) ? skew : 1));
  const total = w.reduce((a, b) => a + b, 0);
  const logical_count = Array.from({ length: DEMO.layers }, (_, l) =>
    w.map((x) => (l < DEMO.dense ? 0 : Math.round((tokens * DEMO.topK * x) / total))),
  );
  return JSON.stringify({ logical_count });
}

describe("the demo's scenario at a quarter of its size", () => {
  const shape = { layers: DEMO.layers - DEMO.dense, experts: DEMO.experts };
  const cases = [2, 8].flatMap((maxSurge) =>
    [undefined, ...(process.env.SIM_SEEDS ?? "1,2,3,4").split(",").map(Number)].map((seed) => ({ maxSurge, seed })),
  );
  it.each(cases)(
    "rebalances the heat shift, no rollout stalls, every pair covered and Ready True once up (maxSurge $maxSurge, scheduler queue shuffled by seed $seed)",
    async ({ maxSurge, seed }) => {
      const queue = seed === undefined ? undefined : createRng(seed);
      const h = startHarness({ config: { reconcileIntervalMs: 5_000, drainSeconds: 5, maxSurge } });
      for (const n of ["node-a", "node-b"]) h.store.put(gpuNode(n, 8, 2));
      h.store.put(otherPod("bound-router-0", "node-a", 1));
      const d = testMoEDeployment(NAME, NS, { minShards: 8, maxShards: 13, rebalanceIntervalSeconds: 30 });
      d.spec.model = {
        ...d.spec.model,
        layers: DEMO.layers,
        denseLayers: DEMO.dense,
        routedExperts: DEMO.experts,
        topK: DEMO.topK,
        expertSlotsPerGpu: 9,
      };
      h.store.put(d);
      const heat = (tokens: number, hot: number[], skew?: number) =>
        h.store.put(heatConfigMap(`${NAME}-heat`, NS, demoHeat(tokens, hot, skew)));
      // No heat yet: the first plan spreads experts evenly; the first heat re-plans.
      await run(h, shape, 10, undefined, queue);
      heat(10_000, [1, 2, 3]);
      expect((await run(h, shape, 300, stable, queue)).done, "first rollout converged").toBe(true);
      heat(20_000, [1, 2, 3]);
      const ramp = await run(h, shape, 60, undefined, queue);
      heat(30_000, [1, 2, 3]);
      const peak = await run(h, shape, 60, undefined, queue);
      const v0 = status(h)!.placement!.version;
      const shiftMs = h.clock.nowMs();
      heat(17_000, [20, 33, 47, 50], 10);
      const shifted = await run(h, shape, 200, undefined, queue);
      expect(rebalancedSince(h, shiftMs, v0), "the heat shift was rebalanced").toBe(true);
      heat(6_000, [20, 33, 47, 50], 10);
      const quiet = await run(h, shape, 600, (x) => stable(x) && status(x)?.currentShards === 8, queue);
      expect(quiet.done, `scaled down to 8 and stable: ${JSON.stringify(status(h)?.conditions)}`).toBe(true);
      for (const r of [ramp, peak, shifted, quiet]) {
        expect(r.maxStuckSeconds).toBeLessThan(120);
        expect(r.maxUncovered).toBe(0);
        expect(r.readyFalseSeconds).toBe(0);
      }
    },
    60_000,
  );
});
