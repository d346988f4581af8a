/**
 * The floating-point unit of the hart: RISC-V F and D extensions (RV64), bit-exact.
 *
 * Design. Every computational instruction has a fast path on native doubles and an exact
 * path (exact.ts, BigInt) that is always correct. A fast path is only taken where it is
 * provably equivalent to one correct rounding of the exact result, and it must also prove
 * every flag; anything it cannot prove (NaN or infinite operands, zero results, results
 * near the subnormal or overflow ranges, huge/tiny operands whose error terms would not
 * be representable) falls back to the exact path. The arguments, briefly:
 *
 * - binary64 + − × ÷ √ on doubles are correctly rounded to nearest-even by IEEE 754. The
 *   exact error is recovered with error-free transformations: TwoSum for +/− (always
 *   exact), Dekker's TwoProduct for × (exact while no operand split overflows and the
 *   error term is not below 2^-1074), and remainder a − q·b = (a − p) − e with
 *   (p, e) = TwoProduct(q, b) for ÷ (a − p is exact by Sterbenz), likewise a − s² for √.
 *   NX is "error ≠ 0"; a directed mode moves the nearest result one ulp according to the
 *   sign of the error; RMM differs from RNE only at exact midpoints (impossible for ÷ and
 *   √ with normal results). Results kept in [2^-1020, 2^1023) cannot be tiny or overflow
 *   after a one-ulp step, so UF and OF never apply there.
 * - binary64 FMA: x = a·b + c = ph + pl + c (TwoProduct) = sh + sl + pl (TwoSum) =
 *   sh + th + tl (TwoSum of sl, pl) = r + r2 + tl (TwoSum of sh, th). Either ph + c is
 *   exact (Sterbenz, so sl = tl = 0) or |th| < 2^-50 |sh|, which makes the ulp of th far
 *   below that of r: then |tl| < |r2| whenever r2 ≠ 0, and x rounds like r + r2 except
 *   when r2 is exactly half an ulp, where tl breaks the tie. One rounding, no BigInt.
 *   Two cheap special cases stay off the exact path too: an exactly zero product (the
 *   result is c, or a signed zero), and a product below 2^-967 against |c| ≥ 2^-900
 *   (the product only nudges c by less than a quarter ulp).
 * - binary32: the operands are exact doubles; a·b is exact in a double, a + b and
 *   a·b + c are a double s plus an exact TwoSum error, and ÷, √ computed in double then
 *   rounded to single are correctly rounded (53 ≥ 2·24 + 2, so the double rounding is
 *   innocuous), with the sign of the error found exactly from r·b or r² (exact in
 *   double). Rounding s to single uses the TwoSum error to undo double rounding at
 *   single-precision midpoints.
 *
 * NaNs are always handled by bit pattern (the w[] words), never through a double: an
 * engine may change a NaN's payload when it passes through a double value.
 *
 * Register file layout: 64-bit patterns, lo word at w[2i], hi word at w[2i+1]; `f64` is a
 * Float64Array view of the same buffer (little-endian host, checked in bits.ts). Singles
 * are NaN-boxed (hi word all ones); an improperly boxed single reads as the canonical NaN
 * in every instruction except the moves (spec, "NaN Boxing of Narrower Values").
 */
import {
  CANON_NAN_D_HI,
  CANON_NAN_S,
  directed32,
  directed64,
  fclassBits,
  NV,
  NX,
  RDN,
  RMM,
  RNE,
  RTZ,
  RUP,
  sF64,
  sI32,
  stepMag32,
} from "./bits.ts";
import * as exact from "./exact.ts";

const out = exact.out;

const TWO_32 = 4294967296;
const TWO_M1022 = 2 ** -1022;
const TWO_M1020 = 2 ** -1020;
const TWO_M968 = 2 ** -968;
const TWO_M966 = 2 ** -966;
const TWO_M900 = 2 ** -900;
const TWO_996 = 2 ** 996;
const TWO_1022 = 2 ** 1022;
const TWO_1023 = 2 ** 1023;
const TWO_M125 = 2 ** -125;
const TWO_127 = 2 ** 127;
const TWO_53 = 2 ** 53;
const TWO_63 = 2 ** 63;
const TWO_64 = 2 ** 64;
const MAX_D = Number.MAX_VALUE;
/** Veltkamp splitter 2^27 + 1. */
const SPLIT = 134217729;

/**
 * Error of the product p = RN(a·b): a·b = p + result exactly (Dekker). Valid when
 * |a|, |b| ∈ [2^-1022, 2^996) and |p| ∈ [2^-968, 2^1023).
 */
function twoProdErr(a: number, b: number, p: number): number {
  let t = SPLIT * a;
  const ah = t - (t - a);
  const al = a - ah;
  t = SPLIT * b;
  const bh = t - (t - b);
  const bl = b - bh;
  return ah * bh - p + ah * bl + al * bh + al * bl;
}

/**
 * True when r = RN(x) and x = r + err (0 < |err| ≤ half the gap towards err) lies exactly
 * halfway: then r + 2·err is the neighbour and representable; otherwise it rounds to r or
 * to the neighbour and the difference cannot equal 2·err. Needs |r| < 2^1023.
 */
