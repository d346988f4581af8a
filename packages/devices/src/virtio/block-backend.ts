/**
 * Storage behind a virtio-blk device. Synchronous on purpose: a request is served inside
 * the guest's queue-notify write, so the guest sees completion as soon as it kicks.
 * Offsets and lengths are in bytes and always within [0, size).
 */
export interface BlockBackend {
  /** Size in bytes; the disk shows floor(size / 512) sectors. */
  readonly size: number;
  /** Refuse writes (the device then offers VIRTIO_BLK_F_RO). */
  readonly readonly?: boolean;
  /** Fill `dst` with the bytes at `offset`. */
  read(offset: number, dst: Uint8Array): void;
  /** Store `src` at `offset`. */
  write(offset: number, src: Uint8Array): void;
  /** Make completed writes durable (host fsync). */
  flush(): void;
}

/** A disk held in memory (tests, scratch disks, browser use). */
export class MemoryBlockBackend implements BlockBackend {
  readonly data: Uint8Array;
  readonly readonly: boolean;
  /** Number of flush() calls, for tests and statistics. */
  flushes = 0;

  /** `init`: a size in bytes (zero-filled) or the initial contents (used as is, not copied). */
  constructor(init: number | Uint8Array, options: { readonly?: boolean } = {}) {
    if (typeof init === "number") {
      if (!Number.isSafeInteger(init) || init < 0)
        throw new RangeError(`disk size ${init} must be a byte count >= 0`);
      this.data = new Uint8Array(init);
    } else {
      this.data = init;
    }
    this.readonly = options.readonly ?? false;
  }

  get size(): number {
    return this.data.length;
  }

  read(offset: number, dst: Uint8Array): void {
    this.check(offset, dst.length);
    dst.set(this.data.subarray(offset, offset + dst.length));
  }

  write(offset: number, src: Uint8Array): void {
    if (this.readonly) throw new Error("disk is read-only");
    this.check(offset, src.length);
    this.data.set(src, offset);
  }

  flush(): void {
    this.flushes++;
  }

  private check(offset: number, len: number): void {
    if (!(offset >= 0 && offset + len <= this.data.length)) {
      throw new RangeError(`disk access [${offset}, +${len}) is outside the ${this.data.length}-byte disk`);
    }
  }
}
