// spec.serving.gpu.alternatives (issue 19 item 4, ADR 0023): the schema's rules, the fallback
// scheduling, and the plan that replaces a shard pod stuck on the primary nodes.
import type { V1Pod } from "@kubernetes/client-node";
import { describe, expect, it } from "vitest";
import { parseMoEDeployment, type MoEDeployment } from "../../src/api/index.ts";
import { projectPod, type CachedNode } from "../../src/controllers/moedeployment/cached.ts";
import type { PodGpuView } from "../../src/controllers/moedeployment/pod-gpus.ts";
import { expertSetHash, shardExperts } from "../../src/controllers/moedeployment/children.ts";
import { readShardPod, renderShardPod, type ShardPod } from "../../src/controllers/moedeployment/codecs/shard-pod.ts";
import {
  GPU_FALLBACK_ANNOTATION,
  GPU_RETURN_ANNOTATION,
  gpuFallback,
  gpuReturn,
  withFallbackScheduling,
  type PrimaryRoom,
} from "../../src/controllers/moedeployment/gpu-fallback.ts";
import { nodeViews } from "../../src/controllers/moedeployment/observe.ts";
import { capacityPendingCondition } from "../../src/controllers/moedeployment/status.ts";
import { planChildren } from "../../src/controllers/moedeployment/plan.ts";
import { assignShardNodes, type Decision } from "../../src/domain/decide.ts";
import type { Placement } from "../../src/domain/placement/index.ts";
import { TEST_EXPERTS, TEST_MOE_LAYERS, testMoEDeployment, testWideEPDeployment } from "../support/moe-fixtures.ts";

const NOW = Date.parse("2026-12-06T12:00:00Z");
const TIMEOUT_S = 30;
const H200 = { name: "h200", nodeSelector: { "moe.dev/pool": "h200" } };

function raw(gpu: Record<string, unknown>) {
  const r = testMoEDeployment("fb", "default") as unknown as {
    metadata: Record<string, unknown>;
    spec: { serving: { gpu?: unknown }; scaling: { pendingTimeoutSeconds?: number } };
  };
  r.spec.serving.gpu = gpu;
  r.spec.scaling.pendingTimeoutSeconds = TIMEOUT_S;
  return r;
}

function deployment(gpu: Record<string, unknown>): MoEDeployment {
  const r = parseMoEDeployment(raw(gpu));
  if (!r.ok) throw new Error(`fixture does not parse: ${JSON.stringify(r.issues)}`);
  return { ...r.value, metadata: { ...r.value.metadata, uid: "u-fb" } };
}

const withFallback = () =>
  deployment({
    nodeSelector: { "moe.dev/pool": "h100" },
    alternatives: [H200, { name: "a100", nodeSelector: { "moe.dev/pool": "a100" } }],
  });

/** Shard g holds experts g*5 .. g*5+4 (mod the expert count) in every MoE layer. */
function placement(shards: number): Placement {
  const gpus = Array.from({ length: shards }, (_, i) => ({
    gpuId: `shard-${i}`,
    nodeName: "h100-0",
    domain: "h100-0",
    slotCount: 5,
  }));
  return {
    version: 1,
    layerCount: TEST_MOE_LAYERS,
    expertCount: TEST_EXPERTS,
    gpus,
    layers: Array.from({ length: TEST_MOE_LAYERS }, () =>
      gpus.map((_, g) => Array.from({ length: 5 }, (_, s) => (g * 5 + s) % TEST_EXPERTS)),
    ),
  };
}

function decision(p: Placement): Decision {
  return {
    desiredShards: p.gpus.length,
    capacity: undefined,
    reason: "SLOFeedback",
    message: "",
    shardNodes: [],
    unschedulableShards: 0,
    placement: { action: "keep", reason: "balanced", hash: "h1", placement: p },
    loadTokensPerSecond: 3000,
    heatUsable: true,
    usdPerHourNow: 10,
    usdPerHourDesired: 10,
    nextCapacityState: {} as Decision["nextCapacityState"],
    heatShiftDetected: false,
  } as Decision;
}

