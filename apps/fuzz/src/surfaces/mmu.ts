/**
 * MMUs under hostile guest page tables: random guest Sv39/Sv48/Sv57 tables (PTEs pointing
 * at other tables, guest RAM, the hypervisor's pool, MMIO, holes, 2^56, or random bits),
 * then random page-fault exits, satp switches and sfence.vmas (all, one address, one
 * ASID, an address and an ASID) through the shadow MMU
 * (--virt shadow), or random two-stage translations through the hart's G-stage walk
 * (--virt nested).
 *
 * Invariants: no host exception (a GuestError, the VMM's verdict on the guest, is
 * allowed); the pool changes only through the hypervisor's own HvRegion writes
 * (PoolAudit: a guest PTE A/D update, a DMA, a walker write into the pool all show);
 * every shadow table pointer stays in the pool and every shadow leaf maps guest RAM; a
 * successful nested translation lands in guest RAM.
 */
import { csr as C, type PageFaultExit, trapExit } from "@visor/cpu";
import { GuestError, type Machine, type Vcpu } from "@visor/hypervisor";
import {
  ACCESS_EXEC,
  ACCESS_READ,
  ACCESS_WRITE,
  type Access,
  gpa,
  type Hpa,
  hpa,
  PTE_R,
  PTE_V,
  PTE_X,
  SATP_MODE_BARE,
  SATP_MODE_SV39,
  SATP_MODE_SV48,
  SATP_MODE_SV57,
} from "@visor/memory";
import fc from "fast-check";
import { fuzzMachine, POOL_END, PoolAudit, RAM_BASE, RAM_END } from "../lib/hv-memory.ts";
import { type FuzzSurface, invariant } from "../surface.ts";

const PAGE = 4096;
const PTE_BYTES = 8;
const ENTRIES = 512;
/** The guest's page-table pages: TABLES pages from TABLE_BASE (guest RAM, away from the loaded guest). */
const TABLES = 8;
const TABLE_BASE = RAM_BASE + (4 << 20);
/** Indices the PTEs and the VAs use, few enough that walks meet the PTEs written. */
const INDICES = [0, 1, 2, 255, 256, 511];
const LEVELS = 5;
const VA_BITS = 57;
const FLAG_BITS = 0x3ff;
/** Leaf targets: guest RAM, the pool, MMIO devices (QEMU virt map), holes, the top of the PA space. */
const TARGETS = [
  RAM_BASE,
  RAM_END - PAGE,
  RAM_END,
  POOL_END - PAGE,
  POOL_END,
  0x0200_0000,
  0x0c00_0000,
  0x1000_0000,
  0x1000_1000,
  0x4000_0000,
  0,
];
const PA_TOP = 2 ** 56 - PAGE;
/** csrrw x0, satp, x5 and sfence.vma x5/x0, x6/x0 (the guest instructions the shadow MMU emulates). */
const X5 = 5;
const X6 = 6;
const CSRRW_SATP_X5 = (C.CSR_SATP << 20) | (X5 << 15) | (1 << 12) | 0x73;
const SFENCE_VMA = (0x09 << 25) | 0x73;
/** Load/store instructions an MMIO exit decodes: ld a0,0(a0); sd a1,0(a0); lw a0,0(a0); or nothing. */
const INSNS = [0x00053503, 0x00b53023, 0x00052503, 0];

type PteValue =
  | { k: "next"; table: number }
  | { k: "leaf"; target: number; flags: number }
  | { k: "raw"; v: bigint };
interface Pte {
  table: number;
  index: number;
  value: PteValue;
}
/**
 * A chain of table pointers from the root (table 0) down to a leaf at `leafLevel` for the
 * VA with VPNs `va`, through tables path[level]: so that walks reach the hostile leaves.
 */
interface Chain {
  va: number[];
  leafLevel: number;
  path: number[];
  leaf: PteValue;
}
type Op =
  | { k: "fault"; va: number | number[]; off: number; access: Access; user: boolean; insn: number }
  | { k: "satp"; mode: number; root: number; asid: number }
  | { k: "sfence"; va: number[] | null; asid: number | null };
interface Input {
  shadow: boolean;
  mode: number;
  chains: Chain[];
  ptes: Pte[];
  ops: Op[];
}

const tablePage = (t: number): number => TABLE_BASE + t * PAGE;
const idx = fc.constantFrom(...INDICES);
const vaIdx = fc.array(idx, { minLength: LEVELS, maxLength: LEVELS });

