/// <reference types="node" />
import { createRequire } from "node:module";

/*
 * Disk image locks, held by the kernel on the image file itself, so they go away with the
 * process however it ends (no lock file to go stale). The scheme is QEMU's
 * (block/file-posix.c, raw_apply_lock_bytes): byte-range locks on bytes that name a
 * permission, far below nothing (locks do not touch the data). Two bytes matter here:
 *
 *   WRITE_BYTE    held by a writer: exclusively (a writer also excludes other writers)
 *   UNSHARE_BYTE  held (shared) by a reader that does not let anyone write meanwhile
 *
 * A writer takes WRITE_BYTE exclusively (fails if another writer has it, or a QEMU writer
 * holds it shared), then checks that nobody holds UNSHARE_BYTE. A reader takes
 * UNSHARE_BYTE shared, then checks that nobody holds WRITE_BYTE. Each side locks before
 * it checks, so of two processes opening at once at least one sees the other. Readers
 * share freely; a reader opened with `shareRw` takes no lock and coexists with a writer
 * (it accepts that the image changes under it), as QEMU's share-rw=on does.
 *
 * Linux: open file description locks (fcntl F_OFD_SETLK / F_OFD_GETLK), as QEMU uses:
 * they belong to the open file, not the process, so two opens in one process conflict
 * too. Other Unix systems: flock() on the whole file (writer exclusive, reader shared).
 * Node has neither call, so they go through the koffi C FFI (prebuilt, no compiler).
 */

/** QEMU block/file-posix.c: RAW_LOCK_PERM_BASE + the bit of BLK_PERM_WRITE (1 << 1). */
export const WRITE_BYTE = 100 + 1;
/** QEMU block/file-posix.c: RAW_LOCK_SHARED_BASE + the bit of BLK_PERM_WRITE (1 << 1). */
export const UNSHARE_BYTE = 200 + 1;

// <fcntl.h> on Linux (asm-generic/fcntl.h).
const F_OFD_GETLK = 36;
const F_OFD_SETLK = 37;
const F_RDLCK = 0;
const F_WRLCK = 1;
const F_UNLCK = 2;
const SEEK_SET = 0;
// <sys/file.h>
const LOCK_SH = 1;
const LOCK_EX = 2;
const LOCK_NB = 4;
// <errno.h>: what a lock held by someone else returns (EWOULDBLOCK is EAGAIN on Linux).
const EACCES = 13;
const EAGAIN = 11;
const EWOULDBLOCK_BSD = 35;

export type ImageLockMode = "write" | "read" | "none";

/** Thrown when another process holds a conflicting lock. */
export class ImageLockedError extends Error {
  override name = "ImageLockedError";
}

interface Flock {
  l_type: number;
  l_whence: number;
  l_start: number;
  l_len: number;
  l_pid: number;
}

interface LockCalls {
  /** Set (or, with F_UNLCK, drop) a lock on one byte; false if another holder conflicts. */
  set(fd: number, byte: number, type: number): boolean;
  /** True if a lock of `type` on `byte` would conflict with someone else's. */
  conflicts(fd: number, byte: number, type: number): boolean;
  /** flock(): false if it would block. */
  flock?(fd: number, op: number): boolean;
  errno(): number;
}

let calls: LockCalls | null | undefined;

/** The FFI calls, or null where the platform has none (Windows). Loaded once, on first use. */
function lockCalls(): LockCalls | null {
  if (calls !== undefined) return calls;
  if (process.platform === "win32") {
    calls = null;
    return calls;
  }
  const require = createRequire(import.meta.url);
  const koffi = require("koffi") as typeof import("koffi");
  if (process.platform === "linux") {
    const libc = koffi.load("libc.so.6");
    // struct flock (asm-generic/fcntl.h): short, short, off_t, off_t, pid_t; koffi pads it.
    koffi.struct("visor_flock", {
      l_type: "short",
      l_whence: "short",
      l_start: "int64_t",
      l_len: "int64_t",
      l_pid: "int",
    });
    const fcntl = libc.func("int fcntl(int fd, int cmd, ...)");
    const lk = (byte: number, type: number): Flock => ({
      l_type: type,
      l_whence: SEEK_SET,
      l_start: byte,
      l_len: 1,
      l_pid: 0,
    });
    calls = {
      set: (fd, byte, type) => fcntl(fd, F_OFD_SETLK, "visor_flock *", lk(byte, type)) === 0,
      conflicts: (fd, byte, type) => {
        const q = lk(byte, type);
        if (fcntl(fd, F_OFD_GETLK, "_Inout_ visor_flock *", q) !== 0) return true;
        return q.l_type !== F_UNLCK;
      },
      errno: () => koffi.errno(),
    };
  } else {
    const libc = koffi.load(process.platform === "darwin" ? "libSystem.dylib" : "libc.so.7");
    const flock = libc.func("int flock(int fd, int op)");
    calls = {
      set: () => true,
      conflicts: () => false,
      flock: (fd, op) => flock(fd, op) === 0,
      errno: () => koffi.errno(),
    };
  }
  return calls;
}

/**
 * Lock an open image file for `mode`, or throw ImageLockedError naming `path`. The lock
 * lives as long as `fd` is open: closing it (or the process ending) releases it.
 */
export function lockImage(fd: number, path: string, mode: ImageLockMode): void {
  if (mode === "none") return;
  const c = lockCalls();
  if (c === null) return;
  const inUse = (): Error => {
    const errno = c.errno();
    if (errno !== EAGAIN && errno !== EACCES && errno !== EWOULDBLOCK_BSD && errno !== 0) {
      return new Error(`cannot lock ${path} (errno ${errno})`);
    }
    return new ImageLockedError(`${path} is in use by another process (locked)`);
  };
  const locked = () => new ImageLockedError(`${path} is in use by another process (locked)`);
  if (c.flock !== undefined) {
    if (!c.flock(fd, (mode === "write" ? LOCK_EX : LOCK_SH) | LOCK_NB)) throw inUse();
    return;
  }
  if (mode === "write") {
    if (!c.set(fd, WRITE_BYTE, F_WRLCK)) throw inUse();
    if (c.conflicts(fd, UNSHARE_BYTE, F_WRLCK)) {
      c.set(fd, WRITE_BYTE, F_UNLCK);
      throw locked();
    }
  } else {
    if (!c.set(fd, UNSHARE_BYTE, F_RDLCK)) throw inUse();
    if (c.conflicts(fd, WRITE_BYTE, F_WRLCK)) {
      c.set(fd, UNSHARE_BYTE, F_UNLCK);
      throw locked();
    }
  }
}

/**
 * Turn a write lock taken with lockImage(fd, path, "write") into a read lock, without a
 * moment unlocked in between: the image another process may now read but not write
 * (the frozen image of an overlay switch).
 */
export function downgradeImageLock(fd: number, path: string): void {
  const c = lockCalls();
  if (c === null) return;
  if (c.flock !== undefined) {
    if (!c.flock(fd, LOCK_SH | LOCK_NB))
      throw new Error(`cannot downgrade the lock on ${path} (errno ${c.errno()})`);
    return;
  }
  if (!c.set(fd, UNSHARE_BYTE, F_RDLCK))
    throw new Error(`cannot downgrade the lock on ${path} (errno ${c.errno()})`);
  c.set(fd, WRITE_BYTE, F_UNLCK);
}
