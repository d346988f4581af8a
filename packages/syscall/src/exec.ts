/**
 * execve: resolve the program inside the root, recognise `#!` scripts, load the ELF image
 * (and its interpreter) into a fresh address space, and build the initial stack that the
 * System V / Linux process entry expects (psABI: sp -> argc, argv[], NULL, envp[], NULL,
 * auxv pairs, AT_NULL; strings and AT_RANDOM bytes above).
 */
import {
  AT_BASE,
  AT_CLKTCK,
  AT_EGID,
  AT_ENTRY,
  AT_EUID,
  AT_EXECFN,
  AT_FLAGS,
  AT_GID,
  AT_HWCAP,
  AT_NULL,
  AT_PAGESZ,
  AT_PHDR,
  AT_PHENT,
  AT_PHNUM,
  AT_RANDOM,
  AT_SECURE,
  AT_UID,
  O_RDONLY,
  S_IFMT,
  S_IFREG,
} from "./abi.ts";
import {
  type ElfInfo,
  ET_DYN,
  ExecFormatError,
  isElf,
  type Loaded,
  loadSpan,
  mapElf,
  parseElf,
} from "./elf.ts";
import { E2BIG, EACCES, ELOOP, ENOEXEC, LinuxError } from "./errno.ts";
import { HostFileDesc } from "./files.ts";
import { type Kernel, STACK_SIZE, STACK_TOP } from "./kernel.ts";
import { type AddressSpace, PAGE, PROT_READ, PROT_WRITE, Vma } from "./mm.ts";
import type { Task } from "./task.ts";
import { utf8Decode, utf8Encode } from "./utf8.ts";
import type { DirRef, ResolveCtx } from "./vfs.ts";

/** Where static-PIE executables are loaded: 2/3 of the Sv39 user space (Linux's ELF_ET_DYN_BASE). */
export const ELF_ET_DYN_BASE = Math.floor((2 ** 38 / 3) * 2);
/** AT_HWCAP for RV64IMAFDC: one bit per single-letter extension, bit = letter - 'a'. */
export const HWCAP_RV64IMAFDC = (1 << 0) | (1 << 2) | (1 << 3) | (1 << 5) | (1 << 8) | (1 << 12);
/** Linux's limit on one argument or environment string (MAX_ARG_STRLEN, 32 pages). */
const MAX_ARG_STRLEN = 32 * PAGE;
/** Total size limit for argv + envp (a quarter of the 8 MiB stack, as Linux). */
const MAX_ARGS_BYTES = STACK_SIZE / 4;
const BINPRM_MAX_RECURSION = 4;

export interface Image {
  mm: AddressSpace;
  entry: number;
  sp: number;
  /** Guest path of the executable (for /proc/self/exe). */
  exe: string;
  comm: string;
}

/** Open a program file for execution; checks it is a regular, executable file. */
function openProgram(
  k: Kernel,
  ctx: ResolveCtx,
  cwd: DirRef,
  path: string,
): { desc: HostFileDesc; path: string } {
  const node = k.resolver.resolve(ctx, cwd, path, true);
  if (node.kind === "missing") throw new LinuxError(2 /* ENOENT */);
  if (node.kind !== "host") throw new LinuxError(EACCES);
  const st = node.st;
  if ((st.mode & S_IFMT) !== S_IFREG) throw new LinuxError(EACCES);
  if ((st.mode & 0o111) === 0) throw new LinuxError(EACCES);
  const hf = k.host.fs.open(node.path, O_RDONLY, 0);
  return { desc: new HostFileDesc(hf, O_RDONLY, node.path, node.path, undefined), path: node.path };
}

function readAt(desc: HostFileDesc, pos: number, len: number): Uint8Array {
  const b = new Uint8Array(len);
  let n = 0;
  while (n < len) {
    const r = desc.host.read(b.subarray(n), pos + n);
    if (r <= 0) break;
    n += r;
  }
  return b.subarray(0, n);
}

