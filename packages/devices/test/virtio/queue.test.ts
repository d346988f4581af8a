import { type Gpa, GuestMemory, GuestRam, gpa } from "@visor/memory";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { IrqLevel } from "../../src/irq.ts";
import { VirtioBlk } from "../../src/virtio/blk.ts";
import { MemoryBlockBackend } from "../../src/virtio/block-backend.ts";
import {
  feature,
  VIRTIO_F_EVENT_IDX,
  VIRTIO_MMIO_QUEUE_DESC_LOW,
  VIRTIO_MMIO_QUEUE_DEVICE_LOW,
  VIRTIO_MMIO_QUEUE_DRIVER_LOW,
  VIRTIO_MMIO_QUEUE_NUM,
  VIRTIO_MMIO_QUEUE_READY,
  VIRTIO_MMIO_QUEUE_SEL,
  VIRTIO_STATUS_DEVICE_NEEDS_RESET,
  VIRTQ_DESC_F_INDIRECT,
  VIRTQ_DESC_F_NEXT,
  VIRTQ_DESC_F_WRITE,
} from "../../src/virtio/constants.ts";
import type { VirtioDevice } from "../../src/virtio/device.ts";
import { VirtioMmio } from "../../src/virtio/mmio.ts";
import { VirtioRng } from "../../src/virtio/rng.ts";
import { type DriverQueue, GuestAllocator, MmioDriver } from "../virtio-driver.ts";

const BASE = 0x8000_0000;
const RAM_SIZE = 0x10000;
// Layout for the random-ring tests: rings in [0, 0x4000), indirect tables in
// [0x4000, 0x8000), buffers in [0x8000, 0x10000).
const DESC = BASE;
const AVAIL = BASE + 0x1000;
const USED = BASE + 0x2000;
const INDIRECT = BASE + 0x4000;
const DATA = BASE + 0x8000;

/** Guest memory that records every access a device attempts, in range or not. */
class SpyRam extends GuestMemory {
  readonly host: GuestRam;
  constructor(base: number, size: number) {
    const host = new GuestRam(base, size);
    super(host);
    this.host = host;
  }
  get dv(): DataView {
    return this.host.dv;
  }
  get u8(): Uint8Array {
    return this.host.u8;
  }
  outside: string[] = [];
  writes: [number, number][] = [];
  accesses = 0;
  private note(pa: number, len: number, write: boolean): void {
    this.accesses++;
    if (!this.contains(pa as Gpa, len))
      this.outside.push(`${write ? "write" : "read"} 0x${pa.toString(16)}+${len}`);
    if (write) this.writes.push([pa, len]);
  }
  override view(pa: Gpa, len: number): Uint8Array {
    this.note(pa, len, false);
    return super.view(pa, len);
  }
  override viewMut(pa: Gpa, len: number): Uint8Array {
    this.note(pa, len, true);
    return super.viewMut(pa, len);
  }
  override read8(pa: Gpa): number {
    this.note(pa, 1, false);
    return super.read8(pa);
  }
  override read16(pa: Gpa): number {
    this.note(pa, 2, false);
    return super.read16(pa);
  }
  override read32(pa: Gpa): number {
    this.note(pa, 4, false);
    return super.read32(pa);
  }
  override read64(pa: Gpa): bigint {
    this.note(pa, 8, false);
    return super.read64(pa);
  }
  override write8(pa: Gpa, v: number): void {
    this.note(pa, 1, true);
    super.write8(pa, v);
  }
  override write16(pa: Gpa, v: number): void {
    this.note(pa, 2, true);
    super.write16(pa, v);
  }
  override write32(pa: Gpa, v: number): void {
    this.note(pa, 4, true);
    super.write32(pa, v);
  }
  override write64(pa: Gpa, v: bigint): void {
    this.note(pa, 8, true);
    super.write64(pa, v);
  }
}

function rawDesc(
  ram: SpyRam,
  table: number,
  i: number,
  addr: bigint,
  len: number,
  flags: number,
  next: number,
) {
  const d = table + 16 * i;
  ram.dv.setBigUint64(d - ram.base, addr, true);
  ram.dv.setUint32(d - ram.base + 8, len, true);
  ram.dv.setUint16(d - ram.base + 12, flags, true);
  ram.dv.setUint16(d - ram.base + 14, next, true);
}

