// The placement core's priority structures against naive references on random inputs.
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { HeapWalker, IndexedHeap, MinSegmentTree, sortIdsByKey } from "../../src/domain/placement/heap.ts";

/** Ids ordered by (key, tie, id): the order every structure must reproduce. */
function naiveOrder(entries: Map<number, { key: number; tie: number }>): number[] {
  return [...entries.keys()].sort((a, b) => {
    const x = entries.get(a)!;
    const y = entries.get(b)!;
    return x.key !== y.key ? (x.key < y.key ? -1 : 1) : x.tie !== y.tie ? (x.tie < y.tie ? -1 : 1) : a - b;
  });
}

// Few distinct keys and ties so that equal keys (and equal ties) are common.
const keyArb = fc.oneof(
  fc.integer({ min: -3, max: 3 }),
  fc.double({ min: -1e6, max: 1e6, noNaN: true }),
  fc.constantFrom(Infinity, -Infinity),
);
const tieArb = fc.integer({ min: 0, max: 3 });
const op = fc.oneof(
  fc.record({ kind: fc.constant("set" as const), id: fc.nat(), key: keyArb, tie: tieArb }),
  fc.record({ kind: fc.constant("remove" as const), id: fc.nat() }),
  fc.record({ kind: fc.constant("pop" as const) }),
);

describe("IndexedHeap", () => {
  it("matches a sorted reference under random set / remove / pop", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 40 }), fc.array(op, { maxLength: 200 }), (capacity, ops) => {
        const heap = new IndexedHeap(capacity);
        const ref = new Map<number, { key: number; tie: number }>();
        for (const o of ops) {
          if (o.kind === "set") {
            const id = o.id % capacity;
            heap.set(id, o.key, o.tie);
            ref.set(id, { key: o.key, tie: o.tie });
          } else if (o.kind === "remove") {
            const id = o.id % capacity;
            heap.remove(id);
            ref.delete(id);
          } else {
            const expected = naiveOrder(ref)[0] ?? -1;
            expect(heap.pop()).toBe(expected);
            ref.delete(expected);
          }
          expect(heap.length).toBe(ref.size);
          expect(heap.top()).toBe(naiveOrder(ref)[0] ?? -1);
          for (let id = 0; id < capacity; id++) expect(heap.has(id)).toBe(ref.has(id));
        }
        // Draining gives the full order.
        const drained: number[] = [];
        for (let id = heap.pop(); id >= 0; id = heap.pop()) drained.push(id);
        expect(drained).toEqual(naiveOrder(ref));
      }),
      { numRuns: 300 },
    );
  });

  it("build() heapifies pre-written keys; the default tie is the id", () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(keyArb, tieArb), { minLength: 1, maxLength: 60 }), (pairs) => {
        const heap = new IndexedHeap(pairs.length);
        const ref = new Map<number, { key: number; tie: number }>();
        pairs.forEach(([key, tie], id) => {
          heap.key[id] = key;
          heap.tie[id] = tie;
          ref.set(id, { key, tie });
        });
        heap.build(pairs.length);
        const drained: number[] = [];
        for (let id = heap.pop(); id >= 0; id = heap.pop()) drained.push(id);
        expect(drained).toEqual(naiveOrder(ref));

        const byId = new IndexedHeap(pairs.length);
        pairs.forEach(([key], id) => byId.set(id, key));
        const ref2 = new Map(pairs.map(([key], id) => [id, { key, tie: id }]));
        const drained2: number[] = [];
        for (let id = byId.pop(); id >= 0; id = byId.pop()) drained2.push(id);
        expect(drained2).toEqual(naiveOrder(ref2));
      }),
      { numRuns: 200 },
    );
  });
});

describe("HeapWalker", () => {
  it("visits any prefix of the heap in ascending order and leaves the heap as it was", () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(keyArb, tieArb), { maxLength: 80 }), fc.nat({ max: 90 }), (pairs, take) => {
        const heap = new IndexedHeap(Math.max(1, pairs.length));
        const ref = new Map<number, { key: number; tie: number }>();
        pairs.forEach(([key, tie], id) => {
          heap.set(id, key, tie);
          ref.set(id, { key, tie });
        });
        const walker = new HeapWalker();
        walker.start(heap);
        const seen: number[] = [];
        for (let i = 0; i < take; i++) {
          const peeked = walker.peek();
          const id = walker.next();
          expect(id).toBe(peeked);
          if (id < 0) break;
          seen.push(id);
        }
        expect(seen).toEqual(naiveOrder(ref).slice(0, take));
        // The heap itself is untouched.
        expect(heap.length).toBe(pairs.length);
        const drained: number[] = [];
        for (let id = heap.pop(); id >= 0; id = heap.pop()) drained.push(id);
        expect(drained).toEqual(naiveOrder(ref));
      }),
      { numRuns: 300 },
    );
  });
});

