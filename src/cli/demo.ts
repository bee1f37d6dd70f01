// `make demo`: the whole story on an embedded local cluster with fake GPU nodes.
// Starts the control plane (8 GPU nodes of two kinds), a real Prometheus, the
// fleet emulator and the operator; applies the DeepSeek-V3 sample (adapted to
// the demo fleet); replays a ~6 minute scenario (steady load, a daily ramp a
// schedule pre-warms for, an unpredictable burst, a shift in expert heat, a quiet
// period); shows a live view; ends with a summary and an SVG timeline.
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { Command } from "commander";
import { parse as parseYaml } from "yaml";
import {
  cronForMinuteAfter,
  EMULATOR_HEAT_QUERY,
  EMULATOR_LATENCY_QUERY,
  startStack,
  type Stack,
} from "../testing/stack.ts";
import { DEMO_GPU_POOLS, NodeLabels } from "../testing/gpu-nodes.ts";
import { repoRoot } from "../testing/bins.ts";
import type { ScenarioPoint } from "../emulator/server.ts";
import {
  coldStartsByTier,
  parseDemoSamplesFile,
  renderDemoTimeline,
  scoreDemo,
  type DemoColdStart,
  type DemoSample,
  type DemoSamplesFile,
  type DemoStaging,
} from "./demo-report.ts";
import { DEMO_ENGINE_START_MS, DEMO_TIER_BANDWIDTH, DEMO_TIME_COMPRESSION } from "./demo-tiers.ts";

const program = new Command()
  .name("demo")
  .option("--out <dir>", "where to write the summary and timeline", "out/demo")
  .option("--keep", "keep the cluster running after the scenario until Ctrl-C", false)
  .option("--quick", "a shorter scenario (about 3 minutes)", false)
  .option(
    "--peer-loading",
    "emulated shards load their first weights from running peers that hold them (then nearly every start after bring-up is a peer start and staging changes no cold start)",
    false,
  )
  .option(
    "--render <samples.json>",
    "only re-render timeline.svg (next to the file) from a samples.json a demo run wrote; starts nothing",
  )
  .parse();
const opts = program.opts<{ out: string; keep: boolean; quick: boolean; peerLoading: boolean; render?: string }>();

// If our output goes to a pipe that dies with the same Ctrl-C (make demo | tee), keep going:
// cleaning up matters more than printing about it.
process.stdout.on("error", () => {});
process.stderr.on("error", () => {});

const NAME = "deepseek-v3";
// The heat shift: each layer's expert loads drift to this correlation with the previous pattern,
// the size of a real workload change (DeepSeek-V3 decode vs prefill expert loads, SGLang's published
// logical_count files: 0.661, printed by bench/placement).
const HEAT_SHIFT_CORRELATION = 0.66;
const SLO_WINDOW_S = 15;
const MAX_SHARDS = 52;
// spec.prewarm.staging.hostPath (the default), allowed by the operator's pod policy (--pod-allowed-host-paths).
const STAGING_HOST_PATH = "/var/lib/moe-operator/weights";
const tty = process.stdout.isTTY === true;
const say = (s: string) => console.log(s);

