// Weight staging on nodes (spec.prewarm.staging, issue 19 item 1, docs/adr/0022-weight-staging.md):
// the I/O around the pure plan of src/domain/prewarm/staging.ts. One Job per node stages (or
// evicts) the weights; a node label records the staged digest. Everything the plan needs is read
// back from the cluster (Jobs, node labels) and the last status (when a node was last needed), so a
// restarted operator resumes where the last one stopped.
import { createHash } from "node:crypto";
import type { V1Job } from "@kubernetes/client-node";
import { Label, LabelValue } from "../../api/constants.ts";
import {
  expertReplicaBytes,
  moeLayerCount,
  type MoEDeployment,
  type StagingStatus,
  type MoEDeploymentStatus,
} from "../../api/schema.ts";
import type { Decision, NodeView } from "../../domain/decide.ts";
import { scheduleOf } from "./policy.ts";
import { scheduleWindowAt } from "../../domain/prewarm/schedule.ts";
import {
  planStaging,
  retired,
  stagingNeed,
  type StagingJob,
  type StagingNode,
  type StagingPlan,
} from "../../domain/prewarm/staging.ts";
import type { KubeWriter } from "../../adapters/kube.ts";
import { KubeApiError } from "../../adapters/kube-errors.ts";
import type { CachedNode } from "./cached.ts";
import { commonLabels, ownerReference } from "./children.ts";
import type { EventSpec } from "./events.ts";
import type { ShardPod } from "./codecs/shard-pod.ts";

/** Prefix of the node label that marks a staged node; the name part names the deployment. */
export const STAGED_LABEL_PREFIX = "staged.moe.dev/";

export const StagingLabel = {
  /** On staging Jobs: stage or evict. */
  action: "moe.dev/staging-action",
  /** On staging Jobs: the digest the Job stages (or evicts). */
  digest: "moe.dev/staging-digest",
  /**
   * On staging Jobs: the uid of the MoEDeployment they are for. Evict Jobs made while it is being
   * deleted carry no owner reference (a foreground deletion would delete them before they ran), so
   * this label is how they are found.
   */
  ownerUid: "moe.dev/staging-owner-uid",
} as const;

export const StagingAnnotation = {
  /** On staging Jobs: the node the Job runs on. */
  node: "moe.dev/staging-node",
} as const;

/** Retries of a stager pod before its Job fails. */
const BACKOFF_LIMIT = 2;
/** A finished Job the operator did not clean up (a failed one) is deleted this long after; a failed node is retried then. */
const FINISHED_TTL_SECONDS = 600;
/**
 * A Job still running after this long failed (a hung download, a pod on a NotReady node): the node
 * shows Failed and is retried once the Job is gone. ADR 0019 measured ~24 min per node from the
 * remote store; 3 h leaves room for a slow store.
 */
const JOB_DEADLINE_SECONDS = 3 * 3600;

const sha256 = (s: string) => createHash("sha256").update(s).digest("hex");

/**
 * The node label of this deployment's staged weights: `staged.moe.dev/<namespace>.<name>`, cut
 * with a hash when longer than a label name may be (63 characters).
 */
export function stagedLabelKey(namespace: string, name: string): string {
  const full = `${namespace}.${name}`;
  if (full.length <= 63) return STAGED_LABEL_PREFIX + full;
  const cut = full.slice(0, 52).replace(/[-._]+$/, "");
  return `${STAGED_LABEL_PREFIX}${cut}-${sha256(full).slice(0, 10)}`;
}

/** Digest of what is staged: the source and the model shape (16 hex characters, a label value). */
export function stagingDigest(spec: MoEDeployment["spec"]): string {
  return sha256(JSON.stringify([spec.prewarm.staging.source ?? "", spec.model])).slice(0, 16);
}

/** Bytes one staged node holds (and downloads): every routed expert once, in every MoE layer. */
export function stagedBytesPerNode(model: MoEDeployment["spec"]["model"]): number {
  return model.routedExperts * moeLayerCount(model) * expertReplicaBytes(model);
}

