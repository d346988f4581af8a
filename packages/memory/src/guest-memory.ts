/**
 * The two halves of the host buffer, as the hypervisor hands them out:
 *
 *   host buffer (GuestRam, what the hart's physical address space is)
 *   [base ........................ guest end) [guest end ........... host end)
 *    GuestMemory: guest RAM, Gpa addresses     HvRegion: the hypervisor's page-table pool,
 *    (devices' DMA, SBI, HTIF, loaders)        Hpa addresses (G-stage and shadow tables)
 *
 * Everything a guest can name (a virtqueue address, an SBI or HTIF buffer, a loader's
 * segment) goes through a `GuestMemory`, whose bounds are exactly guest RAM, so no guest
 * address reaches the pool whatever device or hypercall carries it. The pool is only
 * reachable through an `HvRegion`, which takes host-physical addresses inside the pool
 * and writes only page-table entries that point into the pool (a next-level table) or at
 * guest RAM (a leaf). The two are distinct classes with private state and distinctly
 * branded address types, so passing one's address (or a plain number) to the other is a
 * compile error, and each checks its bounds at run time as well.
 */
import { type Gpa, type Hpa, PAGE_SIZE } from "./address.ts";
import { GuestMemoryError, GuestRam } from "./ram.ts";
import { PTE_R, PTE_V, PTE_X } from "./walk.ts";

const hex = (n: number): string => `0x${n.toString(16)}`;
/** PTE bits 10..53: the PPN; bits 0..9 the flags (privileged spec §4.4.1). */
const PTE_PPN_SHIFT = 10;
const PTE_FLAGS_MASK = (1 << PTE_PPN_SHIFT) - 1;
/** The PPN bits held in the low word of a PTE (bits 10..31: 22 bits). */
const PPN_LO_PAGES = 1 << 22;
const PPN_HI_MASK = 0x3fffff;
const PTE_BYTES = 8;

/** Guest RAM as the guest sees it: guest-physical addresses, bounds exactly guest RAM. */
export class GuestMemory {
  readonly base: Gpa;
  readonly size: number;
  readonly end: Gpa;
  readonly #host: GuestRam;

  /** The first `size` bytes of `host` (all of it by default) are guest RAM. */
  constructor(host: GuestRam, size: number = host.size) {
    if (!Number.isSafeInteger(size) || size <= 0 || size % PAGE_SIZE !== 0 || size > host.size) {
      throw new RangeError(`guest RAM size ${size} is not a multiple of 4 KiB within the host buffer`);
    }
    this.#host = host;
    this.base = host.base as Gpa;
    this.size = size;
    this.end = (host.base + size) as Gpa;
  }

  /** A buffer of `size` bytes at guest-physical `base` that is all guest RAM (tests, tools). */
  static allocate(base: number, size: number): GuestMemory {
    return new GuestMemory(new GuestRam(base, size));
  }

  /** True when [addr, addr+len) lies entirely in guest RAM. */
  contains(addr: Gpa, len = 1): boolean {
    return (
      Number.isSafeInteger(addr) &&
      Number.isSafeInteger(len) &&
      len >= 0 &&
      addr >= this.base &&
      addr + len <= this.end
    );
  }

  /** The host buffer offset of [addr, addr+len), or a GuestMemoryError. */
  private offset(addr: Gpa, len: number): number {
    if (!this.contains(addr, len)) {
      const a = typeof addr === "number" ? hex(addr) : String(addr);
      throw new GuestMemoryError(
        `guest memory access [${a}, +${hex(len)}) is outside guest RAM [${hex(this.base)}, ${hex(this.end)})`,
      );
    }
    return addr - this.#host.base;
  }

