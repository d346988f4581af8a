import { type BusDevice, WIDTH_4, WIDTH_8 } from "@visor/io-bus";
import type { Clock } from "./clock.ts";
import type { IrqLine } from "./irq.ts";
import {
  DeviceStateError,
  stateIntArray,
  stateNumber,
  stateObject,
  stateU64Array,
  u64ToState,
} from "./state.ts";

/*
 * SiFive CLINT (core-local interruptor), layout as on QEMU `virt` and the SiFive FU540
 * manual ch. 9: msip[hart] at 0x0000 + 4*hart (bit 0 only), mtimecmp[hart] at
 * 0x4000 + 8*hart (64-bit), mtime at 0xbff8 (64-bit). 4-byte and 8-byte accesses; the
 * region is 0x10000 bytes.
 *
 * mtime is the injected Clock (10 MHz ticks) plus an offset that changes when the guest
 * writes mtime. MTIP[hart] is the level `mtime >= mtimecmp[hart]`. A timer fires without
 * any bus access, so the machine calls `tick()` between instruction blocks, and can ask
 * `nextDeadline(hart)` / `nextEvent()` how long a hart in WFI may sleep.
 *
 * mtime is 64 bits and wraps to 0, as the hardware counter does; a guest that writes a
 * value near 2^64 sees it wrap, and MTIP falls at the wrap until mtime climbs back to
 * mtimecmp. Values above 2^53 are kept as doubles, so they lose their low bits.
 *
 * mtimecmp resets to 2^64-1 (no timer pending) since the hardware reset value is
 * unspecified and an all-zero compare would assert MTIP at power-on.
 */

export const CLINT_MSIP = 0x0000;
export const CLINT_MTIMECMP = 0x4000;
export const CLINT_MTIME = 0xbff8;
export const CLINT_SIZE = 0x10000;
/** msip occupies 0x0000..0x3fff: at most 4095 harts (0x3ffc is the last word below mtimecmp). */
export const CLINT_MAX_HARTS = 4095;

const TWO32 = 0x1_0000_0000;
const TWO64 = 2 ** 64;
/** The largest double below 2^64 (its step there is 2048). */
const MAX_BELOW_TWO64 = TWO64 - 2048;

export interface ClintOptions {
  /** Bus name; default "clint". */
  name?: string;
  /** Source of mtime: ticks at 10 MHz. */
  clock: Clock;
  /** Per hart: machine software interrupt (wire to mip.MSIP). Its length is the hart count. */
  msip: readonly IrqLine[];
  /** Per hart: machine timer interrupt (wire to mip.MTIP). Same length as `msip`. */
  mtip: readonly IrqLine[];
}

export interface ClintState {
  msip: number[];
  /** Per hart, u64 as a 0x-hex string. */
  mtimecmp: string[];
  /** mtime when the state was taken; restoring continues from here whatever the new Clock says. */
  mtime: number;
}

export class Clint implements BusDevice {
  readonly name: string;
  readonly widths = WIDTH_4 | WIDTH_8;
  readonly harts: number;
  private readonly clock: Clock;
  private readonly msipLines: readonly IrqLine[];
  private readonly mtipLines: readonly IrqLine[];

  private readonly msip: Uint8Array;
  /** mtimecmp halves: [2h] = low 32 bits, [2h+1] = high 32 bits. */
  private readonly cmp: Uint32Array;
  /** Per hart: the Clock.now() value at which MTIP is asserted (Infinity: never). */
  private readonly deadline: Float64Array;
  private readonly mtipLevel: Uint8Array;
  /** mtime = clock.now() + offset. */
  private offset = 0;
  /** Smallest deadline among harts whose MTIP is low. */
  private nextMin = Number.POSITIVE_INFINITY;
  /** The Clock.now() at which tick() must look again: nextMin, or mtime's wrap if sooner. */
  private nextCheck = Number.POSITIVE_INFINITY;

  constructor(options: ClintOptions) {
    const n = options.msip.length;
    if (n < 1 || n > CLINT_MAX_HARTS)
      throw new RangeError(`CLINT hart count ${n} must be in [1, ${CLINT_MAX_HARTS}]`);
    if (options.mtip.length !== n) {
      throw new RangeError(`CLINT needs one mtip line per hart: got ${options.mtip.length} for ${n} harts`);
    }
    this.name = options.name ?? "clint";
    this.harts = n;
    this.clock = options.clock;
    this.msipLines = options.msip;
    this.mtipLines = options.mtip;
    this.msip = new Uint8Array(n);
    this.cmp = new Uint32Array(2 * n).fill(0xffff_ffff);
    this.deadline = new Float64Array(n).fill(Number.POSITIVE_INFINITY);
    this.mtipLevel = new Uint8Array(n);
  }

