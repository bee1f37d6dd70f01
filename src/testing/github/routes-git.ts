import { defaultIdentity } from "./actors.ts";
import { isSafeRefName, isSha, isValidTreePath, type GitIdentity, type TreeChange } from "./git.ts";
import { gitCommit, gitRef, repoApi, type Json } from "./shapes.ts";
import { notFound, nowIso, unprocessable, type Handler, type Reply, type RepoState } from "./state.ts";

/** Git data API: refs, blobs, trees, commits (https://docs.github.com/rest/git). */

const BLOB_MODES = new Set(["100644", "100755", "120000"]);

/**
 * "heads/x" (as in the URL) -> "refs/heads/x", or null when the name is not a safe ref name. Like GitHub,
 * a URL ref that already starts with "refs/" names refs/refs/..., which does not exist.
 */
function fullRef(ref: string): string | null {
  const full = `refs/${ref}`;
  return isSafeRefName(full) ? full : null;
}

async function refReply(state: RepoState, ref: string, sha: string, status: number): Promise<Reply> {
  const type = (await state.git.objectType(sha)) ?? "commit";
  const body = gitRef(state.site, ref, sha, type);
  const headers = status === 201 ? { location: body.url as string } : undefined;
  return { status, body, headers };
}

const getRef: Handler = async ({ state, params }) => {
  const ref = fullRef(params.ref!);
  const sha = ref ? await state.git.readRef(ref) : null;
  return ref && sha ? refReply(state, ref, sha, 200) : notFound();
};

const listMatchingRefs: Handler = async ({ state, params }) => {
  const prefix = `refs/${params.ref ?? ""}`;
  const refs = await state.git.listRefs(prefix);
  return { status: 200, body: refs.map((r) => gitRef(state.site, r.ref, r.sha, r.type)) };
};

const createRef: Handler = async ({ state, body }) => {
  const ref = String(body.ref ?? "");
  const sha = String(body.sha ?? "");
  if (!ref.startsWith("refs/") || ref.split("/").length < 3) {
    return unprocessable("Reference name is invalid: ref must start with 'refs/' and have at least two slashes.");
  }
  if (!isSafeRefName(ref)) return unprocessable(`Reference name is invalid: ${ref}`);
  if (!isSha(sha) || (await state.git.objectType(sha)) === null) return unprocessable("Object does not exist");
  if ((await state.git.readRef(ref)) !== null) return unprocessable("Reference already exists");
  await state.git.updateRef(ref, sha, "");
  touch(state);
  return refReply(state, ref, sha, 201);
};

const updateRef: Handler = async ({ state, params, body }) => {
  const ref = fullRef(params.ref!);
  const sha = String(body.sha ?? "");
  const old = ref ? await state.git.readRef(ref) : null;
  if (!ref || !old) return unprocessable("Reference does not exist");
  if (!isSha(sha) || (await state.git.objectType(sha)) !== "commit") return unprocessable("Object does not exist");
  if (body.force !== true && !(await state.git.isAncestor(old, sha)))
    return unprocessable("Update is not a fast forward");
  await state.git.updateRef(ref, sha, old);
  touch(state);
  return refReply(state, ref, sha, 200);
};

const deleteRef: Handler = async ({ state, params }) => {
  const ref = fullRef(params.ref!);
  const old = ref ? await state.git.readRef(ref) : null;
  if (!ref || !old) return unprocessable("Reference does not exist");
  await state.git.deleteRef(ref);
  touch(state);
  return { status: 204 };
};

const createBlob: Handler = async ({ state, body }) => {
  const encoding = body.encoding === undefined ? "utf-8" : String(body.encoding);
  if (encoding !== "utf-8" && encoding !== "base64")
    return unprocessable(`encoding must be utf-8 or base64, not ${encoding}`);
  const data = Buffer.from(String(body.content ?? ""), encoding === "base64" ? "base64" : "utf8");
  const sha = await state.git.hashBlob(data);
  const url = `${repoApi(state.site)}/git/blobs/${sha}`;
  return { status: 201, body: { url, sha }, headers: { location: url } };
};

const getBlob: Handler = async ({ state, params }) => {
  const sha = params.file_sha!;
  if ((await state.git.objectType(sha)) !== "blob") return notFound();
  const data = await state.git.readBlob(sha);
  const body = {
    sha,
    node_id: Buffer.from(`Blob:${sha}`).toString("base64"),
    size: data.length,
    url: `${repoApi(state.site)}/git/blobs/${sha}`,
    content: data.toString("base64"),
    encoding: "base64",
  };
  return { status: 200, body };
};

function treeEntryJson(
  state: RepoState,
  e: { path: string; mode: string; type: string; sha: string; size?: number },
): Json {
  const kind = e.type === "tree" ? "trees" : e.type === "blob" ? "blobs" : "commits";
  const entry: Json = {
    path: e.path,
    mode: e.mode,
    type: e.type,
    sha: e.sha,
    url: `${repoApi(state.site)}/git/${kind}/${e.sha}`,
  };
  if (e.size !== undefined) entry.size = e.size;
  return entry;
}

async function treeReply(state: RepoState, sha: string, recursive: boolean, status: number): Promise<Reply> {
  const entries = await state.git.listTree(sha, recursive);
  const url = `${repoApi(state.site)}/git/trees/${sha}`;
  const body = { sha, url, tree: entries.map((e) => treeEntryJson(state, e)), truncated: false };
  return { status, body, headers: status === 201 ? { location: url } : undefined };
}

