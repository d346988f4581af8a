/**
 * The binary translator's differential tester: random valid RV64GC programs run on two
 * fresh harts with identical RAM, one interpreting (`jit: "off"`, the reference) and one
 * translating (`jit: "always"`, or "on" for a quarter of the programs, so hot code changes
 * tier mid-run), with the same sequence of `run(budget)` calls. After every call the two
 * must agree on the exit `run` returned, the complete architectural state (`toState()`:
 * pc, privilege, x and f registers, fcsr, every CSR, instret/cycle), every byte of RAM and
 * every access the MMIO device saw, in order.
 *
 * Used by `jit-diff.test.ts` (a fixed seed, CI) and by the fuzz app's `jit` surface
 * (`pnpm fuzz jit`). On a mismatch, `runDiff` returns a report: the first run call that
 * differs, what differs, and a listing of the program; fast-check shrinks the program
 * first, so the listing is a small one.
 *
 * A program is a list of items (plain data, so fast-check can shrink and print it):
 * integer ALU ops (every I and M op, W forms, immediates and shifts, LUI/AUIPC, 64-bit
 * constants), RVC forms, loads and stores of every width (aligned, misaligned,
 * page-crossing, into MMIO, unmapped, read-only and unmapped-by-the-page-table pages, past
 * the end of RAM), F and D arithmetic with every rounding mode (static, dynamic, reserved),
 * conversions, moves, sign injection, compares, min/max, classify, fcsr CSR access, counter
 * CSR reads and writes (cycle, time, instret), AMOs and LR/SC, FENCE/FENCE.I, ECALL/EBREAK,
 * illegal instructions, forward branches and jumps (JAL, JALR, compressed), bounded loops (a
 * counter register the rest of the program does not write), subroutine calls, jumps to
 * unfetchable addresses, self-modifying code (with and without FENCE.I, also through another
 * virtual address), mstatus changes (MPRV with MPP S or U, SUM, MXR, FS off), and under Sv39
 * in S/U-mode: page-table edits with SFENCE.VMA, satp switches between two address spaces,
 * and code that continues at another virtual address of the same physical page.
 *
 * Traps go to an M-mode handler in the program's RAM (it logs mcause/mepc/mtval/mstatus to
 * memory and resumes after the instruction, or at `ra` after a fetch fault), or to an
 * S-mode one for the exceptions a program delegates (medeleg), or, in "exit" style, out of
 * `run` (`exitMask` EXIT_M), where the driver resumes both harts the same way. Programs end
 * with an ECALL at a known address, after which the handler waits in WFI (or the driver
 * stops).
 */
import { GuestRam, hpa } from "@visor/memory";
import fc from "fast-check";
import {
  csr as C,
  EXIT_M,
  Hart,
  type HartExit,
  type HartState,
  isTrapExit,
  type JitMode,
  type JitStats,
  type PhysBus,
} from "../src/index.ts";

// ---------------------------------------------------------------------------- layout

export const RAM_BASE = 0x8000_0000;
export const RAM_PAGES = 32;
const PAGE = 0x1000;
const P = (n: number): number => RAM_BASE + n * PAGE;
/** Page 0: the M-mode trap handler; its save area and trap log. */
const HANDLER = P(0);
const SAVE = P(0) + 0x800; // t0..t2 (3 dwords), log count, END
const LOG = P(0) + 0x840; // 32 entries of mcause, mepc, mtval, mstatus
const LOG_ENTRIES = 32;
/** Pages 1..3: the program. */
const CODE = P(1);
const CODE_END = P(4);
/** Pages 4..7: data; gp and sp point into it. */
const DATA = P(4);
const GP = DATA + 0x800;
const RO = P(8); // read-only under Sv39
const HOLE = P(9); // not mapped under Sv39
const ALT = P(10); // table B maps DATA's first page here, and this page to DATA
/** Page 11: the S-mode handler (delegated exceptions), its save area and log, as on page 0. */
const S_HANDLER = P(11);
const S_SAVE = S_HANDLER + 0x800;
const PT = P(16); // rootA, rootB, L1A, L1B, L0A, L0B, L1M
const RAM_END_PAGE = P(RAM_PAGES - 1);
export const MMIO = 0x1000_0000;
const MMIO_SIZE = 0x1000;
const UNMAPPED = 0x2000_0000;
/** Under Sv39: a 1 GiB page onto RAM (code runs there too); in M-mode nothing is there. */
const ALIAS = 0x4000_0000;
const ASID_A = 1;
const ASID_B = 2;

// ------------------------------------------------------------------------- registers

const XNAMES = [
  "zero",
  "ra",
  "sp",
  "gp",
  "tp",
  "t0",
  "t1",
  "t2",
  "s0",
  "s1",
  "a0",
  "a1",
  "a2",
  "a3",
  "a4",
  "a5",
  "a6",
  "a7",
  "s2",
  "s3",
  "s4",
  "s5",
  "s6",
  "s7",
  "s8",
  "s9",
  "s10",
  "s11",
  "t3",
  "t4",
  "t5",
  "t6",
];
const xn = (r: number): string => XNAMES[r]!;
const fn = (r: number): string => `f${r}`;
const RA = 1;
const SP = 2;
const GP_REG = 3;
const T0 = 5;
const T1 = 6;
const T2 = 7;
const SATP_A_REG = 24; // s8
const SATP_B_REG = 25; // s9
const LOOP_REGS = [26, 27]; // s10, s11
const T4 = 29;
const T5 = 30;
const T6 = 31;
/** Registers random instructions never write: bases, satp values, loop counters. */
const RESERVED = new Set([SP, GP_REG, SATP_A_REG, SATP_B_REG, ...LOOP_REGS]);
const WRITABLE = [...Array(32).keys()].filter((r) => !RESERVED.has(r));

// --------------------------------------------------------------------------- encoder

/** One encoded instruction and its assembly text. */
export interface Insn {
  len: 2 | 4;
  bits: number;
  text: string;
}
const i4 = (bits: number, text: string): Insn => ({ len: 4, bits: bits >>> 0, text });
const i2 = (bits: number, text: string): Insn => ({ len: 2, bits: bits & 0xffff, text });
const hex = (v: number | bigint): string =>
  typeof v === "bigint"
    ? `0x${BigInt.asUintN(64, v).toString(16)}`
    : v < 0
      ? `-0x${(-v).toString(16)}`
      : `0x${v.toString(16)}`;

const encR = (f7: number, rs2: number, rs1: number, f3: number, rd: number, op: number): number =>
  (f7 << 25) | (rs2 << 20) | (rs1 << 15) | (f3 << 12) | (rd << 7) | op;
const encI = (imm: number, rs1: number, f3: number, rd: number, op: number): number =>
  ((imm & 0xfff) << 20) | (rs1 << 15) | (f3 << 12) | (rd << 7) | op;
const encS = (imm: number, rs2: number, rs1: number, f3: number, op: number): number =>
  (((imm >> 5) & 0x7f) << 25) | (rs2 << 20) | (rs1 << 15) | (f3 << 12) | ((imm & 0x1f) << 7) | op;
const encB = (imm: number, rs2: number, rs1: number, f3: number): number =>
  (((imm >> 12) & 1) << 31) |
  (((imm >> 5) & 0x3f) << 25) |
  (rs2 << 20) |
  (rs1 << 15) |
  (f3 << 12) |
  (((imm >> 1) & 0xf) << 8) |
  (((imm >> 11) & 1) << 7) |
  0x63;
const encJ = (imm: number, rd: number): number =>
  (((imm >> 20) & 1) << 31) |
  (((imm >> 1) & 0x3ff) << 21) |
  (((imm >> 11) & 1) << 20) |
  (((imm >> 12) & 0xff) << 12) |
  (rd << 7) |
  0x6f;

// biome-ignore format: a table
const R_OPS: Record<string, [op: number, f7: number, f3: number]> = {
  add: [0x33, 0, 0], sub: [0x33, 0x20, 0], sll: [0x33, 0, 1], slt: [0x33, 0, 2], sltu: [0x33, 0, 3],
  xor: [0x33, 0, 4], srl: [0x33, 0, 5], sra: [0x33, 0x20, 5], or: [0x33, 0, 6], and: [0x33, 0, 7],
  mul: [0x33, 1, 0], mulh: [0x33, 1, 1], mulhsu: [0x33, 1, 2], mulhu: [0x33, 1, 3], div: [0x33, 1, 4],
  divu: [0x33, 1, 5], rem: [0x33, 1, 6], remu: [0x33, 1, 7], addw: [0x3b, 0, 0], subw: [0x3b, 0x20, 0],
  sllw: [0x3b, 0, 1], srlw: [0x3b, 0, 5], sraw: [0x3b, 0x20, 5], mulw: [0x3b, 1, 0], divw: [0x3b, 1, 4],
  divuw: [0x3b, 1, 5], remw: [0x3b, 1, 6], remuw: [0x3b, 1, 7],
};
// biome-ignore format: a table
const I_OPS: Record<string, [op: number, f3: number]> = {
  addi: [0x13, 0], slti: [0x13, 2], sltiu: [0x13, 3], xori: [0x13, 4], ori: [0x13, 6], andi: [0x13, 7],
  addiw: [0x1b, 0],
};
// biome-ignore format: a table
const SHIFT_OPS: Record<string, [op: number, f3: number, hi: number, max: number]> = {
  slli: [0x13, 1, 0, 63], srli: [0x13, 5, 0, 63], srai: [0x13, 5, 0x400, 63], slliw: [0x1b, 1, 0, 31],
  srliw: [0x1b, 5, 0, 31], sraiw: [0x1b, 5, 0x400, 31],
};
// biome-ignore format: a table
const LOADS: Record<string, [f3: number, size: number, fp: boolean]> = {
  lb: [0, 1, false], lh: [1, 2, false], lw: [2, 4, false], ld: [3, 8, false], lbu: [4, 1, false],
  lhu: [5, 2, false], lwu: [6, 4, false], flw: [2, 4, true], fld: [3, 8, true],
};
// biome-ignore format: a table
const STORES: Record<string, [f3: number, size: number, fp: boolean]> = {
  sb: [0, 1, false], sh: [1, 2, false], sw: [2, 4, false], sd: [3, 8, false], fsw: [2, 4, true],
  fsd: [3, 8, true],
};
const BRANCHES: Record<string, number> = { beq: 0, bne: 1, blt: 4, bge: 5, bltu: 6, bgeu: 7 };
// biome-ignore format: a table
const AMOS: Record<string, number> = {
  amoswap: 0x01, amoadd: 0x00, amoxor: 0x04, amoand: 0x0c, amoor: 0x08, amomin: 0x10, amomax: 0x14,
  amominu: 0x18, amomaxu: 0x1c,
};
const RM_NAMES = ["rne", "rtz", "rdn", "rup", "rmm", "rm5", "rm6", "dyn"];

