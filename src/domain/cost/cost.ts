// Cost: USD per GPU-hour by node type; USD/hour now; GPU-hours, USD and USD per 1M tokens over a
// window; the GPU count a budget allows. Pure arithmetic; unknown prices are reported, not guessed
// (unless the caller gives a default price).

/** USD per GPU-hour, keyed by node type (e.g. the node's instance-type label). */
export type GpuPriceTable = Readonly<Record<string, number>>;

/** Public reference price used in the design's calibration (DeepSeek's $2 per H800 GPU-hour). */
export const REFERENCE_USD_PER_GPU_HOUR = 2;

export interface GpuAllocation {
  readonly nodeType: string;
  readonly gpuCount: number;
}

export interface PriceOptions {
  /** Price for node types missing from the table; when absent such GPUs are unpriced. */
  readonly defaultUsdPerGpuHour?: number;
}

function validPrice(p: number | undefined): p is number {
  return p !== undefined && Number.isFinite(p) && p >= 0;
}

/** Price of one GPU-hour on nodeType, or undefined when unknown. */
export function usdPerGpuHourFor(nodeType: string, prices: GpuPriceTable, options: PriceOptions = {}): number | undefined {
  const p = Object.hasOwn(prices, nodeType) ? prices[nodeType] : undefined;
  if (validPrice(p)) return p;
  return validPrice(options.defaultUsdPerGpuHour) ? options.defaultUsdPerGpuHour : undefined;
}

export interface CostRate {
  readonly usdPerHour: number;
  readonly gpuCount: number;
  /** GPUs whose node type has no price (excluded from usdPerHour). */
  readonly unpricedGpuCount: number;
  readonly unpricedNodeTypes: readonly string[];
}

/** USD/hour for a set of allocations now. */
export function costRateUsdPerHour(
  allocations: readonly GpuAllocation[],
  prices: GpuPriceTable,
  options: PriceOptions = {},
): CostRate {
  let usdPerHour = 0;
  let gpuCount = 0;
  let unpricedGpuCount = 0;
  const unpriced = new Set<string>();
  for (const a of allocations) {
    const n = Number.isFinite(a.gpuCount) ? Math.max(0, a.gpuCount) : 0;
    gpuCount += n;
    const p = usdPerGpuHourFor(a.nodeType, prices, options);
    if (p === undefined) {
      if (n > 0) {
        unpriced.add(a.nodeType);
        unpricedGpuCount += n;
      }
      continue;
    }
    usdPerHour += n * p;
  }
  return { usdPerHour, gpuCount, unpricedGpuCount, unpricedNodeTypes: [...unpriced].sort() };
}

/** Average price per GPU-hour over the priced GPUs of the allocations (the marginal price for sizing). */
export function blendedUsdPerGpuHour(
  allocations: readonly GpuAllocation[],
  prices: GpuPriceTable,
  options: PriceOptions = {},
): number | undefined {
  const r = costRateUsdPerHour(allocations, prices, options);
  const priced = r.gpuCount - r.unpricedGpuCount;
  return priced > 0 ? r.usdPerHour / priced : undefined;
}

/**
 * Most GPUs (a multiple of gpuStep) whose cost fits budgetUsdPerHour at usdPerGpuHour. Undefined
 * when there is no budget; Infinity for free GPUs.
 */
export function maxGpusWithinBudget(
  budgetUsdPerHour: number | undefined,
  usdPerGpuHour: number,
  gpuStep = 1,
): number | undefined {
  if (budgetUsdPerHour === undefined || !Number.isFinite(budgetUsdPerHour)) return undefined;
  if (!(usdPerGpuHour > 0)) return Infinity;
  const step = Math.max(1, Math.floor(gpuStep));
  // A small epsilon so $10 / $2.5 is 4, not 3.9999999.
  const units = Math.floor((Math.max(0, budgetUsdPerHour) / usdPerGpuHour) / step + 1e-9);
  return units * step;
}

/** One point of a usage history: the allocation and load from atMs until the next sample. */
export interface UsageSample {
  readonly atMs: number;
  readonly allocations: readonly GpuAllocation[];
  /** Tokens/s served while this sample held. */
  readonly tokensPerSecond: number;
}

export interface CostSummary {
  readonly fromMs: number;
  readonly toMs: number;
  readonly gpuHours: number;
  readonly usd: number;
  readonly tokens: number;
  /** Undefined when no tokens were served in the window. */
  readonly usdPerMillionTokens: number | undefined;
  /** Time-averaged USD/hour over the window. */
  readonly averageUsdPerHour: number;
  /** GPU-hours on node types without a price (excluded from usd). */
  readonly unpricedGpuHours: number;
  readonly unpricedNodeTypes: readonly string[];
}

/**
 * Integrate a usage history over [fromMs, toMs): each sample holds until the next one (the last
 * until toMs); time before the first sample counts as nothing running.
 */
export function summarizeCost(
  samples: readonly UsageSample[],
  fromMs: number,
  toMs: number,
  prices: GpuPriceTable,
  options: PriceOptions = {},
): CostSummary {
  const sorted = [...samples].filter((s) => Number.isFinite(s.atMs)).sort((a, b) => a.atMs - b.atMs);
  let gpuHours = 0;
  let usd = 0;
  let tokens = 0;
  let unpricedGpuHours = 0;
  const unpriced = new Set<string>();
  for (let i = 0; i < sorted.length; i++) {
    const s = sorted[i] as UsageSample;
    const next = i + 1 < sorted.length ? (sorted[i + 1] as UsageSample).atMs : toMs;
    const start = Math.max(fromMs, s.atMs);
    const end = Math.min(toMs, next);
    if (!(end > start)) continue;
    const hours = (end - start) / 3_600_000;
    const rate = costRateUsdPerHour(s.allocations, prices, options);
    gpuHours += rate.gpuCount * hours;
    usd += rate.usdPerHour * hours;
    unpricedGpuHours += rate.unpricedGpuCount * hours;
    for (const t of rate.unpricedNodeTypes) unpriced.add(t);
    if (Number.isFinite(s.tokensPerSecond) && s.tokensPerSecond > 0) tokens += s.tokensPerSecond * (end - start) / 1000;
  }
  const windowHours = Math.max(0, toMs - fromMs) / 3_600_000;
  return {
    fromMs,
    toMs,
    gpuHours,
    usd,
    tokens,
    usdPerMillionTokens: tokens > 0 ? usd / (tokens / 1e6) : undefined,
    averageUsdPerHour: windowHours > 0 ? usd / windowHours : 0,
    unpricedGpuHours,
    unpricedNodeTypes: [...unpriced].sort(),
  };
}
