// The fleet emulator process: watches the expert-shard pods that really exist
// in the cluster, replays a load scenario through the fleet model once per
// second, and serves Prometheus metrics for them (per (layer, expert) routed-token
// counters, per-pod token counters, an inter-token latency histogram). A real
// Prometheus scrapes it; the operator reads heat and latency only from Prometheus.
import { createServer, type Server } from "node:http";
import { CoreV1Api, type KubeConfig, type V1Node, type V1Pod } from "@kubernetes/client-node";
import { Counter, Gauge, Histogram, Registry } from "prom-client";
import type { Logger } from "pino";
import { Informer } from "../runtime/informer.ts";
import type { Clock } from "../runtime/clock.ts";
import { driftHeat, generateHeat } from "../domain/synthetic/heat.ts";
import { FleetEmulator, type EmulatedShard } from "./fleet.ts";
import { routeByMap, type RouterMap } from "./router-map.ts";
import { routedExperts, servesYet, ShardAgent } from "./agent.ts";
import type { MoveBandwidth } from "../domain/placement/move-cost.ts";
import type { LoadTierBandwidth } from "../domain/prewarm/tiers.ts";

export interface ScenarioPoint {
  /** Seconds since the scenario start. */
  readonly tS: number;
  readonly tokensPerSecond: number;
  /** A label for the live view ("steady", "ramp", ...). */
  readonly phase?: string;
}

export interface Scenario {
  readonly startMs: number;
  /** Load at the points, linearly interpolated between them; constant after the last. */
  readonly points: readonly ScenarioPoint[];
  /**
   * From tS on, routing heat follows another pattern: with `correlation`, the previous pattern
   * drifted to that Pearson correlation per layer (a workload change: real DeepSeek-V3 decode vs
   * prefill loads correlate at ~0.66, see bench/placement); without it, an unrelated synthetic
   * pattern (seed).
   */
  readonly heatShifts: readonly { readonly tS: number; readonly seed: number; readonly correlation?: number }[];
  readonly heatSeed: number;
}

export function loadAt(s: Scenario, nowMs: number): { tokensPerSecond: number; phase: string; tS: number } {
  const t = (nowMs - s.startMs) / 1000;
  const pts = s.points;
  if (pts.length === 0) return { tokensPerSecond: 0, phase: "idle", tS: t };
  if (t <= pts[0]!.tS) return { tokensPerSecond: pts[0]!.tokensPerSecond, phase: pts[0]!.phase ?? "", tS: t };
  for (let i = 1; i < pts.length; i++) {
    const a = pts[i - 1]!;
    const b = pts[i]!;
    if (t <= b.tS) {
      const f = b.tS === a.tS ? 1 : (t - a.tS) / (b.tS - a.tS);
      return {
        tokensPerSecond: a.tokensPerSecond + f * (b.tokensPerSecond - a.tokensPerSecond),
        phase: a.phase ?? "",
        tS: t,
      };
    }
  }
  const last = pts[pts.length - 1]!;
  return { tokensPerSecond: last.tokensPerSecond, phase: last.phase ?? "", tS: t };
}

/** The scenario's routing heat over time, each pattern computed once. */
export class HeatPatterns {
  readonly #cache = new Map<string, number[][]>();
  readonly #shape: { layerCount: number; expertCount: number; topK: number };

  constructor(shape: { layerCount: number; expertCount: number; topK: number }) {
    this.#shape = shape;
  }

  generated(seed: number): number[][] {
    const key = `g${seed}`;
    let h = this.#cache.get(key);
    if (!h) this.#cache.set(key, (h = generateHeat({ ...this.#shape, seed })));
    return h;
  }

  /** The base pattern, then each shift reached by tS, in order. */
  at(s: Pick<Scenario, "heatSeed" | "heatShifts">, tS: number): number[][] {
    let h = this.generated(s.heatSeed);
    let key = `g${s.heatSeed}`;
    for (const shift of [...s.heatShifts].sort((a, b) => a.tS - b.tS)) {
      if (tS < shift.tS) break;
      if (shift.correlation === undefined) {
        h = this.generated(shift.seed);
        key = `g${shift.seed}`;
        continue;
      }
      key = `${key}>d${shift.seed}@${shift.correlation}`;
      const prev = h;
      h = this.#cache.get(key) ?? driftHeat(prev, { correlation: shift.correlation, seed: shift.seed });
      this.#cache.set(key, h);
    }
    return h;
  }
}

