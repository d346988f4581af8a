/**
 * Shadow paging, as KVM's shadow MMU does it when there is no EPT: the guest runs in
 * VS-mode with hgatp bare, and the hart's vsatp points at a *shadow* page table that maps
 * guest-virtual pages straight to host-physical ones. The hypervisor builds it lazily
 * from the guest's own tables:
 *
 * - a page fault exits (page faults are not delegated to the guest); the hypervisor walks
 *   the guest's table with the guest's permissions. A guest fault is injected back into
 *   the guest; otherwise the page is "filled" into the shadow table, with the guest's
 *   permissions, and the guest PTE's A (and D, for a write) bits are set as hardware
 *   would. A clean page is shadowed read-only so its first write exits and sets D.
 * - pages that are not guest RAM (devices) are never shadowed: accessing them exits and
 *   is emulated as MMIO (nothing there: the guest gets an access fault).
 * - the guest's tables are untrusted: every PTE address the walk reads and every leaf's
 *   page is checked against guest RAM (the `GuestMemory`) before it is used; a PTE
 *   outside guest RAM is an access fault for the guest. The shadow tables are written
 *   only through the pool's `HvRegion`, which accepts table pointers into the pool and
 *   leaves onto guest RAM, nothing else.
 * - the guest's satp reads/writes and sfence.vma trap (hstatus.VTVM): a satp write
 *   switches to the shadow for that root (cached per satp value), an sfence.vma drops the
 *   shadow entries it covers ("sync"): with an address, that page's in every root, or all
 *   the pages of the guest superpage it lies in when some shadow leaves were cut from one
 *   (the shadow maps 4 KiB pages only); with only an ASID, the roots of that ASID; with
 *   neither, everything.
 *
 * Shadow tables live in the hypervisor's memory after guest RAM, which no device or
 * hypercall can reach; when the pool runs out every shadow is dropped and rebuilt on demand.
 */
import { csr as C, type FaultAccess, type Hart, type PageFaultExit, type TrapExit } from "@visor/cpu";
import {
  ACCESS_EXEC,
  ACCESS_READ,
  ACCESS_WRITE,
  type Access,
  type Gpa,
  type GuestMemory,
  type GuestRam,
  gpa,
  type Hpa,
  type HvRegion,
  hpa,
  PTE_A,
  PTE_D,
  PTE_R,
  PTE_U,
  PTE_V,
  PTE_W,
  PTE_X,
  type PteTranslator,
  SATP_MODE_BARE,
  SATP_MODE_SV39,
  SATP_MODE_SV48,
  SATP_MODE_SV57,
  WalkResult,
  walkStage1,
} from "@visor/memory";
import type { PageAllocator } from "./gstage.ts";

/** satp's MODE (bits 63:60) and ASID (bits 59:44) fields (privileged spec §4.1.11). */
const SATP_MODE_SHIFT = 60n;
const SATP_ASID_SHIFT = 44n;

export interface ShadowStats {
  fills: number;
  syncs: number;
  flushes: number;
  satpSwitches: number;
  injectedFaults: number;
  poolResets: number;
}

export interface ShadowState {
  /** The guest's own satp as (lo, hi). */
  satp: [number, number];
  /** The shadow roots, as [guest satp key, root address, mode]; the tables are in RAM. */
  roots: [string, number, number][];
  /**
   * The guest superpages shadow leaves were cut from (ShadowMmu.superpages). Absent in
   * older snapshots: then every address-specific sfence.vma drops everything until the
   * next full flush.
   */
  superpages?: number[];
}

/** The memory a shadow MMU works on: no more than this (not the machine). */
export interface ShadowMemory {
  /** Guest RAM: every guest PTE and every page it maps is checked against it. */
  readonly memory: GuestMemory;
  /** The harts' physical memory, which the walk of the guest's tables reads. */
  readonly ram: GuestRam;
  /** The hypervisor's page pool the shadow tables are allocated from. */
  readonly pool: PageAllocator;
}

