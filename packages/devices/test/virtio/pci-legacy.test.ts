import { IoManager } from "@visor/io-bus";
import { GuestMemory } from "@visor/memory";
import { describe, expect, it } from "vitest";
import { IrqLevel } from "../../src/irq.ts";
import {
  PCI_BASE_ADDRESS_0,
  PCI_CLASS_PROG,
  PCI_COMMAND,
  PCI_COMMAND_INTX_DISABLE,
  PCI_COMMAND_IO,
  PCI_INTERRUPT_PIN,
  PCI_REVISION_ID,
  PCI_SUBSYSTEM_ID,
  PCI_SUBSYSTEM_VENDOR_ID,
} from "../../src/pci/constants.ts";
import { PciHostBridge, pciSwizzle } from "../../src/pci/host.ts";
import { PciIoWindow } from "../../src/pci/io-window.ts";
import {
  VIRTIO_BLK_F_FLUSH,
  VIRTIO_BLK_F_SEG_MAX,
  VIRTIO_BLK_S_OK,
  VIRTIO_BLK_T_IN,
  VIRTIO_BLK_T_OUT,
  VirtioBlk,
} from "../../src/virtio/blk.ts";
import { MemoryBlockBackend } from "../../src/virtio/block-backend.ts";
import {
  feature,
  VIRTIO_F_EVENT_IDX,
  VIRTIO_F_INDIRECT_DESC,
  VIRTIO_STATUS_DEVICE_NEEDS_RESET,
  VIRTIO_STATUS_DRIVER_OK,
} from "../../src/virtio/constants.ts";
import { VirtioMmio } from "../../src/virtio/mmio.ts";
import { VIRTIO_NET_HDR_SIZE_LEGACY, VirtioNet } from "../../src/virtio/net.ts";
import {
  legacyRingLayout,
  VIRTIO_PCI_CONFIG_OFF,
  VIRTIO_PCI_GUEST_FEATURES,
  VIRTIO_PCI_HOST_FEATURES,
  VIRTIO_PCI_ISR,
  VIRTIO_PCI_QUEUE_NUM,
  VIRTIO_PCI_QUEUE_PFN,
  VIRTIO_PCI_QUEUE_SEL,
  VIRTIO_PCI_STATUS,
  VirtioPciLegacy,
} from "../../src/virtio/pci-legacy.ts";
import { VirtioRng } from "../../src/virtio/rng.ts";
import { LegacyPciDriver, regsAt, scanAndAssign } from "../pci-legacy-driver.ts";
import { GuestAllocator, MmioDriver } from "../virtio-driver.ts";

const RAM_BASE = 0x8000_0000;
const RAM_SIZE = 1 << 20;
const ECAM = 0x3000_0000;
const WIN = 0x0300_0000;

function header(type: number, sector: number): Uint8Array {
  const h = new Uint8Array(16);
  const dv = new DataView(h.buffer);
  dv.setUint32(0, type, true);
  dv.setBigUint64(8, BigInt(sector), true);
  return h;
}

/**
 * A machine's worth of PCI: ECAM and the I/O window on the MMIO bus, a virtio-blk over
 * legacy virtio-pci in slot 1, its INTx observed on four lines. The driver is found by a
 * bus scan and talks to the device only through MMIO loads and stores in the window.
 */
function machine(options: { errors?: string[] } = {}) {
  const io = new IoManager();
  io.enableStats();
  const ram = GuestMemory.allocate(RAM_BASE, RAM_SIZE);
  const disk = new MemoryBlockBackend(64 * 512);
  const errors = options.errors ?? [];
  const blk = new VirtioBlk({ backend: disk, id: "pci-disk" });
  const lines = [new IrqLevel(), new IrqLevel(), new IrqLevel(), new IrqLevel()];
  const bridge = new PciHostBridge({ pio: io.pio, intx: lines });
  const t = new VirtioPciLegacy({ device: blk, ram, onError: (m) => errors.push(m) });
  const slot = bridge.addDevice(t);
  io.mmio.register(ECAM, bridge.size, bridge);
  io.mmio.register(WIN, 0x10000, new PciIoWindow({ pio: io.pio }));
  const found = scanAndAssign(regsAt(io.mmio, ECAM));
  const bar = found.find((f) => f.slot === slot)!.bars.get(0)!;
  const drv = new LegacyPciDriver(
    regsAt(io.mmio, WIN + bar.base),
    ram,
    new GuestAllocator(RAM_BASE, RAM_BASE + RAM_SIZE),
  );
  const irq = lines[pciSwizzle(slot, 1)]!;
  return { io, ram, disk, blk, t, bridge, slot, bar, drv, irq, lines, errors };
}

