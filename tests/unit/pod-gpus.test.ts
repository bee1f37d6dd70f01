// The lean pod projection used for GPU accounting keeps only node, phase, identity
// and extended-resource requests, and accounts GPUs per node as before.
import { describe, expect, it } from "vitest";
import type { V1Pod } from "@kubernetes/client-node";
import { gpusRequestedByNode, projectPodGpus } from "../../src/controllers/moedeployment/pod-gpus.ts";

const pod = (
  name: string,
  nodeName: string | undefined,
  phase: string,
  gpus: { limit?: string; request?: string }[],
): V1Pod => ({
  metadata: {
    name,
    namespace: "ns",
    uid: `uid-${name}`,
    resourceVersion: "7",
    labels: { big: "x".repeat(1000) },
    annotations: { a: "y".repeat(5000) },
    managedFields: [{ manager: "kubectl" }],
  },
  spec: {
    nodeName,
    containers: gpus.map((g, i) => ({
      name: `c${i}`,
      image: "img",
      env: [{ name: "E", value: "v" }],
      resources: {
        limits: { cpu: "1", ...(g.limit ? { "nvidia.com/gpu": g.limit } : {}) },
        requests: { memory: "1Gi", ...(g.request ? { "nvidia.com/gpu": g.request } : {}) },
      },
    })),
  },
  status: { phase, conditions: [{ type: "Ready", status: "True" }] },
});

describe("projectPodGpus", () => {
  it("keeps namespace, name, uid, resourceVersion, deletionTimestamp, nodeName, phase and extended-resource requests only", () => {
    const deleting = pod("p", "n1", "Running", [{ limit: "2" }, { request: "1" }, {}]);
    deleting.metadata!.deletionTimestamp = new Date(0);
    expect(projectPodGpus(deleting)).toEqual({
      metadata: { namespace: "ns", name: "p", uid: "uid-p", resourceVersion: "7", deletionTimestamp: new Date(0) },
      nodeName: "n1",
      phase: "Running",
      gpuRequests: { "nvidia.com/gpu": 3 },
    });
    expect(JSON.stringify(projectPodGpus(pod("q", undefined, "Pending", [{}])))).toBe(
      '{"metadata":{"namespace":"ns","name":"q","uid":"uid-q","resourceVersion":"7"},"phase":"Pending"}',
    );
  });

  it("counts GPUs per node for bound, unfinished pods (limit before request)", () => {
    const views = [
      pod("a", "n1", "Running", [{ limit: "2", request: "1" }]),
      pod("b", "n1", "Pending", [{ request: "1" }]),
      pod("c", "n2", "Succeeded", [{ limit: "4" }]),
      pod("d", "n2", "Failed", [{ limit: "4" }]),
      pod("e", undefined, "Pending", [{ limit: "8" }]),
      pod("f", "n3", "Running", [{}]),
    ].map(projectPodGpus);
    expect([...gpusRequestedByNode(views, "nvidia.com/gpu")]).toEqual([["n1", 3]]);
    expect([...gpusRequestedByNode(views, "amd.com/gpu")]).toEqual([]);
  });
});
