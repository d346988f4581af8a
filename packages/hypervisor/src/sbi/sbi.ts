import { type GuestMemory, gpaFromU64 } from "@visor/memory";
import {
  SBI_ERR_ALREADY_AVAILABLE,
  SBI_ERR_FAILED,
  SBI_ERR_INVALID_ADDRESS,
  SBI_ERR_INVALID_PARAM,
  SBI_ERR_NOT_SUPPORTED,
  SBI_EXT_BASE,
  SBI_EXT_DBCN,
  SBI_EXT_HSM,
  SBI_EXT_IPI,
  SBI_EXT_LEGACY_CONSOLE_GETCHAR,
  SBI_EXT_LEGACY_CONSOLE_PUTCHAR,
  SBI_EXT_LEGACY_SET_TIMER,
  SBI_EXT_LEGACY_SHUTDOWN,
  SBI_EXT_RFENCE,
  SBI_EXT_SRST,
  SBI_EXT_TIME,
  SBI_HART_MASK_BASE_ALL,
  SBI_HSM_STATE_STARTED,
  SBI_HSM_STATE_STOPPED,
  SBI_HSM_SUSPEND_NON_RET_DEFAULT,
  SBI_HSM_SUSPEND_RET_DEFAULT,
  SBI_IMPL_ID_VISOR,
  SBI_IMPL_VERSION,
  SBI_RFENCE_FULL,
  SBI_SPEC_VERSION,
  SBI_SRST_RESET_REASON_NONE,
  SBI_SRST_RESET_REASON_SYSFAIL,
  SBI_SRST_RESET_TYPE_COLD_REBOOT,
  SBI_SRST_RESET_TYPE_SHUTDOWN,
  SBI_SRST_RESET_TYPE_WARM_REBOOT,
  SBI_SUCCESS,
  type SbiHsmState,
} from "./constants.ts";
import { NO_SBI_STATS, type SbiStatsSink } from "./stats.ts";

/**
 * The caller's argument registers. `get(i)` returns a_i (i = 0..7) as a 64-bit value
 * (signed or unsigned, the SBI reads it modulo 2^64); `set(i, v)` writes a0 or a1 with
 * the unsigned 64-bit two's-complement pattern of the result (error codes are negative
 * numbers, so SBI_ERR_NOT_SUPPORTED arrives as 0xffff_ffff_ffff_fffe).
 */
export interface SbiRegs {
  get(i: number): bigint;
  set(i: number, value: bigint): void;
}

/**
 * What the SBI needs from the machine. Hart IDs are 0..hartCount-1. Physical addresses
 * are guest-physical: the SBI turns a register into a `Gpa` with gpaFromU64 (anything at or
 * above 2^53 is refused) and reaches memory only through `memory`, which is guest RAM and
 * nothing else.
 */
export interface SbiHost {
  readonly hartCount: number;
  /** Values for get_mvendorid / get_marchid / get_mimpid; 0 ("not implemented") if absent. */
  readonly mvendorid?: bigint;
  readonly marchid?: bigint;
  readonly mimpid?: bigint;

  /**
   * Program the hart's supervisor timer for absolute time `stime` (in timebase ticks)
   * and clear its pending supervisor timer interrupt (§6.1).
   */
  setTimer(hart: number, stime: bigint): void;
  /** Make a supervisor software interrupt pending on `hart` (§7.1). */
  sendIpi(hart: number): void;
  /** Run FENCE.I on these harts (§8.1). */
  remoteFenceI(harts: readonly number[]): void;
  /**
   * SFENCE.VMA on these harts for [start, start+size); size === SBI_RFENCE_FULL means the
   * whole address space. `asid` undefined means every ASID (§8.2, §8.3).
   */
  remoteSfenceVma(harts: readonly number[], start: bigint, size: bigint, asid: bigint | undefined): void;
  /** HFENCE.GVMA on these harts (guest-physical range, §8.4, §8.5). Absent: SBI_ERR_NOT_SUPPORTED. */
  remoteHfenceGvma?(harts: readonly number[], start: bigint, size: bigint, vmid: bigint | undefined): void;
  /** HFENCE.VVMA on these harts (guest-virtual range, §8.6, §8.7). Absent: SBI_ERR_NOT_SUPPORTED. */
  remoteHfenceVvma?(harts: readonly number[], start: bigint, size: bigint, asid: bigint | undefined): void;

