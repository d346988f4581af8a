/**
 * The MMU's slow path: address translation (stage 1 through satp, and with the H
 * extension the VS stage through vsatp plus the G stage through hgatp), TLB refills, and
 * the loads and stores that miss the TLB (MMIO, page-crossing accesses, faults). The hot
 * path (hart.ts `run`) only ever hits the TLBs filled here. Functions over core state.
 */
import {
  ACCESS_EXEC,
  ACCESS_READ,
  ACCESS_WRITE,
  type Access,
  type PteTranslator,
  SATP_MODE_BARE,
  type WalkResult,
  walkGStage,
  walkStage1,
} from "@visor/memory";
import {
  G_TLB_SIZE,
  type HartCore,
  type HState,
  INVALID_TAG,
  noteSuperpage,
  noteWritePage,
  TLB_MASK,
  type TlbSet,
  V_R,
  V_W,
  V_X,
} from "./core.ts";
import * as C from "./csr.ts";
import { raise } from "./trap.ts";

const PAGE = 4096;
const PAGE_MASK = 0xfff;
/** Virtual and physical addresses above 2^56 do not exist (high word bits 24..31). */
const PA_HI_SHIFT = 24;
/** Guest-physical page numbers the G-stage TLB tags hold (an int32 tag). */
const G_TLB_MAX_PAGE = 0x80000000;

const GUEST_PAGE_FAULT = [
  C.CAUSE_LOAD_GUEST_PAGE_FAULT,
  C.CAUSE_STORE_GUEST_PAGE_FAULT,
  C.CAUSE_FETCH_GUEST_PAGE_FAULT,
];

function isGuestPageFault(cause: number): boolean {
  return (
    cause === C.CAUSE_FETCH_GUEST_PAGE_FAULT ||
    cause === C.CAUSE_LOAD_GUEST_PAGE_FAULT ||
    cause === C.CAUSE_STORE_GUEST_PAGE_FAULT
  );
}

export function accessFault(access: Access): number {
  return access === ACCESS_EXEC
    ? C.CAUSE_FETCH_ACCESS
    : access === ACCESS_READ
      ? C.CAUSE_LOAD_ACCESS
      : C.CAUSE_STORE_ACCESS;
}

/**
 * Translate the page of a virtual address for `access`. Returns the physical page
 * address (>= 0), or -cause on a fault (walk details in `walkRes`).
 */
export function translate(c: HartCore, aLo: number, aHi: number, access: Access): number {
  let priv = c.priv;
  let virt = c.virt;
  if (access !== ACCESS_EXEC && (c.mstatus & C.MSTATUS_MPRV) !== 0 && priv === C.PRV_M) {
    priv = (c.mstatus >>> C.MSTATUS_MPP_SHIFT) & 3;
    virt = priv !== C.PRV_M && (c.mstatusHiBits & C.MSTATUSH_MPV) !== 0;
  }
  c.leafShift = 12;
  c.leafGlobal = 0;
  if (virt && c.h !== undefined) return translateGuest(c, c.h, aLo, aHi, access, priv, c.walkRes);
  if (priv === C.PRV_M || c.satpMode === SATP_MODE_BARE) {
    if (aHi >>> PA_HI_SHIFT !== 0) return -accessFault(access);
    return aHi * 4294967296 + ((aLo & ~PAGE_MASK) >>> 0);
  }
  const res = c.walkRes;
  c.stats.walks++;
  const before = res.refs;
  const r = walkStage1(
    c.ram,
    c.satpMode,
    c.satpPpn,
    aHi,
    aLo,
    access,
    priv === C.PRV_U,
    (c.mstatus & C.MSTATUS_SUM) !== 0,
    (c.mstatus & C.MSTATUS_MXR) !== 0,
    res,
  );
  c.stats.walkRefs += res.refs - before;
  if (r !== 0) return -r;
  c.leafShift = res.pageShift;
  c.leafGlobal = (res.perm >>> 5) & 1; // PTE.G
  return res.pagePa;
}

// ---------------------------------------------------------------- two-stage (H extension)

