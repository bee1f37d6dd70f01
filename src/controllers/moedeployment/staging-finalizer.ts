// The weight-staging finalizer (ADR 0022 "Turning staging off, deleting the deployment"): a
// MoEDeployment whose staging left marks, Jobs or files on nodes keeps the finalizer
// moe.dev/weight-staging until evict Jobs have removed them, so deleting it (or turning staging
// off, which needs no finalizer) leaves nothing on the nodes. A deletion never waits longer than
// RETIRE_DEADLINE_MS: then the marks and Jobs go and a Warning names the nodes whose files stay.
import { Finalizer } from "../../api/constants.ts";
import type { MoEDeployment, StagingStatus } from "../../api/schema.ts";
import type { KubeWriter } from "../../adapters/kube.ts";
import type { EventSpec } from "./events.ts";
import { abandonStaging, stagingHasState, syncStaging, type StagingObserved } from "./staging.ts";

/** Longest a deletion waits for the evict Jobs (a failed evict is retried after its Job's 10-min TTL). */
export const RETIRE_DEADLINE_MS = 15 * 60_000;
/** How often a deletion checks its evict Jobs. */
export const RETIRE_POLL_MS = 5_000;

/** Staging runs (Auto, Disaggregated, enabled), or something it staged remains on the nodes. */
export function wantsStagingFinalizer(d: MoEDeployment, o: Pick<StagingObserved, "nodes" | "jobs">): boolean {
  const runs = d.spec.prewarm.staging.enabled && d.spec.mode === "Auto" && d.spec.serving.topology !== "WideEP";
  return runs || stagingHasState(d, o);
}

export interface StagingFinalizeResult {
  /** The finalizer can go. */
  done: boolean;
  /** status.staging to write while evicting (undefined: remove it). */
  status?: StagingStatus;
  events: EventSpec[];
  errors: string[];
}

/**
 * One round of evicting a deleted deployment's staged weights; `d` undefined when its spec no
 * longer parses (`problem` says why): then nothing can be evicted and the finalizer goes.
 */
export async function finalizeStaging(
  kube: KubeWriter,
  parsed: { d: MoEDeployment; problem?: undefined } | { d?: undefined; problem: string },
  o: Pick<StagingObserved, "nodes" | "jobs" | "shardPods" | "views">,
  t: { nowMs: number; deletedAtMs: number },
): Promise<StagingFinalizeResult> {
  const d = parsed.d;
  if (!d) {
    return {
      done: true,
      events: [
        {
          type: "Warning",
          reason: "StagingNotEvicted",
          message: `${parsed.problem}, so the staged weights cannot be evicted; the finalizer ${Finalizer.weightStaging} is removed`,
        },
      ],
      errors: [],
    };
  }
  if (t.nowMs - t.deletedAtMs >= RETIRE_DEADLINE_MS) {
    const r = await abandonStaging(kube, d, o);
    return { done: r.errors.length === 0, events: r.events, errors: r.errors };
  }
  const r = await syncStaging(kube, d, { ...o, nowMs: t.nowMs });
  if (!r) return { done: true, events: [], errors: [] };
  return { done: r.retired, ...(r.status ? { status: r.status } : {}), events: r.events, errors: r.errors };
}