export const enc = {
  r: (op: string, rd: number, rs1: number, rs2: number): Insn => {
    const [o, f7, f3] = R_OPS[op]!;
    return i4(encR(f7, rs2, rs1, f3, rd, o), `${op} ${xn(rd)}, ${xn(rs1)}, ${xn(rs2)}`);
  },
  i: (op: string, rd: number, rs1: number, imm: number): Insn => {
    const [o, f3] = I_OPS[op]!;
    return i4(encI(imm, rs1, f3, rd, o), `${op} ${xn(rd)}, ${xn(rs1)}, ${imm}`);
  },
  shift: (op: string, rd: number, rs1: number, sh: number): Insn => {
    const [o, f3, hi] = SHIFT_OPS[op]!;
    return i4(encI(hi | sh, rs1, f3, rd, o), `${op} ${xn(rd)}, ${xn(rs1)}, ${sh}`);
  },
  lui: (rd: number, imm20: number): Insn =>
    i4(((imm20 & 0xfffff) << 12) | (rd << 7) | 0x37, `lui ${xn(rd)}, ${hex(imm20 & 0xfffff)}`),
  auipc: (rd: number, imm20: number): Insn =>
    i4(((imm20 & 0xfffff) << 12) | (rd << 7) | 0x17, `auipc ${xn(rd)}, ${hex(imm20 & 0xfffff)}`),
  load: (op: string, rd: number, rs1: number, imm: number): Insn => {
    const [f3, , fp] = LOADS[op]!;
    return i4(encI(imm, rs1, f3, rd, fp ? 0x07 : 0x03), `${op} ${fp ? fn(rd) : xn(rd)}, ${imm}(${xn(rs1)})`);
  },
  store: (op: string, rs2: number, rs1: number, imm: number): Insn => {
    const [f3, , fp] = STORES[op]!;
    return i4(
      encS(imm, rs2, rs1, f3, fp ? 0x27 : 0x23),
      `${op} ${fp ? fn(rs2) : xn(rs2)}, ${imm}(${xn(rs1)})`,
    );
  },
  branch: (op: string, rs1: number, rs2: number, off: number): Insn =>
    i4(encB(off, rs2, rs1, BRANCHES[op]!), `${op} ${xn(rs1)}, ${xn(rs2)}, ${off >= 0 ? "+" : ""}${off}`),
  jal: (rd: number, off: number): Insn => i4(encJ(off, rd), `jal ${xn(rd)}, ${off >= 0 ? "+" : ""}${off}`),
  jalr: (rd: number, rs1: number, imm: number): Insn =>
    i4(encI(imm, rs1, 0, rd, 0x67), `jalr ${xn(rd)}, ${imm}(${xn(rs1)})`),
  csr: (f3: number, rd: number, csr: number, src: number): Insn => {
    const name = ["?", "csrrw", "csrrs", "csrrc", "?", "csrrwi", "csrrsi", "csrrci"][f3]!;
    const s = f3 >= 5 ? String(src) : xn(src);
    return i4(encI(csr, src, f3, rd, 0x73), `${name} ${xn(rd)}, ${hex(csr)}, ${s}`);
  },
  amo: (op: string, wide: boolean, aq: boolean, rl: boolean, rd: number, rs2: number, rs1: number): Insn => {
    const f5 = op === "lr" ? 0x02 : op === "sc" ? 0x03 : AMOS[op]!;
    const bits = (f5 << 27) | (+aq << 26) | (+rl << 25) | (rs2 << 20) | (rs1 << 15) | ((wide ? 3 : 2) << 12);
    const name = `${op}.${wide ? "d" : "w"}${aq ? ".aq" : ""}${rl ? ".rl" : ""}`;
    const args = op === "lr" ? `${xn(rd)}, (${xn(rs1)})` : `${xn(rd)}, ${xn(rs2)}, (${xn(rs1)})`;
    return i4(bits | (rd << 7) | 0x2f, `${name} ${args}`);
  },
  ecall: (): Insn => i4(0x00000073, "ecall"),
  ebreak: (): Insn => i4(0x00100073, "ebreak"),
  mret: (): Insn => i4(0x30200073, "mret"),
  wfi: (): Insn => i4(0x10500073, "wfi"),
  fence: (): Insn => i4(0x0ff0000f, "fence"),
  fenceI: (): Insn => i4(0x0000100f, "fence.i"),
  sfence: (rs1: number, rs2: number): Insn =>
    i4(encR(0x09, rs2, rs1, 0, 0, 0x73), `sfence.vma ${xn(rs1)}, ${xn(rs2)}`),
  /** OP-FP with funct7 = funct5 << 2 | fmt. */
  fp: (f5: number, dbl: boolean, f3: number, rd: number, rs1: number, rs2: number, text: string): Insn =>
    i4(encR((f5 << 2) | +dbl, rs2, rs1, f3, rd, 0x53), text),
  fma: (op: number, dbl: boolean, rm: number, rd: number, rs1: number, rs2: number, rs3: number): Insn => {
    const name = ["fmadd", "fmsub", "fnmsub", "fnmadd"][(op - 0x43) >> 2]!;
    return i4(
      (rs3 << 27) | (+dbl << 25) | (rs2 << 20) | (rs1 << 15) | (rm << 12) | (rd << 7) | op,
      `${name}.${dbl ? "d" : "s"} ${fn(rd)}, ${fn(rs1)}, ${fn(rs2)}, ${fn(rs3)}, ${RM_NAMES[rm]}`,
    );
  },
  // ---- RVC
  cAddi: (rd: number, imm: number): Insn =>
    i2(
      (((imm >> 5) & 1) << 12) | (rd << 7) | ((imm & 0x1f) << 2) | 1,
      rd === 0 ? "c.nop" : `c.addi ${xn(rd)}, ${imm}`,
    ),
  cAddiw: (rd: number, imm: number): Insn =>
    i2(
      (1 << 13) | (((imm >> 5) & 1) << 12) | (rd << 7) | ((imm & 0x1f) << 2) | 1,
      `c.addiw ${xn(rd)}, ${imm}`,
    ),
  cLi: (rd: number, imm: number): Insn =>
    i2((2 << 13) | (((imm >> 5) & 1) << 12) | (rd << 7) | ((imm & 0x1f) << 2) | 1, `c.li ${xn(rd)}, ${imm}`),
  cLui: (rd: number, imm6: number): Insn =>
    i2(
      (3 << 13) | (((imm6 >> 5) & 1) << 12) | (rd << 7) | ((imm6 & 0x1f) << 2) | 1,
      `c.lui ${xn(rd)}, ${hex(imm6 & 0x3f)}`,
    ),
  cAddi16sp: (imm: number): Insn =>
    i2(
      (3 << 13) |
        (((imm >> 9) & 1) << 12) |
        (2 << 7) |
        (((imm >> 4) & 1) << 6) |
        (((imm >> 6) & 1) << 5) |
        (((imm >> 7) & 3) << 3) |
        (((imm >> 5) & 1) << 2) |
        1,
      `c.addi16sp sp, ${imm}`,
    ),
  cAddi4spn: (rd: number, imm: number): Insn =>
    i2(
      (((imm >> 4) & 3) << 11) |
        (((imm >> 6) & 0xf) << 7) |
        (((imm >> 2) & 1) << 6) |
        (((imm >> 3) & 1) << 5) |
        ((rd - 8) << 2),
      `c.addi4spn ${xn(rd)}, sp, ${imm}`,
    ),
  cShift: (op: "c.slli" | "c.srli" | "c.srai", rd: number, sh: number): Insn => {
    const s = (((sh >> 5) & 1) << 12) | ((sh & 0x1f) << 2);
    if (op === "c.slli") return i2(s | (rd << 7) | 2, `c.slli ${xn(rd)}, ${sh}`);
    return i2(
      (4 << 13) | s | ((op === "c.srli" ? 0 : 1) << 10) | ((rd - 8) << 7) | 1,
      `${op} ${xn(rd)}, ${sh}`,
    );
  },
  cAndi: (rd: number, imm: number): Insn =>
    i2(
      (4 << 13) | (((imm >> 5) & 1) << 12) | (2 << 10) | ((rd - 8) << 7) | ((imm & 0x1f) << 2) | 1,
      `c.andi ${xn(rd)}, ${imm}`,
    ),
  cArith: (op: string, rd: number, rs2: number): Insn => {
    const k = ["c.sub", "c.xor", "c.or", "c.and", "c.subw", "c.addw"].indexOf(op);
    return i2(
      (4 << 13) | ((k >> 2) << 12) | (3 << 10) | ((rd - 8) << 7) | ((k & 3) << 5) | ((rs2 - 8) << 2) | 1,
      `${op} ${xn(rd)}, ${xn(rs2)}`,
    );
  },
  cMv: (rd: number, rs2: number): Insn =>
    i2((4 << 13) | (rd << 7) | (rs2 << 2) | 2, `c.mv ${xn(rd)}, ${xn(rs2)}`),
  cAdd: (rd: number, rs2: number): Insn =>
    i2((4 << 13) | (1 << 12) | (rd << 7) | (rs2 << 2) | 2, `c.add ${xn(rd)}, ${xn(rs2)}`),
  cJr: (rs1: number): Insn => i2((4 << 13) | (rs1 << 7) | 2, `c.jr ${xn(rs1)}`),
  cJalr: (rs1: number): Insn => i2((4 << 13) | (1 << 12) | (rs1 << 7) | 2, `c.jalr ${xn(rs1)}`),
  cEbreak: (): Insn => i2(0x9002, "c.ebreak"),
  cJ: (off: number): Insn =>
    i2(
      (5 << 13) |
        (((off >> 11) & 1) << 12) |
        (((off >> 4) & 1) << 11) |
        (((off >> 8) & 3) << 9) |
        (((off >> 10) & 1) << 8) |
        (((off >> 6) & 1) << 7) |
        (((off >> 7) & 1) << 6) |
        (((off >> 1) & 7) << 3) |
        (((off >> 5) & 1) << 2) |
        1,
      `c.j ${off >= 0 ? "+" : ""}${off}`,
    ),
  cBranch: (nez: boolean, rs1: number, off: number): Insn =>
    i2(
      ((nez ? 7 : 6) << 13) |
        (((off >> 8) & 1) << 12) |
        (((off >> 3) & 3) << 10) |
        ((rs1 - 8) << 7) |
        (((off >> 6) & 3) << 5) |
        (((off >> 1) & 3) << 3) |
        (((off >> 5) & 1) << 2) |
        1,
      `c.${nez ? "bnez" : "beqz"} ${xn(rs1)}, ${off >= 0 ? "+" : ""}${off}`,
    ),
  /** c.lw/c.ld/c.sw/c.sd/c.fld/c.fsd: rd/rs2' and rs1' in x8..x15 (f8..f15). */
  cMem: (op: string, r: number, rs1: number, imm: number): Insn => {
    const f3 = { "c.fld": 1, "c.lw": 2, "c.ld": 3, "c.fsd": 5, "c.sw": 6, "c.sd": 7 }[op]!;
    const word = op === "c.lw" || op === "c.sw";
    const mid = word ? (((imm >> 2) & 1) << 6) | (((imm >> 6) & 1) << 5) : ((imm >> 6) & 3) << 5;
    const fp = op === "c.fld" || op === "c.fsd";
    return i2(
      (f3 << 13) | (((imm >> 3) & 7) << 10) | ((rs1 - 8) << 7) | mid | ((r - 8) << 2),
      `${op} ${fp ? fn(r) : xn(r)}, ${imm}(${xn(rs1)})`,
    );
  },
  /** c.lwsp/c.ldsp/c.fldsp and c.swsp/c.sdsp/c.fsdsp. */
  cSp: (op: string, r: number, imm: number): Insn => {
    const fp = op.startsWith("c.f");
    const text = `${op} ${fp ? fn(r) : xn(r)}, ${imm}(sp)`;
    switch (op) {
      case "c.lwsp":
        return i2(
          (2 << 13) |
            (((imm >> 5) & 1) << 12) |
            (r << 7) |
            (((imm >> 2) & 7) << 4) |
            (((imm >> 6) & 3) << 2) |
            2,
          text,
        );
      case "c.ldsp":
      case "c.fldsp":
        return i2(
          ((op === "c.ldsp" ? 3 : 1) << 13) |
            (((imm >> 5) & 1) << 12) |
            (r << 7) |
            (((imm >> 3) & 3) << 5) |
            (((imm >> 6) & 7) << 2) |
            2,
          text,
        );
      case "c.swsp":
        return i2((6 << 13) | (((imm >> 2) & 0xf) << 9) | (((imm >> 6) & 3) << 7) | (r << 2) | 2, text);
      default: // c.sdsp, c.fsdsp
        return i2(
          ((op === "c.sdsp" ? 7 : 5) << 13) |
            (((imm >> 3) & 7) << 10) |
            (((imm >> 6) & 7) << 7) |
            (r << 2) |
            2,
          text,
        );
    }
  },
};

const sext12 = (v: bigint): bigint => BigInt.asIntN(12, v);

/** The standard `li` expansion: lui/addiw for 32-bit values, else a shorter constant shifted, plus addi. */
export function li(rd: number, value: bigint): Insn[] {
  const v = BigInt.asIntN(64, value);
  if (v >= -(1n << 31n) && v < 1n << 31n) {
    const lo = sext12(v);
    const hi = Number(((v - lo) >> 12n) & 0xfffffn);
    if (hi === 0) return [enc.i("addi", rd, 0, Number(lo))];
    const out = [enc.lui(rd, hi)];
    if (lo !== 0n) out.push(enc.i("addiw", rd, rd, Number(lo)));
    return out;
  }
  const lo = sext12(v);
  let rest = (v - lo) >> 12n;
  let shift = 12;
  while ((rest & 1n) === 0n) {
    rest >>= 1n;
    shift++;
  }
  const out = [...li(rd, rest), enc.shift("slli", rd, rd, shift)];
  if (lo !== 0n) out.push(enc.i("addi", rd, rd, Number(lo)));
  return out;
}

/** Put `addr - imm` in register `rd` for an access at `imm(rd)`: gp-relative in RAM, lui below 2 GiB. */
function addrInto(rd: number, addr: number, imm: number): Insn[] {
  const base = addr - imm;
  if (base >= RAM_BASE) {
    const d = base - GP;
    if (d >= -2048 && d < 2048) return [enc.i("addi", rd, GP_REG, d)];
    const lo = Number(sext12(BigInt(d)));
    const out = [enc.lui(rd, ((d - lo) >> 12) & 0xfffff), enc.r("add", rd, rd, GP_REG)];
    if (lo !== 0) out.push(enc.i("addi", rd, rd, lo));
    return out;
  }
  return li(rd, BigInt(base));
}

// ---------------------------------------------------------------------- the program

