/**
 * Loading Linux on an x86-64 machine: the 64-bit boot protocol
 * (Documentation/arch/x86/boot.rst), with the VMM doing what a boot loader and the
 * kernel's own real-mode setup would: it loads the protected-mode part of the bzImage at
 * 1 MiB, fills the zero page (`struct boot_params`: the setup header copied from the
 * image, the command line, the initrd, the e820 memory map), writes an MP table so the
 * kernel finds every CPU and the IOAPIC (Intel MultiProcessor Specification 1.4), and
 * starts the boot vCPU in long mode on identity-mapped page tables at the 64-bit entry
 * point (load address + 0x200) with rsi pointing at the zero page.
 *
 * The low-memory layout follows Firecracker's (src/vmm/src/arch/x86_64/layout.rs):
 * everything the VMM writes lives below 1 MiB, away from the kernel and the initrd.
 */
import {
  CR0_ET,
  CR0_PE,
  CR0_PG,
  CR4_PAE,
  EFER_LMA,
  EFER_LME,
  GDT_CODE64,
  GDT_DATA,
  GDT_TSS,
  PTE_LARGE,
  PTE_PRESENT,
  PTE_WRITE,
  type Regs,
  type Sregs,
  segmentFromGdt,
} from "@visor/kvm";

export const GDT_ADDR = 0x500;
export const IDT_ADDR = 0x520;
export const ZERO_PAGE = 0x7000;
export const BOOT_STACK = 0x8ff0;
export const PML4_ADDR = 0x9000;
export const PDPT_ADDR = 0xa000;
/** Four page directories (0xb000-0xefff): the first 4 GiB, RAM and the device window. */
export const PD_ADDR = 0xb000;
const PD_COUNT = 4;
export const CMDLINE_ADDR = 0x20000;
export const CMDLINE_MAX = 0x10000;
/** The MP table's place: the last KiB of base memory, reserved in the e820 map. */
export const MPTABLE_ADDR = 0x9fc00;
export const EBDA_END = 0xa0000;
export const KERNEL_ADDR = 0x10_0000;
/** Where the local APICs and the IOAPIC sit (the architectural defaults). */
export const LAPIC_ADDR = 0xfee0_0000;
export const IOAPIC_ADDR = 0xfec0_0000;

const E820_RAM = 1;
const E820_RESERVED = 2;

/** Offsets in `struct boot_params` and its setup header (boot.rst, "The real-mode kernel header"). */
const BP = {
  e820Entries: 0x1e8,
  hdr: 0x1f1,
  setupSects: 0x1f1,
  vidMode: 0x1fa,
  bootFlag: 0x1fe,
  header: 0x202,
  version: 0x206,
  typeOfLoader: 0x210,
  loadflags: 0x211,
  ramdiskImage: 0x218,
  ramdiskSize: 0x21c,
  heapEndPtr: 0x224,
  cmdLinePtr: 0x228,
  initrdAddrMax: 0x22c,
  xloadflags: 0x236,
  cmdlineSize: 0x238,
  initSize: 0x260,
  e820Table: 0x2d0,
} as const;
/** End of the setup header we copy (the header ends before 0x268 in every 2.x version). */
const HDR_END = 0x268;
const XLF_KERNEL_64 = 1;
const LOADED_HIGH = 0x01;
const CAN_USE_HEAP = 0x80;

/** A bzImage that is not one, or does not fit: the message is the whole story. */
export class BootError extends Error {
  override name = "BootError";
}

export interface BzImage {
  /** The setup header bytes [0x1f1, 0x268) as in the image. */
  header: Uint8Array;
  /** The protected-mode kernel (loaded at 1 MiB). */
  kernel: Uint8Array;
  version: number;
  initrdAddrMax: number;
  cmdlineSize: number;
  /** Memory the kernel needs from its load address while it decompresses and runs. */
  initSize: number;
}

