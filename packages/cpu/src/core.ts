/**
 * The hart's core state: registers, privilege and V mode, the CSR file's storage, the
 * software TLBs, counters and the pending host exit. Plain data plus the few helpers that
 * keep it consistent (TLB selection on mode changes, mip, counters). It is internal to the
 * package: the slow-path modules (mmu.ts, trap.ts, csr-file.ts, amo.ts, hext.ts,
 * system.ts) are functions over it, and the public `Hart` (hart.ts) wraps one.
 *
 * This module imports no other module of the hart, so the package has no import cycles:
 * core <- exit; trap <- mmu <- hext <- csr-file; amo; system <- hart.
 */
import {
  type GuestRam,
  type PteTranslator,
  SATP_MODE_BARE,
  WASM_PAGE_SIZE,
  WalkResult,
  type WasmMemory,
  wasmMemory,
} from "@visor/memory";
import type { CodeCache } from "./code-cache.ts";
import * as C from "./csr.ts";
import type { HartExit } from "./exit.ts";
import { Fpu } from "./fpu/index.ts";

/** What the hart needs from the board for physical addresses outside RAM. */
export interface PhysBus {
  /** Unsigned value, or -1 when nothing is mapped there. */
  read(pa: number, size: 1 | 2 | 4): number;
  write(pa: number, size: 1 | 2 | 4, value: number): boolean;
  read64(pa: number): bigint | undefined;
  write64(pa: number, value: bigint): boolean;
}

/** Bits of `exitMask`: which trap targets leave `run` instead of entering guest handlers. */
export const EXIT_M = 1; // traps that would enter M-mode (no firmware: the host is M-mode)
export const EXIT_HS = 2; // traps that would enter HS-mode from a virtualized guest (the host is the hypervisor)

/** Never equal to a page-aligned address: the tag of an empty TLB entry. */
export const INVALID_TAG = 1;
/** Entries per software TLB (direct-mapped by virtual page number). */
export const TLB_SIZE = 1024;
export const TLB_MASK = TLB_SIZE - 1;
/** Entries per G-stage TLB (guest-physical page -> host-physical page), per access type. */
export const G_TLB_SIZE = 1024;

/** Counters of the hart's slow paths (cheap; read by the hypervisor's --stats and the bench). */
export interface HartStats {
  tlbMisses: number;
  walks: number;
  walkRefs: number;
  traps: number;
  interrupts: number;
  mmioReads: number;
  mmioWrites: number;
  /** G-stage walks and their PTE references (H extension), and G-stage TLB hits. */
  gWalks: number;
  gRefs: number;
  gTlbHits: number;
}

/** RAM sizes up to this have every RAM offset in int32 range. */
const INT32_RAM_LIMIT = 2 ** 31;

/**
 * A TLB's RAM page offsets: int32 while every RAM offset fits one (RAM up to 2 GiB), so
 * the hot path adds int32s; doubles above, exact for any RAM size.
 */
export type TlbPages = Int32Array | Float64Array;

function tlbPages(ramSize: number): TlbPages {
  return ramSize <= INT32_RAM_LIMIT ? new Int32Array(TLB_SIZE) : new Float64Array(TLB_SIZE);
}

