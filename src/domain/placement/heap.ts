// Priority structures of the placement core: an indexed binary heap (ids 0..n-1 with updatable
// keys), an ascending walk over a heap that leaves it untouched, and a min segment tree over
// positions. Orders are total and deterministic: (key, tie, id) ascending.

/**
 * Binary min-heap of integer ids 0..capacity-1 ordered by (key, tie, id). Each id is in the heap at
 * most once; `set` inserts or moves it. For a max-heap store negated keys. Keys must not be NaN
 * (the order would not be total); ties are 32-bit integers.
 */
export class IndexedHeap {
  /** key[id] and tie[id]: valid while id is in the heap. */
  readonly key: Float64Array;
  readonly tie: Int32Array;
  /** items[position] = id. */
  private readonly items: Int32Array;
  /** pos[id] = position, or -1 when id is not in the heap. */
  private readonly pos: Int32Array;
  private size = 0;

  constructor(capacity: number) {
    const n = Math.max(1, capacity);
    this.key = new Float64Array(n);
    this.tie = new Int32Array(n);
    this.items = new Int32Array(n);
    this.pos = new Int32Array(n).fill(-1);
  }

  get length(): number {
    return this.size;
  }

  get capacity(): number {
    return this.pos.length;
  }

  has(id: number): boolean {
    return this.pos[id]! >= 0;
  }

  /** The least id, or -1 when empty. */
  top(): number {
    return this.size > 0 ? this.items[0]! : -1;
  }

  /** The id at heap position p (0 <= p < length); children of p are 2p+1 and 2p+2. */
  at(p: number): number {
    return this.items[p]!;
  }

  /** (key, tie, id) of a strictly before b. */
  before(a: number, b: number): boolean {
    const ka = this.key[a]!;
    const kb = this.key[b]!;
    if (ka !== kb) return ka < kb;
    const ta = this.tie[a]!;
    const tb = this.tie[b]!;
    if (ta !== tb) return ta < tb;
    return a < b;
  }

  /**
   * Make the heap hold exactly ids[0..count) (distinct), with their keys and ties already written
   * to `key` and `tie`, in O(count); without `ids`, the ids 0..count-1.
   */
  build(count: number, ids?: ArrayLike<number>): void {
    this.clear();
    for (let p = 0; p < count; p++) {
      const id = ids === undefined ? p : ids[p]!;
      this.items[p] = id;
      this.pos[id] = p;
    }
    this.size = count;
    for (let p = (count >> 1) - 1; p >= 0; p--) this.down(p);
  }

  /** Insert id, or move it to its new place when already present. */
  set(id: number, key: number, tie: number = id): void {
    const p = this.pos[id]!;
    if (p >= 0 && this.key[id] === key && this.tie[id] === tie) return;
    this.key[id] = key;
    this.tie[id] = tie;
    if (p < 0) {
      const at = this.size++;
      this.items[at] = id;
      this.pos[id] = at;
      this.up(at);
    } else if (!this.up(p)) {
      this.down(p);
    }
  }

  remove(id: number): void {
    const p = this.pos[id]!;
    if (p < 0) return;
    this.pos[id] = -1;
    const last = this.items[--this.size]!;
    if (p === this.size) return;
    this.items[p] = last;
    this.pos[last] = p;
    if (!this.up(p)) this.down(p);
  }

  /** Remove and return the least id (-1 when empty). */
  pop(): number {
    if (this.size === 0) return -1;
    const id = this.items[0]!;
    this.remove(id);
    return id;
  }

  clear(): void {
    for (let p = 0; p < this.size; p++) this.pos[this.items[p]!] = -1;
    this.size = 0;
  }

  /**
   * The k first ids in heap order, skipping `skip`, written ascending to out[0..]; returns how
   * many. A pruned depth-first walk: a subtree is entered only while its root can still make the
   * first k, so it visits O(k) positions beyond those returned.
   */
  smallest(k: number, skip: number, out: Int32Array, stack: Int32Array): number {
    if (k <= 0 || this.size === 0) return 0;
    const items = this.items;
    let n = 0;
    let sp = 0;
    stack[sp++] = 0;
    while (sp > 0) {
      const p = stack[--sp]!;
      const id = items[p]!;
      if (n === k && !this.before(id, out[k - 1]!)) continue;
      if (id !== skip) {
        let at = n < k ? n++ : k - 1;
        while (at > 0 && this.before(id, out[at - 1]!)) {
          out[at] = out[at - 1]!;
          at -= 1;
        }
        out[at] = id;
      }
      const child = 2 * p + 1;
      if (child < this.size) stack[sp++] = child;
      if (child + 1 < this.size) stack[sp++] = child + 1;
    }
    return n;
  }

