import { describe, expect, it } from "vitest";
import type { V1Pod } from "@kubernetes/client-node";
import {
  PLACEMENT_APPLIED_CONDITION,
  readInPlace,
  appliedMessage,
  readPlacementApplied,
  roomSuffix,
  targetPatch,
} from "../../src/controllers/moedeployment/codecs/shard-pod.ts";
import { chunkSeconds, layerLoadSeconds, routedExperts, servedExperts, servesYet } from "../../src/emulator/agent.ts";
import { FleetEmulator } from "../../src/emulator/fleet.ts";
import { withStalls } from "../../src/emulator/server.ts";

/** A pod carrying the annotations (a null in a merge patch removes the key). */
function pod(annotations: Record<string, string | null>, message?: string, reason = "Applied"): V1Pod {
  const kept = Object.fromEntries(Object.entries(annotations).filter((e): e is [string, string] => e[1] !== null));
  return {
    metadata: { name: "p", annotations: kept },
    status: {
      phase: "Running",
      conditions: message === undefined ? [] : [{ type: PLACEMENT_APPLIED_CONDITION, status: "True", reason, message }],
    },
  };
}

const patch = targetPatch({
  target: [[1, 2, 3]],
  served: [[1, 2]],
  wanted: [[2, 3]],
  generation: 3,
  phase: "Load",
  placementVersion: 7,
  placementHash: "h",
  setHash: "s",
  nowIso: "2026-12-05T12:00:00.000Z",
  resourceVersion: "42",
});

describe("in-place pod protocol (codec)", () => {
  it("reads back what the target patch wrote, serving the old set until the shard acknowledges", () => {
    const written = pod(patch.metadata.annotations, "serving generation 2");
    const s = readInPlace(written)!;
    expect(s).toMatchObject({ target: [[1, 2, 3]], servedBefore: [[1, 2]], generation: 3, appliedGeneration: 2 });
    expect(s.targetSinceMs).toBe(Date.parse("2026-12-05T12:00:00.000Z"));
    expect(servedExperts(written)).toEqual([[1, 2]]);
    expect(patch.metadata.resourceVersion).toBe("42");
    expect(servedExperts(pod(patch.metadata.annotations, "serving generation 3"))).toEqual([[1, 2, 3]]);
  });

  it("parses refusals and conditions without our message (kwok's readiness-gate stage)", () => {
    expect(readPlacementApplied(pod({}, "refused generation 3: no room; serving generation 2", "Refused"))).toEqual({
      applied: 2,
      refused: 3,
    });
    expect(readPlacementApplied(pod({}, ""))).toEqual({ applied: 0, refused: undefined });
    // The room a shard reports bounds its next load.
    expect(readPlacementApplied(pod({}, appliedMessage(4, 3)))).toEqual({
      applied: 4,
      refused: undefined,
      freeSlots: 3,
    });
    expect(
      readPlacementApplied(pod({}, `refused generation 5: no room; serving generation 4${roomSuffix(0)}`)),
    ).toEqual({
      applied: 4,
      refused: 5,
      freeSlots: 0,
    });
    expect(readInPlace(pod(patch.metadata.annotations, appliedMessage(3, 2)))?.freeSlots).toBe(2);
    expect(readInPlace(pod(patch.metadata.annotations, appliedMessage(3)))?.freeSlots).toBeUndefined();
    const fresh = pod(
      { ...patch.metadata.annotations, "moe.dev/target-generation": "1", "moe.dev/served-experts": "[]" },
      "",
    );
    expect(servesYet(fresh)).toBe(false);
    expect(servesYet(pod({ "moe.dev/experts": "[[1]]" }))).toBe(true); // a pod of mode Replace
    expect(readInPlace(pod({ "moe.dev/experts": "[[1]]" }))).toBeUndefined();
  });
});

describe("emulated shard agent", () => {
  const bw = { nvlinkBytesPerSecond: 100, networkBytesPerSecond: 10, storageBytesPerSecond: 1 };

  it("takes bytes / bandwidth of each new expert's path: same node, other node, or storage", () => {
    const self = { name: "a", node: "n1", served: [[0], [0]] };
    const others = [
      { name: "b", node: "n1", served: [[1], []] },
      { name: "c", node: "n2", served: [[2], [1]] },
    ];
    // Layer 0 gains 1 (NVLink, 0.1 s) and 2 (network, 1 s); layer 1 gains 1 (network) and 3 (storage, 10 s).
    expect(
      layerLoadSeconds(
        self,
        [
          [0, 1, 2],
          [0, 1, 3],
        ],
        others,
        10,
        bw,
      ),
    ).toEqual([1.1, 11]);
  });

  it("chunks consecutive layers under the stall bound, a layer above it alone", () => {
    expect(chunkSeconds([0.5, 0.5, 0.5, 3, 0, 0.2], 1)).toEqual([1, 0.5, 3, 0.2]);
    expect(chunkSeconds([0, 0], 1)).toEqual([]);
  });

  it("routes by the placement: experts a shard is releasing get work only while the placement's replicas are not all up", () => {
    const loaded = pod(patch.metadata.annotations, "serving generation 3");
    expect(routedExperts(loaded)).toMatchObject({ experts: [[2, 3]], leaving: [[1]] });
    const fleet = new FleetEmulator({ layerCount: 1, expertCount: 4, topK: 1, seed: 1 });
    const shard = (name: string, experts: number[][], leaving?: number[][], ready = true, placed?: number[][]) => ({
      name,
      experts,
      leaving,
      placed,
      ready,
      draining: false,
    });
    // a serves 0 and 1 but is releasing 1; b holds 1 in the placement: 1's tokens go to b only.
    const r = fleet.step([shard("a", [[0]], [[1]]), shard("b", [[1, 2, 3]])], [[1, 1, 0, 0]], 100);
    expect(r.shardTokens.get("a")).toBeCloseTo(50);
    expect(r.shardTokens.get("b")).toBeCloseTo(50);
    // Without b, a still serves 1 (nothing is left unserved).
    const alone = fleet.step([shard("a", [[0]], [[1]])], [[1, 1, 0, 0]], 100);
    expect(alone.unservedExperts).toBe(0);
    expect(alone.shardTokens.get("a")).toBeCloseTo(100);
    // The placement gives 1 two replicas, b and c, and c is still starting: a keeps c's share of 1
    // until c is up (a router keeps the old replica until the new one serves).
    const cold = [shard("a", [[0]], [[1]]), shard("b", [[1, 2, 3]]), shard("c", [], undefined, false, [[1]])];
    const r2 = fleet.step(cold, [[0, 1, 0, 0]], 100);
    expect(r2.shardTokens.get("a")).toBeCloseTo(50);
    expect(r2.shardTokens.get("b")).toBeCloseTo(50);
  });

  it("adds each chunk's stall to a share of the second's latency samples", () => {
    const samples = Array.from({ length: 40 }, () => 20);
    const out = withStalls(samples, 50, [100]);
    expect(out.filter((v) => v === 120)).toHaveLength(2); // 50 ms of 1000: 5% of 40 samples
    expect(withStalls(samples, 50, [])).toEqual(samples);
  });
});
