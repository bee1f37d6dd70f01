import { createHash } from "node:crypto";
import { readFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { Ajv, type ValidateFunction } from "ajv";
import addFormatsModule from "ajv-formats";

/**
 * GitHub's official OpenAPI description (@octokit/openapi, api.github.com, dereferenced) as a request and
 * response checker for the local GitHub API server. The 73 MB file is read once per process, on first use;
 * only the operations the server serves are kept, and their schemas are compiled with ajv on first use.
 */

type JsonSchema = Record<string, unknown>;

interface SpecParameter {
  name: string;
  in: string;
  required?: boolean;
  schema?: JsonSchema;
}

interface SpecOperation {
  operationId: string;
  parameters?: SpecParameter[];
  requestBody?: { required?: boolean; content?: Record<string, { schema?: JsonSchema }> };
  responses: Record<string, { content?: Record<string, { schema?: JsonSchema }> }>;
}

/** One route of the description: method + path template, and the regex that matches a concrete path. */
interface Route {
  method: string;
  template: string;
  operationId: string;
  regex: RegExp;
  paramNames: string[];
  literalChars: number;
}

interface LoadedSpec {
  routes: Route[];
  operations: Map<string, SpecOperation>;
  basicErrorSchema: JsonSchema;
}

export interface OperationMatch {
  operationId: string;
  template: string;
  params: Record<string, string>;
  /** False when the operation exists in GitHub's description but the local server does not serve it. */
  served: boolean;
}

const HTTP_METHODS = ["get", "put", "post", "patch", "delete", "head"] as const;
/** Path parameters whose values contain slashes (octokit sends them unescaped or %2F-escaped). */
const GREEDY_PARAMS = new Set(["path", "ref", "branch"]);

let specPromise: Promise<LoadedSpec> | undefined;

function specFile(): string {
  const require = createRequire(import.meta.url);
  return require.resolve("@octokit/openapi/generated/api.github.com.deref.json");
}

function compileRoute(method: string, template: string, operationId: string): Route {
  const paramNames: string[] = [];
  let literalChars = 0;
  const pattern = template
    .split(/(\{[^}]+\})/)
    .map((part) => {
      const m = /^\{([^}]+)\}$/.exec(part);
      if (!m) {
        literalChars += part.length;
        return part.replace(/[.*+?^$()|[\]\\]/g, "\\$&");
      }
      paramNames.push(m[1]!);
      return GREEDY_PARAMS.has(m[1]!) ? "(.+)" : "([^/]+)";
    })
    .join("");
  return { method, template, operationId, regex: new RegExp(`^${pattern}$`), paramNames, literalChars };
}

async function loadSpec(operationIds: readonly string[]): Promise<LoadedSpec> {
  const text = await readFile(specFile(), "utf8");
  const doc = JSON.parse(text) as { paths: Record<string, Record<string, SpecOperation>> };
  const wanted = new Set(operationIds);
  const routes: Route[] = [];
  const operations = new Map<string, SpecOperation>();
  for (const [template, item] of Object.entries(doc.paths)) {
    for (const method of HTTP_METHODS) {
      const op = item[method];
      if (!op) continue;
      routes.push(compileRoute(method.toUpperCase(), template, op.operationId));
      if (wanted.has(op.operationId)) operations.set(op.operationId, op);
    }
  }
  const missing = operationIds.filter((id) => !operations.has(id));
  if (missing.length > 0) throw new Error(`operations not in GitHub's OpenAPI description: ${missing.join(", ")}`);
  const notFound = doc.paths["/repos/{owner}/{repo}"]?.get?.responses["404"]?.content?.["application/json"]?.schema;
  if (!notFound)
    throw new Error("GitHub's OpenAPI description has no basic-error schema at GET /repos/{owner}/{repo} 404");
  routes.sort((a, b) => b.literalChars - a.literalChars);
  return { routes, operations, basicErrorSchema: notFound };
}

const ajv = new Ajv({ strict: false, allErrors: true, logger: false });
addFormatsModule.default(ajv);
const coercingAjv = new Ajv({ strict: false, allErrors: true, coerceTypes: true, logger: false });
addFormatsModule.default(coercingAjv);
const validators = new Map<string, ValidateFunction>();
/** Compiled validators by schema content: several operations return the same shape (e.g. pull-request). */
const byContent = new Map<string, ValidateFunction>();

/**
 * Adapts an OpenAPI 3.0 schema to what ajv checks: `oneOf` is checked as `anyOf` (GitHub's description uses
 * oneOf for shapes that overlap, e.g. a basic error matches both branches of some 409 responses), and
 * `nullable` without `type` becomes `anyOf [schema, null]` (ajv's nullable keyword needs a type).
 */
export function adaptSchema(schema: unknown): unknown {
  if (Array.isArray(schema)) return schema.map(adaptSchema);
  if (schema === null || typeof schema !== "object") return schema;
  const out: JsonSchema = {};
  for (const [k, v] of Object.entries(schema)) {
    if (k === "example" || k === "examples" || k === "description" || k === "oneOf") continue;
    out[k] = k === "properties" ? mapValues(v as JsonSchema) : adaptSchema(v);
  }
  const oneOf = (schema as JsonSchema).oneOf;
  if (Array.isArray(oneOf)) {
    const asAnyOf = adaptSchema(oneOf);
    if (out.anyOf === undefined) out.anyOf = asAnyOf;
    else out.allOf = [...((out.allOf as unknown[] | undefined) ?? []), { anyOf: asAnyOf }];
  }
  if (out.nullable === true && out.type === undefined) {
    delete out.nullable;
    return { anyOf: [out, { type: "null" }] };
  }
  return out;
}

