// The Helm chart and the generated kustomize base, without a cluster: helm lint,
// helm template with default and non-default values, the hardened pod, least-privilege
// RBAC (exact rule set, no wildcards, no Secrets unless githubMode), the values schema,
// the CRD copies and deploy/base being in step with crds/ and the chart, and the
// Grafana dashboard only using metrics the operator exports.
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { parseAllDocuments } from "yaml";
import type {
  V1Deployment,
  V1PodDisruptionBudget,
  V1Service,
  V1ValidatingAdmissionPolicy,
  V1ValidatingAdmissionPolicyBinding,
} from "@kubernetes/client-node";
import { CHART_DIR, ROOT, helmPath, helmTemplate, staleFiles } from "../../hack/sync-packaging.ts";
import { allowlistEntryProblem } from "../../src/controllers/moedeployment/source-policy.ts";
import { createMetrics } from "../../src/observability/metrics.ts";

interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string> };
  [k: string]: unknown;
}
interface PolicyRule {
  apiGroups?: string[];
  resources?: string[];
  verbs: string[];
  resourceNames?: string[];
}
interface RbacObject extends K8sObject {
  rules: PolicyRule[];
}

let helm: string;

beforeAll(() => {
  helm = helmPath();
});

function render(set: string[] = []): K8sObject[] {
  const args = set.flatMap((s) => ["--set", s]);
  return parseAllDocuments(helmTemplate(args, helm))
    .map((d) => d.toJS() as K8sObject | null)
    .filter((o): o is K8sObject => o !== null);
}

function renderError(set: string[]): string {
  try {
    helmTemplate(
      set.flatMap((s) => ["--set", s]),
      helm,
    );
  } catch (err) {
    return String((err as { stderr?: string }).stderr ?? err);
  }
  throw new Error(`helm template accepted ${set.join(" ")}`);
}

function one<T>(objs: K8sObject[], kind: string, name?: string): T {
  const found = objs.filter((o) => o.kind === kind && (name === undefined || o.metadata.name === name));
  expect(
    found.map((o) => `${o.kind}/${o.metadata.name}`),
    `exactly one ${kind} ${name ?? ""}`,
  ).toHaveLength(1);
  return found[0] as unknown as T;
}

interface ServiceMonitor {
  metadata: { labels?: Record<string, string> };
  spec: { endpoints: unknown[] };
}

/** The operator container of the rendered Deployment. */
function operatorContainer(objs: K8sObject[]) {
  return one<V1Deployment>(objs, "Deployment").spec!.template.spec!.containers[0]!;
}

/** "group/resource:verb" (plus "@name" when restricted by resourceNames) for every permission. */
function permissions(rules: PolicyRule[]): string[] {
  const out: string[] = [];
  for (const r of rules) {
    for (const g of r.apiGroups ?? [""]) {
      for (const res of r.resources ?? []) {
        for (const v of r.verbs) {
          const base = `${g === "" ? "core" : g}/${res}:${v}`;
          if (r.resourceNames?.length) for (const n of r.resourceNames) out.push(`${base}@${n}`);
          else out.push(base);
        }
      }
    }
  }
  return out.sort();
}

