import { type BusDevice, IoManager } from "@visor/io-bus";
import { describe, expect, it } from "vitest";
import { IrqLevel } from "../../src/irq.ts";
import { PciConfig } from "../../src/pci/config.ts";
import {
  PCI_BASE_ADDRESS_0,
  PCI_COMMAND,
  PCI_COMMAND_INTX_DISABLE,
  PCI_COMMAND_IO,
  PCI_COMMAND_MEMORY,
  PCI_INTERRUPT_PIN,
} from "../../src/pci/constants.ts";
import { type PciFunction, PciHostBridge, pciSwizzle } from "../../src/pci/host.ts";
import { regsAt, scanAndAssign } from "../pci-legacy-driver.ts";

const ECAM = 0x3000_0000;
const WINDOW = { base: 0x4000_0000, size: 0x4000_0000 };

/** A BAR device that records the offsets it sees and answers offset + 1. */
class Recorder implements BusDevice {
  readonly name: string;
  readonly seen: string[] = [];
  constructor(name: string) {
    this.name = name;
  }
  read(offset: number, size: number): number {
    this.seen.push(`r${offset}/${size}`);
    return offset + 1;
  }
  write(offset: number, size: number, value: number): void {
    this.seen.push(`w${offset}/${size}=${value}`);
  }
}

function endpoint(name: string, opts: { io?: number; mem?: number; pin?: number } = {}) {
  const io = new Recorder(`${name}.io`);
  const mem = new Recorder(`${name}.mem`);
  const fn: PciFunction = {
    name,
    config: new PciConfig({
      vendorId: 0x1234,
      deviceId: 0x11,
      classCode: 0xff0000,
      interruptPin: opts.pin ?? 1,
      bars: [
        opts.io === undefined ? undefined : { kind: "io", size: opts.io, device: io },
        opts.mem === undefined ? undefined : { kind: "mem32", size: opts.mem, device: mem },
      ],
    }),
  };
  return { fn, io, mem };
}

function setup() {
  const io = new IoManager();
  const lines = [new IrqLevel(), new IrqLevel(), new IrqLevel(), new IrqLevel()];
  const errors: string[] = [];
  const bridge = new PciHostBridge({
    pio: io.pio,
    mmio: io.mmio,
    mmioWindow: WINDOW,
    intx: lines,
    onError: (m) => errors.push(m),
  });
  io.mmio.register(ECAM, bridge.size, bridge);
  const ecam = regsAt(io.mmio, ECAM);
  return { io, bridge, lines, errors, ecam };
}

const cfg = (slot: number, reg: number) => (slot << 15) | reg;

describe("PciHostBridge ECAM", () => {
  it("decodes bus/device/function/register and presents the host bridge at 00:00.0", () => {
    const { ecam, bridge } = setup();
    expect(bridge.size).toBe(0x1000_0000);
    expect(ecam.read(0, 2)).toBe(0x1b36);
    expect(ecam.read(2, 2)).toBe(0x0008);
    expect(ecam.read(8, 4) >>> 8).toBe(0x060000);
    expect(ecam.read(0x0e, 1)).toBe(0);
  });

  it("reads all ones from absent slots, functions and buses, at every width, and ignores writes", () => {
    const { ecam, bridge } = setup();
    const { fn } = endpoint("dev", { io: 16 });
    bridge.addDevice(fn, 3);
    expect(ecam.read(cfg(3, 0), 4)).toBe(0x0011_1234);
    for (const at of [
      cfg(2, 0),
      cfg(31, 0),
      (1 << 20) | cfg(3, 0),
      cfg(3, 0) | (1 << 12),
      (255 << 20) | 0xffc,
    ]) {
      expect(ecam.read(at, 4)).toBe(0xffff_ffff);
      expect(ecam.read(at, 2)).toBe(0xffff);
      expect(ecam.read(at, 1)).toBe(0xff);
      ecam.write(at + PCI_COMMAND, 2, 0xffff);
    }
    expect(fn.config.command).toBe(0);
    // 8-byte ECAM accesses arrive as two 4-byte ones.
    expect(bridge.read(cfg(3, 0), 4)).toBe(0x0011_1234);
  });

  it("a config write at function 0 of a slot reaches that function only", () => {
    const { ecam, bridge } = setup();
    const a = endpoint("a", { io: 16 });
    const b = endpoint("b", { io: 16 });
    bridge.addDevice(a.fn, 1);
    bridge.addDevice(b.fn, 2);
    ecam.write(cfg(2, PCI_BASE_ADDRESS_0), 4, 0x2000);
    expect(b.fn.config.barValue(0)).toBe(0x2001);
    expect(a.fn.config.barValue(0)).toBe(0x1);
  });

  it("places devices in free slots 1..31 and refuses bad slots", () => {
    const { bridge } = setup();
    expect(bridge.addDevice(endpoint("x").fn)).toBe(1);
    expect(bridge.addDevice(endpoint("y").fn, 5)).toBe(5);
    expect(bridge.addDevice(endpoint("z").fn)).toBe(2);
    expect(() => bridge.addDevice(endpoint("w").fn, 5)).toThrow(/slot 5 is taken by "y"/);
    expect(() => bridge.addDevice(endpoint("w").fn, 0)).toThrow(/1\.\.31/);
    expect(() => bridge.addDevice(endpoint("w").fn, 32)).toThrow(/1\.\.31/);
    for (let i = 0; i < 28; i++) bridge.addDevice(endpoint(`f${i}`).fn);
    expect(() => bridge.addDevice(endpoint("last").fn)).toThrow(/no free slot/);
  });
});

