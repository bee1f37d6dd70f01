export * from "./policy.ts";
export * from "./decide.ts";
export * from "./guards.ts";
