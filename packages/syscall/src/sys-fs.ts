/**
 * File and directory system calls: open/close, read/write and their vector and
 * positional forms, descriptors (dup, fcntl, pipes), metadata (stat, statx), directories,
 * links, and terminal ioctls. Paths go through the root jail (vfs.ts).
 */
import {
  AT_EMPTY_PATH,
  AT_FDCWD,
  AT_REMOVEDIR,
  AT_SYMLINK_FOLLOW,
  AT_SYMLINK_NOFOLLOW,
  DT_BLK,
  DT_CHR,
  DT_DIR,
  DT_FIFO,
  DT_LNK,
  DT_REG,
  DT_SOCK,
  DT_UNKNOWN,
  F_DUPFD,
  F_DUPFD_CLOEXEC,
  F_GETFD,
  F_GETFL,
  F_GETLK,
  F_GETOWN,
  F_GETPIPE_SZ,
  F_OK,
  F_SETFD,
  F_SETFL,
  F_SETLK,
  F_SETLKW,
  F_SETOWN,
  F_SETPIPE_SZ,
  F_UNLCK,
  FD_CLOEXEC,
  FIOCLEX,
  FIONBIO,
  FIONCLEX,
  FIONREAD,
  ICANON,
  O_ACCMODE,
  O_APPEND,
  O_CLOEXEC,
  O_CREAT,
  O_DIRECT,
  O_DIRECTORY,
  O_EXCL,
  O_LARGEFILE,
  O_NOATIME,
  O_NOFOLLOW,
  O_NONBLOCK,
  O_PATH,
  O_RDONLY,
  O_RDWR,
  O_TMPFILE,
  O_TRUNC,
  O_WRONLY,
  PIPE_SIZE,
  R_OK,
  S_IFBLK,
  S_IFCHR,
  S_IFDIR,
  S_IFIFO,
  S_IFLNK,
  S_IFMT,
  S_IFREG,
  S_IFSOCK,
  SI_USER,
  SIGPIPE,
  STATX_BASIC_STATS,
  STATX_BTIME,
  TCGETS,
  TCSETS,
  TCSETSF,
  TCSETSW,
  TIOCGPGRP,
  TIOCGSID,
  TIOCGWINSZ,
  TIOCNOTTY,
  TIOCSCTTY,
  TIOCSPGRP,
  TIOCSWINSZ,
  W_OK,
  X_OK,
} from "./abi.ts";
import {
  EACCES,
  EAGAIN,
  EBADF,
  EEXIST,
  EFAULT,
  EINVAL,
  EISDIR,
  ELOOP,
  ENOENT,
  ENOTDIR,
  ENOTEMPTY,
  ENOTTY,
  ENXIO,
  EOPNOTSUPP,
  EPERM,
  EPIPE,
  ESPIPE,
  EXDEV,
  LinuxError,
} from "./errno.ts";
import {
  CharDevice,
  ConsoleFile,
  HostFileDesc,
  type OpenFile,
  Pipe,
  PipeEnd,
  synthStat,
  VirtualDir,
} from "./files.ts";
import type { HostStat } from "./host.ts";
import type { Kernel, Syscall } from "./kernel.ts";
import { NR } from "./numbers.ts";
import type { Task } from "./task.ts";
import { encodeStat, encodeStatx, getI64, getU64 } from "./uapi.ts";
import { utf8Encode } from "./utf8.ts";
import { DirRef, joinPath, type Node, type ResolveCtx, ROOT_REF, splitPath } from "./vfs.ts";

const IOV_MAX = 1024;
/** Largest single transfer (Linux's MAX_RW_COUNT is INT_MAX rounded down to a page). */
const MAX_RW = 0x7ffff000;

// ------------------------------------------------------------------------------ paths

export function resolveCtx(t: Task): ResolveCtx {
  return {
    exe: () => t.exe,
    fdLink: (fd) => {
      const e = t.files.entry(fd);
      if (e === undefined) return undefined;
      const f = e.file;
      if (f instanceof HostFileDesc) return f.hostPath;
      return f.path;
    },
    fdList: () => t.files.list(),
  };
}

/** The held directory that a relative path is resolved from (re-validated by the resolver). */
function baseDir(t: Task, dirfd: number): DirRef {
  if (dirfd === AT_FDCWD) return t.cwd;
  const f = t.files.get(dirfd);
  if (f instanceof HostFileDesc) {
    if (f.dir === undefined) throw new LinuxError(ENOTDIR);
    return f.dir;
  }
  if (f instanceof VirtualDir) return DirRef.virtual(f.path);
  throw new LinuxError(ENOTDIR);
}

/** Resolve (dirfd, path) for a task. */
export function lookup(k: Kernel, t: Task, dirfd: number, path: string, follow: boolean): Node {
  const base = path.startsWith("/") ? ROOT_REF : baseDir(t, dirfd);
  return k.resolver.resolve(resolveCtx(t), base, path, follow);
}

function readPath(t: Task, va: number): string {
  if (va === 0) throw new LinuxError(EFAULT);
  return t.mm.readCString(va, 4096);
}

/** Stat of whatever a node names. */
function nodeStat(k: Kernel, t: Task, n: Node): HostStat {
  switch (n.kind) {
    case "host":
      return n.st;
    case "missing":
      throw new LinuxError(ENOENT);
    case "dev":
      return n.dev === "tty"
        ? synthStat(S_IFCHR | 0o666, 5, (5 << 8) | 0)
        : new CharDevice(n.dev, 0, n.path).stat();
    case "vdir":
      return synthStat(S_IFDIR | 0o555, hashIno(n.path));
    case "vlink":
      return { ...synthStat(S_IFLNK | 0o777, hashIno(n.path)), size: n.target.length };
    case "fdref":
      return t.files.get(n.fd).stat(k);
  }
}

function hashIno(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  return (h >>> 0) | 0x40000000;
}

/** Existing host node or the right error. */
function hostNode(n: Node): { path: string; st: HostStat } {
  if (n.kind === "host") return n;
  if (n.kind === "missing") throw new LinuxError(ENOENT);
  throw new LinuxError(EPERM);
}

const EBUSY_ROOT = 16;

// ------------------------------------------------------------------------------ open

