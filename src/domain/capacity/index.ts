// Public API of the capacity core (issue 5): latency model and calibration, capacity decision,
// pre-warm (schedules, forecast, burst, lead time) and cost. `decideCapacity` is the one entry
// point; the pieces are exported for composition, the simulator and tests.
export * from "../latency/index.ts";
export * from "../scaling/index.ts";
export * from "../prewarm/index.ts";
export * from "../cost/index.ts";