// What the operator calls (src/operator.ts, src/controllers/moedeployment/*, src/adapters/kube.ts).
const NAMESPACED_PERMISSIONS = [
  "moe.dev/moedeployments:get",
  "moe.dev/moedeployments:list",
  "moe.dev/moedeployments:watch",
  "moe.dev/moedeployments:patch", // metadata.finalizers only (mode PullRequest, closeOnDelete)
  "moe.dev/moedeployments/status:get",
  "moe.dev/moedeployments/status:update",
  "moe.dev/moedeployments/status:patch",
  "core/pods:create",
  "core/pods:patch",
  "core/pods:delete",
  "apps/deployments:get",
  "apps/deployments:list",
  "apps/deployments:watch",
  "apps/deployments:create",
  "apps/deployments:patch",
  "apps/deployments:delete", // the router, when spec.serving.topology switches to WideEP
  "core/configmaps:get",
  "core/configmaps:list",
  "core/configmaps:watch",
  "core/configmaps:create",
  "core/configmaps:patch",
  "leaderworkerset.x-k8s.io/leaderworkersets:get", // topology WideEP: server-side apply
  "leaderworkerset.x-k8s.io/leaderworkersets:create",
  "leaderworkerset.x-k8s.io/leaderworkersets:patch",
  "leaderworkerset.x-k8s.io/leaderworkersets:delete", // topology switched back to Disaggregated
  "batch/jobs:get", // weight staging (spec.prewarm.staging): one Job per node
  "batch/jobs:list",
  "batch/jobs:watch",
  "batch/jobs:create",
  "batch/jobs:delete",
  "core/events:create",
  "core/events:patch",
];
const CLUSTER_READ_PERMISSIONS = [
  "core/pods:get",
  "core/pods:list",
  "core/pods:watch",
  "core/nodes:get",
  "core/nodes:list",
  "core/nodes:watch",
  "core/nodes:patch", // the staged-weights label staged.moe.dev/<namespace>.<name>
];
// metrics.auth=tokenreview (the default): src/observability/metrics-auth.ts.
const METRICS_AUTH_PERMISSIONS = [
  "authentication.k8s.io/tokenreviews:create",
  "authorization.k8s.io/subjectaccessreviews:create",
];

describe("helm lint", () => {
  it.each([
    ["default values", []],
    [
      "every optional object",
      [
        "metrics.serviceMonitor.enabled=true",
        "dashboard.enabled=true",
        "gitops.credentialSecrets[0].namespace=inference",
        "gitops.credentialSecrets[0].name=github-token",
        "operator.watchNamespace=inference",
      ],
    ],
    ["single replica without leader election", ["replicaCount=1", "leaderElection.enabled=false"]],
    [
      "the egress NetworkPolicy and source allowlists",
      [
        "networkPolicy.enabled=true",
        "sources.prometheus.allowedUrls={http://prometheus-operated.monitoring.svc:9090}",
        "networkPolicy.prometheus.namespaces={monitoring}",
        "sources.file.allowedDirs={/heat}",
      ],
    ],
  ] as const)("passes --strict with %s", (_name, set) => {
    const out = execFileSync(helm, ["lint", CHART_DIR, "--strict", ...set.flatMap((s) => ["--set", s])], {
      encoding: "utf8",
    });
    expect(out).toContain("0 chart(s) failed");
  });
});

