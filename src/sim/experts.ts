// Model shapes and the expert side of the fleet: drifting routing heat and the balancedness of a
// heat-aware placement on N GPUs (the hottest GPU sets the pace of every synchronous EP step).
//
// Heat: a few representative MoE layers from the calibrated synthetic generator
// (src/domain/synthetic/heat.ts), drifting by an Ornstein-Uhlenbeck process on log load per
// epoch. Placement (the simulator's stand-in for the placement core, cheap enough to evaluate
// for every fleet size): slots per GPU = ceil(experts * (1 + redundancy) / N), at least
// minSlotsPerGpu and at most the memory bound, all slots filled, replicas to the hottest experts by D'Hondt, then longest-processing-time
// assignment. The plan uses the previous epoch's heat (the operator plans on measured heat) and
// is evaluated on the current epoch's heat, so drift costs balance as in a real fleet.

import { combineLayerBalancedness } from "../domain/latency/model.ts";
import { createRng } from "../domain/rng.ts";
import { generateHeat } from "../domain/synthetic/heat.ts";

export interface ModelShape {
  readonly name: string;
  readonly moeLayers: number;
  readonly expertCount: number;
  readonly topK: number;
  /** Routed-expert slots one GPU can hold (memory bound). */
  readonly maxSlotsPerGpu: number;
  /** Slots every GPU fills at least (DeepSeek decode EP144: 2 routed experts per GPU); more GPUs then mean more redundant replicas. */
  readonly minSlotsPerGpu: number;
  /** Redundant replicas as a share of experts (DeepSeek: 32 / 256). */
  readonly redundancy: number;
  readonly gpusPerNode: number;
}

export const MODEL_PRESETS: Readonly<Record<string, ModelShape>> = {
  // 61 layers, 3 dense: 58 MoE layers x 256 routed experts, top-8. ~2.4-2.6 GB per expert (all
  // layers, FP8) and ~40 GB of an 80 GB GPU for experts: at most 16 routed slots per GPU.
  "deepseek-v3": {
    name: "deepseek-v3",
    moeLayers: 58,
    expertCount: 256,
    topK: 8,
    maxSlotsPerGpu: 16,
    minSlotsPerGpu: 2,
    redundancy: 0.125,
    gpusPerNode: 8,
  },
  // Qwen3-235B-A22B: 94 layers x 128 experts, top-8 (smaller experts: more fit per GPU).
  "qwen3-235b": {
    name: "qwen3-235b",
    moeLayers: 94,
    expertCount: 128,
    topK: 8,
    maxSlotsPerGpu: 32,
    minSlotsPerGpu: 2,
    redundancy: 0.125,
    gpusPerNode: 8,
  },
  // Mixtral 8x7B: 32 layers x 8 experts, top-2.
  "mixtral-8x7b": {
    name: "mixtral-8x7b",
    moeLayers: 32,
    expertCount: 8,
    topK: 2,
    maxSlotsPerGpu: 8,
    minSlotsPerGpu: 1,
    redundancy: 0,
    gpusPerNode: 8,
  },
};

/** Fewest GPUs that hold every expert once. */
export function minGpusForShape(shape: ModelShape): number {
  return Math.max(1, Math.ceil(shape.expertCount / shape.maxSlotsPerGpu));
}

export function slotsPerGpuFor(shape: ModelShape, gpus: number): number {
  const want = Math.ceil((shape.expertCount * (1 + shape.redundancy)) / Math.max(1, gpus));
  return Math.max(1, Math.min(shape.maxSlotsPerGpu, Math.max(shape.minSlotsPerGpu, want)));
}

export interface PlacementQuality {
  readonly balancedness: number;
  readonly crossNodeShare: number;
  readonly redundantExpertsPerGpu: number;
}

export interface ExpertModelOptions {
  readonly seed: number;
  readonly epochS?: number;
  /** Representative layers simulated (the model's balancedness is their harmonic mean). */
  readonly layers?: number;
  /** Drift time constant of the log heat (hours). */
  readonly driftHours?: number;
  /** Stationary sigma of the drift of log heat. */
  readonly driftSigma?: number;
}

