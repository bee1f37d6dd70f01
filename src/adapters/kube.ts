// A thin Kubernetes client for the controller: server-side apply, create,
// delete, merge patch, status replace and Events, all behind a write guard
// (only the leader writes) and counted. Errors are KubeApiError values with
// a classified kind and the original error as cause.
import {
  CoreV1Api,
  CustomObjectsApi,
  KubernetesObjectApi,
  PatchStrategy,
  V1MicroTime,
  type KubeConfig,
  type KubernetesObject,
  type CoreV1Event,
} from "@kubernetes/client-node";
import { KubeApiError } from "./kube-errors.ts";

export class NotLeaderError extends Error {
  constructor(operation: string) {
    super(`${operation}: not the leader; writes are disabled`);
    this.name = "NotLeaderError";
  }
}

export interface KubeClientOptions {
  kubeConfig: KubeConfig;
  fieldManager: string;
  /** Writes are refused unless this returns true (leader election). */
  canWrite: () => boolean;
  onWrite?: (verb: string, resource: string) => void;
}

export interface ObjectRef {
  apiVersion: string;
  kind: string;
  namespace?: string;
  name: string;
}

/** The writes a controller makes; KubeClient implements them against the API server. */
export type KubeWriter = Pick<KubeClient, "apply" | "create" | "mergePatch" | "delete" | "replaceStatus" | "event">;

export class KubeClient {
  readonly objects: KubernetesObjectApi;
  readonly core: CoreV1Api;
  readonly custom: CustomObjectsApi;
  readonly #o: KubeClientOptions;

  constructor(o: KubeClientOptions) {
    this.#o = o;
    this.objects = KubernetesObjectApi.makeApiClient(o.kubeConfig);
    this.core = o.kubeConfig.makeApiClient(CoreV1Api);
    this.custom = o.kubeConfig.makeApiClient(CustomObjectsApi);
  }

  #guard(verb: string, obj: { kind?: string; metadata?: { name?: string } } | ObjectRef): string {
    const kind = "kind" in obj ? (obj.kind ?? "?") : "?";
    const name = "name" in obj ? obj.name : obj.metadata?.name;
    const op = `${verb} ${kind}/${name ?? "?"}`;
    if (!this.#o.canWrite()) throw new NotLeaderError(op);
    this.#o.onWrite?.(verb, kind);
    return op;
  }

  /** Server-side apply with our field manager (force: we own these fields). */
  async apply<T extends KubernetesObject>(obj: T): Promise<T> {
    const op = this.#guard("apply", obj);
    try {
      return (await this.objects.patch(
        obj,
        undefined,
        undefined,
        this.#o.fieldManager,
        true,
        PatchStrategy.ServerSideApply,
      )) as T;
    } catch (err) {
      throw new KubeApiError(op, err);
    }
  }

  async create<T extends KubernetesObject>(obj: T): Promise<T> {
    const op = this.#guard("create", obj);
    try {
      return (await this.objects.create(obj, undefined, undefined, this.#o.fieldManager)) as T;
    } catch (err) {
      throw new KubeApiError(op, err);
    }
  }

  /** JSON merge patch of metadata or spec (annotations, labels). */
  async mergePatch(ref: ObjectRef, patch: Record<string, unknown>): Promise<void> {
    const op = this.#guard("patch", ref);
    try {
      const { metadata, ...rest } = patch as { metadata?: Record<string, unknown> };
      await this.objects.patch(
        {
          ...rest,
          apiVersion: ref.apiVersion,
          kind: ref.kind,
          metadata: { ...metadata, name: ref.name, namespace: ref.namespace },
        } as KubernetesObject,
        undefined,
        undefined,
        this.#o.fieldManager,
        undefined,
        PatchStrategy.MergePatch,
      );
    } catch (err) {
      throw new KubeApiError(op, err);
    }
  }

  async delete(ref: ObjectRef, opts: { gracePeriodSeconds?: number; uid?: string } = {}): Promise<void> {
    const op = this.#guard("delete", ref);
    try {
      await this.objects.delete(
        { apiVersion: ref.apiVersion, kind: ref.kind, metadata: { name: ref.name, namespace: ref.namespace } },
        undefined,
        undefined,
        opts.gracePeriodSeconds,
        undefined,
        "Background",
        opts.uid ? ({ preconditions: { uid: opts.uid } } as never) : undefined,
      );
    } catch (err) {
      throw new KubeApiError(op, err);
    }
  }

  /** Replace the status subresource of a custom object (optimistic concurrency on resourceVersion). */
  async replaceStatus(
    group: string,
    version: string,
    plural: string,
    obj: KubernetesObject & { status?: unknown },
  ): Promise<void> {
    const op = this.#guard("update-status", obj);
    try {
      await this.custom.replaceNamespacedCustomObjectStatus({
        group,
        version,
        plural,
        namespace: obj.metadata!.namespace!,
        name: obj.metadata!.name!,
        body: obj,
        fieldManager: this.#o.fieldManager,
      });
    } catch (err) {
      throw new KubeApiError(op, err);
    }
  }

  async event(
    involved: ObjectRef & { uid?: string },
    type: "Normal" | "Warning",
    reason: string,
    message: string,
    component: string,
    nowMs: number,
  ): Promise<void> {
    const ts = new Date(nowMs);
    const name = `${involved.name}.${nowMs.toString(16)}${Math.floor(Math.random() * 0xfff).toString(16)}`;
    const body: CoreV1Event = {
      metadata: { name, namespace: involved.namespace },
      involvedObject: {
        apiVersion: involved.apiVersion,
        kind: involved.kind,
        name: involved.name,
        namespace: involved.namespace,
        uid: involved.uid,
      },
      type,
      reason,
      message: message.slice(0, 1024),
      source: { component },
      reportingComponent: component,
      reportingInstance: component,
      firstTimestamp: ts,
      lastTimestamp: ts,
      eventTime: new V1MicroTime(nowMs),
      action: reason,
      count: 1,
    };
    const op = this.#guard("create", { kind: "Event", metadata: { name } });
    try {
      await this.core.createNamespacedEvent({ namespace: involved.namespace!, body });
    } catch (err) {
      throw new KubeApiError(op, err);
    }
  }
}
