// Cross-field rules written once and used twice: as CEL `x-kubernetes-validations`
// in the generated CRD (the API server enforces them) and as zod refinements (the
// operator enforces the same rules when it reads an object, and unit tests can
// exercise them without a server).
import type { z } from "zod";

export interface CrossFieldRule<T> {
  /** CEL expression over `self` (the object the rule is attached to). */
  rule: string;
  /** Human message; names the offending field with its full path from the root. */
  message: string;
  /** Relative JSONPath (".a.b") of the field the error is reported on. */
  fieldPath?: string;
  /** The same rule in TypeScript, on the parsed (defaulted) value. */
  holds: (self: T) => boolean;
  /** A more precise message for zod, with the values in it (CEL keeps the static `message`). */
  messageOf?: (self: T) => string;
}

export interface CelValidation {
  rule: string;
  message: string;
  fieldPath?: string;
}

/** Key under which rules are stored in zod metadata; the CRD generator emits it as is. */
export const CEL_META_KEY = "x-kubernetes-validations";

/**
 * Attaches the rules to an object schema: a zod refinement that reports each
 * violated rule at its fieldPath, and metadata the CRD generator turns into CEL.
 */
export function withRules<S extends z.ZodObject>(schema: S, rules: CrossFieldRule<z.output<S>>[]): S {
  const refined = schema.superRefine((value, ctx) => {
    for (const r of rules) {
      let ok: boolean;
      try {
        ok = r.holds(value);
      } catch {
        ok = false;
      }
      if (!ok)
        ctx.addIssue({
          code: "custom",
          message: r.messageOf ? r.messageOf(value) : r.message,
          path: fieldPathToSegments(r.fieldPath),
          input: value,
        });
    }
  });
  const celRules: CelValidation[] = rules.map((r) => ({
    rule: r.rule,
    message: r.message,
    ...(r.fieldPath ? { fieldPath: r.fieldPath } : {}),
  }));
  return refined.meta({ [CEL_META_KEY]: celRules }) as S;
}

function fieldPathToSegments(fieldPath: string | undefined): string[] {
  if (!fieldPath) return [];
  return fieldPath.split(".").filter((s) => s.length > 0);
}
