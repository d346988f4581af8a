import type { BlockBackend } from "../virtio/block-backend.ts";
import type { ImageFile } from "./image-file.ts";

/*
 * qcow2, QEMU's copy-on-write image format, versions 2 and 3 (the layout is QEMU's
 * docs/interop/qcow2.txt; the constants below come from it). All integers big-endian.
 *
 *   cluster 0    header, header extensions, backing file name
 *   L1 table     one 8-byte entry per L2 table: the L2 table's offset (0: none yet)
 *   L2 table     one cluster; one 8-byte entry per data cluster: its offset, or 0 (read the
 *                backing file), or the zero flag (v3: reads as zeros)
 *   refcounts    a refcount table of refcount-block offsets; each refcount block holds
 *                one (1 << refcount_order)-bit count per cluster of the file
 *
 * A guest offset splits into L1 index, L2 index and offset in the cluster. A write to a
 * cluster that is not allocated takes a new cluster at the end of the file (its refcount
 * set first), fills it with the backing file's bytes around the written range
 * (copy-on-write) and then points the L2 entry at it. Refcounts are written as they
 * change; L2 tables and L1 entries are cached and written at flush(), after an fsync of
 * the data and refcounts, so a crash leaves at worst leaked clusters (which
 * `qemu-img check` reports as leaks, not corruption), never a table pointing at
 * unwritten data.
 *
 * Everything the file says is checked before use: offsets against the file size and
 * cluster alignment, table sizes against fixed limits (QEMU's), metadata that would
 * overlap other metadata. An image this code cannot handle safely is refused with one
 * line naming the file and the reason (Qcow2Error).
 */

export const QCOW2_MAGIC = 0x514649fb; // "QFI\xfb"
/** The largest L1 table read into memory (QEMU's QCOW_MAX_L1_SIZE). */
export const QCOW2_MAX_L1_BYTES = 32 * 1024 * 1024;
/** The largest refcount table (QEMU's QCOW_MAX_REFTABLE_SIZE). */
export const QCOW2_MAX_REFTABLE_BYTES = 8 * 1024 * 1024;
/** The longest backing file name (QEMU's limit: 1023 bytes). */
export const QCOW2_MAX_BACKING_NAME = 1023;
/** The largest virtual disk accepted: 1 PiB (offsets stay exact JavaScript numbers). */
export const QCOW2_MAX_VIRTUAL_SIZE = 2 ** 50;
/** Bytes of L2 tables cached before the cache is written out and dropped. */
const L2_CACHE_BYTES = 8 * 1024 * 1024;
/** Clusters with a nonzero refcount skipped past the end of the file before giving up. */
const MAX_ALLOC_SKIP = 1 << 16;

const V2_HEADER_LENGTH = 72;
const V3_HEADER_LENGTH = 104;
/** The header qcow2Create writes: v3 plus the compression type byte, padded to 8. */
const CREATE_HEADER_LENGTH = 112;

// Header field offsets.
const H_VERSION = 4;
const H_BACKING_OFFSET = 8;
const H_BACKING_SIZE = 16;
const H_CLUSTER_BITS = 20;
const H_SIZE = 24;
const H_CRYPT = 32;
const H_L1_SIZE = 36;
const H_L1_OFFSET = 40;
const H_REFTABLE_OFFSET = 48;
const H_REFTABLE_CLUSTERS = 56;
const H_NB_SNAPSHOTS = 60;
const H_INCOMPAT = 72;
const H_AUTOCLEAR = 88;
const H_REFCOUNT_ORDER = 96;
const H_HEADER_LENGTH = 100;
const H_COMPRESSION_TYPE = 104;

// Incompatible feature bits.
const INCOMPAT_DIRTY = 0;
const INCOMPAT_CORRUPT = 1;
const INCOMPAT_DATA_FILE = 2;
const INCOMPAT_COMPRESSION = 3;
const INCOMPAT_EXTL2 = 4;
const KNOWN_INCOMPAT = 0b11111;

// Header extension types.
const EXT_END = 0;
const EXT_BACKING_FORMAT = 0xe2792aca;
const EXT_FEATURE_TABLE = 0x6803f857;

// L1 / L2 entry bits, in the high and low 32-bit halves of the 64-bit entry.
const HI_COPIED = 0x8000_0000;
const HI_COMPRESSED = 0x4000_0000;
const HI_OFFSET_MASK = 0x00ff_ffff; // offset bits 32..55
const LO_OFFSET_MASK = 0xffff_fe00; // offset bits 9..31
const L1_HI_RESERVED = 0x7f00_0000;
const LO_ZERO = 1;

/** An image this code refuses or that turned out to be malformed; the message names the file. */
export class Qcow2Error extends Error {
  override name = "Qcow2Error";
}

export type BackingFormat = "raw" | "qcow2";

