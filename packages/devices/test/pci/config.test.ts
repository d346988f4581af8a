import type { BusDevice } from "@visor/io-bus";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { IrqLevel } from "../../src/irq.ts";
import { PciConfig, type PciConfigOptions } from "../../src/pci/config.ts";
import {
  PCI_BASE_ADDRESS_0,
  PCI_CAPABILITY_LIST,
  PCI_COMMAND,
  PCI_COMMAND_INTX_DISABLE,
  PCI_COMMAND_IO,
  PCI_COMMAND_MEMORY,
  PCI_HEADER_TYPE,
  PCI_INTERRUPT_LINE,
  PCI_INTERRUPT_PIN,
  PCI_REVISION_ID,
  PCI_ROM_ADDRESS,
  PCI_STATUS,
  PCI_STATUS_INTERRUPT,
  PCI_SUBSYSTEM_ID,
  PCI_SUBSYSTEM_VENDOR_ID,
} from "../../src/pci/constants.ts";
import { DeviceStateError } from "../../src/state.ts";

const regs = (name: string): BusDevice => ({ name, read: () => 0, write: () => {} });

function make(extra: Partial<PciConfigOptions> = {}): PciConfig {
  return new PciConfig({
    vendorId: 0x1af4,
    deviceId: 0x1001,
    classCode: 0x01_80_00,
    revision: 0,
    subsystemVendorId: 0x1af4,
    subsystemId: 2,
    interruptPin: 1,
    bars: [
      { kind: "io", size: 128, device: regs("io") },
      { kind: "mem32", size: 0x1000, device: regs("mem") },
      undefined,
      { kind: "mem32", size: 16, device: regs("small") },
    ],
    ...extra,
  });
}

const BAR = (i: number) => PCI_BASE_ADDRESS_0 + 4 * i;

describe("PciConfig header", () => {
  it("reads back identity, class, header type and subsystem, little-endian at any width", () => {
    const c = make();
    expect(c.read(0, 4)).toBe(0x1001_1af4);
    expect(c.read(0, 2)).toBe(0x1af4);
    expect(c.read(1, 1)).toBe(0x1a);
    expect(c.read(2, 2)).toBe(0x1001);
    expect(c.read(PCI_REVISION_ID, 4)).toBe(0x0180_0000); // revision 0, prog-if 0, subclass 0x80, class 0x01
    expect(c.classCode).toBe(0x018000);
    expect(c.read(PCI_HEADER_TYPE, 1)).toBe(0);
    expect(c.read(PCI_SUBSYSTEM_VENDOR_ID, 2)).toBe(0x1af4);
    expect(c.read(PCI_SUBSYSTEM_ID, 2)).toBe(2);
    expect(c.read(PCI_INTERRUPT_PIN, 1)).toBe(1);
    expect(c.read(PCI_CAPABILITY_LIST, 1)).toBe(0);
    expect(c.read(PCI_STATUS, 2)).toBe(0); // no capability list, no interrupt
  });

  it("reads 0 from the extended space 0x100..0xfff and ignores writes there", () => {
    const c = make();
    c.write(0x100, 4, 0xffff_ffff);
    expect(c.read(0x100, 4)).toBe(0);
    expect(c.read(0xffc, 4)).toBe(0);
  });

  it("changes only writable bits: command, cache line, interrupt line, BAR address bits", () => {
    const c = make();
    c.write(0, 4, 0xdead_beef);
    expect(c.read(0, 4)).toBe(0x1001_1af4);
    c.write(PCI_COMMAND, 2, 0xffff);
    expect(c.command).toBe(0x0547);
    c.write(PCI_STATUS, 2, 0xffff);
    expect(c.read(PCI_STATUS, 2)).toBe(0);
    c.write(PCI_INTERRUPT_LINE, 1, 0x21);
    expect(c.read(PCI_INTERRUPT_LINE, 1)).toBe(0x21);
    c.write(PCI_INTERRUPT_PIN, 1, 3);
    expect(c.read(PCI_INTERRUPT_PIN, 1)).toBe(1);
    c.write(0x0c, 1, 0x10); // cache line size
    expect(c.read(0x0c, 1)).toBe(0x10);
  });

  it("never changes a read-only byte, whatever is written where (property)", () => {
    const c = make();
    const before = Array.from({ length: 256 }, (_, i) => c.read(i, 1));
    const writable = new Set([4, 5, 0x0c, 0x3c, 0x10, 0x11, 0x14, 0x15, 0x16, 0x17, 0x1c, 0x1d, 0x1e, 0x1f]);
    fc.assert(
      fc.property(
        fc.array(
          fc.record({
            offset: fc.integer({ min: 0, max: 0x1003 }),
            size: fc.constantFrom(1, 2, 4) as fc.Arbitrary<1 | 2 | 4>,
            value: fc.nat({ max: 0xffff_ffff }),
          }),
        ),
        (writes) => {
          for (const w of writes) c.write(w.offset, w.size, w.value);
          for (let i = 0; i < 256; i++) {
            if (writable.has(i) || i === PCI_STATUS) continue;
            expect(c.read(i, 1), `byte 0x${i.toString(16)}`).toBe(before[i]);
          }
        },
      ),
    );
  });
});

