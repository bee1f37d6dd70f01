// Heat and latency for one MoEDeployment, from the sources its spec names.
// Bad data never throws out of here: it comes back as a reading with a problem,
// which the controller turns into MetricsAvailable=False and a hold.
//
// Messages are fixed classes: they name the field and the rule, never bytes of
// what a source answered (status, events and logs are readable by others).
import type { CoreV1Api } from "@kubernetes/client-node";
import type { HeatSource, LatencySource, ModelSpec, SloSpec } from "../../api/schema.ts";
import { moeLayerCount } from "../../api/schema.ts";
import { heatFromSglangLogicalCount } from "../../domain/placement/index.ts";
import { MIN_HEAT_CONFIDENCE, type HeatObservation } from "../../domain/decide.ts";
import { enoughShiftTokens, shiftWindowSeconds, type HeatShiftState } from "../../domain/placement/shift-window.ts";
import { PrometheusError, type PrometheusReader, type VectorSample } from "../../adapters/prometheus.ts";
import { classifyKubeError } from "../../adapters/kube-errors.ts";
import { prometheusUrlRefusal, readAllowedFile, type SourcePolicy } from "./source-policy.ts";

export type MetricsProblemReason =
  "PrometheusUnreachable" | "QueryFailed" | "NoData" | "StaleData" | "BadData" | "SourceNotAllowed";

export interface MetricsProblem {
  reason: MetricsProblemReason;
  message: string;
}

export interface HeatReading {
  heat?: HeatObservation;
  problem?: MetricsProblem;
  /** Read over only this many seconds since a detected heat shift, not the configured window (readHeatSinceShift). */
  sinceShiftSeconds?: number;
}

export interface LatencyReading {
  p99Ms?: number;
  atMs?: number;
  problem?: MetricsProblem;
}

export interface SourceDeps {
  prometheus: (url: string, timeoutMs: number) => PrometheusReader;
  core: CoreV1Api;
  nowMs: () => number;
  policy: SourcePolicy;
  /** Operator-side cap on spec.*.prometheus.timeoutSeconds. */
  maxSourceTimeoutMs: number;
}

/** A routed-token rate above this for one (layer, expert) is not a measurement. */
export const MAX_HEAT_TOKENS_PER_SECOND = 1e9;
/** A count above this in an SGLang logical_count document is not a measurement. */
export const MAX_HEAT_COUNT = 1e15;
/** A latency above one hour is not a measurement. */
export const MAX_LATENCY_MS = 3_600_000;
/** Instant-query samples are stamped with the evaluation time: older ones are stale. */
export const MAX_SAMPLE_AGE_MS = 5 * 60_000;
/** Samples stamped this far in the future come from a broken clock or a forged answer. */
export const MAX_SAMPLE_FUTURE_MS = 5 * 60_000;
/** Series a latency query may return before it is refused (it must return exactly one). */
export const MAX_LATENCY_SERIES = 64;

export function renderQuery(template: string, vars: Record<string, string>): string {
  return template.replace(/\{\{\s*(\w+)\s*\}\}/g, (m, k: string) => (k in vars ? vars[k]! : m));
}

export function problemFromError(err: unknown, what: string): MetricsProblem {
  if (err instanceof PrometheusError) {
    if (err.kind === "Unreachable" || err.kind === "Timeout")
      return { reason: "PrometheusUnreachable", message: `${what}: ${err.message}` };
    return { reason: "QueryFailed", message: `${what}: ${err.message}` };
  }
  return { reason: "QueryFailed", message: `${what}: failed` };
}

export function timeoutMsOf(spec: { timeoutSeconds: number }, deps: SourceDeps): number {
  return Math.max(1, Math.min(spec.timeoutSeconds * 1000, deps.maxSourceTimeoutMs));
}

/** Undefined when the sample time is plausible; otherwise the problem. */
export function sampleTimeProblem(timestampMs: number, nowMs: number, what: string): MetricsProblem | undefined {
  if (!Number.isFinite(timestampMs) || timestampMs <= 0)
    return { reason: "StaleData", message: `${what}: a sample timestamp is 0 or not a time` };
  if (nowMs - timestampMs > MAX_SAMPLE_AGE_MS)
    return {
      reason: "StaleData",
      message: `${what}: newest sample is ${Math.round((nowMs - timestampMs) / 1000)} s old (limit ${MAX_SAMPLE_AGE_MS / 1000} s)`,
    };
  if (timestampMs - nowMs > MAX_SAMPLE_FUTURE_MS)
    return {
      reason: "BadData",
      message: `${what}: sample timestamp is ${Math.round((timestampMs - nowMs) / 1000)} s in the future`,
    };
  return undefined;
}

/**
 * While a heat shift is followed (ADR 0018), heat over the seconds since the read that detected it,
 * when the query has a {{window}}, Prometheus answers, and the reading holds enough tokens to plan
 * on; otherwise (and when no shift is followed) heat over the configured window.
 */
