import type { KeyObject } from "node:crypto";
import type { GitRepo } from "./git.ts";
import type { Json, Site } from "./shapes.ts";

/** What the local GitHub API server keeps besides the git repository. */

export interface PullRecord {
  number: number;
  id: number;
  title: string;
  body: string | null;
  state: "open" | "closed";
  /** Branch names in this repository. */
  head: string;
  base: string;
  /** Last known tips (kept when a branch is deleted). */
  headSha: string;
  baseSha: string;
  draft: boolean;
  maintainerCanModify: boolean;
  user: Json;
  createdAt: string;
  updatedAt: string;
  closedAt: string | null;
  mergedAt: string | null;
  mergeCommitSha: string | null;
}

export interface AppConfig {
  appId: number;
  installationId: number;
  slug: string;
  publicKey: KeyObject;
}

export interface RepoState {
  site: Site;
  git: GitRepo;
  defaultBranch: string;
  token: string;
  app: AppConfig;
  /** Installation access tokens issued by POST /app/installations/{id}/access_tokens -> expiry (epoch ms). */
  installationTokens: Map<string, number>;
  pulls: PullRecord[];
  comments: { id: number; issueNumber: number; body: string }[];
  nextIssueNumber: number;
  nextId: number;
  pushedAt: string;
}

export type AuthKind = "token" | "installation" | "app-jwt";

export interface HandlerContext {
  state: RepoState;
  params: Record<string, string>;
  query: URLSearchParams;
  body: Json;
  auth: AuthKind;
  /** Records a request that matches the description but that GitHub would not answer as the client expects. */
  violation(message: string): void;
}

export interface Reply {
  status: number;
  body?: unknown;
  headers?: Record<string, string>;
}

export type Handler = (ctx: HandlerContext) => Promise<Reply>;

export const MAX_PULL_REQUESTS = 1000;
export const MAX_COMMENTS = 1000;

export function nowIso(): string {
  return new Date().toISOString().replace(/\.\d{3}Z$/, "Z");
}

export function notFound(): Reply {
  return {
    status: 404,
    body: { message: "Not Found", documentation_url: "https://docs.github.com/rest", status: "404" },
  };
}

export function unprocessable(message: string, docPath = "rest"): Reply {
  return { status: 422, body: { message, documentation_url: `https://docs.github.com/${docPath}`, status: "422" } };
}
