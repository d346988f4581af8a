/**
 * io_uring (include/uapi/linux/io_uring.h): submission and completion rings shared with
 * the guest through mmap, so a program can queue many operations and reap many results
 * per system call, or none at all while it only polls the completion ring.
 *
 * The rings live in guest RAM frames owned by a MemObject; the guest maps them with
 * mmap(fd, IORING_OFF_SQ_RING / IORING_OFF_CQ_RING / IORING_OFF_SQES) and the kernel
 * reads SQEs and writes CQEs in those same frames. The offsets of every field are
 * reported in io_uring_params (sq_off, cq_off) as the ABI requires; with
 * IORING_FEAT_SINGLE_MMAP the SQ and CQ rings share one mapping.
 *
 * Operations run in submission order; one that cannot complete yet (a read from an empty
 * pipe) waits, like Linux's poll-armed retry, and completes when the kernel's state
 * changes. IOSQE_IO_LINK chains run one after the other and a failure cancels the rest.
 */
import { O_CLOEXEC, O_RDWR, POLLERR, POLLHUP, STATX_BASIC_STATS } from "./abi.ts";
import { EAGAIN, EBADF, EBUSY, ECANCELED, EFAULT, EINVAL, ENXIO, EOPNOTSUPP, LinuxError } from "./errno.ts";
import { EventFd, type FileCtx, OpenFile, synthStat } from "./files.ts";
import type { HostStat } from "./host.ts";
import type { Kernel, Syscall } from "./kernel.ts";
import { MemObject, PAGE } from "./mm.ts";
import { NR } from "./numbers.ts";
import { lookup, openPath, readIovecs, readToUser, readv, writeFromUser, writev } from "./sys-fs.ts";
import type { Mappable } from "./sys-mm.ts";
import { TASK_ZOMBIE, type Task } from "./task.ts";
import { encodeStatx } from "./uapi.ts";

export const IORING_OFF_SQ_RING = 0;
export const IORING_OFF_CQ_RING = 0x8000000;
export const IORING_OFF_SQES = 0x10000000;
export const IORING_MAX_ENTRIES = 32768;

export const IORING_SETUP_SQPOLL = 1 << 1;
export const IORING_SETUP_SQ_AFF = 1 << 2;
export const IORING_SETUP_CQSIZE = 1 << 3;
export const IORING_SETUP_CLAMP = 1 << 4;
export const IORING_FEAT_SINGLE_MMAP = 1 << 0;
export const IORING_FEAT_NODROP = 1 << 1;
export const IORING_FEAT_SUBMIT_STABLE = 1 << 2;
export const IORING_FEAT_RW_CUR_POS = 1 << 3;
/** SQPOLL works with plain descriptors, not only registered files. */
export const IORING_FEAT_SQPOLL_NONFIXED = 1 << 7;
export const IORING_ENTER_GETEVENTS = 1 << 0;
export const IORING_ENTER_EXT_ARG = 1 << 3;
export const IORING_SQ_CQ_OVERFLOW = 1 << 1;

export const IOSQE_FIXED_FILE = 1 << 0;
export const IOSQE_IO_DRAIN = 1 << 1;
export const IOSQE_IO_LINK = 1 << 2;
export const IOSQE_IO_HARDLINK = 1 << 3;
export const IOSQE_ASYNC = 1 << 4;
export const IOSQE_CQE_SKIP_SUCCESS = 1 << 6;

export const IORING_OP_NOP = 0;
export const IORING_OP_READV = 1;
export const IORING_OP_WRITEV = 2;
export const IORING_OP_FSYNC = 3;
export const IORING_OP_READ_FIXED = 4;
export const IORING_OP_WRITE_FIXED = 5;
export const IORING_OP_POLL_ADD = 6;
export const IORING_OP_OPENAT = 18;
export const IORING_OP_CLOSE = 19;
export const IORING_OP_STATX = 21;
export const IORING_OP_READ = 22;
export const IORING_OP_WRITE = 23;
const SUPPORTED = [
  IORING_OP_NOP,
  IORING_OP_READV,
  IORING_OP_WRITEV,
  IORING_OP_FSYNC,
  IORING_OP_READ_FIXED,
  IORING_OP_WRITE_FIXED,
  IORING_OP_POLL_ADD,
  IORING_OP_OPENAT,
  IORING_OP_CLOSE,
  IORING_OP_STATX,
  IORING_OP_READ,
  IORING_OP_WRITE,
];
const LAST_OP = 48;

