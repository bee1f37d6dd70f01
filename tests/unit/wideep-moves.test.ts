import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { planGroupMoves, type GroupLeader } from "../../src/domain/wideep/moves.ts";

const T0 = Date.UTC(2026, 11, 6, 12, 0, 0);
const leader = (group: number, o: Partial<GroupLeader> = {}): GroupLeader => ({
  group,
  pod: `m-ep-${group}`,
  serving: true,
  ...o,
});
const plan = (leaders: GroupLeader[], publishedVersion: number | undefined, nowMs = T0) =>
  planGroupMoves({ leaders, publishedVersion, ackTimeoutMs: 60_000, nowMs });

describe("planGroupMoves (WideEP in-place placement)", () => {
  it("targets every serving group that serves another version, and holds the next rebalance", () => {
    const p = plan([leader(0, { servedVersion: 3 }), leader(1, { servedVersion: 4 }), leader(2)], 4);
    expect(p.write).toEqual([
      { pod: "m-ep-0", group: 0, version: 4 },
      { pod: "m-ep-2", group: 2, version: 4 },
    ]);
    expect(p.applied).toEqual([1]);
    expect(p.moving).toEqual([0, 2]);
    expect(p.inFlight).toBe(true);
  });

  it("leaves starting and draining groups alone", () => {
    const p = plan([leader(0, { serving: false }), leader(1, { serving: false, servedVersion: 1 })], 2);
    expect(p).toMatchObject({ write: [], applied: [], moving: [], stalled: [], inFlight: false });
  });

  it("writes nothing while a target is outstanding within the deadline, even when a newer version is published", () => {
    const p = plan([leader(0, { servedVersion: 3, targetVersion: 4, targetSinceMs: T0 - 10_000 })], 5);
    expect(p.write).toEqual([]);
    expect(p.moving).toEqual([0]);
    expect(p.inFlight).toBe(true);
  });

  it("is settled once every serving group acknowledged the published version", () => {
    const p = plan(
      [leader(0, { servedVersion: 5, targetVersion: 5, targetSinceMs: T0 - 1 }), leader(1, { servedVersion: 5 })],
      5,
    );
    expect(p).toMatchObject({ write: [], applied: [0, 1], moving: [], inFlight: false });
  });

  it("reports a refusal naming the group and the version it still serves, and does not write that version again", () => {
    const p = plan(
      [
        leader(2, {
          servedVersion: 3,
          targetVersion: 4,
          targetSinceMs: T0,
          refusedVersion: 4,
          refusal: "out of memory",
        }),
      ],
      4,
    );
    expect(p.write).toEqual([]);
    expect(p.stalled).toEqual([
      {
        group: 2,
        pod: "m-ep-2",
        version: 4,
        reason: "Refused",
        message: "EP group 2 (m-ep-2) refused placement version 4: out of memory; it serves placement version 3",
      },
    ]);
    expect(p.inFlight).toBe(false);
  });

  it("reports a target past the deadline as a timeout, and retargets a stalled group at a newer version", () => {
    const late = leader(1, { servedVersion: 3, targetVersion: 4, targetSinceMs: T0 - 60_000 });
    const same = plan([late], 4);
    expect(same.stalled.map((s) => [s.reason, s.version])).toEqual([["Timeout", 4]]);
    expect(same.write).toEqual([]);
    const newer = plan([late], 5);
    expect(newer.stalled.map((s) => s.reason)).toEqual(["Timeout"]);
    expect(newer.write).toEqual([{ pod: "m-ep-1", group: 1, version: 5 }]);
  });

  it("rewrites a target the operator did not stamp (no target-since): it never holds rebalances", () => {
    const p = plan([leader(0, { servedVersion: 3, targetVersion: 7 })], 4);
    expect(p.write).toEqual([{ pod: "m-ep-0", group: 0, version: 4 }]);
    expect(p.stalled).toEqual([]);
    // Stamped now: outstanding until the deadline, then a timeout.
    const stamped = leader(0, { servedVersion: 3, targetVersion: 4, targetSinceMs: T0 });
    expect(plan([stamped], 4).moving).toEqual([0]);
    expect(plan([stamped], 4, T0 + 60_000).stalled.map((s) => s.reason)).toEqual(["Timeout"]);
  });

  it("after a version reset (served and target above the published version) moves the group back to it", () => {
    const p = plan([leader(0, { servedVersion: 5, targetVersion: 5, targetSinceMs: T0 - 1 })], 1);
    expect(p.write).toEqual([{ pod: "m-ep-0", group: 0, version: 1 }]);
    // Written: outstanding while the group still serves 5.
    const q = plan([leader(0, { servedVersion: 5, targetVersion: 1, targetSinceMs: T0 })], 1);
    expect(q).toMatchObject({ write: [], moving: [0], inFlight: true });
  });

  it("a group that has not reported a version is named as such when it stalls", () => {
    const p = plan([leader(0, { targetVersion: 4, targetSinceMs: T0 - 60_000 })], 4);
    expect(p.stalled[0]!.message).toContain("has not reported its version (is an agent answering");
  });

  it("does nothing before a placement is published", () => {
    expect(plan([leader(0)], undefined)).toMatchObject({ write: [], inFlight: false });
  });

  // Groups whose engines acknowledge, refuse or stay silent, over ticks with new versions published
  // only when nothing is in flight (the planner's hold): never two targets outstanding on a group,
  // never a write to a group that is not serving, and with engines that always acknowledge every
  // serving group ends at the published version.
  it("property: one outstanding target per group; engines that acknowledge converge", () => {
    const engine = fc.constantFrom("ack", "ack", "ack", "refuse", "silent", "late");
    fc.assert(
      fc.property(
        fc.array(fc.record({ serving: fc.boolean(), engine, initial: fc.integer({ min: 0, max: 3 }) }), {
          minLength: 1,
          maxLength: 6,
        }),
        fc.array(fc.boolean(), { minLength: 5, maxLength: 40 }),
        fc.boolean(),
        (groups, publishes, allAck) => {
          const state = groups.map((g, i) => ({
            ...leader(i, { serving: g.serving, servedVersion: g.initial }),
            engine: allAck ? "ack" : g.engine,
            pending: undefined as number | undefined,
          }));
          let version = 3;
          let now = T0;
          for (const publish of publishes) {
            const before = plan(state, version, now);
            if (publish && !before.inFlight) version++;
            const p = plan(state, version, now);
            const written = new Set<number>();
            for (const w of p.write) {
              const g = state[w.group]!;
              expect(g.serving).toBe(true);
              expect(written.has(w.group)).toBe(false);
              written.add(w.group);
              // Never a second target while one is outstanding and not stalled.
              const outstanding =
                g.targetVersion !== undefined && g.targetSinceMs !== undefined && g.servedVersion !== g.targetVersion;
              if (outstanding) expect(p.stalled.some((s) => s.group === w.group)).toBe(true);
              Object.assign(g, { targetVersion: w.version, targetSinceMs: now, refusedVersion: undefined });
            }
            // The engines answer before the next tick.
            for (const g of state) {
              if (g.targetVersion === undefined || (g.servedVersion ?? 0) >= g.targetVersion) continue;
              if (g.engine === "ack" || (g.engine === "late" && now - (g.targetSinceMs ?? now) > 30_000))
                g.servedVersion = g.targetVersion;
              else if (g.engine === "refuse") Object.assign(g, { refusedVersion: g.targetVersion, refusal: "no" });
            }
            now += 15_000;
          }
          const end = plan(state, version, now);
          if (allAck) {
            // One more tick writes what the last publish asked, and the engines answer it.
            for (const w of end.write) Object.assign(state[w.group]!, { servedVersion: w.version });
            const settled = plan(state, version, now + 15_000);
            expect(settled.inFlight).toBe(false);
            expect(settled.applied).toEqual(state.filter((g) => g.serving).map((g) => g.group));
          }
        },
      ),
      { numRuns: 300 },
    );
  });
});
