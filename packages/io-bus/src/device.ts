/**
 * The device side of a bus. A device never knows its base address or which bus it sits
 * on: every access arrives as an offset relative to the start of its own range
 * (Firecracker's `BusDevice`, vm-superio's `Serial`).
 */

/** Width of one access in bytes. */
export type AccessSize = 1 | 2 | 4 | 8;

/** Bit mask of supported widths: bit n set means a 2^n-byte access is supported. */
export const WIDTH_1 = 1 << 0;
export const WIDTH_2 = 1 << 1;
export const WIDTH_4 = 1 << 2;
export const WIDTH_8 = 1 << 3;
/** The default when a device declares nothing: 1, 2 and 4 bytes. */
export const WIDTHS_DEFAULT = WIDTH_1 | WIDTH_2 | WIDTH_4;

export interface BusDevice {
  /** Short name used in statistics and error messages ("uart0", "virtio-blk@0"). */
  readonly name: string;
  /**
   * Supported access widths as a mask of WIDTH_* bits; WIDTHS_DEFAULT when absent.
   * What the bus does with other widths is defined in the bus (see bus.ts).
   */
  readonly widths?: number;
  /** Read `size` (1, 2 or 4) bytes at `offset`; returns the value zero-extended (unsigned). */
  read(offset: number, size: 1 | 2 | 4): number;
  /** Write the low `size` (1, 2 or 4) bytes of `value` at `offset`. */
  write(offset: number, size: 1 | 2 | 4, value: number): void;
  /** 8-byte read, only called when `widths` includes WIDTH_8. */
  read64?(offset: number): bigint;
  /** 8-byte write, only called when `widths` includes WIDTH_8. */
  write64?(offset: number, value: bigint): void;
}
