/**
 * The hypervisor (H) extension, ratified v1.0 (privileged spec chapter "Hypervisor
 * Extension"): its CSRs (HS and VS, and the VS aliases of the S CSRs under V=1), the
 * VTVM/VTW/VTSR traps, SRET from VS/HS, HFENCE, and HLV/HLVX/HSV. Its state is
 * `HState` (core.ts); two-stage translation is in mmu.ts, its trap routing (hedeleg,
 * hideleg, htval/htinst, hstatus.SPV/GVA) in trap.ts. Functions over core state, called
 * from the CSR file and the system-instruction path only on harts with the extension, so
 * a hart without it pays nothing, and one with it pays nothing on TLB hits.
 *
 * Choices (all permitted by the spec): GEILEN = 0 (no guest external interrupt files:
 * hgeie/hgeip read zero), VMIDLEN = 0, htinst holds the transformed instruction for
 * explicit loads and stores and the standard pseudo-instructions for implicit
 * page-table accesses, 0 otherwise.
 */
import {
  ACCESS_EXEC,
  ACCESS_READ,
  ACCESS_WRITE,
  SATP_MODE_BARE,
  SATP_MODE_SV39,
  SATP_MODE_SV48,
  SATP_MODE_SV57,
} from "@visor/memory";
import {
  flushNonGlobal,
  flushStage1,
  flushTlb,
  type HartCore,
  type HState,
  selectTlb,
  setVirt,
  updateMip,
} from "./core.ts";
import * as C from "./csr.ts";
import * as D from "./decode.ts";
import { translateGuest } from "./mmu.ts";
import { leaveS, raise } from "./trap.ts";

const HSTATUS_WMASK =
  C.HSTATUS_GVA |
  C.HSTATUS_SPV |
  C.HSTATUS_SPVP |
  C.HSTATUS_HU |
  C.HSTATUS_VTVM |
  C.HSTATUS_VTW |
  C.HSTATUS_VTSR;
/** hstatus.VSXL (high word): 2, VS-mode is 64-bit. */
const HSTATUS_HI_VSXL64 = 2;

const VS_IRQS = C.MIP_VSSIP | C.MIP_VSTIP | C.MIP_VSEIP;
const HEDELEG_MASK = 0xb1ff; // not 9, 10, 11 (ecalls from HS/VS/M) nor 20..23
const HIDELEG_MASK = VS_IRQS;
/** vsie/vsip show the VS bits shifted down to the S positions: SSIP, STIP, SEIP. */
const VS_VIEW_MASK = C.MIP_SSIP | C.MIP_STIP | C.MIP_SEIP;
const VSSTATUS_MASK =
  C.MSTATUS_SIE | C.MSTATUS_SPIE | C.MSTATUS_SPP | C.MSTATUS_FS | C.MSTATUS_SUM | C.MSTATUS_MXR;

/** The H extension's own CSRs (HS and VS), as opposed to the S CSRs V=1 redirects. */
export function isHCsr(csr: number): boolean {
  switch (csr) {
    case C.CSR_HSTATUS:
    case C.CSR_HEDELEG:
    case C.CSR_HIDELEG:
    case C.CSR_HIE:
    case C.CSR_HTIMEDELTA:
    case C.CSR_HCOUNTEREN:
    case C.CSR_HGEIE:
    case C.CSR_HENVCFG:
    case C.CSR_HTVAL:
    case C.CSR_HIP:
    case C.CSR_HVIP:
    case C.CSR_HTINST:
    case C.CSR_HGATP:
    case C.CSR_HGEIP:
    case C.CSR_VSSTATUS:
    case C.CSR_VSIE:
    case C.CSR_VSTVEC:
    case C.CSR_VSSCRATCH:
    case C.CSR_VSEPC:
    case C.CSR_VSCAUSE:
    case C.CSR_VSTVAL:
    case C.CSR_VSIP:
    case C.CSR_VSATP:
      return true;
    default:
      return false;
  }
}

/** S-mode CSRs that V=1 redirects to their VS counterparts. */
function vsAlias(csr: number): number {
  switch (csr) {
    case C.CSR_SSTATUS:
      return C.CSR_VSSTATUS;
    case C.CSR_SIE:
      return C.CSR_VSIE;
    case C.CSR_STVEC:
      return C.CSR_VSTVEC;
    case C.CSR_SSCRATCH:
      return C.CSR_VSSCRATCH;
    case C.CSR_SEPC:
      return C.CSR_VSEPC;
    case C.CSR_SCAUSE:
      return C.CSR_VSCAUSE;
    case C.CSR_STVAL:
      return C.CSR_VSTVAL;
    case C.CSR_SIP:
      return C.CSR_VSIP;
    case C.CSR_SATP:
      return C.CSR_VSATP;
    default:
      return -1;
  }
}