function demoSpec(prometheusUrl: string, windowCron: string) {
  const sample = parseYaml(readFileSync(join(repoRoot(), "deploy", "samples", "deepseek-v3.yaml"), "utf8")) as {
    metadata: Record<string, unknown>;
    // eslint-disable-next-line @typescript-eslint/no-explicit-any -- the sample's spec is edited freely below
    spec: Record<string, any>;
  };
  const s = sample.spec;
  // The demo fleet: 4 x 8 H100 + 4 x 8 H200 fake GPUs, no weight volume, compressed time.
  delete s.serving.gpu.nodeSelector;
  s.serving.router.replicas = 1;
  s.serving.router.gpusPerReplica = 4;
  for (const t of [s.serving.router.template, s.serving.expertShards.template]) {
    delete t.spec.volumes;
    for (const c of t.spec.containers) delete c.volumeMounts;
  }
  // kwok runs a shard's containers after the engine start (ADR 0019's 60 s, compressed); the fleet
  // emulator then loads its weights from its tier (peer, staged node disk, remote) and acknowledges.
  s.serving.expertShards.template.metadata = {
    annotations: { "pod-ready.stage.kwok.x-k8s.io/delay": `${DEMO_ENGINE_START_MS}ms` },
  };
  // Time is compressed ~24x (a remote cold start ~20 s instead of ~8 min), the rebalance interval with it.
  // Shards move experts in place (the fleet emulator plays each shard's side: loads at the
  // move-cost bandwidths, then acknowledges), so a rebalance needs no new pod and no spare GPU.
  s.placement = {
    ...s.placement,
    rebalanceIntervalSeconds: 30,
    minBalancednessGainPercent: 1,
    maxMovedPercent: 20,
    moves: { mode: "InPlace", ackTimeoutSeconds: 30 },
  };
  s.slo.evaluationWindowSeconds = SLO_WINDOW_S;
  s.scaling = {
    minShards: 32,
    maxShards: MAX_SHARDS,
    scaleUp: { stabilizationWindowSeconds: 0, maxShardsPerStep: 32 },
    scaleDown: { stabilizationWindowSeconds: 30, maxShardsPerStep: 8 },
  };
  s.heatSource = {
    type: "Prometheus",
    refreshIntervalSeconds: 5,
    prometheus: { url: prometheusUrl, query: EMULATOR_HEAT_QUERY, rateWindowSeconds: 15, timeoutSeconds: 5 },
  };
  s.latencySource = {
    type: "Prometheus",
    prometheus: { url: prometheusUrl, query: EMULATOR_LATENCY_QUERY, timeoutSeconds: 5 },
  };
  s.prewarm = {
    coldStartSeconds: 20,
    schedules: [{ name: "daily-peak", start: windowCron, durationMinutes: 2, timeZone: "UTC", minShards: 48 }],
    predictive: { enabled: false },
    burst: { enabled: true, panicThresholdPercent: 150, panicWindowSeconds: 10 },
    // Weights staged on the nodes the schedule will need (kwok completes the stager Jobs' pods).
    staging: {
      enabled: true,
      image: "example.invalid/moe-stager:demo",
      source: "hf://deepseek-ai/DeepSeek-V3",
      hostPath: STAGING_HOST_PATH,
    },
  };
  s.cost = { defaultUsdPerGpuHour: 2, priceLabelKey: NodeLabels.priceUsdPerGpuHour, maxUsdPerHour: 400 };
  return {
    apiVersion: "moe.dev/v1alpha1",
    kind: "MoEDeployment",
    metadata: { name: NAME, namespace: "default" },
    spec: s,
  };
}

interface Status {
  desiredShards?: number;
  currentShards?: number;
  currentGpus?: number;
  conditions?: { type: string; status: string; reason: string; message: string }[];
  latency?: { observedMs?: number; targetMs: number; sampleTime?: string };
  cost?: { usdPerHour: number };
  placement?: { version: number; balancedness?: number; movedFraction?: number };
  lastScale?: { fromShards: number; toShards: number; reason: string; message?: string };
  coldStart?: {
    leadSeconds: number;
    nextLoadTier?: string;
    tiers?: { tier: string; samples: number; medianSeconds: number }[];
  };
  staging?: { targetNodes: number; stagedBytes: number; nodes?: { name: string; phase: string }[] };
}

// --render: the timeline from a samples file, without running the scenario.
function renderOnly(file: string): void {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (err) {
    console.error(`--render: cannot read ${file}: ${(err as Error).message}`);
    process.exit(2);
  }
  const parsed = parseDemoSamplesFile(text);
  if (!parsed.ok) {
    console.error(`--render ${file}: ${parsed.error}`);
    process.exit(2);
  }
  const svgPath = join(dirname(file), "timeline.svg");
  writeFileSync(svgPath, renderDemoTimeline(parsed.value.samples, parsed.value));
  say(`timeline: ${svgPath} (${parsed.value.samples.length} samples)`);
}

