// Kubernetes API errors mapped to a small discriminated union, so callers
// branch on meaning (NotFound, Conflict, ...) instead of status codes.
import { ApiException } from "@kubernetes/client-node";

export type KubeError =
  | { kind: "NotFound"; message: string }
  | { kind: "AlreadyExists"; message: string }
  | { kind: "Conflict"; message: string }
  | { kind: "Invalid"; message: string; causes: { field?: string; message?: string }[] }
  | { kind: "Forbidden"; message: string }
  | { kind: "Unauthorized"; message: string }
  | { kind: "TooManyRequests"; message: string; retryAfterSeconds?: number }
  | { kind: "Gone"; message: string }
  | { kind: "ServerError"; message: string; code: number }
  | { kind: "Network"; message: string }
  | { kind: "Unknown"; message: string };

interface StatusBody {
  kind?: string;
  message?: string;
  reason?: string;
  code?: number;
  details?: { causes?: { field?: string; message?: string; reason?: string }[]; retryAfterSeconds?: number };
}

function parseBody(body: unknown): StatusBody {
  if (typeof body === "string") {
    try {
      return JSON.parse(body) as StatusBody;
    } catch {
      return { message: body };
    }
  }
  return (body ?? {}) as StatusBody;
}

export function classifyKubeError(err: unknown): KubeError {
  // An aborted request (our own deadline, src/adapters/request-timeout.ts) is a DOMException whose
  // numeric legacy `code` (23) is not an HTTP status.
  if (err instanceof Error && (err.name === "TimeoutError" || err.name === "AbortError"))
    return { kind: "Network", message: err.message };
  if (hasStatusCode(err)) return classifyStatus(err as { code: number; body?: unknown; message?: string });
  return classifyTransport(err);
}

function hasStatusCode(err: unknown): boolean {
  return (
    err instanceof ApiException ||
    (typeof err === "object" && err !== null && "code" in err && typeof (err as { code: unknown }).code === "number")
  );
}

function classifyStatus(e: { code: number; body?: unknown; message?: string }): KubeError {
  const body = parseBody(e.body);
  const message = body.message ?? e.message ?? `HTTP ${e.code}`;
  switch (e.code) {
    case 404:
      return { kind: "NotFound", message };
    case 409:
      return body.reason === "AlreadyExists" ? { kind: "AlreadyExists", message } : { kind: "Conflict", message };
    case 422:
      return { kind: "Invalid", message, causes: body.details?.causes ?? [] };
    case 403:
      return { kind: "Forbidden", message };
    case 401:
      return { kind: "Unauthorized", message };
    case 410:
      return { kind: "Gone", message };
    case 429:
      return { kind: "TooManyRequests", message, retryAfterSeconds: body.details?.retryAfterSeconds };
    default:
      if (e.code >= 500) return { kind: "ServerError", message, code: e.code };
      return { kind: "Unknown", message };
  }
}

function classifyTransport(err: unknown): KubeError {
  const message = err instanceof Error ? err.message : String(err);
  const code = (err as { code?: unknown })?.code;
  if (typeof code === "string" && /^E(CONNREFUSED|CONNRESET|TIMEDOUT|PIPE|NOTFOUND)|UND_ERR/.test(code))
    return { kind: "Network", message };
  if (
    err instanceof Error &&
    (err.name === "FetchError" ||
      err.name === "AbortError" ||
      err.name === "TimeoutError" ||
      /fetch failed|socket|ECONN/.test(message))
  )
    return { kind: "Network", message };
  return { kind: "Unknown", message };
}

/** The HTTP status code of an API failure, when it has one. */
export function statusCodeOf(err: unknown): number | undefined {
  if (err instanceof Error && (err.name === "TimeoutError" || err.name === "AbortError")) return undefined;
  const code = (err as { code?: unknown } | null | undefined)?.code;
  return typeof code === "number" && code >= 100 && code < 600 ? code : undefined;
}

/** Wraps an API failure in an Error with a cause, the classified kind and the HTTP status code. */
export class KubeApiError extends Error {
  readonly kubeError: KubeError;
  /** What was attempted, e.g. "create Pod/tiny-shard-0-abc". */
  readonly operation: string;
  readonly statusCode: number | undefined;
  constructor(operation: string, err: unknown) {
    const k = classifyKubeError(err);
    const code = statusCodeOf(err);
    super(`${operation}: ${k.kind}${code !== undefined ? ` (HTTP ${code})` : ""}: ${k.message}`, { cause: err });
    this.name = "KubeApiError";
    this.kubeError = k;
    this.operation = operation;
    this.statusCode = code;
  }
}

/** Every KubeApiError in an error's cause chain and in AggregateError members (bounded depth). */
export function kubeApiErrorsIn(err: unknown, depth = 0): KubeApiError[] {
  if (depth > 8 || !(err instanceof Error)) return [];
  if (err instanceof KubeApiError) return [err];
  const members = err instanceof AggregateError ? (err.errors as unknown[]).slice(0, 100) : [];
  return [...members.flatMap((e) => kubeApiErrorsIn(e, depth + 1)), ...kubeApiErrorsIn(err.cause, depth + 1)];
}

export function isKind(err: unknown, kind: KubeError["kind"]): boolean {
  if (err instanceof KubeApiError) return err.kubeError.kind === kind;
  return classifyKubeError(err).kind === kind;
}
