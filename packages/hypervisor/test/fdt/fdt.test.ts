/// <reference types="node" />
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  DeviceTree,
  FDT_BEGIN_NODE,
  FDT_END,
  FDT_END_NODE,
  FDT_MAGIC,
  FDT_NOP,
  FDT_PROP,
  FdtNode,
  utf8Decode,
  utf8Encode,
} from "../../src/fdt/fdt.ts";
import { parseFdt, parseFdtHeader } from "../../src/fdt/reader.ts";

const be32 = (b: Uint8Array, off: number): number =>
  new DataView(b.buffer, b.byteOffset, b.byteLength).getUint32(off, false);

function sampleTree(): DeviceTree {
  const dt = new DeviceTree();
  dt.bootCpuidPhys = 1;
  dt.addReservation(0x8000_0000, 0x20_0000);
  dt.addReservation(0x1_0000_0000n, 0x1000n);
  dt.root.setU32("#address-cells", 2).setU32("#size-cells", 2).setString("model", "test");
  const a = dt.root.addNode("alpha@1000");
  a.setU32s("cells", [1, 2, 0xffff_ffff])
    .setU64("big", 0x1234_5678_9abc_def0n)
    .setU64s("reg", [0x1000, 0x100])
    .setStrings("compatible", ["x,one", "x,two"])
    .setBytes("blob", Uint8Array.of(1, 2, 3))
    .setEmpty("flag")
    .setString("unicode", "héllo ✓");
  const b = a.addNode("beta");
  b.setU32("#address-cells", 1);
  dt.root.addNode("gamma").setU32("x", 5);
  dt.phandle(b);
  dt.phandle(a);
  return dt;
}

function treeShape(n: FdtNode): unknown {
  return {
    name: n.name,
    props: [...n.props].map(([k, v]) => [k, [...v]]),
    children: n.children.map(treeShape),
  };
}

