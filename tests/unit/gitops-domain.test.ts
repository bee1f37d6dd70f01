// GitOps proposals as pure functions: when a bound is proposed, how pending
// proposals are kept or replaced, and how the manifest is edited in place.
import { describe, expect, it } from "vitest";
import {
  branchName,
  editManifest,
  observeBounds,
  proposeBounds,
  pullRequestBody,
  pullRequestTitle,
  readManifestValues,
  withdrawalComment,
  withdrawalReasons,
  type BoundObservation,
  type BoundTrack,
  type Bounds,
  type Proposal,
  type ProposalSettings,
} from "../../src/domain/gitops/index.ts";

const bounds: Bounds = { minShards: 4, maxShards: 8, maxUsdPerHour: 40, coverageShards: 2 };
const settings: ProposalSettings = {
  minChangePercent: 10,
  learningWindowMs: 0,
  raiseAfterMs: 60_000,
  lowerAfterMs: 600_000,
};
const obs = (nowMs: number, over: Partial<BoundObservation> = {}): BoundObservation => ({
  nowMs,
  desiredShards: 8,
  observedP99Ms: 150,
  targetMs: 100,
  maxBoundRequiredShards: 11,
  metricsHeld: false,
  gpus: 9,
  usdPerHour: 18,
  reason: "AtMaxGpus",
  message: "the SLO needs 11 GPUs but maxGpus is 8",
  ...over,
});

function run(samples: BoundObservation[], b: Bounds = bounds): BoundTrack {
  let t: BoundTrack | undefined;
  for (const o of samples) t = observeBounds(t, b, o);
  return t!;
}
const every10s = (fromMs: number, toMs: number, over: Partial<BoundObservation> = {}) =>
  Array.from({ length: Math.floor((toMs - fromMs) / 10_000) + 1 }, (_, i) => obs(fromMs + i * 10_000, over));

describe("proposeBounds", () => {
  it("raises maxShards only after SLOMet=False at the bound for the whole raise window", () => {
    expect(proposeBounds(bounds, run(every10s(0, 50_000)), settings, 50_000, undefined)).toBeUndefined();
    const p = proposeBounds(bounds, run(every10s(0, 60_000)), settings, 60_000, undefined)!;
    expect(p.changes).toEqual([expect.objectContaining({ field: "maxShards", from: 8, to: 11 })]);
    expect(p.evidence).toMatchObject({
      observedP99Ms: 150,
      targetMs: 100,
      gpus: 9,
      usdPerHour: 18,
      timeAtBoundMs: 60_000,
      decisionReason: "AtMaxGpus",
    });
  });

  it("restarts the window when the SLO is met in between, and learns nothing while metrics are held", () => {
    const broken = run([...every10s(0, 30_000), obs(40_000, { observedP99Ms: 90 }), ...every10s(50_000, 100_000)]);
    expect(proposeBounds(bounds, broken, settings, 100_000, undefined)).toBeUndefined();
    const held = run(every10s(0, 200_000, { metricsHeld: true }));
    expect(proposeBounds(bounds, held, settings, 200_000, undefined)).toBeUndefined();
  });

  it("waits for the learning window and ignores changes below minChangePercent", () => {
    const t = run(every10s(0, 120_000));
    expect(proposeBounds(bounds, t, { ...settings, learningWindowMs: 300_000 }, 120_000, undefined)).toBeUndefined();
    expect(proposeBounds(bounds, t, { ...settings, minChangePercent: 50 }, 120_000, undefined)).toBeUndefined();
  });

  it("keeps a pending proposal (same object) until the cluster takes it, and replaces it only by a big enough change", () => {
    const t = run(every10s(0, 60_000));
    const p = proposeBounds(bounds, t, settings, 60_000, undefined)!;
    expect(proposeBounds(bounds, run(every10s(0, 120_000)), settings, 120_000, p)).toBe(p);
    // Needs 11.5 -> 12 shards: 12 vs 11 is below 10%: kept.
    expect(proposeBounds(bounds, run(every10s(0, 120_000, { maxBoundRequiredShards: 12 })), settings, 120_000, p)).toBe(
      p,
    );
    const bigger = proposeBounds(
      bounds,
      run(every10s(0, 120_000, { maxBoundRequiredShards: 14 })),
      settings,
      120_000,
      p,
    )!;
    expect(bigger).not.toBe(p);
    expect(bigger.changes).toEqual([expect.objectContaining({ field: "maxShards", from: 8, to: 14 })]);
    // Merged and applied: nothing left to propose.
    const merged = { ...bounds, maxShards: 14 };
    expect(
      proposeBounds(
        merged,
        run(every10s(0, 30_000, { observedP99Ms: 80, maxBoundRequiredShards: undefined, desiredShards: 9 }), merged),
        settings,
        30_000,
        bigger,
      ),
    ).toBeUndefined();
  });

  it("lowers maxShards and minShards when the bounds were not approached for lowerAfter", () => {
    const quiet = { observedP99Ms: 60, maxBoundRequiredShards: undefined, desiredShards: 4, sloShards: 3 };
    const t = run(every10s(0, 600_000, quiet));
    const p = proposeBounds(bounds, t, settings, 600_000, undefined)!;
    expect(p.changes).toEqual([
      expect.objectContaining({ field: "maxShards", from: 8, to: 5 }),
      expect.objectContaining({ field: "minShards", from: 4, to: 3 }),
    ]);
    // Approaching maxShards (80%) restarts the window.
    const approached = run([
      ...every10s(0, 300_000, quiet),
      obs(310_000, { ...quiet, desiredShards: 7 }),
      ...every10s(320_000, 600_000, quiet),
    ]);
    expect(proposeBounds(bounds, approached, settings, 600_000, undefined)).toBeUndefined();
  });

  it("raises the budget after SLOMet=False held back by it", () => {
    const t = run(every10s(0, 60_000, { maxBoundRequiredShards: undefined, budgetRequiredUsdPerHour: 55.123 }));
    const p = proposeBounds(bounds, t, settings, 60_000, undefined)!;
    expect(p.changes).toEqual([expect.objectContaining({ field: "maxUsdPerHour", from: 40, to: 55.13 })]);
  });
});