describe("rendered with default values", () => {
  let objs: K8sObject[];
  beforeAll(() => {
    objs = render();
  });

  it("contains the operator's objects and no optional ones", () => {
    expect(objs.map((o) => `${o.kind}/${o.metadata.name}`).sort()).toEqual([
      "ClusterRole/moe-operator",
      "ClusterRole/moe-operator-metrics-reader",
      "ClusterRoleBinding/moe-operator",
      "Deployment/moe-operator",
      "PodDisruptionBudget/moe-operator",
      "Role/moe-operator-leader-election",
      "RoleBinding/moe-operator-leader-election",
      "Service/moe-operator-metrics",
      "ServiceAccount/moe-operator",
      "ValidatingAdmissionPolicy/moe-operator-protected-namespaces",
      "ValidatingAdmissionPolicyBinding/moe-operator-protected-namespaces",
    ]);
    for (const o of objs.filter((x) => !x.kind.startsWith("Cluster") && !x.kind.startsWith("ValidatingAdmission")))
      expect(o.metadata.namespace, `${o.kind} namespace`).toBe("moe-system");
  });

  it("runs 2 replicas with leader election, probes and resource requests", () => {
    const d = one<V1Deployment>(objs, "Deployment");
    expect(d.spec!.replicas).toBe(2);
    const pod = d.spec!.template.spec!;
    expect(pod.serviceAccountName).toBe("moe-operator");
    const c = pod.containers[0]!;
    expect(c.image).toBe("ghcr.io/moe-operator/moe-operator:0.1.0");
    expect(c.args).toEqual(
      expect.arrayContaining([
        "--leader-elect=true",
        "--leader-election-id=moe-operator-leader",
        "--metrics-bind-address=:8080",
        "--health-probe-bind-address=:8081",
      ]),
    );
    // The Lease namespace comes from $POD_NAMESPACE (downward API), so overlays can move it.
    expect(c.env).toEqual(
      expect.arrayContaining([
        { name: "POD_NAMESPACE", valueFrom: { fieldRef: { fieldPath: "metadata.namespace" } } },
        { name: "POD_NAME", valueFrom: { fieldRef: { fieldPath: "metadata.name" } } },
      ]),
    );
    expect(c.livenessProbe!.httpGet).toEqual({ path: "/healthz", port: "health" });
    expect(c.readinessProbe!.httpGet).toEqual({ path: "/readyz", port: "health" });
    expect(c.ports).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ name: "health", containerPort: 8081 }),
        expect.objectContaining({ name: "metrics", containerPort: 8080 }),
      ]),
    );
    expect(c.resources!.requests).toEqual({ cpu: expect.any(String), memory: expect.any(String) });
    expect(c.resources!.limits!.memory).toBeDefined();
  });

  it("is hardened: non-root, read-only root filesystem, no privilege escalation, no capabilities, RuntimeDefault seccomp", () => {
    const pod = one<V1Deployment>(objs, "Deployment").spec!.template.spec!;
    expect(pod.securityContext).toMatchObject({ runAsNonRoot: true, seccompProfile: { type: "RuntimeDefault" } });
    expect(pod.securityContext!.runAsUser).toBeGreaterThan(0);
    expect(pod.hostNetwork ?? false).toBe(false);
    expect(pod.hostPID ?? false).toBe(false);
    for (const c of pod.containers) {
      expect(c.securityContext).toMatchObject({
        allowPrivilegeEscalation: false,
        readOnlyRootFilesystem: true,
        runAsNonRoot: true,
        capabilities: { drop: ["ALL"] },
        seccompProfile: { type: "RuntimeDefault" },
      });
      expect(c.securityContext!.privileged ?? false).toBe(false);
      expect(c.securityContext!.capabilities!.add).toBeUndefined();
    }
    // The only writable path is an emptyDir on /tmp.
    expect(pod.volumes).toEqual([{ name: "tmp", emptyDir: { sizeLimit: "64Mi" } }]);
  });

  it("grants exactly what the operator uses, cluster-wide, and the Lease only in its namespace", () => {
    const cr = one<RbacObject>(objs, "ClusterRole", "moe-operator");
    expect(permissions(cr.rules)).toEqual(
      [...NAMESPACED_PERMISSIONS, ...CLUSTER_READ_PERMISSIONS, ...METRICS_AUTH_PERMISSIONS].sort(),
    );
    const lease = one<RbacObject>(objs, "Role", "moe-operator-leader-election");
    expect(lease.metadata.namespace).toBe("moe-system");
    expect(permissions(lease.rules)).toEqual([
      "coordination.k8s.io/leases:create",
      "coordination.k8s.io/leases:get@moe-operator-leader",
      "coordination.k8s.io/leases:update@moe-operator-leader",
    ]);
    const crb = one<K8sObject & { subjects: unknown[]; roleRef: unknown }>(objs, "ClusterRoleBinding");
    expect(crb.subjects).toEqual([{ kind: "ServiceAccount", name: "moe-operator", namespace: "moe-system" }]);
    expect(crb.roleRef).toEqual({ apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: "moe-operator" });
  });

  it("denies the operator's writes in kube-system, kube-public and kube-node-lease by admission policy", () => {
    const vap = one<V1ValidatingAdmissionPolicy>(objs, "ValidatingAdmissionPolicy");
    expect(vap.spec!.failurePolicy).toBe("Fail");
    expect(vap.spec!.matchConditions).toEqual([
      {
        name: "moe-operator-service-account",
        expression: 'request.userInfo.username == "system:serviceaccount:moe-system:moe-operator"',
      },
    ]);
    expect(vap.spec!.validations![0]!.expression).toBe("false");
    const binding = one<V1ValidatingAdmissionPolicyBinding>(objs, "ValidatingAdmissionPolicyBinding");
    expect(binding.spec!.policyName).toBe(vap.metadata!.name);
    expect(binding.spec!.validationActions).toEqual(["Deny"]);
    expect(binding.spec!.matchResources!.namespaceSelector!.matchExpressions).toEqual([
      { key: "kubernetes.io/metadata.name", operator: "In", values: ["kube-system", "kube-public", "kube-node-lease"] },
    ]);
  });

  it("PodDisruptionBudget keeps one replica and selects the operator pods", () => {
    const pdb = one<V1PodDisruptionBudget>(objs, "PodDisruptionBudget");
    const d = one<V1Deployment>(objs, "Deployment");
    expect(pdb.spec!.minAvailable).toBe(1);
    expect(pdb.spec!.selector!.matchLabels).toEqual(d.spec!.selector.matchLabels);
    const svc = one<V1Service>(objs, "Service");
    expect(svc.spec!.selector).toEqual(d.spec!.selector.matchLabels);
    expect(svc.spec!.ports).toEqual([{ name: "metrics", port: 8080, targetPort: "metrics", protocol: "TCP" }]);
  });
});

