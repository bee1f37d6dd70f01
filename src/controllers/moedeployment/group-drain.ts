// Drain of EP groups before a scale-down (docs/adr/0021-wide-ep-groups.md). LWS removes the
// highest group indices when replicas fall, so those groups are marked first: the leader pod of
// each Ready group at or above the new count gets `moe.dev/draining-since` (the expert shards'
// drain annotation), so a router or gateway can stop sending to it; replicas are lowered to just
// above the highest such group still within its drain time (--drain-seconds): a group drained that
// long, or not Ready (it serves nothing), goes as soon as every group above it can. A scale-up, or
// a decision back at or above a marked group, removes the marks. No I/O.
import type { CachedPod } from "./cached.ts";
import type { MoEDeployment } from "../../api/schema.ts";
import type { GroupState } from "../../domain/wideep/groups.ts";
import { childNames } from "./children.ts";
import { ShardAnnotation } from "./codecs/shard-pod.ts";
import { LwsLabel } from "./codecs/leaderworkerset.ts";

/** Label the LWS pod webhook sets: the leader of a group is worker 0. */
export const LWS_WORKER_INDEX = "leaderworkerset.sigs.k8s.io/worker-index";

export interface GroupDrain {
  /** The LeaderWorkerSet's replicas now: the decision, or the current count while groups drain. */
  readonly replicas: number;
  /** Indices of the groups draining (marked, waiting for the drain time). */
  readonly draining: readonly number[];
  /** Leader pods to mark draining now, and pods whose mark is removed. */
  readonly mark: readonly string[];
  readonly unmark: readonly string[];
  /** When the last drain ends (ms from now), while groups drain. */
  readonly remainingMs?: number;
  /** The drain mark's value for pods marked now (RFC 3339). */
  readonly atIso: string;
}

interface Leader {
  readonly name: string;
  readonly group: number;
  readonly drainStartedMs?: number;
}

function leaders(d: MoEDeployment, pods: readonly CachedPod[]): Leader[] {
  const lws = childNames(d.metadata.name!).epGroups;
  return pods.flatMap((p) => {
    const l = p.metadata?.labels ?? {};
    if (l[LwsLabel.name] !== lws || l[LWS_WORKER_INDEX] !== "0" || p.metadata?.deletionTimestamp) return [];
    const since = p.metadata?.annotations?.[ShardAnnotation.drainingSince];
    const ms = since ? Date.parse(since) : NaN;
    return [
      {
        name: p.metadata!.name!,
        group: Number(l[LwsLabel.groupIndex]),
        ...(Number.isFinite(ms) ? { drainStartedMs: ms } : {}),
      },
    ];
  });
}

/**
 * The replicas to apply and the marks to write for `target` groups when `provisioned` run now.
 * `states` are the provisioned groups' states (index order).
 */
export function planGroupDrain(
  d: MoEDeployment,
  pods: readonly CachedPod[],
  x: { target: number; provisioned: number; states: readonly GroupState[]; drainMs: number; nowMs: number },
): GroupDrain {
  const all = leaders(d, pods);
  const atIso = new Date(x.nowMs).toISOString();
  const marked = all.filter((l) => l.drainStartedMs !== undefined);
  // Marks below the target are stale (the decision came back up): removed.
  const unmark = marked.filter((l) => l.group < x.target).map((l) => l.name);
  if (x.target >= x.provisioned) return { replicas: x.target, draining: [], mark: [], unmark, atIso };
  // LWS removes the highest indices first, so replicas fall to just above the highest group that
  // still has drain time left: the groups above it (drained, or not Ready) go now, and a group marked
  // later (the decision fell again) does not hold back those marked before it.
  const left = (g: number): number | undefined => {
    if (!x.states[g]?.ready) return undefined; // serves nothing: removed without a drain
    const leader = all.find((l) => l.group === g);
    if (!leader) return undefined;
    return leader.drainStartedMs === undefined ? x.drainMs : leader.drainStartedMs + x.drainMs - x.nowMs;
  };
  let replicas = x.target;
  for (let g = x.provisioned - 1; g >= x.target; g--) {
    if ((left(g) ?? 0) > 0) {
      replicas = g + 1;
      break;
    }
  }
  if (replicas === x.target) return { replicas: x.target, draining: [], mark: [], unmark, atIso };
  const mark: string[] = [];
  const draining: number[] = [];
  let remainingMs = 0;
  for (let g = x.target; g < replicas; g++) {
    const ms = left(g);
    if (ms === undefined) continue;
    draining.push(g);
    const leader = all.find((l) => l.group === g)!;
    if (leader.drainStartedMs === undefined) mark.push(leader.name);
    remainingMs = Math.max(remainingMs, ms);
  }
  return { replicas, draining, mark, unmark, remainingMs, atIso };
}
