import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { drainDeadlineSeconds, drainGraceSeconds, type DrainDeadlineInput } from "../../src/domain/rollout/drain.ts";

const drain = { maxOutputTokens: 4096, minSeconds: 10, maxSeconds: 600 };
const base: DrainDeadlineInput = {
  drain,
  fallbackSeconds: 30,
  sloMetric: "InterTokenLatency",
  sloTargetMs: 50,
  observedMs: undefined,
};

describe("drain deadline", () => {
  it.each<[string, Partial<DrainDeadlineInput>, number]>([
    ["no drain in the spec: the operator's --drain-seconds", { drain: undefined }, 30],
    ["not measured yet: maxOutputTokens at the SLO target (4096 x 50 ms)", {}, 205],
    ["measured: maxOutputTokens at the observed p99 (4096 x 20 ms)", { observedMs: 20 }, 82],
    ["a slow fleet drains longer, capped at maxSeconds", { observedMs: 400 }, 600],
    ["a fast fleet keeps minSeconds", { observedMs: 1 }, 10],
    ["a bad reading falls back to the target", { observedMs: Number.NaN }, 205],
    ["a zero reading falls back to the target", { observedMs: 0 }, 205],
    ["TokenLatency is per token too", { sloMetric: "TokenLatency", observedMs: 30 }, 123],
    ["TimeToFirstToken says nothing of generation: maxSeconds", { sloMetric: "TimeToFirstToken", observedMs: 5 }, 600],
  ])("%s", (_name, over, want) => {
    expect(drainDeadlineSeconds({ ...base, ...over })).toBe(want);
  });

  it("stays within minSeconds..maxSeconds and never exceeds the grace period pods get", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 1_000_000 }),
        fc.integer({ min: 0, max: 3600 }),
        fc.integer({ min: 0, max: 3600 }),
        fc.option(fc.double({ min: -1e6, max: 1e300, noNaN: false })),
        (tokens, a, b, observed) => {
          const d = { maxOutputTokens: tokens, minSeconds: Math.min(a, b), maxSeconds: Math.max(a, b, 1) };
          const s = drainDeadlineSeconds({ ...base, drain: d, observedMs: observed ?? undefined });
          expect(s).toBeGreaterThanOrEqual(d.minSeconds);
          expect(s).toBeLessThanOrEqual(d.maxSeconds);
          expect(s).toBeLessThanOrEqual(drainGraceSeconds(d, 30));
        },
      ),
    );
  });
});
