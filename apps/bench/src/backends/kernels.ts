/**
 * The hot loops of the cpu benchmark program (apps/bench/fixtures/src/cpu.c, built as
 * apps/bench/fixtures/riscv64/cpu), found in its .text by their instruction sequence, and
 * how to set each one up: the registers the compiled code expects on entry (read off its
 * disassembly) and the data it walks.
 */
import { type Engine, RAM } from "./engines.ts";
import { decodeAll, findAnchor, formLoop, type Insn, type Region } from "./region.ts";

export interface Kernel {
  name: string;
  /** What the loop is, in cpu.c's terms. */
  what: string;
  /** Mnemonics from the loop header on: found once in the binary. */
  anchor: readonly string[];
  /** Guest data the loop reads (once per engine). */
  init?(e: Engine): void;
  /** Registers before run number `run`. */
  setup(e: Engine, run: number): void;
}

// Registers by ABI name.
const A0 = 10;
const A1 = 11;
const A2 = 12;
const A3 = 13;
const A4 = 14;
const A5 = 15;
const A6 = 16;
const A7 = 17;
const FA4 = 14;

/** Guest data: physical addresses inside the comparison's RAM, away from the program's .text. */
export const DATA = 0x100000;
export const DATA_END = 0x400000;
const MEM_N = 32 * 1024; // cpu.c: 8-byte words per triad array
const TC = DATA;
const TB = DATA + 8 * MEM_N;
const TA = DATA + 16 * MEM_N;
const CHASE_N = 128 * 1024; // cpu.c: slots in the pointer-chase cycle
const CHASE = DATA + 24 * MEM_N;
const FP_N = 24; // cpu.c: matrix size
const ROW_BYTES = 8 * FP_N;
const MA = 0x300000;
const MB = MA + FP_N * ROW_BYTES;
const MC = MB + FP_N * ROW_BYTES;
/** fp.dot: one long dot product with mb's column stride. */
export const DOT_N = 4096;
const DOT_ROW = 0x310000;
const DOT_COL = 0x320000;
/** int.crc: iterations of the CRC-32 bit loop per run (cpu.c runs 8). */
export const CRC_TRIP = 25_000;

const POLY = 0xffffffffedb88320n; // lui/addi in k_int: the polynomial, sign-extended
const mask64 = (v: bigint): bigint => BigInt.asUintN(64, v);
const S = 0.537; // a seed-like scale for the fp data, as cpu.c's s = 0.5 + (seed % 97) / 1000

