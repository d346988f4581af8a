/**
 * The physical memory map and interrupt numbers of QEMU's RISC-V `virt` machine, which the
 * Visor machine reproduces so that kernels and firmware built for `virt` (Debian's
 * OpenSBI generic platform, distribution kernels) run unmodified.
 *
 * Source: QEMU hw/riscv/virt.c, the `virt_memmap[]` table, and include/hw/riscv/virt.h
 * (UART0_IRQ, RTC_IRQ, VIRTIO_IRQ, VIRTIO_COUNT, PCIE_IRQ, VIRT_IRQCHIP_NUM_SOURCES,
 * VIRT_PLIC_* sizes), as of QEMU 7.2 (Debian 12); checked against the DTB that
 * `qemu-system-riscv64 -machine virt,dumpdtb=...` writes.
 */
export const VIRT_MEMMAP = {
  /** sifive,test1 finisher / syscon used for power-off and reboot. */
  test: { base: 0x0010_0000, size: 0x1000 },
  /** google,goldfish-rtc. */
  rtc: { base: 0x0010_1000, size: 0x1000 },
  /**
   * qemu,pvpanic-mmio: the guest reports a kernel panic. Not in QEMU's RISC-V virt (QEMU
   * offers pvpanic on ISA and PCI only); Visor places it in the free page after the RTC.
   */
  pvpanic: { base: 0x0010_2000, size: 0x1000 },
  /** Core-local interruptor: msip, mtimecmp, mtime. */
  clint: { base: 0x0200_0000, size: 0x1_0000 },
  /** PCIe I/O port window (legacy port I/O through MMIO). */
  pciePio: { base: 0x0300_0000, size: 0x1_0000 },
  /** Platform-level interrupt controller; the size covers VIRT_CPUS_MAX (512) harts x 2 contexts. */
  plic: { base: 0x0c00_0000, size: 0x60_0000 },
  /** ns16550a UART. */
  uart0: { base: 0x1000_0000, size: 0x100 },
  /** First virtio-mmio transport; the others follow every `virtioStride` bytes. */
  virtio: { base: 0x1000_1000, size: 0x1000 },
  /** PCIe ECAM configuration space: 256 buses x 1 MiB. */
  pcieEcam: { base: 0x3000_0000, size: 0x1000_0000 },
  /** PCIe 32-bit memory window. */
  pcieMmio: { base: 0x4000_0000, size: 0x4000_0000 },
  /** Start of DRAM. */
  dram: { base: 0x8000_0000 },
} as const;

/** Distance between two virtio-mmio transports. */
export const VIRT_VIRTIO_STRIDE = 0x1000;
/** Number of virtio-mmio transports (VIRTIO_COUNT). */
export const VIRT_VIRTIO_COUNT = 8;

/** PLIC source numbers (include/hw/riscv/virt.h). */
export const VIRT_IRQ = {
  /** virtio-mmio transport n uses VIRT_IRQ.virtio + n (1..8). */
  virtio: 1,
  uart0: 10,
  rtc: 11,
  /** PCI INTA..INTD after swizzling use pcie + 0..3 (32..35). */
  pcie: 0x20,
} as const;

/** Number of PLIC interrupt sources QEMU's virt advertises in "riscv,ndev". */
export const VIRT_PLIC_NDEV = 0x60;

/** CLINT timebase: mtime counts at 10 MHz (RISCV_ACLINT_DEFAULT_TIMEBASE_FREQ). */
export const VIRT_TIMEBASE_FREQUENCY = 10_000_000;

/** The UART's input clock as QEMU declares it ("clock-frequency" = 3686400, 0x384000). */
export const VIRT_UART_CLOCK = 3_686_400;

/** Values written to the sifive,test / syscon register to power off or reboot. */
export const VIRT_SYSCON_POWEROFF = 0x5555;
export const VIRT_SYSCON_REBOOT = 0x7777;

/** Base address of virtio-mmio transport `slot` (0..7). */
export function virtioMmioBase(slot: number): number {
  if (!Number.isInteger(slot) || slot < 0 || slot >= VIRT_VIRTIO_COUNT) {
    throw new RangeError(`virtio-mmio slot ${slot} is out of range 0..${VIRT_VIRTIO_COUNT - 1}`);
  }
  return VIRT_MEMMAP.virtio.base + slot * VIRT_VIRTIO_STRIDE;
}
