// Pre-warm schedules learned from recurring daily peaks, for pull requests. Pure: the
// forecaster's one-week table of bucket means (src/domain/prewarm/forecast.ts) comes in
// with nowMs; out come daily windows that recurred on each of the most recent days with
// data, and the spec.prewarm.schedules entries they propose.
import { learnedBucketAt, type ForecastOptions, type ForecastState } from "../prewarm/forecast.ts";

const DAY_MS = 86_400_000;
const MAX_LOOKBACK_DAYS = 6;
/** A day counts only when the table holds at least this share of its buckets. */
export const MIN_DAY_COVERAGE = 0.8;
/** The day's base load: this quantile of its bucket means. */
export const BASE_QUANTILE = 0.25;
/** A learned entry's start is changed only when it moves by at least this much. */
export const MIN_START_SHIFT_MINUTES = 30;
/** Learned entries are named with this prefix and the start (UTC), e.g. learned-0900. */
export const LEARNED_PREFIX = "learned-";

export interface ScheduleLearning {
  readonly minDays: number;
  readonly minRisePercent: number;
}

/** A window of the day whose load rose on each of the days used. */
export interface RecurringPeak {
  /** Minutes after midnight (UTC, or the forecaster's utcOffsetMinutes) the peak starts. */
  readonly startMinute: number;
  readonly durationMinutes: number;
  /** Highest bucket mean in the window over the days used (tokens/s). */
  readonly peakTokensPerSecond: number;
  /** Lowest of the days' base loads (tokens/s). */
  readonly baseTokensPerSecond: number;
  /** Days it recurred on (the most recent days with data). */
  readonly daysSeen: number;
}

function quantile(values: readonly number[], q: number): number {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * (s.length - 1)))]!;
}

/** The bucket means of the most recent `need` full days with data before today (oldest last). */
function daysWithData(
  state: ForecastState,
  nowMs: number,
  need: number,
  options: ForecastOptions,
): (number | undefined)[][] {
  const perDay = Math.round(DAY_MS / state.bucketMs);
  const offsetMs = options.utcOffsetMinutes * 60_000;
  const today = Math.floor((nowMs + offsetMs) / DAY_MS) * DAY_MS - offsetMs;
  const out: (number | undefined)[][] = [];
  for (let k = 1; k <= MAX_LOOKBACK_DAYS && out.length < need; k++) {
    const start = today - k * DAY_MS;
    const row = Array.from({ length: perDay }, (_, i) => learnedBucketAt(state, start + i * state.bucketMs, options));
    if (row.filter((v) => v !== undefined).length >= MIN_DAY_COVERAGE * perDay) out.push(row);
  }
  return out;
}

/**
 * Daily peaks: runs of buckets whose mean was at least minRisePercent above that day's base on
 * each of the most recent minDays days with data (a day with gaps in more than a fifth of its
 * buckets does not count). None while fewer days have data. Windows do not wrap past midnight.
 */
export function recurringDailyPeaks(
  state: ForecastState,
  nowMs: number,
  learning: ScheduleLearning,
  options: ForecastOptions,
): RecurringPeak[] {
  const need = Math.max(2, Math.floor(learning.minDays));
  const days = daysWithData(state, nowMs, need, options);
  if (days.length < need) return [];
  const bases = days.map((row) =>
    quantile(
      row.filter((v): v is number => v !== undefined),
      BASE_QUANTILE,
    ),
  );
  const factor = 1 + learning.minRisePercent / 100;
  const perDay = days[0]!.length;
  const high = (i: number) => days.every((row, d) => row[i] !== undefined && row[i]! >= bases[d]! * factor);
  const bucketMin = state.bucketMs / 60_000;
  const peaks: RecurringPeak[] = [];
  for (let i = 0; i < perDay; i++) {
    if (!high(i)) continue;
    let j = i;
    while (j + 1 < perDay && high(j + 1)) j++;
    let peak = 0;
    for (const row of days) for (let b = i; b <= j; b++) peak = Math.max(peak, row[b]!);
    peaks.push({
      startMinute: i * bucketMin,
      durationMinutes: (j - i + 1) * bucketMin,
      peakTokensPerSecond: peak,
      baseTokensPerSecond: Math.min(...bases),
      daysSeen: days.length,
    });
    i = j;
  }
  return peaks;
}

/** A spec.prewarm.schedules entry as proposed (daily, UTC). */
export interface ScheduleEntry {
  readonly name: string;
  readonly start: string;
  readonly durationMinutes: number;
  readonly minShards: number;
  readonly timeZone: string;
}

export interface ScheduleChange {
  /** The entry in Git it replaces (same name kept), or undefined for a new entry. */
  readonly replaces?: string;
  readonly entry: ScheduleEntry;
  readonly evidence: {
    readonly daysSeen: number;
    readonly peakTokensPerSecond: number;
    readonly baseTokensPerSecond: number;
    /** Pods start this long before the window (spec.prewarm.coldStartSeconds). */
    readonly leadSeconds: number;
  };
  readonly why: string;
}

export interface ScheduleContext {
  /** The entries in the cluster's spec (as Argo CD / Flux applied them from Git). */
  readonly existing: readonly ScheduleEntry[];
  /** Tokens/s one shard serves within the SLO (observed load / shards the SLO needs). */
  readonly tokensPerShard: number;
  readonly minShards: number;
  readonly maxShards: number;
  readonly minChangePercent: number;
  readonly leadSeconds: number;
}

const pad = (n: number) => String(n).padStart(2, "0");
const hhmm = (minute: number) => `${pad(Math.floor(minute / 60))}:${pad(minute % 60)}`;

