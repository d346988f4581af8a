/**
 * The hypervisor (H) extension, ratified v1.0 (privileged spec chapter "Hypervisor
 * Extension"): virtualization mode V with VS and VU, the HS and VS CSRs, two-stage
 * address translation (VS-stage through vsatp, G-stage through hgatp in Sv39x4/Sv48x4),
 * guest-page faults with htval/htinst, HLV/HLVX/HSV, HFENCE.VVMA/GVMA, virtual-instruction
 * exceptions and the hstatus VTVM/VTW/VTSR traps.
 *
 * The Hart calls into this object only on slow paths (traps, CSRs, TLB misses, system
 * instructions), so a hart without the extension pays nothing, and one with it pays
 * nothing on TLB hits.
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
  type Access,
  type PteTranslator,
  SATP_MODE_BARE,
  SATP_MODE_SV39,
  SATP_MODE_SV48,
  SATP_MODE_SV57,
  WalkResult,
  walkGStage,
  walkStage1,
} from "@visor/memory";
import * as C from "./csr.ts";
import * as D from "./decode.ts";
import { EXIT_HS, type Hart } from "./hart.ts";

// hstatus bits
export const HSTATUS_VSBE = 1 << 5;
export const HSTATUS_GVA = 1 << 6;
export const HSTATUS_SPV = 1 << 7;
export const HSTATUS_SPVP = 1 << 8;
export const HSTATUS_HU = 1 << 9;
export const HSTATUS_VTVM = 1 << 20;
export const HSTATUS_VTW = 1 << 21;
export const HSTATUS_VTSR = 1 << 22;
const HSTATUS_WMASK =
  HSTATUS_GVA | HSTATUS_SPV | HSTATUS_SPVP | HSTATUS_HU | HSTATUS_VTVM | HSTATUS_VTW | HSTATUS_VTSR;

const VS_IRQS = C.MIP_VSSIP | C.MIP_VSTIP | C.MIP_VSEIP;
const HEDELEG_MASK = 0xb1ff; // not 9, 10, 11 (ecalls from HS/VS/M) nor 20..23
const HIDELEG_MASK = VS_IRQS;
const VSSTATUS_MASK =
  C.MSTATUS_SIE | C.MSTATUS_SPIE | C.MSTATUS_SPP | C.MSTATUS_FS | C.MSTATUS_SUM | C.MSTATUS_MXR;

/** Causes whose tval is a guest virtual address when taken from V=1 or an HLV/HSV. */
const GVA_CAUSES =
  (1 << 0) |
  (1 << 1) |
  (1 << 3) |
  (1 << 4) |
  (1 << 5) |
  (1 << 6) |
  (1 << 7) |
  (1 << 12) |
  (1 << 13) |
  (1 << 15);
const GPF_CAUSES = (1 << 20) | (1 << 21) | (1 << 23);

const GUEST_PAGE_FAULT = [
  C.CAUSE_LOAD_GUEST_PAGE_FAULT,
  C.CAUSE_STORE_GUEST_PAGE_FAULT,
  C.CAUSE_FETCH_GUEST_PAGE_FAULT,
];

const G_TLB = 1024;

