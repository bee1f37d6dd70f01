// The router codec: the router Deployment, and the content hash the operator
// stamps on it so an unchanged router is not re-applied on every reconcile.
import type { V1Deployment } from "@kubernetes/client-node";
import { Label, LabelValue } from "../../../api/constants.ts";
import { disaggregated, type MoEDeployment } from "../../../api/schema.ts";
import { fnv1a64 } from "../../../domain/fnv.ts";
import { childNames, commonLabels, ownerReference, podSpecFrom, withoutOperatorKeys } from "../children.ts";
import { deploymentDrift } from "../recover.ts";

export const RouterAnnotation = {
  /** FNV-1a 64 of the rendered Deployment (before this annotation is added). */
  appliedHash: "moe.dev/applied-hash",
} as const;

export function renderRouter(d: MoEDeployment): V1Deployment {
  const name = d.metadata.name!;
  const r = disaggregated(d.spec.serving).router;
  const labels = commonLabels(d, LabelValue.componentRouter);
  const selector = { [Label.deployment]: name, [Label.component]: LabelValue.componentRouter };
  return {
    apiVersion: "apps/v1",
    kind: "Deployment",
    metadata: {
      name: childNames(name).router,
      namespace: d.metadata.namespace,
      labels,
      ownerReferences: [ownerReference(d)],
    },
    spec: {
      replicas: r.replicas,
      selector: { matchLabels: selector },
      strategy: { type: "RollingUpdate", rollingUpdate: { maxSurge: 1, maxUnavailable: 0 } },
      template: {
        metadata: {
          labels: { ...withoutOperatorKeys(r.template.metadata?.labels), ...labels },
          annotations: r.template.metadata?.annotations && withoutOperatorKeys(r.template.metadata.annotations),
        },
        spec: podSpecFrom(d, r.template, r.gpusPerReplica, [
          { name: "MOE_DEPLOYMENT", value: name },
          { name: "MOE_PLACEMENT_CONFIGMAP", value: childNames(name).placement },
        ]),
      },
    },
  };
}

/**
 * The router to apply, stamped with its content hash; undefined when the live one carries the same
 * hash and no hand edit changed its replicas or images since.
 */
export function routerToApply(d: MoEDeployment, live: V1Deployment | undefined): V1Deployment | undefined {
  const obj = renderRouter(d);
  const hash = fnv1a64(JSON.stringify(obj));
  if (readAppliedHash(live) === hash && !(live && deploymentDrift(obj, live))) return undefined;
  obj.metadata = {
    ...obj.metadata,
    annotations: { ...obj.metadata?.annotations, [RouterAnnotation.appliedHash]: hash },
  };
  return obj;
}

/** What a hand edit changed (replicas, images) in a router the operator applied as it renders it now. */
export function routerDrift(d: MoEDeployment, live: V1Deployment | undefined): string | undefined {
  if (!live) return undefined;
  const obj = renderRouter(d);
  if (readAppliedHash(live) !== fnv1a64(JSON.stringify(obj))) return undefined;
  return deploymentDrift(obj, live);
}

export function readAppliedHash(live: V1Deployment | undefined): string | undefined {
  return live?.metadata?.annotations?.[RouterAnnotation.appliedHash];
}

/** The router serves: enough Ready replicas of the current generation. */
export function readRouterReady(live: V1Deployment | undefined, replicas: number): boolean {
  return (
    (live?.status?.readyReplicas ?? 0) >= replicas &&
    (live?.status?.observedGeneration ?? 0) >= (live?.metadata?.generation ?? 1)
  );
}
