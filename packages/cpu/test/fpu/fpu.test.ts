/**
 * Unit tests of the FPU beyond the hardware vectors: NaN-boxing, illegal encodings, x0,
 * flag accrual, dynamic rounding, register views and state round-trip.
 */
import { describe, expect, it } from "vitest";
import { Fpu, type FpuState } from "../../src/fpu/index.ts";
import { encode, OPS } from "./harness.ts";

const RNE = 0;
const RTZ = 1;
const RDN = 2;
const RUP = 3;
const DYN = 7;
const NV = 0x10;
const DZ = 0x08;
const NX = 0x01;

function regs(): { xlo: Int32Array; xhi: Int32Array } {
  return { xlo: new Int32Array(33), xhi: new Int32Array(33) };
}

/** Encode mnemonic with funct3 (rm or its fixed field) and registers. */
function ins(mn: string, f3: number | null, rd: number, rs1: number, rs2 = 0, rs3 = 0): number {
  const info = OPS[mn];
  if (!info) throw new Error(`no such op ${mn}`);
  return encode(info, f3 ?? info.f3, rd, rs1, rs2, rs3);
}

function f32bits(x: number): number {
  return new Int32Array(new Float32Array([x]).buffer)[0]!;
}

describe("NaN-boxing", () => {
  it("setF32Bits and fmv.w.x box singles; fmv.x.w sign-extends the raw low word", () => {
    const f = new Fpu();
    const { xlo, xhi } = regs();
    f.setF32Bits(1, f32bits(1.5));
    expect(f.w[3]).toBe(-1);
    xlo[5] = f32bits(-2);
    xhi[5] = 0x1234;
    expect(f.exec(ins("fmv.w.x", null, 2, 5), xlo, xhi)).toBe(true);
    expect([f.w[4], f.w[5]]).toEqual([f32bits(-2), -1]);
    // fmv.x.w ignores the box: it moves the low 32 bits, sign-extended.
    f.setF64Bits(3, f32bits(-3), 0x00001234);
    expect(f.exec(ins("fmv.x.w", null, 6, 3), xlo, xhi)).toBe(true);
    expect([xlo[6], xhi[6]]).toEqual([f32bits(-3), -1]);
  });

  it("an improperly boxed single reads as the canonical NaN", () => {
    const f = new Fpu();
    const { xlo, xhi } = regs();
    f.setF64Bits(1, f32bits(1), 0); // hi word not all ones
    f.setF32Bits(2, f32bits(2));
    f.exec(ins("fadd.s", RNE, 3, 1, 2), xlo, xhi);
    expect([f.w[6], f.w[7]]).toEqual([0x7fc00000, -1]);
    expect(f.fflags).toBe(0); // a quiet NaN: no NV
    // fsgnjn.s: the canonical NaN with the sign of rs2 inverted.
    f.setF32Bits(2, f32bits(2));
    f.exec(ins("fsgnjn.s", null, 4, 1, 2), xlo, xhi);
    expect([f.w[8], f.w[9]]).toEqual([0xffc00000 | 0, -1]);
    // fclass.s: quiet NaN (bit 9)
    f.exec(ins("fclass.s", null, 6, 1), xlo, xhi);
    expect(xlo[6]).toBe(1 << 9);
    // fcvt.d.s: canonical double NaN
    f.exec(ins("fcvt.d.s", RNE, 5, 1), xlo, xhi);
    expect([f.w[10], f.w[11]]).toEqual([0, 0x7ff80000]);
    // fle.s signals on the (quiet) NaN, feq.s does not
    f.fflags = 0;
    f.exec(ins("feq.s", null, 6, 1, 2), xlo, xhi);
    expect(f.fflags).toBe(0);
    f.exec(ins("fle.s", null, 6, 1, 2), xlo, xhi);
    expect(f.fflags).toBe(NV);
    expect(xlo[6]).toBe(0);
  });

  it("double results overwrite both words; single results are boxed", () => {
    const f = new Fpu();
    const { xlo, xhi } = regs();
    f.setF64Bits(1, 0, 0x3ff00000); // 1.0
    f.setF64Bits(2, 0, 0x40000000); // 2.0
    f.exec(ins("fcvt.s.d", RNE, 3, 1, 1), xlo, xhi);
    expect([f.w[6], f.w[7]]).toEqual([f32bits(1), -1]);
    expect(f.f64[3]).toBeNaN(); // a boxed single is a NaN as a double
    f.exec(ins("fadd.d", RNE, 3, 1, 2), xlo, xhi);
    expect(f.f64[3]).toBe(3);
  });
});

