import { GuestMemory } from "@visor/memory";
import { describe, expect, it } from "vitest";
import { IrqLevel } from "../../src/irq.ts";
import { feature } from "../../src/virtio/constants.ts";
import { VirtioMmio } from "../../src/virtio/mmio.ts";
import {
  formatMac,
  parseMac,
  randomMac,
  VIRTIO_NET_F_MAC,
  VIRTIO_NET_RX,
  VIRTIO_NET_TX,
  VirtioNet,
} from "../../src/virtio/net.ts";
import { type NetBackend, NullNetBackend } from "../../src/virtio/net-backend.ts";
import { GuestAllocator, MmioDriver } from "../virtio-driver.ts";

const BASE = 0x8000_0000;

class FakeBackend implements NetBackend {
  sent: Uint8Array[] = [];
  deliver: (frame: Uint8Array) => void = () => {};
  send(frame: Uint8Array): void {
    this.sent.push(frame);
  }
  onReceive(cb: (frame: Uint8Array) => void): void {
    this.deliver = cb;
  }
}

function setup(rxQueueFrames?: number) {
  const ram = GuestMemory.allocate(BASE, 1 << 20);
  const backend = new FakeBackend();
  const net = new VirtioNet({
    backend,
    mac: "52:54:00:ab:cd:ef",
    ...(rxQueueFrames ? { rxQueueFrames } : {}),
  });
  const irq = new IrqLevel();
  const mmio = new VirtioMmio({ device: net, ram, irq });
  const drv = new MmioDriver(mmio, ram, new GuestAllocator(BASE, BASE + (1 << 20)));
  return { ram, backend, net, irq, drv };
}

const frame = (n: number, fill: number) => new Uint8Array(n).fill(fill);

describe("VirtioNet", () => {
  it("offers VIRTIO_NET_F_MAC and shows the MAC in config space", () => {
    const { drv } = setup();
    drv.bringUp(2);
    expect(drv.regs.read(0x008, 4)).toBe(1);
    expect(drv.features & feature(VIRTIO_NET_F_MAC)).not.toBe(0n);
    const mac = Array.from({ length: 6 }, (_, i) => drv.readConfig(i, 1));
    expect(formatMac(Uint8Array.from(mac))).toBe("52:54:00:ab:cd:ef");
  });

  it("transmits frames without the 12-byte header", () => {
    const { drv, backend } = setup();
    const [, tx] = drv.bringUp(2);
    tx!.post([{ out: new Uint8Array(12) }, { out: frame(60, 0x11) }]);
    const joined = new Uint8Array(12 + 42);
    joined.fill(0x22, 12);
    tx!.post([{ out: joined }]);
    drv.kick(VIRTIO_NET_TX);
    expect(backend.sent).toEqual([frame(60, 0x11), frame(42, 0x22)]);
    expect(tx!.takeUsed()).toHaveLength(2);
  });

  it("delivers received frames with a virtio_net_hdr_v1 (num_buffers = 1)", () => {
    const { drv, backend, irq, net } = setup();
    const [rx] = drv.bringUp(2);
    rx!.post([{ in: 1526 }]);
    drv.kick(VIRTIO_NET_RX);
    backend.deliver(frame(100, 0x33));
    expect(irq.level).toBe(true);
    const [u] = rx!.takeUsed();
    expect(u!.len).toBe(112);
    const d = u!.data[0]!;
    expect(Array.from(d.subarray(0, 12))).toEqual([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0]);
    expect(d.subarray(12, 112)).toEqual(frame(100, 0x33));
    expect(net.stats.rxFrames).toBe(1);
  });

  it("queues frames while the guest has no buffers and delivers them when buffers arrive", () => {
    const { drv, backend, net } = setup(2);
    const [rx] = drv.bringUp(2);
    backend.deliver(frame(10, 1));
    backend.deliver(frame(10, 2));
    backend.deliver(frame(10, 3)); // queue of 2 is full: dropped
    expect(net.pendingFrames).toBe(2);
    expect(net.stats.rxDropped).toBe(1);
    rx!.post([{ in: 1526 }]);
    rx!.post([{ in: 1526 }]);
    rx!.post([{ in: 1526 }]);
    drv.kick(VIRTIO_NET_RX);
    const used = rx!.takeUsed();
    expect(used.map((u) => u.data[0]![12])).toEqual([1, 2]);
    expect(net.pendingFrames).toBe(0);
  });

  it("drops a frame too big for the next buffer but keeps the buffer", () => {
    const { drv, backend, net } = setup();
    const [rx] = drv.bringUp(2);
    rx!.post([{ in: 100 }]);
    drv.kick(VIRTIO_NET_RX);
    backend.deliver(frame(200, 1));
    expect(net.stats.rxDropped).toBe(1);
    backend.deliver(frame(50, 2));
    const [u] = rx!.takeUsed();
    expect(u!.len).toBe(62);
  });

  it("drops frames while the driver is not running", () => {
    const { backend, net } = setup();
    backend.deliver(frame(60, 1));
    expect(net.stats.rxDropped).toBe(1);
    expect(net.pendingFrames).toBe(0);
  });

  it("parses and makes MAC addresses", () => {
    expect(Array.from(parseMac("02-00-00-00-00-01"))).toEqual([2, 0, 0, 0, 0, 1]);
    expect(() => parseMac("52:54:00:12:34")).toThrow(/bad MAC address/);
    const m = randomMac(() => 0.5);
    expect(formatMac(m)).toBe("52:54:00:80:80:80");
  });

  it("works with the null backend and has no state to save", () => {
    const b = new NullNetBackend();
    const ram = GuestMemory.allocate(BASE, 1 << 20);
    const net = new VirtioNet({ backend: b });
    const drv = new MmioDriver(
      new VirtioMmio({ device: net, ram }),
      ram,
      new GuestAllocator(BASE, BASE + (1 << 20)),
    );
    const [, tx] = drv.bringUp(2);
    tx!.post([{ out: new Uint8Array(12 + 60) }]);
    drv.kick(VIRTIO_NET_TX);
    expect(b.framesSent).toBe(1);
    net.fromState(net.toState());
    expect(net.toState()).toEqual({});
  });
});
