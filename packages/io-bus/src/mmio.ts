/**
 * The memory-mapped I/O bus: devices live in the guest-physical address space and the
 * guest reaches them with ordinary loads and stores. Addresses are JS numbers below 2^53,
 * enough for any physical address a RISC-V hart produces (Sv57 and the G-stage stop at
 * 56 physical bits).
 */

import { type BusOptions, IoBus, UNMAPPED } from "./bus.ts";
import { type NarrowAccessSize, WIDTH_8 } from "./device.ts";

/** Exclusive upper bound of MMIO addresses: 2^53, the largest range of exact JS integers. */
export const MMIO_LIMIT = 2 ** 53;

export class MmioBus extends IoBus {
  constructor(options?: BusOptions) {
    super("mmio", MMIO_LIMIT, options);
  }

  protected fastRead(addr: number, size: NarrowAccessSize): number {
    let m = this.last;
    if (!(addr >= m.base && addr + size <= m.end)) {
      const found = this.lookupSlow(addr, size);
      if (found === undefined) return this.readMiss(addr, size);
      m = found;
    }
    if ((m.accept & (1 << size)) !== 0) {
      return (m.device.read(addr - m.base, size) & (0xffffffff >>> (32 - (size << 3)))) >>> 0;
    }
    return this.readOdd(m, addr - m.base, size);
  }

  protected fastWrite(addr: number, size: NarrowAccessSize, value: number): boolean {
    let m = this.last;
    if (!(addr >= m.base && addr + size <= m.end)) {
      const found = this.lookupSlow(addr, size);
      if (found === undefined) return this.writeMiss(addr, size, value);
      m = found;
    }
    value = (value & (0xffffffff >>> (32 - (size << 3)))) >>> 0;
    if (m.listeners !== 0 && this.fireListener(m, addr, size, value)) return true;
    if ((m.accept & (1 << size)) !== 0) {
      m.device.write(addr - m.base, size, value);
      return true;
    }
    return this.writeOdd(m, addr - m.base, size, value);
  }

  protected unmappedValue(): number {
    return UNMAPPED;
  }

  /**
   * 8-byte read. A device declaring WIDTH_8 gets one `read64`; any other device gets two
   * 4-byte reads, low half at `addr` first, then high half at `addr + 4`. Returns the
   * unsigned value, or undefined when unmapped (including an access running past the end
   * of the device's range). Allocates a BigInt, unlike `read`.
   */
  read64(addr: number): bigint | undefined {
    let m = this.last;
    if (!(addr >= m.base && addr + 8 <= m.end)) {
      const found = this.lookupSlow(addr, 8);
      if (found === undefined) {
        this.noteUnmapped(false, addr, 8);
        return undefined;
      }
      m = found;
    }
    if (this.counting) this.countRead(m, 8);
    const offset = addr - m.base;
    if ((m.widths & WIDTH_8) !== 0) return BigInt.asUintN(64, m.device.read64!(offset));
    // Without WIDTH_8 the narrowest declared width is at most 4, so neither half is refused.
    const lo = this.dispatchRead(m, offset, 4);
    const hi = this.dispatchRead(m, offset + 4, 4);
    return (BigInt(hi) << 32n) | BigInt(lo);
  }

  /**
   * 8-byte write of `value` (taken modulo 2^64). A device declaring WIDTH_8 gets one
   * `write64`; any other device gets two 4-byte writes, low half at `addr` first, then
   * high half at `addr + 4`. Write listeners do not apply to 8-byte writes. Returns false
   * when unmapped.
   */
  write64(addr: number, value: bigint): boolean {
    const v = BigInt.asUintN(64, value);
    let m = this.last;
    if (!(addr >= m.base && addr + 8 <= m.end)) {
      const found = this.lookupSlow(addr, 8);
      if (found === undefined) {
        this.noteUnmapped(true, addr, 8, v);
        return false;
      }
      m = found;
    }
    if (this.counting) this.countWrite(m, 8);
    const offset = addr - m.base;
    if ((m.widths & WIDTH_8) !== 0) {
      m.device.write64!(offset, v);
      return true;
    }
    this.dispatchWrite(m, offset, 4, Number(v & 0xffffffffn));
    this.dispatchWrite(m, offset + 4, 4, Number(v >> 32n));
    return true;
  }
}
