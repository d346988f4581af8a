import { DeviceTree, type FdtNode, type U64 } from "./fdt.ts";
import {
  VIRT_IRQ,
  VIRT_MEMMAP,
  VIRT_PLIC_NDEV,
  VIRT_SYSCON_POWEROFF,
  VIRT_SYSCON_REBOOT,
  VIRT_TIMEBASE_FREQUENCY,
  VIRT_UART_CLOCK,
  VIRT_VIRTIO_COUNT,
  virtioMmioBase,
} from "./virt-memmap.ts";

/** Paging modes a hart can advertise in "mmu-type". */
export type MmuType = "sv39" | "sv48" | "sv57";

/** What the device tree of the Visor `virt` machine describes. */
export interface VirtFdtConfig {
  /** Number of harts, with hart IDs 0..harts-1 (at most 512, QEMU's VIRT_CPUS_MAX). */
  harts: number;
  /** Bytes of RAM at `memoryBase`. */
  memorySize: number;
  /** Default 0x80000000 (VIRT_DRAM). */
  memoryBase?: number;
  /** The strongest paging mode the harts implement. */
  mmu: MmuType;
  /** Advertise the hypervisor extension ("h" in riscv,isa). Default false. */
  hypervisor?: boolean;
  /** Replace the whole riscv,isa string (must start with "rv64"). */
  isa?: string;
  /** Kernel command line (/chosen/bootargs). */
  bootargs?: string;
  /** /chosen/stdout-path; default the UART, "/soc/serial@10000000". */
  stdoutPath?: string;
  /** Physical range of the initrd, written as 64-bit linux,initrd-start / linux,initrd-end. */
  initrd?: { start: U64; end: U64 };
  /** Number of virtio-mmio transports to describe, slots 0..n-1 (0..8). Default 0. */
  virtioDevices?: number;
  /** Describe the generic ECAM PCI host bridge. Default false. */
  pci?: boolean;
  /** "riscv,ndev" of the PLIC: its number of interrupt sources. Default 96 as QEMU. */
  plicSources?: number;
  /** Bytes for /chosen/rng-seed, an entropy seed for the kernel (the caller supplies them). */
  rngSeed?: Uint8Array;
  /** Hart that boots (header boot_cpuid_phys). Default 0. */
  bootHart?: number;
}

/** QEMU's VIRT_CPUS_MAX: the PLIC region in the map covers this many harts. */
export const VIRT_MAX_HARTS = 512;

/** Base ISA advertised to the guest (the H extension is appended on request). */
export const VIRT_BASE_ISA = "rv64imafdc_zicsr_zifencei";

/** riscv,isa for the configuration: "rv64imafdc..." or "rv64imafdch..." with the H extension. */
export function virtIsaString(hypervisor: boolean): string {
  // Single-letter extensions go in canonical order; "h" follows "c" (ISA manual,
  // "ISA Extension Naming Conventions").
  return hypervisor ? VIRT_BASE_ISA.replace("rv64imafdc_", "rv64imafdch_") : VIRT_BASE_ISA;
}

function hex(n: number): string {
  return n.toString(16);
}

function reg(node: FdtNode, base: number, size: number): void {
  node.setU64s("reg", [base, size]);
}

/**
 * Builds the device tree of the Visor machine on QEMU `virt`'s memory map (see
 * virt-memmap.ts for the sources of the numbers). Returns the tree, so a caller can add
 * nodes before `toBlob()`; `buildVirtDtb` does both.
 */
