// Each child's codec reads back what it renders, with the same keys.
import { describe, expect, it } from "vitest";
import { parseMoEDeployment, type MoEDeployment } from "../../src/api/index.ts";
import { readShardPod, renderShardPod, ShardAnnotation } from "../../src/controllers/moedeployment/codecs/shard-pod.ts";
import { readAppliedHash, routerToApply } from "../../src/controllers/moedeployment/codecs/router.ts";
import { testMoEDeployment } from "../support/moe-fixtures.ts";

function deployment(templateAffinity?: unknown): MoEDeployment {
  const raw = testMoEDeployment("tiny", "default") as ReturnType<typeof testMoEDeployment> & {
    spec: { serving: { expertShards: { template: { spec: Record<string, unknown> } } } };
  };
  if (templateAffinity) raw.spec.serving.expertShards.template.spec.affinity = templateAffinity;
  const r = parseMoEDeployment(raw);
  if (!r.ok) throw new Error("fixture does not parse", { cause: r.issues });
  return { ...r.value, metadata: { ...r.value.metadata, uid: "u-1" } };
}

const userPrefersNodeA = {
  nodeAffinity: {
    preferredDuringSchedulingIgnoredDuringExecution: [
      {
        weight: 100,
        preference: { matchExpressions: [{ key: "kubernetes.io/hostname", operator: "In", values: ["node-a"] }] },
      },
    ],
  },
};

describe("shard pod codec", () => {
  const input = {
    shardIndex: 2,
    experts: [[1, 5], [3]],
    setHash: "0123456789abcdef",
    placementVersion: 4,
    placementHash: "h",
    preferredNode: "node-b",
  };

  it("reads back index, expert set and the operator's preferred node, whatever the template prefers", () => {
    const pod = renderShardPod(deployment(userPrefersNodeA), input);
    const terms = pod.spec?.affinity?.nodeAffinity?.preferredDuringSchedulingIgnoredDuringExecution ?? [];
    expect(terms.map((t) => t.preference.matchExpressions?.[0]?.values?.[0])).toEqual(["node-a", "node-b"]);
    expect(readShardPod(pod)).toMatchObject({
      shardIndex: 2,
      setHash: "0123456789abcdef",
      experts: [[1, 5], [3]],
      preferredNode: "node-b",
      ready: false,
    });
  });

  it("reads the operator's term of a pod written before the preferred-node annotation", () => {
    const pod = renderShardPod(deployment(userPrefersNodeA), input);
    delete pod.metadata!.annotations![ShardAnnotation.preferredNode];
    expect(readShardPod(pod)?.preferredNode).toBe("node-b");
  });

  it("sets the sole-replica priority class and a termination grace period that fits the drain", () => {
    const plain = renderShardPod(deployment(), input);
    expect(plain.spec?.priorityClassName).toBeUndefined();
    expect(plain.spec?.terminationGracePeriodSeconds).toBe(1); // the template's
    const pod = renderShardPod(deployment(), {
      ...input,
      priorityClassName: "moe-sole",
      minTerminationGraceSeconds: 30,
    });
    expect(pod.spec?.priorityClassName).toBe("moe-sole");
    expect(pod.spec?.terminationGracePeriodSeconds).toBe(30);
    // A template asking for longer keeps it.
    expect(
      renderShardPod(deployment(), { ...input, minTerminationGraceSeconds: 0 }).spec?.terminationGracePeriodSeconds,
    ).toBe(1);
  });

  it("has no preferred node when the operator asked for none", () => {
    const pod = renderShardPod(deployment(), { ...input, preferredNode: undefined });
    expect(pod.metadata?.annotations?.[ShardAnnotation.preferredNode]).toBeUndefined();
    expect(readShardPod(pod)?.preferredNode).toBeUndefined();
  });
});

describe("router codec", () => {
  it("stamps the content hash and skips a live router that carries it", () => {
    const d = deployment();
    const first = routerToApply(d, undefined);
    expect(readAppliedHash(first)).toMatch(/^[0-9a-f]{16}$/);
    expect(routerToApply(d, first)).toBeUndefined();
    const changed = {
      ...d,
      spec: { ...d.spec, serving: { ...d.spec.serving, router: { ...d.spec.serving.router!, replicas: 2 } } },
    };
    expect(routerToApply(changed, first)).toBeDefined();
  });
});
