// Reading MoEDeployments: the zod schema (structure, defaults, the same
// cross-field rules the CRD enforces with CEL) followed by the semantic
// validator. Never throws on bad input: a bad object is a value.
import type { z } from "zod";
import {
  MoEDeploymentSchema,
  MoEDeploymentSpecSchema,
  MoEDeploymentStatusSchema,
  type MoEDeployment,
  type MoEDeploymentSpec,
} from "./schema.ts";
import { validateMoEDeploymentSpec, type ApiIssue } from "./semantic.ts";

export type ParseResult<T> = { ok: true; value: T; warnings: ApiIssue[] } | { ok: false; issues: ApiIssue[] };

/** Longest message a metav1.Condition accepts. */
export const MAX_CONDITION_MESSAGE_LENGTH = 32_768;

/** `["spec", "prewarm", "schedules", 0, "start"]` -> `spec.prewarm.schedules[0].start`. */
export function formatFieldPath(path: readonly PropertyKey[]): string {
  let out = "";
  for (const seg of path) {
    if (typeof seg === "number") out += `[${seg}]`;
    else out += out === "" ? String(seg) : `.${String(seg)}`;
  }
  return out;
}

function zodIssues(error: z.ZodError, prefix: readonly PropertyKey[]): ApiIssue[] {
  return error.issues.map((i) => ({
    path: formatFieldPath([...prefix, ...i.path]) || "(root)",
    // Same words as the API server for a missing field.
    message: i.code === "invalid_type" && i.message.endsWith("received undefined") ? "Required value" : i.message,
    severity: "error" as const,
  }));
}

/**
 * Parses a MoEDeployment as read from the API server (or from a file): returns
 * the typed, defaulted object, or every issue with the path of its field. The
 * status is parsed leniently: a status this version cannot read is dropped
 * (reported as a warning), because the operator rewrites it anyway.
 */
export function parseMoEDeployment(obj: unknown): ParseResult<MoEDeployment> {
  let status: unknown;
  let input = obj;
  if (isRecord(obj) && "status" in obj) {
    const { status: s, ...rest } = obj;
    status = s;
    input = rest;
  }
  const parsed = MoEDeploymentSchema.safeParse(input);
  if (!parsed.success) return { ok: false, issues: zodIssues(parsed.error, []) };
  const semantic = validateMoEDeploymentSpec(parsed.data.spec, "spec");
  const errors = semantic.filter((i) => i.severity === "error");
  if (errors.length > 0) return { ok: false, issues: errors };
  const warnings = semantic.filter((i) => i.severity === "warning");
  const value: MoEDeployment = { ...parsed.data };
  if (status !== undefined && status !== null) {
    const st = MoEDeploymentStatusSchema.safeParse(status);
    if (st.success) value.status = st.data;
    else
      warnings.push(
        ...zodIssues(st.error, ["status"]).map((i) => ({
          ...i,
          severity: "warning" as const,
          message: `${i.message} (status ignored)`,
        })),
      );
  }
  return { ok: true, value, warnings };
}

/** Parses just a spec (for tools and tests); paths start with `basePath`. */
export function parseMoEDeploymentSpec(spec: unknown, basePath = "spec"): ParseResult<MoEDeploymentSpec> {
  const parsed = MoEDeploymentSpecSchema.safeParse(spec);
  if (!parsed.success) return { ok: false, issues: zodIssues(parsed.error, basePath ? [basePath] : []) };
  const semantic = validateMoEDeploymentSpec(parsed.data, basePath);
  const errors = semantic.filter((i) => i.severity === "error");
  if (errors.length > 0) return { ok: false, issues: errors };
  return { ok: true, value: parsed.data, warnings: semantic.filter((i) => i.severity === "warning") };
}

/**
 * One line per issue, `path: message`, sorted and de-duplicated, cut to fit a
 * condition message. Deterministic, so an unchanged bad spec does not rewrite status.
 */
export function formatIssues(issues: readonly ApiIssue[], maxLength = MAX_CONDITION_MESSAGE_LENGTH): string {
  const lines = [...new Set(issues.map((i) => `${i.path}: ${i.message}`))].sort();
  let out = "";
  for (const [n, line] of lines.entries()) {
    const next = out === "" ? line : `${out}; ${line}`;
    if (next.length > maxLength - 32) {
      return `${out}; ... and ${lines.length - n} more`;
    }
    out = next;
  }
  return out;
}

function isRecord(x: unknown): x is Record<string, unknown> {
  return typeof x === "object" && x !== null && !Array.isArray(x);
}
