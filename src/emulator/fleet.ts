// The fleet emulator's model: given the shard pods that really exist in the
// cluster (their expert sets and readiness) and the offered load, route each
// second's tokens to experts by a heat model, split each expert's tokens over
// the Ready replicas that hold it, and compute the latency the hottest GPU
// imposes with the simulator's ground-truth queueing model (src/sim/truth.ts,
// independent of the operator's latency model).
import {
  defaultGroundTruthParams,
  latencyMultiplier,
  resolveWaitWeight,
  stepSecond,
  type GroundTruthParams,
  type QueueState,
} from "../sim/truth.ts";
import { createRng, type Rng } from "../domain/rng.ts";

export interface EmulatedShard {
  readonly name: string;
  readonly nodeName?: string;
  /** experts[moeLayer] held by the pod (and, for an in-place shard, in its set of the published placement). */
  readonly experts: ReadonlyArray<ReadonlyArray<number>>;
  /**
   * Experts the pod still serves but the published placement no longer gives it (an in-place shard
   * between loading its new set and releasing its old one): the router sends them work while fewer
   * shards serve them under the placement than it gives them replicas.
   */
  readonly leaving?: ReadonlyArray<ReadonlyArray<number>>;
  /** The pod's set in the published placement, loaded or not (in-place pods; others: `experts`). */
  readonly placed?: ReadonlyArray<ReadonlyArray<number>>;
  readonly ready: boolean;
  readonly draining: boolean;
}

export interface SecondResult {
  /** Tokens routed per (moeLayer, expert) this second. */
  readonly expertTokens: Float64Array;
  /** Tokens processed per shard this second (sum over layers / layers), keyed by pod name. */
  readonly shardTokens: Map<string, number>;
  /** Latency the second's tokens see (ms), Infinity when some expert has no serving replica. */
  readonly latencyMs: number;
  readonly servingShards: number;
  /** Harmonic mean over layers of mean/max shard load. */
  readonly balancedness: number;
  /** (layer, expert) pairs with tokens but no Ready replica. */
  readonly unservedExperts: number;
}

export interface FleetEmulatorOptions {
  layerCount: number;
  expertCount: number;
  topK: number;
  seed: number;
  params?: GroundTruthParams;
  /** Token-weighted latency samples per second (for the histogram). */
  samplesPerSecond?: number;
}

export class FleetEmulator {
  readonly layerCount: number;
  readonly expertCount: number;
  readonly topK: number;
  readonly params: GroundTruthParams;
  readonly #rng: Rng;
  readonly #queue: QueueState = { backlogTokens: 0 };
  readonly #waitWeight: number;

  constructor(o: FleetEmulatorOptions) {
    this.layerCount = o.layerCount;
    this.expertCount = o.expertCount;
    this.topK = o.topK;
    this.params = o.params ?? defaultGroundTruthParams("itl");
    this.#rng = createRng(o.seed);
    this.#waitWeight = resolveWaitWeight(this.params, 200);
  }

