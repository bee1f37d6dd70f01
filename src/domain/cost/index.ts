export * from "./cost.ts";
