import { describe, expect, it } from "vitest";
import {
  createCapacityState,
  createLeadTimeState,
  decideCapacity,
  detectBurst,
  estimateLeadTime,
  makeCapacityPolicy,
  observeColdStarts,
  scheduleFloorAt,
  scheduleWindowAt,
  validateSchedule,
} from "../../src/domain/capacity/index.ts";
import type { CapacityPolicy, PrewarmSchedule } from "../../src/domain/capacity/index.ts";

const MIN = 60_000;

describe("scheduled windows", () => {
  // New York switches to daylight saving time on Sunday 2026-03-08 at 02:00 local.
  const morning: PrewarmSchedule = {
    name: "ny-morning",
    start: "0 9 * * *",
    end: "0 17 * * *",
    timezone: "America/New_York",
    minGpus: 32,
  };

  it("opens at 09:00 local on both sides of a DST change (14:00 UTC in EST, 13:00 UTC in EDT)", () => {
    const before = Date.UTC(2026, 2, 7, 14, 0); // Sat 09:00 EST
    const after = Date.UTC(2026, 2, 9, 13, 0); // Mon 09:00 EDT
    expect(scheduleWindowAt(morning, before - 1).open).toBe(false);
    expect(scheduleWindowAt(morning, before)).toMatchObject({
      open: true,
      opensAtMs: before,
      closesAtMs: Date.UTC(2026, 2, 7, 22, 0),
    });
    expect(scheduleWindowAt(morning, after - 1).open).toBe(false);
    expect(scheduleWindowAt(morning, after)).toMatchObject({
      open: true,
      opensAtMs: after,
      closesAtMs: Date.UTC(2026, 2, 9, 21, 0),
    });
    // On the change day itself the window opens at 13:00 UTC, not 14:00.
    const sunday = Date.UTC(2026, 2, 8, 13, 0);
    expect(scheduleWindowAt(morning, Date.UTC(2026, 2, 8, 12, 0))).toMatchObject({ open: false, opensAtMs: sunday });
  });

  it("pre-warms one lead time before the window opens, across the DST change", () => {
    const lead = 10 * MIN;
    const sunday = Date.UTC(2026, 2, 8, 13, 0); // 09:00 EDT
    expect(scheduleFloorAt([morning], sunday - lead - 1, lead).gpuCount).toBe(0);
    const floor = scheduleFloorAt([morning], sunday - lead, lead);
    expect(floor).toMatchObject({ gpuCount: 32, prewarming: true });
    // With the EST offset (one hour later) nothing would be warming yet at 12:50 UTC, so this fails
    // for a schedule evaluated in the wrong offset.
    expect(scheduleFloorAt([morning], sunday + 30 * MIN, lead)).toMatchObject({ gpuCount: 32, prewarming: false });
    expect(scheduleFloorAt([morning], Date.UTC(2026, 2, 8, 21, 0), lead).gpuCount).toBe(0);
  });

  it("handles a start inside the spring-forward gap (02:30 does not exist on 2026-03-08 in New York)", () => {
    const gap: PrewarmSchedule = {
      name: "gap",
      start: "30 2 * * *",
      durationMs: 60 * MIN,
      timezone: "America/New_York",
      minGpus: 4,
    };
    const w = scheduleWindowAt(gap, Date.UTC(2026, 2, 8, 5, 0)); // 00:00 EST
    expect(w.open).toBe(false);
    // croner runs fixed-time jobs at the first valid time after the gap: 03:00 EDT = 07:00 UTC.
    expect(w.opensAtMs).toBe(Date.UTC(2026, 2, 8, 7, 0));
  });

  it("takes the largest of overlapping windows, supports overnight windows and durations", () => {
    const night: PrewarmSchedule = {
      name: "night",
      start: "0 22 * * *",
      end: "0 6 * * *",
      timezone: "Etc/UTC",
      minGpus: 8,
    };
    const batch: PrewarmSchedule = { name: "batch", start: "0 23 * * *", durationMs: 30 * MIN, minGpus: 20 };
    const at = (h: number, m = 0) => Date.UTC(2026, 0, 10, h, m);
    expect(scheduleFloorAt([night, batch], at(22, 30), 0)).toMatchObject({ gpuCount: 8 });
    expect(scheduleFloorAt([night, batch], at(23, 10), 0)).toMatchObject({ gpuCount: 20 });
    expect(scheduleFloorAt([night, batch], at(23, 40), 0)).toMatchObject({ gpuCount: 8 });
    expect(scheduleFloorAt([night, batch], Date.UTC(2026, 0, 11, 5, 59), 0)).toMatchObject({ gpuCount: 8 });
    expect(scheduleFloorAt([night, batch], Date.UTC(2026, 0, 11, 6, 0), 0)).toMatchObject({ gpuCount: 0 });
  });

  it("reports invalid schedules as values naming the field", () => {
    expect(validateSchedule({ name: "x", start: "not a cron", durationMs: 1, minGpus: 1 })).toMatchObject({
      ok: false,
      field: "start",
    });
    expect(
      validateSchedule({ name: "x", start: "0 9 * * *", durationMs: 1, timezone: "Mars/Olympus", minGpus: 1 }),
    ).toMatchObject({ ok: false, field: "timezone" });
    expect(validateSchedule({ name: "x", start: "0 9 * * *", minGpus: 1 })).toMatchObject({ ok: false, field: "end" });
    const floor = scheduleFloorAt([{ name: "bad", start: "nope", durationMs: 1, minGpus: 9 }], Date.UTC(2026, 0, 1), 0);
    expect(floor.gpuCount).toBe(0);
    expect(floor.invalid[0]).toMatchObject({ name: "bad", field: "start" });
  });
});

