/// <reference types="node" />
import { connect, type Socket } from "node:net";
import { GuestMemory } from "@visor/memory";
import { afterEach, describe, expect, it } from "vitest";
import { IrqLevel } from "../../src/irq.ts";
import {
  openSocketNetBackend,
  SocketNetBackend,
  type SocketNetEvent,
} from "../../src/node/socket-net-backend.ts";
import { VirtioMmio } from "../../src/virtio/mmio.ts";
import { VIRTIO_NET_RX, VIRTIO_NET_TX, VirtioNet } from "../../src/virtio/net.ts";
import { GuestAllocator, MmioDriver } from "../virtio-driver.ts";

const open: SocketNetBackend[] = [];
const sockets: Socket[] = [];
afterEach(async () => {
  for (const s of sockets.splice(0)) s.destroy();
  await Promise.all(open.splice(0).map((b) => b.close()));
});

/** Resolve with the next `n` frames a backend receives. */
function frames(b: SocketNetBackend, n: number): Promise<Uint8Array[]> {
  const got: Uint8Array[] = [];
  return new Promise((resolve) => {
    b.onReceive((f) => {
      got.push(f);
      if (got.length === n) resolve(got);
    });
  });
}

function event(events: SocketNetEvent[], kind: SocketNetEvent["kind"], count = 1): Promise<void> {
  return new Promise((resolve) => {
    const check = () => {
      if (events.filter((e) => e.kind === kind).length >= count) resolve();
      else setImmediate(check);
    };
    check();
  });
}

async function listener(events: SocketNetEvent[] = []) {
  const l = await SocketNetBackend.listen(0, { host: "127.0.0.1", onEvent: (e) => events.push(e) });
  open.push(l);
  return { l, port: l.listeningPort! };
}

function rawPeer(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: "127.0.0.1", port }, () => resolve(s));
    s.once("error", reject);
    sockets.push(s);
  });
}

describe("SocketNetBackend (QEMU -netdev socket stream framing)", () => {
  it("carries frames both ways between a listener and a connector", async () => {
    const events: SocketNetEvent[] = [];
    const { l, port } = await listener(events);
    const c = await SocketNetBackend.connect("127.0.0.1", port);
    open.push(c);
    await event(events, "connected");
    const atListener = frames(l, 2);
    c.send(Uint8Array.of(1, 2, 3));
    c.send(new Uint8Array(1500).fill(7));
    const got = await atListener;
    expect(Array.from(got[0]!)).toEqual([1, 2, 3]);
    expect(got[1]!.length).toBe(1500);
    const atConnector = frames(c, 1);
    l.send(Uint8Array.of(9));
    expect(Array.from((await atConnector)[0]!)).toEqual([9]);
    expect(c.stats.framesSent).toBe(2);
    expect(l.stats.framesReceived).toBe(2);
  });

  it("writes a 4-byte big-endian length before each frame and reassembles split input", async () => {
    const { l, port } = await listener();
    const peer = await rawPeer(port);
    const received = new Promise<Buffer>((resolve) => peer.once("data", resolve));
    const got = frames(l, 2);
    // One frame split across writes, then a frame glued to the next length prefix.
    const wire = Buffer.from([0, 0, 0, 3, 0xa, 0xb, 0xc, 0, 0, 0, 1, 0xd]);
    peer.write(wire.subarray(0, 2));
    await new Promise((r) => setImmediate(r));
    peer.write(wire.subarray(2, 6));
    await new Promise((r) => setImmediate(r));
    peer.write(wire.subarray(6));
    const fs = await got;
    expect(fs.map((f) => Array.from(f))).toEqual([[0xa, 0xb, 0xc], [0xd]]);
    l.send(Uint8Array.of(0x42, 0x43));
    expect(Array.from(await received)).toEqual([0, 0, 0, 2, 0x42, 0x43]);
  });

  it("serves one peer at a time and drops a peer that sends an oversized length", async () => {
    const events: SocketNetEvent[] = [];
    const { port } = await listener(events);
    const first = await rawPeer(port);
    await event(events, "connected");
    const second = await rawPeer(port);
    await new Promise((r) => second.once("close", r));
    expect(events.some((e) => e.kind === "rejected")).toBe(true);
    first.write(Buffer.from([0xff, 0xff, 0xff, 0xff]));
    await new Promise((r) => first.once("close", r));
    expect(events.some((e) => e.kind === "error" && /exceeds/.test(e.message))).toBe(true);
    await event(events, "disconnected");
  });

  it("drops frames while no peer is connected", async () => {
    const { l } = await listener();
    l.send(Uint8Array.of(1));
    expect(l.stats.framesDropped).toBe(1);
    expect(l.connected).toBe(false);
  });

  it("parses QEMU-style options with clear errors", async () => {
    await expect(openSocketNetBackend("listen")).rejects.toThrow(/expected listen=PORT or connect=HOST:PORT/);
    await expect(openSocketNetBackend("connect=1234")).rejects.toThrow(/connect needs HOST:PORT/);
    await expect(openSocketNetBackend("listen=99999")).rejects.toThrow(/bad TCP port/);
    const l = await openSocketNetBackend("listen=127.0.0.1:0");
    open.push(l);
    expect(l.listeningPort).toBeGreaterThan(0);
    await expect(openSocketNetBackend(`connect=127.0.0.1:${await closedPort()}`)).rejects.toThrow(
      /cannot connect to/,
    );
  });
});

describe("two virtio-net devices on one socket LAN", () => {
  it("deliver a frame transmitted by one guest into the other guest's receive buffer", async () => {
    const events: SocketNetEvent[] = [];
    const { l, port } = await listener(events);
    const c = await SocketNetBackend.connect("127.0.0.1", port);
    open.push(c);
    await event(events, "connected");
    const vm = (backend: SocketNetBackend, mac: string) => {
      const ram = GuestMemory.allocate(0x8000_0000, 1 << 20);
      const irq = new IrqLevel();
      const net = new VirtioNet({ backend, mac });
      const drv = new MmioDriver(
        new VirtioMmio({ device: net, ram, irq }),
        ram,
        new GuestAllocator(0x8000_0000, 0x8010_0000),
      );
      const [rx, tx] = drv.bringUp(2);
      return { irq, drv, rx: rx!, tx: tx! };
    };
    const a = vm(l, "52:54:00:00:00:01");
    const b = vm(c, "52:54:00:00:00:02");
    b.rx.post([{ in: 1526 }]);
    b.drv.kick(VIRTIO_NET_RX);
    const eth = new Uint8Array(12 + 60);
    eth.set([0x52, 0x54, 0, 0, 0, 2, 0x52, 0x54, 0, 0, 0, 1, 0x08, 0x06], 12);
    a.tx.post([{ out: eth }]);
    a.drv.kick(VIRTIO_NET_TX);
    await new Promise<void>((resolve) => {
      const check = () => (b.irq.level ? resolve() : setImmediate(check));
      check();
    });
    const [u] = b.rx.takeUsed();
    expect(u!.len).toBe(72);
    expect(u!.data[0]!.subarray(12, 72)).toEqual(eth.subarray(12));
  });
});

/** A port with nothing listening on it. */
async function closedPort(): Promise<number> {
  const b = await SocketNetBackend.listen(0, { host: "127.0.0.1" });
  const p = b.listeningPort!;
  await b.close();
  return p;
}
