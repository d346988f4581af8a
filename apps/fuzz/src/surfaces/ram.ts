/**
 * Hart memory accesses on RAM of more than 4 GiB: random programs of loads, stores, AMOs,
 * LR/SC and FP loads/stores at addresses either side of the RAM offsets where 32-bit
 * arithmetic breaks (0, 2 GiB, 4 GiB, the end of RAM), run in M-mode from code placed
 * below 2 GiB, above 2 GiB or above 4 GiB, checked against a byte-level model.
 *
 * Invariants: no host exception; every load returns what the model says; RAM around each
 * boundary holds exactly the model's bytes (no write lands elsewhere); an access that is
 * not entirely in RAM, or a misaligned atomic, traps with the model's cause, mepc and
 * mtval, after exactly the operations before it; the dirty log holds exactly the pages
 * written. RAM is allocated once and hardly touched (the OS zero-fills it lazily).
 */
import { Hart } from "@visor/cpu";
import { GuestRam, hpa } from "@visor/memory";
import fc from "fast-check";
import { type FuzzSurface, invariant } from "../surface.ts";

const GiB = 2 ** 30;
const PAGE = 4096;
const BASE = 0x8000_0000;
const SIZE = 4 * GiB + 16 * PAGE;
const END = BASE + SIZE;
/** RAM offsets where int32 arithmetic on offsets breaks, and both ends of RAM. */
const BOUNDARIES = [0, 2 * GiB, 4 * GiB, SIZE];
/** How far from a boundary an access may start. */
const REACH = 40;
/** Where the program goes (RAM offsets): below 2 GiB, above 2 GiB, above 4 GiB. */
const CODE_AT = [PAGE, 2 * GiB + 3 * PAGE, 4 * GiB + 3 * PAGE];
/** Layout of the code page and the results page after it (byte offsets). */
const HANDLER = 0x300;
const POOL = 0x400;
const PROGRESS = 0x100;
const DONE = 0x108;
const CAUSE = 0x110;
const MEPC = 0x118;
const MTVAL = 0x120;
const MAX_OPS = 12;
const BUDGET = 10_000;

// RISC-V encodings: the unprivileged spec (20191213), ch. 24 "RV32/64G Instruction Set
// Listings"; CSR numbers and WFI from the privileged spec (20211203), table 2.5 and §3.3.3.
const OP_LOAD = 0x03;
const OP_LOAD_FP = 0x07;
const OP_IMM = 0x13;
const OP_AUIPC = 0x17;
const OP_STORE = 0x23;
const OP_STORE_FP = 0x27;
const OP_AMO = 0x2f;
const OP_OP = 0x33;
const OP_LUI = 0x37;
const OP_FP = 0x53;
const OP_SYSTEM = 0x73;
const F3_CSRRW = 1;
const F3_CSRRS = 2;
const CSR_MSTATUS = 0x300;
const CSR_MTVEC = 0x305;
const CSR_MEPC = 0x341;
const CSR_MCAUSE = 0x342;
const CSR_MTVAL = 0x343;
const MSTATUS_FS_DIRTY = 0x6000;
const WFI = 0x10500073;
const AMO_ADD = 0x00;
const AMO_SWAP = 0x01;
const AMO_LR = 0x02;
const AMO_SC = 0x03;
const AMO_OR = 0x08;
const FMV_X_D = 0x71;
const FMV_D_X = 0x79;
// Exception causes (privileged spec table 3.6).
const CAUSE_MISALIGNED_LOAD = 4;
const CAUSE_LOAD_ACCESS = 5;
const CAUSE_MISALIGNED_STORE = 6;
const CAUSE_STORE_ACCESS = 7;
// Registers.
const T0 = 5;
const T5 = 30;
const T6 = 31;
const S0 = 8;
const S1 = 9;
const A0 = 10;
const A1 = 11;
const A2 = 12;
const F1 = 1;
const F2 = 2;

const iType = (op: number, f3: number, rd: number, rs1: number, imm: number) =>
  ((imm & 0xfff) << 20) | (rs1 << 15) | (f3 << 12) | (rd << 7) | op;
const sType = (op: number, f3: number, rs1: number, rs2: number, imm: number) =>
  (((imm >> 5) & 0x7f) << 25) | (rs2 << 20) | (rs1 << 15) | (f3 << 12) | ((imm & 0x1f) << 7) | op;
