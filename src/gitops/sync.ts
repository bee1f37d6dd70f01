// Pull-request mode: the third way to act on a decision, beside writing to the
// cluster (Auto) and writing nothing (Recommend). observe() folds each decision
// into the evidence (src/domain/gitops), and when the proposal changes it starts
// a background sync (off the reconcile worker, one at a time per deployment):
// edit the manifest on the deployment's long-lived branch and open or update its
// one pull request. A constant world sends no request at all.
import { createHash } from "node:crypto";
import type { Logger } from "pino";
import { ConditionType, ConditionReason } from "../api/constants.ts";
import type { GitOpsSpec, GitOpsStatus, MoEDeployment } from "../api/schema.ts";
import {
  branchName,
  adoptProposed,
  combineProposal,
  comparePlacement,
  proposeSchedules,
  recurringDailyPeaks,
  stableSchedules,
  type PlacementCandidate,
  type PlacementFileProposal,
  type ScheduleChange,
  editManifest,
  parsePlacementFile,
  placementWorthProposing,
  renderPlacementFile,
  readManifestValues,
  observeBounds,
  persistTrack,
  proposeBounds,
  restoreTrack,
  type PersistedTrack,
  pullRequestBody,
  pullRequestTitle,
  withdrawalComment,
  withdrawalReasons,
  BRANCH_PREFIX,
  MAX_PROPOSED_SCHEDULES,
  type BoundObservation,
  type BoundTrack,
  type Bounds,
  type DeploymentRef,
  type Proposal,
} from "../domain/gitops/index.ts";
import type { Clock } from "../runtime/clock.ts";
import { DEFAULT_FORECAST_OPTIONS, learnedDays, type ForecastState } from "../domain/prewarm/forecast.ts";
import {
  createGitHubClient,
  orNotFound,
  toGitHubError,
  GitHubError,
  type GitHub,
  type GitHubClientOptions,
} from "./github.ts";
import { appJwt, InstallationTokenCache } from "./app-auth.ts";

/** What one decision says beyond the bounds: the forecaster's table and the placement (src/gitops/observe.ts). */
export interface ProposalInputs {
  forecast?: ForecastState;
  /** Tokens/s one shard serves within the SLO (undefined: not known at this decision). */
  tokensPerShard?: number;
  placement?: PlacementCandidate;
}

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

/** status.gitops.pullRequestState. */
type PullRequestState = NonNullable<GitOpsStatus["pullRequestState"]>;

interface Pushed {
  proposal: Proposal;
  contentHash: string;
}

