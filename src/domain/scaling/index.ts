export * from "./policy.ts";
export * from "./decide.ts";
export * from "./guards.ts";
export * from "./quality.ts";
export * from "./ceiling.ts";
export * from "./screen.ts";
export * from "./settle.ts";
