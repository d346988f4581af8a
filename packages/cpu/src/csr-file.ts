/**
 * The CSR file: reads and writes with their privilege rules, WARL fields and side
 * effects (TLB flushes and selection, counters, mip), the Zicsr instructions, and the
 * host's own CSR access. The H extension's CSRs are in hext.ts. Functions over core state.
 */
import { SATP_MODE_BARE, SATP_MODE_SV39, SATP_MODE_SV48, SATP_MODE_SV57 } from "@visor/memory";
import {
  cycles,
  flushNonGlobal,
  flushStage1,
  flushTlb,
  foldCounters,
  fsDirty,
  fsOff,
  type HartCore,
  instret,
  mstatusHi,
  selectTlb,
  updateMip,
} from "./core.ts";
import * as C from "./csr.ts";
import { hCsrAccessCheck, hCsrRead, hCsrWrite, hTimeDelta, isHCsr } from "./hext.ts";

const MSTATUS_WMASK =
  C.MSTATUS_SIE |
  C.MSTATUS_MIE |
  C.MSTATUS_SPIE |
  C.MSTATUS_MPIE |
  C.MSTATUS_SPP |
  C.MSTATUS_MPP |
  C.MSTATUS_FS |
  C.MSTATUS_MPRV |
  C.MSTATUS_SUM |
  C.MSTATUS_MXR |
  C.MSTATUS_TVM |
  C.MSTATUS_TW |
  C.MSTATUS_TSR;
const SSTATUS_MASK =
  C.MSTATUS_SIE | C.MSTATUS_SPIE | C.MSTATUS_SPP | C.MSTATUS_FS | C.MSTATUS_SUM | C.MSTATUS_MXR;
const MIE_MASK = C.MIP_SSIP | C.MIP_MSIP | C.MIP_STIP | C.MIP_MTIP | C.MIP_SEIP | C.MIP_MEIP;
const MIDELEG_MASK = C.MIP_SSIP | C.MIP_STIP | C.MIP_SEIP;
const MEDELEG_MASK = 0xb3ff;
/** CSR numbers with bits 11:10 = 3 are read-only (privileged spec §2.1). */
const CSR_READ_ONLY = 3;
/** tdata2/tdata3 (debug spec): storage only, no trigger is implemented. */
const CSR_TDATA2 = 0x7a2;
const CSR_TDATA3 = 0x7a3;
/** fcsr's layout: fflags in bits 4:0, frm in bits 7:5. */
const FFLAGS_MASK = 0x1f;
const FRM_SHIFT = 5;
const FRM_MASK = 7;
/** hpmcounter3..31, mhpmcounter3..31, mhpmevent3..31 (privileged spec table 2.5). */
const CSR_HPMCOUNTER3 = 0xc03;
const CSR_HPMCOUNTER31 = 0xc1f;
const CSR_MHPMCOUNTER3 = 0xb03;
const CSR_MHPMCOUNTER31 = 0xb1f;
const CSR_MHPMEVENT3 = 0x323;
const CSR_MHPMEVENT31 = 0x33f;

/**
 * Read a CSR into cLo/cHi. Returns 0 on success, or the exception cause
 * (illegal instruction, or virtual instruction under the H extension).
 */
export function csrRead(c: HartCore, csr: number): number {
  if (c.h !== undefined) {
    const r = hCsrAccessCheck(c, c.h, csr);
    if (r > 0) return r;
    if (r === 0) {
      const v = hCsrRead(c, c.h, csr);
      return v < 0 ? csrReadRaw(c, csr) : v;
    }
  }
  if (c.priv < ((csr >>> 8) & 3)) return C.CAUSE_ILLEGAL_INSTRUCTION;
  return csrReadRaw(c, csr);
}

