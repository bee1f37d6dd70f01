// The ClusterProvider seam: local processes (exercised everywhere), an existing
// cluster via kubeconfig (exercised against a local one), and K3s through
// testcontainers where a container engine and the image are available.
import { describe, expect, it } from "vitest";
import { CoreV1Api } from "@kubernetes/client-node";
import { k3sProvider, kubeconfigProvider, localProcessProvider } from "../../src/testing/providers.ts";

describe("cluster providers", () => {
  it("local provider starts a cluster and the kubeconfig provider attaches to it", async () => {
    expect(await localProcessProvider.availability()).toEqual({ available: true });
    const local = await localProcessProvider.start({
      name: "providers",
      gpuNodes: [
        {
          pool: "a100",
          count: 1,
          gpusPerNode: 4,
          gpuProduct: "NVIDIA-A100-SXM4-80GB",
          gpuMemoryMiB: 81920,
          priceUsdPerGpuHour: 1.2,
        },
      ],
    });
    try {
      const existing = kubeconfigProvider(local.kubeconfigPath);
      expect(await existing.availability()).toEqual({ available: true });
      const attached = await existing.start();
      const nodes = await attached.kubeConfig.makeApiClient(CoreV1Api).listNode();
      expect(nodes.items.map((n) => n.metadata!.name)).toContain("a100-0");
      await expect(attached.addGpuNodes([])).rejects.toThrow(/kwok/);
      await attached.stop(); // must not stop the cluster it did not start
      const again = await local.kubeConfig.makeApiClient(CoreV1Api).listNode();
      expect(again.items.length).toBe(1);
    } finally {
      await local.stop();
    }
  });

  it("kubeconfig provider says why it is unavailable", async () => {
    expect(await kubeconfigProvider(undefined).availability()).toEqual({
      available: false,
      reason: "KUBECONFIG is not set",
    });
    const r = await kubeconfigProvider("/nonexistent/kubeconfig").availability();
    expect(r.available).toBe(false);
  });

  it("k3s provider runs where a container engine is available, else skips with the reason", async (ctx) => {
    const provider = k3sProvider();
    const a = await provider.availability();
    if (!a.available) {
      console.log(`skipping K3s provider: ${a.reason}`);
      ctx.skip(`K3s provider unavailable: ${a.reason}`);
      return;
    }
    const k3s = await provider.start();
    try {
      const nodes = await k3s.kubeConfig.makeApiClient(CoreV1Api).listNode();
      expect(nodes.items.length).toBeGreaterThan(0);
    } finally {
      await k3s.stop();
    }
  }, 300_000);
});
