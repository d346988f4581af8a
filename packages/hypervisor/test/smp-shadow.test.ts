/**
 * Two harts under shadow paging. Both vCPUs keep their shadow tables in the hypervisor's
 * one page pool, and Linux fences other harts' TLBs through SBI RFENCE. Before the fix,
 * one vCPU resetting the pool (a full sfence.vma) left the other running on tables that
 * were being handed out again, and a remote sfence.vma flushed only the other hart's TLB,
 * not its shadows: the guest's init died with an illegal instruction early in user space.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { Machine } from "../src/index.ts";

const GUEST = join(import.meta.dirname, "../../../guests/riscv64");
const kernel = new Uint8Array(readFileSync(join(GUEST, "Image.gz")));
const initrd = new Uint8Array(readFileSync(join(GUEST, "initramfs.cpio.gz")));

describe("two harts under --virt shadow", () => {
  it("boot Linux to a power-off with both CPUs online", async () => {
    let text = "";
    const decoder = new TextDecoder();
    let m: Machine | undefined;
    const write = (b: Uint8Array): void => {
      text += decoder.decode(b, { stream: true });
      if (text.includes("end Kernel panic")) m?.stop(); // a panicked guest would spin until the time-out
    };
    m = await Machine.create({
      memory: 128 << 20,
      harts: 2,
      kernel,
      initrd,
      append: "console=ttyS0 quiet visor.run=cat+/proc/cpuinfo",
      console: { write },
      clock: "deterministic",
      virt: "shadow",
    });
    expect(await m.run()).toEqual({ kind: "poweroff" });
    expect(text).not.toContain("Kernel panic");
    expect(text).toMatch(/processor\s*: 0/);
    expect(text).toMatch(/processor\s*: 1/);
  }, 120_000);
});