  /**
   * One second of traffic. `weights[layer][expert]` is the routing distribution (rows need not be
   * normalised); `tokensPerSecond` the offered load (each token visits topK experts per layer).
   */
  step(
    shards: readonly EmulatedShard[],
    weights: ReadonlyArray<ReadonlyArray<number>>,
    tokensPerSecond: number,
  ): SecondResult {
    const L = this.layerCount;
    const E = this.expertCount;
    const expertTokens = new Float64Array(L * E);
    const shardTokens = new Map<string, number>();
    // Holders per (layer, expert): Ready non-draining shards that hold it in the placement first;
    // then those still serving it on their way out (in-place release pending) while fewer shards
    // serve it than the placement gives it replicas (the shards it moves to are still loading, as a
    // router keeps the old replica until the new one is up); draining ones only when nobody else does.
    const serving = shards.filter((s) => s.ready && !s.draining);
    const fallback = shards.filter((s) => s.ready && s.draining);
    const all = [...serving, ...fallback];
    const replicas = placementReplicas(
      L,
      E,
      shards.filter((s) => !s.draining),
    );
    const holders = routeHolders(L, E, [
      { need: () => Infinity, members: serving.map((s, i) => ({ index: i, sets: [s.experts] })) },
      {
        need: (i) => Math.max(1, replicas[i]!),
        members: serving.map((s, i) => ({ index: i, sets: s.leaving ? [s.leaving] : [] })),
      },
      {
        need: () => 1,
        members: fallback.map((s, j) => ({
          index: serving.length + j,
          sets: s.leaving ? [s.experts, s.leaving] : [s.experts],
        })),
      },
    ]);
    const load = new Float64Array(all.length * L);
    let unserved = 0;
    for (let l = 0; l < L; l++) {
      const row = weights[l] ?? [];
      let sum = 0;
      for (let e = 0; e < E; e++) sum += Math.max(0, row[e] ?? 0);
      if (!(sum > 0)) continue;
      for (let e = 0; e < E; e++) {
        const t = (tokensPerSecond * this.topK * Math.max(0, row[e] ?? 0)) / sum;
        expertTokens[l * E + e] = t;
        const h = holders[l * E + e]!;
        if (h.length === 0) {
          if (t > 0) unserved++;
          continue;
        }
        for (const i of h) load[i * L + l]! += t / h.length;
      }
    }
    // Per-layer balance over serving shards: the hottest shard sets the pace of that layer.
    let invSum = 0;
    let layersCounted = 0;
    for (let l = 0; l < L; l++) {
      let max = 0;
      let total = 0;
      for (let i = 0; i < all.length; i++) {
        const v = load[i * L + l]!;
        total += v;
        if (v > max) max = v;
      }
      if (max > 0 && all.length > 0) {
        invSum += max / (total / all.length);
        layersCounted++;
      }
    }
    const balancedness = layersCounted > 0 ? layersCounted / invSum : 1;
    all.forEach((s, i) => {
      let t = 0;
      for (let l = 0; l < L; l++) t += load[i * L + l]!;
      shardTokens.set(s.name, t / Math.max(1, L) / this.topK);
    });
    const nodes = new Set(all.map((s) => s.nodeName ?? s.name));
    const crossNodeShare = nodes.size <= 1 ? 0 : 1 - 1 / nodes.size;
    const latencyMs =
      unserved > 0
        ? Infinity
        : stepSecond(this.params, this.#waitWeight, this.#queue, tokensPerSecond, {
            readyGpus: all.length,
            balancedness,
            crossNodeShare: crossNodeShare * 0.3,
          });
    return {
      expertTokens,
      shardTokens,
      latencyMs,
      servingShards: serving.length,
      balancedness,
      unservedExperts: unserved,
    };
  }

  /** Latency samples of one second (request-mix tail and jitter applied). */
  latencySamples(baseMs: number, n: number): number[] {
    const out: number[] = [];
    for (let i = 0; i < n; i++)
      out.push(baseMs * latencyMultiplier(this.params, this.#rng.normal()) * (0.6 + 0.4 * this.#rng.next()));
    return out;
  }
}

/**
 * Holders of each (layer, expert), tier by tier: a tier adds its shards only to pairs no earlier tier
 * holds. `index` is the shard's position in the load arrays.
 */
function routeHolders(
  L: number,
  E: number,
  tiers: ReadonlyArray<{
    /** How many holders a (layer, expert) index should have before this tier adds none. */
    need: (i: number) => number;
    members: ReadonlyArray<{ index: number; sets: ReadonlyArray<ReadonlyArray<ReadonlyArray<number>>> }>;
  }>,
): number[][] {
  const holders: number[][] = Array.from({ length: L * E }, () => []);
  for (const { need, members } of tiers) {
    const heldBefore = holders.map((h) => h.length);
    for (const { index, sets } of members)
      for (const set of sets)
        set.forEach((row, l) => {
          for (const e of row) {
            const i = l * E + e;
            if (l < L && e >= 0 && e < E && heldBefore[i]! < need(i)) holders[i]!.push(index);
          }
        });
  }
  return holders;
}

/** Replicas the published placement gives each (layer, expert): shards whose placement set holds it. */
function placementReplicas(L: number, E: number, shards: readonly EmulatedShard[]): Uint16Array {
  const out = new Uint16Array(L * E);
  for (const s of shards)
    (s.placed ?? s.experts).forEach((row, l) => {
      for (const e of new Set(row)) if (l < L && e >= 0 && e < E) out[l * E + e]! += 1;
    });
  return out;
}
