// Rules the CRD schema and CEL cannot express (or express only loosely), checked
// by the operator on every object it reads, after the zod schema has parsed it.
// Errors make the spec invalid (Ready=False, reason InvalidSpec); warnings are
// reported but the operator acts on the spec.
import { Cron } from "croner";
import {
  expertReplicaBytes,
  moeLayerCount,
  routerGpuCount,
  type MoEDeploymentSpec,
  type PodTemplate,
} from "./schema.ts";

export type IssueSeverity = "error" | "warning";

export interface ApiIssue {
  /** Field path from the object root, Kubernetes style: `spec.prewarm.schedules[0].start`. */
  path: string;
  message: string;
  severity: IssueSeverity;
}

/** Placeholders a Prometheus query template may use, by source. */
export const HEAT_QUERY_PLACEHOLDERS: readonly string[] = ["namespace", "name", "window"];
export const LATENCY_QUERY_PLACEHOLDERS: readonly string[] = ["namespace", "name", "window", "quantile"];

/** Fixed reference instant for "does this cron ever fire" (keeps validation deterministic). */
const CRON_REFERENCE = new Date(Date.UTC(2024, 0, 1));

const GIB = 1024 ** 3;

/**
 * Checks a spec that already passed the zod schema (so defaults are applied and
 * the cross-field CEL rules hold). Pure: no clock, no I/O.
 */
export function validateMoEDeploymentSpec(spec: MoEDeploymentSpec, basePath = "spec"): ApiIssue[] {
  const issues: ApiIssue[] = [];
  const error = (path: string, message: string) =>
    issues.push({ path: `${basePath}.${path}`, message, severity: "error" });
  const warn = (path: string, message: string) =>
    issues.push({ path: `${basePath}.${path}`, message, severity: "warning" });

  // Pre-warm windows: real cron expressions, real time zones, unique names.
  const seen = new Set<string>();
  (spec.prewarm.schedules ?? []).forEach((w, i) => {
    const at = `prewarm.schedules[${i}]`;
    if (seen.has(w.name)) error(`${at}.name`, `duplicate schedule name "${w.name}"`);
    seen.add(w.name);
    const tzProblem = checkTimeZone(w.timeZone);
    if (tzProblem) {
      error(`${at}.timeZone`, tzProblem);
      return;
    }
    const cronProblem = checkCron(w.start, w.timeZone);
    if (cronProblem) error(`${at}.start`, cronProblem);
    if (w.minShards < spec.scaling.minShards) {
      warn(
        `${at}.minShards`,
        `minShards ${w.minShards} is below spec.scaling.minShards ${spec.scaling.minShards}; the window has no effect`,
      );
    }
  });

  // Expert slots must fit in GPU memory when the GPU size is known.
  const bytesPerReplica = expertReplicaBytes(spec.model);
  const memoryBytes = spec.serving.gpu.memoryBytes;
  if (memoryBytes !== undefined && bytesPerReplica > 0) {
    const layers = moeLayerCount(spec.model);
    const needed = spec.model.expertSlotsPerGpu * layers * bytesPerReplica;
    if (needed > memoryBytes) {
      error(
        "model.expertSlotsPerGpu",
        `${spec.model.expertSlotsPerGpu} slots x ${layers} MoE layers x ${bytesPerReplica} bytes per expert = ${gib(needed)} GiB ` +
          `exceeds spec.serving.gpu.memoryBytes (${gib(memoryBytes)} GiB)`,
      );
    }
  }

  // Prometheus sources: parseable URLs, known placeholders.
  if (spec.heatSource.prometheus) {
    checkUrl(spec.heatSource.prometheus.url, "heatSource.prometheus.url", error);
    checkTemplate(spec.heatSource.prometheus.query, HEAT_QUERY_PLACEHOLDERS, "heatSource.prometheus.query", error);
  }
  if (spec.latencySource.prometheus) {
    checkUrl(spec.latencySource.prometheus.url, "latencySource.prometheus.url", error);
    checkTemplate(
      spec.latencySource.prometheus.query,
      LATENCY_QUERY_PLACEHOLDERS,
      "latencySource.prometheus.query",
      error,
    );
  }

  // Pod templates: unique container names (the API server enforces this as a
  // list-map; the operator checks it too). The operator's own label and
  // annotation keys are refused by the schema (src/api/schema.ts).
  if (spec.serving.router) checkPodTemplate(spec.serving.router.template, "serving.router.template", error);
  if (spec.serving.expertShards)
    checkPodTemplate(spec.serving.expertShards.template, "serving.expertShards.template", error);
  if (spec.serving.wideEP) checkPodTemplate(spec.serving.wideEP.template, "serving.wideEP.template", error);

  // Redundancy bound that can never be reached.
  const maxFree = spec.scaling.maxShards * spec.model.expertSlotsPerGpu - spec.model.routedExperts;
  const maxRedundant = spec.placement.maxRedundantSlotsPerLayer;
  if (maxRedundant !== undefined && maxRedundant > maxFree) {
    warn(
      "placement.maxRedundantSlotsPerLayer",
      `${maxRedundant} redundant slots per layer cannot be reached: at spec.scaling.maxShards there are only ${maxFree} free slots per layer`,
    );
  }

  // Budget that cannot be met or cannot be measured.
  const cost = spec.cost;
  if (cost.maxUsdPerHour !== undefined) {
    const priced = cost.defaultUsdPerGpuHour > 0 || cost.table !== undefined || cost.priceLabelKey !== undefined;
    if (!priced) {
      warn(
        "cost.maxUsdPerHour",
        "a budget is set but no GPU is priced (spec.cost.defaultUsdPerGpuHour is 0 and neither table nor priceLabelKey is set)",
      );
    } else if (cost.table === undefined && cost.priceLabelKey === undefined) {
      const minGpus = spec.scaling.minShards + routerGpuCount(spec);
      const minUsdPerHour = minGpus * cost.defaultUsdPerGpuHour;
      if (minUsdPerHour > cost.maxUsdPerHour) {
        warn(
          "cost.maxUsdPerHour",
          `the minimum capacity (${minGpus} GPUs at ${cost.defaultUsdPerGpuHour} USD/GPU-hour = ${round2(minUsdPerHour)} USD/hour) already exceeds the budget of ${cost.maxUsdPerHour} USD/hour`,
        );
      }
    }
  }
  return issues;
}

