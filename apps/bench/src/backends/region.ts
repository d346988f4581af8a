/**
 * Regions for the backend comparison: RISC-V code decoded with @visor/cpu's own decoder
 * (`decode32`/`decode16`, `decodedImm`, the OP_* constants) and cut into the natural loop
 * around a header: the instructions reachable from the header that can reach it again.
 * Everything else is an exit. The loop's instructions are split into basic blocks at
 * branch targets and after branches, in address order.
 */
import {
  decode16,
  decode32,
  decodedImm,
  OP_BEQ,
  OP_BGEU,
  OP_CSR,
  OP_ECALL,
  OP_FP,
  OP_ILLEGAL,
  OP_JAL,
  OP_JALR,
  OP_NAMES,
  X_SINK,
} from "@visor/cpu";

/** One decoded instruction. Integer rd 0 is X_SINK (32), as the decoder gives it. */
export interface Insn {
  pc: number;
  len: 2 | 4;
  op: number;
  rd: number;
  rs1: number;
  rs2: number;
  /** The immediate, or the raw instruction for OP_FP. */
  imm: number;
}

export interface Block {
  start: number;
  insns: Insn[];
  /** The address after the last instruction. */
  end: number;
}

export interface Region {
  name: string;
  entry: number;
  /** In address order; blocks[i].start is the key of `index`. */
  blocks: Block[];
  index: Map<number, number>;
  /** Addresses outside the region that control can leave to (branch targets, fallthroughs). */
  exits: number[];
  instructions: number;
}

/** Decode the instruction at byte offset `off` of `code` (which starts at address `base`). */
export function decodeAt(code: Uint8Array, base: number, off: number): Insn {
  const h = code[off]! | (code[off + 1]! << 8);
  let w: number;
  let len: 2 | 4;
  if ((h & 3) !== 3) {
    w = decode16(h);
    len = 2;
  } else {
    w = decode32(h | (code[off + 2]! << 16) | (code[off + 3]! << 24));
    len = 4;
  }
  return {
    pc: base + off,
    len,
    op: w & 0x7f,
    rd: (w >>> 8) & 0xff,
    rs1: (w >>> 16) & 0xff,
    rs2: w >>> 24,
    imm: decodedImm,
  };
}

/** A short name: the decoder's op name, with OP_FP spelled out for the ops the backends know. */
export function mnemonic(i: Insn): string {
  if (i.op !== OP_FP) return OP_NAMES[i.op] ?? "?";
  return fpOp(i.imm)?.name ?? "fp";
}

export type FpKind = "fadd.d" | "fsub.d" | "fmul.d" | "fdiv.d" | "fmv.d.x" | "fmv.x.d";

/** The FP operations both backends translate (as plain f64 ops: no fflags, round to nearest). */
export function fpOp(raw: number): { name: FpKind; rd: number; rs1: number; rs2: number } | undefined {
  if ((raw & 0x7f) !== 0x53) return undefined;
  const rd = (raw >>> 7) & 31;
  const rm = (raw >>> 12) & 7;
  const rs1 = (raw >>> 15) & 31;
  const rs2 = (raw >>> 20) & 31;
  const f7 = raw >>> 25;
  // Arithmetic with the static round-to-nearest-even mode or the dynamic one (frm is 0 here).
  const arith: Record<number, FpKind> = { 1: "fadd.d", 5: "fsub.d", 9: "fmul.d", 13: "fdiv.d" };
  const a = arith[f7];
  if (a !== undefined && (rm === 0 || rm === 7)) return { name: a, rd, rs1, rs2 };
  if (f7 === 0x79 && rm === 0 && rs2 === 0) return { name: "fmv.d.x", rd, rs1, rs2 };
  if (f7 === 0x71 && rm === 0 && rs2 === 0) return { name: "fmv.x.d", rd: rd === 0 ? X_SINK : rd, rs1, rs2 };
  return undefined;
}

export const isBranch = (op: number): boolean => op >= OP_BEQ && op <= OP_BGEU;

/** Successors inside the program of an instruction: none for what leaves straight-line code. */
function successors(i: Insn): number[] {
  const next = i.pc + i.len;
  if (isBranch(i.op)) return [i.pc + i.imm, next];
  // A jal that links is a call: the region ends there.
  if (i.op === OP_JAL) return i.rd === X_SINK ? [i.pc + i.imm] : [];
  // Indirect jumps, and ecall, ebreak, xRET, wfi, sfence.vma and CSR accesses (OP_ECALL..OP_CSR).
  if (i.op === OP_JALR || i.op === OP_ILLEGAL || (i.op >= OP_ECALL && i.op <= OP_CSR)) return [];
  return [next];
}

