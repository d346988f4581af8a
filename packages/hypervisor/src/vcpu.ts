/**
 * A virtual CPU: one hart plus the hypervisor's handling of its exits, like KVM's vcpu run
 * loop. Three ways to run the guest kernel:
 *
 * - "off":    plain emulation. The kernel runs in S-mode on the hart; the host is M-mode,
 *             so its `ecall`s (SBI hypercalls) are exits (EXIT_M).
 * - "nested": the kernel runs in VS-mode (H extension) with hgatp pointing at G-stage
 *             tables the hypervisor built: two-stage translation, the EPT analogue.
 *             Guest-page faults outside RAM are MMIO exits; VS ecalls are hypercalls;
 *             WFI traps (hstatus.VTW) so an idle guest is an exit too.
 * - "shadow": VS-mode with hgatp bare and vsatp pointing at shadow page tables the
 *             hypervisor keeps from the guest's own (shadow.ts); satp writes and
 *             sfence.vma trap (hstatus.VTVM).
 *
 * With firmware (`--bios`), the hart starts in M-mode at the firmware and nothing exits.
 */
import {
  csr as C,
  EXIT_HS,
  EXIT_M,
  Hart,
  STOP_BUDGET,
  STOP_EXIT,
  STOP_REQUESTED,
  STOP_WFI,
} from "@visor/cpu";
import { gpa as asGpa } from "@visor/memory";
import type { Machine } from "./machine.ts";
import { GuestError } from "./machine.ts";
import { SBI_HSM_STATE_STARTED, SBI_HSM_STATE_STOPPED, SBI_HSM_STATE_SUSPENDED } from "./sbi/index.ts";
import { ShadowMmu, type ShadowState } from "./shadow.ts";

export type VirtMode = "off" | "nested" | "shadow";

/** SBI extension IDs (SBI spec v2.0) by name, for the exit statistics. */
const SBI_EXT_NAMES: Record<number, string> = {
  16: "BASE",
  1414090053: "TIME",
  7557193: "IPI",
  1380339267: "RFENCE",
  4739917: "HSM",
  1397904212: "SRST",
  1145193294: "DBCN",
};

const HSTATUS_SPV = 1 << 7;
const HSTATUS_SPVP = 1 << 8;
const HSTATUS_VTW = 1 << 21;
const HSTATUS_VTVM = 1 << 20;

/** Exceptions the host lets the guest kernel handle itself (KVM's default hedeleg, plus illegal instruction). */
const GUEST_EXCEPTIONS =
  (1 << C.CAUSE_MISALIGNED_FETCH) |
  (1 << C.CAUSE_FETCH_ACCESS) |
  (1 << C.CAUSE_ILLEGAL_INSTRUCTION) |
  (1 << C.CAUSE_BREAKPOINT) |
  (1 << C.CAUSE_MISALIGNED_LOAD) |
  (1 << C.CAUSE_LOAD_ACCESS) |
  (1 << C.CAUSE_MISALIGNED_STORE) |
  (1 << C.CAUSE_STORE_ACCESS) |
  (1 << C.CAUSE_USER_ECALL) |
  (1 << C.CAUSE_FETCH_PAGE_FAULT) |
  (1 << C.CAUSE_LOAD_PAGE_FAULT) |
  (1 << C.CAUSE_STORE_PAGE_FAULT);
const PAGE_FAULTS =
  (1 << C.CAUSE_FETCH_PAGE_FAULT) | (1 << C.CAUSE_LOAD_PAGE_FAULT) | (1 << C.CAUSE_STORE_PAGE_FAULT);

export interface VcpuState {
  running: boolean;
  suspended: boolean;
  /** SBI timer deadline in mtime ticks; -1 for none. */
  deadline: number;
  /** Which traps the host handles (Hart.exitMask), as bootKernel/bootFirmware set it. */
  exitMask: number;
  /** The rest of the instruction slice a stop cut short (see Vcpu.sliceLeft). */
  sliceLeft: number;
  shadow?: ShadowState;
}

