/**
 * KVM's ABI numbers, from the Linux UAPI header <linux/kvm.h> (the ioctl numbers are
 * `_IO`/`_IOR`/`_IOW`/`_IOWR(KVMIO = 0xAE, nr, size)` with the struct sizes of x86-64;
 * the exit reasons and capabilities are the header's values).
 */

const KVMIO = 0xae;
const IOC_WRITE = 1;
const IOC_READ = 2;

/** `_IOC(dir, type, nr, size)` of <asm-generic/ioctl.h>, as an unsigned number. */
function ioc(dir: number, nr: number, size: number): number {
  return ((dir << 30) | (size << 16) | (KVMIO << 8) | nr) >>> 0;
}
const io = (nr: number) => ioc(0, nr, 0);
const ior = (nr: number, size: number) => ioc(IOC_READ, nr, size);
const iow = (nr: number, size: number) => ioc(IOC_WRITE, nr, size);
const iowr = (nr: number, size: number) => ioc(IOC_READ | IOC_WRITE, nr, size);

/** Struct sizes on x86-64 (<asm/kvm.h>, <linux/kvm.h>). */
export const SIZEOF = {
  userspaceMemoryRegion: 32,
  irqLevel: 8,
  pitConfig: 64,
  regs: 144,
  sregs: 312,
  fpu: 416,
  lapicState: 1024,
  cpuid2Header: 8,
  cpuidEntry2: 40,
  msrsHeader: 8,
  msrEntry: 16,
} as const;

export const KVM_API_VERSION = 12;

/** System ioctls (on the /dev/kvm fd). */
export const KVM_GET_API_VERSION = io(0x00);
export const KVM_CREATE_VM = io(0x01);
export const KVM_CHECK_EXTENSION = io(0x03);
export const KVM_GET_VCPU_MMAP_SIZE = io(0x04);
export const KVM_GET_SUPPORTED_CPUID = iowr(0x05, SIZEOF.cpuid2Header);

/** VM ioctls. */
export const KVM_CREATE_VCPU = io(0x41);
export const KVM_SET_USER_MEMORY_REGION = iow(0x46, SIZEOF.userspaceMemoryRegion);
export const KVM_SET_TSS_ADDR = io(0x47);
export const KVM_SET_IDENTITY_MAP_ADDR = iow(0x48, 8);
export const KVM_CREATE_IRQCHIP = io(0x60);
export const KVM_IRQ_LINE = iow(0x61, SIZEOF.irqLevel);
export const KVM_CREATE_PIT2 = iow(0x77, SIZEOF.pitConfig);

/** vCPU ioctls. */
export const KVM_RUN = io(0x80);
export const KVM_GET_REGS = ior(0x81, SIZEOF.regs);
export const KVM_SET_REGS = iow(0x82, SIZEOF.regs);
export const KVM_GET_SREGS = ior(0x83, SIZEOF.sregs);
export const KVM_SET_SREGS = iow(0x84, SIZEOF.sregs);
export const KVM_GET_MSRS = iowr(0x88, SIZEOF.msrsHeader);
export const KVM_SET_MSRS = iow(0x89, SIZEOF.msrsHeader);
export const KVM_SET_FPU = iow(0x8d, SIZEOF.fpu);
export const KVM_GET_LAPIC = ior(0x8e, SIZEOF.lapicState);
export const KVM_SET_LAPIC = iow(0x8f, SIZEOF.lapicState);
export const KVM_SET_CPUID2 = iow(0x90, SIZEOF.cpuid2Header);

/** `kvm_run.exit_reason` values. */
export const KVM_EXIT = {
  UNKNOWN: 0,
  EXCEPTION: 1,
  IO: 2,
  HYPERCALL: 3,
  DEBUG: 4,
  HLT: 5,
  MMIO: 6,
  IRQ_WINDOW_OPEN: 7,
  SHUTDOWN: 8,
  FAIL_ENTRY: 9,
  INTR: 10,
  SET_TPR: 11,
  TPR_ACCESS: 12,
  NMI: 16,
  INTERNAL_ERROR: 17,
  SYSTEM_EVENT: 24,
} as const;

/** The name of an exit reason (`KVM_EXIT_<name>`), or `exit-<n>` for one this table lacks. */
export function exitReasonName(reason: number): string {
  for (const [name, value] of Object.entries(KVM_EXIT)) if (value === reason) return name.toLowerCase();
  return `exit-${reason}`;
}

/** `kvm_run.io.direction`. */
export const KVM_EXIT_IO_IN = 0;
export const KVM_EXIT_IO_OUT = 1;

/** Capabilities for `Kvm.checkExtension` (`KVM_CAP_*`). */
export const KVM_CAP = {
  IRQCHIP: 0,
  HLT: 1,
  USER_MEMORY: 3,
  SET_TSS_ADDR: 4,
  EXT_CPUID: 7,
  NR_VCPUS: 9,
  PIT2: 33,
  MAX_VCPUS: 66,
  IMMEDIATE_EXIT: 136,
} as const;

/** Byte offsets in the shared `struct kvm_run` page. */
export const KVM_RUN_OFFSET = {
  requestInterruptWindow: 0,
  immediateExit: 1,
  exitReason: 8,
  readyForInterruptInjection: 12,
  ifFlag: 13,
  /** Start of the exit union. */
  exit: 32,
} as const;
