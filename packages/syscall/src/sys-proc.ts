/**
 * Processes, signals, identity, time and system information.
 */
import {
  __WALL,
  __WCLONE,
  CLD_CONTINUED,
  CLD_DUMPED,
  CLD_EXITED,
  CLD_KILLED,
  CLD_STOPPED,
  CLOCK_BOOTTIME,
  CLOCK_MONOTONIC,
  CLOCK_MONOTONIC_COARSE,
  CLOCK_MONOTONIC_RAW,
  CLOCK_PROCESS_CPUTIME_ID,
  CLOCK_REALTIME,
  CLOCK_REALTIME_COARSE,
  CLOCK_THREAD_CPUTIME_ID,
  CLONE_CHILD_CLEARTID,
  CLONE_CHILD_SETTID,
  CLONE_DETACHED,
  CLONE_FILES,
  CLONE_FS,
  CLONE_PARENT_SETTID,
  CLONE_SETTLS,
  CLONE_SIGHAND,
  CLONE_SYSVSEM,
  CLONE_THREAD,
  CLONE_VFORK,
  CLONE_VM,
  CSIGNAL,
  FUTEX_WAIT,
  FUTEX_WAIT_BITSET,
  FUTEX_WAKE,
  FUTEX_WAKE_BITSET,
  GRND_INSECURE,
  GRND_NONBLOCK,
  GRND_RANDOM,
  ITIMER_REAL,
  MINSIGSTKSZ,
  P_ALL,
  P_PGID,
  P_PID,
  PR_GET_NAME,
  PR_GET_NO_NEW_PRIVS,
  PR_GET_PDEATHSIG,
  PR_SET_CHILD_SUBREAPER,
  PR_SET_NAME,
  PR_SET_NO_NEW_PRIVS,
  PR_SET_PDEATHSIG,
  RLIM_NLIMITS,
  RUSAGE_CHILDREN,
  RUSAGE_SELF,
  SI_TKILL,
  SI_USER,
  SIG_BLOCK,
  SIG_DFL,
  SIG_IGN,
  SIG_SETMASK,
  SIG_UNBLOCK,
  SIGCHLD,
  SIGKILL,
  SIGSTOP,
  SS_DISABLE,
  SS_ONSTACK,
  TIMER_ABSTIME,
  WCONTINUED,
  WEXITED,
  WNOHANG,
  WNOWAIT,
  WSTOPPED,
  WUNTRACED,
} from "./abi.ts";
import {
  E2BIG,
  EAGAIN,
  ECHILD,
  EINVAL,
  ENOMEM,
  ENOSYS,
  EPERM,
  ESRCH,
  ETIMEDOUT,
  LinuxError,
} from "./errno.ts";
import { buildImage, installImage } from "./exec.ts";
import { type Kernel, NORETURN, type Syscall } from "./kernel.ts";
import { NR } from "./numbers.ts";
import { resolveCtx } from "./sys-fs.ts";
import { sigbit, TASK_DEAD, TASK_STOPPED, TASK_ZOMBIE, Task } from "./task.ts";
import { decodeTimespec, encodeTimespec, getI64, setI64, setU64 } from "./uapi.ts";
import { utf8Encode } from "./utf8.ts";

const UNBLOCKABLE = sigbit(SIGKILL) | sigbit(SIGSTOP);
const TWO32 = 4294967296;
/** Nominal speed used to turn instructions retired into CPU time (times, getrusage, CPUTIME clocks). */
const NS_PER_INSN = 10n;

// ------------------------------------------------------------------------------ clone / exec / exit

const FORK_FLAGS =
  CSIGNAL | CLONE_CHILD_SETTID | CLONE_CHILD_CLEARTID | CLONE_PARENT_SETTID | CLONE_SETTLS | CLONE_DETACHED;
/** What glibc's pthread_create passes, and the other flags a thread may carry. */
const THREAD_FLAGS =
  CLONE_VM |
  CLONE_FS |
  CLONE_FILES |
  CLONE_SIGHAND |
  CLONE_THREAD |
  CLONE_SYSVSEM |
  CLONE_SETTLS |
  CLONE_PARENT_SETTID |
  CLONE_CHILD_CLEARTID |
  CLONE_CHILD_SETTID |
  CLONE_DETACHED;

function doClone(
  k: Kernel,
  t: Task,
  flags: number,
  newsp: number,
  ptid: number,
  tls: number,
  ctid: number,
): number {
  if (k.tasks.size >= k.maxTasks) return -EAGAIN; // processes and threads alike (a fork bomb)
  if ((flags & CLONE_THREAD) !== 0) return doThread(k, t, flags, newsp, ptid, tls, ctid);
  const vfork = (flags & (CLONE_VM | CLONE_VFORK)) === (CLONE_VM | CLONE_VFORK);
  const allowed =
    FORK_FLAGS | (vfork ? CLONE_VM | CLONE_VFORK | CLONE_FS | CLONE_FILES | CLONE_SIGHAND : CLONE_FS);
  if ((flags & ~allowed) !== 0) return -EINVAL;
  if ((flags & CLONE_SIGHAND) !== 0 && (flags & CLONE_VM) === 0) return -EINVAL;
  const mm = vfork ? t.mm : t.mm.fork();
  const files = (flags & CLONE_FILES) !== 0 ? t.files : t.files.fork();
  if ((flags & CLONE_FILES) !== 0) files.users++;
  let sig = t.sig;
  if ((flags & CLONE_SIGHAND) !== 0) sig.users++;
  else sig = sig.clone();
  const pid = k.nextPid();
  const c = new Task(pid, k.newHart(mm), mm, files, sig);
  startChildHart(c, t, flags, newsp, tls);
  // The children of a process belong to the process, whichever thread forked them.
  c.parent = t.leader;
  t.leader.children.add(c);
  c.pgid = t.pgid;
  c.sid = t.sid;
  c.cwd = t.cwd;
  c.umask = t.umask;
  c.exe = t.exe;
  c.comm = t.comm;
  c.blocked = t.blocked;
  c.altStack = { ...t.altStack };
  c.exitSignal = flags & CSIGNAL;
  for (let i = 0; i < RLIM_NLIMITS; i++) c.rlimits[i] = { ...t.rlimits[i]! };
  if ((flags & CLONE_PARENT_SETTID) !== 0) t.mm.writeI32(ptid, pid);
  if ((flags & CLONE_CHILD_SETTID) !== 0) c.mm.writeI32(ctid, pid);
  if ((flags & CLONE_CHILD_CLEARTID) !== 0) c.clearChildTid = ctid;
  k.addTask(c);
  if (vfork) c.vforkParent = t;
  return pid;
}

