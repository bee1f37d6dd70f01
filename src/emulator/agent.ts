// The shard side of in-place expert moves (spec.placement.moves.mode InPlace, ADR 0018), played by the
// fleet emulator for every emulated shard pod: it sees a pod whose target generation
// (moe.dev/target-generation) is above the one it acknowledged, loads the experts the target adds
// (bytes / bandwidth of the path, layer chunk by layer chunk under the stall bound), keeps serving
// its old set meanwhile, and then acknowledges through the pods/status subresource with the condition
// moe.dev/placement-applied. A seeded share of moves is refused or never acknowledged (a timeout).
// With `firstLoad` set it also models the cold-start tiers of a new shard's first load (ADR 0019,
// ADR 0022): once the pod's containers run, the weights come from peers, the node's staged disk or
// the remote store, at that tier's bandwidth.
import { CoreV1Api, setHeaderOptions, PatchStrategy, type KubeConfig, type V1Pod } from "@kubernetes/client-node";
import type { Logger } from "pino";
import { createRng, type Rng } from "../domain/rng.ts";
import { DEFAULT_MOVE_BANDWIDTH, type MoveBandwidth, type MovePath } from "../domain/placement/move-cost.ts";
import { intersectSets, setSize, unionSets, type ExpertSets, type InPlaceState } from "../domain/inplace/index.ts";
import { chooseLoadTier, tierBytesPerSecond, type LoadTier, type LoadTierBandwidth } from "../domain/prewarm/tiers.ts";
import { STAGED_LABEL_PREFIX } from "../controllers/moedeployment/staging.ts";
import {
  PLACEMENT_APPLIED_CONDITION,
  readInPlace,
  readShardPod,
  roomSuffix,
  ShardAnnotation,
} from "../controllers/moedeployment/codecs/shard-pod.ts";

function subtractSets(a: ExpertSets, b: ExpertSets): number[][] {
  return a.map((row, l) => {
    const drop = new Set(b[l] ?? []);
    return row.filter((e) => !drop.has(e));
  });
}

export interface ShardAgentOptions {
  kubeConfig: KubeConfig;
  namespace: string;
  logger: Logger;
  seed: number;
  /** Bytes of one expert replica of one layer. */
  expertWeightBytes: number;
  bandwidth?: MoveBandwidth;
  /** Longest stall of one chunk (consecutive MoE layers) of a move, seconds. */
  maxStallSeconds?: number;
  /** Share of in-place moves (generation >= 2) refused, 0..1. */
  refuseRate?: number;
  /** Share of in-place moves never acknowledged, 0..1. */
  timeoutRate?: number;
  /**
   * Expert replicas (summed over layers) one shard's memory holds. Set: acknowledgements report the
   * room left ("room for N more expert replicas"), and a target larger than this is refused.
   * Unset: no limit is reported or enforced.
   */
  expertCapacity?: number;
  /**
   * Cold-start tiers of a new shard's first load (until it first acknowledges). Unset: the first load
   * starts once the pod has a node and moves its experts at the move bandwidths like any move.
   */
  firstLoad?: FirstLoadOptions;
}

export interface FirstLoadOptions {
  /** Bytes per second one loading shard gets from each tier. */
  bandwidth: LoadTierBandwidth;
  /** The engine fetches from running peers that hold its experts (default true). */
  peerLoading?: boolean;
  /** A node's labels (the staged mark is one), or undefined when the node is not known. */
  nodeLabels: (node: string) => Readonly<Record<string, string>> | undefined;
}

/** A shard's view for routing: what it serves, on which node. */
export interface Holder {
  name: string;
  node?: string;
  served: ExpertSets;
}

/** Seconds each layer's new experts take to arrive on the receiving shard (its link serializes them). */
export function layerLoadSeconds(
  self: Holder,
  target: ExpertSets,
  others: readonly Holder[],
  bytes: number,
  bw: MoveBandwidth,
): number[] {
  const speed: Record<MovePath, number> = {
    nvlink: bw.nvlinkBytesPerSecond,
    network: bw.networkBytesPerSecond,
    storage: bw.storageBytesPerSecond,
  };
  return target.map((row, l) => {
    const have = new Set(self.served[l] ?? []);
    let seconds = 0;
    for (const e of row) {
      if (have.has(e)) continue;
      const holders = others.filter((o) => o.served[l]?.includes(e));
      const path: MovePath =
        holders.length === 0
          ? "storage"
          : self.node !== undefined && holders.some((o) => o.node === self.node)
            ? "nvlink"
            : "network";
      seconds += bytes / speed[path];
    }
    return seconds;
  });
}

