// Composition of the operator: caches, the MoEDeployment controller, leader
// election and the observability server. main.ts parses configuration and
// calls startOperator; tests call it in-process with their own clock/logger.
import {
  AppsV1Api,
  BatchV1Api,
  CoreV1Api,
  CustomObjectsApi,
  KubeConfig,
  type KubernetesListObject,
  type KubernetesObject,
  type V1ConfigMap,
  type V1Deployment,
  type V1Job,
  type V1Node,
  type V1Pod,
} from "@kubernetes/client-node";
import type { Logger } from "pino";
import { API_GROUP, API_VERSION, PLURAL, KIND, FIELD_MANAGER, Label, LabelValue } from "./api/constants.ts";
import { KubeClient, NotLeaderError } from "./adapters/kube.ts";
import { createPrometheusReader, type PrometheusReader } from "./adapters/prometheus.ts";
import { Informer, LIST_PAGE_SIZE, type ListPage } from "./runtime/informer.ts";
import { LeaderElector } from "./runtime/leader.ts";
import { Manager } from "./runtime/manager.ts";
import { realClock, type Clock } from "./runtime/clock.ts";
import { createMetrics, type OperatorMetrics } from "./observability/metrics.ts";
import { startObservabilityServer } from "./observability/server.ts";
import { tokenReviewAuthorizer } from "./observability/metrics-auth.ts";
import {
  MoEDeploymentReconciler,
  ConflictRequeue,
  type MoEDeploymentObject,
} from "./controllers/moedeployment/reconciler.ts";
import { parseHostPort, type OperatorConfig } from "./config.ts";
import { isKind } from "./adapters/kube-errors.ts";
import { applyRequestTimeout } from "./adapters/request-timeout.ts";
import { shareConnections } from "./adapters/connections.ts";
import { createPodGpuInformer } from "./controllers/moedeployment/pod-gpus.ts";
import { projectNode, projectPod, type CachedNode, type CachedPod } from "./controllers/moedeployment/cached.ts";
import { lwsReader } from "./controllers/moedeployment/wideep.ts";
import { stagingStateReader } from "./controllers/moedeployment/staging-finalizer.ts";
import { PullRequestSync } from "./gitops/sync.ts";
import { readSecretData } from "./gitops/secrets.ts";

export interface OperatorHandle {
  readonly manager: Manager;
  readonly reconciler: MoEDeploymentReconciler;
  readonly metrics: OperatorMetrics;
  readonly metricsPort: number;
  readonly healthPort: number;
  isLeader(): boolean;
  stop(): Promise<void>;
}

export interface OperatorDeps {
  kubeConfig?: KubeConfig;
  clock?: Clock;
  logger: Logger;
  metrics?: OperatorMetrics;
  prometheus?: (url: string, timeoutMs: number) => PrometheusReader;
}

function withoutManagedFields<T extends KubernetesObject>(o: T): T {
  if (o.metadata?.managedFields !== undefined) delete o.metadata.managedFields;
  return o;
}

function loadKubeConfig(path: string | undefined): KubeConfig {
  const kc = new KubeConfig();
  if (path) kc.loadFromFile(path);
  else kc.loadFromDefault();
  return kc;
}

function ownerKey(o: KubernetesObject): string | undefined {
  const ref = o.metadata?.ownerReferences?.find((r) => r.kind === KIND && r.apiVersion.startsWith(`${API_GROUP}/`));
  if (ref) return `${o.metadata?.namespace}/${ref.name}`;
  // WideEP group pods are owned by the LeaderWorkerSet's StatefulSets: their deployment label names it.
  const labels = o.metadata?.labels;
  const deployment = labels?.[Label.deployment];
  return deployment && labels?.[Label.component] === LabelValue.componentEpGroup
    ? `${o.metadata?.namespace}/${deployment}`
    : undefined;
}

interface Caches {
  readonly moeds: Informer<MoEDeploymentObject & KubernetesObject>;
  readonly pods: Informer<CachedPod, V1Pod>;
  readonly podGpus: ReturnType<typeof createPodGpuInformer>;
  readonly deployments: Informer<V1Deployment>;
  readonly configMaps: Informer<V1ConfigMap>;
  readonly nodes: Informer<CachedNode, V1Node>;
  readonly jobs: Informer<V1Job>;
}

interface Plumbing {
  readonly kc: KubeConfig;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly metrics: OperatorMetrics;
}