/**
 * The new task's hart continues from the caller's: the same registers, returning 0 from
 * the clone `ecall`, on `newsp` if given and with the TLS pointer CLONE_SETTLS asks for.
 */
function startChildHart(c: Task, t: Task, flags: number, newsp: number, tls: number): void {
  const h = c.hart;
  const ph = t.hart;
  h.copyRegistersFrom(ph);
  h.advancePc(4);
  h.setXPair(10, 0, 0);
  if (newsp !== 0) h.setX(2, BigInt(newsp));
  if ((flags & CLONE_SETTLS) !== 0) h.setX(4, BigInt(tls));
}

/** A thread: same address space, descriptors and handlers, in the caller's thread group. */
function doThread(
  k: Kernel,
  t: Task,
  flags: number,
  newsp: number,
  ptid: number,
  tls: number,
  ctid: number,
): number {
  const need = CLONE_VM | CLONE_SIGHAND | CLONE_THREAD;
  if ((flags & need) !== need || (flags & ~THREAD_FLAGS) !== 0 || (flags & CSIGNAL) !== 0) return -EINVAL;
  const tid = k.nextPid();
  const files = (flags & CLONE_FILES) !== 0 ? t.files : t.files.fork();
  if ((flags & CLONE_FILES) !== 0) files.users++;
  t.sig.users++;
  const c = new Task(tid, k.newHart(t.mm), t.mm, files, t.sig);
  startChildHart(c, t, flags, newsp, tls);
  const leader = t.leader;
  c.leader = leader;
  c.tgid = leader.tgid;
  c.threads.clear();
  leader.threads.add(c);
  c.exitSignal = 0;
  c.pgid = t.pgid;
  c.sid = t.sid;
  c.cwd = t.cwd;
  c.umask = t.umask;
  c.exe = t.exe;
  c.comm = t.comm;
  c.blocked = t.blocked;
  for (let i = 0; i < RLIM_NLIMITS; i++) c.rlimits[i] = { ...t.rlimits[i]! };
  if ((flags & CLONE_PARENT_SETTID) !== 0) t.mm.writeI32(ptid, tid);
  if ((flags & CLONE_CHILD_SETTID) !== 0) t.mm.writeI32(ctid, tid);
  if ((flags & CLONE_CHILD_CLEARTID) !== 0) c.clearChildTid = ctid;
  k.addTask(c);
  return tid;
}

const sys_clone: Syscall = (k, t) => {
  const ctx = t.blockCtx as { vforkChild?: Task } | undefined;
  if (ctx?.vforkChild !== undefined) {
    // A vfork parent sleeps until the child execs or exits.
    const c = ctx.vforkChild;
    if (c.vforkDone || c.state === TASK_ZOMBIE) return c.pid;
    t.uninterruptible = true;
    return k.block(t);
  }
  const flags = t.au(0);
  const pid = doClone(k, t, flags, t.a(1), t.a(2), t.a(3), t.a(4));
  if (pid < 0) return pid;
  if ((flags & CLONE_VFORK) !== 0) {
    const c = k.tasks.get(pid)!;
    t.blockCtx = { vforkChild: c };
    t.uninterruptible = true;
    return k.block(t);
  }
  return pid;
};

const MAX_ARGS = 65536;

/** Total bytes of argv + envp strings execve accepts (a quarter of the 8 MiB stack, as Linux). */
const MAX_ARG_BYTES = 2 * 1024 * 1024;

function readStringArray(t: Task, va: number, budget: { left: number }): string[] {
  const out: string[] = [];
  if (va === 0) return out;
  for (let i = 0; ; i++) {
    if (i >= MAX_ARGS) throw new LinuxError(E2BIG);
    const p = t.mm.readU64(va + 8 * i);
    if (p === 0) break;
    const s = t.mm.readCString(p, 32 * 4096);
    budget.left -= s.length + 1 + 8;
    if (budget.left < 0) throw new LinuxError(E2BIG);
    out.push(s);
  }
  return out;
}

const sys_execve: Syscall = (k, t) => {
  const path = t.mm.readCString(t.a(0), 4096);
  const budget = { left: MAX_ARG_BYTES };
  const argv = readStringArray(t, t.a(1), budget);
  const envp = readStringArray(t, t.a(2), budget);
  const img = buildImage(k, resolveCtx(t), t.cwd, path, argv, envp);
  // Past the point of no return: the other threads end, the caller becomes the process.
  installImage(k, k.deThread(t), img);
  return NORETURN;
};

