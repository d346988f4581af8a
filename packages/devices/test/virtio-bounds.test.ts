/**
 * What a guest can make the host spend through a virtio request is bounded by what the
 * device advertises: the virtqueue takes the device's ChainLimit and marks longer chains
 * oversized before anything is copied; each device completes such a chain the way its
 * spec says (a dropped frame, an IOERR status) and keeps working. The attacks here are
 * chains of up to 4 GiB built from overlapping descriptors over one small buffer.
 */
import { type Gpa, GuestMemory, GuestRam } from "@visor/memory";
import { describe, expect, it } from "vitest";
import {
  type BlockBackend,
  ChainLimitError,
  feature,
  MAX_CHAIN_BYTES,
  type NetBackend,
  VIRTIO_BLK_F_SIZE_MAX,
  VIRTIO_BLK_S_IOERR,
  VIRTIO_BLK_S_OK,
  VIRTIO_BLK_SIZE_MAX,
  VIRTIO_BLK_T_IN,
  VIRTIO_BLK_T_OUT,
  VIRTIO_CONSOLE_MAX_CHUNK,
  VIRTIO_CONSOLE_TX,
  VIRTIO_NET_HDR_SIZE,
  VIRTIO_NET_MAX_FRAME,
  VIRTIO_NET_TX,
  VIRTIO_RNG_MAX_PER_KICK,
  VIRTIO_RNG_MAX_REQUEST,
  VIRTIO_STATUS_DEVICE_NEEDS_RESET,
  VIRTQ_DESC_F_NEXT,
  VIRTQ_DESC_F_WRITE,
  VirtioBlk,
  VirtioConsole,
  type VirtioContext,
  type VirtioDevice,
  VirtioMmio,
  VirtioNet,
  VirtioRng,
} from "../src/index.ts";
import { type DriverQueue, GuestAllocator, MmioDriver } from "./virtio-driver.ts";

const BASE = 0x8000_0000;
/** Untouched RAM costs nothing: the buffer is allocated lazily by the host. */
const RAM_SIZE = 64 << 20;
/** One shared buffer that every descriptor of a huge chain points at. */
const BIG = BASE + (16 << 20);
const BIG_LEN = 32 << 20;
/** Raw chains use descriptors from here up; DriverQueue.post takes from the bottom. */
const RAW_FIRST = 64;

/** GuestRam that counts the bytes handed out through view()/viewMut() (DMA copies). */
class CountingRam extends GuestMemory {
  viewed = 0;
  constructor(base: number, size: number) {
    super(new GuestRam(base, size));
  }
  override view(pa: Gpa | number, len: number): Uint8Array {
    this.viewed += len;
    return super.view(pa as Gpa, len);
  }
  override viewMut(pa: Gpa | number, len: number): Uint8Array {
    this.viewed += len;
    return super.viewMut(pa as Gpa, len);
  }
  override write(pa: Gpa | number, src: Uint8Array): void {
    super.write(pa as Gpa, src);
  }
  override read8(pa: Gpa | number): number {
    return super.read8(pa as Gpa);
  }
  override write8(pa: Gpa | number, v: number): void {
    super.write8(pa as Gpa, v);
  }
}

function bringUp(device: VirtioDevice, queues: number) {
  const ram = new CountingRam(BASE, RAM_SIZE);
  const errors: string[] = [];
  const mmio = new VirtioMmio({ device, ram, onError: (m) => errors.push(m) });
  const drv = new MmioDriver(mmio, ram, new GuestAllocator(BASE, BASE + (2 << 20)));
  const qs = drv.bringUp(queues);
  return { ram, mmio, drv, qs, errors };
}

/**
 * Post a chain written straight into the descriptor table: `parts` are [addr, len, write]
 * (no DriverQueue bookkeeping, so lengths can be anything). Returns the head.
 */