const leafTarget = fc.oneof(
  fc.constantFrom(...TARGETS),
  fc.integer({ min: RAM_BASE / PAGE, max: POOL_END / PAGE }).map((p) => p * PAGE),
  fc.constant(PA_TOP),
);
const pteValue: fc.Arbitrary<PteValue> = fc.oneof(
  fc.record({ k: fc.constant("next" as const), table: fc.nat(TABLES - 1) }),
  fc.record({
    k: fc.constant("leaf" as const),
    target: leafTarget,
    flags: fc.nat(FLAG_BITS).map((f) => f | PTE_V),
  }),
  fc.record({ k: fc.constant("raw" as const), v: fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }) }),
);

const MODES = [SATP_MODE_SV39, SATP_MODE_SV48, SATP_MODE_SV57];
const MAX_CHAINS = 8;
/** Leaf flags: V R W X U A D in any mix (reserved and RSW bits too), or the usual kernel/user ones. */
const LEAF_FLAGS = fc.oneof(
  fc.nat(FLAG_BITS).map((f) => f | PTE_V),
  fc.constantFrom(0xcf, 0xdf, 0xc3, 0xcb, 0x5b),
);
const chain: fc.Arbitrary<Chain> = fc.record({
  va: vaIdx,
  leafLevel: fc.nat(2),
  path: fc.array(fc.integer({ min: 1, max: TABLES - 1 }), { minLength: LEVELS, maxLength: LEVELS }),
  leaf: fc.oneof(
    {
      weight: 4,
      arbitrary: fc.record({ k: fc.constant("leaf" as const), target: leafTarget, flags: LEAF_FLAGS }),
    },
    { weight: 1, arbitrary: pteValue },
  ),
});

const op: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.record({
      k: fc.constant("fault" as const),
      va: fc.oneof(fc.nat(MAX_CHAINS - 1), vaIdx),
      off: fc.nat(PAGE - 1),
      access: fc.constantFrom(ACCESS_READ, ACCESS_WRITE, ACCESS_EXEC) as fc.Arbitrary<Access>,
      user: fc.boolean(),
      insn: fc.constantFrom(...INSNS),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      k: fc.constant("satp" as const),
      mode: fc.constantFrom(SATP_MODE_BARE, SATP_MODE_SV39, SATP_MODE_SV48, SATP_MODE_SV57),
      root: fc.oneof(fc.constant(0), fc.nat(TABLES - 1)),
      asid: fc.nat(3),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      k: fc.constant("sfence" as const),
      va: fc.option(vaIdx),
      asid: fc.option(fc.nat(3)),
    }),
  },
);

let shadowM: { machine: Machine; vcpu: Vcpu; audit: PoolAudit } | undefined;
let nestedM: { machine: Machine; vcpu: Vcpu; audit: PoolAudit } | undefined;

function encode(v: PteValue): bigint {
  if (v.k === "raw") return v.v;
  if (v.k === "next") return (BigInt(tablePage(v.table) / PAGE) << 10n) | BigInt(PTE_V);
  return (BigInt(v.target / PAGE) << 10n) | BigInt(v.flags);
}

/** The VA with these VPNs (level 0 first), sign-extended from bit 56, as an int32 (hi, lo) pair. */
function va(vpns: number[], off: number): [number, number] {
  let v = BigInt(off);
  for (let i = 0; i < LEVELS; i++) v |= BigInt(vpns[i]!) << BigInt(12 + 9 * i);
  v = BigInt.asUintN(64, BigInt.asIntN(VA_BITS, v));
  return [Number(v >> 32n) | 0, Number(v & 0xffff_ffffn) | 0];
}

const causeOf = (a: Access): number =>
  a === ACCESS_EXEC
    ? C.CAUSE_FETCH_PAGE_FAULT
    : a === ACCESS_WRITE
      ? C.CAUSE_STORE_PAGE_FAULT
      : C.CAUSE_LOAD_PAGE_FAULT;

/** Every shadow table pointer leads into the pool, every shadow leaf onto guest RAM. */
function checkShadowTables(m: Machine, vcpu: Vcpu): void {
  const region = m.hvPool.region;
  const walk = (table: Hpa, level: number): void => {
    for (let i = 0; i < ENTRIES; i++) {
      const at = hpa(table + i * PTE_BYTES);
      const flags = region.entryFlags(at);
      if ((flags & PTE_V) === 0) continue;
      if (level > 0) {
        invariant((flags & (PTE_R | PTE_X)) === 0, `shadow leaf above level 0 at 0x${at.toString(16)}`);
        let next: Hpa | undefined;
        try {
          next = region.nextTable(at);
        } catch (e) {
          invariant(false, `shadow table pointer leaves the pool: ${(e as Error).message}`);
        }
        if (next !== undefined) walk(next, level - 1);
        continue;
      }
      const pte = m.ram.dv.getBigUint64(at - m.ram.base, true);
      const page = Number((pte >> 10n) & ((1n << 44n) - 1n)) * PAGE;
      invariant(
        m.memory.contains(gpa(page), PAGE),
        `shadow leaf at 0x${at.toString(16)} maps 0x${page.toString(16)}, not guest RAM`,
      );
    }
  };
  for (const { root, mode } of vcpu.shadow!.shadowRoots()) {
    invariant(region.contains(root, PAGE), `shadow root 0x${root.toString(16)} is not in the pool`);
    walk(root, mode === SATP_MODE_SV39 ? 2 : mode === SATP_MODE_SV48 ? 3 : 4);
  }
}

