// The software TLB's invalidation is narrower than "drop everything" (mmu.ts, core.ts):
// SFENCE.VMA with an address drops that page (and all of a superpage an entry was cut
// from), a satp write or an ASID fence keeps the global mappings, and a second (victim)
// way keeps the page a refill displaced. Each test shows the narrowing happens (a
// translation the fence does not cover stays cached, so a PTE edit without a fence is not
// seen yet) and that what the fence covers is never stale.
import { IoManager } from "@visor/io-bus";
import {
  PTE_A as A,
  PTE_D as D,
  PTE_G as G,
  GuestRam,
  hpa,
  PTE_R as R,
  PTE_V as V,
  PTE_W as W,
  PTE_X as X,
} from "@visor/memory";
import { describe, expect, it } from "vitest";
import { CodeCache } from "../src/code-cache.ts";
import { HartCore, noteSuperpage, SUPER_REGIONS_MAX } from "../src/core.ts";
import { csr, EXIT_M, Hart, type JitMode } from "../src/index.ts";
import { BASE, EBREAK, ld, MEGA, PAGE, pte, SV39, sd, sfence } from "./sv39-rig.ts";

const RWAD = V | R | W | A | D;

// Registers.
const T0 = 5;
const T1 = 6;
const T2 = 7;
const A0 = 10;
const A1 = 11;
const T3 = 28;

// Physical layout: code at BASE + 0x1000 (mapped by an identity gigapage), page tables
// from BASE + 0x10000, data pages from BASE + 0x100000, megapages from BASE + 0x200000.
const CODE = BASE + PAGE;
const ROOT = BASE + 0x10000;
const ROOT2 = BASE + 0x11000;
const L1 = BASE + 0x12000;
const L0 = BASE + 0x13000;
const L1B = BASE + 0x14000;
const L0B = BASE + 0x15000;
const DATA = BASE + 0x10_0000;
const MEGA1 = BASE + MEGA;
const MEGA2 = BASE + 2 * MEGA;
const MEGA3 = BASE + 3 * MEGA;

// Virtual addresses: 4 KiB pages at 0x4000_0000 + n * 4 KiB (L1[0] -> L0), megapages at
// 0x4020_0000 (L1[1]) and 0x4060_0000 (L1[3]: its pieces alias the first one's in the TLB).
const VA4K = 0x4000_0000;
const VAMEGA = 0x4020_0000;
/** The software TLB has 1024 direct-mapped entries: pages 4 MiB apart share an index. */
const ALIAS = 1024 * PAGE;

/** csrrw x0, satp, rs1 */
const csrwSatp = (rs1: number): number => (0x180 << 20) | (rs1 << 15) | (1 << 12) | 0x73;

interface Rig {
  ram: GuestRam;
  hart: Hart;
  /** Point the 4 KiB page n (VA4K + n * PAGE) of the first table at a physical page. */
  map4k(n: number, pa: number, flags?: number): void;
  /** Run instructions in S-mode (then EBREAK), registers set first; each run uses fresh code. */
  exec(insns: number[], regs?: Record<number, number>): void;
  x(r: number): number;
}

function rig(jit: JitMode = "on"): Rig {
  const ram = new GuestRam(BASE, 16 << 20);
  const hart = new Hart({ ram, bus: new IoManager().mmio, jit });
  hart.exitMask = EXIT_M;
  const w64 = (pa: number, v: bigint): void => ram.write64(hpa(pa), v);
  // Root: [1] -> L1 (the data region), [2] -> an identity gigapage for code and tables.
  w64(ROOT + 8, pte(L1, V));
  w64(ROOT + 16, pte(BASE, RWAD | X | G));
  w64(L1, pte(L0, V));
  w64(L1 + 8, pte(MEGA1, RWAD));
  w64(L1 + 24, pte(MEGA3, RWAD));
  // Each data page and each 4 KiB piece of the megapages holds its own physical address.
  for (let pa = DATA; pa < DATA + 64 * PAGE; pa += PAGE) w64(pa, BigInt(pa));
  for (let pa = MEGA1; pa < MEGA3 + MEGA; pa += PAGE) w64(pa, BigInt(pa));
  for (let n = 0; n < 16; n++) w64(L0 + 8 * n, pte(DATA + n * PAGE, RWAD));
  hart.setSatp(SV39, ROOT / PAGE);
  hart.setPrivilege(csr.PRV_S);
  let code = CODE;
  return {
    ram,
    hart,
    map4k: (n, pa, flags = RWAD) => w64(L0 + 8 * n, pte(pa, flags)),
    exec(insns, regs = {}) {
      const at = code;
      for (const i of [...insns, EBREAK]) {
        ram.write32(hpa(code), i);
        code += 4;
      }
      for (const [r, v] of Object.entries(regs)) hart.setX(Number(r), BigInt(v));
      hart.pc = BigInt(at);
      hart.setPrivilege(csr.PRV_S);
      const e = hart.run(1000);
      expect(e.kind).toBe("breakpoint");
    },
    x: (r) => Number(hart.getX(r)),
  };
}