interface Scenario {
  readonly startMs: number;
  /** Seconds from startMs to the schedule window. */
  readonly windowS: number;
  readonly window: { cron: string; atMs: number };
  readonly points: ScenarioPoint[];
  readonly heatShiftAtS: number;
  readonly endS: number;
}

/** Steady load, a daily ramp into the scheduled window, a burst, a heat shift, a quiet period. */
function planScenario(quick: boolean): Scenario {
  // The window opens at a whole UTC minute, 2-3 minutes from now (cron has minute resolution).
  const window = cronForMinuteAfter(Date.now(), quick ? 75_000 : 120_000);
  const startMs = Date.now();
  const W = (window.atMs - startMs) / 1000;
  const quickScale = quick ? 0.6 : 1;
  const points: ScenarioPoint[] = [
    { tS: 0, tokensPerSecond: 30_000, phase: "steady" },
    { tS: W - 5, tokensPerSecond: 30_000, phase: "daily ramp" },
    { tS: W + 20, tokensPerSecond: 60_000, phase: "peak" },
    { tS: W + 70 * quickScale, tokensPerSecond: 60_000, phase: "burst" },
    { tS: W + 72 * quickScale, tokensPerSecond: 70_000, phase: "burst" },
    { tS: W + 95 * quickScale, tokensPerSecond: 70_000, phase: "after burst" },
    { tS: W + 100 * quickScale, tokensPerSecond: 45_000, phase: "heat shift" },
    { tS: W + 160 * quickScale, tokensPerSecond: 45_000, phase: "quiet" },
    { tS: W + 170 * quickScale, tokensPerSecond: 15_000, phase: "quiet" },
  ];
  return {
    startMs,
    windowS: W,
    window,
    points,
    heatShiftAtS: W + 100 * quickScale,
    endS: W + (quick ? 200 : 260) * quickScale,
  };
}

/** Stop everything once (on a signal or at the end), keeping the operator log and the pod trace. */
function installShutdown(stack: Stack, podTrace: string[]): (why: string, code: number) => Promise<void> {
  let stopping = false;
  const shutdown = async (why: string, code: number) => {
    if (stopping) return;
    stopping = true;
    say(`\n${why}: stopping the operator, emulator, Prometheus and the control plane...`);
    // The operator's log outlives the cluster's temp dir: it is the first thing to read when a
    // decision in the timeline needs explaining.
    try {
      mkdirSync(opts.out, { recursive: true });
      copyFileSync(stack.operator.logFile, join(opts.out, "operator.log"));
      writeFileSync(join(opts.out, "pods.log"), podTrace.join("\n") + "\n");
    } catch {
      // nothing to keep
    }
    await stack.stop();
    say("Everything stopped; no processes left behind.");
    process.exit(code);
  };
  process.on("SIGINT", () => void shutdown("Ctrl-C", 130));
  process.on("SIGTERM", () => void shutdown("SIGTERM", 143));
  process.on("SIGHUP", () => void shutdown("SIGHUP", 129));
  return shutdown;
}

