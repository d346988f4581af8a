/**
 * The FPU's exact path: IEEE 754 binary32/binary64 arithmetic on exact BigInt values with
 * one correct rounding in any RISC-V rounding mode, and the accrued-exception rules of the
 * RISC-V F/D extensions. It is the reference the fast native-double paths in fpu.ts fall
 * back to for everything they cannot prove exact: directed rounding near the subnormal or
 * overflow ranges, underflow, special operands, and so on. It allocates (BigInts), so it is
 * kept off the common path.
 *
 * Operands come in as bit patterns: (lo, hi) words of a double, or the 32-bit pattern of a
 * single in `lo` (already NaN-unboxed by the caller). Results go to `out` (a single's `hi`
 * is -1, its NaN-box), and every operation returns the exception flags it raised.
 *
 * Rules implemented (RISC-V unprivileged spec, F extension):
 * - every NaN result is the canonical NaN; a signaling NaN operand raises NV;
 * - tininess is detected after rounding ("Subnormal Arithmetic"): UF is raised when the
 *   result rounded to the target precision with an unbounded exponent is below the
 *   smallest normal, and the result is inexact;
 * - an exact zero sum has sign + except in RDN (IEEE 754-2008 §6.3); fma(∞, 0, c) raises NV
 *   even when c is a quiet NaN.
 */
import { CANON_NAN_D_HI, CANON_NAN_S, DZ, NV, NX, OF, RDN, RMM, RNE, RTZ, RUP, UF } from "./bits.ts";

/** Result of the last operation: a double's words, or a single in lo (hi = -1). */
export const out = { lo: 0, hi: 0 };

interface Fmt {
  /** precision in bits, hidden bit included */
  readonly p: number;
  readonly emin: number;
  readonly emax: number;
  readonly bias: number;
}
const FMT_S: Fmt = { p: 24, emin: -126, emax: 127, bias: 127 };
const FMT_D: Fmt = { p: 53, emin: -1022, emax: 1023, bias: 1023 };

const ZERO = 0;
const FINITE = 1;
const INF = 2;
const QNAN = 3;
const SNAN = 4;

/** An unpacked operand: value = (-1)^sign * sig * 2^exp for FINITE (sig < 2^53). */
class Unpacked {
  cls = ZERO;
  sign = 0;
  sig = 0;
  exp = 0;
}
const UA = new Unpacked();
const UB = new Unpacked();
const UC = new Unpacked();

function unpack(u: Unpacked, dbl: boolean, lo: number, hi: number): Unpacked {
  if (dbl) {
    u.sign = hi >>> 31;
    const e = (hi >>> 20) & 0x7ff;
    const fhi = hi & 0xfffff;
    const frac = fhi * 4294967296 + (lo >>> 0);
    if (e === 0x7ff) u.cls = frac === 0 ? INF : fhi & 0x80000 ? QNAN : SNAN;
    else if (e === 0) {
      u.cls = frac === 0 ? ZERO : FINITE;
      u.sig = frac;
      u.exp = -1074;
    } else {
      u.cls = FINITE;
      u.sig = frac + 4503599627370496; // + 2^52
      u.exp = e - 1075;
    }
  } else {
    u.sign = lo >>> 31;
    const e = (lo >>> 23) & 0xff;
    const frac = lo & 0x7fffff;
    if (e === 0xff) u.cls = frac === 0 ? INF : frac & 0x400000 ? QNAN : SNAN;
    else if (e === 0) {
      u.cls = frac === 0 ? ZERO : FINITE;
      u.sig = frac;
      u.exp = -149;
    } else {
      u.cls = FINITE;
      u.sig = frac + 0x800000;
      u.exp = e - 150;
    }
  }
  return u;
}

function isNaNCls(c: number): boolean {
  return c >= QNAN;
}

