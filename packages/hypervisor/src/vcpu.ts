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
  type CodeCache,
  describeExit,
  EXIT_HS,
  EXIT_M,
  type FaultAccess,
  Hart,
  type HartExit,
  type JitMode,
  type TrapExit,
} from "@visor/cpu";
import { gpa as asGpa } from "@visor/memory";
import { GuestError } from "./errors.ts";
import { SBI_HSM_STATE_STARTED, SBI_HSM_STATE_STOPPED, SBI_HSM_STATE_SUSPENDED } from "./sbi/index.ts";
import { ShadowMmu } from "./shadow.ts";
import type { VcpuHost, VcpuState, VcpuStop, VirtMode } from "./vcpu-host.ts";

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
/**
 * medeleg as firmware leaves it for a kernel in S-mode: every exception but the ecalls
 * from S and M (SBI calls reach the host, which plays M-mode).
 */
const FIRMWARE_MEDELEG = GUEST_EXCEPTIONS;
/** With the host as hypervisor (HS), every exception from VS/VU goes to HS; hedeleg passes GUEST_EXCEPTIONS on. */
const HOST_MEDELEG =
  FIRMWARE_MEDELEG |
  (1 << C.CAUSE_VIRTUAL_SUPERVISOR_ECALL) |
  (1 << C.CAUSE_FETCH_GUEST_PAGE_FAULT) |
  (1 << C.CAUSE_LOAD_GUEST_PAGE_FAULT) |
  (1 << C.CAUSE_VIRTUAL_INSTRUCTION) |
  (1 << C.CAUSE_STORE_GUEST_PAGE_FAULT);
/** The counters (cycle, time, instret) readable from the modes below, as OpenSBI leaves them. */
const COUNTERS_ALL = 7n;
/** The WFI instruction's bits (a virtual-instruction exit with hstatus.VTW). */
const INSN_WFI = 0x10500073;
export class Vcpu {
  readonly hart: Hart;
  readonly mode: VirtMode;
  /** The binary translation mode its hart was built with (HartOptions.jit). */
  readonly jit: JitMode;
  readonly exposesH: boolean;
  private readonly machine: VcpuHost;
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

  /**
   * `machine` is the host the vCPU exits to (see VcpuHost); `codeCache` a decoded-code
   * cache shared with the machine's other harts (they share one RAM), if any; `jit` the
   * hart's binary translation mode (HartOptions.jit, default "on").
   */
  constructor(
    machine: VcpuHost,
    id: number,
    mode: VirtMode,
    firmware: boolean,
    codeCache?: CodeCache,
    jit: JitMode = "on",
  ) {
    this.machine = machine;
    this.mode = firmware ? "off" : mode;
    this.firmware = firmware;
    this.jit = jit;
    const virt = this.mode !== "off";
    this.hart = new Hart({
      ram: machine.ram,
      bus: machine.io.mmio,
      hartId: id,
      time: () => machine.now(),
      hypervisor: virt || firmware,
      jit,
      ...(codeCache !== undefined ? { codeCache } : {}),
    });
    this.exposesH = firmware; // a guest under our hypervisor sees no H extension (no nesting)
    if (this.mode === "shadow")
      this.shadow = new ShadowMmu(
        { memory: machine.memory, ram: machine.ram, pool: machine.hvPool },
        this.hart,
      );
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
    h.boot({
      pc: BigInt(entry),
      priv: C.PRV_M,
      x: { 10: BigInt(h.hartId), 11: BigInt(fdt) },
      exitMask: 0,
    });
    this.running = true;
  }

