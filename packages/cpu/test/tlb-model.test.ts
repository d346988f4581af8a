// The software TLB against no TLB at all. Random programs load and store through random
// Sv39 tables (4 KiB pages and 2 MiB megapages, global or not, pages that alias in the
// TLB's index, read-only and invalid entries) while the host edits PTEs between runs,
// each edit followed by the fence that covers it: sfence.vma with an address in the page
// or megapage, or sfence.vma x0, x0 for a pointer. ASID fences come in between as noise,
// and satp switches between two address spaces that share the global region and differ
// in a non-global one.
// One hart runs them normally (narrow fences, the victim way, global entries kept); the
// reference runs them one instruction at a time with every translation flushed before
// each. Every load result, fault, A/D update and store must be the same.
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
import { csr, EXIT_M, Hart } from "../src/index.ts";
import { BASE, EBREAK, ld, MEGA, PAGE, pte, SV39, sd, sfence } from "./sv39-rig.ts";

const CODE = BASE + PAGE;
const ROOT = BASE + 0x40000;
/** The second address space: the same tables but for root[0] (VA 0..1 GiB). */
const ROOT2 = BASE + 0x48000;
/** Root[0] of each address space -> an L1 whose [0] -> an L0 of non-global 4 KiB pages. */
const L1U = [BASE + 0x49000, BASE + 0x4a000];
const L0U = [BASE + 0x4b000, BASE + 0x4c000];
/** Four L1 tables' worth of region: L1[i] at 0x4000_0000 + i * 2 MiB; i and i + 2 alias in the TLB. */
const L1 = BASE + 0x41000;
const L0 = (i: number): number => BASE + 0x42000 + i * PAGE; // one 4 KiB table per L1 entry
const DATA = BASE + 0x10_0000; // 64 data pages
const MEGAS = BASE + 4 * MEGA; // megapage targets: 4 of them
const VA = 0x4000_0000;
const SLOTS = [0, 1, 2, 3]; // L1 entries in use: 0/2 and 1/3 alias in the TLB's index
const PAGES_PER_TABLE = 8;

const T0 = 5;
const T1 = 6;
const T3 = 28;

/** mulberry32: a small seeded generator. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface Machine {
  ram: GuestRam;
  hart: Hart;
}

function machine(): Machine {
  const ram = new GuestRam(BASE, 16 << 20);
  const hart = new Hart({ ram, bus: new IoManager().mmio });
  hart.exitMask = EXIT_M;
  return { ram, hart };
}

/** Run `insns` at `at` to the EBREAK; faults are noted and skipped. `step`: the reference. */
function runTo(m: Machine, at: number, step: boolean, log: string[]): void {
  const h = m.hart;
  h.pc = BigInt(at);
  h.setPrivilege(csr.PRV_S);
  for (let guard = 0; guard < 10_000; guard++) {
    if (step) h.flushTlb();
    const e = h.run(step ? 1 : 10_000);
    if (e.kind === "budget") continue;
    if (e.kind === "breakpoint") return;
    const t = e as { cause?: number; tval?: bigint };
    log.push(`${h.pc.toString(16)} ${e.kind} ${t.cause} ${t.tval?.toString(16)}`);
    h.pc += 4n;
    h.setPrivilege(csr.PRV_S);
  }
  throw new Error("program did not finish");
}