function allowGuestError(f: () => void): void {
  try {
    f();
  } catch (e) {
    invariant(e instanceof GuestError, `host exception: ${e instanceof Error ? e.stack : String(e)}`);
  }
}

const surface: FuzzSurface<Input> = {
  name: "mmu",
  description:
    "shadow and nested MMUs under random hostile guest page tables: no host exception, the pool changed only by the hypervisor, shadow leaves in guest RAM",
  arbitrary: fc.record({
    shadow: fc.boolean(),
    mode: fc.constantFrom(...MODES),
    chains: fc.array(chain, { maxLength: MAX_CHAINS }),
    ptes: fc.array(fc.record({ table: fc.nat(TABLES - 1), index: idx, value: pteValue }), { maxLength: 40 }),
    ops: fc.array(op, { minLength: 1, maxLength: 24 }),
  }),
  async setup() {
    for (const mode of ["shadow", "nested"] as const) {
      const { machine } = await fuzzMachine(mode);
      const entry = { machine, vcpu: machine.vcpus[0]!, audit: new PoolAudit(machine) };
      if (mode === "shadow") shadowM = entry;
      else nestedM = entry;
    }
  },
  check({ shadow, mode, chains, ptes, ops }) {
    const { machine: m, vcpu, audit } = (shadow ? shadowM : nestedM)!;
    const h = vcpu.hart;
    const put = (table: number, index: number, v: PteValue) =>
      m.memory.write64(gpa(tablePage(table) + index * PTE_BYTES), encode(v));
    m.memory.viewMut(gpa(TABLE_BASE), TABLES * PAGE).fill(0);
    for (const p of ptes) put(p.table, p.index, p.value);
    const top = (mode === SATP_MODE_SV39 ? 3 : mode === SATP_MODE_SV48 ? 4 : 5) - 1;
    for (const c of chains) {
      let t = 0;
      for (let level = top; level > c.leafLevel; level--) {
        put(t, c.va[level]!, { k: "next", table: c.path[level]! });
        t = c.path[level]!;
      }
      put(t, c.va[c.leafLevel]!, c.leaf);
    }
    // The guest switches to its tables (root: table 0) first.
    const first: Op = { k: "satp", mode, root: 0, asid: 0 };
    for (const o of [first, ...ops]) {
      if (o.k === "satp") {
        const ppn = tablePage(o.root) / PAGE;
        if (shadow) {
          h.setXPair(X5, ppn | 0, (o.mode << 28) | (o.asid << 12));
          allowGuestError(() => vcpu.shadow!.virtualInstruction(CSRRW_SATP_X5, vcpu));
        } else {
          h.setCsr(C.CSR_VSATP, (BigInt(o.mode) << 60n) | BigInt(ppn));
        }
      } else if (o.k === "sfence") {
        if (!shadow) continue;
        const [hi, lo] = o.va === null ? [0, 0] : va(o.va, 0);
        h.setXPair(X5, lo, hi);
        h.setXPair(X6, o.asid ?? 0, 0);
        const insn = SFENCE_VMA | (o.va === null ? 0 : X5 << 15) | (o.asid === null ? 0 : X6 << 20);
        allowGuestError(() => vcpu.shadow!.virtualInstruction(insn, vcpu));
      } else {
        const vpns =
          typeof o.va === "number"
            ? (chains[o.va % Math.max(1, chains.length)]?.va ?? [0, 0, 0, 0, 0])
            : o.va;
        const [hi, lo] = va(vpns, o.off);
        h.setPrivilege(o.user ? C.PRV_U : C.PRV_S);
        if (shadow) {
          const e = trapExit(causeOf(o.access), false, lo, hi, 0, o.insn) as PageFaultExit;
          allowGuestError(() => vcpu.shadow!.pageFault(e, vcpu));
        } else {
          const r = h.translate((BigInt(hi >>> 0) << 32n) | BigInt(lo >>> 0), o.access);
          if (r >= 0)
            invariant(
              m.memory.contains(gpa(r), PAGE),
              `nested translation to 0x${r.toString(16)}, not guest RAM`,
            );
        }
      }
      audit.check(`${shadow ? "shadow" : "nested"} ${o.k}`);
    }
    if (shadow) checkShadowTables(m, vcpu);
  },
  ciRuns: 150,
};

export default surface;