/** What the shadow MMU asks of the vCPU whose exit it handles (Vcpu implements it). */
export interface ShadowVcpu {
  /** Deliver an exception to the guest kernel's own trap handler (a VS-mode trap). */
  injectGuestTrap(cause: number, tval: bigint): void;
  /** Emulate a guest load or store to a guest-physical address outside guest RAM. */
  mmioExit(e: TrapExit, access: FaultAccess, gpa: number, insn: number): string;
}

export class ShadowMmu implements PteTranslator {
  private readonly ram: GuestRam;
  private readonly hart: Hart;
  private readonly pool: PageAllocator;
  private readonly region: HvRegion;
  private readonly guest: GuestMemory;
  /** Shadow roots by guest satp value (as "hi:lo"). */
  private roots = new Map<string, { root: Hpa; mode: number }>();
  /**
   * The guest superpages (region of the virtual page number * 8 + level: 1 for 2 MiB, 2
   * for 1 GiB ...) some 4 KiB shadow leaves were cut from since the shadows were last all
   * dropped, or undefined when not known (restored from a snapshot without them).
   */
  private superpages: Set<number> | undefined = new Set();
  /** The access being resolved (translatePte reports an access fault of this type). */
  private access: Access = ACCESS_READ;
  /** The guest's own satp. */
  private satpLo = 0;
  private satpHi = 0;
  private readonly res = new WalkResult();
  readonly stats: ShadowStats = {
    fills: 0,
    syncs: 0,
    flushes: 0,
    satpSwitches: 0,
    injectedFaults: 0,
    poolResets: 0,
  };

  constructor(mem: ShadowMemory, hart: Hart) {
    this.hart = hart;
    this.ram = mem.ram;
    this.guest = mem.memory;
    this.pool = mem.pool;
    this.region = mem.pool.region;
  }

  /**
   * The guest's satp and where its shadows are. The shadow tables themselves live in the
   * hypervisor's pages after guest RAM, which a snapshot stores with the rest of RAM, so a
   * restored machine goes on with the same shadows and takes the same exits.
   */
  toState(): ShadowState {
    return {
      satp: [this.satpLo, this.satpHi],
      roots: [...this.roots].map(([k, r]) => [k, r.root, r.mode]),
      ...(this.superpages !== undefined ? { superpages: [...this.superpages] } : {}),
    };
  }

  fromState(state: unknown): void {
    const s = state as ShadowState;
    if (s === null || typeof s !== "object" || !Array.isArray(s.satp) || !Array.isArray(s.roots)) {
      throw new Error("shadow state: malformed");
    }
    this.roots.clear();
    for (const e of s.roots) {
      if (
        !Array.isArray(e) ||
        typeof e[0] !== "string" ||
        !Number.isSafeInteger(e[1]) ||
        e[1] % PAGE !== 0 ||
        !this.region.contains(hpa(e[1]), PAGE) ||
        !SHADOW_MODES.includes(e[2])
      ) {
        throw new Error("shadow state: malformed root (not a page of the hypervisor's pool)");
      }
      this.roots.set(e[0], { root: hpa(e[1]), mode: e[2] });
    }
    const sp = s.superpages;
    if (sp !== undefined && (!Array.isArray(sp) || !sp.every((k) => Number.isSafeInteger(k)))) {
      throw new Error("shadow state: malformed superpages (not a list of integers)");
    }
    this.superpages = sp === undefined ? undefined : new Set(sp);
    this.satpLo = s.satp[0] | 0;
    this.satpHi = s.satp[1] | 0;
    // The tables came with the snapshot's RAM: trust none of them.
    try {
      for (const r of this.roots.values()) this.verify(r.root, levelsOf(r.mode) - 1);
    } catch (e) {
      throw new Error(`shadow state: ${(e as Error).message}`);
    }
  }

