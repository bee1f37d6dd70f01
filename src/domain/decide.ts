// One decision per reconcile: how many expert shards (capacity policy: SLO,
// pre-warm, burst, bounds, budget), which expert replicas each shard holds
// (placement: heat-aware, churn-aware), on which nodes new shards should go,
// and what it costs. The operator calls this; the simulator calls its count half,
// decideShardCount (src/domain/scaling/shard-count.ts), the same function decide() uses.
//
// Pure: time comes in as nowMs; all memory is in the snapshot (capacity state,
// current placement) and comes back in the decision.
import {
  createCapacityState,
  type CapacityDecision,
  type CapacityPolicy,
  type CapacityState,
} from "./capacity/index.ts";
import { decideShardCount, type ShardCountInput } from "./scaling/shard-count.ts";
import type { ShardCountReason } from "./scaling/reasons.ts";
import type { LoadTier, TierColdStart } from "./prewarm/tiers.ts";
import { bestRewrite, growShards, hottestShards } from "./rebalance/shards.ts";
import {
  planPlacement,
  placementHash,
  computePlacementMetrics,
  countMovedReplicas,
  countReplicas,
  extendPlacement,
  type GpuSlotInfo,
  type Placement,
  type PlacementMetrics,
  type PlacementOutcome,
  type TopologyPreference,
  describeMoveCost,
  estimateMoveCost,
  type MoveCost,
  type MoveCostPolicy,
} from "./placement/index.ts";

export interface DeploymentPolicy {
  /** MoE layers (layers with routed experts). */
  readonly layerCount: number;
  readonly expertCount: number;
  readonly topK: number;
  readonly slotsPerGpu: number;
  readonly bytesPerExpertReplica?: number;
  readonly gpuMemoryBytes?: number;
  readonly minShards: number;
  readonly maxShards: number;
  /** Manual override (scale subresource): hold exactly this many shards. */
  readonly manualShards?: number;
  /** GPUs of the router/attention part (fixed), for cost and budget. */
  readonly routerGpus: number;
  /** Capacity policy over shard GPUs (minGpus/maxGpus = shard bounds; budget net of router cost). */
  readonly capacity: CapacityPolicy;
  readonly placement: {
    readonly maxMoveFraction: number;
    readonly minBalancednessGain: number;
    readonly redundantSlots?: number;
    readonly rebalanceIntervalMs: number;
    /**
     * A heat rebalance is due before the interval when the current placement's balancedness under
     * fresh heat is at least this much below snapshot.baselineBalancedness (a heat shift; ADR 0018).
     * Undefined: only the interval.
     */
    readonly earlyRebalanceDrop?: number;
    readonly topology: TopologyPreference;
    /**
     * Most running shards one heat rebalance may change (each change is a new pod and a weight
     * load), e.g. the rollout's surge. The free GPUs on matching nodes, less those new shards are
     * about to take, bound it further (at least 2): every replacement must be able to start at
     * once, or old pods wait on replacements that wait on GPUs the old pods hold.
     */
    readonly maxChangedShards?: number;
    /**
     * Shards change their experts in place (spec.placement.moves.mode InPlace): a changed shard needs
     * no new pod and no spare GPU, so a heat rebalance may change any number of shards
     * (maxChangedShards and the free GPUs do not bound it); the move budget still does.
     */
    readonly inPlaceMoves?: boolean;
    /**
     * Bytes per replica, path bandwidths and the per-shard stall bound: with it, a replan carries the
     * move cost of the change (bytes, layer chunks, estimated duration) and its reason says it.
     */
    readonly moveCost?: MoveCostPolicy;
  };
  readonly defaultUsdPerGpuHour?: number;
}

/**
 * What a placement was planned with: heat observed at the time, the last good heat remembered from
 * earlier (metrics briefly unusable), or none at all (uniform: a deployment's first plan before any
 * traffic was seen).
 */
export type HeatBasis = "observed" | "remembered" | "none";

export interface HeatObservation {
  /** [moeLayer][expert] routed tokens per second. */
  readonly heat: ReadonlyArray<ReadonlyArray<number>>;
  readonly atMs: number;
  /** 0..1: share of (layer, expert) series that were present and finite. */
  readonly confidence: number;
}

export interface ShardView {
  readonly shardIndex: number;
  /** Node the shard's current pod runs on (undefined while unscheduled). */
  readonly nodeName?: string;
  readonly domain?: string;
  readonly ready: boolean;
  readonly usdPerGpuHour?: number;
}

export interface NodeView {
  readonly name: string;
  readonly domain: string;
  /** GPUs not requested by any pod. */
  readonly freeGpus: number;
  readonly usdPerGpuHour?: number;
  /** The node holds this deployment's staged weights (spec.prewarm.staging): new shards go there first. */
  readonly staged?: boolean;
  /** The node's type (instance type, else GPU product; observe.ts nodeTypeOf), for cold starts per node type. */
  readonly nodeType?: string;
  /**
   * The node matches only spec.serving.gpu.alternatives: it prices and counts the fallback pods on it,
   * but new shards are not assigned to it (they are created with the primary scheduling).
   */
  readonly fallbackOnly?: boolean;
}

