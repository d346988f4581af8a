/**
 * The qcow2 backend in memory: malformed and hostile headers are refused with one line
 * naming the file (written before the code), then reads and writes, copy-on-write from a
 * backing disk, refcount growth, reopening. Interoperability with QEMU's own qemu-img is
 * in test/node/qcow2-qemu.test.ts.
 */
import { describe, expect, it } from "vitest";
import {
  MemoryBlockBackend,
  MemoryImageFile,
  QCOW2_MAGIC,
  Qcow2Error,
  Qcow2Image,
  qcow2Create,
} from "../../src/index.ts";

const MiB = 1024 * 1024;

/** A fresh 4 MiB image (64 KiB clusters: header, reftable, refblock, L1 at clusters 0..3). */
function fresh(size = 4 * MiB, clusterBits = 16, backing?: { name: string; format: "raw" | "qcow2" }) {
  const f = new MemoryImageFile("disk.qcow2");
  qcow2Create(f, { size, clusterBits, ...(backing ? { backing } : {}) });
  return f;
}

/** The image bytes with `edit` applied to a header DataView. */
function edited(edit: (dv: DataView, b: Uint8Array) => void, base = fresh()): MemoryImageFile {
  const b = base.bytes();
  edit(new DataView(b.buffer), b);
  return new MemoryImageFile("disk.qcow2", b);
}

function openError(f: MemoryImageFile, opts: { readonly?: boolean } = {}): string {
  try {
    Qcow2Image.open(f, { ...opts, openBacking: () => new MemoryBlockBackend(4 * MiB) });
  } catch (e) {
    expect(e).toBeInstanceOf(Qcow2Error);
    const m = (e as Error).message;
    expect(m).not.toContain("\n");
    return m;
  }
  throw new Error("opened");
}

function pattern(n: number, seed: number): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + seed * 7 + (i >> 9)) & 0xff;
  return b;
}

