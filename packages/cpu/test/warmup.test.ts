/**
 * The hart's warm-up program (packages/cpu/warmup: start.S and exercise.S, built into
 * src/jit/warm-image.ts) must run to its final ebreak on an interpreting and on a
 * translating hart, and the translating one must compile its last loop: otherwise the
 * warm-up (src/jit/warm.ts) would stop early and leave V8 without the feedback it is for.
 * Nothing here measures speed.
 */
import { GuestRam } from "@visor/memory";
import { describe, expect, it } from "vitest";
import { EXIT_M, Hart } from "../src/index.ts";
import { WARM_HOT } from "../src/jit/warm.ts";
import { WARM_PROGRAM_BASE64, WARM_PROGRAM_RAM } from "../src/jit/warm-image.ts";

const BASE = 0x8000_0000;
const noBus = { read: () => -1, write: () => false, read64: () => undefined, write64: () => false };

describe("the warm-up program", () => {
  for (const jit of ["off", "on"] as const) {
    it(`runs every instruction class to its final ebreak with --jit ${jit}`, () => {
      const ram = new GuestRam(BASE, WARM_PROGRAM_RAM);
      ram.u8.set(
        Uint8Array.from(atob(WARM_PROGRAM_BASE64), (ch) => ch.charCodeAt(0)),
        0,
      );
      const hart = new Hart({ ram, bus: noBus, jit });
      // as warm.ts's harts: hot after WARM_HOT jumps (the translator's counters are internal)
      (hart as unknown as { t: { jit?: { hot: Int32Array } } }).t.jit?.hot.fill(WARM_HOT);
      hart.exitMask = EXIT_M;
      hart.pc = BigInt(BASE);
      let kind = "";
      for (let i = 0; i < 100 && (kind = hart.run(1000).kind) === "budget"; i++);
      expect(kind).toBe("breakpoint");
      expect(hart.getX(5)).toBe(0n); // t0: start.S's last loop ran out
      expect(hart.instret()).toBeGreaterThan(2000);
      if (jit === "on") {
        expect(hart.jitStats.regions).toBeGreaterThan(0);
        expect(hart.jitStats.entries).toBeGreaterThan(0);
      }
    });
  }
});
