/**
 * Why `Hart.run` returned: a discriminated union on `kind`, in the manner of kvm-ioctls'
 * `VcpuExit`. The three non-trap exits are shared constants; a trap exit is one object
 * made when the trap leaves `run` (never per instruction).
 *
 * A trap exit is a trap the host handles (see `Hart.exitMask`): the pc is still at the
 * trapping instruction and no guest CSR was written. Every trap exit carries the raw
 * `cause` (the scause/mcause exception code, without the interrupt bit) and `tval`.
 */
import * as C from "./csr.ts";

/** Access types of a fault, as named by its cause. */
export type FaultAccess = "fetch" | "load" | "store";

interface TrapBase {
  /** The exception (or, for `interrupt`, interrupt) code. */
  readonly cause: number;
  /** The trap value (mtval/stval) as an unsigned 64-bit integer. */
  readonly tval: bigint;
}

/** `run` used up its budget. */
export interface BudgetExit {
  readonly kind: "budget";
}
/** The hart executed WFI with no interrupt pending; call `run` again once one may be. */
export interface WfiExit {
  readonly kind: "wfi";
}
/** `requestStop()` was called (from a device callback, for example). */
export interface StopExit {
  readonly kind: "stop";
}
/** ECALL from the mode its cause names: `priv` U, S or M, `virt` for VS-mode (an ecall from VU-mode has the U-mode cause). */
export interface EcallExit extends TrapBase {
  readonly kind: "ecall";
  readonly priv: number;
  readonly virt: boolean;
}
/**
 * A page fault of the (VS-)stage-1 translation at virtual address `addr`; `insn` is the
 * transformed load/store (htinst-style) with the H extension, or 0.
 */
export interface PageFaultExit extends TrapBase {
  readonly kind: "page-fault";
  readonly access: FaultAccess;
  readonly addr: bigint;
  readonly insn: number;
}
/**
 * A G-stage fault of a virtualized guest (H extension): `gpa` is the guest-physical
 * address, `addr` the guest-virtual one, `insn` the transformed instruction (htinst) or 0.
 */
export interface GuestPageFaultExit extends TrapBase {
  readonly kind: "guest-page-fault";
  readonly access: FaultAccess;
  readonly addr: bigint;
  readonly gpa: number;
  readonly insn: number;
}
/** An access fault (nothing at the physical address, or a failed device access). */
export interface AccessFaultExit extends TrapBase {
  readonly kind: "access-fault";
  readonly access: FaultAccess;
  readonly addr: bigint;
  readonly insn: number;
}
/** A misaligned fetch, or a misaligned LR/SC/AMO. */
export interface MisalignedExit extends TrapBase {
  readonly kind: "misaligned";
  readonly access: FaultAccess;
  readonly addr: bigint;
  readonly insn: number;
}
/** An illegal instruction: `insn` holds its bits (0 when it could not be read). */
export interface IllegalInstructionExit extends TrapBase {
  readonly kind: "illegal-instruction";
  readonly insn: number;
}
/** A virtual-instruction exception (H extension): `insn` holds its bits. */
export interface VirtualInstructionExit extends TrapBase {
  readonly kind: "virtual-instruction";
  readonly insn: number;
}
/** EBREAK at `addr`. */
export interface BreakpointExit extends TrapBase {
  readonly kind: "breakpoint";
  readonly addr: bigint;
}
/** An interrupt that would enter a mode the host plays; `cause` is its number (csr.IRQ_*). */
export interface InterruptExit extends TrapBase {
  readonly kind: "interrupt";
}

/** A trap the host handles. */
export type TrapExit =
  | EcallExit
  | PageFaultExit
  | GuestPageFaultExit
  | AccessFaultExit
  | MisalignedExit
  | IllegalInstructionExit
  | VirtualInstructionExit
  | BreakpointExit
  | InterruptExit;

export type HartExit = BudgetExit | WfiExit | StopExit | TrapExit;

export const EXIT_BUDGET: BudgetExit = Object.freeze({ kind: "budget" });
export const EXIT_WFI: WfiExit = Object.freeze({ kind: "wfi" });
export const EXIT_STOP: StopExit = Object.freeze({ kind: "stop" });

