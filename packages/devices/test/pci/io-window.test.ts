import { type BusDevice, IoManager, PORT_LIMIT } from "@visor/io-bus";
import { GuestMemory } from "@visor/memory";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { PciHostBridge } from "../../src/pci/host.ts";
import { PciIoWindow } from "../../src/pci/io-window.ts";
import { VirtioBlk } from "../../src/virtio/blk.ts";
import { MemoryBlockBackend } from "../../src/virtio/block-backend.ts";
import { VirtioPciLegacy } from "../../src/virtio/pci-legacy.ts";

const WIN = 0x0300_0000;
const ECAM = 0x3000_0000;

/** A port device that records every call as the absolute port range it touched. */
class PortSpy implements BusDevice {
  readonly name: string;
  readonly base: number;
  readonly length: number;
  readonly touched: { port: number; size: number }[];
  constructor(name: string, base: number, length: number, touched: { port: number; size: number }[]) {
    this.name = name;
    this.base = base;
    this.length = length;
    this.touched = touched;
  }
  read(offset: number, size: number): number {
    this.touched.push({ port: this.base + offset, size });
    return 0x5a;
  }
  write(offset: number, size: number): void {
    this.touched.push({ port: this.base + offset, size });
  }
}

describe("PciIoWindow", () => {
  it("forwards each access to port = offset with the same width", () => {
    const io = new IoManager();
    const touched: { port: number; size: number }[] = [];
    io.pio.register(0x3f8, 8, new PortSpy("com1", 0x3f8, 8, touched));
    io.mmio.register(WIN, 0x10000, new PciIoWindow({ pio: io.pio }));
    expect(io.mmio.read(WIN + 0x3f8, 1)).toBe(0x5a);
    io.mmio.write(WIN + 0x3fc, 4, 1);
    expect(touched).toEqual([
      { port: 0x3f8, size: 1 },
      { port: 0x3fc, size: 4 },
    ]);
  });

  it("reads all ones from unused ports (a master abort), never an MMIO fault", () => {
    const io = new IoManager();
    io.mmio.register(WIN, 0x10000, new PciIoWindow({ pio: io.pio }));
    expect(io.mmio.read(WIN, 4)).toBe(0xffff_ffff);
    expect(io.mmio.read(WIN + 0xffff, 1)).toBe(0xff);
    expect(io.mmio.write(WIN + 0x80, 2, 1)).toBe(true);
    expect(io.mmio.read64(WIN + 0xfff8)).toBe(0xffff_ffff_ffff_ffffn);
  });

  it("counts port traffic on the port bus's statistics", () => {
    const io = new IoManager();
    io.enableStats();
    io.pio.register(0x100, 4, new PortSpy("p", 0x100, 4, []));
    io.mmio.register(WIN, 0x10000, new PciIoWindow({ pio: io.pio }));
    io.mmio.read(WIN + 0x100, 2);
    io.mmio.write(WIN + 0x102, 1, 3);
    const s = io.stats();
    expect(s.pio.devices).toMatchObject([{ name: "p", reads: 1, writes: 1 }]);
    expect(s.mmio.devices.find((d) => d.name === "pci-io")).toMatchObject({ reads: 1, writes: 1 });
  });

  it("refuses a size beyond the port space", () => {
    expect(() => new PciIoWindow({ pio: new IoManager().pio, size: 0x10001 })).toThrow(/0x10000/);
  });

  it("no access through the window reaches a port outside [0, 0x10000) (property)", () => {
    const access = fc.record({
      // Around and inside the window, including accesses straddling either edge.
      addr: fc.oneof(
        fc.integer({ min: WIN - 16, max: WIN + 0x10010 }),
        fc.integer({ min: WIN + 0xfff0, max: WIN + 0x10010 }),
        fc.integer({ min: 0, max: 0x1_0000_0000 }),
      ),
      size: fc.constantFrom(1, 2, 4, 8),
      write: fc.boolean(),
      value: fc.nat({ max: 0xffff_ffff }),
    });
    const device = fc.record({ base: fc.nat({ max: 0xffff }), length: fc.integer({ min: 1, max: 0x2000 }) });
    fc.assert(
      fc.property(
        fc.array(device, { maxLength: 6 }),
        fc.array(access, { maxLength: 40, size: "max" }),
        (devs, accesses) => {
          // Every port access, by a device or unmapped, in order.
          const touched: { port: number; size: number }[] = [];
          const io = new IoManager({
            onUnmapped: (e) => {
              if (e.bus === "pio") touched.push({ port: e.addr, size: e.size });
            },
          });
          devs.forEach((d, i) => {
            const length = Math.min(d.length, PORT_LIMIT - d.base);
            try {
              io.pio.register(d.base, length, new PortSpy(`p${i}`, d.base, length, touched));
            } catch {
              // overlapping random ranges: skip that one
            }
          });
          io.mmio.register(WIN, 0x10000, new PciIoWindow({ pio: io.pio }));
          for (const a of accesses) {
            const before = touched.length;
            const inside = a.addr >= WIN && a.addr + a.size <= WIN + 0x10000;
            if (a.size === 8) {
              if (a.write) io.mmio.write64(a.addr, BigInt(a.value) * 3n);
              else io.mmio.read64(a.addr);
            } else if (a.write) io.mmio.write(a.addr, a.size as 1 | 2 | 4, a.value);
            else io.mmio.read(a.addr, a.size as 1 | 2 | 4);
            const now = touched.slice(before);
            if (!inside) {
              expect(now).toEqual([]);
              continue;
            }
            // Something answered, and every port touched lies in the access's own range,
            // translated by the window.
            expect(now.length).toBeGreaterThan(0);
            for (const t of now) {
              expect(t.port).toBeGreaterThanOrEqual(a.addr - WIN);
              expect(t.port + t.size).toBeLessThanOrEqual(a.addr - WIN + a.size);
            }
          }
          for (const t of touched) {
            expect(t.port).toBeGreaterThanOrEqual(0);
            expect(t.port + t.size).toBeLessThanOrEqual(PORT_LIMIT);
          }
        },
      ),
      { numRuns: 300 },
    );
  });

  it("a guest programming config space at random can only put BARs inside the port space, and BAR devices only see offsets inside their BAR (property)", () => {
    const write = fc.record({
      slot: fc.constantFrom(0, 1, 2, 3),
      reg: fc.oneof(fc.constantFrom(0x04, 0x10, 0x12, 0x14, 0x3c), fc.integer({ min: 0, max: 0x103 })),
      size: fc.constantFrom(1, 2, 4) as fc.Arbitrary<1 | 2 | 4>,
      value: fc.oneof(
        fc.constant(0xffff_ffff),
        fc.constant(0x7),
        fc.constantFrom(0x1000, 0x1040, 0x1080, 0xff80),
        fc.nat({ max: 0xffff_ffff }),
      ),
    });
    // Port accesses near where slot `near`'s BAR 0 points now (or anywhere).
    const portAccess = fc.record({
      near: fc.constantFrom(0, 1, 2, 3),
      delta: fc.integer({ min: -8, max: 0x90 }),
      size: fc.constantFrom(1, 2, 4) as fc.Arbitrary<1 | 2 | 4>,
      write: fc.boolean(),
      value: fc.nat({ max: 0xffff }),
    });
    let reachedBars = 0;
    fc.assert(
      fc.property(fc.array(fc.oneof(write, portAccess), { maxLength: 80, size: "max" }), (ops) => {
        const io = new IoManager();
        const ram = GuestMemory.allocate(0x8000_0000, 1 << 16);
        const bridge = new PciHostBridge({ pio: io.pio });
        io.mmio.register(ECAM, bridge.size, bridge);
        io.mmio.register(WIN, 0x10000, new PciIoWindow({ pio: io.pio }));
        const seen: { offset: number; size: number; bar: number }[] = [];
        for (let i = 0; i < 3; i++) {
          const t = new VirtioPciLegacy({
            device: new VirtioBlk({ backend: new MemoryBlockBackend(4096), queueSize: 4 }),
            ram,
          });
          const read = t.read.bind(t);
          const wr = t.write.bind(t);
          t.read = (offset, size) => {
            seen.push({ offset, size, bar: t.barSize });
            return read(offset, size);
          };
          t.write = (offset, size, value) => {
            seen.push({ offset, size, bar: t.barSize });
            wr(offset, size, value);
          };
          bridge.addDevice(t);
        }
        for (const op of ops) {
          if ("slot" in op) {
            io.mmio.write(ECAM + (op.slot << 15) + op.reg, op.size, op.value);
          } else {
            const bar = io.mmio.read(ECAM + (op.near << 15) + 0x10, 4) & 0xfffc;
            const port = (bar + op.delta) & 0xffff;
            if (op.write) io.mmio.write(WIN + port, op.size, op.value);
            else io.mmio.read(WIN + port, op.size);
          }
          for (const r of io.pio.ranges()) {
            expect(r.base).toBeGreaterThan(0);
            expect(r.base + r.length).toBeLessThanOrEqual(PORT_LIMIT);
          }
        }
        for (const s of seen) {
          expect(s.offset).toBeGreaterThanOrEqual(0);
          expect(s.offset + s.size).toBeLessThanOrEqual(s.bar);
        }
        if (seen.length > 0) reachedBars++;
      }),
      { numRuns: 200, seed: 7 },
    );
    // The generator does reach mapped BARs (the property is not vacuous).
    expect(reachedBars).toBeGreaterThan(10);
  });
});