export interface Qcow2OpenOptions {
  /** Open for reading only; writes throw. */
  readonly?: boolean;
  /**
   * Opens the backing file the header names (`name` exactly as stored; resolving it is the
   * caller's business, as is limiting the chain's depth). `format` is the one the header
   * extension records, if any. Required when the image has a backing file.
   */
  openBacking?: (name: string, format: BackingFormat | undefined) => BlockBackend;
}

/** What the header says, for `visor` and tests (`qemu-img info` in short). */
export interface Qcow2Info {
  version: 2 | 3;
  clusterSize: number;
  size: number;
  backingFile: string | undefined;
  backingFormat: BackingFormat | undefined;
  refcountBits: number;
  snapshots: number;
  dirty: boolean;
  corrupt: boolean;
}

interface Entry {
  /** 0: unallocated; otherwise the cluster's (or table's) offset in the file. */
  offset: number;
  hi: number;
  lo: number;
}

/** Split a big-endian 64-bit entry at `at` of `b`. */
function entryAt(dv: DataView, at: number): Entry {
  const hi = dv.getUint32(at);
  const lo = dv.getUint32(at + 4);
  // `&` yields a signed int32: the low word's bit 31 would make the offset negative
  return { hi, lo, offset: (hi & HI_OFFSET_MASK) * 2 ** 32 + ((lo & LO_OFFSET_MASK) >>> 0) };
}

function putEntry(dv: DataView, at: number, offset: number, hiFlags: number): void {
  dv.setUint32(at, (Math.floor(offset / 2 ** 32) | hiFlags) >>> 0);
  dv.setUint32(at + 4, offset >>> 0);
}

function u64(dv: DataView, at: number): number {
  const v = dv.getBigUint64(at);
  return v > BigInt(Number.MAX_SAFE_INTEGER) ? Number.POSITIVE_INFINITY : Number(v);
}

function hex(n: number): string {
  return `0x${n.toString(16)}`;
}

/** Read the first bytes of an image file: is it qcow2 (by its magic)? */
export function looksLikeQcow2(head: Uint8Array): boolean {
  return head.length >= 4 && new DataView(head.buffer, head.byteOffset, 4).getUint32(0) === QCOW2_MAGIC;
}

/**
 * A qcow2 image as a BlockBackend. Open it with Qcow2Image.open; create a new one with
 * qcow2Create. Synchronous, like every BlockBackend.
 */
export class Qcow2Image implements BlockBackend {
  readonly file: ImageFile;
  readonly size: number;
  readonly info: Qcow2Info;
  readonly backing: BlockBackend | null;
  private ro: boolean;
  private readonly cs: number;
  private readonly l2Entries: number;
  private readonly refcountOrder: number;
  /** Refcount entries per refcount block. */
  private readonly perBlock: number;
  private readonly l1: Uint8Array;
  private readonly l1dv: DataView;
  private readonly l1Offset: number;
  private refTable: Uint8Array;
  private refdv: DataView;
  private refTableOffset: number;
  private fileSize: number;
  /** The next cluster index to try when allocating (the end of the file at open). */
  private nextFree: number;
  private readonly l2Cache = new Map<number, Uint8Array>();
  private readonly dirtyL2 = new Set<number>();
  private readonly dirtyL1 = new Set<number>();
  /** Cluster indices holding metadata (header, tables, blocks); data must never land on one. */
  private readonly meta = new Set<number>();
  private readonly featureNames = new Map<number, string>();

