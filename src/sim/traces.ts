// Trace readers: the Azure LLM inference trace CSV, Mooncake JSONL and a rate series CSV.
//
// Parsing is pure (text in, trace out) so tests need no files; `readTraceFile` adds the file
// system. A bad line is a TraceParseError naming file and line, or, with `lenient`, skipped and
// counted in `skippedLines` (the first few reasons are kept for the report).
//
// Memory is bounded by construction: a trace may span at most `maxSpanDays` (default 21, at most
// 92), checked line by line, so the per-second arrays built from it are sized from a validated
// span; impossible dates, a line far outside the others and a file with nothing left to replay are
// errors naming the file and line. Lines out of time order are sorted and counted
// (`outOfOrderLines`), or an error with `strict`.

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
  /** Lines earlier than a line before them (request traces; sorted by time before replay). */
  readonly outOfOrderLines?: number;
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
  /** Whether skipping bad lines (lenient) would get past this error (false for header, format, span, empty). */
  readonly skippable: boolean;
  constructor(
    file: string,
    line: number,
    reason: string,
    options: { readonly cause?: unknown; readonly skippable?: boolean } = {},
  ) {
    super(`${file}:${line}: ${reason}`, { cause: options.cause ?? new Error(reason) });
    this.name = "TraceParseError";
    this.file = file;
    this.line = line;
    this.skippable = options.skippable ?? true;
  }
}

/** Default longest span of a trace (days): the longest public series (ServeGen, 14 days) with margin. */
export const DEFAULT_MAX_SPAN_DAYS = 21;
/** The override's ceiling (days): 92 days of per-second arrays stay within a few GB. */
export const MAX_SPAN_DAYS_LIMIT = 92;

export interface ParseOptions {
  /** Skip and count bad lines instead of failing on the first one. */
  readonly lenient?: boolean;
  /** Lines out of time order are an error instead of a counted warning. */
  readonly strict?: boolean;
  /** Longest span (days) between the earliest and the latest line (default 21, at most 92). */
  readonly maxSpanDays?: number;
  /** Display name used in errors; defaults to "<input>". */
  readonly file?: string;
}

/** The validated span limit in ms (throws on a limit outside (0, MAX_SPAN_DAYS_LIMIT]). */
export function maxSpanMs(options: ParseOptions): number {
  const days = options.maxSpanDays ?? DEFAULT_MAX_SPAN_DAYS;
  if (!(days > 0) || days > MAX_SPAN_DAYS_LIMIT) {
    throw new RangeError(`maxSpanDays must be in (0, ${MAX_SPAN_DAYS_LIMIT}], got ${days}`, {
      cause: new Error("maxSpanDays"),
    });
  }
  return days * 86_400_000;
}

const fmtDays = (ms: number): string => (ms / 86_400_000).toFixed(ms < 86_400_000 ? 3 : 1);

/**
 * Tracks the earliest and latest time seen (ms) and the lines they came from; a line that would
 * stretch the span beyond the limit is reported with both lines, and not admitted.
 */
class SpanGuard {
  private minMs = Infinity;
  private maxMs = -Infinity;
  private minLine = 0;
  private maxLine = 0;
  outOfOrder = 0;
  firstOutOfOrderLine = 0;
  private readonly limitMs: number;
  private readonly what: string;
  private readonly originLabel: string | undefined;
  constructor(limitMs: number, what: string, origin?: { readonly atMs: number; readonly label: string }) {
    this.limitMs = limitMs;
    this.what = what;
    if (origin !== undefined) {
      this.minMs = origin.atMs;
      this.maxMs = origin.atMs;
    }
    this.originLabel = origin?.label;
  }
  private describe(line: number): string {
    return line === 0 && this.originLabel !== undefined ? this.originLabel : `line ${line}`;
  }
  /** The reason the time does not fit, or undefined (and the time is admitted). */
  admit(tMs: number, line: number): string | undefined {
    const lo = Math.min(this.minMs, tMs);
    const hi = Math.max(this.maxMs, tMs);
    if (hi - lo > this.limitMs) {
      const other = tMs < this.minMs ? this.maxLine : this.minLine;
      return `${this.what} is ${fmtDays(hi - lo)} days from ${this.describe(other)}; a trace may span at most ${fmtDays(this.limitMs)} days (override with --max-span-days, at most ${MAX_SPAN_DAYS_LIMIT})`;
    }
    if (tMs < this.maxMs) {
      this.outOfOrder++;
      if (this.firstOutOfOrderLine === 0) this.firstOutOfOrderLine = line;
    }
    if (tMs < this.minMs) {
      this.minMs = tMs;
      this.minLine = line;
    }
    if (tMs > this.maxMs) {
      this.maxMs = tMs;
      this.maxLine = line;
    }
    return undefined;
  }
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
  bad(line: number, reason: string, skippable = true): void {
    if (!this.lenient) throw new TraceParseError(this.file, line, reason, { skippable });
    this.skippedLines += 1;
    if (this.skipped.length < MAX_KEPT_SKIPS) this.skipped.push({ line, reason });
  }
}

