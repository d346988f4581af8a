/**
 * Process address spaces, built as real Sv39 page tables in guest RAM.
 *
 * The hart's MMU translates every guest access through these tables (the walker in
 * @visor/memory, with hardware A/D updates); the kernel side walks the same tables to copy
 * data in and out of the guest, exactly as a kernel's copy_to_user would, and returns
 * EFAULT for anything the guest has not mapped. This is gVisor's design with the MMU doing
 * the isolation instead of a host process boundary.
 *
 * - Frames: a free-list allocator over the one contiguous GuestRam, with reference counts
 *   so that pages can be shared (copy-on-write after fork, the page cache, shared maps).
 * - VMAs: a sorted list of [start, end) regions with protection and backing (anonymous,
 *   a shared memory object, or a file through the page cache). Pages are populated lazily
 *   on the first fault, as Linux does.
 * - Copy-on-write: private pages shared after fork (or read from the page cache) are
 *   mapped without W and with the software bit PTE_COW (RSW bit 8, which the privileged
 *   spec §4.3.1 reserves for supervisor software); the first store faults and gets a copy.
 *
 * Sv39 (privileged spec §4.4): three levels of 512 eight-byte entries, user addresses
 * below 2^38. A leaf PTE's PPN is the physical page number, i.e. (ram.base + off) / 4096.
 */
import {
  type GuestRam,
  PTE_A,
  PTE_D,
  PTE_R,
  PTE_U,
  PTE_V,
  PTE_W,
  PTE_X,
  SATP_MODE_SV39,
} from "@visor/memory";
import { EFAULT, EINVAL, ENAMETOOLONG, ENOMEM, LinuxError } from "./errno.ts";
import { utf8Decode } from "./utf8.ts";

export const PAGE = 4096;
export const PROT_READ = 1;
export const PROT_WRITE = 2;
export const PROT_EXEC = 4;
/** Software PTE bit (RSW, bit 8): a private page shared copy-on-write. */
export const PTE_COW = 1 << 8;
/** Lowest address user mmap may hand out (Linux's default vm.mmap_min_addr is 64 KiB). */
export const MMAP_MIN_ADDR = 0x10000;
/** Top of the Sv39 user half: addresses at and above 2^38 are not canonical user addresses. */
export const USER_TOP = 2 ** 38;
export const SATP_MODE = SATP_MODE_SV39;

export const ACCESS_R = 0;
export const ACCESS_W = 1;
export const ACCESS_X = 2;

const TWO32 = 4294967296;

/** Something the hart must drop its TLB for when mappings change. */
export interface TlbHolder {
  flushTlb(): void;
}

// ------------------------------------------------------------------------------ frames

/** Physical page allocator over guest RAM with per-frame reference counts. */
export class Frames {
  readonly ram: GuestRam;
  readonly count: number;
  private readonly stack: Int32Array;
  private top: number;
  readonly refs: Uint32Array;
  /** Called when the allocator runs dry, to free reclaimable pages (the page cache); returns true if it freed some. */
  reclaim: (() => boolean) | undefined;
  /** High-water mark of frames in use. */
  peak = 0;

  constructor(ram: GuestRam) {
    if (ram.end > 2 ** 34)
      throw new RangeError("guest RAM must end below 16 GiB for the syscall layer's PTEs");
    this.ram = ram;
    this.count = ram.size / PAGE;
    this.stack = new Int32Array(this.count);
    this.refs = new Uint32Array(this.count);
    // Pop order is ascending, so fresh allocations come out physically contiguous.
    for (let i = 0; i < this.count; i++) this.stack[i] = (this.count - 1 - i) * PAGE;
    this.top = this.count;
  }

  get used(): number {
    return this.count - this.top;
  }

  /** Allocate a frame (RAM byte offset), contents undefined; reference count 1. */
  alloc(): number {
    if (this.top === 0 && !(this.reclaim?.() ?? false)) throw new LinuxError(ENOMEM, "guest RAM exhausted");
    if (this.top === 0) throw new LinuxError(ENOMEM, "guest RAM exhausted");
    const off = this.stack[--this.top]!;
    this.refs[off / PAGE] = 1;
    const used = this.count - this.top;
    if (used > this.peak) this.peak = used;
    return off;
  }

  /** Allocate a zero-filled frame. */
  allocZero(): number {
    const off = this.alloc();
    this.ram.u8.fill(0, off, off + PAGE);
    this.ram.markDirty(off, PAGE);
    return off;
  }

