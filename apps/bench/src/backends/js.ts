/**
 * Backend (a): a region translated to JavaScript source and compiled with `new Function`.
 *
 * Guest integer registers are int32 pairs, as in the interpreter (`xlo`/`xhi`): the region
 * copies the ones it uses into JS locals (`l5`/`h5`) on entry and writes the ones it
 * changed back on exit, so V8 can keep them in machine registers. FP registers are f64
 * locals over a Float64Array. Memory is a DataView over guest RAM with a bounds check per
 * access (physical addresses, no TLB: the comparison is M-mode, translation off).
 *
 * The generated function is `run(budget, entryBlock)`: it returns the instructions it
 * executed and leaves the pc it stopped at in `st[0]`. Blocks are the cases of a switch in
 * a labelled loop (`X`); a block that branches to itself is its own inner loop; other
 * jumps go through the switch; a back edge checks the budget first.
 */
import {
  OP_ADD,
  OP_ADDI,
  OP_ADDIW,
  OP_ADDW,
  OP_AND,
  OP_ANDI,
  OP_AUIPC,
  OP_BEQ,
  OP_BGE,
  OP_BGEU,
  OP_BLT,
  OP_BLTU,
  OP_BNE,
  OP_DIV,
  OP_DIVU,
  OP_DIVUW,
  OP_DIVW,
  OP_FENCE,
  OP_FLD,
  OP_FP,
  OP_FSD,
  OP_JAL,
  OP_LB,
  OP_LBU,
  OP_LD,
  OP_LH,
  OP_LHU,
  OP_LI,
  OP_LUI,
  OP_LW,
  OP_LWU,
  OP_MUL,
  OP_MULW,
  OP_MV,
  OP_NOP,
  OP_OR,
  OP_ORI,
  OP_REM,
  OP_REMU,
  OP_REMUW,
  OP_REMW,
  OP_SB,
  OP_SD,
  OP_SH,
  OP_SLL,
  OP_SLLI,
  OP_SLLIW,
  OP_SLLW,
  OP_SLT,
  OP_SLTI,
  OP_SLTIU,
  OP_SLTU,
  OP_SRA,
  OP_SRAI,
  OP_SRAIW,
  OP_SRAW,
  OP_SRL,
  OP_SRLI,
  OP_SRLIW,
  OP_SRLW,
  OP_SUB,
  OP_SUBW,
  OP_SW,
  OP_XOR,
  OP_XORI,
  X_SINK,
} from "@visor/cpu";
import { fpOp, type Insn, isBranch, mnemonic, type Region } from "./region.ts";

/** Where guest RAM is: physical [base, base + size), below 2^31 so one int32 compare bounds it. */
export interface RamLayout {
  base: number;
  size: number;
}

export class TranslateError extends Error {}

// ------------------------------------------------------------------ runtime helpers
// 64-bit operations too long to inline: the low word is returned, the high word left in R[1].

const R = new Int32Array(2);
const F64 = new Float64Array(1);
const I32 = new Int32Array(F64.buffer);
const TWO32 = 4294967296;
const big = (lo: number, hi: number): bigint => (BigInt(hi) << 32n) | BigInt(lo >>> 0);
const bigU = (lo: number, hi: number): bigint => (BigInt(hi >>> 0) << 32n) | BigInt(lo >>> 0);
function ret(v: bigint): number {
  R[1] = Number(BigInt.asIntN(32, v >> 32n));
  return Number(BigInt.asIntN(32, v));
}
/** Both operands below 2^53 (then a double quotient, floored, is exact). */
const small = (ah: number, bh: number): boolean => ah >>> 0 < 0x200000 && bh >>> 0 < 0x200000;

