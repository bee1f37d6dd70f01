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
  /** experts[moeLayer] held by the pod. */
  readonly experts: ReadonlyArray<ReadonlyArray<number>>;
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
    // Holders per (layer, expert): Ready non-draining first; draining only if nothing else.
    const serving = shards.filter((s) => s.ready && !s.draining);
    const fallback = shards.filter((s) => s.ready && s.draining);
    const holders: number[][] = Array.from({ length: L * E }, () => []);
    const all = [...serving, ...fallback];
    serving.forEach((s, i) =>
      s.experts.forEach((row, l) =>
        row.forEach((e) => {
          if (l < L && e >= 0 && e < E) holders[l * E + e]!.push(i);
        }),
      ),
    );
    fallback.forEach((s, j) =>
      s.experts.forEach((row, l) =>
        row.forEach((e) => {
          if (l < L && e >= 0 && e < E && holders[l * E + e]!.length === 0)
            holders[l * E + e]!.push(serving.length + j);
        }),
      ),
    );
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