  ref(off: number): void {
    this.refs[off / PAGE]!++;
  }

  unref(off: number): void {
    const i = off / PAGE;
    const r = this.refs[i]!;
    if (r === 0) throw new Error(`frame 0x${off.toString(16)} released twice`);
    this.refs[i] = r - 1;
    if (r === 1) this.stack[this.top++] = off;
  }

  refcount(off: number): number {
    return this.refs[off / PAGE]!;
  }
}

// ------------------------------------------------------------------------------ memory objects

/** Where a file-backed memory object reads (and writes back) its pages. */
export interface PageSource {
  /** Read up to dst.length bytes at `pos`; returns the count (short at end of file). */
  readAt(pos: number, dst: Uint8Array): number;
  /** Write back a dirty page of a shared mapping. */
  writeAt(pos: number, src: Uint8Array): void;
  /** Drop the reference the object holds on the file. */
  release(): void;
}

/** Pages per chunk of a MemObject's sparse page table. */
const CHUNK_SHIFT = 9;
const CHUNK = 1 << CHUNK_SHIFT;

/**
 * A set of pages shared by every mapping of it: the page cache of one file, a shared
 * anonymous region, or kernel memory shared with the guest (io_uring rings).
 *
 * Its page table is sparse (chunks of 512 entries in a Map), so a guest that maps a huge
 * file or region and touches one page costs one chunk of host memory, not a table the
 * size of the mapping.
 */
export class MemObject {
  readonly frames: Frames;
  /** Nominal size in pages (what mmap of the object may cover). */
  readonly npages: number;
  private readonly chunks = new Map<number, Int32Array>();
  /** Pages written through a shared writable mapping, to write back to the file. */
  private readonly dirtyPages = new Set<number>();
  readonly source: PageSource | undefined;
  /** Number of VMAs (and other holders) using this object. */
  users = 0;
  /** Page-cache key, when this is a cached file. */
  key: string | undefined;

  constructor(frames: Frames, npages: number, source?: PageSource) {
    this.frames = frames;
    this.npages = npages;
    this.source = source;
  }

  /** The frame of page `i` if it is populated, else -1. */
  get(i: number): number {
    const c = this.chunks.get(Math.floor(i / CHUNK));
    return c === undefined ? -1 : c[i % CHUNK]!;
  }

  /** The frame of page `i`, reading or zero-filling it on first use. */
  page(i: number): number {
    const ci = Math.floor(i / CHUNK);
    let c = this.chunks.get(ci);
    if (c === undefined) {
      c = new Int32Array(CHUNK).fill(-1);
      this.chunks.set(ci, c);
    }
    let off = c[i % CHUNK]!;
    if (off >= 0) return off;
    off = this.frames.allocZero();
    if (this.source !== undefined) {
      try {
        this.source.readAt(i * PAGE, this.frames.ram.u8.subarray(off, off + PAGE));
      } catch (e) {
        this.frames.unref(off);
        throw e;
      }
      this.frames.ram.markDirty(off, PAGE);
    }
    c[i % CHUNK] = off;
    return off;
  }

  isDirty(i: number): boolean {
    return this.dirtyPages.has(i);
  }

  setDirty(i: number): void {
    if (this.source !== undefined) this.dirtyPages.add(i);
  }

  /** Write dirty pages back to the file. */
  writeBack(): void {
    if (this.source === undefined || this.dirtyPages.size === 0) return;
    const u8 = this.frames.ram.u8;
    for (const i of [...this.dirtyPages].sort((a, b) => a - b)) {
      const off = this.get(i);
      this.dirtyPages.delete(i);
      if (off >= 0) this.source.writeAt(i * PAGE, u8.subarray(off, off + PAGE));
    }
  }

  addUser(): void {
    this.users++;
  }

  /** Drop a user; when none is left (and it is not cached) the frames go back. */
  dropUser(): void {
    this.users--;
    if (this.users <= 0 && this.key === undefined) this.free();
  }

  free(): void {
    this.writeBack();
    for (const c of this.chunks.values()) {
      for (let k = 0; k < CHUNK; k++) if (c[k]! >= 0) this.frames.unref(c[k]!);
    }
    this.chunks.clear();
    this.source?.release();
  }
}

// ------------------------------------------------------------------------------ VMAs

export class Vma {
  start: number;
  end: number;
  prot: number;
  shared: boolean;
  obj: MemObject | undefined;
  /** Page index in `obj` of `start`. */
  pgoff: number;
  name: string;