describe("RBAC never uses wildcards and never reads Secrets by default", () => {
  const variants: [string, string[]][] = [
    ["defaults", []],
    ["watchNamespace", ["operator.watchNamespace=inference"]],
    [
      "gitops",
      [
        "gitops.credentialSecrets[0].namespace=inference",
        "gitops.credentialSecrets[0].name=github-token",
        "gitops.credentialSecrets[1].namespace=batch",
        "gitops.credentialSecrets[1].name=gh-app-key",
      ],
    ],
  ];
  it.each(variants)("%s", (name, set) => {
    const rbac = render(set).filter((o): o is RbacObject => o.kind === "ClusterRole" || o.kind === "Role");
    expect(rbac.length).toBeGreaterThan(0);
    for (const o of rbac) {
      for (const r of o.rules) {
        for (const field of [r.apiGroups, r.resources, r.verbs, r.resourceNames])
          expect(field ?? [], `${o.kind}/${o.metadata.name}`).not.toContain("*");
        expect(r.verbs).not.toEqual(expect.arrayContaining(["escalate", "bind", "impersonate", "deletecollection"]));
      }
      if (o.kind === "ClusterRole") {
        const perms = permissions(o.rules).join(" ");
        expect(perms).not.toMatch(/secrets|leases|customresourcedefinitions|roles|clusterroles|rolebindings/);
      }
    }
    const secretRules = rbac.flatMap((o) =>
      o.rules
        .filter((r) => r.resources?.includes("secrets"))
        .map((r) => ({ kind: o.kind, ns: o.metadata.namespace, r })),
    );
    if (name === "gitops") {
      expect(secretRules).toEqual([
        {
          kind: "Role",
          ns: "inference",
          r: { apiGroups: [""], resources: ["secrets"], resourceNames: ["github-token"], verbs: ["get"] },
        },
        {
          kind: "Role",
          ns: "batch",
          r: { apiGroups: [""], resources: ["secrets"], resourceNames: ["gh-app-key"], verbs: ["get"] },
        },
      ]);
    } else {
      expect(secretRules).toEqual([]);
    }
  });

  it("watchNamespace moves every write into a Role in that namespace; pods and nodes stay readable cluster-wide", () => {
    const objs = render(["operator.watchNamespace=inference"]);
    expect(permissions(one<RbacObject>(objs, "ClusterRole", "moe-operator").rules)).toEqual(
      [...CLUSTER_READ_PERMISSIONS, ...METRICS_AUTH_PERMISSIONS].sort(),
    );
    const role = one<RbacObject>(objs, "Role", "moe-operator");
    expect(role.metadata.namespace).toBe("inference");
    expect(permissions(role.rules)).toEqual([...NAMESPACED_PERMISSIONS].sort());
    const rb = one<K8sObject & { subjects: unknown[] }>(objs, "RoleBinding", "moe-operator");
    expect(rb.metadata.namespace).toBe("inference");
    expect(rb.subjects).toEqual([{ kind: "ServiceAccount", name: "moe-operator", namespace: "moe-system" }]);
    const args = operatorContainer(objs).args!;
    expect(args).toContain("--watch-namespace=inference");
  });
});

