// Every list the operator's informers send is a page (limit=500, continue), so that a first list
// or a relist after 410 Gone of thousands of the operator's own pods never holds one whole
// response (JSON text, parsed and deserialized copies) in memory at once: that transient was the
// new leader's RSS peak in `make bench-scale` (issue 21, item 4). Read from the API server's audit
// log of the operator's own user, not from the operator.
import { readFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startCluster, type LocalCluster } from "../../src/testing/cluster.ts";
import type { ManagedProcess } from "../../src/testing/process.ts";
import { waitFor } from "../../src/testing/http-probe.ts";
import { LIST_PAGE_SIZE } from "../../src/runtime/informer.ts";
import { startOperatorProcess } from "../support/operator-process.ts";

const USER = "moe-operator-pages";

let cluster: LocalCluster;
let operator: ManagedProcess | undefined;

beforeAll(async () => {
  cluster = await startCluster({ name: "pages", audit: true, auditAllRequestsOf: [USER] });
  const crd = await cluster.kubectl(["apply", "--server-side", "-f", "crds"]);
  expect(crd.code, crd.stderr).toBe(0);
});

afterAll(async () => {
  await operator?.stop();
  await cluster?.stop();
});

interface AuditEvent {
  user: { username: string };
  verb: string;
  requestURI: string;
  objectRef?: { resource?: string };
}

describe("the operator's informers list in pages", () => {
  it("every list request of the operator carries limit=500, for all seven informers", async () => {
    operator = startOperatorProcess({
      kubeconfigPath: cluster.kubeconfigFor(USER),
      dir: cluster.dir,
      identity: "pages-1",
    });
    await waitFor(
      "the operator's caches to sync",
      async () => {
        if (operator!.exitCode !== undefined) throw new Error(`the operator exited:\n${operator!.logTail(20)}`);
        return readFileSync(operator!.logFile, "utf8").includes('"caches synced"') ? true : undefined;
      },
      { timeoutMs: 60_000, intervalMs: 250, onTimeout: () => operator!.logTail(20) },
    );

    const lists = readFileSync(cluster.auditLogPath!, "utf8")
      .split("\n")
      .filter(Boolean)
      .map((l) => JSON.parse(l) as AuditEvent)
      .filter((e) => e.user.username === USER && e.verb === "list");
    const resources = new Set(lists.map((e) => e.objectRef?.resource));
    // Jobs: the weight-staging informer (spec.prewarm.staging), started with the others.
    expect([...resources].sort()).toEqual(["configmaps", "deployments", "jobs", "moedeployments", "nodes", "pods"]);
    // Two pod informers: the operator's own pods (label selector) and every pod's GPU requests.
    expect(lists.filter((e) => e.objectRef?.resource === "pods").length).toBeGreaterThanOrEqual(2);
    const unpaged = lists.filter((e) => !new URL(e.requestURI, "https://x").searchParams.has("limit"));
    expect(unpaged.map((e) => e.requestURI)).toEqual([]);
    const ownPods = lists.find((e) => e.objectRef?.resource === "pods" && e.requestURI.includes("labelSelector"));
    expect(new URL(ownPods!.requestURI, "https://x").searchParams.get("limit")).toBe(String(LIST_PAGE_SIZE));
  });
});