export async function readHeatSinceShift(
  source: HeatSource,
  model: ModelSpec,
  target: { namespace: string; name: string },
  deps: SourceDeps,
  shift: HeatShiftState | undefined,
): Promise<HeatReading> {
  const p = source.type === "Prometheus" ? source.prometheus : undefined;
  if (p === undefined || !/\{\{\s*window\s*\}\}/.test(p.query)) return readHeat(source, model, target, deps);
  const w = shiftWindowSeconds(shift, deps.nowMs(), p.rateWindowSeconds);
  if (w === p.rateWindowSeconds) {
    const r = await readHeat(source, model, target, deps);
    return r.heat ? { ...r, sinceShiftSeconds: w } : r;
  }
  if (w !== undefined) {
    const r = await readHeat(source, model, target, deps, w);
    if (r.heat && r.heat.confidence >= MIN_HEAT_CONFIDENCE && enoughShiftTokens(r.heat.heat, w))
      return { ...r, sinceShiftSeconds: w };
  }
  return readHeat(source, model, target, deps);
}

export async function readHeat(
  source: HeatSource,
  model: ModelSpec,
  target: { namespace: string; name: string },
  deps: SourceDeps,
  /** Read the rate over this many seconds instead of rateWindowSeconds (Prometheus only; shift-window.ts). */
  windowSeconds?: number,
): Promise<HeatReading> {
  const now = deps.nowMs();
  if (source.type === "Prometheus" && source.prometheus) {
    const p = source.prometheus;
    const refusal = prometheusUrlRefusal(p.url, "spec.heatSource.prometheus.url", deps.policy);
    if (refusal) return { problem: { reason: "SourceNotAllowed", message: refusal } };
    const query = renderQuery(p.query, {
      namespace: target.namespace,
      name: target.name,
      window: `${windowSeconds ?? p.rateWindowSeconds}s`,
    });
    let samples;
    try {
      const maxSeries = moeLayerCount(model) * model.routedExperts * 2;
      samples = await deps.prometheus(p.url, timeoutMsOf(p, deps)).queryVector(query, { maxSeries });
    } catch (err) {
      return { problem: problemFromError(err, "heat query") };
    }
    return heatFromSamples(samples, model, { layerLabel: p.layerLabel, expertLabel: p.expertLabel }, now);
  }
  if (source.type === "ConfigMap" && source.configMap) {
    const cm = source.configMap;
    try {
      const obj = await deps.core.readNamespacedConfigMap({ name: cm.name, namespace: target.namespace });
      const text = obj.data?.[cm.key];
      if (text === undefined)
        return { problem: { reason: "NoData", message: `ConfigMap ${cm.name} has no key ${cm.key}` } };
      return parseHeatJson(text, `spec.heatSource.configMap (ConfigMap ${cm.name} key ${cm.key})`, model, now);
    } catch (err) {
      const k = classifyKubeError(err);
      return {
        problem: {
          reason: k.kind === "NotFound" ? "NoData" : "QueryFailed",
          message: `heat ConfigMap ${cm.name}: ${k.kind}`,
        },
      };
    }
  }
  if (source.type === "File" && source.file) {
    const read = await readAllowedFile(source.file.path, deps.policy);
    if (!read.ok) return { problem: { reason: "SourceNotAllowed", message: read.message } };
    return parseHeatJson(read.text, "spec.heatSource.file.path", model, now);
  }
  return { problem: { reason: "QueryFailed", message: `heat source ${source.type} is not configured` } };
}

/** Heat from a Prometheus vector: duplicate series add up; overflow, absurd values and bad times are problems. */
export function heatFromSamples(
  samples: readonly VectorSample[],
  model: ModelSpec,
  labels: { layerLabel: string; expertLabel: string },
  nowMs: number,
): HeatReading {
  const layers = moeLayerCount(model);
  const experts = model.routedExperts;
  if (samples.length === 0) return { problem: { reason: "NoData", message: "heat query returned no series" } };
  const heat = Array.from({ length: layers }, () => new Array<number>(experts).fill(0));
  const seen = new Uint8Array(layers * experts);
  let present = 0;
  let oldest = Number.POSITIVE_INFINITY;
  for (const s of samples) {
    const layer = Number(s.labels[labels.layerLabel]);
    const expert = Number(s.labels[labels.expertLabel]);
    const l = layer - model.denseLayers;
    if (
      !Number.isInteger(layer) ||
      !Number.isInteger(expert) ||
      l < 0 ||
      l >= layers ||
      expert < 0 ||
      expert >= experts
    )
      continue;
    if (!Number.isFinite(s.value) || s.value < 0 || s.value > MAX_HEAT_TOKENS_PER_SECOND) {
      return {
        problem: {
          reason: "BadData",
          message: `heat query: a series for layer ${layer} expert ${expert} has a value outside [0, ${MAX_HEAT_TOKENS_PER_SECOND}] tokens/s`,
        },
      };
    }
    const cell = heat[l]![expert]! + s.value;
    if (!Number.isFinite(cell) || cell > MAX_HEAT_TOKENS_PER_SECOND) {
      return {
        problem: {
          reason: "BadData",
          message: `heat query: series for layer ${layer} expert ${expert} sum to more than ${MAX_HEAT_TOKENS_PER_SECOND} tokens/s`,
        },
      };
    }
    heat[l]![expert] = cell;
    if (!seen[l * experts + expert]) {
      seen[l * experts + expert] = 1;
      present++;
    }
    oldest = Math.min(oldest, s.timestampMs);
  }
  if (present === 0)
    return {
      problem: {
        reason: "NoData",
        message: `heat query returned ${samples.length} series but none with valid ${labels.layerLabel}/${labels.expertLabel} labels in range`,
      },
    };
  const timeProblem = sampleTimeProblem(oldest, nowMs, "heat query");
  if (timeProblem) return { problem: timeProblem };
  return { heat: { heat, atMs: Math.min(oldest, nowMs), confidence: present / (layers * experts) } };
}

