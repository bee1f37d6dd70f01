// Policy benchmark: every policy on the real traces in ../shared/data (when present) and on
// synthetic diurnal+burst traces, same run and seed, with ratios against the oracle and static peak.
//   node bench/sim/run.ts            full: Azure code + conv (1 h each), ServeGen 14 days, synthetic 14 days
//   node bench/sim/run.ts --quick    short: Azure code + conv, ServeGen first 2 days, synthetic 1 day
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { buildSummary, prepareScenario, reactiveInputFor, reactiveLine, reactiveReference, readTraceFile, runScenario, syntheticRateTrace } from "../../src/sim/index.ts";
import type { Summary, Trace } from "../../src/sim/index.ts";

const quick = process.argv.includes("--quick");
const seedArg = process.argv.find((a) => a.startsWith("--seed="));
const seed = seedArg === undefined ? 1 : Number(seedArg.slice("--seed=".length));
const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const data = join(root, "..", "shared", "data");

interface Case { readonly label: string; readonly trace: Trace; readonly maxSeconds?: number }
const cases: Case[] = [];
if (existsSync(data)) {
  const azure = join(data, "traces", "azure-llm-2023");
  for (const kind of ["code", "conv"]) {
    const f = join(azure, `AzureLLMInferenceTrace_${kind}.csv`);
    if (existsSync(f)) cases.push({ label: `azure-${kind} (1 h)`, trace: readTraceFile(f) });
  }
  const sg = join(data, "traces", "servegen-m-large", "rate_10min.csv");
  if (existsSync(sg)) cases.push({ label: quick ? "servegen (first 2 of 14 days)" : "servegen (14 days)", trace: readTraceFile(sg), maxSeconds: quick ? 2 * 86_400 : undefined });
} else {
  console.log(`(${data} not found: skipping the real traces; synthetic traces only)\n`);
}
const synthDays = quick ? 1 : 14;
cases.push({ label: `synthetic diurnal+burst (${synthDays} d)`, trace: syntheticRateTrace({ seed: 7, durationS: synthDays * 86_400, meanRatePerS: 200, name: `synthetic-${synthDays}d` }) });

const summaries: { label: string; s: Summary; seconds: number; leadSweep: string }[] = [];
for (const c of cases) {
  const t0 = performance.now();
  const scenario = prepareScenario(c.trace, { seed, maxSeconds: c.maxSeconds });
  const result = runScenario(scenario);
  const s = buildSummary(scenario, result);
  // The reactive reference at 99.5 % when capacity arrives 1..7 minutes after the newest known minute.
  const oracleHours = result.results.find((r) => r.name === "oracle")?.gpuHours ?? NaN;
  const leadSweep = [1, 2, 3, 5, 7].map((lead) => {
    const x = reactiveReference(reactiveInputFor(scenario, result, lead), 0.995);
    return `${lead} min ${x === undefined ? "not reachable" : `${(x.gpuHours / oracleHours).toFixed(3)}x`}`;
  }).join(", ");
  summaries.push({ label: c.label, s, seconds: (performance.now() - t0) / 1000, leadSweep });
  process.stderr.write(`[bench] ${c.label}: ${((performance.now() - t0) / 1000).toFixed(1)} s\n`);
}

const pct = (x: number | null, d = 1): string => (x === null ? "n/a" : `${(x * 100).toFixed(d)}%`);
const num = (x: number | null, d: number): string => (x === null ? "n/a" : x.toFixed(d));
console.log(`moe-sim policy benchmark (seed ${seed}${quick ? ", quick" : ""}): SLO p99 per-token latency <= 60 ms per minute, deepseek-v3, peak ~200 GPUs, $2/GPU-hour`);
console.log("");
console.log("| trace | policy | GPU-hours | x oracle | saved vs static | SLO met (min) | violated min | cold-start viol. | predictable-burst viol. | p99 of minute p99 ms |");
console.log("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|");
for (const { label, s } of summaries) {
  for (const p of s.policies) {
    console.log(`| ${label} | ${p.name} | ${num(p.gpuHours, 1)} | ${num(p.gpuHoursVsOracle, 3)} | ${pct(p.savingVsStatic)} | ${pct(p.sloAttainment, 2)} | ${p.violatedMinutes} | ${p.coldStartViolationMinutes} | ${p.predictableBurstViolationMinutes} | ${num(p.p99OfMinuteP99Ms, 0)} |`);
  }
}
console.log("");
console.log("Targets for ours (>= 99.5 % of minutes, <= 1.10 x oracle GPU-hours, >= 40 % fewer than static on the 14-day series, 0 predictable-burst violations):");
for (const { label, s, seconds } of summaries) {
  const marks = s.targets.map((t) => `${t.name.replace(/^ours /, "")}: ${t.value ?? "n/a"} ${t.met === null ? "(n/a)" : t.met ? "(met)" : "(NOT met)"}`);
  console.log(`- ${label} [${seconds.toFixed(1)} s, static ${s.reference.staticGpus} GPUs, ${s.reference.unattainableMinutes} unattainable min]: ${marks.join("; ")}`);
}
console.log("");
console.log("What reacting costs on each trace, the yardstick for the targets above (src/sim/reactive.ts):");
for (const { label, s, leadSweep } of summaries) console.log(`- ${label}: ${reactiveLine(s)} 99.5 % by lead (age of the newest known minute): ${leadSweep}.`);
