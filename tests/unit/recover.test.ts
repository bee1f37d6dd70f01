import { describe, expect, it } from "vitest";
import type { V1ConfigMap, V1Deployment, V1Pod } from "@kubernetes/client-node";
import {
  configMapDrifted,
  deploymentDrift,
  nextPlacementVersion,
  PLACEMENT_CACHE_LAG_MS,
  placementInForce,
  placementFromPods,
  recoverPlacement,
  type RecoverablePod,
} from "../../src/controllers/moedeployment/recover.ts";
import { parseMoEDeployment } from "../../src/api/index.ts";
import { expertSetHash, shardExperts } from "../../src/controllers/moedeployment/children.ts";
import { gpuNode, startHarness, type Harness } from "../support/reconciler-harness.ts";
import { otherPod, tickCluster } from "../support/cluster-sim.ts";
import { heatConfigMap, skewedHeat, testMoEDeployment } from "../support/moe-fixtures.ts";

const pod = (shardIndex: number, experts: number[][], over: Partial<RecoverablePod> = {}): RecoverablePod => ({
  shardIndex,
  experts,
  ready: true,
  terminating: false,
  placementVersion: 3,
  nodeName: `n${shardIndex}`,
  ...over,
});

describe("placementFromPods", () => {
  it("rebuilds a placement whose shards hold exactly the pods' expert sets", () => {
    const pods = [
      pod(0, [
        [0, 1],
        [2, 3],
      ]),
      pod(1, [[2, 3], [0]]),
      pod(2, [[0], [1]]),
    ];
    const r = placementFromPods(pods, 2, 4, 3)!;
    expect(r.placement.gpus.map((g) => g.gpuId)).toEqual(["shard-0", "shard-1", "shard-2"]);
    for (let g = 0; g < 3; g++)
      expect(expertSetHash(shardExperts(r.placement, g))).toBe(expertSetHash(pods[g]!.experts));
    expect(r.placement.layers[1]![1]).toEqual([0, -1, -1]);
  });

  it("ignores draining and terminating pods, prefers the Ready pod, then the newest version", () => {
    const pods = [
      pod(0, [[0]], { drainStartedMs: 1 }),
      pod(0, [[1]], { ready: false, placementVersion: 9 }),
      pod(0, [[2]], { placementVersion: 2 }),
      pod(1, [[3]], { terminating: true }),
      pod(1, [[0]], { ready: false, placementVersion: 4 }),
      pod(1, [[1]], { ready: false, placementVersion: 5 }),
    ];
    const r = placementFromPods(pods, 1, 4, 2)!;
    expect(r.placement.layers[0]).toEqual([
      [2, -1],
      [1, -1],
    ]);
  });

  it("rebuilds nothing when an index is missing or a set does not fit the model", () => {
    expect(placementFromPods([pod(0, [[0]]), pod(2, [[1]])], 1, 2, 1)).toBeUndefined();
    expect(placementFromPods([pod(0, [[0, 1]])], 1, 2, 1)).toBeUndefined(); // more experts than slots
    expect(placementFromPods([pod(0, [[0], [1]])], 1, 2, 1)).toBeUndefined(); // wrong layer count
    expect(placementFromPods([pod(0, [[5]])], 1, 2, 1)).toBeUndefined(); // no such expert
    expect(placementFromPods([], 1, 2, 1)).toBeUndefined();
  });
});