function isHalf64(r: number, err: number): boolean {
  return r + 2 * err - r === 2 * err;
}

function isNaN64(lo: number, hi: number): boolean {
  return (hi & 0x7ff00000) === 0x7ff00000 && ((hi & 0xfffff) | lo) !== 0;
}
function isSNaN64(lo: number, hi: number): boolean {
  return isNaN64(lo, hi) && (hi & 0x80000) === 0;
}
function isNaN32(b: number): boolean {
  return (b & 0x7f800000) === 0x7f800000 && (b & 0x7fffff) !== 0;
}
function isSNaN32(b: number): boolean {
  return isNaN32(b) && (b & 0x400000) === 0;
}

/** Snapshot of the FP state: the 64 register words (w[] order), fflags and frm. */
export interface FpuState {
  regs: number[];
  fflags: number;
  frm: number;
}

// Integer conversion kinds (the rs2 field of fcvt.{w,wu,l,lu}.{s,d} and fcvt.{s,d}.*).
const K_W = 0;
const K_WU = 1;
const K_L = 2;

export class Fpu {
  /** FP registers as 64-bit patterns: lo word at [2*i], hi word at [2*i+1]. Same buffer as f64. */
  readonly w: Int32Array;
  /** The registers as doubles (view of the same buffer). */
  readonly f64: Float64Array;
  /** Singles view: f32[2*i] is the low word of register i as a binary32 value. */
  private readonly f32: Float32Array;
  /** fflags at [0], frm at [1]: in the hart's state buffer, where translated code reads them. */
  private readonly ctl: Int32Array;

  /**
   * A new FPU, its registers (256 bytes) and fcsr (8 bytes) at the given byte offsets of
   * `buf` (the hart's state buffer), or in a buffer of its own.
   */
  constructor(buf: ArrayBuffer = new ArrayBuffer(264), regsAt = 0, fcsrAt = 256) {
    this.w = new Int32Array(buf, regsAt, 64);
    this.f64 = new Float64Array(buf, regsAt, 32);
    this.f32 = new Float32Array(buf, regsAt, 64);
    this.ctl = new Int32Array(buf, fcsrAt, 2);
  }

  /** Accrued exceptions NV DZ OF UF NX = bits 4..0. */
  get fflags(): number {
    return this.ctl[0]!;
  }
  set fflags(v: number) {
    this.ctl[0] = v;
  }
  /** Dynamic rounding mode (fcsr.frm). Values 5..7 are storable; using them via DYN is illegal. */
  get frm(): number {
    return this.ctl[1]!;
  }
  set frm(v: number) {
    this.ctl[1] = v;
  }

  /** Write a single (NaN-boxed: hi word = all ones), e.g. for FLW. */
  setF32Bits(rd: number, bits: number): void {
    this.w[2 * rd] = bits;
    this.w[2 * rd + 1] = -1;
  }

  /** Write a double's bit pattern, e.g. for FLD. */
  setF64Bits(rd: number, lo: number, hi: number): void {
    this.w[2 * rd] = lo;
    this.w[2 * rd + 1] = hi;
  }

  toState(): FpuState {
    return { regs: Array.from(this.w), fflags: this.fflags, frm: this.frm };
  }

  /** Restore a snapshot taken by toState() into this FPU. */
  loadState(s: FpuState): void {
    if (s === null || typeof s !== "object" || !Array.isArray(s.regs) || s.regs.length !== 64) {
      throw new Error("Fpu state: regs must be an array of 64 32-bit words");
    }
    for (let i = 0; i < 64; i++) {
      const v = s.regs[i];
      if (typeof v !== "number" || !Number.isInteger(v) || v < -0x80000000 || v > 0xffffffff) {
        throw new Error(`Fpu state: regs[${i}] is not a 32-bit word: ${String(v)}`);
      }
    }
    if (!Number.isInteger(s.fflags) || s.fflags < 0 || s.fflags > 0x1f) {
      throw new Error(`Fpu state: fflags must be an integer in 0..31, got ${String(s.fflags)}`);
    }
    if (!Number.isInteger(s.frm) || s.frm < 0 || s.frm > 7) {
      throw new Error(`Fpu state: frm must be an integer in 0..7, got ${String(s.frm)}`);
    }
    for (let i = 0; i < 64; i++) this.w[i] = s.regs[i]!;
    this.fflags = s.fflags;
    this.frm = s.frm;
  }

  /** A new FPU holding a snapshot taken by toState(). */
  static fromState(s: FpuState): Fpu {
    const f = new Fpu();
    f.loadState(s);
    return f;
  }