/**
 * Deterministic Job name per (deployment, action, node): a restarted operator finds its Jobs. The
 * hash covers the whole deployment name, so two deployments whose names share the 40 characters
 * kept never collide.
 */
export function stagingJobName(name: string, action: "stage" | "evict", node: string): string {
  const prefix = name.slice(0, 40).replace(/[-.]+$/, "");
  return `${prefix}-${action}-${sha256(`${name}/${node}`).slice(0, 10)}`;
}

/**
 * The Job that stages (or evicts) the weights on one node: pinned to it, owned by the deployment
 * (not while the deployment is being deleted: the operator deletes those Jobs itself).
 */
export function renderStagingJob(d: MoEDeployment, node: string, action: "stage" | "evict", digest: string): V1Job {
  const s = d.spec.prewarm.staging;
  const labels = {
    ...commonLabels(d, LabelValue.componentWeightStager),
    [StagingLabel.action]: action,
    [StagingLabel.digest]: digest,
    ...(d.metadata.uid ? { [StagingLabel.ownerUid]: d.metadata.uid } : {}),
  };
  return {
    apiVersion: "batch/v1",
    kind: "Job",
    metadata: {
      name: stagingJobName(d.metadata.name!, action, node),
      namespace: d.metadata.namespace,
      labels,
      annotations: { [StagingAnnotation.node]: node },
      ...(d.metadata.deletionTimestamp ? {} : { ownerReferences: [ownerReference(d)] }),
    },
    spec: {
      backoffLimit: BACKOFF_LIMIT,
      activeDeadlineSeconds: JOB_DEADLINE_SECONDS,
      ttlSecondsAfterFinished: FINISHED_TTL_SECONDS,
      template: {
        metadata: { labels },
        spec: {
          nodeName: node,
          restartPolicy: "Never",
          automountServiceAccountToken: false,
          tolerations: d.spec.serving.gpu.tolerations?.map((t) => ({ ...t })),
          containers: [
            {
              name: "stager",
              image: s.image!,
              env: [
                { name: "MOE_STAGING_ACTION", value: action },
                { name: "MOE_STAGING_SOURCE", value: s.source ?? "" },
                { name: "MOE_STAGING_DIR", value: s.hostPath },
                { name: "MOE_STAGING_DIGEST", value: digest },
              ],
              volumeMounts: [{ name: "weights", mountPath: s.hostPath }],
            },
          ],
          volumes: [{ name: "weights", hostPath: { path: s.hostPath, type: "DirectoryOrCreate" } }],
        },
      },
    },
  };
}

/** A staging Job as the plan reads it: its node, action, digest and state. */
export function readStagingJob(job: V1Job): (StagingJob & { node: string; name: string }) | undefined {
  const node = job.metadata?.annotations?.[StagingAnnotation.node] ?? job.spec?.template.spec?.nodeName;
  const action = job.metadata?.labels?.[StagingLabel.action];
  if (!node || (action !== "stage" && action !== "evict") || job.metadata?.deletionTimestamp) return undefined;
  const done = (type: string) => job.status?.conditions?.find((c) => c.type === type && c.status === "True");
  const failed = done("Failed");
  const state = done("Complete") ? "succeeded" : failed ? "failed" : "running";
  return {
    name: job.metadata!.name!,
    node,
    action,
    digest: job.metadata?.labels?.[StagingLabel.digest] ?? "",
    state,
    ...(failed ? { message: `${failed.reason ?? "Failed"}: ${failed.message ?? ""}`.slice(0, 1_000) } : {}),
  };
}

/** This deployment's staging Jobs, by node (one per node: a second for the same node is ignored). */
export function stagingJobsByNode(
  d: MoEDeployment,
  jobs: readonly V1Job[],
): Map<string, StagingJob & { node: string; name: string }> {
  const out = new Map<string, StagingJob & { node: string; name: string }>();
  const mine = jobs
    .filter(
      (j) =>
        j.metadata?.labels?.[Label.component] === LabelValue.componentWeightStager &&
        (j.metadata.ownerReferences?.some((r) => r.uid === d.metadata.uid) ||
          (d.metadata.uid !== undefined && j.metadata.labels[StagingLabel.ownerUid] === d.metadata.uid)),
    )
    .sort((a, b) => (a.metadata!.name! < b.metadata!.name! ? -1 : 1));
  for (const j of mine) {
    const r = readStagingJob(j);
    if (r && !out.has(r.node)) out.set(r.node, r);
  }
  return out;
}

