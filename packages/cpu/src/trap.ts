/**
 * Trap entry and return: exceptions and interrupts into M, HS/S and VS mode (with the H
 * extension's delegation through hedeleg/hideleg), the host exits that replace a trap
 * entry when the host plays that mode (`exitMask`), the SRET status update, and interrupt
 * selection. Functions over the hart's core state (core.ts).
 */
import { EXIT_HS, EXIT_M, type HartCore, type HState, interruptPending, setPriv, setVirt } from "./core.ts";
import * as C from "./csr.ts";
import * as D from "./decode.ts";
import { trapExit } from "./exit.ts";

const VS_IRQS = C.MIP_VSSIP | C.MIP_VSTIP | C.MIP_VSEIP;

/** Causes whose tval is a guest virtual address when taken from V=1 or an HLV/HSV. */
const GVA_CAUSES =
  (1 << C.CAUSE_MISALIGNED_FETCH) |
  (1 << C.CAUSE_FETCH_ACCESS) |
  (1 << C.CAUSE_BREAKPOINT) |
  (1 << C.CAUSE_MISALIGNED_LOAD) |
  (1 << C.CAUSE_LOAD_ACCESS) |
  (1 << C.CAUSE_MISALIGNED_STORE) |
  (1 << C.CAUSE_STORE_ACCESS) |
  (1 << C.CAUSE_FETCH_PAGE_FAULT) |
  (1 << C.CAUSE_LOAD_PAGE_FAULT) |
  (1 << C.CAUSE_STORE_PAGE_FAULT);
const GPF_CAUSES =
  (1 << C.CAUSE_FETCH_GUEST_PAGE_FAULT) |
  (1 << C.CAUSE_LOAD_GUEST_PAGE_FAULT) |
  (1 << C.CAUSE_STORE_GUEST_PAGE_FAULT);
/** Causes whose mtinst/htinst is the transformed load/store (explicit memory accesses). */
const TINST_CAUSES =
  (1 << C.CAUSE_MISALIGNED_LOAD) |
  (1 << C.CAUSE_LOAD_ACCESS) |
  (1 << C.CAUSE_MISALIGNED_STORE) |
  (1 << C.CAUSE_STORE_ACCESS) |
  (1 << C.CAUSE_LOAD_PAGE_FAULT) |
  (1 << C.CAUSE_STORE_PAGE_FAULT);

/**
 * The pseudo-instructions of htinst for a guest-page fault of an implicit VS-stage
 * page-table access (H spec, "Transformed instruction or pseudoinstruction"): a 64-bit
 * read, and a write (A/D update).
 */
const PSEUDO_PTE_READ = 0x3000;
const PSEUDO_PTE_WRITE = 0x3020;

const TWO32 = 4294967296;

/** Where a trap goes with the H extension. */
const TARGET_M = 0;
const TARGET_HS = 1;
const TARGET_VS = 2;

/**
 * Take an exception (or, with `irq`, an interrupt) with trap value (tvalHi, tvalLo).
 * Updates pc/priv; when the target is one the host handles (exitMask), records the exit
 * instead and leaves the state untouched.
 */
export function raise(
  c: HartCore,
  cause: number,
  tvalLo: number,
  tvalHi: number,
  irq = false,
  tval2 = 0,
  tinst = 0,
): void {
  c.stats.traps++;
  if (!irq) c.excInRun++;
  const h = c.h;
  if (h !== undefined) {
    raiseH(c, h, cause, tvalLo, tvalHi, irq, tval2, tinst);
    return;
  }
  const deleg = irq ? c.mideleg : c.medeleg;
  const toS = c.priv <= C.PRV_S && cause < 32 && ((deleg >>> cause) & 1) !== 0;
  if (toS) enterS(c, false, cause, tvalLo, tvalHi, irq);
  else trapToM(c, cause, tvalLo, tvalHi, irq, tval2, tinst, false);
}