  private constructor(file: ImageFile, h: DataView, opts: Qcow2OpenOptions) {
    this.file = file;
    this.ro = opts.readonly ?? false;
    const fsize = file.size();
    this.fileSize = fsize;
    const fail = (what: string): never => {
      throw new Qcow2Error(`${file.name}: ${what}`);
    };
    const version = h.getUint32(H_VERSION);
    if (version !== 2 && version !== 3) fail(`qcow2 version ${version} is not supported (only 2 and 3)`);
    const clusterBits = h.getUint32(H_CLUSTER_BITS);
    if (clusterBits < 9 || clusterBits > 21) fail(`cluster_bits ${clusterBits} is outside 9..21`);
    const cs = 2 ** clusterBits;
    this.cs = cs;
    this.l2Entries = cs / 8;
    const headerLength = version === 2 ? V2_HEADER_LENGTH : h.getUint32(H_HEADER_LENGTH);
    if (version === 3 && (headerLength < V3_HEADER_LENGTH || headerLength > cs))
      fail(`header length ${headerLength} is outside ${V3_HEADER_LENGTH}..${cs}`);
    if (fsize < headerLength) fail("file ends inside the header");
    const size = u64(h, H_SIZE);
    if (size > QCOW2_MAX_VIRTUAL_SIZE) fail(`disk size ${size} is above the 1 PiB limit`);
    this.size = size;
    if (h.getUint32(H_CRYPT) !== 0) fail("encrypted images are not supported");

    // Feature bits (v3) and the header extensions: the feature table names the bits.
    let incompat = 0;
    let autoclearSet = false;
    let refcountOrder = 4;
    let compressionType = 0;
    if (version === 3) {
      const inc = h.getBigUint64(H_INCOMPAT);
      if (inc >> 32n !== 0n) incompat = -1;
      else incompat = Number(inc);
      autoclearSet = h.getBigUint64(H_AUTOCLEAR) !== 0n;
      refcountOrder = h.getUint32(H_REFCOUNT_ORDER);
      if (refcountOrder > 6) fail(`refcount_order ${refcountOrder} is above 6`);
      if (headerLength > H_COMPRESSION_TYPE) compressionType = h.getUint8(H_COMPRESSION_TYPE);
    }
    this.refcountOrder = refcountOrder;
    this.perBlock = (cs * 8) / 2 ** refcountOrder;

    const backingOffset = u64(h, H_BACKING_OFFSET);
    const backingSize = h.getUint32(H_BACKING_SIZE);
    const headerEnd = Math.min(cs, fsize);
    let backingName: string | undefined;
    if (backingOffset !== 0 && backingSize !== 0) {
      if (backingSize > QCOW2_MAX_BACKING_NAME)
        fail(`backing file name is longer than ${QCOW2_MAX_BACKING_NAME} bytes`);
      if (backingOffset < headerLength || backingOffset + backingSize > headerEnd)
        fail("backing file name lies outside the header cluster");
      const raw = new Uint8Array(backingSize);
      file.read(backingOffset, raw);
      try {
        backingName = new TextDecoder("utf-8", { fatal: true }).decode(raw);
      } catch {
        fail("backing file name is not UTF-8");
      }
      if (backingName!.includes("\0")) fail("backing file name contains a NUL byte");
    }
    let backingFormat: BackingFormat | undefined;
    {
      const extLimit = backingName !== undefined ? backingOffset : headerEnd;
      const ext = new Uint8Array(Math.max(0, extLimit - headerLength));
      file.read(headerLength, ext);
      const dv = new DataView(ext.buffer);
      let pos = 0;
      while (pos + 8 <= ext.length) {
        const type = dv.getUint32(pos);
        const len = dv.getUint32(pos + 4);
        if (type === EXT_END) break;
        if (pos + 8 + len > ext.length) fail("a header extension runs past the header cluster");
        const data = ext.subarray(pos + 8, pos + 8 + len);
        if (type === EXT_BACKING_FORMAT) {
          const name = new TextDecoder().decode(data);
          if (name !== "raw" && name !== "qcow2")
            fail(`backing file format '${name.slice(0, 32)}' is not supported (raw or qcow2)`);
          backingFormat = name as BackingFormat;
        } else if (type === EXT_FEATURE_TABLE) {
          for (let i = 0; i + 48 <= data.length; i += 48) {
            if (data[i] !== 0) continue; // only incompatible features matter here
            const bit = data[i + 1]!;
            const nameBytes = data.subarray(i + 2, i + 48);
            const end = nameBytes.indexOf(0);
            this.featureNames.set(bit, new TextDecoder().decode(nameBytes.subarray(0, end < 0 ? 46 : end)));
          }
        }
        pos += 8 + Math.ceil(len / 8) * 8;
      }
    }
    if (incompat !== 0) {
      const bitSet = (b: number) => incompat === -1 || (incompat & (1 << b)) !== 0;
      const unknown: string[] = [];
      if (incompat === -1) unknown.push("bits 32..63");
      else
        for (let b = 0; b < 32; b++)
          if (bitSet(b) && !(KNOWN_INCOMPAT & (1 << b)))
            unknown.push(this.featureNames.has(b) ? `'${this.featureNames.get(b)}' (bit ${b})` : `bit ${b}`);
      if (unknown.length > 0) fail(`unsupported incompatible feature ${unknown.join(", ")}`);
      if (bitSet(INCOMPAT_DATA_FILE)) fail("images with an external data file are not supported");
      if (bitSet(INCOMPAT_EXTL2)) fail("images with extended L2 entries (subclusters) are not supported");
      if (bitSet(INCOMPAT_COMPRESSION) !== (compressionType !== 0))
        fail("the compression type bit and field disagree");
      if (bitSet(INCOMPAT_DIRTY) && !this.ro)
        fail(
          `the image was not closed cleanly (dirty bit); repair it first: qemu-img check -r all ${file.name}`,
        );
      if (bitSet(INCOMPAT_CORRUPT) && !this.ro)
        fail(`the image is marked corrupt; repair it first: qemu-img check -r all ${file.name}`);
    } else if (compressionType !== 0) {
      fail("the compression type bit and field disagree");
    }
    const snapshots = h.getUint32(H_NB_SNAPSHOTS);
    if (snapshots !== 0 && !this.ro)
      fail(
        `the image has ${snapshots} internal snapshot(s); writing to it is not supported (open it read-only)`,
      );

    // The L1 table.
    const l1Size = h.getUint32(H_L1_SIZE);
    const l1Offset = u64(h, H_L1_OFFSET);
    const l1Bytes = l1Size * 8;
    const needed = Math.ceil(size / (cs * this.l2Entries));
    if (l1Bytes > QCOW2_MAX_L1_BYTES)
      fail(`L1 table of ${l1Size} entries is above the ${QCOW2_MAX_L1_BYTES >> 20} MiB limit`);
    if (l1Size < needed)
      fail(`L1 table of ${l1Size} entries is too small for the disk size (${needed} needed)`);
    if (l1Size > 0) {
      if (l1Offset % cs !== 0) fail("L1 table offset is not cluster-aligned");
      if (l1Offset === 0) fail("L1 table overlaps the header");
      if (l1Offset + l1Bytes > fsize) fail("L1 table past end of file");
    }
    this.l1Offset = l1Offset;
    this.l1 = new Uint8Array(l1Bytes);
    file.read(l1Offset, this.l1);
    this.l1dv = new DataView(this.l1.buffer);

    // The refcount table.
    const rtOffset = u64(h, H_REFTABLE_OFFSET);
    const rtClusters = h.getUint32(H_REFTABLE_CLUSTERS);
    if (rtClusters * cs > QCOW2_MAX_REFTABLE_BYTES)
      fail(
        `refcount table of ${rtClusters} clusters is above the ${QCOW2_MAX_REFTABLE_BYTES >> 20} MiB limit`,
      );
    if (rtClusters === 0) fail("the refcount table is empty");
    if (rtOffset % cs !== 0) fail("refcount table offset is not cluster-aligned");
    if (rtOffset === 0) fail("refcount table overlaps the header");
    if (rtOffset + rtClusters * cs > fsize) fail("refcount table past end of file");
    if (l1Size > 0 && rtOffset < l1Offset + l1Bytes && l1Offset < rtOffset + rtClusters * cs)
      fail("refcount table overlaps the L1 table");
    this.refTableOffset = rtOffset;
    this.refTable = new Uint8Array(rtClusters * cs);
    file.read(rtOffset, this.refTable);
    this.refdv = new DataView(this.refTable.buffer);
    this.nextFree = Math.ceil(fsize / cs);

    this.info = {
      version: version as 2 | 3,
      clusterSize: cs,
      size,
      backingFile: backingName,
      backingFormat,
      refcountBits: 2 ** refcountOrder,
      snapshots,
      dirty: incompat !== -1 && (incompat & (1 << INCOMPAT_DIRTY)) !== 0,
      corrupt: incompat !== -1 && (incompat & (1 << INCOMPAT_CORRUPT)) !== 0,
    };

    if (!this.ro) {
      this.mapMetadata(l1Size);
      // Autoclear bits say an extension (bitmaps) is in sync with the data; writing
      // without maintaining it must clear them, as QEMU does for extensions it ignores.
      if (autoclearSet) {
        file.write(H_AUTOCLEAR, new Uint8Array(8));
        file.sync();
      }
    }

    if (backingName !== undefined) {
      if (opts.openBacking === undefined)
        fail(`has a backing file (${backingName}) and nothing to open it with`);
      this.backing = opts.openBacking!(backingName, backingFormat);
    } else {
      this.backing = null;
    }
  }

