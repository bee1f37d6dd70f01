// The fleet emulator's model of WideEP groups (issue 18, docs/adr/0021-wide-ep-groups.md): an EP
// group is one engine instance over nodesPerGroup pods of gpusPerNode GPUs that run each layer in
// lockstep (data-parallel attention, expert-parallel all-to-all), so the slowest GPU of the group
// sets its pace: the most loaded GPU under the group's placement, divided by its relative speed.
// A group serves only when all its pods are Ready (the operator's rule, src/domain/wideep/groups.ts);
// requests are spread evenly over the groups that serve. Latency per group comes from the
// simulator's ground-truth queue (src/sim/truth.ts), one queue per group. Served to Prometheus by
// src/emulator/group-server.ts (`make demo-wideep`).
import { groupStates, gpusPerGroup, type GroupShape } from "../domain/wideep/groups.ts";
import {
  defaultGroundTruthParams,
  resolveWaitWeight,
  stepSecond,
  type GroundTruthParams,
  type QueueState,
} from "../sim/truth.ts";

export interface EmulatedGroupPod {
  readonly name: string;
  /** The LeaderWorkerSet group index. */
  readonly group: number;
  readonly ready: boolean;
  readonly terminating?: boolean;
  /** Bound to a node (a Ready pod is). */
  readonly nodeName?: string;
}

/** experts[gpu][layer]: the experts each GPU of a group holds (one placement shared by the groups). */
export type GroupPlacement = ReadonlyArray<ReadonlyArray<ReadonlyArray<number>>>;

export interface GroupSecond {
  readonly index: number;
  /** All nodesPerGroup pods exist, none terminating, all Ready. */
  readonly serving: boolean;
  readonly tokensPerSecond: number;
  /** mean GPU load / max over GPUs of (load / relative speed), harmonic mean over layers; 1 when idle. */
  readonly pace: number;
  /** The GPU (0..G-1) that set the pace in the most layers; undefined when the group is idle. */
  readonly slowestGpu?: number;
  /** Latency of the group's tokens (ms); NaN when it does not serve; Infinity when an expert with heat has no holder. */
  readonly latencyMs: number;
}

export interface GroupFleetSecond {
  readonly groups: readonly GroupSecond[];
  readonly servingGroups: number;
  /** GPUs of the serving groups (whole groups only). */
  readonly readyGpus: number;
  /** The slowest serving group's latency (ms); Infinity when no group serves and there is load. */
  readonly latencyMs: number;
}

export interface GroupFleetOptions {
  readonly shape: GroupShape;
  readonly layerCount: number;
  readonly expertCount: number;
  readonly topK: number;
  readonly params?: GroundTruthParams;
}

/** Share of a group's tokens that cross nodes, as FleetEmulator scales its node spread. */
const CROSS_NODE_WEIGHT = 0.3;

export class GroupFleetEmulator {
  readonly shape: GroupShape;
  readonly params: GroundTruthParams;
  readonly #o: GroupFleetOptions;
  readonly #queues = new Map<number, QueueState>();
  readonly #waitWeight: number;

  constructor(o: GroupFleetOptions) {
    this.#o = o;
    this.shape = o.shape;
    this.params = o.params ?? defaultGroundTruthParams("itl");
    this.#waitWeight = resolveWaitWeight(this.params, 200);
  }

