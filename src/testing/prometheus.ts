// A real Prometheus (Debian's package) on a loopback port, for tests and the demo.
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { stringify } from "yaml";
import { freePort } from "./ports.ts";
import { startProcess, type ManagedProcess } from "./process.ts";
import { FatalProbeError, httpGet, waitFor } from "./http-probe.ts";

export interface ScrapeConfig {
  jobName: string;
  /** host:port targets. */
  targets: string[];
  metricsPath?: string;
  scrapeIntervalSeconds?: number;
  labels?: Record<string, string>;
}

export interface StartPrometheusOptions {
  scrapeConfigs: ScrapeConfig[];
  scrapeIntervalSeconds?: number;
  evaluationIntervalSeconds?: number;
  binary?: string;
  baseDir?: string;
  keepDir?: boolean;
  /** TSDB retention (default 1d); backfilled history older than it is deleted at start. */
  retentionTime?: string;
  /**
   * OpenMetrics text written into the TSDB before start with `promtool tsdb create-blocks-from
   * openmetrics` (history older than the process: what a restarted operator finds).
   */
  backfillOpenMetrics?: string;
  /** promtool for the backfill; default next to the default binary. */
  promtoolBinary?: string;
}

export interface LocalPrometheus {
  readonly url: string;
  readonly dir: string;
  readonly process: ManagedProcess;
  /** Stop the process but keep its port, config and data (to test an outage). */
  pause(): Promise<void>;
  /** Start it again on the same port with the same data. */
  resume(): Promise<void>;
  /** Replace the scrape configs and reload (POST /-/reload). */
  reconfigure(scrapeConfigs: ScrapeConfig[]): Promise<void>;
  stop(): Promise<void>;
}

export const DEFAULT_PROMETHEUS_BINARY = "/usr/bin/prometheus";

function renderConfig(opts: StartPrometheusOptions, scrapeConfigs: ScrapeConfig[]): string {
  return stringify({
    global: {
      scrape_interval: `${opts.scrapeIntervalSeconds ?? 1}s`,
      evaluation_interval: `${opts.evaluationIntervalSeconds ?? 1}s`,
    },
    scrape_configs: scrapeConfigs.map((c) => ({
      job_name: c.jobName,
      metrics_path: c.metricsPath ?? "/metrics",
      ...(c.scrapeIntervalSeconds ? { scrape_interval: `${c.scrapeIntervalSeconds}s` } : {}),
      static_configs: [{ targets: c.targets, labels: c.labels ?? {} }],
    })),
  });
}

export async function startPrometheus(opts: StartPrometheusOptions): Promise<LocalPrometheus> {
  const binary = opts.binary ?? DEFAULT_PROMETHEUS_BINARY;
  if (!existsSync(binary)) {
    throw new Error(
      `prometheus binary not found at ${binary}: run "make prometheus" (installs Debian's prometheus package)`,
    );
  }
  const dir = mkdtempSync(join(opts.baseDir ?? tmpdir(), "moe-prometheus-"));
  mkdirSync(join(dir, "data"));
  if (opts.backfillOpenMetrics !== undefined) {
    const input = join(dir, "backfill.om");
    writeFileSync(input, opts.backfillOpenMetrics);
    const promtool = opts.promtoolBinary ?? "/usr/bin/promtool";
    try {
      execFileSync(promtool, ["tsdb", "create-blocks-from", "openmetrics", input, join(dir, "data")], {
        stdio: ["ignore", "ignore", "pipe"],
      });
    } catch (err) {
      rmSync(dir, { recursive: true, force: true });
      throw new Error(`promtool backfill failed: ${String((err as { stderr?: Buffer }).stderr ?? err)}`, {
        cause: err,
      });
    }
  }
  const configFile = join(dir, "prometheus.yml");
  writeFileSync(configFile, renderConfig(opts, opts.scrapeConfigs));
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const args = [
    `--config.file=${configFile}`,
    `--storage.tsdb.path=${join(dir, "data")}`,
    `--web.listen-address=127.0.0.1:${port}`,
    "--web.enable-lifecycle",
    `--storage.tsdb.retention.time=${opts.retentionTime ?? "1d"}`,
    "--log.level=warn",
  ];
  let proc: ManagedProcess = startProcess({
    name: "prometheus",
    command: binary,
    args,
    logFile: join(dir, "prometheus.log"),
  });
  const stop = async () => {
    await proc.stop(5_000);
    if (!opts.keepDir) rmSync(dir, { recursive: true, force: true });
  };
  const ready = () =>
    waitFor(
      "prometheus /-/ready",
      async () => {
        if (proc.exitCode !== undefined) throw new FatalProbeError(`prometheus exited: ${proc.logTail()}`);
        return (await httpGet(`${url}/-/ready`)).status === 200 ? true : undefined;
      },
      { timeoutMs: 30_000, intervalMs: 200, onTimeout: () => proc.logTail() },
    );
  try {
    await ready();
  } catch (err) {
    await stop();
    throw err;
  }
  return {
    url,
    dir,
    get process() {
      return proc;
    },
    async pause() {
      await proc.stop(5_000);
    },
    async resume() {
      proc = startProcess({ name: "prometheus", command: binary, args, logFile: join(dir, "prometheus.log") });
      await ready();
    },
    async reconfigure(scrapeConfigs) {
      writeFileSync(configFile, renderConfig(opts, scrapeConfigs));
      const res = await fetch(`${url}/-/reload`, { method: "POST" });
      if (!res.ok) throw new Error(`prometheus reload failed: HTTP ${res.status} ${await res.text()}`);
    },
    stop,
  };
}
