// The demo's SVG timeline: offered load, shards (desired and serving) and p99
// latency against the SLO, on one time axis. Plain SVG text, no library.

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
}

const esc = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");

export function renderDemoTimeline(samples: readonly DemoSample[], o: { title: string; windowAtS?: number }): string {
  const W = 960;
  const left = 70;
  const right = 20;
  const panelH = 150;
  const gap = 40;
  const top = 50;
  const plotW = W - left - right;
  const t0 = samples[0]?.tS ?? 0;
  const t1 = Math.max(t0 + 1, samples.at(-1)?.tS ?? 1);
  const x = (t: number) => left + ((t - t0) / (t1 - t0)) * plotW;
  const parts: string[] = [];
  const panel = (i: number, label: string, unit: string, series: { name: string; color: string; values: (number | undefined)[]; dash?: string }[]) => {
    const y0 = top + i * (panelH + gap);
    const all = series.flatMap((s) => s.values.filter((v): v is number => v !== undefined && Number.isFinite(v)));
    const max = Math.max(1, ...all) * 1.1;
    const y = (v: number) => y0 + panelH - (Math.min(v, max) / max) * panelH;
    parts.push(`<rect x="${left}" y="${y0}" width="${plotW}" height="${panelH}" fill="#fafafa" stroke="#ccc"/>`);
    parts.push(`<text x="${left}" y="${y0 - 8}" font-size="13" font-weight="bold">${esc(label)}</text>`);
    for (const f of [0, 0.5, 1]) {
      const v = max * f;
      parts.push(`<text x="${left - 6}" y="${y(v) + 4}" font-size="10" text-anchor="end">${v >= 1000 ? `${(v / 1000).toFixed(0)}k` : v.toFixed(0)}</text>`);
      parts.push(`<line x1="${left}" x2="${left + plotW}" y1="${y(v)}" y2="${y(v)}" stroke="#eee"/>`);
    }
    parts.push(`<text x="${left - 50}" y="${y0 + panelH / 2}" font-size="10" transform="rotate(-90 ${left - 50} ${y0 + panelH / 2})" text-anchor="middle">${esc(unit)}</text>`);
    if (o.windowAtS !== undefined) parts.push(`<line x1="${x(o.windowAtS)}" x2="${x(o.windowAtS)}" y1="${y0}" y2="${y0 + panelH}" stroke="#999" stroke-dasharray="4 3"/>`);
    series.forEach((s, k) => {
      const pts = samples.map((sm, j) => (s.values[j] === undefined || !Number.isFinite(s.values[j]!) ? undefined : `${x(sm.tS).toFixed(1)},${y(s.values[j]!).toFixed(1)}`)).filter(Boolean);
      if (pts.length > 0) parts.push(`<polyline fill="none" stroke="${s.color}" stroke-width="2" ${s.dash ? `stroke-dasharray="${s.dash}"` : ""} points="${pts.join(" ")}"/>`);
      parts.push(`<rect x="${left + plotW - 170}" y="${y0 + 8 + k * 16}" width="12" height="3" fill="${s.color}"/><text x="${left + plotW - 152}" y="${y0 + 13 + k * 16}" font-size="11">${esc(s.name)}</text>`);
    });
  };
  panel(0, "Offered load", "tokens/s", [{ name: "load (tok/s)", color: "#1f77b4", values: samples.map((s) => s.tokensPerSecond) }]);
  panel(1, "Expert shards (1 GPU each)", "shards", [
    { name: "desired", color: "#ff7f0e", values: samples.map((s) => s.desiredShards), dash: "6 3" },
    { name: "serving (Ready)", color: "#2ca02c", values: samples.map((s) => s.readyShards) },
  ]);
  panel(2, "p99 inter-token latency vs SLO", "ms", [
    { name: "observed p99", color: "#d62728", values: samples.map((s) => s.p99Ms) },
    { name: "SLO target", color: "#555", values: samples.map((s) => s.sloMs), dash: "3 3" },
  ]);
  const h = top + 3 * (panelH + gap) + 10;
  const axisY = top + 3 * (panelH + gap) - gap + 16;
  const ticks: string[] = [];
  for (let t = 0; t <= t1 - t0; t += 60) ticks.push(`<text x="${x(t0 + t)}" y="${axisY}" font-size="10" text-anchor="middle">${t}s</text>`);
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${h}" viewBox="0 0 ${W} ${h}" font-family="sans-serif">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="${left}" y="24" font-size="16" font-weight="bold">${esc(o.title)}</text>`,
    o.windowAtS !== undefined ? `<text x="${left + 420}" y="24" font-size="11" fill="#666">dashed vertical line: scheduled window opens</text>` : "",
    ...parts,
    ...ticks,
    `</svg>`,
  ].join("\n");
}