/** Open a path for a task; returns the new description. */
export function openPath(
  k: Kernel,
  t: Task,
  dirfd: number,
  path: string,
  flags: number,
  mode: number,
): OpenFile {
  if ((flags & O_TMPFILE) === O_TMPFILE) throw new LinuxError(EOPNOTSUPP);
  const creatExcl = (flags & (O_CREAT | O_EXCL)) === (O_CREAT | O_EXCL);
  const follow = (flags & O_NOFOLLOW) === 0 && !creatExcl;
  const n = lookup(k, t, dirfd, path, follow);
  const acc = flags & O_ACCMODE;
  const wantWrite = acc === O_WRONLY || acc === O_RDWR;
  const keep = flags & ~(O_CREAT | O_EXCL | O_TRUNC | O_CLOEXEC | O_NOFOLLOW | O_DIRECTORY);
  switch (n.kind) {
    case "missing": {
      if ((flags & O_CREAT) === 0) throw new LinuxError(ENOENT);
      if (path.endsWith("/")) throw new LinuxError(EISDIR);
      const hf = k.host.fs.open(n.path, flags & ~O_CLOEXEC, mode & ~t.umask & 0o7777);
      return hostDesc(k, hf, keep, path, n.path, undefined);
    }
    case "host": {
      if (creatExcl) throw new LinuxError(EEXIST);
      const type = n.st.mode & S_IFMT;
      if (type === S_IFLNK) throw new LinuxError(ELOOP);
      if ((flags & O_DIRECTORY) !== 0 && type !== S_IFDIR) throw new LinuxError(ENOTDIR);
      if (type === S_IFDIR) {
        if (wantWrite || (flags & O_CREAT) !== 0) throw new LinuxError(EISDIR);
        const hf = k.host.fs.open(n.path, O_RDONLY | O_DIRECTORY, 0);
        // The identity is the held handle's own: the directory actually opened.
        const held = hf.stat();
        const dir = new DirRef(n.path, held.dev, held.ino);
        if (!dir.matches(n.st)) {
          hf.close();
          throw new LinuxError(ENOENT);
        }
        return hostDesc(k, hf, keep & ~O_ACCMODE, path, n.path, dir);
      }
      if (type !== S_IFREG) {
        // Host device nodes, FIFOs and sockets inside the root are not passed through.
        throw new LinuxError(type === S_IFIFO || type === S_IFSOCK ? ENXIO : EACCES);
      }
      if ((flags & O_PATH) !== 0) {
        const hf = k.host.fs.open(n.path, O_RDONLY, 0);
        return hostDesc(k, hf, O_PATH, path, n.path, undefined);
      }
      const hf = k.host.fs.open(n.path, flags & ~(O_CREAT | O_EXCL | O_CLOEXEC | O_NONBLOCK), 0);
      const d = hostDesc(k, hf, keep, path, n.path, undefined);
      if ((flags & O_TRUNC) !== 0 && wantWrite) k.pageCache.invalidate(n.st);
      return d;
    }
    case "dev": {
      if ((flags & O_DIRECTORY) !== 0) throw new LinuxError(ENOTDIR);
      if (n.dev === "tty") {
        const fd0 = t.files.entry(0)?.file;
        if (!(fd0 instanceof ConsoleFile) || !fd0.terminal) throw new LinuxError(ENXIO);
        return new ConsoleFile(
          acc === O_RDONLY ? 0 : 1,
          flags & ~O_CLOEXEC,
          k.tty,
          k.nextIno(),
          "/dev/tty",
          true,
        );
      }
      return new CharDevice(n.dev, keep, n.path);
    }
    case "vdir":
      if (wantWrite) throw new LinuxError(EISDIR);
      return new VirtualDir(keep & ~O_ACCMODE, n.path, hashIno(n.path), n.entries());
    case "vlink":
      throw new LinuxError(ELOOP);
    case "fdref": {
      const f = t.files.get(n.fd);
      f.refs++;
      return f;
    }
  }
}

function hostDesc(
  k: Kernel,
  hf: ReturnType<Kernel["host"]["fs"]["open"]>,
  flags: number,
  path: string,
  hostPath: string,
  dir: DirRef | undefined,
): HostFileDesc {
  const d = new HostFileDesc(hf, flags, path, hostPath, dir);
  if (dir === undefined) {
    let st: HostStat | undefined;
    d.onWrite = () => {
      st ??= hf.stat();
      k.pageCache.invalidate(st);
    };
  }
  return d;
}

const sys_openat: Syscall = (k, t) => {
  const path = readPath(t, t.a(1));
  const flags = t.ai(2);
  const f = openPath(k, t, t.ai(0), path, flags, t.au(3));
  try {
    return t.files.alloc(f, (flags & O_CLOEXEC) !== 0, 0, t.fdLimit);
  } catch (e) {
    f.decRef(k);
    throw e;
  }
};

const sys_close: Syscall = (k, t) => {
  t.files.close(k, t.ai(0));
  return 0;
};

const sys_close_range: Syscall = (k, t) => {
  const first = t.au(0);
  const last = t.au(1);
  const flags = t.au(2);
  if (first > last) return -EINVAL;
  const CLOSE_RANGE_CLOEXEC = 4;
  for (const fd of t.files.list()) {
    if (fd < first || fd > last) continue;
    if ((flags & CLOSE_RANGE_CLOEXEC) !== 0) t.files.entry(fd)!.cloexec = true;
    else t.files.close(k, fd);
  }
  return 0;
};

// ------------------------------------------------------------------------------ read / write

/**
 * Read into user memory from `f` (pos -1: the description's offset), zero-copy into the
 * RAM pages behind the buffer. Returns bytes, 0 at EOF, or -errno (-EAGAIN: would block).
 */
export function readToUser(k: Kernel, t: Task, f: OpenFile, va: number, len: number, pos: number): number {
  if (len === 0) return 0;
  len = Math.min(len, MAX_RW);
  const avail = f.available(k);
  if (avail > 0) len = Math.min(len, avail);
  let total = 0;
  let res = 0;
  const ram = k.ram;
  try {
    t.mm.chunks(va, len, true, (off, n) => {
      const r = f.read(k, ram.u8.subarray(off, off + n), pos < 0 ? -1 : pos + total);
      res = r;
      if (r > 0) {
        ram.markDirty(off, r);
        total += r;
      }
      return r === n;
    });
  } catch (e) {
    if (total > 0 && e instanceof LinuxError && e.errno === EFAULT) return total;
    throw e;
  }
  return total > 0 ? total : res;
}

