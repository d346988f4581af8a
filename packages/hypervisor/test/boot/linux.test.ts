/// <reference types="node" />
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { GuestMemory, gpa } from "@visor/memory";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { gunzip, isGzip } from "../../src/boot/gzip.ts";
import {
  computeLinuxLayout,
  FW_JUMP_FDT_ADDR,
  fwJumpReservedRanges,
  LINUX_FDT_LIMIT,
  loadLinux,
  parseLinuxImageHeader,
  planLinuxBoot,
  readLinuxKernel,
} from "../../src/boot/linux.ts";

const MiB = 1024 * 1024;
const BASE = 0x8000_0000;

/** A fake RISC-V Image: a valid header followed by `bodyLen` bytes of pattern. */
function fakeImage(
  opts: { bodyLen?: number; imageSize?: number; magic?: boolean; magic2?: boolean; flags?: bigint } = {},
) {
  const body = opts.bodyLen ?? 4096;
  const b = new Uint8Array(64 + body);
  const dv = new DataView(b.buffer);
  dv.setUint32(0, 0x6f10_4d5a, true); // code0: "MZ" + a jump, as the EFI stub makes it
  dv.setUint32(4, 0x0001_0c60, true);
  dv.setBigUint64(8, 0x20_0000n, true);
  dv.setBigUint64(16, BigInt(opts.imageSize ?? 64 + body), true);
  dv.setBigUint64(24, opts.flags ?? 0n, true);
  dv.setUint32(32, 2, true); // version 0.2
  if (opts.magic ?? true) b.set([0x52, 0x49, 0x53, 0x43, 0x56, 0, 0, 0], 48); // "RISCV\0\0\0"
  if (opts.magic2 ?? true) b.set([0x52, 0x53, 0x43, 0x05], 56); // "RSC\x05"
  dv.setUint32(60, 0x40, true);
  for (let i = 64; i < b.length; i++) b[i] = (i * 7) & 0xff;
  return b;
}

describe("RISC-V Image header", () => {
  it("parses the fields of boot-image-header.rst", () => {
    const h = parseLinuxImageHeader(fakeImage({ imageSize: 0x48_7000 }));
    expect(h.textOffset).toBe(0x20_0000n);
    expect(h.imageSize).toBe(0x48_7000n);
    expect(h.flags).toBe(0n);
    expect(h.version).toBe(2);
    expect(h.peOffset).toBe(0x40);
  });

  it("accepts either magic, rejects neither, and big-endian images", () => {
    expect(() => parseLinuxImageHeader(fakeImage({ magic: false }))).not.toThrow();
    expect(() => parseLinuxImageHeader(fakeImage({ magic2: false }))).not.toThrow();
    expect(() => parseLinuxImageHeader(fakeImage({ magic: false, magic2: false }))).toThrow(
      "kernel: not a RISC-V Linux Image (bad magic)",
    );
    expect(() => parseLinuxImageHeader(new Uint8Array(10))).toThrow("kernel: not a RISC-V Linux Image");
    expect(() => parseLinuxImageHeader(fakeImage({ flags: 1n }))).toThrow("big-endian");
  });

  const bundled = join(import.meta.dirname, "../../../../guests/riscv64/Image.gz");
  it.skipIf(!existsSync(bundled))(
    "reads the bundled guest kernel guests/riscv64/Image.gz (skipped when the guest is not in the checkout)",
    async () => {
      const k = await readLinuxKernel(new Uint8Array(readFileSync(bundled)));
      expect(k.header.textOffset).toBe(0x20_0000n);
      expect(k.footprint).toBeGreaterThanOrEqual(k.image.length);
      expect(Number(k.header.imageSize)).toBe(k.footprint);
    },
  );
});