  /** Sift the item at p toward the root; true when it moved. */
  private up(p: number): boolean {
    const items = this.items;
    const id = items[p]!;
    let at = p;
    while (at > 0) {
      const parent = (at - 1) >> 1;
      const other = items[parent]!;
      if (!this.before(id, other)) break;
      items[at] = other;
      this.pos[other] = at;
      at = parent;
    }
    items[at] = id;
    this.pos[id] = at;
    return at !== p;
  }

  private down(p: number): void {
    const items = this.items;
    const n = this.size;
    const id = items[p]!;
    let at = p;
    for (;;) {
      let child = 2 * at + 1;
      if (child >= n) break;
      if (child + 1 < n && this.before(items[child + 1]!, items[child]!)) child += 1;
      const other = items[child]!;
      if (!this.before(other, id)) break;
      items[at] = other;
      this.pos[other] = at;
      at = child;
    }
    items[at] = id;
    this.pos[id] = at;
  }
}

/**
 * Visits a heap's ids in ascending order without changing the heap: a small auxiliary heap of
 * heap positions (the frontier). Taking k ids costs O(k log k), independent of the heap's size.
 * The walked heap must not change during a walk.
 */
export class HeapWalker {
  private frontier = new Int32Array(16);
  private size = 0;
  private heap: IndexedHeap | null = null;

  start(heap: IndexedHeap): void {
    this.heap = heap;
    this.size = 0;
    if (heap.length > 0) this.push(0);
  }

  /** The next id in ascending order without consuming it; -1 when the heap is exhausted. */
  peek(): number {
    return this.size > 0 ? this.heap!.at(this.frontier[0]!) : -1;
  }

  /** Consume and return the next id; -1 when exhausted. */
  next(): number {
    if (this.size === 0) return -1;
    const heap = this.heap!;
    const p = this.frontier[0]!;
    const last = this.frontier[--this.size]!;
    if (this.size > 0) {
      // Sift `last` down from the root.
      let at = 0;
      const lastId = heap.at(last);
      for (;;) {
        let child = 2 * at + 1;
        if (child >= this.size) break;
        if (child + 1 < this.size && heap.before(heap.at(this.frontier[child + 1]!), heap.at(this.frontier[child]!)))
          child += 1;
        if (!heap.before(heap.at(this.frontier[child]!), lastId)) break;
        this.frontier[at] = this.frontier[child]!;
        at = child;
      }
      this.frontier[at] = last;
    }
    const n = heap.length;
    if (2 * p + 1 < n) this.push(2 * p + 1);
    if (2 * p + 2 < n) this.push(2 * p + 2);
    return heap.at(p);
  }

  private push(p: number): void {
    if (this.size === this.frontier.length) {
      const grown = new Int32Array(this.frontier.length * 2);
      grown.set(this.frontier);
      this.frontier = grown;
    }
    const heap = this.heap!;
    const id = heap.at(p);
    let at = this.size++;
    while (at > 0) {
      const parent = (at - 1) >> 1;
      if (!heap.before(id, heap.at(this.frontier[parent]!))) break;
      this.frontier[at] = this.frontier[parent]!;
      at = parent;
    }
    this.frontier[at] = p;
  }
}

/**
 * Sort ids ascending by (key[id], id) in place (stable merge sort on typed arrays, no comparator
 * calls). `tmp` must be at least as long as `ids`.
 */
