// PullRequestSync against the local GitHub API server (real git repository on
// disk, every request and response checked against GitHub's OpenAPI description).
// No control plane: the deployment and its decisions are given directly; a
// fake clock drives the windows.
import { execFile } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { promisify } from "node:util";
import { Octokit } from "@octokit/rest";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { parseMoEDeployment } from "../../src/api/parse.ts";
import type { MoEDeployment } from "../../src/api/schema.ts";
import type { BoundObservation } from "../../src/domain/gitops/index.ts";
import { PullRequestSync, type GitOpsCondition, type ProposalInputs } from "../../src/gitops/sync.ts";
import { renderPlacementFile, type PlacementCandidate } from "../../src/domain/gitops/index.ts";
import { createForecastState, observeLoadSeries, type ForecastState } from "../../src/domain/prewarm/forecast.ts";
import { planPlacement } from "../../src/domain/placement/plan.ts";
import { placementToSglang } from "../../src/domain/placement/sglang.ts";
import { createRootLogger } from "../../src/observability/logger.ts";
import { FakeClock } from "../../src/runtime/clock.ts";
import { startFakeGitHub, type FakeGitHub } from "../../src/testing/github/server.ts";
import { waitFor } from "../../src/testing/http-probe.ts";
import { testMoEDeployment } from "../support/moe-fixtures.ts";

const execFileAsync = promisify(execFile);
const PATH = "clusters/prod/tiny.yaml";
const BRANCH = "moe-operator/default-tiny";
const MANIFEST = `# Reviewed by the platform team.
apiVersion: moe.dev/v1alpha1
kind: MoEDeployment
metadata:
  name: tiny
  namespace: default
spec:
  mode: PullRequest
  scaling:
    minShards: 4 # every expert has a slot
    maxShards: 6 # raise only with a reviewed PR
`;

let dir: string;
let gh: FakeGitHub;
let clock: FakeClock;
let logLines: string[];
let events: string[];
let requeued: number;
let secrets: Map<string, Record<string, string>>;

function deployment(over: Record<string, unknown> = {}): MoEDeployment {
  const o = testMoEDeployment("tiny", "default", { maxShards: 6 }) as {
    spec: Record<string, unknown>;
    metadata: Record<string, unknown>;
  };
  o.metadata.uid = "uid-1";
  o.spec.mode = "PullRequest";
  o.spec.gitops = {
    repository: `${gh.owner}/${gh.repo}`,
    path: PATH,
    apiUrl: gh.url,
    credentials: { tokenSecretRef: { name: "gh" } },
    learningWindowSeconds: 0,
    raiseAfterSeconds: 60,
    pullRequests: { hourlyLimit: 3 },
    ...over,
  };
  const r = parseMoEDeployment(o);
  if (!r.ok) throw new Error(JSON.stringify(r.issues));
  return r.value;
}

const atMax = (nowMs: number, required = 9): BoundObservation => ({
  nowMs,
  desiredShards: 6,
  observedP99Ms: 180,
  targetMs: 100,
  maxBoundRequiredShards: required,
  metricsHeld: false,
  gpus: 7,
  usdPerHour: 14,
  reason: "AtMaxGpus",
  message: `the SLO needs ${required} GPUs but maxGpus is 6`,
});

function newSync(): PullRequestSync {
  const sink = new Writable({
    write(chunk, _e, cb) {
      logLines.push(...String(chunk).split("\n").filter(Boolean));
      cb();
    },
  });
  return new PullRequestSync({
    readSecret: async (ns, name) => secrets.get(`${ns}/${name}`),
    event: async (_d, type, reason, message) => {
      events.push(`${type} ${reason} ${message}`);
    },
    requeue: () => {
      requeued++;
    },
    canWrite: () => true,
    clock,
    logger: createRootLogger({ level: "debug", destination: sink }),
    allowedApiUrls: [gh.url],
    client: { retryBaseMs: 5 },
  });
}

/** SLO met, maxShards approached: no bound to propose. */
const calm = (nowMs: number): BoundObservation => ({
  ...atMax(nowMs),
  desiredShards: 5,
  observedP99Ms: 60,
  maxBoundRequiredShards: undefined,
  reason: "SLOTarget",
  message: "",
});

/** Observes every 10 s of fake time from `fromMs` to `toMs`; returns the last condition. */
function feed(
  sync: PullRequestSync,
  d: MoEDeployment,
  fromMs: number,
  toMs: number,
  required = 9,
  inputs: ProposalInputs = {},
  observation: (t: number, required: number) => BoundObservation = atMax,
): GitOpsCondition {
  let c: GitOpsCondition | undefined;
  for (let t = fromMs; t <= toMs; t += 10_000) {
    setTime(t);
    c = sync.observe(d, observation(t, required), inputs);
  }
  return c!;
}

