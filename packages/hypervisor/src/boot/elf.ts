/**
 * A pure ELF64 little-endian parser (no RAM, no host, no imports), so it can be moved to
 * a lower package or reused as is. Layout per the System V gABI, "ELF Object Files"
 * (ELF header, program header table, section header table, symbol table), and the
 * RISC-V psABI (EM_RISCV = 243).
 *
 * Everything the file claims (offsets, counts, sizes, string indexes) is checked against
 * the file; any malformed case is a one-line Error starting with "elf:".
 */

export const ELF_MAGIC = [0x7f, 0x45, 0x4c, 0x46] as const; // "\x7fELF"
export const ELFCLASS64 = 2;
export const ELFDATA2LSB = 1;
export const EV_CURRENT = 1;
export const ET_EXEC = 2;
export const ET_DYN = 3;
export const EM_RISCV = 243;
export const PT_LOAD = 1;
export const PF_X = 1;
export const PF_W = 2;
export const PF_R = 4;
export const SHT_SYMTAB = 2;
export const SHT_DYNSYM = 11;
export const SHN_UNDEF = 0;
export const SHN_XINDEX = 0xffff;

const EHDR_SIZE = 64;
const PHDR_SIZE = 56;
const SHDR_SIZE = 64;
const SYM_SIZE = 24;

export interface ElfSegment {
  /** Index in the program header table. */
  index: number;
  type: number;
  /** PF_R | PF_W | PF_X */
  flags: number;
  /** File offset of the segment's bytes. */
  offset: number;
  vaddr: bigint;
  /** Load (physical) address: where bare-metal loaders put the bytes. */
  paddr: bigint;
  fileSize: number;
  memSize: bigint;
  align: bigint;
  /** The segment's file bytes (a view into the input, fileSize long). */
  data: Uint8Array;
}

export interface ElfSymbol {
  name: string;
  value: bigint;
  size: bigint;
  /** STT_* (low 4 bits of st_info). */
  type: number;
  /** STB_* (high 4 bits of st_info). */
  bind: number;
  /** Section index; SHN_UNDEF (0) for undefined symbols. */
  shndx: number;
}

export interface ElfFile {
  /** e_type: ET_EXEC, ET_DYN, ... */
  type: number;
  machine: number;
  /** e_flags (for RISC-V: RVC, float ABI, ...). */
  flags: number;
  entry: bigint;
  /** Every program header, in table order. */
  segments: ElfSegment[];
  /** The PT_LOAD segments. */
  loadSegments: ElfSegment[];
  /** Symbols of .symtab, or of .dynsym when the file has no .symtab; [] when stripped. */
  symbols: ElfSymbol[];
  /** The first defined symbol with this name. */
  symbol(name: string): ElfSymbol | undefined;
}

export interface ParseElfOptions {
  /** Required e_machine; default EM_RISCV. `null` accepts any machine. */
  machine?: number | null;
}

function fail(msg: string): never {
  throw new Error(`elf: ${msg}`);
}

function safe(v: bigint, what: string, limit: number): number {
  if (v > BigInt(limit))
    fail(`${what} 0x${v.toString(16)} runs past the end of the ${limit}-byte file (truncated?)`);
  return Number(v);
}

function hex(v: bigint | number): string {
  return `0x${v.toString(16)}`;
}

/** Strict UTF-8 is not required for symbol names; bytes are read as Latin-1. */
function cString(b: Uint8Array, start: number, end: number, what: string): string {
  let i = start;
  while (i < end && b[i] !== 0) i++;
  if (i >= end) fail(`${what} is not NUL-terminated inside its string table`);
  let s = "";
  for (let k = start; k < i; k++) s += String.fromCharCode(b[k]!);
  return s;
}