  /**
   * Start a STOPPED hart in S-mode at `startAddr` with a0 = hart, a1 = opaque, satp = 0,
   * sstatus.SIE = 0 (§9.1). The SBI has checked the hart is STOPPED and the address is RAM.
   */
  hartStart(hart: number, startAddr: number, opaque: bigint): void;
  /** Stop the calling hart (§9.2); it no longer runs until a hart_start. */
  hartStop(hart: number): void;
  /** The hart's HSM state (SBI_HSM_STATE_*). */
  hartStatus(hart: number): SbiHsmState;
  /**
   * Suspend the calling hart until an interrupt is pending for it (even a disabled one).
   * Retentive: it then continues after the ecall (a0 already holds SBI_SUCCESS), like
   * WFI. Non-retentive: it then resumes in S-mode at `resumeAddr` with a0 = hart,
   * a1 = opaque, satp = 0 (§9.4).
   */
  hartSuspend(hart: number, retentive: boolean, resumeAddr: number, opaque: bigint): void;

  /** Shut down or reboot the machine (SBI_SRST_RESET_TYPE_*, SBI_SRST_RESET_REASON_*, §10.1). */
  systemReset(type: number, reason: number): void;

  /** Write bytes to the console. */
  consoleWrite(bytes: Uint8Array): void;
  /** Up to `max` bytes of pending console input (empty when there is none); never blocks. */
  consoleRead(max: number): Uint8Array;

  /** Guest RAM (only): the DBCN buffers and HSM start addresses must lie in it. */
  readonly memory: GuestMemory;
}

export interface SbiOptions {
  /** Value of get_impl_version; default SBI_IMPL_VERSION. */
  implVersion?: number;
  /** Most bytes one DBCN console_write / console_read moves (partial transfers are allowed, §12). */
  consoleChunk?: number;
}

const U64 = (v: bigint): bigint => BigInt.asUintN(64, v);

/** Bytes an HSM start address must have in guest RAM (one compressed instruction). */
const MIN_INSN_BYTES = 2;

/** Extension names as the spec titles them (§4 .. §12), for statistics. */
const EXT_NAMES = new Map<number, string>([
  [SBI_EXT_BASE, "BASE"],
  [SBI_EXT_TIME, "TIME"],
  [SBI_EXT_IPI, "IPI"],
  [SBI_EXT_RFENCE, "RFENCE"],
  [SBI_EXT_HSM, "HSM"],
  [SBI_EXT_SRST, "SRST"],
  [SBI_EXT_DBCN, "DBCN"],
]);

/** Function names from the spec's function listings. */
const FN_NAMES = new Map<number, readonly string[]>([
  [
    SBI_EXT_BASE,
    [
      "sbi_get_spec_version",
      "sbi_get_impl_id",
      "sbi_get_impl_version",
      "sbi_probe_extension",
      "sbi_get_mvendorid",
      "sbi_get_marchid",
      "sbi_get_mimpid",
    ],
  ],
  [SBI_EXT_TIME, ["sbi_set_timer"]],
  [SBI_EXT_IPI, ["sbi_send_ipi"]],
  [
    SBI_EXT_RFENCE,
    [
      "sbi_remote_fence_i",
      "sbi_remote_sfence_vma",
      "sbi_remote_sfence_vma_asid",
      "sbi_remote_hfence_gvma_vmid",
      "sbi_remote_hfence_gvma",
      "sbi_remote_hfence_vvma_asid",
      "sbi_remote_hfence_vvma",
    ],
  ],
  [SBI_EXT_HSM, ["sbi_hart_start", "sbi_hart_stop", "sbi_hart_get_status", "sbi_hart_suspend"]],
  [SBI_EXT_SRST, ["sbi_system_reset"]],
  [SBI_EXT_DBCN, ["sbi_debug_console_write", "sbi_debug_console_read", "sbi_debug_console_write_byte"]],
]);

/** Legacy extensions (§5): each EID is one function. */
const LEGACY_NAMES = [
  "sbi_set_timer",
  "sbi_console_putchar",
  "sbi_console_getchar",
  "sbi_clear_ipi",
  "sbi_send_ipi",
  "sbi_remote_fence_i",
  "sbi_remote_sfence_vma",
  "sbi_remote_sfence_vma_asid",
  "sbi_shutdown",
] as const;

/** Legacy extensions this SBI implements. The others (0x03..0x07) take a hart mask by
 * *virtual* address, which a firmware outside the guest's MMU cannot read reliably;
 * Linux uses them only when the v0.2+ extensions are missing. */
const LEGACY_IMPLEMENTED = new Set([
  SBI_EXT_LEGACY_SET_TIMER,
  SBI_EXT_LEGACY_CONSOLE_PUTCHAR,
  SBI_EXT_LEGACY_CONSOLE_GETCHAR,
  SBI_EXT_LEGACY_SHUTDOWN,
]);

