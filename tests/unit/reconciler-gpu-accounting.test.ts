// GPU accounting of pending shard pods: a shard pod not yet bound to a node is
// counted against the node the operator prefers for it, even when the user's
// pod template carries its own node preference (issue 16: the operator's
// preference was appended to the affinity list but read back from index 0).
import { describe, expect, it } from "vitest";
import { gpuNode, startHarness } from "../support/reconciler-harness.ts";
import { heatConfigMap, skewedHeat, testMoEDeployment } from "../support/moe-fixtures.ts";

const NS = "default";
const NAME = "tiny";

function withUserNodePreference(moed: ReturnType<typeof testMoEDeployment>, node: string) {
  const out = structuredClone(moed) as ReturnType<typeof testMoEDeployment> & {
    spec: { serving: { expertShards: { template: { spec: Record<string, unknown> } } } };
  };
  out.spec.serving.expertShards.template.spec.affinity = {
    nodeAffinity: {
      preferredDuringSchedulingIgnoredDuringExecution: [
        {
          weight: 1,
          preference: { matchExpressions: [{ key: "kubernetes.io/hostname", operator: "In", values: [node] }] },
        },
      ],
    },
  };
  return out;
}

const preferredNodes = (
  pods: {
    spec?: {
      affinity?: {
        nodeAffinity?: {
          preferredDuringSchedulingIgnoredDuringExecution?: {
            weight: number;
            preference: { matchExpressions?: { values?: string[] }[] };
          }[];
        };
      };
    };
  }[],
) =>
  pods.map(
    (p) =>
      p.spec?.affinity?.nodeAffinity?.preferredDuringSchedulingIgnoredDuringExecution?.find((t) => t.weight === 100)
        ?.preference.matchExpressions?.[0]?.values?.[0],
  );

describe("GPU accounting of pending shard pods", () => {
  it("counts a pending shard pod against the operator's preferred node, not the template's", async () => {
    const h = startHarness();
    h.store.put(gpuNode("node-a", 2, 1));
    h.store.put(gpuNode("node-b", 2, 2));
    h.store.put(heatConfigMap(`${NAME}-heat`, NS, skewedHeat(3_000, [1, 2])));
    // The user prefers node-a for every shard; the operator spreads shards by free GPUs.
    h.store.put(withUserNodePreference(testMoEDeployment(NAME, NS, { minShards: 4, maxShards: 4 }), "node-a"));

    await h.reconcile(`${NS}/${NAME}`);
    // Four pending shard pods (nothing binds them here): two meant for node-a, two for node-b.
    expect(preferredNodes(h.pods()).sort()).toEqual(["node-a", "node-a", "node-b", "node-b"]);

    // One more shard than the nodes hold: with correct accounting every GPU is taken, so the
    // fifth shard has nowhere to go and Degraded says so.
    const spec = h.moed(NS, NAME).spec as { scaling: { minShards: number; maxShards: number } };
    h.store.put({
      ...h.moed(NS, NAME),
      kind: "MoEDeployment",
      spec: { ...spec, scaling: { ...spec.scaling, minShards: 5, maxShards: 5 } },
    } as never);
    h.clock.advance(10_000);
    await h.reconcile(`${NS}/${NAME}`);
    const degraded = h.moed(NS, NAME).status?.conditions?.find((c) => c.type === "Degraded");
    expect(degraded?.reason).toBe("InsufficientGpuCapacity");
    expect(degraded?.message).toMatch(
      /^1 nvidia.com\/gpu missing: 5 shards decided, 0 GPUs held by shard pods, 4 free/,
    );
  });
});