/** One translation context's read, write and fetch TLBs. */
export class TlbSet {
  /**
   * Tags, two int32 per entry: [2 * i] the page-aligned low word of the virtual address,
   * [2 * i + 1] its high word; together one little-endian i64, which translated code
   * compares in one instruction.
   */
  readonly rTag: Int32Array;
  readonly rPage: TlbPages;
  readonly wTag: Int32Array;
  readonly wPage: TlbPages;
  readonly xTag: Int32Array;
  readonly xPage: TlbPages;
  /**
   * Byte offset of this set in the hart's state buffer (`HartCore.state`), or -1 when its
   * page arrays are doubles (RAM above 2 GiB) and live outside it. Translated code finds
   * the current data set through `ST_DSET` (layout below).
   */
  readonly stOffset: number;
  /**
   * The second way of the read, write and fetch TLBs (V_R, V_W, V_X times TLB_SIZE): the
   * entry a refill displaced from the direct-mapped array, found again by the slow path
   * without a walk (two pages whose numbers agree in the index bits no longer evict each
   * other for good). Outside the state buffer: translated code looks at the first way only.
   */
  readonly vTag = new Int32Array(2 * 3 * TLB_SIZE);
  readonly vPage = new Float64Array(3 * TLB_SIZE);
  /**
   * 1 where the entry came from a global leaf (PTE.G): flushNonGlobal keeps those across
   * satp/vsatp writes that keep the mode, and SFENCE.VMA with only an ASID.
   */
  readonly rG = new Uint8Array(TLB_SIZE);
  readonly wG = new Uint8Array(TLB_SIZE);
  readonly xG = new Uint8Array(TLB_SIZE);
  readonly vG = new Uint8Array(3 * TLB_SIZE);
  /**
   * Refills since the set was last emptied, and how many of them were global: 0 fills
   * means no valid entry in either way, so invalidation skips the set (most contexts are
   * idle: M-mode, SUM, the V=1 sets without a guest).
   */
  fills = 0;
  globals = 0;

  constructor(ramSize: number, state: ArrayBuffer, stOffset: number) {
    const at = (k: number, n = TLB_SIZE): Int32Array => new Int32Array(state, stOffset + k * TLB_SIZE * 4, n);
    this.rTag = at(TLB_R_TAG, 2 * TLB_SIZE);
    this.wTag = at(TLB_W_TAG, 2 * TLB_SIZE);
    this.xTag = at(TLB_X_TAG, 2 * TLB_SIZE);
    if (ramSize <= INT32_RAM_LIMIT) {
      this.rPage = at(TLB_R_PAGE);
      this.wPage = at(TLB_W_PAGE);
      this.xPage = at(TLB_X_PAGE);
      this.stOffset = stOffset;
    } else {
      this.rPage = tlbPages(ramSize);
      this.wPage = tlbPages(ramSize);
      this.xPage = tlbPages(ramSize);
      this.stOffset = -1;
    }
    this.clear(); // the state buffer starts zeroed: tag 0 would be a valid page
  }

  /** Empty the set (nothing to do when nothing was filled since it was last emptied). */
  flush(): void {
    if (this.fills !== 0) this.clear();
  }

  private clear(): void {
    this.rTag.fill(INVALID_TAG);
    this.wTag.fill(INVALID_TAG);
    this.xTag.fill(INVALID_TAG);
    this.vTag.fill(INVALID_TAG);
    this.fills = 0;
    this.globals = 0;
  }
}

/** Entry offsets of the read, write and fetch victim entries in TlbSet.vTag (two int32 each) and vPage. */
export const V_R = 0;
export const V_W = TLB_SIZE;
export const V_X = 2 * TLB_SIZE;

/** Translation contexts: U 0, S 1, S+SUM 2, M 3; +4 with V=1. */
const TLB_CONTEXTS = 8;

// ---------------------------------------------------------------- the state buffer
//
// The state translated code reads and writes (jit/) lives in one buffer per hart, a
// WebAssembly.Memory when the host has WebAssembly, so generated code addresses it
// directly while the interpreter uses typed-array views of the same bytes. Byte offsets:

