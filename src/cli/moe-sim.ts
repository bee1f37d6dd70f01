#!/usr/bin/env node
// moe-sim: replay a request trace through a simulated expert-sharded MoE fleet under the
// operator's policy and baselines; writes summary.json, report.md and timeline.svg.
//   node src/cli/moe-sim.ts --trace ../shared/data/traces/azure-llm-2023/AzureLLMInferenceTrace_conv.csv --out out/sim
//   node src/cli/moe-sim.ts --synthetic-days 14 --policy all --out out/sim
//   node src/cli/moe-sim.ts --stress gaps --synthetic-days 3 --out out/sim
// Progress goes to stderr; the Markdown table to stdout. A replay shorter than a day is repeated
// with 5 seeds (--seeds) and the report adds mean and min-max; seeds.json holds them.
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Command, InvalidArgumentError, Option } from "commander";
import { LATENCY_METRICS } from "../domain/latency/model.ts";
import type { LatencyMetric } from "../domain/latency/model.ts";
import {
  buildSummary,
  DEFAULT_MAX_SPAN_DAYS,
  MAX_SPAN_DAYS_LIMIT,
  markdownReport,
  markdownSeedSpread,
  seedSpread,
  STRESS_CASES,
  stressCase,
  MODEL_PRESETS,
  POLICY_NAMES,
  prepareScenario,
  readTraceFile,
  runScenario,
  summaryJson,
  syntheticRateTrace,
  timelineSvg,
  TRACE_FORMATS,
  TraceParseError,
} from "../sim/index.ts";
import type {
  ObservationFaults,
  PolicyName,
  Progress,
  StressCaseName,
  Summary,
  Trace,
  TraceFormat,
} from "../sim/index.ts";

function positiveNumber(name: string) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError(`${name} must be a positive number`);
    return n;
  };
}

function nonNegativeInt(name: string) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError(`${name} must be a non-negative integer`);
    return n;
  };
}

function parsePolicies(v: string): PolicyName[] {
  if (v === "all") return [...POLICY_NAMES];
  const names = v
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s !== "");
  for (const n of names) {
    if (!(POLICY_NAMES as readonly string[]).includes(n))
      throw new InvalidArgumentError(`unknown policy "${n}" (${POLICY_NAMES.join("|")}|all)`);
  }
  return names as PolicyName[];
}

function intInRange(name: string, min: number, max: number) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < min || n > max)
      throw new InvalidArgumentError(`${name} must be an integer from ${min} to ${max}`);
    return n;
  };
}

/** Upper bound of GPU counts on the command line: the simulator's arrays and searches scale with it. */
const MAX_GPU_ARG = 100_000;

function boundedNumber(name: string, max: number) {
  return (v: string): number => {
    const n = positiveNumber(name)(v);
    if (n > max) throw new InvalidArgumentError(`${name} must be at most ${max}`);
    return n;
  };
}

interface CliOptions {
  trace?: string;
  format?: TraceFormat;
  syntheticDays: number;
  policy?: PolicyName[];
  metric: LatencyMetric;
  sloMs?: number;
  preset: string;
  usdPerGpuHour: number;
  seed: number;
  peakGpus: number;
  scale?: number;
  arrivalCv: number;
  inputTokens?: number;
  outputTokens?: number;
  coldStartS: number;
  minGpus?: number;
  maxGpus?: number;
  hours?: number;
  warmupMin?: number;
  lenient: boolean;
  strict: boolean;
  maxSpanDays: number;
  out?: string;
  quiet: boolean;
  stress?: StressCaseName;
  seeds?: number;
  nodesPerGroup?: number;
  gpusPerNode: number;
}

/** Traces shorter than this are replayed with several seeds by default. */
const SHORT_TRACE_S = 86_400;
const DEFAULT_SHORT_TRACE_SEEDS = 5;
const MAX_SEEDS = 20;

