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

import type { Logger } from "pino";
import type { HeatSource, MoEDeployment, ModelSpec } from "../../api/schema.ts";
import { moeLayerCount } from "../../api/schema.ts";
import { createCapacityState, seedForecastFromSeries } from "../../domain/capacity/index.ts";
import type { CapacityState, ForecastState } from "../../domain/capacity/index.ts";
import type { DeploymentPolicy } from "../../domain/decide.ts";
import type { TimedValue } from "../../domain/scaling/decide.ts";
import { renderQuery, problemFromError, timeoutMsOf, type MetricsProblem, type SourceDeps } from "./sources.ts";
import { prometheusUrlRefusal } from "./source-policy.ts";

/** Most points one seed query may return (Prometheus itself refuses more than 11,000 per series). */
export const MAX_SEED_POINTS = 10_080;
/** Shortest step of the seed query. */
export const MIN_SEED_STEP_MS = 60_000;

export type LoadHistory =
  | { readonly points: readonly TimedValue[]; readonly stepMs: number; readonly problem?: undefined }
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
    return { points, stepMs };
  } catch (err) {
    return { problem: problemFromError(err, "heat history query") };
  }
}

/** The forecaster's table covers one week: the seed reads that much. */
export const SEED_RANGE_MS = 7 * 86_400_000;

interface SeedEntry {
  readonly uid: string;
  /** The seeded forecast, waiting for the next reconcile to fold it into the capacity state. */
  forecast?: ForecastState;
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
      .then((h) => {
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
        if (seeded.learned === 0) return;
        entry.forecast = seeded.state.forecast;
        this.#d.requeue?.(key);
      })
      .catch((err: unknown) => log.warn({ err }, "seeding the forecast from the load history failed"));
  }

  /** The capacity state to decide with: a seeded forecast, once, in place of the state's own. */
  take(key: string, d: MoEDeployment, state: CapacityState | undefined): CapacityState | undefined {
    const entry = this.#entries.get(key);
    if (entry?.forecast === undefined || entry.uid !== (d.metadata.uid ?? "")) return state;
    const forecast = entry.forecast;
    entry.forecast = undefined;
    return { ...(state ?? createCapacityState(this.#d.policyOf(d).capacity)), forecast };
  }

  forget(key: string): void {
    this.#entries.delete(key);
  }
}