/** Show the nodes, apply the adapted sample and say what the scenario will do. */
async function applySample(stack: Stack, sc: Scenario): Promise<void> {
  const kubectl = stack.cluster.kubectl;
  const nodes = await kubectl([
    "get",
    "nodes",
    "-l",
    "type=kwok",
    "-o",
    "custom-columns=NAME:.metadata.name,GPU:.metadata.labels.nvidia\\.com/gpu\\.product,GPUS:.status.allocatable.nvidia\\.com/gpu,USD/GPU-H:.metadata.labels.moe\\.dev/price-usd-per-gpu-hour",
  ]);
  say(`\nGPU nodes (control plane ready in ${(stack.cluster.startupMs / 1000).toFixed(1)} s):\n${nodes.stdout}`);
  const applied = await kubectl(["apply", "-f", "-"], {
    input: JSON.stringify(demoSpec(stack.prometheus.url, sc.window.cron)),
  });
  if (applied.code !== 0) throw new Error(`applying the sample failed: ${applied.stderr}`);
  say(
    `Applied deploy/samples/deepseek-v3.yaml (61 layers, 256 experts, top-8, 9 slots/GPU), adapted to the demo fleet:`,
  );
  say(
    `  minShards 32, maxShards 52 (8 GPUs left free for make-before-break surges), router 1 x 4 GPUs, schedule "daily-peak" at ${new Date(sc.window.atMs).toISOString().slice(11, 16)} UTC holding >= 48 shards.`,
  );
  say(
    `  Cold starts (time compressed ${DEMO_TIME_COMPRESSION}x): engine start ${DEMO_ENGINE_START_MS / 1000} s, then the weights from ${opts.peerLoading ? "running peers that hold them, else " : ""}the node's disk where staged, else the remote store; weights staged (spec.prewarm.staging) on the nodes the schedule will need.`,
  );
  say(`  Prometheus ${stack.prometheus.url}   kubectl: export KUBECONFIG=${stack.cluster.kubeconfigPath}\n`);
  say(
    `Scenario: steady 30k tok/s -> daily ramp to 60k at the window (t+${Math.round(sc.windowS)} s) -> burst to 70k -> expert heat shift (loads re-correlate at ${HEAT_SHIFT_CORRELATION}, like a decode -> prefill change) -> quiet 15k.\n`,
  );
}

/** The live view's state between samples: what was already reported as an event. */
interface Watch {
  readonly samples: DemoSample[];
  readonly events: string[];
  readonly podTrace: string[];
  /** Each shard pod's cold start, recorded the first time it is seen Ready. */
  readonly coldStarts: Map<string, DemoColdStart>;
  /** When each node was first seen staged. */
  readonly stagings: Map<string, DemoStaging>;
  lastScaleKey: string;
  lastVersion: number;
}

/** One sample of the MoEDeployment's status, the emulator and the shard pods; records new events and the pod trace. */
async function takeSample(
  stack: Stack,
  sc: Scenario,
  w: Watch,
): Promise<{ sample: DemoSample; st: Status; em: ReturnType<Stack["emulator"]["last"]> }> {
  const kubectl = stack.cluster.kubectl;
  const tS = (Date.now() - sc.startMs) / 1000;
  const r = await kubectl(["get", "moed", NAME, "-o", "json"]);
  const st: Status = r.code === 0 ? ((JSON.parse(r.stdout) as { status?: Status }).status ?? {}) : {};
  const em = stack.emulator.last();
  const pods = await kubectl([
    "get",
    "pods",
    "-l",
    `moe.dev/deployment=${NAME},moe.dev/component=expert-shard`,
    "--no-headers",
    "-o",
    'custom-columns=NAME:.metadata.name,NODE:.spec.nodeName,PHASE:.status.phase,READY:.status.conditions[?(@.type=="Ready")].status,DRAIN:.metadata.labels.moe\\.dev/draining,DEL:.metadata.deletionTimestamp,CREATED:.metadata.creationTimestamp,READYAT:.status.conditions[?(@.type=="Ready")].lastTransitionTime,TIER:.metadata.annotations.moe\\.dev/load-tier,ACKAT:.status.conditions[?(@.type=="moe.dev/placement-applied")].lastTransitionTime,ACK:.status.conditions[?(@.type=="moe.dev/placement-applied")].reason',
  ]);
  const podLines = pods.stdout
    .trim()
    .split("\n")
    .filter((l) => l.trim() !== "");
  const count = (f: (cols: string[]) => boolean) => podLines.map((l) => l.trim().split(/\s+/)).filter(f).length;
  w.podTrace.push(
    `t+${tS.toFixed(0)}s pods=${podLines.length} unscheduled=${count((c) => c[1] === "<none>")} notReady=${count((c) => c[3] !== "True")} draining=${count((c) => c[4] === "true")} balancedness=${em?.balancedness.toFixed(3) ?? "-"} latency=${em?.latencyMs.toFixed(1) ?? "-"}\n  ${podLines.join("\n  ")}`,
  );
  const sample: DemoSample = {
    tS,
    tokensPerSecond: em?.tokensPerSecond ?? 0,
    desiredShards: st.desiredShards ?? 0,
    readyShards: em?.servingShards ?? 0,
    p99Ms: st.latency?.observedMs,
    p99AtS: st.latency?.sampleTime === undefined ? undefined : (Date.parse(st.latency.sampleTime) - sc.startMs) / 1000,
    sloMs: st.latency?.targetMs ?? 50,
    usdPerHour: st.cost?.usdPerHour ?? 0,
    // With no shard serving the emulator reports 1 (nothing to be unbalanced): not a measurement.
    balancedness: em && em.servingShards > 0 ? em.balancedness : undefined,
    phase: em?.phase ?? "",
  };
  w.samples.push(sample);
  recordEvents(st, tS, w);
  recordColdStarts(podLines, sc, w);
  recordStagings(st, tS, w);
  return { sample, st, em };
}

