/**
 * Hart exits: a hostile guest's instruction stream (random words, compressed and not,
 * and words built from real opcodes) run in M, S or U mode, on a hart with or without the
 * H extension (in VS/VU-mode with the host as hypervisor). Every `run` must return a
 * well-formed exit (a known kind; a trap exit's kind agrees with its cause and the host
 * can resume after it), never throw; the hart must hand the bus only addresses outside
 * RAM.
 */
import { csr as C, EXIT_HS, EXIT_M, Hart, type HartExit, isTrapExit, type PhysBus } from "@visor/cpu";
import { GuestRam, hpa } from "@visor/memory";
import fc from "fast-check";
import { type FuzzSurface, invariant } from "../surface.ts";

const BASE = 0x8000_0000;
const RAM_SIZE = 64 * 1024;
const MAX_EXITS = 64;
const BUDGET = 256;

/** Major opcodes worth hitting more often than chance does (unprivileged spec table 24.1). */
const OPCODES = [
  0x03, 0x07, 0x0f, 0x13, 0x17, 0x1b, 0x23, 0x27, 0x2f, 0x33, 0x37, 0x3b, 0x43, 0x53, 0x63, 0x67, 0x6f, 0x73,
];

const KIND_OF_CAUSE: Record<number, HartExit["kind"]> = {
  [C.CAUSE_MISALIGNED_FETCH]: "misaligned",
  [C.CAUSE_FETCH_ACCESS]: "access-fault",
  [C.CAUSE_ILLEGAL_INSTRUCTION]: "illegal-instruction",
  [C.CAUSE_BREAKPOINT]: "breakpoint",
  [C.CAUSE_MISALIGNED_LOAD]: "misaligned",
  [C.CAUSE_LOAD_ACCESS]: "access-fault",
  [C.CAUSE_MISALIGNED_STORE]: "misaligned",
  [C.CAUSE_STORE_ACCESS]: "access-fault",
  [C.CAUSE_USER_ECALL]: "ecall",
  [C.CAUSE_SUPERVISOR_ECALL]: "ecall",
  [C.CAUSE_VIRTUAL_SUPERVISOR_ECALL]: "ecall",
  [C.CAUSE_MACHINE_ECALL]: "ecall",
  [C.CAUSE_FETCH_PAGE_FAULT]: "page-fault",
  [C.CAUSE_LOAD_PAGE_FAULT]: "page-fault",
  [C.CAUSE_STORE_PAGE_FAULT]: "page-fault",
  [C.CAUSE_FETCH_GUEST_PAGE_FAULT]: "guest-page-fault",
  [C.CAUSE_LOAD_GUEST_PAGE_FAULT]: "guest-page-fault",
  [C.CAUSE_VIRTUAL_INSTRUCTION]: "virtual-instruction",
  [C.CAUSE_STORE_GUEST_PAGE_FAULT]: "guest-page-fault",
};

interface Input {
  words: number[];
  mode: "M" | "S" | "U" | "VS" | "VU";
  regs: number[];
}

const word = fc.oneof(
  fc.integer({ min: 0, max: 0xffffffff }),
  fc
    .tuple(fc.constantFrom(...OPCODES), fc.integer({ min: 0, max: 0x1ffffff }))
    .map(([op, rest]) => ((rest << 7) | op) >>> 0),
  fc.integer({ min: 0, max: 0xffff }).map((h) => ((h << 16) | (h & 0xfffc) | 1) >>> 0), // compressed pairs
);

const surface: FuzzSurface<Input> = {
  name: "hart-exits",
  description:
    "random instruction streams in M/S/U/VS/VU: run returns well-formed exits, never throws, bus sees no RAM address",
  arbitrary: fc.record({
    words: fc.array(word, { minLength: 1, maxLength: 64 }),
    mode: fc.constantFrom("M", "S", "U", "VS", "VU"),
    regs: fc.array(
      fc.oneof(
        fc.integer({ min: BASE, max: BASE + RAM_SIZE - 1 }),
        fc.integer({ min: 0, max: 0xffffffff }),
        fc.constantFrom(0, 1, -1, 0x1000_0000, 0x4000_0000),
      ),
      { minLength: 31, maxLength: 31 },
    ),
  }),
  check({ words, mode, regs }) {
    const ram = new GuestRam(BASE, RAM_SIZE);
    for (let i = 0; i < words.length; i++) ram.write32(hpa(BASE + 4 * i), words[i]!);
    const inRam = (pa: number) => pa >= BASE && pa < BASE + RAM_SIZE;
    const bus: PhysBus = {
      read(pa) {
        invariant(!inRam(pa), `bus read of RAM address 0x${pa.toString(16)}`);
        return pa >= 0x1000_0000 && pa < 0x1000_1000 ? 0 : -1;
      },
      write(pa) {
        invariant(!inRam(pa), `bus write of RAM address 0x${pa.toString(16)}`);
        return pa >= 0x1000_0000 && pa < 0x1000_1000;
      },
      read64(pa) {
        invariant(!inRam(pa), `bus read64 of RAM address 0x${pa.toString(16)}`);
        return undefined;
      },
      write64(pa) {
        invariant(!inRam(pa), `bus write64 of RAM address 0x${pa.toString(16)}`);
        return false;
      },
    };
    const virt = mode === "VS" || mode === "VU";
    const hart = new Hart({ ram, bus, hypervisor: virt });
    const x: Record<number, bigint> = {};
    regs.forEach((v, i) => {
      x[i + 1] = BigInt.asUintN(64, BigInt(v));
    });
    hart.boot({
      pc: BigInt(BASE),
      priv: mode === "M" ? C.PRV_M : mode === "S" || mode === "VS" ? C.PRV_S : C.PRV_U,
      virt,
      x,
      // FPU on, so FP instructions run rather than trap.
      csrs: [[C.CSR_MSTATUS, BigInt(C.MSTATUS_FS)]],
      exitMask: virt ? EXIT_M | EXIT_HS : EXIT_M,
    });
    for (let i = 0; i < MAX_EXITS; i++) {
      const e = hart.run(BUDGET);
      if (!isTrapExit(e)) {
        invariant(
          e.kind === "budget" || e.kind === "wfi" || e.kind === "stop",
          `unknown exit ${String(e.kind)}`,
        );
        if (e.kind !== "budget") return; // waiting for an interrupt nobody will send
        continue;
      }
      invariant(
        typeof e.cause === "number" && typeof e.tval === "bigint",
        "a trap exit without cause or tval",
      );
      if (e.kind !== "interrupt") {
        invariant(KIND_OF_CAUSE[e.cause] === e.kind, `cause ${e.cause} came out as ${e.kind}`);
      }
      // Resume after the trapping instruction, as a host emulating it would.
      const pc = hart.pc;
      const off = Number(pc - BigInt(BASE));
      if (off < 0 || off >= RAM_SIZE - 4) return;
      hart.advancePc((ram.read16(hpa(Number(pc))) & 3) === 3 ? 4 : 2);
    }
  },
  ciRuns: 1000,
};

export default surface;
