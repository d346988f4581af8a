// The translator's own rules: code written while (or after) it was translated runs as
// written, a fault inside a translated block is precise, runs stop at exactly the budget,
// jumps between pages chain, the cache stays within its bound, and a hart whose RAM
// WebAssembly cannot address falls back to the interpreter and says why.
import { GuestRam, hpa, wasmApi } from "@visor/memory";
import { describe, expect, it } from "vitest";
import type { HartCore } from "../src/core.ts";
import { ST_EXIT, ST_PC } from "../src/core.ts";
import { EXIT_M, Hart, type JitMode } from "../src/index.ts";
import { BATCH_WAIT, EXIT_PC, HOT_THRESHOLD, TranslationCache } from "../src/jit/index.ts";
import { regionModule, translateRegion } from "../src/jit/translate.ts";
import { enc } from "./jit-diff-driver.ts";

const BASE = 0x8000_0000;
const noBus = { read: () => -1, write: () => false, read64: () => undefined, write64: () => false };

// instruction words from the differential tester's assembler
const addi = (rd: number, rs1: number, imm: number): number => enc.i("addi", rd, rs1, imm).bits;
const add = (rd: number, rs1: number, rs2: number): number => enc.r("add", rd, rs1, rs2).bits;
const ld = (rd: number, rs1: number, imm: number): number => enc.load("ld", rd, rs1, imm).bits;
const beq = (rs1: number, rs2: number, off: number): number => enc.branch("beq", rs1, rs2, off).bits;
const sw = (rs2: number, rs1: number, imm: number): number => enc.store("sw", rs2, rs1, imm).bits;
const bne = (rs1: number, rs2: number, off: number): number => enc.branch("bne", rs1, rs2, off).bits;
const jalr = (rd: number, rs1: number, imm: number): number => enc.jalr(rd, rs1, imm).bits;
const J = (off: number, rd: number): number => enc.jal(rd, off).bits;
const auipc = (rd: number, imm20: number): number => enc.auipc(rd, imm20).bits;
const EBREAK = 0x00100073;
const A0 = 10;
const A1 = 11;
const A2 = 12;
const A4 = 14;
const A5 = 15;
const RA = 1;

function machine(
  jit: JitMode,
  code: Record<number, number[]>,
  size = 1 << 20,
): { hart: Hart; ram: GuestRam } {
  const ram = new GuestRam(BASE, size);
  for (const [at, words] of Object.entries(code)) {
    words.forEach((w, i) => {
      ram.write32(hpa(BASE + Number(at) + 4 * i), w);
    });
  }
  const hart = new Hart({ ram, bus: noBus, jit });
  hart.exitMask = EXIT_M;
  hart.pc = BigInt(BASE);
  return { hart, ram };
}

/** Run to the ebreak (or any exit) in slices of `budget`. */
function runToExit(hart: Hart, budget = 1_000_000): string {
  for (let i = 0; i < 10_000; i++) {
    const e = hart.run(budget);
    if (e.kind !== "budget") return e.kind;
  }
  throw new Error("no exit");
}

