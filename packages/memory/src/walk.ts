/**
 * Page-table walkers of the RISC-V privileged spec (v1.12+, §4.3–4.5 Sv39/Sv48/Sv57, and
 * §8.5 of the H extension for the G-stage Sv39x4/Sv48x4).
 *
 * A/D bits: this implementation updates them in hardware (the spec permits either
 * updating or faulting; the Svadu behaviour). Linux is content with both; updating saves
 * the guest a page fault on the first read and on the first write of every page. The
 * update is a plain write of the PTE (a single hart, or harts interleaved by one host
 * thread, so it is atomic with respect to other harts).
 *
 * Virtual addresses come in as (hi, lo) int32 pairs; physical page addresses go out as
 * numbers (always page-aligned, so at most 44 significant bits: exact in a double).
 */
import type { GuestRam } from "./ram.ts";

export const ACCESS_READ = 0;
export const ACCESS_WRITE = 1;
export const ACCESS_EXEC = 2;
export type Access = 0 | 1 | 2;

/** satp.MODE / hgatp.MODE values. */
export const SATP_MODE_BARE = 0;
export const SATP_MODE_SV39 = 8;
export const SATP_MODE_SV48 = 9;
export const SATP_MODE_SV57 = 10;

// PTE bits
export const PTE_V = 1 << 0;
export const PTE_R = 1 << 1;
export const PTE_W = 1 << 2;
export const PTE_X = 1 << 3;
export const PTE_U = 1 << 4;
export const PTE_G = 1 << 5;
export const PTE_A = 1 << 6;
export const PTE_D = 1 << 7;

/** Exception causes a walk can produce (privileged spec table 3.6). */
export const CAUSE_FETCH_ACCESS = 1;
export const CAUSE_LOAD_ACCESS = 5;
export const CAUSE_STORE_ACCESS = 7;
export const CAUSE_FETCH_PAGE_FAULT = 12;
export const CAUSE_LOAD_PAGE_FAULT = 13;
export const CAUSE_STORE_PAGE_FAULT = 15;
export const CAUSE_FETCH_GUEST_PAGE_FAULT = 20;
export const CAUSE_LOAD_GUEST_PAGE_FAULT = 21;
export const CAUSE_STORE_GUEST_PAGE_FAULT = 23;

const PAGE_FAULT = [CAUSE_LOAD_PAGE_FAULT, CAUSE_STORE_PAGE_FAULT, CAUSE_FETCH_PAGE_FAULT] as const;
const ACCESS_FAULT = [CAUSE_LOAD_ACCESS, CAUSE_STORE_ACCESS, CAUSE_FETCH_ACCESS] as const;
const GUEST_PAGE_FAULT = [
  CAUSE_LOAD_GUEST_PAGE_FAULT,
  CAUSE_STORE_GUEST_PAGE_FAULT,
  CAUSE_FETCH_GUEST_PAGE_FAULT,
] as const;

/** Result of a successful walk, filled in place (no allocation per walk). */
export class WalkResult {
  /** Physical address of the 4 KiB page containing the VA. */
  pagePa = 0;
  /** Leaf PTE permission bits (R W X U G A D as in the PTE). */
  perm = 0;
  /** log2 of the size of the leaf page (12, 21, 30, 39, 48). */
  pageShift = 12;
  /** Memory references made by the walk (PTE reads and A/D write-backs). */
  refs = 0;
  /** For a faulting G-stage walk: the guest-physical address that faulted. */
  faultGpa = 0;
  /** For a VS-stage walk: true when the fault happened translating a PTE address (implicit access). */
  implicit = false;
}

/** Optional translation of page-table addresses (used by the VS-stage walk under a G-stage). */
export interface PteTranslator {
  /** Translate the guest-physical address of a PTE; returns a host-physical address or -1 (fault stored in result). */
  translatePte(gpa: number, write: boolean, res: WalkResult): number;
}

function levelsOf(mode: number): number {
  return mode === SATP_MODE_SV39 ? 3 : mode === SATP_MODE_SV48 ? 4 : mode === SATP_MODE_SV57 ? 5 : 0;
}

/** VPN[i] of a VA held as an (hi, lo) pair. */
function vpnOf(vaHi: number, vaLo: number, i: number): number {
  switch (i) {
    case 0:
      return (vaLo >>> 12) & 0x1ff;
    case 1:
      return (vaLo >>> 21) & 0x1ff;
    case 2:
      return ((vaLo >>> 30) | (vaHi << 2)) & 0x1ff;
    case 3:
      return (vaHi >>> 7) & 0x1ff;
    default:
      return (vaHi >>> 16) & 0x1ff;
  }
}