function parseHeatJson(text: string, where: string, model: ModelSpec, nowMs: number): HeatReading {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    // The SyntaxError's message quotes the input: never shown.
    return { problem: { reason: "QueryFailed", message: `${where}: not valid JSON` } };
  }
  const parsed = heatFromSglangLogicalCount(json, { denseLayerCount: model.denseLayers });
  if (!parsed.ok)
    return {
      problem: {
        reason: "QueryFailed",
        message: `${where}: not SGLang's logical_count format (an object whose logical_count is a [layers][experts] array of counts >= 0)`,
      },
    };
  const layers = moeLayerCount(model);
  if (parsed.value.heat.length !== layers || parsed.value.heat[0]?.length !== model.routedExperts) {
    return {
      problem: {
        reason: "QueryFailed",
        message: `${where}: logical_count has ${parsed.value.heat.length} MoE layers x ${parsed.value.heat[0]?.length ?? 0} experts after ${model.denseLayers} dense layers; the model has ${layers} x ${model.routedExperts}`,
      },
    };
  }
  if (parsed.value.heat.some((row) => row.some((v) => v > MAX_HEAT_COUNT))) {
    return { problem: { reason: "BadData", message: `${where}: a logical_count is above ${MAX_HEAT_COUNT}` } };
  }
  return { heat: { heat: parsed.value.heat, atMs: nowMs, confidence: 1 } };
}

export async function readLatency(
  source: LatencySource,
  slo: SloSpec,
  target: { namespace: string; name: string },
  deps: SourceDeps,
): Promise<LatencyReading> {
  if (source.type === "Static" && source.static) return { p99Ms: source.static.latencyMs, atMs: deps.nowMs() };
  if (source.type === "Prometheus" && source.prometheus) {
    const p = source.prometheus;
    const refusal = prometheusUrlRefusal(p.url, "spec.latencySource.prometheus.url", deps.policy);
    if (refusal) return { problem: { reason: "SourceNotAllowed", message: refusal } };
    const query = renderQuery(p.query, {
      namespace: target.namespace,
      name: target.name,
      window: `${slo.evaluationWindowSeconds}s`,
      quantile: String(slo.percentile / 100),
    });
    let samples;
    try {
      samples = await deps
        .prometheus(p.url, timeoutMsOf(p, deps))
        .queryVector(query, { maxSeries: MAX_LATENCY_SERIES });
    } catch (err) {
      return { problem: problemFromError(err, "latency query") };
    }
    return latencyFromSamples(samples, p.resultUnit === "Seconds" ? 1000 : 1, deps.nowMs());
  }
  return { problem: { reason: "QueryFailed", message: `latency source ${source.type} is not configured` } };
}

/** Exactly one series is a latency; several are ambiguous (which one is the SLO?) and refused. */
export function latencyFromSamples(samples: readonly VectorSample[], msPerUnit: number, nowMs: number): LatencyReading {
  if (samples.length === 0) return { problem: { reason: "NoData", message: "latency query returned no series" } };
  if (samples.length > 1) {
    return {
      problem: {
        reason: "BadData",
        message: `latency query returned ${samples.length} series; it must return exactly one (aggregate it, e.g. with max or sum by (le))`,
      },
    };
  }
  const s = samples[0]!;
  // NaN is what histogram_quantile gives without traffic: no data, not bad data.
  if (Number.isNaN(s.value))
    return { problem: { reason: "NoData", message: "latency query returned NaN (no traffic in the window?)" } };
  const ms = s.value * msPerUnit;
  if (!Number.isFinite(ms) || ms < 0 || ms > MAX_LATENCY_MS) {
    return {
      problem: { reason: "BadData", message: `latency query returned a value outside [0, ${MAX_LATENCY_MS}] ms` },
    };
  }
  const timeProblem = sampleTimeProblem(s.timestampMs, nowMs, "latency query");
  if (timeProblem) return { problem: timeProblem };
  return { p99Ms: ms, atMs: Math.min(s.timestampMs, nowMs) };
}
