// One decision per reconcile: how many expert shards (capacity policy: SLO,
// pre-warm, burst, bounds, budget), which expert replicas each shard holds
// (placement: heat-aware, churn-aware), on which nodes new shards should go,
// and what it costs. The operator calls this; the simulator's "ours" policy sizes
// capacity through the same shard-count step (decideShardCount, issue 16) but
// does not place experts.
//
// Pure: time comes in as nowMs; all memory is in the snapshot (capacity state,
// current placement) and comes back in the decision.
import { decideCapacity, createCapacityState, type CapacityDecision, type CapacityPolicy, type CapacityState } from "./capacity/index.ts";
import { applyOperatorGuards } from "./scaling/guards.ts";
import { isMetricsHold } from "./scaling/screen.ts";
import { bestRewrite, growShards, hottestShards } from "./rebalance/shards.ts";
import { planPlacement, placementHash, computePlacementMetrics, countMovedReplicas, countReplicas, extendPlacement, type GpuSlotInfo, type Placement, type PlacementMetrics, type PlacementOutcome, type TopologyPreference } from "./placement/index.ts";

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
    readonly topology: TopologyPreference;
    /**
     * Most running shards one heat rebalance may change (each change is a new pod and a weight
     * load), e.g. the rollout's surge. The free GPUs on matching nodes, less those new shards are
     * about to take, bound it further (at least 2): every replacement must be able to start at
     * once, or old pods wait on replacements that wait on GPUs the old pods hold.
     */
    readonly maxChangedShards?: number;
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
  /** A placement rollout is still in progress (pods being replaced). */
  readonly rolloutInProgress: boolean;
  readonly coldStartDurationsMs?: readonly number[];
  readonly capacityState?: CapacityState;
  /** When this operator process started tracking the deployment (restart safety). */
  readonly trackingSinceMs: number;
  readonly nodes: readonly NodeView[];
  /**
   * When the most recent of the Ready shards became Ready: observed latency covers a window, and
   * it says nothing about the current shards until one window has passed since.
   */
  readonly readySinceMs?: number;
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
  /** Why the shard count is what it is (CamelCase). */
  readonly reason: string;
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