/** NodeViews with `staged` set on nodes that carry this deployment's mark with the current digest. */
export function withStagedNodes(d: MoEDeployment, views: NodeView[], nodes: readonly CachedNode[]): NodeView[] {
  if (!d.spec.prewarm.staging.enabled) return views;
  const key = stagedLabelKey(d.metadata.namespace!, d.metadata.name!);
  const digest = stagingDigest(d.spec);
  const staged = new Set(nodes.filter((n) => n.metadata?.labels?.[key] === digest).map((n) => n.metadata!.name!));
  return views.map((v) => (staged.has(v.name) ? { ...v, staged: true } : v));
}

/** Shards staging is for: the decision, its forecast and schedule signals, and windows opening within leadSeconds. */
export function stagingShardsNeeded(d: MoEDeployment, decision: Decision, nowMs: number): number {
  const leadMs = d.spec.prewarm.staging.leadSeconds * 1000;
  const upcoming: number[] = [];
  for (const s of d.spec.prewarm.schedules ?? []) {
    try {
      const w = scheduleWindowAt(scheduleOf(s), nowMs);
      if (w.open || (w.opensAtMs !== undefined && w.opensAtMs - nowMs <= leadMs)) upcoming.push(s.minShards);
    } catch {
      /* invalid schedules are reported by the semantic validator */
    }
  }
  const signals = decision.capacity?.signals;
  return Math.min(
    d.spec.scaling.maxShards,
    stagingNeed({
      desiredShards: decision.desiredShards,
      forecastShards: signals?.forecastGpus ?? 0,
      scheduleShards: signals?.scheduleGpus ?? 0,
      upcomingWindowShards: upcoming,
    }),
  );
}

export interface StagingObserved {
  nodes: readonly CachedNode[];
  /** GPU nodes matching spec.serving.gpu with their free GPUs (observe.ts nodeViews). */
  views: readonly NodeView[];
  shardPods: readonly ShardPod[];
  jobs: readonly V1Job[];
  /** Absent while the deployment is being deleted (retiring needs none). */
  decision?: Decision;
  nowMs: number;
}

/** GPUs per node: held by the live shard pods, and taken by the shards the decision creates now. */
function gpusByNode(o: StagingObserved): { held: Map<string, number>; taken: Map<string, number>; live: Set<number> } {
  const held = new Map<string, number>();
  for (const p of o.shardPods) {
    const n = p.pod.spec?.nodeName;
    if (n && !p.terminating) held.set(n, (held.get(n) ?? 0) + 1);
  }
  // Shards the decision creates now are loading already (staging is for later ones): their GPUs are taken.
  const live = new Set(o.shardPods.filter((p) => !p.terminating).map((p) => p.shardIndex));
  const taken = new Map<string, number>();
  o.decision?.shardNodes.forEach((n, i) => {
    if (n && !live.has(i)) taken.set(n, (taken.get(n) ?? 0) + 1);
  });
  return { held, taken, live };
}

/** The nodes of the last status, with when each stopped being wanted. */
function lastStatusByNode(d: MoEDeployment): Map<string, { lastNeededMs?: number }> {
  return new Map(
    (d.status?.staging?.nodes ?? []).map((n) => [
      n.name,
      n.lastNeededTime ? { lastNeededMs: Date.parse(n.lastNeededTime) } : {},
    ]),
  );
}

