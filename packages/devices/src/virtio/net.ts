import type { RateLimiter } from "../rate-limiter.ts";
import { stateObject } from "../state.ts";
import { feature, VIRTIO_F_VERSION_1, VIRTIO_ID_NET } from "./constants.ts";
import { readConfigBytes, type VirtioContext, type VirtioDevice } from "./device.ts";
import type { NetBackend } from "./net-backend.ts";
import { type ChainLimit, MAX_CHAIN_BYTES } from "./queue.ts";

/*
 * virtio-net (virtio 1.1 §5.1) with one receive and one transmit queue, no control queue
 * and no offloads. Feature offered: VIRTIO_NET_F_MAC (the MAC in config space).
 *
 * Every buffer starts with struct virtio_net_hdr; with VIRTIO_F_VERSION_1 (or MRG_RXBUF)
 * it is the 12-byte virtio_net_hdr_v1 ending in num_buffers, which the device sets to 1
 * (no mergeable buffers: each receive chain must hold a whole frame, §5.1.6.3.1). Without
 * either (a legacy transport) it is 10 bytes.
 *
 * Frames from the backend that arrive while the guest has no receive buffers wait in a
 * bounded queue (tail drop when full) and go out as soon as buffers are posted. A frame
 * larger than the next receive chain is dropped and the chain kept. Frames arriving while
 * the driver is not running are dropped, as on a link that is down.
 *
 * Transmit chains are limited to the header plus VIRTIO_NET_MAX_FRAME: no segmentation
 * offload is offered, so the driver sends whole frames (virtio 1.2 §5.1.6.2: without
 * VIRTIO_NET_F_HOST_TSO4/TSO6/UFO the driver sets gso_type NONE), and without VIRTIO_NET_F_MTU
 * (§5.1.4) Linux allows an MTU up to ETH_MAX_MTU = 65535, i.e. a frame of 65535 + 14-byte
 * Ethernet header + 4-byte VLAN tag. A longer chain is dropped without being copied: it
 * is returned with used len 0 (the device wrote nothing into it, §2.7.8) and counted in
 * stats.txOversized.
 */

export const VIRTIO_NET_F_MAC = 5;
export const VIRTIO_NET_F_MRG_RXBUF = 15;
export const VIRTIO_NET_RX = 0;
export const VIRTIO_NET_TX = 1;
export const VIRTIO_NET_HDR_SIZE = 12;
export const VIRTIO_NET_HDR_SIZE_LEGACY = 10;
/**
 * Largest frame taken from the guest or from a backend: a 64 KiB payload plus the 14-byte
 * Ethernet header and a 4-byte VLAN tag (Linux's ETH_MAX_MTU is 65535; one spare byte).
 */
export const VIRTIO_NET_MAX_FRAME = 65536 + 18;
/** A receive chain is only written into, at most header + frame; its size costs the host nothing. */
const RX_LIMIT: ChainLimit = { readable: MAX_CHAIN_BYTES, writable: MAX_CHAIN_BYTES };
/** struct virtio_net_config: mac[6], status u16, max_virtqueue_pairs u16, mtu u16. */
const CONFIG_SIZE = 12;

export interface VirtioNetOptions {
  backend: NetBackend;
  /**
   * The guest's MAC address ("52:54:00:12:34:56" or 6 bytes). Default 52:54:00:12:34:56;
   * VMs sharing a LAN need distinct ones (see randomMac).
   */
  mac?: string | Uint8Array;
  /** Frames kept while the guest has no receive buffers; default 256. */
  rxQueueFrames?: number;
  /** Queue size offered for both queues; default 256. */
  queueSize?: number;
  /** Default "virtio-net". */
  name?: string;
  /** Limits on frames the guest sends (bytes and frames per second); see rate-limiter.ts. */
  txRateLimiter?: RateLimiter;
  /** Limits on frames delivered to the guest; frames wait in the host queue meanwhile. */
  rxRateLimiter?: RateLimiter;
}