export type Region =
  | "data"
  | "ro"
  | "hole"
  | "alt"
  | "ramend"
  | "mmio"
  | "unmapped"
  | "alias"
  | "code"
  | "pt"
  | "handler";

/** One step of a program; `emitItem` shows the instructions each kind becomes. */
export type Item =
  | { k: "alu"; op: string; rd: number; rs1: number; rs2: number }
  | { k: "alui"; op: string; rd: number; rs1: number; imm: number }
  | { k: "upper"; auipc: boolean; rd: number; imm: number }
  | { k: "li"; rd: number; value: bigint }
  | { k: "calu"; op: string; rd: number; rs: number; imm: number }
  | {
      k: "mem";
      op: string;
      reg: number;
      region: Region;
      off: number;
      form: "base" | "c" | "sp";
      base: number;
    }
  | { k: "fp"; f5: number; dbl: boolean; f3: number; rd: number; rs1: number; rs2: number }
  | { k: "fma"; op: number; dbl: boolean; rm: number; rd: number; rs1: number; rs2: number; rs3: number }
  | { k: "fli"; fd: number; bits: bigint; dbl: boolean }
  | { k: "csr"; f3: number; rd: number; csr: number; src: number }
  | {
      k: "amo";
      op: string;
      wide: boolean;
      aq: boolean;
      rl: boolean;
      rd: number;
      rs2: number;
      region: Region;
      off: number;
    }
  | {
      k: "lrsc";
      wide: boolean;
      rd: number;
      rs2: number;
      between: "none" | "alu" | "store-same" | "store-other" | "sc-only";
      off: number;
    }
  | { k: "branch"; op: string; rs1: number; rs2: number; skip: number; compressed: boolean }
  | { k: "jal"; rd: number; skip: number; compressed: boolean }
  | { k: "jalr"; rd: number; skip: number; odd: boolean; compressed: boolean }
  | { k: "badjump"; region: Region; off: number; compressed: boolean }
  | { k: "trap"; which: "ecall" | "ebreak" | "c.ebreak" | "illegal16" | "illegal32" | "csr-ro" }
  | { k: "fence"; which: "fence" | "fence.i" | "sfence" }
  | { k: "smc"; from: Item; to: Item; fence: boolean; alias: boolean; before: boolean }
  | {
      k: "pte";
      table: 0 | 1;
      page: number;
      flip: number;
      sfence: "all" | "va";
      probe: "none" | "load" | "store";
      off: number;
    }
  | { k: "satp"; b: boolean; sfence: boolean }
  | { k: "valias"; alias: boolean }
  | { k: "status"; set: boolean; bits: "mprv-s" | "mprv-u" | "sum" | "mxr" | "fs" }
  | { k: "loop"; iters: number; body: Item[]; compressedDec: boolean }
  | { k: "call"; body: Item[]; times: number; compressedRet: boolean };

export type Mode = "M" | "S" | "U";

export interface Program {
  mode: Mode;
  /** The tier compared with the interpreter: "always" (everything translated) or "on" (hot code, so tiers change mid-run). */
  tier: "always" | "on";
  /** Traps into M-mode leave `run` (EXIT_M) and the driver resumes, instead of the in-RAM handler. */
  exits: boolean;
  /** medeleg: the exceptions from S/U-mode that go to the S-mode handler instead. */
  deleg: number;
  items: Item[];
  /** Initial x1..x31 (reserved registers are set by the driver) and f0..f31. */
  x: bigint[];
  f: bigint[];
  fcsr: number;
  /** Fill of the data pages (a seed). */
  fill: number;
  /** Where the program starts in its code pages (offset from page 1). */
  start: number;
  /**
   * Under Sv39: the PTE flags of data pages 4..7, the read-only page, ALT, and (W, A, D only)
   * the code pages; -1 for the usual ones.
   */
  pte: number[];
  /** mstatus.SUM and MXR at the start; mcounteren and scounteren. */
  sum: boolean;
  mxr: boolean;
  counteren: number;
  /** The run(budget) calls, repeated in turn. */
  budgets: number[];
}

// PTE bits (privileged spec 4.3.1)
const PTE_V = 1;
const PTE_R = 2;
const PTE_W = 4;
const PTE_X = 8;
const PTE_U = 16;
const PTE_A = 64;
const PTE_D = 128;

// ------------------------------------------------------------------------ assembler

type Op = Insn | { label: string } | { branch: Branch };
interface Branch {
  /** The target label. */
  to: string;
  /** JALR forms: the label of the auipc that holds the base, and whether to set bit 0 of the target. */
  from?: string;
  odd?: boolean;
  /** Which encodings are allowed, smallest first: the assembler takes the first that reaches. */
  kind: "b" | "cb" | "j" | "cj";
  op: string;
  rs1: number;
  rs2: number;
  rd: number;
  /** Chosen size (2, 4 or 8 for a far branch: inverted b over a jal). */
  size?: number;
}

const INVERT: Record<string, string> = {
  beq: "bne",
  bne: "beq",
  blt: "bge",
  bge: "blt",
  bltu: "bgeu",
  bgeu: "bltu",
};

interface Ctx {
  mode: Mode;
  next: number;
}

/** Absolute address of an access to `region` at `off` (offsets are reduced into the region). */
function regionAddr(region: Region, off: number, store: boolean): number {
  switch (region) {
    case "data":
      return DATA + (off % 0x4000);
    case "ro":
      return RO + (off % PAGE);
    case "hole":
      return HOLE + (off % PAGE);
    case "alt":
      return ALT + (off % PAGE);
    case "ramend":
      return RAM_END_PAGE + PAGE - 1 - (off % 16);
    case "mmio":
      return MMIO + (off % MMIO_SIZE);
    case "unmapped":
      return off % 2 === 0 ? UNMAPPED + (off % PAGE) : off % PAGE;
    case "alias":
      // Stores only into the data pages through the alias; loads anywhere in RAM.
      return store ? ALIAS + (DATA - RAM_BASE) + (off % 0x4000) : ALIAS + (off % (RAM_PAGES * PAGE));
    case "code":
      return CODE + (off % (CODE_END - CODE));
    case "pt":
      return PT + (off % (7 * PAGE));
    case "handler":
      return HANDLER + (off % PAGE);
  }
}

function emitItems(items: readonly Item[], ctx: Ctx, out: Op[], end: string, depth: number): void {
  const labels = items.map(() => `L${ctx.next++}`);
  const target = (i: number, skip: number): string =>
    i + 1 + skip < items.length ? labels[i + 1 + skip]! : end;
  items.forEach((item, i) => {
    out.push({ label: labels[i]! });
    const from = out.length;
    emitItem(item, ctx, out, () => target(i, (item as { skip?: number }).skip ?? 0), depth);
    annotate(item, out, from);
  });
}

/** A comment on the listing line that says what an item is for (the first instruction; the access for memory items). */
function annotate(item: Item, out: Op[], from: number): void {
  const insns = out.slice(from).filter((o): o is Insn => "text" in o);
  let note = "";
  let at = insns[0];
  switch (item.k) {
    case "mem":
    case "amo":
      note = `${item.region} ${item.k === "mem" && item.form === "sp" ? "(sp)" : `+${hex(item.off)}`}`;
      at = insns[insns.length - 1];
      break;
    case "lrsc":
      note = `LR/SC, ${item.between}`;
      break;
    case "loop":
      note = `loop x${item.iters}`;
      break;
    case "call":
      // The calls are branches, placed later: the note goes on the return.
      note = `return (the subroutine is called ${item.times}x just below)`;
      at = insns[insns.length - 1];
      break;
    case "badjump":
      note = `jump to ${item.region}: a fetch fault resumes at ra`;
      break;
    case "valias":
      note = item.alias ? "continue at the 1 GiB alias" : "continue at the physical address";
      break;
    case "status":
      note = `${item.set ? "set" : "clear"} ${item.bits}`;
      break;
    case "satp":
      note = `switch to table ${item.b ? "B" : "A"}`;
      break;
    default:
      return;
  }
  if (at !== undefined && !at.text.includes(";")) {
    const idx = out.indexOf(at);
    out[idx] = { ...at, text: `${at.text}    ; ${note}` };
  }
}