describe("SFENCE.VMA with an address", () => {
  it("drops that page and keeps the others", () => {
    const t = rig();
    const a = VA4K;
    const b = VA4K + PAGE;
    t.exec([ld(A0, T0), ld(A1, T1)], { [T0]: a, [T1]: b });
    expect([t.x(A0), t.x(A1)]).toEqual([DATA, DATA + PAGE]);
    // Remap both pages; fence only a.
    t.map4k(0, DATA + 8 * PAGE);
    t.map4k(1, DATA + 9 * PAGE);
    t.exec([sfence(T0, 0), ld(A0, T0), ld(A1, T1)]);
    expect(t.x(A0)).toBe(DATA + 8 * PAGE);
    expect(t.x(A1)).toBe(DATA + PAGE); // b's translation is still cached
    t.exec([sfence(0, 0), ld(A1, T1)]);
    expect(t.x(A1)).toBe(DATA + 9 * PAGE);
  });

  it("drops every 4 KiB piece of a superpage when it names any address in it", () => {
    const t = rig();
    const p1 = VAMEGA + PAGE;
    const p5 = VAMEGA + 5 * PAGE;
    const last = VAMEGA + MEGA - PAGE;
    t.exec([ld(A0, T0), ld(A1, T1), ld(A0, T2)], { [T0]: p1, [T1]: p5, [T2]: last });
    expect(t.x(A1)).toBe(MEGA1 + 5 * PAGE);
    // A 4 KiB page of another megapage with the same TLB index as p5 pushes p5 into the
    // victim way: the fence must find it there too.
    t.exec([ld(A0, T0)], { [T0]: p5 + ALIAS });
    expect(t.x(A0)).toBe(MEGA3 + 5 * PAGE);
    t.ram.write64(hpa(L1 + 8), pte(MEGA2, RWAD));
    t.exec([sfence(T2, 0), ld(A0, T0), ld(A1, T1)], { [T0]: p1, [T2]: last });
    expect([t.x(A0), t.x(A1)]).toEqual([MEGA2 + PAGE, MEGA2 + 5 * PAGE]);
  });

  it("drops the page from the victim way", () => {
    const t = rig();
    const a = VA4K;
    const b = VA4K + ALIAS; // same TLB index as a
    // b is the page ALIAS / PAGE of the first table: give it a table entry of its own.
    t.ram.write64(hpa(L1 + 16), pte(L0B, V));
    t.ram.write64(hpa(L0B), pte(DATA + 20 * PAGE, RWAD));
    t.exec([ld(A0, T0), ld(A1, T1)], { [T0]: a, [T1]: b }); // a now in the victim way
    expect([t.x(A0), t.x(A1)]).toEqual([DATA, DATA + 20 * PAGE]);
    t.map4k(0, DATA + 8 * PAGE);
    t.exec([sfence(T0, 0), ld(A0, T0)]);
    expect(t.x(A0)).toBe(DATA + 8 * PAGE);
  });
});

describe("an access across the end of a page whose translation is cached", () => {
  // Virtual pages 0 and 1 mapped to physical pages that are not neighbours: the fast path
  // (a TLB hit on the first page) would read or write the wrong physical bytes.
  for (const jit of ["off", "always"] as const) {
    it(`takes the slow path and reaches both physical pages (--jit ${jit})`, () => {
      const t = rig(jit);
      t.map4k(1, DATA + 9 * PAGE);
      t.ram.write32(hpa(DATA + PAGE - 4), 0x1122_3344);
      // The first load puts page 0 in the TLB; the second starts 4 bytes before its end.
      t.exec([ld(A0, T0), ld(A1, T1)], { [T0]: VA4K, [T1]: VA4K + PAGE - 4 });
      expect(t.x(A0)).toBe(DATA);
      expect(t.hart.getX(A1)).toBe((BigInt(DATA + 9 * PAGE) << 32n) | 0x1122_3344n);
      t.exec([ld(A0, T0), sd(T2, T1)], { [T0]: VA4K, [T1]: VA4K + PAGE - 2, [T2]: 0x0016_1514_1312_1110 });
      expect(t.ram.read16(hpa(DATA + PAGE - 2))).toBe(0x1110);
      expect(t.ram.read32(hpa(DATA + 9 * PAGE))).toBe(0x1514_1312);
      expect(t.ram.read16(hpa(DATA + 9 * PAGE + 4))).toBe(0x0016);
      expect(t.ram.read32(hpa(DATA + PAGE))).toBe(DATA + PAGE); // the neighbour is untouched
    });
  }
});

