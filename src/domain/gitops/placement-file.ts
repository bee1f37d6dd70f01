// The placement file an engine is configured with from Git (SGLang --init-expert-location):
// `{"physical_to_logical_map": [[...], ...]}`, written deterministically (the one key, one
// layer per line, no spaces inside a row, a final newline) so the same placement always has
// the same bytes and so the same content hash, and a review diff shows the layers that moved.
import { computePlacementMetrics } from "../placement/metrics.ts";
import { placementFromSglang } from "../placement/sglang.ts";
import type { Placement } from "../placement/types.ts";

/** Largest placement file read back from Git (characters). */
export const MAX_PLACEMENT_FILE_CHARS = 8 * 1_048_576;

export function renderPlacementFile(physicalToLogical: readonly (readonly number[])[]): string {
  const rows = physicalToLogical.map((r) => `    [${r.join(",")}]`);
  return `{\n  "physical_to_logical_map": [\n${rows.join(",\n")}\n  ]\n}\n`;
}

/** The map in a placement file, or undefined when it is not one (any JSON formatting is accepted). */
export function parsePlacementFile(text: string): number[][] | undefined {
  if (text.length > MAX_PLACEMENT_FILE_CHARS) return undefined;
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return undefined;
  }
  const map = (v as { physical_to_logical_map?: unknown } | null)?.physical_to_logical_map;
  if (!Array.isArray(map)) return undefined;
  const ok = map.every((r) => Array.isArray(r) && r.every((e) => Number.isInteger(e)));
  return ok ? (map as number[][]) : undefined;
}

/**
 * Percent of physical expert slots (over all rows) whose expert differs between two maps; 100 when
 * their shapes differ (another GPU count or layer count: every engine restarts with a new layout).
 */
export function movedSlotPercent(
  from: readonly (readonly number[])[] | undefined,
  to: readonly (readonly number[])[],
): number {
  if (!from || from.length !== to.length) return 100;
  let moved = 0;
  let total = 0;
  for (let l = 0; l < to.length; l++) {
    const a = from[l]!;
    const b = to[l]!;
    if (a.length !== b.length) return 100;
    for (let i = 0; i < b.length; i++) if (a[i] !== b[i]) moved++;
    total += b.length;
  }
  return total === 0 ? 0 : (100 * moved) / total;
}

/** A placement the operator would have the engines start from, with what it was planned for. */
export interface PlacementCandidate {
  /** physical_to_logical_map rows (dense layers first). */
  readonly map: readonly (readonly number[])[];
  readonly placement: Placement;
  /** [moeLayer][expert] heat the candidate was planned with (observed). */
  readonly heat: ReadonlyArray<ReadonlyArray<number>>;
  readonly balancedness: number;
  readonly denseLayers: number;
}

export interface PlacementComparison {
  /** The reference is missing, unreadable, or has another GPU or layer count. */
  readonly shapeChanged: boolean;
  /** The reference's balancedness under the candidate's heat (undefined when shapeChanged). */
  readonly referenceBalancedness?: number;
  readonly movedPercent: number;
}

/** How a candidate compares with a reference map (the file in Git, or the pending proposal). */
export function comparePlacement(
  c: PlacementCandidate,
  reference: readonly (readonly number[])[] | undefined,
): PlacementComparison {
  const movedPercent = movedSlotPercent(reference, c.map);
  // The shape itself, not "every slot moved" (a same-shape map may differ in every slot).
  const sameShape =
    reference !== undefined &&
    reference.length === c.map.length &&
    reference.every((row, l) => row.length === c.map[l]!.length);
  if (!sameShape) return { shapeChanged: true, movedPercent };
  const gpus = c.placement.gpus.map((g) => ({ ...g }));
  const parsed = placementFromSglang({ physical_to_logical_map: reference }, gpus, c.placement.expertCount, {
    denseLayerCount: c.denseLayers,
  });
  if (!parsed.ok || parsed.value.layerCount !== c.placement.layerCount) return { shapeChanged: true, movedPercent };
  return {
    shapeChanged: false,
    referenceBalancedness: computePlacementMetrics(parsed.value, c.heat).balancedness,
    movedPercent,
  };
}

/** Worth proposing: another shape, or a balancedness gain of at least minGain over the reference. */
export function placementWorthProposing(cmp: PlacementComparison, c: PlacementCandidate, minGain: number): boolean {
  if (cmp.movedPercent === 0) return false;
  return cmp.shapeChanged || c.balancedness - (cmp.referenceBalancedness ?? 0) >= minGain;
}
