// The fleet emulator for WideEP groups (docs/adr/0021-wide-ep-groups.md): watches the pods of the
// deployment's LeaderWorkerSet that really exist in the cluster, reads the shared placement the
// operator publishes (<name>-placement), replays a load scenario through the group model
// (src/emulator/groups.ts: a group serves only when all its pods are Ready, its slowest GPU sets
// its pace) once per second, and serves the metrics a real Prometheus scrapes: per (layer, expert)
// routed-token counters (the operator's heat and load) and an inter-token latency histogram (its
// latency source). The front in front of the groups stops sending to a group whose leader carries
// moe.dev/draining-since, as the drain annotation asks. Each group serves its own placement: the one
// published when it started, then the versions it moves to in place when the operator targets its
// leader (group-agent.ts, spec.placement.moves.mode InPlace); a move's chunks stall its decode.
import { createServer, type Server } from "node:http";
import {
  CoreV1Api,
  PatchStrategy,
  setHeaderOptions,
  type KubeConfig,
  type V1ConfigMap,
  type V1Pod,
} from "@kubernetes/client-node";
import { Counter, Gauge, Histogram, Registry } from "prom-client";
import type { Logger } from "pino";
import { Informer } from "../runtime/informer.ts";
import type { Clock } from "../runtime/clock.ts";
import { createRng, type Rng } from "../domain/rng.ts";
import { EMPTY_SLOT, type Placement } from "../domain/placement/types.ts";
import { gpusPerGroup, type GroupShape } from "../domain/wideep/groups.ts";
import { defaultGroundTruthParams, latencyMultiplier } from "../sim/truth.ts";
import { readPlacementConfigMap } from "../controllers/moedeployment/codecs/placement-configmap.ts";
import { GroupFleetEmulator, type EmulatedGroupPod, type GroupPlacement } from "./groups.ts";
import { HeatPatterns, LATENCY_BUCKETS_S, loadAt, withStalls, type Scenario } from "./server.ts";
import { GroupPlacementAgent, type GroupAck, type GroupLeaderView, type PublishedPlacement } from "./group-agent.ts";
import {
  DEFAULT_MAX_STALL_SECONDS,
  DEFAULT_MOVE_BANDWIDTH,
  type MoveCostPolicy,
} from "../domain/placement/move-cost.ts";
import { GROUP_SERVING_RE } from "../controllers/moedeployment/codecs/leaderworkerset.ts";
import { Annotation } from "../api/constants.ts";
import { PLACEMENT_APPLIED_CONDITION } from "../controllers/moedeployment/codecs/shard-pod.ts";

export const LWS_NAME_LABEL = "leaderworkerset.sigs.k8s.io/name";
export const LWS_GROUP_LABEL = "leaderworkerset.sigs.k8s.io/group-index";
export const LWS_WORKER_LABEL = "leaderworkerset.sigs.k8s.io/worker-index";
export const DRAINING_SINCE = "moe.dev/draining-since";
/** Latency reported for a second with load and no serving group (ms). */
export const NO_SERVICE_LATENCY_MS = 10_000;

/** A group pod as the group model reads it; undefined for a pod without a group index. */
export function emulatedGroupPod(p: V1Pod): EmulatedGroupPod | undefined {
  const group = Number(p.metadata?.labels?.[LWS_GROUP_LABEL]);
  if (!Number.isInteger(group) || group < 0) return undefined;
  const ready =
    p.status?.phase === "Running" &&
    (p.status.conditions?.some((c) => c.type === "Ready" && c.status === "True") ?? false);
  return {
    name: p.metadata?.name ?? "",
    group,
    ready,
    terminating: Boolean(p.metadata?.deletionTimestamp),
    ...(p.spec?.nodeName ? { nodeName: p.spec.nodeName } : {}),
  };
}