  /**
   * Check a shadow table and everything under it: pointers lead to pool pages, leaves map
   * guest RAM (HvRegion.nextTable and leafPage throw otherwise). The hart walks these
   * tables, so a restored snapshot must not bring in one that points elsewhere.
   */
  private verify(table: Hpa, level: number): void {
    for (let i = 0; i < ENTRIES; i++) {
      const at = hpa(table + i * PTE_BYTES);
      if ((this.region.entryFlags(at) & PTE_V) === 0) continue;
      if (level === 0) {
        this.region.leafPage(at);
        continue;
      }
      const next = this.region.nextTable(at);
      if (next !== undefined) this.verify(next, level - 1);
    }
  }

  /** The pool's epoch the shadows were built in (PageAllocator.epoch). */
  private epoch = 0;

  /**
   * Before the vCPU runs again: if another vCPU reset the shared pool since, this vCPU's
   * shadow tables may have been reused, so drop them and shadow the current satp anew.
   */
  resume(): void {
    if (this.epoch === this.pool.epoch) return;
    this.epoch = this.pool.epoch;
    this.dropRoots();
    this.activate();
    this.stats.flushes++;
  }

  /** Forget every shadow root (their pages stay allocated until the pool is reset). */
  private dropRoots(): void {
    this.roots.clear();
    this.superpages = new Set();
  }

  /**
   * A remote sfence.vma from another hart (SBI RFENCE): the guest changed page tables this
   * vCPU may have shadowed, so its shadows go.
   */
  flushAll(): void {
    this.dropRoots();
    this.activate();
    this.stats.flushes++;
  }

  /** Enter the guest with satp = bare: shadow the identity map of guest-physical memory. */
  enter(): void {
    this.epoch = this.pool.epoch;
    this.satpLo = 0;
    this.satpHi = 0;
    this.activate();
  }

  private key(): string {
    return `${this.satpHi}:${this.satpLo}`;
  }

  private guestMode(): number {
    return this.satpHi >>> 28;
  }

  /** Point vsatp at the shadow for the current guest satp. */
  private activate(): void {
    let s = this.roots.get(this.key());
    if (s === undefined) {
      const root = this.allocPage();
      const gm = this.guestMode();
      s = { root, mode: gm === SATP_MODE_BARE ? SATP_MODE_SV39 : gm };
      this.roots.set(this.key(), s);
    }
    const ppn = s.root / 4096;
    const asid = (this.satpHi >>> 12) & 0xffff;
    // A vsatp write flushes the hart's TLBs.
    this.hart.setCsr(
      C.CSR_VSATP,
      (BigInt(s.mode) << SATP_MODE_SHIFT) | (BigInt(asid) << SATP_ASID_SHIFT) | BigInt(ppn),
    );
  }

  private allocPage(): Hpa {
    let p = this.pool.alloc();
    if (p === undefined) {
      // Out of shadow memory: drop every shadow and start again.
      this.stats.poolResets++;
      this.dropRoots();
      this.pool.reset();
      this.epoch = this.pool.epoch;
      p = this.pool.alloc();
      if (p === undefined) throw new Error("shadow page pool too small");
    }
    return p;
  }

  /**
   * PteTranslator for walking the guest's tables: a guest PTE must lie in guest RAM,
   * anything else (MMIO, the hypervisor's pool, beyond 2^53) is an access fault of the
   * access being resolved (privileged spec §4.3.2 step 2).
   */
  translatePte(pteGpa: number, _write: boolean, _res: WalkResult): number {
    const a = gpa(pteGpa);
    if (!this.guest.contains(a, PTE_BYTES)) return -ACCESS_FAULT[this.access];
    return this.guest.hostAddress(a, PTE_BYTES);
  }