/** exit(2): this thread; the process ends with its last thread. */
const sys_exit: Syscall = (k, t) => {
  k.exitThread(t, (t.ai(0) & 0xff) << 8);
  return NORETURN;
};

const sys_exit_group: Syscall = (k, t) => {
  k.exitTask(t, (t.ai(0) & 0xff) << 8);
  return NORETURN;
};

// ------------------------------------------------------------------------------ wait

function matches(t: Task, c: Task, pid: number): boolean {
  if (pid > 0) return c.pid === pid;
  if (pid === -1) return true;
  if (pid === 0) return c.pgid === t.pgid;
  return c.pgid === -pid;
}

function childStatus(c: Task): number {
  return c.exitStatus;
}

function rusageBytes(insns: number): Uint8Array {
  const b = new Uint8Array(144);
  const dv = new DataView(b.buffer);
  const ns = BigInt(Math.floor(insns)) * NS_PER_INSN;
  setI64(dv, 0, Number(ns / 1000000000n));
  setI64(dv, 8, Number((ns % 1000000000n) / 1000n));
  return b;
}

const sys_wait4: Syscall = (k, t) => {
  const pid = t.ai(0);
  const statusVa = t.a(1);
  const options = t.ai(2);
  const rusageVa = t.a(3);
  if ((options & ~(WNOHANG | WUNTRACED | WCONTINUED | __WALL | __WCLONE)) !== 0) return -EINVAL;
  let any = false;
  for (const c of t.leader.children) {
    if (!matches(t, c, pid)) continue;
    any = true;
    let status = -1;
    if (c.state === TASK_ZOMBIE) status = childStatus(c);
    else if ((options & WUNTRACED) !== 0 && c.state === TASK_STOPPED && c.stopReport !== 0) {
      status = 0x7f | (c.stopReport << 8);
      c.stopReport = 0;
    } else if ((options & WCONTINUED) !== 0 && c.contReport) {
      status = 0xffff;
      c.contReport = false;
    }
    if (status < 0) continue;
    if (statusVa !== 0) t.mm.writeI32(statusVa, status);
    if (rusageVa !== 0) t.mm.copyOut(rusageVa, rusageBytes(c.instret + c.childInstret));
    if (c.state === TASK_ZOMBIE) k.reap(c);
    return c.pid;
  }
  if (!any) return -ECHILD;
  if ((options & WNOHANG) !== 0) return 0;
  return k.block(t);
};

const sys_waitid: Syscall = (k, t) => {
  const idtype = t.ai(0);
  const id = t.ai(1);
  const infop = t.a(2);
  const options = t.ai(3);
  if ((options & (WEXITED | WSTOPPED | WCONTINUED)) === 0) return -EINVAL;
  const pid =
    idtype === P_ALL ? -1 : idtype === P_PID ? id : idtype === P_PGID ? (id === 0 ? 0 : -id) : Number.NaN;
  if (Number.isNaN(pid)) return -EINVAL;
  let any = false;
  for (const c of t.leader.children) {
    if (!matches(t, c, pid)) continue;
    any = true;
    let code = 0;
    let status = 0;
    if (c.state === TASK_ZOMBIE && (options & WEXITED) !== 0) {
      const s = c.exitStatus;
      if ((s & 0x7f) === 0) {
        code = CLD_EXITED;
        status = (s >> 8) & 0xff;
      } else {
        code = (s & 0x80) !== 0 ? CLD_DUMPED : CLD_KILLED;
        status = s & 0x7f;
      }
    } else if ((options & WSTOPPED) !== 0 && c.state === TASK_STOPPED && c.stopReport !== 0) {
      code = CLD_STOPPED;
      status = c.stopReport;
      if ((options & WNOWAIT) === 0) c.stopReport = 0;
    } else if ((options & WCONTINUED) !== 0 && c.contReport) {
      code = CLD_CONTINUED;
      status = 18;
      if ((options & WNOWAIT) === 0) c.contReport = false;
    } else continue;
    if (infop !== 0) {
      const b = new Uint8Array(128);
      const dv = new DataView(b.buffer);
      dv.setInt32(0, SIGCHLD, true);
      dv.setInt32(8, code, true);
      dv.setInt32(16, c.pid, true);
      dv.setInt32(20, k.host.identity.uid, true);
      dv.setInt32(24, status, true);
      t.mm.copyOut(infop, b);
    }
    if (c.state === TASK_ZOMBIE && (options & WNOWAIT) === 0) k.reap(c);
    return 0;
  }
  if (!any) return -ECHILD;
  if ((options & WNOHANG) !== 0) {
    if (infop !== 0) t.mm.zeroOut(infop, 128);
    return 0;
  }
  return k.block(t);
};

// ------------------------------------------------------------------------------ signals

function readSigset(t: Task, va: number, size: number): bigint {
  if (size !== 8) throw new LinuxError(EINVAL);
  return t.mm.readBig64(va);
}

