// What-if table of issue 19: the same policy ("ours") and seed with remote-only loading, with weight
// staging, and with staging plus peer loading (src/sim/coldstart.ts, docs/adr/0019-cold-start-tiers.md),
// plus two reference rows: ADR 0004's log-normal cold start (no tiers) and staging with one pooled
// lead time instead of the per-tier one (SimConfig.loadTiers.tieredLead = false).
// Every row of a trace replays the same world and is divided by the same oracle, whose cold start is
// the nominal staging+peers cold start at the peak fleet (the strictest of the three).
//   node bench/sim/cold-start.ts           ServeGen m-large 14 days and the synthetic series 14 days
//   node bench/sim/cold-start.ts --quick   ServeGen first 2 days, synthetic 2 days
//   --seed=N (default 1); --only=SUBSTRING; --evict-after-h=H (staging idle eviction, default 24);
//   --lead-windows: ours with leadScaling on (windows that follow the learned lead, ADR 0003 round 8)
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { tierColdStartS, shardExpertBytes } from "../../src/domain/prewarm/tiers.ts";
import {
  DEFAULT_STAGING,
  loadTierPreset,
  prepareScenario,
  readTraceFile,
  runScenario,
  slotsPerGpuFor,
  syntheticRateTrace,
} from "../../src/sim/index.ts";
import type { LoadTierConfig, ModelShape, PolicyResult, Trace } from "../../src/sim/index.ts";

const quick = process.argv.includes("--quick");
const argValue = (name: string): string | undefined =>
  process.argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
const seed = Number(argValue("seed") ?? 1);
const only = argValue("only");
const evictAfterH = Number(argValue("evict-after-h") ?? 24);
/** Ours with the lead-time windows on (src/domain/scaling/lead-scale.ts; off by default). */
const leadWindows = process.argv.includes("--lead-windows");
const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const data = join(root, "..", "shared", "data");
const DAYS = quick ? 2 : 14;
/** "log-normal": ADR 0004's cold start (median 240 s, no tiers), for reference. */
const KINDS = ["log-normal", "remote-only", "staging", "staging+peers", "staging, pooled lead"] as const;

interface Case {
  readonly label: string;
  readonly trace: Trace;
  readonly maxSeconds?: number;
}

function cases(): Case[] {
  const out: Case[] = [];
  const sg = join(data, "traces", "servegen-m-large", "rate_10min.csv");
  if (existsSync(sg))
    out.push({
      label: `servegen m-large (${quick ? "first 2 of 14" : "14"} days)`,
      trace: readTraceFile(sg),
      maxSeconds: quick ? 2 * 86_400 : undefined,
    });
  else console.log(`(${sg} not found: ServeGen skipped)`);
  out.push({
    label: `synthetic diurnal+burst (${DAYS} d)`,
    trace: syntheticRateTrace({ seed: 7, durationS: DAYS * 86_400, meanRatePerS: 200, name: `synthetic-${DAYS}d` }),
  });
  return only === undefined ? out : out.filter((c) => c.label.includes(only));
}

interface Row {
  readonly kind: (typeof KINDS)[number];
  readonly ours: PolicyResult;
  readonly oracle: PolicyResult;
}

function tierConfig(kind: "remote-only" | "staging" | "staging+peers", shape: ModelShape): LoadTierConfig {
  const preset = loadTierPreset(kind, shape);
  return preset.staging === undefined
    ? preset
    : { ...preset, staging: { ...DEFAULT_STAGING, evictAfterIdleS: evictAfterH * 3600 } };
}

