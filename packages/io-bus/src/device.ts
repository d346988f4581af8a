/**
 * The device side of a bus. A device never knows its base address or which bus it sits
 * on: every access arrives as an offset relative to the start of its own range
 * (Firecracker's `BusDevice`, vm-superio's `Serial`).
 */

/** Width of one access in bytes. */
export type AccessSize = 1 | 2 | 4 | 8;

/** The widths a `read`/`write` call carries; 8-byte accesses go through `read64`/`write64`. */
export type NarrowAccessSize = 1 | 2 | 4;

/**
 * Bit mask of supported widths: bit n set means a 2^n-byte access is supported. Note that
 * each constant equals its width in bytes (WIDTH_4 === 4), which lets the bus test
 * `widths & size` directly.
 */
export const WIDTH_1 = 1 << 0;
export const WIDTH_2 = 1 << 1;
export const WIDTH_4 = 1 << 2;
export const WIDTH_8 = 1 << 3;
/** The default when a device declares nothing: 1, 2 and 4 bytes. */
export const WIDTHS_DEFAULT = WIDTH_1 | WIDTH_2 | WIDTH_4;
/** Every width a device can declare. */
export const WIDTHS_ALL = WIDTH_1 | WIDTH_2 | WIDTH_4 | WIDTH_8;

/**
 * A device as the bus sees it.
 *
 * The bus guarantees, for every call it makes:
 * - `0 <= offset` and `offset + size <= length` of the range the device was registered
 *   over (an access that would run past the end never reaches the device);
 * - `size` is a width the device declared in `widths` (other widths are split or refused
 *   by the bus, see the package README);
 * - a written `value` is already truncated to `size` bytes and unsigned.
 *
 * The bus does not check alignment: a misaligned access that fits inside the range is
 * passed on as is, and the device decides what it means.
 */
export interface BusDevice {
  /** Short name used in statistics and error messages ("uart0", "virtio-blk@0"). */
  readonly name: string;
  /**
   * Supported access widths as a mask of WIDTH_* bits; WIDTHS_DEFAULT when absent.
   * What the bus does with other widths is defined in the bus (see bus.ts).
   */
  readonly widths?: number;
  /**
   * Read `size` (1, 2 or 4) bytes at `offset`; returns the value zero-extended (unsigned).
   * The bus truncates the result to `size` bytes and makes it unsigned, so returning a
   * signed int32 such as `x | 0` for a 4-byte read is harmless.
   */
  read(offset: number, size: NarrowAccessSize): number;
  /** Write the low `size` (1, 2 or 4) bytes of `value` at `offset`. */
  write(offset: number, size: NarrowAccessSize, value: number): void;
  /** 8-byte read, only called when `widths` includes WIDTH_8. Returns an unsigned 64-bit value. */
  read64?(offset: number): bigint;
  /** 8-byte write, only called when `widths` includes WIDTH_8. `value` is unsigned 64-bit. */
  write64?(offset: number, value: bigint): void;
}
