// Reports of a replay: summary.json (deterministic: no clock, no paths, rounded numbers, fixed
// key order), a Markdown table and an SVG timeline written by hand.

import type { Scenario } from "./scenario.ts";
import { OVERSHOOT_FACTOR, pickTunedPoint, TUNING_TARGET_ATTAINMENT } from "./runner.ts";
import type { PolicyResult, SimResult, TunedBaseline, TunedPoint } from "./runner.ts";
import { tuningKnobName } from "./policies.ts";
import type { PolicyName } from "./types.ts";
import { reactiveLeadMinutes, reactiveReference } from "./reactive.ts";
import type { ReactiveReference, ReactiveReferenceInput } from "./reactive.ts";

function round(x: number, digits = 4): number | null {
  if (!Number.isFinite(x)) return null;
  const f = Math.pow(10, digits);
  const r = Math.round(x * f) / f;
  return Object.is(r, -0) ? 0 : r;
}

export interface PolicySummary {
  readonly name: PolicyName;
  readonly gpuHours: number | null;
  readonly costUsd: number | null;
  /** GPU-hours / oracle GPU-hours (null without an oracle run). */
  readonly gpuHoursVsOracle: number | null;
  /** 1 - GPU-hours / static GPU-hours (null without a static run). */
  readonly savingVsStatic: number | null;
  readonly sloAttainment: number | null;
  readonly minutes: number;
  readonly violatedMinutes: number;
  readonly coldStartViolationMinutes: number;
  readonly predictableBurstViolationMinutes: number;
  readonly worstP99Ms: number | null;
  readonly p99OfMinuteP99Ms: number | null;
  readonly meanGpus: number | null;
  readonly peakGpus: number;
  readonly scaleUps: number;
  readonly scaleDowns: number;
  readonly coldStarts: number;
  /** GPU-minutes above 1.5 x the per-minute requirement. */
  readonly overshootGpuMinutes: number | null;
}

/** One grid point of a baseline tuned in hindsight. */
export interface TunedPointSummary {
  readonly knob: number;
  readonly gpuHours: number | null;
  readonly gpuHoursVsOracle: number | null;
  readonly sloAttainment: number | null;
  readonly overshootGpuMinutes: number | null;
  /** Whether the point reached the attainment it was picked for. */
  readonly reached: boolean;
}

export interface TunedBaselineSummary {
  readonly name: string;
  readonly knob: string;
  readonly grid: readonly number[];
  /** The cheapest point reaching 99.5 % (or the highest attainment when none does): the policy's row. */
  readonly atTarget: TunedPointSummary | null;
  /** The cheapest point reaching ours' attainment (or the highest attainment). */
  readonly atOursAttainment: TunedPointSummary | null;
}

/** The reactive reference at one attainment (see src/sim/reactive.ts), with its ratio to the oracle. */
export interface ReactiveSummary {
  readonly targetAttainment: number | null;
  readonly attainment: number | null;
  readonly estimator: string;
  readonly multiplier: number | null;
  readonly gpuHours: number | null;
  readonly gpuHoursVsOracle: number | null;
}

export interface TargetCheck {
  readonly name: string;
  readonly target: string;
  readonly value: number | null;
  readonly met: boolean | null;
}

export interface Summary {
  readonly tool: "moe-sim";
  readonly schemaVersion: 1;
  readonly trace: {
    readonly name: string;
    readonly format: string;
    readonly seconds: number;
    readonly requests: number | null;
    readonly scale: number | null;
    readonly arrivalCv: number | null;
    readonly skippedLines: number;
    readonly startEpochMs: number;
  };
  readonly config: {
    readonly metric: string;
    readonly sloMs: number;
    readonly preset: string;
    readonly usdPerGpuHour: number;
    readonly seed: number;
    readonly minGpus: number;
    readonly maxGpus: number;
    /** Group mode (SimConfig.group): capacity in whole groups of nodesPerGroup x gpusPerNode GPUs. */
    readonly group?: { readonly nodesPerGroup: number; readonly gpusPerNode: number };
    readonly warmupS: number;
    readonly coldStart: {
      readonly medianS: number;
      readonly sigma: number;
      readonly minS: number;
      readonly maxS: number;
    };
    readonly scrapeIntervalS: number;
    readonly scrapeDelayS: number;
    readonly loadNoise: number;
    readonly latencyNoise: number;
    readonly groundTruth: Record<string, number | string>;
  };
  readonly reference: {
    readonly staticGpus: number;
    readonly oracleColdStartS: number | null;
    readonly unattainableMinutes: number;
    readonly predictableMinutes: number;
    readonly tunedUtilization: number | null;
    readonly peakRequirementGpus: number;
    /**
     * The cheapest hindsight-tuned reactive rule (sees past requirements, leadMinutes late, scales
     * for free) at 99.5 % of minutes and at ours' attainment; null when none reaches it.
     */
    readonly reactive: {
      readonly leadMinutes: number;
      readonly atTarget: ReactiveSummary | null;
      readonly atOursAttainment: ReactiveSummary | null;
    };
  };
  readonly policies: readonly PolicySummary[];
  /** hpa, kpa, slo-keda tuned in hindsight on their grids (empty when not tuned). */
  readonly tunedBaselines: readonly TunedBaselineSummary[];
  /** Policies or grid points with GPU-hours <= ours and attainment >= ours, one of them strictly ("hpa@0.55"). */
  readonly oursDominatedBy: readonly string[];
  readonly targets: readonly TargetCheck[];
}

