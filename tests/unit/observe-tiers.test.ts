// The operator's side of cold-start tiers (issue 19, ADR 0019): the tier each shard pod reports
// (moe.dev/load-tier) tags its cold start, and the next new shard's tier decides which learned lead
// the capacity decision uses.
import { describe, expect, it } from "vitest";
import type { V1Pod } from "@kubernetes/client-node";
import {
  coldStartInputs,
  loadTierOf,
  newColdStarts,
  nextLoadTier,
  nextNodeType,
  nodeTypeOf,
} from "../../src/controllers/moedeployment/observe.ts";
import type { ShardPod } from "../../src/controllers/moedeployment/codecs/shard-pod.ts";
import { coldStartStatus } from "../../src/controllers/moedeployment/status.ts";
import type { Decision } from "../../src/domain/decide.ts";

const T = Date.parse("2026-06-01T12:00:00Z");

function v1(uid: string, readyAfterS: number | undefined, tier?: string): V1Pod {
  return {
    metadata: {
      uid,
      name: uid,
      creationTimestamp: new Date(T),
      annotations: tier ? { "moe.dev/load-tier": tier } : {},
    },
    status:
      readyAfterS === undefined
        ? {}
        : {
            conditions: [{ type: "Ready", status: "True", lastTransitionTime: new Date(T + readyAfterS * 1000) }],
          },
  };
}

const shard = (i: number, experts: number[][], ready: boolean, tier?: string): ShardPod => ({
  name: `s${i}`,
  shardIndex: i,
  setHash: `h${i}`,
  experts,
  ready,
  terminating: false,
  pod: v1(`s${i}`, ready ? 10 : undefined, tier),
});

