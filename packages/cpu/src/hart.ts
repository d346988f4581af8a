/**
 * The RISC-V hart: RV64IMAFDC + Zicsr + Zifencei + Zicntr, privilege modes M, S and U,
 * Sv39/Sv48/Sv57 virtual memory, and the hypervisor extension.
 *
 * This file holds the public `Hart` (what a host may call, README.md) and the hot loop,
 * `run`. The state is a `HartCore` (core.ts); the slow paths are functions over it in
 * modules of their own: mmu.ts (translation, TLB refills, slow loads and stores),
 * trap.ts (trap entry and return, interrupts, exits), csr-file.ts (CSRs, Zicsr),
 * hext.ts (the H extension's CSRs and instructions), amo.ts (LR/SC, AMOs), system.ts
 * (everything rare the loop hands off), state.ts (snapshots).
 *
 * Design (docs/architecture.md, "The hot path"):
 * - Integer registers are int32 pairs (`xlo`, `xhi`); index 32 is a write sink for x0.
 * - Three software TLBs (read, write, fetch) of TLB_SIZE (1024) direct-mapped entries per
 *   translation context. A hit is two int32 compares and one `+` to get the RAM offset.
 *   Only RAM pages are ever cached, so a miss is also how MMIO and faults reach the slow
 *   path.
 * - Instructions are decoded once per physical page into a CodeCache (code-cache.ts) and
 *   executed from there; the current page is kept in locals so sequential execution does
 *   no translation at all.
 * - The run loop executes a budget of instructions and returns why it stopped. Interrupts
 *   are checked when the loop starts and after anything that can change them (CSR
 *   writes, xRET, MMIO accesses, traps).
 * - One switch, one function: V8 keeps it monomorphic. Each load/store case is written
 *   out by hand; test/load-store.test.ts ties every case label to the decoder's constant
 *   and every width/sign to its handler.
 */
import { type Access, type GuestRam, SATP_MODE_BARE } from "@visor/memory";
import { CodeCache } from "./code-cache.ts";
import {
  CHAIN_SIZE,
  INVALID_TAG as CORE_INVALID_TAG,
  TLB_MASK as CORE_TLB_MASK,
  cycles,
  dropWritePage,
  executedCount,
  flushTlb,
  fpFast,
  HartCore,
  type HartStats,
  instret,
  interruptPending,
  type PhysBus,
  ST_CHAIN,
  ST_EXIT,
  ST_PC,
  selectTlb,
  setPriv,
  setVirt,
  updateMip,
} from "./core.ts";
import * as C from "./csr.ts";
import { hostCsrRead, hostCsrWrite, setSatp } from "./csr-file.ts";
import { type DebugState, type HartDebugHook, runHooked } from "./debug-hook.ts";
import * as D from "./decode.ts";
import { EXIT_BUDGET, EXIT_STOP, EXIT_WFI, type HartExit } from "./exit.ts";
import { fpFastPath } from "./fp-fast.ts";
import * as I64 from "./int64.ts";
import {
  type Entry,
  EXIT_BEFORE,
  EXIT_HELPER,
  EXIT_PC,
  EXIT_TRAP,
  HartJit,
  HOT_MASK,
  HOT_SIZE,
  unavailableReason,
} from "./jit/index.ts";
import { type JitMode, type JitStats, zeroJitStats } from "./jit/types.ts";
import { WARM_HOT, warmUpHarts } from "./jit/warm.ts";
import { fetchPage, fetchUpperHalf, GuestPtes, loadSlow, storeSlow, translate } from "./mmu.ts";
import { fromState, type HartState, toState } from "./state.ts";
import { execOne } from "./system.ts";
import { enterS, takeInterrupt } from "./trap.ts";

export { EXIT_HS, EXIT_M, type HartStats, type PhysBus } from "./core.ts";
export type { HartState } from "./state.ts";

export interface HartOptions {
  ram: GuestRam;
  bus: PhysBus;
  hartId?: number;
  /** Current time in timebase ticks (the `time` CSR). Default: instructions executed / 100. */
  time?: () => number;
  /** Shared decoded-instruction cache; one per RAM. */
  codeCache?: CodeCache;
  /** Implement the hypervisor extension (misa.H). */
  hypervisor?: boolean;
  /** Binary translation (jit/types.ts): default "on". */
  jit?: JitMode;
}

