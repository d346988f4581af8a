import { GuestMemory } from "@visor/memory";
import { describe, expect, it } from "vitest";
import { IrqLevel } from "../../src/irq.ts";
import {
  VIRTIO_BLK_F_FLUSH,
  VIRTIO_BLK_F_RO,
  VIRTIO_BLK_F_SEG_MAX,
  VIRTIO_BLK_S_IOERR,
  VIRTIO_BLK_S_OK,
  VIRTIO_BLK_S_UNSUPP,
  VIRTIO_BLK_T_FLUSH,
  VIRTIO_BLK_T_GET_ID,
  VIRTIO_BLK_T_IN,
  VIRTIO_BLK_T_OUT,
  VirtioBlk,
} from "../../src/virtio/blk.ts";
import { MemoryBlockBackend } from "../../src/virtio/block-backend.ts";
import {
  feature,
  VIRTIO_F_INDIRECT_DESC,
  VIRTIO_STATUS_DEVICE_NEEDS_RESET,
} from "../../src/virtio/constants.ts";
import { VirtioMmio } from "../../src/virtio/mmio.ts";
import { GuestAllocator, MmioDriver } from "../virtio-driver.ts";

const RAM_BASE = 0x8000_0000;

function setup(options: { readonly?: boolean; sectors?: number; wanted?: bigint } = {}) {
  const ram = GuestMemory.allocate(RAM_BASE, 1 << 20);
  const disk = new MemoryBlockBackend((options.sectors ?? 64) * 512, { readonly: options.readonly ?? false });
  const errors: string[] = [];
  const blk = new VirtioBlk({ backend: disk, id: "disk-0", onError: (m) => errors.push(m) });
  const irq = new IrqLevel();
  const mmio = new VirtioMmio({ device: blk, ram, irq, onError: (m) => errors.push(m) });
  const drv = new MmioDriver(mmio, ram, new GuestAllocator(RAM_BASE, RAM_BASE + (1 << 20)));
  const [q] = drv.bringUp(1, options.wanted);
  return { ram, disk, blk, irq, mmio, drv, q: q!, errors };
}

function header(type: number, sector: number): Uint8Array {
  const h = new Uint8Array(16);
  const dv = new DataView(h.buffer);
  dv.setUint32(0, type, true);
  dv.setBigUint64(8, BigInt(sector), true);
  return h;
}