function makeProgress(quiet: boolean): (p: Progress) => void {
  let lastKey = "";
  let lastPct = -1;
  let lastAt = 0;
  const tty = process.stderr.isTTY === true;
  return (p) => {
    if (quiet) return;
    const key = p.phase === "policy" ? `policy ${p.policy ?? ""}` : "oracle requirement";
    const pct = Math.floor(p.fraction * 100);
    const now = performance.now();
    if (key === lastKey && pct < 100 && pct - lastPct < 10 && now - lastAt < 2000) return;
    lastKey = key;
    lastPct = pct;
    lastAt = now;
    const line = `[moe-sim] ${key}: ${pct}%`;
    if (tty) process.stderr.write(`\r${line.padEnd(48)}${pct >= 100 ? "\n" : ""}`);
    else process.stderr.write(`${line}\n`);
  };
}

/** The trace, policy and model options, in --help order. */
function addTraceOptions(program: Command): Command {
  return program
    .name("moe-sim")
    .description("Trace-driven MoE fleet simulator: the operator's policy vs baselines and the oracle")
    .option(
      "--trace <file>",
      "trace file (Azure CSV, Mooncake JSONL or rate CSV); omit for a synthetic diurnal+burst trace",
    )
    .addOption(
      new Option("--format <format>", "trace format (detected from the file when omitted)").choices(
        TRACE_FORMATS as string[],
      ),
    )
    .option(
      "--synthetic-days <days>",
      `length of the synthetic trace when --trace is omitted (at most ${MAX_SPAN_DAYS_LIMIT})`,
      boundedNumber("--synthetic-days", MAX_SPAN_DAYS_LIMIT),
      1,
    )
    .option(
      "--policy <names>",
      `policies, comma-separated: ${POLICY_NAMES.join("|")}|all (default: all)`,
      parsePolicies,
    )
    .addOption(
      new Option("--metric <metric>", "latency the SLO names")
        .choices(LATENCY_METRICS as string[])
        .default("perTokenLatency"),
    )
    .option(
      "--slo-ms <ms>",
      "p99 target of the SLO metric (default: 60 per-token, 50 ITL, 2000 TTFT)",
      positiveNumber("--slo-ms"),
    )
    .addOption(new Option("--preset <model>", "model shape").choices(Object.keys(MODEL_PRESETS)).default("deepseek-v3"))
    .option("--usd-per-gpu-hour <usd>", "GPU price", positiveNumber("--usd-per-gpu-hour"), 2)
    .option("--seed <n>", "seed (same seed, byte-identical summary.json)", nonNegativeInt("--seed"), 1);
}

/** The load-scaling and fleet-size options, in --help order. */
function addScalingOptions(program: Command): Command {
  return program
    .option(
      "--peak-gpus <n>",
      "scale the trace so its peak minute needs about this many GPUs",
      boundedNumber("--peak-gpus", MAX_GPU_ARG),
      200,
    )
    .option(
      "--scale <x>",
      "explicit rate/token multiplier (overrides --peak-gpus; at most 1e6)",
      boundedNumber("--scale", 1e6),
    )
    .option(
      "--arrival-cv <cv>",
      "Gamma inter-arrival CV for rate series (at most 10)",
      boundedNumber("--arrival-cv", 10),
      2,
    )
    .option(
      "--input-tokens <n>",
      "mean input tokens per request for rate series (default 914, at most 1e6)",
      boundedNumber("--input-tokens", 1e6),
    )
    .option(
      "--output-tokens <n>",
      "mean output tokens per request for rate series (default 155, at most 1e6)",
      boundedNumber("--output-tokens", 1e6),
    )
    .option(
      "--cold-start-s <s>",
      "median GPU worker start-to-Ready (log-normal, sigma 0.3)",
      positiveNumber("--cold-start-s"),
      240,
    )
    .option("--min-gpus <n>", "lower bound (default: fewest GPUs that hold all experts)", nonNegativeInt("--min-gpus"))
    .option(
      "--max-gpus <n>",
      `upper bound (default 3 x --peak-gpus, at most ${MAX_GPU_ARG})`,
      boundedNumber("--max-gpus", MAX_GPU_ARG),
    )
    .option(
      "--nodes-per-group <n>",
      "group mode (WideEP): capacity moves in whole groups of n nodes x --gpus-per-node GPUs for every policy (1..256)",
      intInRange("--nodes-per-group", 1, 256),
    )
    .option(
      "--gpus-per-node <n>",
      "GPUs per node of a group (with --nodes-per-group; 1..64)",
      intInRange("--gpus-per-node", 1, 64),
      8,
    )
    .option("--hours <h>", "replay only the first h hours", positiveNumber("--hours"))
    .option(
      "--warmup-min <m>",
      "leading minutes not scored (default 10 % of the replay, at most 30)",
      nonNegativeInt("--warmup-min"),
    );
}