export interface FleetEmulatorServerOptions {
  kubeConfig: KubeConfig;
  namespace: string;
  deployment: string;
  /** Model shape: MoE layers follow denseLayers dense ones (labels use absolute layer numbers). */
  model: { layers: number; denseLayers: number; routedExperts: number; topK: number };
  scenario: Scenario;
  seed: number;
  host?: string;
  port?: number;
  clock: Clock;
  logger: Logger;
  /**
   * The shard side of in-place moves (ADR 0018), for pods that carry moe.dev/target-generation:
   * bytes of one expert replica of one layer, and the shares of moves refused or never acknowledged.
   */
  shardAgent?: {
    expertWeightBytes: number;
    bandwidth?: MoveBandwidth;
    maxStallSeconds?: number;
    refuseRate?: number;
    timeoutRate?: number;
    /**
     * Cold-start tiers of a new shard's first load (ADR 0019): the bytes per second of each tier and
     * whether the engine loads from peers. The emulator then watches the nodes for the staged mark.
     */
    firstLoad?: { bandwidth: LoadTierBandwidth; peerLoading?: boolean };
  };
}

export interface EmulatorSnapshot {
  tS: number;
  phase: string;
  tokensPerSecond: number;
  servingShards: number;
  latencyMs: number;
  balancedness: number;
  unservedExperts: number;
  /** Stalls (ms) of in-place move chunks applied in this second. */
  moveStallsMs: number[];
}

export interface FleetEmulatorServer {
  readonly url: string;
  /** Manual control (tests): a fixed load and/or heat pattern instead of the scenario's. */
  override(o: { tokensPerSecond?: number; heatSeed?: number; phase?: string }): void;
  /** The next n in-place moves are refused by their shard (tests). */
  refuseNextMoves(n: number): void;
  readonly port: number;
  readonly registry: Registry;
  last(): EmulatorSnapshot | undefined;
  stop(): Promise<void>;
}

export const LATENCY_BUCKETS_S = [
  0.005, 0.01, 0.015, 0.02, 0.025, 0.03, 0.035, 0.04, 0.045, 0.05, 0.06, 0.07, 0.08, 0.1, 0.125, 0.15, 0.2, 0.3, 0.5, 1,
  2, 5, 10,
];

type EmulatorMetrics = ReturnType<typeof createEmulatorMetrics>;

/** The emulator's Prometheus metrics, registered in registry. */
function createEmulatorMetrics(registry: Registry) {
  const expertTokens = new Counter({
    name: "moe_expert_routed_tokens_total",
    help: "Tokens the gate routed to each (layer, expert).",
    labelNames: ["namespace", "moe_dev_deployment", "layer", "expert"],
    registers: [registry],
  });
  const shardTokens = new Counter({
    name: "moe_shard_tokens_total",
    help: "Tokens processed by each expert-shard pod.",
    labelNames: ["namespace", "moe_dev_deployment", "pod"],
    registers: [registry],
  });
  const requests = new Counter({
    name: "moe_generated_tokens_total",
    help: "Output tokens generated by the deployment.",
    labelNames: ["namespace", "moe_dev_deployment"],
    registers: [registry],
  });
  const itl = new Histogram({
    name: "moe_inter_token_latency_seconds",
    help: "Inter-token latency.",
    labelNames: ["namespace", "moe_dev_deployment"],
    buckets: LATENCY_BUCKETS_S,
    registers: [registry],
  });
  const offered = new Gauge({
    name: "moe_emulator_offered_tokens_per_second",
    help: "Offered load of the scenario.",
    labelNames: ["namespace", "moe_dev_deployment"],
    registers: [registry],
  });
  const servingG = new Gauge({
    name: "moe_emulator_serving_shards",
    help: "Ready, not draining shard pods.",
    labelNames: ["namespace", "moe_dev_deployment"],
    registers: [registry],
  });
  const balanceG = new Gauge({
    name: "moe_emulator_balancedness",
    help: "Measured balancedness of shard load.",
    labelNames: ["namespace", "moe_dev_deployment"],
    registers: [registry],
  });
  return { expertTokens, shardTokens, requests, itl, offered, servingG, balanceG };
}

