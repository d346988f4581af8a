import { describe, expect, it } from "vitest";
import type { BusDevice } from "../src/device.ts";
import { WIDTH_1, WIDTH_4, WIDTH_8 } from "../src/device.ts";
import { MMIO_LIMIT, MmioBus } from "../src/mmio.ts";
import { PORT_LIMIT, PortBus } from "../src/pio.ts";
import { RecordingDevice } from "./recording-device.ts";

describe("registration", () => {
  it("refuses an overlap, naming both devices and ranges", () => {
    const bus = new MmioBus();
    bus.register(0x1000_0000, 0x100, new RecordingDevice("uart0", 0x100));
    expect(() => bus.register(0x1000_0080, 0x100, new RecordingDevice("uart1", 0x100))).toThrow(
      'MMIO: cannot register "uart1" at [0x10000080, 0x10000180): overlaps "uart0" at [0x10000000, 0x10000100)',
    );
    // Overlap with the following range, and an exact duplicate.
    expect(() => bus.register(0x0fff_ff00, 0x101, new RecordingDevice("low", 0x101))).toThrow(
      /overlaps "uart0"/,
    );
    expect(() => bus.register(0x1000_0000, 0x100, new RecordingDevice("dup", 0x100))).toThrow(
      /overlaps "uart0"/,
    );
    // Touching ranges do not overlap.
    bus.register(0x0fff_ff00, 0x100, new RecordingDevice("below", 0x100));
    bus.register(0x1000_0100, 0x100, new RecordingDevice("above", 0x100));
    expect(bus.ranges().map((r) => r.device.name)).toEqual(["below", "uart0", "above"]);
  });

  it("port overlap messages use port numbers", () => {
    const bus = new PortBus();
    bus.register(0x3f8, 8, new RecordingDevice("com1", 8));
    expect(() => bus.register(0x3fc, 8, new RecordingDevice("x", 8))).toThrow(
      'PIO: cannot register "x" at [0x03fc, 0x0404): overlaps "com1" at [0x03f8, 0x0400)',
    );
  });

  it("validates base, length and the device", () => {
    const bus = new MmioBus();
    const d = () => new RecordingDevice("d", 16);
    expect(() => bus.register(-1, 16, d())).toThrow(/base of "d" must be an integer/);
    expect(() => bus.register(1.5, 16, d())).toThrow(/base of "d"/);
    expect(() => bus.register(MMIO_LIMIT, 16, d())).toThrow(/base of "d"/);
    expect(() => bus.register(0, 0, d())).toThrow(/length of "d"/);
    expect(() => bus.register(MMIO_LIMIT - 8, 16, d())).toThrow(/length of "d"/);
    expect(() => bus.register(0, 16, { name: "", read: () => 0, write: () => {} })).toThrow(
      /non-empty string name/,
    );
    expect(() => bus.register(0, 16, { name: "x" } as unknown as BusDevice)).toThrow(
      /read\(\) and write\(\)/,
    );
    expect(() => bus.register(0, 16, null as unknown as BusDevice)).toThrow(/needs a device object/);
    expect(() => bus.register(0, 16, new RecordingDevice("w0", 16, 0))).toThrow(/declares widths 0/);
    expect(() => bus.register(0, 16, new RecordingDevice("w16", 16, 16))).toThrow(/declares widths 16/);
    expect(() => bus.register(0, 16, new RecordingDevice("w8", 16, WIDTH_8))).toThrow(
      /lacks read64\(\) or write64\(\)/,
    );
    expect(bus.deviceCount).toBe(0);
    // The very last byte of the address space is usable.
    bus.register(MMIO_LIMIT - 16, 16, d());
    expect(bus.deviceAt(MMIO_LIMIT - 1)?.device.name).toBe("d");
  });

  it("keeps the port window inside 16 bits", () => {
    const bus = new PortBus();
    expect(() => bus.register(0xfff8, 16, new RecordingDevice("big", 16))).toThrow(
      /ending at or below 0x10000/,
    );
    expect(() => bus.register(PORT_LIMIT, 1, new RecordingDevice("p", 1))).toThrow(/base of "p"/);
    bus.register(0xfff8, 8, new RecordingDevice("top", 8));
    expect(bus.deviceAt(0xffff)?.device.name).toBe("top");
  });

  it("refuses an 8-byte-only device on the port bus", () => {
    const bus = new PortBus();
    const dev = {
      name: "q",
      widths: WIDTH_8,
      read: () => 0,
      write: () => {},
      read64: () => 0n,
      write64: () => {},
    };
    expect(() => bus.register(0, 8, dev)).toThrow(/only 8-byte accesses/);
  });

  it("refuses registering the same device object twice", () => {
    const bus = new MmioBus();
    const dev = new RecordingDevice("twice", 16);
    bus.register(0x1000, 16, dev);
    expect(() => bus.register(0x2000, 16, dev)).toThrow(
      'MMIO: device "twice" is already registered at [0x00001000, 0x00001010)',
    );
  });

  it("unregisters by device or by base and forgets the last-hit cache", () => {
    const bus = new MmioBus();
    const a = new RecordingDevice("a", 0x10);
    const b = new RecordingDevice("b", 0x10);
    bus.register(0x1000, 0x10, a);
    bus.register(0x2000, 0x10, b);
    expect(bus.read(0x1000, 1)).toBe(0); // a is now the last hit
    expect(bus.unregister(a)).toBe(a);
    expect(bus.read(0x1000, 1)).toBe(-1);
    expect(bus.unregister(0x2000)).toBe(b);
    expect(bus.deviceCount).toBe(0);
    expect(() => bus.unregister(0x2000)).toThrow("MMIO: no device is registered at base 0x00002000");
    expect(() => bus.unregister(a)).toThrow('MMIO: device "a" is not registered');
    bus.register(0x1000, 0x10, b); // the range and the device can be reused
    expect(bus.deviceAt(0x100f)?.device).toBe(b);
  });

  it("unregister by base needs the exact base", () => {
    const bus = new PortBus();
    bus.register(0x60, 8, new RecordingDevice("kbd", 8));
    expect(() => bus.unregister(0x61)).toThrow("PIO: no device is registered at base 0x0061");
  });

  it("deviceAt and ranges describe the map", () => {
    const bus = new MmioBus();
    bus.register(0x3000, 0x1000, new RecordingDevice("c", 0x1000));
    bus.register(0x1000, 0x1000, new RecordingDevice("a", 0x1000));
    expect(bus.deviceAt(0x0fff)).toBeUndefined();
    expect(bus.deviceAt(0x2000)).toBeUndefined();
    expect(bus.deviceAt(0x3fff)).toMatchObject({ base: 0x3000, length: 0x1000 });
    expect(bus.ranges().map((r) => [r.base, r.length, r.device.name])).toEqual([
      [0x1000, 0x1000, "a"],
      [0x3000, 0x1000, "c"],
    ]);
  });

  it("rejects invalid access sizes with a clear error", () => {
    const bus = new MmioBus();
    bus.register(0, 16, new RecordingDevice("d", 16));
    expect(() => bus.read(0, 3 as 1)).toThrow("MMIO: read size must be 1, 2 or 4 bytes, got 3");
    expect(() => bus.write(0, 8 as 4, 0)).toThrow("MMIO: write size must be 1, 2 or 4 bytes, got 8");
    expect(() => bus.read(0x100, 3 as 1)).toThrow(/read size must be 1, 2 or 4/);
    bus.enableStats();
    expect(() => bus.read(0, 3 as 1)).toThrow(/read size must be 1, 2 or 4/);
    expect(() => bus.write(0, 0 as 1, 0)).toThrow(/write size must be 1, 2 or 4/);
  });

  it("finds the right device among many (binary search)", () => {
    const bus = new MmioBus();
    const devs: RecordingDevice[] = [];
    for (let i = 0; i < 100; i++) {
      const d = new RecordingDevice(`d${i}`, 0x10, WIDTH_1 | WIDTH_4);
      d.bytes[0] = i;
      devs.push(d);
      bus.register(0x10_0000 + ((i * 37) % 100) * 0x100, 0x10, d);
    }
    for (let i = 0; i < 100; i++) {
      expect(bus.read(0x10_0000 + ((i * 37) % 100) * 0x100, 1)).toBe(i);
      expect(bus.read(0x10_0000 + ((i * 37) % 100) * 0x100 + 0x10, 1)).toBe(-1);
    }
  });
});
