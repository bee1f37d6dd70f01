import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { WorkQueue } from "../../src/runtime/workqueue.ts";
import { FakeClock } from "../../src/runtime/clock.ts";
import { exponentialBackoffMs } from "../../src/runtime/backoff.ts";

describe("WorkQueue", () => {
  it("deduplicates keys that are waiting", async () => {
    const q = new WorkQueue<string>({ clock: new FakeClock() });
    q.add("a");
    q.add("a");
    q.add("b");
    expect(q.length).toBe(2);
    expect(await q.get()).toBe("a");
    expect(await q.get()).toBe("b");
  });

  it("never hands out a key twice at once; a key re-added while in flight comes back after done", async () => {
    const q = new WorkQueue<string>({ clock: new FakeClock() });
    q.add("a");
    const k = await q.get();
    q.add("a");
    expect(q.length).toBe(0);
    q.done(k!);
    expect(q.length).toBe(1);
    expect(await q.get()).toBe("a");
  });

  it("delays addAfter until the clock reaches it; the earliest delayed add wins", async () => {
    const clock = new FakeClock();
    const q = new WorkQueue<string>({ clock });
    q.addAfter("a", 1_000);
    q.addAfter("a", 500);
    q.addAfter("a", 2_000);
    clock.advance(499);
    expect(q.length).toBe(0);
    clock.advance(1);
    expect(q.length).toBe(1);
    clock.advance(5_000);
    expect(q.length).toBe(1);
  });

  it("backs off exponentially per key and forgets on success", () => {
    const clock = new FakeClock();
    const q = new WorkQueue<string>({ clock, baseBackoffMs: 100, maxBackoffMs: 1_000 });
    expect([
      q.addRateLimited("a"),
      q.addRateLimited("a"),
      q.addRateLimited("a"),
      q.addRateLimited("a"),
      q.addRateLimited("a"),
    ]).toEqual([100, 200, 400, 800, 1_000]);
    expect(q.addRateLimited("b")).toBe(100);
    q.forget("a");
    expect(q.failures("a")).toBe(0);
    expect(q.addRateLimited("a")).toBe(100);
  });

  it("wakes a waiting worker on add and releases workers on shutdown", async () => {
    const q = new WorkQueue<string>({ clock: new FakeClock() });
    const waiting = q.get();
    q.add("x");
    expect(await waiting).toBe("x");
    const blocked = q.get();
    q.shutDown();
    expect(await blocked).toBeUndefined();
    q.add("y");
    expect(q.length).toBe(0);
  });

  it("processes every added key exactly once per dirty period (property)", async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.constantFrom("a", "b", "c", "d"), { minLength: 1, maxLength: 40 }), async (keys) => {
        const q = new WorkQueue<string>({ clock: new FakeClock() });
        for (const k of keys) q.add(k);
        const seen: string[] = [];
        while (q.length > 0) {
          const k = (await q.get())!;
          seen.push(k);
          q.done(k);
        }
        expect(seen.sort()).toEqual([...new Set(keys)].sort());
      }),
    );
  });
});

describe("exponentialBackoffMs", () => {
  it("is 0 without failures and capped", () => {
    expect(exponentialBackoffMs(0, 10, 100)).toBe(0);
    expect(exponentialBackoffMs(1, 10, 100)).toBe(10);
    expect(exponentialBackoffMs(100, 10, 100)).toBe(100);
  });
});

describe("FakeClock", () => {
  it("fires timers in time order and sleep resolves on advance", async () => {
    const clock = new FakeClock(1_000);
    const order: number[] = [];
    clock.schedule(30, () => order.push(30));
    clock.schedule(10, () => order.push(10));
    const slept = clock.sleep(20).then(() => order.push(20));
    clock.advance(50);
    await slept;
    // Timers fire synchronously during advance; the sleeper's continuation runs
    // as a microtask afterwards.
    expect(order).toEqual([10, 30, 20]);
    expect(clock.nowMs()).toBe(1_050);
  });
});
