// A 32-bit instruction whose second half lies on the next page: fetched through both pages'
// translations, never cached, and a fault on the second page is reported at its address.
import { GuestRam, hpa } from "@visor/memory";
import { describe, expect, it } from "vitest";
import { EXIT_M, Hart, type JitMode } from "../src/index.ts";
import { enc } from "./jit-diff-driver.ts";

const BASE = 0x8000_0000;
const noBus = { read: () => -1, write: () => false, read64: () => undefined, write64: () => false };
const EBREAK = 0x00100073;
const A0 = 10;

function hartWith(size: number, jit: JitMode): { hart: Hart; ram: GuestRam } {
  const ram = new GuestRam(BASE, size);
  const hart = new Hart({ ram, bus: noBus, jit });
  hart.exitMask = EXIT_M;
  return { hart, ram };
}

describe("an instruction across a page boundary", () => {
  for (const jit of ["off", "always"] as const) {
    it(`runs, and runs as rewritten (--jit ${jit})`, () => {
      const { hart, ram } = hartWith(2 * 4096 + 4096, jit);
      const put = (v: number) => {
        const w = enc.i("addi", A0, A0, v).bits;
        ram.write16(hpa(BASE + 0xffe), w & 0xffff);
        ram.write16(hpa(BASE + 0x1000), w >>> 16);
      };
      put(42);
      ram.write32(hpa(BASE + 0x1002), EBREAK);
      hart.pc = BigInt(BASE + 0xffe);
      expect(hart.run(100).kind).toBe("breakpoint");
      expect(hart.getX(A0)).toBe(42n);
      // never cached: the upper half rewritten takes effect
      put(0x123);
      hart.pc = BigInt(BASE + 0xffe);
      expect(hart.run(100).kind).toBe("breakpoint");
      expect(hart.getX(A0)).toBe(42n + 0x123n);
      expect(hart.instret()).toBe(2);
    });

    it(`faults at the second page when it is not there (--jit ${jit})`, () => {
      const { hart, ram } = hartWith(4096, jit);
      ram.write16(hpa(BASE + 0xffe), enc.i("addi", A0, A0, 1).bits & 0xffff);
      hart.pc = BigInt(BASE + 0xffe);
      const e = hart.run(100);
      expect(e.kind).toBe("access-fault");
      expect(e.kind === "access-fault" ? e.tval : -1n).toBe(BigInt(BASE + 0x1000));
      expect(hart.pc).toBe(BigInt(BASE + 0xffe));
      expect(hart.instret()).toBe(0);
    });
  }
});
