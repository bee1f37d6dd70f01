// /metrics, /healthz and /readyz on one small HTTP server.
import { createServer, type Server } from "node:http";
import type { Registry } from "prom-client";

export interface HealthSources {
  /** Liveness: the process is not wedged. */
  healthy: () => boolean;
  /** Readiness: caches synced (and, for the leader, able to reconcile). */
  ready: () => { ready: boolean; reason?: string };
}

export async function startObservabilityServer(opts: { host: string; port: number; registry: Registry; health: HealthSources }): Promise<{ server: Server; port: number; close: () => Promise<void> }> {
  const server = createServer((req, res) => {
    const path = (req.url ?? "/").split("?")[0];
    if (path === "/metrics") {
      opts.registry.metrics().then(
        (text) => {
          res.writeHead(200, { "content-type": opts.registry.contentType });
          res.end(text);
        },
        (err: unknown) => {
          res.writeHead(500);
          res.end(String(err));
        },
      );
      return;
    }
    if (path === "/healthz" || path === "/livez") {
      const ok = opts.health.healthy();
      res.writeHead(ok ? 200 : 500, { "content-type": "text/plain" });
      res.end(ok ? "ok" : "unhealthy");
      return;
    }
    if (path === "/readyz") {
      const r = opts.health.ready();
      res.writeHead(r.ready ? 200 : 503, { "content-type": "text/plain" });
      res.end(r.ready ? "ok" : `not ready: ${r.reason ?? "starting"}`);
      return;
    }
    res.writeHead(404);
    res.end();
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(opts.port, opts.host, () => resolve());
  });
  const addr = server.address();
  const port = typeof addr === "object" && addr ? addr.port : opts.port;
  return { server, port, close: () => new Promise((r) => server.close(() => r())) };
}
