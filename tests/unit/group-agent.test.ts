import { describe, expect, it } from "vitest";
import { GroupPlacementAgent, type GroupLeaderView, type PublishedPlacement } from "../../src/emulator/group-agent.ts";
import type { Placement } from "../../src/domain/placement/types.ts";
import { DEFAULT_MOVE_BANDWIDTH } from "../../src/domain/placement/move-cost.ts";

const gpus = [0, 1].map((i) => ({ gpuId: `g${i}`, nodeName: `n${i}`, domain: `n${i}`, slotCount: 2 }));
const placement = (layer: number[][]): Placement => ({
  version: 1,
  layerCount: 2,
  expertCount: 4,
  gpus,
  layers: [layer, layer],
});
const v1: PublishedPlacement = {
  version: 1,
  placement: placement([
    [0, 1],
    [2, 3],
  ]),
};
const v2: PublishedPlacement = {
  version: 2,
  placement: placement([
    [2, 1],
    [0, 3],
  ]),
};
// Slow links so the move takes whole seconds: 2 GB per replica over 1 GB/s is 2 s a layer (each GPU
// receives one replica per layer, in parallel), so the 2 s stall bound makes one chunk per layer.
const agent = (refuseRate = 0) =>
  new GroupPlacementAgent({
    seed: 7,
    refuseRate,
    moveCost: {
      nvlinkBytesPerSecond: 1e9,
      networkBytesPerSecond: 1e9,
      storageBytesPerSecond: DEFAULT_MOVE_BANDWIDTH.storageBytesPerSecond,
      bytesPerExpertReplica: 2e9,
      maxStallSeconds: 2,
    },
  });
const leader = (o: Partial<GroupLeaderView> = {}): GroupLeaderView => ({ group: 0, pod: "m-ep-0", ready: true, ...o });

describe("GroupPlacementAgent (the emulated engine side of WideEP in-place moves)", () => {
  it("a starting group takes the published placement and acknowledges it once it serves", () => {
    const a = agent();
    expect(a.sync(0, [leader({ ready: false })], v1)).toEqual([]);
    expect(a.versionOf(0)).toBe(1);
    expect(a.sync(1000, [leader()], v1)).toEqual([
      { pod: "m-ep-0", status: "True", reason: "Applied", message: "serving placement version 1" },
    ]);
    // Shown: nothing more to say.
    expect(a.sync(2000, [leader({ shownVersion: 1 })], v1)).toEqual([]);
  });

  it("re-sends an acknowledgement the API server does not show, but not before 3 s", () => {
    const a = agent();
    a.sync(0, [leader({ ready: false })], v1);
    expect(a.sync(1000, [leader()], v1)).toHaveLength(1);
    expect(a.sync(2000, [leader()], v1)).toEqual([]);
    expect(a.sync(4000, [leader()], v1)).toHaveLength(1);
  });

  it("a serving group ignores a new ConfigMap version until its leader is targeted", () => {
    const a = agent();
    a.sync(0, [leader({ ready: false })], v1);
    a.sync(1000, [leader({ shownVersion: 1 })], v2);
    expect(a.versionOf(0)).toBe(1);
    expect(a.movingTo(0)).toBeUndefined();
  });

  it("a targeted group moves chunk by chunk, serving the old placement until the last chunk, then acknowledges", () => {
    const a = agent();
    a.sync(0, [leader({ ready: false })], v1);
    a.sync(1000, [leader({ shownVersion: 1 })], v1);
    expect(a.sync(2000, [leader({ shownVersion: 1, targetVersion: 2 })], v2)).toEqual([]);
    expect(a.movingTo(0)).toBe(2);
    expect(a.versionOf(0)).toBe(1);
    const stalls: number[] = [];
    let acks: ReturnType<GroupPlacementAgent["sync"]> = [];
    for (let t = 3000; t <= 8000 && acks.length === 0; t += 1000) {
      acks = a.sync(t, [leader({ shownVersion: 1, targetVersion: 2 })], v2);
      stalls.push(...(a.takeStalls().get(0) ?? []));
      if (acks.length === 0) expect(a.versionOf(0)).toBe(1);
    }
    expect(stalls).toEqual([2000, 2000]);
    for (const s of stalls) expect(s).toBeLessThanOrEqual(2000);
    expect(a.versionOf(0)).toBe(2);
    expect(a.movingTo(0)).toBeUndefined();
    expect(acks).toEqual([
      { pod: "m-ep-0", status: "True", reason: "Applied", message: "serving placement version 2" },
    ]);
  });

  it("a refusal names the version refused and the one still served, and is re-sent until shown", () => {
    const a = agent(1);
    a.sync(0, [leader({ ready: false })], v1);
    a.sync(1000, [leader({ shownVersion: 1 })], v1);
    const refusal = {
      pod: "m-ep-0",
      status: "True",
      reason: "Refused",
      message: "refused placement version 2: emulated refusal; serving placement version 1",
    };
    expect(a.sync(2000, [leader({ shownVersion: 1, targetVersion: 2 })], v2)).toEqual([refusal]);
    expect(a.movingTo(0)).toBeUndefined();
    expect(a.sync(3000, [leader({ shownVersion: 1, targetVersion: 2 })], v2)).toEqual([]);
    expect(a.sync(5500, [leader({ shownVersion: 1, targetVersion: 2 })], v2)).toEqual([refusal]);
    expect(a.sync(9000, [leader({ shownVersion: 1, shownRefused: 2, targetVersion: 2 })], v2)).toEqual([]);
    expect(a.versionOf(0)).toBe(1);
  });

  it("forgets a group whose leader is gone, and treats a replaced leader pod as a new start", () => {
    const a = agent();
    a.sync(0, [leader({ ready: false })], v1);
    a.sync(1000, [], v2);
    expect(a.versionOf(0)).toBeUndefined();
    a.sync(2000, [leader({ pod: "m-ep-0-new", ready: false })], v2);
    expect(a.versionOf(0)).toBe(2);
  });
});
