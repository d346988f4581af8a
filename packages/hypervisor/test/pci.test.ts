import {
  IrqLevel,
  MemoryBlockBackend,
  PLIC_CONTEXT_BASE,
  PLIC_ENABLE_BASE,
  Plic,
  pciSwizzle,
  VirtioBlk,
  VirtioRng,
} from "@visor/devices";
import { IoManager } from "@visor/io-bus";
import { GuestMemory, gpa } from "@visor/memory";
import { describe, expect, it } from "vitest";
import { parseFdt } from "../src/fdt/reader.ts";
import { buildVirtDtb } from "../src/fdt/virt.ts";
import { VIRT_IRQ, VIRT_MEMMAP } from "../src/fdt/virt-memmap.ts";
import { attachPciBus } from "../src/pci.ts";

const RAM = 0x8000_0000;
const ECAM = VIRT_MEMMAP.pcieEcam.base;
const WIN = VIRT_MEMMAP.pciePio.base;

function machine() {
  const io = new IoManager();
  io.enableStats();
  const ram = GuestMemory.allocate(RAM, 1 << 20);
  const contexts = [new IrqLevel(), new IrqLevel()];
  const plic = new Plic({ harts: 1, contexts });
  const disk = new MemoryBlockBackend(32 * 512);
  for (let i = 0; i < disk.data.length; i++) disk.data[i] = (i * 31 + (i >> 9)) & 0xff;
  const errors: string[] = [];
  const pci = attachPciBus({
    io,
    ram,
    plic,
    devices: [new VirtioBlk({ backend: disk }), new VirtioRng({})],
    onError: (m) => errors.push(m),
  });
  return { io, ram, plic, contexts, disk, pci, errors };
}

/** Guest-side helpers: every access is an MMIO load or store, as the hart would make. */
function guest(io: IoManager) {
  const cfg = (slot: number, reg: number) => ECAM + (slot << 15) + reg;
  return {
    cfgRead: (slot: number, reg: number, size: 1 | 2 | 4) => io.mmio.read(cfg(slot, reg), size),
    cfgWrite: (slot: number, reg: number, size: 1 | 2 | 4, v: number) =>
      io.mmio.write(cfg(slot, reg), size, v),
    in: (port: number, size: 1 | 2 | 4) => io.mmio.read(WIN + port, size),
    out: (port: number, size: 1 | 2 | 4, v: number) => io.mmio.write(WIN + port, size, v),
  };
}