/** Read a CSR into cLo/cHi without the privilege check: 0, or a cause (a missing CSR, FS off, counters). */
export function csrReadRaw(c: HartCore, csr: number): number {
  let lo = 0;
  let hi = 0;
  switch (csr) {
    case C.CSR_FFLAGS:
    case C.CSR_FRM:
    case C.CSR_FCSR:
      if (fsOff(c)) return C.CAUSE_ILLEGAL_INSTRUCTION;
      lo =
        csr === C.CSR_FFLAGS
          ? c.fpu.fflags
          : csr === C.CSR_FRM
            ? c.fpu.frm
            : (c.fpu.frm << FRM_SHIFT) | c.fpu.fflags;
      break;
    case C.CSR_CYCLE:
    case C.CSR_TIME:
    case C.CSR_INSTRET: {
      if (!counterEnabled(c, csr & 31)) return C.CAUSE_ILLEGAL_INSTRUCTION;
      const v =
        csr === C.CSR_TIME
          ? c.time() + (c.h !== undefined ? hTimeDelta(c, c.h) : 0)
          : csr === C.CSR_CYCLE
            ? cycles(c)
            : instret(c);
      lo = (v % 4294967296) | 0;
      hi = Math.floor(v / 4294967296) | 0;
      break;
    }
    case C.CSR_MCYCLE:
    case C.CSR_MINSTRET: {
      const v = csr === C.CSR_MCYCLE ? cycles(c) : instret(c);
      lo = (v % 4294967296) | 0;
      hi = Math.floor(v / 4294967296) | 0;
      break;
    }
    case C.CSR_SSTATUS:
      lo = c.mstatus & SSTATUS_MASK;
      hi = mstatusHi(c) & (C.MSTATUSH_UXL | C.MSTATUSH_SD);
      break;
    case C.CSR_SIE:
      lo = c.mie & c.mideleg;
      break;
    case C.CSR_SIP:
      lo = c.mip & c.mideleg;
      break;
    case C.CSR_SCOUNTEREN:
      lo = c.scounteren;
      break;
    case C.CSR_SENVCFG:
      lo = c.senvcfgLo;
      break;
    case C.CSR_SATP:
      if (c.priv === C.PRV_S && (c.mstatus & C.MSTATUS_TVM) !== 0) return C.CAUSE_ILLEGAL_INSTRUCTION;
      lo = c.csrLo[C.CSR_SATP]!;
      hi = c.csrHi[C.CSR_SATP]!;
      break;
    case C.CSR_MSTATUS:
      lo = c.mstatus;
      hi = mstatusHi(c);
      break;
    case C.CSR_MISA:
      lo = c.misaLo;
      hi = 0x80000000 | 0;
      break;
    case C.CSR_MEDELEG:
      lo = c.medeleg;
      break;
    case C.CSR_MIDELEG:
      lo = c.mideleg | (c.hasH ? C.MIP_VSSIP | C.MIP_VSTIP | C.MIP_VSEIP | C.MIP_SGEIP : 0);
      break;
    case C.CSR_MIE:
      lo = c.mie;
      break;
    case C.CSR_MIP:
      lo = c.mip;
      break;
    case C.CSR_MCOUNTEREN:
      lo = c.mcounteren;
      break;
    case C.CSR_MCOUNTINHIBIT:
      lo = c.mcountinhibit;
      break;
    case C.CSR_MENVCFG:
      lo = c.menvcfgLo;
      break;
    case C.CSR_MHARTID:
      lo = c.hartId;
      break;
    case C.CSR_MVENDORID:
    case C.CSR_MARCHID:
    case C.CSR_MIMPID:
    case C.CSR_MCONFIGPTR:
      break;
    case C.CSR_STVEC:
    case C.CSR_SSCRATCH:
    case C.CSR_SEPC:
    case C.CSR_SCAUSE:
    case C.CSR_STVAL:
    case C.CSR_MTVEC:
    case C.CSR_MSCRATCH:
    case C.CSR_MEPC:
    case C.CSR_MCAUSE:
    case C.CSR_MTVAL:
    case C.CSR_TSELECT:
      lo = c.csrLo[csr]!;
      hi = c.csrHi[csr]!;
      break;
    case C.CSR_TDATA1:
      break; // type 0: no trigger implemented
    case CSR_TDATA2:
    case CSR_TDATA3:
      lo = c.csrLo[csr]!;
      hi = c.csrHi[csr]!;
      break;
    case C.CSR_MTINST:
    case C.CSR_MTVAL2:
      if (!c.hasH) return C.CAUSE_ILLEGAL_INSTRUCTION;
      lo = c.csrLo[csr]!;
      hi = c.csrHi[csr]!;
      break;
    default:
      if (csr >= C.CSR_PMPCFG0 && csr <= C.CSR_PMPCFG0 + 15) {
        if ((csr & 1) !== 0) return C.CAUSE_ILLEGAL_INSTRUCTION; // odd pmpcfg don't exist on RV64
        lo = c.csrLo[csr]!;
        hi = c.csrHi[csr]!;
      } else if (csr >= C.CSR_PMPADDR0 && csr <= C.CSR_PMPADDR0 + 63) {
        lo = c.csrLo[csr]!;
        hi = c.csrHi[csr]!;
      } else if (csr >= CSR_HPMCOUNTER3 && csr <= CSR_HPMCOUNTER31) {
        if (!counterEnabled(c, csr & 31)) return C.CAUSE_ILLEGAL_INSTRUCTION;
      } else if (
        (csr >= CSR_MHPMCOUNTER3 && csr <= CSR_MHPMCOUNTER31) ||
        (csr >= CSR_MHPMEVENT3 && csr <= CSR_MHPMEVENT31)
      ) {
        // mhpmcounter3..31 and mhpmevent3..31: present, hard-wired to zero
      } else {
        return C.CAUSE_ILLEGAL_INSTRUCTION;
      }
  }
  c.cLo = lo;
  c.cHi = hi;
  return 0;
}