/** Where and how a hart starts (`Hart.boot`): what firmware would have set up. */
export interface BootState {
  /** Entry point. */
  pc: bigint;
  /** Privilege mode to start in (csr.PRV_*). */
  priv: number;
  /** Start in V=1 (VS/VU-mode; needs the hypervisor extension). */
  virt?: boolean;
  /** Integer registers to set, by number. */
  x?: Readonly<Record<number, bigint>>;
  /** CSRs to write in this order, as [number, value] (host writes: see `setCsr`). */
  csrs?: readonly (readonly [number, bigint])[];
  /** Which traps the host handles (EXIT_M, EXIT_HS). */
  exitMask?: number;
}

const PAGE = 4096;
// The hot loop's constants are module-local bindings, as they were before the slow paths
// moved out: an imported binding is read through its module cell at every use.
const TLB_MASK = CORE_TLB_MASK;
const INVALID_TAG = CORE_INVALID_TAG;
const TWO32 = 4294967296;
/**
 * Fetch faults in a row, with no instruction retired, after which run() returns to its
 * host (a few milliseconds of faulting): a guest whose trap vector cannot be fetched faults
 * forever, and the host must not be frozen with it.
 */
const STALL_LIMIT = 4096;
const DEFAULT_INSTRUCTIONS_PER_TICK = 100;
const emptyPage: Int32Array = new Int32Array(PAGE);
const noBus: PhysBus = { read: () => -1, write: () => false, read64: () => undefined, write64: () => false };
const noEntries: (Entry | undefined)[] = [];

/** The hart's part of the translator: its HartJit (none: interpreter only), the mode in effect and why "off" if it was not asked for. */
interface HartTier {
  jit: HartJit | undefined;
  mode: JitMode;
  off: string;
  /** Jump-target counters without a translator (they count, and are reset, for nothing). */
  cold: Int32Array;
  /** A debugger's hook (debug-hook.ts). */
  debug: DebugState<Hart>;
}
const ST_EXIT_I = ST_EXIT >> 2;
const ST_PC_I = ST_PC >> 2;
const CHAIN_I = ST_CHAIN >> 2;
const CHAIN_MASK = CHAIN_SIZE - 1;

export class Hart {
  /** The hart's state; only this file and the slow-path modules touch it. */
  private readonly c: HartCore;
  /** The hart's side of the translator (jit/index.ts). */
  private readonly t: HartTier;

  constructor(opts: HartOptions) {
    const hypervisor = opts.hypervisor ?? false;
    const c = new HartCore({
      ram: opts.ram,
      bus: opts.bus,
      hartId: opts.hartId ?? 0,
      code: opts.codeCache ?? new CodeCache(opts.ram),
      hypervisor,
    });
    this.c = c;
    const asked = opts.jit ?? "on";
    let off = asked === "off" ? "" : unavailableReason(c);
    let jit: HartJit | undefined;
    if (asked !== "off" && off === "") {
      try {
        jit = new HartJit(c, asked);
      } catch (e) {
        // an engine without what the translator's modules use (tail calls, multi-memory)
        off = `this host cannot run translated code (${e instanceof Error ? e.message : String(e)})`;
      }
    }
    const mode = jit !== undefined ? asked : "off";
    const debug = { hook: undefined, hooked: false };
    this.t = { jit, mode, off, cold: new Int32Array(HOT_SIZE).fill(0x3fffffff), debug };
    warmUpHarts(mode, (ram, jit) => {
      const h = new Hart({ ram, bus: noBus, jit });
      h.t.jit?.hot.fill(WARM_HOT); // its loop gets hot in a few hundred instructions
      return h;
    });
    if (c.h !== undefined) c.h.ptes = new GuestPtes(c, c.h);
    c.time = opts.time ?? (() => Math.floor(executedCount(c) / DEFAULT_INSTRUCTIONS_PER_TICK));
    c.code.onNewCodePage((pageOff) => dropWritePage(c, pageOff));
    const ram = c.ram;
    const prevReset = ram.onDirtyLogReset;
    ram.onDirtyLogReset = () => {
      prevReset?.();
      flushTlb(c);
    };
    this.reset(0x80000000, 0);
  }

  /** The hart's number (mhartid). */
  get hartId(): number {
    return this.c.hartId;
  }

  /** The decoded-instruction cache (shared by the harts of one RAM). */
  get codeCache(): CodeCache {
    return this.c.code;
  }

  /** The binary translator's counters (jit/types.ts). */
  get jitStats(): JitStats {
    const t = this.t;
    return t.jit !== undefined ? t.jit.stats(t.mode) : zeroJitStats("off", t.off);
  }

  /** Slow-path counters (TLB misses, walks, traps, interrupts, MMIO, G-stage). */
  get stats(): Readonly<HartStats> {
    return this.c.stats;
  }

