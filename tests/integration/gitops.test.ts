// Mode PullRequest end to end: the operator binary on a real control plane,
// proposing to the local GitHub API server (a real git repository on disk;
// requests and responses checked against GitHub's OpenAPI description).
// Compressed windows through spec.gitops (learningWindowSeconds 0, raiseAfterSeconds 10).
import { execFile } from "node:child_process";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startCluster, type LocalCluster } from "../../src/testing/cluster.ts";
import type { ManagedProcess } from "../../src/testing/process.ts";
import { startFakeGitHub, type FakeGitHub } from "../../src/testing/github/server.ts";
import { waitFor } from "../../src/testing/http-probe.ts";
import { startOperatorProcess } from "../support/operator-process.ts";
import {
  heatConfigMap,
  skewedHeat,
  testMoEDeployment,
  TEST_DENSE,
  TEST_EXPERTS,
  TEST_LAYERS,
} from "../support/moe-fixtures.ts";
import { renderPlacementFile } from "../../src/domain/gitops/index.ts";
import { applyJson, condition, getJson, moedStatus, waitForStatus } from "../support/kube-helpers.ts";

const execFileAsync = promisify(execFile);
const NAME = "tiny";
const PATH = "clusters/prod/tiny.yaml";
const BRANCH = `moe-operator/default-${NAME}`;
const MANIFEST = `# MoE deployment, reviewed by the platform team
apiVersion: moe.dev/v1alpha1
kind: MoEDeployment
metadata:
  name: ${NAME}
spec:
  mode: PullRequest
  scaling:
    minShards: 4
    maxShards: 5 # raise only through a reviewed pull request
`;

let cluster: LocalCluster;
let operator: ManagedProcess;
let gh: FakeGitHub;
/** An allowed API URL nothing listens on: GitHub unreachable. */
const UNREACHABLE = "http://127.0.0.1:9/api/v3";
const FINALIZER = "moe.dev/gitops-pull-request";
const commits = () => gh.requests.filter((r) => r.operationId === "repos/create-or-update-file-contents").length;
const finalizers = async (name: string) =>
  (await getJson<{ metadata: { finalizers?: string[] } }>(cluster, ["get", "moed", name])).metadata.finalizers ?? [];
const gone = async (name: string) => (await cluster.kubectl(["get", "moed", name, "-o", "name"])).code !== 0;

function startOperator(identity: string): ManagedProcess {
  return startOperatorProcess({
    kubeconfigPath: cluster.kubeconfigPath,
    dir: cluster.dir,
    identity,
    extraArgs: [`--github-allowed-urls=${gh.url},${UNREACHABLE}`],
  });
}

function moed(mode: "PullRequest" | "Auto", latencyMs: number) {
  const o = testMoEDeployment(NAME, "default", { maxShards: 5, latencyMs, targetLatencyMs: 100 }) as {
    spec: Record<string, unknown>;
  };
  o.spec.mode = mode;
  o.spec.gitops = {
    repository: `${gh.owner}/${gh.repo}`,
    path: PATH,
    apiUrl: gh.url,
    credentials: { tokenSecretRef: { name: "github" } },
    learningWindowSeconds: 0,
    raiseAfterSeconds: 10,
    // How many commits the evidence refinements make depends on sample timing; the hourly limit
    // itself is tested with a fake clock in gitops-sync.test.ts.
    pullRequests: { hourlyLimit: 20 },
  };
  return o;
}

const git = async (...args: string[]) => (await execFileAsync("git", ["-C", gh.repoDir, ...args])).stdout;
const gitops = async () => condition(await moedStatus(cluster, NAME), "GitOpsSynced");

beforeAll(async () => {
  cluster = await startCluster({
    name: "gitops",
    gpuNodes: [
      {
        pool: "h100",
        count: 1,
        gpusPerNode: 8,
        gpuProduct: "NVIDIA-H100-80GB-HBM3",
        gpuMemoryMiB: 81559,
        priceUsdPerGpuHour: 2,
      },
    ],
  });
  gh = await startFakeGitHub({ dir: join(cluster.dir, "github"), files: { [PATH]: MANIFEST } });
  const crd = await cluster.kubectl(["apply", "--server-side", "-f", "crds/"]);
  expect(crd.code, crd.stderr).toBe(0);
  await cluster.kubectl(["wait", "--for=condition=Established", "crd/moedeployments.moe.dev", "--timeout=30s"]);
  const secret = await cluster.kubectl(["create", "secret", "generic", "github", `--from-literal=token=${gh.token}`]);
  expect(secret.code, secret.stderr).toBe(0);
  operator = startOperator("op-gitops");
});