function dominates(
  a: { gpuHours: number; sloAttainment: number },
  b: { gpuHours: number; sloAttainment: number },
): boolean {
  return (
    a.gpuHours <= b.gpuHours &&
    a.sloAttainment >= b.sloAttainment &&
    (a.gpuHours < b.gpuHours || a.sloAttainment > b.sloAttainment)
  );
}

/** Everything that dominates ours: the other policies' rows and every tuned grid point. */
export function oursDominatedBy(result: SimResult): string[] {
  const ours = result.results.find((r) => r.name === "ours");
  if (ours === undefined) return [];
  const out: string[] = [];
  for (const r of result.results)
    if (r.name !== "ours" && r.name !== "oracle" && !result.tuned.some((t) => t.name === r.name) && dominates(r, ours))
      out.push(r.name);
  for (const t of result.tuned)
    for (const p of t.points) if (dominates(p.result, ours)) out.push(`${t.name}@${p.knob}`);
  return out;
}

function tunedSummary(
  t: TunedBaseline,
  oursAttainment: number | undefined,
  oracleHours: number | undefined,
): TunedBaselineSummary {
  const point = (picked: { point: TunedPoint; reached: boolean } | undefined): TunedPointSummary | null =>
    picked === undefined
      ? null
      : {
          knob: picked.point.knob,
          gpuHours: round(picked.point.result.gpuHours, 3),
          gpuHoursVsOracle:
            oracleHours !== undefined && oracleHours > 0 ? round(picked.point.result.gpuHours / oracleHours) : null,
          sloAttainment: round(picked.point.result.sloAttainment, 5),
          overshootGpuMinutes: round(picked.point.result.overshootGpuMinutes, 1),
          reached: picked.reached,
        };
  return {
    name: t.name,
    knob: tuningKnobName(t.name),
    grid: t.points.map((p) => p.knob),
    atTarget: point(pickTunedPoint(t.points, TUNING_TARGET_ATTAINMENT)),
    atOursAttainment: oursAttainment === undefined ? null : point(pickTunedPoint(t.points, oursAttainment)),
  };
}

/** The reactive reference's input for a replay: its requirement, scored minutes and bounds. */
export function reactiveInputFor(scenario: Scenario, result: SimResult, leadMinutes: number): ReactiveReferenceInput {
  return {
    requirement: result.requirement,
    warmupMinutes: Math.floor((scenario.config.warmupS ?? 0) / 60),
    leadMinutes,
    minGpus: result.minGpus,
    maxGpus: result.maxGpus,
    unattainable: result.unattainable,
  };
}

function summarizePolicy(
  r: PolicyResult,
  oracle: PolicyResult | undefined,
  stat: PolicyResult | undefined,
): PolicySummary {
  return {
    name: r.name,
    gpuHours: round(r.gpuHours, 3),
    costUsd: round(r.costUsd, 2),
    gpuHoursVsOracle: oracle !== undefined && oracle.gpuHours > 0 ? round(r.gpuHours / oracle.gpuHours) : null,
    savingVsStatic: stat !== undefined && stat.gpuHours > 0 ? round(1 - r.gpuHours / stat.gpuHours) : null,
    sloAttainment: round(r.sloAttainment, 5),
    minutes: r.minutes,
    violatedMinutes: r.violatedMinutes,
    coldStartViolationMinutes: r.coldStartViolationMinutes,
    predictableBurstViolationMinutes: r.predictableBurstViolationMinutes,
    worstP99Ms: round(r.worstP99Ms, 2),
    p99OfMinuteP99Ms: round(r.p99OfMinuteP99Ms, 2),
    meanGpus: round(r.meanGpus, 3),
    peakGpus: r.peakGpus,
    scaleUps: r.scaleUps,
    scaleDowns: r.scaleDowns,
    coldStarts: r.coldStarts,
    overshootGpuMinutes: round(r.overshootGpuMinutes, 1),
  };
}

