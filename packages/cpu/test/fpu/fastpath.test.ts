/**
 * Property tests: whatever path Fpu.exec takes (native-double fast paths with error-free
 * transformations, or the exact BigInt path), the result and flags equal those of the
 * exact path called directly. The exact path itself is checked against hardware semantics
 * by vectors.test.ts; this test drives far more operand combinations through the fast
 * paths' corner cases (midpoints, cancellation, range limits) than the vector file holds.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import * as exact from "../../src/fpu/exact.ts";
import { Fpu } from "../../src/fpu/index.ts";
import { encode, OPS } from "./harness.ts";

interface Fmt {
  dbl: boolean;
  p: number; // precision
  ebits: number;
  bias: number;
}
const S: Fmt = { dbl: false, p: 24, ebits: 8, bias: 127 };
const D: Fmt = { dbl: true, p: 53, ebits: 11, bias: 1023 };

const emaxb = (f: Fmt): number => (1 << f.ebits) - 1;
const fracMask = (f: Fmt): bigint => (1n << BigInt(f.p - 1)) - 1n;

function pack(f: Fmt, sign: boolean, bexp: number, frac: bigint): bigint {
  const e = Math.min(Math.max(bexp, 0), emaxb(f));
  return (BigInt(sign) << BigInt(f.p - 1 + f.ebits)) | (BigInt(e) << BigInt(f.p - 1)) | (frac & fracMask(f));
}
const bexpOf = (f: Fmt, v: bigint): number => Number((v >> BigInt(f.p - 1)) & BigInt(emaxb(f)));

/** Fractions: random, with a random number of trailing zeros, or all ones. */
const fracArb = (f: Fmt) =>
  fc.oneof(
    fc.bigInt({ min: 0n, max: fracMask(f) }),
    fc
      .tuple(fc.bigInt({ min: 0n, max: fracMask(f) }), fc.integer({ min: 0, max: f.p - 1 }), fc.boolean())
      .map(([x, k, bit]) => ((x >> BigInt(k)) << BigInt(k)) | (bit && k > 0 ? 1n << BigInt(k - 1) : 0n)),
    fc.integer({ min: 0, max: 7 }).map((k) => fracMask(f) - BigInt(k)),
  );
/** Biased exponents: anywhere, near 1.0, at the bottom, at the top. */
const expArb = (f: Fmt) =>
  fc.oneof(
    fc.integer({ min: 0, max: emaxb(f) }),
    fc.integer({ min: f.bias - 40, max: f.bias + 40 }),
    fc.integer({ min: 0, max: 4 }),
    fc.integer({ min: emaxb(f) - 4, max: emaxb(f) }),
  );
const valArb = (f: Fmt) =>
  fc.tuple(fc.boolean(), expArb(f), fracArb(f)).map(([s, e, fr]) => pack(f, s, e, fr));
/** A value whose exponent is `base` + delta (delta drawn around the precision). */
const relArb = (f: Fmt, span: number) =>
  fc.tuple(fc.boolean(), fc.integer({ min: -span, max: span }), fracArb(f));

const rmArb = fc.integer({ min: 0, max: 4 });

function words(f: Fmt, v: bigint): [number, number] {
  if (!f.dbl) return [Number(BigInt.asIntN(32, v)), -1];
  return [Number(BigInt.asIntN(32, v)), Number(BigInt.asIntN(32, v >> 32n))];
}

/** Run `mn` on operand patterns via Fpu.exec; returns [lo, hi, flags]. */
function viaExec(mn: string, rm: number, ops: bigint[], f: Fmt): [number, number, number] {
  const fpu = new Fpu();
  const x = new Int32Array(33);
  for (let i = 0; i < ops.length; i++) {
    const [lo, hi] = words(f, ops[i]!);
    fpu.setF64Bits(i + 1, lo, hi);
  }
  if (!fpu.exec(encode(OPS[mn]!, rm, 4, 1, 2, 3), x, x)) throw new Error(`${mn} rejected`);
  return [fpu.w[8]!, fpu.w[9]!, fpu.fflags];
}

function viaExact(flags: number): [number, number, number] {
  return [exact.out.lo, exact.out.hi, flags];
}

const NUM_RUNS = 4000;

