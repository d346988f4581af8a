/**
 * Region formation and code generation: RISC-V instructions of one 4 KiB physical page
 * become one WebAssembly function.
 *
 * A region is the code reachable from an entry offset without leaving the page: it
 * follows fall-through, conditional branches and JAL whose targets are in the page, and
 * stops at anything it does not translate (system instructions, CSRs, AMOs: the
 * interpreter runs those), at JALR, at the page's end and at MAX_INSNS. It is split into
 * basic blocks; the function is a dispatch loop over them (`br_table` on the block number),
 * so loops inside a page run without leaving WebAssembly.
 *
 * The generated function's contract (see jit/index.ts for the caller):
 *   f(n, limit, entry, vpageLo, vpageHi, fpOk) -> n'
 * - `n` is the run's instruction count so far, `limit` the count at which the run must
 *   stop and look around (the interpreter's slice limit). A block runs only when all of
 *   its instructions fit under the limit, so a run stops at exactly the instruction the
 *   interpreter would have stopped at.
 * - `entry` is the block to start at; `vpage` the virtual page the code runs at (the code
 *   is position-independent: the same physical page mapped at two addresses shares it).
 * - `fpOk` is 1 when FP loads and stores may skip their FS checks (core.ts fpFast).
 * - It returns the new count, and leaves in the state buffer how it left (ST_EXIT) and,
 *   for EXIT_PC*, the next pc (ST_PC). Integer registers live in i64 locals inside the
 *   function and go back to the state buffer on every exit.
 * Every instruction counts as executed when it starts, as in the interpreter: a load that
 * faults counts, and the trap leaves the pc where raise() put it (EXIT_TRAP).
 */
import {
  CHAIN_SIZE,
  ST_CHAIN,
  ST_DSET,
  ST_EXIT,
  ST_FCSR,
  ST_FPR,
  ST_PC,
  ST_XHI,
  ST_XLO,
  ST_XSET,
  TLB_MASK,
  TLB_R_PAGE,
  TLB_R_TAG,
  TLB_SIZE,
  TLB_W_PAGE,
  TLB_W_TAG,
  TLB_X_PAGE,
  TLB_X_TAG,
} from "../core.ts";
import * as D from "../decode.ts";
import { type Bytes, Code, encodeModule, F64, I32, I64, Op } from "./wasm.ts";

/** How translated code left (ST_EXIT). */
export const EXIT_PC = 0; // at ST_PC, nothing to look at
export const EXIT_TRAP = 2; // at the hart's pc (a trap was taken), the run looks around
export const EXIT_HELPER = 3; // at the hart's pc, set by the interpreter's general path (no look-around)
export const EXIT_BEFORE = 4; // at ST_PC, before an instruction the interpreter must run (a TLB miss, FS not dirty)

/** Instructions per region at most. */
export const MAX_INSNS = 400;
/** Return sites a JALR compares its target with before leaving the region (returnInPage). */
const MAX_RETURN_SITES = 8;

const TLB_ARRAY = TLB_SIZE * 4;
/**
 * (address >>> 9) & this: the byte offset of its TLB tag (entry (address >>> 12) & TLB_MASK,
 * 8 bytes each: the i64 whose low word is the page-aligned low word of the address and
 * whose high word is its high word). Half of it, plus the set's offset, is the offset of
 * the entry's page (4 bytes each).
 */
const TLB_TAG_BYTES = TLB_MASK << 3;

/** The region function's type index (call_indirect through the chain table checks it). */
const REGION_TYPE = 1;

// helper imports, in function index order
const H_GENERAL = 0; // (w, imm, pcLo, pcHi, n) -> 0 done, pc advanced | EXIT_TRAP | EXIT_HELPER

// locals
const P_N = 0;
const P_LIMIT = 1;
const P_ENTRY = 2;
const P_VLO = 3;
const P_VHI = 4;
const P_FPOK = 5;
const L_VBASE = 6; // i64
const L_BB = 7; // i32
const L_DSET = 8; // i32
const L_A = 9; // i64 address
const L_ALO = 10; // i32
const L_T = 11; // i32 TLB slot byte offset
const L_R = 12; // i32 helper status
const L_V = 13; // i64 scratch
const L_V2 = 14; // i64 scratch
const L_V3 = 15; // i64 scratch
const L_X = 15; // x[i] is local L_X + i (i = 1..32; 32 is the x0 sink)
const LOCALS: number[] = [I64, I32, I32, I64, I32, I32, I32, I64, I64, I64];
for (let i = 1; i <= 32; i++) LOCALS.push(I64);
const L_FA = 48; // f64 scratch
const L_FB = 49;
const L_FR = 50;
LOCALS.push(F64, F64, F64);
const L_CH = 51; // i32: the exit is a jump whose target may be translated (try the chain cache)
LOCALS.push(I32);

interface Insn {
  off: number;
  w: number;
  imm: number;
  len: number;
}

interface Block {
  start: number;
  insns: Insn[];
  /** Where control goes after the last instruction when it is not a jump: an offset, or -1 (exit at `end`). */
  next: number;
  end: number;
}

export interface Region {
  /** The function's body (regionModule makes modules of them). */
  body: Bytes;
  /** Block start offsets (entries into the function) and their instruction counts. */
  starts: number[];
  lengths: number[];
  /** Instructions translated. */
  count: number;
  /** The region has FP loads or stores (callers pass fpOk). */
  hasFp: boolean;
}

/** FP CSRs (fflags, frm, fcsr): translated inline, the others end a region. */
function isFpCsr(raw: number): boolean {
  const csr = raw >>> 20;
  return csr >= 1 && csr <= 3 && ((raw >>> 12) & 3) !== 0;
}

/** Ops the translator handles inline or through the general helper. */
function translatable(op: number, imm: number): boolean {
  // CSRs and AMOs: FP CSRs inline, the rest through the general path (a CSR write leaves)
  if (op === D.OP_CSR) return ((imm >>> 12) & 3) !== 0;
  if (op === D.OP_AMO_W || op === D.OP_AMO_D) return true;
  if (op >= D.OP_LUI && op <= D.OP_FENCE_I) return true;
  if (op >= D.OP_FLW && op <= D.OP_FP) return true;
  return op === D.OP_LI || op === D.OP_MV || op === D.OP_NOP;
}

function isBranch(op: number): boolean {
  return op >= D.OP_BEQ && op <= D.OP_BGEU;
}

/** Decode the instruction at `off` of the page at RAM offset `pageOff`, or undefined (straddling the page end). */
function decodeAt(dv: DataView, pageOff: number, off: number): Insn | undefined {
  const h = dv.getUint16(pageOff + off, true);
  let w: number;
  if ((h & 3) !== 3) w = D.decode16(h);
  else if (off <= 0xffc) w = D.decode32(dv.getInt32(pageOff + off, true));
  else return undefined;
  return { off, w, imm: D.decodedImm, len: 4 - ((w >>> 6) & 2) };
}

/**
 * Find the region from `entry` in the page at RAM offset `pageOff` and generate its
 * module; undefined when the first instruction is not translatable.
 */