/** The shard pod of shard g as rendered, read back Ready on h100-0, or unschedulable for `pendingS`. */
function live(
  d: MoEDeployment,
  p: Placement,
  g: number,
  o: {
    pendingS?: number;
    fallback?: boolean;
    node?: string;
    returnFor?: string;
    ready?: boolean;
    nameHash?: string;
  } = {},
): ShardPod {
  const experts = shardExperts(p, g);
  const pod: V1Pod = renderShardPod(d, {
    shardIndex: g,
    experts,
    setHash: expertSetHash(experts),
    placementVersion: 1,
    placementHash: "h1",
    gpuFallback: o.fallback,
    ...(o.returnFor ? { returnFor: o.returnFor } : {}),
    ...(o.nameHash ? { nameHash: o.nameHash } : {}),
  });
  pod.metadata!.uid = `uid-${g}${o.nameHash ?? ""}`;
  pod.metadata!.creationTimestamp = new Date(NOW - (o.pendingS ?? 600) * 1000);
  if (o.pendingS === undefined) {
    pod.spec!.nodeName = o.node ?? "h100-0";
    pod.status = { phase: "Running", conditions: [{ type: "Ready", status: o.ready === false ? "False" : "True" }] };
  } else {
    pod.status = {
      phase: "Pending",
      conditions: [
        { type: "PodScheduled", status: "False", reason: "Unschedulable", message: "0/2 nodes are available" },
      ],
    };
  }
  return readShardPod(projectPod(pod))!;
}

const plan = (d: MoEDeployment, p: Placement, pods: ShardPod[], primaryRoom?: PrimaryRoom) =>
  planChildren(
    d,
    decision(p),
    // Published already when the room is given (a return waits for a placement change to be out).
    {
      router: undefined,
      published: primaryRoom ? { placement: p, hash: "h1", version: 1 } : undefined,
      shardPods: pods,
    },
    {
      nowMs: NOW,
      drainSeconds: 10,
      maxSurge: 2,
      ...(primaryRoom ? { primaryRoom } : {}),
    },
  );

describe("spec.serving.gpu.alternatives: schema", () => {
  it("needs spec.serving.gpu.nodeSelector, a label per alternative, and topology Disaggregated", () => {
    const issues = (x: unknown) => {
      const r = parseMoEDeployment(x);
      return r.ok ? [] : r.issues.map((i) => `${i.path}: ${i.message}`);
    };
    expect(issues(raw({ nodeSelector: { "moe.dev/pool": "h100" }, alternatives: [H200] }))).toEqual([]);
    expect(issues(raw({ alternatives: [H200] })).join("\n")).toContain("spec.serving.gpu.nodeSelector must name");
    expect(
      issues(raw({ nodeSelector: { "moe.dev/pool": "h100" }, alternatives: [{ name: "x", nodeSelector: {} }] })).join(
        "\n",
      ),
    ).toContain("alternatives[].nodeSelector must name at least one node label");
    const wide = testWideEPDeployment("w", "default") as unknown as { spec: { serving: { gpu?: unknown } } };
    wide.spec.serving.gpu = { nodeSelector: { "moe.dev/pool": "h100" }, alternatives: [H200] };
    expect(issues(wide).join("\n")).toContain("not supported with spec.serving.topology WideEP");
  });
});

