// Expert sets per MoE layer ([moeLayer] -> sorted logical expert ids), as plain values.

export type ExpertSets = ReadonlyArray<ReadonlyArray<number>>;

function uniqSorted(xs: Iterable<number>): number[] {
  return [...new Set(xs)].sort((a, b) => a - b);
}

/** Layer by layer union. */
export function unionSets(a: ExpertSets, b: ExpertSets): number[][] {
  const n = Math.max(a.length, b.length);
  return Array.from({ length: n }, (_, l) => uniqSorted([...(a[l] ?? []), ...(b[l] ?? [])]));
}

/** Layer by layer intersection (as long as the longer input; missing layers are empty). */
export function intersectSets(a: ExpertSets, b: ExpertSets): number[][] {
  const n = Math.max(a.length, b.length);
  return Array.from({ length: n }, (_, l) => {
    const other = new Set(b[l] ?? []);
    return uniqSorted((a[l] ?? []).filter((e) => other.has(e)));
  });
}

/** Every expert of `inner` is in `outer`, layer by layer. */
export function containsSets(outer: ExpertSets, inner: ExpertSets): boolean {
  return inner.every((row, l) => {
    const have = new Set(outer[l] ?? []);
    return row.every((e) => have.has(e));
  });
}

/** The same experts in every layer (order and duplicates ignored; missing layers are empty). */
export function sameSets(a: ExpertSets, b: ExpertSets): boolean {
  return containsSets(a, b) && containsSets(b, a);
}

/** Replicas in the set (sum over layers). */
export function setSize(a: ExpertSets): number {
  return a.reduce((s, row) => s + row.length, 0);
}