function validSatpMode(m: number): boolean {
  return m === SATP_MODE_BARE || m === SATP_MODE_SV39 || m === SATP_MODE_SV48 || m === SATP_MODE_SV57;
}

// --------------------------------------------------------------- CSRs

/**
 * The H extension's CSR access rules: a cause (illegal or virtual instruction), 0 when
 * the CSR is an H or VS CSR (or an S CSR that V=1 redirects) for hCsrRead/hCsrWrite, or
 * -1 when the ordinary rules apply.
 */
export function hCsrAccessCheck(h: HartCore, x: HState, csr: number): number {
  const priv = h.priv;
  const lvl = (csr >>> 8) & 3;
  if (h.virt) {
    if (lvl === 3) return C.CAUSE_ILLEGAL_INSTRUCTION;
    if (csr >= 0xc00 && csr <= 0xc1f) {
      const bit = csr & 31;
      if (((h.mcounteren >>> bit) & 1) === 0) return C.CAUSE_ILLEGAL_INSTRUCTION;
      if (((x.hcounteren >>> bit) & 1) === 0) return C.CAUSE_VIRTUAL_INSTRUCTION;
      if (priv === C.PRV_U && ((h.scounteren >>> bit) & 1) === 0) return C.CAUSE_VIRTUAL_INSTRUCTION;
      return -1;
    }
    if (lvl === 2 || isHCsr(csr)) return C.CAUSE_VIRTUAL_INSTRUCTION;
    if (lvl === 1) {
      if (priv === C.PRV_U) return C.CAUSE_VIRTUAL_INSTRUCTION;
      if (csr === C.CSR_SATP && (x.hstatus & C.HSTATUS_VTVM) !== 0) return C.CAUSE_VIRTUAL_INSTRUCTION;
      if (vsAlias(csr) >= 0) return 0;
    }
    return -1;
  }
  if (isHCsr(csr)) {
    if (priv < C.PRV_S) return C.CAUSE_ILLEGAL_INSTRUCTION;
    if (csr === C.CSR_HGATP && priv === C.PRV_S && (h.mstatus & C.MSTATUS_TVM) !== 0) {
      return C.CAUSE_ILLEGAL_INSTRUCTION;
    }
    return 0;
  }
  return -1;
}

/** Read an H/VS CSR (or the VS alias of an S CSR under V=1) into cLo/cHi: 0, or -1 when it is none of those. */
export function hCsrRead(h: HartCore, x: HState, csr0: number): number {
  const csr = h.virt ? (vsAlias(csr0) >= 0 ? vsAlias(csr0) : csr0) : csr0;
  let lo = 0;
  let hi = 0;
  switch (csr) {
    case C.CSR_HSTATUS:
      lo = x.hstatus;
      hi = HSTATUS_HI_VSXL64;
      break;
    case C.CSR_HEDELEG:
      lo = x.hedeleg;
      break;
    case C.CSR_HIDELEG:
      lo = x.hideleg;
      break;
    case C.CSR_HIE:
      lo = h.mie & VS_IRQS;
      break;
    case C.CSR_HIP:
      lo = h.mip & VS_IRQS;
      break;
    case C.CSR_HVIP:
      lo = h.mipSw & VS_IRQS;
      break;
    case C.CSR_HCOUNTEREN:
      lo = x.hcounteren;
      break;
    case C.CSR_HENVCFG:
      lo = x.henvcfg;
      break;
    case C.CSR_HTIMEDELTA:
      lo = x.htimedeltaLo;
      hi = x.htimedeltaHi;
      break;
    case C.CSR_HGEIE:
    case C.CSR_HGEIP:
      break;
    case C.CSR_HTVAL:
    case C.CSR_HTINST:
    case C.CSR_VSTVEC:
    case C.CSR_VSSCRATCH:
    case C.CSR_VSEPC:
    case C.CSR_VSCAUSE:
    case C.CSR_VSTVAL:
    case C.CSR_HGATP:
    case C.CSR_VSATP:
      lo = h.csrLo[csr]!;
      hi = h.csrHi[csr]!;
      break;
    case C.CSR_VSSTATUS: {
      lo = x.vsstatus & VSSTATUS_MASK;
      const fsDirty = (x.vsstatus & C.MSTATUS_FS) === C.MSTATUS_FS;
      hi = (C.MSTATUSH_UXL & 2) | (fsDirty ? C.MSTATUSH_SD : 0);
      break;
    }
    case C.CSR_VSIE:
      lo = ((h.mie & x.hideleg) >>> 1) & VS_VIEW_MASK;
      break;
    case C.CSR_VSIP:
      lo = ((h.mip & x.hideleg) >>> 1) & VS_VIEW_MASK;
      break;
    default:
      return -1;
  }
  h.cLo = lo;
  h.cHi = hi;
  return 0;
}