  /** Open the qcow2 image in `file`; throws Qcow2Error for anything unusable. */
  static open(file: ImageFile, opts: Qcow2OpenOptions = {}): Qcow2Image {
    const head = new Uint8Array(V3_HEADER_LENGTH + 8);
    if (file.size() < V2_HEADER_LENGTH) throw new Qcow2Error(`${file.name}: too short to be a qcow2 image`);
    file.read(0, head);
    const dv = new DataView(head.buffer);
    if (dv.getUint32(0) !== QCOW2_MAGIC) throw new Qcow2Error(`${file.name}: not a qcow2 image (bad magic)`);
    return new Qcow2Image(file, dv, opts);
  }

  get readonly(): boolean {
    return this.ro;
  }

  /**
   * Stop writing: flush what is cached and refuse further writes. The overlay switch
   * (backup) freezes the image it moves away from this way.
   */
  freeze(): void {
    this.flush();
    this.ro = true;
  }

  // --- reads ---

  read(offset: number, dst: Uint8Array): void {
    this.checkRange(offset, dst.length);
    let done = 0;
    while (done < dst.length) {
      const pos = offset + done;
      const inCluster = pos % this.cs;
      const n = Math.min(this.cs - inCluster, dst.length - done);
      const part = dst.subarray(done, done + n);
      const e = this.lookup(pos, false);
      if (e.kind === "data") this.file.read(e.host + inCluster, part);
      else if (e.kind === "zero") part.fill(0);
      else this.readBacking(pos, part);
      done += n;
    }
  }