describe("VirtioPciLegacy identity", () => {
  it("is a transitional virtio-blk: 1af4:1001 rev 0, subsystem 1af4:0002, class 018000, INTA, 128-byte I/O BAR", () => {
    const { io, slot, bar } = machine();
    const cfg = (reg: number, size: 1 | 2 | 4) => io.mmio.read(ECAM + (slot << 15) + reg, size);
    expect(cfg(0, 4)).toBe(0x1001_1af4);
    expect(cfg(PCI_REVISION_ID, 1)).toBe(0);
    expect(cfg(PCI_CLASS_PROG, 4) & 0xff_ffff).toBe(0x01_80_00);
    expect(cfg(PCI_SUBSYSTEM_VENDOR_ID, 2)).toBe(0x1af4);
    expect(cfg(PCI_SUBSYSTEM_ID, 2)).toBe(2);
    expect(cfg(PCI_INTERRUPT_PIN, 1)).toBe(1);
    expect(bar).toEqual({ io: true, base: 0x1000, size: 128 });
    expect(io.pio.deviceAt(0x1000)?.device.name).toBe("virtio-pci:virtio-blk");
  });

  it("uses the transitional IDs of net, console and entropy, and refuses device types without one", () => {
    const ram = GuestMemory.allocate(RAM_BASE, RAM_SIZE);
    const net = new VirtioPciLegacy({
      device: new VirtioNet({ backend: { send: () => {}, onReceive: () => {} }, mac: "52:54:00:00:00:01" }),
      ram,
    });
    expect([net.config.deviceId, net.config.classCode]).toEqual([0x1000, 0x020000]);
    const rng = new VirtioPciLegacy({ device: new VirtioRng({}), ram });
    expect([rng.config.deviceId, rng.config.read(PCI_SUBSYSTEM_ID, 2), rng.barSize]).toEqual([0x1005, 4, 32]);
    const odd = { ...new VirtioRng({}), name: "gpu", deviceId: 16 } as unknown as VirtioRng;
    expect(() => new VirtioPciLegacy({ device: odd, ram })).toThrow(
      /virtio ID 16\) has no transitional PCI ID/,
    );
  });

  it("offers 32 feature bits with the ring features and no VERSION_1; QUEUE_NUM is the fixed size", () => {
    const { drv } = machine();
    drv.negotiate();
    const f = BigInt(drv.hostFeatures);
    for (const bit of [
      VIRTIO_BLK_F_SEG_MAX,
      VIRTIO_BLK_F_FLUSH,
      VIRTIO_F_INDIRECT_DESC,
      VIRTIO_F_EVENT_IDX,
    ]) {
      expect(f & feature(bit)).not.toBe(0n);
    }
    expect(drv.regs.read(VIRTIO_PCI_QUEUE_NUM, 2)).toBe(256);
    drv.regs.write(VIRTIO_PCI_QUEUE_NUM, 2, 8); // read-only in the legacy layout
    expect(drv.regs.read(VIRTIO_PCI_QUEUE_NUM, 2)).toBe(256);
    drv.regs.write(VIRTIO_PCI_QUEUE_SEL, 2, 1);
    expect(drv.regs.read(VIRTIO_PCI_QUEUE_NUM, 2)).toBe(0);
    expect(drv.readConfig(0, 4)).toBe(64); // capacity in sectors
    expect(drv.readConfig(12, 4)).toBe(254); // seg_max
  });

  it("takes each register only at its own width", () => {
    const { drv } = machine();
    drv.negotiate();
    expect(drv.regs.read(VIRTIO_PCI_HOST_FEATURES, 2)).toBe(0);
    expect(drv.regs.read(VIRTIO_PCI_STATUS, 2)).toBe(0);
    drv.regs.write(VIRTIO_PCI_GUEST_FEATURES, 2, 0xffff);
    expect(drv.regs.read(VIRTIO_PCI_GUEST_FEATURES, 4)).toBe(drv.features);
    drv.regs.write(VIRTIO_PCI_STATUS, 4, 0); // not a reset: wrong width
    expect(drv.status).toBe(3);
    expect(drv.regs.read(0x11, 1)).toBe(0); // inside QUEUE_NOTIFY
    // Device config takes any width at any offset from 0x14.
    expect(drv.regs.read(VIRTIO_PCI_CONFIG_OFF, 1)).toBe(64);
    expect(drv.regs.read(VIRTIO_PCI_CONFIG_OFF + 1, 2)).toBe(0);
  });
});

