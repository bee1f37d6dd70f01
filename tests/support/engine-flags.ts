// Engine flags verified in the engines' own docs or sources (issue 15 item 4). The samples in
// deploy/samples may use only these (tests/unit/sample-engine-flags.test.ts); docs/engine-flags.md
// is the human-readable record with the same sources. Add a flag here only after reading it in the
// engine's docs or code, with where.

export type Engine = "sglang" | "vllm";

export interface VerifiedFlag {
  readonly engine: Engine;
  readonly flag: string;
  /** Where it was read. */
  readonly source: string;
}

/** sgl-project/sglang docs/advanced_features/server_arguments.md (commit 004813e1, 2026). */
const SGLANG_DOCS = "sgl-project/sglang docs/advanced_features/server_arguments.md @004813e1";
/** sgl-project/sglang#36258, "[NPU][AFD] Attention-FFN Disaggregation Experimental", merged 2026-08-25. */
const SGLANG_AFD = "sgl-project/sglang PR #36258 (server_args.py: --afd-role/--afd-transfer-backend/--afd-ffn-addr)";
/** sgl-project/sglang docs/advanced_features/expert_parallelism.md (DeepEP: "only support cases where ep_size = tp_size"). */
const SGLANG_EP_DOCS = "sgl-project/sglang docs/advanced_features/expert_parallelism.md";
/** sgl-project/sglang's LeaderWorkerSet example (DeepSeek-R1 with DeepEP over LWS). */
const SGLANG_LWS = "sgl-project/sglang docs/references/multi_node_deployment/lws_pd/lws_pd_deploy.md";
/** sgl-project/sglang docs/advanced_features/pd_disaggregation.md (Mooncake; "DeepSeek Multi-Node": prefill with --deepep-mode normal, decode with low_latency). */
const SGLANG_PD = "sgl-project/sglang docs/advanced_features/pd_disaggregation.md";
const VLLM_DOCKER = "docs.vllm.ai serving/deploying_with_docker (vllm/vllm-openai ... --model)";
const VLLM_EP = "docs.vllm.ai serving/expert_parallel_deployment";

export const VERIFIED_FLAGS: readonly VerifiedFlag[] = [
  { engine: "sglang", flag: "--model-path", source: `${SGLANG_DOCS} (Model and tokenizer)` },
  { engine: "sglang", flag: "--trust-remote-code", source: `${SGLANG_DOCS} (Model and tokenizer)` },
  { engine: "sglang", flag: "--tp", source: `${SGLANG_DOCS} (Common launch commands: "add --tp 2")` },
  { engine: "sglang", flag: "--host", source: `${SGLANG_DOCS} (HTTP server; default 127.0.0.1)` },
  { engine: "sglang", flag: "--port", source: `${SGLANG_DOCS} (HTTP server; default 30000)` },
  {
    engine: "sglang",
    flag: "--ep",
    source: `${SGLANG_DOCS} (MoE: --expert-parallel-size / --ep-size / --ep); ${SGLANG_EP_DOCS} (example --tp 8 --ep 8)`,
  },
  {
    engine: "sglang",
    flag: "--moe-a2a-backend",
    source: `${SGLANG_DOCS} (MoE: none, deepep, mooncake, mori, nixl, ascend_fuseep); ${SGLANG_EP_DOCS}`,
  },
  {
    engine: "sglang",
    flag: "--deepep-mode",
    source: `${SGLANG_DOCS} (MoE: normal, low_latency, auto); ${SGLANG_EP_DOCS}`,
  },
  {
    engine: "sglang",
    flag: "--dist-init-addr",
    source: `${SGLANG_DOCS} (Multi-node distributed serving; host:port); ${SGLANG_LWS} ($(LWS_LEADER_ADDRESS):port)`,
  },
  {
    engine: "sglang",
    flag: "--nnodes",
    source: `${SGLANG_DOCS} (Multi-node distributed serving); ${SGLANG_LWS} ($(LWS_GROUP_SIZE))`,
  },
  {
    engine: "sglang",
    flag: "--node-rank",
    source: `${SGLANG_DOCS} (Multi-node distributed serving); ${SGLANG_LWS} ($(LWS_WORKER_INDEX))`,
  },
  { engine: "sglang", flag: "--dp", source: `${SGLANG_DOCS} (Common launch commands: "add --dp 2")` },
  { engine: "sglang", flag: "--enable-dp-attention", source: `${SGLANG_DOCS} (Optimization/debug options)` },
  { engine: "sglang", flag: "--enable-metrics", source: SGLANG_DOCS },
  { engine: "sglang", flag: "--ep-num-redundant-experts", source: `${SGLANG_DOCS} (MoE)` },
  {
    engine: "sglang",
    flag: "--init-expert-location",
    source: `${SGLANG_DOCS} (MoE); python/sglang/srt/eplb/expert_location.py compute_initial_expert_location_metadata reads a .json path with physical_to_logical_map`,
  },
  { engine: "sglang", flag: "--ep-dispatch-algorithm", source: `${SGLANG_DOCS} (MoE)` },
  { engine: "sglang", flag: "--enable-eplb", source: `${SGLANG_DOCS} (MoE)` },
  { engine: "sglang", flag: "--eplb-rebalance-layers-per-chunk", source: `${SGLANG_DOCS} (MoE)` },
  { engine: "sglang", flag: "--eplb-rebalance-num-iterations", source: `${SGLANG_DOCS} (MoE)` },
  { engine: "sglang", flag: "--expert-distribution-recorder-mode", source: `${SGLANG_DOCS} (MoE)` },
  { engine: "sglang", flag: "--enable-expert-distribution-metrics", source: `${SGLANG_DOCS} (MoE)` },
  {
    engine: "sglang",
    flag: "--afd-role",
    source: `${SGLANG_AFD}; values attn / ffn as launched in the RFC it adopts, sgl-project/sglang PR #10900`,
  },
  { engine: "sglang", flag: "--afd-ffn-addr", source: `${SGLANG_AFD}; host:port as launched in PR #10900` },
  {
    engine: "sglang",
    flag: "--disaggregation-mode",
    source: `${SGLANG_PD} (DeepSeek Multi-Node: prefill / decode); ${SGLANG_DOCS} (PD disaggregation: null, prefill, decode)`,
  },
  {
    engine: "sglang",
    flag: "--disaggregation-transfer-backend",
    source: `${SGLANG_PD} ("we support Mooncake and NIXL as the transfer engine"); ${SGLANG_DOCS} (PD disaggregation: mooncake, nixl, ...)`,
  },
  {
    engine: "sglang",
    flag: "--disaggregation-ib-device",
    source: `${SGLANG_PD} (Mooncake: mlx5_0 or mlx5_0,mlx5_1; DeepSeek Multi-Node)`,
  },
  { engine: "vllm", flag: "--model", source: VLLM_DOCKER },
  { engine: "vllm", flag: "--tensor-parallel-size", source: VLLM_EP },
  { engine: "vllm", flag: "--enable-expert-parallel", source: VLLM_EP },
];

/** The engine a container image runs, or undefined for an image this record does not cover. */
export function engineOfImage(image: string): Engine | undefined {
  const repo = image.split("@")[0]!.split(":")[0]!;
  if (repo === "lmsysorg/sglang") return "sglang";
  if (repo === "vllm/vllm-openai") return "vllm";
  return undefined;
}
