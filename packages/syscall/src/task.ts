/**
 * A guest thread: its hart (registers, satp), address space, descriptor table, signal
 * state and place in the process tree. A process is a thread group: the leader (whose
 * tid is the process id) and the threads created with CLONE_THREAD, which share the
 * address space, descriptors and signal handlers. The process-level facts (parent,
 * children, exit status) live on the leader.
 */
import type { Hart } from "@visor/cpu";
import { FD_CLOEXEC, NSIG, RLIM_NLIMITS, RLIMIT_NOFILE, RLIMIT_STACK } from "./abi.ts";
import { EBADF, EMFILE, LinuxError } from "./errno.ts";
import type { FileCtx, OpenFile } from "./files.ts";
import type { AddressSpace } from "./mm.ts";
import { type DirRef, ROOT_REF } from "./vfs.ts";

export const TASK_RUNNING = 0;
export const TASK_BLOCKED = 1;
export const TASK_STOPPED = 2;
export const TASK_ZOMBIE = 3;
/** A thread that has exited while other threads of its process still run. */
export const TASK_DEAD = 4;

export const MAX_FDS = 1024;
const RLIM_INFINITY = -1;

// ------------------------------------------------------------------------------ descriptors

export interface FdEntry {
  file: OpenFile;
  cloexec: boolean;
}

export class FdTable {
  fds: (FdEntry | undefined)[] = [];
  /** Shared by CLONE_FILES tasks. */
  users = 1;

  get(fd: number): OpenFile {
    const e = fd >= 0 ? this.fds[fd] : undefined;
    if (e === undefined) throw new LinuxError(EBADF);
    return e.file;
  }

  entry(fd: number): FdEntry | undefined {
    return fd >= 0 ? this.fds[fd] : undefined;
  }

  /** Install `file` (taking over one reference) at the lowest free slot >= min. */
  alloc(file: OpenFile, cloexec: boolean, min = 0, limit = MAX_FDS): number {
    let fd = min;
    while (fd < this.fds.length && this.fds[fd] !== undefined) fd++;
    if (fd >= limit) throw new LinuxError(EMFILE);
    this.fds[fd] = { file, cloexec };
    return fd;
  }

  /** Install at exactly `fd`, closing what was there. */
  install(ctx: FileCtx, fd: number, file: OpenFile, cloexec: boolean): void {
    const old = this.fds[fd];
    while (this.fds.length < fd) this.fds.push(undefined);
    this.fds[fd] = { file, cloexec };
    old?.file.decRef(ctx);
  }

  close(ctx: FileCtx, fd: number): void {
    const e = fd >= 0 ? this.fds[fd] : undefined;
    if (e === undefined) throw new LinuxError(EBADF);
    this.fds[fd] = undefined;
    while (this.fds.length > 0 && this.fds[this.fds.length - 1] === undefined) this.fds.pop();
    e.file.decRef(ctx);
  }

  closeAll(ctx: FileCtx): void {
    const all = this.fds;
    this.fds = [];
    for (const e of all) e?.file.decRef(ctx);
  }

  closeOnExec(ctx: FileCtx): void {
    for (let fd = 0; fd < this.fds.length; fd++) {
      const e = this.fds[fd];
      if (e?.cloexec) {
        this.fds[fd] = undefined;
        e.file.decRef(ctx);
      }
    }
  }

  fork(): FdTable {
    const t = new FdTable();
    t.fds = this.fds.map((e) => {
      if (e === undefined) return undefined;
      e.file.refs++;
      return { file: e.file, cloexec: e.cloexec };
    });
    return t;
  }

  list(): number[] {
    const r: number[] = [];
    this.fds.forEach((e, i) => {
      if (e !== undefined) r.push(i);
    });
    return r;
  }

  getFdFlags(fd: number): number {
    const e = this.fds[fd];
    if (e === undefined) throw new LinuxError(EBADF);
    return e.cloexec ? FD_CLOEXEC : 0;
  }
}

// ------------------------------------------------------------------------------ signals

export interface SigAction {
  /** Handler address, or SIG_DFL (0) / SIG_IGN (1). */
  handler: number;
  flags: number;
  mask: bigint;
}

export class SigHandlers {
  readonly actions: SigAction[] = [];
  users = 1;
  constructor() {
    for (let i = 0; i <= NSIG; i++) this.actions.push({ handler: 0, flags: 0, mask: 0n });
  }
  clone(): SigHandlers {
    const s = new SigHandlers();
    for (let i = 0; i <= NSIG; i++) {
      const a = this.actions[i]!;
      s.actions[i] = { handler: a.handler, flags: a.flags, mask: a.mask };
    }
    return s;
  }
}

/** What a pending signal carries into siginfo. */
export interface SigInfo {
  signo: number;
  code: number;
  pid: number;
  uid: number;
  /** SIGCHLD: exit status or signal; SIGSEGV/SIGBUS: fault address. */
  status: number;
  addr: number;
}

export function sigbit(sig: number): bigint {
  return 1n << BigInt(sig - 1);
}

// ------------------------------------------------------------------------------ the task

export interface Rlimit {
  cur: number;
  max: number;
}

