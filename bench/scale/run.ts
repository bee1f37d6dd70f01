// `make bench-scale`: the operator against a large local control plane (issue 21, item 4).
// 1,000 kwok nodes x 8 GPUs, 100 MoEDeployments of 50 one-GPU shards + a one-GPU router
// (5,100 pods), the operator as a separate process (so /proc/<pid> gives its RSS and CPU).
// Measures event-to-write latency (a spec patch until the watch shows the status written for
// that generation), reconciles/s, API requests per minute by verb, RSS/CPU, writes at rest
// over a quiet minute; then SIGKILLs the leader, starts a new operator and measures the time
// to converge and whether any pod was orphaned or replaced. A benchmark, not a test: it prints
// PASS/FAIL against the targets and exits 0 unless it could not run.
import { loadavg } from "node:os";
import { join } from "node:path";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { spawnSync } from "node:child_process";
import { Command } from "commander";
import { startCluster, type LocalCluster } from "../../src/testing/cluster.ts";
import { startProcess, type ManagedProcess } from "../../src/testing/process.ts";
import { freePort } from "../../src/testing/ports.ts";
import { repoRoot } from "../../src/testing/bins.ts";
import { waitFor } from "../../src/testing/http-probe.ts";
import {
  countBy,
  diff,
  formatCounts,
  parsePromText,
  readAuditRequests,
  WRITE_VERBS,
  readCpuSeconds,
  readRssMiB,
  sumBy,
  total,
  MemorySampler,
  type MemoryReading,
} from "./measure.ts";
import { quantile } from "../../src/domain/quantile.ts";
import { KubeApi, MoedWatch, type Moed } from "./kube.ts";

const program = new Command()
  .name("bench-scale")
  .option("--quick", "smoke size: 100 nodes, 10 deployments", false)
  .option("--nodes <n>", "kwok nodes (8 GPUs each)", (v) => Number(v))
  .option("--deployments <n>", "MoEDeployments", (v) => Number(v))
  .option("--shards <n>", "expert shards per deployment (one GPU each; plus a one-GPU router)", (v) => Number(v), 50)
  .option("--probes <n>", "spec patches timed for event-to-write latency", (v) => Number(v), 40)
  .option("--quiet-seconds <n>", "length of the writes-at-rest window", (v) => Number(v), 60)
  .option("--converge-timeout-seconds <n>", "how long to wait for all deployments Ready", (v) => Number(v), 1800)
  .option(
    "--operator-node-options <flags>",
    'Node/V8 flags for the operator process (before its script); default: those of the Dockerfile\'s ENTRYPOINT; "" for none',
  )
  .option(
    "--operator-build <dist|src>",
    "dist: compile src/ with tsc (tsconfig.build.json) and run dist/main.js as the image does; src: node src/main.ts (type stripping)",
    "dist",
  )
  .option("--out <dir>", "where to write result.json", "out/bench-scale")
  .parse();
const o = program.opts<{
  quick: boolean;
  nodes?: number;
  deployments?: number;
  shards: number;
  probes: number;
  quietSeconds: number;
  convergeTimeoutSeconds: number;
  operatorNodeOptions?: string;
  operatorBuild: string;
  out: string;
}>();
const operatorNodeFlags = o.operatorNodeOptions ?? imageNodeFlags().join(" ");
if (o.operatorBuild !== "dist" && o.operatorBuild !== "src") {
  console.error(`--operator-build must be dist or src (got ${JSON.stringify(o.operatorBuild)})`);
  process.exit(2);
}
const NODES = o.nodes ?? (o.quick ? 100 : 1000);
const DEPLOYMENTS = o.deployments ?? (o.quick ? 10 : 100);
const SHARDS = o.shards;
for (const [flag, v] of [
  ["--nodes", NODES],
  ["--deployments", DEPLOYMENTS],
  ["--shards", SHARDS],
  ["--probes", o.probes],
  ["--quiet-seconds", o.quietSeconds],
] as const) {
  if (!Number.isInteger(v) || v < 1 || v > 100_000) {
    console.error(`${flag} must be a whole number from 1 to 100000 (got ${String(v)})`);
    process.exit(2);
  }
}
if (DEPLOYMENTS * (SHARDS + 1) > NODES * 8) {
  console.error(
    `--deployments x (--shards + 1) = ${DEPLOYMENTS * (SHARDS + 1)} GPUs do not fit on --nodes x 8 = ${NODES * 8}`,
  );
  process.exit(2);
}
const NS = "bench";
const OPERATOR_USER = "moe-operator-bench";
const TARGET_P99_MS = 1000;
const TARGET_RSS_MIB = 300;
const say = (s: string) =>
  console.log(`[${new Date().toISOString().slice(11, 19)} load ${loadavg()[0]!.toFixed(2)}] ${s}`);
