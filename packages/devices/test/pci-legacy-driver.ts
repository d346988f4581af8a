/**
 * Fake guest side of PCI for tests: a bus scan and BAR assignment over ECAM (what Linux's
 * pci-host-generic does at boot), and a legacy virtio-pci driver (the 0.9.5 register
 * handshake) that lays its rings out with the legacy alignment and reuses the
 * transport-neutral DriverQueue from virtio-driver.ts for the ring work.
 */
import type { GuestMemory } from "@visor/memory";
import {
  legacyRingBytes,
  legacyRingLayout,
  PCI_BASE_ADDRESS_0,
  PCI_COMMAND,
  PCI_COMMAND_IO,
  PCI_COMMAND_MASTER,
  PCI_COMMAND_MEMORY,
  PCI_ECAM_DEVICE_SHIFT,
  PCI_SLOTS,
  PCI_VENDOR_ID,
  VIRTIO_PCI_CONFIG_OFF,
  VIRTIO_PCI_GUEST_FEATURES,
  VIRTIO_PCI_HOST_FEATURES,
  VIRTIO_PCI_ISR,
  VIRTIO_PCI_QUEUE_ADDR_SHIFT,
  VIRTIO_PCI_QUEUE_NOTIFY,
  VIRTIO_PCI_QUEUE_NUM,
  VIRTIO_PCI_QUEUE_PFN,
  VIRTIO_PCI_QUEUE_SEL,
  VIRTIO_PCI_STATUS,
  VIRTIO_PCI_VRING_ALIGN,
  VIRTIO_STATUS_ACKNOWLEDGE,
  VIRTIO_STATUS_DRIVER,
  VIRTIO_STATUS_DRIVER_OK,
} from "../src/index.ts";
import { DriverQueue, GuestAllocator } from "./virtio-driver.ts";

/** Something that takes 1-, 2- and 4-byte accesses at an offset (a bus window, a device). */
export interface Regs {
  read(offset: number, size: 1 | 2 | 4): number;
  write(offset: number, size: 1 | 2 | 4, value: number): void;
}

/** What a scan found in one slot, with the BARs it assigned. */
export interface ScannedFunction {
  slot: number;
  vendorId: number;
  deviceId: number;
  /** BAR index -> assigned address and size. */
  bars: Map<number, { io: boolean; base: number; size: number }>;
}

/**
 * Scan bus 0 through an ECAM window, size every BAR (write all ones, read back), assign
 * I/O BARs from `ioStart` and memory BARs from `memStart` (naturally aligned), and enable
 * decode and bus mastering, as an OS does.
 */
export function scanAndAssign(ecam: Regs, ioStart = 0x1000, memStart = 0x4000_0000): ScannedFunction[] {
  const found: ScannedFunction[] = [];
  let io = ioStart;
  let mem = memStart;
  for (let slot = 0; slot < PCI_SLOTS; slot++) {
    const at = slot << PCI_ECAM_DEVICE_SHIFT;
    const vendor = ecam.read(at + PCI_VENDOR_ID, 2);
    if (vendor === 0xffff) continue;
    const fn: ScannedFunction = {
      slot,
      vendorId: vendor,
      deviceId: ecam.read(at + 2, 2),
      bars: new Map(),
    };
    ecam.write(at + PCI_COMMAND, 2, 0);
    let cmd = PCI_COMMAND_MASTER;
    for (let i = 0; i < 6; i++) {
      const reg = at + PCI_BASE_ADDRESS_0 + 4 * i;
      ecam.write(reg, 4, 0xffff_ffff);
      const v = ecam.read(reg, 4);
      if (v === 0) continue;
      const isIo = (v & 1) === 1;
      const mask = isIo ? (v | 0xffff_0000) & ~3 : v & ~0xf;
      const size = (~mask >>> 0) + 1;
      let base: number;
      if (isIo) {
        base = Math.ceil(io / size) * size;
        io = base + size;
        cmd |= PCI_COMMAND_IO;
      } else {
        base = Math.ceil(mem / size) * size;
        mem = base + size;
        cmd |= PCI_COMMAND_MEMORY;
      }
      ecam.write(reg, 4, base);
      fn.bars.set(i, { io: isIo, base, size });
    }
    ecam.write(at + PCI_COMMAND, 2, cmd);
    found.push(fn);
  }
  return found;
}