describe("illegal encodings", () => {
  const cases: [string, number][] = [
    ["fadd.d rm=5", ins("fadd.d", 5, 1, 2, 3)],
    ["fadd.s rm=6", ins("fadd.s", 6, 1, 2, 3)],
    ["fmadd.d rm=5", ins("fmadd.d", 5, 1, 2, 3, 4)],
    ["fcvt.d.s rm=5 (exact, but the field is checked)", ins("fcvt.d.s", 5, 1, 2)],
    ["fcvt.d.w rm=6", ins("fcvt.d.w", 6, 1, 2)],
    ["fmadd with fmt=H", (ins("fmadd.s", RNE, 1, 2, 3, 4) | (2 << 25)) >>> 0],
    ["fmadd with fmt=Q", (ins("fmadd.s", RNE, 1, 2, 3, 4) | (3 << 25)) >>> 0],
    ["fadd.h", ((0x02 << 25) | (3 << 20) | (2 << 15) | (1 << 7) | 0x53) >>> 0],
    ["fsqrt.d rs2=1", ins("fsqrt.d", RNE, 1, 2) | (1 << 20)],
    ["fcvt.s.d rs2=0", ((0x20 << 25) | (2 << 15) | (1 << 7) | 0x53) >>> 0],
    ["fcvt.d.s rs2=1", ins("fcvt.d.s", RNE, 1, 2) | (1 << 20)],
    ["fsgnj.d funct3=3", ins("fsgnj.d", 3, 1, 2, 3)],
    ["fmin.s funct3=2", ins("fmin.s", 2, 1, 2, 3)],
    ["feq.d funct3=3", ins("feq.d", 3, 1, 2, 3)],
    ["fcvt.w.d rs2=4", ((0x61 << 25) | (4 << 20) | (2 << 15) | (1 << 7) | 0x53) >>> 0],
    ["fcvt.d.w rs2=5", ((0x69 << 25) | (5 << 20) | (2 << 15) | (1 << 7) | 0x53) >>> 0],
    ["fmv.x.w funct3=2", ins("fmv.x.w", 2, 1, 2)],
    ["fclass.d rs2=1", ins("fclass.d", null, 1, 2) | (1 << 20)],
    ["fmv.w.x funct3=1", ins("fmv.w.x", 1, 1, 2)],
    ["fmv.d.x rs2=1", ins("fmv.d.x", null, 1, 2) | (1 << 20)],
    ["unknown funct7", ((0x7f << 25) | 0x53) >>> 0],
    ["not an FP opcode (addi)", 0x00100093],
  ];
  for (const [name, insn] of cases) {
    it(`${name} is rejected without side effects`, () => {
      const f = new Fpu();
      const { xlo, xhi } = regs();
      for (let i = 0; i < 64; i++) f.w[i] = i * 0x01010101;
      const before = f.toState();
      expect(f.exec(insn, xlo, xhi)).toBe(false);
      expect(f.toState()).toEqual(before);
      expect(xlo.every((v) => v === 0)).toBe(true);
    });
  }

  it("DYN with frm 5, 6 or 7 is illegal; with frm 0..4 it is legal", () => {
    const f = new Fpu();
    const { xlo, xhi } = regs();
    for (const frm of [5, 6, 7]) {
      f.frm = frm;
      expect(f.exec(ins("fadd.d", DYN, 1, 2, 3), xlo, xhi)).toBe(false);
      expect(f.exec(ins("fcvt.d.w", DYN, 1, 2), xlo, xhi)).toBe(false);
      expect(f.exec(ins("fnmadd.s", DYN, 1, 2, 3, 4), xlo, xhi)).toBe(false);
      // instructions without a rounding mode do not care about frm
      expect(f.exec(ins("fsgnj.d", null, 1, 2, 3), xlo, xhi)).toBe(true);
    }
    for (let frm = 0; frm <= 4; frm++) {
      f.frm = frm;
      expect(f.exec(ins("fadd.d", DYN, 1, 2, 3), xlo, xhi)).toBe(true);
    }
  });
});

