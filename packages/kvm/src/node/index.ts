/**
 * @visor/kvm/node: running vCPUs on Node worker threads (VcpuThread), with their port and
 * MMIO exits handed to the main thread; and what kind of KVM this host has.
 */
import { existsSync } from "node:fs";

export * from "./vcpu-thread.ts";

/**
 * True when this host's KVM is kvm-pvm (the module exists): a software hypervisor some
 * nested clouds expose as /dev/kvm instead of VT-x/AMD-V. A guest kernel not built for PVM
 * then runs its privileged code through KVM's instruction emulator: slowly, and a Linux
 * kernel stops early in boot on an instruction the emulator lacks (XRSTOR, INT3).
 */
export function kvmIsPvm(): boolean {
  return existsSync("/sys/module/kvm_pvm");
}
