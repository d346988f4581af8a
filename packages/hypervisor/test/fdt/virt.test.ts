/// <reference types="node" />
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import type { DeviceTree, FdtNode } from "../../src/fdt/fdt.ts";
import { parseFdt } from "../../src/fdt/reader.ts";
import { buildVirtDeviceTree, buildVirtDtb, type VirtFdtConfig } from "../../src/fdt/virt.ts";

const base: VirtFdtConfig = { harts: 2, memorySize: 256 * 1024 * 1024, mmu: "sv48" };

function parsed(config: VirtFdtConfig): DeviceTree {
  return parseFdt(buildVirtDtb(config));
}

function node(dt: DeviceTree, path: string): FdtNode {
  const n = dt.find(path);
  if (n === undefined) throw new Error(`missing node ${path}`);
  return n;
}

const full: VirtFdtConfig = {
  ...base,
  hypervisor: true,
  bootargs: "console=ttyS0 earlycon",
  initrd: { start: 0x8f00_0000, end: 0x8f10_0000n },
  virtioDevices: 3,
  pci: true,
};

describe("buildVirtDeviceTree (read back with our reader)", () => {
  it("describes the root, memory and /chosen", () => {
    const dt = parsed(full);
    expect(dt.root.getU32("#address-cells")).toBe(2);
    expect(dt.root.getU32("#size-cells")).toBe(2);
    const mem = node(dt, "/memory@80000000");
    expect(mem.getString("device_type")).toBe("memory");
    expect(mem.getU64s("reg")).toEqual([0x8000_0000n, 0x1000_0000n]);
    const chosen = node(dt, "/chosen");
    expect(chosen.getString("bootargs")).toBe("console=ttyS0 earlycon");
    expect(chosen.getString("stdout-path")).toBe("/soc/serial@10000000");
    // 64-bit values: two cells each.
    expect(chosen.getProp("linux,initrd-start")!.length).toBe(8);
    expect(chosen.getU64("linux,initrd-start")).toBe(0x8f00_0000n);
    expect(chosen.getU64("linux,initrd-end")).toBe(0x8f10_0000n);
    expect(dt.bootCpuidPhys).toBe(0);
  });

  it("omits optional /chosen properties when not configured", () => {
    const chosen = node(parsed(base), "/chosen");
    expect(chosen.has("bootargs")).toBe(false);
    expect(chosen.has("linux,initrd-start")).toBe(false);
    expect(chosen.has("rng-seed")).toBe(false);
    const seeded = node(parsed({ ...base, rngSeed: Uint8Array.of(9, 8, 7) }), "/chosen");
    expect([...seeded.getProp("rng-seed")!]).toEqual([9, 8, 7]);
  });

  it("describes each hart with its ISA, MMU and local interrupt controller", () => {
    const dt = parsed(full);
    const cpus = node(dt, "/cpus");
    expect(cpus.getU32("timebase-frequency")).toBe(10_000_000);
    expect(cpus.getU32("#address-cells")).toBe(1);
    expect(cpus.getU32("#size-cells")).toBe(0);
    expect(cpus.children.map((c) => c.name)).toEqual(["cpu@0", "cpu@1"]);
    for (const [i, cpu] of cpus.children.entries()) {
      expect(cpu.getString("device_type")).toBe("cpu");
      expect(cpu.getU32("reg")).toBe(i);
      expect(cpu.getString("status")).toBe("okay");
      expect(cpu.getString("compatible")).toBe("riscv");
      expect(cpu.getString("riscv,isa")).toBe("rv64imafdch_zicsr_zifencei");
      expect(cpu.getString("mmu-type")).toBe("riscv,sv48");
      const intc = cpu.child("interrupt-controller")!;
      expect(intc.getString("compatible")).toBe("riscv,cpu-intc");
      expect(intc.getU32("#interrupt-cells")).toBe(1);
      expect(intc.has("interrupt-controller")).toBe(true);
      expect(intc.getU32("phandle")).toBeGreaterThan(0);
    }
  });

  it("follows the H-extension flag and the configured MMU", () => {
    expect(node(parsed(base), "/cpus/cpu@0").getString("riscv,isa")).toBe("rv64imafdc_zicsr_zifencei");
    for (const mmu of ["sv39", "sv48", "sv57"] as const) {
      expect(node(parsed({ ...base, mmu }), "/cpus/cpu@1").getString("mmu-type")).toBe(`riscv,${mmu}`);
    }
    expect(node(parsed({ ...base, isa: "rv64imac" }), "/cpus/cpu@0").getString("riscv,isa")).toBe("rv64imac");
  });

  it("wires CLINT and PLIC to every hart's controller (MSI 3, MTI 7; MEI 11, SEI 9)", () => {
    const dt = parsed({ ...base, harts: 3 });
    const intcs = [0, 1, 2].map((h) => node(dt, `/cpus/cpu@${h}/interrupt-controller`).getU32("phandle")!);
    expect(new Set(intcs).size).toBe(3);
    const clint = node(dt, "/soc/clint@2000000");
    expect(clint.getStrings("compatible")).toEqual(["sifive,clint0", "riscv,clint0"]);
    expect(clint.getU64s("reg")).toEqual([0x200_0000n, 0x1_0000n]);
    expect(clint.getU32s("interrupts-extended")).toEqual(intcs.flatMap((p) => [p, 3, p, 7]));
    const plic = node(dt, "/soc/plic@c000000");
    expect(plic.getStrings("compatible")).toEqual(["sifive,plic-1.0.0", "riscv,plic0"]);
    expect(plic.getU64s("reg")).toEqual([0xc00_0000n, 0x60_0000n]);
    expect(plic.getU32s("interrupts-extended")).toEqual(intcs.flatMap((p) => [p, 11, p, 9]));
    expect(plic.getU32("#interrupt-cells")).toBe(1);
    expect(plic.has("interrupt-controller")).toBe(true);
    expect(plic.getU32("riscv,ndev")).toBe(96);
    expect(node(parsed({ ...base, plicSources: 64 }), "/soc/plic@c000000").getU32("riscv,ndev")).toBe(64);
  });

  it("describes the UART, test/syscon with poweroff and reboot, the RTC and pvpanic", () => {
    const dt = parsed(base);
    const plic = node(dt, "/soc/plic@c000000").getU32("phandle");
    const uart = node(dt, "/soc/serial@10000000");
    expect(uart.getString("compatible")).toBe("ns16550a");
    expect(uart.getU64s("reg")).toEqual([0x1000_0000n, 0x100n]);
    expect(uart.getU32("clock-frequency")).toBe(3_686_400);
    expect(uart.getU32("interrupts")).toBe(10);
    expect(uart.getU32("interrupt-parent")).toBe(plic);
    const test = node(dt, "/soc/test@100000");
    expect(test.getStrings("compatible")).toEqual(["sifive,test1", "sifive,test0", "syscon"]);
    expect(test.getU64s("reg")).toEqual([0x10_0000n, 0x1000n]);
    const testPh = test.getU32("phandle");
    const off = node(dt, "/poweroff");
    expect(off.getString("compatible")).toBe("syscon-poweroff");
    expect([off.getU32("regmap"), off.getU32("offset"), off.getU32("value")]).toEqual([testPh, 0, 0x5555]);
    const reboot = node(dt, "/reboot");
    expect(reboot.getString("compatible")).toBe("syscon-reboot");
    expect([reboot.getU32("regmap"), reboot.getU32("offset"), reboot.getU32("value")]).toEqual([
      testPh,
      0,
      0x7777,
    ]);
    const rtc = node(dt, "/soc/rtc@101000");
    expect(rtc.getString("compatible")).toBe("google,goldfish-rtc");
    expect(rtc.getU64s("reg")).toEqual([0x10_1000n, 0x1000n]);
    expect(rtc.getU32("interrupts")).toBe(11);
    expect(rtc.getU32("interrupt-parent")).toBe(plic);
    // Visor's own addition (QEMU's RISC-V virt has no pvpanic): in the free page after the RTC.
    const pvpanic = node(dt, "/soc/pvpanic@102000");
    expect(pvpanic.getString("compatible")).toBe("qemu,pvpanic-mmio");
    expect(pvpanic.getU64s("reg")).toEqual([0x10_2000n, 0x1000n]);
  });

  it("adds one virtio-mmio node per configured device, 0x1000 apart, IRQs from 1", () => {
    const dt = parsed({ ...base, virtioDevices: 8 });
    const plic = node(dt, "/soc/plic@c000000").getU32("phandle");
    for (let i = 0; i < 8; i++) {
      const addr = 0x1000_1000 + i * 0x1000;
      const v = node(dt, `/soc/virtio_mmio@${addr.toString(16)}`);
      expect(v.getString("compatible")).toBe("virtio,mmio");
      expect(v.getU64s("reg")).toEqual([BigInt(addr), 0x1000n]);
      expect(v.getU32("interrupts")).toBe(i + 1);
      expect(v.getU32("interrupt-parent")).toBe(plic);
    }
    expect(node(parsed(base), "/soc").children.some((c) => c.name.startsWith("virtio_mmio"))).toBe(false);
  });

  it("adds the ECAM PCI host only when asked, with QEMU virt's windows and INTx swizzle", () => {
    expect(parsed(base).find("/soc/pci@30000000")).toBeUndefined();
    const dt = parsed(full);
    const plic = node(dt, "/soc/plic@c000000").getU32("phandle")!;
    expect(node(dt, "/soc/plic@c000000").getU32("#address-cells")).toBe(0);
    const pci = node(dt, "/soc/pci@30000000");
    expect(pci.getString("compatible")).toBe("pci-host-ecam-generic");
    expect(pci.getString("device_type")).toBe("pci");
    expect(pci.getU64s("reg")).toEqual([0x3000_0000n, 0x1000_0000n]);
    expect(pci.getU32s("bus-range")).toEqual([0, 255]);
    expect(pci.getU32("#address-cells")).toBe(3);
    expect(pci.getU32("#size-cells")).toBe(2);
    expect(pci.getU32("#interrupt-cells")).toBe(1);
    expect(pci.getU32s("ranges")).toEqual([
      0x0100_0000, 0, 0, 0, 0x300_0000, 0, 0x1_0000, 0x0200_0000, 0, 0x4000_0000, 0, 0x4000_0000, 0,
      0x4000_0000,
    ]);
    expect(pci.getU32s("interrupt-map-mask")).toEqual([0x1800, 0, 0, 7]);
    const map = pci.getU32s("interrupt-map")!;
    expect(map.length).toBe(16 * 6);
    // Slot 0 INTA -> 32, slot 1 INTA -> 33, slot 3 INTB -> (3 + 1) % 4 -> 32, slot 2 INTD -> 33.
    const route = (slot: number, pin: number): number | undefined => {
      for (let i = 0; i < map.length; i += 6) {
        if (map[i] === slot << 11 && map[i + 3] === pin) {
          expect(map[i + 4]).toBe(plic);
          return map[i + 5];
        }
      }
      return undefined;
    };
    expect(route(0, 1)).toBe(32);
    expect(route(1, 1)).toBe(33);
    expect(route(3, 2)).toBe(32);
    expect(route(2, 4)).toBe(33);
  });

  it("rejects impossible configurations with one-line errors", () => {
    expect(() => buildVirtDeviceTree({ ...base, harts: 0 })).toThrow("hart count 0 is out of range 1..512");
    expect(() => buildVirtDeviceTree({ ...base, harts: 513 })).toThrow("out of range");
    expect(() => buildVirtDeviceTree({ ...base, virtioDevices: 9 })).toThrow(
      "9 virtio devices (the map has 8 slots)",
    );
    expect(() => buildVirtDeviceTree({ ...base, memorySize: 0 })).toThrow("memory size 0");
    expect(() => buildVirtDeviceTree({ ...base, mmu: "sv32" as never })).toThrow('unknown mmu type "sv32"');
    expect(() => buildVirtDeviceTree({ ...base, bootHart: 2 })).toThrow("boot hart 2");
    expect(() => buildVirtDeviceTree({ ...base, pci: true, plicSources: 32 })).toThrow(
      "PLIC source count 32",
    );
    expect(() => buildVirtDeviceTree({ ...base, initrd: { start: 10, end: 5 } })).toThrow(
      "initrd end is below",
    );
    expect(() => buildVirtDeviceTree({ ...base, isa: "rv32imac" })).toThrow("is not an rv64 ISA string");
  });
});