function packNaN(dbl: boolean): void {
  if (dbl) {
    out.lo = 0;
    out.hi = CANON_NAN_D_HI;
  } else {
    out.lo = CANON_NAN_S;
    out.hi = -1;
  }
}
function packInf(dbl: boolean, sign: number): void {
  if (dbl) {
    out.lo = 0;
    out.hi = (sign << 31) | 0x7ff00000;
  } else {
    out.lo = (sign << 31) | 0x7f800000;
    out.hi = -1;
  }
}
function packZero(dbl: boolean, sign: number): void {
  if (dbl) {
    out.lo = 0;
    out.hi = sign << 31;
  } else {
    out.lo = sign << 31;
    out.hi = -1;
  }
}
function packMax(dbl: boolean, sign: number): void {
  if (dbl) {
    out.lo = -1;
    out.hi = (sign << 31) | 0x7fefffff;
  } else {
    out.lo = (sign << 31) | 0x7f7fffff;
    out.hi = -1;
  }
}
/** Result NaN; NV if any operand class is a signaling NaN. */
function nanOf(dbl: boolean, c1: number, c2: number, c3: number): number {
  packNaN(dbl);
  return c1 === SNAN || c2 === SNAN || c3 === SNAN ? NV : 0;
}

/** Number of bits of m > 0. */
function bitLen(m: bigint): number {
  if (m < 9007199254740992n) {
    const x = Number(m);
    const hi = Math.floor(x / 4294967296);
    return hi ? 64 - Math.clz32(hi) : 32 - Math.clz32(x);
  }
  const s = m.toString(16);
  return (s.length - 1) * 4 + (32 - Math.clz32(Number.parseInt(s[0]!, 16)));
}

/** m >> k (k >= 1) rounded in mode rm for a value of sign `sign`. */
function roundShift(m: bigint, k: number, sign: number, rm: number): bigint {
  const K = BigInt(k);
  const kept = m >> K;
  const rem = m - (kept << K);
  if (rem === 0n) return kept;
  switch (rm) {
    case RNE: {
      const half = 1n << (K - 1n);
      return rem > half || (rem === half && (kept & 1n) === 1n) ? kept + 1n : kept;
    }
    case RTZ:
      return kept;
    case RDN:
      return sign ? kept + 1n : kept;
    case RUP:
      return sign ? kept : kept + 1n;
    default:
      return rem >= 1n << (K - 1n) ? kept + 1n : kept;
  }
}

/**
 * Round (-1)^sign * m * 2^e (m > 0) to the format in mode rm, write it to `out`, and return
 * the flags (NX, UF with tininess after rounding, OF).
 */
export function roundPack(dbl: boolean, sign: number, m: bigint, e: number, rm: number): number {
  const f = dbl ? FMT_D : FMT_S;
  const p = f.p;
  const n = bitLen(m);
  const top = e + n - 1; // exponent of the leading bit
  // Tininess after rounding: round to p bits with an unbounded exponent range.
  let tiny = false;
  if (top < f.emin) {
    tiny = true;
    if (top === f.emin - 1 && n > p && roundShift(m, n - p, sign, rm) >> BigInt(p) !== 0n) tiny = false;
  }
  // The quantum (weight of the last kept bit) is fixed by the precision or, for
  // subnormal results, by the minimum exponent.
  let q = Math.max(top - p + 1, f.emin - p + 1);
  const shift = q - e;
  let r: bigint;
  let inexact = false;
  if (shift <= 0) r = m << BigInt(-shift);
  else {
    inexact = (m & ((1n << BigInt(shift)) - 1n)) !== 0n;
    r = roundShift(m, shift, sign, rm);
  }
  if (r === 1n << BigInt(p)) {
    r >>= 1n;
    q++;
  }
  let flags = 0;
  if (inexact) flags = tiny ? NX | UF : NX;
  if (r === 0n) {
    packZero(dbl, sign);
    return flags;
  }
  if (q + p - 1 > f.emax) {
    // Overflow: the rounded (unbounded) value exceeds the largest finite number.
    if (rm === RNE || rm === RMM || (rm === RDN && sign) || (rm === RUP && !sign)) packInf(dbl, sign);
    else packMax(dbl, sign);
    return flags | OF | NX;
  }
  const rn = Number(r); // < 2^p: exact
  const hidden = 2 ** (p - 1);
  const expField = rn >= hidden ? q + p - 1 + f.bias : 0;
  const frac = expField ? rn - hidden : rn;
  if (dbl) {
    const fh = Math.floor(frac / 4294967296);
    out.hi = (sign << 31) | (expField << 20) | fh;
    out.lo = (frac - fh * 4294967296) | 0;
  } else {
    out.lo = (sign << 31) | (expField << 23) | frac;
    out.hi = -1;
  }
  return flags;
}