describe("metrics authentication", () => {
  it("defaults to tokenreview: the flag, TokenReview/SubjectAccessReview create, a metrics-reader ClusterRole, a ServiceMonitor sending a token", () => {
    const objs = render(["metrics.serviceMonitor.enabled=true"]);
    expect(operatorContainer(objs).args).toContain("--metrics-auth=tokenreview");
    expect(permissions(one<RbacObject>(objs, "ClusterRole", "moe-operator").rules)).toEqual(
      expect.arrayContaining(METRICS_AUTH_PERMISSIONS),
    );
    const reader = one<K8sObject & { rules: unknown[] }>(objs, "ClusterRole", "moe-operator-metrics-reader");
    expect(reader.rules).toEqual([{ nonResourceURLs: ["/metrics"], verbs: ["get"] }]);
    const sm = one<ServiceMonitor>(objs, "ServiceMonitor");
    expect(sm.spec.endpoints[0]).toMatchObject({
      port: "metrics",
      bearerTokenFile: "/var/run/secrets/kubernetes.io/serviceaccount/token",
    });
    const withSecret = one<ServiceMonitor>(
      render(["metrics.serviceMonitor.enabled=true", "metrics.serviceMonitor.bearerTokenSecret.name=scraper-token"]),
      "ServiceMonitor",
    );
    expect(withSecret.spec.endpoints[0]).toMatchObject({
      authorization: { type: "Bearer", credentials: { name: "scraper-token", key: "token" } },
    });
    expect(withSecret.spec.endpoints[0]).not.toHaveProperty("bearerTokenFile");
  });

  it("metrics.auth=none: open /metrics, no review permissions, no reader role, no token in the ServiceMonitor", () => {
    const objs = render(["metrics.auth=none", "metrics.serviceMonitor.enabled=true"]);
    expect(operatorContainer(objs).args).toContain("--metrics-auth=none");
    expect(permissions(one<RbacObject>(objs, "ClusterRole", "moe-operator").rules)).toEqual(
      [...NAMESPACED_PERMISSIONS, ...CLUSTER_READ_PERMISSIONS].sort(),
    );
    expect(objs.filter((o) => o.metadata.name === "moe-operator-metrics-reader")).toEqual([]);
    const ep = one<ServiceMonitor>(objs, "ServiceMonitor").spec.endpoints[0];
    expect(ep).not.toHaveProperty("bearerTokenFile");
    expect(ep).not.toHaveProperty("authorization");
  });
});

describe("optional objects and values validation", () => {
  it("renders ServiceMonitor, dashboard ConfigMap and the GitHub Secret Role when enabled", () => {
    const objs = render([
      "metrics.serviceMonitor.enabled=true",
      "metrics.serviceMonitor.labels.release=kps",
      "dashboard.enabled=true",
      "gitops.credentialSecrets[0].namespace=inference",
      "gitops.credentialSecrets[0].name=github-token",
    ]);
    const sm = one<ServiceMonitor>(objs, "ServiceMonitor");
    expect(sm.metadata.labels?.release).toBe("kps");
    expect(sm.spec.endpoints).toEqual([expect.objectContaining({ port: "metrics", path: "/metrics" })]);
    const cm = one<K8sObject & { data: Record<string, string> }>(objs, "ConfigMap", "moe-operator-dashboard");
    expect(cm.metadata.labels?.grafana_dashboard).toBe("1");
    expect(JSON.parse(cm.data["moe-operator.json"]!)).toEqual(
      JSON.parse(readFileSync(join(CHART_DIR, "files", "dashboards", "moe-operator.json"), "utf8")),
    );
    expect(one<K8sObject>(objs, "Role", "moe-operator-github-github-token").metadata.namespace).toBe("inference");
    expect(one<K8sObject>(objs, "RoleBinding", "moe-operator-github-github-token").metadata.namespace).toBe(
      "inference",
    );
    expect(operatorContainer(objs).args).toContain("--github-allowed-urls=https://api.github.com");
  });

  it("drops the PodDisruptionBudget for a single replica and the Lease Role without leader election", () => {
    const objs = render(["replicaCount=1", "leaderElection.enabled=false"]);
    expect(objs.map((o) => o.kind)).not.toContain("PodDisruptionBudget");
    expect(objs.filter((o) => o.kind === "Role")).toEqual([]);
    const args = operatorContainer(objs).args!;
    expect(args).toContain("--leader-elect=false");
    expect(args.join(" ")).not.toContain("--leader-election-id");
  });

  it.each([
    ["an unknown key (typo)", ["replicaCont=3"], "additional properties 'replicaCont' not allowed"],
    ["a gitops credential Secret without a namespace", ["gitops.credentialSecrets[0].name=github-token"], "namespace"],
    [
      "several writers without leader election",
      ["replicaCount=2", "leaderElection.enabled=false"],
      "needs leaderElection.enabled=true",
    ],
    ["an unknown log level", ["operator.logLevel=verbose"], "logLevel"],
    ["renew deadline >= lease duration", ["leaderElection.renewDeadlineSeconds=20"], "renewDeadlineSeconds"],
    [
      "retry period >= renew deadline",
      ["leaderElection.retryPeriodSeconds=10"],
      "retryPeriodSeconds must be less than leaderElection.renewDeadlineSeconds",
    ],
    ["an unknown metrics auth mode", ["metrics.auth=basic"], "/metrics/auth"],
  ])("rejects %s", (_name, set, message) => {
    expect(renderError(set)).toContain(message);
  });
});

