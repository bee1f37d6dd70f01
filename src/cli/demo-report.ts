// The demo's SVG timeline: the scenario's phases along the top, then offered load, shards
// (desired, serving, the maxShards bound), p99 latency against the SLO band, balancedness and
// $/h, on one time axis with the window opening and the heat shift marked. Plain SVG, no library.

export interface DemoSample {
  tS: number;
  tokensPerSecond: number;
  desiredShards: number;
  readyShards: number;
  p99Ms: number | undefined;
  /** When p99Ms was measured (status.latency.sampleTime), seconds since the scenario start. */
  p99AtS?: number;
  sloMs: number;
  usdPerHour: number;
  phase: string;
  /** The emulator's expert-load balancedness (mean / max GPU load), 0..1. */
  balancedness?: number;
}

/** A shard pod's cold start: pod creation to Ready, and the tier it reported loading from (moe.dev/load-tier). */
export interface DemoColdStart {
  pod: string;
  /** peer, node-disk or remote; "unknown" when the pod reported none. */
  tier: string;
  /** When the pod was created, seconds since the scenario start. */
  createdAtS: number;
  seconds: number;
}

/** When a node was first seen staged (status.staging.nodes, phase Staged), seconds since the scenario start. */
export interface DemoStaging {
  node: string;
  atS: number;
}

/** What a demo run writes to samples.json; `demo --render` re-renders the timeline from it. */
export interface DemoSamplesFile {
  title: string;
  /** When the scheduled pre-warm window opens, seconds since the scenario start. */
  windowAtS?: number;
  /** When the expert heat shifts, seconds since the scenario start. */
  heatShiftAtS?: number;
  /** spec.scaling.maxShards: the bound drawn on the shards panel. */
  maxShards?: number;
  samples: DemoSample[];
  coldStarts?: DemoColdStart[];
  stagings?: DemoStaging[];
}

const TIER_ORDER = ["peer", "node-disk", "remote", "unknown"];

/** Cold starts per tier: count, median, min and max seconds, tiers in the order peer, node-disk, remote, others. */
export function coldStartsByTier(
  starts: readonly DemoColdStart[],
): { tier: string; n: number; medianS: number; minS: number; maxS: number }[] {
  const tiers = [...new Set(starts.map((c) => c.tier))].sort(
    (a, b) => (TIER_ORDER.indexOf(a) + 1 || 99) - (TIER_ORDER.indexOf(b) + 1 || 99) || (a < b ? -1 : 1),
  );
  return tiers.map((tier) => {
    const xs = starts
      .filter((c) => c.tier === tier)
      .map((c) => c.seconds)
      .sort((a, b) => a - b);
    const mid = xs.length >> 1;
    const medianS = xs.length % 2 ? xs[mid]! : (xs[mid - 1]! + xs[mid]!) / 2;
    return { tier, n: xs.length, medianS, minS: xs[0]!, maxS: xs.at(-1)! };
  });
}

/** How the scored samples met the SLO: all of them, and apart from those where capacity sat at the bound. */
export interface DemoScore {
  scored: number;
  met: number;
  worstP99Ms: number | undefined;
  /** Scored samples where the desired shard count sat at maxShards (capacity could not grow). */
  atBound: number;
  metAtBound: number;
  /** The same figures for the samples that were not at the bound. */
  outsideBound: { scored: number; met: number; worstP99Ms: number | undefined };
}

/**
 * Score samples (already past bring-up) against their SLO. A sample is at the bound when the
 * operator wanted maxShards or more: a miss there is the bound's, not the policy's, so it is
 * counted apart (and still in the overall figure).
 */
