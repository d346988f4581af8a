import { describe, expect, it } from "vitest";
import { WIDTH_1 } from "../src/device.ts";
import { IoManager } from "../src/manager.ts";
import { MmioBus } from "../src/mmio.ts";
import { Recording64Device, RecordingDevice } from "./recording-device.ts";

function busWithTwo() {
  const bus = new MmioBus();
  bus.register(0x1000, 0x100, new RecordingDevice("uart0", 0x100, WIDTH_1));
  bus.register(0x2000, 0x100, new Recording64Device("rtc", 0x100, 0xf));
  return bus;
}

describe("statistics", () => {
  it("counts nothing until enabled (except unmapped accesses)", () => {
    const bus = busWithTwo();
    bus.read(0x1000, 1);
    bus.write(0x2000, 4, 1);
    bus.read(0x9000, 4);
    const s = bus.stats();
    expect(s).toMatchObject({ bus: "mmio", enabled: false, reads: 0, writes: 0, unmappedReads: 1 });
    expect(s.devices.map((d) => d.reads + d.writes)).toEqual([0, 0]);
  });

  it("swaps the read/write paths instead of testing a flag", () => {
    const bus = new MmioBus();
    const plainRead = bus.read;
    const plainWrite = bus.write;
    bus.enableStats();
    expect(bus.read).not.toBe(plainRead);
    expect(bus.write).not.toBe(plainWrite);
    bus.disableStats();
    expect(bus.read).toBe(plainRead);
    expect(bus.write).toBe(plainWrite);
  });

  it("counts guest accesses per device and per bus once enabled", () => {
    const bus = busWithTwo();
    bus.enableStats();
    expect(bus.statsEnabled).toBe(true);
    bus.read(0x1000, 1);
    bus.read(0x1004, 4); // split into 4 byte reads, but one guest access of 4 bytes
    bus.write(0x1000, 2, 0xffff);
    bus.write64(0x2008, 1n);
    bus.read64(0x2008);
    bus.read(0x2000, 2);
    bus.read(0x3000, 4); // unmapped
    bus.write(0x20fe, 4, 0); // straddles the end: unmapped
    const s = bus.stats();
    expect(s).toMatchObject({
      enabled: true,
      reads: 4,
      writes: 2,
      bytesRead: 1 + 4 + 8 + 2,
      bytesWritten: 2 + 8,
      listenerWrites: 0,
      unmappedReads: 1,
      unmappedWrites: 1,
    });
    expect(s.devices).toEqual([
      {
        name: "uart0",
        base: 0x1000,
        length: 0x100,
        reads: 2,
        writes: 1,
        bytesRead: 5,
        bytesWritten: 2,
        listenerWrites: 0,
      },
      {
        name: "rtc",
        base: 0x2000,
        length: 0x100,
        reads: 2,
        writes: 1,
        bytesRead: 10,
        bytesWritten: 8,
        listenerWrites: 0,
      },
    ]);
  });

  it("does not count a refused narrow access as a device access", () => {
    const bus = new MmioBus();
    bus.register(0, 0x10, new RecordingDevice("w4", 0x10, 4));
    bus.enableStats();
    bus.read(0, 1);
    bus.write(0, 2, 0);
    expect(bus.stats()).toMatchObject({ reads: 0, writes: 0, unmappedReads: 1, unmappedWrites: 1 });
  });

  it("keeps counts across disable/enable and zeroes them on reset", () => {
    const bus = busWithTwo();
    bus.enableStats();
    bus.read(0x1000, 1);
    bus.disableStats();
    bus.read(0x1000, 1);
    expect(bus.stats()).toMatchObject({ enabled: false, reads: 1 });
    bus.enableStats();
    bus.read(0x1000, 1);
    expect(bus.stats().reads).toBe(2);
    bus.read(0x5000, 1);
    bus.resetStats();
    const s = bus.stats();
    expect(s).toMatchObject({ reads: 0, bytesRead: 0, unmappedReads: 0 });
    expect(s.devices.every((d) => d.reads === 0)).toBe(true);
  });

  it("returns a snapshot that later accesses do not change", () => {
    const bus = busWithTwo();
    bus.enableStats();
    const before = bus.stats();
    bus.read(0x1000, 1);
    expect(before.reads).toBe(0);
    expect(before.devices[0]?.reads).toBe(0);
  });

  it("keeps bus totals when a device is unregistered", () => {
    const bus = busWithTwo();
    bus.enableStats();
    bus.read(0x1000, 1);
    bus.unregister(0x1000);
    const s = bus.stats();
    expect(s.reads).toBe(1);
    expect(s.devices.map((d) => d.name)).toEqual(["rtc"]);
  });
});

describe("IoManager", () => {
  it("holds both buses and drives their statistics together", () => {
    const io = new IoManager();
    io.mmio.register(0x1000_0000, 0x100, new RecordingDevice("uart0", 0x100));
    io.pio.register(0x3f8, 8, new RecordingDevice("com1", 8));
    io.enableStats();
    io.mmio.write(0x1000_0000, 1, 0x41);
    io.pio.write(0x3f8, 1, 0x42);
    io.pio.read(0x80, 1);
    const s = io.stats();
    expect(s.mmio).toMatchObject({ bus: "mmio", writes: 1, bytesWritten: 1 });
    expect(s.pio).toMatchObject({ bus: "pio", writes: 1, unmappedReads: 1 });
    expect(s.pio.devices[0]).toMatchObject({ name: "com1", writes: 1 });
    io.resetStats();
    expect(io.stats().pio.writes).toBe(0);
    io.disableStats();
    expect(io.mmio.statsEnabled || io.pio.statsEnabled).toBe(false);
  });

  it("passes the unmapped hook to both buses", () => {
    const seen: string[] = [];
    const io = new IoManager({ onUnmapped: (a) => seen.push(`${a.bus}:${a.kind}:${a.addr.toString(16)}`) });
    io.mmio.read(0x1234, 4);
    io.pio.write(0x70, 1, 0);
    expect(seen).toEqual(["mmio:read:1234", "pio:write:70"]);
  });
});
