import { gpaAdd } from "@visor/memory";
import type { RateLimiter } from "../rate-limiter.ts";
import { stateObject } from "../state.ts";
import type { BlockBackend } from "./block-backend.ts";
import { feature, VIRTIO_ID_BLOCK } from "./constants.ts";
import { readConfigBytes, type VirtioContext, type VirtioDevice } from "./device.ts";
import type { ChainLimit, DescChain, Segment } from "./queue.ts";

/*
 * virtio-blk (virtio 1.1 §5.2). One request queue. A request is a chain of
 *   struct virtio_blk_req { le32 type; le32 reserved; le64 sector; }   (device-readable)
 *   data                                                              (readable for OUT, writable for IN)
 *   u8 status                                                         (the last writable byte)
 * Requests are served synchronously inside the notify, data moving directly between
 * guest RAM and the backend (no intermediate copy).
 *
 * Features offered: VIRTIO_BLK_F_SEG_MAX (seg_max = queue size - 2), VIRTIO_BLK_F_SIZE_MAX
 * (size_max = VIRTIO_BLK_SIZE_MAX bytes per segment), VIRTIO_BLK_F_FLUSH
 * (a FLUSH request calls backend.flush(): fsync for file disks), and VIRTIO_BLK_F_RO when
 * the backend is read-only (writes then complete with VIRTIO_BLK_S_IOERR).
 * Request types: IN, OUT, FLUSH, GET_ID; others complete with VIRTIO_BLK_S_UNSUPP.
 * A request without a 16-byte header or a status byte is a guest error (NEEDS_RESET).
 *
 * Request size: at most seg_max * size_max data bytes (what config space advertises,
 * virtio 1.2 §5.2.4), so one request moves a bounded amount between disk and guest. The
 * virtqueue refuses a longer chain before anything is read (ChainLimit); the request
 * completes with VIRTIO_BLK_S_IOERR and nothing touches the backend. Requests outside the
 * capacity, or not whole sectors, get IOERR too.
 */

export const VIRTIO_BLK_F_SIZE_MAX = 1;
export const VIRTIO_BLK_F_SEG_MAX = 2;
export const VIRTIO_BLK_F_RO = 5;
export const VIRTIO_BLK_F_BLK_SIZE = 6;
export const VIRTIO_BLK_F_FLUSH = 9;

export const VIRTIO_BLK_T_IN = 0;
export const VIRTIO_BLK_T_OUT = 1;
export const VIRTIO_BLK_T_FLUSH = 4;
export const VIRTIO_BLK_T_GET_ID = 8;

export const VIRTIO_BLK_S_OK = 0;
export const VIRTIO_BLK_S_IOERR = 1;
export const VIRTIO_BLK_S_UNSUPP = 2;

export const VIRTIO_BLK_ID_BYTES = 20;
/** size_max: the largest data segment, advertised with VIRTIO_BLK_F_SIZE_MAX (Linux needs >= 4 KiB). */
export const VIRTIO_BLK_SIZE_MAX = 64 * 1024;
export const SECTOR_SIZE = 512;
/** Size of struct virtio_blk_config up to and including write_zeroes_may_unmap + padding. */
const CONFIG_SIZE = 60;
const HEADER_SIZE = 16;
/** struct virtio_blk_config offsets (virtio 1.2 §5.2.4). */
const CONFIG_CAPACITY = 0;
const CONFIG_SIZE_MAX = 8;
const CONFIG_SEG_MAX = 12;
/** The status byte that ends every request. */
const STATUS_SIZE = 1;

export interface VirtioBlkOptions {
  backend: BlockBackend;
  /** Serial returned by GET_ID (at most 20 printable ASCII characters); default "visor". */
  id?: string;
  /** Request queue size offered (power of two); default 256. */
  queueSize?: number;
  /** Bus/statistics name; default "virtio-blk". */
  name?: string;
  /** Told about host I/O errors (the request completes with IOERR). Default: ignore. */
  onError?: (message: string) => void;
  /**
   * Bandwidth and operations limits (see rate-limiter.ts): a request over the limit stays
   * in the queue until the limiter's timer serves the queue again.
   */
  rateLimiter?: RateLimiter;
}

export interface VirtioBlkStats {
  reads: number;
  writes: number;
  flushes: number;
  bytesRead: number;
  bytesWritten: number;
  errors: number;
  /** Requests over seg_max * size_max data bytes, refused with IOERR before any I/O. */
  oversized: number;
}