/** The informers the reconciler reads from: ours (by label) in the watched namespace, nodes, GPU requests of every pod. */
function createCaches(config: OperatorConfig, p: Plumbing): Caches {
  const { kc, clock, logger, metrics } = p;
  const core = kc.makeApiClient(CoreV1Api);
  const apps = kc.makeApiClient(AppsV1Api);
  const batch = kc.makeApiClient(BatchV1Api);
  const custom = kc.makeApiClient(CustomObjectsApi);
  const ns = config.watchNamespace;
  const managedSelector = `${Label.managedBy}=${LabelValue.managedBy}`;
  // Cached objects drop metadata.managedFields (nothing reads them; on server-side-applied
  // children they are often the largest part of the object); pods and nodes keep only what the
  // reconciler reads (cached.ts).
  // Lists are read in pages (limit/continue), each page projected before the next is read, so a
  // (re)list of thousands of pods never holds one whole response in memory.
  const inf = <T extends KubernetesObject, R extends KubernetesObject = T>(
    name: string,
    path: string,
    list: (page?: ListPage) => Promise<KubernetesListObject<R>>,
    labelSelector?: string,
    transform: (o: R) => T = withoutManagedFields as unknown as (o: R) => T,
  ) =>
    new Informer<T, R>({
      kubeConfig: kc,
      path,
      list,
      labelSelector,
      pageSize: LIST_PAGE_SIZE,
      clock,
      transform,
      logger: logger.child({ informer: name }),
      onRestart: () => metrics.watchRestarts.inc({ resource: name }),
    });
  const podsPath = ns ? `/api/v1/namespaces/${ns}/pods` : "/api/v1/pods";

  const moeds = inf<MoEDeploymentObject & KubernetesObject>(
    "moedeployments",
    ns ? `/apis/${API_GROUP}/${API_VERSION}/namespaces/${ns}/${PLURAL}` : `/apis/${API_GROUP}/${API_VERSION}/${PLURAL}`,
    async (page) =>
      (ns
        ? await custom.listNamespacedCustomObject({
            group: API_GROUP,
            version: API_VERSION,
            namespace: ns,
            plural: PLURAL,
            ...page,
          })
        : await custom.listClusterCustomObject({
            group: API_GROUP,
            version: API_VERSION,
            plural: PLURAL,
            ...page,
          })) as KubernetesListObject<MoEDeploymentObject & KubernetesObject>,
  );
  // The operator's own pods, projected (shard pods: labels, annotations, node, readiness).
  const pods = inf<CachedPod, V1Pod>(
    "pods",
    podsPath,
    (page) =>
      ns
        ? core.listNamespacedPod({ namespace: ns, labelSelector: managedSelector, ...page })
        : core.listPodForAllNamespaces({ labelSelector: managedSelector, ...page }),
    managedSelector,
    projectPod,
  );
  // Every pod in the cluster, but only what GPU accounting needs (node, phase, GPU
  // requests): listed in pages and projected before caching.
  const podGpus = createPodGpuInformer({
    kubeConfig: kc,
    clock,
    logger: logger.child({ informer: "pod-gpus" }),
    onRestart: () => metrics.watchRestarts.inc({ resource: "pod-gpus" }),
  });
  const deployments = inf<V1Deployment>(
    "deployments",
    ns ? `/apis/apps/v1/namespaces/${ns}/deployments` : "/apis/apps/v1/deployments",
    (page) =>
      ns
        ? apps.listNamespacedDeployment({ namespace: ns, labelSelector: managedSelector, ...page })
        : apps.listDeploymentForAllNamespaces({ labelSelector: managedSelector, ...page }),
    managedSelector,
  );
  const configMaps = inf<V1ConfigMap>(
    "configmaps",
    ns ? `/api/v1/namespaces/${ns}/configmaps` : "/api/v1/configmaps",
    (page) =>
      ns
        ? core.listNamespacedConfigMap({ namespace: ns, labelSelector: managedSelector, ...page })
        : core.listConfigMapForAllNamespaces({ labelSelector: managedSelector, ...page }),
    managedSelector,
  );
  const nodes = inf<CachedNode, V1Node>(
    "nodes",
    "/api/v1/nodes",
    (page) => core.listNode({ ...page }),
    undefined,
    projectNode,
  );
  // Weight staging Jobs (spec.prewarm.staging), ours by label.
  const jobs = inf<V1Job>(
    "jobs",
    ns ? `/apis/batch/v1/namespaces/${ns}/jobs` : "/apis/batch/v1/jobs",
    (page) =>
      ns
        ? batch.listNamespacedJob({ namespace: ns, labelSelector: managedSelector, ...page })
        : batch.listJobForAllNamespaces({ labelSelector: managedSelector, ...page }),
    managedSelector,
  );
  return { moeds, pods, podGpus, deployments, configMaps, nodes, jobs };
}