/** Groups whose leader pod (worker index 0) carries the drain annotation. */
export function drainingGroups(pods: readonly V1Pod[]): Set<number> {
  const out = new Set<number>();
  for (const p of pods) {
    const labels = p.metadata?.labels ?? {};
    if (labels[LWS_WORKER_LABEL] !== "0" || p.metadata?.deletionTimestamp) continue;
    if (p.metadata?.annotations?.[DRAINING_SINCE] === undefined) continue;
    const g = Number(labels[LWS_GROUP_LABEL]);
    if (Number.isInteger(g) && g >= 0) out.add(g);
  }
  return out;
}

/** The groups the model steps over: every index a pod not being deleted has. */
export function groupCount(pods: readonly EmulatedGroupPod[]): number {
  const live = pods.filter((p) => !p.terminating);
  return live.length === 0 ? 0 : Math.max(...live.map((p) => p.group)) + 1;
}

/** The published placement as the group model reads it: experts[gpu][layer], empty slots dropped. */
export function groupPlacementOf(p: Placement): GroupPlacement {
  return p.gpus.map((_, gpu) => p.layers.map((layer) => (layer[gpu] ?? []).filter((e) => e !== EMPTY_SLOT)));
}

/** Until the operator publishes one: expert e of every layer on GPU e mod G. */
export function spreadPlacement(gpus: number, layers: number, experts: number): GroupPlacement {
  return Array.from({ length: gpus }, (_, gpu) =>
    Array.from({ length: layers }, () =>
      Array.from({ length: Math.ceil(experts / gpus) }, (_, k) => gpu + k * gpus).filter((e) => e < experts),
    ),
  );
}

/** Tokens routed to each (layer, expert) in a second: tokensPerSecond x topK split by the layer's weights. */
export function routedTokens(
  weights: ReadonlyArray<ReadonlyArray<number>>,
  tokensPerSecond: number,
  topK: number,
): Float64Array[] {
  return weights.map((row) => {
    const out = new Float64Array(row.length);
    let sum = 0;
    for (const w of row) sum += Math.max(0, w);
    if (!(sum > 0)) return out;
    row.forEach((w, e) => (out[e] = (tokensPerSecond * topK * Math.max(0, w)) / sum));
    return out;
  });
}

export interface GroupEmulatorOptions {
  kubeConfig: KubeConfig;
  namespace: string;
  /** The MoEDeployment: its LeaderWorkerSet is `<name>-ep`, its placement ConfigMap `<name>-placement`. */
  deployment: string;
  model: { layers: number; denseLayers: number; routedExperts: number; topK: number };
  shape: GroupShape;
  scenario: Scenario;
  seed: number;
  /**
   * In-place moves (group-agent.ts): bytes of one expert replica, bandwidths and the stall bound
   * (default: DeepSeek-V3's 44,040,192 bytes at the H800 defaults). Set bytes 0 for instant moves.
   */
  moveCost?: MoveCostPolicy;
  /** Share of in-place targets the emulated groups refuse, 0..1 (default 0). */
  refuseRate?: number;
  host?: string;
  port?: number;
  clock: Clock;
  logger: Logger;
}

export interface GroupView {
  readonly index: number;
  readonly pods: number;
  readonly readyPods: number;
  readonly boundPods: number;
  readonly serving: boolean;
  readonly draining: boolean;
  readonly pace: number;
  readonly latencyMs: number;
  /** The placement version the group serves, and the one it is moving to in place. */
  readonly placementVersion?: number;
  readonly movingTo?: number;
}

export interface GroupEmulatorSnapshot {
  readonly tS: number;
  readonly phase: string;
  readonly tokensPerSecond: number;
  readonly groups: readonly GroupView[];
  readonly servingGroups: number;
  /** The slowest serving group's latency (ms); NO_SERVICE_LATENCY_MS when none serves under load. */
  readonly latencyMs: number;
  readonly placementVersion?: number;
}

export interface GroupEmulatorServer {
  readonly url: string;
  last(): GroupEmulatorSnapshot | undefined;
  stop(): Promise<void>;
}

