// The reconciler follows a heat shift with a since-shift read (ADR 0018, "Heat read since the
// shift"): a Prometheus whose rate windows mix the old and the new heat as a real one does, an
// InPlace deployment, and the fake clock.
import { describe, expect, it } from "vitest";
import type { VectorSample } from "../../src/adapters/prometheus.ts";
import { gpuNode, PROMETHEUS_TEST_URL, startHarness, type Harness } from "../support/reconciler-harness.ts";
import { tickCluster } from "../support/cluster-sim.ts";
import { TEST_DENSE, TEST_EXPERTS, TEST_MOE_LAYERS, TEST_TOPK, testMoEDeployment } from "../support/moe-fixtures.ts";
import { PLACEMENT_APPLIED_CONDITION, readInPlace } from "../../src/controllers/moedeployment/codecs/shard-pod.ts";
import { computePlacementMetrics } from "../../src/domain/placement/index.ts";
import { readPlacementConfigMap } from "../../src/controllers/moedeployment/codecs/placement-configmap.ts";
import type { V1ConfigMap } from "@kubernetes/client-node";

const NS = "default";
const NAME = "tiny";
const KEY = `${NS}/${NAME}`;
const RATE_WINDOW_S = 120;

/** Per-(layer, expert) routed tokens/s at 3,000 tokens/s, skewed 6:1 toward `hot`. */
function heatOf(hot: readonly number[]): number[][] {
  const w = Array.from({ length: TEST_EXPERTS }, (_, e) => (hot.includes(e) ? 6 : 1));
  const total = w.reduce((a, b) => a + b, 0);
  return Array.from({ length: TEST_MOE_LAYERS }, (_, l) =>
    w.map((x, e) => (3_000 * TEST_TOPK * x * (1 + ((l + e) % 3) * 0.1)) / total),
  );
}
const OLD = heatOf([1, 2]);
const NEW = heatOf([9, 10, 11]);

/** A rate over [window] at now: the share of the window after the shift is new heat. */
function prometheus(h: () => Harness, shiftAtMs: () => number | undefined, queries: string[]) {
  return () => ({
    queryVector: (q: string) => {
      queries.push(q);
      const now = h().clock.nowMs();
      const w = Number(/\[(\d+)s\]/.exec(q)![1]) * 1000;
      const at = shiftAtMs();
      const f = at === undefined ? 0 : Math.min(1, Math.max(0, (now - at) / w));
      const samples: VectorSample[] = [];
      for (let l = 0; l < TEST_MOE_LAYERS; l++)
        for (let e = 0; e < TEST_EXPERTS; e++)
          samples.push({
            labels: { layer: String(l + TEST_DENSE), expert: String(e) },
            value: (1 - f) * OLD[l]![e]! + f * NEW[l]![e]!,
            timestampMs: now,
          });
      return Promise.resolve(samples);
    },
    queryRange: () => Promise.resolve([]),
  });
}

function deployment() {
  const d = testMoEDeployment(NAME, NS, { minShards: 4, maxShards: 4, rebalanceIntervalSeconds: 300 });
  return {
    ...d,
    spec: {
      ...d.spec,
      placement: { ...d.spec.placement, maxMovedPercent: 50, moves: { mode: "InPlace", ackTimeoutSeconds: 20 } },
      heatSource: {
        type: "Prometheus",
        refreshIntervalSeconds: 30,
        prometheus: {
          url: PROMETHEUS_TEST_URL,
          query: "sum by (layer, expert) (rate(routed[{{window}}]))",
          rateWindowSeconds: RATE_WINDOW_S,
          timeoutSeconds: 3,
        },
      },
    },
  };
}

/** Every shard acknowledges its target at once. */
function acknowledge(h: Harness): void {
  for (const p of h.pods()) {
    const s = readInPlace(p);
    if (!s || s.appliedGeneration >= s.generation || !p.spec?.nodeName) continue;
    const condition = {
      type: PLACEMENT_APPLIED_CONDITION,
      status: "True",
      reason: "Applied",
      message: `serving generation ${s.generation}`,
    };
    const others = (p.status?.conditions ?? []).filter((c) => c.type !== PLACEMENT_APPLIED_CONDITION);
    h.store.put({ ...p, status: { ...p.status, conditions: [...others, condition] } } as never);
  }
}

async function step(h: Harness): Promise<void> {
  tickCluster(h, { readySeconds: 0 });
  acknowledge(h);
  h.clock.advance(1_000);
  await h.reconcile(KEY);
}

const rebalances = (h: Harness) =>
  h.store.events.filter((e) => e.reason === "Rebalanced").map((e) => ({ message: e.message ?? "" }));

function balancednessUnderNew(h: Harness): number {
  const cm = h.store.cache<V1ConfigMap>("ConfigMap").get(`${NAME}-placement`, NS);
  const published = readPlacementConfigMap(cm);
  return computePlacementMetrics(published!.placement, NEW).balancedness;
}

describe("reconciler, heat read since a heat shift", () => {
  it("re-plans on the heat since the detecting read, one refresh after the early rebalance", async () => {
    const shift: { atMs?: number } = {};
    const queries: string[] = [];
    const h: Harness = startHarness({
      prometheus: prometheus(
        () => h,
        () => shift.atMs,
        queries,
      ),
    });
    h.store.put(gpuNode("node-a", 4, 1));
    h.store.put(gpuNode("node-b", 4, 1));
    h.store.put(deployment());
    for (let i = 0; i < 40; i++) await step(h);
    const settled = rebalances(h).length;

    shift.atMs = h.clock.nowMs();
    let early: number | undefined;
    let followUp: number | undefined;
    for (let i = 0; i < 90 && followUp === undefined; i++) {
      await step(h);
      const messages = rebalances(h).slice(settled);
      if (early === undefined && messages.some((m) => m.message.includes("the heat shifted"))) early = i;
      if (messages.some((m) => m.message.includes("since a heat shift"))) followUp = i;
    }
    expect(early, "an early rebalance on the mixed heat").toBeDefined();
    expect(followUp, `a follow-up on the since-shift heat; rebalances: ${JSON.stringify(rebalances(h))}`).toBeDefined();
    // One refresh (5 s) after the early rebalance, not a window plus a refresh.
    expect(followUp! - early!).toBeLessThanOrEqual(6);
    const windows = queries.map((q) => /\[(\d+)s\]/.exec(q)![1]);
    expect(windows.some((w) => Number(w) < RATE_WINDOW_S)).toBe(true);
    for (let i = 0; i < 5; i++) await step(h);
    expect(balancednessUnderNew(h)).toBeGreaterThanOrEqual(0.95);
  });
});