export interface DecisionSnapshot {
  readonly heat?: HeatObservation;
  /** Last heat that was good enough to act on (kept by the caller). */
  readonly lastGoodHeat?: ReadonlyArray<ReadonlyArray<number>>;
  readonly observedP99Ms?: number;
  /** One entry per shard index that has a pod (any placement version). */
  readonly shards: readonly ShardView[];
  /** Shards the cluster is realising now (the last desired count). */
  readonly provisionedShards: number;
  readonly currentPlacement?: Placement;
  /** How the current placement was planned (published with it); undefined counts as heat-based. */
  readonly currentPlacementHeatBasis?: HeatBasis;
  /** When the last heat rebalance (not a change of shard count) was published. */
  readonly lastRebalanceMs?: number;
  /**
   * Balancedness of the current placement under the heat of its last plan or rebalance evaluation
   * (Decision.nextBaselineBalancedness, kept by the caller); undefined: unknown (no early rebalance).
   */
  readonly baselineBalancedness?: number;
  /**
   * The heat was read over only this many seconds since a detected heat shift (placement/shift-window.ts),
   * and no rebalance was evaluated on such a reading yet: a heat rebalance is due, so the placement
   * follows the shifted heat without waiting for the interval or the full rate window.
   */
  readonly heatSinceShiftSeconds?: number;
  /** A placement rollout is still in progress (pods being replaced). */
  readonly rolloutInProgress: boolean;
  readonly coldStartDurationsMs?: readonly number[];
  /** The same cold starts tagged with the tier each pod reported loading from (those that did). */
  readonly coldStartsByTier?: readonly TierColdStart[];
  /** The tier the next new shard will load from (undefined: no pod reported one; one pooled lead). */
  readonly nextLoadTier?: LoadTier;
  /** The type of the node the next new shard is expected on (undefined: its tier across node types). */
  readonly nextNodeType?: string;
  /** Shards whose pods waited for a node past the pending timeout (CapacityPending): not coming capacity. */
  readonly pendingShards?: number;
  readonly capacityState?: CapacityState;
  /** When this operator process started tracking the deployment (restart safety). */
  readonly trackingSinceMs: number;
  readonly nodes: readonly NodeView[];
  /**
   * When the most recent of the Ready shards became Ready, or last finished an in-place move (one
   * outstanding counts as now until its deadline; the operator's observe.readySince): observed
   * latency covers a window, and it says nothing about the current shards until one window (and
   * the policy's feedbackWarmupMs) has passed since.
   */
  readonly readySinceMs?: number;
  /** When observedP99Ms was measured (the latency reading's sample time; absent: now). */
  readonly observedP99AtMs?: number;
  /** When the shard count last went up (from status), for the SLO feedback cooldown. */
  readonly lastScaleUpMs?: number;
}

export interface DecisionPlacement {
  readonly action: "keep" | "replan" | "initial" | "infeasible";
  readonly reason: string;
  readonly placement?: Placement;
  readonly hash?: string;
  readonly metrics?: PlacementMetrics;
  readonly movedFraction?: number;
  readonly movedReplicas?: number;
  /** What the change from the current placement costs (policy.placement.moveCost set, a current placement). */
  readonly moveCost?: MoveCost;
  /** Heat the returned placement rests on (publish it with the placement). */
  readonly heatBasis?: HeatBasis;
  /** A rebalance by heat, not a change of shard count: it restarts the rebalance interval. */
  readonly heatRebalance?: boolean;
  /**
   * A due heat rebalance was evaluated and found not worth it: the caller should not evaluate
   * again before the next interval (plans cost tens to hundreds of ms).
   */
  readonly rebalanceEvaluated?: boolean;
}

export interface Decision {
  readonly desiredShards: number;
  readonly capacity: CapacityDecision | undefined;
  /** Why the shard count is what it is (CamelCase; API strings via apiReasonOf in src/domain/scaling/reasons.ts). */
  readonly reason: ShardCountReason;
  readonly message: string;
  readonly placement: DecisionPlacement;
  /** Preferred node per shard index (0..desiredShards-1). */
  readonly shardNodes: readonly (string | undefined)[];
  /** Shards that no node has a free GPU for right now. */
  readonly unschedulableShards: number;
  readonly loadTokensPerSecond: number | undefined;
  readonly heatUsable: boolean;
  readonly heatProblem?: string;
  readonly usdPerHourNow: number;
  readonly usdPerHourDesired: number;
  readonly nextCapacityState: CapacityState;
  /** snapshot.nextLoadTier, the tier the lead time was learned for (reported in status). */
  readonly nextLoadTier?: LoadTier;
  /** snapshot.nextNodeType, the node type the lead time was learned for (reported in status). */
  readonly nextNodeType?: string;
  /** What the caller passes as snapshot.baselineBalancedness next time. */
  readonly nextBaselineBalancedness?: number;
  /**
   * A heat rebalance was due because the heat shifted (the early trigger, not a since-shift
   * reading): the caller reads heat since this tick's reading for a while (placement/shift-window.ts).
   */
  readonly heatShiftDetected: boolean;
}

/** Heat below this confidence is not used to move experts or size capacity. */
export const MIN_HEAT_CONFIDENCE = 0.5;

/** Offered tokens/s implied by per-expert routed-token rates: each token visits topK experts per layer. */
export function tokensPerSecondFromHeat(heat: ReadonlyArray<ReadonlyArray<number>>, topK: number): number {
  if (heat.length === 0 || topK <= 0) return 0;
  let total = 0;
  for (const layer of heat) for (const v of layer) if (Number.isFinite(v) && v > 0) total += v;
  return total / heat.length / topK;
}

export function uniformHeat(layerCount: number, expertCount: number): number[][] {
  return Array.from({ length: layerCount }, () => new Array<number>(expertCount).fill(1));
}