/** Write an H/VS CSR (or the VS alias of an S CSR under V=1): 0, or -1 when it is none of those. */
export function hCsrWrite(h: HartCore, x: HState, csr0: number, lo: number, hi: number): number {
  const csr = h.virt ? (vsAlias(csr0) >= 0 ? vsAlias(csr0) : csr0) : csr0;
  switch (csr) {
    case C.CSR_HSTATUS:
      x.hstatus = lo & HSTATUS_WMASK;
      break;
    case C.CSR_HEDELEG:
      x.hedeleg = lo & HEDELEG_MASK;
      break;
    case C.CSR_HIDELEG:
      x.hideleg = lo & HIDELEG_MASK;
      break;
    case C.CSR_HIE:
      h.mie = (h.mie & ~VS_IRQS) | (lo & VS_IRQS);
      break;
    case C.CSR_HIP:
      setVip(h, C.MIP_VSSIP, lo);
      break;
    case C.CSR_HVIP:
      setVip(h, VS_IRQS, lo);
      break;
    case C.CSR_HCOUNTEREN:
      x.hcounteren = lo & 7;
      break;
    case C.CSR_HENVCFG:
      x.henvcfg = lo & 1;
      break;
    case C.CSR_HTIMEDELTA:
      x.htimedeltaLo = lo;
      x.htimedeltaHi = hi;
      break;
    case C.CSR_HGEIE:
      break;
    case C.CSR_HTVAL:
    case C.CSR_HTINST:
    case C.CSR_VSSCRATCH:
    case C.CSR_VSCAUSE:
    case C.CSR_VSTVAL:
      h.csrLo[csr] = lo;
      h.csrHi[csr] = hi;
      break;
    case C.CSR_VSTVEC:
      h.csrLo[csr] = lo & ~2;
      h.csrHi[csr] = hi;
      break;
    case C.CSR_VSEPC:
      h.csrLo[csr] = lo & ~1;
      h.csrHi[csr] = hi;
      break;
    case C.CSR_HGATP: {
      const mode = hi >>> 28;
      if (mode !== SATP_MODE_BARE && mode !== SATP_MODE_SV39 && mode !== SATP_MODE_SV48) break;
      const l = lo & ~3; // the root is 16 KiB aligned
      const hh = (mode << 28) | (hi & 0xfff); // VMIDLEN = 0
      h.csrLo[csr] = l;
      h.csrHi[csr] = hh;
      x.hgatpMode = mode;
      x.hgatpPpn = (hh & 0xfff) * 4294967296 + (l >>> 0);
      flushTlb(h);
      break;
    }
    case C.CSR_VSATP: {
      const mode = hi >>> 28;
      if (!validSatpMode(mode)) break;
      h.csrLo[csr] = lo;
      h.csrHi[csr] = hi;
      if (mode !== x.vsatpMode) flushStage1(h);
      else flushNonGlobal(h); // the global mappings stay (as for satp)
      x.vsatpMode = mode;
      x.vsatpPpn = (hi & 0xfff) * 4294967296 + (lo >>> 0);
      break;
    }
    case C.CSR_VSSTATUS: {
      const old = x.vsstatus;
      x.vsstatus = (x.vsstatus & ~VSSTATUS_MASK) | (lo & VSSTATUS_MASK);
      if (((old ^ x.vsstatus) & C.MSTATUS_MXR) !== 0) flushTlb(h);
      selectTlb(h);
      break;
    }
    case C.CSR_VSIE: {
      const m = x.hideleg & VS_IRQS;
      h.mie = (h.mie & ~m) | ((lo << 1) & m);
      break;
    }
    case C.CSR_VSIP: {
      const m = x.hideleg & C.MIP_VSSIP;
      setVip(h, m, lo << 1);
      break;
    }
    default:
      return -1;
  }
  return 0;
}

function setVip(h: HartCore, mask: number, v: number): void {
  h.mipSw = (h.mipSw & ~mask) | (v & mask);
  updateMip(h);
}

