// The per-deployment source poller: a reconcile waits at most waitMs for a
// read, a slow read goes on in the background and re-enqueues its key when it
// ends, at most one read per deployment is in flight, and readings for other
// sources (a changed spec) are never served.
import { describe, expect, it } from "vitest";
import { FakeClock } from "../../src/runtime/clock.ts";
import { SourcePoller } from "../../src/controllers/moedeployment/poller.ts";
import type { HeatReading, LatencyReading } from "../../src/controllers/moedeployment/sources.ts";

type Result = { heat: HeatReading; latency: LatencyReading };
const result = (p99Ms: number): Result => ({
  heat: { problem: { reason: "NoData", message: "x" } },
  latency: { p99Ms, atMs: 0 },
});

/** A read that resolves when the test says so. */
function deferred() {
  let resolve!: (r: Result) => void;
  const promise = new Promise<Result>((r) => (resolve = r));
  return { promise, resolve };
}

const flush = () => new Promise((r) => setImmediate(r));

describe("SourcePoller", () => {
  it("a fast read is used by the reconcile that started it, and is not re-read until due", async () => {
    const clock = new FakeClock(1_000);
    const requeued: string[] = [];
    const poller = new SourcePoller({ clock, waitMs: 1_000, onRefreshed: (k) => requeued.push(k) });
    let reads = 0;
    const read = () => {
      reads++;
      return Promise.resolve(result(40));
    };
    expect((await poller.readings("ns/a", "f1", 5_000, read))?.latency.p99Ms).toBe(40);
    clock.advance(4_000);
    expect((await poller.readings("ns/a", "f1", 5_000, read))?.latency.p99Ms).toBe(40);
    expect(reads).toBe(1);
    clock.advance(1_000);
    await poller.readings("ns/a", "f1", 5_000, read);
    expect(reads).toBe(2);
    expect(requeued).toEqual([]);
  });

  it("a slow read: the reconcile returns after waitMs, one read in flight, the key is re-enqueued when it ends", async () => {
    const clock = new FakeClock(1_000);
    const requeued: string[] = [];
    const poller = new SourcePoller({ clock, waitMs: 1_000, onRefreshed: (k) => requeued.push(k) });
    const slow = deferred();
    let reads = 0;
    const read = () => {
      reads++;
      return slow.promise;
    };
    const first = poller.readings("ns/slow", "f1", 5_000, read);
    await flush();
    clock.advance(1_000);
    expect(await first).toBeUndefined(); // nothing yet: the caller reports "not answered yet"
    // Another reconcile meanwhile starts no second read.
    const second = poller.readings("ns/slow", "f1", 5_000, read);
    await flush();
    clock.advance(1_000);
    expect(await second).toBeUndefined();
    expect(reads).toBe(1);
    // Another deployment is not held up by this one.
    expect((await poller.readings("ns/fast", "f1", 5_000, () => Promise.resolve(result(7))))?.latency.p99Ms).toBe(7);
    slow.resolve(result(99));
    await flush();
    expect(requeued).toEqual(["ns/slow"]);
    expect((await poller.readings("ns/slow", "f1", 5_000, read))?.latency.p99Ms).toBe(99);
  });

  it("readings of other sources (fingerprint) are never served; a forgotten key is not re-enqueued", async () => {
    const clock = new FakeClock(1_000);
    const requeued: string[] = [];
    const poller = new SourcePoller({ clock, waitMs: 500, onRefreshed: (k) => requeued.push(k) });
    await poller.readings("ns/a", "old", 60_000, () => Promise.resolve(result(1)));
    const slow = deferred();
    const p = poller.readings("ns/a", "new", 60_000, () => slow.promise);
    await flush();
    clock.advance(500);
    expect(await p).toBeUndefined();
    poller.forget("ns/a");
    slow.resolve(result(2));
    await flush();
    expect(requeued).toEqual([]);
    expect(poller.size).toBe(0);
  });

  it("a read that throws becomes a problem reading, not a rejected reconcile", async () => {
    const poller = new SourcePoller({ clock: new FakeClock(0), waitMs: 1_000, onRefreshed: () => undefined });
    const r = await poller.readings("ns/a", "f", 5_000, () => Promise.reject(new Error("boom")));
    expect(r?.heat.problem?.reason).toBe("QueryFailed");
    expect(r?.latency.problem?.message).not.toContain("boom");
  });
});