  /**
   * Execute one instruction of major opcode OP-FP (0x53), FMADD (0x43), FMSUB (0x47),
   * FNMSUB (0x4b) or FNMADD (0x4f); `insn` is the raw 32-bit encoding. Integer operands and
   * results use the core's int32 register pairs (x[i] = xhi[i]·2^32 + (xlo[i] >>> 0));
   * integer register 0 is never written. Returns false, changing nothing, if the
   * instruction is illegal: reserved rm (5, 6), DYN with frm > 4, unknown funct fields or
   * formats other than S and D. Does not touch mstatus.FS.
   */
  exec(insn: number, xlo: Int32Array, xhi: Int32Array): boolean {
    const opcode = insn & 0x7f;
    const rd = (insn >>> 7) & 31;
    const rs1 = (insn >>> 15) & 31;
    const rs2 = (insn >>> 20) & 31;
    const f3 = (insn >>> 12) & 7;
    if (opcode === 0x53) return this.opFp(insn >>> 25, rd, rs1, rs2, f3, xlo, xhi);
    if (opcode !== 0x43 && opcode !== 0x47 && opcode !== 0x4b && opcode !== 0x4f) return false;
    const fmt = (insn >>> 25) & 3;
    const rm = this.resolveRm(f3);
    if (fmt > 1 || rm < 0) return false;
    const negP = opcode === 0x4b || opcode === 0x4f;
    const negC = opcode === 0x47 || opcode === 0x4f;
    if (fmt === 1) this.fmaD(rd, rs1, rs2, insn >>> 27, negP, negC, rm);
    else this.fmaS(rd, rs1, rs2, insn >>> 27, negP, negC, rm);
    return true;
  }

  /** The effective rounding mode of an rm field, or -1 if illegal. */
  private resolveRm(rm: number): number {
    if (rm === 7) return this.frm <= 4 ? this.frm : -1;
    return rm <= 4 ? rm : -1;
  }

  private opFp(
    funct7: number,
    rd: number,
    rs1: number,
    rs2: number,
    f3: number,
    xlo: Int32Array,
    xhi: Int32Array,
  ): boolean {
    let rm: number;
    switch (funct7) {
      case 0x00: // fadd.s
      case 0x04: // fsub.s
        if ((rm = this.resolveRm(f3)) < 0) return false;
        this.addS(rd, rs1, rs2, funct7 === 0x04, rm);
        return true;
      case 0x01: // fadd.d
      case 0x05: // fsub.d
        if ((rm = this.resolveRm(f3)) < 0) return false;
        this.addD(rd, rs1, rs2, funct7 === 0x05, rm);
        return true;
      case 0x08: // fmul.s
        if ((rm = this.resolveRm(f3)) < 0) return false;
        this.mulS(rd, rs1, rs2, rm);
        return true;
      case 0x09: // fmul.d
        if ((rm = this.resolveRm(f3)) < 0) return false;
        this.mulD(rd, rs1, rs2, rm);
        return true;
      case 0x0c: // fdiv.s
        if ((rm = this.resolveRm(f3)) < 0) return false;
        this.divS(rd, rs1, rs2, rm);
        return true;
      case 0x0d: // fdiv.d
        if ((rm = this.resolveRm(f3)) < 0) return false;
        this.divD(rd, rs1, rs2, rm);
        return true;
      case 0x2c: // fsqrt.s
        if (rs2 !== 0 || (rm = this.resolveRm(f3)) < 0) return false;
        this.sqrtS(rd, rs1, rm);
        return true;
      case 0x2d: // fsqrt.d
        if (rs2 !== 0 || (rm = this.resolveRm(f3)) < 0) return false;
        this.sqrtD(rd, rs1, rm);
        return true;
      case 0x10: // fsgnj.s / fsgnjn.s / fsgnjx.s
        if (f3 > 2) return false;
        this.sgnjS(rd, rs1, rs2, f3);
        return true;
      case 0x11: // fsgnj*.d
        if (f3 > 2) return false;
        this.sgnjD(rd, rs1, rs2, f3);
        return true;
      case 0x14: // fmin.s / fmax.s
        if (f3 > 1) return false;
        this.minMaxS(rd, rs1, rs2, f3 === 1);
        return true;
      case 0x15: // fmin.d / fmax.d
        if (f3 > 1) return false;
        this.minMaxD(rd, rs1, rs2, f3 === 1);
        return true;
      case 0x20: // fcvt.s.d
        if (rs2 !== 1 || (rm = this.resolveRm(f3)) < 0) return false;
        this.cvtSD(rd, rs1, rm);
        return true;
      case 0x21: // fcvt.d.s (exact, but the rm field must still be legal)
        if (rs2 !== 0 || this.resolveRm(f3) < 0) return false;
        this.cvtDS(rd, rs1);
        return true;
      case 0x50: // fle.s / flt.s / feq.s
        if (f3 > 2) return false;
        this.cmpS(rd, rs1, rs2, f3, xlo, xhi);
        return true;
      case 0x51: // fle.d / flt.d / feq.d
        if (f3 > 2) return false;
        this.cmpD(rd, rs1, rs2, f3, xlo, xhi);
        return true;
      case 0x60: // fcvt.{w,wu,l,lu}.s
        if (rs2 > 3 || (rm = this.resolveRm(f3)) < 0) return false;
        this.toInt(this.w[2 * rs1 + 1] === -1 ? this.f32[2 * rs1]! : Number.NaN, rs2, rm, rd, xlo, xhi);
        return true;
      case 0x61: // fcvt.{w,wu,l,lu}.d
        if (rs2 > 3 || (rm = this.resolveRm(f3)) < 0) return false;
        this.toInt(this.f64[rs1]!, rs2, rm, rd, xlo, xhi);
        return true;
      case 0x68: // fcvt.s.{w,wu,l,lu}
        if (rs2 > 3 || (rm = this.resolveRm(f3)) < 0) return false;
        this.fromIntS(rd, rs2, xlo[rs1]!, xhi[rs1]!, rm);
        return true;
      case 0x69: // fcvt.d.{w,wu,l,lu}
        if (rs2 > 3 || (rm = this.resolveRm(f3)) < 0) return false;
        this.fromIntD(rd, rs2, xlo[rs1]!, xhi[rs1]!, rm);
        return true;
      case 0x70: // fmv.x.w / fclass.s
        if (rs2 !== 0 || f3 > 1) return false;
        if (rd !== 0) {
          if (f3 === 0) {
            // fmv.x.w: the raw low word, sign-extended (no NaN-box check).
            const v = this.w[2 * rs1]!;
            xlo[rd] = v;
            xhi[rd] = v >> 31;
          } else {
            const b = this.sBits(rs1);
            xlo[rd] = fclassBits(
              b >>> 31,
              (b & 0x7f800000) === 0x7f800000,
              (b & 0x7f800000) === 0,
              (b & 0x7fffff) === 0,
              (b & 0x400000) !== 0,
            );
            xhi[rd] = 0;
          }
        }
        return true;
      case 0x71: // fmv.x.d / fclass.d
        if (rs2 !== 0 || f3 > 1) return false;
        if (rd !== 0) {
          const lo = this.w[2 * rs1]!;
          const hi = this.w[2 * rs1 + 1]!;
          if (f3 === 0) {
            xlo[rd] = lo;
            xhi[rd] = hi;
          } else {
            xlo[rd] = fclassBits(
              hi >>> 31,
              (hi & 0x7ff00000) === 0x7ff00000,
              (hi & 0x7ff00000) === 0,
              ((hi & 0xfffff) | lo) === 0,
              (hi & 0x80000) !== 0,
            );
            xhi[rd] = 0;
          }
        }
        return true;
      case 0x78: // fmv.w.x
        if (rs2 !== 0 || f3 !== 0) return false;
        this.w[2 * rd] = xlo[rs1]!;
        this.w[2 * rd + 1] = -1;
        return true;
      case 0x79: // fmv.d.x
        if (rs2 !== 0 || f3 !== 0) return false;
        this.w[2 * rd] = xlo[rs1]!;
        this.w[2 * rd + 1] = xhi[rs1]!;
        return true;
      default:
        return false;
    }
  }

