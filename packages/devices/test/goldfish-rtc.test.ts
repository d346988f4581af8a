import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  GoldfishRtc,
  RTC_ALARM_HIGH,
  RTC_ALARM_LOW,
  RTC_ALARM_STATUS,
  RTC_CLEAR_ALARM,
  RTC_CLEAR_INTERRUPT,
  RTC_IRQ_ENABLED,
  RTC_TIME_HIGH,
  RTC_TIME_LOW,
} from "../src/goldfish-rtc.ts";
import { IrqLevel } from "../src/irq.ts";

function make(ns = 1_700_000_000_123_456_789n) {
  const wall = {
    t: ns,
    nowNs() {
      return this.t;
    },
  };
  const irq = new IrqLevel();
  const rtc = new GoldfishRtc({ wallClock: wall, irq });
  return { wall, irq, rtc };
}

const readTime = (rtc: GoldfishRtc) => {
  const lo = rtc.read(RTC_TIME_LOW, 4);
  const hi = rtc.read(RTC_TIME_HIGH, 4);
  return (BigInt(hi) << 32n) | BigInt(lo);
};

describe("GoldfishRtc", () => {
  it("reads ns since the epoch, TIME_LOW latching TIME_HIGH", () => {
    const { rtc, wall } = make(0x1_ffff_fff0n);
    const lo = rtc.read(RTC_TIME_LOW, 4);
    wall.t = 0x2_0000_0010n; // the high word changes between the two reads
    expect(rtc.read(RTC_TIME_HIGH, 4)).toBe(1);
    expect(lo).toBe(0xffff_fff0);
    expect(readTime(rtc)).toBe(0x2_0000_0010n);
  });

  it("sets the time by writing the halves (Linux writes HIGH then LOW)", () => {
    const { rtc, wall } = make(5_000_000_000n);
    const target = 1_600_000_000_000_000_000n;
    rtc.write(RTC_TIME_HIGH, 4, Number(target >> 32n));
    rtc.write(RTC_TIME_LOW, 4, Number(target & 0xffff_ffffn));
    expect(readTime(rtc)).toBe(target);
    wall.t += 1000n;
    expect(readTime(rtc)).toBe(target + 1000n);
  });

  it("fires an armed alarm on tick(), gated by IRQ_ENABLED, until cleared", () => {
    const { rtc, wall, irq } = make(1000n);
    rtc.write(RTC_IRQ_ENABLED, 4, 1);
    rtc.write(RTC_ALARM_HIGH, 4, 0);
    rtc.write(RTC_ALARM_LOW, 4, 2000);
    expect(rtc.read(RTC_ALARM_STATUS, 4)).toBe(1);
    expect(rtc.nextAlarmNs()).toBe(2000n);
    wall.t = 1999n;
    rtc.tick();
    expect(irq.level).toBe(false);
    wall.t = 2000n;
    rtc.tick();
    expect(irq.level).toBe(true);
    expect(rtc.read(RTC_ALARM_STATUS, 4)).toBe(0);
    rtc.write(RTC_IRQ_ENABLED, 4, 0);
    expect(irq.level).toBe(false);
    rtc.write(RTC_IRQ_ENABLED, 4, 1);
    expect(irq.level).toBe(true);
    rtc.write(RTC_CLEAR_INTERRUPT, 4, 1);
    expect(irq.level).toBe(false);
    rtc.write(RTC_ALARM_LOW, 4, 500); // in the past: fires at once
    expect(irq.level).toBe(true);
    rtc.write(RTC_CLEAR_INTERRUPT, 4, 1);
    rtc.write(RTC_ALARM_LOW, 4, 9000);
    rtc.write(RTC_CLEAR_ALARM, 4, 1);
    wall.t = 10_000n;
    rtc.tick();
    expect(irq.level).toBe(false);
  });

  it("round-trips its state", () => {
    const a = make();
    a.rtc.write(RTC_TIME_LOW, 4, 12345);
    a.rtc.write(RTC_ALARM_HIGH, 4, 0x7fff_ffff);
    a.rtc.write(RTC_ALARM_LOW, 4, 1);
    a.rtc.write(RTC_IRQ_ENABLED, 4, 1);
    const s = JSON.parse(JSON.stringify(a.rtc.toState()));
    const b = make();
    b.rtc.fromState(s);
    expect(b.rtc.toState()).toEqual(a.rtc.toState());
    expect(readTime(b.rtc)).toBe(readTime(a.rtc));
    expect(() => b.rtc.fromState({ ...s, offsetNs: "x" })).toThrow(/offsetNs/);
  });

  it("never throws under random guest access", () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.tuple(
            fc.boolean(),
            fc.integer({ min: 0, max: 0x40 }),
            fc.integer({ min: 0, max: 0xffff_ffff }),
            fc.constantFrom(1, 2, 4) as fc.Arbitrary<1 | 2 | 4>,
          ),
        ),
        (ops) => {
          const { rtc, irq } = make();
          for (const [w, off, v, size] of ops) {
            if (w) rtc.write(off, size, v);
            else rtc.read(off, size);
          }
          const s = rtc.toState();
          expect(irq.level).toBe(s.irqEnabled && s.irqPending);
        },
      ),
    );
  });
});
