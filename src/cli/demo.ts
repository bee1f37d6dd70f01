// `make demo`: an embedded local cluster with fake GPU nodes of two kinds.
// Keeps running until Ctrl-C, then stops every process it started.
import { startCluster } from "../testing/cluster.ts";
import { DEMO_GPU_POOLS, NodeLabels } from "../testing/gpu-nodes.ts";

async function main(): Promise<void> {
  console.log("Starting a local Kubernetes control plane (etcd, kube-apiserver, scheduler, controller-manager, kwok)...");
  const cluster = await startCluster({ name: "moe-demo", gpuNodes: DEMO_GPU_POOLS, log: (m) => console.log(`  ${m}`) });
  let stopping = false;
  const shutdown = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    console.log(`\n${signal}: stopping the local cluster...`);
    await cluster.stop();
    console.log("All control-plane processes stopped. Bye.");
    process.exit(0);
  };
  process.on("SIGINT", () => void shutdown("SIGINT"));
  process.on("SIGTERM", () => void shutdown("SIGTERM"));

  const columns = [
    "NAME:.metadata.name",
    `POOL:.metadata.labels.moe\\.dev/node-pool`,
    `GPU:.metadata.labels.nvidia\\.com/gpu\\.product`,
    `GPUS:.status.allocatable.nvidia\\.com/gpu`,
    `USD/GPU-H:.metadata.labels.moe\\.dev/price-usd-per-gpu-hour`,
    `DOMAIN:.metadata.labels.moe\\.dev/topology-domain`,
    "READY:.status.conditions[?(@.type==\"Ready\")].status",
  ].join(",");
  const nodes = await cluster.kubectl(["get", "nodes", "-l", `${NodeLabels.kwokType}=kwok`, "-o", `custom-columns=${columns}`]);
  console.log(`\nControl plane ready in ${(cluster.startupMs / 1000).toFixed(1)} s. GPU nodes:\n`);
  console.log(nodes.stdout || nodes.stderr);
  console.log("Point kubectl at it (in another terminal):");
  console.log(`  export KUBECONFIG=${cluster.kubeconfigPath}`);
  console.log(`  ${cluster.bins.kubectl} get nodes   # version-matched kubectl`);
  console.log("\nRunning. Press Ctrl-C to stop and clean up.");
  if (process.env.MOE_DEMO_EXIT_AFTER_MS) {
    setTimeout(() => void shutdown("timer"), Number(process.env.MOE_DEMO_EXIT_AFTER_MS));
  }
  await new Promise(() => {});
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.stack ?? err.message : err);
  process.exit(1);
});