export const jsHelpers = {
  r: R,
  mul64(al: number, ah: number, bl: number, bh: number): number {
    const a0 = al & 0xffff;
    const a1 = al >>> 16;
    const b0 = bl & 0xffff;
    const b1 = bl >>> 16;
    const p00 = a0 * b0;
    const p01 = a0 * b1;
    const p10 = a1 * b0;
    const mid = (p00 >>> 16) + (p01 & 0xffff) + (p10 & 0xffff);
    const hi32 = a1 * b1 + (p01 >>> 16) + (p10 >>> 16) + (mid >>> 16);
    R[1] = (hi32 + Math.imul(al, bh) + Math.imul(ah, bl)) | 0;
    return Math.imul(al, bl);
  },
  sll64(al: number, ah: number, s: number): number {
    s &= 63;
    if (s === 0) {
      R[1] = ah;
      return al;
    }
    if (s < 32) {
      R[1] = (ah << s) | (al >>> (32 - s));
      return al << s;
    }
    R[1] = al << (s - 32);
    return 0;
  },
  srl64(al: number, ah: number, s: number): number {
    s &= 63;
    if (s === 0) {
      R[1] = ah;
      return al;
    }
    if (s < 32) {
      R[1] = ah >>> s;
      return (al >>> s) | (ah << (32 - s));
    }
    R[1] = 0;
    return (ah >>> (s - 32)) | 0;
  },
  sra64(al: number, ah: number, s: number): number {
    s &= 63;
    if (s === 0) {
      R[1] = ah;
      return al;
    }
    if (s < 32) {
      R[1] = ah >> s;
      return (al >>> s) | (ah << (32 - s));
    }
    R[1] = ah >> 31;
    return ah >> (s - 32);
  },
  divu64(al: number, ah: number, bl: number, bh: number): number {
    if (bl === 0 && bh === 0) {
      R[1] = -1;
      return -1;
    }
    if (small(ah, bh)) {
      const q = Math.floor(((ah >>> 0) * TWO32 + (al >>> 0)) / ((bh >>> 0) * TWO32 + (bl >>> 0)));
      R[1] = Math.floor(q / TWO32) | 0;
      return q >>> 0;
    }
    return ret(bigU(al, ah) / bigU(bl, bh));
  },
  remu64(al: number, ah: number, bl: number, bh: number): number {
    if (bl === 0 && bh === 0) {
      R[1] = ah;
      return al;
    }
    if (small(ah, bh)) {
      const a = (ah >>> 0) * TWO32 + (al >>> 0);
      const b = (bh >>> 0) * TWO32 + (bl >>> 0);
      const r = a - Math.floor(a / b) * b;
      R[1] = Math.floor(r / TWO32) | 0;
      return r >>> 0;
    }
    return ret(bigU(al, ah) % bigU(bl, bh));
  },
  div64(al: number, ah: number, bl: number, bh: number): number {
    if (bl === 0 && bh === 0) {
      R[1] = -1;
      return -1;
    }
    if (al === 0 && ah === -0x80000000 && bl === -1 && bh === -1) {
      R[1] = ah;
      return 0;
    }
    return ret(big(al, ah) / big(bl, bh));
  },
  rem64(al: number, ah: number, bl: number, bh: number): number {
    if (bl === 0 && bh === 0) {
      R[1] = ah;
      return al;
    }
    if (al === 0 && ah === -0x80000000 && bl === -1 && bh === -1) {
      R[1] = 0;
      return 0;
    }
    return ret(big(al, ah) % big(bl, bh));
  },
  i2d(lo: number, hi: number): number {
    I32[0] = lo;
    I32[1] = hi;
    return F64[0]!;
  },
  d2i(d: number): number {
    F64[0] = d;
    R[1] = I32[1]!;
    return I32[0]!;
  },
};
export type JsHelpers = typeof jsHelpers;

/** What a compiled region runs on. */
export interface JsState {
  xlo: Int32Array;
  xhi: Int32Array;
  f: Float64Array;
  dv: DataView;
  /** st[0]: the pc the last run stopped at. */
  st: Float64Array;
}

export type RegionFn = (budget: number, entryBlock: number) => number;

// ------------------------------------------------------------------ code generation

const hex = (v: number): string => `0x${(v >>> 0).toString(16)}`;

/** Low and high word of a 64-bit constant as int32 literals. */
function constPair(v: bigint): [string, string] {
  return [String(Number(BigInt.asIntN(32, v))), String(Number(BigInt.asIntN(32, v >> 32n)))];
}

let unique = 0;