interface Entry {
  uid: string;
  ref: DeploymentRef;
  gitops: GitOpsSpec;
  track?: BoundTrack;
  /** The bounds part of the pending proposal, as proposeBounds returned it. */
  boundsPending?: Proposal;
  pending?: Proposal;
  /** The placement map on the base branch when it was last read (the reference for the next candidate). */
  placementInGit?: number[][];
  pushed?: Pushed;
  prUrl?: string;
  /**
   * Open: a pull request of ours may be open (a sync wrote to the branch). Closing: every
   * proposal was withdrawn since, the pull request is to be closed and the branch deleted.
   * Closed: done. Kept in status.gitops.pullRequestState, so a restart finishes a close.
   */
  prState?: PullRequestState;
  /**
   * The last non-empty proposal of this process, until a close after its withdrawal is done.
   * Only its withdrawal closes a pull request: after a restart the in-memory proposal is gone,
   * and an empty proposal then says nothing about the pull request (status Closing does).
   */
  lastProposal?: Proposal;
  /** Why the proposal was withdrawn, for the closing comment (unknown after a restart). */
  withdrawal?: string[];
  /** The condition's message after the close of a withdrawn proposal, until a proposal comes back. */
  closedMessage?: string;
  /** Pull requests this process commented on when closing them (a retried close does not comment twice). */
  commented: Set<number>;
  commitsMs: number[];
  /** Learned schedules pending before a restart (status.gitops.pendingSchedules), until the forecaster has the days again. */
  restoredSchedules?: readonly ScheduleChange[];
  /** First sync of this process: take the branch's values when the candidate is within the minimum change. */
  adopt: boolean;
  running: boolean;
  /** The background sync in flight and how to cancel it (close and retire wait for it to settle). */
  sync?: { done: Promise<void>; abort: AbortController };
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
  observe(d: MoEDeployment, o: BoundObservation, inputs: ProposalInputs = {}): GitOpsCondition {
    const key = `${d.metadata.namespace}/${d.metadata.name}`;
    const gitops = d.spec.gitops!;
    const e = this.#entryOf(key, d, o.nowMs);
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
    e.boundsPending = proposeBounds(bounds, e.track, settings, o.nowMs, e.boundsPending);
    const learned = o.nowMs - e.track.trackingSinceMs >= settings.learningWindowMs;
    e.pending = combineProposal(
      e.pending,
      {
        bounds: e.boundsPending,
        schedules: learned ? this.#schedules(d, e, inputs, o.nowMs) : undefined,
        placement: learned ? this.#placement(e, inputs) : undefined,
      },
      e.track,
      o.nowMs,
    );
    if (!e.pending) return this.#nothingToPropose(key, e, d, bounds, o.nowMs);
    e.lastProposal = e.pending;
    e.closedMessage = undefined;
    // A proposal back before its pull request was closed: the sync updates that pull request.
    if (e.prState === "Closing") e.prState = "Open";
    if (e.pushed?.proposal === e.pending || e.running || o.nowMs < e.blockedUntilMs) return e.condition;
    if (!this.#mayWrite(e)) return e.condition;
    const proposal = e.pending;
    this.#start(key, e, (signal) => this.#push(key, e, proposal, signal));
    return e.condition;
  }

  /** The deployment's entry; a new one (first observe of this process, or a new uid) continues from status.gitops. */
  #entryOf(key: string, d: MoEDeployment, nowMs: number): Entry {
    const known = this.#entries.get(key);
    if (known && known.uid === d.metadata.uid) return known;
    // After a restart: the windows and the last hour's commits continue from status.gitops.
    const saved = d.status?.gitops;
    const e: Entry = {
      uid: d.metadata.uid ?? "",
      ref: { namespace: d.metadata.namespace!, name: d.metadata.name! },
      gitops: d.spec.gitops!,
      track: saved ? restoreTrack(persistedOf(saved), nowMs) : undefined,
      prUrl: saved?.pullRequestUrl,
      // A status written before pullRequestState existed: a pull request with a URL may be open.
      prState: saved?.pullRequestState ?? (saved?.pullRequestUrl ? "Open" : undefined),
      commented: new Set(),
      commitsMs: (saved?.commitTimes ?? []).map((t) => Date.parse(t)).filter((t) => Number.isFinite(t)),
      restoredSchedules: schedulesOfStatus(saved?.pendingSchedules, d.spec.prewarm.coldStartSeconds),
      adopt: true,
      running: false,
      blockedUntilMs: 0,
      failures: 0,
      condition: gitopsCondition("True", ConditionReason.NoChangeProposed, "learning: nothing proposed yet"),
    };
    this.#entries.set(key, e);
    this.#retired.delete(e.uid);
    return e;
  }