describe("lead time learner", () => {
  it("uses the default until enough starts are seen, then a high quantile plus margin", () => {
    let s = createLeadTimeState();
    expect(estimateLeadTime(s)).toMatchObject({ source: "default", leadTimeMs: 6 * MIN });
    s = observeColdStarts(s, [2 * MIN]);
    expect(estimateLeadTime(s).coldStartMs).toBe(5 * MIN); // one fast start proves little
    s = observeColdStarts(s, [8 * MIN, 7 * MIN, 7.5 * MIN, NaN, -1]);
    const e = estimateLeadTime(s);
    expect(e.source).toBe("learned");
    expect(e.sampleCount).toBe(4);
    expect(e.coldStartMs).toBeGreaterThan(7.5 * MIN);
    expect(e.leadTimeMs).toBe(e.coldStartMs + MIN);
  });
});

describe("burst detector", () => {
  it("fires when the short window is far above the stable window, not on a trickle after silence", () => {
    expect(detectBurst(25_000, 10_000).burst).toBe(true);
    expect(detectBurst(15_000, 10_000).burst).toBe(false);
    expect(detectBurst(150, 0).burst).toBe(false); // floored at 100 tok/s: ratio 1.5
    expect(detectBurst(NaN, 10).burst).toBe(false);
  });
});

