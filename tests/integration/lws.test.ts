// The real LeaderWorkerSet controller (sigs.k8s.io/lws, hack/lws) in the local control plane:
// its webhooks are called by the apiserver, it creates the leader StatefulSet and each group's
// worker StatefulSet, the scheduler places 8-GPU pods on kwok 8-GPU nodes, and scaling removes
// whole groups. The only test file that starts LWS (cluster option `lws: true`).
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AppsV1Api, CoreV1Api, type V1Pod } from "@kubernetes/client-node";
import { startCluster, type LocalCluster } from "../../src/testing/cluster.ts";
import { waitFor } from "../../src/testing/http-probe.ts";
import { eightGpuPool } from "../../src/testing/gpu-nodes.ts";

let cluster: LocalCluster;
let core: CoreV1Api;
let apps: AppsV1Api;
const ns = "default";
const NAME_LABEL = "leaderworkerset.sigs.k8s.io/name";
const GROUP_LABEL = "leaderworkerset.sigs.k8s.io/group-index";

interface Lws {
  metadata: { name: string; generation?: number };
  spec: {
    replicas: number;
    leaderWorkerTemplate: { size: number; restartPolicy?: string };
    networkConfig?: { subdomainPolicy?: string };
    rolloutStrategy?: { type?: string };
  };
  status?: { replicas?: number; readyReplicas?: number };
}

function lwsManifest(name: string, replicas: number): object {
  return {
    apiVersion: "leaderworkerset.x-k8s.io/v1",
    kind: "LeaderWorkerSet",
    metadata: { name, namespace: ns },
    spec: {
      replicas,
      leaderWorkerTemplate: {
        size: 2,
        workerTemplate: {
          spec: {
            containers: [
              {
                name: "engine",
                image: "example.invalid/engine:1",
                resources: { limits: { "nvidia.com/gpu": "8" }, requests: { "nvidia.com/gpu": "8" } },
              },
            ],
          },
        },
      },
    },
  };
}

async function kubectlOk(args: string[], input?: string): Promise<string> {
  const r = await cluster.kubectl(args, input === undefined ? {} : { input });
  if (r.code !== 0) throw new Error(`kubectl ${args.join(" ")}: ${r.stderr}`);
  return r.stdout;
}

async function getLws(name: string): Promise<Lws> {
  return JSON.parse(await kubectlOk(["get", "leaderworkerset", name, "-n", ns, "-o", "json"])) as Lws;
}

async function lwsPods(name: string): Promise<V1Pod[]> {
  return (await core.listNamespacedPod({ namespace: ns, labelSelector: `${NAME_LABEL}=${name}` })).items;
}

const isReady = (p: V1Pod) =>
  p.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True") === true &&
  !p.metadata?.deletionTimestamp;

beforeAll(async () => {
  cluster = await startCluster({ name: "lws", lws: true, gpuNodes: [eightGpuPool("ep", 4)] });
  core = cluster.kubeConfig.makeApiClient(CoreV1Api);
  apps = cluster.kubeConfig.makeApiClient(AppsV1Api);
  console.log(`control plane with LWS ready in ${cluster.startupMs} ms`);
});

afterAll(async () => {
  await cluster?.stop();
});

describe("LeaderWorkerSet controller in the local cluster", () => {
  it("the validating webhook rejects an invalid LeaderWorkerSet with the server's message", async () => {
    // The CRD schema accepts this name; the LWS webhook requires a DNS-1035 label (it names a Service).
    const r = await cluster.kubectl(["create", "-f", "-"], { input: JSON.stringify(lwsManifest("9-groups", 1)) });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('admission webhook "vleaderworkerset.kb.io" denied the request');
    expect(r.stderr).toContain("DNS-1035");
    const list = await kubectlOk(["get", "leaderworkersets", "-n", ns, "-o", "name"]);
    expect(list).not.toContain("9-groups");
  });

  it("runs 2 groups of leader + worker, each pod on its own 8-GPU node, and defaults the spec", async () => {
    await kubectlOk(["create", "-f", "-"], JSON.stringify(lwsManifest("ep", 2)));

    // Set by the mutating webhook only (the CRD schema has no default for it).
    const stored = await getLws("ep");
    expect(stored.spec.networkConfig?.subdomainPolicy).toBe("Shared");
    expect(stored.spec.rolloutStrategy?.type).toBe("RollingUpdate");

    await waitFor(
      "4 LWS pods Ready and readyReplicas 2",
      async () => {
        const pods = await lwsPods("ep");
        const lws = await getLws("ep");
        return pods.length === 4 && pods.every(isReady) && lws.status?.readyReplicas === 2 ? pods : undefined;
      },
      { timeoutMs: 120_000, intervalMs: 500 },
    );
    const pods = await lwsPods("ep");
    expect(pods.map((p) => p.metadata!.name).sort()).toEqual(["ep-0", "ep-0-1", "ep-1", "ep-1-1"]);
    // 8 GPUs per pod on 8-GPU nodes: four pods, four distinct nodes.
    expect(new Set(pods.map((p) => p.spec?.nodeName)).size).toBe(4);
    // The pod webhook labelled each pod with its group; the leader StatefulSet and one worker
    // StatefulSet per group exist.
    expect(pods.map((p) => p.metadata!.labels?.[GROUP_LABEL]).sort()).toEqual(["0", "0", "1", "1"]);
    // ... and gave each worker its leader's address (what --dist-init-addr is built from).
    const worker = pods.find((p) => p.metadata!.name === "ep-1-1")!;
    const env = worker.spec!.containers[0]!.env ?? [];
    expect(env.find((e) => e.name === "LWS_LEADER_ADDRESS")?.value).toBe(`ep-1.ep.${ns}`);
    const sets = (await apps.listNamespacedStatefulSet({ namespace: ns })).items.map((s) => s.metadata!.name);
    expect(sets.sort()).toEqual(["ep", "ep-0", "ep-1"]);
  });

  it("scaling replicas 2 -> 1 removes a whole group", async () => {
    await kubectlOk(["patch", "leaderworkerset", "ep", "-n", ns, "--type=merge", "-p", '{"spec":{"replicas":1}}']);
    await waitFor(
      "group 1 gone",
      async () => {
        const pods = await lwsPods("ep");
        const lws = await getLws("ep");
        const names = pods.map((p) => p.metadata!.name).sort();
        return names.join(",") === "ep-0,ep-0-1" && pods.every(isReady) && lws.status?.readyReplicas === 1
          ? true
          : undefined;
      },
      { timeoutMs: 120_000, intervalMs: 500 },
    );
    await waitFor(
      "worker StatefulSet of group 1 deleted",
      async () => {
        const sets = (await apps.listNamespacedStatefulSet({ namespace: ns })).items.map((s) => s.metadata!.name);
        return sets.sort().join(",") === "ep,ep-0" ? true : undefined;
      },
      { timeoutMs: 60_000, intervalMs: 500 },
    );
    expect((await getLws("ep")).status?.replicas).toBe(1);
  });
});
