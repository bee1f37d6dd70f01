// Per-deployment source readings, refreshed in the background so one
// deployment's slow source never holds a worker for long (docs/adr/0007).
//
// A reconcile asks for the readings: if they are due (older than the refresh
// interval, or the sources changed) and no read is in flight, a read starts.
// The reconcile waits for an in-flight read at most `waitMs`; past that it goes
// on with the last readings (or none), and the read, when it finishes, asks for
// the key to be reconciled again. At most one read per deployment is in flight.
import type { Clock } from "../../runtime/clock.ts";
import type { HeatReading, LatencyReading } from "./sources.ts";

export interface Readings {
  heat: HeatReading;
  latency: LatencyReading;
  /** When the read that produced them started. */
  atMs: number;
  fingerprint: string;
}

interface Entry {
  readings?: Readings;
  inFlight?: Promise<void>;
  /** A reconcile stopped waiting for the in-flight read: reconcile again when it ends. */
  notify: boolean;
}

export interface SourcePollerOptions {
  clock: Clock;
  /** Longest a reconcile waits for an in-flight read. */
  waitMs: number;
  onRefreshed: (key: string) => void;
}

export class SourcePoller {
  readonly #o: SourcePollerOptions;
  readonly #entries = new Map<string, Entry>();

  constructor(opts: SourcePollerOptions) {
    this.#o = opts;
  }

  /** Readings for key, starting a read if due; undefined when none has finished yet for these sources. */
  async readings(
    key: string,
    fingerprint: string,
    dueMs: number,
    read: () => Promise<{ heat: HeatReading; latency: LatencyReading }>,
  ): Promise<Readings | undefined> {
    let entry = this.#entries.get(key);
    if (!entry) this.#entries.set(key, (entry = { notify: false }));
    const nowMs = this.#o.clock.nowMs();
    const usable = (e: Entry) => (e.readings?.fingerprint === fingerprint ? e.readings : undefined);
    const fresh = usable(entry) !== undefined && nowMs - entry.readings!.atMs < dueMs;
    if (fresh) return entry.readings;
    if (!entry.inFlight) this.#start(key, entry, fingerprint, nowMs, read);
    const finished = await this.#waitFor(entry.inFlight);
    if (!finished) entry.notify = true;
    return usable(entry);
  }

  /** Drops what is kept for key (the deployment is gone); a read in flight is discarded when it ends. */
  forget(key: string): void {
    this.#entries.delete(key);
  }

  /** Deployments with readings or reads in flight (memory is bounded by the deployments that exist). */
  get size(): number {
    return this.#entries.size;
  }

  #start(
    key: string,
    entry: Entry,
    fingerprint: string,
    startedMs: number,
    read: () => Promise<{ heat: HeatReading; latency: LatencyReading }>,
  ): void {
    const failed = (what: string) => ({ problem: { reason: "QueryFailed" as const, message: `${what} read failed` } });
    entry.inFlight = read()
      .catch(() => ({ heat: failed("heat"), latency: failed("latency") }))
      .then((r) => {
        entry.readings = { heat: r.heat, latency: r.latency, atMs: startedMs, fingerprint };
      })
      .finally(() => {
        entry.inFlight = undefined;
        const notify = entry.notify;
        entry.notify = false;
        if (notify && this.#entries.get(key) === entry) this.#o.onRefreshed(key);
      });
  }

  async #waitFor(p: Promise<void> | undefined): Promise<boolean> {
    if (!p) return true;
    const stop = new AbortController();
    let done = false;
    await Promise.race([
      p.then(() => {
        done = true;
      }),
      this.#o.clock.sleep(this.#o.waitMs, stop.signal),
    ]);
    stop.abort();
    return done;
  }
}
