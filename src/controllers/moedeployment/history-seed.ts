// The load history a restarted operator seeds its capacity state from (issue 14, Build 3; round 5).
//
// CapacityState (the forecaster's week of 10-minute buckets among it) lives in memory, so a restart
// lost every pre-warm for two days. Once per deployment after the operator starts, the reconciler
// asks here for the deployment's load over the forecaster's table length: one range query of the
// heat source's own query, summed (`sum(<query>)`: one series whatever the layer and expert count),
// divided by layers x topK as the live reading is (tokensPerSecondFromHeat). The query goes
// through the same adapter as the live reads (URL allowlist, timeout, byte cap, JSON only; ADR
// 0007/0009), bounded in points: the step is at least 60 s and long enough that the range has at
// most MAX_SEED_POINTS points. The reconciler runs it off the worker (history-seed is awaited by no
// reconcile) and folds the points in with seedForecastFromSeries (src/domain/scaling/seed.ts),
// which screens them as live samples are. A heat source that is not Prometheus has no history.
//
// The latency calibration (round 6): when the latency source is Prometheus, two more range queries
// on the same grid read the latency source's own query and the operator's Ready count
// (`max(moe_operator_gpus_ready{namespace, name})`, the gauge this operator exports; it is there
// when the same Prometheus scrapes the operator). Points where load, latency and Ready count are
// all present are folded in with seedCalibrationFromSeries (the live loop's guards). The placement
// conditions behind the stored points are not stored: the seed learns them under the placement's
// balancedness in status (1 without it) and no cross-node share. Without either series the
// calibration starts from the model, as before.

import type { Logger } from "pino";
import type { HeatSource, MoEDeployment, ModelSpec } from "../../api/schema.ts";
import { moeLayerCount } from "../../api/schema.ts";
import { createCapacityState, seedCalibrationFromSeries, seedForecastFromSeries } from "../../domain/capacity/index.ts";
import type {
  CapacityState,
  ForecastState,
  LatencyCalibrationState,
  LatencySeedPoint,
} from "../../domain/capacity/index.ts";
import type { DeploymentPolicy } from "../../domain/decide.ts";
import type { TimedValue } from "../../domain/scaling/decide.ts";
import { renderQuery, problemFromError, timeoutMsOf, type MetricsProblem, type SourceDeps } from "./sources.ts";
import { prometheusUrlRefusal } from "./source-policy.ts";

/** Most points one seed query may return (Prometheus itself refuses more than 11,000 per series). */
export const MAX_SEED_POINTS = 10_080;
/** Shortest step of the seed query. */
export const MIN_SEED_STEP_MS = 60_000;

export type LoadHistory =
  | {
      readonly points: readonly TimedValue[];
      readonly startMs: number;
      readonly endMs: number;
      readonly stepMs: number;
      readonly problem?: undefined;
    }
  | { readonly problem: MetricsProblem };

/** The deployment's offered load (tokens/s) over [now - rangeMs, now] from its Prometheus heat source. */
export async function readLoadHistory(
  source: HeatSource,
  model: ModelSpec,
  target: { namespace: string; name: string },
  rangeMs: number,
  deps: SourceDeps,
): Promise<LoadHistory> {
  const p = source.prometheus;
  if (source.type !== "Prometheus" || !p)
    return {
      problem: { reason: "NoData", message: "the heat source is not Prometheus: no load history to seed from" },
    };
  const refusal = prometheusUrlRefusal(p.url, "spec.heatSource.prometheus.url", deps.policy);
  if (refusal) return { problem: { reason: "SourceNotAllowed", message: refusal } };
  const query = `sum(${renderQuery(p.query, { namespace: target.namespace, name: target.name, window: `${p.rateWindowSeconds}s` })})`;
  const endMs = deps.nowMs();
  const stepMs = Math.max(MIN_SEED_STEP_MS, Math.ceil(rangeMs / (MAX_SEED_POINTS - 1) / 1000) * 1000);
  const divisor = moeLayerCount(model) * model.topK;
  try {
    const series = await deps
      .prometheus(p.url, timeoutMsOf(p, deps))
      .queryRange(query, { startMs: endMs - rangeMs, endMs, stepMs, maxSeries: 1, maxPoints: MAX_SEED_POINTS });
    const points = (series[0]?.points ?? [])
      .filter((x) => Number.isFinite(x.value) && x.value >= 0 && x.timestampMs <= endMs)
      .map((x) => ({ atMs: x.timestampMs, value: x.value / divisor }));
    return { points, startMs: endMs - rangeMs, endMs, stepMs };
  } catch (err) {
    return { problem: problemFromError(err, "heat history query") };
  }
}

