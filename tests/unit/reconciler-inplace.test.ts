// The reconciler in mode InPlace against the in-memory harness: shards are moved by target patches
// and acknowledged by the test (as a shard's agent would, through the pod condition); a refusal is
// replaced and reported (condition, event, metric).
import { describe, expect, it } from "vitest";
import type { V1Pod } from "@kubernetes/client-node";
import { gpuNode, startHarness, type Harness } from "../support/reconciler-harness.ts";
import { tickCluster } from "../support/cluster-sim.ts";
import { heatConfigMap, skewedHeat, testMoEDeployment } from "../support/moe-fixtures.ts";
import {
  PLACEMENT_APPLIED_CONDITION,
  readInPlace,
  ShardAnnotation,
} from "../../src/controllers/moedeployment/codecs/shard-pod.ts";
import { servedExperts } from "../../src/emulator/agent.ts";
import type { ExpertPeers } from "../../src/domain/inplace/peers.ts";

const NS = "default";
const NAME = "tiny";
const KEY = `${NS}/${NAME}`;

function inPlaceDeployment() {
  const d = testMoEDeployment(NAME, NS, { minShards: 4, maxShards: 4 });
  return {
    ...d,
    spec: { ...d.spec, placement: { ...d.spec.placement, moves: { mode: "InPlace", ackTimeoutSeconds: 20 } } },
  };
}

/** Every shard acknowledges its target (or refuses it, for the pods named). */
function answer(h: Harness, refuse: readonly string[] = []): void {
  for (const p of h.pods()) {
    const s = readInPlace(p);
    if (!s || s.appliedGeneration >= s.generation || s.refusedGeneration === s.generation || !p.spec?.nodeName)
      continue;
    const refused = refuse.includes(p.metadata!.name!);
    const condition = {
      type: PLACEMENT_APPLIED_CONDITION,
      status: "True",
      reason: refused ? "Refused" : "Applied",
      message: refused
        ? `refused generation ${s.generation}: no room; serving generation ${s.appliedGeneration}`
        : `serving generation ${s.generation}`,
    };
    const others = (p.status?.conditions ?? []).filter((c) => c.type !== PLACEMENT_APPLIED_CONDITION);
    h.store.put({ ...p, status: { ...p.status, conditions: [...others, condition] } } as never);
  }
}

async function step(h: Harness, refuse: readonly string[] = []): Promise<void> {
  tickCluster(h, { readySeconds: 0 });
  answer(h, refuse);
  h.clock.advance(1_000);
  await h.reconcile(KEY);
}

const podNames = (h: Harness) =>
  h
    .pods()
    .map((p: V1Pod) => p.metadata!.name!)
    .sort();
const cond = (h: Harness, type: string) => h.moed(NS, NAME).status?.conditions?.find((c) => c.type === type);
const placement = (h: Harness) =>
  h.moed(NS, NAME).status?.placement as { version: number; appliedShards?: number; movingShards?: number };

async function settle(h: Harness): Promise<void> {
  for (let i = 0; i < 60; i++) {
    await step(h);
    const p = placement(h);
    if (p?.appliedShards === 4 && p.movingShards === 0 && h.pods().length === 4) return;
  }
  throw new Error(`did not settle: ${JSON.stringify(placement(h))}`);
}

