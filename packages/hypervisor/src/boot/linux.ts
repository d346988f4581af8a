import { type GuestMemory, gpa } from "@visor/memory";
import { GzipLimitError, gunzip, isGzip } from "./gzip.ts";

/**
 * Loading a Linux kernel per the RISC-V boot protocol (Linux
 * Documentation/riscv/boot-image-header.rst and boot.rst).
 *
 * The `Image` starts with a 64-byte little-endian header:
 *
 *   0  u32 code0        executable code (jumps over the header)
 *   4  u32 code1
 *   8  u64 text_offset  image load offset
 *  16  u64 image_size   effective image size, including .bss
 *  24  u64 flags        bit 0: kernel endianness (1 = big-endian)
 *  32  u32 version      major << 16 | minor
 *  36  u32 res1
 *  40  u64 res2
 *  48  u64 magic        "RISCV\0\0\0" (deprecated)
 *  56  u32 magic2       "RSC\x05"
 *  60  u32 res3         offset of the PE/COFF header (EFI stub)
 *
 * On entry the kernel wants a0 = hart ID, a1 = physical address of the device tree,
 * satp = 0 (MMU off), and to sit at a 2 MiB-aligned physical address on RV64 (boot.rst,
 * "Kernel location"). The loader here never decides register values: the integrator sets
 * a0/a1 from the layout.
 */

export const LINUX_IMAGE_HEADER_SIZE = 64;
/** "RISCV\0\0\0" read as a little-endian u64. */
export const LINUX_IMAGE_MAGIC = 0x5643534952n;
/** "RSC\x05" read as a little-endian u32. */
export const LINUX_IMAGE_MAGIC2 = 0x05435352;

/** 2 MiB: the kernel's required alignment on RV64 and where firmware hands over. */
export const LINUX_KERNEL_ALIGN = 0x20_0000;
/**
 * Offset of the kernel from the start of RAM. A jump firmware occupies the first 2 MiB:
 * Debian's OpenSBI `fw_jump` (generic platform) jumps to FW_JUMP_ADDR = 0x80200000, which
 * is the value stored in /usr/lib/riscv64-linux-gnu/opensbi/generic/fw_jump.bin (opensbi
 * 1.1-2). QEMU likewise starts the kernel at the first 2 MiB boundary after the firmware.
 */
export const LINUX_KERNEL_OFFSET = 0x20_0000;
/** The device tree goes at a 2 MiB-aligned address as QEMU's riscv_compute_fdt_addr does. */
export const LINUX_FDT_ALIGN = 0x20_0000;
/** QEMU keeps the FDT below 3 GiB from the start of RAM, reachable by 32-bit software too. */
export const LINUX_FDT_LIMIT = 3 * 1024 * 1024 * 1024;
/**
 * Where Debian's OpenSBI fw_jump (generic platform, opensbi 1.1-2) copies the device tree
 * before jumping to the kernel: FW_JUMP_FDT_ADDR = FW_TEXT_START + 0x2200000. Read from
 * the binary: fw_next_arg1 in /usr/lib/riscv64-linux-gnu/opensbi/generic/fw_jump.elf loads
 * a0 = 1041 << 21 = 0x82200000 (RAM base + 34 MiB); fw_next_addr loads 0x80200000.
 */
export const FW_JUMP_FDT_ADDR = 0x8220_0000;

/**
 * Ranges to pass as `reserved` when booting through fw_jump: the firmware itself at the
 * start of RAM is already below the kernel, the device tree copy is not. OpenSBI may grow
 * the copied tree in place with its fixups, so 1 MiB more is kept free after it.
 */
export function fwJumpReservedRanges(fdtSize: number): PhysRange[] {
  return [{ start: FW_JUMP_FDT_ADDR, end: FW_JUMP_FDT_ADDR + Math.ceil(fdtSize / 4096) * 4096 + 0x10_0000 }];
}
const PAGE = 4096;
const MiB = 1024 * 1024;

export interface LinuxImageHeader {
  code0: number;
  code1: number;
  textOffset: bigint;
  imageSize: bigint;
  flags: bigint;
  /** major << 16 | minor */
  version: number;
  /** 0 when the header does not give one. */
  peOffset: number;
}

