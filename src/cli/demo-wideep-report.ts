// The wide-EP demo's timeline (out/demo-wideep/timeline.svg) and its summary figures: phases along
// the top; offered load; EP groups serving, desired (the LeaderWorkerSet's replicas) and decided,
// with the spans where CapacityPending was True and where groups drained; p99 inter-token latency
// against the SLO. Plain SVG, pure functions.

export interface WideEPSample {
  tS: number;
  phase: string;
  tokensPerSecond: number;
  /** Groups with every pod Ready that the front sends to (the emulator's view). */
  servingGroups: number;
  /** status.groups.ready: groups the operator counts. */
  readyGroups: number;
  /** status.groups.desired: the LeaderWorkerSet's replicas. */
  desiredGroups: number;
  /** status.desiredShards / GPUs per group: the decision. */
  decidedGroups: number;
  pendingGroups: number[];
  drainingGroups: number[];
  capacityPending: boolean;
  p99Ms: number | undefined;
  sloMs: number;
  /** status.placement.version: the published placement (groups take a new one in place). */
  placementVersion?: number;
  /** status.groups.placementApplied: serving groups that acknowledged the published version. */
  placementApplied?: number;
}

export interface WideEPSamplesFile {
  title: string;
  gpusPerGroup: number;
  maxGroups: number;
  samples: WideEPSample[];
  /** The spec.prewarm.schedules window (s since the scenario started) and the groups it holds. */
  window?: { fromS: number; toS: number; minGroups: number };
}

export interface Span {
  fromS: number;
  toS: number;
}

/** Maximal runs of consecutive samples where pred holds (a run ends at the next sample's time). */
export function spansWhere(samples: readonly WideEPSample[], pred: (s: WideEPSample) => boolean): Span[] {
  const out: Span[] = [];
  let open: number | undefined;
  samples.forEach((s, i) => {
    if (pred(s) && open === undefined) open = s.tS;
    if (!pred(s) && open !== undefined) {
      out.push({ fromS: open, toS: s.tS });
      open = undefined;
    }
    if (i === samples.length - 1 && open !== undefined) out.push({ fromS: open, toS: s.tS });
  });
  return out;
}

/** Phase runs in sample order: [name, fromS, toS]. */
export function phaseRuns(samples: readonly WideEPSample[]): { name: string; fromS: number; toS: number }[] {
  const out: { name: string; fromS: number; toS: number }[] = [];
  for (const s of samples) {
    const cur = out.at(-1);
    if (cur && cur.name === s.phase) cur.toS = s.tS;
    else {
      if (cur) cur.toS = s.tS;
      out.push({ name: s.phase, fromS: s.tS, toS: s.tS });
    }
  }
  return out;
}

export interface WideEPScore {
  /** Samples with a p99 after the first group was serving for one SLO window. */
  scored: number;
  met: number;
  worstP99Ms: number | undefined;
  /** Scored samples where the operator decided more groups than served (capacity missing or starting). */
  shortOfGroups: number;
  metWhenAllServing: number;
  scoredWhenAllServing: number;
}

/** SLO attainment after bring-up, apart for the samples where every decided group served. */
export function scoreWideEP(samples: readonly WideEPSample[], sloWindowS: number): WideEPScore {
  const firstServing = samples.find((s) => s.servingGroups > 0)?.tS;
  const scored = samples.filter(
    (s): s is WideEPSample & { p99Ms: number } =>
      firstServing !== undefined && s.tS >= firstServing + sloWindowS && s.p99Ms !== undefined,
  );
  const allServing = scored.filter((s) => s.servingGroups >= s.decidedGroups);
  const met = (xs: readonly (WideEPSample & { p99Ms: number })[]) => xs.filter((s) => s.p99Ms <= s.sloMs).length;
  return {
    scored: scored.length,
    met: met(scored),
    worstP99Ms: scored.length ? Math.max(...scored.map((s) => s.p99Ms)) : undefined,
    shortOfGroups: scored.length - allServing.length,
    metWhenAllServing: met(allServing),
    scoredWhenAllServing: allServing.length,
  };
}

const esc = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");

interface Frame {
  x: (tS: number) => number;
  left: number;
  right: number;
}

function polyline(pts: [number, number][], color: string, width = 2, dash = ""): string {
  if (pts.length === 0) return "";
  const d = pts.map(([x, y]) => `${x.toFixed(1)},${y.toFixed(1)}`).join(" ");
  return `<polyline fill="none" stroke="${color}" stroke-width="${width}"${dash ? ` stroke-dasharray="${dash}"` : ""} points="${d}"/>`;
}

/** Step line (holds each value until the next sample). */
function steps(samples: readonly WideEPSample[], f: Frame, y: (s: WideEPSample) => number): [number, number][] {
  const pts: [number, number][] = [];
  samples.forEach((s, i) => {
    if (i > 0) pts.push([f.x(s.tS), y(samples[i - 1]!)]);
    pts.push([f.x(s.tS), y(s)]);
  });
  return pts;
}

