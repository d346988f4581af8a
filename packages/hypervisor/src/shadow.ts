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
 *   is emulated as MMIO.
 * - the guest's satp reads/writes and sfence.vma trap (hstatus.VTVM): a satp write
 *   switches to the shadow for that root (cached per satp value), an sfence.vma drops the
 *   shadow entries it covers ("sync").
 *
 * Shadow tables live in the hypervisor's memory after guest RAM; when the pool runs out
 * every shadow is dropped and rebuilt on demand.
 */
import { csr as C, type Hart, type PageFaultExit } from "@visor/cpu";
import {
  ACCESS_EXEC,
  ACCESS_READ,
  ACCESS_WRITE,
  type Access,
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
  WalkResult,
  walkStage1,
} from "@visor/memory";
import { type PageAllocator, writePte } from "./gstage.ts";
import type { Machine } from "./machine.ts";
import { GuestError } from "./machine.ts";
import { describe, type Vcpu } from "./vcpu.ts";

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
}

export class ShadowMmu implements PteTranslator {
  private readonly machine: Machine;
  private readonly hart: Hart;
  private readonly pool: PageAllocator;
  private readonly guestEnd: number;
  /** Shadow roots by guest satp value (as "hi:lo"). */
  private roots = new Map<string, { root: number; mode: number }>();
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

  private readonly vcpu: Vcpu;

