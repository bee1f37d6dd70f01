// Builds the MoEDeployment CustomResourceDefinition from the zod schemas.
//
// z.toJSONSchema (OpenAPI 3.0 target, input side so defaults are emitted and
// defaulted fields are optional) produces most of it; `toStructural` then makes
// it a Kubernetes structural schema: every ref inlined, no unions, no
// `additionalProperties` beside `properties`, loose objects turned into
// `x-kubernetes-preserve-unknown-fields`, integer formats instead of JavaScript's
// safe-integer bounds, and a description on every property.
import { z } from "zod";
import { stringify } from "yaml";
import {
  API_GROUP,
  API_VERSION,
  CATEGORIES,
  CRD_NAME,
  KIND,
  LIST_KIND,
  PLURAL,
  SHORT_NAMES,
  SINGULAR,
  Annotation,
} from "./constants.ts";
import { MoEDeploymentSpecSchema, MoEDeploymentStatusSchema, NAME_RULE } from "./schema.ts";

export type JsonSchema = { [key: string]: unknown };

/** Repository-relative path of the generated CRD. */
export const CRD_FILE = "crds/moe.dev_moedeployments.yaml";

const INT32_MIN = -2147483648;
const INT32_MAX = 2147483647;

/** Keys a structural schema node may carry (apiextensions.k8s.io/v1 JSONSchemaProps we use). */
const ALLOWED_KEYS = new Set([
  "type",
  "format",
  "description",
  "default",
  "enum",
  "nullable",
  "pattern",
  "minLength",
  "maxLength",
  "minimum",
  "maximum",
  "exclusiveMinimum",
  "exclusiveMaximum",
  "multipleOf",
  "minItems",
  "maxItems",
  "uniqueItems",
  "minProperties",
  "maxProperties",
  "required",
  "properties",
  "additionalProperties",
  "items",
  "x-kubernetes-preserve-unknown-fields",
  "x-kubernetes-validations",
  "x-kubernetes-list-type",
  "x-kubernetes-list-map-keys",
  "x-kubernetes-map-type",
  "x-kubernetes-embedded-resource",
  "x-kubernetes-int-or-string",
]);

/** Error thrown when the zod schemas cannot be turned into a structural schema. */
export class StructuralSchemaError extends Error {
  readonly problems: string[];
  constructor(problems: string[]) {
    super(`zod schema is not a Kubernetes structural schema:\n  ${problems.join("\n  ")}`, { cause: problems });
    this.name = "StructuralSchemaError";
    this.problems = problems;
  }
}

/** The JSON Schema of one zod schema after the structural post-processing pass. */
export function structuralSchemaOf(schema: z.ZodType, rootPath: string): JsonSchema {
  const raw = z.toJSONSchema(schema, {
    target: "openapi-3.0",
    io: "input",
    reused: "inline",
    cycles: "throw",
    unrepresentable: "throw",
  }) as JsonSchema;
  const problems: string[] = [];
  const out = toStructural(raw, rootPath, problems);
  if (problems.length > 0) throw new StructuralSchemaError(problems);
  return out;
}

function toStructural(node: JsonSchema, path: string, problems: string[]): JsonSchema {
  const out = allowedKeywords(node, path, problems);
  if (out.type === "integer") fixIntegerBounds(out);
  if (out.type === "string" && out.format === "date-time") delete out.pattern;
  if (out.type === "object") structuralObject(out, path, problems);
  if (out.type === "array") {
    if (typeof out.items !== "object" || out.items === null || Array.isArray(out.items))
      problems.push(`${path}: arrays need a single items schema`);
    else out.items = toStructural(out.items as JsonSchema, `${path}[*]`, problems);
  }
  if (
    out.type === undefined &&
    out["x-kubernetes-preserve-unknown-fields"] !== true &&
    out["x-kubernetes-int-or-string"] !== true
  ) {
    problems.push(`${path}: missing type`);
  }
  return canonicalOrder(out);
}

