// Move cost of a placement change: which expert weights each shard loads, over which path, how many
// bytes and seconds that takes, and a plan that splits the rebalance into chunks of consecutive MoE
// layers so that no shard stalls longer than a bound (docs/adr/0017; summary in ADR 0002).
//
// Pure: placements and numbers in, numbers out.
import type { Placement } from "./types.ts";

/**
 * Where a moved replica's weights come from:
 * - "nvlink": another GPU on the same node held the expert for that layer (NVLink peer copy);
 * - "network": only GPUs on other nodes held it (RDMA / network copy);
 * - "storage": no GPU of the new placement held it before (its only holders are gone): loaded from
 *   the weight store (disk or a distributed file system).
 */
export type MovePath = "nvlink" | "network" | "storage";

export const MOVE_PATHS: readonly MovePath[] = ["nvlink", "network", "storage"];

/** Bandwidth of each path, bytes per second, as one shard sees it (one GPU receiving or sending). */
export interface MoveBandwidth {
  readonly nvlinkBytesPerSecond: number;
  readonly networkBytesPerSecond: number;
  readonly storageBytesPerSecond: number;
}

export interface MoveCostPolicy extends MoveBandwidth {
  /** Bytes of one expert replica of one layer (all its weight matrices). */
  readonly bytesPerExpertReplica: number;
  /** Longest a shard may stall in one chunk of a rebalance, seconds. */
  readonly maxStallSeconds: number;
}

// Defaults for DeepSeek-V3 on H800 nodes (8 GPUs, one 400 Gb/s RDMA NIC per GPU); the same numbers
// are spec.placement's defaults (src/api/schema.ts; a unit test keeps them equal):
// - DeepEP README (github.com/deepseek-ai/DeepEP, "Performance"): "H800 GPUs with NVLink (~160 GB/s
//   maximum bandwidth) and CX7 InfiniBand 400 Gb/s RDMA network cards (~50 GB/s maximum bandwidth)".
//   H100 SXM's NVLink 4 is listed at 900 GB/s, both directions together (~450 GB/s one way): raise
//   nvlinkBytesPerSecond there; the H800 number is the conservative default.
// - Storage: DeepSeek's 3FS (open-infra-index, day 5) reports "40+ GiB/s peak throughput per client
//   node"; shared by 8 GPUs that is ~5 GB/s per GPU.
export const DEFAULT_MOVE_BANDWIDTH: MoveBandwidth = {
  nvlinkBytesPerSecond: 160e9,
  networkBytesPerSecond: 50e9,
  storageBytesPerSecond: 5e9,
};

/**
 * SGLang rebalances `--eplb-rebalance-layers-per-chunk` layers per forward pass; its issue-15 figure
 * is about 1-2 s per whole rebalance. 2 s per chunk bounds what one shard's decode stalls.
 */
export const DEFAULT_MAX_STALL_SECONDS = 2;

/** One replica a shard must load (a slot of the new placement its GPU did not hold for that layer). */
export interface ExpertMove {
  readonly layer: number;
  readonly expert: number;
  /** Index of the receiving GPU in the new placement. */
  readonly toGpu: number;
  /** Index of the sending GPU in the new placement (it held the expert before); null from storage. */
  readonly fromGpu: number | null;
  readonly path: MovePath;
  readonly bytes: number;
  readonly seconds: number;
}

export interface LayerChunk {
  /** First and last MoE layer of the chunk (inclusive); layers between without moves belong to it. */
  readonly firstLayer: number;
  readonly lastLayer: number;
  readonly moves: number;
  readonly bytes: number;
  /** The longest stall of a shard in this chunk: max over shards of max(receive time, send time). */
  readonly stallSeconds: number;
  /** gpuId of the shard with that stall. */
  readonly stalledGpuId: string;
  /** The chunk is one layer whose stall alone exceeds the bound (it cannot be split further). */
  readonly overBound: boolean;
}

export interface MoveCost {
  readonly moves: number;
  readonly bytes: number;
  readonly byPath: Readonly<Record<MovePath, { readonly moves: number; readonly bytes: number }>>;
  /** Chunks in the order they run; every move belongs to exactly one. */
  readonly chunks: readonly LayerChunk[];
  /** Sum of the chunks' stalls: the rebalance's estimated duration, chunks run one after another. */
  readonly estimatedSeconds: number;
  /** The longest stall of one shard in one chunk (0 without moves). */
  readonly maxStallSeconds: number;
  readonly maxStallGpuId: string | null;
  /** Layers whose moves alone stall a shard longer than the bound (each is a chunk of its own). */
  readonly overBoundLayers: readonly number[];
}