  /** Current mtime in ticks, modulo 2^64 (exact below 2^53). */
  mtime(): number {
    const now = Math.floor(this.clock.now());
    // offset - 2^64 is exact whenever it could matter (offset >= 2^63), so the wrap is
    // decided on exact small numbers, the same way evaluateAll() decides it.
    const wrapped = now + (this.offset - TWO64);
    if (wrapped >= 0) return wrapped;
    return Math.min(now + this.offset, MAX_BELOW_TWO64);
  }

  /**
   * The Clock.now() value at which this hart's MTIP rises (at or before now when it is
   * already high), or Infinity when its mtimecmp cannot be reached. Equals the mtime of
   * the event unless the guest has written mtime.
   */
  nextDeadline(hart: number): number {
    this.checkHart(hart);
    return this.deadline[hart]!;
  }

  /** The earliest Clock.now() at which any hart's MTIP rises; Infinity if none is armed. */
  nextEvent(): number {
    return this.nextMin;
  }

  /** Re-evaluate MTIP against the clock. Cheap when no deadline has passed. */
  tick(): void {
    if (this.clock.now() >= this.nextCheck) this.evaluateAll();
  }

  read(offset: number, size: 1 | 2 | 4): number {
    if (size !== 4 || (offset & 3) !== 0) return 0;
    return this.read32(offset);
  }

  write(offset: number, size: 1 | 2 | 4, value: number): void {
    if (size !== 4 || (offset & 3) !== 0) return;
    this.write32(offset, value >>> 0);
  }

  read64(offset: number): bigint {
    if ((offset & 7) !== 0) return 0n;
    if (offset === CLINT_MTIME) return BigInt.asUintN(64, BigInt(this.mtime()));
    return BigInt(this.read32(offset)) | (BigInt(this.read32(offset + 4)) << 32n);
  }

  write64(offset: number, value: bigint): void {
    if ((offset & 7) !== 0) return;
    const v = BigInt.asUintN(64, value);
    const lo = Number(v & 0xffff_ffffn);
    const hi = Number(v >> 32n);
    if (offset === CLINT_MTIME) {
      this.setMtime(hi * TWO32 + lo);
      return;
    }
    const h = this.cmpHart(offset);
    if (h >= 0) {
      this.cmp[2 * h] = lo;
      this.cmp[2 * h + 1] = hi;
      this.cmpChanged(h);
      return;
    }
    this.write32(offset, lo);
    this.write32(offset + 4, hi);
  }

  reset(): void {
    this.msip.fill(0);
    this.cmp.fill(0xffff_ffff);
    this.offset = 0;
    for (let h = 0; h < this.harts; h++) this.msipLines[h]!.set(false);
    this.recomputeDeadlines();
    this.evaluateAll(true);
  }

  toState(): ClintState {
    const mtimecmp: string[] = [];
    for (let h = 0; h < this.harts; h++) {
      mtimecmp.push(u64ToState((BigInt(this.cmp[2 * h + 1]!) << 32n) | BigInt(this.cmp[2 * h]!)));
    }
    return { msip: Array.from(this.msip), mtimecmp, mtime: this.mtime() };
  }

  fromState(state: unknown): void {
    const d = "clint";
    const s = stateObject(state, d);
    const msip = stateIntArray(s, "msip", d, 1, { exact: this.harts });
    const mtime = stateNumber(s, "mtime", d);
    if (!Number.isInteger(mtime) || mtime < 0 || mtime >= TWO64) {
      throw new DeviceStateError("invalid clint state: mtime must be an integer in [0, 2^64)");
    }
    const cmps = stateU64Array(s, "mtimecmp", d, this.harts);
    for (let h = 0; h < this.harts; h++) {
      this.msip[h] = msip[h]!;
      this.cmp[2 * h] = Number(cmps[h]! & 0xffff_ffffn);
      this.cmp[2 * h + 1] = Number(cmps[h]! >> 32n);
      this.msipLines[h]!.set(this.msip[h] !== 0);
    }
    this.offset = mtime - Math.floor(this.clock.now());
    this.recomputeDeadlines();
    this.evaluateAll(true);
  }

