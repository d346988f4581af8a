/**
 * ELF64 executables for riscv64 (System V gABI, "ELF-64 Object File Format"; RISC-V ELF
 * psABI for e_machine 243 and the e_flags float-ABI bits).
 *
 * Static executables (ET_EXEC), static-PIE (ET_DYN without PT_INTERP) and dynamically
 * linked ones (PT_INTERP: the interpreter is loaded too) are accepted. Segments are
 * mapped privately from the file's page cache, so text pages are shared between every
 * process running the same binary and its decoded instructions stay warm across exec.
 */
import { ENOEXEC, LinuxError } from "./errno.ts";
import {
  type AddressSpace,
  type MemObject,
  PAGE,
  PROT_EXEC,
  PROT_READ,
  PROT_WRITE,
  USER_TOP,
  Vma,
} from "./mm.ts";
import { utf8Decode } from "./utf8.ts";

export const ET_EXEC = 2;
export const ET_DYN = 3;
export const EM_RISCV = 243;
export const PT_LOAD = 1;
export const PT_INTERP = 3;
export const PT_PHDR = 6;
export const PT_GNU_STACK = 0x6474e551;
export const PF_X = 1;
export const PF_W = 2;
export const PF_R = 4;
/** e_flags (RISC-V psABI): RVC, float ABI (bits 1-2), RVE. */
export const EF_RISCV_RVC = 0x1;
export const EF_RISCV_FLOAT_ABI = 0x6;
export const EF_RISCV_FLOAT_ABI_QUAD = 0x6;
export const EF_RISCV_RVE = 0x8;

const MACHINES: Record<number, string> = {
  3: "x86 (i386)",
  8: "MIPS",
  20: "PowerPC",
  21: "PowerPC64",
  22: "S/390",
  40: "ARM",
  62: "x86-64",
  183: "AArch64",
  243: "RISC-V",
  258: "LoongArch",
};

export interface Phdr {
  type: number;
  flags: number;
  offset: number;
  vaddr: number;
  filesz: number;
  memsz: number;
  align: number;
}

export interface ElfInfo {
  type: number;
  entry: number;
  phoff: number;
  phentsize: number;
  phdrs: Phdr[];
  interp: string | undefined;
}

/** A file that is not a runnable riscv64 executable; `message` says why in one line. */
export class ExecFormatError extends LinuxError {
  override name = "ExecFormatError";
  constructor(message: string) {
    super(ENOEXEC, message);
  }
}

/**
 * A 64-bit header field as a number. A value above 2^53 cannot be a file offset, a size or
 * a user address here (user addresses end at 2^38), and would lose precision: refused.
 */
function u64(dv: DataView, off: number, what: string): number {
  const v = dv.getBigUint64(off, true);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new ExecFormatError(`ELF ${what} out of range`);
  return Number(v);
}

/** True when the bytes start with the ELF magic. */
export function isElf(head: Uint8Array): boolean {
  return head.length >= 4 && head[0] === 0x7f && head[1] === 0x45 && head[2] === 0x4c && head[3] === 0x46;
}

/**
 * Parse and validate an ELF header and its program headers.
 * @param read reads `len` bytes at file offset `pos` (short reads at end of file)
 */
export function parseElf(read: (pos: number, len: number) => Uint8Array): ElfInfo {
  const h = read(0, 64);
  if (!isElf(h)) throw new ExecFormatError("not an ELF executable");
  if (h.length < 64) throw new ExecFormatError("truncated ELF header");
  const dv = new DataView(h.buffer, h.byteOffset, h.byteLength);
  if (h[4] !== 2) throw new ExecFormatError("32-bit ELF, not riscv64");
  if (h[5] !== 1) throw new ExecFormatError("big-endian ELF, not riscv64");
  const type = dv.getUint16(16, true);
  const machine = dv.getUint16(18, true);
  if (machine !== EM_RISCV) {
    throw new ExecFormatError(`ELF for ${MACHINES[machine] ?? `machine ${machine}`}, not riscv64`);
  }
  if (type !== ET_EXEC && type !== ET_DYN) throw new ExecFormatError(`ELF type ${type} is not an executable`);
  const flags = dv.getUint32(48, true);
  if ((flags & EF_RISCV_RVE) !== 0) throw new ExecFormatError("RV64E (embedded) ELF, not supported");
  if ((flags & EF_RISCV_FLOAT_ABI) === EF_RISCV_FLOAT_ABI_QUAD)
    throw new ExecFormatError("quad-float ABI ELF, not supported");
  const entry = u64(dv, 24, "e_entry");
  const phoff = u64(dv, 32, "e_phoff");
  const phentsize = dv.getUint16(54, true);
  const phnum = dv.getUint16(56, true);
  if (phentsize !== 56 || phnum === 0 || phnum > 256) throw new ExecFormatError("bad ELF program headers");
  const ph = read(phoff, phnum * 56);
  if (ph.length < phnum * 56) throw new ExecFormatError("truncated ELF program headers");
  const pv = new DataView(ph.buffer, ph.byteOffset, ph.byteLength);
  const phdrs: Phdr[] = [];
  let interp: string | undefined;
  for (let i = 0; i < phnum; i++) {
    const o = i * 56;
    const p: Phdr = {
      type: pv.getUint32(o, true),
      flags: pv.getUint32(o + 4, true),
      offset: u64(pv, o + 8, "p_offset"),
      vaddr: u64(pv, o + 16, "p_vaddr"),
      filesz: u64(pv, o + 32, "p_filesz"),
      memsz: u64(pv, o + 40, "p_memsz"),
      align: u64(pv, o + 48, "p_align"),
    };
    if (p.type === PT_LOAD) {
      if (p.filesz > p.memsz) throw new ExecFormatError("ELF segment with p_filesz > p_memsz");
      if (p.vaddr % PAGE !== p.offset % PAGE)
        throw new ExecFormatError("ELF segment not congruent to the page size");
      if (p.vaddr + p.memsz > USER_TOP)
        throw new ExecFormatError("ELF segment outside the user address space");
    }
    if (p.type === PT_INTERP) {
      if (p.filesz < 2 || p.filesz > 4096) throw new ExecFormatError("bad PT_INTERP");
      const b = read(p.offset, p.filesz);
      interp = utf8Decode(b.subarray(0, b.indexOf(0) >= 0 ? b.indexOf(0) : b.length));
    }
    phdrs.push(p);
  }
  if (!phdrs.some((p) => p.type === PT_LOAD)) throw new ExecFormatError("ELF without loadable segments");
  return { type, entry, phoff, phentsize, phdrs, interp };
}

