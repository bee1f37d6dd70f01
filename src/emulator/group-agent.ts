// The group side of in-place placement under topology WideEP (docs/adr/0021-wide-ep-groups.md
// "Running groups move in place"), played by the group emulator for every emulated EP group:
// - a group that is starting (not every pod Ready) reads the published placement, as an engine
//   reads --init-expert-location at start; once it serves, its placement changes only in place;
// - a leader pod whose moe.dev/placement-version differs from the version the group serves starts a
//   move to the published placement (the ConfigMap's version, at or above the target): the experts
//   each GPU lacks arrive from a GPU of the group that holds them (NVLink on the same node, the
//   network across nodes) or from storage, layer chunk by layer chunk under the stall bound
//   (estimateMoveCost, the operator's own estimate); each chunk stalls the group's decode for its
//   duration, and the group serves its old placement until the last chunk is done;
// - it then acknowledges on the leader through pods/status with moe.dev/placement-applied, "serving
//   placement version V" (also once a group first serves: the version it started with); a seeded
//   share of targets is refused ("refused placement version V: ...; serving placement version U").
// No I/O here: the server writes the acknowledgements this returns.
import type { Placement } from "../domain/placement/types.ts";
import { estimateMoveCost, type MoveCostPolicy } from "../domain/placement/move-cost.ts";
import { createRng, type Rng } from "../domain/rng.ts";

export interface GroupLeaderView {
  readonly group: number;
  readonly pod: string;
  /** Every pod of the group is Ready (the engine runs). */
  readonly ready: boolean;
  /** moe.dev/placement-version on the leader: the operator's target. */
  readonly targetVersion?: number;
  /** The version the leader's moe.dev/placement-applied condition shows now (as the API server has it). */
  readonly shownVersion?: number;
  /** The version the leader's condition shows refused. */
  readonly shownRefused?: number;
}

export interface PublishedPlacement {
  readonly version: number;
  readonly placement: Placement;
}

export interface GroupAck {
  readonly pod: string;
  readonly status: "True" | "False";
  readonly reason: "Applied" | "Refused";
  readonly message: string;
}

export interface GroupAgentOptions {
  readonly moveCost: MoveCostPolicy;
  readonly seed: number;
  /** Share of targets refused, 0..1 (default 0). */
  readonly refuseRate?: number;
}

interface Move {
  readonly to: PublishedPlacement;
  readonly startMs: number;
  /** Chunk stalls in seconds, in order. */
  readonly chunks: readonly number[];
  /** Chunks whose stall was reported. */
  done: number;
}

interface GroupState {
  pod: string;
  serving: boolean;
  current?: PublishedPlacement;
  move?: Move;
  /** Last acknowledgement written (re-sent when the API server does not show it a while later). */
  acked?: { message: string; atMs: number };
  refused?: number;
}

const REACK_AFTER_MS = 3_000;

export class GroupPlacementAgent {
  readonly #o: GroupAgentOptions;
  readonly #rng: Rng;
  readonly #groups = new Map<number, GroupState>();
  #stalls = new Map<number, number[]>();

  constructor(o: GroupAgentOptions) {
    this.#o = o;
    this.#rng = createRng(o.seed);
  }

  /** The placement group `g` serves (undefined before any is published). */
  placementOf(group: number): Placement | undefined {
    return this.#groups.get(group)?.current?.placement;
  }

  versionOf(group: number): number | undefined {
    return this.#groups.get(group)?.current?.version;
  }

  /** Whether group `g` is moving experts now, and to which version. */
  movingTo(group: number): number | undefined {
    return this.#groups.get(group)?.move?.to.version;
  }

  /** Decode stalls (ms) of each group's chunks finished since the last call. */
  takeStalls(): Map<number, number[]> {
    const out = this.#stalls;
    this.#stalls = new Map();
    return out;
  }

  /** One step: the leaders as the cluster shows them and the published placement; returns the acknowledgements to write. */
  sync(nowMs: number, leaders: readonly GroupLeaderView[], published: PublishedPlacement | undefined): GroupAck[] {
    const seen = new Set<number>();
    const acks: GroupAck[] = [];
    for (const l of leaders) {
      seen.add(l.group);
      let s = this.#groups.get(l.group);
      if (!s || s.pod !== l.pod) {
        s = { pod: l.pod, serving: false };
        this.#groups.set(l.group, s);
      }
      if (!l.ready) {
        // Starting (or restarting): the engine reads the ConfigMap when it starts.
        Object.assign(s, { serving: false, current: published ?? s.current, move: undefined, acked: undefined });
        continue;
      }
      s.serving = true;
      this.#advance(l.group, s, nowMs);
      const target = l.targetVersion;
      const servedV = s.current?.version ?? 0;
      if (
        !s.move &&
        target !== undefined &&
        target !== servedV &&
        published?.version !== servedV &&
        s.refused !== target &&
        published &&
        published.version >= target
      ) {
        if (this.#rng.next() < (this.#o.refuseRate ?? 0)) {
          s.refused = target;
          s.acked = undefined;
        } else {
          const cost = estimateMoveCost(s.current?.placement, published.placement, this.#o.moveCost);
          s.move = { to: published, startMs: nowMs, chunks: cost.chunks.map((c) => c.stallSeconds), done: 0 };
          this.#advance(l.group, s, nowMs);
        }
      }
      const ack =
        s.refused === target && target !== undefined ? this.#refusal(l, s, target, nowMs) : this.#ackFor(l, s, nowMs);
      if (ack) acks.push(ack);
    }
    for (const g of [...this.#groups.keys()]) if (!seen.has(g)) this.#groups.delete(g);
    return acks;
  }

  /** The refusal of `target`, when the leader does not show it (re-sent after a while). */
  #refusal(l: GroupLeaderView, s: GroupState, target: number, nowMs: number): GroupAck | undefined {
    if (l.shownRefused === target) return undefined;
    const message =
      `refused placement version ${target}: emulated refusal` +
      (s.current ? `; serving placement version ${s.current.version}` : "");
    return this.#send(s, nowMs, { pod: l.pod, status: s.current ? "True" : "False", reason: "Refused", message });
  }

  /** `ack`, unless the same message was sent less than REACK_AFTER_MS ago. */
  #send(s: GroupState, nowMs: number, ack: GroupAck): GroupAck | undefined {
    if (s.acked?.message === ack.message && nowMs - s.acked.atMs < REACK_AFTER_MS) return undefined;
    s.acked = { message: ack.message, atMs: nowMs };
    return ack;
  }

  /** Reports the chunks finished by now, and switches the group to the new placement after the last. */
  #advance(group: number, s: GroupState, nowMs: number): void {
    const m = s.move;
    if (!m) return;
    let end = m.startMs;
    for (let i = 0; i < m.chunks.length; i++) {
      end += m.chunks[i]! * 1000;
      if (i >= m.done && end <= nowMs) {
        const list = this.#stalls.get(group) ?? [];
        list.push(m.chunks[i]! * 1000);
        this.#stalls.set(group, list);
        m.done = i + 1;
      }
    }
    if (m.done >= m.chunks.length && end <= nowMs) {
      s.current = m.to;
      s.move = undefined;
      s.acked = undefined;
    }
  }

  /** The acknowledgement of what the group serves, when the leader does not show it (re-sent after a while). */
  #ackFor(l: GroupLeaderView, s: GroupState, nowMs: number): GroupAck | undefined {
    if (!s.current || s.move || l.shownVersion === s.current.version) return undefined;
    const message = `serving placement version ${s.current.version}`;
    return this.#send(s, nowMs, { pod: l.pod, status: "True", reason: "Applied", message });
  }
}
