/**
 * The messages between the page (main.ts) and the worker that runs the machine
 * (worker.ts). Everything crosses by structured clone; byte arrays are transferred.
 */
import type { JitMode, JitStats } from "@visor/cpu";

export type { JitMode };

export type VirtMode = "nested" | "shadow" | "off";

/** Page to worker. */
export type ToWorker =
  /** Boot the bundled guest (fetched from these URLs) or continue a snapshot. */
  | {
      type: "boot";
      kernelUrl: string;
      initrdUrl: string;
      virt: VirtMode;
      jit: JitMode;
      memoryMiB: number;
    }
  | { type: "restore"; snapshot: Uint8Array; jit: JitMode }
  /** Keys typed in the terminal. */
  | { type: "input"; bytes: Uint8Array }
  /** The terminal has drawn this many bytes of guest output (flow control). */
  | { type: "ack"; bytes: number }
  /** Save a snapshot of the running VM now (answered by "snapshot"). */
  | { type: "snapshot" };

/** One row of a per-device table: the io-bus's own counters. */
export interface DeviceRow {
  name: string;
  reads: number;
  writes: number;
  /** Writes served by a write listener (the ioeventfd-style fast path). */
  fast: number;
}

export interface HartRow {
  hartId: number;
  traps: number;
  interrupts: number;
  tlbMisses: number;
  walks: number;
  walkRefs: number;
  gWalks: number;
  /** Shadow paging's counters, when the hart runs under --virt shadow. */
  shadow?: { fills: number; syncs: number; flushes: number; satpSwitches: number; injectedFaults: number };
}

/** The counters `visor run --stats` prints, as plain data. */
export interface StatsSample {
  virt: VirtMode;
  /** Milliseconds since the machine began (this page's clock, in the worker). */
  ms: number;
  /** Guest instructions executed by this machine object (all harts). */
  instructions: number;
  exits: { reason: string; count: number; ns: number }[];
  idle: number;
  outputWaits: number;
  sbi: { extension: string; fn: string; count: number }[];
  mmio: DeviceRow[];
  pio: DeviceRow[];
  harts: HartRow[];
  /** The translator's counters (as `--stats` prints them), and the mode the page asked for. */
  jit: JitStats & { requested: JitMode };
}

/** Worker to page. */
export type FromWorker =
  /** A progress line for the status bar (fetching, warming up, booting). */
  | { type: "status"; text: string }
  /** Guest console output. */
  | { type: "output"; bytes: Uint8Array }
  | { type: "stats"; stats: StatsSample }
  | { type: "snapshot"; bytes: Uint8Array }
  /** The machine is built and its first instruction is about to run. */
  | { type: "running"; virt: VirtMode; restored: boolean }
  /** The guest stopped (power-off, reset, a failure code). */
  | { type: "exit"; how: string }
  /** Something went wrong: one line for the page to show. */
  | { type: "error"; message: string };