  /** A page-fault exit from the guest. */
  pageFault(e: PageFaultExit, vcpu: ShadowVcpu): string {
    const h = this.hart;
    const cause = e.cause;
    const aLo = Number(BigInt.asIntN(32, e.addr));
    const aHi = Number(BigInt.asIntN(32, e.addr >> 32n));
    const access: Access =
      e.access === "fetch" ? ACCESS_EXEC : e.access === "store" ? ACCESS_WRITE : ACCESS_READ;
    this.access = access;
    const ram = this.ram;
    let gpaPage: number;
    let perm: number;
    const mode = this.guestMode();
    if (mode === SATP_MODE_BARE) {
      if (aHi >>> 24 !== 0) return this.inject(vcpu, cause, e.addr);
      gpaPage = aHi * 2 ** 32 + ((aLo & ~0xfff) >>> 0);
      perm = PTE_R | PTE_W | PTE_X | PTE_A | PTE_D;
      if (h.priv === C.PRV_U) return this.inject(vcpu, cause, e.addr); // no U mappings in bare mode
    } else {
      const rootPpn = (this.satpHi & 0xfff) * 2 ** 32 + (this.satpLo >>> 0);
      const vs = Number(BigInt.asIntN(32, h.getCsr(C.CSR_VSSTATUS)));
      const ms = Number(BigInt.asIntN(32, h.getCsr(C.CSR_MSTATUS)));
      const r = walkStage1(
        ram,
        mode,
        rootPpn,
        aHi,
        aLo,
        access,
        h.priv === C.PRV_U,
        (vs & C.MSTATUS_SUM) !== 0,
        ((vs | ms) & C.MSTATUS_MXR) !== 0,
        this.res,
        this,
      );
      // A fault in the guest's own tables (a page fault, or an access fault for a PTE
      // outside guest RAM): the guest handles it.
      if (r !== 0) return this.inject(vcpu, r, e.addr);
      gpaPage = this.res.pagePa;
      perm = this.res.perm;
      if (this.res.pageShift > 12) this.noteSuperpage(aLo, aHi, (this.res.pageShift - 12) / 9);
    }
    const off = aLo & 0xfff;
    if (this.guest.contains(gpa(gpaPage), PAGE)) {
      // Fill: shadow the page with the guest's permissions; writable only once dirty.
      let flags = PTE_V | PTE_A | (perm & (PTE_R | PTE_X | PTE_U));
      if ((perm & PTE_W) !== 0 && (perm & PTE_D) !== 0) flags |= PTE_W | PTE_D;
      const table = this.map(aLo, aHi, gpa(gpaPage), flags);
      if (mode !== SATP_MODE_BARE && this.res.pageShift > 12) this.prefetch(aLo, aHi, gpaPage, flags, table);
      this.stats.fills++;
      return "shadow fill";
    }
    // Not RAM: a device. Emulate the access (never shadowed, so every access exits).
    // Nothing to execute outside guest RAM: an instruction access fault for the guest.
    if (access === ACCESS_EXEC) return this.inject(vcpu, C.CAUSE_FETCH_ACCESS, e.addr);
    return vcpu.mmioExit(e, e.access, gpaPage + off, e.insn);
  }

  /** Deliver a page or access fault to the guest's own handler (VS-mode trap). */
  private inject(vcpu: ShadowVcpu, cause: number, addr: bigint): string {
    vcpu.injectGuestTrap(cause, addr);
    this.stats.injectedFaults++;
    return "shadow: page fault injected";
  }

  /** Map one 4 KiB guest page in the active shadow table; returns the last-level table it is in. */
  private map(aLo: number, aHi: number, page: Gpa, flags: number): Hpa {
    const s = this.roots.get(this.key())!;
    const region = this.region;
    const levels = levelsOf(s.mode);
    let table = s.root;
    for (let i = levels - 1; i > 0; i--) {
      const at = hpa(table + vpn(aHi, aLo, i) * PTE_BYTES);
      const next = region.nextTable(at);
      if (next !== undefined) {
        table = next;
        continue;
      }
      const before = this.roots.size;
      const fresh = this.allocPage();
      if (this.roots.size !== before || !this.roots.has(this.key())) {
        // The pool was reset under us: rebuild the active root and retry.
        this.activate();
        return this.map(aLo, aHi, page, flags);
      }
      region.setTable(at, fresh);
      table = fresh;
    }
    region.setLeaf(hpa(table + vpn(aHi, aLo, 0) * PTE_BYTES), page, PAGE, flags);
    return table;
  }

