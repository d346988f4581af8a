/// <reference types="node" />
/**
 * Runs the FPU test vectors (fixtures/fpu, produced by gen.c under qemu-riscv64) through
 * Fpu.exec. Each vector line is `<mnemonic> <rm|-> <in...> <result> <fflags>` (see gen.c);
 * lines starting with '#' are comments.
 */
import { readFileSync } from "node:fs";
import { gunzipSync } from "node:zlib";
import { Fpu } from "../../src/fpu/index.ts";

/** How an instruction is encoded and where its operands live. */
export interface OpInfo {
  /** major opcode: 0x53 OP-FP or 0x43/0x47/0x4b/0x4f for the fused ops */
  opcode: number;
  /** funct7 (OP-FP) or fmt (fused ops) */
  funct7: number;
  /** fixed rs2 field, or -1 when rs2 is a source register */
  rs2: number;
  /** fixed funct3 for instructions without a rounding mode, else -1 */
  f3: number;
  nin: number;
  /** integer source (fmv.*.x, fcvt.*.{w,wu,l,lu}) */
  srcInt: boolean;
  /** integer destination (compare, fclass, fmv.x.*, fcvt.{w,...}.*) */
  dstInt: boolean;
}

function op(
  opcode: number,
  funct7: number,
  rs2: number,
  f3: number,
  nin: number,
  srcInt = false,
  dstInt = false,
): OpInfo {
  return { opcode, funct7, rs2, f3, nin, srcInt, dstInt };
}

/** Every F/D instruction of RV64 by mnemonic. */
export const OPS: Record<string, OpInfo> = {};
for (const [suffix, fmt] of [
  ["s", 0],
  ["d", 1],
] as const) {
  const o = OPS;
  o[`fadd.${suffix}`] = op(0x53, 0x00 | fmt, -1, -1, 2);
  o[`fsub.${suffix}`] = op(0x53, 0x04 | fmt, -1, -1, 2);
  o[`fmul.${suffix}`] = op(0x53, 0x08 | fmt, -1, -1, 2);
  o[`fdiv.${suffix}`] = op(0x53, 0x0c | fmt, -1, -1, 2);
  o[`fsqrt.${suffix}`] = op(0x53, 0x2c | fmt, 0, -1, 1);
  o[`fmadd.${suffix}`] = op(0x43, fmt, -1, -1, 3);
  o[`fmsub.${suffix}`] = op(0x47, fmt, -1, -1, 3);
  o[`fnmsub.${suffix}`] = op(0x4b, fmt, -1, -1, 3);
  o[`fnmadd.${suffix}`] = op(0x4f, fmt, -1, -1, 3);
  o[`fsgnj.${suffix}`] = op(0x53, 0x10 | fmt, -1, 0, 2);
  o[`fsgnjn.${suffix}`] = op(0x53, 0x10 | fmt, -1, 1, 2);
  o[`fsgnjx.${suffix}`] = op(0x53, 0x10 | fmt, -1, 2, 2);
  o[`fmin.${suffix}`] = op(0x53, 0x14 | fmt, -1, 0, 2);
  o[`fmax.${suffix}`] = op(0x53, 0x14 | fmt, -1, 1, 2);
  o[`feq.${suffix}`] = op(0x53, 0x50 | fmt, -1, 2, 2, false, true);
  o[`flt.${suffix}`] = op(0x53, 0x50 | fmt, -1, 1, 2, false, true);
  o[`fle.${suffix}`] = op(0x53, 0x50 | fmt, -1, 0, 2, false, true);
  o[`fclass.${suffix}`] = op(0x53, 0x70 | fmt, 0, 1, 1, false, true);
  const ints = ["w", "wu", "l", "lu"];
  for (let k = 0; k < 4; k++) {
    o[`fcvt.${ints[k]}.${suffix}`] = op(0x53, 0x60 | fmt, k, -1, 1, false, true);
    o[`fcvt.${suffix}.${ints[k]}`] = op(0x53, 0x68 | fmt, k, -1, 1, true, false);
  }
}
OPS["fmv.x.w"] = op(0x53, 0x70, 0, 0, 1, false, true);
OPS["fmv.x.d"] = op(0x53, 0x71, 0, 0, 1, false, true);
OPS["fmv.w.x"] = op(0x53, 0x78, 0, 0, 1, true, false);
OPS["fmv.d.x"] = op(0x53, 0x79, 0, 0, 1, true, false);
OPS["fcvt.s.d"] = op(0x53, 0x20, 1, -1, 1);
OPS["fcvt.d.s"] = op(0x53, 0x21, 0, -1, 1);

// Register assignment used by the runner.
const RS1 = 1;
const RS2 = 2;
const RS3 = 3;
const RD = 4;
const XS = 5;
const XD = 6;