export const IORING_REGISTER_BUFFERS = 0;
export const IORING_UNREGISTER_BUFFERS = 1;
export const IORING_REGISTER_FILES = 2;
export const IORING_UNREGISTER_FILES = 3;
export const IORING_REGISTER_EVENTFD = 4;
export const IORING_UNREGISTER_EVENTFD = 5;
export const IORING_REGISTER_PROBE = 8;

// My ring layout (reported through sq_off / cq_off).
const SQ_HEAD = 0;
const SQ_TAIL = 4;
const SQ_MASK = 8;
const SQ_ENTRIES = 12;
const SQ_FLAGS = 16;
const SQ_DROPPED = 20;
const SQ_ARRAY = 64;
const CQ_HEAD = 0;
const CQ_TAIL = 4;
const CQ_MASK = 8;
const CQ_ENTRIES = 12;
const CQ_OVERFLOW = 16;
const CQ_FLAGS = 20;
const CQ_CQES = 64;

const PENDING = -0x20000;
const U64_MAX = 0xffffffffffffffffn;

interface Sqe {
  opcode: number;
  flags: number;
  fd: number;
  off: bigint;
  addr: number;
  len: number;
  rwFlags: number;
  userData: bigint;
  bufIndex: number;
  addr2: number;
}

interface Chain {
  reqs: Sqe[];
  next: number;
  task: Task;
}

export class IoUringFile extends OpenFile implements Mappable {
  readonly ctx: Kernel;
  readonly sqEntries: number;
  readonly cqEntries: number;
  readonly rings: MemObject;
  readonly sqes: MemObject;
  readonly cqOff: number;
  readonly ringBytes: number;
  private sqHead = 0;
  private cqTail = 0;
  private readonly overflow: { userData: bigint; res: number; flags: number }[] = [];
  private pending: Chain[] = [];
  buffers: [number, number][] | undefined;
  files: (OpenFile | undefined)[] | undefined;
  eventfd: EventFd | undefined;
  readonly ino: number;
  private readonly poller = () => this.progress();
  /** IORING_SETUP_SQPOLL: the task whose context the kernel-side poller submits in. */
  sqPollOwner: Task | undefined;
  private readonly sqPoller = () => this.sqPoll();
  /** Statistics: SQEs consumed and CQEs posted. */
  submitted = 0;
  completed = 0;

  constructor(k: Kernel, sqEntries: number, cqEntries: number) {
    super(O_RDWR, "anon_inode:[io_uring]");
    this.ctx = k;
    this.ino = k.nextIno();
    this.sqEntries = sqEntries;
    this.cqEntries = cqEntries;
    this.cqOff = SQ_ARRAY + Math.ceil((sqEntries * 4) / 64) * 64;
    this.ringBytes = this.cqOff + CQ_CQES + cqEntries * 16;
    this.rings = new MemObject(k.frames, Math.ceil(this.ringBytes / PAGE));
    this.sqes = new MemObject(k.frames, Math.ceil((sqEntries * 64) / PAGE));
    this.rings.addUser();
    this.sqes.addUser();
    try {
      for (let i = 0; i < this.rings.npages; i++) this.rings.page(i);
      for (let i = 0; i < this.sqes.npages; i++) this.sqes.page(i);
    } catch (e) {
      this.rings.dropUser();
      this.sqes.dropUser();
      throw e;
    }
    this.w32(SQ_MASK, sqEntries - 1);
    this.w32(SQ_ENTRIES, sqEntries);
    this.w32(this.cqOff + CQ_MASK, cqEntries - 1);
    this.w32(this.cqOff + CQ_ENTRIES, cqEntries);
  }

  /**
   * IORING_SETUP_SQPOLL: instead of a kernel thread, the kernel polls the SQ ring at every
   * return from the guest (each trap and each scheduling slice), so a program submits by
   * only writing the ring. The poller never idles, so IORING_SQ_NEED_WAKEUP is never set.
   */
  startSqPoll(owner: Task): void {
    this.sqPollOwner = owner;
    this.ctx.sqPollers.add(this.sqPoller);
  }

