import { type BusDevice, WIDTH_4 } from "@visor/io-bus";
import { hostWallClock, type WallClock } from "./clock.ts";
import { type IrqLine, NO_IRQ } from "./irq.ts";
import {
  DeviceStateError,
  stateBool,
  stateInt,
  stateObject,
  stateString,
  stateU64,
  u64ToState,
} from "./state.ts";

/*
 * Goldfish RTC (compatible "google,goldfish-rtc"; register map from the Android emulator's
 * goldfish RTC documentation, as QEMU `virt` provides it at 0x101000 with IRQ 11 and
 * Linux drivers/rtc/rtc-goldfish.c drives it). All registers are 32-bit:
 *
 *   0x00 TIME_LOW        r: low 32 bits of ns since the epoch; latches TIME_HIGH
 *                        w: replace the low 32 bits of the current time
 *   0x04 TIME_HIGH       r: high 32 bits latched by the last TIME_LOW read
 *                        w: replace the high 32 bits of the current time
 *   0x08 ALARM_LOW       w: arm the alarm at (ALARM_HIGH << 32 | value) ns; r: low half
 *   0x0c ALARM_HIGH      w: high half used by the next ALARM_LOW write; r: high half
 *   0x10 IRQ_ENABLED     rw bit 0: the alarm interrupt reaches the IRQ line
 *   0x14 CLEAR_ALARM     w: disarm the alarm
 *   0x18 ALARM_STATUS    r: 1 while an alarm is armed
 *   0x1c CLEAR_INTERRUPT w: drop the pending alarm interrupt
 *
 * An alarm whose time has already passed fires at once. The alarm is checked on every
 * register access and on `tick()`, which the machine calls from its event loop (an alarm
 * fires no earlier than the first tick after its time); `nextAlarmNs()` says when.
 */

export const RTC_TIME_LOW = 0x00;
export const RTC_TIME_HIGH = 0x04;
export const RTC_ALARM_LOW = 0x08;
export const RTC_ALARM_HIGH = 0x0c;
export const RTC_IRQ_ENABLED = 0x10;
export const RTC_CLEAR_ALARM = 0x14;
export const RTC_ALARM_STATUS = 0x18;
export const RTC_CLEAR_INTERRUPT = 0x1c;
export const RTC_SIZE = 0x1000;

const MASK64 = (1n << 64n) - 1n;

export interface GoldfishRtcOptions {
  /** Bus name; default "goldfish-rtc". */
  name?: string;
  /** Nanoseconds since the epoch; default the JS host clock (Date.now()). */
  wallClock?: WallClock;
  /** Alarm interrupt (a PLIC source; IRQ 11 on QEMU virt). */
  irq?: IrqLine;
}

export interface GoldfishRtcState {
  /** Guest time minus wall-clock time, signed decimal ns. */
  offsetNs: string;
  timeHigh: number;
  alarm: string;
  alarmHigh: number;
  alarmRunning: boolean;
  irqEnabled: boolean;
  irqPending: boolean;
}

export class GoldfishRtc implements BusDevice {
  readonly name: string;
  readonly widths = WIDTH_4;
  private readonly wall: WallClock;
  private readonly irq: IrqLine;
  private offsetNs = 0n;
  private timeHigh = 0;
  private alarm = 0n;
  private alarmHigh = 0;
  private alarmRunning = false;
  private irqEnabled = false;
  private irqPending = false;
  private irqLevel = false;

  constructor(options: GoldfishRtcOptions = {}) {
    this.name = options.name ?? "goldfish-rtc";
    this.wall = options.wallClock ?? hostWallClock;
    this.irq = options.irq ?? NO_IRQ;
  }

  /** The guest's current time, ns since the epoch. */
  timeNs(): bigint {
    return (this.wall.nowNs() + this.offsetNs) & MASK64;
  }

  /** Wall-clock ns at which the armed alarm fires, or null when no alarm is armed. */
  nextAlarmNs(): bigint | null {
    return this.alarmRunning ? this.alarm - this.offsetNs : null;
  }

