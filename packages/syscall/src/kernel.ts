/**
 * The kernel: processes on harts, the scheduler, traps and system-call dispatch.
 *
 * Every guest process runs on its own Hart in U-mode with its own Sv39 page tables; all
 * harts share one GuestRam and one decoded-instruction cache. A trap that would enter
 * M-mode (ecall, page fault, illegal instruction ...) leaves `hart.run` as a trap exit and
 * is handled here, in TypeScript: that round trip is the "user/kernel transition" whose
 * cost docs/syscalls.md measures.
 *
 * Blocking calls are restartable: a call that cannot complete (an empty pipe, wait4 with
 * live children, a sleep) leaves the pc on its `ecall`, marks the task blocked and is
 * dispatched again when anything in the kernel changes (`notify`) or its deadline passes.
 * A signal arriving meanwhile either restarts it after the handler (SA_RESTART) or makes
 * it return EINTR, as on Linux.
 */
import {
  csr as C,
  CodeCache,
  EXIT_M,
  Hart,
  type HartDebugHook,
  isTrapExit,
  JIT_MODES,
  type JitMode,
  type JitStats,
  sumJitStats,
  type TrapExit,
} from "@visor/cpu";
import { GuestRam } from "@visor/memory";
import {
  BUS_ADRALN,
  CLD_CONTINUED,
  CLD_DUMPED,
  CLD_EXITED,
  CLD_KILLED,
  CLD_STOPPED,
  ILL_ILLOPC,
  O_RDONLY,
  O_WRONLY,
  SA_NOCLDSTOP,
  SA_NOCLDWAIT,
  SA_NODEFER,
  SA_ONSTACK,
  SA_RESETHAND,
  SA_RESTART,
  SEGV_ACCERR,
  SEGV_MAPERR,
  SI_KERNEL,
  SIG_DFL,
  SIG_IGN,
  SIGABRT,
  SIGALRM,
  SIGBUS,
  SIGCHLD,
  SIGCONT,
  SIGFPE,
  SIGILL,
  SIGKILL,
  SIGQUIT,
  SIGSEGV,
  SIGSTOP,
  SIGSYS,
  SIGTRAP,
  SIGTSTP,
  SIGTTIN,
  SIGTTOU,
  SIGURG,
  SIGWINCH,
  SIGXCPU,
  SIGXFSZ,
  SS_DISABLE,
  SS_ONSTACK,
  TRAP_BRKPT,
} from "./abi.ts";
import { EFAULT, EINTR, ENOSYS, LinuxError } from "./errno.ts";
import { ConsoleFile, type FileCtx, HostFileDesc, type OpenFile, TtyState } from "./files.ts";
import type { Host } from "./host.ts";
import {
  ACCESS_R,
  ACCESS_W,
  ACCESS_X,
  AddressSpace,
  Frames,
  MemObject,
  PAGE,
  PROT_EXEC,
  PROT_READ,
  SATP_MODE,
  USER_TOP,
  Vma,
} from "./mm.ts";
import { syscallName } from "./numbers.ts";
import { PageCache } from "./pagecache.ts";
import {
  FdTable,
  type SigHandlers,
  type SigInfo,
  sigbit,
  TASK_BLOCKED,
  TASK_DEAD,
  TASK_RUNNING,
  TASK_STOPPED,
  TASK_ZOMBIE,
  Task,
} from "./task.ts";
import { utf8Encode } from "./utf8.ts";
import { type DirRef, Resolver } from "./vfs.ts";

/** A syscall handler: returns the result (>= 0 or -errno), BLOCK or NORETURN. */
export type Syscall = (k: Kernel, t: Task) => number;
/** The call cannot complete now: the task blocks and the call is dispatched again later. */
export const BLOCK = -0x10000;
/** The handler set the registers itself (execve, rt_sigreturn, exit). */
export const NORETURN = -0x10001;

/** The page holding the signal-return trampoline, mapped in every process. */
export const SIGPAGE_VA = USER_TOP - PAGE;
/** Top of the initial stack, below the trampoline page and a guard gap. */
export const STACK_TOP = USER_TOP - 16 * PAGE;
export const STACK_SIZE = 8 * 1024 * 1024;
/** mmap allocates top-down from here (below the stack and a gap). */
export const MMAP_BASE = STACK_TOP - STACK_SIZE - 64 * 1024 * 1024;

const TWO32 = 4294967296;
/** Integer registers of the RISC-V calling convention the kernel reads. */
const REG_SP = 2;
const REG_A0 = 10;
const REG_A7 = 17;
/** mcontext layout (Linux arch/riscv/include/uapi/asm/sigcontext.h): pc and x1..x31, then the 32 FP registers, then fcsr. */
const MC_FPREGS = 256;
const MC_FCSR = 512;
/** cycle, time and instret readable from U-mode (mcounteren/scounteren bits 0..2). */
const COUNTERS_ALL = 7n;
/** mstatus.FS = Initial: the FPU is on and clean. */
const FS_INITIAL = 1 << C.MSTATUS_FS_SHIFT;

/** A 64-bit address as a signed number: exact for every canonical Sv39/Sv48 address. */
function signedVa(v: bigint): number {
  return Number(BigInt.asIntN(64, v));
}
const STOP_SIGNALS = sigbit(SIGSTOP) | sigbit(SIGTSTP) | sigbit(SIGTTIN) | sigbit(SIGTTOU);
const UNBLOCKABLE = sigbit(SIGKILL) | sigbit(SIGSTOP);
const DEFAULT_IGNORE = sigbit(SIGCHLD) | sigbit(SIGURG) | sigbit(SIGWINCH) | sigbit(SIGCONT);
const DEFAULT_CORE =
  sigbit(SIGQUIT) |
  sigbit(SIGILL) |
  sigbit(SIGTRAP) |
  sigbit(SIGABRT) |
  sigbit(SIGBUS) |
  sigbit(SIGFPE) |
  sigbit(SIGSEGV) |
  sigbit(SIGXCPU) |
  sigbit(SIGXFSZ) |
  sigbit(SIGSYS);