/** Binary min-heap over GPU indices keyed by load (only GPUs with free slots are in it). */
function heapPush(heap: Int32Array, size: number, key: Float64Array, g: number): number {
  let i = size;
  heap[i] = g;
  while (i > 0) {
    const p = (i - 1) >> 1;
    if ((key[heap[p] as number] as number) <= (key[g] as number)) break;
    heap[i] = heap[p] as number;
    i = p;
  }
  heap[i] = g;
  return size + 1;
}

function heapPop(heap: Int32Array, size: number, key: Float64Array): number {
  const last = heap[size - 1] as number;
  const n = size - 1;
  let i = 0;
  for (;;) {
    const l = 2 * i + 1;
    if (l >= n) break;
    const r = l + 1;
    const c = r < n && (key[heap[r] as number] as number) < (key[heap[l] as number] as number) ? r : l;
    if ((key[heap[c] as number] as number) >= (key[last] as number)) break;
    heap[i] = heap[c] as number;
    i = c;
  }
  if (n > 0) heap[i] = last;
  return n;
}

/**
 * Balancedness (mean / max GPU load) of one layer placed on `gpus` GPUs with `slots` slots each,
 * planned on `planHeat` and loaded with `liveHeat`.
 */
export function layerBalancedness(
  planHeat: ArrayLike<number>,
  liveHeat: ArrayLike<number>,
  gpus: number,
  slots: number,
): number {
  const e = planHeat.length;
  const total = gpus * slots;
  if (total < e) return 0;
  // D'Hondt: each extra replica goes to the expert with the highest load per replica.
  const counts = new Int32Array(e).fill(1);
  const extra = total - e;
  if (extra > 0) {
    const key = new Float64Array(e);
    const heap = new Int32Array(e);
    // Max-heap via negated keys.
    let size = 0;
    for (let x = 0; x < e; x++) {
      key[x] = -(planHeat[x] as number);
      size = heapPush(heap, size, key, x);
    }
    for (let k = 0; k < extra; k++) {
      const x = heap[0] as number;
      size = heapPop(heap, size, key);
      counts[x] = (counts[x] as number) + 1;
      key[x] = -(planHeat[x] as number) / (counts[x] as number);
      size = heapPush(heap, size, key, x);
    }
  }
  // Replicas, sorted by planned load (descending).
  const repExpert = new Int32Array(total);
  const repLoad = new Float64Array(total);
  let r = 0;
  for (let x = 0; x < e; x++) {
    const c = counts[x] as number;
    for (let k = 0; k < c; k++) {
      repExpert[r] = x;
      repLoad[r] = (planHeat[x] as number) / c;
      r++;
    }
  }
  const order = Array.from({ length: total }, (_, i) => i).sort(
    (a, b) => (repLoad[b] as number) - (repLoad[a] as number) || a - b,
  );
  // LPT with slot limits (planned loads), then live loads on the result.
  const planLoad = new Float64Array(gpus);
  const liveLoad = new Float64Array(gpus);
  const free = new Int32Array(gpus).fill(slots);
  const heap = new Int32Array(gpus);
  let size = 0;
  for (let g = 0; g < gpus; g++) size = heapPush(heap, size, planLoad, g);
  for (const i of order) {
    const g = heap[0] as number;
    size = heapPop(heap, size, planLoad);
    const x = repExpert[i] as number;
    planLoad[g] = (planLoad[g] as number) + (repLoad[i] as number);
    liveLoad[g] = (liveLoad[g] as number) + (liveHeat[x] as number) / (counts[x] as number);
    free[g] = (free[g] as number) - 1;
    if ((free[g] as number) > 0) size = heapPush(heap, size, planLoad, g);
  }
  let max = 0;
  let sum = 0;
  for (let g = 0; g < gpus; g++) {
    const v = liveLoad[g] as number;
    sum += v;
    if (v > max) max = v;
  }
  return max > 0 ? sum / gpus / max : 1;
}

/** Drifting heat and memoised placement quality per (epoch, GPU count). */
export class ExpertFleetModel {
  readonly shape: ModelShape;
  readonly epochS: number;
  private readonly layerCount: number;
  private readonly heats: Float64Array[] = []; // per epoch: layers * experts, flattened
  private readonly logDrift: Float64Array;
  private readonly base: Float64Array;
  private readonly rho: number;
  private readonly innovation: number;
  private readonly rng;
  private readonly memo = new Map<number, PlacementQuality>();

