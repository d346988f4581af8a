/**
 * Guest memory as a debugger sees it: virtual addresses through the hart's current
 * translation (its privilege, satp, and under V=1 both stages: `Hart.translate`), physical
 * when translation is off (M-mode, satp bare). Only RAM is read or written: a device
 * register read by a debugger could change the device, so MMIO and holes are unreadable.
 */
import { ACCESS_EXEC, ACCESS_READ, ACCESS_WRITE, type GuestRam, hpa } from "@visor/memory";
import type { Hart } from "../hart.ts";

/**
 * Make the page holding `va` present for `write` (or read), as a kernel would on a page
 * fault (a process's lazily mapped pages); false when the address is not mapped at all.
 */
export type FaultIn = (va: bigint, write: boolean) => boolean;

const PAGE = 4096n;

function physical(hart: Hart, va: bigint, write: boolean, faultIn: FaultIn | undefined): number {
  for (let attempt = 0; attempt < 2; attempt++) {
    let pa = hart.translate(va, write ? ACCESS_WRITE : ACCESS_READ);
    // code a debugger reads may be execute-only
    if (pa < 0 && !write) pa = hart.translate(va, ACCESS_EXEC);
    if (pa >= 0) return pa;
    if (faultIn === undefined || attempt > 0 || !faultIn(va, write)) return -1;
  }
  return -1;
}

/**
 * Up to `len` bytes at `va` (in `ram`, the hart's RAM): fewer (possibly none) when the range runs into memory that
 * is not mapped or not RAM.
 */
export function readVirtual(
  hart: Hart,
  ram: GuestRam,
  va: bigint,
  len: number,
  faultIn?: FaultIn,
): Uint8Array {
  const out = new Uint8Array(len);
  let done = 0;
  while (done < len) {
    const at = BigInt.asUintN(64, va + BigInt(done));
    const off = Number(at % PAGE);
    const n = Math.min(len - done, 4096 - off);
    const page = physical(hart, at, false, faultIn);
    if (page < 0 || !ram.contains(page + off, n)) break;
    out.set(ram.view(hpa(page + off), n), done);
    done += n;
  }
  return out.subarray(0, done);
}

/** Write `data` at `va`; false (and possibly a partial write) when a page is not writable RAM. */
export function writeVirtual(
  hart: Hart,
  ram: GuestRam,
  va: bigint,
  data: Uint8Array,
  faultIn?: FaultIn,
): boolean {
  let done = 0;
  while (done < data.length) {
    const at = BigInt.asUintN(64, va + BigInt(done));
    const off = Number(at % PAGE);
    const n = Math.min(data.length - done, 4096 - off);
    const page = physical(hart, at, true, faultIn);
    if (page < 0 || !ram.contains(page + off, n)) return false;
    // RAM.write tells the decoded-instruction caches (and so the translator) of the change
    ram.write(hpa(page + off), data.subarray(done, done + n));
    done += n;
  }
  return true;
}

/** A data access an instruction is about to make: its address, size and direction. */
export interface DataAccess {
  addr: bigint;
  size: number;
  read: boolean;
  write: boolean;
}

const sext = (v: number, bits: number): number => (v << (32 - bits)) >> (32 - bits);

/**
 * The data access of the instruction at the hart's pc (loads, stores, FP loads and
 * stores, AMOs, LR/SC, and their compressed forms), or undefined when it makes none or
 * cannot be fetched. Watchpoints use it to stop before the access.
 */
export function nextDataAccess(hart: Hart, ram: GuestRam, faultIn?: FaultIn): DataAccess | undefined {
  const bytes = readVirtual(hart, ram, hart.pc, 4, faultIn);
  if (bytes.length < 2) return undefined;
  const h = bytes[0]! | (bytes[1]! << 8);
  const at = (rs1: number, imm: number, size: number, read: boolean, write: boolean): DataAccess => ({
    addr: BigInt.asUintN(64, hart.getX(rs1) + BigInt(imm)),
    size,
    read,
    write,
  });
  if ((h & 3) !== 3) {
    const f3 = h >>> 13;
    const q = h & 3;
    if (q === 0) {
      const rs1 = 8 + ((h >>> 7) & 7);
      const word = (((h >>> 10) & 7) << 3) | (((h >>> 6) & 1) << 2) | (((h >>> 5) & 1) << 6);
      const dword = (((h >>> 10) & 7) << 3) | (((h >>> 5) & 3) << 6);
      switch (f3) {
        case 1: // c.fld
        case 3: // c.ld
          return at(rs1, dword, 8, true, false);
        case 2: // c.lw
          return at(rs1, word, 4, true, false);
        case 5: // c.fsd
        case 7: // c.sd
          return at(rs1, dword, 8, false, true);
        case 6: // c.sw
          return at(rs1, word, 4, false, true);
      }
    } else if (q === 2) {
      const b12 = (h >>> 12) & 1;
      switch (f3) {
        case 1: // c.fldsp
        case 3: // c.ldsp
          return at(2, (b12 << 5) | (((h >>> 5) & 3) << 3) | (((h >>> 2) & 7) << 6), 8, true, false);
        case 2: // c.lwsp
          return at(2, (b12 << 5) | (((h >>> 4) & 7) << 2) | (((h >>> 2) & 3) << 6), 4, true, false);
        case 5: // c.fsdsp
        case 7: // c.sdsp
          return at(2, (((h >>> 10) & 7) << 3) | (((h >>> 7) & 7) << 6), 8, false, true);
        case 6: // c.swsp
          return at(2, (((h >>> 9) & 15) << 2) | (((h >>> 7) & 3) << 6), 4, false, true);
      }
    }
    return undefined;
  }
  if (bytes.length < 4) return undefined;
  const w = h | (bytes[2]! << 16) | (bytes[3]! << 24);
  const rs1 = (w >>> 15) & 31;
  const f3 = (w >>> 12) & 7;
  switch (w & 0x7f) {
    case 0x03: // loads
      return f3 === 7 ? undefined : at(rs1, w >> 20, 1 << (f3 & 3), true, false);
    case 0x07: // FP loads
      return f3 === 2 || f3 === 3 ? at(rs1, w >> 20, f3 === 2 ? 4 : 8, true, false) : undefined;
    case 0x23: // stores
      return f3 > 3
        ? undefined
        : at(rs1, sext(((w >>> 25) << 5) | ((w >>> 7) & 31), 12), 1 << f3, false, true);
    case 0x27: // FP stores
      return f3 === 2 || f3 === 3
        ? at(rs1, sext(((w >>> 25) << 5) | ((w >>> 7) & 31), 12), f3 === 2 ? 4 : 8, false, true)
        : undefined;
    case 0x2f: {
      // AMOs: LR reads, SC writes, the rest read and write
      if (f3 !== 2 && f3 !== 3) return undefined;
      const op = w >>> 27;
      return at(rs1, 0, f3 === 2 ? 4 : 8, op !== 3, op !== 2);
    }
  }
  return undefined;
}