describe("the victim way", () => {
  it("keeps two pages of one TLB index without walking again", () => {
    const t = rig();
    const a = VA4K;
    const b = VA4K + ALIAS;
    t.ram.write64(hpa(L1 + 16), pte(L0B, V));
    t.ram.write64(hpa(L0B), pte(DATA + 20 * PAGE, RWAD));
    t.exec([ld(A0, T0), ld(A1, T1)], { [T0]: a, [T1]: b });
    const walks = t.hart.stats.walks;
    const misses = t.hart.stats.tlbMisses;
    t.exec([ld(A0, T0), ld(A1, T1), ld(A0, T0), ld(A1, T1), ld(A0, T0)]);
    expect([t.x(A0), t.x(A1)]).toEqual([DATA, DATA + 20 * PAGE]);
    expect(t.hart.stats.tlbMisses).toBe(misses);
    expect(t.hart.stats.walks).toBe(walks);
  });
});

describe("global mappings", () => {
  /** A second address space: the same tables but page 0 of the data region elsewhere. */
  function secondRoot(t: Rig): void {
    const w64 = (pa: number, v: bigint): void => t.ram.write64(hpa(pa), v);
    w64(ROOT2 + 8, pte(L1B, V));
    w64(ROOT2 + 16, pte(BASE, RWAD | X | G));
    w64(L1B, pte(L0B, V));
    w64(L0B, pte(DATA + 30 * PAGE, RWAD)); // page 0: not global, another page
    w64(L0B + 8, pte(DATA + 31 * PAGE, RWAD | G)); // page 1: global, "the same" as in ROOT
  }

  it("survive a satp write that keeps the mode; the rest does not", () => {
    const t = rig();
    secondRoot(t);
    t.map4k(1, DATA + PAGE, RWAD | G);
    const a = VA4K;
    const g = VA4K + PAGE;
    t.exec([ld(A0, T0), ld(A1, T1)], { [T0]: a, [T1]: g });
    expect([t.x(A0), t.x(A1)]).toEqual([DATA, DATA + PAGE]);
    t.hart.setX(T3, (BigInt(SV39) << 60n) | BigInt(ROOT2 / PAGE));
    t.exec([csrwSatp(T3), ld(A0, T0), ld(A1, T1)]);
    expect(t.x(A0)).toBe(DATA + 30 * PAGE); // the new address space's page
    expect(t.x(A1)).toBe(DATA + PAGE); // the global entry survived (ROOT2 maps it elsewhere)
  });

  it("are all dropped when satp changes the mode, and by SFENCE.VMA x0, x0", () => {
    const t = rig();
    t.map4k(1, DATA + PAGE, RWAD | G);
    const g = VA4K + PAGE;
    t.exec([ld(A1, T1)], { [T1]: g });
    t.map4k(1, DATA + 9 * PAGE, RWAD | G);
    t.exec([sfence(0, T3), ld(A1, T1)], { [T3]: 1 }); // an ASID fence keeps globals
    expect(t.x(A1)).toBe(DATA + PAGE);
    t.exec([sfence(0, 0), ld(A1, T1)]);
    expect(t.x(A1)).toBe(DATA + 9 * PAGE);
    // Bare and back (the host's satp writes, as a kernel's would be).
    t.map4k(1, DATA + 10 * PAGE, RWAD | G);
    t.hart.setSatp(0, 0);
    t.hart.setSatp(SV39, ROOT / PAGE);
    t.exec([ld(A1, T1)]);
    expect(t.x(A1)).toBe(DATA + 10 * PAGE);
  });

  it("an ASID fence drops the non-global ones", () => {
    const t = rig();
    const a = VA4K;
    t.exec([ld(A0, T0)], { [T0]: a });
    t.map4k(0, DATA + 8 * PAGE);
    t.exec([sfence(0, T3), ld(A0, T0)], { [T3]: 5 });
    expect(t.x(A0)).toBe(DATA + 8 * PAGE);
  });
});

