/**
 * Snapshots: the hart's whole architectural state as plain JSON, and its restore.
 */

import {
  cycles,
  executedCount,
  flushTlb,
  H_STATE_KEYS,
  type HartCore,
  type HState,
  instret,
  selectTlb,
  updateMip,
} from "./core.ts";
import type { FpuState } from "./fpu/index.ts";

/**
 * A hart's architectural state, as plain JSON (snapshots, migration). Integers are kept
 * as (lo, hi) int32 pairs, as the hart holds them. Taken and restored between runs.
 */
export interface HartState {
  /** x0..x31 as [lo0, hi0, lo1, hi1, ...]. */
  x: number[];
  pc: [number, number];
  priv: number;
  virt: boolean;
  wfi: boolean;
  mstatus: number;
  mstatusHiBits: number;
  misa: number;
  medeleg: number;
  mideleg: number;
  mie: number;
  mipSw: number;
  mipHw: number;
  mcounteren: number;
  scounteren: number;
  mcountinhibit: number;
  menvcfg: number;
  senvcfg: number;
  satp: [mode: number, ppn: number];
  instret: number;
  cycles: number;
  executed: number;
  /** Every other CSR that is not zero, as [number, lo, hi]. */
  csr: [number, number, number][];
  fpu: FpuState;
  /** The hypervisor extension's CSRs, on harts that have it. */
  h?: Record<string, number>;
}

/** The architectural state (between runs: not while `run` is executing). */
export function toState(c: HartCore): HartState {
  const x: number[] = [];
  for (let i = 0; i < 32; i++) x.push(c.xlo[i]!, c.xhi[i]!);
  const csr: [number, number, number][] = [];
  for (let i = 0; i < 4096; i++) {
    if (c.csrLo[i] !== 0 || c.csrHi[i] !== 0) csr.push([i, c.csrLo[i]!, c.csrHi[i]!]);
  }
  return {
    x,
    pc: [c.pcLo, c.pcHi],
    priv: c.priv,
    virt: c.virt,
    wfi: c.wfi,
    mstatus: c.mstatus,
    mstatusHiBits: c.mstatusHiBits,
    misa: c.misaLo,
    medeleg: c.medeleg,
    mideleg: c.mideleg,
    mie: c.mie,
    mipSw: c.mipSw,
    mipHw: c.mipHw,
    mcounteren: c.mcounteren,
    scounteren: c.scounteren,
    mcountinhibit: c.mcountinhibit,
    menvcfg: c.menvcfgLo,
    senvcfg: c.senvcfgLo,
    satp: [c.satpMode, c.satpPpn],
    instret: instret(c),
    cycles: cycles(c),
    executed: executedCount(c),
    csr,
    fpu: c.fpu.toState(),
    ...(c.h !== undefined ? { h: hToState(c.h) } : {}),
  };
}

/**
 * Restore a state taken by toState() on a hart of the same kind. Cached translations
 * and decoded instructions are dropped. Throws on a malformed state.
 */
export function fromState(c: HartCore, state: unknown): void {
  const s = state as HartState;
  const int = (v: unknown, what: string): number => {
    if (typeof v !== "number" || !Number.isInteger(v))
      throw new Error(`hart state: ${what} is not an integer`);
    return v;
  };
  if (s === null || typeof s !== "object") throw new Error("hart state: not an object");
  if (!Array.isArray(s.x) || s.x.length !== 64) throw new Error("hart state: x must hold 64 words");
  if (!Array.isArray(s.pc) || s.pc.length !== 2) throw new Error("hart state: pc must be [lo, hi]");
  if (!Array.isArray(s.satp) || s.satp.length !== 2) throw new Error("hart state: satp must be [mode, ppn]");
  if (!Array.isArray(s.csr)) throw new Error("hart state: csr must be an array");
  if ((s.h !== undefined) !== (c.h !== undefined)) {
    throw new Error("hart state: taken on a hart with a different hypervisor extension setting");
  }
  for (let i = 0; i < 32; i++) {
    c.xlo[i] = int(s.x[2 * i], "x");
    c.xhi[i] = int(s.x[2 * i + 1], "x");
  }
  c.xlo[0] = 0;
  c.xhi[0] = 0;
  c.pcLo = int(s.pc[0], "pc");
  c.pcHi = int(s.pc[1], "pc");
  c.wfi = s.wfi === true;
  c.mstatus = int(s.mstatus, "mstatus");
  c.mstatusHiBits = int(s.mstatusHiBits, "mstatusHiBits");
  c.misaLo = int(s.misa, "misa");
  c.medeleg = int(s.medeleg, "medeleg");
  c.mideleg = int(s.mideleg, "mideleg");
  c.mie = int(s.mie, "mie");
  c.mipSw = int(s.mipSw, "mipSw");
  c.mipHw = int(s.mipHw, "mipHw");
  updateMip(c);
  c.mcounteren = int(s.mcounteren, "mcounteren");
  c.scounteren = int(s.scounteren, "scounteren");
  c.mcountinhibit = int(s.mcountinhibit, "mcountinhibit");
  c.menvcfgLo = int(s.menvcfg, "menvcfg");
  c.senvcfgLo = int(s.senvcfg, "senvcfg");
  c.satpMode = int(s.satp[0], "satp");
  c.satpPpn = int(s.satp[1], "satp");
  c.csrLo.fill(0);
  c.csrHi.fill(0);
  for (const e of s.csr) {
    if (!Array.isArray(e) || e.length !== 3) throw new Error("hart state: csr entries are [number, lo, hi]");
    const n = int(e[0], "csr number");
    if (n < 0 || n > 4095) throw new Error(`hart state: no CSR ${n}`);
    c.csrLo[n] = int(e[1], "csr");
    c.csrHi[n] = int(e[2], "csr");
  }
  c.fpu.loadState(s.fpu);
  if (s.h !== undefined) hFromState(c.h!, s.h);
  c.executed = int(s.executed, "executed");
  c.runN = 0;
  c.runRef = 0;
  c.excInRun = 0;
  c.instretBase = int(s.instret, "instret");
  c.cycleBase = int(s.cycles, "cycles");
  c.resValid = false;
  c.priv = int(s.priv, "priv");
  c.virt = s.virt === true;
  selectTlb(c);
  flushTlb(c);
  c.code.clear();
}

/** The HS-mode CSRs kept in HState (VS CSRs and the rest live in the CSR arrays). */
function hToState(h: HState): Record<string, number> {
  const s: Record<string, number> = {};
  for (const k of H_STATE_KEYS) s[k] = h[k];
  return s;
}

function hFromState(h: HState, s: Record<string, number>): void {
  for (const k of H_STATE_KEYS) {
    const v = s[k];
    if (typeof v !== "number" || !Number.isInteger(v))
      throw new Error(`hart state: h.${k} is not an integer`);
    h[k] = v;
  }
  h.flushGTlb();
}