export interface VirtioNetStats {
  rxFrames: number;
  rxBytes: number;
  /** Frames dropped: queue full, too big for the guest's buffers, or driver not running. */
  rxDropped: number;
  txFrames: number;
  txBytes: number;
  /** Transmitted frames the backend refused (threw). */
  txErrors: number;
  /** Transmit chains longer than header + VIRTIO_NET_MAX_FRAME, dropped without copying. */
  txOversized: number;
}

/** Parse "aa:bb:cc:dd:ee:ff" (or with '-'). Throws a one-line error on anything else. */
export function parseMac(text: string): Uint8Array {
  const m =
    /^([0-9a-f]{2})[:-]([0-9a-f]{2})[:-]([0-9a-f]{2})[:-]([0-9a-f]{2})[:-]([0-9a-f]{2})[:-]([0-9a-f]{2})$/i.exec(
      text,
    );
  if (m === null) throw new Error(`bad MAC address "${text}": expected six hex bytes like 52:54:00:12:34:56`);
  return Uint8Array.from(m.slice(1, 7), (h) => Number.parseInt(h, 16));
}

export function formatMac(mac: Uint8Array): string {
  return Array.from(mac, (b) => b.toString(16).padStart(2, "0")).join(":");
}

/**
 * A MAC in QEMU's locally administered 52:54:00 range with three bytes from `random`
 * (default: Math.random; pass a seeded source for reproducible machines).
 */
export function randomMac(random: () => number = Math.random): Uint8Array {
  const mac = Uint8Array.of(0x52, 0x54, 0x00, 0, 0, 0);
  for (let i = 3; i < 6; i++) mac[i] = Math.floor(random() * 256) & 0xff;
  return mac;
}

export class VirtioNet implements VirtioDevice {
  readonly name: string;
  readonly deviceId = VIRTIO_ID_NET;
  readonly features = feature(VIRTIO_NET_F_MAC);
  readonly queueMaxSizes: readonly number[];
  readonly configSize = CONFIG_SIZE;
  readonly mac: Uint8Array;
  readonly stats: VirtioNetStats = {
    rxFrames: 0,
    rxBytes: 0,
    rxDropped: 0,
    txFrames: 0,
    txBytes: 0,
    txErrors: 0,
    txOversized: 0,
  };
  private readonly backend: NetBackend;
  private readonly config = new Uint8Array(CONFIG_SIZE);
  private readonly maxPending: number;
  private readonly pending: Uint8Array[] = [];
  private ctx: VirtioContext | null = null;
  private hdrLen = VIRTIO_NET_HDR_SIZE;
  private readonly txLimiter: RateLimiter | null;
  private readonly rxLimiter: RateLimiter | null;

  constructor(options: VirtioNetOptions) {
    this.name = options.name ?? "virtio-net";
    this.backend = options.backend;
    const mac = options.mac ?? "52:54:00:12:34:56";
    this.mac = typeof mac === "string" ? parseMac(mac) : Uint8Array.from(mac);
    if (this.mac.length !== 6) throw new RangeError(`MAC address must be 6 bytes, got ${this.mac.length}`);
    this.config.set(this.mac, 0);
    this.maxPending = options.rxQueueFrames ?? 256;
    const qs = options.queueSize ?? 256;
    this.queueMaxSizes = [qs, qs];
    this.backend.onReceive((frame) => this.receive(frame));
    this.txLimiter = options.txRateLimiter ?? null;
    this.rxLimiter = options.rxRateLimiter ?? null;
    this.txLimiter?.onWake(() => this.onNotify(VIRTIO_NET_TX));
    this.rxLimiter?.onWake(() => this.onNotify(VIRTIO_NET_RX));
  }

  /** Frames waiting for receive buffers. */
  get pendingFrames(): number {
    return this.pending.length;
  }

  /** A frame for the guest (called by the backend). */
  receive(frame: Uint8Array): void {
    const ctx = this.ctx;
    if (ctx === null || frame.length === 0 || frame.length > VIRTIO_NET_MAX_FRAME) {
      this.stats.rxDropped++;
      return;
    }
    if (this.pending.length >= this.maxPending) {
      this.stats.rxDropped++;
      return;
    }
    this.pending.push(frame);
    try {
      this.deliver(ctx);
    } catch (e) {
      ctx.deviceError(`receive: ${e instanceof Error ? e.message : String(e)}`);
    }
  }