describe("cold starts tagged by the tier the pod reported", () => {
  it("measures creation to Ready once per pod and keeps the reported tier (unknown values ignored)", () => {
    const seen = new Set<string>();
    const pods = [v1("a", 12, "peer"), v1("b", 95, "remote"), v1("c", 40, "floppy"), v1("d", undefined, "peer")];
    const first = newColdStarts(pods, seen);
    expect(first).toEqual([
      { durationMs: 12_000, tier: "peer" },
      { durationMs: 95_000, tier: "remote" },
      { durationMs: 40_000 },
    ]);
    expect(newColdStarts(pods, seen)).toEqual([]);
    expect(coldStartInputs(first)).toEqual({
      coldStartDurationsMs: [12_000, 95_000, 40_000],
      coldStartsByTier: [
        { tier: "peer", durationMs: 12_000 },
        { tier: "remote", durationMs: 95_000 },
      ],
    });
    expect(loadTierOf(v1("x", 1, "node-disk"))).toBe("node-disk");
  });

  it("ends an in-place pod's cold start at its first acknowledgement, not at a Ready that came first", () => {
    const at = (s: number) => new Date(T + s * 1000);
    // kwok: Ready at 3 s, the readiness gate's condition True without our message, no tier yet.
    const early: V1Pod = {
      metadata: { uid: "ip", name: "ip", creationTimestamp: at(0), annotations: { "moe.dev/target-generation": "1" } },
      status: {
        conditions: [
          { type: "Ready", status: "True", lastTransitionTime: at(3) },
          { type: "moe.dev/placement-applied", status: "True", lastTransitionTime: at(3) },
        ],
      },
    };
    const seen = new Set<string>();
    expect(newColdStarts([early], seen)).toEqual([]);
    expect(seen.has("ip")).toBe(false);
    // The engine loaded from the staged disk, wrote the tier, then acknowledged generation 1 at 21 s.
    const acked: V1Pod = {
      metadata: {
        ...early.metadata,
        annotations: { ...early.metadata!.annotations, "moe.dev/load-tier": "node-disk" },
      },
      status: {
        conditions: [
          { type: "Ready", status: "True", lastTransitionTime: at(3) },
          {
            type: "moe.dev/placement-applied",
            status: "True",
            reason: "Applied",
            message: "serving generation 1",
            lastTransitionTime: at(21),
          },
        ],
      },
    };
    expect(newColdStarts([acked], seen)).toEqual([{ durationMs: 21_000, tier: "node-disk" }]);
    expect(newColdStarts([acked], seen)).toEqual([]);
  });

  it("expects peers next only when a pod loaded from peers and every expert has a Ready holder", () => {
    const full = [
      [0, 1, 2, 3],
      [0, 1, 2, 3],
    ];
    const half = [
      [0, 1],
      [0, 1],
    ];
    const rest = [
      [2, 3],
      [2, 3],
    ];
    // No pod reported a tier: one pooled lead.
    expect(nextLoadTier([shard(0, full, true)], 2, 4)).toBeUndefined();
    expect(nextLoadTier([shard(0, full, true, "peer")], 2, 4)).toBe("peer");
    // Every pod loaded from the store: the engine does not load from peers.
    expect(nextLoadTier([shard(0, full, true, "remote")], 2, 4)).toBe("remote");
    // An expert whose only holder is not Ready: a new shard needing it loads from the store.
    expect(nextLoadTier([shard(0, half, true, "peer"), shard(1, rest, false, "peer")], 2, 4)).toBe("remote");
    expect(nextLoadTier([shard(0, half, true, "peer"), shard(1, rest, true)], 2, 4)).toBe("peer");
  });

  it("expects the node's disk when a staged node has a free GPU and peers cannot send every expert", () => {
    const full = [
      [0, 1, 2, 3],
      [0, 1, 2, 3],
    ];
    const staged = [{ staged: true, freeGpus: 2 }];
    // No pod reported a tier, but a staged node has room: the next shard lands there (it prefers it).
    expect(nextLoadTier([shard(0, full, true)], 2, 4, staged)).toBe("node-disk");
    expect(nextLoadTier([shard(0, full, true, "remote")], 2, 4, staged)).toBe("node-disk");
    // Peers still win when the engine loads from them and every expert has a Ready holder.
    expect(nextLoadTier([shard(0, full, true, "peer")], 2, 4, staged)).toBe("peer");
    // A staged node that is full, or a node that is not staged, does not count.
    expect(nextLoadTier([shard(0, full, true, "remote")], 2, 4, [{ staged: true, freeGpus: 0 }])).toBe("remote");
    expect(nextLoadTier([shard(0, full, true)], 2, 4, [{ freeGpus: 8 }])).toBeUndefined();
  });

  it("reports the lead the decision used and the median cold start per tier in status", () => {
    const decision = {
      capacity: { signals: { leadTimeMs: 75_040 } },
      nextLoadTier: "peer",
      nextCapacityState: {
        tierLeadTime: { version: 1, byTier: { peer: { version: 1, samplesMs: [10_000, 14_000, 12_000] } } },
      },
    } as unknown as Decision;
    expect(coldStartStatus({ decision })).toEqual({
      leadSeconds: 75,
      nextLoadTier: "peer",
      tiers: [{ tier: "peer", samples: 3, medianSeconds: 12 }],
    });
  });

  it("tags each cold start with its node's type (instance type, else GPU product) and reports them per type", () => {
    expect(
      nodeTypeOf({
        metadata: { labels: { "node.kubernetes.io/instance-type": "p5.48xlarge", "nvidia.com/gpu.product": "H100" } },
      }),
    ).toBe("p5.48xlarge");
    expect(nodeTypeOf({ metadata: { labels: { "nvidia.com/gpu.product": "H100" } } })).toBe("H100");
    expect(nodeTypeOf({ metadata: { labels: {} } })).toBeUndefined();
    const onNode = (pod: V1Pod, node: string): V1Pod => ({ ...pod, spec: { containers: [], nodeName: node } });
    const types: Record<string, string> = { n1: "p5.48xlarge" };
    const starts = newColdStarts(
      [onNode(v1("a", 12, "peer"), "n1"), onNode(v1("b", 30, "remote"), "n2")],
      new Set(),
      (n) => types[n],
    );
    expect(starts).toEqual([
      { durationMs: 12_000, tier: "peer", nodeType: "p5.48xlarge" },
      { durationMs: 30_000, tier: "remote" },
    ]);
    expect(coldStartInputs(starts).coldStartsByTier).toEqual([
      { tier: "peer", durationMs: 12_000, nodeType: "p5.48xlarge" },
      { tier: "remote", durationMs: 30_000 },
    ]);
    const decision = {
      capacity: { signals: { leadTimeMs: 20_000 } },
      nextLoadTier: "peer",
      nextNodeType: "p5.48xlarge",
      nextCapacityState: {
        tierLeadTime: {
          version: 1,
          byTier: { peer: { version: 1, samplesMs: [10_000, 14_000, 30_000] } },
          byTierNode: {
            "peer/p5.48xlarge": { version: 1, samplesMs: [10_000, 14_000] },
            "peer/a3-highgpu-8g": { version: 1, samplesMs: [30_000] },
          },
        },
      },
    } as unknown as Decision;
    expect(coldStartStatus({ decision })).toMatchObject({
      nextNodeType: "p5.48xlarge",
      byNodeType: [
        { tier: "peer", nodeType: "a3-highgpu-8g", samples: 1, medianSeconds: 30 },
        { tier: "peer", nodeType: "p5.48xlarge", samples: 2, medianSeconds: 12 },
      ],
    });
  });

  it("expects the next shard on the node type with the most free GPUs (staged nodes only for node-disk)", () => {
    const nodes = [
      { freeGpus: 2, nodeType: "h100" },
      { freeGpus: 3, nodeType: "h200" },
      { freeGpus: 2, nodeType: "h100", staged: true },
      { freeGpus: 0, nodeType: "b200", staged: true },
      { freeGpus: 8 },
    ];
    expect(nextNodeType(nodes, "remote")).toBe("h100");
    expect(nextNodeType(nodes, undefined)).toBe("h100");
    expect(nextNodeType(nodes, "node-disk")).toBe("h100");
    expect(
      nextNodeType(
        [
          { freeGpus: 3, nodeType: "b" },
          { freeGpus: 3, nodeType: "a" },
        ],
        "peer",
      ),
    ).toBe("a");
    expect(nextNodeType([{ freeGpus: 0, nodeType: "a" }, { freeGpus: 4 }], "remote")).toBeUndefined();
    expect(nextNodeType([{ freeGpus: 4, nodeType: "a" }], "node-disk")).toBeUndefined();
  });
});
