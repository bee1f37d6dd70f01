// The operator's container image (`make image`) run the way the Helm chart runs it,
// against the local control plane: the container spec comes from `helm template` (its
// args, user, read-only root, dropped capabilities, no privilege escalation, the /tmp
// emptyDir) and its credentials are the chart's ServiceAccount token, mounted where the
// kubelet mounts it (in-cluster config). It must report ready on its health port, take
// the Lease and bring a MoEDeployment to Ready=True.
//
// Skips, with the reason in its name, where no container engine can run a container.
// Where one can, the image must have been built (`make image`; `make test` builds it).
import { execFile } from "node:child_process";
import { chmodSync, copyFileSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseAllDocuments } from "yaml";
import type { V1Container, V1Deployment } from "@kubernetes/client-node";
import { startCluster, type LocalCluster } from "../../src/testing/cluster.ts";
import { waitFor } from "../../src/testing/http-probe.ts";
import { freePort } from "../../src/testing/ports.ts";
import { CHART_DIR, helmPath } from "../../hack/sync-packaging.ts";
import { heatConfigMap, skewedHeat, testMoEDeployment } from "../support/moe-fixtures.ts";
import { applyJson, condition, waitForStatus } from "../support/kube-helpers.ts";

const IMAGE = process.env.MOE_OPERATOR_IMAGE ?? "localhost/moe-operator:dev";
const NS = "moe-system";
const CONTAINER = `moe-operator-image-test-${process.pid}`;
const POD_NAME = "moe-operator-image-test";

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function run(command: string, args: string[], timeoutMs = 60_000, env?: NodeJS.ProcessEnv): Promise<Run> {
  return new Promise((resolve) => {
    execFile(
      command,
      args,
      { timeout: timeoutMs, maxBuffer: 32 * 1024 * 1024, env: env ?? process.env },
      (err, stdout, stderr) =>
        resolve({
          code: err ? (typeof err.code === "number" ? err.code : 1) : 0,
          stdout,
          stderr: stderr || (err && typeof err.code !== "number" ? String(err.message) : ""),
        }),
    );
  });
}

/** The engine to use, or why none can run a container here. */
async function findEngine(): Promise<{ engine: string } | { skip: string }> {
  const candidates = process.env.CONTAINER_ENGINE ? [process.env.CONTAINER_ENGINE] : ["podman", "docker"];
  const reasons: string[] = [];
  for (const engine of candidates) {
    const info = await run(engine, ["info"], 30_000);
    if (info.code === 0) return { engine };
    reasons.push(`${engine}: ${(info.stderr || info.stdout).trim().split("\n")[0] || `exit ${info.code}`}`);
  }
  return { skip: `no container engine can run here (${reasons.join("; ")})` };
}

const found = await findEngine();
const engine = "engine" in found ? found.engine : "";
const title =
  "engine" in found ? `the image ${IMAGE} under the chart's settings (${engine})` : `the image: skipped, ${found.skip}`;

let cluster: LocalCluster;
let started = false;

async function helm(args: string[]): Promise<Run> {
  const home = join(cluster.dir, "helm");
  return run(helmPath(), [...args, "--kubeconfig", cluster.kubeconfigPath], 120_000, {
    ...process.env,
    HELM_CONFIG_HOME: join(home, "config"),
    HELM_CACHE_HOME: join(home, "cache"),
    HELM_DATA_HOME: join(home, "data"),
  });
}

/** The operator Deployment the chart renders, with the given values. */
async function chartDeployment(set: string[]): Promise<V1Deployment> {
  const r = await helm(["template", "moe-operator", CHART_DIR, "-n", NS, ...set.flatMap((s) => ["--set", s])]);
  expect(r.code, r.stderr).toBe(0);
  const dep = parseAllDocuments(r.stdout)
    .map((d) => d.toJS() as V1Deployment)
    .find((o) => o?.kind === "Deployment");
  if (!dep) throw new Error("helm template rendered no Deployment");
  return dep;
}