  // ------------------------------------------------------------------ register access

  /** A single operand's value (NaN when not properly NaN-boxed; NaN payloads are lost). */
  private sVal(r: number): number {
    return this.w[2 * r + 1] === -1 ? this.f32[2 * r]! : Number.NaN;
  }
  /** A single operand's bit pattern (the canonical NaN when not properly NaN-boxed). */
  private sBits(r: number): number {
    return this.w[2 * r + 1] === -1 ? this.w[2 * r]! : CANON_NAN_S;
  }
  private putS(rd: number, v: number): void {
    this.f32[2 * rd] = v;
    this.w[2 * rd + 1] = -1;
  }
  /** Store the exact path's result and accrue its flags. */
  private putOut(rd: number, flags: number): void {
    this.w[2 * rd] = out.lo;
    this.w[2 * rd + 1] = out.hi;
    this.fflags |= flags;
  }

  /**
   * Round x = s + err to single precision in mode rm and write it to rd, where s = RN53(x)
   * (a double) and err is exact. Returns false, writing nothing, when the result is zero,
   * non-finite, or within reach of the subnormal or overflow ranges (exact path then).
   */
  private finishS(rd: number, s: number, err: number, rm: number): boolean {
    const rf = Math.fround(s);
    const ar = Math.abs(rf);
    if (!(ar >= TWO_M125 && ar < TWO_127)) return false;
    if (s === rf) {
      if (err !== 0) {
        this.fflags |= NX;
        if (rm !== RNE) {
          this.putS(rd, directed32(rf, err > 0 ? 1 : -1, false, rm));
          return true;
        }
      }
      this.putS(rd, rf);
      return true;
    }
    this.fflags |= NX;
    let r = rf;
    let sgn = s > rf ? 1 : -1;
    let tie = false;
    // Is s exactly halfway between two singles (its 29 low fraction bits 1000...0)? Then
    // fround(s) broke the tie to even, but x itself may lie beyond the midpoint.
    sF64[0] = s;
    if ((sI32[0]! & 0x1fffffff) === 0x10000000) {
      if (err === 0) tie = true;
      else if (err > 0 === sgn > 0) {
        r = stepMag32(rf, sgn > 0 === rf > 0);
        sgn = -sgn;
      }
    }
    this.putS(rd, rm === RNE ? r : directed32(r, sgn, tie, rm));
    return true;
  }

  // ------------------------------------------------------------------ single precision

