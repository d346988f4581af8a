/**
 * The x86-64 register structs of <asm/kvm.h> as plain objects, with their byte layouts.
 * 64-bit fields are bigint (they are full 64-bit values: addresses, flags, MSRs).
 */
import { SIZEOF } from "./constants.ts";

/** `struct kvm_regs`: the general registers, rip and rflags. */
export interface Regs {
  rax: bigint;
  rbx: bigint;
  rcx: bigint;
  rdx: bigint;
  rsi: bigint;
  rdi: bigint;
  rsp: bigint;
  rbp: bigint;
  r8: bigint;
  r9: bigint;
  r10: bigint;
  r11: bigint;
  r12: bigint;
  r13: bigint;
  r14: bigint;
  r15: bigint;
  rip: bigint;
  rflags: bigint;
}

const REG_ORDER = [
  "rax",
  "rbx",
  "rcx",
  "rdx",
  "rsi",
  "rdi",
  "rsp",
  "rbp",
  "r8",
  "r9",
  "r10",
  "r11",
  "r12",
  "r13",
  "r14",
  "r15",
  "rip",
  "rflags",
] as const;

export function decodeRegs(b: Uint8Array): Regs {
  const dv = new DataView(b.buffer, b.byteOffset, SIZEOF.regs);
  const r = {} as Regs;
  REG_ORDER.forEach((k, i) => {
    r[k] = dv.getBigUint64(i * 8, true);
  });
  return r;
}

export function encodeRegs(r: Regs): Uint8Array {
  const b = new Uint8Array(SIZEOF.regs);
  const dv = new DataView(b.buffer);
  REG_ORDER.forEach((k, i) => {
    dv.setBigUint64(i * 8, BigInt.asUintN(64, r[k]), true);
  });
  return b;
}

/** An all-zero Regs, with the reserved bit 1 of rflags set. */
export function emptyRegs(): Regs {
  const r = decodeRegs(new Uint8Array(SIZEOF.regs));
  r.rflags = 2n;
  return r;
}

/** `struct kvm_segment`. */
export interface Segment {
  base: bigint;
  limit: number;
  selector: number;
  type: number;
  present: number;
  dpl: number;
  db: number;
  s: number;
  l: number;
  g: number;
  avl: number;
  unusable: number;
}

/** `struct kvm_dtable` (GDTR, IDTR). */
export interface DescriptorTable {
  base: bigint;
  limit: number;
}

/** `struct kvm_sregs`: segments, descriptor tables, control registers, EFER. */
export interface Sregs {
  cs: Segment;
  ds: Segment;
  es: Segment;
  fs: Segment;
  gs: Segment;
  ss: Segment;
  tr: Segment;
  ldt: Segment;
  gdt: DescriptorTable;
  idt: DescriptorTable;
  cr0: bigint;
  cr2: bigint;
  cr3: bigint;
  cr4: bigint;
  cr8: bigint;
  efer: bigint;
  apicBase: bigint;
  /** `interrupt_bitmap[4]`: pending external interrupts (256 bits). */
  interruptBitmap: [bigint, bigint, bigint, bigint];
}

const SEGMENTS = ["cs", "ds", "es", "fs", "gs", "ss", "tr", "ldt"] as const;
const SEGMENT_BYTES = 24;
const DTABLE_BYTES = 16;
const SEG_FLAGS = ["type", "present", "dpl", "db", "s", "l", "g", "avl", "unusable"] as const;

function readSegment(dv: DataView, o: number): Segment {
  const s = {
    base: dv.getBigUint64(o, true),
    limit: dv.getUint32(o + 8, true),
    selector: dv.getUint16(o + 12, true),
  } as Segment;
  SEG_FLAGS.forEach((k, i) => {
    s[k] = dv.getUint8(o + 14 + i);
  });
  return s;
}

function writeSegment(dv: DataView, o: number, s: Segment): void {
  dv.setBigUint64(o, BigInt.asUintN(64, s.base), true);
  dv.setUint32(o + 8, s.limit >>> 0, true);
  dv.setUint16(o + 12, s.selector & 0xffff, true);
  SEG_FLAGS.forEach((k, i) => {
    dv.setUint8(o + 14 + i, s[k] & 0xff);
  });
}

const CR_OFFSET = SEGMENTS.length * SEGMENT_BYTES + 2 * DTABLE_BYTES;
const CRS = ["cr0", "cr2", "cr3", "cr4", "cr8", "efer", "apicBase"] as const;