export class Vcpu {
  readonly hart: Hart;
  readonly mode: VirtMode;
  readonly exposesH: boolean;
  private readonly machine: Machine;
  private readonly firmware: boolean;
  running = false;
  private suspended = false;
  private deadline = Number.POSITIVE_INFINITY;
  readonly shadow: ShadowMmu | undefined;

  /** Bytes of host memory the hypervisor reserves after guest RAM for its page tables. */
  static hypervisorMemory(guestBytes: number): number {
    // G-stage tables (a 16 KiB root + one 4 KiB table per GiB) or the shadow pool.
    return Math.max(8 << 20, Math.ceil(guestBytes / 32 / 4096) * 4096);
  }

  constructor(machine: Machine, id: number, mode: VirtMode, firmware: boolean) {
    this.machine = machine;
    this.mode = firmware ? "off" : mode;
    this.firmware = firmware;
    const virt = this.mode !== "off";
    this.hart = new Hart({
      ram: machine.ram,
      bus: machine.io.mmio,
      hartId: id,
      time: () => machine.now(),
      hypervisor: virt || firmware,
      ...(id > 0 ? { codeCache: machine.vcpus[0]!.hart.code } : {}),
    });
    this.exposesH = firmware; // a guest under our hypervisor sees no H extension (no nesting)
    if (this.mode === "shadow") this.shadow = new ShadowMmu(machine, this, this.hart);
  }

  /** The vCPU's own state beyond its hart's (HSM state, the SBI timer), for snapshots. */
  toState(): VcpuState {
    return {
      running: this.running,
      suspended: this.suspended,
      deadline: Number.isFinite(this.deadline) ? this.deadline : -1,
      exitMask: this.hart.exitMask,
      sliceLeft: this.sliceLeft,
      ...(this.shadow !== undefined ? { shadow: this.shadow.toState() } : {}),
    };
  }

  /** Restore toState()'s result; the hart's state must be restored first. */
  fromState(state: unknown): void {
    const s = state as VcpuState;
    if (s === null || typeof s !== "object" || typeof s.deadline !== "number") {
      throw new Error("vcpu state: malformed");
    }
    this.running = s.running === true;
    this.suspended = s.suspended === true;
    this.deadline = s.deadline < 0 ? Number.POSITIVE_INFINITY : s.deadline;
    this.hart.exitMask = s.exitMask | 0;
    this.sliceLeft = Math.max(0, Math.floor(Number(s.sliceLeft) || 0));
    if (this.shadow !== undefined) this.shadow.fromState(s.shadow);
  }

  /** Start at a firmware entry in M-mode (OpenSBI, or a bare-metal HTIF program). */
  bootFirmware(entry: number, fdt: number): void {
    const h = this.hart;
    h.reset(entry);
    h.xlo[10] = this.hart.hartId;
    h.xlo[11] = fdt | 0;
    h.xhi[11] = Math.floor(fdt / 2 ** 32);
    h.exitMask = 0;
    this.running = true;
  }

  /** Start the guest kernel at `entry` in (V)S-mode with a0 = hart id, a1 = device tree. */
  bootKernel(entry: number, fdt: number, opaque?: bigint): void {
    const h = this.hart;
    h.reset(entry);
    // What M-mode firmware would have set up.
    h.mcounteren = 7;
    h.scounteren = 7; // as OpenSBI leaves it: cycle, time, instret readable from U-mode
    h.medeleg = 0xb1ff & ~(1 << C.CAUSE_SUPERVISOR_ECALL);
    h.mideleg = C.MIP_SSIP | C.MIP_STIP | C.MIP_SEIP;
    h.exitMask = EXIT_M;
    if (this.mode !== "off") {
      const hx = h.h!;
      h.medeleg = 0xb1ff | (1 << 10) | (0xf << 20); // everything to HS; HS is the host
      hx.hedeleg = this.mode === "shadow" ? GUEST_EXCEPTIONS & ~PAGE_FAULTS : GUEST_EXCEPTIONS;
      hx.hideleg = C.MIP_VSSIP | C.MIP_VSTIP | C.MIP_VSEIP;
      hx.hcounteren = 7;
      hx.hstatus = HSTATUS_VTW | HSTATUS_SPV | HSTATUS_SPVP | (this.mode === "shadow" ? HSTATUS_VTVM : 0);
      h.exitMask = EXIT_M | EXIT_HS;
      // The host keeps the FPU on for the guest (like KVM's sstatus.FS); the guest's own
      // vsstatus.FS decides whether it may use it.
      h.writeMstatus(h.mstatus | C.MSTATUS_FS, 0);
      h.setPriv(C.PRV_S);
      h.setVirt(true);
      if (this.mode === "nested") this.machine.gstage!.install(h);
      else this.shadow!.enter();
    } else {
      h.setPriv(C.PRV_S);
    }
    h.xlo[10] = h.hartId;
    h.xhi[10] = 0;
    if (opaque !== undefined) h.setX(11, opaque);
    else {
      h.xlo[11] = fdt | 0;
      h.xhi[11] = Math.floor(fdt / 2 ** 32);
    }
    this.running = true;
  }

