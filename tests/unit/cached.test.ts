// The projections the operator caches its own pods and nodes through: what the reconciler reads
// of a projected object equals what it reads of the whole object, and the rest is dropped. (The
// reconciler's caches are typed with the projected types, so tsc proves no other field is read;
// the reconciler unit tests run on projected pods and nodes through the harness.)
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import type { V1Node, V1Pod } from "@kubernetes/client-node";
import { parseMoEDeployment, type MoEDeployment } from "../../src/api/index.ts";
import {
  readShardPod,
  renderShardPod,
  ShardAnnotation,
  PLACEMENT_APPLIED_CONDITION,
} from "../../src/controllers/moedeployment/codecs/shard-pod.ts";
import { projectNode, projectPod } from "../../src/controllers/moedeployment/cached.ts";
import { gpuSupply, newColdStarts, nodeViews, readySince } from "../../src/controllers/moedeployment/observe.ts";
import { testMoEDeployment } from "../support/moe-fixtures.ts";

function deployment(): MoEDeployment {
  const r = parseMoEDeployment(testMoEDeployment("tiny", "default"));
  if (!r.ok) throw new Error("fixture does not parse", { cause: r.issues });
  return { ...r.value, metadata: { ...r.value.metadata, uid: "u-1" } };
}

/** A shard pod as the API server returns it: rendered, then bound, running, with the status kubelet writes. */
function livePod(o: { ready: boolean; inPlace?: boolean; draining?: boolean; deleting?: boolean }): V1Pod {
  const pod = renderShardPod(deployment(), {
    shardIndex: 3,
    experts: [[1, 5], [3]],
    setHash: "0123456789abcdef",
    placementVersion: 4,
    placementHash: "h",
    preferredNode: "node-b",
    inPlace: o.inPlace ? { nowIso: "2026-06-01T12:00:00Z" } : undefined,
  });
  const m = pod.metadata!;
  m.uid = "pod-uid";
  m.resourceVersion = "42";
  m.creationTimestamp = new Date("2026-06-01T12:00:00Z");
  m.managedFields = [{ manager: "moe-operator", operation: "Apply", fieldsV1: { f: "x".repeat(2000) } }];
  if (o.draining) m.annotations![ShardAnnotation.drainingSince] = "2026-06-01T12:01:00Z";
  if (o.deleting) m.deletionTimestamp = new Date("2026-06-01T12:02:00Z");
  pod.spec!.nodeName = "node-b";
  pod.status = {
    phase: "Running",
    hostIP: "10.0.0.2",
    podIP: "10.1.0.7",
    startTime: new Date("2026-06-01T12:00:01Z"),
    qosClass: "BestEffort",
    conditions: [
      { type: "PodScheduled", status: "True", lastTransitionTime: new Date("2026-06-01T12:00:00Z") },
      {
        type: "Ready",
        status: o.ready ? "True" : "False",
        reason: o.ready ? undefined : "ContainersNotReady",
        lastTransitionTime: new Date("2026-06-01T12:00:30Z"),
      },
      {
        type: PLACEMENT_APPLIED_CONDITION,
        status: "True",
        reason: "Applied",
        message: "serving generation 1",
        lastTransitionTime: new Date("2026-06-01T12:00:20Z"),
      },
    ],
    containerStatuses: [
      {
        name: "expert",
        image: "example.invalid/expert:1",
        imageID: "sha256:abc",
        ready: o.ready,
        restartCount: 0,
        started: true,
        state: { running: { startedAt: new Date("2026-06-01T12:00:05Z") } },
      },
    ],
  };
  return pod;
}

function node(name: string, gpus: number, ready: boolean, unschedulable?: boolean): V1Node {
  return {
    apiVersion: "v1",
    kind: "Node",
    metadata: {
      name,
      uid: `uid-${name}`,
      resourceVersion: "9",
      labels: { "kubernetes.io/hostname": name, "topology.kubernetes.io/zone": "z1" },
      annotations: { "node.alpha.kubernetes.io/ttl": "0", big: "x".repeat(3000) },
      managedFields: [{ manager: "kubelet" }],
    },
    spec: { unschedulable, podCIDR: "10.1.0.0/24", taints: [{ key: "k", effect: "NoSchedule" }] },
    status: {
      allocatable: { cpu: "32", "nvidia.com/gpu": String(gpus) },
      capacity: { cpu: "32", "nvidia.com/gpu": String(gpus) },
      conditions: [
        { type: "MemoryPressure", status: "False", reason: "KubeletHasSufficientMemory", message: "m".repeat(80) },
        { type: "Ready", status: ready ? "True" : "False", reason: "KubeletReady", message: "kubelet is posting" },
      ],
      addresses: [{ type: "InternalIP", address: "10.0.0.2" }],
      images: [{ names: ["registry.example/some/image:1"], sizeBytes: 1 }],
      nodeInfo: {
        architecture: "amd64",
        bootID: "b",
        containerRuntimeVersion: "c",
        kernelVersion: "k",
        kubeProxyVersion: "p",
        kubeletVersion: "v",
        machineID: "m",
        operatingSystem: "linux",
        osImage: "o",
        systemUUID: "s",
      },
    },
  };
}

