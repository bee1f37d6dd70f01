// The invalid-spec table of the integration test, run through the operator's own
// parser: whatever the API server rejects, the operator rejects too, naming the field.
import { describe, expect, it } from "vitest";
import { fileURLToPath } from "node:url";
import { parseMoEDeployment } from "../../src/api/index.ts";
import { BOUNDARY_CASES, INVALID_CASES, loadBaseSample, setPath, unsetPath } from "../integration/api-invalid-cases.ts";

const root = fileURLToPath(new URL("../..", import.meta.url));

describe("invalid MoEDeployments (zod)", () => {
  it("has at least 30 cases with unique names", () => {
    expect(INVALID_CASES.length).toBeGreaterThanOrEqual(30);
    expect(new Set(INVALID_CASES.map((c) => c.name)).size).toBe(INVALID_CASES.length);
  });

  it("starts from a valid base sample", () => {
    const r = parseMoEDeployment(loadBaseSample(root));
    expect(r.ok ? [] : r.issues).toEqual([]);
  });

  it.each(INVALID_CASES.filter((c) => c.localRejects !== false).map((c) => [c.name, c] as const))(
    "rejects: %s",
    (_name, c) => {
      const m = structuredClone(loadBaseSample(root));
      c.mutate(m);
      const r = parseMoEDeployment(m);
      expect(r.ok).toBe(false);
      const lines = r.ok ? [] : r.issues.map((i) => `${i.path}: ${i.message}`);
      expect(
        lines.some((l) => l.includes(c.expectField)),
        `no issue names ${c.expectField}:\n${lines.join("\n")}`,
      ).toBe(true);
      if (c.expectText)
        expect(
          lines.some((l) => l.includes(c.expectField) && l.includes(c.expectText!)),
          `no issue on ${c.expectField} says ${c.expectText}:\n${lines.join("\n")}`,
        ).toBe(true);
    },
  );

  it.each(BOUNDARY_CASES.map((c) => [c.name, c] as const))("size bound: %s", (_name, c) => {
    const m = structuredClone(loadBaseSample(root));
    c.mutate(m);
    const r = parseMoEDeployment(m);
    const fields = r.ok ? [] : r.issues.map((i) => i.path);
    expect(r.ok, fields.join(", ")).toBe(c.accepted);
    if (!c.accepted) expect(fields).toContain(c.field);
  });

  it("path helpers set and unset nested list fields", () => {
    const m: Record<string, unknown> = {};
    setPath(m, "a.b[0].c", 1);
    expect(m).toEqual({ a: { b: [{ c: 1 }] } });
    unsetPath(m, "a.b[0]");
    expect(m).toEqual({ a: { b: [] } });
  });
});
