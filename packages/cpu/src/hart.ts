/**
 * The RISC-V hart: RV64IMAFDC + Zicsr + Zifencei + Zicntr, privilege modes M, S and U,
 * Sv39/Sv48/Sv57 virtual memory, and the hypervisor extension (see hext.ts).
 *
 * Design (docs/architecture.md, "The hot path"):
 * - Integer registers are int32 pairs (`xlo`, `xhi`); index 32 is a write sink for x0.
 * - Three software TLBs (read, write, fetch) of 256 direct-mapped entries. A hit is two
 *   int32 compares and one `+` to get the RAM offset. Only RAM pages are ever cached, so
 *   a miss is also how MMIO and faults reach the slow path.
 * - Instructions are decoded once per physical page into a CodeCache (code-cache.ts) and
 *   executed from there; the current page is kept in locals so sequential execution does
 *   no translation at all.
 * - The run loop executes a budget of instructions and returns why it stopped. Interrupts
 *   are checked when the loop starts and after anything that can change them (CSR
 *   writes, xRET, MMIO accesses, traps).
 */
import {
  ACCESS_EXEC,
  ACCESS_READ,
  ACCESS_WRITE,
  type Access,
  type GuestRam,
  SATP_MODE_BARE,
  SATP_MODE_SV39,
  SATP_MODE_SV48,
  SATP_MODE_SV57,
  WalkResult,
  walkStage1,
} from "@visor/memory";
import { CodeCache } from "./code-cache.ts";
import * as C from "./csr.ts";
import * as D from "./decode.ts";
import { Fpu, type FpuState } from "./fpu/index.ts";
import { HExt } from "./hext.ts";
import * as I64 from "./int64.ts";

/** What the hart needs from the board for physical addresses outside RAM. */
export interface PhysBus {
  /** Unsigned value, or -1 when nothing is mapped there. */
  read(pa: number, size: 1 | 2 | 4): number;
  write(pa: number, size: 1 | 2 | 4, value: number): boolean;
  read64(pa: number): bigint | undefined;
  write64(pa: number, value: bigint): boolean;
}

/** Why `run` returned. */
export const STOP_BUDGET = 0;
/** The hart executed WFI with no interrupt pending; call `run` again once one may be. */
export const STOP_WFI = 1;
/** A trap that the host handles (see `exitMask`): `exitCause`, `exitTval*` are set, pc is at the instruction. */
export const STOP_EXIT = 2;
/** `requestStop()` was called (from a device callback, for example). */
export const STOP_REQUESTED = 3;

/** Bits of `exitMask`: which trap targets leave `run` instead of entering guest handlers. */
export const EXIT_M = 1; // traps that would enter M-mode (no firmware: the host is M-mode)
export const EXIT_HS = 2; // traps that would enter HS-mode from a virtualized guest (the host is the hypervisor)

export interface HartOptions {
  ram: GuestRam;
  bus: PhysBus;
  hartId?: number;
  /** Current time in timebase ticks (the `time` CSR). Default: instructions retired / 100. */
  time?: () => number;
  /** Shared decoded-instruction cache; one per RAM. */
  codeCache?: CodeCache;
  /** Implement the hypervisor extension (misa.H). */
  hypervisor?: boolean;
}

const INVALID_TAG = 1; // never equal to a page-aligned address

const MISA_LO =
  (1 << 0) | // A
  (1 << 2) | // C
  (1 << 3) | // D
  (1 << 5) | // F
  (1 << 8) | // I
  (1 << 12) | // M
  (1 << 18) | // S
  (1 << 20); // U
const MISA_H = 1 << 7;

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
export const SSTATUS_MASK =
  C.MSTATUS_SIE | C.MSTATUS_SPIE | C.MSTATUS_SPP | C.MSTATUS_FS | C.MSTATUS_SUM | C.MSTATUS_MXR;
const MIE_MASK = C.MIP_SSIP | C.MIP_MSIP | C.MIP_STIP | C.MIP_MTIP | C.MIP_SEIP | C.MIP_MEIP;
const MIDELEG_MASK = C.MIP_SSIP | C.MIP_STIP | C.MIP_SEIP;
const MEDELEG_MASK = 0xb3ff;
const emptyPage: Int32Array = new Int32Array(4096);

/**
 * A hart's architectural state, as plain JSON (snapshots, migration). Integers are kept
 * as (lo, hi) int32 pairs, as the hart holds them. Taken and restored between runs.
 */
export interface HartState {
  /** x0..x31 as [lo0, hi0, lo1, hi1, ...]. */
  x: number[];
  pc: [number, number];
  priv: number;
  virt: boolean;
  wfi: boolean;
  mstatus: number;
  mstatusHiBits: number;
  misa: number;
  medeleg: number;
  mideleg: number;
  mie: number;
  mipSw: number;
  mipHw: number;
  mcounteren: number;
  scounteren: number;
  mcountinhibit: number;
  menvcfg: number;
  senvcfg: number;
  satp: [mode: number, ppn: number];
  instret: number;
  cycles: number;
  executed: number;
  /** Every other CSR that is not zero, as [number, lo, hi]. */
  csr: [number, number, number][];
  fpu: FpuState;
  /** The hypervisor extension's CSRs, on harts that have it. */
  h?: Record<string, number>;
}

export class Hart {
  readonly ram: GuestRam;
  readonly bus: PhysBus;
  readonly hartId: number;
  readonly code: CodeCache;
  readonly fpu = new Fpu();
  readonly hasH: boolean;
  time: () => number;

  // Architectural state
  readonly xlo = new Int32Array(33);
  readonly xhi = new Int32Array(33);
  pcLo = 0;
  pcHi = 0;
  private privMode = C.PRV_M;
  private virtMode = false;
  /** Current privilege mode (PRV_U, PRV_S, PRV_M). Setting it selects the matching TLBs. */
  get priv(): number {
    return this.privMode;
  }
  set priv(p: number) {
    this.privMode = p;
    if (this.tlbSets.length > 0) this.selectTlb();
  }
  /** Virtualization mode (H extension). */
  get virt(): boolean {
    return this.virtMode;
  }
  set virt(v: boolean) {
    this.virtMode = v;
    if (this.tlbSets.length > 0) this.selectTlb();
  }
  /** Waiting in WFI. */
  wfi = false;

  mstatus = 0; // low word; high word is derived (see mstatusHi)
  mstatusHiBits = 0; // GVA, MPV (H extension)
  misaLo: number;
  medeleg = 0;
  mideleg = 0;
  mie = 0;
  /** Pending bits written by software (SSIP, STIP, SEIP from M, VSSIP ...). */
  mipSw = 0;
  /** Pending bits driven by interrupt lines (MTIP, MSIP, MEIP, SEIP, STIP from the host SBI). */
  mipHw = 0;
  /** mipSw | mipHw, kept up to date. */
  mip = 0;
  mcounteren = 0;
  scounteren = 0;
  mcountinhibit = 0;
  menvcfgLo = 0;
  senvcfgLo = 0;
  /** 64-bit CSRs without side effects, stored as pairs by CSR number. */
  readonly csrLo = new Int32Array(4096);
  readonly csrHi = new Int32Array(4096);
  satpMode = SATP_MODE_BARE;
  satpPpn = 0;
  instretBase = 0;
  cycleBase = 0;
  /** Instructions executed (retired or trapped) over the hart's life: the machine's clock. */
  executed = 0;
  /** Synchronous exceptions taken in the current run since the last counter fold. */
  private excInRun = 0;
  /** runN at the last counter fold (the counters' bases include everything before it). */
  private runRef = 0;

  // Reservation (LR/SC)
  resValid = false;
  resLo = 0;
  resHi = 0;

  // Host exits
  exitMask = 0;
  exitCause = 0;
  exitTvalLo = 0;
  exitTvalHi = 0;
  /** Raw or transformed bits of the instruction that caused the exit (htinst), or 0. */
  exitInsn = 0;
  /** Guest-physical address of a guest-page-fault exit. */
  exitTval2 = 0;
  /** Decoded word of the load/store now in a slow path (for htinst). */
  lastW = 0;

  // TLBs: tags are the page-aligned VA (lo word) and the VA's hi word; page is the RAM
  // offset. One set of read/write/fetch TLBs per translation context (privilege, V, SUM),
  // so switching between user and kernel, or toggling SUM, flushes nothing.
  private readonly tlbSets: TlbSet[] = [];
  rTagLo!: Int32Array;
  rTagHi!: Int32Array;
  rPage!: TlbPages;
  wTagLo!: Int32Array;
  wTagHi!: Int32Array;
  wPage!: TlbPages;
  xTagLo!: Int32Array;
  xTagHi!: Int32Array;
  xPage!: TlbPages;
  tlbFlushes = 0;

  /** Scratch results of slow paths (no allocation). */
  ldLo = 0;
  ldHi = 0;
  private readonly walkRes = new WalkResult();
  private stopRequested = false;
  /** Instructions executed in the current `run` so far, for counter CSRs read mid-run. */
  private runN = 0;

  // Statistics (cheap counters; read by the hypervisor's --stats)
  stats = { tlbMisses: 0, walks: 0, walkRefs: 0, traps: 0, interrupts: 0, mmioReads: 0, mmioWrites: 0 };

  /** Extension point for the H extension: set by hext.ts when `hypervisor` is on. */
  readonly h: HExt | undefined;

  constructor(opts: HartOptions) {
    this.ram = opts.ram;
    this.bus = opts.bus;
    this.hartId = opts.hartId ?? 0;
    this.code = opts.codeCache ?? new CodeCache(opts.ram);
    this.hasH = opts.hypervisor ?? false;
    this.misaLo = MISA_LO | (this.hasH ? MISA_H : 0);
    if (this.hasH) {
      this.h = new HExt();
      this.h.attach(this);
    }
    this.time = opts.time ?? (() => Math.floor(this.executedCount() / 100));
    for (let i = 0; i < 8; i++) this.tlbSets.push(new TlbSet(opts.ram.size));
    this.selectTlb();
    this.code.onNewCodePage((pageOff) => this.dropWritePage(pageOff));
    const prevReset = this.ram.onDirtyLogReset;
    this.ram.onDirtyLogReset = () => {
      prevReset?.();
      this.flushTlb();
    };
    this.reset(0x80000000, 0);
  }

  /** Reset to M-mode at `pc` (pc as an unsigned number below 2^53). */
  reset(pc: number, hi = Math.floor(pc / 2 ** 32)): void {
    this.xlo.fill(0);
    this.xhi.fill(0);
    this.pcLo = pc | 0;
    this.pcHi = hi | 0;
    this.priv = C.PRV_M;
    this.virt = false;
    this.wfi = false;
    this.mstatus = 0;
    this.mstatusHiBits = 0;
    this.mie = 0;
    this.mipSw = 0;
    this.mip = this.mipHw;
    this.medeleg = 0;
    this.mideleg = 0;
    this.satpMode = SATP_MODE_BARE;
    this.satpPpn = 0;
    this.resValid = false;
    this.flushTlb();
    this.selectTlb();
  }

  /** The pc as an unsigned BigInt (for tools). */
  get pc(): bigint {
    return I64.pairToBigInt(this.pcHi, this.pcLo) & 0xffffffffffffffffn;
  }
  set pc(v: bigint) {
    this.pcLo = Number(BigInt.asIntN(32, v));
    this.pcHi = Number(BigInt.asIntN(32, v >> 32n));
  }
  /** Register x[i] as an unsigned BigInt (for tools and the host's SBI/syscall code). */
  getX(i: number): bigint {
    return I64.pairToBigInt(this.xhi[i]!, this.xlo[i]!) & 0xffffffffffffffffn;
  }
  setX(i: number, v: bigint): void {
    if (i === 0) return;
    this.xlo[i] = Number(BigInt.asIntN(32, v));
    this.xhi[i] = Number(BigInt.asIntN(32, v >> 32n));
  }

  /** Advance the pc by `n` bytes (a host that emulated the instruction at pc). */
  advancePc(n: number): void {
    const lo = (this.pcLo + n) | 0;
    if (lo >>> 0 < this.pcLo >>> 0) this.pcHi = (this.pcHi + 1) | 0;
    this.pcLo = lo;
  }

  /** Set satp (as the host would through the CSR): mode 0/8/9/10, root page number, ASID. */
  setSatp(mode: number, rootPpn: number, asid = 0): void {
    const lo = (rootPpn % 4294967296) | 0;
    const hi = (mode << 28) | ((asid & 0xffff) << 12) | Math.floor(rootPpn / 4294967296) | 0;
    this.csrWriteRaw(C.CSR_SATP, lo, hi);
  }

  /**
   * minstret: instructions retired before the current one. Inside `run`, runN counts the
   * current instruction too, hence the -1; instructions that took an exception did not
   * retire; mcountinhibit.IR freezes the count. A write to minstret sets the value the
   * next instruction reads (the writing instruction's own increment is suppressed).
   */
  instret(): number {
    if ((this.mcountinhibit & 4) !== 0 || this.runN === 0) return this.instretBase;
    return this.instretBase + Math.max(0, this.runN - 1 - this.runRef - this.excInRun);
  }

  /** mcycle: one cycle per instruction executed, trapped ones included (mcountinhibit.CY freezes it). */
  cycles(): number {
    if ((this.mcountinhibit & 1) !== 0 || this.runN === 0) return this.cycleBase;
    return this.cycleBase + Math.max(0, this.runN - 1 - this.runRef);
  }

  /** Instructions executed so far, for a clock that follows the guest's progress. */
  executedCount(): number {
    return this.executed + this.runN;
  }

