import type { BusDevice } from "@visor/io-bus";
import { type Gpa, type GuestMemory, gpa } from "@visor/memory";
import { type IrqLine, NO_IRQ } from "../irq.ts";
import { DeviceStateError, stateInt, stateObject, stateU64, u64ToState } from "../state.ts";
import {
  feature,
  VIRTIO_F_EVENT_IDX,
  VIRTIO_F_INDIRECT_DESC,
  VIRTIO_F_VERSION_1,
  VIRTIO_MMIO_CONFIG,
  VIRTIO_MMIO_CONFIG_GENERATION,
  VIRTIO_MMIO_DEVICE_FEATURES,
  VIRTIO_MMIO_DEVICE_FEATURES_SEL,
  VIRTIO_MMIO_DEVICE_ID,
  VIRTIO_MMIO_DRIVER_FEATURES,
  VIRTIO_MMIO_DRIVER_FEATURES_SEL,
  VIRTIO_MMIO_INT_CONFIG,
  VIRTIO_MMIO_INT_VRING,
  VIRTIO_MMIO_INTERRUPT_ACK,
  VIRTIO_MMIO_INTERRUPT_STATUS,
  VIRTIO_MMIO_MAGIC,
  VIRTIO_MMIO_MAGIC_VALUE,
  VIRTIO_MMIO_QUEUE_DESC_HIGH,
  VIRTIO_MMIO_QUEUE_DESC_LOW,
  VIRTIO_MMIO_QUEUE_DEVICE_HIGH,
  VIRTIO_MMIO_QUEUE_DEVICE_LOW,
  VIRTIO_MMIO_QUEUE_DRIVER_HIGH,
  VIRTIO_MMIO_QUEUE_DRIVER_LOW,
  VIRTIO_MMIO_QUEUE_NOTIFY,
  VIRTIO_MMIO_QUEUE_NUM,
  VIRTIO_MMIO_QUEUE_NUM_MAX,
  VIRTIO_MMIO_QUEUE_READY,
  VIRTIO_MMIO_QUEUE_SEL,
  VIRTIO_MMIO_STATUS,
  VIRTIO_MMIO_VENDOR_ID,
  VIRTIO_MMIO_VERSION,
  VIRTIO_STATUS_DEVICE_NEEDS_RESET,
  VIRTIO_STATUS_DRIVER_OK,
  VIRTIO_STATUS_FEATURES_OK,
  VISOR_VIRTIO_VENDOR_ID,
} from "./constants.ts";
import type { VirtioDevice } from "./device.ts";
import type { Virtqueue, VirtqueueState } from "./queue.ts";
import { VirtioTransport } from "./transport.ts";

/*
 * virtio-mmio transport, version 2 (virtio 1.1 §4.2.2). One instance exposes one
 * VirtioDevice in a 0x200-byte register window; registers 0x000-0x0fc take 32-bit
 * accesses (other widths read 0 and are ignored on write), config space from 0x100 takes
 * 1-, 2- and 4-byte accesses.
 *
 * Features offered: the device's own bits plus VIRTIO_F_VERSION_1 (required: a driver that
 * does not accept it is refused at FEATURES_OK), VIRTIO_F_INDIRECT_DESC and
 * VIRTIO_F_EVENT_IDX (implemented by the virtqueue module).
 *
 * The interrupt line is high while InterruptStatus != 0 (bit 0: used buffers, bit 1:
 * config change). A guest error anywhere (bad ring address, malformed chain, bad request)
 * sets DEVICE_NEEDS_RESET and raises a config-change interrupt; the device then ignores
 * notifications until the driver resets it. Nothing a guest does makes this throw.
 */

/** Ring features this transport's virtqueues implement, offered on top of the device's. */
export const TRANSPORT_FEATURES =
  feature(VIRTIO_F_VERSION_1) | feature(VIRTIO_F_INDIRECT_DESC) | feature(VIRTIO_F_EVENT_IDX);

