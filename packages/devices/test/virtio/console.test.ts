import { GuestMemory } from "@visor/memory";
import { describe, expect, it } from "vitest";
import { IrqLevel } from "../../src/irq.ts";
import { VIRTIO_CONSOLE_RX, VIRTIO_CONSOLE_TX, VirtioConsole } from "../../src/virtio/console.ts";
import { VirtioMmio } from "../../src/virtio/mmio.ts";
import { GuestAllocator, MmioDriver } from "../virtio-driver.ts";

const BASE = 0x8000_0000;
const text = (s: string) => new TextEncoder().encode(s);

function setup(inputCapacity = 4096) {
  const ram = GuestMemory.allocate(BASE, 1 << 20);
  const out: string[] = [];
  const con = new VirtioConsole({
    output: (b) => {
      out.push(new TextDecoder().decode(b));
    },
    inputCapacity,
  });
  const irq = new IrqLevel();
  const mmio = new VirtioMmio({ device: con, ram, irq });
  const drv = new MmioDriver(mmio, ram, new GuestAllocator(BASE, BASE + (1 << 20)));
  return { ram, con, irq, mmio, drv, out };
}

describe("VirtioConsole", () => {
  it("is device 3 with a receive and a transmit queue", () => {
    const { drv } = setup();
    const qs = drv.bringUp(2);
    expect(qs).toHaveLength(2);
    expect(drv.regs.read(0x008, 4)).toBe(3);
  });

  it("sends what the guest transmits to the output", () => {
    const { drv, out, irq } = setup();
    const [, tx] = drv.bringUp(2);
    tx!.post([{ out: text("hello ") }, { out: text("world") }]);
    tx!.post([{ out: text("!\n") }]);
    drv.kick(VIRTIO_CONSOLE_TX);
    expect(out.join("")).toBe("hello world!\n");
    expect(tx!.takeUsed().map((u) => u.len)).toEqual([0, 0]);
    expect(irq.level).toBe(true);
  });

  it("holds input until the guest posts receive buffers, then fills them in order", () => {
    const { drv, con } = setup();
    const [rx] = drv.bringUp(2);
    expect(con.pushInput(text("abcdefgh"))).toBe(8);
    rx!.post([{ in: 3 }]);
    rx!.post([{ in: 100 }]);
    drv.kick(VIRTIO_CONSOLE_RX);
    const used = rx!.takeUsed();
    expect(used.map((u) => u.len)).toEqual([3, 5]);
    expect(new TextDecoder().decode(used[0]!.data[0])).toBe("abc");
    expect(new TextDecoder().decode(used[1]!.data[0]!.subarray(0, 5))).toBe("defgh");
    rx!.post([{ in: 10 }]);
    drv.kick(VIRTIO_CONSOLE_RX);
    expect(rx!.takeUsed()).toHaveLength(0);
    con.pushInput(text("x"));
    expect(rx!.takeUsed()[0]!.len).toBe(1);
  });

  it("bounds its input buffer", () => {
    const { con } = setup(4);
    expect(con.pushInput(text("abcdef"))).toBe(4);
    expect(con.inputFree).toBe(0);
  });

  it("round-trips its state (buffered input)", () => {
    const a = setup();
    a.con.pushInput(text("pending"));
    const b = setup();
    b.con.fromState(JSON.parse(JSON.stringify(a.con.toState())));
    expect(b.con.toState()).toEqual(a.con.toState());
    expect(() => b.con.fromState({ input: [300] })).toThrow(/virtio-console state: input/);
  });
});