/** The JavaScript source of a region: a factory `(s, h) => run`. */
export function jsSource(region: Region, ram: RamLayout): string {
  const ints = new Set<number>();
  const fps = new Set<number>();
  const wInts = new Set<number>();
  const wFps = new Set<number>();
  const useX = (r: number, write = false) => {
    if (r === 0 || r === X_SINK) return;
    ints.add(r);
    if (write) wInts.add(r);
  };
  const useF = (r: number, write = false) => {
    fps.add(r);
    if (write) wFps.add(r);
  };
  const L = (r: number): string => (r === 0 ? "0" : `l${r}`);
  const H = (r: number): string => (r === 0 ? "0" : `h${r}`);
  const Fr = (r: number): string => `f${r}`;

  const out: string[] = [];
  const emit = (s: string) => out.push(s);
  const set = (rd: number, lo: string, hi: string) => {
    if (rd === X_SINK) return;
    useX(rd, true);
    emit(`l${rd} = ${lo}; h${rd} = ${hi};`);
  };
  /** Compute into tl/th, then assign (rd may be a source). */
  const setT = (rd: number, lo: string, hi: string) => {
    emit(`tl = ${lo}; th = ${hi};`);
    set(rd, "tl", "th");
  };

  const blocks = region.blocks;
  /** Control to `target` from the end of block k: fall, loop, dispatch or exit. */
  const goto = (k: number, target: number, last: boolean): string => {
    const j = region.index.get(target);
    if (j === undefined) return `{ pc = ${target}; break X; }`;
    const budget = j <= k ? `if (n >= budget) { pc = ${target}; break X; } ` : "";
    if (j === k) return `{ ${budget}continue B${k}; }`;
    if (j === k + 1 && last) return `break B${k};`;
    return `{ ${budget}nx = ${j}; continue X; }`;
  };

  for (const [k, b] of blocks.entries()) {
    emit(`case ${k}: B${k}: for (;;) {`);
    emit(`n += ${b.insns.length};`);
    for (const [idx, i] of b.insns.entries()) {
      if (idx === b.insns.length - 1 && (isBranch(i.op) || i.op === OP_JAL)) {
        if (i.op === OP_JAL) genInsn(i, () => {});
        break;
      }
      const left = b.insns.length - idx;
      const sideExit = `{ pc = ${i.pc}; n -= ${left}; break X; }`;
      const addr = (width: number) => {
        useX(i.rs1);
        const imm = i.imm | 0;
        // ta = rs1 + imm - base as a 64-bit sum; in RAM when the high word is 0 and the low is below size - width.
        emit(`ta = (${L(i.rs1)} + ${imm}) | 0;`);
        emit(
          `if (((${H(i.rs1)} + ${imm >> 31} + ((ta >>> 0) < (${L(i.rs1)} >>> 0) ? 1 : 0)) | 0) !== 0 || ((ta - ${ram.base}) >>> 0) > ${ram.size - width}) ${sideExit}`,
        );
        emit(`ta = ta - ${ram.base};`);
      };
      genInsn(i, addr);
    }
    const last = b.insns[b.insns.length - 1]!;
    const fall = b.end;
    if (isBranch(last.op)) {
      useX(last.rs1);
      useX(last.rs2);
      const a = [L(last.rs1), H(last.rs1)] as const;
      const c = [L(last.rs2), H(last.rs2)] as const;
      const lt = `(${a[1]} < ${c[1]} || (${a[1]} === ${c[1]} && (${a[0]} >>> 0) < (${c[0]} >>> 0)))`;
      const ltu = `((${a[1]} >>> 0) < (${c[1]} >>> 0) || (${a[1]} === ${c[1]} && (${a[0]} >>> 0) < (${c[0]} >>> 0)))`;
      const cond: Record<number, string> = {
        [OP_BEQ]: `(${a[0]} === ${c[0]} && ${a[1]} === ${c[1]})`,
        [OP_BNE]: `(${a[0]} !== ${c[0]} || ${a[1]} !== ${c[1]})`,
        [OP_BLT]: lt,
        [OP_BGE]: `!${lt}`,
        [OP_BLTU]: ltu,
        [OP_BGEU]: `!${ltu}`,
      };
      emit(`if ${cond[last.op]} ${goto(k, last.pc + last.imm, false)}`);
      emit(goto(k, fall, true));
    } else if (last.op === OP_JAL) {
      emit(goto(k, last.pc + last.imm, true));
    } else {
      emit(goto(k, fall, true));
    }
    emit("}");
  }

  function genInsn(i: Insn, addr: (w: number) => void): void {
    const { rd, rs1, rs2 } = i;
    const imm = i.imm | 0;
    const a0 = L(rs1);
    const a1 = H(rs1);
    const b0 = L(rs2);
    const b1 = H(rs2);
    const i0 = String(imm);
    const i1 = String(imm >> 31);
    const r1 = () => useX(rs1);
    const r2 = () => {
      useX(rs1);
      useX(rs2);
    };
    switch (i.op) {
      case OP_NOP:
      case OP_FENCE:
        return;
      case OP_LI:
        set(rd, i0, i1);
        return;
      case OP_LUI:
        set(rd, i0, i1);
        return;
      case OP_AUIPC: {
        const [lo, hi] = constPair(BigInt(i.pc) + BigInt(imm));
        set(rd, lo, hi);
        return;
      }
      case OP_JAL: {
        if (rd !== X_SINK) {
          const [lo, hi] = constPair(BigInt(i.pc + i.len));
          set(rd, lo, hi);
        }
        return;
      }
      case OP_MV:
        useX(rs2);
        setT(rd, b0, b1);
        return;
      case OP_ADDI:
        r1();
        emit(`tl = (${a0} + ${i0}) | 0;`);
        emit(`th = (${a1} + ${i1} + ((tl >>> 0) < (${a0} >>> 0) ? 1 : 0)) | 0;`);
        set(rd, "tl", "th");
        return;
      case OP_ADD:
        r2();
        emit(`tl = (${a0} + ${b0}) | 0;`);
        emit(`th = (${a1} + ${b1} + ((tl >>> 0) < (${a0} >>> 0) ? 1 : 0)) | 0;`);
        set(rd, "tl", "th");
        return;
      case OP_SUB:
        r2();
        emit(`tl = (${a0} - ${b0}) | 0;`);
        emit(`th = (${a1} - ${b1} - ((${a0} >>> 0) < (${b0} >>> 0) ? 1 : 0)) | 0;`);
        set(rd, "tl", "th");
        return;
      case OP_XORI:
        r1();
        setT(rd, `${a0} ^ ${i0}`, `${a1} ^ ${i1}`);
        return;
      case OP_ORI:
        r1();
        setT(rd, `${a0} | ${i0}`, `${a1} | ${i1}`);
        return;
      case OP_ANDI:
        r1();
        setT(rd, `${a0} & ${i0}`, `${a1} & ${i1}`);
        return;
      case OP_XOR:
        r2();
        setT(rd, `${a0} ^ ${b0}`, `${a1} ^ ${b1}`);
        return;
      case OP_OR:
        r2();
        setT(rd, `${a0} | ${b0}`, `${a1} | ${b1}`);
        return;
      case OP_AND:
        r2();
        setT(rd, `${a0} & ${b0}`, `${a1} & ${b1}`);
        return;
      case OP_SLTI:
        r1();
        setT(rd, `(${a1} < ${i1} || (${a1} === ${i1} && (${a0} >>> 0) < (${i0} >>> 0))) ? 1 : 0`, "0");
        return;
      case OP_SLTIU:
        r1();
        setT(
          rd,
          `((${a1} >>> 0) < (${i1} >>> 0) || (${a1} === ${i1} && (${a0} >>> 0) < (${i0} >>> 0))) ? 1 : 0`,
          "0",
        );
        return;
      case OP_SLT:
        r2();
        setT(rd, `(${a1} < ${b1} || (${a1} === ${b1} && (${a0} >>> 0) < (${b0} >>> 0))) ? 1 : 0`, "0");
        return;
      case OP_SLTU:
        r2();
        setT(
          rd,
          `((${a1} >>> 0) < (${b1} >>> 0) || (${a1} === ${b1} && (${a0} >>> 0) < (${b0} >>> 0))) ? 1 : 0`,
          "0",
        );
        return;
      case OP_SLLI: {
        r1();
        const s = imm & 63;
        if (s === 0) {
          setT(rd, a0, a1);
          return;
        }
        if (s < 32) {
          setT(rd, `${a0} << ${s}`, `(${a1} << ${s}) | (${a0} >>> ${32 - s})`);
          return;
        }
        setT(rd, "0", `${a0} << ${s - 32}`);
        return;
      }
      case OP_SRLI: {
        r1();
        const s = imm & 63;
        if (s === 0) {
          setT(rd, a0, a1);
          return;
        }
        if (s < 32) {
          setT(rd, `(${a0} >>> ${s}) | (${a1} << ${32 - s})`, `(${a1} >>> ${s}) | 0`);
          return;
        }
        setT(rd, `(${a1} >>> ${s - 32}) | 0`, "0");
        return;
      }
      case OP_SRAI: {
        r1();
        const s = imm & 63;
        if (s === 0) {
          setT(rd, a0, a1);
          return;
        }
        if (s < 32) {
          setT(rd, `(${a0} >>> ${s}) | (${a1} << ${32 - s})`, `${a1} >> ${s}`);
          return;
        }
        setT(rd, `${a1} >> ${s - 32}`, `${a1} >> 31`);
        return;
      }
      case OP_SLL:
      case OP_SRL:
      case OP_SRA: {
        r2();
        const f = i.op === OP_SLL ? "sll64" : i.op === OP_SRL ? "srl64" : "sra64";
        setT(rd, `${f}(${a0}, ${a1}, ${b0})`, "R[1]");
        return;
      }
      case OP_ADDIW:
        r1();
        emit(`tl = (${a0} + ${i0}) | 0;`);
        set(rd, "tl", "tl >> 31");
        return;
      case OP_SLLIW:
        r1();
        emit(`tl = ${a0} << ${imm & 31};`);
        set(rd, "tl", "tl >> 31");
        return;
      case OP_SRLIW:
        r1();
        emit(`tl = (${a0} >>> ${imm & 31}) | 0;`);
        set(rd, "tl", "tl >> 31");
        return;
      case OP_SRAIW:
        r1();
        emit(`tl = ${a0} >> ${imm & 31};`);
        set(rd, "tl", "tl >> 31");
        return;
      case OP_ADDW:
      case OP_SUBW:
      case OP_SLLW:
      case OP_SRLW:
      case OP_SRAW:
      case OP_MULW: {
        r2();
        const e: Record<number, string> = {
          [OP_ADDW]: `(${a0} + ${b0}) | 0`,
          [OP_SUBW]: `(${a0} - ${b0}) | 0`,
          [OP_SLLW]: `${a0} << ${b0}`,
          [OP_SRLW]: `(${a0} >>> ${b0}) | 0`,
          [OP_SRAW]: `${a0} >> ${b0}`,
          [OP_MULW]: `Math.imul(${a0}, ${b0})`,
        };
        emit(`tl = ${e[i.op]};`);
        set(rd, "tl", "tl >> 31");
        return;
      }
      case OP_DIVW:
        r2();
        emit(
          `tl = ${b0} === 0 ? -1 : (${a0} === -2147483648 && ${b0} === -1) ? ${a0} : (${a0} / ${b0}) | 0;`,
        );
        set(rd, "tl", "tl >> 31");
        return;
      case OP_DIVUW:
        r2();
        emit(`tl = ${b0} === 0 ? -1 : ((${a0} >>> 0) / (${b0} >>> 0)) | 0;`);
        set(rd, "tl", "tl >> 31");
        return;
      case OP_REMW:
        r2();
        emit(`tl = ${b0} === 0 ? ${a0} : (${a0} === -2147483648 && ${b0} === -1) ? 0 : (${a0} % ${b0}) | 0;`);
        set(rd, "tl", "tl >> 31");
        return;
      case OP_REMUW:
        r2();
        emit(`tl = ${b0} === 0 ? ${a0} : ((${a0} >>> 0) % (${b0} >>> 0)) | 0;`);
        set(rd, "tl", "tl >> 31");
        return;
      case OP_MUL:
      case OP_DIV:
      case OP_DIVU:
      case OP_REM:
      case OP_REMU: {
        r2();
        const f: Record<number, string> = {
          [OP_MUL]: "mul64",
          [OP_DIV]: "div64",
          [OP_DIVU]: "divu64",
          [OP_REM]: "rem64",
          [OP_REMU]: "remu64",
        };
        setT(rd, `${f[i.op]}(${a0}, ${a1}, ${b0}, ${b1})`, "R[1]");
        return;
      }
      case OP_LD:
        addr(8);
        setT(rd, "dv.getInt32(ta, true)", "dv.getInt32(ta + 4, true)");
        return;
      case OP_LW:
      case OP_LWU:
        addr(4);
        emit("tl = dv.getInt32(ta, true);");
        set(rd, "tl", i.op === OP_LW ? "tl >> 31" : "0");
        return;
      case OP_LH:
        addr(2);
        emit("tl = dv.getInt16(ta, true);");
        set(rd, "tl", "tl >> 31");
        return;
      case OP_LHU:
        addr(2);
        setT(rd, "dv.getUint16(ta, true)", "0");
        return;
      case OP_LB:
        addr(1);
        emit("tl = dv.getInt8(ta);");
        set(rd, "tl", "tl >> 31");
        return;
      case OP_LBU:
        addr(1);
        setT(rd, "dv.getUint8(ta)", "0");
        return;
      case OP_SD:
        addr(8);
        useX(rs2);
        emit(`dv.setInt32(ta, ${b0}, true); dv.setInt32(ta + 4, ${b1}, true);`);
        return;
      case OP_SW:
        addr(4);
        useX(rs2);
        emit(`dv.setInt32(ta, ${b0}, true);`);
        return;
      case OP_SH:
        addr(2);
        useX(rs2);
        emit(`dv.setInt16(ta, ${b0}, true);`);
        return;
      case OP_SB:
        addr(1);
        useX(rs2);
        emit(`dv.setInt8(ta, ${b0});`);
        return;
      case OP_FLD:
        addr(8);
        useF(rd, true);
        emit(`${Fr(rd)} = dv.getFloat64(ta, true);`);
        return;
      case OP_FSD:
        addr(8);
        useF(rs2);
        emit(`dv.setFloat64(ta, ${Fr(rs2)}, true);`);
        return;
      case OP_FP: {
        const f = fpOp(i.imm);
        if (f === undefined) break;
        if (f.name === "fmv.d.x") {
          useX(f.rs1);
          useF(f.rd, true);
          emit(`${Fr(f.rd)} = i2d(${L(f.rs1)}, ${H(f.rs1)});`);
          return;
        }
        if (f.name === "fmv.x.d") {
          useF(f.rs1);
          setT(f.rd, `d2i(${Fr(f.rs1)})`, "R[1]");
          return;
        }
        useF(f.rs1);
        useF(f.rs2);
        useF(f.rd, true);
        const sym = { "fadd.d": "+", "fsub.d": "-", "fmul.d": "*", "fdiv.d": "/" }[f.name];
        emit(`${Fr(f.rd)} = ${Fr(f.rs1)} ${sym} ${Fr(f.rs2)};`);
        return;
      }
    }
    throw new TranslateError(`${region.name}: cannot translate ${mnemonic(i)} at ${hex(i.pc)}`);
  }

  const body = out.join("\n");
  const ri = [...ints].sort((a, b) => a - b);
  const rf = [...fps].sort((a, b) => a - b);
  const load = [
    ...ri.map((r) => `let l${r} = xlo[${r}], h${r} = xhi[${r}];`),
    ...rf.map((r) => `let f${r} = F[${r}];`),
  ];
  const store = [
    ...[...wInts].sort((a, b) => a - b).map((r) => `xlo[${r}] = l${r}; xhi[${r}] = h${r};`),
    ...[...wFps].sort((a, b) => a - b).map((r) => `F[${r}] = f${r};`),
  ];
  return [
    `// ${region.name} ${hex(region.entry)} #${unique++}`,
    '"use strict";',
    "const xlo = s.xlo, xhi = s.xhi, F = s.f, dv = s.dv, st = s.st, R = h.r;",
    "const mul64 = h.mul64, sll64 = h.sll64, srl64 = h.srl64, sra64 = h.sra64;",
    "const divu64 = h.divu64, remu64 = h.remu64, div64 = h.div64, rem64 = h.rem64, i2d = h.i2d, d2i = h.d2i;",
    "return function run(budget, nx) {",
    "if (budget <= 0) return 0;",
    ...load,
    "let n = 0, pc = 0, tl = 0, th = 0, ta = 0;",
    "X: for (;;) {",
    "switch (nx) {",
    body,
    `default: pc = ${region.entry}; break X;`,
    "}",
    "}",
    ...store,
    "st[0] = pc;",
    "return n;",
    "};",
  ].join("\n");
}

/** Translate a region to a JS function bound to `state`. */
export function translateJs(region: Region, ram: RamLayout, state: JsState): RegionFn {
  const src = jsSource(region, ram);
  const factory = new Function("s", "h", src) as (s: JsState, h: JsHelpers) => RegionFn;
  return factory(state, jsHelpers);
}
