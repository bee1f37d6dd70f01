import { describe, expect, it } from "vitest";
import { placementFromPods, configMapDrifted, deploymentDrift, type RecoverablePod } from "../../src/controllers/moedeployment/recover.ts";
import { expertSetHash, shardExperts } from "../../src/controllers/moedeployment/children.ts";

const pod = (shardIndex: number, experts: number[][], over: Partial<RecoverablePod> = {}): RecoverablePod => ({ shardIndex, experts, ready: true, terminating: false, placementVersion: 3, nodeName: `n${shardIndex}`, ...over });

describe("placementFromPods", () => {
  it("rebuilds a placement whose shards hold exactly the pods' expert sets", () => {
    const pods = [pod(0, [[0, 1], [2, 3]]), pod(1, [[2, 3], [0]]), pod(2, [[0], [1]])];
    const r = placementFromPods(pods, 2, 4, 3)!;
    expect(r.placement.gpus.map((g) => g.gpuId)).toEqual(["shard-0", "shard-1", "shard-2"]);
    for (let g = 0; g < 3; g++) expect(expertSetHash(shardExperts(r.placement, g))).toBe(expertSetHash(pods[g]!.experts));
    expect(r.placement.layers[1]![1]).toEqual([0, -1, -1]);
  });

  it("ignores draining and terminating pods, prefers the Ready pod, then the newest version", () => {
    const pods = [
      pod(0, [[0]], { drainStartedMs: 1 }), pod(0, [[1]], { ready: false, placementVersion: 9 }), pod(0, [[2]], { placementVersion: 2 }),
      pod(1, [[3]], { terminating: true }), pod(1, [[0]], { ready: false, placementVersion: 4 }), pod(1, [[1]], { ready: false, placementVersion: 5 }),
    ];
    const r = placementFromPods(pods, 1, 4, 2)!;
    expect(r.placement.layers[0]).toEqual([[2, -1], [1, -1]]);
  });

  it("rebuilds nothing when an index is missing or a set does not fit the model", () => {
    expect(placementFromPods([pod(0, [[0]]), pod(2, [[1]])], 1, 2, 1)).toBeUndefined();
    expect(placementFromPods([pod(0, [[0, 1]])], 1, 2, 1)).toBeUndefined(); // more experts than slots
    expect(placementFromPods([pod(0, [[0], [1]])], 1, 2, 1)).toBeUndefined(); // wrong layer count
    expect(placementFromPods([pod(0, [[5]])], 1, 2, 1)).toBeUndefined(); // no such expert
    expect(placementFromPods([], 1, 2, 1)).toBeUndefined();
  });
});

describe("drift", () => {
  const cm = (data: Record<string, string>, version = "2") => ({ metadata: { annotations: { "moe.dev/placement-version": version, "moe.dev/placement-hash": "h" } }, data });
  it("sees a placement ConfigMap that is missing, edited or at another version", () => {
    expect(configMapDrifted(undefined, cm({ a: "1" }))).toBe(true);
    expect(configMapDrifted(cm({ a: "1" }), cm({ a: "1" }))).toBe(false);
    expect(configMapDrifted(cm({ a: "1", b: "x" }), cm({ a: "1" }))).toBe(true);
    expect(configMapDrifted(cm({ a: "1" }, "1"), cm({ a: "1" }))).toBe(true);
  });
  it("names the router's replicas or images changed by hand", () => {
    const dep = (replicas: number, image: string) => ({ spec: { replicas, selector: {}, template: { spec: { containers: [{ name: "router", image }] } } } });
    expect(deploymentDrift(dep(1, "a"), dep(1, "a"))).toBeUndefined();
    expect(deploymentDrift(dep(1, "a"), dep(0, "a"))).toBe("replicas 0, want 1");
    expect(deploymentDrift(dep(1, "a"), dep(1, "b"))).toBe("containers router=b, want router=a");
  });
});
