/**
 * Linux system calls (`visor exec`): sequences of path calls through held directories that
 * go stale between calls (rmdir + symlink swaps to a host directory, renames, chdir into
 * removed directories, *at calls with stale descriptors, fchdir, /proc/self/fd) mixed with
 * random system calls with random, hostile or almost valid arguments.
 *
 * The root is a temporary tree next to canaries: a directory outside the root with a file
 * whose content and a file whose name appear nowhere else. Invariants, after every call:
 * a result or an errno (-4095..-1), never a host exception; no canary content or name in
 * guest memory (nothing outside was read or listed); and after every input, the tree
 * outside the root (names, sizes, modes, mtimes, symlink targets) is unchanged.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import {
  AT_FDCWD,
  AT_REMOVEDIR,
  createKernel,
  type Kernel,
  LinuxError,
  NR,
  O_CREAT,
  O_DIRECTORY,
  O_PATH,
  O_RDONLY,
  O_WRONLY,
  spawnInit,
  TASK_RUNNING,
  TASK_ZOMBIE,
  type Task,
} from "@visor/syscall";
import { createNodeHost, type NodeHost } from "@visor/syscall/node";
import fc from "fast-check";
import { NullConsole } from "../lib/null-console.ts";
import { type FuzzSurface, invariant } from "../surface.ts";

/** Any static riscv64 program: the task only needs an address space to point at. */
const PROGRAM = path.resolve(
  path.dirname(fileURLToPath(import.meta.url)),
  "../../../../packages/syscall/fixtures/guests/storeloop",
);
const SHM = "/dev/shm";
const CANARY_CONTENT = "CANARY-CONTENT-5f1c9a";
const CANARY_NAME = "zz-listed-canary-7d2e";
const CANARY_LINK = "zz-link-target-canary-93b4";
/** Enough for the tiny program, its stack and a few random mappings (ENOMEM beyond). */
const GUEST_RAM = 4 * 1024 * 1024;
const SCRATCH = 64 * 1024;
const PAGE = 4096;
const OUT_BYTES = 4096;
const STR_SLOT = 256;
/** Where the strings written during an input go (after the fixed ones), and how many slots. */
const DYN_STRINGS = 16 * 1024;
const DYN_SLOTS = 32;
/** struct stat on riscv64 (asm-generic/stat.h): st_dev at 0, st_ino at 8, both u64. */
const STAT_DEV = 0;
const STAT_INO = 8;
const STAT_INO_END = 16;
/** Linux returns -4095..-1 for errors (include/linux/err.h MAX_ERRNO). */
const MAX_ERRNO = 4095n;
/** Wait status of a process killed by SIGKILL (the input's end). */
const SIGKILL = 9;

/** Names, sizes, modes, mtimes and symlink targets under `dir`, but not under `skip`. */
function snapshot(dir: string, skip: string): string {
  const out: string[] = [];
  const walk = (p: string): void => {
    if (p === skip) return;
    const st = fs.lstatSync(p, { bigint: true });
    const link = st.isSymbolicLink() ? ` -> ${fs.readlinkSync(p)}` : "";
    out.push(`${path.relative(dir, p)} ${st.size} ${st.mode.toString(8)} ${st.mtimeNs}${link}`);
    if (st.isDirectory()) for (const e of fs.readdirSync(p).sort()) walk(path.join(p, e));
  };
  walk(dir);
  return out.join("\n");
}

/** The tree, made once: the root (reset for every input) next to the canaries. */
interface Tree {
  base: string;
  root: string;
  outside: string;
  before: string;
  /** "dev:ino" of everything outside the root. */
  outsideInodes: Set<string>;
}
/** One input's kernel and process. */
interface State {
  tree: Tree;
  host: NodeHost;
  k: Kernel;
  t: Task;
  sp: number;
  /** Guest addresses of the strings, by index in `strings`. */
  strs: number[];
  /** Writes a string into guest memory (a rotating slot) and returns its address. */
  str(v: string): number;
  out: number;
  /** Descriptors the input's calls opened, oldest first. */
  held: number[];
  /** Names of the directories held (by descriptor or as the working directory), oldest first. */
  heldNames: string[];
  renames: number;
}
let dirs: { base: string; root: string } | undefined;

/**
 * Strings the calls use, by index: directory names the guest makes and holds (also present
 * outside, so that a lookup through a swapped directory would find something), names that
 * exist outside, dots, /proc links, and the symlink targets (host directories outside).
 */
