// The drain deadline of a shard pod: how long a draining shard may keep generating the
// responses it has before it is deleted anyway. A shard that reports its requests done
// (turns not Ready) is deleted at once; the deadline bounds the wait for one that never does.
//
// With spec.serving.expertShards.drain the deadline follows the traffic: the longest output a
// request may still be generating (maxOutputTokens) at the p99 per-token latency observed now,
// so a slow fleet gets a longer drain than a fast one, within minSeconds..maxSeconds. Without it
// the operator's fixed --drain-seconds applies, as before.

export interface DrainSpec {
  readonly maxOutputTokens: number;
  readonly minSeconds: number;
  readonly maxSeconds: number;
}

export interface DrainDeadlineInput {
  readonly drain: DrainSpec | undefined;
  /** The operator's --drain-seconds: the deadline when the deployment sets no drain. */
  readonly fallbackSeconds: number;
  /** The SLO's metric: only a per-token metric turns into a generation time. */
  readonly sloMetric: "InterTokenLatency" | "TimeToFirstToken" | "TokenLatency";
  readonly sloTargetMs: number;
  /** Observed latency at the SLO's percentile (ms), when measured and usable. */
  readonly observedMs: number | undefined;
}

/** Seconds from the drain mark to deletion for a shard that stays Ready. */
export function drainDeadlineSeconds(i: DrainDeadlineInput): number {
  const d = i.drain;
  if (!d) return i.fallbackSeconds;
  if (i.sloMetric === "TimeToFirstToken") return d.maxSeconds;
  const measured = i.observedMs !== undefined && Number.isFinite(i.observedMs) && i.observedMs > 0;
  const perTokenMs = measured ? i.observedMs! : i.sloTargetMs;
  const generationSeconds = Math.ceil((perTokenMs * d.maxOutputTokens) / 1000);
  return Math.min(d.maxSeconds, Math.max(d.minSeconds, generationSeconds));
}

/** Termination grace period shard pods get: at least the longest the drain can last. */
export function drainGraceSeconds(drain: DrainSpec | undefined, fallbackSeconds: number): number {
  return drain ? drain.maxSeconds : fallbackSeconds;
}
