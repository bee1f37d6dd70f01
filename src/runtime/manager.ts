// The manager: informers (always running, so a standby is warm), a work queue,
// N workers that run only while this replica leads, and health/readiness.
// Knows nothing of MoE: a controller registers its key function and reconcile.
import type { Logger } from "pino";
import type { Clock } from "./clock.ts";
import { WorkQueue } from "./workqueue.ts";
import type { Informer } from "./informer.ts";
import type { OperatorMetrics } from "../observability/metrics.ts";
import { kubeApiErrorsIn, type KubeError } from "../adapters/kube-errors.ts";

export interface ReconcileOutcome {
  requeueAfterMs?: number;
}

/**
 * What to do with a failed reconcile:
 * - quiet: lost a race; per-key backoff, debug log;
 * - backoff: transient (429 without Retry-After, 5xx, network, unknown); per-key exponential backoff;
 * - retryAfter: the API server said when (429 with Retry-After);
 * - slow: only a person can fix it (Forbidden, Unauthorized, Invalid): one retry per
 *   ManagerOptions.permanentErrorRetryMs, so a missing RBAC rule causes no retry storm
 *   (the controller reports it in a condition). Changes to the object still wake it at once.
 */
export type ErrorAction =
  { kind: "quiet" } | { kind: "backoff" } | { kind: "retryAfter"; delayMs: number } | { kind: "slow" };

export interface ControllerSpec {
  name: string;
  reconcile: (key: string) => Promise<ReconcileOutcome>;
  /** Errors that mean "retry quietly" (conflicts, not-leader). */
  isQuietRetry?: (err: unknown) => boolean;
}

/** Kubernetes errors that retrying cannot fix. */
const PERMANENT_KINDS: ReadonlySet<KubeError["kind"]> = new Set(["Forbidden", "Unauthorized", "Invalid"]);

/**
 * Classifies a reconcile error by the Kubernetes errors in its cause chain (and AggregateError
 * members): slow only when every one of them is permanent; a Retry-After is honoured.
 */
export function classifyReconcileError(err: unknown, isQuietRetry?: (err: unknown) => boolean): ErrorAction {
  if (isQuietRetry?.(err)) return { kind: "quiet" };
  const kube = kubeApiErrorsIn(err).map((e) => e.kubeError);
  if (kube.length === 0) return { kind: "backoff" };
  if (kube.every((k) => k.kind === "Conflict")) return { kind: "quiet" };
  if (kube.every((k) => PERMANENT_KINDS.has(k.kind))) return { kind: "slow" };
  const retryAfterSeconds = Math.max(
    0,
    ...kube.map((k) => (k.kind === "TooManyRequests" ? (k.retryAfterSeconds ?? 0) : 0)),
  );
  return retryAfterSeconds > 0
    ? { kind: "retryAfter", delayMs: Math.min(retryAfterSeconds, 600) * 1000 }
    : { kind: "backoff" };
}

/** Default ManagerOptions.permanentErrorRetryMs. */
export const PERMANENT_ERROR_RETRY_MS = 300_000;

export interface ManagerOptions {
  clock: Clock;
  logger: Logger;
  metrics: OperatorMetrics;
  workers: number;
  controller: ControllerSpec;
  /** Retry interval after an error only a person can fix (see ErrorAction "slow"); default PERMANENT_ERROR_RETRY_MS. */
  permanentErrorRetryMs?: number;
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
    const { controller, metrics, clock } = this.#o;
    const started = clock.nowMs();
    this.#inFlight++;
    try {
      const r = await controller.reconcile(key);
      this.queue.forget(key);
      metrics.reconcileTotal.inc({
        controller: controller.name,
        result: r.requeueAfterMs !== undefined ? "requeue_after" : "success",
      });
      if (r.requeueAfterMs !== undefined) this.queue.addAfter(key, r.requeueAfterMs);
    } catch (err) {
      this.#handleError(key, err, id);
    } finally {
      this.#inFlight--;
      metrics.reconcileTime.observe({ controller: controller.name }, (clock.nowMs() - started) / 1000);
      this.queue.done(key);
    }
  }

  #handleError(key: string, err: unknown, worker: number): void {
    const { controller, metrics, logger } = this.#o;
    const action = classifyReconcileError(err, controller.isQuietRetry);
    const message = (err as Error).message;
    metrics.workqueueRetries.inc({ name: controller.name });
    if (action.kind === "quiet") {
      const delayMs = this.queue.addRateLimited(key);
      metrics.reconcileTotal.inc({ controller: controller.name, result: "requeue" });
      logger.debug({ key, err: message, delayMs, worker }, "reconcile requeued");
      return;
    }
    metrics.reconcileTotal.inc({ controller: controller.name, result: "error" });
    metrics.reconcileErrors.inc({ controller: controller.name });
    if (action.kind === "backoff") {
      const delayMs = this.queue.addRateLimited(key);
      logger.error({ key, err: message, delayMs, worker }, "reconcile failed; retrying with backoff");
    } else if (action.kind === "retryAfter") {
      this.queue.addAfter(key, action.delayMs);
      logger.warn(
        { key, err: message, delayMs: action.delayMs, worker },
        "reconcile throttled by the API server; retrying after its Retry-After",
      );
    } else {
      const delayMs = this.#o.permanentErrorRetryMs ?? PERMANENT_ERROR_RETRY_MS;
      this.queue.addAfter(key, delayMs);
      logger.error(
        { key, err: message, delayMs, worker },
        "reconcile failed with an error retrying cannot fix (permission or validation); retrying slowly",
      );
    }
  }
}
