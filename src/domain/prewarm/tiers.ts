// Cold-start load tiers (issue 19, docs/adr/0019-cold-start-tiers.md): where a new shard loads its
// expert weights from, how long that takes, and the pre-warm lead learned per tier.
//
// Pure: no clock, no I/O. Durations in, estimates out.
import { estimateLeadTime, observeColdStarts } from "./leadtime.ts";
import type { LeadTimeEstimate, LeadTimeOptions, LeadTimeState } from "./leadtime.ts";

/**
 * Where a new shard's weights come from:
 * - "peer": Ready replicas that hold its experts send them over the network (GPU to GPU);
 * - "node-disk": the node's local disk, staged ahead of need;
 * - "remote": the remote weight store (object store, model hub).
 */
export type LoadTier = "peer" | "node-disk" | "remote";

export const LOAD_TIERS: readonly LoadTier[] = ["peer", "node-disk", "remote"];

export interface LoadTierFacts {
  /** Peer loading is switched on. */
  readonly peerLoading: boolean;
  /** Every expert the new shard will hold has a replica on a Ready peer. */
  readonly peersHoldExperts: boolean;
  /** The node the new shard lands on holds the staged weights (staging finished). */
  readonly nodeStaged: boolean;
}

/** Peer if peer loading is on and Ready peers hold the shard's experts; node disk if the node was staged; else remote. */
export function chooseLoadTier(f: LoadTierFacts): LoadTier {
  if (f.peerLoading && f.peersHoldExperts) return "peer";
  if (f.nodeStaged) return "node-disk";
  return "remote";
}

/** One tier's bandwidth as one loading shard sees it (bytes of the model per second). */
export interface LoadTierBandwidth {
  readonly peerBytesPerSecond: number;
  readonly nodeDiskBytesPerSecond: number;
  readonly remoteBytesPerSecond: number;
}

export function tierBytesPerSecond(b: LoadTierBandwidth, tier: LoadTier): number {
  switch (tier) {
    case "peer":
      return b.peerBytesPerSecond;
    case "node-disk":
      return b.nodeDiskBytesPerSecond;
    case "remote":
      return b.remoteBytesPerSecond;
  }
}

/**
 * Nominal start-to-Ready of a shard loading `bytes` from `tier`: the fixed engine start (scheduling,
 * container and engine initialisation, warm-up) plus the transfer.
 */
export function tierColdStartS(b: LoadTierBandwidth, tier: LoadTier, bytes: number, engineStartS: number): number {
  const bw = tierBytesPerSecond(b, tier);
  const transferS = bytes > 0 && bw > 0 ? bytes / bw : 0;
  return Math.max(0, engineStartS) + transferS;
}

/** Expert bytes one shard holds: its slots per MoE layer x MoE layers x bytes of one expert replica. */
export function shardExpertBytes(slotsPerLayer: number, moeLayers: number, bytesPerExpertReplica: number): number {
  return Math.max(0, slotsPerLayer) * Math.max(0, moeLayers) * Math.max(0, bytesPerExpertReplica);
}

// ---------------------------------------------------------------------------------------------
// Cold-start learning per tier and node type.

/** A start-to-Ready duration, the tier the pod loaded from and the type of the node it ran on. */
export interface TierColdStart {
  readonly tier: LoadTier;
  readonly durationMs: number;
  /** The node's type (instance type, else GPU product); undefined when the node is not known. */
  readonly nodeType?: string;
}

/**
 * At most this many (tier, node type) pairs are learned: a cluster with more node types than that
 * keeps the first ones seen; the others still count in their tier. Bounds the state (and the status).
 */
export const MAX_TIER_NODE_TYPES = 24;

export interface TierLeadTimeState {
  readonly version: 1;
  readonly byTier: Readonly<Partial<Record<LoadTier, LeadTimeState>>>;
  /** Per (tier, node type), keyed by tierNodeKey; absent until a tagged start named its node type. */
  readonly byTierNode?: Readonly<Record<string, LeadTimeState>>;
}

export function createTierLeadTimeState(): TierLeadTimeState {
  return { version: 1, byTier: {} };
}

/** The key of a (tier, node type) pair in byTierNode. */
export function tierNodeKey(tier: LoadTier, nodeType: string): string {
  return `${tier}/${nodeType}`;
}

/** The (tier, node type) of a byTierNode key (undefined for a key not made by tierNodeKey). */
export function parseTierNodeKey(key: string): { tier: LoadTier; nodeType: string } | undefined {
  const i = key.indexOf("/");
  const tier = key.slice(0, i) as LoadTier;
  return i > 0 && LOAD_TIERS.includes(tier) ? { tier, nodeType: key.slice(i + 1) } : undefined;
}