/**
 * Preferred nodes for shards: existing shards stay; new ones go to staged nodes first, then the
 * cheapest nodes with free GPUs, packed by domain; never to a node only spec.serving.gpu.alternatives
 * matches (new shard pods have the primary scheduling).
 */
export function assignShardNodes(
  shards: readonly ShardView[],
  desiredShards: number,
  nodes: readonly NodeView[],
): { nodes: (string | undefined)[]; unschedulable: number } {
  const out: (string | undefined)[] = new Array(desiredShards).fill(undefined);
  const free = new Map(nodes.map((n) => [n.name, n.freeGpus]));
  const usedDomains = new Map<string, number>();
  const domainOf = new Map(nodes.map((n) => [n.name, n.domain]));
  for (const s of shards) {
    if (s.shardIndex < desiredShards && s.nodeName) {
      out[s.shardIndex] = s.nodeName;
      const d = domainOf.get(s.nodeName) ?? s.nodeName;
      usedDomains.set(d, (usedDomains.get(d) ?? 0) + 1);
    }
  }
  // Shards beyond desiredShards are going away: their GPUs will be free.
  for (const s of shards)
    if (s.shardIndex >= desiredShards && s.nodeName) free.set(s.nodeName, (free.get(s.nodeName) ?? 0) + 1);
  let unschedulable = 0;
  const existing = new Set(shards.filter((s) => s.shardIndex < desiredShards).map((s) => s.shardIndex));
  for (let i = 0; i < desiredShards; i++) {
    if (existing.has(i)) continue;
    const candidates = nodes
      .filter((n) => !n.fallbackOnly && (free.get(n.name) ?? 0) > 0)
      .sort(
        (a, b) =>
          Number(b.staged ?? false) - Number(a.staged ?? false) ||
          (a.usdPerGpuHour ?? Infinity) - (b.usdPerGpuHour ?? Infinity) ||
          (usedDomains.get(b.domain) ?? 0) - (usedDomains.get(a.domain) ?? 0) ||
          (free.get(a.name) ?? 0) - (free.get(b.name) ?? 0) ||
          a.name.localeCompare(b.name),
      );
    const pick = candidates[0];
    if (!pick) {
      unschedulable++;
      continue;
    }
    out[i] = pick.name;
    free.set(pick.name, (free.get(pick.name) ?? 0) - 1);
    usedDomains.set(pick.domain, (usedDomains.get(pick.domain) ?? 0) + 1);
  }
  return { nodes: out, unschedulable };
}

function sameGpus(p: Placement, gpus: readonly GpuSlotInfo[]): boolean {
  if (p.gpus.length !== gpus.length) return false;
  return p.gpus.every((g, i) => g.gpuId === gpus[i]!.gpuId && g.slotCount === gpus[i]!.slotCount);
}

/** The same expert assignment with the GPUs' nodes and domains updated (pods landed elsewhere). */
function relabel(p: Placement, gpus: readonly GpuSlotInfo[]): Placement {
  if (p.gpus.every((g, i) => g.nodeName === gpus[i]!.nodeName && g.domain === (gpus[i]!.domain ?? gpus[i]!.nodeName)))
    return p;
  return {
    ...p,
    gpus: p.gpus.map((g, i) => ({ ...g, nodeName: gpus[i]!.nodeName, domain: gpus[i]!.domain ?? gpus[i]!.nodeName })),
  };
}

export const shardGpuId = (shardIndex: number) => `shard-${shardIndex}`;

function sameSet(a: ReadonlyArray<number>, b: ReadonlyArray<number>): boolean {
  if (a.length !== b.length) return false;
  const x = [...a].sort((p, q) => p - q);
  const y = [...b].sort((p, q) => p - q);
  return x.every((v, i) => v === y[i]);
}

/**
 * Keep a heat rebalance to at most `maxChanged` running shards: the shards the plan changes most
 * take their new experts, the others keep theirs, and a repair pass (no budget) gives any expert
 * left without a replica one. The rest of the improvement waits for the next rebalance.
 */
export function limitChangedShards(
  current: Placement,
  planned: Placement,
  heat: ReadonlyArray<ReadonlyArray<number>>,
  gpus: readonly GpuSlotInfo[],
  maxChanged: number,
): Placement {
  const shared = Math.min(current.gpus.length, planned.gpus.length);
  const changes: { g: number; n: number }[] = [];
  for (let g = 0; g < shared; g++) {
    let n = 0;
    for (let l = 0; l < planned.layerCount; l++) if (!sameSet(current.layers[l]![g]!, planned.layers[l]![g]!)) n++;
    if (n > 0) changes.push({ g, n });
  }
  if (changes.length <= maxChanged) return planned;
  const keep = new Set(
    changes
      .sort((a, b) => b.n - a.n || a.g - b.g)
      .slice(0, Math.max(0, maxChanged))
      .map((c) => c.g),
  );
  const hybrid: Placement = {
    ...planned,
    layers: planned.layers.map((layer, l) =>
      layer.map((slots, g) => (g < shared && !keep.has(g) ? [...current.layers[l]![g]!] : [...slots])),
    ),
  };
  const repaired = planPlacement({
    heat,
    gpus,
    current: hybrid,
    policy: { maxMoveFraction: 0, minBalancednessGain: 0 },
  });
  return repaired.kind === "infeasible" ? current : repaired.placement;
}

// ---------------------------------------------------------------------------------------------
// decide() as a pipeline (docs/adr/0011-decide-pipeline.md): heat quality -> shard count
// (decideShardCount, shared with the simulator) -> nodes for shards -> placement intent -> the
// intent's function -> cost.

