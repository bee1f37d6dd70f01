// The MoEDeployment API (moe.dev/v1alpha1) as zod schemas. This file is the
// single source of truth: the CRD in crds/ is generated from it (src/api/crd-gen.ts),
// and the operator parses every object it reads with it (src/api/parse.ts).
//
// Conventions (see docs/adr/0001-api-design.md):
// - camelCase, units in names (targetLatencyMs, usdPerGpuHour, stabilizationWindowSeconds);
// - integers for counts, durations and fractions set by users (percent);
//   money is a JSON number; status ratios are numbers in [0, 1];
// - every default lives here (`.default()` for leaves, `.prefault({})` for
//   objects so their own defaults apply) and is emitted into the CRD, so the API
//   server and the operator fill in the same values;
// - cross-field rules are declared once with `withRules` and emitted as CEL.
import { z } from "zod";
import { withRules } from "./rules.ts";
import { Label, OPERATOR_KEY_PREFIX } from "./constants.ts";
import {
  ANNOTATIONS_LIMIT_BYTES,
  CONFIGMAP_LIMIT_BYTES,
  EXPERTS_ANNOTATION_MAX_BYTES,
  LABEL_VALUE_MAX_LENGTH,
  TEMPLATE_ANNOTATIONS_MAX_BYTES,
  TEMPLATE_ANNOTATIONS_MAX_ENTRIES,
  TEMPLATE_LABELS_MAX_ENTRIES,
  CONFIGMAP_PER_SHARD_FORMULA,
  celExpertsAnnotationBytes,
  celMaxShardsForConfigMap,
  configMapBytesPerShard,
  expertsAnnotationBytes,
  maxShardsForConfigMap,
} from "./sizes.ts";
import {
  ABSOLUTE_PATH,
  CONDITION_REASON,
  CONDITION_TYPE,
  CONFIGMAP_KEY,
  CRON,
  DNS_LABEL,
  DNS_SUBDOMAIN,
  EXTENDED_RESOURCE_NAME,
  HTTP_URL,
  LABEL_KEY,
  LABEL_VALUE,
  TIME_ZONE,
} from "./patterns.ts";

const re = (pattern: string) => new RegExp(pattern);

/**
 * A string that must match a long regular expression, checked with a readable
 * message instead of an OpenAPI `pattern` (whose error would print the regex):
 * a zod refinement, and the same regex as a CEL `matches` rule in the CRD.
 */
function matching(schema: z.ZodString, pattern: string, message: string): z.ZodString {
  if (pattern.includes("'")) throw new Error("pattern cannot be a CEL raw string", { cause: pattern });
  const regex = re(pattern);
  return schema
    .refine((s) => regex.test(s), { message })
    .meta({ "x-kubernetes-validations": [{ rule: `self.matches(r'${pattern}')`, message }] });
}

const CRON_MESSAGE =
  'must be a 5-field cron expression (minute hour day-of-month month day-of-week, e.g. "0 8 * * MON-FRI") or one of @yearly, @monthly, @weekly, @daily, @hourly';
const URL_MESSAGE = "must be an http:// or https:// URL with a host, e.g. http://prometheus.monitoring:9090";

/** Upper bounds that keep CEL cost estimates small and objects well under etcd's limits. */
export const Limits = {
  maxLayers: 1024,
  maxRoutedExperts: 4096,
  maxShards: 100_000,
  maxSchedules: 32,
  maxContainers: 32,
  maxTolerations: 32,
  maxPriceEntries: 256,
  maxGpuAlternatives: 4,
  maxQueryLength: 4096,
  maxNodesPerGroup: 256,
} as const;

// ---------------------------------------------------------------------------
// Pod templates: the shape of core/v1 PodTemplateSpec, validated only where the
// operator depends on it; every other field is preserved as written and
// validated by the API server when the operator creates the child workload.

const StringMap = (what: string) => z.record(z.string(), z.string()).describe(what);

const RESERVED_LABEL_KEYS: readonly string[] = Object.values(Label);
const celStringList = (xs: readonly string[]) => `[${xs.map((x) => `'${x}'`).join(", ")}]`;
const isOperatorKey = (key: string, reserved: readonly string[]) =>
  key.startsWith(OPERATOR_KEY_PREFIX) || reserved.includes(key);
const utf8Bytes = (s: string) => new TextEncoder().encode(s).length;

/**
 * Labels or annotations of a pod template: bounded in count (and, for
 * annotations, in total bytes, as Kubernetes counts them), and without the
 * operator's own keys (moe.dev/*, and for labels the app.kubernetes.io/* keys
 * it sets), which the operator alone writes.
 */
function templateKeyMap(
  what: string,
  opts: { maxEntries: number; maxValueLength: number; maxTotalBytes?: number; reserved: readonly string[] },
) {
  const reservedText = [`${OPERATOR_KEY_PREFIX}*`, ...opts.reserved].join(", ");
  const keysMessage = `must not use the operator's own keys (${reservedText}): the operator sets them`;
  const rules = [
    {
      rule: `self.all(k, !k.startsWith('${OPERATOR_KEY_PREFIX}')${opts.reserved.length > 0 ? ` && !(k in ${celStringList(opts.reserved)})` : ""})`,
      message: keysMessage,
    },
  ];
  let schema = z
    .record(z.string(), z.string().max(opts.maxValueLength))
    .refine((m) => Object.keys(m).length <= opts.maxEntries, {
      message: `must have at most ${opts.maxEntries} entries`,
    })
    .refine((m) => Object.keys(m).every((k) => !isOperatorKey(k, opts.reserved)), { message: keysMessage });
  const total = opts.maxTotalBytes;
  if (total !== undefined) {
    const totalMessage = `must total at most ${total} bytes (keys and values); Kubernetes allows ${ANNOTATIONS_LIMIT_BYTES} bytes of annotations per pod and the operator needs the rest`;
    rules.push({ rule: `self.map(k, size(bytes(k)) + size(bytes(self[k]))).sum() <= ${total}`, message: totalMessage });
    schema = schema.refine(
      (m) => Object.entries(m).reduce((n, [k, v]) => n + utf8Bytes(k) + utf8Bytes(v), 0) <= total,
      { message: totalMessage },
    );
  }
  return schema.meta({ maxProperties: opts.maxEntries, "x-kubernetes-validations": rules }).describe(what);
}

export const ContainerSchema = z
  .looseObject({
    name: z.string().max(63).regex(re(DNS_LABEL)).describe("Container name (RFC 1123 label), unique within the pod."),
    image: z
      .string()
      .min(1)
      .max(1024)
      .describe("Container image. Required: the operator never picks an image for you."),
  })
  .describe(
    "A core/v1 Container. Only name and image are checked here; all other Container fields are kept as written.",
  );

export const PodTemplateSchema = z
  .object({
    metadata: z
      .looseObject({
        labels: templateKeyMap(
          `Labels added to the pods, at most ${TEMPLATE_LABELS_MAX_ENTRIES}. Keys under moe.dev/ and ${RESERVED_LABEL_KEYS.filter((k) => !k.startsWith(OPERATOR_KEY_PREFIX)).join(", ")} are refused: the operator sets them.`,
          {
            maxEntries: TEMPLATE_LABELS_MAX_ENTRIES,
            maxValueLength: LABEL_VALUE_MAX_LENGTH,
            reserved: RESERVED_LABEL_KEYS.filter((k) => !k.startsWith(OPERATOR_KEY_PREFIX)),
          },
        ).optional(),
        annotations: templateKeyMap(
          `Annotations added to the pods: at most ${TEMPLATE_ANNOTATIONS_MAX_ENTRIES}, totalling at most ${TEMPLATE_ANNOTATIONS_MAX_BYTES} bytes (keys and values). Keys under moe.dev/ are refused: the operator sets them.`,
          {
            maxEntries: TEMPLATE_ANNOTATIONS_MAX_ENTRIES,
            maxValueLength: TEMPLATE_ANNOTATIONS_MAX_BYTES,
            maxTotalBytes: TEMPLATE_ANNOTATIONS_MAX_BYTES,
            reserved: [],
          },
        ).optional(),
      })
      .describe("Pod metadata: labels and annotations. Other metadata fields are ignored.")
      .optional(),
    spec: z
      .looseObject({
        containers: z
          .array(ContainerSchema)
          .min(1)
          .max(Limits.maxContainers)
          .meta({ "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"] })
          .describe(
            "Containers of the pod; at least one. The first container is the serving engine and receives the GPU limit and the placement environment.",
          ),
      })
      .describe(
        "A core/v1 PodSpec. Fields other than containers[].name/image are preserved and validated by the API server when the operator creates the pods.",
      ),
  })
  .describe("A core/v1 PodTemplateSpec for the pods of this component.");

// ---------------------------------------------------------------------------
// spec.model

export const WeightDtypeSchema = z.enum(["FP32", "BF16", "FP16", "FP8", "INT8", "FP4", "INT4"]);
export type WeightDtype = z.infer<typeof WeightDtypeSchema>;
/** Bytes per parameter of each weight dtype (FP4/INT4 pack two per byte; scales are ignored). */
export const BYTES_PER_PARAMETER: Readonly<Record<WeightDtype, number>> = {
  FP32: 4,
  BF16: 2,
  FP16: 2,
  FP8: 1,
  INT8: 1,
  FP4: 0.5,
  INT4: 0.5,
};

const ModelBase = z.object({
  name: z
    .string()
    .max(253)
    .describe("Model identifier for humans and dashboards, e.g. deepseek-ai/DeepSeek-V3. Not interpreted.")
    .optional(),
  layers: z
    .int32()
    .min(1)
    .max(Limits.maxLayers)
    .describe(
      "Total number of transformer layers (dense and MoE), e.g. 61 for DeepSeek-V3. Heat data is indexed by absolute layer number 0..layers-1.",
    ),
  denseLayers: z
    .int32()
    .min(0)
    .max(Limits.maxLayers)
    .default(0)
    .describe(
      "Number of leading dense layers without routed experts (DeepSeek-V3: 3). MoE layers are layers denseLayers..layers-1.",
    ),
  routedExperts: z
    .int32()
    .min(1)
    .max(Limits.maxRoutedExperts)
    .describe("Routed experts per MoE layer (DeepSeek-V3: 256, Qwen3-235B-A22B: 128, Mixtral-8x7B: 8)."),
  topK: z
    .int32()
    .min(1)
    .max(Limits.maxRoutedExperts)
    .describe("Routed experts activated per token (top-k); at most routedExperts."),
  sharedExperts: z
    .int32()
    .min(0)
    .max(64)
    .default(0)
    .describe(
      "Shared (always-active) experts per MoE layer. They run with the router/attention part, not in expert shards.",
    ),
  expertWeightBytes: z
    .int()
    .min(1)
    .describe(
      "Bytes of one replica of one routed expert in one layer (all its weight matrices). Set this or expertParameters with weightDtype.",
    )
    .optional(),
  expertParameters: z
    .int()
    .min(1)
    .describe(
      "Parameters of one routed expert in one layer (DeepSeek-V3: gate, up and down projections 3 x 7168 hidden x 2048 moe_intermediate = 44040192). Used with weightDtype when expertWeightBytes is not set; gives the bytes each expert move loads.",
    )
    .optional(),
  weightDtype: WeightDtypeSchema.describe(
    "Storage dtype of expert weights; with expertParameters gives the bytes per expert replica. Required with expertParameters, forbidden otherwise.",
  ).optional(),
  expertSlotsPerGpu: z
    .int32()
    .min(1)
    .max(Limits.maxRoutedExperts)
    .describe(
      `Expert slots per GPU in each MoE layer: how many routed-expert replicas of one layer one shard holds (DeepSeek prefill EP32: 9). Slots beyond routedExperts across the fleet hold redundant replicas of hot experts. MoE layers x (expertSlotsPerGpu x B + 2) + 17 bytes (B = 3, 4 or 5 bytes per expert id for up to 100, 1000 or more routedExperts), the shard pod's moe.dev/experts annotation, must be at most ${EXPERTS_ANNOTATION_MAX_BYTES}.`,
    ),
});

