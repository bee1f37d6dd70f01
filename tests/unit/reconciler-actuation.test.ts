// The reconciler in-process (in-memory caches and store): Recommend writes no
// children, a Forbidden write leaves Degraded naming the child and fails the
// reconcile with the Kubernetes error as cause, and moe_operator_gpus_ready
// counts the GPUs of Ready shard pods.
import { describe, expect, it } from "vitest";
import type { V1Pod } from "@kubernetes/client-node";
import { gpuNode, apiError, startHarness, type Harness } from "../support/reconciler-harness.ts";
import { heatConfigMap, skewedHeat, testMoEDeployment } from "../support/moe-fixtures.ts";
import type { ChildApplyError } from "../../src/controllers/moedeployment/errors.ts";
import { ApplyFailed } from "../../src/controllers/moedeployment/errors.ts";

const NS = "default";
const NAME = "tiny";
const KEY = `${NS}/${NAME}`;

function setup(mode: "Auto" | "Recommend"): Harness {
  const h = startHarness();
  for (const n of ["node-a", "node-b"]) h.store.put(gpuNode(n, 8, 2));
  h.store.put(heatConfigMap(`${NAME}-heat`, NS, skewedHeat(3_000, [1, 2])));
  h.store.put(testMoEDeployment(NAME, NS, { mode }));
  return h;
}

const children = (h: Harness) =>
  [...h.store.objects.values()].filter(
    (o) => ["Pod", "Deployment"].includes(o.kind!) || o.metadata?.name === `${NAME}-placement`,
  );

function markReady(h: Harness, pods: V1Pod[]): void {
  for (const p of pods) {
    h.store.put({
      ...p,
      spec: { ...p.spec!, nodeName: "node-a" },
      status: {
        phase: "Running",
        conditions: [{ type: "Ready", status: "True", lastTransitionTime: new Date(h.clock.nowMs()) }],
      },
    } as never);
  }
}

async function gauge(h: Harness, metric: string): Promise<number | undefined> {
  const m = await h.metrics.registry.getSingleMetric(metric)?.get();
  return m?.values.find((v) => v.labels.namespace === NS && v.labels.name === NAME)?.value;
}

describe("reconciler actuation", () => {
  it("writes no children in mode Recommend and reports the recommendation", async () => {
    const h = setup("Recommend");
    await h.reconcile(KEY);
    expect(children(h)).toEqual([]);
    const s = h.moed(NS, NAME).status!;
    expect(s.recommendation?.shards).toBe(4);
    expect(s.conditions?.find((c) => c.type === "Ready")).toMatchObject({ status: "True", reason: "RecommendOnly" });
  });

  it("names the child a Forbidden write failed on, in Degraded and in the error's causes", async () => {
    const h = setup("Auto");
    h.store.failWrite = (verb, o) =>
      verb === "create" && o.kind === "Pod"
        ? apiError(`create Pod/${o.name}`, 403, "pods is forbidden: RBAC")
        : undefined;
    const err = await h.reconcile(KEY).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(ApplyFailed);
    const first = (err as ApplyFailed).errors[0] as ChildApplyError;
    expect(first.child.kind).toBe("Pod");
    expect(first.child.name).toMatch(/^tiny-shard-0-/);
    expect(first.statusCode).toBe(403);
    expect(first.kubeError.kind).toBe("Forbidden");
    const degraded = h.moed(NS, NAME).status?.conditions?.find((c) => c.type === "Degraded");
    expect(degraded?.reason).toBe("ApplyFailed");
    expect(degraded?.message).toMatch(
      /^create Pod\/tiny-shard-0-[0-9a-f]+: Forbidden \(HTTP 403\): pods is forbidden: RBAC/,
    );
    // The router and the placement were written; no shard pod was.
    expect(h.store.list("Deployment")).toHaveLength(1);
    expect(h.store.list("Pod")).toHaveLength(0);
  });

  it("sets moe_operator_gpus_ready to the GPUs of Ready shard pods", async () => {
    const h = setup("Auto");
    await h.reconcile(KEY);
    expect(await gauge(h, "moe_operator_gpus_ready")).toBe(0);
    const pods = h.pods();
    expect(pods).toHaveLength(4);
    markReady(h, pods.slice(0, 3));
    h.clock.advance(10_000);
    await h.reconcile(KEY);
    expect(await gauge(h, "moe_operator_gpus_ready")).toBe(3);
  });
});
