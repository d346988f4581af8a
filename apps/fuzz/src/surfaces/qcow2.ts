/**
 * qcow2 images from a hostile source (packages/devices/src/block/qcow2.ts): a valid image
 * with data, then header fields that lie (offsets, sizes, counts, feature bits, refcount
 * order), table entries that lie (L1, L2, refcount table) and flipped bytes, opened and
 * then read and written at random offsets.
 *
 * Invariants: opening and every access either work or fail with a Qcow2Error of one line
 * naming the file, never another host exception; the file grows by a bounded amount per
 * write (no allocation storm); and an image nobody tampered with reads back exactly what
 * was written, before and after reopening.
 */
import { MemoryBlockBackend, MemoryImageFile, Qcow2Error, Qcow2Image, qcow2Create } from "@visor/devices";
import fc from "fast-check";
import { type FuzzSurface, invariant } from "../surface.ts";

const NAME = "fuzz.qcow2";
const SIZE = 512 * 1024;

/** Header fields: [offset, size]. */
const FIELDS: [number, 4 | 8][] = [
  [4, 4], // version
  [8, 8], // backing_file_offset
  [16, 4], // backing_file_size
  [20, 4], // cluster_bits
  [24, 8], // size
  [32, 4], // crypt_method
  [36, 4], // l1_size
  [40, 8], // l1_table_offset
  [48, 8], // refcount_table_offset
  [56, 4], // refcount_table_clusters
  [60, 4], // nb_snapshots
  [72, 8], // incompatible_features
  [88, 8], // autoclear_features
  [96, 4], // refcount_order
  [100, 4], // header_length
];

const LIES = fc.oneof(
  fc.constantFrom(
    0n,
    1n,
    2n,
    3n,
    4n,
    9n,
    16n,
    21n,
    22n,
    0x200n,
    0x10000n,
    0x30000n,
    0x7fffffffn,
    0xffffffffn,
    1n << 40n,
    (1n << 63n) | 0x40000n,
    0xffffffffffffffffn,
  ),
  fc.bigInt({ min: 0n, max: 0xffffffffffffffffn }),
);

interface Input {
  clusterBits: number;
  backing: boolean;
  prewrites: [number, number][];
  lies: { field: number; value: bigint }[];
  /** 8-byte entries overwritten at a cluster (L1 at 3, L2 / data / refblocks after) and index. */
  entries: { cluster: number; index: number; value: bigint }[];
  flips: [number, number][];
  ops: { write: boolean; offset: number; len: number }[];
}

function put(dv: DataView, at: number, size: 4 | 8, v: bigint): void {
  if (at + size > dv.byteLength) return;
  if (size === 4) dv.setUint32(at, Number(v & 0xffffffffn));
  else dv.setBigUint64(at, BigInt.asUintN(64, v));
}

function fill(len: number, seed: number): Uint8Array {
  const b = new Uint8Array(len);
  for (let i = 0; i < len; i++) b[i] = (i + seed * 17) & 0xff;
  return b;
}

function oneLine(e: unknown, where: string): void {
  invariant(e instanceof Qcow2Error, `${where} threw ${e instanceof Error ? e.stack : String(e)}`);
  invariant(
    e.message.startsWith(`${NAME}: `) && !e.message.includes("\n"),
    `not one line naming the file: ${JSON.stringify(e.message)}`,
  );
}