describe("qcow2: malformed images are refused in one line", () => {
  const cases: [string, (dv: DataView, b: Uint8Array) => void, RegExp][] = [
    ["bad magic", (dv) => dv.setUint32(0, 0x12345678), /^disk\.qcow2: not a qcow2 image \(bad magic\)$/],
    ["version 4", (dv) => dv.setUint32(4, 4), /qcow2 version 4 is not supported/],
    ["version 1", (dv) => dv.setUint32(4, 1), /qcow2 version 1 is not supported/],
    ["cluster_bits 8", (dv) => dv.setUint32(20, 8), /cluster_bits 8 is outside 9\.\.21/],
    ["cluster_bits 22", (dv) => dv.setUint32(20, 22), /cluster_bits 22 is outside/],
    ["cluster_bits huge", (dv) => dv.setUint32(20, 0xffffffff), /cluster_bits 4294967295 is outside/],
    ["encryption", (dv) => dv.setUint32(32, 1), /encrypted images are not supported/],
    [
      "L1 past end of file",
      (dv) => dv.setBigUint64(40, 1n << 40n),
      /^disk\.qcow2: L1 table past end of file$/,
    ],
    ["L1 unaligned", (dv) => dv.setBigUint64(40, 0x30001n), /L1 table offset is not cluster-aligned/],
    ["L1 at the header", (dv) => dv.setBigUint64(40, 0n), /L1 table overlaps the header/],
    [
      "L1 huge",
      (dv) => dv.setUint32(36, 0xffffffff),
      /L1 table of 4294967295 entries is above the 32 MiB limit/,
    ],
    ["L1 too small", (dv) => dv.setBigUint64(24, 1n << 45n), /too small for the disk size/],
    ["disk size above 1 PiB", (dv) => dv.setBigUint64(24, 1n << 62n), /above the 1 PiB limit/],
    ["refcount table past end", (dv) => dv.setBigUint64(48, 1n << 30n), /refcount table past end of file/],
    ["refcount table huge", (dv) => dv.setUint32(56, 0xffffffff), /above the 8 MiB limit/],
    ["refcount table empty", (dv) => dv.setUint32(56, 0), /refcount table is empty/],
    [
      "refcount table on L1",
      (dv) => dv.setBigUint64(48, 3n * 65536n),
      /refcount table overlaps the L1 table/,
    ],
    ["refcount_order 7", (dv) => dv.setUint32(96, 7), /refcount_order 7 is above 6/],
    ["header_length small", (dv) => dv.setUint32(100, 50), /header length 50 is outside 104\.\.65536/],
    ["header_length huge", (dv) => dv.setUint32(100, 1 << 20), /header length 1048576 is outside/],
    ["external data file", (dv) => dv.setBigUint64(72, 1n << 2n), /external data file are not supported/],
    ["extended L2", (dv) => dv.setBigUint64(72, 1n << 4n), /extended L2 entries/],
    [
      "unknown incompatible bit",
      (dv) => dv.setBigUint64(72, 1n << 9n),
      /unsupported incompatible feature bit 9/,
    ],
    [
      "incompatible bit 40",
      (dv) => dv.setBigUint64(72, 1n << 40n),
      /unsupported incompatible feature bits 32\.\.63/,
    ],
    [
      "compression bit without type",
      (dv) => dv.setBigUint64(72, 1n << 3n),
      /compression type bit and field disagree/,
    ],
    ["compression type without bit", (_dv, b) => (b[104] = 1), /compression type bit and field disagree/],
    [
      "dirty (read-write)",
      (dv) => dv.setBigUint64(72, 1n),
      /not closed cleanly \(dirty bit\); repair it first: qemu-img check -r all disk\.qcow2/,
    ],
    ["corrupt (read-write)", (dv) => dv.setBigUint64(72, 2n), /marked corrupt/],
    [
      "internal snapshots (read-write)",
      (dv) => dv.setUint32(60, 1),
      /1 internal snapshot\(s\); writing to it is not supported/,
    ],
    [
      "backing name too long",
      (dv) => {
        dv.setBigUint64(8, 200n);
        dv.setUint32(16, 5000);
      },
      /backing file name is longer than 1023 bytes/,
    ],
    [
      "backing name past the header cluster",
      (dv) => {
        dv.setBigUint64(8, 65530n);
        dv.setUint32(16, 100);
      },
      /backing file name lies outside the header cluster/,
    ],
    [
      "backing name inside the header fields",
      (dv) => {
        dv.setBigUint64(8, 8n);
        dv.setUint32(16, 10);
      },
      /backing file name lies outside the header cluster/,
    ],
    [
      "header extension past the cluster",
      (dv) => {
        dv.setUint32(112, 0x12345678);
        dv.setUint32(116, 0xfffffff0);
      },
      /a header extension runs past the header cluster/,
    ],
    [
      "backing format not raw or qcow2",
      (dv, b) => {
        dv.setUint32(112, 0xe2792aca);
        dv.setUint32(116, 4);
        b.set(new TextEncoder().encode("vmdk"), 120);
      },
      /backing file format 'vmdk' is not supported/,
    ],
  ];
  for (const [name, edit, message] of cases) {
    it(name, () => {
      expect(openError(edited(edit))).toMatch(message);
    });
  }

  it("names an unknown incompatible feature from the image's feature table", () => {
    const f = edited((dv, b) => {
      dv.setBigUint64(72, 1n << 7n);
      dv.setUint32(112, 0x6803f857);
      dv.setUint32(116, 48);
      b[120] = 0; // incompatible
      b[121] = 7;
      b.set(new TextEncoder().encode("time travel"), 122);
    });
    expect(openError(f)).toMatch(/unsupported incompatible feature 'time travel' \(bit 7\)/);
  });

  it("a file too short or empty", () => {
    expect(openError(new MemoryImageFile("disk.qcow2", new Uint8Array(10)))).toBe(
      "disk.qcow2: too short to be a qcow2 image",
    );
    const head = new Uint8Array(104);
    new DataView(head.buffer).setUint32(0, QCOW2_MAGIC);
    new DataView(head.buffer).setUint32(4, 3);
    new DataView(head.buffer).setUint32(20, 16);
    new DataView(head.buffer).setUint32(100, 112);
    expect(openError(new MemoryImageFile("disk.qcow2", head))).toBe(
      "disk.qcow2: file ends inside the header",
    );
  });

  it("opens dirty, corrupt and snapshotted images read-only (as QEMU does)", () => {
    for (const edit of [
      (dv: DataView) => dv.setBigUint64(72, 1n),
      (dv: DataView) => dv.setBigUint64(72, 2n),
      (dv: DataView) => dv.setUint32(60, 2),
    ]) {
      const img = Qcow2Image.open(edited(edit), { readonly: true });
      const b = new Uint8Array(512);
      img.read(0, b);
      expect(b.every((x) => x === 0)).toBe(true);
    }
  });

  it("refuses a backing file with nothing to open it", () => {
    const f = fresh(4 * MiB, 16, { name: "base.img", format: "raw" });
    expect(() => Qcow2Image.open(f)).toThrow(
      /disk\.qcow2: has a backing file \(base\.img\) and nothing to open it with/,
    );
  });

  /** An image with one data cluster written, then `edit` applied to the whole file. */
  function withData(edit: (dv: DataView) => void): MemoryImageFile {
    const f = fresh();
    const img = Qcow2Image.open(f);
    img.write(0, pattern(4096, 1));
    img.flush();
    return edited(edit, f);
  }
  // Layout after that write: L1 at 0x30000, L2 table at 0x40000, data cluster at 0x50000.

  it("an L2 table past the end of the file: read-only reads fail with the reason, read-write opens refuse", () => {
    const f = withData((dv) => dv.setBigUint64(0x30000, (1n << 63n) | (1n << 40n)));
    const img = Qcow2Image.open(f, { readonly: true });
    expect(() => img.read(0, new Uint8Array(512))).toThrow(
      /^disk\.qcow2: L2 table at 0x10000000000 past end of file$/,
    );
    expect(openError(f)).toBe("disk.qcow2: L2 table at 0x10000000000 past end of file");
  });

  it("an L1 entry with reserved bits", () => {
    const img = Qcow2Image.open(
      withData((dv) => dv.setUint32(0x30000 + 4, 0x40000 | 0x10)),
      { readonly: true },
    );
    expect(() => img.read(0, new Uint8Array(512))).toThrow(/L1 entry 0 has reserved bits set/);
  });

  it("a compressed cluster: refused with what to do", () => {
    const img = Qcow2Image.open(
      withData((dv) => dv.setUint32(0x40000, 0x4000_0000)),
      { readonly: true },
    );
    expect(() => img.read(0, new Uint8Array(512))).toThrow(
      /compressed cluster at guest offset 0x0 is not supported \(rewrite the image uncompressed: qemu-img convert -O qcow2\)/,
    );
  });

  it("an unaligned data cluster offset", () => {
    const img = Qcow2Image.open(
      withData((dv) => dv.setUint32(0x40004, 0x50200)),
      { readonly: true },
    );
    expect(() => img.read(0, new Uint8Array(512))).toThrow(
      /data cluster offset 0x50200 is not cluster-aligned/,
    );
  });

  it("a data cluster past the end of the file: refused for reading and writing, the file does not grow", () => {
    // Both found by pnpm fuzz qcow2. 1 TiB: a write tried to put the guest's bytes there.
    // 0x80050000: the low word's bit 31, which a signed 32-bit mask once turned into a
    // negative file offset that passed this check (the write reached the file at -2 GiB).
    for (const [hi, lo, at] of [
      [0x8000_0100, 0, "0x10000000000"],
      [0x8000_0000, 0x8005_0000, "0x80050000"],
    ] as const) {
      const f = withData((dv) => {
        dv.setUint32(0x40000, hi);
        dv.setUint32(0x40004, lo);
      });
      const size = f.size();
      const img = Qcow2Image.open(f);
      const refused = new RegExp(`^disk\\.qcow2: data cluster at ${at} past end of file$`);
      expect(() => img.read(0, new Uint8Array(512))).toThrow(refused);
      expect(() => img.write(0, new Uint8Array(512).fill(0xee))).toThrow(refused);
      expect(f.size()).toBe(size);
    }
    // the same bit in an L1 entry: the L2 table's offset
    const g = withData((dv) => dv.setUint32(0x30004, 0x8004_0000));
    expect(() => Qcow2Image.open(g, { readonly: true }).read(0, new Uint8Array(512))).toThrow(
      /^disk\.qcow2: L2 table at 0x80040000 past end of file$/,
    );
  });

  it("a data cluster that claims the L1 table or the header: guest writes never land on metadata", () => {
    for (const [target, what] of [
      [0x30000, "0x30000"],
      [0x0, "0x0"],
      [0x10000, "0x10000"],
    ] as const) {
      // the entry says data at `target` (0 with the zero flag set, for the header case)
      const img = Qcow2Image.open(
        withData((dv) => {
          dv.setUint32(0x40000, 0x8000_0000);
          dv.setUint32(0x40004, target === 0 ? 0 : target);
        }),
      );
      if (target === 0) continue; // offset 0 means unallocated: not an overlap
      expect(() => img.write(0, new Uint8Array(512).fill(0xee)), what).toThrow(
        new RegExp(`data cluster at ${what} overlaps metadata`),
      );
    }
  });

  it("two L1 entries sharing one L2 table are refused for writing", () => {
    const f = withData((dv) => {
      dv.setUint32(0x30000 + 8, 0x8000_0000);
      dv.setUint32(0x30000 + 12, 0x40000);
    });
    // a disk big enough to have a second L1 entry
    const g = edited((dv) => {
      dv.setBigUint64(24, 1n << 30n);
      dv.setUint32(36, 2);
    }, f);
    expect(() => Qcow2Image.open(g)).toThrow(/an L2 table at 0x40000 overlaps other metadata/);
  });
});