/** Nodes seen Staged for the first time (status.staging.nodes), with the sample's time. */
function recordStagings(st: Status, tS: number, w: Watch): void {
  for (const n of st.staging?.nodes ?? [])
    if (n.phase === "Staged" && !w.stagings.has(n.name)) {
      w.stagings.set(n.name, { node: n.name, atS: tS });
      w.events.push(`t+${tS.toFixed(0)}s node ${n.name} staged (weights on its disk)`);
    }
}

/**
 * A shard pod seen Ready and acknowledging its placement for the first time: its cold start (creation
 * to the later of Ready and the first acknowledgement) and the tier it reported. kwok sets the
 * moe.dev/placement-applied gate True (no reason) when it initialises the pod and turns it Ready
 * without waiting for it, so the agent's acknowledgement (reason Applied) is when the weights were
 * loaded. Its time is read when first seen: later moves rewrite it. (ACK is the last column: an
 * empty reason prints nothing.)
 */
function recordColdStarts(podLines: readonly string[], sc: Scenario, w: Watch): void {
  for (const cols of podLines.map((l) => l.trim().split(/\s+/))) {
    const [name, , , ready, , , created, readyAt, tier, ackAt, ack] = cols;
    if (!name || ready !== "True" || ack !== "Applied" || w.coldStarts.has(name)) continue;
    const c = Date.parse(created ?? "");
    const r = Math.max(Date.parse(readyAt ?? ""), Date.parse(ackAt ?? ""));
    if (!Number.isFinite(c) || !Number.isFinite(r) || r < c) continue;
    w.coldStarts.set(name, {
      pod: name,
      tier: tier && tier !== "<none>" ? tier : "unknown",
      createdAtS: (c - sc.startMs) / 1000,
      seconds: (r - c) / 1000,
    });
  }
}

function recordEvents(st: Status, tS: number, w: Watch): void {
  const last = st.lastScale;
  const scaleKey = last ? `${last.fromShards}->${last.toShards}:${last.reason}` : "";
  if (last && scaleKey !== w.lastScaleKey) {
    w.events.push(
      `t+${tS.toFixed(0)}s scale ${last.fromShards} -> ${last.toShards} shards (${last.reason}): ${last.message ?? ""}`,
    );
    w.lastScaleKey = scaleKey;
  }
  if ((st.placement?.version ?? 0) !== w.lastVersion && st.placement) {
    if (w.lastVersion > 0)
      w.events.push(
        `t+${tS.toFixed(0)}s placement v${st.placement.version}: balancedness ${st.placement.balancedness ?? "?"}, moved ${((st.placement.movedFraction ?? 0) * 100).toFixed(1)}% of expert weights`,
      );
    w.lastVersion = st.placement.version;
  }
}

/** Staged nodes from status.staging: "h200-1, h200-2" (a node not yet Staged shows its phase). */
function stagedNodes(st: Status): string {
  const nodes = st.staging?.nodes ?? [];
  if (nodes.length === 0) return "none";
  return nodes.map((n) => (n.phase === "Staged" ? n.name : `${n.name} (${n.phase})`)).join(", ");
}