/** Reads and validates the RISC-V Image header of an uncompressed kernel. */
export function parseLinuxImageHeader(image: Uint8Array): LinuxImageHeader {
  if (image.length < LINUX_IMAGE_HEADER_SIZE) {
    throw new Error("kernel: not a RISC-V Linux Image (file shorter than the 64-byte header)");
  }
  const dv = new DataView(image.buffer, image.byteOffset, image.byteLength);
  const magic = dv.getBigUint64(48, true);
  const magic2 = dv.getUint32(56, true);
  // magic2 is the current signature; the deprecated "RISCV" magic alone identifies
  // images from before magic2 existed (header version 0.1).
  if (magic2 !== LINUX_IMAGE_MAGIC2 && magic !== LINUX_IMAGE_MAGIC) {
    throw new Error("kernel: not a RISC-V Linux Image (bad magic)");
  }
  const h: LinuxImageHeader = {
    code0: dv.getUint32(0, true),
    code1: dv.getUint32(4, true),
    textOffset: dv.getBigUint64(8, true),
    imageSize: dv.getBigUint64(16, true),
    flags: dv.getBigUint64(24, true),
    version: dv.getUint32(32, true),
    peOffset: dv.getUint32(60, true),
  };
  if ((h.flags & 1n) !== 0n) throw new Error("kernel: big-endian RISC-V Image is not supported");
  return h;
}

/**
 * Bytes the kernel occupies once loaded: image_size (which covers .bss), or the file
 * length when the header gives 0 or less than the file.
 */
export function linuxImageFootprint(header: LinuxImageHeader, fileLength: number): number {
  const declared =
    header.imageSize > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(header.imageSize);
  return Math.max(declared, fileLength);
}

export interface LinuxLayoutRequest {
  /** Start of RAM; default 0x80000000. */
  ramBase?: number;
  /** Bytes of RAM. */
  ramSize: number;
  /** Bytes the kernel occupies (see linuxImageFootprint). */
  kernelSize: number;
  /** Bytes of initrd; 0 or absent for none. */
  initrdSize?: number;
  /** Bytes of the flattened device tree. */
  fdtSize: number;
  /** Kernel offset from RAM start; default LINUX_KERNEL_OFFSET (2 MiB). */
  kernelOffset?: number;
  /**
   * Physical ranges none of the pieces may overlap, e.g. where a firmware will copy the
   * device tree (fwJumpReservedRanges). The initrd and FDT move below them; a kernel
   * overlapping one is an error.
   */
  reserved?: readonly PhysRange[];
}

export interface LinuxLayout {
  /** Physical address the kernel Image is copied to (2 MiB aligned). */
  kernelAddr: number;
  /** First byte after the kernel's footprint (kernelAddr + image_size). */
  kernelEnd: number;
  /** Page-aligned physical start of the initrd; equal to initrdEnd (both 0) when there is none. */
  initrdStart: number;
  initrdEnd: number;
  /** Physical address of the device tree (2 MiB aligned); pass it in a1. */
  fdtAddr: number;
  /** Where the boot hart starts (the first instruction of the Image), in S-mode. */
  entry: number;
}

const alignDown = (v: number, a: number): number => v - (v % a);

/** A physical range [start, end). */
export interface PhysRange {
  start: number;
  end: number;
}

/**
 * The highest `align`-aligned address s >= base with [s, s+size) below `end` and clear of
 * every reserved range, or undefined.
 */
function highestFit(
  base: number,
  end: number,
  size: number,
  align: number,
  reserved: readonly PhysRange[],
): number | undefined {
  for (let i = 0; i <= reserved.length; i++) {
    if (end - base < size) return undefined;
    const s = alignDown(end - size - base, align) + base;
    const hit = reserved.find((r) => s < r.end && s + size > r.start);
    if (hit === undefined) return s;
    end = hit.start;
  }
  return undefined;
}

function place(
  base: number,
  size: number,
  kernelAddr: number,
  kernelSize: number,
  initrdSize: number,
  fdtSize: number,
  reserved: readonly PhysRange[],
): LinuxLayout | undefined {
  const top = base + Math.min(size, LINUX_FDT_LIMIT);
  const kernelEnd = kernelAddr + kernelSize;
  const fdtAddr = highestFit(base, top, fdtSize, LINUX_FDT_ALIGN, reserved);
  if (fdtAddr === undefined || fdtAddr < kernelEnd) return undefined;
  let initrdStart = 0;
  let initrdEnd = 0;
  if (initrdSize > 0) {
    const at = highestFit(base, fdtAddr, initrdSize, PAGE, reserved);
    if (at === undefined || at < kernelEnd) return undefined;
    initrdStart = at;
    initrdEnd = at + initrdSize;
  }
  return { kernelAddr, kernelEnd, initrdStart, initrdEnd, fdtAddr, entry: kernelAddr };
}

