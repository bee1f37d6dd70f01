// `make demo-wideep`: the wide-EP story on an embedded local cluster. Starts the control plane with
// the real LeaderWorkerSet controller and seven kwok 8-GPU nodes, a real Prometheus, the group fleet
// emulator (src/emulator/group-server.ts) and the operator; applies a WideEP MoEDeployment (groups of
// 2 nodes x 8 GPUs, 1..4 groups, compressed time, a schedule window for the daily ramp); replays a
// 6.5-7.5 minute load (steady on one group until the schedule pre-warms three, a ramp that needs
// three, a burst that needs a fourth the fleet has only half the nodes for, a fall back to one group
// with drain); shows a live view; ends with a summary and an SVG timeline.
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { Command } from "commander";
import { startCluster, type LocalCluster } from "../testing/cluster.ts";
import { startPrometheus, type LocalPrometheus } from "../testing/prometheus.ts";
import { startProcess, type ManagedProcess } from "../testing/process.ts";
import { repoRoot } from "../testing/bins.ts";
import { eightGpuPool } from "../testing/gpu-nodes.ts";
import { cronForMinuteAfter, EMULATOR_HEAT_QUERY, EMULATOR_LATENCY_QUERY } from "../testing/stack.ts";
import { realClock } from "../runtime/clock.ts";
import { silentLogger } from "../observability/logger.ts";
import {
  startGroupFleetEmulator,
  type GroupEmulatorServer,
  type GroupEmulatorSnapshot,
  type GroupView,
} from "../emulator/group-server.ts";
import {
  DEMO_DRAIN_S,
  DEMO_GPUS_PER_GROUP,
  DEMO_GROUP,
  DEMO_MAX_GROUPS,
  DEMO_NAME,
  DEMO_NODES,
  DEMO_PENDING_TIMEOUT_S,
  DEMO_POD_READY_DELAY_S,
  DEMO_SLO_MS,
  DEMO_SLO_WINDOW_S,
  planWideEPScenario,
  wideEPDemoSpec,
  WINDOW_AFTER_RAMP_S,
  DEMO_WINDOW_GROUPS,
  type WideEPScenario,
} from "./demo-wideep-scenario.ts";
import {
  parseWideEPSamplesFile,
  renderWideEPTimeline,
  scoreWideEP,
  type WideEPSample,
  type WideEPSamplesFile,
} from "./demo-wideep-report.ts";

const program = new Command()
  .name("demo-wideep")
  .option("--out <dir>", "where to write the summary and timeline", "out/demo-wideep")
  .option("--keep", "keep the cluster running after the scenario until Ctrl-C", false)
  .option("--quick", "phases after the steady one 30 % shorter (about 5.5-6.5 minutes)", false)
  .option(
    "--render <samples.json>",
    "only re-render timeline.svg (next to the file) from a samples.json; starts nothing",
  )
  .parse();
const opts = program.opts<{ out: string; keep: boolean; quick: boolean; render?: string }>();

process.stdout.on("error", () => {});
process.stderr.on("error", () => {});
const tty = process.stdout.isTTY === true;
const say = (s: string) => console.log(s);
const G = DEMO_GPUS_PER_GROUP;

interface Parts {
  cluster: LocalCluster;
  emulator?: GroupEmulatorServer;
  prometheus?: LocalPrometheus;
  operator?: ManagedProcess;
}

async function stopParts(p: Parts): Promise<void> {
  await p.operator?.stop().catch(() => undefined);
  await p.prometheus?.stop().catch(() => undefined);
  await p.emulator?.stop().catch(() => undefined);
  await p.cluster.stop().catch(() => undefined);
}

