// Hostile metric sources against the real operator on a real control plane
// (issue 20): no byte of what a source answered reaches status, events or the
// operator's logs; redirects are not followed; File heat sources are off unless
// allowed and then capped; and deployments whose Prometheus never answers do
// not delay another deployment's first status.
import { mkdir, mkdtemp, rm, symlink, truncate, writeFile } from "node:fs/promises";
import { readFileSync } from "node:fs";
import { createServer as createHttpServer, type Server } from "node:http";
import { createServer as createTcpServer, type Server as TcpServer, type Socket } from "node:net";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startCluster, type LocalCluster } from "../../src/testing/cluster.ts";
import type { ManagedProcess } from "../../src/testing/process.ts";
import { startOperatorProcess } from "../support/operator-process.ts";
import { heatConfigMap, skewedHeat, testMoEDeployment } from "../support/moe-fixtures.ts";
import { applyJson, condition, moedStatus, waitForStatus } from "../support/kube-helpers.ts";

const SECRET = "db_password=TOPSECRET-7f3a";
const RECONCILE_INTERVAL_SECONDS = 3;

let cluster: LocalCluster;
let operator: ManagedProcess | undefined;
let http: Server;
let httpBase: string;
const httpHits: string[] = [];
let blackhole: TcpServer;
let blackholeUrl: string;
const sockets = new Set<Socket>();
let fileDir: string;

function startOperator(identity: string, extraArgs: string[]): ManagedProcess {
  operator = startOperatorProcess({
    kubeconfigPath: cluster.kubeconfigPath,
    dir: cluster.dir,
    identity,
    leaderElect: false,
    reconcileIntervalSeconds: RECONCILE_INTERVAL_SECONDS,
    extraArgs: ["--workers=2", ...extraArgs],
  });
  return operator;
}

function promSpec(name: string, heatUrl: string, latencyUrl: string, timeoutSeconds = 5) {
  const m = testMoEDeployment(name, "default", { mode: "Recommend" }) as { spec: Record<string, unknown> };
  m.spec.heatSource = {
    type: "Prometheus",
    refreshIntervalSeconds: 5,
    prometheus: { url: heatUrl, query: "sum by (layer, expert) (rate(x[{{window}}]))", timeoutSeconds },
  };
  m.spec.latencySource = { type: "Prometheus", prometheus: { url: latencyUrl, query: "max(y)", timeoutSeconds } };
  return m;
}

function fileSpec(name: string, path: string) {
  const m = testMoEDeployment(name, "default", { mode: "Recommend" }) as { spec: Record<string, unknown> };
  m.spec.heatSource = { type: "File", refreshIntervalSeconds: 5, file: { path } };
  return m;
}

async function eventsText(): Promise<string> {
  const r = await cluster.kubectl(["get", "events", "-A", "-o", "json"]);
  expect(r.code).toBe(0);
  return r.stdout;
}

function rssKiB(pid: number): number {
  const m = /VmRSS:\s+(\d+)\s+kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return m ? Number(m[1]) : NaN;
}

beforeAll(async () => {
  cluster = await startCluster({
    name: "sources",
    gpuNodes: [
      {
        pool: "h100",
        count: 2,
        gpusPerNode: 8,
        gpuProduct: "NVIDIA-H100-80GB-HBM3",
        gpuMemoryMiB: 81559,
        priceUsdPerGpuHour: 2,
        nodesPerDomain: 1,
      },
    ],
  });
  expect((await cluster.kubectl(["apply", "--server-side", "-f", "crds/"])).code).toBe(0);
  await cluster.kubectl(["wait", "--for=condition=Established", "crd/moedeployments.moe.dev", "--timeout=30s"]);

  http = createHttpServer((req, res) => {
    httpHits.push(req.url ?? "");
    const url = req.url ?? "";
    if (url.startsWith("/redirect/"))
      res.writeHead(303, { location: "/target/api/v1/query", "content-type": "text/plain" }).end(`see other ${SECRET}`);
    else if (url.startsWith("/target/"))
      res.writeHead(200, { "content-type": "text/plain" }).end(`redirect target ${SECRET}`);
    else if (url.startsWith("/text/")) res.writeHead(200, { "content-type": "text/plain" }).end(SECRET);
    else if (url.startsWith("/jsonerror/"))
      res
        .writeHead(500, { "content-type": "application/json" })
        .end(JSON.stringify({ status: "error", errorType: SECRET, error: SECRET }));
    else
      res
        .writeHead(200, { "content-type": "application/json" })
        .end(JSON.stringify({ status: "success", data: SECRET }));
  });
  await new Promise<void>((r) => http.listen(0, "127.0.0.1", r));
  httpBase = `http://127.0.0.1:${(http.address() as AddressInfo).port}`;

  // Accepts connections and never answers.
  blackhole = createTcpServer((s) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
    s.on("error", () => undefined);
  });
  await new Promise<void>((r) => blackhole.listen(0, "127.0.0.1", r));
  blackholeUrl = `http://127.0.0.1:${(blackhole.address() as AddressInfo).port}`;

  fileDir = await mkdtemp(join(tmpdir(), "moe-heat-files-"));
});

