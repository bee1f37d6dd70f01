#!/usr/bin/env node
// moe-operator: composition root. Flags (and MOE_* environment variables) are
// parsed here, once, with zod; then the operator runs until SIGTERM/SIGINT.
import { hostname } from "node:os";
import { Command } from "commander";
import { OperatorConfigSchema } from "./config.ts";
import { createRootLogger } from "./observability/logger.ts";
import { startOperator } from "./operator.ts";

const env = process.env;
const program = new Command()
  .name("moe-operator")
  .description("Places MoE expert shards by routing heat, pre-warms before bursts and scales toward a latency SLO")
  .option(
    "--kubeconfig <path>",
    "kubeconfig file (default: in-cluster, $KUBECONFIG, ~/.kube/config)",
    env.MOE_KUBECONFIG,
  )
  .option("--watch-namespace <ns>", "only this namespace (default: all)", env.MOE_WATCH_NAMESPACE)
  .option("--metrics-bind-address <host:port>", "metrics endpoint", env.MOE_METRICS_BIND_ADDRESS ?? ":8080")
  .option(
    "--health-probe-bind-address <host:port>",
    "healthz/readyz endpoint",
    env.MOE_HEALTH_PROBE_BIND_ADDRESS ?? ":8081",
  )
  .option("--leader-elect <bool>", "use a Lease so only one replica writes", env.MOE_LEADER_ELECT ?? "true")
  .option(
    "--leader-election-namespace <ns>",
    "namespace of the Lease",
    env.MOE_LEADER_ELECTION_NAMESPACE ?? env.POD_NAMESPACE ?? "moe-system",
  )
  .option("--leader-election-id <name>", "name of the Lease", env.MOE_LEADER_ELECTION_ID ?? "moe-operator-leader")
  .option(
    "--identity <id>",
    "leader election identity",
    env.MOE_IDENTITY ?? `${env.POD_NAME ?? hostname()}_${process.pid}`,
  )
  .option("--lease-duration-seconds <n>", "lease duration", env.MOE_LEASE_DURATION_SECONDS ?? "15")
  .option("--renew-deadline-seconds <n>", "renew deadline", env.MOE_RENEW_DEADLINE_SECONDS ?? "10")
  .option("--retry-period-seconds <n>", "retry period", env.MOE_RETRY_PERIOD_SECONDS ?? "2")
  .option("--reconcile-interval-seconds <n>", "periodic re-evaluation", env.MOE_RECONCILE_INTERVAL_SECONDS ?? "30")
  .option(
    "--api-request-timeout-seconds <n>",
    "deadline of each Kubernetes API request (not watches)",
    env.MOE_API_REQUEST_TIMEOUT_SECONDS ?? "30",
  )
  .option(
    "--drain-seconds <n>",
    "longest drain: a draining shard pod is deleted when it turns not Ready (its requests are done) or after this many seconds; shard pods get at least this termination grace period",
    env.MOE_DRAIN_SECONDS ?? "30",
  )
  .option("--max-surge <n>", "replacement shard pods starting at once", env.MOE_MAX_SURGE ?? "2")
  .option(
    "--max-pending-shard-pods <n>",
    "most shard pods a reconcile creates, and none while this many of a deployment's are unschedulable",
    env.MOE_MAX_PENDING_SHARD_PODS ?? "16",
  )
  .option(
    "--sole-replica-priority-class <name>",
    "PriorityClass of shard pods created to hold an expert no Ready pod holds (default: none)",
    env.MOE_SOLE_REPLICA_PRIORITY_CLASS,
  )
  .option("--workers <n>", "concurrent reconciles", env.MOE_WORKERS ?? "4")
  .option(
    "--prometheus-allowed-urls <list>",
    "comma-separated Prometheus base URLs or host[:port] patterns MoEDeployments may query (empty: none)",
    env.MOE_PROMETHEUS_ALLOWED_URLS ?? "",
  )
  .option(
    "--file-heat-source-dirs <list>",
    "comma-separated directories File heat sources may read (empty: File heat sources disabled)",
    env.MOE_FILE_HEAT_SOURCE_DIRS ?? "",
  )
  .option(
    "--file-heat-source-max-bytes <n>",
    "largest File heat source read",
    env.MOE_FILE_HEAT_SOURCE_MAX_BYTES ?? "4194304",
  )
  .option(
    "--prometheus-max-response-bytes <n>",
    "largest Prometheus response read",
    env.MOE_PROMETHEUS_MAX_RESPONSE_BYTES ?? "8388608",
  )
  .option(
    "--source-timeout-max-seconds <n>",
    "cap on a MoEDeployment's source timeoutSeconds",
    env.MOE_SOURCE_TIMEOUT_MAX_SECONDS ?? "10",
  )
  .option(
    "--metrics-auth <mode>",
    "none|tokenreview: protect /metrics with TokenReview + SubjectAccessReview",
    env.MOE_METRICS_AUTH ?? "none",
  )
  .option(
    "--github-allowed-urls <list>",
    "comma-separated GitHub API base URLs spec.gitops.apiUrl may name (pull-request mode sends the token there)",
    env.MOE_GITHUB_ALLOWED_URLS ?? "https://api.github.com",
  )
  .option("--log-level <level>", "trace|debug|info|warn|error", env.MOE_LOG_LEVEL ?? "info")
  .option(
    "--pod-security-policy <mode>",
    "restricted|none: refuse privileged, host-namespace, hostPath and extra-capability pod templates",
    env.MOE_POD_SECURITY_POLICY ?? "restricted",
  )
  .option(
    "--pod-allowed-service-accounts <names>",
    "comma-separated ServiceAccounts pod templates may use",
    env.MOE_POD_ALLOWED_SERVICE_ACCOUNTS ?? "default",
  )
  .option(
    "--pod-allowed-host-paths <dirs>",
    "comma-separated host directories hostPath volumes may mount (default: none)",
    env.MOE_POD_ALLOWED_HOST_PATHS,
  )
  .option(
    "--pod-allowed-capabilities <caps>",
    "comma-separated capabilities allowed beyond the Pod Security Standards baseline set (e.g. IPC_LOCK)",
    env.MOE_POD_ALLOWED_CAPABILITIES,
  )
  .parse();