function emitItem(item: Item, ctx: Ctx, out: Op[], target: () => string, depth: number): void {
  const push = (...insns: Insn[]) => out.push(...insns);
  switch (item.k) {
    case "alu":
      return void push(enc.r(item.op, item.rd, item.rs1, item.rs2));
    case "alui":
      if (item.op in SHIFT_OPS) return void push(enc.shift(item.op, item.rd, item.rs1, item.imm));
      return void push(enc.i(item.op, item.rd, item.rs1, item.imm));
    case "upper":
      return void push(item.auipc ? enc.auipc(item.rd, item.imm) : enc.lui(item.rd, item.imm));
    case "li":
      return void push(...li(item.rd, item.value));
    case "calu":
      return void push(...calu(item));
    case "mem":
      return void push(...memAccess(item));
    case "fp":
      return void push(fpInsn(item));
    case "fma":
      return void push(enc.fma(item.op, item.dbl, item.rm, item.rd, item.rs1, item.rs2, item.rs3));
    case "fli":
      return void push(
        ...li(T5, item.dbl ? item.bits : BigInt.asIntN(32, item.bits)),
        enc.fp(0x1e, item.dbl, 0, item.fd, T5, 0, `fmv.${item.dbl ? "d.x" : "w.x"} ${fn(item.fd)}, t5`),
      );
    case "csr":
      return void push(enc.csr(item.f3, item.rd, item.csr, item.src));
    case "amo": {
      const a = regionAddr(item.region, item.off, item.op !== "lr");
      return void push(
        ...addrInto(T6, a, 0),
        enc.amo(item.op, item.wide, item.aq, item.rl, item.rd, item.rs2, T6),
      );
    }
    case "lrsc": {
      const a = DATA + (item.off % 0x4000);
      push(...addrInto(T6, a, 0));
      if (item.between !== "sc-only") push(enc.amo("lr", item.wide, false, false, item.rd, 0, T6));
      if (item.between === "alu") push(enc.r("add", item.rd, item.rd, item.rs2));
      if (item.between === "store-same") push(enc.store("sw", item.rs2, T6, 0));
      if (item.between === "store-other") push(enc.store("sd", item.rs2, T6, 64));
      return void push(enc.amo("sc", item.wide, false, true, item.rd, item.rs2, T6));
    }
    case "branch": {
      const c = item.compressed && item.rs1 >= 8 && item.rs1 < 16 && (item.op === "beq" || item.op === "bne");
      return void out.push({
        branch: {
          to: target(),
          kind: c ? "cb" : "b",
          op: item.op,
          rs1: item.rs1,
          rs2: c ? 0 : item.rs2,
          rd: 0,
        },
      });
    }
    case "jal":
      return void out.push({
        branch: {
          to: target(),
          kind: item.compressed && item.rd === 0 ? "cj" : "j",
          op: "jal",
          rs1: 0,
          rs2: 0,
          rd: item.rd,
        },
      });
    case "jalr": {
      // auipc t5, 0 / [addi t5, t5, off] / jalr rd, off(t5) or c.jr/c.jalr t5: resolved after layout.
      const here = `J${ctx.next++}`;
      out.push({ label: here });
      push(enc.auipc(T5, 0));
      return void out.push({
        branch: {
          to: target(),
          kind: "j",
          op: item.compressed ? (item.rd === RA ? "c.jalr" : "c.jr") : "jalr",
          rs1: T5,
          rs2: 0,
          rd: item.rd,
          from: here,
          odd: item.odd,
        },
      });
    }
    case "badjump": {
      // In M-mode the RAM pages are executable: jump to the bus instead.
      const region = ctx.mode === "M" && item.region !== "mmio" ? "unmapped" : item.region;
      const a = regionAddr(region, item.off, false);
      const a2 = a - (a % 2);
      if (item.compressed) return void push(...addrInto(T5, a2, 0), enc.cJalr(T5));
      const lo = Number(sext12(BigInt(item.off)));
      return void push(...addrInto(T5, a2, lo & ~1), enc.jalr(RA, T5, lo & ~1));
    }
    case "trap":
      switch (item.which) {
        case "ecall":
          return void push(enc.ecall());
        case "ebreak":
          return void push(enc.ebreak());
        case "c.ebreak":
          return void push(enc.cEbreak());
        case "illegal16":
          return void push(i2(0, "c.unimp"));
        case "illegal32":
          return void push(i4(0xffffffff, ".word 0xffffffff"));
        case "csr-ro":
          return void push(enc.csr(1, T5, C.CSR_CYCLE, T5)); // a write to a read-only CSR
      }
      return;
    case "fence":
      return void push(
        item.which === "fence" ? enc.fence() : item.which === "fence.i" ? enc.fenceI() : enc.sfence(0, 0),
      );
    case "smc": {
      // auipc t6, 0 / li t5, <new> / sw t5, off(t6) / [fence.i], with the old instruction right
      // after (replaced before it first runs) or right before (it ran already: in a loop or a
      // call the next pass runs the new one). Through the 1 GiB alias when asked (S/U; in
      // M-mode that store faults and nothing changes).
      const to = encodeOne(item.to);
      const from = encodeOne(item.from);
      const old = { ...from, text: `${from.text}    ; rewritten to: ${to.text}` };
      const body = [...li(T5, BigInt(to.bits | 0))];
      if (item.alias) body.push(...li(T4, BigInt(ALIAS - RAM_BASE)), enc.r("add", T6, T6, T4));
      const tail = item.fence ? [enc.fenceI()] : [];
      if (item.before) return void push(old, enc.auipc(T6, 0), ...body, enc.store("sw", T5, T6, -4), ...tail);
      const dist = 4 * (1 + body.length + 1 + tail.length); // from the auipc to the old instruction
      return void push(enc.auipc(T6, 0), ...body, enc.store("sw", T5, T6, dist), ...tail, old);
    }
    case "pte": {
      // [probe the page: a load or store that fills the TLB] / flip PTE bits / sfence.vma /
      // [the same access again: it must see the new PTE].
      const l0 = PT + (4 + item.table) * PAGE;
      const page = [4, 5, 6, 7, 8, 9, 10][item.page % 7]!;
      const probe =
        item.probe === "load"
          ? [enc.load("ld", T3, T4, 0)]
          : item.probe === "store"
            ? [enc.store("sd", T3, T4, 0)]
            : [];
      if (probe.length > 0) push(...addrInto(T4, P(page) + (item.off & 0xff8), 0), ...probe);
      push(
        ...addrInto(T6, l0 + 8 * page, 0),
        enc.load("ld", T5, T6, 0),
        enc.i("xori", T5, T5, item.flip & 0xdf),
      );
      push({
        ...enc.store("sd", T5, T6, 0),
        text: `sd t5, 0(t6)    ; PTE of 0x${P(page).toString(16)}, table ${"AB"[item.table]}`,
      });
      if (item.sfence === "all") push(enc.sfence(0, 0));
      else push(...addrInto(T6, P(page), 0), enc.sfence(T6, 0));
      return void push(...probe);
    }
    case "valias": {
      // S/U-mode: continue at the next instruction through the 1 GiB alias (or back at its own
      // address): the same physical code at another virtual address.
      if (ctx.mode === "M") return;
      const base = item.alias
        ? [enc.lui(T4, ALIAS >>> 12)]
        : [enc.i("addi", T4, 0, 1), enc.shift("slli", T4, T4, 31)];
      const seq = [
        enc.shift("slli", T5, T5, 34),
        enc.shift("srli", T5, T5, 34),
        ...base,
        enc.r("or", T5, T5, T4),
      ];
      const dist = 4 * (1 + seq.length + 1);
      return void push(enc.auipc(T5, 0), ...seq, enc.jalr(0, T5, dist));
    }
    case "status": {
      // mstatus in M-mode, sstatus below (where MPRV and MPP are not there: SUM, MXR, FS are).
      const reg = ctx.mode === "M" ? C.CSR_MSTATUS : C.CSR_SSTATUS;
      const bits = item.bits;
      const mask =
        bits === "sum"
          ? C.MSTATUS_SUM
          : bits === "mxr"
            ? C.MSTATUS_MXR
            : bits === "fs"
              ? C.MSTATUS_FS
              : C.MSTATUS_MPRV;
      push(...li(T5, BigInt(mask)), enc.csr(item.set ? 2 : 3, 0, reg, T5));
      if (item.set && (bits === "mprv-s" || bits === "mprv-u")) {
        // MPP: S (01) or U (00), which loads and stores then use.
        push(...li(T5, BigInt(C.MSTATUS_MPP)), enc.csr(3, 0, C.CSR_MSTATUS, T5));
        if (bits === "mprv-s")
          push(...li(T5, 1n << BigInt(C.MSTATUS_MPP_SHIFT)), enc.csr(2, 0, C.CSR_MSTATUS, T5));
      }
      return;
    }
    case "satp":
      push(enc.csr(1, 0, C.CSR_SATP, item.b ? SATP_B_REG : SATP_A_REG));
      if (item.sfence) push(enc.sfence(0, 0));
      return;
    case "loop": {
      const cnt = LOOP_REGS[depth]!;
      const top = `T${ctx.next++}`;
      const dec = `D${ctx.next++}`;
      push(enc.i("addi", cnt, 0, item.iters));
      out.push({ label: top });
      emitItems(item.body, ctx, out, dec, depth + 1);
      out.push({ label: dec });
      push(item.compressedDec ? enc.cAddi(cnt, -1) : enc.i("addi", cnt, cnt, -1));
      return void out.push({ branch: { to: top, kind: "b", op: "bne", rs1: cnt, rs2: 0, rd: 0 } });
    }
    case "call": {
      const sub = `S${ctx.next++}`;
      const ret = `R${ctx.next++}`;
      const over = `O${ctx.next++}`;
      out.push({ branch: { to: over, kind: "cj", op: "jal", rs1: 0, rs2: 0, rd: 0 } });
      out.push({ label: sub });
      emitItems(item.body, ctx, out, ret, depth);
      out.push({ label: ret });
      push(item.compressedRet ? enc.cJr(RA) : enc.jalr(0, RA, 0));
      out.push({ label: over });
      for (let t = 0; t < item.times; t++)
        out.push({ branch: { to: sub, kind: "j", op: "jal", rs1: 0, rs2: 0, rd: RA } });
      return;
    }
    default: {
      const unknown: never = item;
      throw new Error(`no encoding for item kind ${(unknown as { k: string }).k}`);
    }
  }
}

/** The single instruction of an ALU-like item (SMC payloads). */
function encodeOne(item: Item): Insn {
  const out: Op[] = [];
  emitItem(item, { mode: "M", next: 0 }, out, () => "", 0);
  const insn = out[0] as Insn;
  if (out.length !== 1 || insn.len !== 4) throw new Error("smc payload must be one 32-bit instruction");
  return insn;
}

function calu(item: Extract<Item, { k: "calu" }>): Insn[] {
  const { op, rd, rs, imm } = item;
  if (op === "c.addi16sp") {
    // sp is a base register: move it and back.
    const d = 16 * (imm & 31 || 1);
    return [enc.cAddi16sp(d), enc.cAddi16sp(-d)];
  }
  return [caluOne(op, rd, rs, imm)];
}

function caluOne(op: string, rd: number, rs: number, imm: number): Insn {
  switch (op) {
    case "c.addi":
      return enc.cAddi(rd, imm);
    case "c.addiw":
      return enc.cAddiw(rd, imm);
    case "c.li":
      return enc.cLi(rd, imm);
    case "c.lui":
      return enc.cLui(rd, imm === 0 ? 1 : imm);
    case "c.slli":
    case "c.srli":
    case "c.srai":
      return enc.cShift(op, rd, imm & 63);
    case "c.andi":
      return enc.cAndi(rd, imm);
    case "c.mv":
      return enc.cMv(rd, rs);
    case "c.add":
      return enc.cAdd(rd, rs);
    case "c.addi4spn":
      return enc.cAddi4spn(rd, (imm & 0xff || 1) << 2);
    default:
      return enc.cArith(op, rd, rs);
  }
}

function fpInsn(item: Extract<Item, { k: "fp" }>): Insn {
  const { f5, dbl, f3, rd, rs1 } = item;
  // rs2 selects the source format (fcvt.s.d / fcvt.d.s) or the integer type; 0 where unused.
  const rs2 =
    f5 === 0x08
      ? dbl
        ? 0
        : 1
      : f5 === 0x18 || f5 === 0x1a
        ? item.rs2 & 3
        : f5 <= 0x05 || f5 === 0x14
          ? item.rs2
          : 0;
  const s = dbl ? "d" : "s";
  const rm = RM_NAMES[f3]!;
  const name = FP_NAMES[f5];
  let text: string;
  switch (f5) {
    case 0x00:
    case 0x01:
    case 0x02:
    case 0x03:
      text = `${name}.${s} ${fn(rd)}, ${fn(rs1)}, ${fn(rs2)}, ${rm}`;
      break;
    case 0x0b:
      text = `fsqrt.${s} ${fn(rd)}, ${fn(rs1)}, ${rm}`;
      break;
    case 0x04:
      text = `${["fsgnj", "fsgnjn", "fsgnjx"][f3]}.${s} ${fn(rd)}, ${fn(rs1)}, ${fn(rs2)}`;
      break;
    case 0x05:
      text = `${["fmin", "fmax"][f3]}.${s} ${fn(rd)}, ${fn(rs1)}, ${fn(rs2)}`;
      break;
    case 0x08:
      text = `fcvt.${s}.${dbl ? "s" : "d"} ${fn(rd)}, ${fn(rs1)}, ${rm}`;
      break;
    case 0x14:
      text = `${["fle", "flt", "feq"][f3]}.${s} ${xn(rd)}, ${fn(rs1)}, ${fn(rs2)}`;
      break;
    case 0x18:
      text = `fcvt.${["w", "wu", "l", "lu"][rs2]}.${s} ${xn(rd)}, ${fn(rs1)}, ${rm}`;
      break;
    case 0x1a:
      text = `fcvt.${s}.${["w", "wu", "l", "lu"][rs2]} ${fn(rd)}, ${xn(rs1)}, ${rm}`;
      break;
    case 0x1c:
      text =
        f3 === 0 ? `fmv.x.${dbl ? "d" : "w"} ${xn(rd)}, ${fn(rs1)}` : `fclass.${s} ${xn(rd)}, ${fn(rs1)}`;
      break;
    default:
      text = `fmv.${dbl ? "d" : "w"}.x ${fn(rd)}, ${xn(rs1)}`;
  }
  return enc.fp(f5, dbl, f3, rd, rs1, rs2, text);
}
const FP_NAMES: Record<number, string> = { 0: "fadd", 1: "fsub", 2: "fmul", 3: "fdiv" };

function memAccess(item: Extract<Item, { k: "mem" }>): Insn[] {
  const store = item.op in STORES || item.op.startsWith("c.s") || item.op.startsWith("c.fs");
  const a = regionAddr(item.region, item.off, store);
  if (item.form === "sp") {
    // sp-relative: the data pages only, sp = GP.
    const size = item.op.includes("w") ? 4 : 8;
    const imm = (item.off % 64) * size;
    return [enc.cSp(item.op, item.reg, imm)];
  }
  if (item.form === "c") {
    const size = item.op === "c.lw" || item.op === "c.sw" ? 4 : 8;
    const imm = (item.off % 32) * size;
    return [...addrInto(item.base, a, imm), enc.cMem(item.op, item.reg, item.base, imm)];
  }
  const imm = Number(sext12(BigInt(item.off >> 4)));
  const insn = store ? enc.store(item.op, item.reg, T6, imm) : enc.load(item.op, item.reg, T6, imm);
  return [...addrInto(T6, a, imm), insn];
}

/** Lay out and encode: `at` is the start address; returns the instructions with their addresses. */
export function assemble(p: Program, at: number): Placed[] {
  const ops: Op[] = [];
  const ctx: Ctx = { mode: p.mode, next: 0 };
  emitItems(p.items, ctx, ops, "END", 0);
  ops.push({ label: "END" }, { ...enc.ecall(), text: "ecall    ; the end" });
  return layout(ops, at);
}

export interface Placed {
  addr: number;
  insn: Insn;
}

function layout(ops: Op[], at: number): Placed[] {
  // Sizes: the smallest form that reaches, grown until stable (a grown branch can push another out of reach).
  const sizeOf = (o: Op): number =>
    "label" in o ? 0 : "branch" in o ? (o.branch.size ??= minSize(o.branch)) : o.len;
  for (let round = 0; ; round++) {
    const where = new Map<string, number>();
    let pc = at;
    for (const o of ops) {
      if ("label" in o) where.set(o.label, pc);
      pc += sizeOf(o);
    }
    let changed = false;
    pc = at;
    for (const o of ops) {
      if ("branch" in o) {
        const b = o.branch;
        const from = b.op === "jalr" || b.op === "c.jr" || b.op === "c.jalr" ? where.get(b.from!)! : pc;
        const need = sizeFor(b, where.get(b.to)! - from);
        if (need > b.size!) {
          b.size = need;
          changed = true;
        }
      }
      pc += sizeOf(o);
    }
    if (!changed) {
      const out: Placed[] = [];
      pc = at;
      for (const o of ops) {
        if ("label" in o) continue;
        const insns = "branch" in o ? encodeBranch(o.branch, where, pc) : [o];
        for (const insn of insns) {
          out.push({ addr: pc, insn });
          pc += insn.len;
        }
      }
      return out;
    }
    if (round > 50) throw new Error("assembler: branch sizes do not settle");
  }
}