function metrics(registry: Registry) {
  const labelNames = ["namespace", "moe_dev_deployment"];
  return {
    expertTokens: new Counter({
      name: "moe_expert_routed_tokens_total",
      help: "Tokens the gate routed to each (layer, expert).",
      labelNames: [...labelNames, "layer", "expert"],
      registers: [registry],
    }),
    generated: new Counter({
      name: "moe_generated_tokens_total",
      help: "Output tokens generated by the deployment.",
      labelNames,
      registers: [registry],
    }),
    itl: new Histogram({
      name: "moe_inter_token_latency_seconds",
      help: "Inter-token latency.",
      labelNames,
      buckets: LATENCY_BUCKETS_S,
      registers: [registry],
    }),
    offered: new Gauge({
      name: "moe_emulator_offered_tokens_per_second",
      help: "Offered load of the scenario.",
      labelNames,
      registers: [registry],
    }),
    serving: new Gauge({
      name: "moe_emulator_serving_groups",
      help: "EP groups with every pod Ready and not draining.",
      labelNames,
      registers: [registry],
    }),
    groupLatency: new Gauge({
      name: "moe_emulator_group_latency_seconds",
      help: "Inter-token latency of each serving EP group (before the request-mix tail).",
      labelNames: [...labelNames, "group"],
      registers: [registry],
    }),
  };
}

/**
 * Token-weighted latency samples of one second: each serving group's latency with the request-mix
 * tail and jitter, as many samples per group as its share of the tokens.
 */
export function latencySamples(
  groups: readonly { index?: number; serving: boolean; tokensPerSecond: number; latencyMs: number }[],
  tokensPerSecond: number,
  rng: Rng,
  n = 40,
  stallsMs: ReadonlyMap<number, readonly number[]> = new Map(),
): number[] {
  const params = defaultGroundTruthParams("itl");
  const serving = groups.filter((g) => g.serving && g.tokensPerSecond > 0);
  if (tokensPerSecond <= 0) return [];
  const sample = (base: number) => base * latencyMultiplier(params, rng.normal()) * (0.6 + 0.4 * rng.next());
  if (serving.length === 0) return Array.from({ length: n }, () => NO_SERVICE_LATENCY_MS);
  const out: number[] = [];
  for (const g of serving) {
    const base = Number.isFinite(g.latencyMs) ? g.latencyMs : NO_SERVICE_LATENCY_MS;
    const k = Math.max(1, Math.round((n * g.tokensPerSecond) / tokensPerSecond));
    const mine = Array.from({ length: k }, () => sample(base));
    out.push(...withStalls(mine, base, stallsMs.get(g.index ?? -1) ?? []));
  }
  return out;
}

function groupViews(
  pods: readonly EmulatedGroupPod[],
  count: number,
  draining: ReadonlySet<number>,
  step: ReturnType<GroupFleetEmulator["step"]>,
  agent: GroupPlacementAgent,
): GroupView[] {
  return Array.from({ length: count }, (_, index) => {
    const mine = pods.filter((p) => p.group === index && !p.terminating);
    const s = step.groups[index];
    return {
      index,
      pods: mine.length,
      readyPods: mine.filter((p) => p.ready).length,
      boundPods: mine.filter((p) => p.nodeName !== undefined).length,
      serving: s?.serving ?? false,
      draining: draining.has(index),
      pace: s?.pace ?? 1,
      latencyMs: s?.latencyMs ?? NaN,
      ...(agent.versionOf(index) !== undefined ? { placementVersion: agent.versionOf(index) } : {}),
      ...(agent.movingTo(index) !== undefined ? { movingTo: agent.movingTo(index) } : {}),
    };
  });
}

async function serve(registry: Registry, host: string, port: number): Promise<{ server: Server; port: number }> {
  const server = createServer((req, res) => {
    if (!(req.url ?? "").startsWith("/metrics")) {
      res.writeHead(404);
      res.end();
      return;
    }
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
  });
  await new Promise<void>((resolve) => server.listen(port, host, resolve));
  const addr = server.address();
  return { server, port: typeof addr === "object" && addr ? addr.port : 0 };
}