/** True for the exits that are traps for the host to handle. */
export function isTrapExit(e: HartExit): e is TrapExit {
  return e.kind !== "budget" && e.kind !== "wfi" && e.kind !== "stop";
}

/** The 64-bit value of an int32 pair, unsigned. */
function u64(lo: number, hi: number): bigint {
  if (hi === 0) return BigInt(lo >>> 0);
  return (BigInt(hi >>> 0) << 32n) | BigInt(lo >>> 0);
}

function accessOf(cause: number): FaultAccess {
  switch (cause) {
    case C.CAUSE_MISALIGNED_FETCH:
    case C.CAUSE_FETCH_ACCESS:
    case C.CAUSE_FETCH_PAGE_FAULT:
    case C.CAUSE_FETCH_GUEST_PAGE_FAULT:
      return "fetch";
    case C.CAUSE_MISALIGNED_LOAD:
    case C.CAUSE_LOAD_ACCESS:
    case C.CAUSE_LOAD_PAGE_FAULT:
    case C.CAUSE_LOAD_GUEST_PAGE_FAULT:
      return "load";
    default:
      return "store";
  }
}

/**
 * The exit for a trap the host handles. `gpa` is the guest-physical address of a
 * guest-page fault, `insn` the trap's instruction value (mtinst/htinst style).
 */
export function trapExit(
  cause: number,
  irq: boolean,
  tvalLo: number,
  tvalHi: number,
  gpa: number,
  insn: number,
): TrapExit {
  const tval = u64(tvalLo, tvalHi);
  if (irq) return { kind: "interrupt", cause, tval };
  switch (cause) {
    case C.CAUSE_USER_ECALL:
      return { kind: "ecall", cause, tval, priv: C.PRV_U, virt: false };
    case C.CAUSE_SUPERVISOR_ECALL:
      return { kind: "ecall", cause, tval, priv: C.PRV_S, virt: false };
    case C.CAUSE_VIRTUAL_SUPERVISOR_ECALL:
      return { kind: "ecall", cause, tval, priv: C.PRV_S, virt: true };
    case C.CAUSE_MACHINE_ECALL:
      return { kind: "ecall", cause, tval, priv: C.PRV_M, virt: false };
    case C.CAUSE_FETCH_PAGE_FAULT:
    case C.CAUSE_LOAD_PAGE_FAULT:
    case C.CAUSE_STORE_PAGE_FAULT:
      return { kind: "page-fault", cause, tval, access: accessOf(cause), addr: tval, insn };
    case C.CAUSE_FETCH_GUEST_PAGE_FAULT:
    case C.CAUSE_LOAD_GUEST_PAGE_FAULT:
    case C.CAUSE_STORE_GUEST_PAGE_FAULT:
      return { kind: "guest-page-fault", cause, tval, access: accessOf(cause), addr: tval, gpa, insn };
    case C.CAUSE_FETCH_ACCESS:
    case C.CAUSE_LOAD_ACCESS:
    case C.CAUSE_STORE_ACCESS:
      return { kind: "access-fault", cause, tval, access: accessOf(cause), addr: tval, insn };
    case C.CAUSE_MISALIGNED_FETCH:
    case C.CAUSE_MISALIGNED_LOAD:
    case C.CAUSE_MISALIGNED_STORE:
      return { kind: "misaligned", cause, tval, access: accessOf(cause), addr: tval, insn };
    case C.CAUSE_ILLEGAL_INSTRUCTION:
      return { kind: "illegal-instruction", cause, tval, insn: tvalLo >>> 0 };
    case C.CAUSE_VIRTUAL_INSTRUCTION:
      return { kind: "virtual-instruction", cause, tval, insn: tvalLo >>> 0 };
    case C.CAUSE_BREAKPOINT:
      return { kind: "breakpoint", cause, tval, addr: tval };
    default:
      // Every exception code the hart raises is listed above; a new one must be added.
      throw new Error(`hart: no exit kind for exception cause ${cause}`);
  }
}

/** One line for errors and traces: the exit's kind, cause name and trap value. */
export function describeExit(e: HartExit): string {
  if (!isTrapExit(e)) return e.kind;
  const name = e.kind === "interrupt" ? `interrupt ${e.cause}` : (C.EXCEPTION_NAMES[e.cause] ?? "?");
  return `cause ${e.cause} (${name}) tval 0x${e.tval.toString(16)}`;
}