describe("FDT writer", () => {
  it("writes a header that matches DTSpec v0.4 chapter 5", () => {
    const blob = sampleTree().toBlob();
    const h = parseFdtHeader(blob);
    expect(h.magic).toBe(FDT_MAGIC);
    expect(be32(blob, 0)).toBe(0xd00dfeed);
    expect(h.totalSize).toBe(blob.length);
    expect(h.version).toBe(17);
    expect(h.lastCompVersion).toBe(16);
    expect(h.bootCpuidPhys).toBe(1);
    expect(h.offMemRsvmap % 8).toBe(0);
    expect(h.offDtStruct % 4).toBe(0);
    // Blocks in order, back to back: rsvmap (2 entries + terminator), struct, strings.
    expect(h.offMemRsvmap).toBe(40);
    expect(h.offDtStruct).toBe(40 + 3 * 16);
    expect(h.offDtStrings).toBe(h.offDtStruct + h.sizeDtStruct);
    expect(h.offDtStrings + h.sizeDtStrings).toBe(blob.length);
    // The struct block ends with FDT_END.
    expect(be32(blob, h.offDtStruct + h.sizeDtStruct - 4)).toBe(FDT_END);
  });

  it("produces exactly the bytes the spec prescribes for a tiny tree", () => {
    const dt = new DeviceTree();
    dt.root.setU32("a", 0x11223344);
    dt.root.addNode("n@1").setString("a", "xy").setEmpty("bc");
    const blob = dt.toBlob();
    const words = (...w: number[]) =>
      w.flatMap((x) => [x >>> 24, (x >>> 16) & 255, (x >>> 8) & 255, x & 255]);
    const struct = [
      ...words(FDT_BEGIN_NODE, 0), // root: name "" + NUL, padded to 4
      ...words(FDT_PROP, 4, 0, 0x11223344), // "a" at strings offset 0
      ...words(FDT_BEGIN_NODE),
      ...[0x6e, 0x40, 0x31, 0], // "n@1\0"
      ...words(FDT_PROP, 3, 0),
      ...[0x78, 0x79, 0, 0], // "xy\0" + pad
      ...words(FDT_PROP, 0, 2), // "bc" at strings offset 2
      ...words(FDT_END_NODE, FDT_END_NODE, FDT_END),
    ];
    const strings = [0x61, 0, 0x62, 0x63, 0];
    const rsv = new Array(16).fill(0);
    const total = 40 + 16 + struct.length + strings.length;
    const header = words(
      0xd00dfeed,
      total,
      56,
      56 + struct.length,
      40,
      17,
      16,
      0,
      strings.length,
      struct.length,
    );
    expect([...blob]).toEqual([...header, ...rsv, ...struct, ...strings]);
  });

  it("stores each property name once in the strings block", () => {
    const dt = new DeviceTree();
    for (let i = 0; i < 10; i++) dt.root.addNode(`n${i}`).setU32("reg", i).setString("compatible", "c");
    const blob = dt.toBlob();
    const h = parseFdtHeader(blob);
    expect(h.sizeDtStrings).toBe("reg\0compatible\0".length);
  });

  it("round-trips through the reader: nodes, every value kind, reservations, boot cpu", () => {
    const dt = sampleTree();
    const back = parseFdt(dt.toBlob());
    expect(treeShape(back.root)).toEqual(treeShape(dt.root));
    expect(back.reservations).toEqual([
      { address: 0x8000_0000n, size: 0x20_0000n },
      { address: 0x1_0000_0000n, size: 0x1000n },
    ]);
    expect(back.bootCpuidPhys).toBe(1);
    const a = back.find("/alpha@1000")!;
    expect(a.getU32s("cells")).toEqual([1, 2, 0xffff_ffff]);
    expect(a.getU64("big")).toBe(0x1234_5678_9abc_def0n);
    expect(a.getU64s("reg")).toEqual([0x1000n, 0x100n]);
    expect(a.getStrings("compatible")).toEqual(["x,one", "x,two"]);
    expect(a.getString("unicode")).toBe("héllo ✓");
    expect([...a.getProp("blob")!]).toEqual([1, 2, 3]);
    expect(a.getProp("flag")!.length).toBe(0);
    expect(back.find("/alpha@1000/beta")!.getU32("phandle")).toBe(1);
    expect(a.getU32("phandle")).toBe(2);
  });

  it("allocates unique phandles, skipping ones set by hand, and rejects duplicates", () => {
    const dt = new DeviceTree();
    const x = dt.root.addNode("x").setU32("phandle", 1);
    const y = dt.root.addNode("y");
    expect(dt.phandle(x)).toBe(1);
    expect(dt.phandle(y)).toBe(2);
    expect(dt.phandle(y)).toBe(2);
    dt.root.addNode("z").setU32("phandle", 2);
    expect(() => dt.toBlob()).toThrow("fdt: duplicate phandle 2 at /y and /z");
  });

  it("rejects invalid names, values and duplicates with one-line errors", () => {
    const n = new FdtNode("");
    expect(() => n.addNode("bad name")).toThrow('fdt: invalid node name "bad name"');
    expect(() => n.addNode("a".repeat(32))).toThrow("invalid node name");
    expect(() => n.setU32("bad!", 1)).toThrow('fdt: invalid property name "bad!"');
    expect(() => n.setU32("x", -1)).toThrow("is not a 32-bit unsigned integer");
    expect(() => n.setU32("x", 2 ** 32)).toThrow("is not a 32-bit unsigned integer");
    expect(() => n.setU64("x", -1n)).toThrow("does not fit in 64 bits");
    expect(() => n.setU64("x", 2n ** 64n)).toThrow("does not fit in 64 bits");
    expect(() => n.setU64("x", 1.5)).toThrow("not a 64-bit unsigned integer");
    expect(() => n.setString("x", "a\0b")).toThrow("contains a NUL character");
    expect(() => n.setStrings("x", [])).toThrow("is empty");
    n.addNode("c");
    expect(() => n.addNode("c")).toThrow('fdt: duplicate node "c"');
    expect(() => new DeviceTree().addReservation(0, 0)).toThrow("cannot be empty");
    expect(() => new DeviceTree().find("cpus")).toThrow("is not absolute");
  });

  it("typed getters refuse values of the wrong shape", () => {
    const n = new FdtNode("").setBytes("odd", Uint8Array.of(1, 2, 3)).setU32s("two", [1, 2]);
    expect(() => n.getU32s("odd")).toThrow("not a cell array");
    expect(() => n.getU32("two")).toThrow("has 2 cells, expected 1");
    expect(() => n.getU64s("odd")).toThrow("not a u64 array");
    expect(() => n.getStrings("odd")).toThrow("not NUL-terminated");
    expect(n.getU32("missing")).toBeUndefined();
  });

  it("encodes and decodes UTF-8 like the platform does", () => {
    fc.assert(
      fc.property(fc.string({ unit: "grapheme" }), (s) => {
        const enc = utf8Encode(s);
        expect([...enc]).toEqual([...Buffer.from(s, "utf8")]);
        expect(utf8Decode(enc)).toBe(s);
      }),
    );
    expect(() => utf8Decode(Uint8Array.of(0xc0, 0x80))).toThrow();
    expect(() => utf8Decode(Uint8Array.of(0xe2, 0x82))).toThrow("truncated");
    expect(() => utf8Decode(Uint8Array.of(0xed, 0xa0, 0x80))).toThrow(); // surrogate
  });
});

/** Builds a blob by hand from struct words, for reader edge cases the writer never emits. */
function handBlob(
  structWords: number[],
  strings: string,
  opts: { version?: number; lastComp?: number } = {},
) {
  const s = Uint8Array.from([...strings].map((c) => c.charCodeAt(0)));
  const structLen = structWords.length * 4;
  const total = 40 + 16 + structLen + s.length;
  const b = new Uint8Array(total);
  const dv = new DataView(b.buffer);
  [
    FDT_MAGIC,
    total,
    56,
    56 + structLen,
    40,
    opts.version ?? 17,
    opts.lastComp ?? 16,
    0,
    s.length,
    structLen,
  ].forEach((v, i) => {
    dv.setUint32(i * 4, v, false);
  });
  for (const [i, w] of structWords.entries()) dv.setUint32(56 + i * 4, w, false);
  b.set(s, 56 + structLen);
  return b;
}