/** Parse a `#!` line: interpreter and optional single argument (as Linux: split at the first blank). */
function parseShebang(head: Uint8Array): { interp: string; arg: string | undefined } {
  let end = head.indexOf(10);
  if (end < 0) end = head.length;
  const line = utf8Decode(head.subarray(2, end))
    .replace(/^[ \t]+/, "")
    .replace(/[ \t]+$/, "");
  if (line.length === 0) throw new LinuxError(ENOEXEC);
  const m = /^(\S+)(?:[ \t]+(.*))?$/.exec(line);
  if (m === null) throw new LinuxError(ENOEXEC);
  return { interp: m[1]!, arg: m[2] };
}

/**
 * Build the new image for execve(path, argv, envp). Throws LinuxError (ENOEXEC with a
 * message for format problems); the caller's address space is untouched on failure.
 */
export function buildImage(
  k: Kernel,
  ctx: ResolveCtx,
  cwd: DirRef,
  path: string,
  argv: string[],
  envp: string[],
  depth = 0,
): Image {
  if (depth > BINPRM_MAX_RECURSION) throw new LinuxError(ELOOP);
  const { desc, path: resolved } = openProgram(k, ctx, cwd, path);
  try {
    const head = readAt(desc, 0, 256);
    if (head.length >= 2 && head[0] === 0x23 && head[1] === 0x21) {
      const { interp, arg } = parseShebang(head);
      const nargv = [interp, ...(arg !== undefined ? [arg] : []), path, ...argv.slice(1)];
      return buildImage(k, ctx, cwd, interp, nargv, envp, depth + 1);
    }
    if (!isElf(head)) throw new ExecFormatError("not an ELF executable or #! script");
    const info = parseElf((pos, len) => readAt(desc, pos, len));
    const mm = k.newMm();
    try {
      const obj = k.pageCache.get(desc);
      let bias = 0;
      if (info.type === ET_DYN) bias = dynBase(info, ELF_ET_DYN_BASE);
      // Where the segments land (after the bias of a position-independent image) must be
      // below the stack: a span that would reach it or leave user space is refused.
      if (loadSpan(info).hi + bias > STACK_TOP - STACK_SIZE) {
        throw new ExecFormatError("ELF segments overlap the stack or leave the user address space");
      }
      const main = mapElf(mm, obj, info, bias, resolved);
      let entry = main.entry;
      let interpBase = 0;
      if (info.interp !== undefined) {
        const ip = openProgram(k, ctx, cwd, info.interp);
        try {
          const iinfo = parseElf((pos, len) => readAt(ip.desc, pos, len));
          if (iinfo.type !== ET_DYN)
            throw new ExecFormatError(`interpreter ${info.interp} is not position independent`);
          const span = loadSpan(iinfo);
          const at = mm.findFree(span.hi - span.lo, 0);
          const il = mapElf(mm, k.pageCache.get(ip.desc), iinfo, at - span.lo, ip.path);
          entry = il.entry;
          interpBase = il.bias;
        } finally {
          ip.desc.decRef(k);
        }
      }
      mm.brkStart = Math.ceil(main.end / PAGE) * PAGE;
      mm.brk = mm.brkStart;
      const sp = buildStack(k, mm, main, entry === main.entry ? 0 : interpBase, argv, envp, path);
      const comm = resolved.slice(resolved.lastIndexOf("/") + 1).slice(0, 15);
      return { mm, entry, sp, exe: resolved, comm };
    } catch (e) {
      mm.destroy();
      throw e;
    }
  } finally {
    desc.decRef(k);
  }
}

function dynBase(info: ElfInfo, base: number): number {
  let align = PAGE;
  for (const p of info.phdrs) if (p.type === 1 && p.align > align) align = p.align;
  const span = loadSpan(info);
  return Math.floor(base / align) * align - span.lo;
}

