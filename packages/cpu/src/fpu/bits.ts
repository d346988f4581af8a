/**
 * Bit-level helpers shared by the FPU's fast (native double) and exact (BigInt) paths:
 * constants of the RISC-V F/D extensions, a scratch buffer for moving values between
 * doubles, singles and their bit patterns, and one-ulp steps.
 */

/** fflags bits (RISC-V unprivileged spec, "Floating-Point Control and Status Register"). */
export const NV = 0x10; // invalid operation
export const DZ = 0x08; // divide by zero
export const OF = 0x04; // overflow
export const UF = 0x02; // underflow
export const NX = 0x01; // inexact

/** Rounding modes (the rm field / frm encodings). 7 = DYN in an instruction. */
export const RNE = 0;
export const RTZ = 1;
export const RDN = 2;
export const RUP = 3;
export const RMM = 4;

/** Canonical NaNs (spec, "NaN Generation and Propagation"). */
export const CANON_NAN_S = 0x7fc00000;
export const CANON_NAN_D_HI = 0x7ff80000;

// The register file and the scratch views alias one buffer through Int32Array and
// Float64Array/Float32Array, which only matches the RISC-V (little-endian) word order on a
// little-endian host. Every JavaScript engine in use is little-endian; refuse otherwise.
if (new Uint8Array(new Uint32Array([1]).buffer)[0] !== 1) {
  throw new Error("@visor/cpu fpu: a little-endian host is required");
}

const scratch = new ArrayBuffer(8);
/** Scratch views over one 8-byte buffer (lo word at [0], hi word at [1]). */
export const sF64 = new Float64Array(scratch);
export const sF32 = new Float32Array(scratch);
export const sI32 = new Int32Array(scratch);

/** The double one ulp further from zero (`up`) or closer to zero than finite nonzero x. */
export function stepMag64(x: number, up: boolean): number {
  sF64[0] = x;
  let lo = sI32[0]!;
  let hi = sI32[1]!;
  if (up) {
    lo = (lo + 1) | 0;
    if (lo === 0) hi = (hi + 1) | 0;
  } else {
    if (lo === 0) hi = (hi - 1) | 0;
    lo = (lo - 1) | 0;
  }
  sI32[0] = lo;
  sI32[1] = hi;
  return sF64[0]!;
}

/** The single one ulp further from zero (`up`) or closer to zero than finite nonzero single x. */
export function stepMag32(x: number, up: boolean): number {
  sF32[0] = x;
  sI32[0] = up ? sI32[0]! + 1 : sI32[0]! - 1;
  return sF32[0]!;
}

/**
 * Apply a rounding mode to a round-to-nearest-even result.
 * `r` = RNE(x) (finite, nonzero, and far enough from the subnormal and overflow ranges that
 * a one-ulp step stays normal and finite), `sgn` = sign of (x − r), `tie` = x lies exactly
 * halfway between r and a neighbour (r is then the even one). Returns the result in `rm`.
 */
export function directed64(r: number, sgn: number, tie: boolean, rm: number): number {
  switch (rm) {
    case RTZ:
      return sgn !== 0 && sgn > 0 !== r > 0 ? stepMag64(r, false) : r;
    case RDN:
      return sgn < 0 ? stepMag64(r, r < 0) : r;
    case RUP:
      return sgn > 0 ? stepMag64(r, r > 0) : r;
    case RMM:
      return tie && sgn > 0 === r > 0 ? stepMag64(r, true) : r;
    default:
      return r;
  }
}

/** `directed64` for singles (r a single-precision value held in a double). */
export function directed32(r: number, sgn: number, tie: boolean, rm: number): number {
  switch (rm) {
    case RTZ:
      return sgn !== 0 && sgn > 0 !== r > 0 ? stepMag32(r, false) : r;
    case RDN:
      return sgn < 0 ? stepMag32(r, r < 0) : r;
    case RUP:
      return sgn > 0 ? stepMag32(r, r > 0) : r;
    case RMM:
      return tie && sgn > 0 === r > 0 ? stepMag32(r, true) : r;
    default:
      return r;
  }
}

/** fclass result bits for a class/sign (spec table "Format of result of FCLASS"). */
export function fclassBits(
  sign: number,
  expAllOnes: boolean,
  expZero: boolean,
  fracZero: boolean,
  quiet: boolean,
): number {
  if (expAllOnes) {
    if (fracZero) return sign ? 1 << 0 : 1 << 7;
    return quiet ? 1 << 9 : 1 << 8;
  }
  if (expZero) {
    if (fracZero) return sign ? 1 << 3 : 1 << 4;
    return sign ? 1 << 2 : 1 << 5;
  }
  return sign ? 1 << 1 : 1 << 6;
}