afterAll(async () => {
  await operator?.stop();
  if (operator && process.env.MOE_TEST_VERBOSE) console.log(operator.logTail(80));
  await gh?.close();
  await cluster?.stop();
});

describe("mode PullRequest", () => {
  it("held at maxShards for the sustained window, opens one pull request raising maxShards, with evidence, and changes nothing in the cluster", async () => {
    await applyJson(cluster, heatConfigMap(`${NAME}-heat`, "default", skewedHeat(12_000, [1, 2])));
    await applyJson(cluster, moed("PullRequest", 180));
    const s = await waitForStatus(
      cluster,
      NAME,
      "GitOpsSynced PullRequestOpen",
      (st) => condition(st, "GitOpsSynced")?.reason === "PullRequestOpen",
      120_000,
    );
    const c = condition(s, "GitOpsSynced")!;
    expect(c.status).toBe("True");
    expect(c.message).toMatch(/\/pull\/1: moe-operator: default\/tiny: maxShards 5 -> \d+/);
    const proposed = Number(/maxShards 5 -> (\d+)/.exec(c.message)![1]);
    expect(proposed).toBeGreaterThan(5);

    const onBranch = await git("show", `${BRANCH}:${PATH}`);
    expect(onBranch).toBe(MANIFEST.replace("maxShards: 5 #", `maxShards: ${proposed} #`));
    expect((await git("log", "-1", "--format=%s", BRANCH)).trim()).toBe(
      `moe-operator: default/tiny: maxShards 5 -> ${proposed}`,
    );
    expect(gh.requests.filter((r) => r.operationId === "pulls/create")).toHaveLength(1);
    const body = (await readPr(1)).body ?? "";
    expect(body).toMatch(/\| 180\.0 ms \| 100 ms \| \d+ \| \d+\.\d\d \| \d+ s \|/);
    expect(body).toContain("SLOMet was False at maxShards=5");

    const events = await cluster.kubectl([
      "get",
      "events",
      "--field-selector",
      `involvedObject.name=${NAME},reason=PullRequestOpened`,
      "-o",
      "jsonpath={.items[*].message}",
    ]);
    expect(events.stdout).toContain(`${gh.url}/`.replace(/\/$/, ""));
    expect(events.stdout).toContain("/pull/1");
    const pods = await cluster.kubectl(["get", "pods", "-l", `moe.dev/deployment=${NAME}`, "-o", "name"]);
    expect(pods.stdout.trim()).toBe("");
    expect(gh.violations).toEqual([]);
  });

  it("a constant world makes zero GitHub requests", async () => {
    const before = gh.requests.length;
    const status = await moedStatus(cluster, NAME);
    const version = async () =>
      (await getJson<{ metadata: { resourceVersion: string } }>(cluster, ["get", "moed", NAME])).metadata
        .resourceVersion;
    const rv = await version();
    // >= 5 reconciles at --reconcile-interval-seconds=2; every distinct status seen meanwhile goes in the message.
    const seen = new Set<string>();
    for (const until = Date.now() + 12_000; Date.now() < until; await new Promise((r) => setTimeout(r, 500)))
      seen.add(JSON.stringify((await moedStatus(cluster, NAME)).recommendation));
    expect(gh.requests.slice(before)).toEqual([]);
    // No status write either (status.gitops does not move with time); the message shows what moved.
    const after = await moedStatus(cluster, NAME);
    const moved = Object.keys({ ...status, ...after }).filter(
      (k) =>
        JSON.stringify((status as Record<string, unknown>)[k]) !==
        JSON.stringify((after as Record<string, unknown>)[k]),
    );
    expect(
      await version(),
      `status fields that moved: ${moved.map((k) => `${k}: ${JSON.stringify((status as Record<string, unknown>)[k])} -> ${JSON.stringify((after as Record<string, unknown>)[k])}`).join("; ")}; recommendations seen: ${[...seen].join(" | ")}`,
    ).toBe(rv);
    expect(condition(await moedStatus(cluster, NAME), "GitOpsSynced")).toEqual(condition(status, "GitOpsSynced"));
  });

  it("a larger need updates the same pull request through a 5xx and a secondary rate limit; never a second one", async () => {
    gh.inject({ kind: "server-error", count: 1 });
    gh.inject({ kind: "secondary-rate-limit", retryAfterS: 1, count: 1 });
    const first = (await gitops())!.message;
    await applyJson(cluster, heatConfigMap(`${NAME}-heat`, "default", skewedHeat(30_000, [1, 2])));
    const s = await waitForStatus(
      cluster,
      NAME,
      "updated pull request",
      (st) => {
        const c = condition(st, "GitOpsSynced");
        return c?.reason === "PullRequestOpen" && c.message !== first;
      },
      120_000,
    );
    expect(condition(s, "GitOpsSynced")!.message).toContain("/pull/1: ");
    expect(gh.requests.some((r) => r.status >= 500)).toBe(true);
    expect(gh.requests.some((r) => r.status === 403)).toBe(true);
    expect(gh.requests.filter((r) => r.operationId === "pulls/create")).toHaveLength(1);
    expect(gh.violations).toEqual([]);
  });

  it("an operator restart neither commits again nor forgets the windows (status.gitops)", async () => {
    // Wait for a settled proposal (the need may still be growing after the previous step).
    let seen = -1;
    await waitFor(
      "no commit for 10 s",
      async () => {
        const n = commits();
        const settled = n === seen;
        seen = n;
        return settled ? true : undefined;
      },
      { timeoutMs: 90_000, intervalMs: 10_000 },
    );
    await waitForStatus(
      cluster,
      NAME,
      "status.gitops records every commit",
      (st) => st.gitops?.commitTimes?.length === commits(),
    );
    const before = await moedStatus(cluster, NAME);
    expect(before.gitops?.trackingSince).toBeDefined();
    expect(before.gitops?.pullRequestUrl).toMatch(/\/pull\/1$/);
    expect(before.gitops?.commitTimes?.length).toBe(commits());
    expect(await finalizers(NAME)).toContain(FINALIZER);
    const writes = gh.requests.filter((r) => r.method !== "GET").length;
    await operator.stop();
    operator = startOperator("op-gitops-2");
    // The new process reconciles (its condition is published again) and then runs for a while.
    await waitFor(
      "the restarted operator's log",
      async () => ((await readFile(operator.logFile, "utf8")).includes("pull request in sync") ? true : undefined),
      { timeoutMs: 60_000, intervalMs: 500 },
    );
    await new Promise((r) => setTimeout(r, 8_000));
    const after = await moedStatus(cluster, NAME);
    expect(after.gitops?.trackingSince).toBe(before.gitops?.trackingSince);
    expect(after.gitops?.commitTimes).toEqual(before.gitops?.commitTimes);
    expect(gh.requests.filter((r) => r.method !== "GET").length).toBe(writes);
    expect(condition(after, "GitOpsSynced")?.reason).toBe("PullRequestOpen");
  });

  it("switching to Auto closes the pull request and deletes the branch", async () => {
    await applyJson(cluster, moed("Auto", 40));
    await waitFor(
      "branch deleted",
      async () => ((await git("branch", "--list", BRANCH)).trim() === "" ? true : undefined),
      { timeoutMs: 60_000, intervalMs: 500 },
    );
    expect((await readPr(1)).state).toBe("closed");
    await waitForStatus(cluster, NAME, "no GitOpsSynced in Auto", (st) => condition(st, "GitOpsSynced") === undefined);
  });

  it("a revoked token turns GitOpsSynced False with AuthFailed; the operator keeps running", async () => {
    await applyJson(cluster, heatConfigMap(`${NAME}-heat`, "default", skewedHeat(12_000, [1, 2])));
    gh.inject({ kind: "revoke-token" });
    await applyJson(cluster, moed("PullRequest", 180));
    const s = await waitForStatus(
      cluster,
      NAME,
      "AuthFailed",
      (st) => condition(st, "GitOpsSynced")?.reason === "AuthFailed",
      120_000,
    );
    expect(condition(s, "GitOpsSynced")).toMatchObject({ status: "False" });
    expect(condition(s, "GitOpsSynced")!.message).toContain("HTTP 401");
    expect(operator.exitCode).toBeUndefined();
  });

  it("deleting the MoEDeployment closes its pull request and deletes its branch through the finalizer", async () => {
    gh.inject({ kind: "restore-token" });
    const s = await waitForStatus(
      cluster,
      NAME,
      "PullRequestOpen again",
      (st) => condition(st, "GitOpsSynced")?.reason === "PullRequestOpen",
      120_000,
    );
    const url = s.gitops!.pullRequestUrl!;
    const n = Number(/\/pull\/(\d+)$/.exec(url)![1]);
    expect((await readPr(n)).state).toBe("open");
    expect(await finalizers(NAME)).toContain(FINALIZER);
    const del = await cluster.kubectl(["delete", "moed", NAME, "--wait=false"]);
    expect(del.code, del.stderr).toBe(0);
    await waitFor("MoEDeployment gone", async () => ((await gone(NAME)) ? true : undefined), {
      timeoutMs: 60_000,
      intervalMs: 500,
    });
    expect((await readPr(n)).state).toBe("closed");
    expect((await git("branch", "--list", BRANCH)).trim()).toBe("");
  });

  it("GitHub unreachable: the finalizer goes after bounded retries with a Warning event; deletion is not blocked", async () => {
    const lost = moed("PullRequest", 180) as { metadata: { name: string }; spec: { gitops: { apiUrl: string } } };
    lost.metadata.name = "lost";
    lost.spec.gitops.apiUrl = UNREACHABLE;
    await applyJson(cluster, lost);
    await waitFor("finalizer", async () => ((await finalizers("lost")).includes(FINALIZER) ? true : undefined), {
      timeoutMs: 60_000,
      intervalMs: 500,
    });
    const del = await cluster.kubectl(["delete", "moed", "lost", "--wait=false"]);
    expect(del.code, del.stderr).toBe(0);
    await waitFor("MoEDeployment lost gone", async () => ((await gone("lost")) ? true : undefined), {
      timeoutMs: 120_000,
      intervalMs: 1_000,
    });
    const events = await cluster.kubectl([
      "get",
      "events",
      "--field-selector",
      "involvedObject.name=lost,reason=PullRequestNotClosed",
      "-o",
      "jsonpath={.items[*].message}",
    ]);
    expect(events.stdout).toContain("could not close the pull request (4 attempts");
    expect(events.stdout).toContain("moe-operator/default-lost");
    expect(operator.exitCode).toBeUndefined();
  });

  it("proposes the engines' placement file from the heat-based plan, and leaves it alone while the heat holds", async () => {
    const FILE = "engine/placed-expert-location.json";
    await applyJson(cluster, heatConfigMap("placed-heat", "default", skewedHeat(12_000, [3, 7])));
    const placed = moed("PullRequest", 40) as { metadata: { name: string }; spec: { gitops: Record<string, unknown> } };
    placed.metadata.name = "placed";
    placed.spec.gitops.path = "clusters/prod/placed.yaml";
    placed.spec.gitops.placementFile = { path: FILE }; // dense rows: spec.model.denseLayers (TEST_DENSE)
    await applyJson(cluster, placed);
    const s = await waitForStatus(
      cluster,
      "placed",
      "GitOpsSynced PullRequestOpen",
      (st) => condition(st, "GitOpsSynced")?.reason === "PullRequestOpen",
      120_000,
    );
    expect(condition(s, "GitOpsSynced")!.message).toContain(
      "moe-operator: default/placed: expert placement 100% of slots moved",
    );
    const text = await git("show", `moe-operator/default-placed:${FILE}`);
    const map = (JSON.parse(text) as { physical_to_logical_map: number[][] }).physical_to_logical_map;
    expect(text).toBe(renderPlacementFile(map));
    expect(map).toHaveLength(TEST_LAYERS);
    const slots = map[0]!.length;
    expect(slots % 5).toBe(0); // expertSlotsPerGpu
    for (const row of map.slice(TEST_DENSE)) {
      expect(row).toHaveLength(slots);
      expect(new Set(row).size).toBe(TEST_EXPERTS); // every expert has a slot
    }
    const files = gh.requests.filter((r) => r.operationId === "repos/create-or-update-file-contents").length;
    await new Promise((r) => setTimeout(r, 10_000));
    expect(gh.requests.filter((r) => r.operationId === "repos/create-or-update-file-contents").length).toBe(files);
    const del = await cluster.kubectl(["delete", "moed", "placed", "--wait=false"]);
    expect(del.code, del.stderr).toBe(0);
    await waitFor("placed gone", async () => ((await gone("placed")) ? true : undefined), {
      timeoutMs: 60_000,
      intervalMs: 500,
    });
    expect((await git("branch", "--list", "moe-operator/default-placed")).trim()).toBe("");
    expect(gh.violations).toEqual([]);
  });

  it("the token appears in no log line, event or status", async () => {
    const log =
      (await readFile(join(cluster.dir, "operator-op-gitops.log"), "utf8")) +
      (await readFile(operator.logFile, "utf8"));
    const lines = log.split("\n").filter(Boolean);
    expect(lines.length).toBeGreaterThan(5);
    expect(lines.filter((l) => l.includes(gh.token))).toEqual([]);
    expect(log).toContain("pull request in sync");
    const all = await cluster.kubectl(["get", "events,moed", "-o", "json"]);
    expect(all.stdout).not.toContain(gh.token);
  });
});

async function readPr(n: number): Promise<{ state: string; body: string | null; title: string }> {
  const r = await fetch(`${gh.url}/repos/${gh.owner}/${gh.repo}/pulls/${n}`, {
    headers: { authorization: `token ${gh.token}`, accept: "application/vnd.github+json" },
  });
  return (await r.json()) as { state: string; body: string | null; title: string };
}
