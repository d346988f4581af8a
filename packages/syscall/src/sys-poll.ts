/**
 * Readiness: ppoll, pselect6, epoll and eventfd.
 *
 * Waiting is the kernel's restartable blocking: a wait that finds nothing ready blocks the
 * task and is evaluated again whenever the kernel's state changes or its deadline passes.
 */
import {
  EFD_CLOEXEC,
  EFD_NONBLOCK,
  EFD_SEMAPHORE,
  EPOLL_CTL_ADD,
  EPOLL_CTL_DEL,
  EPOLL_CTL_MOD,
  EPOLLERR,
  EPOLLET,
  EPOLLEXCLUSIVE,
  EPOLLHUP,
  EPOLLIN,
  EPOLLONESHOT,
  EPOLLWAKEUP,
  O_CLOEXEC,
  O_RDWR,
  POLLERR,
  POLLHUP,
  POLLIN,
  POLLNVAL,
  POLLOUT,
  POLLPRI,
  SIGKILL,
  SIGSTOP,
} from "./abi.ts";
import { EBADF, EEXIST, EINVAL, ENOENT, EPERM, LinuxError } from "./errno.ts";
import { ConsoleFile, EventFd, type FileCtx, HostFileDesc, OpenFile, synthStat } from "./files.ts";
import type { HostStat } from "./host.ts";
import type { Kernel, Syscall } from "./kernel.ts";
import { NR } from "./numbers.ts";
import { sigbit, type Task } from "./task.ts";
import { decodeTimespec } from "./uapi.ts";

const UNBLOCKABLE = sigbit(SIGKILL) | sigbit(SIGSTOP);

/** Apply a temporary signal mask for the duration of a wait (ppoll/pselect6/epoll_pwait). */
function enterMask(t: Task, maskVa: number, size: number): void {
  if (maskVa === 0 || t.blockCtx?.masked === true) return;
  if (size !== 8) throw new LinuxError(EINVAL);
  const mask = t.mm.readBig64(maskVa);
  t.savedMask = t.blocked;
  t.blocked = mask & ~UNBLOCKABLE;
  t.blockCtx = { ...(t.blockCtx ?? {}), masked: true };
}

/** Leave the temporary mask on a normal return (a signal handler's frame restores it otherwise). */
function leaveMask(t: Task): void {
  if (t.blockCtx?.masked === true && t.savedMask !== undefined) {
    t.blocked = t.savedMask;
    t.savedMask = undefined;
  }
}

function deadlineOf(k: Kernel, t: Task, tsVa: number): number {
  const ctx = t.blockCtx as { deadline?: number } | undefined;
  if (ctx?.deadline !== undefined) return ctx.deadline;
  let d = Number.POSITIVE_INFINITY;
  if (tsVa !== 0) {
    const ns = decodeTimespec(t.mm.copyIn(tsVa, 16));
    if (ns < 0n) throw new LinuxError(EINVAL);
    d = k.nowMs() + Number(ns) / 1e6;
  }
  t.blockCtx = { ...(t.blockCtx ?? {}), deadline: d };
  return d;
}

// ------------------------------------------------------------------------------ ppoll

const sys_ppoll: Syscall = (k, t) => {
  const fdsVa = t.a(0);
  const nfds = t.a(1);
  if (nfds > t.fdLimit) return -EINVAL;
  const deadline = deadlineOf(k, t, t.a(2));
  enterMask(t, t.a(3), t.a(4));
  const b = nfds > 0 ? t.mm.copyIn(fdsVa, nfds * 8) : new Uint8Array(0);
  const dv = new DataView(b.buffer);
  let count = 0;
  let console = false;
  for (let i = 0; i < nfds; i++) {
    const fd = dv.getInt32(i * 8, true);
    const events = dv.getInt16(i * 8 + 4, true) & 0xffff;
    let rev = 0;
    if (fd >= 0) {
      const e = t.files.entry(fd);
      if (e === undefined) rev = POLLNVAL;
      else {
        rev = e.file.poll(k) & (events | POLLERR | POLLHUP);
        if (e.file instanceof ConsoleFile && (events & POLLIN) !== 0) console = true;
      }
    }
    dv.setInt16(i * 8 + 6, rev, true);
    if (rev !== 0) count++;
  }
  if (count > 0 || k.nowMs() >= deadline) {
    if (nfds > 0) t.mm.copyOut(fdsVa, b);
    leaveMask(t);
    return count;
  }
  t.waitsOnConsole = console;
  return k.block(t, deadline, true);
};