/** The parsing, replay and output options, in --help order. */
function addReplayOptions(program: Command): Command {
  return program
    .option("--lenient", "skip and count bad trace lines instead of failing", false)
    .option("--strict", "lines out of time order are an error (default: sorted, with a warning)", false)
    .option(
      "--max-span-days <days>",
      `longest span of a trace from its earliest to its latest line (at most ${MAX_SPAN_DAYS_LIMIT})`,
      boundedNumber("--max-span-days", MAX_SPAN_DAYS_LIMIT),
      DEFAULT_MAX_SPAN_DAYS,
    )
    .addOption(
      new Option(
        "--stress <case>",
        "replay a stress-suite case (src/sim/stress.ts) instead of a trace; length --synthetic-days",
      ).choices(STRESS_CASES as unknown as string[]),
    )
    .option(
      "--seeds <n>",
      `seeds --seed, --seed+1, ... (default ${DEFAULT_SHORT_TRACE_SEEDS} for a replay shorter than a day, else 1; at most ${MAX_SEEDS}); the report adds mean and min-max`,
      boundedNumber("--seeds", MAX_SEEDS),
    )
    .option("--out <dir>", "write summary.json, report.md and timeline.svg here")
    .option("--quiet", "no progress on stderr", false)
    .exitOverride();
}

/** One line on stderr for an error of the run: no stack trace for user input. */
function reportError(e: unknown, o: CliOptions): void {
  if (e instanceof TraceParseError) {
    const hint = e.skippable && !o.lenient ? " (--lenient skips bad lines)" : "";
    console.error(`moe-sim: ${e.message}${hint}`);
  } else {
    console.error(`moe-sim: ${e instanceof Error ? e.message : String(e)}`);
  }
}

export function main(argv: readonly string[]): number {
  const program = addReplayOptions(addScalingOptions(addTraceOptions(new Command())));
  try {
    program.parse([...argv], { from: "user" });
  } catch (e) {
    const code = (e as { exitCode?: number }).exitCode;
    return code === undefined ? 2 : code === 0 ? 0 : 2;
  }
  const o = program.opts<CliOptions>();
  try {
    checkGroupOptions(o, program.getOptionValueSource("gpusPerNode") === "cli");
    return run(o);
  } catch (e) {
    // No stack trace for user input: one line, exit 2.
    reportError(e, o);
    return 2;
  }
}

function loadTrace(o: CliOptions): { trace: Trace; faults?: ObservationFaults } {
  if (o.stress !== undefined) {
    if (o.trace !== undefined) throw new Error("--stress and --trace are exclusive", { cause: new Error("options") });
    const c = stressCase(o.stress, { seed: o.seed, days: o.syntheticDays });
    return { trace: c.trace, faults: c.faults };
  }
  return {
    trace:
      o.trace === undefined
        ? syntheticRateTrace({
            seed: o.seed,
            durationS: Math.round(o.syntheticDays * 86_400),
            meanRatePerS: 200,
            name: `synthetic-diurnal-${o.syntheticDays}d`,
          })
        : readTraceFile(o.trace, {
            format: o.format,
            lenient: o.lenient,
            strict: o.strict,
            maxSpanDays: o.maxSpanDays,
            meanInputTokens: o.inputTokens,
            meanOutputTokens: o.outputTokens,
          }),
  };
}

function warnAboutTrace(trace: Trace): void {
  if (trace.skippedLines > 0)
    console.error(
      `[moe-sim] warning: ${trace.skippedLines} bad lines skipped (first: line ${trace.skipped[0]?.line}: ${trace.skipped[0]?.reason})`,
    );
  const late = trace.outOfOrderLines ?? 0;
  if (late > 0)
    console.error(
      `[moe-sim] warning: ${late} lines out of time order, replayed sorted by time (--strict makes this an error)`,
    );
}