/** rt_sigframe layout (arch/riscv/kernel/signal.c; sizes checked with the riscv64 headers). */
export const SIGINFO_SIZE = 128;
export const UC_SIGMASK = 40;
export const UC_MCONTEXT = 176;
export const UCONTEXT_SIZE = 960;
export const SIGFRAME_SIZE = SIGINFO_SIZE + UCONTEXT_SIZE;

export interface SyscallStat {
  nr: number;
  name: string;
  count: number;
  errors: number;
  /** Total host time spent serving the call, in milliseconds. */
  ms: number;
}

export interface KernelStats {
  /** Exits from the hart to the kernel (ecalls, faults, other traps). */
  traps: number;
  syscalls: number;
  pageFaults: number;
  cowCopies: number;
  zeroFills: number;
  signals: number;
  /** Processes and threads created. */
  processes: number;
  instructions: number;
  /** Scheduler slices run. */
  slices: number;
  perSyscall: SyscallStat[];
  peakMemoryBytes: number;
  pageCacheHits: number;
  pageCacheMisses: number;
  /** The binary translator's counters summed over every hart the kernel created (Kernel.jitStats). */
  jit: JitStats;
}

export interface KernelOptions {
  host: Host;
  /** Guest RAM for all processes, in bytes (default 1 GiB). */
  memoryBytes?: number;
  /** Instructions per scheduling slice (default 200 000). */
  sliceInstructions?: number;
  /** Measure per-syscall time (count is always kept). */
  timeSyscalls?: boolean;
  /** Where "unsupported syscall" lines go (default: host stderr). */
  warn?: (line: string) => void;
  /**
   * Binary translation on every hart the kernel creates, for processes and threads alike
   * (HartOptions.jit): "off", "on" (default) or "always".
   */
  jit?: JitMode;
  /**
   * Tasks (processes and threads, zombies included) at most; fork and clone past it fail
   * with EAGAIN, as Linux's RLIMIT_NPROC does (default MAX_TASKS). Every task has a hart,
   * and a hart's state is host memory, so a fork bomb must stop somewhere.
   */
  maxTasks?: number;
}

/** Default KernelOptions.maxTasks: each task's hart holds about 350 KiB of host memory. */
export const MAX_TASKS = 4096;

/** A hart reused across processes (constructing harts registers listeners on the shared caches). */
const noBus = {
  read: () => -1,
  write: () => false,
  read64: () => undefined,
  write64: () => false,
};

/** Times one access may fault again without any progress before the task gets SIGSEGV. */
const MAX_FAULT_RETRIES = 8;

export class Kernel implements FileCtx {
  readonly host: Host;
  readonly ram: GuestRam;
  readonly frames: Frames;
  readonly code: CodeCache;
  readonly resolver: Resolver;
  readonly pageCache: PageCache;
  readonly tty = new TtyState();
  readonly tasks = new Map<number, Task>();
  /** Live tasks in scheduling order. */
  private order: Task[] = [];
  private readonly hartPool: Hart[] = [];
  /** Every hart created (live and pooled), for the translator's statistics. */
  private readonly allHarts: Hart[] = [];
  /** See debugHook and pause. */
  private hook: HartDebugHook<Hart> | undefined;
  private pauseGate: Promise<void> | undefined;
  /** The binary translation mode every hart is created with (KernelOptions.jit). */
  readonly jit: JitMode;
  /** KernelOptions.maxTasks. */
  readonly maxTasks: number;
  private nextPidValue = 100;
  private inoCounter = 1;
  eventSeq = 0;
  readonly slice: number;
  readonly timeSyscalls: boolean;
  readonly table: (Syscall | undefined)[] = new Array(512).fill(undefined);
  private readonly warned = new Set<number>();
  private readonly warn: (line: string) => void;
  readonly counts = new Float64Array(512);
  readonly errors = new Float64Array(512);
  readonly times = new Float64Array(512);
  readonly fault = { faults: 0, cowCopies: 0, zeroFills: 0 };
  traps = 0;
  signalsDelivered = 0;
  processesCreated = 0;
  instructions = 0;
  slices = 0;
  /** The shared page with the rt_sigreturn trampoline. */
  readonly sigpage: MemObject;
  init: Task | undefined;
  initStatus = -1;
  /** Monotonic time origin (ns) for times(). */
  readonly bootNs: bigint;
  /** io_uring SQPOLL rings, polled at every return from a guest (see iouring.ts). */
  readonly sqPollers = new Set<() => void>();
  /** Bumped by FUTEX_WAKE (waiters re-check on their retry). */
  futexSeq = 0;
  /** Objects that want a callback when the kernel's state changes (pending io_uring work). */
  readonly pollers = new Set<() => void>();
  private inPollers = false;

