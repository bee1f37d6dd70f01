// The fleet emulator's cold-start tiers for a new shard's first load (issue 19, ADR 0019/0022).
import { describe, expect, it } from "vitest";
import { KubeConfig, type V1Pod } from "@kubernetes/client-node";
import { pino } from "pino";
import { firstLoadPlan, onStagedNode, ShardAgent, stagedMarkOf, type Holder } from "../../src/emulator/agent.ts";
import { DEMO_ENGINE_START_MS, DEMO_TIER_BANDWIDTH } from "../../src/cli/demo-tiers.ts";
import { shardExpertBytes, tierColdStartS } from "../../src/domain/prewarm/tiers.ts";

const BW = { peerBytesPerSecond: 100, nodeDiskBytesPerSecond: 10, remoteBytesPerSecond: 1 };
const BYTES = 5;
/** Two layers; the new shard wants experts 0,1 in layer 0 and 2 in layer 1 (3 replicas, 15 bytes). */
const TARGET = [[0, 1], [2]];
const self: Holder = { name: "new", node: "n1", served: [] };
const holdsAll: Holder = { name: "old", node: "n2", served: [[0, 1, 3], [2]] };
const holdsSome: Holder = { name: "old", node: "n2", served: [[0], [2]] };

const plan = (others: Holder[], o: { peerLoading?: boolean; nodeStaged?: boolean; loaded?: number[][] } = {}) =>
  firstLoadPlan(self, TARGET, others, {
    peerLoading: o.peerLoading ?? true,
    nodeStaged: o.nodeStaged ?? false,
    bandwidth: BW,
    bytes: BYTES,
    ...(o.loaded ? { loaded: o.loaded } : {}),
  });

describe("firstLoadPlan", () => {
  it.each([
    // [what, others, peerLoading, nodeStaged, tier, seconds]
    ["peers hold every expert: peer", [holdsAll], true, false, "peer", 15 / 100],
    ["peers hold every expert, staged node: still peer (the simulator's rule)", [holdsAll], true, true, "peer", 0.15],
    ["peers hold only some, staged node: node disk", [holdsSome], true, true, "node-disk", 15 / 10],
    ["peers hold only some, unstaged node: remote", [holdsSome], true, false, "remote", 15 / 1],
    ["peer loading off, staged node: node disk", [holdsAll], false, true, "node-disk", 1.5],
    ["peer loading off, unstaged node: remote", [holdsAll], false, false, "remote", 15],
    ["no other shard, unstaged: remote", [], true, false, "remote", 15],
  ] as const)("%s", (_what, others, peerLoading, nodeStaged, tier, seconds) => {
    const p = plan([...others], { peerLoading, nodeStaged });
    expect(p.tier).toBe(tier);
    expect(p.seconds).toBeCloseTo(seconds, 9);
  });

  it("a retargeted first load fetches only what it did not load yet", () => {
    expect(plan([], { loaded: [[0], []] }).seconds).toBeCloseTo(10, 9);
    expect(plan([], { loaded: [[0, 1, 7], [2]] }).seconds).toBe(0);
  });
});

describe("the demo's compressed tiers", () => {
  // A demo shard: 9 slots x 58 MoE layers of DeepSeek-V3 experts (44 MB each at FP8).
  const bytes = shardExpertBytes(9, 58, 44_040_192);
  const coldS = (tier: "peer" | "node-disk" | "remote") =>
    tierColdStartS(DEMO_TIER_BANDWIDTH, tier, bytes, DEMO_ENGINE_START_MS / 1000);

  it("keep a remote cold start near the demo's 20 s and make a staged node's much shorter", () => {
    expect(coldS("remote")).toBeGreaterThan(17);
    expect(coldS("remote")).toBeLessThan(23);
    expect(coldS("node-disk")).toBeLessThan(coldS("remote") / 4);
    expect(coldS("peer")).toBeLessThan(coldS("node-disk"));
    expect(DEMO_ENGINE_START_MS).toBe(2_500);
  });
});

const pod = (node: string | undefined, terms: { key: string; values: string[] }[]): V1Pod => ({
  metadata: { name: "p" },
  spec: {
    containers: [],
    ...(node ? { nodeName: node } : {}),
    affinity: {
      nodeAffinity: {
        preferredDuringSchedulingIgnoredDuringExecution: [
          {
            weight: 100,
            preference: { matchExpressions: [{ key: "kubernetes.io/hostname", operator: "In", values: ["x"] }] },
          },
          ...terms.map((t) => ({ weight: 50, preference: { matchExpressions: [{ ...t, operator: "In" }] } })),
        ],
      },
    },
  },
});

