// The manager's workers across leadership flaps: regaining leadership never adds
// worker loops (issue 20, item 5), nothing reconciles while not leading, and no
// queued key is lost.
import { describe, expect, it } from "vitest";
import { pino } from "pino";
import { Manager } from "../../src/runtime/manager.ts";
import { FakeClock } from "../../src/runtime/clock.ts";
import { createMetrics } from "../../src/observability/metrics.ts";

const flush = async (rounds = 20) => {
  for (let i = 0; i < rounds; i++) await new Promise((r) => setImmediate(r));
};

function harness(workers: number) {
  const state = { inFlight: 0, maxInFlight: 0, done: [] as string[], release: [] as (() => void)[] };
  const metrics = createMetrics({ defaultMetrics: false });
  const manager = new Manager({
    clock: new FakeClock(),
    logger: pino({ level: "silent" }),
    metrics,
    workers,
    informers: [],
    controller: {
      name: "test",
      reconcile: async (key) => {
        state.inFlight++;
        state.maxInFlight = Math.max(state.maxInFlight, state.inFlight);
        await new Promise<void>((r) => state.release.push(r));
        state.inFlight--;
        state.done.push(key);
        return {};
      },
    },
  });
  return { manager, state, metrics };
}

describe("Manager workers", () => {
  it("runs exactly --workers loops after many leadership flaps, and reconciles at most that many keys at once", async () => {
    const { manager, state, metrics } = harness(2);
    for (let flap = 0; flap < 7; flap++) {
      manager.startWorkers(() => []);
      await flush(3);
      manager.stopLeading();
      await flush(3);
    }
    const keys = Array.from({ length: 20 }, (_, i) => `ns/d${i}`);
    manager.startWorkers(() => keys);
    await flush();
    expect(state.inFlight).toBe(2);
    expect(manager.runningWorkers).toBe(2);
    const gauge = await metrics.registry.getSingleMetricAsString("controller_runtime_active_workers");
    expect(gauge).toContain('controller_runtime_active_workers{controller="test"} 2');
    while (state.done.length < keys.length) {
      state.release.splice(0).forEach((r) => r());
      await flush();
    }
    expect(state.maxInFlight).toBe(2);
    expect([...state.done].sort()).toEqual([...keys].sort());
    await manager.shutdown();
    expect(manager.runningWorkers).toBe(0);
  });

  it("does not reconcile while not leading, keeps the queued keys, and resumes them on regaining leadership", async () => {
    const { manager, state } = harness(3);
    manager.startWorkers(() => []);
    await flush();
    manager.stopLeading();
    for (const k of ["a/1", "a/2", "a/3", "a/4"]) manager.enqueue(k);
    await flush();
    expect(state.inFlight).toBe(0);
    expect(manager.runningWorkers).toBe(3);
    manager.startWorkers(() => []);
    while (state.done.length < 4) {
      await flush();
      state.release.splice(0).forEach((r) => r());
    }
    expect([...state.done].sort()).toEqual(["a/1", "a/2", "a/3", "a/4"]);
    expect(state.maxInFlight).toBe(3);
    await manager.shutdown();
    expect(manager.runningWorkers).toBe(0);
  });
});