  constructor(shape: ModelShape, options: ExpertModelOptions) {
    this.shape = shape;
    this.epochS = options.epochS ?? 600;
    this.layerCount = Math.max(1, Math.min(shape.moeLayers, options.layers ?? 4));
    const heat = generateHeat({
      layerCount: this.layerCount,
      expertCount: shape.expertCount,
      seed: options.seed,
      topK: shape.topK,
      tokensPerLayer: 1,
    });
    this.base = new Float64Array(heat.flat());
    this.logDrift = new Float64Array(this.base.length);
    const tauS = (options.driftHours ?? 6) * 3600;
    this.rho = Math.exp(-this.epochS / tauS);
    const sigma = options.driftSigma ?? 0.35;
    this.innovation = sigma * Math.sqrt(1 - this.rho * this.rho);
    this.rng = createRng((options.seed ^ 0x5eed) >>> 0);
    this.rng.normal();
    // Start from the stationary distribution of the drift.
    for (let i = 0; i < this.logDrift.length; i++) this.logDrift[i] = sigma * this.rng.normal();
  }

  private heatAt(epoch: number): Float64Array {
    while (this.heats.length <= epoch) {
      if (this.heats.length > 0) {
        for (let i = 0; i < this.logDrift.length; i++) {
          this.logDrift[i] = this.rho * (this.logDrift[i] as number) + this.innovation * this.rng.normal();
        }
      }
      const h = new Float64Array(this.base.length);
      for (let i = 0; i < h.length; i++) h[i] = (this.base[i] as number) * Math.exp(this.logDrift[i] as number);
      this.heats.push(h);
    }
    return this.heats[epoch] as Float64Array;
  }

  /**
   * Placement quality with `gpus` GPUs during `epoch` (planned on the previous epoch's heat).
   *
   * More GPUs are never worse than fewer: where the slot rule gives fewer slots per GPU (e.g.
   * deepseek-v3 at 144 GPUs: 2 slots instead of 3, 288 replicas instead of 429), the fleet would
   * rather run the placement of the largest smaller fleet with more slots and leave the rest idle.
   * So the effective capacity (GPUs x balancedness) is the better of the two; without this, 144
   * GPUs served ~9 % less than 142, and a policy that scaled up could land in the dip.
   */
  quality(gpus: number, epoch: number): PlacementQuality {
    const g = Math.max(0, Math.floor(gpus));
    const key = epoch * 1_000_003 + g;
    const hit = this.memo.get(key);
    if (hit !== undefined) return hit;
    let q = this.placementQuality(g, epoch);
    const slots = slotsPerGpuFor(this.shape, g);
    let m = g - 1;
    while (m > 0 && slotsPerGpuFor(this.shape, m) === slots) m--;
    if (m > 0 && slotsPerGpuFor(this.shape, m) > slots) {
      const sub = this.quality(m, epoch);
      if (m * sub.balancedness > g * q.balancedness) {
        q = {
          balancedness: (m * sub.balancedness) / g,
          crossNodeShare: sub.crossNodeShare,
          redundantExpertsPerGpu: sub.redundantExpertsPerGpu,
        };
      }
    }
    this.memo.set(key, q);
    return q;
  }

  /** Quality of the slot rule's own placement on `g` GPUs (not memoised). */
  private placementQuality(g: number, epoch: number): PlacementQuality {
    const e = this.shape.expertCount;
    let q: PlacementQuality;
    const slots = slotsPerGpuFor(this.shape, g);
    if (g === 0 || g * slots < e) {
      q = { balancedness: 0, crossNodeShare: 0, redundantExpertsPerGpu: 0 };
    } else {
      const live = this.heatAt(epoch);
      const plan = this.heatAt(Math.max(0, epoch - 1));
      const perLayer: number[] = [];
      for (let l = 0; l < this.layerCount; l++) {
        perLayer.push(
          layerBalancedness(plan.subarray(l * e, (l + 1) * e), live.subarray(l * e, (l + 1) * e), g, slots),
        );
      }
      const nodes = Math.ceil(g / this.shape.gpusPerNode);
      const perNode = Math.min(g, this.shape.gpusPerNode) * slots;
      q = {
        balancedness: combineLayerBalancedness(perLayer),
        crossNodeShare: nodes <= 1 ? 0 : (1 - Math.min(1, perNode / e)) * (1 - 1 / nodes),
        redundantExpertsPerGpu: (g * slots - e) / g,
      };
    }
    return q;
  }
}