function scenarioFor(o: CliOptions, trace: Trace, faults: ObservationFaults | undefined, seed: number) {
  return prepareScenario(trace, {
    metric: o.metric,
    sloMs: o.sloMs,
    preset: o.preset,
    usdPerGpuHour: o.usdPerGpuHour,
    seed,
    peakGpus: o.peakGpus,
    scale: o.scale,
    arrivalCv: o.arrivalCv,
    policies: o.policy ?? [...POLICY_NAMES],
    minGpus: o.minGpus,
    maxGpus: o.maxGpus,
    coldStart: { medianS: o.coldStartS },
    maxSeconds: o.hours === undefined ? undefined : Math.round(o.hours * 3600),
    warmupS: o.warmupMin === undefined ? undefined : o.warmupMin * 60,
    observationFaults: faults,
    ...(o.nodesPerGroup === undefined ? {} : { group: { nodesPerGroup: o.nodesPerGroup, gpusPerNode: o.gpusPerNode } }),
  });
}

/** Summaries of the extra seeds (seed + 1 ...) of a short replay. */
function extraSeedSummaries(
  o: CliOptions,
  trace: Trace,
  faults: ObservationFaults | undefined,
  seconds: number,
): Summary[] {
  const count = Math.floor(o.seeds ?? (seconds < SHORT_TRACE_S ? DEFAULT_SHORT_TRACE_SEEDS : 1));
  const out: Summary[] = [];
  for (let k = 1; k < count; k++) {
    const sc = scenarioFor(o, trace, faults, o.seed + k);
    out.push(buildSummary(sc, runScenario(sc)));
    if (!o.quiet) console.error(`[moe-sim] seed ${o.seed + k} done`);
  }
  return out;
}

/** Group-mode flags that do not fit: one line naming the flags. */
function checkGroupOptions(o: CliOptions, gpusPerNodeGiven: boolean): void {
  if (o.nodesPerGroup === undefined) {
    if (gpusPerNodeGiven) throw new Error("--gpus-per-node needs --nodes-per-group (group mode)");
    return;
  }
  const g = o.nodesPerGroup * o.gpusPerNode;
  if (o.maxGpus !== undefined && o.maxGpus < g)
    throw new Error(
      `--max-gpus (${o.maxGpus}) must be at least one group (--nodes-per-group x --gpus-per-node = ${g} GPUs)`,
    );
}

function run(o: CliOptions): number {
  const { trace, faults } = loadTrace(o);
  warnAboutTrace(trace);
  const started = performance.now();
  const scenario = scenarioFor(o, trace, faults, o.seed);
  if (!o.quiet)
    console.error(
      `[moe-sim] ${trace.name}: ${(scenario.load.seconds / 3600).toFixed(1)} h, scale x${scenario.scale.toFixed(3)}, policies ${scenario.config.policies.join(",")}`,
    );
  const result = runScenario(scenario, makeProgress(o.quiet));
  const summary = buildSummary(scenario, result);
  const extra = extraSeedSummaries(o, trace, faults, scenario.load.seconds);
  const report =
    extra.length === 0
      ? markdownReport(summary)
      : `${markdownReport(summary)}\n${markdownSeedSpread(seedSpread([summary, ...extra]))}`;
  if (o.out !== undefined) {
    mkdirSync(o.out, { recursive: true });
    writeFileSync(join(o.out, "summary.json"), summaryJson(summary));
    writeFileSync(join(o.out, "report.md"), report);
    writeFileSync(join(o.out, "timeline.svg"), timelineSvg(scenario, result));
    if (extra.length > 0)
      writeFileSync(join(o.out, "seeds.json"), `${JSON.stringify(seedSpread([summary, ...extra]), null, 2)}\n`);
    if (!o.quiet) console.error(`[moe-sim] wrote ${join(o.out, "summary.json")}, report.md, timeline.svg`);
  }
  process.stdout.write(report);
  if (!o.quiet) console.error(`[moe-sim] done in ${((performance.now() - started) / 1000).toFixed(1)} s`);
  return 0;
}

if (import.meta.main) {
  process.exitCode = main(process.argv.slice(2));
}
