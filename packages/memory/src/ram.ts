import { type Hpa, PAGE_SIZE } from "./address.ts";
import { type WasmMemory, wasmMemory } from "./wasm-api.ts";

const GiB = 2 ** 30;

/**
 * The largest guest RAM a Visor machine supports: 16 GiB (`visor run --memory 16G`).
 *
 * Every RAM offset and physical address is a plain JS number (exact below 2^53), so the
 * arithmetic holds far beyond this; the limit is what one VM may ask of its host. RAM is
 * one ArrayBuffer the OS zero-fills lazily, but a guest can touch all of it, a snapshot is
 * built in host memory (up to another RAM's worth), a migration receiver buffers every page
 * it gets before the machine is built, and the decoded-instruction index and dirty-page
 * bitmap grow with RAM. The hypervisor's own page-table pool (at most 1/32 of this, see
 * the hypervisor package) comes on top.
 */
export const MAX_GUEST_MEMORY = 16 * GiB;

/** Bits in one word of the dirty-page bitmap. */
const DIRTY_WORD_BITS = 32;

/** Thrown when a guest-supplied physical range is not entirely inside RAM. */
export class GuestMemoryError extends RangeError {
  override name = "GuestMemoryError";
}

/**
 * The host buffer: one contiguous little-endian buffer mapped at `base` in the hart's
 * (host-)physical address space. Under the hypervisor it holds guest RAM followed by the
 * hypervisor's page-table pool. Hot-path users (the CPU) index the typed-array views
 * directly with `pa - base`; the bounds-checked accessors below take host-physical
 * addresses (`Hpa`) only. Nothing a guest controls comes here: device DMA, SBI, HTIF and
 * loaders get a `GuestMemory` (guest RAM only), page-table code an `HvRegion` (the pool);
 * see guest-memory.ts.
 */
export class GuestRam {
  readonly base: number;
  readonly size: number;
  readonly end: number;
  readonly buffer: ArrayBuffer;
  /**
   * The WebAssembly.Memory whose buffer `buffer` is, when RAM could be given one (up to
   * WASM_RAM_LIMIT, a multiple of 64 KiB, a host with WebAssembly): binary translation
   * (@visor/cpu jit/) addresses RAM from generated code through it.
   */
  readonly memory: WasmMemory | undefined;
  readonly u8: Uint8Array;
  readonly dv: DataView;
  /** Dirty-page bitmap (one bit per 4 KiB page), valid while `dirtyLogging` is true. */
  readonly dirty: Uint32Array;
  dirtyLogging = false;
  /** Called when dirty logging is switched on or cleared, so CPUs can drop write TLBs. */
  onDirtyLogReset: (() => void) | undefined;
  /**
   * Called after a write that did not come from a CPU's own store path (device DMA,
   * loaders), with the RAM offset and length, so CPUs can drop decoded instructions.
   */
  onExternalWrite: ((off: number, len: number) => void) | undefined;

  constructor(base: number, size: number, buffer?: ArrayBuffer) {
    if (!Number.isSafeInteger(base) || base < 0 || base % 4096 !== 0) {
      throw new RangeError(`RAM base 0x${base.toString(16)} is not page-aligned`);
    }
    if (!Number.isSafeInteger(size) || size <= 0 || size % 4096 !== 0) {
      throw new RangeError(`RAM size ${size} is not a positive multiple of 4 KiB`);
    }
    this.base = base;
    this.size = size;
    this.end = base + size;
    this.memory = buffer === undefined && size <= WASM_RAM_LIMIT ? wasmMemory(size) : undefined;
    this.buffer = buffer ?? this.memory?.buffer ?? allocate(size);
    if (this.buffer.byteLength !== size) throw new RangeError("RAM buffer size mismatch");
    this.u8 = new Uint8Array(this.buffer);
    this.dv = new DataView(this.buffer);
    this.dirty = new Uint32Array(Math.ceil(size / PAGE_SIZE / DIRTY_WORD_BITS));
  }

  /** True when [pa, pa+len) (host-physical) lies entirely in the buffer. */
  contains(pa: number, len = 1): boolean {
    return pa >= this.base && len >= 0 && pa + len <= this.end;
  }

  private check(pa: number, len: number): number {
    if (
      !(Number.isInteger(pa) && Number.isInteger(len) && len >= 0 && pa >= this.base && pa + len <= this.end)
    ) {
      throw new GuestMemoryError(
        `guest memory access [0x${pa.toString(16)}, +0x${len.toString(16)}) is outside RAM [0x${this.base.toString(16)}, 0x${this.end.toString(16)})`,
      );
    }
    return pa - this.base;
  }

