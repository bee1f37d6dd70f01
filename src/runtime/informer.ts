// An informer: a cache of one resource kind kept current by list+watch
// (@kubernetes/client-node ListWatch, which relists on 410 Gone), restarted
// with exponential backoff when the watch fails, with a `synced` promise.
import { ListWatch, Watch, type KubeConfig, type KubernetesObject, type KubernetesListObject } from "@kubernetes/client-node";
import type { Logger } from "pino";
import type { Clock } from "./clock.ts";
import { exponentialBackoffMs } from "./backoff.ts";

export type EventType = "add" | "update" | "delete";
export type Handler<T> = (obj: T, type: EventType) => void;

export interface InformerOptions<T extends KubernetesObject> {
  kubeConfig: KubeConfig;
  /** Watch path, e.g. /apis/apps/v1/deployments or /api/v1/namespaces/ns/pods. */
  path: string;
  list: () => Promise<KubernetesListObject<T>>;
  labelSelector?: string;
  clock: Clock;
  logger: Logger;
  /** Called on each restart after an error (for metrics). */
  onRestart?: (err: unknown) => void;
}

export class Informer<T extends KubernetesObject> {
  readonly path: string;
  readonly #opts: InformerOptions<T>;
  readonly #handlers: Handler<T>[] = [];
  #lw: ListWatch<T> | undefined;
  #failures = 0;
  #stopped = false;
  #cancelRestart: (() => void) | undefined;
  #resolveSynced!: () => void;
  readonly synced: Promise<void>;
  #isSynced = false;
  #errorCount = 0;

  constructor(opts: InformerOptions<T>) {
    this.#opts = opts;
    this.path = opts.path;
    this.synced = new Promise((r) => (this.#resolveSynced = r));
  }

  get isSynced(): boolean {
    return this.#isSynced;
  }

  on(handler: Handler<T>): void {
    this.#handlers.push(handler);
  }

  list(namespace?: string): readonly T[] {
    return this.#lw?.list(namespace) ?? [];
  }

  get(name: string, namespace?: string): T | undefined {
    return this.#lw?.get(name, namespace);
  }

  async start(): Promise<void> {
    this.#stopped = false;
    let lw = this.#lw;
    if (!lw) {
      lw = new ListWatch<T>(this.#opts.path, new Watch(this.#opts.kubeConfig), this.#opts.list, false, this.#opts.labelSelector);
      this.#lw = lw;
      lw.on("add", (o) => this.#emit(o, "add"));
      lw.on("update", (o) => this.#emit(o, "update"));
      lw.on("delete", (o) => this.#emit(o, "delete"));
      lw.on("error", (err) => this.#onError(err));
    }
    // Restarting the same ListWatch keeps its cache and resourceVersion: the
    // watch resumes where it stopped, or relists on 410 Gone and emits deletes
    // for objects that vanished meanwhile.
    const errorsBefore = this.#errorCount;
    try {
      await lw.start();
    } catch (err) {
      this.#onError(err);
      return;
    }
    // ListWatch reports a failed list through the error callback, not by throwing.
    if (this.#stopped || this.#errorCount !== errorsBefore) return;
    this.#failures = 0;
    if (!this.#isSynced) {
      this.#isSynced = true;
      this.#resolveSynced();
    }
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    this.#cancelRestart?.();
    await this.#lw?.stop();
  }

  #emit(obj: T, type: EventType): void {
    for (const h of this.#handlers) {
      try {
        h(obj, type);
      } catch (err) {
        this.#opts.logger.error({ err, path: this.path }, "informer handler threw");
      }
    }
  }

  #onError(err: unknown): void {
    this.#errorCount++;
    if (this.#stopped) return;
    this.#failures++;
    const delayMs = exponentialBackoffMs(this.#failures, 250, 30_000);
    this.#opts.logger.warn({ err: String((err as Error)?.message ?? err), path: this.path, delayMs, failures: this.#failures }, "watch failed; restarting");
    this.#opts.onRestart?.(err);
    this.#cancelRestart?.();
    this.#cancelRestart = this.#opts.clock.schedule(delayMs, () => {
      if (this.#stopped) return;
      void this.start();
    });
  }
}
