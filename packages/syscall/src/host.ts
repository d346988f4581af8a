/**
 * What the Linux ABI layer needs from its host. The core never imports a `node:` module:
 * a Node implementation lives in src/node/, and a browser could supply an in-memory one.
 *
 * Errors: host methods throw `LinuxError` (from errno.ts) with the Linux errno.
 */

/** File metadata, as `lstat`/`fstat` report it. */
export interface HostStat {
  dev: number;
  ino: number;
  /** st_mode: file type bits (S_IFMT) and permissions. */
  mode: number;
  nlink: number;
  uid: number;
  gid: number;
  rdev: number;
  size: number;
  blksize: number;
  blocks: number;
  atimeNs: bigint;
  mtimeNs: bigint;
  ctimeNs: bigint;
  birthtimeNs: bigint;
}

export interface HostStatFs {
  type: number;
  bsize: number;
  blocks: number;
  bfree: number;
  bavail: number;
  files: number;
  ffree: number;
  namelen: number;
}

/** An open host file (regular file or directory opened for reading). */
export interface HostFile {
  /** pread: bytes read into dst (0 at end of file). */
  read(dst: Uint8Array, pos: number): number;
  /** pwrite; `pos` -1 appends. Returns bytes written. */
  write(src: Uint8Array, pos: number): number;
  stat(): HostStat;
  truncate(len: number): void;
  sync(): void;
  datasync(): void;
  chmod(mode: number): void;
  chown(uid: number, gid: number): void;
  /** Set times in nanoseconds since the epoch; undefined leaves a time unchanged. */
  utimens(atimeNs: bigint | undefined, mtimeNs: bigint | undefined): void;
  close(): void;
}

/**
 * The host file system, seen through the guest's root. Every path is an absolute guest
 * path ("/a/b") that the kernel has already resolved component by component: no `.` or
 * `..`, and no symlink in any component but possibly the last. Implementations map it
 * under their root directory and must not follow a symlink in the last component unless
 * asked to (`open` always gets O_NOFOLLOW semantics for the last component).
 */
export interface HostFs {
  lstat(path: string): HostStat;
  readlink(path: string): string;
  /** `flags` are Linux open(2) flags (O_ACCMODE, O_CREAT, O_EXCL, O_TRUNC, O_APPEND, O_DIRECTORY ...). */
  open(path: string, flags: number, mode: number): HostFile;
  /** Entry names of a directory, without "." and "..". */
  readdir(path: string): string[];
  mkdir(path: string, mode: number): void;
  rmdir(path: string): void;
  unlink(path: string): void;
  rename(from: string, to: string): void;
  symlink(target: string, path: string): void;
  link(existing: string, path: string): void;
  chmod(path: string, mode: number): void;
  /** lchown semantics: never follows a symlink in the last component. */
  chown(path: string, uid: number, gid: number): void;
  /** lutimes semantics. */
  utimens(path: string, atimeNs: bigint | undefined, mtimeNs: bigint | undefined): void;
  truncate(path: string, len: number): void;
  statfs(path: string): HostStatFs;
}

/** The terminal / standard streams of the host. */
export interface HostConsole {
  /** Write all of `data` to host fd 1 or 2; throws LinuxError (EPIPE ...) when the stream is gone. */
  write(fd: 1 | 2, data: Uint8Array): void;
  /**
   * Read from host stdin: bytes read (> 0), 0 at end of input, or -1 when nothing is
   * available now (the kernel then blocks the reader and waits for `Host.wait`).
   */
  read(dst: Uint8Array): number;
  /** True when a `read` would not return -1 (data buffered, or end of input reached). */
  hasInput(): boolean;
  isatty(fd: 0 | 1 | 2): boolean;
  /** Terminal size, when stdin/stdout is a terminal. */
  windowSize(): { rows: number; cols: number } | undefined;
  /** Switch the host terminal between canonical (cooked) and raw input. */
  setRawMode(raw: boolean): void;
}

export interface HostClock {
  /** CLOCK_REALTIME in nanoseconds since the epoch. */
  realtimeNs(): bigint;
  /** CLOCK_MONOTONIC in nanoseconds. */
  monotonicNs(): bigint;
}

export interface HostIdentity {
  uid: number;
  gid: number;
  hostname: string;
}

export interface Host {
  fs: HostFs;
  console: HostConsole;
  clock: HostClock;
  identity: HostIdentity;
  /** Fill `dst` with cryptographically strong random bytes. */
  random(dst: Uint8Array): void;
  /**
   * Resolve after `ms` milliseconds, or earlier when host input arrives (stdin data, a
   * signal). `wait(0)` just yields to the host's event loop.
   */
  wait(ms: number): Promise<void>;
  /** Host signals (SIGINT from the terminal ...) received since the last call. */
  takeSignals(): number[];
}