async function settle(
  sync: PullRequestSync,
  d: MoEDeployment,
  o: BoundObservation,
  pred: (c: GitOpsCondition) => boolean,
  inputs: ProposalInputs = {},
): Promise<GitOpsCondition> {
  let last: GitOpsCondition | undefined;
  return waitFor(
    "GitOpsSynced",
    async () => {
      last = sync.observe(d, o, inputs);
      return pred(last) ? last : undefined;
    },
    { timeoutMs: 30_000, intervalMs: 50, onTimeout: () => JSON.stringify(last) },
  );
}

const setTime = (ms: number) => clock.advance(ms - clock.nowMs());

const DAY = 86_400_000;
const MIN = 60_000;
const T0 = Date.UTC(2026, 10, 2);
/** `days` days of 10-minute buckets at 4000 tok/s with `peak` tok/s from 09:00 to 10:00 UTC. */
function dailyPeakHistory(days: number, peak = 12_000): ForecastState {
  const points: { atMs: number; tokensPerSecond: number }[] = [];
  for (let d = 0; d < days; d++)
    for (let m = 0; m < 1440; m += 10)
      points.push({ atMs: T0 + d * DAY + m * MIN, tokensPerSecond: m >= 540 && m < 600 ? peak : 4_000 });
  points.push({ atMs: T0 + days * DAY, tokensPerSecond: 4_000 });
  return observeLoadSeries(createForecastState(), points);
}

const SKEWED = [
  [40, 10, 10, 5, 5, 5, 5, 5, 5, 5],
  [5, 5, 40, 10, 10, 5, 5, 5, 5, 5],
];
/** The placement the planner makes for `heat` on 4 GPUs of 3 slots (one dense layer before the MoE layers). */
function candidate(heat: number[][]): PlacementCandidate {
  const gpus = Array.from({ length: 4 }, (_, i) => ({ gpuId: `shard-${i}`, nodeName: `n${i % 2}`, slotCount: 3 }));
  const out = planPlacement({ heat, gpus, policy: { maxMoveFraction: 1, minBalancednessGain: 0 } });
  if (out.kind !== "planned") throw new Error(out.kind);
  const map = placementToSglang(out.placement, { denseLayerCount: 1 });
  if (!map.ok) throw new Error(map.reason);
  return {
    map: map.value.physical_to_logical_map,
    placement: out.placement,
    heat,
    balancedness: out.metrics.balancedness,
    denseLayers: 1,
  };
}

async function readPr(n: number) {
  return (
    await new Octokit({ auth: gh.token, baseUrl: gh.url }).rest.pulls.get({
      owner: gh.owner,
      repo: gh.repo,
      pull_number: n,
    })
  ).data;
}
const git = async (...args: string[]) => (await execFileAsync("git", ["-C", gh.repoDir, ...args])).stdout;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "gitops-sync-"));
  gh = await startFakeGitHub({ dir, files: { [PATH]: MANIFEST } });
  clock = new FakeClock(1_000_000);
  logLines = [];
  events = [];
  requeued = 0;
  secrets = new Map([["default/gh", { token: gh.token }]]);
});

afterEach(async () => {
  await gh?.close();
  await rm(dir, { recursive: true, force: true });
});

