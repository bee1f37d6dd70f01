// The manager: informers (always running, so a standby is warm), a work queue,
// N workers that run only while this replica leads, and health/readiness.
// Knows nothing of MoE: a controller registers its key function and reconcile.
import type { Logger } from "pino";
import type { Clock } from "./clock.ts";
import { WorkQueue } from "./workqueue.ts";
import type { Informer } from "./informer.ts";
import type { OperatorMetrics } from "../observability/metrics.ts";

export interface ReconcileOutcome {
  requeueAfterMs?: number;
}

export interface ControllerSpec {
  name: string;
  reconcile: (key: string) => Promise<ReconcileOutcome>;
  /** Errors that mean "retry quietly" (conflicts, not-leader). */
  isQuietRetry?: (err: unknown) => boolean;
}

export interface ManagerOptions {
  clock: Clock;
  logger: Logger;
  metrics: OperatorMetrics;
  workers: number;
  controller: ControllerSpec;
  // Informers of any kind; typed loosely on purpose (the manager only starts and syncs them).
  informers: Informer<never>[];
}

export class Manager {
  readonly queue: WorkQueue<string>;
  readonly #o: ManagerOptions;
  #leading = false;
  #workers: Promise<void>[] = [];
  #stopped = false;
  #synced = false;
  #inFlight = 0;
  #running = 0;
  /** What workers wait on while not leading; opened when leadership comes (or on shutdown). */
  #gate: { promise: Promise<void>; open: () => void } | undefined;

  constructor(o: ManagerOptions) {
    this.#o = o;
    this.queue = new WorkQueue<string>({
      clock: o.clock,
      baseBackoffMs: 200,
      maxBackoffMs: 60_000,
      onDepth: (d) => o.metrics.workqueueDepth.set({ name: o.controller.name }, d),
    });
  }

  get synced(): boolean {
    return this.#synced;
  }

  get leading(): boolean {
    return this.#leading;
  }

  enqueue(key: string): void {
    this.queue.add(key);
  }

  async startInformers(): Promise<void> {
    await Promise.all(this.#o.informers.map((i) => i.start()));
    await Promise.all(this.#o.informers.map((i) => i.synced));
    this.#synced = true;
    this.#o.logger.info({ informers: this.#o.informers.map((i) => i.path) }, "caches synced");
  }

  /**
   * Called when this replica becomes leader. The `workers` loops are started once,
   * on the first call, and live until shutdown; while not leading they wait, so
   * regaining leadership never adds workers.
   */
  startWorkers(keys: () => string[]): void {
    if (this.#leading || this.#stopped) return;
    this.#leading = true;
    this.#o.metrics.leaderElectionStatus.set({ name: this.#o.controller.name }, 1);
    for (const k of keys()) this.queue.add(k);
    this.#openGate();
    if (this.#workers.length === 0) {
      for (let i = 0; i < this.#o.workers; i++) this.#workers.push(this.#work(i));
    }
  }

  /** Lost leadership or shutting down: no new work is started. */
  stopLeading(): void {
    this.#leading = false;
    this.#o.metrics.leaderElectionStatus.set({ name: this.#o.controller.name }, 0);
  }

  async shutdown(): Promise<void> {
    this.#stopped = true;
    this.stopLeading();
    this.queue.shutDown();
    this.#openGate(); // waiting workers wake up, find the queue shut down and exit
    await Promise.all(this.#workers);
    await Promise.all(this.#o.informers.map((i) => i.stop()));
  }

  /** Worker loops alive now (waiting for leadership or working); at most `workers`. */
  get runningWorkers(): number {
    return this.#running;
  }

  get busy(): number {
    return this.#inFlight;
  }

  /** Wakes the workers waiting for leadership (they re-check #leading/#stopped). */
  #openGate(): void {
    this.#gate?.open();
    this.#gate = undefined;
  }

  /** Resolves when this replica leads (or the manager stops). */
  async #whenLeading(): Promise<void> {
    while (!this.#leading && !this.#stopped) {
      if (!this.#gate) {
        let open!: () => void;
        const promise = new Promise<void>((r) => (open = r));
        this.#gate = { promise, open };
      }
      await this.#gate.promise;
    }
  }

  async #work(id: number): Promise<void> {
    this.#running++;
    this.#o.metrics.activeWorkers.set({ controller: this.#o.controller.name }, this.#running);
    try {
      await this.#workLoop(id);
    } finally {
      this.#running--;
      this.#o.metrics.activeWorkers.set({ controller: this.#o.controller.name }, this.#running);
    }
  }

  async #workLoop(id: number): Promise<void> {
    for (;;) {
      await this.#whenLeading();
      const key = await this.queue.get();
      if (key === undefined) return;
      if (!this.#leading) {
        // Lost leadership while waiting: keep the key for when we lead again.
        this.queue.done(key);
        if (this.#stopped) return;
        this.queue.add(key);
        continue;
      }
      await this.#reconcileOne(key, id);
    }
  }

  async #reconcileOne(key: string, id: number): Promise<void> {
    const { controller, metrics, logger, clock } = this.#o;
    const started = clock.nowMs();
    this.#inFlight++;
    try {
      const r = await controller.reconcile(key);
      this.queue.forget(key);
      metrics.reconcileTotal.inc({ controller: controller.name, result: r.requeueAfterMs !== undefined ? "requeue_after" : "success" });
      if (r.requeueAfterMs !== undefined) this.queue.addAfter(key, r.requeueAfterMs);
    } catch (err) {
      const quiet = controller.isQuietRetry?.(err) ?? false;
      const delay = this.queue.addRateLimited(key);
      metrics.workqueueRetries.inc({ name: controller.name });
      if (quiet) {
        metrics.reconcileTotal.inc({ controller: controller.name, result: "requeue" });
        logger.debug({ key, err: (err as Error).message, delayMs: delay, worker: id }, "reconcile requeued");
      } else {
        metrics.reconcileTotal.inc({ controller: controller.name, result: "error" });
        metrics.reconcileErrors.inc({ controller: controller.name });
        logger.error({ key, err: (err as Error).message, delayMs: delay, worker: id }, "reconcile failed; retrying with backoff");
      }
    } finally {
      this.#inFlight--;
      metrics.reconcileTime.observe({ controller: controller.name }, (clock.nowMs() - started) / 1000);
      this.queue.done(key);
    }
  }
}
