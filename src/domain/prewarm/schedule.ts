// Scheduled pre-warm windows: cron start (and end) in an IANA timezone, with a minimum GPU
// count that must be Ready when the window opens. Evaluated with croner (no callback, so no
// timers); time comes in as nowMs.

import { Cron } from "croner";

export interface PrewarmSchedule {
  /** Stable name, reported in reasons and messages. */
  readonly name: string;
  /** Cron expression (5 or 6 fields) at which the window opens, in `timezone`. */
  readonly start: string;
  /** Cron expression at which the window closes (the first end after a start). Wins over durationMs. */
  readonly end?: string;
  /** Window length when `end` is absent. */
  readonly durationMs?: number;
  /** IANA timezone, e.g. "Europe/Berlin"; UTC when absent. */
  readonly timezone?: string;
  /** GPUs that must be Ready while the window is open. */
  readonly minGpus: number;
}

export type ScheduleValidation =
  { readonly ok: true } | { readonly ok: false; readonly field: string; readonly message: string };

const CRON_MODE = "5-or-6-parts" as const;

function makeCron(pattern: string, timezone: string | undefined): Cron {
  return new Cron(pattern, { timezone: timezone ?? "Etc/UTC", mode: CRON_MODE });
}

/** Check a schedule without throwing; `field` names the offending field. */
export function validateSchedule(s: PrewarmSchedule): ScheduleValidation {
  if (!(Number.isInteger(s.minGpus) && s.minGpus >= 0)) {
    return { ok: false, field: "minGpus", message: `minGpus must be a non-negative integer, got ${s.minGpus}` };
  }
  if (s.end === undefined && !(s.durationMs !== undefined && s.durationMs > 0)) {
    return { ok: false, field: "end", message: "a schedule needs an end cron expression or a positive durationMs" };
  }
  for (const field of ["start", "end"] as const) {
    const pattern = s[field];
    if (pattern === undefined) continue;
    try {
      makeCron(pattern, s.timezone).nextRun(new Date(0));
    } catch (e) {
      const message = e instanceof Error ? e.message : String(e);
      return { ok: false, field: /timezone/i.test(message) ? "timezone" : field, message };
    }
  }
  return { ok: true };
}

/** Latest run at or before tMs, if any. */
function runAtOrBefore(cron: Cron, tMs: number): number | undefined {
  // previousRuns excludes a run exactly at the reference, so look from just after it.
  const prev = cron.previousRuns(1, new Date(tMs + 1))[0];
  return prev === undefined || prev.getTime() > tMs ? undefined : prev.getTime();
}

function runAfter(cron: Cron, tMs: number): number | undefined {
  const next = cron.nextRun(new Date(tMs));
  return next === null ? undefined : next.getTime();
}

export interface ScheduleWindowState {
  readonly name: string;
  readonly minGpus: number;
  /** The window is open at nowMs. */
  readonly open: boolean;
  /** When the current window opened (if open) or the next one opens (if not). */
  readonly opensAtMs: number | undefined;
  /** When the current (or next) window closes, if known. */
  readonly closesAtMs: number | undefined;
}

/** Where one schedule stands at nowMs. Throws only on an invalid schedule (validate first). */
export function scheduleWindowAt(s: PrewarmSchedule, nowMs: number): ScheduleWindowState {
  const start = makeCron(s.start, s.timezone);
  const end = s.end === undefined ? undefined : makeCron(s.end, s.timezone);
  const closeAfter = (openedMs: number): number | undefined =>
    end !== undefined ? runAfter(end, openedMs) : openedMs + (s.durationMs ?? 0);
  const lastStart = runAtOrBefore(start, nowMs);
  if (lastStart !== undefined) {
    let open: boolean;
    if (end !== undefined) {
      const lastEnd = runAtOrBefore(end, nowMs);
      open = lastEnd === undefined || lastEnd < lastStart;
    } else {
      open = lastStart + (s.durationMs ?? 0) > nowMs;
    }
    if (open)
      return { name: s.name, minGpus: s.minGpus, open, opensAtMs: lastStart, closesAtMs: closeAfter(lastStart) };
  }
  const nextStart = runAfter(start, nowMs);
  return {
    name: s.name,
    minGpus: s.minGpus,
    open: false,
    opensAtMs: nextStart,
    closesAtMs: nextStart === undefined ? undefined : closeAfter(nextStart),
  };
}

export interface ScheduleFloor {
  /** GPUs the schedules require now (0 when none applies). */
  readonly gpuCount: number;
  /** The schedule that sets gpuCount, if any. */
  readonly schedule: ScheduleWindowState | undefined;
  /** True when the binding window is not open yet (capacity is being pre-warmed for it). */
  readonly prewarming: boolean;
  /** Schedules skipped because they are invalid (name and message). */
  readonly invalid: readonly { readonly name: string; readonly field: string; readonly message: string }[];
}

/**
 * The minimum capacity the schedules ask for at nowMs: a window counts from leadTimeMs before it
 * opens (so its GPUs are Ready at the opening) until it closes. The largest such minGpus wins.
 */
export function scheduleFloorAt(
  schedules: readonly PrewarmSchedule[],
  nowMs: number,
  leadTimeMs: number,
): ScheduleFloor {
  let best: ScheduleWindowState | undefined;
  let bestPrewarming = false;
  const invalid: { name: string; field: string; message: string }[] = [];
  for (const s of schedules) {
    const v = validateSchedule(s);
    if (!v.ok) {
      invalid.push({ name: s.name, field: v.field, message: v.message });
      continue;
    }
    const w = scheduleWindowAt(s, nowMs);
    const prewarming = !w.open && w.opensAtMs !== undefined && w.opensAtMs - nowMs <= Math.max(0, leadTimeMs);
    if (!(w.open || prewarming)) continue;
    if (best === undefined || w.minGpus > best.minGpus) {
      best = w;
      bestPrewarming = prewarming;
    }
  }
  return { gpuCount: best?.minGpus ?? 0, schedule: best, prewarming: bestPrewarming, invalid };
}
