/**
 * The snapshot file: a machine's state (JSON) and its RAM, so a VM can stop on one host
 * and go on later, or elsewhere (cold migration), from exactly where it was.
 *
 *   offset  size  field
 *        0     8  magic "VISORSNP"
 *        8     4  format version (1), little-endian u32
 *       12     4  n = length of the JSON state in bytes
 *       16     n  the state (MachineState), UTF-8 JSON
 *     16+n     4  p = number of RAM pages stored
 *     20+n    4p  their page numbers (RAM offset / 4096), ascending
 *   20+n+4p 4096p their contents; every page not listed is zero
 *
 * RAM covers the guest's memory and, after it, the hypervisor's own pages (G-stage tables,
 * shadow tables), so nothing has to be rebuilt that the file already holds.
 */
import type { HartState } from "@visor/cpu";
import type { GuestRam } from "@visor/memory";
import type { VcpuState, VirtMode } from "./vcpu.ts";

export const SNAPSHOT_VERSION = 1;
const MAGIC = "VISORSNP";
const PAGE = 4096;

export interface MachineConfigState {
  /** Guest RAM in bytes (MachineOptions.memory). */
  memory: number;
  harts: number;
  virt: VirtMode;
  clock: "host" | "deterministic";
  rng: boolean;
  /** The harts run firmware (OpenSBI) in M-mode. */
  firmware: boolean;
  disks: { transport: "mmio" | "pci"; id?: string }[];
  nets: number;
}

/** Everything but RAM. */
export interface MachineState {
  version: number;
  config: MachineConfigState;
  /** mtime when the snapshot was taken. */
  now: number;
  /** Deterministic clock: ticks skipped while every hart idled. */
  skippedTicks: number;
  harts: HartState[];
  vcpus: VcpuState[];
  devices: Record<string, unknown>;
  /** Console input typed but not yet read by the guest. */
  consoleIn: number[];
  /** The deterministic machine's entropy generator state. */
  entropy: number;
  /** Next free page of the hypervisor's own memory (G-stage and shadow tables). */
  hvPool: number;
  /** What the caller stored with the snapshot (visor run keeps its disk paths here). */
  meta?: unknown;
}

/** A snapshot file's bytes for `state` and `ram`. */
export function encodeSnapshot(state: MachineState, ram: GuestRam): Uint8Array {
  const json = new TextEncoder().encode(JSON.stringify(state));
  const words = new Int32Array(ram.buffer);
  const pages: number[] = [];
  const count = ram.size / PAGE;
  for (let p = 0; p < count; p++) {
    const w0 = p * (PAGE / 4);
    for (let i = w0; i < w0 + PAGE / 4; i++) {
      if (words[i] !== 0) {
        pages.push(p);
        break;
      }
    }
  }
  const head = 20 + json.length;
  const out = new Uint8Array(head + 4 * pages.length + PAGE * pages.length);
  const dv = new DataView(out.buffer);
  for (let i = 0; i < 8; i++) out[i] = MAGIC.charCodeAt(i);
  dv.setUint32(8, SNAPSHOT_VERSION, true);
  dv.setUint32(12, json.length, true);
  out.set(json, 16);
  dv.setUint32(16 + json.length, pages.length, true);
  const data = head + 4 * pages.length;
  pages.forEach((p, i) => {
    dv.setUint32(head + 4 * i, p, true);
    out.set(ram.u8.subarray(p * PAGE, (p + 1) * PAGE), data + i * PAGE);
  });
  return out;
}

export interface DecodedSnapshot {
  state: MachineState;
  /** Copy the stored pages into `ram` (which must be zero and as large as the machine's). */
  loadRam(ram: GuestRam): void;
}

/** Parse a snapshot file. Every malformation is an Error "snapshot: ...". */
export function decodeSnapshot(bytes: Uint8Array): DecodedSnapshot {
  const fail = (why: string): never => {
    throw new Error(`snapshot: ${why}`);
  };
  if (bytes.length < 16 || String.fromCharCode(...bytes.subarray(0, 8)) !== MAGIC) {
    fail("not a visor snapshot (bad magic)");
  }
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const version = dv.getUint32(8, true);
  if (version !== SNAPSHOT_VERSION)
    fail(`format version ${version} is not supported (this visor reads ${SNAPSHOT_VERSION})`);
  const n = dv.getUint32(12, true);
  if (20 + n > bytes.length) fail("truncated (state)");
  let state: MachineState;
  try {
    state = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes.subarray(16, 16 + n)));
  } catch {
    return fail("corrupt state (not JSON)");
  }
  if (
    state === null ||
    typeof state !== "object" ||
    state.config === null ||
    typeof state.config !== "object"
  ) {
    fail("corrupt state (no machine configuration)");
  }
  const p = dv.getUint32(16 + n, true);
  const index = 20 + n;
  const data = index + 4 * p;
  if (data + PAGE * p !== bytes.length) fail("truncated or padded (RAM pages)");
  return {
    state,
    loadRam(ram: GuestRam) {
      const count = ram.size / PAGE;
      let last = -1;
      for (let i = 0; i < p; i++) {
        const page = dv.getUint32(index + 4 * i, true);
        if (page >= count) fail(`RAM page ${page} lies outside the machine's ${ram.size} bytes`);
        if (page <= last) fail("RAM page numbers are not ascending");
        last = page;
        ram.u8.set(bytes.subarray(data + i * PAGE, data + (i + 1) * PAGE), page * PAGE);
      }
    },
  };
}