export function scoreDemo(samples: readonly DemoSample[], maxShards: number | undefined): DemoScore {
  const withP99 = samples.filter((s): s is DemoSample & { p99Ms: number } => s.p99Ms !== undefined);
  const atBound = (s: DemoSample) => maxShards !== undefined && s.desiredShards >= maxShards;
  const worst = (xs: readonly { p99Ms: number }[]) => (xs.length ? Math.max(...xs.map((s) => s.p99Ms)) : undefined);
  const bound = withP99.filter(atBound);
  const outside = withP99.filter((s) => !atBound(s));
  const metOf = (xs: readonly (DemoSample & { p99Ms: number })[]) => xs.filter((s) => s.p99Ms <= s.sloMs).length;
  return {
    scored: withP99.length,
    met: metOf(withP99),
    worstP99Ms: worst(withP99),
    atBound: bound.length,
    metAtBound: metOf(bound),
    outsideBound: { scored: outside.length, met: metOf(outside), worstP99Ms: worst(outside) },
  };
}

type Parsed<T> = { ok: true; value: T } | { ok: false; error: string };

const optNum = (v: unknown) => v === undefined || v === null || (typeof v === "number" && Number.isFinite(v));

function sampleError(s: unknown, i: number): string | undefined {
  if (typeof s !== "object" || s === null) return `samples[${i}]: not an object`;
  const r = s as Record<string, unknown>;
  for (const k of ["tS", "tokensPerSecond", "desiredShards", "readyShards", "sloMs", "usdPerHour"]) {
    if (typeof r[k] !== "number" || !Number.isFinite(r[k]))
      return `samples[${i}].${k}: want a finite number, got ${JSON.stringify(r[k])}`;
  }
  for (const k of ["p99Ms", "p99AtS", "balancedness"])
    if (!optNum(r[k])) return `samples[${i}].${k}: want a finite number or nothing, got ${JSON.stringify(r[k])}`;
  if (typeof r.phase !== "string") return `samples[${i}].phase: want a string`;
  return undefined;
}

/** The optional coldStarts and stagings lists of a samples file; an error names the field. */
function eventsError(r: Record<string, unknown>): string | undefined {
  const lists: [string, Record<string, "string" | "number">][] = [
    ["coldStarts", { pod: "string", tier: "string", createdAtS: "number", seconds: "number" }],
    ["stagings", { node: "string", atS: "number" }],
  ];
  for (const [name, fields] of lists) {
    const v = r[name];
    if (v === undefined) continue;
    if (!Array.isArray(v) || v.length > 100_000) return `${name}: want an array of at most 100000 entries`;
    for (let i = 0; i < v.length; i++) {
      const e = v[i] as Record<string, unknown> | null;
      for (const [k, type] of Object.entries(fields)) {
        const x = e?.[k];
        if (typeof x !== type || (type === "number" && !Number.isFinite(x)))
          return `${name}[${i}].${k}: want a ${type === "number" ? "finite number" : "string"}, got ${JSON.stringify(x)}`;
      }
    }
  }
  return undefined;
}

/** Parses and checks a samples.json text; errors name the field. */
export function parseDemoSamplesFile(text: string): Parsed<DemoSamplesFile> {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    return { ok: false, error: `not JSON: ${(err as Error).message}` };
  }
  if (typeof raw !== "object" || raw === null) return { ok: false, error: "want an object with title and samples" };
  const r = raw as Record<string, unknown>;
  if (typeof r.title !== "string") return { ok: false, error: "title: want a string" };
  for (const k of ["windowAtS", "heatShiftAtS", "maxShards"])
    if (!optNum(r[k])) return { ok: false, error: `${k}: want a finite number or nothing` };
  if (!Array.isArray(r.samples) || r.samples.length === 0)
    return { ok: false, error: "samples: want a non-empty array" };
  if (r.samples.length > 100_000) return { ok: false, error: `samples: ${r.samples.length} entries, at most 100000` };
  for (let i = 0; i < r.samples.length; i++) {
    const e = sampleError(r.samples[i], i);
    if (e) return { ok: false, error: e };
  }
  const ev = eventsError(r);
  if (ev) return { ok: false, error: ev };
  const nul = (v: unknown) => (v === null ? undefined : (v as number | undefined));
  const samples = (r.samples as Record<string, unknown>[]).map(
    (s) => ({ ...s, p99Ms: nul(s.p99Ms), p99AtS: nul(s.p99AtS), balancedness: nul(s.balancedness) }) as DemoSample,
  );
  return {
    ok: true,
    value: {
      title: r.title,
      windowAtS: nul(r.windowAtS),
      heatShiftAtS: nul(r.heatShiftAtS),
      maxShards: nul(r.maxShards),
      samples,
      ...(r.coldStarts ? { coldStarts: r.coldStarts as DemoColdStart[] } : {}),
      ...(r.stagings ? { stagings: r.stagings as DemoStaging[] } : {}),
    },
  };
}

