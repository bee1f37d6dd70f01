// Prometheus HTTP API reader: instant and range queries with a timeout, responses
// validated with zod, failures as typed Errors with a cause.
//
// The URL comes from a user's MoEDeployment, so whatever answers may not be
// Prometheus: redirects are not followed, the body is read up to a byte cap,
// only JSON is parsed, and no error message ever carries bytes of the body
// (see docs/adr/0007-metric-sources.md).
import { z } from "zod";

const sampleValue = z.tuple([z.number(), z.string()]);
const vectorResult = z.object({ metric: z.record(z.string(), z.string()), value: sampleValue });
const matrixResult = z.object({ metric: z.record(z.string(), z.string()), values: z.array(sampleValue) });
const queryResponse = z.discriminatedUnion("status", [
  z.object({
    status: z.literal("success"),
    data: z.discriminatedUnion("resultType", [
      z.object({ resultType: z.literal("vector"), result: z.array(vectorResult) }),
      z.object({ resultType: z.literal("scalar"), result: sampleValue }),
      z.object({ resultType: z.literal("matrix"), result: z.array(z.unknown()) }),
      z.object({ resultType: z.literal("string"), result: z.unknown() }),
    ]),
    warnings: z.array(z.string()).optional(),
  }),
  z.object({ status: z.literal("error"), errorType: z.string(), error: z.string() }),
]);

/** Prometheus' documented errorType values; anything else is reported as "unknown". */
const KNOWN_ERROR_TYPES = new Set([
  "bad_data",
  "execution",
  "timeout",
  "canceled",
  "internal",
  "unavailable",
  "not_found",
  "not_acceptable",
]);

export const DEFAULT_MAX_RESPONSE_BYTES = 8 * 1024 * 1024;

export interface VectorSample {
  labels: Record<string, string>;
  /** NaN and ±Inf are passed through; callers decide what they mean. */
  value: number;
  timestampMs: number;
}

export type PrometheusErrorKind =
  "Unreachable" | "Timeout" | "HttpStatus" | "Redirect" | "TooLarge" | "BadResponse" | "QueryError";

/** Error whose message is a fixed class (never bytes of the response). */
export class PrometheusError extends Error {
  readonly kind: PrometheusErrorKind;
  constructor(kind: PrometheusErrorKind, message: string, cause?: unknown) {
    super(message, { cause });
    this.name = "PrometheusError";
    this.kind = kind;
  }
}

export interface QueryOptions {
  timeMs?: number;
  /** Refuse a vector with more series than this (bounds memory per query). */
  maxSeries?: number;
}

export interface RangeQueryOptions {
  startMs: number;
  endMs: number;
  stepMs: number;
  /** Refuse a matrix with more series than this. */
  maxSeries: number;
  /**
   * Refuse a query whose range has more points than this per series (checked before sending: at
   * most (end - start) / step + 1) and a response with more points than this in all.
   */
  maxPoints: number;
}

export interface RangeSeries {
  labels: Record<string, string>;
  /** Oldest first; NaN and ±Inf passed through. */
  points: { timestampMs: number; value: number }[];
}

export interface PrometheusReader {
  queryVector(promql: string, opts?: QueryOptions): Promise<VectorSample[]>;
  /** A range query (/api/v1/query_range), bounded in series and points; same timeout, byte cap and JSON-only rules. */
  queryRange(promql: string, opts: RangeQueryOptions): Promise<RangeSeries[]>;
}

export interface PrometheusReaderOptions {
  baseUrl: string;
  timeoutMs?: number;
  /** Response bodies longer than this are aborted; default 8 MiB. */
  maxResponseBytes?: number;
  fetchFn?: typeof fetch;
}