  /** Fold the current run's progress into the counter bases (before changing how they count). */
  private foldCounters(suppressCurrent: boolean): void {
    this.instretBase = this.instret();
    this.cycleBase = this.cycles();
    this.excInRun = 0;
    this.runRef = this.runN > 0 ? this.runN - (suppressCurrent ? 0 : 1) : 0;
  }

  /** The architectural state (between runs: not while `run` is executing). */
  toState(): HartState {
    const x: number[] = [];
    for (let i = 0; i < 32; i++) x.push(this.xlo[i]!, this.xhi[i]!);
    const csr: [number, number, number][] = [];
    for (let i = 0; i < 4096; i++) {
      if (this.csrLo[i] !== 0 || this.csrHi[i] !== 0) csr.push([i, this.csrLo[i]!, this.csrHi[i]!]);
    }
    return {
      x,
      pc: [this.pcLo, this.pcHi],
      priv: this.privMode,
      virt: this.virtMode,
      wfi: this.wfi,
      mstatus: this.mstatus,
      mstatusHiBits: this.mstatusHiBits,
      misa: this.misaLo,
      medeleg: this.medeleg,
      mideleg: this.mideleg,
      mie: this.mie,
      mipSw: this.mipSw,
      mipHw: this.mipHw,
      mcounteren: this.mcounteren,
      scounteren: this.scounteren,
      mcountinhibit: this.mcountinhibit,
      menvcfg: this.menvcfgLo,
      senvcfg: this.senvcfgLo,
      satp: [this.satpMode, this.satpPpn],
      instret: this.instret(),
      cycles: this.cycles(),
      executed: this.executedCount(),
      csr,
      fpu: this.fpu.toState(),
      ...(this.h !== undefined ? { h: this.h.toState() } : {}),
    };
  }

  /**
   * Restore a state taken by toState() on a hart of the same kind. Cached translations
   * and decoded instructions are dropped. Throws on a malformed state.
   */
  fromState(state: unknown): void {
    const s = state as HartState;
    const int = (v: unknown, what: string): number => {
      if (typeof v !== "number" || !Number.isInteger(v))
        throw new Error(`hart state: ${what} is not an integer`);
      return v;
    };
    if (s === null || typeof s !== "object") throw new Error("hart state: not an object");
    if (!Array.isArray(s.x) || s.x.length !== 64) throw new Error("hart state: x must hold 64 words");
    if (!Array.isArray(s.pc) || s.pc.length !== 2) throw new Error("hart state: pc must be [lo, hi]");
    if (!Array.isArray(s.satp) || s.satp.length !== 2)
      throw new Error("hart state: satp must be [mode, ppn]");
    if (!Array.isArray(s.csr)) throw new Error("hart state: csr must be an array");
    if ((s.h !== undefined) !== (this.h !== undefined)) {
      throw new Error("hart state: taken on a hart with a different hypervisor extension setting");
    }
    for (let i = 0; i < 32; i++) {
      this.xlo[i] = int(s.x[2 * i], "x");
      this.xhi[i] = int(s.x[2 * i + 1], "x");
    }
    this.xlo[0] = 0;
    this.xhi[0] = 0;
    this.pcLo = int(s.pc[0], "pc");
    this.pcHi = int(s.pc[1], "pc");
    this.wfi = s.wfi === true;
    this.mstatus = int(s.mstatus, "mstatus");
    this.mstatusHiBits = int(s.mstatusHiBits, "mstatusHiBits");
    this.misaLo = int(s.misa, "misa");
    this.medeleg = int(s.medeleg, "medeleg");
    this.mideleg = int(s.mideleg, "mideleg");
    this.mie = int(s.mie, "mie");
    this.mipSw = int(s.mipSw, "mipSw");
    this.mipHw = int(s.mipHw, "mipHw");
    this.mip = this.mipSw | this.mipHw;
    this.mcounteren = int(s.mcounteren, "mcounteren");
    this.scounteren = int(s.scounteren, "scounteren");
    this.mcountinhibit = int(s.mcountinhibit, "mcountinhibit");
    this.menvcfgLo = int(s.menvcfg, "menvcfg");
    this.senvcfgLo = int(s.senvcfg, "senvcfg");
    this.satpMode = int(s.satp[0], "satp");
    this.satpPpn = int(s.satp[1], "satp");
    this.csrLo.fill(0);
    this.csrHi.fill(0);
    for (const e of s.csr) {
      if (!Array.isArray(e) || e.length !== 3)
        throw new Error("hart state: csr entries are [number, lo, hi]");
      const n = int(e[0], "csr number");
      if (n < 0 || n > 4095) throw new Error(`hart state: no CSR ${n}`);
      this.csrLo[n] = int(e[1], "csr");
      this.csrHi[n] = int(e[2], "csr");
    }
    this.fpu.loadState(s.fpu);
    if (s.h !== undefined) this.h!.fromState(s.h);
    this.executed = int(s.executed, "executed");
    this.runN = 0;
    this.runRef = 0;
    this.excInRun = 0;
    this.instretBase = int(s.instret, "instret");
    this.cycleBase = int(s.cycles, "cycles");
    this.resValid = false;
    this.privMode = int(s.priv, "priv");
    this.virtMode = s.virt === true;
    this.selectTlb();
    this.flushTlb();
    this.code.clear();
  }

  /** Drive an interrupt line: `bit` is the mip bit number (C.IRQ_*). */
  setIrq(bit: number, level: boolean): void {
    if (level) this.mipHw |= 1 << bit;
    else this.mipHw &= ~(1 << bit);
    this.mip = this.mipSw | this.mipHw;
    if (level && this.wfi && (this.mip & this.mie) !== 0) this.wfi = false;
  }

  /** Ask a running `run` to return at the next check (device callbacks). */
  requestStop(): void {
    this.stopRequested = true;
  }

  /** True when WFI would not wait: an interrupt is pending and enabled in mie (globally enabled or not). */
  interruptPending(): boolean {
    return (this.mip & this.mie) !== 0;
  }

  /** Drop every cached translation (satp/hgatp writes, sfence.vma, hfence). */
  flushTlb(): void {
    for (const t of this.tlbSets) t.flush();
    this.h?.flushGTlb();
    this.tlbFlushes++;
  }

  /**
   * Point the TLB fields at the set for the current translation context: data accesses
   * use the effective privilege (mstatus.MPRV), fetches the real one.
   */
  selectTlb(): void {
    let dp = this.priv;
    let dv = this.virt;
    const s = this.mstatus;
    if ((s & C.MSTATUS_MPRV) !== 0 && dp === C.PRV_M) {
      dp = (s >>> C.MSTATUS_MPP_SHIFT) & 3;
      dv = dp !== C.PRV_M && (this.mstatusHiBits & C.MSTATUSH_MPV) !== 0;
    }
    const sum = ((dv && this.h !== undefined ? this.h.vsstatus : s) & C.MSTATUS_SUM) !== 0;
    const d = this.tlbSets[tlbContext(dp, dv, sum)]!;
    const x = this.tlbSets[tlbContext(this.priv, this.virt, false)]!;
    this.rTagLo = d.rTagLo;
    this.rTagHi = d.rTagHi;
    this.rPage = d.rPage;
    this.wTagLo = d.wTagLo;
    this.wTagHi = d.wTagHi;
    this.wPage = d.wPage;
    this.xTagLo = x.xTagLo;
    this.xTagHi = x.xTagHi;
    this.xPage = x.xPage;
  }

  /** Drop write-TLB entries (in every set) that map a page now holding decoded instructions. */
  private dropWritePage(pageOff: number): void {
    for (const t of this.tlbSets) {
      const wp = t.wPage;
      const wt = t.wTagLo;
      for (let i = 0; i < TLB_SIZE; i++) if (wp[i] === pageOff) wt[i] = INVALID_TAG;
    }
  }

  // ---------------------------------------------------------------- status helpers

  mstatusHi(): number {
    const fs = (this.mstatus & C.MSTATUS_FS) === C.MSTATUS_FS;
    return 0xa | this.mstatusHiBits | (fs ? C.MSTATUSH_SD : 0) | 0;
  }

  /** FP loads and stores may skip the FS checks: the FPU is on and already Dirty. */
  private fpFast(): boolean {
    if ((this.mstatus & C.MSTATUS_FS) !== C.MSTATUS_FS) return false;
    return !this.virt || this.h === undefined || (this.h.vsstatus & C.MSTATUS_FS) === C.MSTATUS_FS;
  }

  /**
   * FP loads, stores and arithmetic when the FPU is on and already Dirty: arithmetic
   * straight to the Fpu, loads and stores on a TLB hit. False when the instruction needs
   * the general path (not FP, FS off or clean, an illegal encoding or rounding mode, a TLB
   * miss, a page-crossing access).
   */
  private fpFastPath(w: number, imm: number): boolean {
    const op = w & 0x7f;
    if (op < 74 || op > 78 || !this.fpFast()) return false;
    if (op === 78) return this.fpu.exec(imm, this.xlo, this.xhi);
    const r1 = (w >>> 16) & 0xff;
    const b = this.xlo[r1]!;
    const aLo = (b + imm) | 0;
    const aHi = (this.xhi[r1]! + (imm >> 31) + (aLo >>> 0 < b >>> 0 ? 1 : 0)) | 0;
    if ((aLo & 0xfff) > 4088) return false;
    const ti = (aLo >>> 12) & TLB_MASK;
    const tag = aLo & ~0xfff;
    const fw = this.fpu.w;
    const dv = this.ram.dv;
    if (op <= 75) {
      if (this.rTagLo[ti] !== tag || this.rTagHi[ti] !== aHi) return false;
      const o = this.rPage[ti]! + (aLo & 0xfff);
      const f = 2 * ((w >>> 8) & 0x1f);
      fw[f] = dv.getInt32(o, true);
      fw[f + 1] = op === 75 ? dv.getInt32(o + 4, true) : -1; // singles are NaN-boxed
      return true;
    }
    if (this.wTagLo[ti] !== tag || this.wTagHi[ti] !== aHi) return false;
    const o = this.wPage[ti]! + (aLo & 0xfff);
    const f = 2 * (w >>> 24);
    dv.setInt32(o, fw[f]!, true);
    if (op === 77) dv.setInt32(o + 4, fw[f + 1]!, true);
    return true;
  }

  private fsOff(): boolean {
    if ((this.mstatus & C.MSTATUS_FS) === 0) return true;
    return this.virt && this.h !== undefined && (this.h.vsstatus & C.MSTATUS_FS) === 0;
  }
  private fsDirty(): void {
    this.mstatus |= C.MSTATUS_FS;
    if (this.virt && this.h !== undefined) this.h.vsstatus |= C.MSTATUS_FS;
  }

  // ---------------------------------------------------------------- address translation

  /**
   * Translate the page of a virtual address for `access`. Returns the physical page
   * address (>= 0), or -cause on a fault (walk details in `walkRes`).
   */
  translate(aLo: number, aHi: number, access: Access): number {
    let priv = this.priv;
    let virt = this.virt;
    if (access !== ACCESS_EXEC && (this.mstatus & C.MSTATUS_MPRV) !== 0 && priv === C.PRV_M) {
      priv = (this.mstatus >>> C.MSTATUS_MPP_SHIFT) & 3;
      virt = priv !== C.PRV_M && (this.mstatusHiBits & C.MSTATUSH_MPV) !== 0;
    }
    if (virt && this.h !== undefined)
      return this.h.translateGuest(this, aLo, aHi, access, priv, this.walkRes);
    if (priv === C.PRV_M || this.satpMode === SATP_MODE_BARE) {
      if (aHi >>> 24 !== 0) return -accessFault(access);
      return aHi * 4294967296 + ((aLo & ~0xfff) >>> 0);
    }
    const res = this.walkRes;
    this.stats.walks++;
    const before = res.refs;
    const r = walkStage1(
      this.ram,
      this.satpMode,
      this.satpPpn,
      aHi,
      aLo,
      access,
      priv === C.PRV_U,
      (this.mstatus & C.MSTATUS_SUM) !== 0,
      (this.mstatus & C.MSTATUS_MXR) !== 0,
      res,
    );
    this.stats.walkRefs += res.refs - before;
    if (r !== 0) return -r;
    return res.pagePa;
  }

  /** Fetch-side translation of the pc's page: RAM offset of the page, or -1 after a trap. */
  private fetchPage(pcLo: number, pcHi: number): number {
    const ti = (pcLo >>> 12) & TLB_MASK;
    const tag = pcLo & ~0xfff;
    if (this.xTagLo[ti] === tag && this.xTagHi[ti] === pcHi) return this.xPage[ti]!;
    this.stats.tlbMisses++;
    const pa = this.translate(pcLo, pcHi, ACCESS_EXEC);
    if (pa < 0) {
      this.raise(-pa, pcLo, pcHi);
      return -1;
    }
    const ram = this.ram;
    if (pa < ram.base || pa + 4096 > ram.end) {
      this.raise(C.CAUSE_FETCH_ACCESS, pcLo, pcHi);
      return -1;
    }
    const off = pa - ram.base;
    this.xTagLo[ti] = tag;
    this.xTagHi[ti] = pcHi;
    this.xPage[ti] = off;
    return off;
  }

