import { describe, expect, it } from "vitest";
import {
  ColdStartFleet,
  defaultGroundTruthParams,
  ExpertFleetModel,
  MODEL_PRESETS,
  resolveWaitWeight,
  slotsPerGpuFor,
  stepSecond,
  weightedQuantile,
} from "../../src/sim/index.ts";
import { predictP99LatencyMs, defaultLatencyModelParams } from "../../src/domain/latency/model.ts";

const p = defaultGroundTruthParams("perTokenLatency");
const w = resolveWaitWeight(p, 150);

function steady(tokensPerSecond: number, gpus: number, b = 0.85): number {
  const st = { backlogTokens: 0 };
  let lat = 0;
  for (let s = 0; s < 30; s++)
    lat = stepSecond(p, w, st, tokensPerSecond, { readyGpus: gpus, balancedness: b, crossNodeShare: 0.5 });
  return lat;
}

describe("sim ground truth", () => {
  it("latency rises with utilisation and explodes past saturation", () => {
    const gpus = 100;
    let prev = 0;
    for (const u of [0.1, 0.3, 0.5, 0.7, 0.8, 0.9]) {
      const lat = steady((u * gpus * p.tokensPerSecondPerGpu * 0.85) / 1.05, gpus);
      expect(lat).toBeGreaterThan(prev);
      prev = lat;
    }
    expect(steady(1.2 * gpus * p.tokensPerSecondPerGpu, gpus)).toBeGreaterThan(
      10 * steady(0.3 * gpus * p.tokensPerSecondPerGpu, gpus),
    );
  });

  it("more GPUs or better balance lower the latency; no GPU serves nothing", () => {
    const load = 150_000;
    expect(steady(load, 120)).toBeLessThan(steady(load, 100));
    expect(steady(load, 100, 0.95)).toBeLessThan(steady(load, 100, 0.75));
    const st = { backlogTokens: 0 };
    expect(stepSecond(p, w, st, 1000, { readyGpus: 0, balancedness: 1, crossNodeShare: 0 })).toBe(Infinity);
    expect(st.backlogTokens).toBe(1000);
  });

  it("overload builds a backlog that drains when capacity returns", () => {
    const st = { backlogTokens: 0 };
    for (let s = 0; s < 10; s++)
      stepSecond(p, w, st, 300_000, { readyGpus: 100, balancedness: 0.85, crossNodeShare: 0 });
    expect(st.backlogTokens).toBeGreaterThan(0);
    for (let s = 0; s < 120; s++)
      stepSecond(p, w, st, 50_000, { readyGpus: 100, balancedness: 0.85, crossNodeShare: 0 });
    expect(st.backlogTokens).toBe(0);
  });

  it("is not the policy's model: the curves differ", () => {
    const model = defaultLatencyModelParams("perTokenLatency");
    const gpus = 100;
    const diffs = [0.3, 0.6, 0.8].map((u) => {
      const load = u * gpus * model.tokensPerSecondPerGpu * 0.85;
      const m = predictP99LatencyMs(model, {
        tokensPerSecond: load,
        gpuCount: gpus,
        balancedness: 0.85,
        crossNodeShare: 0.5,
      });
      return steady(load, gpus) / m;
    });
    expect(Math.max(...diffs) - Math.min(...diffs)).toBeGreaterThan(0.2);
  });

  it("token-weighted quantiles", () => {
    const v = new Float64Array([10, 20, 30, 40]);
    const wt = new Float64Array([1, 1, 1, 97]);
    const order = new Int32Array(4);
    expect(weightedQuantile(v, wt, 4, 0.99, order)).toBe(40);
    expect(weightedQuantile(v, new Float64Array([97, 1, 1, 1]), 4, 0.9, order)).toBe(10);
    expect(Number.isNaN(weightedQuantile(v, new Float64Array(4), 4, 0.99, order))).toBe(true);
  });

  it("balancedness of the expert placement is in (0, 1] and drops when experts do not fit", () => {
    const m = new ExpertFleetModel(MODEL_PRESETS["deepseek-v3"]!, { seed: 1 });
    for (const g of [16, 64, 144, 300]) {
      const q = m.quality(g, 3);
      expect(q.balancedness).toBeGreaterThan(0.6);
      expect(q.balancedness).toBeLessThanOrEqual(1);
    }
    expect(m.quality(8, 3).balancedness).toBe(0); // 8 GPUs x 16 slots cannot hold 256 experts
  });

  it("more GPUs never serve less, also where the slot rule gives each GPU fewer slots", () => {
    const shape = MODEL_PRESETS["deepseek-v3"]!;
    const m = new ExpertFleetModel(shape, { seed: 1 });
    const capacity = (g: number): number => g * m.quality(g, 5).balancedness;
    let thresholds = 0;
    for (let g = 40; g <= 200; g++) {
      if (slotsPerGpuFor(shape, g) < slotsPerGpuFor(shape, g - 1)) {
        thresholds++;
        expect(capacity(g)).toBeGreaterThanOrEqual(capacity(g - 1));
      }
      // Within one slot count the greedy placement wobbles by a few percent at most.
      expect(capacity(g)).toBeGreaterThan(0.95 * capacity(g - 1));
    }
    expect(thresholds).toBeGreaterThanOrEqual(4); // 48, 58, 72, 96, 144 for 288 replicas
  });
});

describe("sim cold start", () => {
  it("new GPUs become useful only after their start-up delay", () => {
    const delays = [240, 300, 180];
    let i = 0;
    const fleet = new ColdStartFleet(4, () => delays[i++ % delays.length] as number);
    fleet.setDesired(7, 100);
    expect(fleet.provisioned).toBe(7);
    expect(fleet.ready).toBe(4);
    fleet.advance(279);
    expect(fleet.ready).toBe(4); // nothing useful before the fastest start (180 s) is over
    fleet.advance(280);
    expect(fleet.ready).toBe(5);
    fleet.advance(340);
    expect(fleet.ready).toBe(6);
    fleet.advance(400);
    expect(fleet.ready).toBe(7);
    expect(fleet.completedDurationsMs).toEqual([180_000, 240_000, 300_000]);
  });

  it("scale-down cancels warming GPUs before releasing ready ones", () => {
    const fleet = new ColdStartFleet(4, () => 200);
    fleet.setDesired(6, 0);
    fleet.setDesired(3, 10);
    expect(fleet.provisioned).toBe(3);
    expect(fleet.ready).toBe(3);
    fleet.advance(1000);
    expect(fleet.ready).toBe(3);
  });
});
