import type { BusDevice } from "@visor/io-bus";
import { type IrqLine, NO_IRQ } from "../irq.ts";
import { DeviceStateError, stateIntArray, stateObject } from "../state.ts";
import {
  PCI_BASE_ADDRESS_0,
  PCI_BASE_ADDRESS_SPACE_IO,
  PCI_CACHE_LINE_SIZE,
  PCI_CFG_SPACE_SIZE,
  PCI_CLASS_PROG,
  PCI_COMMAND,
  PCI_COMMAND_INTX_DISABLE,
  PCI_COMMAND_IO,
  PCI_COMMAND_MASTER,
  PCI_COMMAND_MEMORY,
  PCI_COMMAND_PARITY,
  PCI_COMMAND_SERR,
  PCI_DEVICE_ID,
  PCI_HEADER_TYPE,
  PCI_HEADER_TYPE_NORMAL,
  PCI_INTERRUPT_INTD,
  PCI_INTERRUPT_LINE,
  PCI_INTERRUPT_PIN,
  PCI_NUM_BARS,
  PCI_REVISION_ID,
  PCI_STATUS,
  PCI_STATUS_INTERRUPT,
  PCI_SUBSYSTEM_ID,
  PCI_SUBSYSTEM_VENDOR_ID,
  PCI_VENDOR_ID,
} from "./constants.ts";

/*
 * The configuration space of one PCI function with a type 0 header (PCI Local Bus
 * Specification 3.0, §6.1-§6.2), as an image of 256 bytes plus a mask of the bits the
 * driver may write. A write changes only writable bits, byte by byte, so any width and
 * alignment has a defined result; reads of bytes 0x100..0xfff (the PCIe extended space
 * ECAM exposes) return 0, and the capabilities pointer is 0, so drivers find no
 * capability of either kind.
 *
 * Writable: the command register bits I/O space, memory space, bus master, parity error
 * response, SERR# enable and interrupt disable; the cache line size; the interrupt line;
 * the address bits of each implemented BAR. Everything else is read-only (the status
 * register's error bits are never set, so their write-one-to-clear semantics need no
 * emulation). Bus mastering is recorded but not enforced: devices reach guest memory
 * whatever the bit says.
 *
 * BAR sizing (§6.2.5.1): a BAR's low address bits below its size are read-only zero, so
 * after the driver writes all ones it reads back ~(size - 1) with the type bits below:
 * memory BARs are 32-bit, non-prefetchable (bits 3..0 = 0000); I/O BARs have bit 0 = 1
 * and decode 16 bits of address (the upper 16 bits are hardwired to zero, as §6.2.5.1
 * allows for devices on systems with a 64 KiB I/O space), so an I/O BAR always lies in
 * the port space. I/O BARs are 4..256 bytes, memory BARs 16 bytes..2 GiB, powers of two.
 *
 * INTx: the device drives `intx` (level-triggered); the status register's interrupt bit
 * follows it, and the pin output (what the host bridge routes) is that level unless the
 * command register's interrupt-disable bit is set (§6.2.2, §6.2.3).
 */

/** Which address space a BAR decodes. */
export type PciBarKind = "io" | "mem32";

/**
 * An ioeventfd-style fast path inside a BAR: while the BAR is mapped, a write of exactly
 * `size` bytes at `offset` calls `handler(value)` instead of the BAR device's `write`
 * (the bus's write listener, moved by the host bridge whenever the BAR moves).
 */
export interface PciBarListener {
  offset: number;
  size: 1 | 2 | 4;
  handler: (value: number) => void;
}

/** One implemented BAR: its kind, size and the registers it exposes. */
export interface PciBarSpec {
  kind: PciBarKind;
  /** Bytes decoded; a power of two (I/O 4..256, memory 16..2^31). */
  size: number;
  /** The registers behind the BAR, addressed from offset 0 of the BAR. */
  device: BusDevice;
  /** Write fast paths inside the BAR (virtio's queue notify register). */
  listeners?: readonly PciBarListener[];
}