/** Own properties holding undefined (the projections leave absent fields absent). */
function undefinedProps(o: unknown, path = ""): string[] {
  if (o === null || typeof o !== "object" || o instanceof Date) return [];
  return Object.entries(o).flatMap(([k, v]) => (v === undefined ? [`${path}${k}`] : undefinedProps(v, `${path}${k}.`)));
}

const variants = [
  { ready: true },
  { ready: false },
  { ready: true, inPlace: true },
  { ready: true, draining: true },
  { ready: true, deleting: true },
];

describe("projectPod", () => {
  it.each(variants)("reads back the same shard pod as the whole object (%o)", (v) => {
    const whole = livePod(v);
    const projected = projectPod(structuredClone(whole));
    const { pod: _wp, ...fromWhole } = readShardPod(whole)!;
    const { pod: _pp, ...fromProjected } = readShardPod(projected)!;
    expect(fromProjected).toEqual(fromWhole);
    expect(newColdStarts([projected], new Set())).toEqual(newColdStarts([whole], new Set()));
    expect(readySince([projected], 0, 0)).toEqual(readySince([whole], 0, 0));
    expect(projected.spec?.nodeName).toBe("node-b");
    expect(projected.metadata?.ownerReferences).toEqual(whole.metadata?.ownerReferences);
    expect(projected.metadata?.resourceVersion).toBe("42");
    expect(undefinedProps(projected)).toEqual([]);
  });

  it("drops the pod spec, container statuses and managedFields", () => {
    const projected = projectPod(livePod({ ready: true })) as Record<string, unknown> & V1Pod;
    expect(Object.keys(projected.spec ?? {})).toEqual(["nodeName"]);
    expect(Object.keys(projected.status ?? {}).sort()).toEqual(["conditions", "phase", "podIP"]);
    expect(projected.metadata?.managedFields).toBeUndefined();
    expect(JSON.stringify(projected).length).toBeLessThan(JSON.stringify(livePod({ ready: true })).length / 2);
  });

  it("keeps the operator's affinity term only on a pod written before the preferred-node annotation", () => {
    const old = livePod({ ready: true });
    delete old.metadata!.annotations![ShardAnnotation.preferredNode];
    const projected = projectPod(old);
    expect(readShardPod(projected)?.preferredNode).toBe("node-b");
    expect(projectPod(livePod({ ready: true })).spec?.affinity).toBeUndefined();
  });

  it("keeps a Pending pod's Unschedulable condition and leaves absent fields absent", () => {
    const pending: V1Pod = {
      metadata: { name: "p", namespace: "ns", labels: { "moe.dev/shard-index": "0", "moe.dev/expert-set-hash": "h" } },
      spec: { containers: [{ name: "c" }] },
      status: {
        phase: "Pending",
        conditions: [{ type: "PodScheduled", status: "False", reason: "Unschedulable", message: "0/3 nodes" }],
      },
    };
    const projected = projectPod(pending);
    expect(readShardPod(projected)?.unschedulable).toBe(true);
    expect(projected.spec).toBeUndefined();
    expect(undefinedProps(projected)).toEqual([]);
  });
});

describe("projectNode", () => {
  it("keeps labels, schedulability, allocatable and the Ready condition only", () => {
    const projected = projectNode(node("n1", 8, true, true));
    expect(projected).toEqual({
      apiVersion: "v1",
      kind: "Node",
      metadata: {
        name: "n1",
        resourceVersion: "9",
        labels: { "kubernetes.io/hostname": "n1", "topology.kubernetes.io/zone": "z1" },
      },
      spec: { unschedulable: true },
      status: { allocatable: { cpu: "32", "nvidia.com/gpu": "8" }, conditions: [{ type: "Ready", status: "True" }] },
    });
  });

  it("gives the same node views and GPU supply as the whole nodes (random fleets)", () => {
    const spec = deployment().spec;
    fc.assert(
      fc.property(
        fc.array(
          fc.record({ gpus: fc.integer({ min: 0, max: 8 }), ready: fc.boolean(), unschedulable: fc.boolean() }),
          { maxLength: 12 },
        ),
        (fleet) => {
          const whole = fleet.map((n, i) => node(`n${i}`, n.gpus, n.ready, n.unschedulable || undefined));
          const projected = whole.map((n) => projectNode(structuredClone(n)));
          expect(nodeViews(spec, projected, [], [])).toEqual(nodeViews(spec, whole, [], []));
          expect(gpuSupply(spec, projected, [], [])).toEqual(gpuSupply(spec, whole, [], []));
          for (const p of projected) expect(undefinedProps(p)).toEqual([]);
        },
      ),
    );
  });
});
