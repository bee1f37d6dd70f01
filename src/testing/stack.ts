// The whole closed loop on one machine: local control plane with GPU nodes,
// the CRD, the fleet emulator, a real Prometheus scraping it, and the operator
// as a separate process reading heat and latency only through Prometheus.
import { join } from "node:path";
import { startCluster, type LocalCluster } from "./cluster.ts";
import { startPrometheus, type LocalPrometheus } from "./prometheus.ts";
import { startProcess, type ManagedProcess } from "./process.ts";
import { repoRoot } from "./bins.ts";
import type { GpuNodePool } from "./gpu-nodes.ts";
import {
  startFleetEmulator,
  type FleetEmulatorServer,
  type FleetEmulatorServerOptions,
  type Scenario,
} from "../emulator/server.ts";
import { realClock } from "../runtime/clock.ts";
import { createRootLogger, silentLogger } from "../observability/logger.ts";

export interface StackOptions {
  name: string;
  gpuNodes: GpuNodePool[];
  namespace?: string;
  deployment: string;
  model: { layers: number; denseLayers: number; routedExperts: number; topK: number };
  scenario: Scenario;
  seed?: number;
  /** The emulated shards' side of in-place moves (expert bytes, refusal and timeout rates). */
  shardAgent?: FleetEmulatorServerOptions["shardAgent"];
  operator?: { reconcileIntervalSeconds?: number; drainSeconds?: number; logLevel?: string; extraArgs?: string[] };
  scrapeIntervalSeconds?: number;
  log?: (m: string) => void;
  audit?: boolean;
}

export interface Stack {
  readonly cluster: LocalCluster;
  readonly prometheus: LocalPrometheus;
  readonly emulator: FleetEmulatorServer;
  operator: ManagedProcess;
  restartOperator(): Promise<void>;
  stop(): Promise<void>;
}

/** PromQL templates for the emulator's metrics, in the operator's placeholder syntax. */
export const EMULATOR_HEAT_QUERY =
  'sum by (layer, expert) (rate(moe_expert_routed_tokens_total{namespace="{{namespace}}", moe_dev_deployment="{{name}}"}[{{window}}]))';
export const EMULATOR_LATENCY_QUERY =
  'histogram_quantile({{quantile}}, sum by (le) (rate(moe_inter_token_latency_seconds_bucket{namespace="{{namespace}}", moe_dev_deployment="{{name}}"}[{{window}}])))';

export async function startStack(o: StackOptions): Promise<Stack> {
  const log = o.log ?? (() => {});
  const namespace = o.namespace ?? "default";
  const cluster = await startCluster({ name: o.name, gpuNodes: o.gpuNodes, log, audit: o.audit });
  const parts: { stop(): Promise<void> }[] = [cluster];
  try {
    const crd = await cluster.kubectl(["apply", "--server-side", "-f", join(repoRoot(), "crds")]);
    if (crd.code !== 0) throw new Error(`applying the CRD failed: ${crd.stderr}`);
    await cluster.kubectl(["wait", "--for=condition=Established", "crd/moedeployments.moe.dev", "--timeout=30s"]);
    const emulator = await startFleetEmulator({
      kubeConfig: cluster.kubeConfig,
      namespace,
      deployment: o.deployment,
      model: o.model,
      scenario: o.scenario,
      seed: o.seed ?? 1,
      shardAgent: o.shardAgent,
      clock: realClock,
      logger: process.env.MOE_EMULATOR_LOG
        ? createRootLogger({ level: "info", name: "fleet-emulator" })
        : silentLogger(),
    });
    parts.unshift(emulator);
    log(`fleet emulator serving ${emulator.url}/metrics`);
    const prometheus = await startPrometheus({
      scrapeConfigs: [{ jobName: "moe-fleet-emulator", targets: [emulator.url.replace(/^http:\/\//, "")] }],
      scrapeIntervalSeconds: o.scrapeIntervalSeconds ?? 2,
    });
    parts.unshift(prometheus);
    log(`prometheus at ${prometheus.url}`);
    const startOperator = () =>
      startProcess({
        name: "moe-operator",
        command: join(repoRoot(), "node_modules", ".bin", "node"),
        args: [
          join(repoRoot(), "src", "main.ts"),
          `--kubeconfig=${cluster.kubeconfigPath}`,
          "--metrics-bind-address=127.0.0.1:0",
          "--health-probe-bind-address=127.0.0.1:0",
          "--leader-elect=true",
          `--leader-election-namespace=${namespace}`,
          "--lease-duration-seconds=6",
          "--renew-deadline-seconds=4",
          "--retry-period-seconds=1",
          `--reconcile-interval-seconds=${o.operator?.reconcileIntervalSeconds ?? 5}`,
          `--drain-seconds=${o.operator?.drainSeconds ?? 5}`,
          "--max-surge=8",
          // The only Prometheus MoEDeployments of this stack may query (docs/adr/0007).
          `--prometheus-allowed-urls=${prometheus.url}`,
          `--log-level=${o.operator?.logLevel ?? "info"}`,
          ...(o.operator?.extraArgs ?? []),
        ],
        logFile: join(cluster.dir, "operator.log"),
        cwd: repoRoot(),
      });
    const stack: Stack = {
      cluster,
      prometheus,
      emulator,
      operator: startOperator(),
      async restartOperator() {
        await stack.operator.stop();
        stack.operator = startOperator();
      },
      async stop() {
        await stack.operator.stop();
        for (const p of parts) await p.stop();
      },
    };
    log("operator started");
    return stack;
  } catch (err) {
    for (const p of parts) await p.stop().catch(() => {});
    throw err;
  }
}

/** A cron for the first whole UTC minute at least `leadMs` from nowMs, and that minute's time. */
export function cronForMinuteAfter(nowMs: number, leadMs: number): { cron: string; atMs: number } {
  const at = Math.ceil((nowMs + leadMs) / 60_000) * 60_000;
  const d = new Date(at);
  return { cron: `${d.getUTCMinutes()} ${d.getUTCHours()} * * *`, atMs: at };
}
