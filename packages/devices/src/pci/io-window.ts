import { type BusDevice, type IoBus, PORT_LIMIT } from "@visor/io-bus";

/*
 * The host bridge's I/O window: a range of MMIO addresses the bridge turns into PCI I/O
 * transactions, port = address - window base (on QEMU virt 64 KiB at 0x3000000, the
 * device tree's `ranges` entry with PCI address 0). Every access goes to the port-I/O bus
 * unchanged in width, so port statistics, write listeners (the virtio notify fast path)
 * and the all-ones answer of an unused port all apply. An access the MMIO bus lets through
 * always lies inside the window (it never passes on one that runs past the range's end),
 * and the window checks again, so no access through it can name a port outside
 * [0, size) with size <= 0x10000.
 */

/** What the window forwards to: the port-I/O bus (`IoManager.pio`). */
export type PortSpace = Pick<IoBus, "read" | "write">;

export interface PciIoWindowOptions {
  pio: PortSpace;
  /** Bytes of port space the window covers, from port 0; default and at most 0x10000. */
  size?: number;
  /** Name on the MMIO bus; default "pci-io". */
  name?: string;
}

export class PciIoWindow implements BusDevice {
  readonly name: string;
  readonly size: number;
  private readonly pio: PortSpace;

  constructor(options: PciIoWindowOptions) {
    const size = options.size ?? PORT_LIMIT;
    if (!Number.isInteger(size) || size < 1 || size > PORT_LIMIT) {
      throw new RangeError(`PCI I/O window: size ${String(size)} must be in [1, 0x10000]`);
    }
    this.size = size;
    this.pio = options.pio;
    this.name = options.name ?? "pci-io";
  }

  read(offset: number, size: 1 | 2 | 4): number {
    if (!(offset >= 0 && offset + size <= this.size)) return size === 4 ? 0xffff_ffff : (1 << (8 * size)) - 1;
    return this.pio.read(offset, size);
  }

  write(offset: number, size: 1 | 2 | 4, value: number): void {
    if (!(offset >= 0 && offset + size <= this.size)) return;
    this.pio.write(offset, size, value);
  }
}
