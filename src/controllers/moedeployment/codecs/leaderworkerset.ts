// The WideEP codec (docs/adr/0021-wide-ep-groups.md): one LeaderWorkerSet per role (one role in
// this version) whose replicas are EP groups of nodesPerGroup pods, each asking gpusPerNode GPUs;
// and the reading of a group's pods by the labels the LWS pod webhook sets.
import type { KubernetesObject, V1PodSpec } from "@kubernetes/client-node";
import type { CachedPod } from "../cached.ts";
import { Annotation, LabelValue } from "../../../api/constants.ts";
import type { MoEDeployment } from "../../../api/schema.ts";
import type { GroupPod } from "../../../domain/wideep/groups.ts";
import type { GroupLeader } from "../../../domain/wideep/moves.ts";
import { fnv1a64 } from "../../../domain/fnv.ts";
import { childNames, commonLabels, ownerReference, podSpecFrom, withoutOperatorKeys } from "../children.ts";
import { RouterAnnotation } from "./router.ts";
import { PLACEMENT_APPLIED_CONDITION, ShardAnnotation } from "./shard-pod.ts";

export const LWS_API_VERSION = "leaderworkerset.x-k8s.io/v1";
export const LWS_KIND = "LeaderWorkerSet";

/** Labels the LeaderWorkerSet controller's pod webhook puts on every pod of a group. */
export const LwsLabel = {
  name: "leaderworkerset.sigs.k8s.io/name",
  groupIndex: "leaderworkerset.sigs.k8s.io/group-index",
  /** The leader of a group is worker 0. */
  workerIndex: "leaderworkerset.sigs.k8s.io/worker-index",
} as const;

/** Where the placement ConfigMap is mounted in the first container: --init-expert-location <dir>/physical_to_logical_map.json. */
export const PLACEMENT_MOUNT_PATH = "/etc/moe-placement";
const PLACEMENT_VOLUME = "moe-placement";

/** The pod spec with the placement ConfigMap mounted read-only at PLACEMENT_MOUNT_PATH in the first container. */
function withPlacementMount(spec: V1PodSpec, configMap: string): V1PodSpec {
  const volumes = (spec.volumes ?? []).filter((v) => v.name !== PLACEMENT_VOLUME);
  return {
    ...spec,
    volumes: [...volumes, { name: PLACEMENT_VOLUME, configMap: { name: configMap } }],
    containers: spec.containers.map((c, i) =>
      i !== 0
        ? c
        : {
            ...c,
            volumeMounts: [
              ...(c.volumeMounts ?? []).filter((m) => m.name !== PLACEMENT_VOLUME),
              { name: PLACEMENT_VOLUME, mountPath: PLACEMENT_MOUNT_PATH, readOnly: true },
            ],
          },
    ),
  };
}

export interface LeaderWorkerSet extends KubernetesObject {
  spec: {
    replicas: number;
    leaderWorkerTemplate: {
      size: number;
      restartPolicy: string;
      workerTemplate: {
        metadata: { labels: Record<string, string>; annotations?: Record<string, string> };
        spec: V1PodSpec;
      };
    };
  };
}

/**
 * The LeaderWorkerSet with `replicas` groups, for server-side apply with the operator's field
 * manager: the operator owns spec.replicas and the template; a group restarts as a whole when
 * one of its pods does (RecreateGroupOnPodRestart), so a group is never left half-running.
 */
export function renderLeaderWorkerSet(d: MoEDeployment, replicas: number): LeaderWorkerSet {
  const name = d.metadata.name!;
  const w = d.spec.serving.wideEP;
  if (!w) throw new Error(`spec.serving.wideEP is required for topology ${d.spec.serving.topology}`);
  const labels = commonLabels(d, LabelValue.componentEpGroup);
  const annotations = w.template.metadata?.annotations && withoutOperatorKeys(w.template.metadata.annotations);
  return {
    apiVersion: LWS_API_VERSION,
    kind: LWS_KIND,
    metadata: {
      name: childNames(name).epGroups,
      namespace: d.metadata.namespace,
      labels,
      ownerReferences: [ownerReference(d)],
    },
    spec: {
      replicas,
      leaderWorkerTemplate: {
        size: w.nodesPerGroup,
        restartPolicy: "RecreateGroupOnPodRestart",
        workerTemplate: {
          metadata: {
            labels: { ...withoutOperatorKeys(w.template.metadata?.labels), ...labels },
            ...(annotations ? { annotations } : {}),
          },
          spec: withPlacementMount(
            podSpecFrom(d, w.template, w.gpusPerNode, [
              { name: "MOE_DEPLOYMENT", value: name },
              { name: "MOE_PLACEMENT_CONFIGMAP", value: childNames(name).placement },
            ]),
            childNames(name).placement,
          ),
        },
      },
    },
  };
}

