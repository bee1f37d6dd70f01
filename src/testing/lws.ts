// The real LeaderWorkerSet controller (sigs.k8s.io/lws, pinned in hack/lws) as a local process
// beside the test control plane: its CRDs, the manager on free loopback ports, and its
// mutating/validating webhooks registered by URL (https://127.0.0.1:<port>/<path>), since a local
// apiserver has no kube-proxy to reach a Service. See docs/adr/0020-leaderworkerset-local.md.
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parse, parseAllDocuments, stringify } from "yaml";
import type { LwsBins } from "./bins.ts";
import { FatalProbeError, httpGet, waitFor } from "./http-probe.ts";
import { createServingCert, type Pki } from "./pki.ts";
import { freePort } from "./ports.ts";
import { startProcess, type ManagedProcess } from "./process.ts";

type Kubectl = (args: string[], opts?: { input?: string }) => Promise<{ stdout: string; stderr: string; code: number }>;

export interface StartLwsOptions {
  bins: LwsBins;
  /** The cluster's temp dir (config, certificates and lws-manager.log go here). */
  dir: string;
  kubeconfigPath: string;
  pki: Pki;
  kubectl: Kubectl;
  /** The process is pushed here before waiting, so the cluster's stop ends it even when the start fails. */
  procs: ManagedProcess[];
}

interface Webhook {
  name: string;
  clientConfig: { service?: { path?: string }; url?: string; caBundle?: string };
  [k: string]: unknown;
}
interface WebhookConfiguration {
  kind: string;
  metadata: { name: string };
  webhooks: Webhook[];
}
interface JsonPatchOp {
  op: string;
  path: string;
  value: Webhook;
}

/**
 * The module's webhook configurations with its kustomize patches applied (each patch replaces one
 * `/webhooks/<i>` entry; anything else is refused rather than guessed), every clientConfig pointed
 * at `baseUrl` + the service path, with `caBundle`. Names get an `lws-` prefix.
 */
export function localWebhookConfigurations(bins: LwsBins, baseUrl: string, caBundle: string): WebhookConfiguration[] {
  const docs = parseAllDocuments(readFileSync(bins.webhookManifests, "utf8"))
    .map((d) => d.toJSON() as WebhookConfiguration | null)
    .filter((d): d is WebhookConfiguration => d !== null);
  // config/webhook/kustomization.yaml targets the mutating patch at the Mutating... object and the
  // validating one at the Validating... object; the patch file names say which.
  for (const patchFile of bins.webhookPatches) {
    const kind = /mutating/.test(patchFile) ? "MutatingWebhookConfiguration" : "ValidatingWebhookConfiguration";
    const target = docs.find((d) => d.kind === kind);
    if (!target) throw new Error(`${bins.webhookManifests}: no ${kind} for ${patchFile}`);
    for (const op of parse(readFileSync(patchFile, "utf8")) as JsonPatchOp[]) {
      const m = /^\/webhooks\/(\d+)$/.exec(op.path);
      if (op.op !== "replace" || !m || Number(m[1]) >= target.webhooks.length)
        throw new Error(`${patchFile}: unsupported patch ${op.op} ${op.path}`);
      target.webhooks[Number(m[1])] = op.value;
    }
  }
  for (const doc of docs) {
    doc.metadata = { name: `lws-${doc.metadata.name}` };
    for (const w of doc.webhooks) {
      const path = w.clientConfig.service?.path;
      if (!path) throw new Error(`${bins.webhookManifests}: webhook ${w.name} has no service path`);
      w.clientConfig = { url: `${baseUrl}${path}`, caBundle };
    }
  }
  return docs;
}

/** The manager's Configuration (config.lws.x-k8s.io/v1alpha1): no leader election, no internal certs, no metrics. */
function managerConfig(webhookPort: number, healthPort: number, certDir: string): string {
  return stringify({
    apiVersion: "config.lws.x-k8s.io/v1alpha1",
    kind: "Configuration",
    leaderElection: { leaderElect: false },
    // The webhook certificate comes from the cluster CA (below); LWS's own rotator would write a
    // Secret and patch webhook configurations that point at a Service this cluster cannot reach.
    internalCertManagement: { enable: false },
    webhook: { host: "127.0.0.1", port: webhookPort, certDir },
    health: { healthProbeBindAddress: `127.0.0.1:${healthPort}` },
    // "0" turns the metrics server off (controller-runtime); nothing here scrapes it.
    metrics: { bindAddress: "0" },
  });
}

