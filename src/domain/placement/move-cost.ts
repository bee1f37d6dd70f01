// Move cost of a placement change: which expert weights each shard loads, over which path, how many
// bytes and seconds that takes, and a plan that splits the rebalance into chunks of consecutive MoE
// layers so that no shard stalls longer than a bound (ADR 0002, "Move cost in bytes and time").
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

// Defaults for DeepSeek-V3 on H800 nodes (8 GPUs, one 400 Gb/s RDMA NIC per GPU):
// - DeepEP README (github.com/deepseek-ai/DeepEP, "Performance"): "H800 GPUs with NVLink (~160 GB/s
//   maximum bandwidth) and CX7 InfiniBand 400 Gb/s RDMA network cards (~50 GB/s maximum bandwidth)".
//   H100 SXM's NVLink 4 is 900 GB/s in both directions together (NVIDIA's H100 datasheet), ~450 GB/s
//   one way: raise nvlinkBytesPerSecond there; the H800 number is the conservative default.
// - Storage: DeepSeek's 3FS (open-infra-index, day 5) reports "40+ GiB/s peak throughput per client
//   node"; shared by 8 GPUs that is ~5 GB/s per GPU. A local NVMe weight cache is in the same range.
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
 * The replicas `next` loads anew relative to `previous` (matched by gpuId, the same count as
 * countMovedReplicas), each with its source and path. Source: a GPU present in both placements that
 * held the expert for that layer before; one on the receiver's node (NVLink) first, else one on
 * another node (network); among equals the one with the fewest sends so far in that layer, then the
 * lowest index. No such GPU: storage.
 */
export function expertMoves(previous: Placement | undefined, next: Placement, policy: MoveCostPolicy): ExpertMove[] {
  const moves: ExpertMove[] = [];
  const prevIndex = new Map<string, number>();
  const comparable = previous !== undefined && previous.expertCount === next.expertCount;
  if (comparable) previous.gpus.forEach((gpu, g) => prevIndex.set(gpu.gpuId, g));
  const prevOf = next.gpus.map((gpu) => (comparable ? (prevIndex.get(gpu.gpuId) ?? -1) : -1));
  const bytes = policy.bytesPerExpertReplica;
  const seconds: Record<MovePath, number> = {
    nvlink: bytes / policy.nvlinkBytesPerSecond,
    network: bytes / policy.networkBytesPerSecond,
    storage: bytes / policy.storageBytesPerSecond,
  };
  for (let l = 0; l < next.layerCount; l++) {
    const { held, holders } = heldBefore(comparable ? previous : undefined, next, prevOf, l);
    const sends = new Int32Array(next.gpus.length);
    for (let g = 0; g < next.gpus.length; g++) {
      const kept = held[g]!;
      for (const e of next.layers[l]?.[g] ?? []) {
        if (e < 0 || e >= next.expertCount) continue;
        const n = kept.get(e) ?? 0;
        if (n > 0) {
          kept.set(e, n - 1);
          continue;
        }
        const from = pickSource(holders.get(e) ?? [], next, g, sends);
        const path: MovePath =
          from === null ? "storage" : next.gpus[from]!.nodeName === next.gpus[g]!.nodeName ? "nvlink" : "network";
        if (from !== null) sends[from]! += 1;
        moves.push({ layer: l, expert: e, toGpu: g, fromGpu: from, path, bytes, seconds: seconds[path] });
      }
    }
  }
  return moves;
}

/**
 * Layer l before the change, on the GPUs of `next`: held[g] counts the replicas per expert GPU g held
 * (counts, as countMovedReplicas); holders[e] lists the GPUs that held expert e, in index order.
 */