process.stdout.on("error", () => {});

function moed(name: string) {
  return {
    apiVersion: "moe.dev/v1alpha1",
    kind: "MoEDeployment",
    metadata: { name, namespace: NS },
    spec: {
      mode: "Auto",
      model: {
        name: "bench/small-moe",
        layers: 5,
        denseLayers: 1,
        routedExperts: 64,
        topK: 2,
        expertWeightBytes: 1_000_000,
        expertSlotsPerGpu: 4,
      },
      serving: {
        router: {
          replicas: 1,
          gpusPerReplica: 1,
          template: {
            spec: {
              terminationGracePeriodSeconds: 1,
              containers: [{ name: "router", image: "example.invalid/router:1" }],
            },
          },
        },
        expertShards: {
          template: {
            spec: {
              terminationGracePeriodSeconds: 1,
              containers: [{ name: "expert", image: "example.invalid/expert:1" }],
            },
          },
        },
      },
      placement: { rebalanceIntervalSeconds: 300, minBalancednessGainPercent: 5, maxMovedPercent: 10 },
      slo: { metric: "InterTokenLatency", targetLatencyMs: 100, evaluationWindowSeconds: 30 },
      scaling: {
        minShards: SHARDS,
        maxShards: SHARDS,
        scaleUp: { stabilizationWindowSeconds: 0, maxShardsPerStep: SHARDS },
        scaleDown: { stabilizationWindowSeconds: 60, maxShardsPerStep: 1 },
      },
      heatSource: { type: "ConfigMap", configMap: { name: `${name}-heat` }, refreshIntervalSeconds: 30 },
      latencySource: { type: "Static", static: { latencyMs: 40 } },
      cost: { priceLabelKey: "moe.dev/price-usd-per-gpu-hour", defaultUsdPerGpuHour: 2 },
    },
  };
}

function heatConfigMap(name: string, seed: number) {
  const logical_count = Array.from({ length: 5 }, (_, l) =>
    Array.from({ length: 64 }, (_, e) => (l === 0 ? 0 : 100 + ((e * 37 + seed * 11 + l) % 50) * 20)),
  );
  return {
    apiVersion: "v1",
    kind: "ConfigMap",
    metadata: { name: `${name}-heat`, namespace: NS },
    data: { "expert-load.json": JSON.stringify({ logical_count }) },
  };
}

interface Operator {
  proc: ManagedProcess;
  metricsUrl: string;
  memory: MemorySampler;
}

/** The Node flags of the image's ENTRYPOINT (between the node binary and dist/main.js), so the bench runs the operator as the image does. */
function imageNodeFlags(): string[] {
  const m = /^ENTRYPOINT\s+(\[.*\])\s*$/m.exec(readFileSync(join(repoRoot(), "Dockerfile"), "utf8"));
  const entry = m ? (JSON.parse(m[1]!) as string[]) : [];
  const main = entry.indexOf("dist/main.js");
  if (main < 1)
    throw new Error("the Dockerfile has no ENTRYPOINT [node, ..., dist/main.js]: pass --operator-node-options");
  return entry.slice(1, main);
}

