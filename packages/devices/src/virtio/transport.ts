import type { GuestMemory } from "@visor/memory";
import { DeviceStateError } from "../state.ts";
import { VIRTIO_STATUS_DEVICE_NEEDS_RESET, VIRTIO_STATUS_DRIVER_OK } from "./constants.ts";
import type { VirtioContext, VirtioDevice } from "./device.ts";
import { Virtqueue } from "./queue.ts";

/** Interrupt causes, the same bits in virtio-mmio's InterruptStatus and legacy PCI's ISR. */
export const VIRTIO_INT_USED_BUFFERS = 1;
export const VIRTIO_INT_CONFIG = 2;

/**
 * What the virtio transports share (virtio-mmio, legacy virtio-pci): the device and its
 * virtqueues, the context handed to the device, notification, device-specific
 * configuration access, activation at DRIVER_OK, reset, the DEVICE_NEEDS_RESET error
 * path, and restoring the device from a saved state. A transport adds its register
 * layout, feature negotiation and how an interrupt reaches the guest.
 */
export abstract class VirtioTransport {
  readonly name: string;
  readonly device: VirtioDevice;
  readonly queues: readonly Virtqueue[];
  protected readonly onError: (message: string) => void;
  protected readonly ctx: VirtioContext;
  protected status = 0;
  protected active = false;

  protected constructor(
    device: VirtioDevice,
    ram: GuestMemory,
    name: string,
    onError?: (message: string) => void,
  ) {
    this.device = device;
    this.name = name;
    this.onError = onError ?? (() => {});
    const owner = { queueError: (q: number, reason: string) => this.deviceError(`queue ${q}: ${reason}`) };
    this.queues = device.queueMaxSizes.map((max, i) => new Virtqueue(ram, owner, i, max));
    const self = this;
    this.ctx = {
      ram,
      get features() {
        return self.negotiatedFeatures;
      },
      queues: this.queues,
      usedBuffers: (index: number) => this.usedBuffers(index),
      configChanged: () => this.configChanged(),
      deviceError: (reason: string) => this.deviceError(reason),
    };
  }

  /** The device status register (§2.1). */
  get deviceStatus(): number {
    return this.status;
  }

  /** The features the driver accepted. */
  abstract get negotiatedFeatures(): bigint;

  /** Raise `bits` (VIRTIO_INT_*) in the transport's interrupt status and update the line. */
  protected abstract interrupt(bits: number): void;

  /**
   * A queue notification (a QueueNotify register write), callable directly by an
   * ioeventfd-style fast path on the bus.
   */
  notify(queue: number): void {
    if (!this.active || this.status & VIRTIO_STATUS_DEVICE_NEEDS_RESET) return;
    const q = this.queues[queue];
    if (q === undefined || !q.ready) return;
    try {
      this.device.onNotify(queue);
    } catch (e) {
      this.deviceError(`${this.device.name}: ${message(e)}`);
    }
  }

  protected readConfig(offset: number, size: 1 | 2 | 4): number {
    try {
      return this.device.readConfig(offset, size) >>> 0;
    } catch (e) {
      this.deviceError(`config read: ${message(e)}`);
      return 0;
    }
  }

  protected writeConfig(offset: number, size: 1 | 2 | 4, value: number): void {
    try {
      this.device.writeConfig(offset, size, value);
    } catch (e) {
      this.deviceError(`config write: ${message(e)}`);
    }
  }

  /** The shared half of a device reset: the device, its queues and the status. */
  protected resetDevice(): void {
    this.active = false;
    try {
      this.device.reset();
    } catch (e) {
      this.onError(`${this.device.name}: reset failed: ${message(e)}`);
    }
    for (const q of this.queues) q.reset();
    this.status = 0;
  }

  /** DRIVER_OK with the features final: start the device, then look at buffers already queued. */
  protected startDevice(): void {
    this.active = true;
    try {
      this.device.activate(this.ctx);
    } catch (e) {
      this.deviceError(`${this.device.name}: activate: ${message(e)}`);
      return;
    }
    // Buffers made available before DRIVER_OK (rx buffers, typically) are seen now.
    for (const q of this.queues) if (q.ready) this.notify(q.index);
  }

  /**
   * Restore the queues and the device from a saved state (`what` names the transport in
   * errors); `check` may refuse a restored queue. Re-activates a device that was running.
   */
  protected restoreDevice(
    what: string,
    queues: unknown,
    device: unknown,
    status: number,
    ring: { eventIdx: boolean; indirect: boolean },
    check?: (q: Virtqueue) => string | null,
  ): void {
    if (!Array.isArray(queues) || queues.length !== this.queues.length) {
      throw new DeviceStateError(`invalid ${what} state: queues must have ${this.queues.length} entries`);
    }
    this.queues.forEach((q, i) => {
      q.fromState(queues[i], ring.eventIdx, ring.indirect);
      const why = check?.(q);
      if (why) throw new DeviceStateError(`invalid ${what} state: queue ${i} ${why}`);
    });
    this.device.reset();
    this.device.fromState(device);
    this.status = status;
    this.active = false;
    if (status & VIRTIO_STATUS_DRIVER_OK && !(status & VIRTIO_STATUS_DEVICE_NEEDS_RESET)) {
      this.active = true;
      this.device.activate(this.ctx);
    }
  }

  private usedBuffers(index: number): void {
    const q = this.queues[index];
    if (q === undefined || !q.needsInterrupt()) return;
    this.interrupt(VIRTIO_INT_USED_BUFFERS);
  }

  protected configChanged(): void {
    this.interrupt(VIRTIO_INT_CONFIG);
  }

  /** A guest error: DEVICE_NEEDS_RESET, queues stopped, a config-change interrupt (§2.1.1). */
  protected deviceError(reason: string): void {
    if (this.status & VIRTIO_STATUS_DEVICE_NEEDS_RESET) return;
    this.status |= VIRTIO_STATUS_DEVICE_NEEDS_RESET;
    for (const q of this.queues) q.broken = true;
    this.onError(`${this.name}: ${reason}`);
    this.configChanged();
  }
}

function message(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
