import { execFile } from "node:child_process";
import { rm } from "node:fs/promises";
import { join } from "node:path";

/**
 * A bare git repository on disk, driven through the `git` CLI (execFile with argument arrays, never a shell).
 * The local GitHub API server keeps its repository here, so tests read branches back with git itself.
 */

const MAX_OUTPUT_BYTES = 64 * 1024 * 1024;
const ZERO_SHA = "0".repeat(40);

export interface GitIdentity {
  name: string;
  email: string;
  /** ISO 8601 */
  date: string;
}

export interface GitCommit {
  sha: string;
  tree: string;
  parents: string[];
  author: GitIdentity;
  committer: GitIdentity;
  message: string;
}

export interface GitTreeEntry {
  path: string;
  mode: string;
  type: "blob" | "tree" | "commit";
  sha: string;
  size?: number;
}

/** A change to a tree: a blob sha to put at `path`, or null to delete it. */
export interface TreeChange {
  path: string;
  mode: string;
  sha: string | null;
}

export class GitError extends Error {
  readonly exitCode: number | null;
  readonly stderr: string;
  constructor(message: string, exitCode: number | null, stderr: string, cause: unknown) {
    super(message, { cause });
    this.name = "GitError";
    this.exitCode = exitCode;
    this.stderr = stderr;
  }
}

export interface GitRunOptions {
  input?: Buffer | string;
  env?: Record<string, string>;
  /** Exit codes that resolve instead of rejecting (e.g. 1 for `merge-base --is-ancestor`). */
  okExitCodes?: number[];
}

export class GitRepo {
  readonly dir: string;
  private indexCounter = 0;

  constructor(dir: string) {
    this.dir = dir;
  }

  /** Runs `git --git-dir=<dir> ...args`; resolves to stdout and the exit code. */
  run(args: string[], opts: GitRunOptions = {}): Promise<{ stdout: Buffer; exitCode: number }> {
    return new Promise((resolve, reject) => {
      const env = {
        ...process.env,
        GIT_DIR: this.dir,
        GIT_CONFIG_NOSYSTEM: "1",
        GIT_CONFIG_GLOBAL: "/dev/null",
        LC_ALL: "C",
        ...opts.env,
      };
      const child = execFile(
        "git",
        args,
        { env, encoding: "buffer", maxBuffer: MAX_OUTPUT_BYTES },
        (err, stdout, stderr) => {
          if (!err) return resolve({ stdout, exitCode: 0 });
          const code = typeof err.code === "number" ? err.code : null;
          if (code !== null && opts.okExitCodes?.includes(code)) return resolve({ stdout, exitCode: code });
          const text = stderr.toString("utf8").trim();
          reject(new GitError(`git ${args[0]} failed (exit ${code}): ${text.slice(0, 500)}`, code, text, err));
        },
      );
      child.stdin?.on("error", () => undefined);
      child.stdin?.end(opts.input ?? "");
    });
  }

  private async text(args: string[], opts?: GitRunOptions): Promise<string> {
    return (await this.run(args, opts)).stdout.toString("utf8");
  }

  static async init(dir: string, baseBranch: string): Promise<GitRepo> {
    const repo = new GitRepo(dir);
    await repo.run(["init", "--quiet", "--bare", `--initial-branch=${baseBranch}`]);
    return repo;
  }

  async hashBlob(content: Buffer): Promise<string> {
    return (await this.text(["hash-object", "-w", "--stdin"], { input: content })).trim();
  }

  /** "blob", "tree", "commit", "tag", or null when there is no such object. */
  async objectType(sha: string): Promise<string | null> {
    if (!isSha(sha)) return null;
    const r = await this.run(["cat-file", "-t", sha], { okExitCodes: [1, 128] });
    return r.exitCode === 0 ? r.stdout.toString("utf8").trim() : null;
  }

  async readBlob(sha: string): Promise<Buffer> {
    return (await this.run(["cat-file", "blob", sha])).stdout;
  }

