import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { IrqLevel } from "../src/irq.ts";
import { PLIC_CONTEXT_BASE, PLIC_ENABLE_BASE, PLIC_PENDING_BASE, Plic, type PlicState } from "../src/plic.ts";

function make(harts = 1, sources?: number) {
  const out = Array.from({ length: 2 * harts }, () => new IrqLevel());
  const plic = new Plic({ harts, contexts: out, ...(sources ? { sources } : {}) });
  return { plic, out };
}

const prio = (p: Plic, src: number, v: number) => p.write(4 * src, 4, v);
const enable = (p: Plic, ctx: number, word: number, v: number) =>
  p.write(PLIC_ENABLE_BASE + 0x80 * ctx + 4 * word, 4, v);
const threshold = (p: Plic, ctx: number, v: number) => p.write(PLIC_CONTEXT_BASE + 0x1000 * ctx, 4, v);
const claim = (p: Plic, ctx: number) => p.read(PLIC_CONTEXT_BASE + 0x1000 * ctx + 4, 4);
const complete = (p: Plic, ctx: number, id: number) => p.write(PLIC_CONTEXT_BASE + 0x1000 * ctx + 4, 4, id);

/** Reference: the claim a context should get, from a state snapshot. */
function expectedClaim(s: PlicState, ctx: number, words: number): number {
  let best = 0;
  let bestPrio = s.threshold[ctx]!;
  for (let id = 1; id < s.priority.length; id++) {
    const w = id >>> 5;
    const bit = 2 ** (id & 31);
    const pend = Math.floor(s.pending[w]! / bit) % 2 === 1;
    const en = Math.floor(s.enable[ctx * words + w]! / bit) % 2 === 1;
    if (pend && en && s.priority[id]! > bestPrio) {
      best = id;
      bestPrio = s.priority[id]!;
    }
  }
  return best;
}

