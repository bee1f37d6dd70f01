// Placement benchmark: our planner vs an EPLB-style baseline (bench/placement/eplb.ts), same run.
//   npm exec -- node bench/placement/run.ts [--quick]
// DeepSeek-V3 shape: 58 MoE layers x 256 experts, 288 slots on 32 GPUs in 4 nodes of 8.
// Synthetic heat always; the real SGLang logical_count files when ../shared/data is present.

import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { eplbGlobal, eplbRebalance, mapBalancedness } from "./eplb.ts";
import {
  computePlacementMetrics,
  countMovedReplicas,
  heatFromSglangLogicalCount,
  placementFromSglang,
  planPlacement,
} from "../../src/domain/placement/index.ts";
import type { GpuSlotInfo, Placement, PlacementOutcome, PlacementPolicy } from "../../src/domain/placement/index.ts";
import { correlation, driftHeat, generateHeat, medianHeatStatistics, sampleHeat } from "../../src/domain/synthetic/heat.ts";

const quick = process.argv.includes("--quick");
const repoRoot = resolve(import.meta.dirname, "..", "..");
const realDir = resolve(repoRoot, "..", "shared", "data", "expert-load", "deepseek-v3-sglang");

const LAYERS = 58;
const EXPERTS = 256;
const NODES = 4;
const GPUS_PER_NODE = 8;
const GPUS = NODES * GPUS_PER_NODE;
const SLOTS = 9;
const GROUPS = 8; // DeepSeek-V3 n_group

const POLICY: PlacementPolicy = { maxMoveFraction: 0.1, minBalancednessGain: 0.005 };

function makeGpus(count: number, perNode: number, slots: number): GpuSlotInfo[] {
  return Array.from({ length: count }, (_, g) => ({
    gpuId: `node-${Math.floor(g / perNode)}/gpu-${g % perNode}`,
    nodeName: `node-${Math.floor(g / perNode)}`,
    slotCount: slots,
  }));
}

const gpus = makeGpus(GPUS, GPUS_PER_NODE, SLOTS);

function planned(outcome: PlacementOutcome): Extract<PlacementOutcome, { kind: "planned" }> {
  if (outcome.kind !== "planned") throw new Error(`expected a plan, got ${outcome.kind}: ${"reason" in outcome ? outcome.reason : ""}`);
  return outcome;
}

function fromMap(map: number[][], g: readonly GpuSlotInfo[] = gpus): Placement {
  const p = placementFromSglang({ physical_to_logical_map: map }, g, EXPERTS);
  if (!p.ok) throw new Error(p.reason);
  return p.value;
}

const median = (xs: readonly number[]): number => {
  const sorted = [...xs].sort((a, b) => a - b);
  const n = sorted.length;
  return n === 0 ? NaN : n % 2 === 1 ? sorted[n >> 1]! : (sorted[n / 2 - 1]! + sorted[n / 2]!) / 2;
};

/** Wall-clock and CPU time of one call (CPU: this process's user + system time, all threads). */
function measure<T>(fn: () => T): { value: T; ms: number; cpuMs: number } {
  const cpu = process.cpuUsage();
  const t = performance.now();
  const value = fn();
  const ms = performance.now() - t;
  const used = process.cpuUsage(cpu);
  return { value, ms, cpuMs: (used.user + used.system) / 1000 };
}

/** Timing repeats per measurement; the first call of each measurement is a discarded warm-up. */
const REPEATS = quick ? 5 : 9;

/** Median wall-clock and CPU ms over REPEATS warm calls (one more call before them is discarded). */
function timeMs<T>(fn: () => T, repeats = REPEATS): { value: T; ms: number; cpuMs: number; all: number[] } {
  let value = fn(); // warm-up, not timed
  const wall: number[] = [];
  const cpu: number[] = [];
  for (let i = 0; i < repeats; i++) {
    const m = measure(fn);
    value = m.value;
    wall.push(m.ms);
    cpu.push(m.cpuMs);
  }
  return { value, ms: median(wall), cpuMs: median(cpu), all: wall };
}

