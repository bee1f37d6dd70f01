// Names that identify the MoEDeployment API and the objects the operator owns.
// Everything here is a plain string constant so that controllers, tests and the
// CRD generator agree on one spelling.

export const API_GROUP = "moe.dev";
export const API_VERSION = "v1alpha1";
export const API_GROUP_VERSION = `${API_GROUP}/${API_VERSION}`;
export const KIND = "MoEDeployment";
export const LIST_KIND = "MoEDeploymentList";
export const PLURAL = "moedeployments";
export const SINGULAR = "moedeployment";
export const SHORT_NAMES: readonly string[] = ["moed"];
export const CATEGORIES: readonly string[] = ["moe"];
export const CRD_NAME = `${PLURAL}.${API_GROUP}`;

/** Field manager for server-side apply of children and status. */
export const FIELD_MANAGER = "moe-operator";

/** Prefix of the operator's own label and annotation keys; refused in pod templates. */
export const OPERATOR_KEY_PREFIX = "moe.dev/";

/** Labels the operator puts on every child object it creates. */
export const Label = {
  /** Name of the owning MoEDeployment. */
  deployment: "moe.dev/deployment",
  /** `router` or `expert-shard`. */
  component: "moe.dev/component",
  /** Zero-based index of an expert shard. */
  shardIndex: "moe.dev/shard-index",
  managedBy: "app.kubernetes.io/managed-by",
  name: "app.kubernetes.io/name",
  instance: "app.kubernetes.io/instance",
  partOf: "app.kubernetes.io/part-of",
} as const;

export const LabelValue = {
  managedBy: "moe-operator",
  partOf: "moe-operator",
  componentRouter: "router",
  componentExpertShard: "expert-shard",
  /** Pods of a WideEP group (LeaderWorkerSet). */
  componentEpGroup: "ep-group",
  /** Jobs (and their pods) that stage or evict weights on a node (spec.prewarm.staging). */
  componentWeightStager: "weight-stager",
} as const;

/** Annotations on children (placement ConfigMap, shard pods) and on the MoEDeployment. */
export const Annotation = {
  /** Monotonic placement version a shard pod or ConfigMap carries. */
  placementVersion: "moe.dev/placement-version",
  /** Content hash of the placement plan (hex). */
  placementHash: "moe.dev/placement-hash",
  /** Set on the CRD by the generator: where the schema came from. */
  generatedBy: "moe.dev/generated-by",
} as const;

/** Finalizers the operator sets on a MoEDeployment. */
export const Finalizer = {
  /** Mode PullRequest with spec.gitops.pullRequests.closeOnDelete: close the pull request before the object goes. */
  gitopsPullRequest: "moe.dev/gitops-pull-request",
  /** spec.prewarm.staging left marks, Jobs or files on nodes: evict them before the object goes (ADR 0022). */
  weightStaging: "moe.dev/weight-staging",
} as const;

/** metav1.Condition types written to status.conditions. */
export const ConditionType = {
  /** Summary: True when the deployment serves within its SLO and nothing is degraded. Computed from the others. */
  Ready: "Ready",
  /** True while shards are being added/removed, experts moved or pods rolled. */
  Progressing: "Progressing",
  /** True when something needs a human: invalid spec, apply failures, pods not ready, infeasible placement. */
  Degraded: "Degraded",
  /** True when observed latency at the SLO percentile is at or below the target. */
  SLOMet: "SLOMet",
  /** True when the budget (spec.cost.maxUsdPerHour) caps the capacity the SLO asks for, or the minimum already exceeds it. */
  BudgetExceeded: "BudgetExceeded",
  /** True when heat and latency sources answered with fresh data. */
  MetricsAvailable: "MetricsAvailable",
  /** True while capacity is held above the SLO's need ahead of a scheduled, forecast or burst peak. */
  Prewarming: "Prewarming",
  /** Mode PullRequest: whether the proposal in Git (branch and pull request) matches the operator's. */
  GitOpsSynced: "GitOpsSynced",
  /** spec.placement.moves.mode InPlace: True while a shard refused or missed the deadline of an in-place move (named in the message). */
  RebalanceStalled: "RebalanceStalled",
  /** True while shard pods the scheduler could not place for longer than spec.scaling.pendingTimeoutSeconds exist (GPU resource and count in the message). */
  CapacityPending: "CapacityPending",
} as const;
export type ConditionTypeName = (typeof ConditionType)[keyof typeof ConditionType];

