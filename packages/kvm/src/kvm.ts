/**
 * The system, VM and vCPU file descriptors of KVM, as rust-vmm's kvm-ioctls shapes them:
 * `Kvm` (/dev/kvm) creates a `VmFd`, which creates `VcpuFd`s; each vCPU's shared
 * `kvm_run` page is a `KvmRun`. Every call checks its result and throws a `KvmError`
 * naming the ioctl and errno.
 */
import {
  KVM_API_VERSION,
  KVM_CHECK_EXTENSION,
  KVM_CREATE_IRQCHIP,
  KVM_CREATE_PIT2,
  KVM_CREATE_VCPU,
  KVM_CREATE_VM,
  KVM_GET_API_VERSION,
  KVM_GET_LAPIC,
  KVM_GET_REGS,
  KVM_GET_SREGS,
  KVM_GET_SUPPORTED_CPUID,
  KVM_GET_VCPU_MMAP_SIZE,
  KVM_IRQ_LINE,
  KVM_RUN,
  KVM_SET_CPUID2,
  KVM_SET_FPU,
  KVM_SET_IDENTITY_MAP_ADDR,
  KVM_SET_LAPIC,
  KVM_SET_MSRS,
  KVM_SET_REGS,
  KVM_SET_SREGS,
  KVM_SET_TSS_ADDR,
  KVM_SET_USER_MEMORY_REGION,
  SIZEOF,
} from "./constants.ts";
import { E2BIG, EAGAIN, EINTR, KvmError } from "./errors.ts";
import {
  getLibc,
  type Libc,
  MAP_ANONYMOUS,
  MAP_NORESERVE,
  MAP_PRIVATE,
  MAP_SHARED,
  O_CLOEXEC,
  O_RDWR,
  PROT_READ,
  PROT_WRITE,
} from "./libc.ts";
import { KvmRun } from "./run.ts";
import {
  type CpuidEntry,
  cpuid2Buffer,
  decodeCpuid2,
  decodeRegs,
  decodeSregs,
  encodeCpuid2,
  encodeMsrs,
  encodeRegs,
  encodeSregs,
  type MsrEntry,
  type Regs,
  type Sregs,
} from "./structs.ts";

function fail(c: Libc, op: string): never {
  const e = c.errno();
  throw new KvmError(op, e, c.strerror(e));
}

function check(c: Libc, r: number, op: string): number {
  if (r < 0) fail(c, op);
  return r;
}

/** The default KVM device. */
export const KVM_DEVICE = "/dev/kvm";

/** /dev/kvm, opened. */
export class Kvm {
  readonly fd: number;
  private readonly c: Libc;

  private constructor(fd: number, c: Libc) {
    this.fd = fd;
    this.c = c;
  }