export class VirtioBlk implements VirtioDevice {
  readonly name: string;
  readonly deviceId = VIRTIO_ID_BLOCK;
  readonly features: bigint;
  readonly queueMaxSizes: readonly number[];
  readonly configSize = CONFIG_SIZE;
  readonly backend: BlockBackend;
  readonly stats: VirtioBlkStats = {
    reads: 0,
    writes: 0,
    flushes: 0,
    bytesRead: 0,
    bytesWritten: 0,
    errors: 0,
    oversized: 0,
  };
  /** Capacity in 512-byte sectors. */
  readonly capacity: number;
  private readonly id: Uint8Array;
  private readonly config: Uint8Array;
  /** Largest data transfer of one request: seg_max * size_max. */
  readonly maxRequestBytes: number;
  private readonly limit: ChainLimit;
  private readonly onError: (message: string) => void;
  private ctx: VirtioContext | null = null;
  private readonly limiter: RateLimiter | null;

  constructor(options: VirtioBlkOptions) {
    const qs = options.queueSize ?? 256;
    if (!Number.isInteger(qs) || qs < 4 || qs > 32768 || (qs & (qs - 1)) !== 0) {
      throw new RangeError(`virtio-blk queue size ${qs} must be a power of two in [4, 32768]`);
    }
    this.name = options.name ?? "virtio-blk";
    this.backend = options.backend;
    this.onError = options.onError ?? (() => {});
    this.limiter = options.rateLimiter ?? null;
    this.limiter?.onWake(() => this.onNotify(0));
    this.queueMaxSizes = [qs];
    this.capacity = Math.floor(options.backend.size / SECTOR_SIZE);
    const id = options.id ?? "visor";
    if (!/^[\x20-\x7e]{0,20}$/.test(id)) {
      throw new RangeError(`virtio-blk id "${id}" must be at most 20 printable ASCII characters`);
    }
    this.id = new Uint8Array(VIRTIO_BLK_ID_BYTES);
    for (let i = 0; i < id.length; i++) this.id[i] = id.charCodeAt(i);
    let f = feature(VIRTIO_BLK_F_SEG_MAX) | feature(VIRTIO_BLK_F_SIZE_MAX) | feature(VIRTIO_BLK_F_FLUSH);
    if (options.backend.readonly) f |= feature(VIRTIO_BLK_F_RO);
    this.features = f;
    this.config = new Uint8Array(CONFIG_SIZE);
    const dv = new DataView(this.config.buffer);
    // seg_max: the chain also holds the header and the status descriptors.
    const segMax = qs - 2;
    dv.setBigUint64(CONFIG_CAPACITY, BigInt(this.capacity), true);
    dv.setUint32(CONFIG_SIZE_MAX, VIRTIO_BLK_SIZE_MAX, true);
    dv.setUint32(CONFIG_SEG_MAX, segMax, true);
    this.maxRequestBytes = segMax * VIRTIO_BLK_SIZE_MAX;
    this.limit = {
      readable: HEADER_SIZE + this.maxRequestBytes,
      writable: this.maxRequestBytes + STATUS_SIZE,
    };
  }

  readConfig(offset: number, size: 1 | 2 | 4): number {
    return readConfigBytes(this.config, offset, size);
  }

