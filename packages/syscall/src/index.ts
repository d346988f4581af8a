/**
 * @visor/syscall: run static (or dynamically linked, with the loader inside the root)
 * riscv64 Linux programs on Visor's hart in U-mode, with the Linux system-call ABI served
 * in TypeScript, as QEMU's user mode and gVisor do.
 *
 * Entry point: `runProgram({ host, program, argv, env })` resolves with the exit status.
 * The host (file system under a root directory, console, clocks, randomness) comes in
 * through the interfaces of host.ts; `@visor/syscall/node` provides a Node one.
 */

import type { JitMode } from "@visor/cpu";
import { ExecFormatError } from "./elf.ts";
import * as E from "./errno.ts";
import { buildImage } from "./exec.ts";
import type { Host } from "./host.ts";
import { registerIoUring } from "./iouring.ts";
import { Kernel, type KernelStats } from "./kernel.ts";
import { registerFs, resolveCtx } from "./sys-fs.ts";
import { registerMm } from "./sys-mm.ts";
import { registerNet } from "./sys-net.ts";
import { registerPoll } from "./sys-poll.ts";
import { registerProc } from "./sys-proc.ts";
import { SigHandlers, type Task } from "./task.ts";
import { type DirRef, ROOT_REF } from "./vfs.ts";

export * from "./abi.ts";
export { ExecFormatError, parseElf } from "./elf.ts";
export { ERRNO_BY_NAME, LinuxError } from "./errno.ts";
export type {
  Host,
  HostClock,
  HostConsole,
  HostFile,
  HostFs,
  HostIdentity,
  HostStat,
  HostStatFs,
} from "./host.ts";
export { Kernel, type KernelOptions, type KernelStats, type SyscallStat } from "./kernel.ts";
export { MemoryConsole } from "./memconsole.ts";
export { NR, SYSCALL_NAMES, syscallName } from "./numbers.ts";
export { TASK_RUNNING, TASK_ZOMBIE, type Task } from "./task.ts";
export { DirRef, Resolver, ROOT_REF } from "./vfs.ts";

export interface RunProgramOptions {
  host: Host;
  /** Path of the program inside the root (absolute, or relative to `cwd`). */
  program: string;
  /** argv (default: [program]). */
  argv?: string[];
  /** Environment strings "K=V" (default: none). */
  env?: string[];
  /** Working directory inside the root (default "/"). */
  cwd?: string;
  /** Guest RAM shared by all processes, bytes (default 1 GiB). */
  memoryBytes?: number;
  /** Tasks at most (KernelOptions.maxTasks). */
  maxTasks?: number;
  /** Instructions per scheduling slice (default 200 000). */
  sliceInstructions?: number;
  /** Measure time per system call for the statistics. */
  timeSyscalls?: boolean;
  /** Receives the statistics when every process has exited. */
  onStats?: (stats: KernelStats) => void;
  /** Where "unsupported syscall" lines go (default: the host console's stderr). */
  warn?: (line: string) => void;
  /** Binary translation on every hart, processes and threads alike: "off", "on" (default), "always". */
  jit?: JitMode;
  /** Called with the kernel once the first process is loaded, before it runs (a debugger attaches here). */
  onStart?: (k: Kernel) => void | Promise<void>;
}

/** The program could not be started (missing, not executable, not a riscv64 ELF). */
export class ProgramError extends Error {
  override name = "ProgramError";
  /** Suggested exit status, as a shell would use: 127 not found, 126 otherwise. */
  readonly exitCode: number;
  constructor(message: string, exitCode: number) {
    super(message);
    this.exitCode = exitCode;
  }
}

const MESSAGES: Record<number, string> = {
  [E.ENOENT]: "No such file or directory",
  [E.EACCES]: "Permission denied",
  [E.ENOTDIR]: "Not a directory",
  [E.ELOOP]: "Too many levels of symbolic links",
  [E.ENAMETOOLONG]: "File name too long",
  [E.ENOEXEC]: "Exec format error",
  [E.E2BIG]: "Argument list too long",
  [E.ENOMEM]: "Cannot allocate memory",
  [E.EISDIR]: "Is a directory",
};

/** Create a kernel with the full system-call table. */
export function createKernel(opts: Omit<RunProgramOptions, "program">): Kernel {
  const k = new Kernel({
    host: opts.host,
    memoryBytes: opts.memoryBytes,
    sliceInstructions: opts.sliceInstructions,
    timeSyscalls: opts.timeSyscalls,
    warn: opts.warn,
    jit: opts.jit,
    maxTasks: opts.maxTasks,
  });
  registerFs(k.table);
  registerProc(k.table);
  registerMm(k.table);
  registerPoll(k.table);
  registerIoUring(k.table);
  registerNet(k.table);
  return k;
}

/** Start the first process in a kernel; throws ProgramError if it cannot be executed. */
export function spawnInit(k: Kernel, program: string, argv: string[], env: string[], cwd = "/"): Task {
  const files = k.consoleFiles();
  const sig = new SigHandlers();
  const tmpCtx = { exe: () => program, fdLink: () => undefined, fdList: () => [0, 1, 2] };
  let img: ReturnType<typeof buildImage>;
  let cwdRef: DirRef;
  try {
    cwdRef = k.resolver.refOf(k.resolver.resolve(tmpCtx, ROOT_REF, cwd, true));
  } catch (e) {
    files.closeAll(k);
    if (e instanceof E.LinuxError) {
      throw new ProgramError(`working directory ${cwd}: ${MESSAGES[e.errno] ?? `error ${e.errno}`}`, 126);
    }
    throw e;
  }
  try {
    img = buildImage(k, tmpCtx, cwdRef, program, argv, env);
  } catch (e) {
    files.closeAll(k);
    if (e instanceof ExecFormatError) throw new ProgramError(`${program}: ${e.message}`, 126);
    if (e instanceof E.LinuxError) {
      const msg = MESSAGES[e.errno] ?? `error ${e.errno}`;
      throw new ProgramError(`${program}: ${msg}`, e.errno === E.ENOENT ? 127 : 126);
    }
    throw e;
  }
  const t = k.newTask(img.mm, files, sig);
  t.mm = img.mm;
  t.exe = img.exe;
  t.comm = img.comm;
  t.cwd = cwdRef;
  // A process started from a shell: leader of its own process group, not of a session.
  t.sid = 1;
  t.hart.pc = BigInt(img.entry);
  t.hart.setX(2, BigInt(img.sp));
  k.init = t;
  k.addTask(t);
  void resolveCtx;
  return t;
}

/** Exit status of a wait status: the exit code, or 128 + signal for a killed process. */
export function exitStatusOf(wait: number): number {
  return (wait & 0x7f) !== 0 ? 128 + (wait & 0x7f) : (wait >> 8) & 0xff;
}

/**
 * Run a program (and whatever it spawns) to completion. Resolves with its exit status:
 * the exit code, or 128 + the signal number when a signal killed it.
 */
export async function runProgram(opts: RunProgramOptions): Promise<number> {
  const k = createKernel(opts);
  spawnInit(k, opts.program, opts.argv ?? [opts.program], opts.env ?? [], opts.cwd ?? "/");
  await opts.onStart?.(k);
  const status = await k.run();
  opts.onStats?.(k.stats());
  return exitStatusOf(status);
}