describe("PciHostBridge BAR mapping", () => {
  it("maps an I/O BAR on the port bus once assigned and enabled, and follows it", () => {
    const { io, ecam, bridge } = setup();
    const d = endpoint("d", { io: 32 });
    bridge.addDevice(d.fn, 1);
    ecam.write(cfg(1, PCI_BASE_ADDRESS_0), 4, 0x1000);
    expect(io.pio.deviceAt(0x1000)).toBeUndefined(); // decode still off
    ecam.write(cfg(1, PCI_COMMAND), 2, PCI_COMMAND_IO);
    expect(io.pio.deviceAt(0x1000)).toMatchObject({ base: 0x1000, length: 32, device: d.io });
    expect(io.pio.read(0x1004, 2)).toBe(5);
    expect(d.io.seen).toEqual(["r4/2"]);
    ecam.write(cfg(1, PCI_BASE_ADDRESS_0), 4, 0x2040);
    expect(io.pio.deviceAt(0x1000)).toBeUndefined();
    expect(io.pio.deviceAt(0x2040)?.device).toBe(d.io);
    expect(bridge.mappings()).toMatchObject([{ slot: 1, index: 0, kind: "io", base: 0x2040, size: 32 }]);
    ecam.write(cfg(1, PCI_COMMAND), 2, 0);
    expect(io.pio.deviceCount).toBe(0);
    expect(io.pio.read(0x2040, 1)).toBe(0xff);
  });

  it("maps memory BARs on the MMIO bus only inside the 32-bit window", () => {
    const { io, ecam, bridge } = setup();
    const d = endpoint("d", { mem: 0x1000 });
    bridge.addDevice(d.fn, 1);
    ecam.write(cfg(1, PCI_COMMAND), 2, PCI_COMMAND_MEMORY);
    ecam.write(cfg(1, PCI_BASE_ADDRESS_0 + 4), 4, 0x2000_0000); // below the window
    expect(io.mmio.deviceAt(0x2000_0000)).toBeUndefined();
    ecam.write(cfg(1, PCI_BASE_ADDRESS_0 + 4), 4, 0x4001_0000);
    expect(io.mmio.deviceAt(0x4001_0000)?.device).toBe(d.mem);
    expect(io.mmio.read(0x4001_0008, 4)).toBe(9);
    ecam.write(cfg(1, PCI_BASE_ADDRESS_0 + 4), 4, 0xffff_ffff); // sizing: outside the window
    expect(io.mmio.deviceAt(0xffff_f000)).toBeUndefined();
    expect(bridge.mappings()).toEqual([]);
  });

  it("leaves a colliding BAR unmapped, reports it once, and maps it when the range frees", () => {
    const { io, ecam, bridge, errors } = setup();
    const a = endpoint("a", { io: 16 });
    const b = endpoint("b", { io: 16 });
    bridge.addDevice(a.fn, 1);
    bridge.addDevice(b.fn, 2);
    ecam.write(cfg(1, PCI_BASE_ADDRESS_0), 4, 0x1000);
    ecam.write(cfg(1, PCI_COMMAND), 2, PCI_COMMAND_IO);
    ecam.write(cfg(2, PCI_BASE_ADDRESS_0), 4, 0x1000);
    ecam.write(cfg(2, PCI_COMMAND), 2, PCI_COMMAND_IO);
    ecam.write(cfg(2, PCI_COMMAND), 2, PCI_COMMAND_IO | PCI_COMMAND_INTX_DISABLE);
    expect(io.pio.deviceAt(0x1000)?.device).toBe(a.io);
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatch(/00:02\.0 BAR 0 \("b"\) at pio 0x1000 left unmapped: .*overlaps "a\.io"/);
    ecam.write(cfg(1, PCI_BASE_ADDRESS_0), 4, 0x3000);
    expect(io.pio.deviceAt(0x1000)?.device).toBe(b.io);
    expect(io.pio.deviceAt(0x3000)?.device).toBe(a.io);
  });

  it("moves a BAR's write fast path with the BAR", () => {
    const { io, ecam, bridge } = setup();
    const hits: number[] = [];
    const dev = new Recorder("fast");
    const fn: PciFunction = {
      name: "fast",
      config: new PciConfig({
        vendorId: 1,
        deviceId: 2,
        classCode: 0,
        bars: [
          {
            kind: "io",
            size: 32,
            device: dev,
            listeners: [{ offset: 0x10, size: 2, handler: (v) => hits.push(v) }],
          },
        ],
      }),
    };
    bridge.addDevice(fn, 1);
    ecam.write(cfg(1, PCI_BASE_ADDRESS_0), 4, 0x1000);
    ecam.write(cfg(1, PCI_COMMAND), 2, PCI_COMMAND_IO);
    io.pio.write(0x1010, 2, 7);
    io.pio.write(0x1010, 1, 8); // other width: the device
    ecam.write(cfg(1, PCI_BASE_ADDRESS_0), 4, 0x2000);
    io.pio.write(0x1010, 2, 9); // old place: nothing there now
    io.pio.write(0x2010, 2, 10);
    expect(hits).toEqual([7, 10]);
    expect(dev.seen).toEqual(["w16/1=8"]);
    ecam.write(cfg(1, PCI_COMMAND), 2, 0);
    expect(io.pio.writeListenerCount).toBe(0);
  });

  it("a scan assigns every BAR the way an OS does", () => {
    const { io, ecam, bridge } = setup();
    bridge.addDevice(endpoint("a", { io: 128, mem: 0x1000 }).fn);
    bridge.addDevice(endpoint("b", { io: 32 }).fn);
    const found = scanAndAssign(ecam);
    expect(found.map((f) => f.slot)).toEqual([0, 1, 2]);
    expect(found[1]!.bars.get(0)).toEqual({ io: true, base: 0x1000, size: 128 });
    expect(found[1]!.bars.get(1)).toEqual({ io: false, base: 0x4000_0000, size: 0x1000 });
    expect(found[2]!.bars.get(0)).toEqual({ io: true, base: 0x1080, size: 32 });
    expect(io.pio.ranges().map((r) => [r.base, r.length])).toEqual([
      [0x1000, 128],
      [0x1080, 32],
    ]);
  });
});

