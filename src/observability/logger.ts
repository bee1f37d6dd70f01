// One pino root logger, created in main and passed down as children.
import { pino, type Logger, type LevelWithSilent } from "pino";

export type { Logger };

export function createRootLogger(
  opts: { level?: LevelWithSilent; name?: string; destination?: NodeJS.WritableStream } = {},
): Logger {
  return pino(
    {
      name: opts.name ?? "moe-operator",
      level: opts.level ?? "info",
      base: undefined,
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      serializers: { err: pino.stdSerializers.err },
    },
    opts.destination as pino.DestinationStream | undefined,
  );
}

/** A logger that drops everything (tests that do not inspect logs). */
export function silentLogger(): Logger {
  return pino({ level: "silent" });
}
