import { type BusDevice, WIDTH_4 } from "@visor/io-bus";
import type { IrqLine } from "./irq.ts";
import { stateIntArray, stateObject } from "./state.ts";

/*
 * SiFive PLIC (platform-level interrupt controller) with the register layout QEMU `virt`
 * uses (include/hw/riscv/virt.h VIRT_PLIC_*; RISC-V PLIC specification v1.0.0):
 *   priority[src]          0x000000 + 4*src
 *   pending bits           0x001000 (32 sources per word)
 *   enable bits [ctx]      0x002000 + 0x80*ctx
 *   threshold [ctx]        0x200000 + 0x1000*ctx
 *   claim/complete [ctx]   0x200004 + 0x1000*ctx
 * Contexts: two per hart, M-mode then S-mode (context 2h = hart h M, 2h+1 = hart h S),
 * as QEMU's "MS" hart config. Only 4-byte accesses.
 *
 * Sources: 96 by default, including the reserved source 0, matching QEMU `virt`
 * (VIRT_IRQCHIP_NUM_SOURCES = 96; the device tree says riscv,ndev = 95). Priorities have
 * 3 bits (VIRT_IRQCHIP_NUM_PRIO_BITS), so priority and threshold registers are WARL 0..7.
 *
 * Gateway (level-triggered): while a source is not in service its pending bit follows its
 * input line (a line that drops before the claim withdraws the request, as QEMU does, so
 * the guest is not sent a spurious claim). A claim returns the highest-priority pending
 * source enabled for the context with priority above the context's threshold (ties: the
 * lowest id), clears its pending bit and puts it in service. Writing its id to the
 * claim/complete register ends service; if the line is still high the source is pending
 * again. As in QEMU, completion does not check the source is enabled for the context.
 */

export const PLIC_PRIORITY_BASE = 0x0;
export const PLIC_PENDING_BASE = 0x1000;
export const PLIC_ENABLE_BASE = 0x2000;
export const PLIC_ENABLE_STRIDE = 0x80;
export const PLIC_CONTEXT_BASE = 0x200000;
export const PLIC_CONTEXT_STRIDE = 0x1000;
/** QEMU virt: VIRT_IRQCHIP_NUM_SOURCES. */
export const PLIC_DEFAULT_SOURCES = 96;
/** The PLIC specification allows sources 1..1023. */
export const PLIC_MAX_SOURCES = 1024;
/** 3 priority bits (QEMU virt: VIRT_IRQCHIP_NUM_PRIO_BITS). */
export const PLIC_MAX_PRIORITY = 7;

/** Size of the register region for `contexts` contexts (QEMU's VIRT_PLIC_SIZE). */
export const plicSize = (contexts: number): number => PLIC_CONTEXT_BASE + contexts * PLIC_CONTEXT_STRIDE;

export interface PlicOptions {
  /** Bus name; default "plic". */
  name?: string;
  harts: number;
  /** Number of sources including the reserved source 0; default 96 (QEMU virt). */
  sources?: number;
  /**
   * One output per context, length 2*harts: [2h] is hart h's M-mode external interrupt
   * (wire to mip.MEIP), [2h+1] its S-mode one (wire to mip.SEIP).
   */
  contexts: readonly IrqLine[];
}

export interface PlicState {
  priority: number[];
  pending: number[];
  inService: number[];
  line: number[];
  enable: number[];
  threshold: number[];
}

export class Plic implements BusDevice {
  readonly name: string;
  readonly widths = WIDTH_4;
  readonly harts: number;
  readonly sources: number;
  readonly contexts: number;
  /** Bytes of register space this PLIC decodes: 0x200000 + 0x1000 * contexts. */
  readonly size: number;
  private readonly words: number;
  private readonly outputs: readonly IrqLine[];
  private readonly lines: IrqLine[] = [];

  private readonly priority: Uint32Array;
  private readonly pending: Uint32Array;
  private readonly inService: Uint32Array;
  private readonly line: Uint32Array;
  private readonly enable: Uint32Array;
  private readonly threshold: Uint32Array;
  private readonly outLevel: Uint8Array;
  /** Bits that name real sources in each word (source 0 and ids >= sources excluded). */
  private readonly validMask: Uint32Array;

