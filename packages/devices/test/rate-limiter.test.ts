/**
 * Token-bucket rate limits (Firecracker's RateLimiter semantics) on a hand-driven clock:
 * the buckets themselves, then virtio-blk and virtio-net holding throttled requests in
 * their queues until the limiter's timer serves them. No test looks at real time.
 */
import { GuestMemory } from "@visor/memory";
import { describe, expect, it } from "vitest";
import { IrqLevel } from "../src/irq.ts";
import { ManualTimers, RateLimiter, TokenBucket } from "../src/rate-limiter.ts";
import { VIRTIO_BLK_S_OK, VIRTIO_BLK_T_IN, VIRTIO_BLK_T_OUT, VirtioBlk } from "../src/virtio/blk.ts";
import { MemoryBlockBackend } from "../src/virtio/block-backend.ts";
import { VirtioMmio } from "../src/virtio/mmio.ts";
import { VIRTIO_NET_RX, VIRTIO_NET_TX, VirtioNet } from "../src/virtio/net.ts";
import type { NetBackend } from "../src/virtio/net-backend.ts";
import { GuestAllocator, MmioDriver } from "./virtio-driver.ts";

describe("TokenBucket", () => {
  it("starts full, refills at size per refill time, never above size", () => {
    const b = new TokenBucket({ size: 1000, refillTimeMs: 1000 }, 0);
    expect(b.wait(1000, 0)).toBe(0);
    b.take(1000);
    expect(b.wait(1, 0)).toBe(1);
    expect(b.wait(500, 0)).toBe(500);
    expect(b.wait(500, 500)).toBe(0);
    expect(b.wait(1000, 10_000)).toBe(0);
    b.take(1000);
    expect(b.wait(1, 10_000)).toBe(1); // refilled to 1000, not 10_000
  });

  it("spends the one-time burst first and never refills it", () => {
    const b = new TokenBucket({ size: 100, refillTimeMs: 1000, oneTimeBurst: 400 }, 0);
    expect(b.wait(500, 0)).toBe(0);
    b.take(500);
    expect(b.wait(1, 0)).toBe(10);
    expect(b.wait(500, 1_000_000)).toBe(0); // an oversized op once the bucket is full again
    expect(b.wait(100, 1_000_000)).toBe(0);
    b.take(100);
    expect(b.wait(1, 1_000_000)).toBe(10); // the burst is gone
  });

  it("lets an operation bigger than the bucket through when full, then makes it wait off the debt", () => {
    const b = new TokenBucket({ size: 100, refillTimeMs: 1000 }, 0);
    expect(b.wait(300, 0)).toBe(0);
    b.take(300);
    expect(b.wait(1, 0)).toBe(2010); // 200 in debt + 1
  });

  it("refuses nonsense configurations", () => {
    expect(() => new TokenBucket({ size: 0, refillTimeMs: 1000 }, 0)).toThrow(/size 0 must be > 0/);
    expect(() => new TokenBucket({ size: 1, refillTimeMs: Number.NaN }, 0)).toThrow(/refill time/);
    expect(() => new TokenBucket({ size: 1, refillTimeMs: 1, oneTimeBurst: -1 }, 0)).toThrow(/burst/);
  });
});

describe("RateLimiter", () => {
  it("takes from both buckets or neither, and arms one timer that wakes the device", () => {
    const clock = new ManualTimers();
    const rl = new RateLimiter(
      { bandwidth: { size: 4096, refillTimeMs: 1000 }, ops: { size: 2, refillTimeMs: 1000 } },
      clock,
    );
    let wakes = 0;
    rl.onWake(() => wakes++);
    expect(rl.consume(1024)).toBe(true);
    expect(rl.consume(1024)).toBe(true);
    expect(rl.consume(0)).toBe(false); // out of operations, though bytes remain
    expect(rl.consume(0)).toBe(false); // still blocked: no second timer
    expect(clock.pending).toBe(1);
    expect(rl.stats.throttled).toBe(1);
    clock.advance(499);
    expect(wakes).toBe(0);
    clock.advance(1);
    expect(wakes).toBe(1);
    expect(rl.consume(1024)).toBe(true);
  });
});

const RAM_BASE = 0x8000_0000;

function blkSetup(limiter: RateLimiter) {
  const ram = GuestMemory.allocate(RAM_BASE, 1 << 20);
  const disk = new MemoryBlockBackend(64 * 512);
  const blk = new VirtioBlk({ backend: disk, rateLimiter: limiter });
  const irq = new IrqLevel();
  const mmio = new VirtioMmio({ device: blk, ram, irq, onError: () => {} });
  const drv = new MmioDriver(mmio, ram, new GuestAllocator(RAM_BASE, RAM_BASE + (1 << 20)));
  const [q] = drv.bringUp(1);
  return { disk, drv, q: q!, irq };
}

