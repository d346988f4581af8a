/**
 * PCI on the `virt` machine: the generic ECAM host bridge, its I/O window, and one legacy
 * virtio-pci function per virtio device, placed where QEMU's virt puts them and where the
 * device tree's `pci-host-ecam-generic` node (fdt/virt.ts, `pci: true`) says they are:
 *
 *   0x0300_0000  I/O window, 64 KiB: MMIO address 0x3000000 + p is port p of io.pio
 *   0x3000_0000  ECAM, 256 MiB (256 buses x 32 devices x 8 functions x 4 KiB)
 *   0x4000_0000  32-bit MMIO window, 1 GiB (memory BARs; the legacy virtio functions have none)
 *   INTx         slot s pin p -> PLIC source 32 + (s + p - 1) % 4 (the interrupt-map's swizzle)
 *
 * The guest (Linux's pci-host-generic) scans bus 0, sizes and assigns the BARs itself and
 * enables decode; from then on each virtio function's registers are ports on `io.pio`,
 * reached by loads and stores in the I/O window. Device functions occupy slots 1..n in
 * the order given; slot 0 is the host bridge.
 */
import { PciHostBridge, PciIoWindow, type Plic, type VirtioDevice, VirtioPciLegacy } from "@visor/devices";
import type { IoManager } from "@visor/io-bus";
import type { GuestMemory } from "@visor/memory";
import { VIRT_IRQ, VIRT_MEMMAP } from "./fdt/virt-memmap.ts";

export interface PciBusOptions {
  io: IoManager;
  /** Guest RAM only: what the devices may DMA to. */
  ram: GuestMemory;
  /** The machine's PLIC; sources 32..35 carry INTA..INTD after swizzling. */
  plic: Plic;
  /** One legacy virtio-pci function each, in slots 1, 2, ... (at most 31). */
  devices: readonly VirtioDevice[];
  /** Guest errors of the virtio functions and BARs left unmapped by a collision. Default: ignore. */
  onError?: (message: string) => void;
}

export interface PciBusState {
  bridge: unknown;
  transports: unknown[];
}

/** What `attachPciBus` built. */
export interface PciBus {
  /** ECAM configuration space, registered on io.mmio at 0x30000000. */
  readonly bridge: PciHostBridge;
  /** The I/O window, registered on io.mmio at 0x3000000. */
  readonly window: PciIoWindow;
  /** The virtio functions, in the order of `devices` (slot = index + 1). */
  readonly transports: readonly VirtioPciLegacy[];
  /**
   * For exit statistics: when `gpa` lies in the I/O window, the port it names and the
   * name of the port device there ("virtio-pci:virtio-blk", or "unmapped"); otherwise
   * undefined (an ordinary MMIO access).
   */
  portAccess(gpa: number): { port: number; device: string } | undefined;
  /** Machine reset: every virtio function, then the configuration spaces (all BARs unmapped). */
  reset(): void;
  toState(): PciBusState;
  /** Restore configuration spaces first (which maps the BARs), then the virtio functions. */
  fromState(state: unknown): void;
}

/**
 * Register the ECAM region and the I/O window on `io.mmio` and put one legacy virtio-pci
 * function per device on bus 0. The caller describes the bridge in the device tree with
 * `buildVirtDtb({ ..., pci: true })`.
 */
export function attachPciBus(opts: PciBusOptions): PciBus {
  const { io, ram, plic, devices } = opts;
  const onError = opts.onError ?? (() => {});
  if (devices.length > 31) throw new Error(`too many PCI devices: ${devices.length} (at most 31)`);
  const intx = [0, 1, 2, 3].map((i) => plic.irqLine(VIRT_IRQ.pcie + i));
  const bridge = new PciHostBridge({
    pio: io.pio,
    mmio: io.mmio,
    mmioWindow: VIRT_MEMMAP.pcieMmio,
    intx,
    buses: VIRT_MEMMAP.pcieEcam.size >>> 20,
    onError,
  });
  const window = new PciIoWindow({ pio: io.pio, size: VIRT_MEMMAP.pciePio.size });
  io.mmio.register(VIRT_MEMMAP.pcieEcam.base, VIRT_MEMMAP.pcieEcam.size, bridge);
  io.mmio.register(VIRT_MEMMAP.pciePio.base, VIRT_MEMMAP.pciePio.size, window);
  const transports = devices.map((device, i) => {
    const t = new VirtioPciLegacy({ device, ram, onError });
    bridge.addDevice(t, i + 1);
    return t;
  });
  const winBase = VIRT_MEMMAP.pciePio.base;
  const winEnd = winBase + VIRT_MEMMAP.pciePio.size;
  return {
    bridge,
    window,
    transports,
    portAccess(gpa: number) {
      if (!(gpa >= winBase && gpa < winEnd)) return undefined;
      const port = gpa - winBase;
      return { port, device: io.pio.deviceAt(port)?.device.name ?? "unmapped" };
    },
    reset() {
      for (const t of transports) t.reset();
      bridge.reset();
    },
    toState() {
      return { bridge: bridge.toState(), transports: transports.map((t) => t.toState()) };
    },
    fromState(state: unknown) {
      if (typeof state !== "object" || state === null) throw new Error("invalid PCI state: not an object");
      const s = state as Record<string, unknown>;
      const ts = s.transports;
      if (!Array.isArray(ts) || ts.length !== transports.length) {
        throw new Error(`invalid PCI state: transports must have ${transports.length} entries`);
      }
      bridge.fromState(s.bridge);
      transports.forEach((t, i) => {
        t.fromState(ts[i]);
      });
    },
  };
}