/**
 * The moves of one layer at a time (so that a whole rebalance is never held in memory at once):
 * the replicas `next` loads anew relative to `previous` (matched by gpuId, the same count as
 * countMovedReplicas), each with its source and path. Source: a GPU present in both placements that
 * held the expert for that layer before; one on the receiver's node (NVLink) first, else one on
 * another node (network); among equals the one with the fewest sends so far in that layer, then the
 * lowest index. No such GPU: storage.
 */
class MoveScanner {
  private readonly previous: Placement | undefined;
  private readonly prevOf: Int32Array;
  private readonly seconds: Record<MovePath, number>;
  private readonly bytes: number;
  /** holders[e]: GPUs of `next` that held expert e in the current layer, in index order. */
  private readonly holders: number[][];
  /** have[e]: replicas of e the GPU being scanned held before, valid where stampOf[e] === stamp. */
  private readonly have: Int32Array;
  private readonly stampOf: Int32Array;
  private readonly sends: Int32Array;
  private stamp = 0;

  private readonly next: Placement;

  constructor(previous: Placement | undefined, next: Placement, policy: MoveCostPolicy) {
    this.next = next;
    const comparable = previous !== undefined && previous.expertCount === next.expertCount;
    this.previous = comparable ? previous : undefined;
    const prevIndex = new Map<string, number>();
    this.previous?.gpus.forEach((gpu, g) => prevIndex.set(gpu.gpuId, g));
    this.prevOf = Int32Array.from(next.gpus, (gpu) => prevIndex.get(gpu.gpuId) ?? -1);
    this.bytes = policy.bytesPerExpertReplica;
    this.seconds = {
      nvlink: this.bytes / policy.nvlinkBytesPerSecond,
      network: this.bytes / policy.networkBytesPerSecond,
      storage: this.bytes / policy.storageBytesPerSecond,
    };
    const E = next.expertCount;
    this.holders = Array.from({ length: E }, () => []);
    this.have = new Int32Array(E);
    this.stampOf = new Int32Array(E);
    this.sends = new Int32Array(next.gpus.length);
  }

  private before(l: number, g: number): readonly number[] {
    const pg = this.prevOf[g]!;
    if (!this.previous || pg < 0 || l >= this.previous.layerCount) return [];
    return this.previous.layers[l]?.[pg] ?? [];
  }

  layer(l: number): ExpertMove[] {
    const { next, holders, have, stampOf } = this;
    const E = next.expertCount;
    for (const list of holders) list.length = 0;
    for (let g = 0; g < next.gpus.length; g++) {
      this.stamp += 1;
      for (const e of this.before(l, g)) {
        if (e < 0 || e >= E || stampOf[e] === this.stamp) continue;
        stampOf[e] = this.stamp;
        holders[e]!.push(g);
      }
    }
    this.sends.fill(0);
    const moves: ExpertMove[] = [];
    for (let g = 0; g < next.gpus.length; g++) {
      // What GPU g held before, counted per expert.
      this.stamp += 1;
      for (const e of this.before(l, g)) {
        if (e < 0 || e >= E) continue;
        if (stampOf[e] !== this.stamp) {
          stampOf[e] = this.stamp;
          have[e] = 0;
        }
        have[e]! += 1;
      }
      for (const e of next.layers[l]?.[g] ?? []) {
        if (e < 0 || e >= E) continue;
        if (stampOf[e] === this.stamp && have[e]! > 0) {
          have[e]! -= 1;
          continue;
        }
        moves.push(this.move(l, e, g));
      }
    }
    return moves;
  }

  private move(l: number, e: number, to: number): ExpertMove {
    const { next } = this;
    const from = pickSource(this.holders[e]!, next, to, this.sends);
    const path: MovePath =
      from === null ? "storage" : next.gpus[from]!.nodeName === next.gpus[to]!.nodeName ? "nvlink" : "network";
    if (from !== null) this.sends[from]! += 1;
    return { layer: l, expert: e, toGpu: to, fromGpu: from, path, bytes: this.bytes, seconds: this.seconds[path] };
  }
}