/** True when the VA is canonical for the mode (bits above the top VA bit equal it). */
export function isCanonical(mode: number, vaHi: number): boolean {
  const s = mode === SATP_MODE_SV39 ? 6 : mode === SATP_MODE_SV48 ? 15 : 24;
  const top = vaHi >> s;
  return top === 0 || top === -1;
}

/**
 * Walk a first-stage (satp or vsatp) page table.
 * @returns 0 on success (result in `res`), or the exception cause.
 */
export function walkStage1(
  ram: GuestRam,
  mode: number,
  rootPpn: number,
  vaHi: number,
  vaLo: number,
  access: Access,
  user: boolean,
  sum: boolean,
  mxr: boolean,
  res: WalkResult,
  pteXlate?: PteTranslator,
): number {
  const levels = levelsOf(mode);
  res.implicit = false;
  if (levels === 0) return PAGE_FAULT[access];
  if (!isCanonical(mode, vaHi)) return PAGE_FAULT[access];
  const dv = ram.dv;
  const base = ram.base;
  const end = ram.end;
  let table = rootPpn * 4096;
  for (let i = levels - 1; i >= 0; i--) {
    let pteAddr = table + vpnOf(vaHi, vaLo, i) * 8;
    if (pteXlate !== undefined) {
      pteAddr = pteXlate.translatePte(pteAddr, false, res);
      if (pteAddr < 0) {
        res.implicit = true;
        return -pteAddr;
      }
    }
    if (pteAddr < base || pteAddr + 8 > end) return ACCESS_FAULT[access];
    const off = pteAddr - base;
    let lo = dv.getInt32(off, true);
    const hi = dv.getInt32(off + 4, true);
    res.refs++;
    if ((lo & PTE_V) === 0 || (lo & (PTE_R | PTE_W)) === PTE_W) return PAGE_FAULT[access];
    // Bits 63..54 (N, PBMT, reserved) must be zero: no Svnapot/Svpbmt here.
    if ((hi & 0xffc00000) !== 0) return PAGE_FAULT[access];
    const ppnLo = lo >>> 10; // PPN bits 0..21
    const ppnHi = hi & 0x3fffff; // PPN bits 22..43
    if ((lo & (PTE_R | PTE_X)) === 0) {
      // Pointer to the next level. A, D, U must be zero on non-leaf PTEs (reserved).
      if ((lo & (PTE_A | PTE_D | PTE_U)) !== 0) return PAGE_FAULT[access];
      table = ppnHi * 0x400000 * 4096 + ppnLo * 4096;
      continue;
    }
    // Leaf.
    if (access === ACCESS_EXEC) {
      if ((lo & PTE_X) === 0) return PAGE_FAULT[access];
    } else if (access === ACCESS_READ) {
      if ((lo & PTE_R) === 0 && !(mxr && (lo & PTE_X) !== 0)) return PAGE_FAULT[access];
    } else if ((lo & PTE_W) === 0) {
      return PAGE_FAULT[access];
    }
    if (user) {
      if ((lo & PTE_U) === 0) return PAGE_FAULT[access];
    } else if ((lo & PTE_U) !== 0 && (!sum || access === ACCESS_EXEC)) {
      return PAGE_FAULT[access];
    }
    // Misaligned superpage: the low i*9 bits of the PPN must be zero.
    if (i > 0 && (ppnLo & ((1 << (9 * i)) - 1)) !== 0 && i < 3) return PAGE_FAULT[access];
    if (i >= 3 && (ppnLo !== 0 || (ppnHi & ((1 << (9 * i - 22)) - 1)) !== 0)) return PAGE_FAULT[access];
    // A/D update in hardware.
    const need = access === ACCESS_WRITE ? PTE_A | PTE_D : PTE_A;
    if ((lo & need) !== need) {
      if (pteXlate !== undefined) {
        // The write-back is a store to the PTE's guest-physical address.
        const again = pteXlate.translatePte(table + vpnOf(vaHi, vaLo, i) * 8, true, res);
        if (again < 0) {
          res.implicit = true;
          return -again;
        }
      }
      lo |= need;
      dv.setInt32(off, lo, true);
      markPteDirty(ram, off);
      res.refs++;
    }
    // Physical page: PPN with the low i levels taken from the VA.
    let pLo = ppnLo;
    let pHi = ppnHi;
    if (i >= 1) pLo = (pLo & ~0x1ff) | ((vaLo >>> 12) & 0x1ff);
    if (i >= 2) pLo = (pLo & ~(0x1ff << 9)) | (((vaLo >>> 21) & 0x1ff) << 9);
    if (i >= 3) {
      // PPN bits 18..26 from VPN[2]; bits 18..21 live in pLo, 22..26 in pHi.
      const v2 = vpnOf(vaHi, vaLo, 2);
      pLo = (pLo & 0x3ffff) | ((v2 & 0xf) << 18);
      pHi = (pHi & ~0x1f) | (v2 >>> 4);
    }
    if (i >= 4) {
      const v3 = vpnOf(vaHi, vaLo, 3);
      pHi = (pHi & ~(0x1ff << 5)) | (v3 << 5);
    }
    res.pagePa = pHi * 0x400000 * 4096 + (pLo >>> 0) * 4096;
    res.perm = lo & 0xff;
    res.pageShift = 12 + 9 * i;
    return 0;
  }
  return PAGE_FAULT[access];
}