/** The operator's entry point: dist/main.js compiled once into the output directory, or src/main.ts. */
let operatorMain: string | undefined;
function operatorEntry(): string {
  if (operatorMain) return operatorMain;
  if (o.operatorBuild === "src") return (operatorMain = join(repoRoot(), "src", "main.ts"));
  // Under the repository (out/...), so that node_modules and package.json ("type": "module") resolve.
  const outDir = join(repoRoot(), "out", "bench-scale-operator");
  const tsc = spawnSync(
    join(repoRoot(), "node_modules", ".bin", "tsc"),
    ["-p", join(repoRoot(), "tsconfig.build.json"), "--outDir", outDir],
    { encoding: "utf8" },
  );
  if (tsc.status !== 0)
    throw new Error(`compiling the operator with tsc failed: ${tsc.error?.message ?? `${tsc.stdout}${tsc.stderr}`}`, {
      cause: tsc.error,
    });
  return (operatorMain = join(outDir, "main.js"));
}

async function startOperator(cluster: LocalCluster, kubeconfig: string, identity: string): Promise<Operator> {
  const port = await freePort();
  const proc = startProcess({
    name: `operator-${identity}`,
    command: join(repoRoot(), "node_modules", ".bin", "node"),
    args: [
      ...operatorNodeFlags.split(/\s+/).filter(Boolean),
      operatorEntry(),
      `--kubeconfig=${kubeconfig}`,
      `--metrics-bind-address=127.0.0.1:${port}`,
      "--health-probe-bind-address=127.0.0.1:0",
      "--metrics-auth=none",
      "--leader-elect=true",
      "--leader-election-namespace=default",
      `--identity=${identity}`,
      // The chart's defaults, except a shorter lease so that the failover phase is not all waiting.
      "--lease-duration-seconds=15",
      "--renew-deadline-seconds=10",
      "--retry-period-seconds=2",
      "--reconcile-interval-seconds=30",
      "--drain-seconds=30",
      "--max-surge=2",
      "--workers=4",
      "--log-level=info",
    ],
    logFile: join(cluster.dir, `operator-${identity}.log`),
    cwd: repoRoot(),
  });
  const metricsUrl = `http://127.0.0.1:${port}/metrics`;
  return { proc, metricsUrl, memory: new MemorySampler(proc.pid!, metricsUrl) };
}

async function operatorMetrics(op: Operator) {
  const r = await fetch(op.metricsUrl, { signal: AbortSignal.timeout(10_000) });
  if (r.status !== 200) throw new Error(`operator /metrics answered ${r.status}`);
  return parsePromText(await r.text());
}

interface Snapshot {
  atMs: number;
  reconciles: number;
  apiByVerb: Map<string, number>;
  operatorWrites: Map<string, number>;
  cpuS: number;
}

async function snapshot(api: KubeApi, op: Operator): Promise<Snapshot> {
  const [mine, server] = await Promise.all([operatorMetrics(op), api.apiserverMetrics()]);
  return {
    atMs: Date.now(),
    reconciles: total(sumBy(mine, "controller_runtime_reconcile_total")),
    apiByVerb: sumBy(parsePromText(server), "apiserver_request_total", "verb"),
    operatorWrites: sumBy(mine, "moe_operator_api_writes_total", "verb"),
    cpuS: readCpuSeconds(op.proc.pid!),
  };
}

function allReady(list: Moed[]): boolean {
  return (
    list.length === DEPLOYMENTS &&
    list.every(
      (d) =>
        d.status?.currentShards === SHARDS &&
        d.status.conditions?.some((c) => c.type === "Ready" && c.status === "True") &&
        // No rollout or drain still going (a run once counted 5,106 pods as converged).
        !d.status.conditions.some((c) => c.type === "Progressing" && c.status === "True") &&
        (d.status.observedGeneration ?? 0) >= (d.metadata.generation ?? 1),
    )
  );
}