// ------------------------------------------------------------------------------ pselect6

const sys_pselect6: Syscall = (k, t) => {
  const nfds = t.ai(0);
  if (nfds < 0 || nfds > t.fdLimit) return -EINVAL;
  const sets = [t.a(1), t.a(2), t.a(3)];
  const deadline = deadlineOf(k, t, t.a(4));
  const sigVa = t.a(5);
  if (sigVa !== 0 && t.blockCtx?.masked !== true) {
    const maskPtr = t.mm.readU64(sigVa);
    const size = t.mm.readU64(sigVa + 8);
    enterMask(t, maskPtr, size);
  }
  const bytes = Math.ceil(nfds / 64) * 8;
  const ins = sets.map((va) => (va !== 0 && bytes > 0 ? t.mm.copyIn(va, bytes) : undefined));
  const outs = ins.map((s) => (s === undefined ? undefined : new Uint8Array(s.length)));
  let count = 0;
  let console = false;
  for (let fd = 0; fd < nfds; fd++) {
    const byte = fd >> 3;
    const bit = 1 << (fd & 7);
    const want = ins.map((s) => s !== undefined && (s[byte]! & bit) !== 0);
    if (!want[0] && !want[1] && !want[2]) continue;
    const e = t.files.entry(fd);
    if (e === undefined) return -EBADF;
    const ev = e.file.poll(k);
    if (want[0] && e.file instanceof ConsoleFile) console = true;
    const hits = [
      want[0] && (ev & (POLLIN | POLLHUP | POLLERR)) !== 0,
      want[1] && (ev & (POLLOUT | POLLERR)) !== 0,
      want[2] && (ev & POLLPRI) !== 0,
    ];
    hits.forEach((h, i) => {
      if (h) {
        outs[i]![byte]! |= bit;
        count++;
      }
    });
  }
  if (count > 0 || k.nowMs() >= deadline) {
    sets.forEach((va, i) => {
      if (va !== 0 && outs[i] !== undefined) t.mm.copyOut(va, outs[i]!);
    });
    leaveMask(t);
    return count;
  }
  t.waitsOnConsole = console;
  return k.block(t, deadline, true);
};

// ------------------------------------------------------------------------------ epoll

interface Interest {
  fd: number;
  file: OpenFile;
  events: number;
  data: bigint;
  lastSeq: number;
  disabled: boolean;
}

export class EpollFile extends OpenFile {
  readonly interest = new Map<number, Interest>();
  readonly ino: number;

  constructor(flags: number, ino: number) {
    super(flags, "anon_inode:[eventpoll]");
    this.ino = ino;
  }

  /** Ready registrations (level- or edge-triggered), pruning closed descriptors. */
  ready(ctx: FileCtx, max: number, consume: boolean): { item: Interest; ev: number }[] {
    const out: { item: Interest; ev: number }[] = [];
    for (const [fd, it] of this.interest) {
      // A registration goes away with the last reference to its description.
      if (it.file.refs <= 0) {
        this.interest.delete(fd);
        continue;
      }
      if (it.disabled) continue;
      const ev = it.file.poll(ctx) & (it.events | EPOLLERR | EPOLLHUP);
      if (ev === 0) continue;
      if ((it.events & EPOLLET) !== 0 && !(it.file instanceof ConsoleFile) && it.file.seq === it.lastSeq)
        continue;
      out.push({ item: it, ev });
      if (consume) {
        it.lastSeq = it.file.seq;
        if ((it.events & EPOLLONESHOT) !== 0) it.disabled = true;
      }
      if (out.length >= max) break;
    }
    return out;
  }

  override poll(ctx: FileCtx): number {
    return this.ready(ctx, 1, false).length > 0 ? POLLIN : 0;
  }

  override stat(): HostStat {
    return synthStat(0o600, this.ino);
  }
}

const sys_epoll_create1: Syscall = (k, t) => {
  const flags = t.ai(0);
  if ((flags & ~O_CLOEXEC) !== 0) return -EINVAL;
  const ep = new EpollFile(O_RDWR, k.nextIno());
  return t.files.alloc(ep, (flags & O_CLOEXEC) !== 0, 0, t.fdLimit);
};

