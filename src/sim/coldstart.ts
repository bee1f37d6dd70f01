// Cold-start load tiers and weight staging in the simulator (issue 19, docs/adr/0019-cold-start-tiers.md).
// A new GPU's start-to-Ready is the engine start plus its shard's expert bytes over the bandwidth of
// the tier it loads from (peer, staged node disk, remote store), times the replay's shared log-normal
// noise. Staged nodes are prepared ahead of the policy's own forecast and schedules, cost disk and
// network (not GPU-hours) and are evicted after a configured idle time.

import { chooseLoadTier, LOAD_TIERS, shardExpertBytes, tierColdStartS } from "../domain/prewarm/tiers.ts";
import type { LoadTier, LoadTierBandwidth, TierColdStart } from "../domain/prewarm/tiers.ts";
import { quantile } from "../domain/quantile.ts";
import { minGpusForShape, slotsPerGpuFor } from "./experts.ts";
import type { ModelShape } from "./experts.ts";

/**
 * Per-GPU bandwidths from published anchors (ADR 0019), each a whole model loaded onto one 8-GPU node:
 * - remote: NVIDIA ModelExpress's storage baseline, DeepSeek-V3's 681 GB in ~25 min: 57 MB/s per GPU;
 * - node disk: a local model cache cut a 15-20 min load to ~1 min (~15x): 0.85 GB/s per GPU;
 * - peer: ModelExpress GPU-to-GPU, 681 GB in ~15 s: 5.7 GB/s per GPU.
 */
export const DEFAULT_TIER_BANDWIDTH: LoadTierBandwidth = {
  remoteBytesPerSecond: 681e9 / (25 * 60) / 8,
  nodeDiskBytesPerSecond: (15 * 681e9) / (25 * 60) / 8,
  peerBytesPerSecond: 681e9 / 15 / 8,
};

/** Scheduling, container and engine start without weights (Dynamo Snapshot: 52-102 s cold for single-GPU pods). */
export const DEFAULT_ENGINE_START_S = 60;

/**
 * Bytes of one routed expert replica of one layer per preset (3 matrices hidden x intermediate), as
 * expertReplicaBytes computes from spec.model's expertParameters and weightDtype.
 */
export const PRESET_EXPERT_BYTES: Readonly<Record<string, number>> = {
  "deepseek-v3": 3 * 7168 * 2048 * 1, // FP8
  "qwen3-235b": 3 * 4096 * 1536 * 2, // BF16
  "mixtral-8x7b": 3 * 4096 * 14336 * 2, // BF16
};

export interface StagingConfig {
  /** A staged node not needed for this long is evicted. */
  readonly evictAfterIdleS: number;
  /** Bytes per second one node downloads while staging (default: its 8 GPUs' share of the remote store). */
  readonly bytesPerSecondPerNode: number;
  /** Price of the bytes downloaded (network), USD per GB. */
  readonly usdPerGbTransferred: number;
  /** Price of the local disk the cache occupies, USD per GB-month. */
  readonly usdPerGbMonth: number;
}

export interface LoadTierConfig {
  readonly bandwidth: LoadTierBandwidth;
  readonly engineStartS: number;
  readonly bytesPerExpertReplica: number;
  readonly peerLoading: boolean;
  /** Undefined: no staging (no node disk tier). */
  readonly staging: StagingConfig | undefined;
  /**
   * Tell the policy the tier the next GPU gets, so its lead time is that tier's learned cold start
   * (default true); false: the policy learns one pooled cold start, as without tiers (ablation).
   */
  readonly tieredLead?: boolean;
}

export const DEFAULT_STAGING: StagingConfig = {
  evictAfterIdleS: 24 * 3600,
  bytesPerSecondPerNode: 8 * DEFAULT_TIER_BANDWIDTH.remoteBytesPerSecond,
  usdPerGbTransferred: 0.01,
  usdPerGbMonth: 0.1,
};

/** The three what-if configurations of issue 19 for a model preset. */
export function loadTierPreset(kind: "remote-only" | "staging" | "staging+peers", shape: ModelShape): LoadTierConfig {
  return {
    bandwidth: DEFAULT_TIER_BANDWIDTH,
    engineStartS: DEFAULT_ENGINE_START_S,
    bytesPerExpertReplica: PRESET_EXPERT_BYTES[shape.name] ?? 0,
    peerLoading: kind === "staging+peers",
    staging: kind === "remote-only" ? undefined : DEFAULT_STAGING,
  };
}

export interface TierColdStartStats {
  readonly count: number;
  readonly p50S: number | null;
  readonly p90S: number | null;
}

export interface StagingStats {
  readonly nodesStaged: number;
  readonly nodesEvicted: number;
  readonly peakNodes: number;
  readonly bytesTransferred: number;
  readonly diskGbHours: number;
  readonly costUsd: number;
}

export interface LoadTierStats {
  readonly coldStarts: Readonly<Record<LoadTier, TierColdStartStats>>;
  readonly staging: StagingStats;
}

/** What the runner needs of a fleet (ColdStartFleet and TieredFleet). */
export interface SimFleet {
  provisioned: number;
  ready: number;
  completedDurationsMs: number[];
  coldStarts: number;
  setDesired(desired: number, nowS: number): void;
  advance(nowS: number): void;
}

interface Pending {
  readonly readyAtS: number;
  readonly startS: number;
  readonly tier: LoadTier;
}

interface StagedNode {
  readonly readyAtS: number;
  lastNeededS: number;
}