/** Minute of the day a daily cron ("M H * * *", UTC) starts, or undefined for any other shape. */
export function dailyStartMinute(e: ScheduleEntry): number | undefined {
  if (e.timeZone !== "UTC" && e.timeZone !== "Etc/UTC") return undefined;
  const m = /^\s*(\d{1,2})\s+(\d{1,2})\s+\*\s+\*\s+\*\s*$/.exec(e.start);
  if (!m) return undefined;
  const minute = Number(m[1]);
  const hour = Number(m[2]);
  return minute < 60 && hour < 24 ? hour * 60 + minute : undefined;
}

function differs(a: number, b: number, percent: number, floor: number): boolean {
  const d = Math.abs(a - b);
  return d >= floor && d >= (Math.abs(b) * percent) / 100;
}

function cyclicDistance(a: number, b: number): number {
  const d = Math.abs(a - b) % 1440;
  return Math.min(d, 1440 - d);
}

/** Most entries one proposal holds: status.gitops.pendingSchedules keeps as many across a restart. */
export const MAX_PROPOSED_SCHEDULES = 50;

/**
 * The schedule changes the recurring peaks ask for. A peak near (within 2 x MIN_START_SHIFT_MINUTES)
 * an existing learned-* entry updates that entry only when its start moves by at least
 * MIN_START_SHIFT_MINUTES or its duration (by a bucket at least) or minShards (by a shard at least)
 * by minChangePercent; any other peak is a new entry. Peaks that need no more than spec.scaling.minShards
 * are not proposed; minShards is capped at maxShards. Hand-written entries are never changed, and a
 * peak a hand-written daily entry already covers is not proposed again. At most
 * MAX_PROPOSED_SCHEDULES changes, in the peaks' order.
 */
export function proposeSchedules(peaks: readonly RecurringPeak[], c: ScheduleContext): ScheduleChange[] {
  if (!(c.tokensPerShard > 0)) return [];
  const out: ScheduleChange[] = [];
  const learned = c.existing.filter((e) => e.name.startsWith(LEARNED_PREFIX));
  const manual = c.existing.filter((e) => !e.name.startsWith(LEARNED_PREFIX));
  for (const p of peaks) {
    if (out.length >= MAX_PROPOSED_SCHEDULES) break;
    const shards = Math.min(c.maxShards, Math.ceil(p.peakTokensPerSecond / c.tokensPerShard));
    if (shards <= c.minShards) continue;
    const covered = manual.some((e) => {
      const s = dailyStartMinute(e);
      return s !== undefined && s <= p.startMinute && s + e.durationMinutes >= p.startMinute + p.durationMinutes;
    });
    if (covered) continue;
    const near = learned.find((e) => {
      const s = dailyStartMinute(e);
      return s !== undefined && cyclicDistance(s, p.startMinute) < 2 * MIN_START_SHIFT_MINUTES;
    });
    const nearStart = near ? dailyStartMinute(near)! : undefined;
    if (
      near &&
      nearStart !== undefined &&
      cyclicDistance(nearStart, p.startMinute) < MIN_START_SHIFT_MINUTES &&
      !differs(p.durationMinutes, near.durationMinutes, c.minChangePercent, 10) &&
      !differs(shards, near.minShards, c.minChangePercent, 1)
    )
      continue;
    const entry: ScheduleEntry = {
      name: near?.name ?? `${LEARNED_PREFIX}${hhmm(p.startMinute).replace(":", "")}`,
      start: `${p.startMinute % 60} ${Math.floor(p.startMinute / 60)} * * *`,
      durationMinutes: p.durationMinutes,
      minShards: shards,
      timeZone: "UTC",
    };
    const rise = Math.round((p.peakTokensPerSecond / Math.max(p.baseTokensPerSecond, 1e-9) - 1) * 100);
    out.push({
      replaces: near?.name,
      entry,
      evidence: {
        daysSeen: p.daysSeen,
        peakTokensPerSecond: p.peakTokensPerSecond,
        baseTokensPerSecond: p.baseTokensPerSecond,
        leadSeconds: c.leadSeconds,
      },
      why: `load rose ${rise}% above the day's base from ${hhmm(p.startMinute)} UTC for ${p.durationMinutes} min on each of the last ${p.daysSeen} days with data, up to ${Math.round(p.peakTokensPerSecond)} tok/s: ${shards} shards at ${Math.round(c.tokensPerShard)} tok/s per shard within the SLO`,
    });
  }
  return out;
}

/**
 * The schedule part of a pending proposal, kept while the new candidates do not move an entry by
 * the minimum change (the per-shard load behind minShards moves a little with every decision).
 * Returns `pending` itself when nothing changed; undefined when there is nothing to propose.
 */
export function stableSchedules(
  pending: readonly ScheduleChange[] | undefined,
  next: readonly ScheduleChange[],
  minChangePercent: number,
): readonly ScheduleChange[] | undefined {
  if (next.length === 0) return undefined;
  const merged = next.map((c) => {
    const p = pending?.find((x) => x.entry.name === c.entry.name);
    const same =
      p !== undefined &&
      p.entry.start === c.entry.start &&
      !differs(c.entry.durationMinutes, p.entry.durationMinutes, minChangePercent, 10) &&
      !differs(c.entry.minShards, p.entry.minShards, minChangePercent, 1);
    return same ? p : c;
  });
  if (pending && merged.length === pending.length && merged.every((m, i) => m === pending[i])) return pending;
  return merged;
}