export interface VirtioMmioOptions {
  device: VirtioDevice;
  /** Guest RAM (only): where the driver's rings and buffers must be. */
  ram: GuestMemory;
  /** The interrupt (a PLIC source; virtio-mmio slot n on QEMU virt uses IRQ 1+n). */
  irq?: IrqLine;
  /** Bus name; default "virtio-mmio:<device name>". */
  name?: string;
  /** Told about guest errors that put the device in DEVICE_NEEDS_RESET. Default: ignore. */
  onError?: (message: string) => void;
}

export interface VirtioMmioState {
  status: number;
  deviceFeaturesSel: number;
  driverFeaturesSel: number;
  driverFeatures: string;
  queueSel: number;
  interruptStatus: number;
  configGeneration: number;
  queues: VirtqueueState[];
  device: unknown;
}

export class VirtioMmio extends VirtioTransport implements BusDevice {
  /** Everything offered to the driver. */
  readonly offeredFeatures: bigint;
  private readonly irq: IrqLine;

  private deviceFeaturesSel = 0;
  private driverFeaturesSel = 0;
  private driverFeatures = 0n;
  private queueSel = 0;
  private interruptStatus = 0;
  private configGeneration = 0;
  private irqLevel = false;

  constructor(options: VirtioMmioOptions) {
    super(options.device, options.ram, options.name ?? `virtio-mmio:${options.device.name}`, options.onError);
    this.irq = options.irq ?? NO_IRQ;
    this.offeredFeatures = options.device.features | TRANSPORT_FEATURES;
  }

  /** Negotiated features (valid once FEATURES_OK is set). */
  get negotiatedFeatures(): bigint {
    return this.driverFeatures;
  }

  read(offset: number, size: 1 | 2 | 4): number {
    if (offset >= VIRTIO_MMIO_CONFIG) return this.readConfig(offset - VIRTIO_MMIO_CONFIG, size);
    if (size !== 4) return 0;
    const q = this.queues[this.queueSel];
    switch (offset) {
      case VIRTIO_MMIO_MAGIC_VALUE:
        return VIRTIO_MMIO_MAGIC;
      case VIRTIO_MMIO_VERSION:
        return 2;
      case VIRTIO_MMIO_DEVICE_ID:
        return this.device.deviceId;
      case VIRTIO_MMIO_VENDOR_ID:
        return VISOR_VIRTIO_VENDOR_ID;
      case VIRTIO_MMIO_DEVICE_FEATURES:
        return this.deviceFeaturesSel > 1
          ? 0
          : Number((this.offeredFeatures >> BigInt(32 * this.deviceFeaturesSel)) & 0xffff_ffffn);
      case VIRTIO_MMIO_QUEUE_NUM_MAX:
        return q?.maxSize ?? 0;
      case VIRTIO_MMIO_QUEUE_READY:
        return q?.ready ? 1 : 0;
      case VIRTIO_MMIO_INTERRUPT_STATUS:
        return this.interruptStatus;
      case VIRTIO_MMIO_STATUS:
        return this.status;
      case VIRTIO_MMIO_QUEUE_NUM:
        return q?.size ?? 0;
      case VIRTIO_MMIO_QUEUE_DESC_LOW:
        return q ? lo32(q.desc) : 0;
      case VIRTIO_MMIO_QUEUE_DESC_HIGH:
        return q ? hi32(q.desc) : 0;
      case VIRTIO_MMIO_QUEUE_DRIVER_LOW:
        return q ? lo32(q.driver) : 0;
      case VIRTIO_MMIO_QUEUE_DRIVER_HIGH:
        return q ? hi32(q.driver) : 0;
      case VIRTIO_MMIO_QUEUE_DEVICE_LOW:
        return q ? lo32(q.device) : 0;
      case VIRTIO_MMIO_QUEUE_DEVICE_HIGH:
        return q ? hi32(q.device) : 0;
      case VIRTIO_MMIO_CONFIG_GENERATION:
        return this.configGeneration;
      default:
        return 0;
    }
  }