  constructor(
    start: number,
    end: number,
    prot: number,
    shared: boolean,
    obj: MemObject | undefined,
    pgoff: number,
    name: string,
  ) {
    this.start = start;
    this.end = end;
    this.prot = prot;
    this.shared = shared;
    this.obj = obj;
    this.pgoff = pgoff;
    this.name = name;
  }

  clone(): Vma {
    this.obj?.addUser();
    return new Vma(this.start, this.end, this.prot, this.shared, this.obj, this.pgoff, this.name);
  }
}

// ------------------------------------------------------------------------------ the address space

function vpn(va: number, level: number): number {
  const lo = (va % TWO32) >>> 0;
  switch (level) {
    case 0:
      return (lo >>> 12) & 0x1ff;
    case 1:
      return (lo >>> 21) & 0x1ff;
    default:
      return ((lo >>> 30) | (Math.floor(va / TWO32) << 2)) & 0x1ff;
  }
}

export interface FaultStats {
  faults: number;
  cowCopies: number;
  zeroFills: number;
}

export class AddressSpace {
  readonly frames: Frames;
  readonly ram: GuestRam;
  /** RAM offset of the root page table. */
  readonly root: number;
  /** Page-table pages (RAM offsets), freed with the address space. */
  private readonly tables: number[] = [];
  vmas: Vma[] = [];
  /** Harts running in this address space (flushed after changes). */
  readonly users = new Set<TlbHolder>();
  brkStart = 0;
  brk = 0;
  /** mmap allocates top-down below this address. */
  mmapBase = 0;
  readonly stats: FaultStats;
  private destroyed = false;

  constructor(frames: Frames, stats?: FaultStats) {
    this.frames = frames;
    this.ram = frames.ram;
    this.root = frames.allocZero();
    this.tables.push(this.root);
    this.stats = stats ?? { faults: 0, cowCopies: 0, zeroFills: 0 };
  }

  /** Root page number for satp. */
  get rootPpn(): number {
    return (this.ram.base + this.root) / PAGE;
  }

  flush(): void {
    for (const u of this.users) u.flushTlb();
  }

  // --------------------------------------------------------------- page tables

  /** RAM offset of the leaf PTE for `va`, or -1 (with alloc: the tables are created). */
  pteOff(va: number, alloc: boolean): number {
    const dv = this.ram.dv;
    const base = this.ram.base;
    let table = this.root;
    for (let level = 2; level > 0; level--) {
      const e = table + vpn(va, level) * 8;
      const lo = dv.getInt32(e, true);
      if ((lo & PTE_V) === 0) {
        if (!alloc) return -1;
        const t = this.frames.allocZero();
        this.tables.push(t);
        dv.setInt32(e, (((base + t) / PAGE) << 10) | PTE_V, true);
        dv.setInt32(e + 4, 0, true);
        table = t;
      } else {
        const hi = dv.getInt32(e + 4, true);
        table = ((hi & 0x3fffff) * 0x400000 + (lo >>> 10)) * PAGE - base;
      }
    }
    return table + vpn(va, 0) * 8;
  }

  /** Frame (RAM offset) of a leaf PTE value. */
  private pteFrame(lo: number, hi: number): number {
    return ((hi & 0x3fffff) * 0x400000 + (lo >>> 10)) * PAGE - this.ram.base;
  }

  private writePte(e: number, frame: number, flags: number): void {
    const ppn = (this.ram.base + frame) / PAGE;
    this.ram.dv.setInt32(e, ((ppn % 0x400000) << 10) | flags, true);
    this.ram.dv.setInt32(e + 4, Math.floor(ppn / 0x400000), true);
  }

  private pteFlags(prot: number, writable: boolean): number {
    let f = PTE_V | PTE_U | PTE_A;
    if ((prot & (PROT_READ | PROT_WRITE)) !== 0) f |= PTE_R;
    if ((prot & PROT_EXEC) !== 0) f |= PTE_X;
    if (writable) f |= PTE_W | PTE_D;
    return f;
  }

