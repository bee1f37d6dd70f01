import type { V1Pod } from "@kubernetes/client-node";
import { describe, expect, it } from "vitest";
import { parseMoEDeployment, type MoEDeployment } from "../../src/api/index.ts";
import { planWideEP, wideEPEvents } from "../../src/controllers/moedeployment/wideep.ts";
import { lwsHandEdit, lwsToApply } from "../../src/controllers/moedeployment/codecs/leaderworkerset.ts";
import { policyFromSpec } from "../../src/controllers/moedeployment/policy.ts";
import { nodeViews } from "../../src/controllers/moedeployment/observe.ts";
import type { CachedNode } from "../../src/controllers/moedeployment/cached.ts";
import { testWideEPDeployment } from "../support/moe-fixtures.ts";

const NOW = Date.parse("2026-12-05T12:00:00Z");

function deployment(over: Parameters<typeof testWideEPDeployment>[2] = {}): MoEDeployment {
  const r = parseMoEDeployment(testWideEPDeployment("wide", "default", over));
  if (!r.ok) throw new Error(`fixture does not parse: ${JSON.stringify(r.issues)}`);
  return r.value;
}

function groupPod(group: number, worker: number, o: { ready?: boolean; node?: string; ageS?: number } = {}): V1Pod {
  const scheduled = o.node !== undefined;
  return {
    metadata: {
      name: worker === 0 ? `wide-ep-${group}` : `wide-ep-${group}-${worker}`,
      namespace: "default",
      creationTimestamp: new Date(NOW - (o.ageS ?? 600) * 1000),
      labels: {
        "leaderworkerset.sigs.k8s.io/name": "wide-ep",
        "leaderworkerset.sigs.k8s.io/group-index": `${group}`,
        "leaderworkerset.sigs.k8s.io/worker-index": `${worker}`,
      },
    },
    spec: { containers: [], ...(scheduled ? { nodeName: o.node } : {}) },
    status: {
      conditions: [
        scheduled
          ? { type: "PodScheduled", status: "True" }
          : { type: "PodScheduled", status: "False", reason: "Unschedulable", message: "0/4 nodes are available" },
        { type: "Ready", status: o.ready === false || !scheduled ? "False" : "True" },
      ],
    },
  };
}

function plan(
  d: MoEDeployment,
  pods: V1Pod[],
  managesWorkloads = true,
  latency: { p99Ms?: number } = {},
  nodes: CachedNode[] = [],
) {
  return planWideEP({
    deployment: d,
    pods,
    heat: {},
    latency: latency.p99Ms === undefined ? {} : { p99Ms: latency.p99Ms, atMs: NOW },
    policy: policyFromSpec(d.spec, { reconcileIntervalMs: 5000, maxSurge: 1 }),
    trackingSinceMs: NOW - 3_600_000,
    nodes: nodeViews(d.spec, nodes, [], []),
    managesWorkloads,
    nowMs: NOW,
  });
}

/** A Ready 8-GPU node matching the deployment's GPU node selector, with these labels. */
function gpuNode(d: MoEDeployment, name: string, labels: Record<string, string> = {}): CachedNode {
  return {
    metadata: { name, labels: { ...d.spec.serving.gpu.nodeSelector, ...labels } },
    status: {
      allocatable: { [d.spec.serving.gpu.resourceName]: "8" },
      conditions: [{ type: "Ready", status: "True" }],
    },
  };
}

