// Issue 19 item 1: the pure staging plan (src/domain/prewarm/staging.ts): which nodes to stage for
// the forecast's extra shards, which to mark, which to evict. Table tests and properties.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  planStaging,
  retired,
  stagingNeed,
  type StagingInput,
  type StagingJob,
  type StagingNode,
} from "../../src/domain/prewarm/staging.ts";

const D = "0123456789abcdef";
const HOUR = 3_600_000;
const node = (name: string, freeGpus: number, extra: Partial<StagingNode> = {}): StagingNode => ({
  name,
  freeGpus,
  shardGpus: 0,
  ...extra,
});
const input = (nodes: StagingNode[], extra: Partial<StagingInput> = {}): StagingInput => ({
  nodes,
  currentShards: 0,
  neededShards: 0,
  digest: D,
  maxNodes: 8,
  evictAfterMs: 24 * HOUR,
  nowMs: 100 * HOUR,
  ...extra,
});

describe("planStaging: which nodes", () => {
  it("stages nothing when the forecast needs no more shards than exist", () => {
    const p = planStaging(input([node("a", 8), node("b", 8)], { currentShards: 4, neededShards: 4 }));
    expect(p.want).toEqual([]);
    expect(p.stage).toEqual([]);
    expect(p.extraGpus).toBe(0);
  });

  it("stages enough free GPUs for the extra shards, most free GPUs first", () => {
    const p = planStaging(input([node("a", 2), node("b", 8), node("c", 8)], { currentShards: 2, neededShards: 12 }));
    expect(p.want).toEqual(["b", "c"]);
    expect(p.stage).toEqual(["b", "c"]);
    expect(p.coveredGpus).toBe(10);
    expect(p.nodes.map((n) => [n.name, n.phase])).toEqual([
      ["b", "Staging"],
      ["c", "Staging"],
    ]);
  });

  it("prefers nodes already staged with the digest, then those staging, then the cheapest", () => {
    const nodes = [
      node("a", 8, { usdPerGpuHour: 1 }),
      node("b", 8, { usdPerGpuHour: 3, markedDigest: D }),
      node("c", 8, { usdPerGpuHour: 2, job: { action: "stage", state: "running", digest: D } }),
      node("d", 8, { usdPerGpuHour: 2 }),
    ];
    expect(planStaging(input(nodes, { neededShards: 8 })).want).toEqual(["b"]);
    expect(planStaging(input(nodes, { neededShards: 16 })).want).toEqual(["b", "c"]);
    const p = planStaging(input(nodes, { neededShards: 24 }));
    expect(p.want).toEqual(["a", "b", "c"]);
    expect(p.stage).toEqual(["a"]);
  });

  it("never wants more than maxNodes, and says what is not covered", () => {
    const nodes = ["a", "b", "c", "d"].map((n) => node(n, 4));
    const p = planStaging(input(nodes, { neededShards: 16, maxNodes: 2 }));
    expect(p.want).toEqual(["a", "b"]);
    expect(p.coveredGpus).toBe(8);
    expect(p.extraGpus).toBe(16);
  });

  it("skips nodes without free GPUs and nodes whose Job for this digest failed", () => {
    const nodes = [
      node("a", 0),
      node("b", 8, { job: { action: "stage", state: "failed", digest: D, message: "BackoffLimitExceeded" } }),
      node("c", 8),
    ];
    const p = planStaging(input(nodes, { neededShards: 4 }));
    expect(p.want).toEqual(["c"]);
    expect(p.nodes).toContainEqual({
      name: "b",
      phase: "Failed",
      lastNeededMs: 100 * HOUR,
      message: "BackoffLimitExceeded",
    });
  });
});

