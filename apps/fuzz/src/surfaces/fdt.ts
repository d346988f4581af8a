/**
 * FDT reader: a device tree blob (the machine's own, with bytes flipped and the end cut
 * off) must parse or be refused with a one-line `fdt:` error, never any other exception.
 */
import { buildVirtDtb, parseFdt } from "@visor/hypervisor";
import fc from "fast-check";
import { type FuzzSurface, invariant } from "../surface.ts";

const good = buildVirtDtb({
  harts: 2,
  memorySize: 128 * 1024 * 1024,
  mmu: "sv48",
  hypervisor: true,
  bootargs: "console=ttyS0",
  virtioDevices: 3,
  pci: true,
  initrd: { start: 0x88000000, end: 0x88100000 },
});

const surface: FuzzSurface<{ edits: [number, number][]; cut: number }> = {
  name: "fdt",
  description: "device tree blobs with flipped bytes and cut ends: parse, or a one-line fdt: error",
  arbitrary: fc.record({
    edits: fc.array(fc.tuple(fc.nat(good.length - 1), fc.integer({ min: 0, max: 255 })), {
      minLength: 1,
      maxLength: 16,
    }),
    cut: fc.nat(good.length),
  }),
  check({ edits, cut }) {
    const b = good.slice(0, cut === 0 ? good.length : cut);
    for (const [i, v] of edits) if (i < b.length) b[i] = v;
    try {
      parseFdt(b);
    } catch (e) {
      invariant(e instanceof Error, `threw a non-Error: ${String(e)}`);
      invariant(
        /^fdt: /.test(e.message) && !e.message.includes("\n"),
        `not a one-line fdt: error: ${e.message}`,
      );
    }
  },
  ciRuns: 500,
};

export default surface;