/** A fleet whose new GPUs load from a tier; `noise()` draws the shared log-normal factor of each start. */
export class TieredFleet implements SimFleet {
  provisioned: number;
  ready: number;
  completedDurationsMs: number[] = [];
  /** The tiers of completedDurationsMs, same order. */
  completedByTier: TierColdStart[] = [];
  coldStarts = 0;
  private pending: Pending[] = [];
  private nodes: StagedNode[] = [];
  private readonly durationsS: Record<LoadTier, number[]> = { peer: [], "node-disk": [], remote: [] };
  private readonly staging = { nodesStaged: 0, nodesEvicted: 0, peakNodes: 0, bytes: 0, diskByteSeconds: 0 };
  private readonly checkpointBytes: number;
  private readonly config: LoadTierConfig;
  private readonly shape: ModelShape;
  private readonly noise: () => number;

  constructor(initial: number, config: LoadTierConfig, shape: ModelShape, noise: () => number) {
    this.config = config;
    this.shape = shape;
    this.noise = noise;
    this.provisioned = initial;
    this.ready = initial;
    // A staged node holds every routed expert once (which experts its shards get is not known ahead).
    this.checkpointBytes = shardExpertBytes(shape.expertCount, shape.moeLayers, config.bytesPerExpertReplica);
  }

  /** GPUs on staged nodes whose staging finished. */
  stagedGpus(nowS: number): number {
    let n = 0;
    for (const node of this.nodes) if (node.readyAtS <= nowS) n++;
    return n * this.shape.gpusPerNode;
  }

  /** The tier the next new GPU (index `index` of the fleet) loads from. */
  tierFor(index: number, nowS: number): LoadTier {
    return chooseLoadTier({
      peerLoading: this.config.peerLoading,
      // The fleet's placement holds every expert at least once from this many GPUs on.
      peersHoldExperts: this.ready >= minGpusForShape(this.shape),
      nodeStaged: index < this.stagedGpus(nowS),
    });
  }

  setDesired(desired: number, nowS: number): void {
    if (desired > this.provisioned) {
      const bytes = shardExpertBytes(
        slotsPerGpuFor(this.shape, desired),
        this.shape.moeLayers,
        this.config.bytesPerExpertReplica,
      );
      for (let k = this.provisioned; k < desired; k++) {
        const tier = this.tierFor(k, nowS);
        const nominal = tierColdStartS(this.config.bandwidth, tier, bytes, this.config.engineStartS);
        const p: Pending = { readyAtS: nowS + Math.max(1, Math.round(nominal * this.noise())), startS: nowS, tier };
        let i = this.pending.length;
        while (i > 0 && (this.pending[i - 1] as Pending).readyAtS > p.readyAtS) i--;
        this.pending.splice(i, 0, p);
        this.coldStarts++;
      }
      this.provisioned = desired;
    } else if (desired < this.provisioned) {
      let remove = this.provisioned - desired;
      while (remove > 0 && this.pending.length > 0) {
        this.pending.pop();
        remove--;
      }
      this.ready -= remove;
      this.provisioned = desired;
    }
  }

  advance(nowS: number): void {
    while (this.pending.length > 0 && (this.pending[0] as Pending).readyAtS <= nowS) {
      const p = this.pending.shift() as Pending;
      this.ready++;
      const ms = (p.readyAtS - p.startS) * 1000;
      this.completedDurationsMs.push(ms);
      this.completedByTier.push({ tier: p.tier, durationMs: ms });
      this.durationsS[p.tier].push(ms / 1000);
    }
    this.staging.diskByteSeconds += this.nodes.length * this.checkpointBytes;
  }

  /**
   * Keep enough staged nodes for max(wantGpus, provisioned): stage the missing ones (ready after the
   * download), mark the needed ones, evict those not needed for evictAfterIdleS (newest first).
   */
  stage(wantGpus: number, nowS: number): void {
    const s = this.config.staging;
    if (s === undefined) return;
    const need = Math.ceil(Math.max(wantGpus, this.provisioned) / this.shape.gpusPerNode);
    const downloadS = s.bytesPerSecondPerNode > 0 ? this.checkpointBytes / s.bytesPerSecondPerNode : 0;
    while (this.nodes.length < need) {
      this.nodes.push({ readyAtS: nowS + Math.ceil(downloadS), lastNeededS: nowS });
      this.staging.nodesStaged++;
      this.staging.bytes += this.checkpointBytes;
    }
    for (let i = 0; i < need; i++) (this.nodes[i] as StagedNode).lastNeededS = nowS;
    while (
      this.nodes.length > need &&
      nowS - (this.nodes[this.nodes.length - 1] as StagedNode).lastNeededS >= s.evictAfterIdleS
    ) {
      this.nodes.pop();
      this.staging.nodesEvicted++;
    }
    this.staging.peakNodes = Math.max(this.staging.peakNodes, this.nodes.length);
  }

  stats(): LoadTierStats {
    const coldStarts = {} as Record<LoadTier, TierColdStartStats>;
    for (const tier of LOAD_TIERS) {
      const d = this.durationsS[tier];
      coldStarts[tier] = {
        count: d.length,
        p50S: d.length === 0 ? null : quantile(d, 0.5),
        p90S: d.length === 0 ? null : quantile(d, 0.9),
      };
    }
    const s = this.config.staging;
    const gb = this.staging.bytes / 1e9;
    const diskGbHours = this.staging.diskByteSeconds / 1e9 / 3600;
    const costUsd = s === undefined ? 0 : gb * s.usdPerGbTransferred + (diskGbHours / 730) * s.usdPerGbMonth;
    return {
      coldStarts,
      staging: {
        nodesStaged: this.staging.nodesStaged,
        nodesEvicted: this.staging.nodesEvicted,
        peakNodes: this.staging.peakNodes,
        bytesTransferred: this.staging.bytes,
        diskGbHours,
        costUsd,
      },
    };
  }
}
