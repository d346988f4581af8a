/**
 * Nested paging: the G-stage table (the EPT analogue) that maps the guest's physical
 * address space onto host memory. Built once by the hypervisor in its own memory (the
 * `HvRegion` after guest RAM, which no guest-physical address reaches), Sv39x4: a 16 KiB
 * root indexed by GPA[40:30] and one table per GiB of 2 MiB leaves. Only guest RAM is
 * mapped (HvRegion.setLeaf checks each leaf against the `GuestMemory`); every other
 * guest-physical address (the devices) is a guest-page fault, i.e. an MMIO exit.
 */
import { csr as C, type Hart } from "@visor/cpu";

/** The MODE field of satp/hgatp: bits 63:60 (privileged spec §4.1.11). */
const SATP_MODE_SHIFT = 60n;

import {
  type GuestMemory,
  gpa,
  type Hpa,
  type HvRegion,
  hpa,
  PTE_A,
  PTE_D,
  PTE_R,
  PTE_U,
  PTE_V,
  PTE_W,
  PTE_X,
  SATP_MODE_SV39,
} from "@visor/memory";

const PAGE = 4096;
/** The Sv39x4 root: 2^11 entries, 16 KiB (H extension §8.5.1). */
const GSTAGE_ROOT_BYTES = 16384;
/** One G-stage leaf maps a 2 MiB megapage. */
const MEGAPAGE = 0x20_0000;
const GIGAPAGE = 2 ** 30;
const ENTRIES = 512;
const PTE_BYTES = 8;

/** A bump allocator of zeroed pages in the hypervisor's region. */
export class PageAllocator {
  private next: number;
  readonly region: HvRegion;

  constructor(region: HvRegion) {
    this.region = region;
    this.next = region.start;
  }

  get start(): Hpa {
    return this.region.start;
  }

  get end(): Hpa {
    return this.region.end;
  }

  /** A zeroed, `bytes`-aligned block of the region, or undefined when the pool is exhausted. */
  alloc(bytes = PAGE): Hpa | undefined {
    const p = Math.ceil(this.next / bytes) * bytes;
    if (p + bytes > this.region.end) return undefined;
    this.next = p + bytes;
    this.region.zero(hpa(p), bytes);
    return hpa(p);
  }

  /**
   * Bumped by every reset: whoever keeps tables in the pool (each vCPU's shadow MMU) sees
   * that its pages may have been handed out again and rebuilds before it runs.
   */
  epoch = 0;

  reset(): void {
    this.next = this.region.start;
    this.epoch++;
  }

  /** Where the next page comes from (snapshots). */
  get position(): number {
    return this.next;
  }

  set position(p: number) {
    if (!Number.isSafeInteger(p) || p < this.region.start || p > this.region.end)
      throw new Error("page pool position out of range");
    this.next = p;
  }

  get used(): number {
    return this.next - this.region.start;
  }
}

export class GStage {
  readonly root: Hpa;
  /** Bytes of page tables built. */
  readonly tableBytes: number;
  private readonly guest: GuestMemory;
  private readonly region: HvRegion;
  /** The second-level table of each root index (GPA[40:30]). */
  private readonly tables = new Map<number, Hpa>();

  constructor(guest: GuestMemory, pool: PageAllocator) {
    this.guest = guest;
    this.region = pool.region;
    const exhausted = "hypervisor memory exhausted building the G-stage table";
    const root = pool.alloc(GSTAGE_ROOT_BYTES);
    if (root === undefined) throw new Error(exhausted);
    this.root = root;
    for (let a = guest.base as number; a < guest.end; a += MEGAPAGE) {
      const gi = Math.floor(a / GIGAPAGE);
      if (this.tables.has(gi)) continue;
      const l1 = pool.alloc();
      if (l1 === undefined) throw new Error(exhausted);
      this.tables.set(gi, l1);
    }
    this.tableBytes = GSTAGE_ROOT_BYTES + this.tables.size * PAGE;
    this.write();
  }

  /**
   * (Re)write every entry: the identity map of guest RAM in 2 MiB leaves, and nothing
   * else. A restored snapshot or migration brings the pool's bytes with it; they are
   * rewritten, not trusted.
   */
  write(): void {
    const region = this.region;
    region.zero(this.root, GSTAGE_ROOT_BYTES);
    for (const l1 of this.tables.values()) region.zero(l1, PAGE);
    const leaf = PTE_V | PTE_R | PTE_W | PTE_X | PTE_U | PTE_A | PTE_D;
    for (let a = this.guest.base as number; a < this.guest.end; a += MEGAPAGE) {
      const gi = Math.floor(a / GIGAPAGE);
      const l1 = this.tables.get(gi)!;
      region.setTable(hpa(this.root + gi * PTE_BYTES), l1);
      const li = Math.floor(a / MEGAPAGE) % ENTRIES;
      region.setLeaf(hpa(l1 + li * PTE_BYTES), gpa(a), MEGAPAGE, leaf);
    }
  }

  /** Point the hart's hgatp at this table (Sv39x4, VMID 0). */
  install(h: Hart): void {
    const ppn = this.root / PAGE;
    h.setCsr(C.CSR_HGATP, (BigInt(SATP_MODE_SV39) << SATP_MODE_SHIFT) | BigInt(ppn));
  }
}
