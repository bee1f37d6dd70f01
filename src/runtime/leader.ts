// Lease-based leader election (coordination.k8s.io/v1), in the client-go
// tradition: acquire when the lease is free or expired, renew every
// retryPeriod, and give up leadership (stop writing at once) when a renewal
// cannot succeed before the renew deadline.
//
// Expiry is judged on the local clock only, as client-go does: the elector
// remembers when it last saw the lease record (holder, renewTime, transitions,
// duration) change and treats the lease as expired when it has not changed for
// leaseDuration of local time. The other replica's renewTime is never compared
// with the local clock, so clock skew between replicas cannot make two leaders
// (only a difference in clock rates could, bounded by leaseDuration - renewDeadline).
import { CoordinationV1Api, V1MicroTime, type KubeConfig, type V1Lease } from "@kubernetes/client-node";
import type { Logger } from "pino";
import type { Clock } from "./clock.ts";
import { classifyKubeError } from "../adapters/kube-errors.ts";

/** The Lease calls the elector makes (the API server's, or an in-memory store in tests). */
export type LeaseApi = Pick<
  CoordinationV1Api,
  "readNamespacedLease" | "createNamespacedLease" | "replaceNamespacedLease"
>;

export interface LeaderElectionOptions {
  kubeConfig: KubeConfig;
  /** Default: CoordinationV1Api from kubeConfig. */
  leaseApi?: LeaseApi;
  namespace: string;
  name: string;
  identity: string;
  leaseDurationMs?: number;
  renewDeadlineMs?: number;
  retryPeriodMs?: number;
  clock: Clock;
  logger: Logger;
  onStartedLeading: () => void;
  onStoppedLeading: () => void;
}

export class LeaderElector {
  readonly #o: Required<Omit<LeaderElectionOptions, "onStartedLeading" | "onStoppedLeading" | "leaseApi">> &
    Pick<LeaderElectionOptions, "onStartedLeading" | "onStoppedLeading">;
  readonly #api: LeaseApi;
  #leading = false;
  #lastRenewMs = 0;
  /** The lease record as last read or written, and the local time it was first seen. */
  #observed: { record: string; atMs: number } | undefined;
  #abort = new AbortController();
  #loop: Promise<void> | undefined;

  constructor(opts: LeaderElectionOptions) {
    this.#o = { leaseDurationMs: 15_000, renewDeadlineMs: 10_000, retryPeriodMs: 2_000, ...opts };
    this.#api = opts.leaseApi ?? opts.kubeConfig.makeApiClient(CoordinationV1Api);
  }

  /** True only while we hold a lease renewed within the renew deadline. */
  isLeader(): boolean {
    return this.#leading && this.#o.clock.nowMs() - this.#lastRenewMs < this.#o.renewDeadlineMs;
  }

  start(): void {
    this.#loop ??= this.#run();
  }

  /** Stops; releases the lease if held so a standby takes over at once. */
  async stop(): Promise<void> {
    this.#abort.abort();
    await this.#loop;
    if (this.#leading) {
      this.#setLeading(false);
      await this.#release().catch((err: unknown) => this.#o.logger.warn({ err: String(err) }, "lease release failed"));
    }
  }