describe("VirtioBlk over virtio-mmio", () => {
  it("offers capacity, seg_max, FLUSH and SEG_MAX; RO only for read-only disks", () => {
    const { drv } = setup({ sectors: 100 });
    expect(drv.readConfig(0, 4)).toBe(100);
    expect(drv.readConfig(4, 4)).toBe(0);
    expect(drv.readConfig(12, 4)).toBe(254);
    expect(drv.deviceFeatures & feature(VIRTIO_BLK_F_FLUSH)).not.toBe(0n);
    expect(drv.deviceFeatures & feature(VIRTIO_BLK_F_SEG_MAX)).not.toBe(0n);
    expect(drv.deviceFeatures & feature(VIRTIO_BLK_F_RO)).toBe(0n);
    expect(setup({ readonly: true }).drv.deviceFeatures & feature(VIRTIO_BLK_F_RO)).not.toBe(0n);
  });

  it("writes, reads back and flushes through a full request cycle with an interrupt", () => {
    const { drv, q, disk, irq } = setup();
    const data = new Uint8Array(1024).map((_, i) => (i * 7) & 0xff);
    q.post([{ out: header(VIRTIO_BLK_T_OUT, 3) }, { out: data }, { in: 1 }]);
    drv.kick(0);
    expect(irq.level).toBe(true);
    expect(drv.ack()).toBe(1);
    expect(irq.level).toBe(false);
    const [w] = q.takeUsed();
    expect(w!.len).toBe(1);
    expect(w!.data[0]).toEqual(Uint8Array.of(VIRTIO_BLK_S_OK));
    expect(disk.data.subarray(3 * 512, 5 * 512)).toEqual(data);

    q.post([{ out: header(VIRTIO_BLK_T_IN, 3) }, { in: 512 }, { in: 512 }, { in: 1 }]);
    q.post([{ out: header(VIRTIO_BLK_T_FLUSH, 0) }, { in: 1 }]);
    drv.kick(0);
    const [r, f] = q.takeUsed();
    expect(r!.len).toBe(1025);
    expect(r!.data[0]).toEqual(data.subarray(0, 512));
    expect(r!.data[1]).toEqual(data.subarray(512));
    expect(r!.data[2]).toEqual(Uint8Array.of(VIRTIO_BLK_S_OK));
    expect(f!.data[0]).toEqual(Uint8Array.of(VIRTIO_BLK_S_OK));
    expect(disk.flushes).toBe(1);
  });

  it("handles data and status sharing one descriptor, and indirect tables", () => {
    const { drv, q, disk } = setup();
    expect(drv.features & feature(VIRTIO_F_INDIRECT_DESC)).not.toBe(0n);
    disk.data.fill(0xab, 0, 512);
    q.post([{ out: header(VIRTIO_BLK_T_IN, 0) }, { in: 513 }], { indirect: true });
    drv.kick(0);
    const [r] = q.takeUsed();
    expect(r!.len).toBe(513);
    expect(r!.data[0]!.subarray(0, 512).every((b) => b === 0xab)).toBe(true);
    expect(r!.data[0]![512]).toBe(VIRTIO_BLK_S_OK);
  });

  it("checks its options", () => {
    const backend = new MemoryBlockBackend(512);
    expect(() => new VirtioBlk({ backend, id: "x".repeat(21) })).toThrow(/at most 20 printable ASCII/);
    expect(() => new VirtioBlk({ backend, queueSize: 100 })).toThrow(/power of two/);
  });

  it("returns the id for GET_ID", () => {
    const { drv, q } = setup();
    q.post([{ out: header(VIRTIO_BLK_T_GET_ID, 0) }, { in: 20 }, { in: 1 }]);
    drv.kick(0);
    const [r] = q.takeUsed();
    expect(new TextDecoder().decode(r!.data[0]!.subarray(0, 6))).toBe("disk-0");
    expect(r!.data[0]![6]).toBe(0);
    expect(r!.data[1]).toEqual(Uint8Array.of(VIRTIO_BLK_S_OK));
  });

  it("fails requests past the end, partial sectors, unknown types, and writes to read-only disks", () => {
    const { drv, q } = setup({ sectors: 8 });
    q.post([{ out: header(VIRTIO_BLK_T_IN, 7) }, { in: 1024 }, { in: 1 }]);
    q.post([{ out: header(VIRTIO_BLK_T_IN, 0) }, { in: 100 }, { in: 1 }]);
    q.post([{ out: header(99, 0) }, { in: 1 }]);
    q.post([{ out: header(VIRTIO_BLK_T_IN, 2 ** 40) }, { in: 512 }, { in: 1 }]);
    drv.kick(0);
    const st = q.takeUsed().map((u) => u.data.at(-1)![0]);
    expect(st).toEqual([VIRTIO_BLK_S_IOERR, VIRTIO_BLK_S_IOERR, VIRTIO_BLK_S_UNSUPP, VIRTIO_BLK_S_IOERR]);

    const ro = setup({ readonly: true });
    ro.q.post([{ out: header(VIRTIO_BLK_T_OUT, 0) }, { out: new Uint8Array(512).fill(1) }, { in: 1 }]);
    ro.drv.kick(0);
    const [u] = ro.q.takeUsed();
    expect(u!.data[0]).toEqual(Uint8Array.of(VIRTIO_BLK_S_IOERR));
    expect(ro.disk.data.every((b) => b === 0)).toBe(true);
  });

  it("turns a host I/O error into IOERR and reports it", () => {
    const { drv, q, disk, errors } = setup();
    disk.read = () => {
      throw new Error("EIO");
    };
    q.post([{ out: header(VIRTIO_BLK_T_IN, 0) }, { in: 512 }, { in: 1 }]);
    drv.kick(0);
    expect(q.takeUsed()[0]!.data[1]).toEqual(Uint8Array.of(VIRTIO_BLK_S_IOERR));
    expect(errors.join()).toMatch(/read failed: EIO/);
    expect(drv.status & VIRTIO_STATUS_DEVICE_NEEDS_RESET).toBe(0);
  });

  it("puts the device in NEEDS_RESET for a request without a status byte", () => {
    const { drv, q, irq } = setup();
    q.post([{ out: header(VIRTIO_BLK_T_IN, 0) }, { out: new Uint8Array(512) }]);
    drv.kick(0);
    expect(drv.status & VIRTIO_STATUS_DEVICE_NEEDS_RESET).not.toBe(0);
    expect(drv.interruptStatus & 2).toBe(2);
    expect(irq.level).toBe(true);
  });

  it("honours avail.flags NO_INTERRUPT when EVENT_IDX is not negotiated", () => {
    const { drv, q, irq } = setup({ wanted: feature(VIRTIO_F_INDIRECT_DESC) });
    q.noInterrupt = true;
    q.post([{ out: header(VIRTIO_BLK_T_FLUSH, 0) }, { in: 1 }]);
    drv.kick(0);
    expect(q.takeUsed()).toHaveLength(1);
    expect(irq.level).toBe(false);
    q.noInterrupt = false;
    q.post([{ out: header(VIRTIO_BLK_T_FLUSH, 0) }, { in: 1 }]);
    drv.kick(0);
    expect(irq.level).toBe(true);
  });

  it("uses used_event and writes avail_event with EVENT_IDX", () => {
    const { drv, q, irq } = setup();
    q.usedEvent = 1; // interrupt only once used.idx passes 1, i.e. after the second request
    q.post([{ out: header(VIRTIO_BLK_T_FLUSH, 0) }, { in: 1 }]);
    drv.kick(0);
    expect(irq.level).toBe(false);
    expect(q.availEvent).toBe(1);
    q.post([{ out: header(VIRTIO_BLK_T_FLUSH, 0) }, { in: 1 }]);
    drv.kick(0);
    expect(irq.level).toBe(true);
    expect(q.availEvent).toBe(2);
    expect(q.takeUsed()).toHaveLength(2);
  });
});