  /** A zero-copy, bounds-checked view of [pa, pa+len) for reading. */
  view(pa: Hpa, len: number): Uint8Array {
    const off = this.check(pa, len);
    return this.u8.subarray(off, off + len);
  }

  /** A zero-copy, bounds-checked view of [pa, pa+len) for writing; marks the pages dirty. */
  viewMut(pa: Hpa, len: number): Uint8Array {
    const off = this.check(pa, len);
    this.markDirty(off, len);
    return this.u8.subarray(off, off + len);
  }

  read(pa: Hpa, dst: Uint8Array): void {
    dst.set(this.view(pa, dst.length));
  }

  write(pa: Hpa, src: Uint8Array): void {
    this.viewMut(pa, src.length).set(src);
  }

  read8(pa: Hpa): number {
    return this.u8[this.check(pa, 1)]!;
  }
  read16(pa: Hpa): number {
    return this.dv.getUint16(this.check(pa, 2), true);
  }
  read32(pa: Hpa): number {
    return this.dv.getUint32(this.check(pa, 4), true);
  }
  read64(pa: Hpa): bigint {
    return this.dv.getBigUint64(this.check(pa, 8), true);
  }
  write8(pa: Hpa, v: number): void {
    const off = this.check(pa, 1);
    this.markDirty(off, 1);
    this.u8[off] = v;
  }
  write16(pa: Hpa, v: number): void {
    const off = this.check(pa, 2);
    this.markDirty(off, 2);
    this.dv.setUint16(off, v, true);
  }
  write32(pa: Hpa, v: number): void {
    const off = this.check(pa, 4);
    this.markDirty(off, 4);
    this.dv.setUint32(off, v >>> 0, true);
  }
  write64(pa: Hpa, v: bigint): void {
    const off = this.check(pa, 8);
    this.markDirty(off, 8);
    this.dv.setBigUint64(off, BigInt.asUintN(64, v), true);
  }

  /**
   * Note a write to [off, off+len) (offsets from `base`) made outside a CPU: tell the
   * CPUs (decoded-instruction caches) and mark the pages dirty if logging is on.
   */
  markDirty(off: number, len: number): void {
    this.onExternalWrite?.(off, len);
    if (!this.dirtyLogging || len <= 0) return;
    const last = Math.floor((off + len - 1) / PAGE_SIZE);
    for (let p = Math.floor(off / PAGE_SIZE); p <= last; p++) this.setDirtyBit(p);
  }

  /**
   * Log a write to the page holding RAM offset `off` (offsets from `base`), if dirty
   * logging is on. For writers that do their own stores (the CPUs, the page walkers).
   * RAM offsets above 4 GiB are plain numbers: no 32-bit shifts on them.
   */
  logWrite(off: number): void {
    if (this.dirtyLogging) this.setDirtyBit(Math.floor(off / PAGE_SIZE));
  }

  /** Set the dirty bit of page index `page` (RAM offset / 4 KiB). */
  private setDirtyBit(page: number): void {
    this.dirty[Math.floor(page / DIRTY_WORD_BITS)]! |= 1 << (page % DIRTY_WORD_BITS);
  }

  /** Start logging writes. All pages start clean. */
  enableDirtyLog(): void {
    this.dirty.fill(0);
    this.dirtyLogging = true;
    this.onDirtyLogReset?.();
  }

  disableDirtyLog(): void {
    this.dirtyLogging = false;
  }

  /** Page indexes (relative to `base`) written since the last call, and clear the log. */
  fetchAndClearDirty(): number[] {
    const pages: number[] = [];
    const d = this.dirty;
    for (let w = 0; w < d.length; w++) {
      let bits = d[w]!;
      if (bits === 0) continue;
      d[w] = 0;
      while (bits !== 0) {
        const b = 31 - Math.clz32(bits & -bits);
        pages.push(w * DIRTY_WORD_BITS + b);
        bits &= bits - 1;
      }
    }
    this.onDirtyLogReset?.();
    return pages;
  }
}

/**
 * RAM up to this size is a WebAssembly.Memory: every RAM offset is then an int32, as the
 * translated code's TLB arithmetic needs (above it, RAM is a plain buffer and harts
 * interpret).
 */
export const WASM_RAM_LIMIT = 2 ** 31;

/** A zeroed buffer of `size` bytes, or a one-line error when the host cannot provide it. */
function allocate(size: number): ArrayBuffer {
  try {
    return new ArrayBuffer(size);
  } catch {
    throw new RangeError(`cannot allocate ${size} bytes of RAM: not enough host memory`);
  }
}