/** Reads the published placement every few seconds (undefined until there is one). */
function placementReader(o: GroupEmulatorOptions, core: CoreV1Api) {
  let current: PublishedPlacement | undefined;
  let lastReadMs = -Infinity;
  return (nowMs: number) => {
    if (nowMs - lastReadMs >= 5_000) {
      lastReadMs = nowMs;
      core
        .readNamespacedConfigMap({ name: `${o.deployment}-placement`, namespace: o.namespace })
        .then((cm: V1ConfigMap) => {
          const p = readPlacementConfigMap(cm);
          if (p && p.version !== current?.version) current = { placement: p.placement, version: p.version };
        })
        .catch(() => undefined);
    }
    return current;
  };
}

/** Each group's leader (worker 0) as the agent reads it: its target and the acknowledgement the API server shows. */
export function groupLeaders(
  raw: readonly V1Pod[],
  pods: readonly EmulatedGroupPod[],
  nodesPerGroup: number,
): GroupLeaderView[] {
  return raw.flatMap((p) => {
    const labels = p.metadata?.labels ?? {};
    if (labels[LWS_WORKER_LABEL] !== "0" || p.metadata?.deletionTimestamp) return [];
    const group = Number(labels[LWS_GROUP_LABEL]);
    if (!Number.isInteger(group) || group < 0) return [];
    const mine = pods.filter((q) => q.group === group && !q.terminating);
    const target = Number(p.metadata?.annotations?.[Annotation.placementVersion]);
    const c = p.status?.conditions?.find((x) => x.type === PLACEMENT_APPLIED_CONDITION);
    const shown = GROUP_SERVING_RE.exec(c?.message ?? "");
    const refused = /refused placement version (\d{1,12})/.exec(c?.message ?? "");
    return [
      {
        group,
        pod: p.metadata?.name ?? "",
        ready: mine.length >= nodesPerGroup && mine.every((q) => q.ready),
        ...(Number.isInteger(target) && target > 0 ? { targetVersion: target } : {}),
        ...(shown ? { shownVersion: Number(shown[1]) } : {}),
        ...(refused ? { shownRefused: Number(refused[1]) } : {}),
      },
    ];
  });
}

async function writeAck(core: CoreV1Api, o: GroupEmulatorOptions, a: GroupAck): Promise<void> {
  try {
    await core.patchNamespacedPodStatus(
      {
        name: a.pod,
        namespace: o.namespace,
        body: {
          status: {
            conditions: [
              {
                type: PLACEMENT_APPLIED_CONDITION,
                status: a.status,
                reason: a.reason,
                message: a.message,
                lastTransitionTime: new Date().toISOString(),
              },
            ],
          },
        },
      },
      setHeaderOptions("Content-Type", PatchStrategy.StrategicMergePatch),
    );
    o.logger.info({ pod: a.pod, reason: a.reason, message: a.message }, "emulated EP group acknowledged");
  } catch (err) {
    // Not shown: the agent sends it again a few seconds later.
    o.logger.warn({ pod: a.pod, err: (err as Error).message }, "could not write the group's placement condition");
  }
}

/**
 * The groups' placement agent, and each group's placement converted for the group model (cached by
 * version: a few versions are live at once at most). A group with no placement yet uses `fallback`.
 */
function groupAgent(o: GroupEmulatorOptions, fallback: GroupPlacement) {
  const agent = new GroupPlacementAgent({
    seed: o.seed + 1,
    refuseRate: o.refuseRate,
    moveCost: o.moveCost ?? {
      ...DEFAULT_MOVE_BANDWIDTH,
      bytesPerExpertReplica: 44_040_192,
      maxStallSeconds: DEFAULT_MAX_STALL_SECONDS,
    },
  });
  const converted = new Map<number, GroupPlacement>();
  const modelPlacement = (group: number): GroupPlacement => {
    const v = agent.versionOf(group);
    const p = agent.placementOf(group);
    if (v === undefined || !p) return fallback;
    let c = converted.get(v);
    if (!c) {
      c = groupPlacementOf(p);
      converted.set(v, c);
      if (converted.size > 8) converted.delete(Math.min(...converted.keys()));
    }
    return c;
  };
  return { agent, modelPlacement };
}

