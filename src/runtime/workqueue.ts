// A work queue of keys in the client-go tradition: a key is queued at most once
// (dedup), is never processed by two workers at once (a key re-added while in
// flight is queued again when done), can be added after a delay, and backs off
// exponentially per key on failure until forgotten.
import type { Clock } from "./clock.ts";
import { exponentialBackoffMs } from "./backoff.ts";

export interface WorkQueueOptions {
  clock: Clock;
  baseBackoffMs?: number;
  maxBackoffMs?: number;
  /** Called when the depth changes (for the workqueue_depth metric). */
  onDepth?: (depth: number) => void;
}

export class WorkQueue<K = string> {
  readonly #clock: Clock;
  readonly #baseBackoffMs: number;
  readonly #maxBackoffMs: number;
  readonly #onDepth: (depth: number) => void;
  #queue: K[] = [];
  #dirty = new Set<K>();
  #processing = new Set<K>();
  #failures = new Map<K, number>();
  #delayed = new Map<K, { atMs: number; cancel: () => void }>();
  #waiters: ((k: K | undefined) => void)[] = [];
  #shuttingDown = false;

  constructor(opts: WorkQueueOptions) {
    this.#clock = opts.clock;
    this.#baseBackoffMs = opts.baseBackoffMs ?? 100;
    this.#maxBackoffMs = opts.maxBackoffMs ?? 5 * 60_000;
    this.#onDepth = opts.onDepth ?? (() => {});
  }

  get length(): number {
    return this.#queue.length;
  }

  get shuttingDown(): boolean {
    return this.#shuttingDown;
  }

  add(key: K): void {
    if (this.#shuttingDown || this.#dirty.has(key)) return;
    this.#dirty.add(key);
    if (this.#processing.has(key)) return; // re-queued by done()
    const waiter = this.#waiters.shift();
    if (waiter) {
      this.#dirty.delete(key);
      this.#processing.add(key);
      waiter(key);
      return;
    }
    this.#queue.push(key);
    this.#onDepth(this.#queue.length);
  }

  /** Adds the key after delayMs; an earlier pending delayed add wins. */
  addAfter(key: K, delayMs: number): void {
    if (this.#shuttingDown) return;
    if (delayMs <= 0) return this.add(key);
    const at = this.#clock.nowMs() + delayMs;
    const existing = this.#delayed.get(key);
    if (existing && existing.atMs <= at) return;
    existing?.cancel();
    const cancel = this.#clock.schedule(delayMs, () => {
      this.#delayed.delete(key);
      this.add(key);
    });
    this.#delayed.set(key, { atMs: at, cancel });
  }

  /** Re-adds the key after its per-key exponential backoff; returns the delay. */
  addRateLimited(key: K): number {
    const failures = (this.#failures.get(key) ?? 0) + 1;
    this.#failures.set(key, failures);
    const delay = exponentialBackoffMs(failures, this.#baseBackoffMs, this.#maxBackoffMs);
    this.addAfter(key, delay);
    return delay;
  }

  /** Clears the key's failure history (call after a successful reconcile). */
  forget(key: K): void {
    this.#failures.delete(key);
  }

  failures(key: K): number {
    return this.#failures.get(key) ?? 0;
  }

  /** Next key to process, or undefined once shut down. */
  get(): Promise<K | undefined> {
    if (this.#queue.length > 0) {
      const key = this.#queue.shift()!;
      this.#onDepth(this.#queue.length);
      this.#dirty.delete(key);
      this.#processing.add(key);
      return Promise.resolve(key);
    }
    if (this.#shuttingDown) return Promise.resolve(undefined);
    return new Promise((resolve) => this.#waiters.push(resolve));
  }

  /** Marks the key processed; if it was re-added meanwhile it is queued again. */
  done(key: K): void {
    this.#processing.delete(key);
    if (this.#dirty.has(key)) {
      this.#dirty.delete(key);
      this.add(key);
    }
  }

  shutDown(): void {
    this.#shuttingDown = true;
    for (const d of this.#delayed.values()) d.cancel();
    this.#delayed.clear();
    for (const w of this.#waiters.splice(0)) w(undefined);
  }
}
