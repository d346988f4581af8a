import { stateObject } from "../state.ts";
import { VIRTIO_ID_RNG } from "./constants.ts";
import type { VirtioContext, VirtioDevice } from "./device.ts";
import { type ChainLimit, MAX_CHAIN_BYTES } from "./queue.ts";

/*
 * virtio-rng, the entropy device (virtio 1.1 §5.4): one request queue; each chain's
 * device-writable buffers are filled with random bytes. No feature bits, no config space.
 *
 * Host work is bounded per request (VIRTIO_RNG_MAX_REQUEST bytes, however large the
 * buffer: the device may fill less, §5.4.6) and per notification (VIRTIO_RNG_MAX_PER_KICK
 * bytes): chains beyond that budget stay in the ring and are served at the next
 * notification. One scratch buffer is reused, so nothing is allocated per request.
 * Device-readable bytes in a request are a malformed request: it is returned unused.
 */

/** Fills `buf` with random bytes. */
export type EntropySource = (buf: Uint8Array) => void;

/** Web Crypto's limit for one getRandomValues call. */
const MAX_ENTROPY_CHUNK = 65536;
/** Most bytes given for one request (the device may fill less than the buffer, §5.4.6). */
export const VIRTIO_RNG_MAX_REQUEST = 65536;
/** Most bytes generated for one notification; the rest waits for the next one. */
export const VIRTIO_RNG_MAX_PER_KICK = 4 * VIRTIO_RNG_MAX_REQUEST;
/** The request queue holds device-writable buffers only; their size costs nothing (capped above). */
const REQUEST_LIMIT: ChainLimit = { readable: 0, writable: MAX_CHAIN_BYTES };

interface WebCrypto {
  getRandomValues(a: Uint8Array): Uint8Array;
}

/** crypto.getRandomValues (a web-standard global, also in Node), in 64 KiB pieces. */
export const webCryptoEntropy: EntropySource = (buf) => {
  const c = (globalThis as { crypto?: WebCrypto }).crypto;
  if (c === undefined) throw new Error("no crypto.getRandomValues in this JS host; pass an entropy source");
  for (let i = 0; i < buf.length; i += MAX_ENTROPY_CHUNK) {
    c.getRandomValues(buf.subarray(i, Math.min(buf.length, i + MAX_ENTROPY_CHUNK)));
  }
};

export interface VirtioRngOptions {
  /** Default: webCryptoEntropy. */
  entropy?: EntropySource;
  /** Queue size offered; default 64. */
  queueSize?: number;
  /** Default "virtio-rng". */
  name?: string;
}

export class VirtioRng implements VirtioDevice {
  readonly name: string;
  readonly deviceId = VIRTIO_ID_RNG;
  readonly features = 0n;
  readonly queueMaxSizes: readonly number[];
  readonly configSize = 0;
  /** Bytes handed to the guest so far. */
  bytesServed = 0;
  private readonly entropy: EntropySource;
  private readonly scratch = new Uint8Array(VIRTIO_RNG_MAX_REQUEST);
  private ctx: VirtioContext | null = null;

  constructor(options: VirtioRngOptions = {}) {
    this.name = options.name ?? "virtio-rng";
    this.entropy = options.entropy ?? webCryptoEntropy;
    this.queueMaxSizes = [options.queueSize ?? 64];
  }

  readConfig(_offset: number, _size: 1 | 2 | 4): number {
    return 0;
  }

  writeConfig(_offset: number, _size: 1 | 2 | 4, _value: number): void {}

  activate(ctx: VirtioContext): void {
    this.ctx = ctx;
  }

  reset(): void {
    this.ctx = null;
  }

  onNotify(queueIndex: number): void {
    const ctx = this.ctx;
    if (ctx === null || queueIndex !== 0) return;
    const q = ctx.queues[0]!;
    let n = 0;
    let budget = VIRTIO_RNG_MAX_PER_KICK;
    while (budget > 0) {
      const chain = q.pop(REQUEST_LIMIT);
      if (chain === null) break;
      n++;
      if (chain.oversized) {
        q.pushUsed(chain.head, 0);
        continue;
      }
      // Fill a private buffer and copy: getRandomValues refuses views of shared memory,
      // which guest RAM may be.
      const bytes = this.scratch.subarray(0, Math.min(chain.writableLen, VIRTIO_RNG_MAX_REQUEST, budget));
      this.entropy(bytes);
      const written = chain.write(0, bytes);
      this.bytesServed += written;
      budget -= bytes.length;
      q.pushUsed(chain.head, written);
    }
    if (n > 0) ctx.usedBuffers(0);
  }

  /** No state of its own. */
  toState(): Record<string, never> {
    return {};
  }

  fromState(state: unknown): void {
    stateObject(state, "virtio-rng");
  }
}