  /**
   * Visit every present leaf PTE in [start, end), skipping absent tables.
   * `fn` gets the VA and the PTE's RAM offset.
   */
  forEachPte(start: number, end: number, fn: (va: number, e: number) => void): void {
    const dv = this.ram.dv;
    const base = this.ram.base;
    const walk = (table: number, level: number, tableVa: number): void => {
      const span = 2 ** (12 + 9 * level);
      const first = Math.max(0, Math.floor((start - tableVa) / span));
      const last = Math.min(511, Math.floor((end - 1 - tableVa) / span));
      for (let i = first; i <= last; i++) {
        const e = table + i * 8;
        const lo = dv.getInt32(e, true);
        const va = tableVa + i * span;
        if (level === 0) {
          // Leaves hidden by PROT_NONE keep their frame with V clear: visit them too.
          if (lo !== 0 || dv.getInt32(e + 4, true) !== 0) fn(va, e);
          continue;
        }
        if ((lo & PTE_V) === 0) continue;
        {
          const hi = dv.getInt32(e + 4, true);
          walk(((hi & 0x3fffff) * 0x400000 + (lo >>> 10)) * PAGE - base, level - 1, va);
        }
      }
    };
    if (end > start) walk(this.root, 2, 0);
  }

  /** Remove the PTEs in [start, end) and release their frames. */
  private unmapPtes(start: number, end: number): void {
    const dv = this.ram.dv;
    this.forEachPte(start, end, (_va, e) => {
      const lo = dv.getInt32(e, true);
      const hi = dv.getInt32(e + 4, true);
      dv.setInt32(e, 0, true);
      dv.setInt32(e + 4, 0, true);
      this.frames.unref(this.pteFrame(lo, hi));
    });
  }

  // --------------------------------------------------------------- VMAs

  /** Index of the first VMA with end > va. */
  private lowerBound(va: number): number {
    let lo = 0;
    let hi = this.vmas.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.vmas[mid]!.end <= va) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  find(va: number): Vma | undefined {
    const v = this.vmas[this.lowerBound(va)];
    return v !== undefined && v.start <= va ? v : undefined;
  }

  /** True when no VMA intersects [start, end). */
  isFree(start: number, end: number): boolean {
    const v = this.vmas[this.lowerBound(start)];
    return v === undefined || v.start >= end;
  }

  /** Split the VMA containing `va` (if any) so that a VMA boundary falls at `va`. */
  private splitAt(va: number): void {
    const i = this.lowerBound(va);
    const v = this.vmas[i];
    if (v === undefined || v.start >= va) return;
    const right = v.clone();
    right.start = va;
    right.pgoff = v.pgoff + (va - v.start) / PAGE;
    v.end = va;
    this.vmas.splice(i + 1, 0, right);
  }

  /** Remove every mapping in [start, end). */
  unmap(start: number, end: number): void {
    if (end <= start) return;
    this.splitAt(start);
    this.splitAt(end);
    const i = this.lowerBound(start);
    let j = i;
    while (j < this.vmas.length && this.vmas[j]!.start < end) j++;
    const gone = this.vmas.splice(i, j - i);
    for (const v of gone) {
      this.unmapPtes(v.start, v.end);
      if (v.shared) v.obj?.writeBack();
      v.obj?.dropUser();
    }
    if (gone.length > 0) this.flush();
  }

  /** Drop the pages of [start, end) but keep the mappings (MADV_DONTNEED): they fault back in fresh. */
  zap(start: number, end: number): void {
    for (const v of this.vmas) {
      if (v.end <= start || v.start >= end) continue;
      if (v.shared) continue;
      this.unmapPtes(Math.max(start, v.start), Math.min(end, v.end));
    }
    this.flush();
  }

  /** Insert a new VMA over [start, end) (whatever was there is unmapped first). */
  insert(v: Vma): void {
    this.unmap(v.start, v.end);
    const i = this.lowerBound(v.start);
    this.vmas.splice(i, 0, v);
    this.mergeAround(i);
  }

  /** Merge VMA i with compatible neighbours (anonymous private regions only). */
  private mergeAround(i: number): void {
    const can = (a: Vma, b: Vma): boolean =>
      a.end === b.start &&
      a.obj === undefined &&
      b.obj === undefined &&
      !a.shared &&
      !b.shared &&
      a.prot === b.prot &&
      a.name === b.name;
    const v = this.vmas[i];
    if (v === undefined) return;
    const next = this.vmas[i + 1];
    if (next !== undefined && can(v, next)) {
      v.end = next.end;
      this.vmas.splice(i + 1, 1);
    }
    const prev = this.vmas[i - 1];
    if (prev !== undefined && can(prev, v)) {
      prev.end = v.end;
      this.vmas.splice(i, 1);
    }
  }

