/**
 * Memory-management calls: brk, mmap, munmap, mprotect, mremap, madvise, msync, mincore.
 */
import {
  MADV_DONTNEED,
  MAP_ANONYMOUS,
  MAP_FIXED,
  MAP_FIXED_NOREPLACE,
  MAP_POPULATE,
  MAP_PRIVATE,
  MAP_SHARED,
  MAP_SHARED_VALIDATE,
  MAP_TYPE,
  MREMAP_FIXED,
  MREMAP_MAYMOVE,
} from "./abi.ts";
import { EACCES, EBADF, EEXIST, EFAULT, EINVAL, ENODEV, ENOMEM, LinuxError } from "./errno.ts";
import { CharDevice, HostFileDesc } from "./files.ts";
import type { Kernel, Syscall } from "./kernel.ts";
import { MemObject, PAGE, PROT_EXEC, PROT_READ, PROT_WRITE, USER_TOP, Vma } from "./mm.ts";
import { NR } from "./numbers.ts";
import type { Task } from "./task.ts";

/** Something that can be mmapped besides regular files (io_uring rings). */
export interface Mappable {
  /** The shared object behind the mapping at file offset `off`, and its size in bytes. */
  mmapObject(off: number, len: number): { obj: MemObject; pgoff: number };
}

function isMappable(f: unknown): f is Mappable {
  return typeof (f as Mappable).mmapObject === "function";
}

const pageUp = (n: number) => Math.ceil(n / PAGE) * PAGE;

const sys_brk: Syscall = (_k, t) => {
  const mm = t.mm;
  const want = t.a(0);
  if (want < mm.brkStart) return mm.brk;
  const oldTop = pageUp(mm.brk);
  const newTop = pageUp(want);
  if (newTop > oldTop) {
    if (newTop >= USER_TOP || !mm.isFree(oldTop, newTop)) return mm.brk;
    mm.insert(new Vma(oldTop, newTop, PROT_READ | PROT_WRITE, false, undefined, 0, "[heap]"));
  } else if (newTop < oldTop) {
    mm.unmap(newTop, oldTop);
  }
  mm.brk = want;
  return mm.brk;
};

export function doMmap(
  k: Kernel,
  t: Task,
  addr: number,
  len: number,
  prot: number,
  flags: number,
  fd: number,
  off: number,
): number {
  const mm = t.mm;
  if (len === 0) return -EINVAL;
  const size = pageUp(len);
  if (size > USER_TOP) return -ENOMEM;
  const type = flags & MAP_TYPE;
  if (type !== MAP_SHARED && type !== MAP_PRIVATE && type !== MAP_SHARED_VALIDATE) return -EINVAL;
  const shared = type !== MAP_PRIVATE;
  if (off < 0 || off % PAGE !== 0) return -EINVAL;
  prot &= PROT_READ | PROT_WRITE | PROT_EXEC;
  const anon = (flags & MAP_ANONYMOUS) !== 0;
  let obj: MemObject | undefined;
  let pgoff = 0;
  let name = "";
  if (!anon) {
    const f = t.files.get(fd);
    if (isMappable(f)) {
      if (!shared) return -EINVAL;
      const m = f.mmapObject(off, size);
      obj = m.obj;
      pgoff = m.pgoff;
      name = f.path;
    } else if (f instanceof HostFileDesc && !f.isDir) {
      if (!f.readable) return -EACCES;
      if (shared && (prot & PROT_WRITE) !== 0 && !f.writable) return -EACCES;
      obj = k.pageCache.get(f);
      pgoff = off / PAGE;
      name = f.hostPath;
    } else if (f instanceof CharDevice && f.kind === "zero") {
      if (shared) obj = new MemObject(k.frames, size / PAGE);
    } else if (f instanceof CharDevice || f instanceof HostFileDesc) {
      return -ENODEV;
    } else {
      return f.readable || f.writable ? -ENODEV : -EBADF;
    }
  } else if (shared) {
    // Shared anonymous memory is backed by guest RAM only: more than all of it cannot be.
    if (size > k.ram.size) return -ENOMEM;
    obj = new MemObject(k.frames, size / PAGE);
    name = "/dev/zero (deleted)";
  }
  let start: number;
  if ((flags & (MAP_FIXED | MAP_FIXED_NOREPLACE)) !== 0) {
    if (addr % PAGE !== 0) return -EINVAL;
    if (addr + size > USER_TOP) return -ENOMEM;
    if ((flags & MAP_FIXED_NOREPLACE) !== 0 && !mm.isFree(addr, addr + size)) return -EEXIST;
    start = addr;
  } else {
    start = mm.findFree(size, addr - (addr % PAGE));
  }
  obj?.addUser();
  mm.insert(new Vma(start, start + size, prot, shared, obj, pgoff, name));
  if ((flags & MAP_POPULATE) !== 0) {
    try {
      mm.populate(start, start + size, (prot & PROT_WRITE) !== 0);
    } catch (e) {
      if (!(e instanceof LinuxError)) throw e;
    }
  }
  return start;
}

const sys_mmap: Syscall = (k, t) => doMmap(k, t, t.a(0), t.a(1), t.ai(2), t.ai(3), t.ai(4), t.al(5));