/**
 * The built-in SBI firmware: what M-mode firmware (OpenSBI) provides on real hardware,
 * here in TypeScript. The exit loop calls `call(hart, regs)` for every `ecall` from
 * S-mode (or VS-mode when the guest runs virtualized), then advances the caller's pc
 * past the ecall. Results follow the binary encoding of §3: a0 = error, a1 = value;
 * legacy calls (§5) return a single value in a0 and leave a1 alone.
 */
export class Sbi {
  private readonly host: SbiHost;
  private readonly stats: SbiStatsSink;
  private readonly implVersion: number;
  private readonly consoleChunk: number;

  constructor(host: SbiHost, stats: SbiStatsSink = NO_SBI_STATS, opts: SbiOptions = {}) {
    if (!Number.isInteger(host.hartCount) || host.hartCount < 1) {
      throw new RangeError(`sbi: hart count ${host.hartCount} must be a positive integer`);
    }
    this.host = host;
    this.stats = stats;
    this.implVersion = opts.implVersion ?? SBI_IMPL_VERSION;
    this.consoleChunk = opts.consoleChunk ?? 64 * 1024;
    if (!Number.isInteger(this.consoleChunk) || this.consoleChunk < 1) {
      throw new RangeError(`sbi: console chunk ${this.consoleChunk} must be a positive integer`);
    }
  }

  /** True when probe_extension reports `eid` as available. */
  hasExtension(eid: bigint | number): boolean {
    const e = typeof eid === "bigint" ? (eid > 0xffff_ffffn ? -1 : Number(eid)) : eid;
    return EXT_NAMES.has(e) || LEGACY_IMPLEMENTED.has(e);
  }

  /** Handles one SBI call from `hart`: reads a0..a7 and writes the result into a0 (and a1). */
  call(hart: number, regs: SbiRegs): void {
    const eidRaw = U64(regs.get(7));
    const eid = eidRaw > 0xffff_ffffn ? -1 : Number(eidRaw);
    const fidRaw = U64(regs.get(6));
    const fid = fidRaw > 0xffff_ffffn ? -1 : Number(fidRaw);

    if (eid >= 0 && eid <= 0x0f) {
      this.legacy(hart, eid, regs);
      return;
    }
    const ext = EXT_NAMES.get(eid);
    if (ext === undefined) {
      this.finish(regs, hart, `0x${eidRaw.toString(16)}`, `fid ${fidRaw}`, SBI_ERR_NOT_SUPPORTED, 0n);
      return;
    }
    const fnName = FN_NAMES.get(eid)![fid] ?? `fid ${fidRaw}`;
    let err = SBI_SUCCESS;
    let value = 0n;
    const a = (i: number): bigint => U64(regs.get(i));
    switch (eid) {
      case SBI_EXT_BASE:
        [err, value] = this.base(fid, a(0));
        break;
      case SBI_EXT_TIME:
        if (fid === 0) this.host.setTimer(hart, a(0));
        else err = SBI_ERR_NOT_SUPPORTED;
        break;
      case SBI_EXT_IPI:
        if (fid === 0) {
          const harts = this.hartList(a(0), a(1));
          if (harts === undefined) err = SBI_ERR_INVALID_PARAM;
          else for (const h of harts) this.host.sendIpi(h);
        } else err = SBI_ERR_NOT_SUPPORTED;
        break;
      case SBI_EXT_RFENCE:
        err = this.rfence(fid, a(0), a(1), a(2), a(3), a(4));
        break;
      case SBI_EXT_HSM:
        [err, value] = this.hsm(hart, fid, a(0), a(1), a(2));
        break;
      case SBI_EXT_SRST:
        err = fid === 0 ? this.systemReset(a(0), a(1)) : SBI_ERR_NOT_SUPPORTED;
        break;
      case SBI_EXT_DBCN:
        [err, value] = this.dbcn(fid, a(0), a(1), a(2));
        break;
    }
    this.finish(regs, hart, ext, fnName, err, value);
  }

  private finish(regs: SbiRegs, hart: number, ext: string, fn: string, err: number, value: bigint): void {
    regs.set(0, U64(BigInt(err)));
    regs.set(1, U64(value));
    this.stats.sbiCall(hart, ext, fn, err);
  }

  // ---- §5 legacy extensions ------------------------------------------------------------

