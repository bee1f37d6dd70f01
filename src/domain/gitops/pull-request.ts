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

export function pullRequestTitle(d: DeploymentRef, p: Proposal): string {
  return `moe-operator: ${d.namespace}/${d.name}: ${p.changes.map((c) => `${c.field} ${fmt(c.from)} -> ${fmt(c.to)}`).join(", ")}`;
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

export function pullRequestBody(d: DeploymentRef, p: Proposal, manifestPath: string): string {
  const e = p.evidence;
  const rows = p.changes.map(
    (c) => `| \`${FIELD_PATH[c.field].join(".")}\` | ${fmt(c.from)} | ${fmt(c.to)} | ${cell(c.why)} |`,
  );
  return [
    `moe-operator proposes new bounds for MoEDeployment \`${d.namespace}/${d.name}\` in \`${cell(manifestPath)}\`.`,
    "Bounds and budget only: live replica counts stay in the cluster. The operator updates this pull request in place; merge it to apply.",
    "",
    "| Field | Now | Proposed | Why |",
    "|---|---|---|---|",
    ...rows,
    "",
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
