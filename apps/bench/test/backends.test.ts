/**
 * The backend comparison's translators (apps/bench/src/backends/): every kernel of the cpu
 * benchmark program translated both ways computes what the interpreter computes, with and
 * without budget stops; a wrong translation and an access outside RAM are noticed.
 * Correctness only: nothing here is timed.
 */
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { readSection } from "../src/backends/elf.ts";
import { RAM } from "../src/backends/engines.ts";
import { crossCheck, differences, makeEngines, runOnce } from "../src/backends/harness.ts";
import { DATA, decodeProgram, KERNELS, type Kernel, kernelRegion } from "../src/backends/kernels.ts";
import { formLoop, mnemonic, type Region } from "../src/backends/region.ts";
import { paths } from "../src/context.ts";

const program = decodeProgram(readSection(join(paths.fixtureBin, "cpu"), ".text"));
const kernel = (name: string) => KERNELS.find((k) => k.name === name)!;

describe("backends: translated loops against the interpreter", () => {
  it("finds each kernel's loop in the cpu program", () => {
    const shape = Object.fromEntries(
      KERNELS.map((k) => {
        const r = kernelRegion(program, k);
        return [k.name, [r.instructions, r.blocks.length, r.exits.length]];
      }),
    );
    expect(shape).toEqual({
      "int.crc": [8, 1, 1],
      "int.iter": [33, 6, 1],
      "mem.triad": [9, 1, 1],
      "mem.chase": [6, 1, 1],
      "fp.dot": [7, 1, 1],
      "fp.row": [14, 3, 1],
    });
  });

  for (const k of KERNELS)
    it(`${k.name}: JS and wasm agree with the interpreter (registers, FP registers, memory, pc, count)`, () => {
      const region = kernelRegion(program, k);
      const c = crossCheck(program, k, region, 2);
      expect(c.problems).toEqual([]);
      expect(c.instructions).toBeGreaterThan(1000);
    });

  it("agrees when a small budget makes the translated code stop at back edges and be re-entered", () => {
    for (const name of ["int.iter", "fp.row"]) {
      const k = kernel(name);
      const c = crossCheck(program, k, kernelRegion(program, k), 1, 3);
      expect(c.problems).toEqual([]);
    }
  });

  it("notices a wrong translation", () => {
    const k = kernel("int.crc");
    const region = kernelRegion(program, k);
    // The translators get the loop with srliw's shift changed from 1 to 2; the interpreter runs the real bytes.
    const broken: Region = {
      ...region,
      blocks: region.blocks.map((b) => ({
        ...b,
        insns: b.insns.map((i) => (mnemonic(i) === "srliw" ? { ...i, imm: 2 } : i)),
      })),
    };
    const c = crossCheck(program, k, broken, 1);
    expect(c.problems.some((p) => p.startsWith("js run 0: x14"))).toBe(true);
    expect(c.problems.some((p) => p.startsWith("wasm run 0: x14"))).toBe(true);
  });

  it("leaves the region at a load outside RAM, where the interpreter faults, with the same state", () => {
    const k = kernel("mem.chase");
    const region = kernelRegion(program, k);
    const engines = makeEngines(program, k, region);
    const ld = region.blocks[0]!.insns.find((i) => mnemonic(i) === "ld")!;
    const counts = engines.map((e) => {
      k.setup(e, 0);
      e.setX(12, 0x4000_0000n); // the chase array's base: no RAM there
      return e.run(region.entry, 1 << 30);
    });
    expect(counts).toEqual([2, 2, 2]); // slli and add retired, the ld did not
    expect(engines[0].pc).toBe(ld.pc);
    for (const e of engines.slice(1)) expect(differences(engines[0], e)).toEqual([]);
    // ...and a normal run afterwards still agrees.
    for (const e of engines) runOnce(e, k, region, 1);
    for (const e of engines.slice(1)) expect(differences(engines[0], e)).toEqual([]);
  });
});

describe("bench:backends command line", () => {
  const script = join(import.meta.dirname, "../src/backends.ts");
  const run = (...args: string[]) =>
    spawnSync(process.execPath, ["--conditions=source", script, ...args], {
      encoding: "utf8",
      timeout: 60_000,
    });

  it("prints its usage", () => {
    const r = run("--help");
    expect(r.status).toBe(0);
    expect(r.stdout).toContain("--kernel NAME");
  });

  it("rejects an unknown kernel or option with one line and status 2", () => {
    const a = run("--kernel", "int.nope");
    expect(a.status).toBe(2);
    expect(a.stderr).toBe(
      "bench:backends: unknown kernel 'int.nope' (one of int.crc, int.iter, mem.triad, mem.chase, fp.dot, fp.row)\n",
    );
    const b = run("--frobnicate");
    expect(b.status).toBe(2);
    expect(b.stderr).toBe("bench:backends: unknown argument '--frobnicate' (see --help)\n");
  });

  it("--show prints a loop and its generated JavaScript", () => {
    const r = run("--show", "--kernel", "fp.dot");
    expect(r.status).toBe(0);
    expect(r.stdout).toContain("fmul.d");
    expect(r.stdout).toContain("dv.getFloat64(ta, true)");
  });
});

