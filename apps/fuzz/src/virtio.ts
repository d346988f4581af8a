/**
 * The shared half of the virtio fuzz surfaces (surfaces/virtio-*.ts): one device behind
 * virtio-mmio or legacy virtio-pci, brought up by the test driver of packages/devices,
 * then a hostile driver's operations: descriptors with any address (inside RAM, past it,
 * beyond 2^32), any length up to 2^32 - 1, any flags and next index (loops, indirect
 * tables, nested indirection), raw avail ring entries and indices, well-formed chains of
 * random sizes (also through indirect tables), notifications of any queue, random
 * transport register and config-space accesses, and what a peer sends the device.
 *
 * Invariants checked for every input: no host exception escapes a register access or a
 * peer callback; the device touches no byte outside guest RAM (every attempt is
 * recorded, even one the RAM would refuse); what the surface's backend was asked to
 * allocate or copy for one request stays under the device's advertised limit (checked by
 * each surface); and after a device reset the device serves a valid request.
 */
import {
  VIRTQ_DESC_F_INDIRECT,
  VIRTQ_DESC_F_NEXT,
  VIRTQ_DESC_F_WRITE,
  type VirtioDevice,
  VirtioMmio,
  VirtioPciLegacy,
} from "@visor/devices";
import { type Gpa, GuestMemory, GuestRam } from "@visor/memory";
import fc from "fast-check";
import { LegacyPciDriver } from "../../../packages/devices/test/pci-legacy-driver.ts";
import {
  type DriverBuffer,
  type DriverQueue,
  GuestAllocator,
  MmioDriver,
} from "../../../packages/devices/test/virtio-driver.ts";
import { invariant } from "./surface.ts";

export const RAM_BASE = 0x8000_0000;
export const RAM_SIZE = 1 << 20;
/** Rings of the fuzzed driver; then indirect tables; then buffers; then the recovery driver's rings. */
const RINGS = RAM_BASE;
const INDIRECT = RAM_BASE + 0x2_0000;
const BUFFERS = RAM_BASE + 0x4_0000;
const RECOVERY = RAM_BASE + 0xc_0000;
/** virtio-mmio's register window; the legacy virtio-pci I/O BAR is smaller (its config follows 0x14 or 0x18). */
const MMIO_WINDOW = 0x200;
const PCI_WINDOW = 0x40;
const MMIO_STATUS = 0x070;
const PCI_STATUS = 0x12;

/** GuestRam that records every access outside itself (and still refuses it). */
export class GuardedRam extends GuestMemory {
  outside: string[] = [];
  constructor(base: number, size: number) {
    super(new GuestRam(base, size));
  }
  private note(pa: number, len: number, what: string): void {
    if (!this.contains(pa as Gpa, len)) this.outside.push(`${what} 0x${pa.toString(16)}+${len}`);
  }
  override view(pa: number, len: number): Uint8Array {
    this.note(pa, len, "view");
    return super.view(pa as Gpa, len);
  }
  override viewMut(pa: number, len: number): Uint8Array {
    this.note(pa, len, "viewMut");
    return super.viewMut(pa as Gpa, len);
  }
  override read16(pa: number): number {
    this.note(pa, 2, "read16");
    return super.read16(pa as Gpa);
  }
  override read32(pa: number): number {
    this.note(pa, 4, "read32");
    return super.read32(pa as Gpa);
  }
  override write16(pa: number, v: number): void {
    this.note(pa, 2, "write16");
    super.write16(pa as Gpa, v);
  }
  override write32(pa: number, v: number): void {
    this.note(pa, 4, "write32");
    super.write32(pa as Gpa, v);
  }
}

export type Transport = "mmio" | "pci";

export type Op =
  | {
      t: "desc";
      indirect: boolean;
      index: number;
      lo: number;
      hi: number;
      len: number;
      flags: number;
      next: number;
    }
  | { t: "publish"; head: number }
  | { t: "idx"; value: number }
  | { t: "post"; parts: { len: number; write: boolean }[]; indirect: boolean; fill: number }
  | { t: "notify"; queue: number }
  | { t: "reg"; offset: number; size: 1 | 2 | 4; write: boolean; value: number }
  | { t: "config"; offset: number; size: 1 | 2 | 4; write: boolean; value: number }
  | { t: "data"; offset: number; bytes: Uint8Array }
  | { t: "peer"; len: number }
  | { t: "queue"; queue: number };

