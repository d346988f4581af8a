/// <reference types="node" />
/**
 * `visor exec [--root DIR] [--env K=V]... [--stats] [--memory MIB] [--jit MODE] PROGRAM [ARGS...]`
 *
 * Runs PROGRAM (a path inside the root) with the standard streams passed through and
 * returns its exit status (128 + signal when a signal killed it). The environment is
 * exactly the --env values given.
 */
import fs from "node:fs";
import path from "node:path";
import { JIT_MODES, type JitMode } from "@visor/cpu";
import { type Kernel, type KernelStats, ProgramError, runProgram } from "../index.ts";
import { debugProgram, type ProgramDebugger, parseGdbAddress } from "./gdb.ts";
import { createNodeHost } from "./index.ts";

export const EXEC_USAGE =
  "usage: visor exec [--root DIR] [--env K=V]... [--stats] [--memory MIB] [--jit on|off|always] [--gdb [HOST:]PORT [--paused]] PROGRAM [ARGS...]";

/** `visor exec --help`. */
export const EXEC_HELP = `${EXEC_USAGE}

Runs a static (or dynamically linked, with its loader in the root) riscv64 Linux program
on the hart in user mode, the Linux system calls served by visor.

  --root DIR      the guest's / (default: the current directory); PROGRAM and every
                  path the program opens are looked up inside it
  --env K=V       an environment variable for the program (repeatable; nothing else is passed)
  --stats         print instruction, trap, per-system-call and translator statistics
                  at the end
  --memory MIB    guest memory in MiB, 16 to 4096 (default 1024)
  --jit MODE      binary translation of guest code to WebAssembly, for every process
                  and thread: on (hot code, the default), off (interpret only), always
                  (translate at first execution)
  --gdb [HOST:]PORT  serve gdb's remote protocol for the program here (default host
                  127.0.0.1; port 0: any free port, printed on stderr); see
                  docs/debugging.md
  --paused        with --gdb: the program waits for gdb to continue it
  --help          this text
  --version       print the version`;

export interface ExecMainOptions {
  /** The directory relative --root paths are resolved against (default: process.cwd()). */
  cwd?: string;
  /** What --version prints (without it, --version is not an option). */
  version?: string;
}

export interface ExecArgs {
  root: string;
  env: string[];
  stats: boolean;
  memoryMiB: number;
  /** --jit: binary translation mode (default "on"). */
  jit: JitMode;
  /** --gdb: where to serve gdb's remote protocol. */
  gdb?: { host: string; port: number };
  /** --paused: hold the program until gdb continues it. */
  paused?: boolean;
  program: string;
  args: string[];
  /** --help was given (PROGRAM is then not needed). */
  help?: boolean;
  /** --version was given (PROGRAM is then not needed). */
  version?: boolean;
}

/** Parse the command line; throws an Error with a one-line message on bad usage. */
export function parseExecArgs(argv: string[]): ExecArgs {
  let root = ".";
  const env: string[] = [];
  let stats = false;
  let memoryMiB = 1024;
  let jit: JitMode = "on";
  let gdb: ExecArgs["gdb"];
  let paused = false;
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
      case "--help":
      case "--version":
        if (inline !== undefined) throw new Error(`${name} takes no value`);
        return { root, env, stats, memoryMiB, jit, program: "", args: [], [name.slice(2)]: true };
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
      case "--jit": {
        const v = value();
        if (!JIT_MODES.includes(v as JitMode))
          throw new Error(`--jit: '${v}' is not one of ${JIT_MODES.join(", ")}`);
        jit = v as JitMode;
        break;
      }
      case "--gdb": {
        const v = value();
        gdb = parseGdbAddress(v);
        if (gdb === undefined) throw new Error(`--gdb: '${v}' is not [HOST:]PORT`);
        break;
      }
      case "--paused":
        if (inline !== undefined) throw new Error("--paused takes no value");
        paused = true;
        break;
      default:
        throw new Error(`unknown option ${name}`);
    }
  }
  const program = argv[i];
  if (program === undefined) throw new Error("missing PROGRAM");
  if (paused && gdb === undefined) throw new Error("--paused needs --gdb [HOST:]PORT");
  return {
    root,
    env,
    stats,
    memoryMiB,
    jit,
    ...(gdb !== undefined ? { gdb, paused } : {}),
    program,
    args: argv.slice(i + 1),
  };
}

function pad(s: string, n: number): string {
  return s.length >= n ? s : s + " ".repeat(n - s.length);
}
function lpad(s: string, n: number): string {
  return s.length >= n ? s : " ".repeat(n - s.length) + s;
}