/** Encode `info` with the given funct3 (rm or fixed field). */
export function encode(info: OpInfo, f3: number, rd = RD, rs1 = RS1, rs2 = RS2, rs3 = RS3): number {
  const r2 = info.rs2 >= 0 ? info.rs2 : rs2;
  if (info.opcode === 0x53) {
    return ((info.funct7 << 25) | (r2 << 20) | (rs1 << 15) | (f3 << 12) | (rd << 7) | 0x53) >>> 0;
  }
  return (
    ((rs3 << 27) | (info.funct7 << 25) | (r2 << 20) | (rs1 << 15) | (f3 << 12) | (rd << 7) | info.opcode) >>>
    0
  );
}

export interface Vector {
  line: string;
  mn: string;
  /** 0..4, or -1 for instructions without a rounding mode */
  rm: number;
  ins: bigint[];
  res: bigint;
  flags: number;
}

export function parseVectors(text: string): Vector[] {
  const vs: Vector[] = [];
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const t = line.split(" ");
    if (t.length < 5) throw new Error(`bad vector line: ${line}`);
    const ins = t.slice(2, t.length - 2).map((h) => BigInt(`0x${h}`));
    vs.push({
      line,
      mn: t[0]!,
      rm: t[1] === "-" ? -1 : Number(t[1]),
      ins,
      res: BigInt(`0x${t[t.length - 2]}`),
      flags: Number.parseInt(t[t.length - 1]!, 16),
    });
  }
  return vs;
}

export function loadVectors(path: string): Vector[] {
  const raw = readFileSync(path);
  const text = path.endsWith(".gz") ? gunzipSync(raw).toString("utf8") : raw.toString("utf8");
  return parseVectors(text);
}

const lo32 = (v: bigint): number => Number(BigInt.asIntN(32, v));
const hi32 = (v: bigint): number => Number(BigInt.asIntN(32, v >> 32n));
const u64 = (lo: number, hi: number): bigint => (BigInt(hi >>> 0) << 32n) | BigInt(lo >>> 0);
const hex = (v: bigint): string => v.toString(16).padStart(16, "0");

/**
 * Run one vector. With `dyn`, the rounding mode goes through frm with rm = 7 (DYN).
 * Returns null on a match, else a description of the mismatch.
 */
export function runVector(
  fpu: Fpu,
  xlo: Int32Array,
  xhi: Int32Array,
  v: Vector,
  dyn: boolean,
): string | null {
  const info = OPS[v.mn];
  if (!info) throw new Error(`unknown mnemonic in vectors: ${v.mn}`);
  if (v.ins.length !== info.nin) throw new Error(`wrong operand count: ${v.line}`);
  const fRegs = [RS1, RS2, RS3];
  for (let i = 0; i < v.ins.length; i++) {
    const x = v.ins[i]!;
    if (info.srcInt) {
      xlo[XS] = lo32(x);
      xhi[XS] = hi32(x);
    } else fpu.setF64Bits(fRegs[i]!, lo32(x), hi32(x));
  }
  // Poison the destinations so a missing write shows.
  fpu.setF64Bits(RD, 0x5a5a5a5a, 0x5a5a5a5a);
  xlo[XD] = 0x5a5a5a5a;
  xhi[XD] = 0x5a5a5a5a;
  fpu.fflags = 0;
  let f3: number;
  if (v.rm < 0) {
    f3 = info.f3;
    fpu.frm = 0;
  } else if (dyn) {
    f3 = 7;
    fpu.frm = v.rm;
  } else {
    f3 = v.rm;
    fpu.frm = (v.rm + 3) % 5; // a different frm must not matter
  }
  const insn = encode(info, f3, info.dstInt ? XD : RD, info.srcInt ? XS : RS1);
  if (!fpu.exec(insn, xlo, xhi)) return `${v.line}: exec returned false`;
  const got = info.dstInt ? u64(xlo[XD]!, xhi[XD]!) : u64(fpu.w[2 * RD]!, fpu.w[2 * RD + 1]!);
  if (got !== v.res || fpu.fflags !== v.flags) {
    return `${v.line}${dyn ? " (dyn)" : ""}: got ${hex(got)} ${fpu.fflags.toString(16).padStart(2, "0")}`;
  }
  return null;
}

/** Run vectors, returning the mismatches (at most `limit` descriptions) and their count. */
export function runAll(vs: Vector[], dyn: boolean, limit = 20): { count: number; samples: string[] } {
  const fpu = new Fpu();
  const xlo = new Int32Array(33);
  const xhi = new Int32Array(33);
  let count = 0;
  const samples: string[] = [];
  for (const v of vs) {
    const m = runVector(fpu, xlo, xhi, v, dyn);
    if (m !== null) {
      count++;
      if (samples.length < limit) samples.push(m);
    }
  }
  return { count, samples };
}