/** One Prometheus reader per (url, timeout), at most 1,024 (the oldest goes first). */
function cachedPrometheusReaders(config: OperatorConfig): (url: string, timeoutMs: number) => PrometheusReader {
  const readers = new Map<string, PrometheusReader>();
  return (url: string, timeoutMs: number) => {
    const k = `${url}|${timeoutMs}`;
    let r = readers.get(k);
    if (!r) {
      // Bounded: the oldest reader goes first (readers hold no connections of their own).
      const oldest = readers.keys().next();
      if (readers.size >= 1024 && !oldest.done) readers.delete(oldest.value);
      readers.set(
        k,
        (r = createPrometheusReader({ baseUrl: url, timeoutMs, maxResponseBytes: config.prometheusMaxResponseBytes })),
      );
    }
    return r;
  };
}

function createReconciler(
  config: OperatorConfig,
  p: Plumbing & {
    kube: KubeClient;
    caches: Caches;
    prometheus: (url: string, timeoutMs: number) => PrometheusReader;
    requeue: (key: string) => void;
    gitops: PullRequestSync;
  },
): MoEDeploymentReconciler {
  const { clock, logger, metrics } = p;
  const sourceTimeoutMaxMs = Math.min(
    config.sourceTimeoutMaxSeconds * 1000,
    Math.max(1000, (config.reconcileIntervalSeconds * 1000) / 2),
  );
  return new MoEDeploymentReconciler({
    kube: p.kube,
    ...p.caches,
    sources: {
      prometheus: p.prometheus,
      core: p.kc.makeApiClient(CoreV1Api),
      nowMs: () => clock.nowMs(),
      maxSourceTimeoutMs: sourceTimeoutMaxMs,
      policy: {
        prometheusAllowedUrls: config.prometheusAllowedUrls,
        fileHeatSourceDirs: config.fileHeatSourceDirs,
        fileHeatSourceMaxBytes: config.fileHeatSourceMaxBytes,
      },
    },
    requeue: p.requeue,
    gitops: p.gitops,
    readLeaderWorkerSet: lwsReader(p.kube),
    readStagingState: stagingStateReader(p.kube),
    clock,
    logger,
    metrics,
    config: {
      reconcileIntervalMs: config.reconcileIntervalSeconds * 1000,
      drainSeconds: config.drainSeconds,
      maxSurge: config.maxSurge,
      maxPendingShardPods: config.maxPendingShardPods,
      soleReplicaPriorityClass: config.soleReplicaPriorityClass,
      // A reconcile waits for its sources at most this long; slower reads finish in the background.
      sourceWaitMs: Math.min(1000, sourceTimeoutMaxMs),
      component: "moe-operator",
      podPolicy: {
        mode: config.podSecurityPolicy,
        allowedServiceAccounts: config.podAllowedServiceAccounts,
        allowedHostPaths: config.podAllowedHostPaths,
        allowedCapabilities: config.podAllowedCapabilities,
      },
    },
  });
}

const keyOf = (o: KubernetesObject) => `${o.metadata?.namespace}/${o.metadata?.name}`;

/** Enqueue the owning MoEDeployment on changes to it and its children; every deployment on node changes. */
function enqueueOnChanges(manager: Manager, caches: Caches, ns: string | undefined): void {
  caches.moeds.on((o) => manager.enqueue(keyOf(o)));
  for (const i of [caches.pods, caches.deployments, caches.configMaps, caches.jobs] as Informer<KubernetesObject>[]) {
    i.on((o) => {
      const k = ownerKey(o);
      if (k && (!ns || o.metadata?.namespace === ns)) manager.enqueue(k);
    });
  }
  // Node changes (capacity, readiness, prices) concern every deployment.
  caches.nodes.on(() => {
    for (const m of caches.moeds.list()) manager.enqueue(keyOf(m));
  });
}

type ObservabilityServer = Awaited<ReturnType<typeof startObservabilityServer>>;

/** /metrics and, on the same or another address, /healthz and /readyz. */
async function startServers(
  config: OperatorConfig,
  p: Plumbing,
  manager: Manager,
): Promise<{ metricsServer: ObservabilityServer; healthServer: ObservabilityServer }> {
  const { kc, logger, metrics } = p;
  const metricsAddr = parseHostPort(config.metricsBindAddress);
  const healthAddr = parseHostPort(config.healthProbeBindAddress);
  const health = {
    healthy: () => true,
    ready: () => (manager.synced ? { ready: true } : { ready: false, reason: "caches not synced" }),
  };
  const authorizeMetrics =
    config.metricsAuth === "tokenreview"
      ? tokenReviewAuthorizer({
          kubeConfig: kc,
          onReviewError: (err) =>
            logger.warn(
              { err: String((err as Error)?.message ?? err).slice(0, 300) },
              "metrics auth: token review failed",
            ),
        })
      : undefined;
  const metricsServer = await startObservabilityServer({
    host: metricsAddr.host,
    port: metricsAddr.port,
    registry: metrics.registry,
    health,
    authorizeMetrics,
  });
  const healthServer =
    config.healthProbeBindAddress === config.metricsBindAddress
      ? metricsServer
      : await startObservabilityServer({
          host: healthAddr.host,
          port: healthAddr.port,
          registry: metrics.registry,
          health,
        });
  return { metricsServer, healthServer };
}