/** The --stats report; `jit` is the mode asked for (--jit), shown beside the one in effect. */
export function formatStats(s: KernelStats, wallMs: number, jit?: JitMode): string {
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
  const j = s.jit;
  const asked = jit ?? j.mode;
  let mode = asked === j.mode ? j.mode : `${j.mode} (asked for ${asked})`;
  if (j.unavailable !== "") mode += `; unavailable: ${j.unavailable}`;
  const share = s.instructions > 0 ? `${((100 * j.executedTranslated) / s.instructions).toFixed(1)}%` : "-";
  lines.push(`  translator           ${mode}`);
  lines.push(
    `  translated           ${j.regions} regions, ${j.translatedInstructions} instructions, in ${j.modules} modules, ${j.translateMs.toFixed(1)} ms`,
  );
  lines.push(`  ran translated       ${share} of instructions (${j.executedTranslated})`);
  lines.push(`  entered              ${j.entries} times from the interpreter`);
  lines.push(`  translations dropped ${j.invalidations} invalidated, ${j.evictions} evicted`);
  lines.push(`  translations live    ${j.liveRegions} regions, ${j.liveBytes} bytes of wasm`);
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

/** The shell's status for a command that was not found (what ProgramError carries for ENOENT). */
const EXIT_NOT_FOUND = 127;

/**
 * Why PROGRAM was not found, naming where it was looked up: the program is a path inside
 * the root (a relative one from the root's top), so a file beside the user on the host
 * but outside the root is not it. Undefined when the program is there after all (the
 * missing file was something else, e.g. its ELF interpreter).
 */
function missingProgram(program: string, root: string, cwd: string): string | undefined {
  const inRoot = path.join(root, path.resolve("/", program));
  if (fs.existsSync(inRoot)) return undefined;
  const onHost = path.resolve(cwd, program);
  const rel = path.relative(root, onHost);
  const outside = rel === ".." || rel.startsWith(`..${path.sep}`) || path.isAbsolute(rel);
  if (outside && fs.existsSync(onHost)) {
    return `${program}: no such file in the root ${root} (the program is looked up inside --root; ${onHost} is outside it)`;
  }
  return `${program}: no such file (looked up as ${inRoot}, inside the root ${root})`;
}

/** Run `visor exec`; returns the exit status for the caller to exit with. */
export async function execMain(argv: string[], options: ExecMainOptions = {}): Promise<number> {
  const cwd = options.cwd ?? process.cwd();
  let a: ExecArgs;
  try {
    a = parseExecArgs(argv);
    if (a.version && options.version === undefined) throw new Error("unknown option --version");
  } catch (e) {
    process.stderr.write(`visor exec: ${(e as Error).message}\n${EXEC_USAGE}\n`);
    return 2;
  }
  if (a.help) {
    process.stdout.write(`${EXEC_HELP}\n`);
    return 0;
  }
  if (a.version) {
    process.stdout.write(`${options.version}\n`);
    return 0;
  }
  a.root = path.resolve(cwd, a.root);
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
  let debug: ProgramDebugger | undefined;
  try {
    const status = await runProgram({
      host,
      program: a.program,
      argv: [a.program, ...a.args],
      env: a.env,
      memoryBytes: a.memoryMiB * 1024 * 1024,
      timeSyscalls: a.stats,
      jit: a.jit,
      onStats: (s) => {
        stats = s;
      },
      ...(a.gdb !== undefined
        ? {
            onStart: async (k: Kernel) => {
              const { host, port } = a.gdb!;
              try {
                debug = await debugProgram(k, { host, port }, a.paused === true, (l) =>
                  process.stderr.write(`visor exec: ${l}\n`),
                );
              } catch (e) {
                throw new ProgramError(`--gdb ${host}:${port}: ${(e as Error).message}`, 2);
              }
            },
          }
        : {}),
    });
    debug?.exited(status);
    if (a.stats && stats !== undefined)
      process.stderr.write(formatStats(stats, performance.now() - started, a.jit));
    return status;
  } catch (e) {
    debug?.close();
    if (e instanceof ProgramError) {
      const missing = e.exitCode === EXIT_NOT_FOUND ? missingProgram(a.program, a.root, cwd) : undefined;
      process.stderr.write(`visor exec: ${missing ?? e.message}\n`);
      return e.exitCode;
    }
    throw e;
  } finally {
    host.close();
  }
}