/** htimedelta as seen by the `time` CSR: applied in V=1 only. */
export function hTimeDelta(h: HartCore, x: HState): number {
  return h.virt ? x.htimedeltaHi * 4294967296 + (x.htimedeltaLo >>> 0) : 0;
}

// --------------------------------------------------------------- instructions

/** SRET with the H extension: from VS-mode through vsstatus, from HS-mode back to hstatus.SPV. */
export function hSret(h: HartCore, x: HState): number {
  if (h.virt) {
    if (h.priv === C.PRV_U || (x.hstatus & C.HSTATUS_VTSR) !== 0) return C.CAUSE_VIRTUAL_INSTRUCTION;
    leaveS(h, true);
    selectTlb(h);
    return 0;
  }
  if (h.priv < C.PRV_S) return C.CAUSE_ILLEGAL_INSTRUCTION;
  if (h.priv === C.PRV_S && (h.mstatus & C.MSTATUS_TSR) !== 0) return C.CAUSE_ILLEGAL_INSTRUCTION;
  const spv = (x.hstatus & C.HSTATUS_SPV) !== 0;
  x.hstatus &= ~C.HSTATUS_SPV;
  leaveS(h, false);
  setVirt(h, spv);
  selectTlb(h);
  return 0;
}

/** WFI permission with the H extension: 0 or a cause. */
export function hWfiCheck(h: HartCore, x: HState): number {
  if ((h.mstatus & C.MSTATUS_TW) !== 0 && h.priv !== C.PRV_M) return C.CAUSE_ILLEGAL_INSTRUCTION;
  if (h.virt) {
    if (h.priv === C.PRV_U) return C.CAUSE_VIRTUAL_INSTRUCTION;
    if ((x.hstatus & C.HSTATUS_VTW) !== 0) return C.CAUSE_VIRTUAL_INSTRUCTION;
    return 0;
  }
  if (h.priv === C.PRV_U) return C.CAUSE_ILLEGAL_INSTRUCTION;
  return 0;
}

/** SFENCE.VMA permission with the H extension: 0 or a cause. */
export function hSfenceCheck(h: HartCore, x: HState): number {
  if (h.virt) {
    if (h.priv === C.PRV_U) return C.CAUSE_VIRTUAL_INSTRUCTION;
    if ((x.hstatus & C.HSTATUS_VTVM) !== 0) return C.CAUSE_VIRTUAL_INSTRUCTION;
    return 0;
  }
  if (h.priv === C.PRV_U) return C.CAUSE_ILLEGAL_INSTRUCTION;
  if (h.priv === C.PRV_S && (h.mstatus & C.MSTATUS_TVM) !== 0) return C.CAUSE_ILLEGAL_INSTRUCTION;
  return 0;
}

/** HFENCE.VVMA/GVMA and HLV/HLVX/HSV: 0, -1 (trap taken) or a cause. */
export function hExecOther(h: HartCore, x: HState, op: number, raw: number): number {
  if (op === D.OP_HFENCE_VVMA || op === D.OP_HFENCE_GVMA) {
    if (h.virt) return C.CAUSE_VIRTUAL_INSTRUCTION;
    if (h.priv === C.PRV_U) return C.CAUSE_ILLEGAL_INSTRUCTION;
    if (op === D.OP_HFENCE_GVMA && h.priv === C.PRV_S && (h.mstatus & C.MSTATUS_TVM) !== 0) {
      return C.CAUSE_ILLEGAL_INSTRUCTION;
    }
    flushTlb(h);
    return 0;
  }
  if (op === D.OP_HLSV) return hlsv(h, x, raw);
  return C.CAUSE_ILLEGAL_INSTRUCTION;
}