describe("PciConfig BAR sizing", () => {
  it("an I/O BAR reads back its size mask with bit 0 set, 16-bit decode", () => {
    const c = make();
    expect(c.barValue(0)).toBe(0x1); // I/O, unassigned
    c.write(BAR(0), 4, 0xffff_ffff);
    expect(c.read(BAR(0), 4)).toBe(0x0000_ff81);
    c.write(BAR(0), 4, 0x1234_5678);
    expect(c.read(BAR(0), 4)).toBe(0x0000_5601);
  });

  it("a 32-bit memory BAR reads back ~(size - 1) with type bits 0", () => {
    const c = make();
    c.write(BAR(1), 4, 0xffff_ffff);
    expect(c.read(BAR(1), 4)).toBe(0xffff_f000);
    c.write(BAR(3), 4, 0xffff_ffff);
    expect(c.read(BAR(3), 4)).toBe(0xffff_fff0);
    c.write(BAR(1), 4, 0x4000_0abc);
    expect(c.read(BAR(1), 4)).toBe(0x4000_0000);
  });

  it("unimplemented BARs and the expansion ROM read 0 after all ones", () => {
    const c = make();
    for (const reg of [BAR(2), BAR(4), BAR(5), PCI_ROM_ADDRESS]) {
      c.write(reg, 4, 0xffff_ffff);
      expect(c.read(reg, 4)).toBe(0);
    }
  });

  it("sub-dword BAR writes merge into the BAR", () => {
    const c = make();
    c.write(BAR(1), 2, 0xffff);
    c.write(BAR(1) + 2, 2, 0x4123);
    expect(c.barValue(1)).toBe(0x4123_f000);
    c.write(BAR(0) + 1, 1, 0x20);
    expect(c.barValue(0)).toBe(0x2001);
  });

  it("a BAR decodes only with its space enabled in the command register and a non-zero address", () => {
    const c = make();
    c.write(BAR(0), 4, 0x1000);
    c.write(BAR(1), 4, 0x4000_0000);
    expect(c.barRange(0)).toBeUndefined();
    expect(c.barRange(1)).toBeUndefined();
    c.write(PCI_COMMAND, 2, PCI_COMMAND_IO);
    expect(c.barRange(0)).toMatchObject({ kind: "io", base: 0x1000, size: 128 });
    expect(c.barRange(1)).toBeUndefined();
    c.write(PCI_COMMAND, 2, PCI_COMMAND_IO | PCI_COMMAND_MEMORY);
    expect(c.barRange(1)).toMatchObject({ kind: "mem32", base: 0x4000_0000, size: 0x1000 });
    c.write(BAR(0), 4, 0);
    expect(c.barRange(0)).toBeUndefined();
    expect(c.barRange(2)).toBeUndefined();
  });

  it("tells the decode listener about command and BAR writes only", () => {
    const c = make();
    let calls = 0;
    c.setDecodeListener(() => calls++);
    c.write(PCI_INTERRUPT_LINE, 1, 5);
    c.write(0, 4, 0);
    expect(calls).toBe(0);
    c.write(PCI_COMMAND, 2, PCI_COMMAND_IO);
    c.write(BAR(0), 4, 0x2000);
    expect(calls).toBe(2);
    c.write(BAR(0), 4, 0x2000); // no change
    expect(calls).toBe(2);
  });
});