  /**
   * One second of traffic over the groups 0..groups-1. `weights[layer][expert]` is the routing
   * distribution; `speeds.get(group)[gpu]` a GPU's relative speed (default 1; 0.5 = half as fast).
   */
  step(
    groups: number,
    pods: readonly EmulatedGroupPod[],
    placement: GroupPlacement | ((group: number) => GroupPlacement),
    weights: ReadonlyArray<ReadonlyArray<number>>,
    tokensPerSecond: number,
    speeds: ReadonlyMap<number, readonly number[]> = new Map(),
  ): GroupFleetSecond {
    // One placement for every group, or each group's own (a group moved in place, or started on another version).
    const placementOf = typeof placement === "function" ? placement : () => placement;
    const states = groupStates(
      pods.map((p) => ({
        name: p.name,
        group: p.group,
        ready: p.ready,
        scheduled: p.ready || p.nodeName !== undefined,
        terminating: p.terminating === true,
        createdMs: NaN,
      })),
      groups,
      this.shape,
      0,
    );
    // Groups removed by a scale-down leave no backlog for a later group with the same index.
    for (const index of [...this.#queues.keys()]) if (index >= groups) this.#queues.delete(index);
    const servingGroups = states.filter((s) => s.ready).length;
    const perGroup = servingGroups > 0 ? tokensPerSecond / servingGroups : 0;
    const out = states.map((s): GroupSecond => {
      if (!s.ready) {
        this.#queues.delete(s.index); // a group that stops serving restarts empty
        return { index: s.index, serving: false, tokensPerSecond: 0, pace: 1, latencyMs: NaN };
      }
      return this.#groupSecond(s.index, placementOf(s.index), weights, perGroup, speeds.get(s.index));
    });
    const served = out.filter((g) => g.serving).map((g) => g.latencyMs);
    const latencyMs = served.length > 0 ? Math.max(...served) : tokensPerSecond > 0 ? Infinity : NaN;
    return { groups: out, servingGroups, readyGpus: servingGroups * gpusPerGroup(this.shape), latencyMs };
  }

  #groupSecond(
    index: number,
    placement: GroupPlacement,
    weights: ReadonlyArray<ReadonlyArray<number>>,
    tokensPerSecond: number,
    speed: readonly number[] | undefined,
  ): GroupSecond {
    const g = gpusPerGroup(this.shape);
    const { pace, slowestGpu, unserved } = groupPace(this.#o, g, placement, weights, tokensPerSecond, speed);
    let queue = this.#queues.get(index);
    if (queue === undefined) this.#queues.set(index, (queue = { backlogTokens: 0 }));
    const nodes = this.shape.nodesPerGroup;
    const latencyMs = unserved
      ? Infinity
      : stepSecond(this.params, this.#waitWeight, queue, tokensPerSecond, {
          readyGpus: g,
          balancedness: pace,
          crossNodeShare: nodes <= 1 ? 0 : (1 - 1 / nodes) * CROSS_NODE_WEIGHT,
        });
    return {
      index,
      serving: true,
      tokensPerSecond,
      pace,
      ...(slowestGpu === undefined ? {} : { slowestGpu }),
      latencyMs,
    };
  }
}

/**
 * The pace of one group: per layer, each expert's tokens are split over the group's GPUs holding it;
 * the layer runs as long as its slowest GPU (load / speed), so its pace is mean load / that maximum.
 * Layers combine by harmonic mean, as the operator combines balancedness.
 */
export function groupPace(
  o: Pick<GroupFleetOptions, "layerCount" | "expertCount" | "topK">,
  gpus: number,
  placement: GroupPlacement,
  weights: ReadonlyArray<ReadonlyArray<number>>,
  tokensPerSecond: number,
  speed: readonly number[] | undefined,
): { pace: number; slowestGpu?: number; unserved: boolean } {
  const { layerCount: L, expertCount: E } = o;
  let invSum = 0;
  let layers = 0;
  let unserved = false;
  const slowestCount = new Array<number>(gpus).fill(0);
  for (let l = 0; l < L; l++) {
    const load = layerLoad(E, gpus, placement, l, weights[l] ?? [], tokensPerSecond * o.topK);
    if (load === undefined) continue;
    if (load.unserved) unserved = true;
    let total = 0;
    let worst = 0;
    let worstGpu = 0;
    for (let i = 0; i < gpus; i++) {
      total += load.tokens[i] as number;
      const t = (load.tokens[i] as number) / Math.max(1e-9, speed?.[i] ?? 1);
      if (t > worst) [worst, worstGpu] = [t, i];
    }
    if (!(worst > 0)) continue;
    invSum += worst / (total / gpus);
    layers++;
    slowestCount[worstGpu] = (slowestCount[worstGpu] as number) + 1;
  }
  if (layers === 0) return { pace: 1, unserved };
  const slowestGpu = slowestCount.indexOf(Math.max(...slowestCount));
  return { pace: layers / invSum, slowestGpu, unserved };
}

function layerLoad(
  E: number,
  gpus: number,
  placement: GroupPlacement,
  l: number,
  row: ReadonlyArray<number>,
  visits: number,
): { tokens: Float64Array; unserved: boolean } | undefined {
  let sum = 0;
  for (let e = 0; e < E; e++) sum += Math.max(0, row[e] ?? 0);
  if (!(sum > 0) || !(visits > 0)) return undefined;
  const holders: number[][] = Array.from({ length: E }, () => []);
  for (let i = 0; i < gpus; i++)
    for (const e of new Set(placement[i]?.[l] ?? [])) if (e >= 0 && e < E) holders[e]?.push(i);
  const tokens = new Float64Array(gpus);
  let unserved = false;
  for (let e = 0; e < E; e++) {
    const t = (visits * Math.max(0, row[e] ?? 0)) / sum;
    const h = holders[e] as number[];
    if (h.length === 0) {
      if (t > 0) unserved = true;
      continue;
    }
    for (const i of h) tokens[i] = (tokens[i] as number) + t / h.length;
  }
  return { tokens, unserved };
}