describe("planStaging: Jobs and marks", () => {
  it("marks a node whose stage Job succeeded, and deletes a Job made for another digest", () => {
    const nodes = [
      node("a", 8, { job: { action: "stage", state: "succeeded", digest: D } }),
      node("b", 8, { job: { action: "stage", state: "running", digest: "old" } }),
    ];
    const p = planStaging(input(nodes, { neededShards: 8 }));
    expect(p.mark).toEqual(["a"]);
    expect(p.deleteJobs).toEqual(["b"]);
    expect(p.stage).toEqual([]);
  });

  it("restages a wanted node with a stale digest and evicts an unwanted one at once", () => {
    const nodes = [node("a", 8, { markedDigest: "old" }), node("b", 0, { markedDigest: "old" })];
    const p = planStaging(input(nodes, { neededShards: 8 }));
    expect(p.stage).toEqual(["a"]);
    expect(p.evict).toEqual(["b"]);
  });

  it("evicts a staged node only after evictAfter without being wanted", () => {
    const now = 100 * HOUR;
    const staged = (lastNeededMs: number) => node("a", 8, { markedDigest: D, lastNeededMs });
    expect(planStaging(input([staged(now - 23 * HOUR)])).evict).toEqual([]);
    expect(planStaging(input([staged(now - 24 * HOUR)])).evict).toEqual(["a"]);
    // Wanted: no idle time (absent, so the status stays the same while the node stays wanted).
    const p = planStaging(input([staged(now - 30 * HOUR)], { neededShards: 1 }));
    expect(p.evict).toEqual([]);
    expect(p.nodes).toEqual([{ name: "a", phase: "Staged" }]);
    expect(planStaging(input([staged(now - 30 * HOUR)], { neededShards: 1, nowMs: now + 5_000 })).nodes).toEqual(
      p.nodes,
    );
  });

  it("keeps a staged node that runs our shards, and starts the idle clock of one whose time is unknown", () => {
    const p = planStaging(input([node("a", 0, { markedDigest: D, shardGpus: 8 }), node("b", 8, { markedDigest: D })]));
    expect(p.want).toEqual(["a"]);
    expect(p.evict).toEqual([]);
    const b = p.nodes.find((n) => n.name === "b")!;
    expect(b.lastNeededMs).toBe(100 * HOUR);
    // With that time written back, it is evicted once evictAfter has passed.
    const later = planStaging(
      input([node("b", 8, { markedDigest: D, lastNeededMs: b.lastNeededMs })], { nowMs: 100 * HOUR + 24 * HOUR }),
    );
    expect(later.evict).toEqual(["b"]);
  });

  it("restages a node serving our shards whose mark has a stale digest, instead of evicting it", () => {
    const p = planStaging(input([node("a", 0, { markedDigest: "old", shardGpus: 4 })]));
    expect(p.want).toEqual(["a"]);
    expect(p.stage).toEqual(["a"]);
    expect(p.evict).toEqual([]);
  });

  it("removes the mark when the evict Job succeeded, and waits while it runs", () => {
    const nodes = [
      node("a", 8, { markedDigest: D, job: { action: "evict", state: "succeeded", digest: D } }),
      node("b", 8, { markedDigest: D, job: { action: "evict", state: "running", digest: D } }),
    ];
    const p = planStaging(input(nodes, { neededShards: 16 }));
    expect(p.unmark).toEqual(["a"]);
    expect(p.want).toEqual([]); // evicting nodes are not picked until their mark is gone
    expect(p.nodes).toEqual([{ name: "b", phase: "Evicting", lastNeededMs: 100 * HOUR }]);
  });
});

describe("stagingNeed", () => {
  it("is the most of the decision, the forecast, the open window and the windows ahead", () => {
    expect(stagingNeed({ desiredShards: 4, forecastShards: 6, scheduleShards: 0, upcomingWindowShards: [] })).toBe(6);
    expect(stagingNeed({ desiredShards: 4, forecastShards: 0, scheduleShards: 0, upcomingWindowShards: [9, 2] })).toBe(
      9,
    );
  });
});

const arbNode = (i: number) =>
  fc.record({
    name: fc.constant(`n${String(i).padStart(2, "0")}`),
    freeGpus: fc.integer({ min: 0, max: 8 }),
    shardGpus: fc.integer({ min: 0, max: 8 }),
    usdPerGpuHour: fc.option(fc.integer({ min: 1, max: 4 }), { nil: undefined }),
    markedDigest: fc.option(fc.constantFrom(D, "old"), { nil: undefined }),
    lastNeededMs: fc.option(fc.integer({ min: 0, max: 100 * HOUR }), { nil: undefined }),
    job: fc.option(
      fc.record({
        action: fc.constantFrom("stage" as const, "evict" as const),
        state: fc.constantFrom("running" as const, "succeeded" as const, "failed" as const),
        digest: fc.constantFrom(D, "old"),
      }),
      { nil: undefined },
    ),
  });
