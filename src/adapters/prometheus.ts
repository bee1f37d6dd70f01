// Prometheus HTTP API reader: instant queries with a timeout, responses
// validated with zod, failures as typed Errors with a cause.
import { z } from "zod";

const sampleValue = z.tuple([z.number(), z.string()]);
const vectorResult = z.object({ metric: z.record(z.string(), z.string()), value: sampleValue });
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

export interface VectorSample {
  labels: Record<string, string>;
  /** NaN and ±Inf are passed through; callers decide what they mean. */
  value: number;
  timestampMs: number;
}

export type PrometheusErrorKind = "Unreachable" | "Timeout" | "HttpStatus" | "BadResponse" | "QueryError";

export class PrometheusError extends Error {
  readonly kind: PrometheusErrorKind;
  constructor(kind: PrometheusErrorKind, message: string, cause?: unknown) {
    super(message, { cause });
    this.name = "PrometheusError";
    this.kind = kind;
  }
}

export interface PrometheusReader {
  queryVector(promql: string, opts?: { timeMs?: number }): Promise<VectorSample[]>;
}

export function createPrometheusReader(opts: { baseUrl: string; timeoutMs?: number; fetchFn?: typeof fetch }): PrometheusReader {
  const fetchFn = opts.fetchFn ?? fetch;
  const base = opts.baseUrl.replace(/\/+$/, "");
  const timeoutMs = opts.timeoutMs ?? 5_000;
  return {
    async queryVector(promql, q = {}) {
      const params = new URLSearchParams({ query: promql });
      if (q.timeMs !== undefined) params.set("time", (q.timeMs / 1000).toFixed(3));
      params.set("timeout", `${Math.max(1, Math.floor(timeoutMs / 1000))}s`);
      let res: Response;
      try {
        res = await fetchFn(`${base}/api/v1/query`, {
          method: "POST",
          headers: { "content-type": "application/x-www-form-urlencoded" },
          body: params.toString(),
          signal: AbortSignal.timeout(timeoutMs),
        });
      } catch (err) {
        const name = (err as Error)?.name;
        if (name === "TimeoutError" || name === "AbortError") throw new PrometheusError("Timeout", `prometheus query timed out after ${timeoutMs} ms`, err);
        throw new PrometheusError("Unreachable", `prometheus at ${base} unreachable: ${(err as Error)?.message ?? String(err)}`, err);
      }
      const text = await res.text().catch(() => "");
      let json: unknown;
      try {
        json = JSON.parse(text);
      } catch (err) {
        throw new PrometheusError(res.ok ? "BadResponse" : "HttpStatus", `prometheus answered HTTP ${res.status} with non-JSON body: ${text.slice(0, 200)}`, err);
      }
      const parsed = queryResponse.safeParse(json);
      if (!parsed.success) throw new PrometheusError("BadResponse", `prometheus response not understood: ${parsed.error.issues[0]?.message ?? "invalid"}`, parsed.error);
      const body = parsed.data;
      if (body.status === "error") throw new PrometheusError("QueryError", `prometheus ${body.errorType}: ${body.error}`);
      if (!res.ok) throw new PrometheusError("HttpStatus", `prometheus answered HTTP ${res.status}`);
      if (body.data.resultType === "scalar") {
        const [t, v] = body.data.result;
        return [{ labels: {}, value: Number(v), timestampMs: t * 1000 }];
      }
      if (body.data.resultType !== "vector") throw new PrometheusError("BadResponse", `expected an instant vector, got ${body.data.resultType}`);
      return body.data.result.map((r) => ({ labels: r.metric, value: parseSampleValue(r.value[1]), timestampMs: r.value[0] * 1000 }));
    },
  };
}

function parseSampleValue(s: string): number {
  if (s === "NaN") return Number.NaN;
  if (s === "+Inf") return Number.POSITIVE_INFINITY;
  if (s === "-Inf") return Number.NEGATIVE_INFINITY;
  return Number(s);
}