function startOperator(cluster: LocalCluster, prometheusUrl: string): ManagedProcess {
  // The arguments of src/testing/stack.ts's operator, with the demo's drain time.
  return startProcess({
    name: "moe-operator",
    command: join(repoRoot(), "node_modules", ".bin", "node"),
    args: [
      join(repoRoot(), "src", "main.ts"),
      `--kubeconfig=${cluster.kubeconfigPath}`,
      "--metrics-bind-address=127.0.0.1:0",
      "--health-probe-bind-address=127.0.0.1:0",
      "--leader-elect=true",
      "--leader-election-namespace=default",
      "--lease-duration-seconds=6",
      "--renew-deadline-seconds=4",
      "--retry-period-seconds=1",
      "--reconcile-interval-seconds=5",
      `--drain-seconds=${DEMO_DRAIN_S}`,
      `--prometheus-allowed-urls=${prometheusUrl}`,
      "--log-level=info",
    ],
    logFile: join(cluster.dir, "operator.log"),
    cwd: repoRoot(),
  });
}

/** The scenario as planned at its start, and the schedule window its ramp is set against. */
interface Planned {
  readonly sc: WideEPScenario;
  readonly window: { cron: string; atMs: number };
  /** The window's length: it holds three groups through the ramp and the peak, up to the burst. */
  readonly minutes: number;
}

/** The window: the first whole UTC minute at least 110 s after startMs; the ramp starts WINDOW_AFTER_RAMP_S before it. */
function planAt(startMs: number, scale: number): Planned {
  // The schedule pre-warms one lead ahead of the window (the 20-s cold start plus the 60-s margin, ~80 s):
  // the window opens late enough for the steady phase to run on one group first.
  const window = cronForMinuteAfter(startMs, 110_000);
  const rampAtS = (window.atMs - startMs) / 1000 - WINDOW_AFTER_RAMP_S;
  const minutes = Math.max(1, Math.ceil((125 * scale - WINDOW_AFTER_RAMP_S) / 60));
  return { sc: planWideEPScenario(scale, rampAtS), window, minutes };
}

