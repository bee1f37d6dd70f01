import type { GitCommit, GitIdentity } from "./git.ts";

/**
 * JSON objects in the shapes GitHub's REST API returns (as its OpenAPI description requires them), for the
 * one repository the local server hosts. Only the fields' shapes are GitHub's; ids and URLs are local.
 */

export interface Site {
  /** API base URL, e.g. http://127.0.0.1:PORT */
  apiUrl: string;
  /** Web base URL (html_url), the same origin here. */
  htmlUrl: string;
  owner: string;
  repo: string;
  ownerId: number;
  repoId: number;
  createdAt: string;
}

export type Json = Record<string, unknown>;

export function nodeId(kind: string, id: number | string): string {
  return Buffer.from(`${kind}:${id}`).toString("base64");
}

export function repoApi(site: Site): string {
  return `${site.apiUrl}/repos/${site.owner}/${site.repo}`;
}

export function repoHtml(site: Site): string {
  return `${site.htmlUrl}/${site.owner}/${site.repo}`;
}

export function simpleUser(
  site: Site,
  login: string,
  id: number,
  type: "User" | "Organization" | "Bot" = "User",
): Json {
  const u = `${site.apiUrl}/users/${login}`;
  return {
    login,
    id,
    node_id: nodeId("User", id),
    avatar_url: `${site.htmlUrl}/avatars/${login}`,
    gravatar_id: "",
    url: u,
    html_url: `${site.htmlUrl}/${login}`,
    followers_url: `${u}/followers`,
    following_url: `${u}/following{/other_user}`,
    gists_url: `${u}/gists{/gist_id}`,
    starred_url: `${u}/starred{/owner}{/repo}`,
    subscriptions_url: `${u}/subscriptions`,
    organizations_url: `${u}/orgs`,
    repos_url: `${u}/repos`,
    events_url: `${u}/events{/privacy}`,
    received_events_url: `${u}/received_events`,
    type,
    site_admin: false,
  };
}

export function ownerUser(site: Site): Json {
  return simpleUser(site, site.owner, site.ownerId, "Organization");
}

/** The `repository` shape (pull request head/base repo); `full` adds the full-repository fields. */
export function repository(site: Site, defaultBranch: string, pushedAt: string, full: boolean): Json {
  const api = repoApi(site);
  const html = repoHtml(site);
  const repo: Json = {
    id: site.repoId,
    node_id: nodeId("Repository", site.repoId),
    name: site.repo,
    full_name: `${site.owner}/${site.repo}`,
    owner: ownerUser(site),
    private: true,
    html_url: html,
    description: "local GitHub API server repository",
    fork: false,
    url: api,
    ...templateUrls(api),
    clone_url: `${html}.git`,
    git_url: `${html.replace(/^https?:/, "git:")}.git`,
    ssh_url: `git@localhost:${site.owner}/${site.repo}.git`,
    svn_url: html,
    mirror_url: null,
    homepage: null,
    language: null,
    forks: 0,
    forks_count: 0,
    stargazers_count: 0,
    watchers: 0,
    watchers_count: 0,
    size: 0,
    default_branch: defaultBranch,
    open_issues: 0,
    open_issues_count: 0,
    has_issues: true,
    has_projects: false,
    has_wiki: false,
    has_pages: false,
    has_downloads: false,
    has_discussions: false,
    archived: false,
    disabled: false,
    visibility: "private",
    license: null,
    pushed_at: pushedAt,
    created_at: site.createdAt,
    updated_at: pushedAt,
    permissions: { admin: false, maintain: false, push: true, triage: true, pull: true },
    allow_squash_merge: true,
    allow_merge_commit: true,
    allow_rebase_merge: true,
    delete_branch_on_merge: false,
  };
  if (full) Object.assign(repo, { network_count: 0, subscribers_count: 0 });
  return repo;
}

