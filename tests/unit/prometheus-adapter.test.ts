// The Prometheus reader against a local HTTP server: redirects are refused and
// never followed, bodies are capped, only JSON is read, and no error message
// carries bytes of what the server answered.
import { createServer, type IncomingMessage, type ServerResponse, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createPrometheusReader, PrometheusError } from "../../src/adapters/prometheus.ts";

const SECRET = "db_password=hunter2-TOPSECRET";
let server: Server;
let base: string;
const hits: string[] = [];

function vector(n: number): string {
  const result = Array.from({ length: n }, (_, i) => ({
    metric: { layer: "1", expert: String(i) },
    value: [Date.now() / 1000, "1"],
  }));
  return JSON.stringify({ status: "success", data: { resultType: "vector", result } });
}

function matrix(series: number, points: number): string {
  const result = Array.from({ length: series }, (_, i) => ({
    metric: { job: String(i) },
    values: Array.from({ length: points }, (_, k) => [1_700_000_000 + 60 * k, String(k)]),
  }));
  return JSON.stringify({ status: "success", data: { resultType: "matrix", result } });
}

const routes: Record<string, (req: IncomingMessage, res: ServerResponse) => void> = {
  "/range-ok": (_req, res) => res.writeHead(200, { "content-type": "application/json" }).end(matrix(1, 5)),
  "/range-many-points": (_req, res) => res.writeHead(200, { "content-type": "application/json" }).end(matrix(2, 8)),
  "/range-secret-shape": (_req, res) =>
    res
      .writeHead(200, { "content-type": "application/json" })
      .end(
        JSON.stringify({ status: "success", data: { resultType: "matrix", result: [{ metric: {}, values: SECRET }] } }),
      ),
  "/redirect": (_req, res) =>
    res
      .writeHead(303, { location: "/target/api/v1/query", "content-type": "application/json" })
      .end(JSON.stringify({ note: SECRET })),
  "/target": (_req, res) => res.writeHead(200, { "content-type": "application/json" }).end(vector(1)),
  "/secret-text": (_req, res) => res.writeHead(200, { "content-type": "text/plain" }).end(SECRET),
  "/secret-json-lie": (_req, res) => res.writeHead(200, { "content-type": "application/json" }).end(`{"x": ${SECRET}`),
  "/secret-500": (_req, res) =>
    res
      .writeHead(500, { "content-type": "application/json" })
      .end(JSON.stringify({ status: "error", errorType: SECRET, error: SECRET })),
  "/secret-error": (_req, res) =>
    res
      .writeHead(400, { "content-type": "application/json" })
      .end(JSON.stringify({ status: "error", errorType: "bad_data", error: SECRET })),
  "/secret-shape": (_req, res) =>
    res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ status: "success", data: SECRET })),
  "/huge": (_req, res) => {
    // Unbounded, chunked, no content-length: the reader must stop on its own.
    res.writeHead(200, { "content-type": "application/json" });
    const chunk = Buffer.alloc(64 * 1024, 0x20);
    const pump = () => {
      while (res.write(chunk)) {
        /* until backpressure */
      }
    };
    res.on("drain", pump);
    res.on("close", () => res.off("drain", pump));
    pump();
  },
  "/declared-huge": (_req, res) =>
    res.writeHead(200, { "content-type": "application/json", "content-length": String(100 * 1024 * 1024) }).end(),
  "/many": (_req, res) => res.writeHead(200, { "content-type": "application/json" }).end(vector(50)),
  "/ok": (_req, res) => res.writeHead(200, { "content-type": "application/json; charset=utf-8" }).end(vector(3)),
};

