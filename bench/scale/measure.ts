// Readings for the scale benchmark: Prometheus text exposition (the operator's and
// kube-apiserver's /metrics), /proc/<pid> memory and CPU, the audit log's writes by
// user, and percentiles.
import { closeSync, existsSync, fstatSync, openSync, readFileSync, readSync } from "node:fs";

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

const LINE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

/** Parses Prometheus text exposition; comment and malformed lines are skipped. */
export function parsePromText(text: string): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split("\n")) {
    if (line.startsWith("#")) continue;
    const m = LINE.exec(line);
    if (!m) continue;
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? "").matchAll(LABEL)) labels[l[1]!] = l[2]!;
    out.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return out;
}

/** Sum of a metric's samples, grouped by one label (or all under "" when `by` is omitted). */
export function sumBy(
  samples: Sample[],
  name: string,
  by?: string,
  where: (l: Record<string, string>) => boolean = () => true,
): Map<string, number> {
  const out = new Map<string, number>();
  for (const s of samples) {
    if (s.name !== name || !where(s.labels) || !Number.isFinite(s.value)) continue;
    const key = by ? (s.labels[by] ?? "") : "";
    out.set(key, (out.get(key) ?? 0) + s.value);
  }
  return out;
}

export function total(m: Map<string, number>): number {
  let t = 0;
  for (const v of m.values()) t += v;
  return t;
}

/** Per-key difference b - a (keys of either). */
export function diff(a: Map<string, number>, b: Map<string, number>): Map<string, number> {
  const out = new Map<string, number>();
  for (const k of new Set([...a.keys(), ...b.keys()])) out.set(k, (b.get(k) ?? 0) - (a.get(k) ?? 0));
  return out;
}

/** A process's resident set (VmRSS) and its peak (VmHWM), in MiB. */
export function readRssMiB(pid: number): { rssMiB: number; peakMiB: number } {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const kib = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+)`, "m").exec(status)?.[1] ?? NaN);
  return { rssMiB: kib("VmRSS") / 1024, peakMiB: kib("VmHWM") / 1024 };
}

/** User + system CPU time of a process in seconds (fields 14 and 15 of /proc/<pid>/stat, at 100 ticks/s). */
export function readCpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  // The command name (field 2) is in parentheses and may hold spaces: split after the last ")".
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const CLK_TCK = 100;
  return (Number(fields[11]) + Number(fields[12])) / CLK_TCK;
}

export const WRITE_VERBS = new Set(["create", "update", "patch", "delete", "deletecollection"]);

export interface AuditRequest {
  timeMs: number;
  verb: string;
  resource: string;
  subresource?: string;
}

/**
 * Requests made by `username` from byte `fromByte` of the audit log on: a watch counts when its
 * response starts, every other request when it completes.
 */
export function readAuditRequests(
  path: string | undefined,
  username: string,
  fromByte = 0,
): { requests: AuditRequest[]; endByte: number } {
  if (!path || !existsSync(path)) return { requests: [], endByte: fromByte };
  const fd = openSync(path, "r");
  let text: string;
  let endByte: number;
  try {
    const size = fstatSync(fd).size;
    const buf = Buffer.alloc(Math.max(0, size - fromByte));
    readSync(fd, buf, 0, buf.length, fromByte);
    // Stop at the last complete line; the rest is read next time.
    const cut = buf.lastIndexOf(0x0a) + 1;
    text = buf.subarray(0, cut).toString("utf8");
    endByte = fromByte + cut;
  } finally {
    closeSync(fd);
  }
  const requests: AuditRequest[] = [];
  for (const line of text.split("\n")) {
    if (!line.includes(username)) continue;
    try {
      const e = JSON.parse(line) as {
        stage?: string;
        user?: { username?: string };
        verb: string;
        objectRef?: { resource?: string; subresource?: string };
        stageTimestamp: string;
      };
      if (e.stage !== (e.verb === "watch" ? "ResponseStarted" : "ResponseComplete") || e.user?.username !== username)
        continue;
      requests.push({
        timeMs: Date.parse(e.stageTimestamp),
        verb: e.verb,
        resource: e.objectRef?.resource ?? "",
        subresource: e.objectRef?.subresource,
      });
    } catch {
      // not an audit event line
    }
  }
  return { requests, endByte };
}

export function countBy<T>(items: T[], key: (t: T) => string): Map<string, number> {
  const out = new Map<string, number>();
  for (const i of items) out.set(key(i), (out.get(key(i)) ?? 0) + 1);
  return out;
}

export function formatCounts(m: Map<string, number>, scale = 1, digits = 0): string {
  const parts = [...m.entries()]
    .filter(([, v]) => v !== 0)
    .sort((a, b) => b[1] - a[1])
    .map(([k, v]) => `${k || "(none)"} ${(v * scale).toFixed(digits)}`);
  return parts.length ? parts.join(", ") : "none";
}

/** One reading of the operator's memory: RSS from /proc, the V8 heap and external memory from its /metrics. */
export interface MemoryReading {
  rssMiB: number;
  heapTotalMiB: number;
  heapUsedMiB: number;
  externalMiB: number;
}

/**
 * Samples the operator's memory every `intervalMs` and keeps the reading with the highest RSS,
 * so the peak can be broken down (V8 heap reserved and used, external buffers, the rest).
 */
export class MemorySampler {
  peak: MemoryReading | undefined;
  readonly #timer: NodeJS.Timeout;
  #busy = false;

  readonly pid: number;
  readonly metricsUrl: string;

  constructor(pid: number, metricsUrl: string, intervalMs = 2_000) {
    this.pid = pid;
    this.metricsUrl = metricsUrl;
    this.#timer = setInterval(() => void this.sample(), intervalMs);
    this.#timer.unref();
  }

  async sample(): Promise<void> {
    if (this.#busy) return;
    this.#busy = true;
    try {
      const { rssMiB } = readRssMiB(this.pid);
      if (this.peak && rssMiB <= this.peak.rssMiB) return;
      const r = await fetch(this.metricsUrl, { signal: AbortSignal.timeout(5_000) });
      const m = parsePromText(await r.text());
      const mib = (name: string) => total(sumBy(m, name)) / 1048576;
      this.peak = {
        rssMiB,
        heapTotalMiB: mib("moe_operator_process_nodejs_heap_size_total_bytes"),
        heapUsedMiB: mib("moe_operator_process_nodejs_heap_size_used_bytes"),
        externalMiB: mib("moe_operator_process_nodejs_external_memory_bytes"),
      };
    } catch {
      // The process is gone or not serving yet: no reading this time.
    } finally {
      this.#busy = false;
    }
  }

  stop(): void {
    clearInterval(this.#timer);
  }
}