describe("the fallback scheduling", () => {
  it("puts the template's nodeSelector under each option's labels into OR-ed required terms, preferring the primary", () => {
    const d = withFallback();
    const spec = withFallbackScheduling(
      { containers: [], nodeSelector: { "moe.dev/pool": "h100", zone: "a" } },
      d.spec.serving.gpu,
      { "moe.dev/pool": "template", zone: "a" },
    );
    expect(spec.nodeSelector).toBeUndefined();
    const term = (v: string) => [
      { key: "moe.dev/pool", operator: "In", values: [v] },
      { key: "zone", operator: "In", values: ["a"] },
    ];
    expect(
      spec.affinity?.nodeAffinity?.requiredDuringSchedulingIgnoredDuringExecution?.nodeSelectorTerms?.map(
        (t) => t.matchExpressions,
      ),
    ).toEqual([term("h100"), term("h200"), term("a100")]);
    // The primary outweighs a staged node (50) plus any alternative.
    expect(
      spec.affinity?.nodeAffinity?.preferredDuringSchedulingIgnoredDuringExecution?.map((p) => [
        p.weight,
        p.preference.matchExpressions?.[0]?.values?.[0],
      ]),
    ).toEqual([
      [80, "h100"],
      [20, "h200"],
      [10, "a100"],
    ]);
  });

  it("ANDs every required term already there with each option", () => {
    const d = withFallback();
    const gpuMem = { key: "gpu-mem", operator: "In", values: ["80"] };
    const spec = withFallbackScheduling(
      {
        containers: [],
        affinity: {
          nodeAffinity: {
            requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: [{ matchExpressions: [gpuMem] }] },
          },
        },
      },
      d.spec.serving.gpu,
      undefined,
    );
    const terms = spec.affinity!.nodeAffinity!.requiredDuringSchedulingIgnoredDuringExecution!.nodeSelectorTerms;
    expect(terms).toHaveLength(3);
    for (const t of terms) expect(t.matchExpressions?.[0]).toEqual(gpuMem);
    expect(terms.map((t) => t.matchExpressions?.[1]?.values?.[0])).toEqual(["h100", "h200", "a100"]);
    expect(spec.nodeSelector).toBeUndefined();
  });

  it("is rendered and read back on a shard pod (moe.dev/gpu-fallback); the primary pod keeps the hard selector", () => {
    const d = withFallback();
    const p = placement(4);
    const primary = live(d, p, 0);
    expect(primary.gpuFallback).toBeUndefined();
    expect(primary.pod.metadata?.annotations?.[GPU_FALLBACK_ANNOTATION]).toBeUndefined();
    const experts = shardExperts(p, 1);
    const pod = renderShardPod(d, {
      shardIndex: 1,
      experts,
      setHash: expertSetHash(experts),
      placementVersion: 1,
      placementHash: "h1",
      gpuFallback: true,
    });
    expect(pod.metadata?.annotations?.[GPU_FALLBACK_ANNOTATION]).toBe("true");
    expect(pod.spec?.nodeSelector).toBeUndefined();
    expect(readShardPod(projectPod(pod))?.gpuFallback).toBe(true);
    const plain = renderShardPod(d, {
      shardIndex: 1,
      experts,
      setHash: expertSetHash(experts),
      placementVersion: 1,
      placementHash: "h1",
    });
    expect(plain.spec?.nodeSelector).toEqual({ "moe.dev/pool": "h100" });
  });

  it("tolerates the primary's taints plus every alternative's, once each; the primary pod only its own", () => {
    const primaryTaint = { key: "nvidia.com/gpu", operator: "Exists", effect: "NoSchedule" };
    const h200Taint = { key: "pool", operator: "Equal", value: "h200", effect: "NoSchedule" };
    const d = deployment({
      nodeSelector: { "moe.dev/pool": "h100" },
      tolerations: [primaryTaint],
      alternatives: [
        { ...H200, tolerations: [h200Taint, primaryTaint] },
        { name: "a100", nodeSelector: { "moe.dev/pool": "a100" }, tolerations: [h200Taint] },
      ],
    });
    const p = placement(2);
    const experts = shardExperts(p, 1);
    const input = { shardIndex: 1, experts, setHash: expertSetHash(experts), placementVersion: 1, placementHash: "h1" };
    expect(renderShardPod(d, { ...input, gpuFallback: true }).spec?.tolerations).toEqual([primaryTaint, h200Taint]);
    expect(renderShardPod(d, input).spec?.tolerations).toEqual([primaryTaint]);
  });

  it("refuses an alternative's toleration that is not a core/v1 Toleration, naming the field", () => {
    const r = parseMoEDeployment(
      raw({
        nodeSelector: { "moe.dev/pool": "h100" },
        alternatives: [{ ...H200, tolerations: [{ key: "pool", operator: "Sometimes" }] }],
      }),
    );
    expect(r.ok).toBe(false);
    if (!r.ok)
      expect(r.issues.map((i) => i.path)).toContain("spec.serving.gpu.alternatives[0].tolerations[0].operator");
  });
});

