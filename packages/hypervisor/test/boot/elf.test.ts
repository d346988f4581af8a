/// <reference types="node" />
import { existsSync, readFileSync } from "node:fs";
import { GuestMemory, gpa } from "@visor/memory";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { EM_RISCV, ET_EXEC, PF_R, PF_X, PT_LOAD, parseElf, SHT_SYMTAB } from "../../src/boot/elf.ts";
import { loadElf } from "../../src/boot/elf-loader.ts";

interface SegSpec {
  paddr: bigint;
  vaddr?: bigint;
  data: Uint8Array;
  memSize?: bigint;
  type?: number;
}

/** Writes a minimal ELF64 LE file: header, program headers, data, .symtab + .strtab. */
function buildElf(spec: {
  entry: bigint;
  segments: SegSpec[];
  symbols?: { name: string; value: bigint; shndx?: number }[];
  machine?: number;
  type?: number;
}): Uint8Array {
  const phnum = spec.segments.length;
  let off = 64 + phnum * 56;
  const segOffsets = spec.segments.map((s) => {
    const o = off;
    off += s.data.length;
    return o;
  });
  const syms = spec.symbols ?? [];
  const strtab: number[] = [0];
  const nameOffs = syms.map((s) => {
    const o = strtab.length;
    for (const c of s.name) strtab.push(c.charCodeAt(0));
    strtab.push(0);
    return o;
  });
  const strOff = off;
  off += strtab.length;
  off = (off + 7) & ~7;
  const symOff = off;
  const symSize = (syms.length + 1) * 24;
  off += symSize;
  off = (off + 7) & ~7;
  const shOff = off;
  const total = shOff + 3 * 64;
  const b = new Uint8Array(total);
  const dv = new DataView(b.buffer);
  b.set([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1], 0);
  dv.setUint16(16, spec.type ?? ET_EXEC, true);
  dv.setUint16(18, spec.machine ?? EM_RISCV, true);
  dv.setUint32(20, 1, true);
  dv.setBigUint64(24, spec.entry, true);
  dv.setBigUint64(32, phnum > 0 ? 64n : 0n, true);
  dv.setBigUint64(40, BigInt(shOff), true);
  dv.setUint16(52, 64, true);
  dv.setUint16(54, 56, true);
  dv.setUint16(56, phnum, true);
  dv.setUint16(58, 64, true);
  dv.setUint16(60, 3, true);
  for (const [i, s] of spec.segments.entries()) {
    const o = 64 + i * 56;
    dv.setUint32(o, s.type ?? PT_LOAD, true);
    dv.setUint32(o + 4, PF_R | PF_X, true);
    dv.setBigUint64(o + 8, BigInt(segOffsets[i]!), true);
    dv.setBigUint64(o + 16, s.vaddr ?? s.paddr, true);
    dv.setBigUint64(o + 24, s.paddr, true);
    dv.setBigUint64(o + 32, BigInt(s.data.length), true);
    dv.setBigUint64(o + 40, s.memSize ?? BigInt(s.data.length), true);
    dv.setBigUint64(o + 48, 0x1000n, true);
    b.set(s.data, segOffsets[i]!);
  }
  b.set(strtab, strOff);
  for (const [i, s] of syms.entries()) {
    const o = symOff + (i + 1) * 24;
    dv.setUint32(o, nameOffs[i]!, true);
    b[o + 4] = (1 << 4) | 1; // STB_GLOBAL, STT_OBJECT
    dv.setUint16(o + 6, s.shndx ?? 1, true);
    dv.setBigUint64(o + 8, s.value, true);
    dv.setBigUint64(o + 16, 8n, true);
  }
  // Section 1: .symtab (link 2), section 2: .strtab.
  const sh = (i: number, type: number, offset: number, size: number, link: number, entsize: number) => {
    const o = shOff + i * 64;
    dv.setUint32(o + 4, type, true);
    dv.setBigUint64(o + 24, BigInt(offset), true);
    dv.setBigUint64(o + 32, BigInt(size), true);
    dv.setUint32(o + 40, link, true);
    dv.setBigUint64(o + 56, BigInt(entsize), true);
  };
  sh(1, SHT_SYMTAB, symOff, symSize, 2, 24);
  sh(2, 3 /* SHT_STRTAB */, strOff, strtab.length, 0, 0);
  return b;
}

const RAM_BASE = 0x8000_0000;
const code = Uint8Array.from({ length: 64 }, (_, i) => i + 1);
const sample = () =>
  buildElf({
    entry: 0x8000_0010n,
    segments: [
      { paddr: 0x8000_0000n, data: code },
      { paddr: 0x8000_1000n, data: Uint8Array.of(0xaa, 0xbb), memSize: 0x100n },
    ],
    symbols: [
      { name: "tohost", value: 0x8000_1000n },
      { name: "fromhost", value: 0x8000_1040n },
      { name: "undefined_one", value: 0n, shndx: 0 },
    ],
  });

