import type { GuestMemory } from "@visor/memory";
import type { Virtqueue } from "./queue.ts";

/**
 * A virtio device model, independent of the transport that exposes it (virtio-mmio in
 * mmio.ts, legacy virtio-pci in pci-legacy.ts). The transport owns the registers, feature negotiation, the
 * virtqueues and the interrupt; the device owns its config space and what a request
 * means.
 *
 * Life cycle, driven by the transport:
 *   1. the driver negotiates features from `features` (the transport adds the ring
 *      features it implements: VERSION_1, INDIRECT_DESC, EVENT_IDX);
 *   2. on DRIVER_OK the transport calls `activate(ctx)`; from then on the device may use
 *      `ctx` at any time, including from host callbacks (a network frame arriving);
 *   3. on a notification the transport calls `onNotify(queueIndex)`;
 *   4. on device reset (status 0, or a machine reset) the transport calls `reset()` and
 *      the device must forget `ctx`.
 * A device reports guest mistakes with `ctx.deviceError(reason)`, never by throwing; the
 * transport still catches anything thrown and treats it the same way.
 */
export interface VirtioDevice {
  /** Short name for statistics and error messages ("virtio-blk"). */
  readonly name: string;
  /** Virtio device ID (§5): 1 net, 2 block, 3 console, 4 entropy. */
  readonly deviceId: number;
  /** Device-specific feature bits offered (ring and transport bits are added by the transport). */
  readonly features: bigint;
  /** Maximum size of each virtqueue; the length is the number of queues. */
  readonly queueMaxSizes: readonly number[];
  /** Size of the device-specific config space in bytes. */
  readonly configSize: number;
  /** Read `size` bytes (little-endian) of config space at `offset`; bytes past the end read 0. */
  readConfig(offset: number, size: 1 | 2 | 4): number;
  /** Driver write to config space; read-only fields ignore it. */
  writeConfig(offset: number, size: 1 | 2 | 4, value: number): void;
  /** The driver set DRIVER_OK: queues are set up and features are final. */
  activate(ctx: VirtioContext): void;
  /** The driver notified queue `queueIndex` (it is ready, and the device is active). */
  onNotify(queueIndex: number): void;
  /** Device reset: drop `ctx` and any per-driver state. */
  reset(): void;
  /** Device-model state for snapshots (the transport saves queues and registers). */
  toState(): unknown;
  fromState(state: unknown): void;
}

/** What the transport gives an active device. */
export interface VirtioContext {
  /** Guest RAM, and nothing else: every DMA goes through it (guest-physical addresses). */
  readonly ram: GuestMemory;
  /** Negotiated feature bits. */
  readonly features: bigint;
  readonly queues: readonly Virtqueue[];
  /** Buffers were returned on queue `index`: interrupt the driver if its ring asks for one. */
  usedBuffers(index: number): void;
  /** The device's config space changed (bumps ConfigGeneration, raises a config interrupt). */
  configChanged(): void;
  /** A guest error: set DEVICE_NEEDS_RESET, raise a config interrupt, stop all queues. */
  deviceError(reason: string): void;
}

/** Little-endian read of `size` bytes at `offset` of a config-space image; out of range reads 0. */
export function readConfigBytes(cfg: Uint8Array, offset: number, size: number): number {
  let v = 0;
  for (let i = size - 1; i >= 0; i--) {
    const o = offset + i;
    v = v * 256 + (o >= 0 && o < cfg.length ? cfg[o]! : 0);
  }
  return v >>> 0;
}