/** The operator's cold starts per tier from status.coldStart: "remote 20.1 s (32), node-disk 4.8 s (16)". */
function coldStartTiers(st: Status): string {
  const tiers = st.coldStart?.tiers ?? [];
  if (tiers.length === 0) return "none";
  return tiers.map((t) => `${t.tier} ${t.medianSeconds.toFixed(1)} s (${t.samples})`).join(", ");
}

/** The shard pods' cold starts per tier as the demo measured them: "remote 20.1 s (32), node-disk 4.8 s (16)". */
function podColdStartTiers(w: Watch): string {
  const tiers = coldStartsByTier([...w.coldStarts.values()]);
  if (tiers.length === 0) return "none yet";
  return tiers.map((t) => `${t.tier} ${t.medianS.toFixed(1)} s (${t.n})`).join(", ");
}

function coldStartHeadline(st: Status): string {
  const c = st.coldStart;
  return `Cold start (status.coldStart): next tier ${c?.nextLoadTier ?? "-"}, lead ${c ? c.leadSeconds.toFixed(0) : "-"} s, per tier ${coldStartTiers(st)}`;
}

/** The live view: one line per sample, or a redrawn screen on a terminal. */
function showSample(
  sample: DemoSample,
  st: Status,
  sc: Scenario,
  w: Watch,
  em: { balancedness: number } | undefined,
): void {
  const events = w.events;
  const cond = (t: string) => st.conditions?.find((c) => c.type === t);
  const prewarming = cond("Prewarming");
  const line = [
    `t+${sample.tS.toFixed(0).padStart(3)}s ${(sample.phase || "").padEnd(11)}`,
    `load ${(sample.tokensPerSecond / 1000).toFixed(1).padStart(5)}k tok/s`,
    `shards ${String(sample.readyShards).padStart(2)} ready / ${String(sample.desiredShards).padStart(2)} desired`,
    `balance ${em ? em.balancedness.toFixed(2) : "  - "}`,
    `p99 ITL ${sample.p99Ms === undefined ? "   - " : sample.p99Ms.toFixed(1).padStart(5)} ms (SLO ${sample.sloMs})`,
    `$${sample.usdPerHour.toFixed(0).padStart(3)}/h`,
    `Ready=${cond("Ready")?.status ?? "?"} SLOMet=${cond("SLOMet")?.status ?? "?"} Prewarming=${prewarming?.status === "True" ? prewarming.reason : "False"} Metrics=${cond("MetricsAvailable")?.status ?? "?"}`,
    `staged: ${stagedNodes(st)}`,
    `cold start p50: ${podColdStartTiers(w)}`,
  ].join(" | ");
  if (!tty) {
    say(line);
    return;
  }
  process.stdout.write("\x1b[2J\x1b[H");
  say(`moe-operator demo  (Ctrl-C stops and cleans up)   window "daily-peak" opens at t+${Math.round(sc.windowS)} s\n`);
  say(line);
  say(`\nlast decision: ${st.lastScale ? `${st.lastScale.reason}: ${st.lastScale.message ?? ""}` : "(none yet)"}`);
  say(`Progressing: ${cond("Progressing")?.reason ?? "?"}: ${cond("Progressing")?.message ?? ""}`);
  say(`SLOMet: ${cond("SLOMet")?.message ?? ""}`);
  say(coldStartHeadline(st));
  say(
    `\nrecent events:\n${events
      .slice(-8)
      .map((e) => `  ${e}`)
      .join("\n")}`,
  );
}