  async readCommit(sha: string): Promise<GitCommit> {
    const raw = await this.text(["cat-file", "commit", sha]);
    const split = raw.indexOf("\n\n");
    const headers = raw.slice(0, split === -1 ? raw.length : split).split("\n");
    const message = split === -1 ? "" : raw.slice(split + 2);
    const commit: GitCommit = { sha, tree: "", parents: [], author: noIdentity(), committer: noIdentity(), message };
    for (const line of headers) {
      const sp = line.indexOf(" ");
      const key = line.slice(0, sp);
      const value = line.slice(sp + 1);
      if (key === "tree") commit.tree = value;
      else if (key === "parent") commit.parents.push(value);
      else if (key === "author") commit.author = parseIdentity(value);
      else if (key === "committer") commit.committer = parseIdentity(value);
    }
    return commit;
  }

  /** Writes a commit object; does not move any ref. */
  async commitTree(
    tree: string,
    parents: string[],
    message: string,
    author: GitIdentity,
    committer: GitIdentity,
  ): Promise<string> {
    const args = ["commit-tree", "--no-gpg-sign", tree, ...parents.flatMap((p) => ["-p", p])];
    const env = {
      GIT_AUTHOR_NAME: author.name,
      GIT_AUTHOR_EMAIL: author.email,
      GIT_AUTHOR_DATE: author.date,
      GIT_COMMITTER_NAME: committer.name,
      GIT_COMMITTER_EMAIL: committer.email,
      GIT_COMMITTER_DATE: committer.date,
    };
    return (await this.text(args, { input: message, env })).trim();
  }

  /** Entries of a tree (recursive: every blob and subtree below it, as GitHub's `recursive=1`). */
  async listTree(treeish: string, recursive: boolean, path?: string): Promise<GitTreeEntry[]> {
    const args = ["ls-tree", "-z", "-l", ...(recursive ? ["-r", "-t"] : []), treeish];
    if (path !== undefined) args.push("--", path);
    const out = await this.text(args);
    return out
      .split("\0")
      .filter((l) => l.length > 0)
      .map((line) => {
        const tab = line.indexOf("\t");
        const [mode, type, sha, size] = line.slice(0, tab).split(/\s+/);
        const entry: GitTreeEntry = {
          path: line.slice(tab + 1),
          mode: mode!,
          type: type as GitTreeEntry["type"],
          sha: sha!,
        };
        if (size && size !== "-") entry.size = Number(size);
        return entry;
      });
  }

  /** The tree `base` (or an empty tree) with `changes` applied; returns the new tree's sha. */
  async buildTree(base: string | null, changes: TreeChange[]): Promise<string> {
    const indexFile = join(this.dir, `moe-fake-index-${process.pid}-${this.indexCounter++}`);
    const env = { GIT_INDEX_FILE: indexFile };
    try {
      await this.run(base ? ["read-tree", base] : ["read-tree", "--empty"], { env });
      if (changes.length > 0) {
        const lines = changes.map((c) =>
          c.sha === null ? `0 ${ZERO_SHA}\t${c.path}` : `${c.mode} ${c.sha}\t${c.path}`,
        );
        await this.run(["update-index", "--index-info"], { env, input: lines.join("\n") + "\n" });
      }
      return (await this.text(["write-tree"], { env })).trim();
    } finally {
      await rm(indexFile, { force: true });
    }
  }

  /** The sha a full ref name (refs/heads/x) points at, or null. */
  async readRef(ref: string): Promise<string | null> {
    const refs = await this.listRefs(ref);
    return refs.find((r) => r.ref === ref)?.sha ?? null;
  }

  /** Refs whose full names start with `prefix` (e.g. "refs/heads/"), sorted by name. */
  async listRefs(prefix: string): Promise<{ ref: string; sha: string; type: string }[]> {
    const out = await this.text(["for-each-ref", "--format=%(refname) %(objectname) %(objecttype)"]);
    return out
      .split("\n")
      .filter((l) => l.length > 0)
      .map((l) => {
        const [ref, sha, type] = l.split(" ");
        return { ref: ref!, sha: sha!, type: type! };
      })
      .filter((r) => r.ref.startsWith(prefix));
  }