describe("Plic", () => {
  it("has QEMU virt's geometry", () => {
    const { plic } = make(2);
    expect(plic.sources).toBe(96);
    expect(plic.contexts).toBe(4);
    expect(plic.size).toBe(0x204000);
  });

  it("claims the highest-priority pending enabled source above threshold, lowest id on ties", () => {
    const { plic, out } = make();
    for (const s of [3, 5, 10]) prio(plic, s, 2);
    prio(plic, 7, 5);
    enable(plic, 1, 0, (1 << 3) | (1 << 5) | (1 << 7) | (1 << 10));
    plic.irqLine(10).set(true);
    plic.irqLine(5).set(true);
    plic.irqLine(7).set(true);
    expect(out[1]!.level).toBe(true);
    expect(out[0]!.level).toBe(false); // context 0 enables nothing
    expect(plic.read(PLIC_PENDING_BASE, 4)).toBe((1 << 5) | (1 << 7) | (1 << 10));
    expect(claim(plic, 1)).toBe(7);
    expect(claim(plic, 1)).toBe(5);
    expect(claim(plic, 1)).toBe(10);
    expect(claim(plic, 1)).toBe(0);
    expect(out[1]!.level).toBe(false);
    expect(plic.read(PLIC_PENDING_BASE, 4)).toBe(0);
  });

  it("masks by threshold and ignores priority-0 sources", () => {
    const { plic, out } = make();
    prio(plic, 1, 3);
    prio(plic, 2, 0);
    enable(plic, 0, 0, 0b110);
    plic.irqLine(1).set(true);
    plic.irqLine(2).set(true);
    threshold(plic, 0, 3);
    expect(out[0]!.level).toBe(false);
    expect(claim(plic, 0)).toBe(0);
    threshold(plic, 0, 2);
    expect(out[0]!.level).toBe(true);
    expect(claim(plic, 0)).toBe(1);
    expect(claim(plic, 0)).toBe(0);
  });

  it("re-arms a level source on complete while its line is still high", () => {
    const { plic, out } = make();
    prio(plic, 10, 1);
    enable(plic, 1, 0, 1 << 10);
    const line = plic.irqLine(10);
    line.set(true);
    expect(claim(plic, 1)).toBe(10);
    expect(out[1]!.level).toBe(false);
    line.set(false);
    line.set(true); // edges while in service are not seen
    expect(out[1]!.level).toBe(false);
    complete(plic, 1, 10);
    expect(out[1]!.level).toBe(true);
    expect(claim(plic, 1)).toBe(10);
    line.set(false);
    complete(plic, 1, 10);
    expect(out[1]!.level).toBe(false);
  });

  it("withdraws a request whose line drops before the claim", () => {
    const { plic, out } = make();
    prio(plic, 4, 1);
    enable(plic, 0, 0, 1 << 4);
    plic.irqLine(4).set(true);
    expect(out[0]!.level).toBe(true);
    plic.irqLine(4).set(false);
    expect(out[0]!.level).toBe(false);
    expect(claim(plic, 0)).toBe(0);
  });

  it("keeps priorities and thresholds to 3 bits, source 0 and pending read-only", () => {
    const { plic } = make();
    prio(plic, 1, 0xff);
    expect(plic.read(4, 4)).toBe(7);
    prio(plic, 0, 5);
    expect(plic.read(0, 4)).toBe(0);
    threshold(plic, 0, 9);
    expect(plic.read(PLIC_CONTEXT_BASE, 4)).toBe(1);
    enable(plic, 0, 0, 0xffff_ffff);
    expect(plic.read(PLIC_ENABLE_BASE, 4)).toBe(0xffff_fffe);
    enable(plic, 0, 2, 0xffff_ffff);
    expect(plic.read(PLIC_ENABLE_BASE + 8, 4)).toBe(0xffff_ffff); // sources 64..95
    plic.write(PLIC_PENDING_BASE, 4, 0xffff_ffff);
    expect(plic.read(PLIC_PENDING_BASE, 4)).toBe(0);
    expect(() => plic.irqLine(0)).toThrow(/no source 0/);
    expect(() => plic.irqLine(96)).toThrow(/no source 96/);
  });

  it("round-trips its state", () => {
    const a = make(2);
    prio(a.plic, 33, 4);
    enable(a.plic, 3, 1, 1 << 1);
    a.plic.irqLine(33).set(true);
    a.plic.irqLine(2).set(true);
    const s = JSON.parse(JSON.stringify(a.plic.toState()));
    const b = make(2);
    b.plic.fromState(s);
    expect(b.plic.toState()).toEqual(a.plic.toState());
    expect(b.out.map((l) => l.level)).toEqual(a.out.map((l) => l.level));
    expect(claim(b.plic, 3)).toBe(33);
    expect(() => b.plic.fromState({ ...s, threshold: [0] })).toThrow(/invalid plic state: threshold/);
  });

  it("matches a reference model under random guest access and line changes", () => {
    const words = 3;
    const reg = fc.oneof(
      fc.integer({ min: 0, max: 4 * 100 }),
      fc.integer({ min: PLIC_PENDING_BASE, max: PLIC_PENDING_BASE + 16 }),
      fc.integer({ min: PLIC_ENABLE_BASE, max: PLIC_ENABLE_BASE + 0x80 * 3 }),
      fc.integer({ min: PLIC_CONTEXT_BASE, max: PLIC_CONTEXT_BASE + 0x1000 * 3 + 8 }),
      fc.integer({ min: 0, max: 0x3fffff }),
    );
    const op = fc.oneof(
      fc.record({ k: fc.constant("r" as const), off: reg }),
      fc.record({
        k: fc.constant("w" as const),
        off: reg,
        v: fc.oneof(fc.integer({ min: 0, max: 0xffff_ffff }), fc.integer({ min: 0, max: 100 })),
      }),
      fc.record({
        k: fc.constant("line" as const),
        src: fc.integer({ min: 1, max: 95 }),
        level: fc.boolean(),
      }),
      fc.record({ k: fc.constant("claim" as const), ctx: fc.integer({ min: 0, max: 3 }) }),
    );
    fc.assert(
      fc.property(fc.array(op, { maxLength: 150 }), (ops) => {
        const { plic, out } = make(2);
        for (const o of ops) {
          if (o.k === "r") plic.read(o.off & ~3, 4);
          else if (o.k === "w") plic.write(o.off & ~3, 4, o.v);
          else if (o.k === "line") plic.irqLine(o.src).set(o.level);
          else {
            const want = expectedClaim(plic.toState(), o.ctx, words);
            expect(claim(plic, o.ctx)).toBe(want);
          }
          const s = plic.toState();
          for (let c = 0; c < 4; c++) expect(out[c]!.level).toBe(expectedClaim(s, c, words) !== 0);
        }
      }),
    );
  });
});
