import { execFile } from "node:child_process";
import { createSign, generateKeyPairSync } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { retry } from "@octokit/plugin-retry";
import { throttling } from "@octokit/plugin-throttling";
import { Octokit } from "@octokit/rest";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { loadOpenApiChecker } from "../../src/testing/github/openapi.ts";
import { SERVED_OPERATIONS, startFakeGitHub, type FakeGitHub } from "../../src/testing/github/server.ts";

// The local GitHub API server (src/testing/github) driven by @octokit/rest with the retry and throttling
// plugins, as the operator's pull-request mode uses them. No control plane is needed.

const execFileAsync = promisify(execFile);
const RetryingOctokit = Octokit.plugin(retry, throttling);
const silent = { debug: () => undefined, info: () => undefined, warn: () => undefined, error: () => undefined };

interface LimitEvent {
  kind: "primary" | "secondary";
  retryAfterS: number;
}

/** Pass-through for plugin-throttling's write limiter (one write per second by default) to keep tests fast. */
const noWriteSpacing = { key: () => ({ schedule: (_opts: unknown, fn: () => unknown) => fn() }) };

function client(gh: FakeGitHub, events: LimitEvent[] = [], opts: { token?: string; baseUrl?: string } = {}) {
  return new RetryingOctokit({
    auth: opts.token ?? gh.token,
    baseUrl: opts.baseUrl ?? gh.url,
    log: silent,
    retry: { retryAfterBaseValue: 5 },
    throttle: {
      retryAfterBaseValue: 5,
      write: noWriteSpacing as never,
      onRateLimit: (retryAfterS: number, _o: unknown, _k: unknown, retryCount: number) => {
        events.push({ kind: "primary", retryAfterS });
        return retryCount < 2;
      },
      onSecondaryRateLimit: (retryAfterS: number, _o: unknown, _k: unknown, retryCount: number) => {
        events.push({ kind: "secondary", retryAfterS });
        return retryCount < 2;
      },
    },
  });
}

async function gitShow(gh: FakeGitHub, spec: string): Promise<string> {
  const { stdout } = await execFileAsync("git", ["-C", gh.repoDir, "show", spec]);
  return stdout;
}

async function statusOf(p: Promise<unknown>): Promise<number> {
  try {
    await p;
    return 200;
  } catch (err) {
    return (err as { status?: number }).status ?? -1;
  }
}

/** Commits `files` on top of `branch` through the git data API (blob, tree with base_tree, commit, ref). */
async function commitThroughGitData(
  octokit: ReturnType<typeof client>,
  gh: FakeGitHub,
  parentSha: string,
  files: Record<string, string>,
  message: string,
) {
  const { owner, repo } = gh;
  const parent = await octokit.rest.git.getCommit({ owner, repo, commit_sha: parentSha });
  const tree = [];
  for (const [path, content] of Object.entries(files)) {
    const blob = await octokit.rest.git.createBlob({
      owner,
      repo,
      content: Buffer.from(content).toString("base64"),
      encoding: "base64",
    });
    tree.push({ path, mode: "100644" as const, type: "blob" as const, sha: blob.data.sha });
  }
  const newTree = await octokit.rest.git.createTree({ owner, repo, base_tree: parent.data.tree.sha, tree });
  const commit = await octokit.rest.git.createCommit({
    owner,
    repo,
    message,
    tree: newTree.data.sha,
    parents: [parentSha],
  });
  return commit.data.sha;
}

function appJwt(appId: number, privateKeyPem: string, nowS = Math.floor(Date.now() / 1000), lifetimeS = 540): string {
  const enc = (o: object) => Buffer.from(JSON.stringify(o)).toString("base64url");
  const unsigned = `${enc({ alg: "RS256", typ: "JWT" })}.${enc({ iat: nowS - 30, exp: nowS + lifetimeS, iss: appId })}`;
  const signature = createSign("RSA-SHA256").update(unsigned).sign(privateKeyPem).toString("base64url");
  return `${unsigned}.${signature}`;
}