export function translateRegion(
  dv: DataView,
  pageOff: number,
  entry: number,
  ran?: Int32Array,
): Region | undefined {
  // 1. reachable instructions
  const insns = new Map<number, Insn>();
  const leaders = new Set<number>([entry]);
  const work = [entry];
  const returns = new Set<number>();
  const addReturn = (r: number): void => {
    if (r < 4096) {
      returns.add(r);
      leaders.add(r);
      work.push(r);
    }
  };
  while (work.length > 0 && insns.size < MAX_INSNS) {
    let off = work.pop()!;
    while (off >= 0 && off < 4096 && !insns.has(off) && insns.size < MAX_INSNS) {
      // With `ran` (the page's decoded slots), only code that has run: cold paths stay out.
      if (ran !== undefined && off !== entry && ran[off] === 0) break;
      const ins = decodeAt(dv, pageOff, off);
      if (ins === undefined || !translatable(ins.w & 0x7f, ins.imm)) break;
      insns.set(off, ins);
      const op = ins.w & 0x7f;
      if (isBranch(op) || op === D.OP_JAL) {
        const t = off + ins.imm;
        if (t >= 0 && t < 4096 && (t & 1) === 0) {
          leaders.add(t);
          work.push(t);
        }
        if (op === D.OP_JAL) {
          // a call: where it returns to starts a block (an entry when the callee's JALR lands there)
          if (((ins.w >>> 8) & 0xff) !== D.X_SINK) addReturn(off + ins.len);
          break;
        }
        leaders.add(off + ins.len);
      }
      if (op === D.OP_JALR) {
        if (((ins.w >>> 8) & 0xff) !== D.X_SINK) addReturn(off + ins.len);
        break;
      }
      off += ins.len;
    }
  }
  if (!insns.has(entry)) return undefined;
  // 2. basic blocks from each leader that was translated
  const blocks: Block[] = [];
  const index = new Map<number, number>();
  const starts = [...leaders].filter((l) => insns.has(l)).sort((a, b) => a - b);
  for (const s of starts) {
    index.set(s, blocks.length);
    const b: Block = { start: s, insns: [], next: -1, end: s };
    let off = s;
    for (;;) {
      const ins = insns.get(off);
      if (ins === undefined) {
        b.end = off;
        break;
      }
      b.insns.push(ins);
      off += ins.len;
      const op = ins.w & 0x7f;
      if (isBranch(op) || op === D.OP_JAL || op === D.OP_JALR) {
        b.end = off;
        break;
      }
      if (leaders.has(off) && insns.has(off)) {
        b.next = off;
        b.end = off;
        break;
      }
    }
    blocks.push(b);
  }
  let hasFp = false;
  for (const ins of insns.values()) {
    const op = ins.w & 0x7f;
    if ((op >= D.OP_FLW && op <= D.OP_FP) || op === D.OP_CSR) hasFp = true;
  }
  const gen = new Gen(blocks, index, [...returns].filter((r) => insns.has(r)).slice(0, MAX_RETURN_SITES));
  return {
    body: gen.emit(),
    starts: blocks.map((b) => b.start),
    lengths: blocks.map((b) => b.insns.length),
    count: insns.size,
    hasFp,
  };
}

/**
 * One module of region functions, exported as f0, f1, ...: regions are compiled in
 * batches, because each WebAssembly module costs tens of microseconds to compile and
 * instantiate however small it is (docs/binary-translation.md, "Batches").
 */
export function regionModule(bodies: readonly Bytes[]): Uint8Array {
  return encodeModule({
    types: [
      { params: [I32, I32, I32, I32, I32], results: [I32] }, // general
      { params: [I32, I32, I32, I32, I32, I32], results: [I32] }, // the region
    ],
    imports: [{ name: "general", type: 0 }],
    memories: [
      { name: "ram", minPages: 0 },
      { name: "st", minPages: 0 },
    ],
    table: "tbl",
    funcs: bodies.map((body, i) => ({ type: REGION_TYPE, locals: LOCALS, body, exportName: `f${i}` })),
  });
}

/**
 * The trampoline: `enter(index, n, limit, entry, vLo, vHi, fpOk)` tail-calls the region
 * function at `index` of the chain table. The interpreter calls translated code through
 * it, so its call site always meets the same WebAssembly function (a JS call site that
 * meets many is slow in V8).
 */
export function trampolineModule(): Uint8Array {
  const c = new Code();
  for (let i = 1; i <= 6; i++) c.get(i);
  c.get(0);
  c.byte(Op.returnCallIndirect).u32(REGION_TYPE).u32(0);
  c.end();
  return encodeModule({
    types: [
      { params: [I32, I32, I32, I32, I32, I32, I32], results: [I32] },
      { params: [I32, I32, I32, I32, I32, I32], results: [I32] },
    ],
    imports: [],
    memories: [],
    table: "tbl",
    funcs: [{ type: 0, locals: [], body: c, exportName: "enter" }],
  });
}

// ---------------------------------------------------------------- code generation

class Gen {
  private readonly c = new Code();
  /** Structured-control depth inside the current block's code (ifs/blocks opened). */
  private depth = 0;
  /** Index of the block being emitted, its length. */
  private bi = 0;
  private len = 0;
  /** Index of the instruction being emitted within its block. */
  private ix = 0;

  private readonly blocks: Block[];
  private readonly index: Map<number, number>;
  /** Offsets of this region's blocks that follow a call (where a JALR return lands). */
  private readonly returns: number[];

  constructor(blocks: Block[], index: Map<number, number>, returns: number[]) {
    this.blocks = blocks;
    this.index = index;
    this.returns = returns;
  }

  private get k(): number {
    return this.blocks.length;
  }
  /** br depth to the dispatch loop from the current position. */
  private get toDispatch(): number {
    return this.k - 1 - this.bi + this.depth;
  }
  /** br depth to $exitAt (exitPc: an exit word on the stack) and to $exit. */
  private get toExitAt(): number {
    return this.toDispatch + 1;
  }
  private get toExit(): number {
    return this.toDispatch + 2;
  }