function foldByTierNode(
  before: Readonly<Record<string, LeadTimeState>> | undefined,
  samples: readonly TierColdStart[],
  options: LeadTimeOptions,
): Readonly<Record<string, LeadTimeState>> | undefined {
  const tagged = samples.filter((s) => s.nodeType !== undefined && s.nodeType !== "");
  if (tagged.length === 0) return before;
  const out: Record<string, LeadTimeState> = { ...before };
  const keys = [...new Set(tagged.map((s) => tierNodeKey(s.tier, s.nodeType!)))].sort();
  for (const key of keys) {
    if (out[key] === undefined && Object.keys(out).length >= MAX_TIER_NODE_TYPES) continue;
    const durations = tagged.filter((s) => tierNodeKey(s.tier, s.nodeType!) === key).map((s) => s.durationMs);
    out[key] = observeColdStarts(out[key] ?? { version: 1, samplesMs: [] }, durations, options);
  }
  return out;
}

/** Fold tagged durations into their tier's samples and their (tier, node type)'s (invalid durations are ignored, as in observeColdStarts). */
export function observeTierColdStarts(
  state: TierLeadTimeState,
  samples: readonly TierColdStart[],
  options: LeadTimeOptions,
): TierLeadTimeState {
  if (samples.length === 0) return state;
  const byTier: Partial<Record<LoadTier, LeadTimeState>> = { ...state.byTier };
  for (const tier of LOAD_TIERS) {
    const durations = samples.filter((s) => s.tier === tier).map((s) => s.durationMs);
    if (durations.length === 0) continue;
    byTier[tier] = observeColdStarts(byTier[tier] ?? { version: 1, samplesMs: [] }, durations, options);
  }
  const byTierNode = foldByTierNode(state.byTierNode, samples, options);
  return byTierNode === undefined ? { version: 1, byTier } : { version: 1, byTier, byTierNode };
}

export interface TierLeadTimeEstimate extends LeadTimeEstimate {
  /** The tier whose samples set the estimate; undefined = all tiers pooled (too few of the tier's own). */
  readonly tier: LoadTier | undefined;
  /** The node type whose samples (of that tier) set the estimate; undefined = the tier's across node types. */
  readonly nodeType?: string;
}

/**
 * The lead for a new pod that will load from `tier` on a node of `nodeType`: that pair's learned
 * quantile once it has minSamples observations; else its tier's once the tier has minSamples (every
 * node type); before that the pooled estimate (every tier's durations, the untiered behaviour),
 * which is conservative while few starts were seen.
 */
export function estimateTierLeadTime(
  state: TierLeadTimeState,
  pooled: LeadTimeState,
  tier: LoadTier,
  options: LeadTimeOptions,
  nodeType?: string,
): TierLeadTimeEstimate {
  const enough = (s: LeadTimeState | undefined): s is LeadTimeState =>
    s !== undefined && s.samplesMs.length >= Math.max(1, options.minSamples);
  const pair = nodeType ? state.byTierNode?.[tierNodeKey(tier, nodeType)] : undefined;
  if (enough(pair)) return { ...estimateLeadTime(pair, options), tier, nodeType };
  const own = state.byTier[tier];
  if (enough(own)) return { ...estimateLeadTime(own, options), tier };
  return { ...estimateLeadTime(pooled, options), tier: undefined };
}

/** What the capacity decision learns its lead time from (CapacityInput's cold-start fields). */
export interface LeadTimeInputs {
  readonly coldStartDurationsMs?: readonly number[];
  /** Durations tagged with the tier the pod loaded from (a subset or all of coldStartDurationsMs). */
  readonly coldStartsByTier?: readonly TierColdStart[];
  /** The tier the next new pod will load from; undefined = one pooled estimate (no tiers). */
  readonly nextLoadTier?: LoadTier;
  /** The type of the node the next new pod is expected on; undefined = its tier across node types. */
  readonly nextNodeType?: string;
}

export interface LearnedLeadTime {
  readonly leadTime: LeadTimeState;
  /** Undefined when no tiered input was ever seen (the state stays as it was). */
  readonly tierLeadTime: TierLeadTimeState | undefined;
  readonly leadTimeMs: number;
}

/** Fold this tick's cold starts in and return the lead for the next new pod. */
export function learnLeadTime(
  state: { readonly leadTime: LeadTimeState; readonly tierLeadTime?: TierLeadTimeState },
  input: LeadTimeInputs,
  options: LeadTimeOptions,
): LearnedLeadTime {
  const leadTime = observeColdStarts(state.leadTime, input.coldStartDurationsMs ?? [], options);
  const tagged = input.coldStartsByTier ?? [];
  const tierLeadTime =
    state.tierLeadTime === undefined && tagged.length === 0 && input.nextLoadTier === undefined
      ? undefined
      : observeTierColdStarts(state.tierLeadTime ?? createTierLeadTimeState(), tagged, options);
  const leadTimeMs =
    input.nextLoadTier === undefined || tierLeadTime === undefined
      ? estimateLeadTime(leadTime, options).leadTimeMs
      : estimateTierLeadTime(tierLeadTime, leadTime, input.nextLoadTier, options, input.nextNodeType).leadTimeMs;
  return { leadTime, tierLeadTime, leadTimeMs };
}