/**
 * The LeaderWorkerSet to apply, stamped with its content hash (the router's annotation,
 * `moe.dev/applied-hash`); undefined when the live one carries the same hash and a hand edit
 * changed none of replicas, group size or the containers' images since: an unchanged world
 * makes no write. `live` undefined (not found, or not read) always applies.
 */
export function lwsToApply(want: LeaderWorkerSet, live: LeaderWorkerSet | undefined): LeaderWorkerSet | undefined {
  const hash = fnv1a64(JSON.stringify(want));
  const applied = live?.metadata?.annotations?.[RouterAnnotation.appliedHash];
  if (live && !live.metadata?.deletionTimestamp && applied === hash && lwsDrift(want, live) === undefined)
    return undefined;
  return {
    ...want,
    metadata: {
      ...want.metadata,
      annotations: { ...want.metadata?.annotations, [RouterAnnotation.appliedHash]: hash },
    },
  };
}

/**
 * What someone else changed in the live LeaderWorkerSet since the operator applied it: only when the
 * operator's rendering is the one it last applied (same applied hash), so a difference is a hand edit
 * (or another controller), not a new decision. Undefined otherwise, and when nothing it owns differs.
 */
export function lwsHandEdit(want: LeaderWorkerSet, live: LeaderWorkerSet | undefined): string | undefined {
  if (!live || live.metadata?.deletionTimestamp) return undefined;
  if (live.metadata?.annotations?.[RouterAnnotation.appliedHash] !== fnv1a64(JSON.stringify(want))) return undefined;
  return lwsDrift(want, live);
}

/** What a hand edit changed in a LeaderWorkerSet (replicas, group size, images), if anything. */
export function lwsDrift(want: LeaderWorkerSet, live: LeaderWorkerSet): string | undefined {
  const changes: string[] = [];
  const w = want.spec;
  const l = live.spec;
  if (l?.replicas !== w.replicas) changes.push(`replicas ${l?.replicas}, want ${w.replicas}`);
  if (l?.leaderWorkerTemplate?.size !== w.leaderWorkerTemplate.size)
    changes.push(`size ${l?.leaderWorkerTemplate?.size}, want ${w.leaderWorkerTemplate.size}`);
  const images = (x: LeaderWorkerSet) =>
    (x.spec?.leaderWorkerTemplate?.workerTemplate?.spec?.containers ?? []).map((c) => `${c.name}=${c.image}`).join(",");
  if (images(live) !== images(want)) changes.push(`containers ${images(live)}, want ${images(want)}`);
  return changes.length > 0 ? changes.join("; ") : undefined;
}

const podReady = (p: CachedPod) =>
  p.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True") === true;

/** A pod of the deployment's LeaderWorkerSet as group accounting reads it; undefined for other pods. */
export function readGroupPod(d: MoEDeployment, p: CachedPod): GroupPod | undefined {
  const labels = p.metadata?.labels ?? {};
  if (labels[LwsLabel.name] !== childNames(d.metadata.name!).epGroups) return undefined;
  const group = Number(labels[LwsLabel.groupIndex]);
  if (!Number.isInteger(group) || group < 0) return undefined;
  const scheduled = p.status?.conditions?.find((c) => c.type === "PodScheduled");
  return {
    name: p.metadata?.name ?? "",
    group,
    ready: podReady(p) && !p.metadata?.deletionTimestamp,
    scheduled: Boolean(p.spec?.nodeName),
    ...(p.spec?.nodeName ? { nodeName: p.spec.nodeName } : {}),
    terminating: Boolean(p.metadata?.deletionTimestamp),
    createdMs: Date.parse(String(p.metadata?.creationTimestamp ?? "")),
    ...readyAt(p),
    unschedulableMessage: scheduled?.status === "False" ? scheduled.message : undefined,
  };
}

