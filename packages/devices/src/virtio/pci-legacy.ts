import type { BusDevice } from "@visor/io-bus";
import { type GuestMemory, gpa } from "@visor/memory";
import { PciConfig } from "../pci/config.ts";
import type { PciFunction } from "../pci/host.ts";
import { DeviceStateError, stateInt, stateObject } from "../state.ts";
import {
  feature,
  VIRTIO_F_EVENT_IDX,
  VIRTIO_F_INDIRECT_DESC,
  VIRTIO_ID_BLOCK,
  VIRTIO_ID_CONSOLE,
  VIRTIO_ID_NET,
  VIRTIO_ID_RNG,
  VIRTIO_STATUS_DEVICE_NEEDS_RESET,
  VIRTIO_STATUS_DRIVER_OK,
} from "./constants.ts";
import type { VirtioDevice } from "./device.ts";
import type { Virtqueue, VirtqueueState } from "./queue.ts";
import { VirtioTransport } from "./transport.ts";

/*
 * Legacy virtio-pci transport: the virtio 0.9.5 register layout in I/O BAR 0, which
 * virtio 1.x keeps as "Legacy Interfaces: A Note on PCI Device Layout" (virtio 1.1
 * §4.1.4.8) and Linux drives with CONFIG_VIRTIO_PCI_LEGACY (drivers/virtio/
 * virtio_pci_legacy.c). Without MSI-X the BAR holds:
 *
 *   0x00  HOST_FEATURES   u32  RO  device features, bits 0..31
 *   0x04  GUEST_FEATURES  u32  RW  features the driver accepted
 *   0x08  QUEUE_PFN       u32  RW  selected queue's address >> 12; writing 0 disables it
 *   0x0c  QUEUE_NUM       u16  RO  selected queue's size (fixed: the device's maximum)
 *   0x0e  QUEUE_SEL       u16  RW
 *   0x10  QUEUE_NOTIFY    u16  WO  queue index
 *   0x12  STATUS          u8   RW  device status (§2.1); writing 0 resets the device
 *   0x13  ISR             u8   RO  bit 0 used buffers, bit 1 config change; reading clears it
 *   0x14  device-specific configuration (guest-endian: little-endian on RISC-V)
 *
 * A register access must use the register's width at its offset; any other access to
 * 0x00..0x13 reads 0 and is ignored on write. Configuration space takes 1, 2 and 4 bytes.
 *
 * Legacy ring layout (§2.4.2 "Legacy Interfaces: A Note on Virtqueue Layout"): one
 * contiguous area at PFN << 12 with the descriptor table, then the available ring, then
 * the used ring at the next 4096-byte boundary. The queue size cannot be chosen.
 *
 * Legacy differences from the virtio-mmio v2 transport: only 32 feature bits, so no
 * VIRTIO_F_VERSION_1 (the driver never offers it and the device models do not need it;
 * virtio-net then uses the 10-byte legacy header); no FEATURES_OK step, so features are
 * taken as final when a queue is set up and at DRIVER_OK; and the interrupt is the PCI
 * function's INTx pin A, level-triggered, high while ISR != 0. Reading ISR clears it and
 * so deasserts the pin.
 *
 * PCI identity (virtio 1.1 §4.1.2): vendor 0x1af4, the transitional device ID of the
 * device type (0x1001 for block), revision 0 (VIRTIO_PCI_ABI_VERSION, which Linux's
 * legacy driver checks), subsystem vendor 0x1af4 and subsystem device = virtio device ID.
 *
 * Guest errors (a bad ring address, a malformed chain) set DEVICE_NEEDS_RESET, raise a
 * config-change interrupt and stop the queues until the driver resets the device, as the
 * virtio-mmio transport does; nothing a guest does makes this throw.
 */