/**
 * Where the kernel, initrd and device tree go in RAM. Pure: computes, writes nothing.
 *
 *   base            firmware (fw_jump) or nothing with the built-in SBI
 *   base + 2 MiB    kernel, image_size bytes
 *   ...             free
 *   initrdStart     initrd, page aligned, right below the FDT
 *   fdtAddr         device tree, 2 MiB aligned, as high as possible below
 *                   base + min(size, 3 GiB)
 *
 * Throws "memory too small for the kernel: needs N MiB" when they do not fit, N being the
 * smallest RAM size in MiB for which they do.
 */
export function computeLinuxLayout(req: LinuxLayoutRequest): LinuxLayout {
  const base = req.ramBase ?? 0x8000_0000;
  const size = req.ramSize;
  const offset = req.kernelOffset ?? LINUX_KERNEL_OFFSET;
  const initrdSize = req.initrdSize ?? 0;
  const { kernelSize, fdtSize } = req;
  const nonNeg = (v: number, what: string): void => {
    if (!Number.isSafeInteger(v) || v < 0)
      throw new RangeError(`linux boot: ${what} ${v} is not a valid byte count`);
  };
  nonNeg(base, "RAM base");
  nonNeg(size, "RAM size");
  nonNeg(offset, "kernel offset");
  nonNeg(kernelSize, "kernel size");
  nonNeg(initrdSize, "initrd size");
  nonNeg(fdtSize, "device tree size");
  if (fdtSize === 0) throw new RangeError("linux boot: the device tree is empty");
  if (base % LINUX_KERNEL_ALIGN !== 0 || offset % LINUX_KERNEL_ALIGN !== 0) {
    throw new RangeError(
      `linux boot: kernel address 0x${(base + offset).toString(16)} is not 2 MiB aligned (RISC-V boot protocol)`,
    );
  }
  const reserved = req.reserved ?? [];
  for (const r of reserved) {
    if (!Number.isSafeInteger(r.start) || !Number.isSafeInteger(r.end) || r.end <= r.start) {
      throw new RangeError(`linux boot: reserved range [${r.start}, ${r.end}) is not a valid range`);
    }
  }
  const kernelAddr = base + offset;
  const kernelEnd = kernelAddr + kernelSize;
  const clash = reserved.find((r) => kernelAddr < r.end && kernelEnd > r.start);
  if (clash !== undefined) {
    throw new Error(
      `linux boot: the kernel [0x${kernelAddr.toString(16)}, 0x${kernelEnd.toString(16)}) overlaps the reserved range [0x${clash.start.toString(16)}, 0x${clash.end.toString(16)})`,
    );
  }
  const layout = place(base, size, kernelAddr, kernelSize, initrdSize, fdtSize, reserved);
  if (layout !== undefined) return layout;

  // Smallest whole number of MiB that fits. Below the sum of the parts nothing fits; with
  // the initrd and FDT above every reserved range (plus alignment slack) everything does,
  // unless the 3 GiB limit for the FDT gets in the way.
  const lower = offset + kernelSize + initrdSize + fdtSize;
  const highestReserved = reserved.reduce((m, r) => Math.max(m, r.end - base), 0);
  const upper = Math.max(lower, highestReserved + initrdSize + fdtSize) + 2 * LINUX_FDT_ALIGN + PAGE;
  for (let need = Math.ceil(lower / MiB); need <= Math.ceil(upper / MiB); need++) {
    if (place(base, need * MiB, kernelAddr, kernelSize, initrdSize, fdtSize, reserved) !== undefined) {
      throw new Error(`memory too small for the kernel: needs ${need} MiB`);
    }
  }
  throw new Error(
    "memory too small for the kernel: the kernel, initrd and device tree do not fit below the 3 GiB device-tree limit",
  );
}

/** A kernel read and checked: the raw Image bytes and its header. */
export interface LinuxKernel {
  /** The uncompressed Image. */
  image: Uint8Array;
  header: LinuxImageHeader;
  /** Bytes it occupies once loaded (image_size or the file length). */
  footprint: number;
}

/**
 * Accepts a raw `Image` or a gzip-compressed one (`Image.gz`, detected by 1f 8b),
 * decompresses it if needed and validates the header. `maxBytes` bounds the decompressed
 * size (pass the RAM size) so a hostile gzip cannot exhaust host memory.
 */
export async function readLinuxKernel(
  data: Uint8Array,
  opts: { maxBytes?: number } = {},
): Promise<LinuxKernel> {
  let image = data;
  if (isGzip(data)) {
    try {
      image = await gunzip(data, {
        what: "kernel",
        ...(opts.maxBytes !== undefined ? { maxBytes: opts.maxBytes } : {}),
      });
    } catch (e) {
      if (e instanceof GzipLimitError) {
        throw new Error(
          `memory too small for the kernel: needs more than ${Math.floor((opts.maxBytes ?? 0) / MiB)} MiB`,
        );
      }
      throw e;
    }
  }
  const header = parseLinuxImageHeader(image);
  return { image, header, footprint: linuxImageFootprint(header, image.length) };
}