async function bringUp(cluster: LocalCluster, api: KubeApi): Promise<void> {
  const t = Date.now();
  await cluster.addGpuNodes([
    {
      pool: "gpu",
      count: NODES,
      gpusPerNode: 8,
      gpuProduct: "NVIDIA-H100-80GB-HBM3",
      gpuMemoryMiB: 81_559,
      priceUsdPerGpuHour: 2,
      nodesPerDomain: 8,
    },
  ]);
  say(`${NODES} kwok nodes x 8 GPUs Ready (${((Date.now() - t) / 1000).toFixed(0)} s)`);
  const crd = await cluster.kubectl(["apply", "--server-side", "-f", join(repoRoot(), "crds")]);
  if (crd.code !== 0) throw new Error(`applying the CRD failed: ${crd.stderr}`);
  await cluster.kubectl(["wait", "--for=condition=Established", "crd/moedeployments.moe.dev", "--timeout=60s"]);
  await cluster.kubectl(["create", "namespace", NS]);
  const names = Array.from({ length: DEPLOYMENTS }, (_, i) => `moe-${String(i).padStart(3, "0")}`);
  await api.createAll(
    names.flatMap((n, i) => [heatConfigMap(n, i), moed(n)]),
    8,
  );
  say(`${DEPLOYMENTS} MoEDeployments x (${SHARDS} shards + 1 router) created in namespace ${NS}`);
}

async function waitConverged(api: KubeApi, op: Operator, what: string, timeoutMs: number): Promise<number> {
  const t = Date.now();
  let lastLog = 0;
  await waitFor(
    what,
    async () => {
      if (op.proc.exitCode !== undefined)
        throw new Error(`the operator exited (${String(op.proc.exitCode)}):\n${op.proc.logTail(20)}`);
      const list = await api.listMoeds(NS);
      if (Date.now() - lastLog > 30_000) {
        lastLog = Date.now();
        const ready = list.filter((d) =>
          d.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True"),
        ).length;
        const shards = list.reduce((a, d) => a + (d.status?.currentShards ?? 0), 0);
        say(`  ${what}: ${ready}/${DEPLOYMENTS} Ready, ${shards}/${DEPLOYMENTS * SHARDS} shards`);
      }
      return allReady(list) ? true : undefined;
    },
    { timeoutMs, intervalMs: 3_000, onTimeout: () => op.proc.logTail(20) },
  );
  return Date.now() - t;
}

/** Patches spec.slo.targetLatencyMs of one deployment at a time; times until the watch shows status for that generation. */
async function eventToWrite(api: KubeApi, watch: MoedWatch, probes: number): Promise<number[]> {
  const latencies: number[] = [];
  for (let i = 0; i < probes; i++) {
    const name = `moe-${String((i * 37) % DEPLOYMENTS).padStart(3, "0")}`;
    const t0 = performance.now();
    const generation = await api.patchMoedSpec(NS, name, {
      slo: { targetLatencyMs: 100 + (i % 2 === 0 ? 1 : 0) + (i % 7) },
    });
    const seenAt = await watch.whenObserved(name, generation, 60_000);
    latencies.push(seenAt - t0);
    await new Promise((r) => setTimeout(r, 500));
  }
  return latencies;
}