  constructor(opts: KernelOptions) {
    this.host = opts.host;
    const size = opts.memoryBytes ?? 1024 * 1024 * 1024;
    this.ram = new GuestRam(0x80000000, size);
    this.frames = new Frames(this.ram);
    this.code = new CodeCache(this.ram);
    this.resolver = new Resolver(this.host.fs);
    this.pageCache = new PageCache(this.frames, this);
    this.frames.reclaim = () => this.pageCache.trim(0);
    this.slice = opts.sliceInstructions ?? 200_000;
    this.timeSyscalls = opts.timeSyscalls ?? false;
    const jit = opts.jit ?? "on";
    if (!JIT_MODES.includes(jit))
      throw new Error(`jit: '${String(jit)}' is not one of ${JIT_MODES.join(", ")}`);
    this.jit = jit;
    this.maxTasks = opts.maxTasks ?? MAX_TASKS;
    this.warn = opts.warn ?? ((line) => this.host.console.write(2, utf8Encode(`${line}\n`)));
    this.bootNs = this.host.clock.monotonicNs();
    // The signal trampoline: li a7, 139 (rt_sigreturn); ecall.
    this.sigpage = new MemObject(this.frames, 1);
    const f = this.sigpage.page(0);
    this.ram.dv.setUint32(f, 0x08b00893, true);
    this.ram.dv.setUint32(f + 4, 0x00000073, true);
    this.ram.markDirty(f, 8);
    this.sigpage.addUser();
    const t = this.host.console.windowSize();
    if (t !== undefined) {
      this.tty.rows = t.rows;
      this.tty.cols = t.cols;
    }
  }

  // ------------------------------------------------------------------ FileCtx

  notify(): void {
    this.eventSeq++;
    if (this.pollers.size > 0 && !this.inPollers) {
      this.inPollers = true;
      try {
        for (const p of [...this.pollers]) p();
      } finally {
        this.inPollers = false;
      }
    }
  }

  nextIno(): number {
    return this.inoCounter++;
  }

  /** Host monotonic time in milliseconds (for timing and yielding, not seen by the guest). */
  hostMs(): number {
    return Number(this.host.clock.monotonicNs()) / 1e6;
  }

  nowMs(): number {
    return Number(this.host.clock.monotonicNs() - this.bootNs) / 1e6;
  }

  /**
   * The guest renamed the directory `from` to `to` (canonical guest paths): every held
   * directory at or below it (working directories, open directory descriptors) follows.
   * One the walk misses (a description in flight) only behaves as deleted: every use
   * re-validates its identity anyway (vfs.ts).
   */
  movedDir(from: string, to: string): void {
    const refs = new Set<DirRef>();
    for (const t of this.tasks.values()) {
      refs.add(t.cwd);
      for (const fd of t.files.list()) {
        const f = t.files.entry(fd)?.file;
        if (f instanceof HostFileDesc && f.dir !== undefined) refs.add(f.dir);
      }
    }
    for (const r of refs) r.moved(from, to);
  }

  nextPid(): number {
    while (this.tasks.has(this.nextPidValue)) this.nextPidValue++;
    return this.nextPidValue++;
  }

  // ------------------------------------------------------------------ harts

  /** A hart set up for user mode in `mm`, pc 0. */
  newHart(mm: AddressSpace): Hart {
    let h = this.hartPool.pop();
    if (h === undefined) {
      const clock = this.host.clock;
      const boot = this.bootNs;
      // time CSR at 10 MHz (the virt board's timebase), from the host's monotonic clock.
      h = new Hart({
        ram: this.ram,
        bus: noBus,
        codeCache: this.code,
        time: () => Number((clock.monotonicNs() - boot) / 100n),
        jit: this.jit,
      });
      this.allHarts.push(h);
    }
    // U-mode at 0 with nothing delegated: every trap is an exit to this kernel (the
    // host plays M-mode); counters readable from U; FS = Initial: the FPU is on.
    h.boot({
      pc: 0n,
      priv: C.PRV_U,
      csrs: [
        [C.CSR_MCOUNTEREN, COUNTERS_ALL],
        [C.CSR_SCOUNTEREN, COUNTERS_ALL],
        [C.CSR_MSTATUS, BigInt(FS_INITIAL)],
      ],
      exitMask: EXIT_M,
    });
    h.debugHook = this.hook;
    this.attach(h, mm);
    return h;
  }

  /** A debugger's hook (Hart.debugHook), on every hart of every task, present and future. */
  get debugHook(): HartDebugHook<Hart> | undefined {
    return this.hook;
  }
  set debugHook(hook: HartDebugHook<Hart> | undefined) {
    this.hook = hook;
    for (const h of this.allHarts) h.debugHook = hook;
  }

  /**
   * Hold every task (a debugger stopped the program): `run` runs nothing until the
   * returned function is called. Takes effect at once when called between slices (from
   * an event handler), else when the slice in progress ends.
   */
  pause(): () => void {
    let release = () => {};
    const gate = new Promise<void>((r) => {
      release = r;
    });
    this.pauseGate = gate;
    return () => {
      if (this.pauseGate === gate) this.pauseGate = undefined;
      release();
    };
  }

  /** End every process as SIGKILL would (a debugger's kill); call between slices. */
  killAll(): void {
    for (const t of [...this.order])
      if (t.state !== TASK_ZOMBIE && t.state !== TASK_DEAD) this.exitTask(t, SIGKILL);
  }

  /** Point a hart at an address space. */
  attach(h: Hart, mm: AddressSpace): void {
    mm.users.add(h);
    h.setSatp(SATP_MODE, mm.rootPpn, 0);
    h.flushTlb();
  }

  releaseHart(h: Hart, mm: AddressSpace): void {
    mm.users.delete(h);
    this.hartPool.push(h);
  }

  /** Drop a task's use of its address space; destroyed when nobody else runs in it. */
  releaseMm(t: Task): void {
    t.mm.users.delete(t.hart);
    if (t.mm.users.size === 0) t.mm.destroy();
  }

  // ------------------------------------------------------------------ processes

  addTask(t: Task): void {
    this.tasks.set(t.pid, t);
    this.order.push(t);
    this.processesCreated++;
    t.startNs = this.host.clock.monotonicNs();
  }