export interface LinuxBootRequest {
  /** The kernel file: a raw Image or Image.gz. */
  kernel: Uint8Array;
  ramBase?: number;
  ramSize: number;
  /** Bytes of initrd; 0 or absent for none. */
  initrdSize?: number;
  /**
   * Bytes of the device tree. Its size does not depend on the initrd addresses (they
   * are fixed-width 64-bit properties), so build it once to measure, then again with the
   * final addresses.
   */
  fdtSize: number;
  kernelOffset?: number;
  /** Ranges to keep clear (see LinuxLayoutRequest.reserved and fwJumpReservedRanges). */
  reserved?: readonly PhysRange[];
}

/** The layout plus the bytes to copy at `kernelAddr`. */
export interface LinuxBootPlan extends LinuxLayout {
  /** The uncompressed Image, to be copied at kernelAddr. */
  kernelBytes: Uint8Array;
  header: LinuxImageHeader;
  /** The device tree size the layout was computed for (an upper bound for loadLinux). */
  fdtSize: number;
}

/**
 * Reads the kernel (decompressing it if needed) and computes where everything goes.
 * Writes nothing; `loadLinux` does the copying.
 */
export async function planLinuxBoot(req: LinuxBootRequest): Promise<LinuxBootPlan> {
  const kernel = await readLinuxKernel(req.kernel, { maxBytes: req.ramSize });
  const layout = computeLinuxLayout({
    ramSize: req.ramSize,
    kernelSize: kernel.footprint,
    fdtSize: req.fdtSize,
    ...(req.ramBase !== undefined ? { ramBase: req.ramBase } : {}),
    ...(req.initrdSize !== undefined ? { initrdSize: req.initrdSize } : {}),
    ...(req.kernelOffset !== undefined ? { kernelOffset: req.kernelOffset } : {}),
    ...(req.reserved !== undefined ? { reserved: req.reserved } : {}),
  });
  return { ...layout, kernelBytes: kernel.image, header: kernel.header, fdtSize: req.fdtSize };
}

export interface LoadLinuxOptions {
  plan: LinuxBootPlan;
  /** The initrd; its length must be initrdEnd - initrdStart of the plan. */
  initrd?: Uint8Array;
  /** The device tree blob; at most plan.fdtSize bytes. */
  fdt: Uint8Array;
}

/**
 * Copies the kernel, initrd and device tree into guest RAM at the planned addresses and
 * zeroes the kernel's .bss (image_size beyond the file). Everything is checked before the
 * first byte is written.
 */
export function loadLinux(ram: GuestMemory, opts: LoadLinuxOptions): void {
  const { plan, initrd, fdt } = opts;
  const initrdLen = plan.initrdEnd - plan.initrdStart;
  if ((initrd?.length ?? 0) !== initrdLen) {
    throw new Error(
      `linux boot: initrd is ${initrd?.length ?? 0} bytes but the plan has room for ${initrdLen}`,
    );
  }
  if (fdt.length > plan.fdtSize) {
    throw new Error(`linux boot: device tree is ${fdt.length} bytes but the plan reserved ${plan.fdtSize}`);
  }
  const pieces: [string, number, number][] = [
    ["kernel", plan.kernelAddr, plan.kernelEnd - plan.kernelAddr],
    ["initrd", plan.initrdStart, initrdLen],
    ["device tree", plan.fdtAddr, fdt.length],
  ];
  for (const [what, pa, len] of pieces) {
    if (len > 0 && !ram.contains(gpa(pa), len)) {
      throw new Error(
        `linux boot: ${what} [0x${pa.toString(16)}, 0x${(pa + len).toString(16)}) is outside RAM [0x${ram.base.toString(16)}, 0x${ram.end.toString(16)})`,
      );
    }
  }
  ram.write(gpa(plan.kernelAddr), plan.kernelBytes);
  const bssStart = plan.kernelAddr + plan.kernelBytes.length;
  if (plan.kernelEnd > bssStart) ram.viewMut(gpa(bssStart), plan.kernelEnd - bssStart).fill(0);
  if (initrd !== undefined && initrd.length > 0) ram.write(gpa(plan.initrdStart), initrd);
  ram.write(gpa(plan.fdtAddr), fdt);
}
