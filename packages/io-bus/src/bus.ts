/**
 * What the MMIO bus and the port-I/O bus share: a sorted list of non-overlapping ranges,
 * O(log n) lookup behind a last-hit cache, width adaptation, write listeners and
 * statistics. The per-access fast paths live in the subclasses (mmio.ts, pio.ts) so that
 * each stays monomorphic; everything here is either registration (rare) or a slow path.
 *
 * Behaviour at the edges (the package README has the same table):
 * - No device covers the first byte, or the access runs past the end of the device's
 *   range (even into an adjacent device): unmapped.
 * - A width the device declares: one device call.
 * - A width wider than any the device declares at or below it: split into accesses of
 *   the widest declared narrower width, at ascending offsets, least significant part
 *   first (little-endian, like RISC-V and x86). 8-byte MMIO accesses to a device without
 *   WIDTH_8 become two 4-byte accesses (low half at addr, then high half at addr + 4),
 *   each split further if the device lacks WIDTH_4.
 * - A width narrower than the narrowest the device declares: unmapped (on RISC-V an
 *   access fault, as a device that decodes only whole registers would give), never a
 *   read-modify-write, which could fire side effects of the bytes the guest did not touch.
 * - Alignment is not checked: a misaligned access inside the range reaches the device.
 */

import {
  type BusDevice,
  type NarrowAccessSize,
  WIDTH_1,
  WIDTH_2,
  WIDTH_4,
  WIDTH_8,
  WIDTHS_ALL,
  WIDTHS_DEFAULT,
} from "./device.ts";
import type { AccessCounters, BusKind, BusStats, DeviceStats, UnmappedHook } from "./stats.ts";

/**
 * What `MmioBus.read` returns when no device covers the access. Every real result is
 * unsigned, so it can never be -1; the CPU turns it into a load access fault.
 */
export const UNMAPPED = -1;

/** Called with the written value (unsigned, truncated to the listener's size). */
export type WriteListener = (value: number) => void;

/** Options shared by both buses. */
export interface BusOptions {
  /** Called for every access that reaches no device (tracing); none by default. */
  onUnmapped?: UnmappedHook;
}

/** A registered range, as returned by `ranges()` and `deviceAt()`. */
export interface BusRange {
  base: number;
  length: number;
  device: BusDevice;
}

/**
 * One registered range. The counters live here, so the counting path updates them with
 * no Map lookup. Internal: not exported from the package.
 */
export class Mapping implements AccessCounters {
  readonly base: number;
  /** Exclusive end: base + length. */
  readonly end: number;
  readonly device: BusDevice;
  /** Declared widths (WIDTH_* mask). */
  readonly widths: number;
  /** Bit (1 << size) set for each size in 1, 2, 4 that goes straight to the device. */
  readonly accept: number;
  /** Narrowest declared width; narrower accesses are unmapped. */
  readonly minWidth: number;
  /** How many write listeners have an address inside this range. */
  listeners = 0;
  reads = 0;
  writes = 0;
  bytesRead = 0;
  bytesWritten = 0;
  listenerWrites = 0;

  constructor(base: number, end: number, device: BusDevice, widths: number) {
    this.base = base;
    this.end = end;
    this.device = device;
    this.widths = widths;
    let accept = 0;
    if ((widths & WIDTH_1) !== 0) accept |= 1 << 1;
    if ((widths & WIDTH_2) !== 0) accept |= 1 << 2;
    if ((widths & WIDTH_4) !== 0) accept |= 1 << 4;
    this.accept = accept;
    this.minWidth = widths === 0 ? 0 : widths & -widths; // lowest set bit; WIDTH_n === n
  }
}

const NO_DEVICE: BusDevice = {
  name: "(none)",
  read: () => 0,
  write: () => {},
};

/** The last-hit cache's empty value: base 0, end 0, so `addr + size <= end` never holds. */
const NO_MAPPING = new Mapping(0, 0, NO_DEVICE, 0);