export const KERNELS: readonly Kernel[] = [
  {
    name: "int.crc",
    what: `k_int's CRC-32 bit loop (8 instructions), ${CRC_TRIP} iterations a run`,
    anchor: ["andi", "subw", "srliw", "and", "xor", "addiw", "addiw", "bne"],
    setup(e, run) {
      e.setX(A3, BigInt(CRC_TRIP));
      e.setX(A4, BigInt.asIntN(32, BigInt((0xffffffff ^ Math.imul(run, 0x1234567)) >>> 0)));
      e.setX(A1, POLY);
      e.setX(A5, 0n);
    },
  },
  {
    name: "int.iter",
    what: "k_int's whole loop body: xorshift, multiply, divide or shift, then the CRC loop; 2000 iterations",
    anchor: ["slli", "xor", "srli", "xor", "slli", "xor", "srli", "and", "mul", "srli", "add", "andi", "beq"],
    setup(e, run) {
      e.setX(A2, mask64(BigInt(run) * 0x9e3779b97f4a7c15n + 1n));
      e.setX(A0, 0n);
      e.setX(A4, mask64(-1n));
      e.setX(A6, 2000n);
      e.setX(A7, 0xffffn);
      e.setX(A1, POLY);
      e.setX(A3, 0n);
      e.setX(A5, 0n);
    },
  },
  {
    name: "mem.triad",
    what: `k_mem's triad ta[i] = tb[i] + k * tc[i], ${MEM_N} iterations (3 x 256 KiB)`,
    anchor: ["ld", "ld", "addi", "mul", "addi", "addi", "add", "sd", "bne"],
    init(e) {
      for (let i = 0; i < MEM_N; i++) {
        e.ram.setBigUint64(TB - RAM.base + 8 * i, BigInt(i * 3 + 1), true);
        e.ram.setBigUint64(TC - RAM.base + 8 * i, BigInt(i ^ 0x5555), true);
      }
    },
    setup(e, run) {
      e.setX(A7, BigInt((run + 16) | 1));
      e.setX(A2, BigInt(TC));
      e.setX(A4, BigInt(TB));
      e.setX(A3, BigInt(TA));
      e.setX(A6, BigInt(TB + 8 * MEM_N));
    },
  },
  {
    name: "mem.chase",
    what: "k_mem's pointer chase p = chase[p] through a 1 MiB random cycle, 8192 steps",
    anchor: ["slli", "add", "ld", "addiw", "add", "bne"],
    init(e) {
      // Sattolo's algorithm, as cpu.c's mem_init, with a 32-bit xorshift.
      const c = new Uint32Array(CHASE_N);
      for (let i = 0; i < CHASE_N; i++) c[i] = i;
      let r = 2463534242;
      for (let i = CHASE_N - 1; i > 0; i--) {
        r ^= r << 13;
        r ^= r >>> 17;
        r ^= r << 5;
        const j = (r >>> 0) % i;
        const t = c[i]!;
        c[i] = c[j]!;
        c[j] = t;
      }
      for (let i = 0; i < CHASE_N; i++) e.ram.setBigUint64(CHASE - RAM.base + 8 * i, BigInt(c[i]!), true);
    },
    setup(e, run) {
      e.setX(A5, BigInt((run * 7919) % CHASE_N));
      e.setX(A4, 8192n);
      e.setX(A3, 0n);
      e.setX(A2, BigInt(CHASE));
    },
  },
  {
    name: "fp.dot",
    what: `k_fp's dot-product loop t += ma[i][k] * mb[k][j] (fld, fmul.d, fadd.d), ${DOT_N} terms a run`,
    anchor: ["fld", "fld", "addi", "addi", "fmul.d", "fadd.d", "bne"],
    init(e) {
      for (let k = 0; k < DOT_N; k++) {
        e.ram.setFloat64(DOT_ROW - RAM.base + 8 * k, S + 3 * 0.25 - (k % FP_N) * 0.125, true);
        e.ram.setFloat64(DOT_COL - RAM.base + ROW_BYTES * k, 1.0 / (1.0 + k + 5 * S), true);
      }
    },
    setup(e, run) {
      e.setX(A4, BigInt(DOT_ROW));
      e.setX(A5, BigInt(DOT_COL));
      e.setX(A3, BigInt(DOT_COL + ROW_BYTES * DOT_N));
      e.setF(FA4, run * 0.5);
    },
  },
  {
    name: "fp.row",
    what: "k_fp's j loop around the dot product: one row of the 24x24 matrix product (fsd included)",
    anchor: ["fmv.d.x", "add", "mv", "fld", "fld", "addi", "addi", "fmul.d", "fadd.d", "bne", "fsd"],
    init(e) {
      for (let i = 0; i < FP_N; i++)
        for (let j = 0; j < FP_N; j++) {
          e.ram.setFloat64(MA - RAM.base + ROW_BYTES * i + 8 * j, S + i * 0.25 - j * 0.125, true);
          e.ram.setFloat64(MB - RAM.base + ROW_BYTES * i + 8 * j, 1.0 / (1.0 + i + j * S), true);
        }
    },
    setup(e, run) {
      const i = run % FP_N;
      e.setX(A3, BigInt(MB + FP_N * ROW_BYTES));
      e.setX(A6, mask64(BigInt(-FP_N * ROW_BYTES)));
      e.setX(A1, BigInt(MA + ROW_BYTES * i));
      e.setX(A2, BigInt(MC + ROW_BYTES * i));
      e.setX(A0, BigInt(MB + FP_N * ROW_BYTES + ROW_BYTES));
    },
  },
];

export interface Program {
  text: { addr: number; bytes: Uint8Array };
  insns: Insn[];
  byPc: Map<number, Insn>;
}

export function decodeProgram(text: { addr: number; bytes: Uint8Array }): Program {
  const insns = decodeAll(text.bytes, text.addr);
  return { text, insns, byPc: new Map(insns.map((i) => [i.pc, i])) };
}

/** The kernel's loop in the program. */
export function kernelRegion(p: Program, k: Kernel): Region {
  return formLoop(k.name, p.byPc, findAnchor(p.insns, k.anchor, k.name));
}
