/**
 * The port-I/O bus: a separate 64 KiB address space of "ports", reached on x86 by the
 * IN/OUT instructions and on RISC-V or ARM through a PCI host bridge's I/O window (an
 * MMIO range the bridge forwards here). As on a PC, an unmapped port reads all ones and
 * ignores writes; the CPU never faults on port I/O.
 */

import { type BusOptions, IoBus, sizeMask } from "./bus.ts";
import type { NarrowAccessSize } from "./device.ts";

/** Exclusive upper bound of port numbers: ports are 16-bit. */
export const PORT_LIMIT = 0x10000;

export class PortBus extends IoBus {
  constructor(options?: BusOptions) {
    super("pio", PORT_LIMIT, options);
  }

  // Same shape as MmioBus's paths, kept separate so each bus's hot path sees one class.

  protected fastRead(port: number, size: NarrowAccessSize): number {
    let m = this.last;
    if (!(port >= m.base && port + size <= m.end)) {
      const found = this.lookupSlow(port, size);
      if (found === undefined) return this.readMiss(port, size);
      m = found;
    }
    if ((m.accept & (1 << size)) !== 0) {
      return (m.device.read(port - m.base, size) & (0xffffffff >>> (32 - (size << 3)))) >>> 0;
    }
    return this.readOdd(m, port - m.base, size);
  }

  protected fastWrite(port: number, size: NarrowAccessSize, value: number): boolean {
    let m = this.last;
    if (!(port >= m.base && port + size <= m.end)) {
      const found = this.lookupSlow(port, size);
      if (found === undefined) return this.writeMiss(port, size, value);
      m = found;
    }
    value = (value & (0xffffffff >>> (32 - (size << 3)))) >>> 0;
    if (m.listeners !== 0 && this.fireListener(m, port, size, value)) return true;
    if ((m.accept & (1 << size)) !== 0) {
      m.device.write(port - m.base, size, value);
      return true;
    }
    return this.writeOdd(m, port - m.base, size, value);
  }

  /** All ones for the width: 0xff, 0xffff or 0xffffffff (a floating ISA/PCI bus). */
  protected unmappedValue(size: NarrowAccessSize): number {
    return sizeMask(size);
  }
}
