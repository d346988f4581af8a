/**
 * Everything the hot loop (hart.ts `run`) hands off: system instructions (ECALL, EBREAK,
 * xRET, WFI, SFENCE.VMA, the H extension's), Zicsr, the A extension, FP loads and stores
 * off the fast path, FP arithmetic with FS off or clean, and illegal instructions.
 * Functions over core state.
 */

import { execAmo } from "./amo.ts";
import {
  flushNonGlobal,
  flushStage1,
  flushTlbPage,
  fsDirty,
  fsOff,
  type HartCore,
  interruptPending,
  selectTlb,
  setPriv,
  setVirt,
} from "./core.ts";
import * as C from "./csr.ts";
import { execCsr } from "./csr-file.ts";
import * as D from "./decode.ts";
import { hExecOther, hSfenceCheck, hSret, hWfiCheck } from "./hext.ts";
import { loadSlow, rawInsnAt, storeSlow } from "./mmu.ts";
import { leaveS, raise } from "./trap.ts";

/** mret/sret/wfi/sfence etc.; returns 0 or an exception cause. pc already advanced for non-returns. */
function execSystem(c: HartCore, op: number, raw: number): number {
  switch (op) {
    case D.OP_MRET: {
      if (c.priv < C.PRV_M) return C.CAUSE_ILLEGAL_INSTRUCTION;
      let s = c.mstatus;
      const mpp = (s >>> C.MSTATUS_MPP_SHIFT) & 3;
      s = (s & C.MSTATUS_MPIE) !== 0 ? s | C.MSTATUS_MIE : s & ~C.MSTATUS_MIE;
      s |= C.MSTATUS_MPIE;
      s &= ~C.MSTATUS_MPP;
      if (mpp !== C.PRV_M) s &= ~C.MSTATUS_MPRV;
      c.mstatus = s;
      const mpv = (c.mstatusHiBits & C.MSTATUSH_MPV) !== 0 && mpp !== C.PRV_M;
      c.mstatusHiBits &= ~C.MSTATUSH_MPV;
      c.pcLo = c.csrLo[C.CSR_MEPC]!;
      c.pcHi = c.csrHi[C.CSR_MEPC]!;
      setPriv(c, mpp);
      if (c.hasH) setVirt(c, mpv);
      selectTlb(c);
      return 0;
    }
    case D.OP_SRET: {
      if (c.h !== undefined) return hSret(c, c.h);
      if (c.priv < C.PRV_S) return C.CAUSE_ILLEGAL_INSTRUCTION;
      if (c.priv === C.PRV_S && (c.mstatus & C.MSTATUS_TSR) !== 0) return C.CAUSE_ILLEGAL_INSTRUCTION;
      leaveS(c, false);
      selectTlb(c);
      return 0;
    }
    case D.OP_WFI: {
      if (c.h !== undefined) {
        const r = hWfiCheck(c, c.h);
        if (r !== 0) return r;
      } else if (c.priv === C.PRV_U || (c.priv === C.PRV_S && (c.mstatus & C.MSTATUS_TW) !== 0)) {
        return C.CAUSE_ILLEGAL_INSTRUCTION;
      }
      return 0;
    }
    case D.OP_SFENCE_VMA: {
      if (c.h !== undefined) {
        const r = hSfenceCheck(c, c.h);
        if (r !== 0) return r;
      } else if (c.priv === C.PRV_U || (c.priv === C.PRV_S && (c.mstatus & C.MSTATUS_TVM) !== 0)) {
        return C.CAUSE_ILLEGAL_INSTRUCTION;
      }
      // rs1 names one virtual page (whatever rs2's ASID: dropping it for every ASID is a
      // superset); rs1 = x0 is the whole address space, all of it (rs2 = x0) or its
      // non-global mappings (an ASID, taken as every ASID). None touches the G stage.
      const rs1 = (raw >>> 15) & 0x1f;
      if (rs1 !== 0) flushTlbPage(c, c.xlo[rs1]!, c.xhi[rs1]!);
      else if (((raw >>> 20) & 0x1f) !== 0) flushNonGlobal(c);
      else flushStage1(c);
      return 0;
    }
    default:
      if (c.h !== undefined) return hExecOther(c, c.h, op, raw);
      return C.CAUSE_ILLEGAL_INSTRUCTION;
  }
}

/** Raise an illegal (or virtual) instruction exception for the instruction at the pc. */
function illegal(c: HartCore, pcLo: number, pcHi: number, cause: number = C.CAUSE_ILLEGAL_INSTRUCTION): void {
  c.pcLo = pcLo;
  c.pcHi = pcHi;
  const raw = rawInsnAt(c, pcLo, pcHi);
  raise(
    c,
    cause,
    cause === C.CAUSE_ILLEGAL_INSTRUCTION || cause === C.CAUSE_VIRTUAL_INSTRUCTION ? raw : 0,
    0,
    false,
    0,
    raw,
  );
}