export const VIRTIO_PCI_HOST_FEATURES = 0x00;
export const VIRTIO_PCI_GUEST_FEATURES = 0x04;
export const VIRTIO_PCI_QUEUE_PFN = 0x08;
export const VIRTIO_PCI_QUEUE_NUM = 0x0c;
export const VIRTIO_PCI_QUEUE_SEL = 0x0e;
export const VIRTIO_PCI_QUEUE_NOTIFY = 0x10;
export const VIRTIO_PCI_STATUS = 0x12;
export const VIRTIO_PCI_ISR = 0x13;
/** Device config offset without MSI-X (with MSI-X it would be 0x18). */
export const VIRTIO_PCI_CONFIG_OFF = 0x14;
/** ISR bits. */
export const VIRTIO_PCI_ISR_QUEUE = 0x1;
export const VIRTIO_PCI_ISR_CONFIG = 0x2;
/** QUEUE_PFN is the ring address shifted right by 12. */
export const VIRTIO_PCI_QUEUE_ADDR_SHIFT = 12;
/** The used ring starts at this alignment. */
export const VIRTIO_PCI_VRING_ALIGN = 4096;
/** PCI revision of a legacy (transitional) device. */
export const VIRTIO_PCI_ABI_VERSION = 0;
/** Red Hat / Qumranet's virtio PCI vendor ID. */
export const VIRTIO_PCI_VENDOR_ID = 0x1af4;

/** Transitional PCI device IDs (virtio 1.1 §4.1.2.1) by virtio device ID. */
export const VIRTIO_PCI_TRANSITIONAL_IDS: Readonly<Record<number, number>> = {
  [VIRTIO_ID_NET]: 0x1000,
  [VIRTIO_ID_BLOCK]: 0x1001,
  5: 0x1002, // memory balloon
  [VIRTIO_ID_CONSOLE]: 0x1003,
  8: 0x1004, // SCSI host
  [VIRTIO_ID_RNG]: 0x1005,
  9: 0x1009, // 9P transport
};

/**
 * PCI class codes (base class << 16 | subclass << 8) per device type: network/Ethernet,
 * mass storage/other, simple communication/other, and "unassigned class" for the rest.
 */
const CLASS_CODES: Readonly<Record<number, number>> = {
  [VIRTIO_ID_NET]: 0x02_00_00,
  [VIRTIO_ID_BLOCK]: 0x01_80_00,
  [VIRTIO_ID_CONSOLE]: 0x07_80_00,
};
const CLASS_OTHER = 0xff_00_00;

/** Ring features the legacy transport's virtqueues implement. */
export const LEGACY_TRANSPORT_FEATURES = feature(VIRTIO_F_INDIRECT_DESC) | feature(VIRTIO_F_EVENT_IDX);

export interface VirtioPciLegacyOptions {
  device: VirtioDevice;
  /** Guest RAM (only): where the driver's rings and buffers must be. */
  ram: GuestMemory;
  /** PCI function and port-bus name; default "virtio-pci:<device name>". */
  name?: string;
  /** Told about guest errors that put the device in DEVICE_NEEDS_RESET. Default: ignore. */
  onError?: (message: string) => void;
}

export interface VirtioPciLegacyState {
  status: number;
  guestFeatures: number;
  queueSel: number;
  isr: number;
  queues: VirtqueueState[];
  device: unknown;
}

/** Byte offsets of the legacy ring areas for a ring of `size` entries at `base`. */
export function legacyRingLayout(base: number, size: number): { desc: number; avail: number; used: number } {
  const avail = base + 16 * size;
  const availEnd = avail + 6 + 2 * size;
  const used = Math.ceil(availEnd / VIRTIO_PCI_VRING_ALIGN) * VIRTIO_PCI_VRING_ALIGN;
  return { desc: base, avail, used };
}

/** Bytes of one legacy ring of `size` entries (what the driver allocates at the PFN). */
export function legacyRingBytes(size: number): number {
  const { used } = legacyRingLayout(0, size);
  return used + 6 + 8 * size;
}

export class VirtioPciLegacy extends VirtioTransport implements BusDevice, PciFunction {
  readonly config: PciConfig;
  /** Bits 0..31 offered in HOST_FEATURES. */
  readonly offeredFeatures: number;
  /** Size of I/O BAR 0. */
  readonly barSize: number;

  private guestFeatures = 0;
  private queueSel = 0;
  private isr = 0;