  /** Start the guest kernel at `entry` in (V)S-mode with a0 = hart id, a1 = device tree. */
  bootKernel(entry: number, fdt: number, opaque?: bigint): void {
    const h = this.hart;
    const virt = this.mode !== "off";
    // What M-mode firmware would have set up: counters readable from S and U (as
    // OpenSBI leaves them), exceptions and S-level interrupts delegated.
    const csrs: [number, bigint][] = [
      [C.CSR_MCOUNTEREN, COUNTERS_ALL],
      [C.CSR_SCOUNTEREN, COUNTERS_ALL],
      [C.CSR_MIDELEG, BigInt(C.MIP_SSIP | C.MIP_STIP | C.MIP_SEIP)],
    ];
    if (virt) {
      const guestExceptions = this.mode === "shadow" ? GUEST_EXCEPTIONS & ~PAGE_FAULTS : GUEST_EXCEPTIONS;
      const hstatus =
        C.HSTATUS_VTW | C.HSTATUS_SPV | C.HSTATUS_SPVP | (this.mode === "shadow" ? C.HSTATUS_VTVM : 0);
      csrs.push(
        [C.CSR_MEDELEG, BigInt(HOST_MEDELEG)], // everything to HS; HS is the host
        [C.CSR_HEDELEG, BigInt(guestExceptions)],
        [C.CSR_HIDELEG, BigInt(C.MIP_VSSIP | C.MIP_VSTIP | C.MIP_VSEIP)],
        [C.CSR_HCOUNTEREN, COUNTERS_ALL],
        [C.CSR_HSTATUS, BigInt(hstatus)],
        // The host keeps the FPU on for the guest (like KVM's sstatus.FS); the guest's own
        // vsstatus.FS decides whether it may use it.
        [C.CSR_MSTATUS, BigInt(C.MSTATUS_FS)],
      );
    } else {
      csrs.push([C.CSR_MEDELEG, BigInt(FIRMWARE_MEDELEG)]);
    }
    h.boot({
      pc: BigInt(entry),
      priv: C.PRV_S,
      virt,
      x: { 10: BigInt(h.hartId), 11: opaque ?? BigInt(fdt) },
      csrs,
      exitMask: virt ? EXIT_M | EXIT_HS : EXIT_M,
    });
    if (this.mode === "nested") this.machine.gstage!.install(h);
    else if (this.mode === "shadow") this.shadow!.enter();
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
    this.hart.waitForInterrupt();
    this.hart.requestStop();
  }

  hsmState(): number {
    if (!this.running) return SBI_HSM_STATE_STOPPED;
    return this.suspended && this.hart.waiting ? SBI_HSM_STATE_SUSPENDED : SBI_HSM_STATE_STARTED;
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
    else this.setVirtualIrq(C.IRQ_VSTI, level);
  }

  /** SBI send_ipi to this hart. */
  injectSoftware(): void {
    if (this.mode === "off") {
      this.hart.setPending(C.IRQ_SSI, true);
    } else {
      this.setVirtualIrq(C.IRQ_VSSI, true);
    }
    this.machine.exitStats.add("interrupt injected: software", 0);
  }

  /** The PLIC's supervisor context line for this hart. */
  setGuestExternal(level: boolean): void {
    if (this.mode === "off" || this.firmware) this.hart.setIrq(C.IRQ_SEI, level);
    else this.setVirtualIrq(C.IRQ_VSEI, level);
    if (level) this.machine.exitStats.add("interrupt injected: external", 0);
  }

  /** Interrupt injection through hvip (the VS bits of mip): `irq` is csr.IRQ_VS*. */
  private setVirtualIrq(irq: number, level: boolean): void {
    this.hart.setPending(irq, level);
    if (level && irq === C.IRQ_VSTI) this.machine.exitStats.add("interrupt injected: timer", 0);
  }

  /**
   * What was left of the instruction slice when a stop request ended it. The machine's run
   * loop finishes that slice before starting new ones, so a run stopped, saved and
   * restored polls for interrupts at the same instructions as one never stopped.
   */
  sliceLeft = 0;

  /** Run up to `budget` instructions, handling exits; returns why it stopped. */
  run(budget: number): VcpuStop {
    const h = this.hart;
    this.sliceLeft = 0;
    this.shadow?.resume();
    const stats = this.machine.exitStats;
    let left = budget;
    while (left > 0) {
      const before = h.executedCount();
      const e = h.run(left);
      left -= h.executedCount() - before + 1;
      switch (e.kind) {
        case "wfi":
          return "wfi";
        case "stop":
          this.sliceLeft = left;
          return "stop";
        case "budget":
          return "budget";
      }
      const t0 = stats.enabled ? performance.now() : 0;
      const reason = this.handleExit(e);
      if (stats.enabled) stats.add(reason, (performance.now() - t0) * 1e6);
      if (!this.running || this.machine.exited || this.machine.outputBlocked) {
        this.sliceLeft = left;
        return "stop";
      }
      if (h.waiting) return "wfi";
    }
    return "budget";
  }

