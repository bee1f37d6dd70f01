// The emulated router's expert map, switched as a whole. A real engine's router keeps dispatching
// by the expert map it has until the new one is in place everywhere (SGLang's EPLB updates its
// physical-to-logical map after the weights moved; an AFD router reloads the placement when the
// shards acknowledged it). Routing by a half-applied placement would send the work of experts bound
// for shards that are still loading (or still starting) to nobody, or pile it on the few shards
// that loaded early. So the router keeps the last placement that every shard served in full, and
// moves to the new one only once each shard of it serves its whole set.
import { containsSets, intersectSets, unionSets, type ExpertSets } from "../domain/inplace/sets.ts";
import type { EmulatedShard } from "./fleet.ts";

/** Each shard's set in the last placement that was served in full, by pod name. */
export type RouterMap = ReadonlyMap<string, ExpertSets>;

function subtract(a: ExpertSets, b: ExpertSets): number[][] {
  return a.map((row, l) => {
    const drop = new Set(b[l] ?? []);
    return row.filter((e) => !drop.has(e));
  });
}

/**
 * The shards as the router sees them this second, and the map to keep. Shards without a placement
 * set (mode Replace) and draining ones pass through unchanged.
 */
export function routeByMap(
  shards: readonly EmulatedShard[],
  last: RouterMap | undefined,
): { shards: EmulatedShard[]; map: RouterMap | undefined } {
  const active = shards.filter((s) => !s.draining && s.placed !== undefined);
  if (active.length === 0) return { shards: [...shards], map: last };
  const served = (s: EmulatedShard) => unionSets(s.experts, s.leaving ?? []);
  const complete = active.every((s) => s.ready && containsSets(served(s), s.placed!));
  if (complete) return { shards: [...shards], map: new Map(active.map((s) => [s.name, s.placed!])) };
  if (last === undefined) return { shards: [...shards], map: undefined };
  return {
    shards: shards.map((s) => {
      if (s.draining || s.placed === undefined) return s;
      const prev = last.get(s.name) ?? [];
      const all = served(s);
      return { ...s, experts: intersectSets(all, prev), leaving: subtract(all, prev), placed: prev };
    }),
    map: last,
  };
}