/** The cold starts per tier (pod timestamps), the operator's (status.coldStart) and the staged nodes, printed. */
function reportColdStarts(w: Watch, st: Status | undefined) {
  const byTier = coldStartsByTier([...w.coldStarts.values()]);
  const stagings = [...w.stagings.values()].sort((a, b) => a.atS - b.atS);
  say(
    `cold starts (shard pod creation -> Ready and placement acknowledged, from the pods' timestamps): ${
      byTier
        .map(
          (t) =>
            `${t.tier} median ${t.medianS.toFixed(1)} s, ${t.minS.toFixed(1)}-${t.maxS.toFixed(1)} s (${t.n} pods)`,
        )
        .join("; ") || "none"
    }`,
  );
  say(
    `  the operator's (status.coldStart): ${st ? coldStartTiers(st) : "-"}; next tier ${st?.coldStart?.nextLoadTier ?? "-"}`,
  );
  say(
    `staged nodes (first seen Staged in status.staging): ${stagings.map((x) => `${x.node} at t+${x.atS.toFixed(0)} s`).join(", ") || "none"}${
      st?.staging ? `; ${(st.staging.stagedBytes / 1e9).toFixed(0)} GB on disk at the end` : ""
    }`,
  );
  return {
    byTier,
    operatorTiers: st?.coldStart?.tiers ?? [],
    stagings,
  };
}

/** Score the run, write samples.json, timeline.svg and summary.json, and print the summary. */
function summarize(w: Watch, lastSt: Status | undefined, sc: Scenario, t0: number): void {
  const { samples, events } = w;
  // Bring-up (creating the shards and loading their weights, before the deployment first served
  // with all its shards Ready) is not scored: no SLO applies to a deployment that is not serving yet.
  // The latency series is a rate over the SLO window, so scoring starts with the first latency
  // measured one window after all the first shards were serving (by its sample time in status: the
  // operator reads Prometheus on its own cadence, so the sampler's clock alone let one bring-up
  // value, 9.2 s, into the score).
  const first = samples[0];
  const last = samples.at(-1);
  if (first === undefined || last === undefined) throw new Error("the demo took no samples");
  const allReadyAtS = samples.find((s) => s.readyShards > 0 && s.readyShards >= s.desiredShards)?.tS;
  const servingFrom =
    allReadyAtS === undefined
      ? -1
      : samples.findIndex(
          (s) =>
            s.tS >= allReadyAtS + SLO_WINDOW_S &&
            s.p99Ms !== undefined &&
            (s.p99AtS ?? s.tS) >= allReadyAtS + SLO_WINDOW_S,
        );
  const bringUpS = samples[servingFrom]?.tS;
  const score = scoreDemo(servingFrom >= 0 ? samples.slice(servingFrom) : [], MAX_SHARDS);
  let gpuSeconds = 0;
  for (let i = 1; i < samples.length; i++) {
    const [prev, cur] = [samples[i - 1], samples[i]];
    if (prev && cur) gpuSeconds += (cur.tS - prev.tS) * (prev.desiredShards + 4);
  }
  const peakGpus = Math.max(...samples.map((s) => s.desiredShards)) + 4;
  const staticGpuSeconds = (last.tS - first.tS) * peakGpus;
  mkdirSync(opts.out, { recursive: true });
  const svgPath = join(opts.out, "timeline.svg");
  const report: DemoSamplesFile = {
    title: "moe-operator demo: DeepSeek-V3 on 64 fake GPUs",
    windowAtS: sc.windowS,
    heatShiftAtS: sc.heatShiftAtS,
    maxShards: MAX_SHARDS,
    samples,
    coldStarts: [...w.coldStarts.values()],
    stagings: [...w.stagings.values()],
  };
  writeFileSync(join(opts.out, "samples.json"), JSON.stringify(report, null, 1));
  writeFileSync(svgPath, renderDemoTimeline(samples, report));
  const summary = {
    durationS: Math.round(last.tS),
    bringUpSeconds: bringUpS === undefined ? null : Math.round(bringUpS),
    sloMetShareOfSamples: score.scored ? score.met / score.scored : null,
    p99MaxMs: score.worstP99Ms ?? null,
    // Apart from the samples where the desired count sat at maxShards (the bound's misses, not the policy's).
    outsideBound: {
      sloMetShareOfSamples: score.outsideBound.scored ? score.outsideBound.met / score.outsideBound.scored : null,
      p99MaxMs: score.outsideBound.worstP99Ms ?? null,
      samples: score.outsideBound.scored,
    },
    atBound: { bound: `maxShards ${MAX_SHARDS}`, samples: score.atBound, sloMet: score.metAtBound },
    gpuHours: gpuSeconds / 3600,
    staticPeakGpuHours: staticGpuSeconds / 3600,
    savedVsStaticPeak: staticGpuSeconds > 0 ? 1 - gpuSeconds / staticGpuSeconds : null,
    events,
  };
  writeFileSync(join(opts.out, "summary.json"), JSON.stringify(summary, null, 2));
  say("\n=== summary ===");
  say(
    `bring-up (shards created and loaded, plus one ${SLO_WINDOW_S} s latency window; not scored): ${bringUpS === undefined ? "never finished" : `t+0..${bringUpS.toFixed(0)} s`}`,
  );
  const pct = (met: number, n: number) => (n ? ((100 * met) / n).toFixed(1) : "-");
  const o = score.outsideBound;
  say(
    `SLO met in ${score.met}/${score.scored} samples after bring-up (${pct(score.met, score.scored)}%), worst p99 ${summary.p99MaxMs?.toFixed(1) ?? "-"} ms`,
  );
  say(
    `  outside the bound: ${o.met}/${o.scored} (${pct(o.met, o.scored)}%), worst p99 ${o.worstP99Ms?.toFixed(1) ?? "-"} ms; at maxShards ${MAX_SHARDS}: ${score.metAtBound}/${score.atBound} met`,
  );
  say(
    `GPU-hours ${summary.gpuHours.toFixed(2)} vs ${summary.staticPeakGpuHours.toFixed(2)} for static peak provisioning (${((summary.savedVsStaticPeak ?? 0) * 100).toFixed(0)}% saved)`,
  );
  const coldStarts = reportColdStarts(w, lastSt);
  writeFileSync(join(opts.out, "summary.json"), JSON.stringify({ ...summary, coldStarts }, null, 2));
  say(`events:\n${events.map((e) => `  ${e}`).join("\n")}`);
  say(
    `timeline: ${svgPath}   summary: ${join(opts.out, "summary.json")}   (${((Date.now() - t0) / 1000).toFixed(0)} s in all)`,
  );
}