/**
 * Where a new shard's first load comes from, as an engine loading from peers would report it: "peer"
 * when a running shard serves every expert it needs, else "remote" (the weight store).
 */
export function firstLoadTier(self: Holder, target: ExpertSets, others: readonly Holder[]): "peer" | "remote" {
  const fromPeers = target.every((row, l) =>
    row.every((e) => self.served[l]?.includes(e) || others.some((o) => o.served[l]?.includes(e))),
  );
  return fromPeers ? "peer" : "remote";
}

/**
 * The node label that marks the weights staged for the pod's deployment, and the digest it must carry:
 * read from the pod's preferred node-affinity term on the mark (the operator adds it with
 * spec.prewarm.staging enabled). Undefined without such a term.
 */
export function stagedMarkOf(p: V1Pod): { key: string; digest: string } | undefined {
  const terms = p.spec?.affinity?.nodeAffinity?.preferredDuringSchedulingIgnoredDuringExecution ?? [];
  for (const t of terms)
    for (const e of t.preference.matchExpressions ?? []) {
      const digest = e.values?.[0];
      if (e.key.startsWith(STAGED_LABEL_PREFIX) && e.operator === "In" && digest) return { key: e.key, digest };
    }
  return undefined;
}

/** The pod's node carries its deployment's staged mark with the digest the pod asks for. */
export function onStagedNode(p: V1Pod, nodeLabels: FirstLoadOptions["nodeLabels"]): boolean {
  const mark = stagedMarkOf(p);
  const node = p.spec?.nodeName;
  if (!mark || !node) return false;
  return nodeLabels(node)?.[mark.key] === mark.digest;
}

/**
 * A new shard's first load: its tier by the simulator's rule (chooseLoadTier: peer when peer loading
 * is on and running shards serve every expert it needs, else node disk on a staged node, else remote)
 * and the seconds the experts it still lacks (target minus `loaded`, what an interrupted first load
 * already fetched) take at that tier's bandwidth.
 */
export function firstLoadPlan(
  self: Holder,
  target: ExpertSets,
  others: readonly Holder[],
  o: { peerLoading: boolean; nodeStaged: boolean; bandwidth: LoadTierBandwidth; bytes: number; loaded?: ExpertSets },
): { tier: LoadTier; seconds: number } {
  const peersHoldExperts = firstLoadTier(self, target, others) === "peer";
  const tier = chooseLoadTier({ peerLoading: o.peerLoading, peersHoldExperts, nodeStaged: o.nodeStaged });
  const missing = setSize(subtractSets(target, o.loaded ?? []));
  const bw = tierBytesPerSecond(o.bandwidth, tier);
  return { tier, seconds: bw > 0 ? (missing * o.bytes) / bw : 0 };
}

/** Greedy chunks of consecutive layers, each at most maxStallSeconds (a layer above it alone is its own chunk). */
export function chunkSeconds(perLayer: readonly number[], maxStallSeconds: number): number[] {
  const chunks: number[] = [];
  let open = 0;
  for (const s of perLayer) {
    if (s <= 0) continue;
    if (open > 0 && open + s > maxStallSeconds) {
      chunks.push(open);
      open = 0;
    }
    open += s;
  }
  if (open > 0) chunks.push(open);
  return chunks;
}

const REACK_AFTER_MS = 3_000;

interface Job {
  generation: number;
  /** The first load: the tier it came from, written to moe.dev/load-tier before the acknowledgement. */
  tier?: LoadTier;
  /** With firstLoad tiers: the experts this first load fetches. */
  firstTarget?: ExpertSets;
}