  constructor(options: VirtioPciLegacyOptions) {
    const dev = options.device;
    const pciId = VIRTIO_PCI_TRANSITIONAL_IDS[dev.deviceId];
    if (pciId === undefined) {
      throw new Error(
        `virtio-pci legacy: device "${dev.name}" (virtio ID ${dev.deviceId}) has no transitional PCI ID`,
      );
    }
    super(dev, options.ram, options.name ?? `virtio-pci:${dev.name}`, options.onError);
    this.offeredFeatures = Number((dev.features | LEGACY_TRANSPORT_FEATURES) & 0xffff_ffffn);
    const need = VIRTIO_PCI_CONFIG_OFF + dev.configSize;
    let bar = 4;
    while (bar < need) bar *= 2;
    if (bar > 256) {
      throw new RangeError(
        `virtio-pci legacy: "${dev.name}" needs ${need} bytes of registers, an I/O BAR has 256`,
      );
    }
    this.barSize = bar;
    this.config = new PciConfig({
      vendorId: VIRTIO_PCI_VENDOR_ID,
      deviceId: pciId,
      classCode: CLASS_CODES[dev.deviceId] ?? CLASS_OTHER,
      revision: VIRTIO_PCI_ABI_VERSION,
      subsystemVendorId: VIRTIO_PCI_VENDOR_ID,
      subsystemId: dev.deviceId,
      interruptPin: 1,
      bars: [
        {
          kind: "io",
          size: bar,
          device: this,
          listeners: [{ offset: VIRTIO_PCI_QUEUE_NOTIFY, size: 2, handler: (q) => this.notify(q) }],
        },
      ],
    });
  }

  /** Features the driver accepted. */
  get negotiatedFeatures(): bigint {
    return BigInt(this.guestFeatures);
  }

  /** The ISR bits pending (without the read side effect). */
  get pendingIsr(): number {
    return this.isr;
  }

  read(offset: number, size: 1 | 2 | 4): number {
    if (offset >= VIRTIO_PCI_CONFIG_OFF) return this.readConfig(offset - VIRTIO_PCI_CONFIG_OFF, size);
    if (size !== registerWidth(offset)) return 0;
    const q = this.queues[this.queueSel];
    switch (offset) {
      case VIRTIO_PCI_HOST_FEATURES:
        return this.offeredFeatures;
      case VIRTIO_PCI_GUEST_FEATURES:
        return this.guestFeatures;
      case VIRTIO_PCI_QUEUE_PFN:
        return q?.ready ? Math.floor(q.desc / VIRTIO_PCI_VRING_ALIGN) : 0;
      case VIRTIO_PCI_QUEUE_NUM:
        return q?.maxSize ?? 0;
      case VIRTIO_PCI_QUEUE_SEL:
        return this.queueSel;
      case VIRTIO_PCI_STATUS:
        return this.status;
      case VIRTIO_PCI_ISR: {
        const v = this.isr;
        this.isr = 0;
        this.updateIrq();
        return v;
      }
      default:
        return 0;
    }
  }

  write(offset: number, size: 1 | 2 | 4, value: number): void {
    if (offset >= VIRTIO_PCI_CONFIG_OFF) {
      this.writeConfig(offset - VIRTIO_PCI_CONFIG_OFF, size, value);
      return;
    }
    if (size !== registerWidth(offset)) return;
    const v = value >>> 0;
    switch (offset) {
      case VIRTIO_PCI_GUEST_FEATURES:
        if (!this.active) this.guestFeatures = (v & this.offeredFeatures) >>> 0;
        return;
      case VIRTIO_PCI_QUEUE_PFN:
        this.setQueuePfn(v);
        return;
      case VIRTIO_PCI_QUEUE_SEL:
        this.queueSel = v;
        return;
      case VIRTIO_PCI_QUEUE_NOTIFY:
        this.notify(v);
        return;
      case VIRTIO_PCI_STATUS:
        this.writeStatus(v);
        return;
      default:
        return;
    }
  }

  /** Device reset, as when the driver writes 0 to STATUS (also for a machine reset). */
  reset(): void {
    this.resetDevice();
    this.guestFeatures = 0;
    this.queueSel = 0;
    this.isr = 0;
    this.updateIrq();
  }

  /** The virtio state; the PCI configuration space is saved by the host bridge. */
  toState(): VirtioPciLegacyState {
    return {
      status: this.status,
      guestFeatures: this.guestFeatures,
      queueSel: this.queueSel,
      isr: this.isr,
      queues: this.queues.map((q) => q.toState()),
      device: this.device.toState(),
    };
  }

