/**
 * Backend (b): a region translated to a WebAssembly module by a hand-written binary
 * emitter (WebAssembly core specification 2.0, chapter 5 "Binary format").
 *
 * Guest integer registers are i64 locals, FP registers f64 locals, loaded from the state
 * area at the start of the imported memory on entry and stored back (the changed ones) on
 * exit. Guest RAM is the same memory from offset RAM_OFFSET, with a bounds check per access
 * (physical addresses, no TLB, as in the JS backend).
 *
 * The module exports `run(budget: i32, entryBlock: i32) -> i32` (instructions executed);
 * the pc it stopped at is left in the state area. Control flow: a `loop` dispatcher around
 * nested `block`s entered by `br_table` (falling out of block k's code reaches block k+1's),
 * each block's code inside its own `loop` so a branch to itself is one `br`; a back edge
 * checks the budget first.
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
import { type RamLayout, type RegionFn, TranslateError } from "./js.ts";
import { fpOp, type Insn, isBranch, mnemonic, type Region } from "./region.ts";

/** The state area at the start of the memory: x[i] at 8i, f[i] at F_OFFSET + 8i, the pc. */
export const F_OFFSET = 256;
export const PC_OFFSET = 512;
/** Guest RAM starts here in the memory (one 64 KiB page for the state). */
export const RAM_OFFSET = 65536;

// Opcodes (the binary format's instruction index).
const I32 = 0x7f;
const I64 = 0x7e;
const F64 = 0x7c;
const VOID = 0x40;
const op = {
  unreachable: 0x00,
  block: 0x02,
  loop: 0x03,
  if: 0x04,
  else: 0x05,
  end: 0x0b,
  br: 0x0c,
  brIf: 0x0d,
  brTable: 0x0e,
  return: 0x0f,
  localGet: 0x20,
  localSet: 0x21,
  localTee: 0x22,
  i64Load: 0x29,
  f64Load: 0x2b,
  i64Load8S: 0x30,
  i64Load8U: 0x31,
  i64Load16S: 0x32,
  i64Load16U: 0x33,
  i64Load32S: 0x34,
  i64Load32U: 0x35,
  i64Store: 0x37,
  f64Store: 0x39,
  i64Store8: 0x3c,
  i64Store16: 0x3d,
  i64Store32: 0x3e,
  i32Const: 0x41,
  i64Const: 0x42,
  i32Eqz: 0x45,
  i32Eq: 0x46,
  i32LeS: 0x4c,
  i32GeS: 0x4e,
  i64Eqz: 0x50,
  i64Eq: 0x51,
  i64Ne: 0x52,
  i64LtS: 0x53,
  i64LtU: 0x54,
  i64GtU: 0x56,
  i64GeS: 0x59,
  i64GeU: 0x5a,
  i32Add: 0x6a,
  i32Sub: 0x6b,
  i32Mul: 0x6c,
  i32DivS: 0x6d,
  i32DivU: 0x6e,
  i32RemS: 0x6f,
  i32RemU: 0x70,
  i32And: 0x71,
  i32Shl: 0x74,
  i32ShrS: 0x75,
  i32ShrU: 0x76,
  i64Add: 0x7c,
  i64Sub: 0x7d,
  i64Mul: 0x7e,
  i64DivS: 0x7f,
  i64DivU: 0x80,
  i64RemS: 0x81,
  i64RemU: 0x82,
  i64And: 0x83,
  i64Or: 0x84,
  i64Xor: 0x85,
  i64Shl: 0x86,
  i64ShrS: 0x87,
  i64ShrU: 0x88,
  f64Add: 0xa0,
  f64Sub: 0xa1,
  f64Mul: 0xa2,
  f64Div: 0xa3,
  i32WrapI64: 0xa7,
  i64ExtendI32S: 0xac,
  i64ExtendI32U: 0xad,
  i64ReinterpretF64: 0xbd,
  f64ReinterpretI64: 0xbf,
} as const;