/** Integer registers, low words (33 int32: x0..x31 and the x0 sink). */
export const ST_XLO = 0;
/** Integer registers, high words. */
export const ST_XHI = 256;
/** FP registers: 32 x 64 bits, lo word first (the Fpu's `w`). */
export const ST_FPR = 512;
/** fflags, frm (int32 each). */
export const ST_FCSR = 768;
/** Exit pc (lo, hi) written by translated code. */
export const ST_PC = 776;
/** How translated code left (jit/index.ts EXIT_*). */
export const ST_EXIT = 784;
/** Byte offset of the current data TlbSet (see TlbSet.stOffset). */
export const ST_DSET = 788;
/** Byte offset of the current fetch TlbSet (translated code looks up jump targets in it). */
export const ST_XSET = 792;
/**
 * The TLB sets, TLB_CONTEXTS of them, each 9 * TLB_SIZE int32: at these multiples of
 * TLB_SIZE int32, the read tags (two int32 an entry), read pages, write tags, write pages,
 * fetch tags and fetch pages.
 */
export const ST_TLB = 4096;
export const TLB_R_TAG = 0;
export const TLB_R_PAGE = 2;
export const TLB_W_TAG = 3;
export const TLB_W_PAGE = 5;
export const TLB_X_TAG = 6;
export const TLB_X_PAGE = 8;
const TLB_SET_BYTES = 9 * TLB_SIZE * 4;
/**
 * The chain cache (jit/index.ts): CHAIN_SIZE direct-mapped entries of two int32, the RAM
 * offset of a translated entry and where it is (table index * 512 + block), so translated
 * code can jump to other translated code without returning to the interpreter.
 */
export const ST_CHAIN = ST_TLB + TLB_CONTEXTS * TLB_SET_BYTES;
export const CHAIN_SIZE = 4096;
const STATE_BYTES = ST_CHAIN + CHAIN_SIZE * 8;

/** The hart's state buffer: a WebAssembly.Memory when the host has WebAssembly. */
function stateMemory(): { memory: WasmMemory | undefined; buffer: ArrayBuffer } {
  const bytes = Math.ceil(STATE_BYTES / WASM_PAGE_SIZE) * WASM_PAGE_SIZE;
  const memory = wasmMemory(bytes);
  return { memory, buffer: memory?.buffer ?? new ArrayBuffer(bytes) };
}

/** TLB set index of a translation context. */
function tlbContext(priv: number, virt: boolean, sum: boolean): number {
  const base = priv === C.PRV_U ? 0 : priv === C.PRV_S ? (sum ? 2 : 1) : 3;
  return virt ? base + 4 : base;
}

/**
 * The H extension's state (its HS-mode CSRs not kept in the CSR arrays, and the G-stage
 * TLB). Present on harts with the extension; hext.ts and the H parts of mmu.ts and trap.ts
 * work on it.
 */
export class HState {
  hstatus = 0;
  hedeleg = 0;
  hideleg = 0;
  hcounteren = 0;
  henvcfg = 0;
  htimedeltaLo = 0;
  htimedeltaHi = 0;
  vsstatus = 0;
  vsatpMode = SATP_MODE_BARE;
  vsatpPpn = 0;
  hgatpMode = SATP_MODE_BARE;
  hgatpPpn = 0;

  /** Guest-physical address of the last G-stage fault (for htval/mtval2). */
  lastFaultGpa = 0;
  /** The last fault came from an implicit VS-stage page-table access. */
  lastFaultImplicit = false;
  lastFaultImplicitWrite = false;
  /** Set while an HLV/HLVX/HSV executes, so its faults set GVA. */
  hlvActive = false;
  /** The access type of the translation in progress (for implicit-access faults). */
  curAccess = 0;
  readonly gRes = new WalkResult();
  /** The VS-stage walk's PTE translator (G-stage): set by the Hart (mmu.ts GuestPtes). */
  ptes: PteTranslator | undefined;

  /**
   * A G-stage TLB (GPA page -> HPA page) per access type, like the nested-TLB caches of
   * EPT hardware: without it every VS-stage PTE read would walk the G-stage again.
   * Flushed with the hart's TLBs (hgatp writes, HFENCE.GVMA, mstatus.MXR changes).
   */
  readonly gTag = [
    new Int32Array(G_TLB_SIZE).fill(-1),
    new Int32Array(G_TLB_SIZE).fill(-1),
    new Int32Array(G_TLB_SIZE).fill(-1),
  ];
  readonly gVal = [new Float64Array(G_TLB_SIZE), new Float64Array(G_TLB_SIZE), new Float64Array(G_TLB_SIZE)];

