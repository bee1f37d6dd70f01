export * from "./model.ts";
export * from "./calibration.ts";
