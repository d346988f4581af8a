/// <reference types="node" />
/**
 * The Node.js host for @visor/syscall: the guest's "/" is a host directory, the standard
 * streams are the process's, time comes from the process clocks.
 *
 * Defence in depth for the root jail: the kernel resolves every path itself (vfs.ts) and
 * hands over canonical, symlink-free paths; on top of that every open uses O_NOFOLLOW and
 * then checks, through /proc/self/fd, that the file it got really lies under the root
 * (which defeats a host process racing to swap a directory for a symlink), and every call
 * that creates, removes, renames, links, lists or changes something first checks that the
 * directory it acts in really lies under the root (its realpath): a path the kernel got
 * wrong fails with EACCES instead of touching the host. lstat and readlink, the resolver's
 * own per-component calls, are not re-checked (they only ever see canonical paths).
 */

import { randomFillSync } from "node:crypto";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import tty from "node:tty";
import {
  ERRNO_BY_NAME,
  type Host,
  type HostConsole,
  type HostFile,
  type HostFs,
  type HostStat,
  type HostStatFs,
  LinuxError,
  O_ACCMODE,
  O_APPEND,
  O_CREAT,
  O_DIRECTORY,
  O_DSYNC,
  O_EXCL,
  O_NOFOLLOW,
  O_RDWR,
  O_SYNC,
  O_TRUNC,
  O_WRONLY,
} from "../index.ts";

const EACCES = 13;

/** Turn a Node fs error into a LinuxError. */
export function hostError(e: unknown): unknown {
  const code = (e as { code?: unknown }).code;
  if (typeof code === "string" && ERRNO_BY_NAME[code] !== undefined)
    return new LinuxError(ERRNO_BY_NAME[code]!, (e as Error).message);
  // Node's own argument checks (a value out of range for the host call): EINVAL.
  if (typeof code === "string" && (code === "ERR_OUT_OF_RANGE" || code.startsWith("ERR_INVALID_ARG"))) {
    return new LinuxError(22, (e as Error).message);
  }
  return e;
}

function wrap<T>(fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    throw hostError(e);
  }
}

function toStat(s: fs.BigIntStats): HostStat {
  return {
    dev: Number(s.dev),
    ino: Number(s.ino),
    mode: Number(s.mode),
    nlink: Number(s.nlink),
    uid: Number(s.uid),
    gid: Number(s.gid),
    rdev: Number(s.rdev),
    size: Number(s.size),
    blksize: Number(s.blksize),
    blocks: Number(s.blocks),
    atimeNs: s.atimeNs,
    mtimeNs: s.mtimeNs,
    ctimeNs: s.ctimeNs,
    birthtimeNs: s.birthtimeNs,
  };
}

/** Linux open(2) flags to the host's (the numbers differ between architectures). */
function hostFlags(flags: number): number {
  const c = fs.constants;
  const acc = flags & O_ACCMODE;
  let f = acc === O_WRONLY ? c.O_WRONLY : acc === O_RDWR ? c.O_RDWR : c.O_RDONLY;
  if ((flags & O_CREAT) !== 0) f |= c.O_CREAT;
  if ((flags & O_EXCL) !== 0) f |= c.O_EXCL;
  if ((flags & O_TRUNC) !== 0) f |= c.O_TRUNC;
  if ((flags & O_APPEND) !== 0) f |= c.O_APPEND;
  if ((flags & O_DIRECTORY) !== 0) f |= c.O_DIRECTORY;
  if ((flags & O_SYNC) === O_SYNC) f |= c.O_SYNC;
  else if ((flags & O_DSYNC) !== 0) f |= c.O_DSYNC;
  f |= c.O_NOFOLLOW;
  void O_NOFOLLOW;
  return f;
}

const nsToSec = (ns: bigint) => Number(ns) / 1e9;