function summarizeReactive(r: ReactiveReference | undefined, oracle: PolicyResult | undefined): ReactiveSummary | null {
  return r === undefined
    ? null
    : {
        targetAttainment: round(r.targetAttainment, 5),
        attainment: round(r.attainment, 5),
        estimator: r.estimator,
        multiplier: round(r.multiplier),
        gpuHours: round(r.gpuHours, 3),
        gpuHoursVsOracle: oracle !== undefined && oracle.gpuHours > 0 ? round(r.gpuHours / oracle.gpuHours) : null,
      };
}

function buildReactive(
  scenario: Scenario,
  result: SimResult,
  ours: PolicySummary | undefined,
  oracle: PolicyResult | undefined,
): Summary["reference"]["reactive"] {
  const c = scenario.config;
  const leadMinutes = reactiveLeadMinutes(c.coldStart.medianS, c.scrapeDelayS);
  const reactiveInput = reactiveInputFor(scenario, result, leadMinutes);
  return {
    leadMinutes,
    atTarget: summarizeReactive(reactiveReference(reactiveInput, 0.995), oracle),
    atOursAttainment:
      ours?.sloAttainment === null || ours === undefined
        ? null
        : summarizeReactive(reactiveReference(reactiveInput, ours.sloAttainment), oracle),
  };
}

function buildTargets(ours: PolicySummary | undefined, predictableMinutes: number): TargetCheck[] {
  const targets: TargetCheck[] = [];
  if (ours === undefined) return targets;
  targets.push({
    name: "ours SLO attainment",
    target: ">= 0.995 of minutes",
    value: ours.sloAttainment,
    met: ours.sloAttainment === null ? null : ours.sloAttainment >= 0.995,
  });
  if (ours.gpuHoursVsOracle !== null)
    targets.push({
      name: "ours GPU-hours vs oracle",
      target: "<= 1.10",
      value: ours.gpuHoursVsOracle,
      met: ours.gpuHoursVsOracle <= 1.1,
    });
  if (ours.savingVsStatic !== null)
    targets.push({
      name: "ours GPU-hours saved vs static peak",
      target: ">= 0.40 (14-day diurnal series)",
      value: ours.savingVsStatic,
      met: ours.savingVsStatic >= 0.4,
    });
  targets.push({
    name: "ours cold-start violations on predictable bursts",
    target: "0 minutes",
    value: ours.predictableBurstViolationMinutes,
    met: predictableMinutes === 0 ? null : ours.predictableBurstViolationMinutes === 0,
  });
  return targets;
}

function summarizeTrace(scenario: Scenario): Summary["trace"] {
  let requests = 0;
  for (const r of scenario.load.requests) requests += r;
  return {
    name: scenario.trace.name,
    format: scenario.trace.format,
    seconds: scenario.load.seconds,
    requests: round(requests, 1),
    scale: round(scenario.scale, 6),
    arrivalCv: scenario.trace.kind === "rate" ? scenario.arrivalCv : null,
    skippedLines: scenario.trace.skippedLines,
    startEpochMs: scenario.load.startEpochMs,
  };
}

function summarizeConfig(scenario: Scenario, result: SimResult): Summary["config"] {
  const c = scenario.config;
  const groundTruth: Record<string, number | string> = {};
  for (const [k, v] of Object.entries(c.truth)) groundTruth[k] = typeof v === "number" ? (round(v, 6) ?? 0) : v;
  return {
    metric: c.metric,
    sloMs: c.sloMs,
    preset: c.shape.name,
    usdPerGpuHour: c.usdPerGpuHour,
    seed: c.seed,
    minGpus: result.minGpus,
    maxGpus: result.maxGpus,
    ...(c.group === undefined
      ? {}
      : { group: { nodesPerGroup: c.group.nodesPerGroup, gpusPerNode: c.group.gpusPerNode } }),
    warmupS: c.warmupS ?? 0,
    coldStart: { ...c.coldStart },
    scrapeIntervalS: c.scrapeIntervalS,
    scrapeDelayS: c.scrapeDelayS,
    loadNoise: c.loadNoise,
    latencyNoise: c.latencyNoise,
    groundTruth,
  };
}