export interface HeatQuality {
  readonly usable: boolean;
  readonly problem: string | undefined;
  /** The observed heat (only when usable). */
  readonly heat: ReadonlyArray<ReadonlyArray<number>> | undefined;
  readonly atMs: number | undefined;
  readonly load: number | undefined;
}

export function assessHeat(h: HeatObservation | undefined, policy: DeploymentPolicy): HeatQuality {
  let problem: string | undefined;
  if (!h) problem = "no heat data";
  else if (h.heat.length !== policy.layerCount || h.heat.some((l) => l.length !== policy.expertCount))
    problem = `heat has shape ${h.heat.length}x${h.heat[0]?.length ?? 0}, expected ${policy.layerCount}x${policy.expertCount}`;
  else if (!(h.confidence >= MIN_HEAT_CONFIDENCE))
    problem = `heat confidence ${h.confidence.toFixed(2)} below ${MIN_HEAT_CONFIDENCE}`;
  if (problem !== undefined || h === undefined)
    return { usable: false, problem, heat: undefined, atMs: undefined, load: undefined };
  return { usable: true, problem, heat: h.heat, atMs: h.atMs, load: tokensPerSecondFromHeat(h.heat, policy.topK) };
}

/** The GPUs a cost is read from: GPU nodes with their prices, and the running GPUs (shards, or a WideEP group's GPUs). */
export type PricedGpus = Pick<DecisionSnapshot, "nodes" | "shards">;

/** Price of one more GPU-hour: the cheapest node with a free GPU, else a running shard's, else the default. */
export function marginalPriceOf(snapshot: PricedGpus, policy: DeploymentPolicy): number | undefined {
  return (
    snapshot.nodes
      .filter((n) => n.freeGpus > 0 && n.usdPerGpuHour !== undefined)
      .map((n) => n.usdPerGpuHour!)
      .sort((a, b) => a - b)[0] ??
    snapshot.shards.map((s) => s.usdPerGpuHour).find((p) => p !== undefined) ??
    policy.defaultUsdPerGpuHour
  );
}

export const SHARD_UNIT = { one: "shard", many: "shards" } as const;

/** The shard count's input from the snapshot (the facts the operator keeps in status). */
function shardCountInputOf(
  snapshot: DecisionSnapshot,
  policy: DeploymentPolicy,
  heat: HeatQuality,
  currentMetrics: PlacementMetrics | undefined,
  marginalPrice: number | undefined,
): ShardCountInput {
  return {
    capacity: {
      tokensPerSecond: heat.load,
      metricsAtMs: heat.atMs,
      metricsConfidence: snapshot.heat?.confidence,
      observedP99Ms: snapshot.observedP99Ms,
      provisionedGpus: snapshot.provisionedShards,
      readyGpus: snapshot.shards.filter((s) => s.ready).length,
      pendingGpus: snapshot.pendingShards,
      balancedness: currentMetrics?.balancedness ?? 1,
      crossNodeShare: currentMetrics?.crossNodeShare ?? 0,
      coldStartDurationsMs: snapshot.coldStartDurationsMs,
      coldStartsByTier: snapshot.coldStartsByTier,
      nextLoadTier: snapshot.nextLoadTier,
      nextNodeType: snapshot.nextNodeType,
      usdPerGpuHour: marginalPrice,
    },
    state: snapshot.capacityState ?? createCapacityState(policy.capacity),
    trackingSinceMs: snapshot.trackingSinceMs,
    lastScaleUpMs: snapshot.lastScaleUpMs,
    readySinceMs: snapshot.readySinceMs,
    observedP99AtMs: snapshot.observedP99AtMs,
  };
}

/** What every placement intent works from. */
interface PlacementContext {
  readonly policy: DeploymentPolicy;
  readonly snapshot: DecisionSnapshot;
  readonly nowMs: number;
  readonly desiredShards: number;
  /** One GPU per desired shard, on its preferred (or recorded) node. */
  readonly gpus: readonly GpuSlotInfo[];
  /** The current placement, relabelled to the shards' nodes when the shard set is unchanged. */
  readonly current: Placement | undefined;
  /** The shard set differs from the current placement's (or there is none). */
  readonly structural: boolean;
  readonly currentBasis: HeatBasis;
  readonly currentMetrics: PlacementMetrics | undefined;
  readonly heat: HeatQuality;
  /** Heat to plan with: observed, else the last good, else uniform. */
  readonly planHeat: ReadonlyArray<ReadonlyArray<number>>;
  readonly planHeatBasis: HeatBasis;
  readonly freeGpus: number;
  /** Desired shards without a pod yet. */
  readonly newShards: number;
  /**
   * Running shards one heat rebalance may change: every running shard a plan changes is a new pod,
   * and its replacement must be able to start at once (or old pods wait on replacements that wait
   * on GPUs the old pods hold): at most the surge, and the free GPUs less those new shards are
   * about to take (at least 2).
   */
  readonly changeLimit: number;
  /** The current placement's balancedness under fresh heat fell below its baseline by the early-rebalance drop. */
  readonly heatShifted: boolean;
}

