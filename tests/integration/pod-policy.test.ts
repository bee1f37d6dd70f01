// The operator's pod-template policy against a real control plane (issue 20):
// with the default --pod-security-policy=restricted, a privileged shard template
// or a foreign ServiceAccount in the router template leaves the MoEDeployment
// Ready=False / Degraded=True, reason PodTemplateRejected, naming the field, and
// no child is created; fixing the template, or allowing the ServiceAccount with
// --pod-allowed-service-accounts, lets the operator proceed.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startCluster, type LocalCluster } from "../../src/testing/cluster.ts";
import type { ManagedProcess } from "../../src/testing/process.ts";
import { startOperatorProcess } from "../support/operator-process.ts";
import { heatConfigMap, skewedHeat, testMoEDeployment } from "../support/moe-fixtures.ts";
import { applyJson, condition, shardPods, waitForStatus } from "../support/kube-helpers.ts";

let cluster: LocalCluster;
let operator: ManagedProcess;

beforeAll(async () => {
  cluster = await startCluster({
    name: "podpolicy",
    gpuNodes: [
      {
        pool: "h100",
        count: 1,
        gpusPerNode: 8,
        gpuProduct: "NVIDIA-H100-80GB-HBM3",
        gpuMemoryMiB: 81559,
        priceUsdPerGpuHour: 2,
      },
    ],
  });
  const crd = await cluster.kubectl(["apply", "--server-side", "-f", "crds/"]);
  expect(crd.code, crd.stderr).toBe(0);
  await cluster.kubectl(["wait", "--for=condition=Established", "crd/moedeployments.moe.dev", "--timeout=30s"]);
  operator = startOperatorProcess({ kubeconfigPath: cluster.kubeconfigPath, dir: cluster.dir, identity: "policy-1" });
});

afterAll(async () => {
  await operator?.stop();
  if (operator && process.env.MOE_TEST_VERBOSE) console.log(operator.logTail(80));
  await cluster?.stop();
});

type Moed = ReturnType<typeof testMoEDeployment>;
type Template = { spec: Record<string, unknown> & { containers: Record<string, unknown>[] } };

function deployment(name: string, edit: (shard: Template, router: Template) => void): Moed {
  const d = testMoEDeployment(name, "default", { minShards: 4, maxShards: 4 });
  edit(d.spec.serving.expertShards.template as Template, d.spec.serving.router.template as Template);
  return d;
}

const rejected = (s: Parameters<typeof condition>[0]) => condition(s, "Ready")?.reason === "PodTemplateRejected";

async function routerExists(name: string): Promise<boolean> {
  const r = await cluster.kubectl(["get", "deployment", `${name}-router`, "--ignore-not-found", "-o", "name"]);
  return r.stdout.trim() !== "";
}

describe("pod-template policy (restricted by default)", () => {
  it("a privileged shard container is rejected naming the field; no child is created; fixing it lets the operator proceed", async () => {
    const name = "privileged";
    await applyJson(cluster, heatConfigMap(`${name}-heat`, "default", skewedHeat(3_000, [1, 2])));
    await applyJson(
      cluster,
      deployment(name, (shard) => {
        shard.spec.containers[0]!.securityContext = { privileged: true };
      }),
    );
    const s = await waitForStatus(cluster, name, "Ready=False PodTemplateRejected", rejected, 60_000);
    expect(condition(s, "Ready")!.status).toBe("False");
    expect(condition(s, "Degraded")).toMatchObject({ status: "True", reason: "PodTemplateRejected" });
    expect(condition(s, "Ready")!.message).toContain(
      "spec.serving.expertShards.template.spec.containers[0].securityContext.privileged",
    );
    expect(await shardPods(cluster, name)).toEqual([]);
    expect(await routerExists(name)).toBe(false);
    const events = await cluster.kubectl([
      "get",
      "events",
      "--field-selector",
      `involvedObject.name=${name},reason=PodTemplateRejected`,
      "-o",
      "name",
    ]);
    expect(events.stdout.trim()).not.toBe("");

    await applyJson(
      cluster,
      deployment(name, () => {}),
    );
    await waitForStatus(
      cluster,
      name,
      "no longer rejected",
      (st) => !rejected(st) && condition(st, "Degraded")?.reason !== "PodTemplateRejected",
      60_000,
    );
    expect(await routerExists(name)).toBe(true);
  });

  it("a foreign ServiceAccount is rejected, and allowed once the operator's allowlist names it", async () => {
    const name = "foreign-sa";
    await applyJson(cluster, heatConfigMap(`${name}-heat`, "default", skewedHeat(3_000, [1, 2])));
    await applyJson(
      cluster,
      deployment(name, (_shard, router) => {
        router.spec.serviceAccountName = "engine";
      }),
    );
    const s = await waitForStatus(cluster, name, "Ready=False PodTemplateRejected", rejected, 60_000);
    expect(condition(s, "Ready")!.message).toContain("spec.serving.router.template.spec.serviceAccountName");
    expect(await routerExists(name)).toBe(false);

    await operator.stop();
    operator = startOperatorProcess({
      kubeconfigPath: cluster.kubeconfigPath,
      dir: cluster.dir,
      identity: "policy-2",
      extraArgs: ["--pod-allowed-service-accounts=default,engine"],
    });
    await waitForStatus(cluster, name, "no longer rejected", (st) => !rejected(st), 90_000);
    expect(await routerExists(name)).toBe(true);
  });
});