async function failover(cluster: LocalCluster, api: KubeApi, old: Operator, kubeconfig: string) {
  const before = await api.listManagedPods(NS);
  const killedAt = Date.now();
  old.memory.stop();
  process.kill(old.proc.pid!, "SIGKILL");
  await old.proc.exited;
  const next = await startOperator(cluster, kubeconfig, "bench-2");
  // Converged: the new operator leads, has reconciled every deployment at least once, its queue is
  // empty, and every deployment is Ready with all shards.
  await waitFor(
    "the new leader to reconcile every deployment",
    async () => {
      if (next.proc.exitCode !== undefined) throw new Error(`the new operator exited:\n${next.proc.logTail(20)}`);
      const m = await operatorMetrics(next);
      const leading = total(sumBy(m, "leader_election_master_status")) >= 1;
      const reconciled = total(sumBy(m, "controller_runtime_reconcile_total", undefined, (l) => l.result !== "error"));
      const depth = total(sumBy(m, "workqueue_depth"));
      return leading && reconciled >= DEPLOYMENTS && depth === 0 && allReady(await api.listMoeds(NS))
        ? true
        : undefined;
    },
    { timeoutMs: 600_000, intervalMs: 500, onTimeout: () => next.proc.logTail(20) },
  );
  const convergeMs = Date.now() - killedAt;
  await new Promise((r) => setTimeout(r, 10_000));
  const after = await api.listManagedPods(NS);
  const beforeUids = new Set(before.map((p) => p.uid));
  const afterUids = new Set(after.map((p) => p.uid));
  const liveDeployments = new Set((await api.listMoeds(NS)).map((d) => d.metadata.name));
  return {
    next,
    convergeMs,
    podsBefore: before.length,
    podsAfter: after.length,
    created: after.filter((p) => !beforeUids.has(p.uid)).length,
    deleted: before.filter((p) => !afterUids.has(p.uid)).length,
    orphans: after.filter((p) => !p.owner || !liveDeployments.has(p.deployment)).length,
  };
}

/** Event-to-write probes, then a whole reconcile interval more, bracketed by snapshots and the audit log. */
async function measureBusy(cluster: LocalCluster, api: KubeApi, op: Operator, watch: MoedWatch) {
  const s0 = await snapshot(api, op);
  const audit0 = readAuditRequests(cluster.auditLogPath, OPERATOR_USER);
  const latencies = await eventToWrite(api, watch, o.probes);
  say(
    `event-to-write over ${latencies.length} spec patches: p50 ${quantile(latencies, 0.5).toFixed(0)} ms, p99 ${quantile(latencies, 0.99).toFixed(0)} ms`,
  );
  // Let the periodic resyncs run for a whole reconcile interval inside the busy window too.
  await new Promise((r) => setTimeout(r, 30_000));
  const s1 = await snapshot(api, op);
  const audit1 = readAuditRequests(cluster.auditLogPath, OPERATOR_USER, audit0.endByte);
  const busyMin = (s1.atMs - s0.atMs) / 60_000;
  return { s0, s1, audit1, latencies, busyMin };
}

/** The quiet window: no changes for --quiet-seconds; what the operator requested and wrote, and its memory. */
async function measureQuiet(cluster: LocalCluster, api: KubeApi, op: Operator, auditFromByte: number) {
  say(`quiet window: ${o.quietSeconds} s with no changes`);
  const q0 = await snapshot(api, op);
  await new Promise((r) => setTimeout(r, o.quietSeconds * 1000));
  const q1 = await snapshot(api, op);
  const auditQuiet = readAuditRequests(cluster.auditLogPath, OPERATOR_USER, auditFromByte).requests.filter(
    (w) => w.timeMs >= q0.atMs && w.timeMs <= q1.atMs,
  );
  const auditQAll = auditQuiet.filter((w) => WRITE_VERBS.has(w.verb));
  // Leader-election renewals are writes by design (one per retry period); they are counted apart.
  const auditQ = auditQAll.filter((w) => w.resource !== "leases");
  const quietMin = (q1.atMs - q0.atMs) / 60_000;
  await op.memory.sample();
  const mem = readRssMiB(op.proc.pid!);
  const memPeak = op.memory.peak;
  const quietWrites = total(diff(q0.operatorWrites, q1.operatorWrites));
  return { q0, q1, auditQuiet, auditQAll, auditQ, quietMin, mem, memPeak, quietWrites };
}

interface Measurements {
  t0: number;
  pods: number;
  convergeMs: number;
  busy: Awaited<ReturnType<typeof measureBusy>>;
  quiet: Awaited<ReturnType<typeof measureQuiet>>;
  f: Awaited<ReturnType<typeof failover>>;
  memAfter: ReturnType<typeof readRssMiB>;
}