  constructor(machine: Machine, vcpu: Vcpu, hart: Hart) {
    this.machine = machine;
    this.vcpu = vcpu;
    this.hart = hart;
    this.guestEnd = machine.guestRamEnd;
    this.pool = machine.hvPool;
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
        !Number.isInteger(e[2])
      ) {
        throw new Error("shadow state: malformed root");
      }
      this.roots.set(e[0], { root: e[1], mode: e[2] });
    }
    this.satpLo = s.satp[0] | 0;
    this.satpHi = s.satp[1] | 0;
  }

  /** Enter the guest with satp = bare: shadow the identity map of guest-physical memory. */
  enter(): void {
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

  private allocPage(): number {
    let p = this.pool.alloc(this.machine.ram);
    if (p < 0) {
      // Out of shadow memory: drop every shadow and start again.
      this.stats.poolResets++;
      this.roots.clear();
      this.pool.reset();
      p = this.pool.alloc(this.machine.ram);
      if (p < 0) throw new Error("shadow page pool too small");
    }
    return p;
  }

  /** PteTranslator for walking the guest's tables: guest PTEs must be in guest RAM. */
  translatePte(gpa: number, _write: boolean, _res: WalkResult): number {
    const ram = this.machine.ram;
    if (gpa < ram.base || gpa + 8 > this.guestEnd) return -C.CAUSE_LOAD_ACCESS;
    return gpa;
  }

  /** A page-fault exit from the guest. */
  pageFault(e: PageFaultExit, vcpu: Vcpu): string {
    const h = this.hart;
    const cause = e.cause;
    const aLo = Number(BigInt.asIntN(32, e.addr));
    const aHi = Number(BigInt.asIntN(32, e.addr >> 32n));
    const access: Access =
      e.access === "fetch" ? ACCESS_EXEC : e.access === "store" ? ACCESS_WRITE : ACCESS_READ;
    const ram = this.machine.ram;
    let gpaPage: number;
    let perm: number;
    const mode = this.guestMode();
    if (mode === SATP_MODE_BARE) {
      if (aHi >>> 24 !== 0) return this.inject(cause, e.addr);
      gpaPage = aHi * 2 ** 32 + ((aLo & ~0xfff) >>> 0);
      perm = PTE_R | PTE_W | PTE_X | PTE_A | PTE_D;
      if (h.priv === C.PRV_U) return this.inject(cause, e.addr); // no U mappings in bare mode
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
      if (r !== 0) {
        // A fault in the guest's own tables: the guest handles it.
        if (r === C.CAUSE_LOAD_ACCESS) {
          throw new GuestError(`guest page table outside guest RAM: ${describe(h, e)}`);
        }
        return this.inject(r, e.addr);
      }
      gpaPage = this.res.pagePa;
      perm = this.res.perm;
    }
    const off = aLo & 0xfff;
    if (gpaPage >= ram.base && gpaPage + 4096 <= this.guestEnd) {
      // Fill: shadow the page with the guest's permissions; writable only once dirty.
      let flags = PTE_V | PTE_A | (perm & (PTE_R | PTE_X | PTE_U));
      if ((perm & PTE_W) !== 0 && (perm & PTE_D) !== 0) flags |= PTE_W | PTE_D;
      this.map(aLo, aHi, gpaPage, flags);
      this.stats.fills++;
      return "shadow fill";
    }
    // Not RAM: a device. Emulate the access (never shadowed, so every access exits).
    if (access === ACCESS_EXEC) throw new GuestError(`guest executed from a device page: ${describe(h, e)}`);
    return vcpu.mmioExit(e, e.access, gpaPage + off, e.insn);
  }

  /** Deliver a page fault to the guest's own handler (VS-mode trap). */
  private inject(cause: number, addr: bigint): string {
    this.vcpu.injectGuestTrap(cause, addr);
    this.stats.injectedFaults++;
    return "shadow: page fault injected";
  }

  /** Map one 4 KiB page in the active shadow table. */
  private map(aLo: number, aHi: number, pa: number, flags: number): void {
    const s = this.roots.get(this.key())!;
    const ram = this.machine.ram;
    const dv = ram.dv;
    const levels = s.mode === SATP_MODE_SV39 ? 3 : s.mode === 9 ? 4 : 5;
    let table = s.root;
    for (let i = levels - 1; i > 0; i--) {
      const idx = vpn(aHi, aLo, i);
      const off = table - ram.base + idx * 8;
      const lo = dv.getInt32(off, true);
      const hi = dv.getInt32(off + 4, true);
      if ((lo & PTE_V) !== 0) {
        table = ((hi & 0x3fffff) * 0x400000 + (lo >>> 10)) * 4096;
        continue;
      }
      const before = this.roots.size;
      const next = this.allocPage();
      if (this.roots.size !== before || !this.roots.has(this.key())) {
        // The pool was reset under us: rebuild the active root and retry.
        this.activate();
        this.map(aLo, aHi, pa, flags);
        return;
      }
      writePte(dv, off, next / 4096, PTE_V);
      table = next;
    }
    writePte(dv, table - ram.base + vpn(aHi, aLo, 0) * 8, pa / 4096, flags);
  }

  /** Drop the shadow entry for one page in every shadow root (sfence.vma rs1). */
  private unmapEverywhere(aLo: number, aHi: number): void {
    const ram = this.machine.ram;
    const dv = ram.dv;
    for (const s of this.roots.values()) {
      const levels = s.mode === SATP_MODE_SV39 ? 3 : s.mode === 9 ? 4 : 5;
      let table = s.root;
      for (let i = levels - 1; i >= 0; i--) {
        const off = table - ram.base + vpn(aHi, aLo, i) * 8;
        const lo = dv.getInt32(off, true);
        if ((lo & PTE_V) === 0) break;
        if (i === 0) {
          dv.setInt32(off, 0, true);
          dv.setInt32(off + 4, 0, true);
          break;
        }
        const hi = dv.getInt32(off + 4, true);
        table = ((hi & 0x3fffff) * 0x400000 + (lo >>> 10)) * 4096;
      }
    }
  }

  /** A virtual-instruction exit: satp accesses and sfence.vma (hstatus.VTVM). */
  virtualInstruction(insn: number, _vcpu: Vcpu): string | undefined {
    const h = this.hart;
    const opcode = insn & 0x7f;
    const f3 = (insn >>> 12) & 7;
    const rd = (insn >>> 7) & 0x1f;
    const rs1 = (insn >>> 15) & 0x1f;
    if (opcode !== 0x73) return undefined;
    if (f3 === 0 && insn >>> 25 === 0x09 && rd === 0) {
      const rs2 = (insn >>> 20) & 0x1f;
      if (rs1 !== 0 && rs2 === 0) {
        this.unmapEverywhere(h.xLo(rs1), h.xHi(rs1));
      } else {
        // Whole address space (or one ASID): drop the shadows.
        this.roots.clear();
        this.pool.reset();
        this.activate();
        this.stats.flushes++;
      }
      this.stats.syncs++;
      h.flushTlb();
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
