export * from "./schedule.ts";
export * from "./forecast.ts";
export * from "./burst.ts";
export * from "./leadtime.ts";
export * from "./corroborate.ts";
export * from "./tiers.ts";
export * from "./staging.ts";
