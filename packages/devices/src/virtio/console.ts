import { ByteQueue } from "../byte-queue.ts";
import { stateIntArray, stateObject } from "../state.ts";
import { VIRTIO_ID_CONSOLE } from "./constants.ts";
import { readConfigBytes, type VirtioContext, type VirtioDevice } from "./device.ts";
import { type ChainLimit, MAX_CHAIN_BYTES } from "./queue.ts";

/*
 * virtio-console (virtio 1.1 §5.3) with a single port and no feature bits (no
 * VIRTIO_CONSOLE_F_MULTIPORT, F_SIZE or F_EMERG_WRITE): queue 0 is receiveq (host to
 * guest), queue 1 transmitq (guest to host). Linux shows it as /dev/hvc0.
 * Host input waits in a bounded buffer until the guest posts receive buffers.
 *
 * Output is flow-controlled the virtio way: when the host sink says it is full (`output`
 * returns false), the device stops taking transmit buffers; they stay in the ring, so the
 * guest's driver waits for them as for a slow line, and nothing piles up on the host.
 * `outputDrained()` resumes. A transmit buffer longer than VIRTIO_CONSOLE_MAX_CHUNK is
 * returned unread and counted in `dropped` (Linux sends at most 32 KiB per buffer).
 */

export const VIRTIO_CONSOLE_RX = 0;
export const VIRTIO_CONSOLE_TX = 1;
/** struct virtio_console_config: cols u16, rows u16, max_nr_ports u32, emerg_wr u32. */
const CONFIG_SIZE = 12;
/** Largest transmit buffer taken (copied) at once. */
export const VIRTIO_CONSOLE_MAX_CHUNK = 64 * 1024;
const TX_LIMIT: ChainLimit = { readable: VIRTIO_CONSOLE_MAX_CHUNK, writable: 0 };
/** Receive buffers are only written into, at most what the input buffer holds. */
const RX_LIMIT: ChainLimit = { readable: 0, writable: MAX_CHAIN_BYTES };

export interface VirtioConsoleOptions {
  /**
   * Receives what the guest writes, one call per transmit buffer. Returning false means
   * "full": the device takes no more transmit buffers until outputDrained() is called.
   * Default: discard.
   */
  output?: (bytes: Uint8Array) => unknown;
  /** Host input buffer size in bytes; default 4096. */
  inputCapacity?: number;
  /** Queue size offered for both queues; default 128. */
  queueSize?: number;
  /** Default "virtio-console". */
  name?: string;
}

export interface VirtioConsoleState {
  input: number[];
}

export class VirtioConsole implements VirtioDevice {
  readonly name: string;
  readonly deviceId = VIRTIO_ID_CONSOLE;
  readonly features = 0n;
  readonly queueMaxSizes: readonly number[];
  readonly configSize = CONFIG_SIZE;
  /** Transmit buffers returned unread because they were over VIRTIO_CONSOLE_MAX_CHUNK. */
  dropped = 0;
  private readonly output: (bytes: Uint8Array) => unknown;
  private readonly input: ByteQueue;
  /** The sink refused more output; transmit buffers wait in the ring until outputDrained(). */
  private outputFull = false;
  private readonly config = new Uint8Array(CONFIG_SIZE);
  private ctx: VirtioContext | null = null;

  constructor(options: VirtioConsoleOptions = {}) {
    this.name = options.name ?? "virtio-console";
    this.output = options.output ?? (() => {});
    this.input = new ByteQueue(options.inputCapacity ?? 4096);
    const qs = options.queueSize ?? 128;
    this.queueMaxSizes = [qs, qs];
  }

  /** Free space in the input buffer. */
  get inputFree(): number {
    return this.input.free;
  }

  /** Queue bytes for the guest; returns how many were accepted (the rest: try again later). */
  pushInput(bytes: Uint8Array): number {
    const n = this.input.push(bytes);
    if (n > 0) {
      try {
        this.deliver();
      } catch (e) {
        this.ctx?.deviceError(`input: ${e instanceof Error ? e.message : String(e)}`);
      }
    }
    return n;
  }

  readConfig(offset: number, size: 1 | 2 | 4): number {
    return readConfigBytes(this.config, offset, size);
  }

  writeConfig(_offset: number, _size: 1 | 2 | 4, _value: number): void {}

  activate(ctx: VirtioContext): void {
    this.ctx = ctx;
  }

  reset(): void {
    this.ctx = null;
  }

  /** Whether the sink has refused output and transmit buffers are being held. */
  get outputBlocked(): boolean {
    return this.outputFull;
  }

  /** The sink can take output again: take the transmit buffers that waited. */
  outputDrained(): void {
    this.outputFull = false;
    try {
      this.transmit();
    } catch (e) {
      this.ctx?.deviceError(`output: ${e instanceof Error ? e.message : String(e)}`);
    }
  }

  onNotify(queueIndex: number): void {
    if (this.ctx === null) return;
    if (queueIndex === VIRTIO_CONSOLE_RX) this.deliver();
    else if (queueIndex === VIRTIO_CONSOLE_TX) this.transmit();
  }

  private transmit(): void {
    const ctx = this.ctx;
    if (ctx === null) return;
    const q = ctx.queues[VIRTIO_CONSOLE_TX]!;
    let n = 0;
    while (!this.outputFull) {
      const chain = q.pop(TX_LIMIT);
      if (chain === null) break;
      if (chain.oversized) this.dropped++;
      else if (chain.readableLen > 0 && this.output(chain.readAll()) === false) this.outputFull = true;
      q.pushUsed(chain.head, 0);
      n++;
    }
    if (n > 0) ctx.usedBuffers(VIRTIO_CONSOLE_TX);
  }

  toState(): VirtioConsoleState {
    return { input: Array.from(this.input.peek(this.input.length)) };
  }

  fromState(state: unknown): void {
    const s = stateObject(state, "virtio-console");
    const input = stateIntArray(s, "input", "virtio-console", 0xff, { max: this.input.capacity });
    this.input.clear();
    this.input.push(Uint8Array.from(input));
  }

  private deliver(): void {
    const ctx = this.ctx;
    if (ctx === null) return;
    const q = ctx.queues[VIRTIO_CONSOLE_RX]!;
    let n = 0;
    while (this.input.length > 0) {
      const chain = q.pop(RX_LIMIT);
      if (chain === null) break;
      if (chain.oversized) {
        q.pushUsed(chain.head, 0);
        n++;
        continue;
      }
      const written = chain.write(0, this.input.peek(chain.writableLen));
      this.input.drop(written);
      q.pushUsed(chain.head, written);
      n++;
    }
    if (n > 0) ctx.usedBuffers(VIRTIO_CONSOLE_RX);
  }
}