  /** Nothing to propose: close the pull request when this process's proposal was withdrawn (or a restart left a close undone). */
  #nothingToPropose(key: string, e: Entry, d: MoEDeployment, bounds: Bounds, nowMs: number): GitOpsCondition {
    e.pushed = undefined;
    if (e.lastProposal && e.prState === "Open") {
      // Every proposal was withdrawn while a pull request of ours may be open (or a sync still
      // running for it opened one since): close it.
      e.prState = "Closing";
      e.withdrawal = withdrawalReasons(e.lastProposal, bounds, d.spec.prewarm.schedules ?? []);
    }
    if (e.prState === "Closing") return this.#startWithdraw(key, e, nowMs);
    if (!e.running)
      e.condition = gitopsCondition(
        "True",
        ConditionReason.NoChangeProposed,
        e.closedMessage ??
          (e.prUrl
            ? `nothing to propose beyond what Git holds (last pull request: ${e.prUrl}${e.prState === "Closed" ? ", no longer open" : ""})`
            : "nothing to propose: the bounds fit what was observed"),
      );
    return e.condition;
  }

  /** Whether a background sync may start: the API URL is allowed (else a False condition) and this process leads. */
  #mayWrite(e: Entry): boolean {
    const gitops = e.gitops;
    const allowed = this.#d.allowedApiUrls.map(normalizeUrl).includes(normalizeUrl(gitops.apiUrl));
    if (!allowed) {
      e.condition = gitopsCondition(
        "False",
        ConditionReason.ApiUrlNotAllowed,
        `spec.gitops.apiUrl ${gitops.apiUrl} is not in the operator's --github-allowed-urls (${this.#d.allowedApiUrls.join(", ") || "none"})`,
      );
      return false;
    }
    return this.#d.canWrite();
  }

  /** Runs task in the background, one at a time per deployment; close and retire cancel it through its signal. */
  #start(key: string, e: Entry, task: (signal: AbortSignal) => Promise<void>): void {
    e.running = true;
    const abort = new AbortController();
    const done = task(abort.signal).finally(() => {
      e.running = false;
      e.sync = undefined;
      this.#d.requeue(key);
    });
    e.sync = { done, abort };
  }

  /**
   * Every proposal was withdrawn: close the pull request (with a comment saying why) and delete
   * the branch in the background, bounded and retried like a sync (client retries, the backoff of
   * blockedUntilMs). Returns the condition to publish.
   */
  #startWithdraw(key: string, e: Entry, nowMs: number): GitOpsCondition {
    if (e.running || nowMs < e.blockedUntilMs || !this.#mayWrite(e)) return e.condition;
    if (e.condition.status === "True")
      e.condition = gitopsCondition(
        "True",
        ConditionReason.NoChangeProposed,
        `every proposal was withdrawn: closing ${e.prUrl ?? `the pull request of branch ${branchName(e.ref)}`}`,
      );
    this.#start(key, e, (signal) => this.#withdraw(key, e, signal));
    return e.condition;
  }

  async #withdraw(key: string, e: Entry, signal: AbortSignal): Promise<void> {
    try {
      const gh = await this.#client(e.ref, e.gitops, { signal });
      const t = this.#target(gh, e.ref, e.gitops);
      const comment = withdrawalComment(e.ref, e.withdrawal ?? []);
      const closed = await this.#closeOpen(t, e.ref, { why: "every proposal was withdrawn", comment, e });
      e.prState = "Closed";
      e.withdrawal = undefined;
      e.lastProposal = e.pending;
      e.failures = 0;
      e.blockedUntilMs = 0;
      e.closedMessage =
        closed.length > 0
          ? `closed ${closed.join(", ")}: every proposal was withdrawn, nothing is left to propose beyond what Git holds`
          : `nothing to propose beyond what Git holds; no pull request of branch ${t.branch} was open${e.prUrl ? ` (${e.prUrl} was merged or closed)` : ""}`;
      e.condition = gitopsCondition("True", ConditionReason.NoChangeProposed, e.closedMessage);
    } catch (err) {
      await this.#failed(key, e, err, signal);
    }
  }

  /** Learned pre-warm schedules to propose (the pending ones while the inputs are missing or within the minimum change). */
  #schedules(d: MoEDeployment, e: Entry, inputs: ProposalInputs, nowMs: number): readonly ScheduleChange[] | undefined {
    const g = e.gitops;
    if (!g.prewarmSchedules.enabled) return undefined;
    // Pending entries the cluster's spec now holds (merged and applied) are no longer proposed.
    const existing = (d.spec.prewarm.schedules ?? []).map((x) => ({ ...x }));
    const inSpec = (c: ScheduleChange) =>
      existing.some(
        (x) =>
          x.name === c.entry.name &&
          x.start === c.entry.start &&
          x.durationMinutes === c.entry.durationMinutes &&
          x.minShards === c.entry.minShards,
      );
    const prior = e.pending?.schedules ?? e.restoredSchedules;
    const held = prior?.filter((c) => !inSpec(c));
    const previous = held?.length === prior?.length ? prior : held;
    // Too few days seen (a restarted operator): no evidence either way, the pending entries stand.
    if (
      !inputs.forecast ||
      inputs.tokensPerShard === undefined ||
      learnedDays(inputs.forecast) < g.prewarmSchedules.minDays
    )
      return previous && previous.length > 0 ? previous : undefined;
    e.restoredSchedules = undefined;
    const peaks = recurringDailyPeaks(inputs.forecast, nowMs, g.prewarmSchedules, DEFAULT_FORECAST_OPTIONS);
    const next = proposeSchedules(peaks, {
      existing,
      tokensPerShard: inputs.tokensPerShard,
      minShards: d.spec.scaling.minShards,
      // Never above maxShards, nor above a lower maxShards proposed in the same pull request (a CEL rule).
      maxShards: Math.min(
        d.spec.scaling.maxShards,
        e.boundsPending?.changes.find((c) => c.field === "maxShards")?.to ?? Infinity,
      ),
      minChangePercent: g.minChangePercent,
      leadSeconds: d.spec.prewarm.coldStartSeconds,
    });
    return stableSchedules(previous, next, g.minChangePercent);
  }

  /** The placement file to propose: the pending one until a candidate beats it (or Git's) by minBalancednessGain. */
  #placement(e: Entry, inputs: ProposalInputs): PlacementFileProposal | undefined {
    const f = e.gitops.placementFile;
    const previous = e.pending?.placement;
    if (!f) return undefined;
    const c = inputs.placement;
    if (!c) return previous;
    const reference = previous?.candidate.map ?? e.placementInGit;
    const comparison = comparePlacement(c, reference);
    // Nothing known about Git yet: the sync weighs the candidate against the file on the base branch.
    if (reference !== undefined && !placementWorthProposing(comparison, c, f.minBalancednessGain)) return previous;
    if (previous && previous.path === f.path && comparison.movedPercent === 0) return previous;
    return { path: f.path, candidate: c, comparison };
  }

  /** What the proposals rest on, for status.gitops (kept across restarts); undefined before the first observe. */
  statusOf(d: MoEDeployment): GitOpsStatus | undefined {
    const e = this.#entries.get(`${d.metadata.namespace}/${d.metadata.name}`);
    if (!e?.track || e.uid !== (d.metadata.uid ?? "")) return undefined;
    const hourAgo = this.#d.clock.nowMs() - HOUR_MS;
    const commits = e.commitsMs.filter((t) => t > hourAgo).slice(-100);
    return {
      ...statusOfTrack(persistTrack(e.track)),
      commitTimes: commits.length > 0 ? commits.map(iso) : undefined,
      pullRequestUrl: e.prUrl,
      pullRequestState: e.prState,
      pendingSchedules: statusOfSchedules(e.pending?.schedules ?? e.restoredSchedules),
    };
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
    void cancelSync(e).then(() =>
      this.#close(
        { namespace: d.metadata.namespace!, name: d.metadata.name!, uid },
        gitops,
        `spec.mode is ${d.spec.mode}`,
      ),
    );
    return undefined;
  }

  /** The MoEDeployment is gone: forget what was tracked (its pull request was closed by the finalizer, see close). */
  forget(key: string): void {
    this.#entries.delete(key);
  }

  /**
   * Deletion (the finalizer): cancel a sync running in the background and wait for it to settle
   * (so it cannot open a pull request afterwards), then close the deployment's pull request and
   * delete its branch. `signal` bounds the close (no retries, no rate-limit waits). Resolves with
   * the problem when GitHub could not be reached in time or refused; never throws.
   */
  async close(
    d: MoEDeployment,
    why: string,
    signal?: AbortSignal,
  ): Promise<{ ok: true } | { ok: false; problem: string }> {
    const gitops = d.spec.gitops;
    if (!gitops) return { ok: true };
    const ref = { namespace: d.metadata.namespace!, name: d.metadata.name!, uid: d.metadata.uid ?? "" };
    const key = `${ref.namespace}/${ref.name}`;
    const e = this.#entries.get(key);
    this.#entries.delete(key);
    await cancelSync(e);
    return this.#close(ref, gitops, why, signal);
  }

  // ---------------------------------------------------------------------------------------

  async #push(key: string, e: Entry, proposal: Proposal, signal: AbortSignal): Promise<void> {
    try {
      const gh = await this.#client(e.ref, e.gitops, { signal });
      const outcome = await this.#write(gh, e, proposal);
      e.failures = 0;
      e.blockedUntilMs = outcome.retryAtMs ?? 0;
      e.condition = outcome.condition;
      if (outcome.done) e.pushed = { proposal: outcome.proposal ?? proposal, contentHash: outcome.contentHash ?? "" };
    } catch (err) {
      await this.#failed(key, e, err, signal);
    }
  }

  /** A background sync or close failed: back off (blockedUntilMs) and say why in a False condition. */
  async #failed(key: string, e: Entry, err: unknown, signal: AbortSignal): Promise<void> {
    const nowMs = () => this.#d.clock.nowMs();
    if (signal.aborted) return; // cancelled by close or retire: the entry is gone
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

  /** Where a sync or close writes, with calls whose errors name what was being done. */
  #target(gh: GitHub, ref: DeploymentRef, g: GitOpsSpec): Target {
    const [owner, repo] = g.repository.split("/") as [string, string];
    const call: Call = async <T>(what: string, p: Promise<T>) => {
      try {
        return await p;
      } catch (err) {
        throw toGitHubError(err, what, this.#d.clock.nowMs());
      }
    };
    return { gh, call, owner, repo, branch: branchName(ref), g };
  }

  async #write(gh: GitHub, e: Entry, candidate: Proposal): Promise<WriteOutcome> {
    const g = e.gitops;
    const t = this.#target(gh, e.ref, g);
    const current = await this.#readBranch(t);
    let proposal = candidate;
    const manifestOnBranch = current.branchExists ? await this.#readFile(t, g.path, t.branch) : undefined;
    if (e.adopt && manifestOnBranch) {
      proposal = adoptProposed(candidate, readManifestValues(manifestOnBranch.text, e.ref), g.minChangePercent);
      retarget(e, candidate, proposal);
    }
    const adopting = e.adopt;
    e.adopt = false;
    const prepared = await this.#prepareFiles(t, e, proposal, {
      branchExists: current.branchExists,
      manifestOnBranch,
      adopting,
    });
    if ("outcome" in prepared) return { ...(await this.#closeIfHeld(t, e, current, prepared.outcome)), proposal };
    const { baseSha, files, effective } = prepared;
    if (prepared.adoptedPlacement) {
      // The branch's file is the pending placement from now on (candidates are weighed against it).
      const next = { ...proposal, placement: prepared.adoptedPlacement };
      retarget(e, proposal, next);
      proposal = next;
    }
    const contentHash = createHash("sha256")
      .update(files.map((f) => `${f.path}\0${f.text}`).join("\0"))
      .digest("hex");
    const title = pullRequestTitle(e.ref, effective);
    const body = pullRequestBody(e.ref, effective, g.path);

    const nowMs = this.#d.clock.nowMs();
    e.commitsMs = e.commitsMs.filter((x) => x > nowMs - HOUR_MS);
    // The branch must hold exactly the intended files over the base's head: a file an earlier
    // proposal wrote and the current one no longer changes (a withdrawn schedule) goes too.
    const needsCommit =
      files.some((f) => f.onBranch !== f.text) ||
      (current.branchExists && (await this.#branchHoldsOthers(t, files, manifestOnBranch)));
    const limited = await this.#checkLimits(t, e, { needsCommit, hasPr: current.pr !== undefined, nowMs });
    if (limited) return limited;
    if (needsCommit) {
      e.prState = "Open"; // the branch is written from here on: a later withdrawal closes what it holds
      await this.#commit(t, { branchExists: current.branchExists, baseSha, files, title, proposal: effective });
      e.commitsMs.push(nowMs);
    }
    const { pr, verb } = await this.#syncPullRequest(t, current.pr, { title, body, needsCommit });
    e.prUrl = pr.html_url;
    e.prState = "Open";
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
        files: files.map((f) => f.path),
        verb: verb ?? "unchanged",
      },
      "pull request in sync",
    );
    return {
      condition: gitopsCondition("True", ConditionReason.PullRequestOpen, `${pr.html_url}: ${title}`),
      done: true,
      contentHash,
      proposal,
    };
  }

  /**
   * Whether a file this operator manages (spec.gitops.path, spec.gitops.placementFile.path) that
   * the proposal does not write differs on the branch from the base branch: left by an earlier
   * proposal the pull request no longer describes.
   */
  async #branchHoldsOthers(
    t: Target,
    files: FileWrite[],
    manifestOnBranch: { text: string } | undefined,
  ): Promise<boolean> {
    const managed = [t.g.path, t.g.placementFile?.path].filter(
      (p): p is string => p !== undefined && !files.some((f) => f.path === p),
    );
    for (const path of managed) {
      const onBranch = path === t.g.path ? manifestOnBranch : await this.#readFile(t, path, t.branch);
      const onBase = await this.#readFile(t, path, t.g.baseBranch);
      if (onBranch?.text !== onBase?.text) return true;
    }
    return false;
  }

  async #readFile(t: Target, path: string, ref: string): Promise<{ text: string; sha: string } | undefined> {
    const { gh, call, owner, repo } = t;
    const r = await call(`reading ${path} on ${ref}`, orNotFound(gh.rest.repos.getContent({ owner, repo, path, ref })));
    return fileOf(r?.data);
  }

  /**
   * The files the proposal writes, each with its content on the base branch and on the pull
   * request's branch; an outcome when there is nothing to write. The placement file is weighed
   * against the one on the base branch here (spec.gitops.placementFile.minBalancednessGain).
   */
  async #prepareFiles(
    t: Target,
    e: Entry,
    proposal: Proposal,
    b: { branchExists: boolean; manifestOnBranch?: { text: string; sha: string }; adopting: boolean },
  ): Promise<
    | { outcome: WriteOutcome }
    | { baseSha: string; files: FileWrite[]; effective: Proposal; adoptedPlacement?: PlacementFileProposal }
  > {
    const { manifestOnBranch } = b;
    const { gh, call, owner, repo, g } = t;
    const baseRef = await call(
      `reading branch ${g.baseBranch}`,
      gh.rest.git.getRef({ owner, repo, ref: `heads/${g.baseBranch}` }),
    );
    const files: FileWrite[] = [];
    let effective = proposal;
    let adoptedPlacement: PlacementFileProposal | undefined;
    if (proposal.changes.length > 0 || (proposal.schedules?.length ?? 0) > 0) {
      const file = await this.#readFile(t, g.path, g.baseBranch);
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
      const edited = editManifest(file.text, g.path, e.ref, values, proposal.schedules ?? []);
      if (!edited.ok)
        return {
          outcome: {
            condition: gitopsCondition(
              "False",
              ConditionReason.ManifestNotFound,
              `spec.gitops.path: ${edited.problem}`,
            ),
            done: true,
          },
        };
      if (edited.changed)
        files.push({
          path: g.path,
          text: edited.text,
          baseText: file.text,
          baseSha: file.sha,
          onBranch: manifestOnBranch?.text,
        });
    }
    if (proposal.placement && g.placementFile) {
      const p = await this.#placementWrite(t, e, proposal.placement, b);
      if (p.file) files.push(p.file);
      effective = { ...effective, placement: p.placement };
      if (p.adopted) adoptedPlacement = p.placement;
    }
    if (files.length === 0)
      return {
        outcome: {
          condition: gitopsCondition(
            "True",
            ConditionReason.NoChangeProposed,
            `${g.baseBranch} of ${g.repository} already holds the proposal (merged, not yet applied to the cluster)`,
          ),
          done: true,
        },
      };
    return { baseSha: baseRef.data.object.sha, files, effective, adoptedPlacement };
  }

  /**
   * The placement file to write, weighed against the one on the base branch; after a restart
   * (adopting) the file already on the pull request's branch stands unless the candidate beats it
   * by minBalancednessGain too. Nothing to write when it does not beat the base's.
   */
  async #placementWrite(
    t: Target,
    e: Entry,
    pf: PlacementFileProposal,
    b: { branchExists: boolean; adopting: boolean },
  ): Promise<{ file?: FileWrite; placement?: PlacementFileProposal; adopted?: boolean }> {
    const minGain = t.g.placementFile!.minBalancednessGain;
    const base = await this.#readFile(t, pf.path, t.g.baseBranch);
    const baseMap = base ? parsePlacementFile(base.text) : undefined;
    const comparison = comparePlacement(pf.candidate, baseMap);
    if (!placementWorthProposing(comparison, pf.candidate, minGain)) {
      e.placementInGit = baseMap;
      return {};
    }
    const onBranch = b.branchExists ? await this.#readFile(t, pf.path, t.branch) : undefined;
    const proposedMap = b.adopting && onBranch ? parsePlacementFile(onBranch.text) : undefined;
    const vsProposed = proposedMap ? comparePlacement(pf.candidate, proposedMap) : undefined;
    if (proposedMap && vsProposed && !placementWorthProposing(vsProposed, pf.candidate, minGain)) {
      const kept = {
        ...pf.candidate,
        map: proposedMap,
        balancedness: vsProposed.referenceBalancedness ?? pf.candidate.balancedness,
      };
      return {
        file: {
          path: pf.path,
          text: onBranch!.text,
          baseText: base?.text,
          baseSha: base?.sha,
          onBranch: onBranch!.text,
        },
        placement: { ...pf, candidate: kept, comparison: comparePlacement(kept, baseMap) },
        adopted: true,
      };
    }
    const text = renderPlacementFile(pf.candidate.map);
    return {
      file: { path: pf.path, text, baseText: base?.text, baseSha: base?.sha, onBranch: onBranch?.text },
      placement: { ...pf, comparison },
    };
  }

  /** The deployment's open pull request and whether its branch exists. */
  async #readBranch(t: Target): Promise<{ pr?: PullRequestView; branchExists: boolean }> {
    const { gh, call, owner, repo, branch } = t;
    const openPrs = await call(
      "listing pull requests",
      gh.rest.pulls.list({ owner, repo, state: "open", head: `${owner}:${branch}`, per_page: 10 }),
    );
    const pr: PullRequestView | undefined = openPrs.data.find((p) => p.head.ref === branch);
    const branchRef = await call(
      `reading branch ${branch}`,
      orNotFound(gh.rest.git.getRef({ owner, repo, ref: `heads/${branch}` })),
    );
    return { pr, branchExists: Boolean(branchRef) };
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

  /** Points the branch at the base's head and commits each file that differs from the base on it. */
  async #commit(
    t: Target,
    c: { branchExists: boolean; baseSha: string; files: FileWrite[]; title: string; proposal: Proposal },
  ): Promise<void> {
    const { gh, call, owner, repo, branch } = t;
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
    const details = [
      ...c.proposal.changes.map((x) => `- ${x.field}: ${x.why}`),
      ...(c.proposal.schedules ?? []).map((x) => `- spec.prewarm.schedules ${x.entry.name}: ${x.why}`),
    ];
    for (const f of c.files) {
      if (f.text === f.baseText) continue;
      await call(
        `committing ${f.path}`,
        gh.rest.repos.createOrUpdateFileContents({
          owner,
          repo,
          path: f.path,
          branch,
          sha: f.baseSha,
          message: details.length > 0 ? `${c.title}\n\n${details.join("\n")}` : c.title,
          content: Buffer.from(f.text, "utf8").toString("base64"),
        }),
      );
    }
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
    signal?: AbortSignal,
  ): Promise<{ ok: true } | { ok: false; problem: string }> {
    try {
      if (!this.#d.allowedApiUrls.map(normalizeUrl).includes(normalizeUrl(g.apiUrl)))
        return { ok: false, problem: `spec.gitops.apiUrl ${g.apiUrl} is not in --github-allowed-urls` };
      if (signal?.aborted) return { ok: false, problem: "no time left to close the pull request" };
      // One attempt per call, bounded by the signal: the caller (the finalizer) retries with its own cap.
      const gh = await this.#client(d, g, { signal, retries: 0, maxRetryAfterSeconds: 0 });
      await this.#closeOpen(this.#target(gh, d, g), d, { why });
      return { ok: true };
    } catch (err) {
      const what = `closing the pull request of ${d.namespace}/${d.name}`;
      const g2 = signal?.aborted
        ? toGitHubError(new Error("the time allowed for closing it ran out"), what, this.#d.clock.nowMs())
        : err instanceof GitHubError
          ? err
          : toGitHubError(err, what, this.#d.clock.nowMs());
      this.#log.warn(
        { moedeployment: `${d.namespace}/${d.name}`, error: g2.message },
        "could not close the pull request",
      );
      return { ok: false, problem: g2.message };
    }
  }

  /**
   * Closes the branch's open pull requests (with `comment` first, once per pull request and
   * process) and deletes the branch. Returns the URLs of the pull requests it closed.
   */
  async #closeOpen(
    t: Target,
    d: { namespace: string; name: string; uid?: string },
    o: { why: string; comment?: string; e?: Entry },
  ): Promise<string[]> {
    const { gh, call, owner, repo, branch } = t;
    const open = await call(
      "listing pull requests",
      gh.rest.pulls.list({ owner, repo, state: "open", head: `${owner}:${branch}`, per_page: 10 }),
    );
    const closed: string[] = [];
    for (const pr of open.data.filter((p) => p.head.ref === branch)) {
      if (o.comment && !o.e?.commented.has(pr.number)) {
        await call(
          `commenting on ${pr.html_url}`,
          gh.rest.issues.createComment({ owner, repo, issue_number: pr.number, body: o.comment }),
        );
        o.e?.commented.add(pr.number);
      }
      await call(
        `closing ${pr.html_url}`,
        gh.rest.pulls.update({ owner, repo, pull_number: pr.number, state: "closed" }),
      );
      closed.push(pr.html_url);
      await this.#d.event(d, "Normal", "PullRequestClosed", `closed ${pr.html_url}: ${o.why}`);
      this.#log.info(
        { moedeployment: `${d.namespace}/${d.name}`, pullRequest: pr.html_url, why: o.why },
        "closed pull request",
      );
    }
    const ref = await call(
      `reading branch ${branch}`,
      orNotFound(gh.rest.git.getRef({ owner, repo, ref: `heads/${branch}` })),
    );
    if (ref)
      await call(
        `deleting branch ${branch}`,
        orNotFound(gh.rest.git.deleteRef({ owner, repo, ref: `heads/${branch}` })),
      );
    return closed;
  }

  /**
   * The base branch already holds every file the proposal would write (merged, or the placement
   * file there is as good): a pull request still open, or the branch, holds nothing to propose;
   * close it and delete the branch.
   */
  async #closeIfHeld(
    t: Target,
    e: Entry,
    current: { pr?: PullRequestView; branchExists: boolean },
    outcome: WriteOutcome,
  ): Promise<WriteOutcome> {
    if (outcome.condition.reason !== ConditionReason.NoChangeProposed || (!current.pr && !current.branchExists))
      return outcome;
    const held = `${t.g.baseBranch} of ${t.g.repository} already holds the proposal`;
    const comment = withdrawalComment(e.ref, [
      `the base branch \`${t.g.baseBranch}\` already holds what it proposed (merged, or the placement file there balances the observed heat as well)`,
    ]);
    const closed = await this.#closeOpen(t, e.ref, { why: held, comment, e });
    e.prState = "Closed";
    return closed.length > 0
      ? {
          ...outcome,
          condition: gitopsCondition("True", ConditionReason.NoChangeProposed, `closed ${closed.join(", ")}: ${held}`),
        }
      : outcome;
  }

  /** A client authenticated from the Secret named in spec.gitops.credentials (read on every sync: rotation needs no restart). */
  async #client(
    d: DeploymentRef,
    g: GitOpsSpec,
    extra: Pick<GitHubClientOptions, "signal" | "retries" | "maxRetryAfterSeconds"> = {},
  ): Promise<GitHub> {
    const c = g.credentials;
    const make = (auth: string) =>
      createGitHubClient({ ...this.#d.client, ...extra, baseUrl: g.apiUrl, auth, logger: this.#log });
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
  /** The proposal written (the candidate, or the branch's values adopted after a restart). */
  proposal?: Proposal;
  contentHash?: string;
  retryAtMs?: number;
}

/** A file a proposal writes: its new text, and what the base branch and the pull request's branch hold. */
interface FileWrite {
  path: string;
  text: string;
  baseText?: string;
  baseSha?: string;
  onBranch?: string;
}

interface PullRequestView {
  number: number;
  html_url: string;
  title: string;
  body: string | null;
}

/**
 * A sync adopted what the branch holds (after a restart): the pending proposal, or the parts of it
 * that are still those the sync started from (observations go on meanwhile), take the adopted ones.
 */
function retarget(e: Entry, from: Proposal, to: Proposal): void {
  if (from === to || !e.pending) return;
  if (e.pending === from) {
    e.pending = to;
  } else {
    const bounds = e.pending.boundsPart === from.boundsPart ? to.boundsPart : e.pending.boundsPart;
    const placement = e.pending.placement === from.placement ? to.placement : e.pending.placement;
    if (bounds === e.pending.boundsPart && placement === e.pending.placement) return;
    e.pending = {
      ...e.pending,
      changes: bounds?.changes ?? e.pending.changes,
      boundsPart: bounds,
      placement,
    };
  }
  if (e.boundsPending === from.boundsPart) e.boundsPending = to.boundsPart;
}

/** Cancels the entry's background sync, if one runs, and waits for it to settle (it never rejects). */
async function cancelSync(e: Entry | undefined): Promise<void> {
  const s = e?.sync;
  if (!s) return;
  s.abort.abort();
  await s.done;
}

const iso = (ms: number) => new Date(ms).toISOString();
const isoOpt = (ms: number | undefined) => (ms === undefined ? undefined : iso(ms));
const msOpt = (t: string | undefined) => {
  const v = t === undefined ? NaN : Date.parse(t);
  return Number.isFinite(v) ? v : undefined;
};

function statusOfTrack(p: PersistedTrack): GitOpsStatus {
  return {
    trackingSince: iso(p.trackingSinceMs),
    boundsKey: p.boundsKey,
    atMaxSince: isoOpt(p.atMaxSinceMs),
    atMaxRequiredShards: p.atMaxRequiredShards,
    atBudgetSince: isoOpt(p.atBudgetSinceMs),
    budgetRequiredUsdPerHour:
      p.budgetRequiredUsdPerHour === undefined ? undefined : Math.ceil(p.budgetRequiredUsdPerHour * 100) / 100,
    quietSince: isoOpt(p.quietSinceMs),
    peakDesiredShards: p.peakDesiredShards,
    peakSloShards: p.peakSloShards,
  };
}

type PendingScheduleStatus = NonNullable<GitOpsStatus["pendingSchedules"]>[number];

function statusOfSchedules(list: readonly ScheduleChange[] | undefined): PendingScheduleStatus[] | undefined {
  if (!list || list.length === 0) return undefined;
  return list.slice(0, MAX_PROPOSED_SCHEDULES).map((c) => ({
    name: c.entry.name,
    replaces: c.replaces,
    start: c.entry.start,
    durationMinutes: c.entry.durationMinutes,
    minShards: c.entry.minShards,
    daysSeen: c.evidence.daysSeen,
    peakTokensPerSecond: Math.round(c.evidence.peakTokensPerSecond),
    baseTokensPerSecond: Math.round(c.evidence.baseTokensPerSecond),
    why: c.why.slice(0, 1024),
  }));
}

function schedulesOfStatus(
  list: GitOpsStatus["pendingSchedules"],
  leadSeconds: number,
): readonly ScheduleChange[] | undefined {
  if (!list || list.length === 0) return undefined;
  return list.map((x) => ({
    replaces: x.replaces,
    entry: {
      name: x.name,
      start: x.start,
      durationMinutes: x.durationMinutes,
      minShards: x.minShards,
      timeZone: "UTC",
    },
    evidence: {
      daysSeen: x.daysSeen,
      peakTokensPerSecond: x.peakTokensPerSecond,
      baseTokensPerSecond: x.baseTokensPerSecond,
      leadSeconds,
    },
    why: x.why,
  }));
}

function persistedOf(s: GitOpsStatus): PersistedTrack {
  return {
    boundsKey: s.boundsKey,
    trackingSinceMs: msOpt(s.trackingSince) ?? 0,
    atMaxSinceMs: msOpt(s.atMaxSince),
    atMaxRequiredShards: s.atMaxRequiredShards,
    atBudgetSinceMs: msOpt(s.atBudgetSince),
    budgetRequiredUsdPerHour: s.budgetRequiredUsdPerHour,
    quietSinceMs: msOpt(s.quietSince),
    peakDesiredShards: s.peakDesiredShards,
    peakSloShards: s.peakSloShards,
  };
}

function fileOf(data: unknown): { text: string; sha: string } | undefined {
  const f = data as { type?: string; content?: string; encoding?: string; sha?: string } | undefined;
  if (!f || Array.isArray(data) || f.type !== "file" || typeof f.content !== "string" || typeof f.sha !== "string")
    return undefined;
  return { text: f.encoding === "base64" ? Buffer.from(f.content, "base64").toString("utf8") : f.content, sha: f.sha };
}