  start(addr: number, opaque: bigint): void {
    this.bootKernel(addr, 0, opaque);
  }

  stop(): void {
    this.running = false;
    this.hart.requestStop();
  }

  suspend(): void {
    this.suspended = true;
    this.hart.wfi = true;
    this.hart.requestStop();
  }

  hsmState(): number {
    if (!this.running) return SBI_HSM_STATE_STOPPED;
    return this.suspended && this.hart.wfi ? SBI_HSM_STATE_SUSPENDED : SBI_HSM_STATE_STARTED;
  }

  timerDeadline(): number {
    return this.deadline;
  }

  /** SBI set_timer: the next supervisor timer interrupt, in mtime ticks. */
  setTimer(t: bigint): void {
    this.deadline = t >= BigInt(Number.MAX_SAFE_INTEGER) ? Number.POSITIVE_INFINITY : Number(t);
    this.setTimerLine(false);
    this.checkTimer(this.machine.now());
  }

  checkTimer(now: number): void {
    if (now >= this.deadline) {
      this.deadline = Number.POSITIVE_INFINITY;
      this.setTimerLine(true);
    }
  }

  private setTimerLine(level: boolean): void {
    if (this.mode === "off") this.hart.setIrq(C.IRQ_STI, level);
    else this.setVirtualIrq(C.MIP_VSTIP, level);
  }

  /** SBI send_ipi to this hart. */
  injectSoftware(): void {
    if (this.mode === "off") {
      this.hart.mipSw |= C.MIP_SSIP;
      this.hart.mip = this.hart.mipSw | this.hart.mipHw;
      if (this.hart.wfi) this.hart.wfi = false;
    } else {
      this.setVirtualIrq(C.MIP_VSSIP, true);
    }
    this.machine.exitStats.add("interrupt injected: software", 0);
  }

  /** The PLIC's supervisor context line for this hart. */
  setGuestExternal(level: boolean): void {
    if (this.mode === "off" || this.firmware) this.hart.setIrq(C.IRQ_SEI, level);
    else this.setVirtualIrq(C.MIP_VSEIP, level);
    if (level) this.machine.exitStats.add("interrupt injected: external", 0);
  }

  /** Interrupt injection through hvip (the VS bits of mip). */
  private setVirtualIrq(bit: number, level: boolean): void {
    const h = this.hart;
    if (level) h.mipSw |= bit;
    else h.mipSw &= ~bit;
    h.mip = h.mipSw | h.mipHw;
    if (level) {
      if (bit === C.MIP_VSTIP) this.machine.exitStats.add("interrupt injected: timer", 0);
      if (h.wfi && (h.mip & h.mie) !== 0) h.wfi = false;
    }
  }

  /**
   * What was left of the instruction slice when a stop request ended it. The machine's run
   * loop finishes that slice before starting new ones, so a run stopped, saved and
   * restored polls for interrupts at the same instructions as one never stopped.
   */
  sliceLeft = 0;

