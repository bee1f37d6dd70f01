// RebalanceStalled events are announced once per stall, also across an operator restart: the new
// process starts with an empty memory, and the stalls status already names are not announced again.
import { describe, expect, it } from "vitest";
import {
  newStalls,
  rebalanceStalledCondition,
  reportedIn,
  reportedStalls,
} from "../../src/controllers/moedeployment/inplace.ts";
import { groupsStalledCondition, newGroupStalls } from "../../src/controllers/moedeployment/wideep.ts";
import type { InPlacePlan, StalledShard } from "../../src/domain/inplace/index.ts";
import type { GroupMovesPlan, StalledGroup } from "../../src/domain/wideep/moves.ts";
import type { MoEDeployment } from "../../src/api/schema.ts";

const stall = (pod: string, generation: number): StalledShard => ({
  pod,
  shardIndex: Number(pod.split("-")[1]),
  reason: "Timeout",
  generation,
  message: `${pod} did not acknowledge target generation ${generation} within 60 s`,
});
const plan = (stalled: StalledShard[]): InPlacePlan => ({
  patches: [],
  stalled,
  views: [],
  moving: 0,
  applied: 0,
  settled: false,
});
const statusWith = (c: { type: string; status: "True" | "False"; message: string }) =>
  ({ conditions: [{ ...c, reason: "X", lastTransitionTime: "2026-12-06T00:00:00Z" }] }) as MoEDeployment["status"];

describe("stall events across a restart", () => {
  it("does not announce again a shard stall the True condition in status names", () => {
    const before = plan([stall("shard-1-a", 3)]);
    const status = statusWith(rebalanceStalledCondition(before) as never);
    // A fresh process (empty memory) with the same stall: nothing new.
    expect(newStalls(before, new Set(), reportedStalls(status))).toEqual([]);
    // A stall that arose meanwhile is announced, the known one is not.
    const after = plan([stall("shard-1-a", 3), stall("shard-2-b", 3)]);
    expect(newStalls(after, new Set(), reportedStalls(status)).map((s) => s.pod)).toEqual(["shard-2-b"]);
    // Without the status (or with the condition False) both are new.
    expect(newStalls(after, new Set(), "")).toHaveLength(2);
    expect(reportedStalls(statusWith({ ...rebalanceStalledCondition(before), status: "False" } as never))).toBe("");
  });

  it("matches whole messages only (generation 3 does not match generation 31)", () => {
    const reported = `${stall("shard-1-a", 31).message}; replaced make-before-break`;
    expect(reportedIn(reported, stall("shard-1-a", 3).message)).toBe(false);
    expect(reportedIn(reported, stall("shard-1-a", 31).message)).toBe(true);
  });

  it("does not announce again a group stall the True condition in status names", () => {
    const s: StalledGroup = {
      group: 1,
      pod: "lws-1",
      version: 5,
      reason: "Timeout",
      message: "EP group 1 (lws-1) did not acknowledge placement version 5 within 60 s; it serves placement version 4",
    };
    const moves: GroupMovesPlan = { write: [], applied: [], moving: [], stalled: [s], inFlight: false };
    const status = statusWith(groupsStalledCondition(moves, 5) as never);
    expect(newGroupStalls(moves, new Set(), reportedStalls(status))).toEqual([]);
    expect(newGroupStalls(moves, new Set(), "")).toHaveLength(1);
  });
});
