import { generateKeyPair, randomBytes, type KeyObject } from "node:crypto";
import { mkdir } from "node:fs/promises";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { join } from "node:path";
import { GitRepo, isValidTreePath } from "./git.ts";
import { loadOpenApiChecker, type OpenApiChecker } from "./openapi.ts";
import { appHandlers, rateLimitBody, verifyAppJwt, type RateWindow } from "./routes-app.ts";
import { gitHandlers } from "./routes-git.ts";
import { mergePull, pullHandlers } from "./routes-pulls.ts";
import { repoHandlers } from "./routes-repo.ts";
import type { Json } from "./shapes.ts";
import { nowIso, type AuthKind, type Handler, type Reply, type RepoState } from "./state.ts";

/**
 * A local GitHub REST API server for tests: one repository, kept in a real bare git repository on disk,
 * serving the operations an @octokit/rest pull-request flow uses. Every request and every JSON response is
 * checked against GitHub's OpenAPI description (@octokit/openapi); mismatches are collected in `violations`.
 * See docs/testing-github.md.
 */

export interface FakeGitHubOptions {
  /** Directory for the bare repository (created if missing). */
  dir: string;
  owner?: string;
  repo?: string;
  baseBranch?: string;
  /** The initial commit on baseBranch holds these files (path -> UTF-8 content). */
  files?: Record<string, string>;
  /** The personal access token requests must carry (default: a random ghp_ token). */
  token?: string;
  /** GitHub App identity for POST /app/installations/{id}/access_tokens (a fresh RSA key pair is generated). */
  app?: { appId?: number; installationId?: number; slug?: string };
}

export interface RecordedRequest {
  method: string;
  /** The URL path and query as received. */
  path: string;
  /** The reply's status; 0 while the request is still being served. */
  status: number;
  operationId: string | null;
  authorization: string | null;
}

export type Fault =
  | { kind: "server-error"; status?: 500 | 502 | 503; count: number }
  | { kind: "secondary-rate-limit"; retryAfterS: number; count: number }
  | { kind: "primary-rate-limit"; resetInS: number; count: number; status?: 403 | 429 }
  | { kind: "revoke-token" }
  /** Undoes revoke-token: the same token works again. */
  | { kind: "restore-token" };

export interface FakeGitHub {
  /** API base URL for octokit's baseUrl, e.g. http://127.0.0.1:PORT (GHE-style http://127.0.0.1:PORT/api/v3 works too). */
  url: string;
  token: string;
  owner: string;
  repo: string;
  baseBranch: string;
  /** A real bare git repository: read branches back with `git -C repoDir show ref:path`. */
  repoDir: string;
  /** The GitHub App: sign an RS256 JWT with privateKeyPem and iss = appId to get installation tokens. */
  app: { appId: number; installationId: number; privateKeyPem: string };
  /** The last MAX_RECORDED_REQUESTS requests, oldest first. */
  requests: RecordedRequest[];
  /** Every request or response that does not match GitHub's OpenAPI operation and its schemas (bounded). */
  violations: string[];
  inject(fault: Fault): void;
  /** The pull requests as the server holds them now (copies; reading them sends no request). */
  pullRequests(): PullRequestSnapshot[];
  /** Comments posted with POST issues/{n}/comments, oldest first. */
  comments(): { issueNumber: number; body: string }[];
  /** Commits `files` on top of the base branch and moves it (as a human push would); returns the commit sha. */
  commitToBase(files: Record<string, string>, message: string): Promise<string>;
  /** Merges an open pull request with a merge commit, as a reviewer would on github.com; returns its sha. */
  mergePullRequest(pullNumber: number): Promise<string>;
  close(): Promise<void>;
}

export interface PullRequestSnapshot {
  number: number;
  state: "open" | "closed";
  merged: boolean;
  title: string;
  body: string | null;
  head: string;
  base: string;
  /** The head branch's tip when the pull request was last served or updated. */
  headSha: string;
}

export const MAX_RECORDED_REQUESTS = 10_000;
export const MAX_VIOLATIONS = 1_000;
const MAX_BODY_BYTES = 8 * 1024 * 1024;
const RATE_LIMIT_PER_HOUR = 5000;
const SECONDARY_DOCS =
  "https://docs.github.com/free-pro-team@latest/rest/overview/rate-limits-for-the-rest-api#about-secondary-rate-limits";
