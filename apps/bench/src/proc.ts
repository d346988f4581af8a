/** Running child processes for the suites: wall time, captured output, a time limit. */
import { spawn, spawnSync } from "node:child_process";
import { accessSync, constants } from "node:fs";
import { delimiter, join } from "node:path";

export interface ProcResult {
  code: number | null;
  signal: string | null;
  stdout: string;
  stderr: string;
  /** Spawn to exit, in milliseconds. */
  wallMs: number;
  timedOut: boolean;
}

export interface ProcOptions {
  cwd?: string;
  timeoutMs?: number;
  env?: NodeJS.ProcessEnv;
}

/** Run `cmd args` with stdin closed; never rejects for a failing program (look at `code`). */
export function run(cmd: string, args: readonly string[], opts: ProcOptions = {}): Promise<ProcResult> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn(cmd, args, {
      cwd: opts.cwd,
      env: opts.env ?? process.env,
      stdio: ["ignore", "pipe", "pipe"],
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
      });
    });
  });
}

/** Throw a one-line error unless the process exited 0. */
export function check(r: ProcResult, what: string): ProcResult {
  if (r.timedOut) throw new Error(`${what}: timed out after ${(r.wallMs / 1000).toFixed(0)} s`);
  if (r.code !== 0) {
    const tail = `${r.stderr}${r.stdout}`.trim().split("\n").slice(-1)[0] ?? "";
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