const esc = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
const f1 = (v: number) => v.toFixed(1);

const W = 1000;
const LEFT = 70;
const RIGHT = 20;
const PLOT_W = W - LEFT - RIGHT;
const PANEL_H = 110;
const PANEL_GAP = 34;
const PHASE_TOP = 56;
const PHASE_ROW_H = 14;
const PANELS_TOP = PHASE_TOP + 2 * PHASE_ROW_H + 26;
/** p99 values above this multiple of the SLO (bring-up) are clipped; the axis ends at most one tick above. */
export const P99_AXIS_MAX_SLO_MULTIPLE = 4;
const CHAR_W_PX = 6.2;

interface Series {
  name: string;
  color: string;
  values: readonly (number | undefined)[];
  dash?: string;
}

interface Frame {
  samples: readonly DemoSample[];
  x: (tS: number) => number;
  markers: { tS: number; label: string; color: string }[];
  parts: string[];
}

interface Axis {
  max: number;
  ticks: number[];
  format: (v: number) => string;
}

/** A step of 1, 2 or 5 times a power of ten giving about `count` intervals up to max. */
function niceStep(max: number, count: number): number {
  const raw = max / count;
  const pow = 10 ** Math.floor(Math.log10(raw));
  return [1, 2, 5, 10].map((m) => m * pow).find((st) => st >= raw) ?? 10 * pow;
}

/** An axis from 0 to a round value at or above max. */
export function niceAxis(max: number, format: (v: number) => string = formatNumber): Axis {
  const m = Number.isFinite(max) && max > 0 ? max : 1;
  const step = niceStep(m, 5);
  const top = Math.ceil(m / step - 1e-9) * step;
  const ticks: number[] = [];
  for (let k = 0; k * step <= top + step / 1e6; k++) ticks.push(k * step);
  return { max: top, ticks, format };
}

function formatNumber(v: number): string {
  if (Math.abs(v) >= 1000) return `${+(v / 1000).toFixed(1)}k`;
  return Math.abs(v) >= 10 || v === 0 ? String(+v.toFixed(0)) : String(+v.toFixed(2));
}

const finite = (vs: readonly (number | undefined)[]) =>
  vs.filter((v): v is number => v !== undefined && Number.isFinite(v));

/** Polylines through the defined values; a missing value breaks the line. */
function drawSeries(f: Frame, s: Series, y: (v: number) => number): void {
  const runs: string[][] = [[]];
  f.samples.forEach((sm, j) => {
    const v = s.values[j];
    if (v === undefined || !Number.isFinite(v)) {
      if (runs.at(-1)!.length > 0) runs.push([]);
    } else runs.at(-1)!.push(`${f1(f.x(sm.tS))},${f1(y(v))}`);
  });
  for (const pts of runs.filter((r) => r.length > 0)) {
    f.parts.push(
      `<polyline fill="none" stroke="${s.color}" stroke-width="2"${s.dash ? ` stroke-dasharray="${s.dash}"` : ""} points="${pts.join(" ")}"/>`,
    );
  }
}

function drawLegend(f: Frame, y0: number, series: readonly Series[]): void {
  let lx = LEFT + PLOT_W;
  for (const s of [...series].reverse()) {
    lx -= s.name.length * CHAR_W_PX + 28;
    f.parts.push(
      `<line x1="${f1(lx)}" x2="${f1(lx + 14)}" y1="${y0 - 12}" y2="${y0 - 12}" stroke="${s.color}" stroke-width="2"${s.dash ? ` stroke-dasharray="${s.dash}"` : ""}/>`,
    );
    f.parts.push(`<text x="${f1(lx + 18)}" y="${y0 - 8}" font-size="11">${esc(s.name)}</text>`);
  }
}