  /**
   * Back to M-mode at `pc` (an unsigned number below 2^53, or lo/hi words): integer and
   * FP registers, fcsr, mstatus, delegation, mie and software-pending interrupts, satp
   * and the LR reservation cleared.
   */
  reset(pc: number, hi = Math.floor(pc / TWO32)): void {
    const c = this.c;
    c.xlo.fill(0);
    c.xhi.fill(0);
    c.fpu.w.fill(0);
    c.fpu.fflags = 0;
    c.fpu.frm = 0;
    c.pcLo = pc | 0;
    c.pcHi = hi | 0;
    c.priv = C.PRV_M;
    c.virt = false;
    c.wfi = false;
    c.mstatus = 0;
    c.mstatusHiBits = 0;
    c.mie = 0;
    c.mipSw = 0;
    updateMip(c);
    c.medeleg = 0;
    c.mideleg = 0;
    c.satpMode = SATP_MODE_BARE;
    c.satpPpn = 0;
    c.resValid = false;
    flushTlb(c);
    selectTlb(c);
  }

  /**
   * Reset and load a boot state: the entry pc, registers, CSRs (in order, as host
   * writes), the exit mask, then the privilege and V mode. Throws on a CSR the hart
   * does not have or V=1 without the H extension.
   */
  boot(s: BootState): void {
    const c = this.c;
    if (s.virt === true && c.h === undefined) throw new Error("hart: V=1 needs the hypervisor extension");
    this.reset(0);
    this.pc = s.pc;
    for (const [i, v] of Object.entries(s.x ?? {})) this.setX(Number(i), v);
    for (const [n, v] of s.csrs ?? []) this.setCsr(n, v);
    c.exitMask = s.exitMask ?? 0;
    setPriv(c, s.priv);
    setVirt(c, s.virt === true);
  }

  /** EXIT_M / EXIT_HS: which traps leave `run` as exits instead of entering guest handlers. */
  get exitMask(): number {
    return this.c.exitMask;
  }
  set exitMask(m: number) {
    this.c.exitMask = m;
  }

  /** Current privilege mode (csr.PRV_U, PRV_S, PRV_M). */
  get priv(): number {
    return this.c.priv;
  }
  /** Virtualization mode (H extension): true in VS- and VU-mode. */
  get virt(): boolean {
    return this.c.virt;
  }

  /**
   * Enter privilege mode `priv` (csr.PRV_*) and V mode `virt`, as the host would on an
   * xRET into the guest (a hypervisor resuming a guest, a test driving the MMU).
   */
  setPrivilege(priv: number, virt = this.c.virt): void {
    const c = this.c;
    if (virt && c.h === undefined) throw new Error("hart: V=1 needs the hypervisor extension");
    setPriv(c, priv);
    setVirt(c, virt);
  }

  /**
   * Translate virtual address `va` for `access` (memory's ACCESS_READ/WRITE/EXEC) as the
   * hart would now, two-stage under V=1, as KVM_TRANSLATE does: the physical page address,
   * or -cause for the fault it would take (no trap is taken).
   */
  translate(va: bigint, access: Access): number {
    return translate(this.c, Number(BigInt.asIntN(32, va)), Number(BigInt.asIntN(32, va >> 32n)), access);
  }

  /** The pc as an unsigned BigInt. */
  get pc(): bigint {
    return I64.pairToBigInt(this.c.pcHi, this.c.pcLo) & 0xffffffffffffffffn;
  }
  set pc(v: bigint) {
    this.c.pcLo = Number(BigInt.asIntN(32, v));
    this.c.pcHi = Number(BigInt.asIntN(32, v >> 32n));
  }

  /** Advance the pc by `n` bytes (a host that emulated the instruction at pc). */
  advancePc(n: number): void {
    const c = this.c;
    const lo = (c.pcLo + n) | 0;
    if (lo >>> 0 < c.pcLo >>> 0) c.pcHi = (c.pcHi + 1) | 0;
    c.pcLo = lo;
  }

  /** Register x[i] as an unsigned BigInt. */
  getX(i: number): bigint {
    return I64.pairToBigInt(this.c.xhi[i]!, this.c.xlo[i]!) & 0xffffffffffffffffn;
  }
  setX(i: number, v: bigint): void {
    if (i === 0) return;
    this.c.xlo[i] = Number(BigInt.asIntN(32, v));
    this.c.xhi[i] = Number(BigInt.asIntN(32, v >> 32n));
  }
  /** The low and high 32 bits of x[i] as int32 (no BigInt: syscall arguments and results). */
  xLo(i: number): number {
    return this.c.xlo[i]!;
  }
  xHi(i: number): number {
    return this.c.xhi[i]!;
  }
  setXPair(i: number, lo: number, hi: number): void {
    if (i === 0) return;
    this.c.xlo[i] = lo | 0;
    this.c.xhi[i] = hi | 0;
  }

