/**
 * Open file descriptions (what a file descriptor points to): host files and directories,
 * pipes, the console, character devices, eventfd. Epoll and io_uring descriptions live in
 * their own modules.
 *
 * Conventions: `read`/`write` return a byte count or `-errno`; `-EAGAIN` means "would
 * block" and the syscall layer decides whether to block the task (it does unless the
 * description is O_NONBLOCK). `pos` -1 means "at and advancing the description's own
 * offset"; other values are pread/pwrite positions.
 */
import {
  B38400,
  CREAD,
  CS8,
  ECHO,
  ECHOCTL,
  ECHOE,
  ECHOK,
  ECHOKE,
  HUPCL,
  ICANON,
  ICRNL,
  IEXTEN,
  ISIG,
  IXON,
  O_ACCMODE,
  O_APPEND,
  O_RDONLY,
  O_WRONLY,
  ONLCR,
  OPOST,
  PIPE_BUF,
  PIPE_SIZE,
  POLLERR,
  POLLHUP,
  POLLIN,
  POLLOUT,
  S_IFCHR,
  S_IFDIR,
  S_IFIFO,
  S_IFMT,
  S_IFREG,
  SEEK_CUR,
  SEEK_END,
  SEEK_SET,
} from "./abi.ts";
import { EAGAIN, EBADF, EINVAL, EISDIR, ENOTDIR, EPIPE, ESPIPE, LinuxError } from "./errno.ts";
import type { Host, HostFile, HostStat } from "./host.ts";
import type { DevKind, DirRef } from "./vfs.ts";

/** The kernel services a description needs. */
export interface FileCtx {
  readonly host: Host;
  /** Something changed that may unblock a waiting task. */
  notify(): void;
  /** A fresh inode number for kernel objects (pipes, eventfds ...). */
  nextIno(): number;
  /** The terminal generated a signal (ISIG: ^C, ^\\, ^Z) for its foreground process group. */
  ttySignal(sig: number): void;
}

export abstract class OpenFile {
  /** Descriptor-table references (dup, fork, SCM ...) plus internal holders. */
  refs = 1;
  /** Status flags: access mode, O_APPEND, O_NONBLOCK ... */
  flags: number;
  /** The guest path it was opened by (for /proc/self/fd and messages). */
  path: string;
  pos = 0;
  /** Bumped when readiness changes (for edge-triggered epoll). */
  seq = 0;

  constructor(flags: number, path: string) {
    this.flags = flags;
    this.path = path;
  }

  get readable(): boolean {
    return (this.flags & O_ACCMODE) !== O_WRONLY;
  }
  get writable(): boolean {
    return (this.flags & O_ACCMODE) !== O_RDONLY;
  }

  read(_ctx: FileCtx, _dst: Uint8Array, _pos: number): number {
    return -EINVAL;
  }
  write(_ctx: FileCtx, _src: Uint8Array, _pos: number): number {
    return -EINVAL;
  }
  /** Ready events (POLLIN | POLLOUT | POLLHUP | POLLERR). */
  poll(_ctx: FileCtx): number {
    return POLLIN | POLLOUT;
  }
  abstract stat(ctx: FileCtx): HostStat;
  seek(_ctx: FileCtx, _off: number, _whence: number): number {
    return -ESPIPE;
  }
  /** True for pipes and sockets: EPIPE on write raises SIGPIPE; pread/pwrite give ESPIPE. */
  get isStream(): boolean {
    return false;
  }
  get isTty(): boolean {
    return false;
  }
  /** Bytes readable right now without blocking (FIONREAD), or -1 if unknown. */
  available(_ctx: FileCtx): number {
    return -1;
  }
  sync(_ctx: FileCtx): void {}
  truncate(_ctx: FileCtx, _len: number): void {
    throw new LinuxError(EINVAL);
  }
  /** Drop one reference; release resources at zero. */
  decRef(ctx: FileCtx): void {
    if (--this.refs === 0) this.release(ctx);
  }
  protected release(_ctx: FileCtx): void {}
}

/** A synthetic stat for kernel objects. */
export function synthStat(mode: number, ino: number, rdev = 0, size = 0, blksize = 4096): HostStat {
  return {
    dev: 0xc,
    ino,
    mode,
    nlink: 1,
    uid: 0,
    gid: 0,
    rdev,
    size,
    blksize,
    blocks: 0,
    atimeNs: 0n,
    mtimeNs: 0n,
    ctimeNs: 0n,
    birthtimeNs: 0n,
  };
}

// ------------------------------------------------------------------------------ host files