  /** Submit whatever the guest has queued in the SQ ring. */
  sqPoll(): void {
    const owner = this.sqPollOwner;
    if (owner === undefined) return;
    if (owner.state === TASK_ZOMBIE) {
      this.ctx.sqPollers.delete(this.sqPoller);
      return;
    }
    if (this.r32(SQ_TAIL) !== this.sqHead) this.submit(owner, this.sqEntries);
  }

  // Ring memory accessors (byte offsets into the rings object; fields never straddle pages).
  private r32(off: number): number {
    return this.ctx.ram.dv.getUint32(this.rings.page(off >>> 12) + (off & 0xfff), true);
  }
  private w32(off: number, v: number): void {
    const o = this.rings.page(off >>> 12) + (off & 0xfff);
    this.ctx.ram.dv.setUint32(o, v >>> 0, true);
  }

  mmapObject(off: number, len: number): { obj: MemObject; pgoff: number } {
    if (off === IORING_OFF_SQ_RING || off === IORING_OFF_CQ_RING) {
      if (len > this.rings.npages * PAGE) throw new LinuxError(EINVAL);
      return { obj: this.rings, pgoff: 0 };
    }
    if (off === IORING_OFF_SQES) {
      if (len > this.sqes.npages * PAGE) throw new LinuxError(EINVAL);
      return { obj: this.sqes, pgoff: 0 };
    }
    throw new LinuxError(EINVAL);
  }

  /** CQEs the guest has not consumed yet. */
  cqReady(): number {
    return (this.cqTail - this.r32(this.cqOff + CQ_HEAD)) >>> 0;
  }

  private post(userData: bigint, res: number, flags: number): void {
    if (this.overflow.length > 0 || this.cqReady() >= this.cqEntries) {
      // IORING_FEAT_NODROP: keep it and flag the overflow.
      this.overflow.push({ userData, res, flags });
      this.w32(SQ_FLAGS, this.r32(SQ_FLAGS) | IORING_SQ_CQ_OVERFLOW);
      return;
    }
    this.writeCqe(userData, res, flags);
  }

  private writeCqe(userData: bigint, res: number, flags: number): void {
    const idx = this.cqTail & (this.cqEntries - 1);
    const off = this.cqOff + CQ_CQES + idx * 16;
    const o = this.rings.page(off >>> 12) + (off & 0xfff);
    const dv = this.ctx.ram.dv;
    dv.setBigUint64(o, userData, true);
    dv.setInt32(o + 8, res, true);
    dv.setUint32(o + 12, flags, true);
    this.ctx.ram.markDirty(o, 16);
    this.cqTail = (this.cqTail + 1) >>> 0;
    this.w32(this.cqOff + CQ_TAIL, this.cqTail);
    this.completed++;
    this.eventfd?.signal(this.ctx, 1n);
    this.seq++;
    this.ctx.notify();
  }

  flushOverflow(): void {
    while (this.overflow.length > 0 && this.cqReady() < this.cqEntries) {
      const c = this.overflow.shift()!;
      this.writeCqe(c.userData, c.res, c.flags);
    }
    if (this.overflow.length === 0) this.w32(SQ_FLAGS, this.r32(SQ_FLAGS) & ~IORING_SQ_CQ_OVERFLOW);
  }

  private readSqe(idx: number): Sqe {
    const off = idx * 64;
    const o = this.sqes.page(off >>> 12) + (off & 0xfff);
    const dv = this.ctx.ram.dv;
    return {
      opcode: dv.getUint8(o),
      flags: dv.getUint8(o + 1),
      fd: dv.getInt32(o + 4, true),
      off: dv.getBigUint64(o + 8, true),
      addr: dv.getUint32(o + 20, true) * 4294967296 + dv.getUint32(o + 16, true),
      len: dv.getUint32(o + 24, true),
      rwFlags: dv.getUint32(o + 28, true),
      userData: dv.getBigUint64(o + 32, true),
      bufIndex: dv.getUint16(o + 40, true),
      addr2: Number(dv.getBigUint64(o + 8, true) & 0x1fffffffffffffn),
    };
  }