const u32 = fc.oneof(
  fc.nat(4096),
  fc.constantFrom(0, 1, 10, 12, 16, 17, 512, 4095, 65536, 65554, 65567, 0x10_0000, 0x7fff_ffff, 0xffff_ffff),
  fc.nat(0xffff_ffff),
);
const addrLo = fc.oneof(
  fc.nat(RAM_SIZE - 1).map((o) => RAM_BASE + o),
  fc.constantFrom(0, RAM_BASE - 1, RAM_BASE + RAM_SIZE - 1, RAM_BASE + RAM_SIZE, 0xffff_ffff),
  fc.nat(0xffff_ffff),
);
const addrHi = fc.oneof(
  { weight: 6, arbitrary: fc.constant(0) },
  fc.constantFrom(1, 0xffff_ffff),
  fc.nat(0xffff_ffff),
);
const flags = fc.oneof(
  { weight: 6, arbitrary: fc.nat(7) },
  fc.constantFrom(VIRTQ_DESC_F_NEXT, VIRTQ_DESC_F_WRITE, VIRTQ_DESC_F_INDIRECT),
  fc.nat(0xffff),
);
const width = fc.constantFrom(1 as const, 2 as const, 4 as const);

/** A hostile driver's operations (sizes are the queue size of the device under test). */
export function opsArbitrary(queues: number, maxQueueSize: number): fc.Arbitrary<Op[]> {
  const op: fc.Arbitrary<Op> = fc.oneof(
    {
      weight: 5,
      arbitrary: fc.record({
        t: fc.constant("desc" as const),
        indirect: fc.boolean(),
        index: fc.nat(maxQueueSize + 2),
        lo: addrLo,
        hi: addrHi,
        len: u32,
        flags,
        next: fc.oneof(fc.nat(8), fc.nat(maxQueueSize + 2)),
      }),
    },
    {
      weight: 3,
      arbitrary: fc.record({ t: fc.constant("publish" as const), head: fc.nat(maxQueueSize + 2) }),
    },
    { weight: 1, arbitrary: fc.record({ t: fc.constant("idx" as const), value: fc.nat(0xffff) }) },
    {
      weight: 5,
      arbitrary: fc.record({
        t: fc.constant("post" as const),
        parts: fc.array(
          fc.record({
            len: fc.oneof(
              fc.nat(64),
              fc.constantFrom(1, 10, 12, 16, 512, 4096, 65554, 65567, 70000),
              fc.nat(0x1_8000),
            ),
            write: fc.boolean(),
          }),
          { minLength: 1, maxLength: 6 },
        ),
        indirect: fc.boolean(),
        fill: fc.nat(255),
      }),
    },
    { weight: 5, arbitrary: fc.record({ t: fc.constant("notify" as const), queue: fc.nat(queues) }) },
    { weight: 1, arbitrary: fc.record({ t: fc.constant("queue" as const), queue: fc.nat(queues - 1) }) },
    {
      weight: 2,
      arbitrary: fc.record({
        t: fc.constant("reg" as const),
        offset: fc.nat(MMIO_WINDOW - 1),
        size: width,
        write: fc.boolean(),
        value: u32,
      }),
    },
    {
      weight: 2,
      arbitrary: fc.record({
        t: fc.constant("config" as const),
        offset: fc.nat(72),
        size: width,
        write: fc.boolean(),
        value: u32,
      }),
    },
    {
      weight: 3,
      arbitrary: fc.record({
        t: fc.constant("data" as const),
        offset: fc.nat(0x8_0000 - 32),
        bytes: fc.uint8Array({ minLength: 1, maxLength: 24 }),
      }),
    },
    {
      weight: 2,
      arbitrary: fc.record({ t: fc.constant("peer" as const), len: fc.oneof(fc.nat(2000), fc.nat(70000)) }),
    },
  );
  return fc.array(op, { minLength: 1, maxLength: 40 });
}

/** One device behind one transport, brought up by a well-behaved driver first. */
export class Rig {
  readonly ram = new GuardedRam(RAM_BASE, RAM_SIZE);
  readonly transport: VirtioMmio | VirtioPciLegacy;
  readonly kind: Transport;
  readonly errors: string[] = [];
  queues: DriverQueue[];
  /** Which of `queues` the raw operations work on. */
  current = 0;
  private readonly bufferAlloc = new GuestAllocator(BUFFERS, RECOVERY);
  private kickFn: (q: number) => void;

  constructor(device: VirtioDevice, kind: Transport) {
    this.kind = kind;
    const onError = (m: string) => {
      this.errors.push(m);
    };
    const alloc = new GuestAllocator(RINGS, INDIRECT);
    if (kind === "mmio") {
      const t = new VirtioMmio({ device, ram: this.ram, onError });
      const drv = new MmioDriver(t, this.ram, alloc);
      this.transport = t;
      this.queues = drv.bringUp(device.queueMaxSizes.length);
      this.kickFn = (q) => drv.kick(q);
    } else {
      const t = new VirtioPciLegacy({ device, ram: this.ram, onError });
      const drv = new LegacyPciDriver(t, this.ram, alloc);
      this.transport = t;
      this.queues = drv.bringUp(device.queueMaxSizes.length);
      this.kickFn = (q) => drv.kick(q);
    }
  }