  fromState(state: unknown): void {
    const d = `virtio-pci legacy (${this.device.name})`;
    const s = stateObject(state, d);
    const status = stateInt(s, "status", d, 0xff);
    const guestFeatures = stateInt(s, "guestFeatures", d, 0xffff_ffff);
    const queueSel = stateInt(s, "queueSel", d, 0xffff);
    const isr = stateInt(s, "isr", d, VIRTIO_PCI_ISR_QUEUE | VIRTIO_PCI_ISR_CONFIG);
    if ((guestFeatures & ~this.offeredFeatures) !== 0) {
      throw new DeviceStateError(`invalid ${d} state: guestFeatures has bits the device does not offer`);
    }
    const f = BigInt(guestFeatures);
    this.restoreDevice(
      d,
      s.queues,
      s.device,
      status,
      {
        eventIdx: (f & feature(VIRTIO_F_EVENT_IDX)) !== 0n,
        indirect: (f & feature(VIRTIO_F_INDIRECT_DESC)) !== 0n,
      },
      (q) => (q.ready && (q.size !== q.maxSize || !isLegacyLayout(q)) ? "is not a legacy ring" : null),
    );
    this.guestFeatures = guestFeatures;
    this.queueSel = queueSel;
    this.isr = isr;
    this.updateIrq();
  }

  private setQueuePfn(pfn: number): void {
    const q = this.queues[this.queueSel];
    if (q === undefined) return;
    if (pfn === 0) {
      q.reset();
      return;
    }
    q.reset();
    const base = pfn * VIRTIO_PCI_VRING_ALIGN;
    const layout = legacyRingLayout(base, q.maxSize);
    q.desc = gpa(layout.desc);
    q.driver = gpa(layout.avail);
    q.device = gpa(layout.used);
    const why = q.validate();
    if (why !== null) {
      q.reset();
      this.deviceError(why);
      return;
    }
    const f = BigInt(this.guestFeatures);
    q.enable((f & feature(VIRTIO_F_EVENT_IDX)) !== 0n, (f & feature(VIRTIO_F_INDIRECT_DESC)) !== 0n);
    if (this.active) this.notify(q.index);
  }

  private writeStatus(v: number): void {
    if (v === 0) {
      this.reset();
      return;
    }
    const next = v | (this.status & VIRTIO_STATUS_DEVICE_NEEDS_RESET);
    this.status = next;
    if (next & VIRTIO_STATUS_DRIVER_OK && !this.active && !(next & VIRTIO_STATUS_DEVICE_NEEDS_RESET)) {
      // No FEATURES_OK in the legacy interface: the features are final now.
      const f = BigInt(this.guestFeatures);
      for (const q of this.queues) {
        q.eventIdx = (f & feature(VIRTIO_F_EVENT_IDX)) !== 0n;
        q.indirect = (f & feature(VIRTIO_F_INDIRECT_DESC)) !== 0n;
      }
      this.startDevice();
    }
  }

  protected interrupt(bits: number): void {
    this.isr |= bits & (VIRTIO_PCI_ISR_QUEUE | VIRTIO_PCI_ISR_CONFIG);
    this.updateIrq();
  }

  private updateIrq(): void {
    this.config.intx.set(this.isr !== 0);
  }
}

/** The width of the legacy register at `offset` (0x00..0x13), or 0 between registers. */
function registerWidth(offset: number): number {
  switch (offset) {
    case VIRTIO_PCI_HOST_FEATURES:
    case VIRTIO_PCI_GUEST_FEATURES:
    case VIRTIO_PCI_QUEUE_PFN:
      return 4;
    case VIRTIO_PCI_QUEUE_NUM:
    case VIRTIO_PCI_QUEUE_SEL:
    case VIRTIO_PCI_QUEUE_NOTIFY:
      return 2;
    case VIRTIO_PCI_STATUS:
    case VIRTIO_PCI_ISR:
      return 1;
    default:
      return 0;
  }
}

function isLegacyLayout(q: Virtqueue): boolean {
  const l = legacyRingLayout(q.desc, q.size);
  return q.desc % VIRTIO_PCI_VRING_ALIGN === 0 && q.driver === l.avail && q.device === l.used;
}
