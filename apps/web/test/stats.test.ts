/**
 * collectStats (the panels' data, gathered in the worker) against a machine that ran: the
 * small warm-up guest, which makes SBI calls, takes exits and walks page tables before it
 * powers off. Runs in Node, no browser needed.
 */
import { warmupMachine } from "@visor/hypervisor";
import { describe, expect, it } from "vitest";
import { collectStats } from "../src/stats.ts";

describe("collectStats", () => {
  it.each(["nested", "shadow"] as const)(
    "--virt %s: the counters --stats prints, as plain data",
    async (virt) => {
      const m = await warmupMachine(virt, { stats: true, jit: "on" });
      const before = collectStats(m, 0);
      expect(before.instructions).toBe(0);
      expect(before.exits).toEqual([]);
      expect((await m.run()).kind).toBe("poweroff");

      const s = collectStats(m, 123);
      expect(s.virt).toBe(virt);
      expect(s.ms).toBe(123);
      expect(s.instructions).toBe(m.instructionsHere);
      expect(s.instructions).toBeGreaterThan(0);
      // The same rows as the exit table, and the SBI calls that ended the guest.
      expect(s.exits).toEqual(m.exitStats.table());
      expect(s.exits.length).toBeGreaterThan(0);
      expect(s.sbi.some((r) => r.extension === "SRST")).toBe(true);
      // Only devices that were accessed; every row counts something.
      for (const d of [...s.mmio, ...s.pio]) expect(d.reads + d.writes + d.fast).toBeGreaterThan(0);
      expect(s.harts).toHaveLength(1);
      expect(s.harts[0]!.walks).toBe(m.vcpus[0]!.hart.stats.walks);
      if (virt === "shadow") expect(s.harts[0]!.shadow?.fills).toBe(m.vcpus[0]!.shadow!.stats.fills);
      else expect(s.harts[0]!.shadow).toBeUndefined();
      expect(s.jit.requested).toBe("on");
      expect(s.jit.regions).toBe(m.jitStats.regions);
      // Plain data: it crosses to the page by structured clone.
      expect(structuredClone(s)).toEqual(s);
    },
  );
});
