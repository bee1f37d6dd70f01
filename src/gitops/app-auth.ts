// GitHub App authentication without extra packages: an RS256 JWT signed with the
// App's private key (node:crypto), exchanged for a one-hour installation token,
// cached until five minutes before it expires.
import { createPrivateKey, createSign } from "node:crypto";

export interface AppCredentials {
  appId: number;
  installationId: number;
  privateKeyPem: string;
}

const b64url = (b: Buffer | string) => Buffer.from(b).toString("base64url");

/** A JWT for the App: issued a minute in the past (clock drift), valid nine minutes. */
export function appJwt(appId: number, privateKeyPem: string, nowMs: number): string {
  let key;
  try {
    key = createPrivateKey(privateKeyPem);
  } catch (err) {
    throw new Error("the GitHub App private key is not a PEM private key", { cause: err });
  }
  const iat = Math.floor(nowMs / 1000) - 60;
  const header = b64url(JSON.stringify({ alg: "RS256", typ: "JWT" }));
  const payload = b64url(JSON.stringify({ iat, exp: iat + 600, iss: String(appId) }));
  const signature = createSign("RSA-SHA256").update(`${header}.${payload}`).sign(key);
  return `${header}.${payload}.${b64url(signature)}`;
}

export interface InstallationToken {
  token: string;
  expiresAtMs: number;
}

/** Installation tokens by app/installation/key, reused until 5 minutes before expiry. */
export class InstallationTokenCache {
  readonly #tokens = new Map<string, InstallationToken>();

  get(key: string, nowMs: number): string | undefined {
    const t = this.#tokens.get(key);
    if (t && t.expiresAtMs - 300_000 > nowMs) return t.token;
    this.#tokens.delete(key);
    return undefined;
  }

  set(key: string, t: InstallationToken): void {
    if (this.#tokens.size >= 1024) this.#tokens.delete(this.#tokens.keys().next().value!);
    this.#tokens.set(key, t);
  }

  drop(key: string): void {
    this.#tokens.delete(key);
  }
}
