import { GuestMemory } from "@visor/memory";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { IrqLevel } from "../../src/irq.ts";
import { VIRTIO_BLK_T_FLUSH, VIRTIO_BLK_T_IN, VirtioBlk } from "../../src/virtio/blk.ts";
import { MemoryBlockBackend } from "../../src/virtio/block-backend.ts";
import {
  feature,
  VIRTIO_F_EVENT_IDX,
  VIRTIO_F_INDIRECT_DESC,
  VIRTIO_F_VERSION_1,
  VIRTIO_MMIO_CONFIG_GENERATION,
  VIRTIO_MMIO_DEVICE_ID,
  VIRTIO_MMIO_DRIVER_FEATURES,
  VIRTIO_MMIO_DRIVER_FEATURES_SEL,
  VIRTIO_MMIO_MAGIC_VALUE,
  VIRTIO_MMIO_QUEUE_DESC_LOW,
  VIRTIO_MMIO_QUEUE_NUM,
  VIRTIO_MMIO_QUEUE_NUM_MAX,
  VIRTIO_MMIO_QUEUE_READY,
  VIRTIO_MMIO_QUEUE_SEL,
  VIRTIO_MMIO_STATUS,
  VIRTIO_MMIO_VENDOR_ID,
  VIRTIO_MMIO_VERSION,
  VIRTIO_STATUS_ACKNOWLEDGE,
  VIRTIO_STATUS_DEVICE_NEEDS_RESET,
  VIRTIO_STATUS_DRIVER,
  VIRTIO_STATUS_DRIVER_OK,
  VIRTIO_STATUS_FEATURES_OK,
} from "../../src/virtio/constants.ts";
import type { VirtioContext, VirtioDevice } from "../../src/virtio/device.ts";
import { VirtioMmio } from "../../src/virtio/mmio.ts";
import { GuestAllocator, MmioDriver } from "../virtio-driver.ts";

const BASE = 0x8000_0000;
const SIZE = 1 << 20;

function blkSetup() {
  const ram = GuestMemory.allocate(BASE, SIZE);
  const disk = new MemoryBlockBackend(16 * 512);
  const blk = new VirtioBlk({ backend: disk });
  const irq = new IrqLevel();
  const mmio = new VirtioMmio({ device: blk, ram, irq });
  const alloc = new GuestAllocator(BASE, BASE + SIZE);
  const drv = new MmioDriver(mmio, ram, alloc);
  return { ram, disk, blk, irq, mmio, drv, alloc };
}

const flushReq = () => {
  const h = new Uint8Array(16);
  h[0] = VIRTIO_BLK_T_FLUSH;
  return h;
};