const rType = (op: number, f7: number, f3: number, rd: number, rs1: number, rs2: number) =>
  (f7 << 25) | (rs2 << 20) | (rs1 << 15) | (f3 << 12) | (rd << 7) | op;
/** U-type with `upper` a multiple of 4096 (its bits 31:12 go in the instruction). */
const uType = (op: number, rd: number, upper: number) => (upper & ~0xfff) | (rd << 7) | op;
const amo = (f5: number, f3: number, rd: number, rs1: number, rs2: number) =>
  rType(OP_AMO, f5 << 2, f3, rd, rs1, rs2);
const csr = (f3: number, rd: number, n: number, rs1: number) => iType(OP_SYSTEM, f3, rd, rs1, n);

type Kind = "load" | "store" | "amo" | "lrsc" | "fld" | "fsd";
interface Op {
  kind: Kind;
  /** log2 of the access size. */
  width: number;
  /** Loads: sign-extend; AMOs: 0 add, 1 swap, 2 or. */
  variant: number;
  boundary: number;
  delta: number;
  value: bigint;
}
interface Input {
  code: number;
  ops: Op[];
}

const opArb: fc.Arbitrary<Op> = fc
  .record({
    kind: fc.constantFrom<Kind>("load", "store", "amo", "lrsc", "fld", "fsd"),
    width: fc.integer({ min: 0, max: 3 }),
    variant: fc.integer({ min: 0, max: 2 }),
    boundary: fc.integer({ min: 0, max: BOUNDARIES.length - 1 }),
    delta: fc.integer({ min: -REACH, max: REACH }),
    value: fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }),
  })
  .map((o) => ({
    ...o,
    width:
      o.kind === "fld" || o.kind === "fsd" || o.kind === "lrsc"
        ? 3
        : o.kind === "amo"
          ? 2 + (o.width & 1)
          : o.width,
  }));

let ram: GuestRam;
let hart: Hart;
const noBus = {
  read: () => -1,
  write: () => false,
  read64: () => undefined,
  write64: () => false,
};

const addrOf = (o: Op) => BASE + BOUNDARIES[o.boundary]! + o.delta;
const inRam = (pa: number) => pa >= BASE && pa < END;
const mask = (bytes: number) => (1n << BigInt(8 * bytes)) - 1n;
const signed = (v: bigint, bytes: number) => BigInt.asIntN(8 * bytes, v);
const u64 = (v: bigint) => BigInt.asUintN(64, v);

/** The program for `ops`; returns its words and, per op, the index of its memory instruction. */
function assemble(ops: Op[]): { words: number[]; at: number[] } {
  const w: number[] = [
    uType(OP_AUIPC, S1, 0), // s1 = the code page (the program starts it)
    uType(OP_LUI, T0, PAGE),
    rType(OP_OP, 0, 0, S0, S1, T0), // s0 = the results page, right after
    iType(OP_IMM, 0, T0, S1, HANDLER),
    csr(F3_CSRRW, 0, CSR_MTVEC, T0),
    uType(OP_LUI, T0, MSTATUS_FS_DIRTY),
    csr(F3_CSRRS, 0, CSR_MSTATUS, T0),
  ];
  const at: number[] = [];
  ops.forEach((o, i) => {
    w.push(iType(OP_LOAD, 3, A0, S1, POOL + 16 * i)); // ld a0: the address
    w.push(iType(OP_LOAD, 3, A1, S1, POOL + 16 * i + 8)); // ld a1: the value
    switch (o.kind) {
      case "load":
        at.push(w.length);
        w.push(iType(OP_LOAD, o.variant === 0 || o.width === 3 ? o.width : o.width | 4, A2, A0, 0));
        break;
      case "store":
        at.push(w.length);
        w.push(sType(OP_STORE, o.width, A0, A1, 0));
        w.push(iType(OP_IMM, 0, A2, 0, 0));
        break;
      case "amo":
        at.push(w.length);
        w.push(amo([AMO_ADD, AMO_SWAP, AMO_OR][o.variant]!, o.width, A2, A0, A1));
        break;
      case "lrsc":
        at.push(w.length);
        w.push(amo(AMO_LR, 3, A2, A0, 0));
        w.push(amo(AMO_SC, 3, T5, A0, A1));
        w.push(rType(OP_OP, 0, 0, A2, A2, T5)); // a2 += sc's result (0 on success)
        break;
      case "fld":
        at.push(w.length);
        w.push(iType(OP_LOAD_FP, 3, F1, A0, 0));
        w.push(rType(OP_FP, FMV_X_D, 0, A2, F1, 0));
        break;
      case "fsd":
        w.push(rType(OP_FP, FMV_D_X, 0, F2, A1, 0));
        at.push(w.length);
        w.push(sType(OP_STORE_FP, 3, A0, F2, 0));
        w.push(iType(OP_IMM, 0, A2, 0, 0));
        break;
    }
    w.push(sType(OP_STORE, 3, S0, A2, 8 * i)); // the result
    w.push(iType(OP_IMM, 0, T6, 0, i + 1));
    w.push(sType(OP_STORE, 3, S0, T6, PROGRESS));
  });
  w.push(iType(OP_IMM, 0, T6, 0, -1));
  w.push(sType(OP_STORE, 3, S0, T6, DONE));
  w.push(WFI);
  invariant(4 * w.length <= HANDLER, "program too long for its page");
  return { words: w, at };
}

