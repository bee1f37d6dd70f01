// Trace readers: the Azure LLM inference trace CSV, Mooncake JSONL and a rate series CSV.
//
// Parsing is pure (text in, trace out) so tests need no files; `readTraceFile` adds the file
// system. A bad line is a TraceParseError naming file and line, or, with `lenient`, skipped and
// counted in `skippedLines` (the first few reasons are kept for the report).

import { readFileSync } from "node:fs";
import { basename } from "node:path";

export type TraceFormat = "azure" | "mooncake" | "rate";
export const TRACE_FORMATS: readonly TraceFormat[] = ["azure", "mooncake", "rate"];

export interface SkippedLine {
  readonly line: number;
  readonly reason: string;
}

interface TraceCommon {
  /** Display name (file base name or a synthetic label). */
  readonly name: string;
  readonly format: TraceFormat | "synthetic";
  /** Epoch ms of second 0 of the replay. */
  readonly startEpochMs: number;
  readonly skippedLines: number;
  /** The first few skipped lines (lenient mode). */
  readonly skipped: readonly SkippedLine[];
}

/** Individual requests, times relative to startEpochMs, sorted. */
export interface RequestTrace extends TraceCommon {
  readonly kind: "requests";
  readonly timesMs: Float64Array;
  readonly inputTokens: Float64Array;
  readonly outputTokens: Float64Array;
}

/** A request-rate series; arrivals are synthesised inside each window. */
export interface RateTrace extends TraceCommon {
  readonly kind: "rate";
  /** Window start, seconds from startEpochMs, ascending. */
  readonly windowStartS: Float64Array;
  /** Window length in seconds. */
  readonly windowS: Float64Array;
  readonly ratePerS: Float64Array;
  /** Mean tokens per request (the series carries none). */
  readonly meanInputTokens: number;
  readonly meanOutputTokens: number;
}

export type Trace = RequestTrace | RateTrace;

export class TraceParseError extends Error {
  readonly file: string;
  readonly line: number;
  constructor(file: string, line: number, reason: string, cause?: unknown) {
    super(`${file}:${line}: ${reason}`, { cause: cause ?? new Error(reason) });
    this.name = "TraceParseError";
    this.file = file;
    this.line = line;
  }
}

export interface ParseOptions {
  /** Skip and count bad lines instead of failing on the first one. */
  readonly lenient?: boolean;
  /** Display name used in errors; defaults to "<input>". */
  readonly file?: string;
}

export interface RateParseOptions extends ParseOptions {
  readonly meanInputTokens?: number;
  readonly meanOutputTokens?: number;
  /** Epoch ms of window_start_s = 0. Default 2024-01-01T00:00:00Z (a Monday). */
  readonly startEpochMs?: number;
}

/** ServeGen m-large rate-weighted token means (../shared/data/README.md). */
export const DEFAULT_RATE_INPUT_TOKENS = 914;
export const DEFAULT_RATE_OUTPUT_TOKENS = 155;
export const DEFAULT_START_EPOCH_MS = Date.UTC(2024, 0, 1);
const MAX_KEPT_SKIPS = 20;

class LineSink {
  readonly file: string;
  readonly lenient: boolean;
  skippedLines = 0;
  readonly skipped: SkippedLine[] = [];
  constructor(file: string, lenient: boolean) {
    this.file = file;
    this.lenient = lenient;
  }
  bad(line: number, reason: string): void {
    if (!this.lenient) throw new TraceParseError(this.file, line, reason);
    this.skippedLines += 1;
    if (this.skipped.length < MAX_KEPT_SKIPS) this.skipped.push({ line, reason });
  }
}

function splitLines(text: string): string[] {
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const l = lines[i] as string;
    if (l.endsWith("\r")) lines[i] = l.slice(0, -1);
  }
  return lines;
}