function counterEnabled(c: HartCore, bit: number): boolean {
  if (c.priv < C.PRV_M && ((c.mcounteren >>> bit) & 1) === 0) return false;
  if (c.priv < C.PRV_S && ((c.scounteren >>> bit) & 1) === 0) return false;
  return true;
}

/** Write a CSR. Returns 0, or the exception cause. The privilege check was done by the caller. */
export function csrWrite(c: HartCore, csr: number, lo: number, hi: number): number {
  if (csr >>> 10 === CSR_READ_ONLY) return C.CAUSE_ILLEGAL_INSTRUCTION;
  if (c.h !== undefined) {
    const r = hCsrAccessCheck(c, c.h, csr);
    if (r > 0) return r;
    if (r === 0) {
      const v = hCsrWrite(c, c.h, csr, lo, hi);
      return v < 0 ? csrWriteRaw(c, csr, lo, hi) : v;
    }
  }
  return csrWriteRaw(c, csr, lo, hi);
}

/** Write a CSR without the privilege check (WARL fields and side effects apply): 0 or a cause. */
export function csrWriteRaw(c: HartCore, csr: number, lo: number, hi: number): number {
  switch (csr) {
    case C.CSR_FFLAGS:
      if (fsOff(c)) return C.CAUSE_ILLEGAL_INSTRUCTION;
      c.fpu.fflags = lo & FFLAGS_MASK;
      fsDirty(c);
      break;
    case C.CSR_FRM:
      if (fsOff(c)) return C.CAUSE_ILLEGAL_INSTRUCTION;
      c.fpu.frm = lo & FRM_MASK;
      fsDirty(c);
      break;
    case C.CSR_FCSR:
      if (fsOff(c)) return C.CAUSE_ILLEGAL_INSTRUCTION;
      c.fpu.fflags = lo & FFLAGS_MASK;
      c.fpu.frm = (lo >>> FRM_SHIFT) & FRM_MASK;
      fsDirty(c);
      break;
    case C.CSR_SSTATUS:
      writeMstatus(c, (c.mstatus & ~SSTATUS_MASK) | (lo & SSTATUS_MASK), c.mstatusHiBits);
      break;
    case C.CSR_SIE:
      c.mie = (c.mie & ~c.mideleg) | (lo & c.mideleg);
      break;
    case C.CSR_SIP: {
      const m = c.mideleg & C.MIP_SSIP;
      c.mipSw = (c.mipSw & ~m) | (lo & m);
      updateMip(c);
      break;
    }
    case C.CSR_SCOUNTEREN:
      c.scounteren = lo & 7;
      break;
    case C.CSR_SENVCFG:
      c.senvcfgLo = lo & 1;
      break;
    case C.CSR_SATP: {
      if (c.priv === C.PRV_S && (c.mstatus & C.MSTATUS_TVM) !== 0) return C.CAUSE_ILLEGAL_INSTRUCTION;
      const mode = hi >>> 28;
      if (
        mode !== SATP_MODE_BARE &&
        mode !== SATP_MODE_SV39 &&
        mode !== SATP_MODE_SV48 &&
        mode !== SATP_MODE_SV57
      )
        break; // unsupported mode: the write has no effect (priv spec §4.1.11)
      c.csrLo[C.CSR_SATP] = lo;
      c.csrHi[C.CSR_SATP] = hi;
      // A new address space keeps the global mappings unless the mode changed.
      if (mode !== c.satpMode) flushStage1(c);
      else flushNonGlobal(c);
      c.satpMode = mode;
      c.satpPpn = (hi & 0xfff) * 4294967296 + (lo >>> 0);
      break;
    }
    case C.CSR_STVEC:
    case C.CSR_MTVEC:
      c.csrLo[csr] = lo & ~2;
      c.csrHi[csr] = hi;
      break;
    case C.CSR_SEPC:
    case C.CSR_MEPC:
      c.csrLo[csr] = lo & ~1;
      c.csrHi[csr] = hi;
      break;
    case C.CSR_SSCRATCH:
    case C.CSR_SCAUSE:
    case C.CSR_STVAL:
    case C.CSR_MSCRATCH:
    case C.CSR_MCAUSE:
    case C.CSR_MTVAL:
      c.csrLo[csr] = lo;
      c.csrHi[csr] = hi;
      break;
    case C.CSR_MSTATUS:
      writeMstatus(c, lo, c.hasH ? hi & (C.MSTATUSH_MPV | C.MSTATUSH_GVA) : 0);
      break;
    case C.CSR_MISA:
      break; // read-only here (WARL with no writable fields)
    case C.CSR_MEDELEG:
      c.medeleg = lo & (c.hasH ? MEDELEG_MASK | (1 << 10) | (0xf << 20) : MEDELEG_MASK);
      break;
    case C.CSR_MIDELEG:
      c.mideleg = lo & MIDELEG_MASK;
      break;
    case C.CSR_MIE:
      c.mie = lo & (MIE_MASK | (c.hasH ? C.MIP_VSSIP | C.MIP_VSTIP | C.MIP_VSEIP | C.MIP_SGEIP : 0));
      break;
    case C.CSR_MIP: {
      const m = C.MIP_SSIP | C.MIP_STIP | C.MIP_SEIP | (c.hasH ? C.MIP_VSSIP : 0);
      c.mipSw = (c.mipSw & ~m) | (lo & m);
      updateMip(c);
      break;
    }
    case C.CSR_MCOUNTEREN:
      c.mcounteren = lo & 7;
      break;
    case C.CSR_MCOUNTINHIBIT:
      foldCounters(c, false);
      c.mcountinhibit = lo & ~2;
      break;
    case C.CSR_MENVCFG:
      c.menvcfgLo = lo & 1;
      break;
    case C.CSR_MCYCLE:
    case C.CSR_MINSTRET:
      foldCounters(c, true);
      if (csr === C.CSR_MCYCLE) c.cycleBase = hi * 4294967296 + (lo >>> 0);
      else c.instretBase = hi * 4294967296 + (lo >>> 0);
      break;
    case C.CSR_TSELECT:
      break; // no triggers: tselect reads 0 whatever is written
    case C.CSR_TDATA1:
      break; // type 0: no trigger implemented
    case CSR_TDATA2:
    case CSR_TDATA3:
      lo = c.csrLo[csr]!;
      hi = c.csrHi[csr]!;
      break;
    case C.CSR_MTINST:
    case C.CSR_MTVAL2:
      if (!c.hasH) return C.CAUSE_ILLEGAL_INSTRUCTION;
      c.csrLo[csr] = lo;
      c.csrHi[csr] = hi;
      break;
    default:
      if (csr >= C.CSR_PMPCFG0 && csr <= C.CSR_PMPCFG0 + 15) {
        if ((csr & 1) !== 0) return C.CAUSE_ILLEGAL_INSTRUCTION;
        c.csrLo[csr] = lo;
        c.csrHi[csr] = hi;
      } else if (csr >= C.CSR_PMPADDR0 && csr <= C.CSR_PMPADDR0 + 63) {
        c.csrLo[csr] = lo;
        c.csrHi[csr] = hi & 0x3fffff;
      } else if (
        (csr >= CSR_MHPMCOUNTER3 && csr <= CSR_MHPMCOUNTER31) ||
        (csr >= CSR_MHPMEVENT3 && csr <= CSR_MHPMEVENT31)
      ) {
        // hard-wired zero
      } else {
        return C.CAUSE_ILLEGAL_INSTRUCTION;
      }
  }
  return 0;
}