const sys_munmap: Syscall = (_k, t) => {
  const addr = t.a(0);
  const len = t.a(1);
  if (addr % PAGE !== 0 || len === 0 || addr + len > USER_TOP) return -EINVAL;
  t.mm.unmap(addr, addr + pageUp(len));
  return 0;
};

const sys_mprotect: Syscall = (_k, t) => {
  const addr = t.a(0);
  const len = pageUp(t.a(1));
  const prot = t.ai(2);
  if (addr % PAGE !== 0) return -EINVAL;
  if ((prot & ~(PROT_READ | PROT_WRITE | PROT_EXEC | 0x01000000 | 0x02000000)) !== 0) return -EINVAL;
  if (len === 0) return 0;
  if (addr + len > USER_TOP) return -ENOMEM;
  t.mm.protect(addr, addr + len, prot & 7);
  return 0;
};

const sys_mremap: Syscall = (_k, t) => {
  const mm = t.mm;
  const old = t.a(0);
  const oldLen = pageUp(t.a(1));
  const newLen = pageUp(t.a(2));
  const flags = t.ai(3);
  const newAddr = t.a(4);
  if (old % PAGE !== 0 || newLen === 0) return -EINVAL;
  if ((flags & ~(MREMAP_MAYMOVE | MREMAP_FIXED)) !== 0) return -EINVAL;
  if ((flags & MREMAP_FIXED) !== 0 && ((flags & MREMAP_MAYMOVE) === 0 || newAddr % PAGE !== 0))
    return -EINVAL;
  const v = mm.find(old);
  if (v === undefined || old + oldLen > v.end) return -EFAULT;
  if ((flags & MREMAP_FIXED) === 0) {
    if (newLen <= oldLen) {
      if (newLen < oldLen) mm.unmap(old + newLen, old + oldLen);
      return old;
    }
    if (old + oldLen === v.end && mm.isFree(old + oldLen, old + newLen) && old + newLen <= USER_TOP) {
      // Grow in place: split off anything before `old`, extend the VMA.
      const vs = mm.takeVmas(old, old + oldLen);
      const w = vs[0]!;
      w.end = old + newLen;
      mm.placeVmas(vs);
      return old;
    }
    if ((flags & MREMAP_MAYMOVE) === 0) return -ENOMEM;
  }
  const dest = (flags & MREMAP_FIXED) !== 0 ? newAddr : mm.findFree(newLen, 0);
  if ((flags & MREMAP_FIXED) !== 0) {
    if (dest + newLen > USER_TOP) return -EINVAL;
    if (dest < old + oldLen && old < dest + newLen) return -EINVAL;
    mm.unmap(dest, dest + newLen);
  }
  const keep = Math.min(oldLen, newLen);
  if (newLen < oldLen) mm.unmap(old + newLen, old + oldLen);
  const vs = mm.takeVmas(old, old + keep);
  if (vs.length !== 1) {
    mm.placeVmas(vs);
    return -EFAULT;
  }
  const w = vs[0]!;
  w.start = dest;
  w.end = dest + newLen;
  mm.movePages(old, keep, dest);
  mm.placeVmas(vs);
  return dest;
};

const sys_madvise: Syscall = (_k, t) => {
  const addr = t.a(0);
  const len = pageUp(t.a(1));
  const advice = t.ai(2);
  if (addr % PAGE !== 0) return -EINVAL;
  if (advice === MADV_DONTNEED) t.mm.zap(addr, addr + len);
  return 0;
};

const sys_msync: Syscall = (_k, t) => {
  const addr = t.a(0);
  if (addr % PAGE !== 0) return -EINVAL;
  t.mm.sync(addr, addr + pageUp(t.a(1)));
  return 0;
};

const sys_mincore: Syscall = (_k, t) => {
  const addr = t.a(0);
  const len = pageUp(t.a(1));
  if (addr % PAGE !== 0) return -EINVAL;
  if (addr + len > USER_TOP) return -ENOMEM;
  for (let va = addr; va < addr + len; ) {
    const v = t.mm.find(va);
    if (v === undefined) return -ENOMEM;
    va = v.end;
  }
  const vec = new Uint8Array(len / PAGE);
  for (let i = 0; i < vec.length; i++) vec[i] = t.mm.pteOff(addr + i * PAGE, false) >= 0 ? 1 : 0;
  t.mm.copyOut(t.a(2), vec);
  return 0;
};

const sys_zero: Syscall = () => 0;

export function registerMm(table: (Syscall | undefined)[]): void {
  const set = (name: string, fn: Syscall) => {
    const nr = NR[name];
    if (nr === undefined) throw new Error(`unknown syscall ${name}`);
    table[nr] = fn;
  };
  set("brk", sys_brk);
  set("mmap", sys_mmap);
  set("munmap", sys_munmap);
  set("mprotect", sys_mprotect);
  set("mremap", sys_mremap);
  set("madvise", sys_madvise);
  set("msync", sys_msync);
  set("mincore", sys_mincore);
  set("mlock", sys_zero);
  set("munlock", sys_zero);
  set("mlockall", sys_zero);
  set("munlockall", sys_zero);
}