/**
 * Walk a G-stage (hgatp) table: guest-physical → host-physical, Sv39x4 / Sv48x4 / Sv57x4
 * (H extension §8.5.1). Every access is checked as a U-mode access; the root table is
 * 16 KiB and the top VPN has two extra bits.
 * @returns 0 on success, or the guest-page-fault / access-fault cause.
 */
export function walkGStage(
  ram: GuestRam,
  mode: number,
  rootPpn: number,
  gpa: number,
  access: Access,
  mxr: boolean,
  res: WalkResult,
): number {
  const levels = levelsOf(mode);
  res.faultGpa = gpa;
  if (levels === 0) return GUEST_PAGE_FAULT[access];
  const vaBits = 12 + 9 * levels + 2;
  if (gpa < 0 || gpa >= 2 ** vaBits) return GUEST_PAGE_FAULT[access];
  const dv = ram.dv;
  const base = ram.base;
  const end = ram.end;
  let table = (rootPpn & ~3) * 4096;
  const pageNum = Math.floor(gpa / 4096);
  for (let i = levels - 1; i >= 0; i--) {
    const idxBits = i === levels - 1 ? 11 : 9;
    const vpn = Math.floor(pageNum / 2 ** (9 * i)) % 2 ** idxBits;
    const pteAddr = table + vpn * 8;
    if (pteAddr < base || pteAddr + 8 > end) return ACCESS_FAULT[access];
    const off = pteAddr - base;
    let lo = dv.getInt32(off, true);
    const hi = dv.getInt32(off + 4, true);
    res.refs++;
    if ((lo & PTE_V) === 0 || (lo & (PTE_R | PTE_W)) === PTE_W) return GUEST_PAGE_FAULT[access];
    if ((hi & 0xffc00000) !== 0) return GUEST_PAGE_FAULT[access];
    const ppn = (hi & 0x3fffff) * 0x400000 + (lo >>> 10);
    if ((lo & (PTE_R | PTE_X)) === 0) {
      if ((lo & (PTE_A | PTE_D | PTE_U)) !== 0) return GUEST_PAGE_FAULT[access];
      table = ppn * 4096;
      continue;
    }
    if (access === ACCESS_EXEC) {
      if ((lo & PTE_X) === 0) return GUEST_PAGE_FAULT[access];
    } else if (access === ACCESS_READ) {
      if ((lo & PTE_R) === 0 && !(mxr && (lo & PTE_X) !== 0)) return GUEST_PAGE_FAULT[access];
    } else if ((lo & PTE_W) === 0) {
      return GUEST_PAGE_FAULT[access];
    }
    if ((lo & PTE_U) === 0) return GUEST_PAGE_FAULT[access];
    const span = 2 ** (9 * i);
    if (i > 0 && ppn % span !== 0) return GUEST_PAGE_FAULT[access];
    const need = access === ACCESS_WRITE ? PTE_A | PTE_D : PTE_A;
    if ((lo & need) !== need) {
      lo |= need;
      dv.setInt32(off, lo, true);
      markPteDirty(ram, off);
      res.refs++;
    }
    res.pagePa = (ppn + (pageNum % span)) * 4096;
    res.perm = lo & 0xff;
    res.pageShift = 12 + 9 * i;
    return 0;
  }
  return GUEST_PAGE_FAULT[access];
}

/** An A/D update is a write to the page-table page: log it (live migration copies it again). */
function markPteDirty(ram: GuestRam, off: number): void {
  ram.logWrite(off);
}