  /** Moves (or creates) `ref`; with `expectedOld` the update is atomic compare-and-swap ("" = must not exist). */
  async updateRef(ref: string, sha: string, expectedOld?: string): Promise<void> {
    const args = ["update-ref", ref, sha];
    if (expectedOld !== undefined) args.push(expectedOld === "" ? ZERO_SHA : expectedOld);
    await this.run(args);
  }

  async deleteRef(ref: string): Promise<void> {
    await this.run(["update-ref", "-d", ref]);
  }

  /** Whether `ancestor` is reachable from `descendant`. */
  async isAncestor(ancestor: string, descendant: string): Promise<boolean> {
    const r = await this.run(["merge-base", "--is-ancestor", ancestor, descendant], { okExitCodes: [1] });
    return r.exitCode === 0;
  }

  /** The tree of merging commits `a` and `b` (git merge-tree, no ref moves), or null on conflicts. */
  async mergeTree(a: string, b: string): Promise<string | null> {
    const r = await this.run(["merge-tree", "--write-tree", a, b], { okExitCodes: [1] });
    return r.exitCode === 0 ? r.stdout.toString("utf8").split("\n")[0]!.trim() : null;
  }

  /** What a pull request from `head` into `base` contains: commits and line counts since the merge base. */
  async diffStats(
    base: string,
    head: string,
  ): Promise<{ commits: number; additions: number; deletions: number; changedFiles: number }> {
    const count = await this.text(["rev-list", "--count", `${base}..${head}`]);
    const numstat = await this.text(["diff", "--numstat", "-z", `${base}...${head}`]);
    let additions = 0;
    let deletions = 0;
    let changedFiles = 0;
    for (const rec of numstat.split("\0")) {
      const m = /^(\d+|-)\t(\d+|-)\t/.exec(rec);
      if (!m) continue;
      changedFiles++;
      additions += m[1] === "-" ? 0 : Number(m[1]);
      deletions += m[2] === "-" ? 0 : Number(m[2]);
    }
    return { commits: Number(count.trim()), additions, deletions, changedFiles };
  }

  /** Resolves a branch name, tag name or commit sha to a commit sha, or null. */
  async resolveCommit(name: string): Promise<string | null> {
    if (!isSafeRefName(name)) return null;
    for (const candidate of [`refs/heads/${name}`, `refs/tags/${name}`]) {
      const sha = await this.readRef(candidate);
      if (sha) return sha;
    }
    return isSha(name) && (await this.objectType(name)) === "commit" ? name : null;
  }
}

export function isSha(s: string): boolean {
  return /^[0-9a-f]{40}$/.test(s);
}

/** A relative file path inside a tree: no empty, "." or ".." segments, no control characters. */
export function isValidTreePath(path: string): boolean {
  const hasControl = [...path].some((ch) => ch.charCodeAt(0) < 0x20 || ch.charCodeAt(0) === 0x7f);
  return path.length > 0 && !hasControl && !path.split("/").some((p) => p === "" || p === "." || p === "..");
}

/** Conservative ref-name check (a subset of git check-ref-format) so no value is ever read as an option. */
export function isSafeRefName(name: string): boolean {
  return (
    /^[A-Za-z0-9._/-]+$/.test(name) &&
    !name.startsWith("-") &&
    !name.startsWith("/") &&
    !name.endsWith("/") &&
    !name.endsWith(".lock") &&
    !name.endsWith(".") &&
    !name.includes("..") &&
    !name.includes("//") &&
    !name.split("/").some((part) => part.startsWith("."))
  );
}

function noIdentity(): GitIdentity {
  return { name: "", email: "", date: new Date(0).toISOString() };
}

function parseIdentity(value: string): GitIdentity {
  const m = /^(.*) <([^>]*)> (\d+) ([+-]\d{4})$/.exec(value);
  if (!m) return { name: value, email: "", date: new Date(0).toISOString() };
  return { name: m[1]!, email: m[2]!, date: new Date(Number(m[3]) * 1000).toISOString().replace(".000Z", "Z") };
}
