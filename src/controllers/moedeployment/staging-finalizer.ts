// The weight-staging finalizer (ADR 0022 "Turning staging off, deleting the deployment"): a
// MoEDeployment whose staging left marks, Jobs or files on nodes keeps the finalizer
// moe.dev/weight-staging until evict Jobs have removed them, so deleting it (or turning staging
// off, which needs no finalizer) leaves nothing on the nodes. A deletion never waits longer than
// RETIRE_DEADLINE_MS: then the marks and Jobs go and a Warning names the nodes whose files stay.
import type { V1Job } from "@kubernetes/client-node";
import { API_GROUP, API_VERSION, Finalizer, KIND, Label, LabelValue, PLURAL } from "../../api/constants.ts";
import type { MoEDeployment, StagingStatus } from "../../api/schema.ts";
import type { KubeClient, KubeWriter } from "../../adapters/kube.ts";
import { KubeApiError } from "../../adapters/kube-errors.ts";
import { projectNode, type CachedNode } from "./cached.ts";
import type { EventSpec } from "./events.ts";
import type { MoEDeploymentObject } from "./reconciler.ts";
import {
  abandonStaging,
  readStagingJob,
  stagedLabelKey,
  stagingHasState,
  stagingRuns,
  syncStaging,
  type StagingObserved,
} from "./staging.ts";

/** Longest a deletion waits for the evict Jobs (a failed evict is retried after its Job's 10-min TTL). */
export const RETIRE_DEADLINE_MS = 15 * 60_000;
/** How often a deletion checks its evict Jobs. */
export const RETIRE_POLL_MS = 5_000;

/** Staging runs (Auto, Disaggregated, enabled), or something it staged remains on the nodes. */
export function wantsStagingFinalizer(d: MoEDeployment, o: Pick<StagingObserved, "nodes" | "jobs">): boolean {
  return stagingRuns(d) || stagingHasState(d, o);
}

export interface StagingFinalizeResult {
  /** The finalizer can go. */
  done: boolean;
  /** status.staging to write while evicting (undefined: remove it). */
  status?: StagingStatus;
  events: EventSpec[];
  errors: string[];
}

/**
 * One round of evicting a deleted deployment's staged weights; `d` undefined when its spec no
 * longer parses (`problem` says why): then nothing can be evicted and the finalizer goes.
 */
export async function finalizeStaging(
  kube: KubeWriter,
  parsed: { d: MoEDeployment; problem?: undefined } | { d?: undefined; problem: string },
  o: Pick<StagingObserved, "nodes" | "jobs" | "shardPods" | "views">,
  t: { nowMs: number; deletedAtMs: number },
): Promise<StagingFinalizeResult> {
  const d = parsed.d;
  if (!d) {
    return {
      done: true,
      events: [
        {
          type: "Warning",
          reason: "StagingNotEvicted",
          message: `${parsed.problem}, so the staged weights cannot be evicted; the finalizer ${Finalizer.weightStaging} is removed`,
        },
      ],
      errors: [],
    };
  }
  if (t.nowMs - t.deletedAtMs >= RETIRE_DEADLINE_MS) {
    const r = await abandonStaging(kube, d, o);
    return { done: r.errors.length === 0, events: r.events, errors: r.errors };
  }
  const r = await syncStaging(kube, d, { ...o, nowMs: t.nowMs });
  if (!r) return { done: true, events: [], errors: [] };
  return { done: r.retired, ...(r.status ? { status: r.status } : {}), events: r.events, errors: r.errors };
}

/** What a deletion's staging round reads: the deployment (undefined once gone), its nodes and Jobs. */
export type StagingStateReader = (d: {
  namespace: string;
  name: string;
}) => Promise<{ object?: MoEDeploymentObject } & Pick<StagingObserved, "nodes" | "jobs">>;

/**
 * Reads a deleted deployment and its staging state from the API server, not the informer caches:
 * the round that finds nothing left removes the finalizer, after which nobody cleans up, so no
 * round may act on a view older than the last round's writes. Two stale views each started an
 * evict Job that outlived the deployment: the deployment's cache still carrying the finalizer and
 * the last status's node list after the finalizer was removed, and a mark already removed still in
 * the node cache after the evict Job's deletion was seen. The deployment is read first (its status
 * names the nodes), then the nodes carrying its mark, plus those its Jobs or its status name (a
 * node that is gone is left out, as in the cache).
 */
export function stagingStateReader(kube: Pick<KubeClient, "core" | "objects" | "custom">): StagingStateReader {
  return async ({ namespace, name }) => {
    let object: MoEDeploymentObject;
    try {
      object = (await kube.custom.getNamespacedCustomObject({
        group: API_GROUP,
        version: API_VERSION,
        namespace,
        plural: PLURAL,
        name,
      })) as MoEDeploymentObject;
    } catch (err) {
      const e = new KubeApiError(`get ${KIND}/${name}`, err);
      if (e.kubeError.kind === "NotFound") return { nodes: [], jobs: [] };
      throw e;
    }
    const key = stagedLabelKey(namespace, name);
    const [marked, jobList] = await Promise.all([
      kube.core.listNode({ labelSelector: key }).catch((err: unknown) => {
        throw new KubeApiError("list Node", err);
      }),
      kube.objects
        .list<V1Job>(
          "batch/v1",
          "Job",
          namespace,
          undefined,
          undefined,
          undefined,
          undefined,
          `${Label.deployment}=${name},${Label.component}=${LabelValue.componentWeightStager}`,
        )
        .catch((err: unknown) => {
          throw new KubeApiError("list Job", err);
        }),
    ]);
    const nodes: CachedNode[] = marked.items.map(projectNode);
    const have = new Set(nodes.map((n) => n.metadata?.name));
    const named = new Set((object.status?.staging?.nodes ?? []).map((n) => n.name));
    for (const j of jobList.items) {
      const node = readStagingJob(j)?.node;
      if (node) named.add(node);
    }
    for (const n of [...named].filter((x) => !have.has(x)).sort()) {
      try {
        nodes.push(projectNode(await kube.core.readNode({ name: n })));
      } catch (err) {
        const e = new KubeApiError(`get Node/${n}`, err);
        if (e.kubeError.kind !== "NotFound") throw e;
      }
    }
    return { object, nodes, jobs: jobList.items };
  };
}