/** Write user memory to `f`; same conventions as readToUser. */
export function writeFromUser(k: Kernel, t: Task, f: OpenFile, va: number, len: number, pos: number): number {
  if (len === 0) return 0;
  len = Math.min(len, MAX_RW);
  let total = 0;
  let res = 0;
  const ram = k.ram;
  if (f.isStream && len <= PIPE_SIZE && !(f instanceof ConsoleFile)) {
    // Gather first so that a pipe write up to PIPE_BUF stays atomic across pages.
    const buf = t.mm.copyIn(va, len);
    return f.write(k, buf, -1);
  }
  try {
    t.mm.chunks(va, len, false, (off, n) => {
      const r = f.write(k, ram.u8.subarray(off, off + n), pos < 0 ? -1 : pos + total);
      res = r;
      if (r > 0) total += r;
      return r === n;
    });
  } catch (e) {
    if (total > 0 && e instanceof LinuxError && e.errno === EFAULT) return total;
    throw e;
  }
  return total > 0 ? total : res;
}

/** Turn a would-block result into BLOCK for blocking descriptions; raise SIGPIPE on EPIPE. */
export function finishIo(k: Kernel, t: Task, f: OpenFile, r: number): number {
  if (r === -EAGAIN && (f.flags & O_NONBLOCK) === 0) {
    if (f instanceof ConsoleFile) t.waitsOnConsole = true;
    return k.block(t);
  }
  if (r === -EPIPE && f.isStream) {
    k.sendSignal(t, SIGPIPE, {
      signo: SIGPIPE,
      code: SI_USER,
      pid: t.pid,
      uid: k.host.identity.uid,
      status: 0,
      addr: 0,
    });
  }
  return r;
}

function readableFile(t: Task, fd: number): OpenFile {
  const f = t.files.get(fd);
  if (!f.readable || (f.flags & O_PATH) !== 0) throw new LinuxError(EBADF);
  return f;
}
function writableFile(t: Task, fd: number): OpenFile {
  const f = t.files.get(fd);
  if (!f.writable || (f.flags & O_PATH) !== 0) throw new LinuxError(EBADF);
  return f;
}

const sys_read: Syscall = (k, t) => {
  const f = readableFile(t, t.ai(0));
  return finishIo(k, t, f, readToUser(k, t, f, t.a(1), t.a(2), -1));
};

const sys_write: Syscall = (k, t) => {
  const f = writableFile(t, t.ai(0));
  return finishIo(k, t, f, writeFromUser(k, t, f, t.a(1), t.a(2), -1));
};

function positional(f: OpenFile, pos: number): void {
  if (f.isStream || f instanceof CharDevice) throw new LinuxError(ESPIPE);
  if (pos < 0) throw new LinuxError(EINVAL);
}

const sys_pread64: Syscall = (k, t) => {
  const f = readableFile(t, t.ai(0));
  const pos = t.al(3);
  positional(f, pos);
  return finishIo(k, t, f, readToUser(k, t, f, t.a(1), t.a(2), pos));
};

const sys_pwrite64: Syscall = (k, t) => {
  const f = writableFile(t, t.ai(0));
  const pos = t.al(3);
  positional(f, pos);
  return finishIo(k, t, f, writeFromUser(k, t, f, t.a(1), t.a(2), pos));
};

/** Read the iovec array (struct iovec { void *base; size_t len; }). */
export function readIovecs(t: Task, va: number, cnt: number): [number, number][] {
  if (cnt < 0 || cnt > IOV_MAX) throw new LinuxError(EINVAL);
  if (cnt === 0) return [];
  const b = t.mm.copyIn(va, cnt * 16);
  const dv = new DataView(b.buffer);
  const r: [number, number][] = [];
  let total = 0;
  for (let i = 0; i < cnt; i++) {
    const base = getU64(dv, i * 16);
    const len = getU64(dv, i * 16 + 8);
    if (len > MAX_RW) throw new LinuxError(EINVAL);
    total += len;
    if (total > 2 ** 53) throw new LinuxError(EINVAL);
    r.push([base, len]);
  }
  return r;
}

export function readv(k: Kernel, t: Task, f: OpenFile, iov: [number, number][], pos: number): number {
  let total = 0;
  for (const [base, len] of iov) {
    if (len === 0) continue;
    const r = readToUser(k, t, f, base, len, pos < 0 ? -1 : pos + total);
    if (r < 0) return total > 0 ? total : r;
    total += r;
    if (r < len) break;
  }
  return total;
}

export function writev(k: Kernel, t: Task, f: OpenFile, iov: [number, number][], pos: number): number {
  let sum = 0;
  for (const [, len] of iov) sum += len;
  if (f.isStream && sum <= PIPE_SIZE && iov.length > 1) {
    // One gathered write: atomic for pipes, one host write for the console.
    const buf = new Uint8Array(sum);
    let o = 0;
    for (const [base, len] of iov) {
      buf.set(t.mm.copyIn(base, len), o);
      o += len;
    }
    return f.write(k, buf, -1);
  }
  let total = 0;
  for (const [base, len] of iov) {
    if (len === 0) continue;
    const r = writeFromUser(k, t, f, base, len, pos < 0 ? -1 : pos + total);
    if (r < 0) return total > 0 ? total : r;
    total += r;
    if (r < len) break;
  }
  return total;
}

const sys_readv: Syscall = (k, t) => {
  const f = readableFile(t, t.ai(0));
  return finishIo(k, t, f, readv(k, t, f, readIovecs(t, t.a(1), t.ai(2)), -1));
};
const sys_writev: Syscall = (k, t) => {
  const f = writableFile(t, t.ai(0));
  return finishIo(k, t, f, writev(k, t, f, readIovecs(t, t.a(1), t.ai(2)), -1));
};
const sys_preadv: Syscall = (k, t) => {
  const f = readableFile(t, t.ai(0));
  const pos = t.al(3);
  positional(f, pos);
  return finishIo(k, t, f, readv(k, t, f, readIovecs(t, t.a(1), t.ai(2)), pos));
};
const sys_pwritev: Syscall = (k, t) => {
  const f = writableFile(t, t.ai(0));
  const pos = t.al(3);
  positional(f, pos);
  return finishIo(k, t, f, writev(k, t, f, readIovecs(t, t.a(1), t.ai(2)), pos));
};