  /**
   * A fill from a guest superpage: also shadow the neighbouring 4 KiB pieces of the same
   * leaf (the aligned group of PREFETCH around the page, all in `table`), as KVM's shadow
   * MMU prefetches. Each is what a fault there would fill: the same guest leaf, whose A
   * bit the walk just set, with the same permissions (writable only if already dirty).
   * Pieces already shadowed or outside guest RAM are left alone.
   */
  private prefetch(aLo: number, aHi: number, page: number, flags: number, table: Hpa): void {
    const region = this.region;
    const own = vpn(aHi, aLo, 0);
    const first = own & ~(PREFETCH - 1);
    for (let i = first; i < first + PREFETCH; i++) {
      if (i === own) continue;
      const at = hpa(table + i * PTE_BYTES);
      if ((region.entryFlags(at) & PTE_V) !== 0) continue;
      const piece = gpa(page + (i - own) * PAGE);
      if (!this.guest.contains(piece, PAGE)) continue;
      region.setLeaf(at, piece, PAGE, flags);
    }
  }

  /** Record that a 4 KiB shadow leaf at (aHi, aLo) was cut from a guest superpage of `level`. */
  private noteSuperpage(aLo: number, aHi: number, level: number): void {
    // Bounded by the pool: each superpage recorded holds a shadow table of its own, and
    // the record starts again whenever the pool is reset.
    this.superpages?.add(superpageKey(aLo, aHi, level));
  }

  /**
   * sfence.vma with an address: drop what the shadows hold of the guest page there, or of
   * the largest guest superpage around it that shadow leaves were cut from. False when
   * that cannot be done piecemeal (superpages not known, or a root with fewer levels than
   * the superpage): the caller drops everything.
   */
  private fencePage(aLo: number, aHi: number): boolean {
    const sp = this.superpages;
    if (sp === undefined) return false;
    let level = 0;
    for (let l = MAX_SUPERPAGE_LEVEL; l >= 1 && level === 0; l--) {
      if (sp.has(superpageKey(aLo, aHi, l))) level = l;
    }
    for (const s of this.roots.values()) if (levelsOf(s.mode) <= level) return false;
    this.unmapEverywhere(aLo, aHi, level);
    if (level === 0) {
      this.hart.flushTlb(aLo, aHi);
      return true;
    }
    for (let l = 1; l <= level; l++) sp.delete(superpageKey(aLo, aHi, l));
    // The hart's TLB holds the superpage as separate 4 KiB entries of the shadow: all go.
    this.hart.flushTlb();
    return true;
  }

  /**
   * Drop the shadow entries under the page (level 0) or superpage (level 1: 2 MiB, 2:
   * 1 GiB ...) at the address in every shadow root: the leaf, or the table pointer that
   * covers the superpage (its tables stay allocated until the pool is reset).
   */
  private unmapEverywhere(aLo: number, aHi: number, level: number): void {
    const region = this.region;
    for (const s of this.roots.values()) {
      let table = s.root;
      for (let i = levelsOf(s.mode) - 1; i >= level; i--) {
        const at = hpa(table + vpn(aHi, aLo, i) * PTE_BYTES);
        if (i === level) {
          if ((region.entryFlags(at) & PTE_V) !== 0) region.clear(at);
          break;
        }
        const next = region.nextTable(at);
        if (next === undefined) break;
        table = next;
      }
    }
  }

  /** sfence.vma with only an ASID: drop the shadow roots of guest address spaces with that ASID. */
  private fenceAsid(asid: number): void {
    const current = this.key();
    let dropped = false;
    for (const k of [...this.roots.keys()]) {
      if (((Number(k.slice(0, k.indexOf(":"))) >>> 12) & 0xffff) !== asid) continue;
      this.roots.delete(k);
      if (k === current) dropped = true;
    }
    // The hart's TLB holds the current root's entries only (a vsatp write drops the
    // others: shadow leaves are never global): a new root for it means a vsatp write.
    if (dropped) this.activate();
  }

  /** The shadow roots (for audits: the MMU fuzzer walks them). */
  shadowRoots(): { root: Hpa; mode: number }[] {
    return [...this.roots.values()];
  }