  emit(): Bytes {
    const c = this.c;
    const used = new Set<number>();
    const written = new Set<number>();
    for (const b of this.blocks) {
      for (const ins of b.insns) regsOf(ins, used, written);
    }
    // prologue
    c.get(P_VLO)
      .op(Op.i64ExtendI32U)
      .get(P_VHI)
      .op(Op.i64ExtendI32U)
      .i64(32)
      .op(Op.i64Shl)
      .op(Op.i64Or)
      .set(L_VBASE);
    c.i32(0).mem(Op.i32Load, 1, 2, ST_DSET).set(L_DSET);
    for (const r of used) {
      if (r === 0 || r === 32) continue;
      c.i32(0).mem(Op.i64Load32U, 1, 2, ST_XLO + 4 * r);
      c.i32(0)
        .mem(Op.i64Load32S, 1, 2, ST_XHI + 4 * r)
        .i64(32)
        .op(Op.i64Shl)
        .op(Op.i64Or)
        .set(L_X + r);
    }
    c.get(P_ENTRY).set(L_BB);
    c.block(); // $exit: jumps out (L_CH) and exits that stored their own state
    c.block(I32); // $exitAt: the other exits, with an exit word (exitPc)
    c.loop(); // $dispatch
    for (let i = 0; i < this.k; i++) c.block();
    c.get(L_BB).byte(Op.brTable).u32(this.k);
    for (let i = 0; i < this.k; i++) c.u32(i);
    c.u32(this.k - 1);
    c.end();
    for (let i = 0; i < this.k; i++) {
      this.bi = i;
      this.depth = 0;
      this.block(this.blocks[i]!);
      if (i < this.k - 1) c.end();
    }
    c.end(); // loop
    c.op(Op.unreachable); // every block ends in a branch
    c.end(); // $exitAt: the exit word is on the stack
    // pc = vpage + offset; how it left; the instructions counted ahead of the exit uncounted
    c.set(L_R);
    c.i32(0).get(L_VBASE).get(L_R).i32(0xfff).op(Op.i32And).op(Op.i64ExtendI32U).op(Op.i64Add);
    c.mem(Op.i64Store, 1, 3, ST_PC);
    c.i32(0).get(L_R).i32(12).op(Op.i32ShrU).i32(15).op(Op.i32And).mem(Op.i32Store, 1, 2, ST_EXIT);
    c.get(P_N).get(L_R).i32(16).op(Op.i32ShrU).op(Op.i32Sub).set(P_N);
    c.end(); // $exit
    // epilogue: registers back to the state buffer
    for (const r of written) {
      if (r === 0 || r === 32) continue;
      c.i32(0)
        .get(L_X + r)
        .mem(Op.i64Store32, 1, 2, ST_XLO + 4 * r);
      c.i32(0)
        .get(L_X + r)
        .i64(32)
        .op(Op.i64ShrU)
        .mem(Op.i64Store32, 1, 2, ST_XHI + 4 * r);
    }
    // Chaining: a jump to a target whose page is in the fetch TLB and whose entry is in the
    // chain cache goes straight on there (a tail call: the stack does not grow).
    c.get(L_CH).if();
    c.i32(0).mem(Op.i32Load, 1, 2, ST_XSET).set(L_R);
    c.get(L_A).op(Op.i32WrapI64).tee(L_ALO).i32(9).op(Op.i32ShrU).i32(TLB_TAG_BYTES).op(Op.i32And);
    c.get(L_R).op(Op.i32Add).tee(L_T);
    c.mem(Op.i64Load, 1, 3, TLB_X_TAG * TLB_ARRAY)
      .get(L_A)
      .i64(-4096)
      .op(Op.i64And)
      .op(Op.i64Eq)
      .if();
    // the entry's RAM offset -> L_T, its cache slot -> L_R
    c.get(L_T)
      .get(L_R)
      .op(Op.i32Add)
      .i32(1)
      .op(Op.i32ShrU)
      .mem(Op.i32Load, 1, 2, TLB_X_PAGE * TLB_ARRAY)
      .get(L_ALO)
      .i32(0xfff)
      .op(Op.i32And)
      .op(Op.i32Add)
      .tee(L_T);
    // slot = ((key >>> 1) ^ (key >>> 12)) & (CHAIN_SIZE - 1), as chainSlot in jit/index.ts
    c.i32(1).op(Op.i32ShrU).get(L_T).i32(12).op(Op.i32ShrU).op(Op.i32Xor);
    c.i32(CHAIN_SIZE - 1)
      .op(Op.i32And)
      .i32(3)
      .op(Op.i32Shl)
      .tee(L_R);
    c.mem(Op.i32Load, 1, 2, ST_CHAIN).get(L_T).op(Op.i32Eq).if();
    c.get(L_R)
      .mem(Op.i32Load, 1, 2, ST_CHAIN + 4)
      .set(L_R);
    c.get(P_N).get(P_LIMIT).get(L_R).i32(511).op(Op.i32And);
    c.get(L_ALO).i32(~0xfff).op(Op.i32And).get(L_A).i64(32).op(Op.i64ShrU).op(Op.i32WrapI64).get(P_FPOK);
    c.get(L_R).i32(9).op(Op.i32ShrU);
    c.byte(Op.returnCallIndirect).u32(REGION_TYPE).u32(0);
    c.end();
    c.end();
    c.end();
    c.get(P_N);
    c.end();
    return c;
  }

  private block(b: Block): void {
    const c = this.c;
    this.len = b.insns.length;
    // n += len; if (n > limit) leave at the block's start, its instructions not counted
    c.get(P_N).i32(this.len).op(Op.i32Add).tee(P_N).get(P_LIMIT).op(Op.i32GtS).if();
    this.depth++;
    this.exitPc(b.start, EXIT_PC, this.len);
    c.end();
    this.depth--;
    for (let i = 0; i < b.insns.length; i++) {
      this.ix = i;
      const ins = b.insns[i]!;
      this.insn(ins);
    }
    const lastIns = b.insns[b.insns.length - 1]!;
    const op = lastIns.w & 0x7f;
    if (isBranch(op) || op === D.OP_JAL || op === D.OP_JALR) return; // emitted its own control flow
    this.goto(b.next >= 0 ? b.next : b.end);
  }

  // ------------------------------------------------------------ control transfer helpers

  /**
   * Continue at page offset `off` (which may lie past the page's end): a block of this
   * region, or leave by a jump there (chained when it is translated).
   */
  private goto(off: number): void {
    const bi = this.index.get(off);
    if (bi !== undefined && bi > this.bi) {
      // A later block: its code follows the end of its label's block, which encloses this
      // code, so a plain forward branch reaches it (falling through when it is the next).
      const depth = bi - this.bi - 1 + this.depth;
      if (depth > 0) this.c.br(depth);
    } else if (bi !== undefined) {
      // this block or an earlier one: around the dispatch loop
      this.c.i32(bi).set(L_BB).br(this.toDispatch);
    } else {
      this.c.get(L_VBASE).i64(off).op(Op.i64Add).set(L_A);
      this.exitJump();
    }
  }

  /**
   * A JALR whose target (L_A) is one of this region's return sites in the same virtual
   * page goes on there without leaving: a call and its return inside one page stay in
   * this function, registers in locals. The page is the one this code runs from, so its
   * translation and permissions are the ones in use.
   */
  private returnInPage(): void {
    if (this.returns.length === 0) return;
    const c = this.c;
    c.get(L_A).i64(-4096).op(Op.i64And).get(L_VBASE).op(Op.i64Eq).if();
    this.depth++;
    c.get(L_A).op(Op.i32WrapI64).i32(0xfff).op(Op.i32And).set(L_ALO);
    for (const r of this.returns) {
      c.get(L_ALO).i32(r).op(Op.i32Eq).if();
      this.depth++;
      this.goto(r);
      c.end();
      this.depth--;
    }
    c.end();
    this.depth--;
  }

