import { actingUser } from "./actors.ts";
import { repositoryJson } from "./routes-repo.ts";
import { nodeId, repoApi, repoHtml, simpleUser, type Json } from "./shapes.ts";
import {
  MAX_PULL_REQUESTS,
  notFound,
  nowIso,
  type Handler,
  type HandlerContext,
  type PullRecord,
  type Reply,
  type RepoState,
} from "./state.ts";

/** Pull requests API (https://docs.github.com/rest/pulls): list, create, get, update. */

const DOCS = "https://docs.github.com/rest/pulls/pulls";

function pullValidation(field: string | undefined, code: string, message?: string): Reply {
  const err: Json = { resource: "PullRequest", code };
  if (field) err.field = field;
  if (message) err.message = message;
  return {
    status: 422,
    body: {
      message: "Validation Failed",
      errors: [err],
      documentation_url: `${DOCS}#create-a-pull-request`,
      status: "422",
    },
  };
}

/** Refreshes the recorded tips from the branches (GitHub follows pushes to an open pull request's head). */
async function refreshTips(state: RepoState, pr: PullRecord): Promise<void> {
  if (pr.state !== "open") return;
  pr.headSha = (await state.git.readRef(`refs/heads/${pr.head}`)) ?? pr.headSha;
  pr.baseSha = (await state.git.readRef(`refs/heads/${pr.base}`)) ?? pr.baseSha;
}

async function branchJson(state: RepoState, branch: string, sha: string): Promise<Json> {
  const owner = state.site.owner;
  return {
    label: `${owner}:${branch}`,
    ref: branch,
    sha,
    user: simpleUser(state.site, owner, state.site.ownerId, "Organization"),
    repo: await repositoryJson(state, false),
  };
}

function links(state: RepoState, n: number, headSha: string): Json {
  const api = repoApi(state.site);
  const href = (h: string) => ({ href: h });
  return {
    self: href(`${api}/pulls/${n}`),
    html: href(`${repoHtml(state.site)}/pull/${n}`),
    issue: href(`${api}/issues/${n}`),
    comments: href(`${api}/issues/${n}/comments`),
    review_comments: href(`${api}/pulls/${n}/comments`),
    review_comment: href(`${api}/pulls/comments{/number}`),
    commits: href(`${api}/pulls/${n}/commits`),
    statuses: href(`${api}/statuses/${headSha}`),
  };
}

/** The pull-request-simple shape (list). */
async function simplePull(state: RepoState, pr: PullRecord): Promise<Json> {
  const api = repoApi(state.site);
  const html = repoHtml(state.site);
  const n = pr.number;
  return {
    url: `${api}/pulls/${n}`,
    id: pr.id,
    node_id: nodeId("PullRequest", pr.id),
    html_url: `${html}/pull/${n}`,
    diff_url: `${html}/pull/${n}.diff`,
    patch_url: `${html}/pull/${n}.patch`,
    issue_url: `${api}/issues/${n}`,
    commits_url: `${api}/pulls/${n}/commits`,
    review_comments_url: `${api}/pulls/${n}/comments`,
    review_comment_url: `${api}/pulls/comments{/number}`,
    comments_url: `${api}/issues/${n}/comments`,
    statuses_url: `${api}/statuses/${pr.headSha}`,
    number: n,
    state: pr.state,
    locked: false,
    title: pr.title,
    user: pr.user,
    body: pr.body,
    labels: [],
    milestone: null,
    active_lock_reason: null,
    created_at: pr.createdAt,
    updated_at: pr.updatedAt,
    closed_at: pr.closedAt,
    merged_at: pr.mergedAt,
    merge_commit_sha: pr.mergeCommitSha,
    assignee: null,
    assignees: [],
    requested_reviewers: [],
    requested_teams: [],
    head: await branchJson(state, pr.head, pr.headSha),
    base: await branchJson(state, pr.base, pr.baseSha),
    _links: links(state, n, pr.headSha),
    author_association: "NONE",
    auto_merge: null,
    draft: pr.draft,
  };
}