describe("recoverPlacement", () => {
  it("reads an in-place pod mid-load by the set it moves to, not the served ∪ new union that overfills its slots", () => {
    const parsed = parseMoEDeployment(testMoEDeployment("r", "default", {}));
    if (!parsed.ok) throw new Error("fixture");
    const spec = parsed.value.spec;
    const layers = spec.model.layers - spec.model.denseLayers;
    const slots = spec.model.expertSlotsPerGpu;
    const setOf = (first: number) =>
      Array.from({ length: layers }, () =>
        Array.from({ length: slots }, (_, k) => (first + k) % spec.model.routedExperts),
      );
    const shardPod = (i: number, experts: number[][], wanted?: number[][]) => ({
      name: `r-shard-${i}`,
      shardIndex: i,
      setHash: `h${i}`,
      experts,
      ready: true,
      terminating: false,
      pod: {
        metadata: {
          annotations: {
            "moe.dev/placement-version": "4",
            ...(wanted ? { "moe.dev/placement-experts": JSON.stringify(wanted) } : {}),
          },
        },
        spec: { nodeName: `n${i}`, containers: [] },
      } as V1Pod,
    });
    const count = Math.ceil(spec.model.routedExperts / slots);
    const wanted = Array.from({ length: count }, (_, i) => setOf(i * slots));
    // Shard 0 is loading: it holds its old set plus the new one (more than its slots).
    const union = wanted[0]!.map((l, li) => [...new Set([...l, ...setOf(slots * 7)[li]!])]);
    expect(union[0]!.length).toBeGreaterThan(slots);
    const pods = wanted.map((w, i) => (i === 0 ? shardPod(0, union, w) : shardPod(i, w)));
    const r = recoverPlacement(pods, spec);
    expect(r).toBeDefined();
    for (let i = 0; i < count; i++)
      for (let l = 0; l < layers; l++)
        expect([...r!.placement.layers[l]![i]!].sort((a, b) => a - b)).toEqual(
          [...wanted[i]![l]!].sort((a, b) => a - b),
        );
    // Without the annotation the union does not fit and nothing is rebuilt (the old behaviour).
    expect(recoverPlacement([shardPod(0, union), ...pods.slice(1)], spec)).toBeUndefined();
  });
});

describe("nextPlacementVersion", () => {
  const published = { placement: {} as never, hash: "a", version: 4 };
  it("never goes below the published version or status's, and moves on for a new or recovered placement", () => {
    expect(
      nextPlacementVersion({ targetHash: "a", published, recovered: false, status: { version: 4, hash: "a" } }),
    ).toBe(4);
    expect(
      nextPlacementVersion({ targetHash: "b", published, recovered: false, status: { version: 4, hash: "a" } }),
    ).toBe(5);
    // The ConfigMap was deleted (status still says v4): the same layout comes back as v5.
    expect(
      nextPlacementVersion({
        targetHash: "a",
        published: undefined,
        recovered: true,
        status: { version: 4, hash: "a" },
      }),
    ).toBe(5);
    // The cache (or a hand edit) lags behind what was published: no new version for the same placement.
    expect(
      nextPlacementVersion({ targetHash: "b", published, recovered: false, status: { version: 5, hash: "b" } }),
    ).toBe(5);
    expect(nextPlacementVersion({ targetHash: undefined, published, recovered: false, status: { version: 7 } })).toBe(
      7,
    );
  });
});