  /**
   * Leave with pc = vpage + off (an offset in the page), exit code `how`, and `uncount`
   * instructions taken back from n (counted ahead with their block, not run): one exit
   * word, (uncount << 16) | (how << 12) | off, decoded once at $exitAt, so each exit site
   * is a constant and a branch.
   */
  private exitPc(off: number, how: number, uncount: number): void {
    if (off < 0 || off > 0xfff || uncount < 0 || uncount > MAX_INSNS) throw new Error("exitPc out of range");
    this.c.i32((uncount << 16) | (how << 12) | off).br(this.toExitAt);
  }

  /** Leave by a jump to L_A (out of the page, or JALR): chained when the target is translated. */
  private exitJump(): void {
    const c = this.c;
    c.i32(0).get(L_A).mem(Op.i64Store, 1, 3, ST_PC);
    c.i32(0).i32(EXIT_PC).mem(Op.i32Store, 1, 2, ST_EXIT);
    c.i32(1).set(L_CH);
    c.br(this.toExit);
  }

  /** n as the interpreter has it after counting the current instruction. */
  private fixN(): void {
    const d = this.ix + 1 - this.len;
    if (d !== 0) this.c.get(P_N).i32(d).op(Op.i32Add).set(P_N);
  }

  private reg(r: number): void {
    if (r === 0) this.c.i64(0);
    else this.c.get(L_X + r);
  }

  private pcLo(off: number): void {
    this.c.get(P_VLO).i32(off).op(Op.i32Or);
  }

  // ------------------------------------------------------------ instructions

  private insn(ins: Insn): void {
    const c = this.c;
    const w = ins.w;
    const imm = ins.imm;
    const op = w & 0x7f;
    const rd = (w >>> 8) & 0xff;
    const r1 = (w >>> 16) & 0xff;
    const r2 = w >>> 24;
    const X = (r: number): number => L_X + r;
    const bin = (o: number): void => {
      this.reg(r1);
      this.reg(r2);
      c.op(o).set(X(rd));
    };
    const binImm = (o: number): void => {
      this.reg(r1);
      c.i64(imm).op(o).set(X(rd));
    };
    const w32 = (o: number): void => {
      // 32-bit op on the low words, result sign-extended
      this.reg(r1);
      c.op(Op.i32WrapI64);
      this.reg(r2);
      c.op(Op.i32WrapI64).op(o).op(Op.i64ExtendI32S).set(X(rd));
    };
    const w32Imm = (o: number): void => {
      this.reg(r1);
      c.op(Op.i32WrapI64).i32(imm).op(o).op(Op.i64ExtendI32S).set(X(rd));
    };
    switch (op) {
      case D.OP_LUI:
      case D.OP_LI:
        c.i64(imm).set(X(rd));
        return;
      case D.OP_MV:
        this.reg(r2);
        c.set(X(rd));
        return;
      case D.OP_NOP:
      case D.OP_FENCE:
      case D.OP_FENCE_I:
        return;
      case D.OP_AUIPC:
        c.get(L_VBASE).i64(ins.off).op(Op.i64Add).i64(imm).op(Op.i64Add).set(X(rd));
        return;
      case D.OP_JAL: {
        c.get(L_VBASE)
          .i64(ins.off + ins.len)
          .op(Op.i64Add)
          .set(X(rd));
        const t = ins.off + imm;
        if (t >= 0 && t < 4096) this.goto(t);
        else {
          // target outside the page: vpage + off + imm, in 64 bits
          c.get(L_VBASE).i64(ins.off).op(Op.i64Add).i64(imm).op(Op.i64Add).set(L_A);
          this.exitJump();
        }
        return;
      }
      case D.OP_JALR:
        this.reg(r1);
        c.i64(imm).op(Op.i64Add).i64(-2).op(Op.i64And).set(L_A);
        c.get(L_VBASE)
          .i64(ins.off + ins.len)
          .op(Op.i64Add)
          .set(X(rd));
        this.returnInPage();
        this.exitJump();
        return;
      case D.OP_BEQ:
      case D.OP_BNE:
      case D.OP_BLT:
      case D.OP_BGE:
      case D.OP_BLTU:
      case D.OP_BGEU: {
        const cmp = [Op.i64Eq, Op.i64Ne, Op.i64LtS, Op.i64GeS, Op.i64LtU, Op.i64GeU][op - D.OP_BEQ]!;
        this.reg(r1);
        this.reg(r2);
        c.op(cmp).if();
        this.depth++;
        const t = ins.off + imm;
        if (t >= 0 && t < 4096) this.goto(t);
        else {
          c.get(L_VBASE).i64(ins.off).op(Op.i64Add).i64(imm).op(Op.i64Add).set(L_A);
          this.exitJump();
        }
        c.end();
        this.depth--;
        this.goto(ins.off + ins.len);
        return;
      }
      case D.OP_LB:
        this.load(ins, 1, Op.i64Load8S);
        return;
      case D.OP_LH:
        this.load(ins, 2, Op.i64Load16S);
        return;
      case D.OP_LW:
        this.load(ins, 4, Op.i64Load32S);
        return;
      case D.OP_LD:
        this.load(ins, 8, Op.i64Load);
        return;
      case D.OP_LBU:
        this.load(ins, 1, Op.i64Load8U);
        return;
      case D.OP_LHU:
        this.load(ins, 2, Op.i64Load16U);
        return;
      case D.OP_LWU:
        this.load(ins, 4, Op.i64Load32U);
        return;
      case D.OP_SB:
        this.store(ins, 1, Op.i64Store8);
        return;
      case D.OP_SH:
        this.store(ins, 2, Op.i64Store16);
        return;
      case D.OP_SW:
        this.store(ins, 4, Op.i64Store32);
        return;
      case D.OP_SD:
        this.store(ins, 8, Op.i64Store);
        return;
      case D.OP_ADDI:
        binImm(Op.i64Add);
        return;
      case D.OP_SLTI:
        this.reg(r1);
        c.i64(imm).op(Op.i64LtS).op(Op.i64ExtendI32U).set(X(rd));
        return;
      case D.OP_SLTIU:
        this.reg(r1);
        c.i64(imm).op(Op.i64LtU).op(Op.i64ExtendI32U).set(X(rd));
        return;
      case D.OP_XORI:
        binImm(Op.i64Xor);
        return;
      case D.OP_ORI:
        binImm(Op.i64Or);
        return;
      case D.OP_ANDI:
        binImm(Op.i64And);
        return;
      case D.OP_SLLI:
        binImm(Op.i64Shl);
        return;
      case D.OP_SRLI:
        binImm(Op.i64ShrU);
        return;
      case D.OP_SRAI:
        binImm(Op.i64ShrS);
        return;
      case D.OP_ADD:
        bin(Op.i64Add);
        return;
      case D.OP_SUB:
        bin(Op.i64Sub);
        return;
      case D.OP_SLL:
        bin(Op.i64Shl);
        return;
      case D.OP_SRL:
        bin(Op.i64ShrU);
        return;
      case D.OP_SRA:
        bin(Op.i64ShrS);
        return;
      case D.OP_SLT:
        this.reg(r1);
        this.reg(r2);
        c.op(Op.i64LtS).op(Op.i64ExtendI32U).set(X(rd));
        return;
      case D.OP_SLTU:
        this.reg(r1);
        this.reg(r2);
        c.op(Op.i64LtU).op(Op.i64ExtendI32U).set(X(rd));
        return;
      case D.OP_XOR:
        bin(Op.i64Xor);
        return;
      case D.OP_OR:
        bin(Op.i64Or);
        return;
      case D.OP_AND:
        bin(Op.i64And);
        return;
      case D.OP_ADDIW:
        this.reg(r1);
        c.i64(imm).op(Op.i64Add).op(Op.i64Extend32S).set(X(rd));
        return;
      case D.OP_SLLIW:
        w32Imm(Op.i32Shl);
        return;
      case D.OP_SRLIW:
        w32Imm(Op.i32ShrU);
        return;
      case D.OP_SRAIW:
        w32Imm(Op.i32ShrS);
        return;
      case D.OP_ADDW:
        this.reg(r1);
        this.reg(r2);
        c.op(Op.i64Add).op(Op.i64Extend32S).set(X(rd));
        return;
      case D.OP_SUBW:
        this.reg(r1);
        this.reg(r2);
        c.op(Op.i64Sub).op(Op.i64Extend32S).set(X(rd));
        return;
      case D.OP_SLLW:
        w32(Op.i32Shl);
        return;
      case D.OP_SRLW:
        w32(Op.i32ShrU);
        return;
      case D.OP_SRAW:
        w32(Op.i32ShrS);
        return;
      case D.OP_MUL:
        bin(Op.i64Mul);
        return;
      case D.OP_MULW:
        this.reg(r1);
        this.reg(r2);
        c.op(Op.i64Mul).op(Op.i64Extend32S).set(X(rd));
        return;
      case D.OP_MULH:
      case D.OP_MULHSU:
      case D.OP_MULHU:
        this.mulh(op, rd, r1, r2);
        return;
      case D.OP_DIV:
      case D.OP_DIVU:
      case D.OP_REM:
      case D.OP_REMU:
        this.div64(op, rd, r1, r2);
        return;
      case D.OP_DIVW:
      case D.OP_DIVUW:
      case D.OP_REMW:
      case D.OP_REMUW:
        this.div32(op, rd, r1, r2);
        return;
      case D.OP_FLW:
      case D.OP_FLD:
      case D.OP_FSW:
      case D.OP_FSD:
        this.fpMem(ins);
        return;
      case D.OP_CSR:
        this.fpCsr(ins);
        return;
      case D.OP_AMO_W:
      case D.OP_AMO_D:
        this.generalCall(ins);
        return;
      default:
        // OP_FP: the general path (the Fpu), which may read and write integer registers
        this.fp(ins);
        return;
    }
  }