function minSize(b: Branch): number {
  if (b.op === "jalr") return 4;
  if (b.op === "c.jr" || b.op === "c.jalr") return 6; // addi + c.jr
  return b.kind === "cb" || b.kind === "cj" ? 2 : 4;
}

function sizeFor(b: Branch, off: number): number {
  if (b.op === "jalr") return off >= -2048 && off < 2048 ? 4 : 12;
  if (b.op === "c.jr" || b.op === "c.jalr") return off >= -2048 && off < 2048 ? 6 : 14;
  if (b.kind === "cb" && off >= -256 && off < 256) return 2;
  if (b.kind === "cj" && off >= -2048 && off < 2048) return 2;
  if (b.op === "jal") return 4;
  return off >= -4096 && off < 4096 ? 4 : 8;
}

function encodeBranch(b: Branch, where: Map<string, number>, pc: number): Insn[] {
  const to = where.get(b.to)!;
  const off = to - pc;
  if (b.op === "jalr" || b.op === "c.jr" || b.op === "c.jalr") {
    // t5 holds the auipc's address (the label `from`), `pc` is just after it.
    const d = to - where.get(b.from!)!;
    const odd = b.odd ? 1 : 0; // bit 0 of the target: jalr clears it
    const far = b.size! > (b.op === "jalr" ? 4 : 6);
    const pre: Insn[] = [];
    let imm = d + odd;
    if (far) {
      // lui t4, hi / add t5, t5, t4 (then the low part as below)
      const lo = Number(sext12(BigInt(d)));
      pre.push(enc.lui(T4, ((d - lo) >> 12) & 0xfffff), enc.r("add", T5, T5, T4));
      imm = lo + odd;
    }
    if (b.op === "jalr") return [...pre, enc.jalr(b.rd, T5, imm)];
    pre.push(enc.i("addi", T5, T5, imm));
    return [...pre, b.op === "c.jalr" ? enc.cJalr(T5) : enc.cJr(T5)];
  }
  if (b.size === 2) return [b.kind === "cj" ? enc.cJ(off) : enc.cBranch(b.op === "bne", b.rs1, off)];
  if (b.op === "jal") return [enc.jal(b.rd, off)];
  if (b.size === 4) return [enc.branch(b.op, b.rs1, b.rs2, off)];
  // Far: the inverted branch over a jal.
  return [enc.branch(INVERT[b.op]!, b.rs1, b.rs2, 8), enc.jal(0, off - 4)];
}

// ---------------------------------------------------------------------- the handler

const T3 = 28;

/**
 * A trap handler: M-mode at HANDLER (every trap not delegated), or S-mode at S_HANDLER (the
 * exceptions a program delegates in medeleg). It logs cause, epc, tval and status (a ring of
 * LOG_ENTRIES at save+0x40, the count at save+24), then resumes: at `ra` after a fetch fault
 * (the program got there by a JALR that linked ra), in WFI after the ECALL at the program's
 * end (its physical address at save+32), else after the instruction. Registers are restored.
 */
function handlerCode(s: boolean): Placed[] {
  const csrr = (rd: number, csr: number) => enc.csr(2, rd, csr, 0);
  const b = (op: string, rs1: number, rs2: number, to: string): Op => ({
    branch: { to, kind: "b", op, rs1, rs2, rd: 0 },
  });
  const [scratch, cause, epc, tval, status] = s
    ? [C.CSR_SSCRATCH, C.CSR_SCAUSE, C.CSR_SEPC, C.CSR_STVAL, C.CSR_SSTATUS]
    : [C.CSR_MSCRATCH, C.CSR_MCAUSE, C.CSR_MEPC, C.CSR_MTVAL, C.CSR_MSTATUS];
  const LOG_OFF = LOG - SAVE;
  // The instruction's first halfword into t3: M-mode reads it at its physical address (t1);
  // S-mode at its virtual address (t2), with SUM set for a moment (U-mode code is on U pages).
  const fetchHalf: Insn[] = s
    ? [
        enc.lui(T3, C.MSTATUS_SUM >>> 12),
        enc.csr(2, T3, status, T3),
        enc.load("lhu", T1, T2, 0),
        enc.csr(1, 0, status, T3),
        enc.i("addi", T3, T1, 0),
      ]
    : [enc.load("lhu", T3, T1, 0)];
  const ops: Op[] = [
    enc.csr(1, T0, scratch, T0),
    enc.store("sd", T1, T0, 0),
    enc.store("sd", T2, T0, 8),
    enc.store("sd", T3, T0, 16),
    enc.load("ld", T1, T0, 24),
    enc.i("andi", T2, T1, LOG_ENTRIES - 1),
    enc.shift("slli", T2, T2, 5),
    enc.r("add", T2, T2, T0),
    csrr(T3, cause),
    enc.store("sd", T3, T2, LOG_OFF),
    csrr(T3, epc),
    enc.store("sd", T3, T2, LOG_OFF + 8),
    csrr(T3, tval),
    enc.store("sd", T3, T2, LOG_OFF + 16),
    csrr(T3, status),
    enc.store("sd", T3, T2, LOG_OFF + 24),
    enc.i("addi", T1, T1, 1),
    enc.store("sd", T1, T0, 24),
    csrr(T1, cause),
    enc.i("addi", T2, 0, C.CAUSE_FETCH_ACCESS),
    b("beq", T1, T2, "fetch"),
    enc.i("addi", T2, 0, C.CAUSE_FETCH_PAGE_FAULT),
    b("beq", T1, T2, "fetch"),
    // epc's physical address: code runs at its own address or through the alias (low 30 bits | RAM_BASE).
    csrr(T2, epc),
    enc.shift("slli", T2, T2, 34),
    enc.shift("srli", T2, T2, 34),
    enc.i("addi", T1, 0, 1),
    enc.shift("slli", T1, T1, 31),
    enc.r("or", T1, T2, T1),
    enc.load("ld", T3, T0, 32),
    b("beq", T1, T3, "halt"),
    csrr(T2, epc),
    ...fetchHalf,
    enc.i("andi", T3, T3, 3),
    enc.i("addi", T1, 0, 3),
    enc.i("addi", T2, T2, 2),
    b("bne", T3, T1, "skip"),
    enc.i("addi", T2, T2, 2),
    { label: "skip" },
    enc.csr(1, 0, epc, T2),
    { branch: { to: "out", kind: "j", op: "jal", rs1: 0, rs2: 0, rd: 0 } },
    { label: "fetch" },
    enc.csr(1, 0, epc, RA),
    { label: "out" },
    enc.load("ld", T1, T0, 0),
    enc.load("ld", T2, T0, 8),
    enc.load("ld", T3, T0, 16),
    enc.csr(1, T0, scratch, T0),
    s ? i4(0x10200073, "sret") : enc.mret(),
    { label: "halt" },
    enc.wfi(),
    { branch: { to: "halt", kind: "j", op: "jal", rs1: 0, rs2: 0, rd: 0 } },
  ];
  return layout(ops, s ? S_HANDLER : HANDLER);
}

// ---------------------------------------------------------------------- arbitraries

// biome-ignore format: a table
const INT_SPECIAL = [
  0n, 1n, -1n, 2n, -2n, 1n << 63n, (1n << 63n) - 1n, 0x8000_0000n, -0x8000_0000n, 0x7fff_ffffn, 0xffff_ffffn,
  0x1_0000_0000n, 31n, 32n, 63n, 64n, 65n, 0xffff_ffff_0000_0000n, 0x8000_0000_0000_0001n,
];
// biome-ignore format: a table
const F32_SPECIAL = [
  0x0000_0000, 0x8000_0000, 0x3f80_0000, 0xbf80_0000, 0x7f80_0000, 0xff80_0000, 0x7fc0_0000, 0xffc0_0000,
  0x7f80_0001, 0x7fa0_0000, 0x0000_0001, 0x807f_ffff, 0x0080_0000, 0x7f7f_ffff, 0x3fc0_0000, 0x4020_0000,
  0xc020_0000, 0x4f00_0000, 0xcf00_0000, 0x4f80_0000, 0x5f00_0000, 0xdf00_0000, 0x5f80_0000, 0x3f00_0000,
];
// biome-ignore format: a table
const F64_SPECIAL = [
  0x0n, 0x8000_0000_0000_0000n, 0x3ff0_0000_0000_0000n, 0xbff0_0000_0000_0000n, 0x7ff0_0000_0000_0000n,
  0xfff0_0000_0000_0000n, 0x7ff8_0000_0000_0000n, 0xfff8_0000_0000_0000n, 0x7ff0_0000_0000_0001n,
  0x7ff4_0000_0000_0000n, 0x1n, 0x800f_ffff_ffff_ffffn, 0x0010_0000_0000_0000n, 0x7fef_ffff_ffff_ffffn,
  0x3ff8_0000_0000_0000n, 0x4004_0000_0000_0000n, 0xc004_0000_0000_0000n, 0x41e0_0000_0000_0000n,
  0xc1e0_0000_0000_0000n, 0x41f0_0000_0000_0000n, 0x43e0_0000_0000_0000n, 0xc3e0_0000_0000_0000n,
  0x43f0_0000_0000_0000n, 0x3fe0_0000_0000_0000n, 0x3ff0_0000_0000_0001n, 0x36a0_0000_0000_0000n,
];

const anyReg = fc.integer({ min: 0, max: 31 });
const cReg = fc.integer({ min: 8, max: 15 });
const fReg = fc.integer({ min: 0, max: 31 });
const int64 = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom(...INT_SPECIAL) },
  { weight: 3, arbitrary: fc.bigInt({ min: -(1n << 63n), max: (1n << 63n) - 1n }) },
  { weight: 2, arbitrary: fc.bigInt({ min: -4096n, max: 4096n }) },
);
/** FP register patterns: doubles, NaN-boxed singles, singles that are not boxed, anything. */
const fBits = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom(...F64_SPECIAL) },
  { weight: 3, arbitrary: fc.constantFrom(...F32_SPECIAL).map((s) => 0xffff_ffff_0000_0000n | BigInt(s)) },
  { weight: 1, arbitrary: fc.constantFrom(...F32_SPECIAL).map((s) => BigInt(s)) },
  { weight: 2, arbitrary: fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }) },
  { weight: 1, arbitrary: fc.integer().map((s) => 0xffff_ffff_0000_0000n | BigInt(s >>> 0)) },
);
/** Rounding modes: static, dynamic (7), reserved (5, 6: illegal). */
const rm = fc.oneof(
  { weight: 5, arbitrary: fc.integer({ min: 0, max: 4 }) },
  { weight: 4, arbitrary: fc.constant(7) },
  { weight: 1, arbitrary: fc.constantFrom(5, 6) },
);
/** Offsets in a region: aligned, anywhere, at a page end (crossing into the next page). */
const offset = fc.oneof(
  { weight: 3, arbitrary: fc.integer({ min: 0, max: 0x1ff }).map((o) => o * 8) },
  { weight: 2, arbitrary: fc.integer({ min: 0, max: 0xffff }) },
  {
    weight: 2,
    arbitrary: fc
      .tuple(fc.integer({ min: 0, max: 3 }), fc.integer({ min: 1, max: 7 }))
      .map(([pg, k]) => pg * PAGE + PAGE - k),
  },
);
// biome-ignore format: a table
const LOAD_REGIONS: Region[] = [
  "mmio", "data", "data", "data", "ro", "hole", "alt", "ramend", "mmio", "unmapped", "alias", "code", "pt",
  "handler",
];
// biome-ignore format: a table
const STORE_REGIONS: Region[] = [
  "mmio", "data", "data", "data", "ro", "hole", "alt", "ramend", "ramend", "mmio", "unmapped", "alias",
];
/** CSRs programs write (not mscratch, sscratch, mtvec, stvec: the handlers'). */
const CSRS_RW = [C.CSR_FFLAGS, C.CSR_FRM, C.CSR_FCSR, C.CSR_SEPC, C.CSR_STVAL, C.CSR_MCYCLE, C.CSR_MINSTRET];
// biome-ignore format: a table
const CSRS_RO = [
  C.CSR_CYCLE, C.CSR_TIME, C.CSR_INSTRET, C.CSR_MSTATUS, C.CSR_MISA, C.CSR_MHARTID, C.CSR_MEPC, C.CSR_MCAUSE,
  C.CSR_MTVAL, C.CSR_SSTATUS, C.CSR_SATP, C.CSR_MCOUNTEREN, C.CSR_SCAUSE, C.CSR_SSCRATCH, C.CSR_MEDELEG,
];

interface Limits {
  /** Registers the item may write. */
  dst: fc.Arbitrary<number>;
  /** Control flow allowed (not in subroutine bodies). */
  flow: boolean;
  /** Loop nesting depth of this item. */
  depth: number;
}