describe("reconciler, spec.placement.moves.mode InPlace", () => {
  it("moves a heat shift in place, and replaces a shard that refuses with RebalanceStalled, an event and a metric", async () => {
    const h = startHarness();
    h.store.put(gpuNode("node-a", 4, 1));
    h.store.put(gpuNode("node-b", 4, 1));
    h.store.put(heatConfigMap(`${NAME}-heat`, NS, skewedHeat(3_000, [1, 2])));
    h.store.put(inPlaceDeployment());
    await h.reconcile(KEY);
    await settle(h);
    for (const p of h.pods()) expect(p.spec?.readinessGates).toEqual([{ conditionType: PLACEMENT_APPLIED_CONDITION }]);
    const before = podNames(h);
    const v0 = placement(h).version;

    // The heat moves to other experts: a rebalance, written as targets on the running pods.
    h.store.put(heatConfigMap(`${NAME}-heat`, NS, skewedHeat(3_000, [9, 10, 11])));
    h.clock.advance(31_000);
    await settle(h);
    expect(placement(h).version).toBeGreaterThan(v0);
    expect(podNames(h)).toEqual(before);
    expect(h.pods().every((p) => (readInPlace(p)?.generation ?? 0) > 1)).toBe(true);
    expect(cond(h, "RebalanceStalled")?.status).toBe("False");

    // Again, and this time one shard refuses: it is replaced and reported.
    h.store.put(heatConfigMap(`${NAME}-heat`, NS, skewedHeat(3_000, [3, 4])));
    h.clock.advance(31_000);
    await h.reconcile(KEY);
    const target = h.pods().find((p) => {
      const s = readInPlace(p)!;
      return s.appliedGeneration < s.generation;
    });
    expect(target).toBeDefined();
    const refused = target!.metadata!.name!;
    await step(h, [refused]);
    expect(cond(h, "RebalanceStalled")).toMatchObject({ status: "True", reason: "ShardMoveFailed" });
    expect(cond(h, "RebalanceStalled")!.message).toContain(`${refused} refused target generation`);
    expect(h.store.events.filter((e) => e.reason === "RebalanceStalled").map((e) => e.type)).toEqual(["Warning"]);
    const metric = await h.metrics.rebalanceStalled.get();
    expect(metric.values).toEqual([{ labels: { namespace: NS, name: NAME, reason: "Refused" }, value: 1 }]);
    for (let i = 0; i < 20 && h.pods().some((p) => p.metadata!.name === refused); i++) {
      h.clock.advance(5_000);
      await step(h);
    }
    await settle(h);
    expect(podNames(h)).not.toContain(refused);
    expect(podNames(h).filter((n) => !before.includes(n))).toHaveLength(1);
    expect(cond(h, "RebalanceStalled")?.status).toBe("False");
    expect(h.store.events.filter((e) => e.reason === "RebalanceStalled")).toHaveLength(1);
  });

  it("names the Ready peer each loaded expert comes from, on in-place loads and on a replacement pod", async () => {
    const h = startHarness();
    h.store.put(gpuNode("node-a", 4, 1));
    h.store.put(gpuNode("node-b", 4, 1));
    h.store.put(heatConfigMap(`${NAME}-heat`, NS, skewedHeat(3_000, [1, 2])));
    h.store.put(inPlaceDeployment());
    await h.reconcile(KEY);
    await settle(h);
    const ips = new Map<string, string>();
    h.pods().forEach((p, i) => {
      ips.set(p.metadata!.name!, `10.1.0.${i + 1}`);
      h.store.put({ ...p, status: { ...p.status, podIP: `10.1.0.${i + 1}` } } as never);
    });
    /** Every peer named on `p` is another pod that serves the expert, at the IP it has. */
    const checkPeers = (p: V1Pod): number => {
      const raw = p.metadata?.annotations?.[ShardAnnotation.expertPeers];
      if (raw === undefined) return 0;
      const peers = JSON.parse(raw) as ExpertPeers;
      let named = 0;
      peers.layers.forEach((row, l) => {
        for (const [e, i] of row) {
          const ref = peers.pods[i]!;
          const holder = h.pods().find((x) => x.metadata!.name === ref.name)!;
          expect(ref.name).not.toBe(p.metadata!.name);
          expect(servedExperts(holder)[l]).toContain(e);
          expect(ref.ip).toBe(ips.get(ref.name));
          named++;
        }
      });
      return named;
    };

    h.store.put(heatConfigMap(`${NAME}-heat`, NS, skewedHeat(3_000, [9, 10, 11])));
    h.clock.advance(31_000);
    await h.reconcile(KEY);
    const loading = h.pods().filter((p) => p.metadata?.annotations?.[ShardAnnotation.placementPhase] === "Load");
    expect(loading.length).toBeGreaterThan(0);
    expect(loading.reduce((n, p) => n + checkPeers(p), 0)).toBeGreaterThan(0);
    await settle(h);
    // Released (or settled) shards carry no stale peers.
    for (const p of h.pods())
      if (p.metadata?.annotations?.[ShardAnnotation.placementPhase] === "Release")
        expect(p.metadata.annotations[ShardAnnotation.expertPeers]).toBeUndefined();

    // A refused move is replaced by a new pod: it too is told where to fetch from.
    h.store.put(heatConfigMap(`${NAME}-heat`, NS, skewedHeat(3_000, [3, 4])));
    h.clock.advance(31_000);
    await h.reconcile(KEY);
    const target = h.pods().find((p) => {
      const st = readInPlace(p)!;
      return st.appliedGeneration < st.generation;
    })!;
    const before = podNames(h);
    for (let i = 0; i < 20 && podNames(h).every((n) => before.includes(n)); i++) {
      h.clock.advance(5_000);
      await step(h, [target.metadata!.name!]);
    }
    const fresh = h.pods().filter((p) => !before.includes(p.metadata!.name!));
    expect(fresh).toHaveLength(1);
    expect(checkPeers(fresh[0]!)).toBeGreaterThan(0);
  });
});