/** Trap routing with the H extension: M, HS or VS by medeleg/mideleg then hedeleg/hideleg. */
function raiseH(
  c: HartCore,
  h: HState,
  cause: number,
  tvalLo: number,
  tvalHi: number,
  irq: boolean,
  tval2: number,
  tinst: number,
): void {
  const prevV = c.virt;
  const gva = !!(!irq && cause < 32 && ((GVA_CAUSES | GPF_CAUSES) >>> cause) & 1 && (prevV || h.hlvActive));
  let gpa2 = tval2;
  let inst = tinst;
  if (!irq && ((GPF_CAUSES >>> cause) & 1) !== 0) {
    gpa2 = Math.floor(h.lastFaultGpa / 4);
    if (h.lastFaultImplicit) inst = h.lastFaultImplicitWrite ? PSEUDO_PTE_WRITE : PSEUDO_PTE_READ;
    else inst = cause === C.CAUSE_FETCH_GUEST_PAGE_FAULT ? 0 : transformedInsn(c.lastW);
  } else if (!irq && ((TINST_CAUSES >>> cause) & 1) !== 0) {
    inst = transformedInsn(c.lastW);
  }
  // Where does it go?
  let target = TARGET_M;
  if (c.priv !== C.PRV_M) {
    const mdeleg = irq ? c.mideleg | VS_IRQS | C.MIP_SGEIP : c.medeleg;
    if (((mdeleg >>> cause) & 1) !== 0) {
      target = TARGET_HS;
      if (prevV) {
        const hdeleg = irq ? h.hideleg : h.hedeleg;
        if (((hdeleg >>> cause) & 1) !== 0) target = TARGET_VS; // the guest's own handler
      }
    }
  }
  if (target === TARGET_M) {
    trapToM(c, cause, tvalLo, tvalHi, irq, gpa2, inst, gva);
    return;
  }
  if (target === TARGET_HS) {
    if ((c.exitMask & EXIT_HS) !== 0) {
      c.exit = trapExit(cause, irq, tvalLo, tvalHi, gpa2 * 4 + (h.lastFaultGpa % 4), inst);
      return;
    }
    trapToHS(c, h, cause, tvalLo, tvalHi, irq, gpa2, inst, gva);
    return;
  }
  // VS-mode: VS-level interrupts appear with their S-level codes.
  const vcause =
    irq && (cause === C.IRQ_VSSI || cause === C.IRQ_VSTI || cause === C.IRQ_VSEI) ? cause - 1 : cause;
  enterS(c, true, vcause, tvalLo, tvalHi, irq);
}

/**
 * An S-level trap entry: into HS/S-mode through sepc/scause/stval/stvec and mstatus, or
 * (`vs`) into VS-mode through the vs* CSRs and vsstatus. With `vs`, this is also how a
 * hypervisor injects an exception into its guest (KVM's "redirect trap").
 */
export function enterS(
  c: HartCore,
  vs: boolean,
  cause: number,
  tvalLo: number,
  tvalHi: number,
  irq: boolean,
): void {
  const L = c.csrLo;
  const H = c.csrHi;
  const epc = vs ? C.CSR_VSEPC : C.CSR_SEPC;
  const scause = vs ? C.CSR_VSCAUSE : C.CSR_SCAUSE;
  const stval = vs ? C.CSR_VSTVAL : C.CSR_STVAL;
  const stvec = vs ? C.CSR_VSTVEC : C.CSR_STVEC;
  L[epc] = c.pcLo;
  H[epc] = c.pcHi;
  L[scause] = cause;
  H[scause] = irq ? C.CAUSE_INTERRUPT_HI : 0;
  L[stval] = tvalLo;
  H[stval] = tvalHi;
  let s = vs ? c.h!.vsstatus : c.mstatus;
  s = (s & C.MSTATUS_SIE) !== 0 ? s | C.MSTATUS_SPIE : s & ~C.MSTATUS_SPIE;
  s = c.priv === C.PRV_S ? s | C.MSTATUS_SPP : s & ~C.MSTATUS_SPP;
  s &= ~C.MSTATUS_SIE;
  if (vs) c.h!.vsstatus = s;
  else c.mstatus = s;
  setPriv(c, C.PRV_S);
  jumpVector(c, L[stvec]!, H[stvec]!, cause, irq);
}

/**
 * The status and pc half of SRET, the reverse of enterS: SIE from SPIE, SPIE set, the
 * privilege from SPP, the pc from sepc; from VS-mode (`vs`) through vsstatus and vsepc,
 * otherwise through mstatus (clearing MPRV) and sepc. The caller checks the privilege
 * and selects the TLB afterwards.
 */
