/**
 * The x86-64 KVM machine: Firecracker's microVM shape, built from the same @visor/io-bus
 * buses and @visor/devices models as the RISC-V `virt` machine.
 *
 *   RAM            guest-physical 0 .. --memory (at most 3 GiB: below the MMIO window)
 *   port 0x3f8     16550 UART (COM1), IRQ 4: real port-I/O exits
 *   port 0x60-64   i8042: its reset command ends the VM
 *   0xd0000000     virtio-mmio slots, 4 KiB apart, IRQ 5, 6, ...: announced on the
 *                  kernel command line (virtio_mmio.device=4K@0xd0000000:5)
 *   in the kernel  KVM's irqchip (two 8259s, the IOAPIC, a local APIC per vCPU) and 8254 PIT
 *
 * Each vCPU runs KVM_RUN on a worker thread of its own (@visor/kvm/node VcpuThread) and
 * hands its port and MMIO exits to this thread, which owns the buses and the devices; HLT,
 * timers and interrupt delivery stay in the kernel. Devices raise interrupts with
 * KVM_IRQ_LINE.
 */
import {
  type BlockBackend,
  type IrqLine,
  type NetBackend,
  Uart16550,
  VirtioBlk,
  VirtioConsole,
  type VirtioDevice,
  VirtioMmio,
  VirtioNet,
  VirtioRng,
} from "@visor/devices";
import { IoManager, UNMAPPED } from "@visor/io-bus";
import { type CpuidEntry, GuestMapping, Kvm, type VcpuFd, type VmFd } from "@visor/kvm";
import { type ExitSlot, VcpuThread } from "@visor/kvm/node";
import { GuestMemory, GuestRam } from "@visor/memory";
import { entryRegs, loadLinux, longModeSregs, parseBzImage } from "./boot.ts";
import { I8042 } from "./i8042.ts";

export const COM1_PORT = 0x3f8;
export const COM1_IRQ = 4;
export const I8042_PORT = 0x60;
export const VIRTIO_MMIO_BASE = 0xd000_0000;
export const VIRTIO_MMIO_SIZE = 0x1000;
export const VIRTIO_FIRST_IRQ = 5;
/** The highest RAM size: RAM must end below the virtio-mmio window. */
export const X86_MAX_MEMORY = 3 * 2 ** 30;
/** Legacy IRQs the virtio slots may use: 5..15 except 8 (RTC) and 12-14 (mouse, FPU, IDE). */
const SLOT_IRQS = [5, 6, 7, 9, 10, 11, 15];
export const MAX_VIRTIO_DEVICES = SLOT_IRQS.length;

/** Where the TSS and identity-map pages KVM needs on Intel go: just below 4 GiB, out of RAM. */
const TSS_ADDR = 0xfffb_d000;
const IDENTITY_MAP_ADDR = 0xfffb_c000;

export interface X86MachineOptions {
  kernel: Uint8Array;
  initrd?: Uint8Array;
  /** The user's part of the command line; the machine prepends its own (devices, reset). */
  cmdline: string;
  memory: number;
  cpus: number;
  disks?: BlockBackend[];
  nets?: NetBackend[];
  /** Add a virtio-console and a virtio-rng. */
  extraDevices?: boolean;
  /** Bytes the UART transmits. */
  output: (byte: number) => void;
  /** A device put itself in DEVICE_NEEDS_RESET (the guest misused it). */
  onDeviceError?: (message: string) => void;
  kvmPath?: string;
}

/** Why the VM stopped. */
export type X86Stop =
  | { kind: "reset" } // the i8042 reset: what `reboot` and `poweroff` end in without ACPI
  | { kind: "quit" } // the host asked (Ctrl-A X)
  | { kind: "exit"; vcpu: number; reason: string; detail?: string } // a KVM exit the machine does not handle (shutdown = triple fault)
  | { kind: "error"; message: string };

export interface X86Stats {
  /** KVM exit reasons summed over the vCPUs. */
  exits: Map<string, number>;
  /** Port exits per port. */
  ports: Map<number, number>;
  /** MMIO exits per device (and "unmapped"). */
  mmio: Map<string, number>;
  seconds: number;
}

export class X86Machine {
  readonly cpus: number;
  readonly uart: Uart16550;
  readonly io = new IoManager();
  readonly cmdline: string;
  readonly virtio: VirtioMmio[] = [];
  private readonly kvm: Kvm;
  private readonly vm: VmFd;
  private readonly mem: GuestMapping;
  private readonly vcpus: VcpuFd[] = [];
  private readonly threads: VcpuThread[] = [];
  private readonly ports = new Map<number, number>();
  private readonly mmioCounts = new Map<string, number>();
  private stopWith: ((s: X86Stop) => void) | undefined;
  private stopped: X86Stop | undefined;
  private started = 0;