const DIRS = ["h", "h/i", "h/i/j", "k", "/h", "/h/i"];
const NAMES = [
  "secret.txt",
  "sub",
  "sub/secret.txt",
  ".",
  "..",
  "../..",
  "new",
  "/stolen",
  "/moved",
  "moved",
];
const PROC = ["/proc/self/cwd/secret.txt", "/proc/self/fd/3/secret.txt", "/proc/self/fd/4/secret.txt"];
function strings(outside: string): string[] {
  return [...DIRS, ...NAMES, ...PROC, outside, path.join(outside, "sub"), "/", "h"];
}
const N_STRINGS = DIRS.length + NAMES.length + PROC.length + 4;
const DIR_IDX = DIRS.map((_, i) => i);
const NAME_IDX = NAMES.map((_, i) => DIRS.length + i);
const PROC_IDX = PROC.map((_, i) => DIRS.length + NAMES.length + i);
const TARGET_IDX = [N_STRINGS - 4, N_STRINGS - 3, N_STRINGS - 2, N_STRINGS - 1];
/** The outside directory itself (the usual symlink target). */
const OUTSIDE_IDX = N_STRINGS - 4;

/** A directory argument: the working directory, the latest held descriptor, or an older one. */
type DirArg = "cwd" | "last" | number;
const dirArb: fc.Arbitrary<DirArg> = fc.oneof(
  { weight: 2, arbitrary: fc.constant<DirArg>("cwd") },
  { weight: 3, arbitrary: fc.constant<DirArg>("last") },
  { weight: 1, arbitrary: fc.integer({ min: 0, max: 7 }) },
);
const pathArb = fc.oneof(
  { weight: 3, arbitrary: fc.constant(NAME_IDX[0]!) },
  { weight: 3, arbitrary: fc.constantFrom(...NAME_IDX) },
  { weight: 2, arbitrary: fc.constantFrom(...DIR_IDX) },
  { weight: 1, arbitrary: fc.constantFrom(...PROC_IDX) },
);

type Op =
  /** mkdir + open (O_DIRECTORY or O_PATH) and optionally chdir: a directory held across calls. */
  | { op: "hold"; d: number; path: boolean; chdir: boolean }
  /**
   * The attack: a held directory (the latest, or d) or its parent goes, a symlink to the
   * host takes its place.
   */
  | { op: "swap"; d: number | "last"; how: "rmdir" | "rename" | "parent"; target: number }
  | { op: "fchdir" | "getdents" | "close"; fd: DirArg }
  | {
      op: "stat" | "readlink" | "chmod" | "utimens" | "unlink" | "rmdir" | "mkdir" | "truncate";
      at: DirArg;
      p: number;
    }
  | { op: "open-read" | "creat"; at: DirArg; p: number }
  | { op: "rename" | "link"; at: DirArg; p: number; at2: DirArg; q: number }
  | { op: "chdir"; p: number }
  | { op: "raw"; nr: number; args: bigint[] }
  /** hold, swap, then use the stale descriptor or working directory: the whole attack as one step. */
  | { op: "attack"; hold: Op; swap: Op; uses: Op[] };

const EXCLUDED = new Set(["exit", "exit_group"]);
const RAW_NUMBERS = Object.entries(NR)
  .filter(([name]) => !EXCLUDED.has(name))
  .map(([, nr]) => nr);
const rawArg = fc.oneof(
  fc.constantFrom(
    0n,
    1n,
    2n,
    3n,
    4n,
    0xffffffffn,
    0xffffffffffffffffn,
    4096n,
    BigInt.asUintN(64, BigInt(AT_FDCWD)),
  ),
  fc.integer({ min: -4, max: 16 }).map((v) => BigInt.asUintN(64, BigInt(v))),
  // Offsets into the scratch area (strings and output buffer), resolved at run time.
  fc.integer({ min: 0, max: SCRATCH - 1 }).map((o) => -BigInt(o) - 1n),
  fc.bigInt({ min: 0n, max: 0xffffffffffffffffn }),
);