export function buildSummary(scenario: Scenario, result: SimResult): Summary {
  const oracle = result.results.find((r) => r.name === "oracle");
  const stat = result.results.find((r) => r.name === "static");
  let peakReq = 0;
  for (const r of result.requirement) peakReq = Math.max(peakReq, r);
  const policies: PolicySummary[] = result.results.map((r: PolicyResult) => summarizePolicy(r, oracle, stat));
  const ours = policies.find((p) => p.name === "ours");
  const reactive = buildReactive(scenario, result, ours, oracle);
  const targets = buildTargets(ours, result.predictableMinutes);
  return {
    tool: "moe-sim",
    schemaVersion: 1,
    trace: summarizeTrace(scenario),
    config: summarizeConfig(scenario, result),
    reference: {
      staticGpus: result.staticGpus,
      oracleColdStartS: round(result.oracleColdStartS, 1),
      unattainableMinutes: result.unattainableMinutes,
      predictableMinutes: result.predictableMinutes,
      tunedUtilization: round(result.tunedUtilization, 4),
      peakRequirementGpus: peakReq,
      reactive,
    },
    policies,
    tunedBaselines: result.tuned.map((t) =>
      tunedSummary(t, result.results.find((r) => r.name === "ours")?.sloAttainment, oracle?.gpuHours),
    ),
    oursDominatedBy: oursDominatedBy(result),
    targets,
  };
}

export function summaryJson(summary: Summary): string {
  return `${JSON.stringify(summary, null, 2)}\n`;
}

function fmt(x: number | null, digits: number): string {
  return x === null ? "n/a" : x.toFixed(digits);
}

function pct(x: number | null, digits = 2): string {
  return x === null ? "n/a" : `${(x * 100).toFixed(digits)}%`;
}

export function markdownTable(summary: Summary): string {
  const rows = summary.policies.map(
    (p) =>
      `| ${p.name} | ${fmt(p.gpuHours, 1)} | ${fmt(p.costUsd, 0)} | ${fmt(p.gpuHoursVsOracle, 3)} | ${pct(p.savingVsStatic, 1)} | ${pct(p.sloAttainment)} | ${p.violatedMinutes} | ${p.coldStartViolationMinutes} | ${p.predictableBurstViolationMinutes} | ${fmt(p.p99OfMinuteP99Ms, 0)} | ${fmt(p.worstP99Ms, 0)} | ${fmt(p.meanGpus, 1)} | ${p.peakGpus} | ${fmt(p.overshootGpuMinutes, 0)} |`,
  );
  return [
    `| policy | GPU-hours | cost USD | x oracle | saved vs static | SLO met (minutes) | violated min | cold-start viol. min | predictable-burst viol. min | p99 of minute p99 (ms) | worst p99 (ms) | mean GPUs | peak GPUs | overshoot GPU-min (> ${OVERSHOOT_FACTOR} x req.) |`,
    "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ...rows,
  ].join("\n");
}

function tunedPointText(p: TunedPointSummary | null): string {
  if (p === null) return "n/a";
  return `${fmt(p.gpuHoursVsOracle, 3)} x oracle at ${pct(p.sloAttainment)} (knob ${p.knob}${p.reached ? "" : ", target not reached on the grid"})`;
}

/** One line per tuned baseline: at 99.5 % and at ours' attainment. */
export function tunedBaselineLines(summary: Summary): string[] {
  return summary.tunedBaselines.map(
    (t) =>
      `- ${t.name} (${t.knob} in ${t.grid.join(", ")}): 99.5%: ${tunedPointText(t.atTarget)}; at ours' attainment: ${tunedPointText(t.atOursAttainment)}`,
  );
}

function reactiveText(x: ReactiveSummary | null): string {
  if (x === null) return "not reachable";
  return `${fmt(x.gpuHoursVsOracle, 3)} x oracle (${x.estimator} x ${fmt(x.multiplier, 2)})`;
}

/**
 * One sentence on the reactive reference: what reacting to measurements costs on this trace (the
 * cheapest rule that sees every past minute's true requirement, one lead time late, with its
 * multiplier tuned in hindsight and free, instant scaling).
 */
export function reactiveLine(summary: Summary): string {
  const x = summary.reference.reactive;
  const ours = x.atOursAttainment;
  const atOurs =
    ours === null || ours.targetAttainment === null
      ? ""
      : `; at ours' ${pct(ours.targetAttainment)}: ${reactiveText(ours)}`;
  return `Reactive reference (true past requirement, ${x.leadMinutes} min late, multiplier tuned in hindsight, free scaling): 99.5% of minutes costs ${reactiveText(x.atTarget)}${atOurs}.`;
}