class NodeFile implements HostFile {
  readonly fd: number;
  constructor(fd: number) {
    this.fd = fd;
  }
  read(dst: Uint8Array, pos: number): number {
    return wrap(() => fs.readSync(this.fd, dst, 0, dst.length, pos));
  }
  write(src: Uint8Array, pos: number): number {
    return wrap(() => fs.writeSync(this.fd, src, 0, src.length, pos < 0 ? null : pos));
  }
  stat(): HostStat {
    return wrap(() => toStat(fs.fstatSync(this.fd, { bigint: true })));
  }
  truncate(len: number): void {
    wrap(() => fs.ftruncateSync(this.fd, len));
  }
  sync(): void {
    wrap(() => fs.fsyncSync(this.fd));
  }
  datasync(): void {
    wrap(() => fs.fdatasyncSync(this.fd));
  }
  chmod(mode: number): void {
    wrap(() => fs.fchmodSync(this.fd, mode));
  }
  chown(uid: number, gid: number): void {
    wrap(() => fs.fchownSync(this.fd, uid, gid));
  }
  utimens(a: bigint | undefined, m: bigint | undefined): void {
    const st = a === undefined || m === undefined ? this.stat() : undefined;
    wrap(() => fs.futimesSync(this.fd, nsToSec(a ?? st!.atimeNs), nsToSec(m ?? st!.mtimeNs)));
  }
  close(): void {
    wrap(() => fs.closeSync(this.fd));
  }
}

/** The host file system under `root`. */
export class NodeFs implements HostFs {
  readonly root: string;
  private readonly checkFd: boolean;

  constructor(root: string) {
    const real = fs.realpathSync(root);
    if (!fs.statSync(real).isDirectory()) throw new Error(`root ${root} is not a directory`);
    this.root = real;
    this.checkFd = fs.existsSync("/proc/self/fd");
  }

  /** Host path of a canonical guest path. */
  host(p: string): string {
    if (!p.startsWith("/") || p.split("/").some((c) => c === ".." || c === ".")) {
      throw new Error(`internal: non-canonical guest path ${JSON.stringify(p)}`);
    }
    return p === "/" ? this.root : this.root + p;
  }

  private inside(real: string): boolean {
    return real === this.root || real.startsWith(this.root === "/" ? "/" : `${this.root}/`);
  }

  /**
   * The host directory that `p`'s last component lives in (or, with `self`, `p` itself)
   * really lies under the root; EACCES otherwise.
   */
  private confine(p: string, self = false): void {
    const h = this.host(p);
    if (h === this.root) return;
    const dir = self ? h : h.slice(0, h.lastIndexOf("/"));
    const real = wrap(() => fs.realpathSync.native(dir));
    if (!this.inside(real)) throw new LinuxError(EACCES, `${p} resolves outside the root`);
  }

  lstat(p: string): HostStat {
    return wrap(() => toStat(fs.lstatSync(this.host(p), { bigint: true })));
  }
  readlink(p: string): string {
    return wrap(() => fs.readlinkSync(this.host(p), "utf8"));
  }
  open(p: string, flags: number, mode: number): HostFile {
    // A create must not happen outside before the descriptor check below can refuse it.
    if ((flags & O_CREAT) !== 0) this.confine(p);
    const fd = wrap(() => fs.openSync(this.host(p), hostFlags(flags), mode));
    if (this.checkFd) {
      let real: string;
      try {
        real = fs.readlinkSync(`/proc/self/fd/${fd}`);
      } catch {
        real = this.root;
      }
      if (!this.inside(real)) {
        fs.closeSync(fd);
        throw new LinuxError(EACCES, `${p} resolves outside the root`);
      }
    }
    return new NodeFile(fd);
  }
  readdir(p: string): string[] {
    // Dir.readSync keeps the host's directory order (readdirSync sorts), like getdents.
    this.confine(p, true);
    return wrap(() => {
      const d = fs.opendirSync(this.host(p));
      const names: string[] = [];
      try {
        for (let e = d.readSync(); e !== null; e = d.readSync()) names.push(e.name);
      } finally {
        d.closeSync();
      }
      return names;
    });
  }
  mkdir(p: string, mode: number): void {
    this.confine(p);
    wrap(() => fs.mkdirSync(this.host(p), { mode }));
  }
  rmdir(p: string): void {
    this.confine(p);
    wrap(() => fs.rmdirSync(this.host(p)));
  }
  unlink(p: string): void {
    this.confine(p);
    wrap(() => fs.unlinkSync(this.host(p)));
  }
  rename(from: string, to: string): void {
    this.confine(from);
    this.confine(to);
    wrap(() => fs.renameSync(this.host(from), this.host(to)));
  }
  symlink(target: string, p: string): void {
    this.confine(p);
    wrap(() => fs.symlinkSync(target, this.host(p)));
  }
  link(existing: string, p: string): void {
    this.confine(existing);
    this.confine(p);
    wrap(() => fs.linkSync(this.host(existing), this.host(p)));
  }
  chmod(p: string, mode: number): void {
    this.confine(p);
    wrap(() => {
      const h = this.host(p);
      if (fs.lstatSync(h).isSymbolicLink()) throw Object.assign(new Error("symlink"), { code: "EPERM" });
      fs.chmodSync(h, mode);
    });
  }
  chown(p: string, uid: number, gid: number): void {
    this.confine(p);
    wrap(() => fs.lchownSync(this.host(p), uid, gid));
  }
  utimens(p: string, a: bigint | undefined, m: bigint | undefined): void {
    this.confine(p);
    wrap(() => {
      const h = this.host(p);
      const st = a === undefined || m === undefined ? fs.lstatSync(h, { bigint: true }) : undefined;
      fs.lutimesSync(h, nsToSec(a ?? st!.atimeNs), nsToSec(m ?? st!.mtimeNs));
    });
  }
  truncate(p: string, len: number): void {
    // Through open, so the descriptor check applies.
    const f = this.open(p, O_WRONLY, 0);
    try {
      f.truncate(len);
    } finally {
      f.close();
    }
  }
  statfs(p: string): HostStatFs {
    this.confine(p, true);
    return wrap(() => {
      const s = fs.statfsSync(this.host(p));
      return {
        type: s.type,
        bsize: s.bsize,
        blocks: s.blocks,
        bfree: s.bfree,
        bavail: s.bavail,
        files: s.files,
        ffree: s.ffree,
        namelen: 255,
      };
    });
  }
}

