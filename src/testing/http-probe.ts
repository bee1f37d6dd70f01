import { request as httpsRequest } from "node:https";
import { request as httpRequest } from "node:http";

export interface ProbeTls {
  ca?: Buffer;
  cert?: Buffer;
  key?: Buffer;
  /** Skip server verification (component health ports use self-signed certs). */
  insecure?: boolean;
}

/** GET url; resolves to the status code and body, or rejects on connection errors. */
export function httpGet(url: string, tls: ProbeTls = {}, timeoutMs = 2_000): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const u = new URL(url);
    const req = (u.protocol === "https:" ? httpsRequest : httpRequest)(
      u,
      {
        method: "GET",
        ca: tls.ca,
        cert: tls.cert,
        key: tls.key,
        rejectUnauthorized: !tls.insecure,
        timeout: timeoutMs,
      },
      (res) => {
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (c: string) => (body += c));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
      },
    );
    req.on("timeout", () => req.destroy(new Error(`timeout after ${timeoutMs} ms`)));
    req.on("error", reject);
    req.end();
  });
}

/** Thrown by a probe to stop waiting at once (e.g. the process died). */
export class FatalProbeError extends Error {}

export async function waitFor<T>(
  what: string,
  probe: () => Promise<T | undefined>,
  opts: { timeoutMs: number; intervalMs?: number; onTimeout?: () => string },
): Promise<T> {
  const deadline = Date.now() + opts.timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const v = await probe();
      if (v !== undefined) return v;
    } catch (err) {
      if (err instanceof FatalProbeError) throw err;
      lastError = err;
    }
    if (Date.now() > deadline) {
      const extra = opts.onTimeout ? `\n${opts.onTimeout()}` : "";
      throw new Error(`timed out after ${opts.timeoutMs} ms waiting for ${what}${extra}`, { cause: lastError });
    }
    await new Promise((r) => setTimeout(r, opts.intervalMs ?? 100));
  }
}