function mapValues(props: JsonSchema): JsonSchema {
  return Object.fromEntries(Object.entries(props).map(([name, s]) => [name, adaptSchema(s)]));
}

function validatorFor(key: string, schema: JsonSchema, coerce = false): ValidateFunction {
  let v = validators.get(key);
  if (!v) {
    const adapted = adaptSchema(schema) as JsonSchema;
    const digest = `${coerce}:${createHash("sha256").update(JSON.stringify(adapted)).digest("hex")}`;
    v = byContent.get(digest) ?? (coerce ? coercingAjv : ajv).compile(adapted);
    byContent.set(digest, v);
    validators.set(key, v);
  }
  return v;
}

function describeErrors(v: ValidateFunction, limit = 5): string {
  const errs = v.errors ?? [];
  const shown = errs.slice(0, limit).map((e) => `${e.instancePath || "/"} ${e.message ?? "invalid"}`);
  return shown.join("; ") + (errs.length > limit ? `; and ${errs.length - limit} more` : "");
}

export interface OpenApiChecker {
  /** The operation of GitHub's description that a method + path names (served or not), or null. */
  match(method: string, pathname: string): OperationMatch | null;
  /** Problems of a request against its operation: path and query parameters, JSON body. */
  checkRequest(operationId: string, params: Record<string, string>, query: URLSearchParams, body: unknown): string[];
  /** Problems of a response against the operation's response for that status. */
  checkResponse(operationId: string, status: number, body: unknown): string[];
}

function operation(spec: LoadedSpec, operationId: string): SpecOperation {
  const op = spec.operations.get(operationId);
  if (!op) throw new Error(`operation ${operationId} is not served by the local GitHub API server`);
  return op;
}

function checkParams(op: SpecOperation, where: "path" | "query", values: Record<string, string>): string[] {
  const declared = (op.parameters ?? []).filter((p) => p.in === where);
  const problems: string[] = [];
  const names = new Set(declared.map((p) => p.name));
  for (const name of Object.keys(values)) {
    if (!names.has(name)) problems.push(`${where} parameter "${name}" is not defined by ${op.operationId}`);
  }
  const properties: Record<string, JsonSchema> = {};
  const required: string[] = [];
  for (const p of declared) {
    properties[p.name] = p.schema ?? {};
    if (p.required) required.push(p.name);
  }
  const v = validatorFor(`${op.operationId} ${where}`, { type: "object", properties, required }, true);
  if (!v({ ...values })) problems.push(`${where} parameters: ${describeErrors(v)}`);
  return problems;
}

function checkBody(op: SpecOperation, body: unknown): string[] {
  const rb = op.requestBody;
  if (!rb) return body === undefined ? [] : ["request has a body but the operation takes none"];
  if (body === undefined) return rb.required ? ["request body is required"] : [];
  const schema = rb.content?.["application/json"]?.schema;
  if (!schema) return ["request body is not described as application/json"];
  const v = validatorFor(`${op.operationId} body`, schema);
  return v(body) ? [] : [`request body: ${describeErrors(v)}`];
}

function makeChecker(spec: LoadedSpec, served: ReadonlySet<string>): OpenApiChecker {
  return {
    match(method, pathname) {
      for (const r of spec.routes) {
        if (r.method !== method) continue;
        const m = r.regex.exec(pathname);
        if (!m) continue;
        const params: Record<string, string> = {};
        r.paramNames.forEach((name, i) => (params[name] = safeDecode(m[i + 1]!)));
        return { operationId: r.operationId, template: r.template, params, served: served.has(r.operationId) };
      }
      return null;
    },
    checkRequest(operationId, params, query, body) {
      const op = operation(spec, operationId);
      const queryValues: Record<string, string> = {};
      for (const [k, v] of query) queryValues[k] = v;
      return [...checkParams(op, "path", params), ...checkParams(op, "query", queryValues), ...checkBody(op, body)];
    },
    checkResponse(operationId, status, body) {
      const op = operation(spec, operationId);
      const documented = op.responses[String(status)];
      if (!documented) {
        if (status < 400) return [`response status ${status} is not documented for ${operationId}`];
        const v = validatorFor("basic-error", spec.basicErrorSchema);
        return v(body) ? [] : [`error response ${status}: ${describeErrors(v)}`];
      }
      const schema = documented.content?.["application/json"]?.schema;
      if (!schema) return body === undefined ? [] : [`response ${status} of ${operationId} has no documented body`];
      const v = validatorFor(`${operationId} ${status}`, schema);
      return v(body) ? [] : [`response ${status}: ${describeErrors(v)}`];
    },
  };
}

function safeDecode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

/**
 * The checker for GitHub's description, restricted to `operationIds` for validation (every operation is
 * still matched, so an unserved one is reported by name). Loaded once per process.
 */
export async function loadOpenApiChecker(operationIds: readonly string[]): Promise<OpenApiChecker> {
  specPromise ??= loadSpec(operationIds).catch((err: unknown) => {
    specPromise = undefined;
    throw new Error("cannot load GitHub's OpenAPI description from @octokit/openapi", { cause: err });
  });
  const spec = await specPromise;
  const missing = operationIds.filter((id) => !spec.operations.has(id));
  if (missing.length > 0) throw new Error(`the OpenAPI checker was loaded without operations ${missing.join(", ")}`);
  return makeChecker(spec, new Set(operationIds));
}
