// The oracle: the fewest GPU-hours that meet the SLO every minute, knowing the future load and
// the cold-start delay.
//
// 1. Requirement: for each minute in order, the fewest ready GPUs whose ground-truth p99 over the
//    minute meets the SLO, starting from the queue the previous minute left (ground truth, same
//    jitter as every policy). Found by galloping from the previous minute's count, then bisection.
// 2. Plan: GPUs are interchangeable, so the skyline r(m) decomposes into levels k = 1..max r; level k
//    is needed on the minutes with r(m) >= k. A GPU that is not needed for a gap of g seconds is kept
//    when g <= D (the cold start: restarting would cost D GPU-seconds of warming) and released
//    otherwise, then restarted exactly D before it is needed again. Each level's cost is minimal
//    independently, so the sum is the minimum for the skyline.

import { latencyMultiplier, MinuteAggregator, stepSecond } from "./truth.ts";
import type { GroundTruthParams, QueueState } from "./truth.ts";
import type { ExpertFleetModel } from "./experts.ts";
import type { WorkSeries } from "./types.ts";

export interface RequirementInput {
  readonly work: WorkSeries;
  readonly truth: GroundTruthParams;
  readonly waitWeight: number;
  readonly jitter: Float32Array;
  readonly experts: ExpertFleetModel;
  readonly sloMs: number;
  readonly minGpus: number;
  readonly maxGpus: number;
  /**
   * Counts searched in steps of this many GPUs (group mode: a whole group; default 1). The bounds
   * are multiples of it. The expert model's quality is not monotone in the GPU count, so a count
   * rounded up from the GPU requirement may miss the SLO: the search runs over whole units.
   */
  readonly unit?: number;
}

export interface Requirement {
  /** Fewest ready GPUs per minute (maxGpus where even that fails). */
  readonly gpus: Int32Array;
  /** Minutes no count up to maxGpus meets the SLO in. */
  readonly unattainableMinutes: number;
  /** 1 for each of those minutes. */
  readonly unattainable: Uint8Array;
}

function runMinute(input: RequirementInput, m: number, gpus: number, state: QueueState, agg: MinuteAggregator): number {
  const { work, truth, waitWeight, jitter, experts } = input;
  const start = m * 60;
  const end = Math.min(work.seconds, start + 60);
  for (let s = start; s < end; s++) {
    const q = experts.quality(gpus, Math.floor(s / experts.epochS));
    const base = stepSecond(truth, waitWeight, state, work.tokens[s] as number, {
      readyGpus: gpus,
      balancedness: q.balancedness,
      crossNodeShare: q.crossNodeShare,
    });
    agg.add(base * latencyMultiplier(truth, jitter[s] as number), work.tokens[s] as number);
  }
  return agg.flush()[0];
}

/** The fewest GPUs in [lo, hi] meeting the SLO in minute m from the queue `state` (hi + flag when none). */
function fewestMeeting(
  input: RequirementInput,
  m: number,
  state: QueueState,
  prev: number,
  agg: MinuteAggregator,
): { readonly gpus: number; readonly attainable: boolean } {
  // Counts in units of input.unit GPUs (1 unless group mode).
  const u = input.unit ?? 1;
  const lo = Math.ceil(input.minGpus / u);
  const hi = Math.max(lo, Math.floor(input.maxGpus / u));
  prev = Math.min(hi, Math.max(lo, Math.ceil(prev / u)));
  const meets = (n: number): boolean => {
    const trial: QueueState = { backlogTokens: state.backlogTokens };
    const p99 = runMinute(input, m, n * u, trial, agg);
    return !(p99 > input.sloMs); // NaN (no traffic) meets
  };
  if (meets(prev)) {
    // Gallop down.
    let good = prev;
    let step = 1;
    let bad = lo - 1;
    while (good > lo) {
      const c = Math.max(lo, good - step);
      if (meets(c)) {
        good = c;
        step *= 2;
      } else {
        bad = c;
        break;
      }
    }
    while (good - bad > 1 && bad >= lo) {
      const mid = (good + bad) >> 1;
      if (meets(mid)) good = mid;
      else bad = mid;
    }
    return { gpus: good * u, attainable: true };
  }
  let bad = prev;
  let step = 1;
  let good = -1;
  while (bad < hi) {
    const c = Math.min(hi, bad + step);
    if (meets(c)) {
      good = c;
      break;
    }
    bad = c;
    step *= 2;
  }
  if (good < 0) return { gpus: hi * u, attainable: false };
  while (good - bad > 1) {
    const mid = (good + bad) >> 1;
    if (meets(mid)) good = mid;
    else bad = mid;
  }
  return { gpus: good * u, attainable: true };
}