  /** Fire the alarm if its time has come. */
  tick(): void {
    if (this.alarmRunning && this.timeNs() >= this.alarm) {
      this.alarmRunning = false;
      this.irqPending = true;
      this.update();
    }
  }

  read(offset: number, size: 1 | 2 | 4): number {
    if (size !== 4) return 0;
    this.tick();
    switch (offset) {
      case RTC_TIME_LOW: {
        const t = this.timeNs();
        this.timeHigh = Number(t >> 32n);
        return Number(t & 0xffff_ffffn);
      }
      case RTC_TIME_HIGH:
        return this.timeHigh;
      case RTC_ALARM_LOW:
        return Number(this.alarm & 0xffff_ffffn);
      case RTC_ALARM_HIGH:
        return Number(this.alarm >> 32n);
      case RTC_IRQ_ENABLED:
        return this.irqEnabled ? 1 : 0;
      case RTC_ALARM_STATUS:
        return this.alarmRunning ? 1 : 0;
      default:
        return 0;
    }
  }

  write(offset: number, size: 1 | 2 | 4, value: number): void {
    if (size !== 4) return;
    const v = BigInt(value >>> 0);
    switch (offset) {
      case RTC_TIME_LOW:
      case RTC_TIME_HIGH: {
        const t = this.timeNs();
        const next = offset === RTC_TIME_LOW ? (t & ~0xffff_ffffn) | v : (t & 0xffff_ffffn) | (v << 32n);
        this.offsetNs += next - t;
        break;
      }
      case RTC_ALARM_LOW:
        this.alarm = (BigInt(this.alarmHigh) << 32n) | v;
        this.alarmRunning = true;
        break;
      case RTC_ALARM_HIGH:
        this.alarmHigh = value >>> 0;
        break;
      case RTC_IRQ_ENABLED:
        this.irqEnabled = (value & 1) !== 0;
        this.update();
        break;
      case RTC_CLEAR_ALARM:
        this.alarmRunning = false;
        break;
      case RTC_CLEAR_INTERRUPT:
        this.irqPending = false;
        this.update();
        break;
      default:
        return;
    }
    this.tick();
  }

  reset(): void {
    this.timeHigh = 0;
    this.alarm = 0n;
    this.alarmHigh = 0;
    this.alarmRunning = false;
    this.irqEnabled = false;
    this.irqPending = false;
    this.update();
  }

  toState(): GoldfishRtcState {
    return {
      offsetNs: this.offsetNs.toString(),
      timeHigh: this.timeHigh,
      alarm: u64ToState(this.alarm),
      alarmHigh: this.alarmHigh,
      alarmRunning: this.alarmRunning,
      irqEnabled: this.irqEnabled,
      irqPending: this.irqPending,
    };
  }

  fromState(state: unknown): void {
    const d = "goldfish-rtc";
    const s = stateObject(state, d);
    const off = stateString(s, "offsetNs", d);
    if (!/^-?\d{1,20}$/.test(off))
      throw new DeviceStateError(`invalid ${d} state: offsetNs must be a decimal integer`);
    const timeHigh = stateInt(s, "timeHigh", d, 0xffff_ffff);
    const alarm = stateU64(s, "alarm", d);
    const alarmHigh = stateInt(s, "alarmHigh", d, 0xffff_ffff);
    const alarmRunning = stateBool(s, "alarmRunning", d);
    const irqEnabled = stateBool(s, "irqEnabled", d);
    const irqPending = stateBool(s, "irqPending", d);
    this.offsetNs = BigInt(off);
    this.timeHigh = timeHigh;
    this.alarm = alarm;
    this.alarmHigh = alarmHigh;
    this.alarmRunning = alarmRunning;
    this.irqEnabled = irqEnabled;
    this.irqPending = irqPending;
    this.irqLevel = this.irqEnabled && this.irqPending;
    this.irq.set(this.irqLevel);
  }

  private update(): void {
    const level = this.irqEnabled && this.irqPending;
    if (level !== this.irqLevel) {
      this.irqLevel = level;
      this.irq.set(level);
    }
  }
}