function postRaw(q: DriverQueue, ram: CountingRam, parts: [number, number, boolean][]): number {
  parts.forEach(([addr, len, write], i) => {
    const last = i === parts.length - 1;
    const flags = (write ? VIRTQ_DESC_F_WRITE : 0) | (last ? 0 : VIRTQ_DESC_F_NEXT);
    q.writeDesc(q.desc, RAW_FIRST + i, addr, len, flags, last ? 0 : RAW_FIRST + i + 1);
  });
  void ram;
  q.publish(RAW_FIRST);
  return RAW_FIRST;
}

/** `total` bytes of device-readable descriptors, all over the same 1 MiB buffer. */
function readableOver(total: number, first: [number, number, boolean][] = []): [number, number, boolean][] {
  return [...first, ...over(total, BIG_LEN, false)];
}

/** Descriptors of at most `piece` bytes over the shared buffer, `total` bytes in all. */
function over(total: number, piece: number, write: boolean): [number, number, boolean][] {
  const parts: [number, number, boolean][] = [];
  for (let left = total; left > 0; left -= piece) parts.push([BIG, Math.min(left, piece), write]);
  return parts;
}

class CountingNet implements NetBackend {
  sent: number[] = [];
  send(frame: Uint8Array): void {
    this.sent.push(frame.length);
  }
  onReceive(): void {}
}

describe("virtio-net transmit: at most header + one frame per chain", () => {
  it("drops a 4 GiB transmit chain without copying it, counts it, and sends the next frame", () => {
    const backend = new CountingNet();
    const net = new VirtioNet({ backend });
    const { ram, drv, qs, errors, mmio } = bringUp(net, 2);
    const tx = qs[VIRTIO_NET_TX]!;
    // 12-byte header, then 4095 MiB + (1 MiB - 1) over one buffer: 4 GiB - 1 in total.
    const parts = readableOver(MAX_CHAIN_BYTES - VIRTIO_NET_HDR_SIZE, [[BIG, VIRTIO_NET_HDR_SIZE, false]]);
    expect(parts.length).toBeLessThanOrEqual(256 - RAW_FIRST);
    ram.viewed = 0;
    const head = postRaw(tx, ram, parts);
    drv.kick(VIRTIO_NET_TX);
    expect(tx.takeUsed()).toEqual([{ head, len: 0, data: [] }]);
    expect(backend.sent).toEqual([]);
    expect(net.stats.txOversized).toBe(1);
    expect(ram.viewed).toBe(0);
    expect(mmio.deviceStatus & VIRTIO_STATUS_DEVICE_NEEDS_RESET).toBe(0);
    expect(errors).toEqual([]);
    // The queue goes on: a normal frame right after is sent.
    tx.post([{ out: new Uint8Array(VIRTIO_NET_HDR_SIZE) }, { out: new Uint8Array(60) }]);
    drv.kick(VIRTIO_NET_TX);
    expect(backend.sent).toEqual([60]);
  });

  it("sends a frame of exactly the maximum size and drops one byte more", () => {
    const backend = new CountingNet();
    const net = new VirtioNet({ backend });
    const { ram, drv, qs } = bringUp(net, 2);
    const tx = qs[VIRTIO_NET_TX]!;
    postRaw(tx, ram, readableOver(VIRTIO_NET_HDR_SIZE + VIRTIO_NET_MAX_FRAME));
    drv.kick(VIRTIO_NET_TX);
    expect(backend.sent).toEqual([VIRTIO_NET_MAX_FRAME]);
    postRaw(tx, ram, readableOver(VIRTIO_NET_HDR_SIZE + VIRTIO_NET_MAX_FRAME + 1));
    drv.kick(VIRTIO_NET_TX);
    expect(backend.sent).toEqual([VIRTIO_NET_MAX_FRAME]);
    expect(net.stats.txOversized).toBe(1);
    expect(tx.takeUsed().map((u) => u.len)).toEqual([0, 0]);
  });
});

/** A disk that records how many bytes it was asked to move, and stores nothing. */
class CountingDisk implements BlockBackend {
  readonly size = 1 << 30;
  moved = 0;
  read(_offset: number, dst: Uint8Array): void {
    this.moved += dst.length;
  }
  write(_offset: number, src: Uint8Array): void {
    this.moved += src.length;
  }
  flush(): void {}
}