function splitLines(text: string): string[] {
  const lines = text.split("\n");
  if (lines.length > 1 && lines[lines.length - 1] === "") lines.pop();
  for (let i = 0; i < lines.length; i++) {
    const l = lines[i] as string;
    if (l.endsWith("\r")) lines[i] = l.slice(0, -1);
  }
  return lines;
}

const TIMESTAMP_RE = /^(\d{4})-(\d{2})-(\d{2})[ T](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?Z?$/;

function daysInMonth(year: number, month: number): number {
  return (
    [31, year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0) ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][
      month - 1
    ] ?? 0
  );
}

/**
 * Parse an Azure trace wall-clock timestamp ("2023-11-16 18:15:46.6805900", read as UTC): epoch ms,
 * or the reason it is not a timestamp. Impossible dates and times (month 13, day 45, 99:99:99) are
 * rejected, not rolled over.
 */
export function parseAzureTimestampChecked(text: string): { readonly ms: number } | { readonly reason: string } {
  const m = TIMESTAMP_RE.exec(text.trim());
  if (m === null) return { reason: "expected YYYY-MM-DD hh:mm:ss[.fraction]" };
  const [y, mo, d, h, mi, s] = m.slice(1, 7).map(Number) as [number, number, number, number, number, number];
  if (mo < 1 || mo > 12) return { reason: `impossible date: month ${mo}` };
  if (d < 1 || d > daysInMonth(y, mo))
    return { reason: `impossible date: day ${d} of ${y}-${String(mo).padStart(2, "0")}` };
  if (h > 23 || mi > 59 || s > 59) return { reason: `impossible time ${m[4]}:${m[5]}:${m[6]}` };
  const frac = m[7];
  const fracMs = frac === undefined ? 0 : Number(`0.${frac}`) * 1000;
  return { ms: Date.UTC(y, mo - 1, d, h, mi, s) + fracMs };
}

/** Parse an Azure trace wall-clock timestamp to epoch ms (undefined when malformed or impossible). */
export function parseAzureTimestamp(text: string): number | undefined {
  const r = parseAzureTimestampChecked(text);
  return "ms" in r ? r.ms : undefined;
}

function nonNegativeNumber(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const t = text.trim();
  if (t === "") return undefined;
  const v = Number(t);
  return Number.isFinite(v) && v >= 0 ? v : undefined;
}

/** Nothing left to replay is an error, not an empty run that "meets the SLO". */
function failIfEmpty(sink: LineSink, lineCount: number, n: number, what: string): void {
  if (n > 0) return;
  const first = sink.skipped[0];
  const why =
    sink.skippedLines > 0
      ? `all ${sink.skippedLines} data lines are bad (first: line ${first?.line}: ${first?.reason})`
      : "the file has no data lines";
  throw new TraceParseError(sink.file, Math.max(1, lineCount), `nothing to replay: ${why}; 0 ${what}`, {
    skippable: false,
  });
}

function checkOrder(sink: LineSink, span: SpanGuard, strict: boolean): void {
  if (strict && span.outOfOrder > 0) {
    throw new TraceParseError(
      sink.file,
      span.firstOutOfOrderLine,
      `line is earlier than a line before it (${span.outOfOrder} lines out of time order; --strict)`,
      { skippable: false },
    );
  }
}