  constructor(options: PlicOptions) {
    const harts = options.harts;
    if (!Number.isInteger(harts) || harts < 1 || harts > 7936) {
      throw new RangeError(`PLIC hart count ${harts} must be in [1, 7936]`);
    }
    const sources = options.sources ?? PLIC_DEFAULT_SOURCES;
    if (!Number.isInteger(sources) || sources < 2 || sources > PLIC_MAX_SOURCES) {
      throw new RangeError(`PLIC source count ${sources} must be in [2, ${PLIC_MAX_SOURCES}]`);
    }
    if (options.contexts.length !== 2 * harts) {
      throw new RangeError(
        `PLIC needs 2 context lines per hart (M, S): got ${options.contexts.length} for ${harts}`,
      );
    }
    this.name = options.name ?? "plic";
    this.harts = harts;
    this.sources = sources;
    this.contexts = 2 * harts;
    this.size = plicSize(this.contexts);
    this.words = Math.ceil(sources / 32);
    this.outputs = options.contexts;
    this.priority = new Uint32Array(sources);
    this.pending = new Uint32Array(this.words);
    this.inService = new Uint32Array(this.words);
    this.line = new Uint32Array(this.words);
    this.enable = new Uint32Array(this.contexts * this.words);
    this.threshold = new Uint32Array(this.contexts);
    this.outLevel = new Uint8Array(this.contexts);
    this.validMask = new Uint32Array(this.words);
    for (let id = 1; id < sources; id++) this.validMask[id >>> 5]! |= 1 << (id & 31);
  }

  /** The input line of source `source` (1 .. sources-1). Same object on every call. */
  irqLine(source: number): IrqLine {
    if (!Number.isInteger(source) || source < 1 || source >= this.sources) {
      throw new RangeError(`PLIC has no source ${source} (valid: 1..${this.sources - 1})`);
    }
    let l = this.lines[source];
    if (l === undefined) {
      l = { set: (level: boolean) => this.setLine(source, level) };
      this.lines[source] = l;
    }
    return l;
  }

  /** True when context `ctx` has a claimable interrupt (the level on its output). */
  contextPending(ctx: number): boolean {
    return this.outLevel[ctx] === 1;
  }

  read(offset: number, size: 1 | 2 | 4): number {
    if (size !== 4 || (offset & 3) !== 0) return 0;
    if (offset < PLIC_PENDING_BASE) {
      const id = offset >>> 2;
      return id < this.sources ? this.priority[id]! : 0;
    }
    if (offset < PLIC_ENABLE_BASE) {
      const w = (offset - PLIC_PENDING_BASE) >>> 2;
      return w < this.words ? this.pending[w]! : 0;
    }
    if (offset < PLIC_CONTEXT_BASE) {
      const ctx = (offset - PLIC_ENABLE_BASE) >>> 7;
      const w = (offset & (PLIC_ENABLE_STRIDE - 1)) >>> 2;
      return ctx < this.contexts && w < this.words ? this.enable[ctx * this.words + w]! : 0;
    }
    const ctx = (offset - PLIC_CONTEXT_BASE) >>> 12;
    if (ctx >= this.contexts) return 0;
    const reg = offset & (PLIC_CONTEXT_STRIDE - 1);
    if (reg === 0) return this.threshold[ctx]!;
    if (reg === 4) return this.claim(ctx);
    return 0;
  }

  write(offset: number, size: 1 | 2 | 4, value: number): void {
    if (size !== 4 || (offset & 3) !== 0) return;
    const v = value >>> 0;
    if (offset < PLIC_PENDING_BASE) {
      const id = offset >>> 2;
      if (id === 0 || id >= this.sources) return;
      this.priority[id] = v & PLIC_MAX_PRIORITY;
      this.update();
      return;
    }
    if (offset < PLIC_ENABLE_BASE) return; // pending bits are read-only
    if (offset < PLIC_CONTEXT_BASE) {
      const ctx = (offset - PLIC_ENABLE_BASE) >>> 7;
      const w = (offset & (PLIC_ENABLE_STRIDE - 1)) >>> 2;
      if (ctx >= this.contexts || w >= this.words) return;
      this.enable[ctx * this.words + w] = v & this.validMask[w]!;
      this.update();
      return;
    }
    const ctx = (offset - PLIC_CONTEXT_BASE) >>> 12;
    if (ctx >= this.contexts) return;
    const reg = offset & (PLIC_CONTEXT_STRIDE - 1);
    if (reg === 0) {
      this.threshold[ctx] = v & PLIC_MAX_PRIORITY;
      this.update();
    } else if (reg === 4) {
      this.complete(v);
    }
  }