  private addS(rd: number, rs1: number, rs2: number, sub: boolean, rm: number): void {
    const a = this.sVal(rs1);
    const b = sub ? -this.sVal(rs2) : this.sVal(rs2);
    const s = a + b;
    const bb = s - a;
    const err = a - (s - bb) + (b - bb);
    if (this.finishS(rd, s, err, rm)) return;
    if (s === 0) {
      this.putS(rd, rm === RDN ? -(-a - b) : s); // exact zero, as in addD
      return;
    }
    this.putOut(rd, exact.add(false, this.sBits(rs1), -1, this.sBits(rs2), -1, sub, rm));
  }

  private mulS(rd: number, rs1: number, rs2: number, rm: number): void {
    if (this.finishS(rd, this.sVal(rs1) * this.sVal(rs2), 0, rm)) return;
    this.putOut(rd, exact.mul(false, this.sBits(rs1), -1, this.sBits(rs2), -1, rm));
  }

  private divS(rd: number, rs1: number, rs2: number, rm: number): void {
    const a = this.sVal(rs1);
    const b = this.sVal(rs2);
    const r = Math.fround(a / b);
    const ar = Math.abs(r);
    if (ar >= TWO_M125 && ar < TWO_127) {
      const t = r * b; // exact: 24 × 24 bits
      if (t === a) this.putS(rd, r);
      else {
        this.fflags |= NX;
        this.putS(rd, rm === RNE ? r : directed32(r, a > t === b > 0 ? 1 : -1, false, rm));
      }
      return;
    }
    this.putOut(rd, exact.div(false, this.sBits(rs1), -1, this.sBits(rs2), -1, rm));
  }

  private sqrtS(rd: number, rs1: number, rm: number): void {
    const a = this.sVal(rs1);
    const r = Math.fround(Math.sqrt(a));
    if (r >= TWO_M125 && r < TWO_127) {
      const t = r * r; // exact
      if (t === a) this.putS(rd, r);
      else {
        this.fflags |= NX;
        this.putS(rd, rm === RNE ? r : directed32(r, a > t ? 1 : -1, false, rm));
      }
      return;
    }
    this.putOut(rd, exact.sqrt(false, this.sBits(rs1), -1, rm));
  }

  private fmaS(
    rd: number,
    rs1: number,
    rs2: number,
    rs3: number,
    negP: boolean,
    negC: boolean,
    rm: number,
  ): void {
    const p = this.sVal(rs1) * this.sVal(rs2); // exact in double
    const pp = negP ? -p : p;
    const c = negC ? -this.sVal(rs3) : this.sVal(rs3);
    const s = pp + c;
    const bb = s - pp;
    const err = pp - (s - bb) + (c - bb);
    if (this.finishS(rd, s, err, rm)) return;
    this.putOut(
      rd,
      exact.fma(false, this.sBits(rs1), -1, this.sBits(rs2), -1, this.sBits(rs3), -1, negP, negC, rm),
    );
  }

  private sgnjS(rd: number, rs1: number, rs2: number, mode: number): void {
    const a = this.sBits(rs1);
    const b = this.sBits(rs2);
    const sign = mode === 0 ? b : mode === 1 ? ~b : a ^ b;
    this.w[2 * rd] = (a & 0x7fffffff) | (sign & 0x80000000);
    this.w[2 * rd + 1] = -1;
  }

  private minMaxS(rd: number, rs1: number, rs2: number, max: boolean): void {
    const a = this.sBits(rs1);
    const b = this.sBits(rs2);
    const an = isNaN32(a);
    const bn = isNaN32(b);
    let r: number;
    if (an || bn) {
      if (isSNaN32(a) || isSNaN32(b)) this.fflags |= NV;
      r = an && bn ? CANON_NAN_S : an ? b : a;
    } else {
      const x = this.f32[2 * rs1]!;
      const y = this.f32[2 * rs2]!;
      if (x === y)
        r = max ? (a < 0 ? b : a) : a < 0 ? a : b; // ±0: −0 < +0
      else r = x < y !== max ? a : b;
    }
    this.w[2 * rd] = r;
    this.w[2 * rd + 1] = -1;
  }

  private cmpS(rd: number, rs1: number, rs2: number, f3: number, xlo: Int32Array, xhi: Int32Array): void {
    const a = this.sBits(rs1);
    const b = this.sBits(rs2);
    let r = 0;
    if (isNaN32(a) || isNaN32(b)) {
      // feq is quiet (NV only for signaling NaNs); flt and fle signal on any NaN.
      if (f3 !== 2 || isSNaN32(a) || isSNaN32(b)) this.fflags |= NV;
    } else {
      const x = this.f32[2 * rs1]!;
      const y = this.f32[2 * rs2]!;
      r = (f3 === 2 ? x === y : f3 === 1 ? x < y : x <= y) ? 1 : 0;
    }
    if (rd !== 0) {
      xlo[rd] = r;
      xhi[rd] = 0;
    }
  }

  private cvtSD(rd: number, rs1: number, rm: number): void {
    if (this.finishS(rd, this.f64[rs1]!, 0, rm)) return;
    this.putOut(rd, exact.cvt(false, true, this.w[2 * rs1]!, this.w[2 * rs1 + 1]!, rm));
  }