export class ShardAgent {
  readonly #o: ShardAgentOptions;
  readonly #core: CoreV1Api;
  readonly #rng: Rng;
  readonly #jobs = new Map<string, Job>();
  /** pod/generation the agent refused or decided never to acknowledge (an emulated timeout). */
  readonly #done = new Set<string>();
  /**
   * pod/generation acknowledged, and when: acknowledged again if the pod still does not show it a few
   * seconds later (kwok's pod stages rewrite readiness-gate conditions without our message).
   */
  readonly #acked = new Map<string, number>();
  /** With firstLoad tiers: what a pod's first load fetched before it was retargeted, and from which tier. */
  readonly #loaded = new Map<string, { experts: ExpertSets; tier: LoadTier }>();
  #refuseNext = 0;
  #stalls: { chunk: number; seconds: number }[] = [];
  #stopped = false;
  readonly #timers = new Set<ReturnType<typeof setTimeout>>();

  constructor(o: ShardAgentOptions) {
    this.#o = o;
    this.#core = o.kubeConfig.makeApiClient(CoreV1Api);
    this.#rng = createRng(o.seed);
  }

  /** The next n in-place moves are refused (tests). */
  refuseNextMoves(n: number): void {
    this.#refuseNext = n;
  }

  /**
   * Decode stalls (seconds) since the last call. Every decode step visits every shard (expert
   * parallelism), so a step waits for any shard that is applying a chunk; shards move at the same
   * time, so their k-th chunks overlap: one stall per chunk index, as long as the longest shard's.
   */
  takeStalls(): number[] {
    const byChunk: number[] = [];
    for (const { chunk, seconds } of this.#stalls) byChunk[chunk] = Math.max(byChunk[chunk] ?? 0, seconds);
    this.#stalls = [];
    return byChunk.filter((x) => x !== undefined);
  }

  /** Starts a job for every pod whose target is above its acknowledged generation. */
  sync(pods: readonly V1Pod[], lookup: (name: string) => V1Pod | undefined): void {
    const holders = pods.map(holderOf);
    const names = new Set(holders.map((h) => h.name));
    for (const k of [...this.#acked.keys()]) if (!names.has(k.slice(0, k.lastIndexOf("/")))) this.#acked.delete(k);
    for (const k of [...this.#loaded.keys()]) if (!names.has(k)) this.#loaded.delete(k);
    for (const p of pods) {
      const state = readInPlace(p);
      const name = p.metadata!.name!;
      if (!state || !this.#due(p, state)) continue;
      if (this.#o.firstLoad && state.appliedGeneration === 0) {
        this.#startFirstLoad(p, state.generation, state.target, holders, lookup);
        continue;
      }
      if (state.generation >= 2 && this.#decline(p, state.generation, state.appliedGeneration)) continue;
      if (state.generation >= 2 && this.#overCapacity(name, state.generation, state.appliedGeneration, state.target))
        continue;
      const self = holders.find((h) => h.name === name)!;
      const perLayer = layerLoadSeconds(
        self,
        state.target,
        holders.filter((h) => h.name !== name),
        this.#o.expertWeightBytes,
        this.#o.bandwidth ?? DEFAULT_MOVE_BANDWIDTH,
      );
      const chunks = chunkSeconds(perLayer, this.#o.maxStallSeconds ?? 2);
      const others = holders.filter((h) => h.name !== name);
      this.#jobs.set(name, {
        generation: state.generation,
        ...(state.generation === 1 ? { tier: firstLoadTier(self, state.target, others) } : {}),
      });
      this.#runChunks(name, state.generation, chunks, lookup);
    }
  }

  /** A placed, live pod whose target is above its acknowledgement, with no job, refusal or fresh acknowledgement. */
  #due(p: V1Pod, state: InPlaceState): boolean {
    const name = p.metadata!.name!;
    if (!p.spec?.nodeName || p.metadata?.deletionTimestamp) return false;
    if (state.appliedGeneration >= state.generation || state.refusedGeneration === state.generation) return false;
    const key = `${name}/${state.generation}`;
    if (this.#jobs.has(name) || this.#done.has(key)) return false;
    return Date.now() - (this.#acked.get(key) ?? -Infinity) >= REACK_AFTER_MS;
  }

  /**
   * A first load with tiers: starts once the pod's containers run (the engine start is over), loads
   * what it lacks from its tier in one piece, then acknowledges like a move.
   */
  #startFirstLoad(
    p: V1Pod,
    generation: number,
    target: ExpertSets,
    holders: readonly Holder[],
    lookup: (n: string) => V1Pod | undefined,
  ): void {
    const fl = this.#o.firstLoad!;
    if (p.status?.phase !== "Running") return;
    const name = p.metadata!.name!;
    const before = this.#loaded.get(name);
    const plan = firstLoadPlan(
      holders.find((h) => h.name === name)!,
      target,
      holders.filter((h) => h.name !== name),
      {
        peerLoading: fl.peerLoading ?? true,
        nodeStaged: onStagedNode(p, fl.nodeLabels),
        bandwidth: fl.bandwidth,
        bytes: this.#o.expertWeightBytes,
        ...(before ? { loaded: before.experts } : {}),
      },
    );
    this.#jobs.set(name, { generation, tier: before?.tier ?? plan.tier, firstTarget: target });
    this.#o.logger.info({ pod: name, generation, tier: plan.tier, seconds: plan.seconds }, "emulated first load");
    this.#runChunks(name, generation, plan.seconds > 0 ? [plan.seconds] : [], lookup);
  }

  /** Refused or ignored (a timeout) by the configured rates or the test override; true when declined. */
  #decline(p: V1Pod, generation: number, applied: number): boolean {
    const name = p.metadata!.name!;
    const r = this.#rng.next();
    const refuse = this.#refuseNext > 0 || r < (this.#o.refuseRate ?? 0);
    if (refuse) {
      if (this.#refuseNext > 0) this.#refuseNext--;
      this.#done.add(`${name}/${generation}`);
      void this.#writeCondition(name, {
        status: applied >= 1 ? "True" : "False",
        reason: "Refused",
        message: `refused generation ${generation}: not enough free slot memory (emulated); serving generation ${applied}`,
      });
      return true;
    }
    if (r < (this.#o.refuseRate ?? 0) + (this.#o.timeoutRate ?? 0)) {
      this.#done.add(`${name}/${generation}`);
      this.#o.logger.info({ pod: name, generation }, "emulated shard ignores its target (timeout)");
      return true;
    }
    return false;
  }

  /** A target that does not fit expertCapacity is refused, saying the room the shard has; true when refused. */
  #overCapacity(name: string, generation: number, applied: number, target: ExpertSets): boolean {
    const capacity = this.#o.expertCapacity;
    if (capacity === undefined || setSize(target) <= capacity) return false;
    this.#done.add(`${name}/${generation}`);
    void this.#writeCondition(name, {
      status: applied >= 1 ? "True" : "False",
      reason: "Refused",
      message: `refused generation ${generation}: ${setSize(target)} expert replicas do not fit in ${capacity} (emulated); serving generation ${applied}`,
    });
    return true;
  }

  /** The room suffix of an acknowledgement, when a capacity is set. */
  #room(target: ExpertSets): string {
    const capacity = this.#o.expertCapacity;
    return capacity === undefined ? "" : roomSuffix(capacity - setSize(target));
  }

  /** Applies the chunks one after another (each stalls the shard), then acknowledges. */
  #runChunks(name: string, generation: number, chunks: readonly number[], lookup: (n: string) => V1Pod | undefined) {
    const step = (i: number) => {
      if (this.#stopped) return;
      if (i >= chunks.length) {
        const job = this.#jobs.get(name);
        const tier = job?.tier;
        this.#jobs.delete(name);
        if (job?.firstTarget && tier) {
          const loaded = this.#loaded.get(name)?.experts ?? [];
          this.#loaded.set(name, { experts: unionSets(loaded, job.firstTarget), tier });
        }
        const p = lookup(name);
        const now = p ? readInPlace(p) : undefined;
        if (!now || now.generation !== generation) return; // retargeted or gone: the next sync starts over
        this.#acked.set(`${name}/${generation}`, Date.now());
        void (async () => {
          if (tier && p?.metadata?.annotations?.[ShardAnnotation.loadTier] === undefined)
            await this.#writeTier(name, tier);
          await this.#writeCondition(name, {
            status: "True",
            reason: "Applied",
            message: `serving generation ${generation}${this.#room(now.target)}`,
          });
        })();
        return;
      }
      // A move stalls the serving shard; a first load (even of a retargeted pod) serves nothing yet.
      if (generation >= 2 && !this.#jobs.get(name)?.firstTarget) this.#stalls.push({ chunk: i, seconds: chunks[i]! });
      this.#later(() => step(i + 1), chunks[i]! * 1000);
    };
    step(0);
  }

  #later(fn: () => void, ms: number): void {
    const t = setTimeout(() => {
      this.#timers.delete(t);
      fn();
    }, ms);
    this.#timers.add(t);
  }