const HANDLER_WORDS = [
  csr(F3_CSRRS, T0, CSR_MCAUSE, 0),
  sType(OP_STORE, 3, S0, T0, CAUSE),
  csr(F3_CSRRS, T0, CSR_MEPC, 0),
  sType(OP_STORE, 3, S0, T0, MEPC),
  csr(F3_CSRRS, T0, CSR_MTVAL, 0),
  sType(OP_STORE, 3, S0, T0, MTVAL),
  WFI,
];

/** What the hart should do: the model's RAM bytes, results, dirty pages and trap. */
function model(ops: Op[], resultsPa: number) {
  const mem = new Map<number, number>();
  const results: bigint[] = [];
  const dirty = new Set<number>([Math.floor((resultsPa - BASE) / PAGE)]);
  const read = (pa: number, n: number) => {
    let v = 0n;
    for (let i = n - 1; i >= 0; i--) v = (v << 8n) | BigInt(mem.get(pa + i) ?? 0);
    return v;
  };
  const write = (pa: number, n: number, v: bigint) => {
    for (let i = 0; i < n; i++) {
      mem.set(pa + i, Number((v >> BigInt(8 * i)) & 0xffn));
      dirty.add(Math.floor((pa + i - BASE) / PAGE));
    }
  };
  /** First byte of [pa, pa+n) outside RAM, or undefined. */
  const outside = (pa: number, n: number) => {
    for (let i = 0; i < n; i++) if (!inRam(pa + i)) return pa + i;
    return undefined;
  };
  for (let i = 0; i < ops.length; i++) {
    const o = ops[i]!;
    const pa = addrOf(o);
    const n = 1 << o.width;
    const atomic = o.kind === "amo" || o.kind === "lrsc";
    if (atomic && pa % n !== 0) {
      const cause = o.kind === "lrsc" ? CAUSE_MISALIGNED_LOAD : CAUSE_MISALIGNED_STORE;
      return { mem, results, dirty, fault: { op: i, cause, tval: pa } };
    }
    const bad = outside(pa, n);
    const storing = o.kind === "store" || o.kind === "fsd";
    if (bad !== undefined) {
      const cause = storing || o.kind === "amo" ? CAUSE_STORE_ACCESS : CAUSE_LOAD_ACCESS;
      // A split store performs the bytes before the first one outside RAM (atomics are aligned: never split).
      if (storing) write(pa, bad - pa, o.value & mask(bad - pa));
      return { mem, results, dirty, fault: { op: i, cause, tval: atomic ? pa : bad } };
    }
    const old = read(pa, n);
    switch (o.kind) {
      case "load":
        results.push(u64(o.variant === 0 || o.width === 3 ? signed(old, n) : old));
        break;
      case "store":
      case "fsd":
        write(pa, n, o.value & mask(n));
        results.push(0n);
        break;
      case "amo": {
        const v = o.value & mask(n);
        write(pa, n, [old + v, v, old | v][o.variant]! & mask(n));
        results.push(u64(signed(old, n)));
        break;
      }
      case "lrsc":
        write(pa, n, o.value);
        results.push(old);
        break;
      case "fld":
        results.push(old);
        break;
    }
  }
  return { mem, results, dirty, fault: undefined };
}