describe("write-TLB entries of pages that become code", () => {
  it("are dropped, so a later store reaches the decoded-instruction cache", () => {
    const t = rig();
    // Code at a fresh page that a store maps into the write TLB first.
    const page = CODE + 2 * PAGE;
    const ADDI_A0_1 = (1 << 20) | (A0 << 7) | 0x13; // addi a0, x0, 1
    const ADDI_A0_2 = (2 << 20) | (A0 << 7) | 0x13; // addi a0, x0, 2
    // A store to the page (a write-TLB entry for it), then code there is executed.
    t.exec([sd(T1, T0)], { [T0]: page + 0x800, [T1]: 0 });
    t.ram.write32(hpa(page), ADDI_A0_1);
    t.ram.write32(hpa(page + 4), EBREAK);
    const runAt = (pc: number): void => {
      t.hart.pc = BigInt(pc);
      t.hart.setPrivilege(csr.PRV_S);
      expect(t.hart.run(100).kind).toBe("breakpoint");
    };
    runAt(page);
    expect(t.x(A0)).toBe(1);
    // The guest rewrites its code with a store (both words: addi a0, x0, 2; ebreak).
    t.hart.setX(T1, (BigInt(EBREAK) << 32n) | BigInt(ADDI_A0_2));
    t.exec([sd(T1, T0)], { [T0]: page });
    runAt(page);
    expect(t.x(A0)).toBe(2);
  });
});

describe("the G-stage TLB", () => {
  it("survives the guest's fences and satp writes, and hfence.gvma drops it", () => {
    const ram = new GuestRam(BASE, 16 << 20);
    const hart = new Hart({ ram, bus: new IoManager().mmio, hypervisor: true });
    hart.exitMask = EXIT_M;
    const w64 = (pa: number, v: bigint): void => ram.write64(hpa(pa), v);
    // G stage (Sv39x4): a 16 KiB root at BASE + 0x20000, [2] -> a table of 2 MiB leaves
    // mapping guest-physical 0x8000_0000.. onto the same host-physical pages.
    const groot = BASE + 0x20000;
    const gl1 = BASE + 0x24000;
    const U = 16;
    w64(groot + 2 * 8, pte(gl1, V));
    for (let i = 0; i < 8; i++) w64(gl1 + 8 * i, pte(BASE + i * MEGA, RWAD | X | U));
    w64(MEGA1, 111n);
    w64(MEGA2, 222n);
    hart.setCsr(csr.CSR_HGATP, (BigInt(SV39) << 60n) | BigInt(groot / PAGE));
    let code = CODE;
    const exec = (virt: boolean, insns: number[]): void => {
      const at = code;
      for (const i of [...insns, EBREAK]) {
        ram.write32(hpa(code), i);
        code += 4;
      }
      hart.pc = BigInt(at);
      hart.setPrivilege(csr.PRV_S, virt);
      expect(hart.run(1000).kind).toBe("breakpoint");
    };
    hart.setX(T0, BigInt(MEGA1)); // vsatp is bare: the guest's address is guest-physical
    exec(true, [ld(A0, T0)]);
    expect(Number(hart.getX(A0))).toBe(111);
    const gWalks = hart.stats.gWalks;
    const misses = hart.stats.tlbMisses;
    hart.setX(T3, 0n); // vsatp := bare again, as a guest's satp write
    exec(true, [sfence(0, 0), ld(A0, T0), sfence(T0, 0), ld(A0, T0), csrwSatp(T3), ld(A0, T0)]);
    expect(hart.stats.tlbMisses).toBeGreaterThan(misses); // the fences dropped the guest's entries...
    expect(hart.stats.gWalks).toBe(gWalks); // ...but not the G stage's
    // The hypervisor moves guest-physical MEGA1 onto MEGA2 and fences the G stage.
    w64(gl1 + 8, pte(MEGA2, RWAD | X | U));
    const HFENCE_GVMA = (0x31 << 25) | 0x73;
    exec(false, [HFENCE_GVMA]);
    exec(true, [ld(A0, T0)]);
    expect(Number(hart.getX(A0))).toBe(222);
  });
});

describe("the record of superpages", () => {
  it("stays bounded: past its limit the TLB starts again empty", () => {
    const ram = new GuestRam(BASE, 1 << 20);
    const c = new HartCore({
      ram,
      bus: new IoManager().mmio,
      hartId: 0,
      code: new CodeCache(ram),
      hypervisor: false,
    });
    c.leafShift = 21;
    const flushes = c.tlbFlushes;
    for (let i = 0; i <= SUPER_REGIONS_MAX; i++)
      noteSuperpage(c, (i * MEGA) | 0, Math.floor((i * MEGA) / 2 ** 32));
    expect(c.tlbFlushes).toBe(flushes + 1);
    expect(c.superRegions.size).toBe(1);
  });
});