function table(title: string, header: string[], rows: string[][]): void {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: string[]): string => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join("  ");
  console.log(`\n${title}`);
  console.log(line(header));
  console.log(widths.map((w) => "-".repeat(w)).join("  "));
  for (const r of rows) console.log(line(r));
}

const f3 = (x: number): string => x.toFixed(3);
const f4 = (x: number): string => x.toFixed(4);
const pct = (x: number): string => `${(x * 100).toFixed(1)}%`;
const mean = (xs: number[]): number => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : 0);

// ---------------------------------------------------------------------------------------------
// Heat sources.
interface HeatCase {
  name: string;
  heat: number[][];
}

const seeds = quick ? [1, 2] : [1, 2, 3, 4];
const synthetic: HeatCase[] = seeds.map((seed) => ({ name: `synthetic seed ${seed}`, heat: generateHeat({ layerCount: LAYERS, expertCount: EXPERTS, seed }) }));
const real: HeatCase[] = [];
if (existsSync(realDir)) {
  for (const file of readdirSync(realDir).filter((f) => f.endsWith(".json")).sort()) {
    const parsed = heatFromSglangLogicalCount(JSON.parse(readFileSync(join(realDir, file), "utf8")));
    if (!parsed.ok) {
      console.log(`skipping ${file}: ${parsed.reason}`);
      continue;
    }
    if (parsed.value.heat.length !== LAYERS || parsed.value.heat[0]!.length !== EXPERTS) {
      console.log(`skipping ${file}: shape ${parsed.value.heat.length}x${parsed.value.heat[0]!.length}, expected ${LAYERS}x${EXPERTS}`);
      continue;
    }
    real.push({ name: `real ${file.replace(/\.json$/, "")}`, heat: parsed.value.heat });
  }
} else {
  console.log(`real expert-load files not found at ${realDir}: benchmarking synthetic heat only`);
}
const cases = [...synthetic, ...real];

console.log(`moe-operator placement benchmark${quick ? " (--quick)" : ""}: ${LAYERS} layers x ${EXPERTS} experts, ` +
  `${GPUS * SLOTS} slots on ${GPUS} GPUs in ${NODES} nodes; policy maxMoveFraction ${POLICY.maxMoveFraction}, ` +
  `minBalancednessGain ${POLICY.minBalancednessGain}`);

// ---------------------------------------------------------------------------------------------
// JIT warm-up: fresh and incremental plans on heat no case uses, so that no timing below
// includes compiling the planner (plan times settle after about 6-8 plans). Nothing measured
// here is reported.
const WARMUP_RUNS = 10;
{
  const warmHeat = generateHeat({ layerCount: LAYERS, expertCount: EXPERTS, seed: 99 });
  const warmNext = driftHeat(warmHeat, { correlation: 0.98, seed: 98 });
  for (let i = 0; i < WARMUP_RUNS; i++) {
    const first = planned(planPlacement({ heat: warmHeat, gpus, policy: POLICY }));
    planPlacement({ heat: warmNext, gpus, policy: POLICY, current: first.placement });
  }
}
console.log(`Times: wall-clock ms on one thread, median of ${REPEATS} warm runs per plan (after ${WARMUP_RUNS} untimed ` +
  `fresh + incremental warm-up plans, and one more untimed run per measurement); "cpu" = process CPU time ` +
  `(user + system, all threads), less sensitive to other load on the machine than wall-clock.`);

// ---------------------------------------------------------------------------------------------
// 0. Heat statistics (calibration of the synthetic generator against the real files).
table("Heat statistics (median over layers)", ["heat", "max/mean", "min/mean", "CV", "top8", "top32"],
  cases.map((c) => {
    const s = medianHeatStatistics(c.heat);
    return [c.name, s.maxOverMean.toFixed(2), s.minOverMean.toFixed(3), s.coefficientOfVariation.toFixed(2), pct(s.top8Share), pct(s.top32Share)];
  }));

