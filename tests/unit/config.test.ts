// Operator configuration: election timings follow client-go's rules
// (retryPeriod < renewDeadline < leaseDuration), and the error names the field.
import { describe, expect, it } from "vitest";
import { OperatorConfigSchema } from "../../src/config.ts";

const base = { identity: "op-1" };

function issues(input: Record<string, unknown>): string[] {
  const r = OperatorConfigSchema.safeParse({ ...base, ...input });
  return r.success ? [] : r.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`);
}

describe("OperatorConfigSchema election timings", () => {
  it("accepts the defaults and a consistent set", () => {
    expect(issues({})).toEqual([]);
    expect(issues({ leaseDurationSeconds: 6, renewDeadlineSeconds: 4, retryPeriodSeconds: 1 })).toEqual([]);
  });

  it("refuses retryPeriodSeconds >= renewDeadlineSeconds, naming the field", () => {
    for (const retryPeriodSeconds of [10, 12]) {
      const found = issues({ leaseDurationSeconds: 15, renewDeadlineSeconds: 10, retryPeriodSeconds });
      expect(found).toHaveLength(1);
      expect(found[0]).toMatch(/^retryPeriodSeconds: retryPeriodSeconds must be less than renewDeadlineSeconds/);
    }
  });

  it("refuses renewDeadlineSeconds >= leaseDurationSeconds, naming the field", () => {
    const found = issues({ leaseDurationSeconds: 10, renewDeadlineSeconds: 10, retryPeriodSeconds: 2 });
    expect(found).toHaveLength(1);
    expect(found[0]).toMatch(/^renewDeadlineSeconds: renewDeadlineSeconds must be less than leaseDurationSeconds/);
  });

  it("reports both when both are wrong", () => {
    const found = issues({ leaseDurationSeconds: 5, renewDeadlineSeconds: 8, retryPeriodSeconds: 9 });
    expect(found.map((f) => f.split(":")[0])).toEqual(["renewDeadlineSeconds", "retryPeriodSeconds"]);
  });

  it("takes --metrics-auth none|tokenreview and refuses anything else", () => {
    expect(OperatorConfigSchema.parse(base).metricsAuth).toBe("none");
    expect(OperatorConfigSchema.parse({ ...base, metricsAuth: "tokenreview" }).metricsAuth).toBe("tokenreview");
    expect(issues({ metricsAuth: "basic" })[0]).toMatch(/^metricsAuth: /);
  });
});