/** The leaf items, weighted: ALU, memory and FP ops most, the rest enough to appear in most programs. */
function leaf(l: Limits): { weight: number; arbitrary: fc.Arbitrary<Item> }[] {
  const { dst } = l;
  const aluR: fc.Arbitrary<Item> = fc.record({
    k: fc.constant("alu" as const),
    op: fc.constantFrom(...Object.keys(R_OPS)),
    rd: dst,
    rs1: anyReg,
    rs2: anyReg,
  });
  const aluI: fc.Arbitrary<Item> = fc.record({
    k: fc.constant("alui" as const),
    op: fc.constantFrom(...Object.keys(I_OPS)),
    rd: dst,
    rs1: anyReg,
    imm: fc.oneof(fc.integer({ min: -2048, max: 2047 }), fc.constantFrom(0, -1, 1, 2047, -2048)),
  });
  const shiftI: fc.Arbitrary<Item> = fc
    .record({
      op: fc.constantFrom(...Object.keys(SHIFT_OPS)),
      rd: dst,
      rs1: anyReg,
      imm: fc.integer({ min: 0, max: 63 }),
    })
    .map((r) => ({ k: "alui" as const, ...r, imm: r.imm & SHIFT_OPS[r.op]![3] }));
  const upper: fc.Arbitrary<Item> = fc.record({
    k: fc.constant("upper" as const),
    auipc: fc.boolean(),
    rd: dst,
    imm: fc.integer({ min: 0, max: 0xfffff }),
  });
  const liItem: fc.Arbitrary<Item> = fc.record({ k: fc.constant("li" as const), rd: dst, value: int64 });
  const calu: fc.Arbitrary<Item> = fc.oneof(
    fc.record({
      k: fc.constant("calu" as const),
      op: fc.constantFrom("c.addi", "c.li", "c.slli"),
      rd: dst,
      rs: fc.constant(0),
      imm: fc.integer({ min: -32, max: 31 }),
    }),
    fc.record({
      k: fc.constant("calu" as const),
      op: fc.constantFrom("c.addiw", "c.lui"),
      rd: dst.filter((r) => r !== 0 && r !== SP),
      rs: fc.constant(0),
      imm: fc.integer({ min: -32, max: 31 }),
    }),
    fc.record({
      k: fc.constant("calu" as const),
      op: fc.constantFrom(
        "c.srli",
        "c.srai",
        "c.andi",
        "c.sub",
        "c.xor",
        "c.or",
        "c.and",
        "c.subw",
        "c.addw",
        "c.addi4spn",
        "c.addi16sp",
      ),
      rd: cReg,
      rs: cReg,
      imm: fc.integer({ min: -32, max: 63 }),
    }),
    fc.record({
      k: fc.constant("calu" as const),
      op: fc.constantFrom("c.mv", "c.add"),
      rd: dst,
      rs: fc.integer({ min: 1, max: 31 }),
      imm: fc.constant(0),
    }),
  );
  const memBase = fc
    .oneof(
      fc
        .record({
          op: fc.constantFrom(...Object.keys(LOADS)),
          region: fc.constantFrom(...LOAD_REGIONS),
          off: offset,
          ireg: dst,
          freg: fReg,
        })
        .map(({ op, region, off, ireg, freg }) => ({ op, region, off, reg: LOADS[op]![2] ? freg : ireg })),
      fc
        .record({
          op: fc.constantFrom(...Object.keys(STORES)),
          region: fc.constantFrom(...STORE_REGIONS),
          off: offset,
          reg: anyReg,
        })
        .map((r) => r),
    )
    .map((r): Item => ({ k: "mem", ...r, form: "base", base: T6 }));
  const memC = fc
    .record({
      op: fc.constantFrom("c.lw", "c.ld", "c.fld", "c.sw", "c.sd", "c.fsd"),
      off: offset,
      region: fc.constantFrom(...STORE_REGIONS),
      reg: cReg,
      base: cReg,
    })
    .map((r): Item => ({ k: "mem", ...r, form: "c" }));
  const memSp = fc
    .oneof(
      fc.record({ op: fc.constantFrom("c.lwsp", "c.ldsp"), reg: dst.filter((r) => r !== 0) }),
      fc.record({ op: fc.constantFrom("c.fldsp", "c.fsdsp"), reg: fReg }),
      fc.record({ op: fc.constantFrom("c.swsp", "c.sdsp"), reg: anyReg }),
    )
    .chain((r) =>
      fc
        .integer({ min: 0, max: 63 })
        .map((off): Item => ({ k: "mem", ...r, off, region: "data", form: "sp", base: SP })),
    );
  const fp: fc.Arbitrary<Item> = fc.oneof(
    // arithmetic, sqrt, convert between formats: rm in f3
    fc.record({
      k: fc.constant("fp" as const),
      f5: fc.constantFrom(0, 1, 2, 3, 0x0b, 0x08),
      dbl: fc.boolean(),
      f3: rm,
      rd: fReg,
      rs1: fReg,
      rs2: fReg,
    }),
    fc.record({
      k: fc.constant("fp" as const),
      f5: fc.constant(4),
      dbl: fc.boolean(),
      f3: fc.integer({ min: 0, max: 2 }),
      rd: fReg,
      rs1: fReg,
      rs2: fReg,
    }),
    fc.record({
      k: fc.constant("fp" as const),
      f5: fc.constant(5),
      dbl: fc.boolean(),
      f3: fc.integer({ min: 0, max: 1 }),
      rd: fReg,
      rs1: fReg,
      rs2: fReg,
    }),
    fc.record({
      k: fc.constant("fp" as const),
      f5: fc.constant(0x14),
      dbl: fc.boolean(),
      f3: fc.integer({ min: 0, max: 2 }),
      rd: dst,
      rs1: fReg,
      rs2: fReg,
    }),
    fc.record({
      k: fc.constant("fp" as const),
      f5: fc.constant(0x18),
      dbl: fc.boolean(),
      f3: rm,
      rd: dst,
      rs1: fReg,
      rs2: fc.integer({ min: 0, max: 3 }),
    }),
    fc.record({
      k: fc.constant("fp" as const),
      f5: fc.constant(0x1a),
      dbl: fc.boolean(),
      f3: rm,
      rd: fReg,
      rs1: anyReg,
      rs2: fc.integer({ min: 0, max: 3 }),
    }),
    fc.record({
      k: fc.constant("fp" as const),
      f5: fc.constant(0x1c),
      dbl: fc.boolean(),
      f3: fc.integer({ min: 0, max: 1 }),
      rd: dst,
      rs1: fReg,
      rs2: fc.constant(0),
    }),
    fc.record({
      k: fc.constant("fp" as const),
      f5: fc.constant(0x1e),
      dbl: fc.boolean(),
      f3: fc.constant(0),
      rd: fReg,
      rs1: anyReg,
      rs2: fc.constant(0),
    }),
    fc.record({
      k: fc.constant("fma" as const),
      op: fc.constantFrom(0x43, 0x47, 0x4b, 0x4f),
      dbl: fc.boolean(),
      rm,
      rd: fReg,
      rs1: fReg,
      rs2: fReg,
      rs3: fReg,
    }),
    fc.record({ k: fc.constant("fli" as const), fd: fReg, bits: fBits, dbl: fc.boolean() }),
  );
  const csr: fc.Arbitrary<Item> = fc.oneof(
    fc.record({
      k: fc.constant("csr" as const),
      f3: fc.constantFrom(1, 2, 3, 5, 6, 7),
      rd: dst,
      csr: fc.constantFrom(...CSRS_RW),
      src: anyReg,
    }),
    fc.record({
      k: fc.constant("csr" as const),
      f3: fc.constantFrom(2, 6),
      rd: dst,
      csr: fc.constantFrom(...CSRS_RO),
      src: fc.constant(0),
    }),
  );
  const amo: fc.Arbitrary<Item> = fc.oneof(
    fc.record({
      k: fc.constant("amo" as const),
      op: fc.constantFrom(...Object.keys(AMOS)),
      wide: fc.boolean(),
      aq: fc.boolean(),
      rl: fc.boolean(),
      rd: dst,
      rs2: anyReg,
      region: fc.constantFrom<Region>(
        "data",
        "data",
        "data",
        "data",
        "mmio",
        "unmapped",
        "ro",
        "hole",
        "alias",
      ),
      off: fc.oneof(
        { weight: 4, arbitrary: fc.integer({ min: 0, max: 0x7ff }).map((o) => o * 8) },
        { weight: 1, arbitrary: offset },
      ),
    }),
    fc.record({
      k: fc.constant("lrsc" as const),
      wide: fc.boolean(),
      rd: dst,
      rs2: anyReg,
      between: fc.constantFrom("none", "alu", "store-same", "store-other", "sc-only"),
      off: fc.oneof(
        { weight: 4, arbitrary: fc.integer({ min: 0, max: 0x7f0 }).map((o) => o * 8) },
        { weight: 1, arbitrary: fc.integer({ min: 0, max: 0x3fff }) },
      ),
    }),
  );
  const trap: fc.Arbitrary<Item> = fc.record({
    k: fc.constant("trap" as const),
    which: fc.constantFrom("ecall", "ebreak", "c.ebreak", "illegal16", "illegal32", "csr-ro"),
  });
  const fence: fc.Arbitrary<Item> = fc.record({
    k: fc.constant("fence" as const),
    which: fc.constantFrom("fence", "fence.i", "sfence"),
  });
  const payload = fc.oneof(aluR, aluI, shiftI);
  const smc: fc.Arbitrary<Item> = fc.record({
    k: fc.constant("smc" as const),
    from: payload,
    to: payload,
    fence: fc.oneof(
      { weight: 3, arbitrary: fc.constant(true) },
      { weight: 1, arbitrary: fc.constant(false) },
    ),
    alias: fc.oneof(
      { weight: 3, arbitrary: fc.constant(false) },
      { weight: 1, arbitrary: fc.constant(true) },
    ),
    before: fc.boolean(),
  });
  const vm: fc.Arbitrary<Item> = fc.oneof(
    fc.record({
      k: fc.constant("pte" as const),
      table: fc.constantFrom<0 | 1>(0, 0, 1),
      page: fc.integer({ min: 0, max: 6 }),
      flip: fc.oneof(
        fc.constantFrom(PTE_V, PTE_R, PTE_W, PTE_X, PTE_U, PTE_A, PTE_D, PTE_A | PTE_D),
        fc.integer({ min: 1, max: 0xff }),
      ),
      sfence: fc.constantFrom("all", "va"),
      probe: fc.constantFrom("none", "load", "load", "store"),
      off: fc.integer({ min: 0, max: 0xfff }),
    }),
    fc.record({ k: fc.constant("satp" as const), b: fc.boolean(), sfence: fc.boolean() }),
    fc.record({ k: fc.constant("valias" as const), alias: fc.boolean() }),
    fc.record({
      k: fc.constant("status" as const),
      set: fc.boolean(),
      bits: fc.constantFrom("mprv-s", "mprv-u", "sum", "mxr", "fs"),
    }),
  );
  const w = (weight: number, arbitrary: fc.Arbitrary<Item>) => ({ weight, arbitrary });
  const out: { weight: number; arbitrary: fc.Arbitrary<Item> }[] = [
    w(10, aluR),
    w(5, aluI),
    w(4, shiftI),
    w(1, upper),
    w(2, liItem),
    w(3, calu),
    w(7, memBase),
    w(2, memC),
    w(1, memSp),
    w(8, fp),
    w(2, csr),
    w(3, amo),
    w(1, trap),
    w(1, fence),
    w(2, smc),
    w(2, vm),
  ];
  if (l.flow) {
    const skip = fc.integer({ min: 0, max: 4 });
    out.push(
      w(
        4,
        fc.oneof(
          fc.record({
            k: fc.constant("branch" as const),
            op: fc.constantFrom(...Object.keys(BRANCHES)),
            rs1: anyReg,
            rs2: anyReg,
            skip,
            compressed: fc.constant(false),
          }),
          fc.record({
            k: fc.constant("branch" as const),
            op: fc.constantFrom("beq", "bne"),
            rs1: cReg,
            rs2: fc.constant(0),
            skip,
            compressed: fc.constant(true),
          }),
          fc.record({
            k: fc.constant("jal" as const),
            rd: fc.oneof(fc.constant(0), dst),
            skip,
            compressed: fc.boolean(),
          }),
          fc.record({
            k: fc.constant("jalr" as const),
            rd: fc.oneof(fc.constant(0), dst),
            skip,
            odd: fc.boolean(),
            compressed: fc.boolean(),
          }),
        ),
      ),
      w(
        1,
        fc.record({
          k: fc.constant("badjump" as const),
          region: fc.constantFrom<Region>("unmapped", "mmio", "hole", "ro", "data"),
          off: fc.integer({ min: 0, max: 0xffff }),
          compressed: fc.boolean(),
        }),
      ),
    );
  }
  return out;
}