  private mulh(op: number, rd: number, r1: number, r2: number): void {
    const c = this.c;
    const M = (): void => {
      c.i64Pair(-1, 0).op(Op.i64And);
    };
    this.reg(r1);
    c.set(L_V);
    this.reg(r2);
    c.set(L_V2);
    // m1 = hi(a) * lo(b) + (lo(a) * lo(b) >>> 32)
    c.get(L_V).i64(32).op(Op.i64ShrU).get(L_V2);
    M();
    c.op(Op.i64Mul);
    c.get(L_V);
    M();
    c.get(L_V2);
    M();
    c.op(Op.i64Mul).i64(32).op(Op.i64ShrU).op(Op.i64Add).set(L_V3);
    // hi = hi(a)*hi(b) + (m1 >>> 32) + ((lo(a)*hi(b) + lo(m1)) >>> 32)
    c.get(L_V).i64(32).op(Op.i64ShrU).get(L_V2).i64(32).op(Op.i64ShrU).op(Op.i64Mul);
    c.get(L_V3).i64(32).op(Op.i64ShrU).op(Op.i64Add);
    c.get(L_V);
    M();
    c.get(L_V2).i64(32).op(Op.i64ShrU).op(Op.i64Mul).get(L_V3);
    M();
    c.op(Op.i64Add).i64(32).op(Op.i64ShrU).op(Op.i64Add);
    // signed corrections: mulh subtracts (a<0 ? b : 0) + (b<0 ? a : 0); mulhsu the first
    if (op === D.OP_MULH || op === D.OP_MULHSU) {
      c.get(L_V).i64(63).op(Op.i64ShrS).get(L_V2).op(Op.i64And).op(Op.i64Sub);
    }
    if (op === D.OP_MULH) {
      c.get(L_V2).i64(63).op(Op.i64ShrS).get(L_V).op(Op.i64And).op(Op.i64Sub);
    }
    c.set(L_X + rd);
  }

  private div64(op: number, rd: number, r1: number, r2: number): void {
    const c = this.c;
    this.reg(r1);
    c.set(L_V);
    this.reg(r2);
    c.set(L_V2);
    c.get(L_V2).op(Op.i64Eqz).if(I64);
    // by zero: quotient all ones, remainder the dividend
    if (op === D.OP_DIV || op === D.OP_DIVU) c.i64(-1);
    else c.get(L_V);
    c.else();
    if (op === D.OP_DIVU) c.get(L_V).get(L_V2).op(Op.i64DivU);
    else if (op === D.OP_REMU) c.get(L_V).get(L_V2).op(Op.i64RemU);
    else if (op === D.OP_REM)
      c.get(L_V).get(L_V2).op(Op.i64RemS); // MIN % -1 is 0 in wasm, as in RISC-V
    else {
      // MIN / -1 overflows: RISC-V gives MIN (wasm would trap)
      c.get(L_V)
        .i64Pair(0, 0x80000000 | 0)
        .op(Op.i64Eq)
        .get(L_V2)
        .i64(-1)
        .op(Op.i64Eq)
        .op(Op.i32And)
        .if(I64);
      c.get(L_V).else().get(L_V).get(L_V2).op(Op.i64DivS).end();
    }
    c.end().set(L_X + rd);
  }

  private div32(op: number, rd: number, r1: number, r2: number): void {
    const c = this.c;
    this.reg(r1);
    c.set(L_V);
    this.reg(r2);
    c.set(L_V2);
    c.get(L_V2).op(Op.i32WrapI64).op(Op.i32Eqz).if(I64);
    if (op === D.OP_DIVW || op === D.OP_DIVUW) c.i64(-1);
    else c.get(L_V).op(Op.i64Extend32S);
    c.else();
    const a = (): void => {
      c.get(L_V).op(Op.i32WrapI64);
    };
    const b = (): void => {
      c.get(L_V2).op(Op.i32WrapI64);
    };
    if (op === D.OP_DIVUW) {
      a();
      b();
      c.op(Op.i32DivU);
    } else if (op === D.OP_REMUW) {
      a();
      b();
      c.op(Op.i32RemU);
    } else if (op === D.OP_REMW) {
      a();
      b();
      c.op(Op.i32RemS);
    } else {
      a();
      c.i32(0x80000000 | 0).op(Op.i32Eq);
      b();
      c.i32(-1).op(Op.i32Eq).op(Op.i32And).if(I32);
      a();
      c.else();
      a();
      b();
      c.op(Op.i32DivS).end();
    }
    c.op(Op.i64ExtendI32S)
      .end()
      .set(L_X + rd);
  }