function heldBefore(
  previous: Placement | undefined,
  next: Placement,
  prevOf: readonly number[],
  l: number,
): { held: Map<number, number>[]; holders: Map<number, number[]> } {
  const holders = new Map<number, number[]>();
  const held: Map<number, number>[] = next.gpus.map(() => new Map<number, number>());
  if (!previous || l >= previous.layerCount) return { held, holders };
  for (let g = 0; g < next.gpus.length; g++) {
    const pg = prevOf[g]!;
    if (pg < 0) continue;
    for (const e of previous.layers[l]?.[pg] ?? []) {
      if (e < 0 || e >= next.expertCount) continue;
      const n = held[g]!.get(e) ?? 0;
      held[g]!.set(e, n + 1);
      if (n > 0) continue;
      const list = holders.get(e);
      if (list) list.push(g);
      else holders.set(e, [g]);
    }
  }
  return { held, holders };
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

/** Per-shard receive and send seconds of a set of moves; the stall is max(receive, send) per shard. */
class StallMeter {
  readonly recv: Float64Array;
  readonly send: Float64Array;
  constructor(gpuCount: number) {
    this.recv = new Float64Array(gpuCount);
    this.send = new Float64Array(gpuCount);
  }
  add(m: ExpertMove, sign = 1): void {
    this.recv[m.toGpu]! += sign * m.seconds;
    if (m.fromGpu !== null) this.send[m.fromGpu]! += sign * m.seconds;
  }
  /** The longest stall and its GPU index (first on ties). */
  max(): { seconds: number; gpu: number } {
    let seconds = 0;
    let gpu = 0;
    for (let g = 0; g < this.recv.length; g++) {
      const s = Math.max(this.recv[g]!, this.send[g]!);
      if (s > seconds) {
        seconds = s;
        gpu = g;
      }
    }
    return { seconds, gpu };
  }
  clear(): void {
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
  const layers = [...byLayer.keys()].sort((a, b) => a - b);
  const chunks: LayerChunk[] = [];
  const overBoundLayers: number[] = [];
  const meter = new StallMeter(next.gpus.length);
  let open: { first: number; last: number; moves: number; bytes: number } | null = null;
  const close = (overBound: boolean): void => {
    if (!open) return;
    const { seconds, gpu } = meter.max();
    chunks.push({
      firstLayer: open.first,
      lastLayer: open.last,
      moves: open.moves,
      bytes: open.bytes,
      stallSeconds: seconds,
      stalledGpuId: next.gpus[gpu]?.gpuId ?? "",
      overBound,
    });
    open = null;
    meter.clear();
  };
  for (const l of layers) {
    const layerMoves = byLayer.get(l)!;
    for (const m of layerMoves) meter.add(m);
    const bytes = layerMoves.reduce((s, m) => s + m.bytes, 0);
    if (meter.max().seconds <= maxStallSeconds) {
      if (open) {
        open.last = l;
        open.moves += layerMoves.length;
        open.bytes += bytes;
      } else open = { first: l, last: l, moves: layerMoves.length, bytes };
      continue;
    }
    // Over the bound: close the open chunk without this layer, then start one with it alone.
    for (const m of layerMoves) meter.add(m, -1);
    close(false);
    meter.clear();
    for (const m of layerMoves) meter.add(m);
    open = { first: l, last: l, moves: layerMoves.length, bytes };
    if (meter.max().seconds > maxStallSeconds) {
      overBoundLayers.push(l);
      close(true);
    }
  }
  close(false);
  return { chunks, overBoundLayers };
}

/** Bytes, paths, chunks and estimated duration of the change from `previous` to `next`. */
export function estimateMoveCost(previous: Placement | undefined, next: Placement, policy: MoveCostPolicy): MoveCost {
  const moves = expertMoves(previous, next, policy);
  const byPath = {
    nvlink: { moves: 0, bytes: 0 },
    network: { moves: 0, bytes: 0 },
    storage: { moves: 0, bytes: 0 },
  };
  let bytes = 0;
  for (const m of moves) {
    byPath[m.path].moves += 1;
    byPath[m.path].bytes += m.bytes;
    bytes += m.bytes;
  }
  const { chunks, overBoundLayers } = chunkMoves(moves, next, policy.maxStallSeconds);
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
    moves: moves.length,
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