/** A growing byte buffer with the binary format's integer encodings. */
export class Bytes {
  readonly b: number[] = [];
  byte(...v: number[]): this {
    for (const x of v) this.b.push(x & 0xff);
    return this;
  }
  /** Unsigned LEB128 (u32). */
  u32(v: number): this {
    v >>>= 0;
    do {
      let x = v & 0x7f;
      v >>>= 7;
      if (v !== 0) x |= 0x80;
      this.b.push(x);
    } while (v !== 0);
    return this;
  }
  /** Signed LEB128 of a 32-bit value. */
  s32(v: number): this {
    v |= 0;
    for (;;) {
      const x = v & 0x7f;
      v >>= 7;
      if ((v === 0 && (x & 0x40) === 0) || (v === -1 && (x & 0x40) !== 0)) {
        this.b.push(x);
        return this;
      }
      this.b.push(x | 0x80);
    }
  }
  /** Signed LEB128 of a 64-bit value. */
  s64(v: bigint): this {
    v = BigInt.asIntN(64, v);
    for (;;) {
      const x = Number(v & 0x7fn);
      v >>= 7n;
      if ((v === 0n && (x & 0x40) === 0) || (v === -1n && (x & 0x40) !== 0)) {
        this.b.push(x);
        return this;
      }
      this.b.push(x | 0x80);
    }
  }
  name(s: string): this {
    const u = new TextEncoder().encode(s);
    this.u32(u.length);
    for (const x of u) this.b.push(x);
    return this;
  }
  append(o: Bytes): this {
    for (const x of o.b) this.b.push(x);
    return this;
  }
  /** A vector section entry: size-prefixed content. */
  section(id: number, content: Bytes): this {
    this.byte(id).u32(content.b.length);
    return this.append(content);
  }
}

/** A function body under construction, with named structured-control labels. */
class Body extends Bytes {
  private readonly labels: string[] = [];
  open(kind: number, label: string, type = VOID): this {
    this.labels.push(label);
    return this.byte(kind, type);
  }
  end(): this {
    this.labels.pop();
    return this.byte(op.end);
  }
  depth(label: string): number {
    const i = this.labels.lastIndexOf(label);
    if (i < 0) throw new Error(`wasm emitter: no label ${label}`);
    return this.labels.length - 1 - i;
  }
  br(label: string): this {
    return this.byte(op.br).u32(this.depth(label));
  }
  get(l: number): this {
    return this.byte(op.localGet).u32(l);
  }
  set(l: number): this {
    return this.byte(op.localSet).u32(l);
  }
  i32(v: number): this {
    return this.byte(op.i32Const).s32(v);
  }
  i64(v: bigint | number): this {
    return this.byte(op.i64Const).s64(BigInt(v));
  }
  mem(opcode: number, align: number, offset: number): this {
    return this.byte(opcode).u32(align).u32(offset);
  }
}

let unique = 0;