/** GPUs for the desired shards: a shard whose pod is not scheduled yet keeps the node the published placement recorded, so the placement (and its version) does not change while the scheduler works. */
function shardGpus(
  snapshot: DecisionSnapshot,
  policy: DeploymentPolicy,
  desiredShards: number,
  assigned: readonly (string | undefined)[],
): GpuSlotInfo[] {
  const gpus: GpuSlotInfo[] = [];
  const scheduled = new Set(snapshot.shards.filter((s) => s.nodeName).map((s) => s.shardIndex));
  for (let i = 0; i < desiredShards; i++) {
    const recorded =
      snapshot.currentPlacement?.gpus[i]?.gpuId === shardGpuId(i) && !scheduled.has(i)
        ? snapshot.currentPlacement.gpus[i]!.nodeName
        : undefined;
    const nodeName = recorded ?? assigned[i] ?? `unscheduled-${i}`;
    const domain = snapshot.nodes.find((n) => n.name === nodeName)?.domain ?? nodeName;
    gpus.push({
      gpuId: shardGpuId(i),
      nodeName,
      domain,
      slotCount: policy.slotsPerGpu,
      memoryBytes: policy.gpuMemoryBytes,
    });
  }
  return gpus;
}

function placementContext(
  snapshot: DecisionSnapshot,
  policy: DeploymentPolicy,
  nowMs: number,
  desiredShards: number,
  gpus: readonly GpuSlotInfo[],
  heat: HeatQuality,
  currentMetrics: PlacementMetrics | undefined,
): PlacementContext {
  const freeGpus = snapshot.nodes.reduce((a, n) => a + n.freeGpus, 0);
  const newShards = Math.max(0, desiredShards - new Set(snapshot.shards.map((s) => s.shardIndex)).size);
  const structural = !snapshot.currentPlacement || !sameGpus(snapshot.currentPlacement, gpus);
  return {
    policy,
    snapshot,
    nowMs,
    desiredShards,
    gpus,
    structural,
    currentMetrics,
    heat,
    freeGpus,
    newShards,
    current:
      snapshot.currentPlacement && !structural ? relabel(snapshot.currentPlacement, gpus) : snapshot.currentPlacement,
    currentBasis: snapshot.currentPlacementHeatBasis ?? "observed",
    planHeat: heat.heat ?? snapshot.lastGoodHeat ?? uniformHeat(policy.layerCount, policy.expertCount),
    planHeatBasis: heat.usable ? "observed" : snapshot.lastGoodHeat ? "remembered" : "none",
    heatShifted: heatShifted(snapshot, policy, heat, currentMetrics),
    changeLimit: policy.placement.inPlaceMoves
      ? Number.POSITIVE_INFINITY
      : Math.min(policy.placement.maxChangedShards ?? Number.POSITIVE_INFINITY, Math.max(2, freeGpus - newShards)),
  };
}

function heatShifted(
  snapshot: DecisionSnapshot,
  policy: DeploymentPolicy,
  heat: HeatQuality,
  currentMetrics: PlacementMetrics | undefined,
): boolean {
  const drop = policy.placement.earlyRebalanceDrop;
  const baseline = snapshot.baselineBalancedness;
  if (drop === undefined || baseline === undefined || !heat.usable || currentMetrics === undefined) return false;
  return baseline - currentMetrics.balancedness >= drop;
}

/**
 * What the placement does this tick:
 * - Initial: no placement yet;
 * - FirstHeat: the current placement was made before any heat existed (uniform): the first usable
 *   heat gets a full plan at once (no interval, no move budget, even while pods are still starting),
 *   since any expert layout is as good as another to keep and the skew of real heat is 5-8x;
 * - ScaleUp: more shards, and the current placement extends to them;
 * - ScaleDown: any other change of the shard set (fewer shards, or more that do not extend): the
 *   experts the removed shards held are re-homed;
 * - HeatRebalance: same shards, usable heat, the rebalance interval passed or the heat shifted
 *   (balancedness fell by earlyRebalanceDrop since the last plan or evaluation), no rollout running;
 * - Keep: otherwise.
 */
export type PlacementIntent = "Initial" | "FirstHeat" | "ScaleUp" | "ScaleDown" | "HeatRebalance" | "Keep";

function intentOf(c: PlacementContext): PlacementIntent {
  const firstHeat = c.heat.usable && c.current !== undefined && c.currentBasis === "none";
  const due =
    firstHeat ||
    c.snapshot.lastRebalanceMs === undefined ||
    c.nowMs - c.snapshot.lastRebalanceMs >= c.policy.placement.rebalanceIntervalMs ||
    c.heatShifted ||
    c.snapshot.heatSinceShiftSeconds !== undefined;
  if (!c.structural && !(c.heat.usable && due && (!c.snapshot.rolloutInProgress || firstHeat))) return "Keep";
  if (firstHeat) return "FirstHeat";
  if (c.current === undefined) return "Initial";
  if (c.structural && c.gpus.length > c.current.gpus.length && extendPlacement(c.current, c.planHeat, c.gpus))
    return "ScaleUp";
  return c.structural ? "ScaleDown" : "HeatRebalance";
}

function keepPlacement(c: PlacementContext): DecisionPlacement {
  return {
    action: "keep",
    reason: !c.heat.usable
      ? `keeping the placement: ${c.heat.problem}`
      : c.snapshot.rolloutInProgress
        ? "keeping the placement: a rollout is in progress"
        : "keeping the placement until the next rebalance interval",
    placement: c.current,
    hash: c.current ? placementHash(c.current) : undefined,
    metrics: c.currentMetrics,
    heatBasis: c.current ? c.currentBasis : undefined,
  };
}

/**
 * Scale-up. Either the new shards get redundant replicas of the hottest experts and running shards
 * keep theirs (no pod replacement), or the new shards and the hottest running ones (as many as
 * spare GPUs allow beyond the new shards) are written for the heat together; whichever balances
 * better. Heat rebalances refine later.
 */