  /** Handle one exit; returns its name for the statistics. Throws GuestError when fatal. */
  private handleExit(e: TrapExit): string {
    switch (e.kind) {
      case "ecall":
        if (e.priv === C.PRV_S) return this.hypercall();
        break;
      case "guest-page-fault":
        if (isImplicitAccess(e.insn)) {
          // The guest's own page table is not in guest RAM (a device, a hole, past RAM):
          // nothing to emulate, an access fault of the original access for the guest.
          return this.injectAccessFault(e, ACCESS_FAULT_OF[e.cause]!, "guest page table outside RAM");
        }
        return this.mmioExit(e, e.access, e.gpa, e.insn);
      case "page-fault":
        if (this.shadow !== undefined) return this.shadow.pageFault(e, this);
        break;
      case "virtual-instruction":
        return this.virtualInstruction(e.insn);
    }
    throw new GuestError(`unhandled guest trap: ${describe(this.hart, e)}`);
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

  /**
   * Emulate a guest load/store to `gpa` from its (transformed) instruction: a G-stage
   * fault outside guest RAM, or (shadow paging) an access the shadow tables left unmapped.
   */
  mmioExit(e: TrapExit, access: FaultAccess, gpa: number, insn: number): string {
    const h = this.hart;
    const io = this.machine.io.mmio;
    if (access === "fetch")
      throw new GuestError(
        `guest executed from non-RAM guest-physical 0x${gpa.toString(16)}: ${describe(h, e)}`,
      );
    if (this.machine.memory.contains(asGpa(gpa))) {
      throw new GuestError(`guest-page fault inside guest RAM at 0x${gpa.toString(16)}: ${describe(h, e)}`);
    }
    if (insn === 0)
      throw new GuestError(`cannot decode the access to 0x${gpa.toString(16)}: ${describe(h, e)}`);
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
        if (r === undefined) return this.injectAccessFault(e, C.CAUSE_LOAD_ACCESS, name);
        v = r;
      } else {
        const r = io.read(gpa, size as 1 | 2 | 4);
        if (r < 0) return this.injectAccessFault(e, C.CAUSE_LOAD_ACCESS, name);
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
      if (!ok) return this.injectAccessFault(e, C.CAUSE_STORE_ACCESS, name);
      h.advancePc(len);
      return `${kind} write: ${name}`;
    }
    throw new GuestError(
      `unsupported MMIO instruction 0x${insn.toString(16)} at 0x${gpa.toString(16)}: ${describe(h, e)}`,
    );
  }

  /**
   * A guest access to a guest-physical address with no device (a hole in the map, or past
   * guest RAM, where the hypervisor's own memory is): an access fault for the guest, with
   * the faulting virtual address, as a bus error would give it.
   */
  private injectAccessFault(e: TrapExit, cause: number, name: string): string {
    this.injectGuestTrap(cause, e.tval);
    return `access fault injected: ${name}`;
  }

  private virtualInstruction(insn: number): string {
    const h = this.hart;
    if (insn === INSN_WFI) {
      // WFI: the vCPU idles until an interrupt is injected.
      h.advancePc(4);
      if (!h.interruptPending()) h.waitForInterrupt();
      return "wfi";
    }
    if (this.shadow !== undefined) {
      const r = this.shadow.virtualInstruction(insn, this);
      if (r !== undefined) return r;
    }
    // Anything else the guest may not do: it gets an illegal-instruction exception, as
    // KVM redirects it, instead of taking the VM down.
    this.injectGuestTrap(C.CAUSE_ILLEGAL_INSTRUCTION, BigInt(insn));
    return "virtual instruction: illegal instruction injected";
  }

  /** Deliver an exception to the guest kernel's own trap handler (a VS-mode trap). */
  injectGuestTrap(cause: number, tval: bigint): void {
    this.hart.injectVsTrap(cause, tval);
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

/** The pc and the exit, for error messages. */
export function describe(h: Hart, e: HartExit): string {
  return `pc 0x${h.pc.toString(16)} ${describeExit(e)}`;
}