/** G-stage translation of a guest-physical page address; -cause on a fault. */
export function gStage(c: HartCore, h: HState, gpa: number, access: Access, res: WalkResult): number {
  if (h.hgatpMode === SATP_MODE_BARE) return gpa;
  const page = Math.floor(gpa / PAGE);
  const tags = h.gTag[access]!;
  const ti = page & (G_TLB_SIZE - 1);
  if (page < G_TLB_MAX_PAGE && tags[ti] === page) {
    c.stats.gTlbHits++;
    return h.gVal[access]![ti]!;
  }
  c.stats.gWalks++;
  const before = res.refs;
  const r = walkGStage(c.ram, h.hgatpMode, h.hgatpPpn, gpa, access, (c.mstatus & C.MSTATUS_MXR) !== 0, res);
  c.stats.gRefs += res.refs - before;
  if (r !== 0) {
    h.lastFaultGpa = gpa;
    return -r;
  }
  if (page < G_TLB_MAX_PAGE) {
    tags[ti] = page;
    h.gVal[access]![ti] = res.pagePa;
  }
  return res.pagePa;
}

/** The VS-stage walk's PTE addresses are guest-physical: each goes through the G stage. */
export class GuestPtes implements PteTranslator {
  private readonly c: HartCore;
  private readonly h: HState;
  constructor(c: HartCore, h: HState) {
    this.c = c;
    this.h = h;
  }

  translatePte(gpa: number, write: boolean, _res: WalkResult): number {
    const h = this.h;
    const r = gStage(this.c, h, gpa - (gpa % PAGE), write ? ACCESS_WRITE : ACCESS_READ, h.gRes);
    if (r < 0) {
      h.lastFaultGpa = gpa;
      h.lastFaultImplicit = true;
      h.lastFaultImplicitWrite = write;
      // Reported as a guest-page fault of the original access type.
      const cause = -r;
      return -(isGuestPageFault(cause) ? GUEST_PAGE_FAULT[h.curAccess]! : cause);
    }
    return r + (gpa % PAGE);
  }
}

/** Two-stage translation of a guest virtual address at guest privilege `priv`. */
export function translateGuest(
  c: HartCore,
  h: HState,
  aLo: number,
  aHi: number,
  access: Access,
  priv: number,
  res: WalkResult,
): number {
  h.curAccess = access;
  h.lastFaultImplicit = false;
  let gpa: number;
  if (h.vsatpMode === SATP_MODE_BARE) {
    if (aHi >>> PA_HI_SHIFT !== 0) {
      h.lastFaultGpa = (aHi >>> 0) * 4294967296 + (aLo >>> 0);
      return -GUEST_PAGE_FAULT[access]!;
    }
    gpa = aHi * 4294967296 + ((aLo & ~PAGE_MASK) >>> 0);
  } else {
    const mxr = ((c.mstatus | h.vsstatus) & C.MSTATUS_MXR) !== 0;
    const before = res.refs;
    c.stats.walks++;
    const r = walkStage1(
      c.ram,
      h.vsatpMode,
      h.vsatpPpn,
      aHi,
      aLo,
      access,
      priv === C.PRV_U,
      (h.vsstatus & C.MSTATUS_SUM) !== 0,
      mxr,
      res,
      h.ptes,
    );
    c.stats.walkRefs += res.refs - before;
    if (r !== 0) return -r;
    // The VS-stage leaf decides what an address-specific fence covers (the G-stage walk
    // below reuses `res`).
    c.leafShift = res.pageShift;
    c.leafGlobal = (res.perm >>> 5) & 1; // PTE.G
    gpa = res.pagePa;
  }
  const hpa = gStage(c, h, gpa, access, res);
  if (hpa < 0) h.lastFaultGpa = gpa + (aLo & PAGE_MASK);
  return hpa;
}

// ---------------------------------------------------------------- TLB refills and slow accesses

/**
 * Refill entry `ti` of one of the set's TLBs (`v`: V_R, V_W or V_X) with the page (tag,
 * hi) at RAM offset `po`, global as the leaf just translated. The valid entry it displaces
 * moves to the set's victim way: after a victim hit that is a swap.
 */
function refill(c: HartCore, set: TlbSet, v: number, ti: number, tag: number, hi: number, po: number): void {
  const tags = v === V_R ? set.rTag : v === V_W ? set.wTag : set.xTag;
  const page = v === V_R ? set.rPage : v === V_W ? set.wPage : set.xPage;
  const g = v === V_R ? set.rG : v === V_W ? set.wG : set.xG;
  const old = tags[2 * ti]!;
  if (old !== INVALID_TAG && (old !== tag || tags[2 * ti + 1] !== hi)) {
    set.vTag[2 * (v + ti)] = old;
    set.vTag[2 * (v + ti) + 1] = tags[2 * ti + 1]!;
    set.vPage[v + ti] = page[ti]!;
    set.vG[v + ti] = g[ti]!;
  }
  tags[2 * ti] = tag;
  tags[2 * ti + 1] = hi;
  page[ti] = po;
  g[ti] = c.leafGlobal;
  set.fills++;
  set.globals += c.leafGlobal;
}