/** The RAM pages around every boundary (those the ops can touch). */
function windowPages(): number[] {
  const pages: number[] = [];
  for (const b of BOUNDARIES) {
    for (const p of [b - PAGE, b]) if (p >= 0 && p < SIZE) pages.push(p);
  }
  return pages;
}

const surface: FuzzSurface<Input> = {
  name: "ram",
  description:
    "hart loads/stores/AMOs/LR-SC/FP at RAM offsets either side of 0, 2 GiB, 4 GiB and the end of a 4 GiB+ RAM, from code below 2, above 2 and above 4 GiB: results, RAM bytes, traps (cause, mepc, mtval) and the dirty log match a byte model",
  arbitrary: fc.record({
    code: fc.integer({ min: 0, max: CODE_AT.length - 1 }),
    ops: fc.array(opArb, { minLength: 1, maxLength: MAX_OPS }),
  }),
  setup() {
    ram = new GuestRam(BASE, SIZE);
    hart = new Hart({ ram, bus: noBus });
  },
  teardown() {
    ram = undefined as unknown as GuestRam;
    hart = undefined as unknown as Hart;
  },
  check({ code, ops }) {
    const codePa = BASE + CODE_AT[code]!;
    const resultsPa = codePa + PAGE;
    const pages = windowPages();
    for (const p of pages) ram.u8.fill(0, p, p + PAGE);
    const { words, at } = assemble(ops);
    const page = new Uint8Array(PAGE);
    const dv = new DataView(page.buffer);
    words.forEach((w, i) => {
      dv.setInt32(4 * i, w, true);
    });
    HANDLER_WORDS.forEach((w, i) => {
      dv.setInt32(HANDLER + 4 * i, w, true);
    });
    ops.forEach((o, i) => {
      dv.setBigUint64(POOL + 16 * i, BigInt(addrOf(o)), true);
      dv.setBigUint64(POOL + 16 * i + 8, o.value, true);
    });
    ram.write(hpa(codePa), page);
    ram.viewMut(hpa(resultsPa), PAGE).fill(0);
    ram.enableDirtyLog();
    hart.reset(codePa);
    const stop = hart.run(BUDGET);
    invariant(stop.kind === "wfi", `the program did not finish (stop ${stop.kind})`);

    const want = model(ops, resultsPa);
    const got = (off: number) => ram.read64(hpa(resultsPa + off));
    const done = want.fault === undefined ? ops.length : want.fault.op;
    invariant(
      got(PROGRESS) === BigInt(done),
      `${got(PROGRESS)} operations completed, the model says ${done}`,
    );
    if (want.fault === undefined) {
      invariant(got(DONE) === 2n ** 64n - 1n, "the program did not reach its end");
    } else {
      const f = want.fault;
      invariant(got(DONE) === 0n, "the program went on past a trap");
      invariant(got(CAUSE) === BigInt(f.cause), `op ${f.op}: cause ${got(CAUSE)}, the model says ${f.cause}`);
      const mepc = BigInt(codePa + 4 * at[f.op]!);
      invariant(
        got(MEPC) === mepc,
        `op ${f.op}: mepc 0x${got(MEPC).toString(16)}, expected 0x${mepc.toString(16)}`,
      );
      invariant(
        got(MTVAL) === BigInt(f.tval),
        `op ${f.op}: mtval 0x${got(MTVAL).toString(16)}, expected 0x${f.tval.toString(16)}`,
      );
    }
    want.results.forEach((r, i) => {
      invariant(
        got(8 * i) === r,
        `op ${i} (${ops[i]!.kind}) returned 0x${got(8 * i).toString(16)}, the model says 0x${r.toString(16)}`,
      );
    });
    for (const p of pages) {
      const bytes = ram.u8.subarray(p, p + PAGE);
      for (let i = 0; i < PAGE; i++) {
        const expect = want.mem.get(BASE + p + i) ?? 0;
        invariant(
          bytes[i] === expect,
          `RAM offset 0x${(p + i).toString(16)} holds ${bytes[i]}, the model says ${expect}`,
        );
      }
    }
    const dirty = ram.fetchAndClearDirty();
    const expected = [...want.dirty].sort((a, b) => a - b);
    invariant(
      dirty.length === expected.length && dirty.every((p, i) => p === expected[i]),
      `dirty pages [${dirty.map((p) => p.toString(16))}], the model says [${expected.map((p) => p.toString(16))}]`,
    );
    ram.disableDirtyLog();
  },
  ciRuns: 150,
};

export default surface;
