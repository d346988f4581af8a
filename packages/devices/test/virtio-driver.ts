/**
 * A fake guest virtio driver for tests: it lays out split virtqueues in a GuestRam the way
 * a real driver does (descriptor table, avail ring, used ring), posts buffers, kicks, and
 * reads completions. The ring code (GuestAllocator, DriverQueue) is transport-neutral;
 * MmioDriver does the virtio-mmio register handshake. A virtio-pci driver can reuse the
 * ring half and add its own handshake.
 */
import { type GuestMemory, gpa } from "@visor/memory";
import {
  feature,
  VIRTIO_F_VERSION_1,
  VIRTIO_MMIO_CONFIG,
  VIRTIO_MMIO_DEVICE_FEATURES,
  VIRTIO_MMIO_DEVICE_FEATURES_SEL,
  VIRTIO_MMIO_DRIVER_FEATURES,
  VIRTIO_MMIO_DRIVER_FEATURES_SEL,
  VIRTIO_MMIO_INTERRUPT_ACK,
  VIRTIO_MMIO_INTERRUPT_STATUS,
  VIRTIO_MMIO_QUEUE_DESC_HIGH,
  VIRTIO_MMIO_QUEUE_DESC_LOW,
  VIRTIO_MMIO_QUEUE_DEVICE_HIGH,
  VIRTIO_MMIO_QUEUE_DEVICE_LOW,
  VIRTIO_MMIO_QUEUE_DRIVER_HIGH,
  VIRTIO_MMIO_QUEUE_DRIVER_LOW,
  VIRTIO_MMIO_QUEUE_NOTIFY,
  VIRTIO_MMIO_QUEUE_NUM,
  VIRTIO_MMIO_QUEUE_NUM_MAX,
  VIRTIO_MMIO_QUEUE_READY,
  VIRTIO_MMIO_QUEUE_SEL,
  VIRTIO_MMIO_STATUS,
  VIRTIO_STATUS_ACKNOWLEDGE,
  VIRTIO_STATUS_DRIVER,
  VIRTIO_STATUS_DRIVER_OK,
  VIRTIO_STATUS_FEATURES_OK,
  VIRTQ_AVAIL_F_NO_INTERRUPT,
  VIRTQ_DESC_F_INDIRECT,
  VIRTQ_DESC_F_NEXT,
  VIRTQ_DESC_F_WRITE,
} from "../src/index.ts";

/** Bump allocator over a range of guest-physical memory. */
export class GuestAllocator {
  private next: number;
  readonly end: number;
  constructor(start: number, end: number) {
    this.next = start;
    this.end = end;
  }
  alloc(size: number, align = 16): number {
    const a = Math.ceil(this.next / align) * align;
    if (a + size > this.end) throw new Error(`guest allocator out of memory (${size} bytes)`);
    this.next = a + size;
    return a;
  }
}

/** A buffer for a request: bytes the device reads, or a length the device may write. */
export type DriverBuffer = { out: Uint8Array } | { in: number };

/** A request in flight: the head and where each device-writable buffer lives. */
export interface Posted {
  head: number;
  inBuffers: { addr: number; len: number }[];
}

/** One split virtqueue as the driver sees it. */
export class DriverQueue {
  readonly index: number;
  readonly size: number;
  readonly desc: number;
  readonly avail: number;
  readonly used: number;
  private readonly ram: GuestMemory;
  private readonly alloc: GuestAllocator;
  private free: number[] = [];
  private availIdx = 0;
  private lastUsed = 0;
  private readonly posted = new Map<number, Posted & { descs: number[] }>();

  constructor(ram: GuestMemory, alloc: GuestAllocator, index: number, size: number) {
    this.ram = ram;
    this.alloc = alloc;
    this.index = index;
    this.size = size;
    this.desc = alloc.alloc(16 * size, 16);
    this.avail = alloc.alloc(6 + 2 * size, 2);
    this.used = alloc.alloc(6 + 8 * size, 4);
    ram.viewMut(gpa(this.desc), 16 * size).fill(0);
    ram.viewMut(gpa(this.avail), 6 + 2 * size).fill(0);
    ram.viewMut(gpa(this.used), 6 + 8 * size).fill(0);
    for (let i = 0; i < size; i++) this.free.push(i);
  }

  /** Write descriptor `i` of a table at `table`. */
  writeDesc(table: number, i: number, addr: number, len: number, flags: number, next: number): void {
    const d = table + 16 * i;
    this.ram.write32(gpa(d), addr % 0x1_0000_0000);
    this.ram.write32(gpa(d + 4), Math.floor(addr / 0x1_0000_0000));
    this.ram.write32(gpa(d + 8), len);
    this.ram.write16(gpa(d + 12), flags);
    this.ram.write16(gpa(d + 14), next);
  }