export class HostFileDesc extends OpenFile {
  readonly host: HostFile;
  /** The kernel's resolved guest path when it was opened (a name only, never trusted later). */
  private readonly openedPath: string;
  /** For a directory: the held directory, re-validated at every use (vfs.ts). */
  readonly dir: DirRef | undefined;
  readonly isDir: boolean;
  /** For directories: the listing snapshot taken at the first getdents. */
  dirEntries: { name: string; ino: number; type: number }[] | undefined;
  /** Invalidate page-cache entries for this file after a write. */
  onWrite: (() => void) | undefined;

  constructor(host: HostFile, flags: number, path: string, hostPath: string, dir: DirRef | undefined) {
    super(flags, path);
    this.host = host;
    this.openedPath = hostPath;
    this.dir = dir;
    this.isDir = dir !== undefined;
  }

  /** Canonical guest path (a directory's follows the guest's renames). */
  get hostPath(): string {
    return this.dir?.path ?? this.openedPath;
  }

  override read(_ctx: FileCtx, dst: Uint8Array, pos: number): number {
    if (this.isDir) return -EISDIR;
    const at = pos < 0 ? this.pos : pos;
    const n = this.host.read(dst, at);
    if (pos < 0) this.pos += n;
    return n;
  }

  override write(_ctx: FileCtx, src: Uint8Array, pos: number): number {
    if (this.isDir) return -EISDIR;
    let n: number;
    if (pos < 0 && (this.flags & O_APPEND) !== 0) {
      n = this.host.write(src, -1);
      this.pos = this.host.stat().size;
    } else {
      const at = pos < 0 ? this.pos : pos;
      n = this.host.write(src, at);
      if (pos < 0) this.pos += n;
    }
    this.onWrite?.();
    return n;
  }

  override stat(_ctx: FileCtx): HostStat {
    return this.host.stat();
  }

  override seek(_ctx: FileCtx, off: number, whence: number): number {
    let base: number;
    if (whence === SEEK_SET) base = 0;
    else if (whence === SEEK_CUR) base = this.pos;
    else if (whence === SEEK_END) base = this.host.stat().size;
    else return -EINVAL;
    const np = base + off;
    if (np < 0 || !Number.isSafeInteger(np)) return -EINVAL;
    this.pos = np;
    if (this.isDir && np === 0) this.dirEntries = undefined;
    return np;
  }

  override sync(): void {
    this.host.sync();
  }

  override truncate(_ctx: FileCtx, len: number): void {
    if (this.isDir) throw new LinuxError(EISDIR);
    this.host.truncate(len);
    this.onWrite?.();
  }

  protected override release(): void {
    this.host.close();
  }
}

// ------------------------------------------------------------------------------ pipes

export class Pipe {
  readonly buf = new Uint8Array(PIPE_SIZE);
  head = 0;
  len = 0;
  readers = 0;
  writers = 0;
  readonly ino: number;
  /** Ends currently open (to bump their epoll sequence). */
  readonly ends: PipeEnd[] = [];

  constructor(ino: number) {
    this.ino = ino;
  }

  touch(): void {
    for (const e of this.ends) e.seq++;
  }
}

export class PipeEnd extends OpenFile {
  readonly pipe: Pipe;
  readonly isReader: boolean;
  private released = false;

  constructor(pipe: Pipe, isReader: boolean, flags: number) {
    super(flags, `pipe:[${pipe.ino}]`);
    this.pipe = pipe;
    this.isReader = isReader;
    if (isReader) pipe.readers++;
    else pipe.writers++;
    pipe.ends.push(this);
  }

  override get isStream(): boolean {
    return true;
  }

  override read(ctx: FileCtx, dst: Uint8Array): number {
    const p = this.pipe;
    if (!this.isReader) return -EBADF;
    if (p.len === 0) return p.writers === 0 ? 0 : -EAGAIN;
    const n = Math.min(dst.length, p.len);
    const first = Math.min(n, PIPE_SIZE - p.head);
    dst.set(p.buf.subarray(p.head, p.head + first), 0);
    if (n > first) dst.set(p.buf.subarray(0, n - first), first);
    p.head = (p.head + n) % PIPE_SIZE;
    p.len -= n;
    if (p.len === 0) p.head = 0;
    p.touch();
    ctx.notify();
    return n;
  }

