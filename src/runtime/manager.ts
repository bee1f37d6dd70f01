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

  /** Called when this replica becomes leader: start the workers. */
  startWorkers(keys: () => string[]): void {
    if (this.#leading || this.#stopped) return;
    this.#leading = true;
    this.#o.metrics.leaderElectionStatus.set({ name: this.#o.controller.name }, 1);
    for (const k of keys()) this.queue.add(k);
    for (let i = 0; i < this.#o.workers; i++) this.#workers.push(this.#work(i));
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
    await Promise.all(this.#workers);
    await Promise.all(this.#o.informers.map((i) => i.stop()));
  }

  get busy(): number {
    return this.#inFlight;
  }

  async #work(id: number): Promise<void> {
    const { controller, metrics, logger, clock } = this.#o;
    for (;;) {
      const key = await this.queue.get();
      if (key === undefined) return;
      if (!this.#leading) {
        // Keep the key for when we lead again; do not touch the cluster.
        this.queue.done(key);
        if (this.#stopped) return;
        await clock.sleep(500);
        this.queue.addAfter(key, 1_000);
        continue;
      }
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
}
