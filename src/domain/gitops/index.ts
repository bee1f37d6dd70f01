export * from "./track.ts";
export * from "./propose.ts";
export * from "./manifest.ts";
export * from "./pull-request.ts";