export const ModelSchema = withRules(ModelBase, [
  {
    rule: "self.topK <= self.routedExperts",
    fieldPath: ".topK",
    message: "spec.model.topK must be less than or equal to spec.model.routedExperts",
    holds: (m) => m.topK <= m.routedExperts,
  },
  {
    rule: "self.denseLayers < self.layers",
    fieldPath: ".denseLayers",
    message: "spec.model.denseLayers must be less than spec.model.layers (at least one MoE layer)",
    holds: (m) => m.denseLayers < m.layers,
  },
  {
    rule: "self.expertSlotsPerGpu <= self.routedExperts",
    fieldPath: ".expertSlotsPerGpu",
    message:
      "spec.model.expertSlotsPerGpu must be less than or equal to spec.model.routedExperts (a GPU holds at most one replica of each expert per layer)",
    holds: (m) => m.expertSlotsPerGpu <= m.routedExperts,
  },
  {
    rule: "has(self.expertWeightBytes) != has(self.expertParameters)",
    fieldPath: ".expertWeightBytes",
    message: "exactly one of spec.model.expertWeightBytes or spec.model.expertParameters must be set",
    holds: (m) => (m.expertWeightBytes !== undefined) !== (m.expertParameters !== undefined),
  },
  {
    rule: "has(self.weightDtype) == has(self.expertParameters)",
    fieldPath: ".weightDtype",
    message: "spec.model.weightDtype is required with spec.model.expertParameters and not allowed without it",
    holds: (m) => (m.weightDtype !== undefined) === (m.expertParameters !== undefined),
  },
  {
    rule: `${celExpertsAnnotationBytes("self")} <= ${EXPERTS_ANNOTATION_MAX_BYTES}`,
    fieldPath: ".expertSlotsPerGpu",
    message: `spec.model.expertSlotsPerGpu x MoE layers is too large: the moe.dev/experts annotation of a shard pod must fit in ${EXPERTS_ANNOTATION_MAX_BYTES} bytes (${ANNOTATIONS_LIMIT_BYTES} bytes of pod annotations allowed by Kubernetes, less ${TEMPLATE_ANNOTATIONS_MAX_BYTES} for template annotations and 1024 for the operator annotations)`,
    holds: (m) => expertsAnnotationBytes(m) <= EXPERTS_ANNOTATION_MAX_BYTES,
    messageOf: (m) =>
      `spec.model.expertSlotsPerGpu x MoE layers is too large: the moe.dev/experts annotation of a shard pod would need up to ${expertsAnnotationBytes(m)} bytes, the limit is ${EXPERTS_ANNOTATION_MAX_BYTES} bytes (${ANNOTATIONS_LIMIT_BYTES} bytes of pod annotations allowed by Kubernetes, less ${TEMPLATE_ANNOTATIONS_MAX_BYTES} for template annotations and 1024 for the operator annotations)`,
  },
]).describe("Shape of the Mixture-of-Experts model: layers, experts, top-k and the size of one expert replica.");

// ---------------------------------------------------------------------------
// spec.serving

export const TolerationSchema = z
  .object({
    key: z
      .string()
      .max(316)
      .describe("Taint key the toleration applies to; empty with operator Exists matches all taints.")
      .optional(),
    operator: z.enum(["Exists", "Equal"]).describe("Exists or Equal (default Equal, as in core/v1).").optional(),
    value: z.string().max(63).describe("Taint value to match when operator is Equal.").optional(),
    effect: z
      .enum(["NoSchedule", "PreferNoSchedule", "NoExecute"])
      .describe("Taint effect to match; empty matches all effects.")
      .optional(),
    tolerationSeconds: z
      .int()
      .min(0)
      .describe("For NoExecute: seconds the pod stays bound after the taint appears.")
      .optional(),
  })
  .describe("A core/v1 Toleration.");

export const GpuAlternativeSchema = withRules(
  z.object({
    name: z
      .string()
      .max(63)
      .regex(re(DNS_LABEL))
      .describe("Name of the alternative (RFC 1123 label), unique in the list; shown in events."),
    nodeSelector: StringMap(
      "Node labels of this alternative's GPU nodes, in place of spec.serving.gpu.nodeSelector (at least one).",
    ),
    tolerations: z
      .array(TolerationSchema)
      .max(Limits.maxTolerations)
      .describe(
        "Tolerations for this alternative's node taints. A pod with the fallback scheduling gets spec.serving.gpu.tolerations plus every alternative's (a toleration only permits; the node affinity still picks the node type). Pods with the primary scheduling never get them.",
      )
      .optional(),
  }),
  [
    {
      rule: "size(self.nodeSelector) > 0",
      fieldPath: ".nodeSelector",
      message: "spec.serving.gpu.alternatives[].nodeSelector must name at least one node label",
      holds: (a) => Object.keys(a.nodeSelector).length > 0,
    },
  ],
).describe("Another GPU node type expert shards may fall back to.");

export const GpuSchema = z
  .object({
    resourceName: z
      .string()
      .max(253)
      .regex(re(EXTENDED_RESOURCE_NAME))
      .default("nvidia.com/gpu")
      .describe(
        "Extended resource name of a GPU on your nodes. The operator sets this limit on the first container: 1 per expert shard, router.gpusPerReplica per router pod.",
      ),
    memoryBytes: z
      .int()
      .min(1)
      .describe(
        "Memory of one GPU in bytes (80 GiB = 85899345920). When set, the operator checks that expertSlotsPerGpu x MoE layers x bytes per expert fits.",
      )
      .optional(),
    nodeSelector: StringMap(
      "Node labels GPU pods (router and shards) must match, merged into both pod templates.",
    ).optional(),
    affinity: z
      .looseObject({})
      .describe(
        "A core/v1 Affinity merged into both pod templates (kept as written, validated by the API server when pods are created).",
      )
      .optional(),
    tolerations: z
      .array(TolerationSchema)
      .max(Limits.maxTolerations)
      .describe("Tolerations for GPU node taints, appended to both pod templates.")
      .optional(),
    alternatives: z
      .array(GpuAlternativeSchema)
      .max(Limits.maxGpuAlternatives)
      .meta({ "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"] })
      .describe(
        "Other GPU node types for expert shards (topology Disaggregated), in order of preference. A shard pod unschedulable on nodeSelector's nodes for longer than spec.scaling.pendingTimeoutSeconds is replaced by one that may run on nodeSelector's nodes (preferred) or any alternative's (earlier ones preferred); later rollouts of that shard keep this scheduling, other new shard pods keep nodeSelector. Once nodeSelector's nodes (not cordoned) have a free GPU again and no rollout is under way, a Ready fallback pod on an alternative's node is moved back make-before-break: a pod with nodeSelector's scheduling and the same shard and expert set is created (annotation moe.dev/gpu-return-for), and the fallback pod is drained once it is Ready (spec.placement.moves.mode Replace only). Each node is priced by spec.cost as any other (priceLabelKey, table, default). The router keeps nodeSelector.",
      )
      .optional(),
  })
  .describe("Where GPU pods run and how a GPU is requested.");

export const RouterSchema = z
  .object({
    replicas: z
      .int32()
      .min(1)
      .max(10_000)
      .default(1)
      .describe("Number of router/attention pods. Fixed: the operator scales expert shards, not the router."),
    gpusPerReplica: z
      .int32()
      .min(0)
      .max(64)
      .default(1)
      .describe("GPUs per router/attention pod (0 for a CPU-only router). Counted in status GPUs and cost."),
    template: PodTemplateSchema,
  })
  .describe("The router/attention workload: attention, gating and shared experts; it routes tokens to expert shards.");

const DrainBase = z.object({
  maxOutputTokens: z
    .int32()
    .min(1)
    .max(1_000_000)
    .describe(
      "Longest output, in tokens, that a request on a draining shard may still be generating. The drain deadline is this many tokens at the observed p99 of the SLO's per-token metric (its target until latency is measured; maxSeconds when the SLO metric is TimeToFirstToken), kept within minSeconds..maxSeconds. A draining shard is deleted when it turns not Ready (its requests are done) or at the deadline.",
    ),
  minSeconds: z.int32().min(0).max(3_600).default(10).describe("Shortest drain deadline, in seconds."),
  maxSeconds: z
    .int32()
    .min(1)
    .max(3_600)
    .default(600)
    .describe("Longest drain deadline, in seconds; shard pods get at least this termination grace period."),
});

export const DrainSchema = withRules(DrainBase, [
  {
    rule: "self.minSeconds <= self.maxSeconds",
    fieldPath: ".minSeconds",
    message: "spec.serving.expertShards.drain.minSeconds must be less than or equal to maxSeconds",
    holds: (s) => s.minSeconds <= s.maxSeconds,
  },
]).describe(
  "How long a draining shard may keep serving the requests it has. Without it, the operator's --drain-seconds.",
);

export const ExpertShardsSchema = z
  .object({
    template: PodTemplateSchema,
    drain: DrainSchema.optional(),
  })
  .describe(
    "The expert-shard workload: one pod per shard, one GPU per shard, holding expertSlotsPerGpu routed-expert replicas of every MoE layer.",
  );

export const TopologySchema = z.enum(["Disaggregated", "WideEP"]);
export type Topology = z.infer<typeof TopologySchema>;

