// Bad input to moe-sim (issue 14, item 8): each case is a file:line error or a clear one-line
// message with a non-zero exit, never a stack trace, never an unbounded replay.
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import type { MockInstance } from "vitest";
import { main } from "../../src/cli/moe-sim.ts";
import { parseAzureTrace, parseMooncakeTrace, parseRateTrace, TraceParseError } from "../../src/sim/index.ts";

const AZURE_HEADER = "TIMESTAMP,ContextTokens,GeneratedTokens";
const dir = mkdtempSync(join(tmpdir(), "moe-sim-bad-"));
function file(name: string, text: string): string {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
}

function parseError(f: () => unknown): TraceParseError {
  try {
    f();
  } catch (e) {
    if (e instanceof TraceParseError) return e;
    throw new Error(`expected a TraceParseError, got ${String(e)}`, { cause: e });
  }
  throw new Error("expected a TraceParseError, nothing was thrown");
}

describe("moe-sim bad input: parsers", () => {
  it("rejects an impossible Azure date instead of rolling it over", () => {
    const text = `${AZURE_HEADER}\n2023-11-16 18:15:46.6805900,10,2\n2023-13-45 99:99:99.0,10,2\n`;
    const e = parseError(() => parseAzureTrace(text, { file: "a.csv" }));
    expect(e.message).toMatch(/^a\.csv:3: bad TIMESTAMP "2023-13-45 99:99:99\.0": impossible date: month 13/);
    expect(
      parseError(() => parseAzureTrace(`${AZURE_HEADER}\n2023-02-29 00:00:00,1,1\n`, { file: "a.csv" })).message,
    ).toMatch(/a\.csv:2: .*impossible date: day 29 of 2023-02/);
    expect(
      parseError(() => parseAzureTrace(`${AZURE_HEADER}\n2023-02-28 24:00:00,1,1\n`, { file: "a.csv" })).message,
    ).toMatch(/impossible time 24:00:00/);
  });

  it("rejects a line 30 days late (span limit), names both lines, and admits it with a larger limit", () => {
    const text = `${AZURE_HEADER}\n2023-11-16 18:00:00,10,2\n2023-11-16 18:00:01,10,2\n2023-12-16 18:00:01,10,2\n`;
    const e = parseError(() => parseAzureTrace(text, { file: "a.csv" }));
    expect(e.line).toBe(4);
    expect(e.message).toMatch(
      /a\.csv:4: TIMESTAMP is 30\.0 days from line 2; a trace may span at most 21\.0 days \(override with --max-span-days/,
    );
    const t = parseAzureTrace(text, { file: "a.csv", maxSpanDays: 31 });
    expect(t.timesMs.length).toBe(3);
    expect(() => parseAzureTrace(text, { maxSpanDays: 1000 })).toThrow(/maxSpanDays must be in \(0, 92\]/);
  });

  it("rejects a Mooncake timestamp of 1e13 ms with a clear error", () => {
    const text =
      '{"timestamp":0,"input_length":10,"output_length":2}\n{"timestamp":1e13,"input_length":10,"output_length":2}\n';
    const e = parseError(() => parseMooncakeTrace(text, { file: "m.jsonl" }));
    expect(e.message).toMatch(
      /^m\.jsonl:2: timestamp is 115740\.7 days from the trace start \(timestamp 0\); .* \(timestamp 10000000000000 ms\)$/,
    );
  });

  it("rejects a rate window beyond the span limit", () => {
    const e = parseError(() =>
      parseRateTrace("window_start_s,rate_req_per_s\n0,1\n600,1\n1e12,1\n", { file: "r.csv" }),
    );
    expect(e.message).toMatch(/^r\.csv:4: window_start_s is 11574074\.1 days from window_start_s 0/);
  });

  it("fails when nothing is left to replay: empty, header-only, all bad under lenient, all-zero rates", () => {
    expect(parseError(() => parseAzureTrace("", { file: "e.csv" })).message).toMatch(/e\.csv:1: expected header/);
    const h = parseError(() => parseAzureTrace(`${AZURE_HEADER}\n`, { file: "h.csv" }));
    expect(h.message).toBe("h.csv:1: nothing to replay: the file has no data lines; 0 requests");
    expect(h.skippable).toBe(false);
    const bad = parseError(() => parseAzureTrace(`${AZURE_HEADER}\nx,1,1\ny,1,1\n`, { file: "b.csv", lenient: true }));
    expect(bad.message).toMatch(
      /^b\.csv:3: nothing to replay: all 2 data lines are bad \(first: line 2: bad TIMESTAMP "x"/,
    );
    expect(parseError(() => parseMooncakeTrace("", { file: "m.jsonl" })).message).toMatch(/nothing to replay/);
    expect(
      parseError(() => parseRateTrace("window_start_s,rate_req_per_s\n0,0\n600,0\n", { file: "r.csv" })).message,
    ).toMatch(/nothing to replay: every one of the 2 windows has rate 0/);
  });

  it("counts lines out of time order, and fails on them when strict", () => {
    const text = `${AZURE_HEADER}\n2023-11-16 18:00:05,10,2\n2023-11-16 18:00:01,10,2\n2023-11-16 18:00:09,10,2\n2023-11-16 18:00:02,10,2\n`;
    const t = parseAzureTrace(text, { file: "o.csv" });
    expect(t.outOfOrderLines).toBe(2);
    expect(Array.from(t.timesMs)).toEqual([0, 1000, 4000, 8000]);
    const e = parseError(() => parseAzureTrace(text, { file: "o.csv", strict: true }));
    expect(e.message).toMatch(
      /^o\.csv:3: line is earlier than a line before it \(2 lines out of time order; --strict\)/,
    );
  });
});

describe("moe-sim bad input: the CLI", () => {
  let err: MockInstance<typeof console.error>;
  let out: MockInstance<typeof process.stdout.write>;
  beforeEach(() => {
    err = vi.spyOn(console, "error").mockImplementation(() => {});
    out = vi.spyOn(process.stdout, "write").mockImplementation(() => true);
  });
  afterEach(() => {
    err.mockRestore();
    out.mockRestore();
  });
  const stderr = (): string[] => err.mock.calls.map((c) => String(c[0]));

  it("prints one line and exits 2 on an impossible date, with the --lenient hint (it helps for a bad line)", () => {
    const f = file("date.csv", `${AZURE_HEADER}\n2023-11-16 18:15:46.6805900,10,2\n2023-13-45 99:99:99.0,10,2\n`);
    expect(main(["--trace", f, "--quiet"])).toBe(2);
    expect(stderr()).toEqual([
      `moe-sim: ${f}:3: bad TIMESTAMP "2023-13-45 99:99:99.0": impossible date: month 13 (--lenient skips bad lines)`,
    ]);
  });

  it("gives no --lenient hint where it cannot help (header, empty file)", () => {
    const h = file("header.csv", "time,in,out\n1,2,3\n");
    expect(main(["--trace", h, "--quiet"])).toBe(2);
    expect(stderr()[0]).not.toMatch(/lenient/);
    const e = file("empty.csv", `${AZURE_HEADER}\n`);
    expect(main(["--trace", e, "--quiet", "--lenient"])).toBe(2);
    expect(stderr()[1]).toBe(`moe-sim: ${e}:1: nothing to replay: the file has no data lines; 0 requests`);
  });

  it("exits non-zero with a clear message when every line is bad under --lenient", () => {
    const f = file("allbad.csv", `${AZURE_HEADER}\nx,1,1\n2023-11-16 18:00:00,-1,1\n`);
    expect(main(["--trace", f, "--quiet", "--lenient"])).toBe(2);
    expect(stderr()).toHaveLength(1);
    expect(stderr()[0]).toMatch(/nothing to replay: all 2 data lines are bad/);
  });

  it("turns a Mooncake timestamp of 1e13 ms into one line, no RangeError", () => {
    const f = file(
      "far.jsonl",
      '{"timestamp":0,"input_length":10,"output_length":2}\n{"timestamp":1e13,"input_length":10,"output_length":2}\n',
    );
    expect(main(["--trace", f, "--quiet"])).toBe(2);
    expect(stderr()).toHaveLength(1);
    expect(stderr()[0]).toMatch(/^moe-sim: .*far\.jsonl:2: timestamp is 115740\.7 days from the trace start/);
    expect(stderr()[0]).not.toMatch(/RangeError|\n\s+at /);
  });

  it("bounds --max-span-days, GPU counts, scale, arrival CV and token means", () => {
    expect(main(["--max-span-days", "1000", "--quiet"])).toBe(2);
    expect(main(["--max-gpus", "1e9", "--quiet"])).toBe(2);
    expect(main(["--scale", "1e300", "--quiet"])).toBe(2);
    expect(main(["--arrival-cv", "1e9", "--quiet"])).toBe(2);
    expect(main(["--output-tokens", "1e300", "--quiet"])).toBe(2);
    expect(main(["--stress", "gaps", "--trace", "x.csv", "--quiet"])).toBe(2);
    expect(stderr()).toContain("moe-sim: --stress and --trace are exclusive");
  });

  it("bounds the group-mode flags and names them", () => {
    expect(main(["--nodes-per-group", "0", "--quiet"])).toBe(2);
    expect(main(["--nodes-per-group", "1.5", "--quiet"])).toBe(2);
    expect(main(["--nodes-per-group", "2", "--gpus-per-node", "65", "--quiet"])).toBe(2);
    expect(main(["--nodes-per-group", "4", "--max-gpus", "30", "--quiet"])).toBe(2);
    expect(main(["--gpus-per-node", "4", "--quiet"])).toBe(2);
    expect(stderr()).toEqual([
      "moe-sim: --max-gpus (30) must be at least one group (--nodes-per-group x --gpus-per-node = 32 GPUs)",
      "moe-sim: --gpus-per-node needs --nodes-per-group (group mode)",
    ]);
  });

  it("warns with a count when lines are out of order, and fails under --strict", () => {
    const f = file(
      "order.csv",
      `${AZURE_HEADER}\n2023-11-16 18:00:05,100,20\n2023-11-16 18:00:01,100,20\n2023-11-16 18:00:09,100,20\n`,
    );
    expect(main(["--trace", f, "--quiet", "--policy", "static", "--strict"])).toBe(2);
    expect(stderr()[0]).toMatch(
      /order\.csv:3: line is earlier than a line before it \(1 lines out of time order; --strict\)$/,
    );
    expect(main(["--trace", f, "--quiet", "--policy", "static"])).toBe(0);
    expect(stderr()[1]).toBe(
      "[moe-sim] warning: 1 lines out of time order, replayed sorted by time (--strict makes this an error)",
    );
  });
});