  /** Release what one thread holds (hart, address space, descriptors) and mark it gone. */
  private releaseThread(t: Task): void {
    // The thread may be blocked in a call: forget it.
    t.restart = false;
    t.blockCtx = undefined;
    if (t.clearChildTid !== 0) {
      try {
        t.mm.writeU32(t.clearChildTid, 0);
      } catch {
        // the address may be gone; Linux ignores the failure too
      }
      this.futexWake(t.mm, t.clearChildTid, 1);
      t.clearChildTid = 0;
    }
    if (--t.files.users === 0) t.files.closeAll(this);
    if (--t.sig.users < 0) t.sig.users = 0;
    this.releaseMm(t);
    this.hartPool.push(t.hart);
    this.instructions += t.instret;
    t.leader.threads.delete(t);
    t.state = TASK_DEAD;
    if (t.vforkParent !== undefined) this.vforkRelease(t);
  }

  /** exit(2) of one thread: the process ends with its last thread. */
  exitThread(t: Task, status: number): void {
    const leader = t.leader;
    if (leader.threads.size <= 1) {
      this.exitTask(t, status);
      return;
    }
    this.releaseThread(t);
    if (t !== leader) {
      t.state = TASK_ZOMBIE;
      this.tasks.delete(t.pid);
    }
    this.notify();
  }

  /**
   * Terminate a whole process (every thread) with a wait status (exit: code << 8; killed:
   * signal number).
   */
  exitTask(t: Task, status: number): void {
    const p0 = t.leader;
    if (p0.state === TASK_ZOMBIE) return;
    for (const th of [...p0.threads]) {
      if (th === p0) continue;
      this.releaseThread(th);
      th.state = TASK_ZOMBIE;
      this.tasks.delete(th.pid);
    }
    if (p0.threads.has(p0)) this.releaseThread(p0);
    t = p0;
    t.itimerNext = 0;
    t.state = TASK_ZOMBIE;
    t.exitStatus = status;
    for (const c of t.children) {
      c.parent = undefined;
      if (c.state === TASK_ZOMBIE) this.reap(c);
    }
    t.children.clear();
    if (t === this.init) this.initStatus = status;
    const p = t.parent;
    if (p === undefined || p.state === TASK_ZOMBIE) {
      this.reap(t);
    } else {
      const act = p.sig.actions[SIGCHLD]!;
      const killed = (status & 0x7f) !== 0;
      if (t.exitSignal !== 0)
        this.signalProcess(p, t.exitSignal, {
          signo: t.exitSignal,
          code: killed ? ((status & 0x80) !== 0 ? CLD_DUMPED : CLD_KILLED) : CLD_EXITED,
          pid: t.pid,
          uid: this.host.identity.uid,
          status: killed ? status & 0x7f : (status >> 8) & 0xff,
          addr: 0,
        });
      if (act.handler === SIG_IGN || (act.flags & SA_NOCLDWAIT) !== 0) this.reap(t);
    }
    this.notify();
  }

  /**
   * A process-directed signal: delivered to a thread of the group that does not block it
   * (the leader first), or queued on the first live thread.
   */
  signalProcess(p: Task, sig: number, info: SigInfo): void {
    const leader = p.leader;
    const bit = sigbit(sig);
    let target: Task | undefined;
    for (const th of leader.threads) {
      target ??= th;
      if ((th.blocked & bit) === 0n) {
        target = th;
        break;
      }
    }
    if (target !== undefined) this.sendSignal(target, sig, info);
  }

  /**
   * execve in a multithreaded process: every other thread ends, and the calling thread
   * becomes the process (it takes over the leader's identity). Returns the task that
   * continues, the leader.
   */
  deThread(t: Task): Task {
    const leader = t.leader;
    for (const th of [...leader.threads]) {
      if (th === t || th === leader) continue;
      this.releaseThread(th);
      th.state = TASK_ZOMBIE;
      this.tasks.delete(th.pid);
    }
    if (t === leader) return t;
    if (leader.threads.has(leader)) this.releaseThread(leader);
    leader.hart = t.hart;
    leader.mm = t.mm;
    leader.files = t.files;
    leader.sig = t.sig;
    leader.blocked = t.blocked;
    leader.pending |= t.pending;
    for (const [k, v] of t.pendingInfo) if (!leader.pendingInfo.has(k)) leader.pendingInfo.set(k, v);
    leader.cwd = t.cwd;
    leader.umask = t.umask;
    leader.altStack = t.altStack;
    leader.instret = t.instret; // the leader's own count was accounted when its thread ended
    leader.state = TASK_RUNNING;
    leader.restart = false;
    leader.threads.clear();
    leader.threads.add(leader);
    t.threads.clear();
    t.state = TASK_ZOMBIE;
    this.tasks.delete(t.pid);
    if (!this.order.includes(leader)) this.order.push(leader);
    return leader;
  }

  /** Remove a zombie for good. */
  reap(t: Task): void {
    t.parent?.children.delete(t);
    if (t.parent !== undefined) t.parent.childInstret += t.instret + t.childInstret;
    t.parent = undefined;
    this.tasks.delete(t.pid);
  }

  vforkRelease(child: Task): void {
    const p = child.vforkParent;
    child.vforkParent = undefined;
    if (p === undefined) return;
    child.vforkDone = true;
    this.notify();
  }

  /** Wake tasks waiting on a futex word (no threads: only vfork parents and CLEARTID users care). */
  futexWake(_mm: AddressSpace, _addr: number, _n: number): number {
    this.futexSeq++;
    this.notify();
    return 0;
  }

  // ------------------------------------------------------------------ signals

  sigAction(t: Task, sig: number) {
    return t.sig.actions[sig]!;
  }