  flushGTlb(): void {
    for (const t of this.gTag) t.fill(-1);
  }
}

/** Names of the H-extension state kept in HState, for snapshots. */
export const H_STATE_KEYS = [
  "hstatus",
  "hedeleg",
  "hideleg",
  "hcounteren",
  "henvcfg",
  "htimedeltaLo",
  "htimedeltaHi",
  "vsstatus",
  "vsatpMode",
  "vsatpPpn",
  "hgatpMode",
  "hgatpPpn",
] as const;

const MISA_LO =
  (1 << 0) | // A
  (1 << 2) | // C
  (1 << 3) | // D
  (1 << 5) | // F
  (1 << 8) | // I
  (1 << 12) | // M
  (1 << 18) | // S
  (1 << 20); // U
const MISA_H = 1 << 7;

export interface CoreOptions {
  ram: GuestRam;
  bus: PhysBus;
  hartId: number;
  code: CodeCache;
  hypervisor: boolean;
}

export class HartCore {
  readonly ram: GuestRam;
  readonly bus: PhysBus;
  readonly hartId: number;
  readonly code: CodeCache;
  readonly fpu: Fpu;
  /** The state buffer (layout: ST_* above), and its WebAssembly.Memory when there is one. */
  readonly state: ArrayBuffer;
  readonly stateMemory: WasmMemory | undefined;
  /** int32 view of `state`. */
  readonly st: Int32Array;
  readonly hasH: boolean;
  /** The `time` CSR in timebase ticks. */
  time: () => number = () => 0;

  // Architectural state. Integer registers are int32 pairs; index 32 is a sink for x0.
  readonly xlo: Int32Array;
  readonly xhi: Int32Array;
  pcLo = 0;
  pcHi = 0;
  /** Current privilege mode (PRV_U, PRV_S, PRV_M); change it with setPriv (selects TLBs). */
  priv = C.PRV_M;
  /** Virtualization mode (H extension); change it with setVirt. */
  virt = false;
  /** Waiting in WFI. */
  wfi = false;

  mstatus = 0; // low word; high word is derived (see mstatusHi)
  mstatusHiBits = 0; // GVA, MPV (H extension)
  misaLo: number;
  medeleg = 0;
  mideleg = 0;
  mie = 0;
  /** Pending bits written by software (SSIP, STIP, SEIP from M, VSSIP ...). */
  mipSw = 0;
  /** Pending bits driven by interrupt lines (MTIP, MSIP, MEIP, SEIP, STIP from the host SBI). */
  mipHw = 0;
  /** mipSw | mipHw, kept up to date by updateMip. */
  mip = 0;
  mcounteren = 0;
  scounteren = 0;
  mcountinhibit = 0;
  menvcfgLo = 0;
  senvcfgLo = 0;
  /** 64-bit CSRs without side effects, stored as pairs by CSR number. */
  readonly csrLo = new Int32Array(4096);
  readonly csrHi = new Int32Array(4096);
  satpMode = SATP_MODE_BARE;
  satpPpn = 0;
  instretBase = 0;
  cycleBase = 0;
  /** Instructions executed (retired or trapped) over the hart's life: the machine's clock. */
  executed = 0;
  /** Synchronous exceptions taken in the current run since the last counter fold. */
  excInRun = 0;
  /** runN at the last counter fold (the counters' bases include everything before it). */
  runRef = 0;
  /** Instructions executed in the current `run` so far, for counter CSRs read mid-run. */
  runN = 0;

  // Reservation (LR/SC)
  resValid = false;
  resLo = 0;
  resHi = 0;