  /** FP register f[i]'s 64 bits (a single is NaN-boxed) as an unsigned BigInt. */
  getF(i: number): bigint {
    const w = this.c.fpu.w;
    return I64.pairToBigInt(w[2 * i + 1]!, w[2 * i]!) & 0xffffffffffffffffn;
  }
  setF(i: number, v: bigint): void {
    const w = this.c.fpu.w;
    w[2 * i] = Number(BigInt.asIntN(32, v));
    w[2 * i + 1] = Number(BigInt.asIntN(32, v >> 32n));
  }

  /** Zero the integer and FP registers and fcsr (a new program image). */
  clearRegisters(): void {
    const c = this.c;
    c.xlo.fill(0);
    c.xhi.fill(0);
    c.fpu.w.fill(0);
    c.fpu.fflags = 0;
    c.fpu.frm = 0;
  }

  /** Copy another hart's integer and FP registers, fcsr and pc (a new thread or process). */
  copyRegistersFrom(other: Hart): void {
    const c = this.c;
    const o = other.c;
    c.xlo.set(o.xlo);
    c.xhi.set(o.xhi);
    c.fpu.w.set(o.fpu.w);
    c.fpu.fflags = o.fpu.fflags;
    c.fpu.frm = o.fpu.frm;
    c.pcLo = o.pcLo;
    c.pcHi = o.pcHi;
  }

  /**
   * The host's read of a CSR by number (csr.CSR_*), as M-mode sees it but without
   * privilege checks or V=1 redirection. Throws on a CSR the hart does not have.
   */
  getCsr(csr: number): bigint {
    const v = hostCsrRead(this.c, csr);
    if (v === undefined) throw new Error(`hart: no CSR 0x${csr.toString(16)}`);
    return v;
  }
  /**
   * The host's write of a CSR by number: WARL fields and side effects (TLB flushes,
   * satp/hgatp/vsatp modes) apply as for an M-mode write. Throws on a CSR the hart does
   * not have or cannot write.
   */
  setCsr(csr: number, v: bigint): void {
    if (!hostCsrWrite(this.c, csr, v)) throw new Error(`hart: cannot write CSR 0x${csr.toString(16)}`);
  }

  /** Set satp (as the host would through the CSR): mode 0/8/9/10, root page number, ASID. */
  setSatp(mode: number, rootPpn: number, asid = 0): void {
    setSatp(this.c, mode, rootPpn, asid);
  }

  /** Drop every cached translation (the host changed page tables), or with an address (lo, hi words) its page's only (an SFENCE.VMA rs1). */
  flushTlb(lo?: number, hi?: number): void {
    flushTlb(this.c, lo, hi);
  }

  /** Drive an interrupt line: `bit` is the mip bit number (csr.IRQ_*). */
  setIrq(bit: number, level: boolean): void {
    const c = this.c;
    if (level) c.mipHw |= 1 << bit;
    else c.mipHw &= ~(1 << bit);
    updateMip(c);
    if (level && c.wfi && interruptPending(c)) c.wfi = false;
  }

  /**
   * Set or clear a software-writable pending bit (`bit` is the mip bit number): SSIP as
   * M-mode firmware raises it for an IPI, or VSSIP/VSTIP/VSEIP as a hypervisor injects
   * through hvip. The guest may clear SSIP and VSSIP itself. Ends a WFI when the bit is
   * enabled in mie.
   */
  setPending(bit: number, level: boolean): void {
    const c = this.c;
    if (level) c.mipSw |= 1 << bit;
    else c.mipSw &= ~(1 << bit);
    updateMip(c);
    if (level && c.wfi && interruptPending(c)) c.wfi = false;
  }

  /** True when WFI would not wait: an interrupt is pending and enabled in mie (globally enabled or not). */
  interruptPending(): boolean {
    return interruptPending(this.c);
  }

  /** Waiting in WFI (or put there by `waitForInterrupt`). */
  get waiting(): boolean {
    return this.c.wfi;
  }

  /** Put the hart in WFI, as a host emulating WFI (or an SBI suspend) does: `run` returns `wfi` until an interrupt is pending. */
  waitForInterrupt(): void {
    this.c.wfi = true;
  }

  /**
   * Deliver an exception to the guest's own trap handler in VS-mode (vsepc, vscause,
   * vstval, vsstatus, vstvec), as a hypervisor redirects a trap (H extension, V=1).
   */
  injectVsTrap(cause: number, tval: bigint): void {
    const c = this.c;
    if (c.h === undefined || !c.virt) throw new Error("hart: a VS-mode trap needs V=1");
    enterS(c, true, cause, Number(BigInt.asIntN(32, tval)), Number(BigInt.asIntN(32, tval >> 32n)), false);
  }

