// The chart's RBAC against a real API server, as the operator's ServiceAccount:
//  1. `kubectl auth can-i --as=system:serviceaccount:moe-system:moe-operator`: every
//     permission the operator uses is allowed; a list of things it must not do is denied
//     (Secrets, deleting Nodes, touching CRDs, RBAC, Leases outside its namespace, ...).
//  2. Writes the ClusterRole has to allow everywhere (pods, ConfigMaps, Deployments,
//     Events) are refused in kube-system by the chart's ValidatingAdmissionPolicy, and
//     pass in an ordinary namespace (server-side dry run as the ServiceAccount).
//  3. The real operator (node src/main.ts) runs with a token of that ServiceAccount and
//     no other credentials, and brings a MoEDeployment to Ready=True, scales it down
//     (deleting a pod) and takes the Lease; the audit log shows no request refused.
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startCluster, type LocalCluster } from "../../src/testing/cluster.ts";
import { waitFor } from "../../src/testing/http-probe.ts";
import type { ManagedProcess } from "../../src/testing/process.ts";
import { CHART_DIR, helmPath } from "../../hack/sync-packaging.ts";
import { lwsBins } from "../../src/testing/bins.ts";
import { execFile } from "node:child_process";
import { startOperatorProcess } from "../support/operator-process.ts";
import { heatConfigMap, skewedHeat, testMoEDeployment } from "../support/moe-fixtures.ts";
import { applyJson, condition, shardPods, waitForStatus } from "../support/kube-helpers.ts";

const NS = "moe-system";
const SA = `system:serviceaccount:${NS}:moe-operator`;
const APP_NS = "team-a";

let cluster: LocalCluster;
let operator: ManagedProcess | undefined;

async function canI(
  verb: string,
  resource: string,
  scope: { ns?: string; all?: boolean; subresource?: string },
): Promise<boolean> {
  const args = ["auth", "can-i", verb, resource, `--as=${SA}`];
  if (scope.all) args.push("--all-namespaces");
  else if (scope.ns) args.push("-n", scope.ns);
  if (scope.subresource) args.push(`--subresource=${scope.subresource}`);
  const r = await cluster.kubectl(args);
  const answer = r.stdout.trim();
  if (answer !== "yes" && answer !== "no") throw new Error(`kubectl ${args.join(" ")}: ${r.stderr}`);
  return answer === "yes";
}

function helmInstall(release: string, args: string[]): Promise<{ code: number; out: string }> {
  const home = join(cluster.dir, "helm");
  return new Promise((resolve) => {
    execFile(
      helmPath(),
      ["install", release, CHART_DIR, "-n", NS, ...args, "--kubeconfig", cluster.kubeconfigPath],
      {
        env: {
          ...process.env,
          HELM_CONFIG_HOME: join(home, "config"),
          HELM_CACHE_HOME: join(home, "cache"),
          HELM_DATA_HOME: join(home, "data"),
        },
      },
      (err, stdout, stderr) => resolve({ code: err ? 1 : 0, out: stdout + stderr }),
    );
  });
}