for (const f of [S, D]) {
  const sfx = f.dbl ? "d" : "s";
  describe(`fast paths agree with the exact path (.${sfx})`, () => {
    it(`fadd/fsub.${sfx}: near cancellation and half-ulp addends`, () => {
      fc.assert(
        fc.property(valArb(f), relArb(f, f.p + 3), fc.boolean(), rmArb, (a, [sb, de, fb], sub, rm) => {
          const b = pack(f, sb, bexpOf(f, a) + de, fb);
          const [alo, ahi] = words(f, a);
          const [blo, bhi] = words(f, b);
          const mn = `${sub ? "fsub" : "fadd"}.${sfx}`;
          expect(viaExec(mn, rm, [a, b], f)).toEqual(viaExact(exact.add(f.dbl, alo, ahi, blo, bhi, sub, rm)));
        }),
        { numRuns: NUM_RUNS },
      );
    });

    it(`fmul.${sfx}: products across the whole range`, () => {
      fc.assert(
        fc.property(valArb(f), valArb(f), rmArb, (a, b, rm) => {
          const [alo, ahi] = words(f, a);
          const [blo, bhi] = words(f, b);
          expect(viaExec(`fmul.${sfx}`, rm, [a, b], f)).toEqual(
            viaExact(exact.mul(f.dbl, alo, ahi, blo, bhi, rm)),
          );
        }),
        { numRuns: NUM_RUNS },
      );
    });

    it(`fdiv.${sfx} and fsqrt.${sfx}`, () => {
      fc.assert(
        fc.property(valArb(f), valArb(f), rmArb, (a, b, rm) => {
          const [alo, ahi] = words(f, a);
          const [blo, bhi] = words(f, b);
          expect(viaExec(`fdiv.${sfx}`, rm, [a, b], f)).toEqual(
            viaExact(exact.div(f.dbl, alo, ahi, blo, bhi, rm)),
          );
          expect(viaExec(`fsqrt.${sfx}`, rm, [a], f)).toEqual(viaExact(exact.sqrt(f.dbl, alo, ahi, rm)));
        }),
        { numRuns: NUM_RUNS },
      );
    });

    it(`fmadd/fmsub/fnmsub/fnmadd.${sfx}: addend near the product`, () => {
      const variants = ["fmadd", "fmsub", "fnmsub", "fnmadd"] as const;
      fc.assert(
        fc.property(
          valArb(f),
          relArb(f, 4),
          relArb(f, 2 * f.p + 6),
          fc.integer({ min: 0, max: 3 }),
          rmArb,
          (a, [sb, db, fb], [sc, dc, fcf], k, rm) => {
            const b = pack(f, sb, f.bias + db, fb); // near 1: the product lands near a
            const ep = bexpOf(f, a) + bexpOf(f, b) - f.bias;
            const c = pack(f, sc, ep + dc, fcf);
            const [alo, ahi] = words(f, a);
            const [blo, bhi] = words(f, b);
            const [clo, chi] = words(f, c);
            const negP = k >= 2;
            const negC = k === 1 || k === 3;
            expect(viaExec(`${variants[k]}.${sfx}`, rm, [a, b, c], f)).toEqual(
              viaExact(exact.fma(f.dbl, alo, ahi, blo, bhi, clo, chi, negP, negC, rm)),
            );
          },
        ),
        { numRuns: NUM_RUNS },
      );
    });

    it(`fmadd.${sfx}: products and addends anywhere`, () => {
      fc.assert(
        fc.property(valArb(f), valArb(f), valArb(f), rmArb, (a, b, c, rm) => {
          const [alo, ahi] = words(f, a);
          const [blo, bhi] = words(f, b);
          const [clo, chi] = words(f, c);
          expect(viaExec(`fmadd.${sfx}`, rm, [a, b, c], f)).toEqual(
            viaExact(exact.fma(f.dbl, alo, ahi, blo, bhi, clo, chi, false, false, rm)),
          );
        }),
        { numRuns: NUM_RUNS },
      );
    });
  });
}

describe("fast paths agree with the exact path (conversions)", () => {
  it("fcvt.s.d", () => {
    fc.assert(
      fc.property(
        fc.oneof(
          valArb(D),
          relArb(D, 160).map(([s, de, fr]) => pack(D, s, 1023 + de, fr)),
        ),
        rmArb,
        (a, rm) => {
          const [lo, hi] = words(D, a);
          expect(viaExec("fcvt.s.d", rm, [a], D)).toEqual(viaExact(exact.cvt(false, true, lo, hi, rm)));
        },
      ),
      { numRuns: NUM_RUNS },
    );
  });
});