export function computeRequirement(
  input: RequirementInput,
  onMinute?: (m: number, minutes: number) => void,
): Requirement {
  const minutes = Math.ceil(input.work.seconds / 60);
  const gpus = new Int32Array(minutes);
  const agg = new MinuteAggregator();
  const state: QueueState = { backlogTokens: 0 };
  let unattainable = 0;
  const unattainableFlags = new Uint8Array(minutes);
  let prev = input.minGpus;
  for (let m = 0; m < minutes; m++) {
    const f = fewestMeeting(input, m, state, prev, agg);
    if (!f.attainable) {
      unattainable++;
      unattainableFlags[m] = 1;
    }
    gpus[m] = f.gpus;
    runMinute(input, m, f.gpus, state, agg);
    prev = f.gpus;
    if (onMinute !== undefined && (m & 255) === 0) onMinute(m, minutes);
  }
  return { gpus, unattainableMinutes: unattainable, unattainable: unattainableFlags };
}

/**
 * The largest attainable requirement among the given minutes, each searched after `leadInMinutes`
 * minutes replayed from an empty queue (so the queue it inherits is close to the full replay's).
 * A cheap stand-in for max(computeRequirement(...).gpus) when the candidates hold the peak.
 */
export function peakRequirementAt(
  input: RequirementInput,
  candidateMinutes: readonly number[],
  leadInMinutes = 3,
): number {
  const agg = new MinuteAggregator();
  let peak = 0;
  for (const c of candidateMinutes) {
    const state: QueueState = { backlogTokens: 0 };
    let prev = input.minGpus;
    for (let m = Math.max(0, c - leadInMinutes); m <= c; m++) {
      const f = fewestMeeting(input, m, state, prev, agg);
      runMinute(input, m, f.gpus, state, agg);
      prev = f.gpus;
      if (m === c && f.attainable) peak = Math.max(peak, f.gpus);
    }
  }
  return peak;
}

export interface OraclePlan {
  /** Serving GPUs per second (the requirement; bridged GPUs stand by). */
  readonly ready: Int32Array;
  /** Provisioned (ready + warming) GPUs per second. */
  readonly provisioned: Int32Array;
  readonly gpuSeconds: number;
}

/** Cheapest fleet timeline covering the per-minute requirement with cold start coldStartS. */
export function planOracle(requirement: Int32Array, seconds: number, coldStartS: number): OraclePlan {
  const minutes = requirement.length;
  const readyDiff = new Int32Array(seconds + 1);
  const provDiff = new Int32Array(seconds + 1);
  const d = Math.max(0, Math.round(coldStartS));
  let maxLevel = 0;
  for (const r of requirement) maxLevel = Math.max(maxLevel, r);
  const add = (diff: Int32Array, from: number, to: number): void => {
    const a = Math.max(0, Math.min(seconds, from));
    const b = Math.max(0, Math.min(seconds, to));
    if (b <= a) return;
    diff[a] = (diff[a] as number) + 1;
    diff[b] = (diff[b] as number) - 1;
  };
  for (let k = 1; k <= maxLevel; k++) {
    let m = 0;
    let lastEnd = -1; // second the previous interval of this level ended, -1 = none yet
    while (m < minutes) {
      while (m < minutes && (requirement[m] as number) < k) m++;
      if (m >= minutes) break;
      const a = m;
      while (m < minutes && (requirement[m] as number) >= k) m++;
      const startS = a * 60;
      const endS = Math.min(seconds, m * 60);
      if (lastEnd < 0) {
        // First use: warm from second 0 if a cold start would not finish in time, else start D ahead.
        const warmFrom = startS - d;
        if (warmFrom <= 0) {
          add(readyDiff, 0, endS);
          add(provDiff, 0, endS);
        } else {
          add(readyDiff, startS, endS);
          add(provDiff, warmFrom, endS);
        }
      } else if (startS - lastEnd <= d) {
        add(readyDiff, lastEnd, endS); // bridge the gap
        add(provDiff, lastEnd, endS);
      } else {
        add(readyDiff, startS, endS);
        add(provDiff, startS - d, endS);
      }
      lastEnd = endS;
    }
  }
  const ready = new Int32Array(seconds);
  const provisioned = new Int32Array(seconds);
  let r = 0;
  let p = 0;
  let gpuSeconds = 0;
  for (let s = 0; s < seconds; s++) {
    r += readyDiff[s] as number;
    p += provDiff[s] as number;
    // GPUs kept across a short gap stand by (paid, warm) outside the placement: the serving set is
    // exactly the requirement, so the oracle sees the very ground truth the requirement was found on.
    ready[s] = Math.min(r, requirement[Math.floor(s / 60)] as number);
    provisioned[s] = p;
    gpuSeconds += p;
  }
  return { ready, provisioned, gpuSeconds };
}