/**
 * The physical page of (tag, hi) when the set's victim way holds it (a RAM page), or -1:
 * then the miss needs a translation. Sets leafShift to 12 (the entry's superpage, if it
 * came from one, was recorded when it was first filled) and leafGlobal to the entry's.
 */
function victimPa(c: HartCore, set: TlbSet, v: number, ti: number, tag: number, hi: number): number {
  const k = v + ti;
  if (set.vTag[2 * k] !== tag || set.vTag[2 * k + 1] !== hi) return -1;
  c.leafShift = 12;
  c.leafGlobal = set.vG[k]!;
  return set.vPage[k]! + c.ram.base;
}

/** Fetch-side translation of the pc's page: RAM offset of the page, or -1 after a trap. */
export function fetchPage(c: HartCore, pcLo: number, pcHi: number): number {
  const ti = (pcLo >>> 12) & TLB_MASK;
  const tag = pcLo & ~PAGE_MASK;
  if (c.xTag[2 * ti] === tag && c.xTag[2 * ti + 1] === pcHi) return c.xPage[ti]!;
  let pa = victimPa(c, c.xSet, V_X, ti, tag, pcHi);
  if (pa < 0) {
    c.stats.tlbMisses++;
    pa = translate(c, pcLo, pcHi, ACCESS_EXEC);
  }
  if (pa < 0) {
    raise(c, -pa, pcLo, pcHi);
    return -1;
  }
  const ram = c.ram;
  if (pa < ram.base || pa + PAGE > ram.end) {
    raise(c, C.CAUSE_FETCH_ACCESS, pcLo, pcHi);
    return -1;
  }
  const off = pa - ram.base;
  refill(c, c.xSet, V_X, ti, tag, pcHi, off);
  if (c.leafShift > 12) noteSuperpage(c, pcLo, pcHi);
  return off;
}

/**
 * Load `size` bytes at (aHi, aLo) by the slow path (TLB miss, MMIO, page-crossing).
 * Raw bits land in ldLo/ldHi (zero-extended). Returns 0 after a trap, 1 for RAM, 2 for MMIO.
 */
export function loadSlow(c: HartCore, aLo: number, aHi: number, size: number): number {
  const off = aLo & PAGE_MASK;
  if (off + size > PAGE) return loadSplit(c, aLo, aHi, size);
  const ti = (aLo >>> 12) & TLB_MASK;
  let pa = victimPa(c, c.dSet, V_R, ti, aLo & ~PAGE_MASK, aHi);
  if (pa < 0) {
    c.stats.tlbMisses++;
    pa = translate(c, aLo, aHi, ACCESS_READ);
  }
  if (pa < 0) {
    raise(c, -pa, aLo, aHi);
    return 0;
  }
  const ram = c.ram;
  if (pa >= ram.base && pa + PAGE <= ram.end) {
    const po = pa - ram.base;
    refill(c, c.dSet, V_R, ti, aLo & ~PAGE_MASK, aHi, po);
    if (c.leafShift > 12) noteSuperpage(c, aLo, aHi);
    const dv = ram.dv;
    const o = po + off;
    switch (size) {
      case 1:
        c.ldLo = dv.getUint8(o);
        c.ldHi = 0;
        break;
      case 2:
        c.ldLo = dv.getUint16(o, true);
        c.ldHi = 0;
        break;
      case 4:
        c.ldLo = dv.getInt32(o, true);
        c.ldHi = 0;
        break;
      default:
        c.ldLo = dv.getInt32(o, true);
        c.ldHi = dv.getInt32(o + 4, true);
    }
    return 1;
  }
  const addr = pa + off;
  if ((off & (size - 1)) !== 0) {
    raise(c, C.CAUSE_LOAD_ACCESS, aLo, aHi);
    return 0;
  }
  c.stats.mmioReads++;
  if (size === 8) {
    const v = c.bus.read64(addr);
    if (v === undefined) {
      raise(c, C.CAUSE_LOAD_ACCESS, aLo, aHi);
      return 0;
    }
    c.ldLo = Number(BigInt.asIntN(32, v));
    c.ldHi = Number(BigInt.asIntN(32, v >> 32n));
    return 2;
  }
  const v = c.bus.read(addr, size as 1 | 2 | 4);
  if (v < 0) {
    raise(c, C.CAUSE_LOAD_ACCESS, aLo, aHi);
    return 0;
  }
  c.ldLo = v | 0;
  c.ldHi = 0;
  return 2;
}