const sys_lseek: Syscall = (k, t) => {
  const f = t.files.get(t.ai(0));
  return f.seek(k, t.al(1), t.ai(2));
};

const sys_sendfile: Syscall = (k, t) => {
  const out = writableFile(t, t.ai(0));
  const inp = readableFile(t, t.ai(1));
  const offPtr = t.a(2);
  let count = Math.min(t.a(3), MAX_RW);
  // The input must be seekable (a regular file): bytes the output does not take are not consumed.
  if (!(inp instanceof HostFileDesc) || inp.isDir) return -EINVAL;
  let pos = offPtr !== 0 ? t.mm.readI64(offPtr) : inp.pos;
  if (pos < 0) return -EINVAL;
  const buf = new Uint8Array(Math.min(count, 65536));
  let total = 0;
  while (count > 0) {
    const want = Math.min(count, buf.length);
    const r = inp.read(k, buf.subarray(0, want), pos);
    if (r < 0) {
      if (total > 0) break;
      return r;
    }
    if (r === 0) break;
    const w = out.write(k, buf.subarray(0, r), -1);
    if (w < 0) {
      if (total > 0) break;
      return finishIo(k, t, out, w);
    }
    total += w;
    count -= w;
    pos += w;
    if (w < r) break;
  }
  if (offPtr !== 0) t.mm.writeU64(offPtr, pos);
  else inp.pos = pos;
  return total;
};

// ------------------------------------------------------------------------------ descriptors

const sys_dup: Syscall = (_k, t) => {
  const f = t.files.get(t.ai(0));
  f.refs++;
  return t.files.alloc(f, false, 0, t.fdLimit);
};

const sys_dup3: Syscall = (k, t) => {
  const oldfd = t.ai(0);
  const newfd = t.ai(1);
  const flags = t.ai(2);
  if ((flags & ~O_CLOEXEC) !== 0 || oldfd === newfd) return -EINVAL;
  const f = t.files.get(oldfd);
  if (newfd < 0 || newfd >= t.fdLimit) return -EBADF;
  f.refs++;
  t.files.install(k, newfd, f, (flags & O_CLOEXEC) !== 0);
  return newfd;
};

const SETFL_MASK = O_APPEND | O_NONBLOCK | O_DIRECT | O_NOATIME | 0o20000; /* FASYNC */

const sys_fcntl: Syscall = (_k, t) => {
  const fd = t.ai(0);
  const cmd = t.ai(1);
  const f = t.files.get(fd);
  switch (cmd) {
    case F_DUPFD:
    case F_DUPFD_CLOEXEC: {
      const min = t.ai(2);
      if (min < 0 || min >= t.fdLimit) return -EINVAL;
      f.refs++;
      return t.files.alloc(f, cmd === F_DUPFD_CLOEXEC, min, t.fdLimit);
    }
    case F_GETFD:
      return t.files.getFdFlags(fd);
    case F_SETFD:
      t.files.entry(fd)!.cloexec = (t.ai(2) & FD_CLOEXEC) !== 0;
      return 0;
    case F_GETFL:
      return f.flags | (f instanceof HostFileDesc ? O_LARGEFILE : 0);
    case F_SETFL:
      f.flags = (f.flags & ~SETFL_MASK) | (t.ai(2) & SETFL_MASK);
      return 0;
    case F_GETLK: {
      // struct flock { short l_type; short l_whence; off_t l_start; off_t l_len; pid_t l_pid; }
      // Locks are not shared between guest processes here: every lock looks free.
      t.mm.writeU16(t.a(2), F_UNLCK);
      return 0;
    }
    case F_SETLK:
    case F_SETLKW:
      t.mm.readU16(t.a(2));
      return 0;
    case F_GETOWN:
      return 0;
    case F_SETOWN:
      return 0;
    case F_GETPIPE_SZ:
      return f instanceof PipeEnd ? PIPE_SIZE : -EBADF;
    case F_SETPIPE_SZ:
      return f instanceof PipeEnd ? PIPE_SIZE : -EBADF;
    default:
      return -EINVAL;
  }
};

const sys_flock: Syscall = (_k, t) => {
  t.files.get(t.ai(0));
  return 0;
};

const sys_pipe2: Syscall = (k, t) => {
  const va = t.a(0);
  const flags = t.ai(1);
  if ((flags & ~(O_CLOEXEC | O_NONBLOCK | O_DIRECT)) !== 0) return -EINVAL;
  const p = new Pipe(k.nextIno());
  const r = new PipeEnd(p, true, O_RDONLY | (flags & O_NONBLOCK));
  const w = new PipeEnd(p, false, O_WRONLY | (flags & O_NONBLOCK));
  const cloexec = (flags & O_CLOEXEC) !== 0;
  let rfd = -1;
  let wfd = -1;
  try {
    rfd = t.files.alloc(r, cloexec, 0, t.fdLimit);
    wfd = t.files.alloc(w, cloexec, 0, t.fdLimit);
    const b = new Uint8Array(8);
    const dv = new DataView(b.buffer);
    dv.setInt32(0, rfd, true);
    dv.setInt32(4, wfd, true);
    t.mm.copyOut(va, b);
  } catch (e) {
    if (rfd >= 0) t.files.close(k, rfd);
    else r.decRef(k);
    if (wfd >= 0) t.files.close(k, wfd);
    else w.decRef(k);
    throw e;
  }
  return 0;
};

// ------------------------------------------------------------------------------ ioctl