/** A panel's frame, grid, y axis, markers and legend; returns the value-to-y mapping (values clamped). */
function drawPanel(f: Frame, i: number, label: string, axis: Axis, legend: readonly Series[]): (v: number) => number {
  const y0 = PANELS_TOP + i * (PANEL_H + PANEL_GAP);
  const y = (v: number) => y0 + PANEL_H - (Math.max(0, Math.min(v, axis.max)) / axis.max) * PANEL_H;
  f.parts.push(`<rect x="${LEFT}" y="${y0}" width="${PLOT_W}" height="${PANEL_H}" fill="#fafafa" stroke="#ccc"/>`);
  f.parts.push(`<text x="${LEFT}" y="${y0 - 8}" font-size="13" font-weight="bold">${esc(label)}</text>`);
  for (const v of axis.ticks) {
    f.parts.push(`<line x1="${LEFT}" x2="${LEFT + PLOT_W}" y1="${f1(y(v))}" y2="${f1(y(v))}" stroke="#e6e6e6"/>`);
    f.parts.push(
      `<text x="${LEFT - 6}" y="${f1(y(v) + 4)}" font-size="10" text-anchor="end">${esc(axis.format(v))}</text>`,
    );
  }
  for (const m of f.markers) {
    f.parts.push(
      `<line x1="${f1(f.x(m.tS))}" x2="${f1(f.x(m.tS))}" y1="${y0}" y2="${y0 + PANEL_H}" stroke="${m.color}" stroke-dasharray="4 3"/>`,
    );
  }
  drawLegend(f, y0, legend);
  return y;
}

function drawLoad(f: Frame, i: number): void {
  const s: Series = { name: "offered load", color: "#1f77b4", values: f.samples.map((sm) => sm.tokensPerSecond) };
  const y = drawPanel(f, i, "Offered load (tokens/s)", niceAxis(Math.max(...finite(s.values)) * 1.05), [s]);
  drawSeries(f, s, y);
}

function drawShards(f: Frame, i: number, maxShards: number | undefined): void {
  const desired: Series = {
    name: "desired",
    color: "#ff7f0e",
    values: f.samples.map((sm) => sm.desiredShards),
    dash: "6 3",
  };
  const ready: Series = { name: "serving (Ready)", color: "#2ca02c", values: f.samples.map((sm) => sm.readyShards) };
  const bound: Series = { name: `maxShards ${maxShards ?? ""}`, color: "#d62728", values: [], dash: "2 3" };
  const top = Math.max(...finite([...desired.values, ...ready.values]), maxShards ?? 0) * 1.1;
  const legend = maxShards === undefined ? [desired, ready] : [desired, ready, bound];
  const y = drawPanel(f, i, "Expert shards (1 GPU each)", niceAxis(top), legend);
  if (maxShards !== undefined) {
    f.parts.push(
      `<line class="bound" x1="${LEFT}" x2="${LEFT + PLOT_W}" y1="${f1(y(maxShards))}" y2="${f1(y(maxShards))}" stroke="${bound.color}" stroke-width="1.5" stroke-dasharray="2 3"/>`,
    );
  }
  drawSeries(f, desired, y);
  drawSeries(f, ready, y);
}

/** The p99 axis: up to a few SLOs, so the SLO band is visible even when bring-up values are seconds. */
export function p99Axis(samples: readonly DemoSample[]): Axis {
  const slo = Math.max(1, ...finite(samples.map((s) => s.sloMs)));
  const cap = slo * P99_AXIS_MAX_SLO_MULTIPLE;
  const shown = finite(samples.map((s) => s.p99Ms)).filter((v) => v <= cap);
  // Headroom above the highest value shown, so values just under the cap do not sit on the edge.
  return niceAxis(Math.max(slo * 1.5, ...shown) * 1.1);
}