function loadSplit(c: HartCore, aLo: number, aHi: number, size: number): number {
  let lo = 0;
  let hi = 0;
  let kind = 1;
  for (let i = 0; i < size; i++) {
    const bLo = (aLo + i) | 0;
    const bHi = (aHi + (bLo >>> 0 < aLo >>> 0 ? 1 : 0)) | 0;
    const r = loadSlow(c, bLo, bHi, 1);
    if (r === 0) return 0;
    if (r === 2) kind = 2;
    if (i < 4) lo |= c.ldLo << (8 * i);
    else hi |= c.ldLo << (8 * (i - 4));
  }
  c.ldLo = lo;
  c.ldHi = hi;
  return kind;
}

/** Store by the slow path. Returns 0 after a trap, 1 for RAM, 2 for MMIO. */
export function storeSlow(
  c: HartCore,
  aLo: number,
  aHi: number,
  size: number,
  vLo: number,
  vHi: number,
): number {
  const off = aLo & PAGE_MASK;
  if (off + size > PAGE) return storeSplit(c, aLo, aHi, size, vLo, vHi);
  const ti = (aLo >>> 12) & TLB_MASK;
  let pa = victimPa(c, c.dSet, V_W, ti, aLo & ~PAGE_MASK, aHi);
  if (pa < 0) {
    c.stats.tlbMisses++;
    pa = translate(c, aLo, aHi, ACCESS_WRITE);
  }
  if (pa < 0) {
    raise(c, -pa, aLo, aHi);
    return 0;
  }
  const ram = c.ram;
  if (pa >= ram.base && pa + PAGE <= ram.end) {
    const po = pa - ram.base;
    if (c.code.isCode(po)) c.code.invalidatePage(po);
    ram.logWrite(po);
    refill(c, c.dSet, V_W, ti, aLo & ~PAGE_MASK, aHi, po);
    noteWritePage(c, po);
    if (c.leafShift > 12) noteSuperpage(c, aLo, aHi);
    const dv = ram.dv;
    const o = po + off;
    switch (size) {
      case 1:
        dv.setUint8(o, vLo & 0xff);
        break;
      case 2:
        dv.setUint16(o, vLo & 0xffff, true);
        break;
      case 4:
        dv.setInt32(o, vLo, true);
        break;
      default:
        dv.setInt32(o, vLo, true);
        dv.setInt32(o + 4, vHi, true);
    }
    return 1;
  }
  const addr = pa + off;
  if ((off & (size - 1)) !== 0) {
    raise(c, C.CAUSE_STORE_ACCESS, aLo, aHi);
    return 0;
  }
  c.stats.mmioWrites++;
  const ok =
    size === 8
      ? c.bus.write64(addr, (BigInt(vHi >>> 0) << 32n) | BigInt(vLo >>> 0))
      : c.bus.write(addr, size as 1 | 2 | 4, size === 4 ? vLo >>> 0 : vLo & (size === 1 ? 0xff : 0xffff));
  if (!ok) {
    raise(c, C.CAUSE_STORE_ACCESS, aLo, aHi);
    return 0;
  }
  return 2;
}

function storeSplit(c: HartCore, aLo: number, aHi: number, size: number, vLo: number, vHi: number): number {
  // Check every byte's translation first so a fault leaves memory unchanged.
  for (let i = 0; i < size; i++) {
    const bLo = (aLo + i) | 0;
    const bHi = (aHi + (bLo >>> 0 < aLo >>> 0 ? 1 : 0)) | 0;
    const pa = translate(c, bLo, bHi, ACCESS_WRITE);
    if (pa < 0) {
      raise(c, -pa, bLo, bHi);
      return 0;
    }
  }
  let kind = 1;
  for (let i = 0; i < size; i++) {
    const bLo = (aLo + i) | 0;
    const bHi = (aHi + (bLo >>> 0 < aLo >>> 0 ? 1 : 0)) | 0;
    const byte = i < 4 ? vLo >>> (8 * i) : vHi >>> (8 * (i - 4));
    const r = storeSlow(c, bLo, bHi, 1, byte & 0xff, 0);
    if (r === 0) return 0;
    if (r === 2) kind = 2;
  }
  return kind;
}