  /** EXIT_M / EXIT_HS: which trap targets the host handles. */
  exitMask = 0;
  /** The host exit a trap became during the current run, or null. */
  exit: HartExit | null = null;
  stopRequested = false;
  /** Decoded word of the load/store now in a slow path (for htinst), or 0. */
  lastW = 0;

  // TLBs: tags are the page-aligned VA (lo word) and the VA's hi word, side by side
  // (TlbSet.rTag); page is the RAM offset. One set of read/write/fetch TLBs per translation context (privilege, V, SUM),
  // so switching between user and kernel, or toggling SUM, flushes nothing.
  readonly tlbSets: TlbSet[] = [];
  rTag!: Int32Array;
  rPage!: TlbPages;
  wTag!: Int32Array;
  wPage!: TlbPages;
  xTag!: Int32Array;
  xPage!: TlbPages;
  /** The sets the fields above come from (data accesses, fetches): their victim ways. */
  dSet!: TlbSet;
  xSet!: TlbSet;
  tlbFlushes = 0;
  /**
   * log2 of the first-stage (satp or vsatp) leaf behind the last `translate` (mmu.ts): 12
   * for a 4 KiB page and for untranslated (bare, M-mode) addresses.
   */
  leafShift = 12;
  /** 1 when that leaf is global (PTE.G), else 0 (untranslated addresses too). */
  leafGlobal = 0;
  /**
   * The superpages (region of the virtual page number * 8 + level) that entries of the
   * TLB sets were cut from since the last full flush; flushTlbPage drops a whole region.
   */
  readonly superRegions = new Set<number>();
  /** The key last added to superRegions (most refills hit the same superpage again). */
  lastSuper = NaN;
  /**
   * Per RAM page: 1 when a write-TLB entry may map it (set on refill, cleared when
   * dropWritePage scans for it). A stale 1 costs one scan; a missing 1 would be a bug.
   */
  readonly wMapped: Uint8Array;

  /** Scratch results of slow paths (no allocation): loads, CSR reads. */
  ldLo = 0;
  ldHi = 0;
  cLo = 0;
  cHi = 0;
  readonly walkRes = new WalkResult();

  readonly stats: HartStats = {
    tlbMisses: 0,
    walks: 0,
    walkRefs: 0,
    traps: 0,
    interrupts: 0,
    mmioReads: 0,
    mmioWrites: 0,
    gWalks: 0,
    gRefs: 0,
    gTlbHits: 0,
  };

  /** The H extension's state, on harts that have it. */
  readonly h: HState | undefined;

  constructor(o: CoreOptions) {
    this.ram = o.ram;
    this.bus = o.bus;
    this.hartId = o.hartId;
    this.code = o.code;
    this.hasH = o.hypervisor;
    this.misaLo = MISA_LO | (o.hypervisor ? MISA_H : 0);
    this.h = o.hypervisor ? new HState() : undefined;
    this.wMapped = new Uint8Array(Math.ceil(o.ram.size / 4096));
    const sm = stateMemory();
    this.state = sm.buffer;
    this.stateMemory = sm.memory;
    this.st = new Int32Array(sm.buffer);
    this.xlo = new Int32Array(sm.buffer, ST_XLO, 33);
    this.xhi = new Int32Array(sm.buffer, ST_XHI, 33);
    this.fpu = new Fpu(sm.buffer, ST_FPR, ST_FCSR);
    for (let i = 0; i < TLB_CONTEXTS; i++) {
      this.tlbSets.push(new TlbSet(o.ram.size, sm.buffer, ST_TLB + i * TLB_SET_BYTES));
    }
    selectTlb(this);
  }
}

// ---------------------------------------------------------------- modes and TLB selection

/**
 * Point the TLB fields at the set for the current translation context: data accesses
 * use the effective privilege (mstatus.MPRV), fetches the real one.
 */
