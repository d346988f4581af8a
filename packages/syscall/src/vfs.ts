/**
 * Path resolution inside the guest root: the jail.
 *
 * The guest's "/" is the host directory given to the Node host. Paths are resolved here,
 * one component at a time, against the host through `lstat` and `readlink` only:
 * - `..` pops a component and stops at the root (the root's parent is the root, as for
 *   a chroot);
 * - a symlink's target (absolute or relative) is spliced into the remaining components
 *   and resolved by the same loop, so an absolute target restarts at the guest root,
 *   never at the host's;
 * - at most 40 symlinks are followed (Linux's MAXSYMLINKS), then ELOOP.
 * The result is a canonical guest path whose every component but possibly the last was
 * checked to be a real directory; host operations then receive that path and never
 * follow a symlink in it (see HostFs).
 *
 * Directories the guest holds across calls (an open directory descriptor, the working
 * directory) are `DirRef`s: a canonical path plus the identity (st_dev, st_ino) of the
 * directory when it was reached. A path string is never trusted from one call to the next:
 * every use re-walks the reference's path from the root, component by component with
 * lstat, and requires each component to be a real directory and the last to still be the
 * same directory (`Resolver.locate`). A reference that no longer resolves to itself (the
 * directory was removed, or replaced by a symlink or another directory) behaves as
 * Linux's deleted directory: lookups under it and listing it fail with ENOENT.
 * Renames made by the guest move the references they carry (Kernel.movedDir), so a held
 * directory follows its renames as on Linux. All of this happens inside one system call,
 * which no other guest thread can interleave with (the kernel serves one call at a time),
 * so nothing the guest does between calls can move a walk outside the root.
 *
 * A small virtual overlay provides what a program expects from a Linux system whatever
 * the root holds: /dev/{null,zero,full,random,urandom,tty,stdin,stdout,stderr} and
 * /proc/self/{exe,fd/N}.
 */
import { S_IFDIR, S_IFLNK, S_IFMT } from "./abi.ts";
import { ELOOP, ENAMETOOLONG, ENOENT, ENOTDIR, LinuxError } from "./errno.ts";
import type { HostFs, HostStat } from "./host.ts";

export const MAXSYMLINKS = 40;
export const NAME_MAX = 255;
export const PATH_MAX = 4096;

/** What a path names. */
export type Node =
  /** An existing host file (possibly a symlink when not following). */
  | { kind: "host"; path: string; st: HostStat }
  /** The last component does not exist; its parent is the existing directory `parent`. */
  | { kind: "missing"; path: string; parent: string; name: string }
  /** A virtual character device. */
  | { kind: "dev"; path: string; dev: DevKind | "tty" }
  /** A virtual directory (/proc, /proc/self, /proc/self/fd, /dev when the root has none). */
  | { kind: "vdir"; path: string; entries: () => string[] }
  /** A virtual symlink that was not followed (readlink /proc/self/exe). */
  | { kind: "vlink"; path: string; target: string }
  /** /proc/self/fd/N followed, where N is not a file with a path (a pipe, the console ...): opening it shares the description. */
  | { kind: "fdref"; path: string; fd: number };

type VNode = Exclude<Node, { kind: "vlink" }> | { kind: "vlink"; path: string; target: string; fd?: number };

/** The per-process facts the overlay needs. */
export interface ResolveCtx {
  /** Guest path of the running executable (/proc/self/exe). */
  exe(): string;
  /** Target of /proc/self/fd/N, or undefined when N is not open. */
  fdLink(fd: number): string | undefined;
  /** Open descriptor numbers (listing /proc/self/fd). */
  fdList(): number[];
}

const DEVICES: Record<string, DevKind | "tty"> = {
  null: "null",
  zero: "zero",
  full: "full",
  random: "random",
  urandom: "urandom",
  tty: "tty",
};
const DEV_LINKS: Record<string, string> = {
  stdin: "/proc/self/fd/0",
  stdout: "/proc/self/fd/1",
  stderr: "/proc/self/fd/2",
  fd: "/proc/self/fd",
};

/** st_dev of a virtual directory's reference (no host directory has it). */
const VIRTUAL_DEV = -1;

/** The character devices under /dev that the kernel serves itself (files.ts: CharDevice). */
export type DevKind = "null" | "zero" | "full" | "random" | "urandom";