const TIMESTAMP_RE = /^(\d{4})-(\d{2})-(\d{2})[ T](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?Z?$/;

/** Parse an Azure trace wall-clock timestamp ("2023-11-16 18:15:46.6805900", read as UTC) to epoch ms. */
export function parseAzureTimestamp(text: string): number | undefined {
  const m = TIMESTAMP_RE.exec(text.trim());
  if (m === null) return undefined;
  const [, y, mo, d, h, mi, s, frac] = m;
  const base = Date.UTC(Number(y), Number(mo) - 1, Number(d), Number(h), Number(mi), Number(s));
  if (!Number.isFinite(base)) return undefined;
  const fracMs = frac === undefined ? 0 : Number(`0.${frac}`) * 1000;
  return base + fracMs;
}

function nonNegativeNumber(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const t = text.trim();
  if (t === "") return undefined;
  const v = Number(t);
  return Number.isFinite(v) && v >= 0 ? v : undefined;
}

function buildRequestTrace(
  name: string,
  format: TraceFormat,
  times: number[],
  ins: number[],
  outs: number[],
  sink: LineSink,
): RequestTrace {
  const n = times.length;
  const order = Array.from({ length: n }, (_, i) => i);
  let sorted = true;
  for (let i = 1; i < n; i++) if ((times[i] as number) < (times[i - 1] as number)) { sorted = false; break; }
  if (!sorted) order.sort((a, b) => (times[a] as number) - (times[b] as number) || a - b);
  const t0 = n > 0 ? (times[order[0] as number] as number) : DEFAULT_START_EPOCH_MS;
  const startEpochMs = Math.floor(t0 / 1000) * 1000;
  const timesMs = new Float64Array(n);
  const inputTokens = new Float64Array(n);
  const outputTokens = new Float64Array(n);
  for (let k = 0; k < n; k++) {
    const i = order[k] as number;
    timesMs[k] = (times[i] as number) - startEpochMs;
    inputTokens[k] = ins[i] as number;
    outputTokens[k] = outs[i] as number;
  }
  return { kind: "requests", name, format, startEpochMs, timesMs, inputTokens, outputTokens, skippedLines: sink.skippedLines, skipped: sink.skipped };
}

/** Azure LLM inference trace: `TIMESTAMP,ContextTokens,GeneratedTokens`. */
export function parseAzureTrace(text: string, options: ParseOptions = {}): RequestTrace {
  const file = options.file ?? "<input>";
  const sink = new LineSink(file, options.lenient ?? false);
  const lines = splitLines(text);
  const header = (lines[0] ?? "").trim().replace(/^\uFEFF/, "");
  const cols = header.split(",").map((c) => c.trim());
  if (cols[0] !== "TIMESTAMP" || cols[1] !== "ContextTokens" || cols[2] !== "GeneratedTokens") {
    throw new TraceParseError(file, 1, `expected header "TIMESTAMP,ContextTokens,GeneratedTokens", got "${header.slice(0, 80)}"`);
  }
  const times: number[] = [];
  const ins: number[] = [];
  const outs: number[] = [];
  for (let i = 1; i < lines.length; i++) {
    const raw = lines[i] as string;
    if (raw.trim() === "") continue;
    const f = raw.split(",");
    if (f.length !== 3) { sink.bad(i + 1, `expected 3 fields, got ${f.length}`); continue; }
    const t = parseAzureTimestamp(f[0] as string);
    if (t === undefined) { sink.bad(i + 1, `bad TIMESTAMP "${(f[0] as string).slice(0, 40)}"`); continue; }
    const input = nonNegativeNumber(f[1]);
    if (input === undefined) { sink.bad(i + 1, `bad ContextTokens "${(f[1] as string).slice(0, 40)}"`); continue; }
    const output = nonNegativeNumber(f[2]);
    if (output === undefined) { sink.bad(i + 1, `bad GeneratedTokens "${(f[2] as string).slice(0, 40)}"`); continue; }
    times.push(t);
    ins.push(input);
    outs.push(output);
  }
  return buildRequestTrace(basename(file), "azure", times, ins, outs, sink);
}

/** Mooncake trace JSONL: one object per line with `timestamp` (ms), `input_length`, `output_length`. */
export function parseMooncakeTrace(text: string, options: ParseOptions & { readonly startEpochMs?: number } = {}): RequestTrace {
  const file = options.file ?? "<input>";
  const sink = new LineSink(file, options.lenient ?? false);
  const lines = splitLines(text);
  const base = options.startEpochMs ?? DEFAULT_START_EPOCH_MS;
  const times: number[] = [];
  const ins: number[] = [];
  const outs: number[] = [];
  for (let i = 0; i < lines.length; i++) {
    const raw = (lines[i] as string).trim();
    if (raw === "") continue;
    let obj: unknown;
    try {
      obj = JSON.parse(raw);
    } catch (e) {
      if (!sink.lenient) throw new TraceParseError(file, i + 1, `invalid JSON: ${e instanceof Error ? e.message : String(e)}`, e);
      sink.bad(i + 1, "invalid JSON");
      continue;
    }
    if (typeof obj !== "object" || obj === null || Array.isArray(obj)) { sink.bad(i + 1, "expected a JSON object"); continue; }
    const o = obj as Record<string, unknown>;
    const ts = o["timestamp"];
    const input = o["input_length"];
    const output = o["output_length"];
    if (typeof ts !== "number" || !Number.isFinite(ts) || ts < 0) { sink.bad(i + 1, "timestamp must be a non-negative number (ms)"); continue; }
    if (typeof input !== "number" || !Number.isFinite(input) || input < 0) { sink.bad(i + 1, "input_length must be a non-negative number"); continue; }
    if (typeof output !== "number" || !Number.isFinite(output) || output < 0) { sink.bad(i + 1, "output_length must be a non-negative number"); continue; }
    times.push(base + ts);
    ins.push(input);
    outs.push(output);
  }
  const trace = buildRequestTrace(basename(file), "mooncake", times, ins, outs, sink);
  return trace;
}

/** Rate series CSV: `window_start_s,rate_req_per_s`; each window lasts until the next start (the last as long as the one before). */
export function parseRateTrace(text: string, options: RateParseOptions = {}): RateTrace {
  const file = options.file ?? "<input>";
  const sink = new LineSink(file, options.lenient ?? false);
  const lines = splitLines(text);
  const header = (lines[0] ?? "").trim().replace(/^\uFEFF/, "");
  const cols = header.split(",").map((c) => c.trim());
  if (cols[0] !== "window_start_s" || cols[1] !== "rate_req_per_s") {
    throw new TraceParseError(file, 1, `expected header "window_start_s,rate_req_per_s", got "${header.slice(0, 80)}"`);
  }
  const starts: number[] = [];
  const rates: number[] = [];
  for (let i = 1; i < lines.length; i++) {
    const raw = lines[i] as string;
    if (raw.trim() === "") continue;
    const f = raw.split(",");
    if (f.length < 2) { sink.bad(i + 1, `expected 2 fields, got ${f.length}`); continue; }
    const s = nonNegativeNumber(f[0]);
    if (s === undefined) { sink.bad(i + 1, `bad window_start_s "${(f[0] as string).slice(0, 40)}"`); continue; }
    const r = nonNegativeNumber(f[1]);
    if (r === undefined) { sink.bad(i + 1, `bad rate_req_per_s "${(f[1] as string).slice(0, 40)}"`); continue; }
    if (starts.length > 0 && s <= (starts[starts.length - 1] as number)) {
      sink.bad(i + 1, `window_start_s ${s} is not after the previous window (${starts[starts.length - 1]})`);
      continue;
    }
    starts.push(s);
    rates.push(r);
  }
  const n = starts.length;
  const windowStartS = new Float64Array(starts);
  const windowS = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    windowS[i] = i + 1 < n ? (starts[i + 1] as number) - (starts[i] as number) : n > 1 ? (windowS[i - 1] as number) : 60;
  }
  return {
    kind: "rate",
    name: basename(file),
    format: "rate",
    startEpochMs: options.startEpochMs ?? DEFAULT_START_EPOCH_MS,
    windowStartS,
    windowS,
    ratePerS: new Float64Array(rates),
    meanInputTokens: options.meanInputTokens ?? DEFAULT_RATE_INPUT_TOKENS,
    meanOutputTokens: options.meanOutputTokens ?? DEFAULT_RATE_OUTPUT_TOKENS,
    skippedLines: sink.skippedLines,
    skipped: sink.skipped,
  };
}