export function createPrometheusReader(opts: PrometheusReaderOptions): PrometheusReader {
  const fetchFn = opts.fetchFn ?? fetch;
  const base = opts.baseUrl.replace(/\/+$/, "");
  const timeoutMs = opts.timeoutMs ?? 5_000;
  const maxBytes = opts.maxResponseBytes ?? DEFAULT_MAX_RESPONSE_BYTES;
  const post = async (path: string, params: URLSearchParams): Promise<{ status: number; json: unknown }> => {
    params.set("timeout", `${Math.max(1, Math.floor(timeoutMs / 1000))}s`);
    const signal = AbortSignal.timeout(timeoutMs);
    let res: Response;
    try {
      res = await fetchFn(`${base}${path}`, {
        method: "POST",
        headers: { "content-type": "application/x-www-form-urlencoded", accept: "application/json" },
        body: params.toString(),
        redirect: "manual",
        signal,
      });
    } catch (err) {
      throw transportError(err, timeoutMs);
    }
    const text = await readCappedBody(res, maxBytes, timeoutMs);
    return { status: res.status, json: parseJson(res.status, text) };
  };
  return {
    async queryVector(promql, q = {}) {
      const params = new URLSearchParams({ query: promql });
      if (q.timeMs !== undefined) params.set("time", (q.timeMs / 1000).toFixed(3));
      const { status, json } = await post("/api/v1/query", params);
      const samples = parseQueryResponse(status, json);
      if (q.maxSeries !== undefined && samples.length > q.maxSeries) {
        throw new PrometheusError(
          "BadResponse",
          `prometheus returned ${samples.length} series, more than the ${q.maxSeries} allowed for this query`,
          { series: samples.length },
        );
      }
      return samples;
    },
    async queryRange(promql, r) {
      const stepS = Math.max(1, Math.ceil(r.stepMs / 1000));
      const perSeries = Math.floor((r.endMs - r.startMs) / 1000 / stepS) + 1;
      if (!(Number.isFinite(perSeries) && perSeries >= 1 && perSeries <= r.maxPoints)) {
        throw new PrometheusError(
          "QueryError",
          `range query of ${Number.isFinite(perSeries) ? perSeries : "an invalid number of"} points per series refused (at most ${r.maxPoints})`,
        );
      }
      const params = new URLSearchParams({
        query: promql,
        start: (r.startMs / 1000).toFixed(3),
        end: (r.endMs / 1000).toFixed(3),
        step: `${stepS}s`,
      });
      const { status, json } = await post("/api/v1/query_range", params);
      return parseRangeResponse(status, json, r);
    },
  };
}

function transportError(err: unknown, timeoutMs: number): PrometheusError {
  const name = (err as Error)?.name;
  if (name === "TimeoutError" || name === "AbortError")
    return new PrometheusError("Timeout", `prometheus query timed out after ${timeoutMs} ms`, err);
  const code = (err as { cause?: { code?: unknown } })?.cause?.code;
  const safeCode = typeof code === "string" && /^[A-Z_]{2,40}$/.test(code) ? ` (${code})` : "";
  return new PrometheusError("Unreachable", `prometheus unreachable${safeCode}`, err);
}

/** Reads at most maxBytes of the body as UTF-8; refuses redirects, non-JSON and anything longer. */
async function readCappedBody(res: Response, maxBytes: number, timeoutMs: number): Promise<string> {
  if (res.status >= 300 && res.status < 400) {
    await res.body?.cancel().catch(() => undefined);
    throw new PrometheusError("Redirect", `HTTP ${res.status} from prometheus (redirects are not followed)`, {
      status: res.status,
    });
  }
  const type = (res.headers.get("content-type") ?? "").split(";")[0]!.trim().toLowerCase();
  if (type !== "application/json") {
    await res.body?.cancel().catch(() => undefined);
    throw new PrometheusError(
      res.ok ? "BadResponse" : "HttpStatus",
      `HTTP ${res.status} from prometheus: non-JSON response`,
      { status: res.status },
    );
  }
  const declared = Number(res.headers.get("content-length") ?? NaN);
  if (Number.isFinite(declared) && declared > maxBytes) {
    await res.body?.cancel().catch(() => undefined);
    throw new PrometheusError("TooLarge", `prometheus response over ${maxBytes} bytes`, { declaredBytes: declared });
  }
  if (!res.body) return "";
  const reader = res.body.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      total += value.byteLength;
      if (total > maxBytes) {
        await reader.cancel().catch(() => undefined);
        throw new PrometheusError("TooLarge", `prometheus response over ${maxBytes} bytes`, { readBytes: total });
      }
      chunks.push(value);
    }
  } catch (err) {
    if (err instanceof PrometheusError) throw err;
    throw transportError(err, timeoutMs);
  }
  return new TextDecoder().decode(Buffer.concat(chunks));
}