/**
 * The (load, observed p99, Ready count) points of the load history's grid where all three are
 * stored: the latency source's query and the operator's Ready gauge, from the latency source's
 * Prometheus. Empty when the latency source is not Prometheus.
 */
export async function readLatencyHistory(
  d: MoEDeployment,
  load: Extract<LoadHistory, { points: unknown }>,
  deps: SourceDeps,
): Promise<LatencySeedPoint[] | { readonly problem: MetricsProblem }> {
  const p = d.spec.latencySource.prometheus;
  if (d.spec.latencySource.type !== "Prometheus" || !p) return [];
  const refusal = prometheusUrlRefusal(p.url, "spec.latencySource.prometheus.url", deps.policy);
  if (refusal) return { problem: { reason: "SourceNotAllowed", message: refusal } };
  const ns = d.metadata.namespace!;
  const name = d.metadata.name!;
  const latencyQuery = renderQuery(p.query, {
    namespace: ns,
    name,
    window: `${d.spec.slo.evaluationWindowSeconds}s`,
    quantile: String(d.spec.slo.percentile / 100),
  });
  const readyQuery = `max(moe_operator_gpus_ready{namespace=${JSON.stringify(ns)},name=${JSON.stringify(name)}})`;
  const range = {
    startMs: load.startMs,
    endMs: load.endMs,
    stepMs: load.stepMs,
    maxSeries: 1,
    maxPoints: MAX_SEED_POINTS,
  };
  const msPerUnit = p.resultUnit === "Seconds" ? 1000 : 1;
  try {
    const prom = deps.prometheus(p.url, timeoutMsOf(p, deps));
    const [latency, ready] = await Promise.all([
      prom.queryRange(latencyQuery, range),
      prom.queryRange(readyQuery, range),
    ]);
    const p99At = new Map((latency[0]?.points ?? []).map((x) => [x.timestampMs, x.value * msPerUnit]));
    const readyAt = new Map((ready[0]?.points ?? []).map((x) => [x.timestampMs, x.value]));
    const out: LatencySeedPoint[] = [];
    for (const x of load.points) {
      const p99 = p99At.get(x.atMs);
      const gpus = readyAt.get(x.atMs);
      if (p99 !== undefined && Number.isFinite(p99) && gpus !== undefined && Number.isFinite(gpus))
        out.push({ ...x, observedP99Ms: p99, readyGpus: gpus });
    }
    return out;
  } catch (err) {
    return { problem: problemFromError(err, "latency history query") };
  }
}

/** The forecaster's table covers one week: the seed reads that much. */
export const SEED_RANGE_MS = 7 * 86_400_000;

interface SeedEntry {
  readonly uid: string;
  /** The seeded forecast, waiting for the next reconcile to fold it into the capacity state. */
  forecast?: ForecastState;
  /** The seeded calibration, handed over with the forecast. */
  calibration?: LatencyCalibrationState;
}

export interface HistorySeederDeps {
  readonly sources: SourceDeps;
  readonly policyOf: (d: MoEDeployment) => DeploymentPolicy;
  /** Asks for the key to be reconciled again (the seed finished). */
  readonly requeue?: (key: string) => void;
}

