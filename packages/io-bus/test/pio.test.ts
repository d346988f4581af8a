import { describe, expect, it } from "vitest";
import { WIDTH_1, WIDTH_4 } from "../src/device.ts";
import { PortBus } from "../src/pio.ts";
import type { UnmappedAccess } from "../src/stats.ts";
import { RecordingDevice } from "./recording-device.ts";

describe("PortBus", () => {
  it("dispatches port accesses with offsets relative to the device", () => {
    const bus = new PortBus();
    const com1 = new RecordingDevice("com1", 8, WIDTH_1);
    bus.register(0x3f8, 8, com1);
    expect(bus.write(0x3f8, 1, 0x41)).toBe(true);
    expect(bus.read(0x3fd, 1)).toBe(0);
    expect(com1.calls).toEqual([
      { op: "write", offset: 0, size: 1, value: 0x41 },
      { op: "read", offset: 5, size: 1 },
    ]);
  });

  it("reads all ones from unmapped ports, never UNMAPPED, and counts them", () => {
    const bus = new PortBus();
    expect(bus.read(0x80, 1)).toBe(0xff);
    expect(bus.read(0x80, 2)).toBe(0xffff);
    expect(bus.read(0x80, 4)).toBe(0xffffffff);
    expect(bus.stats()).toMatchObject({ unmappedReads: 3, unmappedWrites: 0 });
  });

  it("ignores unmapped writes, reporting false", () => {
    const bus = new PortBus();
    expect(bus.write(0x80, 1, 0x12)).toBe(false);
    expect(bus.stats().unmappedWrites).toBe(1);
  });

  it("treats straddling accesses, narrow-width refusals and ports past 0xffff as unmapped", () => {
    const seen: UnmappedAccess[] = [];
    const bus = new PortBus({ onUnmapped: (a) => seen.push(a) });
    const top = new RecordingDevice("top", 4, WIDTH_4);
    bus.register(0xfffc, 4, top);
    expect(bus.read(0xfffe, 4)).toBe(0xffffffff); // runs past 0xffff
    expect(bus.read(0xfffc, 1)).toBe(0xff); // narrower than the device accepts
    expect(bus.read(0x10000, 1)).toBe(0xff); // not a port
    expect(bus.write(0xfffd, 2, 1)).toBe(false);
    expect(top.calls).toEqual([]);
    expect(seen.map((a) => [a.kind, a.addr, a.size])).toEqual([
      ["read", 0xfffe, 4],
      ["read", 0xfffc, 1],
      ["read", 0x10000, 1],
      ["write", 0xfffd, 2],
    ]);
    expect(bus.read(0xfffc, 4)).toBe(0);
  });

  it("splits wide port accesses to a byte-wide device", () => {
    const bus = new PortBus();
    const dev = new RecordingDevice("b", 4, WIDTH_1);
    bus.register(0x100, 4, dev);
    bus.write(0x100, 2, 0xabcd);
    expect(bus.read(0x100, 2)).toBe(0xabcd);
    expect(dev.calls.map((c) => c.offset)).toEqual([0, 1, 0, 1]);
  });
});