async function main(): Promise<void> {
  if (opts.render !== undefined) return renderOnly(opts.render);
  const t0 = Date.now();
  say(
    "moe-operator demo: starting a local control plane with 8 fake GPU nodes, Prometheus, the fleet emulator and the operator...",
  );
  const sc = planScenario(opts.quick);
  const stack: Stack = await startStack({
    name: "moe-demo",
    gpuNodes: DEMO_GPU_POOLS,
    deployment: NAME,
    model: { layers: 61, denseLayers: 3, routedExperts: 256, topK: 8 },
    scenario: {
      startMs: sc.startMs,
      points: sc.points,
      heatShifts: [{ tS: sc.heatShiftAtS, seed: 2026, correlation: HEAT_SHIFT_CORRELATION }],
      heatSeed: 3,
    },
    // DeepSeek-V3: 3 x 7168 x 2048 parameters per expert and layer at FP8 (the sample's spec.model).
    shardAgent: {
      expertWeightBytes: 44_040_192,
      firstLoad: { bandwidth: DEMO_TIER_BANDWIDTH, peerLoading: opts.peerLoading },
    },
    operator: { extraArgs: [`--pod-allowed-host-paths=${STAGING_HOST_PATH}`] },
    log: (m) => say(`  ${m}`),
  });
  const w: Watch = {
    samples: [],
    events: [],
    podTrace: [],
    coldStarts: new Map(),
    stagings: new Map(),
    lastScaleKey: "",
    lastVersion: 0,
  };
  const shutdown = installShutdown(stack, w.podTrace);
  await applySample(stack, sc);

  let lastSt: Status | undefined;
  while ((Date.now() - sc.startMs) / 1000 < sc.endS) {
    const { sample, st, em } = await takeSample(stack, sc, w);
    lastSt = st;
    showSample(sample, st, sc, w, em);
    await new Promise((res) => setTimeout(res, 3_000));
  }

  summarize(w, lastSt, sc, t0);
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
