/**
 * Machine.pause holds are counted: with two holders (a debugger and the control socket,
 * say), releasing one leaves the VM held, whatever the order, and it runs again only once
 * both have let go. A holder releasing twice does not release another's hold.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { Machine } from "../src/index.ts";

const GUEST = join(import.meta.dirname, "../../../guests/riscv64");
const kernel = new Uint8Array(readFileSync(join(GUEST, "Image.gz")));
const initrd = new Uint8Array(readFileSync(join(GUEST, "initramfs.cpio.gz")));

const tick = (ms = 20) => new Promise((r) => setTimeout(r, ms));

async function retired(m: Machine, n: number): Promise<void> {
  while (m.instructions < n && !m.exited) await tick(5);
}

/** True when no instruction retires over a few turns of the event loop. */
async function held(m: Machine): Promise<boolean> {
  await tick(30);
  const before = m.instructions;
  await tick(60);
  return m.instructions === before;
}

describe("Machine.pause", () => {
  for (const order of ["first-taken first", "last-taken first", "one holder twice"] as const) {
    it(`two holders: the VM runs only once both let go (${order})`, async () => {
      const m = await Machine.create({
        memory: 64 << 20,
        kernel,
        initrd,
        append: "console=ttyS0",
        console: { write() {} },
        virt: "off",
      });
      const run = m.run();
      await retired(m, 200_000);
      const a = m.pause();
      const b = m.pause();
      expect(await held(m)).toBe(true);
      if (order === "first-taken first") a();
      else if (order === "last-taken first") b();
      else {
        a();
        a(); // a second call of the same release must not release b's hold
      }
      expect(await held(m)).toBe(true);
      if (order === "first-taken first") b();
      else if (order === "last-taken first") a();
      else b();
      const at = m.instructions;
      await retired(m, at + 100_000);
      expect(m.instructions).toBeGreaterThan(at);
      m.stop();
      await run;
    }, 60_000);
  }
});