export function markdownReport(summary: Summary): string {
  const t = summary.trace;
  const c = summary.config;
  const r = summary.reference;
  const lines = [
    `# moe-sim: ${t.name}`,
    "",
    `Trace ${t.name} (${t.format}), ${(t.seconds / 3600).toFixed(1)} h, ${fmt(t.requests, 0)} requests after scaling x${fmt(t.scale, 3)}${t.arrivalCv === null ? "" : `, Gamma arrivals CV ${t.arrivalCv}`}${t.skippedLines > 0 ? `, ${t.skippedLines} bad lines skipped` : ""}.`,
    `SLO: p99 ${c.metric} <= ${c.sloMs} ms every minute. Model ${c.preset}, GPUs ${c.minGpus}-${c.maxGpus}, $${c.usdPerGpuHour}/GPU-hour, seed ${c.seed}, first ${c.warmupS / 60} min not scored.`,
    ...(c.group === undefined
      ? []
      : [
          `Group mode: capacity in whole groups of ${c.group.nodesPerGroup} x ${c.group.gpusPerNode} = ${c.group.nodesPerGroup * c.group.gpusPerNode} GPUs for every policy and the oracle; a group is Ready when the slowest of its ${c.group.nodesPerGroup} pods is.`,
        ]),
    `Cold start log-normal, median ${c.coldStart.medianS} s (sigma ${c.coldStart.sigma}, ${c.coldStart.minS}-${c.coldStart.maxS} s); metrics scraped every ${c.scrapeIntervalS} s, ${c.scrapeDelayS} s late.`,
    `Static peak = ${r.staticGpus} GPUs; oracle cold start ${fmt(r.oracleColdStartS, 0)} s; hpa/kpa utilisation target when not grid-tuned ${fmt(r.tunedUtilization, 3)}; ${r.unattainableMinutes} minutes unattainable at max GPUs; ${r.predictableMinutes} minutes in predictable ramps.`,
    "",
    markdownTable(summary),
    "",
    reactiveLine(summary),
    "",
  ];
  if (summary.tunedBaselines.length > 0) {
    lines.push(
      `Baselines tuned in hindsight (rows above: the cheapest grid point reaching 99.5 %, else the highest attainment):`,
      "",
      ...tunedBaselineLines(summary),
      "",
    );
  }
  if (summary.policies.some((p) => p.name === "ours")) {
    lines.push(
      `Ours dominated by (as cheap and as good, one strictly): ${summary.oursDominatedBy.length === 0 ? "none" : summary.oursDominatedBy.join(", ")}.`,
      "",
    );
  }
  if (summary.targets.length > 0) {
    lines.push("Targets (ours):", "");
    for (const tc of summary.targets) {
      const mark = tc.met === null ? "n/a" : tc.met ? "met" : "NOT met";
      lines.push(`- ${tc.name}: ${tc.value === null ? "n/a" : tc.value} (target ${tc.target}): ${mark}`);
    }
    lines.push("");
  }
  return lines.join("\n");
}

const COLORS: Readonly<Record<PolicyName, string>> = {
  ours: "#d62728",
  static: "#7f7f7f",
  schedule: "#8c564b",
  hpa: "#1f77b4",
  kpa: "#17becf",
  "slo-keda": "#9467bd",
  oracle: "#2ca02c",
};

function esc(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
}

function n1(x: number): string {
  return (Math.round(x * 10) / 10).toString();
}

/** Layout of the SVG timeline and the lines written so far. */
interface SvgFrame {
  readonly parts: string[];
  readonly width: number;
  readonly height: number;
  readonly left: number;
  readonly plotW: number;
  readonly panelH: number;
  readonly gap: number;
  readonly top: number;
  readonly minutes: number;
  readonly buckets: number;
  readonly per: number;
  readonly hours: number;
  readonly tickEveryH: number;
}

type YScale = (v: number) => number;

function createFrame(minutes: number): SvgFrame {
  const width = 1200;
  const left = 70;
  const right = 150;
  const plotW = width - left - right;
  const panelH = 170;
  const gap = 46;
  const top = 54;
  const height = top + 3 * panelH + 2 * gap + 40;
  const buckets = Math.max(1, Math.min(plotW, minutes));
  const hours = minutes / 60;
  const tickEveryH = hours <= 3 ? 0.25 : hours <= 30 ? 3 : hours <= 96 ? 12 : 24;
  return {
    parts: [],
    width,
    height,
    left,
    plotW,
    panelH,
    gap,
    top,
    minutes,
    buckets,
    per: minutes / buckets,
    hours,
    tickEveryH,
  };
}