const holdArb = fc.record({
  op: fc.constant<"hold">("hold"),
  d: fc.constantFrom(...DIR_IDX),
  path: fc.boolean(),
  chdir: fc.boolean(),
});
const swapArb = fc.record({
  op: fc.constant<"swap">("swap"),
  d: fc.oneof({ weight: 3, arbitrary: fc.constant<"last">("last") }, fc.constantFrom(...DIR_IDX)),
  how: fc.constantFrom<"rmdir" | "rename" | "parent">("rmdir", "rename", "parent"),
  target: fc.oneof(
    { weight: 4, arbitrary: fc.constant(OUTSIDE_IDX) },
    { weight: 1, arbitrary: fc.constantFrom(...TARGET_IDX) },
  ),
});
const staleArb = fc.constantFrom<DirArg>("last", "cwd");
const useArb: fc.Arbitrary<Op> = fc.oneof(
  fc.record({
    op: fc.constantFrom<"getdents" | "fchdir">("getdents", "fchdir"),
    fd: fc.constant<DirArg>("last"),
  }),
  fc.record({
    op: fc.constantFrom<
      "stat" | "readlink" | "chmod" | "utimens" | "unlink" | "rmdir" | "mkdir" | "truncate"
    >("stat", "readlink", "chmod", "utimens", "unlink", "rmdir", "mkdir", "truncate"),
    at: staleArb,
    p: pathArb,
  }),
  fc.record({ op: fc.constantFrom<"open-read" | "creat">("open-read", "creat"), at: staleArb, p: pathArb }),
  fc.record({
    op: fc.constantFrom<"rename" | "link">("rename", "link"),
    at: staleArb,
    p: pathArb,
    at2: dirArb,
    q: pathArb,
  }),
);

const opArb: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.record({
      op: fc.constant<"attack">("attack"),
      hold: holdArb,
      swap: swapArb,
      uses: fc.array(useArb, { minLength: 1, maxLength: 3 }),
    }),
  },
  {
    weight: 3,
    arbitrary: fc.record({
      op: fc.constant("hold"),
      d: fc.constantFrom(...DIR_IDX),
      path: fc.boolean(),
      chdir: fc.boolean(),
    }),
  },
  {
    weight: 3,
    arbitrary: fc.record({
      op: fc.constant("swap"),
      d: fc.oneof({ weight: 3, arbitrary: fc.constant<"last">("last") }, fc.constantFrom(...DIR_IDX)),
      how: fc.constantFrom("rmdir", "rename", "parent"),
      target: fc.oneof(
        { weight: 4, arbitrary: fc.constant(OUTSIDE_IDX) },
        { weight: 1, arbitrary: fc.constantFrom(...TARGET_IDX) },
      ),
    }),
  },
  { weight: 2, arbitrary: fc.record({ op: fc.constantFrom("fchdir", "getdents", "close"), fd: dirArb }) },
  {
    weight: 5,
    arbitrary: fc.record({
      op: fc.constantFrom("stat", "readlink", "chmod", "utimens", "unlink", "rmdir", "mkdir", "truncate"),
      at: dirArb,
      p: pathArb,
    }),
  },
  { weight: 3, arbitrary: fc.record({ op: fc.constantFrom("open-read", "creat"), at: dirArb, p: pathArb }) },
  {
    weight: 2,
    arbitrary: fc.record({
      op: fc.constantFrom("rename", "link"),
      at: dirArb,
      p: pathArb,
      at2: dirArb,
      q: pathArb,
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({ op: fc.constant("chdir"), p: fc.constantFrom(...DIR_IDX, ...NAME_IDX) }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      op: fc.constant("raw"),
      nr: fc.constantFrom(...RAW_NUMBERS),
      args: fc.array(rawArg, { minLength: 6, maxLength: 6 }),
    }),
  },
);

/** One system call as the guest's ecall makes it; returns the result (checked). */
function sys(s: State, nr: number, args: (number | bigint)[]): bigint {
  const { k, t } = s;
  const h = t.hart;
  const pc = h.pc;
  h.setX(17, BigInt(nr));
  for (let i = 0; i < 6; i++) h.setX(10 + i, BigInt.asUintN(64, BigInt(args[i] ?? 0)));
  k.syscall(t); // a host exception escapes here and fails the input
  const r = BigInt.asIntN(64, h.getX(10));
  if (!t.restart && h.pc === pc + 4n) invariant(r >= -MAX_ERRNO, `syscall ${nr} returned ${r}`);
  // Undo whatever state the call left (blocked, new pc after sigreturn or execve).
  t.restart = false;
  t.state = TASK_RUNNING;
  t.blockCtx = undefined;
  t.pending = 0n;
  t.pendingInfo.clear();
  h.pc = pc;
  h.setX(2, BigInt(s.sp));
  return r;
}

