// Actuators carry out a ChildPlan. The reconciler decides and plans the same
// way in every mode; spec.mode only picks the actuator (see ADR 0013):
//   Auto      -> ClusterActuator: applies the plan to the cluster;
//   Recommend -> NoneActuator: applies nothing, status reports the recommendation;
//   PullRequest -> PullRequestActuator: applies nothing to the cluster, proposes bounds and
//                  budget to Git through src/gitops (ADR 0014), reports GitOpsSynced.
// A new output mode is one Actuator plus one line in ACTUATORS; the table's type
// fails to compile when a mode of the API has no actuator.
import type { Logger } from "pino";
import type { MoEDeployment, MoEDeploymentStatus } from "../../api/schema.ts";
import type { KubeWriter } from "../../adapters/kube.ts";
import type { Clock } from "../../runtime/clock.ts";
import { isKind, type KubeError } from "../../adapters/kube-errors.ts";
import type { Decision } from "../../domain/decide.ts";
import type { RolloutPlan } from "../../domain/rollout/index.ts";
import type { ChildPlan } from "./plan.ts";
import { drainPatch, ShardAnnotation, targetPatch, undrainPatch } from "./codecs/shard-pod.ts";
import { expertSetHash } from "./children.ts";
import { ChildApplyError } from "./errors.ts";
import type { ConditionInput } from "./conditions.ts";
import type { PullRequestSync } from "../../gitops/sync.ts";
import { boundObservation, proposalInputs } from "../../gitops/observe.ts";

export interface ActuationContext {
  deployment: MoEDeployment;
  decision: Decision;
  log: Logger;
  nowMs: number;
  /** The observed p99 (evidence for pull requests). */
  observedP99Ms?: number;
  /** The heat observed at this decision, [moeLayer][expert] (pull requests weigh placement files with it). */
  heat?: ReadonlyArray<ReadonlyArray<number>>;
}

export interface ActuationResult {
  /** Writes that failed, each naming its child and keeping the Kubernetes error as cause. */
  errors: ChildApplyError[];
  /** The shard rollout this actuation carried out; undefined when no shard pods were touched. */
  rollout?: RolloutPlan;
  /** Conditions this actuator reports (PullRequest: GitOpsSynced). */
  conditions?: ConditionInput[];
  /** Status this actuator keeps (PullRequest: status.gitops, what its proposals rest on). */
  status?: Pick<MoEDeploymentStatus, "gitops">;
}

export interface Actuator {
  /** Shown in logs and in ADR 0013's table. */
  readonly name: string;
  /**
   * True when this actuator's writes make the workloads exist: status then reports the live
   * children (shards, GPUs, cost, rollout). False: status reports only the recommendation.
   */
  readonly managesWorkloads: boolean;
  /** Carries out the plan. Failures are returned, never thrown. */
  apply(plan: ChildPlan, ctx: ActuationContext): Promise<ActuationResult>;
}

/** Recommend: nothing is written; the decision reaches users through status.recommendation. */
export const noneActuator: Actuator = {
  name: "None",
  managesWorkloads: false,
  apply: () => Promise.resolve({ errors: [] }),
};

/** Auto: router and placement ConfigMap by server-side apply, then the shard rollout (make-before-break). */
export class ClusterActuator implements Actuator {
  readonly name = "Cluster";
  readonly managesWorkloads = true;
  readonly #kube: KubeWriter;
  readonly #clock: Clock;

  constructor(kube: KubeWriter, clock: Clock) {
    this.#kube = kube;
    this.#clock = clock;
  }

  async apply(plan: ChildPlan, ctx: ActuationContext): Promise<ActuationResult> {
    const errors: ChildApplyError[] = [];
    for (const obj of [plan.router, plan.placementConfigMap]) {
      if (!obj) continue;
      await this.#kube
        .apply(obj)
        .catch((err: unknown) =>
          errors.push(new ChildApplyError("apply", { kind: obj.kind!, name: obj.metadata!.name! }, err)),
        );
    }
    // Shard pods follow the placement only once it is published (and the router exists).
    if (!plan.rollout || errors.length > 0) return { errors };
    await this.#rollOut(plan, ctx, errors);
    return { errors, rollout: plan.rollout };
  }

