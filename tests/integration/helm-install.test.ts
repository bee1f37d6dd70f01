// Installing moe-operator the way a platform team does, against a real control plane:
// the kustomize base and the local overlay render and pass a server-side dry run
// (Pod Security "restricted" raises no warning); `helm install --wait` succeeds (the
// operator pods are admitted under "restricted" and become Ready on a kwok node);
// every chart object is accepted by the API server; `helm uninstall` leaves only the
// CRD (and the MoEDeployments, which live as long as it does).
import { execFile } from "node:child_process";
import { mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseAllDocuments } from "yaml";
import type { V1Deployment } from "@kubernetes/client-node";
import { startCluster, type LocalCluster } from "../../src/testing/cluster.ts";
import { BASE_DIR, CHART_DIR, ROOT, helmPath } from "../../hack/sync-packaging.ts";

const NS = "moe-system";
const RELEASE = "moe-operator";
const INSTANCE = `app.kubernetes.io/instance=${RELEASE}`;
const OVERLAY_DIR = join(ROOT, "deploy", "overlays", "local");

let cluster: LocalCluster;
let helmBin: string;

interface Result {
  stdout: string;
  stderr: string;
  code: number;
}

function helm(args: string[]): Promise<Result> {
  const home = join(cluster.dir, "helm");
  mkdirSync(home, { recursive: true });
  return new Promise((resolve) => {
    execFile(
      helmBin,
      [...args, "--kubeconfig", cluster.kubeconfigPath],
      {
        env: {
          ...process.env,
          HELM_CONFIG_HOME: join(home, "config"),
          HELM_CACHE_HOME: join(home, "cache"),
          HELM_DATA_HOME: join(home, "data"),
        },
        maxBuffer: 32 * 1024 * 1024,
      },
      (err, stdout, stderr) =>
        resolve({ stdout, stderr, code: err ? (typeof err.code === "number" ? err.code : 1) : 0 }),
    );
  });
}

async function kubectl(args: string[], input?: string): Promise<Result> {
  return cluster.kubectl(args, input === undefined ? {} : { input });
}

async function namesWithInstanceLabel(kinds: string, allNamespaces = true): Promise<string[]> {
  const r = await kubectl([
    "get",
    kinds,
    "-l",
    INSTANCE,
    ...(allNamespaces ? ["-A"] : []),
    "-o",
    "name",
    "--ignore-not-found",
  ]);
  expect(r.code, r.stderr).toBe(0);
  return r.stdout.split("\n").filter(Boolean).sort();
}

const NAMESPACED_KINDS =
  "deployments.apps,replicasets.apps,pods,services,serviceaccounts,configmaps,roles.rbac.authorization.k8s.io,rolebindings.rbac.authorization.k8s.io,poddisruptionbudgets.policy,networkpolicies.networking.k8s.io";
const PROMETHEUS_URL = "http://prometheus-operated.monitoring.svc:9090";
const CLUSTER_KINDS =
  "clusterroles.rbac.authorization.k8s.io,clusterrolebindings.rbac.authorization.k8s.io,validatingadmissionpolicies.admissionregistration.k8s.io,validatingadmissionpolicybindings.admissionregistration.k8s.io";

beforeAll(async () => {
  helmBin = helmPath();
  // One small CPU node (kwok) so the operator's pods get scheduled and become Ready.
  cluster = await startCluster({
    name: "helm",
    gpuNodes: [
      {
        pool: "sys",
        count: 1,
        gpusPerNode: 0,
        gpuProduct: "none",
        gpuMemoryMiB: 0,
        priceUsdPerGpuHour: 0,
        cpu: "16",
        memory: "64Gi",
      },
    ],
  });
});

afterAll(async () => {
  await cluster?.stop();
});

