// HSV (the H extension's "store as the guest would") writes RAM like any other store, so it
// must mark the dirty-page log too: live migration copies only logged pages, and a page
// written by HSV after its last copy would reach the destination stale.
import { GuestRam, hpa } from "@visor/memory";
import { describe, expect, it } from "vitest";
import { EXIT_M, Hart } from "../src/index.ts";

const BASE = 0x8000_0000;
const PAGE = 4096;
const T0 = 5;
const T1 = 6;
/** hsv.d t1, (t0): funct7 0110111, rs2 t1, rs1 t0, funct3 100, opcode SYSTEM. */
const HSV_D = (0x37 << 25) | (T1 << 20) | (T0 << 15) | (4 << 12) | 0x73;
const ECALL = 0x00000073;

describe("HSV and the dirty log", () => {
  it("a store through HSV marks its page dirty", () => {
    const ram = new GuestRam(BASE, 1 << 20);
    ram.write32(hpa(BASE), HSV_D);
    ram.write32(hpa(BASE + 4), ECALL);
    const hart = new Hart({
      ram,
      bus: { read: () => -1, write: () => false, read64: () => undefined, write64: () => false },
      hypervisor: true,
    });
    hart.exitMask = EXIT_M;
    // M-mode, hgatp and vsatp bare: the guest address is the physical address.
    const target = BASE + 8 * PAGE + 16;
    hart.setX(T0, BigInt(target));
    hart.setX(T1, 0x1122_3344_5566_7788n);
    ram.enableDirtyLog();
    const exit = hart.run(10);
    expect(exit.kind).toBe("ecall");
    expect(ram.read64(hpa(target))).toBe(0x1122_3344_5566_7788n);
    expect(ram.fetchAndClearDirty()).toContain(8);
  });
});