  /**
   * Load `size` bytes at (aHi, aLo) by the slow path (TLB miss, MMIO, page-crossing).
   * Raw bits land in ldLo/ldHi (zero-extended). Returns 0 after a trap, 1 for RAM, 2 for MMIO.
   */
  loadSlow(aLo: number, aHi: number, size: number): number {
    const off = aLo & 0xfff;
    if (off + size > 4096) return this.loadSplit(aLo, aHi, size);
    this.stats.tlbMisses++;
    const pa = this.translate(aLo, aHi, ACCESS_READ);
    if (pa < 0) {
      this.raise(-pa, aLo, aHi);
      return 0;
    }
    const ram = this.ram;
    if (pa >= ram.base && pa + 4096 <= ram.end) {
      const ti = (aLo >>> 12) & TLB_MASK;
      const po = pa - ram.base;
      this.rTagLo[ti] = aLo & ~0xfff;
      this.rTagHi[ti] = aHi;
      this.rPage[ti] = po;
      const dv = ram.dv;
      const o = po + off;
      switch (size) {
        case 1:
          this.ldLo = dv.getUint8(o);
          this.ldHi = 0;
          break;
        case 2:
          this.ldLo = dv.getUint16(o, true);
          this.ldHi = 0;
          break;
        case 4:
          this.ldLo = dv.getInt32(o, true);
          this.ldHi = 0;
          break;
        default:
          this.ldLo = dv.getInt32(o, true);
          this.ldHi = dv.getInt32(o + 4, true);
      }
      return 1;
    }
    const addr = pa + off;
    if ((off & (size - 1)) !== 0) {
      this.raise(C.CAUSE_LOAD_ACCESS, aLo, aHi);
      return 0;
    }
    this.stats.mmioReads++;
    if (size === 8) {
      const v = this.bus.read64(addr);
      if (v === undefined) {
        this.raise(C.CAUSE_LOAD_ACCESS, aLo, aHi);
        return 0;
      }
      this.ldLo = Number(BigInt.asIntN(32, v));
      this.ldHi = Number(BigInt.asIntN(32, v >> 32n));
      return 2;
    }
    const v = this.bus.read(addr, size as 1 | 2 | 4);
    if (v < 0) {
      this.raise(C.CAUSE_LOAD_ACCESS, aLo, aHi);
      return 0;
    }
    this.ldLo = v | 0;
    this.ldHi = 0;
    return 2;
  }

  private loadSplit(aLo: number, aHi: number, size: number): number {
    let lo = 0;
    let hi = 0;
    let kind = 1;
    for (let i = 0; i < size; i++) {
      const bLo = (aLo + i) | 0;
      const bHi = (aHi + (bLo >>> 0 < aLo >>> 0 ? 1 : 0)) | 0;
      const r = this.loadSlow(bLo, bHi, 1);
      if (r === 0) return 0;
      if (r === 2) kind = 2;
      if (i < 4) lo |= this.ldLo << (8 * i);
      else hi |= this.ldLo << (8 * (i - 4));
    }
    this.ldLo = lo;
    this.ldHi = hi;
    return kind;
  }

  /** Store by the slow path. Returns 0 after a trap, 1 for RAM, 2 for MMIO. */
  storeSlow(aLo: number, aHi: number, size: number, vLo: number, vHi: number): number {
    const off = aLo & 0xfff;
    if (off + size > 4096) return this.storeSplit(aLo, aHi, size, vLo, vHi);
    this.stats.tlbMisses++;
    const pa = this.translate(aLo, aHi, ACCESS_WRITE);
    if (pa < 0) {
      this.raise(-pa, aLo, aHi);
      return 0;
    }
    const ram = this.ram;
    if (pa >= ram.base && pa + 4096 <= ram.end) {
      const po = pa - ram.base;
      if (this.code.isCode(po)) this.code.invalidatePage(po);
      ram.logWrite(po);
      const ti = (aLo >>> 12) & TLB_MASK;
      this.wTagLo[ti] = aLo & ~0xfff;
      this.wTagHi[ti] = aHi;
      this.wPage[ti] = po;
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
      this.raise(C.CAUSE_STORE_ACCESS, aLo, aHi);
      return 0;
    }
    this.stats.mmioWrites++;
    const ok =
      size === 8
        ? this.bus.write64(addr, (BigInt(vHi >>> 0) << 32n) | BigInt(vLo >>> 0))
        : this.bus.write(
            addr,
            size as 1 | 2 | 4,
            size === 4 ? vLo >>> 0 : vLo & (size === 1 ? 0xff : 0xffff),
          );
    if (!ok) {
      this.raise(C.CAUSE_STORE_ACCESS, aLo, aHi);
      return 0;
    }
    return 2;
  }

  private storeSplit(aLo: number, aHi: number, size: number, vLo: number, vHi: number): number {
    // Check every byte's translation first so a fault leaves memory unchanged.
    for (let i = 0; i < size; i++) {
      const bLo = (aLo + i) | 0;
      const bHi = (aHi + (bLo >>> 0 < aLo >>> 0 ? 1 : 0)) | 0;
      const pa = this.translate(bLo, bHi, ACCESS_WRITE);
      if (pa < 0) {
        this.raise(-pa, bLo, bHi);
        return 0;
      }
    }
    let kind = 1;
    for (let i = 0; i < size; i++) {
      const bLo = (aLo + i) | 0;
      const bHi = (aHi + (bLo >>> 0 < aLo >>> 0 ? 1 : 0)) | 0;
      const byte = i < 4 ? vLo >>> (8 * i) : vHi >>> (8 * (i - 4));
      const r = this.storeSlow(bLo, bHi, 1, byte & 0xff, 0);
      if (r === 0) return 0;
      if (r === 2) kind = 2;
    }
    return kind;
  }

  /** Physical RAM offset for an AMO/LR/SC at (aHi, aLo), or -1 after a trap. */
  private amoAddr(aLo: number, aHi: number, size: number, access: Access): number {
    if ((aLo & (size - 1)) !== 0) {
      this.raise(access === ACCESS_READ ? C.CAUSE_MISALIGNED_LOAD : C.CAUSE_MISALIGNED_STORE, aLo, aHi);
      return -1;
    }
    // The TLBs hold RAM pages only, and a write-TLB page is never a code page and is
    // already in the dirty log: a hit needs no more checks.
    const ti = (aLo >>> 12) & TLB_MASK;
    const tag = aLo & ~0xfff;
    if (access === ACCESS_WRITE) {
      if (this.wTagLo[ti] === tag && this.wTagHi[ti] === aHi) return this.wPage[ti]! + (aLo & 0xfff);
    } else if (this.rTagLo[ti] === tag && this.rTagHi[ti] === aHi) {
      return this.rPage[ti]! + (aLo & 0xfff);
    }
    this.stats.tlbMisses++;
    const pa = this.translate(aLo, aHi, access);
    if (pa < 0) {
      this.raise(-pa, aLo, aHi);
      return -1;
    }
    const ram = this.ram;
    if (pa < ram.base || pa + 4096 > ram.end) {
      this.raise(access === ACCESS_READ ? C.CAUSE_LOAD_ACCESS : C.CAUSE_STORE_ACCESS, aLo, aHi);
      return -1;
    }
    const po = pa - ram.base;
    if (access === ACCESS_WRITE) {
      if (this.code.isCode(po)) this.code.invalidatePage(po);
      ram.logWrite(po);
      this.wTagLo[ti] = tag;
      this.wTagHi[ti] = aHi;
      this.wPage[ti] = po;
    } else {
      this.rTagLo[ti] = tag;
      this.rTagHi[ti] = aHi;
      this.rPage[ti] = po;
    }
    return po + (aLo & 0xfff);
  }

  // ---------------------------------------------------------------- traps

  /**
   * Take an exception (or, with `irq`, an interrupt) with trap value (tvalHi, tvalLo).
   * Updates pc/priv in `this`; when the target is one the host handles (exitMask), records
   * the exit instead and leaves the state untouched.
   */
  raise(cause: number, tvalLo: number, tvalHi: number, irq = false, tval2 = 0, tinst = 0): void {
    this.stats.traps++;
    if (!irq) this.excInRun++;
    const h = this.h;
    if (h?.raise(this, cause, tvalLo, tvalHi, irq, tval2, tinst)) return;
    const deleg = irq ? this.mideleg : this.medeleg;
    const toS = this.priv <= C.PRV_S && cause < 32 && ((deleg >>> cause) & 1) !== 0;
    if (toS) this.trapToS(cause, tvalLo, tvalHi, irq);
    else this.trapToM(cause, tvalLo, tvalHi, irq, tval2, tinst, false);
  }

  /** Enter HS/S-mode. */
  trapToS(cause: number, tvalLo: number, tvalHi: number, irq: boolean): void {
    this.enterS(false, cause, tvalLo, tvalHi, irq);
  }

  /**
   * An S-level trap entry: into HS/S-mode through sepc/scause/stval/stvec and mstatus, or
   * (`vs`) into VS-mode through the vs* CSRs and vsstatus (HExt.trapToVS).
   */
  enterS(vs: boolean, cause: number, tvalLo: number, tvalHi: number, irq: boolean): void {
    const L = this.csrLo;
    const H = this.csrHi;
    const epc = vs ? C.CSR_VSEPC : C.CSR_SEPC;
    const scause = vs ? C.CSR_VSCAUSE : C.CSR_SCAUSE;
    const stval = vs ? C.CSR_VSTVAL : C.CSR_STVAL;
    const stvec = vs ? C.CSR_VSTVEC : C.CSR_STVEC;
    L[epc] = this.pcLo;
    H[epc] = this.pcHi;
    L[scause] = cause;
    H[scause] = irq ? 0x80000000 | 0 : 0;
    L[stval] = tvalLo;
    H[stval] = tvalHi;
    let s = vs ? this.h!.vsstatus : this.mstatus;
    s = (s & C.MSTATUS_SIE) !== 0 ? s | C.MSTATUS_SPIE : s & ~C.MSTATUS_SPIE;
    s = this.priv === C.PRV_S ? s | C.MSTATUS_SPP : s & ~C.MSTATUS_SPP;
    s &= ~C.MSTATUS_SIE;
    if (vs) this.h!.vsstatus = s;
    else this.mstatus = s;
    this.setPriv(C.PRV_S);
    this.jumpVector(L[stvec]!, H[stvec]!, cause, irq);
  }

  /**
   * The status and pc half of SRET, the reverse of enterS: SIE from SPIE, SPIE set, the
   * privilege from SPP, the pc from sepc; from VS-mode (`vs`) through vsstatus and vsepc,
   * otherwise through mstatus (clearing MPRV) and sepc. The caller checks the privilege
   * and selects the TLB afterwards.
   */
  leaveS(vs: boolean): void {
    let s = vs ? this.h!.vsstatus : this.mstatus;
    const spp = (s & C.MSTATUS_SPP) !== 0 ? C.PRV_S : C.PRV_U;
    s = (s & C.MSTATUS_SPIE) !== 0 ? s | C.MSTATUS_SIE : s & ~C.MSTATUS_SIE;
    s |= C.MSTATUS_SPIE;
    s &= ~C.MSTATUS_SPP;
    if (vs) this.h!.vsstatus = s;
    else this.mstatus = s & ~C.MSTATUS_MPRV;
    const epc = vs ? C.CSR_VSEPC : C.CSR_SEPC;
    this.pcLo = this.csrLo[epc]!;
    this.pcHi = this.csrHi[epc]!;
    this.setPriv(spp);
  }

  trapToM(
    cause: number,
    tvalLo: number,
    tvalHi: number,
    irq: boolean,
    tval2: number,
    tinst: number,
    gva: boolean,
  ): void {
    if ((this.exitMask & EXIT_M) !== 0) {
      this.exitCause = irq ? cause | 0x80000000 : cause;
      this.exitTvalLo = tvalLo;
      this.exitTvalHi = tvalHi;
      this.exitInsn = tinst;
      this.stopExit = true;
      return;
    }
    const L = this.csrLo;
    const H = this.csrHi;
    L[C.CSR_MEPC] = this.pcLo;
    H[C.CSR_MEPC] = this.pcHi;
    L[C.CSR_MCAUSE] = cause;
    H[C.CSR_MCAUSE] = irq ? 0x80000000 | 0 : 0;
    L[C.CSR_MTVAL] = tvalLo;
    H[C.CSR_MTVAL] = tvalHi;
    L[C.CSR_MTVAL2] = (tval2 % 4294967296) | 0;
    H[C.CSR_MTVAL2] = Math.floor(tval2 / 4294967296);
    L[C.CSR_MTINST] = tinst;
    H[C.CSR_MTINST] = 0;
    let s = this.mstatus;
    s = (s & C.MSTATUS_MIE) !== 0 ? s | C.MSTATUS_MPIE : s & ~C.MSTATUS_MPIE;
    s = (s & ~C.MSTATUS_MPP) | (this.priv << C.MSTATUS_MPP_SHIFT);
    s &= ~C.MSTATUS_MIE;
    this.mstatus = s;
    if (this.hasH) {
      this.mstatusHiBits =
        (this.mstatusHiBits & ~(C.MSTATUSH_MPV | C.MSTATUSH_GVA)) |
        (this.virt ? C.MSTATUSH_MPV : 0) |
        (gva ? C.MSTATUSH_GVA : 0);
      if (this.virt) this.setVirt(false);
    }
    this.setPriv(C.PRV_M);
    this.jumpVector(L[C.CSR_MTVEC]!, H[C.CSR_MTVEC]!, cause, irq);
  }

  /** Set when a trap became a host exit during the current instruction. */
  stopExit = false;

  jumpVector(baseLo: number, baseHi: number, cause: number, irq: boolean): void {
    let lo = baseLo & ~3;
    let hi = baseHi;
    if (irq && (baseLo & 1) !== 0) {
      const t = (lo + 4 * cause) | 0;
      if (t >>> 0 < lo >>> 0) hi = (hi + 1) | 0;
      lo = t;
    }
    this.pcLo = lo;
    this.pcHi = hi;
  }