function drawP99(f: Frame, i: number): void {
  const axis = p99Axis(f.samples);
  const p99: Series = { name: "observed p99", color: "#d62728", values: f.samples.map((s) => s.p99Ms) };
  const band: Series = { name: "SLO target (met below)", color: "#2ca02c", values: [], dash: "5 3" };
  const y = drawPanel(f, i, "p99 inter-token latency (ms) vs SLO", axis, [p99, band]);
  const sloPts = f.samples.map((s) => `${f1(f.x(s.tS))},${f1(y(s.sloMs))}`);
  const base = `${f1(f.x(f.samples.at(-1)!.tS))},${f1(y(0))} ${f1(f.x(f.samples[0]!.tS))},${f1(y(0))}`;
  f.parts.push(`<polygon class="slo-band" fill="#2ca02c" fill-opacity="0.12" points="${sloPts.join(" ")} ${base}"/>`);
  f.parts.push(
    `<polyline fill="none" stroke="${band.color}" stroke-width="1.5" stroke-dasharray="5 3" points="${sloPts.join(" ")}"/>`,
  );
  drawSeries(f, p99, y);
  drawClipped(f, axis, y);
}

/** Marks the p99 values above the axis with a triangle on the top edge and says how high they went. */
function drawClipped(f: Frame, axis: Axis, y: (v: number) => number): void {
  const over = f.samples.filter((s) => s.p99Ms !== undefined && Number.isFinite(s.p99Ms) && s.p99Ms > axis.max);
  if (over.length === 0) return;
  const yTop = y(axis.max);
  for (const s of over) {
    const cx = f.x(s.tS);
    f.parts.push(
      `<path class="clipped" d="M${f1(cx - 4)},${f1(yTop + 7)} L${f1(cx)},${f1(yTop + 1)} L${f1(cx + 4)},${f1(yTop + 7)} Z" fill="#d62728"/>`,
    );
  }
  const worst = Math.max(...over.map((s) => s.p99Ms!));
  const label = `off scale: ${over.length} sample${over.length > 1 ? "s" : ""} up to ${worst >= 1000 ? `${(worst / 1000).toFixed(1)} s` : `${worst.toFixed(0)} ms`}`;
  // After the first run of clipped samples (the bring-up), where the curve is off the top: a label
  // after the last clipped sample would sit on the curve of a later spike.
  const firstRunEnd = f.samples.findIndex(
    (s, k) => k > f.samples.indexOf(over[0]!) && !(s.p99Ms !== undefined && s.p99Ms > axis.max),
  );
  const anchor = firstRunEnd > 0 ? f.samples[firstRunEnd - 1]! : over.at(-1)!;
  f.parts.push(
    `<text class="clipped-note" x="${f1(f.x(anchor.tS) + 10)}" y="${f1(yTop + 12)}" font-size="11" fill="#d62728">${esc(label)}</text>`,
  );
}

function drawBalance(f: Frame, i: number): void {
  const s: Series = {
    name: "balancedness (mean/max GPU load)",
    color: "#9467bd",
    values: f.samples.map((sm) => sm.balancedness),
  };
  const y = drawPanel(
    f,
    i,
    "Expert-load balancedness",
    { max: 1, ticks: [0, 0.25, 0.5, 0.75, 1], format: formatNumber },
    [s],
  );
  drawSeries(f, s, y);
}

function drawCost(f: Frame, i: number): void {
  const s: Series = { name: "cost", color: "#8c564b", values: f.samples.map((sm) => sm.usdPerHour) };
  const y = drawPanel(
    f,
    i,
    "Cost ($/h)",
    niceAxis(Math.max(...finite(s.values)) * 1.1, (v) => `$${formatNumber(v)}`),
    [s],
  );
  drawSeries(f, s, y);
}

const TIER_COLORS: Record<string, string> = {
  peer: "#17becf",
  "node-disk": "#2ca02c",
  remote: "#d62728",
};

/** Node stagings close in time (within `gapS`) as one mark: its time is the first one's. */
export function stagingMarks(stagings: readonly DemoStaging[], gapS: number): { atS: number; nodes: string[] }[] {
  const marks: { atS: number; nodes: string[]; lastS: number }[] = [];
  for (const st of [...stagings].sort((a, b) => a.atS - b.atS || (a.node < b.node ? -1 : 1))) {
    const last = marks.at(-1);
    if (last && st.atS - last.lastS <= gapS) {
      last.nodes.push(st.node);
      last.lastS = st.atS;
    } else marks.push({ atS: st.atS, nodes: [st.node], lastS: st.atS });
  }
  return marks.map(({ atS, nodes }) => ({ atS, nodes }));
}