  /** Queue a signal to a process. */
  sendSignal(t: Task, sig: number, info: SigInfo): void {
    if (t.state === TASK_ZOMBIE || t.state === TASK_DEAD || sig <= 0 || sig > 64) return;
    const bit = sigbit(sig);
    if (sig === SIGCONT || sig === SIGKILL) {
      t.pending &= ~STOP_SIGNALS;
      if (t.state === TASK_STOPPED) {
        for (const th of t.leader.threads) {
          if (th.state !== TASK_STOPPED) continue;
          th.state = th.restart ? TASK_BLOCKED : TASK_RUNNING;
          th.waitSeq = -1;
        }
        t.state = t.restart ? TASK_BLOCKED : TASK_RUNNING;
        t.waitSeq = -1;
        t.leader.contReport = true;
        t.leader.stopReport = 0;
        const p = t.parent;
        if (p !== undefined && (p.sig.actions[SIGCHLD]!.flags & SA_NOCLDSTOP) === 0) {
          this.sendSignal(p, SIGCHLD, {
            signo: SIGCHLD,
            code: CLD_CONTINUED,
            pid: t.pid,
            uid: 0,
            status: SIGCONT,
            addr: 0,
          });
        }
      }
    } else if ((bit & STOP_SIGNALS) !== 0n) {
      t.pending &= ~sigbit(SIGCONT);
    }
    const act = t.sig.actions[sig]!;
    const ignored = act.handler === SIG_IGN || (act.handler === SIG_DFL && (bit & DEFAULT_IGNORE) !== 0n);
    if (ignored && (t.blocked & bit) === 0n && sig !== SIGKILL) return;
    t.pending |= bit;
    if (!t.pendingInfo.has(sig)) t.pendingInfo.set(sig, info);
    this.notify();
  }

  /** A signal that would do something now (run a handler, stop or kill), or 0. */
  deliverable(t: Task): number {
    const ready = t.pending & ~(t.blocked & ~UNBLOCKABLE);
    if (ready === 0n) return 0;
    for (let sig = 1; sig <= 64; sig++) {
      if ((ready & sigbit(sig)) !== 0n) return sig;
    }
    return 0;
  }

  /** Synchronous fault signals: unblocked and un-ignored, as Linux's force_sig does. */
  forceSignal(t: Task, sig: number, code: number, addr: number): void {
    const act = t.sig.actions[sig]!;
    const bit = sigbit(sig);
    if (act.handler === SIG_IGN || (t.blocked & bit) !== 0n) {
      act.handler = SIG_DFL;
      t.blocked &= ~bit;
    }
    t.pending |= bit;
    t.pendingInfo.set(sig, { signo: sig, code, pid: 0, uid: 0, status: 0, addr });
  }

  /**
   * Deliver pending signals at the return to user mode: run the default action or set up
   * a handler frame. An interrupted blocking call is completed first (EINTR or restart).
   */
  deliverSignals(t: Task): void {
    for (;;) {
      if (t.state === TASK_ZOMBIE) return;
      const sig = this.deliverable(t);
      if (sig === 0) return;
      const bit = sigbit(sig);
      t.pending &= ~bit;
      const info = t.pendingInfo.get(sig) ?? {
        signo: sig,
        code: SI_KERNEL,
        pid: 0,
        uid: 0,
        status: 0,
        addr: 0,
      };
      t.pendingInfo.delete(sig);
      const act = t.sig.actions[sig]!;
      if (sig !== SIGKILL && sig !== SIGSTOP && act.handler === SIG_IGN) continue;
      if (sig === SIGKILL || sig === SIGSTOP || act.handler === SIG_DFL) {
        if ((bit & DEFAULT_IGNORE) !== 0n) continue;
        if ((bit & STOP_SIGNALS) !== 0n) {
          this.stopTask(t, sig);
          return;
        }
        this.signalsDelivered++;
        this.exitTask(t, sig | ((bit & DEFAULT_CORE) !== 0n && t.rlimits[4]!.cur !== 0 ? 0x80 : 0));
        return;
      }
      // A handler: finish an interrupted blocking call first.
      if (t.restart) {
        const hook = t.blockCtx?.onInterrupt;
        t.restart = false;
        t.state = TASK_RUNNING;
        if (typeof hook === "function") hook();
        t.blockCtx = undefined;
        t.waitsOnConsole = false;
        t.deadline = Number.POSITIVE_INFINITY;
        if ((act.flags & SA_RESTART) === 0 || t.noRestart) {
          this.setResult(t, -EINTR);
          t.hart.advancePc(4);
        }
        t.noRestart = false;
      }
      this.signalsDelivered++;
      if (!this.setupFrame(t, sig, act, info)) {
        this.forceSignal(t, SIGSEGV, SI_KERNEL, 0);
        continue;
      }
      return;
    }
  }

  private stopTask(t: Task, sig: number): void {
    // A stop signal stops the whole process.
    for (const th of t.leader.threads) {
      if (th.state === TASK_RUNNING || th.state === TASK_BLOCKED) th.state = TASK_STOPPED;
    }
    t.state = TASK_STOPPED;
    t = t.leader;
    t.stopReport = sig;
    const p = t.parent;
    if (p !== undefined && (p.sig.actions[SIGCHLD]!.flags & SA_NOCLDSTOP) === 0) {
      this.signalProcess(p, SIGCHLD, {
        signo: SIGCHLD,
        code: CLD_STOPPED,
        pid: t.pid,
        uid: 0,
        status: sig,
        addr: 0,
      });
    }
    this.notify();
  }

  /** Write siginfo (generic layout) into `dv` at `o`. */
  static writeSiginfo(dv: DataView, o: number, info: SigInfo): void {
    dv.setInt32(o, info.signo, true);
    dv.setInt32(o + 4, 0, true);
    dv.setInt32(o + 8, info.code, true);
    if (
      info.signo === SIGSEGV ||
      info.signo === SIGBUS ||
      info.signo === SIGILL ||
      info.signo === SIGFPE ||
      info.signo === SIGTRAP
    ) {
      dv.setUint32(o + 16, (info.addr % TWO32) >>> 0, true);
      dv.setUint32(o + 20, Math.floor(info.addr / TWO32), true);
    } else {
      dv.setInt32(o + 16, info.pid, true);
      dv.setInt32(o + 20, info.uid, true);
      if (info.signo === SIGCHLD) dv.setInt32(o + 24, info.status, true);
    }
  }

