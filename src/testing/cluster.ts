// A real, embedded Kubernetes control plane for tests and the demo:
// etcd + kube-apiserver (TLS, generated CA, admin client certificate) +
// kube-scheduler + kube-controller-manager + kwok with fake GPU nodes (and, opt-in,
// the LeaderWorkerSet controller with its webhooks), all as local processes on free
// loopback ports in a temp dir, torn down by PID.
import { mkdtempSync, mkdirSync, writeFileSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { spawn } from "node:child_process";
import { KubeConfig, CoreV1Api, type V1Node } from "@kubernetes/client-node";
import { controlPlaneBins, lwsBins, type ControlPlaneBins } from "./bins.ts";
import { createClientCert, createPki, renderKubeconfig, type Pki } from "./pki.ts";
import { freePort } from "./ports.ts";
import { startProcess, type ManagedProcess } from "./process.ts";
import { FatalProbeError, httpGet, waitFor } from "./http-probe.ts";
import { gpuNodesFor, type GpuNodePool } from "./gpu-nodes.ts";
import { startLws } from "./lws.ts";

export interface StartClusterOptions {
  /** Used in the temp dir name and the kubeconfig context. */
  name?: string;
  gpuNodes?: GpuNodePool[];
  /** Write an audit log of write requests (for counting the operator's writes). */
  audit?: boolean;
  /** With `audit`: also log every request (reads and watches too) of these users. */
  auditAllRequestsOf?: string[];
  /** Parent dir for the cluster's temp dir (default: the OS temp dir). */
  baseDir?: string;
  /** Keep the temp dir (logs, kubeconfig) after stop. */
  keepDir?: boolean;
  /** Override where the control-plane binaries are (default: build/cache via hack/build-bins.sh). */
  binDir?: string;
  /**
   * Also run the LeaderWorkerSet controller (hack/build-lws.sh) with its CRDs and webhooks
   * (src/testing/lws.ts); its log is lws-manager.log in the cluster dir.
   */
  lws?: boolean;
  /** Progress messages (default: silent). */
  log?: (message: string) => void;
}

export interface KubectlResult {
  stdout: string;
  stderr: string;
  code: number;
}

export interface LocalCluster {
  readonly name: string;
  readonly dir: string;
  readonly server: string;
  readonly kubeconfigPath: string;
  readonly kubeConfig: KubeConfig;
  readonly auditLogPath: string | undefined;
  readonly bins: ControlPlaneBins;
  readonly pki: Pki;
  /** Milliseconds from start to a ready control plane with Ready GPU nodes. */
  readonly startupMs: number;
  readonly processes: readonly ManagedProcess[];
  kubectl(args: string[], opts?: { input?: string }): Promise<KubectlResult>;
  addGpuNodes(pools: GpuNodePool[]): Promise<V1Node[]>;
  /** A kubeconfig file for another user (client certificate), e.g. to tell writers apart in the audit log. */
  kubeconfigFor(user: string, groups?: string[]): string;
  stop(): Promise<void>;
}

function auditPolicy(allRequestsOf: string[]): string {
  const users = allRequestsOf.length ? `- level: Metadata\n  users: ${JSON.stringify(allRequestsOf)}\n` : "";
  return `apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived"]
rules:
- level: Metadata
  verbs: ["create", "update", "patch", "delete", "deletecollection"]
${users}- level: None
`;
}

interface Ports {
  readonly etcd: number;
  readonly api: number;
  readonly scheduler: number;
  readonly controllerManager: number;
  readonly kwok: number;
}

/** Start etcd (its process is pushed onto procs before waiting, so a failed start is stopped). */
async function startEtcd(bins: ControlPlaneBins, dir: string, port: number, procs: ManagedProcess[]): Promise<void> {
  const etcd = startProcess({
    name: "etcd",
    command: bins.etcd,
    args: [
      `--data-dir=${mkdirP(join(dir, "etcd"))}`,
      `--listen-client-urls=http://127.0.0.1:${port}`,
      `--advertise-client-urls=http://127.0.0.1:${port}`,
      "--listen-peer-urls=http://127.0.0.1:0",
      "--unsafe-no-fsync",
      "--log-level=warn",
      "--quota-backend-bytes=2147483648",
    ],
    logFile: join(dir, "etcd.log"),
  });
  procs.push(etcd);
  await waitFor(
    "etcd health",
    async () => {
      assertRunning(etcd);
      const r = await httpGet(`http://127.0.0.1:${port}/health`);
      return r.status === 200 && r.body.includes("true") ? true : undefined;
    },
    { timeoutMs: 30_000, onTimeout: () => etcd.logTail() },
  );
}

/** Start kube-apiserver on etcd and wait for /readyz; returns its URL and the audit log path (when auditing). */
async function startApiserver(
  bins: ControlPlaneBins,
  dir: string,
  pki: Pki,
  ports: Ports,
  opts: StartClusterOptions,
  procs: ManagedProcess[],
): Promise<{ server: string; auditLogPath: string | undefined }> {
  const auditLogPath = opts.audit ? join(dir, "audit.log") : undefined;
  const auditArgs: string[] = [];
  if (auditLogPath) {
    const policy = join(dir, "audit-policy.yaml");
    writeFileSync(policy, auditPolicy(opts.auditAllRequestsOf ?? []));
    auditArgs.push(
      `--audit-policy-file=${policy}`,
      `--audit-log-path=${auditLogPath}`,
      "--audit-log-format=json",
      "--audit-log-mode=blocking",
    );
  }
  const apiserver = startProcess({
    name: "kube-apiserver",
    command: bins.kubeApiserver,
    args: [
      `--etcd-servers=http://127.0.0.1:${ports.etcd}`,
      `--cert-dir=${mkdirP(join(dir, "apiserver-certs"))}`,
      "--bind-address=127.0.0.1",
      "--advertise-address=127.0.0.1",
      `--secure-port=${ports.api}`,
      `--tls-cert-file=${pki.servingCert}`,
      `--tls-private-key-file=${pki.servingKey}`,
      `--client-ca-file=${pki.caCert}`,
      `--service-account-key-file=${pki.serviceAccountPub}`,
      `--service-account-signing-key-file=${pki.serviceAccountKey}`,
      "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
      "--service-cluster-ip-range=10.0.0.0/24",
      "--authorization-mode=RBAC",
      "--disable-admission-plugins=ServiceAccount,TaintNodesByCondition",
      "--endpoint-reconciler-type=none",
      "--allow-privileged=true",
      "--profiling=false",
      "--v=0",
      ...auditArgs,
    ],
    logFile: join(dir, "kube-apiserver.log"),
  });
  procs.push(apiserver);
  const server = `https://127.0.0.1:${ports.api}`;
  const tls = { ca: readFileSync(pki.caCert), cert: readFileSync(pki.adminCert), key: readFileSync(pki.adminKey) };
  await waitFor(
    "kube-apiserver /readyz",
    async () => {
      assertRunning(apiserver);
      const r = await httpGet(`${server}/readyz`, tls);
      return r.status === 200 ? true : undefined;
    },
    { timeoutMs: 60_000, intervalMs: 200, onTimeout: () => apiserver.logTail() },
  );
  return { server, auditLogPath };
}

/** Start kube-scheduler, kube-controller-manager and kwok in parallel; wait for the first two to be healthy. Returns kwok. */
async function startClients(
  bins: ControlPlaneBins,
  dir: string,
  pki: Pki,
  ports: Ports,
  kubeconfigPath: string,
  procs: ManagedProcess[],
): Promise<ManagedProcess> {
  const common = [
    `--kubeconfig=${kubeconfigPath}`,
    `--authentication-kubeconfig=${kubeconfigPath}`,
    `--authorization-kubeconfig=${kubeconfigPath}`,
    "--leader-elect=false",
    "--bind-address=127.0.0.1",
  ];
  const scheduler = startProcess({
    name: "kube-scheduler",
    command: bins.kubeScheduler,
    args: [...common, `--secure-port=${ports.scheduler}`, "--v=1"],
    logFile: join(dir, "kube-scheduler.log"),
  });
  procs.push(scheduler);
  const controllerManager = startProcess({
    name: "kube-controller-manager",
    command: bins.kubeControllerManager,
    args: [
      ...common,
      `--secure-port=${ports.controllerManager}`,
      `--service-account-private-key-file=${pki.serviceAccountKey}`,
      `--root-ca-file=${pki.caCert}`,
      `--cluster-signing-cert-file=${pki.caCert}`,
      `--cluster-signing-key-file=${pki.caKey}`,
      "--use-service-account-credentials=false",
      "--controllers=*",
      "--concurrent-gc-syncs=10",
      "--v=1",
    ],
    logFile: join(dir, "kube-controller-manager.log"),
  });
  procs.push(controllerManager);
  const kwok = startProcess({
    name: "kwok",
    command: bins.kwok,
    args: [
      `--kubeconfig=${kubeconfigPath}`,
      `--config=${bins.kwokStages}`,
      "--manage-all-nodes=false",
      "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
      "--disregard-status-with-annotation-selector=kwok.x-k8s.io/status=custom",
      `--server-address=127.0.0.1:${ports.kwok}`,
      "--node-lease-duration-seconds=40",
      "--cidr=10.244.0.0/16",
      "--node-ip=10.244.0.1",
    ],
    logFile: join(dir, "kwok.log"),
  });
  procs.push(kwok);

  const insecure = { insecure: true };
  const healthy = (what: string, p: ManagedProcess, port: number) =>
    waitFor(
      `${what} /healthz`,
      async () => {
        assertRunning(p);
        return (await httpGet(`https://127.0.0.1:${port}/healthz`, insecure)).status === 200 ? true : undefined;
      },
      { timeoutMs: 60_000, intervalMs: 200, onTimeout: () => p.logTail() },
    );
  await Promise.all([
    healthy("kube-scheduler", scheduler, ports.scheduler),
    healthy("kube-controller-manager", controllerManager, ports.controllerManager),
  ]);
  return kwok;
}

/** Create fake GPU nodes and wait until kwok reports them Ready. */
function gpuNodeAdder(core: CoreV1Api, kwok: ManagedProcess): (pools: GpuNodePool[]) => Promise<V1Node[]> {
  return async (pools) => {
    const nodes = gpuNodesFor(pools);
    for (const n of nodes) await core.createNode({ body: n });
    const names = new Set(nodes.map((n) => n.metadata!.name!));
    await waitFor(
      `${names.size} fake GPU nodes Ready`,
      async () => {
        assertRunning(kwok);
        const list = await core.listNode({ labelSelector: "type=kwok" });
        const ready = list.items.filter(
          (n) =>
            names.has(n.metadata!.name!) &&
            n.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True"),
        );
        return ready.length === names.size ? true : undefined;
      },
      { timeoutMs: 60_000, intervalMs: 200, onTimeout: () => kwok.logTail() },
    );
    return nodes;
  };
}

export async function startCluster(opts: StartClusterOptions = {}): Promise<LocalCluster> {
  const t0 = Date.now();
  const log = opts.log ?? (() => {});
  const name = opts.name ?? "moe-local";
  const bins = controlPlaneBins(opts.binDir);
  const lws = opts.lws ? lwsBins() : undefined;
  const dir = mkdtempSync(join(opts.baseDir ?? tmpdir(), `moe-cluster-${name}-`));
  const procs: ManagedProcess[] = [];
  let stopped = false;

  const stopAll = async () => {
    if (stopped) return;
    stopped = true;
    // Reverse start order: clients first, etcd last.
    for (const p of [...procs].reverse()) await p.stop(p.name === "etcd" ? 10_000 : 5_000);
    if (!opts.keepDir) rmSync(dir, { recursive: true, force: true });
  };

  try {
    const pki = createPki(mkdirP(join(dir, "pki")));
    const [etcd, api, scheduler, controllerManager, kwokPort] = await Promise.all([
      freePort(),
      freePort(),
      freePort(),
      freePort(),
      freePort(),
    ]);
    const ports: Ports = { etcd, api, scheduler, controllerManager, kwok: kwokPort };

    await startEtcd(bins, dir, ports.etcd, procs);
    log(`etcd ready (${Date.now() - t0} ms)`);
    const { server, auditLogPath } = await startApiserver(bins, dir, pki, ports, opts, procs);
    log(`kube-apiserver ready at ${server} (${Date.now() - t0} ms)`);

    const kubeconfigPath = join(dir, "kubeconfig");
    writeFileSync(
      kubeconfigPath,
      renderKubeconfig({ server, caCertFile: pki.caCert, certFile: pki.adminCert, keyFile: pki.adminKey, name }),
      { mode: 0o600 },
    );
    const kubeConfig = new KubeConfig();
    kubeConfig.loadFromFile(kubeconfigPath);

    const kwok = await startClients(bins, dir, pki, ports, kubeconfigPath, procs);
    log(`scheduler and controller-manager healthy (${Date.now() - t0} ms)`);

    const core = kubeConfig.makeApiClient(CoreV1Api);
    // The default namespace and its ServiceAccount exist before tests use them.
    await waitFor(
      "namespace default",
      async () => ((await core.readNamespace({ name: "default" })) ? true : undefined),
      { timeoutMs: 30_000 },
    );

    const kubectl = kubectlWith(bins.kubectl, kubeconfigPath);
    if (lws) {
      await startLws({ bins: lws, dir, kubeconfigPath, pki, kubectl, procs });
      log(`LeaderWorkerSet controller ready (${Date.now() - t0} ms)`);
    }
    const addGpuNodes = gpuNodeAdder(core, kwok);
    if (opts.gpuNodes?.length) await addGpuNodes(opts.gpuNodes);
    const startupMs = Date.now() - t0;
    log(`cluster "${name}" ready in ${startupMs} ms (dir ${dir})`);

    return {
      name,
      dir,
      server,
      kubeconfigPath,
      kubeConfig,
      auditLogPath,
      bins,
      pki,
      startupMs,
      processes: procs,
      kubectl,
      addGpuNodes,
      kubeconfigFor(user, groups = ["system:masters"]) {
        const { cert, key } = createClientCert(pki, user, groups);
        const path = join(dir, `kubeconfig-${user.replace(/[^a-zA-Z0-9-]/g, "-")}`);
        writeFileSync(path, renderKubeconfig({ server, caCertFile: pki.caCert, certFile: cert, keyFile: key, name }), {
          mode: 0o600,
        });
        return path;
      },
      stop: stopAll,
    };
  } catch (err) {
    const logs = procs.map((p) => `--- ${p.name} (exit ${String(p.exitCode)}) ---\n${p.logTail(15)}`).join("\n");
    opts.keepDir = true; // keep logs for diagnosis
    await stopAll();
    throw new Error(`local cluster failed to start (logs in ${dir})\n${logs}`, { cause: err });
  }
}

/**
 * Runs kubectl with the given kubeconfig; resolves with its output and exit code. `kubectl wait
 * --for=condition=...` fails at once on an object whose status has no conditions yet ("accessor
 * error: <nil> is of the type <nil>", seen for a CRD right after apply on a loaded machine) instead
 * of waiting; such a wait is retried for up to 60 s.
 */
export function kubectlWith(kubectlBin: string, kubeconfigPath: string) {
  const once = kubectlOnce(kubectlBin, kubeconfigPath);
  return async (args: string[], o: { input?: string } = {}): Promise<KubectlResult> => {
    const deadline = Date.now() + 60_000;
    for (;;) {
      const r = await once(args, o);
      const noConditionsYet = args[0] === "wait" && r.code !== 0 && /accessor error: <nil>/.test(r.stderr);
      if (!noConditionsYet || Date.now() > deadline) return r;
      await new Promise((done) => setTimeout(done, 250));
    }
  };
}

function kubectlOnce(kubectlBin: string, kubeconfigPath: string) {
  return (args: string[], o: { input?: string } = {}): Promise<KubectlResult> =>
    new Promise((resolve, reject) => {
      const child = spawn(kubectlBin, args, {
        env: { ...process.env, KUBECONFIG: kubeconfigPath },
        stdio: ["pipe", "pipe", "pipe"],
      });
      let stdout = "";
      let stderr = "";
      child.stdout.setEncoding("utf8").on("data", (c: string) => (stdout += c));
      child.stderr.setEncoding("utf8").on("data", (c: string) => (stderr += c));
      child.on("error", (err) => reject(new Error("kubectl could not start", { cause: err })));
      child.on("close", (code) => resolve({ stdout, stderr, code: code ?? -1 }));
      // kubectl may exit before reading its input (EPIPE): its exit code and stderr say why.
      child.stdin.on("error", () => undefined);
      child.stdin.end(o.input ?? "");
    });
}

function mkdirP(path: string): string {
  mkdirSync(path, { recursive: true });
  return path;
}

function assertRunning(p: ManagedProcess): void {
  if (p.exitCode !== undefined)
    throw new FatalProbeError(`${p.name} exited with ${String(p.exitCode)}:\n${p.logTail()}`);
}