async function mustKubectl(kubectl: Kubectl, what: string, args: string[], input?: string): Promise<string> {
  const r = await kubectl(args, input === undefined ? {} : { input });
  if (r.code !== 0) throw new Error(`${what}: kubectl ${args.join(" ")} failed: ${r.stderr || r.stdout}`);
  return r.stdout;
}

/** A minimal LeaderWorkerSet for a server-side dry run: it passes through both LWS webhooks. */
const PROBE_LWS = {
  apiVersion: "leaderworkerset.x-k8s.io/v1",
  kind: "LeaderWorkerSet",
  metadata: { name: "webhook-probe", namespace: "default" },
  spec: {
    replicas: 1,
    leaderWorkerTemplate: {
      size: 1,
      workerTemplate: { spec: { containers: [{ name: "c", image: "probe" }] } },
    },
  },
};

/**
 * Install the LWS CRDs, start the manager and register its webhooks. Resolves once a server-side
 * dry-run create of a LeaderWorkerSet went through the webhooks (so the webhooks answer).
 */
export async function startLws(o: StartLwsOptions): Promise<ManagedProcess> {
  // The CRDs are too large for client-side apply's last-applied annotation: create them.
  for (const crd of o.bins.crds) await mustKubectl(o.kubectl, "LWS CRD", ["create", "-f", crd]);
  await mustKubectl(o.kubectl, "LWS CRDs established", [
    "wait",
    "--for=condition=Established",
    "--timeout=60s",
    "crd/leaderworkersets.leaderworkerset.x-k8s.io",
    "crd/disaggregatedsets.disaggregatedset.x-k8s.io",
  ]);

  const [webhookPort, healthPort] = await Promise.all([freePort(), freePort()]);
  const certDir = join(o.dir, "lws-certs");
  mkdirSync(certDir, { recursive: true });
  const serving = createServingCert(o.pki, "lws-webhook");
  // controller-runtime's webhook server reads tls.crt / tls.key from certDir.
  copyFileSync(serving.cert, join(certDir, "tls.crt"));
  copyFileSync(serving.key, join(certDir, "tls.key"));
  const configPath = join(o.dir, "lws-config.yaml");
  writeFileSync(configPath, managerConfig(webhookPort, healthPort, certDir));

  const manager = startProcess({
    name: "lws-manager",
    command: o.bins.manager,
    args: [`--config=${configPath}`, "--zap-devel=false", "--zap-log-level=info"],
    env: { ...process.env, KUBECONFIG: o.kubeconfigPath },
    logFile: join(o.dir, "lws-manager.log"),
  });
  o.procs.push(manager);
  const running = () => {
    if (manager.exitCode !== undefined)
      throw new FatalProbeError(`lws-manager exited with ${String(manager.exitCode)}:\n${manager.logTail()}`);
  };
  await waitFor(
    "lws-manager /readyz",
    async () => {
      running();
      return (await httpGet(`http://127.0.0.1:${healthPort}/readyz`)).status === 200 ? true : undefined;
    },
    { timeoutMs: 60_000, intervalMs: 200, onTimeout: () => manager.logTail() },
  );

  const caBundle = readFileSync(o.pki.caCert).toString("base64");
  const configs = localWebhookConfigurations(o.bins, `https://127.0.0.1:${webhookPort}`, caBundle);
  await mustKubectl(o.kubectl, "LWS webhooks", ["apply", "-f", "-"], configs.map((c) => stringify(c)).join("---\n"));
  await waitFor(
    "LWS webhooks answer",
    async () => {
      running();
      const r = await o.kubectl(["create", "--dry-run=server", "-o", "name", "-f", "-"], {
        input: JSON.stringify(PROBE_LWS),
      });
      return r.code === 0 ? true : undefined;
    },
    { timeoutMs: 60_000, intervalMs: 500, onTimeout: () => manager.logTail() },
  );
  return manager;
}
