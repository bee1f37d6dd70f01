// Runs the real operator binary (node src/main.ts) as a child process against a
// local cluster, with its JSON logs in a file.
import { join } from "node:path";
import { repoRoot } from "../../src/testing/bins.ts";
import { startProcess, type ManagedProcess } from "../../src/testing/process.ts";

export interface OperatorProcessOptions {
  kubeconfigPath: string;
  dir: string;
  identity: string;
  reconcileIntervalSeconds?: number;
  drainSeconds?: number;
  leaderElect?: boolean;
  extraArgs?: string[];
}

export function startOperatorProcess(o: OperatorProcessOptions): ManagedProcess {
  const root = repoRoot();
  return startProcess({
    name: `operator-${o.identity}`,
    command: join(root, "node_modules", ".bin", "node"),
    args: [
      join(root, "src", "main.ts"),
      `--kubeconfig=${o.kubeconfigPath}`,
      "--metrics-bind-address=127.0.0.1:0",
      "--health-probe-bind-address=127.0.0.1:0",
      `--leader-elect=${o.leaderElect ?? true}`,
      "--leader-election-namespace=default",
      `--identity=${o.identity}`,
      "--lease-duration-seconds=6",
      "--renew-deadline-seconds=4",
      "--retry-period-seconds=1",
      `--reconcile-interval-seconds=${o.reconcileIntervalSeconds ?? 2}`,
      `--drain-seconds=${o.drainSeconds ?? 2}`,
      "--max-surge=4",
      "--log-level=debug",
      ...(o.extraArgs ?? []),
    ],
    logFile: join(o.dir, `operator-${o.identity}.log`),
    cwd: root,
  });
}
