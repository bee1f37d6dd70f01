// Operator configuration: parsed once, with zod, in main. Nothing else reads
// process.env.
import { z } from "zod";
import { allowlistEntryProblem } from "./controllers/moedeployment/source-policy.ts";

const HostPort = z.string().regex(/^[^:\s]*:\d{1,5}$/, "must be host:port (host may be empty for all interfaces)");

export const OperatorConfigSchema = z
  .object({
    kubeconfig: z
      .string()
      .min(1)
      .optional()
      .describe("Path to a kubeconfig; default: in-cluster, then $KUBECONFIG, then ~/.kube/config."),
    watchNamespace: z
      .string()
      .min(1)
      .optional()
      .describe("Watch MoEDeployments in this namespace only; default: all namespaces."),
    metricsBindAddress: HostPort.default(":8080"),
    healthProbeBindAddress: HostPort.default(":8081"),
    leaderElect: z.boolean().default(true),
    leaderElectionNamespace: z.string().min(1).default("moe-system"),
    leaderElectionId: z.string().min(1).default("moe-operator-leader"),
    identity: z.string().min(1),
    leaseDurationSeconds: z.number().int().min(2).max(300).default(15),
    renewDeadlineSeconds: z.number().int().min(1).max(300).default(10),
    retryPeriodSeconds: z.number().int().min(1).max(60).default(2),
    reconcileIntervalSeconds: z.number().int().min(1).max(3600).default(30),
    apiRequestTimeoutSeconds: z
      .number()
      .int()
      .min(1)
      .max(300)
      .default(30)
      .describe(
        "Deadline of each Kubernetes API request (not watches); a request past it fails and its reconcile is retried with backoff.",
      ),
    drainSeconds: z.number().int().min(0).max(3600).default(30),
    maxSurge: z.number().int().min(1).max(1000).default(2),
    maxPendingShardPods: z
      .number()
      .int()
      .min(1)
      .max(10000)
      .default(16)
      .describe(
        "Most shard pods a reconcile creates, and none while this many of a deployment's pods are unschedulable.",
      ),
    soleReplicaPriorityClass: z
      .string()
      .regex(/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/, "must be a PriorityClass name")
      .max(253)
      .optional()
      .describe(
        "PriorityClass for shard pods created to hold a (layer, expert) no Ready pod holds; default: none (the template's).",
      ),
    workers: z.number().int().min(1).max(64).default(4),
    prometheusAllowedUrls: z
      .array(
        z
          .string()
          .min(1)
          .superRefine((e, ctx) => {
            const problem = allowlistEntryProblem(e);
            if (problem) ctx.addIssue({ code: "custom", message: `${JSON.stringify(e)} ${problem}` });
          }),
      )
      .max(256)
      .default([])
      .describe("Prometheus base URLs or host[:port] patterns MoEDeployments may query; empty: none."),
    fileHeatSourceDirs: z
      .array(z.string().regex(/^\//, "must be an absolute directory"))
      .max(64)
      .default([])
      .describe("Directories File heat sources may read; empty: File heat sources are disabled."),
    fileHeatSourceMaxBytes: z
      .number()
      .int()
      .min(1024)
      .max(64 * 1024 * 1024)
      .default(4 * 1024 * 1024),
    prometheusMaxResponseBytes: z
      .number()
      .int()
      .min(64 * 1024)
      .max(256 * 1024 * 1024)
      .default(8 * 1024 * 1024),
    sourceTimeoutMaxSeconds: z
      .number()
      .int()
      .min(1)
      .max(120)
      .default(10)
      .describe("Cap on spec.*.prometheus.timeoutSeconds."),
    githubAllowedUrls: z
      .array(
        z.string().regex(/^https?:\/\/[^\s/?#@]+(\/\S*)?$/, "must be an http(s) URL such as https://api.github.com"),
      )
      .max(64)
      .default(["https://api.github.com"])
      .describe("GitHub API base URLs spec.gitops.apiUrl may name (the token is sent there)."),
    logLevel: z.enum(["trace", "debug", "info", "warn", "error", "fatal", "silent"]).default("info"),
    // Pod-template policy (src/controllers/moedeployment/pod-policy.ts).
    podSecurityPolicy: z
      .enum(["restricted", "none"])
      .default("restricted")
      .describe(
        "restricted: refuse privileged, host-namespace, hostPath and extra-capability pod templates and other ServiceAccounts; none: no checks.",
      ),
    podAllowedServiceAccounts: z
      .array(
        z
          .string()
          .regex(/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/, "must be a ServiceAccount name")
          .max(253),
      )
      .max(64)
      .default(["default"]),
    podAllowedHostPaths: z
      .array(
        z
          .string()
          .regex(/^\/\S*$/, "must be an absolute path")
          .refine((p) => !p.split("/").includes(".."), "must not contain ..")
          .max(4096),
      )
      .max(64)
      .default([]),
    podAllowedCapabilities: z
      .array(
        z
          .string()
          .regex(/^[A-Za-z_]+$/, "must be a capability name such as IPC_LOCK")
          .max(64),
      )
      .max(64)
      .default([]),
    metricsAuth: z
      .enum(["none", "tokenreview"])
      .default("none")
      .describe(
        "How /metrics is protected: none, or a bearer token checked with TokenReview + SubjectAccessReview (get on /metrics).",
      ),
  })
  // client-go's rules: a leader gives up (renewDeadline) before a standby may take over
  // (leaseDuration), and retries at least once before its deadline (retryPeriod).
  .refine((c) => c.renewDeadlineSeconds < c.leaseDurationSeconds, {
    message:
      "renewDeadlineSeconds must be less than leaseDurationSeconds (a leader must give up before a standby may take over)",
    path: ["renewDeadlineSeconds"],
  })
  .refine((c) => c.retryPeriodSeconds < c.renewDeadlineSeconds, {
    message:
      "retryPeriodSeconds must be less than renewDeadlineSeconds (a leader must be able to retry a renewal before its deadline)",
    path: ["retryPeriodSeconds"],
  });

export type OperatorConfig = z.output<typeof OperatorConfigSchema>;
export type OperatorConfigInput = z.input<typeof OperatorConfigSchema>;

export function parseHostPort(s: string): { host: string; port: number } {
  const i = s.lastIndexOf(":");
  return { host: s.slice(0, i) || "0.0.0.0", port: Number(s.slice(i + 1)) };
}