function runCase(c: Case): { rows: Row[]; oracleColdStartS: number; seconds: number } {
  const t0 = performance.now();
  const rows: Row[] = [];
  const base = prepareScenario(c.trace, {
    seed,
    maxSeconds: c.maxSeconds,
    policies: ["ours", "oracle"],
    ...(leadWindows ? { ours: { leadScaling: { enabled: true } } } : {}),
  });
  const shape = base.config.shape;
  const fastest = loadTierPreset("staging+peers", shape);
  const peakBytes = shardExpertBytes(slotsPerGpuFor(shape, 200), shape.moeLayers, fastest.bytesPerExpertReplica);
  const oracleColdStartS = tierColdStartS(fastest.bandwidth, "peer", peakBytes, fastest.engineStartS);
  for (const kind of KINDS) {
    const loadTiers =
      kind === "log-normal"
        ? undefined
        : kind === "staging, pooled lead"
          ? { ...tierConfig("staging", shape), tieredLead: false }
          : tierConfig(kind, shape);
    const result = runScenario({
      ...base,
      config: { ...base.config, tuneBaselines: false, loadTiers, oracleColdStartS },
    });
    const ours = result.results.find((r) => r.name === "ours");
    const oracle = result.results.find((r) => r.name === "oracle");
    if (ours === undefined || oracle === undefined) throw new Error("missing ours or oracle row");
    rows.push({ kind, ours, oracle });
    process.stderr.write(`[cold-start] ${c.label} ${kind}: ${((performance.now() - t0) / 1000).toFixed(1)} s\n`);
  }
  return { rows, oracleColdStartS, seconds: (performance.now() - t0) / 1000 };
}

const pct = (x: number): string => `${(x * 100).toFixed(2)}%`;
const s0 = (x: number | null): string => (x === null ? "-" : x.toFixed(0));

function tierCell(r: PolicyResult, tier: "peer" | "node-disk" | "remote"): string {
  const t = r.loadTiers?.coldStarts[tier];
  if (t === undefined || t.count === 0) return r.loadTiers === undefined && tier === "remote" ? "log-normal" : "-";
  return `${s0(t.p50S)} / ${s0(t.p90S)} (${t.count})`;
}

console.log(
  `moe-sim cold-start what-if (seed ${seed}${quick ? ", quick" : ""}): policy ours${leadWindows ? " (lead-time windows on)" : ""}, SLO p99 per-token latency <= 60 ms per minute, deepseek-v3, --peak-gpus 200, $2/GPU-hour; staging evicts after ${evictAfterH} h idle`,
);
console.log("");
console.log(
  "| trace | loading | x oracle GPU-h | SLO met (min) | violated min | cold-start viol. | predictable-ramp viol. | cold start p50 / p90 s (n): peer | node disk | remote | staged nodes (peak) | staged TB | disk GB-h | staging USD (% of GPU USD) |",
);
console.log("|---|---|---:|---:|---:|---:|---:|---|---|---|---:|---:|---:|---:|");
for (const c of cases()) {
  const { rows, oracleColdStartS } = runCase(c);
  for (const { kind, ours, oracle } of rows) {
    const st = ours.loadTiers?.staging;
    const usd = st?.costUsd ?? 0;
    console.log(
      `| ${c.label} | ${kind} | ${(ours.gpuHours / oracle.gpuHours).toFixed(3)} | ${pct(ours.sloAttainment)} | ${ours.violatedMinutes} | ${ours.coldStartViolationMinutes} | ${ours.predictableBurstViolationMinutes} | ${tierCell(ours, "peer")} | ${tierCell(ours, "node-disk")} | ${tierCell(ours, "remote")} | ${st === undefined ? "-" : `${st.nodesStaged} (${st.peakNodes})`} | ${st === undefined ? "-" : (st.bytesTransferred / 1e12).toFixed(1)} | ${st === undefined ? "-" : st.diskGbHours.toFixed(0)} | ${usd.toFixed(0)} (${((100 * usd) / Math.max(1e-9, ours.costUsd)).toFixed(2)}%) |`,
    );
  }
  console.log(
    `|  | oracle (cold start ${oracleColdStartS.toFixed(0)} s) | 1.000 | ${pct(rows[0]?.oracle.sloAttainment ?? 0)} |  |  |  |  |  |  |  |  |  |  |`,
  );
}
