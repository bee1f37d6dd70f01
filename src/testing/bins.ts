// Locates (building on first use) the pinned control-plane binaries.
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { runSync } from "./process.ts";

export interface ControlPlaneBins {
  dir: string;
  etcd: string;
  kubeApiserver: string;
  kubeScheduler: string;
  kubeControllerManager: string;
  kubectl: string;
  kwok: string;
  /** Multi-document YAML of kwok Stage objects (from the pinned kwok module). */
  kwokStages: string;
}

export function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, "package.json"))) {
    const up = dirname(dir);
    if (up === dir) throw new Error("repository root (package.json) not found");
    dir = up;
  }
  return dir;
}

let cached: ControlPlaneBins | undefined;

/**
 * The binaries from `hack/build-bins.sh` (cached outside the repo keyed by the
 * pins in tools/; a cache hit costs a hash of a few files). `binDir` overrides.
 */
export function controlPlaneBins(binDir?: string): ControlPlaneBins {
  if (cached && (binDir === undefined || cached.dir === binDir)) return cached;
  const dir =
    binDir ??
    runSync("bash", [join(repoRoot(), "hack", "build-bins.sh")])
      .trim()
      .split("\n")
      .pop()!;
  const bins: ControlPlaneBins = {
    dir,
    etcd: join(dir, "etcd"),
    kubeApiserver: join(dir, "kube-apiserver"),
    kubeScheduler: join(dir, "kube-scheduler"),
    kubeControllerManager: join(dir, "kube-controller-manager"),
    kubectl: join(dir, "kubectl"),
    kwok: join(dir, "kwok"),
    kwokStages: join(dir, "kwok-stages.yaml"),
  };
  for (const [name, path] of Object.entries(bins)) {
    if (name !== "dir" && !existsSync(path)) throw new Error(`control-plane binary missing: ${path} (run make bins)`);
  }
  cached = bins;
  return bins;
}

export interface LwsBins {
  dir: string;
  /** The LeaderWorkerSet controller manager (sigs.k8s.io/lws/cmd). */
  manager: string;
  /** The module's CRDs (config/crd/bases). */
  crds: string[];
  /** The module's config/webhook manifests.yaml and the JSON patches its kustomization applies to it. */
  webhookManifests: string;
  webhookPatches: string[];
}

let cachedLws: LwsBins | undefined;

/**
 * The LeaderWorkerSet controller from `hack/build-lws.sh` (pinned in hack/lws, cached outside
 * the repo under its own key, so it never changes the control-plane key). `dir` overrides.
 */
export function lwsBins(dir?: string): LwsBins {
  if (cachedLws && (dir === undefined || cachedLws.dir === dir)) return cachedLws;
  const out =
    dir ??
    runSync("bash", [join(repoRoot(), "hack", "build-lws.sh")])
      .trim()
      .split("\n")
      .pop()!;
  const bins: LwsBins = {
    dir: out,
    manager: join(out, "lws-manager"),
    crds: [
      join(out, "crds", "leaderworkerset.x-k8s.io_leaderworkersets.yaml"),
      join(out, "crds", "disaggregatedset.x-k8s.io_disaggregatedsets.yaml"),
    ],
    webhookManifests: join(out, "webhook", "manifests.yaml"),
    webhookPatches: [join(out, "webhook", "mutating-patch.yaml"), join(out, "webhook", "validating-patch.yaml")],
  };
  for (const path of [bins.manager, ...bins.crds, bins.webhookManifests, ...bins.webhookPatches])
    if (!existsSync(path)) throw new Error(`LeaderWorkerSet file missing: ${path} (run make bins)`);
  cachedLws = bins;
  return bins;
}