describe("metric sources and the egress NetworkPolicy (docs/adr/0007)", () => {
  interface NetworkPolicy extends K8sObject {
    spec: {
      podSelector: { matchLabels: Record<string, string> };
      policyTypes: string[];
      egress: { to?: Record<string, unknown>[]; ports: { protocol: string; port: number }[] }[];
    };
  }
  const PROM = "http://prometheus-operated.monitoring.svc:9090";

  it("by default: no NetworkPolicy, no Prometheus URL and no File directory allowed, caps passed, 4 workers", () => {
    const objs = render();
    expect(objs.map((o) => o.kind)).not.toContain("NetworkPolicy");
    const args = operatorContainer(objs).args!;
    expect(args.join(" ")).not.toContain("--prometheus-allowed-urls");
    expect(args.join(" ")).not.toContain("--file-heat-source-dirs");
    expect(args).toEqual(
      expect.arrayContaining([
        "--workers=4",
        "--prometheus-max-response-bytes=8388608",
        "--source-timeout-max-seconds=10",
        "--file-heat-source-max-bytes=4194304",
      ]),
    );
  });

  it("passes the allowlists as flags the operator's configuration accepts", () => {
    const args = operatorContainer(
      render([
        `sources.prometheus.allowedUrls={${PROM},*.monitoring.svc:9090}`,
        "sources.file.allowedDirs={/heat,/data/heat}",
      ]),
    ).args!;
    expect(args).toContain(`--prometheus-allowed-urls=${PROM},*.monitoring.svc:9090`);
    expect(args).toContain("--file-heat-source-dirs=/heat,/data/heat");
    const urls = args
      .find((a) => a.startsWith("--prometheus-allowed-urls="))!
      .split("=")[1]!
      .split(",");
    expect(urls.map(allowlistEntryProblem)).toEqual([undefined, undefined]);
  });

  it("renders an egress-only NetworkPolicy for the operator pods: DNS, the API server and the Prometheus namespaces", () => {
    const objs = render([
      "networkPolicy.enabled=true",
      `sources.prometheus.allowedUrls={${PROM}}`,
      "networkPolicy.prometheus.namespaces={monitoring}",
      "networkPolicy.prometheus.podLabels.app\\.kubernetes\\.io/name=prometheus",
      "networkPolicy.apiServer.cidrs={10.96.0.1/32,172.18.0.2/32}",
    ]);
    const np = one<NetworkPolicy>(objs, "NetworkPolicy", "moe-operator-egress");
    expect(np.metadata.namespace).toBe("moe-system");
    expect(np.spec.policyTypes).toEqual(["Egress"]);
    expect(np.spec.podSelector.matchLabels).toEqual(one<V1Deployment>(objs, "Deployment").spec!.selector.matchLabels);
    const [dns, api, prom] = np.spec.egress;
    expect(dns!.ports).toEqual([
      { protocol: "UDP", port: 53 },
      { protocol: "TCP", port: 53 },
    ]);
    expect(dns!.to).toEqual([
      {
        namespaceSelector: { matchLabels: { "kubernetes.io/metadata.name": "kube-system" } },
        podSelector: { matchLabels: { "k8s-app": "kube-dns" } },
      },
    ]);
    expect(api!.ports.map((p) => p.port)).toEqual([443, 6443]);
    expect(api!.to).toEqual([{ ipBlock: { cidr: "10.96.0.1/32" } }, { ipBlock: { cidr: "172.18.0.2/32" } }]);
    expect(prom!.to).toEqual([
      {
        namespaceSelector: { matchLabels: { "kubernetes.io/metadata.name": "monitoring" } },
        podSelector: { matchLabels: { "app.kubernetes.io/name": "prometheus" } },
      },
    ]);
    expect(prom!.ports).toEqual([{ protocol: "TCP", port: 9090 }]);
    expect(np.spec.egress).toHaveLength(3);
  });

  it.each([
    [
      "a NetworkPolicy that would drop every allowed Prometheus",
      ["networkPolicy.enabled=true", `sources.prometheus.allowedUrls={${PROM}}`],
      "networkPolicy.prometheus.namespaces",
    ],
    [
      "an allowlist entry that is neither a URL nor a host pattern",
      ["sources.prometheus.allowedUrls={not a host}"],
      "allowedUrls",
    ],
    ["a relative File directory", ["sources.file.allowedDirs={heat}"], "allowedDirs"],
    ["a response cap below 64 KiB", ["sources.prometheus.maxResponseBytes=1000"], "maxResponseBytes"],
    ["a bad CIDR", ["networkPolicy.enabled=true", "networkPolicy.apiServer.cidrs={10.0.0.1}"], "cidrs"],
  ])("rejects %s", (_name, set, message) => {
    expect(renderError(set)).toContain(message);
  });
});