  /** Open the KVM device and check its API version (12, the only one there has been). */
  static open(path = KVM_DEVICE): Kvm {
    const c = getLibc();
    const fd = c.open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0) {
      const e = c.errno();
      throw new KvmError(`open ${path}`, e, c.strerror(e));
    }
    const kvm = new Kvm(fd, c);
    const v = kvm.apiVersion();
    if (v !== KVM_API_VERSION) {
      kvm.close();
      throw new KvmError(`${path}: KVM API version ${v}, expected ${KVM_API_VERSION}`, 0, "unsupported");
    }
    return kvm;
  }

  apiVersion(): number {
    return check(this.c, this.c.ioctlInt(this.fd, KVM_GET_API_VERSION, 0), "KVM_GET_API_VERSION");
  }

  /** KVM_CHECK_EXTENSION: 0 when absent, else the capability's value (often 1). */
  checkExtension(cap: number): number {
    return check(this.c, this.c.ioctlInt(this.fd, KVM_CHECK_EXTENSION, cap), "KVM_CHECK_EXTENSION");
  }

  /** Size of each vCPU's shared `kvm_run` mapping. */
  vcpuMmapSize(): number {
    return check(this.c, this.c.ioctlInt(this.fd, KVM_GET_VCPU_MMAP_SIZE, 0), "KVM_GET_VCPU_MMAP_SIZE");
  }

  /** The CPUID leaves KVM can present to a guest (KVM_GET_SUPPORTED_CPUID). */
  supportedCpuid(): CpuidEntry[] {
    for (let cap = 64; cap <= 4096; cap *= 2) {
      const b = cpuid2Buffer(cap);
      if (this.c.ioctlPtr(this.fd, KVM_GET_SUPPORTED_CPUID, b) >= 0) return decodeCpuid2(b);
      if (this.c.errno() !== E2BIG) fail(this.c, "KVM_GET_SUPPORTED_CPUID");
    }
    throw new KvmError("KVM_GET_SUPPORTED_CPUID", E2BIG, "more than 4096 entries");
  }

  createVm(): VmFd {
    const fd = check(this.c, this.c.ioctlInt(this.fd, KVM_CREATE_VM, 0), "KVM_CREATE_VM");
    return new VmFd(fd, this.vcpuMmapSize(), this.c);
  }

  close(): void {
    this.c.close(this.fd);
  }
}

/** A guest memory region of `KVM_SET_USER_MEMORY_REGION`. */
export interface MemoryRegion {
  slot: number;
  flags?: number;
  guestPhysAddr: number;
  memorySize: number;
  /** Host virtual address of the backing memory (GuestMapping.address). */
  userspaceAddr: bigint;
}

/** A VM. */
export class VmFd {
  readonly fd: number;
  /** Size of each vCPU's `kvm_run` mapping. */
  readonly runSize: number;
  private readonly c: Libc;
  private readonly irqBuf = new Uint8Array(SIZEOF.irqLevel);
  private readonly irqView = new DataView(this.irqBuf.buffer);

  constructor(fd: number, runSize: number, c: Libc = getLibc()) {
    this.fd = fd;
    this.runSize = runSize;
    this.c = c;
  }

  setUserMemoryRegion(r: MemoryRegion): void {
    const b = new Uint8Array(SIZEOF.userspaceMemoryRegion);
    const dv = new DataView(b.buffer);
    dv.setUint32(0, r.slot, true);
    dv.setUint32(4, r.flags ?? 0, true);
    dv.setBigUint64(8, BigInt(r.guestPhysAddr), true);
    dv.setBigUint64(16, BigInt(r.memorySize), true);
    dv.setBigUint64(24, r.userspaceAddr, true);
    check(this.c, this.c.ioctlPtr(this.fd, KVM_SET_USER_MEMORY_REGION, b), "KVM_SET_USER_MEMORY_REGION");
  }

  /** Where the three pages of the TSS used by Intel's real-mode emulation go (x86). */
  setTssAddress(addr: number): void {
    check(this.c, this.c.ioctlInt(this.fd, KVM_SET_TSS_ADDR, addr), "KVM_SET_TSS_ADDR");
  }

  /** Where Intel's identity-map page for real mode goes (x86). */
  setIdentityMapAddress(addr: number): void {
    const b = new Uint8Array(8);
    new DataView(b.buffer).setBigUint64(0, BigInt(addr), true);
    check(this.c, this.c.ioctlPtr(this.fd, KVM_SET_IDENTITY_MAP_ADDR, b), "KVM_SET_IDENTITY_MAP_ADDR");
  }

  /** The in-kernel interrupt controllers: two 8259 PICs, an IOAPIC, and a local APIC per vCPU. */
  createIrqchip(): void {
    check(this.c, this.c.ioctlInt(this.fd, KVM_CREATE_IRQCHIP, 0), "KVM_CREATE_IRQCHIP");
  }