/** Cluster with LWS and 8-GPU nodes, the CRD, the group emulator (its clock starts the scenario), Prometheus, the operator. */
async function startAll(scale: number): Promise<{ parts: Parts; startMs: number; planned: Planned }> {
  const cluster = await startCluster({
    name: "moe-demo-wideep",
    lws: true,
    gpuNodes: [eightGpuPool("ep", DEMO_NODES)],
    log: (m) => say(`  ${m}`),
  });
  const parts: Parts = { cluster };
  try {
    const crd = await cluster.kubectl(["apply", "--server-side", "-f", join(repoRoot(), "crds")]);
    if (crd.code !== 0) throw new Error(`applying the CRD failed: ${crd.stderr}`);
    await cluster.kubectl(["wait", "--for=condition=Established", "crd/moedeployments.moe.dev", "--timeout=30s"]);
    const startMs = Date.now();
    const planned = planAt(startMs, scale);
    const sc = planned.sc;
    parts.emulator = await startGroupFleetEmulator({
      kubeConfig: cluster.kubeConfig,
      namespace: "default",
      deployment: DEMO_NAME,
      model: { layers: 61, denseLayers: 3, routedExperts: 256, topK: 8 },
      shape: DEMO_GROUP,
      scenario: { startMs, points: sc.points, heatShifts: sc.heatShifts, heatSeed: 3 },
      seed: 1,
      clock: realClock,
      logger: silentLogger(),
    });
    say(`  group fleet emulator serving ${parts.emulator.url}/metrics`);
    parts.prometheus = await startPrometheus({
      scrapeConfigs: [{ jobName: "moe-group-emulator", targets: [parts.emulator.url.replace(/^http:\/\//, "")] }],
      scrapeIntervalSeconds: 2,
    });
    say(`  prometheus at ${parts.prometheus.url}`);
    parts.operator = startOperator(cluster, parts.prometheus.url);
    say("  operator started");
    return { parts, startMs, planned };
  } catch (err) {
    await stopParts(parts);
    throw err;
  }
}

interface Status {
  desiredShards?: number;
  groups?: {
    desired: number;
    ready: number;
    gpusPerGroup: number;
    pending?: number[];
    draining?: number[];
    placementApplied?: number;
    placementMoving?: number;
  };
  placement?: { version?: number };
  conditions?: { type: string; status: string; reason: string; message: string }[];
  latency?: { observedMs?: number; targetMs: number };
  cost?: { usdPerHour: number };
  lastScale?: { fromShards: number; toShards: number; reason: string; message?: string };
}

interface Watch {
  readonly samples: WideEPSample[];
  readonly events: string[];
  readonly trace: string[];
  lastScaleKey: string;
  capacityPending: string;
  draining: string;
  /** Placement: the published version, what each group serves or moves to, RebalanceStalled. */
  published?: number;
  served: Map<number, string>;
  stalled: string;
}

const cond = (st: Status, t: string) => st.conditions?.find((c) => c.type === t);

/** One glyph per group: R serving, D draining, S all pods bound and starting, P a pod unscheduled. */
export function groupGlyphs(groups: readonly GroupView[]): string {
  return groups
    .map((g) => (g.draining ? "D" : g.serving ? "R" : g.boundPods < DEMO_GROUP.nodesPerGroup ? "P" : "S"))
    .join("");
}

/** Each group's placement as the emulator serves it: "v3", "v3->v4" while it moves in place. */
export function groupVersions(groups: readonly GroupView[]): string {
  return groups
    .map(
      (g) =>
        `g${g.index}:${g.placementVersion === undefined ? "-" : `v${g.placementVersion}`}${g.movingTo ? `->v${g.movingTo}` : ""}`,
    )
    .join(" ");
}

/** Placement events: a version published, a group moving in place or serving a version, RebalanceStalled. */
function recordPlacement(st: Status, views: readonly GroupView[], at: string, w: Watch): void {
  const v = st.placement?.version;
  if (v !== undefined && v !== w.published) {
    w.events.push(`${at} placement version ${v} published`);
    w.published = v;
  }
  for (const g of views) {
    if (!g.serving) continue;
    const now = g.movingTo
      ? `moving in place to placement version ${g.movingTo}`
      : `serves placement version ${g.placementVersion ?? "-"}`;
    if (w.served.get(g.index) !== now) w.events.push(`${at} group ${g.index} ${now}`);
    w.served.set(g.index, now);
  }
  const rs = cond(st, "RebalanceStalled");
  const key = rs?.status === "True" ? rs.message : "";
  if (key !== w.stalled) {
    w.events.push(key ? `${at} RebalanceStalled=True: ${key}` : `${at} RebalanceStalled=False (${rs?.reason ?? "-"})`);
    w.stalled = key;
  }
}

function recordEvents(st: Status, views: readonly GroupView[], tS: number, w: Watch): void {
  const at = `t+${tS.toFixed(0)}s`;
  recordPlacement(st, views, at, w);
  const l = st.lastScale;
  const key = l ? `${l.fromShards}->${l.toShards}:${l.reason}` : "";
  if (l && key !== w.lastScaleKey) {
    w.events.push(`${at} scale ${l.fromShards / G} -> ${l.toShards / G} groups (${l.reason}): ${l.message ?? ""}`);
    w.lastScaleKey = key;
  }
  // Once per change of the pending groups (the message's wait time changes at every reconcile).
  const cp = cond(st, "CapacityPending");
  const cpKey = cp?.status === "True" ? (st.groups?.pending ?? []).join(",") || "?" : "";
  if (cpKey !== w.capacityPending) {
    w.events.push(cpKey ? `${at} CapacityPending=True: ${cp?.message ?? ""}` : `${at} CapacityPending=False`);
    w.capacityPending = cpKey;
  }
  const dr = (st.groups?.draining ?? []).join(",");
  if (dr !== w.draining) {
    w.events.push(
      dr ? `${at} draining group(s) ${dr} (moe.dev/draining-since on the leader)` : `${at} no group draining`,
    );
    w.draining = dr;
  }
}

/** One sample from the deployment's status (the operator's view) and the emulator (what serves). */
function sampleOf(tS: number, st: Status, em: GroupEmulatorSnapshot | undefined): WideEPSample {
  const g = st.groups;
  return {
    tS,
    phase: em?.phase ?? "",
    tokensPerSecond: em?.tokensPerSecond ?? 0,
    servingGroups: em?.servingGroups ?? 0,
    readyGroups: g?.ready ?? 0,
    desiredGroups: g?.desired ?? 0,
    decidedGroups: Math.ceil((st.desiredShards ?? 0) / G),
    pendingGroups: g?.pending ?? [],
    drainingGroups: g?.draining ?? [],
    capacityPending: cond(st, "CapacityPending")?.status === "True",
    p99Ms: st.latency?.observedMs,
    sloMs: st.latency?.targetMs ?? DEMO_SLO_MS,
    ...(st.placement?.version !== undefined ? { placementVersion: st.placement.version } : {}),
    ...(g?.placementApplied !== undefined ? { placementApplied: g.placementApplied } : {}),
  };
}

async function takeSample(
  parts: Parts,
  startMs: number,
  w: Watch,
): Promise<{ sample: WideEPSample; st: Status; glyphs: string; versions: string }> {
  const tS = (Date.now() - startMs) / 1000;
  const r = await parts.cluster.kubectl(["get", "moed", DEMO_NAME, "-o", "json"]);
  const st: Status = r.code === 0 ? ((JSON.parse(r.stdout) as { status?: Status }).status ?? {}) : {};
  const em = parts.emulator!.last();
  const views = em?.groups ?? [];
  const glyphs = groupGlyphs(views);
  const sample = sampleOf(tS, st, em);
  w.samples.push(sample);
  recordEvents(st, views, tS, w);
  const pods = views.map((g) => `g${g.index}:${g.readyPods}/${g.pods}r,${g.boundPods}b`).join(" ");
  w.trace.push(
    `t+${tS.toFixed(0)}s ${glyphs} ${pods} ${groupVersions(views)} emulator-latency=${em ? em.latencyMs.toFixed(1) : "-"}`,
  );
  return { sample, st, glyphs, versions: groupVersions(views) };
}

function showSample(s: WideEPSample, st: Status, glyphs: string, versions: string, events: readonly string[]): void {
  const line = [
    `t+${s.tS.toFixed(0).padStart(3)}s ${s.phase.padEnd(7)}`,
    `load ${(s.tokensPerSecond / 1000).toFixed(1).padStart(4)}k tok/s`,
    `groups ${s.servingGroups} serving / ${s.readyGroups} ready / ${s.desiredGroups} LWS / ${s.decidedGroups} decided [${glyphs.padEnd(DEMO_MAX_GROUPS)}]`,
    `p99 ${s.p99Ms === undefined ? "  -  " : s.p99Ms.toFixed(1).padStart(5)} ms (SLO ${s.sloMs})`,
    `$${(st.cost?.usdPerHour ?? 0).toFixed(0).padStart(3)}/h`,
    `Ready=${cond(st, "Ready")?.status ?? "?"} SLOMet=${cond(st, "SLOMet")?.status ?? "?"} CapacityPending=${cond(st, "CapacityPending")?.status ?? "?"}`,
  ].join(" | ");
  if (!tty) {
    say(line);
    return;
  }
  process.stdout.write("\x1b[2J\x1b[H");
  say(
    "moe-operator wide-EP demo  (Ctrl-C stops and cleans up)   groups: R serving, S starting, P partly Pending, D draining\n",
  );
  say(line);
  say(`\nProgressing: ${cond(st, "Progressing")?.message ?? ""}`);
  say(`CapacityPending: ${cond(st, "CapacityPending")?.message ?? ""}`);
  say(`SLOMet: ${cond(st, "SLOMet")?.message ?? ""}`);
  say(
    `Placement (in place): published version ${st.placement?.version ?? "-"}; groups ${versions}; ${st.groups?.placementApplied ?? 0} applied, ${st.groups?.placementMoving ?? 0} moving; RebalanceStalled=${cond(st, "RebalanceStalled")?.status ?? "?"}`,
  );
  say(
    `\nrecent events:\n${events
      .slice(-8)
      .map((e) => `  ${e}`)
      .join("\n")}`,
  );
}

function summarize(w: Watch, t0: number, window: WideEPSamplesFile["window"]): void {
  const score = scoreWideEP(w.samples, DEMO_SLO_WINDOW_S);
  mkdirSync(opts.out, { recursive: true });
  const file: WideEPSamplesFile = {
    title: `moe-operator wide-EP demo: DeepSeek-R1 in EP groups of ${DEMO_GROUP.nodesPerGroup} x ${DEMO_GROUP.gpusPerNode} GPUs on ${DEMO_NODES} fake 8-GPU nodes (LeaderWorkerSet)`,
    gpusPerGroup: G,
    maxGroups: DEMO_MAX_GROUPS,
    samples: w.samples,
    ...(window ? { window } : {}),
  };
  const svgPath = join(opts.out, "timeline.svg");
  writeFileSync(join(opts.out, "samples.json"), JSON.stringify(file, null, 1));
  writeFileSync(svgPath, renderWideEPTimeline(file));
  let groupSeconds = 0;
  w.samples.forEach((s, i) => {
    const prev = w.samples[i - 1];
    if (prev) groupSeconds += (s.tS - prev.tS) * prev.desiredGroups;
  });
  const durationS = w.samples.at(-1)?.tS ?? 0;
  const summary = {
    durationS: Math.round(durationS),
    sloMetShareOfSamples: score.scored ? score.met / score.scored : null,
    p99MaxMs: score.worstP99Ms ?? null,
    samplesShortOfGroups: score.shortOfGroups,
    whenEveryDecidedGroupServed: { samples: score.scoredWhenAllServing, sloMet: score.metWhenAllServing },
    gpuHours: (groupSeconds * G) / 3600,
    staticPeakGpuHours: (durationS * DEMO_MAX_GROUPS * G) / 3600,
    events: w.events,
  };
  writeFileSync(join(opts.out, "summary.json"), JSON.stringify(summary, null, 2));
  const pct = (a: number, b: number) => (b ? ((100 * a) / b).toFixed(1) : "-");
  say("\n=== summary ===");
  say(
    `SLO met in ${score.met}/${score.scored} samples after the first group served (${pct(score.met, score.scored)}%), worst p99 ${score.worstP99Ms?.toFixed(1) ?? "-"} ms`,
  );
  say(
    `  when every decided group served: ${score.metWhenAllServing}/${score.scoredWhenAllServing} met; ${score.shortOfGroups} samples had fewer groups serving than decided (starting or pending)`,
  );
  say(
    `GPU-hours ${summary.gpuHours.toFixed(2)} (LeaderWorkerSet replicas x ${G}) vs ${summary.staticPeakGpuHours.toFixed(2)} for ${DEMO_MAX_GROUPS} groups all along`,
  );
  say(`events:\n${w.events.map((e) => `  ${e}`).join("\n")}`);
  say(
    `timeline: ${svgPath}   summary: ${join(opts.out, "summary.json")}   (${((Date.now() - t0) / 1000).toFixed(0)} s in all)`,
  );
}

function renderOnly(path: string): void {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    console.error(`--render: cannot read ${path}: ${(err as Error).message}`);
    process.exit(2);
  }
  const parsed = parseWideEPSamplesFile(text);
  if (!parsed.ok) {
    console.error(`--render ${path}: ${parsed.error}`);
    process.exit(2);
  }
  const svg = join(dirname(path), "timeline.svg");
  writeFileSync(svg, renderWideEPTimeline(parsed.value));
  say(`timeline: ${svg} (${parsed.value.samples.length} samples)`);
}

function installShutdown(parts: Parts, w: Watch): (why: string, code: number) => Promise<void> {
  let stopping = false;
  const shutdown = async (why: string, code: number) => {
    if (stopping) return;
    stopping = true;
    say(`\n${why}: stopping the operator, emulator, Prometheus, LWS and the control plane...`);
    try {
      mkdirSync(opts.out, { recursive: true });
      if (parts.operator) copyFileSync(parts.operator.logFile, join(opts.out, "operator.log"));
      writeFileSync(join(opts.out, "groups.log"), w.trace.join("\n") + "\n");
    } catch {
      // nothing to keep
    }
    await stopParts(parts);
    say("Everything stopped; no processes left behind.");
    process.exit(code);
  };
  process.on("SIGINT", () => void shutdown("Ctrl-C", 130));
  process.on("SIGTERM", () => void shutdown("SIGTERM", 143));
  process.on("SIGHUP", () => void shutdown("SIGHUP", 129));
  return shutdown;
}

async function applySpec(parts: Parts, planned: Planned): Promise<void> {
  const minutes = planned.minutes;
  const spec = wideEPDemoSpec({
    prometheusUrl: parts.prometheus!.url,
    heatQuery: EMULATOR_HEAT_QUERY,
    latencyQuery: EMULATOR_LATENCY_QUERY,
    window: { cron: planned.window.cron, minutes },
  });
  const applied = await parts.cluster.kubectl(["apply", "-f", "-"], { input: JSON.stringify(spec) });
  if (applied.code !== 0) throw new Error(`applying the WideEP MoEDeployment failed: ${applied.stderr}`);
  say(`\nApplied MoEDeployment ${DEMO_NAME} (topology WideEP, the shape of deploy/samples/deepseek-r1-wideep.yaml):`);
  say(
    `  EP groups of ${DEMO_GROUP.nodesPerGroup} nodes x ${DEMO_GROUP.gpusPerNode} GPUs on one LeaderWorkerSet (${DEMO_NAME}-ep); minShards ${G}, maxShards ${DEMO_MAX_GROUPS * G} GPUs = 1..${DEMO_MAX_GROUPS} groups`,
  );
  say(
    `  ${DEMO_NODES} nodes x 8 GPUs: room for 3 whole groups and half of a 4th; pod cold start ${DEMO_POD_READY_DELAY_S} s, pendingTimeout ${DEMO_PENDING_TIMEOUT_S} s, drain ${DEMO_DRAIN_S} s, p99 ITL SLO ${DEMO_SLO_MS} ms`,
  );
  say(
    "  spec.placement.moves.mode InPlace: a new placement version is written on each serving group's leader; the emulator's agent moves the group's experts in place and acknowledges",
  );
  say(
    `  spec.prewarm.schedules "daily-peak": ${minutes} min from ${new Date(planned.window.atMs).toISOString().slice(11, 16)} UTC (t+${Math.round(planned.sc.phases[1]!.fromS + WINDOW_AFTER_RAMP_S)} s), at least ${DEMO_WINDOW_GROUPS} groups (${DEMO_WINDOW_GROUPS * G} GPUs), pre-warmed ahead of it`,
  );
  say(`  Prometheus ${parts.prometheus!.url}   kubectl: export KUBECONFIG=${parts.cluster.kubeconfigPath}\n`);
}

async function main(): Promise<void> {
  if (opts.render !== undefined) return renderOnly(opts.render);
  const t0 = Date.now();
  const scale = opts.quick ? 0.7 : 1;
  say(
    `moe-operator wide-EP demo: starting a local control plane with the LeaderWorkerSet controller, ${DEMO_NODES} fake 8-GPU nodes, Prometheus, the group fleet emulator and the operator...`,
  );
  const { parts, startMs, planned } = await startAll(scale);
  const sc = planned.sc;
  const w: Watch = {
    samples: [],
    events: [],
    trace: [],
    lastScaleKey: "",
    capacityPending: "",
    draining: "",
    served: new Map(),
    stalled: "",
  };
  const shutdown = installShutdown(parts, w);
  await applySpec(parts, planned);
  say(
    `Scenario: ${sc.phases.map((p) => `${p.name} from t+${p.fromS}s (${(p.tokensPerSecond / 1000).toFixed(0)}k tok/s, ~${p.groupsNeeded} group(s))`).join(" -> ")}\n`,
  );
  while ((Date.now() - startMs) / 1000 < sc.endS) {
    const { sample, st, glyphs, versions } = await takeSample(parts, startMs, w);
    showSample(sample, st, glyphs, versions, w.events);
    await new Promise((res) => setTimeout(res, 3_000));
  }
  const windowFromS = (planned.window.atMs - startMs) / 1000;
  summarize(w, t0, { fromS: windowFromS, toS: windowFromS + 60 * planned.minutes, minGroups: DEMO_WINDOW_GROUPS });
  if (opts.keep) {
    say("\n--keep: the cluster stays up; Ctrl-C to stop and clean up.");
    await new Promise(() => {});
  }
  await shutdown("scenario done", 0);
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? (err.stack ?? err.message) : err);
  process.exit(1);
});