const sleeper = new Int32Array(new SharedArrayBuffer(4));

/** Write everything, retrying on EAGAIN (a non-blocking stdout). */
function writeAll(fd: number, data: Uint8Array): void {
  let off = 0;
  while (off < data.length) {
    try {
      off += fs.writeSync(fd, data, off, data.length - off);
    } catch (e) {
      const code = (e as { code?: string }).code;
      if (code === "EAGAIN") {
        Atomics.wait(sleeper, 0, 0, 1);
        continue;
      }
      // The reader went away (visor exec ... | head): the guest gets EPIPE and SIGPIPE.
      throw hostError(e);
    }
  }
}

export interface NodeConsoleOptions {
  stdin?: number;
  stdout?: number;
  stderr?: number;
}

/** The process's standard streams. */
export class NodeConsole implements HostConsole {
  private readonly fds: [number, number, number];
  private mode: "unknown" | "file" | "stream" = "unknown";
  private readonly queue: Buffer[] = [];
  private eof = false;
  private stream: net.Socket | tty.ReadStream | undefined;
  /** Called when input arrives (wakes the kernel's wait). */
  onInput: (() => void) | undefined;
  private raw = false;

  constructor(opts: NodeConsoleOptions = {}) {
    this.fds = [opts.stdin ?? 0, opts.stdout ?? 1, opts.stderr ?? 2];
  }

  write(fd: 1 | 2, data: Uint8Array): void {
    writeAll(this.fds[fd], data);
  }

  private start(): void {
    if (this.mode !== "unknown") return;
    let st: fs.Stats;
    try {
      st = fs.fstatSync(this.fds[0]);
    } catch {
      this.eof = true;
      this.mode = "file";
      return;
    }
    const isTty = tty.isatty(this.fds[0]);
    // Files and devices other than terminals (/dev/null, /dev/zero) are read synchronously.
    if (!isTty && !st.isFIFO() && !st.isSocket()) {
      this.mode = "file";
      return;
    }
    this.mode = "stream";
    // Pipes and sockets go through a libuv stream, as Node's own process.stdin does. An
    // fs.ReadStream would park a thread-pool thread in a blocking read(2), and process.exit
    // waits for that thread: visor would hang on exit until the writer closed the pipe.
    const s = isTty
      ? new tty.ReadStream(this.fds[0])
      : new net.Socket({ fd: this.fds[0], readable: true, writable: false });
    this.stream = s;
    s.on("data", (chunk: Buffer | string) => {
      this.queue.push(typeof chunk === "string" ? Buffer.from(chunk) : chunk);
      this.onInput?.();
    });
    s.on("end", () => {
      this.eof = true;
      this.onInput?.();
    });
    s.on("error", () => {
      this.eof = true;
      this.onInput?.();
    });
    if (this.raw && s instanceof tty.ReadStream) s.setRawMode(true);
  }