  async #run(): Promise<void> {
    while (!this.#abort.signal.aborted) {
      await this.tryOnce();
      await this.#o.clock.sleep(this.#o.retryPeriodMs, this.#abort.signal);
    }
  }

  /**
   * One acquire-or-renew attempt and the leadership bookkeeping around it. The
   * loop started by start() calls it every retryPeriod; tests call it directly.
   */
  async tryOnce(): Promise<void> {
    const { clock } = this.#o;
    // The renew deadline counts from before the request: the lease we write says
    // "renewed" no earlier than this, so a standby's expiry (counted from when it
    // sees the write) always comes after our deadline.
    const attemptMs = clock.nowMs();
    try {
      const ok = await this.#tryAcquireOrRenew();
      if (ok) {
        this.#lastRenewMs = attemptMs;
        if (!this.#leading) this.#setLeading(true);
      } else if (this.#leading) {
        this.#setLeading(false);
      }
    } catch (err) {
      this.#o.logger.warn({ err: String((err as Error)?.message ?? err) }, "lease acquire/renew failed");
    }
    if (this.#leading && clock.nowMs() - this.#lastRenewMs >= this.#o.renewDeadlineMs) {
      this.#o.logger.error("failed to renew lease before the deadline; stopping leadership");
      this.#setLeading(false);
    }
  }

  /** Remembers the record and when it changed (local time); returns whether it has expired. */
  #observe(spec: V1Lease["spec"]): boolean {
    const record = JSON.stringify([
      spec?.holderIdentity ?? "",
      spec?.renewTime ? new Date(spec.renewTime).getTime() : 0,
      spec?.leaseTransitions ?? 0,
      spec?.leaseDurationSeconds ?? 0,
    ]);
    const nowMs = this.#o.clock.nowMs();
    if (this.#observed?.record !== record) this.#observed = { record, atMs: nowMs };
    const durationMs = (spec?.leaseDurationSeconds ?? Math.ceil(this.#o.leaseDurationMs / 1000)) * 1000;
    return nowMs - this.#observed.atMs > durationMs;
  }

  #setLeading(leading: boolean): void {
    this.#leading = leading;
    this.#o.logger.info(
      { identity: this.#o.identity, lease: `${this.#o.namespace}/${this.#o.name}` },
      leading ? "became leader" : "lost leadership",
    );
    if (leading) this.#o.onStartedLeading();
    else this.#o.onStoppedLeading();
  }

  async #tryAcquireOrRenew(): Promise<boolean> {
    const { namespace, name, identity, clock, leaseDurationMs } = this.#o;
    // Lease times are MicroTime (microsecond precision on the wire).
    const now = new V1MicroTime(clock.nowMs());
    let lease: V1Lease | undefined;
    try {
      lease = await this.#api.readNamespacedLease({ name, namespace });
    } catch (err) {
      if (classifyKubeError(err).kind !== "NotFound") throw err;
    }
    const spec = {
      holderIdentity: identity,
      leaseDurationSeconds: Math.ceil(leaseDurationMs / 1000),
      renewTime: now,
    };
    if (!lease) {
      try {
        const created = await this.#api.createNamespacedLease({
          namespace,
          body: { metadata: { name, namespace }, spec: { ...spec, acquireTime: now, leaseTransitions: 0 } },
        });
        this.#observe(created.spec);
        return true;
      } catch (err) {
        if (classifyKubeError(err).kind === "AlreadyExists") return false;
        throw err;
      }
    }
    const holder = lease.spec?.holderIdentity;
    const expired = this.#observe(lease.spec) || !holder;
    if (holder !== identity && !expired) return false;
    const transitions = (lease.spec?.leaseTransitions ?? 0) + (holder === identity ? 0 : 1);
    try {
      // metadata carries the resourceVersion we read: a concurrent writer makes this a Conflict.
      const written = await this.#api.replaceNamespacedLease({
        name,
        namespace,
        body: {
          metadata: { ...lease.metadata, name, namespace },
          spec: {
            ...spec,
            acquireTime: holder === identity ? lease.spec?.acquireTime : now,
            leaseTransitions: transitions,
          },
        },
      });
      this.#observe(written.spec);
      return true;
    } catch (err) {
      if (classifyKubeError(err).kind === "Conflict") return false; // someone else won the race
      throw err;
    }
  }

  async #release(): Promise<void> {
    const { namespace, name, identity } = this.#o;
    const lease = await this.#api.readNamespacedLease({ name, namespace });
    if (lease.spec?.holderIdentity !== identity) return;
    await this.#api.replaceNamespacedLease({
      name,
      namespace,
      body: {
        metadata: lease.metadata,
        spec: {
          ...lease.spec,
          holderIdentity: undefined,
          leaseDurationSeconds: 1,
          renewTime: new V1MicroTime(this.#o.clock.nowMs()),
        },
      },
    });
  }
}