/** A BAR the driver has assigned and enabled: where it decodes right now. */
export interface PciBarRange {
  index: number;
  kind: PciBarKind;
  base: number;
  size: number;
  device: BusDevice;
}

export interface PciConfigOptions {
  vendorId: number;
  deviceId: number;
  /** 24 bits: base class << 16 | subclass << 8 | programming interface. */
  classCode: number;
  revision?: number;
  subsystemVendorId?: number;
  subsystemId?: number;
  /** 0 (none) or 1..4 for INTA#..INTD#. Default 0. */
  interruptPin?: number;
  /** Up to six BARs by index; an absent entry is an unimplemented BAR (reads 0). */
  bars?: readonly (PciBarSpec | undefined)[];
}

export interface PciConfigState {
  bytes: number[];
}

/** Writable command bits (see the header comment). */
const COMMAND_WRITABLE =
  PCI_COMMAND_IO |
  PCI_COMMAND_MEMORY |
  PCI_COMMAND_MASTER |
  PCI_COMMAND_PARITY |
  PCI_COMMAND_SERR |
  PCI_COMMAND_INTX_DISABLE;

/** The largest I/O BAR (§6.2.5.1: I/O BARs ask for at most 256 bytes). */
const MAX_IO_BAR = 256;
const MIN_IO_BAR = 4;
const MIN_MEM_BAR = 16;
const MAX_MEM_BAR = 0x8000_0000;

function checkId(what: string, v: number, bits: number): void {
  if (!Number.isInteger(v) || v < 0 || v >= 2 ** bits) {
    throw new RangeError(`PCI config: ${what} ${String(v)} is not a ${bits}-bit unsigned integer`);
  }
}

export class PciConfig {
  /** The BAR definitions, by index (length 6). */
  readonly bars: readonly (PciBarSpec | undefined)[];
  readonly interruptPin: number;
  /**
   * The device's interrupt input: drive it high while the device requests an interrupt.
   * The host bridge sees it through `connectIntx`, gated by the interrupt-disable bit.
   */
  readonly intx: IrqLine;
  private readonly image = new Uint8Array(PCI_CFG_SPACE_SIZE);
  private readonly initial: Uint8Array;
  private readonly wmask = new Uint8Array(PCI_CFG_SPACE_SIZE);
  private intxOut: IrqLine = NO_IRQ;
  private intxLevel = false;
  private intxDriven = false;
  private onDecodeChange: () => void = () => {};

  constructor(options: PciConfigOptions) {
    checkId("vendor ID", options.vendorId, 16);
    checkId("device ID", options.deviceId, 16);
    checkId("class code", options.classCode, 24);
    checkId("revision", options.revision ?? 0, 8);
    checkId("subsystem vendor ID", options.subsystemVendorId ?? 0, 16);
    checkId("subsystem ID", options.subsystemId ?? 0, 16);
    const pin = options.interruptPin ?? 0;
    if (!Number.isInteger(pin) || pin < 0 || pin > PCI_INTERRUPT_INTD) {
      throw new RangeError(`PCI config: interrupt pin ${String(pin)} must be 0 (none) or 1..4 (INTA..INTD)`);
    }
    const bars = options.bars ?? [];
    if (bars.length > PCI_NUM_BARS) {
      throw new RangeError(`PCI config: ${bars.length} BARs given, a type 0 header has ${PCI_NUM_BARS}`);
    }
    const all: (PciBarSpec | undefined)[] = [];
    for (let i = 0; i < PCI_NUM_BARS; i++) {
      const b = bars[i];
      if (b !== undefined) checkBar(i, b);
      all.push(b);
    }
    this.bars = all;
    this.interruptPin = pin;

    const dv = new DataView(this.image.buffer);
    dv.setUint16(PCI_VENDOR_ID, options.vendorId, true);
    dv.setUint16(PCI_DEVICE_ID, options.deviceId, true);
    this.image[PCI_REVISION_ID] = options.revision ?? 0;
    this.image[PCI_CLASS_PROG] = options.classCode & 0xff;
    dv.setUint16(PCI_CLASS_PROG + 1, options.classCode >>> 8, true);
    this.image[PCI_HEADER_TYPE] = PCI_HEADER_TYPE_NORMAL;
    dv.setUint16(PCI_SUBSYSTEM_VENDOR_ID, options.subsystemVendorId ?? 0, true);
    dv.setUint16(PCI_SUBSYSTEM_ID, options.subsystemId ?? 0, true);
    this.image[PCI_INTERRUPT_PIN] = pin;
    all.forEach((b, i) => {
      if (b === undefined) return;
      const at = PCI_BASE_ADDRESS_0 + 4 * i;
      if (b.kind === "io") {
        dv.setUint32(at, PCI_BASE_ADDRESS_SPACE_IO, true);
        // 16-bit I/O decode: the upper half stays zero.
        new DataView(this.wmask.buffer).setUint32(at, 0xffff & ~(b.size - 1), true);
      } else {
        new DataView(this.wmask.buffer).setUint32(at, ~(b.size - 1) >>> 0, true);
      }
    });
    const wm = new DataView(this.wmask.buffer);
    wm.setUint16(PCI_COMMAND, COMMAND_WRITABLE, true);
    this.wmask[PCI_CACHE_LINE_SIZE] = 0xff;
    this.wmask[PCI_INTERRUPT_LINE] = 0xff;
    this.initial = Uint8Array.from(this.image);

    this.intx = {
      set: (level: boolean) => {
        this.intxLevel = level;
        this.updateIntx();
      },
    };
  }