  /**
   * The TLB lookup of a data access: leaves on the stack an i32 that is 1 on a hit (the
   * page is cached for this access and [a, a+size) lies inside it). Sets L_A, L_ALO, L_T.
   * The tag, one i64, is compared with the page of the access's last byte (as QEMU's
   * softmmu does): an access that crosses into the next page misses.
   */
  private tlbHit(r1: number, imm: number, size: number, tag: number): void {
    const c = this.c;
    this.reg(r1);
    c.i64(imm).op(Op.i64Add).tee(L_A).op(Op.i32WrapI64).tee(L_ALO);
    c.i32(9).op(Op.i32ShrU).i32(TLB_TAG_BYTES).op(Op.i32And).get(L_DSET).op(Op.i32Add).tee(L_T);
    c.mem(Op.i64Load, 1, 3, tag * TLB_ARRAY).get(L_A);
    if (size > 1) c.i64(size - 1).op(Op.i64Add);
    c.i64(-4096).op(Op.i64And).op(Op.i64Eq);
  }

  /** RAM address of a hit: the page's RAM offset plus the offset in the page. */
  private ramAddr(page: number): void {
    const c = this.c;
    c.get(L_T)
      .get(L_DSET)
      .op(Op.i32Add)
      .i32(1)
      .op(Op.i32ShrU)
      .mem(Op.i32Load, 1, 2, page * TLB_ARRAY)
      .get(L_ALO)
      .i32(0xfff)
      .op(Op.i32And)
      .op(Op.i32Add);
  }

  /**
   * Leave before the current instruction, which has not run: the interpreter runs it
   * (TLB misses, MMIO, page-crossing accesses, faults, stores into code pages: every slow
   * case is the interpreter's own, so it behaves exactly as the interpreter does).
   */
  private exitBefore(off: number): void {
    this.exitPc(off, EXIT_BEFORE, this.len - this.ix);
  }

  private load(ins: Insn, size: number, fast: number): void {
    const c = this.c;
    const w = ins.w;
    const rd = (w >>> 8) & 0xff;
    const r1 = (w >>> 16) & 0xff;
    this.tlbHit(r1, ins.imm, size, TLB_R_TAG);
    c.op(Op.i32Eqz).if();
    this.depth++;
    this.exitBefore(ins.off);
    c.end();
    this.depth--;
    this.ramAddr(TLB_R_PAGE);
    c.mem(fast, 0, 0);
    c.set(L_X + rd);
  }

  private store(ins: Insn, size: number, fast: number): void {
    const c = this.c;
    const w = ins.w;
    const r1 = (w >>> 16) & 0xff;
    const r2 = w >>> 24;
    this.tlbHit(r1, ins.imm, size, TLB_W_TAG);
    c.op(Op.i32Eqz).if();
    this.depth++;
    this.exitBefore(ins.off);
    c.end();
    this.depth--;
    this.ramAddr(TLB_W_PAGE);
    this.reg(r2);
    c.mem(fast, 0, 0);
  }

  /** FP loads and stores: inline on a TLB hit when fpOk, else the general path. */
  private fpMem(ins: Insn): void {
    const c = this.c;
    const w = ins.w;
    const op = w & 0x7f;
    const r1 = (w >>> 16) & 0xff;
    const isLoad = op === D.OP_FLW || op === D.OP_FLD;
    const size = op === D.OP_FLW || op === D.OP_FSW ? 4 : 8;
    // fpFastPath tests the whole dword for both widths
    this.tlbHit(r1, ins.imm, 8, isLoad ? TLB_R_TAG : TLB_W_TAG);
    c.get(P_FPOK).op(Op.i32And).op(Op.i32Eqz).if();
    this.depth++;
    this.exitBefore(ins.off);
    c.end();
    this.depth--;
    if (isLoad) {
      const f = (w >>> 8) & 0x1f;
      c.i32(0);
      this.ramAddr(TLB_R_PAGE);
      if (size === 8) c.mem(Op.i64Load, 0, 0);
      else c.mem(Op.i64Load32U, 0, 0).i64Pair(0, -1).op(Op.i64Or); // NaN-boxed
      c.mem(Op.i64Store, 1, 3, ST_FPR + 8 * f);
    } else {
      const f = w >>> 24;
      this.ramAddr(TLB_W_PAGE);
      c.i32(0).mem(Op.i64Load, 1, 3, ST_FPR + 8 * f);
      c.mem(size === 8 ? Op.i64Store : Op.i64Store32, 0, 0);
    }
  }