// ---------------------------------------------------------------------------------------------
// 1. Fresh plan quality and time.
const freshRows: string[][] = [];
const freshPlans = new Map<string, Placement>();
const freshTimes: number[] = [];
const freshCpu: number[] = [];
for (const c of cases) {
  const ours = timeMs(() => planned(planPlacement({ heat: c.heat, gpus, policy: POLICY })));
  freshTimes.push(...ours.all);
  freshCpu.push(ours.cpuMs);
  freshPlans.set(c.name, ours.value.placement);
  const glob = timeMs(() => eplbGlobal(c.heat, GPUS * SLOTS, GPUS));
  const hier = eplbRebalance(c.heat, GPUS * SLOTS, GROUPS, NODES, GPUS);
  const globM = computePlacementMetrics(fromMap(glob.value), c.heat);
  const hierM = computePlacementMetrics(fromMap(hier), c.heat);
  const m = ours.value.metrics;
  freshRows.push([c.name, f4(m.balancedness), f4(globM.balancedness), f4(hierM.balancedness), (m.balancedness - globM.balancedness >= -0.005 ? "ok" : "MISS"),
    f3(m.crossNodeShare), f3(globM.crossNodeShare), f3(hierM.crossNodeShare), f4(m.nodeBalancedness), ours.ms.toFixed(1), ours.cpuMs.toFixed(1), glob.ms.toFixed(1)]);
}
table("Fresh plan: balancedness (mean/max GPU load, avg over layers), cross-node token share, plan time (median)",
  ["heat", "ours", "EPLB global", "EPLB hier", ">= glob-0.005", "xnode ours", "xnode glob", "xnode hier", "node bal ours", "ours ms", "ours cpu", "EPLB ms"], freshRows);

// ---------------------------------------------------------------------------------------------
// 2. Drift: consecutive windows correlated 0.98; our incremental plan vs EPLB re-planning.
interface ChainResult {
  ourMoved: number[];
  ourBal: number[];
  freshBal: number[];
  eplbMoved: number[];
  eplbBal: number[];
  unchanged: number;
  ms: number[];
  cpuMs: number[];
  corr: number[];
}

function runChain(base: number[][], windows: Array<(prev: number[][], i: number) => number[][]>): ChainResult {
  const res: ChainResult = { ourMoved: [], ourBal: [], freshBal: [], eplbMoved: [], eplbBal: [], unchanged: 0, ms: [], cpuMs: [], corr: [] };
  let current = planned(planPlacement({ heat: base, gpus, policy: POLICY })).placement;
  let eplbPrev = fromMap(eplbGlobal(base, GPUS * SLOTS, GPUS));
  let prev = base;
  windows.forEach((next, i) => {
    const heat = next(prev, i);
    res.corr.push(mean(heat.map((row, l) => correlation(row, prev[l]!))));
    const timed = measure(() => planPlacement({ heat, gpus, policy: POLICY, current }));
    const outcome = timed.value;
    res.ms.push(timed.ms);
    res.cpuMs.push(timed.cpuMs);
    if (outcome.kind === "planned") {
      res.ourMoved.push(outcome.movedFraction);
      res.ourBal.push(outcome.metrics.balancedness);
      current = outcome.placement;
    } else if (outcome.kind === "unchanged") {
      res.unchanged += 1;
      res.ourMoved.push(0);
      res.ourBal.push(outcome.metrics.balancedness);
    } else throw new Error(outcome.reason);
    res.freshBal.push(planned(planPlacement({ heat, gpus, policy: POLICY })).metrics.balancedness);
    const eplbNext = fromMap(eplbGlobal(heat, GPUS * SLOTS, GPUS));
    res.eplbMoved.push(countMovedReplicas(eplbPrev, eplbNext) / (LAYERS * GPUS * SLOTS));
    res.eplbBal.push(mapBalancedness(heat, eplbGlobal(heat, GPUS * SLOTS, GPUS), GPUS));
    eplbPrev = eplbNext;
    prev = heat;
  });
  return res;
}

const windowCount = quick ? 3 : 8;
const chainRows: string[][] = [];
const driftTimes: number[] = [];
const driftCpu: number[] = [];
/** Drift rows must also stay within 0.01 of a fresh plan; noise rows only bound the moves (a fresh
 * plan of a noisy window fits the noise, so the gap there measures the noise, not the planner). */