describe("planWideEP", () => {
  it("renders one LeaderWorkerSet of nodesPerGroup pods asking gpusPerNode GPUs, owned by the deployment", () => {
    const d = deployment({ minShards: 16, maxShards: 48 });
    const p = plan({ ...d, metadata: { ...d.metadata, uid: "u1" } }, []);
    expect(p.decision.groups).toBe(1);
    const lws = p.lws!;
    expect(lws.metadata?.name).toBe("wide-ep");
    expect(lws.metadata?.ownerReferences?.[0]).toMatchObject({ kind: "MoEDeployment", name: "wide", uid: "u1" });
    expect(lws.spec.replicas).toBe(1);
    expect(lws.spec.leaderWorkerTemplate.size).toBe(2);
    const c = lws.spec.leaderWorkerTemplate.workerTemplate.spec.containers[0]!;
    expect(c.resources?.limits?.["nvidia.com/gpu"]).toBe("8");
    expect(lws.spec.leaderWorkerTemplate.workerTemplate.metadata.labels).toMatchObject({
      "app.kubernetes.io/managed-by": "moe-operator",
      "moe.dev/component": "ep-group",
      "moe.dev/deployment": "wide",
    });
    expect(p.status.groups).toEqual({ desired: 1, ready: 0, gpusPerGroup: 16 });
  });

  it("manual GPUs (spec.scaling.shards) become whole groups", () => {
    const p = plan(deployment({ minShards: 16, maxShards: 48, shards: 20 }), []);
    expect(p.decision.groups).toBe(2);
    expect(p.lws!.spec.replicas).toBe(2);
    expect(p.status.desiredGpus).toBe(32);
  });

  it("counts only groups with every pod Ready; a group Pending past the timeout raises CapacityPending naming it", () => {
    const d0 = deployment({ minShards: 16, maxShards: 48, shards: 48, pendingTimeoutSeconds: 60 });
    const d = { ...d0, status: { groups: { desired: 3, ready: 0, gpusPerGroup: 16 } } };
    const pods = [
      groupPod(0, 0, { node: "n0" }),
      groupPod(0, 1, { node: "n1" }),
      groupPod(1, 0, { node: "n2" }),
      groupPod(1, 1, { node: "n3", ready: false }),
      groupPod(2, 0, { ageS: 90 }),
      groupPod(2, 1, { ageS: 90 }),
    ];
    const p = plan(d, pods);
    expect(p.decision.readyGroups).toBe(1);
    expect(p.status.groups).toEqual({ desired: 3, ready: 1, gpusPerGroup: 16, pending: [2] });
    const pending = p.status.conditions?.find((c) => c.type === "CapacityPending");
    expect(pending).toMatchObject({ status: "True", reason: "GroupsUnschedulable" });
    expect(pending?.message).toContain("group 2: 16 nvidia.com/gpu missing for 90 s (0/4 nodes are available)");
    expect(p.status.conditions?.find((c) => c.type === "Ready")?.status).toBe("False");
  });

  it("a group Pending for less than the timeout is not reported yet", () => {
    const d0 = deployment({ minShards: 16, maxShards: 48, shards: 32, pendingTimeoutSeconds: 120 });
    const d = { ...d0, status: { groups: { desired: 2, ready: 0, gpusPerGroup: 16 } } };
    const p = plan(d, [groupPod(0, 0, { node: "a" }), groupPod(0, 1, { node: "b" }), groupPod(1, 0, { ageS: 30 })]);
    expect(p.status.conditions?.find((c) => c.type === "CapacityPending")?.status).toBe("False");
    expect(p.status.groups?.pending).toBeUndefined();
  });

  it("plans one placement over one group's GPUs, publishes it before the groups, and mounts it in their pods", () => {
    const d = deployment({ minShards: 16, maxShards: 48 });
    const p = plan(d, []);
    const cm = p.placementConfigMap!;
    expect(cm.metadata?.name).toBe("wide-placement");
    expect(JSON.parse(cm.data!["shards.json"]!)).toHaveLength(16);
    expect(cm.data!["physical_to_logical_map.json"]).toBeDefined();
    expect(p.status.placement).toMatchObject({ version: 1, configMapName: "wide-placement" });
    const spec = p.lws!.spec.leaderWorkerTemplate.workerTemplate.spec;
    expect(spec.volumes).toContainEqual({ name: "moe-placement", configMap: { name: "wide-placement" } });
    expect(spec.containers[0]!.volumeMounts).toContainEqual({
      name: "moe-placement",
      mountPath: "/etc/moe-placement",
      readOnly: true,
    });
    // Published and unchanged: not applied again, same version.
    const again = planWideEP({
      deployment: { ...d, status: p.status },
      pods: [],
      heat: {},
      latency: {},
      policy: policyFromSpec(d.spec, { reconcileIntervalMs: 5000, maxSurge: 1 }),
      trackingSinceMs: NOW - 3_600_000,
      placementConfigMap: cm,
      managesWorkloads: true,
      nowMs: NOW + 5000,
    });
    expect(again.placementConfigMap).toBeUndefined();
    expect(again.status.placement?.version).toBe(1);
  });

  it("InPlace: targets each serving group's leader at the published version, counts acknowledgements, names a late group", () => {
    const parsed = deployment({ minShards: 32, maxShards: 32 });
    const d: MoEDeployment = {
      ...parsed,
      spec: {
        ...parsed.spec,
        placement: { ...parsed.spec.placement, moves: { mode: "InPlace", ackTimeoutSeconds: 60 } },
      },
    };
    const first = plan(d, []);
    const cm = first.placementConfigMap!;
    const pods = [0, 1].flatMap((g) => [groupPod(g, 0, { node: `n${g}a` }), groupPod(g, 1, { node: `n${g}b` })]);
    const ack = (p: V1Pod, message: string): V1Pod => ({
      ...p,
      status: {
        ...p.status,
        conditions: [...(p.status?.conditions ?? []), { type: "moe.dev/placement-applied", status: "True", message }],
      },
    });
    const next = (ps: V1Pod[], nowMs: number) =>
      planWideEP({
        deployment: { ...d, status: first.status },
        pods: ps,
        heat: {},
        latency: {},
        policy: policyFromSpec(d.spec, { reconcileIntervalMs: 5000, maxSurge: 1 }),
        trackingSinceMs: NOW - 3_600_000,
        placementConfigMap: cm,
        managesWorkloads: true,
        nowMs,
      });
    // Group 0 serves version 1; group 1 has not answered: it is targeted at version 1.
    const p = next([ack(pods[0]!, "serving placement version 1"), ...pods.slice(1)], NOW + 5000);
    expect(p.moves?.write).toEqual([{ pod: "wide-ep-1", group: 1, version: 1 }]);
    expect(p.status.groups).toMatchObject({ ready: 2, placementApplied: 1, placementMoving: 1 });
    expect(p.status.conditions?.find((c) => c.type === "RebalanceStalled")).toMatchObject({
      status: "False",
      reason: "MovesAcknowledged",
      message: "1 EP group(s) moving to placement version 1 in place, none past the deadline",
    });
    // 61 s later group 1 has still not answered its target: named, not written again.
    const late = {
      ...pods[2]!,
      metadata: {
        ...pods[2]!.metadata,
        annotations: {
          "moe.dev/placement-version": "1",
          "moe.dev/target-since": new Date(NOW + 5000).toISOString(),
        },
      },
    };
    const q = next([ack(pods[0]!, "serving placement version 1"), pods[1]!, late, pods[3]!], NOW + 66_000);
    expect(q.moves?.write).toEqual([]);
    expect(q.status.conditions?.find((c) => c.type === "RebalanceStalled")).toMatchObject({
      status: "True",
      reason: "GroupMoveFailed",
    });
    expect(q.status.conditions?.find((c) => c.type === "RebalanceStalled")?.message).toContain(
      "EP group 1 (wide-ep-1) did not acknowledge placement version 1 within 60 s",
    );
    // A refusal written with status False still tells what the group serves.
    const refusing = {
      ...late,
      status: {
        ...late.status,
        conditions: [
          ...(late.status?.conditions ?? []),
          {
            type: "moe.dev/placement-applied",
            status: "False",
            message: "refused placement version 1: no free HBM; serving placement version 0",
          },
        ],
      },
    };
    const rf = next([ack(pods[0]!, "serving placement version 1"), pods[1]!, refusing, pods[3]!], NOW + 10_000);
    expect(rf.status.conditions?.find((c) => c.type === "RebalanceStalled")?.message).toContain(
      "EP group 1 (wide-ep-1) refused placement version 1: no free HBM; it serves placement version 0",
    );
    // The last round of a drain (no group listed draining, replicas about to fall): the group going
    // is not targeted. Minimum and maximum one group: group 1 is above the decision.
    const one = { ...d, spec: { ...d.spec, scaling: { ...d.spec.scaling, minShards: 16, maxShards: 16 } } };
    const down = planWideEP({
      deployment: { ...one, status: first.status },
      pods,
      heat: {},
      latency: {},
      policy: policyFromSpec(one.spec, { reconcileIntervalMs: 5000, maxSurge: 1 }),
      trackingSinceMs: NOW - 3_600_000,
      placementConfigMap: cm,
      managesWorkloads: true,
      nowMs: NOW + 5000,
    });
    expect(down.decision.groups).toBe(1);
    expect(down.moves?.write.map((w) => w.group)).toEqual([0]);
    // Replace (the default): no targets, no RebalanceStalled, no counts.
    const r = plan(parsed, pods);
    expect(r.moves).toBeUndefined();
    expect(r.status.groups?.placementApplied).toBeUndefined();
  });

  it("Recommend: no LeaderWorkerSet, no live groups", () => {
    const d = deployment({ minShards: 16, maxShards: 48, mode: "Recommend" });
    const p = plan(d, [groupPod(0, 0, { node: "a" })], false);
    expect(p.lws).toBeUndefined();
    expect(p.status.groups?.ready).toBe(0);
  });

  it("Recommend fills status.recommendation: GPUs, groups, reason and message, as for Disaggregated", () => {
    const d = deployment({ minShards: 16, maxShards: 48, shards: 20, mode: "Recommend" });
    const p = plan(d, [], false);
    expect(p.status.recommendation).toMatchObject({
      shards: 32,
      gpus: 32,
      groups: 2,
      reason: "ManualOverride",
      placementHash: p.placement.hash,
    });
    expect(p.status.recommendation?.message).toMatch(/^2 EP group\(s\) of 16 GPUs: /);
    // Unchanged at the next reconcile: the same object, time included (no status write at rest).
    const again = plan({ ...d, status: p.status }, [], false);
    expect(again.status.recommendation).toEqual(p.status.recommendation);
  });

  describe("status parity with Disaggregated (the shared condition, status and event builders)", () => {
    const cond = (p: ReturnType<typeof plan>, type: string) => p.status.conditions?.find((c) => c.type === type);
    const withStatus = (d: MoEDeployment, status: MoEDeployment["status"]): MoEDeployment => ({ ...d, status });

    it("MetricsAvailable False and SLOMet Unknown without readings; BudgetExceeded False without a budget", () => {
      const p = plan(deployment({ minShards: 16, maxShards: 48 }), []);
      expect(cond(p, "MetricsAvailable")).toMatchObject({ status: "False" });
      expect(cond(p, "SLOMet")).toMatchObject({ status: "Unknown", reason: "MetricsUnavailable" });
      expect(cond(p, "BudgetExceeded")).toMatchObject({ status: "False", reason: "NoBudget" });
    });

    it("SLOMet compares the observed p99 to the target and names groups not yet Ready", () => {
      const d = deployment({ minShards: 16, maxShards: 48, targetLatencyMs: 100 });
      const above = plan(d, [groupPod(0, 0, { node: "a" }), groupPod(0, 1, { node: "b", ready: false })], true, {
        p99Ms: 150,
      });
      expect(cond(above, "SLOMet")).toMatchObject({ status: "False", reason: "AboveTarget" });
      expect(cond(above, "SLOMet")!.message).toMatch(/1 EP group\(s\) not yet Ready/);
      const within = plan(d, [groupPod(0, 0, { node: "a" }), groupPod(0, 1, { node: "b" })], true, { p99Ms: 40 });
      expect(cond(within, "SLOMet")).toMatchObject({ status: "True", reason: "WithinTarget" });
      expect(within.status.latency).toMatchObject({ observedMs: 40, targetMs: 100 });
    });

    it("SLOMet names the GPUs missing in groups CapacityPending, as for shards: False while met, in the reason when above", () => {
      const d0 = deployment({
        minShards: 16,
        maxShards: 48,
        shards: 48,
        pendingTimeoutSeconds: 60,
        targetLatencyMs: 100,
      });
      const d = withStatus(d0, { groups: { desired: 3, ready: 0, gpusPerGroup: 16 } });
      const pods = [
        groupPod(0, 0, { node: "n0" }),
        groupPod(0, 1, { node: "n1" }),
        groupPod(1, 0, { node: "n2" }),
        groupPod(1, 1, { node: "n3" }),
        groupPod(2, 0, { node: "n4" }),
        groupPod(2, 1, { ageS: 90 }),
      ];
      const named =
        /8 nvidia\.com\/gpu( on nodes with \S+)? missing: 1 EP group\(s\) not fully scheduled after 60 s \(group 2: 8\)/;
      const met = plan(d, pods, true, { p99Ms: 40 });
      expect(cond(met, "CapacityPending")).toMatchObject({ status: "True" });
      expect(cond(met, "SLOMet")).toMatchObject({ status: "False", reason: "InsufficientGpuCapacity" });
      expect(cond(met, "SLOMet")!.message).toMatch(named);
      const above = plan(d, pods, true, { p99Ms: 150 });
      expect(cond(above, "SLOMet")).toMatchObject({ status: "False", reason: "AboveTarget" });
      expect(cond(above, "SLOMet")!.message).toMatch(named);
      // Pending for less than the timeout, with a node that has room for it: not missing (warming), the SLO is met.
      const d600 = withStatus(
        deployment({ minShards: 16, maxShards: 48, shards: 48, pendingTimeoutSeconds: 600, targetLatencyMs: 100 }),
        d.status,
      );
      const young = plan(d600, pods, true, { p99Ms: 40 }, [gpuNode(d600, "n5")]);
      expect(cond(young, "SLOMet")).toMatchObject({ status: "True", reason: "WithinTarget" });
      expect(cond(young, "SLOMet")!.message).not.toMatch(/missing/);
      // No node has room for it: missing at once, before the timeout, as for shards.
      const noRoom = plan(d600, pods, true, { p99Ms: 40 }, []);
      expect(cond(noRoom, "CapacityPending")).toMatchObject({ status: "False" });
      expect(cond(noRoom, "SLOMet")).toMatchObject({ status: "False", reason: "InsufficientGpuCapacity" });
      expect(cond(noRoom, "SLOMet")!.message).toMatch(
        /8 nvidia\.com\/gpu( on nodes with \S+)? missing: 3 EP group\(s\) of 2 pod\(s\) x 8 GPUs decided, 5 group pod\(s\) bound, room for 0 more/,
      );
    });

    it("SLOMet counts a node's room in whole group pods: two nodes with 4 free GPUs each hold no 8-GPU pod", () => {
      const d = withStatus(
        deployment({ minShards: 16, maxShards: 48, shards: 32, pendingTimeoutSeconds: 600, targetLatencyMs: 100 }),
        { groups: { desired: 2, ready: 1, gpusPerGroup: 16 } },
      );
      const pods = [groupPod(0, 0, { node: "n0" }), groupPod(0, 1, { node: "n1" })];
      const half = (name: string): CachedNode => {
        const n = gpuNode(d, name);
        return { ...n, status: { ...n.status, allocatable: { [d.spec.serving.gpu.resourceName]: "4" } } };
      };
      const missing = plan(d, pods, true, { p99Ms: 40 }, [half("h0"), half("h1")]);
      expect(cond(missing, "SLOMet")!.message).toMatch(/16 nvidia\.com\/gpu( on nodes with \S+)? missing: 2 EP group/);
      const fits = plan(d, pods, true, { p99Ms: 40 }, [gpuNode(d, "f0"), gpuNode(d, "f1")]);
      expect(cond(fits, "SLOMet")).toMatchObject({ status: "True" });
    });

    it("the cost prices each group's GPUs by the nodes its pods run on (spec.cost.priceLabelKey), new ones at the marginal price", () => {
      const base = deployment({ minShards: 16, maxShards: 48, shards: 32 });
      const d = withStatus(
        {
          ...base,
          spec: {
            ...base.spec,
            cost: { ...base.spec.cost, defaultUsdPerGpuHour: 2, priceLabelKey: "example.com/usd-per-gpu-hour" },
          },
        },
        { groups: { desired: 2, ready: 2, gpusPerGroup: 16 } },
      );
      const price = (usd: string) => ({ "example.com/usd-per-gpu-hour": usd });
      const nodes = [
        gpuNode(d, "n0", price("3")),
        gpuNode(d, "n1", price("3")),
        gpuNode(d, "n2", price("1.5")),
        gpuNode(d, "n3"),
      ];
      const pods = [
        groupPod(0, 0, { node: "n0" }),
        groupPod(0, 1, { node: "n1" }),
        groupPod(1, 0, { node: "n2" }),
        groupPod(1, 1, { node: "n3" }), // no price label: the default
      ];
      const held = plan(d, pods, true, {}, nodes);
      expect(held.decision.groups).toBe(2);
      expect(held.status.cost?.usdPerHour).toBe(8 * 3 + 8 * 3 + 8 * 1.5 + 8 * 2);
      expect(held.verdict.usdPerHourDesired).toBe(76);
      // One more group: its GPUs are not on a node yet, at the marginal price (the cheapest node
      // with a free GPU: this harness reads no pod GPUs, so every node here has free GPUs), as a
      // scale-up is priced for the budget.
      const free = [gpuNode(d, "n4", price("1.25")), gpuNode(d, "n5", price("4"))];
      const bigger = { ...d, spec: { ...d.spec, scaling: { ...d.spec.scaling, shards: 48 } } };
      const up = plan(bigger, pods, true, {}, [...nodes, ...free]);
      expect(up.verdict.usdPerHourDesired).toBe(76 + 16 * 1.25);
      // Without node readings every GPU is at the default price, as before.
      expect(plan(d, pods).status.cost?.usdPerHour).toBe(32 * 2);
    });

    it("BudgetExceeded True when the budget cannot pay for the minimum groups", () => {
      const p = plan(deployment({ minShards: 32, maxShards: 48, maxUsdPerHour: 1 }), []);
      expect(cond(p, "BudgetExceeded")).toMatchObject({ status: "True" });
    });

    it("status.lastScale and a ScaledUp event when the decided GPUs change (Auto only)", () => {
      const d = withStatus(deployment({ minShards: 16, maxShards: 48, shards: 32 }), { desiredShards: 16 });
      const p = plan(d, []);
      expect(p.status.lastScale).toMatchObject({ fromShards: 16, toShards: 32, reason: "ManualOverride" });
      expect(wideEPEvents(d.status, p, true).map((e) => e.reason)).toContain("ScaledUp");
      const rec = plan(d, [], false);
      expect(rec.status.lastScale).toBeUndefined();
      expect(wideEPEvents(d.status, rec, false).map((e) => e.reason)).not.toContain("ScaledUp");
    });

    it("a condition turning bad is a Warning event, as for Disaggregated", () => {
      const d = deployment({ minShards: 16, maxShards: 48 });
      const p = plan(d, []);
      expect(wideEPEvents(undefined, p, true)).toContainEqual(
        expect.objectContaining({ type: "Warning", reason: "StaleData" }),
      );
      // Nothing new at the next reconcile: no event.
      expect(wideEPEvents(p.status, plan(withStatus(d, p.status), []), true)).toEqual([]);
    });
  });

  describe("lwsToApply: the LeaderWorkerSet is written only when the live one differs", () => {
    const want = () => plan(deployment({ minShards: 16, maxShards: 48 }), []).lws!;

    it("applies when there is none, stamped with its content hash", () => {
      const a = lwsToApply(want(), undefined)!;
      expect(a.metadata?.annotations?.["moe.dev/applied-hash"]).toMatch(/^[0-9a-f]+$/);
    });

    it("nothing to apply when the live one carries the same hash and was not edited (server defaults aside)", () => {
      const applied = lwsToApply(want(), undefined)!;
      const live = { ...applied, metadata: { ...applied.metadata, resourceVersion: "7", generation: 2 } };
      expect(lwsToApply(want(), live)).toBeUndefined();
    });

    it("applies again when replicas were edited by hand, the rendering changed, or the live one is being deleted", () => {
      const applied = lwsToApply(want(), undefined)!;
      const edited = { ...applied, spec: { ...applied.spec, replicas: 3 } };
      expect(lwsToApply(want(), edited)?.spec.replicas).toBe(1);
      const two = plan(deployment({ minShards: 32, maxShards: 48 }), []).lws!;
      expect(lwsToApply(two, applied)?.spec.replicas).toBe(2);
      const deleting = { ...applied, metadata: { ...applied.metadata, deletionTimestamp: new Date() } };
      expect(lwsToApply(want(), deleting)).toBeDefined();
    });

    it("names a hand edit (DriftCorrected), not a new decision, a deletion or a first apply", () => {
      const applied = lwsToApply(want(), undefined)!;
      const edited = { ...applied, spec: { ...applied.spec, replicas: 3 } };
      expect(lwsHandEdit(want(), edited)).toBe("replicas 3, want 1");
      expect(lwsHandEdit(want(), applied)).toBeUndefined();
      expect(lwsHandEdit(want(), undefined)).toBeUndefined();
      // The operator decided 2 groups: the difference is its own, not someone else's.
      const two = plan(deployment({ minShards: 32, maxShards: 48 }), []).lws!;
      expect(lwsHandEdit(two, applied)).toBeUndefined();
      const deleting = { ...edited, metadata: { ...edited.metadata, deletionTimestamp: new Date() } };
      expect(lwsHandEdit(want(), deleting)).toBeUndefined();
    });
  });
});