const MANIFEST = `# Production DeepSeek deployment
apiVersion: v1
kind: ConfigMap
metadata:
  name: tiny
---
apiVersion: moe.dev/v1alpha1
kind: MoEDeployment
metadata:
  name: tiny   # the name
spec:
  mode: PullRequest
  scaling:
    # floor for coverage
    minShards: 4
    maxShards: 8 # reviewed 2026-11
  cost: {maxUsdPerHour: 40, defaultUsdPerGpuHour: 2}
`;

describe("editManifest", () => {
  const target = { name: "tiny", namespace: "default" };
  it("replaces only the values, keeping comments, order, flow style and the other documents", () => {
    const r = editManifest(MANIFEST, "prod/tiny.yaml", target, { maxShards: 11, maxUsdPerHour: 55.13 });
    expect(r.ok && r.changed).toBe(true);
    if (!r.ok) return;
    expect(r.text).toBe(
      MANIFEST.replace("maxShards: 8 #", "maxShards: 11 #").replace("maxUsdPerHour: 40,", "maxUsdPerHour: 55.13,"),
    );
    expect(readManifestValues(r.text, target)).toEqual({ minShards: 4, maxShards: 11, maxUsdPerHour: 55.13 });
    const again = editManifest(r.text, "prod/tiny.yaml", target, { maxShards: 11, maxUsdPerHour: 55.13 });
    expect(again).toEqual({ ok: true, text: r.text, changed: false });
  });

  it("names the file and the field when it cannot edit", () => {
    expect(editManifest("a: [", "x.yaml", target, { maxShards: 3 })).toMatchObject({
      ok: false,
      problem: expect.stringMatching(/^x\.yaml is not valid YAML/),
    });
    expect(editManifest(MANIFEST, "x.yaml", { name: "other", namespace: "default" }, { maxShards: 3 })).toMatchObject({
      ok: false,
      problem: expect.stringContaining("x.yaml holds no MoEDeployment named other"),
    });
    expect(
      editManifest(MANIFEST.replace("maxShards: 8", 'maxShards: "{{ .max }}"'), "x.yaml", target, { maxShards: 3 }),
    ).toMatchObject({
      ok: false,
      problem: expect.stringContaining("spec.scaling.maxShards of MoEDeployment tiny is not a plain number"),
    });
  });
});