/** Parse a bzImage (boot protocol 2.06 or later, with a 64-bit entry point). */
export function parseBzImage(img: Uint8Array): BzImage {
  if (img.length < 0x1000) throw new BootError(`not a bzImage: ${img.length} bytes is too small`);
  const dv = new DataView(img.buffer, img.byteOffset, img.byteLength);
  if (dv.getUint16(BP.bootFlag, true) !== 0xaa55 || dv.getUint32(BP.header, true) !== 0x53726448) {
    throw new BootError("not a bzImage (no 'HdrS' setup header; give an x86-64 Linux bzImage)");
  }
  const version = dv.getUint16(BP.version, true);
  if (version < 0x206)
    throw new BootError(`bzImage boot protocol ${version >> 8}.${version & 0xff} is too old (need 2.06)`);
  if ((dv.getUint16(BP.xloadflags, true) & XLF_KERNEL_64) === 0) {
    throw new BootError("this bzImage has no 64-bit entry point (not an x86-64 kernel)");
  }
  const setupSects = img[BP.setupSects] || 4;
  const start = (setupSects + 1) * 512;
  if (start >= img.length) throw new BootError("bzImage is truncated (setup sectors run past the end)");
  return {
    header: img.slice(BP.hdr, HDR_END),
    kernel: img.subarray(start),
    version,
    initrdAddrMax: dv.getUint32(BP.initrdAddrMax, true),
    cmdlineSize: version >= 0x206 ? dv.getUint32(BP.cmdlineSize, true) : 255,
    initSize: version >= 0x20a ? dv.getUint32(BP.initSize, true) : 0,
  };
}

export interface E820Entry {
  addr: number;
  size: number;
  type: number;
}

/** The memory map: base memory up to the MP table, then everything from 1 MiB. */
export function e820Map(memSize: number): E820Entry[] {
  return [
    { addr: 0, size: MPTABLE_ADDR, type: E820_RAM },
    { addr: MPTABLE_ADDR, size: EBDA_END - MPTABLE_ADDR, type: E820_RESERVED },
    { addr: KERNEL_ADDR, size: memSize - KERNEL_ADDR, type: E820_RAM },
  ];
}

export interface BootSetup {
  /** Guest RAM, from guest-physical 0. */
  ram: Uint8Array;
  kernel: BzImage;
  initrd?: Uint8Array;
  cmdline: string;
  cpus: number;
}

/** Where everything went (for tests and --stats). */
export interface BootLayout {
  initrdAddr: number;
  initrdSize: number;
  kernelEnd: number;
}

/** Write the kernel, initrd, command line, zero page, page tables, GDT and MP table into RAM. */
export function loadLinux(s: BootSetup): BootLayout {
  const { ram, kernel } = s;
  const mem = ram.length;
  const dv = new DataView(ram.buffer, ram.byteOffset, ram.byteLength);
  const kernelEnd = KERNEL_ADDR + Math.max(kernel.kernel.length, kernel.initSize);
  if (kernelEnd > mem)
    throw new BootError(`the kernel needs ${kernelEnd >> 20} MiB of RAM; --memory is ${mem >> 20} MiB`);
  ram.set(kernel.kernel, KERNEL_ADDR);

  const cmd = new TextEncoder().encode(s.cmdline);
  const cmdMax = Math.min(kernel.cmdlineSize, CMDLINE_MAX - 1);
  if (cmd.length > cmdMax)
    throw new BootError(`kernel command line is ${cmd.length} bytes; this kernel takes at most ${cmdMax}`);
  ram.fill(0, CMDLINE_ADDR, CMDLINE_ADDR + cmd.length + 1);
  ram.set(cmd, CMDLINE_ADDR);

  // The initrd goes as high as the kernel allows, page-aligned, above the kernel.
  let initrdAddr = 0;
  const initrdSize = s.initrd?.length ?? 0;
  if (s.initrd !== undefined && initrdSize > 0) {
    const top = Math.min(mem, kernel.initrdAddrMax + 1);
    initrdAddr = Math.floor((top - initrdSize) / 4096) * 4096;
    if (initrdAddr < kernelEnd) {
      throw new BootError(
        `the initrd (${initrdSize >> 10} KiB) does not fit in RAM above the kernel; give more --memory`,
      );
    }
    ram.set(s.initrd, initrdAddr);
  }

  // The zero page: the image's setup header, then what a boot loader fills in.
  ram.fill(0, ZERO_PAGE, ZERO_PAGE + 4096);
  ram.set(kernel.header, ZERO_PAGE + BP.hdr);
  const zp = (off: number) => ZERO_PAGE + off;
  dv.setUint16(zp(BP.vidMode), 0xffff, true); // "normal"
  dv.setUint8(zp(BP.typeOfLoader), 0xff); // undefined loader
  dv.setUint8(zp(BP.loadflags), dv.getUint8(zp(BP.loadflags)) | LOADED_HIGH | CAN_USE_HEAP);
  dv.setUint16(zp(BP.heapEndPtr), 0xfe00, true);
  dv.setUint32(zp(BP.cmdLinePtr), CMDLINE_ADDR, true);
  dv.setUint32(zp(BP.ramdiskImage), initrdAddr, true);
  dv.setUint32(zp(BP.ramdiskSize), initrdSize, true);
  const e820 = e820Map(mem);
  dv.setUint8(zp(BP.e820Entries), e820.length);
  e820.forEach((e, i) => {
    const o = zp(BP.e820Table + i * 20);
    dv.setBigUint64(o, BigInt(e.addr), true);
    dv.setBigUint64(o + 8, BigInt(e.size), true);
    dv.setUint32(o + 16, e.type, true);
  });

  writePageTables(dv);
  writeGdt(dv);
  writeMpTable(ram, s.cpus);
  return { initrdAddr, initrdSize, kernelEnd };
}