describe("gzip kernels", () => {
  it("detects gzip by its 1f 8b header and decompresses with DecompressionStream", async () => {
    const raw = fakeImage({ bodyLen: 100_000 });
    const gz = new Uint8Array(gzipSync(raw));
    expect(isGzip(gz)).toBe(true);
    expect(isGzip(raw)).toBe(false);
    expect(await gunzip(gz)).toEqual(raw);
    const k = await readLinuxKernel(gz);
    expect(k.image).toEqual(raw);
    expect((await readLinuxKernel(raw)).image).toBe(raw);
  });

  it("reports corrupt, truncated or trailing-junk gzip as one clear line", async () => {
    const gz = new Uint8Array(gzipSync(fakeImage({ bodyLen: 50_000 })));
    const flipped = gz.slice();
    flipped[30]! ^= 0xff;
    flipped[40]! ^= 0x55;
    const badCrc = gz.slice();
    badCrc[badCrc.length - 6]! ^= 1;
    const junk = new Uint8Array([...gz, 1, 2, 3]);
    for (const bad of [flipped, gz.subarray(0, gz.length - 20), gz.subarray(0, 12), badCrc, junk]) {
      await expect(readLinuxKernel(bad)).rejects.toThrow(/^kernel: corrupt gzip data$/);
    }
  });

  it("a gzip that inflates to a non-Image is 'bad magic'", async () => {
    await expect(readLinuxKernel(new Uint8Array(gzipSync(new Uint8Array(1000))))).rejects.toThrow(
      "kernel: not a RISC-V Linux Image (bad magic)",
    );
  });

  it("stops inflating past the RAM size (a gzip bomb cannot exhaust the host)", async () => {
    const bomb = new Uint8Array(gzipSync(new Uint8Array(8 * MiB)));
    await expect(readLinuxKernel(bomb, { maxBytes: 4 * MiB })).rejects.toThrow(
      "memory too small for the kernel: needs more than 4 MiB",
    );
  });
});