describe("the staged mark", () => {
  const KEY = "staged.moe.dev/default.deepseek-v3";
  const labels: Record<string, Record<string, string>> = {
    staged: { [KEY]: "abc" },
    stale: { [KEY]: "old" },
    other: { "staged.moe.dev/default.other": "abc" },
    bare: {},
  };
  const lookup = (n: string) => labels[n];

  it("is read from the pod's preferred affinity term", () => {
    expect(stagedMarkOf(pod("staged", [{ key: KEY, values: ["abc"] }]))).toEqual({ key: KEY, digest: "abc" });
    expect(stagedMarkOf(pod("staged", []))).toBeUndefined();
  });

  it.each([
    ["staged", true],
    ["stale", false],
    ["other", false],
    ["bare", false],
    ["unknown", false],
  ] as const)("node %s: staged %s", (node, staged) => {
    expect(onStagedNode(pod(node, [{ key: KEY, values: ["abc"] }]), lookup)).toBe(staged);
  });

  it("needs the pod's node and the pod's term", () => {
    expect(onStagedNode(pod(undefined, [{ key: KEY, values: ["abc"] }]), lookup)).toBe(false);
    expect(onStagedNode(pod("staged", []), lookup)).toBe(false);
  });
});

describe("ShardAgent with first-load tiers", () => {
  // No API server behind it: the tier and acknowledgement writes fail and are logged; what is
  // checked is the load the agent starts (its log) and the stalls it reports.
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: "c", server: "http://127.0.0.1:1" }],
    users: [{ name: "u" }],
    contexts: [{ name: "x", cluster: "c", user: "u" }],
    currentContext: "x",
  });
  const KEY = "staged.moe.dev/default.d";
  const shardPod = (name: string, node: string, phase: string, generation: number): V1Pod => ({
    metadata: {
      name,
      annotations: {
        "moe.dev/experts": JSON.stringify([[0, 1], [2]]),
        "moe.dev/target-generation": String(generation),
      },
    },
    spec: {
      containers: [],
      nodeName: node,
      affinity: {
        nodeAffinity: {
          preferredDuringSchedulingIgnoredDuringExecution: [
            { weight: 50, preference: { matchExpressions: [{ key: KEY, operator: "In", values: ["abc"] }] } },
          ],
        },
      },
    },
    status: { phase },
  });
  const started = (lines: string[]) =>
    lines
      .map((l) => JSON.parse(l) as { msg: string; pod?: string; tier?: string })
      .filter((l) => l.msg === "emulated first load");

  const agentWith = (lines: string[]) =>
    new ShardAgent({
      kubeConfig: kc,
      namespace: "default",
      logger: pino({ level: "info" }, { write: (s: string) => void lines.push(s) }),
      seed: 1,
      expertWeightBytes: 1,
      firstLoad: {
        // Seconds per replica: long enough that the load is still running when the test looks.
        bandwidth: { peerBytesPerSecond: 1e-3, nodeDiskBytesPerSecond: 1e-3, remoteBytesPerSecond: 1e-3 },
        peerLoading: false,
        nodeLabels: (n): Record<string, string> => (n === "staged" ? { [KEY]: "abc" } : {}),
      },
    });

  it("starts a first load only once the containers run, from the node's disk on a staged node", () => {
    const lines: string[] = [];
    const agent = agentWith(lines);
    const pending = [shardPod("a", "staged", "Pending", 1), shardPod("b", "bare", "Pending", 1)];
    agent.sync(pending, () => undefined);
    expect(started(lines)).toEqual([]);
    const running = [shardPod("a", "staged", "Running", 1), shardPod("b", "bare", "Running", 1)];
    agent.sync(running, () => undefined);
    expect(started(lines).map((l) => [l.pod, l.tier])).toEqual([
      ["a", "node-disk"],
      ["b", "remote"],
    ]);
    agent.stop();
  });

  it("a first load of a pod retargeted before it acknowledged stalls no decode step", () => {
    const lines: string[] = [];
    const agent = agentWith(lines);
    agent.sync([shardPod("a", "staged", "Running", 2)], () => undefined);
    expect(started(lines)).toHaveLength(1);
    expect(agent.takeStalls()).toEqual([]);
    agent.stop();
  });
});