  /** Run up to `budget` instructions, handling exits; returns the hart's stop reason. */
  run(budget: number): number {
    const h = this.hart;
    this.sliceLeft = 0;
    const stats = this.machine.exitStats;
    let left = budget;
    while (left > 0) {
      const before = h.executedCount();
      const r = h.run(left);
      left -= h.executedCount() - before + 1;
      if (r !== STOP_EXIT) {
        if (r === STOP_WFI && this.suspended) return r;
        if (r === STOP_REQUESTED) this.sliceLeft = left;
        if (r === STOP_REQUESTED || r === STOP_WFI || r === STOP_BUDGET) return r;
        continue;
      }
      const t0 = stats.enabled ? performance.now() : 0;
      const reason = this.handleExit();
      if (stats.enabled) stats.add(reason, (performance.now() - t0) * 1e6);
      if (!this.running || this.machine.exited || this.machine.outputBlocked) {
        this.sliceLeft = left;
        return STOP_REQUESTED;
      }
      if (h.wfi) return STOP_WFI;
    }
    return STOP_BUDGET;
  }

  /** Handle one exit; returns its name for the statistics. Throws GuestError when fatal. */
  private handleExit(): string {
    const h = this.hart;
    const cause = h.exitCause;
    switch (cause) {
      case C.CAUSE_SUPERVISOR_ECALL:
      case C.CAUSE_VIRTUAL_SUPERVISOR_ECALL:
        return this.hypercall();
      case C.CAUSE_FETCH_GUEST_PAGE_FAULT:
      case C.CAUSE_LOAD_GUEST_PAGE_FAULT:
      case C.CAUSE_STORE_GUEST_PAGE_FAULT:
        if (isImplicitAccess(h.exitInsn)) {
          // The guest's own page table is not in guest RAM (a device, a hole, past RAM):
          // nothing to emulate, an access fault of the original access for the guest.
          return this.injectAccessFault(ACCESS_FAULT_OF[cause]!, "guest page table outside RAM");
        }
        return this.mmioExit(h.exitTval2, cause === C.CAUSE_STORE_GUEST_PAGE_FAULT, cause === 20);
      case C.CAUSE_FETCH_PAGE_FAULT:
      case C.CAUSE_LOAD_PAGE_FAULT:
      case C.CAUSE_STORE_PAGE_FAULT:
        if (this.shadow !== undefined) return this.shadow.pageFault(cause, this);
        break;
      case C.CAUSE_VIRTUAL_INSTRUCTION:
        return this.virtualInstruction();
    }
    throw new GuestError(`unhandled guest trap: ${describe(h)}`);
  }

  private hypercall(): string {
    const h = this.hart;
    const sbi = this.machine.sbi;
    sbi.call(h.hartId, {
      get: (i) => h.getX(10 + i),
      set: (i, v) => h.setX(10 + i, v),
    });
    h.advancePc(4);
    const eid = Number(h.getX(17) & 0xffffffffn);
    return `hypercall: SBI ${SBI_EXT_NAMES[eid] ?? (eid <= 0xf ? "legacy" : `0x${eid.toString(16)}`)}`;
  }