function header(type: number, sector: number): Uint8Array {
  const h = new Uint8Array(16);
  const dv = new DataView(h.buffer);
  dv.setUint32(0, type, true);
  dv.setBigUint64(8, BigInt(sector), true);
  return h;
}

describe("virtio-blk under a rate limit", () => {
  it("serves what the bucket allows, keeps the rest queued, and serves it when the timer fires", () => {
    const clock = new ManualTimers();
    // 2 KiB per second: four 1 KiB writes take two seconds after the first two
    const { drv, q, disk } = blkSetup(
      new RateLimiter({ bandwidth: { size: 2048, refillTimeMs: 1000 } }, clock),
    );
    for (let i = 0; i < 4; i++) {
      q.post([
        { out: header(VIRTIO_BLK_T_OUT, i * 2) },
        { out: new Uint8Array(1024).fill(i + 1) },
        { in: 1 },
      ]);
    }
    drv.kick(0);
    expect(q.takeUsed()).toHaveLength(2);
    expect(disk.data[4 * 512]).toBe(0); // the third write has not happened
    drv.kick(0); // a kick while throttled serves nothing more and arms nothing more
    expect(q.takeUsed()).toHaveLength(0);
    expect(clock.pending).toBe(1);
    clock.advance(500);
    const third = q.takeUsed();
    expect(third).toHaveLength(1);
    expect(third[0]!.data[0]).toEqual(Uint8Array.of(VIRTIO_BLK_S_OK));
    expect(disk.data[4 * 512]).toBe(3);
    clock.advance(500);
    expect(q.takeUsed()).toHaveLength(1);
    expect(disk.data[6 * 512]).toBe(4);
    expect(clock.pending).toBe(0);
  });

  it("counts operations: iops=1 serves one read per second", () => {
    const clock = new ManualTimers();
    const { drv, q } = blkSetup(new RateLimiter({ ops: { size: 1, refillTimeMs: 1000 } }, clock));
    for (let i = 0; i < 3; i++) q.post([{ out: header(VIRTIO_BLK_T_IN, 0) }, { in: 512 }, { in: 1 }]);
    drv.kick(0);
    expect(q.takeUsed()).toHaveLength(1);
    clock.advance(999);
    expect(q.takeUsed()).toHaveLength(0);
    clock.advance(1);
    expect(q.takeUsed()).toHaveLength(1);
    clock.advance(1000);
    expect(q.takeUsed()).toHaveLength(1);
  });
});

describe("virtio-net under a rate limit", () => {
  class Wire implements NetBackend {
    sent: Uint8Array[] = [];
    deliver: (frame: Uint8Array) => void = () => {};
    send(frame: Uint8Array): void {
      this.sent.push(frame);
    }
    onReceive(cb: (frame: Uint8Array) => void): void {
      this.deliver = cb;
    }
  }

  it("holds transmitted and received frames over the limit until the timer, dropping none", () => {
    const clock = new ManualTimers();
    const wire = new Wire();
    const net = new VirtioNet({
      backend: wire,
      txRateLimiter: new RateLimiter({ ops: { size: 1, refillTimeMs: 100 } }, clock),
      rxRateLimiter: new RateLimiter({ bandwidth: { size: 100, refillTimeMs: 100 } }, clock),
    });
    const ram = GuestMemory.allocate(RAM_BASE, 1 << 20);
    const mmio = new VirtioMmio({ device: net, ram, irq: new IrqLevel() });
    const drv = new MmioDriver(mmio, ram, new GuestAllocator(RAM_BASE, RAM_BASE + (1 << 20)));
    const [rx, tx] = drv.bringUp(2);
    for (let i = 0; i < 3; i++) tx!.post([{ out: new Uint8Array(12) }, { out: new Uint8Array(60).fill(i) }]);
    drv.kick(VIRTIO_NET_TX);
    expect(wire.sent).toHaveLength(1); // one frame per 100 ms
    clock.advance(100);
    expect(wire.sent).toHaveLength(2);
    clock.advance(100);
    expect(wire.sent.map((f) => f[0])).toEqual([0, 1, 2]);

    for (let i = 0; i < 3; i++) rx!.post([{ in: 1526 }]);
    drv.kick(VIRTIO_NET_RX);
    for (let i = 0; i < 3; i++) wire.deliver(new Uint8Array(60).fill(10 + i));
    expect(rx!.takeUsed()).toHaveLength(1); // 100 bytes per 100 ms: one 60-byte frame now
    expect(net.pendingFrames).toBe(2);
    clock.advance(60);
    clock.advance(60);
    const later = rx!.takeUsed();
    expect(later.map((u) => u.data[0]![12])).toEqual([11, 12]);
    expect(net.stats.rxDropped).toBe(0);
  });
});
