// /metrics behind authentication (issue 20, item 6), against the real API server:
// with --metrics-auth=tokenreview a scrape without a token gets 401, a token of a
// ServiceAccount without the RBAC gets 403, one with `get` on the non-resource URL
// /metrics gets 200 and the metrics; probes stay open. With the default (none),
// /metrics is open as before.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { pino } from "pino";
import { startCluster, type LocalCluster } from "../../src/testing/cluster.ts";
import { startOperator, type OperatorHandle } from "../../src/operator.ts";
import { OperatorConfigSchema } from "../../src/config.ts";
import { createMetrics } from "../../src/observability/metrics.ts";

let cluster: LocalCluster;
const handles: OperatorHandle[] = [];

async function kubectlOk(args: string[], input?: string): Promise<string> {
  const r = await cluster.kubectl(args, input === undefined ? undefined : { input });
  expect(r.code, `kubectl ${args.join(" ")}: ${r.stderr}`).toBe(0);
  return r.stdout.trim();
}

async function operator(metricsAuth: "none" | "tokenreview"): Promise<OperatorHandle> {
  const config = OperatorConfigSchema.parse({
    identity: `metrics-${metricsAuth}`,
    leaderElect: false,
    metricsAuth,
    metricsBindAddress: "127.0.0.1:0",
    healthProbeBindAddress: "127.0.0.1:0",
  });
  const h = await startOperator(config, {
    kubeConfig: cluster.kubeConfig,
    logger: pino({ level: "silent" }),
    metrics: createMetrics({ defaultMetrics: false }),
  });
  handles.push(h);
  return h;
}

async function scrape(
  port: number,
  path: string,
  token?: string,
): Promise<{ status: number; body: string; wwwAuthenticate: string | null }> {
  const res = await fetch(`http://127.0.0.1:${port}${path}`, {
    headers: token ? { authorization: `Bearer ${token}` } : {},
  });
  return { status: res.status, body: await res.text(), wwwAuthenticate: res.headers.get("www-authenticate") };
}

beforeAll(async () => {
  cluster = await startCluster({ name: "metricsauth" });
  await kubectlOk(["apply", "--server-side", "-f", "crds/"]);
  await kubectlOk(["wait", "--for=condition=Established", "crd/moedeployments.moe.dev", "--timeout=30s"]);
  await kubectlOk(["create", "serviceaccount", "scraper", "-n", "default"]);
  await kubectlOk(["create", "serviceaccount", "stranger", "-n", "default"]);
  await kubectlOk(["create", "clusterrole", "metrics-reader", "--verb=get", "--non-resource-url=/metrics"]);
  await kubectlOk([
    "create",
    "clusterrolebinding",
    "scraper-metrics",
    "--clusterrole=metrics-reader",
    "--serviceaccount=default:scraper",
  ]);
});

afterAll(async () => {
  for (const h of handles) await h.stop();
  await cluster?.stop();
});

describe("metrics authentication", () => {
  it("with tokenreview: no token 401, a token without RBAC 403, a token with get /metrics 200; probes stay open", async () => {
    const h = await operator("tokenreview");
    const allowed = await kubectlOk(["create", "token", "scraper", "-n", "default"]);
    const denied = await kubectlOk(["create", "token", "stranger", "-n", "default"]);

    const none = await scrape(h.metricsPort, "/metrics");
    expect(none.status).toBe(401);
    expect(none.wwwAuthenticate).toMatch(/^Bearer/);
    expect(none.body).not.toContain("workqueue_depth");

    const bogus = await scrape(h.metricsPort, "/metrics", "not-a-token");
    expect(bogus.status).toBe(401);

    const forbidden = await scrape(h.metricsPort, "/metrics", denied);
    expect(forbidden.status).toBe(403);
    expect(forbidden.body).toContain("system:serviceaccount:default:stranger");
    expect(forbidden.body).not.toContain("workqueue_depth");

    const ok = await scrape(h.metricsPort, "/metrics", allowed);
    expect(ok.status).toBe(200);
    expect(ok.body).toContain("controller_runtime_active_workers");
    // A second scrape with the same token (served from the bounded cache) is still 200.
    expect((await scrape(h.metricsPort, "/metrics", allowed)).status).toBe(200);

    expect((await scrape(h.healthPort, "/healthz")).status).toBe(200);
  });

  it("with none (the default), /metrics is open", async () => {
    const h = await operator("none");
    const r = await scrape(h.metricsPort, "/metrics");
    expect(r.status).toBe(200);
    expect(r.body).toContain("workqueue_depth");
  });
});