  /** A virtual-instruction exit: satp accesses and sfence.vma (hstatus.VTVM). */
  virtualInstruction(insn: number, _vcpu: ShadowVcpu): string | undefined {
    const h = this.hart;
    const opcode = insn & 0x7f;
    const f3 = (insn >>> 12) & 7;
    const rd = (insn >>> 7) & 0x1f;
    const rs1 = (insn >>> 15) & 0x1f;
    if (opcode !== 0x73) return undefined;
    if (f3 === 0 && insn >>> 25 === 0x09 && rd === 0) {
      const rs2 = (insn >>> 20) & 0x1f;
      // An address (with or without an ASID: every ASID is a superset), or only an ASID.
      let done = false;
      if (rs1 !== 0) done = this.fencePage(h.xLo(rs1), h.xHi(rs1));
      else if (rs2 !== 0) {
        this.fenceAsid(h.xLo(rs2) & 0xffff);
        done = true;
      }
      if (!done) {
        // The whole address space: drop the shadows.
        this.dropRoots();
        this.pool.reset();
        this.epoch = this.pool.epoch;
        this.activate();
        this.stats.flushes++;
        h.flushTlb();
      }
      this.stats.syncs++;
      h.advancePc(4);
      return "shadow sync: sfence.vma";
    }
    if (f3 !== 0 && f3 !== 4 && insn >>> 20 === C.CSR_SATP) {
      const srcLo = f3 >= 5 ? rs1 : h.xLo(rs1);
      const srcHi = f3 >= 5 ? 0 : h.xHi(rs1);
      const oldLo = this.satpLo;
      const oldHi = this.satpHi;
      const op = f3 & 3;
      let nLo = srcLo;
      let nHi = srcHi;
      if (op === 2) {
        nLo = oldLo | srcLo;
        nHi = oldHi | srcHi;
      } else if (op === 3) {
        nLo = oldLo & ~srcLo;
        nHi = oldHi & ~srcHi;
      }
      const writes = op === 1 || rs1 !== 0;
      if (writes) {
        const mode = nHi >>> 28;
        if (mode === 0 || mode === 8 || mode === 9 || mode === 10) {
          this.satpLo = nLo;
          this.satpHi = nHi;
          this.activate();
          this.stats.satpSwitches++;
        }
      }
      h.setXPair(rd, oldLo, oldHi);
      h.advancePc(4);
      return writes ? "shadow: satp write" : "shadow: satp read";
    }
    return undefined;
  }
}

const PAGE = 4096;
const PTE_BYTES = 8;
const ENTRIES = 512;
const SHADOW_MODES: readonly number[] = [SATP_MODE_SV39, SATP_MODE_SV48, SATP_MODE_SV57];
/** Access-fault causes by access type (privileged spec table 3.6). */
const ACCESS_FAULT = [C.CAUSE_LOAD_ACCESS, C.CAUSE_STORE_ACCESS, C.CAUSE_FETCH_ACCESS] as const;

/** Pieces of a guest superpage shadowed per fill (an aligned group: 64 KiB). */
const PREFETCH = 16;

/** The largest superpage level (Sv57: 256 TiB pages). */
const MAX_SUPERPAGE_LEVEL = 4;

/** Key of the guest superpage of `level` around (aHi, aLo): region of the page number * 8 + level. */
function superpageKey(aLo: number, aHi: number, level: number): number {
  const vpnAll = aHi * 1048576 + (aLo >>> 12);
  return Math.floor(vpnAll / 2 ** (9 * level)) * 8 + level;
}

function levelsOf(mode: number): number {
  return mode === SATP_MODE_SV39 ? 3 : mode === SATP_MODE_SV48 ? 4 : 5;
}

function vpn(aHi: number, aLo: number, i: number): number {
  switch (i) {
    case 0:
      return (aLo >>> 12) & 0x1ff;
    case 1:
      return (aLo >>> 21) & 0x1ff;
    case 2:
      return ((aLo >>> 30) | (aHi << 2)) & 0x1ff;
    case 3:
      return (aHi >>> 7) & 0x1ff;
    default:
      return (aHi >>> 16) & 0x1ff;
  }
}
