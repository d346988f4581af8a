import { describe, expect, it } from "vitest";
import { UNMAPPED } from "../src/bus.ts";
import { WIDTH_1, WIDTH_2, WIDTH_4, WIDTH_8 } from "../src/device.ts";
import { MmioBus } from "../src/mmio.ts";
import type { UnmappedAccess } from "../src/stats.ts";
import { Recording64Device, RecordingDevice } from "./recording-device.ts";

const BASE = 0x1000_0000;

function setup(widths?: number, length = 0x100) {
  const bus = new MmioBus();
  const dev = new RecordingDevice("dev", length, widths);
  bus.register(BASE, length, dev);
  return { bus, dev };
}

describe("MmioBus dispatch", () => {
  it("passes offsets relative to the device base", () => {
    const { bus, dev } = setup();
    expect(bus.write(BASE + 0x10, 4, 0xdeadbeef)).toBe(true);
    expect(bus.read(BASE + 0x10, 4)).toBe(0xdeadbeef);
    expect(bus.read(BASE + 0x12, 2)).toBe(0xdead);
    expect(bus.read(BASE + 0x13, 1)).toBe(0xde);
    expect(dev.calls).toEqual([
      { op: "write", offset: 0x10, size: 4, value: 0xdeadbeef },
      { op: "read", offset: 0x10, size: 4 },
      { op: "read", offset: 0x12, size: 2 },
      { op: "read", offset: 0x13, size: 1 },
    ]);
  });

  it("returns UNMAPPED for holes and false for unmapped writes", () => {
    const { bus, dev } = setup();
    expect(UNMAPPED).toBe(-1);
    expect(bus.read(BASE - 1, 1)).toBe(UNMAPPED);
    expect(bus.read(BASE + 0x100, 4)).toBe(UNMAPPED);
    expect(bus.read(0, 4)).toBe(UNMAPPED);
    expect(bus.write(BASE + 0x100, 1, 1)).toBe(false);
    expect(dev.calls).toEqual([]);
    expect(bus.stats()).toMatchObject({ unmappedReads: 3, unmappedWrites: 1 });
  });

  it("treats an access straddling the end of a range as unmapped, even into a neighbour", () => {
    const { bus, dev } = setup();
    const next = new RecordingDevice("next", 0x100);
    bus.register(BASE + 0x100, 0x100, next);
    expect(bus.read(BASE + 0xfe, 4)).toBe(UNMAPPED);
    expect(bus.write(BASE + 0xff, 2, 0xffff)).toBe(false);
    expect(bus.read64(BASE + 0xfc)).toBeUndefined();
    expect(bus.write64(BASE + 0xfc, 1n)).toBe(false);
    // Starting in a hole and ending inside a device is unmapped too.
    expect(bus.read(BASE - 2, 4)).toBe(UNMAPPED);
    expect(dev.calls).toEqual([]);
    expect(next.calls).toEqual([]);
    // The last bytes of the range are fine.
    expect(bus.read(BASE + 0xfc, 4)).toBe(0);
    expect(bus.read(BASE + 0xff, 1)).toBe(0);
  });

  it("truncates and unsigns values in both directions", () => {
    const bus = new MmioBus();
    const seen: number[] = [];
    bus.register(0x1000, 0x10, {
      name: "signed",
      read: (_o, size) => (size === 4 ? 0xffffffff | 0 : 0x1ff),
      write: (_o, _s, v) => {
        seen.push(v);
      },
    });
    expect(bus.read(0x1000, 4)).toBe(0xffffffff); // not -1, which would look UNMAPPED
    expect(bus.read(0x1000, 1)).toBe(0xff);
    expect(bus.read(0x1000, 2)).toBe(0x1ff);
    bus.write(0x1000, 4, -1);
    bus.write(0x1000, 1, 0x1234);
    bus.write(0x1000, 2, 0x12345678);
    expect(seen).toEqual([0xffffffff, 0x34, 0x5678]);
  });

  it("serves repeated hits and switches devices through the last-hit cache", () => {
    const bus = new MmioBus();
    const a = new RecordingDevice("a", 0x10);
    const b = new RecordingDevice("b", 0x10);
    bus.register(0x1000, 0x10, a);
    bus.register(0x2000, 0x10, b);
    for (let i = 0; i < 4; i++) {
      bus.write(0x1000 + i, 1, i + 1);
      bus.write(0x2000 + i, 1, i + 0x11);
    }
    expect(bus.read(0x1000, 4)).toBe(0x04030201);
    expect(bus.read(0x2000, 4)).toBe(0x14131211);
    expect(bus.read(0x1008, 4)).toBe(0);
  });

  it("reports unmapped accesses to the onUnmapped hook", () => {
    const seen: UnmappedAccess[] = [];
    const bus = new MmioBus({ onUnmapped: (a) => seen.push(a) });
    bus.read(0x10, 2);
    bus.write(0x20, 4, -1);
    bus.read64(0x30);
    bus.write64(0x40, -1n);
    expect(seen).toEqual([
      { bus: "mmio", kind: "read", addr: 0x10, size: 2 },
      { bus: "mmio", kind: "write", addr: 0x20, size: 4, value: 0xffffffff },
      { bus: "mmio", kind: "read", addr: 0x30, size: 8 },
      { bus: "mmio", kind: "write", addr: 0x40, size: 8, value: 0xffff_ffff_ffff_ffffn },
    ]);
  });
});