function blkHeader(type: number, sector: number): Uint8Array {
  const h = new Uint8Array(16);
  const dv = new DataView(h.buffer);
  dv.setUint32(0, type, true);
  dv.setBigUint64(8, BigInt(sector), true);
  return h;
}

describe("virtio-blk: requests limited to seg_max * size_max", () => {
  it("advertises SIZE_MAX and SEG_MAX with their values", () => {
    const blk = new VirtioBlk({ backend: new CountingDisk() });
    const { drv } = bringUp(blk, 1);
    expect(drv.deviceFeatures & feature(VIRTIO_BLK_F_SIZE_MAX)).not.toBe(0n);
    expect(drv.readConfig(8, 4)).toBe(VIRTIO_BLK_SIZE_MAX);
    expect(drv.readConfig(12, 4)).toBe(254);
    expect(blk.maxRequestBytes).toBe(254 * VIRTIO_BLK_SIZE_MAX);
  });

  for (const [name, type] of [
    ["read", VIRTIO_BLK_T_IN],
    ["write", VIRTIO_BLK_T_OUT],
  ] as const) {
    it(`answers an oversized ${name} with IOERR without touching the disk, then serves the next`, () => {
      const disk = new CountingDisk();
      const blk = new VirtioBlk({ backend: disk });
      const { ram, drv, qs, mmio } = bringUp(blk, 1);
      const q = qs[0]!;
      const hdr = BASE + (1 << 20);
      ram.write(hdr, blkHeader(type, 0));
      const status = hdr + 64;
      const data = 256 << 20; // 256 MiB of data: far over 254 * 64 KiB, inside the disk
      const write = type === VIRTIO_BLK_T_IN;
      const parts: [number, number, boolean][] = [
        [hdr, 16, false],
        ...over(data, BIG_LEN, write),
        [status, 1, true],
      ];
      ram.write8(status, 0xee);
      const head = postRaw(q, ram, parts);
      drv.kick(0);
      expect(q.takeUsed()).toEqual([{ head, len: 1, data: [] }]);
      expect(ram.read8(status)).toBe(VIRTIO_BLK_S_IOERR);
      expect(disk.moved).toBe(0);
      expect(blk.stats.oversized).toBe(1);
      expect(mmio.deviceStatus & VIRTIO_STATUS_DEVICE_NEEDS_RESET).toBe(0);
      // A request of exactly the maximum size is served.
      postRaw(q, ram, [[hdr, 16, false], ...over(blk.maxRequestBytes, 1 << 20, write), [status, 1, true]]);
      drv.kick(0);
      expect(ram.read8(status)).toBe(VIRTIO_BLK_S_OK);
      expect(disk.moved).toBe(blk.maxRequestBytes);
    });
  }
});

describe("virtio-rng: bounded per request and per notification", () => {
  it("generates at most VIRTIO_RNG_MAX_PER_KICK bytes per kick; the rest waits for the next", () => {
    let asked = 0;
    const rng = new VirtioRng({
      entropy: (b) => {
        asked += b.length;
      },
    });
    const { drv, qs } = bringUp(rng, 1);
    const q = qs[0]!;
    // 16 requests of 64 MiB each: every one is capped, and one kick serves only some.
    const requests = 16;
    for (let r = 0; r < requests; r++) {
      const i = r * 2;
      q.writeDesc(q.desc, i, BIG, BIG_LEN, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, i + 1);
      q.writeDesc(q.desc, i + 1, BIG, BIG_LEN, VIRTQ_DESC_F_WRITE, 0);
      q.publish(i);
    }
    drv.kick(0);
    expect(asked).toBe(VIRTIO_RNG_MAX_PER_KICK);
    const first = q.takeUsed();
    expect(first.length).toBe(VIRTIO_RNG_MAX_PER_KICK / VIRTIO_RNG_MAX_REQUEST);
    expect(first.every((u) => u.len === VIRTIO_RNG_MAX_REQUEST)).toBe(true);
    let served = first.length;
    for (let k = 0; k < requests && served < requests; k++) {
      drv.kick(0);
      served += q.takeUsed().length;
    }
    expect(served).toBe(requests);
    expect(asked).toBe(requests * VIRTIO_RNG_MAX_REQUEST);
  });
});

