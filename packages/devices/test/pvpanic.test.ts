import { MmioBus } from "@visor/io-bus";
import { describe, expect, it } from "vitest";
import { PVPANIC_PANICKED, PVPANIC_SIZE, PvPanic } from "../src/pvpanic.ts";

describe("PvPanic (qemu,pvpanic-mmio)", () => {
  it("offers PANICKED and reports a write of it", () => {
    let panics = 0;
    const p = new PvPanic({ onPanic: () => panics++ });
    expect(p.read(0, 1)).toBe(PVPANIC_PANICKED);
    p.write(0, 1, PVPANIC_PANICKED);
    expect(panics).toBe(1);
  });

  it("a hostile guest: other bits, other offsets and wide accesses report nothing else", () => {
    let panics = 0;
    const bus = new MmioBus();
    bus.register(0x1000, PVPANIC_SIZE, new PvPanic({ onPanic: () => panics++ }));
    bus.write(0x1000, 1, 2); // CRASH_LOADED alone: not offered, not a panic
    bus.write(0x1000, 1, 0xfe);
    bus.write(0x1004, 1, 1); // not the register
    bus.write(0x1fff, 1, 0xff);
    bus.write(0x1000, 4, 0x0100); // split into bytes: offset 0 gets 0x00
    expect(panics).toBe(0);
    expect(bus.read(0x1008, 1)).toBe(0);
    bus.write(0x1000, 1, 0xff); // PANICKED with junk beside it
    expect(panics).toBe(1);
  });
});