interface ListenerEntry {
  readonly addr: number;
  readonly size: NarrowAccessSize;
  /** The value to match, or -1 for any value. */
  readonly match: number;
  readonly fn: WriteListener;
}

/** Mask for an access of `size` bytes (1, 2 or 4): 0xff, 0xffff, 0xffffffff. */
export const sizeMask = (size: number): number => 0xffffffff >>> (32 - (size << 3));

/** Throws a clear error unless `size` is 1, 2 or 4. */
function checkNarrowSize(bus: string, what: string, size: number): void {
  if (size !== 1 && size !== 2 && size !== 4) {
    throw new RangeError(`${bus}: ${what} size must be 1, 2 or 4 bytes, got ${String(size)}`);
  }
}

export abstract class IoBus {
  readonly kind: BusKind;
  /** Exclusive upper bound of the address space: 2^53 for MMIO, 0x10000 for ports. */
  readonly limit: number;

  /**
   * Read `size` bytes at `addr`. Returns the unsigned value; for an unmapped access
   * `UNMAPPED` on the MMIO bus and all ones on the port bus. Allocation-free.
   */
  declare read: (addr: number, size: NarrowAccessSize) => number;
  /**
   * Write the low `size` bytes of `value` at `addr`. Returns false if the access reached
   * neither a device nor a write listener (the port bus ignores such writes; the MMIO
   * caller raises a store access fault). Allocation-free.
   */
  declare write: (addr: number, size: NarrowAccessSize, value: number) => boolean;

  /** Last range hit; NO_MAPPING when empty. */
  protected last: Mapping = NO_MAPPING;
  /** Range bases in ascending order, parallel to `maps`. */
  protected bases: number[] = [];
  protected maps: Mapping[] = [];

  protected counting = false;
  protected totals: AccessCounters = {
    reads: 0,
    writes: 0,
    bytesRead: 0,
    bytesWritten: 0,
    listenerWrites: 0,
  };
  protected unmappedReads = 0;
  protected unmappedWrites = 0;

  protected listenersByAddr = new Map<number, ListenerEntry[]>();
  /** Number of write listeners on this bus; the unmapped write path checks it. */
  protected listenerTotal = 0;

  protected readonly onUnmapped: UnmappedHook | undefined;
  /** "MMIO" or "PIO", for messages. */
  protected readonly label: string;

  protected constructor(kind: BusKind, limit: number, options: BusOptions | undefined) {
    this.kind = kind;
    this.limit = limit;
    this.label = kind === "mmio" ? "MMIO" : "PIO";
    this.onUnmapped = options?.onUnmapped;
    this.read = this.fastRead;
    this.write = this.fastWrite;
  }

  /** The allocation-free, non-counting read path (subclass; see `read`). */
  protected abstract fastRead(addr: number, size: NarrowAccessSize): number;
  /** The allocation-free, non-counting write path (subclass; see `write`). */
  protected abstract fastWrite(addr: number, size: NarrowAccessSize, value: number): boolean;
  /** What a read that reaches no device returns. */
  protected abstract unmappedValue(size: NarrowAccessSize): number;

  // ---------------------------------------------------------------- registration

