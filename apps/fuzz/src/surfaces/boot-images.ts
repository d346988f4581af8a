/**
 * The hypervisor's loaders: a Linux Image (`--kernel`) and a firmware or bare-metal ELF
 * (`--bios`), taken from a real guest of each kind and then corrupted (bytes flipped, the
 * end cut off, header fields set to lying values). `Machine.create` must build the machine
 * or refuse the file with a one-line error of its own, never fail inside the host (a
 * DataView out of range, an allocation sized by a lying field, a stack overflow).
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { Machine } from "@visor/hypervisor";
import fc from "fast-check";
import { type FuzzSurface, invariant } from "../surface.ts";

const fixtures = fileURLToPath(
  new URL("../../../../packages/hypervisor/test/fixtures/hostile/bin/", import.meta.url),
);
/** A Linux Image (the hostile suite's control guest) and a bare-metal ELF speaking HTIF. */
const image = new Uint8Array(readFileSync(join(fixtures, "control.bin")));
const elf = new Uint8Array(readFileSync(join(fixtures, "htif-write.elf")));

/** Where the header fields are: the Image's 64-byte header, the ELF's header and program headers. */
const IMAGE_FIELDS = [8, 16, 24, 32, 48, 56]; // text_offset, image_size, flags, version, magic, magic2
const ELF_FIELDS = [24, 32, 40, 52, 54, 56, 58, 60, 62, 64, 72, 80, 88, 96, 104, 112]; // e_entry..e_shstrndx, phdr 0
/** Values a lying field takes: zero, all ones, just past 2^53 and 2^32, and sizes far beyond the file. */
const LIES = [
  0n,
  2n ** 64n - 1n,
  2n ** 53n + 1n,
  2n ** 32n,
  2n ** 31n,
  0x7fff_ffffn,
  0x8000_0000n,
  1n << 40n,
];

/** Error messages of the JavaScript engine itself: the host failed, not the loader. */
const HOST_FAILURE =
  /outside the bounds|Invalid typed array|Array buffer allocation|Maximum call stack|Cannot read prop|is not a function|undefined|Invalid array length/;

interface Input {
  kind: "kernel" | "bios";
  edits: [number, number][];
  lies: [number, number][];
  cut: number;
}

function build({ kind, edits, lies, cut }: Input): Uint8Array {
  const base = kind === "kernel" ? image : elf;
  const b = base.slice(0, cut === 0 ? base.length : Math.min(base.length, cut));
  const dv = new DataView(b.buffer);
  const fields = kind === "kernel" ? IMAGE_FIELDS : ELF_FIELDS;
  for (const [f, v] of lies) {
    const at = fields[f % fields.length]!;
    if (at + 8 <= b.length) dv.setBigUint64(at, LIES[v % LIES.length]!, true);
  }
  for (const [i, v] of edits) if (i < b.length) b[i] = v;
  return b;
}

const surface: FuzzSurface<Input> = {
  name: "boot-images",
  description:
    "Linux Images (--kernel) and firmware ELFs (--bios) with flipped bytes, cut ends and lying header fields: a machine, or a one-line error of the loader's own",
  arbitrary: fc.record({
    kind: fc.constantFrom("kernel" as const, "bios" as const),
    // Most edits land in the headers, where the loaders look.
    edits: fc.array(fc.tuple(fc.oneof(fc.nat(255), fc.nat(elf.length - 1)), fc.nat(255)), { maxLength: 8 }),
    lies: fc.array(fc.tuple(fc.nat(63), fc.nat(63)), { maxLength: 3 }),
    cut: fc.oneof(fc.constant(0), fc.nat(4096)),
  }),
  async check(input) {
    const bytes = build(input);
    const opts =
      input.kind === "kernel"
        ? { kernel: bytes, append: "", rng: false as const }
        : { bios: bytes, rng: false as const };
    try {
      await Machine.create({ memory: 32 << 20, console: { write() {} }, ...opts });
    } catch (e) {
      invariant(e instanceof Error, `threw a non-Error: ${String(e)}`);
      invariant(!(e instanceof TypeError), `a host TypeError: ${e.message}`);
      invariant(!HOST_FAILURE.test(e.message), `the host failed: ${e.message}`);
      invariant(!e.message.includes("\n"), `not one line: ${JSON.stringify(e.message)}`);
    }
  },
  ciRuns: 200,
};

export default surface;