/** Map the stack and write argc/argv/envp/auxv; returns the initial sp. */
function buildStack(
  k: Kernel,
  mm: AddressSpace,
  main: Loaded,
  interpBase: number,
  argv: string[],
  envp: string[],
  execfn: string,
): number {
  mm.insert(
    new Vma(STACK_TOP - STACK_SIZE, STACK_TOP, PROT_READ | PROT_WRITE, false, undefined, 0, "[stack]"),
  );
  const strs = [execfn, ...argv, ...envp].map((s) => utf8Encode(s));
  let total = 0;
  for (const s of strs) {
    if (s.length + 1 > MAX_ARG_STRLEN) throw new LinuxError(E2BIG);
    total += s.length + 1;
  }
  if (total > MAX_ARGS_BYTES) throw new LinuxError(E2BIG);
  // Strings at the very top, then 16 random bytes.
  let p = STACK_TOP - 8;
  const addrs: number[] = [];
  for (const s of strs) {
    p -= s.length + 1;
    const b = new Uint8Array(s.length + 1);
    b.set(s);
    mm.copyOut(p, b);
    addrs.push(p);
  }
  p -= 16;
  p = Math.floor(p / 16) * 16;
  const random = p;
  const rnd = new Uint8Array(16);
  k.host.random(rnd);
  mm.copyOut(random, rnd);
  const id = k.host.identity;
  const auxv: [number, number][] = [
    [AT_HWCAP, HWCAP_RV64IMAFDC],
    [AT_PAGESZ, PAGE],
    [AT_CLKTCK, 100],
    [AT_PHDR, main.phdr],
    [AT_PHENT, 56],
    [AT_PHNUM, main.phnum],
    [AT_BASE, interpBase],
    [AT_FLAGS, 0],
    [AT_ENTRY, main.entry],
    [AT_UID, id.uid],
    [AT_EUID, id.uid],
    [AT_GID, id.gid],
    [AT_EGID, id.gid],
    [AT_SECURE, 0],
    [AT_RANDOM, random],
    [AT_EXECFN, addrs[0]!],
    [AT_NULL, 0],
  ];
  const argc = argv.length;
  const words = 1 + argc + 1 + envp.length + 1 + 2 * auxv.length;
  const sp = Math.floor((p - words * 8) / 16) * 16;
  const buf = new Uint8Array(words * 8);
  const dv = new DataView(buf.buffer);
  let w = 0;
  const put = (v: number) => {
    dv.setUint32(w * 8, (v % 4294967296) >>> 0, true);
    dv.setUint32(w * 8 + 4, Math.floor(v / 4294967296), true);
    w++;
  };
  put(argc);
  for (let i = 0; i < argc; i++) put(addrs[1 + i]!);
  put(0);
  for (let i = 0; i < envp.length; i++) put(addrs[1 + argc + i]!);
  put(0);
  for (const [key, v] of auxv) {
    put(key);
    put(v);
  }
  mm.copyOut(sp, buf);
  return sp;
}

/** Install a built image into a task (the point of no return of execve). */
export function installImage(k: Kernel, t: Task, img: Image): void {
  const old = t.mm;
  const h = t.hart;
  old.users.delete(h);
  if (old.users.size === 0) old.destroy();
  t.mm = img.mm;
  k.attach(h, img.mm);
  t.exe = img.exe;
  t.comm = img.comm;
  h.clearRegisters();
  h.pc = BigInt(img.entry);
  h.setX(2, BigInt(img.sp));
  // Signal dispositions: handlers reset to default, ignored stay ignored (execve(2)).
  if (t.sig.users > 1) {
    t.sig.users--;
    t.sig = t.sig.clone();
  }
  for (const a of t.sig.actions) {
    if (a.handler > 1) a.handler = 0;
    a.flags = 0;
    a.mask = 0n;
  }
  t.altStack = { sp: 0, size: 0, flags: 2 };
  if (t.files.users > 1) {
    // A descriptor table shared with another task (CLONE_FILES) is unshared by execve.
    t.files.users--;
    t.files = t.files.fork();
  }
  t.files.closeOnExec(k);
  t.clearChildTid = 0;
  t.robustList = 0;
  if (t.vforkParent !== undefined) k.vforkRelease(t);
}