export function leaveS(c: HartCore, vs: boolean): void {
  let s = vs ? c.h!.vsstatus : c.mstatus;
  const spp = (s & C.MSTATUS_SPP) !== 0 ? C.PRV_S : C.PRV_U;
  s = (s & C.MSTATUS_SPIE) !== 0 ? s | C.MSTATUS_SIE : s & ~C.MSTATUS_SIE;
  s |= C.MSTATUS_SPIE;
  s &= ~C.MSTATUS_SPP;
  if (vs) c.h!.vsstatus = s;
  else c.mstatus = s & ~C.MSTATUS_MPRV;
  const epc = vs ? C.CSR_VSEPC : C.CSR_SEPC;
  c.pcLo = c.csrLo[epc]!;
  c.pcHi = c.csrHi[epc]!;
  setPriv(c, spp);
}

/** Enter M-mode, or record an exit when the host plays M-mode (EXIT_M). */
export function trapToM(
  c: HartCore,
  cause: number,
  tvalLo: number,
  tvalHi: number,
  irq: boolean,
  tval2: number,
  tinst: number,
  gva: boolean,
): void {
  if ((c.exitMask & EXIT_M) !== 0) {
    const gpa = c.h !== undefined ? tval2 * 4 + (c.h.lastFaultGpa % 4) : 0;
    c.exit = trapExit(cause, irq, tvalLo, tvalHi, gpa, tinst);
    return;
  }
  const L = c.csrLo;
  const H = c.csrHi;
  L[C.CSR_MEPC] = c.pcLo;
  H[C.CSR_MEPC] = c.pcHi;
  L[C.CSR_MCAUSE] = cause;
  H[C.CSR_MCAUSE] = irq ? C.CAUSE_INTERRUPT_HI : 0;
  L[C.CSR_MTVAL] = tvalLo;
  H[C.CSR_MTVAL] = tvalHi;
  L[C.CSR_MTVAL2] = (tval2 % TWO32) | 0;
  H[C.CSR_MTVAL2] = Math.floor(tval2 / TWO32);
  L[C.CSR_MTINST] = tinst;
  H[C.CSR_MTINST] = 0;
  let s = c.mstatus;
  s = (s & C.MSTATUS_MIE) !== 0 ? s | C.MSTATUS_MPIE : s & ~C.MSTATUS_MPIE;
  s = (s & ~C.MSTATUS_MPP) | (c.priv << C.MSTATUS_MPP_SHIFT);
  s &= ~C.MSTATUS_MIE;
  c.mstatus = s;
  if (c.hasH) {
    c.mstatusHiBits =
      (c.mstatusHiBits & ~(C.MSTATUSH_MPV | C.MSTATUSH_GVA)) |
      (c.virt ? C.MSTATUSH_MPV : 0) |
      (gva ? C.MSTATUSH_GVA : 0);
    if (c.virt) setVirt(c, false);
  }
  setPriv(c, C.PRV_M);
  jumpVector(c, L[C.CSR_MTVEC]!, H[C.CSR_MTVEC]!, cause, irq);
}

/** Enter HS-mode (a trap taken by the hypervisor when it runs as guest code on the hart). */
function trapToHS(
  c: HartCore,
  h: HState,
  cause: number,
  tvalLo: number,
  tvalHi: number,
  irq: boolean,
  gpa2: number,
  inst: number,
  gva: boolean,
): void {
  const L = c.csrLo;
  const H = c.csrHi;
  L[C.CSR_HTVAL] = gpa2 % TWO32;
  H[C.CSR_HTVAL] = Math.floor(gpa2 / TWO32);
  L[C.CSR_HTINST] = inst;
  H[C.CSR_HTINST] = 0;
  let hs = h.hstatus & ~(C.HSTATUS_SPV | C.HSTATUS_GVA);
  if (c.virt) {
    hs |= C.HSTATUS_SPV;
    hs = c.priv === C.PRV_S ? hs | C.HSTATUS_SPVP : hs & ~C.HSTATUS_SPVP;
  }
  if (gva) hs |= C.HSTATUS_GVA;
  h.hstatus = hs;
  setVirt(c, false);
  enterS(c, false, cause, tvalLo, tvalHi, irq); // sepc/scause/stval, sstatus, stvec: as without H
}

/** Set the pc to a trap vector (vectored mode for interrupts). */
function jumpVector(c: HartCore, baseLo: number, baseHi: number, cause: number, irq: boolean): void {
  let lo = baseLo & ~3;
  let hi = baseHi;
  if (irq && (baseLo & 1) !== 0) {
    const t = (lo + 4 * cause) | 0;
    if (t >>> 0 < lo >>> 0) hi = (hi + 1) | 0;
    lo = t;
  }
  c.pcLo = lo;
  c.pcHi = hi;
}