function panel(top: number, height: number, f: Frame, title: string): string {
  return (
    `<rect x="${f.left}" y="${top}" width="${f.right - f.left}" height="${height}" fill="#fafafa" stroke="#ccc"/>` +
    `<text x="${f.left}" y="${top - 7}" font-size="13" font-weight="bold" fill="#333">${esc(title)}</text>`
  );
}

function yTicks(top: number, height: number, f: Frame, max: number, values: number[], fmt: (v: number) => string) {
  return values
    .map((v) => {
      const y = top + height - (v / max) * height;
      return `<line x1="${f.left}" x2="${f.right}" y1="${y}" y2="${y}" stroke="#e4e4e4"/><text x="${f.left - 6}" y="${y + 4}" font-size="11" text-anchor="end" fill="#555">${fmt(v)}</text>`;
    })
    .join("");
}

function spanRects(spans: Span[], f: Frame, top: number, height: number, color: string): string {
  return spans
    .map(
      (s) =>
        `<rect x="${f.x(s.fromS)}" y="${top}" width="${Math.max(2, f.x(s.toS) - f.x(s.fromS))}" height="${height}" fill="${color}"/>`,
    )
    .join("");
}

function legend(x: number, y: number, items: [string, string, string?][]): string {
  let cx = x;
  return items
    .map(([label, color, dash]) => {
      const out =
        `<line x1="${cx}" x2="${cx + 22}" y1="${y}" y2="${y}" stroke="${color}" stroke-width="${dash === "fill" ? 9 : 2.5}"${dash && dash !== "fill" ? ` stroke-dasharray="${dash}"` : ""}/>` +
        `<text x="${cx + 27}" y="${y + 4}" font-size="11" fill="#333">${esc(label)}</text>`;
      cx += 34 + label.length * 6.2;
      return out;
    })
    .join("");
}

function loadPanel(samples: readonly WideEPSample[], f: Frame, top: number, h: number): string {
  const maxLoad = Math.max(10_000, ...samples.map((s) => s.tokensPerSecond)) * 1.1;
  const step = maxLoad > 60_000 ? 20_000 : 10_000;
  const ticks = Array.from({ length: Math.floor(maxLoad / step) + 1 }, (_, i) => i * step);
  const pts = samples.map((s): [number, number] => [f.x(s.tS), top + h - (s.tokensPerSecond / maxLoad) * h]);
  return (
    panel(top, h, f, "offered load (tokens/s)") +
    yTicks(top, h, f, maxLoad, ticks, (v) => `${v / 1000}k`) +
    polyline(pts, "#1f77b4", 2.5)
  );
}

function groupsPanel(file: WideEPSamplesFile, f: Frame, top: number, h: number): string {
  const s = file.samples;
  const max = file.maxGroups + 0.6;
  const y = (v: number) => top + h - (v / max) * h;
  const ticks = Array.from({ length: file.maxGroups + 1 }, (_, i) => i);
  return (
    panel(top, h, f, `EP groups (${file.gpusPerGroup} GPUs each)`) +
    spanRects(
      spansWhere(s, (x) => x.capacityPending),
      f,
      top,
      h,
      "rgba(214,39,40,0.15)",
    ) +
    spanRects(
      spansWhere(s, (x) => x.drainingGroups.length > 0),
      f,
      top,
      h,
      "rgba(255,127,14,0.2)",
    ) +
    windowBand(file, f, top, h, y) +
    yTicks(top, h, f, max, ticks, String) +
    versionMarks(s, f, top, h) +
    polyline(
      steps(s, f, (x) => y(x.desiredGroups)),
      "#7f7f7f",
      2,
      "6 4",
    ) +
    polyline(
      steps(s, f, (x) => y(x.decidedGroups) - 2),
      "#9467bd",
      2,
    ) +
    polyline(
      steps(s, f, (x) => y(x.servingGroups) + 2),
      "#2ca02c",
      3,
    ) +
    legend(f.left + 260, top - 11, [
      ["serving (all pods Ready)", "#2ca02c"],
      ["decided", "#9467bd"],
      ["LWS replicas", "#7f7f7f", "6 4"],
      ["CapacityPending", "rgba(214,39,40,0.35)", "fill"],
      ["draining", "rgba(255,127,14,0.5)", "fill"],
      ["placement version published", "#17becf"],
    ])
  );
}

/** The scheduled window: a band with its floor as a dotted line and a label at the top right of the band. */
function windowBand(file: WideEPSamplesFile, f: Frame, top: number, h: number, y: (v: number) => number): string {
  const w = file.window;
  if (w === undefined) return "";
  const x0 = f.x(Math.max(0, w.fromS));
  const x1 = Math.min(f.right, f.x(w.toS));
  if (!(x1 > x0)) return "";
  return (
    `<rect x="${x0}" y="${top}" width="${x1 - x0}" height="${h}" fill="rgba(31,119,180,0.08)"/>` +
    `<line x1="${x0}" x2="${x1}" y1="${y(w.minGroups)}" y2="${y(w.minGroups)}" stroke="#1f77b4" stroke-width="1.5" stroke-dasharray="1 3"/>` +
    `<text x="${x1 - 4}" y="${top + h - 6}" font-size="11" text-anchor="end" fill="#1f5f8f">schedule window (>= ${w.minGroups} groups)</text>`
  );
}