describe("qcow2: reads and writes", () => {
  it("a new image reads as zeros; writes at odd offsets and lengths read back, across clusters", () => {
    const f = fresh(8 * MiB);
    const img = Qcow2Image.open(f);
    const shadow = new Uint8Array(8 * MiB);
    const writes: [number, number][] = [
      [512, 1],
      [65536 - 3, 10],
      [3 * 65536 + 17, 200_000],
      [8 * MiB - 513, 513],
      [0, 4096],
      [65536 - 3, 100],
    ];
    writes.forEach(([off, len], i) => {
      const d = pattern(len, i);
      img.write(off, d);
      shadow.set(d, off);
    });
    const got = new Uint8Array(8 * MiB);
    img.read(0, got);
    expect(Buffer.compare(got, shadow)).toBe(0);
    img.flush();
    // reopened from the bytes alone
    const again = Qcow2Image.open(new MemoryImageFile("disk.qcow2", f.bytes()));
    const got2 = new Uint8Array(8 * MiB);
    again.read(0, got2);
    expect(Buffer.compare(got2, shadow)).toBe(0);
  });

  it("copy-on-write: a partial write keeps the backing disk's bytes around it; the backing disk is untouched", () => {
    const base = new MemoryBlockBackend(pattern(2 * MiB, 9));
    const before = base.data.slice();
    const f = fresh(2 * MiB, 16, { name: "base.img", format: "raw" });
    let asked: [string, string | undefined] | undefined;
    const img = Qcow2Image.open(f, {
      openBacking: (name, format) => {
        asked = [name, format];
        return base;
      },
    });
    expect(asked).toEqual(["base.img", "raw"]);
    expect(img.info.backingFile).toBe("base.img");
    img.write(70_000, new Uint8Array(10).fill(0xab));
    const want = before.slice();
    want.fill(0xab, 70_000, 70_010);
    const got = new Uint8Array(2 * MiB);
    img.read(0, got);
    expect(Buffer.compare(got, want)).toBe(0);
    expect(Buffer.compare(base.data, before)).toBe(0);
  });

  it("an overlay larger than its backing disk reads zeros past the backing disk's end", () => {
    const base = new MemoryBlockBackend(pattern(100_000, 3));
    const img = Qcow2Image.open(fresh(1 * MiB, 16, { name: "b", format: "raw" }), {
      openBacking: () => base,
    });
    img.write(99_990, new Uint8Array(20).fill(1));
    const got = new Uint8Array(200);
    img.read(99_900, got);
    expect([...got.subarray(0, 90)]).toEqual([...base.data.subarray(99_900, 99_990)]);
    expect(got.subarray(90, 110).every((x) => x === 1)).toBe(true);
    expect(got.subarray(110).every((x) => x === 0)).toBe(true);
  });

  it("refuses writes when read-only, and accesses outside the disk", () => {
    const img = Qcow2Image.open(fresh(), { readonly: true });
    expect(() => img.write(0, new Uint8Array(512))).toThrow(/disk\.qcow2: is read-only/);
    const rw = Qcow2Image.open(fresh());
    expect(() => rw.read(4 * MiB - 1, new Uint8Array(2))).toThrow(RangeError);
    expect(() => rw.write(-1, new Uint8Array(1))).toThrow(RangeError);
  });

  it("grows the refcount table and blocks as the file grows (512-byte clusters)", () => {
    // 512-byte clusters: a refcount block counts 256 clusters, the one-cluster table 64
    // blocks, so 8 MiB of data needs new blocks and a bigger table.
    const size = 10 * MiB;
    const f = fresh(size, 9);
    const img = Qcow2Image.open(f);
    const data = pattern(size, 5);
    for (let off = 0; off < size; off += 64 * 1024) img.write(off, data.subarray(off, off + 64 * 1024));
    img.flush();
    const dv = new DataView(f.bytes().buffer);
    expect(dv.getUint32(56)).toBeGreaterThan(1); // refcount_table_clusters grew
    const again = Qcow2Image.open(new MemoryImageFile("disk.qcow2", f.bytes()));
    const got = new Uint8Array(size);
    again.read(0, got);
    expect(Buffer.compare(got, data)).toBe(0);
    // every cluster of the file is counted once: nothing leaked, nothing double-used
    const clusters = Math.ceil(f.size() / 512);
    let counted = 0;
    for (let c = 0; c < clusters; c++) counted += again.refcount(c) === 1 ? 1 : 0;
    expect(counted).toBeGreaterThan(size / 512);
  });

  it("keeps metadata behind data: writes do not reach the L2 table until flush", () => {
    const f = fresh();
    const img = Qcow2Image.open(f);
    img.write(0, new Uint8Array(512).fill(7));
    const syncs = f.syncs;
    // not flushed: the file's L1 still says unallocated
    expect(new DataView(f.bytes().buffer).getBigUint64(0x30000)).toBe(0n);
    img.flush();
    expect(f.syncs).toBeGreaterThan(syncs);
    expect(new DataView(f.bytes().buffer).getBigUint64(0x30000)).toBe((1n << 63n) | 0x40000n);
  });

  it("clears autoclear feature bits when opened for writing (as QEMU does for extensions it does not keep)", () => {
    const f = edited((dv) => dv.setBigUint64(88, 1n));
    Qcow2Image.open(f);
    expect(new DataView(f.bytes().buffer).getBigUint64(88)).toBe(0n);
  });

  it("zero clusters (v3 zero flag) read as zeros, not the backing disk's bytes, and COW from zeros", () => {
    const base = new MemoryBlockBackend(new Uint8Array(4 * MiB).fill(0x55));
    const f = fresh(4 * MiB, 16, { name: "b", format: "raw" });
    const img0 = Qcow2Image.open(f, { openBacking: () => base });
    img0.write(0, new Uint8Array(512).fill(1)); // allocates the L2 table at 0x40000
    img0.flush();
    const g = edited((dv) => {
      dv.setUint32(0x40000 + 8, 0);
      dv.setUint32(0x40000 + 12, 1); // cluster 1: zero flag, no offset
    }, f);
    const img = Qcow2Image.open(g, { openBacking: () => base });
    const b = new Uint8Array(65536);
    img.read(65536, b);
    expect(b.every((x) => x === 0)).toBe(true);
    img.write(65536 + 100, Uint8Array.of(9));
    img.read(65536, b);
    expect(b[100]).toBe(9);
    expect(b.filter((x) => x !== 0).length).toBe(1);
  });
});