  private fromIntS(rd: number, kind: number, lo: number, hi: number, rm: number): void {
    let s: number;
    let err = 0;
    if (kind === K_W) s = lo;
    else if (kind === K_WU) s = lo >>> 0;
    else {
      // x = h + l exactly; s = RN(x), err = x − s (TwoSum)
      const h = (kind === K_L ? hi : hi >>> 0) * TWO_32;
      const l = lo >>> 0;
      s = h + l;
      const bb = s - h;
      err = h - (s - bb) + (l - bb);
    }
    if (s === 0) this.putS(rd, 0);
    else if (!this.finishS(rd, s, err, rm)) {
      // Unreachable: a nonzero integer is in [1, 2^64], well inside finishS's range.
      throw new Error(`fcvt.s.*: internal error converting ${s}`);
    }
  }

  // ------------------------------------------------------------------ double precision

  private addD(rd: number, rs1: number, rs2: number, sub: boolean, rm: number): void {
    const f = this.f64;
    const a = f[rs1]!;
    const b = sub ? -f[rs2]! : f[rs2]!;
    let s = a + b;
    const as = Math.abs(s);
    if (as >= TWO_M1020 && as < TWO_1023) {
      const bb = s - a;
      const err = a - (s - bb) + (b - bb);
      if (err !== 0) {
        this.fflags |= NX;
        if (rm !== RNE) s = directed64(s, err > 0 ? 1 : -1, rm === RMM && isHalf64(s, err), rm);
      }
      f[rd] = s;
      return;
    }
    if (s === 0) {
      // A double sum that rounds to zero is exactly zero (sums are multiples of 2^-1074):
      // +0 unless both addends are −0, and −0 for mixed signs in RDN.
      f[rd] = rm === RDN ? -(-a - b) : s;
      return;
    }
    const w = this.w;
    this.putOut(rd, exact.add(true, w[2 * rs1]!, w[2 * rs1 + 1]!, w[2 * rs2]!, w[2 * rs2 + 1]!, sub, rm));
  }

  private mulD(rd: number, rs1: number, rs2: number, rm: number): void {
    const f = this.f64;
    const a = f[rs1]!;
    const b = f[rs2]!;
    let p = a * b;
    const ap = Math.abs(p);
    const aa = Math.abs(a);
    const ab = Math.abs(b);
    if (
      ap >= TWO_M968 &&
      ap < TWO_1023 &&
      aa >= TWO_M1022 &&
      aa < TWO_996 &&
      ab >= TWO_M1022 &&
      ab < TWO_996
    ) {
      const err = twoProdErr(a, b, p);
      if (err !== 0) {
        this.fflags |= NX;
        if (rm !== RNE) p = directed64(p, err > 0 ? 1 : -1, rm === RMM && isHalf64(p, err), rm);
      }
      f[rd] = p;
      return;
    }
    const w = this.w;
    this.putOut(rd, exact.mul(true, w[2 * rs1]!, w[2 * rs1 + 1]!, w[2 * rs2]!, w[2 * rs2 + 1]!, rm));
  }

  private divD(rd: number, rs1: number, rs2: number, rm: number): void {
    const f = this.f64;
    const a = f[rs1]!;
    const b = f[rs2]!;
    let q = a / b;
    const aq = Math.abs(q);
    const aa = Math.abs(a);
    const ab = Math.abs(b);
    if (
      aq >= TWO_M1020 &&
      aq < TWO_996 &&
      ab >= TWO_M1022 &&
      ab < TWO_996 &&
      aa >= TWO_M966 &&
      aa < TWO_1022
    ) {
      const p = q * b;
      const e = twoProdErr(q, b, p);
      if (p !== a || e !== 0) {
        this.fflags |= NX;
        if (rm !== RNE) q = directed64(q, a - p - e > 0 === b > 0 ? 1 : -1, false, rm);
      }
      f[rd] = q;
      return;
    }
    const w = this.w;
    this.putOut(rd, exact.div(true, w[2 * rs1]!, w[2 * rs1 + 1]!, w[2 * rs2]!, w[2 * rs2 + 1]!, rm));
  }

  private sqrtD(rd: number, rs1: number, rm: number): void {
    const f = this.f64;
    const a = f[rs1]!;
    if (a >= TWO_M966 && a < TWO_1022) {
      let s = Math.sqrt(a);
      const p = s * s;
      const e = twoProdErr(s, s, p);
      if (p !== a || e !== 0) {
        this.fflags |= NX;
        if (rm !== RNE) s = directed64(s, a - p - e > 0 ? 1 : -1, false, rm);
      }
      f[rd] = s;
      return;
    }
    this.putOut(rd, exact.sqrt(true, this.w[2 * rs1]!, this.w[2 * rs1 + 1]!, rm));
  }