  /** Find a free range of `len` bytes, top-down below mmapBase (or at/after `hint` if it is free). */
  findFree(len: number, hint: number): number {
    if (hint >= MMAP_MIN_ADDR && hint + len <= this.mmapBase && this.isFree(hint, hint + len)) return hint;
    let top = this.mmapBase;
    for (let i = this.lowerBound(top) - 1; i >= -1; i--) {
      const v = this.vmas[i];
      const floor = v === undefined ? MMAP_MIN_ADDR : v.end;
      if (v !== undefined && v.start >= top) continue;
      if (top - len >= floor) return top - len;
      if (v === undefined) break;
      top = Math.min(top, v.start);
    }
    throw new LinuxError(ENOMEM);
  }

  /** Change the protection of [start, end); every page must be mapped (else ENOMEM). */
  protect(start: number, end: number, prot: number): void {
    for (let va = start; va < end; ) {
      const v = this.find(va);
      if (v === undefined) throw new LinuxError(ENOMEM);
      va = v.end;
    }
    this.splitAt(start);
    this.splitAt(end);
    const dv = this.ram.dv;
    for (let i = this.lowerBound(start); i < this.vmas.length && this.vmas[i]!.start < end; i++) {
      const v = this.vmas[i]!;
      v.prot = prot;
      this.forEachPte(v.start, v.end, (va, e) => {
        const frame = this.pteFrame(dv.getInt32(e, true), dv.getInt32(e + 4, true));
        this.writePte(e, frame, this.leafFlags(v, va, frame));
      });
    }
    this.flush();
  }

  /**
   * PTE flags for a present page of `v`: PROT_NONE hides the page (V clear, frame kept);
   * W only when the page may be written in place (a private page nobody else holds, a
   * shared anonymous page, a shared file page already marked dirty), else PTE_COW.
   */
  private leafFlags(v: Vma, va: number, frame: number): number {
    const prot = v.prot;
    if ((prot & (PROT_READ | PROT_WRITE | PROT_EXEC)) === 0) return 0;
    if ((prot & PROT_WRITE) === 0) return this.pteFlags(prot, false);
    let writable: boolean;
    if (v.shared) {
      writable =
        v.obj === undefined || v.obj.source === undefined || v.obj.isDirty(v.pgoff + (va - v.start) / PAGE);
      return this.pteFlags(prot, writable);
    }
    writable = this.frames.refcount(frame) === 1 && !this.isCachePage(v, va, frame);
    return this.pteFlags(prot, writable) | (writable ? 0 : PTE_COW);
  }

  /** True when `frame` is the object's own page (a private mapping must never write it). */
  private isCachePage(v: Vma, va: number, frame: number): boolean {
    return v.obj !== undefined && v.obj.get(v.pgoff + (va - v.start) / PAGE) === frame;
  }

  // --------------------------------------------------------------- faults

  /**
   * Resolve a fault at `va` for `access` (ACCESS_R/W/X) as the hardware reported it, or as
   * the kernel's own copy-in/out needs it. Returns false when the access is not allowed
   * (the guest gets SIGSEGV, the kernel returns EFAULT).
   */
  fault(va: number, access: number): boolean {
    if (va < 0 || va >= USER_TOP) return false;
    const v = this.find(va);
    if (v === undefined) return false;
    const need = access === ACCESS_W ? PROT_WRITE : access === ACCESS_X ? PROT_EXEC : PROT_READ;
    if ((v.prot & need) === 0) return false;
    this.stats.faults++;
    const page = va - (va % PAGE);
    const dv = this.ram.dv;
    let e = this.pteOff(page, false);
    const lo = e < 0 ? 0 : dv.getInt32(e, true);
    const hi = e < 0 ? 0 : dv.getInt32(e + 4, true);
    if ((lo & PTE_V) !== 0) {
      // Present: a write to a copy-on-write or clean shared page, or a stale TLB entry.
      const frame = this.pteFrame(lo, hi);
      if (access === ACCESS_W && (lo & PTE_W) === 0) {
        if (v.shared) {
          v.obj?.setDirty(v.pgoff + (page - v.start) / PAGE);
          this.writePte(e, frame, this.pteFlags(v.prot, true));
        } else if (this.frames.refcount(frame) === 1 && !this.isCachePage(v, page, frame)) {
          this.writePte(e, frame, this.pteFlags(v.prot, true));
        } else {
          const copy = this.frames.alloc();
          this.ram.u8.copyWithin(copy, frame, frame + PAGE);
          this.ram.markDirty(copy, PAGE);
          this.frames.unref(frame);
          this.writePte(e, copy, this.pteFlags(v.prot, true));
          this.stats.cowCopies++;
        }
      }
      this.flush();
      return true;
    }
    if (lo !== 0 || hi !== 0) {
      // A page hidden by PROT_NONE whose VMA is accessible again.
      const frame = this.pteFrame(lo, hi);
      this.writePte(e, frame, this.leafFlags(v, page, frame));
      this.flush();
      return this.fault(va, access);
    }
    // Not present: populate.
    if (e < 0) e = this.pteOff(page, true);
    if (v.obj !== undefined) {
      const idx = v.pgoff + (page - v.start) / PAGE;
      const src = v.obj.page(idx);
      if (v.shared) {
        this.frames.ref(src);
        const w = (v.prot & PROT_WRITE) !== 0 && (v.obj.source === undefined || access === ACCESS_W);
        if (w) v.obj.setDirty(idx);
        this.writePte(e, src, this.pteFlags(v.prot, w));
      } else if (access === ACCESS_W) {
        const copy = this.frames.alloc();
        this.ram.u8.copyWithin(copy, src, src + PAGE);
        this.ram.markDirty(copy, PAGE);
        this.writePte(e, copy, this.pteFlags(v.prot, true));
        this.stats.cowCopies++;
      } else {
        this.frames.ref(src);
        this.writePte(e, src, this.pteFlags(v.prot, false) | ((v.prot & PROT_WRITE) !== 0 ? PTE_COW : 0));
      }
    } else {
      const f = this.frames.allocZero();
      this.stats.zeroFills++;
      this.writePte(e, f, this.pteFlags(v.prot, (v.prot & PROT_WRITE) !== 0));
    }
    return true;
  }