  constructor(o: X86MachineOptions) {
    this.cpus = o.cpus;
    const image = parseBzImage(o.kernel);
    this.kvm = Kvm.open(o.kvmPath);
    this.vm = this.kvm.createVm();
    this.vm.setTssAddress(TSS_ADDR);
    this.vm.setIdentityMapAddress(IDENTITY_MAP_ADDR);
    this.vm.createIrqchip();
    this.vm.createPit2();
    this.mem = new GuestMapping(o.memory);
    this.vm.setUserMemoryRegion({
      slot: 0,
      guestPhysAddr: 0,
      memorySize: o.memory,
      userspaceAddr: this.mem.address,
    });
    const ram = new GuestMemory(new GuestRam(0, o.memory, this.mem.buffer));

    this.uart = new Uart16550({ name: "uart16550", irq: this.irq(COM1_IRQ), output: o.output });
    this.io.pio.register(COM1_PORT, 8, this.uart);
    this.io.pio.register(I8042_PORT, 5, new I8042(() => this.stop({ kind: "reset" })));

    const devices: VirtioDevice[] = [];
    for (const b of o.disks ?? []) devices.push(new VirtioBlk({ backend: b, onError: o.onDeviceError }));
    for (const n of o.nets ?? []) devices.push(new VirtioNet({ backend: n }));
    if (o.extraDevices) {
      devices.push(new VirtioRng());
      devices.push(new VirtioConsole({ output: (b: Uint8Array) => b.forEach(o.output) }));
    }
    if (devices.length > MAX_VIRTIO_DEVICES) {
      throw new Error(`at most ${MAX_VIRTIO_DEVICES} virtio devices (${devices.length} asked for)`);
    }
    const announce: string[] = [];
    devices.forEach((device, slot) => {
      const base = VIRTIO_MMIO_BASE + slot * VIRTIO_MMIO_SIZE;
      const irq = SLOT_IRQS[slot]!;
      const t = new VirtioMmio({ device, ram, irq: this.irq(irq), onError: o.onDeviceError });
      this.io.mmio.register(base, VIRTIO_MMIO_SIZE, t);
      this.io.mmio.addWriteListener(base + 0x50, 4, (q) => t.notify(q));
      this.virtio.push(t);
      announce.push(`virtio_mmio.device=4K@0x${base.toString(16)}:${irq}`);
    });
    this.io.enableStats();

    // The machine's own parameters first (like a device tree): the user's come last and win.
    const own = ["reboot=k panic=-1 pci=off i8042.noaux i8042.nomux", ...announce];
    this.cmdline = [...own, o.cmdline].join(" ").trim();
    loadLinux({
      ram: new Uint8Array(this.mem.buffer),
      kernel: image,
      initrd: o.initrd,
      cmdline: this.cmdline,
      cpus: o.cpus,
    });

    const cpuid = this.kvm.supportedCpuid();
    for (let id = 0; id < o.cpus; id++) {
      const v = this.vm.createVcpu(id);
      v.setCpuid2(cpuidFor(cpuid, id, o.cpus));
      setLocalInterrupts(v);
      v.setFpu(0x37f, 0x1f80);
      if (id === 0) {
        v.setSregs(longModeSregs(v.getSregs()));
        v.setRegs(entryRegs(v.getRegs()));
      }
      this.vcpus.push(v);
    }
  }

  /** An interrupt line that drives GSI `gsi` of the in-kernel irqchip. */
  private irq(gsi: number): IrqLine {
    let level = false;
    return {
      set: (l: boolean) => {
        if (l === level) return;
        level = l;
        this.vm.setIrqLine(gsi, l);
      },
    };
  }

  /** Start every vCPU on its worker thread; resolves when the VM stops. */
  run(): Promise<X86Stop> {
    this.started = performance.now();
    const done = new Promise<X86Stop>((resolve) => {
      this.stopWith = resolve;
    });
    for (const v of this.vcpus) {
      const t = new VcpuThread(v, (slot) => this.access(slot));
      this.threads.push(t);
      void t.done.then((end) => {
        if ("error" in end) this.stop({ kind: "error", message: end.error });
        else if ("reason" in end)
          this.stop({
            kind: "exit",
            vcpu: t.id,
            reason: end.reason,
            ...(end.detail ? { detail: end.detail } : {}),
          });
      });
    }
    return done;
  }