function buildRequestTrace(
  name: string,
  format: TraceFormat,
  times: number[],
  ins: number[],
  outs: number[],
  sink: LineSink,
  outOfOrderLines: number,
): RequestTrace {
  const n = times.length;
  const order = Array.from({ length: n }, (_, i) => i);
  let sorted = true;
  for (let i = 1; i < n; i++)
    if ((times[i] as number) < (times[i - 1] as number)) {
      sorted = false;
      break;
    }
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
  return {
    kind: "requests",
    name,
    format,
    startEpochMs,
    timesMs,
    inputTokens,
    outputTokens,
    skippedLines: sink.skippedLines,
    skipped: sink.skipped,
    outOfOrderLines,
  };
}

/** Azure LLM inference trace: `TIMESTAMP,ContextTokens,GeneratedTokens`. */
export function parseAzureTrace(text: string, options: ParseOptions = {}): RequestTrace {
  const file = options.file ?? "<input>";
  const sink = new LineSink(file, options.lenient ?? false);
  const lines = splitLines(text);
  const header = (lines[0] ?? "").trim().replace(/^\uFEFF/, "");
  const cols = header.split(",").map((c) => c.trim());
  if (cols[0] !== "TIMESTAMP" || cols[1] !== "ContextTokens" || cols[2] !== "GeneratedTokens") {
    throw new TraceParseError(
      file,
      1,
      `expected header "TIMESTAMP,ContextTokens,GeneratedTokens", got "${header.slice(0, 80)}"`,
      { skippable: false },
    );
  }
  const span = new SpanGuard(maxSpanMs(options), "TIMESTAMP");
  const times: number[] = [];
  const ins: number[] = [];
  const outs: number[] = [];
  for (let i = 1; i < lines.length; i++) {
    const raw = lines[i] as string;
    if (raw.trim() === "") continue;
    const f = raw.split(",");
    if (f.length !== 3) {
      sink.bad(i + 1, `expected 3 fields, got ${f.length}`);
      continue;
    }
    const ts = parseAzureTimestampChecked(f[0] as string);
    if (!("ms" in ts)) {
      sink.bad(i + 1, `bad TIMESTAMP "${(f[0] as string).slice(0, 40)}": ${ts.reason}`);
      continue;
    }
    const t = ts.ms;
    const input = nonNegativeNumber(f[1]);
    if (input === undefined) {
      sink.bad(i + 1, `bad ContextTokens "${(f[1] as string).slice(0, 40)}"`);
      continue;
    }
    const output = nonNegativeNumber(f[2]);
    if (output === undefined) {
      sink.bad(i + 1, `bad GeneratedTokens "${(f[2] as string).slice(0, 40)}"`);
      continue;
    }
    const late = span.admit(t, i + 1);
    if (late !== undefined) {
      sink.bad(i + 1, late);
      continue;
    }
    times.push(t);
    ins.push(input);
    outs.push(output);
  }
  failIfEmpty(sink, lines.length, times.length, "requests");
  checkOrder(sink, span, options.strict ?? false);
  return buildRequestTrace(basename(file), "azure", times, ins, outs, sink, span.outOfOrder);
}

/** Mooncake trace JSONL: one object per line with `timestamp` (ms), `input_length`, `output_length`. */
export function parseMooncakeTrace(
  text: string,
  options: ParseOptions & { readonly startEpochMs?: number } = {},
): RequestTrace {
  const file = options.file ?? "<input>";
  const sink = new LineSink(file, options.lenient ?? false);
  const lines = splitLines(text);
  const base = options.startEpochMs ?? DEFAULT_START_EPOCH_MS;
  // Mooncake timestamps are ms from the trace's start: the span is measured from 0.
  const span = new SpanGuard(maxSpanMs(options), "timestamp", { atMs: 0, label: "the trace start (timestamp 0)" });
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
      if (!sink.lenient)
        throw new TraceParseError(file, i + 1, `invalid JSON: ${e instanceof Error ? e.message : String(e)}`, {
          cause: e,
        });
      sink.bad(i + 1, "invalid JSON");
      continue;
    }
    if (typeof obj !== "object" || obj === null || Array.isArray(obj)) {
      sink.bad(i + 1, "expected a JSON object");
      continue;
    }
    const o = obj as Record<string, unknown>;
    const ts = o["timestamp"];
    const input = o["input_length"];
    const output = o["output_length"];
    if (typeof ts !== "number" || !Number.isFinite(ts) || ts < 0) {
      sink.bad(i + 1, "timestamp must be a non-negative number (ms)");
      continue;
    }
    if (typeof input !== "number" || !Number.isFinite(input) || input < 0) {
      sink.bad(i + 1, "input_length must be a non-negative number");
      continue;
    }
    if (typeof output !== "number" || !Number.isFinite(output) || output < 0) {
      sink.bad(i + 1, "output_length must be a non-negative number");
      continue;
    }
    const late = span.admit(ts, i + 1);
    if (late !== undefined) {
      sink.bad(i + 1, `${late} (timestamp ${ts} ms)`);
      continue;
    }
    times.push(base + ts);
    ins.push(input);
    outs.push(output);
  }
  failIfEmpty(sink, lines.length, times.length, "requests");
  checkOrder(sink, span, options.strict ?? false);
  return buildRequestTrace(basename(file), "mooncake", times, ins, outs, sink, span.outOfOrder);
}