export function sortIdsByKey(ids: Int32Array, n: number, key: Float64Array, tmp: Int32Array): void {
  // Insertion sort for short runs, then bottom-up merges between ids and tmp.
  const RUN = 16;
  for (let lo = 0; lo < n; lo += RUN) {
    const hi = Math.min(n, lo + RUN);
    for (let i = lo + 1; i < hi; i++) {
      const v = ids[i]!;
      const kv = key[v]!;
      let j = i - 1;
      while (j >= lo) {
        const u = ids[j]!;
        const ku = key[u]!;
        if (ku < kv || (ku === kv && u < v)) break;
        ids[j + 1] = u;
        j -= 1;
      }
      ids[j + 1] = v;
    }
  }
  let src = ids;
  let dst = tmp;
  for (let width = RUN; width < n; width *= 2) {
    for (let lo = 0; lo < n; lo += 2 * width) {
      const mid = Math.min(n, lo + width);
      const hi = Math.min(n, lo + 2 * width);
      let i = lo;
      let j = mid;
      let k = lo;
      while (i < mid && j < hi) {
        const a = src[i]!;
        const b = src[j]!;
        const ka = key[a]!;
        const kb = key[b]!;
        if (kb < ka || (kb === ka && b < a)) {
          dst[k++] = b;
          j += 1;
        } else {
          dst[k++] = a;
          i += 1;
        }
      }
      while (i < mid) dst[k++] = src[i++]!;
      while (j < hi) dst[k++] = src[j++]!;
    }
    const t = src;
    src = dst;
    dst = t;
  }
  if (src !== ids) ids.set(src.subarray(0, n));
}

/** Min segment tree over positions 0..n-1 (value +Infinity = absent). */
export class MinSegmentTree {
  readonly n: number;
  /** Leaves start at `base`; node i has children 2i and 2i+1; min[1] is the overall minimum. */
  readonly base: number;
  readonly min: Float64Array;

  constructor(n: number) {
    this.n = n;
    let base = 1;
    while (base < n) base *= 2;
    this.base = base;
    this.min = new Float64Array(2 * base).fill(Infinity);
  }

  get(i: number): number {
    return this.min[this.base + i]!;
  }

  set(i: number, value: number): void {
    const m = this.min;
    let at = this.base + i;
    if (m[at] === value) return;
    m[at] = value;
    at >>= 1;
    while (at >= 1) {
      const v = Math.min(m[2 * at]!, m[2 * at + 1]!);
      if (m[at] === v) break;
      m[at] = v;
      at >>= 1;
    }
  }

  /** Reset every position to +Infinity. */
  clear(): void {
    this.min.fill(Infinity);
  }

  /** Smallest value at a position with blocked[position] === 0 (+Infinity if none). */
  minUnblocked(blocked: Uint8Array): number {
    return this.minFrom(1, blocked, Infinity);
  }

  private minFrom(node: number, blocked: Uint8Array, best: number): number {
    const m = this.min;
    if (!(m[node]! < best)) return best;
    if (node >= this.base) return blocked[node - this.base] ? best : m[node]!;
    const l = 2 * node;
    // Visit the child with the smaller minimum first so the other is usually pruned.
    if (m[l]! <= m[l + 1]!) {
      best = this.minFrom(l, blocked, best);
      return this.minFrom(l + 1, blocked, best);
    }
    best = this.minFrom(l + 1, blocked, best);
    return this.minFrom(l, blocked, best);
  }

  /**
   * Lowest unblocked position whose value v has gain `top - max(floor, v + add)` above `minGain`
   * and score `gain * scale` at least `target`. Both fall as v grows, so a subtree whose minimum
   * misses them is skipped. -1 when there is none.
   */
  leftmostScoring(
    top: number,
    floor: number,
    add: number,
    scale: number,
    minGain: number,
    target: number,
    blocked: Uint8Array,
  ): number {
    return this.leftmostFrom(1, top, floor, add, scale, minGain, target, blocked);
  }

  private leftmostFrom(
    node: number,
    top: number,
    floor: number,
    add: number,
    scale: number,
    minGain: number,
    target: number,
    blocked: Uint8Array,
  ): number {
    const v = this.min[node]!;
    if (v === Infinity) return -1;
    const gain = top - Math.max(floor, v + add);
    if (!(gain > minGain) || !(gain * scale >= target)) return -1;
    if (node >= this.base) return blocked[node - this.base] ? -1 : node - this.base;
    const left = this.leftmostFrom(2 * node, top, floor, add, scale, minGain, target, blocked);
    if (left >= 0) return left;
    return this.leftmostFrom(2 * node + 1, top, floor, add, scale, minGain, target, blocked);
  }
}
