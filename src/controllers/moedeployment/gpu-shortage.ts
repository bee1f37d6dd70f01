// GPU capacity the decision wants but the cluster does not give: shards with no
// free GPU on a matching node, and shard pods the scheduler left Pending.
import type { MoEDeployment } from "../../api/schema.ts";
import type { Decision } from "../../domain/decide.ts";
import { countUncovered, type DesiredShard, type ShardPodView } from "../../domain/rollout/index.ts";

export interface MissingCapacity {
  /** GPUs (one per shard) missing. */
  readonly gpuCount: number;
  readonly message: string;
}

export function missingGpuCapacity(spec: MoEDeployment["spec"], decision: Decision, pods: readonly ShardPodView[]): MissingCapacity | undefined {
  const pending = pods.filter((p) => p.unschedulable && !p.ready && !p.terminating && p.drainStartedMs === undefined).length;
  const gpuCount = Math.max(decision.unschedulableShards, pending);
  if (gpuCount === 0) return undefined;
  const gpu = spec.serving.gpu;
  const selector = Object.entries(gpu.nodeSelector ?? {}).map(([k, v]) => `${k}=${v}`).join(",");
  const type = `${gpu.resourceName}${selector ? ` on nodes with ${selector}` : ""}`;
  return {
    gpuCount,
    message: `${gpuCount} ${type} missing: ${pending} shard pod(s) Pending (unschedulable), ${decision.unschedulableShards} of ${decision.desiredShards} desired shards without a free GPU`,
  };
}

/** The shard would hold a (layer, expert) that no Ready pod holds now. */
export function restoresCoverage(shard: DesiredShard, readyPods: readonly Pick<ShardPodView, "experts">[], layerCount: number, expertCount: number): boolean {
  return countUncovered([...readyPods, shard], layerCount, expertCount) < countUncovered(readyPods, layerCount, expertCount);
}