  /** Ask a running `run` to return at the next check (device callbacks). */
  requestStop(): void {
    this.c.stopRequested = true;
  }

  /** minstret: instructions retired. */
  instret(): number {
    return instret(this.c);
  }

  /** mcycle: one per instruction executed, trapped ones included. */
  cycles(): number {
    return cycles(this.c);
  }

  /** Instructions executed so far (retired or trapped), for a clock that follows the guest's progress. */
  executedCount(): number {
    return executedCount(this.c);
  }

  /** The whole architectural state as JSON (between runs: snapshots and migration). */
  toState(): HartState {
    return toState(this.c);
  }

  /**
   * Restore a state taken by toState() on a hart of the same kind. Cached translations
   * and decoded instructions are dropped. Throws on a malformed state.
   */
  fromState(state: unknown): void {
    fromState(this.c, state);
  }

  /** A debugger's hook (debug-hook.ts): while set, `run` goes one instruction at a time. */
  get debugHook(): HartDebugHook<Hart> | undefined {
    return this.t.debug.hook;
  }
  set debugHook(hook: HartDebugHook<Hart> | undefined) {
    this.t.debug.hook = hook;
  }

  // ---------------------------------------------------------------- the interpreter

  /**
   * Run up to `budget` instructions and say why it stopped (exit.ts): the budget ran
   * out, WFI, a stop request, or a trap the host handles (`exitMask`). The one hot loop:
   * every instruction kind on the fast path is a case of its switch.
   */
  run(budget: number): HartExit {
    const c = this.c;
    const dbg = this.t.debug;
    if (dbg.hook !== undefined && !dbg.hooked) return runHooked(this, c, dbg, budget, () => this.run(1));
    if (!dbg.hooked) c.resValid = false;
    c.exit = null;
    c.stopRequested = false;
    if (c.wfi) {
      if (!interruptPending(c)) return EXIT_WFI;
      c.wfi = false;
    }
    const xlo = c.xlo;
    const xhi = c.xhi;
    const dv = c.ram.dv;
    let rTag = c.rTag;
    let rPage = c.rPage;
    let wTag = c.wTag;
    let wPage = c.wPage;
    const code = c.code;
    let pcLo = c.pcLo;
    let pcHi = c.pcHi;
    let curLo = INVALID_TAG;
    let curHi = 0;
    let curOff = 0;
    let dec = emptyPage;
    let gen = code.generation;
    let n = 0;
    let stop: HartExit = EXIT_BUDGET;
    c.runN = 0;
    // Fetch faults in a row with no instruction retired between them (a trap vector that
    // cannot be fetched): the run ends after STALL_LIMIT of them, so the host gets control
    // back from a guest that can never make progress.
    let stallAt = -1;
    let stalls = 0;
    // The translator (jit/index.ts): its entries, this hart's instance slot, hot counters.
    const jit = this.t.jit;
    const jitAlways = jit?.always === true;
    const entries = jit !== undefined ? jit.cache.entries : noEntries;
    const jitSlot = jit !== undefined ? jit.slot : 0;
    const hot = jit !== undefined ? jit.hot : this.t.cold;
    const st = c.st;
    let compileReq = false;
    let savedLimit = 0;
    // The pc of an instruction translated code left to the interpreter (odd: none).
    let skipLo = 1;

    let limit = 0;
    for (;;) {
      if (n >= limit) {
        if (compileReq) {
          // A jump target got hot: translate it (not a slice boundary: nothing else is looked at).
          compileReq = false;
          if (jit !== undefined) jit.compileHot(c, pcLo, pcHi, n);
          else hot[(pcLo >>> 1) & HOT_MASK] = 0x3fffffff;
          if (n < savedLimit) {
            limit = savedLimit;
            continue;
          }
        }
        // Between slices of straight-line execution: interrupts, exits, stop requests.
        c.pcLo = pcLo;
        c.pcHi = pcHi;
        c.runN = n;
        if (c.exit !== null) {
          stop = c.exit;
          break;
        }
        if (c.stopRequested) {
          stop = EXIT_STOP;
          break;
        }
        if (c.wfi) {
          stop = EXIT_WFI;
          break;
        }
        if ((c.mip !== 0 || c.h !== undefined) && takeInterrupt(c)) {
          if (c.exit !== null) {
            stop = c.exit;
            break;
          }
          pcLo = c.pcLo;
          pcHi = c.pcHi;
          curLo = INVALID_TAG;
        }
        if (n >= budget || stalls >= STALL_LIMIT) break;
        rTag = c.rTag;
        rPage = c.rPage;
        wTag = c.wTag;
        wPage = c.wPage;
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
        c.pcLo = pcLo;
        c.pcHi = pcHi;
        const off = fetchPage(c, pcLo, pcHi);
        if (off < 0) {
          pcLo = c.pcLo;
          pcHi = c.pcHi;
          curLo = INVALID_TAG;
          limit = n;
          stalls = stallAt === n ? stalls + 1 : 1;
          stallAt = n;
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
      if (w < 0) {
        // Translated code starts here (jit/index.ts): run it if its first block fits the slice.
        const e = entries[~w];
        if (e !== undefined && e.dec === dec && e.slot === slot && jit !== undefined) {
          if (n + e.min <= limit && pcLo !== skipLo) {
            if (e.region.fns[jitSlot] === undefined) {
              jit.cache.fn(e, jit);
              if (e.region.fns[jitSlot] === undefined) continue; // it could not be instantiated: the slot is interpreted
            }
            const ti = e.region.tidx[jitSlot]!;
            // the chain cache learns the entry, so translated jumps to it need not come back here
            const ci = CHAIN_I + ((((e.key >>> 1) ^ (e.key >>> 12)) & CHAIN_MASK) << 1);
            st[ci] = e.key;
            st[ci + 1] = ti * 512 + e.bb;
            const n0 = n;
            n = jit.enter(ti, n, limit, e.bb, pcLo & ~0xfff, pcHi, fpFast(c) ? 1 : 0);
            jit.executed += n - n0;
            jit.entries++;
            const how = st[ST_EXIT_I]!;
            if (how === EXIT_PC || how === EXIT_BEFORE) {
              pcLo = st[ST_PC_I]!;
              pcHi = st[ST_PC_I + 1]!;
              // BEFORE: the interpreter runs the instruction there first (TLB miss, MMIO, FS clean)
              if (how === EXIT_BEFORE) skipLo = pcLo;
              else if (--hot[(pcLo >>> 1) & HOT_MASK]! < 0) {
                // a jump out to code not translated (a side exit, a return): often taken, translate it
                savedLimit = limit;
                limit = n;
                compileReq = true;
              }
            } else {
              pcLo = c.pcLo;
              pcHi = c.pcHi;
            }
            if (how === EXIT_TRAP) limit = n;
            // the same page (an instruction left to the interpreter): its decoded slots stand
            if (how === EXIT_TRAP || how === EXIT_HELPER || (pcLo & ~0xfff) !== curLo || pcHi !== curHi) {
              curLo = INVALID_TAG;
            }
            continue;
          }
          w = e.w;
          imm = e.imm;
          skipLo = 1;
        } else {
          // A stale mark (its translation was dropped): decode the slot again.
          dec[slot] = 0;
          continue;
        }
      } else if (w === 0) {
        const po = pcLo & 0xfff;
        const h = dv.getUint16(curOff + po, true);
        if ((h & 3) !== 3) {
          w = D.decode16(h);
        } else if (po !== 0xffe) {
          w = D.decode32(dv.getInt32(curOff + po, true));
        } else {
          // A 32-bit instruction straddling two pages: decode it every time, never cache.
          const upper = fetchUpperHalf(c, pcLo, pcHi);
          if (upper < 0) {
            pcLo = c.pcLo;
            pcHi = c.pcHi;
            curLo = INVALID_TAG;
            limit = n;
            stalls = stallAt === n ? stalls + 1 : 1;
            stallAt = n;
            continue;
          }
          w = D.decode32(h | (upper << 16));
        }
        imm = D.decodedImm;
        if ((h & 3) !== 3 || po !== 0xffe) {
          dec[slot] = w;
          dec[slot + 1] = imm;
          if (jitAlways && jit.cache.compile(dv, curOff, slot, dec) >= 0) continue; // runs it next
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
            if (--hot[(pcLo >>> 1) & HOT_MASK]! < 0) {
              savedLimit = limit;
              limit = n;
              compileReq = true;
            }
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
            // returns and calls through pointers count too: a function reached only so gets hot
            if (--hot[(pcLo >>> 1) & HOT_MASK]! < 0) {
              savedLimit = limit;
              limit = n;
              compileReq = true;
            }
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
              if (imm < 0 && --hot[(pcLo >>> 1) & HOT_MASK]! < 0) {
                savedLimit = limit;
                limit = n;
                compileReq = true;
              }
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
              if (imm < 0 && --hot[(pcLo >>> 1) & HOT_MASK]! < 0) {
                savedLimit = limit;
                limit = n;
                compileReq = true;
              }
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
              if (imm < 0 && --hot[(pcLo >>> 1) & HOT_MASK]! < 0) {
                savedLimit = limit;
                limit = n;
                compileReq = true;
              }
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
              if (imm < 0 && --hot[(pcLo >>> 1) & HOT_MASK]! < 0) {
                savedLimit = limit;
                limit = n;
                compileReq = true;
              }
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
              if (imm < 0 && --hot[(pcLo >>> 1) & HOT_MASK]! < 0) {
                savedLimit = limit;
                limit = n;
                compileReq = true;
              }
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
              if (imm < 0 && --hot[(pcLo >>> 1) & HOT_MASK]! < 0) {
                savedLimit = limit;
                limit = n;
                compileReq = true;
              }
              continue;
            }
            break;
          }
        // Loads and stores: the TLB tag is compared with the page of the access's last
        // byte, so an access that crosses into the next page misses (its slot holds only
        // its own page's tag) and takes the slow path, which splits it.
        case 11 /* OP_LB */:
          {
            const r1 = (w >>> 16) & 0xff;
            const b = xlo[r1]!;
            const aLo = (b + imm) | 0;
            const aHi = (xhi[r1]! + (imm >> 31) + (aLo >>> 0 < b >>> 0 ? 1 : 0)) | 0;
            const ti = (aLo >>> 12) & TLB_MASK;
            let lo: number;
            let hi: number;
            if (rTag[2 * ti] === (aLo & ~0xfff) && rTag[2 * ti + 1] === aHi) {
              const o = rPage[ti]! + (aLo & 0xfff);
              lo = dv.getInt8(o);
              hi = lo >> 31;
            } else {
              c.pcLo = pcLo;
              c.pcHi = pcHi;
              c.lastW = w;
              const r = loadSlow(c, aLo, aHi, 1);
              if (r === 0) {
                pcLo = c.pcLo;
                pcHi = c.pcHi;
                curLo = INVALID_TAG;
                limit = n;
                continue;
              }
              if (r === 2) limit = n;
              lo = (c.ldLo << 24) >> 24;
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
            if (rTag[2 * ti] === ((aLo + 1) & ~0xfff) && rTag[2 * ti + 1] === aHi) {
              const o = rPage[ti]! + (aLo & 0xfff);
              lo = dv.getInt16(o, true);
              hi = lo >> 31;
            } else {
              c.pcLo = pcLo;
              c.pcHi = pcHi;
              c.lastW = w;
              const r = loadSlow(c, aLo, aHi, 2);
              if (r === 0) {
                pcLo = c.pcLo;
                pcHi = c.pcHi;
                curLo = INVALID_TAG;
                limit = n;
                continue;
              }
              if (r === 2) limit = n;
              lo = (c.ldLo << 16) >> 16;
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
            if (rTag[2 * ti] === ((aLo + 3) & ~0xfff) && rTag[2 * ti + 1] === aHi) {
              const o = rPage[ti]! + (aLo & 0xfff);
              lo = dv.getInt32(o, true);
              hi = lo >> 31;
            } else {
              c.pcLo = pcLo;
              c.pcHi = pcHi;
              c.lastW = w;
              const r = loadSlow(c, aLo, aHi, 4);
              if (r === 0) {
                pcLo = c.pcLo;
                pcHi = c.pcHi;
                curLo = INVALID_TAG;
                limit = n;
                continue;
              }
              if (r === 2) limit = n;
              lo = c.ldLo;
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
            if (rTag[2 * ti] === ((aLo + 7) & ~0xfff) && rTag[2 * ti + 1] === aHi) {
              const o = rPage[ti]! + (aLo & 0xfff);
              lo = dv.getInt32(o, true);
              hi = dv.getInt32(o + 4, true);
            } else {
              c.pcLo = pcLo;
              c.pcHi = pcHi;
              c.lastW = w;
              const r = loadSlow(c, aLo, aHi, 8);
              if (r === 0) {
                pcLo = c.pcLo;
                pcHi = c.pcHi;
                curLo = INVALID_TAG;
                limit = n;
                continue;
              }
              if (r === 2) limit = n;
              lo = c.ldLo;
              hi = c.ldHi;
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
            if (rTag[2 * ti] === (aLo & ~0xfff) && rTag[2 * ti + 1] === aHi) {
              const o = rPage[ti]! + (aLo & 0xfff);
              lo = dv.getUint8(o);
              hi = 0;
            } else {
              c.pcLo = pcLo;
              c.pcHi = pcHi;
              c.lastW = w;
              const r = loadSlow(c, aLo, aHi, 1);
              if (r === 0) {
                pcLo = c.pcLo;
                pcHi = c.pcHi;
                curLo = INVALID_TAG;
                limit = n;
                continue;
              }
              if (r === 2) limit = n;
              lo = c.ldLo;
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
            if (rTag[2 * ti] === ((aLo + 1) & ~0xfff) && rTag[2 * ti + 1] === aHi) {
              const o = rPage[ti]! + (aLo & 0xfff);
              lo = dv.getUint16(o, true);
              hi = 0;
            } else {
              c.pcLo = pcLo;
              c.pcHi = pcHi;
              c.lastW = w;
              const r = loadSlow(c, aLo, aHi, 2);
              if (r === 0) {
                pcLo = c.pcLo;
                pcHi = c.pcHi;
                curLo = INVALID_TAG;
                limit = n;
                continue;
              }
              if (r === 2) limit = n;
              lo = c.ldLo;
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
            if (rTag[2 * ti] === ((aLo + 3) & ~0xfff) && rTag[2 * ti + 1] === aHi) {
              const o = rPage[ti]! + (aLo & 0xfff);
              lo = dv.getInt32(o, true);
              hi = 0;
            } else {
              c.pcLo = pcLo;
              c.pcHi = pcHi;
              c.lastW = w;
              const r = loadSlow(c, aLo, aHi, 4);
              if (r === 0) {
                pcLo = c.pcLo;
                pcHi = c.pcHi;
                curLo = INVALID_TAG;
                limit = n;
                continue;
              }
              if (r === 2) limit = n;
              lo = c.ldLo;
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
            if (wTag[2 * ti] === (aLo & ~0xfff) && wTag[2 * ti + 1] === aHi) {
              const o = wPage[ti]! + (aLo & 0xfff);
              dv.setInt8(o, xlo[r2]!);
            } else {
              c.pcLo = pcLo;
              c.pcHi = pcHi;
              c.lastW = w;
              const r = storeSlow(c, aLo, aHi, 1, xlo[r2]!, xhi[r2]!);
              if (r === 0) {
                pcLo = c.pcLo;
                pcHi = c.pcHi;
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
            if (wTag[2 * ti] === ((aLo + 1) & ~0xfff) && wTag[2 * ti + 1] === aHi) {
              const o = wPage[ti]! + (aLo & 0xfff);
              dv.setInt16(o, xlo[r2]!, true);
            } else {
              c.pcLo = pcLo;
              c.pcHi = pcHi;
              c.lastW = w;
              const r = storeSlow(c, aLo, aHi, 2, xlo[r2]!, xhi[r2]!);
              if (r === 0) {
                pcLo = c.pcLo;
                pcHi = c.pcHi;
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
            if (wTag[2 * ti] === ((aLo + 3) & ~0xfff) && wTag[2 * ti + 1] === aHi) {
              const o = wPage[ti]! + (aLo & 0xfff);
              dv.setInt32(o, xlo[r2]!, true);
            } else {
              c.pcLo = pcLo;
              c.pcHi = pcHi;
              c.lastW = w;
              const r = storeSlow(c, aLo, aHi, 4, xlo[r2]!, xhi[r2]!);
              if (r === 0) {
                pcLo = c.pcLo;
                pcHi = c.pcHi;
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
            if (wTag[2 * ti] === ((aLo + 7) & ~0xfff) && wTag[2 * ti + 1] === aHi) {
              const o = wPage[ti]! + (aLo & 0xfff);
              dv.setInt32(o, xlo[r2]!, true);
              dv.setInt32(o + 4, xhi[r2]!, true);
            } else {
              c.pcLo = pcLo;
              c.pcHi = pcHi;
              c.lastW = w;
              const r = storeSlow(c, aLo, aHi, 8, xlo[r2]!, xhi[r2]!);
              if (r === 0) {
                pcLo = c.pcLo;
                pcHi = c.pcHi;
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
          if (fpFastPath(c, w, imm)) break;
          c.pcLo = pcLo;
          c.pcHi = pcHi;
          c.runN = n;
          const brk = execOne(c, w, imm, pcLo, pcHi);
          pcLo = c.pcLo;
          pcHi = c.pcHi;
          if (brk) {
            curLo = INVALID_TAG;
            limit = n;
          }
          continue;
        }
      }
      pcLo = (pcLo + 4 - ((w >>> 6) & 2)) | 0;
    }
    c.pcLo = pcLo;
    c.pcHi = pcHi;
    c.runN = n + 1;
    c.instretBase = instret(c);
    c.cycleBase = cycles(c);
    c.executed += n;
    c.runN = 0;
    c.runRef = 0;
    c.excInRun = 0;
    return stop;
  }
}