  /** Build the rt_sigframe on the user stack and enter the handler. */
  private setupFrame(
    t: Task,
    sig: number,
    act: { handler: number; flags: number; mask: bigint },
    info: SigInfo,
  ): boolean {
    const h = t.hart;
    let sp = h.xHi(REG_SP) * TWO32 + (h.xLo(REG_SP) >>> 0);
    const alt = t.altStack;
    const onAlt = alt.size > 0 && sp > alt.sp && sp <= alt.sp + alt.size;
    if ((act.flags & SA_ONSTACK) !== 0 && (alt.flags & SS_DISABLE) === 0 && !onAlt) sp = alt.sp + alt.size;
    const frame = Math.floor((sp - SIGFRAME_SIZE) / 16) * 16;
    const buf = new Uint8Array(SIGFRAME_SIZE);
    const dv = new DataView(buf.buffer);
    Kernel.writeSiginfo(dv, 0, info);
    const uc = SIGINFO_SIZE;
    // uc_flags, uc_link = 0; uc_stack
    dv.setUint32(uc + 16, (alt.sp % TWO32) >>> 0, true);
    dv.setUint32(uc + 20, Math.floor(alt.sp / TWO32), true);
    dv.setInt32(uc + 24, onAlt ? SS_ONSTACK : alt.flags & SS_DISABLE, true);
    dv.setUint32(uc + 32, (alt.size % TWO32) >>> 0, true);
    const mask = t.savedMask ?? t.blocked;
    dv.setBigUint64(uc + UC_SIGMASK, mask, true);
    const mc = uc + UC_MCONTEXT;
    dv.setBigUint64(mc, h.pc, true);
    for (let i = 1; i < 32; i++) {
      dv.setInt32(mc + 8 * i, h.xLo(i), true);
      dv.setInt32(mc + 8 * i + 4, h.xHi(i), true);
    }
    for (let i = 0; i < 32; i++) dv.setBigUint64(mc + MC_FPREGS + 8 * i, h.getF(i), true);
    dv.setUint32(mc + MC_FCSR, Number(h.getCsr(C.CSR_FCSR)), true);
    try {
      t.mm.copyOut(frame, buf);
    } catch (e) {
      if (e instanceof LinuxError && e.errno === EFAULT) return false;
      throw e;
    }
    h.pc = BigInt(act.handler);
    h.setX(10, BigInt(sig));
    h.setX(11, BigInt(frame));
    h.setX(12, BigInt(frame + SIGINFO_SIZE));
    h.setX(2, BigInt(frame));
    h.setX(1, BigInt(SIGPAGE_VA));
    t.blocked = (mask | act.mask | ((act.flags & SA_NODEFER) !== 0 ? 0n : sigbit(sig))) & ~UNBLOCKABLE;
    t.savedMask = undefined;
    if ((act.flags & SA_RESETHAND) !== 0) {
      act.handler = SIG_DFL;
      act.flags &= ~SA_RESETHAND;
    }
    return true;
  }

  /** rt_sigreturn: restore the context saved by setupFrame. */
  sigreturn(t: Task): number {
    const h = t.hart;
    const frame = h.xHi(REG_SP) * TWO32 + (h.xLo(REG_SP) >>> 0);
    let buf: Uint8Array;
    try {
      buf = t.mm.copyIn(frame + SIGINFO_SIZE, UCONTEXT_SIZE);
    } catch {
      this.forceSignal(t, SIGSEGV, SI_KERNEL, 0);
      return NORETURN;
    }
    const dv = new DataView(buf.buffer);
    t.blocked = dv.getBigUint64(UC_SIGMASK, true) & ~UNBLOCKABLE;
    const mc = UC_MCONTEXT;
    h.pc = dv.getBigUint64(mc, true);
    for (let i = 1; i < 32; i++)
      h.setXPair(i, dv.getInt32(mc + 8 * i, true), dv.getInt32(mc + 8 * i + 4, true));
    for (let i = 0; i < 32; i++) h.setF(i, dv.getBigUint64(mc + MC_FPREGS + 8 * i, true));
    h.setCsr(C.CSR_FCSR, BigInt(dv.getUint32(mc + MC_FCSR, true)));
    return NORETURN;
  }

  // ------------------------------------------------------------------ traps and syscalls

  setResult(t: Task, r: number): void {
    const h = t.hart;
    if (r >= -2147483648 && r <= 2147483647) {
      h.setXPair(REG_A0, r, r < 0 ? -1 : 0);
    } else {
      const hi = Math.floor(r / TWO32);
      h.setXPair(REG_A0, r - hi * TWO32, hi);
    }
  }

  /** Mark the current call blocked; the caller returns BLOCK. */
  block(t: Task, deadline = Number.POSITIVE_INFINITY, noRestart = false): number {
    t.state = TASK_BLOCKED;
    t.restart = true;
    t.waitSeq = this.eventSeq;
    t.deadline = deadline;
    t.noRestart = noRestart;
    return BLOCK;
  }