describe("rounding and flags", () => {
  it("DYN uses frm", () => {
    const f = new Fpu();
    const { xlo, xhi } = regs();
    f.f64[1] = 1;
    f.f64[2] = 3;
    const expected: [number, number][] = [
      [RNE, 0x55555555],
      [RTZ, 0x55555555],
      [RDN, 0x55555555],
      [RUP, 0x55555556],
    ];
    for (const [mode, lo] of expected) {
      f.frm = mode;
      f.exec(ins("fdiv.d", DYN, 3, 1, 2), xlo, xhi);
      expect(f.w[6], `frm=${mode}`).toBe(lo);
      expect(f.w[7]).toBe(0x3fd55555);
    }
  });

  it("fflags accrue (OR) and are never cleared by an instruction", () => {
    const f = new Fpu();
    const { xlo, xhi } = regs();
    f.f64[1] = 1;
    f.f64[2] = 0;
    f.exec(ins("fdiv.d", RNE, 3, 1, 2), xlo, xhi); // 1/0: DZ
    expect(f.fflags).toBe(DZ);
    f.f64[2] = 3;
    f.exec(ins("fdiv.d", RNE, 3, 1, 2), xlo, xhi); // 1/3: NX
    expect(f.fflags).toBe(DZ | NX);
    f.exec(ins("fadd.d", RNE, 3, 1, 1), xlo, xhi); // exact
    expect(f.fflags).toBe(DZ | NX);
  });

  it("fused multiply-add rounds once", () => {
    const f = new Fpu();
    const { xlo, xhi } = regs();
    // a = 1 + 2^-30, a*a = 1 + 2^-29 + 2^-60; fma(a, a, -(1 + 2^-29)) = 2^-60 exactly,
    // while a separately rounded product would lose the 2^-60 term entirely.
    f.f64[1] = 1 + 2 ** -30;
    f.f64[2] = -(1 + 2 ** -29);
    f.exec(ins("fmadd.d", RNE, 3, 1, 1, 2), xlo, xhi);
    expect(f.f64[3]).toBe(2 ** -60);
    expect(f.fflags).toBe(0);
  });

  it("fused multiply-add: a sub-ulp remainder decides directed rounding of an exact-looking sum", () => {
    // a·b = 2 + 2^-52 exactly (1.5 · (2^53+1)/3 · 2^-51), c = −2^-52 + 2^-105, so
    // x = 2 + 2^-105: every partial sum is exact except the last TwoSum error (tl).
    const f = new Fpu();
    const { xlo, xhi } = regs();
    const up = 2 + 2 ** -51;
    for (const s of [1, -1]) {
      for (const [rm, want] of [
        [RNE, 2],
        [RTZ, 2],
        [RDN, s > 0 ? 2 : up],
        [RUP, s > 0 ? up : 2],
        [4, 2],
      ] as const) {
        f.f64[1] = s * 1.5;
        f.f64[2] = 3002399751580331 * 2 ** -51;
        f.f64[3] = s * (-(2 ** -52) + 2 ** -105);
        f.fflags = 0;
        f.exec(ins("fmadd.d", rm, 4, 1, 2, 3), xlo, xhi);
        expect(f.f64[4], `sign ${s} rm ${rm}`).toBe(s * want);
        expect(f.fflags).toBe(NX);
      }
    }
  });

  it("integer destination x0 is never written, but flags still accrue", () => {
    const f = new Fpu();
    const { xlo, xhi } = regs();
    f.f64[1] = 2.5;
    for (const mn of ["fcvt.w.d", "fcvt.lu.d", "fmv.x.d", "fclass.d", "feq.d", "flt.d"]) {
      const info = OPS[mn]!;
      expect(f.exec(encode(info, info.f3 >= 0 ? info.f3 : RNE, 0, 1, 1), xlo, xhi)).toBe(true);
      expect([xlo[0], xhi[0]], mn).toEqual([0, 0]);
    }
    expect(f.fflags).toBe(NX); // from the conversions of 2.5
  });
});

describe("state", () => {
  it("round-trips through toState / fromState / loadState (and JSON)", () => {
    const f = new Fpu();
    for (let i = 0; i < 64; i++) f.w[i] = Math.imul(i + 1, 0x9e3779b9);
    f.setF64Bits(7, 1, 0x7ff00000); // a signaling NaN survives
    f.fflags = 0x15;
    f.frm = 6; // storable, only illegal when used
    const s = f.toState();
    const g = Fpu.fromState(JSON.parse(JSON.stringify(s)) as FpuState);
    expect(Array.from(g.w)).toEqual(Array.from(f.w));
    expect(g.fflags).toBe(0x15);
    expect(g.frm).toBe(6);
    const h = new Fpu();
    h.loadState(s);
    expect(h.toState()).toEqual(s);
    expect(h.f64[7]).toBeNaN();
  });

  it("rejects malformed state with a clear error", () => {
    const good = new Fpu().toState();
    expect(() => Fpu.fromState({ ...good, regs: good.regs.slice(1) })).toThrow(/64/);
    expect(() => Fpu.fromState({ ...good, regs: [...good.regs.slice(1), 1.5] })).toThrow(/regs\[63\]/);
    expect(() => Fpu.fromState({ ...good, fflags: 32 })).toThrow(/fflags/);
    expect(() => Fpu.fromState({ ...good, frm: -1 })).toThrow(/frm/);
    expect(() => Fpu.fromState(null as unknown as FpuState)).toThrow(/regs/);
  });

  it("w and f64 share one buffer", () => {
    const f = new Fpu();
    f.f64[9] = -2.5;
    expect([f.w[18], f.w[19]]).toEqual([0, 0xc0040000 | 0]);
    f.setF64Bits(10, 0, 0x40080000);
    expect(f.f64[10]).toBe(3);
  });
});