describe("PciHostBridge INTx", () => {
  it("swizzles slot and pin onto the four lines as the device tree's interrupt-map", () => {
    expect(pciSwizzle(0, 1)).toBe(0);
    expect(pciSwizzle(1, 1)).toBe(1);
    expect(pciSwizzle(3, 2)).toBe(0);
    expect(pciSwizzle(31, 4)).toBe(2);
    const { bridge, lines } = setup();
    const devs = [1, 2, 3, 4].map((pin) => endpoint(`p${pin}`, { pin }));
    devs.forEach((d, i) => {
      bridge.addDevice(d.fn, 6 + i);
    });
    for (const [i, d] of devs.entries()) {
      d.fn.config.intx.set(true);
      const want = pciSwizzle(6 + i, i + 1);
      expect(lines.map((l) => l.level)).toEqual([0, 1, 2, 3].map((k) => k === want));
      expect(bridge.intxLevel(want)).toBe(true);
      d.fn.config.intx.set(false);
    }
    expect(devs[0]!.fn.config.read(PCI_INTERRUPT_PIN, 1)).toBe(1);
  });

  it("wire-ORs functions sharing a line", () => {
    const { bridge, lines } = setup();
    const a = endpoint("a");
    const b = endpoint("b");
    bridge.addDevice(a.fn, 1);
    bridge.addDevice(b.fn, 5); // (5 + 1 - 1) % 4 = 1, same line as slot 1
    a.fn.config.intx.set(true);
    b.fn.config.intx.set(true);
    a.fn.config.intx.set(false);
    expect(lines[1]!.level).toBe(true);
    b.fn.config.intx.set(true); // idempotent
    b.fn.config.intx.set(false);
    expect(lines[1]!.level).toBe(false);
    expect(lines[1]!.raised).toBe(1);
  });
});

describe("PciHostBridge reset and state", () => {
  it("reset unmaps everything; state restores configuration and mappings", () => {
    const { io, ecam, bridge } = setup();
    const d = endpoint("d", { io: 32 });
    bridge.addDevice(d.fn, 1);
    scanAndAssign(ecam);
    expect(io.pio.deviceCount).toBe(1);
    const saved = JSON.parse(JSON.stringify(bridge.toState()));
    bridge.reset();
    expect(io.pio.deviceCount).toBe(0);
    expect(ecam.read(cfg(1, PCI_BASE_ADDRESS_0), 4)).toBe(1);

    const other = setup();
    const d2 = endpoint("d", { io: 32 });
    other.bridge.addDevice(d2.fn, 1);
    other.bridge.fromState(saved);
    expect(other.io.pio.deviceAt(0x1000)?.device).toBe(d2.io);
    expect(other.errors).toEqual([]);
    const third = setup();
    third.bridge.addDevice(endpoint("d", { io: 32 }).fn, 2);
    expect(() => third.bridge.fromState(saved)).toThrow(/slot 1, expected 2/);
  });
});