export class Task {
  /** Thread id (the process id for a group leader). */
  readonly pid: number;
  /** Process id: the leader's tid. */
  tgid: number;
  /** The thread-group leader (itself for a leader). */
  leader: Task;
  /** Live threads of the group (on the leader; includes the leader while it runs). */
  readonly threads = new Set<Task>();
  parent: Task | undefined;
  readonly children = new Set<Task>();
  pgid: number;
  sid: number;
  hart: Hart;
  mm: AddressSpace;
  files: FdTable;
  sig: SigHandlers;
  /** Working directory (re-validated at every use, see vfs.ts). */
  cwd: DirRef = ROOT_REF;
  umask = 0o022;
  exe = "";
  comm = "";

  state = TASK_RUNNING;
  /** The syscall at pc has to be (re)dispatched before running the hart again. */
  restart = false;
  /** Event sequence seen when the task blocked (it is retried when the kernel's moves on). */
  waitSeq = 0;
  /** Monotonic ms at which a blocked task is retried regardless (Infinity: none). */
  deadline = Number.POSITIVE_INFINITY;
  /** Per-syscall state kept across retries of a blocked call; cleared when it completes. */
  blockCtx: Record<string, unknown> | undefined;
  /** The blocked call must not be restarted after a signal handler (it returns EINTR). */
  noRestart = false;
  /** The task is waiting for host console input. */
  waitsOnConsole = false;
  /** Signals do not interrupt the current wait (a vfork parent). */
  uninterruptible = false;
  /** End the current slice after this call (sched_yield). */
  yieldSlice = false;
  /** Signal sent to the parent at exit (clone's CSIGNAL bits; SIGCHLD for fork). */
  exitSignal = 17;

  blocked = 0n;
  pending = 0n;
  readonly pendingInfo = new Map<number, SigInfo>();
  /** Mask to restore after the handler of an interrupted sigsuspend/ppoll/pselect. */
  savedMask: bigint | undefined;
  altStack = { sp: 0, size: 0, flags: 2 /* SS_DISABLE */ };
  /** The stop signal that stopped it, reported once to wait4(WUNTRACED). */
  stopReport = 0;
  /** SIGCONT continued it, reported once to wait4(WCONTINUED). */
  contReport = false;

  /** wait status once a zombie. */
  exitStatus = 0;
  /** A vfork child: the parent sleeps until this one execs or exits. */
  vforkParent: Task | undefined;
  vforkDone = false;
  clearChildTid = 0;
  robustList = 0;
  /** ITIMER_REAL: next expiry (monotonic ms) and interval (ms); 0 = disarmed. */
  itimerNext = 0;
  itimerInterval = 0;
  readonly rlimits: Rlimit[];
  /** Instructions executed (user "time"). */
  instret = 0;
  childInstret = 0;
  startNs = 0n;
  /** Last fault, to stop a task that faults on the same address forever. */
  lastFaultPc = -1;
  lastFaultVa = -1;
  faultRepeat = 0;
  /** `instret` at the last page fault (a repeat without progress is a fault loop). */
  lastFaultInstret = -1;

  constructor(pid: number, hart: Hart, mm: AddressSpace, files: FdTable, sig: SigHandlers) {
    this.pid = pid;
    this.tgid = pid;
    this.leader = this;
    this.threads.add(this);
    this.pgid = pid;
    this.sid = pid;
    this.hart = hart;
    this.mm = mm;
    this.files = files;
    this.sig = sig;
    this.rlimits = [];
    for (let i = 0; i < RLIM_NLIMITS; i++) this.rlimits.push({ cur: RLIM_INFINITY, max: RLIM_INFINITY });
    this.rlimits[RLIMIT_STACK] = { cur: 8 * 1024 * 1024, max: RLIM_INFINITY };
    this.rlimits[RLIMIT_NOFILE] = { cur: MAX_FDS, max: MAX_FDS };
  }

  /** RLIMIT_NOFILE's soft limit: every new file descriptor is below it. */
  get fdLimit(): number {
    return this.rlimits[RLIMIT_NOFILE]!.cur;
  }

  get alive(): boolean {
    return this.state !== TASK_ZOMBIE;
  }

  // Syscall arguments (a0..a5 = x10..x15).
  /** Argument i as a signed 32-bit int (C int). */
  ai(i: number): number {
    return this.hart.xLo(10 + i);
  }
  /** Argument i as an unsigned 32-bit int. */
  au(i: number): number {
    return this.hart.xLo(10 + i) >>> 0;
  }
  /** Argument i as an unsigned 64-bit number (exact below 2^53; used for pointers and sizes). */
  a(i: number): number {
    return (this.hart.xHi(10 + i) >>> 0) * 4294967296 + (this.hart.xLo(10 + i) >>> 0);
  }
  /** Argument i as a signed 64-bit number (off_t, long). */
  al(i: number): number {
    return this.hart.xHi(10 + i) * 4294967296 + (this.hart.xLo(10 + i) >>> 0);
  }
  /** Argument i as a BigInt (u64). */
  ab(i: number): bigint {
    return this.hart.getX(10 + i);
  }
}