const arbInput = fc
  .integer({ min: 0, max: 12 })
  .chain((k) => fc.tuple(...Array.from({ length: k }, (_, i) => arbNode(i))))
  .chain((nodes) =>
    fc.record({
      nodes: fc.shuffledSubarray(nodes, { minLength: nodes.length, maxLength: nodes.length }),
      currentShards: fc.integer({ min: 0, max: 40 }),
      neededShards: fc.integer({ min: 0, max: 80 }),
      digest: fc.constant(D),
      maxNodes: fc.integer({ min: 1, max: 12 }),
      evictAfterMs: fc.integer({ min: 0, max: 48 * HOUR }),
      nowMs: fc.constant(100 * HOUR),
    }),
  );

describe("planStaging: properties", () => {
  it("wants at most maxNodes; stages only wanted nodes without the digest; never evicts a wanted node", () => {
    fc.assert(
      fc.property(arbInput, (x) => {
        const p = planStaging(x);
        const want = new Set(p.want);
        expect(p.want.length).toBeLessThanOrEqual(x.maxNodes);
        for (const n of p.stage) {
          expect(want.has(n)).toBe(true);
          expect(x.nodes.find((m) => m.name === n)!.markedDigest).not.toBe(D);
        }
        for (const n of p.evict) expect(want.has(n)).toBe(false);
        // Each node gets at most one step.
        const all = [...p.stage, ...p.mark, ...p.evict, ...p.unmark, ...p.deleteJobs];
        expect(new Set(all).size).toBe(all.length);
      }),
    );
  });

  it("covers the extra shards when free nodes suffice and maxNodes allows", () => {
    fc.assert(
      fc.property(arbInput, (x) => {
        const p = planStaging({ ...x, maxNodes: 1_000 });
        const usable = x.nodes.filter((n) => n.freeGpus > 0 && !n.job);
        const free = usable.reduce((s, n) => s + n.freeGpus, 0);
        if (free >= p.extraGpus) expect(p.coveredGpus).toBe(p.extraGpus);
      }),
    );
  });

  it("is deterministic: the order of the nodes does not change the plan", () => {
    fc.assert(
      fc.property(arbInput, (x) => {
        expect(planStaging({ ...x, nodes: [...x.nodes].reverse() })).toEqual(planStaging(x));
      }),
    );
  });
});

