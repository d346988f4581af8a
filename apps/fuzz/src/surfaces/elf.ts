/**
 * exec's ELF loader (packages/syscall/src/elf.ts, exec.ts): riscv64 executables with
 * flipped bytes, cut ends and header fields that lie (offsets, counts, sizes, addresses,
 * alignments, PT_INTERP) are loaded as the first process of a fresh kernel.
 *
 * Invariants: the load succeeds, or fails with a one-line error naming the program (what
 * `visor exec` prints before exiting non-zero), never another host exception; and the
 * guest frames used while loading stay within a fixed bound, never in proportion to a
 * size a header claims.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { createKernel, ProgramError, spawnInit } from "@visor/syscall";
import { createNodeHost } from "@visor/syscall/node";
import fc from "fast-check";
import { NullConsole } from "../lib/null-console.ts";
import { type FuzzSurface, invariant } from "../surface.ts";

const GUESTS = path.resolve(
  path.dirname(fileURLToPath(import.meta.url)),
  "../../../../packages/syscall/fixtures/guests",
);
/** Small images of each kind: static ET_EXEC, static-PIE (ET_DYN), dynamic (PT_INTERP). */
const IMAGES = ["storeloop", "spie", "dynhello"].map(
  (f) => new Uint8Array(fs.readFileSync(path.join(GUESTS, f))),
);
const PROGRAM = "/prog";
const GUEST_RAM = 8 * 1024 * 1024;
/**
 * Frames a load may use at most: page tables, the stack with argv/envp/auxv, the pages
 * the loader touches (.bss tail). The unmutated images need 5 to 9.
 */
const MAX_LOAD_FRAMES = 64;
const SHM = "/dev/shm";

// ELF64 layout (System V gABI): header fields and program header fields by offset.
const E_HEADER = 64;
const E_FIELDS: [offset: number, size: 2 | 4 | 8][] = [
  [16, 2], // e_type
  [18, 2], // e_machine
  [24, 8], // e_entry
  [32, 8], // e_phoff
  [48, 4], // e_flags
  [54, 2], // e_phentsize
  [56, 2], // e_phnum
];
const PH_SIZE = 56;
const P_FIELDS: [offset: number, size: 4 | 8][] = [
  [0, 4], // p_type
  [4, 4], // p_flags
  [8, 8], // p_offset
  [16, 8], // p_vaddr
  [32, 8], // p_filesz
  [40, 8], // p_memsz
  [48, 8], // p_align
];
const PT_INTERP = 3;

/** Values a lying field takes: extremes, near-limits, page and user-space boundaries. */
const LIES = fc.oneof(
  fc.constantFrom(
    0n,
    1n,
    BigInt(PT_INTERP),
    0xfffn,
    0x1000n,
    0xffffn,
    0x7fffffffn,
    0xffffffffn,
    0x100000000n,
    (1n << 38n) - 0x1000n,
    1n << 38n,
    (1n << 53n) + 1n,
    0x7fffffffffffffffn,
    0xfffffffffffff000n,
    0xffffffffffffffffn,
  ),
  fc.bigInt({ min: 0n, max: 0xffffffffffffffffn }),
);

interface Input {
  image: number;
  /** Field lies: in the ELF header (ph -1) or in program header `ph`. */
  lies: { ph: number; field: number; value: bigint }[];
  /** Byte flips anywhere in the first pages. */
  flips: [number, number][];
  /** Keep only this many bytes (0: all). */
  cut: number;
}

function put(dv: DataView, at: number, size: 2 | 4 | 8, v: bigint): void {
  if (at + size > dv.byteLength) return;
  if (size === 2) dv.setUint16(at, Number(v & 0xffffn), true);
  else if (size === 4) dv.setUint32(at, Number(v & 0xffffffffn), true);
  else dv.setBigUint64(at, BigInt.asUintN(64, v), true);
}

function build(input: Input): Uint8Array {
  const src = IMAGES[input.image]!;
  const b = src.slice(0, input.cut === 0 ? src.length : Math.min(input.cut, src.length));
  const dv = new DataView(b.buffer);
  const phoff = src.length >= E_HEADER ? Number(new DataView(src.buffer).getBigUint64(32, true)) : 0;
  for (const l of input.lies) {
    if (l.ph < 0) {
      const [at, size] = E_FIELDS[l.field % E_FIELDS.length]!;
      put(dv, at, size, l.value);
    } else {
      const [at, size] = P_FIELDS[l.field % P_FIELDS.length]!;
      put(dv, phoff + l.ph * PH_SIZE + at, size, l.value);
    }
  }
  for (const [i, v] of input.flips) if (i < b.length) b[i] = v;
  return b;
}

let dir: string | undefined;

const surface: FuzzSurface<Input> = {
  name: "elf",
  description:
    "riscv64 executables with flipped bytes, cut ends and lying header fields: loaded, or a one-line error; load-time frames bounded",
  arbitrary: fc.record({
    image: fc.integer({ min: 0, max: IMAGES.length - 1 }),
    lies: fc.array(fc.record({ ph: fc.integer({ min: -1, max: 7 }), field: fc.nat(16), value: LIES }), {
      maxLength: 6,
    }),
    flips: fc.array(fc.tuple(fc.nat(8191), fc.integer({ min: 0, max: 255 })), { maxLength: 8 }),
    cut: fc.oneof({ weight: 4, arbitrary: fc.constant(0) }, fc.nat(8192)),
  }),
  setup() {
    const tmp = fs.existsSync(SHM) ? SHM : os.tmpdir();
    dir = fs.mkdtempSync(path.join(tmp, "visor-fuzz-elf-"));
  },
  check(input) {
    const root = dir!;
    fs.writeFileSync(path.join(root, "prog"), build(input), { mode: 0o755 });
    const host = createNodeHost({ root, console: new NullConsole() });
    const k = createKernel({ host, memoryBytes: GUEST_RAM, warn: () => {} });
    try {
      spawnInit(k, PROGRAM, [PROGRAM], [], "/");
    } catch (e) {
      invariant(e instanceof ProgramError, `the loader threw ${e instanceof Error ? e.stack : String(e)}`);
      invariant(
        e.message.startsWith(`${PROGRAM}: `) && !e.message.includes("\n"),
        `not a one-line error naming the program: ${JSON.stringify(e.message)}`,
      );
      // A bare errno number is a host error that leaked through, not a message for a user.
      invariant(!/: error \d+$/.test(e.message), `an unexplained error: ${JSON.stringify(e.message)}`);
      invariant(e.exitCode !== 0, "a failed load with exit status 0");
    } finally {
      invariant(
        k.frames.peak <= MAX_LOAD_FRAMES,
        `loading used ${k.frames.peak} frames (bound ${MAX_LOAD_FRAMES})`,
      );
      for (const t of [...k.tasks.values()]) k.exitTask(t, 9);
      k.pageCache.trim(0);
      host.close();
    }
  },
  teardown() {
    if (dir !== undefined) fs.rmSync(dir, { recursive: true, force: true });
    dir = undefined;
  },
  ciRuns: 150,
};

export default surface;