  writeConfig(_offset: number, _size: 1 | 2 | 4, _value: number): void {
    // Nothing is writable without VIRTIO_BLK_F_CONFIG_WCE.
  }

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
    let served = 0;
    for (let chain = q.pop(this.limit); chain !== null; chain = q.pop(this.limit)) {
      if (chain.readableLen < HEADER_SIZE || chain.writableLen < STATUS_SIZE) {
        ctx.deviceError(`request ${chain.head} has no header or no status byte`);
        return;
      }
      if (this.limiter !== null && !chain.oversized && !this.limiter.consume(this.requestBytes(chain))) {
        // Throttled: the request stays in the queue; the limiter's timer serves it later.
        q.undoPop();
        break;
      }
      const written = chain.oversized ? this.refuseOversized(chain) : this.serve(ctx, chain);
      q.pushUsed(chain.head, written);
      served++;
    }
    if (served > 0) ctx.usedBuffers(0);
  }

  /** The data bytes a request moves (0 for flush and get-id), for the rate limiter. */
  private requestBytes(chain: DescChain): number {
    const t = new Uint8Array(4);
    chain.read(0, t);
    const type = t[0]! | (t[1]! << 8) | (t[2]! << 16) | (t[3]! << 24);
    if (type === VIRTIO_BLK_T_IN) return chain.writableLen - STATUS_SIZE;
    if (type === VIRTIO_BLK_T_OUT) return chain.readableLen - HEADER_SIZE;
    return 0;
  }

  /** A request larger than advertised: IOERR in the status byte, nothing else read or written. */
  private refuseOversized(chain: DescChain): number {
    this.stats.oversized++;
    chain.write(chain.writableLen - STATUS_SIZE, Uint8Array.of(VIRTIO_BLK_S_IOERR));
    return STATUS_SIZE;
  }

  /** Serve one request; returns the bytes written into the chain (data + status). */
  private serve(ctx: VirtioContext, chain: DescChain): number {
    const hdr = new Uint8Array(HEADER_SIZE);
    chain.read(0, hdr);
    const dv = new DataView(hdr.buffer);
    const type = dv.getUint32(0, true);
    const sector = dv.getUint32(8, true) + dv.getUint32(12, true) * 0x1_0000_0000;
    const statusAt = chain.writableLen - 1;
    let status = VIRTIO_BLK_S_OK;
    let dataWritten = 0;
    switch (type) {
      case VIRTIO_BLK_T_IN: {
        const len = chain.writableLen - 1;
        if (!this.inRange(sector, len)) {
          status = VIRTIO_BLK_S_IOERR;
          break;
        }
        try {
          let off = sector * SECTOR_SIZE;
          for (const s of slices(chain.writable, 0, len)) {
            this.backend.read(off, ctx.ram.viewMut(s.addr, s.len));
            off += s.len;
          }
          dataWritten = len;
          this.stats.reads++;
          this.stats.bytesRead += len;
        } catch (e) {
          status = this.ioError("read", e);
        }
        break;
      }
      case VIRTIO_BLK_T_OUT: {
        const len = chain.readableLen - HEADER_SIZE;
        if (this.backend.readonly || !this.inRange(sector, len)) {
          status = VIRTIO_BLK_S_IOERR;
          break;
        }
        try {
          let off = sector * SECTOR_SIZE;
          for (const s of slices(chain.readable, HEADER_SIZE, len)) {
            this.backend.write(off, ctx.ram.view(s.addr, s.len));
            off += s.len;
          }
          this.stats.writes++;
          this.stats.bytesWritten += len;
        } catch (e) {
          status = this.ioError("write", e);
        }
        break;
      }
      case VIRTIO_BLK_T_FLUSH:
        try {
          this.backend.flush();
          this.stats.flushes++;
        } catch (e) {
          status = this.ioError("flush", e);
        }
        break;
      case VIRTIO_BLK_T_GET_ID: {
        const n = Math.min(VIRTIO_BLK_ID_BYTES, chain.writableLen - 1);
        dataWritten = chain.write(0, this.id.subarray(0, n));
        break;
      }
      default:
        status = VIRTIO_BLK_S_UNSUPP;
    }
    chain.write(statusAt, Uint8Array.of(status));
    return dataWritten + 1;
  }

  /** [sector, sector + len bytes) lies on the disk and len is whole sectors. */
  private inRange(sector: number, len: number): boolean {
    return len % SECTOR_SIZE === 0 && sector <= this.capacity && sector + len / SECTOR_SIZE <= this.capacity;
  }

  private ioError(op: string, e: unknown): number {
    this.stats.errors++;
    this.onError(`${this.name}: ${op} failed: ${e instanceof Error ? e.message : String(e)}`);
    return VIRTIO_BLK_S_IOERR;
  }

  /** The device model keeps no state between requests. */
  toState(): Record<string, never> {
    return {};
  }

  fromState(state: unknown): void {
    stateObject(state, "virtio-blk");
  }
}

/** The pieces of a segment list covering stream bytes [start, start + len). */
function* slices(segs: readonly Segment[], start: number, len: number): Generator<Segment> {
  let skip = start;
  let left = len;
  for (const s of segs) {
    if (left === 0) return;
    if (skip >= s.len) {
      skip -= s.len;
      continue;
    }
    const n = Math.min(s.len - skip, left);
    yield { addr: gpaAdd(s.addr, skip), len: n };
    left -= n;
    skip = 0;
  }
}