export function selectTlb(c: HartCore): void {
  let dp = c.priv;
  let dv = c.virt;
  const s = c.mstatus;
  if ((s & C.MSTATUS_MPRV) !== 0 && dp === C.PRV_M) {
    dp = (s >>> C.MSTATUS_MPP_SHIFT) & 3;
    dv = dp !== C.PRV_M && (c.mstatusHiBits & C.MSTATUSH_MPV) !== 0;
  }
  const sum = ((dv && c.h !== undefined ? c.h.vsstatus : s) & C.MSTATUS_SUM) !== 0;
  const d = c.tlbSets[tlbContext(dp, dv, sum)]!;
  const x = c.tlbSets[tlbContext(c.priv, c.virt, false)]!;
  c.rTag = d.rTag;
  c.rPage = d.rPage;
  c.wTag = d.wTag;
  c.wPage = d.wPage;
  c.xTag = x.xTag;
  c.xPage = x.xPage;
  c.dSet = d;
  c.xSet = x;
  c.st[ST_DSET >> 2] = d.stOffset;
  c.st[ST_XSET >> 2] = x.stOffset;
}

/**
 * Drop every cached translation, the G-stage TLB included (hgatp writes, HFENCE, the
 * host's Hart.flushTlb, MXR changes, reset). Given an address (its low and high words),
 * drop only that page's translations instead (flushTlbPage: the host's SFENCE.VMA rs1).
 */
export function flushTlb(c: HartCore, lo?: number, hi?: number): void {
  if (lo !== undefined) {
    flushTlbPage(c, lo | 0, (hi ?? 0) | 0);
    return;
  }
  flushStage1(c);
  c.h?.flushGTlb();
}

/**
 * Drop every cached virtual-address translation but keep the G-stage TLB (satp and vsatp
 * writes, SFENCE.VMA without an address): those change or order only first-stage tables.
 */
export function flushStage1(c: HartCore): void {
  for (const t of c.tlbSets) t.flush();
  c.superRegions.clear();
  c.lastSuper = NaN;
  c.tlbFlushes++;
}

/**
 * Drop every first-stage entry that did not come from a global leaf: what a write of
 * satp or vsatp that keeps the translation mode needs (the new address space shares only
 * the global mappings with the old one: privileged spec §4.3.1, PTE.G), and an
 * SFENCE.VMA with an ASID and no address (for every ASID: a superset). The G-stage TLB
 * stays.
 */
export function flushNonGlobal(c: HartCore): void {
  for (const t of c.tlbSets) {
    if (t.globals === 0) {
      t.flush();
      continue;
    }
    keepGlobal(t.rTag, t.rG);
    keepGlobal(t.wTag, t.wG);
    keepGlobal(t.xTag, t.xG);
    keepGlobal(t.vTag, t.vG);
    t.fills = t.globals; // at most that many entries are left
  }
  c.tlbFlushes++;
}

function keepGlobal(tag: Int32Array, g: Uint8Array): void {
  for (let i = 0; i < g.length; i++) if (g[i] === 0) tag[2 * i] = INVALID_TAG;
}

/** Virtual page number of an (hi, lo) address: exact in a double (at most 45 bits with sign). */
function vpnOf(aLo: number, aHi: number): number {
  return aHi * 1048576 + (aLo >>> 12);
}

/**
 * Record that a 4 KiB TLB entry for (aHi, aLo) was cut from a superpage leaf of
 * `c.leafShift` (a megapage or larger), so that an address-specific SFENCE.VMA anywhere in
 * that superpage drops all of its pieces, as it would drop a hardware superpage entry.
 */
export function noteSuperpage(c: HartCore, aLo: number, aHi: number): void {
  const level = (c.leafShift - 12) / 9;
  const key = Math.floor(vpnOf(aLo, aHi) / 2 ** (c.leafShift - 12)) * 8 + level;
  if (key === c.lastSuper) return;
  // A guest that never fences everything would grow the record without bound: past
  // SUPER_REGIONS_MAX, start again from an empty TLB (flushing more is always allowed).
  if (c.superRegions.size >= SUPER_REGIONS_MAX && !c.superRegions.has(key)) flushStage1(c);
  c.lastSuper = key;
  c.superRegions.add(key);
}