  /** Emulate a guest load/store to `gpa` from its (transformed) instruction. */
  mmioExit(gpa: number, _write: boolean, fetch: boolean): string {
    const h = this.hart;
    const io = this.machine.io.mmio;
    if (fetch)
      throw new GuestError(
        `guest executed from non-RAM guest-physical 0x${gpa.toString(16)}: ${describe(h)}`,
      );
    if (this.machine.memory.contains(asGpa(gpa))) {
      throw new GuestError(`guest-page fault inside guest RAM at 0x${gpa.toString(16)}: ${describe(h)}`);
    }
    const insn = h.exitInsn;
    if (insn === 0) throw new GuestError(`cannot decode the access to 0x${gpa.toString(16)}: ${describe(h)}`);
    const len = (insn & 3) === 3 ? 4 : 2;
    const opcode = (insn & 0x7f) | 3;
    const f3 = (insn >>> 12) & 7;
    const size = 1 << (f3 & 3);
    const port = this.machine.pci?.portAccess(gpa);
    const name = port?.device ?? io.deviceAt(gpa)?.device.name ?? "unmapped";
    const kind = port !== undefined ? "pio" : "mmio";
    if (opcode === 0x03) {
      const rd = (insn >>> 7) & 0x1f;
      let v: bigint;
      if (size === 8) {
        const r = io.read64(gpa);
        if (r === undefined) return this.injectAccessFault(C.CAUSE_LOAD_ACCESS, name);
        v = r;
      } else {
        const r = io.read(gpa, size as 1 | 2 | 4);
        if (r < 0) return this.injectAccessFault(C.CAUSE_LOAD_ACCESS, name);
        v = BigInt(r);
        if (f3 < 4) v = BigInt.asIntN(8 * size, v); // signed load
      }
      h.setX(rd, BigInt.asUintN(64, v));
      h.advancePc(len);
      return `${kind} read: ${name}`;
    }
    if (opcode === 0x23) {
      const rs2 = (insn >>> 20) & 0x1f;
      const v = h.getX(rs2);
      const ok = size === 8 ? io.write64(gpa, v) : io.write(gpa, size as 1 | 2 | 4, Number(v & 0xffffffffn));
      if (!ok) return this.injectAccessFault(C.CAUSE_STORE_ACCESS, name);
      h.advancePc(len);
      return `${kind} write: ${name}`;
    }
    throw new GuestError(
      `unsupported MMIO instruction 0x${insn.toString(16)} at 0x${gpa.toString(16)}: ${describe(h)}`,
    );
  }

  /**
   * A guest access to a guest-physical address with no device (a hole in the map, or past
   * guest RAM, where the hypervisor's own memory is): an access fault for the guest, with
   * the faulting virtual address, as a bus error would give it.
   */
  private injectAccessFault(cause: number, name: string): string {
    this.injectGuestTrap(cause, this.hart.exitTvalLo, this.hart.exitTvalHi);
    return `access fault injected: ${name}`;
  }

  private virtualInstruction(): string {
    const h = this.hart;
    const insn = h.exitTvalLo >>> 0;
    if (insn === 0x10500073) {
      // WFI: the vCPU idles until an interrupt is injected.
      h.advancePc(4);
      if (!h.interruptPending()) h.wfi = true;
      return "wfi";
    }
    if (this.shadow !== undefined) {
      const r = this.shadow.virtualInstruction(insn, this);
      if (r !== undefined) return r;
    }
    // Anything else the guest may not do: it gets an illegal-instruction exception, as
    // KVM redirects it, instead of taking the VM down.
    this.injectGuestTrap(C.CAUSE_ILLEGAL_INSTRUCTION, insn, 0);
    return "virtual instruction: illegal instruction injected";
  }

  /** Deliver an exception to the guest kernel's own trap handler (a VS-mode trap). */
  injectGuestTrap(cause: number, tvalLo: number, tvalHi: number): void {
    this.hart.h!.trapToVS(this.hart, cause, tvalLo, tvalHi, false);
  }
}

/**
 * htinst for a guest-page fault taken by the VS-stage walk itself (reading or updating a
 * guest PTE) is a pseudoinstruction, whose bits 1:0 are 00 (H extension §8.6.3); a real
 * (transformed) load or store has 11 or, compressed, 01/10; 0 means none.
 */
function isImplicitAccess(tinst: number): boolean {
  return tinst !== 0 && (tinst & 3) === 0;
}

/** The access fault matching a guest-page fault's access type (privileged spec table 3.6). */
const ACCESS_FAULT_OF: Record<number, number> = {
  [C.CAUSE_FETCH_GUEST_PAGE_FAULT]: C.CAUSE_FETCH_ACCESS,
  [C.CAUSE_LOAD_GUEST_PAGE_FAULT]: C.CAUSE_LOAD_ACCESS,
  [C.CAUSE_STORE_GUEST_PAGE_FAULT]: C.CAUSE_STORE_ACCESS,
};

export function describe(h: Hart): string {
  const tval = (BigInt(h.exitTvalHi >>> 0) << 32n) | BigInt(h.exitTvalLo >>> 0);
  return `pc 0x${h.pc.toString(16)} cause ${h.exitCause} (${C.EXCEPTION_NAMES[h.exitCause] ?? "?"}) tval 0x${tval.toString(16)}`;
}