  /**
   * Eagerly populate [start, end) (MAP_POPULATE, and the ELF loader's bss fix-up).
   */
  populate(start: number, end: number, write: boolean): void {
    for (let va = start; va < end; va += PAGE) {
      if (!this.fault(va, write ? ACCESS_W : ACCESS_R)) throw new LinuxError(EFAULT);
    }
  }

  // --------------------------------------------------------------- user access

  /**
   * RAM offset of the byte at user address `va`, faulting the page in when the VMA allows
   * the access; -1 when it does not (EFAULT).
   */
  userOff(va: number, write: boolean): number {
    if (!(va >= 0 && va < USER_TOP)) return -1;
    const dv = this.ram.dv;
    for (let attempt = 0; attempt < 2; attempt++) {
      const e = this.pteOff(va, false);
      if (e >= 0) {
        const lo = dv.getInt32(e, true);
        const ok = write
          ? (lo & (PTE_V | PTE_W | PTE_U)) === (PTE_V | PTE_W | PTE_U)
          : (lo & (PTE_V | PTE_R | PTE_U)) === (PTE_V | PTE_R | PTE_U);
        if (ok) return this.pteFrame(lo, dv.getInt32(e + 4, true)) + (va % PAGE);
      }
      if (attempt === 0 && !this.fault(va, write ? ACCESS_W : ACCESS_R)) return -1;
    }
    return -1;
  }

  /** Check that [va, va+len) is accessible; throws EFAULT. */
  checkRange(va: number, len: number, write: boolean): void {
    if (len === 0) return;
    if (!(va >= 0 && len > 0 && va + len <= USER_TOP)) throw new LinuxError(EFAULT);
    for (let p = va - (va % PAGE); p < va + len; p += PAGE) {
      if (this.userOff(Math.max(p, va), write) < 0) throw new LinuxError(EFAULT);
    }
  }

  /**
   * Visit [va, va+len) as RAM chunks (physically contiguous runs), for zero-copy I/O.
   * `fn(off, n)` returns false to stop early. Throws EFAULT on unmapped memory.
   */
  chunks(va: number, len: number, write: boolean, fn: (off: number, n: number) => boolean): void {
    if (len === 0) return;
    if (!(va >= 0 && len > 0 && va + len <= USER_TOP)) throw new LinuxError(EFAULT);
    let runOff = -1;
    let runLen = 0;
    let p = va;
    const end = va + len;
    while (p < end) {
      const off = this.userOff(p, write);
      if (off < 0) {
        if (runLen > 0) fn(runOff, runLen);
        throw new LinuxError(EFAULT);
      }
      const n = Math.min(PAGE - (p % PAGE), end - p);
      if (runLen > 0 && runOff + runLen === off) runLen += n;
      else {
        if (runLen > 0 && !fn(runOff, runLen)) return;
        runOff = off;
        runLen = n;
      }
      p += n;
    }
    if (runLen > 0) fn(runOff, runLen);
  }