  private fmaD(
    rd: number,
    rs1: number,
    rs2: number,
    rs3: number,
    negP: boolean,
    negC: boolean,
    rm: number,
  ): void {
    const f = this.f64;
    const a = negP ? -f[rs1]! : f[rs1]!;
    const b = f[rs2]!;
    const c = negC ? -f[rs3]! : f[rs3]!;
    const ph = a * b;
    const ap = Math.abs(ph);
    const aa = Math.abs(a);
    const ab = Math.abs(b);
    if (
      ap >= TWO_M968 &&
      ap < TWO_1022 &&
      aa >= TWO_M1022 &&
      aa < TWO_996 &&
      ab >= TWO_M1022 &&
      ab < TWO_996 &&
      Math.abs(c) <= MAX_D
    ) {
      const pl = twoProdErr(a, b, ph);
      const sh = ph + c; // sh + sl = ph + c
      let t = sh - ph;
      const sl = ph - (sh - t) + (c - t);
      const th = sl + pl; // th + tl = sl + pl
      t = th - sl;
      const tl = sl - (th - t) + (pl - t);
      let r = sh + th; // r + r2 = sh + th
      t = r - sh;
      const r2 = sh - (r - t) + (th - t);
      const ar = Math.abs(r);
      if (ar >= TWO_M1020 && ar < TWO_1023) {
        // x = r + r2 + tl exactly (see the file comment for why this rounds like r + r2).
        if (tl === 0) {
          if (r2 !== 0) {
            this.fflags |= NX;
            if (rm !== RNE) r = directed64(r, r2 > 0 ? 1 : -1, rm === RMM && isHalf64(r, r2), rm);
          }
        } else {
          this.fflags |= NX;
          let sgn: number;
          if (r2 === 0) sgn = tl > 0 ? 1 : -1;
          else {
            sgn = r2 > 0 ? 1 : -1;
            // sh + th is a midpoint: tl decides, and beyond it the neighbour is nearest.
            if (tl > 0 === r2 > 0 && isHalf64(r, r2)) {
              r += 2 * r2;
              sgn = -sgn;
            }
          }
          if (rm !== RNE) r = directed64(r, sgn, false, rm);
        }
        f[rd] = r;
        return;
      }
    }
    const ac = Math.abs(c);
    if (aa <= MAX_D && ab <= MAX_D && ac <= MAX_D) {
      if (ph === 0 && (a === 0 || b === 0)) {
        // Exact zero product: the result is c, or a signed zero (−0 in RDN unless both +0).
        f[rd] = c !== 0 ? c : rm === RDN ? -(-ph - c) : ph + c;
        return;
      }
      if (ap < TWO_M968 && ac >= TWO_M900 && ac < TWO_1022 && a !== 0 && b !== 0) {
        // |a·b| < 2^-967 is far below a quarter ulp of c: x rounds like c nudged towards
        // the sign of the product (never a tie).
        this.fflags |= NX;
        f[rd] = rm === RNE ? c : directed64(c, a > 0 === b > 0 ? 1 : -1, false, rm);
        return;
      }
    }
    const w = this.w;
    this.putOut(
      rd,
      exact.fma(
        true,
        w[2 * rs1]!,
        w[2 * rs1 + 1]!,
        w[2 * rs2]!,
        w[2 * rs2 + 1]!,
        w[2 * rs3]!,
        w[2 * rs3 + 1]!,
        negP,
        negC,
        rm,
      ),
    );
  }

  private sgnjD(rd: number, rs1: number, rs2: number, mode: number): void {
    const w = this.w;
    const lo = w[2 * rs1]!;
    const ahi = w[2 * rs1 + 1]!;
    const bhi = w[2 * rs2 + 1]!;
    const sign = mode === 0 ? bhi : mode === 1 ? ~bhi : ahi ^ bhi;
    w[2 * rd] = lo;
    w[2 * rd + 1] = (ahi & 0x7fffffff) | (sign & 0x80000000);
  }

  private minMaxD(rd: number, rs1: number, rs2: number, max: boolean): void {
    const w = this.w;
    const alo = w[2 * rs1]!;
    const ahi = w[2 * rs1 + 1]!;
    const blo = w[2 * rs2]!;
    const bhi = w[2 * rs2 + 1]!;
    const an = isNaN64(alo, ahi);
    const bn = isNaN64(blo, bhi);
    let takeA: boolean;
    if (an || bn) {
      if (isSNaN64(alo, ahi) || isSNaN64(blo, bhi)) this.fflags |= NV;
      if (an && bn) {
        w[2 * rd] = 0;
        w[2 * rd + 1] = CANON_NAN_D_HI;
        return;
      }
      takeA = bn;
    } else {
      const x = this.f64[rs1]!;
      const y = this.f64[rs2]!;
      if (x === y)
        takeA = max ? ahi >= 0 : ahi < 0; // ±0: −0 < +0
      else takeA = x < y !== max;
    }
    w[2 * rd] = takeA ? alo : blo;
    w[2 * rd + 1] = takeA ? ahi : bhi;
  }