/** Parses an ELF64 little-endian file. */
export function parseElf(bytes: Uint8Array, opts: ParseElfOptions = {}): ElfFile {
  const len = bytes.length;
  if (len < 4 || ELF_MAGIC.some((m, i) => bytes[i] !== m)) fail("not an ELF file (bad magic)");
  if (len < EHDR_SIZE) fail(`file is ${len} bytes, too short for an ELF64 header (truncated?)`);
  if (bytes[4] !== ELFCLASS64) fail(`not a 64-bit ELF file (EI_CLASS ${bytes[4]})`);
  if (bytes[5] !== ELFDATA2LSB) fail(`not a little-endian ELF file (EI_DATA ${bytes[5]})`);
  if (bytes[6] !== EV_CURRENT) fail(`unknown ELF version ${bytes[6]}`);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const type = dv.getUint16(16, true);
  const machine = dv.getUint16(18, true);
  const wanted = opts.machine === undefined ? EM_RISCV : opts.machine;
  if (wanted !== null && machine !== wanted) {
    fail(`wrong machine ${machine} (expected ${wanted === EM_RISCV ? "RISC-V, 243" : wanted})`);
  }
  const entry = dv.getBigUint64(24, true);
  const phoff = dv.getBigUint64(32, true);
  const shoff = dv.getBigUint64(40, true);
  const flags = dv.getUint32(48, true);
  const phentsize = dv.getUint16(54, true);
  const phnum = dv.getUint16(56, true);
  const shentsize = dv.getUint16(58, true);
  let shnum = dv.getUint16(60, true);

  // Program headers.
  const segments: ElfSegment[] = [];
  if (phnum > 0) {
    if (phentsize !== PHDR_SIZE) fail(`program header entry size ${phentsize} (expected ${PHDR_SIZE})`);
    const ph = safe(phoff, "program header table offset", len);
    if (ph + phnum * PHDR_SIZE > len) fail("program header table runs past the end of the file (truncated?)");
    for (let i = 0; i < phnum; i++) {
      const o = ph + i * PHDR_SIZE;
      const offset = dv.getBigUint64(o + 8, true);
      const fileSize = dv.getBigUint64(o + 32, true);
      const memSize = dv.getBigUint64(o + 40, true);
      const segType = dv.getUint32(o, true);
      if (segType === PT_LOAD && fileSize > memSize) {
        fail(`segment ${i} has a file size ${hex(fileSize)} larger than its memory size ${hex(memSize)}`);
      }
      if (offset + fileSize > BigInt(len)) {
        fail(
          `segment ${i} data [${hex(offset)}, +${hex(fileSize)}) runs past the end of the file (truncated?)`,
        );
      }
      const off = Number(offset);
      const fsz = Number(fileSize);
      segments.push({
        index: i,
        type: segType,
        flags: dv.getUint32(o + 4, true),
        offset: off,
        vaddr: dv.getBigUint64(o + 16, true),
        paddr: dv.getBigUint64(o + 24, true),
        fileSize: fsz,
        memSize,
        align: dv.getBigUint64(o + 48, true),
        data: bytes.subarray(off, off + fsz),
      });
    }
  }

  // Section headers, only to find the symbol table.
  let symbols: ElfSymbol[] = [];
  if (shoff !== 0n) {
    if (shentsize !== SHDR_SIZE) fail(`section header entry size ${shentsize} (expected ${SHDR_SIZE})`);
    const sh = safe(shoff, "section header table offset", len);
    if (sh + SHDR_SIZE > len) fail("section header table runs past the end of the file (truncated?)");
    // Extended numbering: e_shnum 0 means the count is in section 0's sh_size.
    if (shnum === 0) shnum = safe(dv.getBigUint64(sh + 32, true), "section count", len);
    if (sh + shnum * SHDR_SIZE > len) fail("section header table runs past the end of the file (truncated?)");
    const section = (i: number) => {
      const o = sh + i * SHDR_SIZE;
      return {
        type: dv.getUint32(o + 4, true),
        offset: dv.getBigUint64(o + 24, true),
        size: dv.getBigUint64(o + 32, true),
        link: dv.getUint32(o + 40, true),
        entsize: dv.getBigUint64(o + 56, true),
      };
    };
    let symtab: number | undefined;
    for (let i = 0; i < shnum && symtab === undefined; i++) if (section(i).type === SHT_SYMTAB) symtab = i;
    for (let i = 0; i < shnum && symtab === undefined; i++) if (section(i).type === SHT_DYNSYM) symtab = i;
    if (symtab !== undefined) {
      const s = section(symtab);
      if (s.entsize !== BigInt(SYM_SIZE)) fail(`symbol table entry size ${s.entsize} (expected ${SYM_SIZE})`);
      if (s.size % BigInt(SYM_SIZE) !== 0n)
        fail(`symbol table size ${hex(s.size)} is not a multiple of ${SYM_SIZE}`);
      if (s.link >= shnum) fail(`symbol table links to section ${s.link}, but there are ${shnum}`);
      const str = section(s.link);
      if (s.offset + s.size > BigInt(len)) fail("symbol table runs past the end of the file (truncated?)");
      if (str.offset + str.size > BigInt(len))
        fail("symbol string table runs past the end of the file (truncated?)");
      const symOff = Number(s.offset);
      const count = Math.floor(Number(s.size) / SYM_SIZE);
      const strOff = Number(str.offset);
      const strEnd = strOff + Number(str.size);
      symbols = [];
      // Entry 0 is the reserved null symbol.
      for (let i = 1; i < count; i++) {
        const o = symOff + i * SYM_SIZE;
        const nameIdx = dv.getUint32(o, true);
        if (strOff + nameIdx >= strEnd)
          fail(`symbol ${i} name offset ${nameIdx} is outside its string table`);
        const info = bytes[o + 4]!;
        symbols.push({
          name: cString(bytes, strOff + nameIdx, strEnd, `symbol ${i} name`),
          value: dv.getBigUint64(o + 8, true),
          size: dv.getBigUint64(o + 16, true),
          type: info & 0xf,
          bind: info >> 4,
          shndx: dv.getUint16(o + 6, true),
        });
      }
    }
  }

  const byName = new Map<string, ElfSymbol>();
  for (const s of symbols)
    if (s.shndx !== SHN_UNDEF && s.name !== "" && !byName.has(s.name)) byName.set(s.name, s);
  return {
    type,
    machine,
    flags,
    entry,
    segments,
    loadSegments: segments.filter((s) => s.type === PT_LOAD),
    symbols,
    symbol: (name: string) => byName.get(name),
  };
}