const sys_ioctl: Syscall = (k, t) => {
  const fd = t.ai(0);
  const req = t.au(1);
  const arg = t.a(2);
  const f = t.files.get(fd);
  switch (req) {
    case FIOCLEX:
      t.files.entry(fd)!.cloexec = true;
      return 0;
    case FIONCLEX:
      t.files.entry(fd)!.cloexec = false;
      return 0;
    case FIONBIO:
      if (t.mm.readI32(arg) !== 0) f.flags |= O_NONBLOCK;
      else f.flags &= ~O_NONBLOCK;
      return 0;
    case FIONREAD: {
      const n = f.available(k);
      if (n < 0) {
        if (f instanceof HostFileDesc && !f.isDir) {
          t.mm.writeI32(arg, Math.max(0, f.stat(k).size - f.pos));
          return 0;
        }
        return -ENOTTY;
      }
      t.mm.writeI32(arg, n);
      return 0;
    }
  }
  if (!(f instanceof ConsoleFile) || !f.terminal) return -ENOTTY;
  const tty = f.tty;
  switch (req) {
    case TCGETS: {
      const b = new Uint8Array(36);
      const dv = new DataView(b.buffer);
      dv.setUint32(0, tty.iflag, true);
      dv.setUint32(4, tty.oflag, true);
      dv.setUint32(8, tty.cflag, true);
      dv.setUint32(12, tty.lflag, true);
      b[16] = tty.line;
      b.set(tty.cc, 17);
      t.mm.copyOut(arg, b);
      return 0;
    }
    case TCSETS:
    case TCSETSW:
    case TCSETSF: {
      const b = t.mm.copyIn(arg, 36);
      const dv = new DataView(b.buffer);
      const wasCanon = (tty.lflag & ICANON) !== 0;
      tty.iflag = dv.getUint32(0, true);
      tty.oflag = dv.getUint32(4, true);
      tty.cflag = dv.getUint32(8, true);
      tty.lflag = dv.getUint32(12, true);
      tty.line = b[16]!;
      tty.cc.set(b.subarray(17, 36));
      const canon = (tty.lflag & ICANON) !== 0;
      if (canon !== wasCanon) k.host.console.setRawMode(!canon);
      return 0;
    }
    case TIOCGWINSZ: {
      const ws = k.host.console.windowSize();
      if (ws !== undefined) {
        tty.rows = ws.rows;
        tty.cols = ws.cols;
      }
      const b = new Uint8Array(8);
      const dv = new DataView(b.buffer);
      dv.setUint16(0, tty.rows, true);
      dv.setUint16(2, tty.cols, true);
      t.mm.copyOut(arg, b);
      return 0;
    }
    case TIOCSWINSZ: {
      tty.rows = t.mm.readU16(arg);
      tty.cols = t.mm.readU16(arg + 2);
      return 0;
    }
    case TIOCGPGRP:
      t.mm.writeI32(arg, tty.fgPgrp !== 0 ? tty.fgPgrp : t.pgid);
      return 0;
    case TIOCSPGRP: {
      const pg = t.mm.readI32(arg);
      if (pg < 0) return -EINVAL;
      tty.fgPgrp = pg;
      return 0;
    }
    case TIOCGSID:
      t.mm.writeI32(arg, tty.sid !== 0 ? tty.sid : t.sid);
      return 0;
    case TIOCSCTTY:
      tty.sid = t.sid;
      if (tty.fgPgrp === 0) tty.fgPgrp = t.pgid;
      return 0;
    case TIOCNOTTY:
      return 0;
    default:
      return -ENOTTY;
  }
};

// ------------------------------------------------------------------------------ metadata

function statAt(k: Kernel, t: Task, dirfd: number, pathVa: number, flags: number): HostStat {
  const path = pathVa === 0 && (flags & AT_EMPTY_PATH) !== 0 ? "" : readPath(t, pathVa);
  if (path === "") {
    if ((flags & AT_EMPTY_PATH) === 0) throw new LinuxError(ENOENT);
    if (dirfd === AT_FDCWD) return nodeStat(k, t, lookup(k, t, AT_FDCWD, ".", true));
    return t.files.get(dirfd).stat(k);
  }
  return nodeStat(k, t, lookup(k, t, dirfd, path, (flags & AT_SYMLINK_NOFOLLOW) === 0));
}

const sys_newfstatat: Syscall = (k, t) => {
  const st = statAt(k, t, t.ai(0), t.a(1), t.ai(3));
  t.mm.copyOut(t.a(2), encodeStat(st));
  return 0;
};

const sys_fstat: Syscall = (k, t) => {
  const st = t.files.get(t.ai(0)).stat(k);
  t.mm.copyOut(t.a(1), encodeStat(st));
  return 0;
};

const sys_statx: Syscall = (k, t) => {
  const st = statAt(k, t, t.ai(0), t.a(1), t.ai(2));
  const mask = STATX_BASIC_STATS | (st.birthtimeNs !== 0n ? STATX_BTIME : 0);
  t.mm.copyOut(t.a(4), encodeStatx(st, mask));
  return 0;
};

const sys_readlinkat: Syscall = (k, t) => {
  const path = readPath(t, t.a(1));
  const bufsz = t.ai(3);
  if (bufsz <= 0) return -EINVAL;
  const n = lookup(k, t, t.ai(0), path, false);
  let target: string;
  if (n.kind === "vlink") target = n.target;
  else if (n.kind === "host") {
    if ((n.st.mode & S_IFMT) !== S_IFLNK) return -EINVAL;
    target = k.host.fs.readlink(n.path);
  } else if (n.kind === "missing") return -ENOENT;
  else return -EINVAL;
  const b = utf8Encode(target).subarray(0, bufsz);
  t.mm.copyOut(t.a(2), b);
  return b.length;
};

function accessCheck(k: Kernel, st: HostStat, mode: number): number {
  if (mode === F_OK) return 0;
  const id = k.host.identity;
  if (id.uid === 0) {
    if ((mode & X_OK) !== 0 && (st.mode & S_IFMT) !== S_IFDIR && (st.mode & 0o111) === 0) return -EACCES;
    return 0;
  }
  let bits: number;
  if (st.uid === id.uid) bits = (st.mode >> 6) & 7;
  else if (st.gid === id.gid) bits = (st.mode >> 3) & 7;
  else bits = st.mode & 7;
  if ((mode & R_OK) !== 0 && (bits & 4) === 0) return -EACCES;
  if ((mode & W_OK) !== 0 && (bits & 2) === 0) return -EACCES;
  if ((mode & X_OK) !== 0 && (bits & 1) === 0) return -EACCES;
  return 0;
}