function xOfBucket(f: SvgFrame, b: number): number {
  return f.left + (f.buckets <= 1 ? 0 : (b / (f.buckets - 1)) * f.plotW);
}

/** Per-minute series down to one value per pixel bucket (NaN minutes skipped; NaN for an empty bucket). */
function reduceSeries(f: SvgFrame, series: ArrayLike<number>, how: "mean" | "max"): number[] {
  const out: number[] = [];
  for (let b = 0; b < f.buckets; b++) {
    const a = Math.floor(b * f.per);
    const e = Math.max(a + 1, Math.floor((b + 1) * f.per));
    let acc = how === "max" ? -Infinity : 0;
    let n = 0;
    for (let m = a; m < Math.min(e, f.minutes); m++) {
      const v = series[m] as number;
      if (Number.isNaN(v)) continue;
      if (how === "max") acc = Math.max(acc, v);
      else acc += v;
      n++;
    }
    out.push(n === 0 ? NaN : how === "max" ? acc : acc / n);
  }
  return out;
}

function drawHeader(f: SvgFrame, scenario: Scenario): void {
  const slo = scenario.config.sloMs;
  f.parts.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${f.width}" height="${f.height}" viewBox="0 0 ${f.width} ${f.height}" font-family="sans-serif" font-size="12">`,
  );
  f.parts.push(`<rect width="${f.width}" height="${f.height}" fill="white"/>`);
  f.parts.push(
    `<text x="${f.left}" y="22" font-size="15" font-weight="bold">${esc(`moe-sim: ${scenario.trace.name}, p99 ${scenario.config.metric} SLO ${slo} ms, ${scenario.config.shape.name}`)}</text>`,
  );
}

function drawYAxis(f: SvgFrame, y0: number, ticks: readonly number[], yOf: YScale, unit: string): void {
  const { parts, left, plotW, panelH } = f;
  for (const t of ticks) {
    parts.push(
      `<text x="${left - 6}" y="${n1(yOf(t) + 4)}" text-anchor="end">${esc(t >= 1000 ? `${n1(t / 1000)}k` : n1(t))}</text>`,
    );
    parts.push(`<line x1="${left}" x2="${left + plotW}" y1="${n1(yOf(t))}" y2="${n1(yOf(t))}" stroke="#eee"/>`);
  }
  parts.push(
    `<text x="${left - 50}" y="${y0 + panelH / 2}" transform="rotate(-90 ${left - 50} ${y0 + panelH / 2})" text-anchor="middle">${esc(unit)}</text>`,
  );
}

function timeTickLabel(f: SvgFrame, h: number): string {
  return f.tickEveryH >= 24
    ? `d${Math.round(h / 24)}`
    : f.tickEveryH >= 1
      ? `${Math.round(h)}h`
      : `${Math.round(h * 60)}m`;
}

/** Time ticks under a panel; labels only under the last one. */
function drawTimeAxis(f: SvgFrame, y0: number, labelled: boolean): void {
  const { parts, left, plotW, panelH, minutes } = f;
  for (let h = 0; h <= f.hours + 1e-9; h += f.tickEveryH) {
    const x = left + (minutes <= 1 ? 0 : ((h * 60) / (minutes - 1)) * plotW);
    if (x > left + plotW + 0.5) break;
    parts.push(`<line x1="${n1(x)}" x2="${n1(x)}" y1="${y0 + panelH}" y2="${y0 + panelH + 4}" stroke="#999"/>`);
    if (labelled)
      parts.push(`<text x="${n1(x)}" y="${y0 + panelH + 16}" text-anchor="middle">${esc(timeTickLabel(f, h))}</text>`);
  }
}

