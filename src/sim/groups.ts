// Group mode of the simulator (issue 18, docs/adr/0021-wide-ep-groups.md): capacity moves in whole
// WideEP groups (nodesPerGroup x gpusPerNode GPUs) for every policy and the oracle, rounded by the
// operator's own function (src/domain/wideep/groups.ts); a group starts one pod per node and is
// Ready when its slowest pod is.

import { groupBounds, groupsFor, gpusPerGroup } from "../domain/wideep/groups.ts";
import type { GroupShape } from "../domain/wideep/groups.ts";

export type { GroupShape } from "../domain/wideep/groups.ts";

/** GPU bounds and the rounding of a GPU count to whole groups (identity without groups). */
export interface GroupQuantiser {
  readonly minGpus: number;
  readonly maxGpus: number;
  /** GPUs per group (1 without groups). */
  readonly unit: number;
  /** A GPU count rounded up to whole groups within the bounds. */
  readonly quantise: (gpus: number) => number;
}

/**
 * The simulator's bounds in group mode: at least ceil(min / G) groups (and one), at most
 * floor(max / G) (as spec.scaling.minShards/maxShards are read under WideEP). Without a shape the
 * bounds are unchanged and quantise is the identity.
 */
export function groupQuantiser(minGpus: number, maxGpus: number, shape: GroupShape | undefined): GroupQuantiser {
  if (shape === undefined) return { minGpus, maxGpus, unit: 1, quantise: (gpus) => gpus };
  const g = gpusPerGroup(shape);
  const b = groupBounds(minGpus, maxGpus, shape);
  return {
    minGpus: b.minGroups * g,
    maxGpus: b.maxGroups * g,
    unit: g,
    quantise: (gpus) => groupsFor(gpus, b, shape) * g,
  };
}

const Z_STEP = 0.001;
const Z_MAX = 8;

/**
 * Mean of the slowest of `pods` cold starts, each drawn from the clamped log-normal
 * (median x exp(sigma z), clamped to [minS, maxS]): a group's expected start-to-Ready, which the
 * oracle plans with. Quadrature over z: E[max] = sum of x(z) d(Phi(z)^pods), Phi accumulated from
 * the normal density on the grid.
 */
export function slowestOfColdStartMeanS(
  c: { readonly medianS: number; readonly sigma: number; readonly minS: number; readonly maxS: number },
  pods: number,
): number {
  let cdf = 0;
  let prevPow = 0;
  let mean = 0;
  const norm = 1 / Math.sqrt(2 * Math.PI);
  for (let z = -Z_MAX; z <= Z_MAX; z += Z_STEP) {
    cdf += norm * Math.exp((-z * z) / 2) * Z_STEP;
    const pow = Math.min(1, cdf) ** pods;
    const x = Math.min(c.maxS, Math.max(c.minS, c.medianS * Math.exp(c.sigma * z)));
    mean += x * (pow - prevPow);
    prevPow = pow;
  }
  return mean / prevPow;
}