describe("virtio-blk over legacy virtio-pci, through the PCI I/O window", () => {
  it("writes and reads back sectors, with INTx raised and cleared by reading ISR", () => {
    const { drv, disk, irq, lines, io, t, bar } = machine();
    const [q] = drv.bringUp(1);
    expect(t.negotiatedFeatures & feature(VIRTIO_F_EVENT_IDX)).not.toBe(0n);
    const l = legacyRingLayout(q!.desc, 256);
    expect([q!.avail, q!.used]).toEqual([l.avail, l.used]);
    expect(q!.used % 4096).toBe(0);

    const data = new Uint8Array(1024).map((_, i) => (i * 13 + 5) & 0xff);
    q!.post([{ out: header(VIRTIO_BLK_T_OUT, 7) }, { out: data }, { in: 1 }]);
    drv.kick(0);
    expect(irq.level).toBe(true);
    expect(lines.filter((x) => x.level)).toHaveLength(1);
    expect(drv.isr()).toBe(1);
    expect(irq.level).toBe(false);
    expect(drv.isr()).toBe(0);
    const [w] = q!.takeUsed();
    expect(w!.data[0]).toEqual(Uint8Array.of(VIRTIO_BLK_S_OK));
    expect(disk.data.subarray(7 * 512, 9 * 512)).toEqual(data);

    q!.usedEvent = 1; // EVENT_IDX: interrupt me when used.idx passes 1
    q!.post([{ out: header(VIRTIO_BLK_T_IN, 7) }, { in: 1024 }, { in: 1 }], { indirect: true });
    drv.kick(0);
    const [r] = q!.takeUsed();
    expect(r!.len).toBe(1025);
    expect(r!.data[0]).toEqual(data);
    expect(drv.isr()).toBe(1);

    // Every register access went through the port bus; the notify took the listener path.
    const pio = io.stats().pio;
    const dev = pio.devices.find((d) => d.name === "virtio-pci:virtio-blk")!;
    expect(dev.base).toBe(bar.base);
    expect(dev.listenerWrites).toBe(2);
    expect(dev.reads).toBeGreaterThan(0);
    expect(io.stats().mmio.devices.find((d) => d.name === "pci-io")!.writes).toBeGreaterThan(0);
  });

  it("works without EVENT_IDX or INDIRECT_DESC, honouring NO_INTERRUPT", () => {
    const { drv, irq, t } = machine();
    const [q] = drv.bringUp(1, Number(feature(VIRTIO_BLK_F_FLUSH) | feature(VIRTIO_BLK_F_SEG_MAX)));
    expect(t.negotiatedFeatures).toBe(feature(VIRTIO_BLK_F_FLUSH) | feature(VIRTIO_BLK_F_SEG_MAX));
    q!.noInterrupt = true;
    q!.post([{ out: header(VIRTIO_BLK_T_IN, 0) }, { in: 512 }, { in: 1 }]);
    drv.kick(0);
    expect(q!.takeUsed()).toHaveLength(1);
    expect(irq.level).toBe(false);
    q!.noInterrupt = false;
    q!.post([{ out: header(VIRTIO_BLK_T_IN, 0) }, { in: 512 }, { in: 1 }]);
    drv.kick(0);
    expect(irq.level).toBe(true);
  });

  it("serves buffers posted before DRIVER_OK once the driver sets it", () => {
    const { drv, irq } = machine();
    drv.negotiate();
    const q = drv.setupQueue(0);
    q.post([{ out: header(VIRTIO_BLK_T_IN, 1) }, { in: 512 }, { in: 1 }]);
    drv.kick(0);
    expect(q.takeUsed()).toHaveLength(0);
    drv.driverOk();
    expect(q.takeUsed()).toHaveLength(1);
    expect(irq.level).toBe(true);
  });

  it("interrupt disable in the command register masks INTx but not ISR", () => {
    const { drv, irq, io, slot } = machine();
    const [q] = drv.bringUp(1);
    const cmd = ECAM + (slot << 15) + PCI_COMMAND;
    io.mmio.write(cmd, 2, io.mmio.read(cmd, 2) | PCI_COMMAND_INTX_DISABLE);
    q!.post([{ out: header(VIRTIO_BLK_T_IN, 1) }, { in: 512 }, { in: 1 }]);
    drv.kick(0);
    expect(irq.level).toBe(false);
    io.mmio.write(cmd, 2, io.mmio.read(cmd, 2) & ~PCI_COMMAND_INTX_DISABLE);
    expect(irq.level).toBe(true);
    expect(drv.isr()).toBe(1);
    expect(irq.level).toBe(false);
  });

  it("PFN 0 disables a queue; status 0 resets the device and deasserts INTx", () => {
    const { drv, irq, t } = machine();
    const [q] = drv.bringUp(1);
    q!.post([{ out: header(VIRTIO_BLK_T_IN, 1) }, { in: 512 }, { in: 1 }]);
    drv.kick(0);
    expect(irq.level).toBe(true);
    expect(drv.regs.read(VIRTIO_PCI_QUEUE_PFN, 4)).toBe(q!.desc / 4096);
    drv.regs.write(VIRTIO_PCI_QUEUE_PFN, 4, 0);
    expect(t.queues[0]!.ready).toBe(false);
    expect(drv.regs.read(VIRTIO_PCI_QUEUE_PFN, 4)).toBe(0);
    drv.regs.write(VIRTIO_PCI_STATUS, 1, 0);
    expect(irq.level).toBe(false);
    expect(drv.status).toBe(0);
    expect(t.negotiatedFeatures).toBe(0n);
  });

  it("a ring outside RAM or a malformed request sets DEVICE_NEEDS_RESET with a config interrupt", () => {
    const errors: string[] = [];
    const { drv, irq } = machine({ errors });
    drv.negotiate();
    drv.regs.write(VIRTIO_PCI_QUEUE_SEL, 2, 0);
    drv.regs.write(VIRTIO_PCI_QUEUE_PFN, 4, 0x1000); // 0x1000000: not RAM
    expect(drv.status & VIRTIO_STATUS_DEVICE_NEEDS_RESET).not.toBe(0);
    expect(irq.level).toBe(true);
    expect(drv.isr()).toBe(2);
    expect(errors[0]).toMatch(/virtio-pci:virtio-blk: queue 0: descriptor table 0x1000000/);

    const again = machine({ errors: [] });
    const [q] = again.drv.bringUp(1);
    q!.post([{ out: new Uint8Array(4) }, { in: 1 }]); // header too short
    again.drv.kick(0);
    expect(again.drv.status & VIRTIO_STATUS_DEVICE_NEEDS_RESET).not.toBe(0);
    expect(again.errors[0]).toMatch(/no header/);
    q!.post([{ out: header(VIRTIO_BLK_T_IN, 1) }, { in: 512 }, { in: 1 }]);
    again.drv.kick(0);
    expect(q!.takeUsed()).toHaveLength(0); // ignored until reset
  });

  it("the BAR follows a reassignment, and with I/O decode off the registers are gone", () => {
    const { drv, io, slot } = machine();
    drv.negotiate();
    const bar0 = ECAM + (slot << 15) + PCI_BASE_ADDRESS_0;
    io.mmio.write(bar0, 4, 0x2000);
    expect(io.mmio.read(WIN + 0x2000 + VIRTIO_PCI_STATUS, 1)).toBe(3);
    expect(io.mmio.read(WIN + 0x1000 + VIRTIO_PCI_STATUS, 1)).toBe(0xff);
    const cmd = ECAM + (slot << 15) + PCI_COMMAND;
    io.mmio.write(cmd, 2, io.mmio.read(cmd, 2) & ~PCI_COMMAND_IO);
    expect(io.mmio.read(WIN + 0x2000 + VIRTIO_PCI_STATUS, 1)).toBe(0xff);
  });
});