/** The plan's input, read from the cluster and the last status; with the mark key and the Jobs by node. */
export function stagingInput(d: MoEDeployment, o: StagingObserved) {
  const key = stagedLabelKey(d.metadata.namespace!, d.metadata.name!);
  const jobs = stagingJobsByNode(d, o.jobs);
  const last = lastStatusByNode(d);
  const views = new Map(o.views.map((v) => [v.name, v]));
  const { held, taken, live } = gpusByNode(o);
  const nodes: StagingNode[] = [];
  for (const n of o.nodes) {
    const name = n.metadata?.name ?? "";
    const view = views.get(name);
    const mark = n.metadata?.labels?.[key];
    const job = jobs.get(name);
    const listed = last.get(name);
    // Nodes outside spec.serving.gpu matter only when they carry our mark or Job (to evict or finish),
    // or were in the last status (retiring evicts what a stopped stage Job wrote).
    if (!view && mark === undefined && !job && !listed) continue;
    nodes.push({
      name,
      freeGpus: Math.max(0, (view?.freeGpus ?? 0) - (taken.get(name) ?? 0)),
      shardGpus: held.get(name) ?? 0,
      ...(view?.usdPerGpuHour !== undefined ? { usdPerGpuHour: view.usdPerGpuHour } : {}),
      ...(mark !== undefined ? { markedDigest: mark } : {}),
      ...(job ? { job } : {}),
      ...(listed?.lastNeededMs !== undefined ? { lastNeededMs: listed.lastNeededMs } : {}),
      ...(listed ? { listed: true } : {}),
    });
  }
  const s = d.spec.prewarm.staging;
  return {
    key,
    jobs,
    input: {
      nodes,
      currentShards: Math.max(live.size, o.decision?.desiredShards ?? 0),
      neededShards: o.decision ? stagingShardsNeeded(d, o.decision, o.nowMs) : 0,
      digest: stagingDigest(d.spec),
      maxNodes: s.maxNodes,
      evictAfterMs: s.evictAfterSeconds * 1000,
      nowMs: o.nowMs,
      ...(retiringStaging(d) ? { retiring: true } : {}),
    },
  };
}

/** status.staging from the plan. */
export function stagingStatus(d: MoEDeployment, plan: StagingPlan, key: string, digest: string): StagingStatus {
  const bytesPerNode = stagedBytesPerNode(d.spec.model);
  const staged = plan.nodes.filter((n) => n.phase === "Staged").length;
  return {
    digest,
    label: key,
    targetNodes: plan.want.length,
    bytesPerNode,
    stagedBytes: bytesPerNode * staged,
    nodes: plan.nodes.map((n) => ({
      name: n.name,
      phase: n.phase,
      ...(n.lastNeededMs !== undefined ? { lastNeededTime: new Date(n.lastNeededMs).toISOString() } : {}),
      ...(n.message ? { message: n.message } : {}),
    })),
  };
}

/** Events for what changed since the last status (a failure is reported once per Job). */
export function stagingEvents(
  prev: MoEDeploymentStatus["staging"],
  plan: StagingPlan,
  bytesPerNode: number,
  digest: string,
): EventSpec[] {
  const gb = `${(bytesPerNode / 1e9).toFixed(1)} GB (digest ${digest})`;
  const before = new Map((prev?.nodes ?? []).map((n) => [n.name, n.phase]));
  const out: EventSpec[] = [];
  for (const n of plan.stage)
    out.push({ type: "Normal", reason: "StagingStarted", message: `staging ${gb} of weights on node ${n}` });
  for (const n of plan.mark)
    out.push({ type: "Normal", reason: "NodeStaged", message: `node ${n} holds the weights: ${gb}` });
  for (const n of plan.evict)
    out.push({ type: "Normal", reason: "StagingEvicting", message: `evicting the weights from node ${n}` });
  for (const n of plan.unmark)
    out.push({ type: "Normal", reason: "StagingEvicted", message: `node ${n} no longer holds the weights` });
  for (const n of plan.nodes)
    if (n.phase === "Failed" && before.get(n.name) !== "Failed")
      out.push({
        type: "Warning",
        reason: "StagingFailed",
        message: `staging on node ${n.name} failed (${n.message ?? "Job failed"}); retried once the Job is gone`,
      });
  return out;
}

