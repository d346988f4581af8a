/**
 * SBI: random hypercalls (the extensions the built-in SBI serves, and any other EID) with
 * hostile arguments (addresses around the end of guest RAM, in the hypervisor's pool,
 * near 2^53 and 2^64) against real machines in each virtualization mode.
 * Invariants: no host exception; a DBCN read/write that succeeds covered only guest RAM;
 * the pool changes only through the hypervisor's own table writes (PoolAudit).
 */
import {
  type Machine,
  SBI_EXT_BASE,
  SBI_EXT_DBCN,
  SBI_EXT_HSM,
  SBI_EXT_IPI,
  SBI_EXT_RFENCE,
  SBI_EXT_SRST,
  SBI_EXT_TIME,
  type SbiRegs,
  type VirtMode,
} from "@visor/hypervisor";
import { gpaFromU64 } from "@visor/memory";
import fc from "fast-check";
import { fuzzMachine, hostileU64, PoolAudit } from "../lib/hv-memory.ts";
import { type FuzzSurface, invariant } from "../surface.ts";

const MODES: VirtMode[] = ["off", "nested", "shadow"];
const EXTENSIONS = [
  SBI_EXT_BASE,
  SBI_EXT_TIME,
  SBI_EXT_IPI,
  SBI_EXT_RFENCE,
  SBI_EXT_HSM,
  SBI_EXT_SRST,
  SBI_EXT_DBCN,
];
/** Legacy extensions are EIDs 0x00..0x0f (SBI v2.0 §5). */
const LEGACY_EIDS = 16;
const MAX_FID = 8;
const ARGS = 6;
const DBCN_WRITE = 0;
const DBCN_READ = 1;

interface Call {
  eid: number;
  fid: number;
  args: bigint[];
}
interface Input {
  mode: number;
  input: number[];
  calls: Call[];
}

const machines: { machine: Machine; audit: PoolAudit | undefined }[] = [];

class Regs implements SbiRegs {
  readonly r: bigint[];
  constructor(c: Call) {
    this.r = [...c.args, BigInt(c.fid), BigInt(c.eid)];
  }
  get(i: number): bigint {
    return this.r[i] ?? 0n;
  }
  set(i: number, v: bigint): void {
    this.r[i] = v;
  }
}

const anyCall: fc.Arbitrary<Call> = fc.record({
  eid: fc.oneof(
    fc.constantFrom(...EXTENSIONS),
    fc.nat(LEGACY_EIDS - 1),
    fc.integer({ min: 0, max: 0xffff_ffff }),
  ),
  fid: fc.oneof(fc.nat(MAX_FID), fc.integer({ min: 0, max: 0xffff_ffff })),
  args: fc.array(fc.oneof(hostileU64, fc.bigInt({ min: 0n, max: 64n })), {
    minLength: ARGS,
    maxLength: ARGS,
  }),
});

const arg = fc.oneof(hostileU64, fc.bigInt({ min: 0n, max: 64n }));
/** DBCN and HSM calls shaped as a guest would make them: a length, an address, a zero high half. */
const shapedCall: fc.Arbitrary<Call> = fc.oneof(
  fc.record({
    eid: fc.constant(SBI_EXT_DBCN),
    fid: fc.constantFrom(DBCN_WRITE, DBCN_READ, 2),
    args: fc.tuple(
      fc.oneof(fc.bigInt({ min: 0n, max: 8192n }), hostileU64),
      hostileU64,
      fc.oneof(fc.constant(0n), hostileU64),
      arg,
      arg,
      arg,
    ),
  }),
  fc.record({
    eid: fc.constant(SBI_EXT_HSM),
    fid: fc.nat(4),
    args: fc.tuple(fc.bigInt({ min: 0n, max: 2n }), hostileU64, arg, arg, arg, arg),
  }),
);
const call = fc.oneof(anyCall, shapedCall);

const surface: FuzzSurface<Input> = {
  name: "sbi",
  description:
    "random SBI calls with hostile addresses in off/nested/shadow machines: no host exception, DBCN only moves guest RAM, the pool untouched",
  arbitrary: fc.record({
    mode: fc.nat(MODES.length - 1),
    input: fc.array(fc.nat(255), { maxLength: 32 }),
    calls: fc.array(call, { minLength: 1, maxLength: 8 }),
  }),
  async setup() {
    machines.length = 0;
    for (const mode of MODES) {
      const { machine } = await fuzzMachine(mode);
      machines.push({ machine, audit: mode === "off" ? undefined : new PoolAudit(machine) });
    }
  },
  check({ mode, input, calls }) {
    const { machine, audit } = machines[mode]!;
    if (input.length > 0) machine.input(Uint8Array.from(input));
    for (const c of calls) {
      const regs = new Regs(c);
      machine.sbi.call(0, regs);
      const error = BigInt.asIntN(64, regs.get(0));
      const value = regs.get(1);
      if (
        c.eid === SBI_EXT_DBCN &&
        (c.fid === DBCN_WRITE || c.fid === DBCN_READ) &&
        error === 0n &&
        value > 0n
      ) {
        const pa = gpaFromU64(c.args[1]!);
        invariant(
          pa !== undefined && machine.memory.contains(pa, Number(value)) && c.args[2] === 0n,
          `DBCN ${c.fid === DBCN_WRITE ? "write" : "read"} of ${value} bytes at 0x${c.args[2]!.toString(16)}:${c.args[1]!.toString(16)} succeeded outside guest RAM`,
        );
      }
      audit?.check(`SBI EID 0x${c.eid.toString(16)} FID ${c.fid}`);
    }
  },
  ciRuns: 300,
};

export default surface;
