/** Exponential backoff with a cap: base * 2^failures, at most maxMs. */
export function exponentialBackoffMs(failures: number, baseMs: number, maxMs: number): number {
  if (failures <= 0) return 0;
  const exp = Math.min(failures - 1, 40);
  return Math.min(maxMs, baseMs * 2 ** exp);
}
