// A real Prometheus scrapes a target we serve and answers PromQL over HTTP.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createServer, type Server } from "node:http";
import { startPrometheus, type LocalPrometheus } from "../../src/testing/prometheus.ts";
import { waitFor } from "../../src/testing/http-probe.ts";

let server: Server;
let prom: LocalPrometheus;
let hits = 0;

beforeAll(async () => {
  server = createServer((_req, res) => {
    hits++;
    res.setHeader("content-type", "text/plain; version=0.0.4");
    res.end(`# TYPE moe_test_tokens_total counter\nmoe_test_tokens_total{layer="3",expert="7"} ${hits * 100}\n`);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const addr = server.address();
  const port = typeof addr === "object" && addr ? addr.port : 0;
  prom = await startPrometheus({
    scrapeConfigs: [{ jobName: "fleet", targets: [`127.0.0.1:${port}`] }],
    scrapeIntervalSeconds: 1,
  });
});

afterAll(async () => {
  await prom?.stop();
  server?.close();
});

describe("local prometheus", () => {
  it("scrapes the configured target and answers rate() queries", async () => {
    const rate = await waitFor(
      "a non-zero rate",
      async () => {
        const res = await fetch(
          `${prom.url}/api/v1/query?query=${encodeURIComponent("rate(moe_test_tokens_total[10s])")}`,
        );
        const body = (await res.json()) as {
          status: string;
          data: { result: { metric: Record<string, string>; value: [number, string] }[] };
        };
        const v = body.data.result[0];
        // 100 tokens per 1 s scrape: once the window is full the rate is ~100/s.
        return v && Number(v.value[1]) > 80 ? v : undefined;
      },
      { timeoutMs: 30_000, intervalMs: 500 },
    );
    expect(rate.metric.expert).toBe("7");
    expect(Number(rate.value[1])).toBeLessThan(150);
    const pid = prom.process.pid!;
    await prom.stop();
    expect(() => process.kill(pid, 0)).toThrow();
  });
});
