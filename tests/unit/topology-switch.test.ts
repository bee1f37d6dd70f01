import { describe, expect, it } from "vitest";
import { parseMoEDeployment, type MoEDeployment } from "../../src/api/index.ts";
import { oldTopology, readyToRetire } from "../../src/controllers/moedeployment/topology-switch.ts";
import type { CachedPod } from "../../src/controllers/moedeployment/cached.ts";
import { testMoEDeployment, testWideEPDeployment } from "../support/moe-fixtures.ts";

function parsed(o: unknown): MoEDeployment {
  const r = parseMoEDeployment(o);
  if (!r.ok) throw new Error(JSON.stringify(r.issues));
  return { ...r.value, metadata: { ...r.value.metadata, uid: "u1" } };
}
const wide = () => parsed(testWideEPDeployment("m", "default", { minShards: 16, maxShards: 48 }));
const disagg = () => parsed(testMoEDeployment("m", "default", { minShards: 4, maxShards: 8 }));

const pod = (name: string, component: string, owned: boolean, deleting = false): CachedPod => ({
  metadata: {
    name,
    namespace: "default",
    labels: { "moe.dev/deployment": "m", "moe.dev/component": component },
    ownerReferences: owned ? [{ apiVersion: "moe.dev/v1alpha1", kind: "MoEDeployment", name: "m", uid: "u1" }] : [],
    ...(deleting ? { deletionTimestamp: new Date() } : {}),
  },
});
const cond = (type: string, status: "True" | "False") => ({
  type,
  status,
  reason: "R",
  message: "",
  lastTransitionTime: "",
});

describe("topology switch (make-before-break)", () => {
  it("under WideEP, the router and owned expert shard pods are leftovers; terminating ones are not", () => {
    const old = oldTopology(
      wide(),
      [pod("s0", "expert-shard", true), pod("s1", "expert-shard", true, true), pod("g0", "ep-group", false)],
      { metadata: { name: "m-router", ownerReferences: [{ uid: "u1" } as never] } },
    );
    expect(old?.topology).toBe("Disaggregated");
    expect(old?.router?.metadata?.name).toBe("m-router");
    expect(old?.shardPods.map((p) => p.metadata?.name)).toEqual(["s0"]);
    expect(old?.lws).toBe(false);
  });

  it("under Disaggregated, live group pods mean the LeaderWorkerSet is a leftover", () => {
    expect(oldTopology(disagg(), [pod("g0", "ep-group", false)], undefined)).toMatchObject({ lws: true });
    expect(oldTopology(disagg(), [pod("g0", "ep-group", false, true)], undefined)).toBeUndefined();
    expect(oldTopology(disagg(), [pod("s0", "expert-shard", true)], undefined)).toBeUndefined();
  });

  it("the old topology goes only when the new one is Ready, or waits for GPUs past the timeout", () => {
    expect(readyToRetire({ conditions: [cond("Ready", "False"), cond("CapacityPending", "False")] })).toBe(false);
    expect(readyToRetire({ conditions: [cond("Ready", "True")] })).toBe(true);
    expect(readyToRetire({ conditions: [cond("Ready", "False"), cond("CapacityPending", "True")] })).toBe(true);
  });
});