describe("VirtioPciLegacy state", () => {
  it("round-trips mid-operation, with the bridge's config space, and carries on", () => {
    const a = machine();
    const [q] = a.drv.bringUp(1);
    q!.post([{ out: header(VIRTIO_BLK_T_OUT, 2) }, { out: new Uint8Array(512).fill(9) }, { in: 1 }]);
    a.drv.kick(0);
    const saved = JSON.parse(JSON.stringify({ bridge: a.bridge.toState(), t: a.t.toState() }));

    // A second machine: fresh device, the same guest memory, the saved state.
    const b = machine();
    b.ram.write(b.ram.base, a.ram.view(a.ram.base, a.ram.size));
    b.bridge.reset();
    b.bridge.fromState(saved.bridge);
    b.t.fromState(saved.t);
    expect(b.irq.level).toBe(true); // the pending ISR survived
    expect(b.t.deviceStatus & VIRTIO_STATUS_DRIVER_OK).not.toBe(0);
    expect(b.t.negotiatedFeatures).toBe(a.t.negotiatedFeatures);
    expect(b.drv.regs.read(VIRTIO_PCI_ISR, 1)).toBe(1);

    // The driver side's bookkeeping lives in RAM (copied) and in `q` (same object).
    const bq = b.t.queues[0]!;
    expect([bq.desc, bq.usedIdx, bq.lastAvail]).toEqual([q!.desc, 1, 1]);
    b.disk.data.set(a.disk.data);
    q!.post([{ out: header(VIRTIO_BLK_T_IN, 2) }, { in: 512 }, { in: 1 }]);
    b.ram.write(b.ram.base, a.ram.view(a.ram.base, a.ram.size));
    b.drv.kick(0);
    a.ram.write(a.ram.base, b.ram.view(b.ram.base, b.ram.size)); // back to the driver's memory, to read the completions
    const done = q!.takeUsed();
    expect(done).toHaveLength(2);
    expect(done[1]!.data[0]).toEqual(new Uint8Array(512).fill(9));
    expect(done[1]!.data[1]).toEqual(Uint8Array.of(VIRTIO_BLK_S_OK));
    expect(() => b.t.fromState({ ...saved.t, guestFeatures: 2 ** 31 })).toThrow(/does not offer/);
  });
});

