/**
 * Nested paging: the G-stage table (the EPT analogue) that maps the guest's physical
 * address space onto host memory. Built once by the hypervisor in its own memory (after
 * guest RAM, unreachable from the guest), Sv39x4: a 16 KiB root indexed by GPA[40:30] and
 * one table per GiB of 2 MiB leaves. Only guest RAM is mapped; every other guest-physical
 * address (the devices) is a guest-page fault, i.e. an MMIO exit.
 */
import { csr as C, type Hart } from "@visor/cpu";

/** The MODE field of satp/hgatp: bits 63:60 (privileged spec §4.1.11). */
const SATP_MODE_SHIFT = 60n;

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

export class PageAllocator {
  private next: number;
  readonly start: number;
  readonly end: number;

  constructor(start: number, end: number) {
    this.start = start;
    this.next = start;
    this.end = end;
  }

  /** A zeroed page (host-physical address), or -1 when the pool is exhausted. */
  alloc(ram: GuestRam, bytes = 4096): number {
    const p = Math.ceil(this.next / bytes) * bytes;
    if (p + bytes > this.end) return -1;
    this.next = p + bytes;
    ram.viewMut(p, bytes).fill(0);
    return p;
  }

  reset(): void {
    this.next = this.start;
  }

  /** Where the next page comes from (snapshots). */
  get position(): number {
    return this.next;
  }

  set position(p: number) {
    if (!Number.isSafeInteger(p) || p < this.start || p > this.end)
      throw new Error("page pool position out of range");
    this.next = p;
  }

  get used(): number {
    return this.next - this.start;
  }
}

export class GStage {
  readonly root: number;
  /** Bytes of page tables built. */
  readonly tableBytes: number;

  constructor(ram: GuestRam, guestBase: number, guestSize: number, pool: PageAllocator) {
    const root = pool.alloc(ram, 16384);
    if (root < 0) throw new Error("hypervisor memory exhausted building the G-stage table");
    this.root = root;
    let bytes = 16384;
    const dv = ram.dv;
    const leaf = PTE_V | PTE_R | PTE_W | PTE_X | PTE_U | PTE_A | PTE_D;
    const tables = new Map<number, number>();
    for (let gpa = guestBase; gpa < guestBase + guestSize; gpa += 0x200000) {
      const gi = Math.floor(gpa / 2 ** 30); // root index (GPA[40:30])
      let l1 = tables.get(gi);
      if (l1 === undefined) {
        l1 = pool.alloc(ram);
        if (l1 < 0) throw new Error("hypervisor memory exhausted building the G-stage table");
        bytes += 4096;
        tables.set(gi, l1);
        writePte(dv, root - ram.base + gi * 8, l1 / 4096, PTE_V);
      }
      const li = Math.floor(gpa / 0x200000) % 512;
      writePte(dv, l1 - ram.base + li * 8, gpa / 4096, leaf); // identity: HPA = GPA
    }
    this.tableBytes = bytes;
  }

  /** Point the hart's hgatp at this table (Sv39x4, VMID 0). */
  install(h: Hart): void {
    const ppn = this.root / 4096;
    h.setCsr(C.CSR_HGATP, (BigInt(SATP_MODE_SV39) << SATP_MODE_SHIFT) | BigInt(ppn));
  }
}

export function writePte(dv: DataView, off: number, ppn: number, flags: number): void {
  const lo = ((ppn % 0x400000) * 1024 + flags) | 0;
  const hi = Math.floor(ppn / 0x400000) | 0;
  dv.setInt32(off, lo, true);
  dv.setInt32(off + 4, hi, true);
}