/** A transport over SpyRam with queue 0 laid out at DESC/AVAIL/USED, DRIVER_OK not yet set. */
function spySetup(device: VirtioDevice, size: number, wanted?: bigint) {
  const ram = new SpyRam(BASE, RAM_SIZE);
  const irq = new IrqLevel();
  const mmio = new VirtioMmio({ device, ram, irq });
  const drv = new MmioDriver(mmio, ram, new GuestAllocator(DATA, BASE + RAM_SIZE));
  expect(drv.negotiate(wanted)).toBe(true);
  mmio.write(VIRTIO_MMIO_QUEUE_SEL, 4, 0);
  mmio.write(VIRTIO_MMIO_QUEUE_NUM, 4, size);
  mmio.write(VIRTIO_MMIO_QUEUE_DESC_LOW, 4, DESC);
  mmio.write(VIRTIO_MMIO_QUEUE_DRIVER_LOW, 4, AVAIL);
  mmio.write(VIRTIO_MMIO_QUEUE_DEVICE_LOW, 4, USED);
  mmio.write(VIRTIO_MMIO_QUEUE_READY, 4, 1);
  return { ram, irq, mmio, drv };
}

const u64Anywhere = fc.oneof(
  fc.integer({ min: DATA, max: BASE + RAM_SIZE - 1 }).map(BigInt), // inside the buffer area
  fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }), // anywhere at all
  fc.integer({ min: BASE + RAM_SIZE - 64, max: BASE + RAM_SIZE + 64 }).map(BigInt), // across the end
  fc.integer({ min: BASE - 64, max: BASE + 8 }).map(BigInt), // across the start
);
const lenAny = fc.oneof(fc.integer({ min: 0, max: 300 }), fc.integer({ min: 0, max: 0xffff_ffff }));
const wildDesc = (tableSize: number, indirectTables: number) =>
  fc.record({
    addr: fc.oneof(
      u64Anywhere,
      fc.integer({ min: 0, max: Math.max(0, indirectTables - 1) }).map((t) => BigInt(INDIRECT + 0x400 * t)),
    ),
    len: fc.oneof(
      lenAny,
      fc.integer({ min: 0, max: 64 }).map((n) => 16 * n),
    ),
    flags: fc.integer({ min: 0, max: 7 }),
    next: fc.integer({ min: 0, max: tableSize + 2 }),
  });
/** Mostly plausible descriptors (so many chains are valid), sometimes wild ones. */
const descArb = (tableSize: number, indirectTables: number) =>
  fc.oneof(
    {
      weight: 3,
      arbitrary: fc.record({
        addr: fc.integer({ min: DATA, max: BASE + RAM_SIZE - 0x200 }).map(BigInt),
        len: fc.integer({ min: 0, max: 0x200 }),
        flags: fc.constantFrom(
          0,
          VIRTQ_DESC_F_WRITE,
          VIRTQ_DESC_F_WRITE,
          VIRTQ_DESC_F_NEXT,
          VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE,
        ),
        next: fc.integer({ min: 0, max: tableSize - 1 }),
      }),
    },
    { weight: 1, arbitrary: wildDesc(tableSize, indirectTables) },
  );

const scenario = fc.constantFrom(1, 2, 4, 8, 16, 32).chain((size) =>
  fc.record({
    size: fc.constant(size),
    table: fc.array(descArb(size, 4), { minLength: size, maxLength: size }),
    indirect: fc.array(fc.array(descArb(64, 0), { maxLength: 64 }), { maxLength: 4 }),
    ring: fc.array(fc.integer({ min: 0, max: size + 2 }), { minLength: size, maxLength: size }),
    availIdx: fc.oneof(fc.integer({ min: 0, max: size }), fc.integer({ min: 0, max: 0xffff })),
    device: fc.constantFrom("rng", "blk"),
    eventIdx: fc.boolean(),
  }),
);