/** The full pull-request shape (get, create, update), with mergeability computed by git. */
async function fullPull(state: RepoState, pr: PullRecord): Promise<Json> {
  const git = state.git;
  const stats = await git.diffStats(pr.baseSha, pr.headSha);
  let mergeable: boolean | null = null;
  let mergeableState = "unknown";
  if (pr.state === "open") {
    mergeable = (await git.mergeTree(pr.baseSha, pr.headSha)) !== null;
    const behind = !(await git.isAncestor(pr.baseSha, pr.headSha));
    mergeableState = !mergeable ? "dirty" : behind ? "behind" : "clean";
  }
  return {
    ...(await simplePull(state, pr)),
    merged: pr.mergedAt !== null,
    mergeable,
    rebaseable: mergeable,
    mergeable_state: mergeableState,
    merged_by: null,
    comments: 0,
    review_comments: 0,
    maintainer_can_modify: pr.maintainerCanModify,
    commits: stats.commits,
    additions: stats.additions,
    deletions: stats.deletions,
    changed_files: stats.changedFiles,
  };
}

/** "owner:branch" or "branch" -> branch in this repository, or null when the owner is another one. */
function branchOf(state: RepoState, head: string): string | null {
  const colon = head.indexOf(":");
  if (colon === -1) return head;
  return head.slice(0, colon).toLowerCase() === state.site.owner.toLowerCase() ? head.slice(colon + 1) : null;
}

/**
 * The branch a list `head` filter selects: undefined for no filter, null for another owner's branch. GitHub
 * silently ignores a filter without the "owner:" prefix (it lists every pull request), and so does this
 * server, recording a violation because that is never what the client meant.
 */
function headFilter(ctx: HandlerContext, head: string | null): string | null | undefined {
  if (head === null) return undefined;
  if (!head.includes(":")) {
    ctx.violation(`head filter "${head}" has no "owner:" prefix; GitHub ignores it and lists every pull request`);
    return undefined;
  }
  return branchOf(ctx.state, head);
}

const listPulls: Handler = async (ctx) => {
  const { state, query } = ctx;
  const want = query.get("state") ?? "open";
  const headBranch = headFilter(ctx, query.get("head"));
  const base = query.get("base");
  const perPage = Math.min(Math.max(Number(query.get("per_page") ?? 30) || 30, 1), 100);
  const page = Math.max(Number(query.get("page") ?? 1) || 1, 1);
  const direction = query.get("direction") ?? "desc";
  const matched = state.pulls
    .filter((p) => want === "all" || p.state === want)
    .filter((p) => headBranch === undefined || p.head === headBranch)
    .filter((p) => base === null || p.base === base)
    .sort((a, b) => (direction === "asc" ? a.number - b.number : b.number - a.number));
  const slice = matched.slice((page - 1) * perPage, page * perPage);
  for (const pr of slice) await refreshTips(state, pr);
  const body = await Promise.all(slice.map((pr) => simplePull(state, pr)));
  const headers: Record<string, string> = {};
  if (page * perPage < matched.length) {
    const next = new URLSearchParams(query);
    next.set("page", String(page + 1));
    headers.link = `<${repoApi(state.site)}/pulls?${next.toString()}>; rel="next"`;
  }
  return { status: 200, body, headers };
};

const createPull: Handler = async (ctx) => {
  const { state, body } = ctx;
  if (typeof body.title !== "string") return pullValidation("title", "missing_field");
  const head = branchOf(state, String(body.head ?? ""));
  const base = String(body.base ?? "");
  const headSha = head ? await state.git.readRef(`refs/heads/${head}`) : null;
  const baseSha = await state.git.readRef(`refs/heads/${base}`);
  if (!head || !headSha) return pullValidation("head", "invalid");
  if (!baseSha) return pullValidation("base", "invalid");
  const label = `${state.site.owner}:${head}`;
  if (state.pulls.some((p) => p.state === "open" && p.head === head && p.base === base)) {
    return pullValidation(undefined, "custom", `A pull request already exists for ${label}.`);
  }
  if (await state.git.isAncestor(headSha, baseSha))
    return pullValidation(undefined, "custom", `No commits between ${base} and ${head}`);
  if (state.pulls.length >= MAX_PULL_REQUESTS)
    return {
      status: 403,
      body: { message: "too many pull requests in the local GitHub API server", documentation_url: DOCS },
    };
  const now = nowIso();
  const pr: PullRecord = {
    number: state.nextIssueNumber++,
    id: state.nextId++,
    title: body.title,
    body: typeof body.body === "string" ? body.body : null,
    state: "open",
    head,
    base,
    headSha,
    baseSha,
    draft: body.draft === true,
    maintainerCanModify: body.maintainer_can_modify !== false,
    user: actingUser(ctx),
    createdAt: now,
    updatedAt: now,
    closedAt: null,
    mergedAt: null,
    mergeCommitSha: null,
  };
  state.pulls.push(pr);
  const json = await fullPull(state, pr);
  return { status: 201, body: json, headers: { location: json.url as string } };
};