export async function startGroupFleetEmulator(o: GroupEmulatorOptions): Promise<GroupEmulatorServer> {
  const moeLayers = o.model.layers - o.model.denseLayers;
  const E = o.model.routedExperts;
  const base = { namespace: o.namespace, moe_dev_deployment: o.deployment };
  const core = o.kubeConfig.makeApiClient(CoreV1Api);
  const selector = `${LWS_NAME_LABEL}=${o.deployment}-ep`;
  const informer = new Informer<V1Pod>({
    kubeConfig: o.kubeConfig,
    path: `/api/v1/namespaces/${o.namespace}/pods`,
    list: () => core.listNamespacedPod({ namespace: o.namespace, labelSelector: selector }),
    labelSelector: selector,
    clock: o.clock,
    logger: o.logger.child({ component: "group-emulator-informer" }),
  });
  await informer.start();
  const registry = new Registry();
  const m = metrics(registry);
  const model = new GroupFleetEmulator({ shape: o.shape, layerCount: moeLayers, expertCount: E, topK: o.model.topK });
  const heats = new HeatPatterns({ layerCount: moeLayers, expertCount: E, topK: o.model.topK });
  const placement = placementReader(o, core);
  const rng = createRng(o.seed);
  const { agent, modelPlacement } = groupAgent(o, spreadPlacement(gpusPerGroup(o.shape), moeLayers, E));
  let last: GroupEmulatorSnapshot | undefined;

  const tick = () => {
    const now = o.clock.nowMs();
    const planned = loadAt(o.scenario, now);
    const weights = heats.at(o.scenario, planned.tS);
    const raw = informer.list();
    const draining = drainingGroups(raw);
    const pods = raw.map(emulatedGroupPod).filter((p): p is EmulatedGroupPod => p !== undefined);
    // The front sends nothing to a draining group: to the model it does not serve.
    const routed = pods.map((p) => (draining.has(p.group) ? { ...p, ready: false } : p));
    const count = groupCount(pods);
    const published = placement(now);
    for (const a of agent.sync(now, groupLeaders(raw, pods, o.shape.nodesPerGroup), published))
      void writeAck(core, o, a);
    const stalls = agent.takeStalls();
    const step = model.step(count, routed, modelPlacement, weights, planned.tokensPerSecond);
    routedTokens(weights, planned.tokensPerSecond, o.model.topK).forEach((row, l) =>
      row.forEach((t, e) =>
        m.expertTokens.inc({ ...base, layer: String(o.model.denseLayers + l), expert: String(e) }, t),
      ),
    );
    m.generated.inc(base, planned.tokensPerSecond);
    for (const v of latencySamples(step.groups, planned.tokensPerSecond, rng, 40, stalls))
      m.itl.observe(base, v / 1000);
    m.offered.set(base, planned.tokensPerSecond);
    m.serving.set(base, step.servingGroups);
    m.groupLatency.reset();
    for (const g of step.groups)
      if (g.serving && Number.isFinite(g.latencyMs))
        m.groupLatency.set({ ...base, group: String(g.index) }, g.latencyMs / 1000);
    const latencyMs =
      step.servingGroups === 0 ? (planned.tokensPerSecond > 0 ? NO_SERVICE_LATENCY_MS : NaN) : step.latencyMs;
    last = {
      tS: planned.tS,
      phase: planned.phase,
      tokensPerSecond: planned.tokensPerSecond,
      groups: groupViews(pods, count, draining, step, agent),
      servingGroups: step.servingGroups,
      latencyMs: Number.isFinite(latencyMs) || Number.isNaN(latencyMs) ? latencyMs : NO_SERVICE_LATENCY_MS,
      ...(published ? { placementVersion: published.version } : {}),
    };
  };
  const interval = setInterval(() => {
    try {
      tick();
    } catch (err) {
      o.logger.error({ err: (err as Error).message }, "group emulator tick failed");
    }
  }, 1_000);
  const host = o.host ?? "127.0.0.1";
  const { server, port } = await serve(registry, host, o.port ?? 0);
  return {
    url: `http://${host}:${port}`,
    last: () => last,
    async stop() {
      clearInterval(interval);
      await informer.stop();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}