export function buildVirtDeviceTree(config: VirtFdtConfig): DeviceTree {
  const harts = config.harts;
  if (!Number.isInteger(harts) || harts < 1 || harts > VIRT_MAX_HARTS) {
    throw new RangeError(`device tree: hart count ${harts} is out of range 1..${VIRT_MAX_HARTS}`);
  }
  const bootHart = config.bootHart ?? 0;
  if (!Number.isInteger(bootHart) || bootHart < 0 || bootHart >= harts) {
    throw new RangeError(`device tree: boot hart ${bootHart} is not one of the ${harts} harts`);
  }
  const memBase = config.memoryBase ?? VIRT_MEMMAP.dram.base;
  const memSize = config.memorySize;
  if (!Number.isSafeInteger(memSize) || memSize <= 0) {
    throw new RangeError(`device tree: memory size ${memSize} is not a positive integer`);
  }
  if (!Number.isSafeInteger(memBase) || memBase < 0) {
    throw new RangeError(`device tree: memory base ${memBase} is not a non-negative integer`);
  }
  if (config.mmu !== "sv39" && config.mmu !== "sv48" && config.mmu !== "sv57") {
    throw new Error(`device tree: unknown mmu type "${String(config.mmu)}" (sv39, sv48 or sv57)`);
  }
  const isa = config.isa ?? virtIsaString(config.hypervisor ?? false);
  if (!/^rv64[a-z][a-z0-9_]*$/.test(isa))
    throw new Error(`device tree: riscv,isa "${isa}" is not an rv64 ISA string`);
  const virtioCount = config.virtioDevices ?? 0;
  if (!Number.isInteger(virtioCount) || virtioCount < 0 || virtioCount > VIRT_VIRTIO_COUNT) {
    throw new RangeError(
      `device tree: ${virtioCount} virtio devices (the map has ${VIRT_VIRTIO_COUNT} slots)`,
    );
  }
  const ndev = config.plicSources ?? VIRT_PLIC_NDEV;
  const pciLastIrq = VIRT_IRQ.pcie + 3;
  const lastIrqNeeded = config.pci ? pciLastIrq : Math.max(VIRT_IRQ.rtc, VIRT_IRQ.uart0);
  if (!Number.isInteger(ndev) || ndev < lastIrqNeeded || ndev > 1023) {
    throw new RangeError(`device tree: PLIC source count ${ndev} must be in ${lastIrqNeeded}..1023`);
  }

  const dt = new DeviceTree();
  dt.bootCpuidPhys = bootHart;
  const root = dt.root;
  root
    .setU32("#address-cells", 2)
    .setU32("#size-cells", 2)
    .setString("compatible", "riscv-virtio")
    .setString("model", "riscv-virtio,visor");

  // /chosen (DTSpec 3.6; linux,initrd-* as in Linux Documentation/devicetree/bindings/chosen.txt).
  const chosen = root.addNode("chosen");
  if (config.bootargs !== undefined) chosen.setString("bootargs", config.bootargs);
  chosen.setString("stdout-path", config.stdoutPath ?? `/soc/serial@${hex(VIRT_MEMMAP.uart0.base)}`);
  if (config.initrd !== undefined) {
    const start = BigInt(config.initrd.start);
    const end = BigInt(config.initrd.end);
    if (end < start) throw new RangeError("device tree: initrd end is below its start");
    chosen.setU64("linux,initrd-start", start).setU64("linux,initrd-end", end);
  }
  if (config.rngSeed !== undefined) chosen.setBytes("rng-seed", config.rngSeed);

  root
    .addNode(`memory@${hex(memBase)}`)
    .setString("device_type", "memory")
    .setU64s("reg", [memBase, memSize]);

  // /cpus (DTSpec 3.7, 3.8; Linux Documentation/devicetree/bindings/riscv/cpus.yaml).
  const cpus = root
    .addNode("cpus")
    .setU32("#address-cells", 1)
    .setU32("#size-cells", 0)
    .setU32("timebase-frequency", VIRT_TIMEBASE_FREQUENCY);
  const intcs: number[] = [];
  for (let h = 0; h < harts; h++) {
    const cpu = cpus
      .addNode(`cpu@${hex(h)}`)
      .setString("device_type", "cpu")
      .setU32("reg", h)
      .setString("status", "okay")
      .setString("compatible", "riscv")
      .setString("riscv,isa", isa)
      .setString("mmu-type", `riscv,${config.mmu}`);
    const intc = cpu
      .addNode("interrupt-controller")
      .setU32("#interrupt-cells", 1)
      .setU32("#address-cells", 0)
      .setEmpty("interrupt-controller")
      .setString("compatible", "riscv,cpu-intc");
    intcs.push(dt.phandle(intc));
  }

  const soc = root
    .addNode("soc")
    .setU32("#address-cells", 2)
    .setU32("#size-cells", 2)
    .setString("compatible", "simple-bus")
    .setEmpty("ranges");

  // CLINT: per hart, machine software (3) and machine timer (7) interrupts.
  const clint = soc
    .addNode(`clint@${hex(VIRT_MEMMAP.clint.base)}`)
    .setStrings("compatible", ["sifive,clint0", "riscv,clint0"]);
  reg(clint, VIRT_MEMMAP.clint.base, VIRT_MEMMAP.clint.size);
  clint.setU32s(
    "interrupts-extended",
    intcs.flatMap((p) => [p, 3, p, 7]),
  );

  // PLIC: per hart two contexts, machine external (11) then supervisor external (9).
  const plic = soc
    .addNode(`plic@${hex(VIRT_MEMMAP.plic.base)}`)
    .setStrings("compatible", ["sifive,plic-1.0.0", "riscv,plic0"])
    .setU32("#interrupt-cells", 1)
    // No address cells, so an interrupt-map entry pointing here has no parent unit address.
    .setU32("#address-cells", 0)
    .setEmpty("interrupt-controller")
    .setU32("riscv,ndev", ndev);
  reg(plic, VIRT_MEMMAP.plic.base, VIRT_MEMMAP.plic.size);
  plic.setU32s(
    "interrupts-extended",
    intcs.flatMap((p) => [p, 11, p, 9]),
  );
  const plicPh = dt.phandle(plic);

  const serial = soc
    .addNode(`serial@${hex(VIRT_MEMMAP.uart0.base)}`)
    .setString("compatible", "ns16550a")
    .setU32("clock-frequency", VIRT_UART_CLOCK)
    .setU32("interrupts", VIRT_IRQ.uart0)
    .setU32("interrupt-parent", plicPh);
  reg(serial, VIRT_MEMMAP.uart0.base, VIRT_MEMMAP.uart0.size);

  const test = soc
    .addNode(`test@${hex(VIRT_MEMMAP.test.base)}`)
    .setStrings("compatible", ["sifive,test1", "sifive,test0", "syscon"]);
  reg(test, VIRT_MEMMAP.test.base, VIRT_MEMMAP.test.size);
  const testPh = dt.phandle(test);

  const rtc = soc
    .addNode(`rtc@${hex(VIRT_MEMMAP.rtc.base)}`)
    .setString("compatible", "google,goldfish-rtc")
    .setU32("interrupts", VIRT_IRQ.rtc)
    .setU32("interrupt-parent", plicPh);
  reg(rtc, VIRT_MEMMAP.rtc.base, VIRT_MEMMAP.rtc.size);

  // Linux binding misc/qemu,pvpanic-mmio.yaml; driver drivers/misc/pvpanic/pvpanic-mmio.c.
  const pvpanic = soc
    .addNode(`pvpanic@${hex(VIRT_MEMMAP.pvpanic.base)}`)
    .setString("compatible", "qemu,pvpanic-mmio");
  reg(pvpanic, VIRT_MEMMAP.pvpanic.base, VIRT_MEMMAP.pvpanic.size);

  for (let slot = 0; slot < virtioCount; slot++) {
    const base = virtioMmioBase(slot);
    const v = soc
      .addNode(`virtio_mmio@${hex(base)}`)
      .setString("compatible", "virtio,mmio")
      .setU32("interrupts", VIRT_IRQ.virtio + slot)
      .setU32("interrupt-parent", plicPh);
    reg(v, base, VIRT_MEMMAP.virtio.size);
  }

  if (config.pci) addPciHost(soc, plicPh);

  // syscon-poweroff / syscon-reboot (Linux bindings power/reset/syscon-*.yaml).
  root
    .addNode("poweroff")
    .setString("compatible", "syscon-poweroff")
    .setU32("regmap", testPh)
    .setU32("offset", 0)
    .setU32("value", VIRT_SYSCON_POWEROFF);
  root
    .addNode("reboot")
    .setString("compatible", "syscon-reboot")
    .setU32("regmap", testPh)
    .setU32("offset", 0)
    .setU32("value", VIRT_SYSCON_REBOOT);

  return dt;
}

