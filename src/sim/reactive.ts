// The reactive reference: how cheaply could any policy without foresight meet the SLO, given the
// cold start? A yardstick between the oracle (which knows every future minute) and the policies.
//
// The reference is deliberately generous, so a policy that beats it is doing well, and a target it
// cannot reach is out of reach of reactive scaling in general:
// - it sees the ground-truth requirement of every past minute (no policy does: they see delayed,
//   noisy load and latency scrapes and must model the requirement from them);
// - capacity for minute m is chosen from the minutes up to m - leadMinutes (the cold start plus
//   the scrape delay, rounded to whole minutes), and is then Ready exactly when needed and released
//   for free (no rate limits, no warming GPU-seconds);
// - its sizing rule is the cheapest of a small family (mean or max of the last w minutes times a
//   multiplier k) with k tuned in hindsight to exactly the attainment asked for.
// It is not a lower bound: an estimator that knows more (a seasonal profile, announced windows) can
// do better on some traces. It answers "what does reacting to measurements cost here".

/** The family of causal estimators tried: statistic over the last `windowMinutes` known minutes. */
export const REACTIVE_ESTIMATORS: readonly { readonly stat: "mean" | "max"; readonly windowMinutes: number }[] = [
  { stat: "mean", windowMinutes: 1 },
  { stat: "mean", windowMinutes: 3 },
  { stat: "mean", windowMinutes: 5 },
  { stat: "mean", windowMinutes: 10 },
  { stat: "mean", windowMinutes: 15 },
  { stat: "max", windowMinutes: 3 },
  { stat: "max", windowMinutes: 5 },
  { stat: "max", windowMinutes: 10 },
  { stat: "max", windowMinutes: 15 },
];

export interface ReactiveReferenceInput {
  /** Fewest ready GPUs per minute that meet the SLO (the oracle's requirement). */
  readonly requirement: Int32Array;
  /** Leading minutes not scored. */
  readonly warmupMinutes: number;
  /** Minutes between the last minute the estimate may use and the minute it serves (>= 1). */
  readonly leadMinutes: number;
  readonly minGpus: number;
  readonly maxGpus: number;
  /** Minutes no count up to maxGpus serves (1 = unattainable): never met, whatever the capacity. */
  readonly unattainable?: Uint8Array;
}

export interface ReactiveReference {
  /** Share of scored minutes asked for (0..1). */
  readonly targetAttainment: number;
  /** Share of scored minutes with capacity >= requirement at the chosen multiplier. */
  readonly attainment: number;
  /** The cheapest estimator reaching the target, e.g. "max of 5 min". */
  readonly estimator: string;
  /** Multiplier on the estimate (tuned in hindsight). */
  readonly multiplier: number;
  /** Ready GPU-hours over the scored minutes. */
  readonly gpuHours: number;
}

/** Per-minute estimate for minute m from minutes <= m - lead (minute 0's requirement before the trace starts). */
function estimates(req: Int32Array, lead: number, stat: "mean" | "max", w: number): Float64Array {
  const n = req.length;
  const at = (k: number): number => (n === 0 ? 0 : (req[Math.max(0, Math.min(n - 1, k))] as number));
  const out = new Float64Array(n);
  for (let m = 0; m < n; m++) {
    const last = m - lead;
    let acc = stat === "mean" ? 0 : -Infinity;
    for (let k = last - w + 1; k <= last; k++) {
      const v = at(k);
      acc = stat === "mean" ? acc + v : Math.max(acc, v);
    }
    out[m] = stat === "mean" ? acc / w : acc;
  }
  return out;
}

function clampGpus(input: ReactiveReferenceInput, x: number): number {
  return Math.min(input.maxGpus, Math.max(input.minGpus, Math.ceil(x - 1e-9)));
}

function score(input: ReactiveReferenceInput, est: Float64Array, k: number): { met: number; gpuMinutes: number } {
  const req = input.requirement;
  let met = 0;
  let gpuMinutes = 0;
  for (let m = input.warmupMinutes; m < req.length; m++) {
    const c = clampGpus(input, k * (est[m] as number));
    gpuMinutes += c;
    if (c >= (req[m] as number) && input.unattainable?.[m] !== 1) met++;
  }
  return { met, gpuMinutes };
}

/**
 * The cheapest hindsight-tuned reactive rule meeting `targetAttainment` of the scored minutes, or
 * undefined when no rule reaches it (e.g. minutes that even maxGpus cannot serve).
 */
export function reactiveReference(
  input: ReactiveReferenceInput,
  targetAttainment: number,
): ReactiveReference | undefined {
  const scored = input.requirement.length - input.warmupMinutes;
  if (scored <= 0) return undefined;
  const needed = Math.ceil(targetAttainment * scored - 1e-9);
  const lead = Math.max(1, Math.floor(input.leadMinutes));
  let best: ReactiveReference | undefined;
  for (const e of REACTIVE_ESTIMATORS) {
    const est = estimates(input.requirement, lead, e.stat, e.windowMinutes);
    // Attainment is monotone in k (capacity is), so bisection finds the smallest k reaching it.
    let hi = 1;
    while (score(input, est, hi).met < needed && hi < 64) hi *= 2;
    if (score(input, est, hi).met < needed) continue;
    let lo = 0;
    for (let i = 0; i < 40; i++) {
      const mid = (lo + hi) / 2;
      if (score(input, est, mid).met >= needed) hi = mid;
      else lo = mid;
    }
    const s = score(input, est, hi);
    const candidate: ReactiveReference = {
      targetAttainment,
      attainment: s.met / scored,
      estimator: `${e.stat} of ${e.windowMinutes} min`,
      multiplier: hi,
      gpuHours: s.gpuMinutes / 60,
    };
    if (best === undefined || candidate.gpuHours < best.gpuHours) best = candidate;
  }
  return best;
}

/** Whole minutes from the last usable measurement to the minute served: cold start (median) plus scrape delay, rounded up. */
export function reactiveLeadMinutes(coldStartMedianS: number, scrapeDelayS: number): number {
  return Math.max(1, Math.ceil((coldStartMedianS + scrapeDelayS) / 60));
}
