// What can go wrong while writing an MoEDeployment's children or status, as
// Errors that keep their causes: which child, which verb, which Kubernetes error.
import { KubeApiError, type KubeError } from "../../adapters/kube-errors.ts";

export interface ChildRef {
  kind: string;
  name: string;
}

/** One child's write failed. The cause is the KubeApiError (or whatever the client threw). */
export class ChildApplyError extends Error {
  readonly child: ChildRef;
  readonly verb: string;
  /** The classified Kubernetes error; Unknown when the failure was not an API error. */
  readonly kubeError: KubeError;
  readonly statusCode: number | undefined;
  constructor(verb: string, child: ChildRef, cause: unknown) {
    const api = cause instanceof KubeApiError ? cause : undefined;
    const kubeError: KubeError = api?.kubeError ?? {
      kind: "Unknown",
      message: cause instanceof Error ? cause.message : String(cause),
    };
    const code = api?.statusCode;
    super(
      `${verb} ${child.kind}/${child.name}: ${kubeError.kind}${code !== undefined ? ` (HTTP ${code})` : ""}: ${kubeError.message}`,
      { cause },
    );
    this.name = "ChildApplyError";
    this.child = child;
    this.verb = verb;
    this.kubeError = kubeError;
    this.statusCode = code;
  }
}

/** Some children of a deployment could not be written; `errors` are the ChildApplyErrors. */
export class ApplyFailed extends AggregateError {
  constructor(key: string, errors: readonly ChildApplyError[]) {
    super(errors, `applying children of ${key} failed: ${errors.map((e) => e.message).join("; ")}`, {
      cause: errors[0],
    });
    this.name = "ApplyFailed";
  }
}

/** A status write lost a race (someone changed or deleted the object): requeue quietly. */
export class ConflictRequeue extends Error {
  constructor(message: string, options: { cause: unknown }) {
    super(message, options);
    this.name = "ConflictRequeue";
  }
}