  /** The host-physical address backing guest-physical `addr` (for G-stage leaves). */
  hostAddress(addr: Gpa, len = 1): Hpa {
    return (this.#host.base + this.offset(addr, len)) as Hpa;
  }

  /** A zero-copy, bounds-checked view of [addr, addr+len) for reading. */
  view(addr: Gpa, len: number): Uint8Array {
    const off = this.offset(addr, len);
    return this.#host.u8.subarray(off, off + len);
  }

  /** A zero-copy, bounds-checked view for writing; marks the pages dirty, drops decoded code. */
  viewMut(addr: Gpa, len: number): Uint8Array {
    const off = this.offset(addr, len);
    this.#host.markDirty(off, len);
    return this.#host.u8.subarray(off, off + len);
  }

  read(addr: Gpa, dst: Uint8Array): void {
    dst.set(this.view(addr, dst.length));
  }

  write(addr: Gpa, src: Uint8Array): void {
    this.viewMut(addr, src.length).set(src);
  }

  read8(addr: Gpa): number {
    return this.#host.u8[this.offset(addr, 1)]!;
  }
  read16(addr: Gpa): number {
    return this.#host.dv.getUint16(this.offset(addr, 2), true);
  }
  read32(addr: Gpa): number {
    return this.#host.dv.getUint32(this.offset(addr, 4), true);
  }
  read64(addr: Gpa): bigint {
    return this.#host.dv.getBigUint64(this.offset(addr, 8), true);
  }
  write8(addr: Gpa, v: number): void {
    const off = this.offset(addr, 1);
    this.#host.markDirty(off, 1);
    this.#host.u8[off] = v;
  }
  write16(addr: Gpa, v: number): void {
    const off = this.offset(addr, 2);
    this.#host.markDirty(off, 2);
    this.#host.dv.setUint16(off, v, true);
  }
  write32(addr: Gpa, v: number): void {
    const off = this.offset(addr, 4);
    this.#host.markDirty(off, 4);
    this.#host.dv.setUint32(off, v >>> 0, true);
  }
  write64(addr: Gpa, v: bigint): void {
    const off = this.offset(addr, 8);
    this.#host.markDirty(off, 8);
    this.#host.dv.setBigUint64(off, BigInt.asUintN(64, v), true);
  }
}

/**
 * The hypervisor's private pages (the G-stage or shadow page-table pool): host-physical
 * addresses in [start, end), disjoint from guest RAM. It only stores page-table entries
 * whose target is checked: a table pointer must point into this region, a leaf at guest
 * RAM; and it only follows table pointers that point back into it.
 */
export class HvRegion {
  readonly start: Hpa;
  readonly end: Hpa;
  readonly #host: GuestRam;
  readonly #guest: GuestMemory;
  /**
   * Called after every write the region makes (with the address and length), so an
   * auditor (the MMU fuzzer) can tell the hypervisor's own table writes from any other
   * change to the pool.
   */
  onWrite: ((at: Hpa, len: number) => void) | undefined;

  constructor(host: GuestRam, guest: GuestMemory, start: number, end: number) {
    if (
      !Number.isSafeInteger(start) ||
      !Number.isSafeInteger(end) ||
      start % PAGE_SIZE !== 0 ||
      end % PAGE_SIZE !== 0 ||
      start > end ||
      start < host.base ||
      end > host.end ||
      (start < guest.end && end > guest.base && end > start)
    ) {
      throw new RangeError(
        `hypervisor region [${hex(start)}, ${hex(end)}) must be page-aligned, inside the host buffer and outside guest RAM`,
      );
    }
    this.#host = host;
    this.#guest = guest;
    this.start = start as Hpa;
    this.end = end as Hpa;
  }

  get size(): number {
    return this.end - this.start;
  }

  /** True when [at, at+len) lies entirely in the region. */
  contains(at: Hpa, len = 1): boolean {
    return (
      Number.isSafeInteger(at) &&
      Number.isSafeInteger(len) &&
      len >= 0 &&
      at >= this.start &&
      at + len <= this.end
    );
  }

  private offset(at: Hpa, len: number): number {
    if (!this.contains(at, len)) {
      throw new RangeError(
        `hypervisor memory access [${hex(at)}, +${hex(len)}) is outside its region [${hex(this.start)}, ${hex(this.end)})`,
      );
    }
    return at - this.#host.base;
  }

  /** Zero [at, at+len) (a fresh table). */
  zero(at: Hpa, len: number): void {
    const off = this.offset(at, len);
    this.#host.u8.fill(0, off, off + len);
    this.#host.markDirty(off, len);
    this.onWrite?.(at, len);
  }

