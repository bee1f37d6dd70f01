// Pull-request mode: the third way to act on a decision, beside writing to the
// cluster (Auto) and writing nothing (Recommend). observe() folds each decision
// into the evidence (src/domain/gitops), and when the proposal changes it starts
// a background sync (off the reconcile worker, one at a time per deployment):
// edit the manifest on the deployment's long-lived branch and open or update its
// one pull request. A constant world sends no request at all.
import { createHash } from "node:crypto";
import type { Logger } from "pino";
import { ConditionType, ConditionReason } from "../api/constants.ts";
import type { GitOpsSpec, MoEDeployment } from "../api/schema.ts";
import {
  branchName,
  editManifest,
  observeBounds,
  proposeBounds,
  pullRequestBody,
  pullRequestTitle,
  BRANCH_PREFIX,
  type BoundObservation,
  type BoundTrack,
  type Bounds,
  type DeploymentRef,
  type Proposal,
} from "../domain/gitops/index.ts";
import type { Clock } from "../runtime/clock.ts";
import {
  createGitHubClient,
  orNotFound,
  toGitHubError,
  GitHubError,
  type GitHub,
  type GitHubClientOptions,
} from "./github.ts";
import { appJwt, InstallationTokenCache } from "./app-auth.ts";

export interface GitOpsCondition {
  type: string;
  status: "True" | "False" | "Unknown";
  reason: string;
  message: string;
}

export interface PullRequestSyncDeps {
  /** Data of a Secret in a namespace (decoded), undefined when it does not exist. */
  readSecret(namespace: string, name: string): Promise<Record<string, string> | undefined>;
  /** Records an event on the MoEDeployment. */
  event(
    d: { namespace: string; name: string; uid?: string },
    type: "Normal" | "Warning",
    reason: string,
    message: string,
  ): Promise<void>;
  /** Asks for a reconcile of key (a background sync finished). */
  requeue(key: string): void;
  /** Only the leader writes to GitHub. */
  canWrite(): boolean;
  clock: Clock;
  logger: Logger;
  /** API base URLs spec.gitops.apiUrl may name (exact match, trailing slash ignored). */
  allowedApiUrls: readonly string[];
  /** Client knobs (retries, waits, timeouts, fetch) for tests. */
  client?: Partial<Omit<GitHubClientOptions, "baseUrl" | "auth" | "logger">>;
}

interface Pushed {
  proposal: Proposal;
  contentHash: string;
}

interface Entry {
  uid: string;
  ref: DeploymentRef;
  gitops: GitOpsSpec;
  track?: BoundTrack;
  pending?: Proposal;
  pushed?: Pushed;
  prUrl?: string;
  commitsMs: number[];
  running: boolean;
  blockedUntilMs: number;
  failures: number;
  condition: GitOpsCondition;
}

const MAX_BACKOFF_MS = 600_000;
const HOUR_MS = 3_600_000;
/** Fields that may log: never headers, tokens or keys. */
const REDACT = [
  "token",
  "*.token",
  "authorization",
  "*.authorization",
  "headers",
  "*.headers",
  "privateKey",
  "*.privateKey",
  "err.request",
  "err.response",
];

export function gitopsCondition(status: GitOpsCondition["status"], reason: string, message: string): GitOpsCondition {
  return { type: ConditionType.GitOpsSynced, status, reason, message };
}

function boundsOf(d: MoEDeployment): Bounds {
  const s = d.spec;
  return {
    minShards: s.scaling.minShards,
    maxShards: s.scaling.maxShards,
    maxUsdPerHour: s.cost.maxUsdPerHour,
    coverageShards: Math.ceil(s.model.routedExperts / s.model.expertSlotsPerGpu),
  };
}

const normalizeUrl = (u: string) => u.replace(/\/+$/, "");

export class PullRequestSync {
  readonly #d: PullRequestSyncDeps;
  readonly #log: Logger;
  readonly #entries = new Map<string, Entry>();
  /** uids whose branch was checked for removal after a switch away from PullRequest (once per process). */
  readonly #retired = new Set<string>();
  readonly #tokens = new InstallationTokenCache();

