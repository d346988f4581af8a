/**
 * 64-bit integer helpers on (hi, lo) int32 pairs. Results go to the module-level
 * `rLo`/`rHi` so nothing is allocated on the hot path.
 */
export let rLo = 0;
export let rHi = 0;

/** Unsigned 32x32 → 64 product of a and b (taken as unsigned). */
function mulu32(a: number, b: number): void {
  const a0 = a & 0xffff;
  const a1 = a >>> 16;
  const b0 = b & 0xffff;
  const b1 = b >>> 16;
  const p00 = a0 * b0;
  const p01 = a0 * b1;
  const p10 = a1 * b0;
  const p11 = a1 * b1;
  // middle = p01 + p10 + (p00 >>> 16), up to ~2^33: fits a double exactly
  const mid = p01 + p10 + (p00 >>> 16);
  rLo = (mid << 16) | (p00 & 0xffff) | 0;
  rHi = (p11 + Math.floor(mid / 65536)) | 0;
}

/** Low 64 bits of a * b. */
export function mul64(aHi: number, aLo: number, bHi: number, bLo: number): void {
  mulu32(aLo, bLo);
  // each sum truncated on its own: optimized code then adds int32s without an overflow
  // check (one unchecked chain was speculated to stay int32 and deoptimized when it did not)
  rHi = (((rHi + Math.imul(aHi, bLo)) | 0) + Math.imul(aLo, bHi)) | 0;
}

function toBig(hi: number, lo: number): bigint {
  return (BigInt(hi) << 32n) | BigInt(lo >>> 0);
}
function toBigU(hi: number, lo: number): bigint {
  return (BigInt(hi >>> 0) << 32n) | BigInt(lo >>> 0);
}
function fromBig(v: bigint): void {
  rLo = Number(BigInt.asIntN(32, v));
  rHi = Number(BigInt.asIntN(32, v >> 32n));
}

/** High 64 bits of signed(a) * signed(b). */
export function mulh(aHi: number, aLo: number, bHi: number, bLo: number): void {
  fromBig((toBig(aHi, aLo) * toBig(bHi, bLo)) >> 64n);
}
/** High 64 bits of unsigned(a) * unsigned(b). */
export function mulhu(aHi: number, aLo: number, bHi: number, bLo: number): void {
  fromBig((toBigU(aHi, aLo) * toBigU(bHi, bLo)) >> 64n);
}
/** High 64 bits of signed(a) * unsigned(b). */
export function mulhsu(aHi: number, aLo: number, bHi: number, bLo: number): void {
  fromBig((toBig(aHi, aLo) * toBigU(bHi, bLo)) >> 64n);
}

const TWO32 = 4294967296;

/** True when the pair is a sign-extended value that fits a double exactly (|v| < 2^52). */
function small(hi: number, lo: number): boolean {
  return hi === (hi << 11) >> 11 && (hi | 0) === hi && (lo | 0) === lo;
}

/** Signed division with RISC-V semantics (÷0 → -1, overflow → dividend). */
export function div64(aHi: number, aLo: number, bHi: number, bLo: number): void {
  if (bHi === 0 && bLo === 0) {
    rLo = -1;
    rHi = -1;
    return;
  }
  if (small(aHi, aLo) && small(bHi, bLo)) {
    const q = Math.trunc((aHi * TWO32 + (aLo >>> 0)) / (bHi * TWO32 + (bLo >>> 0)));
    setNum(q);
    return;
  }
  if (aHi === (0x80000000 | 0) && aLo === 0 && bHi === -1 && bLo === -1) {
    rHi = aHi;
    rLo = aLo;
    return;
  }
  fromBig(toBig(aHi, aLo) / toBig(bHi, bLo));
}
export function divu64(aHi: number, aLo: number, bHi: number, bLo: number): void {
  if (bHi === 0 && bLo === 0) {
    rLo = -1;
    rHi = -1;
    return;
  }
  if (aHi >>> 0 < 0x100000 && bHi >>> 0 < 0x100000) {
    setNum(Math.floor(((aHi >>> 0) * TWO32 + (aLo >>> 0)) / ((bHi >>> 0) * TWO32 + (bLo >>> 0))));
    return;
  }
  fromBig(toBigU(aHi, aLo) / toBigU(bHi, bLo));
}
export function rem64(aHi: number, aLo: number, bHi: number, bLo: number): void {
  if (bHi === 0 && bLo === 0) {
    rLo = aLo;
    rHi = aHi;
    return;
  }
  if (small(aHi, aLo) && small(bHi, bLo)) {
    const a = aHi * TWO32 + (aLo >>> 0);
    const b = bHi * TWO32 + (bLo >>> 0);
    setNum(a % b);
    return;
  }
  if (aHi === (0x80000000 | 0) && aLo === 0 && bHi === -1 && bLo === -1) {
    rLo = 0;
    rHi = 0;
    return;
  }
  fromBig(toBig(aHi, aLo) % toBig(bHi, bLo));
}
export function remu64(aHi: number, aLo: number, bHi: number, bLo: number): void {
  if (bHi === 0 && bLo === 0) {
    rLo = aLo;
    rHi = aHi;
    return;
  }
  if (aHi >>> 0 < 0x100000 && bHi >>> 0 < 0x100000) {
    setNum(((aHi >>> 0) * TWO32 + (aLo >>> 0)) % ((bHi >>> 0) * TWO32 + (bLo >>> 0)));
    return;
  }
  fromBig(toBigU(aHi, aLo) % toBigU(bHi, bLo));
}

/** Store an exact integer-valued double (|v| < 2^53) as a pair. -0 becomes 0. */
function setNum(v: number): void {
  const lo = v % TWO32;
  rLo = lo | 0;
  rHi = ((v - lo) / TWO32) | 0;
  if (lo < 0) {
    // v negative with a nonzero low part: borrow
    rHi = Math.floor(v / TWO32) | 0;
  }
}

/** The pair as a BigInt (signed). For tools and tests, not the hot path. */
export function pairToBigInt(hi: number, lo: number): bigint {
  return toBig(hi, lo);
}