  read(dst: Uint8Array): number {
    this.start();
    if (this.mode === "file") {
      if (this.eof) return 0;
      try {
        return fs.readSync(this.fds[0], dst, 0, dst.length, null);
      } catch (e) {
        const err = hostError(e);
        if (err instanceof LinuxError) return err.errno === 11 ? -1 : 0;
        throw err;
      }
    }
    if (this.queue.length === 0) return this.eof ? 0 : -1;
    let n = 0;
    while (n < dst.length && this.queue.length > 0) {
      const b = this.queue[0]!;
      const take = Math.min(b.length, dst.length - n);
      dst.set(b.subarray(0, take), n);
      n += take;
      if (take === b.length) this.queue.shift();
      else this.queue[0] = b.subarray(take);
    }
    return n;
  }

  hasInput(): boolean {
    this.start();
    return this.mode === "file" || this.eof || this.queue.length > 0;
  }

  isatty(fd: 0 | 1 | 2): boolean {
    return tty.isatty(this.fds[fd]);
  }

  windowSize(): { rows: number; cols: number } | undefined {
    for (const fd of [this.fds[1], this.fds[0]]) {
      if (!tty.isatty(fd)) continue;
      const ws = new tty.WriteStream(fd);
      const r = { rows: ws.rows ?? 24, cols: ws.columns ?? 80 };
      return r;
    }
    return undefined;
  }

  setRawMode(raw: boolean): void {
    this.raw = raw;
    if (this.stream instanceof tty.ReadStream) this.stream.setRawMode(raw);
  }

  close(): void {
    if (this.stream instanceof tty.ReadStream && this.raw) this.stream.setRawMode(false);
    this.stream?.destroy();
    this.stream = undefined;
  }
}

export interface NodeHostOptions extends NodeConsoleOptions {
  /** Host directory that is the guest's "/" (default: the current directory). */
  root?: string;
  /** Use this console instead of the process's standard streams (tests, scripted runs). */
  console?: HostConsole;
  /** Forward SIGINT/SIGTERM/SIGHUP/SIGQUIT received by this process to the guest. */
  forwardSignals?: boolean;
}

export interface NodeHost extends Host {
  fs: NodeFs;
  /** Stop listening to stdin and signals. */
  close(): void;
}

const SIGNALS: Record<string, number> = { SIGINT: 2, SIGTERM: 15, SIGHUP: 1, SIGQUIT: 3 };

export function createNodeHost(opts: NodeHostOptions = {}): NodeHost {
  const nfs = new NodeFs(opts.root ?? process.cwd());
  const own = opts.console === undefined ? new NodeConsole(opts) : undefined;
  const con: HostConsole = own ?? opts.console!;
  const pendingSignals: number[] = [];
  let wake: (() => void) | undefined;
  const poke = () => {
    const w = wake;
    wake = undefined;
    w?.();
  };
  if (own !== undefined) own.onInput = poke;
  const handlers: [string, () => void][] = [];
  if (opts.forwardSignals ?? false) {
    for (const [name, num] of Object.entries(SIGNALS)) {
      const h = () => {
        pendingSignals.push(num);
        poke();
      };
      process.on(name as NodeJS.Signals, h);
      handlers.push([name, h]);
    }
  }
  const offset = BigInt(Date.now()) * 1000000n - process.hrtime.bigint();
  return {
    fs: nfs,
    console: con,
    clock: {
      realtimeNs: () => process.hrtime.bigint() + offset,
      monotonicNs: () => process.hrtime.bigint(),
    },
    identity: {
      uid: process.getuid?.() ?? 0,
      gid: process.getgid?.() ?? 0,
      hostname: os.hostname(),
    },
    random: (dst) => {
      randomFillSync(dst);
    },
    wait: (ms) =>
      new Promise<void>((resolve) => {
        if (ms <= 0) {
          setImmediate(resolve);
          return;
        }
        const timer = setTimeout(() => {
          wake = undefined;
          resolve();
        }, ms);
        wake = () => {
          clearTimeout(timer);
          resolve();
        };
      }),
    takeSignals: () => pendingSignals.splice(0),
    close: () => {
      own?.close();
      for (const [name, h] of handlers) process.off(name as NodeJS.Signals, h);
    },
  };
}