/** The keywords a structural schema allows (const becomes a one-value enum); a problem for each other one. */
function allowedKeywords(node: JsonSchema, path: string, problems: string[]): JsonSchema {
  const out: JsonSchema = {};
  for (const [key, value] of Object.entries(node)) {
    if (key === "$schema" || key === "id" || key === "$id" || key === "title") continue;
    if (key === "$ref" || key === "$defs" || key === "definitions") {
      problems.push(`${path}: ${key} is not allowed (refs must be inlined)`);
      continue;
    }
    if (key === "anyOf" || key === "oneOf" || key === "allOf" || key === "not") {
      problems.push(`${path}: ${key} is not supported (use a discriminator field and CEL rules instead of unions)`);
      continue;
    }
    if (key === "const") {
      out.enum = [value];
      continue;
    }
    if (!ALLOWED_KEYS.has(key)) {
      problems.push(`${path}: unsupported JSON Schema keyword ${key}`);
      continue;
    }
    out[key] = value;
  }
  return out;
}

/** Drop bounds that only restate the integer format, and name the format (int32 or int64). */
function fixIntegerBounds(out: JsonSchema): void {
  const min = out.minimum;
  const max = out.maximum;
  const isInt32 = min === INT32_MIN || max === INT32_MAX;
  if (typeof min === "number" && Math.abs(min) >= (isInt32 ? -INT32_MIN : Number.MAX_SAFE_INTEGER)) delete out.minimum;
  if (typeof max === "number" && max >= (isInt32 ? INT32_MAX : Number.MAX_SAFE_INTEGER)) delete out.maximum;
  out.format ??= isInt32 || (typeof out.maximum === "number" && out.maximum <= INT32_MAX) ? "int32" : "int64";
}

/** Objects: properties (each described) or a map schema, never both; an open object preserves unknown fields. */
function structuralObject(out: JsonSchema, path: string, problems: string[]): void {
  const props = out.properties as Record<string, JsonSchema> | undefined;
  const additional = out.additionalProperties;
  if (props !== undefined) {
    structuralProperties(out, props, path, problems);
  } else if (additional === false) {
    delete out.additionalProperties;
  } else if (typeof additional === "object" && additional !== null) {
    if (Object.keys(additional).length === 0) {
      delete out.additionalProperties;
      out["x-kubernetes-preserve-unknown-fields"] = true;
    } else {
      out.additionalProperties = toStructural(additional as JsonSchema, `${path}[*]`, problems);
    }
  } else if (additional === undefined) {
    out["x-kubernetes-preserve-unknown-fields"] = true;
  }
}

function structuralProperties(
  out: JsonSchema,
  props: Record<string, JsonSchema>,
  path: string,
  problems: string[],
): void {
  const additional = out.additionalProperties;
  if (additional !== undefined && additional !== false) {
    const loose = typeof additional === "object" && additional !== null && Object.keys(additional).length === 0;
    if (loose) out["x-kubernetes-preserve-unknown-fields"] = true;
    else problems.push(`${path}: additionalProperties with a schema cannot be combined with properties`);
  }
  delete out.additionalProperties;
  const fixed: Record<string, JsonSchema> = {};
  for (const [name, child] of Object.entries(props)) {
    const childPath = `${path}.${name}`;
    if (typeof child.description !== "string" || child.description.length === 0)
      problems.push(`${childPath}: missing description`);
    fixed[name] = toStructural(child, childPath, problems);
  }
  out.properties = fixed;
  if (Object.keys(fixed).length === 0) {
    delete out.properties;
    out["x-kubernetes-preserve-unknown-fields"] = true;
  }
}

/** Stable, readable key order: what it is, then constraints, then children, then extensions. */
const KEY_ORDER = [
  "description",
  "type",
  "format",
  "default",
  "enum",
  "nullable",
  "minimum",
  "exclusiveMinimum",
  "maximum",
  "exclusiveMaximum",
  "multipleOf",
  "minLength",
  "maxLength",
  "pattern",
  "minItems",
  "maxItems",
  "uniqueItems",
  "minProperties",
  "maxProperties",
  "required",
  "properties",
  "additionalProperties",
  "items",
];

function canonicalOrder(node: JsonSchema): JsonSchema {
  const rank = (k: string) => {
    const i = KEY_ORDER.indexOf(k);
    return i === -1 ? KEY_ORDER.length : i;
  };
  const keys = Object.keys(node).sort(
    (a, b) => rank(a) - rank(b) || (rank(a) === KEY_ORDER.length ? a.localeCompare(b) : 0),
  );
  const out: JsonSchema = {};
  for (const k of keys) out[k] = node[k];
  return out;
}

