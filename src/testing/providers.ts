// The ClusterProvider seam: tests and the demo ask for "a cluster" and get one
// from local processes (default, CI), an existing cluster (KUBECONFIG), or K3s
// in a container via testcontainers (machines with a container engine).
import { mkdtempSync, writeFileSync, rmSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { KubeConfig } from "@kubernetes/client-node";
import { kubectlWith, startCluster, type KubectlResult, type StartClusterOptions } from "./cluster.ts";
import type { GpuNodePool } from "./gpu-nodes.ts";
import { controlPlaneBins } from "./bins.ts";

export type ClusterProviderName = "local" | "kubeconfig" | "k3s";

export interface ClusterHandle {
  readonly provider: ClusterProviderName;
  readonly kubeconfigPath: string;
  readonly kubeConfig: KubeConfig;
  /** Fake GPU nodes need kwok managing them; false where the provider cannot promise that. */
  readonly supportsFakeGpuNodes: boolean;
  kubectl(args: string[], opts?: { input?: string }): Promise<KubectlResult>;
  addGpuNodes(pools: GpuNodePool[]): Promise<void>;
  stop(): Promise<void>;
}

export type Availability = { available: true } | { available: false; reason: string };

export interface ClusterProvider {
  readonly name: ClusterProviderName;
  availability(): Promise<Availability>;
  start(opts?: StartClusterOptions): Promise<ClusterHandle>;
}

/** Local processes: etcd, kube-apiserver, scheduler, controller-manager, kwok. */
export const localProcessProvider: ClusterProvider = {
  name: "local",
  async availability() {
    try {
      controlPlaneBins();
      return { available: true };
    } catch (err) {
      return { available: false, reason: `control-plane binaries unavailable: ${(err as Error).message}` };
    }
  },
  async start(opts) {
    const c = await startCluster(opts);
    return {
      provider: "local",
      kubeconfigPath: c.kubeconfigPath,
      kubeConfig: c.kubeConfig,
      supportsFakeGpuNodes: true,
      kubectl: c.kubectl,
      async addGpuNodes(pools) {
        await c.addGpuNodes(pools);
      },
      stop: c.stop,
    };
  },
};

/** An existing cluster from a kubeconfig file; never stopped by us. */
export function kubeconfigProvider(kubeconfigPath: string | undefined): ClusterProvider {
  return {
    name: "kubeconfig",
    async availability() {
      if (!kubeconfigPath) return { available: false, reason: "KUBECONFIG is not set" };
      if (!existsSync(kubeconfigPath))
        return { available: false, reason: `kubeconfig ${kubeconfigPath} does not exist` };
      return { available: true };
    },
    async start() {
      if (!kubeconfigPath) throw new Error("kubeconfig provider: KUBECONFIG is not set");
      const kc = new KubeConfig();
      kc.loadFromFile(kubeconfigPath);
      return {
        provider: "kubeconfig",
        kubeconfigPath,
        kubeConfig: kc,
        supportsFakeGpuNodes: false,
        kubectl: kubectlWith(process.env.KUBECTL ?? "kubectl", kubeconfigPath),
        async addGpuNodes() {
          throw new Error(
            "kubeconfig provider: fake GPU nodes need kwok in that cluster; create GPU nodes there yourself",
          );
        },
        async stop() {},
      };
    },
  };
}

export const DEFAULT_K3S_IMAGE = "rancher/k3s:v1.36.1-k3s1";

/** K3s in a container (testcontainers). Needs a Docker-compatible engine and the image locally. */
export function k3sProvider(image = DEFAULT_K3S_IMAGE): ClusterProvider {
  return {
    name: "k3s",
    async availability() {
      try {
        const { getContainerRuntimeClient, ImageName } = await import("testcontainers");
        const client = await getContainerRuntimeClient();
        const info = client.info.containerRuntime;
        const present = await client.image.exists(ImageName.fromString(image)).catch(() => false);
        if (!present) {
          return {
            available: false,
            reason: `container engine found (${info.host}) but image ${image} is not present and cannot be pulled here`,
          };
        }
        return { available: true };
      } catch (err) {
        return {
          available: false,
          reason: `no container engine reachable by testcontainers: ${firstLine((err as Error).message)}`,
        };
      }
    },
    async start() {
      const { K3sContainer } = await import("@testcontainers/k3s");
      const container = await new K3sContainer(image).start();
      const dir = mkdtempSync(join(tmpdir(), "moe-k3s-"));
      const kubeconfigPath = join(dir, "kubeconfig");
      writeFileSync(kubeconfigPath, container.getKubeConfig(), { mode: 0o600 });
      const kc = new KubeConfig();
      kc.loadFromFile(kubeconfigPath);
      let kubectlBin = process.env.KUBECTL ?? "kubectl";
      try {
        kubectlBin = controlPlaneBins().kubectl;
      } catch {
        /* fall back to kubectl on PATH */
      }
      return {
        provider: "k3s",
        kubeconfigPath,
        kubeConfig: kc,
        supportsFakeGpuNodes: false,
        kubectl: kubectlWith(kubectlBin, kubeconfigPath),
        async addGpuNodes() {
          throw new Error("k3s provider: fake GPU nodes need kwok; not wired for K3s");
        },
        async stop() {
          await container.stop();
          rmSync(dir, { recursive: true, force: true });
        },
      };
    },
  };
}

function firstLine(s: string): string {
  return s.split("\n")[0] ?? s;
}

/** Choose a provider by name (MOE_CLUSTER_PROVIDER in tests; default "local"). */
export function clusterProvider(name: string | undefined, env: { kubeconfig?: string } = {}): ClusterProvider {
  switch (name ?? "local") {
    case "local":
      return localProcessProvider;
    case "kubeconfig":
      return kubeconfigProvider(env.kubeconfig);
    case "k3s":
      return k3sProvider();
    default:
      throw new Error(`unknown cluster provider "${name}" (expected local, kubeconfig or k3s)`);
  }
}
