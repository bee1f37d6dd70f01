import { join } from "node:path";
import { describe, expect, it } from "vitest";
import {
  detectTraceFormat,
  parseAzureTimestamp,
  parseAzureTrace,
  parseMooncakeTrace,
  parseRateTrace,
  readTraceFile,
  TraceParseError,
} from "../../src/sim/index.ts";

const fixtures = join(import.meta.dirname, "..", "fixtures", "sim");

describe("sim trace readers", () => {
  it("reads the Azure LLM trace CSV with sub-second timestamps", () => {
    const t = readTraceFile(join(fixtures, "azure-small.csv"));
    expect(t.kind).toBe("requests");
    if (t.kind !== "requests") return;
    expect(t.format).toBe("azure");
    expect(t.timesMs.length).toBe(5);
    expect(t.startEpochMs).toBe(Date.UTC(2023, 10, 16, 18, 15, 46));
    expect(t.timesMs[0]).toBeCloseTo(680.59, 1);
    expect(t.timesMs[4]).toBeCloseTo(7000, 6);
    expect(Array.from(t.inputTokens)).toEqual([374, 396, 879, 91, 1200]);
    expect(Array.from(t.outputTokens)).toEqual([44, 109, 55, 16, 300]);
    expect(parseAzureTimestamp("2023-11-16 18:15:46.6805900")).toBeCloseTo(
      Date.UTC(2023, 10, 16, 18, 15, 46) + 680.59,
      1,
    );
  });

  it("fails on the first bad line with file and line number", () => {
    const file = join(fixtures, "azure-bad.csv");
    let error: unknown;
    try {
      readTraceFile(file);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(TraceParseError);
    const pe = error as TraceParseError;
    expect(pe.line).toBe(4);
    expect(pe.file).toBe(file);
    expect(pe.message).toBe(`${file}:4: bad ContextTokens "abc"`);
    expect(pe.cause).toBeInstanceOf(Error);
  });

  it("skips and counts bad lines with lenient", () => {
    const t = readTraceFile(join(fixtures, "azure-bad.csv"), { lenient: true });
    expect(t.skippedLines).toBe(2);
    expect(t.skipped.map((s) => s.line)).toEqual([4, 6]);
    expect(t.kind === "requests" && t.timesMs.length).toBe(3);
  });

  it("rejects a wrong header even when lenient", () => {
    expect(() => parseAzureTrace("time,in,out\n1,2,3\n", { file: "x.csv", lenient: true })).toThrow(
      /x\.csv:1: expected header/,
    );
  });

  it("reads Mooncake JSONL (timestamp ms) and reports bad lines", () => {
    const file = join(fixtures, "mooncake-small.jsonl");
    expect(() => readTraceFile(file)).toThrow(`${file}:4: timestamp must be a non-negative number (ms)`);
    const t = readTraceFile(file, { lenient: true });
    expect(t.format).toBe("mooncake");
    expect(t.skippedLines).toBe(2);
    expect(t.skipped[1]).toEqual({ line: 5, reason: "invalid JSON" });
    if (t.kind !== "requests") throw new Error("expected requests");
    expect(Array.from(t.timesMs)).toEqual([0, 1500, 2500]);
    expect(Array.from(t.outputTokens)).toEqual([52, 26, 10]);
    expect(() => parseMooncakeTrace("{oops\n", { file: "m.jsonl" })).toThrow(/^m\.jsonl:1: invalid JSON/);
  });

  it("reads a rate series and derives window lengths", () => {
    const file = join(fixtures, "rate-small.csv");
    expect(() => readTraceFile(file)).toThrow(`${file}:4: bad rate_req_per_s "-5"`);
    const t = readTraceFile(file, { lenient: true, meanInputTokens: 100, meanOutputTokens: 20 });
    if (t.kind !== "rate") throw new Error("expected rate");
    expect(Array.from(t.windowStartS)).toEqual([0, 600, 1800]);
    expect(Array.from(t.windowS)).toEqual([600, 1200, 1200]);
    expect(Array.from(t.ratePerS)).toEqual([10, 20, 15]);
    expect(t.meanOutputTokens).toBe(20);
    expect(() => parseRateTrace("window_start_s,rate_req_per_s\n10,1\n5,1\n", { file: "r.csv" })).toThrow(
      "r.csv:3: window_start_s 5 is not after the previous window (10)",
    );
  });

  it("detects formats from the first line or extension", () => {
    expect(detectTraceFormat("a.csv", "TIMESTAMP,ContextTokens,GeneratedTokens")).toBe("azure");
    expect(detectTraceFormat("a.csv", "window_start_s,rate_req_per_s")).toBe("rate");
    expect(detectTraceFormat("a.jsonl", "")).toBe("mooncake");
    expect(detectTraceFormat("a.txt", "hello")).toBeUndefined();
  });
});