  /** Serve the ecall at the task's pc. */
  syscall(t: Task): void {
    const h = t.hart;
    const nr = h.xHi(REG_A7) === 0 ? h.xLo(REG_A7) : -1;
    const fn = nr >= 0 && nr < 512 ? this.table[nr] : undefined;
    const t0 = this.timeSyscalls ? this.hostMs() : 0;
    let r: number;
    t.restart = false;
    t.state = TASK_RUNNING;
    if (fn === undefined) {
      r = -ENOSYS;
      if (!this.warned.has(nr)) {
        this.warned.add(nr);
        this.warn(`visor: unsupported syscall ${syscallName(nr)} (${nr}), returning -ENOSYS`);
      }
    } else {
      try {
        r = fn(this, t);
      } catch (e) {
        if (e instanceof LinuxError) r = -e.errno;
        else throw e;
      }
    }
    const k = nr >= 0 && nr < 512 ? nr : 511;
    if (this.timeSyscalls) this.times[k]! += this.hostMs() - t0;
    if (r === BLOCK) return;
    t.blockCtx = undefined;
    t.waitsOnConsole = false;
    t.uninterruptible = false;
    t.deadline = Number.POSITIVE_INFINITY;
    t.noRestart = false;
    this.counts[k]!++;
    if (r === NORETURN) return;
    if (r < 0 && r >= -4095) this.errors[k]!++;
    this.setResult(t, r);
    h.advancePc(4);
  }

  /** Handle a trap exit from the task's hart. */
  trap(t: Task, e: TrapExit): void {
    const h = t.hart;
    switch (e.kind) {
      case "ecall":
        this.syscall(t);
        return;
      case "page-fault": {
        const va = signedVa(e.addr);
        const access = e.access === "fetch" ? ACCESS_X : e.access === "load" ? ACCESS_R : ACCESS_W;
        if (t.mm.fault(va, access)) {
          // Guard against a fault the kernel "fixes" without effect (would loop forever):
          // the same access faulting again with no instruction retired in between. The
          // same store re-faulting after the guest made progress is a fault really fixed
          // each time (a copy-on-write stack page after every fork) and restarts the count.
          const pc = signedVa(h.pc);
          if (pc === t.lastFaultPc && va === t.lastFaultVa && t.instret === t.lastFaultInstret) {
            if (++t.faultRepeat > MAX_FAULT_RETRIES) this.forceSignal(t, SIGSEGV, SEGV_ACCERR, va);
          } else {
            t.lastFaultPc = pc;
            t.lastFaultVa = va;
            t.faultRepeat = 0;
          }
          t.lastFaultInstret = t.instret;
          return;
        }
        this.forceSignal(t, SIGSEGV, t.mm.find(va) === undefined ? SEGV_MAPERR : SEGV_ACCERR, va);
        return;
      }
      case "misaligned":
        this.forceSignal(t, SIGBUS, BUS_ADRALN, signedVa(e.addr));
        return;
      case "access-fault":
        this.forceSignal(t, SIGSEGV, SEGV_ACCERR, signedVa(e.addr));
        return;
      case "illegal-instruction":
        this.forceSignal(t, SIGILL, ILL_ILLOPC, signedVa(h.pc));
        return;
      case "breakpoint":
        this.forceSignal(t, SIGTRAP, TRAP_BRKPT, signedVa(h.pc));
        return;
      default:
        this.forceSignal(t, SIGSEGV, SI_KERNEL, signedVa(e.tval));
    }
  }

  /** Run one scheduling slice of a task. */
  private runSlice(t: Task): void {
    const h = t.hart;
    let budget = this.slice;
    this.slices++;
    while (t.state === TASK_RUNNING) {
      if (t.restart) {
        this.syscall(t);
      } else {
        const before = h.instret();
        const stop = h.run(budget);
        const ran = h.instret() - before;
        t.instret += ran;
        budget -= ran;
        if (this.sqPollers.size > 0) for (const p of this.sqPollers) p();
        if (isTrapExit(stop)) {
          this.traps++;
          this.trap(t, stop);
        } else if (budget <= 0 || stop.kind === "stop") {
          // (a stop: a debugger holds the task, see pause)
          break;
        }
      }
      const st = t.state as number;
      if (t.pending !== 0n && st !== TASK_ZOMBIE) {
        if (st === TASK_BLOCKED && !t.uninterruptible && this.deliverable(t) !== 0) t.state = TASK_RUNNING;
        if ((t.state as number) === TASK_RUNNING) this.deliverSignals(t);
      }
      if (budget <= 0 || t.yieldSlice) {
        t.yieldSlice = false;
        break;
      }
    }
  }

  private wakeable(t: Task, now: number): boolean {
    if (t.waitSeq !== this.eventSeq) return true;
    if (now >= t.deadline) return true;
    if (t.waitsOnConsole && this.host.console.hasInput()) return true;
    if (t.pending !== 0n && !t.uninterruptible && this.deliverable(t) !== 0) return true;
    return false;
  }

  private checkTimers(now: number): void {
    for (const t of this.tasks.values()) {
      if (t !== t.leader || t.threads.size === 0) continue;
      if (t.itimerNext !== 0 && now >= t.itimerNext) {
        t.itimerNext = t.itimerInterval > 0 ? now + t.itimerInterval : 0;
        this.signalProcess(t, SIGALRM, {
          signo: SIGALRM,
          code: SI_KERNEL,
          pid: 0,
          uid: 0,
          status: 0,
          addr: 0,
        });
      }
    }
  }

  private hostSignals(): void {
    for (const sig of this.host.takeSignals()) this.ttySignal(sig);
  }

  /** A terminal signal: to the foreground process group (the first process's group by default). */
  ttySignal(sig: number): void {
    const pg = this.tty.fgPgrp !== 0 ? this.tty.fgPgrp : (this.init?.pgid ?? 0);
    const info = { signo: sig, code: SI_KERNEL, pid: 0, uid: 0, status: 0, addr: 0 };
    let any = false;
    for (const t of this.tasks.values()) {
      if (t === t.leader && t.pgid === pg && t.threads.size > 0) {
        this.signalProcess(t, sig, info);
        any = true;
      }
    }
    if (!any && this.init !== undefined && this.init.threads.size > 0)
      this.signalProcess(this.init, sig, info);
  }