  private cmpD(rd: number, rs1: number, rs2: number, f3: number, xlo: Int32Array, xhi: Int32Array): void {
    const w = this.w;
    const alo = w[2 * rs1]!;
    const ahi = w[2 * rs1 + 1]!;
    const blo = w[2 * rs2]!;
    const bhi = w[2 * rs2 + 1]!;
    let r = 0;
    if (isNaN64(alo, ahi) || isNaN64(blo, bhi)) {
      if (f3 !== 2 || isSNaN64(alo, ahi) || isSNaN64(blo, bhi)) this.fflags |= NV;
    } else {
      const x = this.f64[rs1]!;
      const y = this.f64[rs2]!;
      r = (f3 === 2 ? x === y : f3 === 1 ? x < y : x <= y) ? 1 : 0;
    }
    if (rd !== 0) {
      xlo[rd] = r;
      xhi[rd] = 0;
    }
  }

  private cvtDS(rd: number, rs1: number): void {
    const a = this.sVal(rs1);
    if (!Number.isNaN(a))
      this.f64[rd] = a; // exact
    else this.putOut(rd, exact.cvt(true, false, this.sBits(rs1), -1, RNE));
  }

  private fromIntD(rd: number, kind: number, lo: number, hi: number, rm: number): void {
    if (kind === K_W) {
      this.f64[rd] = lo;
      return;
    }
    if (kind === K_WU) {
      this.f64[rd] = lo >>> 0;
      return;
    }
    const h = (kind === K_L ? hi : hi >>> 0) * TWO_32;
    const l = lo >>> 0;
    let s = h + l; // s + err = x (TwoSum); |s| ≤ 2^64
    const bb = s - h;
    const err = h - (s - bb) + (l - bb);
    if (err !== 0) {
      this.fflags |= NX;
      if (rm !== RNE) s = directed64(s, err > 0 ? 1 : -1, rm === RMM && isHalf64(s, err), rm);
    }
    this.f64[rd] = s;
  }

  /**
   * fcvt.{w,wu,l,lu}.{s,d}: round v (a double holding the operand; NaN for any NaN) to an
   * integer in mode rm and saturate: NaN and values above the range give the maximum,
   * values below give the minimum, both raising NV (and not NX); otherwise NX if inexact.
   * 32-bit results are sign-extended to 64 bits (spec, "Floating-Point Conversion").
   */
  private toInt(v: number, kind: number, rm: number, rd: number, xlo: Int32Array, xhi: Int32Array): void {
    let r: number;
    let inexact = false;
    if (Number.isNaN(v) || Math.abs(v) >= TWO_53) r = v;
    else {
      r = Math.trunc(v);
      const frac = v - r; // exact
      if (frac !== 0) {
        inexact = true;
        switch (rm) {
          case RNE: {
            const af = Math.abs(frac);
            if (af > 0.5 || (af === 0.5 && r % 2 !== 0)) r += v > 0 ? 1 : -1;
            break;
          }
          case RTZ:
            break;
          case RDN:
            if (v < 0) r -= 1;
            break;
          case RUP:
            if (v > 0) r += 1;
            break;
          default:
            if (Math.abs(frac) >= 0.5) r += v > 0 ? 1 : -1;
        }
      }
    }
    let lo: number;
    let hi: number;
    // Saturation: hi/lo words of the minimum and maximum per kind (W, WU, L, LU).
    const isNan = Number.isNaN(r);
    if (kind === K_W) {
      if (isNan || r > 2147483647) {
        lo = 0x7fffffff;
        hi = 0;
      } else if (r < -2147483648) {
        lo = -2147483648;
        hi = -1;
      } else {
        lo = r | 0;
        hi = lo >> 31;
        if (inexact) this.fflags |= NX;
        this.setX(rd, lo, hi, xlo, xhi);
        return;
      }
    } else if (kind === K_WU) {
      if (isNan || r > 4294967295) {
        lo = -1;
        hi = -1;
      } else if (r < 0) {
        lo = 0;
        hi = 0;
      } else {
        lo = r | 0;
        hi = lo >> 31;
        if (inexact) this.fflags |= NX;
        this.setX(rd, lo, hi, xlo, xhi);
        return;
      }
    } else if (kind === K_L) {
      if (isNan || r >= TWO_63) {
        lo = -1;
        hi = 0x7fffffff;
      } else if (r < -TWO_63) {
        lo = 0;
        hi = -2147483648;
      } else {
        const h = Math.floor(r / TWO_32);
        lo = (r - h * TWO_32) | 0;
        hi = h | 0;
        if (inexact) this.fflags |= NX;
        this.setX(rd, lo, hi, xlo, xhi);
        return;
      }
    } else if (isNan || r >= TWO_64) {
      lo = -1;
      hi = -1;
    } else if (r < 0) {
      lo = 0;
      hi = 0;
    } else {
      const h = Math.floor(r / TWO_32);
      lo = (r - h * TWO_32) | 0;
      hi = h | 0;
      if (inexact) this.fflags |= NX;
      this.setX(rd, lo, hi, xlo, xhi);
      return;
    }
    this.fflags |= NV;
    this.setX(rd, lo, hi, xlo, xhi);
  }

  private setX(rd: number, lo: number, hi: number, xlo: Int32Array, xhi: Int32Array): void {
    if (rd !== 0) {
      xlo[rd] = lo;
      xhi[rd] = hi;
    }
  }
}
