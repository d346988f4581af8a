import type { BusOptions } from "./bus.ts";
import { MmioBus } from "./mmio.ts";
import { PortBus } from "./pio.ts";
import type { IoStats } from "./stats.ts";

/** Both I/O address spaces of one machine (rust-vmm's `IoManager`). */
export class IoManager {
  readonly mmio: MmioBus;
  readonly pio: PortBus;

  /** `options` (an `onUnmapped` trace hook, for example) apply to both buses. */
  constructor(options?: BusOptions) {
    this.mmio = new MmioBus(options);
    this.pio = new PortBus(options);
  }

  /** Start counting on both buses (see `IoBus.enableStats`). */
  enableStats(): void {
    this.mmio.enableStats();
    this.pio.enableStats();
  }

  disableStats(): void {
    this.mmio.disableStats();
    this.pio.disableStats();
  }

  resetStats(): void {
    this.mmio.resetStats();
    this.pio.resetStats();
  }

  /** Snapshots of both buses. */
  stats(): IoStats {
    return { mmio: this.mmio.stats(), pio: this.pio.stats() };
  }
}