function isHCsr(csr: number): boolean {
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

const H_STATE_KEYS = [
  "hstatus",
  "hedeleg",
  "hideleg",
  "hcounteren",
  "henvcfg",
  "htimedeltaLo",
  "htimedeltaHi",
  "vsstatus",
  "vsatpMode",
  "vsatpPpn",
  "hgatpMode",
  "hgatpPpn",
] as const;

export class HExt implements PteTranslator {
  hstatus = 0;
  hedeleg = 0;
  hideleg = 0;
  hcounteren = 0;
  henvcfg = 0;
  htimedeltaLo = 0;
  htimedeltaHi = 0;
  vsstatus = 0;
  vsatpMode = SATP_MODE_BARE;
  vsatpPpn = 0;
  hgatpMode = SATP_MODE_BARE;
  hgatpPpn = 0;

  /** Guest-physical address of the last G-stage fault (for htval/mtval2). */
  lastFaultGpa = 0;
  /** The last fault came from an implicit VS-stage page-table access. */
  lastFaultImplicit = false;
  lastFaultImplicitWrite = false;
  /** Set while an HLV/HLVX/HSV executes, so its faults set GVA. */
  private hlvActive = false;
  /** The access type of the translation in progress (for implicit-access faults). */
  private curAccess: Access = ACCESS_READ;
  private readonly gRes = new WalkResult();
  private hart: Hart | undefined;

  /** G-stage walk statistics. */
  gWalks = 0;
  gRefs = 0;

  /** The HS-mode CSRs kept here (VS CSRs and the rest live in the hart's CSR file). */
  toState(): Record<string, number> {
    const s: Record<string, number> = {};
    for (const k of H_STATE_KEYS) s[k] = this[k];
    return s;
  }

  fromState(s: Record<string, number>): void {
    for (const k of H_STATE_KEYS) {
      const v = s[k];
      if (typeof v !== "number" || !Number.isInteger(v))
        throw new Error(`hart state: h.${k} is not an integer`);
      this[k] = v;
    }
    this.flushGTlb();
  }

  attach(h: Hart): void {
    this.hart = h;
  }

  // --------------------------------------------------------------- translation

  /** G-stage translation of a guest-physical page address; -cause on a fault. */
  /**
   * A small G-stage TLB (GPA page -> HPA page) per access type, like the nested-TLB /
   * paging-structure caches of EPT hardware: without it every VS-stage PTE read would
   * walk the G-stage again. Flushed with the hart's TLBs (hgatp writes, HFENCE.GVMA,
   * mstatus.MXR changes).
   */
  private readonly gTag = [
    new Int32Array(G_TLB).fill(-1),
    new Int32Array(G_TLB).fill(-1),
    new Int32Array(G_TLB).fill(-1),
  ];
  private readonly gVal = [new Float64Array(G_TLB), new Float64Array(G_TLB), new Float64Array(G_TLB)];
  gTlbHits = 0;

  flushGTlb(): void {
    for (const t of this.gTag) t.fill(-1);
  }

  gStage(gpa: number, access: Access, res: WalkResult): number {
    if (this.hgatpMode === SATP_MODE_BARE) return gpa;
    const page = Math.floor(gpa / 4096);
    const tags = this.gTag[access]!;
    const ti = page & (G_TLB - 1);
    if (page < 0x80000000 && tags[ti] === page) {
      this.gTlbHits++;
      return this.gVal[access]![ti]!;
    }
    const h = this.hart!;
    this.gWalks++;
    const before = res.refs;
    const r = walkGStage(
      h.ram,
      this.hgatpMode,
      this.hgatpPpn,
      gpa,
      access,
      (h.mstatus & C.MSTATUS_MXR) !== 0,
      res,
    );
    this.gRefs += res.refs - before;
    if (r !== 0) {
      this.lastFaultGpa = gpa;
      return -r;
    }
    if (page < 0x80000000) {
      tags[ti] = page;
      this.gVal[access]![ti] = res.pagePa;
    }
    return res.pagePa;
  }

  /** PteTranslator: the VS-stage walk's PTE addresses are guest-physical. */
  translatePte(gpa: number, write: boolean, _res: WalkResult): number {
    const r = this.gStage(gpa - (gpa % 4096), write ? ACCESS_WRITE : ACCESS_READ, this.gRes);
    if (r < 0) {
      this.lastFaultGpa = gpa;
      this.lastFaultImplicit = true;
      this.lastFaultImplicitWrite = write;
      // Reported as a guest-page fault of the original access type.
      const c = -r;
      return -(c === 20 || c === 21 || c === 23 ? GUEST_PAGE_FAULT[this.curAccess]! : c);
    }
    return r + (gpa % 4096);
  }

  translateGuest(h: Hart, aLo: number, aHi: number, access: Access, priv: number, res: WalkResult): number {
    this.curAccess = access;
    this.lastFaultImplicit = false;
    let gpa: number;
    if (this.vsatpMode === SATP_MODE_BARE) {
      if (aHi >>> 24 !== 0) {
        this.lastFaultGpa = (aHi >>> 0) * 4294967296 + (aLo >>> 0);
        return -GUEST_PAGE_FAULT[access]!;
      }
      gpa = aHi * 4294967296 + ((aLo & ~0xfff) >>> 0);
    } else {
      const mxr = ((h.mstatus | this.vsstatus) & C.MSTATUS_MXR) !== 0;
      const before = res.refs;
      h.stats.walks++;
      const r = walkStage1(
        h.ram,
        this.vsatpMode,
        this.vsatpPpn,
        aHi,
        aLo,
        access,
        priv === C.PRV_U,
        (this.vsstatus & C.MSTATUS_SUM) !== 0,
        mxr,
        res,
        this,
      );
      h.stats.walkRefs += res.refs - before;
      if (r !== 0) return -r;
      gpa = res.pagePa;
    }
    const hpa = this.gStage(gpa, access, res);
    if (hpa < 0) {
      this.lastFaultGpa = gpa + (aLo & 0xfff);
      return hpa;
    }
    return hpa;
  }

  // --------------------------------------------------------------- traps

  raise(
    h: Hart,
    cause: number,
    tvalLo: number,
    tvalHi: number,
    irq: boolean,
    tval2: number,
    tinst: number,
  ): boolean {
    const prevV = h.virt;
    const gva = !!(
      !irq &&
      cause < 32 &&
      ((GVA_CAUSES | GPF_CAUSES) >>> cause) & 1 &&
      (prevV || this.hlvActive)
    );
    let gpa2 = tval2;
    let inst = tinst;
    if (!irq && ((GPF_CAUSES >>> cause) & 1) !== 0) {
      gpa2 = Math.floor(this.lastFaultGpa / 4);
      if (this.lastFaultImplicit) inst = this.lastFaultImplicitWrite ? 0x3020 : 0x3000;
      else inst = cause === C.CAUSE_FETCH_GUEST_PAGE_FAULT ? 0 : transformedInsn(h.lastW);
    } else if (
      !irq &&
      (cause === C.CAUSE_LOAD_PAGE_FAULT ||
        cause === C.CAUSE_STORE_PAGE_FAULT ||
        cause === 4 ||
        cause === 6 ||
        cause === 5 ||
        cause === 7)
    ) {
      inst = transformedInsn(h.lastW);
    }
    // Where does it go?
    let target = 3;
    if (h.priv !== C.PRV_M) {
      const mdeleg = irq ? h.mideleg | VS_IRQS | C.MIP_SGEIP : h.medeleg;
      if (((mdeleg >>> cause) & 1) !== 0) {
        target = 1;
        if (prevV) {
          const hdeleg = irq ? this.hideleg : this.hedeleg;
          if (((hdeleg >>> cause) & 1) !== 0) target = 0; // VS
        }
      }
    }
    if (target === 3) {
      h.trapToM(cause, tvalLo, tvalHi, irq, gpa2, inst, gva);
      return true;
    }
    if (target === 1) {
      if ((h.exitMask & EXIT_HS) !== 0) {
        h.exitCause = irq ? (cause | 0x80000000) >>> 0 : cause;
        h.exitTvalLo = tvalLo;
        h.exitTvalHi = tvalHi;
        h.exitTval2 = gpa2 * 4 + (this.lastFaultGpa % 4);
        h.exitInsn = inst;
        h.stopExit = true;
        return true;
      }
      this.trapToHS(h, cause, tvalLo, tvalHi, irq, gpa2, inst, gva);
      return true;
    }
    // VS-mode: VS-level interrupts appear with their S-level codes.
    const vcause =
      irq && (cause === C.IRQ_VSSI || cause === C.IRQ_VSTI || cause === C.IRQ_VSEI) ? cause - 1 : cause;
    this.trapToVS(h, vcause, tvalLo, tvalHi, irq);
    return true;
  }

  /**
   * Enter the guest's own trap handler (VS-mode): vsepc, vscause, vstval, vsstatus, vstvec.
   * Used for traps delegated through hedeleg/hideleg, and by a hypervisor injecting an
   * exception into its guest (KVM's "redirect trap").
   */
  trapToVS(h: Hart, cause: number, tvalLo: number, tvalHi: number, irq: boolean): void {
    h.enterS(true, cause, tvalLo, tvalHi, irq);
  }

  /** Enter HS-mode (a trap taken by the hypervisor when it runs as guest code on the hart). */
  trapToHS(
    h: Hart,
    cause: number,
    tvalLo: number,
    tvalHi: number,
    irq: boolean,
    gpa2: number,
    inst: number,
    gva: boolean,
  ): void {
    const L = h.csrLo;
    const H = h.csrHi;
    L[C.CSR_HTVAL] = gpa2 % 4294967296;
    H[C.CSR_HTVAL] = Math.floor(gpa2 / 4294967296);
    L[C.CSR_HTINST] = inst;
    H[C.CSR_HTINST] = 0;
    let hs = this.hstatus & ~(HSTATUS_SPV | HSTATUS_GVA);
    if (h.virt) {
      hs |= HSTATUS_SPV;
      hs = h.priv === C.PRV_S ? hs | HSTATUS_SPVP : hs & ~HSTATUS_SPVP;
    }
    if (gva) hs |= HSTATUS_GVA;
    this.hstatus = hs;
    h.setVirt(false);
    h.trapToS(cause, tvalLo, tvalHi, irq); // sepc/scause/stval, sstatus, stvec: as without H
  }

  pendingInterrupt(h: Hart): number {
    const pend = h.mip & h.mie;
    if (pend === 0) return -1;
    const mideleg = h.mideleg | VS_IRQS | C.MIP_SGEIP;
    const m = pend & ~mideleg;
    const priv = h.priv;
    const V = h.virt;
    let cand = 0;
    if (m !== 0 && (priv < C.PRV_M || (h.mstatus & C.MSTATUS_MIE) !== 0)) cand = m;
    if (cand === 0) {
      const hs = pend & mideleg & ~this.hideleg;
      if (hs !== 0 && (V || priv < C.PRV_S || (priv === C.PRV_S && (h.mstatus & C.MSTATUS_SIE) !== 0)))
        cand = hs;
    }
    if (cand === 0 && V) {
      const vs = pend & mideleg & this.hideleg;
      if (vs !== 0 && (priv === C.PRV_U || (this.vsstatus & C.MSTATUS_SIE) !== 0)) cand = vs;
    }
    return cand === 0 ? -1 : C.highestIrq(cand);
  }

  // --------------------------------------------------------------- CSRs

  csrAccessCheck(h: Hart, csr: number, _write: boolean): number {
    const priv = h.priv;
    const lvl = (csr >>> 8) & 3;
    if (h.virt) {
      if (lvl === 3) return C.CAUSE_ILLEGAL_INSTRUCTION;
      if (csr >= 0xc00 && csr <= 0xc1f) {
        const bit = csr & 31;
        if (((h.mcounteren >>> bit) & 1) === 0) return C.CAUSE_ILLEGAL_INSTRUCTION;
        if (((this.hcounteren >>> bit) & 1) === 0) return C.CAUSE_VIRTUAL_INSTRUCTION;
        if (priv === C.PRV_U && ((h.scounteren >>> bit) & 1) === 0) return C.CAUSE_VIRTUAL_INSTRUCTION;
        return -1;
      }
      if (lvl === 2 || isHCsr(csr)) return C.CAUSE_VIRTUAL_INSTRUCTION;
      if (lvl === 1) {
        if (priv === C.PRV_U) return C.CAUSE_VIRTUAL_INSTRUCTION;
        if (csr === C.CSR_SATP && (this.hstatus & HSTATUS_VTVM) !== 0) return C.CAUSE_VIRTUAL_INSTRUCTION;
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

  csrRead(h: Hart, csr0: number): number {
    const csr = h.virt ? (vsAlias(csr0) >= 0 ? vsAlias(csr0) : csr0) : csr0;
    let lo = 0;
    let hi = 0;
    switch (csr) {
      case C.CSR_HSTATUS:
        lo = this.hstatus;
        hi = 2; // VSXL = 64
        break;
      case C.CSR_HEDELEG:
        lo = this.hedeleg;
        break;
      case C.CSR_HIDELEG:
        lo = this.hideleg;
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
        lo = this.hcounteren;
        break;
      case C.CSR_HENVCFG:
        lo = this.henvcfg;
        break;
      case C.CSR_HTIMEDELTA:
        lo = this.htimedeltaLo;
        hi = this.htimedeltaHi;
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
        lo = this.vsstatus & VSSTATUS_MASK;
        const fsDirty = (this.vsstatus & C.MSTATUS_FS) === C.MSTATUS_FS;
        hi = (C.MSTATUSH_UXL & 2) | (fsDirty ? C.MSTATUSH_SD : 0);
        break;
      }
      case C.CSR_VSIE:
        lo = ((h.mie & this.hideleg) >>> 1) & 0x222;
        break;
      case C.CSR_VSIP:
        lo = ((h.mip & this.hideleg) >>> 1) & 0x222;
        break;
      default:
        return h.csrReadRaw(csr);
    }
    h.cLo = lo;
    h.cHi = hi;
    return 0;
  }

  csrWrite(h: Hart, csr0: number, lo: number, hi: number): number {
    const csr = h.virt ? (vsAlias(csr0) >= 0 ? vsAlias(csr0) : csr0) : csr0;
    switch (csr) {
      case C.CSR_HSTATUS:
        this.hstatus = lo & HSTATUS_WMASK;
        break;
      case C.CSR_HEDELEG:
        this.hedeleg = lo & HEDELEG_MASK;
        break;
      case C.CSR_HIDELEG:
        this.hideleg = lo & HIDELEG_MASK;
        break;
      case C.CSR_HIE:
        h.mie = (h.mie & ~VS_IRQS) | (lo & VS_IRQS);
        break;
      case C.CSR_HIP:
        this.setVip(h, C.MIP_VSSIP, lo);
        break;
      case C.CSR_HVIP:
        this.setVip(h, VS_IRQS, lo);
        break;
      case C.CSR_HCOUNTEREN:
        this.hcounteren = lo & 7;
        break;
      case C.CSR_HENVCFG:
        this.henvcfg = lo & 1;
        break;
      case C.CSR_HTIMEDELTA:
        this.htimedeltaLo = lo;
        this.htimedeltaHi = hi;
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
        this.hgatpMode = mode;
        this.hgatpPpn = (hh & 0xfff) * 4294967296 + (l >>> 0);
        h.flushTlb();
        break;
      }
      case C.CSR_VSATP: {
        const mode = hi >>> 28;
        if (!validSatpMode(mode)) break;
        h.csrLo[csr] = lo;
        h.csrHi[csr] = hi;
        this.vsatpMode = mode;
        this.vsatpPpn = (hi & 0xfff) * 4294967296 + (lo >>> 0);
        h.flushTlb();
        break;
      }
      case C.CSR_VSSTATUS: {
        const old = this.vsstatus;
        this.vsstatus = (this.vsstatus & ~VSSTATUS_MASK) | (lo & VSSTATUS_MASK);
        if (((old ^ this.vsstatus) & C.MSTATUS_MXR) !== 0) h.flushTlb();
        h.selectTlb();
        break;
      }
      case C.CSR_VSIE: {
        const m = this.hideleg & VS_IRQS;
        h.mie = (h.mie & ~m) | ((lo << 1) & m);
        break;
      }
      case C.CSR_VSIP: {
        const m = this.hideleg & C.MIP_VSSIP;
        this.setVip(h, m, lo << 1);
        break;
      }
      default:
        return h.csrWriteRaw(csr, lo, hi);
    }
    return 0;
  }

  private setVip(h: Hart, mask: number, v: number): void {
    h.mipSw = (h.mipSw & ~mask) | (v & mask);
    h.mip = h.mipSw | h.mipHw;
  }

  timeDelta(h: Hart): number {
    return h.virt ? this.htimedeltaHi * 4294967296 + (this.htimedeltaLo >>> 0) : 0;
  }

  // --------------------------------------------------------------- instructions

  sret(h: Hart): number {
    if (h.virt) {
      if (h.priv === C.PRV_U || (this.hstatus & HSTATUS_VTSR) !== 0) return C.CAUSE_VIRTUAL_INSTRUCTION;
      h.leaveS(true);
      h.selectTlb();
      return 0;
    }
    if (h.priv < C.PRV_S) return C.CAUSE_ILLEGAL_INSTRUCTION;
    if (h.priv === C.PRV_S && (h.mstatus & C.MSTATUS_TSR) !== 0) return C.CAUSE_ILLEGAL_INSTRUCTION;
    const spv = (this.hstatus & HSTATUS_SPV) !== 0;
    this.hstatus &= ~HSTATUS_SPV;
    h.leaveS(false);
    h.setVirt(spv);
    h.selectTlb();
    return 0;
  }

  wfiCheck(h: Hart): number {
    if ((h.mstatus & C.MSTATUS_TW) !== 0 && h.priv !== C.PRV_M) return C.CAUSE_ILLEGAL_INSTRUCTION;
    if (h.virt) {
      if (h.priv === C.PRV_U) return C.CAUSE_VIRTUAL_INSTRUCTION;
      if ((this.hstatus & HSTATUS_VTW) !== 0) return C.CAUSE_VIRTUAL_INSTRUCTION;
      return 0;
    }
    if (h.priv === C.PRV_U) return C.CAUSE_ILLEGAL_INSTRUCTION;
    return 0;
  }

  sfenceCheck(h: Hart): number {
    if (h.virt) {
      if (h.priv === C.PRV_U) return C.CAUSE_VIRTUAL_INSTRUCTION;
      if ((this.hstatus & HSTATUS_VTVM) !== 0) return C.CAUSE_VIRTUAL_INSTRUCTION;
      return 0;
    }
    if (h.priv === C.PRV_U) return C.CAUSE_ILLEGAL_INSTRUCTION;
    if (h.priv === C.PRV_S && (h.mstatus & C.MSTATUS_TVM) !== 0) return C.CAUSE_ILLEGAL_INSTRUCTION;
    return 0;
  }

  execOther(h: Hart, op: number, _w: number, raw: number): number {
    if (op === D.OP_HFENCE_VVMA || op === D.OP_HFENCE_GVMA) {
      if (h.virt) return C.CAUSE_VIRTUAL_INSTRUCTION;
      if (h.priv === C.PRV_U) return C.CAUSE_ILLEGAL_INSTRUCTION;
      if (op === D.OP_HFENCE_GVMA && h.priv === C.PRV_S && (h.mstatus & C.MSTATUS_TVM) !== 0) {
        return C.CAUSE_ILLEGAL_INSTRUCTION;
      }
      h.flushTlb();
      return 0;
    }
    if (op === D.OP_HLSV) return this.hlsv(h, raw);
    return C.CAUSE_ILLEGAL_INSTRUCTION;
  }

  /** HLV/HLVX/HSV: loads and stores as if V=1 at privilege hstatus.SPVP. Returns 0, -1 (trap taken) or a cause. */
  private hlsv(h: Hart, raw: number): number {
    if (h.virt) return C.CAUSE_VIRTUAL_INSTRUCTION;
    if (h.priv === C.PRV_U && (this.hstatus & HSTATUS_HU) === 0) return C.CAUSE_ILLEGAL_INSTRUCTION;
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
    const priv = (this.hstatus & HSTATUS_SPVP) !== 0 ? C.PRV_S : C.PRV_U;
    this.hlvActive = true;
    try {
      if ((aLo & 0xfff) + size > 4096 && (aLo & (size - 1)) !== 0) {
        h.raise(store ? C.CAUSE_MISALIGNED_STORE : C.CAUSE_MISALIGNED_LOAD, aLo, aHi);
        return -1;
      }
      const access = store ? ACCESS_WRITE : hlvx ? ACCESS_EXEC : ACCESS_READ;
      const res = this.gRes;
      h.lastW = 0;
      let pa = this.translateGuest(h, aLo, aHi, access, priv, res);
      if (pa < 0) {
        let c = -pa;
        if (hlvx) c = c === 12 ? 13 : c === 20 ? 21 : c === 1 ? 5 : c;
        h.raise(c, aLo, aHi);
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
            h.raise(C.CAUSE_STORE_ACCESS, aLo, aHi);
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
            h.raise(C.CAUSE_LOAD_ACCESS, aLo, aHi);
            return -1;
          }
          lo = Number(BigInt.asIntN(32, v));
          hi = Number(BigInt.asIntN(32, v >> 32n));
        } else {
          const v = h.bus.read(pa, size as 1 | 2 | 4);
          if (v < 0) {
            h.raise(C.CAUSE_LOAD_ACCESS, aLo, aHi);
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
      this.hlvActive = false;
    }
  }
}

/**
 * The transformed instruction for htinst/mtinst of an explicit load or store (H spec
 * §"Transformed instruction or pseudoinstruction for mtinst or htinst"): the same opcode,
 * funct3, rd / rs2, with rs1 and the offset cleared; bit 1 is 0 when the original
 * instruction was compressed.
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
    const f3 = [0, 1, 2, 3, 4, 5, 6][op - D.OP_LB]!;
    t = (f3 << 12) | (rd << 7) | 0x03;
  } else if (op >= D.OP_SB && op <= D.OP_SD) {
    t = (rs2 << 20) | ((op - D.OP_SB) << 12) | 0x23;
  } else if (op === D.OP_FLW || op === D.OP_FLD) {
    t = ((op === D.OP_FLW ? 2 : 3) << 12) | (((w >>> 8) & 0x1f) << 7) | 0x07;
  } else if (op === D.OP_FSW || op === D.OP_FSD) {
    t = (rs2 << 20) | ((op === D.OP_FSW ? 2 : 3) << 12) | 0x27;
  } else {
    return 0;
  }
  return compressed ? t & ~2 : t;
}