  /**
   * OP_FP. The double-precision operations compilers use in loops run as WebAssembly f64
   * arithmetic when that gives exactly the RISC-V result and flags: FS dirty (fpOk), round
   * to nearest even, no NaN, infinity or subnormal involved, and either the result exact or
   * fflags.NX already set (accrued flags are sticky, so an inexact result changes nothing
   * then). Every other case, and every other FP instruction, takes the general path.
   */
  private fp(ins: Insn): void {
    const c = this.c;
    const raw = ins.imm;
    const f7 = raw >>> 25;
    const rd = (raw >>> 7) & 31;
    const rs1 = (raw >>> 15) & 31;
    const rs2 = (raw >>> 20) & 31;
    const rm = (raw >>> 12) & 7;
    if ((raw & 0x7f) !== 0x53) {
      // the fused multiply-adds (R4 format: bits 31-25 are rs3 and fmt, not funct7)
      this.generalCall(ins);
      return;
    }
    const F = (r: number): void => {
      c.i32(0)
        .mem(Op.i64Load, 1, 3, ST_FPR + 8 * r)
        .op(Op.f64ReinterpretI64);
    };
    const nx = (): void => {
      c.i32(0).mem(Op.i32Load, 1, 2, ST_FCSR).i32(1).op(Op.i32And);
    };
    // rounding: static RNE, or DYN with frm = RNE
    const rne = (): boolean => {
      if (rm === 0) c.i32(1);
      else if (rm === 7)
        c.i32(0)
          .mem(Op.i32Load, 1, 2, ST_FCSR + 4)
          .op(Op.i32Eqz);
      else return false;
      return true;
    };
    const finiteNormal = (l: number): void => {
      // |v| < inf and |v| >= smallest normal
      c.get(l).op(Op.f64Abs).f64(Number.POSITIVE_INFINITY).op(Op.f64Lt);
      c.get(l).op(Op.f64Abs).f64(2.2250738585072014e-308).op(Op.f64Ge).op(Op.i32And);
    };
    const notNaN = (l: number): void => {
      c.get(l).get(l).op(Op.f64Eq);
    };
    /** fast flag on the stack: `if` it, store or write, else the general path. */
    const finish = (fast: () => void): void => {
      c.if();
      this.depth++;
      fast();
      c.else();
      this.generalCall(ins);
      c.end();
      this.depth--;
    };
    const setF = (): void => {
      // f[rd] = L_FR
      c.i32(0)
        .get(L_FR)
        .op(Op.i64ReinterpretF64)
        .mem(Op.i64Store, 1, 3, ST_FPR + 8 * rd);
    };
    switch (f7) {
      case 0x01: // fadd.d
      case 0x05: // fsub.d
      case 0x09: // fmul.d
      case 0x0d: {
        // fdiv.d
        F(rs1);
        c.set(L_FA);
        F(rs2);
        c.set(L_FB);
        c.get(L_FA)
          .get(L_FB)
          .op([Op.f64Add, Op.f64Sub, Op.f64Mul, Op.f64Div][f7 >>> 2]!)
          .set(L_FR);
        c.get(P_FPOK);
        if (!rne()) {
          c.op(Op.drop);
          this.generalCall(ins);
          return;
        }
        c.op(Op.i32And);
        finiteNormal(L_FR);
        if (f7 <= 0x05) {
          // a zero sum is exact; otherwise exact when the TwoSum error is zero
          c.get(L_FR).f64(0).op(Op.f64Eq).op(Op.i32Or).op(Op.i32And);
          nx();
          // err = (a - (r - bb)) + (b' - bb), bb = r - a, b' = +-b
          c.get(L_FA).get(L_FR).get(L_FR).get(L_FA).op(Op.f64Sub).op(Op.f64Sub).op(Op.f64Sub);
          c.get(L_FB);
          if (f7 === 0x05) c.op(Op.f64Neg);
          c.get(L_FR).get(L_FA).op(Op.f64Sub).op(Op.f64Sub).op(Op.f64Add).f64(0).op(Op.f64Eq);
          c.op(Op.i32Or).op(Op.i32And);
        } else {
          c.op(Op.i32And);
          nx();
          c.op(Op.i32And);
        }
        finish(setF);
        return;
      }
      case 0x2d: {
        // fsqrt.d
        if (rs2 !== 0) break;
        F(rs1);
        c.tee(L_FA).op(Op.f64Sqrt).set(L_FR);
        c.get(P_FPOK);
        if (!rne()) {
          c.op(Op.drop);
          break;
        }
        c.op(Op.i32And);
        // a == +-0 (exact), or 0 < a < inf with NX set
        c.get(L_FA).f64(0).op(Op.f64Eq);
        c.get(L_FA).f64(0).op(Op.f64Gt).get(L_FA).f64(Number.POSITIVE_INFINITY).op(Op.f64Lt).op(Op.i32And);
        nx();
        c.op(Op.i32And).op(Op.i32Or).op(Op.i32And);
        finish(setF);
        return;
      }
      case 0x11: {
        // fsgnj.d / fsgnjn.d / fsgnjx.d: bits only, no flags
        if (rm > 2) break;
        c.get(P_FPOK);
        finish(() => {
          c.i32(0);
          c.i32(0).mem(Op.i64Load, 1, 3, ST_FPR + 8 * rs1);
          if (rm === 2) {
            c.i32(0)
              .mem(Op.i64Load, 1, 3, ST_FPR + 8 * rs2)
              .i64Pair(0, 0x80000000 | 0)
              .op(Op.i64And);
            c.op(Op.i64Xor);
          } else {
            c.i64Pair(-1, 0x7fffffff).op(Op.i64And);
            c.i32(0).mem(Op.i64Load, 1, 3, ST_FPR + 8 * rs2);
            if (rm === 1) c.i64(-1).op(Op.i64Xor);
            c.i64Pair(0, 0x80000000 | 0)
              .op(Op.i64And)
              .op(Op.i64Or);
          }
          c.mem(Op.i64Store, 1, 3, ST_FPR + 8 * rd);
        });
        return;
      }
      case 0x15: {
        // fmin.d / fmax.d without NaNs
        if (rm > 1) break;
        F(rs1);
        c.set(L_FA);
        F(rs2);
        c.set(L_FB);
        c.get(P_FPOK);
        notNaN(L_FA);
        c.op(Op.i32And);
        notNaN(L_FB);
        c.op(Op.i32And);
        finish(() => {
          c.get(L_FA)
            .get(L_FB)
            .op(rm === 0 ? Op.f64Min : Op.f64Max)
            .set(L_FR);
          setF();
        });
        return;
      }
      case 0x51: {
        // feq.d (2) / flt.d (1) / fle.d (0) without NaNs
        if (rm > 2) break;
        F(rs1);
        c.set(L_FA);
        F(rs2);
        c.set(L_FB);
        c.get(P_FPOK);
        notNaN(L_FA);
        c.op(Op.i32And);
        notNaN(L_FB);
        c.op(Op.i32And);
        finish(() => {
          c.get(L_FA).get(L_FB).op([Op.f64Le, Op.f64Lt, Op.f64Eq][rm]!).op(Op.i64ExtendI32U);
          c.set(L_X + (rd === 0 ? 32 : rd));
        });
        return;
      }
      case 0x69: {
        // fcvt.d.w / wu / l / lu
        if (rs2 > 3) break;
        c.get(P_FPOK);
        if (!rne()) {
          c.op(Op.drop);
          break;
        }
        c.op(Op.i32And);
        if (rs2 >= 2) {
          // exact below 2^53 in magnitude, or NX already set
          this.reg(rs1);
          if (rs2 === 2) c.i64Pair(0, 0x200000).op(Op.i64Add).i64Pair(0, 0x400000).op(Op.i64LeU);
          else c.i64Pair(0, 0x200000).op(Op.i64LeU);
          nx();
          c.op(Op.i32Or).op(Op.i32And);
        }
        finish(() => {
          this.reg(rs1);
          if (rs2 === 0) c.op(Op.i32WrapI64).op(Op.f64ConvertI32S);
          else if (rs2 === 1) c.op(Op.i32WrapI64).op(Op.f64ConvertI32U);
          else c.op(rs2 === 2 ? Op.f64ConvertI64S : Op.f64ConvertI64U);
          c.set(L_FR);
          setF();
        });
        return;
      }
      case 0x61: {
        // fcvt.w.d / fcvt.l.d with a static rounding mode, in range
        if ((rs2 !== 0 && rs2 !== 2) || rm > 3) break;
        F(rs1);
        c.op([Op.f64Nearest, Op.f64Trunc, Op.f64Floor, Op.f64Ceil][rm]!).set(L_FR);
        c.get(P_FPOK);
        if (rs2 === 0) {
          c.get(L_FR).f64(-2147483648).op(Op.f64Ge).op(Op.i32And);
          c.get(L_FR).f64(2147483647).op(Op.f64Le).op(Op.i32And);
        } else {
          c.get(L_FR)
            .f64(-(2 ** 63))
            .op(Op.f64Ge)
            .op(Op.i32And);
          c.get(L_FR)
            .f64(2 ** 63)
            .op(Op.f64Lt)
            .op(Op.i32And);
        }
        // exact (the rounded value is the input), or NX already set
        c.get(L_FR);
        F(rs1);
        c.op(Op.f64Eq);
        nx();
        c.op(Op.i32Or).op(Op.i32And);
        finish(() => {
          c.get(L_FR);
          if (rs2 === 0) c.op(Op.i32TruncF64S).op(Op.i64ExtendI32S);
          else c.op(Op.i64TruncF64S);
          c.set(L_X + (rd === 0 ? 32 : rd));
        });
        return;
      }
      case 0x71: {
        // fmv.x.d
        if (rm !== 0 || rs2 !== 0) break;
        c.get(P_FPOK);
        finish(() => {
          c.i32(0)
            .mem(Op.i64Load, 1, 3, ST_FPR + 8 * rs1)
            .set(L_X + (rd === 0 ? 32 : rd));
        });
        return;
      }
      case 0x79: {
        // fmv.d.x
        if (rm !== 0 || rs2 !== 0) break;
        c.get(P_FPOK);
        finish(() => {
          c.i32(0);
          this.reg(rs1);
          c.mem(Op.i64Store, 1, 3, ST_FPR + 8 * rd);
        });
        return;
      }
    }
    this.generalCall(ins);
  }