describe("parseElf", () => {
  it("reads the header, PT_LOAD segments and the symbol table", () => {
    const elf = parseElf(sample());
    expect(elf.type).toBe(ET_EXEC);
    expect(elf.machine).toBe(EM_RISCV);
    expect(elf.entry).toBe(0x8000_0010n);
    expect(elf.loadSegments.map((s) => [s.paddr, s.fileSize, s.memSize])).toEqual([
      [0x8000_0000n, 64, 64n],
      [0x8000_1000n, 2, 0x100n],
    ]);
    expect([...elf.loadSegments[0]!.data]).toEqual([...code]);
    expect(elf.symbol("tohost")?.value).toBe(0x8000_1000n);
    expect(elf.symbol("fromhost")?.value).toBe(0x8000_1040n);
    expect(elf.symbol("undefined_one")).toBeUndefined();
    expect(elf.symbol("nope")).toBeUndefined();
    expect(elf.symbols.map((s) => s.name)).toEqual(["tohost", "fromhost", "undefined_one"]);
  });

  it("accepts another machine only when asked", () => {
    const x86 = buildElf({ entry: 0n, segments: [], machine: 62 });
    expect(() => parseElf(x86)).toThrow("elf: wrong machine 62 (expected RISC-V, 243)");
    expect(parseElf(x86, { machine: null }).machine).toBe(62);
    expect(parseElf(x86, { machine: 62 }).machine).toBe(62);
  });

  it("rejects every malformed case with a one-line elf: error", () => {
    const good = sample();
    const mut = (f: (dv: DataView, b: Uint8Array) => void): Uint8Array => {
      const b = good.slice();
      f(new DataView(b.buffer), b);
      return b;
    };
    expect(() => parseElf(Uint8Array.of(1, 2, 3))).toThrow("elf: not an ELF file (bad magic)");
    expect(() => parseElf(new Uint8Array(100))).toThrow("elf: not an ELF file (bad magic)");
    expect(() => parseElf(good.subarray(0, 40))).toThrow(
      "elf: file is 40 bytes, too short for an ELF64 header",
    );
    expect(() => parseElf(mut((_, b) => (b[4] = 1)))).toThrow("elf: not a 64-bit ELF file (EI_CLASS 1)");
    expect(() => parseElf(mut((_, b) => (b[5] = 2)))).toThrow("elf: not a little-endian ELF file");
    expect(() => parseElf(mut((dv) => dv.setUint16(18, 40, true)))).toThrow("elf: wrong machine 40");
    expect(() => parseElf(good.subarray(0, 100))).toThrow(
      "program header table runs past the end of the file",
    );
    expect(() => parseElf(mut((dv) => dv.setUint16(54, 32, true)))).toThrow("program header entry size 32");
    expect(() => parseElf(mut((dv) => dv.setBigUint64(64 + 32, 0x1000n, true)))).toThrow(
      "elf: segment 0 has a file size 0x1000 larger than its memory size 0x40",
    );
    expect(() =>
      parseElf(
        mut((dv) => {
          dv.setBigUint64(64 + 32, 0x10_0000n, true);
          dv.setBigUint64(64 + 40, 0x10_0000n, true);
        }),
      ),
    ).toThrow("segment 0 data [0xb0, +0x100000) runs past the end of the file (truncated?)");
    expect(() => parseElf(mut((dv) => dv.setBigUint64(40, 0xffff_ffffn, true)))).toThrow(
      "section header table offset 0xffffffff runs past the end",
    );
    expect(() => parseElf(good.subarray(0, good.length - 10))).toThrow(
      "section header table runs past the end",
    );
    // Symbol 1's name offset beyond .strtab.
    const symOff = Number(new DataView(good.buffer).getBigUint64(good.length - 128 + 24, true));
    expect(() => parseElf(mut((dv) => dv.setUint32(symOff + 24, 9999, true)))).toThrow(
      "elf: symbol 1 name offset 9999 is outside its string table",
    );
    expect(() => parseElf(mut((dv) => dv.setUint32(good.length - 128 + 40, 7, true)))).toThrow(
      "symbol table links to section 7, but there are 3",
    );
  });

  it("never throws anything but a one-line elf: Error on mutated or cut files (fuzz)", () => {
    const good = sample();
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.nat(good.length - 1), fc.integer({ min: 0, max: 255 })), { maxLength: 6 }),
        fc.nat(good.length),
        (edits, cut) => {
          const b = good.slice(0, cut === 0 ? good.length : cut);
          for (const [i, v] of edits) if (i < b.length) b[i] = v;
          try {
            parseElf(b);
          } catch (e) {
            expect(e).toBeInstanceOf(Error);
            expect((e as Error).message).toMatch(/^elf: [^\n]+$/);
          }
        },
      ),
      { numRuns: 2000 },
    );
  });
});

