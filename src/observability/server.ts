// /metrics, /healthz and /readyz on one small HTTP server.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { Registry } from "prom-client";
import type { MetricsAuthorizer } from "./metrics-auth.ts";

export interface HealthSources {
  /** Liveness: the process is not wedged. */
  healthy: () => boolean;
  /** Readiness: caches synced (and, for the leader, able to reconcile). */
  ready: () => { ready: boolean; reason?: string };
}

export interface ObservabilityServerOptions {
  host: string;
  port: number;
  registry: Registry;
  health: HealthSources;
  /** Guards /metrics only (probes stay open for the kubelet); none: /metrics is open. */
  authorizeMetrics?: MetricsAuthorizer;
}

async function serveMetrics(
  req: IncomingMessage,
  res: ServerResponse,
  opts: ObservabilityServerOptions,
): Promise<void> {
  try {
    const auth = opts.authorizeMetrics ? await opts.authorizeMetrics(req.headers.authorization) : { ok: true as const };
    if (!auth.ok) {
      res.writeHead(auth.status, {
        "content-type": "text/plain",
        ...(auth.status === 401 ? { "www-authenticate": 'Bearer realm="moe-operator"' } : {}),
      });
      res.end(auth.reason);
      return;
    }
    const text = await opts.registry.metrics();
    res.writeHead(200, { "content-type": opts.registry.contentType });
    res.end(text);
  } catch (err) {
    res.writeHead(500);
    res.end(String(err));
  }
}

export async function startObservabilityServer(
  opts: ObservabilityServerOptions,
): Promise<{ server: Server; port: number; close: () => Promise<void> }> {
  const server = createServer((req, res) => {
    const path = (req.url ?? "/").split("?")[0];
    if (path === "/metrics") {
      void serveMetrics(req, res, opts);
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