type JobRef = { apiVersion: string; kind: string; namespace?: string; name: string };

/**
 * Carries out the plan: marks before the Job is deleted, evict Jobs before the mark goes, so a
 * kill between two writes leaves a state the next reconcile finishes. Returns the failed writes.
 */
export async function applyStagingPlan(
  kube: KubeWriter,
  d: MoEDeployment,
  x: { plan: StagingPlan; key: string; digest: string; jobs: ReturnType<typeof stagingJobsByNode> },
): Promise<string[]> {
  const errors: string[] = [];
  const ns = d.metadata.namespace!;
  const deleteJob = async (node: string) => {
    const job = x.jobs.get(node);
    if (!job) return;
    const ref: JobRef = { apiVersion: "batch/v1", kind: "Job", namespace: ns, name: job.name };
    await idempotent("NotFound", () => kube.delete(ref));
  };
  const nodeRef = (name: string) => ({ apiVersion: "v1", kind: "Node", name });
  const attempt = async (what: string, f: () => Promise<unknown>) => {
    try {
      await f();
    } catch (err) {
      errors.push(`${what}: ${(err as Error).message}`);
    }
  };
  for (const n of x.plan.mark)
    await attempt(`mark node ${n}`, async () => {
      await kube.mergePatch(nodeRef(n), { metadata: { labels: { [x.key]: x.digest } } });
      await deleteJob(n);
    });
  for (const n of x.plan.unmark)
    await attempt(`unmark node ${n}`, async () => {
      await kube.mergePatch(nodeRef(n), { metadata: { labels: { [x.key]: null } } });
      await deleteJob(n);
    });
  for (const n of x.plan.deleteJobs) await attempt(`delete Job on ${n}`, () => deleteJob(n));
  for (const n of x.plan.stage)
    await attempt(`stage on ${n}`, () => createJob(kube, renderStagingJob(d, n, "stage", x.digest)));
  for (const n of x.plan.evict)
    await attempt(`evict on ${n}`, () => createJob(kube, renderStagingJob(d, n, "evict", x.digest)));
  return errors;
}

/** Runs a write where the error `kind` means it is already done (a restarted operator redoes a step). */
async function idempotent(kind: "AlreadyExists" | "NotFound", f: () => Promise<unknown>): Promise<void> {
  try {
    await f();
  } catch (err) {
    if (err instanceof KubeApiError && err.kubeError.kind === kind) return;
    throw err;
  }
}

/** Create, where AlreadyExists means another reconcile (or the last operator) made it. */
const createJob = (kube: KubeWriter, job: V1Job) => idempotent("AlreadyExists", () => kube.create(job));

/** Staging runs: enabled, where the operator writes workloads (mode Auto) of topology Disaggregated. */
export function stagingRuns(d: MoEDeployment): boolean {
  return d.spec.prewarm.staging.enabled && d.spec.mode === "Auto" && d.spec.serving.topology !== "WideEP";
}

/**
 * Staging is turned off, no longer runs (mode Recommend or PullRequest, topology WideEP), or the
 * deployment is being deleted: what it staged is evicted (nothing would refresh or idle-evict it).
 */
export function retiringStaging(d: MoEDeployment): boolean {
  return !stagingRuns(d) || d.metadata.deletionTimestamp !== undefined;
}

/** Something staged, staging or evicting remains: a node mark, one of our Jobs, or a node in the last status. */
export function stagingHasState(d: MoEDeployment, o: Pick<StagingObserved, "nodes" | "jobs">): boolean {
  const key = stagedLabelKey(d.metadata.namespace!, d.metadata.name!);
  return (
    (d.status?.staging?.nodes?.length ?? 0) > 0 ||
    o.nodes.some((n) => n.metadata?.labels?.[key] !== undefined) ||
    stagingJobsByNode(d, o.jobs).size > 0
  );
}

/**
 * Retiring without a stager image (spec.prewarm.staging.image removed): no evict Job can run, so
 * the marks go at once and a Warning says where the files stay.
 */