// ---- cross-checks with external tools --------------------------------------------------

function have(cmd: string, args: string[]): boolean {
  const r = spawnSync(cmd, args, { stdio: "ignore" });
  return r.error === undefined && r.status === 0;
}
const hasDtc = have("dtc", ["--version"]);
const hasQemu = have("qemu-system-riscv64", ["--version"]);

function dtc(input: Uint8Array, from: "dtb" | "dts", to: "dtb" | "dts", extra: string[] = []) {
  const r = spawnSync("dtc", ["-I", from, "-O", to, ...extra], { input });
  return { status: r.status, stdout: r.stdout as Buffer, stderr: r.stderr.toString() };
}

describe("buildVirtDeviceTree checked by dtc", () => {
  const configs: [string, VirtFdtConfig][] = [
    ["minimal", base],
    ["everything", full],
    ["one hart, sv39, 8 virtio", { harts: 1, memorySize: 64 << 20, mmu: "sv39", virtioDevices: 8 }],
  ];
  for (const [name, config] of configs) {
    it.skipIf(!hasDtc)(
      `${name}: dtc decompiles it without warnings and recompiles it to the same tree (skipped when dtc, Debian package device-tree-compiler, is not installed)`,
      () => {
        const blob = buildVirtDtb(config);
        const dts = dtc(blob, "dtb", "dts");
        expect(dts.stderr).toBe("");
        expect(dts.status).toBe(0);
        const text = dts.stdout.toString();
        expect(text).toContain("/dts-v1/;");
        expect(text).toContain('compatible = "ns16550a";');
        // Back to a blob with dtc, then read both with our reader: same tree. Decompiled
        // source has bare numbers where phandles were, which dtc's interrupts-extended
        // check flags when compiling it again; that one check is off for this step.
        const again = dtc(dts.stdout, "dts", "dtb", ["-W", "no-interrupts_extended_property"]);
        expect(again.stderr).toBe("");
        expect(again.status).toBe(0);
        const shape = (n: FdtNode): unknown => ({
          name: n.name,
          props: Object.fromEntries([...n.props].map(([k, v]) => [k, [...v]])),
          children: n.children.map(shape),
        });
        expect(shape(parseFdt(new Uint8Array(again.stdout)).root)).toEqual(shape(parseFdt(blob).root));
      },
    );
  }
});