/** The Lease elector: workers run while this replica holds the Lease. */
function createLeaderElector(
  config: OperatorConfig,
  p: Plumbing,
  manager: Manager,
  allKeys: () => string[],
): LeaderElector {
  return new LeaderElector({
    kubeConfig: p.kc,
    namespace: config.leaderElectionNamespace,
    name: config.leaderElectionId,
    identity: config.identity,
    leaseDurationMs: config.leaseDurationSeconds * 1000,
    renewDeadlineMs: config.renewDeadlineSeconds * 1000,
    retryPeriodMs: config.retryPeriodSeconds * 1000,
    clock: p.clock,
    logger: p.logger,
    onStartedLeading: () => manager.startWorkers(allKeys),
    onStoppedLeading: () => manager.stopLeading(),
  });
}

export async function startOperator(config: OperatorConfig, deps: OperatorDeps): Promise<OperatorHandle> {
  const clock = deps.clock ?? realClock;
  const logger = deps.logger;
  const metrics = deps.metrics ?? createMetrics();
  const kc = applyRequestTimeout(
    shareConnections(deps.kubeConfig ?? loadKubeConfig(config.kubeconfig)),
    config.apiRequestTimeoutSeconds * 1000,
  );
  const plumbing: Plumbing = { kc, clock, logger, metrics };
  let leader: LeaderElector | undefined;
  const isLeader = () => (leader ? leader.isLeader() : true);

  const kube = new KubeClient({
    kubeConfig: kc,
    fieldManager: FIELD_MANAGER,
    canWrite: isLeader,
    onWrite: (verb, resource) => metrics.apiWrites.inc({ verb, resource }),
  });
  const caches = createCaches(config, plumbing);
  const prometheus = deps.prometheus ?? cachedPrometheusReaders(config);
  let requeue: (key: string) => void = () => undefined;
  // Mode PullRequest: GitHub syncs run off the reconcile workers and requeue when done.
  const gitops = new PullRequestSync({
    readSecret: (namespace, name) => readSecretData(kc.makeApiClient(CoreV1Api), namespace, name),
    event: (d, type, reason, message) =>
      kube.event(
        { apiVersion: `${API_GROUP}/${API_VERSION}`, kind: KIND, ...d },
        type,
        reason,
        message,
        "moe-operator",
        clock.nowMs(),
      ),
    requeue: (key) => requeue(key),
    canWrite: isLeader,
    clock,
    logger,
    allowedApiUrls: config.githubAllowedUrls,
  });
  const reconciler = createReconciler(config, {
    ...plumbing,
    kube,
    caches,
    prometheus,
    requeue: (key) => requeue(key),
    gitops,
  });

  const { moeds, pods, podGpus, deployments, configMaps, nodes, jobs } = caches;
  const manager = new Manager({
    clock,
    logger,
    metrics,
    workers: config.workers,
    informers: [moeds, pods, podGpus, deployments, configMaps, nodes, jobs] as never[],
    controller: {
      name: "moedeployment",
      reconcile: (key) => reconciler.reconcile(key),
      isQuietRetry: (err) => err instanceof ConflictRequeue || err instanceof NotLeaderError || isKind(err, "Conflict"),
    },
  });
  requeue = (key) => manager.enqueue(key);
  enqueueOnChanges(manager, caches, config.watchNamespace);

  const { metricsServer, healthServer } = await startServers(config, plumbing, manager);
  await manager.startInformers();
  const allKeys = () => moeds.list().map(keyOf);
  if (config.leaderElect) {
    leader = createLeaderElector(config, plumbing, manager, allKeys);
    leader.start();
  } else {
    manager.startWorkers(allKeys);
  }
  logger.info(
    {
      identity: config.identity,
      leaderElect: config.leaderElect,
      watchNamespace: config.watchNamespace ?? "(all)",
      metricsPort: metricsServer.port,
      metricsAuth: config.metricsAuth,
    },
    "operator started",
  );

  return {
    manager,
    reconciler,
    metrics,
    metricsPort: metricsServer.port,
    healthPort: healthServer.port,
    isLeader,
    async stop() {
      manager.stopLeading();
      await leader?.stop();
      await manager.shutdown();
      await metricsServer.close();
      if (healthServer !== metricsServer) await healthServer.close();
      logger.info("operator stopped");
    },
  };
}