  /** Perform one posted access on the buses. Every value here came from the guest. */
  private access(slot: ExitSlot): void {
    const size = slot.size;
    const write = slot.write;
    if (slot.isPio) {
      const port = slot.addr & 0xffff;
      this.ports.set(port, (this.ports.get(port) ?? 0) + 1);
      if (size !== 1 && size !== 2 && size !== 4) throw new Error(`port I/O of ${size} bytes`);
      if (write) this.io.pio.write(port, size, slot.value);
      else slot.setResult(this.io.pio.read(port, size));
      return;
    }
    const addr = slot.addr;
    const dev = this.io.mmio.deviceAt(addr)?.device.name ?? "unmapped";
    this.mmioCounts.set(dev, (this.mmioCounts.get(dev) ?? 0) + 1);
    if (size === 1 || size === 2 || size === 4) {
      if (write) this.io.mmio.write(addr, size, slot.value);
      else {
        const v = this.io.mmio.read(addr, size);
        slot.setResult(v === UNMAPPED ? -1 : v);
      }
      return;
    }
    // 8 bytes (or an odd length KVM should never report): as 4-byte halves or single bytes.
    const step = size === 8 ? 4 : 1;
    let lo = 0;
    let hi = 0;
    for (let i = 0; i < Math.min(size, 8); i += step) {
      const part = i < 4 ? slot.value >>> (8 * i) : slot.valueHi >>> (8 * (i - 4));
      const mask = step === 4 ? 0xffff_ffff : 0xff;
      if (write) this.io.mmio.write(addr + i, step as 1 | 4, (part & mask) >>> 0);
      else {
        const r = this.io.mmio.read(addr + i, step as 1 | 4);
        const v = (r === UNMAPPED ? mask : r) >>> 0;
        if (i < 4) lo = (lo | (v << (8 * i))) >>> 0;
        else hi = (hi | (v << (8 * (i - 4)))) >>> 0;
      }
    }
    if (!write) slot.setResult(lo, hi);
  }

  /** Stop the VM (first reason wins). The vCPU threads are asked to leave at their next exit. */
  stop(s: X86Stop): void {
    if (this.stopped !== undefined) return;
    this.stopped = s;
    // A vCPU halted in the kernel may never exit again; its thread must not keep the process up.
    for (const t of this.threads) {
      t.requestStop();
      t.unref();
    }
    this.stopWith?.(s);
  }

  /** True once every vCPU thread has left its run loop. */
  get allThreadsDone(): boolean {
    return this.threads.every((t) => t.finished);
  }

  /** Console input for the UART; returns how many bytes it took. */
  input(bytes: Uint8Array): number {
    return this.uart.pushInput(bytes);
  }

  stats(): X86Stats {
    const exits = new Map<string, number>();
    for (const t of this.threads) {
      for (const [k, n] of t.exitCounts()) exits.set(k, (exits.get(k) ?? 0) + n);
    }
    return {
      exits,
      ports: new Map([...this.ports].sort((a, b) => b[1] - a[1])),
      mmio: this.mmioCounts,
      seconds: (performance.now() - this.started) / 1000,
    };
  }
}

/** KVM's supported CPUID with this vCPU's APIC id (leaf 1 EBX[31:24], leaves 0xB/0x1F EDX) and the CPU count. */
export function cpuidFor(supported: readonly CpuidEntry[], id: number, cpus: number): CpuidEntry[] {
  return supported.map((e) => {
    const c = { ...e };
    if (c.function === 1) {
      c.ebx = ((c.ebx & 0x0000ffff) | (id << 24) | (Math.min(cpus, 255) << 16)) >>> 0;
      if (cpus > 1) c.edx = (c.edx | (1 << 28)) >>> 0; // HTT: the count in EBX[23:16] is valid
    }
    if (c.function === 0xb || c.function === 0x1f) c.edx = id;
    return c;
  });
}

/** Local APIC LINT0 = ExtINT (the 8259s), LINT1 = NMI, as a PC's BIOS leaves them. */
function setLocalInterrupts(v: VcpuFd): void {
  const lapic = v.getLapic();
  const dv = new DataView(lapic.buffer);
  const LVT_LINT0 = 0x350;
  const LVT_LINT1 = 0x360;
  const mode = (reg: number, m: number) =>
    dv.setUint32(reg, (dv.getUint32(reg, true) & ~0x700) | (m << 8), true);
  mode(LVT_LINT0, 7);
  mode(LVT_LINT1, 4);
  v.setLapic(lapic);
}