afterAll(async () => {
  await operator?.stop();
  if (operator && process.env.MOE_TEST_VERBOSE) console.log(operator.logTail(80));
  for (const s of sockets) s.destroy();
  http?.closeAllConnections();
  await new Promise((r) => http?.close(r));
  await new Promise((r) => blackhole?.close(r));
  await cluster?.stop();
  if (fileDir) await rm(fileDir, { recursive: true, force: true });
});

describe("metric sources (issue 20)", () => {
  it("a 303 and a server returning secrets: nothing of either body in status, events or logs, and the redirect is not followed", async () => {
    startOperator("src-1", [`--prometheus-allowed-urls=127.0.0.1:${new URL(httpBase).port}`]);
    await applyJson(cluster, promSpec("leaky-a", `${httpBase}/redirect`, `${httpBase}/text`));
    await applyJson(cluster, promSpec("leaky-b", `${httpBase}/jsonerror`, `${httpBase}/shape`));
    await waitForStatus(
      cluster,
      "leaky-a",
      "MetricsAvailable=False",
      (s) => condition(s, "MetricsAvailable")?.status === "False",
    );
    await waitForStatus(
      cluster,
      "leaky-b",
      "MetricsAvailable=False",
      (s) => condition(s, "MetricsAvailable")?.status === "False",
    );
    // Let a few more reconciles and reads happen (and their events and log lines).
    await new Promise((r) => setTimeout(r, RECONCILE_INTERVAL_SECONDS * 2_000));
    const [a, b] = [await moedStatus(cluster, "leaky-a"), await moedStatus(cluster, "leaky-b")];
    expect(JSON.stringify(a)).not.toContain("TOPSECRET");
    expect(JSON.stringify(b)).not.toContain("TOPSECRET");
    expect(await eventsText()).not.toContain("TOPSECRET");
    const log = readFileSync(operator!.logFile, "utf8");
    expect(log.length).toBeGreaterThan(0);
    expect(log).not.toContain("TOPSECRET");
    expect(httpHits.some((h) => h.startsWith("/redirect/"))).toBe(true);
    expect(httpHits.filter((h) => h.startsWith("/target"))).toEqual([]);
    // What they say instead: a fixed class.
    expect(condition(a, "MetricsAvailable")!.message).toMatch(
      /HTTP 303 from prometheus \(redirects are not followed\)/,
    );
    expect(condition(a, "SLOMet")!.message).toMatch(/non-JSON response/);
    expect(condition(b, "MetricsAvailable")!.message).toMatch(/HTTP 500 from prometheus: query error \(unknown\)/);
    expect(condition(b, "SLOMet")!.message).toMatch(/not a Prometheus query response/);
    expect(await eventsText()).toContain("redirects are not followed");
    await cluster.kubectl(["delete", "moed", "leaky-a", "leaky-b", "--wait=false"]);
  });

  it("a Prometheus URL outside the operator's allowlist gets a condition and no request", async () => {
    const before = httpHits.length;
    await applyJson(cluster, promSpec("not-allowed", "http://127.0.0.2:9", `${httpBase}/text`));
    const s = await waitForStatus(
      cluster,
      "not-allowed",
      "SourceNotAllowed",
      (st) => condition(st, "MetricsAvailable")?.reason === "SourceNotAllowed",
    );
    expect(condition(s, "MetricsAvailable")!.message).toMatch(
      /^spec\.heatSource\.prometheus\.url: URL not in the operator's allowlist/,
    );
    expect(httpHits.length).toBeGreaterThanOrEqual(before); // the latency source (allowed) is still read
    await cluster.kubectl(["delete", "moed", "not-allowed", "--wait=false"]);
  });

  it("two deployments whose Prometheus never answers do not delay a third one's first status", async () => {
    await operator?.stop();
    startOperator("src-2", [`--prometheus-allowed-urls=127.0.0.1`]);
    // Queries time out after 120 s if the operator let them (the spec's maximum).
    await applyJson(cluster, promSpec("blackhole-1", blackholeUrl, blackholeUrl, 120));
    await applyJson(cluster, promSpec("blackhole-2", blackholeUrl, blackholeUrl, 120));
    await waitForStatus(cluster, "blackhole-1", "a status", (s) => s.observedGeneration !== undefined, 60_000).catch(
      () => undefined,
    );
    await waitFor(() => sockets.size >= 2, 30_000);
    await applyJson(cluster, heatConfigMap("third-heat", "default", skewedHeat(3_000, [1, 2])));
    const createdAt = Date.now();
    await applyJson(cluster, testMoEDeployment("third", "default", { mode: "Recommend" }));
    const boundMs = RECONCILE_INTERVAL_SECONDS * 1000 + 5_000;
    const s = await waitForStatus(
      cluster,
      "third",
      "first status",
      (st) => st.observedGeneration !== undefined,
      boundMs,
    );
    const firstStatusMs = Date.now() - createdAt;
    console.log(`third deployment's first status after ${firstStatusMs} ms (bound ${boundMs} ms)`);
    expect(firstStatusMs).toBeLessThanOrEqual(boundMs);
    expect(condition(s, "MetricsAvailable")?.status).toBe("True");
    // The blackholed ones say why they hold.
    const bh = await waitForStatus(
      cluster,
      "blackhole-2",
      "MetricsAvailable=False",
      (st) => condition(st, "MetricsAvailable")?.status === "False",
      30_000,
    );
    expect(condition(bh, "MetricsAvailable")!.reason).toMatch(/PrometheusUnreachable|NoData/);
    await cluster.kubectl(["delete", "moed", "blackhole-1", "blackhole-2", "third", "--wait=false"]);
  });

  it("File heat sources are refused while the flag is off: /dev/zero and a token file", async () => {
    await operator?.stop();
    startOperator("src-3", []);
    const token = join(fileDir, "token");
    await writeFile(token, "TOPSECRET-serviceaccount-token\n"); // JSON.parse quotes the first bytes: this is what leaked
    await applyJson(cluster, fileSpec("file-zero", "/dev/zero"));
    await applyJson(cluster, fileSpec("file-token", token));
    for (const name of ["file-zero", "file-token"]) {
      const s = await waitForStatus(
        cluster,
        name,
        "MetricsAvailable=False",
        (st) => condition(st, "MetricsAvailable")?.status === "False",
      );
      expect(JSON.stringify(s)).not.toContain("TOPSECRET");
      expect(condition(s, "MetricsAvailable")!.reason).toBe("SourceNotAllowed");
      expect(condition(s, "MetricsAvailable")!.message).toMatch(
        /^spec\.heatSource\.file\.path: File heat sources are disabled on this operator/,
      );
    }
    expect(await eventsText()).not.toContain("TOPSECRET");
    expect(readFileSync(operator!.logFile, "utf8")).not.toContain("TOPSECRET");
    await cluster.kubectl(["delete", "moed", "file-zero", "file-token", "--wait=false"]);
  });

  it("with the flag on and the path allowed, a huge file is refused by the size cap and an escaping link by the directory rule", async () => {
    await operator?.stop();
    const allowed = join(fileDir, "allowed");
    await mkdir(allowed);
    const huge = join(allowed, "huge.json");
    await writeFile(huge, "");
    await truncate(huge, 2 * 1024 * 1024 * 1024); // sparse: 2 GiB that cost no disk
    await symlink("/dev/zero", join(allowed, "zero.json"));
    await symlink(join(fileDir, "token"), join(allowed, "token.json"));
    const op = startOperator("src-4", [`--file-heat-source-dirs=${allowed}`, "--file-heat-source-max-bytes=1048576"]);
    await waitFor(() => /operator started/.test(op.logTail(50)), 30_000);
    const rssBefore = rssKiB(op.pid!);
    await applyJson(cluster, fileSpec("file-huge", huge));
    await applyJson(cluster, fileSpec("file-zero-link", join(allowed, "zero.json")));
    await applyJson(cluster, fileSpec("file-token-link", join(allowed, "token.json")));
    const h = await waitForStatus(
      cluster,
      "file-huge",
      "size cap",
      (st) => condition(st, "MetricsAvailable")?.reason === "SourceNotAllowed",
    );
    expect(condition(h, "MetricsAvailable")!.message).toMatch(
      /^spec\.heatSource\.file\.path: file larger than 1048576 bytes/,
    );
    for (const name of ["file-zero-link", "file-token-link"]) {
      const s = await waitForStatus(
        cluster,
        name,
        "directory rule",
        (st) => condition(st, "MetricsAvailable")?.reason === "SourceNotAllowed",
      );
      expect(condition(s, "MetricsAvailable")!.message).toMatch(
        /^spec\.heatSource\.file\.path: not a readable file inside the operator's allowed directories/,
      );
      expect(JSON.stringify(s)).not.toContain("TOPSECRET");
    }
    // Measured, not asserted: the refusals read nothing.
    console.log(`operator RSS ${rssBefore} KiB before, ${rssKiB(op.pid!)} KiB after the File sources were refused`);
    await cluster.kubectl(["delete", "moed", "file-huge", "file-zero-link", "file-token-link", "--wait=false"]);
  });
});

async function waitFor(pred: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!pred()) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 200));
  }
}