describe("virtqueue walking guest-controlled rings", () => {
  it("never touches memory outside RAM, writes only where the guest allowed, and never hangs or throws", () => {
    const seen = { completed: 0, reset: 0, runs: 0 };
    fc.assert(
      fc.property(scenario, (s) => {
        const device =
          s.device === "rng"
            ? new VirtioRng({ entropy: (b) => b.fill(0x5a) })
            : new VirtioBlk({ backend: new MemoryBlockBackend(64 * 512) });
        const wanted = s.eventIdx ? ~0n : ~feature(VIRTIO_F_EVENT_IDX);
        const { ram, irq, mmio, drv } = spySetup(device, s.size, wanted);
        s.table.forEach((d, i) => {
          rawDesc(ram, DESC, i, d.addr, d.len, d.flags, d.next);
        });
        s.indirect.forEach((t, ti) => {
          t.forEach((d, i) => {
            rawDesc(ram, INDIRECT + 0x400 * ti, i, d.addr, d.len, d.flags, d.next);
          });
        });
        s.ring.forEach((h, i) => {
          ram.dv.setUint16(AVAIL - BASE + 4 + 2 * i, h, true);
        });
        ram.dv.setUint16(AVAIL - BASE + 2, s.availIdx, true);
        const before = Uint8Array.from(ram.u8);
        ram.outside = [];
        ram.writes = [];
        expect(() => {
          drv.driverOk();
          drv.kick(0);
        }).not.toThrow();
        expect(ram.outside).toEqual([]);
        const usedEnd = USED + 6 + 8 * s.size;
        // The guest allowed writes to the used ring and to its device-writable buffers
        // (which the generator mostly puts in the DATA area, sometimes over an indirect table).
        const writable = [...s.table, ...s.indirect.flat()]
          .filter((d) => d.flags & VIRTQ_DESC_F_WRITE)
          .map((d) => [Number(d.addr), Number(d.addr) + d.len] as const);
        for (let off = 0; off < RAM_SIZE; off++) {
          if (ram.u8[off] === before[off]) continue;
          const pa = BASE + off;
          const allowed =
            (pa >= USED && pa < usedEnd) || pa >= DATA || writable.some(([a, b]) => pa >= a && pa < b);
          if (!allowed)
            throw new Error(`device wrote 0x${pa.toString(16)} outside the used ring and buffers`);
        }
        const needsReset = (drv.status & VIRTIO_STATUS_DEVICE_NEEDS_RESET) !== 0;
        if (needsReset) expect(drv.interruptStatus & 2).toBe(2);
        expect(irq.level).toBe(drv.interruptStatus !== 0);
        expect(mmio.queues[0]!.usedIdx).toBeLessThanOrEqual(s.size);
        seen.runs++;
        if (mmio.queues[0]!.usedIdx > 0) seen.completed++;
        if (needsReset) seen.reset++;
      }),
      { numRuns: 300 },
    );
    // The generator must reach both outcomes, or the property says little.
    expect(seen.completed).toBeGreaterThan(0);
    expect(seen.reset).toBeGreaterThan(0);
  });
});

type Corruption = (q: DriverQueue, ram: GuestMemory, size: number) => void;

/** A valid two-buffer request (readable 16 bytes, writable 8) at descriptors 0 -> 1. */
function validChain(q: DriverQueue, ram: GuestMemory, headAt = 0): void {
  q.writeDesc(q.desc, headAt, DATA, 16, VIRTQ_DESC_F_NEXT, headAt + 1);
  q.writeDesc(q.desc, headAt + 1, DATA + 0x100, 8, VIRTQ_DESC_F_WRITE, 0);
  void ram;
}