  readConfig(offset: number, size: 1 | 2 | 4): number {
    return readConfigBytes(this.config, offset, size);
  }

  writeConfig(_offset: number, _size: 1 | 2 | 4, _value: number): void {
    // The MAC is writable only with VIRTIO_NET_F_CTRL_MAC_ADDR / legacy; not offered.
  }

  activate(ctx: VirtioContext): void {
    this.ctx = ctx;
    const modern = (ctx.features & (feature(VIRTIO_F_VERSION_1) | feature(VIRTIO_NET_F_MRG_RXBUF))) !== 0n;
    this.hdrLen = modern ? VIRTIO_NET_HDR_SIZE : VIRTIO_NET_HDR_SIZE_LEGACY;
  }

  reset(): void {
    this.ctx = null;
    this.pending.length = 0;
  }

  onNotify(queueIndex: number): void {
    const ctx = this.ctx;
    if (ctx === null) return;
    if (queueIndex === VIRTIO_NET_RX) this.deliver(ctx);
    else if (queueIndex === VIRTIO_NET_TX) this.transmit(ctx);
  }

  /** Frames waiting in the host queue are not saved: a snapshot drops them, as a network may. */
  toState(): Record<string, never> {
    return {};
  }

  fromState(state: unknown): void {
    stateObject(state, "virtio-net");
    this.pending.length = 0;
  }

  /** What one transmit chain may hold: the header and one frame, nothing device-writable. */
  get txLimit(): ChainLimit {
    return { readable: this.hdrLen + VIRTIO_NET_MAX_FRAME, writable: 0 };
  }

  private transmit(ctx: VirtioContext): void {
    const q = ctx.queues[VIRTIO_NET_TX]!;
    const limit = this.txLimit;
    let n = 0;
    for (let chain = q.pop(limit); chain !== null; chain = q.pop(limit)) {
      if (chain.oversized) {
        q.pushUsed(chain.head, 0);
        n++;
        this.stats.txOversized++;
        continue;
      }
      if (chain.readableLen < this.hdrLen) {
        ctx.deviceError(`transmit buffer ${chain.head} is shorter than the ${this.hdrLen}-byte header`);
        return;
      }
      if (this.txLimiter !== null && !this.txLimiter.consume(chain.readableLen - this.hdrLen)) {
        // Throttled: the frame stays in the queue; the limiter's timer serves it later.
        q.undoPop();
        break;
      }
      const frame = chain.readAll(this.hdrLen);
      q.pushUsed(chain.head, 0);
      n++;
      if (frame.length === 0) continue;
      this.stats.txFrames++;
      this.stats.txBytes += frame.length;
      try {
        this.backend.send(frame);
      } catch {
        this.stats.txErrors++;
      }
    }
    if (n > 0) ctx.usedBuffers(VIRTIO_NET_TX);
  }

  private deliver(ctx: VirtioContext): void {
    const q = ctx.queues[VIRTIO_NET_RX]!;
    let n = 0;
    const hdr = new Uint8Array(this.hdrLen);
    if (this.hdrLen === VIRTIO_NET_HDR_SIZE) hdr[10] = 1; // num_buffers = 1 (le16)
    while (this.pending.length > 0) {
      if (this.rxLimiter !== null && !this.rxLimiter.consume(this.pending[0]!.length)) break;
      const chain = q.pop(RX_LIMIT);
      if (chain === null) break;
      const frame = this.pending.shift()!;
      const need = this.hdrLen + frame.length;
      if (chain.writableLen < need) {
        q.undoPop();
        this.stats.rxDropped++;
        continue;
      }
      chain.write(0, hdr);
      chain.write(this.hdrLen, frame);
      q.pushUsed(chain.head, need);
      this.stats.rxFrames++;
      this.stats.rxBytes += frame.length;
      n++;
    }
    if (n > 0) ctx.usedBuffers(VIRTIO_NET_RX);
  }
}