/** Every move of the change from `previous` to `next`, layer by layer (see MoveScanner). */
export function expertMoves(previous: Placement | undefined, next: Placement, policy: MoveCostPolicy): ExpertMove[] {
  const scanner = new MoveScanner(previous, next, policy);
  const moves: ExpertMove[] = [];
  for (let l = 0; l < next.layerCount; l++) moves.push(...scanner.layer(l));
  return moves;
}

function pickSource(holders: readonly number[], next: Placement, to: number, sends: Int32Array): number | null {
  let best: number | null = null;
  let bestKey = Number.POSITIVE_INFINITY;
  const node = next.gpus[to]!.nodeName;
  for (const g of holders) {
    if (g === to) continue;
    // Same node first; then fewest sends so far; then the lowest index (holders are in index order).
    const key = (next.gpus[g]!.nodeName === node ? 0 : 1) * 1e9 + sends[g]!;
    if (key < bestKey) {
      bestKey = key;
      best = g;
    }
  }
  return best;
}

/** One shard's share of a set of moves (e.g. one chunk): seconds receiving and sending, and its stall. */
export interface ShardStall {
  readonly gpuId: string;
  readonly receiveSeconds: number;
  readonly sendSeconds: number;
  /** max(receive, send): NVLink and RDMA are full duplex, a shard's moves are serialized on its link. */
  readonly stallSeconds: number;
}

/** Every shard's stall under `moves` (GPU indexes into `next`), shards without moves included. */
export function shardStalls(moves: readonly ExpertMove[], next: Placement): ShardStall[] {
  const recv = new Float64Array(next.gpus.length);
  const send = new Float64Array(next.gpus.length);
  for (const m of moves) {
    recv[m.toGpu]! += m.seconds;
    if (m.fromGpu !== null) send[m.fromGpu]! += m.seconds;
  }
  return next.gpus.map((gpu, g) => ({
    gpuId: gpu.gpuId,
    receiveSeconds: recv[g]!,
    sendSeconds: send[g]!,
    stallSeconds: Math.max(recv[g]!, send[g]!),
  }));
}

/**
 * Greedy layer chunking, fed one layer at a time in increasing layer order. A shard's stall in a
 * chunk is max(seconds it receives, seconds it sends); the chunk's stall is the longest of them.
 */
class Chunker {
  readonly chunks: LayerChunk[] = [];
  readonly overBoundLayers: number[] = [];
  private readonly recv: Float64Array;
  private readonly send: Float64Array;
  private max = 0;
  private maxGpu = 0;
  private open: { first: number; last: number; moves: number; bytes: number } | null = null;

  private readonly next: Placement;
  private readonly bound: number;

  constructor(next: Placement, bound: number) {
    this.next = next;
    this.bound = bound;
    this.recv = new Float64Array(next.gpus.length);
    this.send = new Float64Array(next.gpus.length);
  }

  /** Adds a layer's moves to the open chunk and returns the chunk's stall and its GPU with them. */
  private apply(moves: readonly ExpertMove[], sign: 1 | -1): { seconds: number; gpu: number } {
    let seconds = this.max;
    let gpu = this.maxGpu;
    const touch = (g: number): void => {
      const v = Math.max(this.recv[g]!, this.send[g]!);
      if (v > seconds) {
        seconds = v;
        gpu = g;
      }
    };
    for (const m of moves) {
      this.recv[m.toGpu]! += sign * m.seconds;
      touch(m.toGpu);
      if (m.fromGpu !== null) {
        this.send[m.fromGpu]! += sign * m.seconds;
        touch(m.fromGpu);
      }
    }
    return { seconds, gpu };
  }

  add(layer: number, moves: readonly ExpertMove[]): void {
    if (moves.length === 0) return;
    const bytes = moves.reduce((s, m) => s + m.bytes, 0);
    const withLayer = this.apply(moves, 1);
    if (withLayer.seconds <= this.bound) {
      this.max = withLayer.seconds;
      this.maxGpu = withLayer.gpu;
      if (this.open) {
        this.open.last = layer;
        this.open.moves += moves.length;
        this.open.bytes += bytes;
      } else this.open = { first: layer, last: layer, moves: moves.length, bytes };
      return;
    }
    // Over the bound: close the open chunk without this layer, then start one with it alone.
    this.apply(moves, -1);
    this.close(false);
    const alone = this.apply(moves, 1);
    this.max = alone.seconds;
    this.maxGpu = alone.gpu;
    this.open = { first: layer, last: layer, moves: moves.length, bytes };
    if (alone.seconds > this.bound) {
      this.overBoundLayers.push(layer);
      this.close(true);
    }
  }