  constructor(deps: PullRequestSyncDeps) {
    this.#d = deps;
    this.#log = deps.logger.child({ component: "gitops" }, { redact: { paths: REDACT, censor: "[REDACTED]" } });
  }

  /** Mode PullRequest: fold the decision in; start a sync when the proposal changed. Returns the condition to publish. */
  observe(d: MoEDeployment, o: BoundObservation): GitOpsCondition {
    const key = `${d.metadata.namespace}/${d.metadata.name}`;
    const gitops = d.spec.gitops!;
    let e = this.#entries.get(key);
    if (!e || e.uid !== d.metadata.uid) {
      e = {
        uid: d.metadata.uid ?? "",
        ref: { namespace: d.metadata.namespace!, name: d.metadata.name! },
        gitops,
        commitsMs: [],
        running: false,
        blockedUntilMs: 0,
        failures: 0,
        condition: gitopsCondition("True", ConditionReason.NoChangeProposed, "learning: nothing proposed yet"),
      };
      this.#entries.set(key, e);
      this.#retired.delete(e.uid);
    }
    if (JSON.stringify(e.gitops) !== JSON.stringify(gitops)) {
      e.gitops = gitops;
      e.pushed = undefined; // another repository or path: write it there
      e.blockedUntilMs = 0;
    }
    const bounds = boundsOf(d);
    e.track = observeBounds(e.track, bounds, o);
    const settings = {
      minChangePercent: gitops.minChangePercent,
      learningWindowMs: gitops.learningWindowSeconds * 1000,
      raiseAfterMs: gitops.raiseAfterSeconds * 1000,
      lowerAfterMs: gitops.lowerAfterSeconds * 1000,
    };
    e.pending = proposeBounds(bounds, e.track, settings, o.nowMs, e.pending);
    if (!e.pending) {
      e.pushed = undefined;
      if (!e.running)
        e.condition = gitopsCondition(
          "True",
          ConditionReason.NoChangeProposed,
          e.prUrl
            ? `nothing to propose beyond what Git holds (last pull request: ${e.prUrl})`
            : "nothing to propose: the bounds fit what was observed",
        );
      return e.condition;
    }
    if (e.pushed?.proposal === e.pending || e.running || o.nowMs < e.blockedUntilMs) return e.condition;
    const allowed = this.#d.allowedApiUrls.map(normalizeUrl).includes(normalizeUrl(gitops.apiUrl));
    if (!allowed) {
      e.condition = gitopsCondition(
        "False",
        ConditionReason.ApiUrlNotAllowed,
        `spec.gitops.apiUrl ${gitops.apiUrl} is not in the operator's --github-allowed-urls (${this.#d.allowedApiUrls.join(", ") || "none"})`,
      );
      return e.condition;
    }
    if (!this.#d.canWrite()) return e.condition;
    e.running = true;
    const entry = e;
    const proposal = e.pending;
    void this.#push(key, entry, proposal).finally(() => {
      entry.running = false;
      this.#d.requeue(key);
    });
    return e.condition;
  }

  /** Not in mode PullRequest: close the deployment's pull request and delete its branch, if any (checked once per process). */
  retire(d: MoEDeployment): undefined {
    const key = `${d.metadata.namespace}/${d.metadata.name}`;
    const e = this.#entries.get(key);
    const gitops = d.spec.gitops ?? e?.gitops;
    const uid = d.metadata.uid ?? "";
    this.#entries.delete(key);
    if (!gitops || this.#retired.has(uid) || !this.#d.canWrite()) return undefined;
    if (this.#retired.size >= 100_000) this.#retired.clear();
    this.#retired.add(uid);
    void this.#close(
      { namespace: d.metadata.namespace!, name: d.metadata.name!, uid },
      gitops,
      `spec.mode is ${d.spec.mode}`,
    );
    return undefined;
  }

  /** The MoEDeployment is gone: close its pull request if spec.gitops.pullRequests.closeOnDelete. */
  forget(key: string): void {
    const e = this.#entries.get(key);
    this.#entries.delete(key);
    if (!e || !e.gitops.pullRequests.closeOnDelete || !this.#d.canWrite()) return;
    void this.#close({ ...e.ref, uid: e.uid }, e.gitops, "the MoEDeployment was deleted", false);
  }

  // ---------------------------------------------------------------------------------------

  async #push(key: string, e: Entry, proposal: Proposal): Promise<void> {
    const nowMs = () => this.#d.clock.nowMs();
    try {
      const gh = await this.#client(e.ref, e.gitops);
      const outcome = await this.#write(gh, e, proposal);
      e.failures = 0;
      e.blockedUntilMs = outcome.retryAtMs ?? 0;
      e.condition = outcome.condition;
      if (outcome.done) e.pushed = { proposal, contentHash: outcome.contentHash ?? "" };
    } catch (err) {
      const g = err instanceof GitHubError ? err : toGitHubError(err, "GitHub", nowMs());
      e.failures += 1;
      const backoffMs = Math.min(MAX_BACKOFF_MS, 5_000 * 2 ** Math.min(e.failures - 1, 10));
      const f = g.failure;
      e.blockedUntilMs = nowMs() + (f.kind === "RateLimited" ? Math.max(f.retryAfterMs, 1_000) : backoffMs);
      const reason =
        f.kind === "Auth"
          ? ConditionReason.AuthFailed
          : f.kind === "RateLimited"
            ? ConditionReason.RateLimited
            : ConditionReason.GitHubError;
      const previous = e.condition.reason;
      e.condition = gitopsCondition(
        "False",
        reason,
        `${g.message}; retrying after ${new Date(e.blockedUntilMs).toISOString()}`,
      );
      this.#log.warn({ moedeployment: key, reason, status: f.status, error: g.message }, "pull-request sync failed");
      if (previous !== reason) await this.#d.event(e.ref, "Warning", reason, g.message);
    }
  }

  async #write(gh: GitHub, e: Entry, proposal: Proposal): Promise<WriteOutcome> {
    const g = e.gitops;
    const [owner, repo] = g.repository.split("/") as [string, string];
    const call: Call = async <T>(what: string, p: Promise<T>) => {
      try {
        return await p;
      } catch (err) {
        throw toGitHubError(err, what, this.#d.clock.nowMs());
      }
    };
    const t: Target = { gh, call, owner, repo, branch: branchName(e.ref), g };
    const prepared = await this.#prepareEdit(t, e, proposal);
    if ("outcome" in prepared) return prepared.outcome;
    const { baseSha, file, text } = prepared;
    const contentHash = createHash("sha256").update(text).digest("hex");
    const title = pullRequestTitle(e.ref, proposal);
    const body = pullRequestBody(e.ref, proposal, g.path);

    const current = await this.#readBranch(t);
    const nowMs = this.#d.clock.nowMs();
    e.commitsMs = e.commitsMs.filter((x) => x > nowMs - HOUR_MS);
    const needsCommit = current.onBranch?.text !== text;
    const limited = await this.#checkLimits(t, e, { needsCommit, hasPr: current.pr !== undefined, nowMs });
    if (limited) return limited;
    if (needsCommit) {
      await this.#commit(t, { branchExists: current.branchExists, baseSha, fileSha: file.sha, text, title, proposal });
      e.commitsMs.push(nowMs);
    }
    const { pr, verb } = await this.#syncPullRequest(t, current.pr, { title, body, needsCommit });
    e.prUrl = pr.html_url;
    if (verb)
      await this.#d.event(
        e.ref,
        "Normal",
        verb === "opened" ? "PullRequestOpened" : "PullRequestUpdated",
        `${verb} ${pr.html_url}: ${title}`,
      );
    this.#log.info(
      {
        moedeployment: `${e.ref.namespace}/${e.ref.name}`,
        pullRequest: pr.html_url,
        committed: needsCommit,
        verb: verb ?? "unchanged",
      },
      "pull request in sync",
    );
    return {
      condition: gitopsCondition("True", ConditionReason.PullRequestOpen, `${pr.html_url}: ${title}`),
      done: true,
      contentHash,
    };
  }

  /** Reads the base branch and its manifest and edits it; an outcome when there is nothing to write. */
  async #prepareEdit(
    t: Target,
    e: Entry,
    proposal: Proposal,
  ): Promise<{ outcome: WriteOutcome } | { baseSha: string; file: { text: string; sha: string }; text: string }> {
    const { gh, call, owner, repo, g } = t;
    const baseRef = await call(
      `reading branch ${g.baseBranch}`,
      gh.rest.git.getRef({ owner, repo, ref: `heads/${g.baseBranch}` }),
    );
    const baseFile = await call(
      `reading ${g.path} on ${g.baseBranch}`,
      orNotFound(gh.rest.repos.getContent({ owner, repo, path: g.path, ref: g.baseBranch })),
    );
    const file = fileOf(baseFile?.data);
    if (!file)
      return {
        outcome: {
          condition: gitopsCondition(
            "False",
            ConditionReason.ManifestNotFound,
            `spec.gitops.path ${g.path} is not a file on branch ${g.baseBranch} of ${g.repository}`,
          ),
          done: true,
        },
      };
    const values = Object.fromEntries(proposal.changes.map((c) => [c.field, c.to]));
    const edited = editManifest(file.text, g.path, e.ref, values);
    if (!edited.ok)
      return {
        outcome: {
          condition: gitopsCondition("False", ConditionReason.ManifestNotFound, `spec.gitops.path: ${edited.problem}`),
          done: true,
        },
      };
    if (!edited.changed)
      return {
        outcome: {
          condition: gitopsCondition(
            "True",
            ConditionReason.NoChangeProposed,
            `${g.path} on ${g.baseBranch} already holds the proposed values (merged, not yet applied to the cluster)`,
          ),
          done: true,
        },
      };
    return { baseSha: baseRef.data.object.sha, file, text: edited.text };
  }

  /** The deployment's open pull request, whether its branch exists, and the manifest on it. */
  async #readBranch(
    t: Target,
  ): Promise<{ pr?: PullRequestView; branchExists: boolean; onBranch?: { text: string; sha: string } }> {
    const { gh, call, owner, repo, branch, g } = t;
    const openPrs = await call(
      "listing pull requests",
      gh.rest.pulls.list({ owner, repo, state: "open", head: `${owner}:${branch}`, per_page: 10 }),
    );
    const pr: PullRequestView | undefined = openPrs.data.find((p) => p.head.ref === branch);
    const branchRef = await call(
      `reading branch ${branch}`,
      orNotFound(gh.rest.git.getRef({ owner, repo, ref: `heads/${branch}` })),
    );
    const onBranch = branchRef
      ? fileOf(
          (
            await call(
              `reading ${g.path} on ${branch}`,
              orNotFound(gh.rest.repos.getContent({ owner, repo, path: g.path, ref: branch })),
            )
          )?.data,
        )
      : undefined;
    return { pr, branchExists: Boolean(branchRef), onBranch };
  }

  /** An outcome when spec.gitops.pullRequests.hourlyLimit or concurrentLimit holds the proposal back. */
  async #checkLimits(
    t: Target,
    e: Entry,
    s: { needsCommit: boolean; hasPr: boolean; nowMs: number },
  ): Promise<WriteOutcome | undefined> {
    const { gh, call, owner, repo, g } = t;
    if (s.needsCommit && e.commitsMs.length >= g.pullRequests.hourlyLimit) {
      return {
        condition: gitopsCondition(
          "False",
          ConditionReason.PullRequestLimited,
          `spec.gitops.pullRequests.hourlyLimit: ${e.commitsMs.length} commits in the last hour${e.prUrl ? ` to ${e.prUrl}` : ""}; the proposal waits`,
        ),
        done: false,
        retryAtMs: e.commitsMs[0]! + HOUR_MS,
      };
    }
    if (!s.hasPr) {
      const all = await call(
        "listing pull requests",
        gh.rest.pulls.list({ owner, repo, state: "open", per_page: 100 }),
      );
      const ours = all.data.filter((p) => p.head.ref.startsWith(BRANCH_PREFIX)).length;
      if (ours >= g.pullRequests.concurrentLimit) {
        return {
          condition: gitopsCondition(
            "False",
            ConditionReason.PullRequestLimited,
            `spec.gitops.pullRequests.concurrentLimit: ${ours} moe-operator pull requests are open in ${g.repository}; the proposal waits`,
          ),
          done: false,
          retryAtMs: s.nowMs + 300_000,
        };
      }
    }
    return undefined;
  }

  /** Points the branch at the base's head and commits the edited manifest on it. */
  async #commit(
    t: Target,
    c: { branchExists: boolean; baseSha: string; fileSha: string; text: string; title: string; proposal: Proposal },
  ): Promise<void> {
    const { gh, call, owner, repo, branch, g } = t;
    // The branch restarts from the base's head at each update: it never falls behind.
    if (c.branchExists)
      await call(
        `resetting ${branch}`,
        gh.rest.git.updateRef({ owner, repo, ref: `heads/${branch}`, sha: c.baseSha, force: true }),
      );
    else
      await call(
        `creating ${branch}`,
        gh.rest.git.createRef({ owner, repo, ref: `refs/heads/${branch}`, sha: c.baseSha }),
      );
    await call(
      `committing ${g.path}`,
      gh.rest.repos.createOrUpdateFileContents({
        owner,
        repo,
        path: g.path,
        branch,
        sha: c.fileSha,
        message: `${c.title}\n\n${c.proposal.changes.map((x) => `- ${x.field}: ${x.why}`).join("\n")}`,
        content: Buffer.from(c.text, "utf8").toString("base64"),
      }),
    );
  }

  /** Opens the pull request, or updates its title and body when they changed. */
  async #syncPullRequest(
    t: Target,
    existing: PullRequestView | undefined,
    s: { title: string; body: string; needsCommit: boolean },
  ): Promise<{ pr: PullRequestView; verb?: "opened" | "updated" }> {
    const { gh, call, owner, repo, branch, g } = t;
    const { title, body } = s;
    if (!existing) {
      const pr = await this.#createPr(gh, call, { owner, repo, title, head: branch, base: g.baseBranch, body });
      return { pr, verb: "opened" };
    }
    if (existing.title !== title || (s.needsCommit && existing.body !== body)) {
      const pr = (
        await call(
          "updating the pull request",
          gh.rest.pulls.update({ owner, repo, pull_number: existing.number, title, body }),
        )
      ).data;
      return { pr, verb: "updated" };
    }
    return { pr: existing };
  }

  async #createPr(
    gh: GitHub,
    call: Call,
    p: { owner: string; repo: string; title: string; head: string; base: string; body: string },
  ): Promise<PullRequestView> {
    try {
      return (await gh.rest.pulls.create(p)).data;
    } catch (err) {
      // 422: it exists already (opened by a previous process, or listed before it was visible).
      if ((err as { status?: number }).status !== 422)
        throw toGitHubError(err, "opening the pull request", this.#d.clock.nowMs());
      const open = await call(
        "listing pull requests",
        gh.rest.pulls.list({ owner: p.owner, repo: p.repo, state: "open", head: `${p.owner}:${p.head}`, per_page: 10 }),
      );
      const found = open.data.find((x) => x.head.ref === p.head);
      if (!found) throw toGitHubError(err, "opening the pull request", this.#d.clock.nowMs());
      return (
        await call(
          "updating the pull request",
          gh.rest.pulls.update({
            owner: p.owner,
            repo: p.repo,
            pull_number: found.number,
            title: p.title,
            body: p.body,
          }),
        )
      ).data;
    }
  }

  async #close(
    d: { namespace: string; name: string; uid: string },
    g: GitOpsSpec,
    why: string,
    recordEvent = true,
  ): Promise<void> {
    const [owner, repo] = g.repository.split("/") as [string, string];
    const branch = branchName(d);
    try {
      if (!this.#d.allowedApiUrls.map(normalizeUrl).includes(normalizeUrl(g.apiUrl))) return;
      const gh = await this.#client(d, g);
      const open = await gh.rest.pulls.list({ owner, repo, state: "open", head: `${owner}:${branch}`, per_page: 10 });
      for (const pr of open.data.filter((p) => p.head.ref === branch)) {
        await gh.rest.pulls.update({ owner, repo, pull_number: pr.number, state: "closed" });
        if (recordEvent) await this.#d.event(d, "Normal", "PullRequestClosed", `closed ${pr.html_url}: ${why}`);
        this.#log.info(
          { moedeployment: `${d.namespace}/${d.name}`, pullRequest: pr.html_url, why },
          "closed pull request",
        );
      }
      const ref = await orNotFound(gh.rest.git.getRef({ owner, repo, ref: `heads/${branch}` }));
      if (ref) await orNotFound(gh.rest.git.deleteRef({ owner, repo, ref: `heads/${branch}` }));
    } catch (err) {
      const g2 = toGitHubError(err, `closing the pull request of ${d.namespace}/${d.name}`, this.#d.clock.nowMs());
      this.#log.warn(
        { moedeployment: `${d.namespace}/${d.name}`, error: g2.message },
        "could not close the pull request",
      );
    }
  }

  /** A client authenticated from the Secret named in spec.gitops.credentials (read on every sync: rotation needs no restart). */
  async #client(d: DeploymentRef, g: GitOpsSpec): Promise<GitHub> {
    const c = g.credentials;
    const make = (auth: string) =>
      createGitHubClient({ ...this.#d.client, baseUrl: g.apiUrl, auth, logger: this.#log });
    const secretValue = async (field: string, ref: { name: string; key: string }) => {
      let data: Record<string, string> | undefined;
      try {
        data = await this.#d.readSecret(d.namespace, ref.name);
      } catch (err) {
        throw new GitHubError(
          {
            kind: "Auth",
            status: 0,
            message: `${field}: cannot read Secret ${d.namespace}/${ref.name}: ${(err as Error).message.split("\n")[0]}`,
          },
          err,
        );
      }
      const v = data?.[ref.key];
      if (!v)
        throw new GitHubError(
          {
            kind: "Auth",
            status: 0,
            message: `${field}: Secret ${d.namespace}/${ref.name} ${data ? `has no key ${ref.key}` : "does not exist (or the operator may not get it)"}`,
          },
          undefined,
        );
      return v.trim();
    };
    if (c.tokenSecretRef) return make(await secretValue("spec.gitops.credentials.tokenSecretRef", c.tokenSecretRef));
    const app = c.githubApp!;
    const pem = await secretValue("spec.gitops.credentials.githubApp.privateKeySecretRef", app.privateKeySecretRef);
    const cacheKey = `${normalizeUrl(g.apiUrl)}|${app.appId}|${app.installationId}|${createHash("sha256").update(pem).digest("hex")}`;
    const nowMs = this.#d.clock.nowMs();
    const cached = this.#tokens.get(cacheKey, nowMs);
    if (cached) return make(cached);
    let jwt: string;
    try {
      jwt = appJwt(app.appId, pem, nowMs);
    } catch (err) {
      throw new GitHubError(
        {
          kind: "Auth",
          status: 0,
          message: `spec.gitops.credentials.githubApp.privateKeySecretRef: ${(err as Error).message}`,
        },
        err,
      );
    }
    try {
      const r = await make(jwt).rest.apps.createInstallationAccessToken({ installation_id: app.installationId });
      this.#tokens.set(cacheKey, {
        token: r.data.token,
        expiresAtMs: Date.parse(r.data.expires_at) || nowMs + 3_000_000,
      });
      return make(r.data.token);
    } catch (err) {
      throw toGitHubError(
        err,
        `exchanging the GitHub App JWT for an installation token (app ${app.appId}, installation ${app.installationId})`,
        nowMs,
      );
    }
  }
}

type Call = <T>(what: string, p: Promise<T>) => Promise<T>;

/** Where #write writes: the client, the error-wrapping call, the repository and the deployment's branch. */
interface Target {
  gh: GitHub;
  call: Call;
  owner: string;
  repo: string;
  branch: string;
  g: GitOpsSpec;
}

interface WriteOutcome {
  condition: GitOpsCondition;
  done: boolean;
  contentHash?: string;
  retryAtMs?: number;
}

interface PullRequestView {
  number: number;
  html_url: string;
  title: string;
  body: string | null;
}

function fileOf(data: unknown): { text: string; sha: string } | undefined {
  const f = data as { type?: string; content?: string; encoding?: string; sha?: string } | undefined;
  if (!f || Array.isArray(data) || f.type !== "file" || typeof f.content !== "string" || typeof f.sha !== "string")
    return undefined;
  return { text: f.encoding === "base64" ? Buffer.from(f.content, "base64").toString("utf8") : f.content, sha: f.sha };
}