describe("pull request text", () => {
  it("titles with the commit's first line and tabulates the evidence", () => {
    const p: Proposal = {
      changes: [{ field: "maxShards", from: 8, to: 11, why: "SLOMet was False | at maxShards" }],
      evidence: {
        atMs: 0,
        observedP99Ms: 150,
        targetMs: 100,
        gpus: 9,
        usdPerHour: 18,
        timeAtBoundMs: 3_600_000,
        decisionReason: "AtMaxGpus",
        decisionMessage: "needs\n11",
      },
    };
    const d = { namespace: "default", name: "tiny" };
    expect(branchName(d)).toBe("moe-operator/default-tiny");
    expect(pullRequestTitle(d, p)).toBe("moe-operator: default/tiny: maxShards 8 -> 11");
    const body = pullRequestBody(d, p, "prod/tiny.yaml");
    expect(body).toContain("| `spec.scaling.maxShards` | 8 | 11 | SLOMet was False \\| at maxShards |");
    expect(body).toContain("| 150.0 ms | 100 ms | 9 | 18.00 | 60 min |");
    expect(body).toContain("`AtMaxGpus`: needs 11");
  });

  it("says why each part of a withdrawn proposal was withdrawn, in the comment that closes its pull request", () => {
    const evidence = { atMs: 0, targetMs: 100, gpus: 9, usdPerHour: 18, decisionReason: "", decisionMessage: "" };
    const entry = (name: string, start: string) => ({
      replaces: undefined,
      entry: { name, start, durationMinutes: 60, minShards: 6, timeZone: "UTC" },
      evidence: { daysSeen: 3, peakTokensPerSecond: 12_000, baseTokensPerSecond: 4_000, leadSeconds: 5 },
      why: "",
    });
    const p: Proposal = {
      changes: [
        { field: "maxShards", from: 8, to: 11, why: "" },
        { field: "maxUsdPerHour", from: 40, to: 52.5, why: "" },
      ],
      evidence,
      schedules: [entry("learned-0900", "0 9 * * *"), entry("learned-1730", "30 17 * * *")],
    };
    const inSpec = [{ name: "learned-0900", start: "0 9 * * *", durationMinutes: 60, minShards: 6 }];
    const reasons = withdrawalReasons(p, { minShards: 4, maxShards: 12 }, inSpec);
    expect(reasons).toEqual([
      "`spec.scaling.maxShards` is 12 in the cluster now (this pull request proposed 8 -> 11)",
      "`spec.cost.maxUsdPerHour` is no longer set in the cluster (this pull request proposed 40 -> 52.50)",
      "`spec.prewarm.schedules` holds `learned-0900` in the cluster now",
      expect.stringMatching(/^`learned-1730` \(17:30 UTC\) is no longer learned: /),
    ]);
    // An entry of the same name with other values in the spec is not the one proposed.
    expect(withdrawalReasons(p, { minShards: 4, maxShards: 12 }, [{ ...inSpec[0]!, minShards: 5 }])[2]).toMatch(
      /^`learned-0900` \(09:00 UTC\) is no longer learned/,
    );
    const comment = withdrawalComment({ namespace: "default", name: "tiny" }, reasons);
    expect(comment.split("\n")[0]).toBe(
      "moe-operator closes this pull request: nothing is left to propose for MoEDeployment `default/tiny`: every change it proposed was withdrawn.",
    );
    expect(comment).toContain("\n- `spec.scaling.maxShards` is 12 in the cluster now");
    expect(comment).toContain("The branch `moe-operator/default-tiny` is deleted.");
    expect(withdrawalComment({ namespace: "default", name: "tiny" }, [])).not.toContain("\n- ");
  });
});