beforeAll(async () => {
  server = createServer((req, res) => {
    hits.push(req.url ?? "");
    const key = Object.keys(routes).find((k) => req.url?.startsWith(k));
    if (key) routes[key]!(req, res);
    else res.writeHead(404).end();
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
});

async function failure(
  path: string,
  opts: { maxResponseBytes?: number; maxSeries?: number } = {},
): Promise<PrometheusError> {
  const reader = createPrometheusReader({
    baseUrl: `${base}${path}`,
    timeoutMs: 5_000,
    maxResponseBytes: opts.maxResponseBytes,
  });
  const err = await reader.queryVector("up", { maxSeries: opts.maxSeries }).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(PrometheusError);
  const e = err as PrometheusError;
  // Nothing of the body in the message, nor anywhere in what a logger would serialise.
  expect(e.message).not.toContain("hunter2");
  expect(JSON.stringify({ message: e.message, cause: e.cause, stack: e.stack })).not.toContain("hunter2");
  expect(String((e.cause as Error | undefined)?.message ?? "")).not.toContain("hunter2");
  return e;
}

describe("Prometheus reader", () => {
  it("reads a vector", async () => {
    const r = createPrometheusReader({ baseUrl: `${base}/ok` });
    const v = await r.queryVector("up");
    expect(v).toHaveLength(3);
    expect(v[0]!.labels).toEqual({ layer: "1", expert: "0" });
  });

  it("does not follow a 303 and says so with a fixed message", async () => {
    hits.length = 0;
    const e = await failure("/redirect");
    expect(e.kind).toBe("Redirect");
    expect(e.message).toBe("HTTP 303 from prometheus (redirects are not followed)");
    expect(hits.some((h) => h.startsWith("/target"))).toBe(false);
  });

  it("refuses non-JSON content, JSON that does not parse, and error bodies, without quoting them", async () => {
    expect((await failure("/secret-text")).message).toBe("HTTP 200 from prometheus: non-JSON response");
    expect((await failure("/secret-json-lie")).message).toBe("HTTP 200 from prometheus: non-JSON response");
    expect((await failure("/secret-500")).message).toBe("HTTP 500 from prometheus: query error (unknown)");
    expect((await failure("/secret-error")).message).toBe("HTTP 400 from prometheus: query error (bad_data)");
    expect((await failure("/secret-shape")).message).toBe("HTTP 200 from prometheus: not a Prometheus query response");
  });

  it("aborts a body over the cap, declared or streamed without end", async () => {
    const streamed = await failure("/huge", { maxResponseBytes: 256 * 1024 });
    expect(streamed.kind).toBe("TooLarge");
    expect(streamed.message).toBe(`prometheus response over ${256 * 1024} bytes`);
    const declared = await failure("/declared-huge", { maxResponseBytes: 256 * 1024 });
    expect(declared.kind).toBe("TooLarge");
  });

  it("refuses more series than the caller allows", async () => {
    const e = await failure("/many", { maxSeries: 10 });
    expect(e.message).toBe("prometheus returned 50 series, more than the 10 allowed for this query");
  });

  it("reports an unreachable server without its address details beyond the error code", async () => {
    const r = createPrometheusReader({ baseUrl: "http://127.0.0.1:9", timeoutMs: 2_000 });
    const e = await r.queryVector("up").then(
      () => undefined,
      (x: unknown) => x as PrometheusError,
    );
    expect(e?.kind).toBe("Unreachable");
    expect(e?.message).toMatch(/^prometheus unreachable( \([A-Z_]+\))?$/);
  });

  describe("range queries", () => {
    const range = { startMs: 1_700_000_000_000, endMs: 1_700_000_240_000, stepMs: 60_000, maxSeries: 1, maxPoints: 10 };
    const rangeFailure = async (path: string, over: Partial<typeof range> = {}): Promise<PrometheusError> => {
      const r = createPrometheusReader({ baseUrl: `${base}${path}` });
      const err = await r.queryRange("sum(x)", { ...range, ...over }).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(PrometheusError);
      expect(JSON.stringify({ m: (err as Error).message, c: (err as Error).cause })).not.toContain("hunter2");
      return err as PrometheusError;
    };

    it("reads a matrix through /api/v1/query_range", async () => {
      hits.length = 0;
      const r = createPrometheusReader({ baseUrl: `${base}/range-ok` });
      const m = await r.queryRange("sum(x)", range);
      expect(hits).toEqual(["/range-ok/api/v1/query_range"]);
      expect(m).toHaveLength(1);
      expect(m[0]!.points).toHaveLength(5);
      expect(m[0]!.points[4]).toEqual({ timestampMs: (1_700_000_000 + 240) * 1000, value: 4 });
    });

    it("refuses a range of more points than allowed before sending anything", async () => {
      hits.length = 0;
      const e = await rangeFailure("/range-ok", { endMs: range.startMs + 3_600_000 });
      expect(e.message).toBe("range query of 61 points per series refused (at most 10)");
      expect(hits).toEqual([]);
    });

    it("refuses answers over the series or point bounds and answers that are not a matrix", async () => {
      expect((await rangeFailure("/range-many-points", { maxSeries: 5 })).message).toBe(
        "prometheus returned more than the 10 allowed points",
      );
      expect((await rangeFailure("/range-many-points")).message).toBe(
        "prometheus returned 2 series, more than the 1 allowed for this query",
      );
      expect((await rangeFailure("/ok")).message).toBe("expected a range matrix, got vector");
      expect((await rangeFailure("/range-secret-shape")).message).toBe("HTTP 200 from prometheus: not a range matrix");
    });
  });
});