/** Preferred nodes for shards: existing shards stay; new ones go to the cheapest nodes with free GPUs, packed by domain. */
export function assignShardNodes(shards: readonly ShardView[], desiredShards: number, nodes: readonly NodeView[]): { nodes: (string | undefined)[]; unschedulable: number } {
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
  for (const s of shards) if (s.shardIndex >= desiredShards && s.nodeName) free.set(s.nodeName, (free.get(s.nodeName) ?? 0) + 1);
  let unschedulable = 0;
  const existing = new Set(shards.filter((s) => s.shardIndex < desiredShards).map((s) => s.shardIndex));
  for (let i = 0; i < desiredShards; i++) {
    if (existing.has(i)) continue;
    const candidates = nodes
      .filter((n) => (free.get(n.name) ?? 0) > 0)
      .sort((a, b) =>
        (a.usdPerGpuHour ?? Infinity) - (b.usdPerGpuHour ?? Infinity) ||
        (usedDomains.get(b.domain) ?? 0) - (usedDomains.get(a.domain) ?? 0) ||
        (free.get(a.name) ?? 0) - (free.get(b.name) ?? 0) ||
        a.name.localeCompare(b.name));
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
  if (p.gpus.every((g, i) => g.nodeName === gpus[i]!.nodeName && g.domain === (gpus[i]!.domain ?? gpus[i]!.nodeName))) return p;
  return { ...p, gpus: p.gpus.map((g, i) => ({ ...g, nodeName: gpus[i]!.nodeName, domain: gpus[i]!.domain ?? gpus[i]!.nodeName })) };
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
export function limitChangedShards(current: Placement, planned: Placement, heat: ReadonlyArray<ReadonlyArray<number>>, gpus: readonly GpuSlotInfo[], maxChanged: number): Placement {
  const shared = Math.min(current.gpus.length, planned.gpus.length);
  const changes: { g: number; n: number }[] = [];
  for (let g = 0; g < shared; g++) {
    let n = 0;
    for (let l = 0; l < planned.layerCount; l++) if (!sameSet(current.layers[l]![g]!, planned.layers[l]![g]!)) n++;
    if (n > 0) changes.push({ g, n });
  }
  if (changes.length <= maxChanged) return planned;
  const keep = new Set(changes.sort((a, b) => b.n - a.n || a.g - b.g).slice(0, Math.max(0, maxChanged)).map((c) => c.g));
  const hybrid: Placement = {
    ...planned,
    layers: planned.layers.map((layer, l) => layer.map((slots, g) => (g < shared && !keep.has(g) ? [...current.layers[l]![g]!] : [...slots]))),
  };
  const repaired = planPlacement({ heat, gpus, current: hybrid, policy: { maxMoveFraction: 0, minBalancednessGain: 0 } });
  return repaired.kind === "infeasible" ? current : repaired.placement;
}

export function decide(snapshot: DecisionSnapshot, policy: DeploymentPolicy, nowMs: number): Decision {
  const capState = snapshot.capacityState ?? createCapacityState(policy.capacity);
  const priceOf = (node: string | undefined) => snapshot.nodes.find((n) => n.name === node)?.usdPerGpuHour ?? policy.defaultUsdPerGpuHour;

  // Heat quality.
  let heatProblem: string | undefined;
  const h = snapshot.heat;
  if (!h) heatProblem = "no heat data";
  else if (h.heat.length !== policy.layerCount || h.heat.some((l) => l.length !== policy.expertCount)) heatProblem = `heat has shape ${h.heat.length}x${h.heat[0]?.length ?? 0}, expected ${policy.layerCount}x${policy.expertCount}`;
  else if (!(h.confidence >= MIN_HEAT_CONFIDENCE)) heatProblem = `heat confidence ${h.confidence.toFixed(2)} below ${MIN_HEAT_CONFIDENCE}`;
  const heatUsable = heatProblem === undefined;
  const load = heatUsable ? tokensPerSecondFromHeat(h!.heat, policy.topK) : undefined;

  // Capacity.
  const currentMetrics = snapshot.currentPlacement && heatUsable ? computePlacementMetrics(snapshot.currentPlacement, h!.heat) : undefined;
  const readyShards = snapshot.shards.filter((s) => s.ready).length;
  const marginalPrice = snapshot.nodes.filter((n) => n.freeGpus > 0 && n.usdPerGpuHour !== undefined).map((n) => n.usdPerGpuHour!).sort((a, b) => a - b)[0]
    ?? snapshot.shards.map((s) => s.usdPerGpuHour).find((p) => p !== undefined)
    ?? policy.defaultUsdPerGpuHour;
  let capacity: CapacityDecision | undefined;
  let desiredShards: number;
  let reason: string;
  let message: string;
  const capacityDecision = decideCapacity({
    tokensPerSecond: load,
    metricsAtMs: heatUsable ? h!.atMs : undefined,
    metricsConfidence: h?.confidence,
    observedP99Ms: snapshot.observedP99Ms,
    provisionedGpus: snapshot.provisionedShards,
    readyGpus: readyShards,
    balancedness: currentMetrics?.balancedness ?? 1,
    crossNodeShare: currentMetrics?.crossNodeShare ?? 0,
    coldStartDurationsMs: snapshot.coldStartDurationsMs,
    usdPerGpuHour: marginalPrice,
  }, capState, policy.capacity, nowMs);
  const nextCapacityState = capacityDecision.nextState;
  if (policy.manualShards !== undefined) {
    desiredShards = Math.min(policy.maxShards, Math.max(policy.minShards, policy.manualShards));
    reason = "ManualOverride";
    message = `holding ${desiredShards} shards set through spec.scaling.shards (autoscaling suspended)`;
    capacity = capacityDecision;
  } else {
    capacity = capacityDecision;
    const guarded = applyOperatorGuards({
      desired: capacityDecision.desiredGpus,
      reason: capacityDecision.reason,
      message: capacityDecision.message,
      provisioned: snapshot.provisionedShards,
      ready: readyShards,
      observedP99Ms: snapshot.observedP99Ms,
      metricsUsable: heatUsable && !isMetricsHold(capacityDecision.reason),
      ceilingCount: capacityDecision.signals.feedbackCeilingGpus,
      trackingSinceMs: snapshot.trackingSinceMs,
      lastScaleUpMs: snapshot.lastScaleUpMs,
      readySinceMs: snapshot.readySinceMs,
      minCount: policy.minShards,
      maxCount: policy.maxShards,
      budgetCap: capacityDecision.signals.budgetGpus ?? Number.POSITIVE_INFINITY,
      unit: { one: "shard", many: "shards" },
    }, policy.capacity, nowMs);
    desiredShards = guarded.desired;
    reason = guarded.reason;
    message = guarded.message;
  }
  desiredShards = Math.max(policy.minShards, Math.min(policy.maxShards, desiredShards));
  if (snapshot.provisionedShards === 0 && desiredShards < policy.minShards) desiredShards = policy.minShards;

  // Nodes for shards.
  const assignment = assignShardNodes(snapshot.shards, desiredShards, snapshot.nodes);
  const gpus: GpuSlotInfo[] = [];
  const scheduled = new Set(snapshot.shards.filter((s) => s.nodeName).map((s) => s.shardIndex));
  for (let i = 0; i < desiredShards; i++) {
    // A shard whose pod is not scheduled yet keeps the node the published placement recorded, so
    // the placement (and its version) does not change while the scheduler works.
    const recorded = snapshot.currentPlacement?.gpus[i]?.gpuId === shardGpuId(i) && !scheduled.has(i) ? snapshot.currentPlacement.gpus[i]!.nodeName : undefined;
    const nodeName = recorded ?? assignment.nodes[i] ?? `unscheduled-${i}`;
    const domain = snapshot.nodes.find((n) => n.name === nodeName)?.domain ?? nodeName;
    gpus.push({ gpuId: shardGpuId(i), nodeName, domain, slotCount: policy.slotsPerGpu, memoryBytes: policy.gpuMemoryBytes });
  }

  // Placement. Every running shard a plan changes is a new pod, and its replacement must be able to
  // start at once (or old pods wait on replacements that wait on GPUs the old pods hold): at most
  // the surge, and the free GPUs less those new shards are about to take (at least 2).
  const freeGpus = snapshot.nodes.reduce((a, n) => a + n.freeGpus, 0);
  const newShards = Math.max(0, desiredShards - new Set(snapshot.shards.map((s) => s.shardIndex)).size);
  const changeLimit = Math.min(policy.placement.maxChangedShards ?? Number.POSITIVE_INFINITY, Math.max(2, freeGpus - newShards));
  const planHeat = heatUsable ? h!.heat : snapshot.lastGoodHeat ?? uniformHeat(policy.layerCount, policy.expertCount);
  const planHeatBasis: HeatBasis = heatUsable ? "observed" : snapshot.lastGoodHeat ? "remembered" : "none";
  const currentBasis: HeatBasis = snapshot.currentPlacementHeatBasis ?? "observed";
  const structural = !snapshot.currentPlacement || !sameGpus(snapshot.currentPlacement, gpus);
  const current = snapshot.currentPlacement && !structural ? relabel(snapshot.currentPlacement, gpus) : snapshot.currentPlacement;
  // The current placement was made before any heat existed (uniform): the first usable heat gets a
  // full plan at once (no interval, no move budget, even while pods are still starting), since
  // any expert layout is as good as another to keep and the skew of real heat is 5-8x.
  const firstHeatPlan = heatUsable && current !== undefined && currentBasis === "none";
  const due = firstHeatPlan || snapshot.lastRebalanceMs === undefined || nowMs - snapshot.lastRebalanceMs >= policy.placement.rebalanceIntervalMs;
  let placement: DecisionPlacement;
  if (!structural && !(heatUsable && due && (!snapshot.rolloutInProgress || firstHeatPlan))) {
    placement = {
      action: "keep",
      reason: !heatUsable ? `keeping the placement: ${heatProblem}` : snapshot.rolloutInProgress ? "keeping the placement: a rollout is in progress" : "keeping the placement until the next rebalance interval",
      placement: current,
      hash: current ? placementHash(current) : undefined,
      metrics: currentMetrics,
      heatBasis: current ? currentBasis : undefined,
    };
  } else if (!firstHeatPlan && structural && current && gpus.length > current.gpus.length && extendPlacement(current, planHeat, gpus)) {
    // Scale-up. Either the new shards get redundant replicas of the hottest experts and running
    // shards keep theirs (no pod replacement), or the new shards and the hottest running ones
    // (as many as spare GPUs allow beyond the new shards) are written for the heat together;
    // whichever balances better. Heat rebalances refine later.
    const plain = extendPlacement(current, planHeat, gpus)!;
    const spare = Math.max(0, Math.min(policy.placement.maxChangedShards ?? Number.POSITIVE_INFINITY, freeGpus - newShards));
    // Running shards are only rewritten for heat observed now (not for remembered or no heat).
    const hot = spare > 0 && heatUsable ? hottestShards(current, planHeat).slice(0, spare) : [];
    const grown = growShards(current, planHeat, gpus, hot);
    const plainBal = computePlacementMetrics(plain, planHeat).balancedness;
    const grownBal = grown ? computePlacementMetrics(grown, planHeat).balancedness : -1;
    const extended = grown && grownBal > plainBal ? grown : plain;
    const moved = countMovedReplicas(current, extended);
    placement = {
      action: "replan",
      reason: extended === plain
        ? `scaled up to ${desiredShards} shards: new shards hold redundant replicas of the hottest experts; running shards unchanged`
        : `scaled up to ${desiredShards} shards: the new shards${hot.length > 0 ? ` and the ${hot.length} hottest running ones` : ""} written for the heat (balancedness ${grownBal.toFixed(3)} vs ${plainBal.toFixed(3)} with running shards unchanged)`,
      placement: extended,
      hash: placementHash(extended),
      metrics: computePlacementMetrics(extended, planHeat),
      movedFraction: moved / Math.max(1, countReplicas(extended)),
      movedReplicas: moved,
      heatBasis: currentBasis,
    };
  } else {
    const outcome: PlacementOutcome = planPlacement({
      heat: planHeat,
      gpus,
      current: current && current.layerCount === policy.layerCount && current.expertCount === policy.expertCount ? current : undefined,
      policy: {
        // Scale-down re-homes only the experts the removed shards held (repairs are never refused);
        // heat rebalances spend the move budget.
        maxMoveFraction: firstHeatPlan ? 1 : structural && current ? 0 : policy.placement.maxMoveFraction,
        minBalancednessGain: structural || firstHeatPlan ? 0 : policy.placement.minBalancednessGain,
        redundantSlots: policy.placement.redundantSlots === undefined
          ? undefined
          : Math.max(0, Math.min(policy.placement.redundantSlots, desiredShards * policy.slotsPerGpu - policy.expertCount)),
        bytesPerExpertReplica: policy.bytesPerExpertReplica,
        topology: policy.placement.topology,
      },
    });
    if (outcome.kind === "infeasible") {
      placement = { action: "infeasible", reason: outcome.reason, placement: current, hash: current ? placementHash(current) : undefined, metrics: currentMetrics, heatBasis: current ? currentBasis : undefined };
    } else if (outcome.kind === "unchanged") {
      // Nothing worth the threshold within the replica move budget (a near-optimal placement).
      placement = {
        action: "keep", reason: outcome.reason, placement: outcome.placement, hash: outcome.placementHash, metrics: outcome.metrics,
        heatBasis: firstHeatPlan ? "observed" : currentBasis, rebalanceEvaluated: current !== undefined && !structural,
      };
    } else {
      let planned = outcome.placement;
      let movedReplicas = outcome.movedReplicas;
      let movedFraction = outcome.movedFraction;
      if (current && !structural && !firstHeatPlan) {
        const limited = limitChangedShards(current, outcome.placement, planHeat, gpus, changeLimit);
        if (limited !== outcome.placement) {
          // The plan touches more shards than may change: take the better of its limited form and
          // a rewrite of the hottest shards (the whole set of a rewritten shard is free to choose),
          // as many as the surge, the free GPUs and the move budget (in shards) allow.
          const bal = (p: Placement) => computePlacementMetrics(p, planHeat).balancedness;
          const k = Math.min(changeLimit, Math.max(1, Math.floor(policy.placement.maxMoveFraction * desiredShards)));
          const rewritten = bestRewrite(current, planHeat, k, bal);
          planned = bal(rewritten) > bal(limited) ? rewritten : limited;
          movedReplicas = countMovedReplicas(current, planned);
          movedFraction = movedReplicas / Math.max(1, countReplicas(planned));
        }
      }
      const plannedMetrics = planned === outcome.placement ? outcome.metrics : computePlacementMetrics(planned, planHeat);
      const worthIt = !current || structural || firstHeatPlan || currentMetrics === undefined
        || plannedMetrics.balancedness - currentMetrics.balancedness >= policy.placement.minBalancednessGain;
      if (!worthIt) {
        placement = {
          action: "keep",
          reason: `keeping the placement: the rebalance that fits the free GPUs would change balancedness ${currentMetrics!.balancedness.toFixed(3)} -> ${plannedMetrics.balancedness.toFixed(3)}, below the ${policy.placement.minBalancednessGain} gain threshold`,
          placement: current,
          hash: placementHash(current!),
          metrics: currentMetrics,
          heatBasis: currentBasis,
          rebalanceEvaluated: true,
        };
      } else placement = {
        action: current ? "replan" : "initial",
        reason: !current
          ? `initial placement on ${desiredShards} shards${planHeatBasis === "none" ? " (no heat seen yet: experts spread evenly; the first usable heat re-plans)" : ""}`
          : firstHeatPlan
            ? `first heat-based placement: balancedness ${(outcome.previousMetrics?.balancedness ?? 0).toFixed(3)} -> ${plannedMetrics.balancedness.toFixed(3)} (the previous one was made before any heat was seen)`
            : structural ? `shards changed to ${desiredShards}: re-homed experts (${outcome.mode})` : `rebalanced by heat: balancedness ${(currentMetrics?.balancedness ?? 0).toFixed(3)} -> ${plannedMetrics.balancedness.toFixed(3)}`,
        placement: planned,
        hash: placementHash(planned),
        metrics: plannedMetrics,
        movedFraction,
        movedReplicas,
        heatBasis: !current ? planHeatBasis : firstHeatPlan || !structural ? "observed" : currentBasis,
        heatRebalance: current !== undefined && (!structural || firstHeatPlan),
      };
    }
  }

  // Cost.
  const routerPrice = policy.defaultUsdPerGpuHour ?? 0;
  const routerCost = policy.routerGpus * routerPrice;
  const usdPerHourNow = routerCost + snapshot.shards.reduce((sum, s) => sum + (s.usdPerGpuHour ?? priceOf(s.nodeName) ?? 0), 0);
  let usdPerHourDesired = routerCost;
  for (let i = 0; i < desiredShards; i++) usdPerHourDesired += priceOf(assignment.nodes[i]) ?? marginalPrice ?? 0;

  return {
    desiredShards,
    capacity,
    reason,
    message,
    placement,
    shardNodes: assignment.nodes,
    unschedulableShards: assignment.unschedulable,
    loadTokensPerSecond: load,
    heatUsable,
    heatProblem,
    usdPerHourNow,
    usdPerHourDesired,
    nextCapacityState,
  };
}