/** PCI address space codes in phys.hi bits 24..25 (IEEE 1275 PCI bus binding). */
const PCI_SPACE_IO = 0x0100_0000;
const PCI_SPACE_MEM32 = 0x0200_0000;

/**
 * The generic ECAM host bridge (Linux bindings pci/host-generic-pci.yaml), as on QEMU virt:
 * ECAM at 0x30000000, I/O window at CPU 0x3000000 (PCI I/O address 0, 64 KiB), 32-bit MMIO
 * window identity-mapped at 0x40000000 (1 GiB), and INTx of each slot routed to PLIC
 * sources 32..35 with the standard swizzle (slot + pin - 1) mod 4.
 */
function addPciHost(soc: FdtNode, plicPh: number): void {
  const ecam = VIRT_MEMMAP.pcieEcam;
  const pci = soc
    .addNode(`pci@${hex(ecam.base)}`)
    .setString("compatible", "pci-host-ecam-generic")
    .setString("device_type", "pci")
    .setU32("#address-cells", 3)
    .setU32("#size-cells", 2)
    .setU32("#interrupt-cells", 1)
    .setU32("linux,pci-domain", 0)
    .setU32s("bus-range", [0, ecam.size / 0x10_0000 - 1])
    .setEmpty("dma-coherent");
  reg(pci, ecam.base, ecam.size);
  const io = VIRT_MEMMAP.pciePio;
  const mem = VIRT_MEMMAP.pcieMmio;
  // Each entry: PCI address (3 cells), CPU address (2 cells), size (2 cells).
  pci.setU32s("ranges", [
    PCI_SPACE_IO,
    0,
    0,
    0,
    io.base,
    0,
    io.size,
    PCI_SPACE_MEM32,
    0,
    mem.base,
    0,
    mem.base,
    0,
    mem.size,
  ]);
  // interrupt-map: child unit address (3 cells; only the device number bits 11..12 matter,
  // see the mask), child pin (INTA=1..INTD=4), parent phandle, parent source.
  const map: number[] = [];
  for (let slot = 0; slot < 4; slot++) {
    for (let pin = 1; pin <= 4; pin++) {
      map.push(slot << 11, 0, 0, pin, plicPh, VIRT_IRQ.pcie + ((slot + pin - 1) % 4));
    }
  }
  pci.setU32s("interrupt-map", map);
  pci.setU32s("interrupt-map-mask", [3 << 11, 0, 0, 7]);
}

/** `buildVirtDeviceTree(config).toBlob()`. */
export function buildVirtDtb(config: VirtFdtConfig): Uint8Array {
  return buildVirtDeviceTree(config).toBlob();
}
