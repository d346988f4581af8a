// How much of the shadow an sfence.vma drops (shadow.ts virtualInstruction). The shadow
// maps 4 KiB pages only, so a guest superpage is shadowed piece by piece (a fill shadows
// the 64 KiB group around the faulting piece): a fence naming any address in it must drop
// every piece (a fence names one address per superpage, as Linux's flush_tlb_range does
// with a huge-page stride). A fence with an address and an ASID drops that page only, an
// ASID-only fence the roots of that ASID only.
import { csr as C, type PageFaultExit, trapExit } from "@visor/cpu";
import { gpa, type Hpa, hpa, PTE_A, PTE_D, PTE_R, PTE_V, PTE_W } from "@visor/memory";
import { describe, expect, it } from "vitest";
import { Machine, type Vcpu, VIRT_MEMMAP, warmupImage } from "../src/index.ts";

const PAGE = 4096;
const MEGA = 0x20_0000;
const RAM = VIRT_MEMMAP.dram.base;
/** The guest's tables and data, away from the loaded warm-up guest. */
const ROOT_A = RAM + (4 << 20);
const ROOT_B = ROOT_A + PAGE;
const L1 = ROOT_A + 2 * PAGE;
const L0 = ROOT_A + 3 * PAGE;
const DATA = RAM + (6 << 20); // a 2 MiB-aligned guest-physical page
const SV39 = 8;
const X5 = 5;
const X6 = 6;
const CSRRW_SATP_X5 = (C.CSR_SATP << 20) | (X5 << 15) | (1 << 12) | 0x73;
const sfence = (rs1: number, rs2: number): number => (0x09 << 25) | (rs2 << 20) | (rs1 << 15) | 0x73;
const RWAD = PTE_V | PTE_R | PTE_W | PTE_A | PTE_D;

// Guest virtual addresses: a megapage at 0x4000_0000 (L1[0]), 4 KiB pages from
// 0x4020_0000 (L1[1] -> L0).
const SUPER = 0x4000_0000;
const SMALL = 0x4020_0000;

const pte = (pa: number, flags: number): bigint => (BigInt(pa / PAGE) << 10n) | BigInt(flags);

async function shadowMachine(): Promise<{ m: Machine; vcpu: Vcpu }> {
  const m = await Machine.create({
    memory: 16 << 20,
    kernel: warmupImage(),
    append: "",
    clock: "deterministic",
    virt: "shadow",
    console: { write: () => {} },
  });
  const vcpu = m.vcpus[0]!;
  // Both roots share L1: [0] a megapage, [1] -> L0 (two 4 KiB pages).
  for (const root of [ROOT_A, ROOT_B]) m.memory.write64(gpa(root + 8), pte(L1, PTE_V));
  m.memory.write64(gpa(L1), pte(DATA, RWAD));
  m.memory.write64(gpa(L1 + 8), pte(L0, PTE_V));
  m.memory.write64(gpa(L0), pte(DATA + MEGA, RWAD));
  m.memory.write64(gpa(L0 + 8), pte(DATA + MEGA + PAGE, RWAD));
  vcpu.hart.setPrivilege(C.PRV_S);
  return { m, vcpu };
}

function setSatp(vcpu: Vcpu, root: number, asid: number): void {
  vcpu.hart.setXPair(X5, root / PAGE, (SV39 << 28) | (asid << 12));
  vcpu.shadow!.virtualInstruction(CSRRW_SATP_X5, vcpu);
}

/** A guest load at `va` faults: the shadow MMU fills the page. */
function touch(vcpu: Vcpu, va: number): void {
  const e = trapExit(C.CAUSE_LOAD_PAGE_FAULT, false, va | 0, 0, 0, 0) as PageFaultExit;
  expect(vcpu.shadow!.pageFault(e, vcpu)).toBe("shadow fill");
}

/** Which shadow roots (of the current ones) have a leaf for `va`. */
function shadowed(m: Machine, vcpu: Vcpu, va: number): number {
  const region = m.hvPool.region;
  let n = 0;
  for (const { root } of vcpu.shadow!.shadowRoots()) {
    let table: Hpa | undefined = root;
    for (let level = 2; level > 0 && table !== undefined; level--) {
      table = region.nextTable(hpa(table + ((va >>> (12 + 9 * level)) & 0x1ff) * 8));
    }
    if (table === undefined) continue;
    if ((region.entryFlags(hpa(table + ((va >>> 12) & 0x1ff) * 8)) & PTE_V) !== 0) n++;
  }
  return n;
}

/** The flags of the current root's shadow leaf for `va` (0: none). */
function shadowFlags(m: Machine, vcpu: Vcpu, va: number): number {
  const region = m.hvPool.region;
  const roots = vcpu.shadow!.shadowRoots();
  let table: Hpa | undefined = roots[roots.length - 1]!.root;
  for (let level = 2; level > 0 && table !== undefined; level--) {
    table = region.nextTable(hpa(table + ((va >>> (12 + 9 * level)) & 0x1ff) * 8));
  }
  return table === undefined ? 0 : region.entryFlags(hpa(table + ((va >>> 12) & 0x1ff) * 8));
}