const n = NR as Record<string, number>;

function dirfd(s: State, a: DirArg): number {
  if (a === "cwd") return AT_FDCWD;
  if (a === "last") return s.held.at(-1) ?? AT_FDCWD;
  return s.held[a % Math.max(1, s.held.length)] ?? AT_FDCWD;
}

/** The parent directory of a DIRS entry ("h/i" -> "h"), or undefined at the top. */
function parentOf(d: string): string | undefined {
  const i = d.lastIndexOf("/");
  return i > 0 ? d.slice(0, i) : undefined;
}

function run(s: State, o: Op): void {
  const str = (i: number) => s.strs[i]!;
  switch (o.op) {
    case "hold": {
      // mkdir -p of the held directory, then hold it.
      const name = DIRS[o.d]!;
      const parts = name.replace(/^\//, "").split("/");
      for (let i = 1; i <= parts.length; i++)
        sys(s, n.mkdirat!, [AT_FDCWD, s.str(`/${parts.slice(0, i).join("/")}`), 0o755]);
      const fd = sys(s, n.openat!, [AT_FDCWD, str(o.d), (o.path ? O_PATH : O_RDONLY) | O_DIRECTORY, 0]);
      if (fd >= 0n) s.held.push(Number(fd));
      s.heldNames.push(name);
      if (o.chdir) sys(s, n.chdir!, [str(o.d)]);
      return;
    }
    case "swap": {
      const name = o.d === "last" ? (s.heldNames.at(-1) ?? DIRS[0]!) : DIRS[o.d]!;
      const victim = o.how === "parent" ? (parentOf(name.replace(/^\//, "")) ?? name) : name;
      const v = s.str(victim.startsWith("/") ? victim : `/${victim}`);
      if (o.how === "rmdir") {
        // rmdir needs it empty: remove what the fuzzer may have made inside first.
        sys(s, n.unlinkat!, [AT_FDCWD, s.str(`${victim}/new`), 0]);
        sys(s, n.unlinkat!, [AT_FDCWD, v, AT_REMOVEDIR]);
      } else {
        sys(s, n.renameat2!, [AT_FDCWD, v, AT_FDCWD, s.str(`/gone-${s.renames++}`), 0]);
      }
      sys(s, n.symlinkat!, [str(o.target), AT_FDCWD, v]);
      return;
    }
    case "fchdir":
      sys(s, n.fchdir!, [dirfd(s, o.fd)]);
      return;
    case "getdents":
      sys(s, n.getdents64!, [dirfd(s, o.fd), s.out, OUT_BYTES]);
      return;
    case "close": {
      const fd = dirfd(s, o.fd);
      sys(s, n.close!, [fd]);
      s.held = s.held.filter((h) => h !== fd);
      return;
    }
    case "stat": {
      const r = sys(s, n.newfstatat!, [dirfd(s, o.at), str(o.p), s.out, 0]);
      if (r === 0n) checkStatInside(s, o);
      return;
    }
    case "readlink":
      sys(s, n.readlinkat!, [dirfd(s, o.at), str(o.p), s.out, OUT_BYTES]);
      return;
    case "chmod":
      sys(s, n.fchmodat!, [dirfd(s, o.at), str(o.p), 0o700, 0]);
      return;
    case "utimens":
      sys(s, n.utimensat!, [dirfd(s, o.at), str(o.p), 0, 0]);
      return;
    case "unlink":
      sys(s, n.unlinkat!, [dirfd(s, o.at), str(o.p), 0]);
      return;
    case "rmdir":
      sys(s, n.unlinkat!, [dirfd(s, o.at), str(o.p), AT_REMOVEDIR]);
      return;
    case "mkdir":
      sys(s, n.mkdirat!, [dirfd(s, o.at), str(o.p), 0o755]);
      return;
    case "truncate": {
      // truncate(2) has no dirfd: through the working directory (fchdir'ed first).
      if (o.at !== "cwd") sys(s, n.fchdir!, [dirfd(s, o.at)]);
      sys(s, n.truncate!, [str(o.p), 0]);
      return;
    }
    case "open-read": {
      const fd = sys(s, n.openat!, [dirfd(s, o.at), str(o.p), O_RDONLY, 0]);
      if (fd >= 0n) {
        sys(s, n.read!, [fd, s.out, OUT_BYTES]);
        s.held.push(Number(fd));
      }
      return;
    }
    case "creat": {
      const fd = sys(s, n.openat!, [dirfd(s, o.at), str(o.p), O_WRONLY | O_CREAT, 0o644]);
      if (fd >= 0n) sys(s, n.close!, [fd]);
      return;
    }
    case "rename":
      sys(s, n.renameat2!, [dirfd(s, o.at), str(o.p), dirfd(s, o.at2), str(o.q), 0]);
      return;
    case "link":
      sys(s, n.linkat!, [dirfd(s, o.at), str(o.p), dirfd(s, o.at2), str(o.q), 0]);
      return;
    case "chdir":
      sys(s, n.chdir!, [str(o.p)]);
      return;
    case "attack":
      run(s, o.hold);
      run(s, o.swap);
      for (const u of o.uses) run(s, u);
      return;
    case "raw": {
      const scratch = s.sp - SCRATCH;
      const args = o.args.map((a) => (a < 0n ? BigInt(scratch) + (-a - 1n) : a));
      sys(s, o.nr, args);
      return;
    }
  }
}

/** A successful stat returned an inode inside the root, never one of the outside tree. */
function checkStatInside(s: State, o: Op): void {
  const b = s.t.mm.copyIn(s.out, STAT_INO_END);
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const key = `${dv.getBigUint64(STAT_DEV, true)}:${dv.getBigUint64(STAT_INO, true)}`;
  invariant(!s.tree.outsideInodes.has(key), `stat reached a file outside the root: ${JSON.stringify(o)}`);
}

/** The scratch below the stack pointer can still be read and written by the kernel. */
function scratchUsable(s: State): boolean {
  try {
    s.t.mm.checkRange(s.sp - SCRATCH, SCRATCH, true);
    return true;
  } catch (e) {
    if (e instanceof LinuxError) return false;
    throw e;
  }
}

/**
 * Nothing from outside the root reached guest memory (content read, or a name listed). A
 * random munmap or mremap may have unmapped some of the scratch: its pages still mapped
 * are looked at (nothing can have been read into the others).
 */
function checkNoCanary(s: State, after: string): void {
  let text = "";
  for (let a = s.sp - SCRATCH; a < s.sp; a = Math.floor(a / PAGE) * PAGE + PAGE) {
    let mem: Uint8Array;
    try {
      mem = s.t.mm.copyIn(a, Math.min(Math.floor(a / PAGE) * PAGE + PAGE, s.sp) - a);
    } catch (e) {
      if (e instanceof LinuxError) continue;
      throw e;
    }
    text += Buffer.from(mem.buffer, mem.byteOffset, mem.byteLength).toString("latin1");
  }
  invariant(!text.includes(CANARY_CONTENT), `a canary's content reached guest memory after ${after}`);
  invariant(!text.includes(CANARY_NAME), `a canary's name was listed into guest memory after ${after}`);
  invariant(!text.includes(CANARY_LINK), `a canary symlink was read into guest memory after ${after}`);
}

function makeBase(): { base: string; root: string } {
  // A memory file system when there is one: every input rebuilds the trees, and directory
  // creation and removal on a busy disk cost milliseconds each.
  const tmp = fs.existsSync(SHM) ? SHM : os.tmpdir();
  const base = fs.realpathSync(fs.mkdtempSync(path.join(tmp, "visor-fuzz-syscall-")));
  const root = path.join(base, "root");
  fs.mkdirSync(root);
  return { base, root };
}

/** The canaries around the root, rebuilt for every input (a failing input may have changed them). */
function makeTree(base: string, root: string): Tree {
  const outside = path.join(base, "outside");
  for (const e of fs.readdirSync(base)) if (e !== "root") remove(path.join(base, e));
  // The names the guest uses, so that a lookup through a swapped directory would succeed:
  // with "h" swapped for the outside directory, "/h/i/j" is outside/i/j.
  fs.mkdirSync(path.join(outside, "sub"), { recursive: true });
  fs.mkdirSync(path.join(outside, "i", "j"), { recursive: true });
  for (const f of ["secret.txt", CANARY_NAME, "sub/secret.txt", "i/secret.txt", "i/j/secret.txt"]) {
    fs.writeFileSync(path.join(outside, f), `${CANARY_CONTENT}\n`);
  }
  fs.symlinkSync(CANARY_LINK, path.join(outside, "link"));
  fs.writeFileSync(path.join(base, "beside-root.txt"), `${CANARY_CONTENT}\n`);
  const outsideInodes = new Set<string>();
  const walk = (p: string): void => {
    if (p === root) return;
    const st = fs.lstatSync(p, { bigint: true });
    outsideInodes.add(`${st.dev}:${st.ino}`);
    if (st.isDirectory()) for (const e of fs.readdirSync(p)) walk(path.join(p, e));
  };
  walk(base);
  return { base, root, outside, before: snapshot(base, root), outsideInodes };
}

/** Remove a file, symlink or directory tree (never following a symlink; fs.rmSync is slow). */
function remove(p: string): void {
  if (fs.lstatSync(p).isDirectory()) {
    fs.chmodSync(p, 0o700);
    for (const e of fs.readdirSync(p)) remove(path.join(p, e));
    fs.rmdirSync(p);
  } else {
    fs.unlinkSync(p);
  }
}

/** A clean root, a new kernel and its first process, the strings in its memory. */
function start(tr: Tree): State {
  for (const e of fs.readdirSync(tr.root)) remove(path.join(tr.root, e));
  fs.copyFileSync(PROGRAM, path.join(tr.root, "prog"));
  fs.chmodSync(path.join(tr.root, "prog"), 0o755);
  fs.mkdirSync(path.join(tr.root, "sub"));
  fs.writeFileSync(path.join(tr.root, "x"), "inside\n");
  const host = createNodeHost({ root: tr.root, console: new NullConsole() });
  const k = createKernel({ host, memoryBytes: GUEST_RAM, warn: () => {} });
  const t = spawnInit(k, "/prog", ["prog"], [], "/");
  const sp = Number(t.hart.getX(2));
  const scratch = sp - SCRATCH;
  t.mm.zeroOut(scratch, SCRATCH);
  const put = (at: number, v: string) => t.mm.copyOut(at, new TextEncoder().encode(`${v}\0`));
  const strs = strings(tr.outside).map((v, i) => {
    put(scratch + i * STR_SLOT, v);
    return scratch + i * STR_SLOT;
  });
  let next = 0;
  const str = (v: string): number => {
    const at = scratch + DYN_STRINGS + (next++ % DYN_SLOTS) * STR_SLOT;
    put(at, v);
    return at;
  };
  return {
    tree: tr,
    host,
    k,
    t,
    sp,
    strs,
    str,
    out: scratch + SCRATCH - OUT_BYTES,
    held: [],
    heldNames: [],
    renames: 0,
  };
}

/** JSON for ops (raw arguments are bigints). */
const big = (_k: string, v: unknown) => (typeof v === "bigint" ? v.toString() : v);

/** End every process (closing their descriptors), drop the page cache, close the host. */
function stop(s: State): void {
  for (const t of [...s.k.tasks.values()]) s.k.exitTask(t, SIGKILL);
  s.k.pageCache.trim(0);
  s.host.close();
}

const surface: FuzzSurface<Op[]> = {
  name: "syscall",
  description:
    "path calls through held directories made stale between calls (rmdir+symlink swaps, renames, chdir into removed dirs) and random syscalls: results or errnos only, nothing outside the root read, listed or changed",
  arbitrary: fc.array(opArb, { minLength: 1, maxLength: 40 }),
  setup() {
    dirs = makeBase();
  },
  check(ops) {
    const tr = makeTree(dirs!.base, dirs!.root);
    const s = start(tr);
    try {
      const mm = s.t.mm;
      for (let i = 0; i < ops.length; i++) {
        const o = ops[i]!;
        // A random call ended the process, replaced its image, or unmapped (or protected)
        // the scratch the calls' strings and buffers live in: the input is over.
        if (s.t.state === TASK_ZOMBIE || s.t.mm !== mm || !scratchUsable(s)) break;
        run(s, o);
        if (s.t.state !== TASK_ZOMBIE && s.t.mm === mm) checkNoCanary(s, `op ${i} ${JSON.stringify(o, big)}`);
      }
    } finally {
      stop(s);
    }
    const after = snapshot(tr.base, tr.root);
    invariant(after === tr.before, `the tree outside the root changed:\n${after}\nwas\n${tr.before}`);
  },
  teardown() {
    if (dirs !== undefined) fs.rmSync(dirs.base, { recursive: true, force: true });
    dirs = undefined;
  },
  ciRuns: 100,
};

export default surface;