  private legacy(hart: number, eid: number, regs: SbiRegs): void {
    let ret = 0n;
    switch (eid) {
      case SBI_EXT_LEGACY_SET_TIMER:
        this.host.setTimer(hart, U64(regs.get(0)));
        break;
      case SBI_EXT_LEGACY_CONSOLE_PUTCHAR:
        this.host.consoleWrite(Uint8Array.of(Number(U64(regs.get(0)) & 0xffn)));
        break;
      case SBI_EXT_LEGACY_CONSOLE_GETCHAR: {
        const b = this.host.consoleRead(1);
        ret = b.length > 0 ? BigInt(b[0]!) : -1n;
        break;
      }
      case SBI_EXT_LEGACY_SHUTDOWN:
        this.host.systemReset(SBI_SRST_RESET_TYPE_SHUTDOWN, SBI_SRST_RESET_REASON_NONE);
        break;
      default:
        ret = BigInt(SBI_ERR_NOT_SUPPORTED);
    }
    regs.set(0, U64(ret));
    const name = LEGACY_NAMES[eid] ?? `eid 0x${eid.toString(16)}`;
    this.stats.sbiCall(
      hart,
      "LEGACY",
      name,
      LEGACY_IMPLEMENTED.has(eid) ? SBI_SUCCESS : SBI_ERR_NOT_SUPPORTED,
    );
  }

  // ---- §4 base -------------------------------------------------------------------------

  private base(fid: number, arg: bigint): [number, bigint] {
    const h = this.host;
    switch (fid) {
      case 0:
        return [SBI_SUCCESS, BigInt(SBI_SPEC_VERSION)];
      case 1:
        return [SBI_SUCCESS, BigInt(SBI_IMPL_ID_VISOR)];
      case 2:
        return [SBI_SUCCESS, BigInt(this.implVersion)];
      case 3:
        return [SBI_SUCCESS, this.hasExtension(arg) ? 1n : 0n];
      case 4:
        return [SBI_SUCCESS, h.mvendorid ?? 0n];
      case 5:
        return [SBI_SUCCESS, h.marchid ?? 0n];
      case 6:
        return [SBI_SUCCESS, h.mimpid ?? 0n];
      default:
        return [SBI_ERR_NOT_SUPPORTED, 0n];
    }
  }

  // ---- §3 hart list: hart_mask / hart_mask_base ----------------------------------------

  /** The harts named by (hart_mask, hart_mask_base), or undefined if one is not a valid hart. */
  private hartList(mask: bigint, base: bigint): number[] | undefined {
    const n = this.host.hartCount;
    const out: number[] = [];
    if (base === SBI_HART_MASK_BASE_ALL) {
      for (let h = 0; h < n; h++) out.push(h);
      return out;
    }
    for (let bit = 0; mask !== 0n; bit++, mask >>= 1n) {
      if ((mask & 1n) === 0n) continue;
      const id = base + BigInt(bit);
      if (id >= BigInt(n)) return undefined;
      out.push(Number(id));
    }
    return out;
  }

  // ---- §8 RFENCE -----------------------------------------------------------------------

  private rfence(
    fid: number,
    mask: bigint,
    maskBase: bigint,
    start: bigint,
    size: bigint,
    id: bigint,
  ): number {
    const h = this.host;
    if (fid < 0 || fid > 6) return SBI_ERR_NOT_SUPPORTED;
    const gvma = fid === 3 || fid === 4;
    const vvma = fid === 5 || fid === 6;
    if ((gvma && h.remoteHfenceGvma === undefined) || (vvma && h.remoteHfenceVvma === undefined)) {
      return SBI_ERR_NOT_SUPPORTED;
    }
    const harts = this.hartList(mask, maskBase);
    if (harts === undefined) return SBI_ERR_INVALID_PARAM;
    if (fid === 0) {
      h.remoteFenceI(harts);
      return SBI_SUCCESS;
    }
    // (0, 0) and size = 2^64-1 mean "everything"; otherwise the range must not wrap.
    if ((start === 0n && size === 0n) || size === SBI_RFENCE_FULL) {
      start = 0n;
      size = SBI_RFENCE_FULL;
    } else if (start + size > SBI_RFENCE_FULL + 1n) {
      return SBI_ERR_INVALID_ADDRESS;
    }
    const withId = fid === 2 || fid === 3 || fid === 5;
    const tag = withId ? id : undefined;
    if (fid === 1 || fid === 2) h.remoteSfenceVma(harts, start, size, tag);
    else if (gvma) h.remoteHfenceGvma!(harts, start, size, tag);
    else h.remoteHfenceVvma!(harts, start, size, tag);
    return SBI_SUCCESS;
  }

  // ---- §9 HSM --------------------------------------------------------------------------