  setPriv(p: number): void {
    if (p !== this.privMode) this.priv = p;
  }

  setVirt(v: boolean): void {
    if (v !== this.virtMode) this.virt = v;
  }

  /** If an enabled interrupt is pending, take it and return true. */
  takeInterrupt(): boolean {
    const pend = this.mip & this.mie;
    const h = this.h;
    if (h !== undefined) {
      const irq = h.pendingInterrupt(this);
      if (irq < 0) return false;
      this.stats.interrupts++;
      this.raise(irq, 0, 0, true);
      return true;
    }
    if (pend === 0) return false;
    const mPend = pend & ~this.mideleg;
    const mEnabled = this.priv < C.PRV_M || (this.mstatus & C.MSTATUS_MIE) !== 0;
    let cand = mEnabled ? mPend : 0;
    if (cand === 0) {
      const sPend = pend & this.mideleg;
      const sEnabled = this.priv < C.PRV_S || (this.priv === C.PRV_S && (this.mstatus & C.MSTATUS_SIE) !== 0);
      cand = sEnabled ? sPend : 0;
    }
    if (cand === 0) return false;
    const irq = C.highestIrq(cand);
    if (irq < 0) return false;
    this.stats.interrupts++;
    this.raise(irq, 0, 0, true);
    return true;
  }

  // ---------------------------------------------------------------- CSRs

  /** Scratch result of csrRead. */
  cLo = 0;
  cHi = 0;

  /**
   * Read a CSR into cLo/cHi. Returns 0 on success, or the exception cause
   * (illegal instruction, or virtual instruction under the H extension).
   */
  csrRead(csr: number): number {
    if (this.h !== undefined) {
      const r = this.h.csrAccessCheck(this, csr, false);
      if (r >= 0) return r === 0 ? this.h.csrRead(this, csr) : r;
    }
    if (this.priv < ((csr >>> 8) & 3)) return C.CAUSE_ILLEGAL_INSTRUCTION;
    return this.csrReadRaw(csr);
  }

  csrReadRaw(csr: number): number {
    let lo = 0;
    let hi = 0;
    switch (csr) {
      case C.CSR_FFLAGS:
      case C.CSR_FRM:
      case C.CSR_FCSR:
        if (this.fsOff()) return C.CAUSE_ILLEGAL_INSTRUCTION;
        lo =
          csr === C.CSR_FFLAGS
            ? this.fpu.fflags
            : csr === C.CSR_FRM
              ? this.fpu.frm
              : (this.fpu.frm << 5) | this.fpu.fflags;
        break;
      case C.CSR_CYCLE:
      case C.CSR_TIME:
      case C.CSR_INSTRET: {
        if (!this.counterEnabled(csr & 31)) return C.CAUSE_ILLEGAL_INSTRUCTION;
        const v =
          csr === C.CSR_TIME
            ? this.time() + (this.h?.timeDelta(this) ?? 0)
            : csr === C.CSR_CYCLE
              ? this.cycles()
              : this.instret();
        lo = (v % 4294967296) | 0;
        hi = Math.floor(v / 4294967296) | 0;
        break;
      }
      case C.CSR_MCYCLE:
      case C.CSR_MINSTRET: {
        const v = csr === C.CSR_MCYCLE ? this.cycles() : this.instret();
        lo = (v % 4294967296) | 0;
        hi = Math.floor(v / 4294967296) | 0;
        break;
      }
      case C.CSR_SSTATUS:
        lo = this.mstatus & SSTATUS_MASK;
        hi = this.mstatusHi() & (C.MSTATUSH_UXL | C.MSTATUSH_SD);
        break;
      case C.CSR_SIE:
        lo = this.mie & this.mideleg;
        break;
      case C.CSR_SIP:
        lo = this.mip & this.mideleg;
        break;
      case C.CSR_SCOUNTEREN:
        lo = this.scounteren;
        break;
      case C.CSR_SENVCFG:
        lo = this.senvcfgLo;
        break;
      case C.CSR_SATP:
        if (this.priv === C.PRV_S && (this.mstatus & C.MSTATUS_TVM) !== 0) return C.CAUSE_ILLEGAL_INSTRUCTION;
        lo = this.csrLo[C.CSR_SATP]!;
        hi = this.csrHi[C.CSR_SATP]!;
        break;
      case C.CSR_MSTATUS:
        lo = this.mstatus;
        hi = this.mstatusHi();
        break;
      case C.CSR_MISA:
        lo = this.misaLo;
        hi = 0x80000000 | 0;
        break;
      case C.CSR_MEDELEG:
        lo = this.medeleg;
        break;
      case C.CSR_MIDELEG:
        lo = this.mideleg | (this.hasH ? C.MIP_VSSIP | C.MIP_VSTIP | C.MIP_VSEIP | C.MIP_SGEIP : 0);
        break;
      case C.CSR_MIE:
        lo = this.mie;
        break;
      case C.CSR_MIP:
        lo = this.mip;
        break;
      case C.CSR_MCOUNTEREN:
        lo = this.mcounteren;
        break;
      case C.CSR_MCOUNTINHIBIT:
        lo = this.mcountinhibit;
        break;
      case C.CSR_MENVCFG:
        lo = this.menvcfgLo;
        break;
      case C.CSR_MHARTID:
        lo = this.hartId;
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
        lo = this.csrLo[csr]!;
        hi = this.csrHi[csr]!;
        break;
      case C.CSR_TDATA1:
        break; // type 0: no trigger implemented
      case 0x7a2: // tdata2
      case 0x7a3: // tdata3
        lo = this.csrLo[csr]!;
        hi = this.csrHi[csr]!;
        break;
      case C.CSR_MTINST:
      case C.CSR_MTVAL2:
        if (!this.hasH) return C.CAUSE_ILLEGAL_INSTRUCTION;
        lo = this.csrLo[csr]!;
        hi = this.csrHi[csr]!;
        break;
      default:
        if (csr >= C.CSR_PMPCFG0 && csr <= C.CSR_PMPCFG0 + 15) {
          if ((csr & 1) !== 0) return C.CAUSE_ILLEGAL_INSTRUCTION; // odd pmpcfg don't exist on RV64
          lo = this.csrLo[csr]!;
          hi = this.csrHi[csr]!;
        } else if (csr >= C.CSR_PMPADDR0 && csr <= C.CSR_PMPADDR0 + 63) {
          lo = this.csrLo[csr]!;
          hi = this.csrHi[csr]!;
        } else if (csr >= 0xc03 && csr <= 0xc1f) {
          if (!this.counterEnabled(csr & 31)) return C.CAUSE_ILLEGAL_INSTRUCTION;
        } else if ((csr >= 0xb03 && csr <= 0xb1f) || (csr >= 0x323 && csr <= 0x33f)) {
          // mhpmcounter3..31 and mhpmevent3..31: present, hard-wired to zero
        } else {
          return C.CAUSE_ILLEGAL_INSTRUCTION;
        }
    }
    this.cLo = lo;
    this.cHi = hi;
    return 0;
  }

  private counterEnabled(bit: number): boolean {
    if (this.priv < C.PRV_M && ((this.mcounteren >>> bit) & 1) === 0) return false;
    if (this.priv < C.PRV_S && ((this.scounteren >>> bit) & 1) === 0) return false;
    return true;
  }

  /** Write a CSR. Returns 0, or the exception cause. The privilege check was done by the caller. */
  csrWrite(csr: number, lo: number, hi: number): number {
    if (csr >>> 10 === 3) return C.CAUSE_ILLEGAL_INSTRUCTION;
    if (this.h !== undefined) {
      const r = this.h.csrAccessCheck(this, csr, true);
      if (r >= 0) return r === 0 ? this.h.csrWrite(this, csr, lo, hi) : r;
    }
    return this.csrWriteRaw(csr, lo, hi);
  }

  csrWriteRaw(csr: number, lo: number, hi: number): number {
    switch (csr) {
      case C.CSR_FFLAGS:
        if (this.fsOff()) return C.CAUSE_ILLEGAL_INSTRUCTION;
        this.fpu.fflags = lo & 0x1f;
        this.fsDirty();
        break;
      case C.CSR_FRM:
        if (this.fsOff()) return C.CAUSE_ILLEGAL_INSTRUCTION;
        this.fpu.frm = lo & 7;
        this.fsDirty();
        break;
      case C.CSR_FCSR:
        if (this.fsOff()) return C.CAUSE_ILLEGAL_INSTRUCTION;
        this.fpu.fflags = lo & 0x1f;
        this.fpu.frm = (lo >>> 5) & 7;
        this.fsDirty();
        break;
      case C.CSR_SSTATUS:
        this.writeMstatus((this.mstatus & ~SSTATUS_MASK) | (lo & SSTATUS_MASK), this.mstatusHiBits);
        break;
      case C.CSR_SIE:
        this.mie = (this.mie & ~this.mideleg) | (lo & this.mideleg);
        break;
      case C.CSR_SIP: {
        const m = this.mideleg & C.MIP_SSIP;
        this.mipSw = (this.mipSw & ~m) | (lo & m);
        this.mip = this.mipSw | this.mipHw;
        break;
      }
      case C.CSR_SCOUNTEREN:
        this.scounteren = lo & 7;
        break;
      case C.CSR_SENVCFG:
        this.senvcfgLo = lo & 1;
        break;
      case C.CSR_SATP: {
        if (this.priv === C.PRV_S && (this.mstatus & C.MSTATUS_TVM) !== 0) return C.CAUSE_ILLEGAL_INSTRUCTION;
        const mode = hi >>> 28;
        if (
          mode !== SATP_MODE_BARE &&
          mode !== SATP_MODE_SV39 &&
          mode !== SATP_MODE_SV48 &&
          mode !== SATP_MODE_SV57
        )
          break; // unsupported mode: the write has no effect (priv spec §4.1.11)
        this.csrLo[C.CSR_SATP] = lo;
        this.csrHi[C.CSR_SATP] = hi;
        this.satpMode = mode;
        this.satpPpn = (hi & 0xfff) * 4294967296 + (lo >>> 0);
        this.flushTlb();
        break;
      }
      case C.CSR_STVEC:
      case C.CSR_MTVEC:
        this.csrLo[csr] = lo & ~2;
        this.csrHi[csr] = hi;
        break;
      case C.CSR_SEPC:
      case C.CSR_MEPC:
        this.csrLo[csr] = lo & ~1;
        this.csrHi[csr] = hi;
        break;
      case C.CSR_SSCRATCH:
      case C.CSR_SCAUSE:
      case C.CSR_STVAL:
      case C.CSR_MSCRATCH:
      case C.CSR_MCAUSE:
      case C.CSR_MTVAL:
        this.csrLo[csr] = lo;
        this.csrHi[csr] = hi;
        break;
      case C.CSR_MSTATUS:
        this.writeMstatus(lo, this.hasH ? hi & (C.MSTATUSH_MPV | C.MSTATUSH_GVA) : 0);
        break;
      case C.CSR_MISA:
        break; // read-only here (WARL with no writable fields)
      case C.CSR_MEDELEG:
        this.medeleg = lo & (this.hasH ? MEDELEG_MASK | (1 << 10) | (0xf << 20) : MEDELEG_MASK);
        break;
      case C.CSR_MIDELEG:
        this.mideleg = lo & MIDELEG_MASK;
        break;
      case C.CSR_MIE:
        this.mie = lo & (MIE_MASK | (this.hasH ? C.MIP_VSSIP | C.MIP_VSTIP | C.MIP_VSEIP | C.MIP_SGEIP : 0));
        break;
      case C.CSR_MIP: {
        const m = C.MIP_SSIP | C.MIP_STIP | C.MIP_SEIP | (this.hasH ? C.MIP_VSSIP : 0);
        this.mipSw = (this.mipSw & ~m) | (lo & m);
        this.mip = this.mipSw | this.mipHw;
        break;
      }
      case C.CSR_MCOUNTEREN:
        this.mcounteren = lo & 7;
        break;
      case C.CSR_MCOUNTINHIBIT:
        this.foldCounters(false);
        this.mcountinhibit = lo & ~2;
        break;
      case C.CSR_MENVCFG:
        this.menvcfgLo = lo & 1;
        break;
      case C.CSR_MCYCLE:
      case C.CSR_MINSTRET:
        this.foldCounters(true);
        if (csr === C.CSR_MCYCLE) this.cycleBase = hi * 4294967296 + (lo >>> 0);
        else this.instretBase = hi * 4294967296 + (lo >>> 0);
        break;
      case C.CSR_TSELECT:
        break; // no triggers: tselect reads 0 whatever is written
      case C.CSR_TDATA1:
        break; // type 0: no trigger implemented
      case 0x7a2: // tdata2
      case 0x7a3: // tdata3
        lo = this.csrLo[csr]!;
        hi = this.csrHi[csr]!;
        break;
      case C.CSR_MTINST:
      case C.CSR_MTVAL2:
        if (!this.hasH) return C.CAUSE_ILLEGAL_INSTRUCTION;
        this.csrLo[csr] = lo;
        this.csrHi[csr] = hi;
        break;
      default:
        if (csr >= C.CSR_PMPCFG0 && csr <= C.CSR_PMPCFG0 + 15) {
          if ((csr & 1) !== 0) return C.CAUSE_ILLEGAL_INSTRUCTION;
          this.csrLo[csr] = lo;
          this.csrHi[csr] = hi;
        } else if (csr >= C.CSR_PMPADDR0 && csr <= C.CSR_PMPADDR0 + 63) {
          this.csrLo[csr] = lo;
          this.csrHi[csr] = hi & 0x3fffff;
        } else if ((csr >= 0xb03 && csr <= 0xb1f) || (csr >= 0x323 && csr <= 0x33f)) {
          // hard-wired zero
        } else {
          return C.CAUSE_ILLEGAL_INSTRUCTION;
        }
    }
    return 0;
  }