describe("IndexedHeap.smallest", () => {
  it("returns the first k ids in order, skipping one, and leaves the heap as it was", () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(keyArb, tieArb), { maxLength: 80 }),
        fc.nat({ max: 12 }),
        fc.integer({ min: -1, max: 90 }),
        (pairs, k, skip) => {
          const heap = new IndexedHeap(Math.max(1, pairs.length));
          const ref = new Map<number, { key: number; tie: number }>();
          pairs.forEach(([key, tie], id) => {
            heap.set(id, key, tie);
            ref.set(id, { key, tie });
          });
          const out = new Int32Array(Math.max(1, k));
          const n = heap.smallest(k, skip, out, new Int32Array(pairs.length + 2));
          const expected = naiveOrder(ref)
            .filter((id) => id !== skip)
            .slice(0, k);
          expect([...out.subarray(0, n)]).toEqual(expected);
          const drained: number[] = [];
          for (let id = heap.pop(); id >= 0; id = heap.pop()) drained.push(id);
          expect(drained).toEqual(naiveOrder(ref));
        },
      ),
      { numRuns: 400 },
    );
  });
});

describe("MinSegmentTree", () => {
  const scenario = fc.integer({ min: 1, max: 40 }).chain((n) =>
    fc.record({
      n: fc.constant(n),
      values: fc.array(
        fc.oneof(fc.constant(Infinity), fc.integer({ min: 0, max: 6 }), fc.double({ min: 0, max: 100, noNaN: true })),
        { minLength: n, maxLength: n },
      ),
      blocked: fc.array(fc.boolean(), { minLength: n, maxLength: n }),
      updates: fc.array(
        fc.tuple(fc.nat({ max: n - 1 }), fc.oneof(fc.constant(Infinity), fc.integer({ min: 0, max: 6 }))),
        { maxLength: 20 },
      ),
      top: fc.double({ min: 0, max: 120, noNaN: true }),
      floor: fc.oneof(fc.constant(-Infinity), fc.double({ min: 0, max: 120, noNaN: true })),
      add: fc.double({ min: 0, max: 10, noNaN: true }),
      scale: fc.double({ min: 0.01, max: 3, noNaN: true }),
      minGain: fc.double({ min: 0, max: 1, noNaN: true }),
    }),
  );

  it("minUnblocked and leftmostScoring agree with a scan", () => {
    fc.assert(
      fc.property(scenario, (s) => {
        const tree = new MinSegmentTree(s.n);
        const values = [...s.values];
        values.forEach((v, i) => tree.set(i, v));
        for (const [i, v] of s.updates) {
          tree.set(i, v);
          values[i] = v;
        }
        const blocked = Uint8Array.from(s.blocked, (b) => (b ? 1 : 0));
        let min = Infinity;
        for (let i = 0; i < s.n; i++) if (!blocked[i] && values[i]! < min) min = values[i]!;
        expect(tree.minUnblocked(blocked)).toBe(min);
        for (let i = 0; i < s.n; i++) expect(tree.get(i)).toBe(values[i]);

        const score = (v: number): number => (s.top - Math.max(s.floor, v + s.add)) * s.scale;
        const gain = (v: number): number => s.top - Math.max(s.floor, v + s.add);
        // Targets: the best score among unblocked positions (what the planner asks for) and a few others.
        const targets = [min < Infinity ? score(min) : 0, 0, s.scale, -1];
        for (const target of targets) {
          let expected = -1;
          for (let i = 0; i < s.n; i++) {
            const v = values[i]!;
            if (!blocked[i] && v < Infinity && gain(v) > s.minGain && score(v) >= target) {
              expected = i;
              break;
            }
          }
          expect(tree.leftmostScoring(s.top, s.floor, s.add, s.scale, s.minGain, target, blocked)).toBe(expected);
        }
        tree.clear();
        expect(tree.minUnblocked(new Uint8Array(s.n))).toBe(Infinity);
      }),
      { numRuns: 400 },
    );
  });
});

describe("sortIdsByKey", () => {
  it("sorts ids by (key, id) like a comparator sort", () => {
    fc.assert(
      fc.property(
        fc.array(fc.oneof(fc.integer({ min: -2, max: 2 }), fc.double({ noNaN: true })), { maxLength: 300 }),
        (keys) => {
          const key = Float64Array.from(keys);
          const ids = Int32Array.from(keys.map((_, i) => i));
          // Start from a shuffled (but deterministic) permutation.
          ids.reverse();
          sortIdsByKey(ids, ids.length, key, new Int32Array(ids.length));
          const expected = keys
            .map((_, i) => i)
            .sort((a, b) => (key[a]! !== key[b]! ? (key[a]! < key[b]! ? -1 : 1) : a - b));
          expect([...ids]).toEqual(expected);
        },
      ),
      { numRuns: 300 },
    );
  });
});