/**
 * Once per deployment (key and uid) after the operator starts: the load history read in the
 * background, its forecast handed to the next reconcile (take), which replaces the forecast of the
 * capacity state it decides with. Handing it over on the worker, not writing it from the
 * background, keeps a reconcile in flight from overwriting it with its own next state.
 */
export class HistorySeeder {
  readonly #d: HistorySeederDeps;
  readonly #entries = new Map<string, SeedEntry>();

  constructor(deps: HistorySeederDeps) {
    this.#d = deps;
  }

  /** Start the seed read for this deployment unless one was started for its uid; never awaited by a reconcile. */
  start(key: string, d: MoEDeployment, log: Logger): void {
    const uid = d.metadata.uid ?? "";
    if (this.#entries.get(key)?.uid === uid) return;
    const entry: SeedEntry = { uid };
    this.#entries.set(key, entry);
    const target = { namespace: d.metadata.namespace!, name: d.metadata.name! };
    void readLoadHistory(d.spec.heatSource, d.spec.model, target, SEED_RANGE_MS, this.#d.sources)
      .then(async (h) => {
        if (this.#entries.get(key) !== entry) return;
        if (h.problem) {
          log.info(
            { reason: h.problem.reason, problem: h.problem.message },
            "no load history to seed the forecast from",
          );
          return;
        }
        const policy = this.#d.policyOf(d).capacity;
        const seeded = seedForecastFromSeries(createCapacityState(policy), h.points, policy, policy.maxGpus);
        log.info(
          { points: h.points.length, learned: seeded.learned, skipped: seeded.skipped, stepMs: h.stepMs },
          "seeded the forecast from the load history",
        );
        const calibration = await this.#seedCalibration(d, h, log);
        if (this.#entries.get(key) !== entry) return;
        if (seeded.learned === 0 && calibration === undefined) return;
        if (seeded.learned > 0) entry.forecast = seeded.state.forecast;
        entry.calibration = calibration;
        this.#d.requeue?.(key);
      })
      .catch((err: unknown) => log.warn({ err }, "seeding the forecast from the load history failed"));
  }

  /** The calibration learned from the stored latency and Ready series; undefined when none was learned. */
  async #seedCalibration(
    d: MoEDeployment,
    h: Extract<LoadHistory, { points: unknown }>,
    log: Logger,
  ): Promise<LatencyCalibrationState | undefined> {
    const points = await readLatencyHistory(d, h, this.#d.sources);
    if ("problem" in points) {
      log.info(
        { reason: points.problem.reason, problem: points.problem.message },
        "no latency history to seed the calibration from",
      );
      return undefined;
    }
    const policy = this.#d.policyOf(d).capacity;
    const conditions = { balancedness: d.status?.placement?.balancedness ?? 1, crossNodeShare: 0 };
    const seeded = seedCalibrationFromSeries(createCapacityState(policy), points, policy, policy.maxGpus, conditions);
    log.info(
      { points: points.length, learned: seeded.learned, correction: seeded.state.calibration.correction },
      "seeded the latency calibration from the latency history",
    );
    return seeded.learned > 0 ? seeded.state.calibration : undefined;
  }

  /** The capacity state to decide with: a seeded forecast and calibration, once, in place of the state's own. */
  take(key: string, d: MoEDeployment, state: CapacityState | undefined): CapacityState | undefined {
    const entry = this.#entries.get(key);
    if (entry === undefined || entry.uid !== (d.metadata.uid ?? "")) return state;
    if (entry.forecast === undefined && entry.calibration === undefined) return state;
    const base = state ?? createCapacityState(this.#d.policyOf(d).capacity);
    const next = {
      ...base,
      ...(entry.forecast === undefined ? {} : { forecast: entry.forecast }),
      ...(entry.calibration === undefined ? {} : { calibration: entry.calibration }),
    };
    entry.forecast = undefined;
    entry.calibration = undefined;
    return next;
  }

  forget(key: string): void {
    this.#entries.delete(key);
  }
}