/** Watches the deployment's expert-shard pods. */
async function startShardInformer(o: FleetEmulatorServerOptions): Promise<Informer<V1Pod>> {
  const core = o.kubeConfig.makeApiClient(CoreV1Api);
  const selector = `moe.dev/deployment=${o.deployment},moe.dev/component=expert-shard`;
  const pods = new Informer<V1Pod>({
    kubeConfig: o.kubeConfig,
    path: `/api/v1/namespaces/${o.namespace}/pods`,
    list: () => core.listNamespacedPod({ namespace: o.namespace, labelSelector: selector }),
    labelSelector: selector,
    clock: o.clock,
    logger: o.logger.child({ component: "emulator-informer" }),
  });
  await pods.start();
  return pods;
}

/** Watches the nodes (their labels carry the staged marks). */
async function startNodeInformer(o: FleetEmulatorServerOptions): Promise<Informer<V1Node>> {
  const core = o.kubeConfig.makeApiClient(CoreV1Api);
  const nodes = new Informer<V1Node>({
    kubeConfig: o.kubeConfig,
    path: "/api/v1/nodes",
    list: () => core.listNode(),
    clock: o.clock,
    logger: o.logger.child({ component: "emulator-node-informer" }),
  });
  await nodes.start();
  return nodes;
}

/**
 * The shard pods not being deleted, as the fleet model sees them: routed by what they serve (an
 * in-place pod's acknowledged set, not its target; experts it is releasing only as a fallback),
 * Ready once serving.
 */
