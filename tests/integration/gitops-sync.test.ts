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
import { PullRequestSync, type GitOpsCondition } from "../../src/gitops/sync.ts";
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

/** Observes every 10 s of fake time from `fromMs` to `toMs`; returns the last condition. */
function feed(sync: PullRequestSync, d: MoEDeployment, fromMs: number, toMs: number, required = 9): GitOpsCondition {
  let c: GitOpsCondition | undefined;
  for (let t = fromMs; t <= toMs; t += 10_000) {
    setTime(t);
    c = sync.observe(d, atMax(t, required));
  }
  return c!;
}

async function settle(
  sync: PullRequestSync,
  d: MoEDeployment,
  o: BoundObservation,
  pred: (c: GitOpsCondition) => boolean,
): Promise<GitOpsCondition> {
  let last: GitOpsCondition | undefined;
  return waitFor(
    "GitOpsSynced",
    async () => {
      last = sync.observe(d, o);
      return pred(last) ? last : undefined;
    },
    { timeoutMs: 30_000, intervalMs: 50, onTimeout: () => JSON.stringify(last) },
  );
}

const setTime = (ms: number) => clock.advance(ms - clock.nowMs());
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