export function decodeSregs(b: Uint8Array): Sregs {
  const dv = new DataView(b.buffer, b.byteOffset, SIZEOF.sregs);
  const s = {} as Sregs;
  SEGMENTS.forEach((k, i) => {
    s[k] = readSegment(dv, i * SEGMENT_BYTES);
  });
  const dt = SEGMENTS.length * SEGMENT_BYTES;
  s.gdt = { base: dv.getBigUint64(dt, true), limit: dv.getUint16(dt + 8, true) };
  s.idt = {
    base: dv.getBigUint64(dt + DTABLE_BYTES, true),
    limit: dv.getUint16(dt + DTABLE_BYTES + 8, true),
  };
  CRS.forEach((k, i) => {
    s[k] = dv.getBigUint64(CR_OFFSET + i * 8, true);
  });
  const ib = CR_OFFSET + CRS.length * 8;
  s.interruptBitmap = [0, 1, 2, 3].map((i) => dv.getBigUint64(ib + i * 8, true)) as Sregs["interruptBitmap"];
  return s;
}

export function encodeSregs(s: Sregs): Uint8Array {
  const b = new Uint8Array(SIZEOF.sregs);
  const dv = new DataView(b.buffer);
  SEGMENTS.forEach((k, i) => {
    writeSegment(dv, i * SEGMENT_BYTES, s[k]);
  });
  const dt = SEGMENTS.length * SEGMENT_BYTES;
  dv.setBigUint64(dt, BigInt.asUintN(64, s.gdt.base), true);
  dv.setUint16(dt + 8, s.gdt.limit & 0xffff, true);
  dv.setBigUint64(dt + DTABLE_BYTES, BigInt.asUintN(64, s.idt.base), true);
  dv.setUint16(dt + DTABLE_BYTES + 8, s.idt.limit & 0xffff, true);
  CRS.forEach((k, i) => {
    dv.setBigUint64(CR_OFFSET + i * 8, BigInt.asUintN(64, s[k]), true);
  });
  const ib = CR_OFFSET + CRS.length * 8;
  s.interruptBitmap.forEach((v, i) => {
    dv.setBigUint64(ib + i * 8, BigInt.asUintN(64, v), true);
  });
  return b;
}

/** `struct kvm_cpuid_entry2`. */
export interface CpuidEntry {
  function: number;
  index: number;
  flags: number;
  eax: number;
  ebx: number;
  ecx: number;
  edx: number;
}

const CPUID_FIELDS = ["function", "index", "flags", "eax", "ebx", "ecx", "edx"] as const;

/** `struct kvm_cpuid2` with room for `capacity` entries (`nent` = capacity). */
export function cpuid2Buffer(capacity: number): Uint8Array {
  const b = new Uint8Array(SIZEOF.cpuid2Header + capacity * SIZEOF.cpuidEntry2);
  new DataView(b.buffer).setUint32(0, capacity, true);
  return b;
}

export function decodeCpuid2(b: Uint8Array): CpuidEntry[] {
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const n = dv.getUint32(0, true);
  const max = (b.byteLength - SIZEOF.cpuid2Header) / SIZEOF.cpuidEntry2;
  if (n > max) throw new RangeError(`kvm_cpuid2 says ${n} entries, the buffer holds ${max}`);
  const out: CpuidEntry[] = [];
  for (let i = 0; i < n; i++) {
    const o = SIZEOF.cpuid2Header + i * SIZEOF.cpuidEntry2;
    const e = {} as CpuidEntry;
    CPUID_FIELDS.forEach((k, j) => {
      e[k] = dv.getUint32(o + j * 4, true);
    });
    out.push(e);
  }
  return out;
}

export function encodeCpuid2(entries: readonly CpuidEntry[]): Uint8Array {
  const b = cpuid2Buffer(entries.length);
  const dv = new DataView(b.buffer);
  entries.forEach((e, i) => {
    const o = SIZEOF.cpuid2Header + i * SIZEOF.cpuidEntry2;
    CPUID_FIELDS.forEach((k, j) => {
      dv.setUint32(o + j * 4, e[k] >>> 0, true);
    });
  });
  return b;
}

/** One `struct kvm_msr_entry`. */
export interface MsrEntry {
  index: number;
  data: bigint;
}

export function encodeMsrs(entries: readonly MsrEntry[]): Uint8Array {
  const b = new Uint8Array(SIZEOF.msrsHeader + entries.length * SIZEOF.msrEntry);
  const dv = new DataView(b.buffer);
  dv.setUint32(0, entries.length, true);
  entries.forEach((e, i) => {
    const o = SIZEOF.msrsHeader + i * SIZEOF.msrEntry;
    dv.setUint32(o, e.index >>> 0, true);
    dv.setBigUint64(o + 8, BigInt.asUintN(64, e.data), true);
  });
  return b;
}
