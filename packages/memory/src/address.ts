/**
 * Branded address kinds (vm-memory's `GuestAddress` / `MemoryRegionAddress`).
 *
 * - `Gpa`: guest-physical, what a guest's own page tables produce (the input of the
 *   G-stage / EPT, or of the shadow MMU's second step), and every address a guest hands
 *   the hypervisor (virtqueue rings and buffers, SBI and HTIF buffers). Only a
 *   `GuestMemory` (guest-memory.ts) turns one into bytes, and only inside guest RAM.
 * - `Hpa`: host-physical, the hart's real physical address space (DRAM at 0x8000_0000 on
 *   the `virt` map), which also holds the hypervisor's own page-table pool after guest
 *   RAM. `GuestRam` (the whole host buffer) and `HvRegion` (the pool) take these.
 *   With virtualization off the two coincide.
 * Guest-virtual addresses are 64-bit and live in the CPU as (hi, lo) int32 pairs; the
 * walkers take them as two numbers, not as a branded scalar.
 *
 * Physical addresses are plain JS numbers: RAM and every device sit far below 2^53, and a
 * page-table entry whose PPN would go above 2^41 pages is treated as an access fault
 * before it is ever turned into a number (see walk.ts). A 64-bit value from a guest
 * becomes a `Gpa` only through `gpaFromU64` / `gpaFromHiLo`, which refuse anything a
 * number cannot hold exactly.
 */
export type Gpa = number & { readonly __brand: "Gpa" };
export type Hpa = number & { readonly __brand: "Hpa" };

/** Brand a number the hypervisor computed itself (a constant, a checked sum) as a Gpa. */
export const gpa = (n: number): Gpa => n as Gpa;
export const hpa = (n: number): Hpa => n as Hpa;

export const PAGE_SHIFT = 12;
export const PAGE_SIZE = 1 << PAGE_SHIFT;
export const PAGE_MASK = PAGE_SIZE - 1;

const MAX_EXACT = BigInt(Number.MAX_SAFE_INTEGER);
const TWO32 = 2 ** 32;

/**
 * A guest register or descriptor field (an unsigned 64-bit value) as a guest-physical
 * address, or undefined when no JS number holds it exactly (at or above 2^53: certainly
 * not RAM, and rounding it could land inside RAM).
 */
export function gpaFromU64(v: bigint): Gpa | undefined {
  const u = BigInt.asUintN(64, v);
  return u > MAX_EXACT ? undefined : (Number(u) as Gpa);
}

/** A guest-physical address given as two unsigned 32-bit halves, or undefined above 2^53. */
export function gpaFromHiLo(hi: number, lo: number): Gpa | undefined {
  const h = hi >>> 0;
  if (h >= 1 << 21) return undefined;
  return (h * TWO32 + (lo >>> 0)) as Gpa;
}

/** `a + delta` as a Gpa (an offset into a range the caller checks before use). */
export function gpaAdd(a: Gpa, delta: number): Gpa {
  return (a + delta) as Gpa;
}