const sys_epoll_ctl: Syscall = (_k, t) => {
  const ep = t.files.get(t.ai(0));
  const op = t.ai(1);
  const fd = t.ai(2);
  const evVa = t.a(3);
  if (!(ep instanceof EpollFile)) return -EINVAL;
  const f = t.files.get(fd);
  if (f === ep) return -EINVAL;
  if (f instanceof HostFileDesc) return -EPERM;
  let events = 0;
  let data = 0n;
  if (op !== EPOLL_CTL_DEL) {
    const b = t.mm.copyIn(evVa, 16);
    const dv = new DataView(b.buffer);
    events = dv.getUint32(0, true) | 0;
    data = dv.getBigUint64(8, true);
    events &= ~(EPOLLWAKEUP | EPOLLEXCLUSIVE);
  }
  const cur = ep.interest.get(fd);
  switch (op) {
    case EPOLL_CTL_ADD:
      if (cur !== undefined && cur.file === f) return -EEXIST;
      ep.interest.set(fd, { fd, file: f, events, data, lastSeq: f.seq - 1, disabled: false });
      return 0;
    case EPOLL_CTL_MOD:
      if (cur === undefined || cur.file !== f) return -ENOENT;
      cur.events = events;
      cur.data = data;
      cur.disabled = false;
      cur.lastSeq = f.seq - 1;
      return 0;
    case EPOLL_CTL_DEL:
      if (cur === undefined || cur.file !== f) return -ENOENT;
      ep.interest.delete(fd);
      return 0;
    default:
      return -EINVAL;
  }
};

function epollWait(k: Kernel, t: Task, deadline: number): number {
  const ep = t.files.get(t.ai(0));
  const evVa = t.a(1);
  const max = t.ai(2);
  if (!(ep instanceof EpollFile)) return -EINVAL;
  if (max <= 0 || max > 1 << 24) return -EINVAL;
  const ready = ep.ready(k, max, true);
  if (ready.length > 0 || k.nowMs() >= deadline) {
    if (ready.length > 0) {
      const b = new Uint8Array(ready.length * 16);
      const dv = new DataView(b.buffer);
      ready.forEach((r, i) => {
        dv.setUint32(i * 16, r.ev >>> 0, true);
        dv.setBigUint64(i * 16 + 8, r.item.data, true);
      });
      t.mm.copyOut(evVa, b);
    }
    leaveMask(t);
    return ready.length;
  }
  t.waitsOnConsole = [...ep.interest.values()].some(
    (i) => i.file instanceof ConsoleFile && (i.events & EPOLLIN) !== 0,
  );
  return k.block(t, deadline, true);
}

const sys_epoll_pwait: Syscall = (k, t) => {
  const ctx = t.blockCtx as { deadline?: number } | undefined;
  let deadline = ctx?.deadline;
  if (deadline === undefined) {
    const ms = t.ai(3);
    deadline = ms < 0 ? Number.POSITIVE_INFINITY : k.nowMs() + ms;
    t.blockCtx = { ...(t.blockCtx ?? {}), deadline };
  }
  enterMask(t, t.a(4), t.a(5));
  return epollWait(k, t, deadline);
};

const sys_epoll_pwait2: Syscall = (k, t) => {
  const deadline = deadlineOf(k, t, t.a(3));
  enterMask(t, t.a(4), t.a(5));
  return epollWait(k, t, deadline);
};

// ------------------------------------------------------------------------------ eventfd

const sys_eventfd2: Syscall = (k, t) => {
  const init = t.au(0);
  const flags = t.ai(1);
  if ((flags & ~(EFD_SEMAPHORE | EFD_NONBLOCK | EFD_CLOEXEC)) !== 0) return -EINVAL;
  const f = new EventFd(init, (flags & EFD_SEMAPHORE) !== 0, O_RDWR | (flags & EFD_NONBLOCK), k.nextIno());
  return t.files.alloc(f, (flags & EFD_CLOEXEC) !== 0, 0, t.fdLimit);
};

export function registerPoll(table: (Syscall | undefined)[]): void {
  const set = (name: string, fn: Syscall) => {
    const nr = NR[name];
    if (nr === undefined) throw new Error(`unknown syscall ${name}`);
    table[nr] = fn;
  };
  set("ppoll", sys_ppoll);
  set("pselect6", sys_pselect6);
  set("epoll_create1", sys_epoll_create1);
  set("epoll_ctl", sys_epoll_ctl);
  set("epoll_pwait", sys_epoll_pwait);
  set("epoll_pwait2", sys_epoll_pwait2);
  set("eventfd2", sys_eventfd2);
}
