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
 * A small virtual overlay provides what a program expects from a Linux system whatever
 * the root holds: /dev/{null,zero,full,random,urandom,tty,stdin,stdout,stderr} and
 * /proc/self/{exe,fd/N}.
 */
import { S_IFDIR, S_IFLNK, S_IFMT } from "./abi.ts";
import { ELOOP, ENAMETOOLONG, ENOENT, ENOTDIR, LinuxError } from "./errno.ts";
import type { DevKind } from "./files.ts";
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
   * Resolve `path` relative to the canonical guest directory `base`.
   * @param follow follow a symlink in the last component
   */
  resolve(ctx: ResolveCtx, base: string, path: string, follow: boolean): Node {
    if (path.length === 0) throw new LinuxError(ENOENT);
    if (path.length >= PATH_MAX) throw new LinuxError(ENAMETOOLONG);
    const trailingSlash = path.endsWith("/");
    const stack: string[] = path.startsWith("/") ? [] : splitPath(base);
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