describe("shadow fills", () => {
  it("shadow the 64 KiB group of a guest superpage around the page, with its permissions", async () => {
    const { m, vcpu } = await shadowMachine();
    setSatp(vcpu, ROOT_A, 1);
    touch(vcpu, SUPER + 5 * PAGE);
    expect(vcpu.shadow!.stats.fills).toBe(1);
    for (let p = 0; p < 16; p++)
      expect(shadowFlags(m, vcpu, SUPER + p * PAGE) & PTE_W, `piece ${p}`).toBe(PTE_W);
    expect(shadowFlags(m, vcpu, SUPER + 16 * PAGE)).toBe(0);
    // A clean superpage: its pieces are shadowed read-only (the first write must set D).
    m.memory.write64(gpa(L1 + 16), pte(DATA + 2 * MEGA, RWAD & ~PTE_D));
    touch(vcpu, SUPER + 2 * MEGA + PAGE);
    for (let p = 0; p < 16; p++)
      expect(shadowFlags(m, vcpu, SUPER + 2 * MEGA + p * PAGE), `piece ${p}`).toBe(RWAD & ~(PTE_W | PTE_D));
  });

  it("of a 4 KiB guest page shadow that page only", async () => {
    const { m, vcpu } = await shadowMachine();
    setSatp(vcpu, ROOT_A, 1);
    touch(vcpu, SMALL);
    expect(shadowFlags(m, vcpu, SMALL)).not.toBe(0);
    expect(shadowFlags(m, vcpu, SMALL + PAGE)).toBe(0);
  });
});

describe("sfence.vma under shadow paging", () => {
  it("with an address in a guest superpage drops every shadowed piece of it", async () => {
    const { m, vcpu } = await shadowMachine();
    setSatp(vcpu, ROOT_A, 1);
    for (const off of [PAGE, 5 * PAGE, MEGA - PAGE]) touch(vcpu, SUPER + off);
    touch(vcpu, SMALL);
    expect(shadowed(m, vcpu, SUPER + 5 * PAGE)).toBe(1);
    vcpu.hart.setXPair(X5, SUPER + PAGE, 0);
    vcpu.shadow!.virtualInstruction(sfence(X5, 0), vcpu);
    for (const off of [PAGE, 5 * PAGE, MEGA - PAGE])
      expect(shadowed(m, vcpu, SUPER + off), `+${off}`).toBe(0);
    expect(shadowed(m, vcpu, SMALL)).toBe(1); // not a full flush
    expect(vcpu.shadow!.stats.flushes).toBe(0);
  });

  it("with an address and an ASID drops that page only", async () => {
    const { m, vcpu } = await shadowMachine();
    setSatp(vcpu, ROOT_A, 1);
    touch(vcpu, SMALL);
    touch(vcpu, SMALL + PAGE);
    vcpu.hart.setXPair(X5, SMALL, 0);
    vcpu.hart.setXPair(X6, 1, 0);
    vcpu.shadow!.virtualInstruction(sfence(X5, X6), vcpu);
    expect(shadowed(m, vcpu, SMALL)).toBe(0);
    expect(shadowed(m, vcpu, SMALL + PAGE)).toBe(1);
  });

  it("with only an ASID drops the roots of that ASID", async () => {
    const { m, vcpu } = await shadowMachine();
    setSatp(vcpu, ROOT_A, 1);
    touch(vcpu, SMALL);
    setSatp(vcpu, ROOT_B, 2);
    touch(vcpu, SMALL);
    expect(shadowed(m, vcpu, SMALL)).toBe(2);
    vcpu.hart.setXPair(X6, 1, 0);
    vcpu.shadow!.virtualInstruction(sfence(0, X6), vcpu);
    expect(shadowed(m, vcpu, SMALL)).toBe(1); // ASID 2's root keeps its page
    vcpu.hart.setXPair(X6, 2, 0); // the current root's ASID: a new, empty root
    vcpu.shadow!.virtualInstruction(sfence(0, X6), vcpu);
    expect(shadowed(m, vcpu, SMALL)).toBe(0);
    touch(vcpu, SMALL);
    expect(shadowed(m, vcpu, SMALL)).toBe(1);
  });

  it("keeps the superpages it knows across a snapshot, and drops everything when it does not know them", async () => {
    const { m, vcpu } = await shadowMachine();
    setSatp(vcpu, ROOT_A, 1);
    touch(vcpu, SUPER + PAGE);
    touch(vcpu, SUPER + 2 * PAGE);
    touch(vcpu, SMALL);
    const state = vcpu.shadow!.toState();
    expect(state.superpages?.length).toBe(1);
    // An older snapshot without the list: a fence with an address drops every shadow.
    vcpu.shadow!.fromState({ satp: state.satp, roots: state.roots });
    vcpu.hart.setXPair(X5, SMALL + PAGE, 0);
    vcpu.shadow!.virtualInstruction(sfence(X5, 0), vcpu);
    expect(vcpu.shadow!.stats.flushes).toBe(1);
    expect(shadowed(m, vcpu, SMALL)).toBe(0);
    expect(() => vcpu.shadow!.fromState({ ...state, superpages: ["x"] })).toThrow(
      /^shadow state: malformed superpages/,
    );
  });
});