describe("kustomize", () => {
  it("the base renders the chart's objects plus the Namespace and the CRD", async () => {
    const r = await kubectl(["kustomize", BASE_DIR]);
    expect(r.code, r.stderr).toBe(0);
    const objs = parseAllDocuments(r.stdout).map((d) => d.toJS() as { kind: string; metadata: { name: string } });
    expect(objs.map((o) => `${o.kind}/${o.metadata.name}`).sort()).toEqual([
      "ClusterRole/moe-operator",
      "ClusterRole/moe-operator-metrics-reader",
      "ClusterRoleBinding/moe-operator",
      "CustomResourceDefinition/moedeployments.moe.dev",
      "Deployment/moe-operator",
      "Namespace/moe-system",
      "PodDisruptionBudget/moe-operator",
      "Role/moe-operator-leader-election",
      "RoleBinding/moe-operator-leader-election",
      "Service/moe-operator-metrics",
      "ServiceAccount/moe-operator",
      "ValidatingAdmissionPolicy/moe-operator-protected-namespaces",
      "ValidatingAdmissionPolicyBinding/moe-operator-protected-namespaces",
    ]);
    // No Helm bookkeeping in plain manifests.
    expect(r.stdout).not.toContain("helm.sh/chart");
    expect(r.stdout).not.toContain("managed-by: Helm");
  });

  it("the base applies server-side with dry run, without Pod Security warnings", async () => {
    // Namespaced objects can only be dry-run into a namespace that exists.
    const ns = await kubectl(["apply", "--server-side", "-f", join(BASE_DIR, "namespace.yaml")]);
    expect(ns.code, ns.stderr).toBe(0);
    const r = await kubectl(["apply", "--server-side", "--dry-run=server", "-k", BASE_DIR]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain("deployment.apps/moe-operator serverside-applied (server dry run)");
    expect(r.stdout).toContain(
      "customresourcedefinition.apiextensions.k8s.io/moedeployments.moe.dev serverside-applied (server dry run)",
    );
    expect(r.stderr).not.toMatch(/PodSecurity|Warning/);
    // Nothing but the Namespace was created.
    const d = await kubectl(["get", "deployment", "-n", NS, "moe-operator", "--ignore-not-found", "-o", "name"]);
    expect(d.stdout.trim()).toBe("");
  });

  it("Pod Security warnings are detected (a non-hardened Deployment triggers one)", async () => {
    const r = await kubectl(["kustomize", BASE_DIR]);
    const deployment = parseAllDocuments(r.stdout)
      .map((d) => d.toJS() as V1Deployment)
      .find((o) => o.kind === "Deployment")!;
    deployment.spec!.template.spec!.containers[0]!.securityContext!.allowPrivilegeEscalation = true;
    const w = await kubectl(["apply", "--server-side", "--dry-run=server", "-f", "-"], JSON.stringify(deployment));
    expect(w.code, w.stderr).toBe(0);
    expect(w.stderr).toMatch(/would violate PodSecurity "restricted:latest": allowPrivilegeEscalation != false/);
  });

  it("the local overlay renders (1 replica, local image, no PDB) and applies server-side with dry run", async () => {
    const rendered = await kubectl(["kustomize", OVERLAY_DIR]);
    expect(rendered.code, rendered.stderr).toBe(0);
    const objs = parseAllDocuments(rendered.stdout).map((d) => d.toJS() as V1Deployment);
    const dep = objs.find((o) => o.kind === "Deployment")!;
    expect(dep.spec!.replicas).toBe(1);
    const c = dep.spec!.template.spec!.containers[0]!;
    expect(c.image).toBe("localhost/moe-operator:dev");
    expect(c.args!.at(-1)).toBe("--log-level=debug");
    expect(objs.map((o) => o.kind)).not.toContain("PodDisruptionBudget");
    const r = await kubectl(["apply", "--server-side", "--dry-run=server", "-k", OVERLAY_DIR]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).not.toMatch(/PodSecurity|Warning/);
  });
});

describe("helm", () => {
  it("lint and template pass", async () => {
    const lint = await helm(["lint", CHART_DIR, "--strict"]);
    expect(lint.code, lint.stdout + lint.stderr).toBe(0);
    const tpl = await helm(["template", RELEASE, CHART_DIR, "-n", NS]);
    expect(tpl.code, tpl.stderr).toBe(0);
  });

  it("install --wait succeeds: every object is accepted and the operator pods are admitted and Ready", async () => {
    const r = await helm([
      "install",
      RELEASE,
      CHART_DIR,
      "-n",
      NS,
      "--create-namespace",
      "--wait",
      "--timeout",
      "120s",
      "--set",
      "dashboard.enabled=true",
      "--set",
      `gitops.credentialSecrets[0].namespace=${NS}`,
      "--set",
      "gitops.credentialSecrets[0].name=github-token",
      // The metric-source allowlist and the egress NetworkPolicy (docs/adr/0007).
      "--set",
      `sources.prometheus.allowedUrls={${PROMETHEUS_URL}}`,
      "--set",
      "networkPolicy.enabled=true",
      "--set",
      "networkPolicy.prometheus.namespaces={monitoring}",
      "--set",
      "networkPolicy.apiServer.cidrs={127.0.0.1/32}",
    ]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toContain("STATUS: deployed");
    // NOTES.txt tells the user what to do next.
    expect(r.stdout).toContain(`kubectl -n ${NS} rollout status deployment/moe-operator`);
    expect(r.stdout).toContain("Recommend mode");

    const status = await helm(["status", RELEASE, "-n", NS, "-o", "json"]);
    expect(JSON.parse(status.stdout).info.status).toBe("deployed");

    const crd = await kubectl(["wait", "--for=condition=Established", "--timeout=60s", "crd/moedeployments.moe.dev"]);
    expect(crd.code, crd.stderr).toBe(0);

    expect(await namesWithInstanceLabel(NAMESPACED_KINDS.replace("replicasets.apps,pods,", ""))).toEqual([
      "configmap/moe-operator-dashboard",
      "deployment.apps/moe-operator",
      "networkpolicy.networking.k8s.io/moe-operator-egress",
      "poddisruptionbudget.policy/moe-operator",
      "role.rbac.authorization.k8s.io/moe-operator-github-github-token",
      "role.rbac.authorization.k8s.io/moe-operator-leader-election",
      "rolebinding.rbac.authorization.k8s.io/moe-operator-github-github-token",
      "rolebinding.rbac.authorization.k8s.io/moe-operator-leader-election",
      "service/moe-operator-metrics",
      "serviceaccount/moe-operator",
    ]);
    expect(await namesWithInstanceLabel(CLUSTER_KINDS, false)).toEqual([
      "clusterrole.rbac.authorization.k8s.io/moe-operator",
      "clusterrole.rbac.authorization.k8s.io/moe-operator-metrics-reader",
      "clusterrolebinding.rbac.authorization.k8s.io/moe-operator",
      "validatingadmissionpolicy.admissionregistration.k8s.io/moe-operator-protected-namespaces",
      "validatingadmissionpolicybinding.admissionregistration.k8s.io/moe-operator-protected-namespaces",
    ]);

    const dep = JSON.parse(
      (await kubectl(["get", "deployment", "-n", NS, "moe-operator", "-o", "json"])).stdout,
    ) as V1Deployment;
    expect(dep.status!.readyReplicas).toBe(2);
    // The allowlist reaches the operator; the API server accepted the egress policy for its pods.
    expect(dep.spec!.template.spec!.containers[0]!.args).toContain(`--prometheus-allowed-urls=${PROMETHEUS_URL}`);
    const np = JSON.parse(
      (await kubectl(["get", "networkpolicy", "-n", NS, "moe-operator-egress", "-o", "json"])).stdout,
    ) as {
      spec: {
        policyTypes: string[];
        podSelector: { matchLabels: Record<string, string> };
        egress: { to?: unknown[]; ports: { port: number }[] }[];
      };
    };
    expect(np.spec.policyTypes).toEqual(["Egress"]);
    expect(np.spec.podSelector.matchLabels).toEqual(dep.spec!.selector.matchLabels);
    expect(np.spec.egress.map((e) => e.ports.map((p) => p.port))).toEqual([[53, 53], [443, 6443], [9090]]);
    // The namespace enforces Pod Security "restricted" (deploy/base/namespace.yaml, applied above):
    // the ReplicaSet's pods were admitted under it.
    const pods = await kubectl([
      "get",
      "pods",
      "-n",
      NS,
      "-l",
      INSTANCE,
      "-o",
      'jsonpath={range .items[*]}{.status.phase}{"\\n"}{end}',
    ]);
    expect(pods.stdout.trim().split("\n")).toEqual(["Running", "Running"]);
    const nsLabels = await kubectl([
      "get",
      "namespace",
      NS,
      "-o",
      "jsonpath={.metadata.labels.pod-security\\.kubernetes\\.io/enforce}",
    ]);
    expect(nsLabels.stdout).toBe("restricted");

    const vap = await kubectl(["get", "validatingadmissionpolicy", "moe-operator-protected-namespaces", "-o", "json"]);
    const typeChecking = (JSON.parse(vap.stdout) as { status?: { typeChecking?: { expressionWarnings?: unknown[] } } })
      .status?.typeChecking;
    expect(typeChecking?.expressionWarnings ?? []).toEqual([]);
  });

  it("the CRD from the chart serves MoEDeployments (a sample applies)", async () => {
    const r = await kubectl([
      "apply",
      "--server-side",
      "-n",
      "default",
      "-f",
      join(ROOT, "deploy", "samples", "mixtral-8x7b.yaml"),
    ]);
    expect(r.code, r.stderr).toBe(0);
  });

  it("helm upgrade with changed values rolls forward", async () => {
    const r = await helm([
      "upgrade",
      RELEASE,
      CHART_DIR,
      "-n",
      NS,
      "--reuse-values",
      "--set",
      "operator.logLevel=debug",
      "--set",
      "dashboard.enabled=false",
    ]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const args = await kubectl([
      "get",
      "deployment",
      "-n",
      NS,
      "moe-operator",
      "-o",
      "jsonpath={.spec.template.spec.containers[0].args}",
    ]);
    expect(JSON.parse(args.stdout)).toContain("--log-level=debug");
    const cm = await kubectl([
      "get",
      "configmap",
      "-n",
      NS,
      "moe-operator-dashboard",
      "--ignore-not-found",
      "-o",
      "name",
    ]);
    expect(cm.stdout.trim()).toBe("");
  });

  it("uninstall leaves nothing but the CRD (and the MoEDeployments it stores)", async () => {
    const r = await helm(["uninstall", RELEASE, "-n", NS, "--wait", "--timeout", "120s"]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const gone = await kubectl(["wait", "--for=delete", "pods", "-n", NS, "-l", INSTANCE, "--timeout=60s"]);
    expect(gone.code === 0 || gone.stderr.includes("no matching resources"), gone.stderr).toBe(true);

    expect(await namesWithInstanceLabel(NAMESPACED_KINDS)).toEqual([]);
    expect(await namesWithInstanceLabel(CLUSTER_KINDS, false)).toEqual([]);
    // Helm's release records (Secrets owned by helm) are gone too.
    const releases = await kubectl(["get", "secrets", "-n", NS, "-l", `owner=helm,name=${RELEASE}`, "-o", "name"]);
    expect(releases.stdout.trim()).toBe("");
    const left = await helm(["list", "-n", NS, "-a", "-q"]);
    expect(left.stdout.trim()).toBe("");
    // Helm never deletes CRDs from crds/ (that would delete every MoEDeployment).
    const crd = await kubectl(["get", "crd", "moedeployments.moe.dev", "-o", "name"]);
    expect(crd.stdout.trim()).toBe("customresourcedefinition.apiextensions.k8s.io/moedeployments.moe.dev");
    const moed = await kubectl(["get", "moed", "-n", "default", "-o", "name"]);
    expect(moed.stdout.trim()).toBe("moedeployment.moe.dev/mixtral-8x7b");
    // The chart's CRD is the committed one.
    const local = readFileSync(join(CHART_DIR, "crds", "moe.dev_moedeployments.yaml"), "utf8");
    expect(local).toBe(readFileSync(join(ROOT, "crds", "moe.dev_moedeployments.yaml"), "utf8"));
  });
});