/** The result (result.json and the report) from the measurements of the run. */
async function buildResult(m: Measurements) {
  const { t0, pods, convergeMs, f, memAfter } = m;
  const { s0, s1, audit1, latencies, busyMin } = m.busy;
  const { q0, q1, auditQuiet, auditQAll, auditQ, quietMin, mem, memPeak, quietWrites } = m.quiet;
  return {
    size: { nodes: NODES, gpus: NODES * 8, deployments: DEPLOYMENTS, shardsPerDeployment: SHARDS, pods },
    bringUpSeconds: convergeMs / 1000,
    eventToWriteMs: {
      probes: latencies.length,
      p50: quantile(latencies, 0.5),
      p99: quantile(latencies, 0.99),
      max: Math.max(...latencies),
    },
    reconcilesPerSecond: {
      busy: (s1.reconciles - s0.reconciles) / ((s1.atMs - s0.atMs) / 1000),
      quiet: (q1.reconciles - q0.reconciles) / ((q1.atMs - q0.atMs) / 1000),
    },
    apiRequestsPerMinuteAllClients: {
      busy: Object.fromEntries([...diff(s0.apiByVerb, s1.apiByVerb)].map(([k, v]) => [k, v / busyMin])),
      quiet: Object.fromEntries([...diff(q0.apiByVerb, q1.apiByVerb)].map(([k, v]) => [k, v / quietMin])),
    },
    operatorRequestsPerMinuteAudit: {
      busy: Object.fromEntries(
        [...countBy(audit1.requests, (w) => `${w.verb} ${w.resource}${w.subresource ? `/${w.subresource}` : ""}`)].map(
          ([k, v]) => [k, v / busyMin],
        ),
      ),
      quiet: Object.fromEntries(
        [...countBy(auditQuiet, (w) => `${w.verb} ${w.resource}${w.subresource ? `/${w.subresource}` : ""}`)].map(
          ([k, v]) => [k, v / quietMin],
        ),
      ),
    },
    operatorCpuPercent: {
      busy: (100 * (s1.cpuS - s0.cpuS)) / ((s1.atMs - s0.atMs) / 1000),
      quiet: (100 * (q1.cpuS - q0.cpuS)) / ((q1.atMs - q0.atMs) / 1000),
    },
    operatorRssMiB: { atRest: mem.rssMiB, peak: mem.peakMiB, newLeaderPeak: memAfter.peakMiB },
    operatorMemoryAtSampledPeak: memPeak,
    operatorBuild: o.operatorBuild,
    writesAtRest: {
      seconds: o.quietSeconds,
      operatorMetric: quietWrites,
      audit: auditQ.length,
      leaseRenewals: auditQAll.length - auditQ.length,
      auditByVerb: Object.fromEntries(
        countBy(auditQ, (w) => `${w.verb} ${w.resource}${w.subresource ? `/${w.subresource}` : ""}`),
      ),
    },
    failover: {
      convergeSeconds: f.convergeMs / 1000,
      podsBefore: f.podsBefore,
      podsAfter: f.podsAfter,
      podsCreated: f.created,
      podsDeleted: f.deleted,
      orphans: f.orphans,
    },
    operatorNodeOptions: operatorNodeFlags,
    loadAverage: loadavg(),
    cores: (await import("node:os")).availableParallelism(),
    totalSeconds: (Date.now() - t0) / 1000,
  };
}