/** Panel i's frame, title and axes; returns its value-to-y map. */
function drawPanel(
  f: SvgFrame,
  i: number,
  title: string,
  yMin: number,
  yMax: number,
  log: boolean,
  unit: string,
): YScale {
  const { parts, left, plotW, panelH } = f;
  const y0 = f.top + i * (panelH + f.gap);
  const yOf = (v: number): number => {
    const r = log
      ? (Math.log(Math.max(v, yMin)) - Math.log(yMin)) / (Math.log(yMax) - Math.log(yMin))
      : (v - yMin) / (yMax - yMin || 1);
    return y0 + panelH - Math.min(1, Math.max(0, r)) * panelH;
  };
  parts.push(`<rect x="${left}" y="${y0}" width="${plotW}" height="${panelH}" fill="none" stroke="#ccc"/>`);
  parts.push(`<text x="${left}" y="${y0 - 6}" font-weight="bold">${esc(title)}</text>`);
  const ticks = log ? [yMin, Math.sqrt(yMin * yMax), yMax] : [yMin, (yMin + yMax) / 2, yMax];
  drawYAxis(f, y0, ticks, yOf, unit);
  drawTimeAxis(f, y0, i === 2);
  return yOf;
}

function drawPolyline(f: SvgFrame, values: number[], yOf: YScale, color: string, widthPx: number, dash?: string): void {
  let d = "";
  let pen = false;
  values.forEach((v, b) => {
    if (!Number.isFinite(v) && v !== Infinity) {
      pen = false;
      return;
    }
    d += `${pen ? "L" : "M"}${n1(xOfBucket(f, b))} ${n1(yOf(v))} `;
    pen = true;
  });
  if (d !== "")
    f.parts.push(
      `<path d="${d.trim()}" fill="none" stroke="${color}" stroke-width="${widthPx}"${dash === undefined ? "" : ` stroke-dasharray="${dash}"`}/>`,
    );
}

/** Panel 1: offered load. */
function drawLoadPanel(f: SvgFrame, scenario: Scenario, result: SimResult): void {
  const load = reduceSeries(f, result.loadPerMinute, "mean");
  let maxLoad = 0;
  for (const v of load) if (Number.isFinite(v)) maxLoad = Math.max(maxLoad, v);
  const yLoad = drawPanel(
    f,
    0,
    `Offered load (${scenario.config.metric === "ttft" ? "input" : "output"} tokens/s, per-minute mean)`,
    0,
    maxLoad * 1.05 || 1,
    false,
    "tokens/s",
  );
  drawPolyline(f, load, yLoad, "#333", 1.2);
}

/** Panel 2: provisioned GPUs, with the requirement in grey; the policies' lines come later. */
function drawGpuPanel(f: SvgFrame, result: SimResult): YScale {
  let maxGpus = 0;
  for (const t of result.timelines) for (const v of t.gpus) maxGpus = Math.max(maxGpus, v);
  const yGpu = drawPanel(
    f,
    1,
    "Provisioned GPUs (ready + warming) per policy; grey: per-minute requirement",
    0,
    Math.max(1, maxGpus * 1.05),
    false,
    "GPUs",
  );
  drawPolyline(f, reduceSeries(f, result.requirement, "max"), yGpu, "#bbb", 1);
  return yGpu;
}

/** Panel 3: p99 against the dashed SLO line; the policies' lines come later. */
function drawP99Panel(f: SvgFrame, scenario: Scenario): YScale {
  const slo = scenario.config.sloMs;
  const yP99 = drawPanel(
    f,
    2,
    `p99 ${scenario.config.metric} per minute (log scale; dashed: SLO ${slo} ms)`,
    slo / 4,
    slo * 16,
    true,
    "ms",
  );
  f.parts.push(
    `<line x1="${f.left}" x2="${f.left + f.plotW}" y1="${n1(yP99(slo))}" y2="${n1(yP99(slo))}" stroke="#000" stroke-dasharray="6 4"/>`,
  );
  return yP99;
}

/** Each policy's GPUs and p99, ours drawn last (on top). */
function drawPolicyLines(f: SvgFrame, result: SimResult, yGpu: YScale, yP99: YScale): void {
  const order = [...result.timelines].sort((a, b) => (a.name === "ours" ? 1 : 0) - (b.name === "ours" ? 1 : 0));
  for (const t of order) {
    const color = COLORS[t.name];
    const w = t.name === "ours" ? 2 : 1.1;
    drawPolyline(f, reduceSeries(f, t.gpus, "mean"), yGpu, color, w, t.name === "oracle" ? "4 3" : undefined);
    drawPolyline(f, reduceSeries(f, t.p99Ms, "max"), yP99, color, w, t.name === "oracle" ? "4 3" : undefined);
  }
}

