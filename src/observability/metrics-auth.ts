// Authentication and authorization of /metrics scrapes, as kube-rbac-proxy does it:
// the bearer token goes to a TokenReview; the user it names must be allowed
// `get` on the non-resource URL /metrics by a SubjectAccessReview. The operator's
// ServiceAccount needs create on tokenreviews and subjectaccessreviews; the
// scraper's ServiceAccount needs a (Cluster)Role with nonResourceURLs ["/metrics"].
import { createHash } from "node:crypto";
import { AuthenticationV1Api, AuthorizationV1Api, type KubeConfig } from "@kubernetes/client-node";

export type MetricsAuthResult = { ok: true } | { ok: false; status: 401 | 403 | 429 | 500; reason: string };
/** Decides on the request's Authorization header. */
export type MetricsAuthorizer = (authorizationHeader: string | undefined) => Promise<MetricsAuthResult>;

export interface TokenReviewAuthOptions {
  kubeConfig: KubeConfig;
  /** The non-resource URL checked with the SubjectAccessReview. */
  path?: string;
  /** Allowed tokens are remembered this long (by hash), so a scrape costs no API call. */
  cacheTtlMs?: number;
  /** At most this many tokens remembered. */
  cacheSize?: number;
  /** At most this many reviews in flight; more requests get 429 (bounds API calls from floods). */
  maxInFlight?: number;
  nowMs?: () => number;
  /** Told when a review call fails (e.g. the operator lacks the RBAC to create reviews). */
  onReviewError?: (err: unknown) => void;
}

/** An authorizer that asks the API server (TokenReview, then SubjectAccessReview). */
export function tokenReviewAuthorizer(o: TokenReviewAuthOptions): MetricsAuthorizer {
  const authn = o.kubeConfig.makeApiClient(AuthenticationV1Api);
  const authz = o.kubeConfig.makeApiClient(AuthorizationV1Api);
  const path = o.path ?? "/metrics";
  const ttlMs = o.cacheTtlMs ?? 60_000;
  const cacheSize = o.cacheSize ?? 32;
  const maxInFlight = o.maxInFlight ?? 8;
  const nowMs = o.nowMs ?? (() => Date.now());
  const allowed = new Map<string, number>(); // token hash -> expiry
  let inFlight = 0;

  const review = async (token: string): Promise<MetricsAuthResult> => {
    const tr = await authn.createTokenReview({
      body: { apiVersion: "authentication.k8s.io/v1", kind: "TokenReview", spec: { token } },
    });
    const user = tr.status?.user;
    if (!tr.status?.authenticated || !user?.username)
      return { ok: false, status: 401, reason: "Unauthorized: the token was not accepted" };
    const sar = await authz.createSubjectAccessReview({
      body: {
        apiVersion: "authorization.k8s.io/v1",
        kind: "SubjectAccessReview",
        spec: {
          user: user.username,
          uid: user.uid,
          groups: user.groups,
          extra: user.extra,
          nonResourceAttributes: { path, verb: "get" },
        },
      },
    });
    if (!sar.status?.allowed)
      return { ok: false, status: 403, reason: `Forbidden: ${user.username} may not get ${path}` };
    return { ok: true };
  };

  return async (header) => {
    const token = /^Bearer\s+(\S+)\s*$/i.exec(header ?? "")?.[1];
    if (!token) return { ok: false, status: 401, reason: "Unauthorized: a bearer token is required" };
    const key = createHash("sha256").update(token).digest("hex");
    const expiry = allowed.get(key);
    if (expiry !== undefined && expiry > nowMs()) return { ok: true };
    allowed.delete(key);
    if (inFlight >= maxInFlight)
      return { ok: false, status: 429, reason: "Too many requests: token reviews in flight" };
    inFlight++;
    try {
      const r = await review(token);
      if (r.ok) {
        allowed.set(key, nowMs() + ttlMs);
        while (allowed.size > cacheSize) allowed.delete(allowed.keys().next().value!);
      }
      return r;
    } catch (err) {
      // The API server's error is for the operator's log, not for the scraper.
      o.onReviewError?.(err);
      return { ok: false, status: 500, reason: "Internal error: the token could not be reviewed" };
    } finally {
      inFlight--;
    }
  };
}
