// Watches shard pods and checks, at every event, that every (layer, expert)
// has at least one Ready replica among the pods that exist at that instant.
// An in-place shard (spec.placement.moves.mode InPlace) counts with the set it
// acknowledged serving, not its target.
import { Watch, CoreV1Api, type KubeConfig, type V1Pod } from "@kubernetes/client-node";
import { countUncovered } from "../../src/domain/rollout/index.ts";
import { servedExperts, servesYet } from "../../src/emulator/agent.ts";

export interface CoverageWatch {
  /** Events seen after coverage was first complete. */
  readonly events: number;
  /** Largest number of uncovered (layer, expert) pairs seen after coverage was first complete. */
  readonly worstUncovered: number;
  readonly violations: string[];
  readonly established: boolean;
  stop(): void;
}

export async function watchCoverage(
  kc: KubeConfig,
  namespace: string,
  deployment: string,
  layers: number,
  experts: number,
): Promise<CoverageWatch> {
  const pods = new Map<string, V1Pod>();
  const state = { events: 0, worstUncovered: 0, violations: [] as string[], established: false };
  const selector = `moe.dev/deployment=${deployment},moe.dev/component=expert-shard`;
  const check = (what: string) => {
    const ready = [...pods.values()].filter(
      (p) =>
        p.status?.phase === "Running" &&
        p.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True") &&
        servesYet(p),
    );
    const views = ready.map((p) => ({ experts: servedExperts(p) }));
    const missing = countUncovered(views, layers, experts);
    if (!state.established) {
      if (missing === 0 && ready.length > 0) state.established = true;
      return;
    }
    state.events++;
    if (missing > 0) {
      state.worstUncovered = Math.max(state.worstUncovered, missing);
      state.violations.push(`${what}: ${missing} uncovered with ${ready.length} ready pods`);
    }
  };
  let stopped = false;
  let req: AbortController | undefined;
  const api = kc.makeApiClient(CoreV1Api);
  // List, then watch from the list's resourceVersion; when the watch ends (the
  // client times long watches out), list and watch again.
  const run = async (): Promise<void> => {
    if (stopped) return;
    const list = await api.listNamespacedPod({ namespace, labelSelector: selector });
    pods.clear();
    for (const p of list.items) pods.set(p.metadata!.name!, p);
    check("list");
    req = await new Watch(kc).watch(
      `/api/v1/namespaces/${namespace}/pods`,
      { labelSelector: selector, resourceVersion: list.metadata?.resourceVersion },
      (type, obj: V1Pod) => {
        if (type === "DELETED") pods.delete(obj.metadata!.name!);
        else pods.set(obj.metadata!.name!, obj);
        check(`${type} ${obj.metadata?.name}`);
      },
      () => {
        if (!stopped)
          setTimeout(
            () => void run().catch((err: unknown) => state.violations.push(`re-watch failed: ${String(err)}`)),
            10,
          );
      },
    );
  };
  await run();
  return {
    get events() {
      return state.events;
    },
    get worstUncovered() {
      return state.worstUncovered;
    },
    get violations() {
      return state.violations;
    },
    get established() {
      return state.established;
    },
    stop: () => {
      stopped = true;
      req?.abort();
    },
  };
}