  write(offset: number, size: 1 | 2 | 4, value: number): void {
    if (offset >= VIRTIO_MMIO_CONFIG) {
      this.writeConfig(offset - VIRTIO_MMIO_CONFIG, size, value);
      return;
    }
    if (size !== 4) return;
    const v = value >>> 0;
    const q = this.queues[this.queueSel];
    // Queue layout registers are frozen while the queue is ready (§4.2.2.3).
    const qw = q !== undefined && !q.ready ? q : undefined;
    switch (offset) {
      case VIRTIO_MMIO_DEVICE_FEATURES_SEL:
        this.deviceFeaturesSel = v;
        return;
      case VIRTIO_MMIO_DRIVER_FEATURES:
        if (this.status & VIRTIO_STATUS_FEATURES_OK || this.driverFeaturesSel > 1) return;
        {
          const shift = BigInt(32 * this.driverFeaturesSel);
          this.driverFeatures = (this.driverFeatures & ~(0xffff_ffffn << shift)) | (BigInt(v) << shift);
        }
        return;
      case VIRTIO_MMIO_DRIVER_FEATURES_SEL:
        this.driverFeaturesSel = v;
        return;
      case VIRTIO_MMIO_QUEUE_SEL:
        this.queueSel = v;
        return;
      case VIRTIO_MMIO_QUEUE_NUM:
        if (qw) qw.size = v;
        return;
      case VIRTIO_MMIO_QUEUE_READY:
        if (q) this.setQueueReady(q, (v & 1) !== 0);
        return;
      case VIRTIO_MMIO_QUEUE_NOTIFY:
        this.notify(v & 0xffff);
        return;
      case VIRTIO_MMIO_INTERRUPT_ACK:
        this.interruptStatus &= ~v;
        this.updateIrq();
        return;
      case VIRTIO_MMIO_STATUS:
        this.writeStatus(v & 0xff);
        return;
      case VIRTIO_MMIO_QUEUE_DESC_LOW:
        if (qw) qw.desc = setLo(qw.desc, v);
        return;
      case VIRTIO_MMIO_QUEUE_DESC_HIGH:
        if (qw) qw.desc = setHi(qw.desc, v);
        return;
      case VIRTIO_MMIO_QUEUE_DRIVER_LOW:
        if (qw) qw.driver = setLo(qw.driver, v);
        return;
      case VIRTIO_MMIO_QUEUE_DRIVER_HIGH:
        if (qw) qw.driver = setHi(qw.driver, v);
        return;
      case VIRTIO_MMIO_QUEUE_DEVICE_LOW:
        if (qw) qw.device = setLo(qw.device, v);
        return;
      case VIRTIO_MMIO_QUEUE_DEVICE_HIGH:
        if (qw) qw.device = setHi(qw.device, v);
        return;
      default:
        return;
    }
  }

  /** Device reset, as when the driver writes 0 to Status (also for a machine reset). */
  reset(): void {
    this.resetDevice();
    this.deviceFeaturesSel = 0;
    this.driverFeaturesSel = 0;
    this.driverFeatures = 0n;
    this.queueSel = 0;
    this.interruptStatus = 0;
    this.updateIrq();
  }

  toState(): VirtioMmioState {
    return {
      status: this.status,
      deviceFeaturesSel: this.deviceFeaturesSel,
      driverFeaturesSel: this.driverFeaturesSel,
      driverFeatures: u64ToState(this.driverFeatures),
      queueSel: this.queueSel,
      interruptStatus: this.interruptStatus,
      configGeneration: this.configGeneration,
      queues: this.queues.map((q) => q.toState()),
      device: this.device.toState(),
    };
  }