const DST = fc.constantFrom(...WRITABLE);
const DST_NO_RA = fc.constantFrom(...WRITABLE.filter((r) => r !== RA));

function itemsArb(depth: number, max: number): fc.Arbitrary<Item[]> {
  const l: Limits = { dst: DST, flow: true, depth };
  const leaves = leaf(l);
  const callBody = fc.oneof(...leaf({ dst: DST_NO_RA, flow: false, depth }));
  const compound: fc.Arbitrary<Item>[] = [
    fc.record({
      k: fc.constant("call" as const),
      body: fc.array(callBody, { minLength: 1, maxLength: 4 }),
      times: fc.integer({ min: 1, max: 2 }),
      compressedRet: fc.boolean(),
    }),
  ];
  if (depth < LOOP_REGS.length) {
    compound.push(
      fc.record({
        k: fc.constant("loop" as const),
        // Mostly short; sometimes long enough for code to get hot (jit "on" translates hot code).
        iters: fc.oneof(
          { weight: 6, arbitrary: fc.integer({ min: 1, max: 4 }) },
          { weight: 1, arbitrary: fc.integer({ min: 16, max: 80 }) },
        ),
        body: itemsArb(depth + 1, depth === 0 ? 6 : 4),
        compressedDec: fc.boolean(),
      }),
    );
  }
  const item = fc.oneof(
    { weight: 12, arbitrary: fc.oneof(...leaves) },
    { weight: 1, arbitrary: fc.oneof(...compound) },
  );
  // The top level draws up to `max` items (fast-check's default size would stop near 10).
  return fc.array(item, { minLength: 1, maxLength: max, ...(depth === 0 ? { size: "+1" as const } : {}) });
}

const pteFlags = fc.oneof(
  { weight: 4, arbitrary: fc.constant(-1) },
  { weight: 1, arbitrary: fc.integer({ min: 0, max: 0xff }) },
);

/** Exceptions medeleg can send to S-mode (not ECALL from M). */
const DELEGABLE = 0xb3ff;

/** A random program: see the file comment. */
export const programArb: fc.Arbitrary<Program> = fc.record({
  mode: fc.constantFrom<Mode>("M", "M", "S", "U"),
  tier: fc.constantFrom<"always" | "on">("always", "always", "always", "on"),
  exits: fc.boolean(),
  deleg: fc.oneof(
    { weight: 3, arbitrary: fc.constant(0) },
    { weight: 1, arbitrary: fc.integer({ min: 0, max: 0xffff }).map((m) => m & DELEGABLE) },
    { weight: 1, arbitrary: fc.constant(DELEGABLE) },
  ),
  items: itemsArb(0, 32),
  x: fc.array(int64, { minLength: 31, maxLength: 31 }),
  f: fc.array(fBits, { minLength: 32, maxLength: 32 }),
  fcsr: fc.oneof(fc.integer({ min: 0, max: 0x9f }), fc.integer({ min: 0, max: 0xff })),
  fill: fc.integer({ min: 1, max: 0x7fffffff }),
  start: fc.constantFrom(0, 0x40, 0xf80, 0xfc2, 0x1ffa),
  pte: fc.array(pteFlags, { minLength: 7, maxLength: 7 }),
  sum: fc.boolean(),
  mxr: fc.boolean(),
  counteren: fc.oneof(fc.constant(7), fc.integer({ min: 0, max: 7 })),
  budgets: fc.array(
    fc.oneof(
      { weight: 2, arbitrary: fc.integer({ min: 1, max: 8 }) },
      { weight: 2, arbitrary: fc.integer({ min: 1, max: 64 }) },
      { weight: 1, arbitrary: fc.integer({ min: 1, max: 600 }) },
    ),
    { minLength: 1, maxLength: 6 },
  ),
});

// ------------------------------------------------------------------------- machines

/** A deterministic device page at MMIO: bytes that stores write and loads read, plus a counter register that counts reads. Every access is logged. */
class Device implements PhysBus {
  readonly log: string[] = [];
  private readonly mem = new Uint8Array(MMIO_SIZE);
  private reads = 0;
  constructor(fill: number) {
    let s = fill | 1;
    for (let i = 0; i < MMIO_SIZE; i++) {
      s ^= s << 13;
      s ^= s >>> 17;
      s ^= s << 5;
      this.mem[i] = s & 0xff;
    }
  }
  private value(pa: number, size: number): bigint | undefined {
    if (pa < MMIO || pa + size > MMIO + MMIO_SIZE) return undefined;
    const o = pa - MMIO;
    if (o >= 0xff8) return BigInt(++this.reads); // the counter register
    let v = 0n;
    for (let i = size - 1; i >= 0; i--) v = (v << 8n) | BigInt(this.mem[o + i]!);
    return v;
  }
  private store(pa: number, size: number, v: bigint): boolean {
    if (pa < MMIO || pa + size > MMIO + MMIO_SIZE) return false;
    for (let i = 0; i < size; i++) this.mem[pa - MMIO + i] = Number((v >> BigInt(8 * i)) & 0xffn);
    return true;
  }
  read(pa: number, size: 1 | 2 | 4): number {
    const v = this.value(pa, size);
    this.log.push(`read${size} ${hex(pa)} -> ${v === undefined ? "unmapped" : hex(v)}`);
    return v === undefined ? -1 : Number(v);
  }
  read64(pa: number): bigint | undefined {
    const v = this.value(pa, 8);
    this.log.push(`read8 ${hex(pa)} -> ${v === undefined ? "unmapped" : hex(v)}`);
    return v;
  }
  write(pa: number, size: 1 | 2 | 4, value: number): boolean {
    const ok = this.store(pa, size, BigInt(value >>> 0));
    this.log.push(`write${size} ${hex(pa)} = ${hex(value >>> 0)}${ok ? "" : " (unmapped)"}`);
    return ok;
  }
  write64(pa: number, value: bigint): boolean {
    const ok = this.store(pa, 8, value);
    this.log.push(`write8 ${hex(pa)} = ${hex(value)}${ok ? "" : " (unmapped)"}`);
    return ok;
  }
}

interface Side {
  ram: GuestRam;
  hart: Hart;
  dev: Device;
}

/** Everything about a program that does not depend on the hart: its code, where it ends, its listing. */
interface Image {
  code: Placed[];
  handlers: Placed[];
  entry: number;
  end: number;
}

function image(p: Program): Image {
  let items = p.items;
  for (;;) {
    const entry = CODE + p.start;
    const code = assemble({ ...p, items }, entry);
    const last = code[code.length - 1]!;
    if (last.addr + last.insn.len <= CODE_END)
      return { code, handlers: [...handlerCode(false), ...handlerCode(true)], entry, end: last.addr };
    // Too long for the code pages: start at the bottom, then drop items from the end.
    if (p.start !== 0) return image({ ...p, start: 0, items });
    items = items.slice(0, -1);
    p = { ...p, items };
  }
}

const satpOf = (root: number, asid: number): bigint =>
  (8n << 60n) | (BigInt(asid) << 44n) | BigInt(root / PAGE);

function writeCode(ram: GuestRam, placed: readonly Placed[]): void {
  for (const { addr, insn } of placed) {
    if (insn.len === 4) {
      ram.write16(hpa(addr), insn.bits & 0xffff);
      ram.write16(hpa(addr + 2), insn.bits >>> 16);
    } else ram.write16(hpa(addr), insn.bits);
  }
}

function pageTables(ram: GuestRam, p: Program): void {
  const U = p.mode === "U" ? PTE_U : 0;
  const ptr = (pa: number): bigint => (BigInt(pa / PAGE) << 10n) | BigInt(PTE_V);
  const leafPte = (pa: number, flags: number): bigint => (BigInt(pa / PAGE) << 10n) | BigInt(flags);
  const flags = (i: number, dflt: number): number => (p.pte[i]! < 0 ? dflt : p.pte[i]!);
  const rw = PTE_V | PTE_R | PTE_W | PTE_A | PTE_D | U;
  const l1m = PT + 6 * PAGE;
  for (const t of [0, 1]) {
    const root = PT + t * PAGE;
    const l1 = PT + (2 + t) * PAGE;
    const l0 = PT + (4 + t) * PAGE;
    const set = (table: number, i: number, v: bigint) => ram.write64(hpa(table + 8 * i), v);
    set(root, 0, ptr(l1m));
    set(root, 1, leafPte(RAM_BASE, rw | PTE_X)); // the 1 GiB alias at ALIAS
    set(root, 2, ptr(l1));
    set(l1, 0, ptr(l0));
    const code = PTE_V | PTE_R | PTE_X | PTE_A | U | (flags(6, PTE_W | PTE_D) & (PTE_W | PTE_A | PTE_D));
    for (let pg = 1; pg <= 3; pg++) set(l0, pg, leafPte(P(pg), code));
    for (let pg = 4; pg <= 7; pg++)
      set(l0, pg, leafPte(pg === 4 && t === 1 ? ALT : P(pg), flags(pg - 4, rw)));
    set(l0, 8, leafPte(RO, flags(4, PTE_V | PTE_R | PTE_A | U)));
    set(l0, 10, leafPte(t === 1 ? DATA : ALT, flags(5, PTE_V | PTE_R | PTE_W | PTE_A | U)));
    for (let pg = 16; pg <= 22; pg++) set(l0, pg, leafPte(P(pg), rw));
    set(l0, 11, leafPte(S_HANDLER, PTE_V | PTE_R | PTE_W | PTE_X | PTE_A | PTE_D)); // S-mode only
    set(l0, RAM_PAGES - 1, leafPte(RAM_END_PAGE, rw));
  }
  ram.write64(hpa(l1m + 8 * (MMIO >>> 21)), leafPte(MMIO, rw)); // a 2 MiB page onto the device
}

function newSide(p: Program, img: Image, jit: JitMode): Side {
  const ram = new GuestRam(RAM_BASE, RAM_PAGES * PAGE);
  let s = p.fill | 1;
  for (const pg of [4, 5, 6, 7, 8, 9, 10, RAM_PAGES - 1]) {
    const v = ram.viewMut(hpa(P(pg)), PAGE);
    for (let o = 0; o < PAGE; o++) {
      s ^= s << 13;
      s ^= s >>> 17;
      s ^= s << 5;
      v[o] = s & 0xff;
    }
  }
  writeCode(ram, img.handlers);
  writeCode(ram, img.code);
  ram.write64(hpa(SAVE + 32), BigInt(img.end));
  ram.write64(hpa(S_SAVE + 32), BigInt(img.end));
  pageTables(ram, p);
  const dev = new Device(p.fill);
  const hart = new Hart({ ram, bus: dev, jit });
  const x: Record<number, bigint> = {};
  p.x.forEach((v, i) => {
    x[i + 1] = BigInt.asUintN(64, v);
  });
  x[SP] = BigInt(GP);
  x[GP_REG] = BigInt(GP);
  x[SATP_A_REG] = satpOf(PT, ASID_A);
  x[SATP_B_REG] = satpOf(PT + PAGE, ASID_B);
  for (const r of LOOP_REGS) x[r] = 0n;
  const mstatus = BigInt(C.MSTATUS_FS) | (p.sum ? 1n << 18n : 0n) | (p.mxr ? 1n << 19n : 0n);
  hart.boot({
    pc: BigInt(img.entry),
    priv: p.mode === "M" ? C.PRV_M : p.mode === "S" ? C.PRV_S : C.PRV_U,
    x,
    csrs: [
      [C.CSR_MSTATUS, mstatus],
      [C.CSR_MTVEC, BigInt(HANDLER)],
      [C.CSR_MSCRATCH, BigInt(SAVE)],
      [C.CSR_MEDELEG, BigInt(p.deleg)],
      [C.CSR_STVEC, BigInt(S_HANDLER)],
      [C.CSR_SSCRATCH, BigInt(S_SAVE)],
      [C.CSR_MCOUNTEREN, BigInt(p.counteren)],
      [C.CSR_SCOUNTEREN, BigInt(p.counteren)],
      [C.CSR_SATP, satpOf(PT, ASID_A)],
      [C.CSR_FCSR, BigInt(p.fcsr)],
    ],
    exitMask: p.exits ? EXIT_M : 0,
  });
  p.f.forEach((v, i) => {
    hart.setF(i, BigInt.asUintN(64, v));
  });
  return { ram, hart, dev };
}

// ---------------------------------------------------------------------- comparison

/** An exit as text, keys sorted (two tiers may build the same exit in another key order). */
const stringifyExit = (e: HartExit): string => {
  const o = e as unknown as Record<string, unknown>;
  const fields = Object.keys(o)
    .sort()
    .map((k) => `${k}: ${typeof o[k] === "bigint" ? hex(o[k]) : JSON.stringify(o[k])}`);
  return `{ ${fields.join(", ")} }`;
};