describe("the translator", () => {
  it("translates in always mode, and reports it", () => {
    // a5 = 1000; loop: a0 += a5; a5 -= 1; bnez a5, loop; ebreak
    const { hart } = machine("always", {
      0: [addi(A5, 0, 1000), add(A0, A0, A5), addi(A5, A5, -1), bne(A5, 0, -8), EBREAK],
    });
    expect(runToExit(hart)).toBe("breakpoint");
    expect(hart.getX(A0)).toBe(500500n);
    const s = hart.jitStats;
    expect(s.mode).toBe("always");
    expect(s.regions).toBeGreaterThan(0);
    expect(s.executedTranslated).toBeGreaterThan(2900);
    expect(hart.instret()).toBe(1 + 3 * 1000);
  });

  it("code stored into the running region's own page runs as written", () => {
    // loop 3 times: a0 += 1 (the instruction at 0x40), then patch it to a0 += 100 (stored
    // by the loop itself, a word in the same page), so later iterations add 100.
    const patch = addi(A0, A0, 100);
    const words: number[] = [
      addi(A5, 0, 3), // 0x00
      auipc(A2, 0), // 0x04: a2 = BASE + 4
      addi(A1, A2, 0x3c), // 0x08: a1 = BASE + 0x40
      ld(A2, A2, 0xfc), // 0x0c: a2 = the patch word (data at BASE + 0x100)
      J(0x40 - 0x10, 0), // 0x10: j 0x40
    ];
    const body: number[] = [
      addi(A0, A0, 1), // 0x40: patched
      sw(A2, A1, 0), // 0x44: store the patch over 0x40
      addi(A5, A5, -1), // 0x48
      bne(A5, 0, -12), // 0x4c: back to 0x40
      EBREAK, // 0x50
    ];
    for (const mode of ["off", "always", "on"] as const) {
      const { hart, ram } = machine(mode, { 0: words, 64: body });
      ram.write64(hpa(BASE + 0x100), BigInt(patch >>> 0));
      expect(runToExit(hart)).toBe("breakpoint");
      expect(hart.getX(A0), mode).toBe(1n + 100n + 100n);
    }
  });

  it("code written by a device (DMA) after it was translated runs as written", () => {
    const body = [addi(A0, A0, 1), addi(A5, A5, -1), bne(A5, 0, -8), EBREAK];
    const { hart, ram } = machine("always", { 0: body });
    hart.setX(A5, 50n);
    expect(runToExit(hart)).toBe("breakpoint");
    expect(hart.getX(A0)).toBe(50n);
    const cache = TranslationCache.of(hart.codeCache);
    const before = cache.invalidations;
    // the "device" rewrites the first instruction: a0 += 7
    ram.write32(hpa(BASE), addi(A0, A0, 7));
    expect(cache.invalidations).toBeGreaterThan(before);
    hart.pc = BigInt(BASE);
    hart.setX(A0, 0n);
    hart.setX(A5, 50n);
    expect(runToExit(hart)).toBe("breakpoint");
    expect(hart.getX(A0)).toBe(350n);
  });

  it("a fault inside a translated block is precise", () => {
    // a0 = 5; a1 = 6; ld a2, 0(a5) faults (no RAM there); a0 = 9 never runs
    const code = [addi(A5, 0, 0x100), addi(A0, 0, 5), addi(A1, 0, 6), ld(A2, A5, 0), addi(A0, 0, 9), EBREAK];
    for (const mode of ["off", "always"] as const) {
      const { hart } = machine(mode, { 0: code });
      const e = hart.run(1000);
      expect(e.kind, mode).toBe("access-fault");
      expect(e.kind === "access-fault" ? e.tval : -1n, mode).toBe(0x100n);
      expect(hart.pc, mode).toBe(BigInt(BASE + 12));
      expect(hart.getX(A0), mode).toBe(5n);
      expect(hart.getX(A1), mode).toBe(6n);
      expect(hart.instret(), mode).toBe(3);
    }
  });

  it("stops at exactly the budget, whatever the budget", () => {
    const code = [addi(A5, 0, 200), add(A0, A0, A5), addi(A5, A5, -1), bne(A5, 0, -8), EBREAK];
    for (const budget of [1, 2, 3, 5, 7, 64, 1000]) {
      const a = machine("off", { 0: code }).hart;
      const b = machine("always", { 0: code }).hart;
      for (let i = 0; i < 40; i++) {
        const ea = a.run(budget);
        const eb = b.run(budget);
        expect(eb.kind).toBe(ea.kind);
        expect(b.pc).toBe(a.pc);
        expect(b.instret()).toBe(a.instret());
        expect(b.getX(A0)).toBe(a.getX(A0));
        if (ea.kind !== "budget") break;
      }
    }
  });

  it("chains a call into another page and its return", () => {
    // caller at 0: a5 = 300; loop: jal ra, 0x2000; a5 -= 1; bnez a5, loop; ebreak
    // callee at 0x2000: a0 += 3; ret
    const { hart } = machine("always", {
      0: [addi(A5, 0, 300), J(0x2000 - 4, RA), addi(A5, A5, -1), bne(A5, 0, -8), EBREAK],
      8192: [addi(A0, A0, 3), jalr(0, RA, 0)],
    });
    expect(runToExit(hart)).toBe("breakpoint");
    expect(hart.getX(A0)).toBe(900n);
    const s = hart.jitStats;
    expect(s.executedTranslated / hart.executedCount()).toBeGreaterThan(0.95);
  });

  it("a call and its return inside one page stay in the region's function", () => {
    // 0x00 a5 = 1000; 0x04 loop: jal ra, 0x40; 0x08 a5 -= 1; 0x0c bnez a5, loop; 0x10 ebreak
    // 0x40 a0 += a5; 0x44 ret
    const { hart, ram } = machine("off", {
      0: [addi(A5, 0, 1000), J(0x3c, RA), addi(A5, A5, -1), bne(A5, 0, -8), EBREAK],
      64: [add(A0, A0, A5), jalr(0, RA, 0)],
    });
    // The region's function alone, with an empty chain table: nothing outside it can be
    // reached, so it leaves only where the region itself ends (the ebreak at 0x10).
    const region = translateRegion(ram.dv, 0, 0)!;
    const c = (hart as unknown as { c: HartCore }).c;
    const tbl = new wasmApi!.Table({ element: "anyfunc", initial: 1 });
    const general = (): number => {
      throw new Error("nothing here needs the general path");
    };
    const module = new wasmApi!.Module(regionModule([region.body]));
    const inst = new wasmApi!.Instance(module, {
      m: { ram: ram.memory, st: c.stateMemory, tbl },
      h: { general },
    });
    const f = inst.exports.f0 as (
      n: number,
      limit: number,
      e: number,
      lo: number,
      hi: number,
      fp: number,
    ) => number;
    const n = f(0, 1_000_000, 0, BASE | 0, 0, 0);
    const st = new DataView(c.stateMemory!.buffer);
    expect(st.getInt32(ST_EXIT, true)).toBe(EXIT_PC);
    expect(st.getBigUint64(ST_PC, true)).toBe(BigInt(BASE + 0x10));
    expect(n).toBe(1 + 1000 * 5); // every iteration's jal, add, ret, addi, bnez: one call of f
    expect(st.getInt32(4 * A0, true)).toBe(500500); // ST_XLO[a0]
  });

  it("a region made from hot code holds only instructions that have run", () => {
    // beqz a0, +12 (to 0x0c); a0 += 1; a0 += 2; 0x0c: a0 += 3; ebreak
    const { ram } = machine("off", {
      0: [beq(A0, 0, 12), addi(A0, A0, 1), addi(A0, A0, 2), addi(A0, A0, 3), EBREAK],
    });
    expect(translateRegion(ram.dv, 0, 0)!.count).toBe(4);
    // only the branch and its taken side have run (decoded slots are non-zero)
    const ran = new Int32Array(4096);
    ran[0] = 1;
    ran[0x0c] = 1;
    const r = translateRegion(ram.dv, 0, 0, ran)!;
    expect(r.count).toBe(2);
    expect(r.starts).toEqual([0, 0x0c]);
  });

  it("a function reached only through a pointer gets translated when hot", () => {
    // caller: a5 = 4 * HOT_THRESHOLD; a1 = BASE + 0x2000; loop: jalr ra, 0(a1); a5 -= 1; bnez a5, loop
    // callee at 0x2000 (another page, reached by jalr only): a0 += 1; ret
    const iterations = 4 * HOT_THRESHOLD + Math.ceil(BATCH_WAIT / 4096) * 4096;
    const { hart } = machine("on", {
      0: [
        enc.lui(A5, iterations >>> 12).bits,
        auipc(A1, 2), // a1 = BASE + 4 + 0x2000
        addi(A1, A1, -4),
        jalr(RA, A1, 0), // 0x0c
        addi(A5, A5, -1),
        bne(A5, 0, -8),
        EBREAK,
      ],
      8192: [addi(A0, A0, 1), jalr(0, RA, 0)],
    });
    expect(runToExit(hart, 100_000)).toBe("breakpoint");
    expect(hart.getX(A0)).toBe(BigInt(iterations));
    // The loop runs translated from about its HOT_THRESHOLD-th iteration on, and a batch's
    // wait (BATCH_WAIT instructions) later: over 3/4 of them.
    // Unless jumps through registers (or exits from translated code) count as heat, the
    // callee stays interpreted: 2 of every 5 instructions, so at most 3/5 translated.
    expect(hart.jitStats.executedTranslated / hart.executedCount()).toBeGreaterThan(0.68);
  });

  it("compiles regions that get hot close together as one module", () => {
    // page 0: a5 = n1; loop: a0 += 1; a5 -= 1; bnez a5, loop; j page 1
    // page 1: a5 = n2; loop: a0 += 2; a5 -= 1; bnez a5, loop; ebreak
    const n1 = HOT_THRESHOLD + 4096; // hot, then 4096 more iterations: 12 k instructions
    const n2 = 64 * 4096;
    const { hart } = machine("on", {
      0: [enc.lui(A5, n1 >>> 12).bits, addi(A0, A0, 1), addi(A5, A5, -1), bne(A5, 0, -8), J(4096 - 16, 0)],
      4096: [enc.lui(A5, n2 >>> 12).bits, addi(A0, A0, 2), addi(A5, A5, -1), bne(A5, 0, -8), EBREAK],
    });
    expect(runToExit(hart, 100_000)).toBe("breakpoint");
    expect(hart.getX(A0)).toBe(BigInt(n1 + 2 * n2));
    // The second loop got hot within BATCH_WAIT instructions of the first: one module.
    const s = hart.jitStats;
    expect(s.regions).toBe(2);
    expect(s.modules).toBe(1);
    expect(s.executedTranslated / hart.executedCount()).toBeGreaterThan(0.5);
  });

  it("code written while its region waits to be compiled runs as written", () => {
    // 0x00 a5 = n; 0x04 loop: a0 += 1; a5 -= 1; bnez a5, loop
    // 0x10 bnez a4, end; a4 = 1; a2 = (addi a0, a0, 2); a1 = pc; sw a2, 4(base); a5 = m; j loop
    // 0x30 end: ebreak
    // The loop gets hot (queued) near the end of the first pass; the store rewrites it
    // before the queue is compiled, so that translation is of code that is gone.
    const n = HOT_THRESHOLD + 4096;
    const m = 64 * 4096;
    const addi2 = addi(A0, A0, 2);
    const lo = (addi2 << 20) >> 20;
    const { hart } = machine("on", {
      0: [
        enc.lui(A5, n >>> 12).bits,
        addi(A0, A0, 1),
        addi(A5, A5, -1),
        bne(A5, 0, -8),
        bne(A4, 0, 0x30 - 0x10),
        addi(A4, 0, 1),
        enc.lui(A2, ((addi2 - lo) >>> 12) & 0xfffff).bits,
        addi(A2, A2, lo),
        auipc(A1, 0), // 0x20
        sw(A2, A1, 4 - 0x20),
        enc.lui(A5, m >>> 12).bits,
        J(4 - 0x2c, 0),
        EBREAK, // 0x30
      ],
    });
    expect(runToExit(hart, 100_000)).toBe("breakpoint");
    expect(hart.getX(A0)).toBe(BigInt(n + 2 * m));
    // Only the rewritten loop's region was installed (it too got hot, in the second pass).
    expect(hart.jitStats.regions).toBe(1);
    expect(hart.jitStats.executedTranslated).toBeGreaterThan(0);
  });

  it("keeps the cache within its bound by flushing", () => {
    // 64 small loops in 64 pages, each run in turn; the bound fits only a few regions
    const code: Record<number, number[]> = {};
    for (let p = 0; p < 64; p++) {
      const next = p < 63 ? J(4096 - 12, 0) : EBREAK;
      code[p * 4096] = [addi(A5, 0, 20), addi(A5, A5, -1), bne(A5, 0, -4), next];
    }
    const { hart } = machine("always", code);
    const cache = TranslationCache.of(hart.codeCache);
    cache.maxLiveBytes = 8 * 1024;
    expect(runToExit(hart)).toBe("breakpoint");
    expect(cache.evictions).toBeGreaterThan(0);
    expect(cache.liveBytes).toBeLessThanOrEqual(8 * 1024);
    expect(hart.jitStats.evictions).toBe(cache.evictions);
  });

  it("falls back to the interpreter, and says why, when RAM is not a WebAssembly memory", () => {
    const ram = new GuestRam(BASE, 1 << 20, new ArrayBuffer(1 << 20));
    const hart = new Hart({ ram, bus: noBus, jit: "always" });
    const s = hart.jitStats;
    expect(s.mode).toBe("off");
    expect(s.unavailable).toMatch(/RAM is not a WebAssembly memory/);
    expect(new Hart({ ram, bus: noBus, jit: "off" }).jitStats.unavailable).toBe("");
  });

  it("runs interpreted, and says why, on an engine that cannot run translated code", () => {
    const code = [addi(A5, 0, 100), add(A0, A0, A5), addi(A5, A5, -1), bne(A5, 0, -8), EBREAK];
    const wa = (globalThis as unknown as { WebAssembly: { Table: unknown; Instance: unknown } }).WebAssembly;
    const table = wa.Table;
    wa.Table = function NoTables(): never {
      throw new Error("no tables here");
    };
    try {
      const { hart } = machine("always", { 0: code });
      expect(hart.jitStats.mode).toBe("off");
      expect(hart.jitStats.unavailable).toMatch(/cannot run translated code \(no tables here\)/);
      expect(runToExit(hart)).toBe("breakpoint");
      expect(hart.getX(A0)).toBe(5050n);
    } finally {
      wa.Table = table;
    }
    // A region that cannot be instantiated: translation stops, the program still runs.
    const { hart } = machine("always", { 0: code });
    const instance = wa.Instance;
    wa.Instance = function NoInstances(): never {
      throw new Error("no instances here");
    };
    try {
      expect(runToExit(hart)).toBe("breakpoint");
    } finally {
      wa.Instance = instance;
    }
    expect(hart.getX(A0)).toBe(5050n);
    expect(hart.jitStats.unavailable).toMatch(/failed to instantiate \(no instances here\)/);
    expect(hart.jitStats.executedTranslated).toBe(0);
  });
});