describe("MmioBus widths a device does not declare", () => {
  it("splits a 4-byte access to a 1-byte device into four ascending byte accesses", () => {
    const { bus, dev } = setup(WIDTH_1);
    expect(bus.write(BASE + 4, 4, 0x11223344)).toBe(true);
    expect(dev.calls).toEqual([
      { op: "write", offset: 4, size: 1, value: 0x44 },
      { op: "write", offset: 5, size: 1, value: 0x33 },
      { op: "write", offset: 6, size: 1, value: 0x22 },
      { op: "write", offset: 7, size: 1, value: 0x11 },
    ]);
    dev.calls.length = 0;
    expect(bus.read(BASE + 4, 4)).toBe(0x11223344);
    expect(bus.read(BASE + 6, 2)).toBe(0x1122);
    expect(dev.calls.map((c) => [c.offset, "size" in c ? c.size : 8])).toEqual([
      [4, 1],
      [5, 1],
      [6, 1],
      [7, 1],
      [6, 1],
      [7, 1],
    ]);
  });

  it("splits a 4-byte access to a 1+2-byte device into two 2-byte accesses", () => {
    const { bus, dev } = setup(WIDTH_1 | WIDTH_2);
    bus.write(BASE, 4, 0xcafef00d);
    expect(dev.calls).toEqual([
      { op: "write", offset: 0, size: 2, value: 0xf00d },
      { op: "write", offset: 2, size: 2, value: 0xcafe },
    ]);
    expect(bus.read(BASE, 4)).toBe(0xcafef00d);
  });

  it("splits a 2-byte access to a 1+4-byte device into bytes", () => {
    const { bus, dev } = setup(WIDTH_1 | WIDTH_4);
    bus.write(BASE, 2, 0xbeef);
    expect(dev.calls).toEqual([
      { op: "write", offset: 0, size: 1, value: 0xef },
      { op: "write", offset: 1, size: 1, value: 0xbe },
    ]);
    expect(bus.read(BASE, 2)).toBe(0xbeef);
  });

  it("refuses accesses narrower than the narrowest declared width", () => {
    const { bus, dev } = setup(WIDTH_4);
    expect(bus.read(BASE, 1)).toBe(UNMAPPED);
    expect(bus.read(BASE, 2)).toBe(UNMAPPED);
    expect(bus.write(BASE, 2, 1)).toBe(false);
    expect(dev.calls).toEqual([]);
    expect(bus.stats()).toMatchObject({ unmappedReads: 2, unmappedWrites: 1 });
    expect(bus.write(BASE, 4, 7)).toBe(true);
    expect(bus.read(BASE, 4)).toBe(7);
  });

  it("8-byte-only devices refuse 1, 2 and 4 byte accesses", () => {
    const bus = new MmioBus();
    const dev = new Recording64Device("wide", 0x10, WIDTH_8);
    bus.register(0, 0x10, dev);
    expect(bus.read(0, 4)).toBe(UNMAPPED);
    expect(bus.write(8, 1, 0)).toBe(false);
    expect(bus.write64(8, 0x0102030405060708n)).toBe(true);
    expect(bus.read64(8)).toBe(0x0102030405060708n);
    expect(dev.calls.map((c) => c.op)).toEqual(["write64", "read64"]);
  });
});