  /** Run the hostile operations; `peer` is what a network peer or the host console does. */
  apply(ops: Op[], peer: (len: number) => void): void {
    for (const op of ops) this.step(op, peer);
  }

  private step(op: Op, peer: (len: number) => void): void {
    const q = this.queues[this.current]!;
    const ram = this.ram;
    switch (op.t) {
      case "desc": {
        const table = op.indirect ? INDIRECT : q.desc;
        const entries = op.indirect ? (BUFFERS - INDIRECT) / 16 : q.size;
        const i = op.index % entries;
        ram.write32(table + 16 * i, op.lo);
        ram.write32(table + 16 * i + 4, op.hi);
        ram.write32(table + 16 * i + 8, op.len);
        ram.write16(table + 16 * i + 12, op.flags);
        ram.write16(table + 16 * i + 14, op.next);
        return;
      }
      case "publish":
        q.publish(op.head);
        return;
      case "idx":
        ram.write16(q.avail + 2, op.value);
        return;
      case "post":
        this.post(q, op);
        return;
      case "notify":
        this.kickFn(op.queue);
        return;
      case "queue":
        this.current = op.queue % this.queues.length;
        return;
      case "reg": {
        const offset = this.kind === "mmio" ? op.offset : op.offset % PCI_WINDOW;
        if (op.write) this.transport.write(offset, op.size, op.value & sizeMask(op.size));
        else this.transport.read(offset, op.size);
        return;
      }
      case "config": {
        const base = this.kind === "mmio" ? 0x100 : 0x14;
        if (op.write) this.transport.write(base + op.offset, op.size, op.value & sizeMask(op.size));
        else this.transport.read(base + op.offset, op.size);
        return;
      }
      case "data":
        ram.write((BUFFERS + op.offset) as Gpa, op.bytes);
        return;
      case "peer":
        peer(op.len);
        return;
    }
  }

  /** A well-formed chain of random sizes (skipped when the driver's buffers run out). */
  private post(q: DriverQueue, op: Extract<Op, { t: "post" }>): void {
    const total = op.parts.reduce((n, p) => n + p.len, 0);
    if (total > RECOVERY - BUFFERS - 0x1000 || (op.indirect ? 1 : op.parts.length) > q.size) return;
    // Device-readable buffers first, as a driver must; the fill byte makes random headers.
    const bufs: DriverBuffer[] = [...op.parts]
      .sort((a, b) => Number(a.write) - Number(b.write))
      .map((p) => (p.write ? { in: p.len } : { out: new Uint8Array(p.len).fill(op.fill) }));
    try {
      q.post(bufs, { indirect: op.indirect, alloc: this.bufferAlloc });
    } catch (e) {
      // The test driver ran out of descriptors or buffer space: the guest would wait.
      if (!(e instanceof Error && /out of memory|descriptors wanted/.test(e.message))) throw e;
    }
  }

  /** The shared invariants, after the hostile operations. */
  checkRam(): void {
    invariant(
      this.ram.outside.length === 0,
      `device touched memory outside RAM: ${this.ram.outside.slice(0, 3).join(", ")}`,
    );
  }

  /**
   * Reset the device as a driver does (status 0), bring it up again on fresh rings, and
   * return the new queues and a kick function: the device must work again.
   */
  recover(): { queues: DriverQueue[]; kick: (q: number) => void } {
    const alloc = new GuestAllocator(RECOVERY, RAM_BASE + RAM_SIZE);
    const nq = this.transport.device.queueMaxSizes.length;
    if (this.transport instanceof VirtioMmio) {
      this.transport.write(MMIO_STATUS, 4, 0);
      const drv = new MmioDriver(this.transport, this.ram, alloc);
      return { queues: drv.bringUp(nq), kick: (q) => drv.kick(q) };
    }
    this.transport.write(PCI_STATUS, 1, 0);
    const drv = new LegacyPciDriver(this.transport, this.ram, alloc);
    return { queues: drv.bringUp(nq), kick: (q) => drv.kick(q) };
  }
}

function sizeMask(size: 1 | 2 | 4): number {
  return size === 4 ? 0xffff_ffff : (1 << (8 * size)) - 1;
}

export const transportArbitrary: fc.Arbitrary<Transport> = fc.constantFrom("mmio", "pci");