const sys_rt_sigaction: Syscall = (k, t) => {
  const sig = t.ai(0);
  const actVa = t.a(1);
  const oldVa = t.a(2);
  if (t.a(3) !== 8) return -EINVAL;
  if (sig < 1 || sig > 64) return -EINVAL;
  if (actVa !== 0 && (sig === SIGKILL || sig === SIGSTOP)) return -EINVAL;
  const a = t.sig.actions[sig]!;
  let next: { handler: number; flags: number; mask: bigint } | undefined;
  if (actVa !== 0) {
    const b = t.mm.copyIn(actVa, 24);
    const dv = new DataView(b.buffer);
    next = {
      handler: dv.getUint32(4, true) * TWO32 + dv.getUint32(0, true),
      flags: dv.getUint32(8, true),
      mask: dv.getBigUint64(16, true) & ~UNBLOCKABLE,
    };
  }
  if (oldVa !== 0) {
    const b = new Uint8Array(24);
    const dv = new DataView(b.buffer);
    setU64(dv, 0, a.handler);
    setU64(dv, 8, a.flags >>> 0);
    dv.setBigUint64(16, a.mask, true);
    t.mm.copyOut(oldVa, b);
  }
  if (next !== undefined) {
    a.handler = next.handler;
    a.flags = next.flags;
    a.mask = next.mask;
    // Setting a disposition to ignore discards the pending signal (POSIX).
    const ignoredNow =
      a.handler === SIG_IGN || (a.handler === SIG_DFL && (sig === SIGCHLD || sig === 23 || sig === 28));
    if (ignoredNow) {
      t.pending &= ~sigbit(sig);
      t.pendingInfo.delete(sig);
    }
  }
  void k;
  return 0;
};

const sys_rt_sigprocmask: Syscall = (_k, t) => {
  const how = t.ai(0);
  const setVa = t.a(1);
  const oldVa = t.a(2);
  if (t.a(3) !== 8) return -EINVAL;
  const old = t.blocked;
  if (setVa !== 0) {
    const s = t.mm.readBig64(setVa);
    if (how === SIG_BLOCK) t.blocked |= s;
    else if (how === SIG_UNBLOCK) t.blocked &= ~s;
    else if (how === SIG_SETMASK) t.blocked = s;
    else return -EINVAL;
    t.blocked &= ~UNBLOCKABLE;
  }
  if (oldVa !== 0) t.mm.writeBig64(oldVa, old);
  return 0;
};

const sys_rt_sigpending: Syscall = (_k, t) => {
  if (t.a(1) !== 8) return -EINVAL;
  t.mm.writeBig64(t.a(0), t.pending & t.blocked);
  return 0;
};

const sys_rt_sigsuspend: Syscall = (k, t) => {
  if (t.blockCtx?.suspended === undefined) {
    const mask = readSigset(t, t.a(0), t.a(1));
    t.savedMask = t.blocked;
    t.blocked = mask & ~UNBLOCKABLE;
    t.blockCtx = { suspended: true };
  }
  return k.block(t, Number.POSITIVE_INFINITY, true);
};

const sys_rt_sigreturn: Syscall = (k, t) => k.sigreturn(t);

const sys_sigaltstack: Syscall = (_k, t) => {
  const ssVa = t.a(0);
  const oldVa = t.a(1);
  const sp = t.hart.xHi(2) * TWO32 + (t.hart.xLo(2) >>> 0);
  const alt = t.altStack;
  const onAlt = alt.size > 0 && sp > alt.sp && sp <= alt.sp + alt.size;
  if (oldVa !== 0) {
    const b = new Uint8Array(24);
    const dv = new DataView(b.buffer);
    setU64(dv, 0, alt.sp);
    dv.setInt32(8, onAlt ? SS_ONSTACK : alt.flags & SS_DISABLE, true);
    setU64(dv, 16, alt.size);
    t.mm.copyOut(oldVa, b);
  }
  if (ssVa !== 0) {
    if (onAlt) return -EPERM;
    const b = t.mm.copyIn(ssVa, 24);
    const dv = new DataView(b.buffer);
    const flags = dv.getInt32(8, true);
    if ((flags & ~(SS_DISABLE | (1 << 31))) !== 0) return -EINVAL;
    if ((flags & SS_DISABLE) !== 0) t.altStack = { sp: 0, size: 0, flags: SS_DISABLE };
    else {
      const size = dv.getUint32(20, true) * TWO32 + dv.getUint32(16, true);
      if (size < MINSIGSTKSZ) return -ENOMEM;
      t.altStack = { sp: dv.getUint32(4, true) * TWO32 + dv.getUint32(0, true), size, flags: 0 };
    }
  }
  return 0;
};

/** The processes (thread-group leaders with live threads) that kill(pid) designates. */
function signalTargets(k: Kernel, t: Task, pid: number): Task[] {
  if (pid > 0) {
    const x = k.tasks.get(pid)?.leader;
    return x !== undefined && x.threads.size > 0 ? [x] : [];
  }
  const out: Task[] = [];
  for (const x of k.tasks.values()) {
    if (x !== x.leader || x.threads.size === 0) continue;
    if (pid === 0 ? x.pgid === t.pgid : pid === -1 ? x !== t.leader : x.pgid === -pid) out.push(x);
  }
  return out;
}

/** The siginfo of a signal a task sends with kill/tkill/tgkill (si_pid, si_uid are the sender's). */
function sentBy(k: Kernel, t: Task, sig: number, code: number) {
  return { signo: sig, code, pid: t.pid, uid: k.host.identity.uid, status: 0, addr: 0 };
}

const sys_kill: Syscall = (k, t) => {
  const pid = t.ai(0);
  const sig = t.ai(1);
  if (sig < 0 || sig > 64) return -EINVAL;
  const targets = signalTargets(k, t, pid);
  if (targets.length === 0) return -ESRCH;
  if (sig === 0) return 0;
  for (const x of targets) k.signalProcess(x, sig, sentBy(k, t, sig, SI_USER));
  return 0;
};