  /** Consume up to `n` SQEs; returns how many were consumed. */
  submit(t: Task, n: number): number {
    const tail = this.r32(SQ_TAIL);
    const avail = Math.min((tail - this.sqHead) >>> 0, this.sqEntries);
    n = Math.min(n, avail);
    let chain: Sqe[] = [];
    let consumed = 0;
    for (let i = 0; i < n; i++) {
      const idx = this.r32(SQ_ARRAY + ((this.sqHead & (this.sqEntries - 1)) << 2));
      this.sqHead = (this.sqHead + 1) >>> 0;
      consumed++;
      if (idx >= this.sqEntries) {
        this.w32(SQ_DROPPED, this.r32(SQ_DROPPED) + 1);
        continue;
      }
      const sqe = this.readSqe(idx);
      this.submitted++;
      chain.push(sqe);
      if ((sqe.flags & (IOSQE_IO_LINK | IOSQE_IO_HARDLINK)) === 0) {
        this.startChain(t, chain);
        chain = [];
      }
    }
    if (chain.length > 0) this.startChain(t, chain);
    this.w32(SQ_HEAD, this.sqHead);
    return consumed;
  }

  private startChain(t: Task, reqs: Sqe[]): void {
    const c: Chain = { reqs, next: 0, task: t };
    // IOSQE_IO_DRAIN waits for everything before it; anything after a waiting drain waits too.
    const drainWaiting = this.pending.some((p) => isDrain(p));
    if (drainWaiting || (isDrain(c) && this.pending.length > 0)) {
      this.enqueue(c);
      return;
    }
    if (!this.runChain(c)) this.enqueue(c);
  }

  private enqueue(c: Chain): void {
    this.pending.push(c);
    this.ctx.pollers.add(this.poller);
  }

  /** Run a chain as far as it goes; false when it waits on a pending operation. */
  private runChain(c: Chain): boolean {
    while (c.next < c.reqs.length) {
      const sqe = c.reqs[c.next]!;
      if (c.task.state === TASK_ZOMBIE) return true;
      let res: number;
      try {
        res = this.exec(c.task, sqe);
      } catch (e) {
        if (!(e instanceof LinuxError)) throw e;
        res = -e.errno;
      }
      if (res === PENDING) return false;
      c.next++;
      if (!(res >= 0 && (sqe.flags & IOSQE_CQE_SKIP_SUCCESS) !== 0)) this.post(sqe.userData, res, 0);
      const short =
        (sqe.opcode === IORING_OP_READ || sqe.opcode === IORING_OP_WRITE) && res >= 0 && res < sqe.len;
      if ((res < 0 || short) && (sqe.flags & IOSQE_IO_LINK) !== 0 && (sqe.flags & IOSQE_IO_HARDLINK) === 0) {
        while (c.next < c.reqs.length) this.post(c.reqs[c.next++]!.userData, -ECANCELED, 0);
      }
    }
    return true;
  }

  /** Retry waiting operations (called when the kernel's state changes). */
  progress(): void {
    let moved = true;
    while (moved && this.pending.length > 0) {
      moved = false;
      const still: Chain[] = [];
      let drainBlocked = false;
      for (const c of this.pending) {
        if (drainBlocked || (isDrain(c) && still.length > 0)) {
          still.push(c);
          drainBlocked = true;
          continue;
        }
        const before = c.next;
        if (this.runChain(c)) {
          moved = true;
          continue;
        }
        if (c.next !== before) moved = true;
        still.push(c);
        if (isDrain(c)) drainBlocked = true;
      }
      this.pending = still;
    }
    if (this.pending.length === 0) this.ctx.pollers.delete(this.poller);
  }

  private file(t: Task, sqe: Sqe): OpenFile {
    if ((sqe.flags & IOSQE_FIXED_FILE) !== 0) {
      const f = this.files?.[sqe.fd];
      if (f === undefined) throw new LinuxError(EBADF);
      return f;
    }
    return t.files.get(sqe.fd);
  }

  private rwPos(f: OpenFile, off: bigint): number {
    if (off === U64_MAX) return -1; // IORING_FEAT_RW_CUR_POS
    if (f.isStream) return -1;
    if (off > BigInt(Number.MAX_SAFE_INTEGER)) throw new LinuxError(EINVAL);
    return Number(off);
  }