function parseJson(status: number, text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    // The SyntaxError's message quotes the body: it is not kept, not even as the cause.
    throw new PrometheusError(
      status < 300 ? "BadResponse" : "HttpStatus",
      `HTTP ${status} from prometheus: non-JSON response`,
      { status, bodyBytes: text.length },
    );
  }
}

/** The success body of a query response, or the typed error it stands for. */
function successData(status: number, json: unknown): z.infer<typeof queryResponse> & { status: "success" } {
  const parsed = queryResponse.safeParse(json);
  if (!parsed.success)
    throw new PrometheusError(
      status < 300 ? "BadResponse" : "HttpStatus",
      `HTTP ${status} from prometheus: not a Prometheus query response`,
      { status },
    );
  const body = parsed.data;
  if (body.status === "error") {
    const type = KNOWN_ERROR_TYPES.has(body.errorType) ? body.errorType : "unknown";
    throw new PrometheusError("QueryError", `HTTP ${status} from prometheus: query error (${type})`, {
      status,
      errorType: type,
    });
  }
  if (status < 200 || status >= 300)
    throw new PrometheusError("HttpStatus", `HTTP ${status} from prometheus`, { status });
  return body;
}

function parseQueryResponse(status: number, json: unknown): VectorSample[] {
  const body = successData(status, json);
  if (body.data.resultType === "scalar") {
    const [t, v] = body.data.result;
    return [{ labels: {}, value: parseSampleValue(v), timestampMs: t * 1000 }];
  }
  if (body.data.resultType !== "vector")
    throw new PrometheusError("BadResponse", `expected an instant vector, got ${body.data.resultType}`, { status });
  return body.data.result.map((r) => ({
    labels: r.metric,
    value: parseSampleValue(r.value[1]),
    timestampMs: r.value[0] * 1000,
  }));
}

function parseRangeResponse(status: number, json: unknown, r: RangeQueryOptions): RangeSeries[] {
  const body = successData(status, json);
  if (body.data.resultType !== "matrix")
    throw new PrometheusError("BadResponse", `expected a range matrix, got ${body.data.resultType}`, { status });
  const raw = body.data.result;
  if (raw.length > r.maxSeries)
    throw new PrometheusError(
      "BadResponse",
      `prometheus returned ${raw.length} series, more than the ${r.maxSeries} allowed for this query`,
      { series: raw.length },
    );
  const out: RangeSeries[] = [];
  let points = 0;
  for (const item of raw) {
    const m = matrixResult.safeParse(item);
    if (!m.success)
      throw new PrometheusError("BadResponse", `HTTP ${status} from prometheus: not a range matrix`, { status });
    points += m.data.values.length;
    if (points > r.maxPoints)
      throw new PrometheusError("BadResponse", `prometheus returned more than the ${r.maxPoints} allowed points`, {
        points,
      });
    out.push({
      labels: m.data.metric,
      points: m.data.values.map(([t, v]) => ({ timestampMs: t * 1000, value: parseSampleValue(v) })),
    });
  }
  return out;
}

function parseSampleValue(s: string): number {
  if (s === "NaN") return Number.NaN;
  if (s === "+Inf") return Number.POSITIVE_INFINITY;
  if (s === "-Inf") return Number.NEGATIVE_INFINITY;
  return Number(s);
}