/** A tick and "vN" where the published placement version changes (the first one included). */
function versionMarks(s: readonly WideEPSample[], f: Frame, top: number, h: number): string {
  let last: number | undefined;
  let lastX = -Infinity;
  const out: string[] = [];
  for (const x of s) {
    const v = x.placementVersion;
    if (v === undefined || v === last) continue;
    last = v;
    const px = f.x(x.tS);
    out.push(
      `<line x1="${px}" x2="${px}" y1="${top}" y2="${top + h}" stroke="#17becf" stroke-width="1.5" stroke-dasharray="3 3"/>`,
    );
    // Labels closer than 24 px would overlap: the tick stays, the label goes.
    if (px - lastX >= 24) {
      out.push(`<text x="${px + 3}" y="${top + 13}" font-size="11" fill="#0e8a96">v${v}</text>`);
      lastX = px;
    }
  }
  return out.join("");
}

function latencyPanel(s: readonly WideEPSample[], f: Frame, top: number, h: number): string {
  const slo = s[0]?.sloMs ?? 50;
  const cap = slo * 3;
  const y = (v: number) => top + h - (Math.min(v, cap) / cap) * h;
  const ticks = [0, slo / 2, slo, slo * 2, slo * 3];
  const pts = s.filter((x) => x.p99Ms !== undefined).map((x): [number, number] => [f.x(x.tS), y(x.p99Ms!)]);
  return (
    panel(top, h, f, `p99 inter-token latency (ms; clipped at ${cap})`) +
    yTicks(top, h, f, cap, ticks, (v) => v.toFixed(0)) +
    `<line x1="${f.left}" x2="${f.right}" y1="${y(slo)}" y2="${y(slo)}" stroke="#d62728" stroke-width="1.5" stroke-dasharray="5 4"/>` +
    `<text x="${f.right - 6}" y="${y(slo) - 5}" font-size="11" text-anchor="end" fill="#d62728">SLO ${slo} ms</text>` +
    polyline(pts, "#ff7f0e", 2.5)
  );
}

function phaseBar(s: readonly WideEPSample[], f: Frame, top: number, bottom: number): string {
  return phaseRuns(s)
    .map((p, i) => {
      const x0 = f.x(p.fromS);
      const x1 = f.x(p.toS);
      const line =
        i === 0 ? "" : `<line x1="${x0}" x2="${x0}" y1="${top}" y2="${bottom}" stroke="#bbb" stroke-dasharray="2 3"/>`;
      const label =
        x1 - x0 > 34
          ? `<text x="${(x0 + x1) / 2}" y="${top + 14}" font-size="12" text-anchor="middle" fill="#444">${esc(p.name)}</text>`
          : "";
      return line + label;
    })
    .join("");
}

export function renderWideEPTimeline(file: WideEPSamplesFile): string {
  const s = file.samples;
  const W = 1200;
  const endS = Math.max(1, s.at(-1)?.tS ?? 1);
  const f: Frame = { left: 70, right: W - 30, x: (t) => 70 + (t / endS) * (W - 100) };
  const top = 84;
  const [h1, h2, h3, gap] = [130, 170, 150, 30];
  const y2 = top + h1 + gap;
  const y3 = y2 + h2 + gap;
  const bottom = y3 + h3;
  const xTicks = Array.from({ length: Math.floor(endS / 30) + 1 }, (_, i) => i * 30)
    .map((t) => `<text x="${f.x(t)}" y="${bottom + 16}" font-size="11" text-anchor="middle" fill="#555">${t}</text>`)
    .join("");
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${bottom + 44}" font-family="sans-serif">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="${f.left}" y="22" font-size="16" font-weight="bold" fill="#222">${esc(file.title)}</text>`,
    loadPanel(s, f, top, h1),
    groupsPanel(file, f, y2, h2),
    latencyPanel(s, f, y3, h3),
    phaseBar(s, f, top - 50, bottom),
    xTicks,
    `<text x="${(f.left + f.right) / 2}" y="${bottom + 34}" font-size="12" text-anchor="middle" fill="#333">seconds since the scenario started</text>`,
    `</svg>`,
  ].join("\n");
}

/** Parse a samples.json a demo run wrote; an error names what is wrong. */
export function parseWideEPSamplesFile(
  text: string,
): { ok: true; value: WideEPSamplesFile } | { ok: false; error: string } {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (err) {
    return { ok: false, error: `not JSON: ${(err as Error).message}` };
  }
  const o = v as Partial<WideEPSamplesFile>;
  if (typeof o !== "object" || o === null || !Array.isArray(o.samples))
    return { ok: false, error: "samples: expected an array" };
  if (typeof o.gpusPerGroup !== "number" || typeof o.maxGroups !== "number")
    return { ok: false, error: "gpusPerGroup and maxGroups: expected numbers" };
  return { ok: true, value: { title: String(o.title ?? "wide-EP demo"), ...o } as WideEPSamplesFile };
}