/** Write mstatus (low word, and the MPV/GVA bits of the high word): WARL, TLB selection. */
export function writeMstatus(c: HartCore, lo: number, hiBits: number): void {
  let v = (c.mstatus & ~MSTATUS_WMASK) | (lo & MSTATUS_WMASK);
  if ((v & C.MSTATUS_MPP) >>> C.MSTATUS_MPP_SHIFT === 2)
    v = (v & ~C.MSTATUS_MPP) | (c.mstatus & C.MSTATUS_MPP);
  const old = c.mstatus;
  c.mstatus = v;
  c.mstatusHiBits = hiBits;
  if (((old ^ v) & C.MSTATUS_MXR) !== 0) flushTlb(c);
  selectTlb(c);
}

/** Execute a Zicsr instruction (raw bits). Returns 0 or an exception cause. */
export function execCsr(c: HartCore, raw: number): number {
  const csr = raw >>> 20;
  const f3 = (raw >>> 12) & 7;
  const rd = (raw >>> 7) & 0x1f;
  const rs1 = (raw >>> 15) & 0x1f;
  let srcLo: number;
  let srcHi: number;
  if (f3 >= 5) {
    srcLo = rs1;
    srcHi = 0;
  } else {
    srcLo = c.xlo[rs1]!;
    srcHi = c.xhi[rs1]!;
  }
  const op = f3 & 3; // 1 = RW, 2 = RS, 3 = RC
  const writes = op === 1 || rs1 !== 0;
  if (op === 1 && rd === 0) {
    // csrrw with rd = x0 does not read
    const r = csrAccess(c, csr);
    if (r !== 0) return r;
    return csrWrite(c, csr, srcLo, srcHi);
  }
  const r = csrRead(c, csr);
  if (r !== 0) return r;
  const oldLo = c.cLo;
  const oldHi = c.cHi;
  if (writes) {
    if (csr >>> 10 === CSR_READ_ONLY) return C.CAUSE_ILLEGAL_INSTRUCTION;
    let nLo = srcLo;
    let nHi = srcHi;
    if (op === 2) {
      nLo = oldLo | srcLo;
      nHi = oldHi | srcHi;
    } else if (op === 3) {
      nLo = oldLo & ~srcLo;
      nHi = oldHi & ~srcHi;
    }
    const w = csrWrite(c, csr, nLo, nHi);
    if (w !== 0) return w;
  }
  if (rd !== 0) {
    c.xlo[rd] = oldLo;
    c.xhi[rd] = oldHi;
  }
  return 0;
}