  /** Copy `len` bytes from user memory. */
  copyIn(va: number, len: number): Uint8Array {
    const out = new Uint8Array(len);
    let pos = 0;
    const u8 = this.ram.u8;
    this.chunks(va, len, false, (off, n) => {
      out.set(u8.subarray(off, off + n), pos);
      pos += n;
      return true;
    });
    return out;
  }

  /** Copy bytes to user memory. */
  copyOut(va: number, src: Uint8Array): void {
    let pos = 0;
    const ram = this.ram;
    this.chunks(va, src.length, true, (off, n) => {
      ram.u8.set(src.subarray(pos, pos + n), off);
      ram.markDirty(off, n);
      pos += n;
      return true;
    });
  }

  /** Fill user memory with zeros. */
  zeroOut(va: number, len: number): void {
    const ram = this.ram;
    this.chunks(va, len, true, (off, n) => {
      ram.u8.fill(0, off, off + n);
      ram.markDirty(off, n);
      return true;
    });
  }

  private scratch = new DataView(new ArrayBuffer(8));
  private scratchU8 = new Uint8Array(this.scratch.buffer);

  private readSmall(va: number, n: number): DataView {
    if (va % PAGE <= PAGE - n) {
      const off = this.userOff(va, false);
      if (off < 0) throw new LinuxError(EFAULT);
      this.scratchU8.set(this.ram.u8.subarray(off, off + n));
    } else {
      this.scratchU8.set(this.copyIn(va, n));
    }
    return this.scratch;
  }

  private writeSmall(va: number, n: number): void {
    if (va % PAGE <= PAGE - n) {
      const off = this.userOff(va, true);
      if (off < 0) throw new LinuxError(EFAULT);
      this.ram.u8.set(this.scratchU8.subarray(0, n), off);
      this.ram.markDirty(off, n);
    } else {
      this.copyOut(va, this.scratchU8.slice(0, n));
    }
  }

  readU8(va: number): number {
    return this.readSmall(va, 1).getUint8(0);
  }
  readU16(va: number): number {
    return this.readSmall(va, 2).getUint16(0, true);
  }
  readU32(va: number): number {
    return this.readSmall(va, 4).getUint32(0, true);
  }
  readI32(va: number): number {
    return this.readSmall(va, 4).getInt32(0, true);
  }
  /** A 64-bit value as a number (exact below 2^53; larger values lose low bits). */
  readU64(va: number): number {
    const d = this.readSmall(va, 8);
    return d.getUint32(4, true) * TWO32 + d.getUint32(0, true);
  }
  readI64(va: number): number {
    const d = this.readSmall(va, 8);
    return d.getInt32(4, true) * TWO32 + d.getUint32(0, true);
  }
  readBig64(va: number): bigint {
    return this.readSmall(va, 8).getBigUint64(0, true);
  }
  writeU8(va: number, v: number): void {
    this.scratch.setUint8(0, v);
    this.writeSmall(va, 1);
  }
  writeU16(va: number, v: number): void {
    this.scratch.setUint16(0, v, true);
    this.writeSmall(va, 2);
  }
  writeU32(va: number, v: number): void {
    this.scratch.setUint32(0, v >>> 0, true);
    this.writeSmall(va, 4);
  }
  writeI32(va: number, v: number): void {
    this.scratch.setInt32(0, v, true);
    this.writeSmall(va, 4);
  }
  writeU64(va: number, v: number): void {
    this.scratch.setUint32(0, (v % TWO32) >>> 0, true);
    this.scratch.setInt32(4, Math.floor(v / TWO32), true);
    this.writeSmall(va, 8);
  }
  writeBig64(va: number, v: bigint): void {
    this.scratch.setBigUint64(0, BigInt.asUintN(64, v), true);
    this.writeSmall(va, 8);
  }

  /** Read a NUL-terminated string of at most `max` bytes (ENAMETOOLONG beyond). */
  readCString(va: number, max = 4096): string {
    const parts: Uint8Array[] = [];
    let total = 0;
    let p = va;
    const u8 = this.ram.u8;
    for (;;) {
      const off = this.userOff(p, false);
      if (off < 0) throw new LinuxError(EFAULT);
      const n = PAGE - (p % PAGE);
      const view = u8.subarray(off, off + n);
      const z = view.indexOf(0);
      const take = z >= 0 ? z : n;
      if (total + take >= max) throw new LinuxError(ENAMETOOLONG);
      parts.push(view.subarray(0, take));
      total += take;
      if (z >= 0) break;
      p += n;
    }
    return decodeUtf8(parts.length === 1 ? parts[0]! : concat(parts, total));
  }