  /** A read-only copy of [at, at+len) (snapshots, audits). */
  copy(at: Hpa, len: number): Uint8Array {
    const off = this.offset(at, len);
    return this.#host.u8.slice(off, off + len);
  }

  /** The flag bits (V R W X U G A D, RSW) of the PTE at `at`. */
  entryFlags(at: Hpa): number {
    return this.#host.dv.getInt32(this.offset(at, PTE_BYTES), true) & PTE_FLAGS_MASK;
  }

  /**
   * The next-level table the PTE at `at` points to, or undefined when it is not valid.
   * A valid entry must be a table pointer into this region (the hypervisor wrote it with
   * setTable): anything else means the pool was corrupted, and this throws rather than
   * follow it.
   */
  nextTable(at: Hpa): Hpa | undefined {
    const off = this.offset(at, PTE_BYTES);
    const dv = this.#host.dv;
    const lo = dv.getInt32(off, true);
    if ((lo & PTE_V) === 0) return undefined;
    const hi = dv.getInt32(off + 4, true);
    const next = ((hi & PPN_HI_MASK) * PPN_LO_PAGES + (lo >>> PTE_PPN_SHIFT)) * PAGE_SIZE;
    if ((lo & (PTE_R | PTE_X)) !== 0 || !this.contains(next as Hpa, PAGE_SIZE)) {
      throw new RangeError(`hypervisor page table at ${hex(at)} is corrupt: it points at ${hex(next)}`);
    }
    return next as Hpa;
  }

  /**
   * The guest page a leaf PTE at `at` maps, checked: a valid leaf must map guest RAM (the
   * hypervisor wrote it with setLeaf); anything else throws, as for nextTable.
   */
  leafPage(at: Hpa, span: number = PAGE_SIZE): Gpa {
    const off = this.offset(at, PTE_BYTES);
    const dv = this.#host.dv;
    const lo = dv.getInt32(off, true);
    const hi = dv.getInt32(off + 4, true);
    const host = ((hi & PPN_HI_MASK) * PPN_LO_PAGES + (lo >>> PTE_PPN_SHIFT)) * PAGE_SIZE;
    const page = (this.#guest.base + (host - this.#host.base)) as Gpa;
    if ((lo & PTE_V) === 0 || (lo & (PTE_R | PTE_X)) === 0 || !this.#guest.contains(page, span)) {
      throw new RangeError(`hypervisor page table at ${hex(at)} is corrupt: its leaf maps ${hex(host)}`);
    }
    return page;
  }

  /** Make the PTE at `at` a pointer to the next-level table `next` (in this region). */
  setTable(at: Hpa, next: Hpa): void {
    if (next % PAGE_SIZE !== 0 || !this.contains(next, PAGE_SIZE)) {
      throw new RangeError(`page table pointer to ${hex(next)}: not a page of the hypervisor region`);
    }
    this.put(at, next / PAGE_SIZE, PTE_V);
  }

  /**
   * Make the PTE at `at` a leaf mapping the `span` bytes of guest RAM at guest-physical
   * `page` (a 4 KiB page or a superpage), with `flags` (which must include V and R or X).
   */
  setLeaf(at: Hpa, page: Gpa, span: number, flags: number): void {
    if (page % span !== 0 || (flags & PTE_V) === 0 || (flags & (PTE_R | PTE_X)) === 0) {
      throw new RangeError(`leaf PTE for ${hex(page)} (+${hex(span)}) flags ${hex(flags)} is malformed`);
    }
    const host = this.#guest.hostAddress(page, span);
    this.put(at, host / PAGE_SIZE, flags & PTE_FLAGS_MASK);
  }

  /** Make the PTE at `at` invalid. */
  clear(at: Hpa): void {
    this.put(at, 0, 0);
  }

  private put(at: Hpa, ppn: number, flags: number): void {
    const off = this.offset(at, PTE_BYTES);
    const dv = this.#host.dv;
    dv.setInt32(off, ((ppn % PPN_LO_PAGES) * (1 << PTE_PPN_SHIFT) + flags) | 0, true);
    dv.setInt32(off + 4, Math.floor(ppn / PPN_LO_PAGES) | 0, true);
    this.#host.markDirty(off, PTE_BYTES);
    this.onWrite?.(at, PTE_BYTES);
  }
}
