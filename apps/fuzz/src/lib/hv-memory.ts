/**
 * What the hypervisor-memory fuzz surfaces (sbi, htif, mmu) share: small machines with a
 * page-table pool, an audit that tells the hypervisor's own pool writes (made through its
 * HvRegion) from any other change, and generators of hostile guest-physical addresses
 * (around RAM's end, the pool, 2^53 and 2^64).
 */
import { Machine, Vcpu, VIRT_MEMMAP, type VirtMode, warmupImage } from "@visor/hypervisor";
import { type Hpa, hpa } from "@visor/memory";
import fc from "fast-check";
import { invariant } from "../surface.ts";

/** Guest RAM of the fuzzed machines: the smallest Machine allows. */
export const FUZZ_MEMORY = 16 << 20;
export const U64_MAX = (1n << 64n) - 1n;
const EXACT_LIMIT = 1n << 53n;
/** How far around each landmark the generated addresses go. */
const NEAR = 4096;

/** A machine with the warm-up guest loaded (not run), its console output dropped. */
export async function fuzzMachine(virt: VirtMode): Promise<{ machine: Machine }> {
  const machine = await Machine.create({
    memory: FUZZ_MEMORY,
    kernel: warmupImage(),
    append: "",
    clock: "deterministic",
    virt,
    harts: 2,
    // Dropped: nothing reads it, and kept it grew with every DBCN write of a fuzz run
    // until pushing to it threw (RangeError: Invalid array length, after 250 000 inputs).
    console: { write() {} },
  });
  return { machine };
}

/**
 * Mirrors the pool: every write the hypervisor makes through the pool's HvRegion is
 * copied into the mirror as it happens, so at any time the pool must equal the mirror.
 * A difference is a write that did not come from the hypervisor's table code (a DMA, a
 * hypercall, the hart's A/D update of a hypervisor PTE).
 */
export class PoolAudit {
  private readonly machine: Machine;
  private readonly mirror: Uint8Array;
  private readonly start: Hpa;

  constructor(machine: Machine) {
    this.machine = machine;
    const region = machine.hvPool.region;
    this.start = region.start;
    this.mirror = region.copy(region.start, region.size);
    region.onWrite = (at, len) => {
      this.mirror.set(region.copy(at, len), at - this.start);
    };
  }

  /** Throws an InvariantError naming the first byte of the pool that changed behind the hypervisor's back. */
  check(what: string): void {
    const size = this.mirror.length;
    if (size === 0) return;
    const now = this.machine.ram.view(hpa(this.start), size);
    if (Buffer.compare(now, this.mirror) === 0) return;
    let i = 0;
    while (now[i] === this.mirror[i]) i++;
    invariant(
      false,
      `${what}: pool byte 0x${(this.start + i).toString(16)} changed outside the hypervisor's table writes`,
    );
  }
}

/** Where guest RAM and the pool of a fuzz machine are (the `virt` map; the pool follows RAM). */
export const RAM_BASE = VIRT_MEMMAP.dram.base;
export const RAM_END = RAM_BASE + FUZZ_MEMORY;
export const POOL_END = RAM_END + Vcpu.hypervisorMemory(FUZZ_MEMORY);

/** 64-bit values a hostile guest would pass as addresses: near every edge that matters, or anything. */
export const hostileU64: fc.Arbitrary<bigint> = fc.oneof(
  fc
    .tuple(
      fc.constantFrom(0n, BigInt(RAM_BASE), BigInt(RAM_END), BigInt(POOL_END), EXACT_LIMIT, U64_MAX),
      fc.integer({ min: -NEAR, max: NEAR }),
    )
    .map(([a, d]) => BigInt.asUintN(64, a + BigInt(d))),
  fc.bigInt({ min: BigInt(RAM_BASE), max: BigInt(POOL_END) }),
  fc.bigInt({ min: 0n, max: U64_MAX }),
);