/** Superpages recorded at most (16 GiB of 2 MiB pages is 8192). */
export const SUPER_REGIONS_MAX = 16384;

/** Superpage levels (1: 2 MiB ... 4: 256 TiB) an address-specific fence may cover. */
const SUPER_LEVELS = 4;

/**
 * SFENCE.VMA with an address: drop the translations of that virtual page from every TLB
 * set (of every privilege, SUM and V context, and any ASID: a superset of what the fence
 * requires), and, when the page lies in a superpage some entries were cut from, every
 * entry of that superpage. The G-stage TLB is untouched (SFENCE.VMA does not order
 * G-stage tables).
 */
export function flushTlbPage(c: HartCore, aLo: number, aHi: number): void {
  const vpn = vpnOf(aLo, aHi);
  if (c.superRegions.size !== 0) {
    for (let level = 1; level <= SUPER_LEVELS; level++) {
      const span = 2 ** (9 * level);
      const region = Math.floor(vpn / span);
      const key = region * 8 + level;
      if (c.superRegions.delete(key)) dropRegion(c, region, span);
    }
    c.lastSuper = NaN;
  }
  const ti = (aLo >>> 12) & TLB_MASK;
  const tag = aLo & ~0xfff;
  for (const t of c.tlbSets) {
    if (t.fills === 0) continue;
    const k = 2 * ti;
    if (t.rTag[k] === tag && t.rTag[k + 1] === aHi) t.rTag[k] = INVALID_TAG;
    if (t.wTag[k] === tag && t.wTag[k + 1] === aHi) t.wTag[k] = INVALID_TAG;
    if (t.xTag[k] === tag && t.xTag[k + 1] === aHi) t.xTag[k] = INVALID_TAG;
    const v = t.vTag;
    for (let j = k; j < 2 * 3 * TLB_SIZE; j += 2 * TLB_SIZE) {
      if (v[j] === tag && v[j + 1] === aHi) v[j] = INVALID_TAG;
    }
  }
}

/** Drop every entry whose virtual page number lies in [region * span, (region + 1) * span). */
function dropRegion(c: HartCore, region: number, span: number): void {
  for (const t of c.tlbSets) {
    if (t.fills === 0) continue;
    dropRegionIn(t.rTag, region, span);
    dropRegionIn(t.wTag, region, span);
    dropRegionIn(t.xTag, region, span);
    dropRegionIn(t.vTag, region, span);
  }
}

function dropRegionIn(tag: Int32Array, region: number, span: number): void {
  for (let i = 0; i < tag.length; i += 2) {
    const lo = tag[i]!;
    if (lo !== INVALID_TAG && Math.floor(vpnOf(lo, tag[i + 1]!) / span) === region) tag[i] = INVALID_TAG;
  }
}

/** Note that a write-TLB entry maps the RAM page at `pageOff` (see dropWritePage). */
export function noteWritePage(c: HartCore, pageOff: number): void {
  c.wMapped[pageOff / 4096] = 1;
}

/**
 * Drop write-TLB entries (in every set) that map a page now holding decoded instructions.
 * Only pages some write entry was installed for since the last scan are scanned for
 * (`wMapped`): a loader writing thousands of fresh code pages scans nothing.
 */