/** [lowest, highest) page-aligned span of the PT_LOAD segments (unbiased). */
export function loadSpan(info: ElfInfo): { lo: number; hi: number } {
  let lo = Number.POSITIVE_INFINITY;
  let hi = 0;
  for (const p of info.phdrs) {
    if (p.type !== PT_LOAD) continue;
    lo = Math.min(lo, p.vaddr - (p.vaddr % PAGE));
    hi = Math.max(hi, Math.ceil((p.vaddr + p.memsz) / PAGE) * PAGE);
  }
  return { lo, hi };
}

export interface Loaded {
  entry: number;
  /** Address of the program headers in memory (AT_PHDR), 0 if not mapped. */
  phdr: number;
  phnum: number;
  /** End of the highest segment (brk start). */
  end: number;
  bias: number;
}

function protOf(flags: number): number {
  return (
    ((flags & PF_R) !== 0 ? PROT_READ : 0) |
    ((flags & PF_W) !== 0 ? PROT_WRITE : 0) |
    ((flags & PF_X) !== 0 ? PROT_EXEC : 0)
  );
}

/**
 * Map the PT_LOAD segments of `info` into `mm` at `bias`, backed by the file's page cache
 * object `obj` (mapped private, so writes copy).
 */
export function mapElf(mm: AddressSpace, obj: MemObject, info: ElfInfo, bias: number, name: string): Loaded {
  let end = 0;
  let phdr = 0;
  for (const p of info.phdrs) {
    if (p.type !== PT_LOAD || p.memsz === 0) continue;
    const prot = protOf(p.flags);
    const vaddr = p.vaddr + bias;
    const start = vaddr - (vaddr % PAGE);
    const fileEnd = vaddr + p.filesz;
    const fileMapEnd = Math.ceil(fileEnd / PAGE) * PAGE;
    const memEnd = Math.ceil((vaddr + p.memsz) / PAGE) * PAGE;
    if (p.filesz > 0) {
      obj.addUser();
      mm.insert(new Vma(start, fileMapEnd, prot, false, obj, Math.floor(p.offset / PAGE), name));
      // Bytes of the last file page past p_filesz belong to .bss: they must read as zero.
      if (fileEnd % PAGE !== 0 && p.memsz > p.filesz) {
        if ((prot & PROT_WRITE) === 0) mm.protect(start, fileMapEnd, prot | PROT_WRITE | PROT_READ);
        mm.zeroOut(fileEnd, fileMapEnd - fileEnd);
        if ((prot & PROT_WRITE) === 0) mm.protect(start, fileMapEnd, prot);
      }
    }
    const anonStart = p.filesz > 0 ? fileMapEnd : start;
    if (memEnd > anonStart) mm.insert(new Vma(anonStart, memEnd, prot, false, undefined, 0, name));
    end = Math.max(end, vaddr + p.memsz);
    if (info.phoff >= p.offset && info.phoff + info.phdrs.length * 56 <= p.offset + p.filesz) {
      phdr = vaddr + (info.phoff - p.offset);
    }
  }
  const ph = info.phdrs.find((p) => p.type === PT_PHDR);
  if (ph !== undefined) phdr = ph.vaddr + bias;
  return { entry: info.entry + bias, phdr, phnum: info.phdrs.length, end, bias };
}