function findPull(state: RepoState, raw: string | undefined): PullRecord | undefined {
  const n = Number(raw);
  return state.pulls.find((p) => p.number === n);
}

const getPull: Handler = async ({ state, params }) => {
  const pr = findPull(state, params.pull_number);
  if (!pr) return notFound();
  await refreshTips(state, pr);
  return { status: 200, body: await fullPull(state, pr) };
};

const updatePull: Handler = async ({ state, params, body }) => {
  const pr = findPull(state, params.pull_number);
  if (!pr) return notFound();
  await refreshTips(state, pr);
  if (typeof body.base === "string" && body.base !== pr.base) {
    const baseSha = await state.git.readRef(`refs/heads/${body.base}`);
    if (!baseSha) return pullValidation("base", "invalid");
    pr.base = body.base;
    pr.baseSha = baseSha;
  }
  if (body.state === "open" && pr.state === "closed") {
    if (pr.mergedAt !== null)
      return pullValidation(undefined, "custom", "state cannot be changed. The pull request has been merged.");
    if (state.pulls.some((p) => p !== pr && p.state === "open" && p.head === pr.head && p.base === pr.base)) {
      return pullValidation(undefined, "custom", `A pull request already exists for ${state.site.owner}:${pr.head}.`);
    }
    if ((await state.git.readRef(`refs/heads/${pr.head}`)) === null) return pullValidation("head", "invalid");
    pr.state = "open";
    pr.closedAt = null;
  } else if (body.state === "closed" && pr.state === "open") {
    pr.state = "closed";
    pr.closedAt = nowIso();
  }
  if (typeof body.title === "string") pr.title = body.title;
  if (typeof body.body === "string") pr.body = body.body;
  if (typeof body.maintainer_can_modify === "boolean") pr.maintainerCanModify = body.maintainer_can_modify;
  pr.updatedAt = nowIso();
  await refreshTips(state, pr);
  return { status: 200, body: await fullPull(state, pr) };
};

/**
 * Merges an open pull request as a person would on github.com (a merge commit on the base branch); returns
 * the merge commit's sha, or an Error when the pull request is not open or conflicts.
 */
export async function mergePull(state: RepoState, number: number): Promise<string | Error> {
  const pr = state.pulls.find((p) => p.number === number);
  if (!pr || pr.state !== "open") return new Error(`pull request #${number} is not open`);
  await refreshTips(state, pr);
  const tree = await state.git.mergeTree(pr.baseSha, pr.headSha);
  if (tree === null) return new Error(`pull request #${number} conflicts with ${pr.base}`);
  const who = { name: "A Human", email: "human@example.com", date: nowIso() };
  const message = `Merge pull request #${number} from ${state.site.owner}/${pr.head}\n\n${pr.title}\n`;
  const sha = await state.git.commitTree(tree, [pr.baseSha, pr.headSha], message, who, who);
  await state.git.updateRef(`refs/heads/${pr.base}`, sha, pr.baseSha);
  const now = nowIso();
  Object.assign(pr, { state: "closed", closedAt: now, mergedAt: now, updatedAt: now, mergeCommitSha: sha });
  state.pushedAt = now;
  return sha;
}

export const pullHandlers: Record<string, Handler> = {
  "pulls/list": listPulls,
  "pulls/create": createPull,
  "pulls/get": getPull,
  "pulls/update": updatePull,
};
