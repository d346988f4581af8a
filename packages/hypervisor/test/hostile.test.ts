/**
 * Hostile guests: small guest kernels (test/fixtures/hostile, one access each) that try
 * to reach memory that is not theirs: physical addresses beyond their RAM, PTEs pointing
 * there, a page-table pointer into host memory, a PTE with an impossible physical
 * address, a hole in the address space. In nested and shadow mode the page right after
 * the guest's RAM is host memory (the hypervisor's page-table pool); the test fills its
 * last page with a secret that is also a valid leaf PTE mapping that page, so reading it
 * as data or walking it as a page table would both show.
 *
 * In every mode the guest must neither read nor change the secret: either its own trap
 * handler gets the fault (it prints FAULT) or the hypervisor stops it with a GuestError.
 * A control kernel, which only touches its own RAM through its own page tables, must
 * print OK, so the guests demonstrably run.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { hpa } from "@visor/memory";
import { describe, expect, it } from "vitest";
import { GuestError, Machine, type VirtMode } from "../src/index.ts";

const BIN = join(import.meta.dirname, "fixtures/hostile/bin");
const MEMORY = 64 << 20;
/** Must match SECRET_PA in fixtures/hostile/src/hostile.S: the last page of the pool. */
const SECRET_PA = 0x847f_f000;
const SECRET = BigInt(((SECRET_PA / 4096) * 1024) | 0xcf);
const INSTRUCTION_LIMIT = 5_000_000;

interface Outcome {
  console: string;
  exit: string;
  /** The secret page, if this mode has host memory there; undefined otherwise. */
  secretIntact: boolean | undefined;
}

async function runHostile(name: string, virt: VirtMode): Promise<Outcome> {
  let out = "";
  const machine = await Machine.create({
    memory: MEMORY,
    kernel: new Uint8Array(readFileSync(join(BIN, `${name}.bin`))),
    append: "",
    rng: false,
    console: {
      write(b) {
        out += new TextDecoder().decode(b);
      },
    },
    clock: "deterministic",
    virt,
  });
  const ram = machine.ram;
  const planted = ram.contains(hpa(SECRET_PA), 4096);
  if (planted) {
    expect(SECRET_PA, "the secret page must be host memory, not guest RAM").toBeGreaterThanOrEqual(
      machine.guestRamEnd,
    );
    for (let i = 0; i < 512; i++) ram.write64(hpa(SECRET_PA + 8 * i), SECRET);
  }
  const hart = machine.vcpus[0]!.hart;
  const watchdog = setInterval(() => {
    if (hart.instret() > INSTRUCTION_LIMIT) machine.stop();
  }, 20);
  let exit: string;
  try {
    exit = (await machine.run()).kind;
  } catch (e) {
    // Only the hypervisor's own verdict on the guest is acceptable, not a host crash.
    expect(e).toBeInstanceOf(GuestError);
    exit = "guest-error";
  } finally {
    clearInterval(watchdog);
  }
  let secretIntact: boolean | undefined;
  if (planted) {
    secretIntact = true;
    for (let i = 0; i < 512; i++) if (ram.read64(hpa(SECRET_PA + 8 * i)) !== SECRET) secretIntact = false;
  }
  return { console: out, exit, secretIntact };
}

const MODES: VirtMode[] = ["off", "nested", "shadow"];
const HOSTILE = ["phys-read", "phys-write", "pte-read", "pte-write", "pte-table", "pte-huge", "hole"];

describe("hostile guests", () => {
  for (const mode of MODES) {
    it(`--virt ${mode}: the control guest runs and reports OK`, async () => {
      const o = await runHostile("control", mode);
      expect(o).toMatchObject({ console: "OK\n", exit: "poweroff" });
      if (mode !== "off") expect(o.secretIntact).toBe(true);
    });

    for (const name of HOSTILE) {
      it(`--virt ${mode}: ${name} cannot reach host memory`, async () => {
        const o = await runHostile(name, mode);
        expect(o.console).not.toMatch(/LEAK|READ|WROTE/);
        if (o.exit === "guest-error") expect(o.console).toBe("");
        else expect(o).toMatchObject({ console: "FAULT\n", exit: "poweroff" });
        // Nested and shadow have host memory right after the guest's RAM.
        expect(o.secretIntact).toBe(mode === "off" ? undefined : true);
      });
    }

    it(`--virt ${mode}: a page-table pointer to a device is an access fault for the guest`, async () => {
      // The hypervisor must not emulate the walk's PTE read as the guest's own load.
      const o = await runHostile("pte-mmio", mode);
      expect(o).toMatchObject({ console: "FAULT\n", exit: "poweroff" });
    });
  }
});