  /**
   * Post a request made of `buffers` (device-readable ones first). With `indirect`, the
   * chain goes in an indirect table referenced by one descriptor. Buffers come from
   * `alloc` (default: the queue's allocator). Does not kick.
   */
  post(buffers: DriverBuffer[], options: { indirect?: boolean; alloc?: GuestAllocator } = {}): Posted {
    const alloc = options.alloc ?? this.alloc;
    const placed = buffers.map((b) => {
      if ("out" in b) {
        const addr = alloc.alloc(Math.max(1, b.out.length), 8);
        this.ram.write(gpa(addr), b.out);
        return { addr, len: b.out.length, write: false };
      }
      const addr = alloc.alloc(Math.max(1, b.in), 8);
      this.ram.viewMut(gpa(addr), b.in).fill(0xee);
      return { addr, len: b.in, write: true };
    });
    const inBuffers = placed.filter((p) => p.write).map(({ addr, len }) => ({ addr, len }));
    let descs: number[];
    if (options.indirect) {
      const table = alloc.alloc(16 * placed.length, 16);
      placed.forEach((p, i) => {
        const last = i === placed.length - 1;
        this.writeDesc(
          table,
          i,
          p.addr,
          p.len,
          (p.write ? VIRTQ_DESC_F_WRITE : 0) | (last ? 0 : VIRTQ_DESC_F_NEXT),
          last ? 0 : i + 1,
        );
      });
      descs = this.take(1);
      this.writeDesc(this.desc, descs[0]!, table, 16 * placed.length, VIRTQ_DESC_F_INDIRECT, 0);
    } else {
      descs = this.take(placed.length);
      placed.forEach((p, i) => {
        const last = i === placed.length - 1;
        const flags = (p.write ? VIRTQ_DESC_F_WRITE : 0) | (last ? 0 : VIRTQ_DESC_F_NEXT);
        this.writeDesc(this.desc, descs[i]!, p.addr, p.len, flags, last ? 0 : descs[i + 1]!);
      });
    }
    const head = descs[0]!;
    this.publish(head);
    const posted = { head, inBuffers };
    this.posted.set(head, { ...posted, descs });
    return posted;
  }

  /** Put `head` in the avail ring and bump avail.idx (no kick). */
  publish(head: number): void {
    this.ram.write16(gpa(this.avail + 4 + 2 * (this.availIdx % this.size)), head);
    this.availIdx = (this.availIdx + 1) & 0xffff;
    this.ram.write16(gpa(this.avail + 2), this.availIdx);
  }

  /** Completions since the last call: head, bytes written, and the written data per buffer. */
  takeUsed(): { head: number; len: number; data: Uint8Array[] }[] {
    const out: { head: number; len: number; data: Uint8Array[] }[] = [];
    const usedIdx = this.ram.read16(gpa(this.used + 2));
    while (this.lastUsed !== usedIdx) {
      const e = this.used + 4 + 8 * (this.lastUsed % this.size);
      const head = this.ram.read32(gpa(e));
      const len = this.ram.read32(gpa(e + 4));
      const p = this.posted.get(head);
      const data = p ? p.inBuffers.map((b) => Uint8Array.from(this.ram.view(gpa(b.addr), b.len))) : [];
      if (p) {
        this.posted.delete(head);
        this.free.push(...p.descs);
      }
      out.push({ head, len, data });
      this.lastUsed = (this.lastUsed + 1) & 0xffff;
    }
    return out;
  }

  set noInterrupt(on: boolean) {
    this.ram.write16(gpa(this.avail), on ? VIRTQ_AVAIL_F_NO_INTERRUPT : 0);
  }

  /** used_event (EVENT_IDX): interrupt me when used.idx passes this. */
  set usedEvent(idx: number) {
    this.ram.write16(gpa(this.avail + 4 + 2 * this.size), idx);
  }

  /** avail_event written by the device (EVENT_IDX). */
  get availEvent(): number {
    return this.ram.read16(gpa(this.used + 4 + 8 * this.size));
  }

  private take(n: number): number[] {
    if (this.free.length < n)
      throw new Error(`queue ${this.index}: ${n} descriptors wanted, ${this.free.length} free`);
    return this.free.splice(0, n);
  }
}

/** The registers of a virtio-mmio device (a VirtioMmio, or anything on a bus). */
export interface MmioRegs {
  read(offset: number, size: 1 | 2 | 4): number;
  write(offset: number, size: 1 | 2 | 4, value: number): void;
}