  private readBacking(pos: number, dst: Uint8Array): void {
    const b = this.backing;
    const n = b === null ? 0 : Math.max(0, Math.min(dst.length, b.size - pos));
    if (n > 0) b!.read(pos, dst.subarray(0, n));
    dst.fill(0, n);
  }

  /**
   * Where the cluster holding guest offset `pos` is: in the file (data, at `host`), all
   * zeros (the v3 zero flag; `host` may hold a preallocated cluster), or nowhere yet
   * (unallocated: the backing file's bytes).
   */
  private lookup(
    pos: number,
    forWrite: boolean,
  ): { kind: "data" | "zero" | "unallocated"; host: number; l2: number; index: number } {
    const l1i = Math.floor(pos / (this.cs * this.l2Entries));
    const index = Math.floor(pos / this.cs) % this.l2Entries;
    const l2 = this.l1Entry(l1i);
    if (l2 === 0) return { kind: "unallocated", host: 0, l2, index };
    const table = this.l2Table(l2);
    const e = entryAt(new DataView(table.buffer), index * 8);
    if (e.hi & HI_COMPRESSED)
      this.fail(
        `compressed cluster at guest offset ${hex(pos - (pos % this.cs))} is not supported (rewrite the image uncompressed: qemu-img convert -O qcow2)`,
      );
    if (e.lo & 0x1fe || e.hi & 0x3f00_0000)
      this.fail(`L2 entry ${index} of the table at ${hex(l2)} has reserved bits set`);
    if (e.offset % this.cs !== 0) this.fail(`data cluster offset ${hex(e.offset)} is not cluster-aligned`);
    const zero = this.info.version === 3 && (e.lo & LO_ZERO) !== 0;
    // A cluster the image says it holds must lie inside it: a lying entry would make a
    // read come up short and a write grow the host file to wherever it points (a sparse
    // file of a terabyte for one guest write).
    if (e.offset !== 0 && (!zero || forWrite) && e.offset + this.cs > this.fileSize)
      this.fail(`data cluster at ${hex(e.offset)} past end of file`);
    if (e.offset !== 0 && forWrite) this.checkNotMeta(e.offset, "data cluster");
    if (zero) return { kind: "zero", host: e.offset, l2, index };
    if (e.offset === 0) return { kind: "unallocated", host: 0, l2, index };
    return { kind: "data", host: e.offset, l2, index };
  }

  private l1Entry(i: number): number {
    const e = entryAt(this.l1dv, i * 8);
    if (e.hi === 0 && e.lo === 0) return 0;
    if (e.lo & 0x1ff || e.hi & L1_HI_RESERVED) this.fail(`L1 entry ${i} has reserved bits set`);
    if (e.offset === 0) return 0;
    return e.offset;
  }

  private l2Table(offset: number): Uint8Array {
    const cached = this.l2Cache.get(offset);
    if (cached !== undefined) return cached;
    if (offset % this.cs !== 0) this.fail(`L2 table offset ${hex(offset)} is not cluster-aligned`);
    if (offset + this.cs > this.fileSize) this.fail(`L2 table at ${hex(offset)} past end of file`);
    if (offset < this.cs) this.fail("an L2 table overlaps the header");
    if (this.l2Cache.size * this.cs >= L2_CACHE_BYTES) this.dropL2Cache();
    const t = new Uint8Array(this.cs);
    this.file.read(offset, t);
    this.l2Cache.set(offset, t);
    return t;
  }

  /** Write out what the L2 cache holds, then empty it (keeps its memory bounded). */
  private dropL2Cache(): void {
    if (this.dirtyL2.size > 0 || this.dirtyL1.size > 0) this.flush();
    this.l2Cache.clear();
  }

  // --- writes ---

  write(offset: number, src: Uint8Array): void {
    if (this.ro) this.fail("is read-only");
    this.checkRange(offset, src.length);
    let done = 0;
    while (done < src.length) {
      const pos = offset + done;
      const inCluster = pos % this.cs;
      const n = Math.min(this.cs - inCluster, src.length - done);
      this.writeInCluster(pos, inCluster, src.subarray(done, done + n));
      done += n;
    }
  }