  /**
   * Map `device` over `[base, base + length)`. Throws if the range leaves the address
   * space, overlaps a registered range (the message names both devices and ranges), or
   * the device is malformed or already registered.
   */
  register(base: number, length: number, device: BusDevice): void {
    const who = describeDevice(device);
    if (typeof device !== "object" || device === null) {
      throw new TypeError(`${this.label}: register() needs a device object, got ${who}`);
    }
    if (typeof device.name !== "string" || device.name === "") {
      throw new TypeError(`${this.label}: a device needs a non-empty string name`);
    }
    if (typeof device.read !== "function" || typeof device.write !== "function") {
      throw new TypeError(`${this.label}: device "${device.name}" must have read() and write() methods`);
    }
    if (!Number.isSafeInteger(base) || base < 0 || base >= this.limit) {
      throw new RangeError(
        `${this.label}: base of "${device.name}" must be an integer in [0, ${this.hex(this.limit)}), got ${String(base)}`,
      );
    }
    if (!Number.isSafeInteger(length) || length < 1 || base + length > this.limit) {
      throw new RangeError(
        `${this.label}: length of "${device.name}" at ${this.hex(base)} must be an integer >= 1 ending at or below ${this.hex(this.limit)}, got ${String(length)}`,
      );
    }
    const widths = device.widths ?? WIDTHS_DEFAULT;
    if (!Number.isInteger(widths) || widths <= 0 || (widths & ~WIDTHS_ALL) !== 0) {
      throw new RangeError(
        `${this.label}: device "${device.name}" declares widths ${String(widths)}; expected a non-empty mask of WIDTH_1|WIDTH_2|WIDTH_4|WIDTH_8`,
      );
    }
    if (
      (widths & WIDTH_8) !== 0 &&
      (typeof device.read64 !== "function" || typeof device.write64 !== "function")
    ) {
      throw new TypeError(
        `${this.label}: device "${device.name}" declares WIDTH_8 but lacks read64() or write64()`,
      );
    }
    if (this.kind === "pio" && (widths & (WIDTH_1 | WIDTH_2 | WIDTH_4)) === 0) {
      throw new RangeError(
        `${this.label}: device "${device.name}" declares only 8-byte accesses, which port I/O never makes`,
      );
    }
    const end = base + length;
    for (const m of this.maps) {
      if (m.device === device) {
        throw new Error(
          `${this.label}: device "${device.name}" is already registered at ${this.span(m.base, m.end)}`,
        );
      }
    }
    const at = this.upperBound(base); // first index whose base is > base
    const prev = this.maps[at - 1];
    const next = this.maps[at];
    const clash =
      prev !== undefined && prev.end > base ? prev : next !== undefined && next.base < end ? next : null;
    if (clash !== null) {
      throw new Error(
        `${this.label}: cannot register "${device.name}" at ${this.span(base, end)}: overlaps "${clash.device.name}" at ${this.span(clash.base, clash.end)}`,
      );
    }
    const m = new Mapping(base, end, device, widths);
    for (const addr of this.listenersByAddr.keys()) {
      if (addr >= base && addr < end) m.listeners += this.listenersByAddr.get(addr)?.length ?? 0;
    }
    this.bases.splice(at, 0, base);
    this.maps.splice(at, 0, m);
  }

  /**
   * Remove a device, given the device object or the base it was registered at. Returns
   * the device removed; throws if there is none. Write listeners stay (they belong to
   * addresses, not devices).
   */
  unregister(target: BusDevice | number): BusDevice {
    let index: number;
    if (typeof target === "number") {
      index = this.upperBound(target) - 1;
      if (index < 0 || this.bases[index] !== target) {
        throw new Error(`${this.label}: no device is registered at base ${this.hexOf(target)}`);
      }
    } else {
      index = this.maps.findIndex((m) => m.device === target);
      if (index < 0) {
        throw new Error(`${this.label}: device ${describeDevice(target)} is not registered`);
      }
    }
    const m = this.maps[index]!;
    this.bases.splice(index, 1);
    this.maps.splice(index, 1);
    if (this.last === m) this.last = NO_MAPPING;
    return m.device;
  }

  /** The range covering `addr`, if any (not for the hot path). */
  deviceAt(addr: number): BusRange | undefined {
    const m = this.find(addr);
    return m === undefined ? undefined : { base: m.base, length: m.end - m.base, device: m.device };
  }

  /** Every registered range, in address order. */
  ranges(): BusRange[] {
    return this.maps.map((m) => ({ base: m.base, length: m.end - m.base, device: m.device }));
  }

  /** Number of registered devices. */
  get deviceCount(): number {
    return this.maps.length;
  }

  // ---------------------------------------------------------------- lookup

