/**
 * The warm-up guest (packages/hypervisor/warmup) must run to a clean power-off in every
 * virtualization mode and really take the paths it exists to train: traps, MMIO exits,
 * hypercalls, injected interrupts, page walks and U-mode. Nothing here measures speed;
 * the boot benchmark does (pnpm bench --suite boot).
 */
import { describe, expect, it } from "vitest";
import { parseLinuxImageHeader, type VirtMode, warmUp, warmupImage, warmupMachine } from "../src/index.ts";

const MODES: VirtMode[] = ["off", "nested", "shadow"];

describe("warm-up guest", () => {
  it("is a RISC-V Linux Image", () => {
    const img = warmupImage();
    const h = parseLinuxImageHeader(img);
    expect(Number(h.imageSize)).toBeGreaterThanOrEqual(img.length);
  });

  for (const virt of MODES) {
    it(`--virt ${virt}: powers off after trapping, exiting, calling SBI and taking interrupts`, async () => {
      const m = await warmupMachine(virt, { stats: true, clock: "deterministic" });
      expect(await m.run()).toEqual({ kind: "poweroff" });
      const rows = new Map(m.exitStats.table().map((r) => [r.reason, r.count]));
      const count = (prefix: string) =>
        [...rows].filter(([k]) => k.startsWith(prefix)).reduce((n, [, c]) => n + c, 0);
      expect(count("hypercall: SBI BASE")).toBe(12);
      expect(count("hypercall: SBI SRST")).toBe(1);
      if (virt !== "off") {
        // Injected through hvip; with --virt off the hart takes them directly.
        expect(count("interrupt injected: timer")).toBe(3);
        expect(count("interrupt injected: software")).toBe(3);
      }
      const hart = m.vcpus[0]!.hart.stats;
      // MMIO: exits when virtualized, direct bus accesses by the hart with --virt off.
      expect(virt === "off" ? hart.mmioReads : count("mmio read: uart16550")).toBeGreaterThan(50);
      expect(hart.traps).toBeGreaterThan(300);
      expect(hart.interrupts).toBeGreaterThanOrEqual(6);
      expect(hart.walks).toBeGreaterThan(100);
      // a loop past the translator's hotness threshold: the interpreter's compile
      // request and entries into translated code (the default mode, --jit on)
      const jit = m.vcpus[0]!.hart.jitStats;
      expect(jit.regions).toBeGreaterThan(0);
      expect(jit.entries).toBeGreaterThan(0);
    });
  }

  it("runs once per mode per process", async () => {
    await warmUp("off");
    expect(await warmUp("off")).toBe(0);
  });
});
