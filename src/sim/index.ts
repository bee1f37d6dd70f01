// Public API of the fleet simulator (moe-sim): trace readers, arrivals, fleet model, policies,
// oracle, runner and reports. See docs/adr/0004-simulator.md.
export * from "./types.ts";
export * from "./traces.ts";
export * from "./arrivals.ts";
export * from "./synthetic.ts";
export * from "./experts.ts";
export * from "./truth.ts";
export * from "./policies.ts";
export * from "./oracle.ts";
export * from "./runner.ts";
export * from "./scenario.ts";
export * from "./reactive.ts";
export * from "./report.ts";
export * from "./stress.ts";
export * from "./coldstart.ts";
export * from "./groups.ts";