describe("drift", () => {
  const cm = (data: Record<string, string>, version = "2"): V1ConfigMap => ({
    metadata: { annotations: { "moe.dev/placement-version": version, "moe.dev/placement-hash": "h" } },
    data,
  });
  it("sees a placement ConfigMap that is missing, edited or at another version", () => {
    expect(configMapDrifted(undefined, cm({ a: "1" }))).toBe(true);
    expect(configMapDrifted(cm({ a: "1" }), cm({ a: "1" }))).toBe(false);
    expect(configMapDrifted(cm({ a: "2" }), cm({ a: "1" }))).toBe(true);
    expect(configMapDrifted(cm({}), cm({ a: "1" }))).toBe(true);
    // A key someone else added is theirs: server-side apply would never remove it.
    expect(configMapDrifted(cm({ a: "1", b: "x" }), cm({ a: "1" }))).toBe(false);
    expect(configMapDrifted(cm({ a: "1" }, "1"), cm({ a: "1" }))).toBe(true);
  });
  it("compares placement.json by layout (node names follow the pods) and never restores move-cost.json", () => {
    const layout = (node: string, expert: number) =>
      JSON.stringify({
        version: 1,
        layerCount: 1,
        expertCount: 2,
        gpus: [{ gpuId: "shard-0", nodeName: node, domain: node, slotCount: 2 }],
        layers: [[[expert, 1 - expert]]],
      });
    expect(configMapDrifted(cm({ "placement.json": layout("n1", 0) }), cm({ "placement.json": layout("n2", 0) }))).toBe(
      false,
    );
    expect(configMapDrifted(cm({ "placement.json": layout("n1", 1) }), cm({ "placement.json": layout("n1", 0) }))).toBe(
      true,
    );
    expect(configMapDrifted(cm({ "placement.json": "{bad" }), cm({ "placement.json": layout("n1", 0) }))).toBe(true);
    expect(configMapDrifted(cm({ "move-cost.json": "old" }), cm({ "move-cost.json": "new" }))).toBe(false);
  });
  it("uses the ConfigMap this operator just wrote while the cache still shows an older version", () => {
    const written = { cm: cm({ a: "new" }, "5"), version: 5, atMs: 1_000 };
    const cached4 = cm({ a: "old" }, "4");
    expect(placementInForce(cached4, written, 1_000 + 500)).toBe(written.cm);
    expect(placementInForce(undefined, written, 1_000 + 500)).toBe(written.cm);
    // The cache caught up (or someone edited the written version in place): the cache is the truth.
    const cached5 = cm({ a: "edited" }, "5");
    expect(placementInForce(cached5, written, 1_000 + 500)).toBe(cached5);
    // Past the lag bound the cache is believed again, so a hand deletion is repaired.
    expect(placementInForce(undefined, written, 1_000 + PLACEMENT_CACHE_LAG_MS + 1)).toBeUndefined();
    expect(placementInForce(cached4, undefined, 1_000)).toBe(cached4);
  });
  it("names the router's replicas or images changed by hand", () => {
    const dep = (replicas: number, image: string): V1Deployment => ({
      spec: { replicas, selector: {}, template: { spec: { containers: [{ name: "router", image }] } } },
    });
    expect(deploymentDrift(dep(1, "a"), dep(1, "a"))).toBeUndefined();
    expect(deploymentDrift(dep(1, "a"), dep(0, "a"))).toBe("replicas 0, want 1");
    expect(deploymentDrift(dep(1, "a"), dep(1, "b"))).toBe("containers router=b, want router=a");
  });
});

