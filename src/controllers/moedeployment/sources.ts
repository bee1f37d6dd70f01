// Heat and latency for one MoEDeployment, from the sources its spec names.
// Bad data never throws out of here: it comes back as a reading with a problem,
// which the controller turns into MetricsAvailable=False and a hold.
import { readFile } from "node:fs/promises";
import type { CoreV1Api } from "@kubernetes/client-node";
import type { HeatSource, LatencySource, ModelSpec, SloSpec } from "../../api/schema.ts";
import { moeLayerCount } from "../../api/schema.ts";
import { heatFromSglangLogicalCount } from "../../domain/placement/index.ts";
import type { HeatObservation } from "../../domain/decide.ts";
import { PrometheusError, type PrometheusReader } from "../../adapters/prometheus.ts";
import { classifyKubeError } from "../../adapters/kube-errors.ts";

export type MetricsProblemReason = "PrometheusUnreachable" | "QueryFailed" | "NoData" | "StaleData";

export interface HeatReading {
  heat?: HeatObservation;
  problem?: { reason: MetricsProblemReason; message: string };
}

export interface LatencyReading {
  p99Ms?: number;
  atMs?: number;
  problem?: { reason: MetricsProblemReason; message: string };
}

export interface SourceDeps {
  prometheus: (url: string, timeoutMs: number) => PrometheusReader;
  core: CoreV1Api;
  nowMs: () => number;
}

export function renderQuery(template: string, vars: Record<string, string>): string {
  return template.replace(/\{\{\s*(\w+)\s*\}\}/g, (m, k: string) => (k in vars ? vars[k]! : m));
}

function problemFromError(err: unknown, what: string): { reason: MetricsProblemReason; message: string } {
  if (err instanceof PrometheusError) {
    if (err.kind === "Unreachable" || err.kind === "Timeout") return { reason: "PrometheusUnreachable", message: `${what}: ${err.message}` };
    return { reason: "QueryFailed", message: `${what}: ${err.message}` };
  }
  return { reason: "QueryFailed", message: `${what}: ${(err as Error)?.message ?? String(err)}` };
}

export async function readHeat(source: HeatSource, model: ModelSpec, target: { namespace: string; name: string }, deps: SourceDeps): Promise<HeatReading> {
  const layers = moeLayerCount(model);
  const experts = model.routedExperts;
  const now = deps.nowMs();
  if (source.type === "Prometheus" && source.prometheus) {
    const p = source.prometheus;
    const query = renderQuery(p.query, { namespace: target.namespace, name: target.name, window: `${p.rateWindowSeconds}s` });
    let samples;
    try {
      samples = await deps.prometheus(p.url, p.timeoutSeconds * 1000).queryVector(query);
    } catch (err) {
      return { problem: problemFromError(err, "heat query") };
    }
    if (samples.length === 0) return { problem: { reason: "NoData", message: `heat query returned no series: ${query}` } };
    const heat = Array.from({ length: layers }, () => new Array<number>(experts).fill(0));
    const seen = new Uint8Array(layers * experts);
    let present = 0;
    let newest = 0;
    for (const s of samples) {
      const layer = Number(s.labels[p.layerLabel]);
      const expert = Number(s.labels[p.expertLabel]);
      const l = layer - model.denseLayers;
      if (!Number.isInteger(layer) || !Number.isInteger(expert) || l < 0 || l >= layers || expert < 0 || expert >= experts) continue;
      if (!Number.isFinite(s.value) || s.value < 0) continue;
      heat[l]![expert] = (heat[l]![expert] ?? 0) + s.value;
      if (!seen[l * experts + expert]) {
        seen[l * experts + expert] = 1;
        present++;
      }
      newest = Math.max(newest, s.timestampMs);
    }
    if (present === 0) return { problem: { reason: "NoData", message: `heat query returned ${samples.length} series but none with valid ${p.layerLabel}/${p.expertLabel} labels in range and a finite value >= 0` } };
    return { heat: { heat, atMs: Math.min(newest || now, now), confidence: present / (layers * experts) } };
  }
  if (source.type === "ConfigMap" && source.configMap) {
    const cm = source.configMap;
    try {
      const obj = await deps.core.readNamespacedConfigMap({ name: cm.name, namespace: target.namespace });
      const text = obj.data?.[cm.key];
      if (text === undefined) return { problem: { reason: "NoData", message: `ConfigMap ${cm.name} has no key ${cm.key}` } };
      return parseHeatJson(text, `ConfigMap ${cm.name} key ${cm.key}`, model, now);
    } catch (err) {
      const k = classifyKubeError(err);
      return { problem: { reason: k.kind === "NotFound" ? "NoData" : "QueryFailed", message: `heat ConfigMap ${cm.name}: ${k.message}` } };
    }
  }
  if (source.type === "File" && source.file) {
    try {
      return parseHeatJson(await readFile(source.file.path, "utf8"), `file ${source.file.path}`, model, now);
    } catch (err) {
      return { problem: { reason: "NoData", message: `heat file ${source.file.path}: ${(err as Error).message}` } };
    }
  }
  return { problem: { reason: "QueryFailed", message: `heat source ${source.type} is not configured` } };
}

function parseHeatJson(text: string, where: string, model: ModelSpec, nowMs: number): HeatReading {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    return { problem: { reason: "QueryFailed", message: `${where}: not JSON: ${(err as Error).message}` } };
  }
  const parsed = heatFromSglangLogicalCount(json, { denseLayerCount: model.denseLayers });
  if (!parsed.ok) return { problem: { reason: "QueryFailed", message: `${where}: ${parsed.reason}` } };
  const layers = moeLayerCount(model);
  if (parsed.value.heat.length !== layers || parsed.value.heat[0]?.length !== model.routedExperts) {
    return { problem: { reason: "QueryFailed", message: `${where}: logical_count has ${parsed.value.heat.length} MoE layers x ${parsed.value.heat[0]?.length ?? 0} experts after ${model.denseLayers} dense layers; the model has ${layers} x ${model.routedExperts}` } };
  }
  return { heat: { heat: parsed.value.heat, atMs: nowMs, confidence: 1 } };
}

export async function readLatency(source: LatencySource, slo: SloSpec, target: { namespace: string; name: string }, deps: SourceDeps): Promise<LatencyReading> {
  if (source.type === "Static" && source.static) return { p99Ms: source.static.latencyMs, atMs: deps.nowMs() };
  if (source.type === "Prometheus" && source.prometheus) {
    const p = source.prometheus;
    const query = renderQuery(p.query, {
      namespace: target.namespace,
      name: target.name,
      window: `${slo.evaluationWindowSeconds}s`,
      quantile: String(slo.percentile / 100),
    });
    try {
      const samples = await deps.prometheus(p.url, p.timeoutSeconds * 1000).queryVector(query);
      const v = samples.find((s) => Number.isFinite(s.value) && s.value >= 0);
      if (!v) return { problem: { reason: "NoData", message: `latency query returned no finite value: ${query}` } };
      return { p99Ms: p.resultUnit === "Seconds" ? v.value * 1000 : v.value, atMs: v.timestampMs };
    } catch (err) {
      return { problem: problemFromError(err, "latency query") };
    }
  }
  return { problem: { reason: "QueryFailed", message: `latency source ${source.type} is not configured` } };
}