describe("computeLinuxLayout", () => {
  it("puts the kernel at RAM + 2 MiB, the FDT 2 MiB-aligned at the top, the initrd right below it", () => {
    const l = computeLinuxLayout({
      ramSize: 256 * MiB,
      kernelSize: 0x48_7000,
      initrdSize: 1_148_285,
      fdtSize: 2000,
    });
    expect(l.kernelAddr).toBe(0x8020_0000);
    expect(l.entry).toBe(0x8020_0000);
    expect(l.kernelEnd).toBe(0x8020_0000 + 0x48_7000);
    expect(l.fdtAddr).toBe(BASE + 256 * MiB - 2 * MiB);
    expect(l.initrdEnd - l.initrdStart).toBe(1_148_285);
    expect(l.initrdStart % 4096).toBe(0);
    expect(l.initrdEnd).toBeLessThanOrEqual(l.fdtAddr);
    expect(l.fdtAddr - l.initrdEnd).toBeLessThan(4096);
  });

  it("without an initrd both initrd fields are 0", () => {
    const l = computeLinuxLayout({ ramSize: 64 * MiB, kernelSize: 0x48_7000, fdtSize: 4096 });
    expect([l.initrdStart, l.initrdEnd]).toEqual([0, 0]);
  });

  it("keeps the FDT below RAM + 3 GiB on big machines", () => {
    const l = computeLinuxLayout({
      ramSize: 8 * 1024 * MiB,
      kernelSize: MiB,
      initrdSize: MiB,
      fdtSize: 4096,
    });
    expect(l.fdtAddr).toBe(BASE + LINUX_FDT_LIMIT - 2 * MiB);
  });

  it("says how much memory is needed when it does not fit, and that amount fits", () => {
    const req = { kernelSize: 0x48_7000, initrdSize: 1_148_285, fdtSize: 2000 };
    expect(() => computeLinuxLayout({ ...req, ramSize: 8 * MiB })).toThrow(
      "memory too small for the kernel: needs 9 MiB",
    );
    expect(() => computeLinuxLayout({ ...req, ramSize: 9 * MiB })).not.toThrow();
    expect(() => computeLinuxLayout({ kernelSize: 100 * MiB, fdtSize: 100, ramSize: 64 * MiB })).toThrow(
      "memory too small for the kernel: needs 103 MiB",
    );
  });

  it("rejects a kernel offset that breaks the 2 MiB alignment rule", () => {
    expect(() =>
      computeLinuxLayout({ ramSize: 64 * MiB, kernelSize: 1, fdtSize: 1, kernelOffset: 0x1000 }),
    ).toThrow("kernel address 0x80001000 is not 2 MiB aligned");
    expect(() => computeLinuxLayout({ ramSize: 64 * MiB, kernelSize: 1, fdtSize: 0 })).toThrow(
      "device tree is empty",
    );
  });

  it("keeps the initrd and FDT clear of reserved ranges (fw_jump's FDT copy at 0x82200000)", () => {
    expect(FW_JUMP_FDT_ADDR).toBe(0x8220_0000);
    const reserved = fwJumpReservedRanges(5000);
    expect(reserved).toEqual([{ start: 0x8220_0000, end: 0x8220_0000 + 8192 + 0x10_0000 }]);
    // 36 MiB: the FDT would go at 0x82200000 and the initrd right below it; both must move.
    const req = { ramSize: 36 * MiB, kernelSize: 0x48_7000, initrdSize: 3 * MiB, fdtSize: 5000 };
    const free = computeLinuxLayout(req);
    expect(free.fdtAddr).toBe(0x8220_0000);
    const l = computeLinuxLayout({ ...req, reserved });
    const r = reserved[0]!;
    const clear = (a: number, b: number) => b <= r.start || a >= r.end;
    expect(clear(l.fdtAddr, l.fdtAddr + 5000)).toBe(true);
    expect(clear(l.initrdStart, l.initrdEnd)).toBe(true);
    expect(l.fdtAddr).toBe(0x8200_0000);
    expect(l.initrdEnd).toBeLessThanOrEqual(l.fdtAddr);
    // With plenty of RAM nothing changes.
    expect(computeLinuxLayout({ ...req, ramSize: 256 * MiB, reserved })).toEqual(
      computeLinuxLayout({ ...req, ramSize: 256 * MiB }),
    );
    expect(() => computeLinuxLayout({ ...req, kernelSize: 40 * MiB, ramSize: 256 * MiB, reserved })).toThrow(
      "linux boot: the kernel [0x80200000, 0x82a00000) overlaps the reserved range [0x82200000, 0x82302000)",
    );
    expect(() => computeLinuxLayout({ ...req, reserved: [{ start: 5, end: 5 }] })).toThrow(
      "is not a valid range",
    );
  });

  it("any layout it returns is in RAM, aligned and non-overlapping; the N MiB it asks for works (property)", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 4096 }).map((p) => p * 64 * 1024),
        fc.integer({ min: 64, max: 64 * MiB }),
        fc.integer({ min: 0, max: 64 * MiB }),
        fc.integer({ min: 40, max: 3 * MiB }),
        fc.boolean(),
        (ramSize, kernelSize, initrdSize, fdtSize, fwJump) => {
          const reserved = fwJump ? fwJumpReservedRanges(fdtSize) : [];
          const req = { ramSize, kernelSize, initrdSize, fdtSize, reserved };
          let l: ReturnType<typeof computeLinuxLayout>;
          try {
            l = computeLinuxLayout(req);
          } catch (e) {
            if ((e as Error).message.includes("overlaps the reserved range")) {
              expect(0x8020_0000 + kernelSize).toBeGreaterThan(FW_JUMP_FDT_ADDR);
              return;
            }
            const m = /^memory too small for the kernel: needs (\d+) MiB$/.exec((e as Error).message);
            expect(m).not.toBeNull();
            const need = Number(m![1]);
            expect(need * MiB).toBeGreaterThan(ramSize);
            expect(() => computeLinuxLayout({ ...req, ramSize: need * MiB })).not.toThrow();
            if (need > 1) expect(() => computeLinuxLayout({ ...req, ramSize: (need - 1) * MiB })).toThrow();
            return;
          }
          expect(l.kernelAddr % (2 * MiB)).toBe(0);
          expect(l.fdtAddr % (2 * MiB)).toBe(0);
          expect(l.fdtAddr + fdtSize).toBeLessThanOrEqual(BASE + ramSize);
          expect(l.kernelEnd).toBeLessThanOrEqual(initrdSize > 0 ? l.initrdStart : l.fdtAddr);
          if (initrdSize > 0) {
            expect(l.initrdStart % 4096).toBe(0);
            expect(l.initrdEnd).toBeLessThanOrEqual(l.fdtAddr);
          }
          for (const r of reserved) {
            expect(l.fdtAddr + fdtSize <= r.start || l.fdtAddr >= r.end).toBe(true);
            if (initrdSize > 0) expect(l.initrdEnd <= r.start || l.initrdStart >= r.end).toBe(true);
          }
        },
      ),
      { numRuns: 500 },
    );
  });
});