  /**
   * csrrw/s/c(i) on fflags (1), frm (2) or fcsr (3) when FS is dirty (fpOk); otherwise the
   * general path (FS off: illegal; clean: the interpreter marks it dirty).
   */
  private fpCsr(ins: Insn): void {
    const c = this.c;
    const raw = ins.imm;
    if (!isFpCsr(raw)) {
      this.generalCall(ins);
      return;
    }
    const csr = raw >>> 20;
    const f3 = (raw >>> 12) & 7;
    const rd = (raw >>> 7) & 31;
    const rs1 = (raw >>> 15) & 31;
    const kind = f3 & 3; // 1 rw, 2 rs, 3 rc
    const writes = kind === 1 || rs1 !== 0;
    c.get(P_FPOK).if();
    this.depth++;
    // old value -> L_V
    const ff = (): void => {
      c.i32(0).mem(Op.i32Load, 1, 2, ST_FCSR);
    };
    const fr = (): void => {
      c.i32(0).mem(Op.i32Load, 1, 2, ST_FCSR + 4);
    };
    if (csr === 1) ff();
    else if (csr === 2) fr();
    else {
      fr();
      c.i32(5).op(Op.i32Shl);
      ff();
      c.op(Op.i32Or);
    }
    c.op(Op.i64ExtendI32U).set(L_V);
    if (writes) {
      // source -> L_V2
      if (f3 >= 5) c.i64(rs1);
      else this.reg(rs1);
      c.set(L_V2);
      if (kind === 1) c.get(L_V2);
      else if (kind === 2) c.get(L_V).get(L_V2).op(Op.i64Or);
      else c.get(L_V).get(L_V2).i64(-1).op(Op.i64Xor).op(Op.i64And);
      c.op(Op.i32WrapI64).set(L_R);
      if (csr === 1 || csr === 3) c.i32(0).get(L_R).i32(0x1f).op(Op.i32And).mem(Op.i32Store, 1, 2, ST_FCSR);
      if (csr === 2)
        c.i32(0)
          .get(L_R)
          .i32(7)
          .op(Op.i32And)
          .mem(Op.i32Store, 1, 2, ST_FCSR + 4);
      if (csr === 3)
        c.i32(0)
          .get(L_R)
          .i32(5)
          .op(Op.i32ShrU)
          .i32(7)
          .op(Op.i32And)
          .mem(Op.i32Store, 1, 2, ST_FCSR + 4);
    }
    if (rd !== 0) c.get(L_V).set(L_X + rd);
    c.else();
    this.generalCall(ins);
    c.end();
    this.depth--;
  }

  /**
   * The interpreter's general path for one instruction (FP: the Fpu, FS checks, traps).
   * The raw instruction's rd and rs1 fields may name integer registers (fmv, fcvt, fcmp,
   * FP loads' base): they go to the state buffer before and rd comes back after.
   */
  private generalCall(ins: Insn): void {
    const c = this.c;
    const raw = ins.imm;
    const op = ins.w & 0x7f;
    // decoded fields for FP loads/stores (rs1 is the base), raw fields for OP_FP
    const rawFields = op === D.OP_FP || op === D.OP_CSR || op === D.OP_AMO_W || op === D.OP_AMO_D;
    const xr = rawFields ? [(raw >>> 7) & 31, (raw >>> 15) & 31, (raw >>> 20) & 31] : [(ins.w >>> 16) & 0xff];
    const xd = rawFields ? (raw >>> 7) & 31 : -1;
    for (const r of xr) this.spill(r);
    c.i32(ins.w).i32(ins.imm);
    this.pcLo(ins.off);
    c.get(P_VHI)
      .get(P_N)
      .i32(this.ix + 1 - this.len)
      .op(Op.i32Add)
      .call(H_GENERAL)
      .tee(L_R);
    c.if();
    this.depth++;
    if (xd > 0) this.reload(xd);
    this.fixN();
    c.i32(0).get(L_R).mem(Op.i32Store, 1, 2, ST_EXIT);
    c.br(this.toExit);
    c.end();
    this.depth--;
    if (xd > 0) this.reload(xd);
  }

  private spill(r: number): void {
    if (r === 0 || r === 32) return;
    const c = this.c;
    c.i32(0)
      .get(L_X + r)
      .mem(Op.i64Store32, 1, 2, ST_XLO + 4 * r);
    c.i32(0)
      .get(L_X + r)
      .i64(32)
      .op(Op.i64ShrU)
      .mem(Op.i64Store32, 1, 2, ST_XHI + 4 * r);
  }

  private reload(r: number): void {
    if (r === 0 || r === 32) return;
    const c = this.c;
    c.i32(0).mem(Op.i64Load32U, 1, 2, ST_XLO + 4 * r);
    c.i32(0)
      .mem(Op.i64Load32S, 1, 2, ST_XHI + 4 * r)
      .i64(32)
      .op(Op.i64Shl)
      .op(Op.i64Or)
      .set(L_X + r);
  }
}

/** Integer registers an instruction reads and writes (decoded fields; raw fields for OP_FP). */
function regsOf(ins: Insn, used: Set<number>, written: Set<number>): void {
  const w = ins.w;
  const op = w & 0x7f;
  const rd = (w >>> 8) & 0xff;
  const r1 = (w >>> 16) & 0xff;
  const r2 = w >>> 24;
  if (op === D.OP_FP || op === D.OP_CSR || op === D.OP_AMO_W || op === D.OP_AMO_D) {
    const raw = ins.imm;
    used.add((raw >>> 7) & 31);
    used.add((raw >>> 15) & 31);
    used.add((raw >>> 20) & 31);
    written.add((raw >>> 7) & 31);
    return;
  }
  if (op >= D.OP_FLW && op <= D.OP_FSD) {
    used.add(r1);
    return;
  }
  used.add(r1);
  used.add(r2);
  used.add(rd);
  if (
    !(
      isBranch(op) ||
      (op >= D.OP_SB && op <= D.OP_SD) ||
      op === D.OP_NOP ||
      op === D.OP_FENCE ||
      op === D.OP_FENCE_I
    )
  ) {
    written.add(rd);
  }
}