  writeMstatus(lo: number, hiBits: number): void {
    let v = (this.mstatus & ~MSTATUS_WMASK) | (lo & MSTATUS_WMASK);
    if ((v & C.MSTATUS_MPP) >>> C.MSTATUS_MPP_SHIFT === 2)
      v = (v & ~C.MSTATUS_MPP) | (this.mstatus & C.MSTATUS_MPP);
    const old = this.mstatus;
    this.mstatus = v;
    this.mstatusHiBits = hiBits;
    if (((old ^ v) & C.MSTATUS_MXR) !== 0) this.flushTlb();
    this.selectTlb();
  }

  /** Execute a Zicsr instruction (raw bits). Returns 0 or an exception cause. */
  execCsr(raw: number): number {
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
      srcLo = this.xlo[rs1]!;
      srcHi = this.xhi[rs1]!;
    }
    const op = f3 & 3; // 1 = RW, 2 = RS, 3 = RC
    const writes = op === 1 || rs1 !== 0;
    if (op === 1 && rd === 0) {
      // csrrw with rd = x0 does not read
      const r = this.csrAccess(csr, true);
      if (r !== 0) return r;
      return this.csrWrite(csr, srcLo, srcHi);
    }
    const r = this.csrRead(csr);
    if (r !== 0) return r;
    const oldLo = this.cLo;
    const oldHi = this.cHi;
    if (writes) {
      if (csr >>> 10 === 3) return C.CAUSE_ILLEGAL_INSTRUCTION;
      let nLo = srcLo;
      let nHi = srcHi;
      if (op === 2) {
        nLo = oldLo | srcLo;
        nHi = oldHi | srcHi;
      } else if (op === 3) {
        nLo = oldLo & ~srcLo;
        nHi = oldHi & ~srcHi;
      }
      const w = this.csrWrite(csr, nLo, nHi);
      if (w !== 0) return w;
    }
    if (rd !== 0) {
      this.xlo[rd] = oldLo;
      this.xhi[rd] = oldHi;
    }
    return 0;
  }

  /** Privilege check for a CSR write without a read. */
  private csrAccess(csr: number, _write: boolean): number {
    if (this.h !== undefined) {
      const r = this.h.csrAccessCheck(this, csr, true);
      if (r > 0) return r;
      if (r === 0) return 0;
    }
    if (this.priv < ((csr >>> 8) & 3)) return C.CAUSE_ILLEGAL_INSTRUCTION;
    // Probe existence by reading (no side effects for any CSR here).
    return this.csrReadRaw(csr);
  }

  // ---------------------------------------------------------------- system instructions

  /** mret/sret/wfi/sfence etc.; returns 0 or an exception cause. pc already advanced for non-returns. */
  execSystem(op: number, w: number, raw: number): number {
    switch (op) {
      case D.OP_MRET: {
        if (this.priv < C.PRV_M) return C.CAUSE_ILLEGAL_INSTRUCTION;
        let s = this.mstatus;
        const mpp = (s >>> C.MSTATUS_MPP_SHIFT) & 3;
        s = (s & C.MSTATUS_MPIE) !== 0 ? s | C.MSTATUS_MIE : s & ~C.MSTATUS_MIE;
        s |= C.MSTATUS_MPIE;
        s &= ~C.MSTATUS_MPP;
        if (mpp !== C.PRV_M) s &= ~C.MSTATUS_MPRV;
        this.mstatus = s;
        const mpv = (this.mstatusHiBits & C.MSTATUSH_MPV) !== 0 && mpp !== C.PRV_M;
        this.mstatusHiBits &= ~C.MSTATUSH_MPV;
        this.pcLo = this.csrLo[C.CSR_MEPC]!;
        this.pcHi = this.csrHi[C.CSR_MEPC]!;
        this.setPriv(mpp);
        if (this.hasH) this.setVirt(mpv);
        this.selectTlb();
        return 0;
      }
      case D.OP_SRET: {
        if (this.h !== undefined) return this.h.sret(this);
        if (this.priv < C.PRV_S) return C.CAUSE_ILLEGAL_INSTRUCTION;
        if (this.priv === C.PRV_S && (this.mstatus & C.MSTATUS_TSR) !== 0) return C.CAUSE_ILLEGAL_INSTRUCTION;
        this.leaveS(false);
        this.selectTlb();
        return 0;
      }
      case D.OP_WFI: {
        if (this.h !== undefined) {
          const r = this.h.wfiCheck(this);
          if (r !== 0) return r;
        } else if (this.priv === C.PRV_U || (this.priv === C.PRV_S && (this.mstatus & C.MSTATUS_TW) !== 0)) {
          return C.CAUSE_ILLEGAL_INSTRUCTION;
        }
        return 0;
      }
      case D.OP_SFENCE_VMA: {
        if (this.h !== undefined) {
          const r = this.h.sfenceCheck(this);
          if (r !== 0) return r;
        } else if (this.priv === C.PRV_U || (this.priv === C.PRV_S && (this.mstatus & C.MSTATUS_TVM) !== 0)) {
          return C.CAUSE_ILLEGAL_INSTRUCTION;
        }
        this.flushTlb();
        return 0;
      }
      default:
        if (this.h !== undefined) return this.h.execOther(this, op, w, raw);
        return C.CAUSE_ILLEGAL_INSTRUCTION;
    }
  }

  /** The raw bits of the instruction at the pc (for mtval on illegal instructions). */
  rawInsnAt(pcLo: number, pcHi: number): number {
    const save = this.stats.traps;
    const p = this.translate(pcLo, pcHi, ACCESS_EXEC);
    this.stats.traps = save;
    if (p < 0) return 0;
    const ram = this.ram;
    const pa = p + (pcLo & 0xfff);
    if (pa < ram.base || pa + 2 > ram.end) return 0;
    const lo16 = ram.dv.getUint16(pa - ram.base, true);
    if ((lo16 & 3) !== 3) return lo16;
    if ((pcLo & 0xfff) === 0xffe) {
      const nLo = (pcLo + 2) | 0;
      const p2 = this.translate(nLo, nLo === 0 ? (pcHi + 1) | 0 : pcHi, ACCESS_EXEC);
      if (p2 < 0 || p2 < ram.base || p2 >= ram.end) return lo16;
      return lo16 | (ram.dv.getUint16(p2 - ram.base, true) << 16);
    }
    if (pa + 4 > ram.end) return lo16;
    return ram.dv.getInt32(pa - ram.base, true);
  }

  private illegal(pcLo: number, pcHi: number, cause = C.CAUSE_ILLEGAL_INSTRUCTION): void {
    this.pcLo = pcLo;
    this.pcHi = pcHi;
    const raw = this.rawInsnAt(pcLo, pcHi);
    this.raise(
      cause,
      cause === C.CAUSE_ILLEGAL_INSTRUCTION || cause === C.CAUSE_VIRTUAL_INSTRUCTION ? raw : 0,
      0,
      false,
      0,
      raw,
    );
  }

  // ---------------------------------------------------------------- AMO

  private execAmo(w: number, raw: number, isD: boolean): number {
    const rd = (w >>> 8) & 0xff;
    const rs1 = (w >>> 16) & 0xff;
    const rs2 = w >>> 24;
    const f5 = raw >>> 27;
    const xlo = this.xlo;
    const xhi = this.xhi;
    const aLo = xlo[rs1]!;
    const aHi = xhi[rs1]!;
    const size = isD ? 8 : 4;
    const dv = this.ram.dv;
    if (f5 === 2) {
      // LR
      const o = this.amoAddr(aLo, aHi, size, ACCESS_READ);
      if (o < 0) return -1;
      const lo = dv.getInt32(o, true);
      xlo[rd] = lo;
      xhi[rd] = isD ? dv.getInt32(o + 4, true) : lo >> 31;
      this.resValid = true;
      this.resLo = aLo;
      this.resHi = aHi;
      return 0;
    }
    if (f5 === 3) {
      // SC
      const ok = this.resValid && this.resLo === aLo && this.resHi === aHi;
      this.resValid = false;
      if (!ok) {
        if ((aLo & (size - 1)) !== 0) {
          this.raise(C.CAUSE_MISALIGNED_STORE, aLo, aHi);
          return -1;
        }
        xlo[rd] = 1;
        xhi[rd] = 0;
        return 0;
      }
      const o = this.amoAddr(aLo, aHi, size, ACCESS_WRITE);
      if (o < 0) return -1;
      dv.setInt32(o, xlo[rs2]!, true);
      if (isD) dv.setInt32(o + 4, xhi[rs2]!, true);
      xlo[rd] = 0;
      xhi[rd] = 0;
      return 0;
    }
    const o = this.amoAddr(aLo, aHi, size, ACCESS_WRITE);
    if (o < 0) return -1;
    const oLo = dv.getInt32(o, true);
    const oHi = isD ? dv.getInt32(o + 4, true) : oLo >> 31;
    const bLo = xlo[rs2]!;
    const bHi = isD ? xhi[rs2]! : bLo >> 31;
    let nLo: number;
    let nHi: number;
    switch (f5) {
      case 1: // swap
        nLo = bLo;
        nHi = bHi;
        break;
      case 0: {
        // add
        nLo = (oLo + bLo) | 0;
        nHi = (oHi + bHi + (nLo >>> 0 < oLo >>> 0 ? 1 : 0)) | 0;
        break;
      }
      case 4:
        nLo = oLo ^ bLo;
        nHi = oHi ^ bHi;
        break;
      case 12:
        nLo = oLo & bLo;
        nHi = oHi & bHi;
        break;
      case 8:
        nLo = oLo | bLo;
        nHi = oHi | bHi;
        break;
      case 16:
      case 20: {
        // min / max (signed)
        const less = isD ? oHi < bHi || (oHi === bHi && oLo >>> 0 < bLo >>> 0) : oLo < bLo;
        const pickOld = f5 === 16 ? less : !less;
        nLo = pickOld ? oLo : bLo;
        nHi = pickOld ? oHi : bHi;
        break;
      }
      case 24:
      case 28: {
        // minu / maxu
        const less = isD
          ? oHi >>> 0 < bHi >>> 0 || (oHi === bHi && oLo >>> 0 < bLo >>> 0)
          : oLo >>> 0 < bLo >>> 0;
        const pickOld = f5 === 24 ? less : !less;
        nLo = pickOld ? oLo : bLo;
        nHi = pickOld ? oHi : bHi;
        break;
      }
      default:
        return -2;
    }
    dv.setInt32(o, nLo, true);
    if (isD) dv.setInt32(o + 4, nHi, true);
    xlo[rd] = oLo;
    xhi[rd] = oHi;
    return 0;
  }

  // ---------------------------------------------------------------- the interpreter

  /**
   * Run up to `budget` instructions. Returns STOP_BUDGET, STOP_WFI, STOP_EXIT or
   * STOP_REQUESTED.
   */
  run(budget: number): number {
    this.resValid = false;
    this.stopExit = false;
    this.stopRequested = false;
    if (this.wfi) {
      if (!this.interruptPending()) return STOP_WFI;
      this.wfi = false;
    }
    const xlo = this.xlo;
    const xhi = this.xhi;
    const dv = this.ram.dv;
    let rTagLo = this.rTagLo;
    let rTagHi = this.rTagHi;
    let rPage = this.rPage;
    let wTagLo = this.wTagLo;
    let wTagHi = this.wTagHi;
    let wPage = this.wPage;
    const code = this.code;
    let pcLo = this.pcLo;
    let pcHi = this.pcHi;
    let curLo = INVALID_TAG;
    let curHi = 0;
    let curOff = 0;
    let dec = emptyPage;
    let gen = code.generation;
    let n = 0;
    let stop = STOP_BUDGET;
    this.runN = 0;

    let limit = 0;
    for (;;) {
      if (n >= limit) {
        // Between slices of straight-line execution: interrupts, exits, stop requests.
        this.pcLo = pcLo;
        this.pcHi = pcHi;
        this.runN = n;
        if (this.stopExit) {
          stop = STOP_EXIT;
          break;
        }
        if (this.stopRequested) {
          stop = STOP_REQUESTED;
          break;
        }
        if (this.wfi) {
          stop = STOP_WFI;
          break;
        }
        if ((this.mip !== 0 || this.h !== undefined) && this.takeInterrupt()) {
          if (this.stopExit) {
            stop = STOP_EXIT;
            break;
          }
          pcLo = this.pcLo;
          pcHi = this.pcHi;
          curLo = INVALID_TAG;
        }
        if (n >= budget) break;
        rTagLo = this.rTagLo;
        rTagHi = this.rTagHi;
        rPage = this.rPage;
        wTagLo = this.wTagLo;
        wTagHi = this.wTagHi;
        wPage = this.wPage;
        if (code.generation !== gen) {
          gen = code.generation;
          curLo = INVALID_TAG;
        }
        limit = budget;
        continue;
      }
      if ((pcLo & ~0xfff) !== curLo || pcHi !== curHi) {
        if (curLo !== INVALID_TAG && pcHi === curHi) {
          // Sequential flow or a short branch crossed a 4 GiB boundary of the low word.
          const np = pcLo & ~0xfff;
          if (curLo === (0xfffff000 | 0) && np === 0) pcHi = (pcHi + 1) | 0;
          else if (curLo === 0 && np === (0xfffff000 | 0)) pcHi = (pcHi - 1) | 0;
        }
        this.pcLo = pcLo;
        this.pcHi = pcHi;
        const off = this.fetchPage(pcLo, pcHi);
        if (off < 0) {
          pcLo = this.pcLo;
          pcHi = this.pcHi;
          curLo = INVALID_TAG;
          limit = n;
          continue;
        }
        curLo = pcLo & ~0xfff;
        curHi = pcHi;
        curOff = off;
        dec = code.page(off);
        gen = code.generation;
      }
      const slot = pcLo & 0xffe;
      let w = dec[slot]!;
      let imm = dec[slot + 1]!;
      if (w === 0) {
        const po = pcLo & 0xfff;
        const h = dv.getUint16(curOff + po, true);
        if ((h & 3) !== 3) {
          w = D.decode16(h);
        } else if (po !== 0xffe) {
          w = D.decode32(dv.getInt32(curOff + po, true));
        } else {
          // A 32-bit instruction straddling two pages: decode it every time, never cache.
          const nLo = (pcLo + 2) | 0;
          const nHi = nLo === 0 ? (pcHi + 1) | 0 : pcHi;
          this.pcLo = pcLo;
          this.pcHi = pcHi;
          const pa = this.translate(nLo, nHi, ACCESS_EXEC);
          const ram = this.ram;
          if (pa < 0 || pa < ram.base || pa + 4096 > ram.end) {
            this.raise(pa < 0 ? -pa : C.CAUSE_FETCH_ACCESS, nLo, nHi);
            pcLo = this.pcLo;
            pcHi = this.pcHi;
            curLo = INVALID_TAG;
            limit = n;
            continue;
          }
          // Not cached: it is decoded again each time it runs.
          w = D.decode32(h | (dv.getUint16(pa - ram.base, true) << 16));
        }
        imm = D.decodedImm;
        if ((h & 3) !== 3 || po !== 0xffe) {
          dec[slot] = w;
          dec[slot + 1] = imm;
        }
      }
      n++;
      const rd = (w >>> 8) & 0xff;
      switch (w & 0x7f) {
        case 22 /* OP_ADDI */:
          {
            const r1 = (w >>> 16) & 0xff;
            const a = xlo[r1]!;
            const lo = (a + imm) | 0;
            xhi[rd] = (xhi[r1]! + (imm >> 31) + (lo >>> 0 < a >>> 0 ? 1 : 0)) | 0;
            xlo[rd] = lo;
            break;
          }
        case 82 /* OP_LI */:
          xlo[rd] = imm;
          xhi[rd] = imm >> 31;
          break;
        case 83 /* OP_MV */:
          {
            const r2 = w >>> 24;
            xlo[rd] = xlo[r2]!;
            xhi[rd] = xhi[r2]!;
            break;
          }
        case 84 /* OP_NOP */:
        case 63 /* OP_FENCE */:
        case 64 /* OP_FENCE_I */:
          break;
        case 1 /* OP_LUI */:
          xlo[rd] = imm;
          xhi[rd] = imm >> 31;
          break;
        case 2 /* OP_AUIPC */:
          {
            const lo = (pcLo + imm) | 0;
            xhi[rd] = (pcHi + (imm >> 31) + (lo >>> 0 < pcLo >>> 0 ? 1 : 0)) | 0;
            xlo[rd] = lo;
            break;
          }
        case 3 /* OP_JAL */:
          {
            const len = 4 - ((w >>> 6) & 2);
            const ret = (pcLo + len) | 0;
            const retHi = (pcHi + (ret >>> 0 < pcLo >>> 0 ? 1 : 0)) | 0;
            const t = (pcLo + imm) | 0;
            pcHi = (pcHi + (imm >> 31) + (t >>> 0 < pcLo >>> 0 ? 1 : 0)) | 0;
            pcLo = t;
            xlo[rd] = ret;
            xhi[rd] = retHi;
            continue;
          }
        case 4 /* OP_JALR */:
          {
            const len = 4 - ((w >>> 6) & 2);
            const r1 = (w >>> 16) & 0xff;
            const a = xlo[r1]!;
            const t = ((a + imm) | 0) & ~1;
            const tHi = (xhi[r1]! + (imm >> 31) + (((a + imm) | 0) >>> 0 < a >>> 0 ? 1 : 0)) | 0;
            const ret = (pcLo + len) | 0;
            xhi[rd] = (pcHi + (ret >>> 0 < pcLo >>> 0 ? 1 : 0)) | 0;
            xlo[rd] = ret;
            pcLo = t;
            pcHi = tHi;
            curLo = INVALID_TAG; // a far jump: the carry rule above must not apply
            continue;
          }
        case 5 /* OP_BEQ */:
          {
            const r1 = (w >>> 16) & 0xff;
            const r2 = w >>> 24;
            if (xlo[r1] === xlo[r2] && xhi[r1] === xhi[r2]) {
              const t = (pcLo + imm) | 0;
              pcHi = (pcHi + (imm >> 31) + (t >>> 0 < pcLo >>> 0 ? 1 : 0)) | 0;
              pcLo = t;
              continue;
            }
            break;
          }
        case 6 /* OP_BNE */:
          {
            const r1 = (w >>> 16) & 0xff;
            const r2 = w >>> 24;
            if (xlo[r1] !== xlo[r2] || xhi[r1] !== xhi[r2]) {
              const t = (pcLo + imm) | 0;
              pcHi = (pcHi + (imm >> 31) + (t >>> 0 < pcLo >>> 0 ? 1 : 0)) | 0;
              pcLo = t;
              continue;
            }
            break;
          }
        case 7 /* OP_BLT */:
          {
            const r1 = (w >>> 16) & 0xff;
            const r2 = w >>> 24;
            const h1 = xhi[r1]!;
            const h2 = xhi[r2]!;
            if (h1 < h2 || (h1 === h2 && xlo[r1]! >>> 0 < xlo[r2]! >>> 0)) {
              const t = (pcLo + imm) | 0;
              pcHi = (pcHi + (imm >> 31) + (t >>> 0 < pcLo >>> 0 ? 1 : 0)) | 0;
              pcLo = t;
              continue;
            }
            break;
          }
        case 8 /* OP_BGE */:
          {
            const r1 = (w >>> 16) & 0xff;
            const r2 = w >>> 24;
            const h1 = xhi[r1]!;
            const h2 = xhi[r2]!;
            if (h1 > h2 || (h1 === h2 && xlo[r1]! >>> 0 >= xlo[r2]! >>> 0)) {
              const t = (pcLo + imm) | 0;
              pcHi = (pcHi + (imm >> 31) + (t >>> 0 < pcLo >>> 0 ? 1 : 0)) | 0;
              pcLo = t;
              continue;
            }
            break;
          }
        case 9 /* OP_BLTU */:
          {
            const r1 = (w >>> 16) & 0xff;
            const r2 = w >>> 24;
            const h1 = xhi[r1]! >>> 0;
            const h2 = xhi[r2]! >>> 0;
            if (h1 < h2 || (h1 === h2 && xlo[r1]! >>> 0 < xlo[r2]! >>> 0)) {
              const t = (pcLo + imm) | 0;
              pcHi = (pcHi + (imm >> 31) + (t >>> 0 < pcLo >>> 0 ? 1 : 0)) | 0;
              pcLo = t;
              continue;
            }
            break;
          }
        case 10 /* OP_BGEU */:
          {
            const r1 = (w >>> 16) & 0xff;
            const r2 = w >>> 24;
            const h1 = xhi[r1]! >>> 0;
            const h2 = xhi[r2]! >>> 0;
            if (h1 > h2 || (h1 === h2 && xlo[r1]! >>> 0 >= xlo[r2]! >>> 0)) {
              const t = (pcLo + imm) | 0;
              pcHi = (pcHi + (imm >> 31) + (t >>> 0 < pcLo >>> 0 ? 1 : 0)) | 0;
              pcLo = t;
              continue;
            }
            break;
          }
        case 11 /* OP_LB */:
          {
            const r1 = (w >>> 16) & 0xff;
            const b = xlo[r1]!;
            const aLo = (b + imm) | 0;
            const aHi = (xhi[r1]! + (imm >> 31) + (aLo >>> 0 < b >>> 0 ? 1 : 0)) | 0;
            const ti = (aLo >>> 12) & TLB_MASK;
            let lo: number;
            let hi: number;
            if (rTagLo[ti] === (aLo & ~0xfff) && rTagHi[ti] === aHi && (aLo & 0xfff) <= 4095) {
              const o = rPage[ti]! + (aLo & 0xfff);
              lo = dv.getInt8(o);
              hi = lo >> 31;
            } else {
              this.pcLo = pcLo;
              this.pcHi = pcHi;
              this.lastW = w;
              const r = this.loadSlow(aLo, aHi, 1);
              if (r === 0) {
                pcLo = this.pcLo;
                pcHi = this.pcHi;
                curLo = INVALID_TAG;
                limit = n;
                continue;
              }
              if (r === 2) limit = n;
              lo = (this.ldLo << 24) >> 24;
              hi = lo >> 31;
            }
            xlo[rd] = lo;
            xhi[rd] = hi;
            break;
          }
        case 12 /* OP_LH */:
          {
            const r1 = (w >>> 16) & 0xff;
            const b = xlo[r1]!;
            const aLo = (b + imm) | 0;
            const aHi = (xhi[r1]! + (imm >> 31) + (aLo >>> 0 < b >>> 0 ? 1 : 0)) | 0;
            const ti = (aLo >>> 12) & TLB_MASK;
            let lo: number;
            let hi: number;
            if (rTagLo[ti] === (aLo & ~0xfff) && rTagHi[ti] === aHi && (aLo & 0xfff) <= 4094) {
              const o = rPage[ti]! + (aLo & 0xfff);
              lo = dv.getInt16(o, true);
              hi = lo >> 31;
            } else {
              this.pcLo = pcLo;
              this.pcHi = pcHi;
              this.lastW = w;
              const r = this.loadSlow(aLo, aHi, 2);
              if (r === 0) {
                pcLo = this.pcLo;
                pcHi = this.pcHi;
                curLo = INVALID_TAG;
                limit = n;
                continue;
              }
              if (r === 2) limit = n;
              lo = (this.ldLo << 16) >> 16;
              hi = lo >> 31;
            }
            xlo[rd] = lo;
            xhi[rd] = hi;
            break;
          }
        case 13 /* OP_LW */:
          {
            const r1 = (w >>> 16) & 0xff;
            const b = xlo[r1]!;
            const aLo = (b + imm) | 0;
            const aHi = (xhi[r1]! + (imm >> 31) + (aLo >>> 0 < b >>> 0 ? 1 : 0)) | 0;
            const ti = (aLo >>> 12) & TLB_MASK;
            let lo: number;
            let hi: number;
            if (rTagLo[ti] === (aLo & ~0xfff) && rTagHi[ti] === aHi && (aLo & 0xfff) <= 4092) {
              const o = rPage[ti]! + (aLo & 0xfff);
              lo = dv.getInt32(o, true);
              hi = lo >> 31;
            } else {
              this.pcLo = pcLo;
              this.pcHi = pcHi;
              this.lastW = w;
              const r = this.loadSlow(aLo, aHi, 4);
              if (r === 0) {
                pcLo = this.pcLo;
                pcHi = this.pcHi;
                curLo = INVALID_TAG;
                limit = n;
                continue;
              }
              if (r === 2) limit = n;
              lo = this.ldLo;
              hi = lo >> 31;
            }
            xlo[rd] = lo;
            xhi[rd] = hi;
            break;
          }
        case 14 /* OP_LD */:
          {
            const r1 = (w >>> 16) & 0xff;
            const b = xlo[r1]!;
            const aLo = (b + imm) | 0;
            const aHi = (xhi[r1]! + (imm >> 31) + (aLo >>> 0 < b >>> 0 ? 1 : 0)) | 0;
            const ti = (aLo >>> 12) & TLB_MASK;
            let lo: number;
            let hi: number;
            if (rTagLo[ti] === (aLo & ~0xfff) && rTagHi[ti] === aHi && (aLo & 0xfff) <= 4088) {
              const o = rPage[ti]! + (aLo & 0xfff);
              lo = dv.getInt32(o, true);
              hi = dv.getInt32(o + 4, true);
            } else {
              this.pcLo = pcLo;
              this.pcHi = pcHi;
              this.lastW = w;
              const r = this.loadSlow(aLo, aHi, 8);
              if (r === 0) {
                pcLo = this.pcLo;
                pcHi = this.pcHi;
                curLo = INVALID_TAG;
                limit = n;
                continue;
              }
              if (r === 2) limit = n;
              lo = this.ldLo;
              hi = this.ldHi;
            }
            xlo[rd] = lo;
            xhi[rd] = hi;
            break;
          }
        case 15 /* OP_LBU */:
          {
            const r1 = (w >>> 16) & 0xff;
            const b = xlo[r1]!;
            const aLo = (b + imm) | 0;
            const aHi = (xhi[r1]! + (imm >> 31) + (aLo >>> 0 < b >>> 0 ? 1 : 0)) | 0;
            const ti = (aLo >>> 12) & TLB_MASK;
            let lo: number;
            let hi: number;
            if (rTagLo[ti] === (aLo & ~0xfff) && rTagHi[ti] === aHi && (aLo & 0xfff) <= 4095) {
              const o = rPage[ti]! + (aLo & 0xfff);
              lo = dv.getUint8(o);
              hi = 0;
            } else {
              this.pcLo = pcLo;
              this.pcHi = pcHi;
              this.lastW = w;
              const r = this.loadSlow(aLo, aHi, 1);
              if (r === 0) {
                pcLo = this.pcLo;
                pcHi = this.pcHi;
                curLo = INVALID_TAG;
                limit = n;
                continue;
              }
              if (r === 2) limit = n;
              lo = this.ldLo;
              hi = 0;
            }
            xlo[rd] = lo;
            xhi[rd] = hi;
            break;
          }
        case 16 /* OP_LHU */:
          {
            const r1 = (w >>> 16) & 0xff;
            const b = xlo[r1]!;
            const aLo = (b + imm) | 0;
            const aHi = (xhi[r1]! + (imm >> 31) + (aLo >>> 0 < b >>> 0 ? 1 : 0)) | 0;
            const ti = (aLo >>> 12) & TLB_MASK;
            let lo: number;
            let hi: number;
            if (rTagLo[ti] === (aLo & ~0xfff) && rTagHi[ti] === aHi && (aLo & 0xfff) <= 4094) {
              const o = rPage[ti]! + (aLo & 0xfff);
              lo = dv.getUint16(o, true);
              hi = 0;
            } else {
              this.pcLo = pcLo;
              this.pcHi = pcHi;
              this.lastW = w;
              const r = this.loadSlow(aLo, aHi, 2);
              if (r === 0) {
                pcLo = this.pcLo;
                pcHi = this.pcHi;
                curLo = INVALID_TAG;
                limit = n;
                continue;
              }
              if (r === 2) limit = n;
              lo = this.ldLo;
              hi = 0;
            }
            xlo[rd] = lo;
            xhi[rd] = hi;
            break;
          }
        case 17 /* OP_LWU */:
          {
            const r1 = (w >>> 16) & 0xff;
            const b = xlo[r1]!;
            const aLo = (b + imm) | 0;
            const aHi = (xhi[r1]! + (imm >> 31) + (aLo >>> 0 < b >>> 0 ? 1 : 0)) | 0;
            const ti = (aLo >>> 12) & TLB_MASK;
            let lo: number;
            let hi: number;
            if (rTagLo[ti] === (aLo & ~0xfff) && rTagHi[ti] === aHi && (aLo & 0xfff) <= 4092) {
              const o = rPage[ti]! + (aLo & 0xfff);
              lo = dv.getInt32(o, true);
              hi = 0;
            } else {
              this.pcLo = pcLo;
              this.pcHi = pcHi;
              this.lastW = w;
              const r = this.loadSlow(aLo, aHi, 4);
              if (r === 0) {
                pcLo = this.pcLo;
                pcHi = this.pcHi;
                curLo = INVALID_TAG;
                limit = n;
                continue;
              }
              if (r === 2) limit = n;
              lo = this.ldLo;
              hi = 0;
            }
            xlo[rd] = lo;
            xhi[rd] = hi;
            break;
          }
        case 18 /* OP_SB */:
          {
            const r1 = (w >>> 16) & 0xff;
            const r2 = w >>> 24;
            const b = xlo[r1]!;
            const aLo = (b + imm) | 0;
            const aHi = (xhi[r1]! + (imm >> 31) + (aLo >>> 0 < b >>> 0 ? 1 : 0)) | 0;
            const ti = (aLo >>> 12) & TLB_MASK;
            if (wTagLo[ti] === (aLo & ~0xfff) && wTagHi[ti] === aHi && (aLo & 0xfff) <= 4095) {
              const o = wPage[ti]! + (aLo & 0xfff);
              dv.setInt8(o, xlo[r2]!);
            } else {
              this.pcLo = pcLo;
              this.pcHi = pcHi;
              this.lastW = w;
              const r = this.storeSlow(aLo, aHi, 1, xlo[r2]!, xhi[r2]!);
              if (r === 0) {
                pcLo = this.pcLo;
                pcHi = this.pcHi;
                curLo = INVALID_TAG;
                limit = n;
                continue;
              }
              if (r === 2 || code.generation !== gen) limit = n;
            }
            break;
          }
        case 19 /* OP_SH */:
          {
            const r1 = (w >>> 16) & 0xff;
            const r2 = w >>> 24;
            const b = xlo[r1]!;
            const aLo = (b + imm) | 0;
            const aHi = (xhi[r1]! + (imm >> 31) + (aLo >>> 0 < b >>> 0 ? 1 : 0)) | 0;
            const ti = (aLo >>> 12) & TLB_MASK;
            if (wTagLo[ti] === (aLo & ~0xfff) && wTagHi[ti] === aHi && (aLo & 0xfff) <= 4094) {
              const o = wPage[ti]! + (aLo & 0xfff);
              dv.setInt16(o, xlo[r2]!, true);
            } else {
              this.pcLo = pcLo;
              this.pcHi = pcHi;
              this.lastW = w;
              const r = this.storeSlow(aLo, aHi, 2, xlo[r2]!, xhi[r2]!);
              if (r === 0) {
                pcLo = this.pcLo;
                pcHi = this.pcHi;
                curLo = INVALID_TAG;
                limit = n;
                continue;
              }
              if (r === 2 || code.generation !== gen) limit = n;
            }
            break;
          }
        case 20 /* OP_SW */:
          {
            const r1 = (w >>> 16) & 0xff;
            const r2 = w >>> 24;
            const b = xlo[r1]!;
            const aLo = (b + imm) | 0;
            const aHi = (xhi[r1]! + (imm >> 31) + (aLo >>> 0 < b >>> 0 ? 1 : 0)) | 0;
            const ti = (aLo >>> 12) & TLB_MASK;
            if (wTagLo[ti] === (aLo & ~0xfff) && wTagHi[ti] === aHi && (aLo & 0xfff) <= 4092) {
              const o = wPage[ti]! + (aLo & 0xfff);
              dv.setInt32(o, xlo[r2]!, true);
            } else {
              this.pcLo = pcLo;
              this.pcHi = pcHi;
              this.lastW = w;
              const r = this.storeSlow(aLo, aHi, 4, xlo[r2]!, xhi[r2]!);
              if (r === 0) {
                pcLo = this.pcLo;
                pcHi = this.pcHi;
                curLo = INVALID_TAG;
                limit = n;
                continue;
              }
              if (r === 2 || code.generation !== gen) limit = n;
            }
            break;
          }
        case 21 /* OP_SD */:
          {
            const r1 = (w >>> 16) & 0xff;
            const r2 = w >>> 24;
            const b = xlo[r1]!;
            const aLo = (b + imm) | 0;
            const aHi = (xhi[r1]! + (imm >> 31) + (aLo >>> 0 < b >>> 0 ? 1 : 0)) | 0;
            const ti = (aLo >>> 12) & TLB_MASK;
            if (wTagLo[ti] === (aLo & ~0xfff) && wTagHi[ti] === aHi && (aLo & 0xfff) <= 4088) {
              const o = wPage[ti]! + (aLo & 0xfff);
              dv.setInt32(o, xlo[r2]!, true);
              dv.setInt32(o + 4, xhi[r2]!, true);
            } else {
              this.pcLo = pcLo;
              this.pcHi = pcHi;
              this.lastW = w;
              const r = this.storeSlow(aLo, aHi, 8, xlo[r2]!, xhi[r2]!);
              if (r === 0) {
                pcLo = this.pcLo;
                pcHi = this.pcHi;
                curLo = INVALID_TAG;
                limit = n;
                continue;
              }
              if (r === 2 || code.generation !== gen) limit = n;
            }
            break;
          }
        case 23 /* OP_SLTI */:
          {
            const r1 = (w >>> 16) & 0xff;
            const h1 = xhi[r1]!;
            const h2 = imm >> 31;
            xlo[rd] = h1 < h2 || (h1 === h2 && xlo[r1]! >>> 0 < imm >>> 0) ? 1 : 0;
            xhi[rd] = 0;
            break;
          }
        case 24 /* OP_SLTIU */:
          {
            const r1 = (w >>> 16) & 0xff;
            const h1 = xhi[r1]! >>> 0;
            const h2 = (imm >> 31) >>> 0;
            xlo[rd] = h1 < h2 || (h1 === h2 && xlo[r1]! >>> 0 < imm >>> 0) ? 1 : 0;
            xhi[rd] = 0;
            break;
          }
        case 25 /* OP_XORI */:
          {
            const r1 = (w >>> 16) & 0xff;
            xhi[rd] = xhi[r1]! ^ (imm >> 31);
            xlo[rd] = xlo[r1]! ^ imm;
            break;
          }
        case 26 /* OP_ORI */:
          {
            const r1 = (w >>> 16) & 0xff;
            xhi[rd] = xhi[r1]! | (imm >> 31);
            xlo[rd] = xlo[r1]! | imm;
            break;
          }
        case 27 /* OP_ANDI */:
          {
            const r1 = (w >>> 16) & 0xff;
            xhi[rd] = xhi[r1]! & (imm >> 31);
            xlo[rd] = xlo[r1]! & imm;
            break;
          }
        case 28 /* OP_SLLI */:
          {
            const r1 = (w >>> 16) & 0xff;
            const lo = xlo[r1]!;
            const hi = xhi[r1]!;
            if (imm === 0) {
              xlo[rd] = lo;
              xhi[rd] = hi;
            } else if (imm < 32) {
              xhi[rd] = (hi << imm) | (lo >>> (32 - imm));
              xlo[rd] = lo << imm;
            } else {
              xhi[rd] = lo << (imm - 32);
              xlo[rd] = 0;
            }
            break;
          }
        case 29 /* OP_SRLI */:
          {
            const r1 = (w >>> 16) & 0xff;
            const lo = xlo[r1]!;
            const hi = xhi[r1]!;
            if (imm === 0) {
              xlo[rd] = lo;
              xhi[rd] = hi;
            } else if (imm < 32) {
              xlo[rd] = (lo >>> imm) | (hi << (32 - imm));
              xhi[rd] = hi >>> imm;
            } else {
              xlo[rd] = hi >>> (imm - 32);
              xhi[rd] = 0;
            }
            break;
          }
        case 30 /* OP_SRAI */:
          {
            const r1 = (w >>> 16) & 0xff;
            const lo = xlo[r1]!;
            const hi = xhi[r1]!;
            if (imm === 0) {
              xlo[rd] = lo;
              xhi[rd] = hi;
            } else if (imm < 32) {
              xlo[rd] = (lo >>> imm) | (hi << (32 - imm));
              xhi[rd] = hi >> imm;
            } else {
              xlo[rd] = hi >> (imm - 32);
              xhi[rd] = hi >> 31;
            }
            break;
          }
        case 31 /* OP_ADD */:
          {
            const r1 = (w >>> 16) & 0xff;
            const r2 = w >>> 24;
            const a = xlo[r1]!;
            const lo = (a + xlo[r2]!) | 0;
            xhi[rd] = (xhi[r1]! + xhi[r2]! + (lo >>> 0 < a >>> 0 ? 1 : 0)) | 0;
            xlo[rd] = lo;
            break;
          }
        case 32 /* OP_SUB */:
          {
            const r1 = (w >>> 16) & 0xff;
            const r2 = w >>> 24;
            const a = xlo[r1]!;
            const b = xlo[r2]!;
            xhi[rd] = (xhi[r1]! - xhi[r2]! - (a >>> 0 < b >>> 0 ? 1 : 0)) | 0;
            xlo[rd] = (a - b) | 0;
            break;
          }
        case 33 /* OP_SLL */:
        case 37 /* OP_SRL */:
        case 38 /* OP_SRA */:
          {
            const r1 = (w >>> 16) & 0xff;
            const s = xlo[w >>> 24]! & 63;
            const lo = xlo[r1]!;
            const hi = xhi[r1]!;
            const op = w & 0x7f;
            if (s === 0) {
              xlo[rd] = lo;
              xhi[rd] = hi;
            } else if (op === D.OP_SLL) {
              if (s < 32) {
                xhi[rd] = (hi << s) | (lo >>> (32 - s));
                xlo[rd] = lo << s;
              } else {
                xhi[rd] = lo << (s - 32);
                xlo[rd] = 0;
              }
            } else if (op === D.OP_SRL) {
              if (s < 32) {
                xlo[rd] = (lo >>> s) | (hi << (32 - s));
                xhi[rd] = hi >>> s;
              } else {
                xlo[rd] = hi >>> (s - 32);
                xhi[rd] = 0;
              }
            } else if (s < 32) {
              xlo[rd] = (lo >>> s) | (hi << (32 - s));
              xhi[rd] = hi >> s;
            } else {
              xlo[rd] = hi >> (s - 32);
              xhi[rd] = hi >> 31;
            }
            break;
          }
        case 34 /* OP_SLT */:
          {
            const r1 = (w >>> 16) & 0xff;
            const r2 = w >>> 24;
            const h1 = xhi[r1]!;
            const h2 = xhi[r2]!;
            xlo[rd] = h1 < h2 || (h1 === h2 && xlo[r1]! >>> 0 < xlo[r2]! >>> 0) ? 1 : 0;
            xhi[rd] = 0;
            break;
          }
        case 35 /* OP_SLTU */:
          {
            const r1 = (w >>> 16) & 0xff;
            const r2 = w >>> 24;
            const h1 = xhi[r1]! >>> 0;
            const h2 = xhi[r2]! >>> 0;
            xlo[rd] = h1 < h2 || (h1 === h2 && xlo[r1]! >>> 0 < xlo[r2]! >>> 0) ? 1 : 0;
            xhi[rd] = 0;
            break;
          }
        case 36 /* OP_XOR */:
          {
            const r1 = (w >>> 16) & 0xff;
            const r2 = w >>> 24;
            xhi[rd] = xhi[r1]! ^ xhi[r2]!;
            xlo[rd] = xlo[r1]! ^ xlo[r2]!;
            break;
          }
        case 39 /* OP_OR */:
          {
            const r1 = (w >>> 16) & 0xff;
            const r2 = w >>> 24;
            xhi[rd] = xhi[r1]! | xhi[r2]!;
            xlo[rd] = xlo[r1]! | xlo[r2]!;
            break;
          }
        case 40 /* OP_AND */:
          {
            const r1 = (w >>> 16) & 0xff;
            const r2 = w >>> 24;
            xhi[rd] = xhi[r1]! & xhi[r2]!;
            xlo[rd] = xlo[r1]! & xlo[r2]!;
            break;
          }
        case 41 /* OP_ADDIW */:
          {
            const v = (xlo[(w >>> 16) & 0xff]! + imm) | 0;
            xlo[rd] = v;
            xhi[rd] = v >> 31;
            break;
          }
        case 42 /* OP_SLLIW */:
          {
            const v = xlo[(w >>> 16) & 0xff]! << imm;
            xlo[rd] = v;
            xhi[rd] = v >> 31;
            break;
          }
        case 43 /* OP_SRLIW */:
          {
            const v = (xlo[(w >>> 16) & 0xff]! >>> imm) | 0;
            xlo[rd] = v;
            xhi[rd] = v >> 31;
            break;
          }
        case 44 /* OP_SRAIW */:
          {
            const v = xlo[(w >>> 16) & 0xff]! >> imm;
            xlo[rd] = v;
            xhi[rd] = v >> 31;
            break;
          }
        case 45 /* OP_ADDW */:
          {
            const v = (xlo[(w >>> 16) & 0xff]! + xlo[w >>> 24]!) | 0;
            xlo[rd] = v;
            xhi[rd] = v >> 31;
            break;
          }
        case 46 /* OP_SUBW */:
          {
            const v = (xlo[(w >>> 16) & 0xff]! - xlo[w >>> 24]!) | 0;
            xlo[rd] = v;
            xhi[rd] = v >> 31;
            break;
          }
        case 47 /* OP_SLLW */:
          {
            const v = xlo[(w >>> 16) & 0xff]! << (xlo[w >>> 24]! & 31);
            xlo[rd] = v;
            xhi[rd] = v >> 31;
            break;
          }
        case 48 /* OP_SRLW */:
          {
            const v = (xlo[(w >>> 16) & 0xff]! >>> (xlo[w >>> 24]! & 31)) | 0;
            xlo[rd] = v;
            xhi[rd] = v >> 31;
            break;
          }
        case 49 /* OP_SRAW */:
          {
            const v = xlo[(w >>> 16) & 0xff]! >> (xlo[w >>> 24]! & 31);
            xlo[rd] = v;
            xhi[rd] = v >> 31;
            break;
          }
        case 50 /* OP_MUL */:
          {
            const r1 = (w >>> 16) & 0xff;
            const r2 = w >>> 24;
            I64.mul64(xhi[r1]!, xlo[r1]!, xhi[r2]!, xlo[r2]!);
            xlo[rd] = I64.rLo;
            xhi[rd] = I64.rHi;
            break;
          }
        case 58 /* OP_MULW */:
          {
            const v = Math.imul(xlo[(w >>> 16) & 0xff]!, xlo[w >>> 24]!);
            xlo[rd] = v;
            xhi[rd] = v >> 31;
            break;
          }
        case 51 /* OP_MULH */:
        case 52 /* OP_MULHSU */:
        case 53 /* OP_MULHU */:
        case 54 /* OP_DIV */:
        case 55 /* OP_DIVU */:
        case 56 /* OP_REM */:
        case 57 /* OP_REMU */:
          {
            const r1 = (w >>> 16) & 0xff;
            const r2 = w >>> 24;
            const a1 = xhi[r1]!;
            const a0 = xlo[r1]!;
            const b1 = xhi[r2]!;
            const b0 = xlo[r2]!;
            switch (w & 0x7f) {
              case 51 /* OP_MULH */:
                I64.mulh(a1, a0, b1, b0);
                break;
              case 52 /* OP_MULHSU */:
                I64.mulhsu(a1, a0, b1, b0);
                break;
              case 53 /* OP_MULHU */:
                I64.mulhu(a1, a0, b1, b0);
                break;
              case 54 /* OP_DIV */:
                I64.div64(a1, a0, b1, b0);
                break;
              case 55 /* OP_DIVU */:
                I64.divu64(a1, a0, b1, b0);
                break;
              case 56 /* OP_REM */:
                I64.rem64(a1, a0, b1, b0);
                break;
              default:
                I64.remu64(a1, a0, b1, b0);
            }
            xlo[rd] = I64.rLo;
            xhi[rd] = I64.rHi;
            break;
          }
        case 59 /* OP_DIVW */:
        case 60 /* OP_DIVUW */:
        case 61 /* OP_REMW */:
        case 62 /* OP_REMUW */:
          {
            const a = xlo[(w >>> 16) & 0xff]!;
            const b = xlo[w >>> 24]!;
            let v: number;
            switch (w & 0x7f) {
              case 59 /* OP_DIVW */:
                v = b === 0 ? -1 : a === (0x80000000 | 0) && b === -1 ? a : (a / b) | 0;
                break;
              case 60 /* OP_DIVUW */:
                v = b === 0 ? -1 : ((a >>> 0) / (b >>> 0)) | 0;
                break;
              case 61 /* OP_REMW */:
                v = b === 0 ? a : a === (0x80000000 | 0) && b === -1 ? 0 : (a % b) | 0;
                break;
              default:
                v = b === 0 ? a : ((a >>> 0) % (b >>> 0)) | 0;
            }
            xlo[rd] = v;
            xhi[rd] = v >> 31;
            break;
          }
        default: {
          // FP with the FPU on and Dirty, on the TLB fast path; then everything rare:
          // system, CSR, AMO, FP otherwise, illegal.
          if (this.fpFastPath(w, imm)) break;
          this.pcLo = pcLo;
          this.pcHi = pcHi;
          this.runN = n;
          const brk = this.execOne(w, imm, pcLo, pcHi);
          pcLo = this.pcLo;
          pcHi = this.pcHi;
          if (brk) {
            curLo = INVALID_TAG;
            limit = n;
          }
          continue;
        }
      }
      pcLo = (pcLo + 4 - ((w >>> 6) & 2)) | 0;
    }
    this.pcLo = pcLo;
    this.pcHi = pcHi;
    this.runN = n + 1;
    this.instretBase = this.instret();
    this.cycleBase = this.cycles();
    this.executed += n;
    this.runN = 0;
    this.runRef = 0;
    this.excInRun = 0;
    return stop;
  }

  /**
   * Execute one instruction of the rare kinds (and any instruction when it straddles a
   * page). Updates this.pc. Returns true when the run loop must re-check its state
   * (privilege, translation, interrupts may have changed, or a trap was taken).
   */
  private execOne(w: number, imm: number, pcLo: number, pcHi: number): boolean {
    const op = w & 0x7f;
    const len = 4 - ((w >>> 6) & 2);
    const nextLo = (pcLo + len) | 0;
    const nextHi = (pcHi + (nextLo >>> 0 < pcLo >>> 0 ? 1 : 0)) | 0;
    this.pcLo = pcLo;
    this.pcHi = pcHi;
    const xlo = this.xlo;
    const xhi = this.xhi;
    switch (op) {
      case D.OP_CSR: {
        const r = this.execCsr(imm);
        if (r !== 0) {
          this.illegal(pcLo, pcHi, r);
          return true;
        }
        this.pcLo = nextLo;
        this.pcHi = nextHi;
        return true;
      }
      case D.OP_ECALL: {
        const cause = this.virt ? C.CAUSE_VIRTUAL_SUPERVISOR_ECALL : C.CAUSE_USER_ECALL + this.priv;
        this.raise(this.virt && this.priv === C.PRV_U ? C.CAUSE_USER_ECALL : cause, 0, 0);
        return true;
      }
      case D.OP_EBREAK:
        this.raise(C.CAUSE_BREAKPOINT, pcLo, pcHi);
        return true;
      case D.OP_MRET:
      case D.OP_SRET: {
        const r = this.execSystem(op, w, imm);
        if (r !== 0) this.illegal(pcLo, pcHi, r);
        return true;
      }
      case D.OP_WFI: {
        const r = this.execSystem(op, w, imm);
        if (r !== 0) {
          this.illegal(pcLo, pcHi, r);
          return true;
        }
        this.pcLo = nextLo;
        this.pcHi = nextHi;
        if (!this.interruptPending()) this.wfi = true;
        return true;
      }
      case D.OP_SFENCE_VMA:
      case D.OP_HFENCE_VVMA:
      case D.OP_HFENCE_GVMA:
      case D.OP_HLSV: {
        const r = this.execSystem(op, w, imm);
        if (r < 0) return true; // trap already raised (HLV/HSV faults)
        if (r !== 0) {
          this.illegal(pcLo, pcHi, r);
          return true;
        }
        this.pcLo = nextLo;
        this.pcHi = nextHi;
        return true;
      }
      case D.OP_AMO_W:
      case D.OP_AMO_D: {
        this.lastW = 0;
        const r = this.execAmo(w, imm, op === D.OP_AMO_D);
        if (r === -1) return true;
        if (r !== 0) {
          this.illegal(pcLo, pcHi);
          return true;
        }
        this.pcLo = nextLo;
        this.pcHi = nextHi;
        return false;
      }
      case D.OP_FLW:
      case D.OP_FLD:
      case D.OP_FSW:
      case D.OP_FSD: {
        if (this.fsOff()) {
          this.illegal(pcLo, pcHi);
          return true;
        }
        const r1 = (w >>> 16) & 0xff;
        const b = xlo[r1]!;
        const aLo = (b + imm) | 0;
        const aHi = (xhi[r1]! + (imm >> 31) + (aLo >>> 0 < b >>> 0 ? 1 : 0)) | 0;
        const fpu = this.fpu;
        this.lastW = w;
        let r: number;
        if (op === D.OP_FLW || op === D.OP_FLD) {
          const size = op === D.OP_FLW ? 4 : 8;
          r = this.loadSlow(aLo, aHi, size);
          if (r === 0) return true;
          const rd = (w >>> 8) & 0x1f;
          if (size === 4) fpu.setF32Bits(rd, this.ldLo);
          else fpu.setF64Bits(rd, this.ldLo, this.ldHi);
        } else {
          const rs2 = w >>> 24;
          r = this.storeSlow(aLo, aHi, op === D.OP_FSW ? 4 : 8, fpu.w[2 * rs2]!, fpu.w[2 * rs2 + 1]!);
          if (r === 0) return true;
        }
        if (op === D.OP_FLW || op === D.OP_FLD) this.fsDirty();
        this.pcLo = nextLo;
        this.pcHi = nextHi;
        return r === 2;
      }
      case D.OP_FP: {
        if (this.fsOff() || !this.fpu.exec(imm, xlo, xhi)) {
          this.illegal(pcLo, pcHi);
          return true;
        }
        this.fsDirty();
        this.pcLo = nextLo;
        this.pcHi = nextHi;
        return false;
      }
      case D.OP_ILLEGAL:
        this.illegal(pcLo, pcHi);
        return true;
      default:
        this.illegal(pcLo, pcHi);
        return true;
    }
  }
}