/** When the pod turned Ready (its Ready condition's transition), if it is Ready. */
function readyAt(p: CachedPod): { readyAtMs?: number } {
  const c = p.status?.conditions?.find((x) => x.type === "Ready" && x.status === "True");
  const ms = c?.lastTransitionTime ? new Date(c.lastTransitionTime).getTime() : NaN;
  return Number.isFinite(ms) ? { readyAtMs: ms } : {};
}

/**
 * InPlace under WideEP (ADR 0021 "Running groups move in place"): the group's engine (or an agent
 * beside it) answers on its leader pod through pods/status with the condition
 * moe.dev/placement-applied: status True, reason Applied, message "serving placement version V";
 * or reason Refused, message "refused placement version V: <why>; serving placement version U".
 * The operator writes the target on the leader: moe.dev/placement-version, moe.dev/placement-hash
 * and moe.dev/target-since. The messages differ from a shard's ("serving generation G"), so a pod
 * is never read with the other protocol.
 */
export const GROUP_SERVING_RE = /serving placement version (\d{1,12})/;
const GROUP_REFUSED_RE = /refused placement version (\d{1,12})(?::\s*([^;]*))?/;

export function groupAckMessage(version: number): string {
  return `serving placement version ${version}`;
}

export function groupRefusalMessage(version: number, why: string, served?: number): string {
  return `refused placement version ${version}: ${why}` + (served !== undefined ? `; ${groupAckMessage(served)}` : "");
}

/** The leader of each group of the deployment's LeaderWorkerSet, with its target and acknowledgement. */
export function readGroupLeaders(
  d: MoEDeployment,
  pods: readonly CachedPod[],
  serving: (group: number) => boolean,
): GroupLeader[] {
  const lws = childNames(d.metadata.name!).epGroups;
  return pods.flatMap((p) => {
    const l = p.metadata?.labels ?? {};
    if (l[LwsLabel.name] !== lws || l[LwsLabel.workerIndex] !== "0" || p.metadata?.deletionTimestamp) return [];
    const group = Number(l[LwsLabel.groupIndex]);
    if (!Number.isInteger(group) || group < 0) return [];
    return [{ group, pod: p.metadata!.name!, serving: serving(group), ...leaderPlacement(p) }];
  });
}

/** A leader's target (its annotations) and what its engine reported (its PlacementApplied condition). */
function leaderPlacement(p: CachedPod): Omit<GroupLeader, "group" | "pod" | "serving"> {
  const a = p.metadata?.annotations ?? {};
  const target = Number(a[Annotation.placementVersion]);
  const since = Date.parse(a[ShardAnnotation.targetSince] ?? "");
  const c = p.status?.conditions?.find((x) => x.type === PLACEMENT_APPLIED_CONDITION);
  const served = GROUP_SERVING_RE.exec(c?.message ?? "");
  const refused = GROUP_REFUSED_RE.exec(c?.message ?? "");
  const appliedAt = c?.lastTransitionTime ? new Date(c.lastTransitionTime).getTime() : NaN;
  return {
    ...(Number.isFinite(appliedAt) ? { appliedAtMs: appliedAt } : {}),
    ...(Number.isInteger(target) && target > 0 ? { targetVersion: target } : {}),
    ...(Number.isFinite(since) ? { targetSinceMs: since } : {}),
    // A refusal names what the group still serves whatever the condition's status.
    ...(served && (c?.status === "True" || refused) ? { servedVersion: Number(served[1]) } : {}),
    ...(refused ? { refusedVersion: Number(refused[1]), refusal: (refused[2] ?? "").trim().slice(0, 200) } : {}),
  };
}

/** The merge patch that targets a group's leader at a placement version. */
export function groupTargetPatch(version: number, hash: string, nowIso: string) {
  return {
    metadata: {
      annotations: {
        [Annotation.placementVersion]: String(version),
        [Annotation.placementHash]: hash,
        [ShardAnnotation.targetSince]: nowIso,
      },
    },
  };
}