/**
 * A directory held across system calls (open directory descriptor, working directory).
 * `path` is where the directory was last known to be: renames made by the guest update it.
 */
export class DirRef {
  path: string;
  readonly dev: number;
  readonly ino: number;
  constructor(path: string, dev: number, ino: number) {
    this.path = path;
    this.dev = dev;
    this.ino = ino;
  }
  /** A reference to a virtual directory of the overlay (/proc/self, a virtual /dev ...). */
  static virtual(path: string): DirRef {
    return new DirRef(path, VIRTUAL_DEV, 0);
  }
  get isVirtual(): boolean {
    return this.dev === VIRTUAL_DEV;
  }
  /** Is this the directory described by `st`? */
  matches(st: HostStat): boolean {
    return st.dev === this.dev && st.ino === this.ino && (st.mode & S_IFMT) === S_IFDIR;
  }
  /** Follow a rename of `from` to `to` (canonical guest paths) when this directory is at or below `from`. */
  moved(from: string, to: string): void {
    if (this.path === from) this.path = to;
    else if (this.path.startsWith(from === "/" ? "/" : `${from}/`))
      this.path = to + this.path.slice(from.length);
  }
}

/** The guest root as a reference (always valid: the guest cannot remove or replace it). */
export const ROOT_REF: DirRef = DirRef.virtual("/");

export function joinPath(stack: readonly string[]): string {
  return stack.length === 0 ? "/" : `/${stack.join("/")}`;
}

export function splitPath(p: string): string[] {
  return p.split("/").filter((c) => c !== "" && c !== ".");
}

function hostLstat(fs: HostFs, path: string): HostStat | undefined {
  try {
    return fs.lstat(path);
  } catch (e) {
    if (e instanceof LinuxError && (e.errno === ENOENT || e.errno === ENOTDIR)) return undefined;
    throw e;
  }
}

export class Resolver {
  readonly fs: HostFs;
  constructor(fs: HostFs) {
    this.fs = fs;
  }

  /**
   * Resolve `path` relative to the held directory `base` (re-validated first, see `locate`).
   * @param follow follow a symlink in the last component
   */
  resolve(ctx: ResolveCtx, base: DirRef, path: string, follow: boolean): Node {
    if (path.length === 0) throw new LinuxError(ENOENT);
    if (path.length >= PATH_MAX) throw new LinuxError(ENAMETOOLONG);
    const trailingSlash = path.endsWith("/");
    let stack: string[];
    if (path.startsWith("/")) stack = [];
    else {
      const at = this.locate(ctx, base);
      // A directory that no longer resolves to itself: Linux's deleted directory.
      if (at === undefined) throw new LinuxError(ENOENT);
      stack = at;
    }
    const queue: string[] = splitPath(path).reverse(); // pop() takes the next component
    let links = 0;
    const follow1 = (target: string): void => {
      if (++links > MAXSYMLINKS) throw new LinuxError(ELOOP);
      if (target.length === 0) throw new LinuxError(ENOENT);
      if (target.startsWith("/")) stack.length = 0;
      const t = splitPath(target);
      for (let i = t.length - 1; i >= 0; i--) queue.push(t[i]!);
    };
    for (;;) {
      const c = queue.pop();
      if (c === undefined) break;
      if (c === "..") {
        stack.pop();
        continue;
      }
      if (c.length > NAME_MAX) throw new LinuxError(ENAMETOOLONG);
      const last = queue.length === 0;
      const followThis = !last || follow || trailingSlash;
      stack.push(c);
      const cand = joinPath(stack);
      const v = this.virtual(ctx, stack);
      if (v !== undefined) {
        if (v.kind === "vlink") {
          if (followThis && v.fd !== undefined && !v.target.startsWith("/")) {
            if (!last) throw new LinuxError(ENOTDIR);
            return { kind: "fdref", path: v.path, fd: v.fd };
          }
          if (followThis) {
            stack.pop();
            follow1(v.target);
            continue;
          }
          return v;
        }
        if (last) return v;
        if (v.kind !== "vdir") throw new LinuxError(ENOTDIR);
        continue;
      }
      const st = hostLstat(this.fs, cand);
      if (st === undefined) {
        stack.pop();
        if (last) return { kind: "missing", path: cand, parent: joinPath(stack), name: c };
        throw new LinuxError(ENOENT);
      }
      const type = st.mode & S_IFMT;
      if (type === S_IFLNK && followThis) {
        const target = this.fs.readlink(cand);
        stack.pop();
        follow1(target);
        continue;
      }
      if (last) {
        if (trailingSlash && type !== S_IFDIR && type !== S_IFLNK) throw new LinuxError(ENOTDIR);
        return { kind: "host", path: cand, st };
      }
      if (type !== S_IFDIR) throw new LinuxError(ENOTDIR);
    }
    // Nothing left: the path named a directory reached by "..", "." or "/".
    const cand = joinPath(stack);
    const v = this.virtual(ctx, stack);
    if (v !== undefined) return v;
    const st = hostLstat(this.fs, cand);
    if (st === undefined) throw new LinuxError(ENOENT);
    return { kind: "host", path: cand, st };
  }