/**
 * An allocator that hands a DriverQueue its three ring areas at the legacy positions
 * inside one page-aligned block (descriptors, avail right after, used on the next 4096
 * boundary), then passes every later allocation (request buffers) to `parent`.
 */
class LegacyRingAllocator extends GuestAllocator {
  private readonly parent: GuestAllocator;
  private readonly areas: number[];
  constructor(parent: GuestAllocator, base: number, size: number) {
    super(base, base + legacyRingBytes(size));
    this.parent = parent;
    const l = legacyRingLayout(base, size);
    this.areas = [l.desc, l.avail, l.used];
  }
  override alloc(size: number, align = 16): number {
    const a = this.areas.shift();
    return a ?? this.parent.alloc(size, align);
  }
}

/** Drives the legacy virtio-pci handshake over the registers of I/O BAR 0. */
export class LegacyPciDriver {
  readonly regs: Regs;
  readonly ram: GuestMemory;
  readonly alloc: GuestAllocator;
  readonly queues: DriverQueue[] = [];
  hostFeatures = 0;
  features = 0;

  constructor(regs: Regs, ram: GuestMemory, alloc: GuestAllocator) {
    this.regs = regs;
    this.ram = ram;
    this.alloc = alloc;
  }

  get status(): number {
    return this.regs.read(VIRTIO_PCI_STATUS, 1);
  }

  /** Reset, acknowledge, and accept `wanted` ∩ HOST_FEATURES (legacy: no FEATURES_OK). */
  negotiate(wanted = 0xffff_ffff): void {
    const r = this.regs;
    r.write(VIRTIO_PCI_STATUS, 1, 0);
    r.write(VIRTIO_PCI_STATUS, 1, VIRTIO_STATUS_ACKNOWLEDGE);
    r.write(VIRTIO_PCI_STATUS, 1, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
    this.hostFeatures = r.read(VIRTIO_PCI_HOST_FEATURES, 4);
    this.features = (this.hostFeatures & wanted) >>> 0;
    r.write(VIRTIO_PCI_GUEST_FEATURES, 4, this.features);
  }

  /** Read QUEUE_NUM, lay the ring out at a fresh page, write its PFN. */
  setupQueue(index: number): DriverQueue {
    const r = this.regs;
    r.write(VIRTIO_PCI_QUEUE_SEL, 2, index);
    const n = r.read(VIRTIO_PCI_QUEUE_NUM, 2);
    if (n === 0) throw new Error(`device has no queue ${index}`);
    if (r.read(VIRTIO_PCI_QUEUE_PFN, 4) !== 0) throw new Error(`queue ${index} is already set up`);
    const base = this.alloc.alloc(legacyRingBytes(n), VIRTIO_PCI_VRING_ALIGN);
    const q = new DriverQueue(this.ram, new LegacyRingAllocator(this.alloc, base, n), index, n);
    r.write(VIRTIO_PCI_QUEUE_PFN, 4, base / 2 ** VIRTIO_PCI_QUEUE_ADDR_SHIFT);
    this.queues[index] = q;
    return q;
  }

  driverOk(): void {
    this.regs.write(VIRTIO_PCI_STATUS, 1, this.status | VIRTIO_STATUS_DRIVER_OK);
  }

  /** negotiate + set up queues 0..n-1 + DRIVER_OK. */
  bringUp(queueCount: number, wanted = 0xffff_ffff): DriverQueue[] {
    this.negotiate(wanted);
    for (let i = 0; i < queueCount; i++) this.setupQueue(i);
    this.driverOk();
    return this.queues;
  }

  kick(queue: number): void {
    this.regs.write(VIRTIO_PCI_QUEUE_NOTIFY, 2, queue);
  }

  /** Read (and so clear) the ISR. */
  isr(): number {
    return this.regs.read(VIRTIO_PCI_ISR, 1);
  }

  readConfig(offset: number, size: 1 | 2 | 4): number {
    return this.regs.read(VIRTIO_PCI_CONFIG_OFF + offset, size);
  }
}

/** Regs at `base` on a bus-like object (io.mmio, io.pio, or a device). */
export function regsAt(
  bus: { read(a: number, s: 1 | 2 | 4): number; write(a: number, s: 1 | 2 | 4, v: number): unknown },
  base: number,
): Regs {
  return {
    read: (o, s) => bus.read(base + o, s),
    write: (o, s, v) => {
      bus.write(base + o, s, v);
    },
  };
}