const BRANCH = "moe-operator/inference-deepseek";
const FILE = "clusters/prod/deepseek/moe.yaml";

let dir: string;
let gh: FakeGitHub;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "fake-github-"));
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function start(name: string): Promise<FakeGitHub> {
  gh = await startFakeGitHub({
    dir: join(dir, name),
    files: { [FILE]: "maxShards: 8 # the bound\n", "README.md": "# fleet\n" },
  });
  return gh;
}

afterEach(async () => {
  await gh?.close();
});

describe("local GitHub API server", () => {
  it("serves a pull-request flow through the git data API; git reads the branch back; traffic is valid", async () => {
    await start("flow");
    const octokit = client(gh);
    const { owner, repo } = gh;
    const repoInfo = await octokit.rest.repos.get({ owner, repo });
    expect(repoInfo.data.default_branch).toBe("main");
    const base = await octokit.rest.git.getRef({ owner, repo, ref: "heads/main" });
    expect((await octokit.rest.repos.getBranch({ owner, repo, branch: "main" })).data.commit.sha).toBe(
      base.data.object.sha,
    );
    const sha = await commitThroughGitData(
      octokit,
      gh,
      base.data.object.sha,
      { [FILE]: "maxShards: 12 # the bound\n" },
      "Raise maxShards to 12",
    );
    await octokit.rest.git.createRef({ owner, repo, ref: `refs/heads/${BRANCH}`, sha });
    const matching = await octokit.rest.git.listMatchingRefs({ owner, repo, ref: "heads/moe-operator/" });
    expect(matching.data.map((r) => r.ref)).toEqual([`refs/heads/${BRANCH}`]);

    const created = await octokit.rest.pulls.create({
      owner,
      repo,
      head: `${owner}:${BRANCH}`,
      base: "main",
      title: "Raise maxShards to 12",
      body: "| p99 | SLO |",
    });
    expect(created.status).toBe(201);
    expect(created.headers.location).toBe(created.data.url);
    expect(created.data.head.sha).toBe(sha);
    expect(created.data.commits).toBe(1);

    const second = await octokit.rest.pulls
      .create({ owner, repo, head: `${owner}:${BRANCH}`, base: "main", title: "again" })
      .catch((e: unknown) => e);
    expect((second as { status: number }).status).toBe(422);
    expect((second as Error).message).toContain(`A pull request already exists for ${owner}:${BRANCH}.`);

    const listed = await octokit.rest.pulls.list({
      owner,
      repo,
      head: `${owner}:${BRANCH}`,
      state: "open",
      base: "main",
    });
    const paged = await octokit.paginate(octokit.rest.pulls.list, { owner, repo, state: "all", per_page: 1 });
    expect(paged.map((p) => p.number)).toEqual([created.data.number]);
    expect(listed.data.map((p) => p.number)).toEqual([created.data.number]);
    const updated = await octokit.rest.pulls.update({
      owner,
      repo,
      pull_number: created.data.number,
      title: "Raise maxShards to 14",
      body: "new evidence",
    });
    expect(updated.data.title).toBe("Raise maxShards to 14");
    const comment = await octokit.rest.issues.createComment({
      owner,
      repo,
      issue_number: created.data.number,
      body: "updated",
    });
    expect(comment.status).toBe(201);
    const closed = await octokit.rest.pulls.update({ owner, repo, pull_number: created.data.number, state: "closed" });
    expect(closed.data.state).toBe("closed");
    expect((await octokit.rest.pulls.list({ owner, repo, head: `${owner}:${BRANCH}` })).data).toEqual([]);
    await octokit.rest.git.deleteRef({ owner, repo, ref: `heads/${BRANCH}` });
    await expect(startFakeGitHub({ dir: join(dir, "flow") })).rejects.toThrow(/already holds a repository/);
    expect(gh.pullRequests()).toEqual([
      {
        number: created.data.number,
        state: "closed",
        merged: false,
        title: "Raise maxShards to 14",
        body: "new evidence",
        head: BRANCH,
        base: "main",
        headSha: sha,
      },
    ]);
    expect(gh.comments()).toEqual([{ issueNumber: created.data.number, body: "updated" }]);

    expect(await gitShow(gh, `${sha}:${FILE}`)).toBe("maxShards: 12 # the bound\n");
    expect(await gitShow(gh, `main:${FILE}`)).toBe("maxShards: 8 # the bound\n");
    expect(await statusOf(octokit.rest.git.getRef({ owner, repo, ref: `heads/${BRANCH}` }))).toBe(404);
    expect(await statusOf(octokit.rest.git.getRef({ owner, repo, ref: "refs/heads/main" }))).toBe(404);
    expect(await statusOf(octokit.rest.repos.getBranch({ owner, repo, branch: BRANCH }))).toBe(404);
    expect(gh.violations).toEqual([]);
    expect(gh.requests.filter((r) => r.method !== "GET").length).toBeGreaterThan(5);
    expect(gh.requests.every((r) => r.authorization === `token ${gh.token}`)).toBe(true);
  });

  it("serves the contents API with sha semantics: 201 create, 200 update, 409 stale sha, 422 missing sha", async () => {
    await start("contents");
    const octokit = client(gh);
    const { owner, repo } = gh;
    const file = await octokit.rest.repos.getContent({ owner, repo, path: FILE, ref: "main" });
    const data = file.data as { sha: string; content: string };
    expect(Buffer.from(data.content, "base64").toString()).toBe("maxShards: 8 # the bound\n");
    const dirList = await octokit.rest.repos.getContent({ owner, repo, path: "clusters/prod" });
    expect((dirList.data as { name: string }[]).map((e) => e.name)).toEqual(["deepseek"]);

    const base = await octokit.rest.git.getRef({ owner, repo, ref: "heads/main" });
    await octokit.rest.git.createRef({ owner, repo, ref: `refs/heads/${BRANCH}`, sha: base.data.object.sha });
    const put = (content: string, sha?: string) =>
      octokit.rest.repos.createOrUpdateFileContents({
        owner,
        repo,
        path: FILE,
        branch: BRANCH,
        message: "Raise maxShards",
        content: Buffer.from(content).toString("base64"),
        sha,
      });
    const updated = await put("maxShards: 10\n", data.sha);
    expect(updated.status).toBe(200);
    expect(await statusOf(put("maxShards: 11\n", data.sha))).toBe(409);
    expect(await statusOf(put("maxShards: 11\n"))).toBe(422);
    const createdFile = await octokit.rest.repos.createOrUpdateFileContents({
      owner,
      repo,
      path: "new/file.yaml",
      branch: BRANCH,
      message: "Add",
      content: Buffer.from("a: 1\n").toString("base64"),
    });
    expect(createdFile.status).toBe(201);
    expect(await gitShow(gh, `${BRANCH}:${FILE}`)).toBe("maxShards: 10\n");
    expect(await gitShow(gh, `${BRANCH}:new/file.yaml`)).toBe("a: 1\n");
    expect(await statusOf(octokit.rest.repos.getContent({ owner, repo, path: "absent.yaml" }))).toBe(404);
    expect(gh.violations).toEqual([]);
  });

  it("reports a moved base branch: non-fast-forward updates are refused unless forced; the PR is behind", async () => {
    await start("base-moved");
    const octokit = client(gh);
    const { owner, repo } = gh;
    const base = await octokit.rest.git.getRef({ owner, repo, ref: "heads/main" });
    const first = await commitThroughGitData(
      octokit,
      gh,
      base.data.object.sha,
      { [FILE]: "maxShards: 12\n" },
      "Raise maxShards",
    );
    await octokit.rest.git.createRef({ owner, repo, ref: `refs/heads/${BRANCH}`, sha: first });
    const pr = await octokit.rest.pulls.create({ owner, repo, head: BRANCH, base: "main", title: "Raise maxShards" });

    const moved = await gh.commitToBase({ "README.md": "# fleet, edited by a human\n" }, "Human edit");
    expect((await octokit.rest.git.getRef({ owner, repo, ref: "heads/main" })).data.object.sha).toBe(moved);
    expect((await octokit.rest.pulls.get({ owner, repo, pull_number: pr.data.number })).data.mergeable_state).toBe(
      "behind",
    );

    const rebuilt = await commitThroughGitData(octokit, gh, moved, { [FILE]: "maxShards: 12\n" }, "Raise maxShards");
    expect(await statusOf(octokit.rest.git.updateRef({ owner, repo, ref: `heads/${BRANCH}`, sha: rebuilt }))).toBe(422);
    await octokit.rest.git.updateRef({ owner, repo, ref: `heads/${BRANCH}`, sha: rebuilt, force: true });
    const after = await octokit.rest.pulls.get({ owner, repo, pull_number: pr.data.number });
    expect(after.data.head.sha).toBe(rebuilt);
    expect(after.data.mergeable_state).toBe("clean");

    await gh.commitToBase({ [FILE]: "maxShards: 9\n" }, "Human edit of the same line");
    const conflicted = await octokit.rest.pulls.get({ owner, repo, pull_number: pr.data.number });
    expect([conflicted.data.mergeable, conflicted.data.mergeable_state]).toEqual([false, "dirty"]);
    expect(await gitShow(gh, `main:README.md`)).toBe("# fleet, edited by a human\n");
    expect(gh.violations).toEqual([]);
  });

  it("builds trees like GitHub: sha null deletes a file or a directory, recursive listing, inline content", async () => {
    await start("trees");
    const octokit = client(gh);
    const { owner, repo } = gh;
    const head = await octokit.rest.git.getCommit({
      owner,
      repo,
      commit_sha: (await octokit.rest.git.getRef({ owner, repo, ref: "heads/main" })).data.object.sha,
    });
    const tree = await octokit.rest.git.createTree({
      owner,
      repo,
      base_tree: head.data.tree.sha,
      tree: [
        { path: "README.md", mode: "100644", type: "blob", sha: null },
        { path: "clusters", mode: "040000", type: "tree", sha: null },
        { path: "placement/v2.json", mode: "100644", type: "blob", content: '{"physical_to_logical_map":[]}\n' },
      ],
    });
    const listed = await octokit.rest.git.getTree({ owner, repo, tree_sha: tree.data.sha, recursive: "1" });
    expect(listed.data.tree.map((e) => `${e.type} ${e.path}`)).toEqual(["tree placement", "blob placement/v2.json"]);
    const commit = await octokit.rest.git.createCommit({
      owner,
      repo,
      message: "Replace",
      tree: tree.data.sha,
      parents: [head.data.sha],
      author: { name: "Bot", email: "bot@example.com", date: "2026-01-02T03:04:05Z" },
    });
    expect(commit.data.author).toEqual({ name: "Bot", email: "bot@example.com", date: "2026-01-02T03:04:05Z" });
    expect(await gitShow(gh, `${commit.data.sha}:placement/v2.json`)).toBe('{"physical_to_logical_map":[]}\n');
    const badParent = octokit.rest.git.createCommit({
      owner,
      repo,
      message: "x",
      tree: tree.data.sha,
      parents: ["0".repeat(40)],
    });
    expect(await statusOf(badParent)).toBe(422);
    expect(gh.violations).toEqual([]);
  });

  it("lets a reviewer merge the pull request; the base branch then holds the change", async () => {
    await start("merge");
    const octokit = client(gh);
    const { owner, repo } = gh;
    const base = await octokit.rest.git.getRef({ owner, repo, ref: "heads/main" });
    const sha = await commitThroughGitData(
      octokit,
      gh,
      base.data.object.sha,
      { [FILE]: "maxShards: 16\n" },
      "Raise maxShards to 16",
    );
    await octokit.rest.git.createRef({ owner, repo, ref: `refs/heads/${BRANCH}`, sha });
    const pr = await octokit.rest.pulls.create({
      owner,
      repo,
      head: `${owner}:${BRANCH}`,
      base: "main",
      title: "Raise maxShards to 16",
    });
    await gh.commitToBase({ "README.md": "# fleet v2\n" }, "Unrelated human edit");
    const mergeSha = await gh.mergePullRequest(pr.data.number);
    const merged = await octokit.rest.pulls.get({ owner, repo, pull_number: pr.data.number });
    expect([merged.data.state, merged.data.merged, merged.data.merge_commit_sha]).toEqual(["closed", true, mergeSha]);
    expect(await gitShow(gh, `main:${FILE}`)).toBe("maxShards: 16\n");
    expect(await gitShow(gh, "main:README.md")).toBe("# fleet v2\n");
    expect(await statusOf(octokit.rest.pulls.update({ owner, repo, pull_number: pr.data.number, state: "open" }))).toBe(
      422,
    );
    await expect(gh.mergePullRequest(pr.data.number)).rejects.toThrow(/cannot merge pull request/);
    expect(gh.violations).toEqual([]);
  });

  it("injects 5xx, secondary and primary rate limits; octokit's plugins retry them and succeed", async () => {
    await start("faults");
    const events: LimitEvent[] = [];
    const octokit = client(gh, events);
    const { owner, repo } = gh;

    gh.inject({ kind: "server-error", status: 502, count: 2 });
    const repoInfo = await octokit.rest.repos.get({ owner, repo });
    expect(repoInfo.status).toBe(200);
    expect(gh.requests.map((r) => r.status)).toEqual([502, 502, 200]);

    gh.inject({ kind: "secondary-rate-limit", retryAfterS: 3, count: 1 });
    const created = await octokit.rest.git.createBlob({ owner, repo, content: "x" });
    expect(created.status).toBe(201);
    expect(events).toEqual([{ kind: "secondary", retryAfterS: 3 }]);

    gh.inject({ kind: "primary-rate-limit", resetInS: 1, count: 1 });
    expect((await octokit.rest.pulls.list({ owner, repo })).status).toBe(200);
    expect(events.map((e) => e.kind)).toEqual(["secondary", "primary"]);
    // 429 is not in plugin-retry's doNotRetry list, so that plugin retries it before throttling sees it.
    gh.inject({ kind: "primary-rate-limit", resetInS: 1, count: 1, status: 429 });
    expect((await octokit.rest.git.getRef({ owner, repo, ref: "heads/main" })).status).toBe(200);
    expect(gh.requests.slice(-6).map((r) => r.status)).toEqual([403, 201, 403, 200, 429, 200]);

    const limit = await octokit.rest.rateLimit.get();
    expect(limit.data.resources.core.limit).toBe(5000);
    expect(Number(limit.headers["x-ratelimit-remaining"])).toBe(limit.data.resources.core.remaining);
    expect(gh.violations).toEqual([]);
  });

  it("answers 401 after the token is revoked (until restored), and for a wrong token, with GitHub's body", async () => {
    await start("revoked");
    const { owner, repo } = gh;
    const wrong = await client(gh, [], { token: "ghp_wrong" })
      .rest.repos.get({ owner, repo })
      .catch((e: unknown) => e);
    expect((wrong as { status: number }).status).toBe(401);
    expect((wrong as { response: { data: { message: string } } }).response.data.message).toBe("Bad credentials");

    const octokit = client(gh);
    expect((await octokit.rest.repos.get({ owner, repo })).status).toBe(200);
    gh.inject({ kind: "revoke-token" });
    expect(await statusOf(octokit.rest.repos.get({ owner, repo }))).toBe(401);
    expect(await statusOf(octokit.rest.pulls.list({ owner, repo }))).toBe(401);
    gh.inject({ kind: "restore-token" });
    expect((await octokit.rest.pulls.list({ owner, repo })).status).toBe(200);
    expect(gh.requests.map((r) => r.status)).toEqual([401, 200, 401, 401, 200]);
    expect(gh.violations).toEqual([]);
  });

  it("records a violation for a malformed request and for an operation it does not emulate", async () => {
    await start("malformed");
    const octokit = client(gh);
    const { owner, repo } = gh;
    // Deliberately malformed (the types would refuse it): POST pulls without `head`.
    const noHead = octokit.request("POST /repos/{owner}/{repo}/pulls", {
      owner,
      repo,
      base: "main",
      title: "no head",
    } as never);
    expect(await statusOf(noHead)).toBe(422);
    expect(gh.violations.join("\n")).toMatch(/pulls\/create.*request body.*head/);

    const unserved = octokit.request("GET /repos/{owner}/{repo}/branches", { owner, repo });
    expect(await statusOf(unserved)).toBe(404);
    expect(gh.violations.join("\n")).toContain(
      "repos/list-branches (GET /repos/{owner}/{repo}/branches) is not emulated",
    );

    const badQuery = octokit.request("GET /repos/{owner}/{repo}/pulls", { owner, repo, state: "merged" } as never);
    expect(await statusOf(badQuery)).toBe(200);
    expect(gh.violations.join("\n")).toMatch(/pulls\/list.*query parameters.*state/);
    const bareHead = await octokit.rest.pulls.list({ owner, repo, head: "some-branch" });
    expect(bareHead.status).toBe(200);
    expect(gh.violations.join("\n")).toContain('head filter "some-branch" has no "owner:" prefix');
    expect(gh.violations).toHaveLength(4);
  });

  it("checks responses against the description: a wrong body is a violation", async () => {
    const checker = await loadOpenApiChecker(SERVED_OPERATIONS);
    expect(
      checker.checkResponse("git/get-ref", 200, { ref: "refs/heads/main", url: "x", node_id: "n", object: { sha: 1 } }),
    ).not.toEqual([]);
    expect(checker.checkResponse("git/delete-ref", 201, undefined)).toEqual([
      "response status 201 is not documented for git/delete-ref",
    ]);
    expect(
      checker.checkResponse("git/get-ref", 404, {
        message: "Not Found",
        documentation_url: "https://docs.github.com/rest",
      }),
    ).toEqual([]);
  });

  it("issues installation tokens for a verified app JWT and serves GHE-style /api/v3 URLs", async () => {
    await start("app");
    const { owner, repo } = gh;
    const jwt = appJwt(gh.app.appId, gh.app.privateKeyPem);
    const asApp = client(gh, [], { token: jwt, baseUrl: `${gh.url}/api/v3` });
    const installation = await asApp.rest.apps.getRepoInstallation({ owner, repo });
    expect(installation.data.id).toBe(gh.app.installationId);
    const issued = await asApp.rest.apps.createInstallationAccessToken({ installation_id: installation.data.id });
    const asInstallation = client(gh, [], { token: issued.data.token, baseUrl: `${gh.url}/api/v3` });
    expect((await asInstallation.rest.pulls.list({ owner, repo })).status).toBe(200);

    const otherKey = generateKeyPairSync("rsa", { modulusLength: 2048 })
      .privateKey.export({ type: "pkcs8", format: "pem" })
      .toString();
    const forged = client(gh, [], { token: appJwt(gh.app.appId, otherKey) });
    expect(
      await statusOf(forged.rest.apps.createInstallationAccessToken({ installation_id: gh.app.installationId })),
    ).toBe(401);
    const tooLong = client(gh, [], { token: appJwt(gh.app.appId, gh.app.privateKeyPem, undefined, 3600) });
    expect(
      await statusOf(tooLong.rest.apps.createInstallationAccessToken({ installation_id: gh.app.installationId })),
    ).toBe(401);
    expect(await statusOf(asApp.rest.pulls.list({ owner, repo }))).toBe(401);
    expect(gh.violations).toEqual([]);
  });
});