/**
 * Round the exact sum (-1)^s1 m1 2^e1 + (-1)^s2 m2 2^e2 (BigInt magnitudes, either may be 0).
 * An exact zero takes the common sign if both terms have it, else + (− in RDN).
 */
function roundSum(
  dbl: boolean,
  s1: number,
  m1: bigint,
  e1: number,
  s2: number,
  m2: bigint,
  e2: number,
  rm: number,
): number {
  let e: number;
  if (m1 === 0n) e = e2;
  else if (m2 === 0n) e = e1;
  else e = Math.min(e1, e2);
  let t1 = m1 === 0n ? 0n : m1 << BigInt(e1 - e);
  let t2 = m2 === 0n ? 0n : m2 << BigInt(e2 - e);
  if (s1) t1 = -t1;
  if (s2) t2 = -t2;
  const sum = t1 + t2;
  if (sum === 0n) {
    packZero(dbl, s1 === s2 ? s1 : rm === RDN ? 1 : 0);
    return 0;
  }
  return sum < 0n ? roundPack(dbl, 1, -sum, e, rm) : roundPack(dbl, 0, sum, e, rm);
}

/** a + b, or a − b when `negB`. */
export function add(
  dbl: boolean,
  alo: number,
  ahi: number,
  blo: number,
  bhi: number,
  negB: boolean,
  rm: number,
): number {
  const a = unpack(UA, dbl, alo, ahi);
  const b = unpack(UB, dbl, blo, bhi);
  if (isNaNCls(a.cls) || isNaNCls(b.cls)) return nanOf(dbl, a.cls, b.cls, ZERO);
  const sb = negB ? b.sign ^ 1 : b.sign;
  if (a.cls === INF || b.cls === INF) {
    if (a.cls === INF && b.cls === INF && a.sign !== sb) {
      packNaN(dbl);
      return NV;
    }
    packInf(dbl, a.cls === INF ? a.sign : sb);
    return 0;
  }
  return roundSum(dbl, a.sign, BigInt(a.sig), a.exp, sb, BigInt(b.sig), b.exp, rm);
}

export function mul(dbl: boolean, alo: number, ahi: number, blo: number, bhi: number, rm: number): number {
  const a = unpack(UA, dbl, alo, ahi);
  const b = unpack(UB, dbl, blo, bhi);
  if (isNaNCls(a.cls) || isNaNCls(b.cls)) return nanOf(dbl, a.cls, b.cls, ZERO);
  const s = a.sign ^ b.sign;
  if (a.cls === INF || b.cls === INF) {
    if (a.cls === ZERO || b.cls === ZERO) {
      packNaN(dbl);
      return NV;
    }
    packInf(dbl, s);
    return 0;
  }
  if (a.cls === ZERO || b.cls === ZERO) {
    packZero(dbl, s);
    return 0;
  }
  return roundPack(dbl, s, BigInt(a.sig) * BigInt(b.sig), a.exp + b.exp, rm);
}

export function div(dbl: boolean, alo: number, ahi: number, blo: number, bhi: number, rm: number): number {
  const a = unpack(UA, dbl, alo, ahi);
  const b = unpack(UB, dbl, blo, bhi);
  if (isNaNCls(a.cls) || isNaNCls(b.cls)) return nanOf(dbl, a.cls, b.cls, ZERO);
  const s = a.sign ^ b.sign;
  if (a.cls === INF) {
    if (b.cls === INF) {
      packNaN(dbl);
      return NV;
    }
    packInf(dbl, s);
    return 0;
  }
  if (b.cls === INF) {
    packZero(dbl, s);
    return 0;
  }
  if (b.cls === ZERO) {
    if (a.cls === ZERO) {
      packNaN(dbl);
      return NV;
    }
    packInf(dbl, s);
    return DZ;
  }
  if (a.cls === ZERO) {
    packZero(dbl, s);
    return 0;
  }
  // Quotient with at least p+2 bits, the remainder folded into a sticky bit.
  const p = dbl ? 53 : 24;
  const ma = BigInt(a.sig);
  const mb = BigInt(b.sig);
  const k = Math.max(0, p + 3 + bitLen(mb) - bitLen(ma));
  const num = ma << BigInt(k);
  const q = num / mb;
  const sticky = q * mb !== num ? 1n : 0n;
  return roundPack(dbl, s, (q << 1n) | sticky, a.exp - b.exp - k - 1, rm);
}