describe("reader checked against QEMU", () => {
  it.skipIf(!hasQemu)(
    "parses the DTB of qemu-system-riscv64 -machine virt and finds the same map (skipped when qemu-system-riscv64 is not installed)",
    () => {
      const dir = mkdtempSync(join(tmpdir(), "visor-fdt-"));
      try {
        const file = join(dir, "virt.dtb");
        const r = spawnSync("qemu-system-riscv64", [
          "-machine",
          `virt,dumpdtb=${file}`,
          "-smp",
          "2",
          "-m",
          "256M",
          "-nographic",
        ]);
        expect(r.status).toBe(0);
        const qemu = parseFdt(new Uint8Array(readFileSync(file)));
        const ours = parsed({ ...full, virtioDevices: 8 });
        // Every address, size and interrupt number we describe is what QEMU describes.
        for (const path of [
          "/memory@80000000",
          "/soc/clint@2000000",
          "/soc/plic@c000000",
          "/soc/serial@10000000",
          "/soc/test@100000",
          "/soc/rtc@101000",
          "/soc/virtio_mmio@10001000",
          "/soc/virtio_mmio@10008000",
          "/soc/pci@30000000",
        ]) {
          const q = node(qemu, path);
          const o = node(ours, path);
          expect(o.getU64s("reg"), path).toEqual(q.getU64s("reg"));
          for (const p of ["compatible", "interrupts", "riscv,ndev", "bus-range", "interrupt-map-mask"]) {
            if (q.has(p)) expect([...o.getProp(p)!], `${path} ${p}`).toEqual([...q.getProp(p)!]);
          }
        }
        expect(node(ours, "/cpus").getProp("timebase-frequency")).toEqual(
          node(qemu, "/cpus").getProp("timebase-frequency"),
        );
        expect(node(ours, "/soc/serial@10000000").getU32("clock-frequency")).toBe(
          node(qemu, "/soc/serial@10000000").getU32("clock-frequency"),
        );
        for (const n of ["/poweroff", "/reboot"]) {
          expect(node(ours, n).getU32("value")).toBe(node(qemu, n).getU32("value"));
        }
        // QEMU's PCI ranges start with our two windows (it adds a 64-bit one after them).
        const qr = node(qemu, "/soc/pci@30000000").getU32s("ranges")!;
        expect(qr.slice(0, 14)).toEqual(node(ours, "/soc/pci@30000000").getU32s("ranges"));
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  );
});