/** Rate series CSV: `window_start_s,rate_req_per_s`; each window lasts until the next start (the last as long as the one before). */
export function parseRateTrace(text: string, options: RateParseOptions = {}): RateTrace {
  const file = options.file ?? "<input>";
  const sink = new LineSink(file, options.lenient ?? false);
  const lines = splitLines(text);
  const header = (lines[0] ?? "").trim().replace(/^\uFEFF/, "");
  const cols = header.split(",").map((c) => c.trim());
  if (cols[0] !== "window_start_s" || cols[1] !== "rate_req_per_s") {
    throw new TraceParseError(
      file,
      1,
      `expected header "window_start_s,rate_req_per_s", got "${header.slice(0, 80)}"`,
      { skippable: false },
    );
  }
  // window_start_s counts from 0 (00:00 of day 1): the span is measured from 0.
  const span = new SpanGuard(maxSpanMs(options), "window_start_s", { atMs: 0, label: "window_start_s 0" });
  const starts: number[] = [];
  const rates: number[] = [];
  for (let i = 1; i < lines.length; i++) {
    const raw = lines[i] as string;
    if (raw.trim() === "") continue;
    const f = raw.split(",");
    if (f.length < 2) {
      sink.bad(i + 1, `expected 2 fields, got ${f.length}`);
      continue;
    }
    const s = nonNegativeNumber(f[0]);
    if (s === undefined) {
      sink.bad(i + 1, `bad window_start_s "${(f[0] as string).slice(0, 40)}"`);
      continue;
    }
    const r = nonNegativeNumber(f[1]);
    if (r === undefined) {
      sink.bad(i + 1, `bad rate_req_per_s "${(f[1] as string).slice(0, 40)}"`);
      continue;
    }
    if (starts.length > 0 && s <= (starts[starts.length - 1] as number)) {
      sink.bad(i + 1, `window_start_s ${s} is not after the previous window (${starts[starts.length - 1]})`);
      continue;
    }
    const late = span.admit(s * 1000, i + 1);
    if (late !== undefined) {
      sink.bad(i + 1, late);
      continue;
    }
    starts.push(s);
    rates.push(r);
  }
  failIfEmpty(sink, lines.length, starts.length, "windows");
  if (rates.every((r) => r === 0))
    throw new TraceParseError(
      file,
      lines.length,
      `nothing to replay: every one of the ${rates.length} windows has rate 0`,
      { skippable: false },
    );
  const n = starts.length;
  const windowStartS = new Float64Array(starts);
  const windowS = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    windowS[i] =
      i + 1 < n ? (starts[i + 1] as number) - (starts[i] as number) : n > 1 ? (windowS[i - 1] as number) : 60;
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
    throw new TraceParseError(path, 1, "cannot detect the trace format; pass --format azure|mooncake|rate", {
      skippable: false,
    });
  }
  const opts = { ...options, file: path };
  switch (format) {
    case "azure":
      return parseAzureTrace(text, opts);
    case "mooncake":
      return parseMooncakeTrace(text, opts);
    case "rate":
      return parseRateTrace(text, opts);
  }
}
