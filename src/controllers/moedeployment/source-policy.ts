// What a MoEDeployment's metric sources may touch, decided by the operator's
// configuration, not by the user's spec (docs/adr/0007-metric-sources.md):
// - Prometheus URLs must match an allowlist entry (empty list: none allowed);
// - File heat sources are off unless directories are allowed, and a file is read
//   only if its real path lies inside one, is a regular file and fits a byte cap.
// Refusals are fixed messages naming the field and the rule, never file bytes.
import { constants } from "node:fs";
import { open, realpath } from "node:fs/promises";
import { isAbsolute, relative, resolve, sep } from "node:path";

export interface SourcePolicy {
  /** Entries: a base URL (`http://prometheus.monitoring.svc:9090`) or a host pattern (`prometheus.monitoring.svc:9090`, `*.monitoring.svc`). */
  prometheusAllowedUrls: readonly string[];
  /** Directories File heat sources may read from; empty disables File heat sources. */
  fileHeatSourceDirs: readonly string[];
  fileHeatSourceMaxBytes: number;
}

const HOST_PATTERN = /^(\*\.)?[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*(:\d{1,5})?$/;

/** Why an allowlist entry is malformed, or undefined when it is fine. */
export function allowlistEntryProblem(entry: string): string | undefined {
  if (/^https?:\/\//i.test(entry)) {
    let u: URL;
    try {
      u = new URL(entry);
    } catch {
      return "is not a valid URL";
    }
    if (u.username || u.password || u.search || u.hash) return "must not carry credentials, a query or a fragment";
    return undefined;
  }
  return HOST_PATTERN.test(entry)
    ? undefined
    : "must be an http(s) base URL or a host[:port] pattern (a leading *. matches subdomains)";
}

function effectivePort(u: URL): string {
  return u.port || (u.protocol === "https:" ? "443" : "80");
}

function hostMatches(pattern: string, host: string): boolean {
  const p = pattern.toLowerCase();
  if (p.startsWith("*.")) return host.endsWith(p.slice(1)) && host.length > p.length - 1;
  return host === p;
}

function entryAllows(entry: string, u: URL): boolean {
  if (/^https?:\/\//i.test(entry)) {
    const e = new URL(entry);
    if (e.protocol !== u.protocol || e.hostname !== u.hostname || effectivePort(e) !== effectivePort(u)) return false;
    const basePath = e.pathname.replace(/\/+$/, "");
    const path = u.pathname.replace(/\/+$/, "");
    return path === basePath || path.startsWith(`${basePath}/`);
  }
  const i = entry.lastIndexOf(":");
  const [host, port] = i > 0 ? [entry.slice(0, i), entry.slice(i + 1)] : [entry, undefined];
  return hostMatches(host, u.hostname.toLowerCase()) && (port === undefined || port === effectivePort(u));
}

/** Undefined when the URL may be queried; otherwise a fixed refusal naming the field and the rule. */
export function prometheusUrlRefusal(
  url: string,
  field: string,
  policy: Pick<SourcePolicy, "prometheusAllowedUrls">,
): string | undefined {
  if (policy.prometheusAllowedUrls.length === 0) {
    return `${field}: no Prometheus URL is allowed by this operator (its --prometheus-allowed-urls is empty); no request was sent`;
  }
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return `${field}: not a valid URL; no request was sent`;
  }
  const shapeOk =
    (u.protocol === "http:" || u.protocol === "https:") && !u.username && !u.password && !u.search && !u.hash;
  if (shapeOk && policy.prometheusAllowedUrls.some((e) => entryAllows(e, u))) return undefined;
  return `${field}: URL not in the operator's allowlist (--prometheus-allowed-urls); no request was sent`;
}

export type FileReadResult = { ok: true; text: string } | { ok: false; message: string };

const FIELD = "spec.heatSource.file.path";

function inside(dir: string, path: string): boolean {
  const rel = relative(dir, path);
  return rel === "" ? false : !rel.startsWith(`..${sep}`) && rel !== ".." && !isAbsolute(rel);
}

/** Reads a File heat source under the policy; every refusal is a fixed message. */
export async function readAllowedFile(
  path: string,
  policy: Pick<SourcePolicy, "fileHeatSourceDirs" | "fileHeatSourceMaxBytes">,
): Promise<FileReadResult> {
  if (policy.fileHeatSourceDirs.length === 0) {
    return {
      ok: false,
      message: `${FIELD}: File heat sources are disabled on this operator (--file-heat-source-dirs is empty); nothing was read`,
    };
  }
  const notAllowed = {
    ok: false as const,
    message: `${FIELD}: not a readable file inside the operator's allowed directories (--file-heat-source-dirs)`,
  };
  // Lexical check first: a path outside every allowed directory is never touched (no existence oracle).
  const lexical = resolve(path);
  if (!isAbsolute(path) || !policy.fileHeatSourceDirs.some((d) => inside(resolve(d), lexical))) return notAllowed;
  let real: string;
  try {
    real = await realpath(lexical);
    const dirs = await Promise.all(policy.fileHeatSourceDirs.map((d) => realpath(d).catch(() => undefined)));
    if (!dirs.some((d) => d !== undefined && inside(d, real))) return notAllowed;
  } catch {
    return notAllowed;
  }
  return readRegularFileCapped(real, policy.fileHeatSourceMaxBytes, notAllowed);
}

async function readRegularFileCapped(
  real: string,
  maxBytes: number,
  notAllowed: FileReadResult,
): Promise<FileReadResult> {
  let fh;
  try {
    // O_NONBLOCK: a FIFO does not block the open; O_NOFOLLOW: the resolved path is not swapped for a link.
    fh = await open(real, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch {
    return notAllowed;
  }
  try {
    const st = await fh.stat();
    if (!st.isFile()) return { ok: false, message: `${FIELD}: not a regular file; nothing was read` };
    if (st.size > maxBytes)
      return {
        ok: false,
        message: `${FIELD}: file larger than ${maxBytes} bytes (--file-heat-source-max-bytes); nothing was read`,
      };
    // Read at most maxBytes + 1: a file that grew past the cap since stat is refused too.
    const buf = Buffer.alloc(Math.min(maxBytes + 1, st.size + 1));
    let n = 0;
    while (n < buf.length) {
      const { bytesRead } = await fh.read(buf, n, buf.length - n, n);
      if (bytesRead === 0) break;
      n += bytesRead;
    }
    if (n > maxBytes)
      return {
        ok: false,
        message: `${FIELD}: file larger than ${maxBytes} bytes (--file-heat-source-max-bytes); nothing was read`,
      };
    if (n > st.size) return { ok: false, message: `${FIELD}: file changed while being read; nothing was used` };
    return { ok: true, text: buf.subarray(0, n).toString("utf8") };
  } catch {
    return notAllowed;
  } finally {
    await fh.close().catch(() => undefined);
  }
}