const PRIMARY_DOCS = "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api#about-primary-rate-limits";

const HANDLERS: Record<string, Handler> = {
  ...gitHandlers,
  ...repoHandlers,
  ...pullHandlers,
  ...appHandlers,
};
/** Operations served; GET /rate_limit is answered by the server itself. */
export const SERVED_OPERATIONS: readonly string[] = [...Object.keys(HANDLERS), "rate-limit/get"];
const APP_JWT_OPERATIONS = new Set(["apps/create-installation-access-token", "apps/get-repo-installation"]);

type PendingFault = Exclude<Fault, { kind: "revoke-token" } | { kind: "restore-token" }>;

interface Incoming {
  method: string;
  rawPath: string;
  pathname: string;
  query: URLSearchParams;
  authorization: string | null;
  body: Buffer | null;
}

interface Outcome {
  reply: Reply;
  operationId: string | null;
  /** Check the reply against the operation's response schema (not for injected faults). */
  check: boolean;
}

class FakeGitHubServer {
  readonly state: RepoState;
  readonly requests: RecordedRequest[] = [];
  readonly violations: string[] = [];
  private readonly checker: OpenApiChecker;
  private faults: PendingFault[] = [];
  private revoked = false;
  private readonly rate: RateWindow;
  private queue: Promise<unknown> = Promise.resolve();
  private droppedViolations = 0;

  constructor(state: RepoState, checker: OpenApiChecker) {
    this.state = state;
    this.checker = checker;
    this.rate = { limit: RATE_LIMIT_PER_HOUR, used: 0, resetS: Math.floor(Date.now() / 1000) + 3600 };
  }