const o = program.opts<Record<string, string | undefined>>();
const num = (v: string | undefined) => (v === undefined || v === "" ? undefined : Number(v));
const csv = (v: string | undefined) =>
  v === undefined
    ? undefined
    : v
        .split(",")
        .map((x) => x.trim())
        .filter((x) => x !== "");
const list = (v: string | undefined) =>
  (v ?? "")
    .split(",")
    .map((x) => x.trim())
    .filter((x) => x !== "");
const parsed = OperatorConfigSchema.safeParse({
  kubeconfig: o.kubeconfig,
  watchNamespace: o.watchNamespace,
  metricsBindAddress: o.metricsBindAddress,
  healthProbeBindAddress: o.healthProbeBindAddress,
  leaderElect: o.leaderElect === undefined ? undefined : !["false", "0", "no"].includes(o.leaderElect.toLowerCase()),
  leaderElectionNamespace: o.leaderElectionNamespace,
  leaderElectionId: o.leaderElectionId,
  identity: o.identity,
  leaseDurationSeconds: num(o.leaseDurationSeconds),
  renewDeadlineSeconds: num(o.renewDeadlineSeconds),
  retryPeriodSeconds: num(o.retryPeriodSeconds),
  reconcileIntervalSeconds: num(o.reconcileIntervalSeconds),
  apiRequestTimeoutSeconds: num(o.apiRequestTimeoutSeconds),
  drainSeconds: num(o.drainSeconds),
  maxSurge: num(o.maxSurge),
  maxPendingShardPods: num(o.maxPendingShardPods),
  soleReplicaPriorityClass: o.soleReplicaPriorityClass || undefined,
  workers: num(o.workers),
  prometheusAllowedUrls: list(o.prometheusAllowedUrls),
  fileHeatSourceDirs: list(o.fileHeatSourceDirs),
  fileHeatSourceMaxBytes: num(o.fileHeatSourceMaxBytes),
  prometheusMaxResponseBytes: num(o.prometheusMaxResponseBytes),
  sourceTimeoutMaxSeconds: num(o.sourceTimeoutMaxSeconds),
  githubAllowedUrls: list(o.githubAllowedUrls),
  logLevel: o.logLevel,
  podSecurityPolicy: o.podSecurityPolicy,
  podAllowedServiceAccounts: csv(o.podAllowedServiceAccounts),
  podAllowedHostPaths: csv(o.podAllowedHostPaths),
  podAllowedCapabilities: csv(o.podAllowedCapabilities),
  metricsAuth: o.metricsAuth,
});
if (!parsed.success) {
  for (const i of parsed.error.issues)
    console.error(`invalid configuration: ${i.path.join(".") || "(root)"}: ${i.message}`);
  process.exit(2);
}
const config = parsed.data;
const logger = createRootLogger({ level: config.logLevel });

const handle = await startOperator(config, { logger }).catch((err: unknown) => {
  logger.fatal({ err }, "operator failed to start");
  process.exit(1);
});
let stopping = false;
for (const sig of ["SIGTERM", "SIGINT"] as const) {
  process.on(sig, () => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal: sig }, "shutting down");
    const force = setTimeout(() => process.exit(1), 20_000);
    force.unref();
    handle.stop().then(
      () => process.exit(0),
      (err: unknown) => {
        logger.error({ err }, "shutdown failed");
        process.exit(1);
      },
    );
  });
}
