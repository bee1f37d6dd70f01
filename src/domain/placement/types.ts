// Types of the expert placement core. Everything here is plain, JSON-serialisable data.
import type { MoveCost, MoveCostPolicy } from "./move-cost.ts";

/** A GPU the planner may place expert replicas on. */
export interface GpuSlotInfo {
  /** Stable identity (e.g. `<pod>/<gpu index>`); used to match the current placement. */
  readonly gpuId: string;
  readonly nodeName: string;
  /** Topology domain above the node (rack, NVLink domain, zone); defaults to the node name. */
  readonly domain?: string;
  /** Expert slots per MoE layer on this GPU (DeepSeek-V3 prefill: 9). */
  readonly slotCount: number;
  /** Memory usable for routed-expert weights, bytes. Only checked when the policy sets bytesPerExpertReplica. */
  readonly memoryBytes?: number;
}

/** A GPU as recorded in a placement (slotCount is the effective one the plan used). */
export interface PlacementGpu {
  readonly gpuId: string;
  readonly nodeName: string;
  readonly domain: string;
  readonly slotCount: number;
}

/** Sentinel for an empty slot in `Placement.layers`. */
export const EMPTY_SLOT = -1;

/**
 * Which logical expert each physical slot holds.
 * `layers[layer][gpuIndex][slot]` is a logical expert id in [0, expertCount) or EMPTY_SLOT (-1);
 * `layers[l][g].length === gpus[g].slotCount`. GPU order is the rank order
 * (SGLang physical expert id = rank * slotsPerGpu + slot).
 */
export interface Placement {
  readonly version: 1;
  readonly layerCount: number;
  readonly expertCount: number;
  readonly gpus: readonly PlacementGpu[];
  readonly layers: ReadonlyArray<ReadonlyArray<ReadonlyArray<number>>>;
  /**
   * Set when the plan that made this placement was stopped by the move budget while moves worth
   * making remained (`PlacementOutcome.budgetLimited`): the replica loads the rest of that
   * convergence was estimated to need. An incremental plan from a placement with pendingMoves > 0
   * continues the convergence without the balancedness-gain hysteresis and counts its own loads
   * against it, so repeated rebalances on a stable heat reach the fresh plan's balance while
   * sampling noise cannot keep a convergence going (ADR 0002). Absent otherwise; not part of
   * `placementHash` (it changes no expert weights).
   */
  readonly pendingMoves?: number;
}

export type TopologyPreference = "spread" | "ignore";

export interface PlacementPolicy {
  /**
   * Replicas per layer beyond one per expert (redundant experts). Default: fill every slot.
   * DeepSeek-V3 prefill: 32 (288 slots - 256 experts).
   */
  readonly redundantSlots?: number;
  /** Move budget: new replica loads / replicas in the plan, per plan (e.g. 0.1),
   * on top of the repairs (re-homing experts of GPUs that are gone), which are never refused. */
  readonly maxMoveFraction: number;
  /** Hysteresis: keep the current placement unless balancedness improves by at least this much (e.g. 0.01). */
  readonly minBalancednessGain: number;
  /**
   * Stop improving when the best remaining move reduces its layer's hottest GPU by less than this share
   * of the layer's mean GPU load per replica loaded. Default 1e-4 (the fresh plan's stop).
   */
  readonly minGainPerMove?: number;
  /** Bytes one expert replica of one layer takes; with GpuSlotInfo.memoryBytes limits slots per GPU. */
  readonly bytesPerExpertReplica?: number;
  /**
   * Bandwidths, bytes per replica and the stall bound: with it, a planned outcome carries `moveCost`
   * (bytes per path, layer chunks, estimated duration; move-cost.ts). It does not change the plan.
   */
  readonly moveCost?: MoveCostPolicy;
  /**
   * "spread" (default): among equally good choices put an expert's replicas on nodes / domains that do
   * not hold it yet, so tokens find a replica on their own node. "ignore": balance only.
   */
  readonly topology?: TopologyPreference;
}

export interface PlacementInput {
  /** Routing heat, [moeLayer][expert], tokens/s (any non-negative unit works). */
  readonly heat: ReadonlyArray<ReadonlyArray<number>>;
  readonly gpus: readonly GpuSlotInfo[];
  /** The placement currently loaded; absent for the first plan. */
  readonly current?: Placement;
  readonly policy: PlacementPolicy;
}

export interface PlacementMetrics {
  /** Mean over layers of (mean GPU load / max GPU load); 1 for a layer with no load. */
  readonly balancedness: number;
  readonly layerBalancedness: readonly number[];
  /** Mean over layers of the hottest GPU's load (heat units). */
  readonly meanMaxGpuLoad: number;
  /**
   * Share of routed tokens that leave their node, with tokens originating evenly on all GPUs and
   * each token served by a replica on its own node when one exists.
   */
  readonly crossNodeShare: number;
  /** The same for topology domains. */
  readonly crossDomainShare: number;
  /** Highest node load (sum over the node's GPUs and all layers, heat units). */
  readonly maxNodeLoad: number;
  /** Mean node load / max node load (nodes weighted equally). */
  readonly nodeBalancedness: number;
  /** Replicas placed, all layers. */
  readonly replicaCount: number;
  /** Replicas beyond one per expert, all layers. */
  readonly redundantReplicaCount: number;
}

export type InfeasibleConstraint = "slots" | "memory" | "input";

export type PlacementOutcome =
  | {
      readonly kind: "planned";
      /** "fresh": planned from scratch; "incremental": derived from the current placement. */
      readonly mode: "fresh" | "incremental";
      readonly placement: Placement;
      readonly placementHash: string;
      readonly metrics: PlacementMetrics;
      /** Metrics of the current placement under the new heat, when there was a usable one. */
      readonly previousMetrics: PlacementMetrics | null;
      /** Replicas whose weights must be loaded anew (not on that GPU for that layer before). */
      readonly movedReplicas: number;
      /** movedReplicas / replicas in the new placement. */
      readonly movedFraction: number;
      /** movedReplicas x policy.bytesPerExpertReplica: expert weights loaded anew, bytes; null without bytesPerExpertReplica. */
      readonly movedBytes: number | null;
      /** What the moves cost (bytes per path, layer chunks, estimated duration); null without policy.moveCost. */
      readonly moveCost: MoveCost | null;
      /** Replica loads that were required to repair the current placement (lost GPUs, missing experts). */
      readonly repairMoves: number;
      /**
       * The move budget stopped the search while moves scoring at least minGainPerMove remained: another
       * rebalance on the same heat would improve balance further (a caller may keep rebalancing until false).
       */
      readonly budgetLimited: boolean;
      readonly notes: readonly string[];
    }
  | {
      readonly kind: "unchanged";
      readonly reason: string;
      readonly placement: Placement;
      readonly placementHash: string;
      readonly metrics: PlacementMetrics;
      /** Balancedness the best plan within budget would have reached. */
      readonly candidateBalancedness: number;
    }
  | {
      readonly kind: "infeasible";
      readonly constraint: InfeasibleConstraint;
      readonly reason: string;
    };