  fromState(state: unknown): void {
    const d = `virtio-mmio (${this.device.name})`;
    const s = stateObject(state, d);
    const status = stateInt(s, "status", d, 0xff);
    const deviceFeaturesSel = stateInt(s, "deviceFeaturesSel", d, 0xffff_ffff);
    const driverFeaturesSel = stateInt(s, "driverFeaturesSel", d, 0xffff_ffff);
    const driverFeatures = stateU64(s, "driverFeatures", d);
    const queueSel = stateInt(s, "queueSel", d, 0xffff_ffff);
    const interruptStatus = stateInt(s, "interruptStatus", d, 3);
    const configGeneration = stateInt(s, "configGeneration", d, 0xffff_ffff);
    if ((driverFeatures & ~this.offeredFeatures) !== 0n) {
      throw new DeviceStateError(`invalid ${d} state: driverFeatures has bits the device does not offer`);
    }
    this.restoreDevice(d, s.queues, s.device, status, {
      eventIdx: (driverFeatures & feature(VIRTIO_F_EVENT_IDX)) !== 0n,
      indirect: (driverFeatures & feature(VIRTIO_F_INDIRECT_DESC)) !== 0n,
    });
    this.deviceFeaturesSel = deviceFeaturesSel;
    this.driverFeaturesSel = driverFeaturesSel;
    this.driverFeatures = driverFeatures;
    this.queueSel = queueSel;
    this.interruptStatus = interruptStatus;
    this.configGeneration = configGeneration;
    this.irqLevel = this.interruptStatus !== 0;
    this.irq.set(this.irqLevel);
  }

  private writeStatus(v: number): void {
    if (v === 0) {
      this.reset();
      return;
    }
    const old = this.status;
    let next = v | (old & VIRTIO_STATUS_DEVICE_NEEDS_RESET);
    if (next & VIRTIO_STATUS_FEATURES_OK && !(old & VIRTIO_STATUS_FEATURES_OK)) {
      // §2.2.2: refuse a subset we cannot honour by leaving FEATURES_OK clear.
      const f = this.driverFeatures;
      if ((f & ~this.offeredFeatures) !== 0n || (f & feature(VIRTIO_F_VERSION_1)) === 0n) {
        next &= ~VIRTIO_STATUS_FEATURES_OK;
      }
    }
    this.status = next;
    if (next & VIRTIO_STATUS_DRIVER_OK && !this.active && !(next & VIRTIO_STATUS_DEVICE_NEEDS_RESET)) {
      if (!(next & VIRTIO_STATUS_FEATURES_OK)) {
        this.deviceError("DRIVER_OK set without FEATURES_OK");
        return;
      }
      this.startDevice();
    }
  }

  private setQueueReady(q: Virtqueue, ready: boolean): void {
    if (!ready) {
      q.ready = false;
      return;
    }
    if (q.ready) return;
    if (!(this.status & VIRTIO_STATUS_FEATURES_OK)) {
      this.deviceError(`queue ${q.index}: QueueReady before FEATURES_OK`);
      return;
    }
    const why = q.validate();
    if (why !== null) {
      this.deviceError(why);
      return;
    }
    q.enable(
      (this.driverFeatures & feature(VIRTIO_F_EVENT_IDX)) !== 0n,
      (this.driverFeatures & feature(VIRTIO_F_INDIRECT_DESC)) !== 0n,
    );
    if (this.active) this.notify(q.index);
  }

  protected interrupt(bits: number): void {
    if (bits & VIRTIO_MMIO_INT_CONFIG) this.configGeneration = (this.configGeneration + 1) >>> 0;
    this.interruptStatus |= bits & (VIRTIO_MMIO_INT_VRING | VIRTIO_MMIO_INT_CONFIG);
    this.updateIrq();
  }

  private updateIrq(): void {
    const level = this.interruptStatus !== 0;
    if (level !== this.irqLevel) {
      this.irqLevel = level;
      this.irq.set(level);
    }
  }
}

const TWO32 = 0x1_0000_0000;
const lo32 = (a: number): number => (a % TWO32) >>> 0;
const hi32 = (a: number): number => Math.floor(a / TWO32) >>> 0;
/** Addresses are kept as numbers: exact below 2^53, and anything above is outside RAM anyway. */
/*
 * A ring address register half. Above 2^53 the sum is not exact, but no such address is
 * guest RAM: GuestMemory refuses anything that is not a safe integer inside RAM.
 */
const setLo = (a: Gpa, v: number): Gpa => gpa(hi32(a) * TWO32 + v);
const setHi = (a: Gpa, v: number): Gpa => gpa(v * TWO32 + lo32(a));
