// One policy path (issue 16): the simulator's "ours" and the operator's decide() take the same
// capacity path: the same decideShardCount, fed the same facts, give the same count, reason and
// capacity decision (state included) on random histories.
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { decide, type DecisionSnapshot, type DeploymentPolicy } from "../../src/domain/decide.ts";
import { createCapacityState, decideShardCount, makeCapacityPolicy } from "../../src/domain/capacity/index.ts";
import type { CapacityDecision, CapacityPolicyInput, CapacityState } from "../../src/domain/capacity/index.ts";
import { createRng } from "../../src/domain/rng.ts";
import { createOursPolicy, oursShardCountInput, type PolicyContext } from "../../src/sim/policies.ts";
import type { Observation } from "../../src/sim/types.ts";

const T0 = Date.UTC(2026, 2, 2, 6, 0, 0);
const TICK_MS = 30_000;
const PRICE = 2;

function context(minGpus: number, maxGpus: number): PolicyContext {
  return {
    metric: "perTokenLatency",
    sloMs: 60,
    minGpus,
    maxGpus,
    usdPerGpuHour: PRICE,
    nominalTokensPerSecondPerGpu: 2_300,
    requirementPerMinute: new Int32Array(0),
    startEpochMs: T0,
    scheduleLeadS: 300,
  };
}

/** A random history of observations of a cluster that realises each decision (ready lags, cold starts). */
function* history(seed: number, ticks: number, decided: () => number): Generator<Observation> {
  const rng = createRng(seed);
  let load = 2_000 + 30_000 * rng.next();
  let ready = decided();
  for (let i = 0; i < ticks; i++) {
    const nowMs = T0 + i * TICK_MS;
    const provisioned = decided();
    const before = ready;
    ready = Math.min(provisioned, ready + (rng.next() < 0.5 ? 1 + rng.int(8) : 0));
    load = Math.max(0, load * Math.exp(0.08 * rng.normal()));
    const r = rng.next();
    const tokensPerSecond = r < 0.03 ? 0 : r < 0.06 ? load * 6 : load;
    const q = rng.next();
    const p99 =
      q < 0.1
        ? undefined
        : q < 0.35
          ? 65 + 60 * rng.next()
          : 25 + 60 * rng.next() * Math.min(2, tokensPerSecond / Math.max(1, ready * 2_300));
    yield {
      nowMs,
      metricsAtMs: nowMs - (rng.next() < 0.03 ? 900_000 : 30_000),
      windowMs: TICK_MS,
      tokensPerSecond,
      requestsPerSecond: tokensPerSecond / 200,
      observedP99Ms: p99,
      observedP90Ms: p99,
      provisionedGpus: provisioned,
      readyGpus: ready,
      warmingGpus: provisioned - ready,
      balancedness: 1,
      crossNodeShare: 0,
      redundantExpertsPerGpu: 0,
      coldStartDurationsMs:
        ready > before ? Array.from({ length: ready - before }, () => 120_000 + 200_000 * rng.next()) : [],
      usdPerGpuHour: PRICE,
    };
  }
}