describe("the plan with alternatives", () => {
  it("replaces a shard pod unschedulable past the timeout by a fallback pod of the same shard and set", () => {
    const d = withFallback();
    const p = placement(4);
    const stuck = live(d, p, 3, { pendingS: TIMEOUT_S + 5 });
    const pods = [live(d, p, 0), live(d, p, 1), live(d, p, 2), stuck];
    const out = plan(d, p, pods);
    expect(out.deletePods).toEqual([{ name: stuck.name, uid: "uid-3" }]);
    expect(out.createPods).toHaveLength(1);
    const created = out.createPods[0]!;
    expect(created.metadata?.name).not.toBe(stuck.name);
    expect(created.metadata?.name).toMatch(/^fb-shard-3-/);
    expect(created.metadata?.labels?.["moe.dev/expert-set-hash"]).toBe(stuck.setHash);
    expect(created.metadata?.annotations?.[GPU_FALLBACK_ANNOTATION]).toBe("true");
    expect(out.events.map((e) => e.reason)).toContain("GPUFallback");
    expect(out.events.find((e) => e.reason === "GPUFallback")?.message).toContain(
      `${stuck.name} -> ${created.metadata?.name}`,
    );
  });

  it("leaves a pod pending for less than the timeout, and does nothing without alternatives", () => {
    const d = withFallback();
    const p = placement(4);
    const young = [live(d, p, 0), live(d, p, 1), live(d, p, 2), live(d, p, 3, { pendingS: TIMEOUT_S - 5 })];
    expect(plan(d, p, young)).toMatchObject({ createPods: [], deletePods: [] });
    const plainD = deployment({ nodeSelector: { "moe.dev/pool": "h100" } });
    const old = [live(plainD, p, 0), live(plainD, p, 1), live(plainD, p, 2), live(plainD, p, 3, { pendingS: 600 })];
    expect(plan(plainD, p, old)).toMatchObject({ createPods: [], deletePods: [] });
    expect(gpuFallback(plainD.spec, old, NOW)).toEqual({ stuck: [], inView: false });
  });

  it("never replaces a fallback pod; new shards keep the primary scheduling while one lives", () => {
    const d = withFallback();
    const p = placement(5);
    const fallbackPending = live(d, p, 3, { pendingS: 600, fallback: true });
    const pods = [live(d, p, 0), live(d, p, 1), live(d, p, 2), fallbackPending];
    expect(gpuFallback(d.spec, pods, NOW)).toEqual({ stuck: [], inView: true });
    const out = plan(d, p, pods);
    expect(out.deletePods).toEqual([]);
    expect(out.createPods.map((x) => x.metadata?.labels?.["moe.dev/shard-index"])).toEqual(["4"]);
    expect(out.createPods[0]?.metadata?.annotations?.[GPU_FALLBACK_ANNOTATION]).toBeUndefined();
    expect(out.createPods[0]?.spec?.nodeSelector).toEqual({ "moe.dev/pool": "h100" });
    // Without a stuck or fallback pod the alternatives are out of view.
    expect(gpuFallback(d.spec, pods.slice(0, 3), NOW)).toEqual({ stuck: [], inView: false });
  });

  it("keeps the fallback scheduling in the rollout of a shard whose pod has it, and only there", () => {
    const d = withFallback();
    const p = placement(5);
    const moved: Placement = {
      ...p,
      layers: p.layers.map((l) => l.map((g, i) => (i === 3 ? g.map((e) => (e + 7) % TEST_EXPERTS) : g))),
    };
    const pods = [live(d, p, 0), live(d, p, 1), live(d, p, 2), live(d, p, 3, { fallback: true })];
    const out = plan(d, moved, pods);
    const created = new Map(
      out.createPods.map((x) => [
        x.metadata?.labels?.["moe.dev/shard-index"],
        x.metadata?.annotations?.[GPU_FALLBACK_ANNOTATION],
      ]),
    );
    expect(created).toEqual(
      new Map([
        ["3", "true"],
        ["4", undefined],
      ]),
    );
  });

  it("does not count a rollout's replacement waiting for its old pod's GPU as stuck", () => {
    const d = withFallback();
    const p = placement(4);
    const waiting = { ...live(d, p, 2, { pendingS: 600 }), name: "fb-shard-2-newset" };
    const pods = [live(d, p, 0), live(d, p, 1), live(d, p, 2), live(d, p, 3), waiting];
    expect(gpuFallback(d.spec, pods, NOW).stuck).toEqual([]);
  });
});