const addChainRow = (name: string, r: ChainResult, movedTarget: number, checkGap: boolean): void => {
  const worstGap = Math.max(...r.freshBal.map((f, i) => f - r.ourBal[i]!));
  const maxMoved = Math.max(...r.ourMoved);
  chainRows.push([name, f3(mean(r.corr)), pct(mean(r.ourMoved)), pct(maxMoved), f4(mean(r.ourBal)), f4(mean(r.freshBal)), f4(worstGap),
    `${r.unchanged}/${r.ourMoved.length}`, pct(mean(r.eplbMoved)), f4(mean(r.eplbBal)), median(r.ms).toFixed(1), median(r.cpuMs).toFixed(1),
    maxMoved <= movedTarget + 1e-9 && (!checkGap || worstGap <= 0.01) ? "ok" : "MISS"]);
};
for (const c of quick ? cases.filter((_, i) => i === 0 || i >= synthetic.length) : cases) {
  const drift = Array.from({ length: windowCount }, () => (prev: number[][], i: number) => driftHeat(prev, { correlation: 0.98, seed: 1000 + i }));
  const r = runChain(c.heat, drift);
  driftTimes.push(...r.ms);
  driftCpu.push(...r.cpuMs);
  addChainRow(`${c.name}, drift 0.98`, r, 0.1, true);
}
// Pure sampling noise: every window is a Poisson sample of the same underlying heat.
for (const tokens of [1_000_000, 100_000]) {
  for (const c of quick ? cases.filter((_, i) => i === 0 || i >= synthetic.length) : cases) {
    const noise = Array.from({ length: windowCount }, () => (_prev: number[][], i: number) => sampleHeat(c.heat, { tokensPerLayer: tokens, seed: 2000 + i }));
    addChainRow(`${c.name}, noise ${tokens / 1000}k tok`, runChain(c.heat, noise), 0.02, false);
  }
}
table(`Rebalancing over ${windowCount} windows (ours: incremental from the previous plan; EPLB: global policy re-planned; moved = expert weights loaded anew / replicas; ms: median over the windows, one run each)`,
  ["scenario", "corr", "ours moved", "max moved", "ours bal", "fresh bal", "worst gap", "unchanged", "EPLB moved", "EPLB bal", "ours ms", "ours cpu", "target"],
  chainRows);

// Plan-time target at the DeepSeek-V3 shape: <= 50 ms on one core, fresh and incremental.
const TIME_TARGET_MS = 50;
table(`Plan time at the DeepSeek-V3 shape (${LAYERS} x ${EXPERTS}, ${GPUS * SLOTS} slots on ${GPUS} GPUs; target <= ${TIME_TARGET_MS} ms; warm runs only)`,
  ["plan", "runs", "median ms", "p90 ms", "max ms", "median cpu", "target"],
  [["fresh", freshTimes, freshCpu], ["incremental (drift 0.98)", driftTimes, driftCpu]].map(([name, ms, cpu]) => {
    const xs = ms as number[];
    const sorted = [...xs].sort((a, b) => a - b);
    const p90 = sorted[Math.min(sorted.length - 1, Math.ceil(0.9 * sorted.length) - 1)]!;
    return [name as string, String(xs.length), median(xs).toFixed(1), p90.toFixed(1), sorted[sorted.length - 1]!.toFixed(1),
      median(cpu as number[]).toFixed(1), median(xs) <= TIME_TARGET_MS ? "ok" : "FAIL"];
  }));

// Workload shift (prefill -> decode, correlation ~0.66): informative, no target.
if (real.length >= 2) {
  const [a, b] = [real[0]!, real[1]!];
  const from = planned(planPlacement({ heat: a.heat, gpus, policy: POLICY })).placement;
  const rows: string[][] = [];
  for (const budget of [0.1, 0.25, 0.5]) {
    const o = planPlacement({ heat: b.heat, gpus, policy: { ...POLICY, maxMoveFraction: budget }, current: from });
    const before = computePlacementMetrics(from, b.heat).balancedness;
    rows.push([`budget ${pct(budget)}`, f4(before), o.kind === "planned" ? f4(o.metrics.balancedness) : o.kind,
      o.kind === "planned" ? pct(o.movedFraction) : "0", f4(planned(planPlacement({ heat: b.heat, gpus, policy: POLICY })).metrics.balancedness),
      pct(countMovedReplicas(fromMap(eplbGlobal(a.heat, GPUS * SLOTS, GPUS)), fromMap(eplbGlobal(b.heat, GPUS * SLOTS, GPUS))) / (LAYERS * GPUS * SLOTS))]);
  }
  table(`Workload shift ${a.name} -> ${b.name} (corr ${f3(mean(a.heat.map((r, l) => correlation(r, b.heat[l]!))))})`,
    ["ours", "bal before", "bal after", "moved", "fresh bal", "EPLB moved"], rows);
}