  private fixed(sqe: Sqe): void {
    const b = this.buffers?.[sqe.bufIndex];
    if (b === undefined) throw new LinuxError(EFAULT);
    if (sqe.addr < b[0] || sqe.addr + sqe.len > b[0] + b[1]) throw new LinuxError(EFAULT);
  }

  private exec(t: Task, sqe: Sqe): number {
    const k = this.ctx;
    const wouldBlock = (r: number) => (r === -EAGAIN ? PENDING : r);
    switch (sqe.opcode) {
      case IORING_OP_NOP:
        return 0;
      case IORING_OP_READ:
      case IORING_OP_READ_FIXED: {
        const f = this.file(t, sqe);
        if (!f.readable) return -EBADF;
        if (sqe.opcode === IORING_OP_READ_FIXED) this.fixed(sqe);
        return wouldBlock(readToUser(k, t, f, sqe.addr, sqe.len, this.rwPos(f, sqe.off)));
      }
      case IORING_OP_WRITE:
      case IORING_OP_WRITE_FIXED: {
        const f = this.file(t, sqe);
        if (!f.writable) return -EBADF;
        if (sqe.opcode === IORING_OP_WRITE_FIXED) this.fixed(sqe);
        return wouldBlock(writeFromUser(k, t, f, sqe.addr, sqe.len, this.rwPos(f, sqe.off)));
      }
      case IORING_OP_READV: {
        const f = this.file(t, sqe);
        if (!f.readable) return -EBADF;
        return wouldBlock(readv(k, t, f, readIovecs(t, sqe.addr, sqe.len), this.rwPos(f, sqe.off)));
      }
      case IORING_OP_WRITEV: {
        const f = this.file(t, sqe);
        if (!f.writable) return -EBADF;
        return wouldBlock(writev(k, t, f, readIovecs(t, sqe.addr, sqe.len), this.rwPos(f, sqe.off)));
      }
      case IORING_OP_FSYNC:
        this.file(t, sqe).sync(k);
        return 0;
      case IORING_OP_POLL_ADD: {
        const f = this.file(t, sqe);
        const mask = sqe.rwFlags & 0xffff;
        const ev = f.poll(k) & (mask | POLLERR | POLLHUP);
        return ev !== 0 ? ev : PENDING;
      }
      case IORING_OP_OPENAT: {
        const path = t.mm.readCString(sqe.addr, 4096);
        const flags = sqe.rwFlags | 0;
        const f = openPath(k, t, sqe.fd, path, flags, sqe.len);
        return t.files.alloc(f, (flags & O_CLOEXEC) !== 0, 0, t.fdLimit);
      }
      case IORING_OP_CLOSE:
        // As Linux: a ring cannot close io_uring descriptors through itself.
        if (t.files.get(sqe.fd) instanceof IoUringFile) return -EBADF;
        t.files.close(k, sqe.fd);
        return 0;
      case IORING_OP_STATX: {
        const path = t.mm.readCString(sqe.addr, 4096);
        const n = lookup(k, t, sqe.fd, path, (sqe.rwFlags & 0x100) === 0);
        if (n.kind !== "host") throw new LinuxError(n.kind === "missing" ? 2 : ENXIO);
        t.mm.copyOut(sqe.addr2, encodeStatx(n.st, STATX_BASIC_STATS));
        return 0;
      }
      default:
        return -EINVAL;
    }
  }