const sys_faccessat: Syscall = (k, t) => {
  const mode = t.ai(2);
  if ((mode & ~7) !== 0) return -EINVAL;
  const st = statAt(k, t, t.ai(0), t.a(1), 0);
  return accessCheck(k, st, mode);
};

const sys_faccessat2: Syscall = (k, t) => {
  const mode = t.ai(2);
  if ((mode & ~7) !== 0) return -EINVAL;
  const st = statAt(k, t, t.ai(0), t.a(1), t.ai(3));
  return accessCheck(k, st, mode);
};

// ------------------------------------------------------------------------------ directories

/** Entries of the host directory at canonical path `dir` (checked to be `f`'s directory in this call). */
function listHostDir(
  k: Kernel,
  f: HostFileDesc,
  dir: string,
  list: { name: string; ino: number; type: number }[],
): void {
  const self = f.stat(k);
  list.push({ name: ".", ino: self.ino, type: DT_DIR });
  const parent = dir === "/" ? dir : joinPath(splitPath(dir).slice(0, -1));
  let pino = self.ino;
  try {
    pino = k.host.fs.lstat(parent).ino;
  } catch {
    // keep the directory's own inode
  }
  list.push({ name: "..", ino: pino, type: DT_DIR });
  for (const name of k.host.fs.readdir(dir)) {
    const p = dir === "/" ? `/${name}` : `${dir}/${name}`;
    try {
      const st = k.host.fs.lstat(p);
      list.push({ name, ino: st.ino, type: dtype(st.mode) });
    } catch {
      // vanished meanwhile
    }
  }
}

const sys_getdents64: Syscall = (k, t) => {
  const f = t.files.get(t.ai(0));
  const va = t.a(1);
  const count = Math.min(t.au(2), 1 << 20);
  let entries: { name: string; ino: number; type: number }[];
  if (f instanceof HostFileDesc) {
    if (f.dir === undefined) return -ENOTDIR;
    if (f.dirEntries === undefined || f.pos === 0) {
      // List the held directory, never whatever its old path names now: one that is no
      // longer where it was is Linux's dead directory, which getdents refuses with ENOENT
      // (fs/readdir.c, iterate_dir).
      const at = k.resolver.locate(resolveCtx(t), f.dir);
      if (at === undefined) return -ENOENT;
      const list: { name: string; ino: number; type: number }[] = [];
      listHostDir(k, f, joinPath(at), list);
      f.dirEntries = list;
    }
    entries = f.dirEntries;
  } else if (f instanceof VirtualDir) {
    entries = [
      { name: ".", ino: f.ino, type: DT_DIR },
      { name: "..", ino: 1, type: DT_DIR },
      ...f.entries.map((name, i) => ({ name, ino: f.ino + i + 1, type: DT_UNKNOWN })),
    ];
  } else {
    return -ENOTDIR;
  }
  const out = new Uint8Array(count);
  const dv = new DataView(out.buffer);
  let o = 0;
  let i = f.pos;
  for (; i < entries.length; i++) {
    const e = entries[i]!;
    const name = utf8Encode(e.name);
    const reclen = Math.ceil((19 + name.length + 1) / 8) * 8;
    if (o + reclen > count) break;
    dv.setUint32(o, (e.ino % 4294967296) >>> 0, true);
    dv.setUint32(o + 4, Math.floor(e.ino / 4294967296), true);
    dv.setUint32(o + 8, i + 1, true);
    dv.setUint16(o + 16, reclen, true);
    out[o + 18] = e.type;
    out.set(name, o + 19);
    o += reclen;
  }
  if (o === 0 && i < entries.length) return -EINVAL;
  f.pos = i;
  if (o > 0) t.mm.copyOut(va, out.subarray(0, o));
  return o;
};

function dtype(mode: number): number {
  switch (mode & S_IFMT) {
    case S_IFREG:
      return DT_REG;
    case S_IFDIR:
      return DT_DIR;
    case S_IFLNK:
      return DT_LNK;
    case S_IFCHR:
      return DT_CHR;
    case S_IFBLK:
      return DT_BLK;
    case S_IFIFO:
      return DT_FIFO;
    case S_IFSOCK:
      return DT_SOCK;
    default:
      return DT_UNKNOWN;
  }
}

const sys_mkdirat: Syscall = (k, t) => {
  const path = readPath(t, t.a(1));
  const n = lookup(k, t, t.ai(0), path, false);
  if (n.kind !== "missing") return -EEXIST;
  k.host.fs.mkdir(n.path, t.au(2) & ~t.umask & 0o7777);
  return 0;
};

const sys_mknodat: Syscall = (k, t) => {
  const path = readPath(t, t.a(1));
  const mode = t.au(2);
  const n = lookup(k, t, t.ai(0), path, false);
  if (n.kind !== "missing") return -EEXIST;
  const type = mode & S_IFMT;
  if (type === S_IFREG || type === 0) {
    k.host.fs.open(n.path, O_WRONLY | O_CREAT | O_EXCL, mode & ~t.umask & 0o7777).close();
    return 0;
  }
  // Device nodes, FIFOs and sockets are not created on the host.
  return -EPERM;
};

const sys_unlinkat: Syscall = (k, t) => {
  const path = readPath(t, t.a(1));
  const flags = t.ai(2);
  if ((flags & ~AT_REMOVEDIR) !== 0) return -EINVAL;
  const n = lookup(k, t, t.ai(0), path, false);
  const h = hostNode(n);
  if (h.path === "/") return -EBUSY_ROOT;
  if ((flags & AT_REMOVEDIR) !== 0) {
    if ((h.st.mode & S_IFMT) !== S_IFDIR) return -ENOTDIR;
    const last = splitPath(path).pop();
    if (last === ".") return -EINVAL;
    k.host.fs.rmdir(h.path);
  } else {
    if ((h.st.mode & S_IFMT) === S_IFDIR) return -EISDIR;
    k.host.fs.unlink(h.path);
    k.pageCache.invalidate(h.st);
  }
  return 0;
};

