/// <reference types="node" />
/** ELF validation: every way a file can fail to be a riscv64 executable has its own message. */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { ET_EXEC, ExecFormatError, parseElf } from "../src/elf.ts";
import { createKernel, ProgramError, spawnInit } from "../src/index.ts";
import { createNodeHost } from "../src/node/index.ts";
import { BUSYBOX, FIXTURES } from "./root.ts";

const reader = (b: Uint8Array) => (pos: number, len: number) => b.subarray(pos, pos + len);

function header(mutate: (dv: DataView, b: Uint8Array) => void): Uint8Array {
  const b = new Uint8Array(fs.readFileSync(BUSYBOX).subarray(0, 4096));
  mutate(new DataView(b.buffer), b);
  return b;
}

function message(b: Uint8Array): string {
  try {
    parseElf(reader(b));
  } catch (e) {
    expect(e).toBeInstanceOf(ExecFormatError);
    return (e as Error).message;
  }
  return "accepted";
}

describe("ELF loader checks", () => {
  it("accepts the static busybox and the guest programs", () => {
    const info = parseElf(reader(new Uint8Array(fs.readFileSync(BUSYBOX))));
    expect(info.type).toBe(ET_EXEC);
    expect(info.entry).toBe(0x105c8);
    expect(info.interp).toBeUndefined();
    expect(info.phdrs.filter((p) => p.type === 1)).toHaveLength(2);
    for (const g of ["iouring", "sysprobe"]) {
      expect(parseElf(reader(new Uint8Array(fs.readFileSync(path.join(FIXTURES, "guests", g))))).type).toBe(
        ET_EXEC,
      );
    }
  });

  it("names what is wrong", () => {
    expect(message(new TextEncoder().encode("#!/bin/sh\n"))).toBe("not an ELF executable");
    expect(message(header((_dv, b) => (b[4] = 1)))).toBe("32-bit ELF, not riscv64");
    expect(message(header((_dv, b) => (b[5] = 2)))).toBe("big-endian ELF, not riscv64");
    expect(message(header((dv) => dv.setUint16(18, 183, true)))).toBe("ELF for AArch64, not riscv64");
    expect(message(header((dv) => dv.setUint16(18, 9999, true)))).toBe("ELF for machine 9999, not riscv64");
    expect(message(header((dv) => dv.setUint16(16, 1, true)))).toBe("ELF type 1 is not an executable");
    expect(message(header((dv) => dv.setUint32(48, 0x8, true)))).toBe("RV64E (embedded) ELF, not supported");
    expect(message(header((dv) => dv.setUint16(54, 32, true)))).toBe("bad ELF program headers");
    expect(message(header((_dv, b) => b.fill(0, 64)))).toBe("ELF without loadable segments");
    expect(message(new Uint8Array(fs.readFileSync(BUSYBOX)).subarray(0, 40))).toBe("truncated ELF header");
  });
});

describe("ELF loading with lying headers (found by the elf fuzz surface)", () => {
  it("a position-independent image whose segment lands past user space is refused in one line", () => {
    const b = new Uint8Array(fs.readFileSync(path.join(FIXTURES, "guests", "dynhello")));
    const dv = new DataView(b.buffer);
    const phoff = Number(dv.getBigUint64(32, true));
    const PT_LOAD = 1;
    let text = 0;
    while (dv.getUint32(phoff + text * 56, true) !== PT_LOAD) text++;
    // p_vaddr just below 2^38 and p_filesz 1: congruent, inside user space unbiased.
    dv.setBigUint64(phoff + text * 56 + 16, (1n << 38n) - 4096n, true);
    dv.setBigUint64(phoff + text * 56 + 32, 1n, true);
    const root = fs.mkdtempSync(path.join(os.tmpdir(), "visor-elf-"));
    try {
      fs.writeFileSync(path.join(root, "prog"), b, { mode: 0o755 });
      const host = createNodeHost({ root });
      const k = createKernel({ host, memoryBytes: 8 * 1024 * 1024, warn: () => {} });
      let err: unknown;
      try {
        spawnInit(k, "/prog", ["/prog"], [], "/");
      } catch (e) {
        err = e;
      }
      host.close();
      expect(err).toBeInstanceOf(ProgramError);
      expect((err as Error).message).toBe(
        "/prog: ELF segments overlap the stack or leave the user address space",
      );
    } finally {
      fs.rmSync(root, { recursive: true, force: true });
    }
  });
});
