// When the SLO feedback may trust the observed p99: after the last Ready transition and after the
// last in-place move (the engine stalls while it moves experts), per shard pod and per EP group.
import { describe, expect, it } from "vitest";
import { readySince } from "../../src/controllers/moedeployment/observe.ts";
import { PLACEMENT_APPLIED_CONDITION, ShardAnnotation } from "../../src/controllers/moedeployment/codecs/shard-pod.ts";
import type { CachedPod } from "../../src/controllers/moedeployment/cached.ts";
import { groupsMovedSince, type GroupLeader } from "../../src/domain/wideep/moves.ts";

const T = Date.parse("2026-12-06T12:00:00Z");
const iso = (ms: number) => new Date(ms).toISOString();
const ACK = 60_000;

function pod(o: {
  readyAt: number;
  generation?: number;
  applied?: number;
  refused?: number;
  ackAt?: number;
  since?: number;
}): CachedPod {
  const conditions: Record<string, unknown>[] = [{ type: "Ready", status: "True", lastTransitionTime: iso(o.readyAt) }];
  if (o.applied !== undefined || o.refused !== undefined)
    conditions.push({
      type: PLACEMENT_APPLIED_CONDITION,
      status: o.refused !== undefined ? "False" : "True",
      message:
        o.refused !== undefined
          ? `refused generation ${o.refused}: no room; serving generation ${o.applied ?? 1}`
          : `serving generation ${o.applied}`,
      lastTransitionTime: iso(o.ackAt ?? o.readyAt),
    });
  return {
    metadata: {
      name: "p",
      uid: "u",
      annotations:
        o.generation === undefined
          ? {}
          : {
              [ShardAnnotation.targetGeneration]: String(o.generation),
              [ShardAnnotation.targetSince]: iso(o.since ?? o.readyAt),
              [ShardAnnotation.experts]: "[[0,1]]",
            },
    },
    status: { phase: "Running", conditions },
  } as unknown as CachedPod;
}

describe("readySince (shard pods)", () => {
  it("is the latest Ready transition without in-place moves", () => {
    expect(readySince([pod({ readyAt: T - 60_000 }), pod({ readyAt: T - 30_000 })], T, ACK)).toBe(T - 30_000);
  });

  it("counts an outstanding in-place move as now, and an acknowledged one at its acknowledgement", () => {
    const old = pod({ readyAt: T - 600_000 });
    expect(readySince([old, pod({ readyAt: T - 600_000, generation: 3, applied: 2, since: T - 10_000 })], T, ACK)).toBe(
      T,
    );
    expect(readySince([old, pod({ readyAt: T - 600_000, generation: 3, applied: 3, ackAt: T - 20_000 })], T, ACK)).toBe(
      T - 20_000,
    );
  });

  it("counts an unacknowledged move as its deadline once past it", () => {
    const stuck = pod({ readyAt: T - 600_000, generation: 3, applied: 2 });
    stuck.metadata!.annotations![ShardAnnotation.targetSince] = iso(T - 100_000);
    expect(readySince([stuck], T, ACK)).toBe(T - 40_000);
  });

  it("does not wait on a refused move (the shard serves what it served), nor on a first set's acknowledgement", () => {
    const refused = pod({ readyAt: T - 600_000, generation: 3, applied: 2, refused: 3, ackAt: T - 5_000 });
    // The refusal's condition time is kept (the condition changed), but it is not "now".
    expect(readySince([refused], T, ACK)).toBe(T - 5_000);
    expect(readySince([pod({ readyAt: T - 600_000, generation: 1, applied: 1, ackAt: T - 1_000 })], T, ACK)).toBe(
      T - 600_000,
    );
  });
});

describe("groupsMovedSince (EP groups)", () => {
  const leader = (o: Partial<GroupLeader>): GroupLeader => ({ group: 0, pod: "g-0", serving: true, ...o });

  it("is undefined without moves, now while a serving group's target is outstanding, else the last acknowledgement", () => {
    expect(groupsMovedSince([leader({})], T, ACK)).toBeUndefined();
    expect(groupsMovedSince([leader({ targetVersion: 4, servedVersion: 3, appliedAtMs: T - 9_000 })], T, ACK)).toBe(T);
    expect(
      groupsMovedSince(
        [
          leader({ targetVersion: 4, servedVersion: 4, appliedAtMs: T - 9_000 }),
          leader({ group: 1, pod: "g-1", targetVersion: 4, servedVersion: 4, appliedAtMs: T - 4_000 }),
        ],
        T,
        ACK,
      ),
    ).toBe(T - 4_000);
  });

  it("counts an unanswered target as its deadline once past it (no agent must not hold the feedback off)", () => {
    expect(groupsMovedSince([leader({ targetVersion: 4, servedVersion: 3, targetSinceMs: T - 90_000 })], T, ACK)).toBe(
      T - 30_000,
    );
  });

  it("ignores groups that do not serve and targets the group refused", () => {
    expect(groupsMovedSince([leader({ serving: false, targetVersion: 4, servedVersion: 3 })], T, ACK)).toBeUndefined();
    expect(
      groupsMovedSince(
        [leader({ targetVersion: 4, servedVersion: 3, refusedVersion: 4, appliedAtMs: T - 7_000 })],
        T,
        ACK,
      ),
    ).toBe(T - 7_000);
  });
});
