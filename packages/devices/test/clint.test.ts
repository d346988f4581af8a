import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { CLINT_MTIME, CLINT_MTIMECMP, Clint } from "../src/clint.ts";
import { ManualClock } from "../src/clock.ts";
import { IrqLevel } from "../src/irq.ts";

function make(harts = 2, t = 0) {
  const clock = new ManualClock(t);
  const msip = Array.from({ length: harts }, () => new IrqLevel());
  const mtip = Array.from({ length: harts }, () => new IrqLevel());
  const clint = new Clint({ clock, msip, mtip });
  return { clock, msip, mtip, clint };
}

describe("Clint", () => {
  it("drives MSIP from bit 0 of each hart's msip word", () => {
    const { clint, msip } = make();
    clint.write(4, 4, 0xffff_ffff);
    expect(msip[1]!.level).toBe(true);
    expect(msip[0]!.level).toBe(false);
    expect(clint.read(4, 4)).toBe(1);
    clint.write(4, 4, 0);
    expect(msip[1]!.level).toBe(false);
  });

  it("reads mtime from the clock, whole or in 32-bit halves", () => {
    const { clint, clock } = make(1, 0x1_2345_6789);
    expect(clint.read64(CLINT_MTIME)).toBe(0x1_2345_6789n);
    expect(clint.read(CLINT_MTIME, 4)).toBe(0x2345_6789);
    expect(clint.read(CLINT_MTIME + 4, 4)).toBe(1);
    clock.advance(10);
    expect(clint.read64(CLINT_MTIME)).toBe(0x1_2345_6793n);
  });

  it("raises MTIP when mtime reaches mtimecmp, found by tick(), and lowers it on a later compare", () => {
    const { clint, clock, mtip } = make(2, 100);
    expect(clint.nextDeadline(0)).toBe(Infinity);
    clint.write64(CLINT_MTIMECMP + 8, 150n);
    expect(clint.read64(CLINT_MTIMECMP + 8)).toBe(150n);
    expect(clint.nextDeadline(1)).toBe(150);
    expect(clint.nextEvent()).toBe(150);
    clock.advance(49);
    clint.tick();
    expect(mtip[1]!.level).toBe(false);
    clock.advance(1);
    clint.tick();
    expect(mtip[1]!.level).toBe(true);
    expect(mtip[0]!.level).toBe(false);
    expect(clint.nextEvent()).toBe(Infinity);
    // Linux-style 32-bit update: high word all ones first, then low, then high.
    clint.write(CLINT_MTIMECMP + 12, 4, 0xffff_ffff);
    expect(mtip[1]!.level).toBe(false);
    clint.write(CLINT_MTIMECMP + 8, 4, 300);
    clint.write(CLINT_MTIMECMP + 12, 4, 0);
    expect(clint.nextDeadline(1)).toBe(300);
    expect(mtip[1]!.level).toBe(false);
    clint.write(CLINT_MTIMECMP + 8, 4, 10);
    expect(mtip[1]!.level).toBe(true);
  });

  it("lets the guest set mtime; deadlines follow", () => {
    const { clint, clock, mtip } = make(1, 1000);
    clint.write64(CLINT_MTIME, 0n);
    expect(clint.read64(CLINT_MTIME)).toBe(0n);
    clint.write64(CLINT_MTIMECMP, 500n);
    expect(clint.nextDeadline(0)).toBe(1500);
    clock.advance(500);
    clint.tick();
    expect(mtip[0]!.level).toBe(true);
    clint.write(CLINT_MTIME + 4, 4, 1);
    expect(clint.read64(CLINT_MTIME)).toBe(0x1_0000_01f4n);
  });

  it("round-trips its state, keeping mtime continuous on a different clock", () => {
    const a = make(2, 5000);
    a.clint.write(0, 4, 1);
    a.clint.write64(CLINT_MTIMECMP, 4000n);
    a.clint.write64(CLINT_MTIMECMP + 8, 9000n);
    const s = JSON.parse(JSON.stringify(a.clint.toState()));
    const b = make(2, 77);
    b.clint.fromState(s);
    expect(b.clint.toState()).toEqual(a.clint.toState());
    expect(b.msip[0]!.level).toBe(true);
    expect(b.mtip[0]!.level).toBe(true);
    expect(b.mtip[1]!.level).toBe(false);
    expect(b.clint.read64(CLINT_MTIME)).toBe(5000n);
    expect(() => b.clint.fromState({ ...s, mtimecmp: ["0x1"] })).toThrow(/invalid clint state: mtimecmp/);
  });

  it("wraps mtime at 2^64: MTIP falls at the wrap and rises again at mtimecmp", () => {
    const { clint, clock, mtip } = make(1, 0);
    clint.write64(CLINT_MTIMECMP, 1000n);
    // 2^64 - 2048 is exact as a double, so the wrap lands on a known tick.
    clint.write64(CLINT_MTIME, (1n << 64n) - 2048n);
    expect(clint.read64(CLINT_MTIME)).toBe((1n << 64n) - 2048n);
    expect(mtip[0]!.level).toBe(true);
    // Above 2^63 a double's step is 2048 ticks: the next value it holds is the wrap.
    clock.advance(2048);
    clint.tick();
    expect(clint.read64(CLINT_MTIME)).toBe(0n);
    expect(mtip[0]!.level).toBe(false);
    expect(clint.nextEvent()).toBe(3048);
    clock.advance(1000);
    clint.tick();
    expect(mtip[0]!.level).toBe(true);
  });

  it("keeps nextEvent() at Infinity when no timer is armed, whatever mtime is", () => {
    const { clint } = make(2, 0);
    expect(clint.nextEvent()).toBe(Infinity);
    clint.write64(CLINT_MTIME, (1n << 64n) - 4096n);
    expect(clint.nextEvent()).toBe(Infinity);
  });

  it("checks its configuration", () => {
    expect(() => new Clint({ clock: new ManualClock(), msip: [], mtip: [] })).toThrow(/hart count/);
    expect(() => make(1).clint.nextDeadline(1)).toThrow(/no hart 1/);
  });

  it("never throws under random guest access, and MTIP always equals mtime >= mtimecmp after tick()", () => {
    const op = fc.oneof(
      fc.record({ k: fc.constant("r4" as const), off: fc.integer({ min: 0, max: 0xffff }) }),
      fc.record({
        k: fc.constant("w4" as const),
        off: fc.oneof(
          fc.integer({ min: 0, max: 0xffff }),
          fc.constantFrom(CLINT_MTIMECMP + 4, CLINT_MTIMECMP + 12, CLINT_MTIME + 4),
        ),
        v: fc.oneof(fc.integer({ min: 0, max: 0xffff_ffff }), fc.integer({ min: 0, max: 2 })),
      }),
      fc.record({
        k: fc.constant("r8" as const),
        off: fc.constantFrom(0, 8, CLINT_MTIMECMP, CLINT_MTIMECMP + 8, CLINT_MTIME, 0xbff0, 3),
      }),
      fc.record({
        k: fc.constant("w8" as const),
        off: fc.constantFrom(0, CLINT_MTIMECMP, CLINT_MTIMECMP + 8, CLINT_MTIME, 0xbff0, 5),
        v: fc.oneof(fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }), fc.bigInt({ min: 0n, max: 3_000_000n })),
      }),
      fc.record({ k: fc.constant("t" as const), dt: fc.integer({ min: 0, max: 1_000_000 }) }),
    );
    fc.assert(
      fc.property(fc.array(op, { maxLength: 100 }), (ops) => {
        const { clint, clock, mtip } = make(2, 1000);
        for (const o of ops) {
          if (o.k === "r4") clint.read(o.off, 4);
          else if (o.k === "w4") clint.write(o.off, 4, o.v);
          else if (o.k === "r8") clint.read64(o.off);
          else if (o.k === "w8") clint.write64(o.off, o.v);
          else clock.advance(o.dt);
          clint.tick();
          const now = clint.read64(CLINT_MTIME);
          for (let h = 0; h < 2; h++) {
            const cmp = clint.read64(CLINT_MTIMECMP + 8 * h);
            // Beyond 2^53 the compare is treated as never reached.
            const expected = cmp < 1n << 53n && now >= cmp;
            expect(mtip[h]!.level).toBe(expected);
          }
        }
      }),
      {
        // Counterexamples fast-check found in CI: mtime written near 2^64 must wrap, and
        // the wrap must be decided the same way for reads and for MTIP.
        examples: [
          [
            [
              { k: "w4", off: 0x4004, v: 0 },
              { k: "w8", off: CLINT_MTIME, v: 18446744073707752448n },
              { k: "t", dt: 666063 },
              { k: "t", dt: 9 },
              { k: "t", dt: 495543 },
              { k: "t", dt: 634505 },
            ],
          ],
          [
            [
              { k: "t", dt: 8217 },
              { k: "w4", off: 0x4004, v: 0 },
              { k: "w8", off: CLINT_MTIME, v: 18446744073709550592n },
            ],
          ],
        ],
      },
    );
  });
});
