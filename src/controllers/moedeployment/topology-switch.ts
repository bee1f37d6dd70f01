// A switch of spec.serving.topology (docs/adr/0021-wide-ep-groups.md): make-before-break. The
// children of the topology the spec no longer names (Disaggregated: the router Deployment and the
// expert shard pods; WideEP: the `<name>-ep` LeaderWorkerSet) are deleted once the new topology
// serves (Ready=True), or once it waits for GPUs past the pending timeout (CapacityPending=True:
// the old children hold GPUs it needs). The placement ConfigMap is shared by both (re-planned by
// the new topology) and stays.
import type { V1Deployment } from "@kubernetes/client-node";
import type { CachedPod } from "./cached.ts";
import { Label, LabelValue, ConditionType } from "../../api/constants.ts";
import type { MoEDeployment, MoEDeploymentStatus } from "../../api/schema.ts";
import type { KubeWriter } from "../../adapters/kube.ts";
import { KubeApiError } from "../../adapters/kube-errors.ts";
import { childNames } from "./children.ts";
import { LWS_API_VERSION, LWS_KIND } from "./codecs/leaderworkerset.ts";
import type { EventSpec } from "./events.ts";

export interface OldTopology {
  /** The topology the leftovers belong to. */
  readonly topology: "Disaggregated" | "WideEP";
  readonly router?: V1Deployment;
  readonly shardPods: readonly CachedPod[];
  /** WideEP's LeaderWorkerSet, when its group pods show it still exists. */
  readonly lws: boolean;
}

const ownedBy = (d: MoEDeployment) => (o: { metadata?: { ownerReferences?: { uid?: string }[] } }) =>
  o.metadata?.ownerReferences?.some((r) => r.uid === d.metadata.uid) ?? false;

/** The other topology's children still live, from the caches; undefined when there are none. */
export function oldTopology(
  d: MoEDeployment,
  pods: readonly CachedPod[],
  router: V1Deployment | undefined,
): OldTopology | undefined {
  const mine = (p: CachedPod, component: string) =>
    p.metadata?.labels?.[Label.deployment] === d.metadata.name &&
    p.metadata?.labels?.[Label.component] === component &&
    !p.metadata?.deletionTimestamp;
  if (d.spec.serving.topology === "WideEP") {
    const shardPods = pods.filter((p) => mine(p, LabelValue.componentExpertShard) && ownedBy(d)(p));
    const r = router && ownedBy(d)(router) && !router.metadata?.deletionTimestamp ? router : undefined;
    return r || shardPods.length > 0 ? { topology: "Disaggregated", router: r, shardPods, lws: false } : undefined;
  }
  // Group pods are owned by the LeaderWorkerSet's StatefulSets; they carry the deployment's label.
  const groupPods = pods.filter((p) => mine(p, LabelValue.componentEpGroup));
  return groupPods.length > 0 ? { topology: "WideEP", shardPods: [], lws: true } : undefined;
}

/** The new topology serves, or waits for GPUs the old one holds: time to delete the old one. */
export function readyToRetire(status: MoEDeploymentStatus): boolean {
  const c = (type: string) => status.conditions?.find((x) => x.type === type)?.status;
  return c(ConditionType.Ready) === "True" || c(ConditionType.CapacityPending) === "True";
}

/**
 * Deletes the old topology's children (NotFound is done); the event says what this call deleted,
 * and there is none when everything was gone already (the caches lag a delete: the group pods of a
 * deleted LeaderWorkerSet stay until the garbage collector reaches them).
 */
export async function retireOldTopology(
  kube: KubeWriter,
  d: MoEDeployment,
  old: OldTopology,
): Promise<EventSpec | undefined> {
  const ns = d.metadata.namespace;
  const names = childNames(d.metadata.name!);
  const gone: string[] = [];
  const del = async (ref: { apiVersion: string; kind: string; name: string }, uid?: string): Promise<boolean> => {
    try {
      await kube.delete({ ...ref, namespace: ns }, uid ? { uid } : {});
      return true;
    } catch (err) {
      if (!(err instanceof KubeApiError && err.kubeError.kind === "NotFound")) throw err;
      return false;
    }
  };
  if (old.lws && (await del({ apiVersion: LWS_API_VERSION, kind: LWS_KIND, name: names.epGroups })))
    gone.push(`LeaderWorkerSet ${names.epGroups}`);
  if (
    old.router &&
    (await del({ apiVersion: "apps/v1", kind: "Deployment", name: names.router }, old.router.metadata?.uid))
  )
    gone.push(`router Deployment ${names.router}`);
  let pods = 0;
  for (const p of old.shardPods)
    if (await del({ apiVersion: "v1", kind: "Pod", name: p.metadata!.name! }, p.metadata?.uid)) pods++;
  if (pods > 0) gone.push(`${pods} expert shard pod(s)`);
  if (gone.length === 0) return undefined;
  return {
    type: "Normal",
    reason: "TopologySwitched",
    message: `spec.serving.topology is ${d.spec.serving.topology} and it serves (or waits for GPUs the old children hold): deleted the ${old.topology} children: ${gone.join(", ")}`,
  };
}