/** Turns one `tree[]` entry of POST git/trees into index changes; a string is a 422 message. */
async function entryChanges(
  state: RepoState,
  baseBlobs: readonly { path: string }[],
  raw: unknown,
  index: number,
): Promise<TreeChange[] | string> {
  const e = (raw ?? {}) as Json;
  const path = String(e.path ?? "");
  const mode = String(e.mode ?? "");
  if (!isValidTreePath(path)) {
    return `tree.path of entry ${index} is invalid: "${path}"`;
  }
  const removeUnder = baseBlobs
    .filter((x) => x.path.startsWith(`${path}/`))
    .map((x) => ({ path: x.path, mode: "0", sha: null }));
  if (e.sha === null) return [{ path, mode: "0", sha: null }, ...removeUnder];
  if (e.type === "tree" || mode === "040000") {
    const sha = String(e.sha ?? "");
    if ((await state.git.objectType(sha)) !== "tree") return `tree.sha ${sha} is not a valid tree`;
    const blobs = (await state.git.listTree(sha, true)).filter((x) => x.type !== "tree");
    return [
      { path, mode: "0", sha: null },
      ...removeUnder,
      ...blobs.map((b) => ({ path: `${path}/${b.path}`, mode: b.mode, sha: b.sha })),
    ];
  }
  if (!BLOB_MODES.has(mode) && mode !== "160000")
    return `tree.mode of entry ${index} must be 100644, 100755, 040000, 160000 or 120000`;
  if (typeof e.content === "string") {
    return [{ path, mode, sha: await state.git.hashBlob(Buffer.from(e.content, "utf8")) }, ...removeUnder];
  }
  const sha = String(e.sha ?? "");
  const want = mode === "160000" ? "commit" : "blob";
  if (mode !== "160000" && (await state.git.objectType(sha)) !== want) return `tree.sha ${sha} is not a valid ${want}`;
  if (mode === "160000" && !isSha(sha)) return `tree.sha ${sha} is not a valid commit`;
  return [{ path, mode, sha }, ...removeUnder];
}

const createTree: Handler = async ({ state, body }) => {
  const baseTree = body.base_tree === undefined ? null : String(body.base_tree);
  if (baseTree !== null && (await state.git.objectType(baseTree)) !== "tree")
    return unprocessable(`base_tree ${baseTree} is not a valid tree`);
  const entries = Array.isArray(body.tree) ? body.tree : [];
  const baseBlobs = baseTree ? (await state.git.listTree(baseTree, true)).filter((x) => x.type !== "tree") : [];
  const changes: TreeChange[] = [];
  for (let i = 0; i < entries.length; i++) {
    const c = await entryChanges(state, baseBlobs, entries[i], i);
    if (typeof c === "string") return unprocessable(c);
    changes.push(...c);
  }
  const sha = await state.git.buildTree(baseTree, changes);
  return treeReply(state, sha, false, 201);
};

const getTree: Handler = async ({ state, params, query }) => {
  const name = params.tree_sha!;
  let tree: string | null = (await state.git.objectType(name)) === "tree" ? name : null;
  if (!tree) {
    const commit = await state.git.resolveCommit(name);
    tree = commit ? (await state.git.readCommit(commit)).tree : null;
  }
  return tree ? treeReply(state, tree, query.has("recursive"), 200) : notFound();
};

function identityFrom(raw: unknown, fallback: GitIdentity): GitIdentity | string {
  if (raw === undefined) return fallback;
  const i = raw as Json;
  if (typeof i.name !== "string" || typeof i.email !== "string") return "author and committer need name and email";
  const date = typeof i.date === "string" ? i.date : fallback.date;
  if (Number.isNaN(Date.parse(date))) return `date "${date}" is not an ISO 8601 timestamp`;
  return { name: i.name, email: i.email, date };
}

const createCommit: Handler = async (ctx) => {
  const { state, body } = ctx;
  const tree = String(body.tree ?? "");
  if ((await state.git.objectType(tree)) !== "tree") return unprocessable("Tree SHA does not exist");
  const parents = Array.isArray(body.parents) ? body.parents.map(String) : [];
  for (const p of parents) {
    if ((await state.git.objectType(p)) !== "commit")
      return unprocessable("Parent SHA does not exist or is not a commit object");
  }
  const author = identityFrom(body.author, defaultIdentity(ctx));
  if (typeof author === "string") return unprocessable(author);
  const committer = identityFrom(body.committer, author);
  if (typeof committer === "string") return unprocessable(committer);
  const sha = await state.git.commitTree(tree, parents, String(body.message ?? ""), author, committer);
  const json = gitCommit(state.site, await state.git.readCommit(sha));
  return { status: 201, body: json, headers: { location: json.url as string } };
};

const getCommit: Handler = async ({ state, params }) => {
  const sha = params.commit_sha!;
  if ((await state.git.objectType(sha)) !== "commit") return notFound();
  return { status: 200, body: gitCommit(state.site, await state.git.readCommit(sha)) };
};

function touch(state: RepoState): void {
  state.pushedAt = nowIso();
}

export const gitHandlers: Record<string, Handler> = {
  "git/get-ref": getRef,
  "git/list-matching-refs": listMatchingRefs,
  "git/create-ref": createRef,
  "git/update-ref": updateRef,
  "git/delete-ref": deleteRef,
  "git/create-blob": createBlob,
  "git/get-blob": getBlob,
  "git/create-tree": createTree,
  "git/get-tree": getTree,
  "git/create-commit": createCommit,
  "git/get-commit": getCommit,
};