describe("FDT reader", () => {
  it("skips FDT_NOP tokens anywhere in the structure block", () => {
    const blob = handBlob(
      [FDT_NOP, FDT_BEGIN_NODE, 0, FDT_NOP, FDT_PROP, 4, 0, 7, FDT_NOP, FDT_END_NODE, FDT_NOP, FDT_END],
      "x\0",
    );
    const dt = parseFdt(blob);
    expect(dt.root.getU32("x")).toBe(7);
  });

  it("reads version 16 blobs (no size_dt_struct)", () => {
    const blob = handBlob([FDT_BEGIN_NODE, 0, FDT_END_NODE, FDT_END], "", { version: 16 });
    new DataView(blob.buffer).setUint32(36, 0, false);
    expect(parseFdt(blob).root.children).toEqual([]);
  });

  it("rejects malformed blobs with one-line fdt: errors", () => {
    const good = sampleTree().toBlob();
    const mut = (f: (dv: DataView, b: Uint8Array) => void): Uint8Array => {
      const b = good.slice();
      f(new DataView(b.buffer), b);
      return b;
    };
    expect(() => parseFdt(good.subarray(0, 20))).toThrow(
      "fdt: blob is 20 bytes, shorter than the 40-byte header",
    );
    expect(() => parseFdt(mut((dv) => dv.setUint32(0, 0xdeadbeef)))).toThrow("fdt: bad magic 0xdeadbeef");
    expect(() => parseFdt(mut((dv) => dv.setUint32(4, good.length + 1)))).toThrow("totalsize");
    expect(() => parseFdt(mut((dv) => dv.setUint32(20, 15)))).toThrow("version 15 is too old");
    expect(() => parseFdt(mut((dv) => dv.setUint32(24, 18)))).toThrow("needs a reader for version 18");
    expect(() => parseFdt(mut((dv) => dv.setUint32(12, good.length)))).toThrow("strings block");
    expect(() => parseFdt(mut((dv) => dv.setUint32(16, 44)))).toThrow("not 8-byte aligned");
    expect(() => parseFdt(handBlob([FDT_BEGIN_NODE, 0, FDT_END_NODE], ""))).toThrow("ends without FDT_END");
    expect(() => parseFdt(handBlob([FDT_BEGIN_NODE, 0, 0x77, FDT_END], ""))).toThrow(
      "fdt: unknown structure token 0x77",
    );
    expect(() =>
      parseFdt(handBlob([FDT_BEGIN_NODE, 0, FDT_PROP, 4, 99, 1, FDT_END_NODE, FDT_END], "x\0")),
    ).toThrow("property name offset 99 is outside the strings block");
    expect(() =>
      parseFdt(handBlob([FDT_BEGIN_NODE, 0, FDT_PROP, 400, 0, FDT_END_NODE, FDT_END], "x\0")),
    ).toThrow("runs past the structure block");
    expect(() => parseFdt(handBlob([FDT_END_NODE, FDT_END], ""))).toThrow(
      "without a matching FDT_BEGIN_NODE",
    );
    expect(() => parseFdt(handBlob([FDT_BEGIN_NODE, 0, FDT_END], ""))).toThrow("1 node(s) still open");
    expect(() => parseFdt(handBlob([FDT_PROP, 4, 0, 1, FDT_END], "x\0"))).toThrow(
      "property outside any node",
    );
    expect(() => parseFdt(handBlob([FDT_END], ""))).toThrow("has no root node");
    expect(() =>
      parseFdt(handBlob([FDT_BEGIN_NODE, 0, FDT_END_NODE, FDT_BEGIN_NODE, 0, FDT_END_NODE, FDT_END], "")),
    ).toThrow("more than one root node");
    expect(() =>
      parseFdt(handBlob([FDT_BEGIN_NODE, 0, FDT_PROP, 0, 0, FDT_PROP, 0, 0, FDT_END_NODE, FDT_END], "x\0")),
    ).toThrow('duplicate property "x"');
    expect(() => parseFdt(handBlob([FDT_BEGIN_NODE, 0, FDT_PROP, 0, 0, FDT_END_NODE, FDT_END], "x"))).toThrow(
      "not NUL-terminated",
    );
  });

  it("never fails with anything but an fdt: Error on corrupted input (fuzz)", () => {
    const good = sampleTree().toBlob();
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.nat(good.length - 1), fc.integer({ min: 0, max: 255 })), {
          minLength: 1,
          maxLength: 8,
        }),
        fc.nat(good.length),
        (edits, cut) => {
          const b = good.slice(0, cut === 0 ? good.length : cut);
          for (const [i, v] of edits) if (i < b.length) b[i] = v;
          try {
            parseFdt(b);
          } catch (e) {
            expect(e).toBeInstanceOf(Error);
            expect((e as Error).message).toMatch(/^fdt: /);
            expect((e as Error).message).not.toContain("\n");
          }
        },
      ),
      // A newline written into a property name (found by this test in CI): the error must
      // still be one line.
      { numRuns: 2000, examples: [[[[420, 10]], 0]] },
    );
  });
});