describe("generated copies are in step with their sources", () => {
  it("charts/moe-operator/crds/ and deploy/base/ match crds/ and the chart (node hack/sync-packaging.ts)", () => {
    expect(staleFiles(helm)).toEqual([]);
  });

  it("the chart's CRD is byte-identical to crds/", () => {
    const f = "moe.dev_moedeployments.yaml";
    expect(readFileSync(join(CHART_DIR, "crds", f), "utf8")).toBe(readFileSync(join(ROOT, "crds", f), "utf8"));
  });
});

describe("Grafana dashboard", () => {
  const dashboard = JSON.parse(readFileSync(join(CHART_DIR, "files", "dashboards", "moe-operator.json"), "utf8")) as {
    uid: string;
    panels: { title: string; type: string; targets?: { expr: string }[] }[];
  };
  const exprs = dashboard.panels.flatMap((p) => (p.targets ?? []).map((t) => t.expr));

  it("has the panels platform teams ask for", () => {
    expect(dashboard.uid).toBe("moe-operator");
    const all = exprs.join("\n");
    for (const metric of [
      "moe_operator_gpus_desired",
      "moe_operator_gpus_current",
      "moe_operator_gpus_ready",
      "moe_operator_latency_p99_observed_ms",
      "moe_operator_slo_target_ms",
      "moe_operator_cost_usd_per_hour",
      "moe_operator_placement_balancedness",
      "moe_operator_decisions_total",
      "controller_runtime_reconcile_errors_total",
    ])
      expect(all, metric).toContain(metric);
    expect(all).toMatch(/sum by \(reason\) \(increase\(moe_operator_decisions_total/);
  });

  it("only queries metrics the operator exports", async () => {
    const exported = new Set(
      (await createMetrics({ defaultMetrics: false }).registry.getMetricsAsJSON()).map((m) => m.name),
    );
    const used = new Set(
      exprs.flatMap((e) => e.match(/\b(moe_operator|controller_runtime|workqueue|leader_election)_[a-z0-9_]+/g) ?? []),
    );
    expect(used.size).toBeGreaterThan(5);
    for (const m of used) expect(exported, `dashboard queries ${m}`).toContain(m);
  });
});
