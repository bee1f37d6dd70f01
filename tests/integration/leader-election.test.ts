// Leader election against the real API server's Lease, with two electors whose
// fake clocks disagree (issue 20, item 5):
//  - they are never leader at the same time, for skews of 0, 7 s and +-60 s (more
//    than the 15 s lease duration), while the leader is cut off again and again;
//  - the standby takes over each time (liveness), so leadership flaps many times;
//  - after those flaps each replica's manager runs exactly --workers worker loops.
// Virtual time: both clocks advance together in 1 s steps; a replica that is "cut off"
// makes no API calls (as if partitioned), the other keeps calling tryOnce every
// retryPeriod. No timing assertions: everything is driven by the fake clocks.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { pino } from "pino";
import { startCluster, type LocalCluster } from "../../src/testing/cluster.ts";
import { LeaderElector } from "../../src/runtime/leader.ts";
import { Manager } from "../../src/runtime/manager.ts";
import { FakeClock } from "../../src/runtime/clock.ts";
import { createMetrics } from "../../src/observability/metrics.ts";
import { createRng } from "../../src/domain/rng.ts";

let cluster: LocalCluster;
const WORKERS = 3;

beforeAll(async () => {
  cluster = await startCluster({ name: "leader" });
});

afterAll(async () => {
  await cluster?.stop();
});

interface Replica {
  id: string;
  clock: FakeClock;
  elector: LeaderElector;
  manager: Manager;
  acquisitions: number;
  cutOffUntilS: number;
}

function replica(id: string, lease: string, startMs: number): Replica {
  const clock = new FakeClock(startMs);
  const logger = pino({ level: "silent" });
  const manager = new Manager({
    clock,
    logger,
    metrics: createMetrics({ defaultMetrics: false }),
    workers: WORKERS,
    informers: [],
    controller: { name: `c-${id}`, reconcile: () => Promise.resolve({}) },
  });
  const r: Replica = { id, clock, manager, acquisitions: 0, cutOffUntilS: 0, elector: undefined as never };
  r.elector = new LeaderElector({
    kubeConfig: cluster.kubeConfig,
    namespace: "default",
    name: lease,
    identity: id,
    leaseDurationMs: 15_000,
    renewDeadlineMs: 10_000,
    retryPeriodMs: 2_000,
    clock,
    logger,
    onStartedLeading: () => {
      r.acquisitions++;
      manager.startWorkers(() => []);
    },
    onStoppedLeading: () => manager.stopLeading(),
  });
  return r;
}

async function simulate(skewMs: number, seed: number): Promise<{ replicas: Replica[]; overlaps: string[] }> {
  const t0 = Date.UTC(2026, 0, 1);
  const lease = `skew-${skewMs < 0 ? "m" : ""}${Math.abs(skewMs)}`;
  const replicas = [replica("a", lease, t0), replica("b", lease, t0 + skewMs)];
  const rng = createRng(seed);
  const overlaps: string[] = [];
  const check = (atS: number) => {
    if (replicas.every((x) => x.elector.isLeader())) overlaps.push(`both lead at t=${atS}s`);
  };
  for (let s = 0; s < 360; s++) {
    // Every 50 s, cut the current leader off for 20-34 s (more than the lease duration).
    if (s % 50 === 10) {
      const leader = replicas.find((x) => x.elector.isLeader());
      if (leader) leader.cutOffUntilS = s + 20 + rng.int(15);
    }
    for (const x of rng.shuffle(replicas)) {
      if (s % 2 === 0 && s >= x.cutOffUntilS) await x.elector.tryOnce();
      check(s);
    }
    for (const x of replicas) {
      x.clock.advance(1_000);
      check(s);
    }
  }
  return { replicas, overlaps };
}

describe("leader election with skewed clocks (real Lease)", () => {
  for (const [skewMs, seed] of [
    [0, 1],
    [7_000, 2],
    [60_000, 3],
    [-60_000, 4],
  ] as const) {
    it(`never has two leaders, fails over, and keeps ${WORKERS} workers per replica with skew ${skewMs / 1000} s`, async () => {
      const { replicas, overlaps } = await simulate(skewMs, seed);
      expect(overlaps).toEqual([]);
      // Seven cut-offs of the leader: leadership changed hands several times.
      const flaps = replicas.reduce((n, x) => n + x.acquisitions, 0);
      console.log(
        `skew ${skewMs / 1000} s: acquisitions ${replicas.map((x) => `${x.id}=${x.acquisitions}`).join(" ")}, workers ${replicas.map((x) => x.manager.runningWorkers).join("/")}`,
      );
      expect(flaps).toBeGreaterThanOrEqual(5);
      for (const x of replicas) {
        expect(x.acquisitions, `replica ${x.id} never led`).toBeGreaterThan(0);
        expect(x.manager.runningWorkers, `workers of replica ${x.id} after ${x.acquisitions} acquisitions`).toBe(
          WORKERS,
        );
        await x.manager.shutdown();
      }
    });
  }
});