/** Privilege check for a CSR write without a read. */
function csrAccess(c: HartCore, csr: number): number {
  if (c.h !== undefined) {
    const r = hCsrAccessCheck(c, c.h, csr);
    if (r > 0) return r;
    if (r === 0) return 0;
  }
  if (c.priv < ((csr >>> 8) & 3)) return C.CAUSE_ILLEGAL_INSTRUCTION;
  // Probe existence by reading (no side effects for any CSR here).
  return csrReadRaw(c, csr);
}

/** Set satp as the host would through the CSR: mode 0/8/9/10, root page number, ASID. */
export function setSatp(c: HartCore, mode: number, rootPpn: number, asid: number): void {
  const lo = (rootPpn % 4294967296) | 0;
  const hi = (mode << 28) | ((asid & 0xffff) << 12) | Math.floor(rootPpn / 4294967296) | 0;
  csrWriteRaw(c, C.CSR_SATP, lo, hi);
}

/**
 * The host's read of a CSR by number, as M-mode would see it but without privilege
 * checks or V=1 redirection; the FP CSRs whatever mstatus.FS says. Undefined when the hart
 * has no such CSR.
 */
export function hostCsrRead(c: HartCore, csr: number): bigint | undefined {
  const fpu = c.fpu;
  switch (csr) {
    case C.CSR_FFLAGS:
      return BigInt(fpu.fflags);
    case C.CSR_FRM:
      return BigInt(fpu.frm);
    case C.CSR_FCSR:
      return BigInt((fpu.frm << FRM_SHIFT) | fpu.fflags);
    case C.CSR_CYCLE:
    case C.CSR_MCYCLE:
      return BigInt(cycles(c));
    case C.CSR_INSTRET:
    case C.CSR_MINSTRET:
      return BigInt(instret(c));
    case C.CSR_SATP:
      return BigInt.asUintN(64, (BigInt(c.csrHi[csr]!) << 32n) | BigInt(c.csrLo[csr]! >>> 0));
  }
  const r = c.h !== undefined && isHCsr(csr) ? hCsrRead(c, c.h, csr) : csrReadRaw(c, csr);
  if (r !== 0) return undefined;
  return BigInt.asUintN(64, (BigInt(c.cHi) << 32n) | BigInt(c.cLo >>> 0));
}

/**
 * The host's write of a CSR by number (boot state, a hypervisor's own CSR writes): WARL
 * fields and side effects apply as for M-mode, without privilege checks or V=1
 * redirection; the FP CSRs whatever mstatus.FS says. False when the hart has no such
 * writable CSR.
 */
export function hostCsrWrite(c: HartCore, csr: number, v: bigint): boolean {
  const lo = Number(BigInt.asIntN(32, v));
  const hi = Number(BigInt.asIntN(32, v >> 32n));
  const fpu = c.fpu;
  switch (csr) {
    case C.CSR_FFLAGS:
      fpu.fflags = lo & FFLAGS_MASK;
      return true;
    case C.CSR_FRM:
      fpu.frm = lo & FRM_MASK;
      return true;
    case C.CSR_FCSR:
      fpu.fflags = lo & FFLAGS_MASK;
      fpu.frm = (lo >>> FRM_SHIFT) & FRM_MASK;
      return true;
  }
  if (csr >>> 10 === CSR_READ_ONLY) return false;
  const r = c.h !== undefined && isHCsr(csr) ? hCsrWrite(c, c.h, csr, lo, hi) : csrWriteRaw(c, csr, lo, hi);
  return r === 0;
}