/** tgkill, and tkill (no tgid: any thread group): one thread, by id. */
function killThread(k: Kernel, t: Task, tgid: number | undefined, pid: number, sig: number): number {
  if (sig < 0 || sig > 64 || pid <= 0 || (tgid !== undefined && tgid <= 0)) return -EINVAL;
  const x = k.tasks.get(pid);
  if (x === undefined || x.state === TASK_ZOMBIE || x.state === TASK_DEAD) return -ESRCH;
  if (tgid !== undefined && x.tgid !== tgid) return -ESRCH;
  if (sig !== 0) k.sendSignal(x, sig, sentBy(k, t, sig, SI_TKILL));
  return 0;
}

const sys_tgkill: Syscall = (k, t) => killThread(k, t, t.ai(0), t.ai(1), t.ai(2));

const sys_tkill: Syscall = (k, t) => killThread(k, t, undefined, t.ai(0), t.ai(1));

// ------------------------------------------------------------------------------ ids and groups

const sys_getpid: Syscall = (_k, t) => t.tgid;
const sys_gettid: Syscall = (_k, t) => t.pid;
const sys_getppid: Syscall = (_k, t) => t.leader.parent?.tgid ?? 1;
const sys_getuid: Syscall = (k) => k.host.identity.uid;
const sys_getgid: Syscall = (k) => k.host.identity.gid;

const sys_setid: Syscall = (k, t) => {
  // setuid/setgid to the current id succeed; anything else needs privileges we do not model.
  const v = t.ai(0);
  const id = k.host.identity;
  return v === id.uid || v === id.gid || id.uid === 0 ? 0 : -EPERM;
};

const sys_getresuid: Syscall = (k, t) => {
  for (let i = 0; i < 3; i++) t.mm.writeU32(t.a(i), k.host.identity.uid);
  return 0;
};
const sys_getresgid: Syscall = (k, t) => {
  for (let i = 0; i < 3; i++) t.mm.writeU32(t.a(i), k.host.identity.gid);
  return 0;
};

const sys_getgroups: Syscall = (k, t) => {
  const size = t.ai(0);
  if (size < 0) return -EINVAL;
  if (size === 0) return 1;
  t.mm.writeU32(t.a(1), k.host.identity.gid);
  return 1;
};

const sys_setgroups: Syscall = (k) => (k.host.identity.uid === 0 ? 0 : -EPERM);

const sys_setpgid: Syscall = (k, t) => {
  const pid = t.ai(0) === 0 ? t.tgid : t.ai(0);
  const pgid = t.ai(1) === 0 ? pid : t.ai(1);
  if (pgid < 0) return -EINVAL;
  const x = k.tasks.get(pid)?.leader;
  if (x === undefined || x.threads.size === 0 || (x !== t.leader && x.parent !== t.leader)) return -ESRCH;
  if (x.sid !== t.sid) return -EPERM;
  if (x.pid === x.sid) return -EPERM;
  x.pgid = pgid;
  for (const th of x.threads) th.pgid = pgid;
  return 0;
};

const sys_getpgid: Syscall = (k, t) => {
  const pid = t.ai(0);
  const x = pid === 0 ? t : k.tasks.get(pid);
  if (x === undefined || x.state === TASK_ZOMBIE) return -ESRCH;
  return x.pgid;
};

const sys_getsid: Syscall = (k, t) => {
  const pid = t.ai(0);
  const x = pid === 0 ? t : k.tasks.get(pid);
  if (x === undefined || x.state === TASK_ZOMBIE) return -ESRCH;
  return x.sid;
};

const sys_setsid: Syscall = (k, t) => {
  const p = t.leader;
  for (const x of k.tasks.values()) if (x.pgid === p.pid && x.leader !== p) return -EPERM;
  if (p.pgid === p.pid && p.sid === p.pid) return -EPERM;
  for (const th of [p, ...p.threads]) {
    th.sid = p.pid;
    th.pgid = p.pid;
  }
  return p.pid;
};

const sys_set_tid_address: Syscall = (_k, t) => {
  t.clearChildTid = t.a(0);
  return t.pid;
};

const sys_set_robust_list: Syscall = (_k, t) => {
  if (t.a(1) !== 24) return -EINVAL;
  t.robustList = t.a(0);
  return 0;
};

// ------------------------------------------------------------------------------ time

function clockNs(k: Kernel, t: Task, clk: number): bigint {
  switch (clk) {
    case CLOCK_REALTIME:
    case CLOCK_REALTIME_COARSE:
      return k.host.clock.realtimeNs();
    case CLOCK_MONOTONIC:
    case CLOCK_MONOTONIC_RAW:
    case CLOCK_MONOTONIC_COARSE:
    case CLOCK_BOOTTIME:
      return k.host.clock.monotonicNs() - k.bootNs;
    case CLOCK_PROCESS_CPUTIME_ID:
    case CLOCK_THREAD_CPUTIME_ID:
      return BigInt(t.instret) * NS_PER_INSN;
    default:
      throw new LinuxError(EINVAL);
  }
}

const sys_clock_gettime: Syscall = (k, t) => {
  t.mm.copyOut(t.a(1), encodeTimespec(clockNs(k, t, t.ai(0))));
  return 0;
};

const sys_clock_getres: Syscall = (k, t) => {
  clockNs(k, t, t.ai(0));
  if (t.a(1) !== 0) t.mm.copyOut(t.a(1), encodeTimespec(1n));
  return 0;
};