describe("planStaging: retiring (staging turned off, or the deployment deleted)", () => {
  const job = (action: "stage" | "evict", state: StagingJob["state"]): StagingJob => ({ action, state, digest: D });
  it("wants nothing, stages nothing, and evicts every marked or listed node at once", () => {
    const p = planStaging(
      input(
        [
          node("marked-busy", 4, { markedDigest: D, shardGpus: 4 }),
          node("marked-stale", 8, { markedDigest: "old" }),
          node("listed", 8, { listed: true }),
          node("untouched", 8),
        ],
        { retiring: true, neededShards: 40, evictAfterMs: 48 * HOUR },
      ),
    );
    expect(p.want).toEqual([]);
    expect(p.stage).toEqual([]);
    expect(p.evict).toEqual(["listed", "marked-busy", "marked-stale"]);
    expect(p.nodes.map((n) => [n.name, n.phase])).toEqual([
      ["listed", "Evicting"],
      ["marked-busy", "Evicting"],
      ["marked-stale", "Evicting"],
    ]);
    expect(retired(p)).toBe(false);
  });

  it("stops a running stage Job first, evicts after a finished one, and unmarks after the evict Job", () => {
    const p = planStaging(
      input(
        [
          node("running", 8, { job: job("stage", "running") }),
          node("done", 8, { job: job("stage", "succeeded") }),
          node("failed", 8, { job: job("stage", "failed") }),
          node("evicted", 8, { markedDigest: D, job: job("evict", "succeeded") }),
          node("evicting", 8, { markedDigest: D, job: job("evict", "running") }),
        ],
        { retiring: true },
      ),
    );
    expect(p.deleteJobs).toEqual(["done", "failed", "running"]);
    expect(p.evict).toEqual(["done", "failed"]);
    expect(p.unmark).toEqual(["evicted"]);
    expect(p.mark).toEqual([]);
    // The stopped node stays in the status, so the next round evicts what its Job wrote.
    expect(p.nodes.map((n) => n.name)).toEqual(["done", "evicting", "failed", "running"]);
  });

  it("is retired when no node holds a mark, a Job or a place in the last status", () => {
    expect(retired(planStaging(input([node("a", 8), node("b", 0)], { retiring: true })))).toBe(true);
    // The last evict Job succeeded: its writes (unmark, delete the Job) finish the job.
    const last = node("a", 8, { markedDigest: D, job: { action: "evict", state: "succeeded", digest: D } });
    expect(retired(planStaging(input([last], { retiring: true })))).toBe(true);
    expect(retired(planStaging(input([node("a", 8, { listed: true })], { retiring: true })))).toBe(false);
  });

  // The world the plan acts on, one round at a time: Jobs finish by the next round, except failed
  // evict Jobs, which stay until their TTL (here: one round) and are retried.
  const arbWorld = fc.array(
    fc.record({
      mark: fc.constantFrom(undefined, D, "old"),
      job: fc.constantFrom(
        undefined,
        job("stage", "running"),
        job("stage", "succeeded"),
        job("stage", "failed"),
        job("evict", "running"),
        job("evict", "succeeded"),
        job("evict", "failed"),
      ),
      listed: fc.boolean(),
      evictFailsOnce: fc.boolean(),
    }),
    { maxLength: 8 },
  );

  it("converges: within a few rounds no mark, no Job and no listed node is left, and nothing is staged", () => {
    fc.assert(
      fc.property(arbWorld, (world) => {
        let nodes: StagingNode[] = world.map((w, i) => ({
          name: `n${i}`,
          freeGpus: 8,
          shardGpus: 0,
          ...(w.mark !== undefined ? { markedDigest: w.mark } : {}),
          ...(w.job ? { job: w.job } : {}),
          ...(w.listed ? { listed: true } : {}),
        }));
        const failsOnce = new Set(world.flatMap((w, i) => (w.evictFailsOnce ? [`n${i}`] : [])));
        for (let round = 0; round < 8; round++) {
          const p = planStaging(input(nodes, { retiring: true }));
          expect(p.stage).toEqual([]);
          expect(p.mark).toEqual([]);
          const done = retired(p);
          const listed = new Set(p.nodes.map((n) => n.name));
          nodes = nodes.map((n) => {
            let next: StagingNode = { name: n.name, freeGpus: 8, shardGpus: 0 };
            if (n.markedDigest !== undefined && !p.unmark.includes(n.name))
              next = { ...next, markedDigest: n.markedDigest };
            if (listed.has(n.name)) next = { ...next, listed: true };
            const kept = n.job && !p.deleteJobs.includes(n.name) && !p.unmark.includes(n.name);
            if (p.evict.includes(n.name)) {
              const fails = failsOnce.delete(n.name);
              next = { ...next, job: job("evict", fails ? "failed" : "succeeded") };
            } else if (kept && n.job!.action === "evict") {
              // Running finishes; a failed one is removed by its TTL and the node is evicted again.
              if (n.job!.state === "running") next = { ...next, job: job("evict", "succeeded") };
            } else if (kept) next = { ...next, job: { ...n.job!, state: "succeeded" } };
            return next;
          });
          if (done) {
            expect(nodes.every((n) => n.markedDigest === undefined && n.job === undefined && !n.listed)).toBe(true);
            return;
          }
        }
        throw new Error(`not retired after 8 rounds: ${JSON.stringify(nodes)}`);
      }),
    );
  });
});