describe("MmioBus 8-byte accesses", () => {
  it("uses read64/write64 when the device declares WIDTH_8", () => {
    const bus = new MmioBus();
    const dev = new Recording64Device("d64", 0x20, WIDTH_4 | WIDTH_8);
    bus.register(0x8000, 0x20, dev);
    expect(bus.write64(0x8008, 0xfedcba9876543210n)).toBe(true);
    expect(bus.read64(0x8008)).toBe(0xfedcba9876543210n);
    expect(bus.read(0x800c, 4)).toBe(0xfedcba98);
    expect(dev.calls).toEqual([
      { op: "write64", offset: 8, value: 0xfedcba9876543210n },
      { op: "read64", offset: 8 },
      { op: "read", offset: 12, size: 4 },
    ]);
  });

  it("takes write64 values modulo 2^64 and unsigns read64 results", () => {
    const bus = new MmioBus();
    const dev = new Recording64Device("d64", 8);
    bus.register(0, 8, dev);
    bus.write64(0, -2n);
    expect(bus.read64(0)).toBe(0xffff_ffff_ffff_fffen);
    bus.write64(0, (1n << 64n) + 5n);
    expect(bus.read64(0)).toBe(5n);
    const signed = {
      name: "s",
      widths: WIDTH_8,
      read: () => 0,
      write: () => {},
      read64: () => -1n,
      write64: () => {},
    };
    bus.register(8, 8, signed);
    expect(bus.read64(8)).toBe(0xffff_ffff_ffff_ffffn);
  });

  it("splits into two 4-byte accesses, low half first, when WIDTH_8 is absent", () => {
    const { bus, dev } = setup();
    expect(bus.write64(BASE + 8, 0x1122334455667788n)).toBe(true);
    expect(bus.read64(BASE + 8)).toBe(0x1122334455667788n);
    expect(dev.calls).toEqual([
      { op: "write", offset: 8, size: 4, value: 0x55667788 },
      { op: "write", offset: 12, size: 4, value: 0x11223344 },
      { op: "read", offset: 8, size: 4 },
      { op: "read", offset: 12, size: 4 },
    ]);
  });

  it("splits further for a 1-byte device: eight byte accesses", () => {
    const { bus, dev } = setup(WIDTH_1);
    bus.write64(BASE, 0x0807060504030201n);
    expect(dev.calls.map((c) => (c.op === "write" ? [c.offset, c.value] : null))).toEqual([
      [0, 1],
      [1, 2],
      [2, 3],
      [3, 4],
      [4, 5],
      [5, 6],
      [6, 7],
      [7, 8],
    ]);
    expect(bus.read64(BASE)).toBe(0x0807060504030201n);
  });

  it("reports unmapped 8-byte accesses", () => {
    const { bus } = setup();
    expect(bus.read64(0)).toBeUndefined();
    expect(bus.write64(0, 1n)).toBe(false);
    expect(bus.stats()).toMatchObject({ unmappedReads: 1, unmappedWrites: 1 });
  });
});
