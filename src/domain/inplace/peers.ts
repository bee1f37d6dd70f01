// Peer loading (issue 19 item 2, ADR 0019 "Peers in the placement"): for each expert a shard has
// to load (a new shard's first set, or what an in-place move adds), the Ready peer it fetches the
// weights from, so the engine (or its agent) copies them GPU to GPU instead of reading the store.
//
// Pure: holders and sets in, an assignment out; deterministic whatever the order of the holders.
import type { ExpertSets } from "./sets.ts";

/** A Ready shard that can send what it serves. */
export interface PeerHolder {
  readonly name: string;
  readonly node?: string;
  /** The pod IP the engine connects to (absent until the pod has one). */
  readonly ip?: string;
  /** What it serves now (acknowledged). */
  readonly served: ExpertSets;
}

export interface ExpertPeers {
  /** The peers used, sorted by name; `layers` refers to them by index. */
  readonly pods: readonly { readonly name: string; readonly node?: string; readonly ip?: string }[];
  /** Per MoE layer, [expert, index into pods] for each expert to load that a peer holds. */
  readonly layers: readonly (readonly (readonly [number, number])[])[];
  /** Experts to load that no Ready peer holds: they come from the node's disk or the store. */
  readonly fromStore: number;
}

const byName = (a: PeerHolder, b: PeerHolder) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);

/**
 * The peer each expert in `need` but not in `have` comes from: a holder on the shard's own node
 * first (NVLink), else the holder with the fewest experts assigned so far (the sends spread over
 * the holders, whose links serialize them), then by name. The shard itself is never its own peer.
 */
export function expertPeers(
  need: ExpertSets,
  have: ExpertSets,
  holders: readonly PeerHolder[],
  self: { readonly name?: string; readonly node?: string } = {},
): ExpertPeers {
  const sorted = holders.filter((h) => h.name !== self.name).sort(byName);
  const sets = sorted.map((h) => h.served.map((row) => new Set(row)));
  const assigned = new Array<number>(sorted.length).fill(0);
  let fromStore = 0;
  const picks: [number, number][][] = need.map((row, l) => {
    const held = new Set(have[l] ?? []);
    const out: [number, number][] = [];
    for (const e of [...new Set(row)].sort((a, b) => a - b)) {
      if (held.has(e)) continue;
      let best = -1;
      for (let i = 0; i < sorted.length; i++) {
        if (!sets[i]![l]?.has(e)) continue;
        if (best < 0 || better(sorted, assigned, i, best, self.node)) best = i;
      }
      if (best < 0) fromStore++;
      else {
        assigned[best]!++;
        out.push([e, best]);
      }
    }
    return out;
  });
  // Only the peers used, renumbered in name order.
  const used = sorted.map((_, i) => i).filter((i) => assigned[i]! > 0);
  const index = new Map(used.map((i, k) => [i, k]));
  return {
    pods: used.map((i) => {
      const h = sorted[i]!;
      return { name: h.name, ...(h.node !== undefined ? { node: h.node } : {}), ...(h.ip ? { ip: h.ip } : {}) };
    }),
    layers: picks.map((row) => row.map(([e, i]) => [e, index.get(i)!] as const)),
    fromStore,
  };
}

/** Holder i is a better source than holder j: same node as the shard, then fewer assigned, then name order. */
function better(h: readonly PeerHolder[], assigned: readonly number[], i: number, j: number, node?: string): boolean {
  const local = (k: number) => (node !== undefined && h[k]!.node === node ? 0 : 1);
  if (local(i) !== local(j)) return local(i) < local(j);
  return assigned[i]! < assigned[j]!;
}