  /** The in-kernel 8254 PIT (its interrupt is IRQ 0). */
  createPit2(flags = 0): void {
    const b = new Uint8Array(SIZEOF.pitConfig);
    new DataView(b.buffer).setUint32(0, flags, true);
    check(this.c, this.c.ioctlPtr(this.fd, KVM_CREATE_PIT2, b), "KVM_CREATE_PIT2");
  }

  /** Drive an interrupt line of the in-kernel irqchip (GSI `irq`) high or low. Safe from any thread. */
  setIrqLine(irq: number, level: boolean): void {
    this.irqView.setUint32(0, irq, true);
    this.irqView.setUint32(4, level ? 1 : 0, true);
    check(this.c, this.c.ioctlPtr(this.fd, KVM_IRQ_LINE, this.irqBuf), "KVM_IRQ_LINE");
  }

  createVcpu(id: number): VcpuFd {
    const fd = check(this.c, this.c.ioctlInt(this.fd, KVM_CREATE_VCPU, id), "KVM_CREATE_VCPU");
    return new VcpuFd(fd, id, this.runSize, this.c);
  }

  close(): void {
    this.c.close(this.fd);
  }
}

/**
 * A vCPU. Its `kvm_run` page is mapped when first used (`run`), so a `VcpuFd` can be
 * rebuilt from its fd number in another thread (`VcpuFd.fromFd`), where `run` then blocks
 * that thread only.
 */
export class VcpuFd {
  readonly fd: number;
  readonly id: number;
  readonly runSize: number;
  private readonly c: Libc;
  private runPage: KvmRun | undefined;

  constructor(fd: number, id: number, runSize: number, c: Libc = getLibc()) {
    this.fd = fd;
    this.id = id;
    this.runSize = runSize;
    this.c = c;
  }

  /** The same vCPU in this thread, from the numbers another thread created it with. */
  static fromFd(fd: number, id: number, runSize: number): VcpuFd {
    return new VcpuFd(fd, id, runSize);
  }

  /** The shared `kvm_run` page (mapped on first use). */
  get kvmRun(): KvmRun {
    if (this.runPage === undefined) {
      const p = this.c.mmap(this.runSize, PROT_READ | PROT_WRITE, MAP_SHARED, this.fd);
      if (p === undefined) fail(this.c, "mmap kvm_run");
      this.runPage = new KvmRun(new Uint8Array(this.c.view(p, this.runSize)));
    }
    return this.runPage;
  }

  /**
   * KVM_RUN: enter the guest until it exits to user space; returns the exit reason (also
   * in `kvmRun.exitReason`). A signal that interrupts the call returns `KVM_EXIT.INTR` (10).
   * An application processor waiting for its startup IPI makes KVM_RUN return EAGAIN
   * each time an INIT or SIPI arrives; that is retried here, not reported.
   */
  run(): number {
    const run = this.kvmRun;
    while (this.c.ioctlInt(this.fd, KVM_RUN, 0) < 0) {
      const e = this.c.errno();
      if (e === EINTR) return 10;
      if (e !== EAGAIN) fail(this.c, "KVM_RUN");
    }
    return run.exitReason;
  }

  getRegs(): Regs {
    const b = new Uint8Array(SIZEOF.regs);
    check(this.c, this.c.ioctlPtr(this.fd, KVM_GET_REGS, b), "KVM_GET_REGS");
    return decodeRegs(b);
  }

  setRegs(r: Regs): void {
    check(this.c, this.c.ioctlPtr(this.fd, KVM_SET_REGS, encodeRegs(r)), "KVM_SET_REGS");
  }

  getSregs(): Sregs {
    const b = new Uint8Array(SIZEOF.sregs);
    check(this.c, this.c.ioctlPtr(this.fd, KVM_GET_SREGS, b), "KVM_GET_SREGS");
    return decodeSregs(b);
  }

  setSregs(s: Sregs): void {
    check(this.c, this.c.ioctlPtr(this.fd, KVM_SET_SREGS, encodeSregs(s)), "KVM_SET_SREGS");
  }

