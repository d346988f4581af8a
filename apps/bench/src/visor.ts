/**
 * How the suites run the visor command (apps/vmm) and which of its translation modes they
 * compare: `--jit off` (the interpreter alone, the reference) and `--jit on` (hot code
 * translated to WebAssembly). The value is passed to `visor run` / `visor exec` as is.
 */
import type { JitMode } from "@visor/cpu";
import { paths } from "./context.ts";

export interface VisorMode {
  jit: JitMode;
  /** Row and chart label. */
  name: string;
  /**
   * Figure-id component. The interpreter keeps the ids runs had before the translator
   * ("visor", "visor-off", ...), which measured the interpreter, so `--compare OLD.json`
   * lines them up; the translator's figures get a "-jit" suffix.
   */
  suffix: string;
}

export const INTERPRETER: VisorMode = { jit: "off", name: "visor (interpreter)", suffix: "" };
export const TRANSLATOR: VisorMode = { jit: "on", name: "visor (jit)", suffix: "-jit" };

/** The modes every visor measurement of the cpu, boot and syscalls suites runs in, in order. */
export const VISOR_MODES: readonly VisorMode[] = [INTERPRETER, TRANSLATOR];

/** A runner's figure-id component: visor's modes "visor" + suffix, peers by their name. */
export function figureKey(runner: string): string {
  const m = VISOR_MODES.find((x) => x.name === runner);
  return m !== undefined ? `visor${m.suffix}` : runner;
}

/** Node's arguments for the visor command (the workspace's TypeScript sources). */
function visorCommand(): string[] {
  return ["--conditions=source", paths.visorMain];
}

export interface ExecCommand {
  jit: JitMode;
  /** The guest's / (absolute: the command is not run from the user's directory). */
  root: string;
  /** Path of the program inside the root. */
  program: string;
  args?: readonly string[];
  /** `--stats`: instruction, trap and per-call counts on stderr (times every system call). */
  stats?: boolean;
  memoryMiB?: number;
}

/**
 * `node ... visor exec --jit MODE [--stats] [--memory MIB] --root ROOT PROGRAM ARGS...`.
 * Options go before PROGRAM: exec stops reading options at the first non-option.
 */
export function visorExecArgv(c: ExecCommand): string[] {
  return [
    ...visorCommand(),
    "exec",
    "--jit",
    c.jit,
    ...(c.stats ? ["--stats"] : []),
    ...(c.memoryMiB !== undefined ? ["--memory", String(c.memoryMiB)] : []),
    "--root",
    c.root,
    c.program,
    ...(c.args ?? []),
  ];
}

export interface RunCommand {
  jit: JitMode;
  virt: string;
  memory: string;
  append: string;
}

/** `node ... visor run --jit MODE --virt VIRT --memory SIZE --append CMDLINE`. */
export function visorRunArgv(c: RunCommand): string[] {
  return [
    ...visorCommand(),
    "run",
    "--jit",
    c.jit,
    "--virt",
    c.virt,
    "--memory",
    c.memory,
    "--append",
    c.append,
  ];
}

/** What `visor exec --stats` prints on stderr that the suites use. */
export interface ExecStats {
  /** The run's own wall time: Node's start-up and module loading excluded. */
  wallMs: number;
  instructions: number;
  traps: number;
  syscalls: number;
  /** The translator's mode in effect, when the report has a translator line. */
  translator?: string;
  /** The mode asked for, when the one in effect differs (translation unavailable). */
  translatorAsked?: string;
  /** The share of instructions that ran translated (0..1), when reported. */
  translatedShare?: number;
}

/** Read the `visor exec --stats` report (@visor/syscall's formatStats) from stderr. */
export function parseExecStats(stderr: string): ExecStats {
  const at = stderr.lastIndexOf("visor exec --stats");
  if (at < 0) throw new Error("no 'visor exec --stats' report in the output");
  const text = stderr.slice(at);
  const wall = /^\s*wall time\s+([\d.]+) ms$/m.exec(text);
  const ins = /^\s*instructions\s+(\d+)\b/m.exec(text);
  const traps = /^\s*traps to the kernel\s+(\d+) \((\d+) system calls/m.exec(text);
  if (!wall || !ins || !traps)
    throw new Error("the 'visor exec --stats' report lacks a line the bench reads");
  const out: ExecStats = {
    wallMs: Number(wall[1]),
    instructions: Number(ins[1]),
    traps: Number(traps[1]),
    syscalls: Number(traps[2]),
  };
  // The translator's lines ("translator  on", "translator  off (asked for on); unavailable:
  // ...", "ran translated  97.1% of instructions (N)") are read when they are there.
  const tr = /^\s*translator\s+([a-z]+)(?: \(asked for ([a-z]+)\))?/m.exec(text);
  if (tr) {
    out.translator = tr[1]!;
    if (tr[2] !== undefined) out.translatorAsked = tr[2];
  }
  const share = /^\s*ran translated\s+([\d.]+)% of instructions/m.exec(text);
  if (share) out.translatedShare = Number(share[1]) / 100;
  return out;
}

/**
 * A note when a run asked for the translator but ran without it (exec's report says the
 * mode in effect differs from the one asked for), or undefined.
 */
export function translatorNote(what: string, s: ExecStats): string | undefined {
  if (s.translatorAsked === undefined || s.translator === s.translatorAsked) return undefined;
  return `${what}: asked for --jit ${s.translatorAsked}, ran with ${s.translator} (translation unavailable): its figures are not the translator's.`;
}

/** "97.1%" for a share of instructions that ran translated, "-" when not reported. */
export function shareText(share: number | undefined): string {
  return share === undefined ? "-" : `${(share * 100).toFixed(1)}%`;
}