  register(t: Task, op: number, arg: number, nr: number): number {
    const k = this.ctx;
    switch (op) {
      case IORING_REGISTER_BUFFERS: {
        if (this.buffers !== undefined) return -EBUSY;
        if (nr === 0 || nr > 16384) return -EINVAL;
        const iov = readIovecs(t, arg, Math.min(nr, 1024));
        for (const [base, len] of iov) t.mm.checkRange(base, len, false);
        this.buffers = iov;
        return 0;
      }
      case IORING_UNREGISTER_BUFFERS:
        if (this.buffers === undefined) return -ENXIO;
        this.buffers = undefined;
        return 0;
      case IORING_REGISTER_FILES: {
        if (this.files !== undefined) return -EBUSY;
        if (nr === 0 || nr > 32768) return -EINVAL;
        const files: (OpenFile | undefined)[] = [];
        for (let i = 0; i < nr; i++) {
          const fd = t.mm.readI32(arg + 4 * i);
          if (fd === -1) files.push(undefined);
          else {
            const f = t.files.get(fd);
            if ((f as OpenFile) === (this as OpenFile)) return -EBADF;
            files.push(f);
          }
        }
        for (const f of files) if (f !== undefined) f.refs++;
        this.files = files;
        return 0;
      }
      case IORING_UNREGISTER_FILES:
        if (this.files === undefined) return -ENXIO;
        for (const f of this.files) f?.decRef(k);
        this.files = undefined;
        return 0;
      case IORING_REGISTER_EVENTFD: {
        if (this.eventfd !== undefined) return -EBUSY;
        if (nr !== 1) return -EINVAL;
        const f = t.files.get(t.mm.readI32(arg));
        if (!(f instanceof EventFd)) return -EINVAL;
        f.refs++;
        this.eventfd = f;
        return 0;
      }
      case IORING_UNREGISTER_EVENTFD:
        if (this.eventfd === undefined) return -ENXIO;
        this.eventfd.decRef(k);
        this.eventfd = undefined;
        return 0;
      case IORING_REGISTER_PROBE: {
        // struct io_uring_probe { u8 last_op; u8 ops_len; u16 resv; u32 resv2[3]; struct io_uring_probe_op ops[]; }
        const n = Math.min(nr, 256);
        const b = new Uint8Array(16 + 8 * n);
        b[0] = LAST_OP;
        b[1] = Math.min(n, LAST_OP + 1);
        for (let i = 0; i < n; i++) {
          b[16 + 8 * i] = i;
          if (SUPPORTED.includes(i)) b[16 + 8 * i + 2] = 1; // IO_URING_OP_SUPPORTED
        }
        t.mm.copyOut(arg, b);
        return 0;
      }
      default:
        return -EINVAL;
    }
  }

  override poll(): number {
    return this.cqReady() > 0 || this.overflow.length > 0 ? 1 /* POLLIN */ : 0;
  }

  override stat(): HostStat {
    return synthStat(0o600, this.ino);
  }

  protected override release(ctx: FileCtx): void {
    this.pending = [];
    this.ctx.pollers.delete(this.poller);
    this.ctx.sqPollers.delete(this.sqPoller);
    this.sqPollOwner = undefined;
    for (const f of this.files ?? []) f?.decRef(ctx);
    this.files = undefined;
    this.eventfd?.decRef(ctx);
    this.eventfd = undefined;
    this.rings.dropUser();
    this.sqes.dropUser();
  }
}

function isDrain(c: Chain): boolean {
  return (c.reqs[0]!.flags & IOSQE_IO_DRAIN) !== 0;
}

function roundPow2(n: number): number {
  let p = 1;
  while (p < n) p *= 2;
  return p;
}