  /** Runs `fn` after every earlier request finished (the repository sees one request at a time). */
  serialize<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.queue.then(fn, fn);
    this.queue = next.catch(() => undefined);
    return next;
  }

  inject(fault: Fault): void {
    if (fault.kind === "revoke-token") this.revoked = true;
    else if (fault.kind === "restore-token") this.revoked = false;
    else if (fault.count > 0) this.faults.push({ ...fault });
  }

  violation(message: string): void {
    if (this.violations.length < MAX_VIOLATIONS) this.violations.push(message);
    else if (this.droppedViolations++ === 0)
      this.violations.push(`more than ${MAX_VIOLATIONS} violations; later ones are not recorded`);
  }

  async handle(req: Incoming): Promise<Reply> {
    // Recorded on arrival, completed when served: a test that sees a write's effect (a branch, a
    // file) finds its request here too, however the two interleave.
    const record: RecordedRequest = {
      method: req.method,
      path: req.rawPath,
      status: 0,
      operationId: this.checker.match(req.method, req.pathname)?.operationId ?? null,
      authorization: req.authorization,
    };
    this.requests.push(record);
    if (this.requests.length > MAX_RECORDED_REQUESTS) this.requests.shift();
    const outcome = await this.dispatch(req).catch((err: unknown): Outcome => {
      const message = err instanceof Error ? err.message : String(err);
      this.violation(`${req.method} ${req.pathname}: local server error: ${message}`);
      return {
        reply: { status: 500, body: { message: `local GitHub API server error: ${message}` } },
        operationId: null,
        check: false,
      };
    });
    const { reply, operationId } = outcome;
    if (outcome.check && operationId) this.checkResponse(req, operationId, reply);
    record.status = reply.status;
    record.operationId = operationId;
    reply.headers = { ...this.rateHeaders(), ...reply.headers };
    return reply;
  }

  private checkResponse(req: Incoming, operationId: string, reply: Reply): void {
    let problems: string[];
    try {
      problems = this.checker.checkResponse(operationId, reply.status, reply.body);
    } catch (err) {
      problems = [`cannot check the response: ${err instanceof Error ? err.message : String(err)}`];
    }
    for (const p of problems) this.violation(`${req.method} ${req.pathname} (${operationId}) -> ${reply.status}: ${p}`);
  }

  private async dispatch(req: Incoming): Promise<Outcome> {
    const match = this.checker.match(req.method, req.pathname);
    if (!match || !match.served) {
      const what = match
        ? `${match.operationId} (${req.method} ${match.template}) is not emulated`
        : "matches no operation of GitHub's API";
      this.violation(`${req.method} ${req.pathname}: ${what}`);
      return { reply: basic(404, "Not Found"), operationId: match?.operationId ?? null, check: false };
    }
    const { operationId, params } = match;
    const where = `${req.method} ${req.pathname} (${operationId})`;
    let body: unknown;
    if (req.body && req.body.length > 0) {
      try {
        body = JSON.parse(req.body.toString("utf8"));
      } catch {
        this.violation(`${where}: request body is not JSON`);
        return { reply: basic(400, "Problems parsing JSON"), operationId, check: false };
      }
    }
    const problems = this.checker.checkRequest(operationId, params, req.query, body);
    for (const p of problems) this.violation(`${where}: ${p}`);
    const fault = this.takeFault();
    if (fault) return { reply: fault, operationId, check: false };
    const auth = this.authenticate(operationId, req.authorization);
    if (typeof auth !== "string") return { reply: auth, operationId, check: true };
    if (params.owner !== undefined && !this.isOurRepo(params.owner, params.repo ?? "")) {
      return { reply: basic(404, "Not Found"), operationId, check: true };
    }
    const bodyProblem = problems.find((p) => p.startsWith("request body"));
    if (bodyProblem) return { reply: basic(422, `Invalid request.\n\n${bodyProblem}`), operationId, check: true };
    if (operationId === "rate-limit/get")
      return { reply: { status: 200, body: rateLimitBody(this.rate) }, operationId, check: true };
    this.rollRateWindow();
    if (this.rate.used >= this.rate.limit)
      return { reply: this.primaryLimitReply(403, this.rate.resetS), operationId, check: false };
    this.rate.used++;
    const violation = (message: string) => this.violation(`${where}: ${message}`);
    const ctx = { state: this.state, params, query: req.query, body: (body ?? {}) as Json, auth, violation };
    const reply = await HANDLERS[operationId]!(ctx);
    return { reply, operationId, check: true };
  }

  private isOurRepo(owner: string, repo: string): boolean {
    return (
      owner.toLowerCase() === this.state.site.owner.toLowerCase() &&
      repo.toLowerCase() === this.state.site.repo.toLowerCase()
    );
  }

  private takeFault(): Reply | null {
    const fault = this.faults[0];
    if (!fault) return null;
    if (--fault.count <= 0) this.faults.shift();
    if (fault.kind === "server-error") return basic(fault.status ?? 500, "Server Error");
    if (fault.kind === "secondary-rate-limit") {
      const message =
        "You have exceeded a secondary rate limit. Please wait a few minutes before you try again. " +
        `If you reach out to GitHub Support for help, please include the request ID ${randomBytes(4).toString("hex").toUpperCase()}.`;
      return {
        status: 403,
        body: { message, documentation_url: SECONDARY_DOCS, status: "403" },
        headers: { "retry-after": String(fault.retryAfterS) },
      };
    }
    return this.primaryLimitReply(fault.status ?? 403, Math.floor(Date.now() / 1000) + fault.resetInS);
  }

  private primaryLimitReply(status: number, resetS: number): Reply {
    const headers = {
      "x-ratelimit-remaining": "0",
      "x-ratelimit-used": String(this.rate.limit),
      "x-ratelimit-reset": String(resetS),
    };
    const message = `API rate limit exceeded for installation ID ${this.state.app.installationId}.`;
    return { status, body: { message, documentation_url: PRIMARY_DOCS, status: String(status) }, headers };
  }

  /** The kind of credentials, or the 401 reply. */
  private authenticate(operationId: string, authorization: string | null): AuthKind | Reply {
    if (this.revoked) return basic(401, "Bad credentials");
    const m = /^(token|bearer)\s+(\S+)$/i.exec(authorization ?? "");
    if (!m) return basic(401, "Requires authentication");
    const credential = m[2]!;
    if (APP_JWT_OPERATIONS.has(operationId)) {
      const { appId, publicKey } = this.state.app;
      const problem = verifyAppJwt(credential, appId, publicKey, Math.floor(Date.now() / 1000));
      return problem === null ? "app-jwt" : basic(401, problem);
    }
    if (credential === this.state.token) return "token";
    const expiresMs = this.state.installationTokens.get(credential);
    if (expiresMs !== undefined && expiresMs > Date.now()) return "installation";
    return basic(401, "Bad credentials");
  }

  /** Starts a new hour of the primary rate limit when the last one ended. */
  private rollRateWindow(): void {
    const nowS = Math.floor(Date.now() / 1000);
    if (nowS >= this.rate.resetS) {
      this.rate.used = 0;
      this.rate.resetS = nowS + 3600;
    }
  }

  private rateHeaders(): Record<string, string> {
    this.rollRateWindow();
    return {
      "x-ratelimit-limit": String(this.rate.limit),
      "x-ratelimit-remaining": String(Math.max(this.rate.limit - this.rate.used, 0)),
      "x-ratelimit-used": String(this.rate.used),
      "x-ratelimit-reset": String(this.rate.resetS),
      "x-ratelimit-resource": "core",
    };
  }

  async mergePullRequest(pullNumber: number): Promise<string> {
    const result = await this.serialize(() => mergePull(this.state, pullNumber));
    if (result instanceof Error) throw new Error(`cannot merge pull request #${pullNumber}`, { cause: result });
    return result;
  }

  async commitToBase(files: Record<string, string>, message: string): Promise<string> {
    return this.serialize(async () => {
      const { git, defaultBranch } = this.state;
      const ref = `refs/heads/${defaultBranch}`;
      const tip = await git.readRef(ref);
      const sha = await commitFiles(git, tip, files, message);
      await git.updateRef(ref, sha, tip ?? "");
      this.state.pushedAt = nowIso();
      return sha;
    });
  }
}