/** Guess the format from the file name and first line. */
export function detectTraceFormat(file: string, firstLine: string): TraceFormat | undefined {
  const head = firstLine.trim().replace(/^\uFEFF/, "");
  if (head.startsWith("TIMESTAMP,")) return "azure";
  if (head.startsWith("window_start_s,")) return "rate";
  if (head.startsWith("{") || /\.jsonl?$/i.test(file)) return "mooncake";
  return undefined;
}

export interface ReadTraceOptions extends RateParseOptions {
  readonly format?: TraceFormat;
}

/** Read and parse a trace file (format detected when not given). */
export function readTraceFile(path: string, options: ReadTraceOptions = {}): Trace {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
    throw new Error(`cannot read trace ${path}: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
  }
  const firstLine = text.slice(0, Math.min(text.length, 4096)).split("\n")[0] ?? "";
  const format = options.format ?? detectTraceFormat(path, firstLine);
  if (format === undefined) {
    throw new TraceParseError(path, 1, "cannot detect the trace format; pass --format azure|mooncake|rate");
  }
  const opts = { ...options, file: path };
  switch (format) {
    case "azure": return parseAzureTrace(text, opts);
    case "mooncake": return parseMooncakeTrace(text, opts);
    case "rate": return parseRateTrace(text, opts);
  }
}
