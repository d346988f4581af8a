/**
 * Time sources injected into devices. Devices never read the host clock themselves, so a
 * machine can run them against the host clock or a deterministic one (time derived from
 * instructions retired) and get reproducible boots.
 */

/** The RISC-V `mtime` frequency used on QEMU `virt` (and by the CLINT here): 10 MHz. */
export const MTIME_HZ = 10_000_000;

/** Machine time: the current `mtime` in ticks of 1 / MTIME_HZ seconds. Never decreases. */
export interface Clock {
  now(): number;
}

/** Wall-clock time, for the RTC: nanoseconds since the Unix epoch. */
export interface WallClock {
  nowNs(): bigint;
}

/** The wall clock of the JS host (Date.now(), millisecond resolution). */
export const hostWallClock: WallClock = {
  nowNs: () => BigInt(Date.now()) * 1_000_000n,
};

/** A clock that only moves when told to; for tests and deterministic machines. */
export class ManualClock implements Clock {
  ticks: number;
  constructor(ticks = 0) {
    this.ticks = ticks;
  }
  now(): number {
    return this.ticks;
  }
  advance(ticks: number): void {
    this.ticks += ticks;
  }
}