// ---------------------------------------------------------------------------------------------
// 3. Scaling: plan time vs size (one core).
const sizes: Array<{ gpus: number; experts: number; layers: number; slots: number }> = [
  { gpus: 32, experts: 256, layers: 58, slots: 9 },
  { gpus: 64, experts: 256, layers: 61, slots: 5 },
  { gpus: 128, experts: 256, layers: 61, slots: 3 },
  { gpus: 256, experts: 256, layers: 61, slots: 2 },
  { gpus: 512, experts: 256, layers: 61, slots: 1 },
  { gpus: 1024, experts: 256, layers: 61, slots: 1 },
];
const scaleRows: string[][] = [];
const perReplica: Array<{ fresh: number; inc: number }> = [];
for (const s of quick ? sizes.slice(0, 4) : sizes) {
  const heat = generateHeat({ layerCount: s.layers, expertCount: s.experts, seed: 7 });
  const g = makeGpus(s.gpus, 8, s.slots);
  const fresh = timeMs(() => planned(planPlacement({ heat, gpus: g, policy: POLICY })));
  const next = driftHeat(heat, { correlation: 0.98, seed: 8 });
  const inc = timeMs(() => planPlacement({ heat: next, gpus: g, policy: POLICY, current: fresh.value.placement }));
  const replicas = s.gpus * s.slots * s.layers;
  const eplb = timeMs(() => eplbGlobal(heat, s.gpus * s.slots, s.gpus), quick ? 1 : 3);
  const eplbBal = mapBalancedness(heat, eplb.value, s.gpus);
  perReplica.push({ fresh: (1000 * fresh.cpuMs) / replicas, inc: (1000 * inc.cpuMs) / replicas });
  scaleRows.push([`${s.gpus} GPUs x ${s.slots} slots`, String(s.experts), String(s.layers), String(replicas),
    fresh.ms.toFixed(1), inc.ms.toFixed(1), fresh.cpuMs.toFixed(1), inc.cpuMs.toFixed(1),
    ((1000 * fresh.cpuMs) / replicas).toFixed(2), ((1000 * inc.cpuMs) / replicas).toFixed(2),
    f4(fresh.value.metrics.balancedness), inc.value.kind === "planned" ? f4(inc.value.metrics.balancedness) : inc.value.kind,
    inc.value.kind === "planned" ? pct(inc.value.movedFraction) : "0", f4(eplbBal), eplb.ms.toFixed(1)]);
}
table("Scaling (median of warm runs on one thread; incremental = one drift-0.98 rebalance; us/rep = cpu us per replica)",
  ["size", "experts", "layers", "replicas", "fresh ms", "incr ms", "fresh cpu", "incr cpu", "fresh us/rep", "incr us/rep", "fresh bal", "incr bal", "incr moved", "EPLB bal", "EPLB ms"], scaleRows);
// Near-linear: CPU time per replica at the largest size within 2x of the smallest size's.
const spread = (xs: number[]): number => xs[xs.length - 1]! / xs[0]!;
const freshSpread = spread(perReplica.map((p) => p.fresh));
const incSpread = spread(perReplica.map((p) => p.inc));
console.log(`Time per replica, largest vs smallest size: fresh x${freshSpread.toFixed(2)}, incremental x${incSpread.toFixed(2)} ` +
  `(near-linear target <= x2): ${freshSpread <= 2 && incSpread <= 2 ? "ok" : "FAIL"}`);