function templateUrls(api: string): Json {
  const names: Record<string, string> = {
    archive_url: "/{archive_format}{/ref}",
    assignees_url: "/assignees{/user}",
    blobs_url: "/git/blobs{/sha}",
    branches_url: "/branches{/branch}",
    collaborators_url: "/collaborators{/collaborator}",
    comments_url: "/comments{/number}",
    commits_url: "/commits{/sha}",
    compare_url: "/compare/{base}...{head}",
    contents_url: "/contents/{+path}",
    contributors_url: "/contributors",
    deployments_url: "/deployments",
    downloads_url: "/downloads",
    events_url: "/events",
    forks_url: "/forks",
    git_commits_url: "/git/commits{/sha}",
    git_refs_url: "/git/refs{/sha}",
    git_tags_url: "/git/tags{/sha}",
    hooks_url: "/hooks",
    issue_comment_url: "/issues/comments{/number}",
    issue_events_url: "/issues/events{/number}",
    issues_url: "/issues{/number}",
    keys_url: "/keys{/key_id}",
    labels_url: "/labels{/name}",
    languages_url: "/languages",
    merges_url: "/merges",
    milestones_url: "/milestones{/number}",
    notifications_url: "/notifications{?since,all,participating}",
    pulls_url: "/pulls{/number}",
    releases_url: "/releases{/id}",
    stargazers_url: "/stargazers",
    statuses_url: "/statuses/{sha}",
    subscribers_url: "/subscribers",
    subscription_url: "/subscription",
    tags_url: "/tags",
    teams_url: "/teams",
    trees_url: "/git/trees{/sha}",
  };
  return Object.fromEntries(Object.entries(names).map(([k, v]) => [k, `${api}${v}`]));
}

export function gitRef(site: Site, ref: string, sha: string, type = "commit"): Json {
  const api = repoApi(site);
  const objectKind = type === "commit" ? "commits" : `${type}s`;
  return {
    ref,
    node_id: nodeId("Ref", ref),
    url: `${api}/git/${ref}`,
    object: { type, sha, url: `${api}/git/${objectKind}/${sha}` },
  };
}

function identity(i: GitIdentity): Json {
  return { name: i.name, email: i.email, date: i.date };
}

const UNSIGNED = { verified: false, reason: "unsigned", signature: null, payload: null, verified_at: null };

/** The git-commit shape (git data API and the `commit` of a contents write). */
export function gitCommit(site: Site, c: GitCommit): Json {
  const api = repoApi(site);
  const html = repoHtml(site);
  return {
    sha: c.sha,
    node_id: nodeId("Commit", c.sha),
    url: `${api}/git/commits/${c.sha}`,
    html_url: `${html}/commit/${c.sha}`,
    author: identity(c.author),
    committer: identity(c.committer),
    message: c.message,
    tree: { sha: c.tree, url: `${api}/git/trees/${c.tree}` },
    parents: c.parents.map((p) => ({ sha: p, url: `${api}/git/commits/${p}`, html_url: `${html}/commit/${p}` })),
    verification: UNSIGNED,
  };
}

/** A file entry of the contents API (without content when `contentBase64` is undefined). */
export function contentFile(
  site: Site,
  path: string,
  ref: string,
  entry: { sha: string; size: number; type: "file" | "dir" },
  contentBase64?: string,
): Json {
  const api = repoApi(site);
  const html = `${repoHtml(site)}/${entry.type === "dir" ? "tree" : "blob"}/${ref}/${path}`;
  const self = `${api}/contents/${path}?ref=${encodeURIComponent(ref)}`;
  const git = `${api}/git/${entry.type === "dir" ? "trees" : "blobs"}/${entry.sha}`;
  const file: Json = {
    type: entry.type,
    size: entry.size,
    name: path.split("/").pop() ?? path,
    path,
    sha: entry.sha,
    url: self,
    git_url: git,
    html_url: html,
    download_url: entry.type === "file" ? `${site.htmlUrl}/raw/${site.owner}/${site.repo}/${ref}/${path}` : null,
    _links: { self, git, html },
  };
  if (contentBase64 !== undefined) Object.assign(file, { content: contentBase64, encoding: "base64" });
  return file;
}

/** base64 wrapped at 60 characters per line, as the contents and blobs APIs return it. */
export function wrappedBase64(data: Buffer): string {
  const b64 = data.toString("base64");
  const lines: string[] = [];
  for (let i = 0; i < b64.length; i += 60) lines.push(b64.slice(i, i + 60));
  return lines.join("\n") + (lines.length > 0 ? "\n" : "");
}