describe("PullRequestSync", () => {
  it("opens one pull request raising maxShards after the sustained window, with evidence, and then writes nothing while the world is constant", async () => {
    const sync = newSync();
    const d = deployment();
    expect(feed(sync, d, 1_000_000, 1_050_000).reason).toBe("NoChangeProposed");
    expect(gh.requests).toHaveLength(0);
    feed(sync, d, 1_060_000, 1_060_000);
    const c = await settle(sync, d, atMax(1_060_000), (x) => x.reason !== "NoChangeProposed");
    expect(c).toMatchObject({ type: "GitOpsSynced", status: "True", reason: "PullRequestOpen" });
    expect(c.message).toContain("moe-operator: default/tiny: maxShards 6 -> 9");

    const onBranch = await git("show", `${BRANCH}:${PATH}`);
    expect(onBranch).toBe(MANIFEST.replace("maxShards: 6 #", "maxShards: 9 #"));
    expect((await git("log", "-1", "--format=%s", BRANCH)).trim()).toBe("moe-operator: default/tiny: maxShards 6 -> 9");
    expect(requeued).toBeGreaterThan(0); // the reconciler is asked to publish the new condition
    const prs = gh.requests.filter((r) => r.operationId === "pulls/create");
    expect(prs).toHaveLength(1);
    expect(events.some((e) => e.startsWith("Normal PullRequestOpened ") && e.includes("/pull/1"))).toBe(true);
    const pr = (
      await new Octokit({ auth: gh.token, baseUrl: gh.url }).rest.pulls.get({
        owner: gh.owner,
        repo: gh.repo,
        pull_number: 1,
      })
    ).data;
    expect(pr.title).toBe("moe-operator: default/tiny: maxShards 6 -> 9");
    expect(pr.head.ref).toBe(BRANCH);
    expect(pr.body).toContain(
      "| `spec.scaling.maxShards` | 6 | 9 | SLOMet was False at maxShards=6 for 60 s; the SLO needed up to 9 shards |",
    );
    expect(pr.body).toContain("| 180.0 ms | 100 ms | 7 | 14.00 | 60 s |");
    expect(pr.body).toContain("`AtMaxGpus`: the SLO needs 9 GPUs but maxGpus is 6");
    expect(gh.violations).toEqual([]);

    const before = gh.requests.length;
    feed(sync, d, 1_070_000, 1_500_000);
    await new Promise((r) => setTimeout(r, 300));
    expect(gh.requests.length).toBe(before);

    // A restarted operator finds the same content on the branch: no commit, no second pull request.
    const restarted = newSync();
    feed(restarted, d, 1_600_000, 1_660_000);
    await settle(restarted, d, atMax(1_660_000), (x) => x.reason === "PullRequestOpen");
    const after = gh.requests.slice(before);
    expect(
      after
        .filter(
          (r) =>
            r.operationId === "repos/create-or-update-file-contents" ||
            r.operationId === "pulls/create" ||
            r.operationId?.startsWith("git/"),
        )
        .filter((r) => r.method !== "GET"),
    ).toEqual([]);
  });

  it("updates the same pull request when the proposal grows, within the hourly limit, and never opens a second", async () => {
    const sync = newSync();
    const d = deployment({ pullRequests: { hourlyLimit: 2 } });
    feed(sync, d, 1_000_000, 1_060_000);
    await settle(sync, d, atMax(1_060_000), (x) => x.reason === "PullRequestOpen");
    feed(sync, d, 1_070_000, 1_080_000, 12);
    const c2 = await settle(
      sync,
      d,
      atMax(1_080_000, 12),
      (x) => x.reason === "PullRequestOpen" && x.message.includes("6 -> 12"),
    );
    expect(c2.message).toContain("/pull/1:");
    expect(await git("show", `${BRANCH}:${PATH}`)).toContain("maxShards: 12 # raise only");
    // A third change within the hour is held back by hourlyLimit=2.
    feed(sync, d, 1_090_000, 1_100_000, 20);
    const c3 = await settle(sync, d, atMax(1_100_000, 20), (x) => x.reason === "PullRequestLimited");
    expect(c3).toMatchObject({ status: "False" });
    expect(c3.message).toContain("spec.gitops.pullRequests.hourlyLimit");
    expect(await git("show", `${BRANCH}:${PATH}`)).toContain("maxShards: 12 #");
    // After the hour it goes through, to the same pull request.
    setTime(1_100_000 + 3_600_000);
    const c4 = await settle(
      sync,
      d,
      atMax(clock.nowMs(), 20),
      (x) => x.reason === "PullRequestOpen" && x.message.includes("6 -> 20"),
    );
    expect(c4.message).toContain("/pull/1:");
    expect(gh.requests.filter((r) => r.operationId === "pulls/create")).toHaveLength(1);
    expect(gh.violations).toEqual([]);
  });

  it("a restarted operator continues the windows and the hourly limit from status.gitops: no burst of commits", async () => {
    const sync = newSync();
    const d = deployment({ pullRequests: { hourlyLimit: 2 } });
    feed(sync, d, 1_000_000, 1_030_000);
    const mid = sync.statusOf(d)!;
    expect(mid.trackingSince).toBe(new Date(1_000_000).toISOString());
    expect(mid.atMaxSince).toBe(new Date(1_000_000).toISOString());
    // Restart half-way through the raise window: the window is not forgotten (due at 1_060_000, not 1_090_000).
    const second = newSync();
    const d2 = { ...d, status: { gitops: mid } };
    feed(second, d2, 1_040_000, 1_060_000);
    await settle(second, d2, atMax(1_060_000), (x) => x.reason === "PullRequestOpen");
    feed(second, d2, 1_070_000, 1_080_000, 12);
    await settle(second, d2, atMax(1_080_000, 12), (x) => x.message.includes("6 -> 12"));
    const saved = second.statusOf(d2)!;
    expect(saved.commitTimes).toHaveLength(2);
    expect(saved.pullRequestUrl).toMatch(/\/pull\/1$/);
    const commits = () => gh.requests.filter((r) => r.operationId === "repos/create-or-update-file-contents").length;
    expect(commits()).toBe(2);

    // Another restart within the hour: the two commits of the hour are remembered, a third change waits.
    const third = newSync();
    const d3 = { ...d, status: { gitops: saved } };
    feed(third, d3, 1_090_000, 1_100_000, 20);
    const c = await settle(third, d3, atMax(1_100_000, 20), (x) => x.reason === "PullRequestLimited");
    expect(c.message).toContain("2 commits in the last hour");
    expect(commits()).toBe(2);
    expect(gh.requests.filter((r) => r.operationId === "pulls/create")).toHaveLength(1);
    expect(gh.violations).toEqual([]);
  });

  it("proposes a pre-warm schedule learned from a recurring daily peak, with its evidence, once", async () => {
    const now = T0 + 3 * DAY + 60 * MIN;
    setTime(now);
    const sync = newSync();
    const d = deployment();
    const inputs = { forecast: dailyPeakHistory(3), tokensPerShard: 2_000 };
    for (let t = now; t <= now + 30_000; t += 10_000) {
      setTime(t);
      sync.observe(d, calm(t), inputs);
    }
    const c = await settle(sync, d, calm(clock.nowMs()), (x) => x.reason === "PullRequestOpen", inputs);
    expect(c.message).toContain("moe-operator: default/tiny: prewarm learned-0900 09:00 UTC 60 min 6 shards");
    expect(await git("show", `${BRANCH}:${PATH}`)).toBe(
      `${MANIFEST}  prewarm:
    schedules:
      - name: learned-0900
        start: "0 9 * * *"
        durationMinutes: 60
        minShards: 6
        timeZone: UTC
`,
    );
    const pr = await readPr(1);
    expect(pr.body).toContain(
      "| `learned-0900` (new) | 09:00 | 60 min | 6 | 3 | 12000 tok/s (base 4000) | pods start 5 s before |",
    );
    // A constant world (and a small drift of the per-shard load) writes nothing more.
    const before = gh.requests.length;
    for (let t = clock.nowMs(); t <= now + 600_000; t += 10_000) {
      setTime(t);
      sync.observe(d, calm(t), { ...inputs, tokensPerShard: 2_000 + (t % 3) * 50 });
    }
    await new Promise((r) => setTimeout(r, 300));
    expect(gh.requests.length).toBe(before);
    // Merged and applied: the cluster's spec holds the entry, nothing is left to propose.
    const merged = {
      ...d,
      spec: {
        ...d.spec,
        prewarm: {
          ...d.spec.prewarm,
          schedules: [{ name: "learned-0900", start: "0 9 * * *", durationMinutes: 60, minShards: 6, timeZone: "UTC" }],
        },
      },
    };
    expect(sync.observe(merged, calm(clock.nowMs()), inputs).reason).toBe("NoChangeProposed");
    expect(gh.violations).toEqual([]);
  });

  it("proposes the placement file deterministically, and a new one only for a balancedness gain over it", async () => {
    const sync = newSync();
    const FILE = "engine/tiny-expert-location.json";
    const d = deployment({ placementFile: { path: FILE, minBalancednessGain: 0.05 } });
    const first = candidate(SKEWED);
    feed(sync, d, 1_000_000, 1_020_000, 9, { placement: first }, calm);
    const c = await settle(sync, d, calm(1_020_000), (x) => x.reason === "PullRequestOpen", { placement: first });
    expect(c.message).toContain("moe-operator: default/tiny: expert placement 100% of slots moved");
    const onBranch = await git("show", `${BRANCH}:${FILE}`);
    expect(onBranch).toBe(renderPlacementFile(first.map));
    expect(JSON.parse(onBranch)).toEqual({ physical_to_logical_map: first.map });
    expect(await git("show", `${BRANCH}:${PATH}`)).toBe(MANIFEST); // the manifest is untouched
    expect((await readPr(1)).body).toContain(
      `| 4 | - (another shape, or no file) | ${first.balancedness.toFixed(3)} | 100.0% |`,
    );

    // The same heat again, and a heat whose best plan is barely better: nothing is written.
    const before = gh.requests.length;
    const similar = candidate(SKEWED.map((row) => row.map((v, i) => v + (i === 9 ? 1 : 0))));
    feed(sync, d, 1_030_000, 1_100_000, 9, { placement: similar }, calm);
    await new Promise((r) => setTimeout(r, 300));
    expect(gh.requests.length).toBe(before);

    // The hot experts move: the file in the pull request is replaced (same pull request). The title
    // compares with the base branch, which has no file yet: still "100% moved".
    const shifted = candidate(SKEWED.map((row) => [...row].reverse()));
    feed(sync, d, 1_110_000, 1_120_000, 9, { placement: shifted }, calm);
    await waitFor(
      "the new placement on the branch",
      async () => {
        sync.observe(d, calm(clock.nowMs()), { placement: shifted });
        const text = await git("show", `${BRANCH}:${FILE}`);
        // Both the branch and the request log (the server records a request on arrival).
        const recorded = gh.requests.filter((r) => r.operationId === "repos/create-or-update-file-contents").length;
        return text === renderPlacementFile(shifted.map) && recorded >= 2 ? true : undefined;
      },
      { timeoutMs: 30_000, intervalMs: 100 },
    );
    await settle(sync, d, calm(1_120_000), (x) => x.reason === "PullRequestOpen", { placement: shifted });
    expect(gh.requests.filter((r) => r.operationId === "pulls/create")).toHaveLength(1);
    expect(gh.requests.filter((r) => r.operationId === "repos/create-or-update-file-contents")).toHaveLength(2);
    expect(gh.violations).toEqual([]);
  });

  it("a restarted operator keeps the schedule and the placement file it proposed while it relearns", async () => {
    const now = T0 + 3 * DAY + 60 * MIN;
    setTime(now);
    const FILE = "engine/tiny-expert-location.json";
    const d = deployment({ placementFile: { path: FILE } });
    const first = candidate(SKEWED);
    const inputs = { forecast: dailyPeakHistory(3), tokensPerShard: 2_000, placement: first };
    const sync = newSync();
    feed(sync, d, now, now + 20_000, 9, inputs, calm);
    await settle(sync, d, calm(now + 20_000), (x) => x.reason === "PullRequestOpen", inputs);
    const saved = sync.statusOf(d)!;
    expect(saved.pendingSchedules).toEqual([
      expect.objectContaining({ name: "learned-0900", start: "0 9 * * *", minShards: 6, daysSeen: 3 }),
    ]);
    const placementBefore = await git("show", `${BRANCH}:${FILE}`);

    // Restarted: no forecaster history, the heat drifted a little, and now maxShards holds the SLO back.
    const restarted = newSync();
    const d2 = { ...d, status: { gitops: saved } };
    const drifted = candidate(SKEWED.map((row) => row.map((v, i) => v + (i === 9 ? 1 : 0))));
    const inputs2 = { forecast: createForecastState(), tokensPerShard: 2_000, placement: drifted };
    feed(restarted, d2, now + 30_000, now + 100_000, 9, inputs2);
    await settle(
      restarted,
      d2,
      atMax(now + 100_000),
      (x) => x.reason === "PullRequestOpen" && x.message.includes("maxShards 6 -> 9"),
      inputs2,
    );
    const manifest = await git("show", `${BRANCH}:${PATH}`);
    expect(manifest).toContain("maxShards: 9 #");
    expect(manifest).toContain("- name: learned-0900");
    expect(await git("show", `${BRANCH}:${FILE}`)).toBe(placementBefore);
    expect(restarted.statusOf(d2)!.pendingSchedules).toEqual(saved.pendingSchedules);
    expect(gh.requests.filter((r) => r.operationId === "pulls/create")).toHaveLength(1);
    expect(gh.violations).toEqual([]);
  });

  it("a withdrawn schedule leaves the branch: the branch holds only what the pull request describes", async () => {
    const now = T0 + 3 * DAY + 60 * MIN;
    setTime(now);
    const FILE = "engine/tiny-expert-location.json";
    const d = deployment({ placementFile: { path: FILE } });
    const first = candidate(SKEWED);
    const inputs = { forecast: dailyPeakHistory(3), tokensPerShard: 2_000, placement: first };
    const sync = newSync();
    feed(sync, d, now, now + 20_000, 9, inputs, calm);
    await settle(sync, d, calm(now + 20_000), (x) => x.reason === "PullRequestOpen", inputs);
    expect(await git("show", `${BRANCH}:${PATH}`)).toContain("- name: learned-0900");
    const placement = await git("show", `${BRANCH}:${FILE}`);

    // A flat history: the learned schedule is withdrawn, the placement file stays proposed.
    const flat = { ...inputs, forecast: dailyPeakHistory(4, 4_000) };
    feed(sync, d, now + 30_000, now + 60_000, 9, flat, calm);
    const c = await settle(
      sync,
      d,
      calm(now + 60_000),
      (x) => x.reason === "PullRequestOpen" && !x.message.includes("learned-0900"),
      flat,
    );
    expect(c.message).toContain("expert placement");
    expect(await git("show", `${BRANCH}:${PATH}`)).toBe(MANIFEST);
    expect(await git("show", `${BRANCH}:${FILE}`)).toBe(placement);
    expect((await git("diff", "--name-only", `main...${BRANCH}`)).trim()).toBe(FILE);
    const pr = await readPr(1);
    expect(pr.title).not.toContain("learned-0900");
    expect(pr.body).not.toContain("learned-0900");
    expect(gh.requests.filter((r) => r.operationId === "pulls/create")).toHaveLength(1);
    expect(gh.violations).toEqual([]);
  });

  it("closes the pull request with a comment when every proposal is withdrawn, and opens a new one when a proposal comes back", async () => {
    const now = T0 + 3 * DAY + 60 * MIN;
    setTime(now);
    const sync = newSync();
    const d = deployment();
    const inputs = { forecast: dailyPeakHistory(3), tokensPerShard: 2_000 };
    feed(sync, d, now, now + 20_000, 9, inputs, calm);
    await settle(sync, d, calm(now + 20_000), (x) => x.reason === "PullRequestOpen", inputs);
    expect(sync.statusOf(d)).toMatchObject({
      pullRequestState: "Open",
      pullRequestUrl: expect.stringMatching(/\/pull\/1$/),
    });

    // The peak stops recurring: the learned schedule is withdrawn, nothing is left to propose.
    const flat = { ...inputs, forecast: dailyPeakHistory(4, 4_000) };
    feed(sync, d, now + 30_000, now + 60_000, 9, flat, calm);
    const c = await settle(sync, d, calm(now + 60_000), (x) => x.message.startsWith("closed "), flat);
    expect(c).toMatchObject({ status: "True", reason: "NoChangeProposed" });
    expect(c.message).toMatch(/^closed \S+\/pull\/1: every proposal was withdrawn/);
    expect((await readPr(1)).state).toBe("closed");
    expect((await git("branch", "--list", BRANCH)).trim()).toBe("");
    const comments = gh.comments();
    expect(comments).toHaveLength(1);
    expect(comments[0]!.issueNumber).toBe(1);
    expect(comments[0]!.body).toContain("every change it proposed was withdrawn");
    expect(comments[0]!.body).toContain("`learned-0900` (09:00 UTC) is no longer learned");
    expect(comments[0]!.body).toContain(`The branch \`${BRANCH}\` is deleted`);
    expect(events.filter((e) => e.startsWith("Normal PullRequestClosed"))).toEqual([
      expect.stringMatching(/\/pull\/1: every proposal was withdrawn$/),
    ]);
    expect(sync.statusOf(d)).toMatchObject({ pullRequestState: "Closed" });

    // A constant world writes nothing more.
    const before = gh.requests.length;
    feed(sync, d, now + 70_000, now + 200_000, 9, flat, calm);
    await new Promise((r) => setTimeout(r, 300));
    expect(gh.requests.length).toBe(before);

    // A proposal comes back (the SLO is missed at maxShards): a new pull request.
    feed(sync, d, now + 210_000, now + 270_000, 9, flat);
    const back = await settle(sync, d, atMax(now + 270_000), (x) => x.reason === "PullRequestOpen", flat);
    expect(back.message).toMatch(/\/pull\/2: moe-operator: default\/tiny: maxShards 6 -> 9$/);
    expect(await git("show", `${BRANCH}:${PATH}`)).toBe(MANIFEST.replace("maxShards: 6 #", "maxShards: 9 #"));
    expect((await readPr(2)).state).toBe("open");
    expect(sync.statusOf(d)).toMatchObject({
      pullRequestState: "Open",
      pullRequestUrl: expect.stringMatching(/\/pull\/2$/),
    });
    expect(gh.requests.filter((r) => r.operationId === "pulls/create")).toHaveLength(2);
    expect(gh.violations).toEqual([]);
  });

  it("a raise the cluster now holds is withdrawn: the close is retried after a 5xx, and a restart finishes it", async () => {
    const sync = newSync();
    const d = deployment();
    feed(sync, d, 1_000_000, 1_060_000);
    await settle(sync, d, atMax(1_060_000), (x) => x.reason === "PullRequestOpen");

    // maxShards was raised to 10 in Git and applied: nothing is left to propose. GitHub fails
    // (after the client's 2 retries): the close is retried after the backoff.
    const raised = { ...d, spec: { ...d.spec, scaling: { ...d.spec.scaling, maxShards: 10 } } };
    gh.inject({ kind: "server-error", count: 3 });
    feed(sync, raised, 1_070_000, 1_070_000, 9, {}, calm);
    const failed = await settle(sync, raised, calm(1_070_000), (x) => x.reason === "GitHubError");
    expect(failed.status).toBe("False");
    expect(sync.statusOf(raised)).toMatchObject({ pullRequestState: "Closing" });
    expect((await readPr(1)).state).toBe("open");

    // The operator restarts before the retry: the new process finishes the close from status.gitops.
    const saved = sync.statusOf(raised)!;
    const restarted = newSync();
    const d2 = { ...raised, status: { gitops: saved } };
    setTime(1_080_000);
    const c = await settle(restarted, d2, calm(1_080_000), (x) => x.message.startsWith("closed "));
    expect(c.message).toMatch(/\/pull\/1: every proposal was withdrawn/);
    expect((await readPr(1)).state).toBe("closed");
    expect((await git("branch", "--list", BRANCH)).trim()).toBe("");
    expect(restarted.statusOf(d2)).toMatchObject({ pullRequestState: "Closed" });
    // GitHub failed the first process's close at its first request: one comment, by the restarted
    // process, which does not know the reasons (they were in the first one's memory).
    expect(gh.comments()).toHaveLength(1);
    expect(gh.comments()[0]!.body).toContain("every change it proposed was withdrawn");
    // The first process retries after its backoff: nothing is open, nothing is written.
    const writes = () => gh.requests.filter((r) => r.method !== "GET").length;
    const before = writes();
    setTime(1_080_000 + 600_000);
    await settle(
      sync,
      raised,
      calm(clock.nowMs()),
      (x) => x.reason === "NoChangeProposed" && x.message.includes("no pull request"),
    );
    expect(writes()).toBe(before);
    expect(gh.violations).toEqual([]);
  });

  it("closes the pull request when the base branch already holds what a changed proposal would write", async () => {
    const sync = newSync();
    const d = deployment();
    feed(sync, d, 1_000_000, 1_060_000);
    await settle(sync, d, atMax(1_060_000), (x) => x.reason === "PullRequestOpen");
    // Someone writes maxShards: 12 to the base branch directly (not yet applied to the cluster),
    // and the SLO now needs 12: the proposal changes, but the base already holds it.
    await gh.commitToBase({ [PATH]: MANIFEST.replace("maxShards: 6 #", "maxShards: 12 #") }, "by hand");
    feed(sync, d, 1_070_000, 1_080_000, 12);
    const c = await settle(sync, d, atMax(1_080_000, 12), (x) => x.message.startsWith("closed "));
    expect(c).toMatchObject({ status: "True", reason: "NoChangeProposed" });
    expect(c.message).toMatch(/\/pull\/1: main of \S+ already holds the proposal$/);
    expect((await readPr(1)).state).toBe("closed");
    expect((await git("branch", "--list", BRANCH)).trim()).toBe("");
    expect(gh.comments().map((x) => x.body)).toEqual([
      expect.stringContaining("the base branch `main` already holds what it proposed"),
    ]);
    expect(sync.statusOf(d)).toMatchObject({ pullRequestState: "Closed" });
    expect(gh.violations).toEqual([]);
  });

  it("close cancels a sync running in the background and waits for it: no pull request outlives the deletion", async () => {
    const sync = newSync();
    const d = deployment();
    feed(sync, d, 1_000_000, 1_060_000); // the last decision starts a sync in the background
    expect(requeued).toBe(0);
    expect(await sync.close(d, "the MoEDeployment was deleted")).toEqual({ ok: true });
    // The background sync has settled (it requeues the key when it ends, cancelled or not).
    await waitFor("the sync settled", async () => (requeued > 0 ? true : undefined), {
      timeoutMs: 20_000,
      intervalMs: 50,
    });
    const open = await new Octokit({ auth: gh.token, baseUrl: gh.url }).rest.pulls.list({
      owner: gh.owner,
      repo: gh.repo,
      state: "open",
    });
    expect(open.data).toEqual([]);
    expect((await git("branch", "--list", BRANCH)).trim()).toBe("");
    expect(events.filter((e) => e.startsWith("Warning"))).toEqual([]);
    expect(gh.violations).toEqual([]);
  });

  it("close makes one attempt, bounded by its signal: no retry of a 5xx, no rate-limit wait", async () => {
    const sync = newSync();
    const d = deployment();
    feed(sync, d, 1_000_000, 1_060_000);
    await settle(sync, d, atMax(1_060_000), (x) => x.reason === "PullRequestOpen");
    const lists = () => gh.requests.filter((r) => r.operationId === "pulls/list").length;

    const before = lists();
    gh.inject({ kind: "server-error", count: 1 });
    const failed = await sync.close(d, "the MoEDeployment was deleted", AbortSignal.timeout(30_000));
    expect(failed.ok).toBe(false);
    expect(lists()).toBe(before + 1); // the finalizer retries, not the client

    gh.inject({ kind: "secondary-rate-limit", retryAfterS: 30, count: 1 });
    const limited = await sync.close(d, "the MoEDeployment was deleted", AbortSignal.timeout(30_000));
    expect(limited).toMatchObject({ ok: false, problem: expect.stringMatching(/HTTP 403/) });
    expect(lists()).toBe(before + 2);

    const late = AbortSignal.abort();
    expect(await sync.close(d, "the MoEDeployment was deleted", late)).toMatchObject({ ok: false });
    expect(lists()).toBe(before + 2);

    expect(await sync.close(d, "the MoEDeployment was deleted", AbortSignal.timeout(30_000))).toEqual({ ok: true });
    expect((await readPr(1)).state).toBe("closed");
    expect((await git("branch", "--list", BRANCH)).trim()).toBe("");
  });

  it("recovers from 5xx and a secondary rate limit, and reports a revoked token as AuthFailed without logging it", async () => {
    const sync = newSync();
    const d = deployment();
    gh.inject({ kind: "server-error", count: 2 });
    gh.inject({ kind: "secondary-rate-limit", retryAfterS: 1, count: 1 });
    feed(sync, d, 1_000_000, 1_060_000);
    const c = await settle(sync, d, atMax(1_060_000), (x) => x.reason === "PullRequestOpen");
    expect(c.status).toBe("True");
    expect(gh.requests.some((r) => r.status >= 500)).toBe(true);
    expect(gh.requests.some((r) => r.status === 403)).toBe(true);

    gh.inject({ kind: "revoke-token" });
    feed(sync, d, 1_070_000, 1_080_000, 15);
    const bad = await settle(sync, d, atMax(1_080_000, 15), (x) => x.reason === "AuthFailed");
    expect(bad.status).toBe("False");
    expect(bad.message).toMatch(/HTTP 401/);
    expect(events.some((e) => e.startsWith("Warning AuthFailed"))).toBe(true);
    expect(logLines.length).toBeGreaterThan(0);
    for (const line of [...logLines, ...events, bad.message]) expect(line).not.toContain(gh.token);
  });

  it("names the missing Secret, and closes the pull request and deletes the branch when the mode leaves PullRequest", async () => {
    secrets.clear();
    const sync = newSync();
    const d = deployment();
    feed(sync, d, 1_000_000, 1_060_000);
    const noSecret = await settle(sync, d, atMax(1_060_000), (x) => x.reason === "AuthFailed");
    expect(noSecret.message).toContain("spec.gitops.credentials.tokenSecretRef: Secret default/gh does not exist");

    secrets.set("default/gh", { token: gh.token });
    setTime(clock.nowMs() + 600_000);
    await settle(sync, d, atMax(clock.nowMs()), (x) => x.reason === "PullRequestOpen");
    expect((await git("branch", "--list", BRANCH)).trim()).not.toBe("");

    const auto = { ...d, spec: { ...d.spec, mode: "Auto" as const } };
    sync.retire(auto);
    await waitFor(
      "branch deleted",
      async () => ((await git("branch", "--list", BRANCH)).trim() === "" ? true : undefined),
      { timeoutMs: 20_000, intervalMs: 100 },
    );
    expect(gh.requests.filter((r) => r.operationId === "pulls/update").length).toBeGreaterThan(0);
    expect(events.some((e) => e.startsWith("Normal PullRequestClosed"))).toBe(true);
    expect(gh.violations).toEqual([]);
  });

  it("authenticates as a GitHub App installation, rebases the branch when the base moved, and closes the pull request when the MoEDeployment is deleted", async () => {
    secrets.set("default/app-key", { "private-key": gh.app.privateKeyPem });
    const t0 = Date.now(); // the server checks the JWT against the wall clock, as GitHub does
    setTime(t0);
    const sync = newSync();
    const d = deployment({
      credentials: {
        githubApp: {
          appId: gh.app.appId,
          installationId: gh.app.installationId,
          privateKeySecretRef: { name: "app-key" },
        },
      },
    });
    feed(sync, d, t0, t0 + 60_000);
    await settle(sync, d, atMax(t0 + 60_000), (x) => x.reason === "PullRequestOpen");
    expect(gh.requests.filter((r) => r.operationId === "apps/create-installation-access-token")).toHaveLength(1);
    expect(
      gh.requests
        .filter((r) => r.operationId === "pulls/create")
        .map((r) => r.authorization?.split(" ")[0]?.toLowerCase()),
    ).toEqual(["token"]);

    // Someone pushes to the base branch; the next update restarts the branch from the new base.
    const moved = await gh.commitToBase({ "README.md": "hello\n" }, "docs");
    feed(sync, d, t0 + 70_000, t0 + 80_000, 14);
    await settle(
      sync,
      d,
      atMax(t0 + 80_000, 14),
      (x) => x.reason === "PullRequestOpen" && x.message.includes("6 -> 14"),
    );
    expect((await git("rev-parse", `${BRANCH}~1`)).trim()).toBe(moved);
    expect(await git("show", `${BRANCH}:${PATH}`)).toBe(MANIFEST.replace("maxShards: 6 #", "maxShards: 14 #"));
    expect(gh.requests.filter((r) => r.operationId === "apps/create-installation-access-token")).toHaveLength(1); // cached

    expect(await sync.close(d, "the MoEDeployment was deleted")).toEqual({ ok: true });
    await waitFor(
      "branch deleted",
      async () => ((await git("branch", "--list", BRANCH)).trim() === "" ? true : undefined),
      { timeoutMs: 20_000, intervalMs: 100 },
    );
    const pr = (
      await new Octokit({ auth: gh.token, baseUrl: gh.url }).rest.pulls.get({
        owner: gh.owner,
        repo: gh.repo,
        pull_number: 1,
      })
    ).data;
    expect(pr.state).toBe("closed");
    // Known defect of the local server (not of the operator's requests): the URLs of an App's bot user
    // (login "slug[bot]") are not valid URIs in its responses (src/testing/github/shapes.ts).
    expect(
      gh.violations.filter((v) => !/^\S+ \S+ \(pulls\/\S+\) -> 20\d: response 20\d: (\/0)?\/user\//.test(v)),
    ).toEqual([]);
  });
});