  private hsm(hart: number, fid: number, a0: bigint, a1: bigint, a2: bigint): [number, bigint] {
    const h = this.host;
    const validHart = (id: bigint): number => (id < BigInt(h.hartCount) ? Number(id) : -1);
    switch (fid) {
      case 0: {
        // hart_start(hartid, start_addr, opaque)
        const target = validHart(a0);
        if (target < 0) return [SBI_ERR_INVALID_PARAM, 0n];
        const addr = gpaFromU64(a1);
        if (addr === undefined || !h.memory.contains(addr, MIN_INSN_BYTES))
          return [SBI_ERR_INVALID_ADDRESS, 0n];
        if (h.hartStatus(target) !== SBI_HSM_STATE_STOPPED) return [SBI_ERR_ALREADY_AVAILABLE, 0n];
        h.hartStart(target, addr, a2);
        return [SBI_SUCCESS, 0n];
      }
      case 1:
        // hart_stop(): only a started hart can be running this call.
        if (h.hartStatus(hart) !== SBI_HSM_STATE_STARTED) return [SBI_ERR_FAILED, 0n];
        h.hartStop(hart);
        return [SBI_SUCCESS, 0n];
      case 2: {
        const target = validHart(a0);
        if (target < 0) return [SBI_ERR_INVALID_PARAM, 0n];
        return [SBI_SUCCESS, BigInt(h.hartStatus(target))];
      }
      case 3: {
        // hart_suspend(suspend_type: u32, resume_addr, opaque)
        const type = Number(a0 & 0xffff_ffffn);
        if (type === SBI_HSM_SUSPEND_RET_DEFAULT) {
          h.hartSuspend(hart, true, 0, 0n);
          return [SBI_SUCCESS, 0n];
        }
        if (type === SBI_HSM_SUSPEND_NON_RET_DEFAULT) {
          const addr = gpaFromU64(a1);
          if (addr === undefined || !h.memory.contains(addr, MIN_INSN_BYTES))
            return [SBI_ERR_INVALID_ADDRESS, 0n];
          h.hartSuspend(hart, false, addr, a2);
          return [SBI_SUCCESS, 0n];
        }
        // Reserved types and platform-specific ones (none implemented here).
        return [SBI_ERR_INVALID_PARAM, 0n];
      }
      default:
        return [SBI_ERR_NOT_SUPPORTED, 0n];
    }
  }

  // ---- §10 SRST ------------------------------------------------------------------------

  private systemReset(typeArg: bigint, reasonArg: bigint): number {
    // Both are uint32_t in the spec's C signature; the upper register bits are ignored.
    const type = Number(typeArg & 0xffff_ffffn);
    const reason = Number(reasonArg & 0xffff_ffffn);
    const typeOk =
      type === SBI_SRST_RESET_TYPE_SHUTDOWN ||
      type === SBI_SRST_RESET_TYPE_COLD_REBOOT ||
      type === SBI_SRST_RESET_TYPE_WARM_REBOOT;
    const reasonOk = reason === SBI_SRST_RESET_REASON_NONE || reason === SBI_SRST_RESET_REASON_SYSFAIL;
    // Reserved values and unimplemented vendor/implementation-specific ones.
    if (!typeOk || !reasonOk) return SBI_ERR_INVALID_PARAM;
    this.host.systemReset(type, reason);
    return SBI_SUCCESS;
  }

  // ---- §12 DBCN ------------------------------------------------------------------------

  private dbcn(fid: number, a0: bigint, lo: bigint, hi: bigint): [number, bigint] {
    const h = this.host;
    if (fid === 2) {
      h.consoleWrite(Uint8Array.of(Number(a0 & 0xffn)));
      return [SBI_SUCCESS, 0n];
    }
    if (fid !== 0 && fid !== 1) return [SBI_ERR_NOT_SUPPORTED, 0n];
    // The buffer is at physical address base_addr_hi:base_addr_lo; on RV64 the address
    // is XLEN bits, so a non-zero high half cannot be RAM.
    const n = a0 > BigInt(this.consoleChunk) ? this.consoleChunk : Number(a0);
    if (n === 0) return [SBI_SUCCESS, 0n];
    const pa = gpaFromU64(lo);
    if (hi !== 0n || pa === undefined || !h.memory.contains(pa, n)) return [SBI_ERR_INVALID_PARAM, 0n];
    if (fid === 0) {
      h.consoleWrite(h.memory.view(pa, n).slice());
      return [SBI_SUCCESS, BigInt(n)];
    }
    const got = h.consoleRead(n);
    if (got.length === 0) return [SBI_SUCCESS, 0n];
    const bytes = got.length > n ? got.subarray(0, n) : got;
    h.memory.write(pa, bytes);
    return [SBI_SUCCESS, BigInt(bytes.length)];
  }
}