/** CamelCase reasons for conditions and for status.lastScale.reason. */
export const ConditionReason = {
  // Ready
  AllComponentsReady: "AllComponentsReady",
  Reconciling: "Reconciling",
  RecommendOnly: "RecommendOnly",
  InvalidSpec: "InvalidSpec",
  // Progressing
  ScalingUp: "ScalingUp",
  ScalingDown: "ScalingDown",
  Rebalancing: "Rebalancing",
  RollingOut: "RollingOut",
  Stable: "Stable",
  // Degraded
  AsExpected: "AsExpected",
  PodsNotReady: "PodsNotReady",
  PlacementInfeasible: "PlacementInfeasible",
  InsufficientGpuCapacity: "InsufficientGpuCapacity",
  ApplyFailed: "ApplyFailed",
  /** The operator's pod policy refuses a pod template (privileged, host namespaces, hostPath, ServiceAccount...). */
  PodTemplateRejected: "PodTemplateRejected",
  // SLOMet
  WithinTarget: "WithinTarget",
  AboveTarget: "AboveTarget",
  // BudgetExceeded
  WithinBudget: "WithinBudget",
  CappedByBudget: "CappedByBudget",
  MinimumOverBudget: "MinimumOverBudget",
  NoBudget: "NoBudget",
  // MetricsAvailable (and SLOMet=Unknown)
  MetricsFresh: "MetricsFresh",
  MetricsUnavailable: "MetricsUnavailable",
  PrometheusUnreachable: "PrometheusUnreachable",
  QueryFailed: "QueryFailed",
  NoData: "NoData",
  StaleData: "StaleData",
  BadData: "BadData",
  SourceNotAllowed: "SourceNotAllowed",
  /** The policy held capacity on a sample it judged an outlier, out of range, or a collection gap. */
  SuspectData: "SuspectData",
  // Prewarming and lastScale
  ScheduledWindow: "ScheduledWindow",
  ForecastPeak: "ForecastPeak",
  BurstDetected: "BurstDetected",
  NotPrewarming: "NotPrewarming",
  SLOTarget: "SLOTarget",
  ManualOverride: "ManualOverride",
  BoundsChanged: "BoundsChanged",
  // GitOpsSynced (mode PullRequest)
  /** The pull request holds the current proposal. */
  PullRequestOpen: "PullRequestOpen",
  /** Nothing to propose: the bounds in Git fit what was observed (or the learning window is not over). */
  NoChangeProposed: "NoChangeProposed",
  /** GitHub refused the credentials (401), or the Secret is missing. */
  AuthFailed: "AuthFailed",
  /** GitHub's rate limit (primary or secondary) stopped the sync; it resumes after the reset. */
  RateLimited: "RateLimited",
  /** spec.gitops.pullRequests.hourlyLimit or concurrentLimit holds a proposal back. */
  PullRequestLimited: "PullRequestLimited",
  /** spec.gitops.apiUrl is not in the operator's --github-allowed-urls. */
  ApiUrlNotAllowed: "ApiUrlNotAllowed",
  /** The file at spec.gitops.path is missing, not YAML, or holds no matching MoEDeployment. */
  ManifestNotFound: "ManifestNotFound",
  /** Event: the MoEDeployment was deleted and its pull request could not be closed (the finalizer was removed anyway). */
  PullRequestNotClosed: "PullRequestNotClosed",
  /** Any other GitHub error (5xx after retries, unexpected responses). */
  GitHubError: "GitHubError",
  // RebalanceStalled (spec.placement.moves.mode InPlace)
  /** Every in-place move was acknowledged in time (or none is in flight). */
  MovesAcknowledged: "MovesAcknowledged",
  /** A shard refused its target set or did not acknowledge it within ackTimeoutSeconds: it is replaced. */
  ShardMoveFailed: "ShardMoveFailed",
  /** WideEP: an EP group refused its target placement version or did not acknowledge it in time; it keeps serving the version it acknowledged. */
  GroupMoveFailed: "GroupMoveFailed",
  // CapacityPending
  /** No shard pod has waited for a node longer than spec.scaling.pendingTimeoutSeconds. */
  NoPendingShards: "NoPendingShards",
  /** Shard pods have been unschedulable (no node with a free GPU of the type) past the timeout. */
  ShardsUnschedulable: "ShardsUnschedulable",
  /** WideEP: a group has pods unschedulable past the timeout (group index and missing GPUs in the message). */
  GroupsUnschedulable: "GroupsUnschedulable",
  /** WideEP: every desired group has all its pods Ready. */
  GroupsReady: "GroupsReady",
  /** WideEP: some desired group has a pod that is not Ready. */
  GroupsNotReady: "GroupsNotReady",
} as const;
export type ConditionReasonName = (typeof ConditionReason)[keyof typeof ConditionReason];