/**
 * Execute one instruction of the rare kinds (and any instruction when it straddles a
 * page). Updates c.pc. Returns true when the run loop must re-check its state
 * (privilege, translation, interrupts may have changed, or a trap was taken).
 */
export function execOne(c: HartCore, w: number, imm: number, pcLo: number, pcHi: number): boolean {
  const op = w & 0x7f;
  const len = 4 - ((w >>> 6) & 2);
  const nextLo = (pcLo + len) | 0;
  const nextHi = (pcHi + (nextLo >>> 0 < pcLo >>> 0 ? 1 : 0)) | 0;
  c.pcLo = pcLo;
  c.pcHi = pcHi;
  const xlo = c.xlo;
  const xhi = c.xhi;
  switch (op) {
    case D.OP_CSR: {
      const r = execCsr(c, imm);
      if (r !== 0) {
        illegal(c, pcLo, pcHi, r);
        return true;
      }
      c.pcLo = nextLo;
      c.pcHi = nextHi;
      return true;
    }
    case D.OP_ECALL: {
      const cause = c.virt ? C.CAUSE_VIRTUAL_SUPERVISOR_ECALL : C.CAUSE_USER_ECALL + c.priv;
      raise(c, c.virt && c.priv === C.PRV_U ? C.CAUSE_USER_ECALL : cause, 0, 0);
      return true;
    }
    case D.OP_EBREAK:
      raise(c, C.CAUSE_BREAKPOINT, pcLo, pcHi);
      return true;
    case D.OP_MRET:
    case D.OP_SRET: {
      const r = execSystem(c, op, imm);
      if (r !== 0) illegal(c, pcLo, pcHi, r);
      return true;
    }
    case D.OP_WFI: {
      const r = execSystem(c, op, imm);
      if (r !== 0) {
        illegal(c, pcLo, pcHi, r);
        return true;
      }
      c.pcLo = nextLo;
      c.pcHi = nextHi;
      if (!interruptPending(c)) c.wfi = true;
      return true;
    }
    case D.OP_SFENCE_VMA:
    case D.OP_HFENCE_VVMA:
    case D.OP_HFENCE_GVMA:
    case D.OP_HLSV: {
      const r = execSystem(c, op, imm);
      if (r < 0) return true; // trap already raised (HLV/HSV faults)
      if (r !== 0) {
        illegal(c, pcLo, pcHi, r);
        return true;
      }
      c.pcLo = nextLo;
      c.pcHi = nextHi;
      return true;
    }
    case D.OP_AMO_W:
    case D.OP_AMO_D: {
      c.lastW = 0;
      const r = execAmo(c, w, imm, op === D.OP_AMO_D);
      if (r === -1) return true;
      if (r !== 0) {
        illegal(c, pcLo, pcHi);
        return true;
      }
      c.pcLo = nextLo;
      c.pcHi = nextHi;
      return false;
    }
    case D.OP_FLW:
    case D.OP_FLD:
    case D.OP_FSW:
    case D.OP_FSD: {
      if (fsOff(c)) {
        illegal(c, pcLo, pcHi);
        return true;
      }
      const r1 = (w >>> 16) & 0xff;
      const b = xlo[r1]!;
      const aLo = (b + imm) | 0;
      const aHi = (xhi[r1]! + (imm >> 31) + (aLo >>> 0 < b >>> 0 ? 1 : 0)) | 0;
      const fpu = c.fpu;
      c.lastW = w;
      let r: number;
      if (op === D.OP_FLW || op === D.OP_FLD) {
        const size = op === D.OP_FLW ? 4 : 8;
        r = loadSlow(c, aLo, aHi, size);
        if (r === 0) return true;
        const rd = (w >>> 8) & 0x1f;
        if (size === 4) fpu.setF32Bits(rd, c.ldLo);
        else fpu.setF64Bits(rd, c.ldLo, c.ldHi);
      } else {
        const rs2 = w >>> 24;
        r = storeSlow(c, aLo, aHi, op === D.OP_FSW ? 4 : 8, fpu.w[2 * rs2]!, fpu.w[2 * rs2 + 1]!);
        if (r === 0) return true;
      }
      if (op === D.OP_FLW || op === D.OP_FLD) fsDirty(c);
      c.pcLo = nextLo;
      c.pcHi = nextHi;
      return r === 2;
    }
    case D.OP_FP: {
      if (fsOff(c) || !c.fpu.exec(imm, xlo, xhi)) {
        illegal(c, pcLo, pcHi);
        return true;
      }
      fsDirty(c);
      c.pcLo = nextLo;
      c.pcHi = nextHi;
      return false;
    }
    case D.OP_ILLEGAL:
      illegal(c, pcLo, pcHi);
      return true;
    default:
      illegal(c, pcLo, pcHi);
      return true;
  }
}
