/**
 * What a vCPU needs from the machine it runs in, declared from the vCPU's side (as the SBI
 * declares its needs in `SbiHost`): `Machine` implements `VcpuHost`, and vcpu.ts never
 * imports machine.ts. The vCPU's snapshot types live here too, so snapshot.ts can describe
 * a saved vCPU without importing the Vcpu class.
 */
import type { MmioBus } from "@visor/io-bus";
import type { GuestMemory, GuestRam } from "@visor/memory";
import type { GStage, PageAllocator } from "./gstage.ts";
import type { SbiRegs } from "./sbi/index.ts";
import type { ShadowState } from "./shadow.ts";
import type { ExitStats } from "./stats.ts";

export type VirtMode = "off" | "nested" | "shadow";

/** Why `Vcpu.run` returned. */
export type VcpuStop = "budget" | "wfi" | "stop";

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

/**
 * The machine as its vCPUs see it. Members are read at exit time, not cached by the
 * vCPU: the machine may attach devices (the PCI bus) after creating its vCPUs.
 */
export interface VcpuHost {
  /** The harts' physical memory: guest RAM and, after it, the hypervisor's pool. */
  readonly ram: GuestRam;
  /** Guest RAM, and only that: where an MMIO exit checks a guest-physical address. */
  readonly memory: GuestMemory;
  /** The MMIO bus the hart's loads and stores and the emulated MMIO exits reach. */
  readonly io: { readonly mmio: MmioBus };
  /** The PCI I/O-port window, if the machine has one: names the device a port access hits. */
  readonly pci: { portAccess(gpa: number): { device: string } | undefined } | undefined;
  /** Serves the guest's hypercalls (SBI ecalls). */
  readonly sbi: { call(hart: number, regs: SbiRegs): void };
  /** Where the vCPU counts its exits and injected interrupts. */
  readonly exitStats: ExitStats;
  /** The G-stage tables a vCPU under nested paging installs; undefined otherwise. */
  readonly gstage: GStage | undefined;
  /** The hypervisor's page pool (the shadow MMU's tables). */
  readonly hvPool: PageAllocator;
  /** The machine has stopped (power-off, reset, failure): the vCPU returns "stop". */
  readonly exited: boolean;
  /** The console is backed up: the vCPU returns "stop" until it drains. */
  readonly outputBlocked: boolean;
  /** The machine's time in mtime ticks. */
  now(): number;
}