/** The module's bytes for a region. */
export function wasmModule(region: Region, ram: RamLayout, memoryPages: number): Uint8Array<ArrayBuffer> {
  // Locals: 0 budget, 1 entry block (params); then n, pc, ta (i64 address), x regs, f regs.
  const ints = new Set<number>();
  const fps = new Set<number>();
  const wInts = new Set<number>();
  const wFps = new Set<number>();
  const scan = (i: Insn) => {
    const rx = (r: number, w = false) => {
      if (r === 0 || r === X_SINK) return;
      ints.add(r);
      if (w) wInts.add(r);
    };
    const rf = (r: number, w = false) => {
      fps.add(r);
      if (w) wFps.add(r);
    };
    if (i.op === OP_FP) {
      const f = fpOp(i.imm);
      if (f === undefined)
        throw new TranslateError(`${region.name}: cannot translate ${mnemonic(i)} at 0x${i.pc.toString(16)}`);
      if (f.name === "fmv.d.x") {
        rx(f.rs1);
        rf(f.rd, true);
      } else if (f.name === "fmv.x.d") {
        rf(f.rs1);
        rx(f.rd, true);
      } else {
        rf(f.rs1);
        rf(f.rs2);
        rf(f.rd, true);
      }
      return;
    }
    if (i.op === OP_FLD) {
      rx(i.rs1);
      rf(i.rd, true);
      return;
    }
    if (i.op === OP_FSD) {
      rx(i.rs1);
      rf(i.rs2);
      return;
    }
    rx(i.rs1);
    rx(i.rs2);
    rx(i.rd, true);
  };
  for (const b of region.blocks) for (const i of b.insns) scan(i);
  const N = 2;
  const PC = 3;
  const TA = 4;
  const xl = new Map<number, number>();
  const fl = new Map<number, number>();
  let next = 5;
  for (const r of [...ints].sort((a, b) => a - b)) xl.set(r, next++);
  for (const r of [...fps].sort((a, b) => a - b)) fl.set(r, next++);

  const f = new Body();
  const getX = (r: number) => (r === 0 ? f.i64(0) : f.get(xl.get(r)!));
  const setX = (r: number) => (r === X_SINK ? f.byte(0x1a /* drop */) : f.set(xl.get(r)!));
  const getF = (r: number) => f.get(fl.get(r)!);
  const setF = (r: number) => f.set(fl.get(r)!);
  const exitTo = (pc: number) => f.i64(pc).set(PC).br("X");

  // budget <= 0 returns 0 at once (a call that only makes V8 compile the function).
  f.get(0).i32(0).byte(op.i32LeS, op.if, VOID).i32(0).byte(op.return, op.end);
  for (const [r, l] of xl)
    f.i32(0)
      .mem(op.i64Load, 3, 8 * r)
      .set(l);
  for (const [r, l] of fl)
    f.i32(0)
      .mem(op.f64Load, 3, F_OFFSET + 8 * r)
      .set(l);

  const blocks = region.blocks;
  const nb = blocks.length;
  f.open(op.block, "X");
  f.open(op.loop, "D");
  for (let k = nb - 1; k >= 0; k--) f.open(op.block, `E${k}`);
  f.get(1).byte(op.brTable).u32(nb);
  for (let k = 0; k < nb; k++) f.u32(k);
  f.u32(0);
  f.end(); // E0: block 0's code follows

  /** Control to `target` from block k: fall, loop, dispatch or exit. */
  const goto = (k: number, target: number, last: boolean) => {
    const j = region.index.get(target);
    if (j === undefined) return exitTo(target);
    if (j <= k) {
      f.get(N).get(0).byte(op.i32GeS);
      f.open(op.if, "budget");
      exitTo(target);
      f.end();
    }
    if (j === k) return f.br(`S${k}`);
    if (j === k + 1 && last) return f.br(`F${k}`);
    return f.i32(j).set(1).br("D");
  };

  for (const [k, b] of blocks.entries()) {
    f.open(op.block, `F${k}`);
    f.open(op.loop, `S${k}`);
    f.get(N).i32(b.insns.length).byte(op.i32Add).set(N);
    for (const [idx, i] of b.insns.entries()) {
      const left = b.insns.length - idx;
      if (idx === b.insns.length - 1 && (isBranch(i.op) || i.op === OP_JAL)) {
        if (i.op === OP_JAL && i.rd !== X_SINK) f.i64(i.pc + i.len).set(xl.get(i.rd)!);
        break;
      }
      /** Push the RAM offset (i32) of rs1 + imm, or leave the region at this instruction. */
      const addr = (width: number) => {
        getX(i.rs1)
          .i64((i.imm | 0) - ram.base)
          .byte(op.i64Add)
          .byte(op.localTee)
          .u32(TA)
          .i64(ram.size - width)
          .byte(op.i64GtU);
        f.open(op.if, "side");
        f.get(N).i32(left).byte(op.i32Sub).set(N);
        exitTo(i.pc);
        f.end();
        f.get(TA).byte(op.i32WrapI64);
      };
      genInsn(i, addr);
    }
    const last = b.insns[b.insns.length - 1]!;
    if (isBranch(last.op)) {
      getX(last.rs1);
      getX(last.rs2);
      const cmp: Record<number, number> = {
        [OP_BEQ]: op.i64Eq,
        [OP_BNE]: op.i64Ne,
        [OP_BLT]: op.i64LtS,
        [OP_BGE]: op.i64GeS,
        [OP_BLTU]: op.i64LtU,
        [OP_BGEU]: op.i64GeU,
      };
      f.byte(cmp[last.op]!);
      f.open(op.if, "taken");
      goto(k, last.pc + last.imm, false);
      f.end();
      goto(k, b.end, true);
    } else if (last.op === OP_JAL) {
      goto(k, last.pc + last.imm, true);
    } else {
      goto(k, b.end, true);
    }
    f.end(); // S
    f.end(); // F
    if (k + 1 < nb) f.end(); // E(k+1): block k+1's code follows
  }
  // Nothing falls off the last block (its goto always branches), but the validator needs an end.
  f.byte(op.unreachable);
  f.end(); // D
  f.end(); // X
  for (const r of [...wInts].sort((a, b) => a - b))
    f.i32(0)
      .get(xl.get(r)!)
      .mem(op.i64Store, 3, 8 * r);
  for (const r of [...wFps].sort((a, b) => a - b))
    f.i32(0)
      .get(fl.get(r)!)
      .mem(op.f64Store, 3, F_OFFSET + 8 * r);
  f.i32(0).get(PC).mem(op.i64Store, 3, PC_OFFSET);
  f.get(N);
  f.byte(op.end);

  function genInsn(i: Insn, addr: (width: number) => void): void {
    const { rd, rs1, rs2 } = i;
    const imm = i.imm | 0;
    const bin = (o: number) => {
      getX(rs1);
      getX(rs2);
      f.byte(o);
      setX(rd);
    };
    const binImm = (o: number, v: number | bigint) => {
      getX(rs1);
      f.i64(v).byte(o);
      setX(rd);
    };
    /** A W op: on the low words, the result sign-extended. */
    const w32 = (emit: () => void) => {
      emit();
      f.byte(op.i64ExtendI32S);
      setX(rd);
    };
    const lo = (r: number) => getX(r).byte(op.i32WrapI64);
    switch (i.op) {
      case OP_NOP:
      case OP_FENCE:
        return;
      case OP_LI:
      case OP_LUI:
        f.i64(imm);
        setX(rd);
        return;
      case OP_AUIPC:
        f.i64(BigInt(i.pc) + BigInt(imm));
        setX(rd);
        return;
      case OP_MV:
        getX(rs2);
        setX(rd);
        return;
      case OP_ADDI:
        binImm(op.i64Add, imm);
        return;
      case OP_XORI:
        binImm(op.i64Xor, imm);
        return;
      case OP_ORI:
        binImm(op.i64Or, imm);
        return;
      case OP_ANDI:
        binImm(op.i64And, imm);
        return;
      case OP_SLLI:
        binImm(op.i64Shl, imm & 63);
        return;
      case OP_SRLI:
        binImm(op.i64ShrU, imm & 63);
        return;
      case OP_SRAI:
        binImm(op.i64ShrS, imm & 63);
        return;
      case OP_SLTI:
      case OP_SLTIU:
        getX(rs1);
        f.i64(imm).byte(i.op === OP_SLTI ? op.i64LtS : op.i64LtU, op.i64ExtendI32U);
        setX(rd);
        return;
      case OP_ADD:
        bin(op.i64Add);
        return;
      case OP_SUB:
        bin(op.i64Sub);
        return;
      case OP_XOR:
        bin(op.i64Xor);
        return;
      case OP_OR:
        bin(op.i64Or);
        return;
      case OP_AND:
        bin(op.i64And);
        return;
      case OP_SLL:
        bin(op.i64Shl);
        return; // wasm masks the count to 6 bits, as RISC-V does
      case OP_SRL:
        bin(op.i64ShrU);
        return;
      case OP_SRA:
        bin(op.i64ShrS);
        return;
      case OP_MUL:
        bin(op.i64Mul);
        return;
      case OP_SLT:
      case OP_SLTU:
        getX(rs1);
        getX(rs2);
        f.byte(i.op === OP_SLT ? op.i64LtS : op.i64LtU, op.i64ExtendI32U);
        setX(rd);
        return;
      case OP_ADDIW:
        w32(() => lo(rs1).i32(imm).byte(op.i32Add));
        return;
      case OP_SLLIW: {
        w32(() =>
          lo(rs1)
            .i32(imm & 31)
            .byte(op.i32Shl),
        );
        return;
      }
      case OP_SRLIW: {
        w32(() =>
          lo(rs1)
            .i32(imm & 31)
            .byte(op.i32ShrU),
        );
        return;
      }
      case OP_SRAIW: {
        w32(() =>
          lo(rs1)
            .i32(imm & 31)
            .byte(op.i32ShrS),
        );
        return;
      }
      case OP_ADDW:
      case OP_SUBW:
      case OP_SLLW:
      case OP_SRLW:
      case OP_SRAW:
      case OP_MULW: {
        const o: Record<number, number> = {
          [OP_ADDW]: op.i32Add,
          [OP_SUBW]: op.i32Sub,
          [OP_SLLW]: op.i32Shl,
          [OP_SRLW]: op.i32ShrU,
          [OP_SRAW]: op.i32ShrS,
          [OP_MULW]: op.i32Mul,
        };
        w32(() => {
          lo(rs1);
          lo(rs2);
          f.byte(o[i.op]!);
        });
        return;
      }
      case OP_DIVU:
      case OP_REMU:
        // x / 0 = all ones, x % 0 = x (wasm would trap).
        getX(rs2).byte(op.i64Eqz, op.if, I64);
        if (i.op === OP_DIVU) f.i64(-1);
        else getX(rs1);
        f.byte(op.else);
        getX(rs1);
        getX(rs2);
        f.byte(i.op === OP_DIVU ? op.i64DivU : op.i64RemU, op.end);
        setX(rd);
        return;
      case OP_DIV:
      case OP_REM:
        // x / 0 = -1, x % 0 = x; MIN / -1 = MIN (wasm traps), MIN % -1 = 0 (wasm gives 0).
        getX(rs2).byte(op.i64Eqz, op.if, I64);
        if (i.op === OP_DIV) f.i64(-1);
        else getX(rs1);
        f.byte(op.else);
        if (i.op === OP_DIV) {
          getX(rs1)
            .i64(-(2n ** 63n))
            .byte(op.i64Eq);
          getX(rs2).i64(-1).byte(op.i64Eq, op.i32And, op.if, I64);
          f.i64(-(2n ** 63n)).byte(op.else);
          getX(rs1);
          getX(rs2);
          f.byte(op.i64DivS, op.end);
        } else {
          getX(rs1);
          getX(rs2);
          f.byte(op.i64RemS);
        }
        f.byte(op.end);
        setX(rd);
        return;
      case OP_DIVW:
      case OP_DIVUW:
      case OP_REMW:
      case OP_REMUW: {
        w32(() => {
          lo(rs2).byte(op.i32Eqz, op.if, I32);
          if (i.op === OP_DIVW || i.op === OP_DIVUW) f.i32(-1);
          else lo(rs1);
          f.byte(op.else);
          if (i.op === OP_DIVW) {
            lo(rs1).i32(-0x80000000).byte(op.i32Eq);
            lo(rs2).i32(-1).byte(op.i32Eq, op.i32And, op.if, I32);
            f.i32(-0x80000000).byte(op.else);
            lo(rs1);
            lo(rs2);
            f.byte(op.i32DivS, op.end);
          } else {
            lo(rs1);
            lo(rs2);
            f.byte(i.op === OP_DIVUW ? op.i32DivU : i.op === OP_REMW ? op.i32RemS : op.i32RemU);
          }
          f.byte(op.end);
        });
        return;
      }
      case OP_LD:
      case OP_LW:
      case OP_LWU:
      case OP_LH:
      case OP_LHU:
      case OP_LB:
      case OP_LBU: {
        const m: Record<number, [number, number, number]> = {
          [OP_LD]: [8, op.i64Load, 3],
          [OP_LW]: [4, op.i64Load32S, 2],
          [OP_LWU]: [4, op.i64Load32U, 2],
          [OP_LH]: [2, op.i64Load16S, 1],
          [OP_LHU]: [2, op.i64Load16U, 1],
          [OP_LB]: [1, op.i64Load8S, 0],
          [OP_LBU]: [1, op.i64Load8U, 0],
        };
        const [w, o, al] = m[i.op]!;
        addr(w);
        f.mem(o, al, RAM_OFFSET);
        setX(rd);
        return;
      }
      case OP_SD:
      case OP_SW:
      case OP_SH:
      case OP_SB: {
        const m: Record<number, [number, number, number]> = {
          [OP_SD]: [8, op.i64Store, 3],
          [OP_SW]: [4, op.i64Store32, 2],
          [OP_SH]: [2, op.i64Store16, 1],
          [OP_SB]: [1, op.i64Store8, 0],
        };
        const [w, o, al] = m[i.op]!;
        addr(w);
        getX(rs2);
        f.mem(o, al, RAM_OFFSET);
        return;
      }
      case OP_FLD:
        addr(8);
        f.mem(op.f64Load, 3, RAM_OFFSET);
        setF(rd);
        return;
      case OP_FSD:
        addr(8);
        getF(rs2);
        f.mem(op.f64Store, 3, RAM_OFFSET);
        return;
      case OP_FP: {
        const p = fpOp(i.imm)!;
        if (p.name === "fmv.d.x") {
          getX(p.rs1).byte(op.f64ReinterpretI64);
          setF(p.rd);
          return;
        }
        if (p.name === "fmv.x.d") {
          getF(p.rs1).byte(op.i64ReinterpretF64);
          setX(p.rd);
          return;
        }
        getF(p.rs1);
        getF(p.rs2);
        f.byte(
          { "fadd.d": op.f64Add, "fsub.d": op.f64Sub, "fmul.d": op.f64Mul, "fdiv.d": op.f64Div }[p.name],
        );
        setF(p.rd);
        return;
      }
    }
    throw new TranslateError(`${region.name}: cannot translate ${mnemonic(i)} at 0x${i.pc.toString(16)}`);
  }

  // Locals after the two params: n (i32), pc (i64), ta (i64), then the registers.
  const locals = new Bytes();
  locals.u32(4).u32(1).byte(I32).u32(2).byte(I64).u32(xl.size).byte(I64).u32(fl.size).byte(F64);
  const code = new Bytes().append(locals).append(f);
  const m = new Bytes().byte(0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00);
  m.section(1, new Bytes().u32(1).byte(0x60).u32(2).byte(I32, I32).u32(1).byte(I32));
  m.section(2, new Bytes().u32(1).name("e").name("m").byte(0x02, 0x00).u32(memoryPages));
  m.section(3, new Bytes().u32(1).u32(0));
  m.section(7, new Bytes().u32(1).name("run").byte(0x00).u32(0));
  m.section(10, new Bytes().u32(1).u32(code.b.length).append(code));
  // A custom section that makes every module's bytes unique, so no compile cache can answer.
  m.section(0, new Bytes().name("visor").name(`${region.name}#${unique++}`));
  return Uint8Array.from(m.b);
}

/** Translate a region to a wasm function over `memory` (state area, then RAM at RAM_OFFSET). */
export function translateWasm(region: Region, ram: RamLayout, memory: WebAssembly.Memory): RegionFn {
  const bytes = wasmModule(region, ram, memory.buffer.byteLength / 65536);
  const mod = new WebAssembly.Module(bytes);
  const inst = new WebAssembly.Instance(mod, { e: { m: memory } });
  return inst.exports.run as RegionFn;
}
