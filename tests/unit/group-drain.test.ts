import { describe, expect, it } from "vitest";
import { parseMoEDeployment, type MoEDeployment } from "../../src/api/index.ts";
import { planGroupDrain } from "../../src/controllers/moedeployment/group-drain.ts";
import type { CachedPod } from "../../src/controllers/moedeployment/cached.ts";
import type { GroupState } from "../../src/domain/wideep/groups.ts";
import { testWideEPDeployment } from "../support/moe-fixtures.ts";

const NOW = Date.parse("2026-12-05T12:00:00Z");
const d: MoEDeployment = (() => {
  const r = parseMoEDeployment(testWideEPDeployment("w", "default", { minShards: 16, maxShards: 48 }));
  if (!r.ok) throw new Error("fixture");
  return r.value;
})();

const leader = (group: number, drainAgoS?: number): CachedPod => ({
  metadata: {
    name: `w-ep-${group}`,
    labels: {
      "leaderworkerset.sigs.k8s.io/name": "w-ep",
      "leaderworkerset.sigs.k8s.io/group-index": `${group}`,
      "leaderworkerset.sigs.k8s.io/worker-index": "0",
    },
    ...(drainAgoS !== undefined
      ? { annotations: { "moe.dev/draining-since": new Date(NOW - drainAgoS * 1000).toISOString() } }
      : {}),
  },
});
const states = (ready: boolean[]): GroupState[] =>
  ready.map((r, index) => ({ index, pods: 2, readyPods: r ? 2 : 0, ready: r, missingGpus: 0 }));
const at = (target: number, provisioned: number, ready: boolean[], pods: CachedPod[]) =>
  planGroupDrain(d, pods, { target, provisioned, states: states(ready), drainMs: 30_000, nowMs: NOW });

describe("planGroupDrain", () => {
  it("a scale-down first marks the Ready groups above the new count and keeps replicas", () => {
    const p = at(1, 3, [true, true, true], [leader(0), leader(1), leader(2)]);
    expect(p).toMatchObject({ replicas: 3, draining: [1, 2], mark: ["w-ep-1", "w-ep-2"], remainingMs: 30_000 });
  });

  it("lowers replicas once every marked group has drained for the drain time", () => {
    expect(at(1, 3, [true, true, true], [leader(0), leader(1, 10), leader(2, 10)])).toMatchObject({
      replicas: 3,
      mark: [],
      remainingMs: 20_000,
    });
    expect(at(1, 3, [true, true, true], [leader(0), leader(1, 31), leader(2, 30)])).toMatchObject({
      replicas: 1,
      draining: [],
    });
  });

  it("a group marked later (the decision fell again) does not hold back the groups drained above it", () => {
    // 4 -> 3 marked group 3 25 s ago; the decision is now 2: group 3 goes, group 2 starts its drain.
    expect(at(2, 4, [true, true, true, true], [leader(0), leader(1), leader(2), leader(3, 31)])).toMatchObject({
      replicas: 3,
      draining: [2],
      mark: ["w-ep-2"],
      remainingMs: 30_000,
    });
    // Group 3 still within its drain: both drain, replicas stay.
    expect(at(2, 4, [true, true, true, true], [leader(0), leader(1), leader(2), leader(3, 10)])).toMatchObject({
      replicas: 4,
      draining: [2, 3],
      mark: ["w-ep-2"],
      remainingMs: 30_000,
    });
    // A group above that is not Ready goes at once even while a lower one drains.
    expect(at(1, 3, [true, true, false], [leader(0), leader(1), leader(2)])).toMatchObject({
      replicas: 2,
      draining: [1],
      mark: ["w-ep-1"],
    });
  });

  it("a group that is not Ready serves nothing: removed without a drain", () => {
    expect(at(1, 2, [true, false], [leader(0), leader(1)])).toMatchObject({ replicas: 1, mark: [] });
  });

  it("never drains during a scale-up, and a decision back up removes the marks", () => {
    expect(at(3, 3, [true, true, true], [leader(0), leader(1, 5), leader(2, 5)])).toMatchObject({
      replicas: 3,
      draining: [],
      mark: [],
      unmark: ["w-ep-1", "w-ep-2"],
    });
    expect(at(4, 3, [true, true, true], [leader(0), leader(1), leader(2)])).toMatchObject({ replicas: 4, mark: [] });
  });
});