describe("the TLB against a hart without one", () => {
  it("gives the same loads, faults, A/D bits and stores on random programs with fenced PTE edits", () => {
    for (let seed = 1; seed <= 30; seed++) {
      const rand = rng(seed);
      const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
      const ms = [machine(), machine()];
      const logs: string[][] = [[], []];
      const both = (f: (m: Machine) => void): void => {
        for (const m of ms) f(m);
      };
      const w64 = (pa: number, v: bigint): void => both((m) => m.ram.write64(hpa(pa), v));
      // Code and tables through an identity gigapage; the data region through L1.
      for (const [n, root] of [ROOT, ROOT2].entries()) {
        w64(root + 16, pte(BASE, V | R | W | X | A | D | G));
        w64(root + 8, pte(L1, V));
        w64(root, pte(L1U[n]!, V));
        w64(L1U[n]!, pte(L0U[n]!, V));
        for (let p = 0; p < PAGES_PER_TABLE; p++) {
          w64(L0U[n]! + 8 * p, pte(DATA + Math.floor(rand() * 64) * PAGE, V | R | W | A | D));
        }
      }
      for (let pa = DATA; pa < DATA + 64 * PAGE; pa += 8) w64(pa, BigInt(pa));
      for (let pa = MEGAS; pa < MEGAS + 4 * MEGA; pa += PAGE) {
        for (let o = 0; o < 32; o += 8) w64(pa + o, BigInt(pa + o));
      }
      const leafFlags = (): number => {
        const r = rand();
        let f = V | R | (r < 0.8 ? W : 0) | (rand() < 0.3 ? G : 0);
        if (rand() < 0.5) f |= A;
        if (rand() < 0.5) f |= D;
        if (rand() < 0.05) f &= ~V;
        return f;
      };
      // The slots of L1 (0..3 used): a pointer to a 4 KiB table, or a megapage.
      const setSlot = (i: number): void => {
        if (rand() < 0.6) {
          w64(L1 + 8 * i, pte(L0(i), V));
          for (let p = 0; p < PAGES_PER_TABLE; p++)
            w64(L0(i) + 8 * p, pte(DATA + Math.floor(rand() * 64) * PAGE, leafFlags()));
        } else {
          w64(L1 + 8 * i, pte(MEGAS + Math.floor(rand() * 4) * MEGA, leafFlags()));
        }
      };
      for (const i of SLOTS) setSlot(i);
      both((m) => m.hart.setSatp(SV39, ROOT / PAGE));
      const satps = [ROOT, ROOT2].map((r) => (BigInt(SV39) << 60n) | BigInt(r / PAGE));
      const offset = (): number => Math.floor(rand() * PAGES_PER_TABLE) * PAGE + 8 * Math.floor(rand() * 4);
      // Mostly the shared region; a fifth of the accesses in the per-address-space one.
      const vaOf = (): number => (rand() < 0.2 ? offset() : VA + pick(SLOTS) * MEGA + offset());
      let code = CODE;
      for (let round = 0; round < 30; round++) {
        // The host edits one PTE, then the guest fences it and accesses memory.
        const insns: number[] = [];
        const regs: [number, number | bigint][] = [];
        const slot = pick(SLOTS);
        const isTable = (ms[0]!.ram.read64(hpa(L1 + 8 * slot)) & BigInt(R | X)) === 0n;
        const r = rand();
        let fenceVa: number | undefined;
        if (r < 0.15) {
          setSlot(slot); // a pointer may change: the whole address space
        } else if (isTable) {
          const p = Math.floor(rand() * PAGES_PER_TABLE);
          w64(L0(slot) + 8 * p, pte(DATA + Math.floor(rand() * 64) * PAGE, leafFlags()));
          fenceVa = VA + slot * MEGA + p * PAGE + Math.floor(rand() * PAGE);
        } else {
          w64(L1 + 8 * slot, pte(MEGAS + Math.floor(rand() * 4) * MEGA, leafFlags()));
          fenceVa = VA + slot * MEGA + Math.floor(rand() * MEGA);
        }
        if (fenceVa === undefined) insns.push(sfence(0, 0));
        else {
          regs.push([T1, fenceVa]);
          insns.push(sfence(T1, 0));
        }
        for (let k = 0; k < 12; k++) {
          const x = rand();
          const reg = 11 + k; // a1..a7, s2..: one register per access
          regs.push([reg, vaOf()]);
          if (x < 0.6)
            insns.push(ld(reg, reg)); // a load
          else if (x < 0.85)
            insns.push(sd(reg, reg)); // a store of the address itself
          else if (x < 0.93) {
            regs.push([T3, pick(satps)]);
            insns.push((0x180 << 20) | (T3 << 15) | (1 << 12) | 0x73); // csrrw x0, satp, t3
          } else {
            regs.push([T0, pick([0, 1, 2])]);
            insns.push(sfence(0, T0)); // an ASID fence: covers nothing the program relies on
          }
        }
        const at = code;
        for (const i of [...insns, EBREAK]) {
          both((m) => m.ram.write32(hpa(code), i));
          code += 4;
        }
        ms.forEach((m, n) => {
          for (const [reg, v] of regs) m.hart.setX(reg, BigInt(v));
          runTo(m, at, n === 1, logs[n]!);
        });
        expect(logs[0], `seed ${seed} round ${round}`).toEqual(logs[1]);
        for (let reg = 1; reg < 32; reg++) {
          expect(ms[0]!.hart.getX(reg), `seed ${seed} round ${round} x${reg}`).toBe(ms[1]!.hart.getX(reg));
        }
        const a = ms[0]!.ram.view(hpa(BASE), 16 << 20);
        const b = ms[1]!.ram.view(hpa(BASE), 16 << 20);
        expect(Buffer.compare(a, b), `seed ${seed} round ${round}: RAM`).toBe(0);
      }
    }
  }, 120_000);
});
