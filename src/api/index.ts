// Public surface of the MoEDeployment API package.
export * from "./constants.ts";
export * from "./schema.ts";
export * from "./semantic.ts";
export * from "./parse.ts";
export { CEL_META_KEY, withRules, type CelValidation, type CrossFieldRule } from "./rules.ts";
