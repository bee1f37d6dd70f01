import { randomBytes, verify, type KeyObject } from "node:crypto";
import { ownerUser, type Json } from "./shapes.ts";
import { notFound, type Handler, type RepoState } from "./state.ts";

/** GitHub App authentication (JWT -> installation token), the installation lookup and GET /rate_limit. */

const INSTALLATION_TOKEN_TTL_MS = 60 * 60 * 1000;
const MAX_INSTALLATION_TOKENS = 1000;
/** GitHub rejects app JWTs that expire more than 10 minutes after issue; allow its documented 60 s clock drift. */
const MAX_JWT_LIFETIME_S = 600;
const CLOCK_DRIFT_S = 60;
const PERMISSIONS = { contents: "write", pull_requests: "write", metadata: "read" };

/** Verifies an app JWT (RS256, signed with the app's private key); returns null when valid, else GitHub's message. */
export function verifyAppJwt(jwt: string, appId: number, publicKey: KeyObject, nowS: number): string | null {
  const parts = jwt.split(".");
  if (parts.length !== 3) return "A JSON web token could not be decoded";
  const [h, p, s] = parts as [string, string, string];
  let header: Json;
  let payload: Json;
  try {
    header = JSON.parse(Buffer.from(h, "base64url").toString("utf8")) as Json;
    payload = JSON.parse(Buffer.from(p, "base64url").toString("utf8")) as Json;
  } catch {
    return "A JSON web token could not be decoded";
  }
  if (header.alg !== "RS256") return `'alg' must be RS256, not ${String(header.alg)}`;
  if (!verify("sha256", Buffer.from(`${h}.${p}`), publicKey, Buffer.from(s, "base64url"))) {
    return "A JSON web token could not be decoded";
  }
  if (String(payload.iss) !== String(appId)) return "'Issuer' claim ('iss') must be an Integer";
  if (typeof payload.iat !== "number" || typeof payload.exp !== "number")
    return "'Issued at' and 'Expiration time' claims are required";
  if (payload.exp <= nowS)
    return "'Expiration time' claim ('exp') must be a numeric value representing the future time at which the assertion expires";
  if (payload.iat > nowS + CLOCK_DRIFT_S)
    return "'Issued at' claim ('iat') must be an Integer representing the time that the assertion was issued";
  if (payload.exp - payload.iat > MAX_JWT_LIFETIME_S || payload.exp > nowS + MAX_JWT_LIFETIME_S + CLOCK_DRIFT_S) {
    return "'Expiration time' claim ('exp') is too far in the future";
  }
  return null;
}

function pruneTokens(state: RepoState, nowMs: number): void {
  for (const [token, expiresMs] of state.installationTokens) {
    if (expiresMs <= nowMs || state.installationTokens.size >= MAX_INSTALLATION_TOKENS)
      state.installationTokens.delete(token);
  }
}

const createInstallationToken: Handler = async ({ state, params }) => {
  if (Number(params.installation_id) !== state.app.installationId) return notFound();
  const nowMs = Date.now();
  pruneTokens(state, nowMs);
  const token = `ghs_${randomBytes(18).toString("base64url")}`;
  const expiresMs = nowMs + INSTALLATION_TOKEN_TTL_MS;
  state.installationTokens.set(token, expiresMs);
  const body = {
    token,
    expires_at: new Date(expiresMs).toISOString().replace(/\.\d{3}Z$/, "Z"),
    permissions: PERMISSIONS,
    repository_selection: "selected",
  };
  return { status: 201, body };
};

const getRepoInstallation: Handler = async ({ state }) => {
  const { site, app } = state;
  const body = {
    id: app.installationId,
    account: ownerUser(site),
    repository_selection: "selected",
    access_tokens_url: `${site.apiUrl}/app/installations/${app.installationId}/access_tokens`,
    repositories_url: `${site.apiUrl}/installation/repositories`,
    html_url: `${site.htmlUrl}/organizations/${site.owner}/settings/installations/${app.installationId}`,
    app_id: app.appId,
    app_slug: app.slug,
    target_id: site.ownerId,
    target_type: "Organization",
    permissions: PERMISSIONS,
    events: [],
    created_at: site.createdAt,
    updated_at: site.createdAt,
    single_file_name: null,
    has_multiple_single_files: false,
    single_file_paths: [],
    suspended_by: null,
    suspended_at: null,
  };
  return { status: 200, body };
};

export interface RateWindow {
  limit: number;
  used: number;
  resetS: number;
}

export function rateLimitBody(rate: RateWindow): Json {
  const core = {
    limit: rate.limit,
    used: rate.used,
    remaining: Math.max(rate.limit - rate.used, 0),
    reset: rate.resetS,
  };
  const other = (limit: number) => ({ limit, used: 0, remaining: limit, reset: rate.resetS });
  return {
    resources: { core, search: other(30), graphql: other(5000), integration_manifest: other(5000) },
    rate: core,
  };
}

export const appHandlers: Record<string, Handler> = {
  "apps/create-installation-access-token": createInstallationToken,
  "apps/get-repo-installation": getRepoInstallation,
};
