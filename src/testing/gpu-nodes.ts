// Declarative fake GPU nodes for kwok: a pool spec expands into Node objects
// carrying `nvidia.com/gpu` capacity and the labels the operator reads.
import type { V1Node, V1Taint } from "@kubernetes/client-node";

/** Label keys put on fake GPU nodes (GPU feature discovery names where they exist). */
export const NodeLabels = {
  gpuProduct: "nvidia.com/gpu.product",
  gpuMemoryMiB: "nvidia.com/gpu.memory",
  gpuCount: "nvidia.com/gpu.count",
  nodePool: "moe.dev/node-pool",
  priceUsdPerGpuHour: "moe.dev/price-usd-per-gpu-hour",
  topologyDomain: "moe.dev/topology-domain",
  zone: "topology.kubernetes.io/zone",
  instanceType: "node.kubernetes.io/instance-type",
  kwokType: "type",
} as const;

export interface GpuNodePool {
  /** Pool name, also the node name prefix (`<pool>-0`, `<pool>-1`, ...). */
  pool: string;
  count: number;
  gpusPerNode: number;
  /** GPU product label, e.g. "NVIDIA-H100-80GB-HBM3". */
  gpuProduct: string;
  gpuMemoryMiB: number;
  priceUsdPerGpuHour: number;
  /** Nodes per topology domain (NVLink/rack); default: all nodes of the pool in one domain. */
  nodesPerDomain?: number;
  zone?: string;
  instanceType?: string;
  cpu?: string;
  memory?: string;
  labels?: Record<string, string>;
  taints?: V1Taint[];
  gpuResourceName?: string;
}

export const DEFAULT_GPU_RESOURCE = "nvidia.com/gpu";

export function gpuNodesFor(pools: GpuNodePool[]): V1Node[] {
  const nodes: V1Node[] = [];
  const seen = new Set<string>();
  for (const p of pools) {
    if (!/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(p.pool))
      throw new Error(`gpu pool name "${p.pool}" is not a DNS label`);
    if (seen.has(p.pool)) throw new Error(`gpu pool "${p.pool}" declared twice`);
    seen.add(p.pool);
    if (!Number.isInteger(p.count) || p.count < 0)
      throw new Error(`gpu pool "${p.pool}": count must be a non-negative integer`);
    if (!Number.isInteger(p.gpusPerNode) || p.gpusPerNode < 0)
      throw new Error(`gpu pool "${p.pool}": gpusPerNode must be a non-negative integer`);
    const perDomain = p.nodesPerDomain ?? p.count;
    const resource = p.gpuResourceName ?? DEFAULT_GPU_RESOURCE;
    for (let i = 0; i < p.count; i++) {
      const capacity: Record<string, string> = {
        cpu: p.cpu ?? "128",
        memory: p.memory ?? "1Ti",
        pods: "110",
        "ephemeral-storage": "1Ti",
        [resource]: String(p.gpusPerNode),
      };
      nodes.push({
        apiVersion: "v1",
        kind: "Node",
        metadata: {
          name: `${p.pool}-${i}`,
          annotations: { "kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0" },
          labels: {
            "kubernetes.io/hostname": `${p.pool}-${i}`,
            "kubernetes.io/os": "linux",
            "kubernetes.io/arch": "amd64",
            [NodeLabels.kwokType]: "kwok",
            [NodeLabels.gpuProduct]: p.gpuProduct,
            [NodeLabels.gpuMemoryMiB]: String(p.gpuMemoryMiB),
            [NodeLabels.gpuCount]: String(p.gpusPerNode),
            [NodeLabels.nodePool]: p.pool,
            [NodeLabels.priceUsdPerGpuHour]: p.priceUsdPerGpuHour.toFixed(2),
            [NodeLabels.topologyDomain]: `${p.pool}-d${Math.floor(i / Math.max(1, perDomain))}`,
            [NodeLabels.zone]: p.zone ?? "local-a",
            [NodeLabels.instanceType]: p.instanceType ?? `${p.gpusPerNode}x-${p.gpuProduct}`,
            ...p.labels,
          },
        },
        spec: { taints: p.taints ?? [] },
        status: { capacity, allocatable: { ...capacity } },
      });
    }
  }
  return nodes;
}

/** The demo's fleet: 4 x 8-GPU H100-class and 4 x 8-GPU H200-class nodes. */
export const DEMO_GPU_POOLS: GpuNodePool[] = [
  {
    pool: "h100",
    count: 4,
    gpusPerNode: 8,
    gpuProduct: "NVIDIA-H100-80GB-HBM3",
    gpuMemoryMiB: 81_559,
    priceUsdPerGpuHour: 2.0,
    nodesPerDomain: 2,
    instanceType: "gpu-8x-h100",
  },
  {
    pool: "h200",
    count: 4,
    gpusPerNode: 8,
    gpuProduct: "NVIDIA-H200-141GB-HBM3e",
    gpuMemoryMiB: 143_771,
    priceUsdPerGpuHour: 3.5,
    nodesPerDomain: 2,
    instanceType: "gpu-8x-h200",
  },
];

/**
 * `count` 8-GPU nodes in one pool, one topology domain: the nodes a wide-EP group spans
 * (one engine pod asking all 8 GPUs per node, on LeaderWorkerSet).
 */
export function eightGpuPool(pool: string, count: number): GpuNodePool {
  return {
    pool,
    count,
    gpusPerNode: 8,
    gpuProduct: "NVIDIA-H200-141GB-HBM3e",
    gpuMemoryMiB: 143_771,
    priceUsdPerGpuHour: 3.5,
    instanceType: "gpu-8x-h200",
  };
}
