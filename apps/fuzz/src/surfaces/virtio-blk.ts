/**
 * virtio-blk requests from a hostile driver, over virtio-mmio and legacy virtio-pci (see
 * ../virtio.ts for the operations and the shared invariants). Also: the disk is never
 * asked to move more than seg_max * size_max bytes per completed request, and after a
 * reset a write and a read of one sector work.
 */
import {
  type BlockBackend,
  VIRTIO_BLK_S_OK,
  VIRTIO_BLK_T_IN,
  VIRTIO_BLK_T_OUT,
  VirtioBlk,
} from "@visor/devices";
import fc from "fast-check";
import { type FuzzSurface, invariant } from "../surface.ts";
import { type Op, opsArbitrary, Rig, type Transport, transportArbitrary } from "../virtio.ts";

const SECTOR = 512;
/** Sectors kept for real (the recovery request uses sector 1); the rest only counts. */
const STORED_SECTORS = 8;

/** A 1 GiB disk (so oversized requests fit its capacity) that stores its first sectors only. */
class CountingDisk implements BlockBackend {
  readonly size = 1 << 30;
  moved = 0;
  private readonly head = new Uint8Array(STORED_SECTORS * SECTOR);
  read(offset: number, dst: Uint8Array): void {
    this.moved += dst.length;
    if (offset < this.head.length) dst.set(this.head.subarray(offset, offset + dst.length));
  }
  write(offset: number, src: Uint8Array): void {
    this.moved += src.length;
    if (offset < this.head.length) this.head.set(src.subarray(0, this.head.length - offset), offset);
  }
  flush(): void {}
}

function header(type: number, sector: number): Uint8Array {
  const h = new Uint8Array(16);
  const dv = new DataView(h.buffer);
  dv.setUint32(0, type, true);
  dv.setUint32(8, sector, true);
  return h;
}

const surface: FuzzSurface<{ transport: Transport; ops: Op[] }> = {
  name: "virtio-blk",
  description:
    "virtio-blk under random descriptor chains, notifies, register and config accesses (mmio and legacy pci): no host exception, no access outside RAM, disk I/O per request within seg_max * size_max, works after reset",
  arbitrary: fc.record({ transport: transportArbitrary, ops: opsArbitrary(1, 256) }),
  check({ transport, ops }) {
    const disk = new CountingDisk();
    const blk = new VirtioBlk({ backend: disk });
    const rig = new Rig(blk, transport);
    const usedIdx = () => rig.ram.read16(rig.queues[0]!.used + 2);
    for (const op of ops) {
      const moved = disk.moved;
      const used = usedIdx();
      try {
        rig.apply([op], () => {});
      } catch (e) {
        invariant(false, `host exception: ${e instanceof Error ? e.stack : String(e)}`);
      }
      const served = (usedIdx() - used) & 0xffff;
      invariant(
        disk.moved - moved <= served * blk.maxRequestBytes,
        `disk asked for ${disk.moved - moved} bytes for ${served} request(s)`,
      );
    }
    rig.checkRam();
    const { queues, kick } = rig.recover();
    const q = queues[0]!;
    const data = new Uint8Array(SECTOR).map((_, i) => i & 0xff);
    q.post([{ out: header(VIRTIO_BLK_T_OUT, 1) }, { out: data }, { in: 1 }]);
    kick(0);
    const w = q.takeUsed();
    invariant(w.length === 1 && w[0]!.data[0]![0] === VIRTIO_BLK_S_OK, "a write after reset failed");
    q.post([{ out: header(VIRTIO_BLK_T_IN, 1) }, { in: SECTOR }, { in: 1 }]);
    kick(0);
    const r = q.takeUsed();
    invariant(
      r.length === 1 &&
        r[0]!.data[1]![0] === VIRTIO_BLK_S_OK &&
        r[0]!.data[0]!.every((b, i) => b === (i & 0xff)),
      "a read after reset did not return the sector written",
    );
    rig.checkRam();
  },
  ciRuns: 800,
};

export default surface;
