/**
 * The smallest ELF64 reader the backend comparison needs: the bytes and address of one
 * section (`.text` of the cpu benchmark program). Little-endian ELF64 only.
 */
import { readFileSync } from "node:fs";

export interface Section {
  addr: number;
  bytes: Uint8Array;
}

export function readSection(path: string, name: string): Section {
  let file: Uint8Array;
  try {
    file = readFileSync(path);
  } catch (e) {
    throw new Error(`cannot read ${path}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
  }
  const dv = new DataView(file.buffer, file.byteOffset, file.byteLength);
  if (file.length < 64 || dv.getUint32(0, false) !== 0x7f454c46 || file[4] !== 2 || file[5] !== 1)
    throw new Error(`${path} is not a little-endian ELF64 file`);
  const shoff = Number(dv.getBigUint64(0x28, true));
  const shentsize = dv.getUint16(0x3a, true);
  const shnum = dv.getUint16(0x3c, true);
  const shstrndx = dv.getUint16(0x3e, true);
  if (shoff === 0 || shoff + shnum * shentsize > file.length || shstrndx >= shnum)
    throw new Error(`${path} has no usable section headers`);
  const sh = (i: number) => {
    const o = shoff + i * shentsize;
    return {
      name: dv.getUint32(o, true),
      addr: Number(dv.getBigUint64(o + 16, true)),
      offset: Number(dv.getBigUint64(o + 24, true)),
      size: Number(dv.getBigUint64(o + 32, true)),
    };
  };
  const strtab = sh(shstrndx);
  for (let i = 0; i < shnum; i++) {
    const s = sh(i);
    let end = strtab.offset + s.name;
    while (end < file.length && file[end] !== 0) end++;
    const n = Buffer.from(file.subarray(strtab.offset + s.name, end)).toString("latin1");
    if (n === name) {
      if (s.offset + s.size > file.length) throw new Error(`${path}: section ${name} lies outside the file`);
      return { addr: s.addr, bytes: file.subarray(s.offset, s.offset + s.size) };
    }
  }
  throw new Error(`${path} has no ${name} section`);
}