describe("node views with alternatives", () => {
  const node = (name: string, pool: string): CachedNode => ({
    metadata: { name, labels: { "moe.dev/pool": pool } },
    status: { allocatable: { "nvidia.com/gpu": "8" }, conditions: [{ type: "Ready", status: "True" }] },
  });
  it("include the alternatives' nodes only in view, flagged, and the nodes fallback pods run on always", () => {
    const d = withFallback();
    const nodes = [node("h100-0", "h100"), node("h200-0", "h200"), node("t4-0", "t4")];
    expect(nodeViews(d.spec, nodes, [], []).map((n) => [n.name, n.fallbackOnly])).toEqual([["h100-0", undefined]]);
    expect(nodeViews(d.spec, nodes, [], [], true).map((n) => [n.name, n.fallbackOnly])).toEqual([
      ["h100-0", undefined],
      ["h200-0", true],
    ]);
    // A fallback pod on a node no alternative matches any more (the list was edited) is still priced.
    const p = placement(1);
    const running = live(d, p, 0, { fallback: true });
    const onT4 = { ...running, pod: { ...running.pod, spec: { ...running.pod.spec, nodeName: "t4-0" } } };
    expect(nodeViews(d.spec, nodes, [], [onT4]).map((n) => [n.name, n.fallbackOnly])).toEqual([
      ["h100-0", undefined],
      ["t4-0", true],
    ]);
  });

  it("count an unbound pod without a preferred node against the node it would most likely get", () => {
    const d = withFallback();
    const nodes = [node("h100-0", "h100"), node("h100-1", "h100"), node("h200-0", "h200"), node("a100-0", "a100")];
    const holding = (nodeName: string, gpus: number): PodGpuView => ({
      metadata: { namespace: "other", name: `busy-${nodeName}`, uid: `busy-${nodeName}` },
      nodeName,
      phase: "Running",
      gpuRequests: { "nvidia.com/gpu": gpus },
    });
    const p = placement(3);
    const free = (podGpus: PodGpuView[], pods: ShardPod[]) =>
      Object.fromEntries(nodeViews(d.spec, nodes, podGpus, pods, true).map((n) => [n.name, n.freeGpus]));
    const replacement = live(d, p, 1, { pendingS: 5, fallback: true });
    const primaryOnly = live(d, p, 2, { pendingS: 5 });
    expect(replacement.preferredNode).toBeUndefined();
    // The primary has room: the fallback pod prefers it, the emptier primary node first.
    expect(free([holding("h100-0", 6), holding("h100-1", 5)], [replacement])).toEqual({
      "h100-0": 2,
      "h100-1": 2,
      "h200-0": 8,
      "a100-0": 8,
    });
    // The primary is full: the first alternative in order, not the later one.
    expect(free([holding("h100-0", 8), holding("h100-1", 8), holding("a100-0", 2)], [replacement])).toEqual({
      "h100-0": 0,
      "h100-1": 0,
      "h200-0": 7,
      "a100-0": 6,
    });
    // A pod with the primary scheduling only never takes an alternative's GPU.
    expect(free([holding("h100-0", 8), holding("h100-1", 8)], [primaryOnly])).toEqual({
      "h100-0": 0,
      "h100-1": 0,
      "h200-0": 8,
      "a100-0": 8,
    });
    // Two floating pods take two GPUs; a bound one is already in podGpus and is not counted twice.
    expect(free([holding("h100-0", 7), holding("h100-1", 8)], [replacement, primaryOnly, live(d, p, 0)])).toEqual({
      "h100-0": 0,
      "h100-1": 0,
      "h200-0": 7,
      "a100-0": 8,
    });
  });

  it("are never a new shard's preferred node", () => {
    const views = [
      { name: "h100-0", domain: "h100-0", freeGpus: 1, usdPerGpuHour: 3 },
      { name: "a100-0", domain: "a100-0", freeGpus: 8, usdPerGpuHour: 1, fallbackOnly: true, staged: true },
    ];
    expect(assignShardNodes([], 3, views)).toEqual({ nodes: ["h100-0", undefined, undefined], unschedulable: 2 });
  });
});