const surface: FuzzSurface<Input> = {
  name: "qcow2",
  description:
    "qcow2 images with lying header fields, table entries and flipped bytes, opened, read and written: works or one-line Qcow2Error; bounded growth; untampered images read back what was written",
  arbitrary: fc.record({
    clusterBits: fc.constantFrom(9, 12, 16),
    backing: fc.boolean(),
    prewrites: fc.array(fc.tuple(fc.nat(SIZE - 1), fc.integer({ min: 1, max: 20_000 })), { maxLength: 4 }),
    lies: fc.array(fc.record({ field: fc.nat(FIELDS.length - 1), value: LIES }), { maxLength: 3 }),
    entries: fc.array(
      fc.record({ cluster: fc.integer({ min: 1, max: 8 }), index: fc.nat(63), value: LIES }),
      { maxLength: 3 },
    ),
    flips: fc.array(fc.tuple(fc.nat(4 * 65536), fc.integer({ min: 0, max: 255 })), { maxLength: 4 }),
    ops: fc.array(
      fc.record({ write: fc.boolean(), offset: fc.nat(SIZE - 1), len: fc.integer({ min: 1, max: 70_000 }) }),
      { maxLength: 6 },
    ),
  }),
  check(input) {
    const cs = 2 ** input.clusterBits;
    const base = new MemoryBlockBackend(fill(SIZE, 99));
    const openBacking = () => base;
    const f = new MemoryImageFile(NAME);
    qcow2Create(f, {
      size: SIZE,
      clusterBits: input.clusterBits,
      ...(input.backing ? { backing: { name: "b", format: "raw" as const } } : {}),
    });
    const shadow = input.backing ? fill(SIZE, 99) : new Uint8Array(SIZE);
    {
      const img = Qcow2Image.open(f, { openBacking });
      input.prewrites.forEach(([off, len], i) => {
        const n = Math.min(len, SIZE - off);
        const d = fill(n, i);
        img.write(off, d);
        shadow.set(d, off);
      });
      img.flush();
    }
    const bytes = f.bytes();
    const dv = new DataView(bytes.buffer);
    for (const l of input.lies) {
      const [at, size] = FIELDS[l.field]!;
      put(dv, at, size, l.value);
    }
    for (const e of input.entries) put(dv, e.cluster * cs + e.index * 8, 8, e.value);
    for (const [i, v] of input.flips) if (i < bytes.length) bytes[i] = v;
    const tampered =
      input.lies.length + input.entries.length + input.flips.length > 0 &&
      Buffer.compare(bytes, f.bytes()) !== 0;
    const g = new MemoryImageFile(NAME, bytes);
    let img: Qcow2Image;
    try {
      img = Qcow2Image.open(g, { openBacking });
    } catch (e) {
      oneLine(e, "open");
      invariant(tampered, `an untampered image did not open: ${(e as Error).message}`);
      return;
    }
    for (const [k, op] of input.ops.entries()) {
      if (op.offset >= img.size) continue;
      const n = Math.min(op.len, img.size - op.offset);
      const before = g.size();
      try {
        if (op.write) {
          const d = fill(n, 50 + k);
          img.write(op.offset, d);
          if (!tampered) shadow.set(d, op.offset);
        } else {
          const got = new Uint8Array(n);
          img.read(op.offset, got);
          if (!tampered)
            invariant(
              Buffer.compare(got, shadow.subarray(op.offset, op.offset + n)) === 0,
              `read at ${op.offset} differs`,
            );
        }
      } catch (e) {
        oneLine(e, op.write ? "write" : "read");
        invariant(tampered, `an untampered image failed: ${(e as Error).message}`);
      }
      // data clusters + an L2 table + refcount blocks + a grown refcount table, at most
      const bound = (Math.ceil(n / cs) + 2) * cs * 4 + 8 * 1024 * 1024;
      invariant(
        g.size() - before <= bound,
        `one ${n}-byte write grew the file by ${g.size() - before} bytes`,
      );
    }
    try {
      img.flush();
    } catch (e) {
      oneLine(e, "flush");
    }
    if (!tampered) {
      const again = Qcow2Image.open(new MemoryImageFile(NAME, g.bytes()), { openBacking });
      const all = new Uint8Array(SIZE);
      again.read(0, all);
      invariant(Buffer.compare(all, shadow) === 0, "reopened image differs from what was written");
    }
  },
  ciRuns: 60,
};

export default surface;