describe("attachPciBus on the virt memory map", () => {
  it("registers ECAM at 0x30000000 and the I/O window at 0x3000000, as the device tree says", () => {
    const { io } = machine();
    expect(io.mmio.deviceAt(ECAM)).toMatchObject({ base: 0x3000_0000, length: 0x1000_0000 });
    expect(io.mmio.deviceAt(WIN)).toMatchObject({ base: 0x300_0000, length: 0x1_0000 });
    const pci = parseFdt(buildVirtDtb({ harts: 1, memorySize: 1 << 20, mmu: "sv39", pci: true })).find(
      "/soc/pci@30000000",
    )!;
    expect(pci.getU64s("reg")).toEqual([BigInt(ECAM), 0x1000_0000n]);
    // ranges[0]: I/O space, PCI address 0, CPU address = the window, 64 KiB.
    expect(pci.getU32s("ranges")!.slice(0, 7)).toEqual([0x0100_0000, 0, 0, 0, WIN, 0, 0x1_0000]);
    // interrupt-map entries agree with the bridge's swizzle, for the slots the map lists.
    const map = pci.getU32s("interrupt-map")!;
    for (let i = 0; i < map.length; i += 6) {
      const slot = map[i]! >>> 11;
      const pin = map[i + 3]!;
      expect(map[i + 5]).toBe(VIRT_IRQ.pcie + pciSwizzle(slot, pin));
    }
  });

  it("presents the host bridge at 00:00.0 and the devices in slots 1 and 2", () => {
    const { io } = machine();
    const g = guest(io);
    expect(g.cfgRead(0, 0, 4)).toBe(0x0008_1b36);
    expect(g.cfgRead(1, 0, 4)).toBe(0x1001_1af4);
    expect(g.cfgRead(2, 0, 4)).toBe(0x1005_1af4);
    expect(g.cfgRead(3, 0, 4)).toBe(0xffff_ffff);
  });

  it("serves a virtio-blk read through port I/O, interrupting on PLIC source 33", () => {
    const { io, ram, plic, contexts, pci, disk } = machine();
    const g = guest(io);

    // What Linux's PCI core does: size BAR 0, assign it, enable I/O decode and mastering.
    g.cfgWrite(1, 0x10, 4, 0xffff_ffff);
    const mask = g.cfgRead(1, 0x10, 4);
    expect(mask & 1).toBe(1);
    const size = (~((mask | 0xffff_0000) & ~3) >>> 0) + 1;
    expect(size).toBe(128);
    const port = 0x1000;
    g.cfgWrite(1, 0x10, 4, port);
    g.cfgWrite(1, 0x04, 2, 0x5); // I/O space + bus master

    // The PLIC: source 33 enabled for hart 0's S-mode context at priority 1.
    const src = VIRT_IRQ.pcie + pciSwizzle(1, g.cfgRead(1, 0x3d, 1));
    expect(src).toBe(33);
    plic.write(4 * src, 4, 1);
    plic.write(PLIC_ENABLE_BASE + 0x80 * 1 + 4 * (src >>> 5), 4, 1 << (src & 31));

    // The legacy virtio handshake (virtio_pci_legacy.c's order), all through the window.
    g.out(port + 0x12, 1, 0);
    g.out(port + 0x12, 1, 1 | 2);
    const host = g.in(port + 0x00, 4);
    expect(host & (1 << 9)).not.toBe(0); // VIRTIO_BLK_F_FLUSH
    g.out(port + 0x04, 4, 0); // no optional features
    g.out(port + 0x0e, 2, 0);
    const n = g.in(port + 0x0c, 2);
    expect(n).toBe(256);
    const ring = RAM + 0x1_0000;
    const avail = ring + 16 * n;
    const used = Math.ceil((avail + 6 + 2 * n) / 4096) * 4096;
    g.out(port + 0x08, 4, ring / 4096);
    g.out(port + 0x12, 1, 1 | 2 | 4);

    // One request: header, 1024 data bytes, status; sector 3.
    const hdr = RAM + 0x8_0000;
    const data = RAM + 0x8_1000;
    const status = RAM + 0x8_2000;
    ram.write32(gpa(hdr), 0); // VIRTIO_BLK_T_IN
    ram.write64(gpa(hdr + 8), 3n);
    const desc = (i: number, addr: number, len: number, flags: number, next: number) => {
      ram.write64(gpa(ring + 16 * i), BigInt(addr));
      ram.write32(gpa(ring + 16 * i + 8), len);
      ram.write16(gpa(ring + 16 * i + 12), flags);
      ram.write16(gpa(ring + 16 * i + 14), next);
    };
    desc(0, hdr, 16, 1, 1);
    desc(1, data, 1024, 1 | 2, 2);
    desc(2, status, 1, 2, 0);
    ram.write16(gpa(avail + 4), 0);
    ram.write16(gpa(avail + 2), 1);
    g.out(port + 0x10, 2, 0); // QUEUE_NOTIFY

    expect(ram.read16(gpa(used + 2))).toBe(1);
    expect(ram.read32(gpa(used + 4))).toBe(0);
    expect(ram.read32(gpa(used + 8))).toBe(1025);
    expect(ram.read8(gpa(status))).toBe(0);
    expect(ram.view(gpa(data), 1024)).toEqual(disk.data.subarray(3 * 512, 5 * 512));

    // The interrupt: pending at the PLIC, claimed by S-mode, cleared by reading ISR.
    expect(contexts[1]!.level).toBe(true);
    expect(plic.read(PLIC_CONTEXT_BASE + 0x1000 + 4, 4)).toBe(src);
    expect(g.in(port + 0x13, 1)).toBe(1);
    plic.write(PLIC_CONTEXT_BASE + 0x1000 + 4, 4, src);
    expect(contexts[1]!.level).toBe(false);

    // Statistics see the traffic as port I/O on the virtio function, the kick on the fast path.
    const dev = io.stats().pio.devices.find((d) => d.name === "virtio-pci:virtio-blk")!;
    expect(dev).toMatchObject({ base: port, length: 128, listenerWrites: 1 });
    expect(dev.reads + dev.writes).toBeGreaterThan(8);
    expect(pci.portAccess(WIN + port + 0x10)).toEqual({ port: port + 0x10, device: "virtio-pci:virtio-blk" });
    expect(pci.portAccess(WIN + 0x8000)).toEqual({ port: 0x8000, device: "unmapped" });
    expect(pci.portAccess(ECAM)).toBeUndefined();
  });

  it("round-trips its state and resets to unmapped BARs", () => {
    const a = machine();
    const g = guest(a.io);
    g.cfgWrite(2, 0x10, 4, 0x2000);
    g.cfgWrite(2, 0x04, 2, 1);
    g.out(0x2000 + 0x12, 1, 3);
    const saved = JSON.parse(JSON.stringify(a.pci.toState()));
    const b = machine();
    b.pci.fromState(saved);
    expect(guest(b.io).in(0x2000 + 0x12, 1)).toBe(3);
    expect(b.io.pio.deviceAt(0x2000)?.device.name).toBe("virtio-pci:virtio-rng");
    b.pci.reset();
    expect(b.io.pio.deviceCount).toBe(0);
    expect(() => b.pci.fromState({ bridge: saved.bridge, transports: [] })).toThrow(/2 entries/);
  });

  it("refuses more devices than slots", () => {
    const io = new IoManager();
    const plic = new Plic({ harts: 1, contexts: [new IrqLevel(), new IrqLevel()] });
    const devices = Array.from({ length: 32 }, () => new VirtioRng({}));
    expect(() => attachPciBus({ io, ram: GuestMemory.allocate(RAM, 1 << 16), plic, devices })).toThrow(
      /at most 31/,
    );
  });
});