function basic(status: number, message: string): Reply {
  return { status, body: { message, documentation_url: "https://docs.github.com/rest", status: String(status) } };
}

async function commitFiles(
  git: GitRepo,
  parent: string | null,
  files: Record<string, string>,
  message: string,
): Promise<string> {
  const changes = [];
  for (const [path, content] of Object.entries(files)) {
    if (!isValidTreePath(path)) throw new Error(`file path "${path}" is not a valid path inside a repository`);
    changes.push({ path, mode: "100644", sha: await git.hashBlob(Buffer.from(content, "utf8")) });
  }
  const base = parent ? (await git.readCommit(parent)).tree : null;
  const tree = await git.buildTree(base, changes);
  const who = { name: "A Human", email: "human@example.com", date: nowIso() };
  return git.commitTree(tree, parent ? [parent] : [], message, who, who);
}

function readBody(req: IncomingMessage): Promise<Buffer | "too-large"> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on("data", (c: Buffer) => {
      size += c.length;
      if (size <= MAX_BODY_BYTES) chunks.push(c);
    });
    req.on("end", () => resolve(size > MAX_BODY_BYTES ? "too-large" : Buffer.concat(chunks)));
    req.on("error", reject);
  });
}

function send(res: ServerResponse, reply: Reply): void {
  const headers: Record<string, string> = {
    "x-github-api-version-selected": "2022-11-28",
    "x-github-media-type": "github.v3; format=json",
    "x-github-request-id": randomBytes(8).toString("hex").toUpperCase(),
    ...reply.headers,
  };
  if (reply.body === undefined || reply.status === 204) {
    res.writeHead(reply.status, headers).end();
    return;
  }
  const text = JSON.stringify(reply.body);
  headers["content-type"] = "application/json; charset=utf-8";
  headers["content-length"] = String(Buffer.byteLength(text));
  res.writeHead(reply.status, headers).end(text);
}

function toIncoming(req: IncomingMessage, body: Buffer | null): Incoming {
  const rawPath = req.url ?? "/";
  const url = new URL(rawPath, "http://localhost");
  let pathname = url.pathname;
  if (pathname === "/api/v3" || pathname.startsWith("/api/v3/")) pathname = pathname.slice("/api/v3".length) || "/";
  const authorization = typeof req.headers.authorization === "string" ? req.headers.authorization : null;
  return {
    method: (req.method ?? "GET").toUpperCase(),
    rawPath,
    pathname,
    query: url.searchParams,
    authorization,
    body,
  };
}