/** Printer columns for `kubectl get moed`. */
export const PRINTER_COLUMNS = [
  {
    name: "Mode",
    type: "string",
    jsonPath: ".spec.mode",
    description: "Auto acts, Recommend only reports, PullRequest proposes bounds in Git.",
  },
  {
    name: "Ready",
    type: "string",
    jsonPath: '.status.conditions[?(@.type=="Ready")].status',
    description: "Ready condition status.",
  },
  {
    name: "Reason",
    type: "string",
    jsonPath: '.status.conditions[?(@.type=="Ready")].reason',
    description: "Ready condition reason.",
    priority: 1,
  },
  { name: "GPUs", type: "integer", jsonPath: ".status.currentGpus", description: "GPUs now (shards plus router)." },
  {
    name: "Desired",
    type: "integer",
    jsonPath: ".status.desiredGpus",
    description: "GPUs the operator is moving toward.",
  },
  {
    name: "Shards",
    type: "integer",
    jsonPath: ".status.currentShards",
    description: "Expert shards now.",
    priority: 1,
  },
  {
    name: "Latency(ms)",
    type: "number",
    jsonPath: ".status.latency.observedMs",
    description: "Observed latency at the SLO percentile, ms.",
  },
  { name: "SLO(ms)", type: "integer", jsonPath: ".spec.slo.targetLatencyMs", description: "Latency target, ms." },
  { name: "Metric", type: "string", jsonPath: ".spec.slo.metric", description: "SLO latency metric.", priority: 1 },
  { name: "$/h", type: "number", jsonPath: ".status.cost.usdPerHour", description: "Current cost, USD per hour." },
  {
    name: "Balance",
    type: "number",
    jsonPath: ".status.placement.balancedness",
    description: "Placement balancedness (mean/max GPU load).",
    priority: 1,
  },
  { name: "Age", type: "date", jsonPath: ".metadata.creationTimestamp", description: "Time since creation." },
] as const;

/** The CustomResourceDefinition object for MoEDeployment. */
export function buildMoEDeploymentCrd(): JsonSchema {
  const spec = structuralSchemaOf(MoEDeploymentSpecSchema, "spec");
  const status = structuralSchemaOf(MoEDeploymentStatusSchema, "status");
  const openAPIV3Schema: JsonSchema = {
    type: "object",
    description:
      "MoEDeployment deploys a Mixture-of-Experts model: the router/attention pods and expert shards, with routed experts placed on GPUs by routing heat, pre-warmed before peaks and scaled toward a latency SLO within bounds and budget.",
    required: ["spec"],
    properties: {
      apiVersion: {
        type: "string",
        description: "APIVersion defines the versioned schema of this representation of an object: moe.dev/v1alpha1.",
      },
      kind: { type: "string", description: "Kind is the REST resource kind: MoEDeployment." },
      // The API server allows nothing but type (and name/generateName rules) here.
      metadata: { type: "object" },
      spec,
      status,
    },
    "x-kubernetes-validations": [{ ...NAME_RULE }],
  };
  return {
    apiVersion: "apiextensions.k8s.io/v1",
    kind: "CustomResourceDefinition",
    metadata: {
      name: CRD_NAME,
      annotations: { [Annotation.generatedBy]: "src/cli/gen-crds.ts from src/api/schema.ts" },
      labels: { "app.kubernetes.io/part-of": "moe-operator" },
    },
    spec: {
      group: API_GROUP,
      names: {
        kind: KIND,
        listKind: LIST_KIND,
        plural: PLURAL,
        singular: SINGULAR,
        shortNames: [...SHORT_NAMES],
        categories: [...CATEGORIES],
      },
      scope: "Namespaced",
      versions: [
        {
          name: API_VERSION,
          served: true,
          storage: true,
          schema: { openAPIV3Schema },
          subresources: {
            status: {},
            scale: {
              specReplicasPath: ".spec.scaling.shards",
              statusReplicasPath: ".status.currentShards",
              labelSelectorPath: ".status.selector",
            },
          },
          additionalPrinterColumns: PRINTER_COLUMNS.map((c) => ({ ...c })),
          selectableFields: [{ jsonPath: ".spec.mode" }],
        },
      ],
    },
  };
}

const HEADER = [
  "# Code generated by `make manifests` (src/cli/gen-crds.ts) from the zod schemas in src/api/. DO NOT EDIT.",
  "# tests/unit/api-crd.test.ts fails when this file is stale.",
].join("\n");

/** The CRD as the YAML text committed in crds/. */
export function renderCrdYaml(): string {
  return `${HEADER}\n${stringify(buildMoEDeploymentCrd(), { lineWidth: 0, aliasDuplicateObjects: false })}`;
}