describe("PciConfig INTx", () => {
  it("status bit 3 follows the input; the output is masked by interrupt disable", () => {
    const c = make();
    const out = new IrqLevel();
    c.connectIntx(out);
    c.intx.set(true);
    expect(c.read(PCI_STATUS, 2) & PCI_STATUS_INTERRUPT).toBe(PCI_STATUS_INTERRUPT);
    expect(out.level).toBe(true);
    c.write(PCI_COMMAND, 2, PCI_COMMAND_INTX_DISABLE);
    expect(out.level).toBe(false);
    expect(c.read(PCI_STATUS, 2) & PCI_STATUS_INTERRUPT).toBe(PCI_STATUS_INTERRUPT);
    c.write(PCI_COMMAND, 2, 0);
    expect(out.level).toBe(true);
    expect(out.raised).toBe(2);
    c.intx.set(false);
    expect(out.level).toBe(false);
    expect(c.read(PCI_STATUS, 2)).toBe(0);
  });
});

describe("PciConfig state", () => {
  it("round-trips and refuses another device's state", () => {
    const c = make();
    c.write(BAR(0), 4, 0x1000);
    c.write(PCI_COMMAND, 2, PCI_COMMAND_IO);
    c.write(PCI_INTERRUPT_LINE, 1, 33);
    const s = JSON.parse(JSON.stringify(c.toState()));
    const d = make();
    let decode = 0;
    d.setDecodeListener(() => decode++);
    d.fromState(s);
    expect(decode).toBe(1);
    for (let i = 0; i < 256; i += 4) expect(d.read(i, 4)).toBe(c.read(i, 4));
    expect(d.barRange(0)).toMatchObject({ base: 0x1000 });
    const other = make({ deviceId: 0x1000 });
    expect(() => other.fromState(s)).toThrow(DeviceStateError);
    expect(() => d.fromState({ bytes: [1, 2] })).toThrow(/256 entries/);
  });

  it("reset returns to power-on values and keeps the device's INTx input", () => {
    const c = make();
    const out = new IrqLevel();
    c.connectIntx(out);
    c.intx.set(true);
    c.write(PCI_COMMAND, 2, PCI_COMMAND_IO | PCI_COMMAND_INTX_DISABLE);
    c.write(BAR(0), 4, 0x1000);
    expect(out.level).toBe(false);
    c.reset();
    expect(c.command).toBe(0);
    expect(c.barValue(0)).toBe(1);
    expect(out.level).toBe(true);
  });
});

describe("PciConfig validation", () => {
  it("refuses malformed definitions with one clear line", () => {
    expect(() => make({ vendorId: 0x10000 })).toThrow(/vendor ID/);
    expect(() => make({ classCode: -1 })).toThrow(/class code/);
    expect(() => make({ interruptPin: 5 })).toThrow(/interrupt pin 5/);
    expect(() => make({ bars: [{ kind: "io", size: 512, device: regs("x") }] })).toThrow(
      /io BAR size 512 must be a power of two in \[4, 256\]/,
    );
    expect(() => make({ bars: [{ kind: "mem32", size: 24, device: regs("x") }] })).toThrow(/power of two/);
    expect(() =>
      make({
        bars: [
          {
            kind: "io",
            size: 16,
            device: regs("x"),
            listeners: [{ offset: 15, size: 2, handler: () => {} }],
          },
        ],
      }),
    ).toThrow(/does not fit/);
    expect(() => make({ bars: new Array(7).fill(undefined) })).toThrow(/7 BARs/);
  });
});