  setCpuid2(entries: readonly CpuidEntry[]): void {
    check(this.c, this.c.ioctlPtr(this.fd, KVM_SET_CPUID2, encodeCpuid2(entries)), "KVM_SET_CPUID2");
  }

  /** Set model-specific registers; returns how many KVM accepted. */
  setMsrs(entries: readonly MsrEntry[]): number {
    return check(this.c, this.c.ioctlPtr(this.fd, KVM_SET_MSRS, encodeMsrs(entries)), "KVM_SET_MSRS");
  }

  /** Set the x87 control word and MXCSR (the rest of `struct kvm_fpu` zero). */
  setFpu(fcw: number, mxcsr: number): void {
    const b = new Uint8Array(SIZEOF.fpu);
    const dv = new DataView(b.buffer);
    dv.setUint16(128, fcw, true); // after fpr[8][16]
    dv.setUint32(408, mxcsr, true); // after fcw..last_dp and xmm[16][16]
    check(this.c, this.c.ioctlPtr(this.fd, KVM_SET_FPU, b), "KVM_SET_FPU");
  }

  /** The local APIC's register page (`struct kvm_lapic_state`, 1 KiB). */
  getLapic(): Uint8Array {
    const b = new Uint8Array(SIZEOF.lapicState);
    check(this.c, this.c.ioctlPtr(this.fd, KVM_GET_LAPIC, b), "KVM_GET_LAPIC");
    return b;
  }

  setLapic(b: Uint8Array): void {
    if (b.byteLength !== SIZEOF.lapicState) throw new RangeError("kvm_lapic_state is 1024 bytes");
    check(this.c, this.c.ioctlPtr(this.fd, KVM_SET_LAPIC, b), "KVM_SET_LAPIC");
  }

  close(): void {
    this.c.close(this.fd);
  }
}

/** Anonymous host memory for guest RAM: its address for KVM, an ArrayBuffer for the VMM. */
export class GuestMapping {
  readonly size: number;
  /** Host virtual address (`userspace_addr` of a memory region). */
  readonly address: bigint;
  /** The same bytes, seen from JavaScript without a copy. */
  readonly buffer: ArrayBuffer;
  private ptr: unknown;
  private readonly c: Libc;

  /** Map `size` bytes (a multiple of 4 KiB) of zeroed, lazily allocated memory. */
  constructor(size: number) {
    if (!Number.isSafeInteger(size) || size <= 0 || size % 4096 !== 0) {
      throw new RangeError(`guest memory size ${size} is not a positive multiple of 4 KiB`);
    }
    this.c = getLibc();
    const p = this.c.mmap(size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1);
    if (p === undefined) fail(this.c, `mmap ${size} bytes of guest memory`);
    this.ptr = p;
    this.size = size;
    this.address = this.c.address(p);
    this.buffer = this.c.view(p, size);
  }

  /**
   * Unmap. The caller must have dropped every view of `buffer` and closed the VM that
   * uses it: the pages are gone afterwards.
   */
  unmap(): void {
    if (this.ptr === undefined) return;
    this.c.munmap(this.ptr, this.size);
    this.ptr = undefined;
  }
}

/** Whether KVM can be used here: `{ ok: true }` or the reason it cannot, in one line. */
export function kvmStatus(path = KVM_DEVICE): { ok: true } | { ok: false; reason: string } {
  try {
    Kvm.open(path).close();
    return { ok: true };
  } catch (e) {
    const msg = e instanceof Error ? e.message : String(e);
    return { ok: false, reason: `KVM is not usable here: ${msg}` };
  }
}

/**
 * End the process at once (`_exit`), vCPU threads included. A thread blocked in KVM_RUN
 * (a halted vCPU, an application processor the guest never started) cannot be woken
 * from JavaScript, and Node waits for its worker threads when it exits normally. Flush
 * what must be written first.
 */
export function exitProcess(code: number): never {
  return getLibc().exit(code);
}