/**
 * Identity-map the first 4 GiB with 2 MiB pages: PML4[0] -> PDPT[0..3] -> 4 x 512 PD
 * entries. That covers RAM (at most 3 GiB), the initrd wherever it lands, and the device
 * window (virtio-mmio, the APICs) for code that runs before the kernel's own tables.
 */
function writePageTables(dv: DataView): void {
  for (let a = PML4_ADDR; a < PD_ADDR + PD_COUNT * 4096; a += 8) dv.setBigUint64(a, 0n, true);
  dv.setBigUint64(PML4_ADDR, BigInt(PDPT_ADDR) | PTE_PRESENT | PTE_WRITE, true);
  for (let d = 0; d < PD_COUNT; d++) {
    const pd = PD_ADDR + d * 4096;
    dv.setBigUint64(PDPT_ADDR + d * 8, BigInt(pd) | PTE_PRESENT | PTE_WRITE, true);
    for (let i = 0; i < 512; i++) {
      const page = BigInt(d * 512 + i) << 21n;
      dv.setBigUint64(pd + i * 8, page | PTE_PRESENT | PTE_WRITE | PTE_LARGE, true);
    }
  }
}

const GDT = [0n, GDT_CODE64, GDT_DATA, GDT_TSS];

function writeGdt(dv: DataView): void {
  GDT.forEach((e, i) => {
    dv.setBigUint64(GDT_ADDR + i * 8, e, true);
  });
  dv.setBigUint64(IDT_ADDR, 0n, true);
}

/** The boot vCPU's special registers: long mode, paging on our tables, flat segments. */
export function longModeSregs(s: Sregs): Sregs {
  const code = segmentFromGdt(GDT_CODE64, 1 * 8);
  const data = segmentFromGdt(GDT_DATA, 2 * 8);
  const tss = segmentFromGdt(GDT_TSS, 3 * 8);
  return {
    ...s,
    cs: code,
    ds: data,
    es: data,
    fs: data,
    gs: data,
    ss: data,
    tr: tss,
    gdt: { base: BigInt(GDT_ADDR), limit: GDT.length * 8 - 1 },
    idt: { base: BigInt(IDT_ADDR), limit: 7 },
    cr0: s.cr0 | CR0_PE | CR0_ET | CR0_PG,
    cr3: BigInt(PML4_ADDR),
    cr4: s.cr4 | CR4_PAE,
    efer: s.efer | EFER_LME | EFER_LMA,
  };
}

/** The boot vCPU's registers at the 64-bit entry point. */
export function entryRegs(r: Regs): Regs {
  return {
    ...r,
    rip: BigInt(KERNEL_ADDR + 0x200),
    rsi: BigInt(ZERO_PAGE),
    rsp: BigInt(BOOT_STACK),
    rbp: BigInt(BOOT_STACK),
    rflags: 2n,
  };
}