export const WideEPSchema = z
  .object({
    nodesPerGroup: z
      .int32()
      .min(1)
      .max(Limits.maxNodesPerGroup)
      .describe(
        "Nodes (pods) in one EP group: the size of the LeaderWorkerSet, a leader plus nodesPerGroup-1 workers.",
      ),
    gpusPerNode: z
      .int32()
      .min(1)
      .max(64)
      .default(8)
      .describe("GPUs each pod of a group asks for (spec.serving.gpu.resourceName on its first container)."),
    template: PodTemplateSchema,
  })
  .describe(
    "Wide expert parallelism: one engine instance spans an EP group of nodesPerGroup pods x gpusPerNode GPUs, deployed as one LeaderWorkerSet whose replicas are groups. One role per MoEDeployment: a prefill/decode pair is two MoEDeployments, each with its own groups, SLO, sources and placement (docs/adr/0024-prefill-decode-pairs.md).",
  );

const ServingBase = z.object({
  topology: TopologySchema.default("Disaggregated").describe(
    "Disaggregated: an attention router plus single-GPU expert shards (router and expertShards). WideEP: EP groups on a LeaderWorkerSet (wideEP), scaled in whole groups.",
  ),
  gpu: GpuSchema.prefault({}),
  router: RouterSchema.optional(),
  expertShards: ExpertShardsSchema.optional(),
  wideEP: WideEPSchema.optional(),
});

export const ServingSchema = withRules(ServingBase, [
  {
    rule: "(has(self.topology) && self.topology == 'WideEP') || (has(self.router) && has(self.expertShards))",
    fieldPath: ".router",
    message:
      "spec.serving.router and spec.serving.expertShards are required when spec.serving.topology is Disaggregated",
    holds: (s) => s.topology === "WideEP" || (s.router !== undefined && s.expertShards !== undefined),
  },
  {
    rule: "!has(self.topology) || self.topology != 'WideEP' || has(self.wideEP)",
    fieldPath: ".wideEP",
    message: "spec.serving.wideEP is required when spec.serving.topology is WideEP",
    holds: (s) => s.topology !== "WideEP" || s.wideEP !== undefined,
  },
  {
    rule: "!has(self.topology) || self.topology != 'WideEP' || (!has(self.router) && !has(self.expertShards))",
    fieldPath: ".expertShards",
    message:
      "spec.serving.router and spec.serving.expertShards must be absent when spec.serving.topology is WideEP (the group's pods serve attention and experts together)",
    holds: (s) => s.topology !== "WideEP" || (s.router === undefined && s.expertShards === undefined),
  },
  {
    rule: "(has(self.topology) && self.topology == 'WideEP') || !has(self.wideEP)",
    fieldPath: ".wideEP",
    message: "spec.serving.wideEP must be absent unless spec.serving.topology is WideEP",
    holds: (s) => s.topology === "WideEP" || s.wideEP === undefined,
  },
]).describe(
  "Pod templates and GPU scheduling: the router/attention part and the expert shards (Disaggregated), or the EP groups (WideEP).",
);

// ---------------------------------------------------------------------------
// spec.placement

// Defaults: H800 nodes as DeepSeek runs them (src/domain/placement/move-cost.ts names the sources:
// DeepEP's README for NVLink ~160 GB/s and 400 Gb/s RDMA ~50 GB/s per GPU; 3FS for storage).
export const MoveBandwidthSchema = z
  .object({
    nvlinkMegabytesPerSecond: z
      .int32()
      .min(1)
      .default(160_000)
      .describe(
        "Bandwidth of a copy between two GPUs of one node (NVLink), megabytes (10^6 bytes) per second per GPU. Default: H800 (~160 GB/s, DeepEP's measurement); H100 SXM NVLink is up to ~450 GB/s one way.",
      ),
    networkMegabytesPerSecond: z
      .int32()
      .min(1)
      .default(50_000)
      .describe(
        "Bandwidth of a copy between GPUs of different nodes (RDMA or network), megabytes per second per GPU. Default: one 400 Gb/s InfiniBand NIC per GPU (~50 GB/s).",
      ),
    storageMegabytesPerSecond: z
      .int32()
      .min(1)
      .default(5_000)
      .describe(
        "Bandwidth of loading an expert from the weight store when no running shard holds it, megabytes per second per GPU. Default ~5 GB/s (a 3FS client node's 40 GiB/s shared by 8 GPUs).",
      ),
  })
  .describe(
    "Bandwidths the move-cost estimate uses for each path of an expert move: same node, across nodes, from storage.",
  );

export const MovesSchema = z
  .object({
    mode: z
      .enum(["Replace", "InPlace"])
      .default("Replace")
      .describe(
        "How a shard's expert set changes. Replace: a new pod with the new set, the old one drained once every expert it holds is served elsewhere (works with any engine). InPlace: the operator writes the target set on the running pod (annotation moe.dev/experts, generation moe.dev/target-generation); the shard (its engine or an agent beside it) loads new experts before releasing old ones and acknowledges with the pod condition moe.dev/placement-applied. A shard that refuses or misses ackTimeoutSeconds is replaced as in Replace mode (RebalanceStalled condition, event and metric). Topology WideEP: Replace leaves running EP groups at the placement they read at start (a new version reaches a group when it restarts); InPlace writes the published version on each serving group's leader pod (moe.dev/placement-version) and the group acknowledges with moe.dev/placement-applied (\"serving placement version V\"); a group that refuses or misses ackTimeoutSeconds keeps serving its acknowledged version and is named in RebalanceStalled.",
      ),
    ackTimeoutSeconds: z
      .int32()
      .min(1)
      .max(86_400)
      .default(60)
      .describe(
        "InPlace: seconds a running shard has to acknowledge a target set written to it before it is replaced (counted from moe.dev/target-since), or a running EP group a placement version before it is reported in RebalanceStalled. A new pod's first load is bounded by its cold start, not by this.",
      ),
  })
  .describe(
    "How the expert sets of running shards (or the placement of running EP groups) change when the placement changes.",
  );

export const PlacementSchema = z
  .object({
    maxRedundantSlotsPerLayer: z
      .int32()
      .min(0)
      .max(Limits.maxRoutedExperts * 16)
      .describe(
        "Upper bound on extra replicas of hot experts per MoE layer. Unset: every free slot (shards x expertSlotsPerGpu - routedExperts) holds a redundant replica. 0 disables redundancy.",
      )
      .optional(),
    rebalanceIntervalSeconds: z
      .int32()
      .min(30)
      .max(86_400)
      .default(300)
      .describe("Seconds between placement re-plans from fresh heat."),
    earlyRebalanceDropPercent: z
      .int32()
      .min(1)
      .max(100)
      .default(5)
      .describe(
        "Re-plan before rebalanceIntervalSeconds has passed when the current placement's balancedness under fresh heat has fallen at least this many percentage points below its balancedness at the last plan or rebalance evaluation (a heat shift). The move budget and the gain threshold still apply; 100 never triggers.",
      ),
    minBalancednessGainPercent: z
      .int32()
      .min(0)
      .max(100)
      .default(1)
      .describe(
        "Move experts only if balancedness (mean GPU load / max GPU load) improves by at least this many percentage points.",
      ),
    maxMovedPercent: z
      .int32()
      .min(1)
      .max(100)
      .default(10)
      .describe("At most this percent of all expert-replica weights may move in one rebalance."),
    topologyKey: z
      .string()
      .max(316)
      .regex(re(LABEL_KEY))
      .default("kubernetes.io/hostname")
      .describe(
        "Node label that defines failure and interconnect domains; replicas of the same expert are spread across its values.",
      ),
    maxStallMilliseconds: z
      .int32()
      .min(10)
      .max(600_000)
      .default(2_000)
      .describe(
        "Longest one shard may stall loading expert weights in one step of a rebalance. A rebalance is split into chunks of consecutive MoE layers that each stay within it (like SGLang's --eplb-rebalance-layers-per-chunk); a layer whose moves alone take longer is its own chunk and is reported. The chunks, bytes and estimated duration are published in the placement ConfigMap (move-cost.json) and status.placement.",
      ),
    moveBandwidth: MoveBandwidthSchema.prefault({}),
    moves: MovesSchema.prefault({}),
  })
  .describe("How expert replicas are assigned to shards and how often they move.");

// ---------------------------------------------------------------------------
// spec.slo and spec.scaling

export const LatencyMetricSchema = z.enum(["InterTokenLatency", "TimeToFirstToken", "TokenLatency"]);
export type LatencyMetric = z.infer<typeof LatencyMetricSchema>;

export const SloSchema = z
  .object({
    metric: LatencyMetricSchema.default("InterTokenLatency").describe(
      "Latency the SLO is about: InterTokenLatency (time between output tokens, ITL), TimeToFirstToken (TTFT) or TokenLatency (request latency divided by output tokens).",
    ),
    percentile: z
      .int32()
      .min(50)
      .max(99)
      .default(99)
      .describe("Percentile of the metric compared with the target, 50..99."),
    targetLatencyMs: z
      .int32()
      .min(1)
      .max(600_000)
      .describe(
        "Target for the metric at the percentile, in milliseconds. The operator scales expert shards to keep observed latency at or below it.",
      ),
    evaluationWindowSeconds: z
      .int32()
      .min(10)
      .max(3_600)
      .default(60)
      .describe("Window over which observed latency is computed."),
  })
  .describe("The latency objective the operator scales toward.");

export const ScalingBehaviorSchema = (
  defaults: { stabilizationWindowSeconds: number; maxShardsPerStep: number },
  direction: string,
) =>
  z
    .object({
      stabilizationWindowSeconds: z
        .int32()
        .min(0)
        .max(86_400)
        .default(defaults.stabilizationWindowSeconds)
        .describe(`Scale ${direction} only to the most conservative recommendation of this many past seconds.`),
      maxShardsPerStep: z
        .int32()
        .min(1)
        .max(Limits.maxShards)
        .default(defaults.maxShardsPerStep)
        .describe(`Most shards added or removed in one scale-${direction} step.`),
    })
    .describe(`Scale-${direction} behaviour.`);