function drawLegend(f: SvgFrame, result: SimResult): void {
  const { parts } = f;
  const summaries = new Map(result.results.map((r) => [r.name, r]));
  result.timelines.forEach((t, i) => {
    const y = f.top + 10 + i * 34;
    const x = f.left + f.plotW + 14;
    const r = summaries.get(t.name);
    parts.push(
      `<line x1="${x}" x2="${x + 22}" y1="${y}" y2="${y}" stroke="${COLORS[t.name]}" stroke-width="3"${t.name === "oracle" ? ` stroke-dasharray="4 3"` : ""}/>`,
    );
    parts.push(
      `<text x="${x + 28}" y="${y + 4}" font-weight="${t.name === "ours" ? "bold" : "normal"}">${esc(t.name)}</text>`,
    );
    if (r !== undefined)
      parts.push(
        `<text x="${x + 28}" y="${y + 18}" fill="#555" font-size="10">${esc(`${r.gpuHours.toFixed(0)} GPU-h, ${(r.sloAttainment * 100).toFixed(1)}% met`)}</text>`,
      );
  });
}

/** SVG timeline: load, GPUs per policy, p99 per policy against the SLO (log scale). */
export function timelineSvg(scenario: Scenario, result: SimResult): string {
  const f = createFrame(result.minutes);
  drawHeader(f, scenario);
  drawLoadPanel(f, scenario, result);
  const yGpu = drawGpuPanel(f, result);
  const yP99 = drawP99Panel(f, scenario);
  drawPolicyLines(f, result, yGpu, yP99);
  drawLegend(f, result);
  f.parts.push("</svg>");
  return `${f.parts.join("\n")}\n`;
}

/** Mean and range of one figure over seeds. */
export interface Spread {
  readonly mean: number | null;
  readonly min: number | null;
  readonly max: number | null;
}

export interface SeedSpread {
  readonly seeds: readonly number[];
  readonly policies: readonly {
    readonly name: string;
    readonly gpuHoursVsOracle: Spread;
    readonly sloAttainment: Spread;
    readonly overshootGpuMinutes: Spread;
  }[];
  readonly reactiveAtOursVsOracle: Spread;
}

function spreadOf(values: readonly (number | null | undefined)[], digits: number): Spread {
  const v = values.filter((x): x is number => typeof x === "number");
  if (v.length === 0) return { mean: null, min: null, max: null };
  return {
    mean: round(v.reduce((a, b) => a + b, 0) / v.length, digits),
    min: round(Math.min(...v), digits),
    max: round(Math.max(...v), digits),
  };
}

/** Every figure of a short trace over several seeds (issue 14: a single seed on a 1-hour trace is noise). */
export function seedSpread(summaries: readonly Summary[]): SeedSpread {
  const names = summaries[0]?.policies.map((p) => p.name) ?? [];
  const of = (name: string) => summaries.map((s) => s.policies.find((p) => p.name === name));
  return {
    seeds: summaries.map((s) => s.config.seed),
    policies: names.map((name) => ({
      name,
      gpuHoursVsOracle: spreadOf(
        of(name).map((p) => p?.gpuHoursVsOracle),
        4,
      ),
      sloAttainment: spreadOf(
        of(name).map((p) => p?.sloAttainment),
        5,
      ),
      overshootGpuMinutes: spreadOf(
        of(name).map((p) => p?.overshootGpuMinutes),
        1,
      ),
    })),
    reactiveAtOursVsOracle: spreadOf(
      summaries.map((s) => s.reference.reactive.atOursAttainment?.gpuHoursVsOracle),
      4,
    ),
  };
}

function spreadText(s: Spread, f: (x: number) => string): string {
  if (s.mean === null || s.min === null || s.max === null) return "n/a";
  return `${f(s.mean)} (${f(s.min)}-${f(s.max)})`;
}

export function markdownSeedSpread(spread: SeedSpread): string {
  const p2 = (x: number): string => `${(x * 100).toFixed(2)}%`;
  const x3 = (x: number): string => x.toFixed(3);
  const n0 = (x: number): string => x.toFixed(0);
  return [
    `Over seeds ${spread.seeds.join(", ")} (the trace is shorter than a day; mean (min-max)):`,
    "",
    "| policy | x oracle | SLO met (minutes) | overshoot GPU-min |",
    "|---|---:|---:|---:|",
    ...spread.policies.map(
      (p) =>
        `| ${p.name} | ${spreadText(p.gpuHoursVsOracle, x3)} | ${spreadText(p.sloAttainment, p2)} | ${spreadText(p.overshootGpuMinutes, n0)} |`,
    ),
    `| reactive reference at ours' attainment | ${spreadText(spread.reactiveAtOursVsOracle, x3)} | | |`,
    "",
  ].join("\n");
}