/** podman/docker run flags for what the chart's pod and container securityContext and volumes ask. */
function runFlags(dep: V1Deployment, c: V1Container): string[] {
  const pod = dep.spec!.template.spec!;
  const sc = c.securityContext ?? {};
  const psc = pod.securityContext ?? {};
  const flags: string[] = [];
  const uid = sc.runAsUser ?? psc.runAsUser;
  const gid = sc.runAsGroup ?? psc.runAsGroup;
  if (uid !== undefined) flags.push(`--user=${uid}${gid !== undefined ? `:${gid}` : ""}`);
  if (sc.readOnlyRootFilesystem) flags.push("--read-only");
  if (sc.allowPrivilegeEscalation === false) flags.push("--security-opt=no-new-privileges");
  for (const cap of sc.capabilities?.drop ?? []) flags.push(`--cap-drop=${cap}`);
  for (const m of c.volumeMounts ?? []) {
    const v = pod.volumes?.find((x) => x.name === m.name);
    if (!v?.emptyDir)
      throw new Error(`the chart mounts volume ${m.name}, which this test does not know how to provide`);
    flags.push(
      `--tmpfs=${m.mountPath}:rw,mode=1777${v.emptyDir.sizeLimit ? `,size=${String(v.emptyDir.sizeLimit).replace(/i$/, "").toLowerCase()}` : ""}`,
    );
  }
  return flags;
}

