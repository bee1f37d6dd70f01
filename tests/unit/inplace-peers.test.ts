// Issue 19 item 2: the peer each expert a shard loads comes from (src/domain/inplace/peers.ts).
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { expertPeers, type PeerHolder } from "../../src/domain/inplace/peers.ts";

const holder = (name: string, node: string, served: number[][], ip = `10.0.0.${name.length}`): PeerHolder => ({
  name,
  node,
  ip,
  served,
});

describe("expertPeers", () => {
  it("names a peer for every expert to load that a peer holds, and counts the rest as from the store", () => {
    const p = expertPeers(
      [
        [0, 1, 2],
        [3, 4],
      ],
      [[0], []],
      [holder("b", "n2", [[1, 2], [3]]), holder("a", "n1", [[1], []])],
      { name: "new", node: "n9" },
    );
    // Expert 0 of layer 0 is held already; 4 of layer 1 has no Ready holder.
    expect(p.fromStore).toBe(1);
    expect(p.pods.map((x) => x.name)).toEqual(["a", "b"]);
    // Layer 0: expert 1 to the first holder by name (a), then 2 to b (a has one already, b none).
    expect(p.layers).toEqual([
      [
        [1, 0],
        [2, 1],
      ],
      [[3, 1]],
    ]);
    expect(p.pods[1]).toEqual({ name: "b", node: "n2", ip: "10.0.0.1" });
  });

  it("prefers a holder on the shard's own node, and never the shard itself", () => {
    const served = [[0, 1]];
    const p = expertPeers(
      [[0, 1]],
      [[]],
      [holder("far", "n1", served), holder("near", "n2", served), holder("me", "n2", served)],
      {
        name: "me",
        node: "n2",
      },
    );
    expect(p.pods.map((x) => x.name)).toEqual(["near"]);
    expect(p.layers).toEqual([
      [
        [0, 0],
        [1, 0],
      ],
    ]);
  });

  const setsArb = (layers: number, experts: number) =>
    fc.array(fc.uniqueArray(fc.integer({ min: 0, max: experts - 1 }), { maxLength: experts }), {
      minLength: layers,
      maxLength: layers,
    });
  const worldArb = fc.record({
    need: setsArb(3, 8),
    have: setsArb(3, 8),
    holders: fc.uniqueArray(
      fc.record({
        name: fc.constantFrom("p0", "p1", "p2", "p3", "p4"),
        node: fc.constantFrom("n0", "n1"),
        served: setsArb(3, 8),
      }),
      { selector: (h) => h.name, maxLength: 5 },
    ),
    node: fc.constantFrom("n0", "n1"),
  });

  it("every named peer holds its expert; each expert to load is named once or counted from the store", () => {
    fc.assert(
      fc.property(worldArb, ({ need, have, holders, node }) => {
        const p = expertPeers(need, have, holders, { node });
        need.forEach((row, l) => {
          const toLoad = [...new Set(row)].filter((e) => !(have[l] ?? []).includes(e));
          const named = p.layers[l]!.map(([e]) => e);
          expect(new Set(named).size).toBe(named.length);
          for (const [e, i] of p.layers[l]!) {
            expect(toLoad).toContain(e);
            const h = holders.find((x) => x.name === p.pods[i]!.name)!;
            expect(h.served[l]).toContain(e);
            // A holder on the shard's node is used whenever one holds the expert.
            if (holders.some((x) => x.node === node && x.served[l]?.includes(e))) expect(h.node).toBe(node);
          }
        });
        const toLoadTotal = need.reduce(
          (s, row, l) => s + [...new Set(row)].filter((e) => !(have[l] ?? []).includes(e)).length,
          0,
        );
        const namedTotal = p.layers.reduce((s, row) => s + row.length, 0);
        expect(namedTotal + p.fromStore).toBe(toLoadTotal);
        // Deterministic whatever the holders' order.
        expect(expertPeers(need, have, [...holders].reverse(), { node })).toEqual(p);
      }),
    );
  });
});