function scaleUpPlacement(c: PlacementContext): DecisionPlacement {
  const current = c.current!;
  const plain = extendPlacement(current, c.planHeat, c.gpus)!;
  const spare = Math.max(
    0,
    Math.min(c.policy.placement.maxChangedShards ?? Number.POSITIVE_INFINITY, c.freeGpus - c.newShards),
  );
  // Running shards are only rewritten for heat observed now (not for remembered or no heat).
  let hot = spare > 0 && c.heat.usable ? hottestShards(current, c.planHeat).slice(0, spare) : [];
  let grown = growShards(current, c.planHeat, c.gpus, hot);
  // In place, a rewritten running shard needs no spare GPU but stalls while it loads: what running
  // shards load stays within the move budget, as for a heat rebalance (fewer rewritten shards).
  const budget = c.policy.placement.inPlaceMoves
    ? Math.floor(c.policy.placement.maxMoveFraction * countReplicas(current))
    : Number.POSITIVE_INFINITY;
  while (grown && hot.length > 0 && movedOnRunning(current, grown) > budget) {
    hot = hot.slice(0, Math.floor(hot.length / 2));
    grown = growShards(current, c.planHeat, c.gpus, hot);
  }
  const plainBal = computePlacementMetrics(plain, c.planHeat).balancedness;
  const grownBal = grown ? computePlacementMetrics(grown, c.planHeat).balancedness : -1;
  const extended = grown && grownBal > plainBal ? grown : plain;
  const moved = countMovedReplicas(current, extended);
  const cost = moveCostOf(c, extended);
  return {
    action: "replan",
    reason: withMoveCost(
      c,
      cost,
      extended === plain
        ? `scaled up to ${c.desiredShards} shards: new shards hold redundant replicas of the hottest experts; running shards unchanged`
        : `scaled up to ${c.desiredShards} shards: the new shards${hot.length > 0 ? ` and the ${hot.length} hottest running ones` : ""} written for the heat (balancedness ${grownBal.toFixed(3)} vs ${plainBal.toFixed(3)} with running shards unchanged)`,
    ),
    ...(cost ? { moveCost: cost } : {}),
    placement: extended,
    hash: placementHash(extended),
    metrics: computePlacementMetrics(extended, c.planHeat),
    movedFraction: moved / Math.max(1, countReplicas(extended)),
    movedReplicas: moved,
    heatBasis: c.currentBasis,
  };
}

/** Replicas that shards of `current` load in `next` (new shards' first loads not counted). */
function movedOnRunning(current: Placement, next: Placement): number {
  const running = new Set(current.gpus.map((g) => g.gpuId));
  const keep = next.gpus.flatMap((g, i) => (running.has(g.gpuId) ? [i] : []));
  const sub: Placement = {
    ...next,
    gpus: keep.map((i) => next.gpus[i]!),
    layers: next.layers.map((layer) => keep.map((i) => layer[i] ?? [])),
  };
  return countMovedReplicas(current, sub);
}

type PlannedOutcome = Extract<PlacementOutcome, { kind: "planned" }>;

/**
 * planPlacement with the intent's move budget and gain threshold; the infeasible and unchanged
 * outcomes are the same for every intent, a planned one goes to `onPlanned`.
 */
function plan(
  c: PlacementContext,
  budget: { maxMoveFraction: number; minBalancednessGain: number },
  unchanged: Pick<DecisionPlacement, "heatBasis" | "rebalanceEvaluated">,
  onPlanned: (o: PlannedOutcome) => DecisionPlacement,
): DecisionPlacement {
  const { policy, current } = c;
  const outcome = planPlacement({
    heat: c.planHeat,
    gpus: c.gpus,
    current:
      current && current.layerCount === policy.layerCount && current.expertCount === policy.expertCount
        ? current
        : undefined,
    policy: {
      ...budget,
      redundantSlots:
        policy.placement.redundantSlots === undefined
          ? undefined
          : Math.max(
              0,
              Math.min(policy.placement.redundantSlots, c.desiredShards * policy.slotsPerGpu - policy.expertCount),
            ),
      bytesPerExpertReplica: policy.bytesPerExpertReplica,
      topology: policy.placement.topology,
    },
  });
  if (outcome.kind === "infeasible") {
    return {
      action: "infeasible",
      reason: outcome.reason,
      placement: current,
      hash: current ? placementHash(current) : undefined,
      metrics: c.currentMetrics,
      heatBasis: current ? c.currentBasis : undefined,
    };
  }
  // Nothing worth the threshold within the replica move budget (a near-optimal placement).
  if (outcome.kind === "unchanged")
    return {
      action: "keep",
      reason: outcome.reason,
      placement: outcome.placement,
      hash: outcome.placementHash,
      metrics: outcome.metrics,
      ...unchanged,
    };
  return onPlanned(outcome);
}

/** The move cost of changing the current placement into `next`, when the policy has the numbers. */
function moveCostOf(c: PlacementContext, next: Placement): MoveCost | undefined {
  const policy = c.policy.placement.moveCost;
  return policy && c.current ? estimateMoveCost(c.current, next, policy) : undefined;
}

function withMoveCost(c: PlacementContext, cost: MoveCost | undefined, reason: string): string {
  if (!cost || cost.moves === 0) return reason;
  return `${reason}; loads ${describeMoveCost(cost, c.policy.placement.moveCost!.maxStallSeconds)}`;
}