/** What the reconciler keeps about the deployment between decisions (status and its own memory). */
class OperatorFacts {
  trackingSinceMs: number | undefined;
  lastScaleUpMs: number | undefined;
  readySinceMs: number | undefined;
  #lastReady: number | undefined;
  observe(o: Observation): void {
    this.trackingSinceMs ??= o.nowMs;
    if (this.#lastReady !== undefined && o.readyGpus > this.#lastReady) this.readySinceMs = o.nowMs;
    this.#lastReady = o.readyGpus;
  }
  decided(o: Observation, desired: number): void {
    if (desired > o.provisionedGpus) this.lastScaleUpMs = o.nowMs;
  }
}

/** The operator's snapshot of the same cluster: heat whose load is the observed tokens/s, one node priced as the simulator's GPUs. */
function snapshotOf(o: Observation, facts: OperatorFacts, capacityState: CapacityState | undefined): DecisionSnapshot {
  return {
    heat: { heat: [[o.tokensPerSecond / 2, o.tokensPerSecond / 2]], atMs: o.metricsAtMs, confidence: 1 },
    observedP99Ms: o.observedP99Ms,
    shards: Array.from({ length: o.provisionedGpus }, (_, i) => ({
      shardIndex: i,
      nodeName: "node-0",
      ready: i < o.readyGpus,
      usdPerGpuHour: PRICE,
    })),
    provisionedShards: o.provisionedGpus,
    rolloutInProgress: false,
    coldStartDurationsMs: o.coldStartDurationsMs,
    capacityState,
    trackingSinceMs: facts.trackingSinceMs!,
    nodes: [{ name: "node-0", domain: "node-0", freeGpus: 1_000, usdPerGpuHour: PRICE }],
    readySinceMs: facts.readySinceMs,
    lastScaleUpMs: facts.lastScaleUpMs,
  };
}

function deployment(ctx: PolicyContext, overrides: Partial<CapacityPolicyInput>): DeploymentPolicy {
  return {
    layerCount: 1,
    expertCount: 2,
    topK: 1,
    slotsPerGpu: 2,
    minShards: ctx.minGpus,
    maxShards: ctx.maxGpus,
    routerGpus: 0,
    capacity: makeCapacityPolicy({
      slo: { metric: ctx.metric, targetP99Ms: ctx.sloMs },
      minGpus: ctx.minGpus,
      maxGpus: ctx.maxGpus,
      ...overrides,
    }),
    placement: { maxMoveFraction: 0.1, minBalancednessGain: 0.01, rebalanceIntervalMs: 300_000, topology: "spread" },
    defaultUsdPerGpuHour: PRICE,
  };
}

const overridesArb = fc.oneof(
  fc.constant<Partial<CapacityPolicyInput>>({}),
  fc.constant<Partial<CapacityPolicyInput>>({ budgetUsdPerHour: 40 }),
  fc.constant<Partial<CapacityPolicyInput>>({ stableQuantile: 0.9, hysteresis: 0.05 }),
  fc.constant<Partial<CapacityPolicyInput>>({
    schedules: [{ name: "morning", start: "10 6 * * *", durationMs: 1_800_000, minGpus: 12 }],
  }),
);

describe("one policy path: the simulator's ours and the operator's decide()", () => {
  it("give the same count, reason and capacity decision on random histories (property)", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 2 ** 31 - 1 }),
        fc.integer({ min: 1, max: 4 }),
        overridesArb,
        (seed, minGpus, overrides) => {
          const ctx = context(minGpus, 48);
          const policy = deployment(ctx, overrides);
          let simCapacity: CapacityDecision | undefined;
          const ours = createOursPolicy(ctx, overrides, TICK_MS / 1000, (_o, d) => {
            simCapacity = d;
          });
          const facts = new OperatorFacts();
          let capacityState: CapacityState | undefined;
          let desired = minGpus;
          for (const o of history(seed, 80, () => desired)) {
            const sim = ours.step(o, o.nowMs);
            facts.observe(o);
            const op = decide(snapshotOf(o, facts, capacityState), policy, o.nowMs);
            expect(op.desiredShards).toBe(sim.desiredGpus);
            expect(op.reason).toBe(sim.reason);
            expect(op.capacity).toEqual(simCapacity);
            facts.decided(o, op.desiredShards);
            capacityState = op.nextCapacityState;
            desired = op.desiredShards;
          }
        },
      ),
      { numRuns: 15 },
    );
  });

  it("the simulator's ours is decideShardCount on the observation (the same function, the same facts)", () => {
    const ctx = context(2, 48);
    const policy = makeCapacityPolicy({ slo: { metric: ctx.metric, targetP99Ms: ctx.sloMs }, minGpus: 2, maxGpus: 48 });
    let simCapacity: CapacityDecision | undefined;
    const ours = createOursPolicy(ctx, {}, TICK_MS / 1000, (_o, d) => {
      simCapacity = d;
    });
    const facts = new OperatorFacts();
    let state = createCapacityState(policy);
    let desired = 2;
    for (const o of history(7, 200, () => desired)) {
      const sim = ours.step(o, o.nowMs);
      facts.observe(o);
      const count = decideShardCount(
        oursShardCountInput(o, state, {
          trackingSinceMs: facts.trackingSinceMs!,
          lastScaleUpMs: facts.lastScaleUpMs,
          readySinceMs: facts.readySinceMs,
        }),
        { capacity: policy, minCount: 2, maxCount: 48, unit: { one: "GPU", many: "GPUs" } },
        o.nowMs,
      );
      expect({ desired: sim.desiredGpus, reason: sim.reason }).toEqual({
        desired: count.desired,
        reason: count.reason,
      });
      expect(simCapacity).toEqual(count.capacity);
      facts.decided(o, count.desired);
      state = count.nextState;
      desired = count.desired;
    }
  });
});