beforeAll(async () => {
  cluster = await startCluster({
    name: "rbac",
    audit: true,
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
  // Defaults (githubMode off), and no operator pods: the operator runs on the host below.
  const install = await helmInstall("moe-operator", ["--create-namespace", "--set", "replicaCount=0"]);
  expect(install.code, install.out).toBe(0);
  for (const ns of [APP_NS]) {
    const r = await cluster.kubectl(["create", "namespace", ns]);
    expect(r.code, r.stderr).toBe(0);
  }
  // The LeaderWorkerSet CRD only (no controller): kubectl auth can-i resolves the resource through discovery.
  const lwsCrd = await cluster.kubectl(["create", "-f", lwsBins().crds[0]!]);
  expect(lwsCrd.code, lwsCrd.stderr).toBe(0);
  const crd = await cluster.kubectl([
    "wait",
    "--for=condition=Established",
    "crd/moedeployments.moe.dev",
    "crd/leaderworkersets.leaderworkerset.x-k8s.io",
    "--timeout=60s",
  ]);
  expect(crd.code, crd.stderr).toBe(0);
});

afterAll(async () => {
  await operator?.stop();
  if (operator && process.env.MOE_TEST_VERBOSE) console.log(operator.logTail(80));
  await cluster?.stop();
});

// [verb, resource, scope]: what src/operator.ts, src/controllers/moedeployment/* and
// src/runtime/leader.ts call. Keep in sync with charts/moe-operator/templates/clusterrole.yaml.
type Check = [string, string, { ns?: string; all?: boolean; subresource?: string }];
const ALLOWED: Check[] = [
  ["list", "moedeployments.moe.dev", { all: true }],
  ["watch", "moedeployments.moe.dev", { all: true }],
  ["get", "moedeployments.moe.dev", { ns: APP_NS }],
  ["patch", "moedeployments.moe.dev", { ns: APP_NS }], // metadata.finalizers only (mode PullRequest)
  ["get", "moedeployments.moe.dev", { ns: APP_NS, subresource: "status" }],
  ["update", "moedeployments.moe.dev", { ns: APP_NS, subresource: "status" }],
  ["patch", "moedeployments.moe.dev", { ns: APP_NS, subresource: "status" }],
  ["list", "pods", { all: true }],
  ["watch", "pods", { all: true }],
  ["get", "pods", { ns: "kube-system" }], // GPU accounting reads every pod
  ["create", "pods", { ns: APP_NS }],
  ["patch", "pods", { ns: APP_NS }],
  ["delete", "pods", { ns: APP_NS }],
  ["list", "deployments.apps", { all: true }],
  ["watch", "deployments.apps", { all: true }],
  ["get", "deployments.apps", { ns: APP_NS }],
  ["create", "deployments.apps", { ns: APP_NS }],
  ["patch", "deployments.apps", { ns: APP_NS }],
  ["delete", "deployments.apps", { ns: APP_NS }], // the router, when the topology switches to WideEP
  ["list", "configmaps", { all: true }],
  ["watch", "configmaps", { all: true }],
  ["get", "configmaps", { ns: APP_NS }],
  ["create", "configmaps", { ns: APP_NS }],
  ["patch", "configmaps", { ns: APP_NS }],
  // Topology WideEP: server-side apply of the LeaderWorkerSet (its pods are read through the pod informer).
  ["get", "leaderworkersets.leaderworkerset.x-k8s.io", { ns: APP_NS }],
  ["create", "leaderworkersets.leaderworkerset.x-k8s.io", { ns: APP_NS }],
  ["patch", "leaderworkersets.leaderworkerset.x-k8s.io", { ns: APP_NS }],
  ["delete", "leaderworkersets.leaderworkerset.x-k8s.io", { ns: APP_NS }], // topology switched back to Disaggregated
  ["get", "nodes", {}],
  ["list", "nodes", {}],
  ["watch", "nodes", {}],
  // Weight staging (spec.prewarm.staging): the staged-weights label on nodes, one Job per node.
  ["patch", "nodes", {}],
  ["list", "jobs.batch", { all: true }],
  ["watch", "jobs.batch", { all: true }],
  ["create", "jobs.batch", { ns: APP_NS }],
  ["delete", "jobs.batch", { ns: APP_NS }],
  ["create", "events", { ns: APP_NS }],
  ["patch", "events", { ns: APP_NS }],
  ["create", "leases.coordination.k8s.io", { ns: NS }],
  ["get", "leases.coordination.k8s.io/moe-operator-leader", { ns: NS }],
  ["update", "leases.coordination.k8s.io/moe-operator-leader", { ns: NS }],
  // metrics.auth=tokenreview (the chart's default): who is scraping /metrics, and may they.
  ["create", "tokenreviews.authentication.k8s.io", {}],
  ["create", "subjectaccessreviews.authorization.k8s.io", {}],
];
const DENIED: Check[] = [
  // Secrets: none, anywhere (githubMode is off).
  ["get", "secrets", { ns: APP_NS }],
  ["get", "secrets", { ns: NS }],
  ["list", "secrets", { all: true }],
  ["watch", "secrets", { ns: NS }],
  ["get", "secrets/github-token", { ns: NS }],
  // Nodes: patched (the staging label) but never deleted, replaced or created.
  ["delete", "nodes", {}],
  ["update", "nodes", {}],
  ["update", "nodes", { subresource: "status" }],
  ["create", "nodes", {}],
  // CRDs: never modified (installed by Helm/kustomize, not the operator).
  ["create", "customresourcedefinitions.apiextensions.k8s.io", {}],
  ["update", "customresourcedefinitions.apiextensions.k8s.io", {}],
  ["patch", "customresourcedefinitions.apiextensions.k8s.io", {}],
  ["delete", "customresourcedefinitions.apiextensions.k8s.io", {}],
  // The operator never replaces MoEDeployments (it patches only its finalizer), and never deletes them.
  ["update", "moedeployments.moe.dev", { ns: APP_NS }],
  ["create", "moedeployments.moe.dev", { ns: APP_NS }],
  ["delete", "moedeployments.moe.dev", { ns: APP_NS }],
  ["patch", "moedeployments.moe.dev", { ns: APP_NS, subresource: "scale" }],
  // kube-system: nothing beyond the cluster-wide pod/ConfigMap/Deployment reads.
  ["get", "secrets", { ns: "kube-system" }],
  ["create", "leases.coordination.k8s.io", { ns: "kube-system" }],
  ["update", "leases.coordination.k8s.io/kube-controller-manager", { ns: "kube-system" }],
  ["create", "serviceaccounts", { ns: "kube-system" }],
  ["create", "serviceaccounts/token", { ns: "kube-system" }],
  ["create", "daemonsets.apps", { ns: "kube-system" }],
  // Deployments may be deleted (a topology switch deletes the router) wherever RBAC grants it; in
  // kube-system the chart's ValidatingAdmissionPolicy refuses every write of the operator.
  ["update", "deployments.apps", { ns: "kube-system" }],
  ["create", "roles.rbac.authorization.k8s.io", { ns: "kube-system" }],
  ["delete", "configmaps", { ns: "kube-system" }],
  ["update", "configmaps", { ns: "kube-system" }],
  // No escalation paths, no other workloads, nothing cluster-scoped beyond nodes.
  ["create", "clusterrolebindings.rbac.authorization.k8s.io", {}],
  ["bind", "clusterroles.rbac.authorization.k8s.io", {}],
  ["escalate", "roles.rbac.authorization.k8s.io", { ns: APP_NS }],
  ["impersonate", "serviceaccounts", { ns: APP_NS }],
  ["create", "pods", { ns: APP_NS, subresource: "exec" }],
  ["create", "pods", { ns: APP_NS, subresource: "eviction" }],
  ["update", "pods", { ns: APP_NS }],
  ["deletecollection", "pods", { ns: APP_NS }],
  ["update", "deployments.apps", { ns: APP_NS }],
  ["patch", "deployments.apps", { ns: APP_NS, subresource: "scale" }],
  ["delete", "configmaps", { ns: APP_NS }],
  ["update", "leaderworkersets.leaderworkerset.x-k8s.io", { ns: APP_NS }],
  ["create", "statefulsets.apps", { ns: APP_NS }],
  ["update", "jobs.batch", { ns: APP_NS }],
  ["create", "cronjobs.batch", { ns: APP_NS }],
  ["create", "services", { ns: APP_NS }],
  ["create", "events.events.k8s.io", { ns: APP_NS }],
  ["delete", "events", { ns: APP_NS }],
  ["delete", "namespaces", {}],
  ["create", "namespaces", {}],
  ["update", "leases.coordination.k8s.io/other-lease", { ns: NS }],
  ["create", "leases.coordination.k8s.io", { ns: APP_NS }],
  ["delete", "leases.coordination.k8s.io/moe-operator-leader", { ns: NS }],
  ["create", "validatingadmissionpolicies.admissionregistration.k8s.io", {}],
  ["delete", "validatingadmissionpolicybindings.admissionregistration.k8s.io", {}],
];

const fmt = (c: Check) =>
  `${c[0]} ${c[1]}${c[2].subresource ? `/${c[2].subresource}` : ""} ${c[2].all ? "(all namespaces)" : c[2].ns ? `in ${c[2].ns}` : "(cluster)"}`;

describe("kubectl auth can-i as the chart's ServiceAccount", () => {
  it.each(ALLOWED.map((c) => [fmt(c), c] as const))("allowed: %s", async (_n, [verb, resource, scope]) => {
    expect(await canI(verb, resource, scope)).toBe(true);
  });

  it.each(DENIED.map((c) => [fmt(c), c] as const))("denied: %s", async (_n, [verb, resource, scope]) => {
    expect(await canI(verb, resource, scope)).toBe(false);
  });

  it("a cluster-admin is not refused the same checks (the harness answers yes when it should)", async () => {
    const r = await cluster.kubectl(["auth", "can-i", "delete", "nodes"]);
    expect(r.stdout.trim()).toBe("yes");
  });
});

describe("writes in protected namespaces are refused by admission", () => {
  const objects = (ns: string) => [
    { apiVersion: "v1", kind: "ConfigMap", metadata: { name: "moe-rbac-probe", namespace: ns }, data: { a: "b" } },
    {
      apiVersion: "v1",
      kind: "Pod",
      metadata: { name: "moe-rbac-probe", namespace: ns },
      spec: { containers: [{ name: "c", image: "example.invalid/x:1" }] },
    },
    {
      apiVersion: "apps/v1",
      kind: "Deployment",
      metadata: { name: "moe-rbac-probe", namespace: ns },
      spec: {
        selector: { matchLabels: { a: "b" } },
        template: {
          metadata: { labels: { a: "b" } },
          spec: { containers: [{ name: "c", image: "example.invalid/x:1" }] },
        },
      },
    },
    {
      apiVersion: "v1",
      kind: "Event",
      metadata: { name: "moe-rbac-probe", namespace: ns },
      involvedObject: { kind: "Pod", name: "x", namespace: ns },
      reason: "Probe",
      message: "probe",
    },
  ];

  it.each(objects("kube-system").map((o) => [o.kind, o] as const))(
    "%s in kube-system: RBAC allows it, the admission policy refuses it",
    async (_k, obj) => {
      const r = await cluster.kubectl(["create", "--dry-run=server", `--as=${SA}`, "-f", "-"], {
        input: JSON.stringify(obj),
      });
      expect(r.code, r.stdout).not.toBe(0);
      expect(r.stderr).toMatch(/moe-operator may not create \w+ in protected namespace kube-system/);
      expect(r.stderr).toContain("ValidatingAdmissionPolicy 'moe-operator-protected-namespaces'");
    },
  );

  it.each(objects(APP_NS).map((o) => [o.kind, o] as const))(
    "%s in an application namespace is accepted",
    async (_k, obj) => {
      const r = await cluster.kubectl(["create", "--dry-run=server", `--as=${SA}`, "-f", "-"], {
        input: JSON.stringify(obj),
      });
      expect(r.code, r.stderr).toBe(0);
    },
  );

  it("the policy only applies to the operator: the cluster admin may still write in kube-system", async () => {
    const r = await cluster.kubectl(["create", "--dry-run=server", "-f", "-"], {
      input: JSON.stringify(objects("kube-system")[0]),
    });
    expect(r.code, r.stderr).toBe(0);
  });
});

interface AuditEvent {
  user: { username: string };
  verb: string;
  objectRef?: { resource?: string; subresource?: string; namespace?: string; name?: string };
  responseStatus?: { code?: number; message?: string };
}

describe("the operator runs on the ServiceAccount's credentials alone", () => {
  const NAME = "tiny";
  const MOED_NS = "default"; // tests/support helpers read MoEDeployments in "default"

  it("takes the Lease, creates router, shards and placement, reports Ready, scales down; nothing is refused", async () => {
    const token = await cluster.kubectl(["create", "token", "moe-operator", "-n", NS, "--duration=1h"]);
    expect(token.code, token.stderr).toBe(0);
    const kubeconfig = join(cluster.dir, "kubeconfig-moe-operator-sa");
    writeFileSync(
      kubeconfig,
      JSON.stringify({
        apiVersion: "v1",
        kind: "Config",
        "current-context": "sa",
        clusters: [{ name: "local", cluster: { server: cluster.server, "certificate-authority": cluster.pki.caCert } }],
        users: [{ name: "moe-operator", user: { token: token.stdout.trim() } }],
        contexts: [{ name: "sa", context: { cluster: "local", user: "moe-operator" } }],
      }),
      { mode: 0o600 },
    );
    const who = await cluster.kubectl([
      "auth",
      "whoami",
      "--kubeconfig",
      kubeconfig,
      "-o",
      "jsonpath={.status.userInfo.username}",
    ]);
    expect(who.stdout).toBe(SA);

    operator = startOperatorProcess({
      kubeconfigPath: kubeconfig,
      dir: cluster.dir,
      identity: "rbac-1",
      extraArgs: [
        `--leader-election-namespace=${NS}`,
        "--leader-election-id=moe-operator-leader",
        "--metrics-auth=tokenreview",
      ],
    });
    await applyJson(cluster, heatConfigMap(`${NAME}-heat`, MOED_NS, skewedHeat(3_000, [1, 2])));
    await applyJson(cluster, testMoEDeployment(NAME, MOED_NS));
    const s = await waitForStatus(
      cluster,
      NAME,
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
    expect(lease.stdout).toBe("rbac-1");
    for (const [kind, name] of [
      ["deployment", `${NAME}-router`],
      ["configmap", `${NAME}-placement`],
    ]) {
      const r = await cluster.kubectl(["get", kind!, "-n", MOED_NS, name!, "-o", "name"]);
      expect(r.code, r.stderr).toBe(0);
    }

    // A manual pin to 5 shards and back to 4: the operator adds a pod, then drains and deletes one.
    for (const shards of [5, 4]) {
      const pinned = testMoEDeployment(NAME, MOED_NS) as { spec: { scaling: Record<string, unknown> } };
      pinned.spec.scaling.shards = shards;
      await applyJson(cluster, pinned);
      await waitForStatus(cluster, NAME, `${shards} shards`, (st) => st.currentShards === shards, 120_000);
    }
    // Status counts a draining shard as gone; wait until the drained pod was really deleted
    // (the audit log test below checks that the delete was allowed).
    await waitFor(
      "the drained shard pod deleted",
      async () => {
        const live = (await shardPods(cluster, NAME)).filter((p) => !p.terminating);
        return live.length === 4 && !live.some((p) => p.draining) ? true : undefined;
      },
      { timeoutMs: 60_000, intervalMs: 200 },
    );
  });

  it("serves /metrics only to a token bound to the chart's metrics-reader ClusterRole", async () => {
    const started = readFileSync(operator!.logFile, "utf8")
      .split("\n")
      .filter(Boolean)
      .map((l) => JSON.parse(l) as { msg?: string; metricsPort?: number; metricsAuth?: string })
      .find((l) => l.msg === "operator started");
    expect(started?.metricsAuth).toBe("tokenreview");
    const scrape = async (token?: string) =>
      (
        await fetch(`http://127.0.0.1:${started!.metricsPort}/metrics`, {
          headers: token ? { authorization: `Bearer ${token}` } : {},
        })
      ).status;
    for (const sa of ["prometheus", "someone-else"])
      expect((await cluster.kubectl(["create", "serviceaccount", sa, "-n", APP_NS])).code).toBe(0);
    const bind = await cluster.kubectl([
      "create",
      "clusterrolebinding",
      "prometheus-moe-metrics",
      "--clusterrole=moe-operator-metrics-reader",
      `--serviceaccount=${APP_NS}:prometheus`,
    ]);
    expect(bind.code, bind.stderr).toBe(0);
    const token = async (sa: string) => (await cluster.kubectl(["create", "token", sa, "-n", APP_NS])).stdout.trim();
    expect(await scrape()).toBe(401);
    expect(await scrape(await token("someone-else"))).toBe(403);
    expect(await scrape(await token("prometheus"))).toBe(200);
  });

  it("the audit log shows the operator's writes, all allowed", () => {
    expect(cluster.auditLogPath).toBeDefined();
    const events = readFileSync(cluster.auditLogPath!, "utf8")
      .split("\n")
      .filter(Boolean)
      .map((l) => JSON.parse(l) as AuditEvent)
      .filter((e) => e.user.username === SA);
    const refused = events.filter((e) => e.responseStatus?.code === 403);
    expect(
      refused.map(
        (e) =>
          `${e.verb} ${e.objectRef?.resource}/${e.objectRef?.subresource ?? ""} ${e.objectRef?.namespace ?? ""}: ${e.responseStatus?.message}`,
      ),
    ).toEqual([]);
    const did = new Set(
      events
        .filter((e) => (e.responseStatus?.code ?? 0) < 300)
        .map(
          (e) => `${e.verb} ${e.objectRef?.resource}${e.objectRef?.subresource ? `/${e.objectRef.subresource}` : ""}`,
        ),
    );
    for (const w of [
      "create leases",
      "update leases",
      "create pods",
      "delete pods",
      "patch deployments",
      "patch configmaps",
      "update moedeployments/status",
      "create events",
      "create tokenreviews",
      "create subjectaccessreviews",
    ]) {
      expect([...did].sort(), w).toContain(w);
    }
  });
});

describe("a release with operator.watchNamespace", () => {
  const SCOPED_SA = `system:serviceaccount:${NS}:scoped-moe-operator`;
  const canScoped = async (args: string[]) => {
    const r = await cluster.kubectl(["auth", "can-i", ...args, `--as=${SCOPED_SA}`]);
    return r.stdout.trim();
  };

  it("may list/watch ConfigMaps only in the watched namespace; pods stay listable everywhere (GPU accounting)", async () => {
    const install = await helmInstall("scoped", [
      "--set",
      "replicaCount=0",
      "--set",
      `operator.watchNamespace=${APP_NS}`,
      "--set",
      "protectedNamespaces.enabled=false",
      "--set",
      "leaderElection.id=scoped-leader",
    ]);
    expect(install.code, install.out).toBe(0);
    for (const verb of ["list", "watch", "get", "create", "patch"])
      expect(await canScoped([verb, "configmaps", "-n", APP_NS]), `${verb} configmaps in ${APP_NS}`).toBe("yes");
    for (const verb of ["list", "watch"]) {
      expect(await canScoped([verb, "configmaps", "--all-namespaces"]), `${verb} configmaps (all namespaces)`).toBe(
        "no",
      );
      expect(await canScoped([verb, "configmaps", "-n", "kube-system"]), `${verb} configmaps in kube-system`).toBe(
        "no",
      );
      expect(await canScoped([verb, "configmaps", "-n", "default"]), `${verb} configmaps in default`).toBe("no");
    }
    expect(await canScoped(["get", "configmaps", "-n", "kube-system"])).toBe("no");
    expect(await canScoped(["list", "pods", "--all-namespaces"])).toBe("yes");
    expect(await canScoped(["create", "pods", "-n", "default"])).toBe("no");
  });
});