function withoutEvictJobs(plan: StagingPlan, hostPath: string): { plan: StagingPlan; events: EventSpec[] } {
  if (plan.evict.length === 0) return { plan, events: [] };
  const left = plan.evict;
  return {
    plan: {
      ...plan,
      evict: [],
      unmark: [...plan.unmark, ...left].sort(),
      nodes: plan.nodes.filter((n) => !left.includes(n.name)),
    },
    events: [
      {
        type: "Warning",
        reason: "StagingNotEvicted",
        message: `spec.prewarm.staging.image is not set, so no evict Job can run: the weights stay in ${hostPath} on node(s) ${left.join(", ")}; their marks are removed`,
      },
    ],
  };
}

/**
 * One staging round: plan, write, status and events. Undefined when staging is off and nothing it
 * staged remains; status undefined once retiring is done.
 */
export async function syncStaging(
  kube: KubeWriter,
  d: MoEDeployment,
  o: StagingObserved,
): Promise<{ status?: StagingStatus; events: EventSpec[]; errors: string[]; retired: boolean } | undefined> {
  const retiring = retiringStaging(d);
  if (retiring && !stagingHasState(d, o)) return undefined;
  const { key, jobs, input } = stagingInput(d, o);
  // A Job pinned to a node that is gone would be retried by the Job controller forever.
  const nodeNames = new Set(o.nodes.map((n) => n.metadata?.name ?? ""));
  const orphaned = [...jobs.keys()].filter((n) => !nodeNames.has(n)).sort();
  const planned = planStaging(input);
  const withOrphans = orphaned.length > 0 ? { ...planned, deleteJobs: [...planned.deleteJobs, ...orphaned] } : planned;
  const noImage = retiring && !d.spec.prewarm.staging.image;
  const { plan, events: noImageEvents } = noImage
    ? withoutEvictJobs(withOrphans, d.spec.prewarm.staging.hostPath)
    : { plan: withOrphans, events: [] };
  const errors = await applyStagingPlan(kube, d, { plan, key, digest: input.digest, jobs });
  const status = stagingStatus(d, plan, key, input.digest);
  const events = [...stagingEvents(d.status?.staging, plan, status.bytesPerNode, input.digest), ...noImageEvents];
  const done = retiring && retired(plan) && errors.length === 0;
  return { ...(done ? {} : { status }), events, errors, retired: done };
}

/**
 * A deletion that cannot finish evicting (a node that never runs the evict Job) gives up: every
 * staging Job of the deployment is deleted and every mark removed, with a Warning naming the nodes
 * whose files stay. Returns the failed writes.
 */
export async function abandonStaging(
  kube: KubeWriter,
  d: MoEDeployment,
  o: Pick<StagingObserved, "nodes" | "jobs">,
): Promise<{ events: EventSpec[]; errors: string[] }> {
  const key = stagedLabelKey(d.metadata.namespace!, d.metadata.name!);
  const jobs = stagingJobsByNode(d, o.jobs);
  const marked = o.nodes.filter((n) => n.metadata?.labels?.[key] !== undefined).map((n) => n.metadata!.name!);
  const nodes = [...new Set([...marked, ...jobs.keys(), ...(d.status?.staging?.nodes ?? []).map((n) => n.name)])];
  const plan: StagingPlan = {
    want: [],
    stage: [],
    mark: [],
    evict: [],
    unmark: marked.sort(),
    deleteJobs: [...jobs.keys()].filter((n) => !marked.includes(n)).sort(),
    nodes: [],
    extraGpus: 0,
    coveredGpus: 0,
  };
  const errors = await applyStagingPlan(kube, d, { plan, key, digest: stagingDigest(d.spec), jobs });
  const events: EventSpec[] =
    nodes.length === 0
      ? []
      : [
          {
            type: "Warning",
            reason: "StagingNotEvicted",
            message: `gave up evicting the weights while deleting: files may stay in ${d.spec.prewarm.staging.hostPath} on node(s) ${nodes.sort().join(", ")}; marks and Jobs removed`,
          },
        ];
  return { events, errors };
}
