/**
 * HTIF: random tohost commands (exit, putchar, syscalls, anything) and syscall blocks with
 * hostile buffer addresses and lengths, served by Htif over guest RAM that is followed by
 * a hypervisor region holding a canary. Invariants: no host exception; the canary never
 * changes and never reaches the output; an Htif whose tohost lies outside guest RAM is
 * refused at construction.
 */
import { Htif } from "@visor/hypervisor";
import { GuestMemory, GuestRam, gpa, gpaAdd, gpaFromU64, HvRegion } from "@visor/memory";
import fc from "fast-check";
import { hostileU64 } from "../lib/hv-memory.ts";
import { type FuzzSurface, invariant } from "../surface.ts";

const BASE = 0x8000_0000;
const GUEST = 1 << 20;
const POOL = 64 << 10;
const CANARY = 0xee;
const FILL = 0x11;
const TOHOST = gpa(BASE);
const FROMHOST = gpa(BASE + 64);
/** Where structured inputs put their syscall block (in guest RAM). */
const BLOCK = BASE + 0x1000;
const BLOCK_DWORDS = 8;
const SYS_WRITE = 64n;
const SYS_EXIT = 93n;
const DEV_SHIFT = 56n;
const CMD_SHIFT = 48n;
const PAYLOAD_MASK = (1n << 48n) - 1n;
const PUTCHAR = (1n << DEV_SHIFT) | (1n << CMD_SHIFT);

const host = new GuestRam(BASE, GUEST + POOL);
const memory = new GuestMemory(host, GUEST);
const pool = new HvRegion(host, memory, BASE + GUEST, BASE + GUEST + POOL);

interface Input {
  /** The command word; undefined: a syscall pointing at `block`. */
  command: bigint | undefined;
  block: bigint;
  words: bigint[];
  tohost: bigint;
}

const small = fc.bigInt({ min: 0n, max: 128n });
const surface: FuzzSurface<Input> = {
  name: "htif",
  description:
    "random HTIF commands and syscall blocks with hostile addresses: no host exception, the hypervisor's memory neither read nor written",
  arbitrary: fc.record({
    command: fc.option(
      fc.oneof(
        hostileU64,
        fc.bigInt({ min: 0n, max: 1n << 50n }).map((p) => PUTCHAR | p),
      ),
    ),
    block: fc.oneof(fc.constant(BigInt(BLOCK)), hostileU64),
    words: fc.tuple(
      fc.oneof(fc.constant(SYS_WRITE), fc.constant(SYS_EXIT), small),
      fc.oneof(fc.constantFrom(1n, 2n), small),
      fc.oneof(hostileU64, fc.constant(BigInt(BLOCK))),
      fc.oneof(small, hostileU64),
    ),
    tohost: fc.oneof(fc.constant(BigInt(BASE)), hostileU64),
  }),
  setup() {
    host.u8.fill(FILL);
    host.u8.fill(CANARY, GUEST);
  },
  check({ command, block, words, tohost }) {
    // Construction: tohost must be guest RAM.
    const t = gpaFromU64(tohost);
    try {
      new Htif(memory, t ?? gpa(Number.MAX_SAFE_INTEGER), undefined, () => {});
      invariant(t !== undefined && memory.contains(t, 8), `Htif accepted tohost 0x${tohost.toString(16)}`);
    } catch (e) {
      invariant(e instanceof Error && /outside RAM/.test(e.message), `unexpected ${String(e)}`);
    }

    const out: number[] = [];
    const htif = new Htif(memory, TOHOST, FROMHOST, (b) => out.push(...b));
    const b = gpaFromU64(block);
    if (b !== undefined && memory.contains(b, 8 * BLOCK_DWORDS)) {
      for (let i = 0; i < words.length; i++) memory.write64(gpaAdd(b, 8 * i), words[i]!);
    }
    const word = command ?? block & PAYLOAD_MASK & ~1n;
    memory.write64(TOHOST, word === 0n ? 2n : word);
    htif.poll();
    const putchar = word >> DEV_SHIFT === 1n && ((word >> CMD_SHIFT) & 0xffn) === 1n;
    if (!putchar) invariant(!out.includes(CANARY), "the output holds bytes of the hypervisor's region");
    const canary = pool.copy(pool.start, pool.size);
    invariant(
      canary.every((x) => x === CANARY),
      "the hypervisor's region changed",
    );
    // Put back what the command changed in guest RAM, for the next input.
    host.u8.fill(FILL, 0, GUEST);
  },
  ciRuns: 1000,
};

export default surface;