/** floor(sqrt(n)) for n >= 0. */
function isqrt(n: bigint): bigint {
  if (n < 2n) return n;
  let x = 1n << BigInt((bitLen(n) >> 1) + 1);
  for (;;) {
    const y = (x + n / x) >> 1n;
    if (y >= x) return x;
    x = y;
  }
}

export function sqrt(dbl: boolean, alo: number, ahi: number, rm: number): number {
  const a = unpack(UA, dbl, alo, ahi);
  if (isNaNCls(a.cls)) return nanOf(dbl, a.cls, ZERO, ZERO);
  if (a.cls === ZERO) {
    packZero(dbl, a.sign);
    return 0;
  }
  if (a.sign) {
    packNaN(dbl);
    return NV;
  }
  if (a.cls === INF) {
    packInf(dbl, 0);
    return 0;
  }
  const p = dbl ? 53 : 24;
  const m = BigInt(a.sig);
  let k = Math.max(0, 2 * (p + 3) - bitLen(m));
  if ((a.exp - k) & 1) k++;
  const n = m << BigInt(k);
  const r = isqrt(n);
  const sticky = r * r !== n ? 1n : 0n;
  return roundPack(dbl, 0, (r << 1n) | sticky, (a.exp - k) / 2 - 1, rm);
}

/**
 * Fused multiply-add: (±a·b) ± c with a single rounding. `negProd` negates the product
 * (FNMSUB, FNMADD), `negC` the addend (FMSUB, FNMADD).
 */
export function fma(
  dbl: boolean,
  alo: number,
  ahi: number,
  blo: number,
  bhi: number,
  clo: number,
  chi: number,
  negProd: boolean,
  negC: boolean,
  rm: number,
): number {
  const a = unpack(UA, dbl, alo, ahi);
  const b = unpack(UB, dbl, blo, bhi);
  const c = unpack(UC, dbl, clo, chi);
  const infZero = (a.cls === INF && b.cls === ZERO) || (a.cls === ZERO && b.cls === INF);
  if (isNaNCls(a.cls) || isNaNCls(b.cls) || isNaNCls(c.cls)) {
    return nanOf(dbl, a.cls, b.cls, c.cls) | (infZero ? NV : 0);
  }
  if (infZero) {
    packNaN(dbl);
    return NV;
  }
  const sp = a.sign ^ b.sign ^ (negProd ? 1 : 0);
  const sc = c.sign ^ (negC ? 1 : 0);
  if (a.cls === INF || b.cls === INF) {
    if (c.cls === INF && sc !== sp) {
      packNaN(dbl);
      return NV;
    }
    packInf(dbl, sp);
    return 0;
  }
  if (c.cls === INF) {
    packInf(dbl, sc);
    return 0;
  }
  const mp = a.cls === ZERO || b.cls === ZERO ? 0n : BigInt(a.sig) * BigInt(b.sig);
  return roundSum(dbl, sp, mp, a.exp + b.exp, sc, BigInt(c.sig), c.exp, rm);
}

/** Convert between formats (fcvt.s.d, fcvt.d.s): source in `fromDbl`, result in `toDbl`. */
export function cvt(toDbl: boolean, fromDbl: boolean, alo: number, ahi: number, rm: number): number {
  const a = unpack(UA, fromDbl, alo, ahi);
  if (isNaNCls(a.cls)) return nanOf(toDbl, a.cls, ZERO, ZERO);
  if (a.cls === INF) {
    packInf(toDbl, a.sign);
    return 0;
  }
  if (a.cls === ZERO) {
    packZero(toDbl, a.sign);
    return 0;
  }
  return roundPack(toDbl, a.sign, BigInt(a.sig), a.exp, rm);
}
