// What the TLB tests share: the Sv39 constants, a leaf or pointer PTE, and the few
// instructions their programs use (from the differential tester's assembler, jit-diff-driver).
import { enc } from "./jit-diff-driver.ts";

export const BASE = 0x8000_0000;
export const PAGE = 0x1000;
export const MEGA = 0x20_0000;
/** satp.MODE for Sv39. */
export const SV39 = 8;

/** A PTE pointing at physical address `pa` with `flags`. */
export const pte = (pa: number, flags: number): bigint => (BigInt(pa / PAGE) << 10n) | BigInt(flags);

/** ld rd, 0(rs1) */
export const ld = (rd: number, rs1: number): number => enc.load("ld", rd, rs1, 0).bits;
/** sd rs2, 0(rs1) */
export const sd = (rs2: number, rs1: number): number => enc.store("sd", rs2, rs1, 0).bits;
export const sfence = (rs1: number, rs2: number): number => enc.sfence(rs1, rs2).bits;
export const EBREAK = enc.ebreak().bits;