describe("loadElf", () => {
  it("copies segments to their physical addresses, zeroes .bss, finds tohost/fromhost", () => {
    const ram = GuestMemory.allocate(RAM_BASE, 0x10_000);
    ram.viewMut(ram.base, ram.size).fill(0xee);
    const loaded = loadElf(ram, sample());
    expect(loaded.entry).toBe(0x8000_0010);
    expect(loaded.tohost).toBe(0x8000_1000);
    expect(loaded.fromhost).toBe(0x8000_1040);
    expect([...ram.view(gpa(RAM_BASE), 64)]).toEqual([...code]);
    expect([...ram.view(gpa(0x8000_1000), 4)]).toEqual([0xaa, 0xbb, 0, 0]);
    expect(ram.view(gpa(0x8000_1002), 0xfe).every((b) => b === 0)).toBe(true);
    expect(ram.read8(gpa(0x8000_1100))).toBe(0xee); // past memsz: untouched
    expect(loaded.ranges).toEqual([
      { start: 0x8000_0000, end: 0x8000_0040 },
      { start: 0x8000_1000, end: 0x8000_1100 },
    ]);
  });

  it("translates a virtual entry point through its segment", () => {
    const ram = GuestMemory.allocate(RAM_BASE, 0x10_000);
    const elf = buildElf({
      entry: 0xffff_ffff_8000_0008n,
      segments: [{ paddr: 0x8000_2000n, vaddr: 0xffff_ffff_8000_0000n, data: code }],
    });
    expect(loadElf(ram, elf).entry).toBe(0x8000_2008);
  });

  it("refuses, before writing anything, segments outside RAM, overlaps and bad entries", () => {
    const ram = GuestMemory.allocate(RAM_BASE, 0x10_000);
    const outside = buildElf({
      entry: 0x8000_0000n,
      segments: [{ paddr: 0x8000_f000n, data: code, memSize: 0x2000n }],
    });
    expect(() => loadElf(ram, outside)).toThrow(
      "elf: segment 0 [0x8000f000, 0x80011000) is outside RAM [0x80000000, 0x80010000)",
    );
    const below = buildElf({ entry: 0x1000n, segments: [{ paddr: 0x1000n, data: code }] });
    expect(() => loadElf(ram, below)).toThrow("elf: segment 0 [0x1000, 0x1040) is outside RAM");
    const overlap = buildElf({
      entry: 0x8000_0000n,
      segments: [
        { paddr: 0x8000_0000n, data: code, memSize: 0x100n },
        { paddr: 0x8000_0080n, data: code },
      ],
    });
    expect(() => loadElf(ram, overlap)).toThrow("elf: segments 0 and 1 overlap at 0x80000080");
    const badEntry = buildElf({ entry: 0x9000_0000n, segments: [{ paddr: 0x8000_0000n, data: code }] });
    expect(() => loadElf(ram, badEntry)).toThrow(
      "elf: entry point 0x90000000 is not inside any loaded segment",
    );
    const none = buildElf({ entry: 0x8000_0000n, segments: [] });
    expect(() => loadElf(ram, none)).toThrow("elf: no loadable segment");
    const relocatable = buildElf({
      entry: 0x8000_0000n,
      segments: [{ paddr: 0x8000_0000n, data: code }],
      type: 1,
    });
    expect(() => loadElf(ram, relocatable)).toThrow("elf: not an executable (e_type 1)");
    const farTohost = buildElf({
      entry: 0x8000_0000n,
      segments: [{ paddr: 0x8000_0000n, data: code }],
      symbols: [{ name: "tohost", value: 0x1000n }],
    });
    expect(() => loadElf(ram, farTohost)).toThrow("elf: symbol tohost at 0x1000 is outside RAM");
    expect(ram.viewMut(ram.base, ram.size).every((b) => b === 0)).toBe(true);
  });

  const fwJump = "/usr/lib/riscv64-linux-gnu/opensbi/generic/fw_jump.elf";
  it.skipIf(!existsSync(fwJump))(
    "loads Debian's OpenSBI fw_jump.elf at 0x80000000 (skipped when the opensbi package is not installed)",
    () => {
      const bytes = new Uint8Array(readFileSync(fwJump));
      const ram = GuestMemory.allocate(RAM_BASE, 2 * 1024 * 1024);
      const loaded = loadElf(ram, bytes);
      expect(loaded.entry).toBe(RAM_BASE);
      expect(loaded.ranges[0]!.start).toBe(RAM_BASE);
      expect(loaded.ranges.at(-1)!.end).toBeLessThanOrEqual(RAM_BASE + 0x20_0000);
      const seg = loaded.elf.loadSegments[0]!;
      expect([...ram.view(gpa(RAM_BASE), 16)]).toEqual([...seg.data.subarray(0, 16)]);
    },
  );
});
