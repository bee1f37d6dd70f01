import { actingUser, defaultIdentity } from "./actors.ts";
import { isSafeRefName, isValidTreePath } from "./git.ts";
import { contentFile, gitCommit, repoApi, repository, wrappedBase64, type Json } from "./shapes.ts";
import { MAX_COMMENTS, notFound, nowIso, unprocessable, type Handler, type Reply, type RepoState } from "./state.ts";

/** Repository and contents API (https://docs.github.com/rest/repos). */

export async function repositoryJson(state: RepoState, full: boolean): Promise<Json> {
  return repository(state.site, state.defaultBranch, state.pushedAt, full);
}

const getRepo: Handler = async ({ state }) => ({ status: 200, body: await repositoryJson(state, true) });

const getContent: Handler = async ({ state, params, query }) => {
  const path = params.path!.replace(/\/+$/, "");
  const ref = query.get("ref") ?? state.defaultBranch;
  const commit = await state.git.resolveCommit(ref);
  if (!commit)
    return {
      status: 404,
      body: {
        message: `No commit found for the ref ${ref}`,
        documentation_url: "https://docs.github.com/rest/repos/contents#get-repository-content",
        status: "404",
      },
    };
  if (!isValidTreePath(path)) return notFound();
  const [entry] = await state.git.listTree(commit, false, path);
  if (!entry || entry.path !== path) return notFound();
  if (entry.type === "tree") {
    const children = await state.git.listTree(commit, false, `${path}/`);
    const body = children
      .filter((c) => c.type !== "commit")
      .map((c) =>
        contentFile(state.site, c.path, ref, {
          sha: c.sha,
          size: c.size ?? 0,
          type: c.type === "tree" ? "dir" : "file",
        }),
      );
    return { status: 200, body };
  }
  if (entry.type !== "blob") return notFound();
  const data = await state.git.readBlob(entry.sha);
  if (entry.mode === "120000") {
    const link = contentFile(state.site, path, ref, { sha: entry.sha, size: data.length, type: "file" });
    return { status: 200, body: { ...link, type: "symlink", target: data.toString("utf8") } };
  }
  return {
    status: 200,
    body: contentFile(state.site, path, ref, { sha: entry.sha, size: data.length, type: "file" }, wrappedBase64(data)),
  };
};

const putContent: Handler = async (ctx) => {
  const { state, params, body } = ctx;
  const path = params.path!;
  if (!isValidTreePath(path)) return unprocessable(`path "${path}" is invalid`);
  const branch = typeof body.branch === "string" ? body.branch : state.defaultBranch;
  const tip = await state.git.readRef(`refs/heads/${branch}`);
  if (!tip)
    return {
      status: 404,
      body: {
        message: `Branch ${branch} not found`,
        documentation_url: "https://docs.github.com/rest/repos/contents#create-or-update-file-contents",
        status: "404",
      },
    };
  const commit = await state.git.readCommit(tip);
  const [existing] = await state.git.listTree(tip, false, path);
  const current = existing && existing.path === path && existing.type === "blob" ? existing.sha : null;
  const givenSha = typeof body.sha === "string" ? body.sha : null;
  if (current && givenSha === null) return unprocessable('Invalid request.\n\n"sha" wasn\'t supplied.');
  if (givenSha !== null && givenSha !== current) {
    return {
      status: 409,
      body: {
        message: `${path} does not match ${givenSha}`,
        documentation_url: "https://docs.github.com/rest/repos/contents#create-or-update-file-contents",
        status: "409",
      },
    };
  }
  const content = Buffer.from(String(body.content ?? ""), "base64");
  const blob = await state.git.hashBlob(content);
  const tree = await state.git.buildTree(commit.tree, [{ path, mode: "100644", sha: blob }]);
  const author = defaultIdentity(ctx);
  const who = (raw: unknown) =>
    (raw && typeof raw === "object" ? { ...author, ...(raw as Json) } : author) as typeof author;
  const sha = await state.git.commitTree(
    tree,
    [tip],
    String(body.message ?? ""),
    who(body.author),
    who(body.committer ?? body.author),
  );
  await state.git.updateRef(`refs/heads/${branch}`, sha, tip);
  state.pushedAt = nowIso();
  const file = contentFile(state.site, path, branch, { sha: blob, size: content.length, type: "file" });
  const result = { content: file, commit: gitCommit(state.site, await state.git.readCommit(sha)) };
  return { status: current ? 200 : 201, body: result, headers: current ? undefined : { location: file.url as string } };
};

const createComment: Handler = async (ctx) => {
  const { state, params, body } = ctx;
  const number = Number(params.issue_number);
  if (!state.pulls.some((p) => p.number === number)) return notFound();
  if (state.comments.length >= MAX_COMMENTS)
    return {
      status: 403,
      body: {
        message: "too many comments in the local GitHub API server",
        documentation_url: "https://docs.github.com/rest",
      },
    };
  const id = state.nextId++;
  state.comments.push({ id, issueNumber: number, body: String(body.body ?? "") });
  const now = nowIso();
  const api = repoApi(state.site);
  const comment = {
    id,
    node_id: Buffer.from(`IssueComment:${id}`).toString("base64"),
    url: `${api}/issues/comments/${id}`,
    html_url: `${state.site.htmlUrl}/${state.site.owner}/${state.site.repo}/pull/${number}#issuecomment-${id}`,
    issue_url: `${api}/issues/${number}`,
    body: String(body.body ?? ""),
    user: actingUser(ctx),
    created_at: now,
    updated_at: now,
    author_association: "NONE",
  };
  return { status: 201, body: comment, headers: { location: comment.url } } satisfies Reply;
};

/** GET branches/{branch}: the tip commit in the commit shape of the commits API; no protection. */
const getBranch: Handler = async ({ state, params }) => {
  const branch = params.branch!;
  const sha = isSafeRefName(branch) ? await state.git.readRef(`refs/heads/${branch}`) : null;
  if (!sha)
    return {
      status: 404,
      body: {
        message: "Branch not found",
        documentation_url: "https://docs.github.com/rest/branches/branches#get-a-branch",
        status: "404",
      },
    };
  const c = await state.git.readCommit(sha);
  const git = gitCommit(state.site, c);
  const api = repoApi(state.site);
  const html = `${state.site.htmlUrl}/${state.site.owner}/${state.site.repo}`;
  const commit = {
    sha,
    node_id: git.node_id,
    url: `${api}/commits/${sha}`,
    html_url: git.html_url,
    comments_url: `${api}/commits/${sha}/comments`,
    commit: {
      author: git.author,
      committer: git.committer,
      message: c.message,
      tree: git.tree,
      url: git.url,
      comment_count: 0,
      verification: git.verification,
    },
    author: {},
    committer: {},
    parents: c.parents.map((p) => ({ sha: p, url: `${api}/commits/${p}`, html_url: `${html}/commit/${p}` })),
  };
  const self = `${api}/branches/${branch}`;
  const body = {
    name: branch,
    commit,
    _links: { self, html: `${html}/tree/${branch}` },
    protected: false,
    protection: { enabled: false },
    protection_url: `${self}/protection`,
  };
  return { status: 200, body };
};

export const repoHandlers: Record<string, Handler> = {
  "repos/get": getRepo,
  "repos/get-branch": getBranch,
  "repos/get-content": getContent,
  "repos/create-or-update-file-contents": putContent,
  "issues/create-comment": createComment,
};
