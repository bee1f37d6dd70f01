// Order-insensitive comparison of status values with what the API server returns: the server
// stores a custom resource's JSON with its keys sorted and without undefined fields, so the
// operator's own objects (keys in code order, undefined fields) never compare equal as text.

/** Key-sorted JSON value without undefined fields. */
export function canonical(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(canonical);
  if (v && typeof v === "object") {
    if (v instanceof Date) return v.toISOString();
    return Object.fromEntries(
      Object.entries(v as Record<string, unknown>)
        .filter(([, x]) => x !== undefined)
        .sort(([a], [b]) => a.localeCompare(b))
        .map(([k, x]) => [k, canonical(x)]),
    );
  }
  return v;
}

/** Same JSON value, whatever the key order and undefined fields. */
export function sameJson(a: unknown, b: unknown): boolean {
  return JSON.stringify(canonical(a)) === JSON.stringify(canonical(b));
}
