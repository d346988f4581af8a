/**
 * The binary translation mode (MachineOptions.jit) reaches every hart the machine builds,
 * and it is the host's choice, not guest state: a snapshot or a migration stream does not
 * carry it, and the restoring side's RestoreOptions.jit decides. Until the translator is
 * merged a hart reports mode "off" with the reason; the checks below accept that and
 * nothing else, so they tighten by themselves once hart.jitStats reports the real mode.
 */

import { JIT_MODES, type JitMode } from "@visor/cpu";
import { describe, expect, it } from "vitest";
import { decodeSnapshot, Machine, MigrationReceiver, migrate, warmUp, warmupMachine } from "../src/index.ts";

const quiet = { write() {} };

/** Every vCPU was built with `mode` and its hart reports it (or why translation is unavailable). */
function expectMode(m: Machine, mode: JitMode): void {
  expect(m.jit).toBe(mode);
  expect(m.vcpus.length).toBeGreaterThan(0);
  for (const v of m.vcpus) {
    expect(v.jit).toBe(mode);
    const s = v.hart.jitStats;
    if (s.mode !== mode) {
      expect(s.mode).toBe("off");
      expect(s.unavailable).not.toBe("");
    }
  }
  const sum = m.jitStats;
  expect(sum.mode === mode || (sum.mode === "off" && sum.unavailable !== "")).toBe(true);
}

/** The bytes as Latin-1 text: JSON records inside a binary stream stay searchable. */
function latin1(chunks: Uint8Array[]): string {
  return chunks.map((c) => Buffer.from(c).toString("latin1")).join("");
}

describe("MachineOptions.jit", () => {
  for (const mode of JIT_MODES) {
    it(`jit ${mode}: every hart is built with it, and the guest runs to power-off`, async () => {
      const m = await warmupMachine("nested", { jit: mode, harts: 2, clock: "deterministic" });
      expectMode(m, mode);
      expect(await m.run()).toEqual({ kind: "poweroff" });
      const s = m.jitStats;
      expect(s.executedTranslated).toBeLessThanOrEqual(m.instructionsHere);
      if (mode === "off") expect(s.executedTranslated).toBe(0);
    });
  }

  it("defaults to on", async () => {
    expectMode(await warmupMachine("off"), "on");
  });

  it("refuses a mode that is not one of off, on, always in one line", async () => {
    await expect(warmupMachine("off", { jit: "fast" as JitMode })).rejects.toThrow(
      /^jit: 'fast' is not one of off, on, always$/,
    );
  });

  it("is not in a snapshot: the restoring side's jit option decides", async () => {
    const m = await warmupMachine("nested", { jit: "always", clock: "deterministic" });
    // Part of the way in, driven vCPU by vCPU (no run loop, so nothing races the save).
    m.vcpus[0]!.run(20_000);
    const executed = m.instructions;
    expect(executed).toBeGreaterThan(0);
    const bytes = m.snapshot();
    const state = decodeSnapshot(bytes).state;
    expect(Object.keys(state.config)).not.toContain("jit");
    expect(JSON.stringify(state)).not.toContain('"jit"');

    const off = await Machine.restore(bytes, { console: quiet, jit: "off" });
    expectMode(off, "off");
    // The restored VM's earlier instructions are its own, not this machine's.
    expect(off.instructions).toBe(executed);
    expect(off.instructionsHere).toBe(0);
    expect(await off.run()).toEqual({ kind: "poweroff" });
    expect(off.instructionsHere).toBe(off.instructions - executed);
    // Without the option it is the default, not the mode the VM was saved with.
    expectMode(await Machine.restore(bytes, { console: quiet }), "on");
  });

  it("is not in a migration stream: the receiving side's jit option decides", async () => {
    const src = await warmupMachine("nested", { jit: "always", clock: "deterministic" });
    const rx = new MigrationReceiver();
    const sent: Uint8Array[] = [];
    await migrate(src, async (chunk) => {
      sent.push(chunk);
      rx.push(chunk);
    });
    expect(rx.done).toBe(true);
    expect(Object.keys(rx.machineConfig!)).not.toContain("jit");
    expect(latin1(sent)).not.toContain('"jit"');
    const dst = await rx.machine({ console: quiet, jit: "off" });
    expectMode(dst, "off");
    expect(await dst.run()).toEqual({ kind: "poweroff" });
  });

  it("warms up once per virtualization and translation mode", async () => {
    await warmUp("off", "off");
    expect(await warmUp("off", "off")).toBe(0);
    // Another translation mode is another warm-up (a host that asked for off ran no translator).
    expect(await warmUp("off", "always")).toBeGreaterThan(0);
    expect(await warmUp("off", "always")).toBe(0);
  });
});