/** Physical RAM offset for an AMO/LR/SC at (aHi, aLo), or -1 after a trap. */
export function amoAddr(c: HartCore, aLo: number, aHi: number, size: number, access: Access): number {
  if ((aLo & (size - 1)) !== 0) {
    raise(c, access === ACCESS_READ ? C.CAUSE_MISALIGNED_LOAD : C.CAUSE_MISALIGNED_STORE, aLo, aHi);
    return -1;
  }
  // The TLBs hold RAM pages only, and a write-TLB page is never a code page and is
  // already in the dirty log: a hit needs no more checks.
  const ti = (aLo >>> 12) & TLB_MASK;
  const tag = aLo & ~PAGE_MASK;
  if (access === ACCESS_WRITE) {
    if (c.wTag[2 * ti] === tag && c.wTag[2 * ti + 1] === aHi) return c.wPage[ti]! + (aLo & PAGE_MASK);
  } else if (c.rTag[2 * ti] === tag && c.rTag[2 * ti + 1] === aHi) {
    return c.rPage[ti]! + (aLo & PAGE_MASK);
  }
  let pa = victimPa(c, c.dSet, access === ACCESS_WRITE ? V_W : V_R, ti, tag, aHi);
  if (pa < 0) {
    c.stats.tlbMisses++;
    pa = translate(c, aLo, aHi, access);
  }
  if (pa < 0) {
    raise(c, -pa, aLo, aHi);
    return -1;
  }
  const ram = c.ram;
  if (pa < ram.base || pa + PAGE > ram.end) {
    raise(c, access === ACCESS_READ ? C.CAUSE_LOAD_ACCESS : C.CAUSE_STORE_ACCESS, aLo, aHi);
    return -1;
  }
  const po = pa - ram.base;
  if (access === ACCESS_WRITE) {
    if (c.code.isCode(po)) c.code.invalidatePage(po);
    ram.logWrite(po);
    refill(c, c.dSet, V_W, ti, tag, aHi, po);
    noteWritePage(c, po);
  } else {
    refill(c, c.dSet, V_R, ti, tag, aHi, po);
  }
  if (c.leafShift > 12) noteSuperpage(c, aLo, aHi);
  return po + (aLo & PAGE_MASK);
}

/** The raw bits of the instruction at the pc (for mtval on illegal instructions), or 0. */
export function rawInsnAt(c: HartCore, pcLo: number, pcHi: number): number {
  const save = c.stats.traps;
  const p = translate(c, pcLo, pcHi, ACCESS_EXEC);
  c.stats.traps = save;
  if (p < 0) return 0;
  const ram = c.ram;
  const pa = p + (pcLo & PAGE_MASK);
  if (pa < ram.base || pa + 2 > ram.end) return 0;
  const lo16 = ram.dv.getUint16(pa - ram.base, true);
  if ((lo16 & 3) !== 3) return lo16;
  if ((pcLo & PAGE_MASK) === PAGE - 2) {
    const nLo = (pcLo + 2) | 0;
    const p2 = translate(c, nLo, nLo === 0 ? (pcHi + 1) | 0 : pcHi, ACCESS_EXEC);
    if (p2 < 0 || p2 < ram.base || p2 >= ram.end) return lo16;
    return lo16 | (ram.dv.getUint16(p2 - ram.base, true) << 16);
  }
  if (pa + 4 > ram.end) return lo16;
  return ram.dv.getInt32(pa - ram.base, true);
}

/**
 * The upper half of a 32-bit instruction that straddles two pages (its lower half is the
 * last two bytes of the pc's page): the next page through the fetch TLB, never cached in
 * the decoded-instruction cache. Returns it, or -1 after raising the fetch fault (tval:
 * the next page's address).
 */
export function fetchUpperHalf(c: HartCore, pcLo: number, pcHi: number): number {
  c.pcLo = pcLo;
  c.pcHi = pcHi;
  const nLo = (pcLo + 2) | 0;
  const nHi = nLo === 0 ? (pcHi + 1) | 0 : pcHi;
  const po2 = fetchPage(c, nLo, nHi);
  return po2 < 0 ? -1 : c.ram.dv.getUint16(po2, true);
}