describe("VirtioMmio", () => {
  it("identifies itself as a version 2 virtio-mmio device", () => {
    const { mmio } = blkSetup();
    expect(mmio.read(VIRTIO_MMIO_MAGIC_VALUE, 4)).toBe(0x74726976);
    expect(mmio.read(VIRTIO_MMIO_VERSION, 4)).toBe(2);
    expect(mmio.read(VIRTIO_MMIO_DEVICE_ID, 4)).toBe(2);
    expect(mmio.read(VIRTIO_MMIO_VENDOR_ID, 4)).not.toBe(0);
    expect(mmio.read(VIRTIO_MMIO_MAGIC_VALUE, 2)).toBe(0); // registers are 32-bit only
    mmio.write(VIRTIO_MMIO_QUEUE_SEL, 4, 0);
    expect(mmio.read(VIRTIO_MMIO_QUEUE_NUM_MAX, 4)).toBe(256);
    mmio.write(VIRTIO_MMIO_QUEUE_SEL, 4, 1);
    expect(mmio.read(VIRTIO_MMIO_QUEUE_NUM_MAX, 4)).toBe(0);
  });

  it("offers VERSION_1, INDIRECT_DESC and EVENT_IDX and refuses drivers without VERSION_1", () => {
    const { drv, mmio } = blkSetup();
    expect(drv.negotiate()).toBe(true);
    for (const f of [VIRTIO_F_VERSION_1, VIRTIO_F_INDIRECT_DESC, VIRTIO_F_EVENT_IDX]) {
      expect(drv.deviceFeatures & feature(f)).not.toBe(0n);
    }
    // A legacy-only driver: accept nothing.
    mmio.write(VIRTIO_MMIO_STATUS, 4, 0);
    mmio.write(VIRTIO_MMIO_STATUS, 4, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
    mmio.write(
      VIRTIO_MMIO_STATUS,
      4,
      VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK,
    );
    expect(drv.status & VIRTIO_STATUS_FEATURES_OK).toBe(0);
    // A driver asking for a bit never offered.
    mmio.write(VIRTIO_MMIO_STATUS, 4, 0);
    mmio.write(VIRTIO_MMIO_DRIVER_FEATURES_SEL, 4, 1);
    mmio.write(VIRTIO_MMIO_DRIVER_FEATURES, 4, 1 | (1 << 20));
    mmio.write(VIRTIO_MMIO_STATUS, 4, VIRTIO_STATUS_FEATURES_OK | 3);
    expect(drv.status & VIRTIO_STATUS_FEATURES_OK).toBe(0);
  });

  it("rejects bad queue layouts with NEEDS_RESET and a config interrupt; reset recovers", () => {
    const { drv, mmio, irq } = blkSetup();
    drv.negotiate();
    mmio.write(VIRTIO_MMIO_QUEUE_SEL, 4, 0);
    mmio.write(VIRTIO_MMIO_QUEUE_NUM, 4, 100); // not a power of two
    mmio.write(VIRTIO_MMIO_QUEUE_READY, 4, 1);
    expect(drv.status & VIRTIO_STATUS_DEVICE_NEEDS_RESET).not.toBe(0);
    expect(drv.interruptStatus).toBe(2);
    expect(irq.level).toBe(true);
    expect(mmio.read(VIRTIO_MMIO_QUEUE_READY, 4)).toBe(0);
    mmio.write(VIRTIO_MMIO_STATUS, 4, 0);
    expect(drv.status).toBe(0);
    expect(irq.level).toBe(false);

    drv.negotiate();
    mmio.write(VIRTIO_MMIO_QUEUE_SEL, 4, 0);
    mmio.write(VIRTIO_MMIO_QUEUE_DESC_LOW, 4, 0x1000); // below RAM
    mmio.write(VIRTIO_MMIO_QUEUE_READY, 4, 1);
    expect(drv.status & VIRTIO_STATUS_DEVICE_NEEDS_RESET).not.toBe(0);
  });

  it("refuses QueueReady before FEATURES_OK and DRIVER_OK without FEATURES_OK", () => {
    const a = blkSetup();
    a.mmio.write(VIRTIO_MMIO_STATUS, 4, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
    a.mmio.write(VIRTIO_MMIO_QUEUE_READY, 4, 1);
    expect(a.drv.status & VIRTIO_STATUS_DEVICE_NEEDS_RESET).not.toBe(0);
    const b = blkSetup();
    b.mmio.write(
      VIRTIO_MMIO_STATUS,
      4,
      VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_DRIVER_OK,
    );
    expect(b.drv.status & VIRTIO_STATUS_DEVICE_NEEDS_RESET).not.toBe(0);
  });

  it("freezes a ready queue's layout registers", () => {
    const { drv, mmio } = blkSetup();
    drv.negotiate();
    const q = drv.setupQueue(0, 16);
    mmio.write(VIRTIO_MMIO_QUEUE_DESC_LOW, 4, 0);
    mmio.write(VIRTIO_MMIO_QUEUE_NUM, 4, 4);
    expect(mmio.read(VIRTIO_MMIO_QUEUE_DESC_LOW, 4)).toBe(q.desc);
    expect(mmio.read(VIRTIO_MMIO_QUEUE_NUM, 4)).toBe(16);
  });

  it("ignores notifications before DRIVER_OK and serves what was posted when DRIVER_OK comes", () => {
    const { drv } = blkSetup();
    drv.negotiate();
    const q = drv.setupQueue(0);
    q.post([{ out: flushReq() }, { in: 1 }]);
    drv.kick(0);
    expect(q.takeUsed()).toHaveLength(0);
    drv.driverOk();
    expect(q.takeUsed()).toHaveLength(1);
  });

  it("reads config space at every width and bumps ConfigGeneration on config changes", () => {
    let ctx: VirtioContext | null = null;
    const cfg = Uint8Array.of(0x11, 0x22, 0x33, 0x44);
    const dev: VirtioDevice = {
      name: "test",
      deviceId: 42,
      features: 0n,
      queueMaxSizes: [4],
      configSize: 4,
      readConfig: (o, s) => (s === 1 ? cfg[o]! : s === 2 ? cfg[o]! | (cfg[o + 1]! << 8) : 0x44332211),
      writeConfig: () => {},
      activate: (c) => {
        ctx = c;
      },
      onNotify: () => {},
      reset: () => {
        ctx = null;
      },
      toState: () => ({}),
      fromState: () => {},
    };
    const ram = GuestMemory.allocate(BASE, SIZE);
    const irq = new IrqLevel();
    const mmio = new VirtioMmio({ device: dev, ram, irq });
    const drv = new MmioDriver(mmio, ram, new GuestAllocator(BASE, BASE + SIZE));
    drv.bringUp(1);
    expect(drv.readConfig(1, 1)).toBe(0x22);
    expect(drv.readConfig(2, 2)).toBe(0x4433);
    expect(drv.readConfig(0, 4)).toBe(0x44332211);
    const gen = mmio.read(VIRTIO_MMIO_CONFIG_GENERATION, 4);
    (ctx as VirtioContext | null)!.configChanged();
    expect(mmio.read(VIRTIO_MMIO_CONFIG_GENERATION, 4)).toBe(gen + 1);
    expect(drv.ack()).toBe(2);
    expect(irq.level).toBe(false);
  });

  it("turns an exception from a device into NEEDS_RESET instead of throwing into the CPU", () => {
    const ram = GuestMemory.allocate(BASE, SIZE);
    const errors: string[] = [];
    const dev: VirtioDevice = {
      name: "buggy",
      deviceId: 42,
      features: 0n,
      queueMaxSizes: [4],
      configSize: 0,
      readConfig: () => {
        throw new Error("config bug");
      },
      writeConfig: () => {},
      activate: () => {},
      onNotify: () => {
        throw new Error("notify bug");
      },
      reset: () => {},
      toState: () => ({}),
      fromState: () => {},
    };
    const mmio = new VirtioMmio({ device: dev, ram, onError: (m) => errors.push(m) });
    const drv = new MmioDriver(mmio, ram, new GuestAllocator(BASE, BASE + SIZE));
    drv.bringUp(1);
    expect(() => drv.kick(0)).not.toThrow();
    expect(drv.status & VIRTIO_STATUS_DEVICE_NEEDS_RESET).not.toBe(0);
    expect(errors[0]).toMatch(/notify bug/);
    expect(() => drv.readConfig(0, 4)).not.toThrow();
  });

  it("round-trips its state and carries on serving requests after a restore", () => {
    const a = blkSetup();
    const [q] = a.drv.bringUp(1);
    a.disk.data.fill(7, 512, 1024);
    q!.post([{ out: flushReq() }, { in: 1 }]);
    a.drv.kick(0);
    q!.takeUsed();
    const state = JSON.parse(JSON.stringify(a.mmio.toState()));

    const irq = new IrqLevel();
    const mmio2 = new VirtioMmio({ device: new VirtioBlk({ backend: a.disk }), ram: a.ram, irq });
    mmio2.fromState(state);
    expect(mmio2.toState()).toEqual(a.mmio.toState());
    expect(irq.level).toBe(a.irq.level);
    const drv2 = new MmioDriver(mmio2, a.ram, a.alloc);
    const h = new Uint8Array(16);
    h[0] = VIRTIO_BLK_T_IN;
    h[8] = 1;
    q!.post([{ out: h }, { in: 512 }, { in: 1 }]);
    drv2.kick(0);
    const [u] = q!.takeUsed();
    expect(u!.data[0]!.every((b) => b === 7)).toBe(true);
    expect(u!.data[1]).toEqual(Uint8Array.of(0));

    expect(() => mmio2.fromState({ ...state, queues: [] })).toThrow(/queues must have 1 entries/);
    const badQ = { ...state, queues: [{ ...state.queues[0], desc: 0x10 }] };
    expect(() => mmio2.fromState(badQ)).toThrow(/outside RAM/);
  });

  it("never throws under random register access, and the IRQ follows InterruptStatus", () => {
    const regs = fc.oneof(
      fc.integer({ min: 0, max: 0x1ff }).map((o) => o & ~3),
      fc.constantFrom(0x70, 0x44, 0x50, 0x38, 0x30, 0x64, 0x20, 0x24, 0x80, 0x90, 0xa0),
    );
    const op = fc.record({
      write: fc.boolean(),
      off: regs,
      size: fc.constantFrom(1, 2, 4) as fc.Arbitrary<1 | 2 | 4>,
      v: fc.oneof(
        fc.integer({ min: 0, max: 0xffff_ffff }),
        fc.integer({ min: 0, max: 0x10 }),
        fc.constant(BASE),
      ),
    });
    fc.assert(
      fc.property(fc.array(op, { maxLength: 120 }), (ops) => {
        const { mmio, irq, drv } = blkSetup();
        for (const o of ops) {
          if (o.write) mmio.write(o.off, o.size, o.v);
          else mmio.read(o.off, o.size);
          expect(irq.level).toBe(drv.interruptStatus !== 0);
        }
      }),
    );
  });
});