  // --------------------------------------------------------------- fork / teardown

  /** A copy of this address space for fork: private pages become copy-on-write in both. */
  fork(): AddressSpace {
    const child = new AddressSpace(this.frames, this.stats);
    child.brkStart = this.brkStart;
    child.brk = this.brk;
    child.mmapBase = this.mmapBase;
    const dv = this.ram.dv;
    for (const v of this.vmas) {
      child.vmas.push(v.clone());
      this.forEachPte(v.start, v.end, (va, e) => {
        let lo = dv.getInt32(e, true);
        const hi = dv.getInt32(e + 4, true);
        const frame = this.pteFrame(lo, hi);
        if (!v.shared && (lo & PTE_W) !== 0) {
          lo = (lo & ~(PTE_W | PTE_D)) | PTE_COW;
          dv.setInt32(e, lo, true);
        }
        this.frames.ref(frame);
        const ce = child.pteOff(va, true);
        dv.setInt32(ce, lo, true);
        dv.setInt32(ce + 4, hi, true);
      });
    }
    this.flush();
    return child;
  }

  /** Release every mapping and the page tables. */
  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    for (const v of this.vmas) {
      this.unmapPtes(v.start, v.end);
      if (v.shared) v.obj?.writeBack();
      v.obj?.dropUser();
    }
    this.vmas = [];
    for (const t of this.tables) this.frames.unref(t);
    this.tables.length = 0;
  }

  /** Write back shared file mappings in [start, end) (msync). */
  sync(start: number, end: number): void {
    for (const v of this.vmas) {
      if (v.end <= start || v.start >= end) continue;
      if (v.shared && v.obj !== undefined) v.obj.writeBack();
    }
  }

  /** Bytes of resident user pages (for statistics). */
  residentPages(): number {
    let n = 0;
    for (const v of this.vmas) this.forEachPte(v.start, v.end, () => n++);
    return n;
  }

  /** Move the pages of [oldStart, oldStart+len) to newStart (mremap); the VMA must already be split. */
  movePages(oldStart: number, len: number, newStart: number): void {
    const dv = this.ram.dv;
    const moves: [number, number, number][] = [];
    this.forEachPte(oldStart, oldStart + len, (va, e) => {
      moves.push([va - oldStart, dv.getInt32(e, true), dv.getInt32(e + 4, true)]);
      dv.setInt32(e, 0, true);
      dv.setInt32(e + 4, 0, true);
    });
    for (const [d, lo, hi] of moves) {
      const ne = this.pteOff(newStart + d, true);
      dv.setInt32(ne, lo, true);
      dv.setInt32(ne + 4, hi, true);
    }
    this.flush();
  }

  /** Detach the VMAs in [start, end) without touching their pages (mremap moves them). */
  takeVmas(start: number, end: number): Vma[] {
    this.splitAt(start);
    this.splitAt(end);
    const i = this.lowerBound(start);
    let j = i;
    while (j < this.vmas.length && this.vmas[j]!.start < end) j++;
    return this.vmas.splice(i, j - i);
  }

  /** Put VMAs back (after takeVmas), unmapping whatever is in their way. */
  placeVmas(vs: Vma[]): void {
    for (const v of vs) {
      const i = this.lowerBound(v.start);
      if (!this.isFree(v.start, v.end)) throw new LinuxError(EINVAL, "placeVmas over a mapping");
      this.vmas.splice(i, 0, v);
    }
  }
}

// ------------------------------------------------------------------------------ helpers

export function decodeUtf8(b: Uint8Array): string {
  // Fast path for ASCII.
  if (b.length < 64) {
    let s = "";
    for (let i = 0; i < b.length; i++) {
      const c = b[i]!;
      if (c >= 0x80) return utf8Decode(b);
      s += String.fromCharCode(c);
    }
    return s;
  }
  return utf8Decode(b);
}

export function concat(parts: Uint8Array[], total?: number): Uint8Array {
  const n = total ?? parts.reduce((a, p) => a + p.length, 0);
  const out = new Uint8Array(n);
  let pos = 0;
  for (const p of parts) {
    out.set(p, pos);
    pos += p.length;
  }
  return out;
}
