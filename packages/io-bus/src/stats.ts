/**
 * Access statistics. They feed the hypervisor's exit statistics ("how many MMIO exits,
 * to which device"), so they count guest accesses: a 4-byte access that the bus splits
 * into four 1-byte device calls counts once, as 4 bytes.
 */

/** Which address space a bus models. */
export type BusKind = "mmio" | "pio";

/** Counters kept per device (and summed per bus) while statistics are enabled. */
export interface AccessCounters {
  /** Read accesses dispatched to a device. */
  reads: number;
  /** Write accesses dispatched to a device (not those consumed by a write listener). */
  writes: number;
  /** Bytes moved by `reads`. */
  bytesRead: number;
  /** Bytes moved by `writes`. */
  bytesWritten: number;
  /** Writes consumed by an ioeventfd-style write listener instead of the device. */
  listenerWrites: number;
}

/** One device's counters, as returned in a {@link BusStats} snapshot. */
export interface DeviceStats extends AccessCounters {
  /** The device's `name`. */
  name: string;
  /** First address (or port) of the device's range. */
  base: number;
  /** Length of the range in bytes (or ports). */
  length: number;
}

/** A snapshot of one bus's counters. */
export interface BusStats extends AccessCounters {
  bus: BusKind;
  /** Whether counting is currently enabled (the unmapped counters are always kept). */
  enabled: boolean;
  /**
   * Reads that reached no device: holes, accesses straddling the end of a range, and
   * widths narrower than the device accepts. Always counted, even with statistics off
   * (it is a slow path anyway).
   */
  unmappedReads: number;
  /** Writes that reached neither a device nor a write listener. Always counted. */
  unmappedWrites: number;
  /**
   * Per-device counters of the devices registered now, in address order. Listener writes
   * that hit no device's range appear only in the bus totals.
   */
  devices: DeviceStats[];
}

/** A snapshot of both buses of an `IoManager`. */
export interface IoStats {
  mmio: BusStats;
  pio: BusStats;
}

/** Details of an access that reached no device, passed to an `onUnmapped` hook. */
export interface UnmappedAccess {
  bus: BusKind;
  kind: "read" | "write";
  /** Guest-physical address (MMIO) or port number (PIO) of the first byte. */
  addr: number;
  size: 1 | 2 | 4 | 8;
  /** The value written (truncated to `size`, unsigned); absent for reads. */
  value?: number | bigint;
}

/** Observer of unmapped accesses, for tracing; it runs on the (slow) unmapped path only. */
export type UnmappedHook = (access: UnmappedAccess) => void;
