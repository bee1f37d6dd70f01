import { describe, expect, it } from "vitest";
import { FleetEmulator, type EmulatedShard } from "../../src/emulator/fleet.ts";
import { routeByMap } from "../../src/emulator/router-map.ts";

const shard = (name: string, served: number[], placed: number[], ready = true): EmulatedShard => {
  const inPlacement = served.filter((e) => placed.includes(e));
  const leaving = served.filter((e) => !placed.includes(e));
  return { name, experts: [inPlacement], leaving: [leaving], placed: [placed], ready, draining: false };
};

describe("emulated router map", () => {
  const last = new Map([
    ["a", [[0, 1]]],
    ["b", [[2, 3]]],
  ]);
  // Scale-up: expert 1 moves from a to the new shard c, which is still starting, and expert 2 from b
  // to a, which has loaded it (b still serves it until its release).
  const starting = [shard("a", [0, 1, 2], [0, 2]), shard("b", [2, 3], [3]), shard("c", [], [1], false)];

  it("keeps routing by the last placement served in full while a shard of the new one is not serving it", () => {
    const r = routeByMap(starting, last);
    expect(r.map).toBe(last);
    expect(r.shards.find((s) => s.name === "a")!.experts).toEqual([[0, 1]]);
    const fleet = new FleetEmulator({ layerCount: 1, expertCount: 4, topK: 1, seed: 1 });
    const step = fleet.step(r.shards, [[1, 1, 1, 1]], 100);
    // The old, balanced map: a and b carry two experts each. By the half-applied new placement a would
    // carry 0, 2 and (for the starting c) 1: three quarters of the load.
    expect(step.shardTokens.get("a")).toBeCloseTo(50);
    expect(step.shardTokens.get("b")).toBeCloseTo(50);
    expect(step.unservedExperts).toBe(0);
  });

  it("switches to the new placement once every shard serves its whole set", () => {
    const up = [shard("a", [0, 1, 2], [0, 2]), shard("b", [2, 3], [3]), shard("c", [1], [1])];
    const r = routeByMap(up, last);
    expect(r.map?.get("c")).toEqual([[1]]);
    expect(r.shards.find((s) => s.name === "a")!.experts).toEqual([[0, 2]]);
  });

  it("passes shards without a placement set (mode Replace) through", () => {
    const plain: EmulatedShard = { name: "p", experts: [[0]], ready: true, draining: false };
    expect(routeByMap([plain], undefined)).toEqual({ shards: [plain], map: undefined });
  });
});
