// Cost: the price of one GPU-hour on a node (from the spec's pricing rules and the node's labels),
// and the GPU count a budget allows. Pure arithmetic; an unknown price is reported as undefined,
// not guessed. The USD/hour of a decision is summed in src/domain/decide.ts from these prices.

/** The pricing rules of spec.cost (structurally the API type; plain data here). */
export interface NodePricing {
  /** Node label whose value is the node's USD per GPU-hour as a decimal; takes precedence over table. */
  readonly priceLabelKey?: string | undefined;
  /** Explicit price table keyed by the value of one node label. */
  readonly table?:
    | {
        readonly labelKey: string;
        readonly prices: ReadonlyArray<{ readonly labelValue: string; readonly usdPerGpuHour: number }>;
      }
    | undefined;
  /** Price when no other rule prices a node; 0 means unknown. */
  readonly defaultUsdPerGpuHour: number;
}

/** Price of one GPU-hour on a node with these labels: priceLabelKey, then table, then the default; undefined when unknown. */
export function nodeUsdPerGpuHour(labels: Readonly<Record<string, string>>, pricing: NodePricing): number | undefined {
  const labelOf = (key: string): string | undefined => (Object.hasOwn(labels, key) ? labels[key] : undefined);
  if (pricing.priceLabelKey) {
    const raw = labelOf(pricing.priceLabelKey);
    const v = Number(raw);
    if (raw !== undefined && Number.isFinite(v) && v >= 0) return v;
  }
  if (pricing.table) {
    const value = labelOf(pricing.table.labelKey);
    const entry = pricing.table.prices.find((p) => p.labelValue === value);
    if (entry) return entry.usdPerGpuHour;
  }
  return pricing.defaultUsdPerGpuHour > 0 ? pricing.defaultUsdPerGpuHour : undefined;
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
  const units = Math.floor(Math.max(0, budgetUsdPerHour) / usdPerGpuHour / step + 1e-9);
  return units * step;
}
