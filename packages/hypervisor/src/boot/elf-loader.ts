import { type Gpa, type GuestMemory, gpa, gpaAdd } from "@visor/memory";
import { type ElfFile, ET_DYN, ET_EXEC, parseElf } from "./elf.ts";

export interface LoadedElf {
  /** Physical address to start at (e_entry, translated through its segment when vaddr != paddr). */
  entry: number;
  /** Physical address of the HTIF `tohost` symbol, if the program has one. */
  tohost: Gpa | undefined;
  /** Physical address of the HTIF `fromhost` symbol, if the program has one. */
  fromhost: Gpa | undefined;
  /** The [start, end) physical ranges written (memory size, .bss included). */
  ranges: { start: number; end: number }[];
  elf: ElfFile;
}

function hex(v: bigint | number): string {
  return `0x${v.toString(16)}`;
}

/**
 * Loads a bare-metal RISC-V ELF64 executable (a test program, or firmware such as
 * OpenSBI's fw_jump.elf) into guest RAM (a `GuestMemory`: never the hypervisor's memory after it): every PT_LOAD segment at its physical (load)
 * address, file bytes copied and the rest of its memory size zeroed. No relocation is
 * applied; ET_DYN files are loaded at their link addresses (OpenSBI relocates itself).
 *
 * All segments are checked before anything is written: a segment outside RAM, two
 * overlapping segments, or an entry point outside the loaded image is an Error.
 */
export function loadElf(ram: GuestMemory, bytes: Uint8Array): LoadedElf {
  const elf = parseElf(bytes);
  if (elf.type !== ET_EXEC && elf.type !== ET_DYN) fail(`not an executable (e_type ${elf.type})`);
  const ramRange = `RAM [${hex(ram.base)}, ${hex(ram.end)})`;
  const ranges: { start: number; end: number; index: number }[] = [];
  for (const seg of elf.loadSegments) {
    if (seg.memSize === 0n) continue;
    const start = seg.paddr;
    const end = seg.paddr + seg.memSize;
    if (start < BigInt(ram.base) || end > BigInt(ram.end)) {
      fail(`segment ${seg.index} [${hex(start)}, ${hex(end)}) is outside ${ramRange}`);
    }
    ranges.push({ start: Number(start), end: Number(end), index: seg.index });
  }
  if (ranges.length === 0) fail("no loadable segment");
  const sorted = [...ranges].sort((a, b) => a.start - b.start);
  for (let i = 1; i < sorted.length; i++) {
    const a = sorted[i - 1]!;
    const b = sorted[i]!;
    if (b.start < a.end) fail(`segments ${a.index} and ${b.index} overlap at ${hex(b.start)}`);
  }

  // The entry point is virtual; find the segment holding it and translate to physical.
  let entry: number | undefined;
  for (const seg of elf.loadSegments) {
    if (elf.entry >= seg.vaddr && elf.entry < seg.vaddr + seg.memSize) {
      entry = Number(seg.paddr + (elf.entry - seg.vaddr));
      break;
    }
  }
  if (entry === undefined) fail(`entry point ${hex(elf.entry)} is not inside any loaded segment`);

  const symbolAddr = (name: string): Gpa | undefined => {
    const s = elf.symbol(name);
    if (s === undefined) return undefined;
    if (s.value > BigInt(Number.MAX_SAFE_INTEGER) || !ram.contains(gpa(Number(s.value)), 8)) {
      fail(`symbol ${name} at ${hex(s.value)} is outside ${ramRange}`);
    }
    return gpa(Number(s.value));
  };
  const tohost = symbolAddr("tohost");
  const fromhost = symbolAddr("fromhost");

  for (const seg of elf.loadSegments) {
    if (seg.memSize === 0n) continue;
    const pa = gpa(Number(seg.paddr));
    ram.write(pa, seg.data);
    const bss = Number(seg.memSize) - seg.fileSize;
    if (bss > 0) ram.viewMut(gpaAdd(pa, seg.fileSize), bss).fill(0);
  }
  return { entry, tohost, fromhost, ranges: sorted.map(({ start, end }) => ({ start, end })), elf };
}

function fail(msg: string): never {
  throw new Error(`elf: ${msg}`);
}
