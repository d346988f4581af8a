/**
 * The A extension: LR/SC and the AMOs, on RAM only (an AMO elsewhere is an access fault).
 * Functions over core state.
 */
import { ACCESS_READ, ACCESS_WRITE } from "@visor/memory";
import type { HartCore } from "./core.ts";
import * as C from "./csr.ts";
import { amoAddr } from "./mmu.ts";
import { raise } from "./trap.ts";

/** funct5 of the A extension's instructions (unprivileged spec, table 24.3). */
const AMO_ADD = 0;
const AMO_SWAP = 1;
const AMO_LR = 2;
const AMO_SC = 3;
const AMO_XOR = 4;
const AMO_OR = 8;
const AMO_AND = 12;
const AMO_MIN = 16;
const AMO_MAX = 20;
const AMO_MINU = 24;
const AMO_MAXU = 28;

/**
 * Execute LR/SC or an AMO (decoded word `w`, raw bits `raw`). Returns 0, -1 after a trap,
 * or -2 for an encoding that is not an AMO (the caller raises illegal instruction).
 */
export function execAmo(c: HartCore, w: number, raw: number, isD: boolean): number {
  const rd = (w >>> 8) & 0xff;
  const rs1 = (w >>> 16) & 0xff;
  const rs2 = w >>> 24;
  const f5 = raw >>> 27;
  const xlo = c.xlo;
  const xhi = c.xhi;
  const aLo = xlo[rs1]!;
  const aHi = xhi[rs1]!;
  const size = isD ? 8 : 4;
  const dv = c.ram.dv;
  if (f5 === AMO_LR) {
    // LR
    const o = amoAddr(c, aLo, aHi, size, ACCESS_READ);
    if (o < 0) return -1;
    const lo = dv.getInt32(o, true);
    xlo[rd] = lo;
    xhi[rd] = isD ? dv.getInt32(o + 4, true) : lo >> 31;
    c.resValid = true;
    c.resLo = aLo;
    c.resHi = aHi;
    return 0;
  }
  if (f5 === AMO_SC) {
    // SC
    const ok = c.resValid && c.resLo === aLo && c.resHi === aHi;
    c.resValid = false;
    if (!ok) {
      if ((aLo & (size - 1)) !== 0) {
        raise(c, C.CAUSE_MISALIGNED_STORE, aLo, aHi);
        return -1;
      }
      xlo[rd] = 1;
      xhi[rd] = 0;
      return 0;
    }
    const o = amoAddr(c, aLo, aHi, size, ACCESS_WRITE);
    if (o < 0) return -1;
    dv.setInt32(o, xlo[rs2]!, true);
    if (isD) dv.setInt32(o + 4, xhi[rs2]!, true);
    xlo[rd] = 0;
    xhi[rd] = 0;
    return 0;
  }
  const o = amoAddr(c, aLo, aHi, size, ACCESS_WRITE);
  if (o < 0) return -1;
  const oLo = dv.getInt32(o, true);
  const oHi = isD ? dv.getInt32(o + 4, true) : oLo >> 31;
  const bLo = xlo[rs2]!;
  const bHi = isD ? xhi[rs2]! : bLo >> 31;
  let nLo: number;
  let nHi: number;
  switch (f5) {
    case AMO_SWAP:
      nLo = bLo;
      nHi = bHi;
      break;
    case AMO_ADD: {
      nLo = (oLo + bLo) | 0;
      nHi = (oHi + bHi + (nLo >>> 0 < oLo >>> 0 ? 1 : 0)) | 0;
      break;
    }
    case AMO_XOR:
      nLo = oLo ^ bLo;
      nHi = oHi ^ bHi;
      break;
    case AMO_AND:
      nLo = oLo & bLo;
      nHi = oHi & bHi;
      break;
    case AMO_OR:
      nLo = oLo | bLo;
      nHi = oHi | bHi;
      break;
    case AMO_MIN:
    case AMO_MAX: {
      const less = isD ? oHi < bHi || (oHi === bHi && oLo >>> 0 < bLo >>> 0) : oLo < bLo;
      const pickOld = f5 === AMO_MIN ? less : !less;
      nLo = pickOld ? oLo : bLo;
      nHi = pickOld ? oHi : bHi;
      break;
    }
    case AMO_MINU:
    case AMO_MAXU: {
      const less = isD
        ? oHi >>> 0 < bHi >>> 0 || (oHi === bHi && oLo >>> 0 < bLo >>> 0)
        : oLo >>> 0 < bLo >>> 0;
      const pickOld = f5 === AMO_MINU ? less : !less;
      nLo = pickOld ? oLo : bLo;
      nHi = pickOld ? oHi : bHi;
      break;
    }
    default:
      return -2;
  }
  dv.setInt32(o, nLo, true);
  if (isD) dv.setInt32(o + 4, nHi, true);
  xlo[rd] = oLo;
  xhi[rd] = oHi;
  return 0;
}