/** Random loops over every operation the translators take, so each is checked against the interpreter. */
describe("backends: random loops of every translated integer operation", () => {
  const R = (f7: number, f3: number, opc: number) => (rd: number, a: number, b: number) =>
    (f7 << 25) | (b << 20) | (a << 15) | (f3 << 12) | (rd << 7) | opc;
  const I =
    (f3: number, opc: number, hi = 0) =>
    (rd: number, a: number, imm: number) =>
      ((hi | (imm & 0xfff)) << 20) | (a << 15) | (f3 << 12) | (rd << 7) | opc;
  const S = (f3: number) => (src: number, base: number, off: number) =>
    ((off >> 5) << 25) | (src << 20) | (base << 15) | (f3 << 12) | ((off & 31) << 7) | 0x23;
  const rOps = [
    ...[0, 1, 2, 3, 4, 5, 6, 7].map((f3) => R(0, f3, 0x33)), // add sll slt sltu xor srl or and
    R(0x20, 0, 0x33), // sub
    R(0x20, 5, 0x33), // sra
    ...[0, 4, 5, 6, 7].map((f3) => R(1, f3, 0x33)), // mul div divu rem remu
    R(0, 0, 0x3b), // addw
    R(0x20, 0, 0x3b), // subw
    R(0, 1, 0x3b), // sllw
    R(0, 5, 0x3b), // srlw
    R(0x20, 5, 0x3b), // sraw
    ...[0, 4, 5, 6, 7].map((f3) => R(1, f3, 0x3b)), // mulw divw divuw remw remuw
  ];
  const iOps = [0, 2, 3, 4, 6, 7].map((f3) => I(f3, 0x13)); // addi slti sltiu xori ori andi
  const shifts = [I(1, 0x13), I(5, 0x13), I(5, 0x13, 0x400)]; // slli srli srai (6-bit amounts)
  const wShifts = [I(1, 0x1b), I(5, 0x1b), I(5, 0x1b, 0x400)]; // slliw srliw sraiw (5-bit)
  const loads = [0, 1, 2, 3, 4, 5, 6].map((f3) => [f3, I(f3, 0x03)] as const); // lb lh lw ld lbu lhu lwu
  const stores = [0, 1, 2, 3].map((f3) => [f3, S(f3)] as const);
  const BASE = 20;
  const COUNT = 21;
  const OPS = 96;

  function program(seed: number): { text: { addr: number; bytes: Uint8Array }; values: bigint[] } {
    let s = seed * 2654435761 + 1;
    const rnd = (n: number) => {
      s ^= s << 13;
      s ^= s >>> 17;
      s ^= s << 5;
      return (s >>> 0) % n;
    };
    const reg = () => (rnd(8) === 0 ? 0 : 5 + rnd(11)); // x0 now and then: divisions by zero
    const words: number[] = [];
    for (let n = 0; n < OPS; n++) {
      const kind = rnd(10);
      const rd = 5 + rnd(11);
      if (kind < 4) words.push(rOps[rnd(rOps.length)]!(rd, reg(), reg()));
      else if (kind < 6) words.push(iOps[rnd(iOps.length)]!(rd, reg(), rnd(4096) - 2048));
      else if (kind === 6)
        words.push(shifts[rnd(3)]!(rd, reg(), rnd(64)), wShifts[rnd(3)]!(rd, reg(), rnd(32)));
      else if (kind === 7)
        words.push(
          rnd(2) === 0 ? (rnd(1 << 20) << 12) | (rd << 7) | 0x37 : (rnd(1 << 20) << 12) | (rd << 7) | 0x17,
        );
      else if (kind === 8) {
        const [f3, ld] = loads[rnd(loads.length)]!;
        words.push(ld(rd, BASE, (1 << (f3 & 3)) * rnd(256)));
      } else {
        const [f3, st] = stores[rnd(stores.length)]!;
        words.push(st(reg(), BASE, (1 << f3) * rnd(256)));
      }
    }
    words.push(I(0, 0x1b)(COUNT, COUNT, -1)); // addiw count, count, -1
    const back = -4 * words.length;
    // bne count, x0, header
    words.push(
      (((back >> 12) & 1) << 31) |
        (((back >> 5) & 0x3f) << 25) |
        (COUNT << 15) |
        (1 << 12) |
        (((back >> 1) & 0xf) << 8) |
        (((back >> 11) & 1) << 7) |
        0x63,
    );
    words.push(0x00000013); // the exit: nop (the interpreter's ebreak goes here)
    const bytes = new Uint8Array(4 * words.length);
    const dv = new DataView(bytes.buffer);
    for (const [i, w] of words.entries()) dv.setInt32(4 * i, w, true);
    const edge = [0n, 1n, -1n, -(2n ** 63n), 2n ** 63n - 1n, 0x7fffffffn, -0x80000000n];
    const values = Array.from({ length: 11 }, () =>
      rnd(3) === 0
        ? edge[rnd(edge.length)]!
        : (BigInt(rnd(2 ** 31)) << 33n) ^ (BigInt(rnd(2 ** 31)) << 7n) ^ BigInt(rnd(128)),
    );
    return { text: { addr: 0x20000, bytes }, values };
  }

  for (let seed = 1; seed <= 40; seed++)
    it(`seed ${seed}`, () => {
      const { text, values } = program(seed);
      const p = decodeProgram(text);
      const k: Kernel = {
        name: `random.${seed}`,
        what: "random operations",
        anchor: [],
        init(e) {
          for (let i = 0; i < 2048; i++) e.ram.setUint8(DATA - RAM.base + i, (i * 37 + seed) & 0xff);
        },
        setup(e) {
          for (const [i, v] of values.entries()) e.setX(5 + i, v);
          e.setX(BASE, BigInt(DATA));
          e.setX(COUNT, 3n);
        },
      };
      const region = formLoop(k.name, p.byPc, text.addr);
      expect(region.blocks.length).toBe(1);
      const c = crossCheck(p, k, region, 1);
      expect(c.problems).toEqual([]);
      expect(c.instructions).toBeGreaterThanOrEqual(3 * OPS);
    });
});