  override write(ctx: FileCtx, src: Uint8Array): number {
    const p = this.pipe;
    if (this.isReader) return -EBADF;
    if (p.readers === 0) return -EPIPE;
    const space = PIPE_SIZE - p.len;
    if (space === 0 || (src.length <= PIPE_BUF && space < src.length)) return -EAGAIN;
    const n = Math.min(space, src.length);
    const tail = (p.head + p.len) % PIPE_SIZE;
    const first = Math.min(n, PIPE_SIZE - tail);
    p.buf.set(src.subarray(0, first), tail);
    if (n > first) p.buf.set(src.subarray(first, n), 0);
    p.len += n;
    p.touch();
    ctx.notify();
    return n;
  }

  override poll(): number {
    const p = this.pipe;
    if (this.isReader) {
      let ev = p.len > 0 ? POLLIN : 0;
      if (p.writers === 0) ev |= POLLHUP;
      return ev;
    }
    if (p.readers === 0) return POLLOUT | POLLERR;
    return PIPE_SIZE - p.len >= PIPE_BUF ? POLLOUT : 0;
  }

  override available(): number {
    return this.isReader ? this.pipe.len : 0;
  }

  override stat(): HostStat {
    return synthStat(S_IFIFO | 0o600, this.pipe.ino, 0, 0, 4096);
  }

  protected override release(ctx: FileCtx): void {
    if (this.released) return;
    this.released = true;
    const p = this.pipe;
    if (this.isReader) p.readers--;
    else p.writers--;
    p.ends.splice(p.ends.indexOf(this), 1);
    p.touch();
    ctx.notify();
  }
}

// ------------------------------------------------------------------------------ terminal

/** Indexes into c_cc (asm-generic termbits.h). */
const VINTR = 0;
const VQUIT = 1;
const VSUSP = 10;

/** Terminal state shared by the console descriptions (struct termios + foreground group). */
export class TtyState {
  iflag = ICRNL | IXON;
  oflag = OPOST | ONLCR;
  cflag = B38400 | CS8 | CREAD | HUPCL;
  lflag = ISIG | ICANON | ECHO | ECHOE | ECHOK | ECHOCTL | ECHOKE | IEXTEN;
  line = 0;
  /** c_cc: VINTR ^C, VQUIT ^\, VERASE DEL, VKILL ^U, VEOF ^D, VTIME 0, VMIN 1, ... (termbits.h order). */
  readonly cc = new Uint8Array([3, 28, 127, 21, 4, 0, 1, 0, 17, 19, 26, 0, 18, 15, 23, 22, 0, 0, 0]);
  /** Foreground process group (TIOCGPGRP/TIOCSPGRP), 0 until set. */
  fgPgrp = 0;
  sid = 0;
  rows = 24;
  cols = 80;
}

/** stdin/stdout/stderr (and /dev/tty) backed by the host console. */
export class ConsoleFile extends OpenFile {
  readonly fd: 0 | 1 | 2;
  readonly tty: TtyState;
  readonly ino: number;
  /** Whether the host stream behind it is a terminal (decides isatty and ioctls). */
  readonly terminal: boolean;

  constructor(fd: 0 | 1 | 2, flags: number, tty: TtyState, ino: number, path: string, terminal: boolean) {
    super(flags, path);
    this.fd = fd;
    this.tty = tty;
    this.ino = ino;
    this.terminal = terminal;
  }

  override get isTty(): boolean {
    return this.terminal;
  }

  override get isStream(): boolean {
    return true;
  }

  override read(ctx: FileCtx, dst: Uint8Array): number {
    if (dst.length === 0) return 0;
    const n = ctx.host.console.read(dst);
    if (n < 0) return -EAGAIN;
    const tty = this.tty;
    if (!this.terminal || (tty.lflag & ICANON) !== 0) return n;
    // Non-canonical mode puts the host terminal in raw mode, so the line discipline's
    // remaining duties are done here: signals from ^C ^\\ ^Z (ISIG), CR to NL (ICRNL), echo.
    let w = 0;
    let signalled = false;
    for (let i = 0; i < n; i++) {
      let c = dst[i]!;
      if ((tty.lflag & ISIG) !== 0) {
        const sig = c === tty.cc[VINTR] ? 2 : c === tty.cc[VQUIT] ? 3 : c === tty.cc[VSUSP] ? 20 : 0;
        if (sig !== 0 && c !== 0) {
          // As n_tty does without NOFLSH: the signal flushes the input that follows.
          ctx.ttySignal(sig);
          signalled = true;
          break;
        }
      }
      if (c === 13 && (tty.iflag & ICRNL) !== 0) c = 10;
      dst[w++] = c;
    }
    if (w > 0 && (tty.lflag & ECHO) !== 0) ctx.host.console.write(1, dst.slice(0, w));
    if (w === 0 && signalled) return -EAGAIN;
    return w;
  }