describe("one device model, two transports", () => {
  it("the same VirtioBlk class serves the same request over virtio-mmio and legacy virtio-pci", () => {
    const { drv, disk } = machine();
    const [q] = drv.bringUp(1);
    disk.data.fill(0x42, 512, 1024);
    q!.post([{ out: header(VIRTIO_BLK_T_IN, 1) }, { in: 512 }, { in: 1 }]);
    drv.kick(0);
    const viaPci = q!.takeUsed()[0]!.data[0]!;

    const ram = GuestMemory.allocate(RAM_BASE, RAM_SIZE);
    const mmio = new VirtioMmio({ device: new VirtioBlk({ backend: disk }), ram });
    expect(mmio.offeredFeatures & 0xffff_ffffn).toBe(BigInt(drv.hostFeatures));
    const mdrv = new MmioDriver(mmio, ram, new GuestAllocator(RAM_BASE, RAM_BASE + RAM_SIZE));
    const [mq] = mdrv.bringUp(1);
    mq!.post([{ out: header(VIRTIO_BLK_T_IN, 1) }, { in: 512 }, { in: 1 }]);
    mdrv.kick(0);
    const viaMmio = mq!.takeUsed()[0]!.data[0]!;
    expect(viaPci).toEqual(new Uint8Array(512).fill(0x42));
    expect(viaMmio).toEqual(viaPci);
  });

  it("virtio-net over legacy virtio-pci uses the 10-byte legacy header", () => {
    const ram = GuestMemory.allocate(RAM_BASE, RAM_SIZE);
    const sent: Uint8Array[] = [];
    const net = new VirtioNet({
      backend: { send: (f: Uint8Array) => sent.push(Uint8Array.from(f)), onReceive: () => {} },
      mac: "52:54:00:00:00:01",
    });
    const t = new VirtioPciLegacy({ device: net, ram });
    const drv = new LegacyPciDriver(t, ram, new GuestAllocator(RAM_BASE, RAM_BASE + RAM_SIZE));
    const [, tx] = drv.bringUp(2);
    const frame = new Uint8Array(60).fill(0xab);
    tx!.post([{ out: new Uint8Array(VIRTIO_NET_HDR_SIZE_LEGACY) }, { out: frame }]);
    drv.kick(1);
    expect(sent).toEqual([frame]);
  });
});

describe("VirtioPciLegacy INTx wiring", () => {
  it("drives the swizzled line of its slot", () => {
    const io = new IoManager();
    const lines = [new IrqLevel(), new IrqLevel(), new IrqLevel(), new IrqLevel()];
    const bridge = new PciHostBridge({ pio: io.pio, intx: lines });
    const ram = GuestMemory.allocate(RAM_BASE, RAM_SIZE);
    const t = new VirtioPciLegacy({ device: new VirtioBlk({ backend: new MemoryBlockBackend(512) }), ram });
    bridge.addDevice(t, 6);
    bridge.addDevice(new VirtioPciLegacy({ device: new VirtioRng({}), ram }), 7);
    // A config-change interrupt: the device model calls its context; provoke it via a bad PFN.
    t.write(VIRTIO_PCI_STATUS, 1, 3);
    t.write(VIRTIO_PCI_QUEUE_PFN, 4, 1);
    expect(lines.map((l) => l.level)).toEqual([false, false, true, false]); // (6 + 1 - 1) % 4
    expect(t.read(VIRTIO_PCI_ISR, 1)).toBe(2);
    expect(lines[2]!.level).toBe(false);
  });
});