const sys_gettimeofday: Syscall = (k, t) => {
  if (t.a(0) !== 0) t.mm.copyOut(t.a(0), encodeTimespec(k.host.clock.realtimeNs(), true));
  if (t.a(1) !== 0) t.mm.zeroOut(t.a(1), 8);
  return 0;
};

/** Sleep until a monotonic deadline (ms); returns 0 when reached. `rem` gets the remainder on EINTR. */
function sleepUntil(k: Kernel, t: Task, deadlineMs: number, remVa: number): number {
  if (k.nowMs() >= deadlineMs) return 0;
  t.blockCtx = {
    deadline: deadlineMs,
    onInterrupt: () => {
      if (remVa === 0) return;
      const left = Math.max(0, deadlineMs - k.nowMs());
      try {
        t.mm.copyOut(remVa, encodeTimespec(BigInt(Math.round(left * 1e6))));
      } catch {
        // EFAULT on rem is ignored after the sleep was interrupted
      }
    },
  };
  return k.block(t, deadlineMs, true);
}

const sys_nanosleep: Syscall = (k, t) => {
  const ctx = t.blockCtx as { deadline?: number } | undefined;
  if (ctx?.deadline !== undefined) return sleepUntil(k, t, ctx.deadline, t.a(1));
  const ns = decodeTimespec(t.mm.copyIn(t.a(0), 16));
  if (ns < 0n) return -EINVAL;
  return sleepUntil(k, t, k.nowMs() + Number(ns) / 1e6, t.a(1));
};

const sys_clock_nanosleep: Syscall = (k, t) => {
  const ctx = t.blockCtx as { deadline?: number } | undefined;
  const flags = t.ai(1);
  const remVa = (flags & TIMER_ABSTIME) !== 0 ? 0 : t.a(3);
  if (ctx?.deadline !== undefined) {
    const r = sleepUntil(k, t, ctx.deadline, remVa);
    return r;
  }
  const clk = t.ai(0);
  const ns = decodeTimespec(t.mm.copyIn(t.a(2), 16));
  if (ns < 0n) return -EINVAL;
  let deadline: number;
  if ((flags & TIMER_ABSTIME) !== 0) {
    const now = clockNs(k, t, clk);
    deadline = k.nowMs() + Number(ns - now) / 1e6;
  } else {
    clockNs(k, t, clk);
    deadline = k.nowMs() + Number(ns) / 1e6;
  }
  return sleepUntil(k, t, deadline, remVa);
};

const sys_times: Syscall = (k, t) => {
  const ticks = (insns: number) => Math.floor((insns * Number(NS_PER_INSN)) / 1e7);
  if (t.a(0) !== 0) {
    const b = new Uint8Array(32);
    const dv = new DataView(b.buffer);
    setI64(dv, 0, ticks(t.instret));
    setI64(dv, 16, ticks(t.childInstret));
    t.mm.copyOut(t.a(0), b);
  }
  return Math.floor(Number(k.host.clock.monotonicNs() - k.bootNs) / 1e7);
};

const sys_getrusage: Syscall = (_k, t) => {
  const who = t.ai(0);
  if (who !== RUSAGE_SELF && who !== RUSAGE_CHILDREN && who !== 1) return -EINVAL;
  t.mm.copyOut(t.a(1), rusageBytes(who === RUSAGE_CHILDREN ? t.childInstret : t.instret));
  return 0;
};

const sys_setitimer: Syscall = (k, t) => {
  const which = t.ai(0);
  if (which !== ITIMER_REAL) return -EINVAL;
  const p = t.leader; // the timer belongs to the process
  const oldVa = t.a(2);
  if (oldVa !== 0) writeItimer(k, t, p, oldVa);
  if (t.a(1) !== 0) {
    const b = t.mm.copyIn(t.a(1), 32);
    const dv = new DataView(b.buffer);
    const interval = getI64(dv, 0) * 1000 + getI64(dv, 8) / 1000;
    const value = getI64(dv, 16) * 1000 + getI64(dv, 24) / 1000;
    if (interval < 0 || value < 0) return -EINVAL;
    p.itimerInterval = interval;
    p.itimerNext = value > 0 ? k.nowMs() + value : 0;
  }
  return 0;
};

function writeItimer(k: Kernel, t: Task, p: Task, va: number): void {
  const b = new Uint8Array(32);
  const dv = new DataView(b.buffer);
  const us = (ms: number) => Math.round(ms * 1000);
  const left = p.itimerNext === 0 ? 0 : Math.max(1, us(p.itimerNext - k.nowMs()));
  setI64(dv, 0, Math.floor(us(p.itimerInterval) / 1e6));
  setI64(dv, 8, us(p.itimerInterval) % 1e6);
  setI64(dv, 16, Math.floor(left / 1e6));
  setI64(dv, 24, left % 1e6);
  t.mm.copyOut(va, b);
}

const sys_getitimer: Syscall = (k, t) => {
  if (t.ai(0) !== ITIMER_REAL) return -EINVAL;
  writeItimer(k, t, t.leader, t.a(1));
  return 0;
};

// ------------------------------------------------------------------------------ futex

