// A trivial capacity signal for tests/unit/capacity-signals.test.ts: one file, registered with one
// line. It asks for a fixed floor once it has seen `afterTicks` usable samples, counting them in
// its own state (CapacityState.signalStates).

import type { CapacitySignal, FloorSignal } from "../../src/domain/scaling/signals.ts";

export function fixedFloorSignal(floorGpus: number, afterTicks: number): CapacitySignal<"FixedFloor"> {
  const id = "fixed-floor";
  const ticks = (previous: unknown): number => (typeof previous === "number" ? previous : 0);
  return {
    kind: "recommend",
    id,
    reason: "FixedFloor",
    apiReason: "FixedFloorReached",
    winsTies: false,
    evaluate: (ctx) =>
      ticks(ctx.state.signalStates?.[id]) >= afterTicks
        ? { floorGpus, message: `fixed floor of ${floorGpus} GPUs after ${afterTicks} samples` }
        : { floorGpus: 0, message: "" },
    learnOwn: (_ctx, previous) => ticks(previous) + 1,
  };
}

/** A floor-kind signal: a fixed minimum that needs no load (applies also while holding on bad data). */
export function fixedMinimumSignal(floorGpus: number): FloorSignal<"FixedMinimum"> {
  return {
    kind: "floor",
    id: "fixed-minimum",
    reason: "FixedMinimum",
    apiReason: "FixedMinimumHeld",
    evaluate: () => ({ floorGpus, message: `fixed minimum of ${floorGpus} GPUs` }),
  };
}