async function main(): Promise<void> {
  const t0 = Date.now();
  say(
    `bench-scale: ${NODES} nodes x 8 GPUs, ${DEPLOYMENTS} MoEDeployments x (${SHARDS} + 1) pods; load average at start ${loadavg()
      .map((l) => l.toFixed(2))
      .join(" ")}`,
  );
  const cluster = await startCluster({
    name: "scale",
    audit: true,
    auditAllRequestsOf: [OPERATOR_USER],
    log: (m) => say(m),
  });
  let op: Operator | undefined;
  let watch: MoedWatch | undefined;
  const stopAll = async () => {
    watch?.stop();
    await op?.proc.stop();
    await cluster.stop();
  };
  for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"] as const)
    process.on(sig, () => void stopAll().finally(() => process.exit(130)));
  try {
    const api = new KubeApi(cluster);
    await bringUp(cluster, api);
    const opKubeconfig = cluster.kubeconfigFor(OPERATOR_USER);
    op = await startOperator(cluster, opKubeconfig, "bench-1");
    const convergeMs = await waitConverged(api, op, "all deployments Ready", o.convergeTimeoutSeconds * 1000);
    const pods = (await api.listManagedPods(NS)).length;
    say(
      `converged: ${pods} operator pods, all ${DEPLOYMENTS} deployments Ready in ${(convergeMs / 1000).toFixed(0)} s`,
    );

    watch = await MoedWatch.start(cluster, NS);
    const busy = await measureBusy(cluster, api, op, watch);
    const quiet = await measureQuiet(cluster, api, op, busy.audit1.endByte);

    say("failover: SIGKILL the leader, start a new operator");
    watch.stop();
    watch = undefined;
    const f = await failover(cluster, api, op, opKubeconfig);
    op = f.next;
    await op.memory.sample();
    const memAfter = readRssMiB(op.proc.pid!);
    op.memory.stop();

    const r = await buildResult({ t0, pods, convergeMs, busy, quiet, f, memAfter });
    printReport(r, diff(busy.s0.apiByVerb, busy.s1.apiByVerb), busy.busyMin);
    mkdirSync(o.out, { recursive: true });
    writeFileSync(join(o.out, "result.json"), JSON.stringify(r, null, 2));
    say(`result: ${join(o.out, "result.json")}`);
  } finally {
    await stopAll();
    say("everything this benchmark started is stopped");
  }
}

type Report = {
  size: { nodes: number; gpus: number; deployments: number; shardsPerDeployment: number; pods: number };
  bringUpSeconds: number;
  eventToWriteMs: { probes: number; p50: number; p99: number; max: number };
  reconcilesPerSecond: { busy: number; quiet: number };
  operatorRequestsPerMinuteAudit: { busy: Record<string, number>; quiet: Record<string, number> };
  operatorCpuPercent: { busy: number; quiet: number };
  operatorRssMiB: { atRest: number; peak: number; newLeaderPeak: number };
  operatorMemoryAtSampledPeak: MemoryReading | undefined;
  operatorBuild: string;
  writesAtRest: {
    seconds: number;
    operatorMetric: number;
    audit: number;
    leaseRenewals: number;
    auditByVerb: Record<string, number>;
  };
  failover: {
    convergeSeconds: number;
    podsBefore: number;
    podsAfter: number;
    podsCreated: number;
    podsDeleted: number;
    orphans: number;
  };
  operatorNodeOptions: string;
  loadAverage: number[];
  cores: number;
};

function formatMemory(m: MemoryReading | undefined): string {
  if (!m) return "no reading";
  const other = m.rssMiB - m.heapTotalMiB - m.externalMiB;
  return `RSS ${m.rssMiB.toFixed(0)} MiB = V8 heap ${m.heapTotalMiB.toFixed(0)} (${m.heapUsedMiB.toFixed(0)} used) + external ${m.externalMiB.toFixed(0)} + other ${other.toFixed(0)} (code, stacks, malloc)`;
}