const ScalingBase = z.object({
  minShards: z
    .int32()
    .min(1)
    .max(Limits.maxShards)
    .describe("Fewest expert shards (one GPU each). minShards x expertSlotsPerGpu must cover routedExperts."),
  maxShards: z
    .int32()
    .min(1)
    .max(Limits.maxShards)
    .describe(
      `Most expert shards (one GPU each). Also bounded by the model shape: the placement ConfigMap of maxShards shards must fit the Kubernetes ConfigMap limit of ${CONFIGMAP_LIMIT_BYTES} bytes at up to ${CONFIGMAP_PER_SHARD_FORMULA} per shard (DeepSeek-V3 with 9 slots: ${maxShardsForConfigMap({ layers: 61, denseLayers: 3, routedExperts: 256, expertSlotsPerGpu: 9 })} shards). At the largest admitted shapes one decision (decide()) takes under the 2 s budget of docs/adr/0008-admission-limits.md (bench/admission/decide-largest.ts).`,
    ),
  shards: z
    .int32()
    .min(1)
    .max(Limits.maxShards)
    .describe(
      "Manual override: when set, the operator holds exactly this many shards (within minShards..maxShards) and suspends SLO autoscaling. Written by `kubectl scale` and other clients of the scale subresource; remove it to resume autoscaling.",
    )
    .optional(),
  pendingTimeoutSeconds: z
    .int32()
    .min(1)
    .max(86_400)
    .default(120)
    .describe(
      "A shard pod the scheduler could not place (PodScheduled=False, Unschedulable) for this many seconds since it was created raises the CapacityPending condition (naming the GPU resource, node selector and count), a Warning event and the moe_operator_capacity_pending_shards gauge. Pending pods never count as capacity, and a scale-down deletes the Pending pods of the shards it removes at once (they serve nothing; new shards take the highest indices, which a scale-down removes first). Topology WideEP: an EP group with a pod not bound to a node that long raises it instead, naming the group and its missing GPUs.",
    ),
  scaleUp: ScalingBehaviorSchema({ stabilizationWindowSeconds: 0, maxShardsPerStep: 16 }, "up").prefault({}),
  scaleDown: ScalingBehaviorSchema({ stabilizationWindowSeconds: 600, maxShardsPerStep: 4 }, "down").prefault({}),
});

export const ScalingSchema = withRules(ScalingBase, [
  {
    rule: "self.minShards <= self.maxShards",
    fieldPath: ".minShards",
    message: "spec.scaling.minShards must be less than or equal to spec.scaling.maxShards",
    holds: (s) => s.minShards <= s.maxShards,
  },
  {
    rule: "!has(self.shards) || (self.shards >= self.minShards && self.shards <= self.maxShards)",
    fieldPath: ".shards",
    message: "spec.scaling.shards must be within spec.scaling.minShards..spec.scaling.maxShards",
    holds: (s) => s.shards === undefined || (s.shards >= s.minShards && s.shards <= s.maxShards),
  },
]).describe("Bounds and pace of expert-shard scaling. One shard is one GPU.");

// ---------------------------------------------------------------------------
// spec.heatSource and spec.latencySource

const PrometheusUrl = matching(z.string().max(2048), HTTP_URL, URL_MESSAGE).describe(
  "Base URL of the Prometheus HTTP API, e.g. http://prometheus.monitoring:9090. The operator queries it only if its --prometheus-allowed-urls allows it (otherwise MetricsAvailable=False, reason SourceNotAllowed).",
);
const TimeoutSeconds = z
  .int32()
  .min(1)
  .max(120)
  .default(10)
  .describe(
    "Timeout of one query (capped by the operator's --source-timeout-max-seconds and half its reconcile interval).",
  );

export const PrometheusHeatSchema = z
  .object({
    url: PrometheusUrl,
    query: z
      .string()
      .min(1)
      .max(Limits.maxQueryLength)
      .describe(
        "PromQL template returning one series per (layer, expert) whose value is routed tokens per second. Placeholders: {{namespace}}, {{name}}, {{window}} (e.g. 120s).",
      ),
    layerLabel: z
      .string()
      .max(63)
      .regex(re(LABEL_KEY))
      .default("layer")
      .describe("Series label holding the absolute layer index."),
    expertLabel: z
      .string()
      .max(63)
      .regex(re(LABEL_KEY))
      .default("expert")
      .describe("Series label holding the routed-expert index within the layer."),
    rateWindowSeconds: z
      .int32()
      .min(10)
      .max(86_400)
      .default(120)
      .describe(
        "Value of {{window}} in seconds. After an early rebalance on a heat shift, {{window}} is the seconds since the read that detected it (from 4 s, up to this value) until a rebalance was evaluated on such a reading and this window no longer reaches back before it, when that reading holds at least 100 routed tokens per (layer, expert); otherwise this value.",
      ),
    timeoutSeconds: TimeoutSeconds,
  })
  .describe("Read per-expert routed-token rates from Prometheus.");

export const ConfigMapHeatSchema = z
  .object({
    name: z.string().max(253).regex(re(DNS_SUBDOMAIN)).describe("ConfigMap in the MoEDeployment's namespace."),
    key: z
      .string()
      .max(253)
      .regex(re(CONFIGMAP_KEY))
      .default("expert-load.json")
      .describe('Key holding JSON {"logical_count": [layers][routedExperts]} (SGLang\'s expert distribution format).'),
  })
  .describe("Static heat from a ConfigMap; re-read when it changes.");

export const FileHeatSchema = z
  .object({
    path: z
      .string()
      .max(4096)
      .regex(re(ABSOLUTE_PATH))
      .describe(
        "Absolute path, on the operator's filesystem, of a JSON file in SGLang's expert distribution format. Read only if it is a regular file inside a directory the operator allows (--file-heat-source-dirs; none by default) and within its size cap.",
      ),
  })
  .describe("Static heat from a file mounted into the operator (development and simulation).");

const HeatSourceBase = z.object({
  type: z
    .enum(["Prometheus", "ConfigMap", "File"])
    .describe("Which source to read; the field of the same name (lower camel case) configures it."),
  prometheus: PrometheusHeatSchema.optional(),
  configMap: ConfigMapHeatSchema.optional(),
  file: FileHeatSchema.optional(),
  refreshIntervalSeconds: z.int32().min(5).max(3_600).default(30).describe("Seconds between reads of the source."),
});

export const HeatSourceSchema = withRules(HeatSourceBase, [
  {
    rule: "has(self.prometheus) == (self.type == 'Prometheus')",
    fieldPath: ".prometheus",
    message: "spec.heatSource.prometheus is required when spec.heatSource.type is Prometheus and not allowed otherwise",
    holds: (h) => (h.prometheus !== undefined) === (h.type === "Prometheus"),
  },
  {
    rule: "has(self.configMap) == (self.type == 'ConfigMap')",
    fieldPath: ".configMap",
    message: "spec.heatSource.configMap is required when spec.heatSource.type is ConfigMap and not allowed otherwise",
    holds: (h) => (h.configMap !== undefined) === (h.type === "ConfigMap"),
  },
  {
    rule: "has(self.file) == (self.type == 'File')",
    fieldPath: ".file",
    message: "spec.heatSource.file is required when spec.heatSource.type is File and not allowed otherwise",
    holds: (h) => (h.file !== undefined) === (h.type === "File"),
  },
]).describe("Where routing heat (tokens per second per layer and expert) comes from.");

export const PrometheusLatencySchema = z
  .object({
    url: PrometheusUrl,
    query: z
      .string()
      .min(1)
      .max(Limits.maxQueryLength)
      .describe(
        "PromQL template returning one value: the latency at the SLO percentile. Placeholders: {{namespace}}, {{name}}, {{window}}, {{quantile}} (percentile / 100, e.g. 0.99).",
      ),
    resultUnit: z
      .enum(["Seconds", "Milliseconds"])
      .default("Seconds")
      .describe("Unit of the query result (Prometheus histograms are in seconds)."),
    timeoutSeconds: TimeoutSeconds,
  })
  .describe("Read observed latency from Prometheus.");

export const StaticLatencySchema = z
  .object({
    latencyMs: z.int32().min(0).max(600_000).describe("Latency to assume, in milliseconds (dry runs and tests)."),
  })
  .describe("A fixed observed latency.");

const LatencySourceBase = z.object({
  type: z
    .enum(["Prometheus", "Static"])
    .describe("Which source to read; the field of the same name (lower camel case) configures it."),
  prometheus: PrometheusLatencySchema.optional(),
  static: StaticLatencySchema.optional(),
});

export const LatencySourceSchema = withRules(LatencySourceBase, [
  {
    rule: "has(self.prometheus) == (self.type == 'Prometheus')",
    fieldPath: ".prometheus",
    message:
      "spec.latencySource.prometheus is required when spec.latencySource.type is Prometheus and not allowed otherwise",
    holds: (l) => (l.prometheus !== undefined) === (l.type === "Prometheus"),
  },
  {
    rule: "has(self.static) == (self.type == 'Static')",
    fieldPath: ".static",
    message: "spec.latencySource.static is required when spec.latencySource.type is Static and not allowed otherwise",
    holds: (l) => (l.static !== undefined) === (l.type === "Static"),
  },
]).describe("Where observed latency for the SLO comes from.");

// ---------------------------------------------------------------------------
// spec.prewarm

export const PrewarmScheduleSchema = z
  .object({
    name: z.string().max(63).regex(re(DNS_LABEL)).describe("Name of the window, unique in the list (RFC 1123 label)."),
    start: matching(z.string().max(256), CRON, CRON_MESSAGE).describe(
      "Standard 5-field cron expression (or @daily etc.) for when each window starts, in timeZone. Capacity is warm by then: pods start coldStartSeconds earlier.",
    ),
    durationMinutes: z
      .int32()
      .min(1)
      .max(10_080)
      .describe("Length of each window in minutes (at most one week); the window ends this long after start."),
    timeZone: z
      .string()
      .max(64)
      .regex(re(TIME_ZONE))
      .default("UTC")
      .describe("IANA time zone of start, e.g. Asia/Shanghai."),
    minShards: z
      .int32()
      .min(1)
      .max(Limits.maxShards)
      .describe("Expert shards held at least during the window (at most spec.scaling.maxShards)."),
  })
  .describe("A recurring window of guaranteed capacity.");

export const PredictiveSchema = z
  .object({
    enabled: z.boolean().default(false).describe("Forecast load from history and scale ahead of predicted peaks."),
    leadSeconds: z
      .int32()
      .min(0)
      .max(86_400)
      .default(900)
      .describe("How far ahead the forecast looks; at least prewarm.coldStartSeconds."),
  })
  .describe("Predictive pre-warming from a load forecast.");

export const BurstSchema = z
  .object({
    enabled: z
      .boolean()
      .default(true)
      .describe("React to sudden bursts by scaling up at once, skipping the scale-up stabilization window."),
    panicThresholdPercent: z
      .int32()
      .min(110)
      .max(1_000)
      .default(200)
      .describe(
        "Burst (panic) sensitivity: enter burst mode when load over panicWindowSeconds exceeds this percent of current capacity. Lower is more sensitive.",
      ),
    panicWindowSeconds: z
      .int32()
      .min(5)
      .max(600)
      .default(30)
      .describe("Short window over which burst load is measured."),
  })
  .describe("Burst detection.");

