import type { LocalCluster } from "../../src/testing/cluster.ts";
import { waitFor } from "../../src/testing/http-probe.ts";

export interface MoedStatus {
  observedGeneration?: number;
  currentShards?: number;
  desiredShards?: number;
  currentGpus?: number;
  desiredGpus?: number;
  conditions?: { type: string; status: string; reason: string; message: string }[];
  placement?: {
    version: number;
    hash: string;
    configMapName?: string;
    movedFraction?: number;
    movedBytes?: number;
    estimatedMoveSeconds?: number;
    moveChunks?: number;
    maxMoveStallSeconds?: number;
    balancedness?: number;
    lastRebalanceTime?: string;
  };
  cost?: { usdPerHour: number };
  latency?: { observedMs?: number; targetMs: number; sampleTime?: string };
  lastScale?: { fromShards: number; toShards: number; reason: string };
  recommendation?: { shards: number; gpus?: number; groups?: number; reason: string; message?: string };
  gitops?: { trackingSince: string; atMaxSince?: string; commitTimes?: string[]; pullRequestUrl?: string };
}

export async function getJson<T>(cluster: LocalCluster, args: string[]): Promise<T> {
  const r = await cluster.kubectl([...args, "-o", "json"]);
  if (r.code !== 0) throw new Error(`kubectl ${args.join(" ")}: ${r.stderr}`);
  return JSON.parse(r.stdout) as T;
}

export async function moedStatus(cluster: LocalCluster, name: string, namespace = "default"): Promise<MoedStatus> {
  const o = await getJson<{ status?: MoedStatus }>(cluster, ["get", "moed", name, "-n", namespace]);
  return o.status ?? {};
}

export function condition(s: MoedStatus, type: string) {
  return s.conditions?.find((c) => c.type === type);
}

export async function waitForStatus(
  cluster: LocalCluster,
  name: string,
  what: string,
  pred: (s: MoedStatus) => boolean,
  timeoutMs = 90_000,
): Promise<MoedStatus> {
  let last: MoedStatus = {};
  return waitFor(
    what,
    async () => {
      last = await moedStatus(cluster, name);
      return pred(last) ? last : undefined;
    },
    { timeoutMs, intervalMs: 500, onTimeout: () => `last status: ${JSON.stringify(last, null, 1).slice(0, 3000)}` },
  );
}

export async function applyJson(cluster: LocalCluster, obj: unknown): Promise<void> {
  const r = await cluster.kubectl(["apply", "--server-side", "--force-conflicts", "--field-manager=test", "-f", "-"], {
    input: JSON.stringify(obj),
  });
  if (r.code !== 0) throw new Error(`apply failed: ${r.stderr}`);
}

export interface PodSummary {
  name: string;
  shardIndex: number;
  setHash: string;
  ready: boolean;
  node?: string;
  owner?: string;
  draining: boolean;
  terminating: boolean;
}

export async function shardPods(cluster: LocalCluster, name: string): Promise<PodSummary[]> {
  const list = await getJson<{
    items: {
      metadata: {
        name: string;
        labels: Record<string, string>;
        annotations?: Record<string, string>;
        ownerReferences?: { name: string; controller?: boolean }[];
        deletionTimestamp?: string;
      };
      spec: { nodeName?: string };
      status: { phase?: string; conditions?: { type: string; status: string }[] };
    }[];
  }>(cluster, ["get", "pods", "-l", `moe.dev/deployment=${name},moe.dev/component=expert-shard`]);
  return list.items.map((p) => ({
    name: p.metadata.name,
    shardIndex: Number(p.metadata.labels["moe.dev/shard-index"]),
    setHash: p.metadata.labels["moe.dev/expert-set-hash"] ?? "",
    ready:
      p.status.phase === "Running" && !!p.status.conditions?.some((c) => c.type === "Ready" && c.status === "True"),
    node: p.spec.nodeName,
    owner: p.metadata.ownerReferences?.find((o) => o.controller)?.name,
    draining: p.metadata.annotations?.["moe.dev/draining-since"] !== undefined,
    terminating: p.metadata.deletionTimestamp !== undefined,
  }));
}
