export * from "./track.ts";
export * from "./propose.ts";
export * from "./manifest.ts";
export * from "./pull-request.ts";
export * from "./schedules.ts";
export * from "./placement-file.ts";