/**
 * Each shard pod's cold start (creation -> Ready) as a dot at its creation time, coloured by the tier
 * it loaded from, with each tier's median and count in the legend; the nodes' staging times as
 * marks labelled with the nodes, each label on the first row where it does not overlap.
 */
function drawColdStarts(f: Frame, i: number, starts: readonly DemoColdStart[], stagings: readonly DemoStaging[]): void {
  const legend: Series[] = coldStartsByTier(starts).map((t) => ({
    name: `${t.tier} p50 ${t.medianS.toFixed(1)} s (${t.n})`,
    color: TIER_COLORS[t.tier] ?? "#7f7f7f",
    values: [],
  }));
  const axis = niceAxis(Math.max(5, ...starts.map((c) => c.seconds)) * 1.15, (v) => `${formatNumber(v)} s`);
  const y = drawPanel(f, i, "Shard cold starts by tier", axis, legend);
  // What a dot is, inside the panel (in the title it would run into the legend).
  f.parts.push(
    `<text class="cold-start-note" x="${LEFT + PLOT_W - 6}" y="${f1(y(0) - 6)}" font-size="10" fill="#666" text-anchor="end">at pod creation: seconds to Ready and placement acknowledged</text>`,
  );
  const y0 = y(axis.max);
  const rowEnd: number[] = [];
  for (const m of stagingMarks(stagings, 10)) {
    const x = f.x(m.atS);
    f.parts.push(
      `<line class="staged-mark" x1="${f1(x)}" x2="${f1(x)}" y1="${f1(y0)}" y2="${f1(y(0))}" stroke="#2ca02c" stroke-width="1.5"/>`,
    );
    const label = `${m.nodes.join(", ")} staged`;
    const w = label.length * CHAR_W_PX;
    const lx = Math.min(x + 4, LEFT + PLOT_W - w - 2);
    let row = rowEnd.findIndex((end) => lx > end + 6);
    if (row < 0) row = rowEnd.length;
    rowEnd[row] = lx + w;
    f.parts.push(
      `<text class="staged-label" x="${f1(lx)}" y="${f1(y0 + 12 + row * 12)}" font-size="10" fill="#1a7a1a">${esc(label)}</text>`,
    );
  }
  for (const c of starts) {
    f.parts.push(
      `<circle class="cold-start" cx="${f1(Math.min(Math.max(f.x(c.createdAtS), LEFT), LEFT + PLOT_W))}" cy="${f1(y(c.seconds))}" r="3" fill="${TIER_COLORS[c.tier] ?? "#7f7f7f"}" fill-opacity="0.75"/>`,
    );
  }
}

/** Contiguous runs of one phase name. */
export function phaseSpans(samples: readonly DemoSample[]): { phase: string; fromS: number; toS: number }[] {
  const spans: { phase: string; fromS: number; toS: number }[] = [];
  for (const s of samples) {
    const last = spans.at(-1);
    if (last && last.phase === s.phase) last.toS = s.tS;
    else {
      if (last) last.toS = s.tS;
      spans.push({ phase: s.phase, fromS: s.tS, toS: s.tS });
    }
  }
  return spans.filter((sp) => sp.phase !== "");
}

/** Phase names in two rows above the panels, each label on the first row where it does not overlap. */
function drawPhases(f: Frame): void {
  const rowEnd = [-Infinity, -Infinity];
  phaseSpans(f.samples).forEach((sp, k) => {
    const x0 = f.x(sp.fromS);
    const x1 = f.x(sp.toS);
    f.parts.push(
      `<rect x="${f1(x0)}" y="${PHASE_TOP + 2 * PHASE_ROW_H + 4}" width="${f1(Math.max(0, x1 - x0))}" height="6" fill="${k % 2 ? "#bbb" : "#777"}"/>`,
    );
    const half = (sp.phase.length * CHAR_W_PX) / 2;
    const cx = Math.min(Math.max((x0 + x1) / 2, LEFT + half), LEFT + PLOT_W - half);
    const row = rowEnd.findIndex((end) => cx - half > end + 6);
    const r = row < 0 ? rowEnd.indexOf(Math.min(...rowEnd)) : row;
    rowEnd[r] = cx + half;
    f.parts.push(
      `<text class="phase" x="${f1(cx)}" y="${PHASE_TOP + (r + 1) * PHASE_ROW_H}" font-size="11" text-anchor="middle">${esc(sp.phase)}</text>`,
    );
  });
}

