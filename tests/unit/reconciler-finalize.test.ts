// Deletion of a MoEDeployment in PullRequest mode (the gitops finalizer, ADR 0014): one close
// attempt is bounded by the time left of the 5-minute cap (and 30 s), none is made past the cap,
// and a spec that no longer parses still leaves a PullRequestNotClosed event.
import { describe, expect, it } from "vitest";
import type { MoEDeployment } from "../../src/api/schema.ts";
import type { PullRequestSync } from "../../src/gitops/sync.ts";
import { startHarness } from "../support/reconciler-harness.ts";
import { testMoEDeployment } from "../support/moe-fixtures.ts";

const FINALIZER = "moe.dev/gitops-pull-request";

function setup(deletedAgoMs: number, mutate: (o: { spec: Record<string, unknown> }) => void = () => undefined) {
  const closes: { signal?: AbortSignal }[] = [];
  const gitops = {
    close: async (_d: MoEDeployment, _why: string, signal?: AbortSignal) => {
      closes.push({ signal });
      return { ok: false as const, problem: "GitHub unreachable" };
    },
    forget: () => undefined,
    retire: () => undefined,
  } as unknown as PullRequestSync;
  const h = startHarness({ gitops });
  const o = testMoEDeployment("tiny", "default", { maxShards: 6 }) as unknown as {
    metadata: Record<string, unknown>;
    spec: Record<string, unknown>;
  };
  o.spec.mode = "PullRequest";
  o.spec.gitops = {
    repository: "acme/infra",
    path: "clusters/prod/tiny.yaml",
    credentials: { tokenSecretRef: { name: "gh" } },
  };
  mutate(o);
  o.metadata.finalizers = [FINALIZER];
  o.metadata.deletionTimestamp = new Date(h.clock.nowMs() - deletedAgoMs).toISOString();
  h.store.put(o as unknown as Parameters<typeof h.store.put>[0]);
  return { h, closes };
}

describe("the gitops finalizer", () => {
  it("bounds one close attempt by a signal, and retries within the cap", async () => {
    const { h, closes } = setup(10_000);
    const r = await h.reconcile("default/tiny");
    expect(closes).toHaveLength(1);
    expect(closes[0]!.signal).toBeInstanceOf(AbortSignal);
    expect(closes[0]!.signal!.aborted).toBe(false);
    expect(r.requeueAfterMs).toBe(2_000);
    expect(h.store.events.filter((e) => e.reason === "PullRequestNotClosed")).toEqual([]);
  });

  it("makes no attempt once 5 minutes have passed since the deletion request, and says so", async () => {
    const { h, closes } = setup(301_000);
    await h.reconcile("default/tiny");
    expect(closes).toHaveLength(0);
    const ev = h.store.events.filter((e) => e.reason === "PullRequestNotClosed");
    expect(ev).toHaveLength(1);
    expect(ev[0]!.message).toContain("moe-operator/default-tiny");
  });

  it("a spec that no longer parses at deletion leaves a PullRequestNotClosed event naming the field", async () => {
    const { h, closes } = setup(10_000, (o) => {
      (o.spec.scaling as Record<string, unknown>).minShards = -3;
    });
    await h.reconcile("default/tiny");
    expect(closes).toHaveLength(0);
    const ev = h.store.events.filter((e) => e.reason === "PullRequestNotClosed");
    expect(ev).toHaveLength(1);
    expect(ev[0]!.message).toContain("spec.scaling.minShards");
  });
});