const u64 = (lo: number, hi: number): bigint => (BigInt(hi >>> 0) << 32n) | BigInt(lo >>> 0);

/** The architectural state as name -> value, names a reader knows. */
function flatState(s: HartState): Map<string, string> {
  const m = new Map<string, string>();
  m.set("pc", hex(u64(s.pc[0], s.pc[1])));
  m.set("priv", String(s.priv));
  m.set("virt", String(s.virt));
  m.set("wfi", String(s.wfi));
  for (let i = 1; i < 32; i++) m.set(`x${i} (${xn(i)})`, hex(u64(s.x[2 * i]!, s.x[2 * i + 1]!)));
  for (let i = 0; i < 32; i++) m.set(`f${i}`, hex(u64(s.fpu.regs[2 * i]!, s.fpu.regs[2 * i + 1]!)));
  m.set("fflags", hex(s.fpu.fflags));
  m.set("frm", String(s.fpu.frm));
  for (const k of [
    "mstatus",
    "mstatusHiBits",
    "misa",
    "medeleg",
    "mideleg",
    "mie",
    "mipSw",
    "mipHw",
    "mcounteren",
    "scounteren",
    "mcountinhibit",
    "menvcfg",
    "senvcfg",
    "instret",
    "cycles",
    "executed",
  ] as const)
    m.set(k, hex(s[k]));
  m.set("satp", `mode ${s.satp[0]} ppn ${hex(s.satp[1])}`);
  for (const [n, lo, hi] of s.csr) m.set(`csr ${hex(n)}`, hex(u64(lo, hi)));
  for (const [k, v] of Object.entries(s.h ?? {})) m.set(`h.${k}`, hex(v));
  return m;
}

function diffStates(a: HartState, b: HartState): string[] {
  const fa = flatState(a);
  const fb = flatState(b);
  const out: string[] = [];
  for (const k of new Set([...fa.keys(), ...fb.keys()])) {
    const va = fa.get(k) ?? "0x0 (absent)";
    const vb = fb.get(k) ?? "0x0 (absent)";
    if (va !== vb) out.push(`${k}: interpreter ${va}, translator ${vb}`);
  }
  return out;
}

function diffRam(a: GuestRam, b: GuestRam): string[] {
  const va = a.view(hpa(RAM_BASE), RAM_PAGES * PAGE);
  const vb = b.view(hpa(RAM_BASE), RAM_PAGES * PAGE);
  const wa = new Int32Array(va.buffer, va.byteOffset, va.length >> 2);
  const wb = new Int32Array(vb.buffer, vb.byteOffset, vb.length >> 2);
  let i = 0;
  while (i < wa.length && wa[i] === wb[i]) i++;
  if (i === wa.length) return [];
  const out: string[] = [];
  const bytes = (v: Uint8Array, o: number) =>
    [...v.subarray(o, o + 16)].map((x) => x.toString(16).padStart(2, "0")).join(" ");
  for (let o = 0; o < va.length && out.length < 16; o += 16) {
    let same = true;
    for (let i = o; i < o + 16; i++) if (va[i] !== vb[i]) same = false;
    if (!same) {
      const at = (RAM_BASE + o).toString(16);
      out.push(`RAM ${at}: interpreter ${bytes(va, o)}`, `RAM ${at}: translator  ${bytes(vb, o)}`);
    }
  }
  return out;
}

function diffLogs(a: readonly string[], b: readonly string[]): string[] {
  const n = Math.max(a.length, b.length);
  for (let i = 0; i < n; i++) {
    if (a[i] !== b[i]) {
      return [
        `MMIO access #${i}: interpreter ${a[i] ?? "(none)"}, translator ${b[i] ?? "(none)"}`,
        `  (interpreter made ${a.length} accesses, translator ${b.length})`,
      ];
    }
  }
  return [];
}

// ---------------------------------------------------------------------------- running

export interface DiffOptions {
  /** The two tiers compared: default the interpreter ("off") and the program's `tier`. */
  modes?: readonly [JitMode, JitMode];
  /** Instructions per program before the driver stops it (default 30000). */
  maxInstructions?: number;
  /**
   * Tests of the tester: called after each run call with the second side's hart and RAM,
   * to plant a difference the comparison must report.
   */
  perturb?: (hart: Hart, ram: GuestRam, call: number) => void;
}

export interface DiffResult {
  /** The mismatch report, or undefined when both agreed throughout. */
  report?: string;
  /** run() calls made on each hart, instructions executed, whether the program reached its end. */
  calls: number;
  instructions: number;
  halted: boolean;
  /** Trap causes taken (from the handler's log or the exits), and how many traps. */
  causes: Set<number>;
  traps: number;
  /** MMIO accesses made. */
  mmio: number;
  /** The second hart's translator counters. */
  jit: JitStats;
}

const MAX_CALLS = 2000;
const SMALL_CALLS = 250;

/**
 * After a trap exit in exit style: resume as the handler would (after the instruction, at
 * ra after a fetch fault). Returns false when the program is done (the ECALL at its end).
 */
function resume(side: Side, e: HartExit, end: number): boolean {
  if (!isTrapExit(e) || e.kind === "interrupt") return true;
  const h = side.hart;
  // The physical address of the pc: code runs at its own address or through the alias.
  const pc = Number(h.pc & 0x3fff_ffffn) + RAM_BASE;
  if (e.kind === "ecall" && pc === end) return false;
  if ((e.kind === "access-fault" || e.kind === "page-fault") && e.access === "fetch") {
    h.pc = h.getX(RA);
    return true;
  }
  if (!side.ram.contains(pc, 2)) return false;
  h.advancePc((side.ram.read16(hpa(pc)) & 3) === 3 ? 4 : 2);
  return true;
}

/** One hart set up for `p` (as runDiff sets up each of its two): for tests of the generator. */
export function bootProgram(p: Program, jit: JitMode = "off"): { hart: Hart; ram: GuestRam; end: number } {
  const img = image(p);
  const { hart, ram } = newSide(p, img, jit);
  return { hart, ram, end: img.end };
}

/** hart.run(budget), or the exception it threw as text (a mismatch even when both throw). */
function runGuarded(hart: Hart, budget: number): HartExit | string {
  try {
    return hart.run(budget);
  } catch (e) {
    return `threw ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}`;
  }
}

/** Run `p` on two fresh harts and compare them after every run call. */
export function runDiff(p: Program, opts: DiffOptions = {}): DiffResult {
  const [ma, mb] = opts.modes ?? ["off", p.tier];
  const img = image(p);
  const A = newSide(p, img, ma);
  const B = newSide(p, img, mb);
  const max = opts.maxInstructions ?? 30_000;
  const causes = new Set<number>();
  const exitStyle = p.exits;
  let calls = 0;
  let traps = 0;
  let halted = false;
  let report: string | undefined;
  while (calls < MAX_CALLS && A.hart.executedCount() < max) {
    // The program's budgets in turn; after SMALL_CALLS calls, 50 times larger, so long
    // programs with small budgets end in a bounded number of comparisons.
    const budget = p.budgets[calls % p.budgets.length]! * (calls < SMALL_CALLS ? 1 : 50);
    const before = A.hart.executedCount();
    const ra = runGuarded(A.hart, budget);
    const rb = runGuarded(B.hart, budget);
    opts.perturb?.(B.hart, B.ram, calls);
    calls++;
    const diffs: string[] = [];
    const sa = typeof ra === "string" ? ra : stringifyExit(ra);
    const sb = typeof rb === "string" ? rb : stringifyExit(rb);
    if (sa !== sb || typeof ra === "string") diffs.push(`exit: interpreter ${sa}, translator ${sb}`);
    const ta = A.hart.toState();
    const tb = B.hart.toState();
    if (JSON.stringify(ta) !== JSON.stringify(tb)) diffs.push(...diffStates(ta, tb));
    diffs.push(...diffRam(A.ram, B.ram));
    diffs.push(...diffLogs(A.dev.log, B.dev.log));
    if (diffs.length > 0) {
      report = mismatchReport(p, img, diffs, {
        modes: [ma, mb],
        call: calls,
        budget,
        before,
        pcA: A.hart.pc,
        pcB: B.hart.pc,
        jit: B.hart.jitStats,
      });
      break;
    }
    const ea = ra as HartExit;
    const eb = rb as HartExit;
    if (isTrapExit(ea)) {
      causes.add(ea.cause);
      traps++;
    }
    if (A.hart.waiting || ea.kind === "stop") {
      halted = A.hart.waiting;
      break;
    }
    if (exitStyle && isTrapExit(ea)) {
      const goa = resume(A, ea, img.end);
      const gob = resume(B, eb, img.end);
      if (!goa || !gob) {
        halted = true;
        break;
      }
    }
  }
  for (const save of [SAVE, S_SAVE]) {
    const logged = Number(A.ram.read64(hpa(save + 24)));
    traps += logged;
    for (let i = 0; i < Math.min(logged, LOG_ENTRIES); i++)
      causes.add(Number(A.ram.read64(hpa(save + 0x40 + 32 * i))));
  }
  return {
    ...(report !== undefined ? { report } : {}),
    calls,
    instructions: A.hart.executedCount(),
    halted,
    causes,
    traps,
    mmio: A.dev.log.length,
    jit: B.hart.jitStats,
  };
}

interface Where {
  modes: readonly [JitMode, JitMode];
  call: number;
  budget: number;
  before: number;
  pcA: bigint;
  pcB: bigint;
  jit: JitStats;
}

function mismatchReport(p: Program, img: Image, diffs: string[], w: Where): string {
  const lines = [
    `interpreter (jit "${w.modes[0]}") and translator (jit "${w.modes[1]}") differ after run call #${w.call} (budget ${w.budget}; ${w.before} instructions executed before it):`,
    ...diffs.slice(0, 40).map((d) => `  ${d}`),
    ...(diffs.length > 40 ? [`  ... and ${diffs.length - 40} more`] : []),
    `translator: ${JSON.stringify(w.jit)}`,
    "",
    ...listing(p, img, w.pcA, w.pcB),
  ];
  return lines.join("\n");
}

/** The program as addresses, encodings and assembly, with the two harts' pcs marked. */
export function listing(p: Program, img: Image, pcA?: bigint, pcB?: bigint): string[] {
  const toM = p.exits
    ? "traps into M-mode leave run() (EXIT_M) and the driver resumes after the instruction (at ra after a fetch fault)"
    : "traps into M-mode go to the handler at 0x80000000, which resumes after the instruction (at ra after a fetch fault)";
  const toS =
    p.mode !== "M" && p.deleg !== 0
      ? `; medeleg ${hex(p.deleg)}: those go to the S-mode handler at 0x8000b000`
      : "";
  const style = toM + toS;
  const lines = [
    `program: ${p.mode}-mode${p.mode === "M" ? "" : " under Sv39 (satp = s8, table B in s9)"}, ${style}; run budgets ${JSON.stringify(p.budgets)}; translator tier jit "${p.tier}"`,
  ];
  const init: string[] = [];
  p.x.forEach((v, i) => {
    if (v !== 0n && !RESERVED.has(i + 1)) init.push(`${xn(i + 1)}=${hex(v)}`);
  });
  p.f.forEach((v, i) => {
    if (v !== 0n) init.push(`f${i}=${hex(v)}`);
  });
  lines.push(
    `initial: fcsr=${hex(p.fcsr)} sp=gp=${hex(GP)} ${init.join(" ") || "(other registers 0)"}`,
    `pte flags (data 4-7, ro, alt, code): ${JSON.stringify(p.pte)}, sum ${p.sum}, mxr ${p.mxr}, counteren ${p.counteren}, fill ${p.fill}`,
  );
  for (const { addr, insn } of img.code) {
    const bits =
      insn.len === 4
        ? insn.bits.toString(16).padStart(8, "0")
        : `    ${insn.bits.toString(16).padStart(4, "0")}`;
    const marks = [
      BigInt(addr) === pcA ? "<- interpreter pc" : "",
      BigInt(addr) === pcB ? "<- translator pc" : "",
    ].filter((m) => m !== "");
    lines.push(
      `  ${addr.toString(16)}: ${bits}  ${insn.text}${marks.length > 0 ? `    ${marks.join(", ")}` : ""}`,
    );
  }
  const inCode = (pc?: bigint) => pc === undefined || img.code.some((c) => BigInt(c.addr) === pc);
  if (!inCode(pcA) || !inCode(pcB))
    lines.push(`  (pc: interpreter ${hex(pcA ?? 0n)}, translator ${hex(pcB ?? 0n)})`);
  return lines;
}

/** The program's listing alone (for printing a program that did not fail). */
export function programListing(p: Program): string {
  return listing(p, image(p)).join("\n");
}
