// Prefill/decode disaggregation as a pair of WideEP MoEDeployments (ADR 0024) on the real control
// plane with the real LeaderWorkerSet controller: each role gets its own LeaderWorkerSet, group
// shape, role label, heat and placement ConfigMap, and is scaled on its own: raising the decode
// side's demand adds a decode group and leaves the prefill side's LeaderWorkerSet untouched.
import type { V1ConfigMap, V1Pod } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startCluster, type LocalCluster } from "../../src/testing/cluster.ts";
import { eightGpuPool } from "../../src/testing/gpu-nodes.ts";
import type { ManagedProcess } from "../../src/testing/process.ts";
import { startOperatorProcess } from "../support/operator-process.ts";
import { heatConfigMap, skewedHeat, testWideEPDeployment } from "../support/moe-fixtures.ts";
import { applyJson, condition, getJson, waitForStatus, type MoedStatus } from "../support/kube-helpers.ts";
import { readPlacementConfigMap } from "../../src/controllers/moedeployment/codecs/placement-configmap.ts";

let cluster: LocalCluster;
let operator: ManagedProcess;
const ROLE_LABEL = "llm-d.ai/role";

/** Prefill: groups of 1 node x 8 GPUs; decode: 2 nodes x 8 GPUs. minShards in GPUs. */
const SIDES = {
  prefill: { name: "pd-prefill", nodesPerGroup: 1, hot: [1, 2] },
  decode: { name: "pd-decode", nodesPerGroup: 2, hot: [5, 6] },
} as const;
type Side = keyof typeof SIDES;

function deployment(side: Side, minShards: number) {
  const s = SIDES[side];
  const d = testWideEPDeployment(s.name, "default", {
    minShards,
    maxShards: 32,
    nodesPerGroup: s.nodesPerGroup,
    gpusPerNode: 8,
    pendingTimeoutSeconds: 3,
    scaleDownWindowSeconds: 4,
  });
  const wideEP = d.spec.serving.wideEP as { template: { metadata?: { labels?: Record<string, string> } } };
  wideEP.template.metadata = { labels: { [ROLE_LABEL]: side } };
  return d;
}

interface Lws {
  metadata: { generation?: number };
  spec: { replicas: number; leaderWorkerTemplate: { size: number } };
}
const lws = (side: Side) =>
  getJson<Lws>(cluster, ["get", "leaderworkerset", `${SIDES[side].name}-ep`, "-n", "default"]);
const groupsOf = (s: MoedStatus) => (s as MoedStatus & { groups?: { desired: number; ready: number } }).groups;

async function podsOf(side: Side): Promise<V1Pod[]> {
  return (
    await getJson<{ items: V1Pod[] }>(cluster, [
      "get",
      "pods",
      "-n",
      "default",
      "-l",
      `leaderworkerset.sigs.k8s.io/name=${SIDES[side].name}-ep`,
    ])
  ).items;
}

beforeAll(async () => {
  // Five 8-GPU nodes: one prefill group (1 node) and two decode groups (2 nodes each).
  cluster = await startCluster({ name: "wideep-pd", lws: true, gpuNodes: [eightGpuPool("ep", 5)] });
  const crd = await cluster.kubectl(["apply", "--server-side", "-f", "crds/"]);
  expect(crd.code, crd.stderr).toBe(0);
  await cluster.kubectl(["wait", "--for=condition=Established", "crd/moedeployments.moe.dev", "--timeout=30s"]);
  operator = startOperatorProcess({ kubeconfigPath: cluster.kubeconfigPath, dir: cluster.dir, identity: "wideep-pd" });
  for (const side of ["prefill", "decode"] as const) {
    await applyJson(
      cluster,
      heatConfigMap(`${SIDES[side].name}-heat`, "default", skewedHeat(300, [...SIDES[side].hot])),
    );
    await applyJson(cluster, deployment(side, side === "prefill" ? 8 : 16));
  }
  for (const side of ["prefill", "decode"] as const)
    await waitForStatus(
      cluster,
      SIDES[side].name,
      `${side}: one Ready group`,
      (s) => condition(s, "Ready")?.status === "True" && groupsOf(s)?.ready === 1,
      180_000,
    );
}, 400_000);

afterAll(async () => {
  await operator?.stop();
  if (operator && process.env.MOE_TEST_VERBOSE) console.log(operator.logTail(150));
  await cluster?.stop();
});

describe("a prefill/decode pair of WideEP MoEDeployments", () => {
  it("runs one LeaderWorkerSet per role, with its group shape and the role label on every pod", async () => {
    expect((await lws("prefill")).spec.leaderWorkerTemplate.size).toBe(1);
    expect((await lws("decode")).spec.leaderWorkerTemplate.size).toBe(2);
    for (const side of ["prefill", "decode"] as const) {
      const pods = await podsOf(side);
      expect(pods).toHaveLength(SIDES[side].nodesPerGroup);
      for (const p of pods) expect(p.metadata?.labels?.[ROLE_LABEL]).toBe(side);
      // Each side's pods mount its own placement ConfigMap.
      const mounted = (p: V1Pod) => p.spec?.volumes?.find((v) => v.configMap)?.configMap?.name;
      expect(new Set(pods.map(mounted))).toEqual(new Set([`${SIDES[side].name}-placement`]));
    }
  });

  it("plans each role's placement over its own group's GPUs from its own heat", async () => {
    const read = async (side: Side) =>
      readPlacementConfigMap(
        await getJson<V1ConfigMap>(cluster, ["get", "configmap", `${SIDES[side].name}-placement`, "-n", "default"]),
      )!.placement;
    const [prefill, decode] = [await read("prefill"), await read("decode")];
    expect(prefill.layers[0]!.length).toBe(8);
    expect(decode.layers[0]!.length).toBe(16);
    // The hot experts get the redundant slots: each side replicates its own hot experts most.
    const copies = (p: typeof prefill, e: number) => p.layers[0]!.flat().filter((x) => x === e).length;
    expect(copies(prefill, 1)).toBeGreaterThan(copies(prefill, 5));
    expect(copies(decode, 5)).toBeGreaterThan(copies(decode, 1));
  });

  it("scales each role on its own: more decode demand adds a decode group and leaves prefill alone", async () => {
    const before = await lws("prefill");
    await applyJson(cluster, deployment("decode", 32));
    const s = await waitForStatus(
      cluster,
      SIDES.decode.name,
      "two Ready decode groups",
      (st) => groupsOf(st)?.ready === 2,
      180_000,
    );
    expect(groupsOf(s)?.desired).toBe(2);
    expect((await lws("decode")).spec.replicas).toBe(2);
    const after = await lws("prefill");
    expect(after.spec.replicas).toBe(1);
    expect(after.metadata.generation).toBe(before.metadata.generation);
    const prefill = await getJson<{ status: MoedStatus }>(cluster, [
      "get",
      "moed",
      SIDES.prefill.name,
      "-n",
      "default",
    ]);
    expect(groupsOf(prefill.status)).toMatchObject({ desired: 1, ready: 1 });
  }, 240_000);
});