  private writeInCluster(pos: number, inCluster: number, part: Uint8Array): void {
    const l1i = Math.floor(pos / (this.cs * this.l2Entries));
    if (this.l1Entry(l1i) === 0) {
      // A new L2 table: its cluster counted first, its (zero) contents cached dirty, the
      // L1 entry pointing at it written at flush after the table itself.
      const l2 = this.allocCluster();
      this.meta.add(l2 / this.cs);
      if (this.l2Cache.size * this.cs >= L2_CACHE_BYTES) this.dropL2Cache();
      this.l2Cache.set(l2, new Uint8Array(this.cs));
      this.dirtyL2.add(l2);
      this.file.write(l2, new Uint8Array(this.cs));
      this.grew(l2 + this.cs);
      putEntry(this.l1dv, l1i * 8, l2, HI_COPIED);
      this.dirtyL1.add(l1i);
    }
    const e = this.lookup(pos, true);
    if (e.kind === "data") {
      this.file.write(e.host + inCluster, part);
      this.grew(e.host + inCluster + part.length);
      return;
    }
    // Copy-on-write: the whole cluster is written, the guest's bytes over what the cluster
    // read before (the backing file's, or zeros).
    const clusterStart = pos - inCluster;
    let data = part;
    if (part.length !== this.cs) {
      data = new Uint8Array(this.cs);
      if (e.kind === "unallocated") this.readBacking(clusterStart, data);
      data.set(part, inCluster);
    }
    // A zero cluster with a preallocated offset keeps it; anything else gets a new one.
    const host = e.kind === "zero" && e.host !== 0 ? e.host : this.allocCluster();
    this.file.write(host, data);
    this.grew(host + this.cs);
    const table = this.l2Table(e.l2);
    putEntry(new DataView(table.buffer), e.index * 8, host, HI_COPIED);
    this.dirtyL2.add(e.l2);
  }

  /**
   * Durability, in order: the data and refcounts written so far (fsync), then the L2
   * tables that point at them, then the L1 entries that point at those (fsync between,
   * and after).
   */
  flush(): void {
    if (this.ro) return;
    this.file.sync();
    if (this.dirtyL2.size === 0 && this.dirtyL1.size === 0) return;
    for (const off of this.dirtyL2) this.file.write(off, this.l2Cache.get(off)!);
    this.dirtyL2.clear();
    if (this.dirtyL1.size > 0) {
      this.file.sync();
      for (const i of [...this.dirtyL1].sort((a, b) => a - b)) {
        this.file.write(this.l1Offset + i * 8, this.l1.subarray(i * 8, i * 8 + 8));
      }
      this.dirtyL1.clear();
    }
    this.file.sync();
  }

  private grew(end: number): void {
    if (end > this.fileSize) this.fileSize = end;
  }

  // --- refcounts and allocation ---

  /** Allocate one cluster (refcount 1) and return its offset. */
  private allocCluster(): number {
    for (let skipped = 0; ; ) {
      const c = this.nextFree;
      this.ensureRefBlock(c);
      if (this.nextFree !== c) continue; // the refcount block itself took cluster c
      if (this.refcount(c) !== 0) {
        // Counted but past the end of the file: a damaged image. Step over it, boundedly.
        if (++skipped > MAX_ALLOC_SKIP)
          this.fail("no free cluster past the end of the file (refcounts are damaged)");
        this.nextFree++;
        continue;
      }
      this.setRefcount(c, 1);
      this.nextFree = c + 1;
      return c * this.cs;
    }
  }

  private refEntries(): number {
    return this.refTable.length / 8;
  }

  /** The refcount block covering cluster `c`, allocated (and counted) if missing. */
  private ensureRefBlock(c: number): number {
    const bi = Math.floor(c / this.perBlock);
    if (bi >= this.refEntries()) this.growRefTable(bi + 1);
    const have = this.refBlockAt(bi);
    if (have !== 0) return have;
    const b = this.nextFree++;
    const block = new Uint8Array(this.cs);
    const self = Math.floor(b / this.perBlock) === bi;
    if (self) this.setInBlock(block, b % this.perBlock, 1);
    this.file.write(b * this.cs, block);
    this.grew((b + 1) * this.cs);
    this.meta.add(b);
    putEntry(this.refdv, bi * 8, b * this.cs, 0);
    this.file.write(this.refTableOffset + bi * 8, this.refTable.subarray(bi * 8, bi * 8 + 8));
    if (!self) {
      this.ensureRefBlock(b);
      this.setRefcount(b, 1);
    }
    return b * this.cs;
  }

  /** The refcount block offset for block index `bi` (0: none), checked. */
  private refBlockAt(bi: number): number {
    if (bi >= this.refEntries()) return 0;
    const e = entryAt(this.refdv, bi * 8);
    if (e.lo & 0x1ff) this.fail(`refcount table entry ${bi} has reserved bits set`);
    const off = e.offset + ((e.hi >>> 24) & 0xff) * 2 ** 56;
    if (off === 0) return 0;
    if (off % this.cs !== 0) this.fail(`refcount block offset ${hex(off)} is not cluster-aligned`);
    if (off + this.cs > this.fileSize) this.fail(`refcount block at ${hex(off)} past end of file`);
    return off;
  }