  /** Read `size` bytes (little-endian) at `offset` in [0, 4096); bytes past 0xff read 0. */
  read(offset: number, size: 1 | 2 | 4): number {
    let v = 0;
    for (let i = size - 1; i >= 0; i--) {
      const o = offset + i;
      v = v * 256 + (o >= 0 && o < PCI_CFG_SPACE_SIZE ? this.image[o]! : 0);
    }
    return v >>> 0;
  }

  /** Write the low `size` bytes of `value` at `offset`; only writable bits change. */
  write(offset: number, size: 1 | 2 | 4, value: number): void {
    let decode = false;
    const oldCommand = this.command;
    for (let i = 0; i < size; i++) {
      const o = offset + i;
      if (o < 0 || o >= PCI_CFG_SPACE_SIZE) continue;
      const m = this.wmask[o]!;
      if (m === 0) continue;
      const b = (value >>> (8 * i)) & 0xff;
      const next = (this.image[o]! & ~m) | (b & m);
      if (next === this.image[o]) continue;
      this.image[o] = next;
      if (o === PCI_COMMAND || (o >= PCI_BASE_ADDRESS_0 && o < PCI_BASE_ADDRESS_0 + 4 * PCI_NUM_BARS)) {
        decode = true;
      }
    }
    if ((oldCommand ^ this.command) & PCI_COMMAND_INTX_DISABLE) this.updateIntx();
    if (decode) this.onDecodeChange();
  }

  get vendorId(): number {
    return this.read(PCI_VENDOR_ID, 2);
  }

  get deviceId(): number {
    return this.read(PCI_DEVICE_ID, 2);
  }

  get classCode(): number {
    return this.read(PCI_CLASS_PROG, 4) & 0xff_ffff;
  }

  get command(): number {
    return this.image[PCI_COMMAND]! | (this.image[PCI_COMMAND + 1]! << 8);
  }

  /** The raw value of BAR `index` (0 for an unimplemented one). */
  barValue(index: number): number {
    return this.read(PCI_BASE_ADDRESS_0 + 4 * index, 4);
  }

  /**
   * Where BAR `index` decodes now, or undefined when it is unimplemented, its space's
   * decode bit in the command register is clear, or its address is 0 (unassigned; as in
   * QEMU, a BAR at address 0 is treated as not mapped).
   */
  barRange(index: number): PciBarRange | undefined {
    const b = this.bars[index];
    if (b === undefined) return undefined;
    const cmd = this.command;
    const enable = b.kind === "io" ? PCI_COMMAND_IO : PCI_COMMAND_MEMORY;
    if ((cmd & enable) === 0) return undefined;
    const base = (this.barValue(index) & ~(b.size - 1)) >>> 0;
    if (base === 0) return undefined;
    return { index, kind: b.kind, base, size: b.size, device: b.device };
  }