  /**
   * Where a held directory is now: the components of its canonical path, after checking
   * from the root, one component at a time, that each is a real directory (never a
   * symlink) and that the last is the same directory (dev, ino) as when it was taken.
   * Undefined when it is not there any more (removed, replaced, moved by someone else).
   */
  locate(ctx: ResolveCtx, d: DirRef): string[] | undefined {
    const comps = splitPath(d.path);
    // The root itself: the guest can neither remove nor replace it (EBUSY).
    if (comps.length === 0) return comps;
    const stack: string[] = [];
    let last: HostStat | undefined;
    for (const c of comps) {
      if (c === "..") return undefined;
      stack.push(c);
      const v = this.virtual(ctx, stack);
      if (v !== undefined) {
        if (v.kind !== "vdir") return undefined;
        last = undefined;
        continue;
      }
      last = hostLstat(this.fs, joinPath(stack));
      if (last === undefined || (last.mode & S_IFMT) !== S_IFDIR) return undefined;
    }
    if (d.isVirtual) return last === undefined ? stack : undefined;
    return last !== undefined && d.matches(last) ? stack : undefined;
  }

  /** A reference to the directory a resolution ended at (`host` or `vdir`). */
  refOf(n: Node): DirRef {
    if (n.kind === "vdir") return DirRef.virtual(n.path);
    if (n.kind === "host" && (n.st.mode & S_IFMT) === S_IFDIR) return new DirRef(n.path, n.st.dev, n.st.ino);
    throw new LinuxError(ENOTDIR);
  }

  /** The virtual overlay (checked before the host for these exact paths). */
  private virtual(ctx: ResolveCtx, stack: readonly string[]): VNode | undefined {
    const top = stack[0];
    if (top === "dev") {
      if (stack.length === 1) {
        if (hostLstat(this.fs, "/dev") !== undefined) return undefined;
        return {
          kind: "vdir",
          path: "/dev",
          entries: () => [...Object.keys(DEVICES), ...Object.keys(DEV_LINKS)],
        };
      }
      if (stack.length === 2) {
        const name = stack[1]!;
        const d = DEVICES[name];
        if (d !== undefined) return { kind: "dev", path: `/dev/${name}`, dev: d };
        const l = DEV_LINKS[name];
        if (l !== undefined) return { kind: "vlink", path: `/dev/${name}`, target: l };
      }
      return undefined;
    }
    if (top !== "proc") return undefined;
    if (stack.length === 1) {
      if (hostLstat(this.fs, "/proc") !== undefined) return undefined;
      return { kind: "vdir", path: "/proc", entries: () => ["self"] };
    }
    if (stack[1] !== "self") return undefined;
    if (stack.length === 2) return { kind: "vdir", path: "/proc/self", entries: () => ["exe", "fd"] };
    if (stack[2] === "exe" && stack.length === 3)
      return { kind: "vlink", path: "/proc/self/exe", target: ctx.exe() };
    if (stack[2] === "fd") {
      if (stack.length === 3) {
        return { kind: "vdir", path: "/proc/self/fd", entries: () => ctx.fdList().map(String) };
      }
      if (stack.length === 4 && /^\d+$/.test(stack[3]!)) {
        const fd = Number(stack[3]);
        const t = ctx.fdLink(fd);
        if (t === undefined) throw new LinuxError(ENOENT);
        return { kind: "vlink", path: `/proc/self/fd/${fd}`, target: t, fd };
      }
    }
    return undefined;
  }
}
