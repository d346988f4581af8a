/**
 * The shared `struct kvm_run` page of a vCPU (<linux/kvm.h>): KVM writes why the guest
 * exited and the exit's data; the VMM answers in place (the value of an IN or an MMIO
 * read) before the next KVM_RUN. Everything here was written by KVM on behalf of the
 * guest, so the accessors bound-check what they hand out: an I/O exit's data area must lie
 * inside the page.
 */
import { KVM_RUN_OFFSET } from "./constants.ts";

/** An I/O exit (`KVM_EXIT_IO`), decoded. */
export interface IoExit {
  /** 0 = IN (guest reads), 1 = OUT. */
  direction: number;
  /** Bytes per access: 1, 2 or 4. */
  size: number;
  port: number;
  /** Repetitions (string I/O: `rep insb/outsb`). */
  count: number;
  /** Where the `size * count` data bytes are in the page. */
  dataOffset: number;
}

/** An MMIO exit (`KVM_EXIT_MMIO`), decoded. */
export interface MmioExit {
  physAddr: bigint;
  /** 1 to 8. */
  len: number;
  isWrite: boolean;
}

const IO = KVM_RUN_OFFSET.exit;
const MMIO_DATA = KVM_RUN_OFFSET.exit + 8;

export class KvmRun {
  readonly bytes: Uint8Array;
  readonly dv: DataView;

  constructor(bytes: Uint8Array) {
    if (bytes.byteLength < 4096) throw new RangeError("kvm_run must be at least a page");
    this.bytes = bytes;
    this.dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  get exitReason(): number {
    return this.dv.getUint32(KVM_RUN_OFFSET.exitReason, true);
  }

  /** `immediate_exit`: set to make the next KVM_RUN return at once with EINTR. */
  set immediateExit(v: boolean) {
    this.bytes[KVM_RUN_OFFSET.immediateExit] = v ? 1 : 0;
  }

  get ifFlag(): boolean {
    return this.bytes[KVM_RUN_OFFSET.ifFlag] !== 0;
  }

  /**
   * `KVM_EXIT_INTERNAL_ERROR`'s `suberror` (1 = the instruction emulator failed) and up to
   * 16 data words, as KVM reported them (`ndata` is clamped to the array).
   */
  internalError(): { suberror: number; data: bigint[] } {
    const n = Math.min(this.dv.getUint32(IO + 4, true), 16);
    const data: bigint[] = [];
    for (let i = 0; i < n; i++) data.push(this.dv.getBigUint64(IO + 8 + 8 * i, true));
    return { suberror: this.dv.getUint32(IO, true), data };
  }

  /** The I/O exit, checked: an unexpected size or a data area outside the page is a RangeError. */
  io(): IoExit {
    const dv = this.dv;
    const e: IoExit = {
      direction: dv.getUint8(IO),
      size: dv.getUint8(IO + 1),
      port: dv.getUint16(IO + 2, true),
      count: dv.getUint32(IO + 4, true),
      dataOffset: Number(dv.getBigUint64(IO + 8, true)),
    };
    if (e.size !== 1 && e.size !== 2 && e.size !== 4) throw new RangeError(`I/O exit with size ${e.size}`);
    if (
      e.count < 1 ||
      e.dataOffset < KVM_RUN_OFFSET.exit ||
      e.dataOffset + e.size * e.count > this.bytes.byteLength
    ) {
      throw new RangeError(`I/O exit data (${e.count} x ${e.size} bytes at ${e.dataOffset}) outside kvm_run`);
    }
    return e;
  }

  /** The MMIO exit, checked: a length outside 1..8 is a RangeError. */
  mmio(): MmioExit {
    const len = this.dv.getUint32(IO + 16, true);
    if (len < 1 || len > 8) throw new RangeError(`MMIO exit with length ${len}`);
    return { physAddr: this.dv.getBigUint64(IO, true), len, isWrite: this.dv.getUint8(IO + 20) !== 0 };
  }

  /** `len` (1..4) data bytes of an MMIO exit from byte `at` of its 8, little-endian. */
  mmioData(len: number, at = 0): number {
    let v = 0;
    for (let i = Math.min(len, 4) - 1; i >= 0; i--) v = v * 256 + this.bytes[MMIO_DATA + ((at + i) & 7)]!;
    return v;
  }

  /** Answer (part of) an MMIO read: `len` (1..4) bytes of `value` at byte `at` of the 8. */
  setMmioData(len: number, value: number, at = 0): void {
    for (let i = 0; i < Math.min(len, 4); i++)
      this.bytes[MMIO_DATA + ((at + i) & 7)] = (value >>> (8 * i)) & 0xff;
  }

  /** Element `i` of an I/O exit's data (as `io()` returned it). */
  ioData(e: IoExit, i: number): number {
    const o = e.dataOffset + i * e.size;
    return e.size === 1
      ? this.dv.getUint8(o)
      : e.size === 2
        ? this.dv.getUint16(o, true)
        : this.dv.getUint32(o, true);
  }

  setIoData(e: IoExit, i: number, value: number): void {
    const o = e.dataOffset + i * e.size;
    if (e.size === 1) this.dv.setUint8(o, value & 0xff);
    else if (e.size === 2) this.dv.setUint16(o, value & 0xffff, true);
    else this.dv.setUint32(o, value >>> 0, true);
  }
}