  /** Whether the function's INTx output is asserted (input high, interrupts not disabled). */
  get intxAsserted(): boolean {
    return this.intxDriven;
  }

  /** For the host bridge: where the INTx output goes (its routed, shared line). */
  connectIntx(line: IrqLine): void {
    this.intxOut = line;
    line.set(this.intxDriven);
  }

  /** For the host bridge: called after any write that may change what the BARs decode. */
  setDecodeListener(fn: () => void): void {
    this.onDecodeChange = fn;
  }

  /** Power-on state: command 0, BARs unassigned, interrupt line 0. The device's INTx input is kept. */
  reset(): void {
    this.image.set(this.initial);
    this.updateIntx();
    this.onDecodeChange();
  }

  toState(): PciConfigState {
    return { bytes: Array.from(this.image) };
  }

  /**
   * Restore the bytes. Read-only bytes must match this function's (a snapshot of another
   * device is refused); the status register's interrupt bit follows the current INTx input.
   */
  fromState(state: unknown): void {
    const d = `PCI config ${hex4(this.vendorId)}:${hex4(this.deviceId)}`;
    const s = stateObject(state, d);
    const bytes = stateIntArray(s, "bytes", d, 0xff, { exact: PCI_CFG_SPACE_SIZE });
    for (let i = 0; i < PCI_CFG_SPACE_SIZE; i++) {
      if (i === PCI_STATUS) continue;
      const ro = ~this.wmask[i]! & 0xff;
      if ((bytes[i]! & ro) !== (this.initial[i]! & ro)) {
        throw new DeviceStateError(
          `invalid ${d} state: read-only byte 0x${i.toString(16)} is 0x${bytes[i]!.toString(16)}, expected 0x${this.initial[i]!.toString(16)}`,
        );
      }
    }
    this.image.set(bytes);
    this.image[PCI_STATUS] = this.initial[PCI_STATUS]!;
    this.updateIntx();
    this.onDecodeChange();
  }

  private updateIntx(): void {
    const st = this.image[PCI_STATUS]!;
    this.image[PCI_STATUS] = this.intxLevel ? st | PCI_STATUS_INTERRUPT : st & ~PCI_STATUS_INTERRUPT;
    const out = this.intxLevel && (this.command & PCI_COMMAND_INTX_DISABLE) === 0;
    if (out !== this.intxDriven) {
      this.intxDriven = out;
      this.intxOut.set(out);
    }
  }
}

function checkBar(index: number, b: PciBarSpec): void {
  const where = `PCI config: BAR ${index}`;
  if (b.kind !== "io" && b.kind !== "mem32") {
    throw new RangeError(`${where}: kind must be "io" or "mem32", got ${String(b.kind)}`);
  }
  const [min, max] = b.kind === "io" ? [MIN_IO_BAR, MAX_IO_BAR] : [MIN_MEM_BAR, MAX_MEM_BAR];
  const n = b.size;
  if (!Number.isInteger(n) || n < min || n > max || (n & (n - 1)) !== 0) {
    throw new RangeError(
      `${where}: ${b.kind} BAR size ${String(n)} must be a power of two in [${min}, ${max}]`,
    );
  }
  if (typeof b.device !== "object" || b.device === null) {
    throw new TypeError(`${where}: needs a device (the registers behind the BAR)`);
  }
  for (const l of b.listeners ?? []) {
    if (
      !Number.isInteger(l.offset) ||
      l.offset < 0 ||
      ![1, 2, 4].includes(l.size) ||
      l.offset + l.size > n ||
      typeof l.handler !== "function"
    ) {
      throw new RangeError(`${where}: a write listener at offset ${String(l.offset)} does not fit the BAR`);
    }
  }
}

const hex4 = (n: number): string => n.toString(16).padStart(4, "0");
