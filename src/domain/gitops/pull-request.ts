// The pull request's title (= the commit's first line), branch name and Markdown body.
import type { Proposal } from "./propose.ts";
import { FIELD_PATH } from "./propose.ts";

export interface DeploymentRef {
  readonly namespace: string;
  readonly name: string;
}

/** One long-lived branch per MoEDeployment. */
export const BRANCH_PREFIX = "moe-operator/";

export function branchName(d: DeploymentRef): string {
  return `${BRANCH_PREFIX}${d.namespace}-${d.name}`;
}

const fmt = (v: number) => (Number.isInteger(v) ? String(v) : v.toFixed(2));

const hhmmOf = (start: string) => {
  const m = /^(\d+) (\d+) /.exec(start);
  return m ? `${m[2]!.padStart(2, "0")}:${m[1]!.padStart(2, "0")}` : start;
};

export function pullRequestTitle(d: DeploymentRef, p: Proposal): string {
  const parts = [
    ...p.changes.map((c) => `${c.field} ${fmt(c.from)} -> ${fmt(c.to)}`),
    ...(p.schedules ?? []).map(
      (s) =>
        `prewarm ${s.entry.name} ${hhmmOf(s.entry.start)} UTC ${s.entry.durationMinutes} min ${s.entry.minShards} shards`,
    ),
    ...(p.placement ? [`expert placement ${p.placement.comparison.movedPercent.toFixed(0)}% of slots moved`] : []),
  ];
  return `moe-operator: ${d.namespace}/${d.name}: ${parts.join(", ")}`;
}

/** Markdown table cells: no pipes or line breaks. */
function cell(s: string): string {
  return s
    .replace(/\|/g, "\\|")
    .replace(/[\r\n]+/g, " ")
    .slice(0, 1000);
}

function duration(ms: number | undefined): string {
  if (ms === undefined) return "-";
  if (ms < 120_000) return `${Math.round(ms / 1000)} s`;
  const m = Math.round(ms / 60_000);
  return m >= 120 ? `${(m / 60).toFixed(1)} h` : `${m} min`;
}

function schedulesSection(p: Proposal): string[] {
  if (!p.schedules?.length) return [];
  return [
    "### Pre-warm schedules learned from recurring peaks (`spec.prewarm.schedules`)",
    "",
    "| Entry | Start (UTC, daily) | Duration | minShards | Days seen | Peak level | Lead | Why |",
    "|---|---|---|---|---|---|---|---|",
    ...p.schedules.map((s) => {
      const v = s.evidence;
      return `| \`${s.entry.name}\`${s.replaces ? " (changed)" : " (new)"} | ${hhmmOf(s.entry.start)} | ${s.entry.durationMinutes} min | ${s.entry.minShards} | ${v.daysSeen} | ${Math.round(v.peakTokensPerSecond)} tok/s (base ${Math.round(v.baseTokensPerSecond)}) | pods start ${v.leadSeconds} s before | ${cell(s.why)} |`;
    }),
    "",
  ];
}

function placementSection(p: Proposal): string[] {
  const f = p.placement;
  if (!f) return [];
  const c = f.comparison;
  const gpus = f.candidate.placement.gpus.length;
  return [
    `### Expert placement file \`${cell(f.path)}\` (\`--init-expert-location\`)`,
    "",
    "| GPUs | Balancedness in Git | Proposed | Slots moved |",
    "|---|---|---|---|",
    `| ${gpus} | ${c.referenceBalancedness === undefined ? "- (another shape, or no file)" : c.referenceBalancedness.toFixed(3)} | ${f.candidate.balancedness.toFixed(3)} | ${c.movedPercent.toFixed(1)}% |`,
    "",
    "Balancedness is the mean over the max GPU load under the heat observed now (1 is perfectly balanced). Engines read the file when they start.",
    "",
  ];
}

