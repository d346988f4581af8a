import type { BusDevice, NarrowAccessSize } from "../src/device.ts";
import { WIDTH_8 } from "../src/device.ts";

export type Call =
  | { op: "read"; offset: number; size: NarrowAccessSize }
  | { op: "write"; offset: number; size: NarrowAccessSize; value: number }
  | { op: "read64"; offset: number }
  | { op: "write64"; offset: number; value: bigint };

/**
 * A device backed by little-endian bytes that records every call the bus makes, and
 * throws if the bus ever breaks its contract (offset out of range, undeclared width,
 * untruncated value).
 */
export class RecordingDevice implements BusDevice {
  readonly name: string;
  readonly widths: number | undefined;
  readonly bytes: Uint8Array;
  readonly calls: Call[] = [];

  constructor(name: string, length: number, widths?: number) {
    this.name = name;
    this.widths = widths;
    this.bytes = new Uint8Array(length);
  }

  private check(offset: number, size: number): void {
    if (!Number.isInteger(offset) || offset < 0 || offset + size > this.bytes.length) {
      throw new Error(
        `${this.name}: bus passed offset ${offset} size ${size} outside length ${this.bytes.length}`,
      );
    }
    const widths = this.widths ?? 7;
    if ((widths & size) === 0) throw new Error(`${this.name}: bus passed undeclared width ${size}`);
  }

  read(offset: number, size: NarrowAccessSize): number {
    this.check(offset, size);
    this.calls.push({ op: "read", offset, size });
    let v = 0;
    for (let i = size - 1; i >= 0; i--) v = v * 256 + this.bytes[offset + i]!;
    return v;
  }

  write(offset: number, size: NarrowAccessSize, value: number): void {
    this.check(offset, size);
    if (!Number.isInteger(value) || value < 0 || value >= 2 ** (8 * size)) {
      throw new Error(`${this.name}: bus passed value ${value} not truncated to ${size} bytes`);
    }
    this.calls.push({ op: "write", offset, size, value });
    for (let i = 0; i < size; i++) this.bytes[offset + i] = Math.floor(value / 2 ** (8 * i)) & 0xff;
  }

  read64?(offset: number): bigint;
  write64?(offset: number, value: bigint): void;
}

/** A RecordingDevice that also implements the 8-byte methods. */
export class Recording64Device extends RecordingDevice {
  constructor(name: string, length: number, widths = WIDTH_8) {
    super(name, length, widths);
  }

  override read64(offset: number): bigint {
    this.check64(offset);
    this.calls.push({ op: "read64", offset });
    let v = 0n;
    for (let i = 7; i >= 0; i--) v = (v << 8n) | BigInt(this.bytes[offset + i]!);
    return v;
  }

  override write64(offset: number, value: bigint): void {
    this.check64(offset);
    if (value < 0n || value >= 1n << 64n) throw new Error(`${this.name}: 64-bit value ${value} out of range`);
    this.calls.push({ op: "write64", offset, value });
    for (let i = 0; i < 8; i++) this.bytes[offset + i] = Number((value >> BigInt(8 * i)) & 0xffn);
  }

  private check64(offset: number): void {
    if (!Number.isInteger(offset) || offset < 0 || offset + 8 > this.bytes.length) {
      throw new Error(`${this.name}: bus passed offset ${offset} size 8 outside length ${this.bytes.length}`);
    }
  }
}