const sys_symlinkat: Syscall = (k, t) => {
  const target = readPath(t, t.a(0));
  const path = readPath(t, t.a(2));
  const n = lookup(k, t, t.ai(1), path, false);
  if (n.kind !== "missing") return -EEXIST;
  // The target is stored verbatim: it is only ever interpreted by our resolver, inside the root.
  k.host.fs.symlink(target, n.path);
  return 0;
};

const sys_linkat: Syscall = (k, t) => {
  const oldp = readPath(t, t.a(1));
  const newp = readPath(t, t.a(3));
  const flags = t.ai(4);
  const src = hostNode(lookup(k, t, t.ai(0), oldp, (flags & AT_SYMLINK_FOLLOW) !== 0));
  if ((src.st.mode & S_IFMT) === S_IFDIR) return -EPERM;
  const dst = lookup(k, t, t.ai(2), newp, false);
  if (dst.kind !== "missing") return -EEXIST;
  k.host.fs.link(src.path, dst.path);
  return 0;
};

const sys_renameat2: Syscall = (k, t) => {
  const oldp = readPath(t, t.a(1));
  const newp = readPath(t, t.a(3));
  const flags = t.au(4);
  const RENAME_NOREPLACE = 1;
  if ((flags & ~RENAME_NOREPLACE) !== 0) return -EINVAL;
  const src = lookup(k, t, t.ai(0), oldp, false);
  const s = hostNode(src);
  if (s.path === "/") return -EBUSY_ROOT;
  const dst = lookup(k, t, t.ai(2), newp, false);
  if (dst.kind !== "missing" && dst.kind !== "host") return -EXDEV;
  if (dst.kind === "host") {
    if ((flags & RENAME_NOREPLACE) !== 0) return -EEXIST;
    if (dst.path === s.path) return 0;
    if (dst.path.startsWith(`${s.path}/`)) return -EINVAL;
    const sdir = (s.st.mode & S_IFMT) === S_IFDIR;
    const ddir = (dst.st.mode & S_IFMT) === S_IFDIR;
    if (sdir && !ddir) return -ENOTDIR;
    if (!sdir && ddir) return -EISDIR;
    if (ddir && k.host.fs.readdir(dst.path).length > 0) return -ENOTEMPTY;
  } else if (dst.path.startsWith(`${s.path}/`)) {
    return -EINVAL;
  }
  k.host.fs.rename(s.path, dst.path);
  // Held directories at or below a renamed directory follow it, as on Linux.
  if ((s.st.mode & S_IFMT) === S_IFDIR) k.movedDir(s.path, dst.path);
  return 0;
};

const sys_fchmodat: Syscall = (k, t) => {
  const path = readPath(t, t.a(1));
  const n = hostNode(lookup(k, t, t.ai(0), path, true));
  k.host.fs.chmod(n.path, t.au(2) & 0o7777);
  return 0;
};

const sys_fchmod: Syscall = (_k, t) => {
  const f = t.files.get(t.ai(0));
  if (!(f instanceof HostFileDesc)) return -EPERM;
  f.host.chmod(t.au(1) & 0o7777);
  return 0;
};

const sys_fchownat: Syscall = (k, t) => {
  const flags = t.ai(4);
  const path = readPath(t, t.a(1));
  if (path === "") {
    if ((flags & AT_EMPTY_PATH) === 0) return -ENOENT;
    return sys_fchown_fd(k, t, t.ai(0), t.au(2), t.au(3));
  }
  const n = hostNode(lookup(k, t, t.ai(0), path, (flags & AT_SYMLINK_NOFOLLOW) === 0));
  const uid = t.au(2);
  const gid = t.au(3);
  k.host.fs.chown(n.path, uid === 0xffffffff ? n.st.uid : uid, gid === 0xffffffff ? n.st.gid : gid);
  return 0;
};

function sys_fchown_fd(k: Kernel, t: Task, fd: number, uid: number, gid: number): number {
  const f = t.files.get(fd);
  if (!(f instanceof HostFileDesc)) return -EPERM;
  const st = f.stat(k);
  f.host.chown(uid === 0xffffffff ? st.uid : uid, gid === 0xffffffff ? st.gid : gid);
  return 0;
}

const sys_fchown: Syscall = (k, t) => sys_fchown_fd(k, t, t.ai(0), t.au(1), t.au(2));

const UTIME_NOW = 0x3fffffff;
const UTIME_OMIT = 0x3ffffffe;

const sys_utimensat: Syscall = (k, t) => {
  const dirfd = t.ai(0);
  const pathVa = t.a(1);
  const timesVa = t.a(2);
  const flags = t.ai(3);
  const now = k.host.clock.realtimeNs();
  let at: bigint | undefined = now;
  let mt: bigint | undefined = now;
  if (timesVa !== 0) {
    const b = t.mm.copyIn(timesVa, 32);
    const dv = new DataView(b.buffer);
    const dec = (o: number): bigint | undefined => {
      const ns = getI64(dv, o + 8);
      if (ns === UTIME_OMIT) return undefined;
      if (ns === UTIME_NOW) return now;
      if (ns < 0 || ns >= 1e9) throw new LinuxError(EINVAL);
      return BigInt(getI64(dv, o)) * 1000000000n + BigInt(ns);
    };
    at = dec(0);
    mt = dec(16);
  }
  if (pathVa === 0) {
    const f = t.files.get(dirfd);
    if (!(f instanceof HostFileDesc)) return -EPERM;
    f.host.utimens(at, mt);
    return 0;
  }
  const path = readPath(t, pathVa);
  if (path === "" && (flags & AT_EMPTY_PATH) !== 0) {
    const f = t.files.get(dirfd);
    if (!(f instanceof HostFileDesc)) return -EPERM;
    f.host.utimens(at, mt);
    return 0;
  }
  const n = lookup(k, t, dirfd, path, (flags & AT_SYMLINK_NOFOLLOW) === 0);
  if (n.kind === "dev") return 0;
  k.host.fs.utimens(hostNode(n).path, at, mt);
  return 0;
};

const sys_truncate: Syscall = (k, t) => {
  const path = readPath(t, t.a(0));
  const len = t.al(1);
  if (len < 0) return -EINVAL;
  const n = hostNode(lookup(k, t, AT_FDCWD, path, true));
  if ((n.st.mode & S_IFMT) === S_IFDIR) return -EISDIR;
  k.host.fs.truncate(n.path, len);
  k.pageCache.invalidate(n.st);
  return 0;
};