describe("spec.serving.gpu.alternatives: CapacityPending", () => {
  it("names the alternatives for shard pods already on the fallback scheduling, and only the primary otherwise", () => {
    const d = withFallback();
    const p = placement(3);
    const c = (pods: ShardPod[]) => capacityPendingCondition({ deployment: d, shardPods: pods, nowMs: NOW }).message;
    const primary = c([live(d, p, 0), live(d, p, 1, { pendingS: 40 })]);
    expect(primary).toMatch(/^1 nvidia.com\/gpu on nodes with moe.dev\/pool=h100 pending/);
    expect(primary).not.toContain("h200");
    const both = c([live(d, p, 0), live(d, p, 1, { pendingS: 40, fallback: true })]);
    expect(both).toMatch(
      /^1 nvidia.com\/gpu on nodes with moe.dev\/pool=h100 or h200 \(moe.dev\/pool=h200\) or a100 \(moe.dev\/pool=a100\) pending/,
    );
    const mixed = c([live(d, p, 1, { pendingS: 40 }), live(d, p, 2, { pendingS: 40, fallback: true })]);
    expect(mixed).toMatch(/^2 nvidia.com\/gpu on nodes with moe.dev\/pool=h100 \(1 of them .* or h200 /);
  });
});

describe("spec.serving.gpu.alternatives: the return to the primary type", () => {
  const ALT = new Set(["h200-0"]);
  const room = (freeGpus: number): PrimaryRoom => ({ freeGpus, alternativeNodes: ALT });
  /** Shards 0-2 on h100-0, shards 3 and 4 on the fallback scheduling on h200-0. */
  const setup = () => {
    const d = withFallback();
    const p = placement(5);
    const onH200 = [3, 4].map((g) => live(d, p, g, { fallback: true, node: "h200-0", nameHash: `f${g}` }));
    return { d, p, base: [live(d, p, 0), live(d, p, 1), live(d, p, 2)], onH200 };
  };

  it("creates a pod with the primary scheduling beside each fallback pod on an alternative, up to the free GPUs", () => {
    const { d, p, base, onH200 } = setup();
    const out = plan(d, p, [...base, ...onH200], room(1));
    expect(out.deletePods).toEqual([]);
    expect(out.drainPods).toEqual([]);
    expect(out.createPods).toHaveLength(1);
    const created = out.createPods[0]!;
    expect(created.metadata?.labels?.["moe.dev/shard-index"]).toBe("3");
    expect(created.metadata?.labels?.["moe.dev/expert-set-hash"]).toBe(onH200[0]!.setHash);
    expect(created.metadata?.annotations?.[GPU_RETURN_ANNOTATION]).toBe(onH200[0]!.name);
    expect(created.metadata?.annotations?.[GPU_FALLBACK_ANNOTATION]).toBeUndefined();
    expect(created.spec?.nodeSelector).toEqual({ "moe.dev/pool": "h100" });
    expect(created.metadata?.name).not.toBe(onH200[0]!.name);
    expect(out.events.find((e) => e.reason === "GPUReturn")?.message).toContain(`${onH200[0]!.name} (on h200-0) ->`);
    // Two free GPUs: both, within the surge (2).
    expect(plan(d, p, [...base, ...onH200], room(2)).createPods).toHaveLength(2);
    // Without room, without the room view, or for a fallback pod on a primary node: nothing.
    expect(plan(d, p, [...base, ...onH200], room(0)).createPods).toEqual([]);
    expect(plan(d, p, [...base, ...onH200]).createPods).toEqual([]);
    // Nor while a new placement is being published.
    expect(
      planChildren(
        d,
        decision(p),
        {
          router: undefined,
          published: { placement: placement(5), hash: "h0", version: 1 },
          shardPods: [...base, ...onH200],
        },
        { nowMs: NOW, drainSeconds: 10, maxSurge: 2, primaryRoom: room(2) },
      ).createPods,
    ).toEqual([]);
    const onPrimary = [3, 4].map((g) => live(d, p, g, { fallback: true, node: "h100-1", nameHash: `f${g}` }));
    expect(plan(d, p, [...base, ...onPrimary], room(4)).createPods).toEqual([]);
  });

  it("drains the fallback pod once its return pod is Ready, and only then", () => {
    const { d, p, base, onH200 } = setup();
    const returning = (ready: boolean) =>
      live(d, p, 3, { node: "h100-1", returnFor: onH200[0]!.name, ready, nameHash: "r3" });
    const waiting = plan(d, p, [...base, ...onH200, returning(false)], room(2));
    expect(waiting.drainPods).toEqual([]);
    expect(waiting.deletePods).toEqual([]);
    // A return under way: no second one starts while the rollout has a pod not Ready.
    expect(waiting.createPods.every((c) => c.metadata?.labels?.["moe.dev/shard-index"] !== "3")).toBe(true);
    const ready = plan(d, p, [...base, ...onH200, returning(true)], room(1));
    expect(ready.drainPods).toEqual([onH200[0]!.name]);
    expect(ready.events.some((e) => e.reason === "GPUReturn" && e.message.includes("draining the fallback pod"))).toBe(
      true,
    );
  });

  it("deletes a return pod that found no node within the pending timeout; the fallback pod serves on", () => {
    const { d, p, base, onH200 } = setup();
    const stuckReturn = live(d, p, 3, { pendingS: TIMEOUT_S + 1, returnFor: onH200[0]!.name, nameHash: "r3" });
    const out = plan(d, p, [...base, ...onH200, stuckReturn], room(0));
    expect(out.deletePods).toEqual([{ name: stuckReturn.name, uid: stuckReturn.pod.metadata?.uid }]);
    expect(out.drainPods).toEqual([]);
    // It is not a shortage: CapacityPending stays False.
    expect(
      capacityPendingCondition({ deployment: d, shardPods: [...base, ...onH200, stuckReturn], nowMs: NOW }).status,
    ).toBe("False");
    // Nor is it a stuck pod to fall back for.
    expect(gpuFallback(d.spec, [...base, ...onH200, stuckReturn], NOW).stuck).toEqual([]);
  });

  it("never drains a fallback pod whose return pod the rollout drains (its shard scaled away)", () => {
    const { d, base, onH200 } = setup();
    const returned = live(d, placement(5), 3, { node: "h100-1", returnFor: onH200[0]!.name, nameHash: "r3" });
    // Scaled down to 3 shards in the reconcile where the return pod turned Ready.
    const out = plan(d, placement(3), [...base, onH200[0]!, returned], room(1));
    expect(out.drainPods.includes(onH200[0]!.name) && out.drainPods.includes(returned.name)).toBe(false);
    expect(out.events.some((e) => e.reason === "GPUReturn" && e.message.includes("draining the fallback"))).toBe(false);
  });

  it("finishes or abandons a return under way after the alternatives are removed from the spec", () => {
    const { d, p, base, onH200 } = setup();
    const plain = deployment({ nodeSelector: { "moe.dev/pool": "h100" } });
    const ready = live(d, p, 3, { node: "h100-1", returnFor: onH200[0]!.name, nameHash: "r3" });
    expect(plan(plain, p, [...base, ...onH200, ready]).drainPods).toEqual([onH200[0]!.name]);
    const pending = live(d, p, 3, { pendingS: TIMEOUT_S + 1, returnFor: onH200[0]!.name, nameHash: "r3" });
    expect(plan(plain, p, [...base, ...onH200, pending]).deletePods.map((x) => x.name)).toEqual([pending.name]);
  });

  it("treats a return pod whose fallback pod is gone as the shard's pod: stuck, and CapacityPending", () => {
    const { d, p, base, onH200 } = setup();
    const orphan = live(d, p, 3, { pendingS: TIMEOUT_S + 1, returnFor: "gone-pod", nameHash: "r3" });
    const pods = [...base, onH200[1]!, orphan];
    expect(gpuReturn(d.spec, pods, room(2), NOW, { idle: true, maxInFlight: 2 }).abandon).toEqual([]);
    expect(capacityPendingCondition({ deployment: d, shardPods: pods, nowMs: NOW }).status).toBe("True");
    expect(gpuFallback(d.spec, pods, NOW).stuck.map((x) => x.name)).toEqual([orphan.name]);
  });

  it("waits while a rollout, a stuck pod or a terminating pod of the shard is in flight", () => {
    const { d, p, base, onH200 } = setup();
    const pending = live(d, p, 2, { pendingS: 5 });
    expect(
      gpuReturn(d.spec, [base[0]!, base[1]!, pending, ...onH200], room(3), NOW, { idle: false, maxInFlight: 2 }).start,
    ).toEqual([]);
    const terminating = { ...live(d, p, 3, { nameHash: "old3", node: "h100-1" }), terminating: true };
    const r = gpuReturn(d.spec, [...base, ...onH200, terminating], room(3), NOW, { idle: true, maxInFlight: 2 });
    expect(r.start.map((x) => x.shardIndex)).toEqual([4]);
    // In place moves: no returns (a second pod per shard is the in-place protocol's replacement).
    const inPlace = {
      ...d,
      spec: {
        ...d.spec,
        placement: { ...d.spec.placement, moves: { ...d.spec.placement.moves, mode: "InPlace" as const } },
      },
    };
    expect(gpuReturn(inPlace.spec, [...base, ...onH200], room(3), NOW, { idle: true, maxInFlight: 2 }).start).toEqual(
      [],
    );
  });
});
