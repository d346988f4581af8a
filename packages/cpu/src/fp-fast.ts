/**
 * The FP fast path, shared by the interpreter (hart.ts) and translated code's general
 * helper (jit/index.ts).
 */
import { fpFast, type HartCore, TLB_MASK } from "./core.ts";
import { OP_FLD, OP_FLW, OP_FP, OP_FSD } from "./decode.ts";

/**
 * FP loads, stores and arithmetic when the FPU is on and already Dirty: arithmetic
 * straight to the Fpu, loads and stores on a TLB hit. False when the instruction needs
 * the general path (not FP, FS off or clean, an illegal encoding or rounding mode, a TLB
 * miss, a page-crossing access).
 */
export function fpFastPath(c: HartCore, w: number, imm: number): boolean {
  const op = w & 0x7f;
  if (op < OP_FLW || op > OP_FP || !fpFast(c)) return false;
  if (op === OP_FP) return c.fpu.exec(imm, c.xlo, c.xhi);
  const r1 = (w >>> 16) & 0xff;
  const b = c.xlo[r1]!;
  const aLo = (b + imm) | 0;
  const aHi = (c.xhi[r1]! + (imm >> 31) + (aLo >>> 0 < b >>> 0 ? 1 : 0)) | 0;
  if ((aLo & 0xfff) > 4088) return false; // PAGE - 8: a dword inside the page
  const ti = (aLo >>> 12) & TLB_MASK;
  const tag = aLo & ~0xfff;
  const fw = c.fpu.w;
  const dv = c.ram.dv;
  if (op <= OP_FLD) {
    if (c.rTag[2 * ti] !== tag || c.rTag[2 * ti + 1] !== aHi) return false;
    const o = c.rPage[ti]! + (aLo & 0xfff);
    const f = 2 * ((w >>> 8) & 0x1f);
    fw[f] = dv.getInt32(o, true);
    fw[f + 1] = op === OP_FLD ? dv.getInt32(o + 4, true) : -1; // singles are NaN-boxed
    return true;
  }
  if (c.wTag[2 * ti] !== tag || c.wTag[2 * ti + 1] !== aHi) return false;
  const o = c.wPage[ti]! + (aLo & 0xfff);
  const f = 2 * (w >>> 24);
  dv.setInt32(o, fw[f]!, true);
  if (op === OP_FSD) dv.setInt32(o + 4, fw[f + 1]!, true);
  return true;
}