const sys_ftruncate: Syscall = (k, t) => {
  const f = t.files.get(t.ai(0));
  const len = t.al(1);
  if (len < 0) return -EINVAL;
  if (!f.writable || !(f instanceof HostFileDesc)) return -EINVAL;
  f.truncate(k, len);
  return 0;
};

const sys_fallocate: Syscall = (k, t) => {
  const f = t.files.get(t.ai(0));
  const mode = t.ai(1);
  const off = t.al(2);
  const len = t.al(3);
  if (mode !== 0) return -EOPNOTSUPP;
  if (off < 0 || len <= 0) return -EINVAL;
  if (!(f instanceof HostFileDesc) || !f.writable) return -EBADF;
  const size = f.stat(k).size;
  if (off + len > size) f.truncate(k, off + len);
  return 0;
};

const sys_fsync: Syscall = (k, t) => {
  t.files.get(t.ai(0)).sync(k);
  return 0;
};

const sys_sync: Syscall = () => 0;

const sys_chdir: Syscall = (k, t) => {
  const path = readPath(t, t.a(0));
  const n = lookup(k, t, AT_FDCWD, path, true);
  if (n.kind !== "vdir") hostNode(n);
  t.cwd = k.resolver.refOf(n);
  return 0;
};

const sys_fchdir: Syscall = (_k, t) => {
  const f = t.files.get(t.ai(0));
  // The working directory becomes the held directory itself (validated at each use).
  if (f instanceof HostFileDesc && f.dir !== undefined) t.cwd = f.dir;
  else if (f instanceof VirtualDir) t.cwd = DirRef.virtual(f.path);
  else return -ENOTDIR;
  return 0;
};

const sys_getcwd: Syscall = (k, t) => {
  // Linux: ENOENT when the working directory has been removed.
  const at = k.resolver.locate(resolveCtx(t), t.cwd);
  if (at === undefined) return -ENOENT;
  const b = utf8Encode(`${joinPath(at)}\0`);
  if (t.a(1) < b.length) return -34; // ERANGE
  t.mm.copyOut(t.a(0), b);
  return b.length;
};

const sys_umask: Syscall = (_k, t) => {
  const old = t.umask;
  t.umask = t.au(0) & 0o777;
  return old;
};

function encodeStatfs(k: Kernel, path: string): Uint8Array {
  const s = k.host.fs.statfs(path);
  const b = new Uint8Array(120);
  const dv = new DataView(b.buffer);
  const put = (o: number, v: number) => {
    dv.setUint32(o, (v % 4294967296) >>> 0, true);
    dv.setUint32(o + 4, Math.floor(v / 4294967296), true);
  };
  put(0, s.type);
  put(8, s.bsize);
  put(16, s.blocks);
  put(24, s.bfree);
  put(32, s.bavail);
  put(40, s.files);
  put(48, s.ffree);
  put(64, s.namelen);
  put(72, s.bsize);
  return b;
}

const sys_statfs: Syscall = (k, t) => {
  const path = readPath(t, t.a(0));
  const n = lookup(k, t, AT_FDCWD, path, true);
  t.mm.copyOut(t.a(1), encodeStatfs(k, n.kind === "host" ? n.path : "/"));
  return 0;
};

const sys_fstatfs: Syscall = (k, t) => {
  const f = t.files.get(t.ai(0));
  // A held directory is re-validated (a stale one reports the root's file system); other
  // descriptions report the root's.
  let at = "/";
  if (f instanceof HostFileDesc && f.dir !== undefined) {
    const p = k.resolver.locate(resolveCtx(t), f.dir);
    if (p !== undefined) at = joinPath(p);
  }
  t.mm.copyOut(t.a(1), encodeStatfs(k, at));
  return 0;
};

const sys_fadvise64: Syscall = (_k, t) => {
  const f = t.files.get(t.ai(0));
  if (f.isStream) return -ESPIPE;
  return 0;
};

export function registerFs(table: (Syscall | undefined)[]): void {
  const set = (name: string, fn: Syscall) => {
    const nr = NR[name];
    if (nr === undefined) throw new Error(`unknown syscall ${name}`);
    table[nr] = fn;
  };
  set("openat", sys_openat);
  set("close", sys_close);
  set("close_range", sys_close_range);
  set("read", sys_read);
  set("write", sys_write);
  set("readv", sys_readv);
  set("writev", sys_writev);
  set("pread64", sys_pread64);
  set("pwrite64", sys_pwrite64);
  set("preadv", sys_preadv);
  set("pwritev", sys_pwritev);
  set("lseek", sys_lseek);
  set("sendfile", sys_sendfile);
  set("dup", sys_dup);
  set("dup3", sys_dup3);
  set("fcntl", sys_fcntl);
  set("flock", sys_flock);
  set("pipe2", sys_pipe2);
  set("ioctl", sys_ioctl);
  set("newfstatat", sys_newfstatat);
  set("fstat", sys_fstat);
  set("statx", sys_statx);
  set("readlinkat", sys_readlinkat);
  set("faccessat", sys_faccessat);
  set("faccessat2", sys_faccessat2);
  set("getdents64", sys_getdents64);
  set("mkdirat", sys_mkdirat);
  set("mknodat", sys_mknodat);
  set("unlinkat", sys_unlinkat);
  set("symlinkat", sys_symlinkat);
  set("linkat", sys_linkat);
  set("renameat2", sys_renameat2);
  set("fchmodat", sys_fchmodat);
  set("fchmod", sys_fchmod);
  set("fchownat", sys_fchownat);
  set("fchown", sys_fchown);
  set("utimensat", sys_utimensat);
  set("truncate", sys_truncate);
  set("ftruncate", sys_ftruncate);
  set("fallocate", sys_fallocate);
  set("fsync", sys_fsync);
  set("fdatasync", sys_fsync);
  set("sync", sys_sync);
  set("syncfs", sys_sync);
  set("chdir", sys_chdir);
  set("fchdir", sys_fchdir);
  set("getcwd", sys_getcwd);
  set("umask", sys_umask);
  set("statfs", sys_statfs);
  set("fstatfs", sys_fstatfs);
  set("fadvise64", sys_fadvise64);
}
