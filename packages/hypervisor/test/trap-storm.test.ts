/**
 * A guest whose trap vector cannot be fetched takes a fetch fault on every attempt and
 * never retires an instruction. That is the guest's own business (it is stuck, as it would
 * be on hardware), but the VMM must stay responsive: the run loop has to come back to the
 * host, so stop() (Ctrl-A X, a signal, the control path) still works. Before the hart
 * bounded such storms, `--virt off` froze the VMM's event loop for good.
 */
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { describe, expect, it } from "vitest";

const script = join(import.meta.dirname, "fixtures", "trap-storm", "run.ts");

describe("a trap storm does not freeze the VMM", () => {
  for (const virt of ["off", "nested", "shadow"]) {
    it(`--virt ${virt}: stop() ends a guest that faults on every fetch`, () => {
      // The time-out only turns a frozen VMM into a failure instead of a hung test run.
      const r = spawnSync(process.execPath, ["--conditions=source", script, virt], {
        encoding: "utf8",
        timeout: 90_000,
      });
      expect(r.signal, r.stderr).toBeNull();
      // Stopped, or judged dead in one line (nested paging reports a fetch from a
      // guest-physical address with nothing behind it): either way the host got control back.
      expect(r.stdout.trim()).toMatch(/^ended: (stopped|guest error)$/);
      expect(r.status).toBe(0);
    }, 120_000);
  }
});