describe("virtio-console: output waits for the sink; buffers are bounded", () => {
  it("stops taking transmit buffers while the sink is full and resumes on outputDrained()", () => {
    const got: string[] = [];
    let room = 1;
    const con = new VirtioConsole({
      output: (b) => {
        got.push(new TextDecoder().decode(b));
        room--;
        return room > 0;
      },
    });
    const { drv, qs } = bringUp(con, 2);
    const tx = qs[VIRTIO_CONSOLE_TX]!;
    for (const s of ["a", "b", "c"]) tx.post([{ out: new TextEncoder().encode(s) }]);
    drv.kick(VIRTIO_CONSOLE_TX);
    // The sink took "a" and said it is full: "b" and "c" stay in the ring.
    expect(got).toEqual(["a"]);
    expect(con.outputBlocked).toBe(true);
    expect(tx.takeUsed()).toHaveLength(1);
    drv.kick(VIRTIO_CONSOLE_TX);
    expect(got).toEqual(["a"]);
    room = 10;
    con.outputDrained();
    expect(got).toEqual(["a", "b", "c"]);
    expect(tx.takeUsed()).toHaveLength(2);
  });

  it("returns a transmit buffer over VIRTIO_CONSOLE_MAX_CHUNK unread", () => {
    const got: number[] = [];
    const con = new VirtioConsole({ output: (b) => void got.push(b.length) });
    const { ram, drv, qs } = bringUp(con, 2);
    const tx = qs[VIRTIO_CONSOLE_TX]!;
    ram.viewed = 0;
    postRaw(tx, ram, readableOver(1 << 30)); // 1 GiB: the console's queues have 128 entries
    drv.kick(VIRTIO_CONSOLE_TX);
    expect(got).toEqual([]);
    expect(con.dropped).toBe(1);
    expect(ram.viewed).toBe(0);
    postRaw(tx, ram, readableOver(VIRTIO_CONSOLE_MAX_CHUNK));
    drv.kick(VIRTIO_CONSOLE_TX);
    expect(got).toEqual([VIRTIO_CONSOLE_MAX_CHUNK]);
  });
});

describe("the chain limit is a mechanism: a device that ignores it fails closed", () => {
  it("reading an oversized chain throws ChainLimitError; the transport sets NEEDS_RESET", () => {
    let copied = 0;
    let thrown: unknown;
    const careless: VirtioDevice = {
      name: "careless",
      deviceId: 0x7f,
      features: 0n,
      queueMaxSizes: [256],
      configSize: 0,
      readConfig: () => 0,
      writeConfig: () => {},
      ctx: undefined as VirtioContext | undefined,
      activate(ctx: VirtioContext) {
        this.ctx = ctx;
      },
      onNotify() {
        const q = this.ctx!.queues[0]!;
        const limit = { readable: 4096, writable: 0 };
        for (let c = q.pop(limit); c !== null; c = q.pop(limit)) {
          try {
            copied += c.readAll().length;
          } catch (e) {
            thrown = e;
            throw e;
          }
        }
      },
      reset() {},
      toState: () => ({}),
      fromState: () => {},
    } as VirtioDevice & { ctx: VirtioContext | undefined };
    const { ram, drv, qs, mmio, errors } = bringUp(careless, 1);
    postRaw(qs[0]!, ram, readableOver(MAX_CHAIN_BYTES));
    drv.kick(0);
    expect(copied).toBe(0);
    expect(mmio.deviceStatus & VIRTIO_STATUS_DEVICE_NEEDS_RESET).not.toBe(0);
    expect(errors.join("\n")).toMatch(/over the device's limit/);
    expect(thrown).toBeInstanceOf(ChainLimitError);
  });
});