const StagingBase = z.object({
  enabled: z
    .boolean()
    .default(false)
    .describe(
      "Copy the model's weights to the local disks of the GPU nodes the forecast and the schedules will need, one Job per node, ahead of time. Done in mode Auto with topology Disaggregated only. Turning it off, or switching to mode Recommend or PullRequest or to topology WideEP, evicts what was staged (evict Jobs, then the node labels go); deleting the MoEDeployment does the same before it goes (finalizer moe.dev/weight-staging; after 15 minutes the labels and Jobs are removed and a Warning names the nodes whose files stay).",
    ),
  image: z
    .string()
    .min(1)
    .max(1024)
    .describe(
      "Image of the stager container the Job runs on each node. It gets MOE_STAGING_SOURCE, MOE_STAGING_DIR, MOE_STAGING_DIGEST and MOE_STAGING_ACTION (stage or evict) and exits 0 when done. Required when enabled.",
    )
    .optional(),
  source: z
    .string()
    .min(1)
    .max(2048)
    .describe(
      "Where the stager downloads the weights from (passed as MOE_STAGING_SOURCE, e.g. an s3:// or hf:// URI). Part of the digest recorded on staged nodes. Required when enabled.",
    )
    .optional(),
  hostPath: z
    .string()
    .max(1024)
    .regex(re(ABSOLUTE_PATH))
    .default("/var/lib/moe-operator/weights")
    .describe(
      "Host directory the weights are written to (a hostPath volume of the Job, mounted at the same path). Must be allowed by the operator's pod policy (--pod-allowed-host-paths) in mode restricted.",
    ),
  maxNodes: z
    .int32()
    .min(1)
    .max(1_000)
    .default(8)
    .describe(
      "Most nodes staged (or staging) at once for this MoEDeployment: bounds the Jobs, the disk and the network used.",
    ),
  leadSeconds: z
    .int32()
    .min(0)
    .max(604_800)
    .default(3_600)
    .describe(
      "How long before a scheduled window opens its nodes are staged (spec.prewarm.schedules minShards); the forecast counts as it stands (predictive.leadSeconds ahead).",
    ),
  evictAfterSeconds: z
    .int32()
    .min(0)
    .max(2_592_000)
    .default(86_400)
    .describe(
      "A staged node not needed for this long is evicted: an evict Job deletes the weights, then the node's mark is removed.",
    ),
});

export const StagingSchema = withRules(StagingBase, [
  {
    rule: "!has(self.enabled) || !self.enabled || has(self.image)",
    fieldPath: ".image",
    message: "spec.prewarm.staging.image is required when spec.prewarm.staging.enabled is true",
    holds: (s) => !s.enabled || s.image !== undefined,
  },
  {
    rule: "!has(self.enabled) || !self.enabled || has(self.source)",
    fieldPath: ".source",
    message: "spec.prewarm.staging.source is required when spec.prewarm.staging.enabled is true",
    holds: (s) => !s.enabled || s.source !== undefined,
  },
]).describe("Weight staging on nodes ahead of the forecast and the schedules (issue 19, ADR 0022).");

const PrewarmBase = z.object({
  coldStartSeconds: z
    .int32()
    .min(0)
    .max(7_200)
    .default(300)
    .describe(
      "Estimated seconds from creating a shard pod to serving (image pull, weight load, warm-up). Used to start capacity early.",
    ),
  schedules: z
    .array(PrewarmScheduleSchema)
    .max(Limits.maxSchedules)
    .meta({ "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"] })
    .describe("Recurring windows with a capacity floor.")
    .optional(),
  predictive: PredictiveSchema.prefault({}),
  burst: BurstSchema.prefault({}),
  staging: StagingSchema.prefault({}),
});

export const PrewarmSchema = withRules(PrewarmBase, [
  {
    // The API server also evaluates rules on the bare default ({}), before nested
    // defaults apply, hence the has() guards.
    rule: "!has(self.predictive) || !has(self.coldStartSeconds) || !has(self.predictive.enabled) || !self.predictive.enabled || !has(self.predictive.leadSeconds) || self.predictive.leadSeconds >= self.coldStartSeconds",
    fieldPath: ".predictive.leadSeconds",
    message:
      "spec.prewarm.predictive.leadSeconds must be at least spec.prewarm.coldStartSeconds when predictive pre-warming is enabled",
    holds: (p) => !p.predictive.enabled || p.predictive.leadSeconds >= p.coldStartSeconds,
  },
]).describe("Capacity ahead of demand: scheduled windows, forecasts and bursts.");

// ---------------------------------------------------------------------------
// spec.cost

export const PriceEntrySchema = z
  .object({
    labelValue: z.string().max(63).regex(re(LABEL_VALUE)).describe("Value of table.labelKey on the node."),
    usdPerGpuHour: z
      .number()
      .min(0)
      .max(10_000)
      .describe("Price of one GPU-hour on nodes with this label value, in USD."),
  })
  .describe("Price for nodes with one label value.");