// The reconciler in-process with a simulated scheduler and kubelet: what a person does by hand.
describe("state changed by hand (in-memory reconciler)", () => {
  const NS = "default";
  const NAME = "hand";
  const KEY = `${NS}/${NAME}`;
  const placementName = `${NAME}-placement`;
  const cmOf = (h: Harness) => h.store.cache<V1ConfigMap>("ConfigMap").get(placementName, NS);
  const podIds = (h: Harness) =>
    h.store
      .list<V1Pod>("Pod")
      .filter((p) => p.metadata?.labels?.["moe.dev/component"] === "expert-shard")
      .map((p) => `${p.metadata!.name}/${p.metadata!.uid}`)
      .sort();

  async function step(h: Harness, seconds: number): Promise<void> {
    for (let s = 0; s < seconds; s++) {
      tickCluster(h, { readySeconds: 5 });
      await h.reconcile(KEY).catch(() => undefined);
      h.clock.advance(1000);
    }
  }

  async function stableHarness(): Promise<Harness> {
    const h = startHarness({
      config: { reconcileIntervalMs: 5_000, drainSeconds: 2, maxSurge: 2, soleReplicaPriorityClass: "moe-sole" },
    });
    for (const n of ["node-a", "node-b"]) h.store.put(gpuNode(n, 8, 2));
    h.store.put(otherPod("hand-router-0", "node-a", 1));
    h.store.put(heatConfigMap(`${NAME}-heat`, NS, skewedHeat(3_000, [1, 2])));
    h.store.put(testMoEDeployment(NAME, NS, { minShards: 4, maxShards: 4 }));
    await step(h, 90);
    const ready = h.moed(NS, NAME).status?.conditions?.find((c) => c.type === "Ready");
    expect(ready?.status).toBe("True");
    return h;
  }

  it("rebuilds a deleted or corrupted placement ConfigMap from the pods: same layout, higher version, no pod replaced", async () => {
    const h = await stableHarness();
    const v0 = h.moed(NS, NAME).status!.placement!.version;
    const shards0 = cmOf(h)!.data!["shards.json"];
    const pods0 = podIds(h);

    h.store.objects.delete(`ConfigMap/${NS}/${placementName}`);
    await step(h, 1);
    const v1 = Number(cmOf(h)!.data!.version);
    expect(v1).toBeGreaterThan(v0);
    expect(cmOf(h)!.data!["shards.json"]).toBe(shards0);
    expect(h.moed(NS, NAME).status!.placement!.version).toBe(v1);

    // Corrupted: the placement no longer matches its hash.
    const cm = cmOf(h)!;
    const bad = JSON.parse(cm.data!["placement.json"]!) as { layers: number[][][] };
    bad.layers[0]![0]![0] = (bad.layers[0]![0]![0]! + 1) % 16;
    h.store.put({ ...cm, data: { ...cm.data, "placement.json": JSON.stringify(bad) } } as never);
    await step(h, 1);
    const v2 = Number(cmOf(h)!.data!.version);
    expect(v2).toBeGreaterThan(v1);
    expect(cmOf(h)!.data!["shards.json"]).toBe(shards0);

    // Several intervals later: the same pods, and the version only went up.
    await step(h, 30);
    expect(podIds(h)).toEqual(pods0);
    expect(h.moed(NS, NAME).status!.placement!.version).toBe(v2);
    expect(h.moed(NS, NAME).status?.conditions?.find((c) => c.type === "Ready")?.status).toBe("True");
    const recovered = h.store.events.filter((e) => e.reason === "PlacementRecovered").map((e) => e.message);
    expect(recovered).toEqual([
      `placement ConfigMap ${placementName} was missing; rebuilt from the 4 shard pods' moe.dev/experts annotations as v${v1}`,
      `placement ConfigMap ${placementName} was unreadable; rebuilt from the 4 shard pods' moe.dev/experts annotations as v${v2}`,
    ]);
  }, 30_000);

  it("restores a router scaled to 0 and a hand-edited placement ConfigMap at the next reconcile", async () => {
    const h = await stableHarness();
    const router = h.store.cache<V1Deployment>("Deployment").get(`${NAME}-router`, NS)!;
    h.store.put({ ...router, spec: { ...router.spec!, replicas: 0 } } as never);
    const cm = cmOf(h)!;
    const v = cm.data!.version;
    const before = cm.data!["heat-basis"];
    h.store.put({ ...cm, data: { ...cm.data, "heat-basis": "none" } } as never);
    await step(h, 1);
    expect(h.store.cache<V1Deployment>("Deployment").get(`${NAME}-router`, NS)!.spec!.replicas).toBe(1);
    expect(cmOf(h)!.data!["heat-basis"]).toBe(before);
    expect(cmOf(h)!.data!.version).toBe(v);
    expect(h.store.events.filter((e) => e.reason === "DriftCorrected").map((e) => e.message)).toEqual([
      `router Deployment ${NAME}-router was changed by hand (replicas 0, want 1); restored`,
      `placement ConfigMap ${placementName} was changed by hand; restored v${v}`,
    ]);
    // Nothing more to restore: no further writes or events.
    await step(h, 10);
    expect(h.store.events.filter((e) => e.reason === "DriftCorrected")).toHaveLength(2);
  }, 30_000);

  it("gives a re-created pod that holds a replica no Ready pod holds the sole-replica priority class", async () => {
    const h = await stableHarness();
    const shards = () =>
      h.store.list<V1Pod>("Pod").filter((p) => p.metadata?.labels?.["moe.dev/component"] === "expert-shard");
    const experts = (p: V1Pod) => JSON.parse(p.metadata!.annotations!["moe.dev/experts"]!) as number[][];
    const sole = shards().find((p) =>
      experts(p).some((l, li) => l.some((e) => !shards().some((o) => o !== p && experts(o)[li]?.includes(e)))),
    )!;
    expect(sole).toBeDefined();
    h.store.objects.delete(`Pod/${NS}/${sole.metadata!.name}`);
    await step(h, 1);
    const back = shards().find((p) => p.metadata!.name === sole.metadata!.name)!;
    expect(back.spec?.priorityClassName).toBe("moe-sole");
  }, 30_000);
});
