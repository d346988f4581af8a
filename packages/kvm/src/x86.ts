/**
 * x86-64 architectural constants and helpers a VMM needs to start a vCPU in long mode
 * (Intel SDM vol. 3, chapters 2-4: CR0/CR4/EFER bits, segment descriptors).
 */
import type { Segment } from "./structs.ts";

export const CR0_PE = 1n;
export const CR0_ET = 1n << 4n;
export const CR0_PG = 1n << 31n;
export const CR4_PAE = 1n << 5n;
export const EFER_LME = 1n << 8n;
export const EFER_LMA = 1n << 10n;

/** Page-table entry bits. */
export const PTE_PRESENT = 1n;
export const PTE_WRITE = 2n;
/** PS: a 2 MiB (PD) or 1 GiB (PDPT) page. */
export const PTE_LARGE = 1n << 7n;

/**
 * A GDT descriptor: `flags` are the access byte (bits 0-7) and the flags nibble
 * (bits 12-15: AVL, L, D/B, G) as packed in the descriptor's high word.
 */
export function gdtEntry(flags: number, base: number, limit: number): bigint {
  return (
    ((BigInt(base) & 0xff000000n) << 32n) |
    ((BigInt(flags) & 0xf0ffn) << 40n) |
    ((BigInt(limit) & 0xf0000n) << 32n) |
    ((BigInt(base) & 0x00ffffffn) << 16n) |
    (BigInt(limit) & 0xffffn)
  );
}

/** The `kvm_segment` a descriptor loads into a segment register with `selector`. */
export function segmentFromGdt(entry: bigint, selector: number): Segment {
  const bit = (n: bigint) => Number((entry >> n) & 1n);
  const limit = Number(((entry >> 32n) & 0xf0000n) | (entry & 0xffffn));
  const g = bit(55n);
  return {
    base: ((entry >> 32n) & 0xff000000n) | ((entry >> 16n) & 0xffffffn),
    limit: g ? limit * 4096 + 4095 : limit,
    selector,
    type: Number((entry >> 40n) & 0xfn),
    present: bit(47n),
    dpl: Number((entry >> 45n) & 3n),
    db: bit(54n),
    s: bit(44n),
    l: bit(53n),
    g,
    avl: bit(52n),
    unusable: 0,
  };
}

/** Flat descriptors of a 64-bit kernel (code: L=1; data; a busy 64-bit TSS), as Linux's boot GDT. */
export const GDT_CODE64 = gdtEntry(0xa09b, 0, 0xfffff);
export const GDT_DATA = gdtEntry(0xc093, 0, 0xfffff);
export const GDT_TSS = gdtEntry(0x808b, 0, 0xfffff);