function emulatedShards(pods: Informer<V1Pod>): EmulatedShard[] {
  return pods
    .list()
    .filter((p) => !p.metadata?.deletionTimestamp)
    .map((p) => ({
      name: p.metadata!.name!,
      nodeName: p.spec?.nodeName,
      ...routedExperts(p),
      ready:
        p.status?.phase === "Running" &&
        (p.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True") ?? false) &&
        servesYet(p),
      draining: p.metadata?.annotations?.["moe.dev/draining-since"] !== undefined,
    }));
}

/** Records one fleet step in the metrics; returns the latency it reported (ms). */
function recordStep(
  o: FleetEmulatorServerOptions,
  m: EmulatorMetrics,
  fleet: FleetEmulator,
  r: ReturnType<FleetEmulator["step"]>,
  tokensPerSecond: number,
  stallsMs: readonly number[] = [],
): number {
  const moeLayers = o.model.layers - o.model.denseLayers;
  const E = o.model.routedExperts;
  const base = { namespace: o.namespace, moe_dev_deployment: o.deployment };
  for (let l = 0; l < moeLayers; l++) {
    for (let e = 0; e < E; e++) {
      const t = r.expertTokens[l * E + e]!;
      if (t > 0) m.expertTokens.inc({ ...base, layer: String(o.model.denseLayers + l), expert: String(e) }, t);
      else m.expertTokens.inc({ ...base, layer: String(o.model.denseLayers + l), expert: String(e) }, 0);
    }
  }
  for (const [pod, t] of r.shardTokens) m.shardTokens.inc({ ...base, pod }, t);
  m.requests.inc(base, tokensPerSecond);
  const lat = Number.isFinite(r.latencyMs) ? r.latencyMs : 10_000;
  if (tokensPerSecond > 0)
    for (const v of withStalls(fleet.latencySamples(lat, 40), lat, stallsMs)) m.itl.observe(base, v / 1000);
  m.offered.set(base, tokensPerSecond);
  m.servingG.set(base, r.servingShards);
  m.balanceG.set(base, r.balancedness);
  return lat;
}

/**
 * A chunk of an in-place move stalls decode for its duration: one step of the requests in flight
 * waits that long. Over the second there are ~1000/latency steps, so each chunk adds its stall to
 * that share of the second's samples (at least one sample per chunk).
 */
export function withStalls(samples: number[], latencyMs: number, stallsMs: readonly number[]): number[] {
  if (stallsMs.length === 0 || samples.length === 0) return samples;
  const out = [...samples];
  const share = Math.min(1, Math.max(latencyMs, 1) / 1000);
  let i = 0;
  for (const s of stallsMs) {
    const n = Math.max(1, Math.round(share * out.length));
    for (let k = 0; k < n; k++) {
      out[i % out.length]! += s;
      i++;
    }
  }
  return out;
}

/** Serves the registry on /metrics (404 elsewhere); resolves once listening, with the port. */
async function serveMetrics(
  registry: Registry,
  o: FleetEmulatorServerOptions,
): Promise<{ server: Server; port: number }> {
  const server: Server = createServer((req, res) => {
    if ((req.url ?? "").startsWith("/metrics")) {
      registry.metrics().then(
        (text) => {
          res.writeHead(200, { "content-type": registry.contentType });
          res.end(text);
        },
        (err: unknown) => {
          res.writeHead(500);
          res.end(String(err));
        },
      );
      return;
    }
    res.writeHead(404);
    res.end();
  });
  await new Promise<void>((resolve) => server.listen(o.port ?? 0, o.host ?? "127.0.0.1", resolve));
  const addr = server.address();
  const port = typeof addr === "object" && addr ? addr.port : 0;
  return { server, port };
}

export async function startFleetEmulator(o: FleetEmulatorServerOptions): Promise<FleetEmulatorServer> {
  const moeLayers = o.model.layers - o.model.denseLayers;
  const E = o.model.routedExperts;
  const fleet = new FleetEmulator({ layerCount: moeLayers, expertCount: E, topK: o.model.topK, seed: o.seed });
  const heats = new HeatPatterns({ layerCount: moeLayers, expertCount: E, topK: o.model.topK });
  const registry = new Registry();
  const metrics = createEmulatorMetrics(registry);
  const pods = await startShardInformer(o);
  const firstLoad = o.shardAgent?.firstLoad;
  const nodes = firstLoad ? await startNodeInformer(o) : undefined;
  const nodeLabels = (name: string) => nodes?.get(name)?.metadata?.labels;
  const agent = new ShardAgent({
    kubeConfig: o.kubeConfig,
    namespace: o.namespace,
    logger: o.logger.child({ component: "shard-agent" }),
    seed: o.seed + 1,
    expertWeightBytes: o.shardAgent?.expertWeightBytes ?? 44_040_192,
    bandwidth: o.shardAgent?.bandwidth,
    maxStallSeconds: o.shardAgent?.maxStallSeconds,
    refuseRate: o.shardAgent?.refuseRate,
    timeoutRate: o.shardAgent?.timeoutRate,
    ...(firstLoad ? { firstLoad: { ...firstLoad, nodeLabels } } : {}),
  });
  const podByName = (name: string) => pods.list().find((p) => p.metadata?.name === name);

  let last: EmulatorSnapshot | undefined;
  let routerMap: RouterMap | undefined;
  let manual: { tokensPerSecond?: number; heatSeed?: number; phase?: string } = {};
  const tick = () => {
    const now = o.clock.nowMs();
    const planned = loadAt(o.scenario, now);
    const tS = planned.tS;
    const tokensPerSecond = manual.tokensPerSecond ?? planned.tokensPerSecond;
    const phase = manual.phase ?? planned.phase;
    const heat = manual.heatSeed !== undefined ? heats.generated(manual.heatSeed) : heats.at(o.scenario, tS);
    agent.sync(pods.list(), podByName);
    const routed = routeByMap(emulatedShards(pods), routerMap);
    routerMap = routed.map;
    const r = fleet.step(routed.shards, heat, tokensPerSecond);
    const stallsMs = agent.takeStalls().map((s) => s * 1000);
    const lat = recordStep(o, metrics, fleet, r, tokensPerSecond, stallsMs);
    last = {
      tS,
      phase,
      tokensPerSecond,
      servingShards: r.servingShards,
      latencyMs: lat,
      balancedness: r.balancedness,
      unservedExperts: r.unservedExperts,
      moveStallsMs: stallsMs,
    };
  };
  const interval = setInterval(() => {
    try {
      tick();
    } catch (err) {
      o.logger.error({ err: (err as Error).message }, "emulator tick failed");
    }
  }, 1_000);

  const { server, port } = await serveMetrics(registry, o);
  return {
    url: `http://${o.host ?? "127.0.0.1"}:${port}`,
    port,
    registry,
    last: () => last,
    override(m) {
      manual = { ...manual, ...m };
    },
    refuseNextMoves: (n) => agent.refuseNextMoves(n),
    async stop() {
      clearInterval(interval);
      agent.stop();
      await pods.stop();
      await nodes?.stop();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}