  /** A bigger refcount table at the end of the file; the old one is freed. */
  private growRefTable(minEntries: number): void {
    const old = this.refTable;
    const oldOffset = this.refTableOffset;
    const oldClusters = old.length / this.cs;
    const entriesPerCluster = this.cs / 8;
    const want = Math.max(minEntries, Math.ceil((this.refEntries() * 3) / 2));
    let k = Math.ceil(want / entriesPerCluster);
    // The new table must also cover its own clusters and the blocks that count them.
    while (Math.floor((this.nextFree + 2 * k + 2) / this.perBlock) >= k * entriesPerCluster) k++;
    if (k * this.cs > QCOW2_MAX_REFTABLE_BYTES)
      this.fail(`the refcount table would grow past the ${QCOW2_MAX_REFTABLE_BYTES >> 20} MiB limit`);
    const start = this.nextFree;
    this.nextFree += k;
    const table = new Uint8Array(k * this.cs);
    table.set(old);
    this.refTable = table;
    this.refdv = new DataView(table.buffer);
    this.refTableOffset = start * this.cs;
    this.file.write(this.refTableOffset, table);
    this.grew(this.refTableOffset + table.length);
    for (let t = start; t < start + k; t++) {
      this.meta.add(t);
      this.ensureRefBlock(t);
      this.setRefcount(t, 1);
    }
    this.file.write(this.refTableOffset, this.refTable);
    this.file.sync();
    const hdr = new Uint8Array(12);
    const dv = new DataView(hdr.buffer);
    dv.setBigUint64(0, BigInt(this.refTableOffset));
    dv.setUint32(8, k);
    this.file.write(H_REFTABLE_OFFSET, hdr);
    this.file.sync();
    for (let i = 0; i < oldClusters; i++) {
      const c = oldOffset / this.cs + i;
      this.setRefcount(c, 0);
      this.meta.delete(c);
    }
  }

  /** The refcount of cluster `c` (0 where no block covers it). */
  refcount(c: number): number {
    const off = this.refBlockAt(Math.floor(c / this.perBlock));
    if (off === 0) return 0;
    const { at, len } = this.slot(c % this.perBlock);
    const b = new Uint8Array(len);
    this.file.read(off + at, b);
    return this.getInBlock(b, c % this.perBlock, at);
  }

  private setRefcount(c: number, v: number): void {
    const off = this.refBlockAt(Math.floor(c / this.perBlock));
    if (off === 0) this.fail(`no refcount block for cluster ${c}`);
    const i = c % this.perBlock;
    const { at, len } = this.slot(i);
    const b = new Uint8Array(len);
    this.file.read(off + at, b);
    this.setInBlock(b, i, v, at);
    this.file.write(off + at, b);
  }

  /** The bytes of a refcount block holding entry `i`. */
  private slot(i: number): { at: number; len: number } {
    const bits = 2 ** this.refcountOrder;
    if (bits < 8) return { at: Math.floor((i * bits) / 8), len: 1 };
    return { at: (i * bits) / 8, len: bits / 8 };
  }

  /** Entry `i` of a refcount block whose bytes from `base` are in `b`. */
  private getInBlock(b: Uint8Array, i: number, base: number): number {
    const bits = 2 ** this.refcountOrder;
    if (bits < 8) {
      const shift = (i * bits) % 8;
      return (b[Math.floor((i * bits) / 8) - base]! >> shift) & ((1 << bits) - 1);
    }
    let v = 0;
    for (let k = 0; k < bits / 8; k++) v = v * 256 + b[(i * bits) / 8 - base + k]!;
    return v;
  }

  /** Set entry `i` of a refcount block whose bytes from `base` are in `b`. */
  private setInBlock(b: Uint8Array, i: number, v: number, base = 0): void {
    const bits = 2 ** this.refcountOrder;
    if (bits < 8) {
      const shift = (i * bits) % 8;
      const at = Math.floor((i * bits) / 8) - base;
      const mask = ((1 << bits) - 1) << shift;
      b[at] = (b[at]! & ~mask) | ((v << shift) & mask);
      return;
    }
    const n = bits / 8;
    let x = v;
    for (let k = n - 1; k >= 0; k--) {
      b[(i * bits) / 8 - base + k] = x % 256;
      x = Math.floor(x / 256);
    }
  }

  // --- checks ---

  /**
   * Index every metadata cluster (header, L1, refcount table and blocks, L2 tables) before
   * the first write, so a data cluster that claims one of them is caught instead of
   * written over it.
   */
  private mapMetadata(l1Size: number): void {
    const cs = this.cs;
    const add = (off: number, clusters: number, what: string) => {
      for (let i = 0; i < clusters; i++) {
        const c = off / cs + i;
        if (this.meta.has(c)) this.fail(`${what} at ${hex(off)} overlaps other metadata`);
        this.meta.add(c);
      }
    };
    add(0, 1, "the header");
    if (l1Size > 0) add(this.l1Offset, Math.ceil((l1Size * 8) / cs), "the L1 table");
    add(this.refTableOffset, this.refTable.length / cs, "the refcount table");
    for (let bi = 0; bi < this.refEntries(); bi++) {
      const off = this.refBlockAt(bi);
      if (off !== 0) add(off, 1, "a refcount block");
    }
    for (let i = 0; i < l1Size; i++) {
      const off = this.l1Entry(i);
      if (off === 0) continue;
      if (off % cs !== 0) this.fail(`L2 table offset ${hex(off)} is not cluster-aligned`);
      if (off + cs > this.fileSize) this.fail(`L2 table at ${hex(off)} past end of file`);
      add(off, 1, "an L2 table");
    }
  }