function replanned(
  c: PlacementContext,
  placement: Placement,
  metrics: PlacementMetrics,
  o: PlannedOutcome,
  rest: Pick<DecisionPlacement, "action" | "reason" | "heatBasis" | "heatRebalance">,
): DecisionPlacement {
  const cost = moveCostOf(c, placement);
  return {
    ...rest,
    reason: withMoveCost(c, cost, rest.reason),
    ...(cost ? { moveCost: cost } : {}),
    placement,
    hash: placementHash(placement),
    metrics,
    movedFraction: o.movedFraction,
    movedReplicas: o.movedReplicas,
  };
}

function initialPlacement(c: PlacementContext): DecisionPlacement {
  const budget = { maxMoveFraction: c.policy.placement.maxMoveFraction, minBalancednessGain: 0 };
  return plan(c, budget, { heatBasis: c.currentBasis, rebalanceEvaluated: false }, (o) =>
    replanned(c, o.placement, o.metrics, o, {
      action: "initial",
      reason: `initial placement on ${c.desiredShards} shards${c.planHeatBasis === "none" ? " (no heat seen yet: experts spread evenly; the first usable heat re-plans)" : ""}`,
      heatBasis: c.planHeatBasis,
      heatRebalance: false,
    }),
  );
}

function firstHeatPlacement(c: PlacementContext): DecisionPlacement {
  return plan(
    c,
    { maxMoveFraction: 1, minBalancednessGain: 0 },
    { heatBasis: "observed", rebalanceEvaluated: !c.structural },
    (o) =>
      replanned(c, o.placement, o.metrics, o, {
        action: "replan",
        reason: `first heat-based placement: balancedness ${(o.previousMetrics?.balancedness ?? 0).toFixed(3)} -> ${o.metrics.balancedness.toFixed(3)} (the previous one was made before any heat was seen)`,
        heatBasis: "observed",
        heatRebalance: true,
      }),
  );
}

/**
 * Re-homes the experts the removed shards held (repairs are never refused). Replace mode stops there:
 * every other change is a new pod. In place, a change is a load on a running shard, so with observed
 * heat the re-homing also spends the heat rebalance's move budget, and the smaller fleet starts
 * balanced: re-homing alone left the demo's scale-downs at 0.7, and the capacity model, which sizes
 * with the current balancedness, asked the shards straight back.
 */
function scaleDownPlacement(c: PlacementContext): DecisionPlacement {
  const rebalance = c.policy.placement.inPlaceMoves === true && c.heat.usable;
  return plan(
    c,
    { maxMoveFraction: rebalance ? c.policy.placement.maxMoveFraction : 0, minBalancednessGain: 0 },
    { heatBasis: c.currentBasis, rebalanceEvaluated: false },
    (o) =>
      replanned(c, o.placement, o.metrics, o, {
        action: "replan",
        reason: `shards changed to ${c.desiredShards}: re-homed experts (${o.mode})`,
        heatBasis: c.currentBasis,
        heatRebalance: false,
      }),
  );
}

/**
 * A heat rebalance spends the move budget. When the plan touches more shards than may change, the
 * better of its limited form and a rewrite of the hottest shards (the whole set of a rewritten
 * shard is free to choose), as many as the surge, the free GPUs and the move budget (in shards) allow.
 */
function heatRebalancePlacement(c: PlacementContext): DecisionPlacement {
  const { policy } = c;
  const current = c.current!;
  const budget = {
    maxMoveFraction: policy.placement.maxMoveFraction,
    minBalancednessGain: policy.placement.minBalancednessGain,
  };
  return plan(c, budget, { heatBasis: c.currentBasis, rebalanceEvaluated: true }, (o) => {
    let planned = o.placement;
    let moves = { movedFraction: o.movedFraction, movedReplicas: o.movedReplicas };
    const limited = limitChangedShards(current, o.placement, c.planHeat, c.gpus, c.changeLimit);
    if (limited !== o.placement) {
      const bal = (p: Placement) => computePlacementMetrics(p, c.planHeat).balancedness;
      const k = Math.min(c.changeLimit, Math.max(1, Math.floor(policy.placement.maxMoveFraction * c.desiredShards)));
      const rewritten = bestRewrite(current, c.planHeat, k, bal);
      planned = bal(rewritten) > bal(limited) ? rewritten : limited;
      const movedReplicas = countMovedReplicas(current, planned);
      moves = { movedReplicas, movedFraction: movedReplicas / Math.max(1, countReplicas(planned)) };
    }
    const metrics = planned === o.placement ? o.metrics : computePlacementMetrics(planned, c.planHeat);
    const before = c.currentMetrics;
    // A budget-limited current placement is a convergence in progress: continue it (ADR 0002).
    const converging = (current.pendingMoves ?? 0) > 0;
    if (
      before !== undefined &&
      !converging &&
      metrics.balancedness - before.balancedness < policy.placement.minBalancednessGain
    ) {
      return {
        action: "keep",
        reason: `keeping the placement: the rebalance that fits the free GPUs would change balancedness ${before.balancedness.toFixed(3)} -> ${metrics.balancedness.toFixed(3)}, below the ${policy.placement.minBalancednessGain} gain threshold`,
        placement: current,
        hash: placementHash(current),
        metrics: before,
        heatBasis: c.currentBasis,
        rebalanceEvaluated: true,
      };
    }
    return {
      ...replanned(
        c,
        planned,
        metrics,
        { ...o, ...moves },
        {
          action: "replan",
          reason: `rebalanced by heat${shiftNote(c)}: balancedness ${(before?.balancedness ?? 0).toFixed(3)} -> ${metrics.balancedness.toFixed(3)}`,
          heatBasis: "observed",
          heatRebalance: true,
        },
      ),
    };
  });
}