/** Title on the first line; the marker key on the second, so they cannot overlap. */
function drawHeader(f: Frame, title: string): void {
  f.parts.push(`<text x="${LEFT}" y="24" font-size="16" font-weight="bold">${esc(title)}</text>`);
  let kx = LEFT;
  for (const m of f.markers) {
    f.parts.push(`<line x1="${kx}" x2="${kx}" y1="33" y2="45" stroke="${m.color}" stroke-dasharray="3 2"/>`);
    f.parts.push(`<text x="${kx + 6}" y="43" font-size="11" fill="#444">${esc(m.label)}</text>`);
    kx += m.label.length * CHAR_W_PX + 30;
  }
  f.parts.push(
    `<text x="${LEFT - 6}" y="${PHASE_TOP + PHASE_ROW_H}" font-size="10" fill="#666" text-anchor="end">phase</text>`,
  );
}

function drawTimeAxis(f: Frame, t0: number, t1: number, yAxis: number): void {
  // Labels are scenario seconds (the samples' tS), the clock the markers use too.
  const step = niceStep(t1 - t0, 8);
  for (let t = Math.ceil(t0 / step) * step; t <= t1 + 1e-9; t += step) {
    f.parts.push(
      `<text class="time-tick" x="${f1(f.x(t))}" y="${yAxis}" font-size="10" text-anchor="middle">${formatNumber(t)} s</text>`,
    );
  }
}

export function renderDemoTimeline(
  samples: readonly DemoSample[],
  o: {
    title: string;
    windowAtS?: number;
    heatShiftAtS?: number;
    maxShards?: number;
    coldStarts?: readonly DemoColdStart[];
    stagings?: readonly DemoStaging[];
  },
): string {
  const data =
    samples.length > 0
      ? samples
      : [
          {
            tS: 0,
            tokensPerSecond: 0,
            desiredShards: 0,
            readyShards: 0,
            p99Ms: undefined,
            sloMs: 1,
            usdPerHour: 0,
            phase: "",
          },
        ];
  const t0 = data[0]!.tS;
  const t1 = Math.max(t0 + 1, data.at(-1)!.tS);
  const markers = [
    ...(o.windowAtS === undefined ? [] : [{ tS: o.windowAtS, label: "scheduled window opens", color: "#555" }]),
    ...(o.heatShiftAtS === undefined ? [] : [{ tS: o.heatShiftAtS, label: "expert heat shift", color: "#9467bd" }]),
  ];
  const f: Frame = { samples: data, x: (t) => LEFT + ((t - t0) / (t1 - t0)) * PLOT_W, markers, parts: [] };
  drawHeader(f, o.title);
  drawPhases(f);
  const panels = [drawLoad, (fr: Frame, i: number) => drawShards(fr, i, o.maxShards), drawP99, drawBalance, drawCost];
  if ((o.coldStarts?.length ?? 0) > 0 || (o.stagings?.length ?? 0) > 0)
    panels.push((fr: Frame, i: number) => drawColdStarts(fr, i, o.coldStarts ?? [], o.stagings ?? []));
  panels.forEach((draw, i) => draw(f, i));
  const yAxis = PANELS_TOP + panels.length * (PANEL_H + PANEL_GAP) - PANEL_GAP + 16;
  drawTimeAxis(f, t0, t1, yAxis);
  const h = yAxis + 14;
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${h}" viewBox="0 0 ${W} ${h}" font-family="sans-serif">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    ...f.parts,
    `</svg>`,
  ].join("\n");
}