  /**
   * Run until every process has exited. Resolves with the first process's wait status.
   */
  async run(): Promise<number> {
    let lastYield = this.hostMs();
    for (;;) {
      if (this.pauseGate !== undefined) {
        await this.pauseGate;
        lastYield = this.hostMs();
        continue;
      }
      this.hostSignals();
      const now = this.nowMs();
      this.checkTimers(now);
      let ran = false;
      for (let i = 0; i < this.order.length; i++) {
        const t = this.order[i]!;
        if (t.state === TASK_BLOCKED && this.wakeable(t, now)) {
          t.state = TASK_RUNNING;
          if (t.pending !== 0n && !t.uninterruptible && this.deliverable(t) !== 0) {
            this.deliverSignals(t);
            if (t.state !== TASK_RUNNING) continue;
          }
        }
        if (t.state === TASK_RUNNING) {
          this.runSlice(t);
          ran = true;
        }
      }
      if (this.order.some((t) => t.state === TASK_ZOMBIE || t.state === TASK_DEAD))
        this.order = this.order.filter((t) => t.state !== TASK_ZOMBIE && t.state !== TASK_DEAD);
      if (this.order.length === 0) break;
      const initDone = this.init === undefined || this.init.state === TASK_ZOMBIE;
      if (!ran) {
        let next = Number.POSITIVE_INFINITY;
        let consoleWait = false;
        for (const t of this.order) {
          if (t.state === TASK_BLOCKED) {
            next = Math.min(next, t.deadline);
            consoleWait ||= t.waitsOnConsole;
          }
          if (t.leader.itimerNext !== 0) next = Math.min(next, t.leader.itimerNext);
        }
        if (next === Number.POSITIVE_INFINITY && (!consoleWait || initDone)) {
          // Nothing can ever wake these processes (a deadlock, or orphans waiting on the
          // console after the first process exited): end them as a hangup would.
          if (!initDone) this.warn("visor: every guest process is blocked forever (deadlock); stopping");
          for (const t of [...this.order]) this.exitTask(t, SIGKILL);
          continue;
        }
        const wait = Math.max(0, next - this.nowMs());
        await this.host.wait(Math.min(wait, 1000));
        lastYield = this.hostMs();
      } else if (this.hostMs() - lastYield > 15) {
        await this.host.wait(0);
        lastYield = this.hostMs();
      }
    }
    return this.initStatus;
  }

  // ------------------------------------------------------------------ statistics

  /** Every hart created so far, live or pooled (a hart is reused after its task exits). */
  get harts(): readonly Hart[] {
    return this.allHarts;
  }

  /**
   * The binary translator's counters (Hart.jitStats) summed over every hart created; the
   * mode and the reason translation is unavailable are the first hart's (all are created
   * with the same mode), or the requested mode before any hart exists.
   */
  jitStats(): JitStats {
    return sumJitStats(this.allHarts, this.jit);
  }

  stats(): KernelStats {
    const per: SyscallStat[] = [];
    for (let i = 0; i < 512; i++) {
      if (this.counts[i]! > 0) {
        per.push({
          nr: i,
          name: syscallName(i),
          count: this.counts[i]!,
          errors: this.errors[i]!,
          ms: this.times[i]!,
        });
      }
    }
    per.sort((a, b) => b.count - a.count);
    let live = 0;
    for (const t of this.order) if (t.state !== TASK_ZOMBIE && t.state !== TASK_DEAD) live += t.instret;
    return {
      traps: this.traps,
      syscalls: per.reduce((a, s) => a + s.count, 0),
      pageFaults: this.fault.faults,
      cowCopies: this.fault.cowCopies,
      zeroFills: this.fault.zeroFills,
      signals: this.signalsDelivered,
      processes: this.processesCreated,
      instructions: this.instructions + live,
      slices: this.slices,
      perSyscall: per,
      peakMemoryBytes: this.frames.peak * PAGE,
      pageCacheHits: this.pageCache.hits,
      pageCacheMisses: this.pageCache.misses,
      jit: this.jitStats(),
    };
  }

  // ------------------------------------------------------------------ setup helpers

  /** Standard descriptors 0, 1, 2 on the host console. */
  consoleFiles(): FdTable {
    const fds = new FdTable();
    const c = this.host.console;
    const mk = (fd: 0 | 1 | 2, flags: number) =>
      new ConsoleFile(
        fd,
        flags,
        this.tty,
        this.nextIno(),
        fd === 0 ? "/dev/stdin" : fd === 1 ? "/dev/stdout" : "/dev/stderr",
        c.isatty(fd),
      );
    fds.alloc(mk(0, O_RDONLY), false);
    fds.alloc(mk(1, O_WRONLY), false);
    fds.alloc(mk(2, O_WRONLY), false);
    return fds;
  }

  /** A new address space with the trampoline page and the layout constants set. */
  newMm(): AddressSpace {
    const mm = new AddressSpace(this.frames, this.fault);
    mm.mmapBase = MMAP_BASE;
    this.sigpage.addUser();
    mm.insert(
      new Vma(SIGPAGE_VA, SIGPAGE_VA + PAGE, PROT_READ | PROT_EXEC, true, this.sigpage, 0, "[sigpage]"),
    );
    return mm;
  }

  newTask(mm: AddressSpace, files: FdTable, sig: SigHandlers): Task {
    const pid = this.nextPid();
    const t = new Task(pid, this.newHart(mm), mm, files, sig);
    return t;
  }

  openFileOf(t: Task, fd: number): OpenFile {
    return t.files.get(fd);
  }
}