/** Says why a rebalance came before its interval. */
function shiftNote(c: PlacementContext): string {
  const due =
    c.snapshot.lastRebalanceMs === undefined ||
    c.nowMs - c.snapshot.lastRebalanceMs >= c.policy.placement.rebalanceIntervalMs;
  if (due) return "";
  const since = c.snapshot.heatSinceShiftSeconds;
  if (since !== undefined) return ` before the interval (heat read over the ${since} s since a heat shift)`;
  return c.heatShifted
    ? ` before the interval (the heat shifted: balancedness ${c.snapshot.baselineBalancedness!.toFixed(3)} at the last plan)`
    : "";
}

/**
 * The baseline the next tick compares fresh heat against: a placement planned (or a due rebalance
 * evaluated) on observed heat sets it to its balancedness under that heat, so a rebalance that
 * found nothing worth moving re-arms the trigger at today's value instead of firing every tick.
 * A placement planned without observed heat clears it; anything else carries it over.
 */
function nextBaseline(snapshot: DecisionSnapshot, heat: HeatQuality, p: DecisionPlacement): number | undefined {
  if (p.placement === undefined) return undefined;
  const planned = p.action === "replan" || p.action === "initial";
  if (!heat.usable) return planned ? undefined : snapshot.baselineBalancedness;
  if ((planned || p.rebalanceEvaluated) && p.metrics) return p.metrics.balancedness;
  return snapshot.baselineBalancedness;
}

/** One function per intent; the type check fails when an intent has none. */
const PLACEMENT_BY_INTENT = {
  Initial: initialPlacement,
  FirstHeat: firstHeatPlacement,
  ScaleUp: scaleUpPlacement,
  ScaleDown: scaleDownPlacement,
  HeatRebalance: heatRebalancePlacement,
  Keep: keepPlacement,
} as const satisfies Record<PlacementIntent, (c: PlacementContext) => DecisionPlacement>;

/**
 * Cost now (router GPUs at the default price, each running GPU at its node's price) and of the
 * desired GPUs (the i-th at the price of the node assigned to it, else the default, else the
 * marginal price).
 */
export function costOf(
  snapshot: PricedGpus,
  policy: DeploymentPolicy,
  desiredShards: number,
  assigned: readonly (string | undefined)[],
  marginalPrice: number | undefined,
): { usdPerHourNow: number; usdPerHourDesired: number } {
  const priceOf = (node: string | undefined) =>
    snapshot.nodes.find((n) => n.name === node)?.usdPerGpuHour ?? policy.defaultUsdPerGpuHour;
  const routerPrice = policy.defaultUsdPerGpuHour ?? 0;
  const routerCost = policy.routerGpus * routerPrice;
  const usdPerHourNow =
    routerCost + snapshot.shards.reduce((sum, s) => sum + (s.usdPerGpuHour ?? priceOf(s.nodeName) ?? 0), 0);
  let usdPerHourDesired = routerCost;
  // A GPU with no node yet (a shard or group the scheduler has not placed) at the marginal price:
  // the cheapest node with a free GPU, as the budget check prices a scale-up.
  for (let i = 0; i < desiredShards; i++) {
    const node = assigned[i];
    usdPerHourDesired += (node === undefined ? marginalPrice : priceOf(node)) ?? policy.defaultUsdPerGpuHour ?? 0;
  }
  return { usdPerHourNow, usdPerHourDesired };
}

export function decide(snapshot: DecisionSnapshot, policy: DeploymentPolicy, nowMs: number): Decision {
  const heat = assessHeat(snapshot.heat, policy);
  const currentMetrics =
    snapshot.currentPlacement && heat.heat ? computePlacementMetrics(snapshot.currentPlacement, heat.heat) : undefined;
  const marginalPrice = marginalPriceOf(snapshot, policy);
  const count = decideShardCount(
    shardCountInputOf(snapshot, policy, heat, currentMetrics, marginalPrice),
    {
      capacity: policy.capacity,
      minCount: policy.minShards,
      maxCount: policy.maxShards,
      manualCount: policy.manualShards,
      unit: SHARD_UNIT,
    },
    nowMs,
  );
  const assignment = assignShardNodes(snapshot.shards, count.desired, snapshot.nodes);
  const gpus = shardGpus(snapshot, policy, count.desired, assignment.nodes);
  const ctx = placementContext(snapshot, policy, nowMs, count.desired, gpus, heat, currentMetrics);
  const intent = intentOf(ctx);
  const placement = PLACEMENT_BY_INTENT[intent](ctx);
  return {
    desiredShards: count.desired,
    capacity: count.capacity,
    reason: count.reason,
    message: count.message,
    placement,
    shardNodes: assignment.nodes,
    unschedulableShards: assignment.unschedulable,
    loadTokensPerSecond: heat.load,
    heatUsable: heat.usable,
    heatProblem: heat.problem,
    ...costOf(snapshot, policy, count.desired, assignment.nodes, marginalPrice),
    nextCapacityState: count.nextState,
    nextBaselineBalancedness: nextBaseline(snapshot, heat, placement),
    heatShiftDetected: intent === "HeatRebalance" && ctx.heatShifted && snapshot.heatSinceShiftSeconds === undefined,
    ...(snapshot.nextLoadTier ? { nextLoadTier: snapshot.nextLoadTier } : {}),
    ...(snapshot.nextNodeType ? { nextNodeType: snapshot.nextNodeType } : {}),
  };
}