/** A problem with a cron expression, or undefined when it parses and fires at least once. */
export function checkCron(expression: string, timeZone = "UTC"): string | undefined {
  let cron: Cron;
  try {
    cron = new Cron(expression, { timezone: timeZone, paused: true, mode: "5-part" });
  } catch (err) {
    return `invalid cron expression "${expression}": ${err instanceof Error ? err.message : String(err)}`;
  }
  try {
    if (cron.nextRun(CRON_REFERENCE) === null) return `cron expression "${expression}" never fires`;
  } finally {
    cron.stop();
  }
  return undefined;
}

/** A problem with an IANA time zone name, or undefined when the runtime knows it. */
export function checkTimeZone(timeZone: string): string | undefined {
  try {
    new Intl.DateTimeFormat("en-US", { timeZone });
    return undefined;
  } catch {
    return `unknown time zone "${timeZone}" (use an IANA name such as UTC or Europe/Berlin)`;
  }
}

function checkUrl(url: string, path: string, error: (path: string, message: string) => void): void {
  try {
    const u = new URL(url);
    if (u.protocol !== "http:" && u.protocol !== "https:") error(path, `URL "${url}" must use http or https`);
    else if (u.hostname === "") error(path, `URL "${url}" has no host`);
  } catch {
    error(path, `"${url}" is not a valid URL`);
  }
}

function checkTemplate(
  template: string,
  allowed: readonly string[],
  path: string,
  error: (path: string, message: string) => void,
): void {
  const opens = template.split("{{").length - 1;
  const closes = template.split("}}").length - 1;
  if (opens !== closes) {
    error(path, "unbalanced {{ }} in query template");
    return;
  }
  for (const m of template.matchAll(/\{\{\s*([^}]*?)\s*\}\}/g)) {
    const name = m[1] ?? "";
    if (!allowed.includes(name))
      error(path, `unknown placeholder {{${name}}} (allowed: ${allowed.map((a) => `{{${a}}}`).join(", ")})`);
  }
}

function checkPodTemplate(template: PodTemplate, path: string, error: (path: string, message: string) => void): void {
  const names = new Set<string>();
  template.spec.containers.forEach((c, i) => {
    if (names.has(c.name)) error(`${path}.spec.containers[${i}].name`, `duplicate container name "${c.name}"`);
    names.add(c.name);
  });
}

function gib(bytes: number): string {
  return (bytes / GIB).toFixed(1);
}

function round2(x: number): number {
  return Math.round(x * 100) / 100;
}
