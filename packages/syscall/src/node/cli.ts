/// <reference types="node" />
/**
 * `visor exec [--root DIR] [--env K=V]... [--stats] PROGRAM [ARGS...]`
 *
 * Runs PROGRAM (a path inside the root) with the standard streams passed through and
 * returns its exit status (128 + signal when a signal killed it). The environment is
 * exactly the --env values given.
 */
import fs from "node:fs";
import { type KernelStats, ProgramError, runProgram } from "../index.ts";
import { createNodeHost } from "./index.ts";

export const EXEC_USAGE =
  "usage: visor exec [--root DIR] [--env K=V]... [--stats] [--memory MIB] PROGRAM [ARGS...]";

export interface ExecArgs {
  root: string;
  env: string[];
  stats: boolean;
  memoryMiB: number;
  program: string;
  args: string[];
}

/** Parse the command line; throws an Error with a one-line message on bad usage. */
export function parseExecArgs(argv: string[]): ExecArgs {
  let root = process.cwd();
  const env: string[] = [];
  let stats = false;
  let memoryMiB = 1024;
  let i = 0;
  for (; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === "--") {
      i++;
      break;
    }
    if (!a.startsWith("--")) break;
    const [name, inline] = a.includes("=")
      ? [a.slice(0, a.indexOf("=")), a.slice(a.indexOf("=") + 1)]
      : [a, undefined];
    const value = (): string => {
      if (inline !== undefined) return inline;
      const v = argv[++i];
      if (v === undefined) throw new Error(`${name} needs a value`);
      return v;
    };
    switch (name) {
      case "--root":
        root = value();
        break;
      case "--env": {
        const v = value();
        if (!v.includes("=")) throw new Error(`--env wants K=V, got ${JSON.stringify(v)}`);
        env.push(v);
        break;
      }
      case "--stats":
        if (inline !== undefined) throw new Error("--stats takes no value");
        stats = true;
        break;
      case "--memory": {
        const v = Number(value());
        if (!Number.isInteger(v) || v < 16 || v > 4096)
          throw new Error("--memory wants MiB between 16 and 4096");
        memoryMiB = v;
        break;
      }
      default:
        throw new Error(`unknown option ${name}`);
    }
  }
  const program = argv[i];
  if (program === undefined) throw new Error("missing PROGRAM");
  return { root, env, stats, memoryMiB, program, args: argv.slice(i + 1) };
}

function pad(s: string, n: number): string {
  return s.length >= n ? s : s + " ".repeat(n - s.length);
}
function lpad(s: string, n: number): string {
  return s.length >= n ? s : " ".repeat(n - s.length) + s;
}

/** The --stats report. */
export function formatStats(s: KernelStats, wallMs: number): string {
  const lines: string[] = [];
  const mips = wallMs > 0 ? s.instructions / wallMs / 1000 : 0;
  const totalMs = s.perSyscall.reduce((a, x) => a + x.ms, 0);
  lines.push("visor exec --stats");
  lines.push(`  wall time            ${wallMs.toFixed(1)} ms`);
  lines.push(`  instructions         ${s.instructions} (${mips.toFixed(1)} MIPS)`);
  lines.push(
    `  traps to the kernel  ${s.traps} (${s.syscalls} system calls, ${s.pageFaults} page faults, ${s.signals} signals)`,
  );
  lines.push(`  in the kernel        ${totalMs.toFixed(1)} ms serving system calls`);
  lines.push(`  processes, threads   ${s.processes}`);
  lines.push(
    `  memory               peak ${(s.peakMemoryBytes / 1048576).toFixed(1)} MiB, ${s.cowCopies} copy-on-write copies, ${s.zeroFills} zero-filled pages`,
  );
  lines.push(`  page cache           ${s.pageCacheHits} hits, ${s.pageCacheMisses} misses`);
  lines.push(
    `  ${pad("syscall", 18)}${lpad("calls", 9)}${lpad("errors", 8)}${lpad("total ms", 11)}${lpad("us/call", 9)}`,
  );
  for (const x of s.perSyscall) {
    const per = x.count > 0 ? (x.ms * 1000) / x.count : 0;
    lines.push(
      `  ${pad(x.name, 18)}${lpad(String(x.count), 9)}${lpad(String(x.errors), 8)}${lpad(x.ms.toFixed(2), 11)}${lpad(per.toFixed(1), 9)}`,
    );
  }
  return `${lines.join("\n")}\n`;
}

/** Run `visor exec`; returns the exit status for the caller to exit with. */
export async function execMain(argv: string[]): Promise<number> {
  let a: ExecArgs;
  try {
    a = parseExecArgs(argv);
  } catch (e) {
    process.stderr.write(`visor exec: ${(e as Error).message}\n${EXEC_USAGE}\n`);
    return 2;
  }
  try {
    if (!fs.statSync(a.root).isDirectory()) throw new Error("not a directory");
  } catch (e) {
    const msg = (e as { code?: string }).code === "ENOENT" ? "no such directory" : (e as Error).message;
    process.stderr.write(`visor exec: --root ${a.root}: ${msg}\n`);
    return 2;
  }
  const host = createNodeHost({ root: a.root, forwardSignals: true });
  const started = performance.now();
  let stats: KernelStats | undefined;
  try {
    const status = await runProgram({
      host,
      program: a.program,
      argv: [a.program, ...a.args],
      env: a.env,
      memoryBytes: a.memoryMiB * 1024 * 1024,
      timeSyscalls: a.stats,
      onStats: (s) => {
        stats = s;
      },
    });
    if (a.stats && stats !== undefined) process.stderr.write(formatStats(stats, performance.now() - started));
    return status;
  } catch (e) {
    if (e instanceof ProgramError) {
      process.stderr.write(`visor exec: ${e.message}\n`);
      return e.exitCode;
    }
    throw e;
  } finally {
    host.close();
  }
}
