// A property test of leader election (issue 20, item 5): two electors with skewed fake
// clocks against an in-memory Lease store that behaves like the API server's
// (resourceVersion on every write, Conflict on a stale replace, AlreadyExists on a second
// create, NotFound before the first) and answers after a random number of event-loop
// turns, so reads and writes of the two electors interleave and may span clock ticks.
// Random skews up to +-120 s (8 lease durations) and random cut-offs of either replica:
// the two are never leader at the same time.
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { pino } from "pino";
import { ApiException, KubeConfig, type V1Lease } from "@kubernetes/client-node";
import { LeaderElector, type LeaseApi } from "../../src/runtime/leader.ts";
import { FakeClock } from "../../src/runtime/clock.ts";
import { createRng, type Rng } from "../../src/domain/rng.ts";

const tick = () => new Promise<void>((r) => setImmediate(r));

function apiError(code: number, reason: string): ApiException<unknown> {
  return new ApiException(code, reason, JSON.stringify({ kind: "Status", code, reason, message: reason }), {});
}

/** One namespace's Leases, with the API server's optimistic concurrency. */
function memoryLeaseApi(rng: Rng): LeaseApi {
  const leases = new Map<string, V1Lease>();
  let rv = 0;
  const latency = async () => {
    for (let i = rng.int(4); i > 0; i--) await tick();
  };
  const store = (key: string, body: V1Lease): V1Lease => {
    const saved = structuredClone({ ...body, metadata: { ...body.metadata, resourceVersion: String(++rv) } });
    leases.set(key, saved);
    return structuredClone(saved);
  };
  const api = {
    async readNamespacedLease({ name, namespace }: { name: string; namespace: string }) {
      await latency();
      const l = leases.get(`${namespace}/${name}`);
      if (!l) throw apiError(404, "NotFound");
      const copy = structuredClone(l);
      await latency();
      return copy;
    },
    async createNamespacedLease({ namespace, body }: { namespace: string; body: V1Lease }) {
      await latency();
      const key = `${namespace}/${body.metadata!.name}`;
      if (leases.has(key)) throw apiError(409, "AlreadyExists");
      const saved = store(key, body);
      await latency();
      return saved;
    },
    async replaceNamespacedLease({ name, namespace, body }: { name: string; namespace: string; body: V1Lease }) {
      await latency();
      const key = `${namespace}/${name}`;
      const cur = leases.get(key);
      if (!cur) throw apiError(404, "NotFound");
      if (body.metadata?.resourceVersion !== cur.metadata?.resourceVersion) throw apiError(409, "Conflict");
      const saved = store(key, body);
      await latency();
      return saved;
    },
  };
  return api as unknown as LeaseApi;
}

interface Cut {
  who: 0 | 1;
  atS: number;
  forS: number;
}

async function simulate(
  skewMs: number,
  seed: number,
  cuts: Cut[],
): Promise<{ overlaps: string[]; acquisitions: number[] }> {
  const rng = createRng(seed);
  const leaseApi = memoryLeaseApi(rng.fork(1));
  const t0 = Date.UTC(2026, 0, 1);
  const acquisitions = [0, 0];
  const replicas = [0, 1].map((i) => {
    const clock = new FakeClock(t0 + (i === 1 ? skewMs : 0));
    const elector = new LeaderElector({
      kubeConfig: new KubeConfig(),
      leaseApi,
      namespace: "ns",
      name: "lease",
      identity: `r${i}`,
      leaseDurationMs: 15_000,
      renewDeadlineMs: 10_000,
      retryPeriodMs: 2_000,
      clock,
      logger: pino({ level: "silent" }),
      onStartedLeading: () => acquisitions[i]!++,
      onStoppedLeading: () => {},
    });
    return { i, clock, elector, inFlight: undefined as Promise<void> | undefined, nextS: 0 };
  });
  const overlaps: string[] = [];
  const check = (s: number) => {
    if (replicas.every((x) => x.elector.isLeader())) overlaps.push(`both lead at ${s}s`);
  };
  for (let s = 0; s < 240; s++) {
    for (const x of replicas) {
      const cutOff = cuts.some((c) => c.who === x.i && s >= c.atS && s < c.atS + c.forS);
      if (x.inFlight || cutOff || s < x.nextS) continue;
      x.nextS = s + 2;
      x.inFlight = x.elector.tryOnce().finally(() => (x.inFlight = undefined));
    }
    for (let k = rng.int(8); k > 0; k--) {
      await tick();
      check(s);
    }
    for (const x of replicas) {
      x.clock.advance(1_000);
      check(s);
    }
  }
  await Promise.all(replicas.map((x) => x.inFlight));
  return { overlaps, acquisitions };
}

describe("leader election property (in-memory Lease with API-server semantics)", () => {
  it("never has two leaders, for any clock skew up to +-120 s and any cut-offs", async () => {
    const cut = fc.record({
      who: fc.constantFrom<0 | 1>(0, 1),
      atS: fc.integer({ min: 0, max: 220 }),
      forS: fc.integer({ min: 1, max: 60 }),
    });
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: -120_000, max: 120_000 }),
        fc.integer({ min: 1, max: 2 ** 30 }),
        fc.array(cut, { maxLength: 8 }),
        async (skewMs, seed, cuts) => {
          expect((await simulate(skewMs, seed, cuts)).overlaps).toEqual([]);
        },
      ),
      { numRuns: 150, seed: 20_2026 },
    );
  });

  it("fails over: a standby takes the lease after the leader is cut off for longer than the lease duration", async () => {
    // Skew of 60 s; r0 is cut off for 40 s from t=20 s, r1 for 40 s from t=100 s.
    const { overlaps, acquisitions } = await simulate(60_000, 7, [
      { who: 0, atS: 20, forS: 40 },
      { who: 1, atS: 100, forS: 40 },
    ]);
    expect(overlaps).toEqual([]);
    expect(acquisitions[0]).toBeGreaterThanOrEqual(1);
    expect(acquisitions[1]).toBeGreaterThanOrEqual(1);
  });
});
