import { describe, expect, it } from "vitest";
import { DEMO_GPU_POOLS, gpuNodesFor, NodeLabels } from "../../src/testing/gpu-nodes.ts";

describe("gpuNodesFor", () => {
  it("expands the demo pools into 8 kwok-managed 8-GPU nodes with price and domain labels", () => {
    const nodes = gpuNodesFor(DEMO_GPU_POOLS);
    expect(nodes.map((n) => n.metadata!.name)).toEqual([
      "h100-0",
      "h100-1",
      "h100-2",
      "h100-3",
      "h200-0",
      "h200-1",
      "h200-2",
      "h200-3",
    ]);
    for (const n of nodes) {
      expect(n.metadata!.annotations!["kwok.x-k8s.io/node"]).toBe("fake");
      expect(n.status!.capacity!["nvidia.com/gpu"]).toBe("8");
      expect(n.status!.allocatable).toEqual(n.status!.capacity);
    }
    expect(nodes.map((n) => n.metadata!.labels![NodeLabels.topologyDomain])).toEqual([
      "h100-d0",
      "h100-d0",
      "h100-d1",
      "h100-d1",
      "h200-d0",
      "h200-d0",
      "h200-d1",
      "h200-d1",
    ]);
    expect(nodes[4]!.metadata!.labels![NodeLabels.priceUsdPerGpuHour]).toBe("3.50");
  });

  it("uses a custom GPU resource name", () => {
    const [n] = gpuNodesFor([
      {
        pool: "mi300",
        count: 1,
        gpusPerNode: 8,
        gpuProduct: "AMD-MI300X",
        gpuMemoryMiB: 196608,
        priceUsdPerGpuHour: 2.2,
        gpuResourceName: "amd.com/gpu",
      },
    ]);
    expect(n!.status!.capacity!["amd.com/gpu"]).toBe("8");
    expect(n!.status!.capacity!["nvidia.com/gpu"]).toBeUndefined();
  });

  it.each([
    [{ pool: "Bad_Name", count: 1 }, /DNS label/],
    [{ pool: "neg", count: -1 }, /count must be/],
    [{ pool: "frac", count: 1, gpusPerNode: 1.5 }, /gpusPerNode must be/],
  ])("rejects %o", (override, message) => {
    const base = { pool: "p", count: 1, gpusPerNode: 8, gpuProduct: "x", gpuMemoryMiB: 1, priceUsdPerGpuHour: 1 };
    expect(() => gpuNodesFor([{ ...base, ...override }])).toThrow(message);
  });

  it("rejects a pool declared twice", () => {
    const p = { pool: "p", count: 1, gpusPerNode: 8, gpuProduct: "x", gpuMemoryMiB: 1, priceUsdPerGpuHour: 1 };
    expect(() => gpuNodesFor([p, p])).toThrow(/declared twice/);
  });
});