/** Drives the virtio-mmio handshake (virtio 1.1 §3.1.1, §4.2.3). */
export class MmioDriver {
  readonly regs: MmioRegs;
  readonly ram: GuestMemory;
  readonly alloc: GuestAllocator;
  readonly queues: DriverQueue[] = [];
  deviceFeatures = 0n;
  features = 0n;

  constructor(regs: MmioRegs, ram: GuestMemory, alloc: GuestAllocator) {
    this.regs = regs;
    this.ram = ram;
    this.alloc = alloc;
  }

  get status(): number {
    return this.regs.read(VIRTIO_MMIO_STATUS, 4);
  }

  /**
   * Reset, acknowledge, negotiate: accept `wanted` ∩ offered (VERSION_1 always asked for).
   * Returns whether the device accepted (FEATURES_OK stuck).
   */
  negotiate(wanted: bigint = ~0n): boolean {
    const r = this.regs;
    r.write(VIRTIO_MMIO_STATUS, 4, 0);
    r.write(VIRTIO_MMIO_STATUS, 4, VIRTIO_STATUS_ACKNOWLEDGE);
    r.write(VIRTIO_MMIO_STATUS, 4, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
    let f = 0n;
    for (let sel = 0; sel < 2; sel++) {
      r.write(VIRTIO_MMIO_DEVICE_FEATURES_SEL, 4, sel);
      f |= BigInt(r.read(VIRTIO_MMIO_DEVICE_FEATURES, 4)) << BigInt(32 * sel);
    }
    this.deviceFeatures = f;
    this.features = f & (wanted | feature(VIRTIO_F_VERSION_1));
    for (let sel = 0; sel < 2; sel++) {
      r.write(VIRTIO_MMIO_DRIVER_FEATURES_SEL, 4, sel);
      r.write(VIRTIO_MMIO_DRIVER_FEATURES, 4, Number((this.features >> BigInt(32 * sel)) & 0xffff_ffffn));
    }
    r.write(
      VIRTIO_MMIO_STATUS,
      4,
      VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK,
    );
    return (this.status & VIRTIO_STATUS_FEATURES_OK) !== 0;
  }

  /** Lay out queue `index` in RAM (size default: the device maximum) and mark it ready. */
  setupQueue(index: number, size?: number): DriverQueue {
    const r = this.regs;
    r.write(VIRTIO_MMIO_QUEUE_SEL, 4, index);
    const max = r.read(VIRTIO_MMIO_QUEUE_NUM_MAX, 4);
    if (max === 0) throw new Error(`device has no queue ${index}`);
    const n = size ?? max;
    const q = new DriverQueue(this.ram, this.alloc, index, n);
    r.write(VIRTIO_MMIO_QUEUE_NUM, 4, n);
    const set = (lo: number, hi: number, a: number) => {
      r.write(lo, 4, a % 0x1_0000_0000);
      r.write(hi, 4, Math.floor(a / 0x1_0000_0000));
    };
    set(VIRTIO_MMIO_QUEUE_DESC_LOW, VIRTIO_MMIO_QUEUE_DESC_HIGH, q.desc);
    set(VIRTIO_MMIO_QUEUE_DRIVER_LOW, VIRTIO_MMIO_QUEUE_DRIVER_HIGH, q.avail);
    set(VIRTIO_MMIO_QUEUE_DEVICE_LOW, VIRTIO_MMIO_QUEUE_DEVICE_HIGH, q.used);
    r.write(VIRTIO_MMIO_QUEUE_READY, 4, 1);
    this.queues[index] = q;
    return q;
  }

  driverOk(): void {
    this.regs.write(VIRTIO_MMIO_STATUS, 4, this.status | VIRTIO_STATUS_DRIVER_OK);
  }

  /** negotiate + set up queues 0..n-1 + DRIVER_OK. */
  bringUp(queueCount: number, wanted: bigint = ~0n): DriverQueue[] {
    if (!this.negotiate(wanted)) throw new Error("device refused the features");
    for (let i = 0; i < queueCount; i++) this.setupQueue(i);
    this.driverOk();
    return this.queues;
  }

  kick(queue: number): void {
    this.regs.write(VIRTIO_MMIO_QUEUE_NOTIFY, 4, queue);
  }

  get interruptStatus(): number {
    return this.regs.read(VIRTIO_MMIO_INTERRUPT_STATUS, 4);
  }

  /** Acknowledge whatever interrupts are pending; returns them. */
  ack(): number {
    const s = this.interruptStatus;
    if (s !== 0) this.regs.write(VIRTIO_MMIO_INTERRUPT_ACK, 4, s);
    return s;
  }

  readConfig(offset: number, size: 1 | 2 | 4): number {
    return this.regs.read(VIRTIO_MMIO_CONFIG + offset, size);
  }
}
