// Public API of the heat estimator: counters -> smoothed per-expert rates + confidence.
export { estimateHeat } from "./rates.ts";
export type { CounterSample, ExpertCounterSeries, HeatEstimate, HeatEstimateOptions } from "./rates.ts";