/** Number of IOAPIC pins the MP table routes (the in-kernel IOAPIC has 24). */
export const IOAPIC_PINS = 24;
const MP_APIC_VERSION = 0x14;
const MP_IOAPIC_VERSION = 0x11;

function checksum(b: Uint8Array, from: number, to: number): number {
  let s = 0;
  for (let i = from; i < to; i++) s = (s + b[i]!) & 0xff;
  return (0x100 - s) & 0xff;
}

/**
 * The MP floating pointer and configuration table (MP spec 1.4, chapter 4): one processor
 * entry per vCPU (APIC id = vCPU id, the first is the boot processor), one ISA bus, the
 * IOAPIC, an interrupt entry routing ISA IRQ n to IOAPIC pin n (IRQ 0 to pin 2), and the
 * local interrupts (ExtINT on LINT0, NMI on LINT1) of every local APIC.
 */
export function writeMpTable(ram: Uint8Array, cpus: number): number {
  const entries: number[][] = [];
  const u16 = (v: number) => [v & 0xff, (v >> 8) & 0xff];
  const u32 = (v: number) => [v & 0xff, (v >> 8) & 0xff, (v >> 16) & 0xff, (v >>> 24) & 0xff];
  for (let i = 0; i < cpus; i++) {
    // type 0: processor: apic id, version, flags (enabled | boot processor), signature, features (FPU, APIC)
    entries.push([
      0,
      i,
      MP_APIC_VERSION,
      1 | (i === 0 ? 2 : 0),
      ...u32(0x600),
      ...u32((1 << 0) | (1 << 9)),
      ...u32(0),
      ...u32(0),
    ]);
  }
  const ISA_BUS = 0;
  entries.push([1, ISA_BUS, ...new TextEncoder().encode("ISA   ")]); // type 1: bus
  const ioapicId = cpus; // after the local APICs
  entries.push([2, ioapicId, MP_IOAPIC_VERSION, 1, ...u32(IOAPIC_ADDR)]); // type 2: IOAPIC
  for (let irq = 0; irq < IOAPIC_PINS; irq++) {
    // IRQ 2 is the 8259s' cascade; the PIT's IRQ 0 is wired to IOAPIC pin 2, where KVM's
    // default routing delivers it (as on a PC, and as SeaBIOS's MP table says).
    if (irq === 2) continue;
    const pin = irq === 0 ? 2 : irq;
    // type 3: I/O interrupt: INT, flags "conforms to bus" (ISA: edge, active high), bus, IRQ, IOAPIC, pin
    entries.push([3, 0, ...u16(0), ISA_BUS, irq, ioapicId, pin]);
  }
  entries.push([4, 3, ...u16(0), ISA_BUS, 0, 0xff, 0]); // type 4: ExtINT -> LINT0 of every APIC
  entries.push([4, 1, ...u16(0), ISA_BUS, 0, 0xff, 1]); // NMI -> LINT1
  const body = entries.flat();
  const HEADER = 44;
  const length = HEADER + body.length;
  const table = MPTABLE_ADDR + 16;
  if (table + length > EBDA_END) throw new BootError(`too many vCPUs for the MP table (${cpus})`);
  const t = new Uint8Array(length);
  t.set(new TextEncoder().encode("PCMP"), 0);
  t.set(u16(length), 4);
  t[6] = 4; // spec revision 1.4
  t.set(new TextEncoder().encode("VISOR   "), 8); // OEM id (8)
  t.set(new TextEncoder().encode("KVM x86-64  "), 16); // product id (12)
  t.set(u16(entries.length), 34);
  t.set(u32(LAPIC_ADDR), 36);
  t.set(body, HEADER);
  t[7] = checksum(t, 0, length);
  ram.set(t, table);

  const fp = new Uint8Array(16);
  fp.set(new TextEncoder().encode("_MP_"), 0);
  fp.set(u32(table), 4);
  fp[8] = 1; // length in 16-byte paragraphs
  fp[9] = 4; // spec revision
  fp[10] = checksum(fp, 0, 16);
  ram.set(fp, MPTABLE_ADDR);
  return length + 16;
}