const sys_futex: Syscall = (k, t) => {
  const addr = t.a(0);
  const op = t.ai(1) & 0x7f;
  const val = t.ai(2);
  switch (op) {
    case FUTEX_WAIT:
    case FUTEX_WAIT_BITSET: {
      const ctx = t.blockCtx as { futexSeq?: number; deadline?: number } | undefined;
      if (ctx?.futexSeq !== undefined) {
        if (k.futexSeq !== ctx.futexSeq) return 0;
        if (k.nowMs() >= (ctx.deadline ?? Number.POSITIVE_INFINITY)) return -ETIMEDOUT;
        return k.block(t, ctx.deadline, false);
      }
      if (addr % 4 !== 0) return -EINVAL;
      if (t.mm.readI32(addr) !== val) return -EAGAIN;
      let deadline = Number.POSITIVE_INFINITY;
      if (t.a(3) !== 0) {
        const ns = decodeTimespec(t.mm.copyIn(t.a(3), 16));
        if (ns < 0n) return -EINVAL;
        deadline =
          op === FUTEX_WAIT
            ? k.nowMs() + Number(ns) / 1e6
            : k.nowMs() + Number(ns - clockNs(k, t, CLOCK_MONOTONIC)) / 1e6;
      }
      t.blockCtx = { futexSeq: k.futexSeq, deadline };
      return k.block(t, deadline, false);
    }
    case FUTEX_WAKE:
    case FUTEX_WAKE_BITSET:
      if (addr % 4 !== 0) return -EINVAL;
      k.futexSeq++;
      k.notify();
      return 0;
    default:
      return -ENOSYS; // as Linux for unknown futex ops
  }
};

// ------------------------------------------------------------------------------ system information

const sys_uname: Syscall = (k, t) => {
  const b = new Uint8Array(65 * 6);
  const fields = ["Linux", k.host.identity.hostname, "6.1.0-visor", "#1 SMP visor", "riscv64", "(none)"];
  fields.forEach((s, i) => {
    b.set(utf8Encode(s).subarray(0, 64), i * 65);
  });
  t.mm.copyOut(t.a(0), b);
  return 0;
};

const sys_sysinfo: Syscall = (k, t) => {
  const b = new Uint8Array(112);
  const dv = new DataView(b.buffer);
  setI64(dv, 0, Math.floor(Number(k.host.clock.monotonicNs() - k.bootNs) / 1e9));
  setU64(dv, 32, k.ram.size);
  setU64(dv, 40, (k.frames.count - k.frames.used) * 4096);
  dv.setUint16(80, Math.min(65535, k.tasks.size), true);
  dv.setUint32(104, 1, true);
  t.mm.copyOut(t.a(0), b);
  return 0;
};

const sys_getrandom: Syscall = (k, t) => {
  const flags = t.au(2);
  if ((flags & ~(GRND_NONBLOCK | GRND_RANDOM | GRND_INSECURE)) !== 0) return -EINVAL;
  const len = Math.min(t.a(1), 33554431);
  const buf = new Uint8Array(Math.min(len, 65536));
  let done = 0;
  while (done < len) {
    const n = Math.min(buf.length, len - done);
    k.host.random(buf.subarray(0, n));
    t.mm.copyOut(t.a(0) + done, buf.subarray(0, n));
    done += n;
  }
  return len;
};

const RLIM_INF = 0xffffffffffffffffn;

const sys_prlimit64: Syscall = (k, t) => {
  const pid = t.ai(0);
  const res = t.au(1);
  const x = pid === 0 ? t : k.tasks.get(pid);
  if (x === undefined) return -ESRCH;
  if (res >= RLIM_NLIMITS) return -EINVAL;
  const lim = x.rlimits[res]!;
  const newVa = t.a(2);
  const oldVa = t.a(3);
  let next: { cur: number; max: number } | undefined;
  if (newVa !== 0) {
    const b = t.mm.copyIn(newVa, 16);
    const dv = new DataView(b.buffer);
    const dec = (v: bigint) => (v >= 0x7fffffffffffffffn ? -1 : Number(v));
    next = { cur: dec(dv.getBigUint64(0, true)), max: dec(dv.getBigUint64(8, true)) };
    const gt = (a: number, b2: number) => (b2 === -1 ? false : a === -1 || a > b2);
    if (gt(next.cur, next.max)) return -EINVAL;
    if (gt(next.max, lim.max) && k.host.identity.uid !== 0) return -EPERM;
  }
  if (oldVa !== 0) {
    const b = new Uint8Array(16);
    const dv = new DataView(b.buffer);
    dv.setBigUint64(0, lim.cur === -1 ? RLIM_INF : BigInt(lim.cur), true);
    dv.setBigUint64(8, lim.max === -1 ? RLIM_INF : BigInt(lim.max), true);
    t.mm.copyOut(oldVa, b);
  }
  if (next !== undefined) {
    if (res === 7 && (next.cur === -1 || next.cur > 1024))
      next.cur = Math.min(next.cur === -1 ? 1024 : next.cur, 1024);
    x.rlimits[res] = next;
  }
  return 0;
};

const sys_getrlimit: Syscall = (k, t) => {
  t.hart.setX(13, t.hart.getX(11));
  t.hart.setX(12, 0n);
  t.hart.setX(11, t.hart.getX(10));
  t.hart.setX(10, 0n);
  return sys_prlimit64(k, t);
};

const sys_setrlimit: Syscall = (k, t) => {
  t.hart.setX(13, 0n);
  t.hart.setX(12, t.hart.getX(11));
  t.hart.setX(11, t.hart.getX(10));
  t.hart.setX(10, 0n);
  return sys_prlimit64(k, t);
};