  /** InPlace: new target sets on running shard pods (the shard loads, releases and acknowledges). */
  async #writeTargets(plan: ChildPlan, ctx: ActuationContext, failed: FailedHandler): Promise<void> {
    const namespace = ctx.deployment.metadata.namespace;
    const nowIso = new Date(this.#clock.nowMs()).toISOString();
    for (const t of plan.targetPods) {
      const patch = targetPatch({
        target: t.target,
        served: t.served,
        wanted: t.wanted,
        generation: t.generation,
        phase: t.phase,
        placementVersion: plan.placement.version,
        placementHash: plan.placement.hash ?? "",
        setHash: expertSetHash(t.target),
        nowIso,
        resourceVersion: t.resourceVersion,
        peers: t.peers,
      });
      await this.#kube.mergePatch({ apiVersion: "v1", kind: "Pod", namespace, name: t.pod }, patch).then(
        () => ctx.log.info({ pod: t.pod, phase: t.phase, generation: t.generation }, "wrote in-place target"),
        // Conflict: the pod changed since it was read (an acknowledgement); the next reconcile plans again.
        failed("patch", t.pod, ["NotFound", "Conflict"]),
      );
    }
  }

  async #rollOut(plan: ChildPlan, ctx: ActuationContext, errors: ChildApplyError[]): Promise<void> {
    const namespace = ctx.deployment.metadata.namespace;
    const failed: FailedHandler = (verb, name, ignore) => (err: unknown) => {
      if (!ignore.some((k) => isKind(err, k))) errors.push(new ChildApplyError(verb, { kind: "Pod", name }, err));
    };
    await this.#writeTargets(plan, ctx, failed);
    for (const pod of plan.createPods) {
      const name = pod.metadata!.name!;
      await this.#kube
        .create(pod)
        .then(
          () =>
            ctx.log.info(
              { pod: name, node: pod.metadata?.annotations?.[ShardAnnotation.preferredNode] },
              "created shard pod",
            ),
          failed("create", name, ["AlreadyExists"]),
        );
    }
    // The drain mark is the time it is written (the rollout counts drainSeconds from it).
    const nowIso = new Date(this.#clock.nowMs()).toISOString();
    for (const name of plan.drainPods) {
      await this.#kube
        .mergePatch({ apiVersion: "v1", kind: "Pod", namespace, name }, drainPatch(nowIso))
        .then(() => ctx.log.info({ pod: name }, "draining shard pod"), failed("patch", name, ["NotFound"]));
    }
    for (const name of plan.undrainPods) {
      await this.#kube
        .mergePatch({ apiVersion: "v1", kind: "Pod", namespace, name }, undrainPatch())
        .then(
          () => ctx.log.info({ pod: name }, "drain cancelled: another Ready replica of its experts is gone"),
          failed("patch", name, ["NotFound"]),
        );
    }
    for (const { name, uid } of plan.deletePods) {
      await this.#kube
        .delete({ apiVersion: "v1", kind: "Pod", namespace, name }, { uid })
        .then(
          () => ctx.log.info({ pod: name }, "deleted drained shard pod"),
          failed("delete", name, ["NotFound", "Conflict"]),
        );
    }
  }
}

type Mode = MoEDeployment["spec"]["mode"];

type FailedHandler = (verb: string, name: string, ignore: KubeError["kind"][]) => (err: unknown) => void;

/**
 * PullRequest: nothing is written to the cluster; the GitHub sync (off the reconcile worker)
 * proposes what belongs in Git and the actuator reports its GitOpsSynced condition.
 */
export class PullRequestActuator implements Actuator {
  readonly name = "PullRequest";
  readonly managesWorkloads = false;
  readonly #sync: PullRequestSync | undefined;

  constructor(sync: PullRequestSync | undefined) {
    this.#sync = sync;
  }

  apply(_plan: ChildPlan, ctx: ActuationContext): Promise<ActuationResult> {
    const condition = this.#sync?.observe(
      ctx.deployment,
      boundObservation(ctx.deployment, ctx.decision, ctx.observedP99Ms, ctx.nowMs),
      proposalInputs(ctx.deployment, ctx.decision, ctx.heat),
    );
    const gitops = this.#sync?.statusOf(ctx.deployment);
    return Promise.resolve({ errors: [], conditions: condition ? [condition] : [], status: { gitops } });
  }
}

export interface ActuatorDeps {
  kube: KubeWriter;
  clock: Clock;
  gitops?: PullRequestSync;
}

/** One actuator per spec.mode. */
export const ACTUATORS: { readonly [M in Mode]: (deps: ActuatorDeps) => Actuator } = {
  Auto: (deps) => new ClusterActuator(deps.kube, deps.clock),
  Recommend: () => noneActuator,
  PullRequest: (deps) => new PullRequestActuator(deps.gitops),
};
