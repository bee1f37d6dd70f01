// An informer: a cache of one resource kind kept current by list+watch
// (@kubernetes/client-node ListWatch, which relists on 410 Gone), restarted
// with exponential backoff when the watch fails, with a `synced` promise.
// Optionally lists in pages and stores a projection of each object (`transform`,
// applied before the object is cached), so a cache of many large objects can
// keep only the few fields its reader needs.
import {
  ListWatch,
  Watch,
  type KubeConfig,
  type KubernetesObject,
  type KubernetesListObject,
} from "@kubernetes/client-node";
import type { Logger } from "pino";
import type { Clock } from "./clock.ts";
import { exponentialBackoffMs } from "./backoff.ts";

export type EventType = "add" | "update" | "delete";
export type Handler<T> = (obj: T, type: EventType) => void;

/** T: what the cache holds; R: what the API returns (differs only with a transform). */
export interface InformerOptions<T extends KubernetesObject, R extends KubernetesObject = T> {
  kubeConfig: KubeConfig;
  /** Watch path, e.g. /apis/apps/v1/deployments or /api/v1/namespaces/ns/pods. */
  path: string;
  /** Lists the objects; called with a page (limit, continue token) when pageSize is set. */
  list: (page?: ListPage) => Promise<KubernetesListObject<R>>;
  labelSelector?: string;
  /** List in pages of this many objects (each page is transformed before the next is read). */
  pageSize?: number;
  /** Projection applied to every listed or watched object before it is cached and handed to handlers. */
  transform?: (obj: R) => T;
  clock: Clock;
  logger: Logger;
  /** Called on each restart after an error (for metrics). */
  onRestart?: (err: unknown) => void;
}

/** Objects per list page for informers that list in pages (client-go's reflectors use 500 too). */
export const LIST_PAGE_SIZE = 500;

export interface ListPage {
  limit: number;
  _continue?: string;
}

/** Lists every page, transforming each page's items as they arrive. */
async function listAllPages<T extends KubernetesObject, R extends KubernetesObject>(
  list: InformerOptions<T, R>["list"],
  pageSize: number | undefined,
  transform: ((o: R) => T) | undefined,
): Promise<KubernetesListObject<T>> {
  const project = transform ?? ((o: R) => o as unknown as T);
  if (!pageSize) {
    const l = await list();
    return { ...l, items: l.items.map(project) };
  }
  const items: T[] = [];
  let page: KubernetesListObject<R> | undefined;
  let next: string | undefined;
  do {
    page = await list({ limit: pageSize, _continue: next });
    for (const o of page.items) items.push(project(o));
    next = page.metadata?._continue || undefined;
  } while (next);
  return { ...page, items };
}

/** A Watch whose events carry the projection of each object (errors and bookmarks pass through). */
function transformingWatch<T extends KubernetesObject, R extends KubernetesObject>(
  kubeConfig: KubeConfig,
  transform: ((o: R) => T) | undefined,
): Watch {
  const watch = new Watch(kubeConfig);
  if (!transform) return watch;
  const inner = watch.watch.bind(watch);
  watch.watch = (path, query, callback, done) =>
    inner(
      path,
      query,
      (phase, obj, raw) =>
        callback(
          phase,
          phase === "ADDED" || phase === "MODIFIED" || phase === "DELETED" ? transform(obj as R) : obj,
          raw,
        ),
      done,
    );
  return watch;
}

export class Informer<T extends KubernetesObject, R extends KubernetesObject = T> {
  readonly path: string;
  readonly #opts: InformerOptions<T, R>;
  readonly #handlers: Handler<T>[] = [];
  #lw: ListWatch<T> | undefined;
  #failures = 0;
  #stopped = false;
  #cancelRestart: (() => void) | undefined;
  #resolveSynced!: () => void;
  readonly synced: Promise<void>;
  #isSynced = false;
  #errorCount = 0;

  constructor(opts: InformerOptions<T, R>) {
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
      const { list, pageSize, transform } = this.#opts;
      lw = new ListWatch<T>(
        this.#opts.path,
        transformingWatch(this.#opts.kubeConfig, transform),
        () => listAllPages(list, pageSize, transform),
        false,
        this.#opts.labelSelector,
      );
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
    this.#opts.logger.warn(
      { err: String((err as Error)?.message ?? err), path: this.path, delayMs, failures: this.#failures },
      "watch failed; restarting",
    );
    this.#opts.onRestart?.(err);
    this.#cancelRestart?.();
    this.#cancelRestart = this.#opts.clock.schedule(delayMs, () => {
      if (this.#stopped) return;
      void this.start();
    });
  }
}
