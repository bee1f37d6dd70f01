// The manager tells failures apart (issue 16, item 5): a Forbidden apply (a missing
// RBAC rule) is retried slowly instead of in a backoff loop, a 429 waits for the
// API server's Retry-After, a 5xx backs off exponentially, a lost race requeues
// quietly; the causes reach it through ApplyFailed's members.
import { describe, expect, it } from "vitest";
import { pino } from "pino";
import { Manager, PERMANENT_ERROR_RETRY_MS, classifyReconcileError } from "../../src/runtime/manager.ts";
import { FakeClock } from "../../src/runtime/clock.ts";
import { createMetrics } from "../../src/observability/metrics.ts";
import { ApplyFailed, ChildApplyError, ConflictRequeue } from "../../src/controllers/moedeployment/errors.ts";
import { apiError } from "../support/reconciler-harness.ts";

const flush = async (rounds = 20) => {
  for (let i = 0; i < rounds; i++) await new Promise((r) => setImmediate(r));
};

const applyFailed = (...codes: number[]) =>
  new ApplyFailed(
    "ns/d",
    codes.map(
      (code, i) =>
        new ChildApplyError("create", { kind: "Pod", name: `d-shard-${i}` }, apiError(`create Pod/d-shard-${i}`, code)),
    ),
  );

function throttled(retryAfterSeconds: number): ApplyFailed {
  const err = apiError("apply Deployment/d-router", 429, "too many requests");
  if (err.kubeError.kind === "TooManyRequests") err.kubeError.retryAfterSeconds = retryAfterSeconds;
  return new ApplyFailed("ns/d", [new ChildApplyError("apply", { kind: "Deployment", name: "d-router" }, err)]);
}

/** Times (ms since start) at which the manager called reconcile, failing every call with `err`. */
async function callTimes(err: Error, advanceMs: number, steps: number): Promise<number[]> {
  const clock = new FakeClock();
  const calls: number[] = [];
  const manager = new Manager({
    clock,
    logger: pino({ level: "silent" }),
    metrics: createMetrics({ defaultMetrics: false }),
    workers: 1,
    informers: [],
    controller: {
      name: "test",
      reconcile: () => {
        calls.push(clock.nowMs());
        return Promise.reject(err);
      },
    },
  });
  manager.startWorkers(() => ["ns/d"]);
  await flush();
  for (let i = 0; i < steps; i++) {
    clock.advance(advanceMs);
    await flush();
  }
  await manager.shutdown();
  return calls;
}

describe("reconcile error classification", () => {
  it("classifies by the Kubernetes errors inside ApplyFailed", () => {
    expect(classifyReconcileError(applyFailed(403))).toEqual({ kind: "slow" });
    expect(classifyReconcileError(applyFailed(403, 403))).toEqual({ kind: "slow" });
    // One transient failure among permanent ones: back off, something may succeed soon.
    expect(classifyReconcileError(applyFailed(403, 503))).toEqual({ kind: "backoff" });
    expect(classifyReconcileError(applyFailed(429))).toEqual({ kind: "backoff" });
    expect(classifyReconcileError(throttled(7))).toEqual({ kind: "retryAfter", delayMs: 7000 });
    expect(classifyReconcileError(applyFailed(500))).toEqual({ kind: "backoff" });
    expect(classifyReconcileError(new Error("boom"))).toEqual({ kind: "backoff" });
    const conflict = new ConflictRequeue("status write lost a race", {
      cause: apiError("update-status MoEDeployment/d", 409),
    });
    expect(classifyReconcileError(conflict)).toEqual({ kind: "quiet" });
    expect(conflict.cause).toBeInstanceOf(Error);
  });

  it("an ApplyFailed names the child, the verb, the Kubernetes error and its status code", () => {
    const e = applyFailed(403);
    expect(e.message).toMatch(/create Pod\/d-shard-0: Forbidden \(HTTP 403\)/);
    const child = e.errors[0] as ChildApplyError;
    expect(child.child).toEqual({ kind: "Pod", name: "d-shard-0" });
    expect(child.statusCode).toBe(403);
    expect(child.kubeError.kind).toBe("Forbidden");
    expect(e.cause).toBe(child);
  });

  it("retries a Forbidden apply once per permanentErrorRetryMs, not in a backoff loop", async () => {
    const calls = await callTimes(applyFailed(403), 1_000, 600);
    expect(calls).toEqual([0, PERMANENT_ERROR_RETRY_MS, 2 * PERMANENT_ERROR_RETRY_MS]);
  });

  it("backs off exponentially on a 5xx and honours a 429's Retry-After", async () => {
    const fivexx = await callTimes(applyFailed(503), 100, 30);
    expect(fivexx).toEqual([0, 200, 600, 1400, 3000]); // 200, 400, 800, 1600 ms apart
    const throttledCalls = await callTimes(throttled(7), 1_000, 20);
    expect(throttledCalls).toEqual([0, 7_000, 14_000]);
  });
});