export function dropWritePage(c: HartCore, pageOff: number): void {
  const i = Math.floor(pageOff / 4096);
  if (c.wMapped[i] === 0) return;
  c.wMapped[i] = 0;
  for (const t of c.tlbSets) {
    if (t.fills === 0) continue;
    const wp = t.wPage;
    const wt = t.wTag;
    for (let j = 0; j < TLB_SIZE; j++) if (wp[j] === pageOff) wt[2 * j] = INVALID_TAG;
    const vp = t.vPage;
    const vt = t.vTag;
    for (let j = V_W; j < V_W + TLB_SIZE; j++) if (vp[j] === pageOff) vt[2 * j] = INVALID_TAG;
  }
}

export function setPriv(c: HartCore, p: number): void {
  if (p !== c.priv) {
    c.priv = p;
    selectTlb(c);
  }
}

export function setVirt(c: HartCore, v: boolean): void {
  if (v !== c.virt) {
    c.virt = v;
    selectTlb(c);
  }
}

// ---------------------------------------------------------------- interrupts pending

/** Recompute mip from its software- and line-driven halves. */
export function updateMip(c: HartCore): void {
  c.mip = c.mipSw | c.mipHw;
}

/** True when WFI would not wait: an interrupt is pending and enabled in mie (globally enabled or not). */
export function interruptPending(c: HartCore): boolean {
  return (c.mip & c.mie) !== 0;
}

// ---------------------------------------------------------------- status helpers

export function mstatusHi(c: HartCore): number {
  const fs = (c.mstatus & C.MSTATUS_FS) === C.MSTATUS_FS;
  return 0xa | c.mstatusHiBits | (fs ? C.MSTATUSH_SD : 0) | 0;
}

/** FP loads and stores may skip the FS checks: the FPU is on and already Dirty. */
export function fpFast(c: HartCore): boolean {
  if ((c.mstatus & C.MSTATUS_FS) !== C.MSTATUS_FS) return false;
  return !c.virt || c.h === undefined || (c.h.vsstatus & C.MSTATUS_FS) === C.MSTATUS_FS;
}

export function fsOff(c: HartCore): boolean {
  if ((c.mstatus & C.MSTATUS_FS) === 0) return true;
  return c.virt && c.h !== undefined && (c.h.vsstatus & C.MSTATUS_FS) === 0;
}

export function fsDirty(c: HartCore): void {
  c.mstatus |= C.MSTATUS_FS;
  if (c.virt && c.h !== undefined) c.h.vsstatus |= C.MSTATUS_FS;
}

// ---------------------------------------------------------------- counters

/** mcountinhibit bits (privileged spec §3.1.13). */
const MCOUNTINHIBIT_CY = 1;
const MCOUNTINHIBIT_IR = 4;

/**
 * minstret: instructions retired before the current one. Inside `run`, runN counts the
 * current instruction too, hence the -1; instructions that took an exception did not
 * retire; mcountinhibit.IR freezes the count. A write to minstret sets the value the
 * next instruction reads (the writing instruction's own increment is suppressed).
 */
export function instret(c: HartCore): number {
  if ((c.mcountinhibit & MCOUNTINHIBIT_IR) !== 0 || c.runN === 0) return c.instretBase;
  return c.instretBase + Math.max(0, c.runN - 1 - c.runRef - c.excInRun);
}

/** mcycle: one cycle per instruction executed, trapped ones included (mcountinhibit.CY freezes it). */
export function cycles(c: HartCore): number {
  if ((c.mcountinhibit & MCOUNTINHIBIT_CY) !== 0 || c.runN === 0) return c.cycleBase;
  return c.cycleBase + Math.max(0, c.runN - 1 - c.runRef);
}

/** Instructions executed so far, for a clock that follows the guest's progress. */
export function executedCount(c: HartCore): number {
  return c.executed + c.runN;
}

/** Fold the current run's progress into the counter bases (before changing how they count). */
export function foldCounters(c: HartCore, suppressCurrent: boolean): void {
  c.instretBase = instret(c);
  c.cycleBase = cycles(c);
  c.excInRun = 0;
  c.runRef = c.runN > 0 ? c.runN - (suppressCurrent ? 0 : 1) : 0;
}