/** HLV/HLVX/HSV: loads and stores as if V=1 at privilege hstatus.SPVP. Returns 0, -1 (trap taken) or a cause. */
function hlsv(h: HartCore, x: HState, raw: number): number {
  if (h.virt) return C.CAUSE_VIRTUAL_INSTRUCTION;
  if (h.priv === C.PRV_U && (x.hstatus & C.HSTATUS_HU) === 0) return C.CAUSE_ILLEGAL_INSTRUCTION;
  const f7 = raw >>> 25;
  const rs2f = (raw >>> 20) & 0x1f;
  const rd = (raw >>> 7) & 0x1f;
  const rs1 = (raw >>> 15) & 0x1f;
  const store = (f7 & 1) === 1;
  const size = 1 << ((f7 >>> 1) & 3);
  if (store && rd !== 0) return C.CAUSE_ILLEGAL_INSTRUCTION;
  if (!store && rs2f !== 0 && rs2f !== 1 && rs2f !== 3) return C.CAUSE_ILLEGAL_INSTRUCTION;
  const hlvx = !store && rs2f === 3;
  if (hlvx && size < 2) return C.CAUSE_ILLEGAL_INSTRUCTION;
  if (!store && rs2f === 1 && size === 8) return C.CAUSE_ILLEGAL_INSTRUCTION;
  const unsigned = !store && rs2f !== 0;
  const aLo = h.xlo[rs1]!;
  const aHi = h.xhi[rs1]!;
  const priv = (x.hstatus & C.HSTATUS_SPVP) !== 0 ? C.PRV_S : C.PRV_U;
  x.hlvActive = true;
  try {
    if ((aLo & 0xfff) + size > 4096 && (aLo & (size - 1)) !== 0) {
      raise(h, store ? C.CAUSE_MISALIGNED_STORE : C.CAUSE_MISALIGNED_LOAD, aLo, aHi);
      return -1;
    }
    const access = store ? ACCESS_WRITE : hlvx ? ACCESS_EXEC : ACCESS_READ;
    const res = x.gRes;
    h.lastW = 0;
    let pa = translateGuest(h, x, aLo, aHi, access, priv, res);
    if (pa < 0) {
      let c = -pa;
      // HLVX reads for execute permission but faults as a load.
      if (hlvx)
        c =
          c === C.CAUSE_FETCH_PAGE_FAULT
            ? C.CAUSE_LOAD_PAGE_FAULT
            : c === C.CAUSE_FETCH_GUEST_PAGE_FAULT
              ? C.CAUSE_LOAD_GUEST_PAGE_FAULT
              : c === C.CAUSE_FETCH_ACCESS
                ? C.CAUSE_LOAD_ACCESS
                : c;
      raise(h, c, aLo, aHi);
      return -1;
    }
    pa += aLo & 0xfff;
    const ram = h.ram;
    if (store) {
      const vLo = h.xlo[rs2f]!;
      const vHi = h.xhi[rs2f]!;
      if (ram.contains(pa, size)) {
        const o = pa - ram.base;
        h.code.invalidateRange(o, size);
        ram.logWrite(o); // aligned or within one page (checked above): one page
        if (size === 1) ram.dv.setUint8(o, vLo & 0xff);
        else if (size === 2) ram.dv.setUint16(o, vLo & 0xffff, true);
        else if (size === 4) ram.dv.setInt32(o, vLo, true);
        else {
          ram.dv.setInt32(o, vLo, true);
          ram.dv.setInt32(o + 4, vHi, true);
        }
      } else {
        const ok =
          size === 8
            ? h.bus.write64(pa, (BigInt(vHi >>> 0) << 32n) | BigInt(vLo >>> 0))
            : h.bus.write(pa, size as 1 | 2 | 4, size === 4 ? vLo >>> 0 : vLo & ((1 << (8 * size)) - 1));
        if (!ok) {
          raise(h, C.CAUSE_STORE_ACCESS, aLo, aHi);
          return -1;
        }
      }
      return 0;
    }
    let lo: number;
    let hi = 0;
    if (ram.contains(pa, size)) {
      const o = pa - ram.base;
      if (size === 1) lo = ram.dv.getUint8(o);
      else if (size === 2) lo = ram.dv.getUint16(o, true);
      else if (size === 4) lo = ram.dv.getInt32(o, true);
      else {
        lo = ram.dv.getInt32(o, true);
        hi = ram.dv.getInt32(o + 4, true);
      }
    } else {
      if (size === 8) {
        const v = h.bus.read64(pa);
        if (v === undefined) {
          raise(h, C.CAUSE_LOAD_ACCESS, aLo, aHi);
          return -1;
        }
        lo = Number(BigInt.asIntN(32, v));
        hi = Number(BigInt.asIntN(32, v >> 32n));
      } else {
        const v = h.bus.read(pa, size as 1 | 2 | 4);
        if (v < 0) {
          raise(h, C.CAUSE_LOAD_ACCESS, aLo, aHi);
          return -1;
        }
        lo = v | 0;
      }
    }
    if (size < 8) {
      if (unsigned) {
        if (size === 4) hi = 0;
        // 1 and 2 byte values are already zero-extended
      } else {
        if (size === 1) lo = (lo << 24) >> 24;
        else if (size === 2) lo = (lo << 16) >> 16;
        hi = lo >> 31;
      }
    }
    if (rd !== 0) {
      h.xlo[rd] = lo;
      h.xhi[rd] = hi;
    }
    return 0;
  } finally {
    x.hlvActive = false;
  }
}
