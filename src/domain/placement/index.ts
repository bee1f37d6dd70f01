// Public API of the expert placement core.
export { planPlacement, DEFAULT_MIN_GAIN_PER_MOVE } from "./plan.ts";
export { computePlacementMetrics, countMovedReplicas, countReplicas, gpuLoads, loadBalancedness } from "./metrics.ts";
export { fnv1a64, parsePlacement, placementHash, serializePlacement } from "./hash.ts";
export type { ParseResult } from "./hash.ts";
export { heatFromSglangLogicalCount, placementFromSglang, placementToSglang } from "./sglang.ts";
export type { SglangHeat, SglangLayerOptions, SglangPhysicalToLogicalMap } from "./sglang.ts";
export { EMPTY_SLOT } from "./types.ts";
export type {
  GpuSlotInfo,
  InfeasibleConstraint,
  Placement,
  PlacementGpu,
  PlacementInput,
  PlacementMetrics,
  PlacementOutcome,
  PlacementPolicy,
  TopologyPreference,
} from "./types.ts";
export { extendPlacement } from "./extend.ts";
export {
  DEFAULT_MAX_STALL_SECONDS,
  DEFAULT_MOVE_BANDWIDTH,
  MOVE_PATHS,
  chunkMoves,
  describeMoveCost,
  estimateMoveCost,
  expertMoves,
  shardStalls,
} from "./move-cost.ts";
export type {
  ExpertMove,
  LayerChunk,
  MoveBandwidth,
  MoveCost,
  MoveCostPolicy,
  MovePath,
  ShardStall,
} from "./move-cost.ts";