  /** Number of ranges whose base is <= addr (binary search). */
  protected upperBound(addr: number): number {
    const bases = this.bases;
    let lo = 0;
    let hi = bases.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (bases[mid]! <= addr) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** The range containing `addr`, if any. */
  protected find(addr: number): Mapping | undefined {
    const i = this.upperBound(addr) - 1;
    if (i < 0) return undefined;
    const m = this.maps[i]!;
    return addr < m.end ? m : undefined;
  }

  /**
   * Last-hit cache miss: the range containing the whole access, which also becomes the
   * new last hit, or undefined (hole, or the access runs past the range's end).
   */
  protected lookupSlow(addr: number, size: number): Mapping | undefined {
    const m = this.find(addr);
    if (m === undefined || addr + size > m.end) return undefined;
    this.last = m;
    return m;
  }

  // ---------------------------------------------------------------- slow paths

  /** An access that reached no device: count it, tell the hook. */
  protected noteUnmapped(write: boolean, addr: number, size: 1 | 2 | 4 | 8, value?: number | bigint): void {
    if (write) this.unmappedWrites++;
    else this.unmappedReads++;
    const hook = this.onUnmapped;
    if (hook !== undefined) {
      hook(
        value === undefined
          ? { bus: this.kind, kind: write ? "write" : "read", addr, size }
          : { bus: this.kind, kind: "write", addr, size, value },
      );
    }
  }

  protected readMiss(addr: number, size: NarrowAccessSize): number {
    checkNarrowSize(this.label, "read", size);
    this.noteUnmapped(false, addr, size);
    return this.unmappedValue(size);
  }

  /** An unmapped write: a listener may still claim it. `value` is already truncated. */
  protected writeMiss(addr: number, size: NarrowAccessSize, value: number): boolean {
    checkNarrowSize(this.label, "write", size);
    value = (value & sizeMask(size)) >>> 0;
    if (this.listenerTotal !== 0 && this.fireListener(undefined, addr, size, value)) return true;
    this.noteUnmapped(true, addr, size, value);
    return false;
  }

  /** A mapped read whose width the device does not declare (see the table above). */
  protected readOdd(m: Mapping, offset: number, size: NarrowAccessSize): number {
    checkNarrowSize(this.label, "read", size);
    if (size < m.minWidth) return this.readMiss(m.base + offset, size);
    const piece: NarrowAccessSize = size === 4 && (m.widths & WIDTH_2) !== 0 ? 2 : 1;
    const mask = sizeMask(piece);
    const device = m.device;
    let value = 0;
    for (let i = 0; i < size; i += piece) {
      value |= (device.read(offset + i, piece) & mask) << (i << 3);
    }
    return value >>> 0;
  }

  /** A mapped write whose width the device does not declare. `value` is already truncated. */
  protected writeOdd(m: Mapping, offset: number, size: NarrowAccessSize, value: number): boolean {
    checkNarrowSize(this.label, "write", size);
    if (size < m.minWidth) {
      this.noteUnmapped(true, m.base + offset, size, value);
      return false;
    }
    const piece: NarrowAccessSize = size === 4 && (m.widths & WIDTH_2) !== 0 ? 2 : 1;
    const mask = sizeMask(piece);
    const device = m.device;
    for (let i = 0; i < size; i += piece) {
      device.write(offset + i, piece, (value >>> (i << 3)) & mask);
    }
    return true;
  }

  /** A mapped read of 1, 2 or 4 bytes, whatever the device's widths. */
  protected dispatchRead(m: Mapping, offset: number, size: NarrowAccessSize): number {
    if ((m.accept & (1 << size)) !== 0) return (m.device.read(offset, size) & sizeMask(size)) >>> 0;
    return this.readOdd(m, offset, size);
  }

  /** A mapped write of 1, 2 or 4 bytes, whatever the device's widths. `value` truncated. */
  protected dispatchWrite(m: Mapping, offset: number, size: NarrowAccessSize, value: number): boolean {
    if ((m.accept & (1 << size)) !== 0) {
      m.device.write(offset, size, value);
      return true;
    }
    return this.writeOdd(m, offset, size, value);
  }

  // ---------------------------------------------------------------- statistics

  /**
   * Start counting accesses. Swaps the counting paths in for `read`/`write`, so that
   * with statistics off the hot path carries no counter at all. Counters keep their
   * values across disable/enable; `resetStats()` zeroes them.
   */
  enableStats(): void {
    this.counting = true;
    this.read = this.countedRead;
    this.write = this.countedWrite;
  }

  /** Stop counting and go back to the plain paths. */
  disableStats(): void {
    this.counting = false;
    this.read = this.fastRead;
    this.write = this.fastWrite;
  }

  get statsEnabled(): boolean {
    return this.counting;
  }

  /** Zero every counter, the bus's and its devices'. */
  resetStats(): void {
    this.totals = { reads: 0, writes: 0, bytesRead: 0, bytesWritten: 0, listenerWrites: 0 };
    this.unmappedReads = 0;
    this.unmappedWrites = 0;
    for (const m of this.maps) {
      m.reads = 0;
      m.writes = 0;
      m.bytesRead = 0;
      m.bytesWritten = 0;
      m.listenerWrites = 0;
    }
  }

  /** A snapshot (plain objects, safe to keep) of the bus's and its devices' counters. */
  stats(): BusStats {
    const t = this.totals;
    const devices: DeviceStats[] = this.maps.map((m) => ({
      name: m.device.name,
      base: m.base,
      length: m.end - m.base,
      reads: m.reads,
      writes: m.writes,
      bytesRead: m.bytesRead,
      bytesWritten: m.bytesWritten,
      listenerWrites: m.listenerWrites,
    }));
    return {
      bus: this.kind,
      enabled: this.counting,
      reads: t.reads,
      writes: t.writes,
      bytesRead: t.bytesRead,
      bytesWritten: t.bytesWritten,
      listenerWrites: t.listenerWrites,
      unmappedReads: this.unmappedReads,
      unmappedWrites: this.unmappedWrites,
      devices,
    };
  }

  protected countRead(m: Mapping, size: number): void {
    m.reads++;
    m.bytesRead += size;
    this.totals.reads++;
    this.totals.bytesRead += size;
  }

  protected countWrite(m: Mapping, size: number): void {
    m.writes++;
    m.bytesWritten += size;
    this.totals.writes++;
    this.totals.bytesWritten += size;
  }

  private countedRead(addr: number, size: NarrowAccessSize): number {
    let m = this.last;
    if (!(addr >= m.base && addr + size <= m.end)) {
      const found = this.lookupSlow(addr, size);
      if (found === undefined) return this.readMiss(addr, size);
      m = found;
    }
    checkNarrowSize(this.label, "read", size);
    if (size < m.minWidth) return this.readMiss(addr, size);
    this.countRead(m, size);
    return this.dispatchRead(m, addr - m.base, size);
  }

  private countedWrite(addr: number, size: NarrowAccessSize, value: number): boolean {
    let m = this.last;
    if (!(addr >= m.base && addr + size <= m.end)) {
      const found = this.lookupSlow(addr, size);
      if (found === undefined) return this.writeMiss(addr, size, value);
      m = found;
    }
    checkNarrowSize(this.label, "write", size);
    value = (value & sizeMask(size)) >>> 0;
    if (m.listeners !== 0 && this.fireListener(m, addr, size, value)) return true;
    if (size < m.minWidth) {
      this.noteUnmapped(true, addr, size, value);
      return false;
    }
    this.countWrite(m, size);
    return this.dispatchWrite(m, addr - m.base, size, value);
  }

  // ---------------------------------------------------------------- write listeners

  /**
   * ioeventfd-style fast path: from now on a write of exactly `size` bytes to exactly
   * `addr` (and, when `value` is given, of exactly that value) calls `listener(value)`
   * INSTEAD of the device's write, or even where no device is mapped. Other sizes,
   * addresses or values go to the device as usual, and so do 8-byte writes. A listener
   * for a specific value wins over an any-value listener at the same address and size;
   * only one listener fires per write. Registering the same (addr, size, value) twice is
   * refused. Returns a function that removes the listener (calling it again does nothing).
   * A listener must not throw: the exception would surface in the CPU's store.
   */
  addWriteListener(
    addr: number,
    size: NarrowAccessSize,
    listener: WriteListener,
    value?: number,
  ): () => void {
    checkNarrowSize(this.label, "write listener", size);
    if (!Number.isSafeInteger(addr) || addr < 0 || addr + size > this.limit) {
      throw new RangeError(
        `${this.label}: write listener address must be an integer with addr + size <= ${this.hex(this.limit)}, got ${String(addr)}`,
      );
    }
    if (typeof listener !== "function") {
      throw new TypeError(`${this.label}: write listener at ${this.hexOf(addr)} must be a function`);
    }
    if (value !== undefined && (!Number.isInteger(value) || value < 0 || value > sizeMask(size))) {
      throw new RangeError(
        `${this.label}: write listener value for a ${size}-byte write must be an integer in [0, ${this.hex(sizeMask(size))}], got ${String(value)}`,
      );
    }
    const match = value ?? -1;
    let list = this.listenersByAddr.get(addr);
    if (list === undefined) {
      list = [];
      this.listenersByAddr.set(addr, list);
    }
    if (list.some((e) => e.size === size && e.match === match)) {
      throw new Error(
        `${this.label}: a ${size}-byte write listener for ${value === undefined ? "any value" : `value ${this.hex(value)}`} at ${this.hexOf(addr)} already exists`,
      );
    }
    const entry: ListenerEntry = { addr, size, match, fn: listener };
    list.push(entry);
    this.listenerTotal++;
    const owner = this.find(addr);
    if (owner !== undefined) owner.listeners++;
    return () => this.removeListener(entry);
  }

  /** Number of write listeners currently installed. */
  get writeListenerCount(): number {
    return this.listenerTotal;
  }

  private removeListener(entry: ListenerEntry): void {
    const list = this.listenersByAddr.get(entry.addr);
    const i = list === undefined ? -1 : list.indexOf(entry);
    if (list === undefined || i < 0) return;
    list.splice(i, 1);
    if (list.length === 0) this.listenersByAddr.delete(entry.addr);
    this.listenerTotal--;
    const owner = this.find(entry.addr);
    if (owner !== undefined) owner.listeners--;
  }

  /** Fire the listener matching this write, if any. `value` is already truncated. */
  protected fireListener(m: Mapping | undefined, addr: number, size: number, value: number): boolean {
    const list = this.listenersByAddr.get(addr);
    if (list === undefined) return false;
    let hit: ListenerEntry | undefined;
    for (let i = 0; i < list.length; i++) {
      const e = list[i]!;
      if (e.size !== size) continue;
      if (e.match === value) {
        hit = e;
        break;
      }
      if (e.match < 0) hit = e;
    }
    if (hit === undefined) return false;
    if (this.counting) {
      this.totals.listenerWrites++;
      if (m !== undefined) m.listenerWrites++;
    }
    hit.fn(value);
    return true;
  }

  // ---------------------------------------------------------------- formatting

  /** Hex for messages: at least 8 digits for MMIO, 4 for ports. */
  protected hex(n: number): string {
    return `0x${n.toString(16).padStart(this.kind === "mmio" ? 8 : 4, "0")}`;
  }

  protected hexOf(n: unknown): string {
    return typeof n === "number" && Number.isSafeInteger(n) && n >= 0 ? this.hex(n) : String(n);
  }

  protected span(base: number, end: number): string {
    return `[${this.hex(base)}, ${this.hex(end)})`;
  }
}

function describeDevice(device: unknown): string {
  if (typeof device === "object" && device !== null && typeof (device as BusDevice).name === "string") {
    return `"${(device as BusDevice).name}"`;
  }
  return String(device);
}