function printReport(r: Report, apiBusy: Map<string, number>, busyMin: number): void {
  const pf = (ok: boolean) => (ok ? "PASS" : "FAIL");
  const rows: [string, string, string][] = [
    [
      "size",
      `${r.size.nodes} nodes / ${r.size.gpus} GPUs, ${r.size.deployments} MoEDeployments, ${r.size.pods} pods`,
      "",
    ],
    ["bring-up (create to all Ready)", `${r.bringUpSeconds.toFixed(0)} s`, ""],
    [
      "event-to-write p50 / p99 / max",
      `${r.eventToWriteMs.p50.toFixed(0)} / ${r.eventToWriteMs.p99.toFixed(0)} / ${r.eventToWriteMs.max.toFixed(0)} ms (${r.eventToWriteMs.probes} spec patches)`,
      `${pf(r.eventToWriteMs.p99 < TARGET_P99_MS)} (p99 < ${TARGET_P99_MS} ms)`,
    ],
    [
      "reconciles/s busy / quiet",
      `${r.reconcilesPerSecond.busy.toFixed(2)} / ${r.reconcilesPerSecond.quiet.toFixed(2)}`,
      "",
    ],
    ["API requests/min by verb, all clients (busy)", formatCounts(apiBusy, 1 / busyMin), ""],
    [
      "operator requests/min by verb and resource (audit log), busy",
      formatCounts(new Map(Object.entries(r.operatorRequestsPerMinuteAudit.busy)), 1, 1),
      "",
    ],
    [
      "operator requests/min by verb and resource (audit log), quiet",
      formatCounts(new Map(Object.entries(r.operatorRequestsPerMinuteAudit.quiet)), 1, 1),
      "",
    ],
    [
      "operator CPU busy / quiet",
      `${r.operatorCpuPercent.busy.toFixed(1)}% / ${r.operatorCpuPercent.quiet.toFixed(1)}% of one core`,
      "",
    ],
    [
      "operator RSS at rest / peak",
      `${r.operatorRssMiB.atRest.toFixed(0)} / ${r.operatorRssMiB.peak.toFixed(0)} MiB (new leader peak ${r.operatorRssMiB.newLeaderPeak.toFixed(0)})`,
      `${pf(r.operatorRssMiB.peak <= TARGET_RSS_MIB)} (peak <= ${TARGET_RSS_MIB} MiB)`,
    ],
    ["operator memory at the highest sampled RSS (every 2 s)", formatMemory(r.operatorMemoryAtSampledPeak), ""],
    [
      `writes at rest (${r.writesAtRest.seconds} s)`,
      `${r.writesAtRest.operatorMetric} (operator metric), ${r.writesAtRest.audit} (audit log, not leases)${r.writesAtRest.audit ? `: ${JSON.stringify(r.writesAtRest.auditByVerb)}` : ""}; ${r.writesAtRest.leaseRenewals} lease renewals`,
      `${pf(r.writesAtRest.operatorMetric === 0 && r.writesAtRest.audit === 0)} (0)`,
    ],
    [
      "failover: SIGKILL leader -> converged",
      `${r.failover.convergeSeconds.toFixed(0)} s; pods ${r.failover.podsBefore} -> ${r.failover.podsAfter}, ${r.failover.podsCreated} created, ${r.failover.podsDeleted} deleted, ${r.failover.orphans} orphans`,
      pf(r.failover.orphans === 0 && r.failover.podsCreated === 0 && r.failover.podsDeleted === 0),
    ],
    [
      "operator",
      `${r.operatorBuild === "dist" ? "dist/main.js (compiled, as in the image)" : "src/main.ts (type stripping)"}${r.operatorNodeOptions ? `, node ${r.operatorNodeOptions}` : ""}`,
      "",
    ],
    ["load average (1/5/15 min), cores", `${r.loadAverage.map((l) => l.toFixed(2)).join(" / ")}, ${r.cores} cores`, ""],
  ];
  console.log("\n| measure | value | target |\n|---|---|---|");
  for (const [a, b, c] of rows) console.log(`| ${a} | ${b} | ${c} |`);
  console.log("");
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : String(err));
  if (err instanceof Error && err.cause)
    console.error(`cause: ${err.cause instanceof Error ? err.cause.message : String(err.cause)}`);
  process.exit(1);
});