describe("pre-warm end to end (fake clock, simulated cold starts)", () => {
  /** A fleet whose new GPUs take coldStartMs to become Ready; drives decideCapacity every 15 s. */
  function simulate(
    policy: CapacityPolicy,
    fromMs: number,
    toMs: number,
    coldStartMs: number,
    loadAt: (t: number) => number,
  ) {
    let state = createCapacityState(policy);
    const readyAt: number[] = new Array<number>(policy.minGpus).fill(fromMs - 1);
    let provisioned = readyAt.length;
    const startedPods: number[] = [];
    const trace: { t: number; ready: number; provisioned: number; reason: string }[] = [];
    for (let t = fromMs; t <= toMs; t += 15_000) {
      const ready = readyAt.filter((r) => r <= t).length;
      // Report start-to-Ready durations of pods that became Ready since the last tick.
      const done = startedPods
        .filter((s) => s + coldStartMs <= t && s + coldStartMs > t - 15_000)
        .map(() => coldStartMs);
      const d = decideCapacity(
        {
          tokensPerSecond: loadAt(t),
          metricsAtMs: t,
          provisionedGpus: provisioned,
          readyGpus: ready,
          balancedness: 0.9,
          crossNodeShare: 0.1,
          usdPerGpuHour: 2,
          coldStartDurationsMs: done,
        },
        state,
        policy,
        t,
      );
      state = d.nextState;
      if (d.desiredGpus > provisioned)
        for (let k = provisioned; k < d.desiredGpus; k++) {
          readyAt.push(t + coldStartMs);
          startedPods.push(t);
        }
      if (d.desiredGpus < provisioned) readyAt.splice(d.desiredGpus);
      provisioned = d.desiredGpus;
      trace.push({ t, ready, provisioned, reason: d.reason });
    }
    return trace;
  }

  it("has the scheduled capacity Ready before the window opens, with a learned 7-minute cold start", () => {
    const policy = makeCapacityPolicy({
      slo: { metric: "itl", targetP99Ms: 50 },
      minGpus: 4,
      maxGpus: 128,
      forecast: { enabled: false },
      schedules: [
        { name: "berlin-morning", start: "0 9 * * 1-5", end: "0 12 * * 1-5", timezone: "Europe/Berlin", minGpus: 48 },
      ],
    });
    // Monday 2026-03-30 (after the EU DST change): 09:00 CEST = 07:00 UTC. Start at 05:00 UTC.
    const opens = Date.UTC(2026, 2, 30, 7, 0);
    const cold = 7 * MIN; // longer than the 5-minute default: must be learned from earlier starts
    const trace = simulate(policy, Date.UTC(2026, 2, 30, 5, 0), Date.UTC(2026, 2, 30, 8, 0), cold, (t) => {
      // Two small earlier bursts make the fleet start pods (and learn their cold start).
      const h = (t - Date.UTC(2026, 2, 30, 5, 0)) / 3_600_000;
      return (h > 0.1 && h < 0.25) || (h > 0.6 && h < 0.75) ? 30_000 : 3_000;
    });
    const atOpen = trace.find((x) => x.t === opens)!;
    expect(atOpen.ready).toBeGreaterThanOrEqual(48);
    const firstPrewarm = trace.find((x) => x.reason === "ScheduledPrewarm")!;
    expect(firstPrewarm.t).toBeLessThanOrEqual(opens - cold);
    expect(firstPrewarm.t).toBeGreaterThan(opens - cold - 5 * MIN); // not absurdly early
    // Still held while the window is open.
    for (const x of trace.filter((y) => y.t >= opens)) expect(x.ready).toBeGreaterThanOrEqual(48);
  });

  it("pre-warms ahead of a daily burst the forecaster has seen before (no cold-start SLO miss)", () => {
    const policy = makeCapacityPolicy({ slo: { metric: "itl", targetP99Ms: 50 }, minGpus: 4, maxGpus: 256 });
    const day = 86_400_000;
    const start = Date.UTC(2026, 0, 5);
    // A daily 10:00-11:00 UTC burst at 4x the base load, seen for 8 days.
    const loadAt = (t: number) => {
      const h = ((t - start) % day) / 3_600_000;
      return h >= 10 && h < 11 ? 60_000 : 15_000;
    };
    const cold = 6 * MIN;
    const trace = simulate(policy, start, start + 8 * day + 12 * 3_600_000, cold, loadAt);
    const lastBurst = start + 8 * day + 10 * 3_600_000;
    // The SLO count at the burst's load (no start headroom: that is for a state without history).
    const plain = makeCapacityPolicy({
      slo: { metric: "itl", targetP99Ms: 50 },
      minGpus: 4,
      maxGpus: 256,
      headroom: { enabled: false },
    });
    const need = decideCapacity(
      {
        tokensPerSecond: 60_000,
        metricsAtMs: 0,
        provisionedGpus: 256,
        readyGpus: 256,
        balancedness: 0.9,
        crossNodeShare: 0.1,
        usdPerGpuHour: 2,
      },
      createCapacityState(plain),
      plain,
      0,
    ).signals.sloGpus as number;
    const atBurst = trace.find((x) => x.t === lastBurst)!;
    expect(atBurst.ready).toBeGreaterThanOrEqual(need);
    expect(trace.some((x) => x.t < lastBurst && x.t > lastBurst - 30 * MIN && x.reason === "ForecastPrewarm")).toBe(
      true,
    );
  });
});