  /** The first load's tier, as the engine reports it (moe.dev/load-tier); best effort. */
  async #writeTier(name: string, tier: string): Promise<void> {
    try {
      await this.#core.patchNamespacedPod(
        {
          name,
          namespace: this.#o.namespace,
          body: { metadata: { annotations: { [ShardAnnotation.loadTier]: tier } } },
        },
        setHeaderOptions("Content-Type", PatchStrategy.MergePatch),
      );
    } catch (err) {
      this.#o.logger.warn({ pod: name, err: (err as Error).message }, "could not write the load tier");
    }
  }

  async #writeCondition(name: string, c: { status: string; reason: string; message: string }): Promise<void> {
    try {
      await this.#core.patchNamespacedPodStatus(
        {
          name,
          namespace: this.#o.namespace,
          body: {
            status: {
              conditions: [{ type: PLACEMENT_APPLIED_CONDITION, ...c, lastTransitionTime: new Date().toISOString() }],
            },
          },
        },
        setHeaderOptions("Content-Type", PatchStrategy.StrategicMergePatch),
      );
      this.#o.logger.info({ pod: name, ...c }, "emulated shard acknowledged");
    } catch (err) {
      // Not answered: the next sync tries again (the pod still shows the target above its acknowledgement).
      for (const k of [...this.#done]) if (k.startsWith(`${name}/`)) this.#done.delete(k);
      for (const k of [...this.#acked.keys()]) if (k.startsWith(`${name}/`)) this.#acked.delete(k);
      this.#o.logger.warn({ pod: name, err: (err as Error).message }, "could not write the placement condition");
    }
  }

  stop(): void {
    this.#stopped = true;
    for (const t of this.#timers) clearTimeout(t);
    this.#timers.clear();
  }
}

/** What a shard pod serves: its acknowledged target, else what it served before (InPlace), else its set. */
export function servedExperts(p: V1Pod): ExpertSets {
  const state = readInPlace(p);
  if (state) return state.appliedGeneration >= state.generation ? state.target : state.servedBefore;
  return readShardPod(p)?.experts ?? [];
}

/**
 * What routers send a shard work for: the served experts its published placement set holds
 * (moe.dev/placement-experts, written with each in-place target), and the served experts it is
 * releasing (`leaving`: used while fewer shards serve them than the placement gives replicas, i.e.
 * until the shards they move to have loaded them), and the pod's set in the placement (`placed`).
 */
export function routedExperts(p: V1Pod): { experts: ExpertSets; leaving?: ExpertSets; placed?: ExpertSets } {
  const served = servedExperts(p);
  const state = readInPlace(p);
  if (!state) return { experts: served };
  const raw = p.metadata?.annotations?.[ShardAnnotation.placementExperts];
  // A pod created with its set (generation 1) has no in-place target yet: its set is its placement set.
  if (!raw) return { experts: served, leaving: [], placed: state.target.map((row) => [...row]) };
  let placed: number[][];
  try {
    placed = JSON.parse(raw) as number[][];
  } catch {
    return { experts: served };
  }
  return { experts: intersectSets(served, placed), leaving: subtractSets(served, placed), placed };
}

/** An InPlace pod serves once it acknowledged a generation; other pods once Ready. */
export function servesYet(p: V1Pod): boolean {
  const state = readInPlace(p);
  return state === undefined || state.appliedGeneration >= 1;
}

function holderOf(p: V1Pod): Holder {
  return { name: p.metadata!.name!, node: p.spec?.nodeName, served: servesYet(p) ? servedExperts(p) : [] };
}