  close(overBound: boolean): void {
    if (this.open) {
      this.chunks.push({
        firstLayer: this.open.first,
        lastLayer: this.open.last,
        moves: this.open.moves,
        bytes: this.open.bytes,
        stallSeconds: this.max,
        stalledGpuId: this.next.gpus[this.maxGpu]?.gpuId ?? "",
        overBound,
      });
    }
    this.open = null;
    this.max = 0;
    this.maxGpu = 0;
    this.recv.fill(0);
    this.send.fill(0);
  }
}

/**
 * Splits the moves into chunks of consecutive MoE layers (SGLang's --eplb-rebalance-layers-per-chunk
 * runs one chunk per forward pass), greedily: a layer joins the current chunk unless that would stall
 * some shard longer than `maxStallSeconds`. A layer whose own stall exceeds the bound is a chunk of its
 * own, marked overBound. Greedy is the fewest chunks for consecutive layers, since adding a layer never
 * shortens a stall.
 */
export function chunkMoves(
  moves: readonly ExpertMove[],
  next: Placement,
  maxStallSeconds: number,
): { chunks: LayerChunk[]; overBoundLayers: number[] } {
  const byLayer = new Map<number, ExpertMove[]>();
  for (const m of moves) {
    const list = byLayer.get(m.layer);
    if (list) list.push(m);
    else byLayer.set(m.layer, [m]);
  }
  const chunker = new Chunker(next, maxStallSeconds);
  for (const l of [...byLayer.keys()].sort((a, b) => a - b)) chunker.add(l, byLayer.get(l)!);
  chunker.close(false);
  return { chunks: chunker.chunks, overBoundLayers: chunker.overBoundLayers };
}

/**
 * Bytes, paths, chunks and estimated duration of the change from `previous` to `next`. Layer by
 * layer: the moves of one layer are dropped once chunked.
 */
export function estimateMoveCost(previous: Placement | undefined, next: Placement, policy: MoveCostPolicy): MoveCost {
  const scanner = new MoveScanner(previous, next, policy);
  const chunker = new Chunker(next, policy.maxStallSeconds);
  const byPath = {
    nvlink: { moves: 0, bytes: 0 },
    network: { moves: 0, bytes: 0 },
    storage: { moves: 0, bytes: 0 },
  };
  let moveCount = 0;
  let bytes = 0;
  for (let l = 0; l < next.layerCount; l++) {
    const moves = scanner.layer(l);
    for (const m of moves) {
      byPath[m.path].moves += 1;
      byPath[m.path].bytes += m.bytes;
      bytes += m.bytes;
    }
    moveCount += moves.length;
    chunker.add(l, moves);
  }
  chunker.close(false);
  const { chunks, overBoundLayers } = chunker;
  let estimatedSeconds = 0;
  let maxStall = 0;
  let maxStallGpuId: string | null = null;
  for (const c of chunks) {
    estimatedSeconds += c.stallSeconds;
    if (c.stallSeconds > maxStall) {
      maxStall = c.stallSeconds;
      maxStallGpuId = c.stalledGpuId;
    }
  }
  return {
    moves: moveCount,
    bytes,
    byPath,
    chunks,
    estimatedSeconds,
    maxStallSeconds: maxStall,
    maxStallGpuId,
    overBoundLayers,
  };
}

/** "73.5 GB of expert weights (NVLink 18.1 / network 55.4 / storage 0.0), ~0.05 s in 1 layer chunk(s), longest shard stall 0.05 s (shard-7)". */
export function describeMoveCost(c: MoveCost, maxStallSeconds: number): string {
  const gb = (b: number): string => (b / 1e9).toFixed(1);
  const over =
    c.overBoundLayers.length > 0
      ? `; ${c.overBoundLayers.length} layer(s) alone exceed the ${maxStallSeconds} s stall bound (first: MoE layer ${c.overBoundLayers[0]})`
      : "";
  return (
    `${gb(c.bytes)} GB of expert weights (NVLink ${gb(c.byPath.nvlink.bytes)} / network ${gb(c.byPath.network.bytes)} / storage ${gb(c.byPath.storage.bytes)}), ` +
    `~${c.estimatedSeconds.toFixed(2)} s in ${c.chunks.length} layer chunk(s), longest shard stall ${c.maxStallSeconds.toFixed(2)} s` +
    `${c.maxStallGpuId ? ` (${c.maxStallGpuId})` : ""}${over}`
  );
}