export function pullRequestBody(d: DeploymentRef, p: Proposal, manifestPath: string): string {
  const e = p.evidence;
  const rows = p.changes.map(
    (c) => `| \`${FIELD_PATH[c.field].join(".")}\` | ${fmt(c.from)} | ${fmt(c.to)} | ${cell(c.why)} |`,
  );
  const bounds = rows.length === 0 ? [] : ["| Field | Now | Proposed | Why |", "|---|---|---|---|", ...rows, ""];
  return [
    `moe-operator proposes changes for MoEDeployment \`${d.namespace}/${d.name}\` in \`${cell(manifestPath)}\`.`,
    "Bounds, budget, pre-warm schedules and the placement file only: live replica counts stay in the cluster. The operator updates this pull request in place; merge it to apply.",
    "",
    ...bounds,
    ...schedulesSection(p),
    ...placementSection(p),
    "### Evidence",
    "",
    "| Observed p99 | SLO target | GPUs | $/h | Time at bound |",
    "|---|---|---|---|---|",
    `| ${e.observedP99Ms === undefined ? "-" : `${e.observedP99Ms.toFixed(1)} ms`} | ${e.targetMs} ms | ${e.gpus} | ${e.usdPerHour.toFixed(2)} | ${duration(e.timeAtBoundMs)} |`,
    "",
    `Decision reasons: \`${cell(e.decisionReason)}\`: ${cell(e.decisionMessage)}`,
    "",
  ].join("\n");
}

/** A schedule entry as the cluster's spec holds it (spec.prewarm.schedules). */
export interface ScheduleInSpec {
  readonly name: string;
  readonly start: string;
  readonly durationMinutes: number;
  readonly minShards: number;
}

/**
 * Why each part of a proposal that is no longer made was withdrawn, in words, for the comment
 * that closes its pull request: the cluster's bound reached the proposed value (merged and
 * applied, or set by hand), a learned schedule entry is in the spec or no longer learned, the
 * placement file is no longer proposed.
 */
export function withdrawalReasons(
  previous: Proposal,
  bounds: { readonly minShards: number; readonly maxShards: number; readonly maxUsdPerHour?: number },
  schedulesInSpec: readonly ScheduleInSpec[],
): string[] {
  const out = previous.changes.map((c) => {
    const path = `\`${FIELD_PATH[c.field].join(".")}\``;
    const now = bounds[c.field];
    const proposed = `this pull request proposed ${fmt(c.from)} -> ${fmt(c.to)}`;
    return now === undefined
      ? `${path} is no longer set in the cluster (${proposed})`
      : `${path} is ${fmt(now)} in the cluster now (${proposed})`;
  });
  for (const s of previous.schedules ?? []) {
    const e = s.entry;
    const inSpec = schedulesInSpec.some(
      (x) =>
        x.name === e.name &&
        x.start === e.start &&
        x.durationMinutes === e.durationMinutes &&
        x.minShards === e.minShards,
    );
    out.push(
      inSpec
        ? `\`spec.prewarm.schedules\` holds \`${e.name}\` in the cluster now`
        : `\`${e.name}\` (${hhmmOf(e.start)} UTC) is no longer learned: its peak no longer recurs on each of the days seen, or a hand-written entry or minShards covers it`,
    );
  }
  if (previous.placement) out.push(`the placement file \`${cell(previous.placement.path)}\` is no longer proposed`);
  return out;
}

/** The comment that closes a pull request whose every proposal was withdrawn. */
export function withdrawalComment(d: DeploymentRef, reasons: readonly string[]): string {
  return [
    `moe-operator closes this pull request: nothing is left to propose for MoEDeployment \`${d.namespace}/${d.name}\`: every change it proposed was withdrawn.`,
    "",
    ...(reasons.length > 0 ? [...reasons.map((r) => `- ${r}`), ""] : []),
    `The branch \`${branchName(d)}\` is deleted. When a change is needed again, the operator opens a new pull request.`,
    "",
  ].join("\n");
}