describe("planLinuxBoot + loadLinux", () => {
  it("copies kernel, initrd and FDT into RAM and zeroes the kernel's .bss", async () => {
    const image = fakeImage({ bodyLen: 8192, imageSize: 64 + 8192 + 4096 });
    const initrd = Uint8Array.from({ length: 5000 }, (_, i) => (i * 13) & 0xff);
    const fdt = Uint8Array.from({ length: 300 }, (_, i) => (i * 3) & 0xff);
    const plan = await planLinuxBoot({
      kernel: new Uint8Array(gzipSync(image)),
      ramSize: 16 * MiB,
      initrdSize: initrd.length,
      fdtSize: 512,
    });
    expect(plan.kernelBytes).toEqual(image);
    expect(plan.kernelEnd - plan.kernelAddr).toBe(64 + 8192 + 4096);
    const ram = GuestMemory.allocate(BASE, 16 * MiB);
    ram.viewMut(ram.base, ram.size).fill(0xcc);
    loadLinux(ram, { plan, initrd, fdt });
    expect(ram.view(gpa(plan.kernelAddr), image.length)).toEqual(image);
    expect(ram.view(gpa(plan.kernelAddr + image.length), 4096).every((b) => b === 0)).toBe(true);
    expect(ram.read8(gpa(plan.kernelEnd))).toBe(0xcc);
    expect(ram.view(gpa(plan.initrdStart), initrd.length)).toEqual(initrd);
    expect(ram.view(gpa(plan.fdtAddr), fdt.length)).toEqual(fdt);
    expect(ram.read8(gpa(BASE))).toBe(0xcc); // the firmware area is left alone
  });

  it("refuses pieces that do not match the plan, and a plan for more RAM than there is", async () => {
    const plan = await planLinuxBoot({
      kernel: fakeImage(),
      ramSize: 16 * MiB,
      initrdSize: 100,
      fdtSize: 64,
    });
    const ram = GuestMemory.allocate(BASE, 16 * MiB);
    expect(() => loadLinux(ram, { plan, fdt: new Uint8Array(64) })).toThrow(
      "linux boot: initrd is 0 bytes but the plan has room for 100",
    );
    expect(() => loadLinux(ram, { plan, initrd: new Uint8Array(100), fdt: new Uint8Array(65) })).toThrow(
      "linux boot: device tree is 65 bytes but the plan reserved 64",
    );
    const small = GuestMemory.allocate(BASE, 8 * MiB);
    expect(() => loadLinux(small, { plan, initrd: new Uint8Array(100), fdt: new Uint8Array(64) })).toThrow(
      /^linux boot: initrd \[0x80dff000, 0x80dff064\) is outside RAM \[0x80000000, 0x80800000\)$/,
    );
    expect(small.viewMut(small.base, small.size).every((b) => b === 0)).toBe(true);
  });

  it("reports a kernel too big for RAM before anything is written", async () => {
    await expect(
      planLinuxBoot({ kernel: fakeImage({ imageSize: 30 * MiB }), ramSize: 16 * MiB, fdtSize: 4096 }),
    ).rejects.toThrow("memory too small for the kernel: needs 33 MiB");
  });
});