export const PriceTableSchema = z
  .object({
    labelKey: z
      .string()
      .max(316)
      .regex(re(LABEL_KEY))
      .describe("Node label looked up in prices, e.g. node.kubernetes.io/instance-type or nvidia.com/gpu.product."),
    prices: z
      .array(PriceEntrySchema)
      .min(1)
      .max(Limits.maxPriceEntries)
      .meta({ "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["labelValue"] })
      .describe("Price per label value."),
  })
  .describe("Explicit price table keyed by a node label.");

export const CostSchema = z
  .object({
    defaultUsdPerGpuHour: z
      .number()
      .min(0)
      .max(10_000)
      .default(0)
      .describe("Price of one GPU-hour in USD when no other rule prices a node. 0 means unknown."),
    priceLabelKey: z
      .string()
      .max(316)
      .regex(re(LABEL_KEY))
      .describe(
        "Node label whose value is the node's USD per GPU-hour as a decimal (e.g. 2.49); takes precedence over table.",
      )
      .optional(),
    table: PriceTableSchema.optional(),
    maxUsdPerHour: z
      .number()
      .min(0)
      .max(100_000_000)
      .describe(
        "Budget: most USD per hour for all GPUs of this deployment (router and shards). Autoscaling never exceeds it; BudgetExceeded reports when it binds.",
      )
      .optional(),
  })
  .describe("GPU prices and the budget. A node is priced by priceLabelKey, then table, then defaultUsdPerGpuHour.");

// ---------------------------------------------------------------------------
// spec.gitops (mode PullRequest)

const REPOSITORY_MESSAGE = "must be owner/name of a GitHub repository, e.g. acme/inference-config";
const GIT_PATH_MESSAGE =
  "must be a relative path inside the repository (no leading /, no .. segments, no spaces), e.g. clusters/prod/deepseek.yaml";
const GIT_PATH_PATTERN =
  "^([-A-Za-z0-9_][-A-Za-z0-9_.]*|[.][-A-Za-z0-9_][-A-Za-z0-9_.]*)(/([-A-Za-z0-9_][-A-Za-z0-9_.]*|[.][-A-Za-z0-9_][-A-Za-z0-9_.]*))*$";
const BRANCH_MESSAGE = "must be a git branch name (letters, digits, . _ - /; no .., no leading or trailing / or .)";

const SecretKeyRefSchema = (defaultKey: string, what: string) =>
  z
    .object({
      name: z
        .string()
        .max(253)
        .regex(re(DNS_SUBDOMAIN))
        .describe(
          `Name of a Secret in the MoEDeployment's namespace holding ${what}. The operator needs \`get\` on this Secret (the Helm chart's gitops.credentialSecrets grants it, and nothing else).`,
        ),
      key: z
        .string()
        .max(253)
        .regex(re(CONFIGMAP_KEY))
        .default(defaultKey)
        .describe(`Key of the Secret holding ${what}.`),
    })
    .describe(`A key of a Secret in the MoEDeployment's namespace holding ${what}.`);

export const GitHubAppSchema = z
  .object({
    appId: z.int().min(1).max(2_147_483_647).describe("GitHub App ID (the JWT issuer)."),
    installationId: z
      .int()
      .min(1)
      .max(Number.MAX_SAFE_INTEGER)
      .describe(
        "Installation ID of the App on the repository's owner; the operator exchanges a JWT for a one-hour installation token.",
      ),
    privateKeySecretRef: SecretKeyRefSchema("private-key", "the App's PEM private key"),
  })
  .describe("Authenticate as a GitHub App installation.");

const GitOpsCredentialsBase = z.object({
  tokenSecretRef: SecretKeyRefSchema(
    "token",
    "a GitHub token with contents and pull-requests write access to the repository",
  ).optional(),
  githubApp: GitHubAppSchema.optional(),
});

export const GitOpsCredentialsSchema = withRules(GitOpsCredentialsBase, [
  {
    rule: "has(self.tokenSecretRef) != has(self.githubApp)",
    fieldPath: ".tokenSecretRef",
    message: "exactly one of spec.gitops.credentials.tokenSecretRef or spec.gitops.credentials.githubApp must be set",
    holds: (c) => (c.tokenSecretRef !== undefined) !== (c.githubApp !== undefined),
  },
]).describe("How the operator authenticates to GitHub: a token Secret or a GitHub App.");

export const PullRequestLimitsSchema = z
  .object({
    hourlyLimit: z
      .int32()
      .min(1)
      .max(100)
      .default(2)
      .describe(
        "Most updates that commit (opening or updating this deployment's pull request; one commit per changed file) per rolling hour.",
      ),
    concurrentLimit: z
      .int32()
      .min(1)
      .max(1_000)
      .default(10)
      .describe(
        "Most open moe-operator/* pull requests in the repository: no new one is opened while this many are open (updating an open one is not limited by it).",
      ),
    closeOnDelete: z
      .boolean()
      .default(true)
      .describe(
        "Close the pull request and delete its branch when the MoEDeployment is deleted, through the finalizer moe.dev/gitops-pull-request. Deletion never waits on GitHub for long: after 4 failed attempts (or 5 minutes after the deletion request) the finalizer is removed with a PullRequestNotClosed Warning event. false: no finalizer; the pull request stays open.",
      ),
  })
  .describe("Pull-request limits (like Renovate's prHourlyLimit and prConcurrentLimit).");

export const GitOpsSchedulesSchema = z
  .object({
    enabled: z
      .boolean()
      .default(true)
      .describe(
        "Propose spec.prewarm.schedules entries (named learned-HHMM, daily, UTC) for load peaks the forecaster saw recur at the same time of day.",
      ),
    minDays: z
      .int32()
      .min(2)
      .max(6)
      .default(3)
      .describe(
        "A peak is proposed only when it recurred on each of the most recent this many days with data (the forecaster keeps one week).",
      ),
    minRisePercent: z
      .int32()
      .min(10)
      .max(1_000)
      .default(50)
      .describe(
        "A ten-minute bucket counts as part of a peak when its load is at least this percent above the day's base (its 25th percentile bucket).",
      ),
  })
  .describe(
    "Pre-warm schedules learned from recurring daily peaks. An entry already in Git is changed only when its start moves by at least 30 minutes, or its duration or minShards by at least minChangePercent.",
  );

const GitOpsPlacementFileBase = z.object({
  path: matching(z.string().max(1024), GIT_PATH_PATTERN, GIT_PATH_MESSAGE).describe(
    "Path in the repository of the JSON file the engines read with --init-expert-location (SGLang physical_to_logical_map). The operator writes it deterministically: one layer per line, no other keys.",
  ),
  minBalancednessGain: z
    .number()
    .min(0.001)
    .max(1)
    .default(0.05)
    .describe(
      "Propose a new file only when, under the observed heat, its balancedness (mean / max GPU load, 0..1) beats the file's in Git (or the one pending in the pull request) by at least this much, or the GPU count changed.",
    ),
});

export const GitOpsPlacementFileSchema = withRules(GitOpsPlacementFileBase, [
  {
    rule: "self.path.endsWith('.json')",
    fieldPath: ".path",
    message:
      "spec.gitops.placementFile.path must end with .json: SGLang's --init-expert-location reads a file only by that suffix",
    holds: (f) => f.path.endsWith(".json"),
  },
]).describe(
  "Propose the expert placement file an engine is configured with from Git, when the operator's heat-based placement differs enough from it.",
);

export const GitOpsSchema = z
  .object({
    repository: matching(
      z.string().max(140),
      "^[A-Za-z0-9][-A-Za-z0-9]{0,38}/[-A-Za-z0-9._]{1,100}$",
      REPOSITORY_MESSAGE,
    ).describe("GitHub repository owner/name holding the MoEDeployment manifest."),
    baseBranch: matching(z.string().max(255), "^[A-Za-z0-9_][-A-Za-z0-9_./]*$", BRANCH_MESSAGE)
      .refine((b) => !b.includes("..") && !b.endsWith("/") && !b.endsWith(".") && !b.endsWith(".lock"), {
        message: BRANCH_MESSAGE,
      })
      .default("main")
      .describe("Branch the pull request targets and the manifest is read from."),
    path: matching(z.string().max(1024), GIT_PATH_PATTERN, GIT_PATH_MESSAGE).describe(
      "Path in the repository of the YAML file holding this MoEDeployment (matched by kind, metadata.name and metadata.namespace when set). The pull request edits spec.scaling.minShards/maxShards, spec.cost.maxUsdPerHour and learned spec.prewarm.schedules entries in place, keeping comments and key order; never live replica counts.",
    ),
    apiUrl: matching(z.string().max(2048), HTTP_URL, URL_MESSAGE)
      .default("https://api.github.com")
      .describe(
        "GitHub REST API base URL; for GitHub Enterprise Server https://HOST/api/v3. Used only if the operator's --github-allowed-urls allows it (otherwise GitOpsSynced=False, reason ApiUrlNotAllowed).",
      ),
    credentials: GitOpsCredentialsSchema,
    minChangePercent: z
      .int32()
      .min(1)
      .max(1_000)
      .default(10)
      .describe(
        "Propose a bound or budget only when it differs from the value in Git by at least this percent (and by at least one shard).",
      ),
    learningWindowSeconds: z
      .int32()
      .min(0)
      .max(2_592_000)
      .default(3_600)
      .describe(
        "Seconds the operator watches a deployment (since it started tracking it) before it proposes anything.",
      ),
    raiseAfterSeconds: z
      .int32()
      .min(10)
      .max(2_592_000)
      .default(1_800)
      .describe(
        "Propose raising spec.scaling.maxShards (or spec.cost.maxUsdPerHour) after SLOMet has been False at that bound for this long without a break.",
      ),
    lowerAfterSeconds: z
      .int32()
      .min(60)
      .max(2_592_000)
      .default(259_200)
      .describe(
        "Propose lowering spec.scaling.maxShards (or minShards) when the bound was not approached for this long (default 3 days): maxShards to 125% of the peak desired shards, minShards to the most shards the SLO needed (not below expert coverage).",
      ),
    pullRequests: PullRequestLimitsSchema.prefault({}),
    prewarmSchedules: GitOpsSchedulesSchema.prefault({}),
    placementFile: GitOpsPlacementFileSchema.optional(),
  })
  .describe(
    "Pull-request mode: where the MoEDeployment manifest lives in Git and how proposals are made. The tracking windows and the commit times of the last hour are recorded in status.gitops, so an operator restart neither restarts the windows nor exceeds the hourly limit.",
  );

// ---------------------------------------------------------------------------
// spec

export const ModeSchema = z.enum(["Auto", "Recommend", "PullRequest"]);
export type Mode = z.infer<typeof ModeSchema>;

const SpecBase = z.object({
  mode: ModeSchema.default("Auto").describe(
    "Auto: the operator creates and scales the workloads and moves experts. Recommend: it only computes and reports decisions in status.recommendation, changing nothing. PullRequest: like Recommend towards the cluster, and it proposes bound and budget changes as one pull request per MoEDeployment (spec.gitops).",
  ),
  model: ModelSchema,
  serving: ServingSchema,
  placement: PlacementSchema.prefault({}),
  slo: SloSchema,
  scaling: ScalingSchema,
  heatSource: HeatSourceSchema,
  latencySource: LatencySourceSchema,
  prewarm: PrewarmSchema.prefault({}),
  cost: CostSchema.prefault({}),
  gitops: GitOpsSchema.optional(),
});

export const MoEDeploymentSpecSchema = withRules(SpecBase, [
  {
    rule: "self.scaling.minShards * self.model.expertSlotsPerGpu >= self.model.routedExperts",
    fieldPath: ".scaling.minShards",
    message:
      "spec.scaling.minShards x spec.model.expertSlotsPerGpu must be at least spec.model.routedExperts so that every routed expert has a slot",
    holds: (s) => s.scaling.minShards * s.model.expertSlotsPerGpu >= s.model.routedExperts,
  },
  {
    rule: `self.scaling.maxShards <= ${celMaxShardsForConfigMap("self.model")}`,
    fieldPath: ".scaling.maxShards",
    message: `spec.scaling.maxShards is too large for this model shape: the placement ConfigMap must fit the Kubernetes ConfigMap limit of ${CONFIGMAP_LIMIT_BYTES} bytes (1 MiB), at up to ${CONFIGMAP_PER_SHARD_FORMULA} per shard`,
    holds: (s) => s.scaling.maxShards <= maxShardsForConfigMap(s.model),
    messageOf: (s) =>
      `spec.scaling.maxShards ${s.scaling.maxShards} is too large for this model shape: at most ${maxShardsForConfigMap(s.model)} shards (up to ${configMapBytesPerShard(s.model)} bytes each) fit the placement ConfigMap within the Kubernetes ConfigMap limit of ${CONFIGMAP_LIMIT_BYTES} bytes (1 MiB)`,
  },
  {
    rule: "!has(self.prewarm) || !has(self.prewarm.schedules) || self.prewarm.schedules.all(w, w.minShards <= self.scaling.maxShards)",
    fieldPath: ".prewarm.schedules",
    message: "every spec.prewarm.schedules[].minShards must be at most spec.scaling.maxShards",
    holds: (s) => (s.prewarm.schedules ?? []).every((w) => w.minShards <= s.scaling.maxShards),
  },
  {
    rule: "!has(self.serving.wideEP) || self.scaling.maxShards >= self.serving.wideEP.nodesPerGroup * (has(self.serving.wideEP.gpusPerNode) ? self.serving.wideEP.gpusPerNode : 8)",
    fieldPath: ".scaling.maxShards",
    message:
      "spec.scaling.maxShards (GPUs with topology WideEP) must be at least one group: spec.serving.wideEP.nodesPerGroup x gpusPerNode",
    holds: (s) =>
      !s.serving.wideEP || s.scaling.maxShards >= s.serving.wideEP.nodesPerGroup * s.serving.wideEP.gpusPerNode,
  },
  {
    rule: "!has(self.serving.wideEP) || self.serving.wideEP.nodesPerGroup * (has(self.serving.wideEP.gpusPerNode) ? self.serving.wideEP.gpusPerNode : 8) * self.model.expertSlotsPerGpu >= self.model.routedExperts",
    fieldPath: ".serving.wideEP.nodesPerGroup",
    message:
      "spec.serving.wideEP.nodesPerGroup x gpusPerNode x spec.model.expertSlotsPerGpu must be at least spec.model.routedExperts: every group holds the whole shared placement",
    holds: (s) =>
      !s.serving.wideEP ||
      s.serving.wideEP.nodesPerGroup * s.serving.wideEP.gpusPerNode * s.model.expertSlotsPerGpu >=
        s.model.routedExperts,
  },
  {
    rule: "!has(self.serving.gpu.alternatives) || size(self.serving.gpu.alternatives) == 0 || (has(self.serving.gpu.nodeSelector) && size(self.serving.gpu.nodeSelector) > 0)",
    fieldPath: ".serving.gpu.nodeSelector",
    message:
      "spec.serving.gpu.nodeSelector must name at least one node label when spec.serving.gpu.alternatives is set: without it every node is a primary node and there is nothing to fall back from",
    holds: (s) =>
      (s.serving.gpu.alternatives ?? []).length === 0 || Object.keys(s.serving.gpu.nodeSelector ?? {}).length > 0,
  },
  {
    rule: "!has(self.serving.wideEP) || !has(self.serving.gpu.alternatives) || size(self.serving.gpu.alternatives) == 0",
    fieldPath: ".serving.gpu.alternatives",
    message:
      "spec.serving.gpu.alternatives is not supported with spec.serving.topology WideEP: a group's pods come from one LeaderWorkerSet template",
    holds: (s) => !s.serving.wideEP || (s.serving.gpu.alternatives ?? []).length === 0,
  },
  {
    rule: "!has(self.serving.wideEP) || !has(self.mode) || self.mode != 'PullRequest'",
    fieldPath: ".mode",
    message: "spec.mode PullRequest is not supported with spec.serving.topology WideEP yet: use Auto or Recommend",
    holds: (s) => !s.serving.wideEP || s.mode !== "PullRequest",
  },
  {
    rule: "!has(self.mode) || self.mode != 'PullRequest' || has(self.gitops)",
    fieldPath: ".gitops",
    message: "spec.gitops is required when spec.mode is PullRequest",
    holds: (s) => s.mode !== "PullRequest" || s.gitops !== undefined,
  },
]).describe(
  "Desired state of an MoE model deployment: model shape, pod templates, placement policy, latency SLO, scaling bounds, metric sources, pre-warming, prices and mode.",
);

// ---------------------------------------------------------------------------
// status

const Time = (what: string) => z.iso.datetime({ offset: true }).describe(what);

export const ConditionSchema = z
  .object({
    type: z
      .string()
      .max(316)
      .regex(re(CONDITION_TYPE))
      .describe(
        "Condition type: Ready, Progressing, Degraded, SLOMet, BudgetExceeded, MetricsAvailable, Prewarming or GitOpsSynced (mode PullRequest).",
      ),
    status: z.enum(["True", "False", "Unknown"]).describe("True, False or Unknown."),
    observedGeneration: z.int().min(0).describe("metadata.generation the condition was computed from.").optional(),
    lastTransitionTime: Time("When status last changed."),
    reason: z
      .string()
      .min(1)
      .max(1024)
      .regex(re(CONDITION_REASON))
      .describe("CamelCase reason for the condition's last transition."),
    message: z
      .string()
      .max(32_768)
      .describe("Human-readable details; for InvalidSpec, every offending field with its path."),
  })
  .describe("A metav1.Condition.");
export type Condition = z.infer<typeof ConditionSchema>;

export const PlacementStatusSchema = z
  .object({
    version: z.int().min(0).describe("Monotonic version of the published placement."),
    hash: z.string().max(128).describe("Content hash of the placement plan."),
    configMapName: z
      .string()
      .max(253)
      .describe("ConfigMap holding the placement (and SGLang's physical_to_logical_map).")
      .optional(),
    balancedness: z
      .number()
      .min(0)
      .max(1)
      .describe("Mean GPU load / max GPU load under current heat, 0..1 (1 is perfectly balanced).")
      .optional(),
    movedFraction: z
      .number()
      .min(0)
      .max(1)
      .describe("Fraction of expert-replica weights moved by the last rebalance, 0..1.")
      .optional(),
    movedBytes: z
      .int()
      .min(0)
      .describe("Bytes of expert weights the last rebalance loads (moved replicas x bytes per replica).")
      .optional(),
    estimatedMoveSeconds: z
      .number()
      .min(0)
      .describe(
        "Estimated duration of the last rebalance's weight loads, seconds: its layer chunks one after another, each as long as its longest shard stall (bandwidths from spec.placement.moveBandwidth).",
      )
      .optional(),
    moveChunks: z
      .int32()
      .min(0)
      .describe(
        "Layer chunks the last rebalance is split into so that no shard stalls longer than spec.placement.maxStallMilliseconds.",
      )
      .optional(),
    maxMoveStallSeconds: z
      .number()
      .min(0)
      .describe(
        "Longest stall of one shard in one chunk of the last rebalance, seconds; above spec.placement.maxStallMilliseconds only when one layer's moves alone take longer.",
      )
      .optional(),
    redundantSlotsPerLayer: z
      .int32()
      .min(0)
      .describe("Redundant expert replicas per MoE layer in this placement.")
      .optional(),
    appliedShards: z
      .int32()
      .min(0)
      .describe(
        "spec.placement.moves.mode InPlace: shards whose acknowledged expert set (pod condition moe.dev/placement-applied) is their set in this version.",
      )
      .optional(),
    movingShards: z
      .int32()
      .min(0)
      .describe(
        "spec.placement.moves.mode InPlace: shards with a target set written and not yet acknowledged (loading or releasing experts).",
      )
      .optional(),
    lastRebalanceTime: Time("When the placement last changed.").optional(),
  })
  .describe("Summary of the current expert placement.");

export const LatencyStatusSchema = z
  .object({
    metric: LatencyMetricSchema.describe("Metric observed (from spec.slo.metric)."),
    percentile: z.int32().min(0).max(100).describe("Percentile observed (from spec.slo.percentile)."),
    observedMs: z
      .number()
      .min(0)
      .describe("Observed latency at the percentile over the evaluation window, in milliseconds.")
      .optional(),
    targetMs: z.int32().min(0).describe("Target in milliseconds (from spec.slo.targetLatencyMs)."),
    sampleTime: Time("When observedMs was measured.").optional(),
  })
  .describe("Observed latency against the SLO target.");

export const LoadTierSchema = z.enum(["peer", "node-disk", "remote"]);

export const ColdStartStatusSchema = z
  .object({
    leadSeconds: z
      .number()
      .min(0)
      .describe(
        "Lead time the capacity decision starts new shards ahead by: the learned cold start (pod creation to Ready; in place, to the first placement acknowledgement) of the tier the next new shard loads from on the node type it is expected on (nextNodeType) once that pair has enough starts, else of that tier on every node type once the tier has enough, else of all starts, else spec.prewarm.coldStartSeconds; plus a margin.",
      ),
    nextLoadTier: LoadTierSchema.describe(
      "Where the next new shard is expected to load its weights from: peer when shard pods report loading from peers (moe.dev/load-tier) and every expert has a Ready holder; else node-disk when a node staged with this deployment's weights (spec.prewarm.staging) has a free GPU; else remote. Absent while no pod reported a tier and no staged node has room.",
    ).optional(),
    tiers: z
      .array(
        z.object({
          tier: LoadTierSchema.describe("The tier: peer, node-disk or remote."),
          samples: z.int32().min(0).describe("Cold starts kept for this tier."),
          medianSeconds: z.number().min(0).describe("Median of those cold starts, in seconds."),
        }),
      )
      .max(3)
      .meta({ "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["tier"] })
      .describe("Cold starts observed per tier the pods reported (moe.dev/load-tier).")
      .optional(),
    nextNodeType: z
      .string()
      .max(63)
      .describe(
        "The node type the next new shard is expected on: of the nodes matching spec.serving.gpu with a free GPU (only the staged ones when nextLoadTier is node-disk), the type with the most free GPUs. A node's type is its node.kubernetes.io/instance-type label, else its nvidia.com/gpu.product label. Once that type has enough cold starts of the next tier, leadSeconds is learned from them.",
      )
      .optional(),
    byNodeType: z
      .array(
        z.object({
          tier: LoadTierSchema.describe("The tier: peer, node-disk or remote."),
          nodeType: z.string().max(63).describe("The node type (instance type, else GPU product)."),
          samples: z.int32().min(0).describe("Cold starts kept for this tier on this node type."),
          medianSeconds: z.number().min(0).describe("Median of those cold starts, in seconds."),
        }),
      )
      .max(24)
      .meta({ "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["tier", "nodeType"] })
      .describe(
        "Cold starts per tier and node type (the first 24 pairs seen are learned; later ones count in their tier only).",
      )
      .optional(),
  })
  .describe("What the operator learned about shard cold starts (issue 19, ADR 0019).");

export const StagedNodeSchema = z
  .object({
    name: z.string().max(253).describe("The node."),
    phase: z
      .enum(["Staging", "Staged", "Failed", "Evicting"])
      .describe(
        "Staging (its Job runs), Staged (the node carries the mark with the current digest), Failed (its Job failed; retried once the Job is gone) or Evicting (its evict Job runs).",
      ),
    lastNeededTime: Time(
      "When the staging plan stopped wanting this node (absent while it is wanted); it is evicted spec.prewarm.staging.evictAfterSeconds after.",
    ).optional(),
    message: z.string().max(1_024).describe("Why the Job failed, for phase Failed.").optional(),
  })
  .describe("One node of the staging plan.");

export const StagingStatusSchema = z
  .object({
    digest: z.string().max(63).describe("Digest of the staged weights (spec.prewarm.staging.source and spec.model)."),
    label: z.string().max(317).describe("The node label that marks a staged node; its value is the digest."),
    targetNodes: z.int32().min(0).describe("Nodes the plan wants staged now (within maxNodes)."),
    bytesPerNode: z
      .int()
      .min(0)
      .describe(
        "Bytes one staged node holds and downloads: every routed expert once (routedExperts x MoE layers x bytes per expert).",
      ),
    stagedBytes: z.int().min(0).describe("Disk in use: bytesPerNode x nodes in phase Staged."),
    nodes: z
      .array(StagedNodeSchema)
      .max(1_000)
      .meta({ "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"] })
      .describe("Nodes staged, staging, failed or evicting.")
      .optional(),
  })
  .describe("Weight staging (spec.prewarm.staging): progress and the disk it costs.");

export const CostStatusSchema = z
  .object({
    usdPerHour: z
      .number()
      .min(0)
      .describe("Current cost of all GPUs of the deployment, USD per hour (rounded to cents)."),
    usdPerMillionTokens: z
      .number()
      .min(0)
      .describe("Current cost per million output tokens at observed throughput, in USD.")
      .optional(),
    gpuHoursTotal: z.number().min(0).describe("GPU-hours accumulated since the deployment was created.").optional(),
  })
  .describe("What the deployment costs now.");

export const LastScaleSchema = z
  .object({
    time: Time("When the shard count last changed."),
    fromShards: z.int32().min(0).describe("Shards before the change."),
    toShards: z.int32().min(0).describe("Shards after the change."),
    reason: z
      .string()
      .min(1)
      .max(1024)
      .regex(re(CONDITION_REASON))
      .describe(
        "CamelCase reason: SLOTarget, ScheduledWindow, ForecastPeak, BurstDetected, CappedByBudget, ManualOverride or BoundsChanged.",
      ),
    message: z.string().max(4_096).describe("Details, e.g. observed vs target latency.").optional(),
  })
  .describe("The last change of the shard count.");

export const NextPrewarmSchema = z
  .object({
    time: Time("When capacity starts to be raised (window start minus coldStartSeconds, or forecast time)."),
    source: z.enum(["Schedule", "Forecast"]).describe("Schedule or Forecast."),
    scheduleName: z.string().max(63).describe("Name of the schedule window, for source Schedule.").optional(),
    minShards: z.int32().min(0).describe("Shards the pre-warm will hold."),
  })
  .describe("The next planned pre-warm.");

export const GroupsStatusSchema = z
  .object({
    desired: z
      .int32()
      .min(0)
      .describe(
        "EP groups the operator is moving toward (the LeaderWorkerSet's replicas); while groups drain before a scale-down, the groups still running.",
      ),
    ready: z.int32().min(0).describe("EP groups whose every pod is Ready: the only groups counted as capacity."),
    gpusPerGroup: z.int32().min(1).describe("spec.serving.wideEP.nodesPerGroup x gpusPerNode."),
    pending: z
      .array(z.int32().min(0))
      .max(Limits.maxShards)
      .describe("Indices of groups with a pod unschedulable past spec.scaling.pendingTimeoutSeconds.")
      .optional(),
    draining: z
      .array(z.int32().min(0))
      .max(Limits.maxShards)
      .describe(
        "Indices of Ready groups marked draining (moe.dev/draining-since on the leader pod) before a scale-down removes them.",
      )
      .optional(),
    placementApplied: z
      .int32()
      .min(0)
      .describe(
        "spec.placement.moves.mode InPlace: serving groups whose leader pod acknowledged the published placement version (condition moe.dev/placement-applied).",
      )
      .optional(),
    placementMoving: z
      .int32()
      .min(0)
      .describe(
        "spec.placement.moves.mode InPlace: serving groups with a placement version written on the leader pod and not yet acknowledged, within spec.placement.moves.ackTimeoutSeconds.",
      )
      .optional(),
  })
  .describe("Topology WideEP: the EP groups of the LeaderWorkerSet.");

export const RecommendationSchema = z
  .object({
    time: Time("When the recommendation was computed."),
    shards: z.int32().min(0).describe("Expert shards the operator would run."),
    gpus: z.int32().min(0).describe("GPUs the operator would run (shards plus router GPUs)."),
    groups: z
      .int32()
      .min(0)
      .describe("Topology WideEP: EP groups the operator would run (shards and gpus are their GPUs).")
      .optional(),
    usdPerHour: z.number().min(0).describe("Cost of the recommendation, USD per hour.").optional(),
    placementHash: z.string().max(128).describe("Hash of the placement it would publish.").optional(),
    movedFraction: z.number().min(0).max(1).describe("Fraction of expert weights it would move, 0..1.").optional(),
    balancedness: z.number().min(0).max(1).describe("Balancedness the recommended placement reaches, 0..1.").optional(),
    reason: z
      .string()
      .min(1)
      .max(1024)
      .regex(re(CONDITION_REASON))
      .describe("CamelCase reason for the recommended shard count."),
    message: z.string().max(4_096).describe("Why, in words.").optional(),
  })
  .describe("What the operator would do (mode Recommend; also filled in Auto for comparison).");

export const GitOpsStatusSchema = z
  .object({
    trackingSince: Time(
      "When the operator started tracking this deployment for proposals (the learning window starts here).",
    ),
    boundsKey: z.string().max(128).describe("minShards/maxShards/maxUsdPerHour the windows below refer to."),
    atMaxSince: Time("Start of the current unbroken run of SLOMet=False at maxShards.").optional(),
    atMaxRequiredShards: z.int32().min(0).describe("Most shards the SLO needed in that run.").optional(),
    atBudgetSince: Time("Start of the current unbroken run of SLOMet=False held back by the budget.").optional(),
    budgetRequiredUsdPerHour: z.number().min(0).describe("Most USD/h the SLO needed in that run.").optional(),
    quietSince: Time(
      "Since when maxShards was not approached (absent while it is approached); lowering proposals wait lowerAfterSeconds from here.",
    ).optional(),
    peakDesiredShards: z.int32().min(0).describe("Most shards wanted since quietSince.").optional(),
    peakSloShards: z.int32().min(0).describe("Most shards the SLO needed since quietSince.").optional(),
    commitTimes: z
      .array(Time("A commit."))
      .max(100)
      .describe("Commits to the pull request in the last hour (spec.gitops.pullRequests.hourlyLimit).")
      .optional(),
    pullRequestUrl: z.string().max(2048).describe("The deployment's pull request.").optional(),
    pullRequestState: z
      .enum(["Open", "Closing", "Closed"])
      .describe(
        "Open: the operator wrote to the deployment's branch, its pull request may be open. Closing: every proposal was withdrawn and the pull request is being closed (a restarted operator finishes it). Closed: it was closed (or merged) and the branch deleted; a new proposal opens a new pull request.",
      )
      .optional(),
    pendingSchedules: z
      .array(
        z
          .object({
            name: z.string().max(63).describe("Entry name (learned-HHMM)."),
            replaces: z.string().max(63).describe("The entry in Git it changes, if any.").optional(),
            start: z.string().max(256).describe("Daily cron (UTC)."),
            durationMinutes: z.int32().min(1).describe("Window length."),
            minShards: z.int32().min(1).describe("Shards held in the window."),
            daysSeen: z.int32().min(0).describe("Days the peak recurred on."),
            peakTokensPerSecond: z.number().min(0).describe("Peak load seen."),
            baseTokensPerSecond: z.number().min(0).describe("The days' base load."),
            why: z.string().max(1024).describe("Why, in words."),
          })
          .describe("A learned pre-warm schedule entry proposed and not yet in the spec."),
      )
      .max(50)
      .describe(
        "Learned schedule entries the pull request proposes (the forecaster's history behind them is in memory: a restarted operator keeps these until it has seen spec.gitops.prewarmSchedules.minDays days again).",
      )
      .optional(),
  })
  .describe("Mode PullRequest: what the proposals rest on, kept across operator restarts.");

export const MoEDeploymentStatusSchema = z
  .object({
    observedGeneration: z.int().min(0).describe("metadata.generation of the spec this status reflects.").optional(),
    conditions: z
      .array(ConditionSchema)
      .max(32)
      .meta({ "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"] })
      .describe("Current state as metav1.Conditions; Ready summarizes the others.")
      .optional(),
    selector: z
      .string()
      .max(4_096)
      .describe("Label selector of the expert-shard pods (for the scale subresource).")
      .optional(),
    currentShards: z.int32().min(0).describe("Expert shards that exist now.").optional(),
    desiredShards: z.int32().min(0).describe("Expert shards the operator is moving toward.").optional(),
    currentGpus: z
      .int32()
      .min(0)
      .describe("GPUs requested now: shards plus router replicas x gpusPerReplica.")
      .optional(),
    desiredGpus: z.int32().min(0).describe("GPUs the operator is moving toward.").optional(),
    groups: GroupsStatusSchema.optional(),
    placement: PlacementStatusSchema.optional(),
    latency: LatencyStatusSchema.optional(),
    cost: CostStatusSchema.optional(),
    coldStart: ColdStartStatusSchema.optional(),
    staging: StagingStatusSchema.optional(),
    lastScale: LastScaleSchema.optional(),
    nextPrewarm: NextPrewarmSchema.optional(),
    recommendation: RecommendationSchema.optional(),
    gitops: GitOpsStatusSchema.optional(),
  })
  .describe("Observed state, written only by the operator.");

// ---------------------------------------------------------------------------
// The whole object

/** Why metadata.name is short: it is a label value on every child (moe.dev/deployment, app.kubernetes.io/instance). */
export const NAME_MESSAGE = `metadata.name must be at most ${LABEL_VALUE_MAX_LENGTH} characters: it is the value of the moe.dev/deployment label on every child, and Kubernetes limits label values to ${LABEL_VALUE_MAX_LENGTH}`;
/** The same limit as a CEL rule on the object root (the CRD cannot declare metadata fields). */
export const NAME_RULE = {
  rule: `size(self.metadata.name) <= ${LABEL_VALUE_MAX_LENGTH}`,
  message: NAME_MESSAGE,
} as const;

export const ObjectMetaSchema = z
  .looseObject({
    name: z
      .string()
      .max(LABEL_VALUE_MAX_LENGTH, { message: NAME_MESSAGE })
      .describe("Name of the MoEDeployment.")
      .optional(),
    namespace: z.string().max(63).describe("Namespace.").optional(),
    uid: z.string().describe("UID.").optional(),
    generation: z.int().describe("Spec generation.").optional(),
    resourceVersion: z.string().describe("Resource version.").optional(),
    labels: StringMap("Labels.").optional(),
    annotations: StringMap("Annotations.").optional(),
  })
  .describe("Standard object metadata.");

export const MoEDeploymentSchema = z
  .object({
    apiVersion: z.literal("moe.dev/v1alpha1").describe("moe.dev/v1alpha1."),
    kind: z.literal("MoEDeployment").describe("MoEDeployment."),
    metadata: ObjectMetaSchema,
    spec: MoEDeploymentSpecSchema,
    status: MoEDeploymentStatusSchema.optional(),
  })
  .describe(
    "A Mixture-of-Experts model deployment whose expert shards are placed by routing heat and scaled toward a latency SLO within bounds and budget.",
  );

export type PodTemplate = z.output<typeof PodTemplateSchema>;
export type Toleration = z.output<typeof TolerationSchema>;
export type ModelSpec = z.output<typeof ModelSchema>;
export type GpuSpec = z.output<typeof GpuSchema>;
export type RouterSpec = z.output<typeof RouterSchema>;
export type ServingSpec = z.output<typeof ServingSchema>;
export type PlacementPolicy = z.output<typeof PlacementSchema>;
export type SloSpec = z.output<typeof SloSchema>;
export type ScalingSpec = z.output<typeof ScalingSchema>;
export type HeatSource = z.output<typeof HeatSourceSchema>;
export type LatencySource = z.output<typeof LatencySourceSchema>;
export type PrewarmSchedule = z.output<typeof PrewarmScheduleSchema>;
export type PrewarmSpec = z.output<typeof PrewarmSchema>;
export type StagingSpec = z.output<typeof StagingSchema>;
export type StagingStatus = z.output<typeof StagingStatusSchema>;
export type CostSpec = z.output<typeof CostSchema>;
export type GitOpsSpec = z.output<typeof GitOpsSchema>;
export type GitOpsStatus = z.output<typeof GitOpsStatusSchema>;
export type MoEDeploymentSpec = z.output<typeof MoEDeploymentSpecSchema>;
/** The spec as a user writes it (defaults not yet applied). */
export type MoEDeploymentSpecInput = z.input<typeof MoEDeploymentSpecSchema>;
export type MoEDeploymentStatus = z.output<typeof MoEDeploymentStatusSchema>;
export type MoEDeployment = z.output<typeof MoEDeploymentSchema>;
export type MoEDeploymentInput = z.input<typeof MoEDeploymentSchema>;

/** Number of MoE layers (layers with routed experts). */
export function moeLayerCount(model: ModelSpec): number {
  return model.layers - model.denseLayers;
}

/** Bytes of one replica of one routed expert in one layer. */
export function expertReplicaBytes(model: ModelSpec): number {
  if (model.expertWeightBytes !== undefined) return model.expertWeightBytes;
  if (model.expertParameters !== undefined && model.weightDtype !== undefined) {
    return Math.ceil(model.expertParameters * BYTES_PER_PARAMETER[model.weightDtype]);
  }
  return 0;
}

/** GPUs of the router/attention workload. */
export function routerGpuCount(spec: MoEDeploymentSpec): number {
  const r = spec.serving.router;
  return r ? r.replicas * r.gpusPerReplica : 0;
}

/**
 * The router and expert shards of a Disaggregated spec. The schema requires both for that
 * topology; the throw only guards code paths that are never taken for WideEP.
 */
export function disaggregated(serving: MoEDeploymentSpec["serving"]): {
  router: NonNullable<MoEDeploymentSpec["serving"]["router"]>;
  expertShards: NonNullable<MoEDeploymentSpec["serving"]["expertShards"]>;
} {
  const { router, expertShards } = serving;
  if (!router || !expertShards) {
    throw new Error(`spec.serving.router and spec.serving.expertShards are required for topology ${serving.topology}`);
  }
  return { router, expertShards };
}