const corruptions: Record<string, Corruption> = {
  "a loop (last descriptor points back to the head)": (q) => {
    q.writeDesc(q.desc, 0, DATA, 16, VIRTQ_DESC_F_NEXT, 1);
    q.writeDesc(q.desc, 1, DATA + 0x100, 8, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 0);
    q.publish(0);
  },
  "a self-loop": (q) => {
    q.writeDesc(q.desc, 0, DATA, 16, VIRTQ_DESC_F_NEXT, 0);
    q.publish(0);
  },
  "next outside the table": (q, _r, size) => {
    q.writeDesc(q.desc, 0, DATA, 16, VIRTQ_DESC_F_NEXT, size);
    q.publish(0);
  },
  "head outside the table": (q, _r, size) => {
    q.publish(size + 3);
  },
  "a buffer past the end of RAM": (q) => {
    q.writeDesc(q.desc, 0, BASE + RAM_SIZE - 8, 16, 0, 0);
    q.publish(0);
  },
  "a buffer below RAM": (q) => {
    q.writeDesc(q.desc, 0, 0x1000, 16, 0, 0);
    q.publish(0);
  },
  "a buffer at a 64-bit address": (q) => {
    q.writeDesc(q.desc, 0, 2 ** 60, 16, 0, 0);
    q.publish(0);
  },
  "a buffer whose length wraps": (q) => {
    q.writeDesc(q.desc, 0, BASE + 0x9000, 0xffff_ffff, 0, 0);
    q.publish(0);
  },
  "an indirect table inside an indirect table": (q, ram) => {
    const t = INDIRECT;
    q.writeDesc(t, 0, INDIRECT + 0x400, 16, VIRTQ_DESC_F_INDIRECT, 0);
    q.writeDesc(q.desc, 0, t, 16, VIRTQ_DESC_F_INDIRECT, 0);
    void ram;
    q.publish(0);
  },
  "INDIRECT together with NEXT": (q) => {
    q.writeDesc(INDIRECT, 0, DATA, 16, 0, 0);
    q.writeDesc(q.desc, 0, INDIRECT, 16, VIRTQ_DESC_F_INDIRECT | VIRTQ_DESC_F_NEXT, 1);
    q.publish(0);
  },
  "an indirect table of 20 bytes": (q) => {
    q.writeDesc(q.desc, 0, INDIRECT, 20, VIRTQ_DESC_F_INDIRECT, 0);
    q.publish(0);
  },
  "an empty indirect table": (q) => {
    q.writeDesc(q.desc, 0, INDIRECT, 0, VIRTQ_DESC_F_INDIRECT, 0);
    q.publish(0);
  },
  "an indirect table outside RAM": (q) => {
    q.writeDesc(q.desc, 0, BASE + RAM_SIZE - 16, 32, VIRTQ_DESC_F_INDIRECT, 0);
    q.publish(0);
  },
  "a loop inside an indirect table": (q) => {
    q.writeDesc(INDIRECT, 0, DATA, 16, VIRTQ_DESC_F_NEXT, 1);
    q.writeDesc(INDIRECT, 1, DATA, 16, VIRTQ_DESC_F_NEXT, 0);
    q.writeDesc(q.desc, 0, INDIRECT, 32, VIRTQ_DESC_F_INDIRECT, 0);
    q.publish(0);
  },
  "a readable buffer after a writable one": (q) => {
    q.writeDesc(q.desc, 0, DATA, 16, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 1);
    q.writeDesc(q.desc, 1, DATA + 0x100, 8, 0, 0);
    q.publish(0);
  },
  "avail.idx jumping more than the queue size": (q, ram, size) => {
    validChain(q, ram);
    ram.write16(gpa(q.avail + 2), (ram.read16(gpa(q.avail + 2)) + size + 1) & 0xffff);
  },
};

describe("malformed descriptor chains", () => {
  for (const [name, corrupt] of Object.entries(corruptions)) {
    it(`end in NEEDS_RESET with a config interrupt: ${name}`, () => {
      fc.assert(
        fc.property(fc.constantFrom(4, 8, 16), fc.integer({ min: 0, max: 3 }), (size, good) => {
          const device = new VirtioRng({ entropy: (b) => b.fill(1) });
          const ram = new SpyRam(BASE, RAM_SIZE);
          const irq = new IrqLevel();
          const errors: string[] = [];
          const mmio = new VirtioMmio({ device, ram, irq, onError: (m) => errors.push(m) });
          const drv = new MmioDriver(mmio, ram, new GuestAllocator(BASE + 0x100, DATA));
          drv.negotiate();
          const q = drv.setupQueue(0, size);
          drv.driverOk();
          // Some good requests first: they complete normally.
          for (let i = 0; i < good; i++) {
            q.writeDesc(q.desc, 2, DATA + 0x200, 4, VIRTQ_DESC_F_WRITE, 0);
            q.publish(2);
          }
          drv.kick(0);
          expect(q.takeUsed()).toHaveLength(good);
          drv.ack();
          corrupt(q, ram, size);
          ram.outside = [];
          expect(() => drv.kick(0)).not.toThrow();
          expect(ram.outside).toEqual([]);
          expect(drv.status & VIRTIO_STATUS_DEVICE_NEEDS_RESET).not.toBe(0);
          expect(drv.interruptStatus & 2).toBe(2);
          expect(irq.level).toBe(true);
          expect(errors).toHaveLength(1);
          expect(q.takeUsed()).toHaveLength(0);
          // Further kicks are ignored until the driver resets the device.
          q.writeDesc(q.desc, 3, DATA + 0x200, 4, VIRTQ_DESC_F_WRITE, 0);
          q.publish(3);
          drv.kick(0);
          expect(q.takeUsed()).toHaveLength(0);
          drv.regs.write(0x70, 4, 0);
          expect(drv.status).toBe(0);
          expect(irq.level).toBe(false);
        }),
        { numRuns: 20 },
      );
    });
  }
});