const sys_io_uring_setup: Syscall = (k, t) => {
  let entries = t.au(0);
  const pVa = t.a(1);
  const pb = t.mm.copyIn(pVa, 120);
  const pv = new DataView(pb.buffer);
  const flags = pv.getUint32(8, true);
  if ((flags & ~(IORING_SETUP_CQSIZE | IORING_SETUP_CLAMP | IORING_SETUP_SQPOLL | IORING_SETUP_SQ_AFF)) !== 0)
    return -EINVAL;
  if ((flags & IORING_SETUP_SQ_AFF) !== 0 && (flags & IORING_SETUP_SQPOLL) === 0) return -EINVAL;
  for (let o = 28; o < 40; o++) if (pb[o] !== 0) return -EINVAL;
  if (entries === 0) return -EINVAL;
  if (entries > IORING_MAX_ENTRIES) {
    if ((flags & IORING_SETUP_CLAMP) === 0) return -EINVAL;
    entries = IORING_MAX_ENTRIES;
  }
  const sq = roundPow2(entries);
  let cq = 2 * sq;
  if ((flags & IORING_SETUP_CQSIZE) !== 0) {
    const want = pv.getUint32(4, true);
    if (want === 0) return -EINVAL;
    cq = roundPow2(Math.min(want, 2 * IORING_MAX_ENTRIES));
    if (cq < sq) return -EINVAL;
  }
  const ring = new IoUringFile(k, sq, cq);
  if ((flags & IORING_SETUP_SQPOLL) !== 0) ring.startSqPoll(t);
  let fd: number;
  try {
    fd = t.files.alloc(ring, false, 0, t.fdLimit);
  } catch (e) {
    ring.decRef(k);
    throw e;
  }
  pv.setUint32(0, sq, true);
  pv.setUint32(4, cq, true);
  pv.setUint32(
    20,
    IORING_FEAT_SINGLE_MMAP |
      IORING_FEAT_NODROP |
      IORING_FEAT_SUBMIT_STABLE |
      IORING_FEAT_RW_CUR_POS |
      IORING_FEAT_SQPOLL_NONFIXED,
    true,
  );
  // struct io_sqring_offsets at 40
  const sqo = [SQ_HEAD, SQ_TAIL, SQ_MASK, SQ_ENTRIES, SQ_FLAGS, SQ_DROPPED, SQ_ARRAY];
  sqo.forEach((v, i) => {
    pv.setUint32(40 + 4 * i, v, true);
  });
  pv.setUint32(68, 0, true);
  pv.setBigUint64(72, 0n, true);
  // struct io_cqring_offsets at 80
  const c = ring.cqOff;
  const cqo = [
    c + CQ_HEAD,
    c + CQ_TAIL,
    c + CQ_MASK,
    c + CQ_ENTRIES,
    c + CQ_OVERFLOW,
    c + CQ_CQES,
    c + CQ_FLAGS,
  ];
  cqo.forEach((v, i) => {
    pv.setUint32(80 + 4 * i, v, true);
  });
  pv.setUint32(108, 0, true);
  pv.setBigUint64(112, 0n, true);
  try {
    t.mm.copyOut(pVa, pb);
  } catch (e) {
    t.files.close(k, fd);
    throw e;
  }
  return fd;
};

const sys_io_uring_enter: Syscall = (k, t) => {
  const ring = t.files.get(t.ai(0));
  if (!(ring instanceof IoUringFile)) return -EOPNOTSUPP;
  const toSubmit = t.au(1);
  const minComplete = t.au(2);
  const flags = t.au(3);
  const ctx = t.blockCtx as { submitted?: number; masked?: boolean } | undefined;
  let submitted = ctx?.submitted;
  if (submitted === undefined) {
    if (ring.sqPollOwner !== undefined) {
      // The kernel-side poller submits; entering only wakes it (it never sleeps here).
      ring.sqPoll();
      submitted = toSubmit;
    } else {
      submitted = toSubmit > 0 ? ring.submit(t, toSubmit) : 0;
    }
    // Apply the caller's signal mask while it waits.
    let maskVa = 0;
    let size = 8;
    if ((flags & IORING_ENTER_EXT_ARG) !== 0) {
      if (t.a(4) !== 0) {
        maskVa = t.mm.readU64(t.a(4));
        size = t.mm.readU32(t.a(4) + 8);
      }
    } else {
      maskVa = t.a(4);
      size = t.a(5);
    }
    if (maskVa !== 0 && (flags & IORING_ENTER_GETEVENTS) !== 0 && minComplete > 0) {
      if (size !== 8) return -EINVAL;
      t.savedMask = t.blocked;
      t.blocked = t.mm.readBig64(maskVa) & ~0x40100n;
    }
    t.blockCtx = { submitted, masked: maskVa !== 0 };
  }
  if ((flags & IORING_ENTER_GETEVENTS) !== 0) {
    ring.flushOverflow();
    if (ring.cqReady() < Math.min(minComplete, ring.cqEntries))
      return k.block(t, Number.POSITIVE_INFINITY, true);
  }
  if (t.blockCtx?.masked === true && t.savedMask !== undefined) {
    t.blocked = t.savedMask;
    t.savedMask = undefined;
  }
  return submitted;
};

const sys_io_uring_register: Syscall = (_k, t) => {
  const ring = t.files.get(t.ai(0));
  if (!(ring instanceof IoUringFile)) return -EOPNOTSUPP;
  return ring.register(t, t.au(1), t.a(2), t.au(3));
};

export function registerIoUring(table: (Syscall | undefined)[]): void {
  table[NR.io_uring_setup!] = sys_io_uring_setup;
  table[NR.io_uring_enter!] = sys_io_uring_enter;
  table[NR.io_uring_register!] = sys_io_uring_register;
}
