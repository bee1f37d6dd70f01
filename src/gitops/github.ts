// The GitHub REST client of pull-request mode: @octokit/rest with plugin-retry
// (5xx retried, a small bounded number of times) and plugin-throttling (primary
// and secondary rate limits honoured through Retry-After / the reset time, only
// when the wait is short: a sync never holds on for long). Failures map to a
// small discriminated union; messages never carry the token.
import { Octokit } from "@octokit/rest";
import { retry } from "@octokit/plugin-retry";
import { throttling } from "@octokit/plugin-throttling";
import type { Logger } from "pino";

const GitHubOctokit = Octokit.plugin(retry, throttling);
export type GitHub = InstanceType<typeof GitHubOctokit>;

export interface GitHubClientOptions {
  baseUrl: string;
  /** A token (installation tokens and personal tokens alike), or a GitHub App JWT. */
  auth: string;
  logger: Logger;
  /** Retries of a 5xx (or network) failure, default 2. */
  retries?: number;
  /** Base of the retry backoff in ms (retry n waits n^2 x this), default 1000. */
  retryBaseMs?: number;
  /** Longest Retry-After / reset wait honoured in place; longer ones fail as RateLimited. Default 60 s. */
  maxRetryAfterSeconds?: number;
  /** Deadline of each request, default 20 s. */
  requestTimeoutMs?: number;
  fetch?: typeof fetch;
  /** Aborts every request of the client (a cancelled sync, the deadline of a close). */
  signal?: AbortSignal;
}

export type GitHubFailure =
  | { kind: "Auth"; status: number; message: string }
  | { kind: "RateLimited"; status: number; retryAfterMs: number; message: string }
  | { kind: "NotFound"; status: number; message: string }
  | { kind: "Unprocessable"; status: number; message: string }
  | { kind: "Conflict"; status: number; message: string }
  | { kind: "Server"; status: number; message: string };

export class GitHubError extends Error {
  readonly failure: GitHubFailure;
  constructor(failure: GitHubFailure, cause: unknown) {
    super(failure.message, { cause });
    this.name = "GitHubError";
    this.failure = failure;
  }
}

export function createGitHubClient(o: GitHubClientOptions): GitHub {
  const maxWaitS = o.maxRetryAfterSeconds ?? 60;
  const log = o.logger;
  const timeoutMs = o.requestTimeoutMs ?? 20_000;
  const baseFetch = o.fetch ?? fetch;
  return new GitHubOctokit({
    baseUrl: o.baseUrl.replace(/\/+$/, ""),
    auth: o.auth,
    userAgent: "moe-operator",
    request: {
      retries: o.retries ?? 2,
      fetch: (url: string, init?: RequestInit) =>
        baseFetch(url, {
          ...init,
          signal: o.signal
            ? AbortSignal.any([AbortSignal.timeout(timeoutMs), o.signal])
            : AbortSignal.timeout(timeoutMs),
        }),
    },
    retry: { retryAfterBaseValue: o.retryBaseMs ?? 1000 },
    // Octokit's own log: no request headers ever reach it; debug/info are dropped.
    log: {
      debug: () => undefined,
      info: () => undefined,
      warn: (m: string) => log.warn(m),
      error: (m: string) => log.error(m),
    },
    throttle: {
      onRateLimit: (
        retryAfterS: number,
        options: { method?: string; url?: string },
        _o: unknown,
        retryCount: number,
      ) => {
        log.warn({ method: options.method, url: options.url, retryAfterS }, "GitHub rate limit reached");
        return retryCount < 1 && retryAfterS <= maxWaitS;
      },
      onSecondaryRateLimit: (
        retryAfterS: number,
        options: { method?: string; url?: string },
        _o: unknown,
        retryCount: number,
      ) => {
        log.warn({ method: options.method, url: options.url, retryAfterS }, "GitHub secondary rate limit reached");
        return retryCount < 1 && retryAfterS <= maxWaitS;
      },
    },
  });
}

interface ErrorLike {
  status?: number;
  message?: string;
  response?: { headers?: Record<string, string | number | undefined> };
}

/** Maps anything octokit throws to a GitHubError (status 0: no response). */
export function toGitHubError(err: unknown, what: string, nowMs: number): GitHubError {
  if (err instanceof GitHubError) return err;
  const e = (err ?? {}) as ErrorLike;
  const status = typeof e.status === "number" ? e.status : 0;
  const detail = (e.message ?? String(err)).split("\n")[0]!.slice(0, 300);
  const message = `${what}: ${status ? `HTTP ${status}: ` : ""}${detail}`;
  const headers = e.response?.headers ?? {};
  const retryAfterS = Number(headers["retry-after"]);
  const resetS = Number(headers["x-ratelimit-reset"]);
  const limited =
    status === 429 ||
    (status === 403 &&
      (Number.isFinite(retryAfterS) || headers["x-ratelimit-remaining"] === "0" || /rate limit/i.test(detail)));
  if (limited) {
    const retryAfterMs = Number.isFinite(retryAfterS)
      ? retryAfterS * 1000
      : Number.isFinite(resetS)
        ? Math.max(0, resetS * 1000 - nowMs)
        : 60_000;
    return new GitHubError({ kind: "RateLimited", status, retryAfterMs, message }, err);
  }
  if (status === 401 || status === 403) return new GitHubError({ kind: "Auth", status, message }, err);
  if (status === 404) return new GitHubError({ kind: "NotFound", status, message }, err);
  if (status === 409) return new GitHubError({ kind: "Conflict", status, message }, err);
  if (status === 422) return new GitHubError({ kind: "Unprocessable", status, message }, err);
  return new GitHubError({ kind: "Server", status, message }, err);
}

/** The call's result, or undefined on 404. */
export async function orNotFound<T>(p: Promise<T>): Promise<T | undefined> {
  try {
    return await p;
  } catch (err) {
    if ((err as ErrorLike).status === 404) return undefined;
    throw err;
  }
}