  private checkNotMeta(host: number, what: string): void {
    if (this.meta.has(host / this.cs)) this.fail(`${what} at ${hex(host)} overlaps metadata (corrupt image)`);
  }

  private checkRange(offset: number, len: number): void {
    if (!(Number.isSafeInteger(offset) && offset >= 0 && offset + len <= this.size)) {
      throw new RangeError(`disk access [${offset}, +${len}) is outside the ${this.size}-byte disk`);
    }
  }

  private fail(what: string): never {
    throw new Qcow2Error(`${this.file.name}: ${what}`);
  }
}

export interface Qcow2CreateOptions {
  /** Virtual disk size in bytes. */
  size: number;
  /** log2 of the cluster size: 16 (64 KiB, QEMU's default) unless given; 9..21. */
  clusterBits?: number;
  /** The backing file, as stored (a path the opener resolves) and its format. */
  backing?: { name: string; format: BackingFormat };
}

/**
 * Write a new, empty qcow2 v3 image into `file` (which should be empty): header with the
 * backing format extension and backing file name, refcount table, one refcount block,
 * L1 table, 16-bit refcounts. The layout is the one `qemu-img create -f qcow2` makes.
 */
export function qcow2Create(file: ImageFile, opts: Qcow2CreateOptions): void {
  const bits = opts.clusterBits ?? 16;
  if (!Number.isInteger(bits) || bits < 9 || bits > 21)
    throw new RangeError(`cluster bits ${bits} outside 9..21`);
  const cs = 2 ** bits;
  const size = opts.size;
  if (!Number.isSafeInteger(size) || size < 0 || size > QCOW2_MAX_VIRTUAL_SIZE)
    throw new RangeError(`disk size ${size} is not a byte count up to 1 PiB`);
  const l1Size = Math.ceil(size / (cs * (cs / 8)));
  const l1Clusters = Math.max(1, Math.ceil((l1Size * 8) / cs));
  const perBlock = (cs * 8) / 16;
  const clusters = 3 + l1Clusters;
  if (l1Size * 8 > QCOW2_MAX_L1_BYTES || clusters > perBlock)
    throw new RangeError(`disk size ${size} needs too large an L1 table for ${cs}-byte clusters`);
  const enc = new TextEncoder();
  const name = opts.backing ? enc.encode(opts.backing.name) : new Uint8Array(0);
  const fmt = opts.backing ? enc.encode(opts.backing.format) : new Uint8Array(0);
  if (name.length > QCOW2_MAX_BACKING_NAME)
    throw new RangeError(`backing file name longer than ${QCOW2_MAX_BACKING_NAME} bytes`);

  const header = new Uint8Array(cs);
  const h = new DataView(header.buffer);
  h.setUint32(0, QCOW2_MAGIC);
  h.setUint32(H_VERSION, 3);
  h.setUint32(H_CLUSTER_BITS, bits);
  h.setBigUint64(H_SIZE, BigInt(size));
  h.setUint32(H_L1_SIZE, l1Size);
  h.setBigUint64(H_L1_OFFSET, BigInt(3 * cs));
  h.setBigUint64(H_REFTABLE_OFFSET, BigInt(cs));
  h.setUint32(H_REFTABLE_CLUSTERS, 1);
  h.setUint32(H_REFCOUNT_ORDER, 4);
  h.setUint32(H_HEADER_LENGTH, CREATE_HEADER_LENGTH);
  let pos = CREATE_HEADER_LENGTH;
  if (opts.backing) {
    h.setUint32(pos, EXT_BACKING_FORMAT);
    h.setUint32(pos + 4, fmt.length);
    header.set(fmt, pos + 8);
    pos += 8 + Math.ceil(fmt.length / 8) * 8;
  }
  pos += 8; // the end-of-extensions marker (type 0, length 0)
  if (opts.backing) {
    if (pos + name.length > cs) throw new RangeError("backing file name does not fit in the header cluster");
    h.setBigUint64(H_BACKING_OFFSET, BigInt(pos));
    h.setUint32(H_BACKING_SIZE, name.length);
    header.set(name, pos);
  }
  const reftable = new Uint8Array(cs);
  new DataView(reftable.buffer).setBigUint64(0, BigInt(2 * cs));
  const block = new Uint8Array(cs);
  const bdv = new DataView(block.buffer);
  for (let c = 0; c < clusters; c++) bdv.setUint16(c * 2, 1);
  file.write(0, header);
  file.write(cs, reftable);
  file.write(2 * cs, block);
  file.write(3 * cs, new Uint8Array(l1Clusters * cs));
  file.sync();
}
