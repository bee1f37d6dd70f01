// Child processes of the local cluster harness: logged to files, stopped by PID,
// and bound to our lifetime so that a crashed or SIGKILLed test runner leaves
// no etcd or kube-apiserver behind.
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { openSync, closeSync, readFileSync, existsSync } from "node:fs";

const live = new Set<ManagedProcess>();
let hooksInstalled = false;

/**
 * `setpriv --pdeathsig KILL` (util-linux) makes the kernel kill the child when
 * the process that spawned it dies, even by SIGKILL. We use it when present.
 */
const hasSetpriv = (() => {
  try {
    const r = spawnSync("setpriv", ["--help"], { encoding: "utf8" });
    return r.status === 0 && r.stdout.includes("pdeathsig");
  } catch {
    return false;
  }
})();

function installExitHooks(): void {
  if (hooksInstalled) return;
  hooksInstalled = true;
  // Synchronous last resort: on normal exit kill whatever is still running.
  process.on("exit", () => {
    for (const p of live) p.killNow();
  });
  // On a signal nobody else handles, kill the children and die of the same
  // signal. When the program has its own handler (the demo stops gracefully),
  // leave it to that handler; the exit hook above still runs at the end.
  for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
    const onSignal = () => {
      if (process.listenerCount(sig) > 1) return;
      for (const p of live) p.killNow();
      process.removeListener(sig, onSignal);
      process.kill(process.pid, sig);
    };
    process.on(sig, onSignal);
  }
}

export interface StartProcessOptions {
  name: string;
  command: string;
  args: string[];
  logFile: string;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
}

export class ManagedProcess {
  readonly name: string;
  readonly logFile: string;
  readonly child: ChildProcess;
  #exited: Promise<number | null>;
  #exitCode: number | null | undefined = undefined;

  constructor(opts: StartProcessOptions) {
    installExitHooks();
    this.name = opts.name;
    this.logFile = opts.logFile;
    const fd = openSync(opts.logFile, "a");
    const [cmd, args] = hasSetpriv
      ? ["setpriv", ["--pdeathsig", "KILL", "--", opts.command, ...opts.args]]
      : [opts.command, opts.args];
    this.child = spawn(cmd, args, {
      stdio: ["ignore", fd, fd],
      env: opts.env ?? process.env,
      cwd: opts.cwd,
      detached: false,
    });
    closeSync(fd);
    live.add(this);
    this.#exited = new Promise((resolve) => {
      this.child.once("exit", (code, signal) => {
        live.delete(this);
        this.#exitCode = code ?? (signal ? -1 : null);
        resolve(this.#exitCode);
      });
      this.child.once("error", () => {
        live.delete(this);
        this.#exitCode = -1;
        resolve(-1);
      });
    });
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  /** undefined while running, else the exit code (-1 when killed by a signal). */
  get exitCode(): number | null | undefined {
    return this.#exitCode;
  }

  get exited(): Promise<number | null> {
    return this.#exited;
  }

  /** Last lines of the process log, for error messages. */
  logTail(lines = 30): string {
    if (!existsSync(this.logFile)) return "";
    const text = readFileSync(this.logFile, "utf8").trimEnd().split("\n");
    return text.slice(-lines).join("\n");
  }

  killNow(): void {
    if (this.#exitCode !== undefined || this.child.pid === undefined) return;
    try {
      process.kill(this.child.pid, "SIGKILL");
    } catch {
      /* already gone */
    }
  }

  /** SIGTERM, then SIGKILL after graceMs. Resolves when the process is gone. */
  async stop(graceMs = 5_000): Promise<void> {
    if (this.#exitCode !== undefined || this.child.pid === undefined) return;
    try {
      process.kill(this.child.pid, "SIGTERM");
    } catch {
      /* already gone */
    }
    const timer = setTimeout(() => this.killNow(), graceMs);
    await this.#exited;
    clearTimeout(timer);
  }
}

export function startProcess(opts: StartProcessOptions): ManagedProcess {
  return new ManagedProcess(opts);
}

/** Run a short command to completion; throws with its output on failure. */
export function runSync(command: string, args: string[], opts: { cwd?: string; input?: string } = {}): string {
  const r = spawnSync(command, args, { encoding: "utf8", cwd: opts.cwd, input: opts.input });
  if (r.error) throw new Error(`${command} could not start`, { cause: r.error });
  if (r.status !== 0) {
    throw new Error(`${command} ${args.join(" ")} exited ${r.status}: ${r.stderr || r.stdout}`);
  }
  return r.stdout;
}
