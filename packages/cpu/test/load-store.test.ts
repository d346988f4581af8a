// The hot loop's load/store cases are written out by hand, one per width and sign, for
// speed. This test is their single source of truth: every case label of `run` must be
// the decoder's constant for the op its comment names, and every load and store, on the
// TLB fast path and on the slow path, must move the bytes its width and sign say.
import { readFileSync } from "node:fs";
import { IoManager } from "@visor/io-bus";
import { GuestRam, hpa } from "@visor/memory";
import { describe, expect, it } from "vitest";
import * as D from "../src/decode.ts";
import { EXIT_M, Hart } from "../src/index.ts";

const source = readFileSync(new URL("../src/hart.ts", import.meta.url), "utf8");
const runStart = source.indexOf("  run(budget: number): HartExit {");
const runEnd = source.indexOf("\n  }\n", runStart);
const runSource = source.slice(runStart, runEnd);

/** Every `case N /* OP_NAME *\/` label of the run loop, in order. */
const labels = [...runSource.matchAll(/case (\d+) \/\* (OP_[A-Z_0-9]+) \*\//g)].map((m) => ({
  value: Number(m[1]),
  name: m[2]!,
}));

/** The source of the case block labelled `name` (up to the next label or default). */
function caseBlock(name: string): string {
  const at = runSource.indexOf(`/* ${name} */`);
  expect(at).toBeGreaterThan(0);
  const rest = runSource.slice(at + name.length + 6);
  const next = rest.search(/case \d+ \/\* OP_|default: \{/);
  return rest.slice(0, next);
}

interface Width {
  op: string;
  size: number;
  signed: boolean;
  /** The fast path's DataView accessor. */
  access: string;
}

const LOADS: Width[] = [
  { op: "OP_LB", size: 1, signed: true, access: "getInt8" },
  { op: "OP_LH", size: 2, signed: true, access: "getInt16" },
  { op: "OP_LW", size: 4, signed: true, access: "getInt32" },
  { op: "OP_LD", size: 8, signed: true, access: "getInt32" },
  { op: "OP_LBU", size: 1, signed: false, access: "getUint8" },
  { op: "OP_LHU", size: 2, signed: false, access: "getUint16" },
  { op: "OP_LWU", size: 4, signed: false, access: "getInt32" },
];
const STORES: Width[] = [
  { op: "OP_SB", size: 1, signed: false, access: "setInt8" },
  { op: "OP_SH", size: 2, signed: false, access: "setInt16" },
  { op: "OP_SW", size: 4, signed: false, access: "setInt32" },
  { op: "OP_SD", size: 8, signed: false, access: "setInt32" },
];

describe("the run loop's case labels", () => {
  it("name the decoder's constants", () => {
    expect(labels.length).toBeGreaterThan(70);
    for (const l of labels) {
      const v = (D as unknown as Record<string, number>)[l.name];
      expect(v, `${l.name} is a decoder constant`).toBeTypeOf("number");
      expect(l.value, `case ${l.value} is ${l.name}`).toBe(v);
    }
  });

  it("pair one value with one name", () => {
    // (An inner switch may repeat a label of the outer one, with the same name.)
    const byValue = new Map<number, string>();
    for (const l of labels) {
      expect(byValue.get(l.value) ?? l.name, `case ${l.value}`).toBe(l.name);
      byValue.set(l.value, l.name);
    }
  });

  it("cover every load and store op", () => {
    const names = new Set(labels.map((l) => l.name));
    for (const w of [...LOADS, ...STORES]) expect(names.has(w.op), w.op).toBe(true);
    // And nothing else among the decoder's integer loads and stores.
    for (let op = D.OP_LB; op <= D.OP_SD; op++) {
      expect([...LOADS, ...STORES].some((w) => (D as unknown as Record<string, number>)[w.op] === op)).toBe(
        true,
      );
    }
  });
});

describe("each load/store case", () => {
  for (const w of [...LOADS, ...STORES]) {
    it(`${w.op}: width ${w.size}, ${w.signed ? "sign" : "zero"}-extended, page bound and slow path agree`, () => {
      const block = caseBlock(w.op);
      const isLoad = w.op.startsWith("OP_L");
      // The fast path stays inside the page: the tag is compared with the page of the
      // last byte, so an access across the page's end misses.
      expect(block).toContain(
        w.size === 1 ? "Tag[2 * ti] === (aLo & ~0xfff)" : `Tag[2 * ti] === ((aLo + ${w.size - 1}) & ~0xfff)`,
      );
      expect(block).toContain(`dv.${w.access}(o`);
      if (w.size === 8) expect(block).toContain(`dv.${w.access}(o + 4`);
      // The slow path is asked for the same width.
      expect(block).toContain(
        isLoad ? `loadSlow(c, aLo, aHi, ${w.size})` : `storeSlow(c, aLo, aHi, ${w.size},`,
      );
      // The TLB it checks is the read TLB for loads, the write TLB for stores.
      expect(block).toContain(isLoad ? "rTag[2 * ti]" : "wTag[2 * ti]");
      if (isLoad && w.size < 8) {
        if (w.signed) expect(block).toContain("hi = lo >> 31");
        else expect(block).toContain("hi = 0");
        if (w.signed && w.size < 4)
          expect(block).toContain(`(c.ldLo << ${32 - 8 * w.size}) >> ${32 - 8 * w.size}`);
      }
    });
  }
});

// ------------------------------------------------------------ behaviour, fast and slow

const BASE = 0x8000_0000;
const DATA = BASE + 0x2000; // a page of data
const PROGRAM = BASE;
const X_ADDR = 5; // t0: the address
const X_DST = 6; // t1: load destination
const X_SRC = 7; // t2: store source

/** funct3 of each width (unprivileged spec, table 24.2). */
const F3: Record<string, number> = {
  OP_LB: 0,
  OP_LH: 1,
  OP_LW: 2,
  OP_LD: 3,
  OP_LBU: 4,
  OP_LHU: 5,
  OP_LWU: 6,
  OP_SB: 0,
  OP_SH: 1,
  OP_SW: 2,
  OP_SD: 3,
};
const OPCODE_LOAD = 0x03;
const OPCODE_STORE = 0x23;
const EBREAK = 0x00100073;

function loadInsn(op: string, offset: number): number {
  return ((offset & 0xfff) << 20) | (X_ADDR << 15) | (F3[op]! << 12) | (X_DST << 7) | OPCODE_LOAD;
}
function storeInsn(op: string, offset: number): number {
  const imm = offset & 0xfff;
  return (
    ((imm >>> 5) << 25) |
    (X_SRC << 20) |
    (X_ADDR << 15) |
    (F3[op]! << 12) |
    ((imm & 0x1f) << 7) |
    OPCODE_STORE
  );
}

/** Run one instruction (then an EBREAK exit) at address `addr` in t0; twice, so the first misses the TLB and the second hits it. */
function runTwice(
  ram: GuestRam,
  hart: Hart,
  insn: number,
  addr: number,
  check: (pass: number) => void,
): void {
  ram.write32(hpa(PROGRAM), insn);
  ram.write32(hpa(PROGRAM + 4), EBREAK);
  let misses = 0;
  for (let pass = 0; pass < 2; pass++) {
    hart.pc = BigInt(PROGRAM);
    hart.setX(X_ADDR, BigInt(addr));
    const e = hart.run(10);
    expect(e.kind, `pass ${pass}`).toBe("breakpoint");
    check(pass);
    // The first pass took the slow path (a TLB miss), the second hit the TLB.
    if (pass === 0) expect(hart.stats.tlbMisses).toBeGreaterThan(0);
    else expect(hart.stats.tlbMisses).toBe(misses);
    misses = hart.stats.tlbMisses;
  }
}

function newHart(): { ram: GuestRam; hart: Hart } {
  const ram = new GuestRam(BASE, 1 << 20);
  const hart = new Hart({ ram, bus: new IoManager().mmio });
  hart.exitMask = EXIT_M;
  return { ram, hart };
}

describe("loads and stores, on the slow path then the TLB fast path", () => {
  const bytes = [0x81, 0x92, 0xa3, 0xb4, 0xc5, 0xd6, 0xe7, 0xf8];
  for (const w of LOADS) {
    for (const offset of [0, 8, 4096 - 8]) {
      it(`${w.op} at page offset ${offset}`, () => {
        const { ram, hart } = newHart();
        for (let i = 0; i < bytes.length; i++) ram.write8(hpa(DATA + offset + i), bytes[i]!);
        let v = 0n;
        for (let i = w.size - 1; i >= 0; i--) v = (v << 8n) | BigInt(bytes[i]!);
        const want = BigInt.asUintN(64, w.signed ? BigInt.asIntN(8 * w.size, v) : v);
        runTwice(ram, hart, loadInsn(w.op, 0), DATA + offset, (pass) => {
          expect(hart.getX(X_DST), `pass ${pass}`).toBe(want);
        });
      });
    }
  }
  for (const w of STORES) {
    it(`${w.op} writes ${w.size} bytes and no more`, () => {
      const { ram, hart } = newHart();
      const value = 0x8877_6655_4433_2211n;
      hart.setX(X_SRC, value);
      for (let i = 0; i < 16; i++) ram.write8(hpa(DATA + i), 0xee);
      runTwice(ram, hart, storeInsn(w.op, 4), DATA, (pass) => {
        for (let i = 0; i < 16; i++) {
          const inside = i >= 4 && i < 4 + w.size;
          const want = inside ? Number((value >> BigInt(8 * (i - 4))) & 0xffn) : 0xee;
          expect(ram.read8(hpa(DATA + i)), `pass ${pass} byte ${i}`).toBe(want);
          ram.write8(hpa(DATA + i), 0xee);
        }
      });
    });
  }
});