  reset(): void {
    this.priority.fill(0);
    this.pending.fill(0);
    this.inService.fill(0);
    this.enable.fill(0);
    this.threshold.fill(0);
    // Input lines keep their levels: they belong to the devices. Re-arm the gateways.
    for (let w = 0; w < this.words; w++) this.pending[w] = this.line[w]!;
    this.update(true);
  }

  toState(): PlicState {
    return {
      priority: Array.from(this.priority),
      pending: Array.from(this.pending),
      inService: Array.from(this.inService),
      line: Array.from(this.line),
      enable: Array.from(this.enable),
      threshold: Array.from(this.threshold),
    };
  }

  fromState(state: unknown): void {
    const d = "plic";
    const s = stateObject(state, d);
    const priority = stateIntArray(s, "priority", d, PLIC_MAX_PRIORITY, { exact: this.sources });
    const words = { exact: this.words };
    const pending = stateIntArray(s, "pending", d, 0xffff_ffff, words);
    const inService = stateIntArray(s, "inService", d, 0xffff_ffff, words);
    const line = stateIntArray(s, "line", d, 0xffff_ffff, words);
    const enable = stateIntArray(s, "enable", d, 0xffff_ffff, { exact: this.contexts * this.words });
    const threshold = stateIntArray(s, "threshold", d, PLIC_MAX_PRIORITY, { exact: this.contexts });
    this.priority.set(priority);
    this.priority[0] = 0;
    for (let w = 0; w < this.words; w++) {
      const m = this.validMask[w]!;
      this.pending[w] = pending[w]! & m;
      this.inService[w] = inService[w]! & m;
      this.line[w] = line[w]! & m;
      for (let c = 0; c < this.contexts; c++) {
        this.enable[c * this.words + w] = enable[c * this.words + w]! & m;
      }
    }
    this.threshold.set(threshold);
    this.update(true);
  }

  private setLine(source: number, level: boolean): void {
    const w = source >>> 5;
    const bit = 1 << (source & 31);
    const old = this.line[w]!;
    const now = level ? old | bit : old & ~bit;
    if (now === old) return;
    this.line[w] = now;
    if (this.inService[w]! & bit) return;
    this.pending[w] = level ? this.pending[w]! | bit : this.pending[w]! & ~bit;
    this.update();
  }

  /** Highest-priority claimable source for `ctx` (0 if none), without side effects. */
  private best(ctx: number): number {
    let best = 0;
    let bestPrio = this.threshold[ctx]!;
    const base = ctx * this.words;
    for (let w = 0; w < this.words; w++) {
      let bits = this.pending[w]! & this.enable[base + w]!;
      while (bits !== 0) {
        const b = 31 - Math.clz32(bits & -bits);
        bits &= bits - 1;
        const id = (w << 5) | b;
        const p = this.priority[id]!;
        if (p > bestPrio) {
          best = id;
          bestPrio = p;
        }
      }
    }
    return best;
  }

  private claim(ctx: number): number {
    const id = this.best(ctx);
    if (id !== 0) {
      const w = id >>> 5;
      const bit = 1 << (id & 31);
      this.pending[w]! &= ~bit;
      this.inService[w]! |= bit;
      this.update();
    }
    return id;
  }

  private complete(id: number): void {
    if (id === 0 || id >= this.sources) return;
    const w = id >>> 5;
    const bit = 1 << (id & 31);
    if ((this.inService[w]! & bit) === 0) return;
    this.inService[w]! &= ~bit;
    if (this.line[w]! & bit) this.pending[w]! |= bit;
    this.update();
  }

  private update(force = false): void {
    for (let c = 0; c < this.contexts; c++) {
      const level = this.best(c) !== 0 ? 1 : 0;
      if (force || level !== this.outLevel[c]) {
        this.outLevel[c] = level;
        this.outputs[c]!.set(level === 1);
      }
    }
  }
}
