// A small MoE deployment for tests: 4 MoE layers (after 1 dense) x 16 experts,
// top-2, 4 slots per GPU, heat from a ConfigMap the test controls.
export const TEST_LAYERS = 5;
export const TEST_DENSE = 1;
export const TEST_MOE_LAYERS = TEST_LAYERS - TEST_DENSE;
export const TEST_EXPERTS = 16;
export const TEST_TOPK = 2;

export function heatJson(perExpert: (layer: number, expert: number) => number): string {
  const logical_count = Array.from({ length: TEST_LAYERS }, (_, l) =>
    Array.from({ length: TEST_EXPERTS }, (_, e) => (l < TEST_DENSE ? 0 : Math.round(perExpert(l - TEST_DENSE, e)))),
  );
  return JSON.stringify({ logical_count });
}

/** Heat whose implied load is `tokensPerSecond` (sum per layer = tokens x topK), skewed toward `hot` experts. */
export function skewedHeat(tokensPerSecond: number, hot: number[], skew = 6): string {
  const weights = Array.from({ length: TEST_EXPERTS }, (_, e) => (hot.includes(e) ? skew : 1));
  const total = weights.reduce((a, b) => a + b, 0);
  return heatJson((_l, e) => (tokensPerSecond * TEST_TOPK * weights[e]!) / total);
}

export function heatConfigMap(name: string, namespace: string, json: string) {
  return { apiVersion: "v1", kind: "ConfigMap", metadata: { name, namespace }, data: { "expert-load.json": json } };
}

export function testMoEDeployment(
  name: string,
  namespace: string,
  over: {
    minShards?: number;
    maxShards?: number;
    targetLatencyMs?: number;
    maxUsdPerHour?: number;
    mode?: "Auto" | "Recommend";
    rebalanceIntervalSeconds?: number;
    maxMovedPercent?: number;
    scaleDownWindowSeconds?: number;
    latencyMs?: number;
  } = {},
) {
  return {
    apiVersion: "moe.dev/v1alpha1",
    kind: "MoEDeployment",
    metadata: { name, namespace },
    spec: {
      mode: over.mode ?? "Auto",
      model: {
        name: "test/tiny-moe",
        layers: TEST_LAYERS,
        denseLayers: TEST_DENSE,
        routedExperts: TEST_EXPERTS,
        topK: TEST_TOPK,
        expertWeightBytes: 1_000_000,
        expertSlotsPerGpu: 5,
      },
      serving: {
        router: {
          replicas: 1,
          gpusPerReplica: 1,
          template: {
            spec: {
              terminationGracePeriodSeconds: 1,
              containers: [{ name: "router", image: "example.invalid/router:1" }],
            },
          },
        },
        expertShards: {
          template: {
            spec: {
              terminationGracePeriodSeconds: 1,
              containers: [{ name: "expert", image: "example.invalid/expert:1" }],
            },
          },
        },
      },
      placement: {
        rebalanceIntervalSeconds: over.rebalanceIntervalSeconds ?? 30,
        minBalancednessGainPercent: 1,
        maxMovedPercent: over.maxMovedPercent ?? 25,
      },
      slo: { metric: "InterTokenLatency", targetLatencyMs: over.targetLatencyMs ?? 100, evaluationWindowSeconds: 10 },
      scaling: {
        minShards: over.minShards ?? 4,
        maxShards: over.maxShards ?? 12,
        scaleUp: { stabilizationWindowSeconds: 0, maxShardsPerStep: 8 },
        scaleDown: { stabilizationWindowSeconds: over.scaleDownWindowSeconds ?? 20, maxShardsPerStep: 1 },
      },
      heatSource: { type: "ConfigMap", configMap: { name: `${name}-heat` }, refreshIntervalSeconds: 5 },
      latencySource: { type: "Static", static: { latencyMs: over.latencyMs ?? 40 } },
      prewarm: { coldStartSeconds: 5, burst: { enabled: true, panicWindowSeconds: 5 } },
      cost: {
        priceLabelKey: "moe.dev/price-usd-per-gpu-hour",
        defaultUsdPerGpuHour: 2,
        ...(over.maxUsdPerHour !== undefined ? { maxUsdPerHour: over.maxUsdPerHour } : {}),
      },
    },
  };
}

/** testMoEDeployment with topology WideEP: groups of nodesPerGroup pods x gpusPerNode GPUs; min/maxShards in GPUs. */
export function testWideEPDeployment(
  name: string,
  namespace: string,
  over: Parameters<typeof testMoEDeployment>[2] & {
    nodesPerGroup?: number;
    gpusPerNode?: number;
    pendingTimeoutSeconds?: number;
    shards?: number;
  } = {},
) {
  const d = testMoEDeployment(name, namespace, over);
  const { router: _router, expertShards: _shards, ...serving } = d.spec.serving;
  return {
    ...d,
    spec: {
      ...d.spec,
      serving: {
        ...serving,
        topology: "WideEP",
        wideEP: {
          nodesPerGroup: over.nodesPerGroup ?? 2,
          gpusPerNode: over.gpusPerNode ?? 8,
          template: {
            spec: {
              terminationGracePeriodSeconds: 1,
              containers: [{ name: "engine", image: "example.invalid/engine:1" }],
            },
          },
        },
      },
      scaling: {
        ...d.spec.scaling,
        ...(over.pendingTimeoutSeconds !== undefined ? { pendingTimeoutSeconds: over.pendingTimeoutSeconds } : {}),
        ...(over.shards !== undefined ? { shards: over.shards } : {}),
      },
    },
  };
}