/** Decode a code range linearly (RISC-V text has no data in it). */
export function decodeAll(code: Uint8Array, base: number): Insn[] {
  const out: Insn[] = [];
  for (let off = 0; off + 2 <= code.length; ) {
    const i = decodeAt(code, base, off);
    if (off + i.len > code.length) break;
    out.push(i);
    off += i.len;
  }
  return out;
}

/** The address where `pattern` (mnemonics, in order) starts; it must occur exactly once. */
export function findAnchor(insns: readonly Insn[], pattern: readonly string[], what: string): number {
  const hits: number[] = [];
  const names = insns.map(mnemonic);
  for (let i = 0; i + pattern.length <= names.length; i++) {
    let ok = true;
    for (let j = 0; j < pattern.length && ok; j++) ok = names[i + j] === pattern[j];
    if (ok) hits.push(insns[i]!.pc);
  }
  if (hits.length !== 1)
    throw new Error(
      `${what}: the instruction sequence ${pattern.join(" ")} occurs ${hits.length} times in the binary (expected once: was apps/bench/fixtures/riscv64/cpu rebuilt differently?)`,
    );
  return hits[0]!;
}

/** The natural loop with header `entry`: reachable from it (within `maxInsns`) and reaching it back. */
export function formLoop(
  name: string,
  byPc: ReadonlyMap<number, Insn>,
  entry: number,
  maxInsns = 256,
): Region {
  const seen = new Set<number>();
  const preds = new Map<number, number[]>();
  const work = [entry];
  while (work.length > 0) {
    const pc = work.pop()!;
    if (seen.has(pc)) continue;
    const i = byPc.get(pc);
    if (i === undefined) continue;
    seen.add(pc);
    if (seen.size > maxInsns) throw new Error(`${name}: the loop at 0x${entry.toString(16)} is too large`);
    for (const s of successors(i)) {
      if (!preds.has(s)) preds.set(s, []);
      preds.get(s)!.push(pc);
      work.push(s);
    }
  }
  // Backwards from the back edges (branches to the header from at or after it) up to the
  // header: the loop. A jump into the header from before it (an outer loop) is an entry.
  const inLoop = new Set<number>([entry]);
  const back = (preds.get(entry) ?? []).filter((p) => p >= entry);
  if (back.length === 0) throw new Error(`${name}: no loop at 0x${entry.toString(16)}`);
  while (back.length > 0) {
    const pc = back.pop()!;
    if (inLoop.has(pc) || !seen.has(pc)) continue;
    inLoop.add(pc);
    back.push(...(preds.get(pc) ?? []));
  }
  const pcs = [...inLoop].sort((a, b) => a - b);
  // Leaders: the entry, in-loop branch targets, instructions after a branch or a gap.
  const leaders = new Set<number>([entry]);
  const exits = new Set<number>();
  for (const pc of pcs) {
    const i = byPc.get(pc)!;
    const succ = successors(i);
    for (const s of succ) {
      if (!inLoop.has(s)) exits.add(s);
      else if (s !== i.pc + i.len) leaders.add(s);
    }
    if (isBranch(i.op) || i.op === OP_JAL) leaders.add(i.pc + i.len);
    if (!inLoop.has(i.pc + i.len) && succ.includes(i.pc + i.len)) exits.add(i.pc + i.len);
  }
  const blocks: Block[] = [];
  let cur: Block | undefined;
  for (const pc of pcs) {
    const i = byPc.get(pc)!;
    if (cur === undefined || leaders.has(pc) || cur.end !== pc) {
      cur = { start: pc, insns: [], end: pc };
      blocks.push(cur);
    }
    cur.insns.push(i);
    cur.end = pc + i.len;
  }
  const index = new Map(blocks.map((b, k) => [b.start, k] as const));
  return { name, entry, blocks, index, exits: [...exits].sort((a, b) => a - b), instructions: pcs.length };
}

/** The disassembly of a region, one instruction a line (for --show and error messages). */
export function listRegion(r: Region): string {
  const lines: string[] = [];
  for (const [k, b] of r.blocks.entries()) {
    lines.push(`  block ${k} @0x${b.start.toString(16)}`);
    for (const i of b.insns) lines.push(`    0x${i.pc.toString(16)}  ${mnemonic(i)}`);
  }
  lines.push(`  exits: ${r.exits.map((e) => `0x${e.toString(16)}`).join(" ")}`);
  return lines.join("\n");
}
