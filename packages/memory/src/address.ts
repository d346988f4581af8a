/**
 * Branded address kinds (vm-memory's `GuestAddress` / `MemoryRegionAddress`).
 *
 * - `Gpa`: guest-physical, what a guest's own page tables produce (the input of the
 *   G-stage / EPT, or of the shadow MMU's second step).
 * - `Hpa`: host-physical, the hart's real physical address space (DRAM at 0x8000_0000 on
 *   the `virt` map). With virtualization off the two coincide.
 * Guest-virtual addresses are 64-bit and live in the CPU as (hi, lo) int32 pairs; the
 * walkers take them as two numbers, not as a branded scalar.
 *
 * Physical addresses are plain JS numbers: RAM and every device sit far below 2^53, and a
 * page-table entry whose PPN would go above 2^41 pages is treated as an access fault
 * before it is ever turned into a number (see walk.ts).
 */
export type Gpa = number & { readonly __brand: "Gpa" };
export type Hpa = number & { readonly __brand: "Hpa" };

export const gpa = (n: number): Gpa => n as Gpa;
export const hpa = (n: number): Hpa => n as Hpa;

export const PAGE_SHIFT = 12;
export const PAGE_SIZE = 1 << PAGE_SHIFT;
export const PAGE_MASK = PAGE_SIZE - 1;