/** If an enabled interrupt is pending, take it and return true. */
export function takeInterrupt(c: HartCore): boolean {
  const irq = c.h !== undefined ? pendingInterruptH(c, c.h) : pendingInterrupt(c);
  if (irq < 0) return false;
  c.stats.interrupts++;
  raise(c, irq, 0, 0, true);
  return true;
}

/** The interrupt to take now without the H extension, or -1. */
function pendingInterrupt(c: HartCore): number {
  const pend = c.mip & c.mie;
  if (pend === 0) return -1;
  const mPend = pend & ~c.mideleg;
  const mEnabled = c.priv < C.PRV_M || (c.mstatus & C.MSTATUS_MIE) !== 0;
  let cand = mEnabled ? mPend : 0;
  if (cand === 0) {
    const sPend = pend & c.mideleg;
    const sEnabled = c.priv < C.PRV_S || (c.priv === C.PRV_S && (c.mstatus & C.MSTATUS_SIE) !== 0);
    cand = sEnabled ? sPend : 0;
  }
  return cand === 0 ? -1 : C.highestIrq(cand);
}

/** The interrupt to take now with the H extension (M, then HS, then VS level), or -1. */
function pendingInterruptH(c: HartCore, h: HState): number {
  if (!interruptPending(c)) return -1;
  const pend = c.mip & c.mie;
  const mideleg = c.mideleg | VS_IRQS | C.MIP_SGEIP;
  const m = pend & ~mideleg;
  const priv = c.priv;
  const V = c.virt;
  let cand = 0;
  if (m !== 0 && (priv < C.PRV_M || (c.mstatus & C.MSTATUS_MIE) !== 0)) cand = m;
  if (cand === 0) {
    const hs = pend & mideleg & ~h.hideleg;
    if (hs !== 0 && (V || priv < C.PRV_S || (priv === C.PRV_S && (c.mstatus & C.MSTATUS_SIE) !== 0)))
      cand = hs;
  }
  if (cand === 0 && V) {
    const vs = pend & mideleg & h.hideleg;
    if (vs !== 0 && (priv === C.PRV_U || (h.vsstatus & C.MSTATUS_SIE) !== 0)) cand = vs;
  }
  return cand === 0 ? -1 : C.highestIrq(cand);
}

/** funct3 of the RV64I loads LB..LWU in decoder order (unprivileged spec, table 24.2). */
const LOAD_F3 = [0, 1, 2, 3, 4, 5, 6];
const OPCODE_LOAD = 0x03;
const OPCODE_STORE = 0x23;
const OPCODE_LOAD_FP = 0x07;
const OPCODE_STORE_FP = 0x27;
const F3_W = 2;
const F3_D = 3;
/** Bit 1 of a transformed instruction: clear when the original was compressed. */
const NOT_COMPRESSED = 2;

/**
 * The transformed instruction for htinst/mtinst of an explicit load or store (H spec
 * §"Transformed instruction or pseudoinstruction for mtinst or htinst"): the same opcode,
 * funct3, rd / rs2, with rs1 and the offset cleared; bit 1 is 0 when the original
 * instruction was compressed. `w` is the decoded word (decode.ts), 0 for none.
 */
export function transformedInsn(w: number): number {
  if (w === 0) return 0;
  const op = w & 0x7f;
  const compressed = (w & 0x80) !== 0;
  let rd = (w >>> 8) & 0xff;
  if (rd === D.X_SINK) rd = 0;
  const rs2 = w >>> 24;
  let t: number;
  if (op >= D.OP_LB && op <= D.OP_LWU) {
    t = (LOAD_F3[op - D.OP_LB]! << 12) | (rd << 7) | OPCODE_LOAD;
  } else if (op >= D.OP_SB && op <= D.OP_SD) {
    t = (rs2 << 20) | ((op - D.OP_SB) << 12) | OPCODE_STORE;
  } else if (op === D.OP_FLW || op === D.OP_FLD) {
    t = ((op === D.OP_FLW ? F3_W : F3_D) << 12) | (((w >>> 8) & 0x1f) << 7) | OPCODE_LOAD_FP;
  } else if (op === D.OP_FSW || op === D.OP_FSD) {
    t = (rs2 << 20) | ((op === D.OP_FSW ? F3_W : F3_D) << 12) | OPCODE_STORE_FP;
  } else {
    return 0;
  }
  return compressed ? t & ~NOT_COMPRESSED : t;
}
