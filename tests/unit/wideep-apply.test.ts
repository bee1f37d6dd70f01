// applyWideEP's order and failure handling with a recording writer (the plan is built by hand: this
// tests the writes, not the decision). A failed move target must not hold back the other groups'
// targets or the LeaderWorkerSet (a scale-up); a failed drain mark must (a scale-down would remove
// a group that was not told to drain).
import { pino } from "pino";
import { describe, expect, it } from "vitest";
import type { KubeWriter } from "../../src/adapters/kube.ts";
import { lwsToApply, type LeaderWorkerSet } from "../../src/controllers/moedeployment/codecs/leaderworkerset.ts";
import { applyWideEP, type WideEPPlan } from "../../src/controllers/moedeployment/wideep.ts";

type Call = { verb: string; kind: string; name: string };

function writer(failPatchOn: ReadonlySet<string>): { kube: KubeWriter; calls: Call[] } {
  const calls: Call[] = [];
  const ref = (o: unknown) => {
    const x = o as { kind?: string; name?: string; metadata?: { name?: string } };
    return { kind: x.kind ?? "?", name: x.name ?? x.metadata?.name ?? "?" };
  };
  const kube = {
    apply: async (o: unknown) => {
      calls.push({ verb: "apply", ...ref(o) });
      return o;
    },
    mergePatch: async (o: unknown) => {
      const r = ref(o);
      calls.push({ verb: "patch", ...r });
      if (failPatchOn.has(r.name)) throw new Error(`connection reset patching ${r.name}`);
      return o;
    },
  } as unknown as KubeWriter;
  return { kube, calls };
}

const lws = {
  apiVersion: "leaderworkerset.x-k8s.io/v1",
  kind: "LeaderWorkerSet",
  metadata: { name: "wide-ep", namespace: "default" },
  spec: {
    replicas: 3,
    leaderWorkerTemplate: { size: 2, workerTemplate: { spec: { containers: [{ name: "engine", image: "sglang" }] } } },
  },
};

function plan(over: Partial<WideEPPlan>): WideEPPlan {
  return { lws, ...over } as unknown as WideEPPlan;
}

const moves = (pods: string[]) => ({
  write: pods.map((pod, group) => ({ pod, group, version: 4 })),
  applied: [],
  moving: pods.map((_, g) => g),
  stalled: [],
  inFlight: true,
  hash: "abc",
  atIso: "2026-12-06T12:00:00.000Z",
});

const log = pino({ level: "silent" });

describe("applyWideEP", () => {
  it("tries every group's target and still applies the LeaderWorkerSet when one target fails", async () => {
    const { kube, calls } = writer(new Set(["wide-ep-0"]));
    const errors = await applyWideEP(kube, plan({ moves: moves(["wide-ep-0", "wide-ep-1"]) }), log);
    expect(calls).toEqual([
      { verb: "patch", kind: "Pod", name: "wide-ep-0" },
      { verb: "patch", kind: "Pod", name: "wide-ep-1" },
      { verb: "apply", kind: "LeaderWorkerSet", name: "wide-ep" },
    ]);
    expect(errors.map((e) => e.message)).toEqual([expect.stringContaining("patch Pod/wide-ep-0") as unknown as string]);
  });

  it("holds the LeaderWorkerSet back when a drain mark fails", async () => {
    const { kube, calls } = writer(new Set(["wide-ep-2"]));
    const drain = { mark: ["wide-ep-2"], unmark: [], atIso: "2026-12-06T12:00:00.000Z" };
    const errors = await applyWideEP(kube, plan({ drain: drain as unknown as WideEPPlan["drain"] }), log);
    expect(calls).toEqual([{ verb: "patch", kind: "Pod", name: "wide-ep-2" }]);
    expect(errors).toHaveLength(1);
    expect(errors[0]!.message).toContain("patch Pod/wide-ep-2");
  });

  it("restores a hand edit and tells it (DriftCorrected); an unchanged LeaderWorkerSet is neither applied nor told", async () => {
    const { kube, calls } = writer(new Set());
    const applied = lwsToApply(lws as unknown as LeaderWorkerSet, undefined)!;
    const edited = { ...applied, spec: { ...applied.spec, replicas: 5 } };
    const told: string[] = [];
    const read = (live: LeaderWorkerSet) => async () => live;
    expect(await applyWideEP(kube, plan({}), log, read(edited), (m) => told.push(m))).toEqual([]);
    expect(told).toEqual(["LeaderWorkerSet wide-ep was changed by hand (replicas 5, want 3); restored"]);
    expect(calls).toEqual([{ verb: "apply", kind: "LeaderWorkerSet", name: "wide-ep" }]);
    told.length = 0;
    calls.length = 0;
    await applyWideEP(kube, plan({}), log, read(applied), (m) => told.push(m));
    expect(told).toEqual([]);
    expect(calls).toEqual([]);
  });

  it("returns no error when every write succeeds", async () => {
    const { kube, calls } = writer(new Set());
    expect(await applyWideEP(kube, plan({ moves: moves(["wide-ep-0"]) }), log)).toEqual([]);
    expect(calls.map((c) => c.verb)).toEqual(["patch", "apply"]);
  });
});