  override write(ctx: FileCtx, src: Uint8Array): number {
    try {
      ctx.host.console.write(this.fd === 0 ? 1 : this.fd, src);
    } catch (e) {
      if (e instanceof LinuxError) return -e.errno;
      throw e;
    }
    return src.length;
  }

  override poll(ctx: FileCtx): number {
    if (this.fd !== 0) return POLLOUT;
    return (ctx.host.console.hasInput() ? POLLIN : 0) | POLLOUT;
  }

  override stat(): HostStat {
    // A terminal is a character device (major 136: /dev/pts); otherwise report a pipe.
    return synthStat(
      this.terminal ? S_IFCHR | 0o620 : S_IFIFO | 0o600,
      this.ino,
      this.terminal ? 136 << 8 : 0,
    );
  }
}

// ------------------------------------------------------------------------------ character devices

/** Device numbers (Documentation/admin-guide/devices.txt: major 1 = memory devices). */
const DEV_MINOR: Record<DevKind, number> = { null: 3, zero: 5, full: 7, random: 8, urandom: 9 };

export class CharDevice extends OpenFile {
  readonly kind: DevKind;

  constructor(kind: DevKind, flags: number, path: string) {
    super(flags, path);
    this.kind = kind;
  }

  override read(ctx: FileCtx, dst: Uint8Array): number {
    switch (this.kind) {
      case "null":
        return 0;
      case "zero":
      case "full":
        dst.fill(0);
        return dst.length;
      default:
        for (let i = 0; i < dst.length; i += 65536)
          ctx.host.random(dst.subarray(i, Math.min(dst.length, i + 65536)));
        return dst.length;
    }
  }

  override write(_ctx: FileCtx, src: Uint8Array): number {
    if (this.kind === "full") return -28; // ENOSPC
    return src.length;
  }

  override seek(): number {
    return 0;
  }

  override stat(): HostStat {
    return synthStat(S_IFCHR | 0o666, 1000 + DEV_MINOR[this.kind], (1 << 8) | DEV_MINOR[this.kind]);
  }
}

// ------------------------------------------------------------------------------ eventfd

export class EventFd extends OpenFile {
  count: bigint;
  readonly semaphore: boolean;
  readonly ino: number;

  constructor(initial: number, semaphore: boolean, flags: number, ino: number) {
    super(flags, "anon_inode:[eventfd]");
    this.count = BigInt(initial);
    this.semaphore = semaphore;
    this.ino = ino;
  }

  override read(ctx: FileCtx, dst: Uint8Array): number {
    if (dst.length < 8) return -EINVAL;
    if (this.count === 0n) return -EAGAIN;
    const v = this.semaphore ? 1n : this.count;
    this.count -= v;
    new DataView(dst.buffer, dst.byteOffset, 8).setBigUint64(0, v, true);
    this.seq++;
    ctx.notify();
    return 8;
  }

  override write(ctx: FileCtx, src: Uint8Array): number {
    if (src.length < 8) return -EINVAL;
    const v = new DataView(src.buffer, src.byteOffset, 8).getBigUint64(0, true);
    if (v === 0xffffffffffffffffn) return -EINVAL;
    if (this.count + v > 0xfffffffffffffffen) return -EAGAIN;
    this.count += v;
    this.seq++;
    ctx.notify();
    return 8;
  }

  /** Add to the counter from inside the kernel (io_uring completions). */
  signal(ctx: FileCtx, v: bigint): void {
    if (this.count + v <= 0xfffffffffffffffen) this.count += v;
    this.seq++;
    ctx.notify();
  }

  override poll(): number {
    let ev = 0;
    if (this.count > 0n) ev |= POLLIN;
    if (this.count < 0xfffffffffffffffen) ev |= POLLOUT;
    return ev;
  }

  override stat(): HostStat {
    return synthStat(0o600, this.ino);
  }
}

/** A directory-only description for O_PATH / directory fds of virtual directories. */
export class VirtualDir extends OpenFile {
  readonly ino: number;
  readonly entries: string[];
  constructor(flags: number, path: string, ino: number, entries: string[]) {
    super(flags, path);
    this.ino = ino;
    this.entries = entries;
  }
  override read(): number {
    return -EISDIR;
  }
  override stat(): HostStat {
    return synthStat(S_IFDIR | 0o555, this.ino);
  }
}

export function isDirMode(mode: number): boolean {
  return (mode & S_IFMT) === S_IFDIR;
}
export function isRegMode(mode: number): boolean {
  return (mode & S_IFMT) === S_IFREG;
}
export function notDir(): never {
  throw new LinuxError(ENOTDIR);
}