const TLB_SIZE = 1024;
const TLB_MASK = TLB_SIZE - 1;

/** RAM sizes up to this have every RAM offset in int32 range. */
const INT32_RAM_LIMIT = 2 ** 31;

/**
 * A TLB's RAM page offsets: int32 while every RAM offset fits one (RAM up to 2 GiB), so
 * the hot path adds int32s; doubles above, exact for any RAM size.
 */
type TlbPages = Int32Array | Float64Array;

function tlbPages(ramSize: number): TlbPages {
  return ramSize <= INT32_RAM_LIMIT ? new Int32Array(TLB_SIZE) : new Float64Array(TLB_SIZE);
}

/** One translation context's read, write and fetch TLBs. */
class TlbSet {
  readonly rTagLo = new Int32Array(TLB_SIZE).fill(INVALID_TAG);
  readonly rTagHi = new Int32Array(TLB_SIZE);
  readonly rPage: TlbPages;
  readonly wTagLo = new Int32Array(TLB_SIZE).fill(INVALID_TAG);
  readonly wTagHi = new Int32Array(TLB_SIZE);
  readonly wPage: TlbPages;
  readonly xTagLo = new Int32Array(TLB_SIZE).fill(INVALID_TAG);
  readonly xTagHi = new Int32Array(TLB_SIZE);
  readonly xPage: TlbPages;

  constructor(ramSize: number) {
    this.rPage = tlbPages(ramSize);
    this.wPage = tlbPages(ramSize);
    this.xPage = tlbPages(ramSize);
  }

  flush(): void {
    this.rTagLo.fill(INVALID_TAG);
    this.wTagLo.fill(INVALID_TAG);
    this.xTagLo.fill(INVALID_TAG);
  }
}

/** TLB set index: U 0, S 1, S+SUM 2, M 3; +4 with V=1. */
function tlbContext(priv: number, virt: boolean, sum: boolean): number {
  const base = priv === C.PRV_U ? 0 : priv === C.PRV_S ? (sum ? 2 : 1) : 3;
  return virt ? base + 4 : base;
}

function accessFault(access: Access): number {
  return access === ACCESS_EXEC
    ? C.CAUSE_FETCH_ACCESS
    : access === ACCESS_READ
      ? C.CAUSE_LOAD_ACCESS
      : C.CAUSE_STORE_ACCESS;
}