const sys_prctl: Syscall = (_k, t) => {
  const op = t.ai(0);
  switch (op) {
    case PR_SET_NAME: {
      const name = t.mm.readCString(t.a(1), 4096);
      t.comm = name.slice(0, 15);
      return 0;
    }
    case PR_GET_NAME: {
      const b = new Uint8Array(16);
      b.set(utf8Encode(t.comm).subarray(0, 15));
      t.mm.copyOut(t.a(1), b);
      return 0;
    }
    case PR_SET_PDEATHSIG:
    case PR_SET_CHILD_SUBREAPER:
    case PR_SET_NO_NEW_PRIVS:
      return 0;
    case PR_GET_PDEATHSIG:
      t.mm.writeI32(t.a(1), 0);
      return 0;
    case PR_GET_NO_NEW_PRIVS:
      return 0;
    case 3: // PR_GET_DUMPABLE
      return 1;
    case 4: // PR_SET_DUMPABLE
      return 0;
    default:
      return -EINVAL;
  }
};

const sys_sched_getaffinity: Syscall = (_k, t) => {
  const len = t.a(1);
  if (len < 8 || len % 8 !== 0) return -EINVAL;
  const b = new Uint8Array(8);
  b[0] = 1;
  t.mm.copyOut(t.a(2), b);
  return 8;
};

const sys_sched_yield: Syscall = (_k, t) => {
  t.yieldSlice = true;
  return 0;
};

const sys_getcpu: Syscall = (_k, t) => {
  if (t.a(0) !== 0) t.mm.writeU32(t.a(0), 0);
  if (t.a(1) !== 0) t.mm.writeU32(t.a(1), 0);
  return 0;
};

const sys_personality: Syscall = (_k, t) => (t.au(0) === 0xffffffff || t.au(0) === 0 ? 0 : -EINVAL);

const sys_zero: Syscall = () => 0;

const sys_setpriority: Syscall = () => 0;
const sys_getpriority: Syscall = () => 20;

const sys_sched_param: Syscall = (_k, t) => {
  if (t.a(1) !== 0) t.mm.writeI32(t.a(1), 0);
  return 0;
};

/** Deliberately absent: glibc probes these and falls back (a kernel built without them answers the same). */
const sys_quiet_enosys: Syscall = () => -ENOSYS;

export function registerProc(table: (Syscall | undefined)[]): void {
  const set = (name: string, fn: Syscall) => {
    const nr = NR[name];
    if (nr === undefined) throw new Error(`unknown syscall ${name}`);
    table[nr] = fn;
  };
  set("clone", sys_clone);
  set("execve", sys_execve);
  set("exit", sys_exit);
  set("exit_group", sys_exit_group);
  set("wait4", sys_wait4);
  set("waitid", sys_waitid);
  set("rt_sigaction", sys_rt_sigaction);
  set("rt_sigprocmask", sys_rt_sigprocmask);
  set("rt_sigpending", sys_rt_sigpending);
  set("rt_sigsuspend", sys_rt_sigsuspend);
  set("rt_sigreturn", sys_rt_sigreturn);
  set("sigaltstack", sys_sigaltstack);
  set("kill", sys_kill);
  set("tkill", sys_tkill);
  set("tgkill", sys_tgkill);
  set("getpid", sys_getpid);
  set("gettid", sys_gettid);
  set("getppid", sys_getppid);
  set("getuid", sys_getuid);
  set("geteuid", sys_getuid);
  set("getgid", sys_getgid);
  set("getegid", sys_getgid);
  set("setuid", sys_setid);
  set("setgid", sys_setid);
  set("setreuid", sys_setid);
  set("setregid", sys_setid);
  set("setresuid", sys_setid);
  set("setresgid", sys_setid);
  set("setfsuid", sys_getuid);
  set("setfsgid", sys_getgid);
  set("getresuid", sys_getresuid);
  set("getresgid", sys_getresgid);
  set("getgroups", sys_getgroups);
  set("setgroups", sys_setgroups);
  set("setpgid", sys_setpgid);
  set("getpgid", sys_getpgid);
  set("getsid", sys_getsid);
  set("setsid", sys_setsid);
  set("set_tid_address", sys_set_tid_address);
  set("set_robust_list", sys_set_robust_list);
  set("clock_gettime", sys_clock_gettime);
  set("clock_getres", sys_clock_getres);
  set("gettimeofday", sys_gettimeofday);
  set("nanosleep", sys_nanosleep);
  set("clock_nanosleep", sys_clock_nanosleep);
  set("times", sys_times);
  set("getrusage", sys_getrusage);
  set("setitimer", sys_setitimer);
  set("getitimer", sys_getitimer);
  set("futex", sys_futex);
  set("uname", sys_uname);
  set("sysinfo", sys_sysinfo);
  set("getrandom", sys_getrandom);
  set("prlimit64", sys_prlimit64);
  set("getrlimit", sys_getrlimit);
  set("setrlimit", sys_setrlimit);
  set("prctl", sys_prctl);
  set("sched_getaffinity", sys_sched_getaffinity);
  set("sched_setaffinity", sys_zero);
  set("sched_yield", sys_sched_yield);
  set("sched_getparam", sys_sched_param);
  set("sched_getscheduler", sys_zero);
  set("getcpu", sys_getcpu);
  set("personality", sys_personality);
  set("setpriority", sys_setpriority);
  set("getpriority", sys_getpriority);
  set("riscv_flush_icache", sys_zero);
  set("rseq", sys_quiet_enosys);
  set("clone3", sys_quiet_enosys);
}