  private read32(offset: number): number {
    if (offset < CLINT_MTIMECMP) {
      const h = offset >>> 2;
      return h < this.harts ? this.msip[h]! : 0;
    }
    if (offset === CLINT_MTIME || offset === CLINT_MTIME + 4) {
      const t = this.mtime();
      return offset === CLINT_MTIME ? (t % TWO32) >>> 0 : Math.floor(t / TWO32) >>> 0;
    }
    if (offset < CLINT_MTIME) {
      const i = (offset - CLINT_MTIMECMP) >>> 2;
      return i < 2 * this.harts ? this.cmp[i]! : 0;
    }
    return 0;
  }

  private write32(offset: number, v: number): void {
    if (offset < CLINT_MTIMECMP) {
      const h = offset >>> 2;
      if (h >= this.harts) return;
      const bit = v & 1;
      if (bit !== this.msip[h]) {
        this.msip[h] = bit;
        this.msipLines[h]!.set(bit !== 0);
      }
      return;
    }
    if (offset === CLINT_MTIME || offset === CLINT_MTIME + 4) {
      const t = this.mtime();
      let lo = (t % TWO32) >>> 0;
      let hi = Math.floor(t / TWO32) >>> 0;
      if (offset === CLINT_MTIME) lo = v;
      else hi = v;
      this.setMtime(hi * TWO32 + lo);
      return;
    }
    if (offset < CLINT_MTIME) {
      const i = (offset - CLINT_MTIMECMP) >>> 2;
      if (i >= 2 * this.harts) return;
      this.cmp[i] = v;
      this.cmpChanged(i >>> 1);
    }
  }

  /** Hart whose mtimecmp starts at `offset`, or -1. */
  private cmpHart(offset: number): number {
    if (offset < CLINT_MTIMECMP || offset >= CLINT_MTIME) return -1;
    const h = (offset - CLINT_MTIMECMP) >>> 3;
    return h < this.harts ? h : -1;
  }

  private setMtime(value: number): void {
    // Values above 2^53 lose precision; mtime at 10 MHz reaches 2^53 after ~28 years.
    // Clamped below 2^64 (a write of 2^64-1 would otherwise round to 2^64 and read back
    // as 0); offset then stays in (-2^64, 2^64), so mtime() needs at most one wrap.
    this.offset = Math.min(value, MAX_BELOW_TWO64) - Math.floor(this.clock.now());
    this.recomputeDeadlines();
    this.evaluateAll(false);
  }

  private cmpChanged(h: number): void {
    this.deadline[h] = this.deadlineOf(h);
    this.evaluateAll(false);
  }

  private deadlineOf(h: number): number {
    const hi = this.cmp[2 * h + 1]!;
    // 2^21 * 2^32 = 2^53: beyond that mtime is never reached in practice.
    if (hi >= 0x20_0000) return Number.POSITIVE_INFINITY;
    return hi * TWO32 + this.cmp[2 * h]! - this.offset;
  }

  private recomputeDeadlines(): void {
    for (let h = 0; h < this.harts; h++) this.deadline[h] = this.deadlineOf(h);
  }

  private evaluateAll(force = false): void {
    const now = Math.floor(this.clock.now());
    // mtime wrapped past 2^64: re-base so the deadlines count from the new epoch.
    if (now + (this.offset - TWO64) >= 0) {
      this.offset -= TWO64;
      this.recomputeDeadlines();
    }
    let min = Number.POSITIVE_INFINITY;
    for (let h = 0; h < this.harts; h++) {
      const dl = this.deadline[h]!;
      const level = now >= dl ? 1 : 0;
      if (level === 0 && dl < min) min = dl;
      if (force || level !== this.mtipLevel[h]) {
        this.mtipLevel[h] = level;
        this.mtipLines[h]!.set(level === 1);
      }
    }
    this.nextMin = min;
    // The wrap is an event too: MTIP levels that were high fall back to low.
    this.nextCheck = Math.min(min, TWO64 - this.offset);
  }

  private checkHart(hart: number): void {
    if (!Number.isInteger(hart) || hart < 0 || hart >= this.harts) {
      throw new RangeError(`CLINT has no hart ${hart} (harts: ${this.harts})`);
    }
  }
}
