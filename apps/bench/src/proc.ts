/** Running child processes for the suites: wall time, captured output, a time limit. */
import { spawn, spawnSync } from "node:child_process";
import { accessSync, constants, readFileSync } from "node:fs";
import { delimiter, join } from "node:path";

export interface ProcResult {
  code: number | null;
  signal: string | null;
  stdout: string;
  stderr: string;
  /** Spawn to exit, in milliseconds. */
  wallMs: number;
  timedOut: boolean;
  /**
   * Peak resident set size in KiB (the kernel's VmHWM) when `peakRss` was asked for and
   * /proc could be read; the last reading before the process exited (see PeakRss).
   */
  peakRssKiB?: number;
}

export interface ProcOptions {
  cwd?: string;
  timeoutMs?: number;
  env?: NodeJS.ProcessEnv;
  /** Follow the child's peak resident set (Linux /proc) into `peakRssKiB`. */
  peakRss?: boolean;
}

/** VmHWM (peak resident set, KiB) from the text of /proc/PID/status; undefined without one. */
export function parseVmHwm(status: string): number | undefined {
  const m = /^VmHWM:\s+(\d+) kB$/m.exec(status);
  return m ? Number(m[1]) : undefined;
}

/**
 * A process's peak resident set, read from /proc/PID/status. VmHWM is the kernel's
 * high-water mark of the resident set, so every reading covers the whole life of the
 * process up to that moment; the largest reading is kept. Once the process has exited its
 * status has no VmHWM (and, reaped, no file), so readings stop counting then: the result
 * is the peak up to the last reading, at most one sampling interval before the exit.
 */
export class PeakRss {
  #kib: number | undefined;
  readonly pid: number;
  constructor(pid: number) {
    this.pid = pid;
  }
  /** Read the status once; false when there was nothing to read (exited, or no /proc). */
  sample(): boolean {
    let text: string;
    try {
      text = readFileSync(`/proc/${this.pid}/status`, "utf8");
    } catch {
      return false;
    }
    const v = parseVmHwm(text);
    if (v === undefined) return false;
    if (this.#kib === undefined || v > this.#kib) this.#kib = v;
    return true;
  }
  /** The largest VmHWM read, KiB, or undefined when none was. */
  get kib(): number | undefined {
    return this.#kib;
  }
}

/** How often a running child's VmHWM is read when `peakRss` is asked for. */
export const PEAK_RSS_INTERVAL_MS = 20;

/** Run `cmd args` with stdin closed; never rejects for a failing program (look at `code`). */
export function run(cmd: string, args: readonly string[], opts: ProcOptions = {}): Promise<ProcResult> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn(cmd, args, {
      cwd: opts.cwd,
      env: opts.env ?? process.env,
      stdio: ["ignore", "pipe", "pipe"],
    });
    // Sampling stops at "exit" (the pid is reaped then and could be reused).
    const rss = opts.peakRss && child.pid !== undefined ? new PeakRss(child.pid) : undefined;
    const sampler = rss !== undefined ? setInterval(() => rss.sample(), PEAK_RSS_INTERVAL_MS) : undefined;
    child.on("exit", () => {
      if (sampler !== undefined) clearInterval(sampler);
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on("data", (b: Buffer) => out.push(b));
    child.stderr.on("data", (b: Buffer) => err.push(b));
    let timedOut = false;
    const timer =
      opts.timeoutMs !== undefined
        ? setTimeout(() => {
            timedOut = true;
            child.kill("SIGKILL");
          }, opts.timeoutMs)
        : undefined;
    child.on("error", (e) => {
      if (timer !== undefined) clearTimeout(timer);
      if (sampler !== undefined) clearInterval(sampler);
      reject(new Error(`cannot run ${cmd}: ${e.message}`));
    });
    child.on("close", (code, signal) => {
      const wallMs = performance.now() - t0;
      if (timer !== undefined) clearTimeout(timer);
      resolve({
        code,
        signal,
        stdout: Buffer.concat(out).toString("utf8"),
        stderr: Buffer.concat(err).toString("utf8"),
        wallMs,
        timedOut,
        ...(rss?.kib !== undefined ? { peakRssKiB: rss.kib } : {}),
      });
    });
  });
}

/** Throw a one-line error unless the process exited 0. */
export function check(r: ProcResult, what: string): ProcResult {
  if (r.timedOut) throw new Error(`${what}: timed out after ${(r.wallMs / 1000).toFixed(0)} s`);
  if (r.code !== 0) {
    // The last line that says something: a usage line after the error is left out.
    const lines = `${r.stderr}${r.stdout}`.trim().split("\n");
    const tail = lines.filter((l) => !/^usage:/.test(l)).at(-1) ?? lines.at(-1) ?? "";
    throw new Error(`${what}: exit ${r.code ?? r.signal}${tail ? `: ${tail.slice(0, 200)}` : ""}`);
  }
  return r;
}

/** The full path of a program on PATH, or undefined. */
export function which(name: string): string | undefined {
  for (const dir of (process.env.PATH ?? "").split(delimiter)) {
    if (dir === "") continue;
    const p = join(dir, name);
    try {
      accessSync(p, constants.X_OK);
      return p;
    } catch {
      // not here
    }
  }
  return undefined;
}

/** First line of `cmd --version` (or the given args), or undefined when it cannot run. */
export function versionOf(cmd: string, args: readonly string[] = ["--version"]): string | undefined {
  const r = spawnSync(cmd, args, { encoding: "utf8", timeout: 10_000 });
  if (r.error !== undefined || r.status !== 0) return undefined;
  return `${r.stdout}${r.stderr}`.trim().split("\n")[0];
}