describe.skipIf(!engine)(title, () => {
  let healthPort = 0;

  beforeAll(async () => {
    const inspect = await run(engine, ["image", "inspect", IMAGE]);
    if (inspect.code !== 0)
      throw new Error(
        `${engine} has no image ${IMAGE}: build it with \`make image\` (${inspect.stderr.trim().split("\n")[0]})`,
      );
    cluster = await startCluster({
      name: "image",
      gpuNodes: [
        {
          pool: "h100",
          count: 1,
          gpusPerNode: 8,
          gpuProduct: "NVIDIA-H100-80GB-HBM3",
          gpuMemoryMiB: 81559,
          priceUsdPerGpuHour: 2,
        },
      ],
    });
    // The chart's CRD, RBAC and ServiceAccount; no operator pods (the container below is the operator).
    const install = await helm([
      "install",
      "moe-operator",
      CHART_DIR,
      "-n",
      NS,
      "--create-namespace",
      "--set",
      "replicaCount=0",
    ]);
    expect(install.code, install.stdout + install.stderr).toBe(0);
    const crd = await cluster.kubectl([
      "wait",
      "--for=condition=Established",
      "crd/moedeployments.moe.dev",
      "--timeout=60s",
    ]);
    expect(crd.code, crd.stderr).toBe(0);
  });

  afterAll(async () => {
    if (started) {
      if (process.env.MOE_TEST_VERBOSE) console.log((await run(engine, ["logs", "--tail=80", CONTAINER])).stdout);
      await run(engine, ["rm", "-f", "-t", "2", CONTAINER]);
    }
    await cluster?.stop();
  });

  it("the image runs as a non-root user", async () => {
    const user = await run(engine, ["image", "inspect", "--format", "{{.Config.User}}", IMAGE]);
    expect(user.code, user.stderr).toBe(0);
    const uid = Number(user.stdout.trim().split(":")[0]);
    expect(Number.isInteger(uid) && uid > 0, `USER is ${JSON.stringify(user.stdout.trim())}`).toBe(true);
  });

  it("runs with the chart's args and securityContext on the ServiceAccount token, reports ready, leads and writes status", async () => {
    const [metricsPort, health] = [await freePort(), await freePort()];
    healthPort = health;
    // Host network (the API server listens on loopback only), so the ports are moved off the chart's defaults.
    const dep = await chartDeployment(["replicaCount=1", `ports.metrics=${metricsPort}`, `ports.health=${healthPort}`]);
    const c = dep.spec!.template.spec!.containers.find((x) => x.name === "operator")!;
    const flags = runFlags(dep, c);
    expect(flags).toEqual(
      expect.arrayContaining(["--read-only", "--security-opt=no-new-privileges", "--cap-drop=ALL"]),
    );

    // What the kubelet mounts for the ServiceAccount, readable by the container's user.
    const token = await cluster.kubectl(["create", "token", "moe-operator", "-n", NS, "--duration=1h"]);
    expect(token.code, token.stderr).toBe(0);
    const sa = join(cluster.dir, "serviceaccount");
    mkdirSync(sa, { recursive: true });
    writeFileSync(join(sa, "token"), token.stdout.trim());
    writeFileSync(join(sa, "namespace"), NS);
    copyFileSync(cluster.pki.caCert, join(sa, "ca.crt"));
    for (const f of ["token", "namespace", "ca.crt"]) chmodSync(join(sa, f), 0o644);
    chmodSync(sa, 0o755);
    const server = new URL(cluster.server);

    const args = [
      "run",
      "-d",
      "--name",
      CONTAINER,
      "--network=host",
      ...flags,
      "-e",
      `POD_NAME=${POD_NAME}`,
      "-e",
      `POD_NAMESPACE=${NS}`,
      "-e",
      `KUBERNETES_SERVICE_HOST=${server.hostname}`,
      "-e",
      `KUBERNETES_SERVICE_PORT=${server.port}`,
      "-v",
      `${sa}:/var/run/secrets/kubernetes.io/serviceaccount:ro`,
      IMAGE,
      ...(c.args ?? []),
    ];
    const r = await run(engine, args);
    expect(r.code, `${engine} ${args.join(" ")}\n${r.stderr}`).toBe(0);
    started = true;
    const logs = async () => {
      const l = await run(engine, ["logs", "--tail=30", CONTAINER]);
      return l.stdout + l.stderr;
    };
    let lastLogs = "";

    await waitFor(
      "the container's /readyz to answer 200",
      async () => {
        const state = await run(engine, ["inspect", "--format", "{{.State.Running}}", CONTAINER]);
        lastLogs = await logs();
        if (state.stdout.trim() !== "true") throw new Error(`the container stopped:\n${lastLogs}`);
        const res = await fetch(`http://127.0.0.1:${healthPort}/readyz`, { signal: AbortSignal.timeout(2_000) }).catch(
          () => undefined,
        );
        return res?.status === 200 ? true : undefined;
      },
      { timeoutMs: 60_000, intervalMs: 1_000, onTimeout: () => lastLogs },
    );

    // The process itself: the chart's user, and the image's entrypoint with the chart's args.
    const pid = (await run(engine, ["inspect", "--format", "{{.State.Pid}}", CONTAINER])).stdout.trim();
    const status = readFileSync(`/proc/${pid}/status`, "utf8");
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").filter(Boolean);
    const uid = dep.spec!.template.spec!.securityContext?.runAsUser ?? c.securityContext?.runAsUser;
    expect(uid).toBeGreaterThan(0);
    expect(status).toMatch(new RegExp(`^Uid:\\s+${uid}\\s`, "m"));
    const entrypoint = JSON.parse(
      (await run(engine, ["image", "inspect", "--format", "{{json .Config.Entrypoint}}", IMAGE])).stdout,
    ) as string[];
    expect(entrypoint.at(-1)).toBe("dist/main.js");
    expect(cmdline).toEqual([...entrypoint, ...(c.args ?? [])]);

    await applyJson(cluster, heatConfigMap("img-heat", "default", skewedHeat(3_000, [1, 2])));
    await applyJson(cluster, testMoEDeployment("img", "default"));
    const s = await waitForStatus(
      cluster,
      "img",
      "Ready=True",
      (st) => condition(st, "Ready")?.status === "True",
      120_000,
    );
    expect(s.currentShards).toBe(4);
    const lease = await cluster.kubectl([
      "get",
      "lease",
      "-n",
      NS,
      "moe-operator-leader",
      "-o",
      "jsonpath={.spec.holderIdentity}",
    ]);
    expect(lease.stdout).toMatch(new RegExp(`^${POD_NAME}`));
  });
});
