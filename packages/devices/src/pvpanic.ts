import { type BusDevice, WIDTH_1 } from "@visor/io-bus";

/*
 * pvpanic: the guest tells the host it has panicked. One byte register at offset 0 (the
 * interface of QEMU's pvpanic device, hw/misc/pvpanic.c, and of Linux's pvpanic-mmio
 * driver, drivers/misc/pvpanic/, matched by the device-tree compatible
 * "qemu,pvpanic-mmio"): a read returns the events the device supports, a write of an
 * event's bit reports it. Linux reads the register once at probe and writes PANICKED from
 * its first panic notifier, before the kernel prints its last lines or acts on `panic=`.
 *
 * Only PANICKED (bit 0) is supported: CRASH_LOADED (bit 1, "a kdump kernel takes over")
 * needs kexec, which the machine does not offer, so the guest never sends it. A write is
 * taken as a panic when bit 0 is set, whatever else it carries.
 */

/** The guest has panicked (bit 0 of the register). */
export const PVPANIC_PANICKED = 1 << 0;
/** A crash kernel is loaded and will take over (bit 1); not offered by this device. */
export const PVPANIC_CRASH_LOADED = 1 << 1;
/** The register window the device occupies (a page, though only offset 0 is decoded). */
export const PVPANIC_SIZE = 0x1000;

export interface PvPanicOptions {
  /** Bus name; default "pvpanic". */
  name?: string;
  /** Called on every write that reports a panic. */
  onPanic: () => void;
}

export class PvPanic implements BusDevice {
  readonly name: string;
  readonly widths = WIDTH_1;
  private readonly onPanic: () => void;

  constructor(options: PvPanicOptions) {
    this.name = options.name ?? "pvpanic";
    this.onPanic = options.onPanic;
  }

  /** Offset 0: the supported events (PANICKED); anything else reads 0. */
  read(offset: number, _size: 1 | 2 | 4): number {
    return offset === 0 ? PVPANIC_PANICKED : 0;
  }

  write(offset: number, _size: 1 | 2 | 4, value: number): void {
    if (offset === 0 && (value & PVPANIC_PANICKED) !== 0) this.onPanic();
  }
}