async function onRequest(server: FakeGitHubServer, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const body = await readBody(req);
  if (body === "too-large") {
    server.violation(`${req.method} ${req.url}: request body larger than ${MAX_BODY_BYTES} bytes`);
    send(res, basic(413, "Request body too large"));
    return;
  }
  const reply = await server.serialize(() => server.handle(toIncoming(req, body)));
  send(res, reply);
}

function listen(srv: Server): Promise<number> {
  return new Promise((resolve, reject) => {
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const addr = srv.address();
      resolve(typeof addr === "object" && addr ? addr.port : 0);
    });
  });
}

async function newAppKeys(): Promise<{ publicKey: KeyObject; privateKeyPem: string }> {
  return new Promise((resolve, reject) => {
    generateKeyPair("rsa", { modulusLength: 2048 }, (err, publicKey, privateKey) => {
      if (err) return reject(new Error("cannot generate the GitHub App key pair", { cause: err }));
      resolve({ publicKey, privateKeyPem: privateKey.export({ type: "pkcs8", format: "pem" }).toString() });
    });
  });
}

async function initRepo(opts: FakeGitHubOptions, baseBranch: string): Promise<GitRepo> {
  const repoDir = join(opts.dir, "repo.git");
  await mkdir(repoDir, { recursive: true });
  const git = await GitRepo.init(repoDir, baseBranch);
  if ((await git.listRefs("refs/")).length > 0)
    throw new Error(`${repoDir} already holds a repository: give startFakeGitHub a fresh dir`);
  const sha = await commitFiles(git, null, opts.files ?? { "README.md": "# test repository\n" }, "Initial commit");
  await git.updateRef(`refs/heads/${baseBranch}`, sha, "");
  return git;
}

/** Starts the server on a free loopback port with one repository holding an initial commit on baseBranch. */
export async function startFakeGitHub(opts: FakeGitHubOptions): Promise<FakeGitHub> {
  const owner = opts.owner ?? "moe-org";
  const repo = opts.repo ?? "deployments";
  const baseBranch = opts.baseBranch ?? "main";
  const token = opts.token ?? `ghp_${randomBytes(18).toString("base64url")}`;
  const [checker, keys, git] = await Promise.all([
    loadOpenApiChecker(SERVED_OPERATIONS),
    newAppKeys(),
    initRepo(opts, baseBranch),
  ]);
  const app = {
    appId: opts.app?.appId ?? 1001,
    installationId: opts.app?.installationId ?? 2002,
    slug: opts.app?.slug ?? "moe-operator-test",
  };
  const httpServer = createServer();
  const port = await listen(httpServer);
  const url = `http://127.0.0.1:${port}`;
  const state: RepoState = {
    site: { apiUrl: url, htmlUrl: url, owner, repo, ownerId: 1000, repoId: 5000, createdAt: nowIso() },
    git,
    defaultBranch: baseBranch,
    token,
    app: { ...app, publicKey: keys.publicKey },
    installationTokens: new Map(),
    pulls: [],
    comments: [],
    nextIssueNumber: 1,
    nextId: 7000,
    pushedAt: nowIso(),
  };
  const server = new FakeGitHubServer(state, checker);
  httpServer.on("request", (req, res) => {
    onRequest(server, req, res).catch((err: unknown) => {
      server.violation(`${req.method} ${req.url}: ${err instanceof Error ? err.message : String(err)}`);
      if (!res.headersSent) send(res, basic(500, "local GitHub API server error"));
    });
  });
  return {
    url,
    token,
    owner,
    repo,
    baseBranch,
    repoDir: git.dir,
    app: { ...app, privateKeyPem: keys.privateKeyPem },
    requests: server.requests,
    violations: server.violations,
    inject: (fault) => server.inject(fault),
    pullRequests: () =>
      state.pulls.map((p) => ({
        number: p.number,
        state: p.state,
        merged: p.mergedAt !== null,
        title: p.title,
        body: p.body,
        head: p.head,
        base: p.base,
        headSha: p.headSha,
      })),
    comments: () => state.comments.map((c) => ({ issueNumber: c.issueNumber, body: c.body })),
    commitToBase: (files, message) => server.commitToBase(files, message),
    mergePullRequest: (pullNumber) => server.mergePullRequest(pullNumber),
    close: () =>
      new Promise<void>((resolve) => {
        httpServer.closeAllConnections();
        httpServer.close(() => resolve());
      }),
  };
}
